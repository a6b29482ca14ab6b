//! What the contract tests share: a runtime on a subnet of its own, and
//! `exec` and `kill` for processes, acting from outside the runtime's trait.

#![allow(dead_code)] // each test file uses a part

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};

use medforge_example_process_runtime::{HTTP_SERVER_IMAGE, Privileges, ProcessRuntime, ProcessRuntimeConfig};

/// A program that runs but never answers on its port.
pub const SILENT_IMAGE: &str = "medforge-process/silent";

/// The contract suites need root: `DirStorage` (which the core's harnesses
/// use) gives workspaces to 1000:1000, and the cases check that sessions
/// run as that user. `scripts/test.sh` runs as root.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the contract tests run as root (DirStorage chowns workspaces to 1000:1000 and sessions switch to that user)"
    );
}

/// A fresh runtime with the default and the silent program, on a /24 of
/// its own (`127.<octet>.<n>.0/24`), so that the cases of one test binary,
/// running at once, keep to their own addresses.
pub fn runtime(octet: u8) -> ProcessRuntime {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut programs = ProcessRuntimeConfig::default().programs;
    programs.insert(SILENT_IMAGE.into(), vec!["sleep".into(), "infinity".into()]);
    ProcessRuntime::new(ProcessRuntimeConfig {
        programs,
        subnet: format!("127.{octet}.{n}.0/24").parse().expect("subnet"),
        privileges: Privileges::Drop,
        ..Default::default()
    })
    .expect("process runtime")
}

/// The harnesses' `exec`: the command in the process's context, as `docker exec`.
pub fn exec(runtime: &ProcessRuntime) -> impl Fn(&str, &[&str]) -> Result<String, String> + Send + Sync + 'static {
    let runtime = runtime.clone();
    move |id, argv| {
        let out = runtime.exec_command(id, argv).map_err(|e| e.to_string())?.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

/// The harnesses' `kill`: SIGKILL to the session's process with the
/// `kill` command, from outside the runtime, as the OOM killer would.
pub fn kill(runtime: &ProcessRuntime) -> impl Fn(&str) -> Result<(), String> + Send + Sync + 'static {
    let runtime = runtime.clone();
    move |id| {
        let pid = runtime.pid(id).ok_or(format!("{id} is not running"))?;
        medforge_core::testing::sh("kill", &["-KILL", &pid.to_string()]).map(drop)
    }
}

/// `/proc/<pid>/status` as key -> value.
pub fn proc_status(pid: u32) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_owned(), v.trim().to_owned())).collect()
}

pub fn default_image() -> &'static str {
    HTTP_SERVER_IMAGE
}
