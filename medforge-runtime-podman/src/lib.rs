//! `ContainerRuntime` on Podman's own REST API (libpod), rootful or
//! rootless, over its Unix socket.
//!
//! Why libpod and not the Docker-compatible API: Podman's compat API
//! ignores GPU device requests; GPUs on Podman are CDI devices
//! (`nvidia.com/gpu=<index>`), which only libpod's container create takes.
//! Why our own small client and not the `podman-api` crate: against Podman
//! 4.3 it silently drops `no_new_privileges` (it sends a misspelled key)
//! and the stop timeout (it sends `Timeout=`), and it pulls hyper 0.14 in
//! beside hyper 1 (docs/decisions.md).
//!
//! As in the Docker runtime, the container is decided in `medforge-core`
//! ([`medforge_core::runtime::session_container_spec`]); [`create_body`]
//! translates it (a pure function the unit tests check) and the rest drives
//! Podman. Images are never pulled.

mod client;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use hyper::{Method, StatusCode};
use medforge_core::firewall::Ipv4Cidr;
use medforge_core::model::GpuId;
use medforge_core::runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, LABEL_MANAGED, LABEL_SESSION_ID, NetworkInfo,
    RuntimeError, RuntimeEvent, WORKSPACE_MOUNT,
};
use serde_json::{Value, json};

pub use client::Libpod;
use client::{Unreachable, filters, message};

/// Where rootful Podman's API listens (`podman system service`).
pub const ROOTFUL_SOCKET: &str = "/run/podman/podman.sock";

/// The socket to use: the configured one (a path, or `unix://` and a
/// path), else rootful Podman's, else the rootless one of this user
/// (`$XDG_RUNTIME_DIR/podman/podman.sock`), whichever exists.
pub fn discover_socket(configured: Option<&str>) -> Option<PathBuf> {
    let rootless = std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("podman/podman.sock"));
    discover_among(configured, &[Some(PathBuf::from(ROOTFUL_SOCKET)), rootless])
}

/// [`discover_socket`] over given candidates, in order.
fn discover_among(configured: Option<&str>, candidates: &[Option<PathBuf>]) -> Option<PathBuf> {
    if let Some(c) = configured.filter(|c| !c.is_empty()) {
        return Some(PathBuf::from(c.strip_prefix("unix://").unwrap_or(c)));
    }
    candidates.iter().flatten().find(|p| p.exists()).cloned()
}

/// Where CDI specs live (the NVIDIA Container Toolkit writes
/// `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`).
pub const CDI_SPEC_DIRS: &[&str] = &["/etc/cdi", "/var/run/cdi"];

/// The first CDI spec in `dirs` that declares NVIDIA GPUs (`kind:
/// nvidia.com/gpu`): without one, Podman cannot pass a GPU to a container.
pub fn nvidia_cdi_spec(dirs: &[&str]) -> Option<PathBuf> {
    let mut specs: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")))
        .collect();
    specs.sort();
    specs.into_iter().find(|p| std::fs::read_to_string(p).is_ok_and(|text| text.contains("nvidia.com/gpu")))
}

/// The CDI device for exactly one GPU, as `podman run --device
/// nvidia.com/gpu=<index>` asks for it (the NVIDIA Container Toolkit's CDI
/// spec names each GPU by index).
///
/// ```
/// use medforge_core::model::GpuId;
/// assert_eq!(medforge_runtime_podman::cdi_devices(Some(GpuId(4))), vec!["nvidia.com/gpu=4".to_owned()]);
/// assert!(medforge_runtime_podman::cdi_devices(None).is_empty());
/// ```
pub fn cdi_devices(gpu: Option<GpuId>) -> Vec<String> {
    gpu.map(|g| vec![format!("nvidia.com/gpu={g}")]).unwrap_or_default()
}

