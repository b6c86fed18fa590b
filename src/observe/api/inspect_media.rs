//! A blinded review's media (抽检的盲评录像): the processed source files of the sampled lesson,
//! listed and served (with ranges) to that review's reviewer by an opaque name. Must never put a
//! recording's, lesson's, teacher's or school's id or name into a URL, an answer or a served
//! file's metadata.
//!
//! The processor writes `"{room} {owner}"` (the room and the publishing teacher's name) as the
//! Matroska segment Title; a reviewer gets a copy whose Title bytes are blanked (same length,
//! so every offset in the file stays right), made once beside the original in the recording's
//! place through the storage trait (retention deletes it with the recording).
//!
//! The processed sources have no title card (only the exports add one), so a reviewer's
//! playback starts with the lesson itself.
//!
//! An ability-point review (微能力点抽检) lists the sources of every evidence clip's
//! recording the same way, each with the clip's in and out points, and serves the evidence's
//! files by index under names made here (`材料1-1.pdf`): never the name the teacher uploaded
//! them under.

use super::*;
use crate::observe::inspect_store::{self as istore, ReviewRow};
use crate::observe::records::store::{self as rstore, EvidenceRow, FileRow};
use crate::record::process::{Manifest, Source};
use crate::school::recording;
use serde::Serialize;

/// One playable source of the reviewed lesson, by its place in the list.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BlindMedia {
    /// `camera`, `screen`, `audio`, … (the source's kind).
    kind: String,
    /// Where the source starts on the lesson's timeline (ms).
    start_ms: u64,
    /// How long it lasts (ms).
    duration_ms: u64,
    /// An ability-point review: the evidence item (1, 2, … as `point.items[].item`) whose
    /// clip this source plays.
    item: Option<usize>,
    /// The clip's in point on the recording's timeline (ms; ability-point reviews).
    in_ms: Option<i64>,
    /// The clip's out point (ms).
    out_ms: Option<i64>,
    /// `/api/inspections/reviews/{id}/media/{index}` (ranges honoured).
    url: String,
}

/// One playable source of a review, with the recording it is kept in (on the server).
pub(super) struct MediaEntry {
    rec: i64,
    source: Source,
    /// (evidence item number, in, out) for an ability point's clip.
    clip: Option<(usize, i64, i64)>,
}

impl MediaEntry {
    /// The evidence item (1, 2, …) whose clip this source plays, for an ability point.
    pub(super) fn item(&self) -> Option<usize> {
        self.clip.map(|c| c.0)
    }
}

/// The evidence items of an ability-point review's submission (in the order given), with
/// their files.
pub(super) async fn point_items(
    st: &SchoolState,
    v: &ReviewRow,
) -> Result<Vec<(EvidenceRow, Vec<FileRow>)>, ApiError> {
    let sample = istore::sample(&st.store, v.sample_id).await?;
    let sub = istore::submission(&st.store, sample.source_id).await?;
    let items: Vec<EvidenceRow> = rstore::evidence_of(&st.store, sub.teacher_id, &sub.term)
        .await?
        .into_iter()
        .filter(|e| e.point == sub.point)
        .collect();
    let ids: Vec<i64> = items.iter().map(|e| e.id).collect();
    let files = rstore::files_of(&st.store, &ids).await?;
    Ok(items
        .into_iter()
        .map(|e| {
            let mine = files
                .iter()
                .filter(|f| f.evidence_id == e.id)
                .cloned()
                .collect();
            (e, mine)
        })
        .collect())
}

/// The name a blinded reviewer sees for file `file` (1, 2, …) of evidence item `item`.
pub(super) fn blind_file_name(item: usize, file: usize, kind: &str) -> String {
    format!("材料{item}-{file}.{kind}")
}

