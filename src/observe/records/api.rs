//! The teacher-record API: the configured micro-ability points, a teacher's record for a
//! term (JSON and CSV), and micro-ability evidence (a recording clip and uploaded files,
//! graded item by item). Its own route table ([`ROUTES`]) goes through the school API's
//! guard, so no route exists without a role rule; the object rules are here. Must never let
//! anyone read a record outside the rules below, store a file whose content is not an allowed
//! type, or grade without an audit line.
//!
//! | object | read | write |
//! | --- | --- | --- |
//! | a teacher's record (and its evidence files) | the teacher themself; admins and observers whose scope covers the teacher's school | |
//! | evidence item | as the record | the teacher themself (add; delete or add files while ungraded; none of it once the point is drawn for inspection) |
//! | an evidence item's grade | as the record | admins and observers whose scope covers the teacher's school (never the teacher) |
//!
//! Inspectors see only what an inspection round assigns them (blinded), not records; other
//! teachers and classroom devices never see them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::grading::Grade;
use super::points::{self, AbilityPoints};
use super::record::{self, Clock, EvidenceView, FileView, TeacherRecord};
use super::store::{self as rstore, EvidenceRow, NewEvidence, NewFile};
use crate::auth::people::{Principal, Role};
use crate::problem::{ApiError, JsonBody};
use crate::school::access::{out_of_scope, Directory};
use crate::school::api::{Allow, RouteRule};
use crate::school::model::{self, Teacher};
use crate::school::SchoolState;

type ApiResult = Result<Response, ApiError>;

const PEOPLE: &[Role] = &[Role::Admin, Role::Teacher, Role::Observer, Role::Inspector];
const TEACHER: &[Role] = &[Role::Teacher];
const GRADERS: &[Role] = &[Role::Admin, Role::Observer];

/// The largest evidence file (20 MiB: a lesson plan, slides, photos of work; clips come from
/// recordings, not uploads).
pub(crate) const MAX_FILE_BYTES: usize = 20 * 1024 * 1024;
/// Files per evidence item.
pub(crate) const MAX_FILES_PER_ITEM: i64 = 10;
/// Evidence items per teacher and term.
pub(crate) const MAX_ITEMS_PER_TERM: usize = 200;

const fn rule(
    method: &'static str,
    path: &'static str,
    roles: &'static [Role],
    summary: &'static str,
) -> RouteRule {
    RouteRule {
        method,
        path,
        allow: Allow::Roles(roles),
        summary,
        tag: "teacher-record",
    }
}

/// Every teacher-record route with its role rule (the object rules are in the handlers).
pub(crate) const ROUTES: &[RouteRule] = &[
    rule(
        "GET",
        "/api/ability-points",
        PEOPLE,
        "The configured micro-ability points (微能力点)",
    ),
    rule(
        "GET",
        "/api/teachers/{id}/record",
        PEOPLE,
        "A teacher's record for a term (?term=2026秋): the teacher, admins and observers over their school",
    ),
    rule(
        "GET",
        "/api/teachers/{id}/record.csv",
        PEOPLE,
        "The same record as CSV",
    ),
    rule(
        "POST",
        "/api/teachers/{id}/evidence",
        TEACHER,
        "Give evidence for a micro-ability point: a recording clip and a note (the teacher themself)",
    ),
    rule(
        "DELETE",
        "/api/evidence/{id}",
        TEACHER,
        "Withdraw an ungraded evidence item (its teacher)",
    ),
    rule(
        "POST",
        "/api/evidence/{id}/files",
        TEACHER,
        "Add a file to an ungraded evidence item (?name=; PDF, Office, image or MP4; 20 MiB)",
    ),
    rule(
        "GET",
        "/api/evidence/{id}/files/{file}",
        PEOPLE,
        "One evidence file (readers of the teacher's record)",
    ),
    rule(
        "PUT",
        "/api/evidence/{id}/grade",
        GRADERS,
        "Grade an evidence item 优秀/合格/不合格 (admins and observers over the teacher's school; audited)",
    ),
];

/// The teacher-record operations, from the attributes on the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    points_get,
    record_get,
    record_csv,
    evidence_add,
    evidence_delete,
    file_add,
    file_get,
    grade_put
))]
pub(crate) struct Operations;

