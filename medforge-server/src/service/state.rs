//! [`AppState`]: the configuration and the core services a request may
//! need, built once by `crate::stack` and shared by every adapter.

use std::sync::Arc;

use medforge_core::auth::Authenticator;
use medforge_core::events::EventSink;
use medforge_core::firewall::Firewall;
use medforge_core::lifecycle::Lifecycle;
use medforge_core::runtime::ContainerRuntime;
use medforge_core::storage::Storage;
use medforge_core::store::Store;

use medforge_core::telemetry::GpuTelemetry;

use super::activity::Activity;
use super::gate_cache::GateCache;
use super::gpu_monitor::GpuMonitor;
use super::limiter::RateLimiter;
use super::passes::{Passes, Revoked};
use crate::config::Config;

#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub storage: Arc<dyn Storage>,
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Start, stop, watch and reconcile code-server sessions.
    pub lifecycle: Arc<Lifecycle>,
    pub firewall: Arc<dyn Firewall>,
    /// Browser logins: passwords, tokens, expiry.
    pub auth: Authenticator,
    pub events: Arc<dyn EventSink>,
    pub gate_cache: GateCache,
    /// Session-host codes and passes (the handshake).
    pub passes: Passes,
    pub auth_limiter: RateLimiter,
    /// Failed sign-ins per account (its email, as typed, trimmed and lower-cased).
    pub failed_logins: RateLimiter<String>,
    /// What `/metrics` renders.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Where GPU readings come from (NVML, or none).
    pub telemetry: Arc<dyn GpuTelemetry>,
    /// The readings: each GPU's last hour, each session's charged time.
    pub gpu_monitor: GpuMonitor,
    /// Who used which session when, until the limits task writes it.
    pub activity: Activity,
}

impl AppState {
    /// Ends what `what` covers: passes, cached gate decisions, open tunnels.
    pub fn revoke(&self, what: Revoked) {
        match &what {
            Revoked::Session(slug) => self.gate_cache.forget_slug(slug),
            Revoked::Login(_) | Revoked::User(_) => self.gate_cache.forget_all(),
        }
        self.passes.revoke(what);
    }
}
