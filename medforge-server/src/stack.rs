//! Builds the plugin set the config names: store, runtime, storage, and
//! the services over them. The only place that knows every plugin.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};

use medforge_core::auth::{Authenticator, ExpiryPolicy, TokenKey};
use medforge_core::events::{EventSink, JsonLines, Recorded};
use medforge_core::firewall::{Firewall, NoFirewall};
use medforge_core::lifecycle::{Lifecycle, LifecycleConfig};
use medforge_core::runtime::{ContainerRuntime, GpuMode, LABEL_DEPLOYMENT, SessionContainerConfig};
use medforge_core::storage::{DirStorage, Storage};
use medforge_core::store::{MySqlStore, Seed, SqliteStore, Store};
use medforge_net_iptables::{Iptables, Nftables};
use medforge_runtime_docker::DockerRuntime;
use medforge_runtime_podman::PodmanRuntime;
use medforge_storage_zfs::{ZfsConfig, ZfsStorage};

use medforge_core::telemetry::{GpuTelemetry, NoTelemetry, TelemetryError};
use medforge_telemetry_nvml::Nvml;

use crate::config::{Config, Discovery, FirewallKind, GpuModeSetting, RuntimeKind, StorageKind, TelemetrySource};
use crate::service::AppState;
use crate::service::gate_cache::GateCache;
use crate::service::gpu_monitor::GpuMonitor;
use crate::service::limiter::RateLimiter;
use crate::service::passes::Passes;

/// The error and its causes on one line, each after a colon; a cause the
/// message before it already quotes (thiserror's `"...: {0}"`) is not
/// repeated.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !previous.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        previous = text;
    }
    line
}

/// Opens the configured database and runs its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.database_url();
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::open(&url).await.with_context(|| format!("database {url}"))?)
    } else {
        let masked = crate::config::mask_url_password(&url);
        Arc::new(MySqlStore::connect(&url).await.with_context(|| format!("database {masked}"))?)
    };
    Ok(store)
}

/// The token key: `secret` from config (or `MEDFORGE_SECRET`), else
/// `<data_dir>/secret`, created with 48 random bytes on first start.
pub fn token_key(config: &Config) -> anyhow::Result<TokenKey> {
    if let Some(secret) = &config.secret {
        return Ok(TokenKey::new(secret.as_bytes())?);
    }
    let path = config.secret_file();
    if !path.exists() {
        std::fs::create_dir_all(&config.data_dir).with_context(|| config.data_dir.display().to_string())?;
        let mut bytes = [0u8; 48];
        rand::fill(&mut bytes);
        write_private(&path, data_encoding::BASE64URL_NOPAD.encode(&bytes).as_bytes())?;
    }
    let secret = std::fs::read(&path).with_context(|| path.display().to_string())?;
    TokenKey::new(secret.trim_ascii()).with_context(|| path.display().to_string())
}

/// Writes a new file readable by this user only.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| path.display().to_string())?;
    f.write_all(bytes).with_context(|| path.display().to_string())
}

/// The configured workspace storage. For ZFS, the pool and root dataset
/// must exist: the server refuses to start without them rather than make
/// datasets an admin did not ask for.
pub async fn open_storage(config: &Config) -> anyhow::Result<Arc<dyn Storage>> {
    Ok(match config.storage.kind {
        StorageKind::Dir => Arc::new(
            DirStorage::new(config.storage_root()).with_context(|| format!("storage {}", config.storage_root()))?,
        ),
        StorageKind::Zfs => {
            let mut zfs = ZfsConfig::new(config.zfs_root()?);
            zfs.zfs_command = config.storage.zfs_command.clone();
            Arc::new(ZfsStorage::connect(zfs).await.context("storage")?)
        }
    })
}

/// How `firewall.kind = "auto"` was made concrete, for doctor and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallChoice {
    pub kind: FirewallKind,
    /// What was found, in words.
    pub why: String,
}

