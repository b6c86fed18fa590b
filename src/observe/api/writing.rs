//! The observation API's writing routes: opening an observation, appending and correcting
//! S-T/FIAS codes, rubric scores, time-stamped comments, submission and audited amendments.
//! Must never change a submitted observation except through an amendment, nor let anyone but
//! its observer write to it.

use super::*;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewObservation {
    lesson_id: i64,
    /// Some of `rubric`, `st`, `fias`, each once.
    methods: Vec<String>,
    #[serde(default)]
    rubric_id: Option<i64>,
    #[serde(default)]
    interval_s: Option<u32>,
}

pub(super) fn parse_methods(names: &[String]) -> Result<Vec<Method>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::invalid(
            "methods must name at least one of rubric, st, fias",
        ));
    }
    let mut out = Vec::new();
    for n in names {
        let m = Method::parse(n).ok_or_else(|| {
            ApiError::invalid(format!(
                "unknown method `{}`: use rubric, st or fias",
                n.chars().take(40).collect::<String>()
            ))
        })?;
        if out.contains(&m) {
            return Err(ApiError::invalid(format!("method `{n}` is named twice")));
        }
        out.push(m);
    }
    Ok(out)
}

#[utoipa::path(
    post, path = "/api/observations", request_body = NewObservation,
    responses((status = 201, description = "opened (a draft)", body = crate::observe::views::ObservationView, headers(("location" = String, description = "the new observation"))))
)]
pub(super) async fn obs_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(b): JsonBody<NewObservation>,
) -> ApiResult {
    let methods = parse_methods(&b.methods)?;
    let interval = b.interval_s.unwrap_or(30);
    if !(5..=600).contains(&interval) {
        return Err(ApiError::invalid(format!(
            "interval_s must be 5 to 600 seconds, not {interval}"
        )));
    }
    let rubric_id = match (methods.contains(&Method::Rubric), b.rubric_id) {
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                "rubric_id is for observations with the rubric method",
            ))
        }
        (false, None) => None,
        (true, Some(id)) => match ostore::rubric(&st.store, id).await {
            Ok(r) => Some(r.id),
            Err(crate::store::StoreError::NotFound(_)) => {
                return Err(ApiError::invalid(format!("there is no rubric {id}")))
            }
            Err(e) => return Err(e.into()),
        },
        (true, None) => ostore::latest_rubric(&st.store, rubric::DEFAULT_KEY)
            .await?
            .map(|r| r.id),
    };
    if b.lesson_id <= 0 {
        return Err(ApiError::not_found(
            "not-found",
            format!("lesson {} not found", b.lesson_id),
        ));
    }
    let l = model::get_lesson(&st.store, b.lesson_id).await?;
    let d = Directory::load(&st.store).await?;
    let (Principal::User { id: uid, scope, .. }, true) = (&p, p.role() == Role::Observer) else {
        return Err(out_of_scope(format!("lesson {}", l.id)));
    };
    // An observer observes lessons whose hub school lies in their scope.
    if !scope.covers(&d.classroom(l.hub_classroom_id)) {
        return Err(out_of_scope(format!("lesson {}", l.id)));
    }
    let id = ostore::insert_observation(
        &st.store,
        l.id,
        *uid,
        &methods,
        rubric_id,
        interval,
        st.now(),
    )
    .await?;
    let o = ostore::observation(&st.store, id).await?;
    Ok(created(
        format!("/api/observations/{id}"),
        view(&st, &o).await?,
    ))
}

pub(super) fn coded_method(o: &ObservationRow, name: &str) -> Result<Method, ApiError> {
    let m = Method::parse(name).filter(|m| m.coded()).ok_or_else(|| {
        ApiError::invalid(format!(
            "method must be st or fias, not `{}`",
            name.chars().take(40).collect::<String>()
        ))
    })?;
    if !o.methods.contains(&m) {
        return Err(ApiError::invalid(format!(
            "observation {} does not use {}",
            o.id,
            m.as_str()
        )));
    }
    Ok(m)
}

/// Parses `codes` for `m` into the stored string form.
pub(super) fn codes_string(m: Method, v: &Value) -> Result<String, ApiError> {
    let r = match m {
        Method::St => codes::parse_st(v).map(|c| c.iter().map(|c| c.letter()).collect()),
        _ => codes::parse_fias(v).map(|c| c.iter().map(|c| c.digit()).collect()),
    };
    r.map_err(|e| match e {
        CodesError::TooMany(_) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-codes",
            e.to_string(),
        ),
        e => ApiError::invalid(e.to_string()),
    })
}

