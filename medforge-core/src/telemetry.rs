//! GPU telemetry: what the host's GPUs are ([`GpuTelemetry::discover`]) and
//! what they are doing now ([`GpuTelemetry::sample`]). The server samples
//! on an interval, keeps a short history per GPU and charges each sample to
//! the session holding the GPU (`medforge-server`'s `service::gpu_monitor`);
//! this module only says what a reading is.
//!
//! Implementations: [`NoTelemetry`] (hosts without GPUs, or without the
//! driver), NVML (`medforge-telemetry-nvml`), and the test stand-in
//! `testing::telemetry::StandIn`. Every one runs the contract in
//! `testing::telemetry`.

use async_trait::async_trait;
use serde::Serialize;

/// A GPU as the driver describes it. `index` is the one MedForge uses
/// everywhere (`gpus.ids`, `NVIDIA_VISIBLE_DEVICES`, the GPU rows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuInfo {
    pub index: u32,
    /// `GPU-<uuid>`: stable across reboots and slot changes, unlike the index.
    pub uuid: String,
    pub name: String,
    pub memory_total_bytes: u64,
}

/// One reading of one GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuSample {
    pub index: u32,
    /// Percent of the last sample period in which a kernel ran (0 to 100):
    /// NVML's `utilization.gpu`.
    pub utilization_percent: u32,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    /// Degrees Celsius, where the GPU reports it.
    pub temperature_c: Option<u32>,
    /// Watts, where the GPU reports it.
    pub power_watts: Option<f64>,
    /// Host PIDs of the processes with a compute context on the GPU.
    pub pids: Vec<u32>,
}

impl GpuSample {
    /// Utilisation as a ratio, 0.0 to 1.0 (the unit of the metrics).
    pub fn utilization_ratio(&self) -> f64 {
        f64::from(self.utilization_percent.min(100)) / 100.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    /// No source here: no library, no driver, no permission. The host runs
    /// on, without telemetry; doctor says why.
    #[error("no GPU telemetry: {0}")]
    Unavailable(String),
    /// The source answered, but not this time (a GPU fell off the bus).
    #[error("GPU telemetry failed: {0}")]
    Failed(String),
}

/// A source of GPU readings. Calls may block on the driver for milliseconds;
/// implementations move that off the async threads.
#[async_trait]
pub trait GpuTelemetry: Send + Sync + std::fmt::Debug {
    /// What the readings come from, for doctor, logs and the API: `"nvml"`,
    /// `"none"`, ...
    fn source(&self) -> &'static str;

    /// Whether readings come at all; [`NoTelemetry`] says no, so that the
    /// server can say "not measured" rather than show zeros.
    fn is_live(&self) -> bool {
        true
    }

    /// Why there are no readings, for a source that is not live.
    fn unavailable(&self) -> Option<String> {
        None
    }

    /// The host's GPUs, ordered by index.
    async fn discover(&self) -> Result<Vec<GpuInfo>, TelemetryError>;

    /// A reading of every GPU [`discover`](Self::discover) lists, ordered by index.
    async fn sample(&self) -> Result<Vec<GpuSample>, TelemetryError>;
}

/// No telemetry: no GPUs to describe, nothing to read. What a host without
/// GPUs, or without NVIDIA's library, runs on.
#[derive(Debug, Clone, Default)]
pub struct NoTelemetry {
    /// Why there is none, for doctor (`None`: it was asked for).
    pub reason: Option<String>,
}

impl NoTelemetry {
    pub fn because(reason: impl Into<String>) -> Self {
        Self { reason: Some(reason.into()) }
    }
}

#[async_trait]
impl GpuTelemetry for NoTelemetry {
    fn source(&self) -> &'static str {
        "none"
    }

    fn is_live(&self) -> bool {
        false
    }

    fn unavailable(&self) -> Option<String> {
        Some(self.reason.clone().unwrap_or_else(|| "no GPU telemetry".into()))
    }

    async fn discover(&self) -> Result<Vec<GpuInfo>, TelemetryError> {
        Ok(Vec::new())
    }

    async fn sample(&self) -> Result<Vec<GpuSample>, TelemetryError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_telemetry_passes_the_contract_and_is_not_live() {
        let none = NoTelemetry::because("no GPUs here");
        crate::testing::telemetry::contract(&none).await;
        assert!(!none.is_live());
        assert_eq!(none.source(), "none");
    }

    #[test]
    fn utilization_ratio_is_clamped() {
        let mut s = crate::testing::telemetry::reading(0, 0, 0, 1);
        s.utilization_percent = 250;
        assert!((s.utilization_ratio() - 1.0).abs() < f64::EPSILON);
        s.utilization_percent = 37;
        assert!((s.utilization_ratio() - 0.37).abs() < 1e-9);
    }
}
