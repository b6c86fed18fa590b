//! One teacher's record for one term, built from the store on every request: lessons taught
//! (as hub or assisting teacher: count, minutes, modes, paired schools), recordings of their
//! lessons, submitted observations of their lessons (rubric totals and bands, S-T types, FIAS
//! ratios, in lesson order for trends) and micro-ability evidence with the points' grades.
//! Every figure carries the ids (and URLs) of the rows it was computed from, so a reader can
//! check it. The arithmetic over those rows is in pure functions ([`lesson_figures`],
//! [`summarise`]); must never count a draft observation or a lesson not yet over.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::grading::{point_grade, Grade, PointStatus};
use super::points::{self, AbilityPoint};
use super::store::{self as rstore, EvidenceRow, FileRow};
use crate::observe::rubric;
use crate::observe::st::LessonType;
use crate::observe::store::{self as ostore, ListFilter, Method};
use crate::observe::{fias, st};
use crate::school::model::{self, Lesson, LessonMode, LessonState, School, Teacher, Term};
use crate::store::{Store, StoreError, StoreResult};
use crate::time::Millis;

/// The lesson's page (`/lesson`: what it is, its recording in the player, its observations);
/// its facts in the API are `GET /api/lessons/{id}`.
pub fn lesson_url(id: i64) -> String {
    format!("/lesson?id={id}")
}

/// The observer's page of an observation.
pub fn observation_url(id: i64) -> String {
    format!("/observe?observation={id}")
}

/// The observation in the API.
pub fn observation_api(id: i64) -> String {
    format!("/api/observations/{id}")
}

/// A lesson the teacher taught, as the record lists it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LessonRef {
    /// The lesson.
    pub id: i64,
    /// `/lesson?id={id}`: the lesson's page.
    pub url: String,
    /// Title (课题).
    pub title: String,
    /// Subject.
    pub subject: String,
    /// Grade.
    pub grade: String,
    /// delivery, master or sync.
    pub mode: String,
    /// hub or assisting.
    pub role: String,
    /// The bell (Unix ms).
    pub starts_at: i64,
    /// Minutes taught: from the bell to its end (or to when the teacher ended it).
    pub minutes: i64,
    /// The other side's schools: the sites' for a hub lesson, the hub's for an assisted one.
    pub school_ids: Vec<i64>,
}

/// Lessons grouped by a key (a mode or a school), with where the figure came from.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Group {
    /// The mode's name, or the school's id as text.
    pub key: String,
    /// The school's name (for a school).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Lessons.
    pub lessons: i64,
    /// Minutes.
    pub minutes: i64,
    /// The lessons counted.
    pub lesson_ids: Vec<i64>,
}

/// Lessons in one role.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LessonFigures {
    /// How many.
    pub count: i64,
    /// Minutes, summed.
    pub minutes: i64,
    /// By mode (专递 delivery, 名师 master, 同步 sync).
    pub modes: Vec<Group>,
    /// By paired school (the other side of each lesson).
    pub paired_schools: Vec<Group>,
    /// The lessons counted.
    pub lesson_ids: Vec<i64>,
}

/// What the teacher taught in the term.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Teaching {
    /// As hub teacher (主讲).
    pub hub: LessonFigures,
    /// As assisting teacher at a remote site (辅导教师).
    pub assisting: LessonFigures,
    /// Lessons of the term not over yet (not counted above).
    pub upcoming: Vec<i64>,
    /// Every lesson counted, by start.
    pub lessons: Vec<LessonRef>,
}

/// A recording of one of the teacher's lessons.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RecordingRef {
    /// The recording.
    pub id: i64,
    /// Its lesson.
    pub lesson_id: i64,
    /// `/lesson?id={lesson_id}`: the lesson's page.
    pub lesson_url: String,
    /// Started (Unix ms).
    pub started_at: i64,
    /// Ended.
    pub ended_at: Option<i64>,
    /// recording, stopped or failed.
    pub state: String,
    /// Processing into playable files: processing, ready or failed.
    pub processing: Option<String>,
    /// Its exports (晒课 showcase/premium MP4s and the composite), newest first, as
    /// `GET /api/lessons/{lesson_id}/exports` shows them.
    pub exports: Vec<crate::school::exports::ExportJob>,
}

