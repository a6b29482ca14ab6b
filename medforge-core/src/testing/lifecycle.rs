//! The session lifecycle contract: `Lifecycle` over the SQLite store,
//! `DirStorage` and the runtime under test, against its real engine, with
//! the test pack. Every runtime (Docker, Podman) runs these cases
//! unchanged through [`crate::lifecycle_contract_tests!`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, ManualClock, SystemClock};
use crate::events::{Event, EventContext, MemoryEvents, StopReason};
use crate::lifecycle::{CONTAINER_EXITED, Lifecycle, LifecycleConfig, LifecycleError, StopOutcome};
use crate::limits::SessionLimits;
use crate::model::WarningKind;
use crate::model::{self, Exposure, GpuId, Session, SessionStatus, User};
use crate::runtime::{
    ContainerRuntime, ContainerState, LABEL_SESSION_ID, LABEL_SLUG, LABEL_USER_ID, SessionContainerConfig,
    container_name, session_container_spec,
};
use crate::storage::{DirStorage, SnapshotKind, Storage};
use crate::store::Extension;
use crate::store::{AllocationError, AllocationRequest, NewUser, Seed, SqliteStore, Store};

type Exec = dyn Fn(&str, &[&str]) -> Result<String, String> + Send + Sync;
type Kill = dyn Fn(&str) -> Result<(), String> + Send + Sync;

/// A runtime and its engine, for one case.
pub struct LifecycleHarness {
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The test pack (HTTP on :8080 as uid 1000, with a shell).
    pub image: String,
    /// A variant that never answers on its port.
    pub silent_image: String,
    /// Networks and labels unique to this run (its label is the run's).
    pub config: SessionContainerConfig,
    /// The label (key, value) every container of this run carries.
    pub run_label: (String, String),
    /// Runs a command in a container (by id): stdout, or stderr as the error.
    pub exec: Box<Exec>,
    /// Kills a container from outside (as the OOM killer would).
    pub kill: Box<Kill>,
    teardown: super::Teardown,
}

impl std::fmt::Debug for LifecycleHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LifecycleHarness").field("runtime", &self.runtime).field("image", &self.image).finish()
    }
}

impl LifecycleHarness {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        runtime: Arc<dyn ContainerRuntime>,
        image: impl Into<String>,
        silent_image: impl Into<String>,
        config: SessionContainerConfig,
        run_label: (String, String),
        exec: impl Fn(&str, &[&str]) -> Result<String, String> + Send + Sync + 'static,
        kill: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            runtime,
            image: image.into(),
            silent_image: silent_image.into(),
            config,
            run_label,
            exec: Box::new(exec),
            kill: Box::new(kill),
            teardown: super::Teardown::default(),
        }
    }

    pub fn with_teardown(mut self, teardown: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        self.teardown = super::Teardown::new(teardown);
        self
    }

    pub async fn finish(self) {
        self.teardown.run().await;
    }

    /// A fresh stack (database, workspaces, `Lifecycle`) running `image`.
    pub async fn stack(&self, image: &str, tune: impl FnOnce(&mut LifecycleConfig)) -> LifecycleStack {
        self.stack_on(image, tune, Arc::new(SystemClock)).await
    }

    /// The same on `clock` (a `ManualClock` moves the time-based rules).
    pub async fn stack_on(
        &self,
        image: &str,
        tune: impl FnOnce(&mut LifecycleConfig),
        clock: Arc<dyn Clock>,
    ) -> LifecycleStack {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("medforge.db");
        let workspaces = dir.path().join("workspaces");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db.to_str().expect("path")).await.expect("store"));
        store.seed(&Seed { default_pack_image: image.into(), ..Seed::default() }).await.expect("seed");
        let storage = DirStorage::new(&workspaces).expect("storage");
        let events = Arc::new(MemoryEvents::default());
        let mut config = LifecycleConfig {
            containers: self.config.clone(),
            stop_grace: Duration::from_secs(2),
            ready_timeout: Duration::from_secs(20),
            ..LifecycleConfig::default()
        };
        tune(&mut config);
        let sessions = Arc::new(
            Lifecycle::new(
                store.clone(),
                self.runtime.clone(),
                Arc::new(storage.clone()),
                events.clone(),
                config.clone(),
            )
            .with_clock(clock),
        );
        LifecycleStack {
            sessions,
            store,
            storage,
            runtime: self.runtime.clone(),
            events,
            config,
            run_label: self.run_label.clone(),
            db,
            workspaces,
            _dir: dir,
        }
    }
}

