//! Link reports per classroom per lesson (issue 19 item 6): the figure a county office uses to
//! decide which schools need a better line. Two sources are merged into one `link_reports`
//! row per participant per lesson (migration 0018): the media side's running totals per viewer
//! session (`SfuEvent::LinkReport`: layer time, audio-only time, bytes, loss, RTT, jitter) and
//! the page's own `getStats` (`POST /api/lessons/{id}/link-stats`: frames, freezes, audio
//! concealment, bytes received). Both send cumulative totals; the writer turns them into
//! deltas (a total that went down is a new connection) and adds them up in batches. Must never
//! wait on the media side or in a session listener (they only queue into an unbounded
//! channel) and never trust a page beyond its own participant (the route decides who it is).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use tokio::sync::mpsc;

use super::quality::{grade, Grade};
use crate::sfu::core::LinkReport;
use crate::store::{col, Store, StoreResult};
use crate::time::Millis;

/// How often the writer adds what it gathered to the table (one transaction).
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// A page connection not heard from for this long is forgotten by the writer.
const PAGE_FORGET: Duration = Duration::from_secs(600);
/// The largest `link-stats` body accepted (bytes).
pub const MAX_PAGE_BODY: usize = 2048;
/// No counter a page sends may exceed this (a lesson day of 48 kHz audio is ~4·10⁹ samples).
const MAX_COUNTER: u64 = 1 << 40;

/// What a page's `getStats` said about what it received, cumulative since its connection
/// (`conn`, any id the page picked, 1–64 of `[A-Za-z0-9_-]`) started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PageLinkStats)]
pub struct PageStats {
    /// The page's connection id (a new one after a reconnect).
    pub conn: String,
    /// How long the connection's figures cover (ms).
    pub duration_ms: u64,
    /// Inbound video `framesDecoded`, summed over its video.
    #[serde(default)]
    pub frames_decoded: u64,
    /// Inbound video `freezeCount`.
    #[serde(default)]
    pub freeze_count: u64,
    /// Inbound video `totalFreezesDuration`, in ms.
    #[serde(default)]
    pub freeze_ms: u64,
    /// Inbound audio `concealedSamples`.
    #[serde(default)]
    pub concealed_samples: u64,
    /// Inbound audio `totalSamplesReceived`.
    #[serde(default)]
    pub total_samples: u64,
    /// Inbound `bytesReceived`, audio and video.
    #[serde(default)]
    pub bytes_received: u64,
}

impl PageStats {
    fn counters(&self) -> [u64; 7] {
        [
            self.duration_ms,
            self.frames_decoded,
            self.freeze_count,
            self.freeze_ms,
            self.concealed_samples,
            self.total_samples,
            self.bytes_received,
        ]
    }
}

/// Reads a `link-stats` body: JSON [`PageStats`], bounded, every counter in range. The
/// reason is for a 400 problem.
pub fn parse_page_stats(body: &[u8]) -> Result<PageStats, String> {
    if body.len() > MAX_PAGE_BODY {
        return Err(format!("the body is over {MAX_PAGE_BODY} bytes"));
    }
    let s: PageStats = serde_json::from_slice(body).map_err(|e| format!("not link stats: {e}"))?;
    let conn_ok = (1..=64).contains(&s.conn.len())
        && s.conn
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !conn_ok {
        return Err("conn: 1 to 64 letters, digits, '-' or '_'".into());
    }
    if s.counters().iter().any(|c| *c > MAX_COUNTER) {
        return Err(format!("a counter is over {MAX_COUNTER}"));
    }
    if s.freeze_ms > s.duration_ms || s.concealed_samples > s.total_samples {
        return Err(
            "freeze_ms must not exceed duration_ms, nor concealed_samples total_samples".into(),
        );
    }
    Ok(s)
}

