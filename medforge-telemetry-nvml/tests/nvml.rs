//! NVML against the stand-in libnvidia-ml: the telemetry contract, readings
//! that follow what the "driver" says, and the ways a host has none.

use medforge_core::telemetry::{GpuTelemetry, TelemetryError};
use medforge_telemetry_nvml::Nvml;
use medforge_telemetry_nvml::stand_in::{self, StandInGpu};

#[tokio::test]
async fn nvml_through_the_stand_in_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = stand_in::build(dir.path());

    // The library loads but the "driver" is not there: unavailable, in words.
    match Nvml::open(Some(&library)) {
        Err(TelemetryError::Unavailable(why)) => assert!(why.contains("driver is not loaded"), "{why}"),
        other => panic!("expected no driver, got {other:?}"),
    }
    // No library at all (a path that does not exist): unavailable, never a crash.
    let missing = dir.path().join("nowhere/libnvidia-ml.so.1");
    match Nvml::open(Some(&missing)) {
        Err(TelemetryError::Unavailable(why)) => {
            assert!(why.contains("nowhere/libnvidia-ml.so.1") && why.contains("cannot open"), "{why}")
        }
        other => panic!("expected no library, got {other:?}"),
    }

    stand_in::write_state(&library, &[StandInGpu::idle(0), StandInGpu::idle(1)]);
    let nvml = Nvml::open(Some(&library)).expect("open the stand-in");
    assert_eq!(nvml.library(), library.as_path());
    assert_eq!(nvml.source(), "nvml");
    medforge_core::testing::telemetry::contract(&nvml).await;
    let gpus = nvml.discover().await.expect("discover");
    assert_eq!(gpus.len(), 2);
    assert_eq!(gpus[1].uuid, StandInGpu::idle(1).uuid);
    assert_eq!(gpus[1].name, "NVIDIA H200 (stand-in)");
    assert_eq!(gpus[1].memory_total_bytes, 80 << 30);

    // A training run starts on GPU 1: the next sample shows it.
    let mut busy = StandInGpu::idle(1).busy(93, 61 << 30);
    busy.pids = vec![4242, 4343];
    stand_in::write_state(&library, &[StandInGpu::idle(0), busy]);
    medforge_core::testing::telemetry::contract(&nvml).await;
    let s = nvml.sample().await.expect("sample");
    assert_eq!((s[0].utilization_percent, s[0].memory_used_bytes), (0, 0));
    assert_eq!((s[1].utilization_percent, s[1].memory_used_bytes), (93, 61 << 30));
    assert_eq!(s[1].pids, vec![4242, 4343]);
    assert_eq!(s[1].temperature_c, Some(35 + 31));
    assert_eq!(s[1].power_watts, Some(70.0 + 93.0 * 5.0));

    // A GPU that falls off the bus mid-run: a failed sample, not a panic.
    std::fs::remove_file(library.with_file_name(stand_in::STATE_FILE)).expect("remove state");
    assert!(matches!(nvml.sample().await, Err(TelemetryError::Failed(_))));
}

/// The default search: on a machine without the driver (CI's) no
/// telemetry, with every place it looked; on one with it, NVML opens.
#[test]
fn the_default_search_finds_the_driver_or_says_where_it_looked() {
    if std::path::Path::new("/proc/driver/nvidia/version").exists() {
        let nvml = Nvml::open(None).expect("a host with the NVIDIA driver has NVML");
        assert!(nvml.library().to_string_lossy().contains("libnvidia-ml"));
        return;
    }
    match Nvml::open(None) {
        Err(TelemetryError::Unavailable(why)) => {
            for name in medforge_telemetry_nvml::DEFAULT_LIBRARIES {
                assert!(why.contains(name), "{why} does not say it tried {name}");
            }
        }
        other => panic!("expected no telemetry, got {other:?}"),
    }
}
