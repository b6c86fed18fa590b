//! People and devices: roles, password login (argon2id), login sessions and classroom device
//! tokens. Both kinds of credential resolve to a [`Principal`]; the lesson API turns a
//! principal into the media JWT that WHIP/WHEP check.

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;

use super::limit::{HashPool, LoginLimits, PoolError, Refused};
use super::scope::{Level, Place, Scope};
use crate::store::{col, col_bool, col_enum, Store, StoreError, StoreResult};
use crate::time::Millis;

/// Who someone is in the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// School or district IT staff: manages everything.
    Admin,
    /// A hub or assisting teacher.
    Teacher,
    /// A classroom device (the PC or box in a room), signed in with a device token.
    Classroom,
    /// Watches and scores lessons.
    Observer,
    /// Sampling inspection (抽检) reviewer.
    Inspector,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Teacher,
        Role::Classroom,
        Role::Observer,
        Role::Inspector,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Teacher => "teacher",
            Role::Classroom => "classroom",
            Role::Observer => "observer",
            Role::Inspector => "inspector",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a role"))
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Principal {
    /// A person who logged in.
    User {
        /// User id.
        id: i64,
        /// Login name.
        username: String,
        /// Name shown to others.
        display_name: String,
        /// Role (never `classroom`).
        role: Role,
        /// The school the person belongs to, if any.
        school_id: Option<i64>,
        /// The teacher record, for teachers.
        teacher_id: Option<i64>,
        /// Where in the organisation tree the person acts.
        scope: Scope,
    },
    /// A classroom device.
    Device {
        /// Device token id.
        id: i64,
        /// Its classroom.
        classroom_id: i64,
        /// The classroom's school.
        school_id: i64,
        /// The device's label.
        label: String,
    },
}

impl Principal {
    /// The caller's role.
    pub fn role(&self) -> Role {
        match self {
            Principal::User { role, .. } => *role,
            Principal::Device { .. } => Role::Classroom,
        }
    }

    /// A short identity for tokens and logs ("u:12", "d:3").
    pub fn ident(&self) -> String {
        match self {
            Principal::User { id, .. } => format!("u:{id}"),
            Principal::Device { id, .. } => format!("d:{id}"),
        }
    }

    /// The teacher record, for teachers.
    pub fn teacher_id(&self) -> Option<i64> {
        match self {
            Principal::User { teacher_id, .. } => *teacher_id,
            Principal::Device { .. } => None,
        }
    }

    /// The person's organisation scope (`None` for a device, which acts only in its
    /// classroom).
    pub fn scope(&self) -> Option<&Scope> {
        match self {
            Principal::User { scope, .. } => Some(scope),
            Principal::Device { .. } => None,
        }
    }

    /// The classroom, for devices.
    pub fn classroom_id(&self) -> Option<i64> {
        match self {
            Principal::Device { classroom_id, .. } => Some(*classroom_id),
            Principal::User { .. } => None,
        }
    }
}

thread_local! {
    /// argon2's working memory (19 MiB with the default parameters), kept by each thread
    /// that hashes (in practice the hash pool's few threads) and reused. Allocated afresh for
    /// every hash, as the crate's `PasswordHasher` does, glibc kept several 19 MiB blocks per
    /// thread arena (measured: +212 MiB after a 120-login flood with two hashing threads).
    static ARGON2_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// argon2 of `password` and `salt` into `out`, in this thread's reused memory.
fn argon2_into(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    ARGON2_MEMORY.with_borrow_mut(|memory| {
        if memory.len() < params.block_count() {
            memory.resize(params.block_count(), Block::default());
        }
        // Every block is written before it is read, so what an earlier hash left is harmless.
        argon.hash_password_into_with_memory(password, salt, out, &mut memory[..])
    })
}

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes) into a PHC
/// string. Blocks for tens of milliseconds: async code uses [`hash_password_pooled`].
pub fn hash_password(password: &str) -> String {
    let raw_salt = rand::random::<[u8; 16]>();
    let salt = SaltString::encode_b64(&raw_salt).expect("16 random bytes are a valid salt");
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(&argon, &params, password.as_bytes(), &raw_salt, &mut out)
        .expect("argon2 with default parameters hashes any input");
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("default parameters encode"),
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).expect("32 bytes are a valid output")),
    }
    .to_string()
}

