//! [`GpuTelemetry`] from NVIDIA's NVML (`libnvidia-ml.so.1`, part of the
//! driver), through `nvml-wrapper`, which loads the library when
//! [`Nvml::open`] runs rather than linking it: a binary built here runs on a
//! host without the driver and gets [`TelemetryError::Unavailable`], which
//! the server turns into "no telemetry" and a doctor warning.
//!
//! NVML calls are blocking ioctls into the driver (a few milliseconds for a
//! whole host); they run on tokio's blocking pool.

#[cfg(feature = "testing")]
pub mod stand_in;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use medforge_core::telemetry::{GpuInfo, GpuSample, GpuTelemetry, TelemetryError};
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::error::NvmlError;

/// Where the library is looked for when no path is configured, in order:
/// the loader's search path by the name the driver installs (the unversioned
/// `.so` comes only with development packages), then the directory that
/// NVIDIA's container toolkit and some cloud images use.
pub const DEFAULT_LIBRARIES: [&str; 3] =
    ["libnvidia-ml.so.1", "libnvidia-ml.so", "/usr/local/nvidia/lib64/libnvidia-ml.so.1"];

/// An open NVML: the library loaded and initialised.
pub struct Nvml {
    nvml: Arc<nvml_wrapper::Nvml>,
    library: PathBuf,
}

impl std::fmt::Debug for Nvml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nvml").field("library", &self.library).finish_non_exhaustive()
    }
}

impl Nvml {
    /// Loads and initialises NVML from `library`, or from the first of
    /// [`DEFAULT_LIBRARIES`] that loads. The error says what was tried.
    pub fn open(library: Option<&Path>) -> Result<Self, TelemetryError> {
        let candidates: Vec<PathBuf> = match library {
            Some(path) => vec![path.to_owned()],
            None => DEFAULT_LIBRARIES.iter().map(PathBuf::from).collect(),
        };
        let mut why = Vec::new();
        for path in candidates {
            match nvml_wrapper::Nvml::builder().lib_path(OsStr::new(&path)).init() {
                Ok(nvml) => return Ok(Self { nvml: Arc::new(nvml), library: path }),
                // The library is there but the driver is not: no point trying other copies.
                Err(e @ (NvmlError::DriverNotLoaded | NvmlError::NoPermission)) => {
                    return Err(TelemetryError::Unavailable(format!("{}: {}", path.display(), describe(&e))));
                }
                // dlopen's own message names the file.
                Err(NvmlError::LibloadingError(e)) => why.push(e.to_string()),
                Err(e) => why.push(format!("{}: {}", path.display(), describe(&e))),
            }
        }
        Err(TelemetryError::Unavailable(why.join("; ")))
    }

    /// The library that was loaded.
    pub fn library(&self) -> &Path {
        &self.library
    }

    async fn blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&nvml_wrapper::Nvml) -> Result<T, NvmlError> + Send + 'static,
    ) -> Result<T, TelemetryError> {
        let nvml = self.nvml.clone();
        tokio::task::spawn_blocking(move || read(&nvml))
            .await
            .map_err(|e| TelemetryError::Failed(format!("NVML call panicked: {e}")))?
            .map_err(|e| TelemetryError::Failed(describe(&e)))
    }
}

/// NVML's errors in words an admin acts on.
fn describe(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(e) => format!("cannot load it ({e})"),
        NvmlError::DriverNotLoaded => "the NVIDIA driver is not loaded".into(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".into(),
        NvmlError::FailedToLoadSymbol(s) => format!("an NVML function is missing (driver too old?): {s}"),
        other => other.to_string(),
    }
}

/// `Ok(None)` for what a GPU does not report (NotSupported); other errors stay.
fn optional<T>(r: Result<T, NvmlError>) -> Result<Option<T>, NvmlError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(NvmlError::NotSupported) => Ok(None),
        Err(e) => Err(e),
    }
}

fn discover(nvml: &nvml_wrapper::Nvml) -> Result<Vec<GpuInfo>, NvmlError> {
    (0..nvml.device_count()?)
        .map(|index| {
            let d = nvml.device_by_index(index)?;
            Ok(GpuInfo { index, uuid: d.uuid()?, name: d.name()?, memory_total_bytes: d.memory_info()?.total })
        })
        .collect()
}

fn sample(nvml: &nvml_wrapper::Nvml) -> Result<Vec<GpuSample>, NvmlError> {
    (0..nvml.device_count()?)
        .map(|index| {
            let d = nvml.device_by_index(index)?;
            let memory = d.memory_info()?;
            // MIG mode and some older boards report no utilisation: idle, not an error.
            let utilization = optional(d.utilization_rates())?.map_or(0, |u| u.gpu);
            let pids = match d.running_compute_processes() {
                Ok(list) => list.into_iter().map(|p| p.pid).collect(),
                Err(NvmlError::NotSupported) => Vec::new(),
                Err(e) => return Err(e),
            };
            Ok(GpuSample {
                index,
                utilization_percent: utilization.min(100),
                memory_used_bytes: memory.used.min(memory.total),
                memory_total_bytes: memory.total,
                temperature_c: optional(d.temperature(TemperatureSensor::Gpu))?,
                power_watts: optional(d.power_usage())?.map(|mw| f64::from(mw) / 1000.0),
                pids,
            })
        })
        .collect()
}

#[async_trait]
impl GpuTelemetry for Nvml {
    fn source(&self) -> &'static str {
        "nvml"
    }

    async fn discover(&self) -> Result<Vec<GpuInfo>, TelemetryError> {
        self.blocking(discover).await
    }

    async fn sample(&self) -> Result<Vec<GpuSample>, TelemetryError> {
        self.blocking(sample).await
    }
}
