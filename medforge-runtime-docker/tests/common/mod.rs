//! Helpers for tests against the real dockerd that scripts/test.sh starts.

#![allow(dead_code, unused_imports)] // each test file uses its own subset

use medforge_core::runtime::SessionContainerConfig;
use medforge_core::testing::engine;
use medforge_runtime_docker::{DEFAULT_SOCKET, DockerRuntime};

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

pub use medforge_core::testing::engine::{RUN_LABEL, run_config};

/// `docker exec`: stdout, or stderr as the error.
pub fn docker_exec(id: &str, cmd: &[&str]) -> Result<String, String> {
    engine::exec("docker", id, cmd)
}

/// `docker kill`: SIGKILL from outside, as an operator or the OOM killer would.
pub fn docker_kill(id: &str) -> Result<(), String> {
    engine::kill("docker", id)
}

pub fn docker(args: &[&str]) -> String {
    engine::cli("docker", args)
}

/// Removes the run's containers and networks.
pub fn cleanup_run(run: &str, config: &SessionContainerConfig) {
    engine::cleanup_run("docker", run, config)
}
