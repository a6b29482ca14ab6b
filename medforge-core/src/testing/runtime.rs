//! The [`ContainerRuntime`] contract: every case takes a fresh harness and
//! checks one promise against the real engine, reading settings back from
//! inside the container (what the kernel says, not what the API echoes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::model::{self, Exposure, GpuId, PackId, Session, UserId};
use crate::probe;
use crate::runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, GpuMode, LABEL_SESSION_ID, ResourceLimits,
    RuntimeError, RuntimeEvent, SESSION_PORT, SessionContainerConfig, session_container_spec,
};
use crate::storage::{DirStorage, Storage};

type Exec = dyn Fn(&str, &[&str]) -> Result<String, String> + Send + Sync;
type Kill = dyn Fn(&str) -> Result<(), String> + Send + Sync;

/// A fresh runtime for one case, with what the contract needs around it.
pub struct RuntimeHarness {
    pub runtime: Arc<dyn ContainerRuntime>,
    /// An image present on the engine that serves HTTP on :8080 as uid 1000
    /// and has a shell (the test pack).
    pub image: String,
    /// Networks and labels unique to this test run; the harness's teardown
    /// removes what carries them.
    pub config: SessionContainerConfig,
    /// Runs a command in a container (by id) and returns its stdout.
    pub exec: Box<Exec>,
    /// Kills a container (by id) from outside, as `docker kill` or the OOM
    /// killer would: not through the runtime under test.
    pub kill: Box<Kill>,
    /// Workspaces live here, owned by the session user.
    pub storage: DirStorage,
    teardown: super::Teardown,
}

impl std::fmt::Debug for RuntimeHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHarness")
            .field("runtime", &self.runtime)
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

