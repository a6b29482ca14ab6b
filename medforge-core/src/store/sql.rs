//! The SQL body shared by both stores. It is generic over the sqlx database;
//! what differs between SQLite and MySQL (how to open the allocation
//! transaction, row locks, insert-if-missing, error codes, migrations) is
//! the [`Dialect`]. Queries are `&'static str`s or built with `QueryBuilder`
//! from literals and bound values only: nothing a client sends is spliced
//! into SQL text.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::DatabaseError;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Row, Type};
use time::OffsetDateTime;

use super::{
    AllocationError, AllocationRequest, Cursor, EventFilter, NewLogin, NewUser, Page, PageRequest, Seed, SeedReport,
    SessionFilter, Store, StoreError, StoredEvent, Transition, UserUpdate,
};
use crate::model::{
    self, DEFAULT_PACK_ID, DeploymentId, Email, GpuDevice, GpuId, Login, LoginId, Pack, PackId, Session, SessionId,
    SessionStatus, Slug, User, UserId, UserSummary,
};

/// Which unique index a write ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueKey {
    Email,
    Slug,
    GpuActive,
    TokenHash,
    Other,
}

/// How a dialect classifies a database error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    Unique(UniqueKey),
    /// Lock contention (SQLite busy, InnoDB deadlock or lock-wait timeout):
    /// the transaction may succeed if run again.
    Retryable,
    Other,
}

/// What differs between the SQL backends.
pub trait Dialect: Database + Send + Sync {
    /// `sqlite` or `mysql`, for logs and benchmarks.
    const BACKEND: &'static str;
    /// Opens the allocation transaction. SQLite: `BEGIN IMMEDIATE` takes the
    /// write lock at once, so allocations run one at a time.
    const BEGIN_ALLOCATION: &'static str;
    /// Reads (and on MySQL locks) the user row; columns as `user_columns!`.
    const LOCK_USER: &'static str;
    /// Locks the GPU table so that allocations pick GPUs one at a time (MySQL:
    /// `FOR UPDATE` on every GPU row; SQLite: already serialised, so `None`).
    const LOCK_GPUS: Option<&'static str>;
    /// Inserts GPU `?` enabled, unless it exists.
    const INSERT_GPU_IF_MISSING: &'static str;
    /// Inserts the deployment row `(1, ?)`, unless it exists.
    const INSERT_DEPLOYMENT_IF_MISSING: &'static str;
    /// Inserts the default pack `(id, name, exposure, image_ref, image_digest, created_at)` unless it exists.
    const INSERT_PACK_IF_MISSING: &'static str;

    fn migrator() -> &'static Migrator;
    /// Rows an `UPDATE` matched (sqlx has no trait for it).
    fn rows_affected(result: &Self::QueryResult) -> u64;
    fn classify(err: &(dyn DatabaseError + 'static)) -> DbFailure;
}

/// A [`Store`] on a sqlx pool. See [`super::SqliteStore`] and [`super::MySqlStore`].
pub struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
}

impl<DB: Dialect> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore").field("backend", &DB::BACKEND).field("pool_size", &self.pool.size()).finish()
    }
}

/// How often allocation runs again after losing a race on a unique index or
/// a lock, before it answers [`AllocationError::Contention`].
const ALLOCATION_ATTEMPTS: u32 = 8;

// Column lists, shared by every query that maps a row to a record. Records
// are read by position, so joins can put two lists side by side.
macro_rules! user_columns {
    () => {
        "u.id, u.email, u.role, u.can_use_internal, u.max_concurrent_sessions, u.created_at, u.workspace_quota_bytes"
    };
}
pub(super) use user_columns;
const USER_WIDTH: usize = 7;

macro_rules! session_columns {
    () => {
        "s.id, s.user_id, s.exposure, s.pack_id, s.status, s.container_id, s.gpu_id, s.slug, \
         s.workspace_zfs, s.created_at, s.started_at, s.stopped_at, s.error_message"
    };
}

macro_rules! auth_columns {
    () => {
        "a.id, a.user_id, a.token_hash, a.created_at, a.expires_at, a.last_seen_at, a.revoked_at, a.ip, a.user_agent"
    };
}
const AUTH_WIDTH: usize = 9;

