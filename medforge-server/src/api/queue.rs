//! The wait queue for a GPU: `/api/v2/{exposure}/queue` (the caller's own
//! place) and `/api/v2/admin/queue` (everyone's).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::Deserialize;

use super::json;
use super::schemas::{AdminErrors, EmptyBody, EnvelopeDoc, InvalidErrors, JsonErrors, ProblemDoc, SignedInErrors};
use super::sessions::InExposure;
use crate::http::envelope::Envelope;
use crate::http::extract::{Admin, SignedIn};
use crate::service::accounts::Caller;
use crate::service::queue::{self, QueueStatus};
use crate::service::{AppState, Error};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/{exposure}/queue", get(mine).post(join).delete(leave))
        .route("/api/v2/admin/queue", get(everyone))
        .route("/api/v2/admin/queue/{id}", delete(remove))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// The pack to start (default: the default pack).
    pack_id: Option<String>,
    /// Start the session as soon as a GPU is offered ("start for me").
    #[serde(default)]
    auto_start: bool,
}

#[utoipa::path(
    post,
    path = "/api/v2/{exposure}/queue",
    tag = "queue",
    params(("exposure" = String, Path, description = "external or internal")),
    request_body = JoinBody,
    responses(
        (status = 201, description = "In the queue: position, state, estimate", body = EnvelopeDoc<QueueStatus>),
        (status = 403, description = "No entitlement", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "Unknown exposure", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "Already queued, or at the session limit", body = ProblemDoc, content_type = "application/problem+json"),
        SignedInErrors,
        InvalidErrors,
        JsonErrors,
    )
)]
pub async fn join(
    State(state): State<Arc<AppState>>,
    InExposure(exposure): InExposure,
    caller: Caller,
    SignedIn(user): SignedIn,
    body: Bytes,
) -> Result<Envelope, Error> {
    let body: JoinBody = json::optional_body(&body)?;
    let pack_id = json::pack_id(body.pack_id)?;
    let status = queue::join(&state, &user, exposure, pack_id, body.auto_start, &caller.request_id).await?;
    Ok(Envelope::with_status(StatusCode::CREATED, status))
}

#[utoipa::path(
    get,
    path = "/api/v2/{exposure}/queue",
    tag = "queue",
    params(("exposure" = String, Path, description = "external or internal")),
    responses(
        (status = 200, description = "The caller's place: position, waiting or offered, offered_until, estimate", body = EnvelopeDoc<QueueStatus>),
        (status = 404, description = "Not in this queue, or unknown exposure", body = ProblemDoc, content_type = "application/problem+json"),
        SignedInErrors,
    )
)]
pub async fn mine(
    State(state): State<Arc<AppState>>,
    InExposure(exposure): InExposure,
    SignedIn(user): SignedIn,
) -> Result<Envelope, Error> {
    let status = queue::status(&state, &user, exposure).await?;
    Ok(Envelope::ok(status.ok_or(Error::NotFound(crate::service::Missing::QueueEntry))?))
}

#[utoipa::path(
    delete,
    path = "/api/v2/{exposure}/queue",
    tag = "queue",
    params(("exposure" = String, Path, description = "external or internal")),
    request_body = EmptyBody,
    responses(
        (status = 200, description = "Left the queue (an offered GPU passes on)", body = EnvelopeDoc<medforge_core::model::QueueEntry>),
        (status = 404, description = "Not in this queue, or unknown exposure", body = ProblemDoc, content_type = "application/problem+json"),
        SignedInErrors,
        JsonErrors,
    )
)]
pub async fn leave(
    State(state): State<Arc<AppState>>,
    InExposure(exposure): InExposure,
    caller: Caller,
    SignedIn(user): SignedIn,
) -> Result<Envelope, Error> {
    Ok(Envelope::ok(queue::leave(&state, &user, exposure, &caller.request_id).await?))
}

#[utoipa::path(
    get,
    path = "/api/v2/admin/queue",
    tag = "admin",
    responses(
        (status = 200, description = "Every entry: offered ones first, then the waiting in the order they are served", body = EnvelopeDoc<Vec<QueueStatus>>),
        AdminErrors,
    )
)]
pub async fn everyone(State(state): State<Arc<AppState>>, _: Admin) -> Result<Envelope, Error> {
    Ok(Envelope::ok(queue::everyone(&state).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v2/admin/queue/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "queue entry id (uuid)")),
    request_body = EmptyBody,
    responses(
        (status = 200, description = "Removed (an offered GPU passes on)", body = EnvelopeDoc<medforge_core::model::QueueEntry>),
        (status = 404, description = "No such entry", body = ProblemDoc, content_type = "application/problem+json"),
        AdminErrors,
        JsonErrors,
    )
)]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
    Admin(admin): Admin,
) -> Result<Envelope, Error> {
    Ok(Envelope::ok(queue::remove_by_admin(&state, &admin, &id, &caller.request_id).await?))
}
