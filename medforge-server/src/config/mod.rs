//! Configuration: built-in defaults, then a TOML file, then `MEDFORGE_*`
//! environment variables (`__` between levels), merged with figment.
//! Unknown keys are errors, so a typo never silently falls back to a default.
//! Paths come out absolute ([`paths`] says against what).

mod paths;

pub use paths::sqlite_file;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use medforge_core::model::GpuId;
use medforge_core::runtime::GpuMode;
use serde::{Deserialize, Serialize};

/// The top-level keys, so that unrelated `MEDFORGE_*` variables (the test
/// scripts' `MEDFORGE_TEST_*`, say) are not taken for misspelt settings.
const TOP_LEVEL_KEYS: &[&str] = &[
    "base_domain",
    "listen",
    "data_dir",
    "database_url",
    "cookie_secure",
    "routing",
    "gate_upstream",
    "secret",
    "runtime",
    "pack",
    "gpus",
    "storage",
    "firewall",
    "limits",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// UI at `<base_domain>`, sessions at `s-<slug>.<exposure>.<base_domain>`.
    pub base_domain: String,
    /// API, UI and built-in proxy.
    pub listen: SocketAddr,
    /// SQLite file, secret and dir workspaces by default.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `mysql://user:pass@host:3306/db`; default: a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// `true` behind TLS.
    pub cookie_secure: bool,
    pub routing: Routing,
    pub gate_upstream: GateUpstream,
    /// The token-hashing key (32+ bytes). Default: `<data_dir>/secret`, created on first start.
    pub secret: Option<String>,
    pub runtime: RuntimeConfig,
    pub pack: PackConfig,
    pub gpus: GpusConfig,
    pub storage: StorageConfig,
    pub firewall: FirewallConfig,
    pub limits: LimitsConfig,
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
    pub stop_timeout_secs: u64,
    pub poll_interval_secs: u64,
    pub ready_timeout_secs: u64,
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
    /// Whatever `nvidia-smi` lists; `serve` refuses to start without it.
    Auto,
    /// The default: what `nvidia-smi` lists where it runs, else
    /// [`FALLBACK_GPU_SLOTS`] slots for sessions without a GPU (a laptop, a
    /// CI machine), so that the defaults fit a GPU host and a CPU one alike.
    Detect,
}

