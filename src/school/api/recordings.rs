//! Recordings (录像): the list by lesson, teacher, school and date (paged, only what the caller
//! may see), one recording's metadata (subject, grade, textbook edition, chapter, teacher,
//! paired schools) and sources, its manifest, and range-request playback and download of each
//! source file through the storage trait; a recording's processing as server-sent events. Must
//! never serve a file neither the manifest nor a finished export lists, nor a recording
//! outside the caller's scope (`access::may_see_recording`).

#[allow(unused_imports)]
use super::*;

use crate::record::process::Manifest;
use crate::school::recording::{Recording, COLS};

/// An id and a name.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(super) struct Named {
    /// Id.
    id: i64,
    /// Name.
    name: String,
}

/// What was recorded: the lesson's fields a catalogue shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(super) struct RecordedLesson {
    /// The lesson's id.
    id: i64,
    /// Title (课题).
    title: String,
    /// Subject.
    subject: String,
    /// Grade.
    grade: String,
    /// Textbook edition.
    textbook: String,
    /// Chapter.
    chapter: String,
    /// Mode.
    mode: LessonMode,
    /// The bell, RFC 3339 local time.
    starts: String,
}

/// A recording as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(super) struct RecordingView {
    #[serde(flatten)]
    recording: Recording,
    /// Start, RFC 3339 local time.
    started: String,
    /// End, RFC 3339 local time, once it has ended.
    ended: Option<String>,
    /// The lesson recorded (none for a plain room).
    lesson: Option<RecordedLesson>,
    /// The hub teacher.
    teacher: Option<Named>,
    /// The hub school.
    school: Option<Named>,
    /// The schools of the lesson's other classrooms (结对学校).
    paired_schools: Vec<Named>,
    /// Days it is kept after it ends (0: kept).
    retention_days: i64,
    /// When the retention sweep deletes it, RFC 3339 local time (none: kept).
    expires: Option<String>,
}

/// A page of recordings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct RecordingPage {
    /// This page's recordings, newest first.
    items: Vec<RecordingView>,
    /// Recordings matching the filters that the caller may see, on all pages.
    total: u64,
    /// This page (from 1).
    page: u64,
    /// Recordings per page.
    per_page: u64,
}

/// One playable file of a recording.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(super) struct SourceView {
    /// File name.
    file: String,
    /// `teacher_camera`, `courseware`, `classroom_camera` or `audio`.
    kind: String,
    /// Codecs (`vp8,opus`).
    codec: String,
    /// MIME type.
    mime: String,
    /// Who published it.
    owner: String,
    /// Whether the owner is the hub.
    hub: bool,
    /// Where the file's time zero sits on the lesson timeline, ms.
    start_ms: u64,
    /// Duration, ms.
    duration_ms: u64,
    /// Frames, all tracks.
    frames: u64,
    /// Losses in it.
    gaps: u64,
    /// Playback (range requests).
    url: String,
    /// Download (as an attachment).
    download: String,
}

/// One recording: the list's fields plus its sources once processed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct RecordingDetail {
    #[serde(flatten)]
    view: RecordingView,
    /// The lesson timeline's length, ms (once processed).
    duration_ms: Option<u64>,
    /// False when the capture was cut off (once processed).
    complete: Option<bool>,
    /// What processing noted.
    notes: Vec<String>,
    /// The playable files (empty until processed, or after deletion).
    sources: Vec<SourceView>,
    /// All recordings of its lesson, by start (this one among them): a lesson live across a
    /// server restart is recorded in parts, with a gap between them. Empty for a plain room.
    parts: Vec<RecordingPart>,
}

/// One recording of a lesson recorded in parts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct RecordingPart {
    /// The recording's id.
    id: i64,
    /// Start, RFC 3339 local time.
    started: String,
    /// End, RFC 3339 local time, once it has ended.
    ended: Option<String>,
    /// `recording`, `stopped` or `failed`.
    state: String,
    /// `processing`, `ready` or `failed`; none before processing starts.
    processing: Option<String>,
    /// Nothing was captured for this long between the previous part's end and this part's
    /// start, ms (none for the first part, or while the previous one runs).
    gap_before_ms: Option<i64>,
}

