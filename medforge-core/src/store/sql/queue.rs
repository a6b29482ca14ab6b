//! `queue_entries`: the wait queue for a GPU. An offer reserves a free GPU
//! for the entry's user with a `reserved` session row, in a transaction
//! like an allocation's, so the unique index on (gpu_id, gpu_active) keeps
//! it from every other create; the lapse of an offer deletes that row.

use sqlx::Pool;
use time::OffsetDateTime;

use super::allocation::{free_gpu, holding, insert_session};
use super::backend::{DbFailure, Dialect, UniqueKey, classify, db_error, sql_impl};
use super::rows::{QueueRow, UserRow, to_u32};
use crate::model::{self, Exposure, GpuId, QueueEntry, QueueEntryId, QueueState, Session, SessionStatus, UserId};
use crate::store::{NewQueueEntry, Offer, StoreError};

/// The columns `QueueRow` reads.
macro_rules! queue_columns {
    () => {
        "q.id, q.user_id, q.exposure, q.pack_id, q.auto_start, q.joined_at, q.state, q.session_id, q.offered_at, \
         q.offered_until"
    };
}

/// The queue of one pool.
pub(super) struct Queue<'p, DB: sqlx::Database>(pub &'p Pool<DB>);

fn models(rows: Vec<QueueRow>) -> Result<Vec<QueueEntry>, StoreError> {
    rows.into_iter().map(QueueRow::into_model).collect()
}