fn handler(method: &str, path: &str) -> Option<MethodRouter<Arc<SchoolState>>> {
    Some(match (method, path) {
        ("GET", "/api/ability-points") => get(points_get),
        ("GET", "/api/teachers/{id}/record") => get(record_get),
        ("GET", "/api/teachers/{id}/record.csv") => get(record_csv),
        ("POST", "/api/teachers/{id}/evidence") => post(evidence_add),
        ("DELETE", "/api/evidence/{id}") => delete(evidence_delete),
        ("POST", "/api/evidence/{id}/files") => post(file_add),
        ("GET", "/api/evidence/{id}/files/{file}") => get(file_get),
        ("PUT", "/api/evidence/{id}/grade") => put(grade_put),
        _ => return None,
    })
}

/// The router, built from [`ROUTES`] (a rule without a handler stops the start).
pub(crate) fn router(state: Arc<SchoolState>) -> Router<Arc<SchoolState>> {
    crate::school::api::guarded_table(ROUTES, handler, state)
}

fn parse_id(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::not_found("not-found", format!("`{s}` is not an id")))
}

// ---- object rules ----

/// Whether `p` may read the record of teacher `t` (at school place `at`).
fn may_read(p: &Principal, t: &Teacher, d: &Directory) -> bool {
    match p {
        Principal::User {
            role: Role::Teacher,
            teacher_id,
            ..
        } => *teacher_id == Some(t.id),
        Principal::User {
            role: Role::Admin | Role::Observer,
            scope,
            ..
        } => scope.covers(&d.school(t.school_id)),
        _ => false,
    }
}

/// Whether `p` may grade evidence of teacher `t`.
fn may_grade(p: &Principal, t: &Teacher, d: &Directory) -> bool {
    match p {
        Principal::User {
            role: Role::Admin | Role::Observer,
            scope,
            ..
        } => scope.covers(&d.school(t.school_id)),
        _ => false,
    }
}

/// The teacher, when `p` may read their record.
async fn readable(st: &SchoolState, p: &Principal, id: &str) -> Result<Teacher, ApiError> {
    let t: Teacher = model::get(&st.store, parse_id(id)?).await?;
    let d = Directory::load(&st.store).await?;
    if !may_read(p, &t, &d) {
        return Err(out_of_scope(format!("the record of teacher {}", t.id)));
    }
    Ok(t)
}

/// The evidence item and its teacher, when `p` is that teacher.
async fn own_evidence(st: &SchoolState, p: &Principal, id: &str) -> Result<EvidenceRow, ApiError> {
    let e = rstore::evidence(&st.store, parse_id(id)?).await?;
    if p.teacher_id() != Some(e.teacher_id) || p.role() != Role::Teacher {
        return Err(out_of_scope(format!("evidence {}", e.id)));
    }
    Ok(e)
}

/// Refuses a change to a point that a sampling inspection (抽检) has drawn: its reviewers
/// grade the evidence as it was drawn.
async fn not_drawn(
    st: &SchoolState,
    teacher: i64,
    term: &str,
    point: &str,
) -> Result<(), ApiError> {
    let Some(id) =
        crate::observe::inspect_store::submission_id(&st.store, teacher, term, point).await?
    else {
        return Ok(());
    };
    if crate::observe::inspect_store::samples_of(&st.store, "ability_point", &[id])
        .await?
        .is_empty()
    {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "point-drawn",
        format!("point {point} of {term} was drawn for inspection: its evidence no longer changes"),
    ))
}

fn graded(e: &EvidenceRow) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "evidence-graded",
        format!(
            "evidence {} is graded: it is part of the record and no longer changes",
            e.id
        ),
    )
}

// ---- reading ----

#[utoipa::path(
    get, path = "/api/ability-points",
    responses((status = 200, description = "the configured points", body = AbilityPoints))
)]
async fn points_get() -> ApiResult {
    Ok(Json(points::points()).into_response())
}

#[derive(Deserialize)]
struct TermQuery {
    term: Option<String>,
}

