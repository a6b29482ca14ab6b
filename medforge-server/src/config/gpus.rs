//! `gpus.ids`: a list, or what the driver reports (NVML, through the
//! telemetry source: `crate::stack::open_telemetry`).

use medforge_core::model::GpuId;
use medforge_core::telemetry::GpuInfo;

use super::{AutoKeyword, FALLBACK_GPU_SLOTS, GpuIds};

/// What GPU discovery found: the GPUs, or why there is no list.
pub type Discovery = Result<Vec<GpuInfo>, String>;

/// Why `gpus.ids = "auto"` has no GPU list. The messages are what `serve`
/// and `doctor` print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuListError {
    #[error("gpus.ids = \"auto\" needs NVML (libnvidia-ml, from the NVIDIA driver): {0}")]
    NoNvml(String),
    #[error("NVML lists no GPUs")]
    NoGpus,
}

impl GpuIds {
    /// The configured list, or the GPUs discovery found (`detect`: the
    /// fallback slots when it found none).
    pub fn resolve(&self, discovered: &Discovery) -> Result<Vec<GpuId>, GpuListError> {
        let found = match discovered {
            Ok(gpus) if gpus.is_empty() => Err(GpuListError::NoGpus),
            Ok(gpus) => Ok(gpus.iter().map(|g| GpuId(g.index)).collect()),
            Err(why) => Err(GpuListError::NoNvml(why.clone())),
        };
        match self {
            GpuIds::List(ids) => Ok(ids.iter().copied().map(GpuId).collect()),
            GpuIds::Auto(AutoKeyword::Auto) => found,
            GpuIds::Auto(AutoKeyword::Detect) => Ok(found.unwrap_or_else(|_| Self::fallback_slots())),
        }
    }

    pub fn fallback_slots() -> Vec<GpuId> {
        (0..FALLBACK_GPU_SLOTS).map(GpuId).collect()
    }
}