/// How many GPU slots `gpus.ids = "detect"` gives a host without `nvidia-smi`.
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
    pub check_interval_secs: u64,
    /// The nftables table (family inet) that holds MedForge's rules.
    pub nft_table: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirewallKind {
    None,
    Nftables,
    Iptables,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Login and signup attempts per client IP per minute.
    pub auth_per_minute: u32,
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
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./medforge-data"),
            database_url: None,
            cookie_secure: false,
            routing: Routing::Builtin,
            gate_upstream: GateUpstream::Name,
            secret: None,
            runtime: RuntimeConfig::default(),
            pack: PackConfig::default(),
            gpus: GpusConfig::default(),
            storage: StorageConfig::default(),
            firewall: FirewallConfig::default(),
            limits: LimitsConfig::default(),
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
            stop_timeout_secs: 30,
            poll_interval_secs: 30,
            ready_timeout_secs: 120,
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
            kind: FirewallKind::None,
            proxy_addrs: Vec::new(),
            allowed_host_ports: Vec::new(),
            check_interval_secs: 10,
            nft_table: medforge_net_iptables::nftables::TABLE.into(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { auth_per_minute: 10, max_body_bytes: 1 << 20, trusted_proxies: Vec::new() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(Box<figment::Error>),
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, reason: reason.into() }
}

impl Config {
    /// Defaults, then `file` (or `./medforge.toml` when present and no file
    /// is named), then the environment; every path made absolute; validated.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let cwd = std::env::current_dir()
            .map_err(|e| invalid("data_dir", format!("cannot tell the working directory: {e}")))?;
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = match file {
            Some(path) if !path.exists() => {
                return Err(invalid("--config", format!("{} does not exist", path.display())));
            }
            Some(path) => Some(paths::absolute(path, &cwd)),
            None => Some(cwd.join("medforge.toml")).filter(|p| p.exists()),
        };
        if let Some(path) = &file {
            // `file_exact`: figment's `file` would also search the parent
            // directories for a relative name.
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = Env::prefixed("MEDFORGE_")
            .filter(|key| {
                let key = key.as_str().to_ascii_lowercase();
                let top = key.split("__").next().unwrap_or_default().to_owned();
                TOP_LEVEL_KEYS.contains(&top.as_str())
            })
            .split("__");
        let figment = figment.merge(env);
        let mut config: Config = figment.extract().map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.make_paths_absolute(&paths::Bases { figment: &figment, cwd });
        config.validate()?;
        Ok(config)
    }

    /// Every filesystem path, absolute; the defaults that derive from
    /// `data_dir` (the SQLite file, the workspaces) written out, so that
    /// `config check` shows them.
    fn make_paths_absolute(&mut self, bases: &paths::Bases) {
        self.data_dir = paths::absolute(&self.data_dir, &bases.of("data_dir"));
        self.database_url = Some(match &self.database_url {
            Some(url) => paths::database_url(url, &bases.of("database_url")),
            None => self.database_url(),
        });
        if self.storage.kind == StorageKind::Dir {
            let root = match &self.storage.root {
                Some(root) => paths::absolute(Path::new(root), &bases.of("storage.root")),
                None => self.data_dir.join("workspaces"),
            };
            self.storage.root = Some(root.display().to_string());
        }
        self.storage.zfs_command = paths::command(&self.storage.zfs_command, &bases.of("storage.zfs_command"));
        self.runtime.socket = paths::socket(&self.runtime.socket, &bases.of("runtime.socket"));
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let domain = &self.base_domain;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if domain.is_empty() || !domain.split('.').all(label_ok) {
            return Err(invalid("base_domain", format!("{domain:?} is not a lower-case DNS name")));
        }
        let url = self.database_url();
        if !(url.starts_with("sqlite:") || url.starts_with("mysql://") || url.starts_with("mariadb://")) {
            return Err(invalid("database_url", "must start with sqlite: or mysql://"));
        }
        if self.pack.image.trim().is_empty() || self.pack.image.contains(char::is_whitespace) {
            return Err(invalid("pack.image", format!("{:?} is not an image reference", self.pack.image)));
        }
        if let Some(secret) = &self.secret
            && secret.len() < 32
        {
            return Err(invalid("secret", "must be at least 32 characters"));
        }
        if self.storage.kind == StorageKind::Zfs {
            self.zfs_root()?;
        }
        let t = &self.firewall.nft_table;
        if t.is_empty() || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid("firewall.nft_table", format!("{t:?}: letters, digits and _ only")));
        }
        if self.firewall.check_interval_secs == 0 {
            return Err(invalid("firewall.check_interval_secs", "must be at least 1"));
        }
        if self.limits.auth_per_minute == 0 {
            return Err(invalid("limits.auth_per_minute", "must be at least 1"));
        }
        if let GpuIds::List(ids) = &self.gpus.ids
            && ids.is_empty()
        {
            return Err(invalid("gpus.ids", "must list at least one GPU, or be \"auto\""));
        }
        Ok(())
    }

    /// Where browsers open the web UI: the built-in router on the port
    /// `serve` listens on, or behind Caddy on the default HTTPS port.
    /// The scheme browsers reach this deployment with: https exactly when
    /// the cookie is `Secure`.
    pub fn scheme(&self) -> &'static str {
        if self.cookie_secure { "https" } else { "http" }
    }

    pub fn ui_url(&self, listen_port: u16) -> String {
        let scheme = if self.cookie_secure { "https" } else { "http" };
        match self.routing {
            Routing::Caddy => format!("{scheme}://{}", self.base_domain),
            Routing::Builtin if listen_port == 80 && !self.cookie_secure => format!("http://{}", self.base_domain),
            Routing::Builtin => format!("{scheme}://{}:{listen_port}", self.base_domain),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| paths::sqlite_url(&self.data_dir.join("medforge.db")))
    }

    /// Where the token key lives when `secret` is not configured.
    pub fn secret_file(&self) -> PathBuf {
        self.data_dir.join("secret")
    }

    /// The ZFS root dataset, validated: it goes on the `zfs` command line.
    pub fn zfs_root(&self) -> Result<medforge_storage_zfs::DatasetName, ConfigError> {
        let root = self.storage.root.as_deref().ok_or_else(|| {
            invalid(
                "storage.root",
                "storage.kind = \"zfs\" needs the parent dataset, e.g. \"tank/medforge/workspaces\"",
            )
        })?;
        root.parse().map_err(|e: medforge_storage_zfs::InvalidDatasetName| invalid("storage.root", e.to_string()))
    }

    pub fn storage_root(&self) -> String {
        self.storage.root.clone().unwrap_or_else(|| self.data_dir.join("workspaces").display().to_string())
    }

    /// The effective config as TOML with secrets masked: the secret itself
    /// and any password in the database URL.
    pub fn masked_toml(&self) -> String {
        let mut shown = self.clone();
        shown.secret = shown.secret.as_ref().map(|_| "********".into());
        shown.database_url = Some(mask_url_password(&self.database_url()));
        let value = serde_json::to_value(&shown).unwrap_or_default();
        let secret = match &self.secret {
            Some(_) => String::new(),
            None => format!("# secret: read from {} (made on first start)\n", self.secret_file().display()),
        };
        secret + &to_toml(&value)
    }
}