/// libpod's create body (a SpecGenerator) for a session container. Besides
/// translating the spec, it applies what every session container has: all
/// capabilities dropped, `no_new_privileges`, never privileged, no restart
/// policy, and explicit `nofile`/`nproc` limits (Podman cannot start a
/// container without them where it may not raise the defaults).
pub fn create_body(spec: &ContainerSpec, stop_timeout: Duration) -> Value {
    let limits = &spec.limits;
    let mut resources = serde_json::Map::new();
    if let Some(m) = limits.memory_bytes {
        resources.insert("memory".into(), json!({ "limit": m }));
    }
    if let Some(p) = limits.pids {
        resources.insert("pids".into(), json!({ "limit": p }));
    }
    let mut body = json!({
        "name": spec.name,
        "hostname": spec.name,
        "image": spec.image,
        "user": spec.user,
        "env": spec.env,
        "labels": spec.labels,
        "cap_drop": ["ALL"],
        "sysctl": medforge_core::network::session_sysctls().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "no_new_privileges": true,
        "privileged": false,
        "restart_policy": "no",
        "stop_timeout": stop_timeout.as_secs(),
        "r_limits": [
            { "type": "nofile", "soft": limits.nofile, "hard": limits.nofile },
            { "type": "nproc", "soft": limits.nproc, "hard": limits.nproc },
        ],
        "resource_limits": Value::Object(resources),
        "mounts": [{
            "destination": WORKSPACE_MOUNT,
            "source": spec.workspace.display().to_string(),
            "type": "bind",
            "options": ["rbind", "rw"],
        }],
        "netns": { "nsmode": "bridge" },
        "Networks": { spec.network.name.clone(): {} },
        "devices": cdi_devices(spec.gpu).into_iter().map(|path| json!({ "path": path })).collect::<Vec<_>>(),
    });
    if let Some(shm) = limits.shm_bytes {
        body["shm_size"] = json!(shm);
    }
    body
}