/// Makes `firewall.kind = "auto"` concrete in `config`: nftables where
/// `nft` may write our tables here, iptables where only `iptables-save`
/// works, else none. `None` when the config named a kind itself.
pub async fn resolve_firewall(config: &mut Config) -> Option<FirewallChoice> {
    if config.firewall.kind != FirewallKind::Auto {
        return None;
    }
    let nft = Nftables::with_table(config.firewall.nft_table.clone()).usable().await;
    let choice = match nft {
        Ok(()) => FirewallChoice { kind: FirewallKind::Nftables, why: "nft may change the ruleset".into() },
        Err(nft) => match Iptables::default().usable().await {
            Ok(()) => FirewallChoice {
                kind: FirewallKind::Iptables,
                why: format!("iptables works; nft does not ({})", one_line(&anyhow::Error::new(nft))),
            },
            Err(ipt) => FirewallChoice {
                kind: FirewallKind::None,
                why: format!(
                    "neither nft ({}) nor iptables ({}) may change the ruleset",
                    one_line(&anyhow::Error::new(nft)),
                    one_line(&anyhow::Error::new(ipt))
                ),
            },
        },
    };
    config.firewall.kind = choice.kind;
    Some(choice)
}

/// The configured firewall (`firewall.kind` made concrete first:
/// [`resolve_firewall`]; "auto" left as it is means none).
pub fn firewall(config: &Config) -> Arc<dyn Firewall> {
    match config.firewall.kind {
        FirewallKind::None | FirewallKind::Auto => Arc::new(NoFirewall),
        FirewallKind::Nftables => Arc::new(Nftables::with_table(config.firewall.nft_table.clone())),
        FirewallKind::Iptables => Arc::new(Iptables::default()),
    }
}

pub async fn connect_runtime(config: &Config) -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    Ok(match config.runtime.kind {
        RuntimeKind::Docker => Arc::new(connect_docker(config).await?),
        RuntimeKind::Podman => Arc::new(connect_podman(config).await?),
    })
}

pub async fn connect_docker(config: &Config) -> anyhow::Result<DockerRuntime> {
    let socket = match config.runtime.socket.as_str() {
        "" => medforge_runtime_docker::DEFAULT_SOCKET,
        s => s,
    };
    DockerRuntime::connect(socket).await.context("container runtime")
}

pub async fn connect_podman(config: &Config) -> anyhow::Result<PodmanRuntime> {
    let configured = Some(config.runtime.socket.as_str()).filter(|s| !s.is_empty());
    let socket = medforge_runtime_podman::discover_socket(configured).ok_or_else(|| {
        anyhow!(
            "container runtime: no Podman API socket at {} or $XDG_RUNTIME_DIR/podman/podman.sock; \
             start it with `podman system service --time=0` (or `systemctl enable --now podman.socket`), \
             or set runtime.socket",
            medforge_runtime_podman::ROOTFUL_SOCKET
        )
    })?;
    PodmanRuntime::connect(socket).await.context("container runtime")
}

/// Whether `image` is on the configured engine (MedForge never pulls).
pub async fn image_present(config: &Config, image: &str) -> anyhow::Result<bool> {
    match config.runtime.kind {
        RuntimeKind::Docker => Ok(connect_docker(config).await?.image_exists(image).await?),
        RuntimeKind::Podman => Ok(connect_podman(config).await?.image_exists(image).await?),
    }
}

/// How the configured engine passes NVIDIA GPUs to containers, in words,
/// or `None` when it cannot (each runtime plugin knows its own way).
pub async fn nvidia_support(config: &Config) -> anyhow::Result<Option<String>> {
    match config.runtime.kind {
        RuntimeKind::Docker => Ok(connect_docker(config).await?.nvidia_support().await?),
        RuntimeKind::Podman => Ok(medforge_runtime_podman::nvidia_cdi_spec(medforge_runtime_podman::CDI_SPEC_DIRS)
            .map(|p| format!("CDI spec {}", p.display()))),
    }
}

/// The GPU mode sessions run with: `auto` becomes `nvidia` or, on an
/// engine without NVIDIA support, `none` with a warning.
/// The telemetry source `telemetry.source` names: NVML, or none (with the
/// reason, for doctor and the log). `nvml` without NVML is an error.
pub fn open_telemetry(config: &Config) -> anyhow::Result<Arc<dyn GpuTelemetry>> {
    let library = config.telemetry.nvml_library.as_deref();
    Ok(match config.telemetry.source {
        TelemetrySource::None => Arc::new(NoTelemetry::because("telemetry.source = \"none\"")),
        TelemetrySource::Nvml => Arc::new(Nvml::open(library).context("telemetry.source = \"nvml\"")?),
        TelemetrySource::Auto => match Nvml::open(library) {
            Ok(nvml) => {
                tracing::info!(library = %nvml.library().display(), "GPU telemetry from NVML");
                Arc::new(nvml)
            }
            Err(TelemetryError::Unavailable(why) | TelemetryError::Failed(why)) => Arc::new(NoTelemetry::because(why)),
        },
    })
}