/// `Lifecycle` and what it runs on, for one case.
pub struct LifecycleStack {
    pub sessions: Arc<Lifecycle>,
    pub store: Arc<dyn Store>,
    pub storage: DirStorage,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub events: Arc<MemoryEvents>,
    pub config: LifecycleConfig,
    run_label: (String, String),
    pub db: std::path::PathBuf,
    pub workspaces: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for LifecycleStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LifecycleStack").field("db", &self.db).finish_non_exhaustive()
    }
}

impl LifecycleStack {
    /// A second `Lifecycle` over the same store and runtime, as after a restart.
    pub fn restarted(&self) -> Lifecycle {
        Lifecycle::new(
            self.store.clone(),
            self.runtime.clone(),
            Arc::new(self.storage.clone()),
            self.events.clone(),
            self.config.clone(),
        )
    }

    pub async fn user(&self, name: &str) -> User {
        let new = NewUser::new(format!("{name}@example.org").parse().expect("email"), "h".into());
        self.store.create_user(new).await.expect("user")
    }

    pub async fn create(&self, user: &User) -> Result<Session, LifecycleError> {
        let req = AllocationRequest {
            user_id: user.id,
            exposure: Exposure::External,
            pack_id: None,
            now: model::now(),
            expires_at: None,
        };
        self.sessions.create(req, &EventContext::request("test")).await
    }

    /// The names of this run's containers, as the engine lists them.
    pub async fn containers(&self) -> BTreeSet<String> {
        let (key, value) = &self.run_label;
        let all = self.runtime.list_managed().await.expect("list");
        all.into_iter().filter(|c| c.labels.get(key) == Some(value)).map(|c| c.name).collect()
    }

    pub async fn active(&self) -> Vec<Session> {
        self.store.active_sessions().await.expect("active")
    }
}

fn event_names(events: &MemoryEvents) -> Vec<&'static str> {
    events.take().iter().map(|(e, _)| e.name()).collect()
}

/// Expands every case of this module into a `#[tokio::test]` on a fresh
/// harness from `$harness` (an async fn returning [`LifecycleHarness`]).
#[macro_export]
macro_rules! lifecycle_contract_tests {
    ($harness:path) => {
        $crate::__contract_cases!(lifecycle, $harness;
            seven_sessions_start_concurrently_and_the_eighth_is_refused,
            workspace_survives_stop_and_the_stop_snapshot_holds_it,
            a_killed_container_is_marked_error_within_two_seconds_and_frees_its_gpu,
            the_poller_catches_a_death_the_events_missed,
            failed_starts_end_as_error_and_hold_no_gpu,
            a_stop_during_start_wins_and_leaves_nothing_running,
            reconciliation_after_a_crash_leaves_nothing_stranded,
            the_limits_warn_then_stop_on_the_lifecycles_clock,
        );
    };
}

pub async fn seven_sessions_start_concurrently_and_the_eighth_is_refused(h: &LifecycleHarness) {
    let stack = Arc::new(h.stack(&h.image, |_| {}).await);
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
    for s in &sessions {
        let c = stack.runtime.inspect(&container_name(&s.slug)).await.expect("inspect").expect("a container");
        assert_eq!(Some(c.id.as_str()), s.container_id.as_deref());
        assert_eq!(c.state, ContainerState::Running);
        assert!(c.ip.is_some(), "an address on the sessions network");
        assert_eq!(c.labels.get(LABEL_SESSION_ID), Some(&s.id.to_string()));
        assert_eq!(c.labels.get(LABEL_SLUG), Some(&s.slug.to_string()));
        assert_eq!(c.labels.get(LABEL_USER_ID), Some(&s.user_id.to_string()));
        let env = (h.exec)(&c.id, &["env"]).expect("env");
        assert!(env.contains(&format!("MEDFORGE_SESSION_ID={}", s.id)), "{env}");
        assert!(env.contains(&format!("MEDFORGE_GPU_ID={}", s.gpu_id)), "{env}");
        // The GPU said outright (or `void`), whatever the image sets.
        let visible = crate::runtime::visible_devices(stack.config.containers.gpu_mode, s.gpu_id);
        assert!(env.lines().any(|l| l == format!("NVIDIA_VISIBLE_DEVICES={visible}")), "{env}");
        assert_eq!((h.exec)(&c.id, &["id", "-u"]).expect("id").trim(), "1000");
    }
    for s in &sessions {
        stack.sessions.stop(s.id, StopReason::User, &EventContext::default()).await.expect("stop");
    }
    assert!(stack.active().await.is_empty());
    assert!(stack.containers().await.is_empty(), "{:?}", stack.containers().await);
}

