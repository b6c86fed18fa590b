//! Lessons: list, create, change, delete, join (a media token for the lesson's room), end, and
//! today's lessons of the caller. Must never mint a token the lesson policy refuses.

#[allow(unused_imports)]
use super::*;

/// A lesson as the API shows it: the row, plus its room and local times.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct LessonView {
    #[serde(flatten)]
    lesson: Lesson,
    /// The media room (`/whip/{room}`, `/whep/{room}`).
    room: String,
    /// The bell, RFC 3339 local time.
    starts: String,
    /// The end of the slot, RFC 3339 local time.
    ends: String,
    /// When the classrooms may join (the room opens `school.open_before_min` before the
    /// bell), RFC 3339 local time: what a waiting kiosk shows (issue 22 item 6).
    opens: String,
    /// Called off before its bell (`POST /api/lessons/{id}/cancel`): its `state` is `ended`,
    /// and pages show it as cancelled (已停课), never as held; nobody may join it.
    cancelled: bool,
}

/// `l` as the API shows it; `cancelled` from `reports::is_cancelled` (or [`views`]).
pub(super) fn view(st: &SchoolState, l: Lesson, cancelled: bool) -> LessonView {
    LessonView {
        room: l.room(),
        starts: rfc3339(l.starts_at, st.offset),
        ends: rfc3339(l.ends_at, st.offset),
        opens: rfc3339(l.starts_at.saturating_sub(st.open_before), st.offset),
        cancelled,
        lesson: l,
    }
}

/// Many lessons as the API shows them (one query for which are cancelled).
pub(super) async fn views(st: &SchoolState, ls: Vec<Lesson>) -> Result<Vec<LessonView>, ApiError> {
    let off = crate::school::reports::cancelled(&st.store).await?;
    Ok(ls
        .into_iter()
        .map(|l| {
            let c = off.contains(&l.id);
            view(st, l, c)
        })
        .collect())
}

/// One lesson as the API shows it.
pub(super) async fn view_of(st: &SchoolState, l: Lesson) -> Result<LessonView, ApiError> {
    let c = crate::school::reports::is_cancelled(&st.store, l.id).await?;
    Ok(view(st, l, c))
}

pub(super) fn day_window(
    st: &SchoolState,
    from: Option<&String>,
    to: Option<&String>,
) -> Result<(i64, i64), ApiError> {
    let off = st.offset;
    let today = millis_to_local(st.now(), off).date();
    let parse = |s: Option<&String>, dflt| match s {
        None => Ok(dflt),
        Some(s) => parse_date(s).ok_or_else(|| {
            ApiError::bad_request("bad-query", format!("`{s}` is not a date (YYYY-MM-DD)"))
        }),
    };
    let from = parse(from, today)?;
    let to = parse(to, from)?;
    if to < from || (to - from).whole_days() > 62 {
        return Err(ApiError::bad_request(
            "bad-query",
            "to must be on or after from, at most 62 days later",
        ));
    }
    let start = crate::time::local_to_millis(from, time::Time::MIDNIGHT, off);
    let end = crate::time::local_to_millis(to.next_day().unwrap_or(to), time::Time::MIDNIGHT, off);
    Ok((start, end))
}

/// The lessons `p` may watch among `ls` (one directory load).
pub(super) async fn watchable(
    st: &SchoolState,
    p: &Principal,
    ls: Vec<Lesson>,
) -> Result<Vec<Lesson>, ApiError> {
    if let Principal::Device { classroom_id, .. } = p {
        return Ok(ls
            .into_iter()
            .filter(|l| l.has_classroom(*classroom_id))
            .collect());
    }
    let d = Directory::load(&st.store).await?;
    Ok(ls
        .into_iter()
        .filter(|l| access::may_watch(p, l, &d.lesson(l)))
        .collect())
}

#[utoipa::path(
    get, path = "/api/lessons",
    params(("from" = Option<String>, Query, format = Date, description = "first day (default today)"),
        ("to" = Option<String>, Query, format = Date, description = "last day (default `from`; at most 62 days later)")),
    responses((status = 200, description = "the lessons the caller may watch", body = Vec<LessonView>))
)]
pub(super) async fn lessons_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let (from, to) = day_window(&st, q.get("from"), q.get("to"))?;
    let ls = model::lessons_between(&st.store, from, to).await?;
    let out: Vec<LessonView> = views(&st, watchable(&st, &p, ls).await?).await?;
    Ok(Json(out).into_response())
}

