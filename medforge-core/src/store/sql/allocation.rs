//! Allocation: one transaction that checks the user, the pack and the
//! limit and takes the lowest free GPU, run again when it loses a race on
//! a unique index or a lock; and the retry of statements InnoDB may pick
//! as deadlock victims.

use std::time::Duration;

use super::backend::{
    DbFailure, Dialect, UniqueKey, classify, db_error, holding_statuses, pack_columns, session_columns, sql_impl,
};
use super::rows::{PackRow, SessionRow, UserRow, to_u32};
use super::sessions::Sessions;
use crate::model::{self, DEFAULT_PACK_ID, GpuId, Session};
use crate::store::{AllocationError, AllocationRequest, StoreError};

/// How often allocation runs again after losing a race on a unique index or
/// a lock, before it answers [`AllocationError::Contention`].
const ALLOCATION_ATTEMPTS: u32 = 8;

sql_impl! {
impl Sessions<'p> {
    pub async fn allocate(&self, request: AllocationRequest) -> Result<Session, AllocationError> {
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

    /// One allocation attempt, in its own transaction.
    async fn try_allocate(&self, req: &AllocationRequest) -> Result<Session, AttemptError> {
        let mut tx = self.0.begin_with(DB::BEGIN_ALLOCATION).await?;

        // 1. The user row, locked on MySQL, so one user's requests queue here
        //    and each sees the sessions its predecessors inserted.
        let row: Option<UserRow> =
            sqlx::query_as(DB::LOCK_USER).bind(req.user_id.to_string()).fetch_optional(&mut *tx).await?;
        let user = match row {
            Some(row) => row.into_model()?,
            None => return Err(AllocationError::UserNotFound.into()),
        };
        if !user.may_use(req.exposure) {
            return Err(AllocationError::NotEntitled.into());
        }

        // 2. The pack.
        let pack_id = req.pack_id.unwrap_or(DEFAULT_PACK_ID);
        let row: Option<PackRow> = sqlx::query_as(concat!("SELECT ", pack_columns!(), " FROM packs p WHERE p.id = ?"))
            .bind(pack_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let pack = match row {
            Some(row) => row.into_model()?,
            None => return Err(AllocationError::PackNotFound.into()),
        };
        if pack.deprecated_at.is_some() {
            return Err(AllocationError::PackDeprecated.into());
        }
        if !pack.exposure.allows(req.exposure) {
            return Err(AllocationError::PackExposureMismatch { exposure: req.exposure }.into());
        }

        // 3. A GPU the queue offered this user: theirs to claim, whatever
        //    the queue or the limit (the reservation already counts).
        let offered: Option<String> = sqlx::query_scalar(
            "SELECT session_id FROM queue_entries WHERE user_id = ? AND exposure = ? AND state = 'offered'",
        )
        .bind(user.id.to_string())
        .bind(req.exposure.as_str().to_owned())
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        if let Some(reserved) = offered {
            let claimed = sqlx::query(
                "UPDATE sessions SET status = 'starting', pack_id = ?, created_at = ?, expires_at = ?, \
                 last_activity_at = ? WHERE id = ? AND status = 'reserved'",
            )
            .bind(pack_id.to_string())
            .bind(model::to_unix_ms(req.now))
            .bind(req.expires_at.map(model::to_unix_ms))
            .bind(model::to_unix_ms(req.now))
            .bind(reserved.clone())
            .execute(&mut *tx)
            .await?;
            if DB::rows_affected(&claimed) == 1 {
                sqlx::query("DELETE FROM queue_entries WHERE session_id = ?").bind(reserved.clone()).execute(&mut *tx).await?;
                let row: SessionRow =
                    sqlx::query_as(concat!("SELECT ", session_columns!(), " FROM sessions s WHERE s.id = ?"))
                        .bind(reserved)
                        .fetch_one(&mut *tx)
                        .await?;
                let session = row.into_model()?;
                tx.commit().await?;
                return Ok(session);
            }
        }

        // 4. The user's limit (a reservation counts, as it holds a GPU).
        if holding::<DB>(&mut tx, &user.id.to_string()).await? >= i64::from(user.max_concurrent_sessions) {
            return Err(AllocationError::LimitReached { limit: user.max_concurrent_sessions }.into());
        }

        // 5. The lowest enabled GPU that no session holds, unless those
        //    waiting in the queue (others than this user) need every free
        //    one: a GPU that frees is theirs, offered in turn, and a create
        //    that comes first must not take it.
        if let Some(lock) = DB::LOCK_GPUS {
            sqlx::query(lock).fetch_all(&mut *tx).await?;
        }
        let Some(gpu) = free_gpu::<DB>(&mut tx).await? else {
            return Err(AllocationError::NoGpusAvailable.into());
        };
        let free: i64 = sqlx::query_scalar(concat!("SELECT COUNT(*) FROM gpu_devices g WHERE ", free_gpu_condition!()))
            .fetch_one(&mut *tx)
            .await?;
        let waiting: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM queue_entries WHERE state = 'waiting' AND user_id <> ?")
                .bind(user.id.to_string())
                .fetch_one(&mut *tx)
                .await?;
        if free <= waiting {
            return Err(AllocationError::NoGpusAvailable.into());
        }

        // 6. The row. The unique indexes on slug and (gpu_id, gpu_active) are
        //    the last word: a collision rolls back and the caller retries.
        //    A waiting entry of this user for this exposure is met by it.
        let mut session =
            Session::new_starting(user.id, req.exposure, pack_id, GpuId(to_u32(gpu, "gpu_devices")?), req.now);
        session.expires_at = req.expires_at;
        insert_session::<DB>(&mut tx, &session).await?;
        sqlx::query("DELETE FROM queue_entries WHERE user_id = ? AND exposure = ? AND state = 'waiting'")
            .bind(user.id.to_string())
            .bind(req.exposure.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(session)
    }
}
}

/// How many sessions `user` holds (a reservation included), in the caller's transaction.
pub(super) async fn holding<DB>(tx: &mut sqlx::Transaction<'_, DB>, user: &str) -> Result<i64, sqlx::Error>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query_scalar(concat!("SELECT COUNT(*) FROM sessions WHERE user_id = ? AND status IN ", holding_statuses!()))
        .bind(user.to_owned())
        .fetch_one(&mut **tx)
        .await
}

/// Where a GPU is free: enabled, and no session holds it (a reservation included).
macro_rules! free_gpu_condition {
    () => {
        "g.enabled <> 0 AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.gpu_id = g.id AND s.gpu_active = 1)"
    };
}
pub(super) use free_gpu_condition;

/// The lowest free GPU, in the caller's transaction (which has locked the
/// GPU rows where the dialect needs it).
pub(super) async fn free_gpu<DB>(tx: &mut sqlx::Transaction<'_, DB>) -> Result<Option<i64>, sqlx::Error>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query_scalar(concat!(
        "SELECT g.id FROM gpu_devices g WHERE ",
        free_gpu_condition!(),
        " ORDER BY g.id LIMIT 1"
    ))
    .fetch_optional(&mut **tx)
    .await
}

/// Inserts a new session row (`starting`, or `reserved` for an offer).
pub(super) async fn insert_session<DB>(tx: &mut sqlx::Transaction<'_, DB>, s: &Session) -> Result<(), sqlx::Error>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO sessions (id, user_id, exposure, pack_id, status, gpu_id, slug, created_at, expires_at, \
         last_activity_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(s.id.to_string())
    .bind(s.user_id.to_string())
    .bind(s.exposure.as_str().to_owned())
    .bind(s.pack_id.to_string())
    .bind(s.status.as_str().to_owned())
    .bind(i64::from(s.gpu_id.0))
    .bind(s.slug.to_string())
    .bind(model::to_unix_ms(s.created_at))
    .bind(s.expires_at.map(model::to_unix_ms))
    .bind(s.last_activity_at.map(model::to_unix_ms))
    .execute(&mut **tx)
    .await?;
    Ok(())
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
