//! The session lifecycle on a real dockerd: the lifecycle contract that
//! every runtime passes (`medforge_core::testing::lifecycle`), and what
//! only Docker shows: the spec as `docker inspect` reports it, and a real
//! process SIGKILLed half-way through a create.

mod common;

use std::sync::Arc;
use std::time::Duration;

use medforge_core::events::{EventContext, StopReason};
use medforge_core::model::SessionStatus;
use medforge_core::runtime::container_name;
use medforge_core::testing::lifecycle::LifecycleHarness;
use serde_json::Value;

async fn harness() -> LifecycleHarness {
    let (run, config) = common::run_config();
    let teardown_config = config.clone();
    LifecycleHarness::new(
        Arc::new(common::runtime().await),
        common::test_pack_image(),
        common::silent_pack_image(),
        config,
        (common::RUN_LABEL.to_owned(), run.clone()),
        common::docker_exec,
        common::docker_kill,
    )
    .with_teardown(async move { common::cleanup_run(&run, &teardown_config) })
}

medforge_core::lifecycle_contract_tests!(harness);

fn inspect(name: &str) -> Value {
    let text = common::docker(&["inspect", name]);
    let mut all: Vec<Value> = serde_json::from_str(&text).expect("docker inspect json");
    all.pop().expect("one container")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_inspect_shows_the_spec_applied() {
    let h = harness().await;
    let stack = h.stack(&h.image, |_| {}).await;
    let user = stack.user("inspected").await;
    let sessions = vec![stack.create(&user).await.expect("create")];
    let limits = &stack.config.containers.limits;
    for s in &sessions {
        let c = inspect(&container_name(&s.slug));
        assert_eq!(c["Name"], format!("/mf-session-{}", s.slug));
        assert_eq!(c["Id"].as_str(), s.container_id.as_deref());
        assert_eq!(c["State"]["Running"], true);
        assert_eq!(c["Config"]["User"], "1000:1000");
        let labels = &c["Config"]["Labels"];
        assert_eq!(labels["medforge.session_id"], s.id.to_string());
        assert_eq!(labels["medforge.slug"], s.slug.to_string());
        assert_eq!(labels["medforge.user_id"], s.user_id.to_string());
        let env: Vec<&str> = c["Config"]["Env"].as_array().expect("env").iter().filter_map(Value::as_str).collect();
        for want in [
            format!("MEDFORGE_SESSION_ID={}", s.id),
            format!("MEDFORGE_USER_ID={}", s.user_id),
            "MEDFORGE_EXPOSURE=external".to_owned(),
            format!("MEDFORGE_GPU_ID={}", s.gpu_id),
            format!(
                "NVIDIA_VISIBLE_DEVICES={}",
                medforge_core::runtime::visible_devices(stack.config.containers.gpu_mode, s.gpu_id)
            ),
        ] {
            assert!(env.contains(&want.as_str()), "{want} missing from {env:?}");
        }
        let host = &c["HostConfig"];
        assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]));
        assert!(host["CapAdd"].is_null());
        assert_eq!(host["Privileged"], false);
        assert!(host["SecurityOpt"].to_string().contains("no-new-privileges"), "{}", host["SecurityOpt"]);
        assert_eq!(host["PidsLimit"].as_u64(), limits.pids);
        assert_eq!(host["Memory"].as_u64(), limits.memory_bytes);
        assert_eq!(host["ShmSize"].as_u64(), limits.shm_bytes);
        assert_eq!(host["RestartPolicy"]["Name"], "no");
        assert_eq!(host["NetworkMode"], stack.config.containers.external_network.as_str());
        let mounts = c["Mounts"].as_array().expect("mounts");
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0]["Destination"], "/workspace");
        assert_eq!(mounts[0]["RW"], true);
        assert_eq!(mounts[0]["Source"].as_str(), s.workspace.as_deref());
    }
    for s in &sessions {
        stack.sessions.stop(s.id, StopReason::User, &EventContext::default()).await.expect("stop");
    }
    h.finish().await;
}

/// A create cut off by a real SIGKILL: the `one_session` example (which
/// embeds the lifecycle) dies while its container runs and its row is
/// still `starting`; a restarted `Lifecycle` reconciles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_killed_half_way_through_a_create_is_reconciled() {
    let h = harness().await;
    let stack = h.stack(&h.silent_image, |c| c.ready_timeout = Duration::from_secs(120)).await;
    let run = h.run_label.1.clone();
    // 1. A create killed half-way: a real process (the `one_session`
    //    example, which embeds the lifecycle) is SIGKILLed while its
    //    container runs and its row is still `starting`.
    let example = std::env::current_exe()
        .expect("test binary")
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("examples/one_session");
    let mut child = std::process::Command::new(&example)
        .args(["--db", stack.db.to_str().expect("path"), "--workspaces", stack.workspaces.to_str().expect("path")])
        .args(["--image", &common::silent_pack_image(), "--email", "halfway@example.org", "--ready-timeout", "120"])
        .args(["--label", &format!("{}={}", common::RUN_LABEL, run)])
        .args(["--network-prefix", &format!("mftest-{}", run)])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{} (built by cargo test): {e}", example.display()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stack.containers().await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the example never started its container");
        assert!(child.try_wait().expect("child").is_none(), "the example exited early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().expect("SIGKILL the example"); // the process dies here, mid-create
    child.wait().expect("reap");
    let rows = stack.active().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, SessionStatus::Starting);

    let report = stack.restarted().reconcile().await.expect("reconcile");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(stack.active().await.is_empty());
    assert!(stack.containers().await.is_empty());
    h.finish().await;
}
