//! `storage = "zfs"` end to end: the real server, real dockerd, the test
//! pack, and a real ZFS pool (zfs-fuse here) made by each test and set up
//! with `infra/zfs/setup.sh`. The tests take turns (so do all users of
//! test pools: `TestPool`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Db, Options, Server, container_of, docker, docker_exec};
use medforge_storage_zfs::testing::{TestPool, must, run};
use serde_json::{Value, json};

/// One test at a time: zfs-fuse wedges when pools come and go at once.
static ZFS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SESSIONS: &str = "/api/v2/external/sessions";

/// A pool with its workspaces root made by the setup script.
fn pool_with_root() -> (TestPool, String) {
    let pool = TestPool::create(256);
    let root = format!("{}/medforge/workspaces", pool.name);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/zfs/setup.sh");
    let out = Command::new("bash").arg(script).arg(&root).output().expect("setup.sh");
    assert!(out.status.success(), "setup.sh: {}", String::from_utf8_lossy(&out.stderr));
    (pool, root)
}

/// A `zfs` of its own in `dir` that runs the real one after `before` (shell
/// lines, e.g. to log or to fail); its path, for `storage.zfs_command`.
fn zfs_wrapper(dir: &std::path::Path, before: &str) -> String {
    let wrapper = dir.join("zfs");
    let real = String::from_utf8(Command::new("sh").args(["-c", "command -v zfs"]).output().expect("which").stdout)
        .expect("utf8");
    std::fs::write(&wrapper, format!("#!/bin/sh\n{before}\nexec {} \"$@\"\n", real.trim())).expect("wrapper");
    must("chmod", &["755", &wrapper.display().to_string()]);
    wrapper.display().to_string()
}

fn zfs_config(root: &str, quota: Option<u64>, zfs_command: Option<&str>) -> String {
    let mut c = format!("[storage]\nkind = \"zfs\"\nroot = \"{root}\"\n");
    if let Some(q) = quota {
        c.push_str(&format!("quota_bytes = {q}\n"));
    }
    if let Some(z) = zfs_command {
        c.push_str(&format!("zfs_command = \"{z}\"\n"));
    }
    c
}

async fn stop(s: &Server, path: &str, cookie: &str, want: &str) -> Value {
    let (st, _, b) = s.post(&format!("{path}/stop"), Some(cookie), None).await;
    assert_eq!(st, 202, "{b}");
    s.wait_status(path, cookie, want).await
}

