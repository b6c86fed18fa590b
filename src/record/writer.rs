//! The capture writer: one thread owning every open capture file, fed by a bounded channel
//! the media workers only `try_send` to. It hands buffered records to the kernel at least
//! every [`WRITE_INTERVAL`] and syncs at least every [`SYNC_INTERVAL`]; a write error stops
//! that recording alone, keeping what was written. Must never be waited on by the media path
//! and never know which lesson, school or worker a recording belongs to.
//!
//! [`WriterCore`] holds the decisions with the time passed in (tests drive it on their own
//! clock over real files); [`Writer::start`] is the thread around it.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::file::{encode_header, encode_record, preamble};
use super::format::{CaptureHeader, Record};
use crate::metrics::CaptureMetrics;

/// A recording's id (the `recordings` table's).
pub type RecordingId = i64;

/// Longest a record waits in the writer's buffer before it is handed to the kernel. Half the
/// 100 ms promise: the rest is the thread's polling ([`POLL`]) and its wake-up.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(50);
/// Longest written data waits for `fdatasync`.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// A buffer this big is written at once, whatever its age.
const WRITE_AT_BYTES: usize = 1 << 20;
/// Writer lag above this is warned about (at most once per [`WARN_EVERY`] per recording).
pub const LAG_WARNING: Duration = Duration::from_secs(1);
const WARN_EVERY: Duration = Duration::from_secs(10);
/// The channel's default capacity: about two seconds of 100 recorded 2.5 Mbit/s streams.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

/// What the writer is sent.
#[derive(Debug)]
pub enum WriterMsg {
    /// Create the capture file at `path` (its directory must exist) and write its header.
    Open {
        /// The recording.
        id: RecordingId,
        /// Where the capture goes.
        path: PathBuf,
        /// Its header.
        header: CaptureHeader,
    },
    /// One record of an open recording (from a media worker).
    Record {
        /// The recording.
        id: RecordingId,
        /// When the worker handed it over (on the worker's clock: the writer's lag).
        sent: Instant,
        /// The record.
        record: Record,
    },
    /// Write what is left, sync and close; `reply` learns the totals.
    Close {
        /// The recording.
        id: RecordingId,
        /// Told when the file is closed.
        reply: Option<tokio::sync::oneshot::Sender<Closed>>,
    },
    /// Close every file and end the thread (shutdown; other senders may still exist).
    Shutdown,
}

/// A closed recording's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The recording.
    pub id: RecordingId,
    /// Bytes of the file handed to the kernel.
    pub bytes: u64,
    /// Records written.
    pub records: u64,
    /// Packets the media workers could not hand over (from `Dropped` records).
    pub dropped: u64,
    /// The error that stopped it early, if one did.
    pub error: Option<String>,
}

/// What the writer tells the rest of the server (the media service logs it and updates the
/// recording's state).
#[derive(Debug, Clone, PartialEq)]
pub enum WriterEvent {
    /// The capture file is open and its header written.
    Opened {
        /// The recording.
        id: RecordingId,
    },
    /// Records wait too long before reaching the kernel (a slow disk): a warning.
    Lagging {
        /// The recording.
        id: RecordingId,
        /// The oldest record's wait.
        lag: Duration,
    },
    /// The media workers dropped packets of this recording (the channel was full): a warning.
    Dropped {
        /// The recording.
        id: RecordingId,
        /// The track.
        track: u32,
        /// How many.
        packets: u32,
    },
    /// A write, sync or open failed: the recording is stopped, what was written is kept.
    Failed {
        /// The recording.
        id: RecordingId,
        /// The error, as the OS said it (e.g. "No space left on device").
        error: String,
    },
    /// Closed (by a `Close`, or at shutdown).
    Closed(Closed),
}

/// Where events go: a closure the media service gives.
pub type EventSink = Box<dyn FnMut(WriterEvent) + Send>;