/// The rubric result of one observation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RubricFigure {
    /// The rubric version's row id.
    pub rubric_id: i64,
    /// Sum of the item scores.
    pub total: f64,
    /// The band's key.
    pub band: Option<String>,
    /// The band's name (优秀…).
    pub band_name: Option<String>,
}

/// The S-T result of one observation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StFigure {
    /// Samples.
    pub n: u64,
    /// Rt.
    pub rt: Option<f64>,
    /// Ch.
    pub ch: Option<f64>,
    /// practice, lecture, dialogue or mixed.
    #[serde(rename = "type")]
    pub lesson_type: Option<LessonType>,
}

/// The FIAS ratios of one observation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FiasFigure {
    /// Codes.
    pub n: u64,
    /// Teacher talk / N.
    pub teacher_talk: Option<f64>,
    /// Student talk / N.
    pub student_talk: Option<f64>,
    /// Silence / N.
    pub silence: Option<f64>,
    /// Indirect / direct.
    pub indirect_direct: Option<f64>,
    /// Revised indirect / direct.
    pub revised_indirect_direct: Option<f64>,
}

/// Where an inspection of a drawn item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReviewState {
    /// Some review is not graded yet (a dispute's or an appeal's too).
    Reviewing,
    /// Every review is graded: the outcome stands.
    Decided,
}

/// An observation or ability point drawn in a sampling inspection (抽检), as its teacher's
/// record shows it: the round, how far its reviews are and the outcome once decided; never
/// the reviewers (nor their grades one by one).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InspectionStatus {
    /// The sample (what an appeal names).
    pub sample_id: i64,
    /// The round.
    pub round_id: i64,
    /// Its name.
    pub round_name: String,
    /// county, city or province.
    pub level: String,
    /// reviewing or decided.
    pub state: ReviewState,
    /// Reviews so far (with disputes' and appeals').
    pub reviews: usize,
    /// Of those, graded.
    pub graded: usize,
    /// passed or failed once decided (`null` while reviewing).
    pub outcome: Option<crate::observe::inspect::Outcome>,
    /// A dispute review was added (two grades on opposite sides of pass/fail).
    pub disputed: bool,
    /// Appealed (once only).
    pub appealed: bool,
    /// Whether the teacher may appeal now (decided, not appealed before):
    /// `POST /api/inspections/appeals`.
    pub may_appeal: bool,
}

/// The status of one sample from its round and reviews (in order).
pub fn inspection_status(
    sample: &crate::observe::inspect_store::SampleRow,
    round: &crate::observe::inspect_store::RoundRow,
    reviews: &[crate::observe::inspect_store::ReviewRow],
) -> InspectionStatus {
    use crate::observe::inspect::{outcome_of, Outcome, Reason};
    let refs: Vec<&crate::observe::inspect_store::ReviewRow> = reviews.iter().collect();
    let o = outcome_of(&crate::observe::inspect_store::verdicts(
        &refs,
        round.pass_mark,
    ));
    let decided = o != Outcome::Pending;
    InspectionStatus {
        sample_id: sample.id,
        round_id: round.id,
        round_name: round.name.clone(),
        level: round.level.clone(),
        state: if decided {
            ReviewState::Decided
        } else {
            ReviewState::Reviewing
        },
        reviews: reviews.len(),
        graded: reviews
            .iter()
            .filter(|r| r.score.is_some() || r.grade.is_some())
            .count(),
        outcome: decided.then_some(o),
        disputed: reviews.iter().any(|r| r.reason == Reason::Dispute),
        appealed: sample.appealed,
        may_appeal: decided && !sample.appealed,
    }
}

