//! Helpers for tests against the real Podman API service that
//! scripts/test.sh starts (rootful, /run/podman/podman.sock).

#![allow(dead_code, unused_imports)] // each test file uses its own subset

use medforge_core::runtime::SessionContainerConfig;
use medforge_core::testing::engine;
use medforge_runtime_podman::PodmanRuntime;

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

pub use medforge_core::testing::engine::{RUN_LABEL, run_config};

/// `podman exec`: stdout, or stderr as the error.
pub fn podman_exec(id: &str, cmd: &[&str]) -> Result<String, String> {
    engine::exec("podman", id, cmd)
}

/// `podman kill`: SIGKILL from outside.
pub fn podman_kill(id: &str) -> Result<(), String> {
    engine::kill("podman", id)
}

pub fn podman(args: &[&str]) -> String {
    engine::cli("podman", args)
}

/// Removes the run's containers and networks.
pub fn cleanup_run(run: &str, config: &SessionContainerConfig) {
    engine::cleanup_run("podman", run, config)
}
