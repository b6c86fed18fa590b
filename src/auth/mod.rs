//! Tokens: HMAC-signed JWTs that grant publish or subscribe rights in one room.
//!
//! WHIP/WHEP requests carry them as `Authorization: Bearer …`; `classrelay token` prints them
//! for scripts and OBS, and the lesson API mints them for people and classroom devices
//! ([`people`]: roles, password login, device tokens). This module only signs and checks; it
//! never touches the media plane.

pub mod first_admin;
pub mod limit;
pub mod people;
pub mod scope;
pub mod turn;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token allows in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grant {
    /// Send media (WHIP).
    Publish,
    /// Receive media (WHEP).
    Subscribe,
}

impl std::str::FromStr for Grant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "publish" => Ok(Grant::Publish),
            "subscribe" => Ok(Grant::Subscribe),
            _ => Err(format!("`{s}` is not a grant (publish or subscribe)")),
        }
    }
}

/// The claims inside a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Who: a display identity (teacher, classroom device, script).
    pub sub: String,
    /// The room the grants apply to.
    pub room: String,
    /// What is allowed there.
    pub grants: Vec<Grant>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// The lesson this token was issued for (tokens from the lesson API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesson: Option<i64>,
    /// The participant in that lesson: "c:<classroom id>" for a classroom, "t:<teacher id>"
    /// for the hub teacher, "u:<user id>" for observers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// The principal the lesson API issued the token to ("u:12", "d:3"): WHIP/WHEP refuse it
    /// once that user is disabled or that device revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
    /// The principal's token version when it was issued (see `people::token_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<i64>,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// Signature, format or claims are wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token's lifetime is over.
    #[error("token expired")]
    Expired,
    /// Valid token, but for another room.
    #[error("token is for room `{0}`")]
    WrongRoom(String),
    /// Valid token for this room, without the needed grant.
    #[error("token does not grant {0:?}")]
    MissingGrant(Grant),
}

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    enc: EncodingKey,
    dec: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

/// Seconds since the epoch by the system clock (what token expiry is checked against).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenKeys {
    /// Keys from a shared secret.
    pub fn new(secret: &[u8]) -> Self {
        TokenKeys {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
        }
    }

    /// Makes a token for `room` with `grants`, valid for `ttl`.
    pub fn mint(&self, sub: &str, room: &str, grants: &[Grant], ttl: Duration) -> String {
        let iat = now_secs();
        let claims = Claims {
            sub: sub.to_string(),
            room: room.to_string(),
            grants: grants.to_vec(),
            exp: iat + ttl.as_secs(),
            iat,
            lesson: None,
            part: None,
            who: None,
            ver: None,
        };
        self.mint_claims(&claims)
    }

    /// Signs `claims` as they are.
    pub fn mint_claims(&self, claims: &Claims) -> String {
        // Encoding HS256 with a valid key cannot fail: the claims are plain serde structs.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.enc)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    /// Checks a token's signature and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.validate_exp = true;
        v.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<Claims>(token, &self.dec, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })
    }

    /// Checks a bearer header value for `grant` in `room`.
    pub fn authorize(
        &self,
        header: Option<&str>,
        room: &str,
        grant: Grant,
    ) -> Result<Claims, AuthError> {
        let h = header.ok_or(AuthError::Missing)?;
        let token = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .ok_or(AuthError::Missing)?
            .trim();
        let claims = self.verify(token)?;
        if claims.room != room {
            return Err(AuthError::WrongRoom(claims.room));
        }
        if !claims.grants.contains(&grant) {
            return Err(AuthError::MissingGrant(grant));
        }
        Ok(claims)
    }
}

pub use crate::config::MIN_SECRET_BYTES;

/// Reads the signing secret: the configured one, else `<dir>/secret`, else a new random one
/// written there (created 0600, the directory 0700 when it is made here). Returns the secret
/// and whether it was just generated. A secret file shorter than [`MIN_SECRET_BYTES`] is an
/// `InvalidData` error.
pub fn load_or_create_secret(configured: &str, dir: &Path) -> std::io::Result<(Vec<u8>, bool)> {
    if !configured.is_empty() {
        return Ok((configured.as_bytes().to_vec(), false));
    }
    let path = dir.join("secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= MIN_SECRET_BYTES => {
            return Ok((s.trim().as_bytes().to_vec(), false))
        }
        Ok(s) if !s.trim().is_empty() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} holds {} bytes; a signing secret needs at least {MIN_SECRET_BYTES} \
                     (remove the file to have one generated)",
                    path.display(),
                    s.trim().len()
                ),
            ))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    crate::datadir::create_dir(dir)?;
    let bytes: [u8; 32] = rand::random();
    let secret = hex::encode(bytes);
    // Written aside and renamed, so a concurrent reader never sees half a secret.
    let tmp = dir.join("secret.tmp");
    crate::datadir::write_private(&tmp, secret.as_bytes())?;
    std::fs::rename(&tmp, &path)?;
    Ok((secret.into_bytes(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_refusals() {
        let k = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let t = k.mint("obs", "r1", &[Grant::Publish], Duration::from_secs(60));
        let bearer = format!("Bearer {t}");
        assert_eq!(
            k.authorize(Some(&bearer), "r1", Grant::Publish)
                .unwrap()
                .sub,
            "obs"
        );
        assert_eq!(
            k.authorize(Some(&bearer), "r2", Grant::Publish)
                .unwrap_err(),
            AuthError::WrongRoom("r1".into())
        );
        assert_eq!(
            k.authorize(Some(&bearer), "r1", Grant::Subscribe)
                .unwrap_err(),
            AuthError::MissingGrant(Grant::Subscribe)
        );
        assert_eq!(
            k.authorize(None, "r1", Grant::Publish).unwrap_err(),
            AuthError::Missing
        );
        let other = TokenKeys::new(b"another-secret-another-secret-xx");
        assert!(matches!(
            other.authorize(Some(&bearer), "r1", Grant::Publish),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn expired_is_distinct() {
        let k = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let claims = Claims {
            sub: "x".into(),
            room: "r".into(),
            grants: vec![Grant::Publish],
            exp: now_secs() - 10,
            iat: now_secs() - 20,
            lesson: None,
            part: None,
            who: None,
            ver: None,
        };
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k.enc).unwrap();
        assert_eq!(k.verify(&t).unwrap_err(), AuthError::Expired);
    }

    #[test]
    fn secret_is_generated_once() {
        let d = tempfile::tempdir().unwrap();
        let (a, new_a) = load_or_create_secret("", d.path()).unwrap();
        let (b, new_b) = load_or_create_secret("", d.path()).unwrap();
        assert!(new_a && !new_b);
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn a_short_secret_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("secret"), "short\n").unwrap();
        let e = load_or_create_secret("", d.path()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("32"), "{e}");
    }
}