sql_impl! {
impl Queue<'p> {
    pub async fn join(&self, entry: NewQueueEntry) -> Result<QueueEntry, StoreError> {
        let joined_at = model::from_unix_ms(model::to_unix_ms(entry.joined_at));
        let done = sqlx::query(
            "INSERT INTO queue_entries (id, user_id, exposure, pack_id, auto_start, joined_at, state) \
             VALUES (?, ?, ?, ?, ?, ?, 'waiting')",
        )
        .bind(entry.id.to_string())
        .bind(entry.user_id.to_string())
        .bind(entry.exposure.as_str().to_owned())
        .bind(entry.pack_id.map(|p| p.to_string()))
        .bind(entry.auto_start)
        .bind(model::to_unix_ms(joined_at))
        .execute(self.0)
        .await;
        match done {
            Ok(_) => Ok(QueueEntry {
                id: entry.id,
                user_id: entry.user_id,
                exposure: entry.exposure,
                pack_id: entry.pack_id,
                auto_start: entry.auto_start,
                joined_at,
                state: QueueState::Waiting,
                session_id: None,
                offered_at: None,
                offered_until: None,
            }),
            Err(e) if matches!(classify::<DB>(&e), DbFailure::Unique(_)) => Err(StoreError::AlreadyQueued),
            Err(e) => Err(db_error(e)),
        }
    }

    pub async fn all(&self) -> Result<Vec<QueueEntry>, StoreError> {
        let rows: Vec<QueueRow> =
            sqlx::query_as(concat!("SELECT ", queue_columns!(), " FROM queue_entries q ORDER BY q.joined_at, q.id"))
                .fetch_all(self.0)
                .await
                .map_err(db_error)?;
        models(rows)
    }

    pub async fn of(&self, user: UserId, exposure: Exposure) -> Result<Option<QueueEntry>, StoreError> {
        let row: Option<QueueRow> = sqlx::query_as(concat!(
            "SELECT ",
            queue_columns!(),
            " FROM queue_entries q WHERE q.user_id = ? AND q.exposure = ?"
        ))
        .bind(user.to_string())
        .bind(exposure.as_str().to_owned())
        .fetch_optional(self.0)
        .await
        .map_err(db_error)?;
        row.map(QueueRow::into_model).transpose()
    }

    pub async fn leave(&self, id: QueueEntryId) -> Result<Option<QueueEntry>, StoreError> {
        let mut tx = self.0.begin().await.map_err(db_error)?;
        let row: Option<QueueRow> =
            sqlx::query_as(concat!("SELECT ", queue_columns!(), " FROM queue_entries q WHERE q.id = ?"))
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        let Some(entry) = row.map(QueueRow::into_model).transpose()? else { return Ok(None) };
        Self::remove(&mut tx, &entry).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(entry))
    }

    /// Deletes the entry, then its reservation (while still `reserved`).
    async fn remove(tx: &mut sqlx::Transaction<'_, DB>, entry: &QueueEntry) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM queue_entries WHERE id = ?").bind(entry.id.to_string()).execute(&mut **tx).await?;
        if let Some(session) = entry.session_id {
            sqlx::query("DELETE FROM sessions WHERE id = ? AND status = 'reserved'")
                .bind(session.to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    pub async fn offer(&self, id: QueueEntryId, now: OffsetDateTime, until: OffsetDateTime) -> Result<Offer, StoreError> {
        // A lost race on the unique indexes (another allocation took the
        // GPU first) is tried again, as an allocation is.
        for _ in 0..8 {
            match self.try_offer(id, now, until).await {
                Err(e) if matches!(
                    classify::<DB>(&e),
                    DbFailure::Unique(UniqueKey::GpuActive | UniqueKey::Slug) | DbFailure::Retryable
                ) => {
                    tokio::time::sleep(std::time::Duration::from_millis(5 + u64::from(rand::random::<u8>() % 20))).await;
                }
                other => return other.map_err(db_error)?,
            }
        }
        Ok(Offer::NoGpu)
    }

    async fn try_offer(
        &self,
        id: QueueEntryId,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Result<Offer, StoreError>, sqlx::Error> {
        let mut tx = self.0.begin_with(DB::BEGIN_ALLOCATION).await?;
        let row: Option<QueueRow> =
            sqlx::query_as(concat!("SELECT ", queue_columns!(), " FROM queue_entries q WHERE q.id = ?"))
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let entry = match row.map(QueueRow::into_model).transpose() {
            Ok(Some(entry)) if entry.state == QueueState::Waiting => entry,
            Ok(_) => return Ok(Ok(Offer::NotWaiting)),
            Err(e) => return Ok(Err(e)),
        };
        // The user row, locked (MySQL) as an allocation locks it, so their
        // own creates and this offer see each other.
        let user: Option<UserRow> = sqlx::query_as(DB::LOCK_USER).bind(entry.user_id.to_string()).fetch_optional(&mut *tx).await?;
        let user = match user.map(UserRow::into_model).transpose() {
            Ok(Some(user)) => user,
            Ok(None) => return Ok(Ok(Offer::NotWaiting)),
            Err(e) => return Ok(Err(e)),
        };
        if holding::<DB>(&mut tx, &user.id.to_string()).await? >= i64::from(user.max_concurrent_sessions) {
            return Ok(Ok(Offer::UserAtLimit));
        }
        if let Some(lock) = DB::LOCK_GPUS {
            sqlx::query(lock).fetch_all(&mut *tx).await?;
        }
        let Some(gpu) = free_gpu::<DB>(&mut tx).await? else { return Ok(Ok(Offer::NoGpu)) };
        let gpu = match to_u32(gpu, "gpu_devices") {
            Ok(g) => GpuId(g),
            Err(e) => return Ok(Err(e)),
        };
        let pack = entry.pack_id.unwrap_or(model::DEFAULT_PACK_ID);
        let mut session = Session::new_starting(user.id, entry.exposure, pack, gpu, now);
        session.status = SessionStatus::Reserved;
        session.expires_at = Some(until);
        session.last_activity_at = None;
        insert_session::<DB>(&mut tx, &session).await?;
        sqlx::query(
            "UPDATE queue_entries SET state = 'offered', session_id = ?, offered_at = ?, offered_until = ? WHERE id = ?",
        )
        .bind(session.id.to_string())
        .bind(model::to_unix_ms(now))
        .bind(model::to_unix_ms(until))
        .bind(entry.id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        session.created_at = model::from_unix_ms(model::to_unix_ms(now));
        session.expires_at = Some(model::from_unix_ms(model::to_unix_ms(until)));
        Ok(Ok(Offer::Made(Box::new(session))))
    }

    pub async fn expire(&self, now: OffsetDateTime) -> Result<Vec<QueueEntry>, StoreError> {
        let rows: Vec<QueueRow> = sqlx::query_as(concat!(
            "SELECT ",
            queue_columns!(),
            " FROM queue_entries q WHERE q.state = 'offered' AND q.offered_until <= ? ORDER BY q.joined_at, q.id"
        ))
        .bind(model::to_unix_ms(now))
        .fetch_all(self.0)
        .await
        .map_err(db_error)?;
        let mut expired = Vec::new();
        for entry in models(rows)? {
            let mut tx = self.0.begin().await.map_err(db_error)?;
            // Only if it is still that offer (a claim may have come first).
            let gone = sqlx::query("DELETE FROM queue_entries WHERE id = ? AND state = 'offered' AND offered_until <= ?")
                .bind(entry.id.to_string())
                .bind(model::to_unix_ms(now))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            if DB::rows_affected(&gone) == 1 {
                Self::remove(&mut tx, &entry).await.map_err(db_error)?;
                expired.push(entry);
            }
            tx.commit().await.map_err(db_error)?;
        }
        Ok(expired)
    }
}
}