struct OpenFile {
    file: File,
    buf: Vec<u8>,
    /// When the oldest buffered record was sent by its worker.
    oldest: Option<Instant>,
    /// When the oldest buffered record reached the writer.
    buffered_since: Option<Instant>,
    /// Written since the last sync; when the first such write happened.
    unsynced_since: Option<Instant>,
    bytes: u64,
    records: u64,
    dropped: u64,
    last_warning: Option<Instant>,
}

/// What the writer counted since it started (tests read it; metrics carry the same).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// `write` calls.
    pub writes: u64,
    /// `fdatasync` calls.
    pub syncs: u64,
    /// Records for a recording not open (failed or never opened), dropped.
    pub orphan_records: u64,
}

/// The writer's decisions, with time passed in.
pub struct WriterCore {
    files: HashMap<RecordingId, OpenFile>,
    /// Recordings stopped by an error: their later records are dropped quietly.
    failed: HashSet<RecordingId>,
    metrics: CaptureMetrics,
    events: EventSink,
    stats: WriterStats,
}

impl WriterCore {
    /// A writer with no open files.
    pub fn new(metrics: CaptureMetrics, events: EventSink) -> Self {
        WriterCore {
            files: HashMap::new(),
            failed: HashSet::new(),
            metrics,
            events,
            stats: WriterStats::default(),
        }
    }

    /// What it counted.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Recordings open.
    pub fn open_count(&self) -> usize {
        self.files.len()
    }

    /// Takes one message in at `now`.
    pub fn handle(&mut self, msg: WriterMsg, now: Instant) {
        match msg {
            WriterMsg::Open { id, path, header } => self.open(id, path, &header),
            WriterMsg::Record { id, sent, record } => {
                let Some(f) = self.files.get_mut(&id) else {
                    self.stats.orphan_records += 1;
                    return;
                };
                if let Record::Dropped { track, packets, .. } = record {
                    f.dropped += u64::from(packets);
                    (self.events)(WriterEvent::Dropped { id, track, packets });
                }
                encode_record(&record, &mut f.buf);
                f.records += 1;
                self.metrics.records.inc();
                f.oldest.get_or_insert(sent);
                f.buffered_since.get_or_insert(now);
                if f.buf.len() >= WRITE_AT_BYTES {
                    self.write(id, now);
                }
            }
            WriterMsg::Close { id, reply } => {
                let closed = self.close(id, now);
                if let Some(r) = reply {
                    let _ = r.send(closed);
                }
            }
            // The thread's (`run`); a core driven by hand just closes everything.
            WriterMsg::Shutdown => self.close_all(now),
        }
    }

