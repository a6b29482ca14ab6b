//! The core's runtime contract (`medforge_core::testing::runtime`) on
//! `ProcessRuntime`. Four cases run as they are. Three assume a container
//! and are restated here for what a process can honestly promise:
//!
//! - `containers_run_locked_down_as_specified` reads `/proc/1` (the
//!   container's first process; for a process that is the host's init) and
//!   `/workspace` (a mount a process does not have): restated on
//!   `/proc/<pid>` and the working directory.
//! - `list_managed_sees_running_and_exited_containers` starts an internal
//!   session, which this runtime refuses (it cannot take a process off the
//!   network): restated with two external sessions, plus the refusal.
//! - `sessions_networks_are_described_as_the_host_sees_them` wants a bridge
//!   per network: processes share the host's, so there is none to describe
//!   and the runtime says so.
//!
//! Needs root (see `common::require_root`).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use medforge_core::model::{Exposure, GpuId};
use medforge_core::probe;
use medforge_core::runtime::{ContainerInfo, ContainerRuntime, ContainerState, LABEL_SESSION_ID, SESSION_PORT};
use medforge_core::storage::DirStorage;
use medforge_core::testing::engine::run_config;
use medforge_core::testing::runtime::RuntimeHarness;
use medforge_example_process_runtime::ProcessRuntime;

async fn harness_and_runtime() -> (RuntimeHarness, ProcessRuntime) {
    common::require_root();
    let (_, config) = run_config();
    let runtime = common::runtime(90);
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = DirStorage::new(dir.path().join("workspaces")).expect("storage");
    let harness = RuntimeHarness::new(
        Arc::new(runtime.clone()),
        common::default_image(),
        config,
        storage,
        common::exec(&runtime),
        common::kill(&runtime),
    )
    .with_teardown(async move { drop(dir) });
    (harness, runtime)
}

async fn harness() -> RuntimeHarness {
    harness_and_runtime().await.0
}

