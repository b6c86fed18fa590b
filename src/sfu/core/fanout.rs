//! The packet path: a publisher stream's packets of one turn taken in (`ingest`), then
//! copied to every subscriber of the track, one subscriber after the other, with the look
//! for a frame's rest in the middle of a long fan-out. It must never allocate, lock or
//! queue per packet beyond what the copies need, nor decide who receives what
//! (`membership`) or when to ask for keyframes (`keyframes`, `layer`).

use super::*;

impl<O: Outside> WorkerCore<O> {
    /// Forwards queued RTP and handles queued keyframe requests until both queues are empty.
    pub(super) fn process_pending(&mut self, now: Instant) {
        if !self.io.pending_sr.is_empty() {
            self.tap_reports();
        }
        if self.io.pending_rtp.is_empty()
            && self.io.pending_kf.is_empty()
            && self.io.connected.is_empty()
        {
            return;
        }
        let mut rtp = Vec::new();
        let mut kf = Vec::new();
        let mut streams: Vec<(PeerId, Ssrc)> = Vec::new();
        loop {
            for pid in std::mem::take(&mut self.io.connected) {
                self.on_connected(pid, now);
            }
            std::mem::swap(&mut rtp, &mut self.io.pending_rtp);
            std::mem::swap(&mut kf, &mut self.io.pending_kf);
            if rtp.is_empty() && kf.is_empty() && self.io.connected.is_empty() {
                break;
            }
            // One publisher stream's packets together (each stream's order kept, streams in
            // the order their first packet arrived), so each subscriber gets a stream's share
            // of the turn as a run (`forward_group`).
            streams.clear();
            for (pid, pkt) in &rtp {
                if !streams.contains(&(*pid, pkt.header.ssrc)) {
                    streams.push((*pid, pkt.header.ssrc));
                }
            }
            if streams.len() > 1 {
                rtp.sort_by_key(|(pid, pkt)| {
                    streams.iter().position(|k| *k == (*pid, pkt.header.ssrc))
                });
            }
            for group in rtp.chunk_by(|a, b| a.0 == b.0 && a.1.header.ssrc == b.1.header.ssrc) {
                self.forward_group(group, now);
            }
            rtp.clear();
            for (sid, mid) in kf.drain(..) {
                self.subscriber_wants_keyframe(sid, mid, now);
            }
        }
        // Keep the allocation of the larger buffer for the next round.
        if self.io.pending_rtp.capacity() < rtp.capacity() {
            self.io.pending_rtp = rtp;
        }
    }

    /// Forwards `pkts`, packets of one publisher's stream (one SSRC) that arrived in this
    /// loop turn, in their order. Each subscriber gets all of them before the next
    /// subscriber is served: its state stays in cache for the run, and its datagrams queue
    /// next to each other, so a frame's equal-sized packets leave as one UDP GSO send.
    pub(super) fn forward_group(&mut self, pkts: &[(PeerId, RtpPacket)], now: Instant) {
        let &(pid, ref first) = pkts.first().expect("`chunk_by` groups are never empty");
        let kf_interval = self.keyframe_interval;
        count_in(&self.io.metrics, pkts);
        // A race: the publisher may have been removed since its packets were queued.
        let Some(publisher) = self.peers.get_mut(&pid) else {
            return;
        };
        let ssrc = first.header.ssrc;
        let (tid, li) = match publisher.rx_streams.get(&ssrc) {
            Some(v) => *v,
            None => {
                let (mid, rid) = {
                    let mut api = publisher.rtc.direct_api();
                    let Some(s) = api.stream_rx(&ssrc) else {
                        return;
                    };
                    (s.mid(), s.rid())
                };
                // Not a bug: an m-line the publisher added later (in an ICE restart's offer)
                // has no track.
                let Some(&(_, tid)) = publisher.tracks.iter().find(|(m, _)| *m == mid) else {
                    return;
                };
                let Some(track) = self.tracks.get_mut(&tid) else {
                    broken!("a live publisher's tracks are in the track table");
                    return;
                };
                if track.kind == MediaKind::Video {
                    // Once per stream: str0m NACKs it even without RTX (`repair.rs`).
                    super::repair::nack_without_rtx(&mut publisher.rtc, ssrc);
                }
                let li = track.layer_for(rid, kf_interval);
                track.layers[li].ssrc = Some(ssrc);
                publisher.rx_streams.insert(ssrc, (tid, li));
                (tid, li)
            }
        };
        let source = source_id(pid, *ssrc);
        let mut preps = std::mem::take(&mut self.preps);
        preps.clear();
        self.prepare(pid, tid, li, ssrc, pkts, &mut preps, now);
        // Other workers holding viewers start on their share while this one does its own.
        self.wake_pipes();
        self.fan_out(
            tid,
            li,
            source,
            &mut preps,
            RestFrom::Socket { pid, ssrc },
            now,
        );
        self.preps = preps;
    }

