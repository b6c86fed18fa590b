//! The str0m adapter: drains an `Rtc` after every input (its datagrams, timers and events),
//! puts subscribers on the fast path (`egress`) and answers their NACKs and reports there.
//! It must never decide about rooms, layers or keyframes: it queues what str0m reported
//! for the core's next step.

use super::*;

/// Puts a connected subscriber on the fast path once its DTLS keys are known (they come
/// with the handshake, before `Connected`; housekeeping retries in case they did not). One
/// attempt: a profile the fast path cannot do leaves the peer on str0m's send path.
pub(super) fn try_fast_path(peer: &mut Peer, lanes: &mut slab::Slab<Lane>, direct_srtp: bool) {
    if !direct_srtp || peer.role != PeerKind::Subscriber || !peer.connected || peer.egress_tried {
        return;
    }
    let Some(keys) = peer.keys.get() else {
        return;
    };
    peer.egress_tried = true;
    // One context for the peer's RTCP and one per lane for its media: the same keys.
    let made = Egress::new(keys).and_then(|e| {
        let mine = peer
            .slots
            .iter()
            .map(|s| Ok((s.lane, Egress::new(keys)?)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((e, mine))
    });
    match made {
        Ok((e, mine)) => {
            peer.egress = Some(e);
            for (lane, e) in mine {
                if let Some(l) = lanes.get_mut(lane) {
                    l.egress = Some(e);
                }
            }
        }
        Err(e) => tracing::info!(session = %peer.session, "no fast path: {e}"),
    }
}

/// Sets where the fast path sends, for the peer and its lanes.
pub(super) fn set_remote(
    peer: &mut Peer,
    lanes: &mut slab::Slab<Lane>,
    remote: Option<SocketAddr>,
) {
    peer.remote = remote;
    for s in &peer.slots {
        if let Some(l) = lanes.get_mut(s.lane) {
            l.remote = remote;
        }
    }
}

/// The fast path's stream for a subscriber's `mid`: str0m's SSRC for it and the extension
/// ids the subscriber negotiated.
pub(super) fn direct_stream(rtc: &mut str0m::Rtc, mid: Mid, clock_rate: u32) -> Option<Stream> {
    let ssrc = *rtc.direct_api().stream_tx_by_mid(mid, None)?.ssrc();
    let exts = rtc.media(mid)?.remote_extmap();
    Some(Stream::new(ssrc, mid, exts, clock_rate))
}

/// Answers a subscriber's NACK on the fast path: each packet asked for that is still in the
/// stream's history goes again, as it went the first time (same sequence number, same SRTP
/// index: RFC 4585 retransmission without RTX). A packet asked for that the server never
/// received is watched (`repair.rs`): a keyframe request if no retransmission fills it.
pub(super) fn answer_nack(peer: &Peer, io: &mut Outbox<impl Outside>, nack: &Nack, now: Instant) {
    let Some(id) = peer.slots.iter().map(|s| s.lane).find(|&l| {
        io.lanes
            .get(l)
            .and_then(|l| l.out.as_ref())
            .is_some_and(|o| o.ssrc == *nack.ssrc)
    }) else {
        return;
    };
    let lane = io.lanes.get_mut(id).expect("found just above");
    let (Some(egress), Some(remote), Some(stream)) = (&lane.egress, lane.remote, lane.out.as_mut())
    else {
        return;
    };
    // The first packet asked for that the server never received (one is watched per lane).
    let mut hole = None;
    for entry in nack.reports.iter() {
        let lost = std::iter::once(entry.pid).chain(
            (0..16u16)
                .filter(|b| entry.blp & (1 << b) != 0)
                .map(|b| entry.pid.wrapping_add(b + 1)),
        );
        for seq in lost {
            let Some(mut p) = stream.resend(seq, now, &io.recent) else {
                if hole.is_none() && stream.never_sent(seq) {
                    hole = Some(seq);
                }
                continue;
            };
            let mut buf = io.out.buffer();
            if egress.seal(stream, &mut p, None, &mut buf) {
                lane.direct_bytes_out += p.payload.len() as u64;
                io.out.send(remote, buf, &mut io.tally);
                io.metrics.retransmissions_out.inc();
            }
        }
    }
    if let Some(seq) = hole {
        // Lost upstream: a keyframe if no retransmission fills it in time (`repair.rs`).
        super::repair::viewer_asked_for_hole(io, id, peer.id, seq, now);
    }
}

/// Loss and round-trip time from a subscriber's reception reports on fast-path streams
/// (RFC 3550 §6.4.1: the fraction lost, and the RTT from the echoed sender report time and
/// the delay since it, both in 1/65536 s).
pub(super) fn on_reports<'a>(
    peer: &mut Peer,
    lanes: &slab::Slab<Lane>,
    reports: impl Iterator<Item = &'a ReceptionReport>,
    now: Instant,
) {
    // The streams are the lanes' (they borrow the slab, not the peer, whose link changes).
    let streams: Vec<(&Stream, MediaKind)> = peer
        .slots
        .iter()
        .filter_map(|s| Some((lanes.get(s.lane)?.out.as_ref()?, s.kind)))
        .collect();
    // The worst block of the packet feeds the viewer's downlink estimate (`bwe.rs`), once.
    let mut worst: Option<(f32, Option<Duration>)> = None;
    let mut jitter_us: Option<u32> = None;
    for r in reports {
        let Some((_, kind)) = streams.iter().find(|(o, _)| o.ssrc == *r.ssrc) else {
            continue;
        };
        // Interarrival jitter in the stream's RTP clock (90 kHz video, 48 kHz Opus), in µs.
        let clock: u64 = if *kind == MediaKind::Video {
            90_000
        } else {
            48_000
        };
        let us = (u64::from(r.jitter) * 1_000_000 / clock).min(u64::from(u32::MAX)) as u32;
        jitter_us = Some(jitter_us.map_or(us, |j| j.max(us)));
        let loss = f32::from(r.fraction_lost) / 256.0;
        peer.link.on_loss(loss);
        // RTT: now, less when the echoed report left, less how long the receiver held it
        // (both on this process's monotonic clock; DLSR in 1/65536 s).
        let sent = streams
            .iter()
            .find_map(|(s, _)| s.report_sent_at(r.last_sr_time));
        let mut rtt = None;
        if let (Some(sent), true) = (sent, r.last_sr_time != 0) {
            let held = Duration::from_secs_f64(f64::from(r.last_sr_delay) / 65_536.0);
            if let Some(d) = now.saturating_duration_since(sent).checked_sub(held) {
                peer.link.on_rtt(d);
                rtt = Some(d);
            }
        }
        let (l, d) = worst.get_or_insert((loss, rtt));
        *l = l.max(loss);
        *d = match (*d, rtt) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    if jitter_us.is_some() {
        peer.tally.jitter_us = jitter_us;
    }
    if let Some((loss, rtt)) = worst {
        let sent = f64::from(peer.link.kbps_out) * 1000.0;
        peer.adapt.est.on_report(now, loss, rtt, sent);
    }
}

/// The payload type a subscriber's `mid` carries media of `params` in: among the codecs it
/// negotiated for that m-line, the one `pick_payload_type` matches.
pub(super) fn out_payload_type(rtc: &str0m::Rtc, mid: Mid, params: &PayloadParams) -> Option<Pt> {
    let remote = rtc
        .media(mid)
        .map(|m| m.remote_pts().to_vec())
        .unwrap_or_default();
    let candidates = rtc
        .codec_config()
        .params()
        .iter()
        .filter(|c| remote.contains(&c.pt()));
    pick_payload_type(params, candidates)
}

/// [`out_payload_type`] for a packet the publisher sent in `pt`: the subscriber's payload
/// type, and whether the packet is cut to its RED primary block (`sfu::red::out_pt`).
pub(super) fn out_payload(
    rtc: &str0m::Rtc,
    mid: Mid,
    params: &PayloadParams,
    pt: Pt,
) -> Option<(Pt, bool)> {
    let ours = out_payload_type(rtc, mid, params)?;
    let ours = rtc.codec_config().find(|c| c.pt() == ours)?;
    Some(crate::sfu::red::out_pt(params, pt, ours))
}

/// Gives a subscriber slot a new, empty retransmission history: one second of sent packets
/// for NACKs (rural RTTs are well under that; str0m's default of three seconds triples the
/// per-subscriber memory). Also how a history grown by a GOP replay burst is shrunk back:
/// str0m's history only grows (its slots are ~430 bytes each, payloads aside), so after the
/// replayed packets have aged out it is replaced. What the old one held is then lost to
/// NACKs: at worst one lost packet becomes a keyframe request, once per join.
pub(super) fn fresh_history(peer: &mut Peer, mid: Mid) {
    if let Some(tx) = peer.rtc.direct_api().stream_tx_by_mid(mid, None) {
        tx.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(0.15));
    }
}

/// Drives one peer's `Rtc` until it has nothing more to say, sending its datagrams and
/// queueing its events. Must follow every mutation of the `Rtc` (str0m's contract).
pub(super) fn drain(peer: &mut Peer, io: &mut Outbox<impl Outside>, now: Instant) {
    loop {
        match peer.rtc.poll_output() {
            Ok(Output::Timeout(t)) => {
                if t != peer.next_timeout {
                    peer.next_timeout = t;
                    if t <= now {
                        io.due.push(peer.id);
                    } else {
                        io.timers.push(Reverse((t, Timer::Peer(peer.id))));
                    }
                }
                return;
            }
            Ok(Output::Transmit(t)) => {
                let mut data: Vec<u8> = t.contents.into();
                if routing::is_binding_success(&data) {
                    // str0m accepted a check from there (see `WorkerCore::commit_verified`).
                    io.verified.push((peer.id, t.destination));
                }
                // DTLS and SRTP (not STUN, which also answers other candidate pairs) go to
                // the nominated pair: where the fast path sends.
                if data.first().is_some_and(|b| *b >= 20) && peer.remote != Some(t.destination) {
                    set_remote(peer, &mut io.lanes, Some(t.destination));
                }
                if let Some(egress) = &peer.egress {
                    if is_rtcp(&data) {
                        // A few RTCP packets a second per peer: the streams are lent out of
                        // their lanes for it and put back.
                        let mut lent: Vec<(usize, Stream)> = peer
                            .slots
                            .iter()
                            .filter_map(|s| {
                                let out = io.lanes.get_mut(s.lane)?.out.take()?;
                                Some((s.lane, out))
                            })
                            .collect();
                        let mut streams: Vec<&mut Stream> =
                            lent.iter_mut().map(|(_, s)| s).collect();
                        egress.patch_sender_reports(&mut data, &mut streams, now);
                        for (lane, out) in lent {
                            if let Some(l) = io.lanes.get_mut(lane) {
                                l.out = Some(out);
                            }
                        }
                    }
                }
                if !data.is_empty() {
                    io.out.send(t.destination, data, &mut io.tally);
                }
            }
            Ok(Output::Event(ev)) => on_event(peer, io, ev, now),
            Err(e) => {
                tracing::warn!(session = %peer.session, "rtc failed: {e}");
                io.dead.push(peer.id);
                return;
            }
        }
    }
}

pub(super) fn on_event(peer: &mut Peer, io: &mut Outbox<impl Outside>, ev: Event, now: Instant) {
    match ev {
        Event::Connected => {
            peer.connected = true;
            for s in &peer.slots {
                if let Some(l) = io.lanes.get_mut(s.lane) {
                    l.live = true;
                }
            }
            try_fast_path(peer, &mut io.lanes, io.direct_srtp);
            io.connected.push(peer.id);
            io.out.event(SfuEvent::PeerConnected {
                session: peer.session.clone(),
            });
            tracing::info!(session = %peer.session, "connected");
        }
        Event::IceConnectionStateChange(state) => match state {
            IceConnectionState::Disconnected => {
                peer.disconnected_since.get_or_insert(now);
            }
            IceConnectionState::Connected | IceConnectionState::Completed => {
                peer.disconnected_since = None;
            }
            _ => {}
        },
        Event::RtpPacket(p) if peer.role == PeerKind::Publisher => {
            if peer.limit.admit(p.payload.len(), now) {
                io.pending_rtp.push((peer.id, p));
            } else {
                // Over `media.max_publish_kbps` / `_pps`: not forwarded (nor cached).
                io.metrics.publish_dropped_packets.inc();
            }
        }
        // A few a second: kept for the recording tap (`tap.rs`), dropped if none.
        Event::SenderFeedback(f) if peer.role == PeerKind::Publisher => {
            io.pending_sr.push((peer.id, f));
        }
        Event::KeyframeRequest(k) if peer.role == PeerKind::Subscriber => {
            // A viewer that cannot decode fails a trial switch at once (`adapt.rs`).
            peer.adapt.on_keyframe_request(now);
            io.pending_kf.push((peer.id, k.mid));
        }
        Event::MediaEgressStats(s) => {
            if let Some(rtt) = s.rtt {
                peer.link.on_rtt(rtt);
            }
            // What a subscriber's receiver reports say it lost of what the server sent.
            if let (PeerKind::Subscriber, Some(loss)) = (peer.role, s.loss) {
                peer.link.on_loss(loss);
            }
            let seen = peer.stats_seen.entry((s.mid, s.rid, true)).or_default();
            // On the fast path the raw RTCP events count them (see below).
            if peer.egress.is_none() {
                io.metrics
                    .nacks_received
                    .inc_by(s.nacks.saturating_sub(seen.nacks));
            }
            seen.nacks = s.nacks;
        }
        Event::MediaIngressStats(s) => {
            if let Some(rtt) = s.rtt {
                peer.link.on_rtt(rtt);
            }
            // What the server lost of a publisher's media (its own receiver reports).
            if let (PeerKind::Publisher, Some(loss)) = (peer.role, s.loss) {
                peer.link.on_loss(loss);
            }
            let seen = peer.stats_seen.entry((s.mid, s.rid, false)).or_default();
            io.metrics
                .nacks_sent
                .inc_by(s.nacks.saturating_sub(seen.nacks));
            seen.nacks = s.nacks;
        }
        Event::PeerStats(s) => {
            if let Some(rtt) = s.rtt {
                io.metrics.rtt_seconds.observe(rtt.as_secs_f64());
            }
            let direct: u64 = peer
                .slots
                .iter()
                .filter_map(|s| io.lanes.get(s.lane))
                .map(|l| l.direct_bytes_out)
                .sum();
            peer.link
                .on_peer_stats(s.bytes_rx, s.bytes_tx + direct, s.rtt, s.timestamp);
        }
        // A subscriber's RTCP about the streams of the fast path, which str0m's own send
        // statistics do not cover (it counts only what it sent).
        Event::RawPacket(raw) if peer.egress.is_some() => match &*raw {
            RawPacket::RtcpRx(Rtcp::Nack(nack)) => {
                io.metrics.nacks_received.inc();
                answer_nack(peer, io, nack, now);
            }
            RawPacket::RtcpRx(Rtcp::ReceiverReport(rr)) => {
                on_reports(peer, &io.lanes, rr.reports.iter(), now)
            }
            RawPacket::RtcpRx(Rtcp::SenderReport(sr)) => {
                on_reports(peer, &io.lanes, sr.reports.iter(), now)
            }
            // A receiver that sends its own estimate (it chose REMB): it caps ours.
            RawPacket::RtcpRx(Rtcp::Remb(remb)) => peer.adapt.est.on_remb(remb.bitrate),
            _ => {}
        },
        Event::Closed => io.dead.push(peer.id),
        _ => {}
    }
}
