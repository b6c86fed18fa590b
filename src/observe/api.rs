//! The observation API: rubric versions (`/api/rubrics`) and observations
//! (`/api/observations`): codes, scores, time-stamped comments, submission, amendments and
//! the SVG charts. Its own route table ([`ROUTES`]) goes through the school API's guard, so
//! no route exists without a role rule; the object rules are here. Must never let a
//! submitted observation change except through an audited amendment.
//!
//! | object | read | write |
//! | --- | --- | --- |
//! | rubric | anyone signed in (not devices) | a global admin (every edit is a new version) |
//! | observation | its observer; admins covering the lesson's hub school; the lesson's hub teacher once submitted | its observer (a draft; amendments once submitted) |
//! | new observation | | an observer whose scope covers the lesson's hub school |
//!
//! Classroom devices never reach any of it (the role rule). Corrections: `DELETE
//! /api/observations/{id}/codes?method=st&last=3` removes a draft's last three S-T samples.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::codes::{self, CodesError};
use super::rubric::{self, ItemScore, RubricBody};
use super::store::{self as ostore, DraftWrite, Method, ObservationRow};
use super::{fias, st};
use crate::auth::people::{Principal, Role};
use crate::problem::{ApiError, JsonBody};
use crate::school::access::{out_of_scope, Directory};
use crate::school::api::{Allow, RouteRule};
use crate::school::model;
use crate::school::SchoolState;

type ApiResult = Result<Response, ApiError>;

const PEOPLE: &[Role] = &[Role::Admin, Role::Teacher, Role::Observer, Role::Inspector];
const ADMIN: &[Role] = &[Role::Admin];
const OBSERVER: &[Role] = &[Role::Observer];
// Sampling inspection (抽检): round managers and reviewers.
const INSPECT_MANAGERS: &[Role] = &[Role::Admin, Role::Inspector];
const INSPECT_REVIEWERS: &[Role] = &[Role::Inspector];
// A teacher appealing the outcome of their own drawn item.
const INSPECT_APPELLANTS: &[Role] = &[Role::Teacher];

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
        tag: "observation",
    }
}

