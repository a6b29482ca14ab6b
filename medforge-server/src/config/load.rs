//! Loading: the providers merged, paths made absolute, then validation;
//! and what the rest of the server asks of a loaded configuration.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

use super::{Config, GpuIds, Routing, SignupPolicy, StorageKind, TOP_LEVEL_KEYS};
use super::{legacy, paths};

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
            figment = figment.merge(legacy::Legacy(Toml::file_exact(path)));
        }
        let env = Env::prefixed("MEDFORGE_")
            .filter(|key| {
                let key = key.as_str().to_ascii_lowercase();
                let top = key.split("__").next().unwrap_or_default().to_owned();
                TOP_LEVEL_KEYS.contains(&top.as_str())
            })
            .split("__");
        let figment = figment.merge(legacy::Legacy(env));
        let mut config: Config = figment.extract().map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.make_paths_absolute(&paths::Bases { figment: &figment, cwd });
        config.validate()?;
        // Served over HTTPS: the cookies are `Secure` (and `__Host-`).
        config.cookie_secure |= config.serves_tls();
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
        // A bare library name is the loader's to find, as a bare command is PATH's.
        if let Some(lib) = &mut self.telemetry.nvml_library {
            *lib = paths::command(lib, &bases.of("telemetry.nvml_library"));
        }
        self.runtime.socket = paths::socket(&self.runtime.socket, &bases.of("runtime.socket"));
        for (file, key) in [(&mut self.tls.cert_file, "tls.cert_file"), (&mut self.tls.key_file, "tls.key_file")] {
            if let Some(path) = file {
                *path = paths::absolute(path, &bases.of(key));
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let dns_name = |d: &str| !d.is_empty() && d.split('.').all(label_ok);
        let domain = &self.base_domain;
        if !dns_name(domain) {
            return Err(invalid("base_domain", format!("{domain:?} is not a lower-case DNS name")));
        }
        if let Some(sessions) = &self.sessions_domain {
            if !dns_name(sessions) {
                return Err(invalid("sessions_domain", format!("{sessions:?} is not a lower-case DNS name")));
            }
            // The UI's host must not be in a session zone: each host
            // belongs to one side.
            if domain.parse::<medforge_core::host::Host>().is_ok_and(|h| h.session_zone(sessions).is_some()) {
                return Err(invalid("sessions_domain", "the base domain is inside its session zones"));
            }
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
        let t = &self.telemetry;
        if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(3600)).contains(&t.interval) {
            return Err(invalid("telemetry.interval", "must be 1s to 1h"));
        }
        if !(0.0..=1.0).contains(&t.busy_utilization) {
            return Err(invalid("telemetry.busy_utilization", "must be 0 to 1"));
        }
        let s = &self.sessions;
        let limits = s.limits();
        let year = std::time::Duration::from_secs(366 * 86400);
        for (key, d) in [
            ("sessions.idle_timeout", s.idle_timeout),
            ("sessions.max_lifetime", s.max_lifetime),
            ("sessions.warn_before", s.warn_before),
            ("sessions.extend_by", s.extend_by),
            ("queue.claim_timeout", self.queue.claim_timeout),
        ] {
            if d > year {
                return Err(invalid(key, "must be at most 366 days"));
            }
        }
        if s.warn_before.is_zero() {
            return Err(invalid("sessions.warn_before", "must be more than 0: every automatic stop is warned"));
        }
        if let Some(idle) = limits.idle_timeout
            && idle <= s.warn_before
        {
            return Err(invalid("sessions.idle_timeout", "must be longer than sessions.warn_before (or \"0\": off)"));
        }
        if let Some(life) = limits.max_lifetime
            && life <= s.warn_before
        {
            return Err(invalid("sessions.max_lifetime", "must be longer than sessions.warn_before (or \"0\": off)"));
        }
        if !(0.0..=1.0).contains(&s.busy_gpu_utilization) {
            return Err(invalid("sessions.busy_gpu_utilization", "must be 0 to 1"));
        }
        if s.extend_by.is_zero() && s.max_extensions > 0 {
            return Err(invalid("sessions.extend_by", "must be more than 0 (or sessions.max_extensions = 0)"));
        }
        if self.queue.claim_timeout < std::time::Duration::from_secs(1) {
            return Err(invalid("queue.claim_timeout", "must be at least 1s"));
        }
        if let Some(url) = &self.notify.webhook_url {
            let ok = url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(invalid("notify.webhook_url", format!("{url:?} is not an http(s) URL")));
            }
        }
        if self.firewall.check_interval < std::time::Duration::from_secs(1) {
            return Err(invalid("firewall.check_interval", "must be at least 1s"));
        }
        if self.auth.signup == SignupPolicy::Domains && self.auth.allowed_email_domains.is_empty() {
            return Err(invalid("auth.allowed_email_domains", "signup = \"domains\" needs at least one domain"));
        }
        for d in &self.auth.allowed_email_domains {
            if d.is_empty() || d.contains('@') || d.parse::<medforge_core::host::Host>().is_err() {
                return Err(invalid("auth.allowed_email_domains", format!("{d:?} is not a domain (no @)")));
            }
        }
        if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(366 * 86400))
            .contains(&self.auth.invite_valid)
        {
            return Err(invalid("auth.invite_valid", "must be 1s to 366 days"));
        }
        let http = &self.http;
        if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(3600))
            .contains(&http.header_read_timeout)
        {
            return Err(invalid("http.header_read_timeout", "must be 1s to 1h"));
        }
        if !(std::time::Duration::from_secs(1)..=http.header_read_timeout).contains(&http.keep_alive_idle) {
            return Err(invalid(
                "http.keep_alive_idle",
                "must be 1s to http.header_read_timeout (which bounds idle connections too)",
            ));
        }
        if http.max_connections == 0 {
            return Err(invalid("http.max_connections", "must be at least 1"));
        }
        if !(1..=http.max_connections).contains(&http.max_connections_per_client) {
            return Err(invalid("http.max_connections_per_client", "must be 1 to http.max_connections"));
        }
        let tls = &self.tls;
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => return Err(invalid("tls.key_file", "tls.cert_file needs its key_file")),
            (None, Some(_)) => return Err(invalid("tls.cert_file", "tls.key_file needs its cert_file")),
            (Some(_), Some(_)) if self.routing == Routing::Caddy => {
                return Err(invalid(
                    "tls",
                    "with routing = \"caddy\", Caddy serves TLS: remove [tls], or use routing = \"builtin\"",
                ));
            }
            (None, None) if tls.redirect_http_listen.is_some() => {
                return Err(invalid(
                    "tls.redirect_http_listen",
                    "redirects to HTTPS, which needs cert_file and key_file",
                ));
            }
            _ => {}
        }
        if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(86400)).contains(&tls.reload_check) {
            return Err(invalid("tls.reload_check", "must be 1s to 1 day"));
        }
        if let Some(redirect) = tls.redirect_http_listen
            && redirect.port() != 0
            && (redirect == self.listen || redirect == self.metrics_listen)
        {
            return Err(invalid("tls.redirect_http_listen", "must not be the main or the metrics listener's address"));
        }
        if self.metrics_listen.port() != 0 && self.metrics_listen == self.listen {
            return Err(invalid("metrics_listen", "must not be the main listener's address"));
        }
        if self.limits.auth_per_minute == 0 {
            return Err(invalid("limits.auth_per_minute", "must be at least 1"));
        }
        if self.limits.failed_logins_per_account == 0 {
            return Err(invalid("limits.failed_logins_per_account", "must be at least 1"));
        }
        if let GpuIds::List(ids) = &self.gpus.ids
            && ids.is_empty()
        {
            return Err(invalid("gpus.ids", "must list at least one GPU, or be \"auto\""));
        }
        Ok(())
    }

    /// The scheme browsers reach this deployment with: https exactly when
    /// the cookie is `Secure`.
    pub fn scheme(&self) -> &'static str {
        if self.cookie_secure { "https" } else { "http" }
    }

    /// Whether the UI is on `localhost` or a name under it: browsers reach
    /// it on this machine only, whatever DNS says.
    pub fn is_localhost(&self) -> bool {
        self.base_domain == "localhost" || self.base_domain.ends_with(".localhost")
    }

    /// Whether the built-in router serves HTTPS itself (`[tls]`).
    pub fn serves_tls(&self) -> bool {
        self.tls.cert_file.is_some() && self.tls.key_file.is_some()
    }

    /// The domain session hosts are under: `sessions_domain`, or the base domain.
    pub fn sessions_domain(&self) -> &str {
        self.sessions_domain.as_deref().unwrap_or(&self.base_domain)
    }

    /// Whether `host` is one of the UI's own hosts (the base domain and its
    /// `api.`, `external.` and `internal.` names): the only origins whose
    /// pages the control plane trusts. Never a session host.
    pub fn is_ui_host(&self, host: &medforge_core::host::Host) -> bool {
        let base = self.base_domain.as_str();
        host.name() == base || ["api", "external", "internal"].iter().any(|p| host.name() == format!("{p}.{base}"))
    }

    /// Where browsers open the web UI: the built-in router on the port
    /// `serve` listens on (no port when it is the scheme's own), or behind
    /// Caddy on the default HTTPS port.
    pub fn ui_url(&self, listen_port: u16) -> String {
        let scheme = self.scheme();
        let tls = self.serves_tls();
        match self.routing {
            Routing::Caddy => format!("{scheme}://{}", self.base_domain),
            Routing::Builtin if (listen_port == 80 && !self.cookie_secure) || (listen_port == 443 && tls) => {
                format!("{scheme}://{}", self.base_domain)
            }
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
