//! `GET /healthz`: the database and the container runtime answer, and the
//! firewall's rules are in place (checked live: a missing rule shows at
//! once, before the background check puts it back).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::schemas::EnvelopeDoc;
use super::views::{Health, HealthChecks};
use crate::http::envelope::Envelope;
use crate::service::{AppState, isolation};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/healthz", get(healthz))
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses(
        (status = 200, description = "Healthy", body = EnvelopeDoc<Health>),
        (status = 503, description = "Degraded", body = EnvelopeDoc<Health>),
    )
)]
pub async fn healthz(State(state): State<Arc<AppState>>) -> Envelope {
    let database = state.store.ping().await.is_ok();
    let runtime = state.runtime.list_managed().await.is_ok();
    let firewall = isolation::in_place(&state).await;
    let ok = database && runtime && firewall;
    let body =
        Health { status: if ok { "ok" } else { "degraded" }, checks: HealthChecks { database, runtime, firewall } };
    Envelope::with_status(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}
