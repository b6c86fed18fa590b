//! Login and logout, the caller (`/api/me`), users and their spreadsheet, classroom devices.
//! Must never hand out a token or password hash beyond what the caller may see.

#[allow(unused_imports)]
use super::*;

/// What a login sends.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = Login)]
pub(super) struct LoginBody {
    username: String,
    password: String,
}

/// What a login answers.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct LoginResult {
    /// The session token (also set as the session cookie); send it as a bearer.
    token: String,
    /// Who logged in.
    user: people::User,
    /// When the session ends, epoch ms.
    expires_at: i64,
}

/// The client's address comes from the serve loop's connect info; without it (a router
/// driven in-process) only the per-username limit applies.
#[utoipa::path(
    post, path = "/api/login", request_body = LoginBody,
    responses((status = 200, description = "logged in", body = LoginResult,
        headers(("set-cookie" = String, description = "the session cookie"))))
)]
pub(super) async fn login(
    State(st): State<Arc<SchoolState>>,
    Extension(limits): Extension<Arc<crate::auth::limit::LoginLimits>>,
    peer: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    JsonBody(b): JsonBody<LoginBody>,
) -> ApiResult {
    if b.username.len() > 200 || b.password.len() > 1024 {
        return Err(ApiError::invalid("username or password too long"));
    }
    let now = st.now();
    let client = peer.map(|Extension(axum::extract::ConnectInfo(a))| a.ip());
    let Some((token, user)) = people::login(
        &st.store,
        &limits,
        client,
        &b.username,
        &b.password,
        now,
        st.session_ttl,
    )
    .await
    .map_err(login_refused)?
    else {
        return Err(ApiError::unauthorized(
            "login-failed",
            "wrong username or password, or the account is disabled",
        ));
    };
    let expires_at = now + st.session_ttl;
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        st.session_ttl / 1000
    );
    let mut r = Json(LoginResult {
        token,
        user,
        expires_at,
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// 429 `too-many-logins` (with how long to wait), 503 when the hash pool is full.
pub(super) fn login_refused(e: people::LoginError) -> ApiError {
    use crate::metrics::LoginLimit;
    match e {
        people::LoginError::Limited(r) => {
            let from = match r.by {
                LoginLimit::Address => "from this address",
                LoginLimit::Username => "for this username",
            };
            let s = r.retry_after_secs();
            ApiError::too_many_requests(
                "too-many-logins",
                format!("too many login attempts {from}; try again in {s} s"),
                s,
            )
        }
        people::LoginError::Busy => ApiError::unavailable(
            "too many logins are being checked at once; try again shortly",
            1,
        ),
        people::LoginError::CheckFailed => ApiError::internal("a password check failed"),
        people::LoginError::Store(e) => e.into(),
    }
}

#[utoipa::path(
    post, path = "/api/logout",
    responses((status = 204, description = "the session ended; the cookie is cleared",
        headers(("set-cookie" = String, description = "clears the session cookie"))))
)]
pub(super) async fn logout(State(st): State<Arc<SchoolState>>, headers: HeaderMap) -> ApiResult {
    if let Some(t) = bearer_or_cookie(&headers) {
        if t.starts_with(people::SESSION_PREFIX) {
            people::logout(&st.store, &t).await?;
        }
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cr_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(r)
}

#[utoipa::path(
    get, path = "/api/me",
    responses((status = 200, description = "the caller", body = Principal))
)]
pub(super) async fn me(Extension(p): Extension<Principal>) -> ApiResult {
    Ok(Json(p).into_response())
}

#[utoipa::path(
    get, path = "/api/users.csv",
    responses((status = 200, description = "the users as CSV", body = String, content_type = "text/csv"))
)]
pub(super) async fn users_csv(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    crate::school::userscsv::export(&st, &p).await
}