/// What the writer adds to one row: every column of `link_reports` but the keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    media_ms: u64,
    bytes_out: u64,
    layer_high_ms: u64,
    layer_mid_ms: u64,
    layer_low_ms: u64,
    audio_only_ms: u64,
    loss_bp_ms: u64,
    loss_known_ms: u64,
    rtt_ms_ms: u64,
    rtt_known_ms: u64,
    jitter_us_ms: u64,
    jitter_known_ms: u64,
    page_ms: u64,
    frames_decoded: u64,
    freeze_count: u64,
    freeze_ms: u64,
    concealed_samples: u64,
    total_samples: u64,
    bytes_received: u64,
}

/// The table's columns, in [`Totals::values`] order.
const COLUMNS: [&str; 19] = [
    "media_ms",
    "bytes_out",
    "layer_high_ms",
    "layer_mid_ms",
    "layer_low_ms",
    "audio_only_ms",
    "loss_bp_ms",
    "loss_known_ms",
    "rtt_ms_ms",
    "rtt_known_ms",
    "jitter_us_ms",
    "jitter_known_ms",
    "page_ms",
    "frames_decoded",
    "freeze_count",
    "freeze_ms",
    "concealed_samples",
    "total_samples",
    "bytes_received",
];

impl Totals {
    fn values(&self) -> [u64; 19] {
        [
            self.media_ms,
            self.bytes_out,
            self.layer_high_ms,
            self.layer_mid_ms,
            self.layer_low_ms,
            self.audio_only_ms,
            self.loss_bp_ms,
            self.loss_known_ms,
            self.rtt_ms_ms,
            self.rtt_known_ms,
            self.jitter_us_ms,
            self.jitter_known_ms,
            self.page_ms,
            self.frames_decoded,
            self.freeze_count,
            self.freeze_ms,
            self.concealed_samples,
            self.total_samples,
            self.bytes_received,
        ]
    }

    fn add(&mut self, o: &Totals) {
        let mut v = self.values();
        for (a, b) in v.iter_mut().zip(o.values()) {
            *a = a.saturating_add(b);
        }
        *self = Totals::from_values(v);
    }

    fn from_values(v: [u64; 19]) -> Totals {
        Totals {
            media_ms: v[0],
            bytes_out: v[1],
            layer_high_ms: v[2],
            layer_mid_ms: v[3],
            layer_low_ms: v[4],
            audio_only_ms: v[5],
            loss_bp_ms: v[6],
            loss_known_ms: v[7],
            rtt_ms_ms: v[8],
            rtt_known_ms: v[9],
            jitter_us_ms: v[10],
            jitter_known_ms: v[11],
            page_ms: v[12],
            frames_decoded: v[13],
            freeze_count: v[14],
            freeze_ms: v[15],
            concealed_samples: v[16],
            total_samples: v[17],
            bytes_received: v[18],
        }
    }

    fn of_media(r: &LinkReport) -> Totals {
        Totals {
            media_ms: r.ms,
            bytes_out: r.bytes,
            layer_high_ms: r.layer_ms[0],
            layer_mid_ms: r.layer_ms[1],
            layer_low_ms: r.layer_ms[2],
            audio_only_ms: r.audio_only_ms,
            loss_bp_ms: r.loss_bp_ms,
            loss_known_ms: r.loss_known_ms,
            rtt_ms_ms: r.rtt_ms_ms,
            rtt_known_ms: r.rtt_known_ms,
            jitter_us_ms: r.jitter_us_ms,
            jitter_known_ms: r.jitter_known_ms,
            ..Totals::default()
        }
    }

    fn of_page(p: &PageStats) -> Totals {
        Totals {
            page_ms: p.duration_ms,
            frames_decoded: p.frames_decoded,
            freeze_count: p.freeze_count,
            freeze_ms: p.freeze_ms,
            concealed_samples: p.concealed_samples,
            total_samples: p.total_samples,
            bytes_received: p.bytes_received,
            ..Totals::default()
        }
    }

    /// What `self` (a later cumulative total) adds to `before`; all of it when any counter
    /// went down (a new connection started counting from zero).
    fn since(&self, before: &Totals) -> Totals {
        let (now, was) = (self.values(), before.values());
        if now.iter().zip(was).any(|(a, b)| *a < b) {
            return *self;
        }
        let mut d = [0u64; 19];
        for (i, x) in d.iter_mut().enumerate() {
            *x = now[i] - was[i];
        }
        Totals::from_values(d)
    }
}