    /// Takes packets of publisher `pid`'s stream `ssrc` (layer `li` of track `tid`) in
    /// (`ingest`), appending them to `preps`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prepare(
        &mut self,
        pid: PeerId,
        tid: TrackId,
        li: usize,
        ssrc: Ssrc,
        pkts: &[(PeerId, RtpPacket)],
        preps: &mut Vec<Ingested>,
        now: Instant,
    ) {
        for (_, pkt) in pkts {
            let Some(params) = self
                .peers
                .get_mut(&pid)
                .and_then(|p| p.rx_params(pkt.header.payload_type))
            else {
                continue;
            };
            let h = &pkt.header.ext_vals;
            let cached = CachedPacket {
                seq: *pkt.seq_no,
                ts: pkt.header.timestamp,
                arrival: pkt.timestamp,
                pt: pkt.header.payload_type,
                marker: pkt.header.marker,
                // Shares the payload buffer: one refcount per packet, no copy.
                payload: pkt.payload.clone(),
                ext: ExtensionValues {
                    audio_level: h.audio_level,
                    voice_activity: h.voice_activity,
                    video_orientation: h.video_orientation,
                    abs_capture_time: h.abs_capture_time,
                    ..Default::default()
                },
            };
            match self.ingest(tid, li, ssrc, params, cached, now) {
                Some(p) => preps.push(p),
                None => break,
            }
        }
        if !self.taps.is_empty() {
            self.tap_packets(pid, tid, li, pkts, now);
        }
    }

    /// Takes packet `pkt` of layer `li` of track `tid` in: the track's codec and the layer's
    /// rate, keyframe gate and GOP cache, and a copy into the pipe of every worker the
    /// track is piped to. `None` if the track is gone.
    pub(super) fn ingest(
        &mut self,
        tid: TrackId,
        li: usize,
        ssrc: Ssrc,
        params: PayloadParams,
        pkt: CachedPacket,
        now: Instant,
    ) -> Option<Ingested> {
        let track = self.tracks.get_mut(&tid)?;
        if track.params.map(|p| p.pt()) != Some(params.pt()) {
            if track.params.is_some() {
                // Another codec: what was cached no longer matches the track's parameters.
                for l in &mut track.layers {
                    l.gop.clear();
                }
            }
            track.params = Some(params);
        }
        let is_video = track.kind == MediaKind::Video;
        let keyframe = is_video && starts_keyframe(params.spec().codec, &pkt.payload);
        let layer = track.layers.get_mut(li)?;
        layer.window_bytes += pkt.payload.len() as u64;
        layer.last_packet = Some(now);
        if keyframe {
            layer.gate.keyframe_arrived();
        }
        if is_video {
            layer.gop.push(keyframe, pkt.clone());
        }
        if !track.pipes.is_empty() {
            let rid = layer.rid;
            if keyframe {
                layer.pipe_gaps.clear();
            }
            for &to in &track.pipes {
                let Some(backlog) = self.io.out.pipe_len(to) else {
                    continue;
                };
                if layer.pipe_gaps.contains(&to) {
                    self.io.metrics.pipe_drops.inc();
                    continue;
                }
                if backlog >= self.pipe_backlog {
                    self.io.metrics.pipe_drops.inc();
                    if is_video {
                        layer.pipe_gaps.push(to);
                    }
                    continue;
                }
                let msg = PipeMsg::Rtp {
                    home: self.index,
                    packet: PipedPacket {
                        tid,
                        layer: li,
                        rid,
                        ssrc,
                        params,
                        pkt: pkt.for_another_worker(),
                    },
                    arrived: self.io.out.arrival(),
                };
                if self.io.out.pipe(to, msg) {
                    self.io.metrics.pipe_packets.inc();
                    if !self.pipe_wake.contains(&to) {
                        self.pipe_wake.push(to);
                    }
                }
            }
        }
        let kept = is_video.then(|| {
            self.io
                .recent
                .keep(&out_packet(&pkt, 0, 0, 0), &pkt.payload, now)
        });
        Some(Ingested {
            pkt,
            params,
            is_video,
            keyframe,
            clock_rate: params.spec().clock_rate.get(),
            kept,
        })
    }

    /// Sends `preps`, packets of layer `li` of track `tid` from stream `source`, to the
    /// track's subscribers on this worker, one subscriber after the other.
    ///
    /// A group that ends in the middle of a video frame (its last packet has no marker) was
    /// read while the publisher was still sending the frame; its rest comes a few
    /// microseconds later, while this fan-out runs (milliseconds for hundreds of viewers).
    /// Left for the next turn, that rest would wait for the whole fan-out and then go out
    /// viewer by viewer again: the frame's latency for the last viewer doubles (session 10 in
    /// BENCHMARKS.md). So between chunks of viewers the worker looks where the rest comes
    /// from (`rest`); what it finds goes at once to the viewers already served, and with the
    /// first part to the others.
    pub(super) fn fan_out(
        &mut self,
        tid: TrackId,
        li: usize,
        source: SourceId,
        preps: &mut Vec<Ingested>,
        rest: RestFrom,
        now: Instant,
    ) {
        let mut kf_needed: Vec<(TrackId, usize)> = Vec::new();
        let mut served = 0;
        while let Some(viewers) = self.tracks.get(&tid).map(|t| t.subscribers.len()) {
            let end = (served + self.fanout_chunk).min(viewers);
            self.serve(tid, li, source, preps, served..end, &mut kf_needed, now);
            served = end;
            if served >= viewers {
                break;
            }
            if frame_open(preps) {
                let from = preps.len();
                self.look_for_rest(tid, li, rest, preps, now);
                if preps.len() > from {
                    // The viewers already served get the rest now; the others get the
                    // whole group in one run.
                    self.serve(
                        tid,
                        li,
                        source,
                        &preps[from..],
                        0..served,
                        &mut kf_needed,
                        now,
                    );
                }
            }
        }
        for (tid, layer) in kf_needed {
            self.request_keyframe(tid, layer, now);
        }
    }

    /// Sends `preps` to the track's subscribers `viewers` (indices in its list).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn serve(
        &mut self,
        tid: TrackId,
        li: usize,
        source: SourceId,
        preps: &[Ingested],
        viewers: std::ops::Range<usize>,
        kf_needed: &mut Vec<(TrackId, usize)>,
        now: Instant,
    ) {
        // Nothing removes a track or a subscriber during a fan-out (a look only queues).
        let Some(track) = self.tracks.get(&tid) else {
            broken!("a track being fanned out stays in the table");
            return;
        };
        let Some(list) = track.subscribers.get(viewers) else {
            broken!("a fan-out serves viewers within the track's list");
            return;
        };
        let simulcast = track.kind == MediaKind::Video && track.layers.len() > 1;
        // The automatic choice is the same for every subscriber: compute it once.
        let auto_layer = if simulcast {
            track.choose_layer(None, now)
        } else {
            0
        };
        // Per viewer only its lane is read (one record, in join order), not its `Peer`,
        // except for simulcast's layer choice.
        for &(sid, si, lid) in list {
            // A lane is freed only with its peer, after the peer left every track's list.
            let Some(lane) = self.io.lanes.get(lid) else {
                broken!("a track's subscribers have lanes");
                continue;
            };
            debug_assert!(lane.peer == sid && lane.slot == si, "stale lane {lid}");
            // Paused: video held back for the viewer's link (`downlink.rs`).
            if !lane.live || lane.paused {
                continue;
            }
            let pad_to = group_size(lane, source, preps);
            for prep in preps {
                if simulcast {
                    let Some(slot) = self.peers.get_mut(&sid).and_then(|p| p.slots.get_mut(si))
                    else {
                        broken!("a track's subscribers are peers with that slot");
                        break;
                    };
                    let want = match slot.wanted_rid.as_deref() {
                        None => slot.auto.unwrap_or(auto_layer),
                        wanted => track.choose_layer(wanted, now),
                    };
                    let showing = self
                        .io
                        .lanes
                        .get(lid)
                        .and_then(|l| l.rewriter.as_ref())
                        .and_then(|r| r.current_source());
                    let action = slot.switch.on_packet(want, li, source, showing, now);
                    if let Some(layer) = action.ask_keyframe {
                        kf_needed.push((tid, layer));
                    }
                    if !action.forward {
                        continue;
                    }
                }
                let f = SlotWrite {
                    source,
                    pkt: &prep.pkt,
                    params: &prep.params,
                    nackable: prep.is_video,
                    kept: prep.kept,
                    may_start: !prep.is_video || prep.keyframe,
                    clock_rate: prep.clock_rate,
                    pad_to,
                };
                write_slot(lid, &mut self.peers, &mut self.io, &f, now);
            }
        }
    }

    /// During a fan-out of an unfinished frame: takes in the packets of its rest that came
    /// meanwhile (read from the socket, or from the pipe for a piped-in track), appending
    /// them to `preps`. Whatever else a look reads waits for the fan-out to end, in order.
    pub(super) fn look_for_rest(
        &mut self,
        tid: TrackId,
        li: usize,
        rest: RestFrom,
        preps: &mut Vec<Ingested>,
        now: Instant,
    ) {
        self.io.metrics.fanout_looks.inc();
        let from = preps.len();
        match rest {
            RestFrom::Socket { pid, ssrc } => {
                let mut buf = std::mem::take(&mut self.look_buf);
                let mut read = 0;
                while read < LOOK_BUDGET {
                    match self.io.out.recv(&mut buf) {
                        Ok((n, from)) => {
                            read += 1;
                            self.io.metrics.udp_datagrams_in.inc();
                            if n > recvq::MAX_DATAGRAM {
                                // Longer than any WebRTC datagram: not ours (as in a batch).
                                self.io.metrics.udp_unroutable.inc();
                            } else {
                                self.handle_datagram(now, from, &buf[..n]);
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        // ICMP errors (port unreachable) surface here on Linux; not fatal.
                        Err(_) => read += 1,
                    }
                }
                if read == LOOK_BUDGET {
                    self.left_unread = true;
                }
                self.look_buf = buf;
                let found = take_stream(&mut self.io.pending_rtp, pid, ssrc);
                if !found.is_empty() {
                    count_in(&self.io.metrics, &found);
                    self.prepare(pid, tid, li, ssrc, &found, preps, now);
                }
            }
            RestFrom::Pipe => {
                for _ in 0..LOOK_BUDGET {
                    let Some(msg) = self.io.out.piped() else {
                        break;
                    };
                    self.pipe_stash.push_back(msg);
                }
                let piped = &self.piped;
                let found = take_piped(&mut self.pipe_stash, |home, their| {
                    piped.get(&(home, their.tid)).map(|(_, ours)| *ours) == Some(tid)
                        && their.layer == li
                });
                for (mut p, arrived) in found {
                    if let Some(t) = arrived {
                        self.io.out.note_arrival(t);
                    }
                    p.tid = tid;
                    match self.ingest(tid, li, p.ssrc, p.params, p.pkt, now) {
                        Some(prep) => preps.push(prep),
                        None => break,
                    }
                }
            }
        }
        if preps.len() > from {
            self.io
                .metrics
                .fanout_joined_packets
                .inc_by((preps.len() - from) as u64);
            self.wake_pipes();
        }
    }
}

/// Where the rest of a group being fanned out comes from (see `WorkerCore::fan_out`).
#[derive(Debug, Clone, Copy)]
pub(super) enum RestFrom {
    /// This worker's socket: publisher `pid`'s stream `ssrc`.
    Socket { pid: PeerId, ssrc: Ssrc },
    /// The pipe from the track's home worker.
    Pipe,
}

/// Whether a group ends in the middle of a video frame: its last packet is video and has no
/// marker.
pub(super) fn frame_open(preps: &[Ingested]) -> bool {
    preps.last().is_some_and(|p| p.is_video && !p.pkt.marker)
}

/// Counts publisher packets taken in.
pub(super) fn count_in(metrics: &Metrics, pkts: &[(PeerId, RtpPacket)]) {
    metrics.rtp_packets_in.inc_by(pkts.len() as u64);
    let bytes: usize = pkts.iter().map(|(_, p)| p.payload.len()).sum();
    metrics.rtp_bytes_in.inc_by(bytes as u64);
}

/// Takes publisher `pid`'s stream `ssrc` out of `pending` (media read but not yet
/// forwarded), in order; the rest stays, in order.
pub(super) fn take_stream(
    pending: &mut Vec<(PeerId, RtpPacket)>,
    pid: PeerId,
    ssrc: Ssrc,
) -> Vec<(PeerId, RtpPacket)> {
    if !pending
        .iter()
        .any(|(p, pkt)| *p == pid && pkt.header.ssrc == ssrc)
    {
        return Vec::new();
    }
    let (found, kept) = std::mem::take(pending)
        .into_iter()
        .partition(|(p, pkt)| *p == pid && pkt.header.ssrc == ssrc);
    *pending = kept;
    found
}

/// What `ingest` works out once per packet, before the copies.
pub(super) struct Ingested {
    pub(super) pkt: CachedPacket,
    pub(super) params: PayloadParams,
    pub(super) is_video: bool,
    pub(super) keyframe: bool,
    pub(super) clock_rate: u32,
    /// A video packet's number in `Outbox::recent`, for the viewers' histories.
    pub(super) kept: Option<u64>,
}

/// One packet on its way to one subscriber slot.
pub(super) struct SlotWrite<'a> {
    pub(super) source: SourceId,
    /// The packet as the publisher sent it (payload shared).
    pub(super) pkt: &'a CachedPacket,
    pub(super) params: &'a PayloadParams,
    /// Whether the subscriber's str0m keeps it for retransmission.
    pub(super) nackable: bool,
    /// Where the fast path's history finds it for a resend (`Outbox::recent`), if it may be
    /// resent.
    pub(super) kept: Option<u64>,
    /// Whether a new source may start here (audio: always; video: at a keyframe).
    pub(super) may_start: bool,
    pub(super) clock_rate: u32,
    /// The size the viewer's copies of this packet's group are made, and the smallest of
    /// them but the last (see `group_size`).
    pub(super) pad_to: Option<(usize, usize)>,
}

