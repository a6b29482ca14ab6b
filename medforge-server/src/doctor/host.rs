//! The checks of the host around the sessions: workspace storage, the
//! firewall, DNS, cookies and TLS, the secret, and Caddy.

use std::path::Path;
use std::time::Duration;

use medforge_storage_zfs::{ZfsConfig, ZfsStorage};

use super::engine::writable_dir_or_ancestor;
use super::finding::Finding;
use crate::config::{Config, FirewallKind, Routing, StorageKind};
use crate::stack;

/// Caddy releases before this misroute `forward_auth` gate checks under
/// load (docs/testing.md, Caddy).
pub const MIN_CADDY: (u32, u32) = (2, 11);

pub(super) async fn storage(config: &Config) -> Finding {
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

pub(super) async fn firewall(config: &Config, auto: Option<&stack::FirewallChoice>) -> Finding {
    const AREA: &str = "firewall";
    let local = config.is_localhost();
    let how = match auto {
        Some(choice) => format!("firewall.kind = \"auto\" chose {:?}: {}", choice.kind, choice.why),
        None => format!("firewall.kind = {:?}", config.firewall.kind),
    };
    if config.firewall.kind == FirewallKind::None {
        let detail = format!("{how}; sessions can reach each other and the host's services");
        let fix = match auto {
            Some(_) => "run MedForge as root on a host with nftables (`apt-get install nftables`) or iptables",
            None => {
                "set firewall.kind = \"auto\" (or \"nftables\", \"iptables\"); `medforge serve` applies the rules and keeps them"
            }
        };
        // Off this machine, "auto" finding nothing is a failure: the
        // admin did not choose to go without isolation.
        return if auto.is_some() && !local {
            Finding::fail(AREA, detail, fix)
        } else {
            Finding::warn(AREA, detail, fix)
        };
    }
    let runtime = match stack::connect_runtime(config).await {
        Ok(runtime) => runtime,
        Err(e) => return Finding::fail(AREA, stack::one_line(&e), "see the runtime finding"),
    };
    let policy = match crate::service::isolation::policy(config, runtime.as_ref()).await {
        Ok(policy) => policy,
        Err(e) => return Finding::fail(AREA, e.to_string(), "see the runtime finding"),
    };
    let bridges: Vec<&str> = policy.networks.iter().map(|n| n.bridge.as_str()).collect();
    let bridges = bridges.join(", ");
    let wanted = medforge_core::firewall::isolation_rules(&policy).len();
    match stack::firewall(config).check(&policy).await {
        Ok(report) if report.is_ok() => Finding::ok(AREA, format!("{how}; isolation rules in place for {bridges}")),
        Ok(report) if !report.unmet.is_empty() => Finding::fail(
            AREA,
            format!("{how}; the rules cannot hold: {}", report.unmet.join("; ")),
            "`medforge firewall apply` turns bridge netfilter on (serve does at start); a network with IPv6: \
             `docker network rm` it, MedForge makes it again without",
        ),
        // Nothing of ours yet: what a host looks like before the first
        // `serve`, which applies them.
        Ok(report) if report.foreign.is_empty() && report.missing.len() >= wanted => Finding::warn(
            AREA,
            format!("{how}; no isolation rules on {bridges} yet"),
            "`medforge serve` applies them at start (or `medforge firewall apply` now)",
        ),
        Ok(report) => Finding::fail(
            AREA,
            format!(
                "{how}; isolation rules not as configured on {bridges}: {} missing, {} foreign",
                report.missing.len(),
                report.foreign.len()
            ),
            "`medforge firewall apply` (serve applies them at start and every firewall.check_interval)",
        ),
        Err(e) => Finding::fail(
            AREA,
            format!("{how}; {e}"),
            "run as root with nftables (or iptables) installed: `apt-get install nftables`",
        ),
    }
}

pub(super) async fn domain(config: &Config) -> Finding {
    const AREA: &str = "domain";
    let base = &config.base_domain;
    if config.is_localhost() {
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

pub(super) fn cookies(config: &Config) -> Finding {
    const AREA: &str = "cookies/TLS";
    let local = config.is_localhost();
    if let Some(files) = config.tls.files() {
        return builtin_tls(config, &files);
    }
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
            "set [tls] cert_file and key_file, or put Caddy in front (routing = \"caddy\"), or set cookie_secure = false on a laptop",
        ),
        (Routing::Builtin, false) if local => {
            Finding::ok(AREA, "plain HTTP on this machine only (*.localhost); fine for a laptop or a trial")
        }
        (Routing::Builtin, false) => Finding::warn(
            AREA,
            format!("passwords and session cookies cross the network unencrypted to {}", config.base_domain),
            "set [tls] cert_file and key_file (a wildcard certificate), or put Caddy in front (routing = \"caddy\")",
        ),
    }
}

/// `[tls]`: the pair loads, and its certificate is good for every host a
/// browser will ask for (a session host under each zone, the UI's).
fn builtin_tls(config: &Config, files: &crate::http::tls::Files) -> Finding {
    const AREA: &str = "cookies/TLS";
    let key = match crate::http::tls::load(files) {
        Ok(key) => key,
        Err(e) => {
            return Finding::fail(AREA, e.to_string(), "point tls.cert_file and tls.key_file at a matching PEM pair");
        }
    };
    let sessions = config.sessions_domain();
    let names =
        [config.base_domain.clone(), format!("s-probe.external.{sessions}"), format!("s-probe.internal.{sessions}")];
    let missing: Vec<String> =
        names.iter().filter_map(|n| crate::http::tls::check_name(&key, n).err()).map(|e| e.to_string()).collect();
    if !missing.is_empty() {
        return Finding::fail(
            AREA,
            missing.join("; "),
            format!("get a certificate for {}, *.external.{sessions} and *.internal.{sessions}", config.base_domain),
        );
    }
    Finding::ok(
        AREA,
        format!(
            "HTTPS by the built-in router with {} (for {}, *.external.{sessions}, *.internal.{sessions}); cookies are Secure",
            files.cert.display(),
            config.base_domain
        ),
    )
}

pub(super) fn secret(config: &Config) -> Finding {
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

pub(super) async fn caddy(command: &str) -> Finding {
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