/// [`hash_password`] on the process's hash pool (waiting for room in its queue: callers
/// are signed-in administrators, never anonymous).
pub async fn hash_password_pooled(password: &str) -> String {
    let pw = password.to_string();
    HashPool::global()
        .run(move || hash_password(&pw))
        .await
        // `hash_password` panics only on a bug (its invariants are stated there), and the
        // pool's threads are started with the pool.
        .expect("hashing a password in the pool does not fail")
}

/// Checks a password against a stored argon2 PHC hash (false for a malformed hash).
/// Blocks for tens of milliseconds: [`login`] runs it on the hash pool.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(h) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let (Ok(params), Ok(algorithm)) = (Params::try_from(&h), Algorithm::try_from(h.algorithm))
    else {
        return false;
    };
    let version = match h.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    if argon2_into(&argon, &params, password.as_bytes(), salt, &mut out).is_err() {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|o| o == expected)
}

/// A new random bearer secret with `prefix` ("crs_" sessions, "crd_" devices) and the
/// SHA-256 hash that is stored instead of it.
pub fn new_secret(prefix: &str) -> (String, String) {
    let token = format!("{prefix}{}", hex::encode(rand::random::<[u8; 24]>()));
    let hash = secret_hash(&token);
    (token, hash)
}

/// The stored form of a bearer secret.
pub fn secret_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Prefix of login session secrets.
pub const SESSION_PREFIX: &str = "crs_";
/// Prefix of device token secrets.
pub const DEVICE_PREFIX: &str = "crd_";

/// A user row as the API shows it (never the hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// School.
    pub school_id: Option<i64>,
    /// Teacher record.
    pub teacher_id: Option<i64>,
    /// Whether login is refused.
    pub disabled: bool,
    /// The level of the person's organisation scope.
    pub scope: Level,
    /// The county row anchoring a county, city or province scope.
    pub region_id: Option<i64>,
}

fn user_from(row: &sqlx::any::AnyRow) -> StoreResult<User> {
    Ok(User {
        id: col(row, "id")?,
        username: col(row, "username")?,
        display_name: col(row, "display_name")?,
        role: col_enum(row, "role")?,
        school_id: col(row, "school_id")?,
        teacher_id: col(row, "teacher_id")?,
        disabled: col_bool(row, "disabled")?,
        scope: col_enum_str(row, "scope")?,
        region_id: col(row, "region_id")?,
    })
}

fn col_enum_str(row: &sqlx::any::AnyRow, name: &str) -> StoreResult<Level> {
    let s: String = col(row, name)?;
    s.parse().map_err(StoreError::Check)
}

const USER_COLS: &str =
    "id, username, display_name, role, school_id, teacher_id, disabled, scope, region_id";

/// What creating a user needs.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Role (not `classroom`: devices use device tokens).
    pub role: Role,
    /// Password (at least 8 characters).
    pub password: String,
    /// School.
    #[serde(default)]
    pub school_id: Option<i64>,
    /// Teacher record (teachers).
    #[serde(default)]
    pub teacher_id: Option<i64>,
    /// Scope level; `school` when absent (then `school_id` is required).
    #[serde(default)]
    pub scope: Option<Level>,
    /// The county row anchoring a county, city or province scope.
    #[serde(default)]
    pub region_id: Option<i64>,
}

/// Creates a user (the caller has checked the scope: see [`scope_of`]).
pub async fn create_user(store: &Store, u: &NewUser, now: Millis) -> StoreResult<User> {
    let hash = hash_password_pooled(&u.password).await;
    let row = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO users (username, display_name, role, password_hash, school_id, teacher_id, \
         disabled, created_at, scope, region_id) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9) \
         RETURNING {USER_COLS}"
    )))
    .bind(&u.username)
    .bind(&u.display_name)
    .bind(u.role.as_str())
    .bind(hash)
    .bind(u.school_id)
    .bind(u.teacher_id)
    .bind(now)
    .bind(u.scope.unwrap_or(Level::School).as_str())
    .bind(u.region_id)
    .fetch_one(store.pool())
    .await?;
    user_from(&row)
}

