//! People and their organisation scopes as a spreadsheet: `GET /api/users.csv` exports the
//! users inside the caller's scope, `POST /api/users/import` creates and updates users from
//! the same columns. Passwords never leave: a new user gets a random first password, shown
//! once in the answer. Every row is checked before anything is written (a bad row imports
//! nothing, naming the row and column), and every row's scope, old and new, must lie inside
//! the importing admin's. Reading and checking reuse [`super::csvio`]'s limits and decoding.

use std::collections::{HashMap, HashSet};

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};

use super::access::{self, Directory};
use super::csvio::{self, CsvRow, Errors, RowError};
use super::model::{self, Region, School, Teacher};
use super::SchoolState;
use crate::auth::people::{self, NewUser, Principal, Role, User, UserChange};
use crate::auth::scope::{Level, Place, Scope};
use crate::problem::ApiError;

const REQUIRED: &[&str] = &["username", "display_name", "role", "scope"];
const OPTIONAL: &[&str] = &[
    "school_code",
    "province",
    "city",
    "county",
    "teacher_code",
    "disabled",
];

/// A role or scope cell in Chinese as its English value (any other text as it is).
fn zh_value(v: &str) -> &str {
    match v {
        "管理员" => "admin",
        "教师" | "老师" => "teacher",
        "观课" | "观课人员" | "教研员" => "observer",
        "督导" | "督导员" | "巡课" => "inspector",
        "学校" | "校级" => "school",
        "县" | "区县" | "县级" => "county",
        "市" | "市级" => "city",
        "省" | "省级" => "province",
        "全部" | "全局" => "global",
        other => other,
    }
}

/// What the directory knows, by the names a spreadsheet uses.
struct Names {
    d: Directory,
    schools: HashMap<String, School>,
    school_code: HashMap<i64, String>,
    regions: Vec<Region>,
    teachers: HashMap<String, Teacher>,
    teacher_code: HashMap<i64, String>,
    users: HashMap<String, (User, Scope)>,
}

impl Names {
    async fn load(st: &SchoolState) -> Result<Names, ApiError> {
        let s = &st.store;
        let schools: Vec<School> = model::list(s, None).await?;
        let teachers: Vec<Teacher> = model::list(s, None).await?;
        let d = Directory::load(s).await?;
        let mut users = HashMap::new();
        for u in people::list_users(s).await? {
            let scope = d.user_scope(&u);
            users.insert(u.username.clone(), (u, scope));
        }
        Ok(Names {
            d,
            school_code: schools.iter().map(|x| (x.id, x.code.clone())).collect(),
            schools: schools.into_iter().map(|x| (x.code.clone(), x)).collect(),
            regions: model::list(s, None).await?,
            teacher_code: teachers.iter().map(|t| (t.id, t.code.clone())).collect(),
            teachers: teachers.into_iter().map(|t| (t.code.clone(), t)).collect(),
            users,
        })
    }
}

/// `GET /api/users.csv`.
pub(crate) async fn export(st: &SchoolState, p: &Principal) -> Result<Response, ApiError> {
    let mine = access::admin_scope(p)?.clone();
    let n = Names::load(st).await?;
    let region = |id: Option<i64>| {
        id.and_then(|r| n.regions.iter().find(|x| x.id == r))
            .map(|r| (r.province.clone(), r.city.clone(), r.county.clone()))
            .unwrap_or_default()
    };
    let mut users: Vec<&(User, Scope)> =
        n.users.values().filter(|(_, s)| mine.contains(s)).collect();
    users.sort_by_key(|(u, _)| u.id);
    let rows = users
        .into_iter()
        .map(|(u, _)| {
            let (province, city, county) = match u.scope {
                Level::School | Level::Global => Default::default(),
                _ => region(u.region_id),
            };
            let school = match u.scope {
                Level::School => u
                    .school_id
                    .and_then(|s| n.school_code.get(&s).cloned())
                    .unwrap_or_default(),
                _ => String::new(),
            };
            vec![
                u.username.clone(),
                u.display_name.clone(),
                u.role.as_str().to_string(),
                u.scope.as_str().to_string(),
                school,
                province,
                // A province scope names no city; a city scope no county.
                if u.scope >= Level::Province {
                    String::new()
                } else {
                    city
                },
                if u.scope >= Level::City {
                    String::new()
                } else {
                    county
                },
                u.teacher_id
                    .and_then(|t| n.teacher_code.get(&t).cloned())
                    .unwrap_or_default(),
                if u.disabled { "1" } else { "0" }.to_string(),
            ]
        })
        .collect();
    let mut header = REQUIRED.to_vec();
    header.extend_from_slice(OPTIONAL);
    Ok(csvio::csv_response(
        "users.csv",
        csvio::write_rows(&header, rows)?,
    ))
}

