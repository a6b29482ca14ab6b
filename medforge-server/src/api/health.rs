//! `GET /healthz`: the database and the container runtime answer, and the
//! firewall's rules are in place (checked live: a missing rule shows at
//! once, before the background check puts it back).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::schemas::EnvelopeDoc;
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
        (status = 200, description = "Healthy", body = EnvelopeDoc),
        (status = 503, description = "Degraded", body = EnvelopeDoc),
    )
)]
pub async fn healthz(State(state): State<Arc<AppState>>) -> Envelope {
    let database = state.store.ping().await.is_ok();
    let runtime = state.runtime.list_managed().await.is_ok();
    let firewall = isolation::in_place(&state).await;
    let ok = database && runtime && firewall;
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "checks": { "database": database, "runtime": runtime, "firewall": firewall },
    });
    Envelope::with_status(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}