/// The inspections of the drawn items among `ids` (of `source`: `observation` or
/// `ability_point`), by item id.
pub async fn inspections(
    store: &Store,
    source: &str,
    ids: &[i64],
) -> StoreResult<HashMap<i64, Vec<InspectionStatus>>> {
    let mut out: HashMap<i64, Vec<InspectionStatus>> = HashMap::new();
    for (sample, round) in crate::observe::inspect_store::samples_of(store, source, ids).await? {
        let reviews = crate::observe::inspect_store::sample_reviews(store, sample.id).await?;
        out.entry(sample.source_id)
            .or_default()
            .push(inspection_status(&sample, &round, &reviews));
    }
    Ok(out)
}

/// One submitted observation of one of the teacher's lessons.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ObservationResult {
    /// The observation.
    pub id: i64,
    /// `/observe?observation={id}`: the page.
    pub url: String,
    /// `/api/observations/{id}`.
    pub api: String,
    /// submitted or reviewed.
    pub state: String,
    /// The lesson.
    pub lesson_id: i64,
    /// `/lesson?id={lesson_id}`: the lesson's page.
    pub lesson_url: String,
    /// The lesson's title.
    pub lesson_title: String,
    /// The lesson's bell (Unix ms): the trend's axis.
    pub lesson_starts_at: i64,
    /// When it was submitted (Unix ms).
    pub submitted_at: Option<i64>,
    /// The rubric result, when scored with one (and complete).
    pub rubric: Option<RubricFigure>,
    /// The S-T result, when coded.
    pub st: Option<StFigure>,
    /// The FIAS ratios, when coded.
    pub fias: Option<FiasFigure>,
    /// The sampling inspections (抽检) that drew it (empty: never drawn).
    pub inspections: Vec<InspectionStatus>,
}

/// A count with the observations behind it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Tally {
    /// The band key or the S-T type.
    pub key: String,
    /// How many observations.
    pub count: u64,
    /// Which.
    pub observation_ids: Vec<i64>,
}

/// A mean with the observations behind it (`null` over none).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Mean {
    /// The mean.
    pub mean: Option<f64>,
    /// Of these observations' values.
    pub observation_ids: Vec<i64>,
}

/// The term's observation results.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Observations {
    /// Each submitted observation, in lesson order (the trend).
    pub results: Vec<ObservationResult>,
    /// Mean rubric total of the complete rubric scorings.
    pub rubric_mean: Mean,
    /// How many fell in each band.
    pub rubric_bands: Vec<Tally>,
    /// How many S-T codings gave each lesson type.
    pub st_types: Vec<Tally>,
    /// Mean FIAS teacher-talk ratio.
    pub fias_teacher_talk: Mean,
    /// Mean FIAS student-talk ratio.
    pub fias_student_talk: Mean,
    /// Mean FIAS silence ratio.
    pub fias_silence: Mean,
}

/// A file of an evidence item.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FileView {
    /// Its row.
    #[serde(flatten)]
    pub file: FileRow,
    /// Where to fetch it.
    pub url: String,
}

/// One evidence item with its files.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EvidenceView {
    /// Its row.
    #[serde(flatten)]
    pub evidence: EvidenceRow,
    /// Its files.
    pub files: Vec<FileView>,
}

/// One point the teacher picked, with its evidence and computed grade.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PointRecord {
    /// The point's code (A1…).
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its English name.
    pub name_en: String,
    /// A, B or C.
    pub environment: String,
    /// analysis, design, guidance or assessment.
    pub dimension: String,
    /// no_evidence, pending or graded.
    pub status: PointStatus,
    /// excellent, pass or fail once graded.
    pub grade: Option<Grade>,
    /// 优秀, 合格 or 不合格.
    pub grade_name: Option<String>,
    /// The evidence the grade comes from.
    pub evidence: Vec<EvidenceView>,
    /// The sampling inspections (抽检) that drew this point (empty: never drawn).
    pub inspections: Vec<InspectionStatus>,
}

/// The term's micro-ability points.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Abilities {
    /// Points to pick at least.
    pub min_points: u32,
    /// Whether as many are picked (have evidence).
    pub meets_minimum: bool,
    /// The picked points, in the configured order.
    pub points: Vec<PointRecord>,
}