async fn load_record(
    st: &SchoolState,
    t: &Teacher,
    term: Option<&str>,
) -> Result<TeacherRecord, ApiError> {
    let Some(name) = term.map(str::trim).filter(|s| !s.is_empty()) else {
        return Err(ApiError::invalid("term is needed: ?term=2026秋"));
    };
    let term = match record::term_named(&st.store, name).await {
        Ok(t) => t,
        Err(crate::store::StoreError::NotFound(_)) => {
            return Err(ApiError::not_found(
                "not-found",
                format!(
                    "there is no term `{}`",
                    name.chars().take(40).collect::<String>()
                ),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let clock = Clock {
        now: st.now(),
        open_before: st.open_before,
        grace: st.grace,
    };
    Ok(record::build(&st.store, t, &term, st.offset, clock).await?)
}

#[utoipa::path(
    get, path = "/api/teachers/{id}/record",
    params(("id" = i64, Path, description = "the teacher's id"),
        ("term" = String, Query, description = "the term's name (2026秋)")),
    responses((status = 200, description = "the record: every figure with the ids and URLs it came from", body = TeacherRecord))
)]
async fn record_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<TermQuery>,
) -> ApiResult {
    let t = readable(&st, &p, &id).await?;
    Ok(Json(load_record(&st, &t, q.term.as_deref()).await?).into_response())
}

#[utoipa::path(
    get, path = "/api/teachers/{id}/record.csv",
    params(("id" = i64, Path, description = "the teacher's id"),
        ("term" = String, Query, description = "the term's name (2026秋)")),
    responses((status = 200, description = "the record as CSV (UTF-8 with a byte order mark, so Excel opens it right): one figure a row, with its sources", body = String, content_type = "text/csv"))
)]
async fn record_csv(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<TermQuery>,
) -> ApiResult {
    let t = readable(&st, &p, &id).await?;
    let r = load_record(&st, &t, q.term.as_deref()).await?;
    let rows = crate::school::csvfile::write_rows(&super::export::HEADER, super::export::rows(&r))?;
    // A UTF-8 byte order mark first: Excel on a Chinese Windows reads a CSV without one as
    // GBK and shows the Chinese headers as mojibake.
    let mut body = Vec::with_capacity(rows.len() + 3);
    body.extend_from_slice(b"\xEF\xBB\xBF");
    body.extend_from_slice(&rows);
    Ok(crate::school::csvfile::csv_response(
        &format!("teacher-{}-record.csv", t.id),
        body,
    ))
}

// ---- evidence ----

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEvidenceBody {
    /// The term's name.
    term: String,
    /// The point's code (A1…).
    point: String,
    /// The recording the clip is cut from (a lesson the teacher gave or assisted).
    #[serde(default)]
    recording_id: Option<i64>,
    /// In point, ms from the recording's start.
    #[serde(default)]
    in_ms: Option<i64>,
    /// Out point, after the in point.
    #[serde(default)]
    out_ms: Option<i64>,
    /// A note (at most 2000 characters).
    #[serde(default)]
    note: String,
}

async fn evidence_view(st: &SchoolState, e: EvidenceRow) -> Result<EvidenceView, ApiError> {
    let files = rstore::files_of(&st.store, &[e.id]).await?;
    Ok(EvidenceView {
        files: files
            .into_iter()
            .map(|f| FileView {
                url: record::file_url(e.id, f.id),
                file: f,
            })
            .collect(),
        evidence: e,
    })
}

/// Checks a clip: its recording is of a lesson `teacher` gave or assisted, and its points
/// lie inside the recording (once it has ended).
async fn check_clip(
    st: &SchoolState,
    teacher: i64,
    b: &NewEvidenceBody,
) -> Result<Option<(i64, i64, i64)>, ApiError> {
    let (rid, i, o) = match (b.recording_id, b.in_ms, b.out_ms) {
        (None, None, None) => return Ok(None),
        (Some(r), Some(i), Some(o)) => (r, i, o),
        _ => {
            return Err(ApiError::invalid(
                "a clip needs recording_id, in_ms and out_ms together",
            ))
        }
    };
    if i < 0 || o <= i {
        return Err(ApiError::invalid(format!(
            "a clip runs forward from 0: in_ms {i} must be ≥ 0 and below out_ms {o}"
        )));
    }
    let recs = crate::school::recording::list(&st.store).await?;
    let Some(r) = recs.into_iter().find(|r| r.id == rid) else {
        return Err(ApiError::invalid(format!("there is no recording {rid}")));
    };
    let lesson = match r.lesson_id {
        Some(l) => Some(model::get_lesson(&st.store, l).await?),
        None => None,
    };
    let theirs = lesson.as_ref().is_some_and(|l| {
        l.hub_teacher_id == teacher
            || l.sites
                .iter()
                .any(|s| s.assisting_teacher_id == Some(teacher))
    });
    if !theirs {
        return Err(ApiError::invalid(format!(
            "recording {rid} is not of a lesson teacher {teacher} gave or assisted"
        )));
    }
    if let Some(end) = r.ended_at {
        let len = end - r.started_at;
        if o > len {
            return Err(ApiError::invalid(format!(
                "out_ms {o} is past the recording's end ({len} ms)"
            )));
        }
    }
    Ok(Some((rid, i, o)))
}