impl RuntimeHarness {
    pub fn new(
        runtime: Arc<dyn ContainerRuntime>,
        image: impl Into<String>,
        config: SessionContainerConfig,
        storage: DirStorage,
        exec: impl Fn(&str, &[&str]) -> Result<String, String> + Send + Sync + 'static,
        kill: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            runtime,
            image: image.into(),
            config,
            exec: Box::new(exec),
            kill: Box::new(kill),
            storage,
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

    /// A session row as the allocator would make it (not stored anywhere).
    pub fn session(&self, exposure: Exposure, gpu: u32) -> Session {
        Session::new_starting(UserId::new_random(), exposure, PackId::new_random(), GpuId(gpu), model::now())
    }

    /// The spec the lifecycle would build for `session`, with its workspace ensured.
    pub async fn spec(&self, session: &Session) -> ContainerSpec {
        let ws = self.storage.ensure_workspace(session.user_id, None).await.expect("workspace");
        session_container_spec(session, &self.image, &ws, &self.config)
    }
}

/// A small, fully specified spec for the pure create-body tests of each
/// runtime: every limit set, GPU `gpu`, image `image`.
pub fn sample_spec(image: &str, gpu: Option<GpuId>) -> ContainerSpec {
    ContainerSpec {
        name: "mf-session-abcdefgh".into(),
        image: image.into(),
        network: crate::runtime::NetworkSpec { name: "medforge-external-sessions".into(), internal: false },
        labels: BTreeMap::from([(crate::runtime::LABEL_MANAGED.into(), "true".into())]),
        env: BTreeMap::from([("MEDFORGE_GPU_ID".into(), "3".into())]),
        user: "1000:1000".into(),
        workspace: "/srv/ws/u1".into(),
        gpu,
        limits: ResourceLimits {
            memory_bytes: Some(1 << 30),
            pids: Some(256),
            shm_bytes: Some(64 << 20),
            nofile: 1024,
            nproc: 512,
        },
        port: 8080,
    }
}

/// Expands every case of this module into a `#[tokio::test]` on a fresh
/// harness from `$harness` (an async fn returning [`RuntimeHarness`]).
#[macro_export]
macro_rules! runtime_contract_tests {
    ($harness:path) => {
        $crate::__contract_cases!(runtime, $harness;
            containers_run_locked_down_as_specified,
            stop_and_remove_are_idempotent,
            a_missing_image_is_an_error_and_leaves_nothing,
            a_taken_name_is_refused,
            list_managed_sees_running_and_exited_containers,
            a_dying_container_is_reported_with_its_session,
            sessions_networks_are_described_as_the_host_sees_them,
        );
    };
}

fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

async fn start(h: &RuntimeHarness, exposure: Exposure) -> (Session, ContainerSpec, ContainerInfo) {
    let session = h.session(exposure, 2);
    let spec = h.spec(&session).await;
    let info = h.runtime.create_and_start(&spec).await.expect("create and start");
    (session, spec, info)
}

pub async fn containers_run_locked_down_as_specified(h: &RuntimeHarness) {
    assert_eq!(h.config.gpu_mode, GpuMode::None, "contract runs need gpu_mode none on machines without GPUs");
    let (session, spec, info) = start(h, Exposure::External).await;
    assert_eq!(info.name, spec.name);
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.session_id(), Some(session.id));
    for (k, v) in &spec.labels {
        assert_eq!(info.labels.get(k), Some(v), "label {k}");
    }
    // What the kernel says about process 1 inside the container.
    let status = (h.exec)(&info.id, &["cat", "/proc/1/status"]).expect("exec");
    assert_eq!(field(&status, "Uid:").and_then(|u| u.split_whitespace().next()), Some("1000"), "{status}");
    assert_eq!(field(&status, "Gid:").and_then(|u| u.split_whitespace().next()), Some("1000"), "{status}");
    assert_eq!(field(&status, "CapEff:"), Some("0000000000000000"), "capabilities left: {status}");
    assert_eq!(field(&status, "CapBnd:"), Some("0000000000000000"), "bounding set left: {status}");
    assert_eq!(field(&status, "NoNewPrivs:"), Some("1"), "{status}");
    let env = (h.exec)(&info.id, &["env"]).expect("exec env");
    for (k, v) in &spec.env {
        assert!(env.lines().any(|l| l == format!("{k}={v}")), "{k} missing from {env}");
    }
    let limits = (h.exec)(&info.id, &["cat", "/proc/1/limits"]).expect("exec limits");
    let ResourceLimits { nofile, .. } = spec.limits;
    let open_files = limits.lines().find(|l| l.starts_with("Max open files")).expect("nofile line");
    assert!(open_files.split_whitespace().any(|w| w == nofile.to_string()), "{open_files}");
    // The workspace is mounted read-write and is the host directory.
    (h.exec)(&info.id, &["sh", "-c", "echo from-inside > /workspace/probe.txt"]).expect("write in workspace");
    let on_host = std::fs::read_to_string(spec.workspace.join("probe.txt")).expect("on the host");
    assert_eq!(on_host.trim(), "from-inside");
    // Its port answers on its address.
    let ip = info.ip.expect("an address on the sessions network");
    let answered = probe::wait_until_http(SocketAddr::new(ip, SESSION_PORT), Duration::from_secs(10)).await;
    assert!(answered.is_some(), "port {SESSION_PORT} never answered");
    h.runtime.remove(&info.id).await.expect("remove");
}

pub async fn stop_and_remove_are_idempotent(h: &RuntimeHarness) {
    let (_, spec, info) = start(h, Exposure::External).await;
    h.runtime.stop(&info.id, Duration::from_secs(1)).await.expect("stop");
    let stopped = h.runtime.inspect(&spec.name).await.expect("inspect").expect("still there");
    assert!(matches!(stopped.state, ContainerState::Exited { .. }), "{:?}", stopped.state);
    h.runtime.stop(&info.id, Duration::from_secs(1)).await.expect("stop twice");
    h.runtime.remove(&info.id).await.expect("remove");
    assert!(h.runtime.inspect(&info.id).await.expect("inspect").is_none());
    h.runtime.remove(&info.id).await.expect("remove twice");
    h.runtime.stop(&info.id, Duration::from_secs(1)).await.expect("stop a missing one");
}