/// Refuses unless `p` runs lesson `l` (its hub teacher, or an admin over its hub school).
pub(super) async fn own_lesson(
    st: &SchoolState,
    p: &Principal,
    l: &Lesson,
) -> Result<(), ApiError> {
    let d = Directory::load(&st.store).await?;
    if access::may_run(p, l, &d.classroom(l.hub_classroom_id)) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "not-your-lesson",
            format!(
                "only lesson {}'s hub teacher or an administrator over its hub school may do this",
                l.id
            ),
        ))
    }
}

/// How far in the past a new or moved lesson may start (a teacher creating a lesson at the
/// bell, a clock a little behind).
pub(super) const PAST_START_SLACK: i64 = 5 * 60_000;

/// Sites a lesson of `mode` may have at most (`master` is the hub school's setting).
pub(super) fn max_sites(mode: LessonMode, hub: &School) -> usize {
    match mode {
        LessonMode::Delivery => 6,
        LessonMode::Sync => 10,
        LessonMode::Master => hub.max_master_sites.max(0) as usize,
    }
}

/// A lesson as the API takes it: the row plus, for an admin over every school involved, the
/// explicit choice to include sites their pairings do not cover.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct LessonInput {
    #[serde(flatten)]
    lesson: Lesson,
    /// An admin over every school involved: include sites no pairing covers (audited).
    #[serde(default)]
    override_pairing: bool,
}

