//! `medforge doctor`: checks what a deployment needs, one finding per
//! area, each failure or warning with the fix. Failures are what stops
//! sessions from working (the command exits non-zero); warnings are what
//! works but should not stay so in production.
//!
//! Doctor reads and asks; the only things it may change are the ones
//! `serve` would make on start anyway (pending migrations of an existing
//! database, the sessions networks for the firewall check).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use medforge_storage_zfs::{ZfsConfig, ZfsStorage};

use crate::config::{AutoKeyword, Config, FirewallKind, GpuIds, GpuModeSetting, Routing, RuntimeKind, StorageKind};
use crate::stack;

/// Caddy releases before this misroute `forward_auth` gate checks under
/// load (docs/testing.md, Caddy).
pub const MIN_CADDY: (u32, u32) = (2, 11);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Warn,
    Fail,
    /// Not checked because something it depends on failed.
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Warn => "warn",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        })
    }
}

/// One area's result.
#[derive(Debug)]
pub struct Finding {
    pub area: &'static str,
    pub outcome: Outcome,
    pub detail: String,
    pub fix: Option<String>,
}

impl Finding {
    fn ok(area: &'static str, detail: impl Into<String>) -> Self {
        Self { area, outcome: Outcome::Ok, detail: detail.into(), fix: None }
    }
    fn warn(area: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { area, outcome: Outcome::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn fail(area: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { area, outcome: Outcome::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn skip(area: &'static str, because: &str) -> Self {
        Self { area, outcome: Outcome::Skip, detail: format!("not checked: {because}"), fix: None }
    }
}

/// What the command line adds to the config.
#[derive(Debug)]
pub struct Options {
    /// The command that runs Caddy (split on spaces, so `docker exec caddy
    /// caddy` works for a Caddy in a container); `version` is appended.
    pub caddy: String,
}

/// Every check, in the order an admin would fix things.
pub async fn examine(config: &Config, options: &Options) -> Vec<Finding> {
    let mut findings = vec![database(config).await];
    let runtime = runtime(config).await;
    let engine = (runtime.outcome == Outcome::Ok).then(|| runtime.detail.clone());
    findings.push(runtime);
    // Whether sessions will ask for GPU devices: "auto" asks only where
    // the engine has NVIDIA support.
    let mut wants_devices = config.runtime.gpu_mode == GpuModeSetting::Nvidia;
    match &engine {
        Some(engine) => {
            findings.push(pack(config, engine).await);
            let (finding, support) = nvidia_runtime(config).await;
            wants_devices |= config.runtime.gpu_mode == GpuModeSetting::Auto && support;
            findings.push(finding);
        }
        None => {
            findings.push(Finding::skip("pack image", "the container runtime is unreachable"));
            findings.push(Finding::skip("nvidia", "the container runtime is unreachable"));
        }
    }
    findings.push(gpus(config, wants_devices));
    findings.push(storage(config).await);
    findings.push(if engine.is_none() && config.firewall.kind != FirewallKind::None {
        Finding::skip("firewall", "the container runtime is unreachable")
    } else {
        firewall(config).await
    });
    findings.push(domain(config).await);
    findings.push(cookies(config));
    findings.push(secret(config));
    if config.routing == Routing::Caddy {
        findings.push(caddy(&options.caddy).await);
    }
    findings
}

/// The report as printed: one line per finding, the fix indented below.
pub fn render(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.area.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in findings {
        // Tools' messages (zfs's stderr, say) may span lines: one line each.
        let detail = f.detail.trim().lines().map(str::trim).collect::<Vec<_>>().join(" / ");
        out.push_str(&format!("{:<4}  {:<width$}  {detail}\n", f.outcome.to_string(), f.area));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("{:<4}  {:<width$}  fix: {fix}\n", "", ""));
        }
    }
    let count = |o| findings.iter().filter(|f| f.outcome == o).count();
    out.push_str(&format!(
        "{} ok, {} warnings, {} failed, {} not checked\n",
        count(Outcome::Ok),
        count(Outcome::Warn),
        count(Outcome::Fail),
        count(Outcome::Skip)
    ));
    out
}

async fn database(config: &Config) -> Finding {
    const AREA: &str = "database";
    let url = config.database_url();
    let shown = crate::config::mask_url_password(&url);
    if let Some(file) = crate::config::sqlite_file(&url)
        && !file.exists()
    {
        let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        return match writable_dir_or_ancestor(dir) {
            Ok(()) => Finding::ok(AREA, format!("{shown}: not created yet; `medforge serve` creates it")),
            Err(e) => Finding::fail(
                AREA,
                format!("{shown}: cannot be created ({e})"),
                "make data_dir writable by the user that runs medforge, or point database_url elsewhere",
            ),
        };
    }
    let store = match stack::open_store(config).await {
        Ok(store) => store,
        Err(e) => {
            let fix = if url.starts_with("mysql:") {
                "check that MariaDB runs (`systemctl status mariadb`) and that database_url's host, user, password \
                 and database are right (`CREATE DATABASE medforge; GRANT ALL ON medforge.* TO ...`)"
            } else {
                "the SQLite file must be readable and writable by the user that runs medforge"
            };
            return Finding::fail(AREA, stack::one_line(&e), fix);
        }
    };
    match store.count_users().await {
        Ok(users) => Finding::ok(AREA, format!("{shown}: reachable, schema up to date, {users} users")),
        Err(e) => Finding::fail(AREA, format!("{shown}: {e}"), "see the database's own log"),
    }
}

/// `dir`, or the nearest ancestor that exists, must be writable by us.
fn writable_dir_or_ancestor(dir: &Path) -> Result<(), String> {
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(Path::new("."));
    let probe = existing.join(format!(".medforge-doctor-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("{} is not writable: {e}", existing.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// On success the detail names the engine (later findings quote it).
async fn runtime(config: &Config) -> Finding {
    const AREA: &str = "runtime";
    let found = match config.runtime.kind {
        RuntimeKind::Docker => match stack::connect_docker(config).await {
            Ok(docker) => {
                let socket = Some(config.runtime.socket.as_str())
                    .filter(|s| !s.is_empty())
                    .unwrap_or(medforge_runtime_docker::DEFAULT_SOCKET);
                docker.version().await.map(|v| format!("{v} at {socket}")).map_err(|e| e.to_string())
            }
            Err(e) => Err(stack::one_line(&e)),
        },
        RuntimeKind::Podman => match stack::connect_podman(config).await {
            Ok(podman) => podman
                .version()
                .await
                .map(|v| format!("Podman {v} at {}", podman.socket().display()))
                .map_err(|e| e.to_string()),
            Err(e) => Err(stack::one_line(&e)),
        },
    };
    match (found, config.runtime.kind) {
        (Ok(version), _) => Finding::ok(AREA, version),
        (Err(e), RuntimeKind::Docker) => Finding::fail(
            AREA,
            e,
            "install and start the engine (`apt-get install docker.io && systemctl enable --now docker`), \
             or set runtime.socket to where it listens",
        ),
        (Err(e), RuntimeKind::Podman) => Finding::fail(
            AREA,
            e,
            "`apt-get install podman && systemctl enable --now podman.socket`, or set runtime.socket",
        ),
    }
}

async fn pack(config: &Config, engine: &str) -> Finding {
    const AREA: &str = "pack image";
    let image = &config.pack.image;
    match stack::image_present(config, image).await {
        Ok(true) => Finding::ok(AREA, format!("{image} is on the engine")),
        Ok(false) => Finding::fail(
            AREA,
            format!("{image} is not on {engine}; sessions cannot start (MedForge never pulls)"),
            match config.runtime.kind {
                RuntimeKind::Docker => format!(
                    "build it: scripts/run.sh does, or `docker build -t {image} infra/packs/default` \
                     (or `docker load` one built elsewhere)"
                ),
                RuntimeKind::Podman => {
                    format!(
                        "build it: `podman build -t {image} infra/packs/default` (or `docker save ... | podman load`)"
                    )
                }
            },
        ),
        Err(e) => Finding::fail(AREA, stack::one_line(&e), "see the runtime finding"),
    }
}

const NVIDIA_FIX_DOCKER: &str = "install the NVIDIA driver and Container Toolkit, then \
    `nvidia-ctk runtime configure --runtime=docker && systemctl restart docker`";
const NVIDIA_FIX_PODMAN: &str = "install the NVIDIA driver and Container Toolkit, then \
    `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`";

/// The finding, and whether the engine has NVIDIA support.
async fn nvidia_runtime(config: &Config) -> (Finding, bool) {
    const AREA: &str = "nvidia";
    let fix = match config.runtime.kind {
        RuntimeKind::Docker => NVIDIA_FIX_DOCKER,
        RuntimeKind::Podman => NVIDIA_FIX_PODMAN,
    };
    let support = match stack::nvidia_support(config).await {
        Ok(support) => support,
        Err(e) => return (Finding::fail(AREA, stack::one_line(&e), "see the runtime finding"), false),
    };
    let found = support.is_some();
    let finding = match (config.runtime.gpu_mode, support) {
        (GpuModeSetting::None, _) => Finding::ok(AREA, "runtime.gpu_mode = \"none\": sessions get no GPU"),
        (_, Some(how)) => Finding::ok(AREA, format!("GPUs reach containers through {how}")),
        (GpuModeSetting::Auto, None) => Finding::warn(
            AREA,
            "no NVIDIA container support: sessions start without a GPU (runtime.gpu_mode = \"auto\" falls back to \"none\")",
            format!("{fix}; or set runtime.gpu_mode = \"none\" on a host without GPUs"),
        ),
        (GpuModeSetting::Nvidia, None) => Finding::fail(
            AREA,
            "runtime.gpu_mode = \"nvidia\" but the engine has no NVIDIA container support: every session start fails",
            format!("{fix}; or set runtime.gpu_mode = \"none\""),
        ),
    };
    (finding, found)
}

/// What `nvidia-smi` lists, against `gpus.ids` (which must name real
/// GPUs when sessions ask for devices).
fn gpus(config: &Config, wants_devices: bool) -> Finding {
    const AREA: &str = "gpus";
    let listed = crate::config::discover_gpus();
    let fallback;
    let ids = match (&config.gpus.ids, &listed) {
        (GpuIds::Auto(AutoKeyword::Detect), Ok(ids)) => {
            return Finding::ok(AREA, format!("gpus.ids = \"detect\": nvidia-smi lists {}", join(ids)));
        }
        // No nvidia-smi: the fallback slots, checked as a list would be.
        (GpuIds::Auto(AutoKeyword::Detect), Err(_)) => {
            fallback = GpuIds::List(GpuIds::fallback_slots().iter().map(|g| g.0).collect());
            &fallback
        }
        (ids, _) => ids,
    };
    match (ids, listed) {
        (GpuIds::Auto(_), Ok(ids)) => {
            Finding::ok(AREA, format!("gpus.ids = \"auto\": nvidia-smi lists {}", join(&ids)))
        }
        (GpuIds::Auto(_), Err(e)) => Finding::fail(
            AREA,
            format!("gpus.ids = \"auto\" but {e}; `medforge serve` cannot start"),
            "install the NVIDIA driver (nvidia-smi), or list the GPU slots: gpus.ids = [0, 1, ...]",
        ),
        (GpuIds::List(ids), Ok(listed)) => {
            let unknown: Vec<u32> = ids.iter().copied().filter(|i| !listed.iter().any(|l| l.0 == *i)).collect();
            if unknown.is_empty() || !wants_devices {
                Finding::ok(AREA, format!("gpus.ids = {ids:?}; nvidia-smi lists {}", join(&listed)))
            } else {
                Finding::fail(
                    AREA,
                    format!("gpus.ids lists {unknown:?}, which nvidia-smi does not show ({})", join(&listed)),
                    "make gpus.ids match `nvidia-smi -L` (or use \"auto\")",
                )
            }
        }
        (GpuIds::List(ids), Err(e)) if wants_devices => Finding::fail(
            AREA,
            format!("sessions ask for GPUs {ids:?}, but nvidia-smi does not run here ({e})"),
            "install the NVIDIA driver, or set runtime.gpu_mode = \"none\" on a host without GPUs",
        ),
        (GpuIds::List(ids), Err(_)) => {
            Finding::ok(AREA, format!("{} GPU slots {ids:?}, sessions get no device (no nvidia-smi here)", ids.len()))
        }
    }
}

fn join(ids: &[medforge_core::model::GpuId]) -> String {
    ids.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", ")
}

async fn storage(config: &Config) -> Finding {
    const AREA: &str = "storage";
    match config.storage.kind {
        StorageKind::Dir => {
            let root = config.storage_root();
            match writable_dir_or_ancestor(Path::new(&root)) {
                Ok(()) => Finding::warn(
                    AREA,
                    format!("plain directories under {root}: no quotas, snapshots are full copies"),
                    "for production, storage.kind = \"zfs\" with a root dataset made by infra/zfs/setup.sh",
                ),
                Err(e) => Finding::fail(AREA, e, "create storage.root and make it writable by the server's user"),
            }
        }
        StorageKind::Zfs => {
            let root = match config.zfs_root() {
                Ok(root) => root,
                Err(e) => return Finding::fail(AREA, e.to_string(), "storage.root must be a dataset name"),
            };
            let mut zfs = ZfsConfig::new(root.clone());
            zfs.zfs_command = config.storage.zfs_command.clone();
            match ZfsStorage::connect(zfs).await {
                Ok(_) => Finding::ok(AREA, format!("ZFS dataset {root} exists and is mounted")),
                Err(e) => Finding::fail(
                    AREA,
                    e.to_string(),
                    format!("`infra/zfs/setup.sh` makes the root dataset (docs/operations.md); root = {root}"),
                ),
            }
        }
    }
}

async fn firewall(config: &Config) -> Finding {
    const AREA: &str = "firewall";
    if config.firewall.kind == FirewallKind::None {
        return Finding::warn(
            AREA,
            "firewall.kind = \"none\": sessions can reach each other and the host's services",
            "set firewall.kind = \"nftables\" (or \"iptables\"); `medforge serve` applies the rules and keeps them",
        );
    }
    let runtime = match stack::connect_runtime(config).await {
        Ok(runtime) => runtime,
        Err(e) => return Finding::fail(AREA, stack::one_line(&e), "see the runtime finding"),
    };
    let policy = match stack::isolation_policy(config, runtime.as_ref()).await {
        Ok(policy) => policy,
        Err(e) => return Finding::fail(AREA, stack::one_line(&e), "see the runtime finding"),
    };
    let bridges: Vec<&str> = policy.networks.iter().map(|n| n.bridge.as_str()).collect();
    match stack::firewall(config).check(&policy).await {
        Ok(report) if report.is_ok() => {
            Finding::ok(AREA, format!("{:?} isolation rules in place for {}", config.firewall.kind, bridges.join(", ")))
        }
        Ok(report) => Finding::fail(
            AREA,
            format!(
                "isolation rules not as configured on {}: {} missing, {} foreign",
                bridges.join(", "),
                report.missing.len(),
                report.foreign.len()
            ),
            "`medforge firewall apply` (serve applies them at start and every firewall.check_interval_secs)",
        ),
        Err(e) => Finding::fail(
            AREA,
            e.to_string(),
            "run as root with nftables (or iptables) installed: `apt-get install nftables`",
        ),
    }
}

async fn domain(config: &Config) -> Finding {
    const AREA: &str = "domain";
    let base = &config.base_domain;
    if base == "localhost" || base.ends_with(".localhost") {
        return Finding::ok(
            AREA,
            format!("{base} and its subdomains: browsers resolve *.localhost to this machine themselves"),
        );
    }
    let names = [base.clone(), format!("s-doctor.external.{base}"), format!("s-doctor.internal.{base}")];
    let mut answers = Vec::new();
    for name in &names {
        let lookup = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((name.as_str(), 443))).await;
        match lookup {
            Ok(Ok(addrs)) => {
                let mut ips: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
                ips.dedup();
                answers.push(format!("{name} -> {}", ips.join(" ")));
            }
            Ok(Err(e)) => {
                return Finding::fail(
                    AREA,
                    format!("{name} does not resolve ({e})"),
                    format!("add DNS records for {base} and *.{base} (A/AAAA) pointing at this server"),
                );
            }
            Err(_) => {
                return Finding::fail(
                    AREA,
                    format!("resolving {name} took more than 5 s"),
                    "check /etc/resolv.conf and the DNS server",
                );
            }
        }
    }
    Finding::ok(AREA, format!("{} (the wildcard resolves)", answers.join("; ")))
}

fn cookies(config: &Config) -> Finding {
    const AREA: &str = "cookies/TLS";
    let local = config.base_domain == "localhost" || config.base_domain.ends_with(".localhost");
    match (config.routing, config.cookie_secure) {
        (Routing::Caddy, true) => {
            Finding::ok(AREA, "Caddy terminates TLS; cookies are Secure, HttpOnly, SameSite=Lax on the base domain")
        }
        (Routing::Caddy, false) => Finding::warn(
            AREA,
            "routing = \"caddy\" serves HTTPS, but cookie_secure = false lets browsers send the sign-in cookie over plain HTTP",
            "set cookie_secure = true",
        ),
        (Routing::Builtin, true) => Finding::warn(
            AREA,
            "cookie_secure = true, but the built-in router serves plain HTTP: browsers drop Secure cookies unless TLS is in front",
            "put a TLS proxy in front (routing = \"caddy\", infra/caddy), or set cookie_secure = false on a laptop",
        ),
        (Routing::Builtin, false) if local => {
            Finding::ok(AREA, "plain HTTP on this machine only (*.localhost); fine for a laptop or a trial")
        }
        (Routing::Builtin, false) => Finding::warn(
            AREA,
            format!("passwords and session cookies cross the network unencrypted to {}", config.base_domain),
            "use routing = \"caddy\" with wildcard TLS (infra/caddy/Caddyfile) and cookie_secure = true",
        ),
    }
}

fn secret(config: &Config) -> Finding {
    const AREA: &str = "secret";
    if config.secret.is_some() {
        return match stack::token_key(config) {
            Ok(_) => Finding::ok(AREA, "from the configuration (secret or MEDFORGE_SECRET)"),
            Err(e) => {
                Finding::fail(AREA, stack::one_line(&e), "use 32 or more random bytes: `openssl rand -base64 48`")
            }
        };
    }
    let file = config.secret_file();
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(&file) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Finding::fail(
            AREA,
            format!("{} is readable by other users (mode {:o})", file.display(), m.permissions().mode() & 0o777),
            format!("chmod 600 {}", file.display()),
        ),
        Ok(_) => Finding::ok(AREA, format!("{} (mode 600)", file.display())),
        Err(_) => Finding::ok(AREA, format!("{} is created on first start (mode 600)", file.display())),
    }
}

/// `v2.11.7 h1:...` -> (2, 11, 7); pre-release suffixes are ignored.
pub fn parse_caddy_version(text: &str) -> Option<(u32, u32, u32)> {
    let word =
        text.split_whitespace().find(|w| w.starts_with('v') && w[1..].starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = word[1..].split(['.', '-', '+']).map(|p| p.parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = parts.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

async fn caddy(command: &str) -> Finding {
    const AREA: &str = "caddy";
    let fix = "install Caddy 2.11 or newer (infra/compose pins it; xcaddy build v2.11.7 with your DNS module), \
               or point --caddy at it";
    let mut words = command.split_whitespace();
    let Some(program) = words.next() else { return Finding::fail(AREA, "--caddy is empty", fix) };
    let run = tokio::process::Command::new(program).args(words).arg("version").output();
    let out = match tokio::time::timeout(Duration::from_secs(20), run).await {
        Ok(Ok(out)) if out.status.success() => out,
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Finding::fail(AREA, format!("`{command} version` failed: {}", stderr.trim()), fix);
        }
        Ok(Err(e)) => return Finding::fail(AREA, format!("cannot run `{command} version`: {e}"), fix),
        Err(_) => return Finding::fail(AREA, format!("`{command} version` did not answer in 20 s"), fix),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    match parse_caddy_version(&text) {
        Some((major, minor, patch)) if (major, minor) >= MIN_CADDY => {
            Finding::ok(AREA, format!("Caddy {major}.{minor}.{patch} (2.11 or newer: forward_auth is safe)"))
        }
        Some((major, minor, patch)) => Finding::fail(
            AREA,
            format!(
                "Caddy {major}.{minor}.{patch} is older than 2.11: its forward_auth can send gate checks to a \
                 session's container under load, letting one user's container answer for others"
            ),
            fix,
        ),
        None => Finding::fail(AREA, format!("cannot read a version from `{}`", text.trim()), fix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caddy_versions_parse_and_compare() {
        assert_eq!(parse_caddy_version("v2.11.7 h1:abc=\n"), Some((2, 11, 7)));
        assert_eq!(parse_caddy_version("v2.6.2 h1:x"), Some((2, 6, 2)));
        assert_eq!(parse_caddy_version("v2.12.0-beta.1 h1:x"), Some((2, 12, 0)));
        assert_eq!(parse_caddy_version("caddy: command not found"), None);
        assert!((2, 6) < MIN_CADDY && (2, 11) >= MIN_CADDY && (3, 0) >= MIN_CADDY);
    }

    #[test]
    fn the_report_gives_each_finding_a_line_and_each_fix_its_own() {
        let text = render(&[
            Finding::ok("database", "fine"),
            Finding::fail("pack image", "missing", "build it"),
            Finding::skip("nvidia", "runtime down"),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ok    database    fine");
        assert_eq!(lines[1], "FAIL  pack image  missing");
        assert_eq!(lines[2], "                  fix: build it");
        assert_eq!(lines[3], "skip  nvidia      not checked: runtime down");
        assert_eq!(lines[4], "1 ok, 0 warnings, 1 failed, 1 not checked");
    }
}
