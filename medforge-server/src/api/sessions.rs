//! Sessions per exposure: `/api/v2/{external|internal}/sessions...`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Router};
use medforge_core::events::{EventContext, StopReason};
use medforge_core::lifecycle::{LifecycleError, StopOutcome};
use medforge_core::model::{self, Exposure, PackId, Session, SessionId, SessionStatus, User};
use medforge_core::store::{AllocationError, AllocationRequest, Cursor, PageRequest, SessionFilter};
use serde::{Deserialize, Serialize};

use super::auth::current_user;
use super::{ApiError, ApiResult, Envelope, FieldError, PageMeta, RequestId};
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/{exposure}/sessions", post(create).get(list))
        .route("/api/v2/{exposure}/sessions/current", get(current))
        .route("/api/v2/{exposure}/sessions/{id}", get(get_one))
        .route("/api/v2/{exposure}/sessions/{id}/stop", post(stop))
        .route("/api/v2/{exposure}/sessions/{id}/snapshots", get(snapshots))
        .route("/api/v2/{exposure}/sessions/{id}/events", get(progress))
}

fn exposure(path: &str) -> Result<Exposure, ApiError> {
    path.parse().map_err(|_| ApiError::not_found("No such route."))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    pack_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct Created {
    message: &'static str,
    session: Session,
}

fn allocation_error(e: AllocationError) -> ApiError {
    let text = e.to_string();
    match e {
        AllocationError::NotEntitled => ApiError::forbidden(text),
        AllocationError::LimitReached { .. } | AllocationError::NoGpusAvailable | AllocationError::Contention => {
            ApiError::conflict(text)
        }
        AllocationError::PackNotFound => ApiError::not_found(text),
        AllocationError::PackDeprecated => ApiError::conflict(text),
        AllocationError::PackExposureMismatch { .. } => ApiError::field("pack_id", text),
        AllocationError::UserNotFound => ApiError::unauthorized(),
        AllocationError::Store(s) => s.into(),
    }
}

#[utoipa::path(post, path = "/api/v2/{exposure}/sessions", tag = "sessions", params(("exposure" = String, Path, description = "external or internal")), request_body = CreateBody, responses((status = 201, description = "Session allocated and starting", body = super::openapi::EnvelopeDoc), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "No entitlement", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "Pack not found", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 409, description = "Limit reached or no GPUs", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 422, description = "Invalid body", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Path(exposure_path): Path<String>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let exposure = exposure(&exposure_path)?;
    let (user, _) = current_user(&state, &headers).await?;
    // An empty body is `{}`; anything else must be exactly the documented fields.
    let body: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::field("body", e.to_string()))?
    };
    let pack_id = body
        .pack_id
        .map(|p| p.parse::<PackId>().map_err(|_| ApiError::field("pack_id", "must be a uuid")))
        .transpose()?;
    if !user.may_use(exposure) {
        return Err(ApiError::forbidden("Internal sessions need the internal entitlement."));
    }
    let session = start(&state, &user, exposure, pack_id, rid).await.map_err(|e| match e {
        LifecycleError::Allocation(a) => allocation_error(a),
        other => ApiError::internal(other),
    })?;
    Ok(Envelope::with_status(StatusCode::CREATED, Created { message: "Session started.", session }))
}

/// Allocates a session and starts its container in the background (the
/// API's and the web UI's start): the row, `starting`. The client follows
/// progress by polling the session or its event stream.
pub(crate) async fn start(
    state: &AppState,
    user: &User,
    exposure: Exposure,
    pack_id: Option<PackId>,
    rid: String,
) -> Result<Session, LifecycleError> {
    let request = AllocationRequest { user_id: user.id, exposure, pack_id, now: model::now() };
    let session = state.sessions.allocate(request).await?;
    let sessions = state.sessions.clone();
    let started = session.clone();
    tokio::spawn(async move {
        let clock = std::time::Instant::now();
        let outcome = match sessions.launch(started, &EventContext::request(rid)).await {
            Ok(_) => "started",
            Err(e) => {
                tracing::warn!(error = %e, "session start failed");
                "failed"
            }
        };
        metrics::histogram!(super::metrics::SPAWN_SECONDS, "outcome" => outcome).record(clock.elapsed().as_secs_f64());
    });
    Ok(session)
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub status: Option<String>,
    pub exposure: Option<String>,
}

/// A listing's query, checked: the page, and the status and exposure filters.
pub(crate) struct ListParams {
    pub page: PageRequest,
    pub statuses: Vec<SessionStatus>,
    pub exposure: Option<Exposure>,
}

