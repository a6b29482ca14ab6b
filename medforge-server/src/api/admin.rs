//! Admin routes: users, all sessions, GPUs. Every route needs the admin role.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, patch, post};
use axum::{Extension, Router};
use medforge_core::events::StopReason;
use medforge_core::model::{GpuId, Role, SessionId, User, UserId, UserSummary};
use medforge_core::store::{EventFilter, SessionFilter, UserUpdate};
use serde::Deserialize;
use serde_json::json;

use super::auth::current_user;
use super::sessions::{ListQuery, parse_list_query, request_stop, session_page};
use super::{ApiError, ApiJson, ApiResult, Envelope, FieldError, PageMeta, RequestId};
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/admin/users", get(list_users))
        .route("/api/v2/admin/users/{id}", patch(update_user))
        .route("/api/v2/admin/sessions", get(list_sessions))
        .route("/api/v2/admin/sessions/{id}/stop", post(stop_session))
        .route("/api/v2/admin/gpus", get(list_gpus))
        .route("/api/v2/admin/gpus/{id}", patch(update_gpu))
        .route("/api/v2/admin/events", get(list_events))
}

pub(crate) async fn admin(state: &AppState, headers: &HeaderMap) -> Result<User, ApiError> {
    let (user, _) = current_user(state, headers).await?;
    if !user.is_admin() {
        return Err(ApiError::forbidden("Admins only."));
    }
    Ok(user)
}

fn user_json(s: &UserSummary) -> serde_json::Value {
    let u = &s.user;
    json!({
        "user_id": u.id,
        "email": u.email,
        "role": u.role,
        "can_use_internal": u.can_use_internal,
        "max_concurrent_sessions": u.max_concurrent_sessions,
        "workspace_quota_bytes": u.workspace_quota_bytes,
        "created_at": super::sessions::rfc3339(u.created_at),
        "active_session_count": s.active_session_count,
    })
}

#[utoipa::path(get, path = "/api/v2/admin/users", tag = "admin", params(("limit" = Option<u32>, Query, description = "1..500, default 50"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")), responses((status = 200, description = "Users, newest first", body = super::openapi::EnvelopeDoc), (status = 400, description = "Invalid cursor", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 422, description = "Invalid query", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Admins only", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn list_users(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> ApiResult {
    admin(&state, &headers).await?;
    let params = parse_list_query(q)?;
    let limit = params.page.limit;
    let found = state.store.list_users(params.page).await?;
    let items: Vec<_> = found.items.iter().map(user_json).collect();
    Ok(Envelope::ok(items).page(PageMeta { limit, next_cursor: found.next.map(|c| c.encode()) }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    pub role: Option<String>,
    pub can_use_internal: Option<bool>,
    pub max_concurrent_sessions: Option<i64>,
    /// Bytes; 0: no quota; `null`: back to the configured default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub workspace_quota_bytes: Option<Option<i64>>,
}

/// Reads a field that may be `null` as `Some(None)`, so that a PATCH can
/// tell "set to null" from "leave alone" (absent: `None`, by `default`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[utoipa::path(patch, path = "/api/v2/admin/users/{id}", tag = "admin", params(("id" = String, Path, description = "user id (uuid)")), request_body = UserPatch, responses((status = 200, description = "Updated", body = super::openapi::EnvelopeDoc), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Admins only", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such user", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 422, description = "Invalid fields", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn update_user(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult {
    admin(&state, &headers).await?;
    let user = apply_user_patch(&state, &id, patch).await?;
    Ok(Envelope::ok(json!({
        "user_id": user.id,
        "email": user.email,
        "role": user.role,
        "can_use_internal": user.can_use_internal,
        "max_concurrent_sessions": user.max_concurrent_sessions,
        "workspace_quota_bytes": user.workspace_quota_bytes,
    })))
}

/// Checks and applies an admin's change to a user (the API's and the web
/// UI's).
pub(crate) async fn apply_user_patch(state: &AppState, id: &str, patch: UserPatch) -> Result<User, ApiError> {
    let not_found = || ApiError::not_found("User not found.");
    let id: UserId = id.parse().map_err(|_| not_found())?;
    let mut errors = Vec::new();
    let role = match patch.role.as_deref().map(str::parse::<Role>) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(_)) => {
            errors.push(FieldError { field: "role".into(), message: "must be user or admin".into() });
            None
        }
    };
    let limit = match patch.max_concurrent_sessions {
        None => None,
        Some(n) if (0..=64).contains(&n) => u32::try_from(n).ok(),
        Some(_) => {
            errors.push(FieldError { field: "max_concurrent_sessions".into(), message: "must be 0 to 64".into() });
            None
        }
    };
    let quota = match patch.workspace_quota_bytes {
        Some(Some(q)) if q < 0 => {
            errors.push(FieldError {
                field: "workspace_quota_bytes".into(),
                message: "must be 0 (no quota) or more bytes, or null for the default".into(),
            });
            None
        }
        other => other.map(|q| q.and_then(|q| u64::try_from(q).ok())),
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let update = UserUpdate {
        role,
        can_use_internal: patch.can_use_internal,
        max_concurrent_sessions: limit,
        workspace_quota_bytes: quota,
        ..Default::default()
    };
    let user = state.store.update_user(id, update).await?.ok_or_else(not_found)?;
    // Who may open which session may have changed: no cached gate answer survives.
    state.gate_cache.clear();
    Ok(user)
}

