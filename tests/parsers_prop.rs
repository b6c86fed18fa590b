//! Property tests for the public input parsers (issue 17, "What must be shown": the parsers
//! never panic on any input): WHIP/WHEP PATCH bodies (`signal::sdpfrag`) and tokens
//! (`auth::TokenKeys::verify` / `authorize`), each with arbitrary text and with near-valid
//! input. 100 000 cases a property (`PROPTEST_CASES` overrides it for a quick run).
//! The private parsers have theirs in-module (`prop_tests` in `school::csvio`,
//! `school::api`, `sfu`, `signal`).
//!
//! Run: `cargo test --test parsers_prop`.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use classrelay::auth::{now_secs, AuthError, Grant, TokenKeys};
use classrelay::signal::sdpfrag;
use proptest::prelude::*;
use serde_json::json;

fn config() -> ProptestConfig {
    let d = ProptestConfig::default();
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").map_or(100_000, |_| d.cases),
        max_shrink_iters: 10_000,
        ..d
    }
}

/// Lines of a trickle-ice-sdpfrag body: valid ones, near misses, and other SDP.
const FRAG_LINES: [&str; 24] = [
    "a=ice-ufrag:EsAw",
    "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1",
    "a=ice-ufrag:abc",
    "a=ice-pwd:short",
    "a=ice-ufrag:a b c d",
    "a=ice-ufrag:",
    "a=end-of-candidates",
    "a=mid:0",
    "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "c=IN IP4 0.0.0.0",
    "a=candidate:",
    "a=candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host",
    "a=candidate:1 1 UDP 1 ::1 9 typ host generation 0",
    "a=candidate:2 1 tcp 1 192.0.2.1 9 typ host tcptype passive",
    "a=candidate:3 1 udp 1 192.0.2.1 9 typ srflx raddr 10.0.0.1 rport 5",
    "a=candidate:3 1 udp 1 192.0.2.1 9 typ srflx raddr x rport 99999999999",
    "a=candidate:4 1 udp 99999999999999999999 x.local 9 typ host",
    "a=candidate:5 2 udp -1 192.0.2.1 -9 typ relay",
    "a=candidate:6 1 udp 1 192.0.2.1 70000 typ prflx ufrag EsAw network-id 1",
    "a=candidate:7 1 udp 1 192.0.2.1 9 typ",
    "a=candidate:7 1 udp 1 192.0.2.1 9",
    "v=0",
    "",
];

/// A fragment body: lines from [`FRAG_LINES`] or free text, with CRLF or LF ends.
fn frag_body() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        4 => prop::sample::select(&FRAG_LINES[..]).prop_map(str::to_string),
        1 => "a=candidate:[0-9a-z ./:-]{0,40}",
        1 => "a=ice-(ufrag|pwd):[A-Za-z0-9+/ ]{0,30}",
        1 => "[ -~\r\n\u{80}-\u{10ffff}]{0,20}",
    ];
    prop::collection::vec((line, any::<bool>()), 0..12).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(l, crlf)| l + if crlf { "\r\n" } else { "\n" })
            .collect()
    })
}

