//! Reports a county sends upward (开课率, 到课率, minutes taught, link quality; JSON and CSV),
//! cancelling a lesson (the row stays, so the reports can count it), and the 巡课 patrol wall's
//! routes: the live lessons in the caller's scope and a watch-only token that puts the watcher
//! in nobody's presence list. Must never mint a patrol token that may publish.

#[allow(unused_imports)]
use super::*;

use crate::school::reports::{self, By, Report};

/// The longest report window (a school year and a little).
const MAX_DAYS: i64 = 400;

/// What a report asks for: its window in local dates and its grouping.
struct Ask {
    from: time::Date,
    to: time::Date,
    by: By,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request("bad-query", msg)
}

/// Reads `?from=&to=&by=&term_id=` (a term gives the window when from/to are absent).
async fn ask(st: &SchoolState, q: &HashMap<String, String>) -> Result<Ask, ApiError> {
    let by = match q.get("by").map(String::as_str) {
        None | Some("") => By::Week,
        Some(s) => {
            By::parse(s).ok_or_else(|| bad(format!("by must be week or term, not `{s}`")))?
        }
    };
    let date = |k: &str| -> Result<Option<time::Date>, ApiError> {
        match q.get(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => parse_date(s)
                .map(Some)
                .ok_or_else(|| bad(format!("`{s}` is not a date (YYYY-MM-DD)"))),
        }
    };
    let (mut from, mut to) = (date("from")?, date("to")?);
    if let Some(t) = q.get("term_id").filter(|s| !s.is_empty()) {
        let id = t
            .parse::<i64>()
            .map_err(|_| bad(format!("`{t}` is not a term id")))?;
        let term: Term = model::get(&st.store, id).await?;
        from = from.or(parse_date(&term.starts_on));
        to = to.or(parse_date(&term.ends_on));
    }
    let today = millis_to_local(st.now(), st.offset).date();
    let to = to.unwrap_or(today);
    let from = from.unwrap_or(to - time::Duration::days(27));
    if to < from || (to - from).whole_days() > MAX_DAYS {
        return Err(bad(format!(
            "to must be on or after from, at most {MAX_DAYS} days later"
        )));
    }
    Ok(Ask { from, to, by })
}

/// The report for `p` over `a`.
async fn build(st: &SchoolState, p: &Principal, a: &Ask) -> Result<Report, ApiError> {
    let Principal::User { scope, .. } = p else {
        return Err(ApiError::forbidden(
            "role-forbidden",
            "devices read no reports",
        ));
    };
    let off = st.offset;
    let start = crate::time::local_to_millis(a.from, time::Time::MIDNIGHT, off);
    let end =
        crate::time::local_to_millis(a.to.next_day().unwrap_or(a.to), time::Time::MIDNIGHT, off);
    let all = model::lessons_between(&st.store, start, end).await?;
    // Lessons whose bell is in the window (not ones that merely overlap its edge).
    let all: Vec<Lesson> = all
        .into_iter()
        .filter(|l| l.starts_at >= start && l.starts_at < end)
        .collect();
    let ls = watchable(st, p, all).await?;
    let terms: Vec<Term> = model::list(&st.store, None).await?;
    let by = a.by;
    let period = move |l: &Lesson| {
        let d = millis_to_local(l.starts_at, off).date();
        let p = match by {
            By::Week => {
                let monday = d - time::Duration::days(i64::from(crate::time::iso_weekday(d)) - 1);
                fmt_date(monday)
            }
            By::Term => {
                let day = fmt_date(d);
                terms
                    .iter()
                    .find(|t| t.starts_on <= day && day <= t.ends_on)
                    .map(|t| t.name.clone())
                    .unwrap_or_default()
            }
        };
        (p, fmt_date(d))
    };
    let cancelled = reports::cancelled(&st.store).await?;
    let facts = reports::facts(&ls, &cancelled, &period);
    let sessions = reports::sessions_between(&st.store, start, end).await?;
    let grades = reports::grades_between(&st.store, start, end).await?;
    let names = reports::names(&st.store).await?;
    let dir = Directory::load(&st.store).await?;
    let shown = |s: i64| scope.covers(&dir.school(s));
    Ok(reports::compute(
        &facts,
        &sessions,
        &grades,
        &names,
        st.now(),
        &shown,
    ))
}

