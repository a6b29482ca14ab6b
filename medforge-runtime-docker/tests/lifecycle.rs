//! The session lifecycle on a real dockerd: `Sessions` over the SQLite
//! store, `DirStorage` and `DockerRuntime`, with the test pack.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use medforge_core::events::{Event, EventContext, MemoryEvents, StopReason};
use medforge_core::lifecycle::{CONTAINER_EXITED, LifecycleConfig, LifecycleError, Sessions, StopOutcome};
use medforge_core::model::{self, Exposure, GpuId, Session, SessionStatus, User};
use medforge_core::runtime::{ContainerRuntime, container_name, session_container_spec};
use medforge_core::storage::{DirStorage, SnapshotKind, Storage};
use medforge_core::store::{AllocationError, AllocationRequest, NewUser, Seed, SqliteStore, Store};
use serde_json::Value;

struct Stack {
    sessions: Arc<Sessions>,
    store: Arc<dyn Store>,
    storage: DirStorage,
    runtime: Arc<dyn ContainerRuntime>,
    events: Arc<MemoryEvents>,
    config: LifecycleConfig,
    run: String,
    db: std::path::PathBuf,
    workspaces: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Stack {
    async fn new(image: &str, tune: impl FnOnce(&mut LifecycleConfig)) -> Self {
        let (run, containers) = common::run_config();
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("medforge.db");
        let workspaces = dir.path().join("workspaces");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db.to_str().expect("path")).await.expect("store"));
        store.seed(&Seed { default_pack_image: image.into(), ..Seed::default() }).await.expect("seed");
        let storage = DirStorage::new(&workspaces).expect("storage");
        let runtime: Arc<dyn ContainerRuntime> = Arc::new(common::runtime().await);
        let events = Arc::new(MemoryEvents::default());
        let mut config = LifecycleConfig {
            containers,
            stop_grace: Duration::from_secs(2),
            ready_timeout: Duration::from_secs(20),
            ..LifecycleConfig::default()
        };
        tune(&mut config);
        let sessions = Arc::new(Sessions::new(
            store.clone(),
            runtime.clone(),
            Arc::new(storage.clone()),
            events.clone(),
            config.clone(),
        ));
        Self { sessions, store, storage, runtime, events, config, run, db, workspaces, _dir: dir }
    }

    /// A second `Sessions` over the same store and runtime, as after a restart.
    fn restarted(&self) -> Sessions {
        Sessions::new(
            self.store.clone(),
            self.runtime.clone(),
            Arc::new(self.storage.clone()),
            self.events.clone(),
            self.config.clone(),
        )
    }

    async fn user(&self, name: &str) -> User {
        let new = NewUser::new(format!("{name}@example.org").parse().expect("email"), "h".into());
        self.store.create_user(new).await.expect("user")
    }

    async fn create(&self, user: &User) -> Result<Session, LifecycleError> {
        let req =
            AllocationRequest { user_id: user.id, exposure: Exposure::External, pack_id: None, now: model::now() };
        self.sessions.create(req, &EventContext::request("test")).await
    }

    fn containers(&self) -> BTreeSet<String> {
        common::docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label={}={}", common::RUN_LABEL, self.run),
            "--format",
            "{{.Names}}",
        ])
        .lines()
        .map(str::to_owned)
        .collect()
    }

    async fn active(&self) -> Vec<Session> {
        self.store.active_sessions().await.expect("active")
    }

    fn finish(self) {
        common::cleanup_run(&self.run, &self.config.containers);
    }
}

fn inspect(name: &str) -> Value {
    let text = common::docker(&["inspect", name]);
    let mut all: Vec<Value> = serde_json::from_str(&text).expect("docker inspect json");
    all.pop().expect("one container")
}

