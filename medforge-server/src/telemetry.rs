//! The Prometheus recorder and the names of what is recorded where things
//! happen (HTTP latency in `crate::http`, gate decisions in the
//! gatekeeper, spawn durations around session starts). Gauges of state
//! are read at scrape time (`crate::api::metrics`). Labels stay
//! low-cardinality: route templates, never ids.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const SPAWN_SECONDS: &str = "medforge_session_spawn_seconds";
pub const GATE_DECISIONS: &str = "medforge_gate_decisions_total";
pub const HTTP_SECONDS: &str = "medforge_http_request_duration_seconds";
pub const HTTP_REQUESTS: &str = "medforge_http_requests_total";

/// Installs the process-wide recorder; call once, before serving.
pub fn install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let spawn_buckets = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0];
    let http_buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(SPAWN_SECONDS.into()), &spawn_buckets)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(HTTP_SECONDS.into()), &http_buckets))
        .and_then(PrometheusBuilder::install_recorder)
}