/// The parts of lesson `lesson`'s recording (its recordings not deleted), by start.
async fn parts_of(st: &SchoolState, lesson: Option<i64>) -> Result<Vec<RecordingPart>, ApiError> {
    let Some(lesson) = lesson else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT {COLS} FROM recordings WHERE lesson_id = $1 AND deleted_at IS NULL \
         ORDER BY started_at, id"
    );
    let rows: Vec<Recording> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(lesson)
        .fetch_all(st.store.pool())
        .await
        .map_err(crate::store::StoreError::from)?;
    let mut prev_end: Option<Option<i64>> = None;
    Ok(rows
        .into_iter()
        .map(|r| {
            let gap = prev_end.flatten().map(|e| (r.started_at - e).max(0));
            prev_end = Some(r.ended_at);
            RecordingPart {
                id: r.id,
                started: rfc3339(r.started_at, st.offset),
                ended: r.ended_at.map(|e| rfc3339(e, st.offset)),
                state: r.state,
                processing: r.processing,
                gap_before_ms: gap,
            }
        })
        .collect())
}

/// Names of teachers and schools (two queries).
struct Names {
    teachers: HashMap<i64, String>,
    schools: HashMap<i64, String>,
}

impl Names {
    async fn load(st: &SchoolState) -> Result<Names, ApiError> {
        let t: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM teachers")
            .fetch_all(st.store.pool())
            .await
            .map_err(crate::store::StoreError::from)?;
        let s: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM schools")
            .fetch_all(st.store.pool())
            .await
            .map_err(crate::store::StoreError::from)?;
        Ok(Names {
            teachers: t.into_iter().collect(),
            schools: s.into_iter().collect(),
        })
    }

    fn school(&self, id: i64) -> Named {
        Named {
            id,
            name: self.schools.get(&id).cloned().unwrap_or_default(),
        }
    }
}

/// Every school's own retention (days), in one query: the list's retention without a query
/// per recording.
async fn retention_by_school(st: &SchoolState) -> Result<HashMap<i64, Option<i64>>, ApiError> {
    let rows: Vec<(i64, Option<i64>)> = sqlx::query_as("SELECT id, retention_days FROM schools")
        .fetch_all(st.store.pool())
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(rows.into_iter().collect())
}

/// The recording's retention: its hub school's days, else the configured default.
async fn retention_of(st: &SchoolState, d: &Directory, l: Option<&Lesson>) -> i64 {
    let own = match l.and_then(|l| d.classrooms.get(&l.hub_classroom_id)) {
        Some(s) => {
            sqlx::query_as::<_, (Option<i64>,)>("SELECT retention_days FROM schools WHERE id = $1")
                .bind(*s)
                .fetch_optional(st.store.pool())
                .await
                .ok()
                .flatten()
                .and_then(|(d,)| d)
        }
        None => None,
    };
    crate::school::retention::days_for(own, st.config.recording.retention_days)
}

fn view_of(
    st: &SchoolState,
    r: Recording,
    l: Option<&Lesson>,
    d: &Directory,
    names: &Names,
    retention_days: i64,
) -> RecordingView {
    let hub_school = l.and_then(|l| d.classrooms.get(&l.hub_classroom_id).copied());
    let mut paired: Vec<i64> = l
        .map(|l| {
            l.sites
                .iter()
                .filter_map(|s| d.classrooms.get(&s.classroom_id).copied())
                .filter(|s| Some(*s) != hub_school)
                .collect()
        })
        .unwrap_or_default();
    paired.sort_unstable();
    paired.dedup();
    let expires = if r.deleted_at.is_some() || r.state == "recording" {
        None
    } else {
        crate::school::retention::expires_at(r.ended_at.unwrap_or(r.started_at), retention_days)
            .map(|at| rfc3339(at, st.offset))
    };
    RecordingView {
        started: rfc3339(r.started_at, st.offset),
        ended: r.ended_at.map(|e| rfc3339(e, st.offset)),
        lesson: l.map(|l| RecordedLesson {
            id: l.id,
            title: l.title.clone(),
            subject: l.subject.clone(),
            grade: l.grade.clone(),
            textbook: l.textbook.clone(),
            chapter: l.chapter.clone(),
            mode: l.mode,
            starts: rfc3339(l.starts_at, st.offset),
        }),
        teacher: l.map(|l| Named {
            id: l.hub_teacher_id,
            name: names
                .teachers
                .get(&l.hub_teacher_id)
                .cloned()
                .unwrap_or_default(),
        }),
        school: hub_school.map(|s| names.school(s)),
        paired_schools: paired.into_iter().map(|s| names.school(s)).collect(),
        retention_days,
        expires,
        recording: r,
    }
}