    fn open(&mut self, id: RecordingId, path: PathBuf, header: &CaptureHeader) {
        if self.files.contains_key(&id) {
            return;
        }
        self.failed.remove(&id);
        let mut bytes = preamble().to_vec();
        encode_header(header, &mut bytes);
        let res = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(&bytes)?;
                f.sync_all()?;
                Ok(f)
            });
        match res {
            Ok(file) => {
                self.metrics.open.inc();
                self.metrics.bytes.inc_by(bytes.len() as u64);
                self.files.insert(
                    id,
                    OpenFile {
                        file,
                        buf: Vec::with_capacity(64 * 1024),
                        oldest: None,
                        buffered_since: None,
                        unsynced_since: None,
                        bytes: bytes.len() as u64,
                        records: 0,
                        dropped: 0,
                        last_warning: None,
                    },
                );
                (self.events)(WriterEvent::Opened { id });
            }
            Err(e) => {
                self.failed.insert(id);
                self.metrics.write_errors.inc();
                self.metrics.failed.inc();
                (self.events)(WriterEvent::Failed {
                    id,
                    error: format!("cannot create {}: {e}", path.display()),
                });
            }
        }
    }

    /// Hands `id`'s buffer to the kernel; on an error the recording stops.
    fn write(&mut self, id: RecordingId, now: Instant) {
        let Some(f) = self.files.get_mut(&id) else {
            return;
        };
        if f.buf.is_empty() {
            return;
        }
        self.stats.writes += 1;
        let lag = f
            .oldest
            .map_or(Duration::ZERO, |o| now.saturating_duration_since(o));
        self.metrics.writer_lag_seconds.set(lag.as_secs_f64());
        if lag >= LAG_WARNING
            && f.last_warning
                .is_none_or(|w| now.saturating_duration_since(w) >= WARN_EVERY)
        {
            f.last_warning = Some(now);
            tracing::warn!(
                recording = id,
                lag_ms = lag.as_millis() as u64,
                "capture writer behind"
            );
            (self.events)(WriterEvent::Lagging { id, lag });
        }
        match f.file.write_all(&f.buf) {
            Ok(()) => {
                self.metrics.bytes.inc_by(f.buf.len() as u64);
                f.bytes += f.buf.len() as u64;
                f.buf.clear();
                f.oldest = None;
                f.buffered_since = None;
                f.unsynced_since.get_or_insert(now);
            }
            Err(e) => self.fail(id, format!("write: {e}"), now),
        }
    }

    fn sync(&mut self, id: RecordingId, now: Instant) {
        let Some(f) = self.files.get_mut(&id) else {
            return;
        };
        self.stats.syncs += 1;
        match f.file.sync_data() {
            Ok(()) => f.unsynced_since = None,
            Err(e) => self.fail(id, format!("sync: {e}"), now),
        }
    }

    /// Stops `id` after an error: the file is closed with what reached it.
    fn fail(&mut self, id: RecordingId, error: String, now: Instant) {
        let Some(f) = self.files.remove(&id) else {
            return;
        };
        let _ = now;
        self.metrics.write_errors.inc();
        self.metrics.failed.inc();
        self.metrics.open.dec();
        self.failed.insert(id);
        tracing::error!(recording = id, %error, "capture stopped by a write error; the lesson goes on");
        (self.events)(WriterEvent::Failed {
            id,
            error: error.clone(),
        });
        (self.events)(WriterEvent::Closed(Closed {
            id,
            bytes: f.bytes,
            records: f.records,
            dropped: f.dropped,
            error: Some(error),
        }));
    }

    fn close(&mut self, id: RecordingId, now: Instant) -> Closed {
        self.write(id, now);
        if self.files.contains_key(&id) {
            self.sync(id, now);
        }
        match self.files.remove(&id) {
            Some(f) => {
                self.metrics.open.dec();
                let c = Closed {
                    id,
                    bytes: f.bytes,
                    records: f.records,
                    dropped: f.dropped,
                    error: None,
                };
                (self.events)(WriterEvent::Closed(c.clone()));
                c
            }
            None => Closed {
                id,
                bytes: 0,
                records: 0,
                dropped: 0,
                error: Some(if self.failed.contains(&id) {
                    "stopped earlier by a write error".into()
                } else {
                    "not open".into()
                }),
            },
        }
    }

    /// Writes every buffer due at `now` (older than [`WRITE_INTERVAL`]) and syncs every file
    /// written more than [`SYNC_INTERVAL`] ago.
    pub fn tick(&mut self, now: Instant) {
        let due: Vec<RecordingId> = self
            .files
            .iter()
            .filter(|(_, f)| {
                f.buffered_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= WRITE_INTERVAL)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.write(id, now);
        }
        let sync: Vec<RecordingId> = self
            .files
            .iter()
            .filter(|(_, f)| {
                f.unsynced_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= SYNC_INTERVAL)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in sync {
            self.sync(id, now);
        }
    }

    /// When [`WriterCore::tick`] must run next (`None`: nothing buffered or unsynced).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.files
            .values()
            .flat_map(|f| {
                [
                    f.buffered_since.map(|t| t + WRITE_INTERVAL),
                    f.unsynced_since.map(|t| t + SYNC_INTERVAL),
                ]
            })
            .flatten()
            .min()
    }

    /// Writes, syncs and closes everything (shutdown).
    pub fn close_all(&mut self, now: Instant) {
        let ids: Vec<RecordingId> = self.files.keys().copied().collect();
        for id in ids {
            self.close(id, now);
        }
    }
}