/// A teacher as the record names them.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TeacherRef {
    /// Id.
    pub id: i64,
    /// 工号.
    pub code: String,
    /// Name.
    pub name: String,
    /// School.
    pub school_id: i64,
    /// The school's name.
    pub school_name: String,
}

/// One teacher's record for one term (教师数字档案).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TeacherRecord {
    /// Whose.
    pub teacher: TeacherRef,
    /// Which term.
    pub term: Term,
    /// When this was computed (Unix ms).
    pub computed_at: i64,
    /// Lessons.
    pub teaching: Teaching,
    /// Recordings of the lessons taught as hub teacher.
    pub recordings: Vec<RecordingRef>,
    /// Observation results.
    pub observations: Observations,
    /// Micro-ability evidence and grades.
    pub abilities: Abilities,
}

/// Minutes of a lesson: bell to end, or to when it was ended early; whole minutes, rounded.
pub fn minutes(l: &Lesson) -> i64 {
    let end = match l.ended_at {
        Some(e) if e > l.starts_at && e < l.ends_at => e,
        _ => l.ends_at,
    };
    ((end - l.starts_at).max(0) + 30_000) / 60_000
}

/// Figures over lessons taught in one role; `names` gives schools' names.
pub fn lesson_figures(lessons: &[&LessonRef], names: &HashMap<i64, String>) -> LessonFigures {
    let mut modes: BTreeMap<String, Group> = BTreeMap::new();
    let mut schools: BTreeMap<i64, Group> = BTreeMap::new();
    for l in lessons {
        let add = |g: &mut Group| {
            g.lessons += 1;
            g.minutes += l.minutes;
            g.lesson_ids.push(l.id);
        };
        add(modes.entry(l.mode.clone()).or_insert_with(|| Group {
            key: l.mode.clone(),
            name: None,
            lessons: 0,
            minutes: 0,
            lesson_ids: vec![],
        }));
        for s in &l.school_ids {
            add(schools.entry(*s).or_insert_with(|| Group {
                key: s.to_string(),
                name: names.get(s).cloned(),
                lessons: 0,
                minutes: 0,
                lesson_ids: vec![],
            }));
        }
    }
    LessonFigures {
        count: lessons.len() as i64,
        minutes: lessons.iter().map(|l| l.minutes).sum(),
        modes: modes.into_values().collect(),
        paired_schools: schools.into_values().collect(),
        lesson_ids: lessons.iter().map(|l| l.id).collect(),
    }
}

fn mean(values: &[(i64, f64)]) -> Mean {
    Mean {
        mean: (!values.is_empty())
            .then(|| values.iter().fold(0.0, |s, (_, v)| s + v) / values.len() as f64),
        observation_ids: values.iter().map(|(id, _)| *id).collect(),
    }
}

fn tally(items: impl Iterator<Item = (String, i64)>) -> Vec<Tally> {
    let mut m: BTreeMap<String, Tally> = BTreeMap::new();
    for (k, id) in items {
        let t = m.entry(k.clone()).or_insert_with(|| Tally {
            key: k,
            count: 0,
            observation_ids: vec![],
        });
        t.count += 1;
        t.observation_ids.push(id);
    }
    m.into_values().collect()
}

/// The summary figures over the results (each naming the observations it used).
pub fn summarise(results: Vec<ObservationResult>) -> Observations {
    let rubric: Vec<(i64, f64)> = results
        .iter()
        .filter_map(|r| {
            r.rubric
                .as_ref()
                .filter(|f| f.band.is_some())
                .map(|f| (r.id, f.total))
        })
        .collect();
    let fias_of = |pick: fn(&FiasFigure) -> Option<f64>| -> Vec<(i64, f64)> {
        results
            .iter()
            .filter_map(|r| r.fias.as_ref().and_then(pick).map(|v| (r.id, v)))
            .collect()
    };
    Observations {
        rubric_mean: mean(&rubric),
        rubric_bands: tally(results.iter().filter_map(|r| {
            r.rubric
                .as_ref()
                .and_then(|f| f.band.clone())
                .map(|b| (b, r.id))
        })),
        st_types: tally(results.iter().filter_map(|r| {
            r.st.as_ref()
                .and_then(|s| s.lesson_type)
                .map(|t| (t.as_str().to_string(), r.id))
        })),
        fias_teacher_talk: mean(&fias_of(|f| f.teacher_talk)),
        fias_student_talk: mean(&fias_of(|f| f.student_talk)),
        fias_silence: mean(&fias_of(|f| f.silence)),
        results,
    }
}

