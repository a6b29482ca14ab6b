//! Configuration: built-in defaults, then a TOML file, then `MEDFORGE_*`
//! environment variables (`__` between levels), merged with figment.
//! Unknown keys are errors, so a typo never silently falls back to a default.
//! Paths come out absolute ([`paths`] says against what).

mod duration;
mod gpus;
mod legacy;
mod load;
mod paths;
#[cfg(test)]
mod tests;

pub use gpus::{Discovery, GpuListError};
pub use load::{ConfigError, mask_url_password};
pub use paths::sqlite_file;

use std::net::SocketAddr;
use std::path::PathBuf;

use medforge_core::runtime::GpuMode;
use serde::{Deserialize, Serialize};

/// The top-level keys, so that unrelated `MEDFORGE_*` variables (the test
/// scripts' `MEDFORGE_TEST_*`, say) are not taken for misspelt settings.
const TOP_LEVEL_KEYS: &[&str] = &[
    "base_domain",
    "sessions_domain",
    "listen",
    "metrics_listen",
    "http",
    "tls",
    "data_dir",
    "database_url",
    "cookie_secure",
    "routing",
    "gate_upstream",
    "secret",
    "auth",
    "runtime",
    "pack",
    "gpus",
    "storage",
    "firewall",
    "limits",
    "telemetry",
    "sessions",
    "queue",
    "notify",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// UI at `<base_domain>`, sessions at `s-<slug>.<exposure>.<base_domain>`
    /// (or under `sessions_domain`).
    pub base_domain: String,
    /// Sessions at `s-<slug>.<exposure>.<sessions_domain>` instead: another
    /// registrable domain keeps session pages off the UI's site entirely
    /// (docs/operations.md recommends it). Default: the base domain.
    pub sessions_domain: Option<String>,
    /// API, UI and built-in proxy.
    pub listen: SocketAddr,
    /// Prometheus's `/metrics`, on a listener of its own (never the main
    /// one: what runs where is nobody else's business). Port 0: any free
    /// port, printed at start.
    pub metrics_listen: SocketAddr,
    pub http: HttpConfig,
    /// HTTPS on `listen` with the built-in router.
    pub tls: TlsConfig,
    /// SQLite file, secret and dir workspaces by default.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `mysql://user:pass@host:3306/db`; default: a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// `true` behind TLS (always, with `[tls]`).
    pub cookie_secure: bool,
    pub routing: Routing,
    pub gate_upstream: GateUpstream,
    /// The token-hashing key (32+ bytes). Default: `<data_dir>/secret`, created on first start.
    pub secret: Option<String>,
    pub auth: AuthConfig,
    pub runtime: RuntimeConfig,
    pub pack: PackConfig,
    pub gpus: GpusConfig,
    pub storage: StorageConfig,
    pub firewall: FirewallConfig,
    pub limits: LimitsConfig,
    pub telemetry: TelemetryConfig,
    pub sessions: SessionsConfig,
    pub queue: QueueConfig,
    pub notify: NotifyConfig,
}

/// `[sessions]`: when MedForge stops sessions by itself (docs/decisions.md,
/// "What counts as using a session"). Durations as `"30s"`, `"10m"`,
/// `"2h"`; `"0"` turns a limit off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Unused this long (no request or keystroke through the proxy, GPU
    /// not busy), a session is warned, then stopped with its snapshot.
    #[serde(with = "duration")]
    pub idle_timeout: std::time::Duration,
    /// A session's lifetime; an admin's per-user value wins.
    #[serde(with = "duration")]
    pub max_lifetime: std::time::Duration,
    /// How long before an automatic stop its owner is warned.
    #[serde(with = "duration")]
    pub warn_before: std::time::Duration,
    /// What "Extend" adds to the lifetime.
    #[serde(with = "duration")]
    pub extend_by: std::time::Duration,
    /// How often a session may be extended.
    pub max_extensions: u32,
    /// A session whose GPU is this busy (0 to 1, from telemetry) is in
    /// use, browser closed or not: a training run keeps it alive.
    pub busy_gpu_utilization: f64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        let limits = medforge_core::limits::SessionLimits::default();
        Self {
            idle_timeout: limits.idle_timeout.unwrap_or_default(),
            max_lifetime: limits.max_lifetime.unwrap_or_default(),
            warn_before: limits.warn_before,
            extend_by: limits.extend_by,
            max_extensions: limits.max_extensions,
            busy_gpu_utilization: 0.1,
        }
    }
}