/// The writer's memory: the last cumulative totals per media session and per page
/// connection, and what is still to be added per (lesson, participant). Pure.
#[derive(Debug, Default)]
pub(crate) struct Merge {
    media: HashMap<String, Totals>,
    pages: HashMap<(i64, String, String), (Totals, tokio::time::Instant)>,
    pending: BTreeMap<(i64, String), Totals>,
}

impl Merge {
    /// A media session's cumulative totals (`last`: its final ones).
    pub(crate) fn media(
        &mut self,
        lesson: i64,
        part: &str,
        session: &str,
        r: &LinkReport,
        last: bool,
    ) {
        let now = Totals::of_media(r);
        let before = if last {
            self.media.remove(session)
        } else {
            self.media.insert(session.to_string(), now)
        };
        let d = now.since(&before.unwrap_or_default());
        self.pending
            .entry((lesson, part.to_string()))
            .or_default()
            .add(&d);
    }

    /// A page connection's cumulative figures.
    pub(crate) fn page(
        &mut self,
        lesson: i64,
        part: &str,
        p: &PageStats,
        at: tokio::time::Instant,
    ) {
        let now = Totals::of_page(p);
        let key = (lesson, part.to_string(), p.conn.clone());
        let before = self.pages.insert(key, (now, at)).map(|(t, _)| t);
        let d = now.since(&before.unwrap_or_default());
        self.pending
            .entry((lesson, part.to_string()))
            .or_default()
            .add(&d);
    }

    /// What is to be written, emptied; page connections silent for long are forgotten.
    pub(crate) fn take(&mut self, at: tokio::time::Instant) -> BTreeMap<(i64, String), Totals> {
        self.pages
            .retain(|_, (_, seen)| at.saturating_duration_since(*seen) < PAGE_FORGET);
        std::mem::take(&mut self.pending)
    }
}

enum Msg {
    Media {
        lesson: i64,
        part: String,
        session: String,
        report: LinkReport,
        last: bool,
    },
    Page {
        lesson: i64,
        part: String,
        stats: PageStats,
    },
}

/// The queue into the writer (never blocks) and the writer, started once.
pub struct Reports {
    tx: mpsc::UnboundedSender<Msg>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Msg>>>,
}

impl Default for Reports {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Reports {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl std::fmt::Debug for Reports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reports")
    }
}

impl Reports {
    /// Starts the writer on the current runtime (once; none: nothing is written).
    pub fn start(&self, store: Store, now: impl Fn() -> Millis + Send + 'static) {
        let Some(mut rx) = self.rx.lock().expect("link reports lock").take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no runtime: link reports are not stored");
            return;
        };
        rt.spawn(async move {
            let mut merge = Merge::default();
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(Msg::Media { lesson, part, session, report, last }) => {
                            merge.media(lesson, &part, &session, &report, last);
                        }
                        Some(Msg::Page { lesson, part, stats }) => {
                            merge.page(lesson, &part, &stats, tokio::time::Instant::now());
                        }
                        None => {
                            let _ = write(&store, merge.take(tokio::time::Instant::now()), now()).await;
                            return;
                        }
                    },
                    _ = tick.tick() => {
                        let batch = merge.take(tokio::time::Instant::now());
                        if !batch.is_empty() {
                            if let Err(e) = write(&store, batch, now()).await {
                                tracing::warn!("link reports: {e}");
                            }
                        }
                    }
                }
            }
        });
    }

    /// Queues a media session's totals (patrol watchers are nobody's link).
    pub fn media(&self, lesson: i64, part: &str, session: &str, report: LinkReport, last: bool) {
        if super::reports::is_patrol(part) {
            return;
        }
        let _ = self.tx.send(Msg::Media {
            lesson,
            part: part.to_string(),
            session: session.to_string(),
            report,
            last,
        });
    }

    /// Queues a page's figures.
    pub fn page(&self, lesson: i64, part: &str, stats: PageStats) {
        let _ = self.tx.send(Msg::Page {
            lesson,
            part: part.to_string(),
            stats,
        });
    }
}