/// Checks a lesson that `p` creates (`existing` = 0) or changes: times, hub, sites,
/// pairings, clashes and the daily quota. Returns the audit note when an admin overrode
/// pairings.
pub(super) async fn check_lesson(
    st: &SchoolState,
    p: &Principal,
    l: &Lesson,
    existing: i64,
    override_pairing: bool,
) -> Result<Option<String>, ApiError> {
    l.validate().map_err(ApiError::invalid)?;
    let now = st.now();
    if l.starts_at < now.saturating_sub(PAST_START_SLACK) {
        return Err(ApiError::invalid(format!(
            "starts_at: {} is in the past (a lesson may start at most {} minutes ago)",
            rfc3339(l.starts_at, st.offset),
            PAST_START_SLACK / 60_000
        )));
    }
    if l.starts_at > now.saturating_add(400 * 86_400_000) {
        return Err(ApiError::invalid(
            "starts_at: a lesson is planned at most 400 days ahead",
        ));
    }
    let store = &st.store;
    let hub_room: Classroom = model::get(store, l.hub_classroom_id).await.map_err(|_| {
        ApiError::invalid(format!(
            "hub_classroom_id: no classroom {}",
            l.hub_classroom_id
        ))
    })?;
    let teacher: Teacher = model::get(store, l.hub_teacher_id).await.map_err(|_| {
        ApiError::invalid(format!("hub_teacher_id: no teacher {}", l.hub_teacher_id))
    })?;
    if hub_room.kind == model::ClassroomKind::ReceiveOnly {
        return Err(ApiError::invalid(format!(
            "hub_classroom_id: classroom {} is receive-only and cannot lead a lesson",
            hub_room.id
        )));
    }
    if hub_room.school_id != teacher.school_id {
        return Err(ApiError::invalid(format!(
            "hub_classroom_id: classroom {} belongs to school {}, not to the hub teacher's school {}",
            hub_room.id, hub_room.school_id, teacher.school_id
        )));
    }
    let d = Directory::load(store).await?;
    let hub_place = d.school(hub_room.school_id);
    let is_admin = p.role() == Role::Admin;
    if !access::may_run(p, l, &hub_place) {
        return Err(if is_admin {
            out_of_scope(format!("school {}", hub_room.school_id))
        } else {
            ApiError::forbidden(
                "not-your-lesson",
                "a teacher creates lessons they lead themselves (hub_teacher_id is yours)",
            )
        });
    }
    let hub_school: School = model::get(store, hub_room.school_id).await?;
    let limit = max_sites(l.mode, &hub_school);
    if l.sites.len() > limit {
        return Err(ApiError::invalid(format!(
            "sites: a {} lesson has at most {limit} sites, this one has {}",
            l.mode.as_str(),
            l.sites.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let date = fmt_date(millis_to_local(l.starts_at, st.offset).date());
    let terms = model::terms_on(store, &date).await?;
    let mut overridden = Vec::new();
    for site in &l.sites {
        if !seen.insert(site.classroom_id) {
            return Err(ApiError::invalid(format!(
                "sites: classroom {} is listed twice",
                site.classroom_id
            )));
        }
        let room: Classroom = model::get(store, site.classroom_id)
            .await
            .map_err(|_| ApiError::invalid(format!("sites: no classroom {}", site.classroom_id)))?;
        if room.school_id == hub_room.school_id {
            continue;
        }
        let mut paired = false;
        for term in &terms {
            if model::is_paired(
                store,
                hub_room.school_id,
                room.school_id,
                &l.subject,
                &l.grade,
                term,
            )
            .await?
            {
                paired = true;
                break;
            }
        }
        if paired {
            continue;
        }
        let site_place = d.school(room.school_id);
        let admin_over_site = p.scope().is_some_and(|s| s.covers(&site_place)) && is_admin;
        if override_pairing && admin_over_site {
            overridden.push(format!("classroom {} (school {})", room.id, room.school_id));
            continue;
        }
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "site-not-paired",
            format!(
                "sites: classroom {} belongs to school {}, which is not paired with hub school {} \
                 for {} {} in the term of {date}{}",
                room.id,
                room.school_id,
                hub_room.school_id,
                l.subject,
                l.grade,
                if is_admin && admin_over_site {
                    " (an administrator over both schools may send override_pairing: true)"
                } else {
                    ""
                }
            ),
        ));
    }
    let mut rooms: Vec<i64> = vec![l.hub_classroom_id];
    rooms.extend(l.sites.iter().map(|s| s.classroom_id));
    let clashes = model::clashing_lessons(
        store,
        l.starts_at,
        l.ends_at,
        l.hub_teacher_id,
        &rooms,
        existing,
    )
    .await?;
    if let Some(c) = clashes.first() {
        // Names, not ids (王丽, not "teacher 1"): the id stays in brackets.
        let with = if c.hub_teacher_id == l.hub_teacher_id {
            format!(
                "the same hub teacher {} ({})",
                teacher.name, c.hub_teacher_id
            )
        } else {
            let mut shared: Vec<String> = Vec::new();
            for r in rooms.iter().filter(|r| c.has_classroom(**r)) {
                match model::get::<Classroom>(store, *r).await {
                    Ok(room) => shared.push(format!("{} ({r})", room.name)),
                    Err(_) => shared.push(r.to_string()),
                }
            }
            format!("classroom {}", shared.join(", "))
        };
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "lesson-conflict",
            format!(
                "lesson {} ({} to {}) already has {with} at that time",
                c.id,
                rfc3339(c.starts_at, st.offset),
                rfc3339(c.ends_at, st.offset)
            ),
        ));
    }
    let day = millis_to_local(l.starts_at, st.offset).date();
    let day_start = crate::time::local_to_millis(day, time::Time::MIDNIGHT, st.offset);
    let day_end = crate::time::local_to_millis(
        day.next_day().unwrap_or(day),
        time::Time::MIDNIGHT,
        st.offset,
    );
    let n =
        model::count_teacher_lessons(store, l.hub_teacher_id, day_start, day_end, existing).await?;
    if n >= st.max_lessons_per_teacher_day {
        st.metrics.lessons_refused_quota.inc();
        let wait = ((day_end.saturating_sub(now)) / 1000).clamp(60, 86_400) as u64;
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-lessons",
            format!(
                "teacher {} already leads {n} lessons on {date}; the limit is {} a day \
                 (school.max_lessons_per_teacher_day)",
                l.hub_teacher_id, st.max_lessons_per_teacher_day
            ),
        )
        .with_retry_after(wait));
    }
    Ok((!overridden.is_empty()).then(|| {
        format!(
            "sites outside the hub school's pairings: {}",
            overridden.join(", ")
        )
    }))
}

#[utoipa::path(
    post, path = "/api/lessons", request_body = LessonInput,
    responses((status = 201, description = "created", body = LessonView, headers(("location" = String, description = "the new row"))))
)]
pub(super) async fn lessons_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(input): JsonBody<LessonInput>,
) -> ApiResult {
    let mut l = input.lesson;
    l.slot_id = None;
    l.lesson_date = None;
    l.ended_at = None;
    l.state = LessonState::Scheduled;
    let note = check_lesson(&st, &p, &l, 0, input.override_pairing).await?;
    let stored = model::insert_lesson(&st.store, &l).await?;
    if let Some(n) = note {
        model::audit(
            &st.store,
            st.now(),
            &p.ident(),
            "pairing-override",
            &format!("lesson {}", stored.id),
            &n,
        )
        .await?;
    }
    st.poke.notify_one();
    Ok(created(
        format!("/api/lessons/{}", stored.id),
        &view(&st, stored, false),
    ))
}

