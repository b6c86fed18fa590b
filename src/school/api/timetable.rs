//! The term timetable's slots and the lessons generated from it. Must never write a slot that
//! clashes with another (the store's conflict check decides).

#[allow(unused_imports)]
use super::*;

pub(super) fn slot_err(e: SlotError) -> ApiError {
    match e {
        SlotError::Invalid(m) => ApiError::invalid(m),
        SlotError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "timetable-conflict", m),
        SlotError::Store(s) => s.into(),
    }
}

/// The places of a slot's hub and site classrooms.
pub(super) fn slot_places(d: &Directory, s: &TimetableSlot) -> Vec<Place> {
    std::iter::once(s.hub_classroom_id)
        .chain(s.sites.iter().map(|x| x.classroom_id))
        .map(|c| d.classroom(c))
        .collect()
}

/// Refuses unless `p` is an admin over the slot's hub school and, for every site school not
/// paired with the hub school, over that school too.
pub(crate) fn admin_over_slot(
    p: &Principal,
    d: &Directory,
    s: &TimetableSlot,
) -> Result<(), ApiError> {
    let hub = d.classroom(s.hub_classroom_id);
    let mut places = vec![hub.clone()];
    for site in &s.sites {
        let pl = d.classroom(site.classroom_id);
        let paired = match (hub.school_id, pl.school_id) {
            (Some(h), Some(x)) => h == x || d.paired.get(&h).is_some_and(|o| o.contains(&x)),
            _ => false,
        };
        if !paired {
            places.push(pl);
        }
    }
    admin_over(p, Level::School, format!("slot {}", s.id), &places)
}

#[utoipa::path(
    get, path = "/api/slots",
    params(("term_id" = i64, Query, description = "the term")),
    responses((status = 200, description = "the term's slots inside the caller's scope", body = Vec<TimetableSlot>))
)]
pub(super) async fn slots_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let term = q
        .get("term_id")
        .ok_or_else(|| ApiError::bad_request("bad-query", "term_id is required"))?;
    let term = parse_id(term)?;
    let mut conn = st
        .store
        .pool()
        .acquire()
        .await
        .map_err(crate::store::StoreError::from)?;
    let d = Directory::load(&st.store).await?;
    let scope = p.scope().cloned().ok_or_else(|| {
        ApiError::forbidden("role-forbidden", "devices do not read the timetable")
    })?;
    let slots: Vec<TimetableSlot> = model::list_slots_in(&mut conn, term, None)
        .await?
        .into_iter()
        .filter(|s| scope.covers_any(&slot_places(&d, s)))
        .collect();
    Ok(Json(slots).into_response())
}

#[utoipa::path(
    post, path = "/api/slots", request_body = TimetableSlot,
    responses((status = 201, description = "created", body = TimetableSlot, headers(("location" = String, description = "the new row"))))
)]
pub(super) async fn slots_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(s): JsonBody<TimetableSlot>,
) -> ApiResult {
    let d = Directory::load(&st.store).await?;
    admin_over_slot(&p, &d, &s)?;
    let s = model::save_slot(&st.store, s, false)
        .await
        .map_err(slot_err)?;
    Ok(created(format!("/api/slots/{}", s.id), &s))
}

#[utoipa::path(
    get, path = "/api/slots/{id}", params(("id" = i64, Path, description = "the row's id")),
    responses((status = 200, description = "the slot", body = TimetableSlot))
)]
pub(super) async fn slots_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let s = model::get_slot(&st.store, parse_id(&id)?).await?;
    let d = Directory::load(&st.store).await?;
    if !p
        .scope()
        .is_some_and(|sc| sc.covers_any(&slot_places(&d, &s)))
    {
        return Err(out_of_scope(format!("slot {id}")));
    }
    Ok(Json(s).into_response())
}

#[utoipa::path(
    put, path = "/api/slots/{id}", params(("id" = i64, Path, description = "the row's id")), request_body = TimetableSlot,
    responses((status = 200, description = "changed", body = TimetableSlot))
)]
pub(super) async fn slots_put(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(mut s): JsonBody<TimetableSlot>,
) -> ApiResult {
    s.id = parse_id(&id)?;
    let old = model::get_slot(&st.store, s.id).await?;
    let d = Directory::load(&st.store).await?;
    admin_over_slot(&p, &d, &old)?;
    admin_over_slot(&p, &d, &s)?;
    let s = model::save_slot(&st.store, s, true)
        .await
        .map_err(slot_err)?;
    Ok(Json(s).into_response())
}

#[utoipa::path(
    delete, path = "/api/slots/{id}", params(("id" = i64, Path, description = "the row's id")),
    responses((status = 204, description = "deleted"))
)]
pub(super) async fn slots_delete(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let old = model::get_slot(&st.store, id).await?;
    let d = Directory::load(&st.store).await?;
    admin_over_slot(&p, &d, &old)?;
    model::delete_slot(&st.store, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Dates to make lessons for from the timetable, both included.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct DateRange {
    /// First day.
    #[schema(format = Date)]
    from: String,
    /// Last day (at most 200 days after `from`).
    #[schema(format = Date)]
    to: String,
}

/// What generating lessons answers.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Generated {
    /// Lessons made (existing ones are kept).
    created: usize,
    /// First day.
    #[schema(format = Date)]
    from: String,
    /// Last day.
    #[schema(format = Date)]
    to: String,
}

#[utoipa::path(
    post, path = "/api/lessons/generate", request_body = DateRange,
    responses((status = 200, description = "lessons made from the timetable, for the slots whose hub school lies in the caller's scope", body = Generated))
)]
pub(super) async fn lessons_generate(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(r): JsonBody<DateRange>,
) -> ApiResult {
    let (Some(from), Some(to)) = (parse_date(&r.from), parse_date(&r.to)) else {
        return Err(ApiError::invalid("from and to must be dates (YYYY-MM-DD)"));
    };
    if to < from || (to - from).whole_days() > 200 {
        return Err(ApiError::invalid(
            "to must be on or after from, at most 200 days later",
        ));
    }
    // Only the slots whose hub classroom's school the admin's scope covers (issue 22 item 3):
    // the same rule as running a lesson (`access::may_run`).
    let mine = access::admin_scope(&p)?.clone();
    let d = Directory::load(&st.store).await?;
    let n = model::generate_lessons_of(&st.store, from, to, st.offset, |s| {
        mine.covers(&d.classroom(s.hub_classroom_id))
    })
    .await?;
    st.poke.notify_one();
    Ok(Json(Generated {
        created: n,
        from: fmt_date(from),
        to: fmt_date(to),
    })
    .into_response())
}
