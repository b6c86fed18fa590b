//! The automatic S-T draft routes (`/api/observations/{id}/st-draft`): the observer asks for a
//! draft of the S-T coding made from the lesson's processed recording (voice activity on the
//! hub teacher's track at each sample instant), stored beside the observation; anyone who may
//! read the observation reads it with its comparison against the observer's own codes. Must
//! never write the observer's codes (the draft is a proposal the observer reviews), and never
//! decode on the async threads (decoding runs on a blocking thread).

use std::path::{Path as FsPath, PathBuf};

use super::*;
use crate::observe::stdraft::{self, Comparison, DraftRule, DraftSample};
use crate::record::process::Manifest;
use crate::record::voice::{self, VoicedFrame};
use crate::school::recording;
use crate::store::{col, Store, StoreResult};

/// A stored draft.
struct DraftRow {
    recording_id: i64,
    interval_s: i64,
    codes: String,
    samples: Vec<DraftSample>,
    teacher: String,
    rule: DraftRule,
    created_at: i64,
}

/// The samples and rule as stored (JSON in `st_drafts.samples`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    rule: StoredRule,
    samples: Vec<(u64, char, u32, u32)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRule {
    half_window_ms: u64,
    min_voiced_permille: u32,
}

async fn load(store: &Store, observation: i64) -> StoreResult<Option<DraftRow>> {
    let r = sqlx::query(
        "SELECT recording_id, interval_s, codes, samples, teacher, created_at \
         FROM st_drafts WHERE observation_id = $1",
    )
    .bind(observation)
    .fetch_optional(store.pool())
    .await?;
    let Some(r) = r else { return Ok(None) };
    let stored: String = col(&r, "samples")?;
    // Written by `save` below; a row that does not read back is shown without its samples.
    let stored: Stored = serde_json::from_str(&stored).unwrap_or(Stored {
        rule: StoredRule {
            half_window_ms: DraftRule::default().half_window_ms,
            min_voiced_permille: DraftRule::default().min_voiced_permille,
        },
        samples: Vec::new(),
    });
    Ok(Some(DraftRow {
        recording_id: col(&r, "recording_id")?,
        interval_s: col(&r, "interval_s")?,
        codes: col(&r, "codes")?,
        samples: stored
            .samples
            .into_iter()
            .filter_map(|(at_ms, c, t, k)| {
                Some(DraftSample {
                    at_ms,
                    code: st::StCode::from_letter(c)?,
                    teacher_voiced: t,
                    class_voiced: k,
                })
            })
            .collect(),
        teacher: col(&r, "teacher")?,
        rule: DraftRule {
            half_window_ms: stored.rule.half_window_ms,
            min_voiced_permille: stored.rule.min_voiced_permille,
        },
        created_at: col(&r, "created_at")?,
    }))
}