fn snapshot_names(pool: &TestPool, dataset: &str) -> Vec<String> {
    pool.snapshots(dataset).iter().map(|full| full.split_once('@').expect("snapshot").1.to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_persist_are_snapshotted_on_stop_and_roll_back() {
    let _turn = ZFS.lock().await;
    let (pool, root) = pool_with_root();
    let s =
        Server::start(Db::Sqlite, Options { extra_config: zfs_config(&root, None, None), ..Options::default() }).await;
    let (cookie, user_id) = s.signup("persist@example.org").await;

    let (path, first) = s.start_session(&cookie).await;
    let dataset = format!("{root}/{user_id}");
    assert_eq!(first["workspace_zfs"], dataset.as_str());
    let (ok, _, err) = docker_exec(&container_of(&first), "echo v1 > /workspace/notes.txt && id -u && sync");
    assert!(ok, "{err}");
    stop(&s, &path, &cookie, "stopped").await;
    let slug = first["slug"].as_str().expect("slug");
    let snaps = snapshot_names(&pool, &dataset);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let first_snap = snaps[0].clone();
    assert!(first_snap.starts_with("stop-") && first_snap.ends_with(&format!("-{slug}")), "{first_snap}");
    assert_eq!(pool.read_snapshot_file(&dataset, &first_snap, "notes.txt").expect("in the snapshot"), b"v1\n");
    let (st, _, listed) = s.get(&format!("{path}/snapshots"), Some(&cookie)).await;
    assert_eq!(st, 200, "{listed}");
    assert_eq!(listed["data"][0]["name"], first_snap.as_str(), "{listed}");

    // The next session of the same user finds the file; it is overwritten
    // by mistake and that session stops too.
    let (path, second) = s.start_session(&cookie).await;
    let (ok, out, err) = docker_exec(&container_of(&second), "cat /workspace/notes.txt");
    assert!(ok, "{err}");
    assert_eq!(out, "v1\n");
    let (ok, _, err) = docker_exec(&container_of(&second), "echo 'v2 (a mistake)' > /workspace/notes.txt && sync");
    assert!(ok, "{err}");
    stop(&s, &path, &cookie, "stopped").await;
    assert_eq!(snapshot_names(&pool, &dataset).len(), 2);

    // The admin's restore path (README): roll back to the first stop.
    must("zfs", &["rollback", "-r", &format!("{dataset}@{first_snap}")]);
    assert_eq!(snapshot_names(&pool, &dataset), std::slice::from_ref(&first_snap), "-r drops the later snapshot");
    let (path, third) = s.start_session(&cookie).await;
    let (ok, out, err) = docker_exec(&container_of(&third), "cat /workspace/notes.txt");
    assert!(ok, "{err}");
    assert_eq!(out, "v1\n", "the rollback restored the file");

    // A container that dies leaves a death- snapshot.
    docker(&["kill", &container_of(&third)]);
    let dead = s.wait_status(&path, &cookie, "error").await;
    assert_eq!(dead["error_message"], "container exited unexpectedly", "{dead}");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !snapshot_names(&pool, &dataset).iter().any(|n| n.starts_with("death-")) {
        assert!(std::time::Instant::now() < deadline, "no death snapshot: {:?}", snapshot_names(&pool, &dataset));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.stop().await;
    pool.destroy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_stops_writes_in_one_session_and_nowhere_else() {
    let _turn = ZFS.lock().await;
    let (pool, root) = pool_with_root();
    let s = Server::start(
        Db::Sqlite,
        Options { extra_config: zfs_config(&root, Some(64 << 20), None), ..Options::default() },
    )
    .await;
    let admin = s.admin("quota-admin@example.org").await;
    let (small, small_id) = s.signup("small@example.org").await;
    let (roomy, roomy_id) = s.signup("roomy@example.org").await;
    // An admin gives one user a smaller quota than the default.
    let (st, _, b) = s
        .patch(&format!("/api/v2/admin/users/{small_id}"), Some(&admin), json!({"workspace_quota_bytes": 8 << 20}))
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["workspace_quota_bytes"], 8 << 20);
    let (st, _, b) =
        s.patch(&format!("/api/v2/admin/users/{small_id}"), Some(&admin), json!({"workspace_quota_bytes": -1})).await;
    assert_eq!(st, 422, "{b}");

    let (_, small_session) = s.start_session(&small).await;
    let (_, roomy_session) = s.start_session(&roomy).await;
    assert_eq!(
        must("zfs", &["get", "-H", "-p", "-o", "value", "quota", &format!("{root}/{small_id}")]).trim(),
        (8u64 << 20).to_string()
    );
    assert_eq!(
        must("zfs", &["get", "-H", "-p", "-o", "value", "quota", &format!("{root}/{roomy_id}")]).trim(),
        (64u64 << 20).to_string()
    );

    let (ok, _, err) =
        docker_exec(&container_of(&small_session), "dd if=/dev/urandom of=/workspace/big bs=1M count=32 conv=fsync");
    assert!(!ok, "32 MiB fit into an 8 MiB quota");
    assert!(err.contains("Disk quota exceeded") || err.contains("No space left"), "{err}");

    // The other user's workspace and the server are unaffected.
    let (ok, _, err) =
        docker_exec(&container_of(&roomy_session), "dd if=/dev/urandom of=/workspace/big bs=1M count=24 conv=fsync");
    assert!(ok, "{err}");
    let (st, _, health) = s.get("/healthz", None).await;
    assert_eq!((st, &health["data"]["status"]), (200, &json!("ok")), "{health}");
    let (st, _, _) = s.get("/api/v2/me", Some(&small)).await;
    assert_eq!(st, 200);

    // Back to the default: null clears the user's own quota.
    let (st, _, b) =
        s.patch(&format!("/api/v2/admin/users/{small_id}"), Some(&admin), json!({"workspace_quota_bytes": null})).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["workspace_quota_bytes"], Value::Null);
    s.stop().await;
    pool.destroy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_snapshot_ends_the_session_as_error_and_loses_nothing() {
    let _turn = ZFS.lock().await;
    let (pool, root) = pool_with_root();
    // ZFS can go away under a running session (its daemon dies, the pool
    // is pulled): the server's `zfs` then answers as zfs does without its
    // daemon for as long as the flag file exists. Only this server's
    // commands fail; the host's ZFS and its other pools are left alone.
    let dir = tempfile::tempdir().expect("tempdir");
    let gone = dir.path().join("zfs-is-gone");
    let wrapper = zfs_wrapper(
        dir.path(),
        &format!(
            "if [ -e {} ]; then printf '%s\\n' 'connect: No such file or directory' \
             'Please make sure that the zfs-fuse daemon is running.' \
             'internal error: failed to initialize ZFS library' >&2; exit 1; fi",
            gone.display()
        ),
    );
    let s = Server::start(
        Db::Sqlite,
        Options { extra_config: zfs_config(&root, None, Some(&wrapper)), ..Options::default() },
    )
    .await;
    let admin = s.admin("snapfail-admin@example.org").await;
    let (cookie, user_id) = s.signup("snapfail@example.org").await;
    let (path, session) = s.start_session(&cookie).await;
    let (ok, _, err) = docker_exec(&container_of(&session), "echo precious > /workspace/results.csv && sync");
    assert!(ok, "{err}");

    // ZFS goes away under the running session; then the user stops it.
    std::fs::write(&gone, "").expect("flag");
    let ended = stop(&s, &path, &cookie, "error").await;
    let message = ended["error_message"].as_str().expect("message");
    // The command as the server ran it: the configured `zfs`, this test's own.
    assert!(message.starts_with(&format!("snapshot failed: `{wrapper} snapshot ")), "{message}");
    assert!(message.contains(&format!("{root}/{user_id}@stop-")), "{message}");
    assert!(message.contains("zfs-fuse daemon is running") || message.contains("failed"), "{message}");
    let (_, _, gpus) = s.get("/api/v2/admin/gpus", Some(&admin)).await;
    assert!(gpus["data"].as_array().expect("gpus").iter().all(|g| g["session_id"].is_null()), "GPU freed: {gpus}");
    let (st, _, health) = s.get("/healthz", None).await;
    assert_eq!(st, 200, "the server carries on: {health}");
    let (st, h, b) = s.get(&format!("{path}/snapshots"), Some(&cookie)).await;
    common::assert_problem(st, &h, &b, 503, &format!("{path}/snapshots"));
    assert!(!b.to_string().contains("zfs"), "no internals in the answer: {b}");

    // ZFS comes back: the workspace is intact and the next session has it.
    std::fs::remove_file(&gone).expect("flag");
    let (path, next) = s.start_session(&cookie).await;
    let (ok, out, err) = docker_exec(&container_of(&next), "cat /workspace/results.csv");
    assert!(ok, "{err}");
    assert_eq!(out, "precious\n");
    stop(&s, &path, &cookie, "stopped").await;
    s.stop().await;
    pool.destroy();
}

/// Hostile ids in requests and a hostile root in the config never reach the
/// `zfs` command: a wrapper records every command the server runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_never_reach_the_zfs_command() {
    let _turn = ZFS.lock().await;
    let (pool, root) = pool_with_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("zfs.log");
    let wrapper = zfs_wrapper(dir.path(), &format!("printf '%s\\n' \"$*\" >> {}", log.display()));

    let s = Server::start(
        Db::Sqlite,
        Options { extra_config: zfs_config(&root, None, Some(&wrapper)), ..Options::default() },
    )
    .await;
    let (cookie, _) = s.signup("hostile@example.org").await;
    let hostile = ["..%2F..%2Fetc", "-o", "a@b", "a%20b", "..", "-oquota=none", "x;reboot", "%24(id)"];
    for h in hostile {
        for p in [format!("{SESSIONS}/{h}/snapshots"), format!("{SESSIONS}/{h}")] {
            let (st, _, b) = s.get(&p, Some(&cookie)).await;
            assert!(st == 404 || st == 422 || st == 400, "{p}: {st} {b}");
        }
        let (st, _, b) = s.post(SESSIONS, Some(&cookie), Some(json!({"pack_id": h}))).await;
        assert!((400..500).contains(&st), "pack {h}: {st} {b}");
    }
    let (_, session) = s.start_session(&cookie).await;
    let ran = std::fs::read_to_string(&log).expect("zfs log");
    assert!(!ran.is_empty(), "the wrapper saw the server's commands");
    for line in ran.lines() {
        for word in line.split(' ') {
            let our_option = ["-H", "-p", "-o", "-t", "-d"].contains(&word);
            let plain =
                !word.starts_with('-') && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:/@=,-".contains(&b));
            let ours = our_option || plain;
            assert!(ours, "unexpected argument {word:?} in `zfs {line}`");
        }
        for h in ["..", "a@b", "reboot", "quota=none", "$(id)"] {
            assert!(!line.contains(h), "{h:?} reached `zfs {line}`");
        }
    }
    assert!(ran.contains(&format!("{root}/{}", session["user_id"].as_str().expect("user"))), "{ran}");
    s.stop().await;

    // A hostile root in the config is refused before any command runs.
    std::fs::remove_file(&log).expect("clear the log");
    for bad_root in [format!("{}/-o", pool.name), format!("{}/../etc", pool.name), "tank/a b".into()] {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, zfs_config(&bad_root, None, Some(&wrapper))).expect("config");
        let out = Command::new(common::binary())
            .args(["--config", config.to_str().expect("path"), "config", "check"])
            .output()
            .expect("config check");
        assert!(!out.status.success(), "{bad_root:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("storage.root: invalid ZFS dataset name"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
    assert!(!log.exists(), "a command ran: {:?}", std::fs::read_to_string(&log));
    pool.destroy();
}

/// `serve` refuses to start without the pool or the root dataset, saying
/// which and how to fix it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_without_the_pool_or_the_root() {
    let _turn = ZFS.lock().await;
    let pool = TestPool::create(64);
    let dir = tempfile::tempdir().expect("tempdir");
    for (root, want) in [
        ("mftnosuchpool/medforge/workspaces".to_owned(), "ZFS pool \"mftnosuchpool\" does not exist"),
        (format!("{}/medforge/workspaces", pool.name), "create it with infra/zfs/setup.sh"),
    ] {
        let config = dir.path().join("medforge.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[runtime]\ngpu_mode = \"none\"\n{}[gpus]\nids = [0]\n{}",
                dir.path().display(),
                common::own_runtime_keys("zfsrefusal"),
                zfs_config(&root, None, None)
            ),
        )
        .expect("config");
        let mut child = Command::new(common::binary())
            .args(["--config", config.to_str().expect("path"), "serve"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("serve");
        let Some(status) = common::wait_exit(&mut child, Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("serve started without {root}");
        };
        let out = child.wait_with_output().expect("output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!status.success());
        assert!(stderr.contains(want), "{stderr}");
        assert!(run("zfs", &["list", &root]).is_err(), "serve created {root}");
    }
    pool.destroy();
}
