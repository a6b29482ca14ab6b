//! Rows as the queries return them, read by column name (`sqlx::FromRow`),
//! then checked into the model: ids and enums parsed, times from unix
//! milliseconds, counts in range. A value the model cannot hold is
//! [`StoreError::Corrupt`], never a panic.

use std::fmt;
use std::str::FromStr;

use crate::model::{
    self, GpuDevice, GpuId, Invite, Login, Pack, QueueEntry, Session, User, UserSummary, Warning, WarningKind,
};
use crate::store::{StoreError, StoredEvent};
use crate::usage::{GpuUsageDay, UsageSession};

pub(super) fn corrupt(table: &'static str, reason: impl fmt::Display) -> StoreError {
    StoreError::Corrupt { table, reason: reason.to_string() }
}

fn parse<T: FromStr>(text: &str, table: &'static str) -> Result<T, StoreError>
where
    T::Err: fmt::Display,
{
    text.parse().map_err(|e| corrupt(table, e))
}

fn parse_opt<T: FromStr>(text: Option<String>, table: &'static str) -> Result<Option<T>, StoreError>
where
    T::Err: fmt::Display,
{
    text.map(|t| parse(&t, table)).transpose()
}

pub(super) fn to_u64(v: i64, table: &'static str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(table, format!("{v} out of range")))
}

pub(super) fn to_u32(v: i64, table: &'static str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| corrupt(table, format!("{v} out of range")))
}

/// `users` (`u.*` as `user_columns!` lists them).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct UserRow {
    id: String,
    email: String,
    role: String,
    can_use_internal: bool,
    max_concurrent_sessions: i64,
    created_at: i64,
    workspace_quota_bytes: Option<i64>,
    max_lifetime_secs: Option<i64>,
}

impl UserRow {
    pub(super) fn into_model(self) -> Result<User, StoreError> {
        const T: &str = "users";
        Ok(User {
            id: parse(&self.id, T)?,
            email: parse(&self.email, T)?,
            role: parse(&self.role, T)?,
            can_use_internal: self.can_use_internal,
            max_concurrent_sessions: to_u32(self.max_concurrent_sessions, T)?,
            created_at: model::from_unix_ms(self.created_at),
            workspace_quota_bytes: self
                .workspace_quota_bytes
                .map(|q| u64::try_from(q).map_err(|_| corrupt(T, format!("quota {q} out of range"))))
                .transpose()?,
            max_lifetime_secs: self
                .max_lifetime_secs
                .map(|q| u64::try_from(q).map_err(|_| corrupt(T, format!("lifetime {q} out of range"))))
                .transpose()?,
        })
    }
}

/// A user with the password hash (for a log-in).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct CredentialsRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: String,
}

/// A user with their active sessions (the admin's listing).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct UserSummaryRow {
    #[sqlx(flatten)]
    user: UserRow,
    active_session_count: i64,
}

impl UserSummaryRow {
    pub(super) fn into_model(self) -> Result<UserSummary, StoreError> {
        Ok(UserSummary {
            user: self.user.into_model()?,
            active_session_count: to_u32(self.active_session_count, "sessions")?,
        })
    }
}

/// A browser login joined with its user: the login's columns carry a
/// `login_` prefix where a user column has the same name.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct LoginRow {
    login_id: String,
    login_user_id: String,
    token_hash: String,
    login_created_at: i64,
    expires_at: i64,
    last_seen_at: i64,
    revoked_at: Option<i64>,
    ip: Option<String>,
    user_agent: Option<String>,
    #[sqlx(flatten)]
    user: UserRow,
}

impl LoginRow {
    pub(super) fn into_model(self) -> Result<(Login, User), StoreError> {
        const T: &str = "auth_sessions";
        let login = Login {
            id: parse(&self.login_id, T)?,
            user_id: parse(&self.login_user_id, T)?,
            token_hash: self.token_hash,
            created_at: model::from_unix_ms(self.login_created_at),
            expires_at: model::from_unix_ms(self.expires_at),
            last_seen_at: model::from_unix_ms(self.last_seen_at),
            revoked_at: self.revoked_at.map(model::from_unix_ms),
            ip: self.ip,
            user_agent: self.user_agent,
        };
        Ok((login, self.user.into_model()?))
    }
}

