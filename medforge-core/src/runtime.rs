//! Containers: the `ContainerRuntime` trait that the Docker and Podman
//! plugins implement, and [`session_container_spec`], the pure function that
//! says what a session's container is. Keeping the spec a plain value built
//! by a pure function means the security-relevant settings (user, dropped
//! capabilities, limits, exactly one GPU) are checked by unit tests here,
//! once, and every runtime only translates them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::model::{Exposure, GpuId, Session, SessionId, Slug};
pub use crate::network::{NetworkInfo, SESSION_PORT};
use crate::storage::{SESSION_GID, SESSION_UID, Workspace};

/// Labels every session container carries; the reconciler finds orphans by them.
pub const LABEL_MANAGED: &str = "medforge.managed";
pub const LABEL_SESSION_ID: &str = "medforge.session_id";
pub const LABEL_SLUG: &str = "medforge.slug";
pub const LABEL_USER_ID: &str = "medforge.user_id";
/// The deployment a container belongs to ([`Store::deployment_id`]): put
/// it in [`SessionContainerConfig::extra_labels`] (the server does), so that
/// boot reconciliation, which removes only containers carrying every extra
/// label, never takes another deployment's containers on the same engine
/// for orphans.
///
/// [`Store::deployment_id`]: crate::store::Store::deployment_id
pub const LABEL_DEPLOYMENT: &str = "medforge.deployment";

/// Where the user's workspace is mounted.
pub const WORKSPACE_MOUNT: &str = "/workspace";

/// `mf-session-<slug>`: the container's name, and its host name on the
/// sessions network (what the gate's `X-Upstream` names).
pub fn container_name(slug: &Slug) -> String {
    format!("mf-session-{slug}")
}

/// Whether containers get their GPU through the NVIDIA runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GpuMode {
    #[default]
    Nvidia,
    /// No device request: for hosts without an NVIDIA runtime, and tests.
    None,
}

/// Per-container limits, from config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceLimits {
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub shm_bytes: Option<u64>,
    /// Open files (soft = hard). Podman needs these set explicitly.
    pub nofile: u64,
    /// Processes per user (soft = hard).
    pub nproc: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            memory_bytes: Some(64 << 30),
            pids: Some(4096),
            shm_bytes: Some(8 << 30),
            // Must not exceed dockerd's own hard limit (runc cannot raise it:
            // "error setting rlimit type 7"); 16384 fits common hosts and is
            // plenty for code-server.
            nofile: 16384,
            nproc: 4096,
        }
    }
}

/// What the operator configures about session containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContainerConfig {
    pub external_network: String,
    pub internal_network: String,
    pub gpu_mode: GpuMode,
    pub limits: ResourceLimits,
    /// Added to every container's labels (tests label their run with it).
    pub extra_labels: BTreeMap<String, String>,
}

impl Default for SessionContainerConfig {
    fn default() -> Self {
        Self {
            external_network: "medforge-external-sessions".into(),
            internal_network: "medforge-internal-sessions".into(),
            gpu_mode: GpuMode::Nvidia,
            limits: ResourceLimits::default(),
            extra_labels: BTreeMap::new(),
        }
    }
}

/// The network a container joins; `internal` networks have no egress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: String,
    pub internal: bool,
}

/// Everything a runtime needs to create one session container. Settings
/// that never vary (all capabilities dropped, `no-new-privileges`, no
/// restart, no privileged mode) are not fields: every runtime must apply
/// them, and the runtime contract suite checks that it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub network: NetworkSpec,
    pub labels: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    /// `uid:gid`.
    pub user: String,
    /// Host directory mounted read-write at [`WORKSPACE_MOUNT`].
    pub workspace: PathBuf,
    /// The one GPU this container may use; `None` under `GpuMode::None`.
    pub gpu: Option<GpuId>,
    pub limits: ResourceLimits,
    pub port: u16,
}