/// Epoch ms of the term's first day's 00:00 and the day after its last, local time.
fn term_window(t: &Term, offset: ::time::UtcOffset) -> StoreResult<(Millis, Millis)> {
    let day = |s: &str| {
        crate::time::parse_date(s)
            .ok_or_else(|| StoreError::Check(format!("term {} has a bad date `{s}`", t.name)))
    };
    let (a, b) = (day(&t.starts_on)?, day(&t.ends_on)?);
    let midnight = ::time::Time::MIDNIGHT;
    let next = b
        .next_day()
        .ok_or_else(|| StoreError::Check(format!("term {} ends at the end of time", t.name)))?;
    Ok((
        crate::time::local_to_millis(a, midnight, offset),
        crate::time::local_to_millis(next, midnight, offset),
    ))
}

/// The term named `name`.
pub async fn term_named(store: &Store, name: &str) -> StoreResult<Term> {
    model::list::<Term>(store, None)
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| StoreError::NotFound(format!("term `{name}`")))
}

/// What decides whether a lesson is over: now and the lesson windows.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Now.
    pub now: Millis,
    /// A lesson opens this long before its bell.
    pub open_before: Millis,
    /// And stays live this long after its end.
    pub grace: Millis,
}

/// Computes the record.
pub async fn build(
    store: &Store,
    teacher: &Teacher,
    term: &Term,
    offset: ::time::UtcOffset,
    clock: Clock,
) -> StoreResult<TeacherRecord> {
    let (from, to) = term_window(term, offset)?;
    let lessons = model::lessons_of_teacher(store, teacher.id, from, to).await?;
    let classrooms = crate::school::access::classroom_schools(store).await?;
    let mut names: HashMap<i64, String> = HashMap::new();
    for s in model::list::<School>(store, None).await? {
        names.insert(s.id, s.name);
    }
    let mut refs = Vec::new();
    let mut upcoming = Vec::new();
    for l in &lessons {
        let over = l.state == LessonState::Ended
            || l.state_at(clock.now, clock.open_before, clock.grace) == LessonState::Ended;
        if !over {
            upcoming.push(l.id);
            continue;
        }
        let hub_school = classrooms.get(&l.hub_classroom_id).copied();
        let (role, mut schools): (&str, Vec<i64>) = if l.hub_teacher_id == teacher.id {
            let mut s: Vec<i64> = l
                .sites
                .iter()
                .filter_map(|s| classrooms.get(&s.classroom_id).copied())
                .filter(|s| Some(*s) != hub_school)
                .collect();
            s.sort_unstable();
            ("hub", s)
        } else {
            ("assisting", hub_school.into_iter().collect())
        };
        schools.dedup();
        refs.push(LessonRef {
            id: l.id,
            url: lesson_url(l.id),
            title: l.title.clone(),
            subject: l.subject.clone(),
            grade: l.grade.clone(),
            mode: mode_name(l.mode).to_string(),
            role: role.to_string(),
            starts_at: l.starts_at,
            minutes: minutes(l),
            school_ids: schools,
        });
    }
    let hub: Vec<&LessonRef> = refs.iter().filter(|l| l.role == "hub").collect();
    let assisting: Vec<&LessonRef> = refs.iter().filter(|l| l.role == "assisting").collect();
    let teaching = Teaching {
        hub: lesson_figures(&hub, &names),
        assisting: lesson_figures(&assisting, &names),
        upcoming,
        lessons: refs.clone(),
    };
    let mut recordings = Vec::new();
    for l in &hub {
        let jobs = crate::school::exports::of_lesson(store, l.id)
            .await
            .map_err(|e| match e {
                crate::school::exports::ExportJobError::Store(e) => e,
                // `of_lesson` only reads the table; anything else would be a new kind of error.
                other => crate::store::StoreError::Check(other.to_string()),
            })?;
        for r in crate::school::recording::of_lesson(store, l.id).await? {
            let exports = jobs
                .iter()
                .filter(|j| j.recording == r.id)
                .cloned()
                .collect();
            recordings.push(RecordingRef {
                id: r.id,
                lesson_id: l.id,
                lesson_url: lesson_url(l.id),
                started_at: r.started_at,
                ended_at: r.ended_at,
                state: r.state,
                processing: r.processing,
                exports,
            });
        }
    }
    let observations = summarise(observation_results(store, teacher.id, &lessons, from, to).await?);
    let abilities = abilities(store, teacher.id, &term.name).await?;
    Ok(TeacherRecord {
        teacher: TeacherRef {
            id: teacher.id,
            code: teacher.code.clone(),
            name: teacher.name.clone(),
            school_id: teacher.school_id,
            school_name: names.get(&teacher.school_id).cloned().unwrap_or_default(),
        },
        term: term.clone(),
        computed_at: clock.now,
        teaching,
        recordings,
        observations,
        abilities,
    })
}

