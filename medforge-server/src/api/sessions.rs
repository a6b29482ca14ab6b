//! Sessions per exposure: `/api/v2/{external|internal}/sessions...`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use medforge_core::model::{Exposure, Session, SessionStatus};
use medforge_core::store::{PageRequest, SessionFilter};
use serde::Deserialize;

use super::json;
use super::paging::{self, ListQuery};
use super::schemas::{
    EmptyBody, EnvelopeDoc, InvalidErrors, JsonErrors, PageErrors, PageParams, ProblemDoc, SessionErrors,
    SignedInErrors,
};
use super::views::{Created, Current, Message, SnapshotView};
use crate::http::envelope::Envelope;
use crate::http::extract::SignedIn;
use crate::service::accounts::Caller;
use crate::service::sessions::{self, StopRequest};
use crate::service::{AppState, Error, Missing};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/{exposure}/sessions", post(create).get(list))
        .route("/api/v2/{exposure}/sessions/current", get(current))
        .route("/api/v2/{exposure}/sessions/{id}", get(get_one))
        .route("/api/v2/{exposure}/sessions/{id}/stop", post(stop))
        .route("/api/v2/{exposure}/sessions/{id}/extend", post(extend))
        .route("/api/v2/{exposure}/sessions/{id}/snapshots", get(snapshots))
        .route("/api/v2/{exposure}/sessions/{id}/events", get(progress))
}

/// The `{exposure}` of the path: anything else is no route.
fn exposure(path: &str) -> Result<Exposure, Error> {
    path.parse().map_err(|_| Error::NotFound(Missing::Route))
}

/// The `{exposure}` of a path that has nothing else, checked before the
/// login (an unknown exposure is no route, for anyone).
#[derive(Debug)]
pub struct InExposure(pub Exposure);

impl<S: Send + Sync> FromRequestParts<S> for InExposure {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(path) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|_| Error::NotFound(Missing::Route))?;
        Ok(Self(exposure(&path)?))
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    pack_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v2/{exposure}/sessions",
    tag = "sessions",
    params(("exposure" = String, Path, description = "external or internal")),
    request_body = CreateBody,
    responses(
        (status = 201, description = "Session allocated and starting", body = EnvelopeDoc<Created>),
        (status = 403, description = "No entitlement", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "Pack not found", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "Limit reached or no GPUs", body = ProblemDoc, content_type = "application/problem+json"),
        SignedInErrors,
        InvalidErrors,
        JsonErrors,
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    InExposure(exposure): InExposure,
    caller: Caller,
    SignedIn(user): SignedIn,
    body: Bytes,
) -> Result<Envelope, Error> {
    let body: CreateBody = json::optional_body(&body)?;
    let pack_id = json::pack_id(body.pack_id)?;
    let session = sessions::start(&state, &user, exposure, pack_id, &caller.request_id).await?;
    Ok(Envelope::with_status(StatusCode::CREATED, Created { message: "Session started.", session }))
}

#[utoipa::path(
    get,
    path = "/api/v2/{exposure}/sessions",
    tag = "sessions",
    params(
        ("exposure" = String, Path, description = "external or internal"),
        PageParams,
        ("status" = Option<String>, Query, description = "comma list of statuses"),
    ),
    responses(
        (status = 200, description = "The caller's sessions, newest first", body = EnvelopeDoc<Vec<Session>>),
        (status = 404, description = "Unknown exposure", body = ProblemDoc, content_type = "application/problem+json"),
        SignedInErrors,
        PageErrors,
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    InExposure(exposure): InExposure,
    Query(q): Query<ListQuery>,
    SignedIn(user): SignedIn,
) -> Result<Envelope, Error> {
    let params = paging::parse(q)?;
    let filter = SessionFilter { user_id: Some(user.id), exposure: Some(exposure), statuses: params.statuses };
    paging::sessions(&state, filter, params.page).await
}

#[utoipa::path(
    get,
    path = "/api/v2/{exposure}/sessions/current",
    tag = "sessions",
    params(("exposure" = String, Path, description = "external or internal")),
    responses(
        (status = 200, description = "The newest active session, or null", body = EnvelopeDoc<Current>),
        (status = 404, description = "Unknown exposure", body = ProblemDoc, content_type = "application/problem+json"),
        SignedInErrors,
    )
)]
pub async fn current(
    State(state): State<Arc<AppState>>,
    InExposure(exposure): InExposure,
    SignedIn(user): SignedIn,
) -> Result<Envelope, Error> {
    let filter =
        SessionFilter { user_id: Some(user.id), exposure: Some(exposure), statuses: SessionStatus::ACTIVE.to_vec() };
    let found = state.store.list_sessions(&filter, PageRequest::first(1)).await?;
    Ok(Envelope::ok(Current { session: found.items.into_iter().next() }))
}

/// The path of a route on one session.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    /// external or internal
    exposure: String,
    /// session id (uuid)
    id: String,
}