/// The container for `session`, running `image`, with `workspace` mounted.
pub fn session_container_spec(
    session: &Session,
    image: &str,
    workspace: &Workspace,
    config: &SessionContainerConfig,
) -> ContainerSpec {
    let network = match session.exposure {
        Exposure::External => NetworkSpec { name: config.external_network.clone(), internal: false },
        Exposure::Internal => NetworkSpec { name: config.internal_network.clone(), internal: true },
    };
    let mut labels = config.extra_labels.clone();
    labels.insert(LABEL_MANAGED.into(), "true".into());
    labels.insert(LABEL_SESSION_ID.into(), session.id.to_string());
    labels.insert(LABEL_SLUG.into(), session.slug.to_string());
    labels.insert(LABEL_USER_ID.into(), session.user_id.to_string());
    let env = BTreeMap::from([
        ("MEDFORGE_SESSION_ID".to_owned(), session.id.to_string()),
        // The host the session is reached at starts with `s-<slug>.`: a pack
        // can build its own URLs from it (and the test pack checks its Host).
        ("MEDFORGE_SESSION_SLUG".to_owned(), session.slug.to_string()),
        ("MEDFORGE_USER_ID".to_owned(), session.user_id.to_string()),
        ("MEDFORGE_EXPOSURE".to_owned(), session.exposure.to_string()),
        ("MEDFORGE_GPU_ID".to_owned(), session.gpu_id.to_string()),
        // Said outright, whatever the image or the engine's default runtime
        // would do: a CUDA base image sets `all`, and an engine whose default
        // runtime is NVIDIA's would then hand every GPU to a session that
        // asked for none.
        ("NVIDIA_VISIBLE_DEVICES".to_owned(), visible_devices(config.gpu_mode, session.gpu_id)),
    ]);
    ContainerSpec {
        name: container_name(&session.slug),
        image: image.to_owned(),
        network,
        labels,
        env,
        user: format!("{SESSION_UID}:{SESSION_GID}"),
        workspace: workspace.host_path.clone(),
        gpu: match config.gpu_mode {
            GpuMode::Nvidia => Some(session.gpu_id),
            GpuMode::None => None,
        },
        limits: config.limits.clone(),
        port: SESSION_PORT,
    }
}

/// `NVIDIA_VISIBLE_DEVICES` for a session: its GPU (the index the device
/// request names), or `void` (none, with the NVIDIA runtime or without).
pub fn visible_devices(mode: GpuMode, gpu: GpuId) -> String {
    match mode {
        GpuMode::Nvidia => gpu.0.to_string(),
        GpuMode::None => "void".to_owned(),
    }
}

/// A container's state as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    /// Stopped or dead; the exit code where known.
    Exited {
        exit_code: Option<i64>,
    },
    /// Anything else the runtime says (paused, restarting, ...).
    Other(String),
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerState::Created => f.write_str("created"),
            ContainerState::Running => f.write_str("running"),
            ContainerState::Exited { .. } => f.write_str("exited"),
            ContainerState::Other(s) => f.write_str(s),
        }
    }
}

/// A container as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub state: ContainerState,
    /// Its address on its sessions network, while it has one.
    pub ip: Option<IpAddr>,
    pub labels: BTreeMap<String, String>,
}

impl ContainerInfo {
    /// The session this container belongs to, by its label.
    pub fn session_id(&self) -> Option<SessionId> {
        self.labels.get(LABEL_SESSION_ID).and_then(|v| v.parse().ok())
    }
}

/// What the runtime's event stream reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// A managed container stopped running, for whatever reason.
    Died { container_id: String, session_id: Option<SessionId>, exit_code: Option<i64> },
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("image {0} is not present (MedForge never pulls images)")]
    ImageMissing(String),
    #[error("a container named {0} already exists")]
    NameTaken(String),
    #[error("the container runtime is unreachable: {0}")]
    Unavailable(String),
    #[error("{operation} failed: {message}")]
    Backend { operation: &'static str, message: String },
}

