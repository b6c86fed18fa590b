//! Reverse-proxy mode: when a request comes from an address in `http.trusted_proxies`, its
//! `X-Forwarded-For` and `X-Forwarded-Proto` are believed, so handlers see the real client in
//! `ConnectInfo<SocketAddr>` and [`ClientScheme`] says whether the client used HTTPS.
//!
//! It must never believe those headers from anyone else: a client talking to us directly
//! could otherwise pick its own address (and dodge a per-address limit).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use super::serve::ClientScheme;
use super::AppState;
pub use crate::config::parse_net;

/// The trusted proxy nets of a configuration (validated at start, so none fails here).
pub fn trusted_nets(list: &[String]) -> Vec<IpNet> {
    list.iter().filter_map(|s| parse_net(s)).collect()
}

fn trusted(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&ip))
}

/// The client behind a chain of proxies: the right-most `X-Forwarded-For` entry that is not
/// itself a trusted proxy (entries left of it could have been written by the client).
pub fn forwarded_client(nets: &[IpNet], xff: &[&str]) -> Option<IpAddr> {
    let hops: Vec<IpAddr> = xff
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| h.parse::<IpAddr>().ok())
        .collect::<Option<Vec<_>>>()?;
    let mut last = None;
    for ip in hops.into_iter().rev() {
        last = Some(ip);
        if !trusted(nets, ip) {
            break;
        }
    }
    last
}

/// Middleware: replaces `ConnectInfo` and [`ClientScheme`] from a trusted proxy's headers.
pub async fn forwarded(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    apply_forwarded(&state.edge.trusted_proxies, &mut req);
    next.run(req).await
}

/// What [`forwarded`] does to a request, given the trusted nets.
pub fn apply_forwarded(nets: &[IpNet], req: &mut Request) {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(peer) = peer.filter(|p| !nets.is_empty() && trusted(nets, p.ip())) {
        let h = req.headers();
        let xff: Vec<&str> = h
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let client = forwarded_client(nets, &xff);
        let proto = h
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        if let Some(ip) = client {
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(ip, 0)));
        } else if !xff.is_empty() {
            tracing::debug!(%peer, "unparseable X-Forwarded-For from a trusted proxy: ignored");
        }
        match proto.as_deref() {
            Some("https") => {
                req.extensions_mut().insert(ClientScheme { https: true });
            }
            Some("http") => {
                req.extensions_mut().insert(ClientScheme { https: false });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(l: &[&str]) -> Vec<IpNet> {
        l.iter().map(|s| parse_net(s).unwrap()).collect()
    }

    #[test]
    fn parses_nets_and_bare_addresses() {
        assert!(parse_net("127.0.0.1/32").is_some());
        assert!(parse_net("10.0.0.0/8").is_some());
        assert!(parse_net("::1").is_some());
        assert!(parse_net("192.168.1.7").is_some());
        assert!(parse_net("localhost").is_none());
        assert!(parse_net("10.0.0.0/33").is_none());
    }

    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        let n = nets(&["10.0.0.0/8"]);
        // The client wrote a fake first entry; the proxy appended what it saw.
        assert_eq!(
            forwarded_client(&n, &["6.6.6.6, 203.0.113.9"]),
            Some("203.0.113.9".parse().unwrap())
        );
        // Two trusted proxies in a row are skipped.
        assert_eq!(
            forwarded_client(&n, &["203.0.113.9, 10.1.1.1", "10.2.2.2"]),
            Some("203.0.113.9".parse().unwrap())
        );
        // Garbage: not believed at all.
        assert_eq!(forwarded_client(&n, &["203.0.113.9, nonsense"]), None);
        assert_eq!(forwarded_client(&n, &[]), None);
    }

    fn request(peer: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = axum::http::Request::builder().uri("/api/login");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut req = b.body(axum::body::Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req.extensions_mut().insert(ClientScheme { https: false });
        req
    }

    fn seen(req: &Request) -> (SocketAddr, bool) {
        (
            req.extensions().get::<ConnectInfo<SocketAddr>>().unwrap().0,
            req.extensions().get::<ClientScheme>().unwrap().https,
        )
    }

    #[test]
    fn a_trusted_proxy_sets_the_client_address_and_scheme() {
        let n = nets(&["127.0.0.1/32"]);
        let mut req = request(
            "127.0.0.1:5000",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
        );
        apply_forwarded(&n, &mut req);
        assert_eq!(seen(&req), ("203.0.113.9:0".parse().unwrap(), true));
    }

    #[test]
    fn anyone_else_keeps_their_own_address() {
        let n = nets(&["10.0.0.0/8"]);
        let mut req = request(
            "127.0.0.1:5000",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
        );
        apply_forwarded(&n, &mut req);
        assert_eq!(seen(&req), ("127.0.0.1:5000".parse().unwrap(), false));
        // No trusted proxies configured at all: same.
        let mut req = request("127.0.0.1:5000", &[("x-forwarded-for", "203.0.113.9")]);
        apply_forwarded(&[], &mut req);
        assert_eq!(seen(&req), ("127.0.0.1:5000".parse().unwrap(), false));
    }

    #[test]
    fn mapped_v4_peers_match_v4_nets() {
        let n = nets(&["127.0.0.1/32"]);
        assert!(trusted(&n, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(!trusted(&n, "::1".parse().unwrap()));
    }
}
