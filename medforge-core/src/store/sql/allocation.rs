//! Allocation: one transaction that checks the user, the pack and the
//! limit and takes the lowest free GPU, run again when it loses a race on
//! a unique index or a lock; and the retry of statements InnoDB may pick
//! as deadlock victims.

use std::time::Duration;

use super::backend::{DbFailure, Dialect, UniqueKey, active_statuses, classify, db_error, pack_columns, sql_impl};
use super::rows::{PackRow, UserRow, to_u32};
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

        // 3. The user's limit.
        let active: i64 =
            sqlx::query_scalar(concat!("SELECT COUNT(*) FROM sessions WHERE user_id = ? AND status IN ", active_statuses!()))
                .bind(user.id.to_string())
                .fetch_one(&mut *tx)
                .await?;
        if active >= i64::from(user.max_concurrent_sessions) {
            return Err(AllocationError::LimitReached { limit: user.max_concurrent_sessions }.into());
        }

        // 4. The lowest enabled GPU that no active session holds.
        if let Some(lock) = DB::LOCK_GPUS {
            sqlx::query(lock).fetch_all(&mut *tx).await?;
        }
        let gpu: Option<i64> = sqlx::query_scalar(
            "SELECT g.id FROM gpu_devices g WHERE g.enabled <> 0 AND NOT EXISTS \
             (SELECT 1 FROM sessions s WHERE s.gpu_id = g.id AND s.gpu_active = 1) ORDER BY g.id LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
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
