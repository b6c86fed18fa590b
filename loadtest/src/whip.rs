//! WHIP/WHEP over HTTP for simulated peers: POST the offer, add the peer with the answer.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};

use crate::netem::{LinkProfile, LinkRelay};
use crate::swarm::{Offer, PeerHandle, Swarm};

/// The server's reply to an offer.
#[derive(Debug, Clone)]
pub struct Created {
    /// Absolute session URL.
    pub url: String,
    /// ETag.
    pub etag: String,
    /// SDP answer.
    pub answer: String,
}

/// A WHIP/WHEP POST that did not get `201 Created`. Callers can downcast the
/// `anyhow::Error` of [`post_offer`] to it to check the status.
#[derive(Debug, Clone)]
pub struct HttpStatusError {
    /// The URL posted to.
    pub url: String,
    /// The status received.
    pub status: u16,
    /// The response body (a problem+json document from classrelay).
    pub body: String,
}

impl std::fmt::Display for HttpStatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "POST {}: HTTP {}: {}", self.url, self.status, self.body)
    }
}

impl std::error::Error for HttpStatusError {}

/// `scheme://host:port` of a URL (what a path-absolute reference resolves against).
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Resolves a `Location` header against `base_url` (it is normally a path).
pub fn resolve_location(base_url: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else if let Some(path) = location.strip_prefix('/') {
        format!("{}/{path}", origin_of(base_url))
    } else {
        format!("{}/{location}", base_url.trim_end_matches('/'))
    }
}

/// POSTs `sdp` to `url` with a bearer token as WHIP/WHEP does. Anything but `201 Created`
/// with a `Location` header and an SDP body (`application/sdp` when the type is given) is
/// an error ([`HttpStatusError`] for a status other than 201).
pub async fn post_offer(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    sdp: &str,
) -> Result<Created> {
    let resp = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/sdp")
        .body(sdp.to_string())
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (location, etag, content_type) =
        (header("location"), header("etag"), header("content-type"));
    let body = resp.text().await.unwrap_or_default();
    if status != 201 {
        return Err(HttpStatusError {
            url: url.to_string(),
            status,
            body,
        }
        .into());
    }
    let location = location.with_context(|| format!("POST {url}: 201 without Location"))?;
    if let Some(ct) = content_type {
        if !ct.starts_with("application/sdp") {
            bail!("POST {url}: answer has Content-Type {ct}, expected application/sdp");
        }
    }
    if !body.starts_with("v=0") {
        bail!("POST {url}: the body is not an SDP answer: {body:?}");
    }
    Ok(Created {
        url: resolve_location(url, &location),
        etag: etag.unwrap_or_default(),
        answer: body,
    })
}

/// Sends `offer` to `endpoint` (a full `/whip/{room}` or `/whep/{room}` URL) and adds the
/// peer to the swarm.
pub async fn join(
    swarm: &Swarm,
    http: &reqwest::Client,
    endpoint: &str,
    token: &str,
    offer: Offer,
) -> Result<PeerHandle> {
    let c = post_offer(http, endpoint, token, &offer.sdp).await?;
    swarm.add(offer, &c.answer, c.url, c.etag)
}

/// Performs an ICE restart of `peer` on a new local port through WHIP/WHEP PATCH.
pub async fn ice_restart(
    swarm: &Swarm,
    http: &reqwest::Client,
    token: &str,
    peer: &PeerHandle,
) -> Result<String> {
    let (ufrag, pwd) = swarm.restart_ice(peer)?;
    let resp = http
        .patch(&peer.session_url)
        .bearer_auth(token)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", "*")
        .body(format!("a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n"))
        .send()
        .await?;
    let status = resp.status();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let frag = resp.text().await?;
    if status.as_u16() != 200 {
        bail!("ICE restart PATCH: {status}: {frag}");
    }
    swarm.finish_restart(peer, &frag)?;
    Ok(etag)
}

