//! The SQL body shared by both stores, one file per table: [`users`],
//! [`logins`], [`invites`], [`sessions`] (with [`allocation`]), [`gpus`]
//! (and packs, and seeding), [`events`] (and the deployment id). It is generic over the
//! sqlx database; what differs between SQLite and MySQL (how to open the
//! allocation transaction, row locks, insert-if-missing, error codes,
//! migrations) is the [`Dialect`]. Rows are read by column name into the
//! structs of [`rows`]. Queries are `&'static str`s or built with
//! `QueryBuilder` from literals and bound values only: nothing a client
//! sends is spliced into SQL text.

mod allocation;
mod backend;
mod events;
mod gpus;
mod invites;
mod logins;
mod queue;
mod rows;
mod sessions;
mod usage;
mod users;

use std::fmt;

use async_trait::async_trait;
use sqlx::{Database, Pool};
use time::OffsetDateTime;

use super::{
    AllocationError, AllocationRequest, EventFilter, Extension, NewInvite, NewLogin, NewQueueEntry, NewUser, Offer,
    Page, PageRequest, Seed, SeedReport, SessionFilter, Store, StoreError, StoredEvent, Transition, UserUpdate,
};
use crate::model::{
    DeploymentId, Email, Exposure, GpuDevice, GpuId, Invite, InviteId, Login, LoginId, Pack, PackId, QueueEntry,
    QueueEntryId, Session, SessionId, SessionStatus, Slug, User, UserId, UserSummary, Warning,
};
use crate::usage::{GpuUsageDay, UsageRecords};
#[cfg(feature = "testing")]
pub(crate) use backend::classify;
pub(super) use backend::user_columns;
pub use backend::{DbFailure, Dialect, UniqueKey};
use backend::{db_error, sql_impl};
use events::Events;
use gpus::Gpus;
use invites::Invites;
use logins::Logins;
use queue::Queue;
use sessions::Sessions;
use usage::Usage;
use users::Users;

/// A [`Store`] on a sqlx pool. See [`super::SqliteStore`] and [`super::MySqlStore`].
pub struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
}

impl<DB: Dialect> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore").field("backend", &DB::BACKEND).field("pool_size", &self.pool.size()).finish()
    }
}

