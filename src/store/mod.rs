//! The database: a SQLite file by default (WAL), PostgreSQL when `database.url` says so.
//!
//! One code path serves both through sqlx's `Any` driver with runtime queries (the
//! compile-time macros bind to one database). Queries use `$n` placeholders, which both
//! SQLite and PostgreSQL accept. Each backend has its own migrations (`migrations/sqlite`,
//! `migrations/postgres`), embedded in the binary and run at start or by `classrelay migrate`.

pub mod entity;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::error::ErrorKind;
use sqlx::{Any, AnyPool, Transaction};

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique key is taken.
    #[error("already exists: {0}")]
    Duplicate(String),
    /// A reference points at nothing, or a row is still referenced.
    #[error("reference problem: {0}")]
    Reference(String),
    /// A check constraint failed (a bad enum value, say).
    #[error("invalid value: {0}")]
    Check(String),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Anything else from the database (connection lost, disk full, ...).
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
            // A text enum column holding a name the enum does not know.
            sqlx::Error::ColumnDecode { index, source } => {
                StoreError::Check(format!("column {index} holds {source}"))
            }
            sqlx::Error::Database(d) => match d.kind() {
                ErrorKind::UniqueViolation => StoreError::Duplicate(d.message().to_string()),
                ErrorKind::ForeignKeyViolation => StoreError::Reference(d.message().to_string()),
                ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                    StoreError::Check(d.message().to_string())
                }
                _ => StoreError::Db(e),
            },
            _ => StoreError::Db(e),
        }
    }
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// The connection pool and what it talks to.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The file a `sqlite:` URL asks SQLite to create when missing (`mode=rwc`); `None` for an
/// in-memory database or a URL that only opens an existing file.
fn sqlite_file_to_create(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (file, params) = rest.split_once('?').unwrap_or((rest, ""));
    let creates = params.split('&').any(|p| p == "mode=rwc");
    (creates && !file.is_empty() && file != ":memory:").then(|| file.into())
}

impl Store {
    /// Opens `url` (`postgres://…`), or the SQLite file `default_file` when `url` is empty.
    /// Does not migrate; call [`Store::migrate`].
    ///
    /// A SQLite file this creates is owner-only from the start: the file is made empty with
    /// mode 0600 before SQLite opens it (SQLite itself would make it 0644 less the umask),
    /// and SQLite gives its `-wal` and `-shm` files the database file's mode. A missing
    /// directory for `default_file` is made 0700.
    pub async fn open(url: &str, default_file: &Path) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let io = |e| StoreError::Db(sqlx::Error::Io(e));
        let (url, backend) = if url.is_empty() {
            if let Some(dir) = default_file.parent() {
                crate::datadir::create_dir(dir).map_err(io)?;
            }
            crate::datadir::touch_private(default_file).map_err(io)?;
            (
                format!("sqlite://{}?mode=rwc", default_file.display()),
                Backend::Sqlite,
            )
        } else if url.starts_with("sqlite:") {
            if let Some(file) = sqlite_file_to_create(url) {
                // A missing directory is SQLite's error to report, as before.
                let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
                if dir.is_none_or(Path::exists) {
                    crate::datadir::touch_private(&file).map_err(io)?;
                }
            }
            (url.to_string(), Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), Backend::Postgres)
        } else {
            return Err(StoreError::Check(format!(
                "database.url must start with postgres:// or sqlite: (got `{url}`)"
            )));
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            // One file, one writer: a small pool, WAL so readers never wait for the writer,
            // foreign keys on (SQLite's default is off, per connection).
            opts = opts.max_connections(4).after_connect(|conn, _meta| {
                Box::pin(async move {
                    use sqlx::Executor;
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                             PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;",
                    )
                    .await?;
                    Ok(())
                })
            });
        } else {
            opts = opts.max_connections(16);
        }
        let pool = opts.connect(&url).await?;
        Ok(Store { pool, backend })
    }

    /// Applies the pending migrations of this backend.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction.
    ///
    /// On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken at the start, waiting up to
    /// `busy_timeout` for another writer. A plain (deferred) `BEGIN` takes the lock only at the
    /// first write, and a transaction that has read by then cannot be upgraded once another
    /// connection has written: SQLite answers `SQLITE_BUSY` at once, without consulting the
    /// busy timeout, and the request failed with 503 `store-unavailable`. Every transaction
    /// here writes, so nothing is lost by taking the lock early; readers outside transactions
    /// never wait (WAL). PostgreSQL keeps its default `BEGIN` (row locks, READ COMMITTED).
    pub async fn begin(&self) -> StoreResult<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Reads column `name` of `row`, as a store error when missing or of the wrong type.
