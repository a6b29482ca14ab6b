//! Persistence: the [`Store`] trait and its two implementations, SQLite (the
//! embedded default) and MySQL/MariaDB, which share one body of SQL code
//! ([`SqlStore`]) and differ only in their [`Dialect`].
//!
//! The store is the source of truth for who holds which GPU. Allocation is
//! race-safe twice: a transaction that serialises allocations, and a unique
//! index on `(gpu_id, gpu_active)` that the database itself enforces (see
//! docs/architecture.md and the migrations).

mod mysql;
pub(crate) mod sql;
mod sqlite;

pub use mysql::MySqlStore;
pub use sql::{DbFailure, Dialect, SqlStore, UniqueKey};
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::model::{
    DeploymentId, Email, Exposure, GpuDevice, GpuId, Invite, InviteId, Login, LoginId, Pack, PackId, QueueEntry,
    QueueEntryId, Role, Session, SessionId, SessionStatus, Slug, StopReason, User, UserId, UserSummary, Warning,
};

use crate::telemetry::GpuInfo;
use crate::usage::{GpuUsageDay, UsageRecords};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Email already registered.")]
    EmailTaken,
    /// The invite is used, revoked, expired or unknown.
    #[error("This invite link is used, revoked or expired.")]
    InviteUnusable,
    /// The user already has a place in the queue for that exposure.
    #[error("You are already in the queue.")]
    AlreadyQueued,
    #[error("invalid pagination cursor")]
    InvalidCursor,
    #[error("page limit must be 1 to 500")]
    InvalidPageLimit,
    /// A row holds a value the model cannot represent (an unknown status, say).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("migration failed: {0}")]
    Migration(#[source] BoxError),
    #[error("database error: {0}")]
    Database(#[source] BoxError),
}

/// Why an allocation was refused. The messages are the ones docs/api.md gives.
#[derive(Debug, thiserror::Error)]
pub enum AllocationError {
    #[error("User not found.")]
    UserNotFound,
    #[error("Internal sessions need the internal entitlement.")]
    NotEntitled,
    #[error("Concurrent session limit reached ({limit}).")]
    LimitReached { limit: u32 },
    #[error("No GPUs available.")]
    NoGpusAvailable,
    #[error("Pack not found.")]
    PackNotFound,
    #[error("Pack is deprecated.")]
    PackDeprecated,
    #[error("Pack is not available for {exposure} sessions.")]
    PackExposureMismatch { exposure: Exposure },
    /// Every retry lost a race on the unique indexes; the caller may try again.
    #[error("Allocation conflicted with concurrent requests; try again.")]
    Contention,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to seed on start: the default pack's image and the host's GPUs.
#[derive(Debug, Clone)]
pub struct Seed {
    pub default_pack_image: String,
    pub default_pack_digest: Option<String>,
    pub gpu_ids: Vec<GpuId>,
    /// What telemetry discovered (UUID, name, memory), recorded on the rows
    /// of `gpu_ids` it describes; empty without telemetry.
    pub gpu_details: Vec<GpuInfo>,
}

impl Default for Seed {
    fn default() -> Self {
        Self {
            default_pack_image: "medforge-pack-default:latest".into(),
            default_pack_digest: None,
            gpu_ids: (0..7).map(GpuId).collect(),
            gpu_details: Vec::new(),
        }
    }
}

/// What seeding changed, for the caller to log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// GPUs inserted because the config names them and the table did not.
    pub gpus_added: Vec<GpuId>,
    /// GPUs in the table that the config no longer names: disabled, so that
    /// nothing is allocated on hardware that is gone, but kept for history.
    pub gpus_disabled: Vec<GpuId>,
}

/// A new account. Role, entitlement and limit default to a plain user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub password_hash: String,
    pub role: Role,
    pub can_use_internal: bool,
    pub max_concurrent_sessions: u32,
    pub created_at: OffsetDateTime,
}

impl NewUser {
    pub fn new(email: Email, password_hash: String) -> Self {
        Self {
            id: UserId::new_random(),
            email,
            password_hash,
            role: Role::User,
            can_use_internal: false,
            max_concurrent_sessions: 1,
            created_at: crate::model::now(),
        }
    }

    /// The same account as an admin, entitled to internal sessions.
    pub fn admin(mut self) -> Self {
        self.role = Role::Admin;
        self.can_use_internal = true;
        self
    }
}

