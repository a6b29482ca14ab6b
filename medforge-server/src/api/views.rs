//! What the API answers: the shapes of docs/api.md, each built from the
//! model in one place and described by its schema (`ToSchema`) in the
//! OpenAPI document. (Sessions and events are the model's own
//! serialisation, described by medforge-core's `openapi` feature.)

use medforge_core::model::{self, Invite, InviteId, InviteState, Role, Session, SessionId, User, UserId, UserSummary};
use medforge_core::storage::Snapshot;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::envelope::rfc3339;
use crate::service::usage::GpuLive;

/// The caller, as `me`, sign-up and log-in answer it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    user_id: UserId,
    email: String,
    role: Role,
    can_use_internal: bool,
}

impl From<&User> for Me {
    fn from(u: &User) -> Self {
        Self { user_id: u.id, email: u.email.to_string(), role: u.role, can_use_internal: u.can_use_internal }
    }
}

/// A user as an admin sees it; `active_session_count` in listings.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    #[serde(flatten)]
    me: Me,
    max_concurrent_sessions: u32,
    workspace_quota_bytes: Option<u64>,
    /// This user's session lifetime in seconds (0: none); `null`: the default.
    max_lifetime_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_session_count: Option<u32>,
}

impl UserView {
    /// A user just changed (`PATCH /admin/users/{id}`).
    pub fn changed(u: &User) -> Self {
        Self {
            me: Me::from(u),
            max_concurrent_sessions: u.max_concurrent_sessions,
            workspace_quota_bytes: u.workspace_quota_bytes,
            max_lifetime_secs: u.max_lifetime_secs,
            created_at: None,
            active_session_count: None,
        }
    }

    /// A user of the listing, with their active sessions.
    pub fn listed(s: &UserSummary) -> Self {
        Self {
            created_at: Some(rfc3339(s.user.created_at)),
            active_session_count: Some(s.active_session_count),
            ..Self::changed(&s.user)
        }
    }
}

/// An invite as an admin sees it. `link` only in the answer that made it:
/// its token is never kept, so it cannot be shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct InviteView {
    invite_id: InviteId,
    email: String,
    state: InviteState,
    created_by: UserId,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    #[schema(format = DateTime)]
    used_at: Option<String>,
    used_by: Option<UserId>,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
}

impl InviteView {
    pub fn new(i: &Invite, link: Option<String>) -> Self {
        Self {
            invite_id: i.id,
            email: i.email.to_string(),
            state: i.state(model::now()),
            created_by: i.created_by,
            created_at: rfc3339(i.created_at),
            expires_at: rfc3339(i.expires_at),
            used_at: i.used_at.map(rfc3339),
            used_by: i.used_by,
            revoked_at: i.revoked_at.map(rfc3339),
            link,
        }
    }
}

/// A GPU, who holds it, and what it is doing.
#[derive(Debug, Serialize, ToSchema)]
pub struct GpuView {
    id: u32,
    enabled: bool,
    session_id: Option<SessionId>,
    user_id: Option<UserId>,
    #[schema(format = DateTime)]
    held_since: Option<String>,
    /// What the driver calls it (`null` without telemetry).
    name: Option<String>,
    uuid: Option<String>,
    memory_total_bytes: Option<u64>,
    /// The latest reading; `null` without telemetry.
    reading: Option<ReadingView>,
}

/// A GPU's latest reading.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadingView {
    #[schema(format = DateTime)]
    sampled_at: String,
    /// 0 to 1.
    utilization_ratio: f64,
    memory_used_bytes: u64,
    memory_total_bytes: u64,
    temperature_c: Option<u32>,
    power_watts: Option<f64>,
    /// Processes with a compute context on it.
    processes: usize,
}

impl From<&GpuLive> for GpuView {
    fn from(live: &GpuLive) -> Self {
        let g = &live.gpu;
        Self {
            id: g.id.0,
            enabled: g.enabled,
            session_id: g.session_id,
            user_id: g.user_id,
            held_since: g.held_since.map(rfc3339),
            name: g.name.clone(),
            uuid: g.uuid.clone(),
            memory_total_bytes: g.memory_total_bytes,
            reading: live.reading.as_ref().map(|r| ReadingView {
                sampled_at: rfc3339(r.at),
                utilization_ratio: r.sample.utilization_ratio(),
                memory_used_bytes: r.sample.memory_used_bytes,
                memory_total_bytes: r.sample.memory_total_bytes,
                temperature_c: r.sample.temperature_c,
                power_watts: r.sample.power_watts,
                processes: r.sample.pids.len(),
            }),
        }
    }
}

/// A snapshot of a workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotView {
    name: String,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&Snapshot> for SnapshotView {
    fn from(s: &Snapshot) -> Self {
        Self { name: s.name.to_string(), created_at: rfc3339(s.created_at) }
    }
}

/// What an action answers when it has nothing more to say.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub message: &'static str,
}

/// `POST /{exposure}/sessions`: the session, `starting`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub message: &'static str,
    pub session: Session,
}

/// `GET /{exposure}/sessions/current`: the newest active session, if any.
#[derive(Debug, Serialize, ToSchema)]
pub struct Current {
    pub session: Option<Session>,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when a check fails.
    pub status: &'static str,
    pub checks: HealthChecks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthChecks {
    pub database: bool,
    pub runtime: bool,
    pub firewall: bool,
}