/// One checked row: a new user, or a change to an existing one.
enum Item {
    New(NewUser),
    Change {
        user: User,
        display_name: String,
        scope: (Level, Option<i64>, Option<i64>),
        disabled: bool,
    },
}

fn check(rows: &[CsvRow], n: &Names, mine: &Scope) -> Result<Vec<Item>, Errors> {
    let mut errors = Errors::default();
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    for (row, cells) in rows {
        let mut bad = |column: &str, message: String| {
            errors.push(RowError {
                row: *row,
                column: column.into(),
                message,
            })
        };
        let get = |c: &str| cells.get(c).cloned().unwrap_or_default();
        let username = get("username");
        if username.is_empty() || username.len() > 64 {
            bad("username", "must be 1-64 characters".into());
            continue;
        }
        if !seen.insert(username.clone()) {
            bad("username", format!("`{username}` is listed twice"));
            continue;
        }
        let display_name = get("display_name");
        if display_name.is_empty() || display_name.chars().count() > 200 {
            bad("display_name", "must be 1-200 characters".into());
            continue;
        }
        let role: Role = match zh_value(&get("role")).parse() {
            Ok(Role::Classroom) | Err(_) => {
                bad(
                    "role",
                    "must be admin, teacher, observer or inspector".into(),
                );
                continue;
            }
            Ok(r) => r,
        };
        let level: Level = match zh_value(&get("scope")).parse() {
            Ok(l) => l,
            Err(e) => {
                bad("scope", e);
                continue;
            }
        };
        let disabled = match get("disabled").as_str() {
            "" | "0" | "false" | "否" => false,
            "1" | "true" | "是" => true,
            other => {
                bad("disabled", format!("`{other}` is not 0 or 1"));
                continue;
            }
        };
        let teacher = match get("teacher_code").as_str() {
            "" => None,
            code => match n.teachers.get(code) {
                Some(t) => Some(t.clone()),
                None => {
                    bad("teacher_code", format!("no teacher with code `{code}`"));
                    continue;
                }
            },
        };
        if role == Role::Teacher && (teacher.is_none() || level != Level::School) {
            bad(
                "teacher_code",
                "a teacher's account names its teacher record and acts in its school".into(),
            );
            continue;
        }
        // The place the scope names.
        let (school, region) = match level {
            Level::Global => (None, None),
            Level::School => {
                let code = get("school_code");
                let s = match (n.schools.get(&code), &teacher) {
                    (Some(s), _) => s.id,
                    (None, Some(t)) if code.is_empty() => t.school_id,
                    _ => {
                        bad("school_code", format!("no school with code `{code}`"));
                        continue;
                    }
                };
                if teacher.as_ref().is_some_and(|t| t.school_id != s) {
                    bad(
                        "school_code",
                        "a teacher's account acts in their teacher record's school".into(),
                    );
                    continue;
                }
                (Some(s), None)
            }
            _ => {
                let (p, c, k) = (get("province"), get("city"), get("county"));
                // A county names its row; a city or province is anchored on any county row
                // inside it (the lowest id, so an export and import agree).
                let found = n
                    .regions
                    .iter()
                    .filter(|r| r.province == p)
                    .filter(|r| level == Level::Province || r.city == c)
                    .filter(|r| level != Level::County || r.county == k)
                    .map(|r| r.id)
                    .min();
                match found {
                    Some(r) => (None, Some(r)),
                    None => {
                        bad(
                            "county",
                            format!(
                                "no region `{p}` / `{c}` / `{k}` for a {} scope",
                                level.as_str()
                            ),
                        );
                        continue;
                    }
                }
            }
        };
        let place = match (school, region) {
            (Some(s), _) => n.d.school(s),
            (_, Some(r)) => n.d.regions.get(&r).cloned().unwrap_or_default(),
            _ => Place::default(),
        };
        if !mine.contains(&Scope { level, place }) {
            bad(
                "scope",
                "this scope is outside your organisation scope".into(),
            );
            continue;
        }
        match n.users.get(&username) {
            Some((user, old)) => {
                if !mine.contains(old) {
                    bad(
                        "username",
                        format!("user `{username}` is outside your organisation scope"),
                    );
                    continue;
                }
                if user.role != role || user.teacher_id != teacher.as_ref().map(|t| t.id) {
                    bad(
                        "role",
                        "an existing user's role and teacher record are not changed by import"
                            .into(),
                    );
                    continue;
                }
                items.push(Item::Change {
                    user: user.clone(),
                    display_name,
                    scope: (level, school, region),
                    disabled,
                });
            }
            None => items.push(Item::New(NewUser {
                username,
                display_name,
                role,
                password: hex::encode(rand::random::<[u8; 9]>()),
                school_id: school,
                teacher_id: teacher.map(|t| t.id),
                scope: Some(level),
                region_id: region,
            })),
        }
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors)
    }
}