/// Every observation route with its role rule (the object rules are in the handlers).
pub(crate) const ROUTES: &[RouteRule] = &[
    rule(
        "GET",
        "/api/rubrics",
        PEOPLE,
        "The newest version of each rubric (?all=true: every version)",
    ),
    rule(
        "POST",
        "/api/rubrics",
        ADMIN,
        "Create a rubric (version 1; global admin)",
    ),
    rule("GET", "/api/rubrics/{id}", PEOPLE, "One rubric version"),
    rule(
        "PUT",
        "/api/rubrics/{id}",
        ADMIN,
        "Edit a rubric: stores the next version (global admin)",
    ),
    rule(
        "GET",
        "/api/observations",
        PEOPLE,
        "Observations the caller may read (?lesson_id=, ?teacher_id=, ?mine=true)",
    ),
    rule(
        "POST",
        "/api/observations",
        OBSERVER,
        "Open an observation of a lesson in the observer's scope",
    ),
    rule(
        "GET",
        "/api/observations/{id}",
        PEOPLE,
        "One observation with its S-T, FIAS and rubric results",
    ),
    rule(
        "POST",
        "/api/observations/{id}/codes",
        OBSERVER,
        "Append S-T or FIAS codes in order (draft)",
    ),
    rule(
        "DELETE",
        "/api/observations/{id}/codes",
        OBSERVER,
        "Remove the last codes (?method=st&last=3; draft)",
    ),
    rule(
        "PUT",
        "/api/observations/{id}/scores",
        OBSERVER,
        "Set the rubric scores (draft)",
    ),
    rule(
        "POST",
        "/api/observations/{id}/comments",
        OBSERVER,
        "A comment at a moment of the lesson (at_ms; draft)",
    ),
    rule(
        "POST",
        "/api/observations/{id}/submit",
        OBSERVER,
        "Submit: from now on changed only by amendments",
    ),
    rule(
        "POST",
        "/api/observations/{id}/amendments",
        OBSERVER,
        "Amend a submitted observation (reason required; audited)",
    ),
    rule(
        "GET",
        "/api/observations/{id}/st.svg",
        PEOPLE,
        "The S-T curve",
    ),
    rule(
        "GET",
        "/api/observations/{id}/rt-ch.svg",
        PEOPLE,
        "The Rt-Ch chart",
    ),
    rule(
        "GET",
        "/api/observations/{id}/fias.svg",
        PEOPLE,
        "The FIAS matrix as a heat map",
    ),
    // ---- sampling inspection (抽检, `api/inspect.rs`): object rules in its handlers ----
    inspect_rule(
        "GET",
        "/api/inspections/rounds",
        INSPECT_MANAGERS,
        "Inspection rounds the caller manages (scope contains the round's place)",
    ),
    inspect_rule(
        "POST",
        "/api/inspections/rounds",
        INSPECT_MANAGERS,
        "Open a round at a level (county/city/province) with its ratio and seed",
    ),
    inspect_rule(
        "GET",
        "/api/inspections/rounds/{id}",
        INSPECT_MANAGERS,
        "A round: seed, pool, progress, disputes, pass rate per unit (its managers)",
    ),
    inspect_rule(
        "PUT",
        "/api/inspections/rounds/{id}/reviewers",
        INSPECT_MANAGERS,
        "Set an open round's reviewer pool (inspectors who do not manage it; experts flagged)",
    ),
    inspect_rule(
        "POST",
        "/api/inspections/rounds/{id}/draw",
        INSPECT_MANAGERS,
        "Draw once: seeded, stratified; reviews assigned experts first, recusal enforced",
    ),
    inspect_rule(
        "GET",
        "/api/inspections/rounds/{id}/audit",
        INSPECT_MANAGERS,
        "The round's append-only audit log (every grade and change)",
    ),
    inspect_rule(
        "POST",
        "/api/inspections/samples/{id}/appeal",
        INSPECT_MANAGERS,
        "Appeal a decided sample: one more review (audited)",
    ),
    inspect_rule(
        "GET",
        "/api/inspections/reviews",
        INSPECT_REVIEWERS,
        "The caller's reviews, blinded (pseudonym and stratum only)",
    ),
    inspect_rule(
        "GET",
        "/api/inspections/reviews/{id}",
        INSPECT_REVIEWERS,
        "One of the caller's reviews with its blinded evidence",
    ),
    inspect_rule(
        "PUT",
        "/api/inspections/reviews/{id}",
        INSPECT_REVIEWERS,
        "Grade (or re-grade) one of the caller's reviews (audited; disputes re-checked)",
    ),
    // The blinded review's media (api/inspect_media.rs): its reviewer only, by index.
    inspect_rule(
        "GET",
        "/api/inspections/reviews/{id}/media",
        INSPECT_REVIEWERS,
        "One of the caller's reviews: the lesson's playable sources by index (no names or ids)",
    ),
    inspect_rule(
        "GET",
        "/api/inspections/reviews/{id}/media/{index}",
        INSPECT_REVIEWERS,
        "One source of the caller's review, ranges honoured, its metadata Title blanked",
    ),
    // Ability-point rounds (api/inspect_media.rs, api/inspect.rs): the evidence's files
    // renamed, and a teacher's appeal of their own drawn item.
    inspect_rule(
        "GET",
        "/api/inspections/reviews/{id}/files/{index}",
        INSPECT_REVIEWERS,
        "One evidence file of the caller's ability-point review, by index, renamed",
    ),
    inspect_rule(
        "POST",
        "/api/inspections/appeals",
        INSPECT_APPELLANTS,
        "Appeal the decided outcome of one's own drawn observation or ability point (once)",
    ),
    // The automatic S-T draft (api/stdraft.rs).
    rule(
        "POST",
        "/api/observations/{id}/st-draft",
        OBSERVER,
        "Draft the S-T codes from the lesson's recording (teacher's voice; draft)",
    ),
    rule(
        "GET",
        "/api/observations/{id}/st-draft",
        PEOPLE,
        "The automatic S-T draft and where it differs from the observer's codes",
    ),
];