/// `pkt` as the fast path serializes it toward one viewer.
pub(super) fn out_packet(pkt: &CachedPacket, pt: u8, seq: u64, ts: u32) -> OutPacket<'_> {
    OutPacket {
        pt,
        seq,
        ts,
        marker: pkt.marker,
        payload: &pkt.payload,
        audio_level: pkt.ext.audio_level.zip(pkt.ext.voice_activity),
        orientation: pkt.ext.video_orientation.map(|o| o as u8),
        capture: pkt
            .ext
            .abs_capture_time
            .map(|a| (ntp64(a.capture_time), a.clock_offset)),
        padding: 0,
    }
}

/// The size to make a viewer's copies of a group of video packets (one publisher stream,
/// read in one turn; usually a frame), so they leave as one UDP GSO run: the largest
/// sealed size among them, if every packet but the last is at most `MAX_PADDING` short of
/// it (a run's last datagram may be shorter); returned with the smallest of those.
/// libwebrtc makes a frame's first packet shorter (room for its header extensions) and an
/// even split makes later packets a byte longer; padding toward the run already open (what
/// `write_slot` does without this) only lengthens packets that follow a longer one, so the
/// run broke at the first longer packet. `None` for audio, a single packet, a viewer not on
/// the fast path yet, or sizes too far apart (the run then breaks where it must).
pub(super) fn group_size(
    lane: &Lane,
    source: SourceId,
    preps: &[Ingested],
) -> Option<(usize, usize)> {
    if preps.len() < 2 || !preps[0].is_video {
        return None;
    }
    let (egress, stream) = (lane.egress.as_ref()?, lane.out.as_ref()?);
    // A slot between layers (simulcast) or sources gets only some of them: no group.
    if lane.rewriter.as_ref()?.current_source() != Some(source) {
        return None;
    }
    // The run's last datagram may be shorter than the others (a frame's remainder): it
    // does not count toward the smallest.
    let (mut min, mut max) = (usize::MAX, 0);
    for (i, prep) in preps.iter().enumerate() {
        let len = egress.sealed_len(stream, &out_packet(&prep.pkt, 0, 0, 0));
        if i + 1 < preps.len() {
            min = min.min(len);
        }
        max = max.max(len);
    }
    (max - min <= MAX_PADDING).then_some((max, min))
}