fn mode_name(m: LessonMode) -> &'static str {
    m.as_str()
}

/// The submitted (or reviewed) observations of lessons the teacher gave as hub teacher in
/// [`from`, `to`), in lesson order.
async fn observation_results(
    store: &Store,
    teacher: i64,
    lessons: &[Lesson],
    from: Millis,
    to: Millis,
) -> StoreResult<Vec<ObservationResult>> {
    let rows = ostore::observations(
        store,
        ListFilter {
            lesson_id: None,
            teacher_id: Some(teacher),
            observer_id: None,
        },
    )
    .await?;
    let mut out = Vec::new();
    for o in rows.iter().filter(|o| o.state != "draft") {
        let l = match lessons.iter().find(|l| l.id == o.lesson_id) {
            Some(l) => l.clone(),
            None => model::get_lesson(store, o.lesson_id).await?,
        };
        if !(from..to).contains(&l.starts_at) {
            continue;
        }
        let mut r = ObservationResult {
            id: o.id,
            url: observation_url(o.id),
            api: observation_api(o.id),
            state: o.state.clone(),
            lesson_id: l.id,
            lesson_url: lesson_url(l.id),
            lesson_title: l.title.clone(),
            lesson_starts_at: l.starts_at,
            submitted_at: o.submitted_at,
            rubric: None,
            st: None,
            fias: None,
            inspections: Vec::new(),
        };
        for m in &o.methods {
            match m {
                Method::Rubric => {
                    if let Some(rid) = o.rubric_id {
                        let rb = ostore::rubric(store, rid).await?;
                        let res = rubric::result(&rb.rubric, &ostore::scores(store, o.id).await?);
                        r.rubric = Some(RubricFigure {
                            rubric_id: rid,
                            total: res.total,
                            band: res.band,
                            band_name: res.band_name,
                        });
                    }
                }
                Method::St => {
                    let s = st::analyse(&ostore::st_codes(&ostore::codes(store, o.id, *m).await?));
                    r.st = Some(StFigure {
                        n: s.n,
                        rt: s.rt,
                        ch: s.ch,
                        lesson_type: s.lesson_type,
                    });
                }
                Method::Fias => {
                    let f =
                        fias::analyse(&ostore::fias_codes(&ostore::codes(store, o.id, *m).await?));
                    r.fias = Some(FiasFigure {
                        n: f.n,
                        teacher_talk: f.teacher_talk,
                        student_talk: f.student_talk,
                        silence: f.silence,
                        indirect_direct: f.indirect_direct,
                        revised_indirect_direct: f.revised_indirect_direct,
                    });
                }
            }
        }
        out.push(r);
    }
    out.sort_by_key(|r| (r.lesson_starts_at, r.id));
    let ids: Vec<i64> = out.iter().map(|r| r.id).collect();
    let mut drawn = inspections(store, "observation", &ids).await?;
    for r in &mut out {
        r.inspections = drawn.remove(&r.id).unwrap_or_default();
    }
    Ok(out)
}