#[utoipa::path(
    post, path = "/api/users/import",
    request_body(content = String, content_type = "text/csv", description = "users CSV: all rows are stored, or none"),
    responses((status = 200, description = "stored", body = crate::school::userscsv::UsersImported))
)]
pub(super) async fn users_import(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult {
    crate::school::sheet::require_sheet(&headers)?;
    crate::school::userscsv::import(&st, &p, body).await
}

/// A user's scope, for containment checks.
pub(super) async fn user_scope(
    st: &SchoolState,
    u: &people::User,
) -> Result<crate::auth::scope::Scope, ApiError> {
    Ok(
        people::scope_of(&st.store, u.scope, u.school_id, u.region_id)
            .await?
            .unwrap_or(crate::auth::scope::Scope {
                level: u.scope,
                place: Place::default(),
            }),
    )
}

#[utoipa::path(
    get, path = "/api/users",
    responses((status = 200, description = "the users inside the caller's scope", body = Vec<people::User>))
)]
pub(super) async fn users_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let mine = access::admin_scope(&p)?;
    let d = Directory::load(&st.store).await?;
    let out: Vec<people::User> = people::list_users(&st.store)
        .await?
        .into_iter()
        .filter(|u| mine.contains(&d.user_scope(u)))
        .collect();
    Ok(Json(out).into_response())
}

/// Works out and checks a new user's scope: a teacher acts in their teacher record's
/// school; others need a scope the creating admin contains.
pub(super) async fn new_user_scope(
    st: &SchoolState,
    p: &Principal,
    u: &mut NewUser,
) -> Result<(), ApiError> {
    if let Some(t) = u.teacher_id {
        let teacher: Teacher = model::get(&st.store, t)
            .await
            .map_err(|_| ApiError::invalid(format!("teacher_id: no teacher {t}")))?;
        if u.school_id.is_some_and(|s| s != teacher.school_id) {
            return Err(ApiError::invalid(
                "school_id: a teacher's account belongs to their teacher record's school",
            ));
        }
        if u.scope.is_some_and(|l| l != Level::School) {
            return Err(ApiError::invalid(
                "scope: a teacher's account acts in their school (scope school)",
            ));
        }
        u.school_id = Some(teacher.school_id);
    }
    let level = match u.scope {
        Some(l) => l,
        None if u.school_id.is_some() => Level::School,
        None => {
            return Err(ApiError::invalid(
                "scope: say where this person acts (school with school_id; county, city or \
                 province with region_id; or global)",
            ))
        }
    };
    u.scope = Some(level);
    if level != Level::School {
        u.school_id = None;
    }
    if matches!(level, Level::School | Level::Global) {
        u.region_id = None;
    }
    let scope = people::scope_of(&st.store, level, u.school_id, u.region_id)
        .await?
        .map_err(ApiError::invalid)?;
    if !access::admin_scope(p)?.contains(&scope) {
        return Err(out_of_scope(format!(
            "a {} scope at {:?}",
            level.as_str(),
            scope.place
        )));
    }
    Ok(())
}

#[utoipa::path(
    post, path = "/api/users", request_body = NewUser,
    responses((status = 201, description = "created", body = people::User, headers(("location" = String, description = "the new row"))))
)]
pub(super) async fn users_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(mut u): JsonBody<NewUser>,
) -> ApiResult {
    if u.role == Role::Classroom {
        return Err(ApiError::invalid(
            "role: classroom devices sign in with device tokens (POST /api/classrooms/{id}/devices)",
        ));
    }
    if u.username.trim().is_empty() || u.username.len() > 64 {
        return Err(ApiError::invalid("username must be 1-64 characters"));
    }
    if u.password.chars().count() < 8 {
        return Err(ApiError::invalid("password must be at least 8 characters"));
    }
    if u.role == Role::Teacher && u.teacher_id.is_none() {
        return Err(ApiError::invalid(
            "teacher_id: a teacher account needs its teacher record",
        ));
    }
    new_user_scope(&st, &p, &mut u).await?;
    let user = people::create_user(&st.store, &u, st.now()).await?;
    Ok(created(format!("/api/users/{}", user.id), &user))
}

/// What PATCH changes in a user: each member that is present.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct UserPatch {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    scope: Option<Level>,
    #[serde(default)]
    school_id: Option<i64>,
    #[serde(default)]
    region_id: Option<i64>,
    /// A new role (issue 22 item 2): never `classroom` (devices use device tokens); `teacher`
    /// only for an account linked to a teacher record. Granted only inside the caller's scope
    /// (the user's scope must already lie in it); an admin who is the last enabled admin
    /// over their own scope cannot give up the role.
    #[serde(default)]
    role: Option<Role>,
}