/// Adds one batch to the table, in one transaction (rows of lessons that are gone are skipped).
async fn write(
    store: &Store,
    batch: BTreeMap<(i64, String), Totals>,
    at: Millis,
) -> StoreResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let cols = COLUMNS.join(", ");
    let params: Vec<String> = (0..COLUMNS.len()).map(|i| format!("${}", i + 4)).collect();
    let sets: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{c} = link_reports.{c} + excluded.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO link_reports (lesson_id, part, updated_at, {cols}) \
         SELECT $1, $2, $3, {} WHERE EXISTS (SELECT 1 FROM lessons WHERE id = $1) \
         ON CONFLICT (lesson_id, part) DO UPDATE SET updated_at = excluded.updated_at, {}",
        params.join(", "),
        sets.join(", ")
    );
    let mut tx = store.pool().begin().await?;
    for ((lesson, part), t) in batch {
        // Built from the constant column list only: nothing a caller sent is in the text.
        let mut q = sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(lesson)
            .bind(part)
            .bind(at);
        for v in t.values() {
            q = q.bind(i64::try_from(v).unwrap_or(i64::MAX));
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Time shares of one participant's video, 0..1 of its connected time.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LayerShares {
    /// At the top layer (or a video without simulcast).
    pub high: f64,
    /// At the middle layer.
    pub mid: f64,
    /// At the lowest layer.
    pub low: f64,
    /// Audio only: every video paused for the link.
    pub audio_only: f64,
}

/// One participant's link over a lesson (what its viewer sessions and its page reported).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LinkReportRow {
    /// Participant id ("c:12", "t:3").
    pub part: String,
    /// Its classroom, for a classroom.
    pub classroom_id: Option<i64>,
    /// The classroom's or teacher's name.
    pub name: String,
    /// Its school's name.
    pub school: String,
    /// Connected time of its viewer sessions (minutes).
    pub minutes: f64,
    /// The same in seconds (to the millisecond).
    pub seconds: f64,
    /// Mean media rate sent to it (kbit/s), when it was connected.
    pub kbps: Option<f64>,
    /// Time-weighted loss it reported (percent).
    pub loss_pct: Option<f64>,
    /// Time-weighted round trip (ms).
    pub rtt_ms: Option<f64>,
    /// Time-weighted interarrival jitter (ms).
    pub jitter_ms: Option<f64>,
    /// Share of its time at each layer and audio only.
    pub layers: LayerShares,
    /// Video frames decoded per second (its page's `getStats`).
    pub fps: Option<f64>,
    /// Video freezes (its page's `freezeCount`).
    pub freezes: Option<i64>,
    /// Share of its page's time the video was frozen (percent).
    pub freeze_pct: Option<f64>,
    /// Audio concealed (percent of samples received).
    pub concealment_pct: Option<f64>,
    /// Its grade from mean loss and round trip (good/fair/poor, as the live grade).
    pub grade: Grade,
}

/// A lesson's link report: one row per participant that had a viewer session or a page.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LessonLinkReport {
    /// The lesson.
    pub lesson: i64,
    /// Classrooms first (by id), then people.
    pub rows: Vec<LinkReportRow>,
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn mean(sum: u64, over: u64, scale: f64) -> Option<f64> {
    (over > 0).then(|| sum as f64 / over as f64 * scale)
}