/// `mysql://user:pass@host/db` -> `mysql://user:********@host/db`.
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:********@{host}"),
        None => url.to_owned(),
    }
}

/// A small TOML writer for the config's shape (tables of scalars and lists).
fn to_toml(value: &serde_json::Value) -> String {
    fn scalar(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => format!("{s:?}"),
            serde_json::Value::Array(items) => format!("[{}]", items.iter().map(scalar).collect::<Vec<_>>().join(", ")),
            other => other.to_string(),
        }
    }
    let mut top = String::new();
    let mut tables = String::new();
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            match v {
                serde_json::Value::Null => {}
                serde_json::Value::Object(inner) => {
                    tables.push_str(&format!("\n[{k}]\n"));
                    for (ik, iv) in inner {
                        if !iv.is_null() {
                            tables.push_str(&format!("{ik} = {}\n", scalar(iv)));
                        }
                    }
                }
                other => top.push_str(&format!("{k} = {}\n", scalar(other))),
            }
        }
    }
    top + &tables
}

impl GpuIds {
    /// The configured list, or the GPUs `nvidia-smi` reports (`detect`:
    /// the fallback slots when it does not run).
    pub fn resolve(&self) -> Result<Vec<GpuId>, String> {
        match self {
            GpuIds::List(ids) => Ok(ids.iter().copied().map(GpuId).collect()),
            GpuIds::Auto(AutoKeyword::Auto) => discover_gpus(),
            GpuIds::Auto(AutoKeyword::Detect) => Ok(discover_gpus().unwrap_or_else(|_| Self::fallback_slots())),
        }
    }

    pub fn fallback_slots() -> Vec<GpuId> {
        (0..FALLBACK_GPU_SLOTS).map(GpuId).collect()
    }
}