/// What the driver lists, or why nothing: the source's reason when it is
/// not live.
pub async fn discover_gpus(telemetry: &dyn GpuTelemetry) -> Discovery {
    if !telemetry.is_live() {
        return Err(telemetry.unavailable().unwrap_or_else(|| "no GPU telemetry".into()));
    }
    telemetry.discover().await.map_err(|e| e.to_string())
}

pub async fn gpu_mode(config: &Config) -> anyhow::Result<GpuMode> {
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
    mut config: Config,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<Arc<AppState>> {
    if let Some(choice) = resolve_firewall(&mut config).await {
        if choice.kind == FirewallKind::None && !config.is_localhost() {
            tracing::warn!(why = %choice.why, "firewall.kind = \"auto\" found no firewall: sessions are not isolated");
        } else {
            tracing::info!(kind = ?choice.kind, why = %choice.why, "firewall.kind = \"auto\"");
        }
    }
    let store = open_store(&config).await?;
    let telemetry = open_telemetry(&config)?;
    let discovered = discover_gpus(telemetry.as_ref()).await;
    if let Err(why) = &discovered
        && config.telemetry.source != TelemetrySource::None
    {
        tracing::warn!(%why, "no GPU telemetry: the GPU board shows holders only, busy hours are not measured");
    }
    let gpu_ids = config.gpus.ids.resolve(&discovered)?;
    let report = store
        .seed(&Seed {
            default_pack_image: config.pack.image.clone(),
            default_pack_digest: config.pack.digest.clone(),
            gpu_ids,
            gpu_details: discovered.clone().unwrap_or_default(),
        })
        .await
        .context("seeding")?;
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
    let deployment = store.deployment_id().await.context("the deployment id")?;
    tracing::info!(%deployment, "this deployment's containers carry {LABEL_DEPLOYMENT}={deployment}");
    let mut labels = config.runtime.labels.clone();
    labels.insert(LABEL_DEPLOYMENT.into(), deployment.to_string());
    let lifecycle_config = LifecycleConfig {
        containers: SessionContainerConfig {
            external_network: config.runtime.external_network.clone(),
            internal_network: config.runtime.internal_network.clone(),
            gpu_mode,
            extra_labels: labels,
            limits: config.runtime.limits.clone(),
        },
        stop_grace: config.runtime.stop_timeout,
        ready_timeout: config.runtime.ready_timeout,
        poll_interval: config.runtime.poll_interval.max(Duration::from_secs(1)),
        quota_bytes: config.storage.quota_bytes,
        limits: config.sessions.limits(),
    };
    let lifecycle =
        Arc::new(Lifecycle::new(store.clone(), runtime.clone(), storage.clone(), events.clone(), lifecycle_config));
    let auth = Authenticator::new(store.clone(), token_key(&config)?, ExpiryPolicy::default());
    let passes = Passes::new(auth.key().clone());
    let auth_limiter = RateLimiter::new(config.limits.auth_per_minute);
    let failed_logins = RateLimiter::with_window(config.limits.failed_logins_per_account, Duration::from_secs(15 * 60));
    let firewall = firewall(&config);
    let gpu_monitor = GpuMonitor::new(
        telemetry.source(),
        telemetry.is_live(),
        discovered.err(),
        config.telemetry.interval,
        config.telemetry.busy_utilization,
    );
    Ok(Arc::new(AppState {
        config,
        store,
        storage,
        runtime,
        lifecycle,
        auth,
        events,
        firewall,
        gate_cache: GateCache::new(Duration::from_secs(5)),
        passes,
        auth_limiter,
        failed_logins,
        metrics,
        telemetry,
        gpu_monitor,
        activity: Default::default(),
    }))
}