pub async fn a_missing_image_is_an_error_and_leaves_nothing(h: &RuntimeHarness) {
    let session = h.session(Exposure::External, 0);
    let mut spec = h.spec(&session).await;
    spec.image = "medforge-no-such-image:never".into();
    let r = h.runtime.create_and_start(&spec).await;
    assert!(matches!(r, Err(RuntimeError::ImageMissing(ref i)) if i == "medforge-no-such-image:never"), "{r:?}");
    assert!(h.runtime.inspect(&spec.name).await.expect("inspect").is_none());
}

pub async fn a_taken_name_is_refused(h: &RuntimeHarness) {
    let (session, spec, info) = start(h, Exposure::External).await;
    let mut again = h.spec(&h.session(Exposure::External, 1)).await;
    again.name = spec.name.clone();
    let r = h.runtime.create_and_start(&again).await;
    assert!(matches!(r, Err(RuntimeError::NameTaken(_))), "{r:?}");
    // The first container is untouched.
    let first = h.runtime.inspect(&info.id).await.expect("inspect").expect("exists");
    assert_eq!((first.session_id(), first.state), (Some(session.id), ContainerState::Running));
    h.runtime.remove(&info.id).await.expect("remove");
}

pub async fn list_managed_sees_running_and_exited_containers(h: &RuntimeHarness) {
    let (_, _, running) = start(h, Exposure::External).await;
    let (_, _, exited) = start(h, Exposure::Internal).await;
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
    assert!(matches!(mine[&exited.id].state, ContainerState::Exited { .. }));
    assert!(mine.values().all(|c| c.labels.contains_key(LABEL_SESSION_ID)));
    for id in mine.keys() {
        h.runtime.remove(id).await.expect("remove");
    }
}

pub async fn a_dying_container_is_reported_with_its_session(h: &RuntimeHarness) {
    let mut events = h.runtime.events().await.expect("event stream");
    let (session, _, info) = start(h, Exposure::External).await;
    // Killed from outside: the container ends without the runtime's stop.
    (h.kill)(&info.id).expect("kill");
    let started = tokio::time::Instant::now();
    let died = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = events.next().await {
            match event.expect("event") {
                RuntimeEvent::Died { container_id, session_id, .. } if container_id == info.id => return session_id,
                _ => continue,
            }
        }
        None
    })
    .await
    .expect("no die event within 5 s");
    assert_eq!(died, Some(session.id));
    assert!(started.elapsed() < Duration::from_secs(2), "die event took {:?}", started.elapsed());
    h.runtime.remove(&info.id).await.expect("remove");
}

/// The firewall matches on what `sessions_network` says: the bridge must be
/// a real interface on the host, and a container's address must be in the
/// subnet. The rules are IPv4's: the network has no IPv6, and a session
/// container has none at all (`network::session_sysctls`), not even a
/// link-local address.
pub async fn sessions_networks_are_described_as_the_host_sees_them(h: &RuntimeHarness) {
    let (_, _, info) = start(h, Exposure::External).await;
    let ext = h.runtime.sessions_network(&h.config.external_network, false).await.expect("external network");
    assert_eq!(ext.name, h.config.external_network);
    assert!(!ext.internal);
    assert!(!ext.ipv6, "a sessions network with IPv6");
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        let off = (h.exec)(&info.id, &["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"]).expect("exec");
        assert_eq!(off.trim(), "1", "IPv6 is on in a session container");
        let addresses = (h.exec)(&info.id, &["cat", "/proc/net/if_inet6"]).unwrap_or_default();
        assert!(!addresses.contains("eth0"), "a session has an IPv6 address: {addresses}");
    }
    assert!(
        std::path::Path::new("/sys/class/net").join(&ext.bridge).exists(),
        "bridge {} is not an interface on the host",
        ext.bridge
    );
    let Some(std::net::IpAddr::V4(ip)) = info.ip else { panic!("no IPv4 address: {info:?}") };
    assert!(ext.subnets.iter().any(|s| s.contains(ip)), "{ip} is in none of {:?}", ext.subnets);
    let again = h.runtime.sessions_network(&h.config.external_network, false).await.expect("again");
    assert_eq!(again, ext, "idempotent");
    let int = h.runtime.sessions_network(&h.config.internal_network, true).await.expect("internal network");
    assert!(int.internal);
    assert_ne!(int.bridge, ext.bridge);
}