medforge_core::contract_cases!(runtime, harness;
    stop_and_remove_are_idempotent,
    a_missing_image_is_an_error_and_leaves_nothing,
    a_taken_name_is_refused,
    a_dying_container_is_reported_with_its_session,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_run_locked_down_as_specified() {
    let (h, rt) = harness_and_runtime().await;
    let session = h.session(Exposure::External, 2);
    let mut spec = h.spec(&session).await;
    spec.gpu = Some(GpuId(2));
    let info = h.runtime.create_and_start(&spec).await.expect("create and start");
    assert_eq!(info.name, spec.name);
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.session_id(), Some(session.id));
    for (k, v) in &spec.labels {
        assert_eq!(info.labels.get(k), Some(v), "label {k}");
    }
    // What the kernel says about the session's process.
    let pid = rt.pid(&info.id).expect("a pid");
    let status = common::proc_status(pid);
    let first = |key: &str| status.get(key).and_then(|v| v.split_whitespace().next()).map(str::to_owned);
    assert_eq!(first("Uid").as_deref(), Some("1000"), "{status:?}");
    assert_eq!(first("Gid").as_deref(), Some("1000"), "{status:?}");
    assert_eq!(status.get("Groups").map(String::as_str), Some(""), "supplementary groups left: {status:?}");
    assert_eq!(status.get("CapEff").map(String::as_str), Some("0000000000000000"), "{status:?}");
    assert_eq!(status.get("CapBnd").map(String::as_str), Some("0000000000000000"), "{status:?}");
    assert_eq!(status.get("NoNewPrivs").map(String::as_str), Some("1"), "{status:?}");
    // The program itself, not a wrapper, holds the pid (prlimit and setpriv exec).
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(cmdline.starts_with(b"python3\0-m\0http.server\0"), "{}", String::from_utf8_lossy(&cmdline));
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    for (line, value) in [("Max open files", spec.limits.nofile), ("Max processes", spec.limits.nproc)] {
        let found = limits.lines().find(|l| l.starts_with(line)).expect("limit line");
        assert_eq!(found.split_whitespace().filter(|w| *w == value.to_string()).count(), 2, "{found}");
    }
    let env = (h.exec)(&info.id, &["env"]).expect("exec env");
    for (k, v) in &spec.env {
        assert!(env.lines().any(|l| l == format!("{k}={v}")), "{k} missing from {env}");
    }
    assert!(env.lines().any(|l| l == "CUDA_VISIBLE_DEVICES=2"), "{env}");
    assert!(env.lines().any(|l| l == "CUDA_DEVICE_ORDER=PCI_BUS_ID"), "{env}");
    // Its workspace is its working directory, and it may write there.
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd"), spec.workspace);
    (h.exec)(&info.id, &["sh", "-c", "echo from-inside > probe.txt"]).expect("write in workspace");
    let on_host = std::fs::read_to_string(spec.workspace.join("probe.txt")).expect("on the host");
    assert_eq!(on_host.trim(), "from-inside");
    assert_eq!((h.exec)(&info.id, &["id", "-u"]).expect("id").trim(), "1000");
    // Its port answers on its own address.
    let ip = info.ip.expect("an address");
    assert!(ip.is_loopback(), "{ip}");
    let answered = probe::wait_until_http(SocketAddr::new(ip, SESSION_PORT), Duration::from_secs(10)).await;
    assert!(answered.is_some(), "port {SESSION_PORT} never answered");
    h.runtime.remove(&info.id).await.expect("remove");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_managed_sees_running_and_exited_processes_and_internal_sessions_are_refused() {
    let h = harness().await;
    let mut started = Vec::new();
    for gpu in [0, 1] {
        let spec = h.spec(&h.session(Exposure::External, gpu)).await;
        started.push(h.runtime.create_and_start(&spec).await.expect("create"));
    }
    let (running, exited) = (&started[0], &started[1]);
    h.runtime.stop(&exited.id, Duration::from_secs(0)).await.expect("stop");
    let mine: BTreeMap<String, ContainerInfo> = h
        .runtime
        .list_managed()
        .await
        .expect("list")
        .into_iter()
        .filter(|c| h.config.extra_labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
        .map(|c| (c.id.clone(), c))
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(mine[&running.id].state, ContainerState::Running);
    assert!(mine[&running.id].ip.is_some());
    // SIGTERM ends Python with 128 + 15, as Docker would report it.
    assert_eq!(mine[&exited.id].state, ContainerState::Exited { exit_code: Some(143) });
    assert_eq!(mine[&exited.id].ip, None, "an exited process gives its address back");
    assert!(mine.values().all(|c| c.labels.contains_key(LABEL_SESSION_ID)));
    for id in mine.keys() {
        h.runtime.remove(id).await.expect("remove");
    }

    let internal = h.spec(&h.session(Exposure::Internal, 3)).await;
    let refused = h.runtime.create_and_start(&internal).await;
    assert!(format!("{refused:?}").contains("internal sessions"), "{refused:?}");
    assert!(h.runtime.inspect(&internal.name).await.expect("inspect").is_none(), "nothing left behind");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn there_is_no_sessions_network_to_describe() {
    let h = harness().await;
    for internal in [false, true] {
        let r = h.runtime.sessions_network(&h.config.external_network, internal).await;
        assert!(format!("{r:?}").contains("no sessions network"), "{r:?}");
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_do_not_outlive_the_runtime() {
    let (h, rt) = harness_and_runtime().await;
    let spec = h.spec(&h.session(Exposure::External, 0)).await;
    let info = rt.create_and_start(&spec).await.expect("create");
    let pid = rt.pid(&info.id).expect("pid");
    // The harness holds the other handle.
    drop(rt);
    drop(h);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(tokio::time::Instant::now() < deadline, "process {pid} outlived its runtime");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
