//! `ContainerRuntime` on the Docker Engine API, through bollard.
//!
//! The container a session gets is decided in `medforge-core`
//! ([`medforge_core::runtime::session_container_spec`]); this crate only
//! translates that spec into the Engine's create body ([`create_body`], a
//! pure function the unit tests below check) and drives the Engine. Images
//! are never pulled: a missing image is an error that says so.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryStateEnum, DeviceRequest, EndpointSettings, EventMessage, HostConfig, Mount, MountType,
    NetworkCreateRequest, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, InspectContainerOptions, InspectNetworkOptions, ListContainersOptions,
    RemoveContainerOptions, StopContainerOptions,
};
use futures::stream::{BoxStream, StreamExt};
use medforge_core::model::GpuId;
use medforge_core::runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, LABEL_MANAGED, LABEL_SESSION_ID, NetworkInfo,
    RuntimeError, RuntimeEvent, WORKSPACE_MOUNT,
};

/// The socket dockerd listens on by default.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// The GPU device request for exactly one GPU, the way `docker run
/// --gpus device=<index>` asks for it: the NVIDIA driver, capability `gpu`,
/// and that device alone (so `nvidia-smi -L` inside lists one device).
///
/// ```
/// use medforge_core::model::GpuId;
/// let requests = medforge_runtime_docker::device_requests(Some(GpuId(4))).unwrap_or_default();
/// assert_eq!(requests[0].device_ids, Some(vec!["4".to_owned()]));
/// assert!(medforge_runtime_docker::device_requests(None).is_none());
/// ```
pub fn device_requests(gpu: Option<GpuId>) -> Option<Vec<DeviceRequest>> {
    gpu.map(|gpu| {
        vec![DeviceRequest {
            driver: Some("nvidia".into()),
            count: None,
            device_ids: Some(vec![gpu.to_string()]),
            capabilities: Some(vec![vec!["gpu".into()]]),
            options: None,
        }]
    })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The Engine's create body for a session container. Besides translating
/// the spec, it applies what every session container has: all capabilities
/// dropped, `no-new-privileges`, never privileged, no restart policy.
pub fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let limits = &spec.limits;
    let ulimit =
        |name: &str, v: u64| ResourcesUlimits { name: Some(name.into()), soft: Some(to_i64(v)), hard: Some(to_i64(v)) };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        user: Some(spec.user.clone()),
        hostname: Some(spec.name.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        exposed_ports: Some(vec![format!("{}/tcp", spec.port)]),
        host_config: Some(HostConfig {
            network_mode: Some(spec.network.name.clone()),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            sysctls: Some(medforge_core::network::session_sysctls().into_iter().collect()),
            privileged: Some(false),
            restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
            memory: limits.memory_bytes.map(to_i64),
            pids_limit: limits.pids.map(to_i64),
            shm_size: limits.shm_bytes.map(to_i64),
            ulimits: Some(vec![ulimit("nofile", limits.nofile), ulimit("nproc", limits.nproc)]),
            mounts: Some(vec![Mount {
                typ: Some(MountType::BIND),
                source: Some(spec.workspace.display().to_string()),
                target: Some(WORKSPACE_MOUNT.into()),
                read_only: Some(false),
                ..Default::default()
            }]),
            device_requests: device_requests(spec.gpu),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Docker through its Engine API.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    /// Serialises network creation: dockerd 20.10 (API 1.41) happily creates
    /// two networks with one name when asked at once, and every later
    /// container start then fails with "network ... is ambiguous".
    network_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

fn backend(operation: &'static str) -> impl FnOnce(DockerError) -> RuntimeError {
    move |e| RuntimeError::Backend { operation, message: e.to_string() }
}

fn is_status(e: &DockerError, code: u16) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code, .. } if *status_code == code)
}

/// The first executable called `name` in `$PATH`.
fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

impl DockerRuntime {
    /// Connects to `socket` (`unix:///var/run/docker.sock`, or a path) and
    /// agrees on an API version: Debian's dockerd speaks 1.41, older than
    /// bollard's default.
    pub async fn connect(socket: &str) -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_unix(socket, 120, bollard::API_DEFAULT_VERSION)
            .map_err(|e| RuntimeError::Unavailable(format!("{socket}: {e}")))?
            .negotiate_version()
            .await
            .map_err(|e| RuntimeError::Unavailable(format!("{socket}: {e}")))?;
        Ok(Self { docker, network_lock: Default::default() })
    }

    /// Whether `image` is present on the engine (MedForge never pulls).
    pub async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 404) => Ok(false),
            Err(e) => Err(backend("inspect image")(e)),
        }
    }

    /// The engine's version and the API version agreed on, e.g.
    /// `Docker Engine 20.10.24 (API 1.41)`, for `medforge doctor`.
    pub async fn version(&self) -> Result<String, RuntimeError> {
        let v = self.docker.version().await.map_err(backend("version"))?;
        Ok(format!("Docker Engine {} (API {})", v.version.as_deref().unwrap_or("?"), self.docker.client_version()))
    }

    /// How this engine passes GPUs to containers, in words, or `None`
    /// when it cannot: the NVIDIA Container Toolkit's `nvidia` runtime, or
    /// the `nvidia-container-runtime-hook` that dockerd runs for
    /// `--gpus`-style device requests (looked up on this process's PATH).
    pub async fn nvidia_support(&self) -> Result<Option<String>, RuntimeError> {
        let info = self.docker.info().await.map_err(backend("info"))?;
        if info.runtimes.unwrap_or_default().contains_key("nvidia") {
            return Ok(Some("Docker's \"nvidia\" runtime".into()));
        }
        Ok(find_on_path("nvidia-container-runtime-hook").map(|p| format!("{} (Docker device requests)", p.display())))
    }

    /// The underlying client, for tests and tools.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Creates the network if it does not exist. `internal` networks get no
    /// route off their bridge (Docker's `--internal`).
    pub async fn ensure_network(&self, name: &str, internal: bool) -> Result<(), RuntimeError> {
        let _one_at_a_time = self.network_lock.lock().await;
        match self.docker.inspect_network(name, None::<InspectNetworkOptions>).await {
            Ok(_) => return Ok(()),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(backend("inspect network")(e)),
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            internal: Some(internal),
            // Sessions run without IPv6 (`session_sysctls`); the rules are IPv4's.
            enable_ipv6: Some(false),
            labels: Some(HashMap::from([(LABEL_MANAGED.to_owned(), "true".to_owned())])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            // Another caller created it in between.
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(backend("create network")(e)),
        }
    }

    /// The network as the host sees it: its bridge interface (Docker's
    /// `br-` plus 12 characters of the id, unless named by an option) and
    /// its IPv4 subnets.
    pub async fn network_info(&self, name: &str) -> Result<NetworkInfo, RuntimeError> {
        let n = self.docker.inspect_network(name, None::<InspectNetworkOptions>).await.map_err(|e| {
            if is_status(&e, 404) {
                RuntimeError::Backend {
                    operation: "inspect network",
                    message: format!("network {name} does not exist"),
                }
            } else {
                backend("inspect network")(e)
            }
        })?;
        let id = n.id.unwrap_or_default();
        let bridge = n
            .options
            .as_ref()
            .and_then(|o| o.get("com.docker.network.bridge.name").cloned())
            .unwrap_or_else(|| format!("br-{}", id.get(..12).unwrap_or(&id)));
        let subnets = n
            .ipam
            .and_then(|i| i.config)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.subnet.as_deref()?.parse().ok())
            .collect();
        Ok(NetworkInfo {
            name: name.to_owned(),
            id,
            bridge,
            subnets,
            internal: n.internal.unwrap_or(false),
            ipv6: n.enable_ipv6.unwrap_or(false),
        })
    }

    async fn create_and_start_inner(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let options = CreateContainerOptions { name: Some(spec.name.clone()), ..Default::default() };
        let created = self.docker.create_container(Some(options), create_body(spec)).await.map_err(|e| match e {
            DockerError::DockerResponseServerError { status_code: 404, .. } => {
                RuntimeError::ImageMissing(spec.image.clone())
            }
            DockerError::DockerResponseServerError { status_code: 409, .. } => {
                RuntimeError::NameTaken(spec.name.clone())
            }
            e => backend("create container")(e),
        })?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            // Leave nothing behind: a created-but-not-started container would
            // hold the name and confuse the reconciler.
            let _ = self.remove(&created.id).await;
            return Err(backend("start container")(e));
        }
        Ok(created.id)
    }
}