macro_rules! pack_columns {
    () => {
        "p.id, p.name, p.exposure, p.image_ref, p.image_digest, p.created_at, p.deprecated_at"
    };
}

/// The active statuses as an SQL list; `gpu_active` in the migrations says the same.
macro_rules! active_statuses {
    () => {
        "('starting', 'running', 'stopping')"
    };
}

fn db_error(e: sqlx::Error) -> StoreError {
    StoreError::Database(Box::new(e))
}

fn corrupt(table: &'static str, reason: impl fmt::Display) -> StoreError {
    StoreError::Corrupt { table, reason: reason.to_string() }
}

/// The dialect's reading of an error, or `Other` when it is not from the database.
pub(crate) fn classify<DB: Dialect>(e: &sqlx::Error) -> DbFailure {
    match e {
        sqlx::Error::Database(d) => DB::classify(d.as_ref()),
        sqlx::Error::PoolTimedOut => DbFailure::Retryable,
        _ => DbFailure::Other,
    }
}

fn to_u32(v: i64, table: &'static str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| corrupt(table, format!("{v} out of range")))
}

/// Reads column `i` and parses it with `FromStr`.
fn parse_col<'r, R, T>(row: &'r R, i: usize, table: &'static str) -> Result<T, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let text: String = row.try_get(i).map_err(db_error)?;
    text.parse().map_err(|e| corrupt(table, e))
}

fn opt_parse_col<'r, R, T>(row: &'r R, i: usize, table: &'static str) -> Result<Option<T>, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let text: Option<String> = row.try_get(i).map_err(db_error)?;
    text.map(|t| t.parse().map_err(|e| corrupt(table, e))).transpose()
}

fn time_col<'r, R>(row: &'r R, i: usize) -> Result<OffsetDateTime, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get::<i64, _>(i).map(model::from_unix_ms).map_err(db_error)
}

fn opt_time_col<'r, R>(row: &'r R, i: usize) -> Result<Option<OffsetDateTime>, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get::<Option<i64>, _>(i).map(|v| v.map(model::from_unix_ms)).map_err(db_error)
}