/// `nvidia-smi --query-gpu=index,uuid,name --format=csv,noheader`.
pub fn discover_gpus() -> Result<Vec<GpuId>, String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index,uuid,name", "--format=csv,noheader"])
        .output()
        .map_err(|e| format!("gpus = \"auto\" needs nvidia-smi: {e}"))?;
    if !out.status.success() {
        return Err(format!("nvidia-smi failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `index, uuid, name` lines.
pub fn parse_nvidia_smi(text: &str) -> Result<Vec<GpuId>, String> {
    let ids = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let index = l.split(',').next().unwrap_or_default().trim();
            index.parse::<u32>().map(GpuId).map_err(|_| format!("unexpected nvidia-smi line {l:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err("nvidia-smi lists no GPUs".into());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    use figment::Jail;

    /// Runs `f` in a jail: its own working directory (a new temporary one)
    /// and environment, one jail at a time, so that the tests that set
    /// `MEDFORGE_*` variables or load `./medforge.toml` do not see each other.
    #[allow(clippy::result_large_err)] // figment's error type, in figment's signature
    fn jailed<T>(f: impl FnOnce(&mut Jail) -> T) -> T {
        let mut out = None;
        Jail::expect_with(|jail| {
            out = Some(f(jail));
            Ok(())
        });
        out.expect("the jail ran")
    }

    fn load_toml(text: &str) -> Result<Config, ConfigError> {
        jailed(|jail| {
            jail.create_file("medforge.toml", text).expect("write");
            Config::load(Some(Path::new("medforge.toml")))
        })
    }

    #[test]
    fn defaults_run_on_one_machine() {
        let (c, cwd) = jailed(|_| (Config::load(None).expect("defaults"), std::env::current_dir().expect("cwd")));
        assert_eq!(c.base_domain, "medforge.localhost");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(!c.cookie_secure);
        assert_eq!(c.data_dir, cwd.join("medforge-data"));
        assert_eq!(c.database_url(), format!("sqlite://{}/medforge-data/medforge.db", cwd.display()));
        assert_eq!(c.storage_root(), format!("{}/medforge-data/workspaces", cwd.display()));
        assert_eq!(c.secret_file(), cwd.join("medforge-data/secret"));
        assert_eq!(c.gpus.ids, GpuIds::Auto(AutoKeyword::Detect));
        assert_eq!(c.storage.kind, StorageKind::Dir);
        assert_eq!(c.firewall.kind, FirewallKind::None);
        assert_eq!(c.runtime.gpu_mode, GpuModeSetting::Auto);
    }

    /// A path key of the config: how to set it, and how it reads back.
    struct PathKey {
        env: &'static str,
        /// The TOML that sets it to `{}`.
        toml: &'static str,
        /// The value to set, under `prefix` ("" for a relative one).
        value: fn(&str) -> String,
        read: fn(&Config) -> String,
        /// What `read` must give when the value is relative to `base`.
        want: fn(&Path) -> String,
    }

    const PATH_KEYS: &[PathKey] = &[
        PathKey {
            env: "MEDFORGE_DATA_DIR",
            toml: "data_dir = \"{}\"",
            value: |p| format!("{p}state"),
            read: |c| c.data_dir.display().to_string(),
            want: |b| b.join("state").display().to_string(),
        },
        // The files that derive from data_dir follow it.
        PathKey {
            env: "MEDFORGE_DATA_DIR",
            toml: "data_dir = \"{}\"",
            value: |p| format!("{p}state"),
            read: |c| format!("{} {} {}", c.secret_file().display(), c.database_url(), c.storage_root()),
            want: |b| {
                let d = b.join("state");
                format!(
                    "{} sqlite://{}/medforge.db {}/workspaces",
                    d.join("secret").display(),
                    d.display(),
                    d.display()
                )
            },
        },
        PathKey {
            env: "MEDFORGE_DATABASE_URL",
            toml: "database_url = \"{}\"",
            value: |p| format!("sqlite:{p}state/lab.db?mode=rwc"),
            read: Config::database_url,
            want: |b| format!("sqlite://{}/state/lab.db?mode=rwc", b.display()),
        },
        PathKey {
            env: "MEDFORGE_STORAGE__ROOT",
            toml: "[storage]\nroot = \"{}\"",
            value: |p| format!("{p}./workspaces"),
            read: Config::storage_root,
            want: |b| b.join("workspaces").display().to_string(),
        },
        PathKey {
            env: "MEDFORGE_STORAGE__ZFS_COMMAND",
            toml: "[storage]\nzfs_command = \"{}\"",
            value: |p| format!("{p}bin/zfs"),
            read: |c| c.storage.zfs_command.display().to_string(),
            want: |b| b.join("bin/zfs").display().to_string(),
        },
        PathKey {
            env: "MEDFORGE_RUNTIME__SOCKET",
            toml: "[runtime]\nsocket = \"{}\"",
            value: |p| format!("unix://{p}run/engine.sock"),
            read: |c| c.runtime.socket.clone(),
            want: |b| format!("unix://{}", b.join("run/engine.sock").display()),
        },
    ];

    /// Each path key ends absolute: relative in the environment (against
    /// the working directory), relative in a file in another directory
    /// (against that file's directory), and absolute (as written).
    #[test]
    fn every_path_key_ends_absolute_as_documented() {
        for key in PATH_KEYS {
            jailed(|jail| {
                let cwd = std::env::current_dir().expect("cwd");
                jail.set_env(key.env, (key.value)(""));
                let c = Config::load(None).expect("relative, from the environment");
                assert_eq!((key.read)(&c), (key.want)(&cwd), "{} relative in the environment", key.env);
                jail.set_env(key.env, (key.value)("/opt/mf/"));
                let c = Config::load(None).expect("absolute, from the environment");
                assert_eq!((key.read)(&c), (key.want)(Path::new("/opt/mf")), "{} absolute in the environment", key.env);
            });
            jailed(|jail| {
                let cwd = std::env::current_dir().expect("cwd");
                let toml = |value: &str| key.toml.replace("{}", value);
                // Named on the command line as a relative path, in another directory.
                jail.create_dir("etc/lab").expect("mkdir");
                jail.create_file("etc/lab/relative.toml", &toml(&(key.value)(""))).expect("write");
                let c = Config::load(Some(Path::new("etc/lab/relative.toml"))).expect("relative, in a file");
                assert_eq!((key.read)(&c), (key.want)(&cwd.join("etc/lab")), "{} relative in a file", key.toml);
                jail.create_file("etc/lab/absolute.toml", &toml(&(key.value)("/opt/mf/"))).expect("write");
                let c = Config::load(Some(&cwd.join("etc/lab/absolute.toml"))).expect("absolute, in a file");
                assert_eq!((key.read)(&c), (key.want)(Path::new("/opt/mf")), "{} absolute in a file", key.toml);

                // ./medforge.toml, found by itself: its directory is the working one.
                jail.create_file("medforge.toml", &toml(&(key.value)(""))).expect("write");
                let c = Config::load(None).expect("./medforge.toml");
                assert_eq!((key.read)(&c), (key.want)(&cwd), "{} in ./medforge.toml", key.toml);
            });
        }
    }

    /// `config check` shows the paths as the server uses them.
    #[test]
    fn the_effective_config_shows_absolute_paths() {
        let (shown, cwd) = jailed(|jail| {
            jail.set_env("MEDFORGE_DATA_DIR", "./medforge-data");
            (Config::load(None).expect("config").masked_toml(), std::env::current_dir().expect("cwd"))
        });
        let data = cwd.join("medforge-data");
        assert!(shown.contains(&format!("data_dir = \"{}\"\n", data.display())), "{shown}");
        assert!(shown.contains(&format!("database_url = \"sqlite://{}/medforge.db\"", data.display())), "{shown}");
        assert!(shown.contains(&format!("root = \"{}/workspaces\"", data.display())), "{shown}");
        assert!(shown.contains(&format!("# secret: read from {}/secret", data.display())), "{shown}");
        assert!(!shown.contains("./"), "{shown}");
    }

    /// `detect` (the default) takes what nvidia-smi lists, and seven slots
    /// where it does not run; `auto` needs it.
    #[test]
    fn detected_gpus_follow_nvidia_smi_or_fall_back_to_seven_slots() {
        jailed(|jail| {
            let bin = jail.create_dir("bin").expect("bin");
            jail.set_env("PATH", bin.display());
            let detect = GpuIds::Auto(AutoKeyword::Detect);
            assert_eq!(detect.resolve(), Ok(GpuIds::fallback_slots()));
            assert_eq!(detect.resolve().expect("slots").len(), 7);
            assert!(GpuIds::Auto(AutoKeyword::Auto).resolve().is_err(), "auto needs nvidia-smi");
            let smi = bin.join("nvidia-smi");
            jail.create_file(&smi, "#!/bin/sh\necho '0, GPU-aaaa, NVIDIA H200'\necho '2, GPU-cccc, NVIDIA H200'\n")
                .expect("stand-in nvidia-smi");
            std::fs::set_permissions(&smi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
            assert_eq!(detect.resolve(), Ok(vec![GpuId(0), GpuId(2)]));
            assert_eq!(GpuIds::Auto(AutoKeyword::Auto).resolve(), Ok(vec![GpuId(0), GpuId(2)]));
        });
        let c = load_toml("[gpus]\nids = \"detect\"\n").expect("detect");
        assert_eq!(c.gpus.ids, GpuIds::Auto(AutoKeyword::Detect));
    }

    #[test]
    fn auto_gpu_mode_follows_the_engine_and_explicit_modes_do_not() {
        assert_eq!(GpuModeSetting::Auto.resolve(true), GpuMode::Nvidia);
        assert_eq!(GpuModeSetting::Auto.resolve(false), GpuMode::None);
        assert_eq!(GpuModeSetting::Nvidia.resolve(false), GpuMode::Nvidia);
        assert_eq!(GpuModeSetting::None.resolve(true), GpuMode::None);
    }

    /// medforge.example.toml loads as it is, and documents every key there
    /// is (a new key without a line there fails this).
    #[test]
    fn the_example_config_loads_and_has_every_key() {
        let text = include_str!("../../../medforge.example.toml");
        let c = load_toml(text).expect("the example loads");
        assert_eq!(
            (c.routing, c.storage.kind, c.firewall.kind),
            (Routing::Caddy, StorageKind::Zfs, FirewallKind::Nftables)
        );
        fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
            if let Some(map) = v.as_object() {
                for (k, v) in map {
                    match v {
                        serde_json::Value::Object(_) if k != "labels" => walk(&format!("{prefix}{k}."), v, out),
                        _ => out.push((prefix.trim_end_matches('.').to_owned(), k.clone())),
                    }
                }
            }
        }
        let mut keys = Vec::new();
        walk("", &serde_json::to_value(Config::default()).expect("json"), &mut keys);
        assert!(keys.len() > 30, "{keys:?}");
        for (section, key) in keys {
            let body = if section.is_empty() {
                text.split("\n[").next().unwrap_or_default().to_owned()
            } else {
                let header = format!("\n[{section}]\n");
                let start = text.find(&header).unwrap_or_else(|| panic!("no [{section}] in the example"));
                text[start + header.len()..].split("\n[").next().unwrap_or_default().to_owned()
            };
            let documented = body.lines().any(|l| {
                let l = l.trim_start_matches("# ");
                l.starts_with(&format!("{key} ="))
            });
            assert!(documented, "{section}.{key} is not in medforge.example.toml");
        }
    }

    #[test]
    fn container_limits_come_from_the_runtime_section() {
        let c = load_toml("[runtime.limits]\nnofile = 2048\npids = 512\n").expect("config");
        assert_eq!((c.runtime.limits.nofile, c.runtime.limits.pids), (2048, Some(512)));
        assert_eq!(c.runtime.limits.nproc, medforge_core::runtime::ResourceLimits::default().nproc);
        assert!(load_toml("[runtime.limits]\nnofiles = 1\n").is_err(), "a misspelt key is refused");
    }

    #[test]
    fn files_override_and_unknown_keys_are_errors() {
        let c = load_toml("base_domain = \"lab.example.org\"\n[runtime]\ngpu_mode = \"none\"\n[gpus]\nids = [0, 2]\n")
            .expect("valid");
        assert_eq!(c.base_domain, "lab.example.org");
        assert_eq!(c.runtime.gpu_mode, GpuModeSetting::None);
        assert_eq!(c.gpus.ids, GpuIds::List(vec![0, 2]));
        let auto = load_toml("[gpus]\nids = \"auto\"\n").expect("auto");
        assert_eq!(auto.gpus.ids, GpuIds::Auto(AutoKeyword::Auto));
        for bad in [
            "base_dommain = \"x\"",
            "[runtime]\ngpu_moed = \"none\"",
            "base_domain = \"Not A Domain\"",
            "database_url = \"postgres://x\"",
            "[pack]\nimage = \"\"",
            "[gpus]\nids = []",
            "[gpus]\nids = \"some\"",
            "secret = \"short\"",
            "listen = \"nowhere\"",
        ] {
            let r = load_toml(bad);
            assert!(r.is_err(), "{bad:?} accepted");
        }
        let missing = jailed(|_| Config::load(Some(Path::new("/nonexistent/medforge.toml"))));
        assert!(missing.is_err());
    }

    #[test]
    fn secrets_are_masked() {
        let c = load_toml(&format!(
            "secret = \"{}\"\ndatabase_url = \"mysql://mf:hunter2hunter2@db:3306/medforge\"\n",
            "s".repeat(40)
        ))
        .expect("valid");
        let shown = c.masked_toml();
        assert!(!shown.contains("hunter2") && !shown.contains(&"s".repeat(40)), "{shown}");
        assert!(shown.contains("mysql://mf:********@db:3306/medforge"), "{shown}");
        assert!(shown.contains("[runtime]"), "{shown}");
    }

    #[test]
    fn nvidia_smi_output_parses() {
        let out = "0, GPU-aaaa, NVIDIA GeForce RTX 5090\n1, GPU-bbbb, NVIDIA GeForce RTX 5090\n";
        assert_eq!(parse_nvidia_smi(out), Ok(vec![GpuId(0), GpuId(1)]));
        assert!(parse_nvidia_smi("").is_err());
        assert!(parse_nvidia_smi("index, uuid\n").is_err());
    }
}