fn state_of(inspect: &ContainerInspectResponse) -> ContainerState {
    let state = inspect.state.as_ref();
    match state.and_then(|s| s.status) {
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => {
            ContainerState::Exited { exit_code: state.and_then(|s| s.exit_code) }
        }
        Some(other) => ContainerState::Other(other.to_string()),
        None => ContainerState::Other("unknown".into()),
    }
}

/// The first address the container has on any network.
fn first_ip(networks: Option<&HashMap<String, EndpointSettings>>) -> Option<IpAddr> {
    networks?.values().filter_map(|n| n.ip_address.as_deref()).find_map(|ip| ip.parse().ok())
}

fn info_from_inspect(inspect: ContainerInspectResponse) -> ContainerInfo {
    ContainerInfo {
        state: state_of(&inspect),
        ip: first_ip(inspect.network_settings.as_ref().and_then(|n| n.networks.as_ref())),
        id: inspect.id.unwrap_or_default(),
        name: inspect.name.unwrap_or_default().trim_start_matches('/').to_owned(),
        labels: inspect.config.and_then(|c| c.labels).unwrap_or_default().into_iter().collect(),
    }
}

fn info_from_summary(summary: ContainerSummary) -> ContainerInfo {
    let state = match summary.state {
        Some(ContainerSummaryStateEnum::RUNNING) => ContainerState::Running,
        Some(ContainerSummaryStateEnum::CREATED) => ContainerState::Created,
        Some(ContainerSummaryStateEnum::EXITED | ContainerSummaryStateEnum::DEAD) => {
            ContainerState::Exited { exit_code: None }
        }
        Some(other) => ContainerState::Other(other.to_string()),
        None => ContainerState::Other("unknown".into()),
    };
    ContainerInfo {
        state,
        ip: first_ip(summary.network_settings.as_ref().and_then(|n| n.networks.as_ref())),
        id: summary.id.unwrap_or_default(),
        name: summary.names.and_then(|n| n.into_iter().next()).unwrap_or_default().trim_start_matches('/').to_owned(),
        labels: summary.labels.unwrap_or_default().into_iter().collect(),
    }
}

