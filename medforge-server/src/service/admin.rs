//! What an admin changes: a user's role, entitlement, limit and quota,
//! and whether a GPU takes new sessions. Who is an admin is the
//! adapters' check (their `Admin` extractors); this is what follows.

use medforge_core::model::{GpuDevice, GpuId, Role, User, UserId};
use medforge_core::store::UserUpdate;

use super::error::{Error, FieldError, Missing};
use super::passes::Revoked;
use super::state::AppState;

/// A change to a user; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChange {
    pub role: Option<String>,
    pub can_use_internal: Option<bool>,
    pub max_concurrent_sessions: Option<i64>,
    /// Bytes; 0: no quota; `Some(None)`: back to the configured default.
    pub workspace_quota_bytes: Option<Option<i64>>,
}

/// Checks every field of `change` (all bad fields are reported at once)
/// and applies it to the user `id` (as the client wrote it).
#[tracing::instrument(skip_all, fields(user_id = id))]
pub async fn change_user(state: &AppState, id: &str, change: UserChange) -> Result<User, Error> {
    let id: UserId = id.parse().map_err(|_| Error::NotFound(Missing::User))?;
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: &str| errors.push(FieldError { field: field.into(), message: message.into() });
    let role = match change.role.as_deref().map(str::parse::<Role>) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(_)) => {
            bad("role", "must be user or admin");
            None
        }
    };
    let limit = match change.max_concurrent_sessions {
        None => None,
        Some(n) if (0..=64).contains(&n) => u32::try_from(n).ok(),
        Some(_) => {
            bad("max_concurrent_sessions", "must be 0 to 64");
            None
        }
    };
    let quota = match change.workspace_quota_bytes {
        Some(Some(q)) if q < 0 => {
            bad("workspace_quota_bytes", "must be 0 (no quota) or more bytes, or null for the default");
            None
        }
        other => other.map(|q| q.and_then(|q| u64::try_from(q).ok())),
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let update = UserUpdate {
        role,
        can_use_internal: change.can_use_internal,
        max_concurrent_sessions: limit,
        workspace_quota_bytes: quota,
        ..Default::default()
    };
    let user = state.store.update_user(id, update).await?.ok_or(Error::NotFound(Missing::User))?;
    // What the user may open may have changed: no cached gate answer and
    // no open tunnel of theirs survives (each must pass the gate again).
    state.revoke(Revoked::User(user.id));
    Ok(user)
}

/// Lets GPU `id` (as the client wrote it) take new sessions, or not (a
/// running session keeps it); the GPU as it is now.
#[tracing::instrument(skip(state))]
pub async fn set_gpu_enabled(state: &AppState, id: &str, enabled: bool) -> Result<GpuDevice, Error> {
    let id = GpuId(id.parse().map_err(|_| Error::NotFound(Missing::Gpu))?);
    if !state.store.set_gpu_enabled(id, enabled).await? {
        return Err(Error::NotFound(Missing::Gpu));
    }
    state.store.list_gpus().await?.into_iter().find(|g| g.id == id).ok_or(Error::NotFound(Missing::Gpu))
}
