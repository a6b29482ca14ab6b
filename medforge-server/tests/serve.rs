//! `medforge serve` as a process: GPU discovery, graceful shutdown, and
//! boot reconciliation beside another deployment on the same engine.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Db, Options, Server};
use medforge_telemetry_nvml::stand_in::StandInGpu;

/// `gpus = "auto"` seeds the GPUs that NVML lists, with their names and
/// UUIDs (the stand-in libnvidia-ml here: these machines have no GPU).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpus_auto_seeds_what_nvml_lists() {
    let gpus: Vec<StandInGpu> = (0..3).map(StandInGpu::idle).collect();
    let s = Server::start(Db::Sqlite, Options { stand_in_nvml: Some(gpus.clone()), ..Options::default() }).await;
    let admin = s.admin("gpus@example.org").await;
    let (st, _, b) = s.get("/api/v2/admin/gpus", Some(&admin)).await;
    assert_eq!(st, 200, "{b}");
    let listed = b["data"].as_array().expect("list");
    let ids: Vec<u64> = listed.iter().filter_map(|g| g["id"].as_u64()).collect();
    assert_eq!(ids, vec![0, 1, 2]);
    for (g, want) in listed.iter().zip(&gpus) {
        assert_eq!(g["uuid"], want.uuid.as_str());
        assert_eq!(g["name"], "NVIDIA H200 (stand-in)");
        assert_eq!(g["memory_total_bytes"], 80u64 << 30);
    }
    s.stop().await;
}

/// SIGTERM: the server exits cleanly and leaves sessions running, for the
/// next start's reconciliation to pick up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_and_leaves_sessions_running() {
    let mut s = Server::start(Db::Sqlite, Options::default()).await;
    let (cookie, _) = s.signup("stays@example.org").await;
    let (_, _, b) = s.post("/api/v2/external/sessions", Some(&cookie), None).await;
    let id = b["data"]["session"]["id"].as_str().expect("id").to_owned();
    let session = s.wait_status(&format!("/api/v2/external/sessions/{id}"), &cookie, "running").await;
    let container = session["container_id"].as_str().expect("container").to_owned();

    let killed = Command::new("kill").args(["-TERM", &s.pid().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = s.wait_exit(Duration::from_secs(15)).expect("the server did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let out =
        Command::new("docker").args(["inspect", "-f", "{{.State.Running}}", &container]).output().expect("docker");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true", "the session's container must keep running");
    s.stop().await;
}

fn label_of(container: &str, label: &str) -> String {
    common::docker(&["inspect", "-f", &format!("{{{{ index .Config.Labels \"{label}\" }}}}"), container])
        .trim()
        .to_owned()
}

fn exists(container: &str) -> bool {
    Command::new("docker").args(["inspect", container]).output().expect("docker").status.success()
}

/// Two deployments on one engine with the same `runtime.labels`, as two
/// default set-ups have: a restart's reconciliation removes an orphan of
/// its own (it carries this deployment's id) and leaves the other
/// deployment's sessions, and containers without an id, alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_removes_only_this_deployments_orphans() {
    let a = Server::start(Db::Sqlite, Options::default()).await;
    let mut b = Server::start(Db::Sqlite, Options { run: Some(a.run.clone()), ..Options::default() }).await;
    let (a_cookie, _) = a.signup("deployment-a@example.org").await;
    let (_, a_session) = a.start_session(&a_cookie).await;
    let (b_cookie, _) = b.signup("deployment-b@example.org").await;
    let (b_path, b_session) = b.start_session(&b_cookie).await;
    let (a_container, b_container) = (common::container_of(&a_session), common::container_of(&b_session));
    let deployment = "medforge.deployment";
    let (a_id, b_id) = (label_of(&a_container, deployment), label_of(&b_container, deployment));
    assert!(!a_id.is_empty() && !b_id.is_empty() && a_id != b_id, "deployment ids: {a_id:?} {b_id:?}");

    // An orphan of B's (no session of B's owns it), and a container from
    // before deployment ids, both with the run's label.
    let image = std::env::var("MEDFORGE_TEST_PACK_IMAGE").expect("MEDFORGE_TEST_PACK_IMAGE: run scripts/test.sh");
    let run_label = format!("medforge.test_run={}", a.run);
    let orphan = format!("mf-session-orphan{}", &b_id[..8]);
    let legacy = format!("mf-session-legacy{}", &b_id[..8]);
    for (name, extra) in [(&orphan, format!("{deployment}={b_id}")), (&legacy, "medforge.before_ids=true".into())] {
        common::docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--label",
            "medforge.managed=true",
            "--label",
            &run_label,
            "--label",
            &extra,
            &image,
        ]);
        assert!(exists(name), "{name} was not created");
    }

    b.restart();
    assert!(!exists(&orphan), "B's orphan survived B's reconciliation");
    assert!(exists(&a_container), "B's reconciliation removed A's session");
    assert!(exists(&legacy), "B's reconciliation removed a container it cannot prove is its own");
    assert!(exists(&b_container), "B's own session was removed");
    let (st, _, body) = b.get(&b_path, Some(&b_cookie)).await;
    assert_eq!((st, body["data"]["status"].as_str()), (200, Some("running")), "{body}");
    common::docker(&["rm", "-f", &legacy]);
    b.stop().await;
    a.stop().await;
}

