//! Subscribers for servers that make the offer themselves (Janus's Streaming plugin sends a
//! JSEP offer after `watch`), as opposed to WHEP where the subscriber offers.
//!
//! The peer built here is the same `SimPeer` with the same `Role::Subscriber` as
//! [`Swarm::subscriber_offer`] builds, so it counts packets, keyframes and sequence gaps into
//! the same [`PeerStats`] fields and figures from both servers compare one to one. It lives in
//! a child module of `swarm` to reach that private machinery without widening its visibility.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use anyhow::{Context, Result};
use str0m::change::SdpOffer;
use str0m::media::Mid;
use str0m::rtp::Extension;
use str0m::{Candidate, Rtc};

use super::{PeerHandle, Role, Swarm, ABS_CAPTURE_TIME_ID};

/// The mids of the offer's video m-lines (what the subscriber counts as video).
fn video_mids(offer_sdp: &str) -> Vec<Mid> {
    let mut in_video = false;
    let mut mids = Vec::new();
    for line in offer_sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            in_video = m.starts_with("video ");
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            if in_video {
                mids.push(Mid::from(mid));
            }
        }
    }
    mids
}

impl Swarm {
    /// Answers a server's offer with a receive-only subscriber bound to a fresh UDP port on
    /// `bind`, and hands the peer to the swarm thread at once (an answerer has nothing left to
    /// wait for; ICE checks start and are retried until the server has the answer).
    ///
    /// Returns the peer (its `session_url` and `etag` are empty: the caller owns the
    /// signalling session) and the answer SDP to send back.
    pub fn subscriber_answer(&self, offer_sdp: &str, bind: IpAddr) -> Result<(PeerHandle, String)> {
        let offer = SdpOffer::from_sdp_string(offer_sdp).context("offer is not SDP")?;
        let socket = std::net::UdpSocket::bind(SocketAddr::new(bind, 0))?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .set_extension(ABS_CAPTURE_TIME_ID, Extension::AbsoluteCaptureTime)
            .build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .context("str0m rejected the offer")?
            .to_sdp_string();
        let role = Role::Subscriber {
            video_mids: video_mids(offer_sdp),
            last_video_seq: HashMap::new(),
            frame_capture: HashMap::new(),
            frames: HashMap::new(),
        };
        let (index, stats) = self.adopt(rtc, socket, role)?;
        Ok((
            PeerHandle {
                index,
                stats,
                session_url: String::new(),
                etag: String::new(),
                answer: answer.clone(),
            },
            answer,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_video_mids() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v\r\nm=video 9 X 96\r\na=mid:v2\r\n";
        let mids = video_mids(sdp);
        assert_eq!(mids, vec![Mid::from("v"), Mid::from("v2")]);
    }
}