/// The figures of one stored row (pure).
pub(crate) fn figures(part: &str, t: &Totals) -> LinkReportRow {
    let share = |x: u64| {
        if t.media_ms == 0 {
            0.0
        } else {
            round(x as f64 / t.media_ms as f64, 3)
        }
    };
    let loss = mean(t.loss_bp_ms, t.loss_known_ms, 0.01).map(|v| round(v, 2));
    let rtt = mean(t.rtt_ms_ms, t.rtt_known_ms, 1.0).map(|v| round(v, 1));
    let has_page = t.page_ms > 0;
    LinkReportRow {
        part: part.to_string(),
        classroom_id: super::policy::part_classroom(part),
        name: part.to_string(),
        school: String::new(),
        minutes: round(t.media_ms as f64 / 60_000.0, 1),
        seconds: t.media_ms as f64 / 1000.0,
        kbps: mean(t.bytes_out * 8, t.media_ms, 1.0).map(|v| round(v, 1)),
        loss_pct: loss,
        rtt_ms: rtt,
        jitter_ms: mean(t.jitter_us_ms, t.jitter_known_ms, 0.001).map(|v| round(v, 1)),
        layers: LayerShares {
            high: share(t.layer_high_ms),
            mid: share(t.layer_mid_ms),
            low: share(t.layer_low_ms),
            audio_only: share(t.audio_only_ms),
        },
        fps: mean(t.frames_decoded, t.page_ms, 1000.0).map(|v| round(v, 1)),
        freezes: has_page.then_some(t.freeze_count as i64),
        freeze_pct: mean(t.freeze_ms, t.page_ms, 100.0).map(|v| round(v, 2)),
        concealment_pct: mean(t.concealed_samples, t.total_samples, 100.0).map(|v| round(v, 2)),
        grade: grade(rtt, loss),
    }
}

fn totals_of(r: &sqlx::any::AnyRow) -> StoreResult<Totals> {
    let mut v = [0u64; 19];
    for (i, c) in COLUMNS.iter().enumerate() {
        let x: i64 = col(r, c)?;
        v[i] = x.max(0) as u64;
    }
    Ok(Totals::from_values(v))
}

/// The stored rows of `lessons` as (lesson, part, totals).
async fn rows_of(
    store: &Store,
    sql: String,
    binds: &[i64],
) -> StoreResult<Vec<(i64, String, Totals)>> {
    // Built from the constant column list only.
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for b in binds {
        q = q.bind(*b);
    }
    q.fetch_all(store.pool())
        .await?
        .iter()
        .map(|r| Ok((col(r, "lesson_id")?, col(r, "part")?, totals_of(r)?)))
        .collect()
}

/// The link report of `lesson`, with names.
pub async fn of_lesson(store: &Store, lesson: i64) -> StoreResult<LessonLinkReport> {
    let sql = format!(
        "SELECT lesson_id, part, {} FROM link_reports WHERE lesson_id = $1",
        COLUMNS.join(", ")
    );
    let stored = rows_of(store, sql, &[lesson]).await?;
    let names = super::reports::names(store).await?;
    let mut rows: Vec<LinkReportRow> = stored
        .iter()
        .filter(|(_, part, _)| !super::reports::is_patrol(part))
        .map(|(_, part, t)| {
            let mut row = figures(part, t);
            let who = match part.split_once(':') {
                Some(("c", n)) => n.parse::<i64>().ok().and_then(|c| names.classrooms.get(&c)),
                Some(("t", n)) => n.parse::<i64>().ok().and_then(|t| names.teachers.get(&t)),
                _ => None,
            };
            if let Some((name, school)) = who {
                row.name = name.clone();
                row.school = names.schools.get(school).cloned().unwrap_or_default();
            }
            row
        })
        .collect();
    rows.sort_by_key(|r| (r.classroom_id.is_none(), r.classroom_id, r.part.clone()));
    Ok(LessonLinkReport { lesson, rows })
}

