//! Short-lived TURN credentials in the TURN REST API scheme coturn's `use-auth-secret` checks:
//! username `<expiry unix seconds>:<principal>`, credential `base64(HMAC-SHA1(secret,
//! username))`. It must never hand out the shared secret, and never decides who may have a
//! credential: its callers mint only for a caller they authenticated.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::config::{ConfigError, TurnConfig};

/// The longest principal put in a username (coturn's usernames stay well under its limit).
const MAX_PRINCIPAL: usize = 64;

/// Mints credentials for the configured TURN service.
#[derive(Clone)]
pub struct TurnMinter {
    secret: Vec<u8>,
    urls: Vec<String>,
    ttl: Duration,
}

impl std::fmt::Debug for TurnMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("TurnMinter")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// One minted credential: what an `RTCIceServer` needs, and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TurnCredential {
    /// The service's `turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// `<expiry>:<principal>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
    /// Unix seconds after which the TURN server refuses it.
    pub expires_at: u64,
}

impl TurnMinter {
    /// The minter for `config`, or `None` when no TURN URLs are configured.
    pub fn from_config(config: &TurnConfig) -> Result<Option<TurnMinter>, ConfigError> {
        let Some(secret) = config.secret_bytes()? else {
            return Ok(None);
        };
        Ok(Some(TurnMinter {
            secret,
            urls: config.urls.clone(),
            ttl: config.ttl()?,
        }))
    }

    /// A credential for `principal`, valid from `now_unix` (seconds) for the configured TTL.
    pub fn mint(&self, principal: &str, now_unix: u64) -> TurnCredential {
        let expires_at = now_unix.saturating_add(self.ttl.as_secs());
        let username = format!("{expires_at}:{}", username_safe(principal));
        TurnCredential {
            urls: self.urls.clone(),
            credential: credential(&self.secret, &username),
            username,
            expires_at,
        }
    }
}

