//! Helpers for tests against the real Podman API service that
//! scripts/test.sh starts (rootful, /run/podman/podman.sock).

#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::process::Command;

use medforge_core::runtime::{GpuMode, SessionContainerConfig};
use medforge_runtime_podman::PodmanRuntime;

pub const RUN_LABEL: &str = "medforge.test_run";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test.sh, which starts Podman"))
}

/// The test pack, loaded into Podman's store by scripts/test.sh.
pub fn test_pack_image() -> String {
    env("MEDFORGE_TEST_PODMAN_PACK_IMAGE")
}

/// The test pack's variant that never answers on its port.
pub fn silent_pack_image() -> String {
    env("MEDFORGE_TEST_PODMAN_SILENT_PACK_IMAGE")
}

pub fn socket() -> String {
    env("MEDFORGE_TEST_PODMAN_SOCKET")
}

pub async fn runtime() -> PodmanRuntime {
    PodmanRuntime::connect(socket()).await.expect("Podman's API is not reachable: scripts/test.sh starts it")
}

/// Networks and labels of one test run.
pub fn run_config() -> (String, SessionContainerConfig) {
    let run = medforge_core::model::Slug::generate().to_string();
    let config = SessionContainerConfig {
        external_network: format!("mftest-{run}-ext"),
        internal_network: format!("mftest-{run}-int"),
        gpu_mode: GpuMode::None,
        extra_labels: BTreeMap::from([(RUN_LABEL.to_owned(), run.clone())]),
        ..Default::default()
    };
    (run, config)
}

/// `podman exec`: stdout, or stderr as the error.
pub fn podman_exec(id: &str, cmd: &[&str]) -> Result<String, String> {
    let out = Command::new("podman").arg("exec").arg(id).args(cmd).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `podman kill`: SIGKILL from outside.
pub fn podman_kill(id: &str) -> Result<(), String> {
    let out = Command::new("podman").args(["kill", id]).output().map_err(|e| e.to_string())?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

pub fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().expect("podman CLI");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the run's containers and networks.
pub fn cleanup_run(run: &str, config: &SessionContainerConfig) {
    let ids = podman(&["ps", "-aq", "--filter", &format!("label={RUN_LABEL}={run}")]);
    for id in ids.split_whitespace() {
        podman(&["rm", "-f", id]);
    }
    for net in [&config.external_network, &config.internal_network] {
        podman(&["network", "rm", "-f", net]);
    }
}
