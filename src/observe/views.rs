//! The shapes of the observation API's composed JSON answers (the observation view, coded
//! figures, scores, comment and amendment receipts), for the OpenAPI document. The handlers
//! compose these answers from the stored rows with `json!`; each type here says what such an
//! answer holds, and `tests/openapi_responses.rs` validates the real answers against them
//! (no field missing, no field more: `deny_unknown_fields` documents `additionalProperties:
//! false`). Must never hold logic: a change of an answer's shape is made in the handler and
//! here together.

use utoipa::ToSchema;

use super::fias::FiasResult;
use super::rubric::{Band, ItemScore, RubricItem};
use super::st::StResult;
use super::store::{Amendment, Comment, Method};
use crate::school::model::LessonMode;
use crate::time::Millis;

/// One observation as `GET /api/observations/{id}` answers it: the row, the lesson, the codes
/// and the S-T, FIAS and rubric results of the methods in use (`null` for the others).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationView {
    /// Id.
    pub id: i64,
    /// The observed lesson.
    pub lesson_id: i64,
    /// The observer (user id).
    pub observer_id: i64,
    /// The methods in use.
    pub methods: Vec<Method>,
    /// The rubric version scores are made under.
    pub rubric_id: Option<i64>,
    /// S-T sampling interval (s).
    pub interval_s: i64,
    /// `draft`, `submitted` or `reviewed`.
    pub state: String,
    /// Unix ms.
    pub created_at: Millis,
    /// Unix ms.
    pub updated_at: Millis,
    /// Unix ms, once submitted.
    pub submitted_at: Option<Millis>,
    /// The S-T figures (with the `st` method).
    pub st: Option<StResult>,
    /// The FIAS figures (with the `fias` method).
    pub fias: Option<FiasResult>,
    /// The rubric, its scores and result (with the `rubric` method).
    pub rubric: Option<RubricView>,
    /// The observed lesson.
    pub lesson: ObservedLesson,
    /// The coded sequences by method: S-T as `S`/`T` letters, FIAS as digits (`0` is 10).
    pub codes: CodeStrings,
    /// The time-stamped comments.
    pub comments: Vec<Comment>,
    /// The amendment log (submitted observations).
    pub amendments: Vec<Amendment>,
}

/// The lesson an observation is of.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservedLesson {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Subject.
    pub subject: String,
    /// Grade.
    pub grade: String,
    /// The lesson's mode.
    pub mode: LessonMode,
    /// The hub teacher.
    pub hub_teacher_id: i64,
    /// Unix ms.
    pub starts_at: Millis,
    /// Unix ms.
    pub ends_at: Millis,
}

/// The coded sequences of an observation, one per coded method in use.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeStrings {
    /// S-T codes, one letter a sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub st: Option<String>,
    /// FIAS codes, one digit a sample (`0` is category 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fias: Option<String>,
}

/// The rubric of an observation with its scores and result.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RubricView {
    /// The rubric version's row id.
    pub id: i64,
    /// The rubric's key.
    pub key: String,
    /// Its version.
    pub version: i64,
    /// Its title.
    pub name: String,
    /// The scored dimensions.
    pub items: Vec<RubricItem>,
    /// The grade bands.
    pub bands: Vec<Band>,
    /// The scores given so far.
    pub scores: Vec<ItemScore>,
    /// Sum of the scores.
    pub total: f64,
    /// Every item has a score.
    pub complete: bool,
    /// The band's key when complete.
    pub band: Option<String>,
    /// The band's name when complete.
    pub band_name: Option<String>,
}

/// A method's codes and figures after codes were appended or removed.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodedFigures {
    /// `st` or `fias`.
    pub method: Method,
    /// How many codes the method holds.
    pub n: u64,
    /// The whole sequence (see [`CodeStrings`]).
    pub codes: String,
    /// With `st`: the S-T figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub st: Option<StResult>,
    /// With `fias`: the FIAS figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fias: Option<FiasResult>,
}

/// The scores after `PUT /api/observations/{id}/scores`, and their result.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoresView {
    /// Every score given so far.
    pub scores: Vec<ItemScore>,
    /// Total, completeness and band.
    pub result: super::rubric::RubricResult,
}

/// A stored comment.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentCreated {
    /// Id.
    pub id: i64,
    /// Ms from the lesson's start.
    pub at_ms: i64,
    /// The text (trimmed).
    pub body: String,
}

/// A stored amendment and the observation as amended.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendmentCreated {
    /// The amendment's id.
    pub id: i64,
    /// The observation after the amendment.
    pub observation: ObservationView,
}

/// `GET`/`POST /api/observations/{id}/st-draft`: the automatic S-T draft made from the
/// lesson's recording (empty, `made: false`, before one is made) and how it compares with
/// the observer's own S-T codes, sample by sample.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StDraftView {
    /// The observation.
    pub observation_id: i64,
    /// Whether a draft has been made.
    pub made: bool,
    /// The recording it was made from.
    pub recording_id: Option<i64>,
    /// The sampling interval (s) it was made at.
    pub interval_s: i64,
    /// Whose track was listened to (the hub teacher's name).
    pub teacher: Option<String>,
    /// The decision rule it was made with.
    pub rule: Option<super::stdraft::DraftRule>,
    /// Unix ms.
    pub created_at: Option<Millis>,
    /// The drafted codes, `T`/`S` letters, one per sample instant.
    pub codes: String,
    /// Each sample: its instant, code and how much speech each side carried.
    pub samples: Vec<super::stdraft::DraftSample>,
    /// The draft's S-T figures.
    pub st: Option<StResult>,
    /// The observer's own S-T codes.
    pub observer_codes: String,
    /// Where the draft and the observer agree and differ.
    pub comparison: super::stdraft::Comparison,
    /// The draft job last asked for (`null` before any): `pending|running|done|failed`,
    /// its progress, and why it failed.
    pub job: Option<super::stdraft_job::StDraftJob>,
}