/// `invites`.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct InviteRow {
    id: String,
    email: String,
    token_hash: String,
    created_by: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    used_by: Option<String>,
    revoked_at: Option<i64>,
}

impl InviteRow {
    pub(super) fn into_model(self) -> Result<Invite, StoreError> {
        const T: &str = "invites";
        Ok(Invite {
            id: parse(&self.id, T)?,
            email: parse(&self.email, T)?,
            token_hash: self.token_hash,
            created_by: parse(&self.created_by, T)?,
            created_at: model::from_unix_ms(self.created_at),
            expires_at: model::from_unix_ms(self.expires_at),
            used_at: self.used_at.map(model::from_unix_ms),
            used_by: parse_opt(self.used_by, T)?,
            revoked_at: self.revoked_at.map(model::from_unix_ms),
        })
    }
}

/// `packs`.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct PackRow {
    id: String,
    name: String,
    exposure: String,
    image_ref: String,
    image_digest: Option<String>,
    created_at: i64,
    deprecated_at: Option<i64>,
}

impl PackRow {
    pub(super) fn into_model(self) -> Result<Pack, StoreError> {
        const T: &str = "packs";
        Ok(Pack {
            id: parse(&self.id, T)?,
            name: self.name,
            exposure: parse(&self.exposure, T)?,
            image_ref: self.image_ref,
            image_digest: self.image_digest,
            created_at: model::from_unix_ms(self.created_at),
            deprecated_at: self.deprecated_at.map(model::from_unix_ms),
        })
    }
}

/// `sessions`.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct SessionRow {
    id: String,
    user_id: String,
    exposure: String,
    pack_id: String,
    status: String,
    container_id: Option<String>,
    gpu_id: i64,
    slug: String,
    workspace_zfs: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    stopped_at: Option<i64>,
    error_message: Option<String>,
    expires_at: Option<i64>,
    last_activity_at: Option<i64>,
    extensions: i64,
    warning: Option<String>,
    warning_stops_at: Option<i64>,
    warning_given_at: Option<i64>,
    stop_reason: Option<String>,
}

impl SessionRow {
    pub(super) fn into_model(self) -> Result<Session, StoreError> {
        const T: &str = "sessions";
        Ok(Session {
            id: parse(&self.id, T)?,
            user_id: parse(&self.user_id, T)?,
            exposure: parse(&self.exposure, T)?,
            pack_id: parse(&self.pack_id, T)?,
            status: parse(&self.status, T)?,
            container_id: self.container_id,
            gpu_id: GpuId(to_u32(self.gpu_id, T)?),
            slug: parse(&self.slug, T)?,
            workspace: self.workspace_zfs,
            created_at: model::from_unix_ms(self.created_at),
            started_at: self.started_at.map(model::from_unix_ms),
            stopped_at: self.stopped_at.map(model::from_unix_ms),
            error_message: self.error_message,
            expires_at: self.expires_at.map(model::from_unix_ms),
            last_activity_at: self.last_activity_at.map(model::from_unix_ms),
            extensions: to_u32(self.extensions, T)?,
            warning: match (parse_opt::<WarningKind>(self.warning, T)?, self.warning_stops_at, self.warning_given_at) {
                (Some(kind), Some(stops_at), Some(given_at)) => Some(Warning {
                    kind,
                    stops_at: model::from_unix_ms(stops_at),
                    given_at: model::from_unix_ms(given_at),
                }),
                _ => None,
            },
            stop_reason: parse_opt(self.stop_reason, T)?,
        })
    }
}