impl SessionsConfig {
    /// The core's limits (`"0"` is off).
    pub fn limits(&self) -> medforge_core::limits::SessionLimits {
        let on = |d: std::time::Duration| (!d.is_zero()).then_some(d);
        medforge_core::limits::SessionLimits {
            idle_timeout: on(self.idle_timeout),
            max_lifetime: on(self.max_lifetime),
            warn_before: self.warn_before,
            extend_by: self.extend_by,
            max_extensions: self.max_extensions,
        }
    }
}

/// `[queue]`: the wait queue for a GPU.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// How long a GPU offered to the head of the queue stays reserved for
    /// them before it passes to the next.
    #[serde(with = "duration")]
    pub claim_timeout: std::time::Duration,
    /// `"fifo"`: first come, first served; `"fair"`: fewest GPU-hours held
    /// in the last 7 days first.
    pub order: medforge_core::queue::QueueOrder,
    /// Whether a session may be extended while others wait for a GPU of
    /// its exposure.
    pub extend_when_queued: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            claim_timeout: std::time::Duration::from_secs(600),
            order: medforge_core::queue::QueueOrder::Fifo,
            extend_when_queued: true,
        }
    }
}

/// `[notify]`: where else the queue and the limits tell users.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Each offer and warning is POSTed here as JSON (a chat webhook's
    /// bridge); unset: none.
    pub webhook_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    Builtin,
    Caddy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateUpstream {
    /// `mf-session-<slug>:8080`, for a proxy on the sessions network.
    Name,
    /// The container's `ip:8080`.
    Address,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    pub kind: RuntimeKind,
    /// The engine's API socket. Empty: Docker's `/var/run/docker.sock`; for
    /// Podman, `/run/podman/podman.sock` (rootful) or else
    /// `$XDG_RUNTIME_DIR/podman/podman.sock` (rootless), whichever exists.
    pub socket: String,
    pub gpu_mode: GpuModeSetting,
    pub external_network: String,
    pub internal_network: String,
    #[serde(with = "duration")]
    pub stop_timeout: std::time::Duration,
    #[serde(with = "duration")]
    pub poll_interval: std::time::Duration,
    #[serde(with = "duration")]
    pub ready_timeout: std::time::Duration,
    /// Extra labels on every session container; boot reconciliation only
    /// touches containers that carry them (two deployments on one engine).
    pub labels: std::collections::BTreeMap<String, String>,
    /// Per-container limits: memory_bytes, pids, shm_bytes, and the
    /// `nofile`/`nproc` ulimits every container gets explicitly (Podman
    /// cannot start one without them; neither may exceed the engine's own).
    pub limits: medforge_core::runtime::ResourceLimits,
}

/// How sessions get their GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuModeSetting {
    /// `nvidia` when the engine has NVIDIA support (Docker's `nvidia`
    /// runtime or hook, a CDI spec for Podman), else `none` with a warning:
    /// a laptop or a CI machine runs without editing the config.
    Auto,
    /// Always pass the session's GPU; sessions fail to start without NVIDIA support.
    Nvidia,
    /// Never pass a GPU (the containers are otherwise the same).
    None,
}