/// A query parameter as a positive number, or a clear 400.
fn positive(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad-query",
                    format!("{key} must be a positive whole number (got `{v}`)"),
                )
            }),
    }
}

/// The first millisecond of local day `key`, or (`end`) of the day after it.
fn day(st: &SchoolState, q: &HashMap<String, String>, key: &str, end: bool) -> ApiResult2<i64> {
    let Some(v) = q.get(key) else {
        return Ok(None);
    };
    let d = parse_date(v).ok_or_else(|| {
        ApiError::bad_request(
            "bad-query",
            format!("{key}: `{v}` is not a date (YYYY-MM-DD)"),
        )
    })?;
    let d = if end { d.next_day().unwrap_or(d) } else { d };
    Ok(Some(crate::time::local_to_millis(
        d,
        time::Time::MIDNIGHT,
        st.offset,
    )))
}

type ApiResult2<T> = Result<Option<T>, ApiError>;

/// The lessons of `rows` (each loaded once): one query per lesson for a few, else every
/// recorded lesson in one query, so a long list costs a bounded number of queries.
async fn lessons_of(
    st: &SchoolState,
    rows: &[Recording],
) -> Result<HashMap<i64, Lesson>, ApiError> {
    let wanted: std::collections::HashSet<i64> = rows.iter().filter_map(|r| r.lesson_id).collect();
    if wanted.len() > 2 {
        return Ok(model::lessons_recorded(&st.store)
            .await?
            .into_iter()
            .filter(|l| wanted.contains(&l.id))
            .map(|l| (l.id, l))
            .collect());
    }
    let mut out = HashMap::new();
    for id in rows.iter().filter_map(|r| r.lesson_id) {
        if let std::collections::hash_map::Entry::Vacant(e) = out.entry(id) {
            match model::get_lesson(&st.store, id).await {
                Ok(l) => {
                    e.insert(l);
                }
                Err(crate::store::StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(out)
}

fn may_see(p: &Principal, r: &Recording, lessons: &HashMap<i64, Lesson>, d: &Directory) -> bool {
    match r.lesson_id {
        // A lesson deleted since: only what a plain room's recording allows.
        Some(id) => match lessons.get(&id) {
            Some(l) => access::may_see_recording(p, Some((l, &d.lesson(l)))),
            None => access::may_see_recording(p, None),
        },
        None => access::may_see_recording(p, None),
    }
}

#[utoipa::path(
    get, path = "/api/recordings",
    params(
        ("lesson_id" = Option<i64>, Query, description = "one lesson's recordings"),
        ("teacher_id" = Option<i64>, Query, description = "lessons this teacher taught (hub) or assisted"),
        ("school_id" = Option<i64>, Query, description = "lessons with a classroom of this school"),
        ("from" = Option<String>, Query, format = Date, description = "started on or after this local day"),
        ("to" = Option<String>, Query, format = Date, description = "started on or before this local day"),
        ("page" = Option<i64>, Query, description = "page, from 1 (default 1)"),
        ("per_page" = Option<i64>, Query, description = "recordings per page, at most 200 (default 50)")),
    responses((status = 200, description = "the recordings the caller may see, newest first (deleted ones left out)", body = RecordingPage))
)]
pub(super) async fn recordings_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let lesson = positive(&q, "lesson_id")?;
    let teacher = positive(&q, "teacher_id")?;
    let school = positive(&q, "school_id")?;
    let page = positive(&q, "page")?.unwrap_or(1);
    let per_page = positive(&q, "per_page")?.unwrap_or(50);
    if per_page > 200 {
        return Err(ApiError::bad_request(
            "bad-query",
            format!("per_page must be at most 200 (got {per_page})"),
        ));
    }
    let from = day(&st, &q, "from", false)?;
    let to = day(&st, &q, "to", true)?;
    let mut sql = format!("SELECT {COLS} FROM recordings WHERE deleted_at IS NULL");
    let mut binds: Vec<i64> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, v: i64| {
        binds.push(v);
        sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
    };
    if let Some(l) = lesson {
        arg(&mut sql, " AND lesson_id = ?", l);
    }
    if let Some(t) = teacher {
        arg(
            &mut sql,
            " AND lesson_id IN (SELECT id FROM lessons WHERE hub_teacher_id = ? \
             UNION SELECT lesson_id FROM lesson_sites WHERE assisting_teacher_id = ?)",
            t,
        );
    }
    if let Some(s) = school {
        arg(
            &mut sql,
            " AND lesson_id IN (SELECT l.id FROM lessons l JOIN classrooms c \
             ON c.id = l.hub_classroom_id WHERE c.school_id = ? UNION SELECT ls.lesson_id \
             FROM lesson_sites ls JOIN classrooms c ON c.id = ls.classroom_id WHERE c.school_id = ?)",
            s,
        );
    }
    if let Some(f) = from {
        arg(&mut sql, " AND started_at >= ?", f);
    }
    if let Some(t) = to {
        arg(&mut sql, " AND started_at < ?", t);
    }
    sql.push_str(" ORDER BY started_at DESC, id DESC");
    let mut query = sqlx::query_as::<_, Recording>(sqlx::AssertSqlSafe(sql));
    for b in binds {
        query = query.bind(b);
    }
    let rows = query
        .fetch_all(st.store.pool())
        .await
        .map_err(crate::store::StoreError::from)?;
    let d = Directory::load(&st.store).await?;
    let lessons = lessons_of(&st, &rows).await?;
    let visible: Vec<Recording> = rows
        .into_iter()
        .filter(|r| may_see(&p, r, &lessons, &d))
        .collect();
    let total = visible.len() as u64;
    let skip = usize::try_from((page - 1).saturating_mul(per_page)).unwrap_or(usize::MAX);
    let names = Names::load(&st).await?;
    let retention = retention_by_school(&st).await?;
    let mut items = Vec::new();
    for r in visible.into_iter().skip(skip).take(per_page as usize) {
        let l = r.lesson_id.and_then(|id| lessons.get(&id));
        let own = l
            .and_then(|l| d.classrooms.get(&l.hub_classroom_id))
            .and_then(|s| retention.get(s).copied().flatten());
        let days = crate::school::retention::days_for(own, st.config.recording.retention_days);
        items.push(view_of(&st, r, l, &d, &names, days));
    }
    Ok(Json(RecordingPage {
        items,
        total,
        page: page as u64,
        per_page: per_page as u64,
    })
    .into_response())
}

/// Recording `id` if the caller may see it, with its lesson and the directory.
pub(super) async fn recording_for(
    st: &SchoolState,
    p: &Principal,
    id: &str,
) -> Result<(Recording, Option<Lesson>, Directory), ApiError> {
    let id = parse_id(id)?;
    let sql = format!("SELECT {COLS} FROM recordings WHERE id = $1");
    let r: Recording = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(st.store.pool())
        .await
        .map_err(crate::store::StoreError::from)?
        .ok_or_else(|| ApiError::not_found("not-found", format!("no recording {id}")))?;
    let d = Directory::load(&st.store).await?;
    let mut lessons = lessons_of(st, std::slice::from_ref(&r)).await?;
    if !may_see(p, &r, &lessons, &d) {
        return Err(out_of_scope(format!("recording {id}")));
    }
    let l = r.lesson_id.and_then(|l| lessons.remove(&l));
    Ok((r, l, d))
}

/// The processed recording's manifest, read through the storage trait.
pub(super) async fn manifest_of(
    st: &SchoolState,
    r: &Recording,
) -> Result<(Manifest, Vec<u8>), ApiError> {
    if r.deleted_at.is_some() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "recording-deleted",
            format!("recording {} was deleted by the retention policy", r.id),
        ));
    }
    if r.processing.as_deref() != Some("ready") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "recording-not-ready",
            format!(
                "recording {} is not processed yet ({})",
                r.id,
                r.processing.as_deref().unwrap_or(&r.state)
            ),
        ));
    }
    let storage = crate::school::recording::storage(st);
    let id = r.id;
    let bytes =
        tokio::task::spawn_blocking(move || storage.file(id, MANIFEST_FILE).map(std::fs::read))
            .await
            .map_err(ApiError::internal)?;
    let bytes = match bytes {
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            return Err(ApiError::internal(format!(
                "recording {id}: its manifest cannot be read: {e}"
            )))
        }
        None => return Err(ApiError::internal("no manifest file name")),
    };
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("recording {id}: a bad manifest: {e}")))?;
    Ok((m, bytes))
}

