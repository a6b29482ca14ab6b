//! `medforge doctor`: checks what a deployment needs, one finding per
//! area, each failure or warning with the fix. Failures are what stops
//! sessions from working (the command exits non-zero); warnings are what
//! works but should not stay so in production.
//!
//! Doctor reads and asks; the only things it may change are the ones
//! `serve` would make on start anyway (pending migrations of an existing
//! database, the sessions networks for the firewall check).

mod engine;
mod finding;
mod host;

pub use finding::{Finding, Outcome};
pub use host::{MIN_CADDY, parse_caddy_version};

use crate::config::{Config, FirewallKind, GpuModeSetting, Routing};
use engine::{database, gpus, nvidia_runtime, pack, runtime, telemetry};
use host::{caddy, cookies, domain, firewall, secret, storage};

/// What the command line adds to the config.
#[derive(Debug)]
pub struct Options {
    /// The command that runs Caddy (split on spaces, so `docker exec caddy
    /// caddy` works for a Caddy in a container); `version` is appended.
    pub caddy: String,
}

/// Every check, in the order an admin would fix things.
pub async fn examine(config: &Config, options: &Options) -> Vec<Finding> {
    // As `serve` will: "auto" made concrete, and said how.
    let mut config = config.clone();
    let choice = crate::stack::resolve_firewall(&mut config).await;
    let config = &config;
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
    let opened = crate::stack::open_telemetry(config);
    let discovered = match &opened {
        Ok(t) => crate::stack::discover_gpus(t.as_ref()).await,
        Err(e) => Err(crate::stack::one_line(e)),
    };
    findings.push(telemetry(config, &opened, &discovered));
    findings.push(gpus(config, &discovered, wants_devices));
    findings.push(storage(config).await);
    findings.push(if engine.is_none() && config.firewall.kind != FirewallKind::None {
        Finding::skip("firewall", "the container runtime is unreachable")
    } else {
        firewall(config, choice.as_ref()).await
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