/// Refuses `role` for `target` (not the caller's concern yet: scope is checked before).
fn role_allowed(target: &people::User, role: Role, new_level: Level) -> Result<(), ApiError> {
    match role {
        Role::Classroom => Err(ApiError::invalid(
            "role: classroom devices sign in with device tokens (POST /api/classrooms/{id}/devices)",
        )),
        Role::Teacher if target.teacher_id.is_none() => Err(ApiError::invalid(
            "role: a teacher account needs its teacher record (create the account with teacher_id)",
        )),
        Role::Teacher if new_level != Level::School => Err(ApiError::invalid(
            "scope: a teacher's account acts in their school (scope school)",
        )),
        _ => Ok(()),
    }
}

/// Whether another enabled admin than `me` holds a scope containing `mine` (so `me` may
/// give up the admin role without leaving the scope with nobody to run it).
async fn another_admin_over(
    st: &SchoolState,
    me: i64,
    mine: &crate::auth::scope::Scope,
) -> Result<bool, ApiError> {
    let d = Directory::load(&st.store).await?;
    Ok(people::list_users(&st.store).await?.iter().any(|u| {
        u.id != me && u.role == Role::Admin && !u.disabled && d.user_scope(u).contains(mine)
    }))
}

/// Ends what a principal holds right now: their media sessions and event streams.
pub(crate) async fn cut_off(st: &SchoolState, who: &str) {
    st.revoke(crate::school::Revoked::Principal(who.to_string()));
    let n = st.media.kick_principal(who).await;
    tracing::info!(principal = who, sessions = n, "access revoked");
}

#[utoipa::path(
    patch, path = "/api/users/{id}", params(("id" = i64, Path, description = "the row's id")), request_body = UserPatch,
    responses((status = 200, description = "changed", body = people::User))
)]
pub(super) async fn users_patch(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<UserPatch>,
) -> ApiResult {
    if b.password.as_ref().is_some_and(|p| p.chars().count() < 8) {
        return Err(ApiError::invalid("password must be at least 8 characters"));
    }
    let id = parse_id(&id)?;
    let target = people::get_user(&st.store, id).await?;
    let mine = access::admin_scope(&p)?.clone();
    if !mine.contains(&user_scope(&st, &target).await?) {
        return Err(out_of_scope(format!("user {id}")));
    }
    let scope = match b.scope {
        None => None,
        Some(level) => {
            if target.role == Role::Teacher && level != Level::School {
                return Err(ApiError::invalid(
                    "scope: a teacher's account acts in their school (scope school)",
                ));
            }
            let school = (level == Level::School)
                .then_some(b.school_id.or(target.school_id))
                .flatten();
            let region = (!matches!(level, Level::School | Level::Global))
                .then_some(b.region_id)
                .flatten();
            let new = people::scope_of(&st.store, level, school, region)
                .await?
                .map_err(ApiError::invalid)?;
            if !mine.contains(&new) {
                return Err(out_of_scope(format!("a {} scope", level.as_str())));
            }
            Some((level, school, region))
        }
    };
    let role = b.role.filter(|r| *r != target.role);
    if let Some(r) = role {
        let level = scope.map(|(l, _, _)| l).unwrap_or(target.scope);
        role_allowed(&target, r, level)?;
        if p.ident() == format!("u:{id}")
            && target.role == Role::Admin
            && !another_admin_over(&st, id, &mine).await?
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "last-admin",
                "you are the last administrator over your scope: make another administrator first",
            ));
        }
    }
    let change = people::UserChange {
        password: b.password.as_deref(),
        disabled: b.disabled,
        scope,
        role,
    };
    let u = people::update_user(&st.store, id, &change).await?;
    if b.password.is_some() || b.disabled == Some(true) || b.scope.is_some() || role.is_some() {
        model::audit(
            &st.store,
            st.now(),
            &p.ident(),
            "user-access-changed",
            &format!("user {id}"),
            &format!(
                "password {}, disabled {:?}, scope {:?}, role {:?}",
                b.password.is_some(),
                b.disabled,
                b.scope,
                role.map(|r| r.as_str())
            ),
        )
        .await?;
        cut_off(&st, &format!("u:{id}")).await;
    }
    if b.password.is_some() {
        crate::auth::first_admin::password_set(&st.config.data.dir, &u);
    }
    Ok(Json(u).into_response())
}

// ---- Deleting a user (issue 22 item 1) ----