/// The grade of each participant's stored link report, for lessons whose bell is in
/// `[from, to)`: (lesson, part, grade). The reports' link quality per school counts these.
pub async fn grades_between(
    store: &Store,
    from: Millis,
    to: Millis,
) -> StoreResult<Vec<(i64, String, String)>> {
    let sql =
        format!(
        "SELECT r.lesson_id, r.part, {} FROM link_reports r JOIN lessons l ON l.id = r.lesson_id \
         WHERE l.starts_at >= $1 AND l.starts_at < $2",
        COLUMNS.iter().map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ")
    );
    let rows = rows_of(store, sql, &[from, to]).await?;
    Ok(rows
        .into_iter()
        // A row with no loss or round trip known says nothing about the line.
        .filter(|(_, _, t)| t.loss_known_ms > 0 || t.rtt_known_ms > 0)
        .map(|(lesson, part, t)| {
            let g = figures(&part, &t).grade;
            let g = match g {
                Grade::Good => "good",
                Grade::Fair => "fair",
                Grade::Poor => "poor",
            };
            (lesson, part, g.to_string())
        })
        .collect())
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The report as CSV (UTF-8 with a BOM, Chinese headers: Excel on Chinese Windows opens it).
pub fn csv(r: &LessonLinkReport) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "参与方",
        "名称",
        "学校",
        "在线分钟",
        "平均码率(kbit/s)",
        "丢包率(%)",
        "往返时延(ms)",
        "抖动(ms)",
        "高清层占比",
        "中层占比",
        "低层占比",
        "仅音频占比",
        "帧率(fps)",
        "卡顿次数",
        "卡顿时长占比(%)",
        "音频补偿(%)",
        "线路等级",
    ])?;
    for x in &r.rows {
        let grade = match x.grade {
            Grade::Good => "良好",
            Grade::Fair => "一般",
            Grade::Poor => "较差",
        };
        w.write_record([
            x.part.clone(),
            x.name.clone(),
            x.school.clone(),
            x.minutes.to_string(),
            opt(x.kbps),
            opt(x.loss_pct),
            opt(x.rtt_ms),
            opt(x.jitter_ms),
            x.layers.high.to_string(),
            x.layers.mid.to_string(),
            x.layers.low.to_string(),
            x.layers.audio_only.to_string(),
            opt(x.fps),
            x.freezes.map(|f| f.to_string()).unwrap_or_default(),
            opt(x.freeze_pct),
            opt(x.concealment_pct),
            grade.to_string(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(format!("\u{feff}{}", String::from_utf8_lossy(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn report(ms: u64, high: u64, low: u64, loss_bp: u64) -> LinkReport {
        LinkReport {
            ms,
            layer_ms: [high, 0, low],
            bytes: ms * 100,
            loss_bp_ms: loss_bp * ms,
            loss_known_ms: ms,
            ..Default::default()
        }
    }

    #[test]
    fn cumulative_totals_become_deltas_and_sessions_add_up() {
        let mut m = Merge::default();
        let t = tokio::time::Instant::now();
        m.media(1, "c:5", "s1", &report(5_000, 5_000, 0, 100), false);
        m.media(1, "c:5", "s1", &report(10_000, 8_000, 2_000, 100), false);
        // A second session of the same classroom (a reconnect), and its end.
        m.media(1, "c:5", "s2", &report(3_000, 0, 3_000, 500), false);
        m.media(1, "c:5", "s2", &report(4_000, 0, 4_000, 500), true);
        let b = m.take(t);
        let got = b[&(1, "c:5".to_string())];
        assert_eq!(got.media_ms, 14_000);
        assert_eq!((got.layer_high_ms, got.layer_low_ms), (8_000, 6_000));
        let row = figures("c:5", &got);
        // (1 % × 10 s + 5 % × 4 s) / 14 s.
        assert_eq!(
            row.loss_pct,
            Some(round((1.0 * 10.0 + 5.0 * 4.0) / 14.0, 2))
        );
        assert_eq!(row.kbps, Some(800.0), "100 bytes a ms");
        assert_eq!(row.classroom_id, Some(5));
        // Nothing new: nothing pending; s2 is forgotten, s1 goes on from where it was.
        assert!(m.take(t).is_empty());
        m.media(1, "c:5", "s1", &report(11_000, 9_000, 2_000, 100), false);
        assert_eq!(m.take(t)[&(1, "c:5".to_string())].media_ms, 1_000);
    }

    #[test]
    fn a_page_that_reconnects_starts_again_from_zero() {
        let mut m = Merge::default();
        let t = tokio::time::Instant::now();
        let p = |conn: &str, d: u64, frames: u64| PageStats {
            conn: conn.into(),
            duration_ms: d,
            frames_decoded: frames,
            total_samples: d * 48,
            ..Default::default()
        };
        m.page(2, "c:7", &p("a", 10_000, 300), t);
        m.page(2, "c:7", &p("a", 20_000, 580), t);
        // Its counters went down: a new connection under the same id.
        m.page(2, "c:7", &p("a", 5_000, 150), t);
        let got = m.take(t)[&(2, "c:7".to_string())];
        assert_eq!(got.page_ms, 25_000);
        assert_eq!(got.frames_decoded, 730);
        assert_eq!(figures("c:7", &got).fps, Some(29.2));
        // Forgotten after ten silent minutes.
        m.page(2, "c:7", &p("a", 6_000, 180), t);
        m.take(t + PAGE_FORGET);
        m.page(2, "c:7", &p("a", 7_000, 210), t + PAGE_FORGET);
        assert_eq!(m.take(t).values().next().unwrap().page_ms, 7_000);
    }

    #[test]
    fn bad_page_stats_are_refused_with_a_reason() {
        let ok = br#"{"conn":"a-1","duration_ms":10000,"frames_decoded":290,"freeze_count":1,
            "freeze_ms":200,"concealed_samples":10,"total_samples":480000,"bytes_received":9}"#;
        assert_eq!(parse_page_stats(ok).unwrap().frames_decoded, 290);
        for bad in [
            &b"{}"[..],
            b"not json",
            br#"{"conn":"","duration_ms":1}"#,
            br#"{"conn":"a b","duration_ms":1}"#,
            br#"{"conn":"a","duration_ms":-1}"#,
            br#"{"conn":"a","duration_ms":1.5}"#,
            br#"{"conn":"a","duration_ms":1,"other":1}"#,
            br#"{"conn":"a","duration_ms":10,"freeze_ms":11}"#,
            br#"{"conn":"a","duration_ms":2000000000000}"#,
        ] {
            assert!(
                parse_page_stats(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_page_stats(&vec![b' '; MAX_PAGE_BODY + 1]).is_err());
    }

    #[test]
    fn the_csv_has_a_bom_and_chinese_headers() {
        let t = Totals::of_media(&report(60_000, 30_000, 30_000, 300));
        let mut row = figures("c:3", &t);
        row.name = "三年级1班".into();
        let text = csv(&LessonLinkReport {
            lesson: 1,
            rows: vec![row],
        })
        .unwrap();
        assert!(text.starts_with("\u{feff}参与方,名称,学校,在线分钟"));
        assert!(text.contains("c:3,三年级1班,,1,"), "{text}");
        assert!(
            text.trim_end().ends_with("一般"),
            "3 % loss is fair: {text}"
        );
    }

    proptest! {
        #[test]
        fn any_body_is_a_reason_or_stats_never_a_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_page_stats(&body);
        }

        #[test]
        fn any_json_object_is_judged(conn in "[ -~]{0,70}", d in any::<u64>(), f in any::<u64>(), fm in any::<u64>()) {
            let body = serde_json::json!({"conn": conn, "duration_ms": d, "frames_decoded": f, "freeze_ms": fm});
            if let Ok(s) = parse_page_stats(body.to_string().as_bytes()) {
                prop_assert!(s.freeze_ms <= s.duration_ms && s.duration_ms <= MAX_COUNTER);
            }
        }

        #[test]
        fn deltas_never_lose_or_invent_time(steps in proptest::collection::vec(0u64..10_000, 1..20)) {
            let mut m = Merge::default();
            let t = tokio::time::Instant::now();
            let mut total = 0;
            for s in &steps {
                total += s;
                m.media(1, "c:1", "s", &report(total, total, 0, 0), false);
            }
            let got = m.take(t).get(&(1, "c:1".to_string())).map(|x| x.media_ms).unwrap_or(0);
            prop_assert_eq!(got, total);
        }
    }
}
