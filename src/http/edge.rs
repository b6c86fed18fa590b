//! Request hygiene at the HTTP edge, before any handler: a deadline per request, the origin
//! check on cookie-authenticated writes (CSRF), and the security headers of every response
//! (`Secure` session cookie and HSTS over HTTPS, the pages' Content-Security-Policy).
//!
//! It decides nothing about who may do what (that is the API guard's job, in
//! `school::api`); it only refuses requests that no legitimate page would send.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

use super::serve::ClientScheme;
use super::AppState;
use crate::config::Config;
use crate::problem::ApiError;

/// What the edge middleware needs from the configuration, worked out once at start.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Deadline for answering a request (event streams exempt).
    pub request_timeout: Duration,
    /// Origins besides the request's own host that cookie-authenticated writes may come from
    /// (`http.public_url`, and `http.cors_origins` other than `*`), normalised.
    pub extra_origins: Vec<String>,
    /// `http.public_url` is `https://…`: the session cookie is `Secure` whatever the hop.
    pub public_https: bool,
    /// `http.trusted_proxies`, parsed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl EdgeSettings {
    /// From a validated configuration.
    pub fn new(config: &Config) -> Self {
        let h = &config.http;
        let mut extra_origins: Vec<String> = h
            .cors_origins
            .iter()
            .filter(|o| o.as_str() != "*")
            .filter_map(|o| normalise_origin(o))
            .collect();
        if let Some(u) = h.public_url.as_deref().and_then(normalise_origin) {
            extra_origins.push(u);
        }
        EdgeSettings {
            request_timeout: Duration::from_millis(h.request_timeout_ms),
            extra_origins,
            public_https: h
                .public_url
                .as_deref()
                .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://")),
            trusted_proxies: super::proxy::trusted_nets(&h.trusted_proxies),
        }
    }
}

/// `scheme://host[:port]` in lower case without a default port or a path, or `None` if `s`
/// is not an http(s) URL.
fn normalise_origin(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase();
    let (scheme, rest) = s.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(with_scheme(scheme, authority))
}

fn with_scheme(scheme: &str, authority: &str) -> String {
    let default = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default).unwrap_or(authority);
    format!("{scheme}://{authority}")
}

/// Lesson event streams (server-sent events) stay open for the whole lesson.
fn is_event_stream(path: &str) -> bool {
    path.starts_with("/api/lessons/") && path.ends_with("/events")
}

fn is_unsafe(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The API credential of this request is the session cookie (no `Authorization` header, which
/// the guard would use instead).
fn cookie_authenticated(h: &HeaderMap) -> bool {
    if h.contains_key(header::AUTHORIZATION) {
        return false;
    }
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, _)| k == crate::school::api::COOKIE)
}

/// Whether a cookie-authenticated write comes from one of our own pages.
fn same_origin(edge: &EdgeSettings, h: &HeaderMap, https: bool) -> Result<(), &'static str> {
    if let Some(origin) = h.get(header::ORIGIN) {
        let origin = origin
            .to_str()
            .ok()
            .and_then(normalise_origin)
            .ok_or("the Origin header is not an http(s) origin")?;
        let own = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|host| {
                with_scheme(
                    if https { "https" } else { "http" },
                    &host.to_ascii_lowercase(),
                )
            });
        if own.as_deref() == Some(origin.as_str()) || edge.extra_origins.contains(&origin) {
            return Ok(());
        }
        return Err("the request comes from another origin's page");
    }
    match h
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        // No Origin and no fetch metadata: not a browser, so not a forged browser request.
        None | Some("same-origin") | Some("none") => Ok(()),
        Some(_) => Err("the request comes from another site's page (Sec-Fetch-Site)"),
    }
}