/// The stop timeout containers are created with, for stops Podman starts
/// itself (the lifecycle passes its own grace to `stop`).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Podman through its libpod API.
#[derive(Debug, Clone)]
pub struct PodmanRuntime {
    api: Libpod,
    network_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

fn unavailable(e: Unreachable) -> RuntimeError {
    RuntimeError::Unavailable(e.0)
}

fn backend(operation: &'static str, status: StatusCode, body: &[u8]) -> RuntimeError {
    RuntimeError::Backend { operation, message: format!("{status}: {}", message(body)) }
}

fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl PodmanRuntime {
    /// Connects to Podman's API at `socket` and checks that it answers.
    pub async fn connect(socket: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        let runtime = Self { api: Libpod::new(socket.into()), network_lock: Default::default() };
        runtime.version().await?;
        Ok(runtime)
    }

    /// The API socket this runtime talks to.
    pub fn socket(&self) -> &std::path::Path {
        self.api.socket()
    }

    /// Podman's version, as its API reports it.
    pub async fn version(&self) -> Result<String, RuntimeError> {
        let (status, body) = self.api.call(Method::GET, "/version", None).await.map_err(unavailable)?;
        if !status.is_success() {
            return Err(RuntimeError::Unavailable(format!("{}: {status}", self.api.socket().display())));
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        Ok(v["Version"].as_str().or(v["Server"]["Version"].as_str()).unwrap_or("unknown").to_owned())
    }

    /// Whether `image` is present (MedForge never pulls).
    pub async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        let path = format!("/images/{}/exists", encode(image));
        let (status, body) = self.api.call(Method::GET, &path, None).await.map_err(unavailable)?;
        match status {
            StatusCode::NO_CONTENT => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(backend("inspect image", s, &body)),
        }
    }

    /// Creates the network if it does not exist (`internal`: no route off
    /// its bridge).
    pub async fn ensure_network(&self, name: &str, internal: bool) -> Result<(), RuntimeError> {
        let _one_at_a_time = self.network_lock.lock().await;
        let path = format!("/networks/{}/exists", encode(name));
        let (status, body) = self.api.call(Method::GET, &path, None).await.map_err(unavailable)?;
        match status {
            StatusCode::NO_CONTENT => return Ok(()),
            StatusCode::NOT_FOUND => {}
            s => return Err(backend("inspect network", s, &body)),
        }
        let request = json!({
            "name": name,
            "driver": "bridge",
            "internal": internal,
            // Sessions run without IPv6 (`session_sysctls`); the rules are IPv4's.
            "ipv6_enabled": false,
            "labels": { LABEL_MANAGED: "true" },
        });
        let (status, body) =
            self.api.call(Method::POST, "/networks/create", Some(&request)).await.map_err(unavailable)?;
        match status {
            s if s.is_success() => Ok(()),
            // Another caller created it in between.
            StatusCode::CONFLICT => Ok(()),
            s => Err(backend("create network", s, &body)),
        }
    }

    /// The network as the host sees it: its bridge interface and subnets.
    pub async fn network_info(&self, name: &str) -> Result<NetworkInfo, RuntimeError> {
        let path = format!("/networks/{}/json", encode(name));
        let (status, body) = self.api.call(Method::GET, &path, None).await.map_err(unavailable)?;
        if !status.is_success() {
            return Err(backend("inspect network", status, &body));
        }
        let n: Value = serde_json::from_slice(&body).unwrap_or_default();
        let subnets: Vec<Ipv4Cidr> = n["subnets"]
            .as_array()
            .map(|s| s.iter().filter_map(|s| s["subnet"].as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        Ok(NetworkInfo {
            name: name.to_owned(),
            id: n["id"].as_str().unwrap_or_default().to_owned(),
            bridge: n["network_interface"].as_str().unwrap_or_default().to_owned(),
            subnets,
            internal: n["internal"].as_bool().unwrap_or(false),
            ipv6: n["ipv6_enabled"].as_bool().unwrap_or(false),
        })
    }

    async fn create_and_start_inner(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let body = create_body(spec, STOP_TIMEOUT);
        let (status, answer) =
            self.api.call(Method::POST, "/containers/create", Some(&body)).await.map_err(unavailable)?;
        if !status.is_success() {
            let text = message(&answer);
            return Err(if status == StatusCode::NOT_FOUND || text.contains("image not known") {
                RuntimeError::ImageMissing(spec.image.clone())
            } else if status == StatusCode::CONFLICT || text.contains("already in use") {
                RuntimeError::NameTaken(spec.name.clone())
            } else {
                backend("create container", status, &answer)
            });
        }
        let created: Value = serde_json::from_slice(&answer).unwrap_or_default();
        let id = created["Id"].as_str().unwrap_or_default().to_owned();
        let (status, answer) = self
            .api
            .call(Method::POST, &format!("/containers/{}/start", encode(&id)), None)
            .await
            .map_err(unavailable)?;
        if !status.is_success() && status != StatusCode::NOT_MODIFIED {
            // Leave nothing behind (an unknown CDI device, say, fails here).
            let _ = self.remove(&id).await;
            return Err(backend("start container", status, &answer));
        }
        Ok(id)
    }
}

fn state_of(state: &Value) -> ContainerState {
    match state["Status"].as_str().unwrap_or_default() {
        "running" => ContainerState::Running,
        "created" | "configured" | "initialized" => ContainerState::Created,
        "exited" | "stopped" | "dead" => ContainerState::Exited { exit_code: state["ExitCode"].as_i64() },
        "" => ContainerState::Other("unknown".into()),
        other => ContainerState::Other(other.to_owned()),
    }
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

/// A container from libpod's inspect answer.
fn info_from_inspect(v: &Value) -> ContainerInfo {
    let ip: Option<IpAddr> = v["NetworkSettings"]["Networks"]
        .as_object()
        .and_then(|nets| nets.values().filter_map(|n| n["IPAddress"].as_str()?.parse().ok()).next());
    ContainerInfo {
        id: v["Id"].as_str().unwrap_or_default().to_owned(),
        name: v["Name"].as_str().unwrap_or_default().trim_start_matches('/').to_owned(),
        state: state_of(&v["State"]),
        ip,
        labels: labels_of(&v["Config"]["Labels"]),
    }
}

/// A `died` event of libpod's stream (one JSON object a line).
fn died_event(v: &Value) -> Option<RuntimeEvent> {
    let action = v["Action"].as_str().or(v["status"].as_str())?;
    if action != "died" {
        return None;
    }
    let attributes = &v["Actor"]["Attributes"];
    Some(RuntimeEvent::Died {
        container_id: v["Actor"]["ID"].as_str().or(v["id"].as_str())?.to_owned(),
        session_id: attributes[LABEL_SESSION_ID].as_str().and_then(|s| s.parse().ok()),
        exit_code: attributes["containerExitCode"].as_str().and_then(|s| s.parse().ok()),
    })
}

/// Splits a byte stream into lines (an event may span chunks).
fn lines(chunks: BoxStream<'static, Result<bytes::Bytes, String>>) -> BoxStream<'static, Result<String, String>> {
    use futures::{AsyncBufReadExt, TryStreamExt};
    chunks.map_err(std::io::Error::other).into_async_read().lines().map_err(|e| e.to_string()).boxed()
}

#[async_trait]
impl ContainerRuntime for PodmanRuntime {
    async fn create_and_start(&self, spec: &ContainerSpec) -> Result<ContainerInfo, RuntimeError> {
        self.ensure_network(&spec.network.name, spec.network.internal).await?;
        let id = self.create_and_start_inner(spec).await?;
        self.inspect(&id).await?.ok_or_else(|| RuntimeError::Backend {
            operation: "inspect container",
            message: "gone right after start".into(),
        })
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let path = format!("/containers/{}/stop?timeout={}", encode(id), grace.as_secs());
        let (status, body) = self.api.call(Method::POST, &path, None).await.map_err(unavailable)?;
        match status {
            s if s.is_success() => Ok(()),
            // Already stopped, or already gone.
            StatusCode::NOT_MODIFIED | StatusCode::NOT_FOUND => Ok(()),
            s => Err(backend("stop container", s, &body)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let path = format!("/containers/{}?force=true", encode(id));
        let (status, body) = self.api.call(Method::DELETE, &path, None).await.map_err(unavailable)?;
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Ok(()),
            s => Err(backend("remove container", s, &body)),
        }
    }

    async fn inspect(&self, id_or_name: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        let path = format!("/containers/{}/json", encode(id_or_name));
        let (status, body) = self.api.call(Method::GET, &path, None).await.map_err(unavailable)?;
        match status {
            StatusCode::OK => {
                let v: Value = serde_json::from_slice(&body)
                    .map_err(|e| RuntimeError::Backend { operation: "inspect container", message: e.to_string() })?;
                Ok(Some(info_from_inspect(&v)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(backend("inspect container", s, &body)),
        }
    }

    async fn list_managed(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let managed = format!("{LABEL_MANAGED}=true");
        let path = format!("/containers/json?all=true&filters={}", filters(&[("label", &[&managed])]));
        let (status, body) = self.api.call(Method::GET, &path, None).await.map_err(unavailable)?;
        if !status.is_success() {
            return Err(backend("list containers", status, &body));
        }
        let list: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
        // The listing has no addresses: inspect each (a handful at most).
        let mut found = Vec::new();
        for c in list {
            if let Some(id) = c["Id"].as_str()
                && let Some(info) = self.inspect(id).await?
            {
                found.push(info);
            }
        }
        Ok(found)
    }

    async fn sessions_network(&self, name: &str, internal: bool) -> Result<NetworkInfo, RuntimeError> {
        self.ensure_network(name, internal).await?;
        self.network_info(name).await
    }

    async fn events(&self) -> Result<BoxStream<'static, Result<RuntimeEvent, RuntimeError>>, RuntimeError> {
        let managed = format!("{LABEL_MANAGED}=true");
        // `since`: the stream starts at this call; a death up to a second
        // earlier may be replayed, which callers handle like any repeat.
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default();
        let query = filters(&[("type", &["container"]), ("event", &["died"]), ("label", &[&managed])]);
        let path = format!("/events?stream=true&since={since}&filters={query}");
        let (status, chunks) = self.api.stream(&path).await.map_err(unavailable)?;
        if !status.is_success() {
            return Err(RuntimeError::Backend { operation: "event stream", message: status.to_string() });
        }
        let stream = lines(chunks).filter_map(|line| async move {
            match line {
                Ok(l) if l.is_empty() => None,
                Ok(l) => serde_json::from_str::<Value>(&l).ok().as_ref().and_then(died_event).map(Ok),
                Err(e) => Some(Err(RuntimeError::Backend { operation: "event stream", message: e })),
            }
        });
        Ok(stream.boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(gpu: Option<GpuId>) -> ContainerSpec {
        medforge_core::testing::runtime::sample_spec("localhost/pack:1", gpu)
    }

    #[test]
    fn an_nvidia_cdi_spec_is_found_and_others_are_not_taken_for_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        assert_eq!(nvidia_cdi_spec(&[d, "/nonexistent-cdi-dir"]), None);
        std::fs::write(dir.path().join("other.yaml"), "cdiVersion: 0.5.0\nkind: vendor.example/fpga\n").expect("w");
        std::fs::write(dir.path().join("nvidia.txt"), "kind: nvidia.com/gpu\n").expect("w");
        assert_eq!(nvidia_cdi_spec(&[d]), None, "only .yaml/.yml/.json files are specs");
        std::fs::write(dir.path().join("nvidia.yaml"), "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n").expect("w");
        assert_eq!(nvidia_cdi_spec(&[d]), Some(dir.path().join("nvidia.yaml")));
    }

    #[test]
    fn one_gpu_is_one_cdi_device_by_index() {
        assert_eq!(cdi_devices(Some(GpuId(3))), vec!["nvidia.com/gpu=3".to_owned()]);
        assert!(cdi_devices(None).is_empty());
        let body = create_body(&spec(Some(GpuId(3))), Duration::from_secs(5));
        assert_eq!(body["devices"], json!([{ "path": "nvidia.com/gpu=3" }]));
        assert_eq!(create_body(&spec(None), Duration::from_secs(5))["devices"], json!([]));
    }

    #[test]
    fn create_body_locks_the_container_down() {
        let body = create_body(&spec(None), Duration::from_secs(7));
        assert_eq!(body["name"], "mf-session-abcdefgh");
        assert_eq!(body["image"], "localhost/pack:1");
        assert_eq!(body["user"], "1000:1000");
        assert_eq!(body["env"], json!({ "MEDFORGE_GPU_ID": "3" }));
        assert_eq!(body["labels"][LABEL_MANAGED], "true");
        assert_eq!(body["cap_drop"], json!(["ALL"]));
        if std::path::Path::new("/proc/sys/net/ipv6").exists() {
            assert_eq!(body["sysctl"]["net.ipv6.conf.all.disable_ipv6"], "1", "sessions run without IPv6");
        }
        assert!(body.get("cap_add").is_none());
        // The key Podman reads (the podman-api crate misspells it).
        assert_eq!(body["no_new_privileges"], true);
        assert_eq!(body["privileged"], false);
        assert_eq!(body["restart_policy"], "no");
        assert_eq!(body["stop_timeout"], 7);
        assert_eq!(
            body["r_limits"],
            json!([{ "type": "nofile", "soft": 1024, "hard": 1024 }, { "type": "nproc", "soft": 512, "hard": 512 }])
        );
        assert_eq!(body["resource_limits"], json!({ "memory": { "limit": 1u64 << 30 }, "pids": { "limit": 256 } }));
        assert_eq!(body["shm_size"], 64u64 << 20);
        assert_eq!(
            body["mounts"],
            json!([{ "destination": "/workspace", "source": "/srv/ws/u1", "type": "bind", "options": ["rbind", "rw"] }])
        );
        assert_eq!(body["Networks"], json!({ "medforge-external-sessions": {} }));
        assert!(body.get("portmappings").is_none() && body.get("pid").is_none());
    }

    #[test]
    fn died_events_carry_the_session_and_exit_code() {
        let sid = medforge_core::model::SessionId::new_random();
        let line = json!({
            "Type": "container", "Action": "died", "status": "died", "id": "c1",
            "Actor": { "ID": "c1", "Attributes": { LABEL_SESSION_ID: sid.to_string(), "containerExitCode": "137" } },
        });
        assert_eq!(
            died_event(&line),
            Some(RuntimeEvent::Died { container_id: "c1".into(), session_id: Some(sid), exit_code: Some(137) })
        );
        assert_eq!(died_event(&json!({ "Action": "start", "Actor": { "ID": "c1" } })), None);
    }

    #[test]
    fn sockets_are_configured_or_found_rootful_first() {
        assert_eq!(discover_socket(Some("unix:///tmp/p.sock")), Some(PathBuf::from("/tmp/p.sock")));
        assert_eq!(discover_socket(Some("/tmp/q.sock")), Some(PathBuf::from("/tmp/q.sock")));
        let dir = tempfile::tempdir().expect("dir");
        let (rootful, rootless) = (dir.path().join("root.sock"), dir.path().join("user/podman/podman.sock"));
        let candidates = [Some(rootful.clone()), Some(rootless.clone())];
        assert_eq!(discover_among(None, &candidates), None, "nothing there");
        std::fs::create_dir_all(rootless.parent().expect("parent")).expect("mkdir");
        std::fs::write(&rootless, "").expect("rootless socket");
        assert_eq!(discover_among(None, &candidates), Some(rootless.clone()), "rootless when alone");
        std::fs::write(&rootful, "").expect("rootful socket");
        assert_eq!(discover_among(Some(""), &candidates), Some(rootful), "rootful first");
    }

    #[tokio::test]
    async fn event_lines_are_split_across_chunks() {
        let chunks = futures::stream::iter(vec![
            Ok(bytes::Bytes::from_static(b"{\"a\":1}\n{\"b\"")),
            Ok(bytes::Bytes::from_static(b":2}\n")),
        ])
        .boxed();
        let got: Vec<_> = lines(chunks).collect().await;
        assert_eq!(got, vec![Ok("{\"a\":1}".to_owned()), Ok("{\"b\":2}".to_owned())]);
    }
}