impl GpuModeSetting {
    /// The mode sessions run with, given whether the engine has NVIDIA support.
    pub fn resolve(self, nvidia_available: bool) -> GpuMode {
        match self {
            GpuModeSetting::Nvidia => GpuMode::Nvidia,
            GpuModeSetting::None => GpuMode::None,
            GpuModeSetting::Auto if nvidia_available => GpuMode::Nvidia,
            GpuModeSetting::Auto => GpuMode::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    Docker,
    Podman,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackConfig {
    pub image: String,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpusConfig {
    pub ids: GpuIds,
}

/// A list of GPU indexes, or a keyword.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GpuIds {
    List(Vec<u32>),
    Auto(AutoKeyword),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoKeyword {
    /// Whatever NVML lists; `serve` refuses to start without it.
    Auto,
    /// The default: what NVML lists where it loads, else
    /// [`FALLBACK_GPU_SLOTS`] slots for sessions without a GPU (a laptop, a
    /// CI machine), so that the defaults fit a GPU host and a CPU one alike.
    Detect,
}

/// GPU telemetry: where readings come from and how often.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub source: TelemetrySource,
    /// libnvidia-ml's path; unset: `libnvidia-ml.so.1` on the loader's
    /// path, then `/usr/local/nvidia/lib64/`.
    pub nvml_library: Option<PathBuf>,
    /// How often every GPU is read (`"5s"`; at least one second).
    #[serde(with = "duration")]
    pub interval: std::time::Duration,
    /// A sample counts as busy at this utilisation or above (0 to 1).
    pub busy_utilization: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TelemetrySource {
    /// NVML where the library and the driver are there, else none (with a
    /// warning and a doctor note): a GPU host and a CPU one run the same config.
    Auto,
    /// NVML or `serve` refuses to start.
    Nvml,
    /// No readings: the board shows holders only, busy hours are unknown.
    None,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            source: TelemetrySource::Auto,
            nvml_library: None,
            interval: std::time::Duration::from_secs(5),
            busy_utilization: 0.1,
        }
    }
}

/// How many GPU slots `gpus.ids = "detect"` gives a host without NVML.
pub const FALLBACK_GPU_SLOTS: u32 = 7;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub kind: StorageKind,
    /// A directory (`dir`, default `<data_dir>/workspaces`) or the parent
    /// dataset of every workspace (`zfs`, e.g. `tank/medforge/workspaces`).
    pub root: Option<String>,
    /// Every workspace's quota (ZFS only; a user's own
    /// `workspace_quota_bytes`, set by an admin, wins). 0 or unset: none.
    pub quota_bytes: Option<u64>,
    /// The `zfs` binary.
    pub zfs_command: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    Dir,
    Zfs,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallConfig {
    pub kind: FirewallKind,
    /// Addresses besides the host that may open connections to session
    /// port 8080: Caddy's fixed address on the sessions network.
    pub proxy_addrs: Vec<std::net::Ipv4Addr>,
    /// Host TCP ports sessions may reach (none by default: not the API,
    /// not the database, not Docker's TCP socket).
    pub allowed_host_ports: Vec<u16>,
    /// How often `serve` checks the rules and puts back what is missing
    /// (Docker recreating a network, a dockerd restart, a flush by hand).
    #[serde(with = "duration")]
    pub check_interval: std::time::Duration,
    /// The nftables table (family inet) that holds MedForge's rules.
    pub nft_table: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirewallKind {
    /// The default: nftables where `nft` may change the ruleset here,
    /// iptables where only it works, else none (with doctor's FAIL off
    /// `*.localhost`). Made concrete when a command starts
    /// (`stack::resolve_firewall`).
    Auto,
    None,
    Nftables,
    Iptables,
}

/// What the listener holds clients to (`crate::http::server`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A request's headers must be in within this long of the
    /// connection being ready for them (accepted, or done with the last
    /// request); else it is closed.
    #[serde(with = "duration")]
    pub header_read_timeout: std::time::Duration,
    /// An idle keep-alive connection is closed after this (at most the
    /// header timeout, which bounds idleness too).
    #[serde(with = "duration")]
    pub keep_alive_idle: std::time::Duration,
    /// Open connections at most (WebSocket tunnels included).
    pub max_connections: usize,
    /// Open connections at most from one client network (an IPv4
    /// address, an IPv6 /64); `limits.trusted_proxies` are exempt.
    pub max_connections_per_client: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: std::time::Duration::from_secs(10),
            keep_alive_idle: std::time::Duration::from_secs(10),
            max_connections: 8192,
            max_connections_per_client: 512,
        }
    }
}

/// `[tls]`: the built-in router serves HTTPS itself (`crate::http::tls`).
/// Off until both files are named; not with `routing = "caddy"`, where
/// Caddy holds the certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The certificate chain, PEM (certbot's `fullchain.pem`): valid for
    /// the base domain and `*.external.` / `*.internal.` of the sessions
    /// domain.
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM (`privkey.pem`).
    pub key_file: Option<PathBuf>,
    /// How often the two files are read for a renewal; a changed pair is
    /// served from the next connection on, without a restart.
    #[serde(with = "duration")]
    pub reload_check: std::time::Duration,
    /// A plain-HTTP listener that sends every request for our hosts to
    /// HTTPS (e.g. `"0.0.0.0:80"`); unset: none.
    pub redirect_http_listen: Option<SocketAddr>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            reload_check: std::time::Duration::from_secs(60),
            redirect_http_listen: None,
        }
    }
}

