//! `queue_entries`: the wait queue for a GPU. An offer reserves a free GPU
//! for the entry's user with a `reserved` session row, in a transaction
//! like an allocation's, so the unique index on (gpu_id, gpu_active) keeps
//! it from every other create; the lapse of an offer deletes that row.

use sqlx::Pool;
use time::OffsetDateTime;

use super::allocation::{free_gpu, holding, insert_session};
use super::backend::{DbFailure, Dialect, UniqueKey, classify, db_error, pack_columns, retry_contention, sql_impl};
use super::rows::{PackRow, QueueRow, UserRow, to_u32};
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
        retry_contention::<DB, _, _, _>(|| self.try_leave(id)).await.map_err(db_error)
    }

    /// One try of [`Self::leave`]. The user's row is locked first, as
    /// allocations and offers lock it, so that an offer or a claim for this
    /// user is either all done (and its reservation goes with the entry)
    /// or not begun.
    async fn try_leave(&self, id: QueueEntryId) -> Result<Option<QueueEntry>, sqlx::Error> {
        let mut tx = self.0.begin_with(DB::BEGIN_ALLOCATION).await?;
        let Some(first) = Self::entry_in(&mut tx, id).await? else { return Ok(None) };
        sqlx::query(DB::LOCK_USER).bind(first.user_id.to_string()).fetch_optional(&mut *tx).await?;
        // Read again under that lock (READ COMMITTED on MySQL): an offer
        // may have come in between.
        let Some(entry) = Self::entry_in(&mut tx, id).await? else { return Ok(None) };
        Self::remove(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(Some(entry))
    }

    /// The entry `id` as the transaction sees it now.
    async fn entry_in(tx: &mut sqlx::Transaction<'_, DB>, id: QueueEntryId) -> Result<Option<QueueEntry>, sqlx::Error> {
        let row: Option<QueueRow> =
            sqlx::query_as(concat!("SELECT ", queue_columns!(), " FROM queue_entries q WHERE q.id = ?"))
                .bind(id.to_string())
                .fetch_optional(&mut **tx)
                .await?;
        row.map(QueueRow::into_model).transpose().map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }

    /// Deletes the entry, then its reservation (while still `reserved`).
    async fn remove(tx: &mut sqlx::Transaction<'_, DB>, entry: &QueueEntry) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM queue_entries WHERE id = ?").bind(entry.id.to_string()).execute(&mut **tx).await?;
        if let Some(session) = entry.session_id {
            // Nothing should have charged a reservation; if something did,
            // its rows must not keep the row (a foreign key) alive.
            sqlx::query(
                "DELETE FROM session_gpu_usage WHERE session_id = ? AND EXISTS \
                 (SELECT 1 FROM sessions s WHERE s.id = ? AND s.status = 'reserved')",
            )
            .bind(session.to_string())
            .bind(session.to_string())
            .execute(&mut **tx)
            .await?;
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
        // own creates, a leave and this offer see each other.
        let user: Option<UserRow> = sqlx::query_as(DB::LOCK_USER).bind(entry.user_id.to_string()).fetch_optional(&mut *tx).await?;
        let user = match user.map(UserRow::into_model).transpose() {
            Ok(Some(user)) => user,
            Ok(None) => return Ok(Ok(Offer::NotWaiting)),
            Err(e) => return Ok(Err(e)),
        };
        // A user who may no longer start it (the entitlement taken away,
        // the pack gone or deprecated since they joined) is not offered a
        // GPU they cannot use.
        let pack_id = entry.pack_id.unwrap_or(model::DEFAULT_PACK_ID);
        let pack: Option<PackRow> = sqlx::query_as(concat!("SELECT ", pack_columns!(), " FROM packs p WHERE p.id = ?"))
            .bind(pack_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let usable = match pack.map(PackRow::into_model).transpose() {
            Ok(Some(pack)) => pack.deprecated_at.is_none() && pack.exposure.allows(entry.exposure),
            Ok(None) => false,
            Err(e) => return Ok(Err(e)),
        };
        if !usable || !user.may_use(entry.exposure) {
            return Ok(Ok(Offer::CannotStart));
        }
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
        let mut session = Session::new_starting(user.id, entry.exposure, pack_id, gpu, now);
        session.status = SessionStatus::Reserved;
        session.expires_at = Some(until);
        session.last_activity_at = None;
        insert_session::<DB>(&mut tx, &session).await?;
        // Only if it still waits: a leave or the user's own create may have
        // taken it since it was read; then nothing of this offer stays.
        let marked = sqlx::query(
            "UPDATE queue_entries SET state = 'offered', session_id = ?, offered_at = ?, offered_until = ? \
             WHERE id = ? AND state = 'waiting'",
        )
        .bind(session.id.to_string())
        .bind(model::to_unix_ms(now))
        .bind(model::to_unix_ms(until))
        .bind(entry.id.to_string())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&marked) != 1 {
            tx.rollback().await?;
            return Ok(Ok(Offer::NotWaiting));
        }
        tx.commit().await?;
        session.created_at = model::from_unix_ms(model::to_unix_ms(now));
        session.expires_at = Some(model::from_unix_ms(model::to_unix_ms(until)));
        Ok(Ok(Offer::Made(Box::new(session))))
    }

    pub async fn expire(&self, now: OffsetDateTime) -> Result<Vec<QueueEntry>, StoreError> {
        let mut expired = Vec::new();
        for entry in self.lapsed(now).await? {
            if retry_contention::<DB, _, _, _>(|| self.try_expire(&entry, now)).await.map_err(db_error)? {
                expired.push(entry);
            }
        }
        // A reservation that no entry names (none should be: a safety net
        // against a path we did not foresee) would hold its GPU for ever.
        let orphans = sqlx::query(
            "DELETE FROM sessions WHERE status = 'reserved' AND NOT EXISTS \
             (SELECT 1 FROM queue_entries q WHERE q.session_id = sessions.id)",
        )
        .execute(self.0)
        .await
        .map_err(db_error)?;
        if DB::rows_affected(&orphans) > 0 {
            tracing::warn!(count = DB::rows_affected(&orphans), "removed reservations that no queue entry named");
        }
        Ok(expired)
    }

    /// One lapsed offer gone, under its user's lock; whether this call did it.
    async fn try_expire(&self, entry: &QueueEntry, now: OffsetDateTime) -> Result<bool, sqlx::Error> {
        let mut tx = self.0.begin_with(DB::BEGIN_ALLOCATION).await?;
        sqlx::query(DB::LOCK_USER).bind(entry.user_id.to_string()).fetch_optional(&mut *tx).await?;
        // Only if it is still that offer (a claim may have come first).
        let gone = sqlx::query("DELETE FROM queue_entries WHERE id = ? AND state = 'offered' AND offered_until <= ?")
            .bind(entry.id.to_string())
            .bind(model::to_unix_ms(now))
            .execute(&mut *tx)
            .await?;
        let done = DB::rows_affected(&gone) == 1;
        if done {
            Self::remove(&mut tx, entry).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// The offers that lapsed at `now`, as they were.
    async fn lapsed(&self, now: OffsetDateTime) -> Result<Vec<QueueEntry>, StoreError> {
        let rows: Vec<QueueRow> = sqlx::query_as(concat!(
            "SELECT ",
            queue_columns!(),
            " FROM queue_entries q WHERE q.state = 'offered' AND q.offered_until <= ? ORDER BY q.joined_at, q.id"
        ))
        .bind(model::to_unix_ms(now))
        .fetch_all(self.0)
        .await
        .map_err(db_error)?;
        models(rows)
    }
}
}