#[utoipa::path(
    post, path = "/api/teachers/{id}/evidence", params(("id" = i64, Path, description = "the teacher's id (the caller's own)")),
    request_body = NewEvidenceBody,
    responses((status = 201, description = "stored, ungraded", body = EvidenceView, headers(("location" = String, description = "the teacher's record"))))
)]
async fn evidence_add(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<NewEvidenceBody>,
) -> ApiResult {
    let id = parse_id(&id)?;
    if p.teacher_id() != Some(id) {
        return Err(out_of_scope(format!("the record of teacher {id}")));
    }
    let t: Teacher = model::get(&st.store, id).await?;
    let list = points::points();
    if list.get(&b.point).is_none() {
        return Err(ApiError::invalid(format!(
            "`{}` is not a configured point (GET /api/ability-points)",
            b.point.chars().take(40).collect::<String>()
        )));
    }
    let term = b.term.trim();
    if record::term_named(&st.store, term).await.is_err() {
        return Err(ApiError::invalid(format!(
            "there is no term `{}`",
            term.chars().take(40).collect::<String>()
        )));
    }
    let note = b.note.trim();
    if note.chars().count() > 2_000 {
        return Err(ApiError::invalid("a note has at most 2000 characters"));
    }
    not_drawn(&st, t.id, term, &b.point).await?;
    let clip = check_clip(&st, t.id, &b).await?;
    if rstore::evidence_of(&st.store, t.id, term).await?.len() >= MAX_ITEMS_PER_TERM {
        return Err(ApiError::invalid(format!(
            "a term holds at most {MAX_ITEMS_PER_TERM} evidence items"
        )));
    }
    let eid = rstore::insert_evidence(
        &st.store,
        &NewEvidence {
            teacher_id: t.id,
            term,
            point: &b.point,
            clip,
            note,
        },
        st.now(),
    )
    .await?;
    let v = evidence_view(&st, rstore::evidence(&st.store, eid).await?).await?;
    let mut r = (StatusCode::CREATED, Json(v)).into_response();
    if let Ok(h) = HeaderValue::from_str(&format!("/api/teachers/{}/record", t.id)) {
        r.headers_mut().insert(header::LOCATION, h);
    }
    Ok(r)
}

