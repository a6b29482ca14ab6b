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
