//! Builds the plugin set the config names: store, runtime, storage, and
//! the services over them. The only place that knows every plugin.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use medforge_core::auth::{Authenticator, ExpiryPolicy, TokenKey};
use medforge_core::events::{EventSink, JsonLines, Recorded};
use medforge_core::firewall::{Firewall, IsolationPolicy, NoFirewall};
use medforge_core::lifecycle::{LifecycleConfig, Sessions};
use medforge_core::runtime::{ContainerRuntime, GpuMode, LABEL_DEPLOYMENT, SessionContainerConfig};
use medforge_core::storage::{DirStorage, Storage};
use medforge_core::store::{MySqlStore, Seed, SqliteStore, Store};
use medforge_net_iptables::{Iptables, Nftables};
use medforge_runtime_docker::DockerRuntime;
use medforge_runtime_podman::PodmanRuntime;
use medforge_storage_zfs::{ZfsConfig, ZfsStorage};

use crate::config::{Config, FirewallKind, GpuModeSetting, RuntimeKind, StorageKind};
use crate::state::{AppState, GateCache, RateLimiter};

/// Opens the configured database and runs its migrations.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, String> {
    let url = config.database_url();
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::open(&url).await.map_err(|e| format!("database {url}: {e}"))?)
    } else {
        let masked = crate::config::mask_url_password(&url);
        Arc::new(MySqlStore::connect(&url).await.map_err(|e| format!("database {masked}: {e}"))?)
    };
    Ok(store)
}