pub async fn workspace_survives_stop_and_the_stop_snapshot_holds_it(h: &LifecycleHarness) {
    let stack = h.stack(&h.image, |_| {}).await;
    let user = stack.user("persist").await;
    let first = stack.create(&user).await.expect("create");
    let id = first.container_id.clone().expect("container id");
    (h.exec)(&id, &["sh", "-c", "echo 'epoch 12: loss 0.031' > /workspace/train.log"]).expect("write");

    let outcome = stack.sessions.stop(first.id, StopReason::User, &EventContext::default()).await.expect("stop");
    let StopOutcome::Stopped(ended) = outcome else { panic!("{outcome:?}") };
    assert_eq!(ended.status, SessionStatus::Stopped);
    assert!(ended.stopped_at.is_some());
    assert!(stack.containers().await.is_empty(), "the container is removed on stop");
    let snapshots = stack.storage.list_snapshots(user.id).await.expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].name.kind(), SnapshotKind::Stop);
    assert!(snapshots[0].name.as_str().ends_with(&format!("-{}", first.slug)));
    let saved = std::fs::read_to_string(stack.storage.snapshot_path(user.id, &snapshots[0].name).join("train.log"))
        .expect("file in the snapshot");
    assert_eq!(saved.trim(), "epoch 12: loss 0.031");
    assert_eq!(event_names(&stack.events), vec!["session.start", "session.snapshot", "session.stop"]);

    // Stopping again is a no-op that says so.
    let again = stack.sessions.stop(first.id, StopReason::User, &EventContext::default()).await.expect("stop");
    assert!(matches!(again, StopOutcome::AlreadyTerminal(_)));

    let second = stack.create(&user).await.expect("create again");
    assert_ne!(second.slug, first.slug);
    let read = (h.exec)(second.container_id.as_deref().expect("id"), &["cat", "/workspace/train.log"]);
    assert_eq!(read.expect("file is there").trim(), "epoch 12: loss 0.031");
    stack.sessions.stop(second.id, StopReason::Admin, &EventContext::default()).await.expect("stop");
}

pub async fn a_killed_container_is_marked_error_within_two_seconds_and_frees_its_gpu(h: &LifecycleHarness) {
    let stack = h.stack(&h.image, |_| {}).await;
    let watcher = tokio::spawn(stack.sessions.clone().watch(std::future::pending()));
    // Let the watcher subscribe before the death.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let user = stack.user("victim").await;
    let s = stack.create(&user).await.expect("create");
    (h.kill)(s.container_id.as_deref().expect("id")).expect("kill");
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
    let next = stack.create(&other).await.expect("create");
    assert_eq!(next.gpu_id, s.gpu_id);
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
    stack.sessions.stop(next.id, StopReason::User, &EventContext::default()).await.expect("stop");
}

pub async fn the_poller_catches_a_death_the_events_missed(h: &LifecycleHarness) {
    let stack = h.stack(&h.image, |_| {}).await;
    let user = stack.user("polled").await;
    let s = stack.create(&user).await.expect("create");
    // No watcher running: only the poll can notice.
    stack.runtime.remove(s.container_id.as_deref().expect("id")).await.expect("remove behind its back");
    assert_eq!(stack.sessions.poll_once().await.expect("poll"), 1);
    let row = stack.store.session(s.id).await.expect("read").expect("row");
    assert_eq!((row.status, row.error_message.as_deref()), (SessionStatus::Error, Some(CONTAINER_EXITED)));
    assert_eq!(stack.sessions.poll_once().await.expect("poll"), 0, "a death is handled once");
}

pub async fn failed_starts_end_as_error_and_hold_no_gpu(h: &LifecycleHarness) {
    // An image that is not there.
    let stack = h.stack("medforge-no-such-image:never", |_| {}).await;
    let user = stack.user("unlucky").await;
    let r = stack.create(&user).await;
    let Err(LifecycleError::StartFailed { session_id, message }) = r else { panic!("{r:?}") };
    assert!(message.contains("medforge-no-such-image:never"), "{message}");
    let row = stack.store.session(session_id).await.expect("read").expect("row");
    assert_eq!(row.status, SessionStatus::Error);
    assert_eq!(row.error_message.as_deref(), Some(message.as_str()));
    assert!(stack.active().await.is_empty(), "no GPU held");
    assert_eq!(event_names(&stack.events), vec!["session.start_failed"]);

    // A container that never answers on its port: removed after the timeout.
    let stack = h.stack(&h.silent_image, |c| c.ready_timeout = Duration::from_secs(1)).await;
    let user = stack.user("silent").await;
    let r = stack.create(&user).await;
    assert!(
        matches!(&r, Err(LifecycleError::StartFailed { message, .. }) if message.contains("did not answer")),
        "{r:?}"
    );
    assert!(stack.active().await.is_empty());
    assert!(stack.containers().await.is_empty(), "the silent container was removed");
}

