//! `gpus.ids`: a list, or what `nvidia-smi` lists.

use medforge_core::model::GpuId;

use super::{AutoKeyword, FALLBACK_GPU_SLOTS, GpuIds};

/// Why `nvidia-smi` gave no GPU list. The messages are what `serve` and
/// `doctor` print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuListError {
    #[error("gpus = \"auto\" needs nvidia-smi: {0}")]
    NoNvidiaSmi(String),
    #[error("nvidia-smi failed: {0}")]
    Failed(String),
    #[error("unexpected nvidia-smi line {0:?}")]
    BadLine(String),
    #[error("nvidia-smi lists no GPUs")]
    NoGpus,
}

impl GpuIds {
    /// The configured list, or the GPUs `nvidia-smi` reports (`detect`:
    /// the fallback slots when it does not run).
    pub fn resolve(&self) -> Result<Vec<GpuId>, GpuListError> {
        match self {
            GpuIds::List(ids) => Ok(ids.iter().copied().map(GpuId).collect()),
            GpuIds::Auto(AutoKeyword::Auto) => discover_gpus(),
            GpuIds::Auto(AutoKeyword::Detect) => Ok(discover_gpus().unwrap_or_else(|_| Self::fallback_slots())),
        }
    }

    pub fn fallback_slots() -> Vec<GpuId> {
        (0..FALLBACK_GPU_SLOTS).map(GpuId).collect()
    }
}

/// `nvidia-smi --query-gpu=index,uuid,name --format=csv,noheader`.
pub fn discover_gpus() -> Result<Vec<GpuId>, GpuListError> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index,uuid,name", "--format=csv,noheader"])
        .output()
        .map_err(|e| GpuListError::NoNvidiaSmi(e.to_string()))?;
    if !out.status.success() {
        return Err(GpuListError::Failed(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `index, uuid, name` lines.
pub fn parse_nvidia_smi(text: &str) -> Result<Vec<GpuId>, GpuListError> {
    let ids = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let index = l.split(',').next().unwrap_or_default().trim();
            index.parse::<u32>().map(GpuId).map_err(|_| GpuListError::BadLine(l.to_owned()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(GpuListError::NoGpus);
    }
    Ok(ids)
}