/// Writes `f` to lane `id`: payload type mapping, sequence/timestamp rewriting, then
/// the fast path's datagram, or str0m's send path. Returns false if the packet was not
/// written (no common payload type, or the rewriter holds it back until a keyframe).
///
/// On the fast path only the lane is touched; the subscriber's `Peer` is looked up for a
/// stream's first packet (its payload type and SSRC come from str0m) and a layer switch.
pub(super) fn write_slot(
    id: usize,
    peers: &mut Map<PeerId, Peer>,
    io: &mut Outbox<impl Outside>,
    f: &SlotWrite,
    now: Instant,
) -> bool {
    let Some(lane) = io.lanes.get_mut(id) else {
        broken!("writes go to lanes of live slots");
        return false;
    };
    let (pid, si) = (lane.peer, lane.slot);
    let (out_pt, strip) = match lane.mapped_pt(f.pkt.pt) {
        Some(m) => m,
        None => {
            let Some((pt, strip)) = peers
                .get(&pid)
                .and_then(|sub| out_payload(&sub.rtc, sub.slots.get(si)?.mid, f.params, f.pkt.pt))
            else {
                return false;
            };
            lane.map_pt(f.pkt.pt, pt, strip);
            (pt, strip)
        }
    };
    // RED (RFC 2198) to a viewer without it: the primary block, a slice of the same buffer.
    let payload: &[u8] = if strip {
        match crate::sfu::red::primary(&f.pkt.payload) {
            Some(r) => &f.pkt.payload[r],
            None => return false,
        }
    } else {
        &f.pkt.payload
    };
    let rewriter = lane
        .rewriter
        .get_or_insert_with(|| Rewriter::new(f.clock_rate, io.rng.random::<u16>() & 0x3fff));
    let previous = rewriter.current_source();
    let Some(rw) = rewriter.rewrite(f.source, f.pkt.seq, f.pkt.ts, f.may_start, now) else {
        return false;
    };
    if rw.switched {
        if let Some(slot) = peers.get_mut(&pid).and_then(|p| p.slots.get_mut(si)) {
            slot.switch.waiting_keyframe = None;
        }
        if previous.is_some() {
            io.metrics.layer_switches.inc();
        }
    }
    if let (Some(egress), Some(remote)) = (&lane.egress, lane.remote) {
        if lane.out.is_none() {
            lane.out = peers.get_mut(&pid).and_then(|sub| {
                let mid = sub.slots.get(si)?.mid;
                direct_stream(&mut sub.rtc, mid, f.clock_rate)
            });
        }
        if let Some(stream) = lane.out.as_mut() {
            let mut p = out_packet(f.pkt, *out_pt, rw.seq, rw.ts);
            p.payload = payload;
            let mut buf = io.out.buffer();
            // The group's size, or the size of the run still open to this viewer if that is
            // a little larger (the packet may then join it).
            let run = io.out.run_size(remote);
            let pad_to = match (f.pad_to.filter(|_| io.out.gso()), run) {
                (Some((t, low)), Some(r)) if r >= t && r - low <= MAX_PADDING => Some(r),
                (Some((t, _)), _) => Some(t),
                (None, r) => r,
            };
            if egress.seal(stream, &mut p, pad_to, &mut buf) {
                stream.sent(&p, f.kept, f.pkt.arrival);
                lane.direct_bytes_out += payload.len() as u64;
                io.out.send(remote, buf, &mut io.tally);
                let t = &mut io.tally;
                t.rtp_padding_bytes_out += u64::from(p.padding);
                t.direct_srtp_packets_out += 1;
                t.rtp_packets_out += 1;
                t.rtp_bytes_out += payload.len() as u64;
                return true;
            }
        }
    }
    let Some(mid) = peers
        .get(&pid)
        .and_then(|sub| sub.slots.get(si))
        .map(|s| s.mid)
    else {
        broken!("a lane's peer and slot exist while the lane does");
        return false;
    };
    let sub = peers.get_mut(&pid).expect("looked up just above");
    {
        let mut api = sub.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        // str0m's path (not the fast path): a cut RED packet is copied out here.
        let body: std::sync::Arc<[u8]> = if strip {
            std::sync::Arc::from(payload)
        } else {
            f.pkt.payload.clone()
        };
        tx.write_rtp(
            RtpWrite::new(out_pt, rw.seq.into(), rw.ts, f.pkt.arrival, body)
                .marker(f.pkt.marker)
                .nackable(f.nackable)
                .ext_vals(f.pkt.ext.clone()),
        );
    }
    io.tally.rtp_packets_out += 1;
    io.tally.rtp_bytes_out += payload.len() as u64;
    drain(sub, io, now);
    true
}