/// Waits until `stack` has a starting row whose container exists.
async fn a_start_half_way(stack: &LifecycleStack) -> Session {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let active = stack.active().await;
        if let Some(row) = active.into_iter().next()
            && !stack.containers().await.is_empty()
        {
            return row;
        }
        assert!(tokio::time::Instant::now() < deadline, "the start never got as far as a container");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn a_stop_during_start_wins_and_leaves_nothing_running(h: &LifecycleHarness) {
    let stack = Arc::new(h.stack(&h.silent_image, |c| c.ready_timeout = Duration::from_secs(60)).await);
    let user = stack.user("impatient").await;
    let creating = {
        let stack = stack.clone();
        let user = user.clone();
        tokio::spawn(async move { stack.create(&user).await })
    };
    let row = a_start_half_way(&stack).await;
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
    assert!(stack.containers().await.is_empty());
    let names = event_names(&stack.events);
    assert!(!names.contains(&"session.start_failed"), "{names:?}");
    assert!(names.contains(&"session.stop"), "{names:?}");
}

/// After a crash (a create cut off half-way, a container gone while the
/// server was down, a container with no row), a restarted `Lifecycle`
/// reconciles: nothing stays active without a container, no container
/// without a row, no GPU held.
pub async fn reconciliation_after_a_crash_leaves_nothing_stranded(h: &LifecycleHarness) {
    let stack = Arc::new(h.stack(&h.silent_image, |c| c.ready_timeout = Duration::from_secs(120)).await);
    // 1. A create cut off half-way: the task running it is dropped while
    //    its container runs and its row is still `starting` (as when the
    //    process dies; the runtime-docker tests also SIGKILL a real one).
    let user = stack.user("halfway").await;
    let creating = {
        let stack = stack.clone();
        tokio::spawn(async move { stack.create(&user).await })
    };
    a_start_half_way(&stack).await;
    creating.abort();
    let _ = creating.await;
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
            expires_at: None,
        })
        .await
        .expect("allocate");
    let t = crate::store::Transition::new(SessionStatus::Starting, SessionStatus::Running, model::now());
    assert!(stack.store.transition_session(row.id, t).await.expect("transition"));

    // 3. A container with no row at all.
    let ghost = {
        let mut session = Session { id: crate::model::SessionId::new_random(), gpu_id: GpuId(6), ..row.clone() };
        session.slug = crate::model::Slug::generate();
        let ws = stack.storage.ensure_workspace(session.user_id, None).await.expect("ws");
        let spec = session_container_spec(&session, &h.silent_image, &ws, &stack.config.containers);
        stack.runtime.create_and_start(&spec).await.expect("orphan container")
    };
    assert_eq!(stack.containers().await.len(), 2);

    let report = stack.restarted().reconcile().await.expect("reconcile");
    assert_eq!(report.failed.len(), 2, "{report:?}");
    assert_eq!(report.orphans_removed, vec![ghost.name.clone()]);
    assert!(stack.active().await.is_empty(), "no row stays active without a container");
    assert!(stack.containers().await.is_empty(), "no container stays without a row");
    assert!(stack.store.list_gpus().await.expect("gpus").iter().all(|g| g.session_id.is_none()), "no GPU held");
    // A second pass finds nothing to do.
    let again = stack.restarted().reconcile().await.expect("reconcile");
    assert_eq!(again, Default::default());
}