const fn inspect_rule(
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
        tag: "inspection",
    }
}

/// The observation operations, from the attributes on the handlers; the school side's
/// document takes them with [`ROUTES`] (see `http::api_document`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    rubrics_list,
    rubrics_create,
    rubrics_get,
    rubrics_edit,
    obs_list,
    obs_create,
    obs_get,
    codes_append,
    codes_cut,
    scores_put,
    comments_add,
    obs_submit,
    obs_amend,
    st_svg,
    rt_ch_svg,
    fias_svg,
    rounds_list,
    rounds_create,
    rounds_get,
    rounds_pool,
    rounds_draw,
    rounds_audit,
    samples_appeal,
    reviews_list,
    reviews_get,
    reviews_grade,
    reviews_media,
    reviews_media_file,
    reviews_file,
    appeals_create,
    st_draft_make,
    st_draft_get
))]
pub(crate) struct Operations;

fn handler(method: &str, path: &str) -> Option<MethodRouter<Arc<SchoolState>>> {
    Some(match (method, path) {
        ("GET", "/api/rubrics") => get(rubrics_list),
        ("POST", "/api/rubrics") => post(rubrics_create),
        ("GET", "/api/rubrics/{id}") => get(rubrics_get),
        ("PUT", "/api/rubrics/{id}") => put(rubrics_edit),
        ("GET", "/api/observations") => get(obs_list),
        ("POST", "/api/observations") => post(obs_create),
        ("GET", "/api/observations/{id}") => get(obs_get),
        ("POST", "/api/observations/{id}/codes") => post(codes_append),
        ("DELETE", "/api/observations/{id}/codes") => delete(codes_cut),
        ("PUT", "/api/observations/{id}/scores") => put(scores_put),
        ("POST", "/api/observations/{id}/comments") => post(comments_add),
        ("POST", "/api/observations/{id}/submit") => post(obs_submit),
        ("POST", "/api/observations/{id}/amendments") => post(obs_amend),
        ("GET", "/api/observations/{id}/st.svg") => get(st_svg),
        ("GET", "/api/observations/{id}/rt-ch.svg") => get(rt_ch_svg),
        ("GET", "/api/observations/{id}/fias.svg") => get(fias_svg),
        ("GET", "/api/inspections/rounds") => get(rounds_list),
        ("POST", "/api/inspections/rounds") => post(rounds_create),
        ("GET", "/api/inspections/rounds/{id}") => get(rounds_get),
        ("PUT", "/api/inspections/rounds/{id}/reviewers") => put(rounds_pool),
        ("POST", "/api/inspections/rounds/{id}/draw") => post(rounds_draw),
        ("GET", "/api/inspections/rounds/{id}/audit") => get(rounds_audit),
        ("POST", "/api/inspections/samples/{id}/appeal") => post(samples_appeal),
        ("GET", "/api/inspections/reviews") => get(reviews_list),
        ("GET", "/api/inspections/reviews/{id}") => get(reviews_get),
        ("PUT", "/api/inspections/reviews/{id}") => put(reviews_grade),
        ("GET", "/api/inspections/reviews/{id}/media") => get(reviews_media),
        ("GET", "/api/inspections/reviews/{id}/media/{index}") => get(reviews_media_file),
        ("GET", "/api/inspections/reviews/{id}/files/{index}") => get(reviews_file),
        ("POST", "/api/inspections/appeals") => post(appeals_create),
        ("POST", "/api/observations/{id}/st-draft") => post(st_draft_make),
        ("GET", "/api/observations/{id}/st-draft") => get(st_draft_get),
        _ => return None,
    })
}