/// The address of an `a=candidate:` line if it is a UDP host candidate, and its fields.
fn udp_host_candidate(line: &str) -> Option<(SocketAddr, Vec<&str>)> {
    let fields: Vec<&str> = line.strip_prefix("a=candidate:")?.split(' ').collect();
    // foundation component transport priority address port "typ" type ...
    if fields.len() < 8
        || !fields[2].eq_ignore_ascii_case("udp")
        || fields[6] != "typ"
        || fields[7] != "host"
    {
        return None;
    }
    let addr = SocketAddr::new(fields[4].parse().ok()?, fields[5].parse().ok()?);
    Some((addr, fields))
}

/// The first UDP host candidate of an SDP (the server's media address, in an answer).
pub fn host_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines()
        .find_map(|l| udp_host_candidate(l.trim_end()).map(|(a, _)| a))
}

/// Rewrites an answer so the peer sends all its media to `to` (a relay): the first UDP host
/// candidate gets `to`'s address and port, every other candidate line is removed (a relay
/// forwards to one server address, and no path may bypass it).
pub fn redirect_answer(answer: &str, to: SocketAddr) -> Result<String> {
    let mut out = String::with_capacity(answer.len());
    let mut redirected = false;
    for line in answer.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        let ending = &line[content.len()..];
        if !content.starts_with("a=candidate:") {
            out.push_str(line);
            continue;
        }
        if redirected {
            continue;
        }
        let Some((_, mut fields)) = udp_host_candidate(content) else {
            continue;
        };
        let (ip, port) = (to.ip().to_string(), to.port().to_string());
        fields[4] = &ip;
        fields[5] = &port;
        out.push_str("a=candidate:");
        out.push_str(&fields.join(" "));
        out.push_str(ending);
        redirected = true;
    }
    if !redirected {
        bail!("the answer has no UDP host candidate to redirect");
    }
    Ok(out)
}

/// Like [`join`], but the peer reaches the server through the relay at `relay_addr` (whose
/// upstream must be the server's media address): the answer's host candidate is rewritten
/// before the peer is added. The handle keeps the server's answer as it was.
pub async fn join_via(
    swarm: &Swarm,
    http: &reqwest::Client,
    endpoint: &str,
    token: &str,
    offer: Offer,
    relay_addr: SocketAddr,
) -> Result<PeerHandle> {
    let c = post_offer(http, endpoint, token, &offer.sdp).await?;
    let answer = redirect_answer(&c.answer, relay_addr)?;
    let mut peer = swarm.add(offer, &answer, c.url, c.etag)?;
    peer.answer = c.answer;
    Ok(peer)
}

/// Like [`join`], over an emulated link of its own: starts a [`LinkRelay`] towards the
/// media address the server answered with (`up` shapes what the peer sends, `down` what it
/// receives) and routes the peer through it. Keep the relay alive as long as the peer.
pub async fn join_through(
    swarm: &Swarm,
    http: &reqwest::Client,
    endpoint: &str,
    token: &str,
    offer: Offer,
    up: LinkProfile,
    down: LinkProfile,
) -> Result<(PeerHandle, LinkRelay)> {
    let c = post_offer(http, endpoint, token, &offer.sdp).await?;
    let server = host_candidate(&c.answer).context("the answer has no UDP host candidate")?;
    let relay = LinkRelay::start(server, up, down)?;
    let answer = redirect_answer(&c.answer, relay.addr())?;
    let mut peer = swarm.add(offer, &answer, c.url, c.etag)?;
    peer.answer = c.answer;
    Ok((peer, relay))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
        a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n\
        a=candidate:2 1 udp 2130706431 127.0.0.1 40001 typ host\r\n\
        a=candidate:3 1 tcp 1518280447 127.0.0.1 9 typ host tcptype passive\r\n\
        a=end-of-candidates\r\n";

    #[test]
    fn answer_is_redirected_to_the_relay_only() {
        assert_eq!(
            host_candidate(ANSWER),
            Some("127.0.0.1:40000".parse().unwrap())
        );
        let out = redirect_answer(ANSWER, "127.0.0.1:5555".parse().unwrap()).unwrap();
        assert_eq!(
            out,
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
             a=candidate:1 1 udp 2130706431 127.0.0.1 5555 typ host\r\n\
             a=end-of-candidates\r\n"
        );
        assert!(redirect_answer("v=0\r\n", "127.0.0.1:1".parse().unwrap()).is_err());
    }
}
