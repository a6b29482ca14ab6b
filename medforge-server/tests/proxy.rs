//! The built-in session proxy (routing = "builtin"): the routing matrix of
//! routing-e2e-evidence.md through `medforge serve` itself, against real
//! session containers of the test pack.

mod common;

use std::time::{Duration, Instant};

use common::{DOMAIN, Db, Options, Server, docker, routing};
use reqwest::header::ACCEPT;

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
    for p in routing::GATE_SPELLINGS {
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

/// 100 MB each way through the proxy, streamed: the server's memory stays
/// flat (and the API's body limit does not apply to session hosts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_with_flat_memory() {
    let s = Server::start(Db::Sqlite, Options::default()).await;
    let (owner, _) = s.signup("bulk@example.org").await;
    let (_, session) = s.start_session(&owner).await;
    let front = s.hosted(format!("s-{}.external.{DOMAIN}:{}", session["slug"].as_str().expect("slug"), s.port()));
    routing::large_bodies_stream_with_flat_memory(&front, &owner, &common::container_of(&session), &[s.pid()]).await;
    s.stop().await;
}

/// 64 connections for 10 s over two users' sessions, with gate spellings
/// mixed in: no gate path and no foreign host reaches a container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_nothing_is_misrouted() {
    let s = Server::start(Db::Sqlite, Options::default()).await;
    let mut targets = Vec::new();
    for who in ["load-a@example.org", "load-b@example.org"] {
        let (cookie, _) = s.signup(who).await;
        let (_, session) = s.start_session(&cookie).await;
        let slug = session["slug"].as_str().expect("slug").to_owned();
        targets.push(routing::Target {
            front: s.hosted(format!("s-{slug}.external.{DOMAIN}:{}", s.port())),
            cookie,
            container: common::container_of(&session),
            slug,
        });
    }
    routing::assert_no_misroutes_under_load(&targets, 64, 10).await;
    s.stop().await;
}
