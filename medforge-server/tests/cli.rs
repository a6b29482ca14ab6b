//! The `medforge` command line: config check, migrate, user add.

mod common;

use std::process::{Command, Output};

fn medforge(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::binary());
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run medforge")
}

/// `dir/medforge.toml` (read by every command run in `dir`) with the
/// runtime keys that keep this test's serve off other deployments'
/// containers and networks; returns the run's name.
fn own_config(dir: &std::path::Path) -> String {
    let run = medforge_core::model::Slug::generate().to_string();
    std::fs::write(dir.join("medforge.toml"), format!("[runtime]\n{}", common::own_runtime_keys(&run)))
        .expect("config");
    run
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = std::env::var("MEDFORGE_TEST_PACK_IMAGE").expect("MEDFORGE_TEST_PACK_IMAGE: run scripts/test.sh");
    std::fs::write(
        dir.path().join("medforge.toml"),
        format!(
            "base_domain = \"lab.example.org\"\ndatabase_url = \"mysql://mf:topsecretpw@db:3306/medforge\"\n\
             [pack]\nimage = \"{image}\"\n"
        ),
    )
    .expect("config");
    let secret = "x".repeat(48);
    let out = medforge(
        dir.path(),
        &["config", "check"],
        &[
            ("MEDFORGE_SECRET", secret.as_str()),
            ("MEDFORGE_RUNTIME__GPU_MODE", "none"),
            // Not a setting: the test scripts' variables must not trip the unknown-key check.
            ("MEDFORGE_TEST_SOMETHING", "1"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("base_domain = \"lab.example.org\""), "the file is read: {shown}");
    assert!(shown.contains("gpu_mode = \"none\""), "the environment overrides, with __ for nesting: {shown}");
    assert!(shown.contains("mysql://mf:********@db:3306/medforge"), "{shown}");
    assert!(!shown.contains("topsecretpw") && !shown.contains(&secret), "secrets leaked: {shown}");
}

#[test]
fn a_bad_config_is_a_one_line_error_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (toml, expect) in [
        ("base_dommain = \"x\"\n", "base_dommain"),
        ("[runtime]\ngpu_mode = \"cuda\"\n", "gpu_mode"),
        ("database_url = \"postgres://x/y\"\n", "database_url"),
        ("[pack]\nimage = \"has space\"\n", "pack.image"),
        // Well-formed, but not on the engine (which scripts/test.sh runs).
        ("[pack]\nimage = \"medforge-no-such-image:never\"\n", "not present on the container engine"),
    ] {
        std::fs::write(dir.path().join("medforge.toml"), toml).expect("config");
        let out = medforge(dir.path(), &["config", "check"], &[]);
        assert!(!out.status.success(), "{toml:?} accepted");
        let err = text(&out.stderr);
        assert!(err.starts_with("medforge: invalid configuration:"), "{err}");
        assert!(err.contains(expect), "{toml:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    let out = medforge(dir.path(), &["--config", "/nonexistent.toml", "config", "check"], &[]);
    assert!(!out.status.success());
}

#[test]
fn migrate_and_user_add_work_on_a_fresh_data_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("fresh-data");
    let env = [("MEDFORGE_DATA_DIR", data.to_str().expect("path"))];
    let out = medforge(dir.path(), &["migrate"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(data.join("medforge.db").exists());

    let mut add = Command::new(common::binary())
        .current_dir(dir.path())
        .args(["user", "add", "--email", "Admin@Example.org", "--admin"])
        .env("MEDFORGE_DATA_DIR", &data)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("user add");
    std::io::Write::write_all(&mut add.stdin.take().expect("stdin"), b"short\n").expect("stdin");
    let out = add.wait_with_output().expect("wait");
    assert!(!out.status.success(), "a short password is refused");
    assert!(text(&out.stderr).contains("password"), "{}", text(&out.stderr));
}

/// `medforge gpu`: the table follows gpus.ids; a disabled GPU says so
/// until enabled again; an unknown one is an error.
#[test]
fn gpu_list_disable_and_enable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = own_config(dir.path());
    let env = [("MEDFORGE_GPUS__IDS", "[0, 1, 2]")];
    // The GPU table is seeded by serve's start-up; migrate leaves it empty.
    let out = medforge(dir.path(), &["gpu", "list"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut serve = std::process::Command::new(common::binary())
        .current_dir(dir.path())
        .args(["serve"])
        .envs(env)
        .env("MEDFORGE_LISTEN", "127.0.0.1:0")
        .env("MEDFORGE_METRICS_LISTEN", "127.0.0.1:0")
        .env("MEDFORGE_RUNTIME__GPU_MODE", "none")
        // Not about isolation: "auto" would write this host's ruleset.
        .env("MEDFORGE_FIREWALL__KIND", "none")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let mut err = std::io::BufReader::new(serve.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut err, &mut line).expect("read") > 0, "serve exited");
    }
    serve.kill().expect("kill");
    let _ = serve.wait();

    let list = |env: &[(&str, &str)]| text(&medforge(dir.path(), &["gpu", "list"], env).stdout);
    let rows = list(&env);
    assert_eq!(rows.lines().filter(|l| l.contains(" enabled ")).count(), 3, "{rows}");
    let out = medforge(dir.path(), &["gpu", "disable", "1"], &env);
    assert!(out.status.success() && text(&out.stderr).contains("GPU 1 disabled"), "{}", text(&out.stderr));
    let rows = list(&env);
    assert!(rows.lines().any(|l| l.starts_with("1 ") && l.contains("disabled")), "{rows}");
    let out = medforge(dir.path(), &["gpu", "enable", "1"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(list(&env).lines().filter(|l| l.contains(" enabled ")).count(), 3);
    let out = medforge(dir.path(), &["gpu", "disable", "9"], &env);
    assert!(!out.status.success());
    common::remove_own_networks("docker", &run);
    assert!(text(&out.stderr).contains("no GPU 9"), "{}", text(&out.stderr));
}

/// infra/systemd/medforge.service passes `systemd-analyze verify`, with its
/// binary path pointed at the one cargo built.
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/systemd/medforge.service"))
        .expect("unit file");
    assert!(unit.contains("ExecStart=/usr/local/bin/medforge --config /etc/medforge/medforge.toml serve"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("medforge.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/medforge", env!("CARGO_BIN_EXE_medforge"))).expect("write");
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", path.to_str().expect("path")])
        .output()
        .expect("systemd-analyze (scripts/test.sh installs systemd)");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// The finding line of `area` in doctor's report, e.g. `FAIL  pack image  ...`.
fn finding<'a>(report: &'a str, area: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(area)))
        .unwrap_or_else(|| panic!("no {area} finding in:\n{report}"))
}

/// The fix printed under `area`'s finding.
fn fix_of<'a>(report: &'a str, area: &str) -> &'a str {
    let line = finding(report, area);
    let after = report.split_once(line).map(|(_, rest)| rest).unwrap_or_default();
    after.lines().nth(1).filter(|l| l.trim_start().starts_with("fix: ")).unwrap_or_else(|| panic!("no fix for {area}"))
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("docker")
}

/// `medforge doctor` on this machine (which scripts/test.sh set up): ok for
/// what is there, and FAIL with a fix and a non-zero exit once something
/// required is taken away.
#[test]
fn doctor_reports_each_check_and_fails_once_something_required_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = own_config(dir.path());
    let pack = std::env::var("MEDFORGE_TEST_PACK_IMAGE").expect("MEDFORGE_TEST_PACK_IMAGE: run scripts/test.sh");
    // A tag of our own, so that removing it takes nothing from other tests.
    let tag = format!("medforge-doctor-pack:{}", std::process::id());
    assert!(docker(&["tag", &pack, &tag]).status.success());
    let doctor = |extra: &[(&str, &str)]| {
        let mut env = vec![("MEDFORGE_PACK__IMAGE", tag.as_str()), ("MEDFORGE_RUNTIME__GPU_MODE", "none")];
        env.extend_from_slice(extra);
        let out = medforge(dir.path(), &["doctor"], &env);
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };

    let (ok, report, err) = doctor(&[]);
    assert!(ok, "{report}{err}");
    for area in ["database", "runtime", "pack image", "nvidia", "gpus", "domain", "cookies/TLS", "secret"] {
        assert!(finding(&report, area).starts_with("ok "), "{area}: {report}");
    }
    assert!(finding(&report, "runtime").contains("Docker Engine"), "{report}");
    // The default firewall.kind = "auto" finds nftables here; before the
    // first `serve` there are no rules yet: a warning that says who adds them.
    let line = finding(&report, "firewall");
    assert!(line.starts_with("warn") && line.contains("\"auto\" chose Nftables"), "{report}");
    assert!(line.contains("no isolation rules on br-"), "{report}");
    assert!(fix_of(&report, "firewall").contains("`medforge serve` applies them at start"), "{report}");
    assert!(!report.contains("FAIL"), "{report}");

    // The pack image goes: sessions could not start.
    assert!(docker(&["rmi", &tag]).status.success());
    let (ok, report, err) = doctor(&[]);
    assert!(!ok, "a missing pack image must fail: {report}");
    assert!(finding(&report, "pack image").starts_with("FAIL"), "{report}");
    assert!(fix_of(&report, "pack image").contains("docker build -t"), "{report}");
    assert!(err.contains("1 required check(s) failed"), "{err}");

    // GPUs demanded on a host without NVIDIA container support: an engine
    // without the `nvidia` runtime (a stand-in) and no hook on PATH, so
    // that this holds on a GPU host too.
    let plain = common::StandInEngine::start(false);
    let no_hook = common::path_without("nvidia-container-runtime-hook");
    let without = [("MEDFORGE_RUNTIME__SOCKET", plain.socket()), ("PATH", no_hook.as_str())];
    let (ok, report, _) = doctor(&[without.as_slice(), &[("MEDFORGE_RUNTIME__GPU_MODE", "nvidia")]].concat());
    assert!(!ok);
    assert!(finding(&report, "runtime").contains("20.10.24-standin"), "the stand-in answered: {report}");
    assert!(finding(&report, "nvidia").starts_with("FAIL"), "{report}");
    assert!(fix_of(&report, "nvidia").contains("nvidia-ctk"), "{report}");
    // "auto" (the default) falls back: a warning, not a failure.
    let (_, report, _) = doctor(&[without.as_slice(), &[("MEDFORGE_RUNTIME__GPU_MODE", "auto")]].concat());
    assert!(finding(&report, "nvidia").starts_with("warn"), "{report}");
    // An engine with Docker's `nvidia` runtime: GPUs are passed.
    let gpu = common::StandInEngine::start(true);
    let with = [("MEDFORGE_RUNTIME__SOCKET", gpu.socket()), ("PATH", no_hook.as_str())];
    let (_, report, _) = doctor(&[with.as_slice(), &[("MEDFORGE_RUNTIME__GPU_MODE", "nvidia")]].concat());
    assert!(finding(&report, "nvidia").starts_with("ok ") && report.contains("\"nvidia\" runtime"), "{report}");

    // A ZFS root that is not there.
    let (ok, report, _) =
        doctor(&[("MEDFORGE_STORAGE__KIND", "zfs"), ("MEDFORGE_STORAGE__ROOT", "mfdoctornopool/workspaces")]);
    assert!(!ok);
    assert!(finding(&report, "storage").starts_with("FAIL"), "{report}");
    assert!(finding(&report, "storage").contains("mfdoctornopool"), "{report}");
    assert!(fix_of(&report, "storage").contains("infra/zfs/setup.sh"), "{report}");

    // No engine: the runtime fails and what needs it is not checked.
    let (ok, report, _) = doctor(&[("MEDFORGE_RUNTIME__SOCKET", "unix:///nonexistent/docker.sock")]);
    assert!(!ok);
    assert!(finding(&report, "runtime").starts_with("FAIL"), "{report}");
    assert!(finding(&report, "pack image").starts_with("skip"), "{report}");

    // A domain that does not resolve, and plain HTTP off this machine.
    let (ok, report, _) = doctor(&[("MEDFORGE_BASE_DOMAIN", "medforge.invalid")]);
    assert!(!ok);
    assert!(finding(&report, "domain").starts_with("FAIL"), "{report}");
    assert!(fix_of(&report, "domain").contains("*.medforge.invalid"), "{report}");
    assert!(finding(&report, "cookies/TLS").starts_with("warn"), "{report}");

    // A secret file others can read.
    let data = dir.path().join("medforge-data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("secret"), "s".repeat(64)).expect("secret");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data.join("secret"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (ok, report, _) = doctor(&[]);
    assert!(!ok);
    assert!(finding(&report, "secret").starts_with("FAIL"), "{report}");
    assert!(fix_of(&report, "secret").contains("chmod 600"), "{report}");
    common::remove_own_networks("docker", &run);
}

/// In Caddy mode doctor asks Caddy its version and refuses one older than
/// 2.11 (its forward_auth can misroute gate checks, docs/testing.md).
#[test]
fn doctor_requires_caddy_2_11_in_caddy_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Networks of its own: the firewall check ("auto") makes them.
    let run = own_config(dir.path());
    let caddy = std::env::var("MEDFORGE_TEST_CADDY").expect("MEDFORGE_TEST_CADDY: run scripts/test.sh");
    // Debian's 2.6.2 as it answers `caddy version` (installing the package
    // would start a Caddy on port 80).
    let old = dir.path().join("caddy-2.6.2");
    std::fs::write(&old, "#!/bin/sh\necho 'v2.6.2 h1:iGsM1rQDcBvzu1KI/WNgLtSb1I7cgvZbKs1WvnDNGuc='\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let env =
        [("MEDFORGE_ROUTING", "caddy"), ("MEDFORGE_COOKIE_SECURE", "true"), ("MEDFORGE_RUNTIME__GPU_MODE", "none")];

    let out = medforge(dir.path(), &["doctor", "--caddy", &caddy], &env);
    let report = text(&out.stdout);
    let line = finding(&report, "caddy");
    assert!(line.starts_with("ok ") && line.contains("Caddy 2.1"), "{report}");
    assert!(finding(&report, "cookies/TLS").starts_with("ok "), "{report}");

    let out = medforge(dir.path(), &["doctor", "--caddy", old.to_str().expect("path")], &env);
    let report = text(&out.stdout);
    assert!(!out.status.success(), "{report}");
    assert!(finding(&report, "caddy").starts_with("FAIL") && report.contains("2.6.2 is older than 2.11"), "{report}");
    assert!(fix_of(&report, "caddy").contains("Caddy 2.11 or newer"), "{report}");

    let out = medforge(dir.path(), &["doctor", "--caddy", "/nonexistent/caddy"], &env);
    assert!(!out.status.success());
    assert!(finding(&text(&out.stdout), "caddy").starts_with("FAIL"));
    common::remove_own_networks("docker", &run);
}

/// Doctor compares the isolation rules with the config: none yet (a
/// warning: `serve` applies them), in place after `medforge firewall
/// apply`, and a failure once some are gone.
#[test]
fn doctor_checks_the_isolation_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = own_config(dir.path());
    let pack = std::env::var("MEDFORGE_TEST_PACK_IMAGE").expect("MEDFORGE_TEST_PACK_IMAGE: run scripts/test.sh");
    let table = format!("mfdoctor_{}", std::process::id());
    let env = [
        ("MEDFORGE_PACK__IMAGE", pack.as_str()),
        ("MEDFORGE_RUNTIME__GPU_MODE", "none"),
        ("MEDFORGE_FIREWALL__KIND", "nftables"),
        ("MEDFORGE_FIREWALL__NFT_TABLE", table.as_str()),
    ];
    let out = medforge(dir.path(), &["doctor"], &env);
    let report = text(&out.stdout);
    assert!(finding(&report, "firewall").starts_with("warn") && report.contains("no isolation rules"), "{report}");
    assert!(fix_of(&report, "firewall").contains("medforge firewall apply"), "{report}");

    let out = medforge(dir.path(), &["firewall", "apply"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = medforge(dir.path(), &["doctor"], &env);
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(finding(&report, "firewall").starts_with("ok ") && report.contains("rules in place for br-"), "{report}");
    // The bridge table goes (a flush by hand): some rules are missing.
    let gone = Command::new("nft").args(["delete", "table", "bridge", &table]).status().expect("nft");
    assert!(gone.success());
    let out = medforge(dir.path(), &["doctor"], &env);
    let report = text(&out.stdout);
    let removed = medforge(dir.path(), &["firewall", "remove"], &env);
    assert!(!out.status.success(), "{report}");
    assert!(finding(&report, "firewall").starts_with("FAIL") && report.contains("missing"), "{report}");
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    common::remove_own_networks("docker", &run);
}

/// With `[tls]`, doctor loads the pair and checks that its certificate
/// covers the UI's host and both session zones; `serve` will not start on
/// a pair that does not load, and says which file in one line.
#[test]
fn doctor_checks_the_tls_pair_and_its_names_and_serve_refuses_a_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = own_config(dir.path());
    let (cert, key) = (dir.path().join("fullchain.pem"), dir.path().join("privkey.pem"));
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let env = [
        ("MEDFORGE_TLS__CERT_FILE", cert_s.as_str()),
        ("MEDFORGE_TLS__KEY_FILE", key_s.as_str()),
        ("MEDFORGE_RUNTIME__GPU_MODE", "none"),
    ];
    let tls_finding = || {
        let out = medforge(dir.path(), &["doctor"], &env);
        let report = text(&out.stdout);
        (finding(&report, "cookies/TLS").to_owned(), fix_of(&report, "cookies/TLS").to_owned(), report)
    };
    let ca = common::tls::TestCa::new();
    ca.deployment_leaf().install(&cert, &key);
    let out = medforge(dir.path(), &["doctor"], &env);
    let report = text(&out.stdout);
    let line = finding(&report, "cookies/TLS");
    assert!(line.starts_with("ok ") && line.contains("HTTPS by the built-in router"), "{report}");

    // A certificate without the internal zone.
    let domain = common::DOMAIN;
    ca.leaf(&[domain.to_owned(), format!("*.external.{domain}")]).install(&cert, &key);
    let (line, fix, report) = tls_finding();
    assert!(line.starts_with("FAIL") && line.contains(&format!("s-probe.internal.{domain}")), "{report}");
    assert!(fix.contains(&format!("*.internal.{domain}")), "{report}");

    // A key that is not a key.
    std::fs::write(&key, "not a key").expect("key");
    let (line, _, report) = tls_finding();
    assert!(line.starts_with("FAIL") && line.contains("privkey.pem"), "{report}");
    let mut serve = Command::new(common::binary());
    serve.current_dir(dir.path()).arg("serve").stderr(std::process::Stdio::piped());
    for (k, v) in env {
        serve.env(k, v);
    }
    let mut child = serve.spawn().expect("serve");
    let Some(status) = common::wait_exit(&mut child, std::time::Duration::from_secs(30)) else {
        let _ = child.kill();
        panic!("serve started on a key that does not load");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("stderr");
    assert!(!status.success());
    assert!(err.trim().lines().count() == 1 && err.contains("privkey.pem"), "{err}");
    common::remove_own_networks("docker", &run);
}

/// The NVML path from the command line, on the stand-in libnvidia-ml:
/// `gpu list --probe` and `gpu sample` read the "driver" without a
/// database; doctor says what it found, warns when there is no driver
/// (telemetry "auto") and fails when NVML was required.
#[test]
fn gpu_probe_sample_and_doctor_read_nvml() {
    use medforge_telemetry_nvml::stand_in::{self, StandInGpu};
    let dir = tempfile::tempdir().expect("tempdir");
    let run = own_config(dir.path());
    let library = stand_in::build(dir.path());
    stand_in::write_state(&library, &[StandInGpu::idle(0), StandInGpu::idle(1).busy(87, 30 << 30)]);
    let lib = library.display().to_string();
    let env = [("MEDFORGE_TELEMETRY__NVML_LIBRARY", lib.as_str()), ("MEDFORGE_RUNTIME__GPU_MODE", "none")];

    let out = medforge(dir.path(), &["gpu", "list", "--probe"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = text(&out.stdout);
    let one = rows.lines().find(|l| l.starts_with("1 ")).expect("GPU 1");
    assert!(one.contains("NVIDIA H200 (stand-in)") && one.contains(&StandInGpu::idle(1).uuid), "{rows}");
    assert!(one.contains(" 87%") && one.contains("30 GiB"), "{rows}");
    assert!(text(&out.stderr).contains("2 GPU(s) through nvml"), "{}", text(&out.stderr));

    let out = medforge(dir.path(), &["gpu", "sample", "--count", "2", "--every", "100ms"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 4, "two GPUs, two readings");
    assert!(lines.iter().filter(|l| l["index"] == 1).all(|l| l["utilization_percent"] == 87 && l["at"].is_string()));

    let report = text(&medforge(dir.path(), &["doctor"], &env).stdout);
    let line = finding(&report, "telemetry");
    assert!(line.starts_with("ok ") && line.contains("NVML reads 2 GPU(s) every 5s"), "{report}");
    assert!(finding(&report, "gpus").contains("NVML lists 0, 1"), "{report}");

    // The driver goes away (the stand-in without its state: "not loaded").
    std::fs::remove_file(library.with_file_name(stand_in::STATE_FILE)).expect("remove state");
    let out = medforge(dir.path(), &["gpu", "list", "--probe"], &env);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no GPU telemetry") && err.contains("the NVIDIA driver is not loaded"), "{err}");
    let report = text(&medforge(dir.path(), &["doctor"], &env).stdout);
    let line = finding(&report, "telemetry");
    assert!(line.starts_with("warn") && line.contains("driver is not loaded"), "{report}");
    assert!(finding(&report, "gpus").contains("GPU slots"), "detect falls back to slots: {report}");
    // Required, and not there: doctor fails, and so would serve.
    let required = [env.as_slice(), &[("MEDFORGE_TELEMETRY__SOURCE", "nvml")]].concat();
    let out = medforge(dir.path(), &["doctor"], &required);
    assert!(!out.status.success());
    let report = text(&out.stdout);
    assert!(finding(&report, "telemetry").starts_with("FAIL"), "{report}");
    assert!(fix_of(&report, "telemetry").contains("telemetry.nvml_library"), "{report}");
    common::remove_own_networks("docker", &run);
}
