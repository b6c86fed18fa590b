//! The school entities over one generic set of handlers (list, get, create, update, delete per
//! [`Entity`]), each refused outside the caller's organisation scope. Must never know a
//! particular entity's table beyond its `Entity` and `Scoped` impls.

#[allow(unused_imports)]
use super::*;

pub(super) fn plural<E: Entity>() -> &'static str {
    E::TABLE
}

/// How a directory entity sits in the organisation tree (see [`access`]).
pub(super) trait Scoped: Entity {
    /// The lowest admin level that may create, change or delete one.
    const WRITE_LEVEL: Level;
    /// The places the row is about (all must be in an admin's scope to change it).
    fn places(&self, d: &Directory) -> Vec<Place>;
    /// Whether a person with `scope` may read it.
    fn readable(&self, scope: &crate::auth::scope::Scope, d: &Directory) -> bool;
    /// Whether classroom device `classroom` may read it (never the directory by default).
    fn device_readable(&self, _classroom: i64, _shared: &[i64]) -> bool {
        false
    }
    /// On a `PUT`, takes from the stored row `old` the fields a client may leave out to keep
    /// them (`sent`: the body's members); by default every field is replaced.
    fn keep_unsent(&mut self, _old: &Self, _sent: &serde_json::Map<String, serde_json::Value>) {}
}

impl Scoped for Region {
    const WRITE_LEVEL: Level = Level::City;
    fn places(&self, _: &Directory) -> Vec<Place> {
        vec![Place {
            province: Some(self.province.clone()),
            city: Some(self.city.clone()),
            region_id: (self.id > 0).then_some(self.id),
            school_id: None,
        }]
    }
    fn readable(&self, _: &crate::auth::scope::Scope, _: &Directory) -> bool {
        true
    }
}

impl Scoped for School {
    const WRITE_LEVEL: Level = Level::County;
    fn places(&self, d: &Directory) -> Vec<Place> {
        let region = self
            .region_id
            .and_then(|r| d.regions.get(&r).cloned())
            .unwrap_or_default();
        vec![Place {
            school_id: (self.id > 0).then_some(self.id),
            ..region
        }]
    }
    fn readable(&self, scope: &crate::auth::scope::Scope, d: &Directory) -> bool {
        d.school_visible(scope, self.id)
    }
    /// Urban/rural (a stratum of 抽检 draws) is kept when a `PUT` leaves it out: a form or
    /// tool that does not know the field must not reset it to `unknown`.
    fn keep_unsent(&mut self, old: &Self, sent: &serde_json::Map<String, serde_json::Value>) {
        if !sent.contains_key("area") {
            self.area = old.area;
        }
    }
}

impl Scoped for Classroom {
    const WRITE_LEVEL: Level = Level::School;
    fn places(&self, d: &Directory) -> Vec<Place> {
        vec![d.school(self.school_id)]
    }
    fn readable(&self, scope: &crate::auth::scope::Scope, d: &Directory) -> bool {
        d.school_visible(scope, self.school_id)
    }
    fn device_readable(&self, classroom: i64, shared: &[i64]) -> bool {
        self.id == classroom || shared.contains(&self.id)
    }
}

impl Scoped for Teacher {
    const WRITE_LEVEL: Level = Level::School;
    fn places(&self, d: &Directory) -> Vec<Place> {
        vec![d.school(self.school_id)]
    }
    fn readable(&self, scope: &crate::auth::scope::Scope, d: &Directory) -> bool {
        d.school_visible(scope, self.school_id)
    }
}

impl Scoped for Pairing {
    const WRITE_LEVEL: Level = Level::School;
    fn places(&self, d: &Directory) -> Vec<Place> {
        vec![
            d.school(self.hub_school_id),
            d.school(self.partner_school_id),
        ]
    }
    fn readable(&self, scope: &crate::auth::scope::Scope, d: &Directory) -> bool {
        scope.covers_any(&self.places(d))
    }
}

impl Scoped for Term {
    // Terms are the installation's calendar: only a global admin changes them.
    const WRITE_LEVEL: Level = Level::Global;
    fn places(&self, _: &Directory) -> Vec<Place> {
        Vec::new()
    }
    fn readable(&self, _: &crate::auth::scope::Scope, _: &Directory) -> bool {
        true
    }
}

/// The classrooms that share a lesson with `classroom` (what its kiosk may name).
pub(super) async fn classrooms_sharing_lessons(
    st: &SchoolState,
    classroom: i64,
) -> Result<Vec<i64>, ApiError> {
    let rows = sqlx::query(
        "SELECT DISTINCT x.classroom_id AS c FROM ( \
           SELECT l.id AS lesson_id, l.hub_classroom_id AS classroom_id FROM lessons l \
           UNION SELECT ls.lesson_id, ls.classroom_id FROM lesson_sites ls) x \
         WHERE x.lesson_id IN ( \
           SELECT id FROM lessons WHERE hub_classroom_id = $1 \
           UNION SELECT lesson_id FROM lesson_sites WHERE classroom_id = $1)",
    )
    .bind(classroom)
    .fetch_all(st.store.pool())
    .await
    .map_err(crate::store::StoreError::from)?;
    rows.iter()
        .map(|r| crate::store::col::<i64>(r, "c").map_err(ApiError::from))
        .collect()
}