pub fn col<T>(row: &AnyRow, name: &str) -> StoreResult<T>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    use sqlx::Row;
    row.try_get(name).map_err(StoreError::Db)
}

/// A boolean column stored as an integer (both backends).
pub fn col_bool(row: &AnyRow, name: &str) -> StoreResult<bool> {
    Ok(col::<i64>(row, name)? != 0)
}

/// Parses an enum column.
pub fn col_enum<T: FromStr>(row: &AnyRow, name: &str) -> StoreResult<T> {
    let s: String = col(row, name)?;
    s.parse()
        .map_err(|_| StoreError::Check(format!("column {name} holds unknown value `{s}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_sqlite_urls_create_a_file() {
        let f = |u| sqlite_file_to_create(u).map(|p| p.display().to_string());
        assert_eq!(
            f("sqlite://data/x.db?mode=rwc").as_deref(),
            Some("data/x.db")
        );
        assert_eq!(
            f("sqlite:///abs/x.db?mode=rwc").as_deref(),
            Some("/abs/x.db")
        );
        assert_eq!(
            f("sqlite:x.db?cache=shared&mode=rwc").as_deref(),
            Some("x.db")
        );
        assert_eq!(f("sqlite://data/x.db"), None, "opens an existing file only");
        assert_eq!(f("sqlite://data/x.db?mode=rw"), None);
        assert_eq!(f("sqlite::memory:"), None);
        assert_eq!(f("sqlite://:memory:?mode=rwc"), None);
    }

    /// Many writers whose transactions read before they write, on a real SQLite file: each
    /// takes the largest number so far and stores the next one. Every write must succeed
    /// (no `SQLITE_BUSY` surfacing as a store error) and the transactions must have run one
    /// after another (the numbers are exactly 1..=N). A deferred `BEGIN` fails this: two
    /// transactions that both read cannot both upgrade to writers, and busy_timeout does not
    /// help a reader that must become a writer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn write_transactions_that_read_first_never_meet_busy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open("", &dir.path().join("busy.db"))
            .await
            .expect("open");
        sqlx::query("CREATE TABLE counter (n INTEGER NOT NULL UNIQUE)")
            .execute(store.pool())
            .await
            .expect("create");
        const WRITERS: i64 = 8;
        const EACH: i64 = 25;
        let mut tasks = Vec::new();
        for _ in 0..WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..EACH {
                    let mut tx = store.begin().await?;
                    let row = sqlx::query("SELECT COALESCE(MAX(n), 0) AS n FROM counter")
                        .fetch_one(&mut *tx)
                        .await?;
                    let n: i64 = col(&row, "n")?;
                    tokio::task::yield_now().await;
                    sqlx::query("INSERT INTO counter (n) VALUES ($1)")
                        .bind(n + 1)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                }
                StoreResult::Ok(())
            }));
        }
        for t in tasks {
            t.await.expect("writer task").expect("every write succeeds");
        }
        let row = sqlx::query("SELECT COUNT(*) AS c, MAX(n) AS m FROM counter")
            .fetch_one(store.pool())
            .await
            .expect("count");
        assert_eq!(col::<i64>(&row, "c").unwrap(), WRITERS * EACH);
        assert_eq!(col::<i64>(&row, "m").unwrap(), WRITERS * EACH);
        store.close().await;
    }
}