/// A report with its window, as the API answers it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ReportView {
    /// First day.
    from: String,
    /// Last day.
    to: String,
    /// Grouping: week or term.
    by: By,
    #[serde(flatten)]
    report: Report,
}

#[utoipa::path(
    get, path = "/api/reports",
    params(("from" = Option<String>, Query, format = Date, description = "first day (default 27 days before `to`)"),
        ("to" = Option<String>, Query, format = Date, description = "last day (default today; at most 400 days after `from`)"),
        ("term_id" = Option<i64>, Query, description = "a term: its dates are the window unless from/to say otherwise"),
        ("by" = Option<String>, Query, description = "week (default) or term")),
    responses((status = 200, description = "开课率, 到课率 per school and site, minutes per teacher, link quality per school, and every lesson counted, for the lessons in the caller's scope", body = ReportView))
)]
pub(super) async fn reports_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let a = ask(&st, &q).await?;
    let report = build(&st, &p, &a).await?;
    Ok(Json(ReportView {
        from: fmt_date(a.from),
        to: fmt_date(a.to),
        by: a.by,
        report,
    })
    .into_response())
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// One report table as CSV text (UTF-8 with a BOM, Chinese headers: Excel on Chinese Windows
/// opens it as it is).
fn csv_of(r: &Report, table: &str) -> Result<String, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| ApiError::internal(format!("csv: {e}"));
    let mut put = |row: Vec<String>| w.write_record(&row);
    fn s(x: impl ToString) -> String {
        x.to_string()
    }
    let res = match table {
        "rate" => {
            put(
                ["周期", "排课", "停课", "未到时间", "应开", "已开", "开课率"]
                    .map(String::from)
                    .to_vec(),
            )
            .map_err(fail)?;
            r.rate.iter().try_for_each(|x| {
                put(vec![
                    x.period.clone(),
                    s(x.scheduled),
                    s(x.cancelled),
                    s(x.upcoming),
                    s(x.due),
                    s(x.held),
                    pct(x.rate),
                ])
            })
        }
        "schools" | "sites" => {
            let rows = if table == "schools" {
                &r.schools
            } else {
                &r.sites
            };
            put(["周期", "学校", "教室", "应到", "实到", "到课率"]
                .map(String::from)
                .to_vec())
            .map_err(fail)?;
            rows.iter().try_for_each(|x| {
                put(vec![
                    x.period.clone(),
                    x.school.clone(),
                    x.classroom.clone().unwrap_or_default(),
                    s(x.expected),
                    s(x.present),
                    pct(x.rate),
                ])
            })
        }
        "teachers" => {
            put(["周期", "教师", "学校", "授课节数", "授课分钟"]
                .map(String::from)
                .to_vec())
            .map_err(fail)?;
            r.teachers.iter().try_for_each(|x| {
                put(vec![
                    x.period.clone(),
                    x.teacher.clone(),
                    x.school.clone(),
                    s(x.lessons),
                    format!("{:.1}", x.minutes),
                ])
            })
        }
        "links" => {
            put(["周期", "学校", "良好", "一般", "较差", "良好占比"]
                .map(String::from)
                .to_vec())
            .map_err(fail)?;
            r.links.iter().try_for_each(|x| {
                put(vec![
                    x.period.clone(),
                    x.school.clone(),
                    s(x.good),
                    s(x.fair),
                    s(x.poor),
                    pct(x.good_share),
                ])
            })
        }
        "lessons" => {
            put([
                "课程编号",
                "周期",
                "日期",
                "学科",
                "年级",
                "主讲教师",
                "结果",
                "到课教室",
                "应到教室",
                "授课分钟",
            ]
            .map(String::from)
            .to_vec())
            .map_err(fail)?;
            r.lessons.iter().try_for_each(|x| {
                let outcome = match x.outcome.as_str() {
                    "held" => "已开课",
                    "cancelled" => "已停课",
                    "missed" => "未开课",
                    _ => "未到时间",
                };
                put(vec![
                    s(x.id),
                    x.period.clone(),
                    x.date.clone(),
                    x.subject.clone(),
                    x.grade.clone(),
                    x.teacher.clone(),
                    outcome.to_string(),
                    s(x.sites_present),
                    s(x.sites_expected),
                    format!("{:.1}", x.minutes),
                ])
            })
        }
        other => {
            return Err(bad(format!(
                "table must be rate, schools, sites, teachers, links or lessons, not `{other}`"
            )))
        }
    };
    res.map_err(fail)?;
    let bytes = w
        .into_inner()
        .map_err(|e| ApiError::internal(format!("csv: {e}")))?;
    Ok(format!("\u{feff}{}", String::from_utf8_lossy(&bytes)))
}