/// Whether `p` may read row `e`.
pub(super) async fn may_read<E: Scoped>(
    st: &SchoolState,
    p: &Principal,
    d: &Directory,
    e: &E,
) -> Result<bool, ApiError> {
    Ok(match p {
        Principal::Device { classroom_id, .. } => {
            let shared = classrooms_sharing_lessons(st, *classroom_id).await?;
            e.device_readable(*classroom_id, &shared)
        }
        Principal::User { scope, .. } => e.readable(scope, d),
    })
}

pub(super) async fn list_entities<E: Scoped>(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let filter = E::FILTERS
        .iter()
        .find_map(|f| q.get(*f).map(|v| (*f, v)))
        .map(|(f, v)| {
            Ok::<_, ApiError>((
                f,
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request("bad-query", format!("{f} must be an id"))
                })?,
            ))
        })
        .transpose()?;
    let d = Directory::load(&st.store).await?;
    let shared = match p.classroom_id() {
        Some(c) => classrooms_sharing_lessons(&st, c).await?,
        None => Vec::new(),
    };
    let rows: Vec<E> = model::list::<E>(&st.store, filter)
        .await?
        .into_iter()
        .filter(|e| match &p {
            Principal::Device { classroom_id, .. } => e.device_readable(*classroom_id, &shared),
            Principal::User { scope, .. } => e.readable(scope, &d),
        })
        .collect();
    Ok(Json(rows).into_response())
}

pub(super) async fn get_entity<E: Scoped>(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let e = model::get::<E>(&st.store, parse_id(&id)?).await?;
    let d = Directory::load(&st.store).await?;
    if !may_read(&st, &p, &d, &e).await? {
        return Err(out_of_scope(format!("{} {id}", E::NAME)));
    }
    Ok(Json(e).into_response())
}

pub(super) async fn create_entity<E: Scoped>(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(e): JsonBody<E>,
) -> ApiResult {
    e.validate().map_err(ApiError::invalid)?;
    let d = Directory::load(&st.store).await?;
    admin_over(
        &p,
        E::WRITE_LEVEL,
        format!("this {}", E::NAME),
        &e.places(&d),
    )?;
    let stored = model::insert(&st.store, &e).await?;
    let id = serde_json::to_value(&stored)
        .ok()
        .and_then(|v| v.get("id").and_then(|i| i.as_i64()))
        .unwrap_or(0);
    Ok(created(format!("/api/{}/{id}", plural::<E>()), &stored))
}

pub(super) async fn update_entity<E: Scoped>(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> ApiResult {
    let id = parse_id(&id)?;
    // Read as a document first, so the entity can tell a member left out from one sent.
    let mut e: E = serde_json::from_value(body.clone()).map_err(|err| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-json",
            format!("Failed to deserialize the JSON body into the target type: {err}"),
        )
    })?;
    e.validate().map_err(ApiError::invalid)?;
    let old = model::get::<E>(&st.store, id).await?;
    if let Some(sent) = body.as_object() {
        e.keep_unsent(&old, sent);
    }
    let d = Directory::load(&st.store).await?;
    let mut places = old.places(&d);
    places.extend(e.places(&d));
    admin_over(&p, E::WRITE_LEVEL, format!("{} {id}", E::NAME), &places)?;
    Ok(Json(model::update(&st.store, id, &e).await?).into_response())
}

pub(super) async fn delete_entity<E: Scoped>(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let old = model::get::<E>(&st.store, id).await?;
    let d = Directory::load(&st.store).await?;
    admin_over(
        &p,
        E::WRITE_LEVEL,
        format!("{} {id}", E::NAME),
        &old.places(&d),
    )?;
    model::delete::<E>(&st.store, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The generic handler of entity `E` for `method` on its list (`item`: on one row).
pub(super) fn entity_handler<E: Scoped>(
    method: &str,
    item: bool,
) -> Option<MethodRouter<Arc<SchoolState>>> {
    use axum::routing::{delete, put};
    Some(match (method, item) {
        ("GET", false) => get(list_entities::<E>),
        ("POST", false) => post(create_entity::<E>),
        ("GET", true) => get(get_entity::<E>),
        ("PUT", true) => put(update_entity::<E>),
        ("DELETE", true) => delete(delete_entity::<E>),
        _ => return None,
    })
}
