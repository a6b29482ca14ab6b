//! `gpus.ids`: a list, or what `nvidia-smi` lists.

use medforge_core::model::GpuId;

use super::{AutoKeyword, FALLBACK_GPU_SLOTS, GpuIds};

impl GpuIds {
    /// The configured list, or the GPUs `nvidia-smi` reports (`detect`:
    /// the fallback slots when it does not run).
    pub fn resolve(&self) -> Result<Vec<GpuId>, String> {
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
pub fn discover_gpus() -> Result<Vec<GpuId>, String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index,uuid,name", "--format=csv,noheader"])
        .output()
        .map_err(|e| format!("gpus = \"auto\" needs nvidia-smi: {e}"))?;
    if !out.status.success() {
        return Err(format!("nvidia-smi failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `index, uuid, name` lines.
pub fn parse_nvidia_smi(text: &str) -> Result<Vec<GpuId>, String> {
    let ids = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let index = l.split(',').next().unwrap_or_default().trim();
            index.parse::<u32>().map(GpuId).map_err(|_| format!("unexpected nvidia-smi line {l:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err("nvidia-smi lists no GPUs".into());
    }
    Ok(ids)
}