async fn save(store: &Store, observation: i64, d: &DraftRow) -> StoreResult<()> {
    let stored = Stored {
        rule: StoredRule {
            half_window_ms: d.rule.half_window_ms,
            min_voiced_permille: d.rule.min_voiced_permille,
        },
        samples: d
            .samples
            .iter()
            .map(|s| (s.at_ms, s.code.letter(), s.teacher_voiced, s.class_voiced))
            .collect(),
    };
    let samples = serde_json::to_string(&stored).unwrap_or_else(|_| "{}".into());
    let mut tx = store.pool().begin().await?;
    sqlx::query("DELETE FROM st_drafts WHERE observation_id = $1")
        .bind(observation)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO st_drafts (observation_id, recording_id, interval_s, codes, samples, \
         teacher, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(observation)
    .bind(d.recording_id)
    .bind(d.interval_s)
    .bind(&d.codes)
    .bind(samples)
    .bind(&d.teacher)
    .bind(d.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The answer: the draft (if made), its S-T figures, and where it and the observer differ.
async fn draft_view(st: &SchoolState, o: &ObservationRow) -> Result<Value, ApiError> {
    let d = load(&st.store, o.id).await?;
    let observer = ostore::codes(&st.store, o.id, Method::St).await?;
    let codes = d.as_ref().map(|d| d.codes.clone()).unwrap_or_default();
    let cmp: Comparison = stdraft::compare(&ostore::st_codes(&codes), &ostore::st_codes(&observer));
    Ok(json!({
        "observation_id": o.id,
        "made": d.is_some(),
        "recording_id": d.as_ref().map(|d| d.recording_id),
        "interval_s": d.as_ref().map_or(o.interval_s, |d| d.interval_s),
        "teacher": d.as_ref().map(|d| d.teacher.clone()),
        "rule": d.as_ref().map(|d| d.rule),
        "created_at": d.as_ref().map(|d| d.created_at),
        "codes": codes,
        "samples": d.as_ref().map(|d| d.samples.clone()).unwrap_or_default(),
        "st": d.as_ref().map(|_| st::analyse(&ostore::st_codes(&codes))),
        "observer_codes": observer,
        "comparison": cmp,
    }))
}

fn no_recording(detail: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "no-recording", detail)
}

/// The recording to listen to: the one asked for (of this lesson), else the lesson's newest
/// processed one.
async fn pick_recording(
    st: &SchoolState,
    o: &ObservationRow,
    asked: Option<i64>,
) -> Result<(i64, PathBuf), ApiError> {
    let all = recording::of_lesson(&st.store, o.lesson_id).await?;
    let rec = match asked {
        Some(id) => all.into_iter().find(|r| r.id == id).ok_or_else(|| {
            ApiError::not_found(
                "not-found",
                format!(
                    "recording {id} is not a recording of lesson {}",
                    o.lesson_id
                ),
            )
        })?,
        None => all
            .into_iter()
            .rev()
            .find(|r| r.processing.as_deref() == Some("ready"))
            .ok_or_else(|| {
                no_recording(format!(
                    "lesson {} has no processed recording to draft from",
                    o.lesson_id
                ))
            })?,
    };
    match (rec.processing.as_deref(), rec.manifest_path) {
        (Some("ready"), Some(m)) => Ok((rec.id, PathBuf::from(m))),
        (p, _) => Err(no_recording(format!(
            "recording {} is not processed yet ({})",
            rec.id,
            p.unwrap_or("not started")
        ))),
    }
}

/// What listening found (decoding happens here, on a blocking thread).
struct Heard {
    teacher: Vec<VoicedFrame>,
    classes: Vec<Vec<VoicedFrame>>,
    duration_ms: u64,
}

/// Reads the manifest and the voice of every Opus source: the hub teacher's (owner named
/// `teacher`) and the others'.
fn listen(manifest_path: &FsPath, teacher: &str) -> Result<Heard, ApiError> {
    let bytes = std::fs::read(manifest_path).map_err(|e| {
        no_recording(format!(
            "the recording's manifest {} cannot be read: {e}",
            manifest_path.display()
        ))
    })?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            "recording-unreadable",
            format!("the recording's manifest.json does not read: {e}"),
        )
    })?;
    let dir = manifest_path.parent().unwrap_or(FsPath::new("."));
    let mut heard = Heard {
        teacher: Vec::new(),
        classes: Vec::new(),
        duration_ms: m.duration_ms,
    };
    let mut teacher_sources = 0;
    for s in &m.sources {
        if !s
            .tracks
            .iter()
            .any(|t| t.codec == crate::record::format::Codec::Opus)
        {
            continue;
        }
        let v = voice::voice_of_file(&dir.join(&s.file), s.start_ms).map_err(|e| {
            ApiError::new(
                StatusCode::CONFLICT,
                "recording-unreadable",
                format!("the recording's {} cannot be listened to: {e}", s.file),
            )
        })?;
        if s.hub && s.owner == teacher {
            teacher_sources += 1;
            heard.teacher.extend(v.frames);
        } else {
            heard.classes.push(v.frames);
        }
    }
    if teacher_sources == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no-teacher-audio",
            format!("the recording holds no audio of the hub teacher ({teacher})"),
        ));
    }
    heard.teacher.sort_by_key(|f| f.at_ms);
    Ok(heard)
}

#[utoipa::path(
    post, path = "/api/observations/{id}/st-draft",
    params(("id" = i64, Path, description = "the observation's id"),
        ("recording_id" = Option<i64>, Query, description = "this recording of the lesson (default: its newest processed one)")),
    responses((status = 201, description = "the draft, made and stored (replacing an earlier one)", body = crate::observe::views::StDraftView))
)]
pub(super) async fn st_draft_make(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let o = own(&st, &p, &id).await?;
    not_coded(&o, Method::St)?;
    if o.state != "draft" {
        return Err(submitted(o.id));
    }
    let asked = q
        .get("recording_id")
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("recording_id must be an id, not `{v}`")))
        })
        .transpose()?;
    let (rec, manifest) = pick_recording(&st, &o, asked).await?;
    let teacher: Option<(String,)> = sqlx::query_as(
        "SELECT t.name FROM lessons l JOIN teachers t ON t.id = l.hub_teacher_id WHERE l.id = $1",
    )
    .bind(o.lesson_id)
    .fetch_optional(st.store.pool())
    .await
    .map_err(crate::store::StoreError::from)?;
    let teacher = teacher.map(|t| t.0).unwrap_or_default();
    let interval = u32::try_from(o.interval_s).unwrap_or(30);
    let rule = DraftRule::default();
    let who = teacher.clone();
    let samples = tokio::task::spawn_blocking(move || {
        let h = listen(&manifest, &who)?;
        let classes: Vec<&[VoicedFrame]> = h.classes.iter().map(Vec::as_slice).collect();
        Ok::<_, ApiError>(stdraft::draft(
            &h.teacher,
            &classes,
            h.duration_ms,
            interval,
            rule,
        ))
    })
    .await
    .map_err(ApiError::internal)??;
    let row = DraftRow {
        recording_id: rec,
        interval_s: o.interval_s,
        codes: samples.iter().map(|s| s.code.letter()).collect(),
        samples,
        teacher,
        rule,
        created_at: st.now(),
    };
    save(&st.store, o.id, &row).await?;
    Ok((StatusCode::CREATED, Json(draft_view(&st, &o).await?)).into_response())
}

#[utoipa::path(
    get, path = "/api/observations/{id}/st-draft", params(("id" = i64, Path, description = "the observation's id")),
    responses((status = 200, description = "the draft (`made: false` before one is made) and where it and the observer's codes differ", body = crate::observe::views::StDraftView))
)]
pub(super) async fn st_draft_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let o = readable(&st, &p, &id).await?;
    not_coded(&o, Method::St)?;
    Ok(Json(draft_view(&st, &o).await?).into_response())
}