/// Loads lesson `id` for a change by `p`: it must be theirs to run and still scheduled.
pub(super) async fn scheduled_lesson_for(
    st: &SchoolState,
    p: &Principal,
    id: &str,
) -> Result<Lesson, ApiError> {
    let l = model::get_lesson(&st.store, parse_id(id)?).await?;
    own_lesson(st, p, &l).await?;
    let s = l.state_at(st.now(), st.open_before, st.grace);
    if s != LessonState::Scheduled || l.state != LessonState::Scheduled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "lesson-not-scheduled",
            format!(
                "lesson {} is {}; only a lesson that has not opened yet can be changed or deleted",
                l.id,
                s.as_str()
            ),
        ));
    }
    Ok(l)
}

#[utoipa::path(
    put, path = "/api/lessons/{id}", params(("id" = i64, Path, description = "the lesson's id")), request_body = LessonInput,
    responses((status = 200, description = "changed", body = LessonView))
)]
pub(super) async fn lessons_put(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<LessonInput>,
) -> ApiResult {
    let old = scheduled_lesson_for(&st, &p, &id).await?;
    let mut l = input.lesson;
    l.id = old.id;
    l.slot_id = old.slot_id;
    l.lesson_date = old.lesson_date.clone();
    l.ended_at = None;
    l.state = LessonState::Scheduled;
    let note = check_lesson(&st, &p, &l, old.id, input.override_pairing).await?;
    let stored = model::update_lesson(&st.store, old.id, &l).await?;
    model::audit(
        &st.store,
        st.now(),
        &p.ident(),
        "lesson-changed",
        &format!("lesson {}", old.id),
        &format!(
            "was {}..{} hub {} sites {:?}; now {}..{} hub {} sites {:?}{}",
            old.starts_at,
            old.ends_at,
            old.hub_classroom_id,
            old.sites.iter().map(|s| s.classroom_id).collect::<Vec<_>>(),
            l.starts_at,
            l.ends_at,
            l.hub_classroom_id,
            l.sites.iter().map(|s| s.classroom_id).collect::<Vec<_>>(),
            note.map(|n| format!("; {n}")).unwrap_or_default()
        ),
    )
    .await?;
    st.poke.notify_one();
    Ok(Json(view(&st, stored, false)).into_response())
}

#[utoipa::path(
    delete, path = "/api/lessons/{id}", params(("id" = i64, Path, description = "the lesson's id")),
    responses((status = 204, description = "deleted"))
)]
pub(super) async fn lessons_delete(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = scheduled_lesson_for(&st, &p, &id).await?;
    model::delete_lesson(&st.store, l.id).await?;
    model::audit(
        &st.store,
        st.now(),
        &p.ident(),
        "lesson-deleted",
        &format!("lesson {}", l.id),
        &format!(
            "{} {} {}..{} hub {}",
            l.subject, l.grade, l.starts_at, l.ends_at, l.hub_classroom_id
        ),
    )
    .await?;
    st.live.forget(l.id);
    st.poke.notify_one();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Loads lesson `id` if `p` may watch it.
pub(super) async fn lesson_for(
    st: &SchoolState,
    p: &Principal,
    id: &str,
) -> Result<Lesson, ApiError> {
    let l = model::get_lesson(&st.store, parse_id(id)?).await?;
    if let Principal::Device { classroom_id, .. } = p {
        if !l.has_classroom(*classroom_id) {
            return Err(ApiError::forbidden(
                "not-in-lesson",
                format!("this classroom is not part of lesson {}", l.id),
            ));
        }
        return Ok(l);
    }
    let d = Directory::load(&st.store).await?;
    if !access::may_watch(p, &l, &d.lesson(&l)) {
        return Err(out_of_scope(format!("lesson {}", l.id)));
    }
    Ok(l)
}

#[utoipa::path(
    get, path = "/api/lessons/{id}", params(("id" = i64, Path, description = "the lesson's id")),
    responses((status = 200, description = "the lesson", body = LessonView))
)]
pub(super) async fn lessons_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    Ok(Json(view_of(&st, l).await?).into_response())
}