/// The writer thread's handle: the channel the media workers and the media service send to.
pub struct Writer {
    tx: Sender<WriterMsg>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread with a channel of `capacity` messages.
    pub fn start(capacity: usize, metrics: CaptureMetrics, events: EventSink) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let core = WriterCore::new(metrics, events);
        let thread = std::thread::Builder::new()
            .name("capture-writer".into())
            .spawn(move || run(core, rx))
            .expect("spawning a thread succeeds unless the process is out of threads");
        Writer {
            tx,
            thread: Some(thread),
        }
    }

    /// A sender for media workers (`try_send` only) and control (`send`).
    pub fn sender(&self) -> Sender<WriterMsg> {
        self.tx.clone()
    }

    /// Asks the thread to write, sync and close every file and waits for it to end. Records
    /// sent after this are not written.
    pub fn stop(mut self) {
        self.join();
    }

    fn join(&mut self) {
        // Blocks only while the channel is full, which the thread is emptying.
        let _ = self.tx.send(WriterMsg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Without a join: the thread ends by itself once every sender is gone.
        self.thread.take();
    }
}

/// How often the thread looks at its channel while a capture file is open. The thread polls
/// rather than waiting on the channel: a receiver blocked in `recv` makes every `try_send`
/// a futex wake-up of this thread from the media worker's packet loop (hundreds a second
/// per recorded stream, and a context switch each); a sleeping poller is never woken, so a
/// packet's hand-off is one push onto the queue. 20 ms keeps the kernel hand-off within
/// [`WRITE_INTERVAL`] + `POLL` (70 ms) of a packet's arrival, inside the 100 ms promise.
const POLL: Duration = Duration::from_millis(20);
/// Most messages taken in between two ticks (so ticks are not starved by a full queue).
const DRAIN_AT_MOST: usize = 16 * 1024;