#[utoipa::path(
    delete, path = "/api/evidence/{id}", params(("id" = i64, Path, description = "the evidence item")),
    responses((status = 204, description = "withdrawn"))
)]
async fn evidence_delete(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let e = own_evidence(&st, &p, &id).await?;
    not_drawn(&st, e.teacher_id, &e.term, &e.point).await?;
    let files = rstore::files_of(&st.store, &[e.id]).await?;
    if !rstore::delete_ungraded(&st.store, e.id).await? {
        return Err(graded(&e));
    }
    let dir = evidence_dir(&st, e.id);
    for f in files {
        let _ = crate::datadir::remove_if_present(&dir.join(f.id.to_string()));
    }
    let _ = std::fs::remove_dir(&dir);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Where evidence item `id`'s files are kept (one file a row id).
pub(crate) fn evidence_dir(st: &SchoolState, id: i64) -> std::path::PathBuf {
    st.config.data.dir.join("evidence").join(id.to_string())
}

/// What an uploaded file is, by its content (never by its name): the kinds evidence may
/// be, as (kind, media type).
pub(crate) fn file_kind(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    let t = infer::get(bytes)?;
    let kind = match t.extension() {
        k @ ("pdf" | "png" | "jpg" | "gif" | "webp" | "docx" | "pptx" | "xlsx" | "doc" | "ppt"
        | "xls" | "mp4" | "mp3" | "m4a" | "webm") => k,
        _ => return None,
    };
    Some((kind, t.mime_type()))
}

#[derive(Deserialize)]
struct FileQuery {
    name: Option<String>,
}

/// A file name fit to show and to put in a header: no path, no control characters, at most
/// 120 characters.
fn clean_name(s: &str) -> String {
    let base = s.rsplit(['/', '\\']).next().unwrap_or("");
    let n: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(120)
        .collect();
    n.trim().to_string()
}

#[utoipa::path(
    post, path = "/api/evidence/{id}/files",
    params(("id" = i64, Path, description = "the evidence item"),
        ("name" = String, Query, description = "the file's name as the teacher knows it")),
    request_body(content = String, content_type = "application/octet-stream", description = "the file's bytes: PDF, Word/PowerPoint/Excel, PNG/JPEG/GIF/WebP, MP4/WebM, MP3/M4A; at most 20 MiB"),
    responses((status = 201, description = "stored", body = FileView, headers(("location" = String, description = "the file"))))
)]
async fn file_add(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<FileQuery>,
    body: Body,
) -> ApiResult {
    let e = own_evidence(&st, &p, &id).await?;
    if e.grade.is_some() {
        return Err(graded(&e));
    }
    not_drawn(&st, e.teacher_id, &e.term, &e.point).await?;
    let name = clean_name(q.name.as_deref().unwrap_or(""));
    if name.is_empty() {
        return Err(ApiError::invalid("name is needed: ?name=教学设计.pdf"));
    }
    let bytes = axum::body::to_bytes(body, MAX_FILE_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "file-too-large",
                format!("an evidence file is at most {MAX_FILE_BYTES} bytes (20 MiB)"),
            )
            .with("max_bytes", MAX_FILE_BYTES.into())
        })?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("the file is empty"));
    }
    let Some((kind, mime)) = file_kind(&bytes) else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-file-type",
            "evidence files are PDF, Word/PowerPoint/Excel, PNG/JPEG/GIF/WebP, MP4/WebM or MP3/M4A (checked by content)",
        ));
    };
    use sha2::{Digest, Sha256};
    let sha = hex::encode(Sha256::digest(&bytes));
    let Some(fid) = rstore::insert_file(
        &st.store,
        &NewFile {
            evidence_id: e.id,
            name: &name,
            kind,
            mime,
            size: bytes.len() as i64,
            sha256: &sha,
        },
        MAX_FILES_PER_ITEM,
        st.now(),
    )
    .await?
    else {
        return Err(ApiError::invalid(format!(
            "an evidence item holds at most {MAX_FILES_PER_ITEM} files"
        )));
    };
    let dir = evidence_dir(&st, e.id);
    let path = dir.join(fid.to_string());
    let written = tokio::task::spawn_blocking(move || {
        crate::datadir::create_dir(&dir)?;
        crate::datadir::write_private(&path, &bytes)
    })
    .await
    .map_err(ApiError::internal)
    .and_then(|r| r.map_err(ApiError::internal));
    if let Err(err) = written {
        rstore::delete_file(&st.store, fid).await?;
        return Err(err);
    }
    let f = rstore::file(&st.store, e.id, fid).await?;
    let url = record::file_url(e.id, fid);
    let mut r = (
        StatusCode::CREATED,
        Json(FileView {
            file: f,
            url: url.clone(),
        }),
    )
        .into_response();
    if let Ok(h) = HeaderValue::from_str(&url) {
        r.headers_mut().insert(header::LOCATION, h);
    }
    Ok(r)
}