/// The token key: `secret` from config (or `MEDFORGE_SECRET`), else
/// `<data_dir>/secret`, created with 48 random bytes on first start.
pub fn token_key(config: &Config) -> Result<TokenKey, String> {
    if let Some(secret) = &config.secret {
        return TokenKey::new(secret.as_bytes()).map_err(|e| e.to_string());
    }
    let path = config.secret_file();
    if !path.exists() {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| format!("{}: {e}", config.data_dir.display()))?;
        let mut bytes = [0u8; 48];
        rand::fill(&mut bytes);
        write_private(&path, data_encoding::BASE64URL_NOPAD.encode(&bytes).as_bytes())?;
    }
    let secret = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    TokenKey::new(secret.trim_ascii()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a new file readable by this user only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The configured workspace storage. For ZFS, the pool and root dataset
/// must exist: the server refuses to start without them rather than make
/// datasets an admin did not ask for.
pub async fn open_storage(config: &Config) -> Result<Arc<dyn Storage>, String> {
    Ok(match config.storage.kind {
        StorageKind::Dir => Arc::new(
            DirStorage::new(config.storage_root()).map_err(|e| format!("storage {}: {e}", config.storage_root()))?,
        ),
        StorageKind::Zfs => {
            let mut zfs = ZfsConfig::new(config.zfs_root().map_err(|e| e.to_string())?);
            zfs.zfs_command = config.storage.zfs_command.clone();
            Arc::new(ZfsStorage::connect(zfs).await.map_err(|e| format!("storage: {e}"))?)
        }
    })
}

/// The configured firewall.
pub fn firewall(config: &Config) -> Arc<dyn Firewall> {
    match config.firewall.kind {
        FirewallKind::None => Arc::new(NoFirewall),
        FirewallKind::Nftables => Arc::new(Nftables::with_table(config.firewall.nft_table.clone())),
        FirewallKind::Iptables => Arc::new(Iptables::default()),
    }
}

/// What the firewall enforces: both sessions networks (created if missing,
/// so their bridges exist) as the runtime sees them now.
pub async fn isolation_policy(config: &Config, runtime: &dyn ContainerRuntime) -> Result<IsolationPolicy, String> {
    let mut networks = Vec::new();
    for (name, internal) in [(&config.runtime.external_network, false), (&config.runtime.internal_network, true)] {
        networks.push(runtime.sessions_network(name, internal).await.map_err(|e| format!("network {name}: {e}"))?);
    }
    Ok(IsolationPolicy {
        networks,
        proxy_addrs: config.firewall.proxy_addrs.clone(),
        allowed_host_ports: config.firewall.allowed_host_ports.clone(),
    })
}

pub async fn connect_runtime(config: &Config) -> Result<Arc<dyn ContainerRuntime>, String> {
    Ok(match config.runtime.kind {
        RuntimeKind::Docker => Arc::new(connect_docker(config).await?),
        RuntimeKind::Podman => Arc::new(connect_podman(config).await?),
    })
}

pub async fn connect_docker(config: &Config) -> Result<DockerRuntime, String> {
    let socket = match config.runtime.socket.as_str() {
        "" => medforge_runtime_docker::DEFAULT_SOCKET,
        s => s,
    };
    DockerRuntime::connect(socket).await.map_err(|e| format!("container runtime: {e}"))
}

pub async fn connect_podman(config: &Config) -> Result<PodmanRuntime, String> {
    let configured = Some(config.runtime.socket.as_str()).filter(|s| !s.is_empty());
    let socket = medforge_runtime_podman::discover_socket(configured).ok_or_else(|| {
        format!(
            "container runtime: no Podman API socket at {} or $XDG_RUNTIME_DIR/podman/podman.sock; \
             start it with `podman system service --time=0` (or `systemctl enable --now podman.socket`), \
             or set runtime.socket",
            medforge_runtime_podman::ROOTFUL_SOCKET
        )
    })?;
    PodmanRuntime::connect(socket).await.map_err(|e| format!("container runtime: {e}"))
}

/// Whether `image` is on the configured engine (MedForge never pulls).
pub async fn image_present(config: &Config, image: &str) -> Result<bool, String> {
    match config.runtime.kind {
        RuntimeKind::Docker => connect_docker(config).await?.image_exists(image).await.map_err(|e| e.to_string()),
        RuntimeKind::Podman => connect_podman(config).await?.image_exists(image).await.map_err(|e| e.to_string()),
    }
}

/// How the configured engine passes NVIDIA GPUs to containers, in words,
/// or `None` when it cannot (each runtime plugin knows its own way).
pub async fn nvidia_support(config: &Config) -> Result<Option<String>, String> {
    match config.runtime.kind {
        RuntimeKind::Docker => connect_docker(config).await?.nvidia_support().await.map_err(|e| e.to_string()),
        RuntimeKind::Podman => Ok(medforge_runtime_podman::nvidia_cdi_spec(medforge_runtime_podman::CDI_SPEC_DIRS)
            .map(|p| format!("CDI spec {}", p.display()))),
    }
}

/// The GPU mode sessions run with: `auto` becomes `nvidia` or, on an
/// engine without NVIDIA support, `none` with a warning.
pub async fn gpu_mode(config: &Config) -> Result<GpuMode, String> {
    if config.runtime.gpu_mode != GpuModeSetting::Auto {
        return Ok(config.runtime.gpu_mode.resolve(false));
    }
    let support = nvidia_support(config).await?;
    let mode = config.runtime.gpu_mode.resolve(support.is_some());
    match support {
        Some(how) => tracing::info!(via = %how, "GPUs reach sessions through the NVIDIA container support"),
        None => tracing::warn!(
            "no NVIDIA container support on this host: sessions start without a GPU \
             (runtime.gpu_mode = \"auto\" fell back to \"none\"; `medforge doctor` explains)"
        ),
    }
    Ok(mode)
}

/// Everything `serve` runs on.
pub async fn build(
    config: Config,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Result<Arc<AppState>, String> {
    let store = open_store(&config).await?;
    let gpu_ids = config.gpus.ids.resolve()?;
    let report = store
        .seed(&Seed {
            default_pack_image: config.pack.image.clone(),
            default_pack_digest: config.pack.digest.clone(),
            gpu_ids,
        })
        .await
        .map_err(|e| format!("seeding: {e}"))?;
    if !report.gpus_added.is_empty() || !report.gpus_disabled.is_empty() {
        tracing::info!(added = ?report.gpus_added, disabled = ?report.gpus_disabled, "GPU table follows the config");
    }
    let runtime = connect_runtime(&config).await?;
    let gpu_mode = gpu_mode(&config).await?;
    let storage = open_storage(&config).await?;
    // Every event goes to stdout as a JSON line and into the admin event log.
    let events: Arc<dyn EventSink> = Arc::new(Recorded::new(store.clone(), Arc::new(JsonLines::stdout())));
    // Containers carry this deployment's id: reconciliation removes only
    // its own orphans, whatever else runs on the engine.
    let deployment = store.deployment_id().await.map_err(|e| format!("the deployment id: {e}"))?;
    tracing::info!(%deployment, "this deployment's containers carry {LABEL_DEPLOYMENT}={deployment}");
    let mut labels = config.runtime.labels.clone();
    labels.insert(LABEL_DEPLOYMENT.into(), deployment.to_string());
    let lifecycle = LifecycleConfig {
        containers: SessionContainerConfig {
            external_network: config.runtime.external_network.clone(),
            internal_network: config.runtime.internal_network.clone(),
            gpu_mode,
            extra_labels: labels,
            limits: config.runtime.limits.clone(),
        },
        stop_grace: Duration::from_secs(config.runtime.stop_timeout_secs),
        ready_timeout: Duration::from_secs(config.runtime.ready_timeout_secs),
        poll_interval: Duration::from_secs(config.runtime.poll_interval_secs.max(1)),
        quota_bytes: config.storage.quota_bytes,
    };
    let sessions = Arc::new(Sessions::new(store.clone(), runtime.clone(), storage.clone(), events.clone(), lifecycle));
    let auth = Authenticator::new(store.clone(), token_key(&config)?, ExpiryPolicy::default());
    let auth_limiter = RateLimiter::new(config.limits.auth_per_minute);
    let firewall = firewall(&config);
    Ok(Arc::new(AppState {
        config,
        store,
        storage,
        runtime,
        sessions,
        auth,
        events,
        firewall,
        upstreams: crate::proxy::upstreams(),
        gate_cache: GateCache::new(Duration::from_secs(5)),
        auth_limiter,
        metrics,
    }))
}
