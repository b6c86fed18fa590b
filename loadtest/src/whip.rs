//! WHIP/WHEP over HTTP for simulated peers: POST the offer, add the peer with the answer.

use anyhow::{bail, Context, Result};

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

/// POSTs `sdp` to `url` with a bearer token; expects 201.
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
    let status = resp.status();
    if status.as_u16() != 201 {
        let body = resp.text().await.unwrap_or_default();
        bail!("POST {url}: {status}: {body}");
    }
    let h = resp.headers().clone();
    let location = h
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("201 without Location")?
        .to_string();
    let etag = h
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let base = url.split('/').take(3).collect::<Vec<_>>().join("/");
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    Ok(Created {
        url,
        etag,
        answer: resp.text().await?,
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