/// Where an evidence file is fetched.
pub fn file_url(evidence: i64, file: i64) -> String {
    format!("/api/evidence/{evidence}/files/{file}")
}

/// The picked points with their evidence and grades.
pub async fn abilities(store: &Store, teacher: i64, term: &str) -> StoreResult<Abilities> {
    let list = points::points();
    let evidence = rstore::evidence_of(store, teacher, term).await?;
    let ids: Vec<i64> = evidence.iter().map(|e| e.id).collect();
    let files = rstore::files_of(store, &ids).await?;
    let mut out = Vec::new();
    for p in &list.points {
        let items: Vec<EvidenceView> = evidence
            .iter()
            .filter(|e| e.point == p.code)
            .map(|e| EvidenceView {
                evidence: e.clone(),
                files: files
                    .iter()
                    .filter(|f| f.evidence_id == e.id)
                    .map(|f| FileView {
                        url: file_url(e.id, f.id),
                        file: f.clone(),
                    })
                    .collect(),
            })
            .collect();
        if items.is_empty() {
            continue;
        }
        let grades: Vec<Option<Grade>> = items
            .iter()
            .map(|e| e.evidence.grade.as_deref().and_then(Grade::parse))
            .collect();
        let (status, grade) = point_grade(&grades);
        let AbilityPoint {
            code,
            name,
            name_en,
            environment,
            dimension,
        } = p.clone();
        out.push(PointRecord {
            code,
            name,
            name_en,
            environment,
            dimension,
            status,
            grade,
            grade_name: grade.map(|g| g.name().to_string()),
            evidence: items,
            inspections: Vec::new(),
        });
    }
    let mut subs: HashMap<i64, String> = HashMap::new();
    for p in &out {
        if let Some(id) =
            crate::observe::inspect_store::submission_id(store, teacher, term, &p.code).await?
        {
            subs.insert(id, p.code.clone());
        }
    }
    let ids: Vec<i64> = subs.keys().copied().collect();
    for (id, list) in inspections(store, "ability_point", &ids).await? {
        if let Some(p) = out.iter_mut().find(|p| subs.get(&id) == Some(&p.code)) {
            p.inspections = list;
        }
    }
    Ok(Abilities {
        min_points: list.min_points,
        meets_minimum: out.len() >= list.min_points as usize,
        points: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lref(id: i64, mode: &str, minutes: i64, schools: &[i64]) -> LessonRef {
        LessonRef {
            id,
            url: lesson_url(id),
            title: String::new(),
            subject: "英语".into(),
            grade: "三年级".into(),
            mode: mode.into(),
            role: "hub".into(),
            starts_at: id,
            minutes,
            school_ids: schools.to_vec(),
        }
    }

    #[test]
    fn lesson_figures_count_and_name_their_lessons() {
        // Three lessons: delivery 40 min to schools 2 and 3, delivery 40 to 2, master 45 to 4.
        let a = lref(1, "delivery", 40, &[2, 3]);
        let b = lref(2, "delivery", 40, &[2]);
        let c = lref(3, "master", 45, &[4]);
        let names = HashMap::from([(2, "民族小学".to_string())]);
        let f = lesson_figures(&[&a, &b, &c], &names);
        assert_eq!((f.count, f.minutes), (3, 125)); // 40 + 40 + 45
        assert_eq!(f.lesson_ids, vec![1, 2, 3]);
        let d = &f.modes[0];
        assert_eq!((d.key.as_str(), d.lessons, d.minutes), ("delivery", 2, 80));
        assert_eq!(d.lesson_ids, vec![1, 2]);
        assert_eq!(f.modes[1].lesson_ids, vec![3]);
        let s2 = &f.paired_schools[0];
        assert_eq!((s2.key.as_str(), s2.lessons, s2.minutes), ("2", 2, 80));
        assert_eq!(s2.name.as_deref(), Some("民族小学"));
        assert_eq!(f.paired_schools[2].lesson_ids, vec![3]);
        let none = lesson_figures(&[], &names);
        assert_eq!((none.count, none.minutes, none.modes.len()), (0, 0, 0));
    }

    #[test]
    fn minutes_round_and_stop_at_an_early_end() {
        let mut l = Lesson {
            id: 1,
            slot_id: None,
            lesson_date: None,
            mode: LessonMode::Delivery,
            title: String::new(),
            subject: String::new(),
            grade: String::new(),
            textbook: String::new(),
            chapter: String::new(),
            hub_teacher_id: 1,
            hub_classroom_id: 1,
            starts_at: 0,
            ends_at: 40 * 60_000,
            state: LessonState::Ended,
            ended_at: None,
            sites: vec![],
        };
        assert_eq!(minutes(&l), 40);
        l.ended_at = Some(35 * 60_000 + 29_999); // 35:29.999 → 35
        assert_eq!(minutes(&l), 35);
        l.ended_at = Some(35 * 60_000 + 30_000); // 35:30 → 36
        assert_eq!(minutes(&l), 36);
        l.ended_at = Some(50 * 60_000); // after the end: the slot's end counts
        assert_eq!(minutes(&l), 40);
    }

    fn result(
        id: i64,
        total: Option<(f64, &str)>,
        ty: Option<LessonType>,
        talk: Option<f64>,
    ) -> ObservationResult {
        ObservationResult {
            id,
            url: observation_url(id),
            api: observation_api(id),
            state: "submitted".into(),
            lesson_id: id,
            lesson_url: lesson_url(id),
            lesson_title: String::new(),
            lesson_starts_at: id,
            submitted_at: Some(id),
            rubric: total.map(|(t, b)| RubricFigure {
                rubric_id: 1,
                total: t,
                band: (!b.is_empty()).then(|| b.to_string()),
                band_name: None,
            }),
            st: ty.map(|t| StFigure {
                n: 20,
                rt: None,
                ch: None,
                lesson_type: Some(t),
            }),
            fias: talk.map(|t| FiasFigure {
                n: 10,
                teacher_talk: Some(t),
                student_talk: Some(1.0 - t),
                silence: Some(0.0),
                indirect_direct: None,
                revised_indirect_direct: None,
            }),
            inspections: vec![],
        }
    }

    #[test]
    fn summaries_name_the_observations_they_use() {
        // Rubric totals 85 (excellent) and 70 (fair); an incomplete scoring (no band) is left
        // out of the mean: (85 + 70) / 2 = 77.5.
        let s = summarise(vec![
            result(
                1,
                Some((85.0, "excellent")),
                Some(LessonType::Mixed),
                Some(0.6),
            ),
            result(2, Some((70.0, "fair")), Some(LessonType::Lecture), None),
            result(3, Some((40.0, "")), Some(LessonType::Mixed), Some(0.8)),
            result(4, None, None, None),
        ]);
        assert_eq!(s.rubric_mean.mean, Some(77.5));
        assert_eq!(s.rubric_mean.observation_ids, vec![1, 2]);
        assert_eq!(s.rubric_bands.len(), 2);
        assert_eq!(s.st_types[0].key, "lecture");
        assert_eq!(s.st_types[1].key, "mixed");
        assert_eq!(s.st_types[1].observation_ids, vec![1, 3]);
        // FIAS teacher talk: (0.6 + 0.8) / 2 = 0.7.
        assert!((s.fias_teacher_talk.mean.unwrap() - 0.7).abs() < 1e-12);
        assert_eq!(s.fias_teacher_talk.observation_ids, vec![1, 3]);
        assert_eq!(s.results.len(), 4);
        let none = summarise(vec![]);
        assert_eq!(none.rubric_mean.mean, None);
        assert!(none.st_types.is_empty());
    }
}
