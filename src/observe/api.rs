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
mod writing;
use writing::*;

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
