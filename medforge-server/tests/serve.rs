//! `medforge serve` as a process: GPU discovery and graceful shutdown.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Db, Options, Server};

/// `gpus = "auto"` seeds the GPUs that `nvidia-smi` lists (a stand-in
/// here: these machines have no GPU).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpus_auto_seeds_what_nvidia_smi_lists() {
    let csv = "0, GPU-11111111, NVIDIA GeForce RTX 5090\n3, GPU-33333333, NVIDIA GeForce RTX 5090\n";
    let s = Server::start(Db::Sqlite, Options { fake_nvidia_smi: Some(csv), ..Options::default() }).await;
    let admin = s.admin("gpus@example.org").await;
    let (st, _, b) = s.get("/api/v2/admin/gpus", Some(&admin)).await;
    assert_eq!(st, 200, "{b}");
    let ids: Vec<u64> = b["data"].as_array().expect("list").iter().filter_map(|g| g["id"].as_u64()).collect();
    assert_eq!(ids, vec![0, 3]);
    s.stop().await;
}

/// SIGTERM: the server exits cleanly and leaves sessions running, for the
/// next start's reconciliation to pick up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_and_leaves_sessions_running() {
    let mut s = Server::start(Db::Sqlite, Options::default()).await;
    let (cookie, _) = s.signup("stays@example.org").await;
    let (_, _, b) = s.post("/api/v2/external/sessions", Some(&cookie), None).await;
    let id = b["data"]["session"]["id"].as_str().expect("id").to_owned();
    let session = s.wait_status(&format!("/api/v2/external/sessions/{id}"), &cookie, "running").await;
    let container = session["container_id"].as_str().expect("container").to_owned();

    let killed = Command::new("kill").args(["-TERM", &s.pid().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = s.wait_exit(Duration::from_secs(15)).expect("the server did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let out =
        Command::new("docker").args(["inspect", "-f", "{{.State.Running}}", &container]).output().expect("docker");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true", "the session's container must keep running");
    s.stop().await;
}
