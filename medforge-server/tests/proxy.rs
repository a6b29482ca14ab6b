//! The built-in session proxy (routing = "builtin"): the routing matrix of
//! routing-e2e-evidence.md through `medforge serve` itself, against real
//! session containers of the test pack.

mod common;

use std::time::{Duration, Instant};

use common::{DOMAIN, Db, Options, Server, docker};
use reqwest::header::{ACCEPT, HOST};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routing_matrix_through_the_builtin_proxy() {
    let s = Server::start(Db::Sqlite, Options::default()).await;
    let (owner, _) = s.signup("owner@example.org").await;
    let (other, _) = s.signup("other@example.org").await;
    let (path, session) = s.start_session(&owner).await;
    let slug = session["slug"].as_str().expect("slug").to_owned();
    let port = s.port().to_owned();
    let h = s.hosted(format!("s-{slug}.external.{DOMAIN}:{port}"));

    // Anonymous: 401 for API clients, a login redirect that comes back for browsers.
    let (st, ct, _, body) = h.get("/", None, &[]).await;
    assert_eq!((st, ct.as_str()), (401, "application/problem+json"), "{body}");
    let (st, _, loc, _) = h.get("/some/page?x=1", None, &[("accept", "text/html")]).await;
    assert_eq!(st, 302);
    assert!(loc.starts_with(&format!("http://{DOMAIN}:{port}/login?next=")), "{loc}");
    assert!(loc.contains(&format!("s%2D{slug}%2Eexternal")) && loc.contains("x%3D1"), "{loc}");

    // Another user: 403, as a problem or a page.
    let (st, ct, _, body) = h.get("/", Some(&other), &[]).await;
    assert_eq!((st, ct.as_str()), (403, "application/problem+json"), "{body}");
    assert!(body.contains("Session access denied."), "{body}");
    let (st, ct, _, body) = h.get("/", Some(&other), &[(ACCEPT.as_str(), "text/html")]).await;
    assert_eq!((st, ct.as_str()), (403, "text/html; charset=utf-8"));
    assert!(body.contains("/login?next="), "{body}");

    // The owner reaches the container; a spoofed X-Upstream changes nothing.
    let (st, _, _, body) = h.get("/", Some(&owner), &[]).await;
    assert_eq!((st, body.as_str()), (200, "medforge test pack\n"));
    let (st, _, _, body) = h.get("/healthz", Some(&owner), &[("x-upstream", "127.0.0.1:1")]).await;
    assert_eq!((st, body.as_str()), (200, "{\"status\":\"alive\"}\n"));
    // The container's own 404 passes as it is (not rewritten as a problem).
    let (st, ct, _, _) = h.get("/no/such/file", Some(&owner), &[]).await;
    assert_eq!(st, 404);
    assert_ne!(ct, "application/problem+json");

    // The gate path on a session host: a plain 403, however spelt.
    for p in [
        "/api/v2/auth/session-proxy",
        "/API/v2/auth/session-proxy",
        "/api%2Fv2%2Fauth%2Fsession-proxy",
        "/api/v2/auth/session-proxy/",
        "//api//v2//auth//session-proxy",
    ] {
        for cookie in [None, Some(owner.as_str())] {
            let (st, _, _, body) = h.get(p, cookie, &[]).await;
            assert_eq!((st, body.as_str()), (403, "Forbidden\n"), "{p} {cookie:?}");
        }
    }
    // Unknown session hosts: 404.
    let bogus = s.hosted(format!("s-aaaaaaaa.external.{DOMAIN}:{port}"));
    assert_eq!(bogus.get("/", Some(&owner), &[]).await.0, 404);
    // The UI/API host is not proxied.
    let (st, _, _) = s.get("/healthz", None).await;
    assert_eq!(st, 200);

    // A killed container: 502 or 404, never a hang.
    docker(&["kill", &format!("mf-session-{slug}")]);
    let started = Instant::now();
    let (st, _, _, _) = h.get("/", Some(&owner), &[]).await;
    assert!(st == 502 || st == 404, "got {st}");
    assert!(started.elapsed() < Duration::from_secs(10));
    s.wait_status(&path, &owner, "error").await;
    let (st, _, _, _) = h.get("/", Some(&owner), &[]).await;
    assert_eq!(st, 404, "a session that is over is not found");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_session_is_not_found() {
    let s = Server::start(Db::Sqlite, Options::default()).await;
    let (owner, _) = s.signup("stops@example.org").await;
    let (path, session) = s.start_session(&owner).await;
    let host = format!("s-{}.external.{DOMAIN}:{}", session["slug"].as_str().expect("slug"), s.port());
    let h = s.hosted(host);
    assert_eq!(h.get("/", Some(&owner), &[]).await.0, 200);
    let (st, _, _) = s.post(&format!("{path}/stop"), Some(&owner), None).await;
    assert_eq!(st, 202);
    // Refused from the stop's answer on, before the container is gone.
    let (st, _, _, body) = h.get("/", Some(&owner), &[]).await;
    assert_eq!(st, 404, "{body}");
    s.stop().await;
}

/// Upgrades are tunnelled both ways, idle tunnels stay open, and a stop
/// closes them at once (before the container is even gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_are_tunnelled_kept_while_idle_and_closed_on_stop() {
    use tokio::io::AsyncReadExt;
    let image = std::env::var("MEDFORGE_TEST_WS_PACK_IMAGE")
        .unwrap_or_else(|_| panic!("MEDFORGE_TEST_WS_PACK_IMAGE is not set: run scripts/test.sh"));
    let s = Server::start(Db::Sqlite, Options { image: Some(image), ..Options::default() }).await;
    let (owner, _) = s.signup("tunnel@example.org").await;
    let (other, _) = s.signup("nottunnel@example.org").await;
    let (path, session) = s.start_session(&owner).await;
    let host = format!("s-{}.external.{DOMAIN}:{}", session["slug"].as_str().expect("slug"), s.port());

    let mut tunnel = common::open_tunnel(s.base.trim_start_matches("http://"), &host, &owner).await;
    for i in 0..20 {
        assert_eq!(common::echo(&mut tunnel, &format!("frame-{i}")).await.0, format!("frame-{i}"));
    }
    // Idle for a while: the proxy does not cut it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(common::echo(&mut tunnel, "still here").await.0, "still here");

    // Someone else's upgrade is refused like any request.
    let refused = s.hosted(host.clone());
    let (st, _, _, _) = refused.get("/", Some(&other), &[("upgrade", "websocket"), ("connection", "Upgrade")]).await;
    assert_eq!(st, 403);

    // A stop closes the tunnel promptly.
    let (st, _, _) = s.post(&format!("{path}/stop"), Some(&owner), None).await;
    assert_eq!(st, 202);
    let stopped = Instant::now();
    let mut buf = [0u8; 16];
    let end = tokio::time::timeout(Duration::from_secs(5), tunnel.read(&mut buf)).await.expect("the tunnel was closed");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    assert!(stopped.elapsed() < Duration::from_millis(1500), "closed after {:?}", stopped.elapsed());
    s.stop().await;
}