/// The session at `{exposure}/sessions/{id}`, if the caller may see it.
async fn visible(state: &AppState, user: &medforge_core::model::User, path: &SessionPath) -> Result<Session, Error> {
    let exposure = exposure(&path.exposure)?;
    sessions::visible(state, user, &path.id, Some(exposure)).await
}

#[utoipa::path(
    get,
    path = "/api/v2/{exposure}/sessions/{id}",
    tag = "sessions",
    params(SessionPath),
    responses(
        (status = 200, description = "The session", body = EnvelopeDoc<Session>),
        SessionErrors,
    )
)]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Path(path): Path<SessionPath>,
    SignedIn(user): SignedIn,
) -> Result<Envelope, Error> {
    Ok(Envelope::ok(visible(&state, &user, &path).await?))
}

#[utoipa::path(
    post,
    path = "/api/v2/{exposure}/sessions/{id}/stop",
    tag = "sessions",
    params(SessionPath),
    request_body = EmptyBody,
    responses(
        (status = 202, description = "Stop requested, or already terminal", body = EnvelopeDoc<Message>),
        SessionErrors,
        JsonErrors,
    )
)]
pub async fn stop(
    State(state): State<Arc<AppState>>,
    Path(path): Path<SessionPath>,
    caller: Caller,
    SignedIn(user): SignedIn,
) -> Result<Envelope, Error> {
    let session = visible(&state, &user, &path).await?;
    let outcome = sessions::request_stop(&state, session, &user, &caller.request_id).await?;
    Ok(stop_answer(outcome))
}

#[utoipa::path(
    post,
    path = "/api/v2/{exposure}/sessions/{id}/extend",
    tag = "sessions",
    params(SessionPath),
    request_body = EmptyBody,
    responses(
        (status = 200, description = "Extended: the session with its new expires_at", body = EnvelopeDoc<Session>),
        (status = 409, description = "Not running, extended as often as it may be, or others wait", body = ProblemDoc, content_type = "application/problem+json"),
        SessionErrors,
        JsonErrors,
    )
)]
pub async fn extend(
    State(state): State<Arc<AppState>>,
    Path(path): Path<SessionPath>,
    caller: Caller,
    SignedIn(user): SignedIn,
) -> Result<Envelope, Error> {
    let session = visible(&state, &user, &path).await?;
    Ok(Envelope::ok(sessions::extend(&state, &session, &caller.request_id).await?))
}

/// 202, and what the stop request found (the admin's stop answers alike).
pub fn stop_answer(outcome: StopRequest) -> Envelope {
    let message = match outcome {
        StopRequest::Claimed => "Session stop requested.",
        StopRequest::AlreadyTerminal => "Session already terminal.",
    };
    Envelope::with_status(StatusCode::ACCEPTED, Message { message })
}

#[utoipa::path(
    get,
    path = "/api/v2/{exposure}/sessions/{id}/snapshots",
    tag = "sessions",
    params(SessionPath),
    responses(
        (status = 200, description = "The workspace's snapshots", body = EnvelopeDoc<Vec<SnapshotView>>),
        (status = 403, description = "Not yours", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Workspace storage unavailable", body = ProblemDoc, content_type = "application/problem+json"),
        SessionErrors,
    )
)]
pub async fn snapshots(
    State(state): State<Arc<AppState>>,
    Path(path): Path<SessionPath>,
    SignedIn(user): SignedIn,
) -> Result<Envelope, Error> {
    let session = visible(&state, &user, &path).await?;
    let list = sessions::snapshots(&state, session.user_id).await?;
    Ok(Envelope::ok(list.iter().map(SnapshotView::from).collect::<Vec<_>>()))
}

/// `text/event-stream` of a session's progress: a `progress` event whenever
/// the row changes, until it is `running` or over, then the stream ends.
#[utoipa::path(
    get,
    path = "/api/v2/{exposure}/sessions/{id}/events",
    tag = "sessions",
    params(SessionPath),
    responses(
        (status = 200, description = "text/event-stream of progress events", content_type = "text/event-stream"),
        SessionErrors,
    )
)]
pub async fn progress(
    State(state): State<Arc<AppState>>,
    Path(path): Path<SessionPath>,
    SignedIn(user): SignedIn,
) -> Result<Response, Error> {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    let first = visible(&state, &user, &path).await?;
    let deadline = tokio::time::Instant::now() + state.lifecycle.ready_timeout() + std::time::Duration::from_secs(60);
    // (state, last row sent, next row to send)
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
            let payload = serde_json::json!({
                "status": current.status,
                "steps": sessions::steps(&current),
                "session": &current,
            });
            let event = SseEvent::default().event("progress").data(payload.to_string());
            let finished = current.status != SessionStatus::Starting;
            let next = if finished { None } else { Some(current.clone()) };
            Some((Ok::<_, std::convert::Infallible>(event), (state, Some(current), next)))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
