//! The one error type at the HTTP edge: every failure becomes `application/problem+json`
//! (RFC 9457) with a stable `type`, the right status, and the headers the status calls for.
//! A leaf: it knows the error enums of auth and store and must never import http, signal,
//! school or media.

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Prefix of every problem `type`.
pub const PROBLEM_BASE: &str = "urn:classrelay:problem:";

/// An HTTP API failure.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable kind (the suffix of `type`).
    pub kind: &'static str,
    /// What happened, for people.
    pub detail: String,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
    /// Extra members of the problem object (e.g. `errors` of a rejected CSV import).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

/// An error (RFC 9457 problem details, `application/problem+json`). Some problems carry more
/// members: a rejected CSV import `errors` (`[{row, column, message}]`) and `error_count`, a
/// reached limit `limit`, an oversized upload `max_rows` or `max_bytes`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Problem<'a> {
    /// `urn:classrelay:problem:` and a stable kind (`not-found`, `invalid-field`, …).
    #[serde(rename = "type")]
    ty: String,
    /// The status's reason phrase.
    title: &'a str,
    /// The HTTP status.
    status: u16,
    /// What happened, for people.
    detail: &'a str,
    /// The extra members named above (any JSON).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    extra: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    /// A problem with `status`, stable `kind` and `detail`.
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            detail: detail.into(),
            retry_after: None,
            extra: None,
        }
    }

    /// 400.
    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, detail)
    }

    /// 404.
    pub fn not_found(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, detail)
    }

    /// 403.
    pub fn forbidden(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, kind, detail)
    }

    /// 401 for the school API (login session or device token).
    pub fn unauthorized(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, kind, detail)
    }

    /// 422: the body parsed but a field is wrong.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", detail)
    }

    /// 500, logged.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (see the server log)",
        )
    }

    /// 429 with `Retry-After` (seconds until the next attempt is allowed).
    pub fn too_many_requests(
        kind: &'static str,
        detail: impl Into<String>,
        retry_after: u64,
    ) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, kind, detail).with_retry_after(retry_after)
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(detail: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", detail)
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.kind, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = Problem {
            ty: format!("{PROBLEM_BASE}{}", self.kind),
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
            extra: self.extra.as_ref(),
        };
        // Serializing a struct of strings and a number cannot fail.
        let json = serde_json::to_vec(&body).expect("problem serializes");
        let mut resp = (self.status, json).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            let v = if self.kind == "token-missing" {
                "Bearer realm=\"classrelay\""
            } else {
                "Bearer realm=\"classrelay\", error=\"invalid_token\""
            };
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError::*;
        match &e {
            Missing => Self::new(StatusCode::UNAUTHORIZED, "token-missing", e.to_string()),
            Invalid(_) => Self::new(StatusCode::UNAUTHORIZED, "token-invalid", e.to_string()),
            Expired => Self::new(StatusCode::UNAUTHORIZED, "token-expired", e.to_string()),
            WrongRoom(_) => Self::new(StatusCode::FORBIDDEN, "token-wrong-room", e.to_string()),
            MissingGrant(_) => Self::new(StatusCode::FORBIDDEN, "grant-missing", e.to_string()),
        }
    }
}

impl From<crate::ids::BadRoomName> for ApiError {
    fn from(e: crate::ids::BadRoomName) -> Self {
        Self::bad_request("bad-room-name", e.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    /// The database's own words (table and constraint names, SQL state, driver text) stay in
    /// the log: a page shows a sentence for the problem `type` (web/lib/problems.js), and a
    /// client learns the kind, never the schema.
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError::*;
        match &e {
            NotFound(what) => Self::not_found("not-found", format!("{what} not found")),
            Duplicate(_) => {
                tracing::info!("store refused a duplicate: {e}");
                Self::new(
                    StatusCode::CONFLICT,
                    "duplicate",
                    "a record with the same key (code or name) already exists",
                )
            }
            Reference(_) => {
                tracing::info!("store refused a reference: {e}");
                Self::new(
                    StatusCode::CONFLICT,
                    "reference",
                    "a referenced record is missing, or the record is still in use",
                )
            }
            Check(_) => {
                tracing::info!("store refused a value: {e}");
                Self::invalid("a value is not allowed here")
            }
            Migrate(_) | Db(_) => {
                tracing::error!("store: {e}");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "the database is unavailable; try again shortly",
                )
                .with_retry_after(5)
            }
        }
    }
}

impl ApiError {
    /// Adds a member to the problem object.
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extra
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value);
        self
    }

    /// Adds `Retry-After`.
    pub fn with_retry_after(mut self, s: u64) -> Self {
        self.retry_after = Some(s);
        self
    }
}

/// A JSON body whose rejections are problem documents.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(ApiError::new(e.status(), "bad-json", e.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    /// What each database refusal tells a client: its kind and a fixed sentence, never the
    /// driver's text (SQLite's and PostgreSQL's own wording, table and constraint names).
    #[test]
    fn database_words_never_reach_a_client() {
        let raw = [
            (
                StoreError::Duplicate("UNIQUE constraint failed: schools.code".into()),
                StatusCode::CONFLICT,
                "duplicate",
            ),
            (
                StoreError::Reference(
                    "update or delete on table \"schools\" violates foreign key constraint".into(),
                ),
                StatusCode::CONFLICT,
                "reference",
            ),
            (
                StoreError::Check("CHECK constraint failed: kind IN ('hub')".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
            ),
            (
                StoreError::Db(sqlx::Error::Protocol("no such table: schools".into())),
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
            ),
        ];
        for (e, status, kind) in raw {
            let a = ApiError::from(e);
            assert_eq!((a.status, a.kind), (status, kind));
            for word in [
                "constraint",
                "schools",
                "table",
                "UNIQUE",
                "CHECK",
                "violates",
            ] {
                assert!(
                    !a.detail.contains(word),
                    "{kind}: {:?} names {word}",
                    a.detail
                );
            }
        }
    }
}
