//! The stand-in `libnvidia-ml.so.1` (`stand-in/libnvidia-ml.c`): built with
//! the machine's C compiler into a directory, and driven through a state
//! file that the test rewrites. The real loader, the real FFI and the real
//! [`Nvml`](crate::Nvml) code run; only the driver is played.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The source, compiled into the test binary so that it builds anywhere.
pub const SOURCE: &str = include_str!("../stand-in/libnvidia-ml.c");

/// The state file's name, beside the library: what the GPUs read.
pub const STATE_FILE: &str = "nvml-stand-in.state";

/// One GPU as the stand-in reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandInGpu {
    pub uuid: String,
    pub name: String,
    pub memory_total: u64,
    pub memory_used: u64,
    pub utilization: u32,
    pub temperature: u32,
    pub power_mw: u32,
    pub pids: Vec<u32>,
}

impl StandInGpu {
    /// An idle GPU `index` with 80 GiB.
    pub fn idle(index: u32) -> Self {
        Self {
            uuid: format!("GPU-5eed0000-0000-4000-8000-{index:012}"),
            name: "NVIDIA H200 (stand-in)".into(),
            memory_total: 80 << 30,
            memory_used: 0,
            utilization: 0,
            temperature: 35,
            power_mw: 70_000,
            pids: Vec::new(),
        }
    }

    pub fn busy(mut self, utilization: u32, memory_used: u64) -> Self {
        self.utilization = utilization;
        self.memory_used = memory_used;
        self.temperature = 35 + utilization / 3;
        self.power_mw = 70_000 + utilization * 5_000;
        self
    }
}

/// Compiles the stand-in into `dir/libnvidia-ml.so.1` with `cc` and returns
/// its path. Until [`write_state`], it answers as a host whose driver is
/// not loaded.
pub fn build(dir: &Path) -> PathBuf {
    let source = dir.join("libnvidia-ml.c");
    let library = dir.join("libnvidia-ml.so.1");
    std::fs::write(&source, SOURCE).expect("write the stand-in's source");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&library)
        .arg(&source)
        .arg("-ldl")
        .output()
        .expect("run cc (scripts/test.sh installs gcc)");
    assert!(out.status.success(), "cc failed: {}", String::from_utf8_lossy(&out.stderr));
    library
}

/// Writes what the GPUs of the stand-in at `library` read from now on
/// (atomically: a rename).
pub fn write_state(library: &Path, gpus: &[StandInGpu]) {
    let path = &library.with_file_name(STATE_FILE);
    let mut text = String::from("# uuid;name;memory_total;memory_used;utilization;temperature;power_mw;pids\n");
    for g in gpus {
        let pids: Vec<String> = g.pids.iter().map(u32::to_string).collect();
        text.push_str(&format!(
            "{};{};{};{};{};{};{};{}\n",
            g.uuid,
            g.name,
            g.memory_total,
            g.memory_used,
            g.utilization,
            g.temperature,
            g.power_mw,
            pids.join(",")
        ));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write stand-in state");
    std::fs::rename(&tmp, path).expect("rename stand-in state");
}