/// Resident memory of a process, in bytes (0 once it is gone).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kb * 1024
}

/// 100 MB each way through the proxy, streamed: the server's memory stays
/// flat (and the API's body limit does not apply to session hosts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_with_flat_memory() {
    use futures::StreamExt;
    const SIZE: usize = 100 << 20;
    let s = Server::start(Db::Sqlite, Options::default()).await;
    let (owner, _) = s.signup("bulk@example.org").await;
    let (_, session) = s.start_session(&owner).await;
    let slug = session["slug"].as_str().expect("slug").to_owned();
    let container = common::container_of(&session);
    let made = std::process::Command::new("docker")
        .args(["exec", "-u", "0", &container, "dd", "if=/dev/zero", "of=/www/big", "bs=1M", "count=100"])
        .output()
        .expect("dd");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let host = format!("s-{slug}.external.{DOMAIN}:{}", s.port());
    let before = rss(s.pid());

    let r = s.http.get(s.url("/big")).header(HOST, &host).header("cookie", &owner).send().await.expect("download");
    assert_eq!(r.status(), 200);
    let mut got = 0usize;
    let mut peak = before;
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        got += chunk.expect("chunk").len();
        peak = peak.max(rss(s.pid()));
    }
    assert_eq!(got, SIZE);

    let chunk = bytes_of(1 << 20);
    let stream = futures::stream::iter((0..100).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let upload = s
        .http
        .post(s.url("/cgi-bin/count"))
        .header(HOST, &host)
        .header("cookie", &owner)
        // As a browser's upload: a known length (busybox's CGI needs it),
        // still streamed.
        .header(reqwest::header::CONTENT_LENGTH, SIZE)
        .body(reqwest::Body::wrap_stream(stream));
    let pid = s.pid();
    let watcher = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..600 {
            peak = peak.max(rss(pid));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak
    });
    let r = upload.send().await.expect("upload");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("count").trim(), SIZE.to_string());
    watcher.abort();
    peak = peak.max(rss(s.pid()));
    let grew = peak.saturating_sub(before);
    assert!(grew < 48 << 20, "the server grew by {} MiB moving 200 MiB", grew >> 20);
    s.stop().await;
}

fn bytes_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}