impl TlsConfig {
    /// The files, when TLS is on.
    pub fn files(&self) -> Option<crate::http::tls::Files> {
        Some(crate::http::tls::Files { cert: self.cert_file.clone()?, key: self.key_file.clone()? })
    }
}

/// Who may make an account (docs/security.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub signup: SignupPolicy,
    /// With `signup = "domains"`: the email domains that may sign up
    /// (exactly these, no subdomains), e.g. `["lab.example.org"]`.
    pub allowed_email_domains: Vec<String>,
    /// How long an invite link works (default 7 days).
    #[serde(with = "duration")]
    pub invite_valid: std::time::Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            signup: SignupPolicy::Invite,
            allowed_email_domains: Vec::new(),
            invite_valid: std::time::Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl AuthConfig {
    /// Whether `domain` (lower case, as `Email::domain` gives it) is listed.
    pub fn allows_domain(&self, domain: &str) -> bool {
        self.allowed_email_domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// `auth.signup`: who may make an account. An admin's invite works with
/// every policy but `closed`; admins can always make accounts themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignupPolicy {
    /// Only with an admin's invite link (the default).
    Invite,
    /// Addresses at `allowed_email_domains`, or with an invite.
    Domains,
    /// Anyone who reaches the server.
    Open,
    /// No one: admins make the accounts.
    Closed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Login and signup attempts per client network (an IPv4 address, an
    /// IPv6 /64) per minute.
    pub auth_per_minute: u32,
    /// Failed sign-ins per account per 15 minutes, from anywhere; then the
    /// account's sign-ins are refused until the window ends.
    pub failed_logins_per_account: u32,
    /// Request bodies larger than this get 413.
    pub max_body_bytes: usize,
    /// Proxies (addresses or subnets) whose `X-Forwarded-For` names the
    /// client: behind Caddy every request's TCP peer is Caddy, and rate
    /// limits and events would lump all users together. Empty: the peer.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            base_domain: "medforge.localhost".into(),
            sessions_domain: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            http: HttpConfig::default(),
            tls: TlsConfig::default(),
            data_dir: PathBuf::from("./medforge-data"),
            database_url: None,
            cookie_secure: false,
            routing: Routing::Builtin,
            gate_upstream: GateUpstream::Name,
            secret: None,
            auth: AuthConfig::default(),
            runtime: RuntimeConfig::default(),
            pack: PackConfig::default(),
            gpus: GpusConfig::default(),
            storage: StorageConfig::default(),
            firewall: FirewallConfig::default(),
            limits: LimitsConfig::default(),
            telemetry: TelemetryConfig::default(),
            sessions: SessionsConfig::default(),
            queue: QueueConfig::default(),
            notify: NotifyConfig::default(),
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            kind: RuntimeKind::Docker,
            socket: String::new(),
            gpu_mode: GpuModeSetting::Auto,
            external_network: "medforge-external-sessions".into(),
            internal_network: "medforge-internal-sessions".into(),
            stop_timeout: std::time::Duration::from_secs(30),
            poll_interval: std::time::Duration::from_secs(30),
            ready_timeout: std::time::Duration::from_secs(120),
            labels: Default::default(),
            limits: Default::default(),
        }
    }
}

impl Default for PackConfig {
    fn default() -> Self {
        Self { image: "medforge-pack-default:latest".into(), digest: None }
    }
}

impl Default for GpusConfig {
    fn default() -> Self {
        Self { ids: GpuIds::Auto(AutoKeyword::Detect) }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { kind: StorageKind::Dir, root: None, quota_bytes: None, zfs_command: PathBuf::from("zfs") }
    }
}

impl Default for FirewallConfig {
    fn default() -> Self {
        Self {
            kind: FirewallKind::Auto,
            proxy_addrs: Vec::new(),
            allowed_host_ports: Vec::new(),
            check_interval: std::time::Duration::from_secs(10),
            nft_table: medforge_net_iptables::nftables::TABLE.into(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            auth_per_minute: 10,
            failed_logins_per_account: 10,
            max_body_bytes: 1 << 20,
            trusted_proxies: Vec::new(),
        }
    }
}