/// The router, built from [`ROUTES`] (a route without a rule cannot exist; a rule without a
/// handler stops the start).
pub(crate) fn router(state: Arc<SchoolState>) -> Router<Arc<SchoolState>> {
    crate::school::api::guarded_table(ROUTES, handler, state)
}

fn parse_id(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::not_found("not-found", format!("`{s}` is not an id")))
}

fn created(location: String, v: Value) -> Response {
    let mut r = (StatusCode::CREATED, Json(v)).into_response();
    if let Ok(h) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, h);
    }
    r
}

fn submitted(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "observation-submitted",
        format!("observation {id} is submitted: change it through POST /api/observations/{id}/amendments"),
    )
}

fn invalid_list(what: &str, problems: Vec<String>) -> ApiError {
    ApiError::invalid(format!("{what}: {}", problems.join("; "))).with("errors", json!(problems))
}

mod rubrics;
use rubrics::*;
mod inspect;
use inspect::*;
mod inspect_appeal;
use inspect_appeal::*;
mod inspect_blind;
use inspect_blind::*;
mod inspect_media;
use inspect_media::*;
mod stdraft;
use stdraft::*;

// ---- observations: object rules ----

fn user_id(p: &Principal) -> Option<i64> {
    match p {
        Principal::User { id, .. } => Some(*id),
        Principal::Device { .. } => None,
    }
}

/// Whether `p` may read `o` (whose hub school sits at `hub`).
fn may_read(p: &Principal, o: &ObservationRow, d: &Directory) -> bool {
    match p {
        Principal::User {
            role: Role::Observer,
            id,
            ..
        } => *id == o.observer_id,
        Principal::User {
            role: Role::Admin,
            scope,
            ..
        } => scope.covers(&d.classroom(o.hub_classroom_id)),
        Principal::User {
            role: Role::Teacher,
            teacher_id: Some(t),
            ..
        } => *t == o.hub_teacher_id && o.state != "draft",
        _ => false,
    }
}

/// The observation, when `p` may read it.
async fn readable(st: &SchoolState, p: &Principal, id: &str) -> Result<ObservationRow, ApiError> {
    let o = ostore::observation(&st.store, parse_id(id)?).await?;
    let d = Directory::load(&st.store).await?;
    if !may_read(p, &o, &d) {
        return Err(out_of_scope(format!("observation {}", o.id)));
    }
    Ok(o)
}

/// The observation, when `p` is its observer.
async fn own(st: &SchoolState, p: &Principal, id: &str) -> Result<ObservationRow, ApiError> {
    let o = ostore::observation(&st.store, parse_id(id)?).await?;
    if user_id(p) != Some(o.observer_id) {
        return Err(ApiError::forbidden(
            "not-your-observation",
            format!("observation {} belongs to another observer", o.id),
        ));
    }
    Ok(o)
}

// ---- observations: reading ----