/// Lists users.
pub async fn list_users(store: &Store) -> StoreResult<Vec<User>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {USER_COLS} FROM users ORDER BY id"
    )))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(user_from).collect()
}

/// What an admin changes about a user.
#[derive(Debug, Clone, Default)]
pub struct UserChange<'a> {
    /// A new password.
    pub password: Option<&'a str>,
    /// Disable or enable login.
    pub disabled: Option<bool>,
    /// A new scope: level, school, county row (checked by the caller, see [`scope_of`]).
    pub scope: Option<(Level, Option<i64>, Option<i64>)>,
    /// A new role (checked by the caller: never `classroom`, a teacher needs a teacher record).
    pub role: Option<Role>,
}

/// Changes a user. Disabling, a new password, role or scope ends their login sessions and
/// makes every media token issued to them before void (`token_version`).
pub async fn update_user(store: &Store, id: i64, change: &UserChange<'_>) -> StoreResult<User> {
    // Hash before the transaction: it takes tens of milliseconds and holds no lock.
    let hash = match change.password {
        Some(p) => Some(hash_password_pooled(p).await),
        None => None,
    };
    let mut tx = store.begin().await?;
    if let Some(h) = hash {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(h)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(d) = change.disabled {
        sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(d as i64)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some((level, school, region)) = change.scope {
        sqlx::query("UPDATE users SET scope = $1, school_id = $2, region_id = $3 WHERE id = $4")
            .bind(level.as_str())
            .bind(school)
            .bind(region)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(r) = change.role {
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(r.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if change.password.is_some()
        || change.disabled == Some(true)
        || change.scope.is_some()
        || change.role.is_some()
    {
        sqlx::query("DELETE FROM login_sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE users SET token_version = token_version + 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {USER_COLS} FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
    tx.commit().await?;
    user_from(&row)
}

/// The version a media token issued now to principal `who` ("u:12", "d:3") carries, or
/// `None` when the principal may not hold one (disabled user, revoked device, unknown).
pub async fn token_version(store: &Store, who: &str) -> StoreResult<Option<i64>> {
    if let Some(id) = who.strip_prefix("u:").and_then(|n| n.parse::<i64>().ok()) {
        let row = sqlx::query("SELECT disabled, token_version FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await?;
        return Ok(match row {
            Some(r) if !col_bool(&r, "disabled")? => Some(col(&r, "token_version")?),
            _ => None,
        });
    }
    if let Some(id) = who.strip_prefix("d:").and_then(|n| n.parse::<i64>().ok()) {
        let row = sqlx::query("SELECT revoked_at FROM device_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await?;
        return Ok(match row {
            Some(r) if col::<Option<i64>>(&r, "revoked_at")?.is_none() => Some(0),
            _ => None,
        });
    }
    Ok(None)
}

/// Renames a user (what others see; no effect on access).
pub async fn set_display_name(store: &Store, id: i64, name: &str) -> StoreResult<()> {
    sqlx::query("UPDATE users SET display_name = $1 WHERE id = $2")
        .bind(name)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// One user.
pub async fn get_user(store: &Store, id: i64) -> StoreResult<User> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {USER_COLS} FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
    user_from(&row)
}

/// Where a school sits in the tree.
pub async fn school_place(store: &Store, school_id: i64) -> StoreResult<Option<Place>> {
    let row = sqlx::query(
        "SELECT s.id, s.region_id, r.province, r.city FROM schools s \
         LEFT JOIN regions r ON r.id = s.region_id WHERE s.id = $1",
    )
    .bind(school_id)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok(Place {
            province: col(&r, "province")?,
            city: col(&r, "city")?,
            region_id: col(&r, "region_id")?,
            school_id: Some(school_id),
        })
    })
    .transpose()
}

/// Where a county row sits in the tree.
pub async fn region_place(store: &Store, region_id: i64) -> StoreResult<Option<Place>> {
    let row = sqlx::query("SELECT province, city FROM regions WHERE id = $1")
        .bind(region_id)
        .fetch_optional(store.pool())
        .await?;
    row.map(|r| {
        Ok(Place {
            province: Some(col(&r, "province")?),
            city: Some(col(&r, "city")?),
            region_id: Some(region_id),
            school_id: None,
        })
    })
    .transpose()
}

/// The scope a (level, school, county row) triple names, or why it names none.
pub async fn scope_of(
    store: &Store,
    level: Level,
    school_id: Option<i64>,
    region_id: Option<i64>,
) -> StoreResult<Result<Scope, String>> {
    let place = match level {
        Level::Global => Some(Place::default()),
        Level::School => match school_id {
            None => return Ok(Err("school_id: a school scope needs its school".into())),
            Some(s) => school_place(store, s).await?,
        },
        _ => match region_id {
            None => {
                return Ok(Err(format!(
                    "region_id: a {} scope needs a county row (regions) of that place",
                    level.as_str()
                )))
            }
            Some(r) => region_place(store, r).await?,
        },
    };
    Ok(match place {
        Some(place) => Ok(Scope { level, place }),
        None => Err(format!(
            "the {} scope's place does not exist (school_id {school_id:?}, region_id {region_id:?})",
            level.as_str()
        )),
    })
}

/// Whether any admin exists (first start creates one).
pub async fn admin_exists(store: &Store) -> StoreResult<bool> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'")
        .fetch_one(store.pool())
        .await?;
    Ok(col::<i64>(&row, "n")? > 0)
}

/// Why a login was not checked.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// A rate limit refused the attempt before the password was checked (429).
    #[error("too many logins: wait {:?}", .0.wait)]
    Limited(Refused),
    /// The password-hash pool and its queue are full (503).
    #[error("too many logins are being checked at once")]
    Busy,
    /// The password check itself failed (a bug, logged).
    #[error("the password check failed")]
    CheckFailed,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for LoginError {
    fn from(e: sqlx::Error) -> Self {
        LoginError::Store(e.into())
    }
}

/// Checks a username and password; on success opens a login session and returns its
/// bearer secret and the user. `None` for a wrong name or password or a disabled user
/// (the caller answers all three the same way).
///
/// `limits` are checked first (`client` is the caller's address when known); the password
/// check, or the same work for an unknown name, runs on the hash pool.
pub async fn login(
    store: &Store,
    limits: &LoginLimits,
    client: Option<std::net::IpAddr>,
    username: &str,
    password: &str,
    now: Millis,
    ttl_ms: Millis,
) -> Result<Option<(String, User)>, LoginError> {
    limits
        .admit(client, username)
        .map_err(LoginError::Limited)?;
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {USER_COLS}, password_hash FROM users WHERE username = $1"
    )))
    .bind(username)
    .fetch_optional(store.pool())
    .await?;
    // For an unknown name, spend the same time as a real check, so a wrong name is not told
    // apart by timing.
    let (hash, user) = match row {
        Some(row) => (
            col::<String>(&row, "password_hash")?,
            Some(user_from(&row)?),
        ),
        None => (DUMMY_HASH.to_string(), None),
    };
    let pw = password.to_string();
    let ok = match HashPool::global()
        .try_run(move || verify_password(&hash, &pw))
        .await
    {
        Ok(ok) => ok,
        Err(PoolError::Full) => {
            limits.shed();
            return Err(LoginError::Busy);
        }
        Err(PoolError::Failed) => return Err(LoginError::CheckFailed),
    };
    let Some(user) = user else {
        return Ok(None);
    };
    if !ok || user.disabled {
        return Ok(None);
    }
    limits.succeeded(username);
    let (token, th) = new_secret(SESSION_PREFIX);
    sqlx::query(
        "INSERT INTO login_sessions (token_hash, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(th)
    .bind(user.id)
    .bind(now)
    .bind(now + ttl_ms)
    .execute(store.pool())
    .await?;
    Ok(Some((token, user)))
}

/// An argon2id hash of a random password, checked against when the username is unknown.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$n2Y8a4sTFmeuBQY0bY3M8b1r0vUaUexVi1ZXTW0Q0pE";

/// Ends a login session.
pub async fn logout(store: &Store, token: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM login_sessions WHERE token_hash = $1")
        .bind(secret_hash(token))
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Why a bearer secret was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum CredentialError {
    /// Unknown secret.
    Unknown,
    /// The login session is over.
    Expired,
    /// The device token was revoked.
    Revoked,
    /// The user is disabled.
    Disabled,
}

/// Resolves a bearer secret (login session or device token) to its principal.
pub async fn resolve(
    store: &Store,
    token: &str,
    now: Millis,
) -> StoreResult<Result<Principal, CredentialError>> {
    let h = secret_hash(token);
    if token.starts_with(DEVICE_PREFIX) {
        let row = sqlx::query(
            "SELECT d.id, d.classroom_id, d.label, d.revoked_at, d.last_seen_at, c.school_id \
             FROM device_tokens d JOIN classrooms c ON c.id = d.classroom_id \
             WHERE d.token_hash = $1",
        )
        .bind(h)
        .fetch_optional(store.pool())
        .await?;
        let Some(row) = row else {
            return Ok(Err(CredentialError::Unknown));
        };
        if col::<Option<i64>>(&row, "revoked_at")?.is_some() {
            return Ok(Err(CredentialError::Revoked));
        }
        let id: i64 = col(&row, "id")?;
        let seen: Option<Millis> = col(&row, "last_seen_at")?;
        if seen.is_none_or(|t| now - t >= LAST_SEEN_EVERY) {
            touch_device(store, id, seen, now).await?;
        }
        return Ok(Ok(Principal::Device {
            id,
            classroom_id: col(&row, "classroom_id")?,
            school_id: col(&row, "school_id")?,
            label: col(&row, "label")?,
        }));
    }
    if !token.starts_with(SESSION_PREFIX) {
        return Ok(Err(CredentialError::Unknown));
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {}, s.expires_at FROM login_sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = $1",
        USER_COLS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
    .bind(h)
    .fetch_optional(store.pool())
    .await?;
    let Some(row) = row else {
        return Ok(Err(CredentialError::Unknown));
    };
    if col::<i64>(&row, "expires_at")? <= now {
        return Ok(Err(CredentialError::Expired));
    }
    let u = user_from(&row)?;
    if u.disabled {
        return Ok(Err(CredentialError::Disabled));
    }
    // A scope whose place is gone covers nothing (least privilege), rather than failing.
    let scope = scope_of(store, u.scope, u.school_id, u.region_id)
        .await?
        .unwrap_or(Scope {
            level: u.scope,
            place: Place::default(),
        });
    Ok(Ok(Principal::User {
        id: u.id,
        username: u.username,
        display_name: u.display_name,
        role: u.role,
        school_id: u.school_id,
        teacher_id: u.teacher_id,
        scope,
    }))
}

/// A device token row (never the secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceToken {
    /// Id.
    pub id: i64,
    /// Classroom.
    pub classroom_id: i64,
    /// Label ("讲台电脑", "box-3").
    pub label: String,
    /// Created.
    #[schema(value_type = i64)]
    pub created_at: Millis,
    /// Revoked, if it was.
    #[schema(value_type = Option<i64>)]
    pub revoked_at: Option<Millis>,
    /// When the token was last used, epoch ms (kept to the minute: written at most once a
    /// minute); `None` if never.
    #[schema(value_type = Option<i64>)]
    pub last_seen_at: Option<Millis>,
}

/// The columns of a [`DeviceToken`].
const DEVICE_COLS: &str = "id, classroom_id, label, created_at, revoked_at, last_seen_at";

/// How stale a device's `last_seen_at` may get before a use of its token writes it again.
pub const LAST_SEEN_EVERY: Millis = 60_000;

fn device_from(row: &sqlx::any::AnyRow) -> StoreResult<DeviceToken> {
    Ok(DeviceToken {
        id: col(row, "id")?,
        classroom_id: col(row, "classroom_id")?,
        label: col(row, "label")?,
        created_at: col(row, "created_at")?,
        revoked_at: col(row, "revoked_at")?,
        last_seen_at: col(row, "last_seen_at")?,
    })
}

/// Issues a device token for a classroom; the secret is returned once, never stored.
pub async fn create_device(
    store: &Store,
    classroom_id: i64,
    label: &str,
    now: Millis,
) -> StoreResult<(String, DeviceToken)> {
    let (token, h) = new_secret(DEVICE_PREFIX);
    let row = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO device_tokens (classroom_id, label, token_hash, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING {DEVICE_COLS}"
    )))
    .bind(classroom_id)
    .bind(label)
    .bind(h)
    .bind(now)
    .fetch_one(store.pool())
    .await?;
    Ok((token, device_from(&row)?))
}

/// A classroom's device tokens.
pub async fn list_devices(store: &Store, classroom_id: i64) -> StoreResult<Vec<DeviceToken>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {DEVICE_COLS} FROM device_tokens WHERE classroom_id = $1 ORDER BY id"
    )))
    .bind(classroom_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(device_from).collect()
}

