//! The school side: schools, classrooms, teachers, pairings, the term timetable, lessons and
//! their modes, and the HTTP API over them.
//!
//! - [`model`]: the rows and their rules, one path re-exporting [`org`] (regions, schools,
//!   classrooms, teachers, pairings, terms), [`timetable`] (slots and their conflicts) and
//!   [`lesson`] (lessons, their states, generation from the timetable).
//! - [`live`]: what happens during a lesson (hands, speak grants, spotlight, events).
//! - [`policy`]: who may join a lesson and send what, by mode; checked when the lesson API
//!   mints a media token and again at WHIP/WHEP time.
//! - [`scheduler`]: moves lessons through scheduled → open → live → ended by the clock.
//! - [`quality`]: grades each participant's media link and reports it in the live state.
//! - [`recording`]: which lessons are recorded and when (the `recordings` rows).
//! - [`api`], [`csvio`], [`openapi`]: the HTTP API, CSV import/export, its OpenAPI document.

pub(crate) mod access;
mod admission;
pub(crate) mod api;
pub(crate) mod csvfile;
pub(crate) mod csvio;
pub(crate) mod lesson;
pub(crate) mod live;
pub mod model;
pub(crate) mod openapi;
pub(crate) mod org;
pub(crate) mod policy;
pub(crate) mod quality;
pub mod recording;
// A stopped recording's capture → playable files (issue 20: processing and recovery).
pub mod recording_files;
// Recordings kept per school's days, expired ones deleted and audited (issue 20 item 3).
pub mod retention;
// Exports of processed recordings as background jobs (issue 20 item 4).
pub mod exports;
pub(crate) mod scheduler;
pub(crate) mod timetable;
pub(crate) mod userscsv;
// Spreadsheets as district offices have them (issue 22 item 2): encodings, .xlsx, Chinese
// headers, templates; and the schools, classrooms and teachers importers.
pub(crate) mod orgsheets;
pub(crate) mod sheet;
// Reports a county sends upward and the session log they read (issue 22 item 7).
pub mod reports;
// Attendance that counts classrooms (issue 22 item 8): stays per site, 到课率 figures.
pub mod attendance;
// Link reports per classroom per lesson (issue 19 item 6): media tally + page getStats.
pub mod linkreport;

use std::sync::Arc;

use crate::auth::TokenKeys;
use crate::config::Config;
use crate::media::Media;
use crate::metrics::Metrics;
use crate::store::Store;

/// Shared state of the school side: what its handlers, scheduler and quality pass need.
pub struct SchoolState {
    /// The configuration in force.
    pub config: Config,
    /// Token signing keys (lesson media tokens).
    pub keys: TokenKeys,
    /// Metrics registry and handles.
    pub metrics: Metrics,
    /// The media sessions (kicks, the spotlight, link figures).
    pub media: Arc<Media>,
    /// The database.
    pub store: Store,
    /// Now.
    pub clock: Arc<dyn crate::time::Clock>,
    /// Live lesson state and events.
    pub live: live::Live,
    /// The schools' UTC offset.
    pub offset: ::time::UtcOffset,
    /// A lesson opens this long before its bell (ms).
    pub open_before: crate::time::Millis,
    /// And stays live this long after its end (ms).
    pub grace: crate::time::Millis,
    /// Login session lifetime (ms).
    pub session_ttl: crate::time::Millis,
    /// Wakes the scheduler (a lesson was created or ended by hand).
    pub poke: tokio::sync::Notify,
    /// At most this many lessons per hub teacher per day.
    pub max_lessons_per_teacher_day: i64,
    /// Tells event streams that a principal lost access or a lesson ended.
    pub revoked: tokio::sync::broadcast::Sender<Revoked>,
    /// Recording processing changes (issue 20: processing started, ready, failed), for
    /// `GET /api/recordings/{id}/events` and the lesson's own stream.
    pub recording_events: tokio::sync::broadcast::Sender<recording_files::ProcessingEvent>,
    /// Export job changes (issue 20: queued, running with progress, done or failed), pushed
    /// on `GET /api/recordings/{id}/events` as `export` events.
    pub export_events: tokio::sync::broadcast::Sender<exports::ExportJob>,
    /// The link reports' writer queue (issue 19 item 6).
    pub link_reports: linkreport::Reports,
}

/// Access that ended: event streams of that principal or lesson close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// A device was revoked or a user disabled ("d:3", "u:12").
    Principal(String),
    /// A lesson ended.
    Lesson(i64),
}

impl SchoolState {
    /// Assembles the state from the configuration.
    pub fn new(
        config: &Config,
        store: Store,
        clock: Arc<dyn crate::time::Clock>,
        keys: TokenKeys,
        metrics: Metrics,
        media: Arc<Media>,
    ) -> SchoolState {
        let s = &config.school;
        SchoolState {
            config: config.clone(),
            keys,
            metrics,
            media,
            store,
            clock,
            live: live::Live::default(),
            // Both are checked by `Config::validate`.
            offset: crate::time::parse_offset(&s.utc_offset).unwrap_or(::time::UtcOffset::UTC),
            open_before: s.open_before_min as i64 * 60_000,
            grace: s.grace_min as i64 * 60_000,
            session_ttl: crate::config::parse_duration(&s.session_ttl)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(12 * 3_600_000),
            poke: tokio::sync::Notify::new(),
            max_lessons_per_teacher_day: s.max_lessons_per_teacher_day as i64,
            revoked: tokio::sync::broadcast::channel(256).0,
            recording_events: tokio::sync::broadcast::channel(256).0,
            export_events: tokio::sync::broadcast::channel(256).0,
            link_reports: linkreport::Reports::default(),
        }
    }

    /// Announces ended access to the event streams (nobody listening is fine).
    pub fn revoke(&self, r: Revoked) {
        let _ = self.revoked.send(r);
    }

    /// Now, by the school clock.
    pub fn now(&self) -> crate::time::Millis {
        self.clock.now()
    }
}