#[utoipa::path(
    post, path = "/api/lessons/{id}/join", params(("id" = i64, Path, description = "the lesson's id")),
    responses((status = 200, description = "a media token for the lesson's room", body = Join),
        (status = 403, description = "not this caller's lesson, not open yet, ended, or cancelled (`lesson-cancelled`)"))
)]
pub(super) async fn lessons_join(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    let g = policy::decide(&st, &p, &l).await?;
    let now = st.now();
    // A cancelled lesson is refused as cancelled, not as ended (issue 22 item 4): the pages
    // say 已停课, and nobody joins it.
    if crate::school::reports::is_cancelled(&st.store, l.id).await? {
        return Err(ApiError::forbidden(
            "lesson-cancelled",
            format!("lesson {} was cancelled", l.id),
        ));
    }
    policy::check_window(&st, &l, now)?;
    let who = p.ident();
    let ver = people::token_version(&st.store, &who)
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized("token-revoked", "this account or device was revoked")
        })?;
    let claims = policy::claims_for(&st, &l, &g, now, who, ver);
    let token = st.keys.mint_claims(&claims);
    let room = l.room();
    Ok(Json(Join {
        lesson: l.id,
        mode: l.mode,
        state: l.state_at(now, st.open_before, st.grace),
        whip: format!("/whip/{room}"),
        whep: format!("/whep/{room}"),
        room,
        part: g.part,
        publish: g.publish,
        needs_speak_grant: g.needs_speak_grant,
        token,
        events: format!("/api/lessons/{}/events", l.id),
        hub_classroom_id: l.hub_classroom_id,
        spotlight: st.live.spotlit(l.id),
    })
    .into_response())
}

/// What joining a lesson answers: a media token for its room and where to use it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Join {
    /// The lesson.
    lesson: i64,
    /// Its mode.
    mode: LessonMode,
    /// Its state now.
    state: LessonState,
    /// Its media room.
    room: String,
    /// The caller's participant id in the room.
    part: String,
    /// Whether the caller may publish.
    publish: bool,
    /// Whether publishing waits for a speak grant (名师课堂 sites).
    needs_speak_grant: bool,
    /// The media token (bearer for WHIP/WHEP).
    token: String,
    /// Where to publish.
    whip: String,
    /// Where to watch.
    whep: String,
    /// The lesson's event stream.
    events: String,
    /// The hub classroom.
    hub_classroom_id: i64,
    /// The classroom on the big screen, if any.
    spotlight: Option<i64>,
}

#[utoipa::path(
    post, path = "/api/lessons/{id}/end", params(("id" = i64, Path, description = "the lesson's id")),
    responses((status = 200, description = "ended", body = LessonView))
)]
pub(super) async fn lessons_end(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = model::get_lesson(&st.store, parse_id(&id)?).await?;
    own_lesson(&st, &p, &l).await?;
    let now = st.now();
    if l.state_at(now, st.open_before, st.grace) == LessonState::Ended {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "lesson-ended",
            format!("lesson {} has already ended", l.id),
        ));
    }
    model::set_lesson_state(&st.store, l.id, LessonState::Ended, Some(now)).await?;
    st.live.emit(
        l.id,
        "state",
        now,
        serde_json::json!({"state": "ended", "lesson": l.id, "by": p.ident()}),
    );
    if let Err(e) = crate::school::recording::stop_lesson(&st, l.id).await {
        tracing::warn!(lesson = l.id, "recording: {e}");
    }
    crate::school::scheduler::end_room(&st, l.id).await;
    let l = model::get_lesson(&st.store, l.id).await?;
    Ok(Json(view_of(&st, l).await?).into_response())
}