/// `base64(HMAC-SHA1(secret, username))`, the password coturn derives for `username`.
pub fn credential(secret: &[u8], username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The principal as it may appear in a username that goes into a quoted `Link` parameter and
/// a TURN USERNAME attribute: letters, digits and `:._@-` kept, anything else `_`, at most
/// [`MAX_PRINCIPAL`] characters. coturn reads the expiry up to the first `:`, so a principal
/// such as `u:12` keeps its colon.
fn username_safe(principal: &str) -> String {
    let s: String = principal
        .chars()
        .take(MAX_PRINCIPAL)
        .map(|c| {
            if c.is_ascii_alphanumeric() || ":._@-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "anonymous".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minter(ttl: &str) -> TurnMinter {
        let c = TurnConfig {
            secret: "classrelay-turn-secret-0123".into(),
            secret_file: None,
            urls: vec!["turn:127.0.0.1:3478?transport=tcp".into()],
            ttl: ttl.into(),
        };
        TurnMinter::from_config(&c).unwrap().unwrap()
    }

    /// A worked example, computed outside this crate:
    /// `printf '%s' '1700000000:u:12' | openssl dgst -sha1 -hmac 'classrelay-turn-secret-0123' -binary | base64`
    /// and `base64.b64encode(hmac.new(b'classrelay-turn-secret-0123', b'1700000000:u:12',
    /// hashlib.sha1).digest())` both give `8yrYLmAlqcYy7WP96+3iD36+krA=`.
    #[test]
    fn hmac_matches_openssl_worked_example() {
        assert_eq!(
            credential(b"classrelay-turn-secret-0123", "1700000000:u:12"),
            "8yrYLmAlqcYy7WP96+3iD36+krA="
        );
    }

    #[test]
    fn username_is_expiry_then_principal() {
        let m = minter("6h");
        let c = m.mint("u:12", 1_700_000_000 - 6 * 3600);
        assert_eq!(c.username, "1700000000:u:12");
        assert_eq!(c.expires_at, 1_700_000_000);
        assert_eq!(c.credential, "8yrYLmAlqcYy7WP96+3iD36+krA=");
        assert_eq!(
            c.urls,
            vec!["turn:127.0.0.1:3478?transport=tcp".to_string()]
        );
    }

    #[test]
    fn expiry_follows_the_ttl_and_the_clock() {
        let m = minter("45m");
        let a = m.mint("d:3", 1_000);
        assert_eq!(a.expires_at, 1_000 + 45 * 60);
        assert!(a.username.starts_with(&format!("{}:", 1_000 + 45 * 60)));
        // A later mint for the same principal expires later and has another credential.
        let b = m.mint("d:3", 2_000);
        assert_eq!(b.expires_at, 2_000 + 45 * 60);
        assert_ne!(a.credential, b.credential);
        // Another principal at the same time: another credential.
        assert_ne!(m.mint("d:4", 1_000).credential, a.credential);
    }

    #[test]
    fn odd_principals_cannot_break_the_header_or_username() {
        let m = minter("1h");
        let c = m.mint("a\"b; rel=x\r\n\u{4e2d}", 0);
        assert_eq!(c.username, "3600:a_b__rel_x___");
        assert_eq!(m.mint("", 0).username, "3600:anonymous");
        assert_eq!(
            m.mint(&"x".repeat(500), 0).username.len(),
            5 + MAX_PRINCIPAL
        );
    }

    proptest::proptest! {
        /// Whatever a token's subject holds, the username is `<expiry>:<safe principal>`,
        /// fits a quoted `Link` parameter, and its credential is the HMAC of exactly it.
        #[test]
        fn any_principal_gives_a_header_safe_username(principal in ".{0,200}", now in 0u64..4_000_000_000) {
            let m = minter("1h");
            let c = m.mint(&principal, now);
            let (exp, who) = c.username.split_once(':').unwrap();
            proptest::prop_assert_eq!(exp.parse::<u64>().unwrap(), now + 3600);
            proptest::prop_assert!(!who.is_empty() && who.chars().count() <= MAX_PRINCIPAL);
            proptest::prop_assert!(who.chars().all(|ch| ch.is_ascii_alphanumeric() || ":._@-".contains(ch)));
            let link = format!("<turn:x>; rel=\"ice-server\"; username=\"{}\"; credential=\"{}\"", c.username, c.credential);
            proptest::prop_assert!(axum::http::HeaderValue::from_str(&link).is_ok());
            proptest::prop_assert_eq!(c.credential, credential(b"classrelay-turn-secret-0123", &c.username));
        }
    }

    #[test]
    fn config_checks() {
        let mut c = TurnConfig::default();
        assert!(
            TurnMinter::from_config(&c).unwrap().is_none(),
            "off by default"
        );
        c.urls = vec!["turn:x:3478".into()];
        assert!(c.secret_bytes().is_err(), "URLs without a secret");
        c.secret = "short".into();
        let e = c.secret_bytes().unwrap_err().to_string();
        assert!(e.contains("turn.secret") && e.contains("16"), "{e}");
        c.secret = "0123456789abcdef".into();
        assert!(c.secret_bytes().is_ok());
        c.ttl = "10s".into();
        assert!(c.ttl().unwrap_err().to_string().contains("turn.ttl"));
        c.ttl = "30d".into();
        assert!(c.ttl().is_err());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("turn-secret");
        std::fs::write(&f, "  from-a-file-0123456789\n").unwrap();
        c.secret_file = Some(f.clone());
        assert!(c
            .secret_bytes()
            .unwrap_err()
            .to_string()
            .contains("not both"));
        c.secret.clear();
        assert_eq!(
            c.secret_bytes().unwrap().unwrap(),
            b"from-a-file-0123456789"
        );
        c.secret_file = Some(dir.path().join("missing"));
        assert!(c
            .secret_bytes()
            .unwrap_err()
            .to_string()
            .contains("turn.secret_file"));
    }
}