#[utoipa::path(
    get, path = "/api/reports.csv",
    params(("table" = String, Query, description = "rate, schools, sites, teachers, links or lessons"),
        ("from" = Option<String>, Query, format = Date, description = "first day"),
        ("to" = Option<String>, Query, format = Date, description = "last day"),
        ("term_id" = Option<i64>, Query, description = "a term"),
        ("by" = Option<String>, Query, description = "week (default) or term")),
    responses((status = 200, description = "one table of the report as CSV (UTF-8 with BOM, Chinese headers)", body = String, content_type = "text/csv"))
)]
pub(super) async fn reports_csv(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let a = ask(&st, &q).await?;
    let table = q.get("table").map(String::as_str).unwrap_or("rate");
    // Checked before the work, so a bad table name answers at once.
    if !["rate", "schools", "sites", "teachers", "links", "lessons"].contains(&table) {
        return Err(bad(format!(
            "table must be rate, schools, sites, teachers, links or lessons, not `{table}`"
        )));
    }
    let report = build(&st, &p, &a).await?;
    let body = csv_of(&report, table)?;
    let name = format!("report-{table}-{}-{}.csv", fmt_date(a.from), fmt_date(a.to));
    let mut r = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// Why a lesson is cancelled.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct CancelInput {
    /// The reason, for the audit log and the reports.
    #[serde(default)]
    reason: String,
}

#[utoipa::path(
    post, path = "/api/lessons/{id}/cancel", params(("id" = i64, Path, description = "the lesson's id")),
    request_body = CancelInput,
    responses((status = 200, description = "cancelled: the lesson is ended before its bell and counted as cancelled by the reports", body = LessonView))
)]
pub(super) async fn lessons_cancel(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<CancelInput>,
) -> ApiResult {
    let l = model::get_lesson(&st.store, parse_id(&id)?).await?;
    own_lesson(&st, &p, &l).await?;
    let now = st.now();
    if reports::is_cancelled(&st.store, l.id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "lesson-cancelled",
            format!("lesson {} is already cancelled", l.id),
        ));
    }
    match l.state_at(now, st.open_before, st.grace) {
        LessonState::Scheduled | LessonState::Open => {}
        _ => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "lesson-started",
                format!(
                    "lesson {} has already started or ended; only a lesson before its bell can be cancelled",
                    l.id
                ),
            ))
        }
    }
    let reason: String = input.reason.trim().chars().take(200).collect();
    reports::cancel(&st.store, l.id, now, &p.ident(), &reason).await?;
    model::set_lesson_state(&st.store, l.id, LessonState::Ended, Some(now)).await?;
    model::audit(
        &st.store,
        now,
        &p.ident(),
        "lesson-cancelled",
        &format!("lesson {}", l.id),
        &format!(
            "{} {} {}..{}: {reason}",
            l.subject, l.grade, l.starts_at, l.ends_at
        ),
    )
    .await?;
    st.live.emit(
        l.id,
        "state",
        now,
        serde_json::json!({"state": "ended", "lesson": l.id, "cancelled": true, "by": p.ident()}),
    );
    crate::school::scheduler::end_room(&st, l.id).await;
    st.poke.notify_one();
    let l = model::get_lesson(&st.store, l.id).await?;
    Ok(Json(view(&st, l, true)).into_response())
}

