//! The firewall as `serve` and the CLI drive it: rules applied at start,
//! put back when they go missing, `/healthz` degraded while they are
//! missing, and `medforge firewall apply | check | remove`. (Each backend's
//! rules are proven with real traffic in medforge-net-iptables; here one
//! session is shown unable to reach another through the server's rules.)

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Db, Options, Server, container_of, docker_exec};
use medforge_core::testing::sh;
use serde_json::Value;

/// One test at a time: one of them restarts dockerd under the others.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cli(s: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::binary())
        .args(["--config", s.config_path.to_str().expect("path")])
        .args(args)
        .output()
        .expect("medforge");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn running_session(s: &Server, email: &str) -> Value {
    let (cookie, _) = s.signup(email).await;
    s.start_session(&cookie).await.1
}

fn ip(container: &str) -> String {
    sh("docker", &["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container])
        .expect("inspect")
        .trim()
        .to_owned()
}

/// Does `from` get code-server's page from `to`'s port 8080?
fn reaches(from: &str, to: &str) -> bool {
    let (ok, out, _) = docker_exec(from, &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {} 8080", ip(to)));
    ok && out.contains(" 200 OK")
}

async fn health(s: &Server) -> (u16, Value) {
    let (st, _, b) = s.get("/healthz", None).await;
    (st, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_applies_nftables_rules_and_puts_them_back() {
    let _turn = TURN.lock().await;
    let table = format!("mftest_{}", medforge_core::model::Slug::generate());
    let extra = format!("[firewall]\nkind = \"nftables\"\nnft_table = \"{table}\"\ncheck_interval = \"1s\"\n");
    // On every address, as a server behind no proxy would be: the rules,
    // not the bind address, must keep sessions off it.
    let s = Server::start(Db::Sqlite, Options { extra_config: extra, listen: "0.0.0.0:0", ..Options::default() }).await;
    sh("nft", &["list", "table", "inet", &table]).expect("serve applied the rules at start");
    let (st, b) = health(&s).await;
    assert_eq!((st, &b["data"]["checks"]["firewall"]), (200, &Value::Bool(true)), "{b}");
    let (ok, _, err) = cli(&s, &["firewall", "check"]);
    assert!(ok, "{err}");
    assert!(err.contains("isolation rules in place for br-"), "{err}");

    let a = container_of(&running_session(&s, "fw-a@example.org").await);
    let b = container_of(&running_session(&s, "fw-b@example.org").await);
    assert!(reaches(&a, &a), "the probe itself works (a session reaches its own port)");
    assert!(!reaches(&b, &a), "session B reached session A through the server's rules");

    // The server's own port, at the sessions network's gateway (the host):
    // open to the host, closed to sessions.
    let port: u16 = s.base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let gateway = sh(
        "docker",
        &["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", &format!("mftest-{}-ext", s.run)],
    )
    .expect("gateway");
    let api = format!("{}:{port}", gateway.trim());
    let direct = s.http.get(format!("http://{api}/healthz")).send().await.expect("the host reaches the API");
    assert_eq!(direct.status(), 200);
    let (ok, out, _) =
        docker_exec(&a, &format!("printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {}", api.replace(':', " ")));
    assert!(!(ok && out.contains("200")), "session A reached the server's API: {out}");

    // The rules go (a flush by hand); the server puts them back.
    sh("nft", &["delete", "table", "inet", &table]).expect("delete");
    let deadline = Instant::now() + Duration::from_secs(15);
    while sh("nft", &["list", "table", "inet", &table]).is_err() {
        assert!(Instant::now() < deadline, "the server did not put the rules back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while health(&s).await.0 != 200 {
        assert!(Instant::now() < deadline, "still degraded: {:?}", health(&s).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!reaches(&b, &a), "isolation is back");

    s.stop().await;
    for family in ["inet", "bridge"] {
        sh("nft", &["delete", "table", family, &table]).expect("clean up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_degraded_while_iptables_rules_are_missing() {
    let _turn = TURN.lock().await;
    let extra = "[firewall]\nkind = \"iptables\"\ncheck_interval = \"3600s\"\n".to_owned();
    let s = Server::start(Db::Sqlite, Options { extra_config: extra, ..Options::default() }).await;
    assert_eq!(health(&s).await.0, 200);
    let saved = sh("iptables-save", &["-t", "filter"]).expect("save");
    assert!(saved.contains("-A DOCKER-USER -j MEDFORGE-FORWARD"), "{saved}");

    sh("iptables", &["-D", "DOCKER-USER", "-j", "MEDFORGE-FORWARD"]).expect("take the jump out");
    let (st, b) = health(&s).await;
    assert_eq!(st, 503, "{b}");
    assert_eq!(b["data"]["status"], "degraded");
    assert_eq!(b["data"]["checks"]["firewall"], false);
    let (ok, out, err) = cli(&s, &["firewall", "check"]);
    assert!(!ok);
    assert!(out.contains("missing jump from DOCKER-USER to MEDFORGE-FORWARD"), "{out}");
    assert!(err.contains("run `medforge firewall apply`"), "{err}");

    // The operator's script puts them back.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/firewall/setup.sh");
    let out = Command::new("bash")
        .args([script, "apply", "--config", s.config_path.to_str().expect("path")])
        .env("MEDFORGE_BIN", common::binary())
        .output()
        .expect("setup.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(health(&s).await.0, 200);

    let (ok, _, err) = cli(&s, &["firewall", "remove"]);
    assert!(ok, "{err}");
    let saved = sh("iptables-save", &["-t", "filter"]).expect("save");
    assert!(!saved.contains("MEDFORGE"), "{saved}");
    s.stop().await;
}

#[test]
fn firewall_commands_need_a_firewall_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("medforge.toml");
    std::fs::write(&config, format!("data_dir = \"{}\"\n[firewall]\nkind = \"none\"\n", dir.path().display()))
        .expect("config");
    let out = Command::new(common::binary())
        .args(["--config", config.to_str().expect("path"), "firewall", "apply"])
        .output()
        .expect("medforge");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim(), "medforge: firewall.kind is \"none\": set it to \"nftables\" or \"iptables\" first");
}

/// The PID of the dockerd scripts/test.sh started, if that is the one
/// running: it records it in `$MEDFORGE_TEST_PIDS/dockerd.pid`.
fn our_dockerd() -> Option<(std::path::PathBuf, String)> {
    let dir = std::env::var("MEDFORGE_TEST_PIDS").expect("MEDFORGE_TEST_PIDS is not set: run scripts/test.sh");
    let file = std::path::Path::new(&dir).join("dockerd.pid");
    let pid = std::fs::read_to_string(&file).ok()?.trim().to_owned();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "dockerd").then_some((file, pid))
}

/// Restarts dockerd the way scripts/lib/docker.sh starts it, if the
/// scripts started the one running. A dockerd the host
/// runs for itself is never stopped by a test: then `sessions`'
/// containers are killed instead, as the restart would have killed them.
fn restart_dockerd(sessions: &[String]) {
    let Some((pid_file, pid)) = our_dockerd() else {
        eprintln!("this dockerd was not started by scripts/test.sh: killing the sessions instead of restarting it");
        for container in sessions {
            sh("docker", &["kill", container]).expect("kill a session's container");
        }
        return;
    };
    sh("kill", &["-TERM", &pid]).expect("stop dockerd");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "dockerd did not stop");
        std::thread::sleep(Duration::from_millis(200));
    }
    sh("sh", &["-c", "setsid nohup /usr/sbin/dockerd >>/var/log/medforge-dockerd.log 2>&1 </dev/null &"])
        .expect("start dockerd");
    let deadline = Instant::now() + Duration::from_secs(60);
    while sh("docker", &["info"]).is_err() {
        assert!(Instant::now() < deadline, "dockerd did not come back");
        std::thread::sleep(Duration::from_millis(250));
    }
    let new_pid = std::fs::read_to_string("/var/run/docker.pid").expect("dockerd's pid file");
    std::fs::write(&pid_file, new_pid).expect("record the new dockerd as ours");
}

/// dockerd restarts (its sessions die with it) and the sessions networks
/// are recreated with new bridges: the server's next check re-applies the
/// rules for the new bridges, and new sessions are isolated again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_survives_a_dockerd_restart_and_recreated_networks() {
    let _turn = TURN.lock().await;
    let extra = "[firewall]\nkind = \"iptables\"\ncheck_interval = \"1s\"\n".to_owned();
    let s = Server::start(Db::Sqlite, Options { extra_config: extra, ..Options::default() }).await;
    let (a_cookie, _) = s.signup("restart-a@example.org").await;
    let (b_cookie, _) = s.signup("restart-b@example.org").await;
    let (a_path, a_session) = s.start_session(&a_cookie).await;
    let (b_path, b_session) = s.start_session(&b_cookie).await;
    let ext = format!("mftest-{}-ext", s.run);
    let bridge_before = sh("docker", &["network", "inspect", "-f", "{{.Id}}", &ext]).expect("network");

    restart_dockerd(&[container_of(&a_session), container_of(&b_session)]);
    // The sessions died with dockerd; the server notices and frees the GPUs.
    s.wait_status(&a_path, &a_cookie, "error").await;
    s.wait_status(&b_path, &b_cookie, "error").await;
    // Docker forgets the networks (as a reinstall or `docker network prune` would).
    for net in [ext.clone(), format!("mftest-{}-int", s.run)] {
        let _ = sh("docker", &["network", "rm", &net]);
    }
    let (_, a) = s.start_session(&a_cookie).await;
    let (_, b) = s.start_session(&b_cookie).await;
    let bridge_after = sh("docker", &["network", "inspect", "-f", "{{.Id}}", &ext]).expect("network");
    assert_ne!(bridge_before, bridge_after, "the network was recreated");

    let new_bridge = format!("br-{}", &bridge_after.trim()[..12]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sh("iptables-save", &["-t", "filter"]).expect("save").contains(&format!("medforge:{new_bridge}-inbound")) {
        assert!(Instant::now() < deadline, "the server did not apply rules for {new_bridge}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reaches(&container_of(&a), &container_of(&a)), "the probe itself works");
    assert!(!reaches(&container_of(&b), &container_of(&a)), "session B reached session A after the restart");
    assert_eq!(health(&s).await.0, 200);
    let (ok, _, err) = cli(&s, &["firewall", "remove"]);
    assert!(ok, "{err}");
    s.stop().await;
}

/// The iptables backend's rules are IP-layer ones: with bridge netfilter
/// off (a fresh host with Docker 27 or newer) two sessions on one network
/// would pass them. `firewall check` and doctor fail then, `/healthz` is
/// degraded, and the next session start turns it on before it starts (as
/// the keeper would at its next check); the sessions are isolated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_bridge_netfilter_off_iptables_fails_its_checks_until_it_is_on_again() {
    let _turn = TURN.lock().await;
    let extra = "[firewall]\nkind = \"iptables\"\ncheck_interval = \"3600s\"\n".to_owned();
    let s = Server::start(Db::Sqlite, Options { extra_config: extra, ..Options::default() }).await;
    let off = medforge_core::testing::bridge_netfilter::Off::new();

    let (ok, out, _) = cli(&s, &["firewall", "check"]);
    assert!(!ok, "{out}");
    assert!(out.contains("unmet net.bridge.bridge-nf-call-iptables is 0"), "{out}");
    let (ok, report, _) = cli(&s, &["doctor"]);
    assert!(!ok, "{report}");
    let line = report.lines().find(|l| l.get(6..).is_some_and(|r| r.starts_with("firewall"))).expect("firewall line");
    assert!(line.starts_with("FAIL") && line.contains("bridge-nf-call-iptables is 0"), "{report}");
    assert_eq!(health(&s).await.0, 503);

    let a = container_of(&running_session(&s, "bnf-a@example.org").await);
    assert!(!medforge_core::testing::bridge_netfilter::Off::is_off(), "the start turned it on");
    let b = container_of(&running_session(&s, "bnf-b@example.org").await);
    assert!(reaches(&a, &a), "the probe itself works");
    assert!(!reaches(&b, &a), "session B reached session A");
    assert_eq!(health(&s).await.0, 200);
    let (ok, _, err) = cli(&s, &["firewall", "remove"]);
    assert!(ok, "{err}");
    drop(off);
    s.stop().await;
}

/// What the server cannot put right itself, it does not start sessions
/// past: here a sessions network someone made again with IPv6 on (the
/// rules are IPv4's). Sessions start again once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_starts_while_the_isolation_cannot_be_put_back() {
    let _turn = TURN.lock().await;
    let table = format!("mftest_{}", medforge_core::model::Slug::generate());
    let extra = format!("[firewall]\nkind = \"nftables\"\nnft_table = \"{table}\"\ncheck_interval = \"3600s\"\n");
    let s = Server::start(Db::Sqlite, Options { extra_config: extra, ..Options::default() }).await;
    let ext = format!("mftest-{}-ext", s.run);
    sh("docker", &["network", "rm", &ext]).expect("remove the sessions network");
    let v6 = format!("fd42:{:x}::/64", std::process::id() & 0xffff);
    sh("docker", &["network", "create", "--ipv6", "--subnet", &v6, "--label", "medforge.managed=true", &ext])
        .expect("a sessions network with IPv6");

    let (cookie, _) = s.signup("v6@example.org").await;
    let (st, headers, body) = s.post("/api/v2/external/sessions", Some(&cookie), None).await;
    common::assert_problem(st, &headers, &body, 503, "/api/v2/external/sessions");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("isolation")), "{body}");
    let (ok, out, _) = cli(&s, &["firewall", "check"]);
    assert!(!ok && out.contains(&format!("unmet network {ext} has IPv6 on")), "{out}");

    sh("docker", &["network", "rm", &ext]).expect("the admin removes it");
    let (_, session) = s.start_session(&cookie).await;
    assert_eq!(session["status"], "running");
    let (_, _, info) = s.get("/healthz", None).await;
    assert_eq!(info["data"]["checks"]["firewall"], true, "{info}");
    s.stop().await;
    for family in ["inet", "bridge"] {
        sh("nft", &["delete", "table", family, &table]).expect("clean up");
    }
}

/// Whether `container` has an IPv6 address on eth0 (link-local included)
/// that it may send from: not tentative (flag 0x40), i.e. past duplicate
/// address detection.
fn has_ipv6(container: &str) -> bool {
    let (_, out, _) = docker_exec(container, "cat /proc/net/if_inet6");
    out.lines()
        .map(str::split_whitespace)
        .map(Iterator::collect::<Vec<_>>)
        .any(|f| f.len() == 6 && f[5] == "eth0" && u32::from_str_radix(f[4], 16).is_ok_and(|flags| flags & 0x40 == 0))
}

/// Does `from` get the host service's answer at `[addr%eth0]:port`?
fn reaches_v6(from: &str, addr: &str, port: u16) -> bool {
    let (ok, out, _) = docker_exec(from, &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {addr}%eth0 {port}"));
    ok && out.contains(" 200 OK")
}

/// Sessions have no IPv6 at all, not even a link-local address, on either
/// backend: they can reach neither the host nor each other over it, with
/// the rules or without. A container on the same network with IPv6 turned
/// on shows the path the rules alone would leave: the host's link-local
/// address answers it through the iptables backend (IPv4 rules only);
/// nftables' `inet` table drops it; with no rules it answers (the probe
/// works).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_have_no_ipv6_on_either_backend() {
    let _turn = TURN.lock().await;
    let listener = tokio::net::TcpListener::bind("[::]:0").await.expect("a host service on every address");
    let port = listener.local_addr().expect("addr").port();
    let service = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut c, _)) = listener.accept().await {
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        }
    });
    for kind in ["nftables", "iptables"] {
        let table = format!("mftest_{}", medforge_core::model::Slug::generate());
        let extra = format!("[firewall]\nkind = \"{kind}\"\nnft_table = \"{table}\"\ncheck_interval = \"3600s\"\n");
        let s = Server::start(Db::Sqlite, Options { extra_config: extra, ..Options::default() }).await;
        let a = container_of(&running_session(&s, "v6-a@example.org").await);
        let b = container_of(&running_session(&s, "v6-b@example.org").await);
        let (_, off, _) = docker_exec(&a, "cat /proc/sys/net/ipv6/conf/all/disable_ipv6");
        assert_eq!(off.trim(), "1", "{kind}: IPv6 is off in a session");
        assert!(!has_ipv6(&a) && !has_ipv6(&b), "{kind}: a session has an IPv6 address");

        let ext = format!("mftest-{}-ext", s.run);
        let bridge = format!("br-{}", &sh("docker", &["network", "inspect", "-f", "{{.Id}}", &ext]).expect("id")[..12]);
        let shown = sh("ip", &["-6", "addr", "show", "dev", &bridge]).expect("the bridge's addresses");
        let host_ll = shown
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .expect("the host's link-local address on the bridge")
            .to_owned();
        assert!(!reaches_v6(&a, &host_ll, port), "{kind}: a session reached the host over IPv6");

        let control = format!("mftest-{}-v6", s.run);
        let image = common::test_env("MEDFORGE_TEST_PACK_IMAGE");
        sh(
            "docker",
            &[
                "run",
                "-d",
                "--name",
                &control,
                "--network",
                &ext,
                "--sysctl",
                "net.ipv6.conf.all.disable_ipv6=0",
                "--sysctl",
                "net.ipv6.conf.eth0.disable_ipv6=0",
                "--label",
                &format!("medforge.test_run={}", s.run),
                &image,
            ],
        )
        .expect("a container with IPv6");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !has_ipv6(&control) {
            assert!(Instant::now() < deadline, "the control container never got a link-local address");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            reaches_v6(&control, &host_ll, port),
            kind == "iptables",
            "{kind}: a container with IPv6 and the host's link-local address"
        );
        let (ok, _, err) = cli(&s, &["firewall", "remove"]);
        assert!(ok, "{err}");
        assert!(reaches_v6(&control, &host_ll, port), "{kind}: with no rules the probe gets through");
        assert!(!reaches_v6(&a, &host_ll, port), "{kind}: a session reached the host over IPv6 with no rules");
        let _ = sh("docker", &["rm", "-f", &control]);
        s.stop().await;
    }
    service.abort();
}
