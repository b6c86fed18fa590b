//! `application/trickle-ice-sdpfrag` bodies (RFC 8840) as used by WHIP/WHEP PATCH: trickled
//! candidates and ICE restarts. Hand-written because the format is a handful of SDP attribute
//! lines and no crate parses the fragment form on its own (str0m parses whole sessions only).

use str0m::Candidate;

/// What a PATCH body carries.
#[derive(Debug, Default)]
pub struct SdpFrag {
    /// New ICE username fragment, if the client restarts ICE.
    pub ice_ufrag: Option<String>,
    /// New ICE password, with the ufrag.
    pub ice_pwd: Option<String>,
    /// Trickled candidates.
    pub candidates: Vec<Candidate>,
    /// `a=end-of-candidates` seen.
    pub end_of_candidates: bool,
}

/// Largest number of lines accepted in one fragment.
const MAX_LINES: usize = 256;

/// Parses a fragment. Errors name the offending line.
pub fn parse(body: &str) -> Result<SdpFrag, String> {
    let mut f = SdpFrag::default();
    let mut count = 0;
    for raw in body.lines() {
        let line = raw.trim_end_matches('\r').trim();
        if line.is_empty() {
            continue;
        }
        count += 1;
        if count > MAX_LINES {
            return Err(format!("more than {MAX_LINES} lines"));
        }
        if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            f.ice_ufrag = Some(check_ice_chars(v, 4, 256, "ice-ufrag")?);
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            f.ice_pwd = Some(check_ice_chars(v, 22, 256, "ice-pwd")?);
        } else if let Some(v) = line.strip_prefix("a=candidate:") {
            let c = Candidate::from_sdp_string(&format!("candidate:{v}"))
                .map_err(|e| format!("bad candidate line `{line}`: {e}"))?;
            f.candidates.push(c);
        } else if line == "a=end-of-candidates" {
            f.end_of_candidates = true;
        } else if line.starts_with("a=") || line.starts_with("m=") || line.starts_with("c=") {
            // a=mid, a=group, m= and c= lines give context we don't need (single transport).
        } else {
            return Err(format!("not an SDP fragment line: `{line}`"));
        }
    }
    if f.ice_ufrag.is_some() != f.ice_pwd.is_some() {
        return Err("a=ice-ufrag and a=ice-pwd must come together".into());
    }
    Ok(f)
}

fn check_ice_chars(v: &str, min: usize, max: usize, what: &str) -> Result<String, String> {
    let ok = v.len() >= min
        && v.len() <= max
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "{what} must be {min}-{max} characters of [A-Za-z0-9+/]"
        ))
    }
}

/// Replaces the ICE credentials in a whole SDP (the client's original offer), so an ICE
/// restart can be applied as a re-offer with the same media.
pub fn replace_ice_credentials(sdp: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        let eol = &line[bare.len()..];
        if bare.starts_with("a=ice-ufrag:") {
            out.push_str("a=ice-ufrag:");
            out.push_str(ufrag);
            out.push_str(eol);
        } else if bare.starts_with("a=ice-pwd:") {
            out.push_str("a=ice-pwd:");
            out.push_str(pwd);
            out.push_str(eol);
        } else if bare.starts_with("a=candidate:") || bare == "a=end-of-candidates" {
            // Old candidates belong to the old ICE generation.
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Builds the answer fragment for an ICE restart from the server's new SDP answer.
pub fn answer_fragment(answer_sdp: &str) -> String {
    let mut out = String::new();
    let mut seen_ufrag = false;
    let mut seen_pwd = false;
    let mut cands: Vec<&str> = Vec::new();
    for line in answer_sdp.lines() {
        let l = line.trim_end_matches('\r');
        if l.starts_with("a=ice-ufrag:") && !seen_ufrag {
            seen_ufrag = true;
            out.push_str(l);
            out.push_str("\r\n");
        } else if l.starts_with("a=ice-pwd:") && !seen_pwd {
            seen_pwd = true;
            out.push_str(l);
            out.push_str("\r\n");
        } else if l.starts_with("a=candidate:") && !cands.contains(&l) {
            cands.push(l);
        }
    }
    for c in cands {
        out.push_str(c);
        out.push_str("\r\n");
    }
    out.push_str("a=end-of-candidates\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_restart_and_candidates() {
        let f = parse(
            "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
             a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0\r\n\
             a=end-of-candidates\r\n",
        )
        .unwrap();
        assert_eq!(f.ice_ufrag.as_deref(), Some("EsAw"));
        assert_eq!(f.candidates.len(), 1);
        assert!(f.end_of_candidates);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("hello world").is_err());
        assert!(parse("a=ice-ufrag:abcd\r\n").is_err(), "ufrag without pwd");
        assert!(parse("a=candidate:nonsense").is_err());
        assert!(parse("a=ice-ufrag:a b\r\na=ice-pwd:xxxxxxxxxxxxxxxxxxxxxxxx\r\n").is_err());
        let many = "a=end-of-candidates\r\n".repeat(300);
        assert!(parse(&many).is_err());
    }

    #[test]
    fn replaces_credentials_only() {
        let sdp = "v=0\r\na=ice-ufrag:old1\r\na=ice-pwd:oldpwdoldpwdoldpwdoldpwd\r\na=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\na=mid:0\r\n";
        let s = replace_ice_credentials(sdp, "new1", "newpwdnewpwdnewpwdnewpwd");
        assert!(s.contains("a=ice-ufrag:new1\r\n"));
        assert!(s.contains("a=ice-pwd:newpwdnewpwdnewpwdnewpwd\r\n"));
        assert!(!s.contains("old"));
        assert!(!s.contains("candidate"));
        assert!(s.contains("a=mid:0\r\n"));
    }
}