/// What a users import answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct UsersImported {
    /// Users created or changed.
    imported: usize,
    /// The users created, with their first passwords (shown this once).
    created: Vec<CreatedUser>,
    /// Users changed.
    updated: usize,
}

/// A user created by an import.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedUser {
    /// Id.
    id: i64,
    /// Login name.
    username: String,
    /// The first password.
    password: String,
}

/// `POST /api/users/import`.
pub(crate) async fn import(
    st: &SchoolState,
    p: &Principal,
    body: Body,
) -> Result<Response, ApiError> {
    let mine = access::admin_scope(p)?.clone();
    let bytes: Bytes = csvio::read_csv(body).await?;
    let sheet =
        super::sheet::sheet("users").ok_or_else(|| ApiError::internal("no users spreadsheet"))?;
    let rows = csvio::blocking(move || sheet.read::<HashMap<String, String>>(&bytes)).await?;
    let names = Names::load(st).await?;
    let items = check(&rows, &names, &mine).map_err(csvio::rejected)?;
    let store = &st.store;
    let now = st.now();
    let mut created = Vec::new();
    let mut updated = 0usize;
    for item in items {
        match item {
            Item::New(u) => {
                let user = people::create_user(store, &u, now).await?;
                created.push(CreatedUser {
                    id: user.id,
                    username: user.username,
                    password: u.password,
                });
            }
            Item::Change {
                user,
                display_name,
                scope,
                disabled,
            } => {
                let same_scope = (user.scope, user.school_id, user.region_id) == scope;
                if same_scope && user.disabled == disabled && user.display_name == display_name {
                    continue;
                }
                if user.display_name != display_name {
                    people::set_display_name(store, user.id, &display_name).await?;
                }
                let change = UserChange {
                    password: None,
                    disabled: (user.disabled != disabled).then_some(disabled),
                    scope: (!same_scope).then_some(scope),
                    role: None,
                };
                people::update_user(store, user.id, &change).await?;
                if !same_scope || disabled {
                    // New scope or disabled: what they hold now ends (as PATCH does).
                    super::api::cut_off(st, &format!("u:{}", user.id)).await;
                }
                updated += 1;
            }
        }
    }
    model::audit(
        store,
        now,
        &p.ident(),
        "users-imported",
        "users",
        &format!("{} created, {updated} updated", created.len()),
    )
    .await?;
    Ok(axum::Json(UsersImported {
        imported: created.len() + updated,
        created,
        updated,
    })
    .into_response())
}
