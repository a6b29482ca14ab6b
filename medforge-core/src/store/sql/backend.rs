//! What every table's SQL shares: the [`Dialect`] (what differs between
//! SQLite and MySQL), error classification, the column lists, paging, and
//! `sql_impl!`, the one where-clause every generic impl block needs.

use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::{Database, QueryBuilder};

use crate::store::{Cursor, Page, PageRequest, StoreError};

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
    /// Inserts a `session_gpu_usage` row `(session_id, day_start, gpu_id,
    /// sampled_ms, busy_ms, utilization_ms, peak_memory_bytes)`, or replaces
    /// the values of the one with the same session and day.
    const UPSERT_GPU_USAGE: &'static str;

    fn migrator() -> &'static Migrator;
    /// Rows an `UPDATE` matched (sqlx has no trait for it).
    fn rows_affected(result: &Self::QueryResult) -> u64;
    fn classify(err: &(dyn DatabaseError + 'static)) -> DbFailure;
}

// Column lists, shared by every query that reads a record; `rows` reads
// them by these names.
macro_rules! user_columns {
    () => {
        "u.id, u.email, u.role, u.can_use_internal, u.max_concurrent_sessions, u.created_at, u.workspace_quota_bytes, \
         u.max_lifetime_secs"
    };
}
pub(crate) use user_columns;

macro_rules! session_columns {
    () => {
        "s.id, s.user_id, s.exposure, s.pack_id, s.status, s.container_id, s.gpu_id, s.slug, \
         s.workspace_zfs, s.created_at, s.started_at, s.stopped_at, s.error_message, s.expires_at, \
         s.last_activity_at, s.extensions, s.warning, s.warning_stops_at, s.warning_given_at, s.stop_reason"
    };
}
pub(super) use session_columns;

macro_rules! pack_columns {
    () => {
        "p.id, p.name, p.exposure, p.image_ref, p.image_digest, p.created_at, p.deprecated_at"
    };
}
pub(super) use pack_columns;

/// The active statuses as an SQL list; `gpu_active` in the migrations says the same.
macro_rules! active_statuses {
    () => {
        "('starting', 'running', 'stopping')"
    };
}
pub(super) use active_statuses;

/// The statuses that hold a GPU (`SessionStatus::HOLDING`, `gpu_active`).
macro_rules! holding_statuses {
    () => {
        "('reserved', 'starting', 'running', 'stopping')"
    };
}
pub(super) use holding_statuses;

pub(super) fn db_error(e: sqlx::Error) -> StoreError {
    StoreError::Database(Box::new(e))
}

/// The dialect's reading of an error, or `Other` when it is not from the database.
pub(crate) fn classify<DB: Dialect>(e: &sqlx::Error) -> DbFailure {
    match e {
        sqlx::Error::Database(d) => DB::classify(d.as_ref()),
        sqlx::Error::PoolTimedOut => DbFailure::Retryable,
        _ => DbFailure::Other,
    }
}

/// What every generic SQL impl block needs of its sqlx backend, spelled
/// once (Rust cannot name a where-clause): the impl header of
/// `sql_impl! { impl Users<'p> { ... } }`, `sql_impl! { impl SqlStore { ... } }`
/// or `sql_impl! { #[attr] impl Trait for SqlStore { ... } }`. Only the
/// header is generated; the items are written as they are.
macro_rules! sql_impl {
    ($(#[$attr:meta])* impl $trait_:ident for $ty:ident { $($item:tt)* }) => {
        $crate::store::sql::backend::sql_impl!(@bounds [$(#[$attr])* impl<DB> $trait_ for $ty<DB>] $($item)*);
    };
    (impl $ty:ident $(<$lt:lifetime>)? { $($item:tt)* }) => {
        $crate::store::sql::backend::sql_impl!(@bounds [impl<$($lt,)? DB> $ty<$($lt,)? DB>] $($item)*);
    };
    (@bounds [$($head:tt)*] $($item:tt)*) => {
        $($head)*
        where
            DB: Dialect,
            for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
            DB::Arguments: sqlx::IntoArguments<DB>,
            DB::Connection: sqlx::migrate::Migrate,
            usize: sqlx::ColumnIndex<DB::Row>,
            for<'r> &'r str: sqlx::ColumnIndex<DB::Row>,
            for<'q> String: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> Option<bool>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        {
            $($item)*
        }
    };
}
pub(super) use sql_impl;

/// Appends `AND ((created_at, id) < cursor)` for a newest-first listing.
pub(super) fn push_cursor<DB: Database>(qb: &mut QueryBuilder<DB>, alias: &str, after: &Option<Cursor>)
where
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
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

pub(super) fn page_of<T>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Page<T> {
    let has_more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = if has_more { items.last().map(key) } else { None };
    Page { items, next }
}

pub(super) fn check_limit(page: &PageRequest) -> Result<i64, StoreError> {
    if page.limit == 0 || page.limit > PageRequest::MAX_LIMIT {
        return Err(StoreError::InvalidPageLimit);
    }
    // One more than asked, to learn whether another page follows.
    Ok(i64::from(page.limit) + 1)
}

/// Runs `op` again (up to 5 times, with a short backoff) while the database
/// reports lock contention: a deadlock victim or a lock-wait timeout.
pub(super) async fn retry_contention<DB, T, F, Fut>(mut op: F) -> Result<T, sqlx::Error>
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SessionStatus;

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
        let holding: Vec<_> = SessionStatus::HOLDING.iter().map(|s| format!("'{s}'")).collect();
        assert_eq!(holding_statuses!(), format!("({})", holding.join(", ")));
    }
}