/// A GPU and the active session holding it, if any.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct GpuRow {
    id: i64,
    enabled: bool,
    session_id: Option<String>,
    user_id: Option<String>,
    held_since: Option<i64>,
    uuid: Option<String>,
    name: Option<String>,
    memory_total_bytes: Option<i64>,
}

impl GpuRow {
    pub(super) fn into_model(self) -> Result<GpuDevice, StoreError> {
        Ok(GpuDevice {
            id: GpuId(to_u32(self.id, "gpu_devices")?),
            enabled: self.enabled,
            session_id: parse_opt(self.session_id, "sessions")?,
            user_id: parse_opt(self.user_id, "sessions")?,
            held_since: self.held_since.map(model::from_unix_ms),
            uuid: self.uuid,
            name: self.name,
            memory_total_bytes: self.memory_total_bytes.map(|b| to_u64(b, "gpu_devices")).transpose()?,
        })
    }
}

/// `events`.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct EventRow {
    id: String,
    event: String,
    user_id: Option<String>,
    actor_id: Option<String>,
    session_id: Option<String>,
    created_at: i64,
    body: String,
}

impl EventRow {
    pub(super) fn into_model(self) -> Result<StoredEvent, StoreError> {
        const T: &str = "events";
        Ok(StoredEvent {
            id: self.id,
            event: self.event,
            user_id: parse_opt(self.user_id, T)?,
            actor_id: parse_opt(self.actor_id, T)?,
            session_id: parse_opt(self.session_id, T)?,
            created_at: model::from_unix_ms(self.created_at),
            data: serde_json::from_str(&self.body).map_err(|e| corrupt(T, e))?,
        })
    }
}

/// `session_gpu_usage`.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct GpuUsageRow {
    session_id: String,
    day_start: i64,
    gpu_id: i64,
    sampled_ms: i64,
    busy_ms: i64,
    utilization_ms: i64,
    peak_memory_bytes: i64,
}

impl GpuUsageRow {
    pub(super) fn into_model(self) -> Result<GpuUsageDay, StoreError> {
        const T: &str = "session_gpu_usage";
        Ok(GpuUsageDay {
            session_id: parse(&self.session_id, T)?,
            day: crate::usage::utc_day(model::from_unix_ms(self.day_start)),
            gpu_id: GpuId(to_u32(self.gpu_id, T)?),
            sampled_ms: to_u64(self.sampled_ms, T)?,
            busy_ms: to_u64(self.busy_ms, T)?,
            utilization_ms: to_u64(self.utilization_ms, T)?,
            peak_memory_bytes: to_u64(self.peak_memory_bytes, T)?,
        })
    }
}

/// A session with its owner's email (the usage report).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct UsageSessionRow {
    #[sqlx(flatten)]
    session: SessionRow,
    email: String,
}

impl UsageSessionRow {
    pub(super) fn into_model(self) -> Result<UsageSession, StoreError> {
        Ok(UsageSession { session: self.session.into_model()?, email: parse(&self.email, "users")? })
    }
}

/// `queue_entries` (`q.*` as `queue_columns!` lists them).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct QueueRow {
    id: String,
    user_id: String,
    exposure: String,
    pack_id: Option<String>,
    auto_start: bool,
    joined_at: i64,
    state: String,
    session_id: Option<String>,
    offered_at: Option<i64>,
    offered_until: Option<i64>,
}

impl QueueRow {
    pub(super) fn into_model(self) -> Result<QueueEntry, StoreError> {
        const T: &str = "queue_entries";
        Ok(QueueEntry {
            id: parse(&self.id, T)?,
            user_id: parse(&self.user_id, T)?,
            exposure: parse(&self.exposure, T)?,
            pack_id: parse_opt(self.pack_id, T)?,
            auto_start: self.auto_start,
            joined_at: model::from_unix_ms(self.joined_at),
            state: parse(&self.state, T)?,
            session_id: parse_opt(self.session_id, T)?,
            offered_at: self.offered_at.map(model::from_unix_ms),
            offered_until: self.offered_until.map(model::from_unix_ms),
        })
    }
}