#[utoipa::path(
    get, path = "/api/evidence/{id}/files/{file}",
    params(("id" = i64, Path, description = "the evidence item"), ("file" = i64, Path, description = "the file")),
    responses((status = 200, description = "the file's bytes, as uploaded", body = String, content_type = "application/octet-stream"))
)]
async fn file_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path((id, file)): Path<(String, String)>,
) -> ApiResult {
    let e = rstore::evidence(&st.store, parse_id(&id)?).await?;
    readable(&st, &p, &e.teacher_id.to_string()).await?;
    let f = rstore::file(&st.store, e.id, parse_id(&file)?).await?;
    let bytes = tokio::fs::read(evidence_dir(&st, e.id).join(f.id.to_string()))
        .await
        .map_err(ApiError::internal)?;
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&f.mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    let encoded =
        percent_encoding::utf8_percent_encode(&f.name, percent_encoding::NON_ALPHANUMERIC);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(r)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EvidenceGradeBody {
    /// `excellent` (优秀), `pass` (合格), `fail` (不合格), or null to take a grade back.
    grade: Option<String>,
}

#[utoipa::path(
    put, path = "/api/evidence/{id}/grade", params(("id" = i64, Path, description = "the evidence item")),
    request_body = EvidenceGradeBody,
    responses(
        (status = 200, description = "graded (audited)", body = EvidenceView),
        (status = 409, description = "the point was drawn for inspection (`point-drawn`): its grades no longer change", body = crate::problem::Problem, content_type = "application/problem+json")
    )
)]
async fn grade_put(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<EvidenceGradeBody>,
) -> ApiResult {
    let e = rstore::evidence(&st.store, parse_id(&id)?).await?;
    let t: Teacher = model::get(&st.store, e.teacher_id).await?;
    let d = Directory::load(&st.store).await?;
    if !may_grade(&p, &t, &d) {
        return Err(out_of_scope(format!("evidence {}", e.id)));
    }
    // A drawn point is what its reviewers judge: its grades no longer change either.
    not_drawn(&st, e.teacher_id, &e.term, &e.point).await?;
    let grade = match b.grade.as_deref() {
        None => None,
        Some(g) => Some(Grade::parse(g).ok_or_else(|| {
            ApiError::invalid(format!(
                "grade must be excellent, pass or fail, not `{}`",
                g.chars().take(40).collect::<String>()
            ))
        })?),
    };
    let now = st.now();
    rstore::set_grade(&st.store, e.id, grade.map(Grade::as_str), &p.ident(), now).await?;
    model::audit(
        &st.store,
        now,
        &p.ident(),
        "evidence.grade",
        &format!("evidence:{}", e.id),
        &format!(
            "teacher {} point {} term {}: {} → {}",
            e.teacher_id,
            e.point,
            e.term,
            e.grade.as_deref().unwrap_or("ungraded"),
            grade.map_or("ungraded", Grade::as_str)
        ),
    )
    .await?;
    let v = evidence_view(&st, rstore::evidence(&st.store, e.id).await?).await?;
    Ok(Json(v).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn files_are_known_by_content_not_name() {
        let pdf = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n";
        assert_eq!(file_kind(pdf), Some(("pdf", "application/pdf")));
        let png = [
            0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R',
        ];
        assert_eq!(file_kind(&png).map(|k| k.0), Some("png"));
        // A script or a page is never evidence, whatever it is called.
        assert_eq!(file_kind(b"#!/bin/sh\nrm -rf /\n"), None);
        assert_eq!(file_kind(b"<html><script>alert(1)</script></html>"), None);
        // An ELF executable is a known type but not an allowed one.
        assert_eq!(file_kind(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"), None);
        assert_eq!(file_kind(b""), None);
    }

    #[test]
    fn names_lose_paths_and_control_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\教案\\第三单元.pdf"), "第三单元.pdf");
        assert_eq!(clean_name("a\"b\r\nc.pdf"), "abc.pdf");
        assert_eq!(clean_name(&"长".repeat(300)).chars().count(), 120);
        assert_eq!(clean_name("  "), "");
    }

    proptest! {
        #[test]
        fn any_bytes_are_classified_without_panicking(b in proptest::collection::vec(any::<u8>(), 0..4096)) {
            if let Some((kind, mime)) = file_kind(&b) {
                prop_assert!(!kind.is_empty() && mime.contains('/'));
            }
        }

        #[test]
        fn any_name_is_cleaned_into_a_header_value(s in "\\PC{0,300}") {
            let n = clean_name(&s);
            prop_assert!(n.chars().count() <= 120);
            prop_assert!(!n.contains('/') && !n.contains('\\') && !n.contains('"'));
            let enc = percent_encoding::utf8_percent_encode(&n, percent_encoding::NON_ALPHANUMERIC);
            let header = format!("attachment; filename*=UTF-8''{enc}");
            prop_assert!(HeaderValue::from_str(&header).is_ok());
        }
    }
}
