//! Helpers for tests against the real dockerd that scripts/test.sh starts.

#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::process::Command;

use medforge_core::runtime::{GpuMode, SessionContainerConfig};
use medforge_runtime_docker::{DEFAULT_SOCKET, DockerRuntime};

/// Label every container of a test run carries; scripts/test.sh removes
/// leftovers of earlier runs by it.
pub const RUN_LABEL: &str = "medforge.test_run";

/// The test pack image that scripts/test.sh builds; a missing variable is a
/// failure, not a skip.
pub fn test_pack_image() -> String {
    std::env::var("MEDFORGE_TEST_PACK_IMAGE").unwrap_or_else(|_| {
        panic!("MEDFORGE_TEST_PACK_IMAGE is not set: run scripts/test.sh, which starts dockerd and builds it")
    })
}

/// The variant of the test pack that never answers on its port.
pub fn silent_pack_image() -> String {
    std::env::var("MEDFORGE_TEST_SILENT_PACK_IMAGE")
        .unwrap_or_else(|_| panic!("MEDFORGE_TEST_SILENT_PACK_IMAGE is not set: run scripts/test.sh, which builds it"))
}

pub async fn runtime() -> DockerRuntime {
    DockerRuntime::connect(DEFAULT_SOCKET).await.expect("dockerd is not reachable: scripts/test.sh starts it")
}

/// Networks and labels of one test run, so runs never share state.
pub fn run_config() -> (String, SessionContainerConfig) {
    let run = uuid_like();
    let config = SessionContainerConfig {
        external_network: format!("mftest-{run}-ext"),
        internal_network: format!("mftest-{run}-int"),
        gpu_mode: GpuMode::None,
        extra_labels: BTreeMap::from([(RUN_LABEL.to_owned(), run.clone())]),
        ..Default::default()
    };
    (run, config)
}

fn uuid_like() -> String {
    medforge_core::model::Slug::generate().to_string()
}

/// `docker exec` with the CLI: stdout, or stderr as the error.
pub fn docker_exec(id: &str, cmd: &[&str]) -> Result<String, String> {
    let out = Command::new("docker").arg("exec").arg(id).args(cmd).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `docker kill`: SIGKILL from outside, as an operator or the OOM killer would.
pub fn docker_kill(id: &str) -> Result<(), String> {
    let out = Command::new("docker").args(["kill", id]).output().map_err(|e| e.to_string())?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker CLI");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the run's containers and networks.
pub fn cleanup_run(run: &str, config: &SessionContainerConfig) {
    let ids = docker(&["ps", "-aq", "--filter", &format!("label={RUN_LABEL}={run}")]);
    for id in ids.split_whitespace() {
        docker(&["rm", "-f", id]);
    }
    for net in [&config.external_network, &config.internal_network] {
        docker(&["network", "rm", net]);
    }
}