fn managed_filter() -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{LABEL_MANAGED}=true")])])
}

fn died_event(message: EventMessage) -> Option<RuntimeEvent> {
    if message.action.as_deref() != Some("die") {
        return None;
    }
    let actor = message.actor?;
    let attributes = actor.attributes.unwrap_or_default();
    Some(RuntimeEvent::Died {
        container_id: actor.id?,
        session_id: attributes.get(LABEL_SESSION_ID).and_then(|v| v.parse().ok()),
        exit_code: attributes.get("exitCode").and_then(|v| v.parse().ok()),
    })
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn create_and_start(&self, spec: &ContainerSpec) -> Result<ContainerInfo, RuntimeError> {
        self.ensure_network(&spec.network.name, spec.network.internal).await?;
        let id = self.create_and_start_inner(spec).await?;
        self.inspect(&id).await?.ok_or_else(|| RuntimeError::Backend {
            operation: "inspect container",
            message: "gone right after start".into(),
        })
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        match self.docker.stop_container(id, Some(StopContainerOptions { t: Some(t), signal: None })).await {
            // 304: already stopped; 404: already gone.
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 304) || is_status(&e, 404) => Ok(()),
            Err(e) => Err(backend("stop container")(e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptions { force: true, v: false, link: false };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            // 409 "removal already in progress": someone else is removing it.
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(backend("remove container")(e)),
        }
    }

    async fn inspect(&self, id_or_name: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        match self.docker.inspect_container(id_or_name, None::<InspectContainerOptions>).await {
            Ok(inspect) => Ok(Some(info_from_inspect(inspect))),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(backend("inspect container")(e)),
        }
    }

    async fn list_managed(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let options = ListContainersOptions { all: true, filters: Some(managed_filter()), ..Default::default() };
        let list = self.docker.list_containers(Some(options)).await.map_err(backend("list containers"))?;
        Ok(list.into_iter().map(info_from_summary).collect())
    }

    async fn sessions_network(&self, name: &str, internal: bool) -> Result<NetworkInfo, RuntimeError> {
        self.ensure_network(name, internal).await?;
        self.network_info(name).await
    }

    async fn events(&self) -> Result<BoxStream<'static, Result<RuntimeEvent, RuntimeError>>, RuntimeError> {
        let mut filters = managed_filter();
        filters.insert("type".into(), vec!["container".into()]);
        filters.insert("event".into(), vec!["die".into()]);
        // bollard sends the request only when the stream is first polled;
        // `since` makes the stream start now, at the call, not then, so a
        // death between this call and the first poll is not lost. (Seconds:
        // a death up to a second earlier may be replayed, which callers
        // handle as they handle any repeated event.)
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default();
        let stream = self
            .docker
            .events(Some(EventsOptions { since: Some(since), filters: Some(filters), ..Default::default() }))
            .filter_map(|item| async move {
                match item {
                    Ok(message) => died_event(message).map(Ok),
                    Err(e) => Some(Err(backend("event stream")(e))),
                }
            });
        Ok(stream.boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(gpu: Option<GpuId>) -> ContainerSpec {
        medforge_core::testing::runtime::sample_spec("pack:1", gpu)
    }

    #[test]
    fn one_gpu_is_requested_by_index_from_the_nvidia_driver() {
        let reqs = device_requests(Some(GpuId(3))).expect("a request");
        assert_eq!(reqs.len(), 1);
        let r = &reqs[0];
        assert_eq!(r.driver.as_deref(), Some("nvidia"));
        assert_eq!(r.device_ids, Some(vec!["3".to_owned()]));
        assert_eq!(r.capabilities, Some(vec![vec!["gpu".to_owned()]]));
        assert_eq!(r.count, None, "a count would ask for any N GPUs instead of this one");
        assert!(device_requests(None).is_none());
    }

    #[test]
    fn create_body_locks_the_container_down() {
        let body = create_body(&spec(Some(GpuId(3))));
        assert_eq!(body.image.as_deref(), Some("pack:1"));
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.env, Some(vec!["MEDFORGE_GPU_ID=3".to_owned()]));
        assert_eq!(body.labels.as_ref().and_then(|l| l.get(LABEL_MANAGED)).map(String::as_str), Some("true"));
        let host = body.host_config.expect("host config");
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        if std::path::Path::new("/proc/sys/net/ipv6").exists() {
            let sysctls = host.sysctls.as_ref().expect("sysctls");
            assert_eq!(sysctls.get("net.ipv6.conf.all.disable_ipv6").map(String::as_str), Some("1"), "no IPv6");
        }
        assert!(host.cap_add.is_none());
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges:true".to_owned()]));
        assert_eq!(host.privileged, Some(false));
        assert_eq!(host.restart_policy.and_then(|r| r.name), Some(RestartPolicyNameEnum::NO));
        assert_eq!(host.network_mode.as_deref(), Some("medforge-external-sessions"));
        assert_eq!((host.memory, host.pids_limit, host.shm_size), (Some(1 << 30), Some(256), Some(64 << 20)));
        let ulimits: Vec<_> = host.ulimits.expect("ulimits").into_iter().map(|u| (u.name, u.soft, u.hard)).collect();
        assert_eq!(
            ulimits,
            vec![(Some("nofile".into()), Some(1024), Some(1024)), (Some("nproc".into()), Some(512), Some(512))]
        );
        let mounts = host.mounts.expect("mounts");
        assert_eq!(mounts.len(), 1);
        assert_eq!(
            (mounts[0].source.as_deref(), mounts[0].target.as_deref()),
            (Some("/srv/ws/u1"), Some("/workspace"))
        );
        assert_eq!(mounts[0].typ, Some(MountType::BIND));
        assert!(
            host.binds.is_none() && host.devices.is_none() && host.pid_mode.is_none() && host.port_bindings.is_none()
        );
        assert_eq!(host.device_requests.map(|d| d.len()), Some(1));
    }

    #[test]
    fn gpu_mode_none_sends_no_device_request() {
        let host = create_body(&spec(None)).host_config.expect("host config");
        assert!(host.device_requests.is_none());
    }

    #[test]
    fn die_events_carry_the_session_and_exit_code() {
        let sid = medforge_core::model::SessionId::new_random();
        let message = EventMessage {
            action: Some("die".into()),
            actor: Some(bollard::models::EventActor {
                id: Some("c1".into()),
                attributes: Some(HashMap::from([
                    (LABEL_SESSION_ID.to_owned(), sid.to_string()),
                    ("exitCode".to_owned(), "137".to_owned()),
                ])),
            }),
            ..Default::default()
        };
        assert_eq!(
            died_event(message),
            Some(RuntimeEvent::Died { container_id: "c1".into(), session_id: Some(sid), exit_code: Some(137) })
        );
        assert_eq!(died_event(EventMessage { action: Some("start".into()), ..Default::default() }), None);
    }
}
