//! The recording tap: for each recorded room on this worker, a copy of every recorded
//! track's RTP packets (layer 0 of a simulcast track, the top one: the pages list rids
//! highest first) and of its publisher's sender reports, handed to the capture writer's
//! bounded channel with `try_send`. It must never wait, lock, touch a disk or allocate per
//! packet beyond the packet's own copy; a full channel is a counted drop (written later as
//! `Record::Dropped`), never a wait.

use str0m::media::SenderFeedback;

use super::*;
use crate::record::format::{Codec as RecCodec, Record, SourceKind, TrackInfo};
use crate::record::writer::{RecordingId, WriterMsg};

/// What the media service gives a worker to record a room: where records go and who is who.
#[derive(Debug, Clone)]
pub struct Tap {
    /// The recording (the writer has its file open).
    pub recording: RecordingId,
    /// The capture writer's channel (`try_send` only).
    pub tx: crossbeam_channel::Sender<WriterMsg>,
    /// Participants known to the lesson: their names and whether they are the hub.
    pub parts: Vec<TapPart>,
}

/// A lesson participant as a recorded track's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapPart {
    /// The participant id peers carry (`t:3`, `c:12`).
    pub part: String,
    /// The name the manifest shows (the teacher's or the classroom's).
    pub name: String,
    /// The hub teacher or hub classroom.
    pub hub: bool,
}

/// One recorded room on this worker.
pub(super) struct RoomTap {
    tap: Tap,
    /// Capture time zero (the core's clock when recording started here).
    zero: Instant,
    next_track: u32,
    tracks: Map<TrackId, TapTrack>,
}

struct TapTrack {
    id: u32,
    /// `Track` record sent (after the first packet, when the codec is known).
    declared: bool,
    /// Packets the channel refused since the last `Dropped` record.
    dropped: u32,
    /// Declaration refused by a full channel: nothing of the track is recorded until it goes.
    ignored: bool,
}

fn us_since(zero: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(zero).as_micros() as u64
}

impl RoomTap {
    /// Hands `record` of tracked `tid` to the writer; a refusal counts as a drop. A
    /// `Dropped` record goes first when the last ones were refused.
    fn send(&mut self, tid: TrackId, record: Record, now: Instant, m: &Metrics) {
        let Some(t) = self.tracks.get_mut(&tid) else {
            return;
        };
        if t.dropped > 0 {
            let d = Record::Dropped {
                track: t.id,
                arrival_us: us_since(self.zero, now),
                packets: t.dropped,
            };
            let msg = WriterMsg::Record {
                id: self.tap.recording,
                sent: now,
                record: d,
            };
            if self.tap.tx.try_send(msg).is_ok() {
                t.dropped = 0;
            } else {
                t.dropped += 1;
                m.capture.dropped_packets.inc();
                return;
            }
        }
        let msg = WriterMsg::Record {
            id: self.tap.recording,
            sent: now,
            record,
        };
        if self.tap.tx.try_send(msg).is_err() {
            t.dropped += 1;
            m.capture.dropped_packets.inc();
        }
    }
}

impl<O: Outside> WorkerCore<O> {
    /// Starts (`Some`) or stops (`None`) recording `room` on this worker. Stopping ends every
    /// recorded track (`TrackEnd`) before it returns.
    pub(super) fn set_tap(&mut self, room: String, tap: Option<Tap>, now: Instant) {
        if let Some(old) = self.taps.remove(&room) {
            self.end_tap(old, now);
        }
        if let Some(tap) = tap {
            tracing::info!(worker = self.index, %room, recording = tap.recording, "recording");
            self.taps.insert(
                room,
                RoomTap {
                    tap,
                    zero: now,
                    next_track: 1,
                    tracks: Map::default(),
                },
            );
        }
    }

    fn end_tap(&mut self, mut tap: RoomTap, now: Instant) {
        let tids: Vec<TrackId> = tap.tracks.keys().copied().collect();
        for tid in tids {
            let Some(t) = tap.tracks.get(&tid) else {
                continue;
            };
            if t.declared {
                let end = Record::TrackEnd {
                    track: t.id,
                    arrival_us: us_since(tap.zero, now),
                };
                tap.send(tid, end, now, &self.io.metrics);
            }
        }
    }

