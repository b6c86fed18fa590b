//! Starting and stopping a room's recording on the media side: the capture file opened by the
//! writer thread (`record::writer`), the tap given to the room's home worker
//! (`Command::Record`), and both undone in order at the stop. It must never decide which rooms
//! are recorded (school does) nor touch the database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::Media;
use crate::record::format::{CaptureHeader, FORMAT_VERSION};
use crate::record::storage::RecordingStorage;
use crate::record::writer::{Closed, RecordingId, Writer, WriterMsg};
use crate::sfu::core::{Tap, TapPart};
use crate::sfu::Command;

/// How long a control message may wait for room in the writer's channel.
const CONTROL_WAIT: Duration = Duration::from_secs(2);

/// The writer thread and the rooms being recorded.
pub struct Recorder {
    writer: Mutex<Option<Writer>>,
    tx: Sender<WriterMsg>,
    /// Where recordings live.
    pub storage: Arc<dyn RecordingStorage>,
    /// Room → its recording, while recorded.
    active: Mutex<HashMap<String, RecordingId>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

/// Why a recording did not start.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// This server records nothing (no recorder, or no media workers).
    #[error("recording is not available on this server")]
    Unavailable,
    /// The room is being recorded already.
    #[error("the room is being recorded already")]
    Already,
    /// The capture file's place could not be made.
    #[error("cannot create the capture file: {0}")]
    Storage(String),
    /// The writer thread is gone or its channel stayed full.
    #[error("the capture writer does not take the recording")]
    Writer,
}

impl Recorder {
    /// Over a started writer and its storage.
    pub fn new(writer: Writer, storage: Arc<dyn RecordingStorage>) -> Self {
        Recorder {
            tx: writer.sender(),
            writer: Mutex::new(Some(writer)),
            storage,
            active: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `room` is being recorded (and by which recording).
    pub fn recording_of(&self, room: &str) -> Option<RecordingId> {
        self.active
            .lock()
            .expect("recorder lock")
            .get(room)
            .copied()
    }

    /// Stops the writer thread after every file is closed (shutdown). Blocks.
    pub fn stop_writer(&self) {
        let w = self.writer.lock().expect("recorder lock").take();
        if let Some(w) = w {
            w.stop();
        }
    }

    async fn control(&self, msg: WriterMsg) -> Result<(), RecordError> {
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || tx.send_timeout(msg, CONTROL_WAIT))
            .await
            .map_err(|_| RecordError::Writer)?
            .map_err(|_| RecordError::Writer)
    }
}

/// What happens in a room without a lesson, for `[recording] rooms = "all"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainRoom {
    /// A publisher was admitted.
    Published(String),
    /// Its last session ended.
    Empty(String),
}

/// Who hears [`PlainRoom`] changes (called synchronously; must not call back into [`Media`]).
pub type PlainRoomListener = Box<dyn Fn(PlainRoom) + Send + Sync>;

impl Media {
    /// Listens to rooms without a lesson (once, at start-up: school records them when
    /// `[recording] rooms = "all"`).
    pub fn listen_plain_rooms(&self, f: PlainRoomListener) {
        let _ = self.plain_rooms.set(f);
    }

    pub(super) fn tell_plain(&self, ev: PlainRoom) {
        if let Some(f) = self.plain_rooms.get() {
            f(ev);
        }
    }

    /// Gives the media service its recorder (once, at start-up).
    pub fn set_recorder(&self, r: Recorder) {
        let _ = self.recorder.set(r);
    }

    /// The recorder, if this server records.
    pub fn recorder(&self) -> Option<&Recorder> {
        self.recorder.get()
    }

    /// Starts recording `room` as recording `id`: the capture file is created and its header
    /// written, then the room's home worker starts copying its tracks into it. Returns the
    /// capture's path.
    pub async fn start_recording(
        &self,
        id: RecordingId,
        room: &str,
        lesson: Option<i64>,
        started_unix_ms: i64,
        parts: Vec<TapPart>,
    ) -> Result<PathBuf, RecordError> {
        let r = self.recorder().ok_or(RecordError::Unavailable)?;
        if self.sfu.is_empty() {
            return Err(RecordError::Unavailable);
        }
        {
            let mut active = r.active.lock().expect("recorder lock");
            if active.contains_key(room) {
                return Err(RecordError::Already);
            }
            active.insert(room.to_string(), id);
        }
        let started = async {
            let storage = r.storage.clone();
            let path = tokio::task::spawn_blocking(move || storage.create_capture(id))
                .await
                .map_err(|e| RecordError::Storage(e.to_string()))?
                .map_err(|e| RecordError::Storage(e.to_string()))?;
            let header = CaptureHeader {
                version: FORMAT_VERSION,
                room: room.to_string(),
                lesson_id: lesson,
                started_unix_ms,
            };
            r.control(WriterMsg::Open {
                id,
                path: path.clone(),
                header,
            })
            .await?;
            // The writer has `Open` before any record the worker sends after this command.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let home = self.sfu.worker_for_room(room);
            let tap = Tap {
                recording: id,
                tx: r.tx.clone(),
                parts,
            };
            if !self.sfu.worker(home).send(Command::Record {
                room: room.to_string(),
                tap: Some(Box::new(tap)),
                reply: Some(tx),
            }) {
                return Err(RecordError::Unavailable);
            }
            let _ = rx.await;
            Ok(path)
        }
        .await;
        if started.is_err() {
            r.active.lock().expect("recorder lock").remove(room);
        }
        started
    }

    /// Stops recording `room`: the worker ends its tracks, then the writer writes, syncs and
    /// closes the file. `None` if the room was not being recorded.
    pub async fn stop_recording(&self, room: &str) -> Option<Closed> {
        let r = self.recorder()?;
        let id = r.active.lock().expect("recorder lock").remove(room)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let home = self.sfu.worker_for_room(room);
        if self.sfu.worker(home).send(Command::Record {
            room: room.to_string(),
            tap: None,
            reply: Some(tx),
        }) {
            let _ = rx.await;
        }
        let (ctx, crx) = tokio::sync::oneshot::channel();
        r.control(WriterMsg::Close {
            id,
            reply: Some(ctx),
        })
        .await
        .ok()?;
        crx.await.ok()
    }
}