/// `file` if a finished export of recording `id` made it (its MP4 or thumbnail), with its
/// MIME type (issue 20: exports downloaded from the player page).
async fn export_file(
    st: &SchoolState,
    id: i64,
    file: &str,
) -> Result<Option<(String, String)>, ApiError> {
    let rows: Vec<(Option<String>,)> = sqlx::query_as(
        "SELECT outcome FROM export_jobs WHERE recording_id = $1 AND state = 'done'",
    )
    .bind(id)
    .fetch_all(st.store.pool())
    .await
    .map_err(crate::store::StoreError::from)?;
    let mime = |f: &str| {
        let ext = f.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "mp4" => "video/mp4",
            "jpg" | "jpeg" => "image/jpeg",
            "png" => "image/png",
            _ => "application/octet-stream",
        }
        .to_string()
    };
    Ok(rows
        .into_iter()
        .filter_map(|(o,)| serde_json::from_str::<crate::record::export::ExportOutcome>(&o?).ok())
        .flat_map(|o| [o.file, o.thumbnail])
        .find(|f| f == file)
        .map(|f| {
            let m = mime(&f);
            (f, m)
        }))
}

/// The manifest's name in a recording's place (`record::recover` writes it).
const MANIFEST_FILE: &str = "manifest.json";

fn file_url(id: i64, file: &str) -> String {
    format!("/api/recordings/{id}/files/{file}")
}

