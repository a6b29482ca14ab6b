//! The `process-sessions` binary, run as a user would run it. Works with or
//! without root.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_process-sessions");

fn run(command: &mut Command) -> (Output, String, String) {
    let out = command.output().expect("run process-sessions");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    (out, stdout, stderr)
}

fn assert_ok(out: &Output, stdout: &str, stderr: &str) {
    assert!(out.status.success(), "exit {}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(stdout.contains("\nprocess-sessions: ok\n"), "{stdout}");
    assert!(stdout.contains("carol@example.org: refused: No GPUs available."), "{stdout}");
    let count = |event: &str| stdout.lines().filter(|l| l.contains(&format!(r#""event":"{event}""#))).count();
    assert_eq!((count("session.start"), count("session.snapshot"), count("session.stop")), (2, 2, 2), "{stdout}");
}

#[test]
fn the_binary_runs_its_scenario_and_keeps_its_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for round in 0..2 {
        // The second round reuses the database, users and workspaces.
        let (out, stdout, stderr) =
            run(Command::new(BIN).arg("--data-dir").arg(&data).args(["--subnet", "127.89.0.0/24"]));
        assert_ok(&out, &stdout, &stderr);
        assert!(stdout.contains("GPU 0 at 127.89.0.") && stdout.contains("GPU 1 at 127.89.0."), "{stdout}");
        assert!(data.join("medforge.db").is_file());
        let snapshot_dirs = std::fs::read_dir(data.join("workspaces/.snapshots")).expect("snapshots").count();
        assert_eq!(snapshot_dirs, 2, "one per user (round {round})");
    }
    let logs: Vec<_> = std::fs::read_dir(data.join("logs")).expect("logs").collect();
    assert_eq!(logs.len(), 4, "a log per session process");
    // The snapshots are read-only copies: make them removable.
    let _ = Command::new("chmod").arg("-R").arg("u+w").arg(dir.path()).status();
}

/// Without root, sessions run as the invoking user and workspaces are
/// theirs. As root this runs the binary as `nobody` to show it, from a copy
/// that `nobody` may run wherever the checkout is (under `/root`, say).
#[test]
fn without_root_it_runs_as_the_invoking_user() {
    use std::os::unix::fs::PermissionsExt;
    let as_root = rustix::process::geteuid().is_root();
    let uid = if as_root { 65534 } else { rustix::process::geteuid().as_raw() };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = dir.path().join("process-sessions");
    std::fs::copy(BIN, &bin).expect("copy the binary");
    // Its own temporary data directory goes here, and must be gone after.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp");
    std::os::unix::fs::chown(&tmp, Some(uid), Some(uid)).expect("chown tmp");
    let mut command = if as_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let (out, stdout, stderr) = run(command.args(["--subnet", "127.89.1.0/24"]).env("TMPDIR", &tmp).current_dir("/"));
    assert_ok(&out, &stdout, &stderr);
    assert!(stdout.contains(&format!("as uid {uid};")), "{stdout}");
    assert!(stderr.contains("privileges Inherit"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&tmp).expect("tmp").collect();
    assert!(left.is_empty(), "the temporary data directory was not removed: {left:?}");
}

#[test]
fn a_failure_is_one_line_and_exit_status_1() {
    let (out, stdout, stderr) = run(Command::new(BIN).args(["--subnet", "10.0.0.0/24"]));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("process-sessions: error: ")).count(), 1, "{stderr}");
    assert!(stderr.contains("inside 127.0.0.0/8"), "{stderr}");
    assert!(!stdout.contains("process-sessions: ok"), "{stdout}");
}