    /// The track record for `tid` (its codec known from its first packet), or `None` for a
    /// codec the processor cannot mux.
    fn track_info(&self, tid: TrackId, id: u32, tap: &Tap) -> Option<TrackInfo> {
        let track = self.tracks.get(&tid)?;
        let params = track.params?;
        let codec = match params.spec().codec {
            Codec::Vp8 => RecCodec::Vp8,
            Codec::Vp9 => RecCodec::Vp9,
            Codec::H264 => RecCodec::H264,
            Codec::Opus => RecCodec::Opus,
            _ => return None,
        };
        let part = track.part.as_deref().unwrap_or("");
        let kind = if codec.is_audio() {
            SourceKind::Audio
        } else if part.starts_with("c:") {
            SourceKind::ClassroomCamera
        } else {
            // A teacher's (or a plain room's) WHIP session: its first video m-line is the
            // camera, the next one the courseware screen (web/teach.js adds them so).
            let before = self
                .peers
                .get(&track.publisher)
                .map(|p| {
                    p.tracks
                        .iter()
                        .take_while(|(_, t)| *t != tid)
                        .filter(|(_, t)| {
                            self.tracks
                                .get(t)
                                .is_some_and(|t| t.kind == MediaKind::Video)
                        })
                        .count()
                })
                .unwrap_or(0);
            if before == 0 {
                SourceKind::TeacherCamera
            } else {
                SourceKind::Courseware
            }
        };
        let known = tap.parts.iter().find(|p| p.part == part);
        Some(TrackInfo {
            track: id,
            kind,
            codec,
            payload_type: *params.pt(),
            clock_rate: params.spec().clock_rate.get(),
            owner: known.map_or_else(|| part.to_string(), |p| p.name.clone()),
            hub: known.is_some_and(|p| p.hub),
        })
    }

    /// After `prepare`: copies `pkts` (layer `li` of publisher `pid`'s track `tid`) to the
    /// room's capture, if the room is recorded and this is the top layer.
    pub(super) fn tap_packets(
        &mut self,
        pid: PeerId,
        tid: TrackId,
        li: usize,
        pkts: &[(PeerId, RtpPacket)],
        now: Instant,
    ) {
        if li != 0 {
            return;
        }
        let Some(room) = self.peers.get(&pid).map(|p| &p.room) else {
            return;
        };
        let Some(tap) = self.taps.get(room) else {
            return;
        };
        if !tap
            .tracks
            .get(&tid)
            .is_some_and(|t| t.declared || t.ignored)
        {
            // The track's first packet here: declared once (allocates; not per packet).
            let room = room.clone();
            let Some(mut tap) = self.taps.remove(&room) else {
                return;
            };
            self.tap_track(&mut tap, tid, now);
            self.taps.insert(room, tap);
        }
        let Some(tap) = self
            .peers
            .get(&pid)
            .and_then(|p| self.taps.get_mut(&p.room))
        else {
            return;
        };
        let Some(track) = tap
            .tracks
            .get(&tid)
            .filter(|t| t.declared && !t.ignored)
            .map(|t| t.id)
        else {
            return;
        };
        // RED (RFC 2198) is recorded as its primary codec: (RED payload type, primary's).
        let red = self.peers.get(&pid).and_then(|p| {
            p.rtc
                .codec_config()
                .find(|c| c.red().is_some())
                .and_then(|c| Some((c.red()?, c.pt())))
        });
        for (_, pkt) in pkts {
            // The copy the record needs: a plain 12-byte RTP header (no CSRC, header
            // extensions or padding: str0m has parsed them off) and the payload.
            let h = &pkt.header;
            let (pt, payload) = match red {
                Some((r, primary)) if r == h.payload_type => {
                    match crate::sfu::red::primary(&pkt.payload) {
                        Some(at) => (primary, &pkt.payload[at]),
                        None => continue,
                    }
                }
                _ => (h.payload_type, &pkt.payload[..]),
            };
            let mut packet = Vec::with_capacity(12 + payload.len());
            packet.push(0x80);
            packet.push((u8::from(h.marker) << 7) | (*pt & 0x7f));
            packet.extend_from_slice(&(*pkt.seq_no as u16).to_be_bytes());
            packet.extend_from_slice(&h.timestamp.to_be_bytes());
            packet.extend_from_slice(&(*h.ssrc).to_be_bytes());
            packet.extend_from_slice(payload);
            let rec = Record::Rtp {
                track,
                arrival_us: us_since(tap.zero, pkt.timestamp),
                packet,
            };
            tap.send(tid, rec, now, &self.io.metrics);
        }
    }