/// Middleware (outside the router): deadline, origin check, response security headers.
pub async fn edge(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let edge = &state.edge;
    let https = req
        .extensions()
        .get::<ClientScheme>()
        .is_some_and(|s| s.https);
    let path = req.uri().path();
    if is_unsafe(req.method()) && path.starts_with("/api/") && cookie_authenticated(req.headers()) {
        if let Err(why) = same_origin(edge, req.headers(), https) {
            return with_headers(
                ApiError::forbidden("cross-origin", format!("{why}; refused (CSRF protection)"))
                    .into_response(),
                https,
                edge.public_https,
            );
        }
    }
    let resp = if is_event_stream(path) {
        // Only the response head is under a deadline anyway (a body streams after it), but an
        // event stream's head may wait on the database like any other; keep it unbounded.
        next.run(req).await
    } else {
        match tokio::time::timeout(edge.request_timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => {
                let mut r = ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request-timeout",
                    format!(
                        "the request was not complete and answered within {} ms",
                        edge.request_timeout.as_millis()
                    ),
                )
                .into_response();
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                r
            }
        }
    };
    with_headers(resp, https, edge.public_https)
}

/// HSTS lifetime sent over HTTPS: one year.
const HSTS: &str = "max-age=31536000";

fn with_headers(mut resp: Response, https: bool, public_https: bool) -> Response {
    let h = resp.headers_mut();
    if https || public_https {
        // Every cookie we set is the session cookie; over HTTPS it must never travel in clear.
        let cookies: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
        if !cookies.is_empty() {
            h.remove(header::SET_COOKIE);
            for c in cookies {
                let secure = match c.to_str() {
                    Ok(s) if !s.to_ascii_lowercase().contains("; secure") => {
                        HeaderValue::from_str(&format!("{s}; Secure")).unwrap_or(c)
                    }
                    _ => c,
                };
                h.append(header::SET_COOKIE, secure);
            }
        }
    }
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// The Content-Security-Policy of a page: scripts only from this server, plus the page's own
/// inline scripts by hash; no framing, plugins or foreign connections.
pub fn page_csp(path: &str) -> HeaderValue {
    static BY_PAGE: LazyLock<HashMap<&'static str, HeaderValue>> = LazyLock::new(|| {
        super::PAGES
            .iter()
            .filter(|(_, ct, _)| ct.starts_with("text/html"))
            .map(|(p, _, body)| (*p, csp_for(body)))
            .collect()
    });
    BY_PAGE.get(path).cloned().unwrap_or_else(|| csp_for(""))
}

fn csp_for(html: &str) -> HeaderValue {
    let hashes: String = inline_scripts(html)
        .map(|s| {
            let d = Sha256::digest(s.as_bytes());
            format!(
                " 'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(d)
            )
        })
        .collect();
    let v = format!(
        "default-src 'self'; script-src 'self'{hashes}; style-src 'self'; \
         img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    // Base64 and fixed ASCII only.
    HeaderValue::from_str(&v).expect("CSP is visible ASCII")
}

/// The text of each `<script>` element without a `src` attribute.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || loop {
        let start = rest.find("<script")?;
        let tag_end = start + rest[start..].find('>')?;
        let tag = &rest[start..tag_end];
        let body_start = tag_end + 1;
        let body_end = body_start + rest[body_start..].find("</script>")?;
        let body = &rest[body_start..body_end];
        rest = &rest[body_end + "</script>".len()..];
        if !tag.contains(" src=") {
            return Some(body);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_normalise() {
        assert_eq!(
            normalise_origin("HTTPS://Relay.Example:443/x").as_deref(),
            Some("https://relay.example")
        );
        assert_eq!(
            normalise_origin("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(normalise_origin("null"), None);
        assert_eq!(normalise_origin("file:///x"), None);
        assert_eq!(normalise_origin("http://u@evil"), None);
    }

    #[test]
    fn inline_scripts_are_found_and_external_ones_skipped() {
        let html = "<script src=\"/a.js\"></script><script type=\"module\">\n  x();\n</script>";
        let found: Vec<&str> = inline_scripts(html).collect();
        assert_eq!(found, vec!["\n  x();\n"]);
    }

    #[test]
    fn every_page_with_an_inline_script_has_its_hash() {
        for (p, ct, body) in super::super::PAGES {
            if !ct.starts_with("text/html") {
                continue;
            }
            let csp = page_csp(p);
            let csp = csp.to_str().unwrap();
            assert_eq!(
                csp.matches("'sha256-").count(),
                inline_scripts(body).count(),
                "{p}"
            );
            assert!(csp.contains("frame-ancestors 'none'"));
            assert!(!csp.contains("unsafe-inline"));
        }
    }
}