fn check_frag(body: &str) -> Result<(), TestCaseError> {
    if let Ok(f) = sdpfrag::parse(body) {
        prop_assert_eq!(f.ice_ufrag.is_some(), f.ice_pwd.is_some());
        prop_assert!(f.candidates.len() <= 256);
        for v in f.ice_ufrag.iter().chain(&f.ice_pwd) {
            prop_assert!(v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sdpfrag_parse_takes_any_text(body in "\\PC{0,200}|[ -~\r\n]{0,200}") {
        check_frag(&body)?;
    }

    #[test]
    fn sdpfrag_parse_takes_near_valid_bodies(body in frag_body()) {
        check_frag(&body)?;
    }

    #[test]
    fn sdpfrag_rewrites_take_any_sdp(sdp in frag_body(), tail in "[ -~\r\n]{0,40}") {
        let sdp = sdp + &tail;
        let out = sdpfrag::replace_ice_credentials(&sdp, "UFRG", "PWDPWDPWDPWDPWDPWDPWDPWD");
        for l in out.lines() {
            let l = l.trim_end_matches('\r');
            prop_assert!(!l.starts_with("a=candidate:"), "{:?}", out);
            if l.starts_with("a=ice-ufrag:") {
                prop_assert_eq!(l, "a=ice-ufrag:UFRG");
            }
        }
        let frag = sdpfrag::answer_fragment(&sdp);
        prop_assert!(frag.ends_with("a=end-of-candidates\r\n"));
        check_frag(&frag)?;
    }
}

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// HS256 over `header.payload` with `key`: what a forger who knows (or guesses) a key
/// would send.
fn sign(key: &[u8], header: &str, payload: &str) -> String {
    let h = b64(header.as_bytes());
    let p = b64(payload.as_bytes());
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        format!("{h}.{p}").as_bytes(),
    );
    format!("{h}.{p}.{}", b64(mac.as_ref()))
}

/// Payload JSON: valid claims, wrong types, huge or negative numbers, missing fields.
fn payload() -> impl Strategy<Value = String> {
    let exp = prop_oneof![
        Just(json!(now_secs() + 600)),
        Just(json!(now_secs() - 1)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!(1e300)),
        Just(json!("9999999999")),
        Just(json!(null)),
        any::<u64>().prop_map(|v| json!(v)),
        any::<i64>().prop_map(|v| json!(v)),
    ];
    let grants = prop_oneof![
        Just(json!(["publish"])),
        Just(json!(["subscribe", "publish"])),
        Just(json!([])),
        Just(json!("publish")),
        Just(json!(["admin"])),
        Just(json!([1])),
        Just(json!(null)),
    ];
    let room = prop_oneof![
        Just(json!("r1")),
        Just(json!("r2")),
        Just(json!(1)),
        "\\PC{0,8}".prop_map(|s| json!(s)),
    ];
    let lesson = prop_oneof![
        Just(None),
        Just(Some(json!(7))),
        Just(Some(json!(u64::MAX))),
        Just(Some(json!("7"))),
    ];
    // The principal and its token version (revocation): right, wrong types, extremes.
    let who = prop_oneof![
        Just(None),
        Just(Some((json!("u:1"), json!(1)))),
        Just(Some((json!("d:3"), json!(u64::MAX)))),
        Just(Some((json!(3), json!("1")))),
        Just(Some((json!(null), json!(-1e300)))),
    ];
    (exp, grants, room, (lesson, who), any::<u8>()).prop_map(
        |(exp, grants, room, (lesson, who), drop)| {
            let mut m = serde_json::Map::new();
            m.insert("sub".into(), json!("x"));
            m.insert("room".into(), room);
            m.insert("grants".into(), grants);
            m.insert("exp".into(), exp);
            m.insert("iat".into(), json!(0));
            if let Some(l) = lesson {
                m.insert("lesson".into(), l);
            }
            if let Some((w, v)) = who {
                m.insert("who".into(), w);
                m.insert("ver".into(), v);
            }
            let keys: Vec<String> = m.keys().cloned().collect();
            if drop % 2 == 1 {
                m.remove(&keys[usize::from(drop / 2) % keys.len()]);
            }
            serde_json::Value::Object(m).to_string()
        },
    )
}

/// Headers: the right one, other algorithms (`none` included), junk.
const HEADERS: [&str; 8] = [
    r#"{"alg":"HS256","typ":"JWT"}"#,
    r#"{"alg":"HS256"}"#,
    r#"{"alg":"none","typ":"JWT"}"#,
    r#"{"alg":"HS512","typ":"JWT"}"#,
    r#"{"alg":"RS256","typ":"JWT"}"#,
    r#"{"alg":1}"#,
    r#"{}"#,
    r#"not json"#,
];

/// A token someone might send: signed right or with a wrong key, with any header, then
/// maybe cut, or one character changed; and whether it was signed with our key under an
/// HS256 header (the only tokens that may pass).
fn near_valid_token() -> impl Strategy<Value = (String, bool)> {
    (
        prop::sample::select(&HEADERS[..]),
        payload(),
        any::<bool>(),
        any::<(u8, u16, u8)>(),
    )
        .prop_map(|(header, payload, right_key, (how, at, with))| {
            let key: &[u8] = if right_key { SECRET } else { b"guessed" };
            let mut t = sign(key, header, &payload);
            let at = usize::from(at) % (t.len() + 1);
            match how % 5 {
                0 => t.truncate(at),
                1 if at < t.len() => t.replace_range(at..=at, &char::from(with).to_string()),
                2 => {
                    // "alg":"none" style: no signature at all.
                    let cut = t.rfind('.').unwrap_or(t.len());
                    t.truncate(cut + 1);
                }
                _ => {}
            }
            (t, right_key && header.contains("HS256"))
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tokens_any_text_is_refused(t in "\\PC{0,120}|[A-Za-z0-9_.=-]{0,120}") {
        let k = TokenKeys::new(SECRET);
        prop_assert!(k.verify(&t).is_err());
    }

    #[test]
    fn tokens_near_valid_only_ours_pass((t, ours) in near_valid_token()) {
        let k = TokenKeys::new(SECRET);
        match k.verify(&t) {
            Ok(c) => {
                // (A changed character may decode to the same bytes: base64's spare bits.)
                prop_assert!(ours, "forged token accepted: {}", t);
                prop_assert!(c.exp > now_secs(), "expired token accepted: {:?}", c);
            }
            Err(AuthError::Expired | AuthError::Invalid(_)) => {}
            Err(e) => prop_assert!(false, "verify gave {:?}", e),
        }
    }

    #[test]
    fn tokens_wrong_key_never_pass(p in payload(), h in prop::sample::select(&HEADERS[..])) {
        let k = TokenKeys::new(SECRET);
        prop_assert!(k.verify(&sign(b"guessed", h, &p)).is_err());
        let h = b64(h.as_bytes());
        let p = b64(p.as_bytes());
        let unsigned = format!("{h}.{p}.");
        prop_assert!(k.verify(&unsigned).is_err());
        prop_assert!(k.verify(&unsigned[..unsigned.len() - 1]).is_err());
    }

    #[test]
    fn authorize_takes_any_header(
        prefix in prop::sample::select(vec!["Bearer ", "bearer ", "BEARER ", "Basic ", "", "Bearer  "]),
        rest in "\\PC{0,80}",
        genuine in any::<bool>(),
        room in prop::sample::select(vec!["r1", "r2", ""]),
        publish in any::<bool>(),
    ) {
        let k = TokenKeys::new(SECRET);
        let token = if genuine {
            k.mint("s", "r1", &[Grant::Publish], Duration::from_secs(60))
        } else {
            rest.clone()
        };
        let header = format!("{prefix}{token}");
        let grant = if publish { Grant::Publish } else { Grant::Subscribe };
        let should_pass = genuine
            && (prefix.starts_with("Bearer ") || prefix.starts_with("bearer "))
            && room == "r1"
            && publish;
        match k.authorize(Some(&header), room, grant) {
            Ok(c) => {
                prop_assert!(should_pass);
                prop_assert_eq!(c.room.as_str(), room);
                prop_assert!(c.grants.contains(&grant));
            }
            Err(e) => prop_assert!(!should_pass, "{:?}", e),
        }
        prop_assert!(k.authorize(Some(&rest), room, grant).is_err());
    }
}