/// The thread: while nothing is open, wait for a message (an `Open` comes before any
/// packet); while something is, wake every [`POLL`], take in everything waiting, tick.
fn run(mut core: WriterCore, rx: Receiver<WriterMsg>) {
    let mut full = false;
    loop {
        if core.files.is_empty() {
            match rx.recv() {
                Ok(WriterMsg::Shutdown) | Err(_) => break,
                Ok(m) => core.handle(m, Instant::now()),
            }
        } else if !full {
            std::thread::sleep(POLL);
        }
        let now = Instant::now();
        let mut taken = 0;
        full = loop {
            if taken == DRAIN_AT_MOST {
                break true;
            }
            match rx.try_recv() {
                Ok(WriterMsg::Shutdown) | Err(TryRecvError::Disconnected) => {
                    core.close_all(Instant::now());
                    return;
                }
                Ok(m) => core.handle(m, now),
                Err(TryRecvError::Empty) => break false,
            }
            taken += 1;
        };
        core.metrics.writer_queue.set(rx.len() as i64);
        core.tick(Instant::now());
    }
    core.close_all(Instant::now());
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::record::file::read_capture;
    use crate::record::format::FORMAT_VERSION;

    fn header() -> CaptureHeader {
        CaptureHeader {
            version: FORMAT_VERSION,
            room: "r".into(),
            lesson_id: None,
            started_unix_ms: 0,
        }
    }

    fn rtp(n: u64) -> Record {
        Record::Rtp {
            track: 1,
            arrival_us: n,
            packet: vec![0x80, 96, 0, n as u8, 0, 0, 0, 0, 0, 0, 0, 1, 7, 7, 7],
        }
    }

    fn core() -> (WriterCore, Arc<Mutex<Vec<WriterEvent>>>) {
        let ev = Arc::new(Mutex::new(Vec::new()));
        let sink = ev.clone();
        let c = WriterCore::new(
            CaptureMetrics::default(),
            Box::new(move |e| sink.lock().expect("test lock").push(e)),
        );
        (c, ev)
    }

    /// On the test's own clock: nothing reaches the file before the write interval, all of
    /// it at the interval, and a sync follows within a second of the write.
    #[test]
    fn records_reach_the_kernel_within_the_write_interval_and_disk_within_a_second() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.cap");
        let (mut w, ev) = core();
        let t0 = Instant::now();
        w.handle(
            WriterMsg::Open {
                id: 1,
                path: path.clone(),
                header: header(),
            },
            t0,
        );
        assert_eq!(ev.lock().expect("lock")[0], WriterEvent::Opened { id: 1 });
        let after_header = std::fs::metadata(&path).expect("file").len();
        for n in 0..10 {
            w.handle(
                WriterMsg::Record {
                    id: 1,
                    sent: t0,
                    record: rtp(n),
                },
                t0,
            );
        }
        assert_eq!(w.next_deadline(), Some(t0 + WRITE_INTERVAL));
        w.tick(t0 + WRITE_INTERVAL - Duration::from_millis(1));
        assert_eq!(std::fs::metadata(&path).expect("file").len(), after_header);
        w.tick(t0 + WRITE_INTERVAL);
        assert!(std::fs::metadata(&path).expect("file").len() > after_header);
        let (c, rep) = read_capture(&path);
        assert_eq!(rep.damage, None);
        assert_eq!(c.records.len(), 10);
        assert_eq!(w.stats().writes, 1);
        assert_eq!(w.stats().syncs, 0);
        assert_eq!(w.next_deadline(), Some(t0 + WRITE_INTERVAL + SYNC_INTERVAL));
        w.tick(t0 + WRITE_INTERVAL + SYNC_INTERVAL);
        assert_eq!(w.stats().syncs, 1);
        assert_eq!(w.next_deadline(), None);
        let closed = {
            w.handle(WriterMsg::Close { id: 1, reply: None }, t0);
            ev.lock().expect("lock").last().cloned()
        };
        match closed {
            Some(WriterEvent::Closed(c)) => {
                assert_eq!(c.records, 10);
                assert_eq!(c.error, None);
                assert_eq!(c.bytes, std::fs::metadata(&path).expect("file").len());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_lagging_writer_warns_and_drops_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut w, ev) = core();
        let t0 = Instant::now();
        w.handle(
            WriterMsg::Open {
                id: 2,
                path: dir.path().join("c.cap"),
                header: header(),
            },
            t0,
        );
        w.handle(
            WriterMsg::Record {
                id: 2,
                sent: t0,
                record: Record::Dropped {
                    track: 3,
                    arrival_us: 0,
                    packets: 5,
                },
            },
            t0 + Duration::from_secs(2),
        );
        w.tick(t0 + Duration::from_secs(2) + WRITE_INTERVAL);
        let ev = ev.lock().expect("lock");
        assert!(ev.contains(&WriterEvent::Dropped {
            id: 2,
            track: 3,
            packets: 5
        }));
        assert!(ev
            .iter()
            .any(|e| matches!(e, WriterEvent::Lagging { id: 2, lag } if *lag >= LAG_WARNING)));
    }

    #[test]
    fn an_open_failure_is_an_event_and_later_records_are_orphans() {
        let (mut w, ev) = core();
        let t0 = Instant::now();
        w.handle(
            WriterMsg::Open {
                id: 3,
                path: PathBuf::from("/nonexistent-dir/x.cap"),
                header: header(),
            },
            t0,
        );
        w.handle(
            WriterMsg::Record {
                id: 3,
                sent: t0,
                record: rtp(1),
            },
            t0,
        );
        assert_eq!(w.stats().orphan_records, 1);
        assert!(matches!(
            ev.lock().expect("lock")[0],
            WriterEvent::Failed { id: 3, .. }
        ));
    }
}