/// A new invite; the token itself goes to the admin, only its hash here.
#[derive(Debug, Clone)]
pub struct NewInvite {
    pub id: InviteId,
    pub email: Email,
    pub token_hash: String,
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A change to a user; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub email: Option<Email>,
    pub password_hash: Option<String>,
    pub role: Option<Role>,
    pub can_use_internal: Option<bool>,
    pub max_concurrent_sessions: Option<u32>,
    /// `Some(None)` clears the user's own quota (back to the default).
    pub workspace_quota_bytes: Option<Option<u64>>,
    /// `Some(None)` clears the user's own session lifetime (back to the default).
    pub max_lifetime_secs: Option<Option<u64>>,
}

#[derive(Debug, Clone)]
pub struct NewLogin {
    pub id: LoginId,
    pub user_id: UserId,
    pub token_hash: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A request for a session: the store checks everything and picks the GPU.
#[derive(Debug, Clone)]
pub struct AllocationRequest {
    pub user_id: UserId,
    pub exposure: Exposure,
    /// `None` means the default pack.
    pub pack_id: Option<PackId>,
    pub now: OffsetDateTime,
    /// When the session's lifetime ends; `None`: never.
    pub expires_at: Option<OffsetDateTime>,
}

/// A status change, applied only if the session is still in `from`.
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: SessionStatus,
    pub to: SessionStatus,
    pub at: OffsetDateTime,
    /// Set when given; otherwise left as it is.
    pub container_id: Option<String>,
    pub workspace: Option<String>,
    pub error_message: Option<String>,
    /// Why it stops (recorded once: a later transition keeps the first).
    pub stop_reason: Option<StopReason>,
}

impl Transition {
    pub fn new(from: SessionStatus, to: SessionStatus, at: OffsetDateTime) -> Self {
        Self { from, to, at, container_id: None, workspace: None, error_message: None, stop_reason: None }
    }

    pub fn reason(mut self, reason: StopReason) -> Self {
        self.stop_reason = Some(reason);
        self
    }

    pub fn container_id(mut self, id: impl Into<String>) -> Self {
        self.container_id = Some(id.into());
        self
    }

    pub fn workspace(mut self, w: impl Into<String>) -> Self {
        self.workspace = Some(w.into());
        self
    }

    pub fn error(mut self, message: impl Into<String>) -> Self {
        self.error_message = Some(message.into());
        self
    }
}

/// A new place in the queue, `waiting`.
#[derive(Debug, Clone)]
pub struct NewQueueEntry {
    pub id: QueueEntryId,
    pub user_id: UserId,
    pub exposure: Exposure,
    pub pack_id: Option<PackId>,
    pub auto_start: bool,
    pub joined_at: OffsetDateTime,
}

/// What [`Store::offer_gpu`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// A free GPU is now reserved for the entry's user: the `reserved`
    /// session that holds it (its `expires_at` is the offer's end).
    Made(Box<Session>),
    /// No GPU is free.
    NoGpu,
    /// The entry is gone or already offered one.
    NotWaiting,
    /// The user holds as many sessions as they may: no offer (the caller
    /// removes the entry: it would block the GPU count of the queue).
    UserAtLimit,
    /// The user may no longer start what they queued for (the internal
    /// entitlement taken away, the pack gone or deprecated): no offer.
    CannotStart,
}

/// A session's lifetime was extended, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// The session as it is now (`expires_at` later, one more extension).
    Extended(Box<Session>),
    /// It has been extended as often as it may.
    LimitReached,
    /// It is not running, or has no lifetime limit.
    NotRunning,
}

/// Which sessions a listing returns.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub user_id: Option<UserId>,
    pub exposure: Option<Exposure>,
    /// Empty means every status.
    pub statuses: Vec<SessionStatus>,
}

/// A position in a newest-first listing: the last item's `(created_at, id)`.
/// Opaque to clients (base64url without padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at_ms: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        data_encoding::BASE64URL_NOPAD.encode(format!("{}|{}", self.created_at_ms, self.id).as_bytes())
    }

    pub fn decode(text: &str) -> Result<Self, StoreError> {
        let bytes = data_encoding::BASE64URL_NOPAD.decode(text.as_bytes()).map_err(|_| StoreError::InvalidCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| StoreError::InvalidCursor)?;
        let (ms, id) = text.split_once('|').ok_or(StoreError::InvalidCursor)?;
        let created_at_ms = ms.parse().map_err(|_| StoreError::InvalidCursor)?;
        // Ids are uuids: anything else did not come from us.
        uuid::Uuid::parse_str(id).map_err(|_| StoreError::InvalidCursor)?;
        Ok(Self { created_at_ms, id: id.to_owned() })
    }
}