#[utoipa::path(
    get, path = "/api/recordings/{id}", params(("id" = i64, Path, description = "the recording's id")),
    responses((status = 200, description = "the recording, its lesson's metadata and its playable sources", body = RecordingDetail))
)]
pub(super) async fn recordings_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let (r, l, d) = recording_for(&st, &p, &id).await?;
    let manifest = if r.deleted_at.is_none() && r.processing.as_deref() == Some("ready") {
        Some(manifest_of(&st, &r).await?.0)
    } else {
        None
    };
    let names = Names::load(&st).await?;
    let days = retention_of(&st, &d, l.as_ref()).await;
    let parts = parts_of(&st, r.lesson_id).await?;
    let rid = r.id;
    let view = view_of(&st, r, l.as_ref(), &d, &names, days);
    let sources = manifest
        .as_ref()
        .map(|m| {
            m.sources
                .iter()
                .map(|s| SourceView {
                    file: s.file.clone(),
                    kind: serde_json::to_value(s.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    codec: s.codec.clone(),
                    mime: s.mime.clone(),
                    owner: s.owner.clone(),
                    hub: s.hub,
                    start_ms: s.start_ms,
                    duration_ms: s.duration_ms,
                    frames: s.frames,
                    gaps: s.gaps.len() as u64,
                    url: file_url(rid, &s.file),
                    download: format!("{}?download=1", file_url(rid, &s.file)),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(RecordingDetail {
        view,
        duration_ms: manifest.as_ref().map(|m| m.duration_ms),
        complete: manifest.as_ref().map(|m| m.complete),
        notes: manifest.map(|m| m.notes).unwrap_or_default(),
        sources,
        parts,
    })
    .into_response())
}

#[utoipa::path(
    get, path = "/api/recordings/{id}/manifest", params(("id" = i64, Path, description = "the recording's id")),
    responses((status = 200, description = "the processed recording's manifest.json (sources, offsets, durations, gaps, checksums)", body = Object),
        (status = 410, description = "the retention policy deleted the recording", body = crate::problem::Problem, content_type = "application/problem+json"))
)]
pub(super) async fn recordings_manifest(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let (r, _, _) = recording_for(&st, &p, &id).await?;
    let (_, bytes) = manifest_of(&st, &r).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}

#[utoipa::path(
    get, path = "/api/recordings/{id}/files/{file}",
    params(("id" = i64, Path, description = "the recording's id"),
        ("file" = String, Path, description = "a file the manifest lists"),
        ("download" = Option<bool>, Query, description = "as an attachment (download) rather than inline")),
    responses(
        (status = 200, description = "the whole file", body = Vec<u8>, content_type = "video/webm"),
        (status = 206, description = "the requested range (`Range: bytes=a-b`), with `Content-Range`", body = Vec<u8>, content_type = "video/webm"),
        (status = 410, description = "the retention policy deleted the recording", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 416, description = "a range that is malformed or outside the file (`Content-Range: bytes */size`)", body = crate::problem::Problem, content_type = "application/problem+json"))
)]
pub(super) async fn recordings_file(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path((id, file)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> ApiResult {
    let (r, l, _) = recording_for(&st, &p, &id).await?;
    let (m, _) = manifest_of(&st, &r).await?;
    // A source the manifest lists, or what a finished export of it made (MP4, thumbnail).
    let listed = match m.sources.iter().find(|s| s.file == file) {
        Some(src) => Some((src.file.clone(), src.mime.clone())),
        None => export_file(&st, r.id, &file).await?,
    };
    let Some((name, mime)) = listed else {
        return Err(ApiError::not_found(
            "not-found",
            format!("recording {} has no file `{file}`", r.id),
        ));
    };
    let storage = crate::school::recording::storage(&st);
    let Some(path) = storage.file(r.id, &name) else {
        return Err(ApiError::not_found(
            "not-found",
            format!("`{file}` is not a file name"),
        ));
    };
    let mime = HeaderValue::from_str(&mime)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let download = matches!(q.get("download").map(String::as_str), Some("1" | "true"));
    let disposition = if download {
        // The lesson's date and subject make the saved file's name; the file name is ASCII.
        let stem = l
            .as_ref()
            .map(|l| {
                format!(
                    "{}-{}-",
                    crate::time::fmt_date(millis_to_local(l.starts_at, st.offset).date()),
                    l.id
                )
            })
            .unwrap_or_default();
        format!("attachment; filename=\"recording-{}-{stem}{}\"", r.id, name)
    } else {
        "inline".to_string()
    };
    // Range, 206, Content-Range and 416 come from tower-http's ServeFile (http-range-header
    // parses the header); only the headers it reads go to it.
    let mut inner = axum::http::Request::builder().method(req.method());
    for h in [
        header::RANGE,
        header::IF_RANGE,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ] {
        if let Some(v) = req.headers().get(&h) {
            inner = inner.header(h, v);
        }
    }
    let inner = inner
        .body(axum::body::Body::empty())
        .map_err(ApiError::internal)?;
    let served = tower::ServiceExt::oneshot(tower_http::services::ServeFile::new(&path), inner)
        .await
        .map_err(ApiError::internal)?;
    let status = served.status();
    if status == StatusCode::NOT_FOUND {
        return Err(ApiError::internal(format!(
            "recording {}: `{file}` is listed but missing",
            r.id
        )));
    }
    if status == StatusCode::RANGE_NOT_SATISFIABLE {
        let size = served.headers().get(header::CONTENT_RANGE).cloned();
        let range = req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut resp = ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range-not-satisfiable",
            format!("`Range: {range}` is malformed, has several ranges, or lies outside the file"),
        )
        .into_response();
        if let Some(v) = size {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return Ok(resp);
    }
    let mut resp = served.map(axum::body::Body::new);
    resp.headers_mut().insert(header::CONTENT_TYPE, mime);
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(resp)
}