/// One classroom of a lesson on the patrol wall.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct PatrolSite {
    /// The classroom.
    classroom_id: i64,
    /// Its name.
    classroom: String,
    /// Its school's name.
    school: String,
    /// Connected to the lesson now.
    present: bool,
    /// Its link grade (good, fair, poor), when measured.
    grade: Option<crate::school::quality::Grade>,
}

/// A live lesson on the patrol wall.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct PatrolLesson {
    #[serde(flatten)]
    lesson: LessonView,
    /// The hub teacher's name.
    teacher: String,
    /// The hub classroom (first) and the sites.
    classrooms: Vec<PatrolSite>,
}

#[utoipa::path(
    get, path = "/api/patrol",
    responses((status = 200, description = "the lessons open or live now in the caller's scope, with their classrooms' presence and link grades (patrol watchers are in nobody's list)", body = Vec<PatrolLesson>))
)]
pub(super) async fn patrol_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let now = st.now();
    // Open or live now: from `open_before` ahead of the bell to `grace` after the end.
    let ls =
        model::lessons_between(&st.store, now - st.grace - 1, now + st.open_before + 1).await?;
    let ls: Vec<Lesson> = ls
        .into_iter()
        .filter(|l| {
            matches!(
                l.state_at(now, st.open_before, st.grace),
                LessonState::Open | LessonState::Live
            )
        })
        .collect();
    let ls = watchable(&st, &p, ls).await?;
    let names = reports::names(&st.store).await?;
    let mut out = Vec::new();
    for l in ls {
        let snap = st.live.snapshot(l.id);
        let rooms: Vec<i64> = std::iter::once(l.hub_classroom_id)
            .chain(l.sites.iter().map(|s| s.classroom_id))
            .collect();
        let classrooms = rooms
            .into_iter()
            .map(|c| {
                let part = format!("c:{c}");
                let (name, school) = names.classrooms.get(&c).cloned().unwrap_or_default();
                PatrolSite {
                    classroom_id: c,
                    classroom: name,
                    school: names.schools.get(&school).cloned().unwrap_or_default(),
                    present: snap.present.iter().any(|x| x.part == part),
                    grade: snap.links.iter().find(|x| x.part == part).map(|x| x.grade),
                }
            })
            .collect();
        out.push(PatrolLesson {
            teacher: names
                .teachers
                .get(&l.hub_teacher_id)
                .map(|t| t.0.clone())
                .unwrap_or_default(),
            classrooms,
            lesson: view(&st, l, false),
        });
    }
    Ok(Json(out).into_response())
}

/// A patrol watcher's media token.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct PatrolJoin {
    /// The lesson.
    lesson: i64,
    /// Its media room.
    room: String,
    /// The watcher's participant id (`p:<user>`: in nobody's presence list).
    part: String,
    /// Where to watch.
    whep: String,
    /// The media token: watch only.
    token: String,
}

#[utoipa::path(
    post, path = "/api/lessons/{id}/patrol", params(("id" = i64, Path, description = "the lesson's id")),
    responses((status = 200, description = "a watch-only media token for the lesson's room; the watcher is neither seen, heard nor listed as present", body = PatrolJoin))
)]
pub(super) async fn lessons_patrol(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    let Principal::User { id: uid, .. } = &p else {
        return Err(ApiError::forbidden(
            "role-forbidden",
            "devices do not patrol",
        ));
    };
    let now = st.now();
    policy::check_window(&st, &l, now)?;
    let who = p.ident();
    let ver = people::token_version(&st.store, &who)
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized("token-revoked", "this account or device was revoked")
        })?;
    let g = policy::JoinGrant {
        part: format!("p:{uid}"),
        publish: false,
        needs_speak_grant: false,
    };
    let claims = policy::claims_for(&st, &l, &g, now, who, ver);
    let room = l.room();
    Ok(Json(PatrolJoin {
        lesson: l.id,
        whep: format!("/whep/{room}"),
        room,
        part: g.part,
        token: st.keys.mint_claims(&claims),
    })
    .into_response())
}