#[utoipa::path(
    delete, path = "/api/users/{id}", params(("id" = i64, Path, description = "the row's id")),
    responses((status = 204, description = "deleted; their sessions and media are cut off at once"),
        (status = 409, description = "the user has observations or inspection reviews: disable them instead"))
)]
pub(super) async fn users_delete(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let target = people::get_user(&st.store, id).await?;
    let mine = access::admin_scope(&p)?.clone();
    if !mine.contains(&user_scope(&st, &target).await?) {
        return Err(out_of_scope(format!("user {id}")));
    }
    if p.ident() == format!("u:{id}") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "self-delete",
            "you cannot delete your own account",
        ));
    }
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(st.store.pool())
        .await
        .map_err(crate::store::StoreError::from)?;
    model::audit(
        &st.store,
        st.now(),
        &p.ident(),
        "user-deleted",
        &format!("user {id}"),
        &format!("{} ({})", target.username, target.role.as_str()),
    )
    .await?;
    cut_off(&st, &format!("u:{id}")).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A new classroom device.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct NewDevice {
    label: String,
}

/// Refuses unless `p` is an admin over classroom `id`'s school.
pub(super) async fn admin_over_classroom(
    st: &SchoolState,
    p: &Principal,
    id: i64,
) -> Result<(), ApiError> {
    let c: Classroom = model::get(&st.store, id).await?;
    let place = people::school_place(&st.store, c.school_id)
        .await?
        .unwrap_or_default();
    admin_over(p, Level::School, format!("classroom {id}"), [&place])
}

#[utoipa::path(
    get, path = "/api/classrooms/{id}/devices", params(("id" = i64, Path, description = "the classroom's id")),
    responses((status = 200, description = "the classroom's device tokens", body = Vec<people::DeviceToken>))
)]
pub(super) async fn devices_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    admin_over_classroom(&st, &p, id).await?;
    Ok(Json(people::list_devices(&st.store, id).await?).into_response())
}

/// A device token just issued: the secret is shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct IssuedDevice {
    /// The secret (`crd_…`), for the classroom device to send as a bearer.
    token: String,
    /// The token's row.
    device: people::DeviceToken,
}

#[utoipa::path(
    post, path = "/api/classrooms/{id}/devices", params(("id" = i64, Path, description = "the classroom's id")), request_body = NewDevice,
    responses((status = 201, description = "issued", body = IssuedDevice, headers(("location" = String, description = "the new row"))))
)]
pub(super) async fn devices_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<NewDevice>,
) -> ApiResult {
    let id = parse_id(&id)?;
    if b.label.trim().is_empty() || b.label.chars().count() > 100 {
        return Err(ApiError::invalid("label must be 1-100 characters"));
    }
    admin_over_classroom(&st, &p, id).await?;
    let (token, d) = people::create_device(&st.store, id, &b.label, st.now()).await?;
    Ok(created(
        format!("/api/devices/{}", d.id),
        &IssuedDevice { token, device: d },
    ))
}

/// What PATCH changes in a device token.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct DevicePatch {
    /// The new label ("讲台电脑", "box-3"), 1-100 characters.
    label: String,
}

#[utoipa::path(
    patch, path = "/api/devices/{id}", params(("id" = i64, Path, description = "the row's id")), request_body = DevicePatch,
    responses((status = 200, description = "relabelled", body = people::DeviceToken))
)]
pub(super) async fn devices_patch(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<DevicePatch>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let label = b.label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(ApiError::invalid("label must be 1-100 characters"));
    }
    let d = people::get_device(&st.store, id).await?;
    admin_over_classroom(&st, &p, d.classroom_id).await?;
    let d = people::set_device_label(&st.store, id, label).await?;
    Ok(Json(d).into_response())
}

#[utoipa::path(
    delete, path = "/api/devices/{id}", params(("id" = i64, Path, description = "the row's id")),
    responses((status = 200, description = "revoked", body = people::DeviceToken))
)]
pub(super) async fn devices_revoke(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let d = people::get_device(&st.store, id).await?;
    admin_over_classroom(&st, &p, d.classroom_id).await?;
    let d = people::revoke_device(&st.store, id, st.now()).await?;
    model::audit(
        &st.store,
        st.now(),
        &p.ident(),
        "device-revoked",
        &format!("device {id}"),
        &format!("classroom {}", d.classroom_id),
    )
    .await?;
    cut_off(&st, &format!("d:{id}")).await;
    Ok(Json(d).into_response())
}