/// One page of a listing request.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl PageRequest {
    pub const MAX_LIMIT: u32 = 500;

    pub fn first(limit: u32) -> Self {
        Self { limit, after: None }
    }
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Set when more items follow.
    pub next: Option<Cursor>,
}

/// An event as the admin event log keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredEvent {
    pub id: String,
    pub event: String,
    /// The user the event is about (an admin action's target).
    pub user_id: Option<UserId>,
    /// Who did it, for an admin's actions.
    pub actor_id: Option<UserId>,
    pub session_id: Option<SessionId>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// The whole event line, as JSON.
    pub data: serde_json::Value,
}

/// Which events a listing returns.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event: Option<String>,
    /// Events about this user.
    pub user_id: Option<UserId>,
    /// Events this user did (an admin's actions).
    pub actor_id: Option<UserId>,
}

/// Everything MedForge persists. Implementations must make
/// [`Store::allocate_session`] race-safe and every [`Store::transition_session`]
/// a conditional update; the contract suite (`testing::store_contract_tests!`)
/// checks both against the real backend.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Inserts the default pack (or updates its image) and the configured GPUs.
    async fn seed(&self, seed: &Seed) -> Result<SeedReport, StoreError>;

    // --- users ---
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    /// The user and their password hash, for login only.
    async fn user_credentials(&self, email: &Email) -> Result<Option<(User, String)>, StoreError>;
    /// The password hash of a user, for a password change.
    async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError>;
    /// Applies the update; `None` when there is no such user.
    async fn update_user(&self, id: UserId, update: UserUpdate) -> Result<Option<User>, StoreError>;
    async fn list_users(&self, page: PageRequest) -> Result<Page<UserSummary>, StoreError>;
    async fn count_users(&self) -> Result<u64, StoreError>;

    // --- invites ---
    async fn create_invite(&self, invite: NewInvite) -> Result<Invite, StoreError>;
    async fn invite_by_token_hash(&self, token_hash: &str) -> Result<Option<Invite>, StoreError>;
    /// Newest first, every state.
    async fn list_invites(&self, page: PageRequest) -> Result<Page<Invite>, StoreError>;
    /// Revokes the invite if it is neither used nor revoked; whether it did.
    async fn revoke_invite(&self, id: InviteId, at: OffsetDateTime) -> Result<bool, StoreError>;
    /// Creates `user` and uses the invite of `token_hash` for it, in one
    /// transaction: [`StoreError::InviteUnusable`] unless the invite is
    /// open at `at`, and [`StoreError::EmailTaken`] leaves it open.
    async fn create_user_with_invite(
        &self,
        user: NewUser,
        token_hash: &str,
        at: OffsetDateTime,
    ) -> Result<User, StoreError>;

    // --- logins ---
    async fn create_login(&self, login: NewLogin) -> Result<Login, StoreError>;
    async fn login_by_token_hash(&self, token_hash: &str) -> Result<Option<(Login, User)>, StoreError>;
    async fn touch_login(&self, id: LoginId, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Revokes one login; `false` when it was unknown or already revoked.
    async fn revoke_login(&self, id: LoginId, at: OffsetDateTime) -> Result<bool, StoreError>;
    /// Revokes every live login of a user (password change, demotion); returns how many.
    async fn revoke_user_logins(&self, user_id: UserId, at: OffsetDateTime) -> Result<u64, StoreError>;

    // --- packs and GPUs ---
    async fn pack(&self, id: PackId) -> Result<Option<Pack>, StoreError>;
    async fn list_packs(&self) -> Result<Vec<Pack>, StoreError>;
    /// Every GPU row with its holder, by id.
    async fn list_gpus(&self) -> Result<Vec<GpuDevice>, StoreError>;
    /// `false` when there is no such GPU. Disabling does not stop a session
    /// that holds it; it only keeps the GPU out of later allocations.
    async fn set_gpu_enabled(&self, id: GpuId, enabled: bool) -> Result<bool, StoreError>;

    /// Writes telemetry aggregates, each replacing the row of its session
    /// and day (whole values, so a repeated write changes nothing).
    async fn record_gpu_usage(&self, rows: &[GpuUsageDay]) -> Result<(), StoreError>;
    /// A session's telemetry rows, oldest day first (to carry on after a restart).
    async fn session_gpu_usage(&self, id: SessionId) -> Result<Vec<GpuUsageDay>, StoreError>;
    /// The sessions that held a GPU at some time in `[from, to)` (one user's,
    /// or everyone's), with the telemetry rows of their days in that range.
    async fn usage_records(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        user: Option<UserId>,
    ) -> Result<UsageRecords, StoreError>;

    // --- sessions ---
    /// In one transaction: lock the user, check entitlement and pack; then
    /// either claim the GPU the queue offered this user for this exposure
    /// (their `reserved` session becomes `starting`, the entry goes), or
    /// check the limit, make sure no one waiting in the queue is passed
    /// over (a GPU is only taken when more are free than others wait for),
    /// take the lowest enabled free GPU and insert the session as `starting`.
    async fn allocate_session(&self, request: AllocationRequest) -> Result<Session, AllocationError>;
    async fn session(&self, id: SessionId) -> Result<Option<Session>, StoreError>;
    async fn session_by_slug(&self, slug: &Slug) -> Result<Option<Session>, StoreError>;
    /// Newest first.
    async fn list_sessions(&self, filter: &SessionFilter, page: PageRequest) -> Result<Page<Session>, StoreError>;
    /// How many sessions are in each status (statuses with none are left out).
    async fn session_counts(&self) -> Result<Vec<(SessionStatus, u64)>, StoreError>;
    /// Every session in `starting | running | stopping`, oldest first (reconciliation, polling).
    async fn active_sessions(&self) -> Result<Vec<Session>, StoreError>;
    /// Applies the transition if the session is still in `transition.from`;
    /// returns whether this call won. Moves the state machine forbids are
    /// refused without touching the row.
    async fn transition_session(&self, id: SessionId, transition: Transition) -> Result<bool, StoreError>;
    /// Records that sessions were used at these times (a later time only
    /// ever moves `last_activity_at` forward); ended sessions are left alone.
    async fn record_activity(&self, seen: &[(SessionId, OffsetDateTime)]) -> Result<(), StoreError>;
    /// Sets or clears the warning of a running session; whether it was running.
    async fn set_session_warning(&self, id: SessionId, warning: Option<Warning>) -> Result<bool, StoreError>;
    /// Moves a running session's `expires_at` on by `by` and counts the
    /// extension, unless it has `max` already; clears a lifetime warning.
    async fn extend_session(&self, id: SessionId, by: std::time::Duration, max: u32) -> Result<Extension, StoreError>;
    /// Records runtime details of a session that is still active.
    async fn set_session_runtime(
        &self,
        id: SessionId,
        container_id: Option<&str>,
        workspace: Option<&str>,
    ) -> Result<bool, StoreError>;

    // --- the wait queue ---
    /// Adds a `waiting` entry; [`StoreError::AlreadyQueued`] if the user has
    /// one for that exposure.
    async fn join_queue(&self, entry: NewQueueEntry) -> Result<QueueEntry, StoreError>;
    /// Every entry, oldest first.
    async fn queue(&self) -> Result<Vec<QueueEntry>, StoreError>;
    async fn queue_entry(&self, user: UserId, exposure: Exposure) -> Result<Option<QueueEntry>, StoreError>;
    /// Removes the entry and the reservation of an offer it had (its GPU is
    /// free again); the entry as it was, or `None` when there was none.
    async fn leave_queue(&self, id: QueueEntryId) -> Result<Option<QueueEntry>, StoreError>;
    /// In one transaction, as race-safe as an allocation: if the entry is
    /// still `waiting`, its user below their limit and a GPU free, reserve
    /// that GPU for them (a `reserved` session until `until`) and mark the
    /// entry `offered`.
    async fn offer_gpu(
        &self,
        id: QueueEntryId,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Offer, StoreError>;
    /// Removes the offers that lapsed at `now` with their reservations; the
    /// entries as they were.
    async fn expire_offers(&self, now: OffsetDateTime) -> Result<Vec<QueueEntry>, StoreError>;

    // --- the event log ---
    /// Keeps one event (a fresh id is chosen by the caller).
    async fn record_event(&self, event: &StoredEvent) -> Result<(), StoreError>;
    /// Newest first.
    async fn list_events(&self, filter: &EventFilter, page: PageRequest) -> Result<Page<StoredEvent>, StoreError>;

    /// This database's deployment id: made on the first call (a race of
    /// first calls agrees on one), the same on every later call.
    async fn deployment_id(&self) -> Result<DeploymentId, StoreError>;

    /// Whether the database answers (for `/healthz`).
    async fn ping(&self) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor { created_at_ms: 1_700_000_000_123, id: uuid::Uuid::new_v4().to_string() };
        let text = c.encode();
        assert!(!text.contains('='));
        assert_eq!(Cursor::decode(&text).ok(), Some(c));
        for bad in ["", "!!!", "YWJj", &data_encoding::BASE64URL_NOPAD.encode(b"12|not-a-uuid")] {
            assert!(Cursor::decode(bad).is_err(), "{bad:?} accepted");
        }
    }
}
