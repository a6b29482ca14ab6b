//! The configuration's unit tests, each in a figment `Jail`.

use std::path::Path;

use medforge_core::model::GpuId;

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
    assert_eq!(c.firewall.kind, FirewallKind::Auto);
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
            format!("{} sqlite://{}/medforge.db {}/workspaces", d.join("secret").display(), d.display(), d.display())
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

/// `detect` (the default) takes what NVML lists, and seven slots where
/// it finds nothing; `auto` needs it; a list is a list.
#[test]
fn detected_gpus_follow_nvml_or_fall_back_to_seven_slots() {
    let info = |index| medforge_core::telemetry::GpuInfo {
        index,
        uuid: format!("GPU-{index}"),
        name: "NVIDIA H200".into(),
        memory_total_bytes: 1,
    };
    let none: super::gpus::Discovery = Err("cannot load libnvidia-ml.so.1".into());
    let two: super::gpus::Discovery = Ok(vec![info(0), info(2)]);
    let detect = GpuIds::Auto(AutoKeyword::Detect);
    assert_eq!(detect.resolve(&none), Ok(GpuIds::fallback_slots()));
    assert_eq!(detect.resolve(&none).expect("slots").len(), 7);
    assert_eq!(detect.resolve(&Ok(Vec::new())), Ok(GpuIds::fallback_slots()));
    assert_eq!(detect.resolve(&two), Ok(vec![GpuId(0), GpuId(2)]));
    let auto = GpuIds::Auto(AutoKeyword::Auto);
    assert_eq!(auto.resolve(&two), Ok(vec![GpuId(0), GpuId(2)]));
    let refused = auto.resolve(&none).expect_err("auto needs NVML");
    assert!(refused.to_string().contains("needs NVML") && refused.to_string().contains("libnvidia-ml.so.1"));
    assert_eq!(auto.resolve(&Ok(Vec::new())), Err(GpuListError::NoGpus));
    assert_eq!(GpuIds::List(vec![3]).resolve(&none), Ok(vec![GpuId(3)]));
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
fn tls_files_are_read_relative_to_their_file_and_make_cookies_secure() {
    let (c, cwd) = jailed(|jail| {
        jail.create_dir("etc").expect("mkdir");
        jail.create_file(
            "etc/medforge.toml",
            "listen = \"0.0.0.0:443\"\n[tls]\ncert_file = \"tls/fullchain.pem\"\nkey_file = \"/abs/privkey.pem\"\n",
        )
        .expect("write");
        (Config::load(Some(Path::new("etc/medforge.toml"))).expect("valid"), std::env::current_dir().expect("cwd"))
    });
    let files = c.tls.files().expect("tls on");
    assert_eq!((files.cert, files.key), (cwd.join("etc/tls/fullchain.pem"), "/abs/privkey.pem".into()));
    assert!(c.cookie_secure, "served over HTTPS, the cookies are Secure");
    assert_eq!(c.ui_url(443), "https://medforge.localhost");
    assert_eq!(c.ui_url(8443), "https://medforge.localhost:8443");
    for (bad, key) in [
        ("[tls]\ncert_file = \"a.pem\"\n", "tls.key_file"),
        ("[tls]\nkey_file = \"a.pem\"\n", "tls.cert_file"),
        ("routing = \"caddy\"\n[tls]\ncert_file = \"a.pem\"\nkey_file = \"b.pem\"\n", "tls"),
        ("[tls]\nredirect_http_listen = \"0.0.0.0:80\"\n", "tls.redirect_http_listen"),
        (
            "[tls]\ncert_file = \"a\"\nkey_file = \"b\"\nredirect_http_listen = \"127.0.0.1:8080\"\n",
            "tls.redirect_http_listen",
        ),
        ("[tls]\nreload_check_secs = 0\n", "tls.reload_check"),
        ("[tls]\nreload_check = \"0s\"\n", "tls.reload_check"),
    ] {
        match load_toml(bad) {
            Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
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
fn telemetry_durations_are_humantime_and_checked() {
    let c = load_toml("[telemetry]\ninterval = \"2s\"\nbusy_utilization = 0.25\n").expect("valid");
    assert_eq!(c.telemetry.interval, std::time::Duration::from_secs(2));
    assert_eq!(c.telemetry.source, TelemetrySource::Auto);
    for (bad, key) in [
        ("[telemetry]\ninterval = \"0s\"\n", "telemetry.interval"),
        ("[telemetry]\ninterval = \"2 fortnights\"\n", "interval"),
        ("[telemetry]\nbusy_utilization = 1.5\n", "telemetry.busy_utilization"),
    ] {
        let e = load_toml(bad).expect_err(bad).to_string();
        assert!(e.contains(key), "{bad}: {e}");
    }
    let c = load_toml("[telemetry]\nnvml_library = \"libnvidia-ml.so.1\"\n").expect("bare name");
    assert_eq!(c.telemetry.nvml_library.as_deref(), Some(Path::new("libnvidia-ml.so.1")), "the loader's to find");
}

#[test]
fn session_limits_and_the_queue_read_humantime_and_zero_turns_a_limit_off() {
    let c = load_toml("").expect("defaults");
    let l = c.sessions.limits();
    assert_eq!(l.idle_timeout, Some(std::time::Duration::from_secs(2 * 3600)));
    assert_eq!(l.max_lifetime, Some(std::time::Duration::from_secs(24 * 3600)));
    assert_eq!(
        (l.warn_before, l.extend_by, l.max_extensions),
        (std::time::Duration::from_secs(900), std::time::Duration::from_secs(4 * 3600), 2)
    );
    assert_eq!(c.queue.claim_timeout, std::time::Duration::from_secs(600));
    assert!(c.queue.extend_when_queued && c.notify.webhook_url.is_none());
    let c = load_toml("[sessions]\nidle_timeout = \"0\"\nmax_lifetime = \"90m\"\n[queue]\norder = \"fair\"\n")
        .expect("valid");
    assert_eq!(c.sessions.limits().idle_timeout, None);
    assert_eq!(c.sessions.limits().max_lifetime, Some(std::time::Duration::from_secs(5400)));
    assert_eq!(c.queue.order, medforge_core::queue::QueueOrder::Fair);
    for (bad, key) in [
        ("[sessions]\nidle_timeout = \"10m\"\n", "sessions.idle_timeout"),
        ("[sessions]\nmax_lifetime = \"15m\"\n", "sessions.max_lifetime"),
        ("[sessions]\nwarn_before = \"0\"\n", "sessions.warn_before"),
        ("[sessions]\nbusy_gpu_utilization = 2.0\n", "sessions.busy_gpu_utilization"),
        ("[sessions]\nidle_timeout = \"soon\"\n", "idle_timeout"),
        ("[queue]\nclaim_timeout = \"0\"\n", "queue.claim_timeout"),
        ("[queue]\norder = \"random\"\n", "order"),
        ("[notify]\nwebhook_url = \"ftp://x\"\n", "notify.webhook_url"),
    ] {
        let e = load_toml(bad).expect_err(bad).to_string();
        assert!(e.contains(key), "{bad}: {e}");
    }
}

#[test]
fn the_old_seconds_keys_still_read_and_the_new_name_wins() {
    let c = load_toml("[runtime]\nstop_timeout_secs = 7\n[auth]\ninvite_valid_secs = 3600\n").expect("old names");
    assert_eq!(c.runtime.stop_timeout, std::time::Duration::from_secs(7));
    assert_eq!(c.auth.invite_valid, std::time::Duration::from_secs(3600));
    let c = load_toml("[runtime]\nstop_timeout_secs = 7\nstop_timeout = \"9s\"\n").expect("both");
    assert_eq!(c.runtime.stop_timeout, std::time::Duration::from_secs(9));
    let c = load_toml(
        "[runtime]\nready_timeout = \"2m\"\n[http]\nheader_read_timeout = \"3s\"\nkeep_alive_idle = \"2s\"\n",
    )
    .expect("humantime");
    assert_eq!(c.runtime.ready_timeout, std::time::Duration::from_secs(120));
    assert_eq!(c.http.keep_alive_idle, std::time::Duration::from_secs(2));
}