/// Every playable source of the review, in the order of its media list: an observation's
/// newest processed recording's sources; an ability point's clips' recordings' sources, item
/// by item (a clip whose recording is gone or not processed has none).
pub(super) async fn media_entries(
    st: &SchoolState,
    v: &ReviewRow,
) -> Result<Vec<MediaEntry>, ApiError> {
    let round = istore::round(&st.store, v.round_id).await?;
    if round.source != "ability_point" {
        let (rec, m) = media_of(st, v).await?;
        return Ok(m
            .sources
            .into_iter()
            .map(|source| MediaEntry {
                rec,
                source,
                clip: None,
            })
            .collect());
    }
    let recs = recording::list(&st.store).await?;
    let mut out = Vec::new();
    for (i, (e, _)) in point_items(st, v).await?.iter().enumerate() {
        let (Some(rid), Some(a), Some(b)) = (e.recording_id, e.in_ms, e.out_ms) else {
            continue;
        };
        let ready = recs.iter().any(|r| {
            r.id == rid && r.processing.as_deref() == Some("ready") && r.deleted_at.is_none()
        });
        if !ready {
            continue;
        }
        let m = manifest(st, rid, v.id).await?;
        out.extend(m.sources.into_iter().map(|source| MediaEntry {
            rec: rid,
            source,
            clip: Some((i + 1, a, b)),
        }));
    }
    Ok(out)
}

/// A recording's manifest, read through the storage trait.
async fn manifest(st: &SchoolState, rec: i64, review: i64) -> Result<Manifest, ApiError> {
    let storage = recording::storage(st);
    let bytes =
        tokio::task::spawn_blocking(move || storage.file(rec, "manifest.json").map(std::fs::read))
            .await
            .map_err(ApiError::internal)?;
    let bytes = match bytes {
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            return Err(ApiError::internal(format!(
                "review {review}: the recording's manifest cannot be read: {e}"
            )))
        }
        None => return Err(ApiError::internal("no manifest file name")),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("review {review}: a bad manifest: {e}")))
}

/// The manifest of the newest processed recording of the review's lesson, with the
/// recording's id (kept on the server).
async fn media_of(st: &SchoolState, v: &ReviewRow) -> Result<(i64, Manifest), ApiError> {
    let sample = istore::sample(&st.store, v.sample_id).await?;
    let o = ostore::observation(&st.store, sample.source_id).await?;
    let none = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "no-recording",
            format!("review {}: the lesson has no processed recording", v.id),
        )
    };
    let rec = recording::of_lesson(&st.store, o.lesson_id)
        .await?
        .into_iter()
        .rev()
        .find(|r| r.processing.as_deref() == Some("ready") && r.deleted_at.is_none())
        .ok_or_else(none)?;
    Ok((rec.id, manifest(st, rec.id, v.id).await?))
}

#[utoipa::path(
    get, path = "/api/inspections/reviews/{id}/media", params(("id" = i64, Path, description = "the review's id")),
    responses((status = 200, description = "the reviewed lesson's playable sources by index (no names or ids; no title card: playback starts with the lesson)", body = Vec<BlindMedia>),
        (status = 409, description = "the lesson has no processed recording", body = crate::problem::Problem, content_type = "application/problem+json"))
)]
pub(super) async fn reviews_media(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let v = my_review(&st, &p, &id).await?;
    let out: Vec<BlindMedia> = media_entries(&st, &v)
        .await?
        .iter()
        .enumerate()
        .map(|(i, e)| BlindMedia {
            kind: serde_json::to_value(e.source.kind)
                .ok()
                .and_then(|k| k.as_str().map(str::to_string))
                .unwrap_or_default(),
            start_ms: e.source.start_ms,
            duration_ms: e.source.duration_ms,
            item: e.clip.map(|c| c.0),
            in_ms: e.clip.map(|c| c.1),
            out_ms: e.clip.map(|c| c.2),
            url: format!("/api/inspections/reviews/{}/media/{i}", v.id),
        })
        .collect();
    Ok(Json(out).into_response())
}