/// Everything the shared code needs from a sqlx backend, spelled once for
/// both impl blocks below (Rust cannot name a where-clause):
/// `sql_store_impl! { impl { ... } }` or `sql_store_impl! { #[attr] impl Trait for { ... } }`.
macro_rules! sql_store_impl {
    ($(#[$attr:meta])* impl $($trait_:ident for)? { $($item:tt)* }) => {
        $(#[$attr])*
        impl<DB> $($trait_ for)? SqlStore<DB>
        where
            DB: Dialect,
            for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
            DB::Arguments: IntoArguments<DB>,
            DB::Connection: Migrate,
            usize: ColumnIndex<DB::Row>,
            for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
            for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
            for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
            for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
            for<'q> Option<i64>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
            for<'q> Option<bool>: Encode<'q, DB> + Type<DB>,
        {
            $($item)*
        }
    };
}

sql_store_impl! {
impl {
    /// Wraps a pool, runs the migrations, and returns the store.
    pub async fn from_pool(pool: Pool<DB>) -> Result<Self, StoreError> {
        DB::migrator()
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(Box::new(e)))?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    fn user_from_row(row: &DB::Row, at: usize) -> Result<User, StoreError> {
        Ok(User {
            id: parse_col(row, at, "users")?,
            email: parse_col::<_, Email>(row, at + 1, "users")?,
            role: parse_col(row, at + 2, "users")?,
            can_use_internal: row.try_get(at + 3).map_err(db_error)?,
            max_concurrent_sessions: to_u32(row.try_get(at + 4).map_err(db_error)?, "users")?,
            created_at: time_col(row, at + 5)?,
            workspace_quota_bytes: row
                .try_get::<Option<i64>, _>(at + 6)
                .map_err(db_error)?
                .map(|q| u64::try_from(q).map_err(|_| corrupt("users", format!("quota {q} out of range"))))
                .transpose()?,
        })
    }

    fn auth_from_row(row: &DB::Row) -> Result<Login, StoreError> {
        Ok(Login {
            id: parse_col(row, 0, "auth_sessions")?,
            user_id: parse_col(row, 1, "auth_sessions")?,
            token_hash: row.try_get(2).map_err(db_error)?,
            created_at: time_col(row, 3)?,
            expires_at: time_col(row, 4)?,
            last_seen_at: time_col(row, 5)?,
            revoked_at: opt_time_col(row, 6)?,
            ip: row.try_get(7).map_err(db_error)?,
            user_agent: row.try_get(8).map_err(db_error)?,
        })
    }

    fn pack_from_row(row: &DB::Row) -> Result<Pack, StoreError> {
        Ok(Pack {
            id: parse_col(row, 0, "packs")?,
            name: row.try_get(1).map_err(db_error)?,
            exposure: parse_col(row, 2, "packs")?,
            image_ref: row.try_get(3).map_err(db_error)?,
            image_digest: row.try_get(4).map_err(db_error)?,
            created_at: time_col(row, 5)?,
            deprecated_at: opt_time_col(row, 6)?,
        })
    }

    fn session_from_row(row: &DB::Row) -> Result<Session, StoreError> {
        Ok(Session {
            id: parse_col(row, 0, "sessions")?,
            user_id: parse_col(row, 1, "sessions")?,
            exposure: parse_col(row, 2, "sessions")?,
            pack_id: parse_col(row, 3, "sessions")?,
            status: parse_col(row, 4, "sessions")?,
            container_id: row.try_get(5).map_err(db_error)?,
            gpu_id: GpuId(to_u32(row.try_get(6).map_err(db_error)?, "sessions")?),
            slug: parse_col::<_, Slug>(row, 7, "sessions")?,
            workspace: row.try_get(8).map_err(db_error)?,
            created_at: time_col(row, 9)?,
            started_at: opt_time_col(row, 10)?,
            stopped_at: opt_time_col(row, 11)?,
            error_message: row.try_get(12).map_err(db_error)?,
        })
    }

    /// One allocation attempt, in its own transaction.
    async fn try_allocate(&self, req: &AllocationRequest) -> Result<Session, AttemptError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_ALLOCATION).await?;

        // 1. The user row, locked on MySQL, so one user's requests queue here
        //    and each sees the sessions its predecessors inserted.
        let row = sqlx::query(DB::LOCK_USER)
            .bind(req.user_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let user = match row {
            Some(row) => Self::user_from_row(&row, 0)?,
            None => return Err(AllocationError::UserNotFound.into()),
        };
        if !user.may_use(req.exposure) {
            return Err(AllocationError::NotEntitled.into());
        }

        // 2. The pack.
        let pack_id = req.pack_id.unwrap_or(DEFAULT_PACK_ID);
        let row = sqlx::query(concat!("SELECT ", pack_columns!(), " FROM packs p WHERE p.id = ?"))
            .bind(pack_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let pack = match row {
            Some(row) => Self::pack_from_row(&row)?,
            None => return Err(AllocationError::PackNotFound.into()),
        };
        if pack.deprecated_at.is_some() {
            return Err(AllocationError::PackDeprecated.into());
        }
        if !pack.exposure.allows(req.exposure) {
            return Err(AllocationError::PackExposureMismatch { exposure: req.exposure }.into());
        }

        // 3. The user's limit.
        let active: i64 = sqlx::query(
            concat!("SELECT COUNT(*) FROM sessions WHERE user_id = ? AND status IN ", active_statuses!()),
        )
        .bind(user.id.to_string())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if active >= i64::from(user.max_concurrent_sessions) {
            return Err(AllocationError::LimitReached { limit: user.max_concurrent_sessions }.into());
        }

        // 4. The lowest enabled GPU that no active session holds.
        if let Some(lock) = DB::LOCK_GPUS {
            sqlx::query(lock).fetch_all(&mut *tx).await?;
        }
        let gpu: Option<i64> = sqlx::query(
            "SELECT g.id FROM gpu_devices g WHERE g.enabled <> 0 AND NOT EXISTS \
             (SELECT 1 FROM sessions s WHERE s.gpu_id = g.id AND s.gpu_active = 1) ORDER BY g.id LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        let Some(gpu) = gpu else {
            return Err(AllocationError::NoGpusAvailable.into());
        };

        // 5. The row. The unique indexes on slug and (gpu_id, gpu_active) are
        //    the last word: a collision rolls back and the caller retries.
        let session = Session::new_starting(user.id, req.exposure, pack_id, GpuId(to_u32(gpu, "gpu_devices")?), req.now);
        sqlx::query(
            "INSERT INTO sessions (id, user_id, exposure, pack_id, status, gpu_id, slug, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(session.exposure.as_str().to_owned())
        .bind(session.pack_id.to_string())
        .bind(session.status.as_str().to_owned())
        .bind(gpu)
        .bind(session.slug.to_string())
        .bind(model::to_unix_ms(session.created_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(session)
    }

    /// Runs `sql` with a time and a key bound, in that order; rows matched.
    async fn update_at(&self, sql: &'static str, at: OffsetDateTime, key: String) -> Result<u64, StoreError> {
        let done = sqlx::query(sql)
            .bind(model::to_unix_ms(at))
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(DB::rows_affected(&done))
    }

    async fn fetch_user_where(&self, sql: &'static str, key: String) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(sql).bind(key).fetch_optional(&self.pool).await.map_err(db_error)?;
        row.map(|r| Self::user_from_row(&r, 0)).transpose()
    }

    async fn fetch_session_where(&self, sql: &'static str, key: String) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(sql).bind(key).fetch_optional(&self.pool).await.map_err(db_error)?;
        row.map(|r| Self::session_from_row(&r)).transpose()
    }
}
}

/// Runs `op` again (up to 5 times, with a short backoff) while the database
/// reports lock contention: a deadlock victim or a lock-wait timeout.
async fn retry_contention<DB, T, F, Fut>(mut op: F) -> Result<T, sqlx::Error>
where
    DB: Dialect,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match op().await {
            Err(e) if attempt < 5 && classify::<DB>(&e) == DbFailure::Retryable => {
                tracing::debug!(backend = DB::BACKEND, attempt, error = %e, "retrying after lock contention");
                tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 5)).await;
            }
            result => return result,
        }
    }
}

/// Why one allocation attempt ended: a final answer, or a database error
/// that the caller classifies (a lost race is retried).
enum AttemptError {
    Final(AllocationError),
    Db(sqlx::Error),
}

impl From<AllocationError> for AttemptError {
    fn from(e: AllocationError) -> Self {
        AttemptError::Final(e)
    }
}

impl From<StoreError> for AttemptError {
    fn from(e: StoreError) -> Self {
        AttemptError::Final(AllocationError::Store(e))
    }
}

impl From<sqlx::Error> for AttemptError {
    fn from(e: sqlx::Error) -> Self {
        // Classified by the caller, which knows the dialect.
        AttemptError::Db(e)
    }
}

/// Appends `AND ((created_at, id) < cursor)` for a newest-first listing.
fn push_cursor<DB: Database>(qb: &mut QueryBuilder<DB>, alias: &str, after: &Option<Cursor>)
where
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    if let Some(c) = after {
        qb.push(format_args!(" AND ({alias}.created_at < "))
            .push_bind(c.created_at_ms)
            .push(format_args!(" OR ({alias}.created_at = "))
            .push_bind(c.created_at_ms)
            .push(format_args!(" AND {alias}.id < "))
            .push_bind(c.id.clone())
            .push("))");
    }
}