    /// Declares `tid` in `tap` at its first packet (its codec is known then).
    fn tap_track(&mut self, tap: &mut RoomTap, tid: TrackId, now: Instant) {
        if tap
            .tracks
            .get(&tid)
            .is_some_and(|t| t.declared || t.ignored)
        {
            return;
        }
        let id = match tap.tracks.get(&tid) {
            Some(t) => t.id,
            None => {
                let id = tap.next_track;
                tap.next_track += 1;
                tap.tracks.insert(
                    tid,
                    TapTrack {
                        id,
                        declared: false,
                        dropped: 0,
                        ignored: false,
                    },
                );
                id
            }
        };
        let Some(info) = self.track_info(tid, id, &tap.tap) else {
            if let Some(t) = tap.tracks.get_mut(&tid) {
                t.ignored = true;
            }
            return;
        };
        let msg = WriterMsg::Record {
            id: tap.tap.recording,
            sent: now,
            record: Record::Track(info),
        };
        let t = tap.tracks.get_mut(&tid).expect("inserted above");
        if tap.tap.tx.try_send(msg).is_ok() {
            t.declared = true;
        } else {
            // Without its declaration no packet of the track can be read: try again at
            // the next packet, counting this one lost.
            t.dropped += 1;
            self.io.metrics.capture.dropped_packets.inc();
        }
    }

    /// Publishers' sender reports (queued by `on_event`) to their recorded tracks.
    pub(super) fn tap_reports(&mut self) {
        let reports = std::mem::take(&mut self.io.pending_sr);
        if self.taps.is_empty() {
            return;
        }
        for (pid, f) in reports {
            self.tap_report(pid, f);
        }
    }

    fn tap_report(&mut self, pid: PeerId, f: SenderFeedback) {
        let Some(peer) = self.peers.get(&pid) else {
            return;
        };
        let Some(&(_, tid)) = peer.tracks.iter().find(|(m, _)| *m == f.mid) else {
            return;
        };
        let top = self.tracks.get(&tid).and_then(|t| t.layers.first());
        if top.is_none_or(|l| l.rid != f.rid) {
            return;
        }
        let Some(tap) = self.taps.get_mut(&peer.room) else {
            return;
        };
        let Some(t) = tap.tracks.get(&tid).filter(|t| t.declared && !t.ignored) else {
            return;
        };
        let rec = Record::SenderReport {
            track: t.id,
            arrival_us: us_since(tap.zero, f.received_at),
            ntp: ntp64(f.sender_info.ntp_time),
            rtp_time: f.sender_info.rtp_time.numer() as u32,
        };
        let at = f.received_at;
        tap.send(tid, rec, at, &self.io.metrics);
    }

    /// Housekeeping: recorded tracks that ended (their publisher left) get their `TrackEnd`.
    pub(super) fn tap_housekeeping(&mut self, now: Instant) {
        if self.taps.is_empty() {
            return;
        }
        for tap in self.taps.values_mut() {
            let gone: Vec<TrackId> = tap
                .tracks
                .keys()
                .filter(|tid| !self.tracks.contains_key(tid))
                .copied()
                .collect();
            for tid in gone {
                if tap.tracks.get(&tid).is_some_and(|t| t.declared) {
                    let id = tap.tracks[&tid].id;
                    let end = Record::TrackEnd {
                        track: id,
                        arrival_us: us_since(tap.zero, now),
                    };
                    tap.send(tid, end, now, &self.io.metrics);
                }
                tap.tracks.remove(&tid);
            }
        }
    }
}