/// One device token.
pub async fn get_device(store: &Store, id: i64) -> StoreResult<DeviceToken> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {DEVICE_COLS} FROM device_tokens WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("device token {id}")))?;
    device_from(&row)
}

/// Records that device `id` was seen at `now`, if nobody recorded it since `seen` (the value
/// the caller read): one cheap UPDATE at most once a minute per device, and concurrent
/// requests of one device write it once.
async fn touch_device(
    store: &Store,
    id: i64,
    seen: Option<Millis>,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE device_tokens SET last_seen_at = $1 WHERE id = $2 \
         AND (last_seen_at IS NULL OR last_seen_at = $3)",
    )
    .bind(now)
    .bind(id)
    .bind(seen.unwrap_or(-1))
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Renames a device token (its label: "讲台电脑", "box-3").
pub async fn set_device_label(store: &Store, id: i64, label: &str) -> StoreResult<DeviceToken> {
    sqlx::query("UPDATE device_tokens SET label = $1 WHERE id = $2")
        .bind(label)
        .bind(id)
        .execute(store.pool())
        .await?;
    get_device(store, id).await
}

/// Revokes a device token (idempotent).
pub async fn revoke_device(store: &Store, id: i64, now: Millis) -> StoreResult<DeviceToken> {
    sqlx::query("UPDATE device_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(store.pool())
        .await?;
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {DEVICE_COLS} FROM device_tokens WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("device token {id}")))?;
    device_from(&row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong"));
        assert!(!verify_password("not a hash", "x"));
        // The dummy hash parses, so unknown users cost a real verification.
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn reused_memory_agrees_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        // Ours, checked by the crate's own verifier (which allocates fresh memory).
        let h = hash_password("correct horse");
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        // The crate's, checked by ours, twice on this thread's reused memory.
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password(&theirs, "battery staple"));
        assert!(!verify_password(&theirs, "battery stapler"));
        assert!(verify_password(&theirs, "battery staple"));
        // Other parameters (a smaller memory than the one kept) and argon2i work too.
        let small = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(64, 3, 1, None).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        assert!(verify_password(&small, "pw"));
        assert!(!verify_password(&small, "pW"));
        assert!(!verify_password(
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ",
            "x"
        ));
    }

    #[test]
    fn secrets_are_prefixed_and_hashed() {
        let (t, h) = new_secret(DEVICE_PREFIX);
        assert!(t.starts_with("crd_") && t.len() == 4 + 48);
        assert_eq!(h, secret_hash(&t));
        assert_ne!(new_secret(DEVICE_PREFIX).0, t);
    }
}
