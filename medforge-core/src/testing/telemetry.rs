//! The [`GpuTelemetry`] contract, and [`StandIn`], a source the test drives.
//!
//! Every implementation runs [`contract`] unchanged: `NoTelemetry` and the
//! stand-in here, NVML in `medforge-telemetry-nvml` (against a stand-in
//! `libnvidia-ml` in CI, the real one in `scripts/gpu-check.sh`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::telemetry::{GpuInfo, GpuSample, GpuTelemetry, TelemetryError};

/// What every source promises. A source that is not live lists nothing;
/// a live one lists its GPUs once each, ordered by index, with a UUID, a
/// name and a memory size, and each sample reads exactly those GPUs with
/// values a GPU can have.
pub async fn contract(source: &dyn GpuTelemetry) {
    let gpus = source.discover().await.expect("discover");
    if !source.is_live() {
        assert!(gpus.is_empty(), "{} is not live but lists GPUs", source.source());
        assert!(source.sample().await.expect("sample").is_empty(), "not live, yet it samples");
        return;
    }
    assert!(!source.source().is_empty());
    let indices: Vec<u32> = gpus.iter().map(|g| g.index).collect();
    let mut sorted = indices.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(indices, sorted, "GPUs listed once each, by index");
    let uuids: BTreeSet<&str> = gpus.iter().map(|g| g.uuid.as_str()).collect();
    assert_eq!(uuids.len(), gpus.len(), "UUIDs are unique");
    for g in &gpus {
        assert!(!g.uuid.is_empty() && !g.name.is_empty(), "GPU {} has a UUID and a name", g.index);
        assert!(g.memory_total_bytes > 0, "GPU {} has memory", g.index);
    }
    for round in 0..2 {
        let samples = source.sample().await.expect("sample");
        let sampled: Vec<u32> = samples.iter().map(|s| s.index).collect();
        assert_eq!(sampled, indices, "round {round}: a sample reads every GPU discover lists, in order");
        for (s, g) in samples.iter().zip(&gpus) {
            assert!(s.utilization_percent <= 100, "GPU {}: utilisation {}%", s.index, s.utilization_percent);
            assert_eq!(s.memory_total_bytes, g.memory_total_bytes, "GPU {}: memory total as discovered", s.index);
            assert!(s.memory_used_bytes <= s.memory_total_bytes, "GPU {}: more memory used than it has", s.index);
            if let Some(t) = s.temperature_c {
                assert!(t < 150, "GPU {}: {t} C", s.index);
            }
            if let Some(w) = s.power_watts {
                assert!(w.is_finite() && w >= 0.0, "GPU {}: {w} W", s.index);
            }
        }
    }
}

/// A reading with the given utilisation and memory, for stand-ins and unit tests.
pub fn reading(index: u32, utilization_percent: u32, memory_used_bytes: u64, memory_total_bytes: u64) -> GpuSample {
    GpuSample {
        index,
        utilization_percent,
        memory_used_bytes,
        memory_total_bytes,
        temperature_c: Some(40 + utilization_percent / 4),
        power_watts: Some(60.0 + f64::from(utilization_percent) * 6.0),
        pids: Vec::new(),
    }
}

/// GPUs whose readings the test sets: idle at first, each with 80 GiB.
/// Clones share the same GPUs, so the test keeps one and the server the other.
#[derive(Debug, Clone)]
pub struct StandIn {
    gpus: Arc<Mutex<Vec<(GpuInfo, GpuSample)>>>,
}

impl StandIn {
    pub const MEMORY: u64 = 80 << 30;

    pub fn new(indices: impl IntoIterator<Item = u32>) -> Self {
        let gpus = indices
            .into_iter()
            .map(|index| {
                let info = GpuInfo {
                    index,
                    uuid: format!("GPU-00000000-0000-4000-8000-{index:012}"),
                    name: "Stand-in GPU".to_owned(),
                    memory_total_bytes: Self::MEMORY,
                };
                (info, reading(index, 0, 0, Self::MEMORY))
            })
            .collect();
        Self { gpus: Arc::new(Mutex::new(gpus)) }
    }

    /// What GPU `index` reads from now on.
    pub fn set(&self, index: u32, utilization_percent: u32, memory_used_bytes: u64) {
        let mut gpus = self.gpus.lock().expect("stand-in lock");
        let (_, s) = gpus.iter_mut().find(|(g, _)| g.index == index).expect("no such stand-in GPU");
        *s = reading(index, utilization_percent.min(100), memory_used_bytes.min(Self::MEMORY), Self::MEMORY);
    }
}

#[async_trait]
impl GpuTelemetry for StandIn {
    fn source(&self) -> &'static str {
        "stand-in"
    }

    async fn discover(&self) -> Result<Vec<GpuInfo>, TelemetryError> {
        Ok(self.gpus.lock().expect("stand-in lock").iter().map(|(g, _)| g.clone()).collect())
    }

    async fn sample(&self) -> Result<Vec<GpuSample>, TelemetryError> {
        Ok(self.gpus.lock().expect("stand-in lock").iter().map(|(_, s)| s.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_stand_in_passes_the_contract_busy_or_idle() {
        let gpus = StandIn::new([0, 1, 3]);
        contract(&gpus).await;
        gpus.set(1, 97, 40 << 30);
        contract(&gpus).await;
        let s = gpus.sample().await.expect("sample");
        assert_eq!((s[1].utilization_percent, s[1].memory_used_bytes), (97, 40 << 30));
        assert_eq!(s[0].utilization_percent, 0);
    }

    /// The contract can fail: a source that reads a GPU it did not list.
    #[tokio::test]
    #[should_panic(expected = "a sample reads every GPU discover lists")]
    async fn the_contract_catches_a_sample_of_an_unlisted_gpu() {
        #[derive(Debug)]
        struct Wrong;
        #[async_trait]
        impl GpuTelemetry for Wrong {
            fn source(&self) -> &'static str {
                "wrong"
            }
            async fn discover(&self) -> Result<Vec<GpuInfo>, TelemetryError> {
                StandIn::new([0]).discover().await
            }
            async fn sample(&self) -> Result<Vec<GpuSample>, TelemetryError> {
                StandIn::new([0, 1]).sample().await
            }
        }
        contract(&Wrong).await;
    }
}