/// Blanks the Matroska segment Title (element 0x7BA9) in the file's head with spaces of the
/// same length. Written here because the muxing crates rewrite a whole file to change one
/// element, and a same-length patch keeps the SeekHead and Cues offsets valid. Returns
/// whether a Title was found.
pub(crate) fn blank_title(file: &mut [u8]) -> bool {
    // The Title sits in Info, before the first Cluster (0x1F43B675).
    let head = file
        .windows(4)
        .position(|w| w == [0x1F, 0x43, 0xB6, 0x75])
        .unwrap_or(file.len().min(64 * 1024));
    let mut i = 0;
    while i + 3 <= head {
        if file[i] == 0x7B && file[i + 1] == 0xA9 {
            let first = file[i + 2];
            let len = first.leading_zeros() as usize + 1;
            if (1..=8).contains(&len) && i + 2 + len <= head {
                let mut size = u64::from(first) & (0xFFu64 >> len);
                for b in &file[i + 3..i + 2 + len] {
                    size = (size << 8) | u64::from(*b);
                }
                let start = i + 2 + len;
                let end = start.saturating_add(size as usize);
                if end <= head && std::str::from_utf8(&file[start..end]).is_ok() {
                    file[start..end].fill(b' ');
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

#[utoipa::path(
    get, path = "/api/inspections/reviews/{id}/media/{index}",
    params(("id" = i64, Path, description = "the review's id"),
        ("index" = usize, Path, description = "the source's place in `GET /api/inspections/reviews/{id}/media`")),
    responses(
        (status = 200, description = "the whole file, its Title blanked", body = Vec<u8>, content_type = "video/webm"),
        (status = 206, description = "the requested range (`Range: bytes=a-b`), with `Content-Range`", body = Vec<u8>, content_type = "video/webm"),
        (status = 416, description = "a range that is malformed or outside the file", body = crate::problem::Problem, content_type = "application/problem+json"))
)]
pub(super) async fn reviews_media_file(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path((id, index)): Path<(String, String)>,
    req: axum::extract::Request,
) -> ApiResult {
    let v = my_review(&st, &p, &id).await?;
    let entries = media_entries(&st, &v).await?;
    let entry = index
        .parse::<usize>()
        .ok()
        .and_then(|i| entries.get(i))
        .ok_or_else(|| {
            ApiError::not_found(
                "not-found",
                format!("review {} has no media `{index}`", v.id),
            )
        })?;
    let (rec, src) = (entry.rec, &entry.source);
    let storage = recording::storage(&st);
    let (Some(original), Some(blind)) = (
        storage.file(rec, &src.file),
        storage.file(rec, &format!("blind-{}", src.file)),
    ) else {
        return Err(ApiError::internal("a source's file name is not plain"));
    };
    let made = blind.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if made.exists() {
            return Ok(());
        }
        let mut bytes = std::fs::read(&original)?;
        blank_title(&mut bytes);
        // Written under a temporary name of its own and renamed, so a reader never sees half
        // a file and two first requests at once (a player's range requests) do not collide.
        let tmp = made.with_extension(format!("part-{:016x}", rand::random::<u64>()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &made)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::internal(format!("review {}: media {index}: {e}", v.id)))?;

    // Range, 206, Content-Range and 416 from tower-http's ServeFile, as
    // `school/api/recordings.rs` does.
    let mut inner = axum::http::Request::builder().method(req.method());
    for h in [header::RANGE, header::IF_RANGE] {
        if let Some(val) = req.headers().get(&h) {
            inner = inner.header(h, val);
        }
    }
    let inner = inner
        .body(axum::body::Body::empty())
        .map_err(ApiError::internal)?;
    let served = tower::ServiceExt::oneshot(tower_http::services::ServeFile::new(&blind), inner)
        .await
        .map_err(ApiError::internal)?;
    if served.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        let size = served.headers().get(header::CONTENT_RANGE).cloned();
        let mut resp = ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range-not-satisfiable",
            "the range is malformed, has several ranges, or lies outside the file",
        )
        .into_response();
        if let Some(val) = size {
            resp.headers_mut().insert(header::CONTENT_RANGE, val);
        }
        return Ok(resp);
    }
    let mut resp = served.map(axum::body::Body::new);
    let mime = HeaderValue::from_str(&src.mime)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    resp.headers_mut().insert(header::CONTENT_TYPE, mime);
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(resp)
}

#[utoipa::path(
    get, path = "/api/inspections/reviews/{id}/files/{index}",
    params(("id" = i64, Path, description = "the review's id"),
        ("index" = usize, Path, description = "the file's place in the review's `point.items[].files` (0, 1, … over every item)")),
    responses(
        (status = 200, description = "an ability-point review's evidence file: its bytes as uploaded, under a name made here (never the uploaded name)", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 404, description = "no such file (or not an ability-point review)", body = crate::problem::Problem, content_type = "application/problem+json"))
)]
pub(super) async fn reviews_file(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path((id, index)): Path<(String, String)>,
) -> ApiResult {
    let v = my_review(&st, &p, &id).await?;
    let round = istore::round(&st.store, v.round_id).await?;
    let none = || {
        ApiError::not_found(
            "not-found",
            format!("review {} has no file `{index}`", v.id),
        )
    };
    if round.source != "ability_point" {
        return Err(none());
    }
    let want = index.parse::<usize>().map_err(|_| none())?;
    let items = point_items(&st, &v).await?;
    let (item, nth, f) = items
        .iter()
        .enumerate()
        .flat_map(|(i, (_, files))| {
            files
                .iter()
                .enumerate()
                .map(move |(j, f)| (i + 1, j + 1, f))
        })
        .nth(want)
        .ok_or_else(none)?;
    let path =
        crate::observe::records::api::evidence_dir(&st, f.evidence_id).join(f.id.to_string());
    let bytes = tokio::fs::read(path).await.map_err(ApiError::internal)?;
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    if let Ok(val) = HeaderValue::from_str(&f.mime) {
        h.insert(header::CONTENT_TYPE, val);
    }
    let name = blind_file_name(item, nth, &f.kind);
    let encoded = percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC);
    if let Ok(val) = HeaderValue::from_str(&format!("inline; filename*=UTF-8''{encoded}")) {
        h.insert(header::CONTENT_DISPOSITION, val);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::blank_title;
    use proptest::prelude::*;

    /// EBML header, then a Segment holding Info with a Title, then a Cluster.
    fn file(title: &str) -> Vec<u8> {
        let mut f = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80]; // EBML (empty)
        f.extend([
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        f.extend([0x15, 0x49, 0xA9, 0x66, 0x80 | (title.len() as u8 + 3)]); // Info
        f.extend([0x7B, 0xA9, 0x80 | title.len() as u8]);
        f.extend(title.as_bytes());
        f.extend([0x1F, 0x43, 0xB6, 0x75, 0x80]); // Cluster
        f.extend("王老师 after the head".as_bytes());
        f
    }

    #[test]
    fn the_title_is_blanked_and_nothing_moves() {
        let mut f = file("lesson-12 王老师");
        let before = f.clone();
        assert!(blank_title(&mut f));
        assert_eq!(f.len(), before.len());
        let shown = String::from_utf8_lossy(&f);
        assert!(!shown.contains("lesson-12"), "{shown}");
        // Only the Title's bytes changed (the cluster's are not metadata).
        let changed: Vec<usize> = (0..f.len()).filter(|&i| f[i] != before[i]).collect();
        let start = before.windows(2).position(|w| w == [0x7B, 0xA9]).unwrap() + 3;
        assert!(changed
            .iter()
            .all(|&i| i >= start && i < start + "lesson-12 王老师".len()));
        assert!(shown.contains("王老师 after the head"));
    }

    #[test]
    fn no_title_changes_nothing() {
        let mut f = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80, 0x1F, 0x43, 0xB6, 0x75, 0x80];
        let before = f.clone();
        assert!(!blank_title(&mut f));
        assert_eq!(f, before);
    }

    proptest! {
        /// Any bytes: no panic, the length kept.
        #[test]
        fn any_bytes_keep_their_length(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let n = bytes.len();
            blank_title(&mut bytes);
            prop_assert_eq!(bytes.len(), n);
        }
    }
}
