//! `GET /metrics`: Prometheus text. Counters and histograms are recorded
//! where things happen (HTTP latency here, gate decisions in the gate,
//! spawn durations around session starts); gauges of state (sessions by
//! status, GPUs) are read from the database at scrape time. Labels stay
//! low-cardinality: route templates, never ids.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use medforge_core::model::SessionStatus;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::ApiError;
use crate::state::AppState;

pub const SPAWN_SECONDS: &str = "medforge_session_spawn_seconds";
pub const GATE_DECISIONS: &str = "medforge_gate_decisions_total";
const HTTP_SECONDS: &str = "medforge_http_request_duration_seconds";

/// Installs the process-wide recorder; call once, before serving.
pub fn install() -> Result<PrometheusHandle, String> {
    let spawn_buckets = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0];
    let http_buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(SPAWN_SECONDS.into()), &spawn_buckets)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(HTTP_SECONDS.into()), &http_buckets))
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| format!("metrics: {e}"))
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/metrics", get(render))
}

#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
pub(crate) async fn render(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let counts = state.store.session_counts().await?;
    for status in SessionStatus::ALL {
        let n = counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
        metrics::gauge!("medforge_sessions", "status" => status.as_str()).set(n as f64);
    }
    let gpus = state.store.list_gpus().await?;
    metrics::gauge!("medforge_gpus_enabled").set(gpus.iter().filter(|g| g.enabled).count() as f64);
    metrics::gauge!("medforge_gpus_in_use").set(gpus.iter().filter(|g| g.session_id.is_some()).count() as f64);
    let text = state.metrics.render();
    let mut response = text.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    Ok(response)
}

/// Latency and count per route template (a route layer: it runs after
/// routing, where the template is known).
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_SECONDS, "route" => route.clone(), "method" => method.clone())
        .record(start.elapsed().as_secs_f64());
    metrics::counter!("medforge_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}