fn page_of<T>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Page<T> {
    let has_more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = if has_more { items.last().map(key) } else { None };
    Page { items, next }
}

fn check_limit(page: &PageRequest) -> Result<i64, StoreError> {
    if page.limit == 0 || page.limit > PageRequest::MAX_LIMIT {
        return Err(StoreError::InvalidPageLimit);
    }
    // One more than asked, to learn whether another page follows.
    Ok(i64::from(page.limit) + 1)
}

sql_store_impl! {
#[async_trait]
impl Store for {
    async fn seed(&self, seed: &Seed) -> Result<SeedReport, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let now = model::to_unix_ms(model::now());
        sqlx::query(DB::INSERT_PACK_IF_MISSING)
            .bind(DEFAULT_PACK_ID.to_string())
            .bind("default".to_owned())
            .bind("both".to_owned())
            .bind(seed.default_pack_image.clone())
            .bind(seed.default_pack_digest.clone())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // The config is the truth about the default pack's image.
        sqlx::query("UPDATE packs SET image_ref = ?, image_digest = ? WHERE id = ?")
            .bind(seed.default_pack_image.clone())
            .bind(seed.default_pack_digest.clone())
            .bind(DEFAULT_PACK_ID.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;

        let rows = sqlx::query("SELECT id, enabled FROM gpu_devices ORDER BY id")
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let mut existing = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get(0).map_err(db_error)?;
            let enabled: bool = row.try_get(1).map_err(db_error)?;
            existing.push((GpuId(to_u32(id, "gpu_devices")?), enabled));
        }
        let mut report = SeedReport::default();
        for &gpu in &seed.gpu_ids {
            if !existing.iter().any(|(id, _)| *id == gpu) {
                sqlx::query(DB::INSERT_GPU_IF_MISSING)
                    .bind(i64::from(gpu.0))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                report.gpus_added.push(gpu);
            }
        }
        for &(gpu, enabled) in &existing {
            if enabled && !seed.gpu_ids.contains(&gpu) {
                sqlx::query("UPDATE gpu_devices SET enabled = ? WHERE id = ?")
                    .bind(false)
                    .bind(i64::from(gpu.0))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                report.gpus_disabled.push(gpu);
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(report)
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        let result = sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, can_use_internal, max_concurrent_sessions, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(user.email.to_string())
        .bind(user.password_hash)
        .bind(user.role.as_str().to_owned())
        .bind(user.can_use_internal)
        .bind(i64::from(user.max_concurrent_sessions))
        .bind(model::to_unix_ms(user.created_at))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(User {
                id: user.id,
                email: user.email,
                role: user.role,
                can_use_internal: user.can_use_internal,
                max_concurrent_sessions: user.max_concurrent_sessions,
                created_at: model::from_unix_ms(model::to_unix_ms(user.created_at)),
                workspace_quota_bytes: None,
            }),
            Err(e) if classify::<DB>(&e) == DbFailure::Unique(UniqueKey::Email) => Err(StoreError::EmailTaken),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.fetch_user_where(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ?"), id.to_string())
            .await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.fetch_user_where(
            concat!("SELECT ", user_columns!(), " FROM users u WHERE u.email = ?"),
            email.to_string(),
        )
        .await
    }

    async fn user_credentials(&self, email: &Email) -> Result<Option<(User, String)>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), ", u.password_hash FROM users u WHERE u.email = ?"))
            .bind(email.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(|r| Ok((Self::user_from_row(&r, 0)?, r.try_get(USER_WIDTH).map_err(db_error)?)))
            .transpose()
    }

    async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(|r| r.try_get(0).map_err(db_error)).transpose()
    }

    async fn update_user(&self, id: UserId, update: UserUpdate) -> Result<Option<User>, StoreError> {
        let result = sqlx::query(
            "UPDATE users SET email = COALESCE(?, email), password_hash = COALESCE(?, password_hash), \
             role = COALESCE(?, role), can_use_internal = COALESCE(?, can_use_internal), \
             max_concurrent_sessions = COALESCE(?, max_concurrent_sessions), \
             workspace_quota_bytes = CASE WHEN ? THEN ? ELSE workspace_quota_bytes END WHERE id = ?",
        )
        .bind(update.email.map(String::from))
        .bind(update.password_hash)
        .bind(update.role.map(|r| r.as_str().to_owned()))
        .bind(update.can_use_internal)
        .bind(update.max_concurrent_sessions.map(i64::from))
        .bind(update.workspace_quota_bytes.is_some())
        .bind(update.workspace_quota_bytes.flatten().map(|q| i64::try_from(q).unwrap_or(i64::MAX)))
        .bind(id.to_string())
        .execute(&self.pool)
        .await;
        match result {
            Ok(done) if DB::rows_affected(&done) == 0 => Ok(None),
            Ok(_) => self.user(id).await,
            Err(e) if classify::<DB>(&e) == DbFailure::Unique(UniqueKey::Email) => Err(StoreError::EmailTaken),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn list_users(&self, page: PageRequest) -> Result<Page<UserSummary>, StoreError> {
        let fetch = check_limit(&page)?;
        let mut qb = QueryBuilder::<DB>::new(concat!(
            "SELECT ",
            user_columns!(),
            ", (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.status IN ",
            active_statuses!(),
            ") FROM users u WHERE 1 = 1"
        ));
        push_cursor(&mut qb, "u", &page.after);
        qb.push(" ORDER BY u.created_at DESC, u.id DESC LIMIT ").push_bind(fetch);
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_error)?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(UserSummary {
                    user: Self::user_from_row(r, 0)?,
                    active_session_count: to_u32(r.try_get(USER_WIDTH).map_err(db_error)?, "sessions")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(page_of(items, page.limit, |u| Cursor {
            created_at_ms: model::to_unix_ms(u.user.created_at),
            id: u.user.id.to_string(),
        }))
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(db_error)?;
        Ok(n.unsigned_abs())
    }

    async fn create_login(&self, login: NewLogin) -> Result<Login, StoreError> {
        sqlx::query(
            "INSERT INTO auth_sessions (id, user_id, token_hash, created_at, expires_at, last_seen_at, ip, user_agent) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(login.id.to_string())
        .bind(login.user_id.to_string())
        .bind(login.token_hash.clone())
        .bind(model::to_unix_ms(login.created_at))
        .bind(model::to_unix_ms(login.expires_at))
        .bind(model::to_unix_ms(login.created_at))
        .bind(login.ip.clone())
        .bind(login.user_agent.clone())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(Login {
            id: login.id,
            user_id: login.user_id,
            token_hash: login.token_hash,
            created_at: login.created_at,
            expires_at: login.expires_at,
            last_seen_at: login.created_at,
            revoked_at: None,
            ip: login.ip,
            user_agent: login.user_agent,
        })
    }

    async fn login_by_token_hash(&self, token_hash: &str) -> Result<Option<(Login, User)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            auth_columns!(),
            ", ",
            user_columns!(),
            " FROM auth_sessions a JOIN users u ON u.id = a.user_id WHERE a.token_hash = ?"
        ))
        .bind(token_hash.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|r| Ok((Self::auth_from_row(&r)?, Self::user_from_row(&r, AUTH_WIDTH)?)))
            .transpose()
    }

    async fn touch_login(&self, id: LoginId, at: OffsetDateTime) -> Result<(), StoreError> {
        // `?2` would be neater, but MySQL has no numbered placeholders.
        let ms = model::to_unix_ms(at);
        sqlx::query("UPDATE auth_sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?")
            .bind(ms)
            .bind(id.to_string())
            .bind(ms)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn revoke_login(&self, id: LoginId, at: OffsetDateTime) -> Result<bool, StoreError> {
        let sql = "UPDATE auth_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL";
        Ok(self.update_at(sql, at, id.to_string()).await? == 1)
    }

    async fn revoke_user_logins(&self, user_id: UserId, at: OffsetDateTime) -> Result<u64, StoreError> {
        let sql = "UPDATE auth_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL";
        self.update_at(sql, at, user_id.to_string()).await
    }

    async fn pack(&self, id: PackId) -> Result<Option<Pack>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", pack_columns!(), " FROM packs p WHERE p.id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(|r| Self::pack_from_row(&r)).transpose()
    }

    async fn list_packs(&self) -> Result<Vec<Pack>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", pack_columns!(), " FROM packs p ORDER BY p.created_at, p.id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(Self::pack_from_row).collect()
    }

    async fn list_gpus(&self) -> Result<Vec<GpuDevice>, StoreError> {
        let rows = sqlx::query(
            "SELECT g.id, g.enabled, s.id, s.user_id, s.created_at FROM gpu_devices g \
             LEFT JOIN sessions s ON s.gpu_id = g.id AND s.gpu_active = 1 ORDER BY g.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(GpuDevice {
                    id: GpuId(to_u32(r.try_get(0).map_err(db_error)?, "gpu_devices")?),
                    enabled: r.try_get(1).map_err(db_error)?,
                    session_id: opt_parse_col(r, 2, "sessions")?,
                    user_id: opt_parse_col(r, 3, "sessions")?,
                    held_since: opt_time_col(r, 4)?,
                })
            })
            .collect()
    }

    async fn set_gpu_enabled(&self, id: GpuId, enabled: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE gpu_devices SET enabled = ? WHERE id = ?")
            .bind(enabled)
            .bind(i64::from(id.0))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn allocate_session(&self, request: AllocationRequest) -> Result<Session, AllocationError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let lost_race = match self.try_allocate(&request).await {
                Ok(session) => return Ok(session),
                Err(AttemptError::Final(e)) => return Err(e),
                Err(AttemptError::Db(e)) => match classify::<DB>(&e) {
                    DbFailure::Unique(UniqueKey::Slug | UniqueKey::GpuActive) | DbFailure::Retryable => e,
                    _ => return Err(AllocationError::Store(db_error(e))),
                },
            };
            if attempt >= ALLOCATION_ATTEMPTS {
                tracing::warn!(backend = DB::BACKEND, attempts = attempt, error = %lost_race, "allocation gave up after repeated conflicts");
                return Err(AllocationError::Contention);
            }
            // A short, growing, jittered pause so that racers spread out.
            let base = 2u64 << attempt.min(6);
            let jitter = u64::from(rand::random::<u8>()) % base;
            tokio::time::sleep(Duration::from_millis(base + jitter)).await;
        }
    }

    async fn session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        self.fetch_session_where(
            concat!("SELECT ", session_columns!(), " FROM sessions s WHERE s.id = ?"),
            id.to_string(),
        )
        .await
    }

    async fn session_by_slug(&self, slug: &Slug) -> Result<Option<Session>, StoreError> {
        self.fetch_session_where(
            concat!("SELECT ", session_columns!(), " FROM sessions s WHERE s.slug = ?"),
            slug.to_string(),
        )
        .await
    }

    async fn list_sessions(&self, filter: &SessionFilter, page: PageRequest) -> Result<Page<Session>, StoreError> {
        let fetch = check_limit(&page)?;
        let mut qb = QueryBuilder::<DB>::new(concat!("SELECT ", session_columns!(), " FROM sessions s WHERE 1 = 1"));
        if let Some(user) = filter.user_id {
            qb.push(" AND s.user_id = ").push_bind(user.to_string());
        }
        if let Some(exposure) = filter.exposure {
            qb.push(" AND s.exposure = ").push_bind(exposure.as_str().to_owned());
        }
        if !filter.statuses.is_empty() {
            qb.push(" AND s.status IN (");
            let mut list = qb.separated(", ");
            for status in &filter.statuses {
                list.push_bind(status.as_str().to_owned());
            }
            qb.push(")");
        }
        push_cursor(&mut qb, "s", &page.after);
        qb.push(" ORDER BY s.created_at DESC, s.id DESC LIMIT ").push_bind(fetch);
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_error)?;
        let items = rows.iter().map(Self::session_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(items, page.limit, |s| Cursor {
            created_at_ms: model::to_unix_ms(s.created_at),
            id: s.id.to_string(),
        }))
    }

    async fn session_counts(&self) -> Result<Vec<(SessionStatus, u64)>, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM sessions GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get(1).map_err(db_error)?;
                Ok((parse_col(r, 0, "sessions")?, n.unsigned_abs()))
            })
            .collect()
    }

    async fn active_sessions(&self) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s WHERE s.status IN ",
            active_statuses!(),
            " ORDER BY s.created_at, s.id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(Self::session_from_row).collect()
    }

    async fn transition_session(&self, id: SessionId, t: Transition) -> Result<bool, StoreError> {
        if !t.from.can_become(t.to) {
            tracing::warn!(session_id = %id, from = %t.from, to = %t.to, "refused a transition the state machine forbids");
            return Ok(false);
        }
        let at = model::to_unix_ms(t.at);
        let started_at = (t.to == SessionStatus::Running).then_some(at);
        let stopped_at = t.to.is_terminal().then_some(at);
        // InnoDB may pick this statement as a deadlock victim against a
        // concurrent allocation (gap locks on uq_sessions_gpu_active); the
        // update is conditional, so running it again is always safe.
        let done = retry_contention::<DB, _, _, _>(|| {
            sqlx::query(
                "UPDATE sessions SET status = ?, container_id = COALESCE(?, container_id), \
                 workspace_zfs = COALESCE(?, workspace_zfs), error_message = COALESCE(?, error_message), \
                 started_at = COALESCE(?, started_at), stopped_at = COALESCE(?, stopped_at) \
                 WHERE id = ? AND status = ?",
            )
            .bind(t.to.as_str().to_owned())
            .bind(t.container_id.clone())
            .bind(t.workspace.clone())
            .bind(t.error_message.clone())
            .bind(started_at)
            .bind(stopped_at)
            .bind(id.to_string())
            .bind(t.from.as_str().to_owned())
            .execute(&self.pool)
        })
        .await
        .map_err(db_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn set_session_runtime(
        &self,
        id: SessionId,
        container_id: Option<&str>,
        workspace: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            concat!(
                "UPDATE sessions SET container_id = COALESCE(?, container_id), ",
                "workspace_zfs = COALESCE(?, workspace_zfs) WHERE id = ? AND status IN ",
                active_statuses!()
            ),
        )
        .bind(container_id.map(str::to_owned))
        .bind(workspace.map(str::to_owned))
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn record_event(&self, e: &StoredEvent) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO events (id, event, user_id, session_id, created_at, body) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(e.id.clone())
            .bind(e.event.clone())
            .bind(e.user_id.map(|u| u.to_string()))
            .bind(e.session_id.map(|s| s.to_string()))
            .bind(model::to_unix_ms(e.created_at))
            .bind(e.data.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn list_events(&self, filter: &EventFilter, page: PageRequest) -> Result<Page<StoredEvent>, StoreError> {
        let fetch = check_limit(&page)?;
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT e.id, e.event, e.user_id, e.session_id, e.created_at, e.body FROM events e WHERE 1 = 1",
        );
        if let Some(event) = &filter.event {
            qb.push(" AND e.event = ").push_bind(event.clone());
        }
        if let Some(user) = filter.user_id {
            qb.push(" AND e.user_id = ").push_bind(user.to_string());
        }
        push_cursor(&mut qb, "e", &page.after);
        qb.push(" ORDER BY e.created_at DESC, e.id DESC LIMIT ").push_bind(fetch);
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_error)?;
        let items = rows
            .iter()
            .map(|r| {
                let body: String = r.try_get(5).map_err(db_error)?;
                Ok(StoredEvent {
                    id: r.try_get(0).map_err(db_error)?,
                    event: r.try_get(1).map_err(db_error)?,
                    user_id: opt_parse_col(r, 2, "events")?,
                    session_id: opt_parse_col(r, 3, "events")?,
                    created_at: time_col(r, 4)?,
                    data: serde_json::from_str(&body).map_err(|e| corrupt("events", e))?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(page_of(items, page.limit, |e| Cursor { created_at_ms: model::to_unix_ms(e.created_at), id: e.id.clone() }))
    }

    async fn deployment_id(&self) -> Result<DeploymentId, StoreError> {
        sqlx::query(DB::INSERT_DEPLOYMENT_IF_MISSING)
            .bind(DeploymentId::new_random().to_string())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        let row = sqlx::query("SELECT id FROM deployment WHERE singleton = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        let id: String = row.try_get(0).map_err(db_error)?;
        id.parse().map_err(|e| corrupt("deployment", e))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await.map_err(db_error)?;
        Ok(())
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_report_a_cursor_only_when_more_follow() {
        let key = |n: &i64| Cursor { created_at_ms: *n, id: String::new() };
        let p = page_of(vec![5, 4, 3], 2, key);
        assert_eq!(p.items, vec![5, 4]);
        assert_eq!(p.next.map(|c| c.created_at_ms), Some(4));
        let p = page_of(vec![5, 4], 2, key);
        assert!(p.next.is_none());
    }

    #[test]
    fn active_status_list_matches_the_model() {
        let listed: Vec<_> = SessionStatus::ACTIVE.iter().map(|s| format!("'{s}'")).collect();
        assert_eq!(active_statuses!(), format!("({})", listed.join(", ")));
    }
}