pub(super) async fn coded_figures(
    st: &SchoolState,
    o: &ObservationRow,
    m: Method,
) -> Result<Value, ApiError> {
    let c = ostore::codes(&st.store, o.id, m).await?;
    Ok(match m {
        Method::St => json!({"method": "st", "n": c.len(), "codes": c,
                              "st": st::analyse(&ostore::st_codes(&c))}),
        _ => json!({"method": "fias", "n": c.len(), "codes": c,
                    "fias": fias::analyse(&ostore::fias_codes(&c))}),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCodes {
    /// `st` or `fias`.
    method: String,
    /// S-T: `"TTSS"` or `["T","T","S","S"]`; FIAS: `"5548820"` (digit 0 is category 10) or `[5, 5, 4, 8, 8, 2, 10]`.
    codes: Value,
}

pub(super) fn too_many(m: Method) -> ApiError {
    ApiError::invalid(format!(
        "an observation holds at most {} {} codes",
        ostore::MAX_CODES_PER_METHOD,
        m.as_str()
    ))
}

#[utoipa::path(
    post, path = "/api/observations/{id}/codes", params(("id" = i64, Path, description = "the observation's id")), request_body = NewCodes,
    responses((status = 200, description = "the method's codes and figures now", body = crate::observe::views::CodedFigures))
)]
pub(super) async fn codes_append(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<NewCodes>,
) -> ApiResult {
    let o = own(&st, &p, &id).await?;
    let m = coded_method(&o, &b.method)?;
    let add = codes_string(m, &b.codes)?;
    match ostore::append_codes(&st.store, o.id, m, &add, st.now()).await? {
        DraftWrite::Done => {}
        DraftWrite::NotDraft => return Err(submitted(o.id)),
        DraftWrite::DoesNotFit => return Err(too_many(m)),
    }
    Ok(Json(coded_figures(&st, &o, m).await?).into_response())
}

#[utoipa::path(
    delete, path = "/api/observations/{id}/codes",
    params(("id" = i64, Path, description = "the observation's id"),
        ("method" = String, Query, description = "`st` or `fias`"),
        ("last" = Option<u32>, Query, description = "how many of the last codes to remove (default 1)")),
    responses((status = 200, description = "the method's codes and figures now", body = crate::observe::views::CodedFigures))
)]
pub(super) async fn codes_cut(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let o = own(&st, &p, &id).await?;
    let m = coded_method(&o, q.get("method").map_or("", |s| s.as_str()))?;
    let last = q.get("last").map_or("1", |s| s.as_str());
    let n: usize = last
        .parse()
        .ok()
        .filter(|n| (1..=ostore::MAX_CODES_PER_METHOD).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "last must be 1 to {}, not `{last}`",
                ostore::MAX_CODES_PER_METHOD
            ))
        })?;
    match ostore::cut_codes(&st.store, o.id, m, n, st.now()).await? {
        DraftWrite::Done => {}
        DraftWrite::NotDraft => return Err(submitted(o.id)),
        DraftWrite::DoesNotFit => {
            return Err(ApiError::invalid(format!(
                "there are fewer than {n} {} codes to remove",
                m.as_str()
            )))
        }
    }
    Ok(Json(coded_figures(&st, &o, m).await?).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ScoresInput)]
pub(super) struct Scores {
    scores: Vec<ItemScore>,
}

pub(super) async fn rubric_of(
    st: &SchoolState,
    o: &ObservationRow,
) -> Result<RubricBody, ApiError> {
    match (o.methods.contains(&Method::Rubric), o.rubric_id) {
        (true, Some(rid)) => Ok(ostore::rubric(&st.store, rid).await?.rubric),
        _ => Err(ApiError::invalid(format!(
            "observation {} does not use a rubric",
            o.id
        ))),
    }
}

#[utoipa::path(
    put, path = "/api/observations/{id}/scores", params(("id" = i64, Path, description = "the observation's id")), request_body = Scores,
    responses((status = 200, description = "every score so far and the result", body = crate::observe::views::ScoresView))
)]
pub(super) async fn scores_put(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<Scores>,
) -> ApiResult {
    let o = own(&st, &p, &id).await?;
    let r = rubric_of(&st, &o).await?;
    let problems = rubric::score_problems(&r, &b.scores);
    if !problems.is_empty() {
        return Err(invalid_list("the scores do not fit the rubric", problems));
    }
    match ostore::put_scores(&st.store, o.id, &b.scores, st.now()).await? {
        DraftWrite::Done => {}
        _ => return Err(submitted(o.id)),
    }
    let scores = ostore::scores(&st.store, o.id).await?;
    Ok(Json(json!({"scores": scores, "result": rubric::result(&r, &scores)})).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewComment {
    at_ms: i64,
    body: String,
}

/// Comments sit on a lesson's timeline: from its start to a day later at most.
pub(super) const MAX_AT_MS: i64 = 24 * 3600 * 1000;

#[utoipa::path(
    post, path = "/api/observations/{id}/comments", params(("id" = i64, Path, description = "the observation's id")), request_body = NewComment,
    responses((status = 201, description = "stored", body = crate::observe::views::CommentCreated, headers(("location" = String, description = "the observation"))))
)]
pub(super) async fn comments_add(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<NewComment>,
) -> ApiResult {
    let o = own(&st, &p, &id).await?;
    if !(0..=MAX_AT_MS).contains(&b.at_ms) {
        return Err(ApiError::invalid(format!(
            "at_ms must be 0 to {MAX_AT_MS} (ms from the lesson's start), not {}",
            b.at_ms
        )));
    }
    let body = b.body.trim();
    if body.is_empty() || body.chars().count() > 2_000 {
        return Err(ApiError::invalid("a comment has 1 to 2000 characters"));
    }
    let Some(cid) = ostore::add_comment(&st.store, o.id, b.at_ms, body, st.now()).await? else {
        return Err(submitted(o.id));
    };
    Ok(created(
        format!("/api/observations/{}", o.id),
        json!({"id": cid, "at_ms": b.at_ms, "body": body}),
    ))
}

