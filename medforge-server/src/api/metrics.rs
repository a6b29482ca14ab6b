//! `GET /metrics`: Prometheus text, on a listener of its own
//! (`metrics_listen`), never the main one. Gauges of state (sessions by
//! status, GPUs) are read from the database at scrape time; counters and
//! histograms are recorded where things happen (`crate::telemetry`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use medforge_core::model::SessionStatus;

use crate::service::{AppState, Error};

/// The metrics listener's whole app.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new().route("/metrics", get(render)).with_state(state)
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text", content_type = "text/plain"))
)]
pub async fn render(State(state): State<Arc<AppState>>) -> Result<Response, Error> {
    let counts = state.store.session_counts().await?;
    for status in SessionStatus::ALL {
        let n = counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
        metrics::gauge!("medforge_sessions", "status" => status.as_str()).set(n as f64);
    }
    let gpus = state.store.list_gpus().await?;
    metrics::gauge!("medforge_gpus_enabled").set(gpus.iter().filter(|g| g.enabled).count() as f64);
    metrics::gauge!("medforge_gpus_in_use").set(gpus.iter().filter(|g| g.session_id.is_some()).count() as f64);
    // Per GPU, never per user: who holds what is the board's business.
    for g in &gpus {
        let gpu = g.id.to_string();
        metrics::gauge!("medforge_gpu_held", "gpu" => gpu.clone()).set(if g.session_id.is_some() { 1.0 } else { 0.0 });
        if let Some(reading) = state.gpu_monitor.latest(g.id.0) {
            let s = &reading.sample;
            metrics::gauge!("medforge_gpu_utilization_ratio", "gpu" => gpu.clone()).set(s.utilization_ratio());
            metrics::gauge!("medforge_gpu_memory_used_bytes", "gpu" => gpu.clone()).set(s.memory_used_bytes as f64);
            metrics::gauge!("medforge_gpu_memory_total_bytes", "gpu" => gpu.clone()).set(s.memory_total_bytes as f64);
            if let Some(t) = s.temperature_c {
                metrics::gauge!("medforge_gpu_temperature_celsius", "gpu" => gpu.clone()).set(f64::from(t));
            }
            if let Some(w) = s.power_watts {
                metrics::gauge!("medforge_gpu_power_watts", "gpu" => gpu).set(w);
            }
        }
    }
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    Ok(response)
}