sql_impl! {
impl SqlStore {
    /// Wraps a pool, runs the migrations, and returns the store.
    pub async fn from_pool(pool: Pool<DB>) -> Result<Self, StoreError> {
        DB::migrator().run(&pool).await.map_err(|e| StoreError::Migration(Box::new(e)))?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}
}

// The trait, table by table: each method is one call into the table's file.
sql_impl! {
#[async_trait]
impl Store for SqlStore {
    async fn seed(&self, seed: &Seed) -> Result<SeedReport, StoreError> {
        Gpus(&self.pool).seed(seed).await
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        Users(&self.pool).create(user).await
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Users(&self.pool).by_id(id).await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        Users(&self.pool).by_email(email).await
    }

    async fn user_credentials(&self, email: &Email) -> Result<Option<(User, String)>, StoreError> {
        Users(&self.pool).credentials(email).await
    }

    async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError> {
        Users(&self.pool).password_hash(id).await
    }

    async fn update_user(&self, id: UserId, update: UserUpdate) -> Result<Option<User>, StoreError> {
        Users(&self.pool).update(id, update).await
    }

    async fn list_users(&self, page: PageRequest) -> Result<Page<UserSummary>, StoreError> {
        Users(&self.pool).list(page).await
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        Users(&self.pool).count().await
    }

    async fn create_invite(&self, invite: NewInvite) -> Result<Invite, StoreError> {
        Invites(&self.pool).create(invite).await
    }

    async fn invite_by_token_hash(&self, token_hash: &str) -> Result<Option<Invite>, StoreError> {
        Invites(&self.pool).by_token_hash(token_hash).await
    }

    async fn list_invites(&self, page: PageRequest) -> Result<Page<Invite>, StoreError> {
        Invites(&self.pool).list(page).await
    }

    async fn revoke_invite(&self, id: InviteId, at: OffsetDateTime) -> Result<bool, StoreError> {
        Invites(&self.pool).revoke(id, at).await
    }

    async fn create_user_with_invite(
        &self,
        user: NewUser,
        token_hash: &str,
        at: OffsetDateTime,
    ) -> Result<User, StoreError> {
        Invites(&self.pool).create_user(user, token_hash, at).await
    }

    async fn create_login(&self, login: NewLogin) -> Result<Login, StoreError> {
        Logins(&self.pool).create(login).await
    }

    async fn login_by_token_hash(&self, token_hash: &str) -> Result<Option<(Login, User)>, StoreError> {
        Logins(&self.pool).by_token_hash(token_hash).await
    }

    async fn touch_login(&self, id: LoginId, at: OffsetDateTime) -> Result<(), StoreError> {
        Logins(&self.pool).touch(id, at).await
    }

    async fn revoke_login(&self, id: LoginId, at: OffsetDateTime) -> Result<bool, StoreError> {
        Logins(&self.pool).revoke(id, at).await
    }

    async fn revoke_user_logins(&self, user_id: UserId, at: OffsetDateTime) -> Result<u64, StoreError> {
        Logins(&self.pool).revoke_all_of(user_id, at).await
    }

    async fn pack(&self, id: PackId) -> Result<Option<Pack>, StoreError> {
        Gpus(&self.pool).pack(id).await
    }

    async fn list_packs(&self) -> Result<Vec<Pack>, StoreError> {
        Gpus(&self.pool).packs().await
    }

    async fn list_gpus(&self) -> Result<Vec<GpuDevice>, StoreError> {
        Gpus(&self.pool).list().await
    }

    async fn set_gpu_enabled(&self, id: GpuId, enabled: bool) -> Result<bool, StoreError> {
        Gpus(&self.pool).set_enabled(id, enabled).await
    }

    async fn record_gpu_usage(&self, rows: &[GpuUsageDay]) -> Result<(), StoreError> {
        Usage(&self.pool).record(rows).await
    }

    async fn session_gpu_usage(&self, id: SessionId) -> Result<Vec<GpuUsageDay>, StoreError> {
        Usage(&self.pool).of_session(id).await
    }

    async fn usage_records(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        user: Option<UserId>,
    ) -> Result<UsageRecords, StoreError> {
        Usage(&self.pool).records(from, to, user).await
    }

    async fn allocate_session(&self, request: AllocationRequest) -> Result<Session, AllocationError> {
        Sessions(&self.pool).allocate(request).await
    }

    async fn session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        Sessions(&self.pool).by_id(id).await
    }

    async fn session_by_slug(&self, slug: &Slug) -> Result<Option<Session>, StoreError> {
        Sessions(&self.pool).by_slug(slug).await
    }

    async fn list_sessions(&self, filter: &SessionFilter, page: PageRequest) -> Result<Page<Session>, StoreError> {
        Sessions(&self.pool).list(filter, page).await
    }

    async fn session_counts(&self) -> Result<Vec<(SessionStatus, u64)>, StoreError> {
        Sessions(&self.pool).counts().await
    }

    async fn active_sessions(&self) -> Result<Vec<Session>, StoreError> {
        Sessions(&self.pool).active().await
    }

    async fn transition_session(&self, id: SessionId, t: Transition) -> Result<bool, StoreError> {
        Sessions(&self.pool).transition(id, t).await
    }

    async fn set_session_runtime(
        &self,
        id: SessionId,
        container_id: Option<&str>,
        workspace: Option<&str>,
    ) -> Result<bool, StoreError> {
        Sessions(&self.pool).set_runtime(id, container_id, workspace).await
    }

    async fn record_activity(&self, seen: &[(SessionId, OffsetDateTime)]) -> Result<(), StoreError> {
        Sessions(&self.pool).record_activity(seen).await
    }

    async fn set_session_warning(&self, id: SessionId, warning: Option<Warning>) -> Result<bool, StoreError> {
        Sessions(&self.pool).set_warning(id, warning).await
    }

    async fn extend_session(&self, id: SessionId, by: std::time::Duration, max: u32) -> Result<Extension, StoreError> {
        Sessions(&self.pool).extend(id, by, max).await
    }

    async fn join_queue(&self, entry: NewQueueEntry) -> Result<QueueEntry, StoreError> {
        Queue(&self.pool).join(entry).await
    }

    async fn queue(&self) -> Result<Vec<QueueEntry>, StoreError> {
        Queue(&self.pool).all().await
    }

    async fn queue_entry(&self, user: UserId, exposure: Exposure) -> Result<Option<QueueEntry>, StoreError> {
        Queue(&self.pool).of(user, exposure).await
    }

    async fn leave_queue(&self, id: QueueEntryId) -> Result<Option<QueueEntry>, StoreError> {
        Queue(&self.pool).leave(id).await
    }

    async fn offer_gpu(&self, id: QueueEntryId, now: OffsetDateTime, until: OffsetDateTime) -> Result<Offer, StoreError> {
        Queue(&self.pool).offer(id, now, until).await
    }

    async fn expire_offers(&self, now: OffsetDateTime) -> Result<Vec<QueueEntry>, StoreError> {
        Queue(&self.pool).expire(now).await
    }

    async fn record_event(&self, e: &StoredEvent) -> Result<(), StoreError> {
        Events(&self.pool).record(e).await
    }

    async fn list_events(&self, filter: &EventFilter, page: PageRequest) -> Result<Page<StoredEvent>, StoreError> {
        Events(&self.pool).list(filter, page).await
    }

    async fn deployment_id(&self) -> Result<DeploymentId, StoreError> {
        Events(&self.pool).deployment_id().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await.map_err(db_error)?;
        Ok(())
    }
}
}