pub(crate) fn parse_list_query(q: ListQuery) -> Result<ListParams, ApiError> {
    let mut errors = Vec::new();
    let limit = match q.limit.as_deref().map(str::parse::<u32>) {
        None => 50,
        Some(Ok(n)) if (1..=PageRequest::MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            errors.push(FieldError { field: "limit".into(), message: "must be an integer from 1 to 500".into() });
            0
        }
    };
    let mut statuses = Vec::new();
    for part in q.status.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<SessionStatus>() {
            Ok(s) => statuses.push(s),
            Err(_) => errors.push(FieldError {
                field: "status".into(),
                message: format!("unknown status {part:?}; use starting, running, stopping, stopped, error"),
            }),
        }
    }
    let exposure = match q.exposure.as_deref().map(str::parse::<Exposure>) {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(_)) => {
            errors.push(FieldError { field: "exposure".into(), message: "must be external or internal".into() });
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let after = q.cursor.map(|c| Cursor::decode(&c).map_err(|_| ApiError::invalid_cursor())).transpose()?;
    Ok(ListParams { page: PageRequest { limit, after }, statuses, exposure })
}

/// A page of sessions as the list routes answer it.
pub(crate) async fn session_page(state: &AppState, filter: SessionFilter, page: PageRequest) -> ApiResult {
    let limit = page.limit;
    let found = state.store.list_sessions(&filter, page).await?;
    Ok(Envelope::ok(found.items).page(PageMeta { limit, next_cursor: found.next.map(|c| c.encode()) }))
}

#[utoipa::path(get, path = "/api/v2/{exposure}/sessions", tag = "sessions", params(("exposure" = String, Path, description = "external or internal"), ("limit" = Option<u32>, Query, description = "1..500, default 50"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"), ("status" = Option<String>, Query, description = "comma list of statuses")), responses((status = 200, description = "The caller's sessions, newest first", body = super::openapi::EnvelopeDoc), (status = 400, description = "Invalid cursor", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "Unknown exposure", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 422, description = "Invalid query", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Path(exposure_path): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> ApiResult {
    let exposure = exposure(&exposure_path)?;
    let (user, _) = current_user(&state, &headers).await?;
    let params = parse_list_query(q)?;
    let filter = SessionFilter { user_id: Some(user.id), exposure: Some(exposure), statuses: params.statuses };
    session_page(&state, filter, params.page).await
}

#[utoipa::path(get, path = "/api/v2/{exposure}/sessions/current", tag = "sessions", params(("exposure" = String, Path, description = "external or internal")), responses((status = 200, description = "The newest active session, or null", body = super::openapi::EnvelopeDoc), (status = 404, description = "Unknown exposure", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn current(
    State(state): State<Arc<AppState>>,
    Path(exposure_path): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let exposure = exposure(&exposure_path)?;
    let (user, _) = current_user(&state, &headers).await?;
    let filter =
        SessionFilter { user_id: Some(user.id), exposure: Some(exposure), statuses: SessionStatus::ACTIVE.to_vec() };
    let found = state.store.list_sessions(&filter, PageRequest::first(1)).await?;
    Ok(Envelope::ok(serde_json::json!({ "session": found.items.into_iter().next() })))
}

/// The session at `{exposure}/sessions/{id}`, if the caller may see it.
async fn visible_session(state: &AppState, exposure_path: &str, id: &str, user: &User) -> Result<Session, ApiError> {
    let exposure = exposure(exposure_path)?;
    let not_found = || ApiError::not_found("Session not found.");
    let id: SessionId = id.parse().map_err(|_| not_found())?;
    let session = state.store.session(id).await?.filter(|s| s.exposure == exposure).ok_or_else(not_found)?;
    if session.user_id != user.id && !user.is_admin() {
        return Err(ApiError::forbidden("Session access denied."));
    }
    Ok(session)
}

#[utoipa::path(get, path = "/api/v2/{exposure}/sessions/{id}", tag = "sessions", params(("exposure" = String, Path, description = "external or internal"), ("id" = String, Path, description = "session id (uuid)")), responses((status = 200, description = "The session", body = super::openapi::EnvelopeDoc), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Not yours", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn get_one(
    State(state): State<Arc<AppState>>,
    Path((exposure_path, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (user, _) = current_user(&state, &headers).await?;
    Ok(Envelope::ok(visible_session(&state, &exposure_path, &id, &user).await?))
}

#[utoipa::path(post, path = "/api/v2/{exposure}/sessions/{id}/stop", tag = "sessions", params(("exposure" = String, Path, description = "external or internal"), ("id" = String, Path, description = "session id (uuid)")), responses((status = 202, description = "Stop requested, or already terminal", body = super::openapi::EnvelopeDoc), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Not yours", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn stop(
    State(state): State<Arc<AppState>>,
    Path((exposure_path, id)): Path<(String, String)>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
) -> ApiResult {
    let (user, _) = current_user(&state, &headers).await?;
    let session = visible_session(&state, &exposure_path, &id, &user).await?;
    let reason = if session.user_id == user.id { StopReason::User } else { StopReason::Admin };
    request_stop(&state, session, reason, rid).await
}