/// A raw connection to `port` from `source` (a loopback address of its
/// own: one client network each).
async fn connect_from(source: &str, port: u16) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(format!("{source}:0").parse().expect("source")).expect("bind");
    socket.connect(format!("127.0.0.1:{port}").parse().expect("addr")).await.expect("connect")
}

/// What the server sends before it closes `stream` (within 15 s).
async fn until_closed(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open: {}", String::from_utf8_lossy(&got));
    String::from_utf8_lossy(&got).into_owned()
}

/// The listener holds clients to `[http]`: a connection that sends half a
/// request is closed by the header timeout, an idle keep-alive one too;
/// one client network gets `max_connections_per_client` connections and a
/// 503 for the next, while another network is served; a freed place is
/// taken again. The metrics count what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_closes_slow_and_idle_clients_and_caps_each_network() {
    use tokio::io::AsyncWriteExt;
    let extra = "[http]\nheader_read_timeout = \"2s\"\nkeep_alive_idle = \"1s\"\nmax_connections_per_client = 3\n";
    let s = Server::start(Db::Sqlite, Options { extra_config: extra.into(), ..Options::default() }).await;
    let port: u16 = s.port().parse().expect("port");

    // Half a request: closed, unanswered, by the header timeout.
    let mut slow = connect_from("127.0.0.2", port).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: medforge.localhost\r\n").await.expect("write");
    assert_eq!(until_closed(&mut slow).await, "", "no answer to half a request");
    // A whole request, then silence: answered, then closed as idle.
    let mut idle = connect_from("127.0.0.2", port).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: medforge.localhost\r\n\r\n").await.expect("write");
    assert!(until_closed(&mut idle).await.starts_with("HTTP/1.1 200"), "answered before it was closed");

    // Three connections from one network; the fourth is turned away.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.3", port).await);
    }
    // Each is counted once the server has accepted it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fourth = connect_from("127.0.0.3", port).await;
    let answer = until_closed(&mut fourth).await;
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("Too many connections"), "{answer:?}");
    // Another network is served meanwhile.
    let mut other = connect_from("127.0.0.4", port).await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: medforge.localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    assert!(until_closed(&mut other).await.starts_with("HTTP/1.1 200"));
    // A place freed is a place again.
    held.pop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect_from("127.0.0.3", port).await;
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: medforge.localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    assert!(until_closed(&mut again).await.starts_with("HTTP/1.1 200"));

    let text = s.http.get(&s.metrics).send().await.expect("metrics").text().await.expect("text");
    for want in
        ["medforge_http_connections_refused_total{reason=\"per_client\"} 1", "medforge_http_header_timeouts_total"]
    {
        assert!(text.contains(want), "{want} missing from /metrics:\n{text}");
    }
    drop(held);
    s.stop().await;
}