async fn view(st: &SchoolState, o: &ObservationRow) -> Result<Value, ApiError> {
    let s = &st.store;
    let mut v = json!({
        "id": o.id,
        "lesson_id": o.lesson_id,
        "observer_id": o.observer_id,
        "methods": o.methods,
        "rubric_id": o.rubric_id,
        "interval_s": o.interval_s,
        "state": o.state,
        "created_at": o.created_at,
        "updated_at": o.updated_at,
        "submitted_at": o.submitted_at,
        "st": null,
        "fias": null,
        "rubric": null,
    });
    let l = model::get_lesson(s, o.lesson_id).await?;
    v["lesson"] = json!({
        "id": l.id, "title": l.title, "subject": l.subject, "grade": l.grade,
        "mode": l.mode, "hub_teacher_id": l.hub_teacher_id, "starts_at": l.starts_at,
        "ends_at": l.ends_at,
    });
    let mut codes = serde_json::Map::new();
    for m in &o.methods {
        match m {
            Method::St => {
                let c = ostore::codes(s, o.id, *m).await?;
                v["st"] = json!(st::analyse(&ostore::st_codes(&c)));
                codes.insert("st".into(), json!(c));
            }
            Method::Fias => {
                let c = ostore::codes(s, o.id, *m).await?;
                v["fias"] = json!(fias::analyse(&ostore::fias_codes(&c)));
                codes.insert("fias".into(), json!(c));
            }
            Method::Rubric => {
                if let Some(rid) = o.rubric_id {
                    let r = ostore::rubric(s, rid).await?;
                    let scores = ostore::scores(s, o.id).await?;
                    let res = rubric::result(&r.rubric, &scores);
                    v["rubric"] = json!({
                        "id": r.id, "key": r.key, "version": r.version,
                        "name": r.rubric.name, "items": r.rubric.items, "bands": r.rubric.bands,
                        "scores": scores, "total": res.total, "complete": res.complete,
                        "band": res.band, "band_name": res.band_name,
                    });
                }
            }
        }
    }
    v["codes"] = Value::Object(codes);
    v["comments"] = json!(ostore::comments(s, o.id).await?);
    v["amendments"] = json!(ostore::amendments(s, o.id).await?);
    Ok(v)
}

#[utoipa::path(
    get, path = "/api/observations/{id}", params(("id" = i64, Path, description = "the observation's id")),
    responses((status = 200, description = "the observation", body = super::views::ObservationView))
)]
async fn obs_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let o = readable(&st, &p, &id).await?;
    Ok(Json(view(&st, &o).await?).into_response())
}

#[utoipa::path(
    get, path = "/api/observations",
    params(("lesson_id" = Option<i64>, Query, description = "of this lesson"),
        ("teacher_id" = Option<i64>, Query, description = "of lessons this hub teacher gives"),
        ("mine" = Option<bool>, Query, description = "only the caller's own")),
    responses((status = 200, description = "the observations the caller may read", body = Vec<ObservationRow>))
)]
async fn obs_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let num = |k: &str| -> Result<Option<i64>, ApiError> {
        q.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::invalid(format!("{k} must be an id, not `{v}`")))
            })
            .transpose()
    };
    let mine = q.get("mine").is_some_and(|v| v == "true" || v == "1");
    let f = ostore::ListFilter {
        lesson_id: num("lesson_id")?,
        teacher_id: num("teacher_id")?,
        observer_id: if mine { user_id(&p) } else { None },
    };
    let rows = ostore::observations(&st.store, f).await?;
    let d = Directory::load(&st.store).await?;
    let out: Vec<&ObservationRow> = rows.iter().filter(|o| may_read(&p, o, &d)).collect();
    Ok(Json(json!(out)).into_response())
}

fn svg(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn not_coded(o: &ObservationRow, m: Method) -> Result<(), ApiError> {
    if o.methods.contains(&m) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "not-found",
            format!("observation {} has no {} coding", o.id, m.as_str()),
        ))
    }
}

/// The observation `p` may read, with its stored codes of method `m` (which it must use).
async fn coded(
    st: &SchoolState,
    p: &Principal,
    id: &str,
    m: Method,
) -> Result<(ObservationRow, String), ApiError> {
    let o = readable(st, p, id).await?;
    not_coded(&o, m)?;
    let stored = ostore::codes(&st.store, o.id, m).await?;
    Ok((o, stored))
}

#[utoipa::path(
    get, path = "/api/observations/{id}/st.svg", params(("id" = i64, Path, description = "the observation's id")),
    responses((status = 200, description = "the S-T curve", body = String, content_type = "image/svg+xml"))
)]
async fn st_svg(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let (o, stored) = coded(&st, &p, &id, Method::St).await?;
    Ok(svg(st::curve_svg(
        &ostore::st_codes(&stored),
        o.interval_s as u32,
    )))
}