/// The idle and lifetime rules on a clock the test moves: a day of a
/// session's life in a second. An unused session is warned, then stopped
/// (`idle`) with its snapshot and its GPU freed; a used one is not, until
/// its lifetime, which an extension moves (once, then no more).
pub async fn the_limits_warn_then_stop_on_the_lifecycles_clock(h: &LifecycleHarness) {
    const MIN: Duration = Duration::from_secs(60);
    let clock = Arc::new(ManualClock::starting_now());
    let limits = SessionLimits {
        idle_timeout: Some(120 * MIN),
        max_lifetime: Some(24 * 60 * MIN),
        warn_before: 15 * MIN,
        extend_by: 240 * MIN,
        max_extensions: 1,
    };
    let stack = h.stack_on(&h.image, |c| c.limits = limits, clock.clone()).await;
    let ctx = EventContext::default();
    let mut sessions = Vec::new();
    for name in ["unused", "used"] {
        let user = stack.user(name).await;
        let now = clock.now();
        let req = AllocationRequest {
            user_id: user.id,
            exposure: Exposure::External,
            pack_id: None,
            now,
            expires_at: limits.expires_at(&user, now),
        };
        sessions.push(stack.sessions.create(req, &ctx).await.expect("create"));
    }
    let (unused, used) = (sessions[0].clone(), sessions[1].clone());
    let t0 = clock.now();
    let used_now = |at| {
        let store = stack.store.clone();
        async move { store.record_activity(&[(used.id, at)]).await.expect("activity") }
    };
    assert_eq!(stack.sessions.enforce_limits().await.expect("limits"), Default::default(), "nothing is due");
    let _ = event_names(&stack.events);

    // 1 h 45 min later the unused one is warned; the used one is not.
    clock.advance(105 * MIN);
    used_now(clock.now()).await;
    let report = stack.sessions.enforce_limits().await.expect("limits");
    assert_eq!((report.warned, report.claimed.len()), (vec![unused.id], 0));
    let warned = stack.store.session(unused.id).await.expect("read").expect("there");
    assert_eq!(warned.warning.map(|w| (w.kind, w.stops_at)), Some((WarningKind::Idle, t0 + 120 * MIN)));
    clock.advance(14 * MIN);
    assert!(stack.sessions.enforce_limits().await.expect("limits").claimed.is_empty(), "not before stops_at");

    // At stops_at it is stopped, with its reason and snapshot; its GPU frees.
    clock.advance(MIN);
    used_now(clock.now()).await;
    let report = stack.sessions.enforce_limits().await.expect("limits");
    let [(claimed, reason)] = report.claimed.as_slice() else { panic!("{report:?}") };
    assert_eq!((claimed.id, *reason), (unused.id, StopReason::Idle));
    let ended = stack.sessions.finish_stop(claimed, *reason, &ctx).await.expect("finish");
    assert_eq!((ended.status, ended.stop_reason), (SessionStatus::Stopped, Some(StopReason::Idle)));
    tokio::time::timeout(Duration::from_secs(1), stack.sessions.gpu_freed().notified())
        .await
        .expect("the queue is woken when the GPU frees");
    let snapshots = stack.storage.list_snapshots(unused.user_id).await.expect("snapshots");
    assert!(snapshots.iter().any(|s| s.name.as_str().ends_with(&format!("-{}", unused.slug))), "{snapshots:?}");
    assert!(!stack.active().await.iter().any(|s| s.id == unused.id));
    assert_eq!(event_names(&stack.events), vec!["session.warning", "session.snapshot", "session.stop"]);

    // The used one runs until its lifetime: warned 15 min ahead, extended
    // once (the warning goes), refused the second time, then stopped.
    clock.set(t0 + 24 * 60 * MIN - 15 * MIN);
    used_now(clock.now()).await;
    let report = stack.sessions.enforce_limits().await.expect("limits");
    assert_eq!(report.warned, vec![used.id]);
    let Extension::Extended(extended) = stack.sessions.extend(used.id, &ctx).await.expect("extend") else {
        panic!("not extended")
    };
    assert_eq!((extended.expires_at, extended.warning), (Some(t0 + 28 * 60 * MIN), None));
    assert_eq!(stack.sessions.extend(used.id, &ctx).await.expect("extend"), Extension::LimitReached);
    clock.set(t0 + 28 * 60 * MIN - 15 * MIN);
    used_now(clock.now()).await;
    assert_eq!(stack.sessions.enforce_limits().await.expect("limits").warned, vec![used.id]);
    clock.set(t0 + 28 * 60 * MIN);
    used_now(clock.now()).await;
    let report = stack.sessions.enforce_limits().await.expect("limits");
    let [(claimed, reason)] = report.claimed.as_slice() else { panic!("{report:?}") };
    assert_eq!((claimed.id, *reason), (used.id, StopReason::Lifetime));
    let ended = stack.sessions.finish_stop(claimed, *reason, &ctx).await.expect("finish");
    assert_eq!(ended.stop_reason, Some(StopReason::Lifetime));
    let names = event_names(&stack.events);
    assert_eq!(
        names,
        vec!["session.warning", "session.extend", "session.warning", "session.snapshot", "session.stop"],
        "every automatic stop comes after its warning"
    );
    assert!(stack.containers().await.is_empty());
}