#[utoipa::path(
    get, path = "/api/today",
    responses((status = 200, description = "the caller's lessons of today", body = Today))
)]
pub(super) async fn today(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let (from, to) = day_window(&st, None, None)?;
    let now = st.now();
    let mine = |l: &Lesson| match &p {
        Principal::Device { classroom_id, .. } => l.has_classroom(*classroom_id),
        Principal::User {
            teacher_id: Some(t),
            role: Role::Teacher,
            ..
        } => l.hub_teacher_id == *t || l.sites.iter().any(|s| s.assisting_teacher_id == Some(*t)),
        _ => true,
    };
    let ls: Vec<Lesson> = watchable(&st, &p, model::lessons_between(&st.store, from, to).await?)
        .await?
        .into_iter()
        .filter(|l| mine(l))
        .collect();
    let state = |l: &Lesson| l.state_at(now, st.open_before, st.grace);
    let current = ls
        .iter()
        .find(|l| matches!(state(l), LessonState::Open | LessonState::Live))
        .cloned();
    let next = ls
        .iter()
        .find(|l| state(l) == LessonState::Scheduled)
        .cloned();
    // Names for the ids the lessons carry (the page shows 王丽, not "teacher 1").
    let mut teacher_names = std::collections::BTreeMap::new();
    let mut classroom_names = std::collections::BTreeMap::new();
    for l in &ls {
        let teachers = std::iter::once(l.hub_teacher_id)
            .chain(l.sites.iter().filter_map(|s| s.assisting_teacher_id));
        for t in teachers {
            if let std::collections::btree_map::Entry::Vacant(e) =
                teacher_names.entry(t.to_string())
            {
                if let Ok(x) = model::get::<Teacher>(&st.store, t).await {
                    e.insert(x.name);
                }
            }
        }
        let rooms =
            std::iter::once(l.hub_classroom_id).chain(l.sites.iter().map(|s| s.classroom_id));
        for c in rooms {
            if let std::collections::btree_map::Entry::Vacant(e) =
                classroom_names.entry(c.to_string())
            {
                if let Ok(x) = model::get::<Classroom>(&st.store, c).await {
                    e.insert(x.name);
                }
            }
        }
    }
    Ok(Json(Today {
        now,
        date: fmt_date(millis_to_local(now, st.offset).date()),
        teacher_names,
        classroom_names,
        current: match current {
            Some(l) => Some(view_of(&st, l).await?),
            None => None,
        },
        next: match next {
            Some(l) => Some(view_of(&st, l).await?),
            None => None,
        },
        lessons: views(&st, ls).await?,
    })
    .into_response())
}

/// The caller's lessons of today.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Today {
    /// The server's clock, epoch ms.
    now: i64,
    /// Today's local date.
    #[schema(format = Date)]
    date: String,
    /// The lesson open or live now, if any.
    current: Option<LessonView>,
    /// The next lesson still to come today, if any.
    next: Option<LessonView>,
    /// All of today's lessons.
    lessons: Vec<LessonView>,
    /// The name of each teacher these lessons name (hub and assisting), by id.
    teacher_names: std::collections::BTreeMap<String, String>,
    /// The name of each classroom these lessons name (hub and sites), by id.
    classroom_names: std::collections::BTreeMap<String, String>,
}

/// `POST /api/lessons/{id}/recording` body.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordingSwitch {
    on: bool,
}

/// `POST /api/lessons/{id}/recording` answer: whether the lesson is being recorded now, and
/// its recordings so far.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct RecordingState {
    /// The lesson.
    lesson: i64,
    /// Whether a recording of it is running.
    recording: bool,
    /// Its recordings, oldest first.
    recordings: Vec<crate::school::recording::Recording>,
}

/// Starts or stops recording a lesson that is open or live (its hub teacher or an admin).
#[utoipa::path(
    post, path = "/api/lessons/{id}/recording", params(("id" = i64, Path, description = "the lesson's id")), request_body = RecordingSwitch,
    responses((status = 200, description = "the lesson's recording state after the change", body = RecordingState))
)]
pub(super) async fn lessons_recording(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<RecordingSwitch>,
) -> ApiResult {
    use crate::school::recording;
    let l = model::get_lesson(&st.store, parse_id(&id)?).await?;
    own_lesson(&st, &p, &l).await?;
    let state = l.state_at(st.now(), st.open_before, st.grace);
    if b.on && !matches!(state, LessonState::Open | LessonState::Live) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "lesson-not-running",
            format!(
                "lesson {} is {}: only an open or live lesson can be recorded",
                l.id,
                state.as_str()
            ),
        ));
    }
    // A stop by hand is stored (a restart does not record the lesson again); a start clears it.
    let res = recording::switch_by_hand(&st, l.id, b.on, &p.ident()).await;
    match res {
        Ok(()) => {}
        Err(recording::SwitchError::Media(e)) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "recording-unavailable",
                e.to_string(),
            ))
        }
        Err(recording::SwitchError::Store(e)) => return Err(e.into()),
    }
    let recordings = recording::of_lesson(&st.store, l.id).await?;
    Ok(Json(RecordingState {
        lesson: l.id,
        recording: recording::is_recording(&st, l.id),
        recordings,
    })
    .into_response())
}