#[utoipa::path(
    get, path = "/api/observations/{id}/rt-ch.svg", params(("id" = i64, Path, description = "the observation's id")),
    responses((status = 200, description = "the Rt-Ch chart with this lesson's point", body = String, content_type = "image/svg+xml"))
)]
async fn rt_ch_svg(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let (_, stored) = coded(&st, &p, &id, Method::St).await?;
    Ok(svg(st::rt_ch_svg(&st::analyse(&ostore::st_codes(&stored)))))
}

#[utoipa::path(
    get, path = "/api/observations/{id}/fias.svg", params(("id" = i64, Path, description = "the observation's id")),
    responses((status = 200, description = "the FIAS matrix as a heat map", body = String, content_type = "image/svg+xml"))
)]
async fn fias_svg(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let (_, stored) = coded(&st, &p, &id, Method::Fias).await?;
    Ok(svg(fias::heatmap_svg(&fias::analyse(&ostore::fias_codes(
        &stored,
    )))))
}

// ---- observations: writing ----

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewObservation {
    lesson_id: i64,
    /// Some of `rubric`, `st`, `fias`, each once.
    methods: Vec<String>,
    #[serde(default)]
    rubric_id: Option<i64>,
    #[serde(default)]
    interval_s: Option<u32>,
}

fn parse_methods(names: &[String]) -> Result<Vec<Method>, ApiError> {
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
    responses((status = 201, description = "opened (a draft)", body = super::views::ObservationView, headers(("location" = String, description = "the new observation"))))
)]
async fn obs_create(
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

fn coded_method(o: &ObservationRow, name: &str) -> Result<Method, ApiError> {
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
fn codes_string(m: Method, v: &Value) -> Result<String, ApiError> {
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

async fn coded_figures(st: &SchoolState, o: &ObservationRow, m: Method) -> Result<Value, ApiError> {
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
struct NewCodes {
    /// `st` or `fias`.
    method: String,
    /// S-T: `"TTSS"` or `["T","T","S","S"]`; FIAS: `"5548820"` (digit 0 is category 10) or `[5, 5, 4, 8, 8, 2, 10]`.
    codes: Value,
}

fn too_many(m: Method) -> ApiError {
    ApiError::invalid(format!(
        "an observation holds at most {} {} codes",
        ostore::MAX_CODES_PER_METHOD,
        m.as_str()
    ))
}

#[utoipa::path(
    post, path = "/api/observations/{id}/codes", params(("id" = i64, Path, description = "the observation's id")), request_body = NewCodes,
    responses((status = 200, description = "the method's codes and figures now", body = super::views::CodedFigures))
)]
async fn codes_append(
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
    responses((status = 200, description = "the method's codes and figures now", body = super::views::CodedFigures))
)]
async fn codes_cut(
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
struct Scores {
    scores: Vec<ItemScore>,
}

async fn rubric_of(st: &SchoolState, o: &ObservationRow) -> Result<RubricBody, ApiError> {
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
    responses((status = 200, description = "every score so far and the result", body = super::views::ScoresView))
)]
async fn scores_put(
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
struct NewComment {
    at_ms: i64,
    body: String,
}

/// Comments sit on a lesson's timeline: from its start to a day later at most.
const MAX_AT_MS: i64 = 24 * 3600 * 1000;

#[utoipa::path(
    post, path = "/api/observations/{id}/comments", params(("id" = i64, Path, description = "the observation's id")), request_body = NewComment,
    responses((status = 201, description = "stored", body = super::views::CommentCreated, headers(("location" = String, description = "the observation"))))
)]
async fn comments_add(
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
    responses((status = 200, description = "submitted", body = super::views::ObservationView))
)]
async fn obs_submit(
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
struct NewAmendment {
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
    responses((status = 201, description = "amended (the amendment is logged and audited)", body = super::views::AmendmentCreated, headers(("location" = String, description = "the observation"))))
)]
async fn obs_amend(
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