/// Claims the stop at once, so that the gate refuses the session from this
/// answer on, then stops it in the background (202): the rest takes up to
/// the grace period plus a snapshot.
pub(crate) async fn request_stop(
    state: &Arc<AppState>,
    session: Session,
    reason: StopReason,
    rid: String,
) -> ApiResult {
    let message = if stop_in_background(state, session, reason, rid).await? {
        "Session stop requested."
    } else {
        "Session already terminal."
    };
    Ok(Envelope::with_status(StatusCode::ACCEPTED, serde_json::json!({ "message": message })))
}

/// The stop itself (the API's and the web UI's): false when the session
/// was already over.
pub(crate) async fn stop_in_background(
    state: &Arc<AppState>,
    session: Session,
    reason: StopReason,
    rid: String,
) -> Result<bool, ApiError> {
    let claimed = match state.sessions.claim_stop(session.id).await.map_err(ApiError::internal)? {
        StopOutcome::Stopped(claimed) => claimed,
        StopOutcome::AlreadyTerminal(_) => return Ok(false),
    };
    state.gate_cache.forget_slug(claimed.slug.as_str());
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = state.sessions.finish_stop(&claimed, reason, &EventContext::request(rid)).await {
            tracing::warn!(session_id = %claimed.id, error = %e, "session stop failed");
        }
    });
    Ok(true)
}

#[utoipa::path(get, path = "/api/v2/{exposure}/sessions/{id}/snapshots", tag = "sessions", params(("exposure" = String, Path, description = "external or internal"), ("id" = String, Path, description = "session id (uuid)")), responses((status = 200, description = "The workspace's snapshots", body = super::openapi::EnvelopeDoc), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Not yours", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 503, description = "Workspace storage unavailable", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn snapshots(
    State(state): State<Arc<AppState>>,
    Path((exposure_path, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (user, _) = current_user(&state, &headers).await?;
    let session = visible_session(&state, &exposure_path, &id, &user).await?;
    // Storage trouble (ZFS down) is the server's, and passing: 503, with
    // the cause in the log only.
    let list = state.storage.list_snapshots(session.user_id).await.map_err(|e| {
        tracing::error!(session_id = %session.id, error = %e, "listing snapshots failed");
        ApiError::http(StatusCode::SERVICE_UNAVAILABLE, "Workspace storage is unavailable; try again later.")
    })?;
    let items: Vec<_> = list
        .into_iter()
        .map(|s| serde_json::json!({ "name": s.name.to_string(), "created_at": rfc3339(s.created_at) }))
        .collect();
    Ok(Envelope::ok(items))
}

pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The start-up steps a client can show, derived from the row.
pub(crate) fn steps(s: &Session) -> Vec<&'static str> {
    let mut done = vec!["gpu_allocated"];
    if s.workspace_zfs.is_some() {
        done.push("workspace_ready");
    }
    if s.container_id.is_some() {
        done.push("container_started");
    }
    if s.started_at.is_some() {
        done.push("code_server_answering");
    }
    done
}

/// `text/event-stream` of a session's progress: a `progress` event whenever
/// the row changes, until it is `running` or over, then the stream ends.
#[utoipa::path(get, path = "/api/v2/{exposure}/sessions/{id}/events", tag = "sessions", params(("exposure" = String, Path, description = "external or internal"), ("id" = String, Path, description = "session id (uuid)")), responses((status = 200, description = "text/event-stream of progress events", content_type = "text/event-stream"), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Not yours", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such session", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn progress(
    State(state): State<Arc<AppState>>,
    Path((exposure_path, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    let (user, _) = current_user(&state, &headers).await?;
    let first = visible_session(&state, &exposure_path, &id, &user).await?;
    let deadline = tokio::time::Instant::now() + state.sessions.ready_timeout() + std::time::Duration::from_secs(60);
    // (state, last row sent, done)
    let stream =
        futures::stream::unfold((state, None::<Session>, Some(first)), move |(state, last, next)| async move {
            let mut current = next?;
            // Wait for a change (or the end of patience).
            while last.as_ref() == Some(&current) {
                if tokio::time::Instant::now() > deadline || current.status != SessionStatus::Starting {
                    return None;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                current = state.store.session(current.id).await.ok().flatten()?;
            }
            let payload =
                serde_json::json!({ "status": current.status, "steps": steps(&current), "session": &current });
            let event = SseEvent::default().event("progress").data(payload.to_string());
            let finished = current.status != SessionStatus::Starting;
            let next = if finished { None } else { Some(current.clone()) };
            Some((Ok::<_, std::convert::Infallible>(event), (state, Some(current), next)))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