fn event_names(events: &MemoryEvents) -> Vec<&'static str> {
    events.take().iter().map(|(e, _)| e.name()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seven_sessions_start_concurrently_and_the_eighth_is_refused() {
    let stack = Arc::new(Stack::new(&common::test_pack_image(), |_| {}).await);
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(stack.user(&format!("seven{i}")).await);
    }
    let tasks: Vec<_> = users[..7]
        .iter()
        .cloned()
        .map(|u| {
            let stack = stack.clone();
            tokio::spawn(async move { stack.create(&u).await })
        })
        .collect();
    let mut sessions = Vec::new();
    for t in tasks {
        sessions.push(t.await.expect("task").expect("create"));
    }
    assert!(sessions.iter().all(|s| s.status == SessionStatus::Running && s.started_at.is_some()));
    let gpus: BTreeSet<u32> = sessions.iter().map(|s| s.gpu_id.0).collect();
    assert_eq!(gpus, (0..7).collect());
    let eighth = stack.create(&users[7]).await;
    assert!(matches!(eighth, Err(LifecycleError::Allocation(AllocationError::NoGpusAvailable))), "{eighth:?}");

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
        assert_eq!(mounts[0]["Source"].as_str(), s.workspace_zfs.as_deref());
    }
    for s in &sessions {
        stack.sessions.stop(s.id, StopReason::User, &EventContext::default()).await.expect("stop");
    }
    assert!(stack.active().await.is_empty());
    assert!(stack.containers().is_empty(), "{:?}", stack.containers());
    Arc::try_unwrap(stack).ok().expect("sole owner").finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workspace_survives_stop_and_the_stop_snapshot_holds_it() {
    let stack = Stack::new(&common::test_pack_image(), |_| {}).await;
    let user = stack.user("persist").await;
    let first = stack.create(&user).await.expect("create");
    let id = first.container_id.clone().expect("container id");
    common::docker_exec(&id, &["sh", "-c", "echo 'epoch 12: loss 0.031' > /workspace/train.log"]).expect("write");

    let outcome = stack.sessions.stop(first.id, StopReason::User, &EventContext::default()).await.expect("stop");
    let StopOutcome::Stopped(ended) = outcome else { panic!("{outcome:?}") };
    assert_eq!(ended.status, SessionStatus::Stopped);
    assert!(ended.stopped_at.is_some());
    assert!(stack.containers().is_empty(), "the container is removed on stop");
    let snapshots = stack.storage.list_snapshots(user.id).await.expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].name.kind(), SnapshotKind::Stop);
    assert!(snapshots[0].name.as_str().ends_with(&format!("-{}", first.slug)));
    let saved = std::fs::read_to_string(stack.storage.snapshot_path(user.id, &snapshots[0].name).join("train.log"))
        .expect("file in the snapshot");
    assert_eq!(saved.trim(), "epoch 12: loss 0.031");
    let names = event_names(&stack.events);
    assert_eq!(names, vec!["session.start", "session.snapshot", "session.stop"]);

    // Stopping again is a no-op that says so.
    let again = stack.sessions.stop(first.id, StopReason::User, &EventContext::default()).await.expect("stop");
    assert!(matches!(again, StopOutcome::AlreadyTerminal(_)));

    let second = stack.create(&user).await.expect("create again");
    assert_ne!(second.slug, first.slug);
    let read = common::docker_exec(second.container_id.as_deref().expect("id"), &["cat", "/workspace/train.log"]);
    assert_eq!(read.expect("file is there").trim(), "epoch 12: loss 0.031");
    stack.sessions.stop(second.id, StopReason::Admin, &EventContext::default()).await.expect("stop");
    stack.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_container_is_marked_error_within_two_seconds_and_frees_its_gpu() {
    let stack = Stack::new(&common::test_pack_image(), |_| {}).await;
    let watcher = tokio::spawn(stack.sessions.clone().watch(std::future::pending()));
    // Let the watcher subscribe before the death.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let user = stack.user("victim").await;
    let s = stack.create(&user).await.expect("create");
    common::docker_kill(s.container_id.as_deref().expect("id")).expect("docker kill");
    let killed = tokio::time::Instant::now();
    let dead = loop {
        let now = stack.store.session(s.id).await.expect("read").expect("row");
        if now.status != SessionStatus::Running || killed.elapsed() > Duration::from_secs(5) {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let took = killed.elapsed();
    assert_eq!(dead.status, SessionStatus::Error);
    assert_eq!(dead.error_message.as_deref(), Some(CONTAINER_EXITED));
    assert!(took < Duration::from_secs(2), "death noticed after {took:?}");
    let gpu = stack.store.list_gpus().await.expect("gpus").into_iter().find(|g| g.id == s.gpu_id).expect("gpu");
    assert!(gpu.session_id.is_none(), "the GPU is free again");
    let other = stack.user("next").await;
    assert_eq!(stack.create(&other).await.expect("create").gpu_id, s.gpu_id);
    // The death left a snapshot and a stop event with its reason.
    let snaps = stack.storage.list_snapshots(user.id).await.expect("snapshots");
    assert!(snaps.iter().any(|n| n.name.kind() == SnapshotKind::Death));
    let stops: Vec<_> = stack
        .events
        .take()
        .into_iter()
        .filter_map(|(e, _)| match e {
            Event::SessionStop { session_id, reason, .. } if session_id == s.id => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(stops, vec![StopReason::ContainerDeath]);
    watcher.abort();
    stack.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_poller_catches_a_death_the_events_missed() {
    let stack = Stack::new(&common::test_pack_image(), |_| {}).await;
    let user = stack.user("polled").await;
    let s = stack.create(&user).await.expect("create");
    // No watcher running: only the poll can notice.
    common::docker(&["rm", "-f", s.container_id.as_deref().expect("id")]);
    assert_eq!(stack.sessions.poll_once().await.expect("poll"), 1);
    let row = stack.store.session(s.id).await.expect("read").expect("row");
    assert_eq!((row.status, row.error_message.as_deref()), (SessionStatus::Error, Some(CONTAINER_EXITED)));
    assert_eq!(stack.sessions.poll_once().await.expect("poll"), 0, "a death is handled once");
    stack.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_starts_end_as_error_and_hold_no_gpu() {
    // An image that is not there.
    let stack = Stack::new("medforge-no-such-image:never", |_| {}).await;
    let user = stack.user("unlucky").await;
    let r = stack.create(&user).await;
    let Err(LifecycleError::StartFailed { session_id, message }) = r else { panic!("{r:?}") };
    assert!(message.contains("medforge-no-such-image:never"), "{message}");
    let row = stack.store.session(session_id).await.expect("read").expect("row");
    assert_eq!(row.status, SessionStatus::Error);
    assert_eq!(row.error_message.as_deref(), Some(message.as_str()));
    assert!(stack.active().await.is_empty(), "no GPU held");
    assert_eq!(event_names(&stack.events), vec!["session.start_failed"]);
    stack.finish();

    // A container that never answers on its port: removed after the timeout.
    let silent = common::silent_pack_image();
    let stack = Stack::new(&silent, |c| c.ready_timeout = Duration::from_secs(1)).await;
    let user = stack.user("silent").await;
    let r = stack.create(&user).await;
    assert!(
        matches!(&r, Err(LifecycleError::StartFailed { message, .. }) if message.contains("did not answer")),
        "{r:?}"
    );
    assert!(stack.active().await.is_empty());
    assert!(stack.containers().is_empty(), "the silent container was removed: {:?}", stack.containers());
    stack.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_during_start_wins_and_leaves_nothing_running() {
    let stack = Arc::new(Stack::new(&common::silent_pack_image(), |c| c.ready_timeout = Duration::from_secs(60)).await);
    let user = stack.user("impatient").await;
    let creating = {
        let stack = stack.clone();
        let user = user.clone();
        tokio::spawn(async move { stack.create(&user).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let row = loop {
        let active = stack.active().await;
        if let Some(row) = active.into_iter().next().filter(|_| !stack.containers().is_empty()) {
            break row;
        }
        assert!(tokio::time::Instant::now() < deadline, "the start never got as far as a container");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let outcome = stack.sessions.stop(row.id, StopReason::User, &EventContext::default()).await.expect("stop");
    assert!(matches!(&outcome, StopOutcome::Stopped(s) if s.status == SessionStatus::Stopped), "{outcome:?}");
    // The start gives up promptly (not after its 60 s), and says why.
    let started = tokio::time::timeout(Duration::from_secs(10), creating).await.expect("create gave up").expect("task");
    assert!(
        matches!(&started, Err(LifecycleError::StartFailed { message, .. }) if message.contains("ended while it started")),
        "{started:?}"
    );
    let row = stack.store.session(row.id).await.expect("read").expect("row");
    assert_eq!(row.status, SessionStatus::Stopped, "the stop's outcome stands");
    assert!(stack.active().await.is_empty());
    assert!(stack.containers().is_empty(), "{:?}", stack.containers());
    let names = event_names(&stack.events);
    assert!(!names.contains(&"session.start_failed"), "{names:?}");
    assert!(names.contains(&"session.stop"), "{names:?}");
    Arc::try_unwrap(stack).ok().expect("sole owner").finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_after_a_crash_leaves_nothing_stranded() {
    let stack = Stack::new(&common::silent_pack_image(), |c| c.ready_timeout = Duration::from_secs(120)).await;

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
        .args(["--label", &format!("{}={}", common::RUN_LABEL, stack.run)])
        .args(["--network-prefix", &format!("mftest-{}", stack.run)])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{} (built by cargo test): {e}", example.display()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stack.containers().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the example never started its container");
        assert!(child.try_wait().expect("child").is_none(), "the example exited early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().expect("SIGKILL the example"); // the process dies here, mid-create
    child.wait().expect("reap");
    let rows = stack.active().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, SessionStatus::Starting);

    // 2. A running session whose container vanished while the server was down.
    let vanished = stack.user("vanished").await;
    let row = stack
        .store
        .allocate_session(AllocationRequest {
            user_id: vanished.id,
            exposure: Exposure::External,
            pack_id: None,
            now: model::now(),
        })
        .await
        .expect("allocate");
    let t = medforge_core::store::Transition::new(SessionStatus::Starting, SessionStatus::Running, model::now());
    assert!(stack.store.transition_session(row.id, t).await.expect("transition"));

    // 3. A container with no row at all.
    let ghost = {
        let session = Session { id: medforge_core::model::SessionId::new_random(), gpu_id: GpuId(6), ..row.clone() };
        let mut session = session;
        session.slug = medforge_core::model::Slug::generate();
        let ws = stack.storage.ensure_workspace(session.user_id, None).await.expect("ws");
        let spec = session_container_spec(&session, &common::silent_pack_image(), &ws, &stack.config.containers);
        stack.runtime.create_and_start(&spec).await.expect("orphan container")
    };
    assert_eq!(stack.containers().len(), 2);

    let report = stack.restarted().reconcile().await.expect("reconcile");
    assert_eq!(report.failed.len(), 2, "{report:?}");
    assert_eq!(report.orphans_removed, vec![ghost.name.clone()]);
    assert!(stack.active().await.is_empty(), "no row stays active without a container");
    assert!(stack.containers().is_empty(), "no container stays without a row: {:?}", stack.containers());
    assert!(stack.store.list_gpus().await.expect("gpus").iter().all(|g| g.session_id.is_none()), "no GPU held");
    // A second pass finds nothing to do.
    let again = stack.restarted().reconcile().await.expect("reconcile");
    assert_eq!(again, Default::default());
    stack.finish();
}