#[utoipa::path(get, path = "/api/v2/admin/sessions", tag = "admin", params(("limit" = Option<u32>, Query, description = "1..500, default 50"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"), ("status" = Option<String>, Query, description = "comma list"), ("exposure" = Option<String>, Query, description = "external or internal")), responses((status = 200, description = "All sessions, newest first", body = super::openapi::EnvelopeDoc), (status = 400, description = "Invalid cursor", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Admins only", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 422, description = "Invalid query", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn list_sessions(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> ApiResult {
    admin(&state, &headers).await?;
    let params = parse_list_query(q)?;
    let filter = SessionFilter { user_id: None, exposure: params.exposure, statuses: params.statuses };
    session_page(&state, filter, params.page).await
}

#[utoipa::path(post, path = "/api/v2/admin/sessions/{id}/stop", tag = "admin", params(("id" = String, Path, description = "session id (uuid)")), responses((status = 202, description = "Stop requested", body = super::openapi::EnvelopeDoc), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Admins only", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn stop_session(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
) -> ApiResult {
    admin(&state, &headers).await?;
    let not_found = || ApiError::not_found("Session not found.");
    let id: SessionId = id.parse().map_err(|_| not_found())?;
    let session = state.store.session(id).await?.ok_or_else(not_found)?;
    request_stop(&state, session, StopReason::Admin, rid).await
}

fn gpu_json(g: &medforge_core::model::GpuDevice) -> serde_json::Value {
    json!({
        "id": g.id,
        "enabled": g.enabled,
        "session_id": g.session_id,
        "user_id": g.user_id,
        "held_since": g.held_since.map(super::sessions::rfc3339),
    })
}

#[utoipa::path(get, path = "/api/v2/admin/gpus", tag = "admin", responses((status = 200, description = "GPUs and their holders", body = super::openapi::EnvelopeDoc), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Admins only", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn list_gpus(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult {
    admin(&state, &headers).await?;
    let gpus = state.store.list_gpus().await?;
    Ok(Envelope::ok(gpus.iter().map(gpu_json).collect::<Vec<_>>()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GpuPatch {
    enabled: bool,
}

#[utoipa::path(patch, path = "/api/v2/admin/gpus/{id}", tag = "admin", params(("id" = u32, Path, description = "GPU index")), request_body = GpuPatch, responses((status = 200, description = "Updated", body = super::openapi::EnvelopeDoc), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Admins only", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such GPU", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 422, description = "Invalid body", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn update_gpu(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<GpuPatch>,
) -> ApiResult {
    admin(&state, &headers).await?;
    let not_found = || ApiError::not_found("GPU not found.");
    let id = GpuId(id.parse().map_err(|_| not_found())?);
    if !state.store.set_gpu_enabled(id, patch.enabled).await? {
        return Err(not_found());
    }
    let gpu = state.store.list_gpus().await?.into_iter().find(|g| g.id == id).ok_or_else(not_found)?;
    Ok(Envelope::ok(gpu_json(&gpu)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    limit: Option<String>,
    cursor: Option<String>,
    event: Option<String>,
    user_id: Option<String>,
}

/// The event log, newest first, by type (`user.login`, ...) and user.
#[utoipa::path(get, path = "/api/v2/admin/events", tag = "admin", params(("limit" = Option<u32>, Query, description = "1..500, default 50"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"), ("event" = Option<String>, Query, description = "event name"), ("user_id" = Option<String>, Query, description = "uuid")), responses((status = 200, description = "The event log, newest first", body = super::openapi::EnvelopeDoc), (status = 400, description = "Invalid cursor", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Admins only", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 422, description = "Invalid query", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn list_events(
    State(state): State<Arc<AppState>>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult {
    admin(&state, &headers).await?;
    let user_id = q
        .user_id
        .as_deref()
        .map(|u| u.parse::<UserId>().map_err(|_| ApiError::field("user_id", "must be a uuid")))
        .transpose()?;
    let event = q.event.filter(|e| !e.is_empty());
    if let Some(e) = &event
        && (e.len() > 64 || !e.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'))
    {
        return Err(ApiError::field("event", "must be an event name such as user.login"));
    }
    let params = parse_list_query(ListQuery { limit: q.limit, cursor: q.cursor, status: None, exposure: None })?;
    let limit = params.page.limit;
    let found = state.store.list_events(&EventFilter { event, user_id }, params.page).await?;
    Ok(Envelope::ok(found.items).page(PageMeta { limit, next_cursor: found.next.map(|c| c.encode()) }))
}
