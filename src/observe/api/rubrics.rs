//! The rubric routes of the observation API (`/api/rubrics`): anyone signed in reads, a global
//! admin writes, and every edit is a new version. Must never change a stored version in place:
//! scores keep the version they were made under.

use super::*;

pub(super) fn global_admin(p: &Principal) -> Result<(), ApiError> {
    match p {
        Principal::User {
            role: Role::Admin,
            scope,
            ..
        } if scope.level == crate::auth::scope::Level::Global => Ok(()),
        _ => Err(out_of_scope("the installation's rubrics")),
    }
}

pub(super) fn rubric_json(r: &ostore::RubricRow) -> Value {
    json!({
        "id": r.id, "key": r.key, "version": r.version, "created_by": r.created_by,
        "created_at": r.created_at, "rubric": r.rubric,
    })
}

#[utoipa::path(
    get, path = "/api/rubrics",
    params(("all" = Option<bool>, Query, description = "every version, not only the newest")),
    responses((status = 200, description = "the rubrics", body = Vec<ostore::RubricRow>))
)]
pub(super) async fn rubrics_list(
    State(st): State<Arc<SchoolState>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let all = q.get("all").is_some_and(|v| v == "true" || v == "1");
    let rows = ostore::rubrics(&st.store, all).await?;
    Ok(Json(rows.iter().map(rubric_json).collect::<Vec<_>>()).into_response())
}

#[utoipa::path(
    get, path = "/api/rubrics/{id}", params(("id" = i64, Path, description = "the rubric version's id")),
    responses((status = 200, description = "the rubric version", body = ostore::RubricRow))
)]
pub(super) async fn rubrics_get(
    State(st): State<Arc<SchoolState>>,
    Path(id): Path<String>,
) -> ApiResult {
    let r = ostore::rubric(&st.store, parse_id(&id)?).await?;
    Ok(Json(rubric_json(&r)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewRubric {
    key: String,
    rubric: RubricBody,
}

pub(super) fn check_rubric(r: &RubricBody) -> Result<(), ApiError> {
    let p = r.problems();
    if p.is_empty() {
        Ok(())
    } else {
        Err(invalid_list("the rubric does not add up", p))
    }
}

#[utoipa::path(
    post, path = "/api/rubrics", request_body = NewRubric,
    responses((status = 201, description = "created (version 1)", body = ostore::RubricRow, headers(("location" = String, description = "the new version"))))
)]
pub(super) async fn rubrics_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(b): JsonBody<NewRubric>,
) -> ApiResult {
    global_admin(&p)?;
    if b.key.is_empty()
        || b.key.len() > 64
        || !b
            .key
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
    {
        return Err(ApiError::invalid("key must be 1-64 of a-z, 0-9, _ and -"));
    }
    check_rubric(&b.rubric)?;
    let id = ostore::insert_rubric(&st.store, &b.key, 1, &b.rubric, &p.ident(), st.now())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Duplicate(_) => ApiError::new(
                StatusCode::CONFLICT,
                "duplicate",
                format!(
                    "rubric `{}` exists: edit it with PUT /api/rubrics/{{id}}",
                    b.key
                ),
            ),
            e => e.into(),
        })?;
    let r = ostore::rubric(&st.store, id).await?;
    Ok(created(format!("/api/rubrics/{id}"), rubric_json(&r)))
}

/// Stores the edit as the next version of the rubric `{id}` is a version of. `{id}` must be
/// the newest version: an edit of an older one is a conflict (someone edited since).
#[utoipa::path(
    put, path = "/api/rubrics/{id}", params(("id" = i64, Path, description = "the newest rubric version's id")), request_body = RubricBody,
    responses((status = 201, description = "the next version, stored", body = ostore::RubricRow, headers(("location" = String, description = "the new version"))))
)]
pub(super) async fn rubrics_edit(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<RubricBody>,
) -> ApiResult {
    global_admin(&p)?;
    let old = ostore::rubric(&st.store, parse_id(&id)?).await?;
    check_rubric(&b)?;
    let newest = ostore::latest_rubric(&st.store, &old.key).await?;
    let stale = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "stale-version",
            format!(
                "rubric `{}` has a version newer than {}: edit the newest",
                old.key, old.version
            ),
        )
    };
    if newest.as_ref().is_some_and(|n| n.id != old.id) {
        return Err(stale());
    }
    let nid = ostore::insert_rubric(
        &st.store,
        &old.key,
        old.version + 1,
        &b,
        &p.ident(),
        st.now(),
    )
    .await
    .map_err(|e| match e {
        crate::store::StoreError::Duplicate(_) => stale(),
        e => e.into(),
    })?;
    model::audit(
        &st.store,
        st.now(),
        &p.ident(),
        "rubric.edit",
        &format!("rubric:{nid}"),
        &format!("{} v{} → v{}", old.key, old.version, old.version + 1),
    )
    .await?;
    let r = ostore::rubric(&st.store, nid).await?;
    Ok(created(format!("/api/rubrics/{nid}"), rubric_json(&r)))
}
