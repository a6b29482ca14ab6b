//! A container engine's CLI (`docker` and `podman` share this syntax), for
//! tests that act from outside the runtime under test: exec into a
//! container, kill it as the OOM killer would, clean a test run away.

use std::collections::BTreeMap;
use std::process::Command;

use crate::runtime::{GpuMode, SessionContainerConfig};

/// Label every container of a test run carries; the test script removes
/// leftovers of earlier runs by it.
pub const RUN_LABEL: &str = "medforge.test_run";

/// Networks and labels of one test run, so runs never share state.
pub fn run_config() -> (String, SessionContainerConfig) {
    let run = crate::model::Slug::generate().to_string();
    let config = SessionContainerConfig {
        external_network: format!("mftest-{run}-ext"),
        internal_network: format!("mftest-{run}-int"),
        gpu_mode: GpuMode::None,
        extra_labels: BTreeMap::from([(RUN_LABEL.to_owned(), run.clone())]),
        ..Default::default()
    };
    (run, config)
}

/// `<engine> <args>`: stdout (failures are the caller's to notice).
pub fn cli(engine: &str, args: &[&str]) -> String {
    let out = Command::new(engine).args(args).output().unwrap_or_else(|e| panic!("{engine} CLI: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `<engine> exec`: stdout, or stderr as the error.
pub fn exec(engine: &str, id: &str, cmd: &[&str]) -> Result<String, String> {
    let out = Command::new(engine).arg("exec").arg(id).args(cmd).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `<engine> kill`: SIGKILL from outside, as an operator or the OOM killer would.
pub fn kill(engine: &str, id: &str) -> Result<(), String> {
    let out = Command::new(engine).args(["kill", id]).output().map_err(|e| e.to_string())?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// Removes the run's containers and networks.
pub fn cleanup_run(engine: &str, run: &str, config: &SessionContainerConfig) {
    let ids = cli(engine, &["ps", "-aq", "--filter", &format!("label={RUN_LABEL}={run}")]);
    for id in ids.split_whitespace() {
        cli(engine, &["rm", "-f", id]);
    }
    for net in [&config.external_network, &config.internal_network] {
        cli(engine, &["network", "rm", net]);
    }
}