#[utoipa::path(
    post, path = "/api/observations/{id}/submit", params(("id" = i64, Path, description = "the observation's id")),
    responses((status = 200, description = "submitted", body = crate::observe::views::ObservationView))
)]
pub(super) async fn obs_submit(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let o = own(&st, &p, &id).await?;
    if o.state != "draft" {
        return Err(submitted(o.id));
    }
    // Only a finished observation is submitted: every rubric item scored, some codes coded.
    let mut missing = Vec::new();
    for m in &o.methods {
        match m {
            Method::Rubric => {
                let r = rubric_of(&st, &o).await?;
                let scores = ostore::scores(&st.store, o.id).await?;
                for it in &r.items {
                    if !scores.iter().any(|s| s.item == it.key) {
                        missing.push(format!(
                            "rubric item `{}` ({}) is not scored",
                            it.key, it.name
                        ));
                    }
                }
            }
            m => {
                if ostore::codes(&st.store, o.id, *m).await?.is_empty() {
                    missing.push(format!("no {} codes", m.as_str()));
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(invalid_list("the observation is not finished", missing));
    }
    if !ostore::submit(&st.store, o.id, st.now()).await? {
        return Err(submitted(o.id));
    }
    model::audit(
        &st.store,
        st.now(),
        &p.ident(),
        "observation.submit",
        &format!("observation:{}", o.id),
        "",
    )
    .await?;
    let o = ostore::observation(&st.store, o.id).await?;
    Ok(Json(view(&st, &o).await?).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewAmendment {
    reason: String,
    #[serde(default)]
    scores: Option<Vec<ItemScore>>,
    #[serde(default)]
    codes: Option<NewCodes>,
}

/// Amends a submitted observation: the given rubric items' scores replace theirs, and/or a
/// method's whole code sequence is replaced. What it replaced and what it became are kept
/// in the append-only amendment log with the reason.
#[utoipa::path(
    post, path = "/api/observations/{id}/amendments", params(("id" = i64, Path, description = "the observation's id")), request_body = NewAmendment,
    responses((status = 201, description = "amended (the amendment is logged and audited)", body = crate::observe::views::AmendmentCreated, headers(("location" = String, description = "the observation"))))
)]
pub(super) async fn obs_amend(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<NewAmendment>,
) -> ApiResult {
    let o = own(&st, &p, &id).await?;
    if o.state == "draft" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "observation-draft",
            format!("observation {} is a draft: change it directly", o.id),
        ));
    }
    let reason = b.reason.trim();
    if reason.is_empty() || reason.chars().count() > 2_000 {
        return Err(ApiError::invalid(
            "an amendment needs a reason (1 to 2000 characters)",
        ));
    }
    if b.scores.is_none() && b.codes.is_none() {
        return Err(ApiError::invalid("an amendment changes scores or codes"));
    }
    if let Some(scores) = &b.scores {
        let r = rubric_of(&st, &o).await?;
        let problems = rubric::score_problems(&r, scores);
        if !problems.is_empty() {
            return Err(invalid_list("the scores do not fit the rubric", problems));
        }
    }
    let codes = match &b.codes {
        Some(c) => {
            let m = coded_method(&o, &c.method)?;
            Some((m, codes_string(m, &c.codes)?))
        }
        None => None,
    };
    let change = ostore::Change {
        scores: b.scores.as_deref(),
        codes: codes.as_ref().map(|(m, s)| (*m, s.as_str())),
    };
    let Some(aid) = ostore::amend(&st.store, o.id, &p.ident(), reason, &change, st.now()).await?
    else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "observation-draft",
            format!("observation {} is a draft: change it directly", o.id),
        ));
    };
    model::audit(
        &st.store,
        st.now(),
        &p.ident(),
        "observation.amend",
        &format!("observation:{}", o.id),
        &format!("amendment {aid}: {reason}"),
    )
    .await?;
    let o = ostore::observation(&st.store, o.id).await?;
    Ok(created(
        format!("/api/observations/{}", o.id),
        json!({"id": aid, "observation": view(&st, &o).await?}),
    ))
}