/// A container engine that runs session containers.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + fmt::Debug {
    /// Creates the spec's network if missing, then creates and starts the
    /// container. On failure nothing of it is left behind.
    async fn create_and_start(&self, spec: &ContainerSpec) -> Result<ContainerInfo, RuntimeError>;
    /// SIGTERM, then SIGKILL after `grace`. A missing or stopped container is fine.
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;
    /// Removes the container (forcibly). A missing one is fine.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;
    /// The container by id or name, `None` when it does not exist.
    async fn inspect(&self, id_or_name: &str) -> Result<Option<ContainerInfo>, RuntimeError>;
    /// Every container carrying [`LABEL_MANAGED`], running or not.
    async fn list_managed(&self) -> Result<Vec<ContainerInfo>, RuntimeError>;
    /// Events about managed containers from now on. The stream ends when
    /// the connection to the runtime does; callers reconnect.
    async fn events(&self) -> Result<BoxStream<'static, Result<RuntimeEvent, RuntimeError>>, RuntimeError>;
    /// Creates the sessions network if missing (`internal`: no route off
    /// its bridge) and describes it as the host sees it, for the firewall.
    async fn sessions_network(&self, name: &str, internal: bool) -> Result<NetworkInfo, RuntimeError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{self, PackId, UserId};

    fn session(exposure: Exposure, gpu: u32) -> Session {
        Session {
            slug: "abcdefgh".parse().expect("slug"),
            ..Session::new_starting(UserId::new_random(), exposure, PackId::new_random(), GpuId(gpu), model::now())
        }
    }

    fn workspace() -> Workspace {
        Workspace { host_path: "/tank/ws/u1".into(), name: "tank/ws/u1".into() }
    }

    #[test]
    fn external_session_spec_names_labels_env_user_and_one_gpu() {
        let s = session(Exposure::External, 5);
        let mut cfg = SessionContainerConfig::default();
        cfg.extra_labels.insert("medforge.test_run".into(), "r1".into());
        let spec = session_container_spec(&s, "pack:1", &workspace(), &cfg);
        assert_eq!(spec.name, "mf-session-abcdefgh");
        assert_eq!(spec.image, "pack:1");
        assert_eq!(spec.network, NetworkSpec { name: "medforge-external-sessions".into(), internal: false });
        assert_eq!(spec.user, "1000:1000");
        assert_eq!(spec.workspace, PathBuf::from("/tank/ws/u1"));
        assert_eq!(spec.gpu, Some(GpuId(5)));
        assert_eq!(spec.port, 8080);
        assert_eq!(spec.labels.get(LABEL_MANAGED).map(String::as_str), Some("true"));
        assert_eq!(spec.labels.get(LABEL_SESSION_ID), Some(&s.id.to_string()));
        assert_eq!(spec.labels.get(LABEL_SLUG).map(String::as_str), Some("abcdefgh"));
        assert_eq!(spec.labels.get(LABEL_USER_ID), Some(&s.user_id.to_string()));
        assert_eq!(spec.labels.get("medforge.test_run").map(String::as_str), Some("r1"));
        let env: Vec<_> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            env,
            vec![
                "MEDFORGE_EXPOSURE=external".to_owned(),
                "MEDFORGE_GPU_ID=5".to_owned(),
                format!("MEDFORGE_SESSION_ID={}", s.id),
                "MEDFORGE_SESSION_SLUG=abcdefgh".to_owned(),
                format!("MEDFORGE_USER_ID={}", s.user_id),
                "NVIDIA_VISIBLE_DEVICES=5".to_owned(),
            ]
        );
        assert_eq!(spec.limits, ResourceLimits::default());
    }

    #[test]
    fn internal_sessions_join_the_network_without_egress() {
        let spec = session_container_spec(
            &session(Exposure::Internal, 0),
            "p",
            &workspace(),
            &SessionContainerConfig::default(),
        );
        assert_eq!(spec.network, NetworkSpec { name: "medforge-internal-sessions".into(), internal: true });
        assert_eq!(spec.env.get("MEDFORGE_EXPOSURE").map(String::as_str), Some("internal"));
    }

    #[test]
    fn gpu_mode_none_leaves_the_gpu_out_but_keeps_the_env() {
        let cfg = SessionContainerConfig { gpu_mode: GpuMode::None, ..Default::default() };
        let spec = session_container_spec(&session(Exposure::External, 3), "p", &workspace(), &cfg);
        assert_eq!(spec.gpu, None);
        assert_eq!(spec.env.get("MEDFORGE_GPU_ID").map(String::as_str), Some("3"));
        assert_eq!(spec.env.get("NVIDIA_VISIBLE_DEVICES").map(String::as_str), Some("void"), "no GPU, said outright");
    }

    #[test]
    fn the_session_label_reads_back() {
        let s = session(Exposure::External, 0);
        let spec = session_container_spec(&s, "p", &workspace(), &SessionContainerConfig::default());
        let info = ContainerInfo {
            id: "c".into(),
            name: spec.name.clone(),
            state: ContainerState::Running,
            ip: None,
            labels: spec.labels.clone(),
        };
        assert_eq!(info.session_id(), Some(s.id));
        let stray = ContainerInfo { labels: BTreeMap::new(), ..info };
        assert_eq!(stray.session_id(), None);
    }
}
