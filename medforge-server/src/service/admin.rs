//! What an admin changes: a user's role, entitlement, limit and quota,
//! accounts they make, and whether a GPU takes new sessions. Who is an admin is the
//! adapters' check (their `Admin` extractors); this is what follows, with
//! an event naming the admin, the target and the change (the audit trail).

use medforge_core::auth;
use medforge_core::events::{Event, FieldChange};
use medforge_core::model::{GpuDevice, GpuId, Role, User, UserId};
use medforge_core::store::UserUpdate;
use serde_json::json;

use super::accounts::Caller;
use super::error::{Error, FieldError, Missing, parse_email};
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
    /// Seconds; 0: no limit; `Some(None)`: back to `sessions.max_lifetime`.
    pub max_lifetime_secs: Option<Option<i64>>,
}

/// Checks every field of `change` (all bad fields are reported at once)
/// and applies it to the user `id` (as the client wrote it), as `actor`
/// asked: `admin.user.change` records what changed.
#[tracing::instrument(skip_all, fields(user_id = id, actor_id = %actor.id))]
pub async fn change_user(
    state: &AppState,
    caller: &Caller,
    actor: &User,
    id: &str,
    change: UserChange,
) -> Result<User, Error> {
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
    let lifetime = match change.max_lifetime_secs {
        Some(Some(s)) if !(0..=366 * 86400).contains(&s) => {
            bad("max_lifetime_secs", "must be 0 (no limit) to 366 days in seconds, or null for the default");
            None
        }
        other => other.map(|s| s.and_then(|s| u64::try_from(s).ok())),
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let update = UserUpdate {
        max_lifetime_secs: lifetime,
        role,
        can_use_internal: change.can_use_internal,
        max_concurrent_sessions: limit,
        workspace_quota_bytes: quota,
        ..Default::default()
    };
    let before = state.store.user(id).await?.ok_or(Error::NotFound(Missing::User))?;
    let user = state.store.update_user(id, update).await?.ok_or(Error::NotFound(Missing::User))?;
    // Who may open what may have changed: no cached gate answer survives.
    // A user who lost a right (admin, the internal entitlement) also loses
    // every pass and open tunnel: each must pass the gate again. A change
    // that takes nothing away (a quota, a limit) leaves open IDEs alone.
    let lost_a_right = (before.is_admin() && !user.is_admin()) || (before.can_use_internal && !user.can_use_internal);
    if lost_a_right {
        state.revoke(Revoked::User(user.id));
    } else {
        state.gate_cache.forget_all();
    }
    let changes = changes(&before, &user);
    if !changes.is_empty() {
        state.events.emit(Event::AdminUserChange { actor_id: actor.id, user_id: user.id, changes }, &caller.events());
    }
    Ok(user)
}

/// An account an admin makes (`POST /admin/users`, the Users page): an
/// ordinary user unless `admin`, who is also entitled to internal sessions.
#[derive(Debug)]
pub struct NewAccount<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub admin: bool,
}

/// Makes the account, whatever the sign-up policy, as `actor` asked
/// (`admin.user.create`). The admin passes the password on; the user can
/// change it on the Account page.
#[tracing::instrument(skip_all, fields(actor_id = %actor.id))]
pub async fn create_user(state: &AppState, caller: &Caller, actor: &User, new: NewAccount<'_>) -> Result<User, Error> {
    let account = auth::new_user_async(parse_email(new.email)?, new.password).await?;
    let account = if new.admin { account.admin() } else { account };
    let user = state.store.create_user(account).await?;
    let event =
        Event::AdminUserCreate { actor_id: actor.id, user_id: user.id, email: user.email.to_string(), role: user.role };
    state.events.emit(event, &caller.events());
    Ok(user)
}

/// The fields an admin may change that differ between `before` and `after`.
fn changes(before: &User, after: &User) -> Vec<FieldChange> {
    let fields = [
        ("role", json!(before.role.as_str()), json!(after.role.as_str())),
        ("can_use_internal", json!(before.can_use_internal), json!(after.can_use_internal)),
        ("max_concurrent_sessions", json!(before.max_concurrent_sessions), json!(after.max_concurrent_sessions)),
        ("workspace_quota_bytes", json!(before.workspace_quota_bytes), json!(after.workspace_quota_bytes)),
        ("max_lifetime_secs", json!(before.max_lifetime_secs), json!(after.max_lifetime_secs)),
    ];
    fields
        .into_iter()
        .filter(|(_, b, a)| b != a)
        .map(|(field, before, after)| FieldChange { field, before, after })
        .collect()
}

/// Lets GPU `id` (as the client wrote it) take new sessions, or not (a
/// running session keeps it), as `actor` asked (`admin.gpu.change`); the
/// GPU as it is now.
#[tracing::instrument(skip(state, caller, actor), fields(actor_id = %actor.id))]
pub async fn set_gpu_enabled(
    state: &AppState,
    caller: &Caller,
    actor: &User,
    id: &str,
    enabled: bool,
) -> Result<GpuDevice, Error> {
    let id = GpuId(id.parse().map_err(|_| Error::NotFound(Missing::Gpu))?);
    let gpu = |gpus: Vec<GpuDevice>| gpus.into_iter().find(|g| g.id == id).ok_or(Error::NotFound(Missing::Gpu));
    let before = gpu(state.store.list_gpus().await?)?;
    if !state.store.set_gpu_enabled(id, enabled).await? {
        return Err(Error::NotFound(Missing::Gpu));
    }
    let after = gpu(state.store.list_gpus().await?)?;
    let event = Event::AdminGpuChange {
        actor_id: actor.id,
        gpu_id: id,
        enabled_before: before.enabled,
        enabled_after: after.enabled,
    };
    state.events.emit(event, &caller.events());
    Ok(after)
}

/// An event name as a log filter (`user.login`, `admin.user.change`, ...);
/// empty: any event.
pub fn event_name(e: &str) -> Result<Option<String>, Error> {
    let e = e.trim();
    if e.len() > 64 || !e.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_') {
        return Err(Error::field("event", "must be an event name such as user.login"));
    }
    Ok((!e.is_empty()).then(|| e.to_owned()))
}
