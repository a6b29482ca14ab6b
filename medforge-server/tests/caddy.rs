//! `routing = "caddy"`: real Caddy 2.11.7 (scripts/test.sh fetches it) in
//! front of the real server, running `infra/caddy/session-route.caddy`,
//! the same route the production Caddyfile imports (`common::caddy`). The
//! routing matrix of tests/proxy.rs, through Caddy.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::caddy::{server_behind_caddy, through};
use common::{DOMAIN, Hosted, docker, routing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routing_matrix_through_caddy() {
    let (s, c) = server_behind_caddy(None).await;
    let (owner, _) = s.signup("owner@example.org").await;
    let (other, _) = s.signup("other@example.org").await;
    let (path, session) = s.start_session(&owner).await;
    let slug = session["slug"].as_str().expect("slug").to_owned();
    let front = through(&s, &c, &slug);
    let get = |p: &'static str, cookie: Option<&str>, extra: Option<(&'static str, &'static str)>| {
        let (front, cookie) = (&front, cookie.map(str::to_owned));
        async move {
            let headers: Vec<(&str, &str)> = extra.into_iter().collect();
            let (st, ct, _, body) = front.get(p, cookie.as_deref(), &headers).await;
            (st, ct, body)
        }
    };

    // No pass: a GET goes to the UI's way in (Caddy passes the gate's
    // answer on as it is); other methods are refused.
    let (st, _, loc, _) = front.get("/some/page?x=1", None, &[]).await;
    assert_eq!(st, 302);
    let way_in = format!("http://{DOMAIN}:{}/sessions/enter?host=s%2D{slug}%2Eexternal", c.port);
    assert!(loc.starts_with(&way_in) && loc.contains("&next=%2Fsome%2Fpage%3Fx%3D1"), "{loc}");
    let r = front.request(reqwest::Method::POST, "/", None).send().await.expect("post");
    assert_eq!(r.status(), 401);
    let r = front.request(reqwest::Method::POST, "/", None).header("accept", "text/html").send().await.expect("post");
    let body = r.text().await.expect("body");
    assert!(body.contains(&format!("<meta http-equiv=\"refresh\" content=\"0; url={way_in}")), "{body}");
    // Another user gets no pass; a login cookie is no pass.
    assert_eq!(front.try_enter(&other).await.expect_err("not theirs").0, 403);
    assert_eq!(get("/", Some(&owner), None).await.0, 302, "a login cookie opens nothing");
    let pass = front.enter(&owner).await;
    let (st, _, body) = get("/", Some(&pass), None).await;
    assert_eq!((st, body.as_str()), (200, "medforge test pack\n"));
    let (st, _, body) = get("/healthz", Some(&pass), Some(("x-upstream", "127.0.0.1:1"))).await;
    assert_eq!((st, body.as_str()), (200, "{\"status\":\"alive\"}\n"), "a spoofed X-Upstream is ignored");
    for p in routing::GATE_SPELLINGS {
        for cookie in [None, Some(pass.as_str())] {
            let (st, _, body) = get(p, cookie, None).await;
            assert_eq!((st, body.as_str()), (403, "Forbidden"), "{p} {cookie:?}");
        }
    }
    for p in ["/_medforge/", "/_medforge/other", "/_MedForge/enter/x", "/%5Fmedforge/x"] {
        let (st, _, body) = get(p, Some(&pass), None).await;
        assert_eq!(st, 404, "{p}: {body}");
    }

    // Killed: 502 or 404, never a hang; then stopped for good: 404.
    docker(&["kill", &format!("mf-session-{slug}")]);
    let started = Instant::now();
    let (st, _, _) = get("/", Some(&pass), None).await;
    assert!(st == 502 || st == 404, "got {st}");
    assert!(started.elapsed() < Duration::from_secs(10));
    s.wait_status(&path, &owner, "error").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while get("/", Some(&pass), None).await.0 != 404 {
        assert!(Instant::now() < deadline, "the gate kept an over session");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(c);
    s.stop().await;
}

/// The production Caddyfile adapts with Caddy 2.11 (its DNS provider
/// swapped for Caddy's internal issuer: the stock binary has no DNS
/// modules) and routes session hosts through the same session route.
#[test]
fn the_production_caddyfile_is_valid() {
    let bin = std::env::var("MEDFORGE_TEST_CADDY")
        .unwrap_or_else(|_| panic!("MEDFORGE_TEST_CADDY is not set: run scripts/test.sh, which fetches Caddy 2.11.7"));
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/caddy");
    let production = std::fs::read_to_string(format!("{infra}/Caddyfile")).expect("Caddyfile");
    assert!(production.contains("dns cloudflare"), "the DNS challenge is configured");
    let checked = production.replace("dns cloudflare {env.CLOUDFLARE_API_TOKEN}", "issuer internal");
    std::fs::write(dir.path().join("Caddyfile"), checked).expect("write");
    std::fs::copy(format!("{infra}/session-route.caddy"), dir.path().join("session-route.caddy")).expect("copy");
    let out = Command::new(&bin)
        .args(["adapt", "--config", "Caddyfile"])
        .current_dir(dir.path())
        .env("MEDFORGE_DOMAIN", "medforge.example.org")
        .env("MEDFORGE_SESSIONS_DOMAIN", "medforge-sessions.example.org")
        .env("ACME_EMAIL", "admin@example.org")
        .output()
        .expect("caddy adapt");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json = String::from_utf8_lossy(&out.stdout);
    for want in
        ["*.external.medforge-sessions.example.org", "session-proxy", "X-Upstream", "medforge:8080", "_medforge"]
    {
        assert!(json.contains(want), "{want} missing from {json}");
    }
}

/// WebSocket upgrades through Caddy's route: tunnelled both ways, kept
/// while idle, and gone once the session is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_are_tunnelled_through_caddy() {
    use tokio::io::AsyncReadExt;
    let image = common::test_env("MEDFORGE_TEST_WS_PACK_IMAGE");
    let (s, c) = server_behind_caddy(Some(image)).await;
    let (owner, _) = s.signup("ws-caddy@example.org").await;
    let (path, session) = s.start_session(&owner).await;
    let front = through(&s, &c, session["slug"].as_str().expect("slug"));
    let pass = front.enter(&owner).await;

    let mut tunnel = common::open_tunnel(&format!("127.0.0.1:{}", c.port), &front.host, &pass).await;
    for i in 0..20 {
        assert_eq!(common::echo(&mut tunnel, &format!("frame-{i}")).await.0, format!("frame-{i}"));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(common::echo(&mut tunnel, "still here").await.0, "still here");
    // Past Caddy, straight to the server, an upgrade gets the built-in
    // proxy's answer: a login cookie is no pass, and no pass no tunnel (a
    // WebSocket cannot follow the handshake's redirect: 401).
    let direct = Hosted { base: s.base.clone(), ..front.clone() };
    for cookie in [None, Some(owner.as_str())] {
        let r = direct
            .request(reqwest::Method::GET, "/stable/socket", cookie)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .send()
            .await
            .expect("upgrade");
        assert_eq!(r.status(), 401, "{cookie:?}");
    }

    let (st, _, _) = s.post(&format!("{path}/stop"), Some(&owner), None).await;
    assert_eq!(st, 202);
    let mut buf = [0u8; 16];
    let end = tokio::time::timeout(Duration::from_secs(15), tunnel.read(&mut buf)).await.expect("the tunnel ended");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    drop(c);
    s.stop().await;
}

/// Behind Caddy too, an open tunnel ends with the right that let it in
/// (a logout, a password change, a demotion): Caddy hands upgrades to
/// MedForge's own tunnel, which can close one (docs/decisions.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_through_caddy_close_when_what_let_them_in_is_revoked() {
    let image = common::test_env("MEDFORGE_TEST_WS_PACK_IMAGE");
    let (s, c) = server_behind_caddy(Some(image)).await;
    let owner = s.signup(routing::REVOKED_OWNER).await.0;
    let (_, session) = s.start_session(&owner).await;
    let front = through(&s, &c, session["slug"].as_str().expect("slug"));
    routing::tunnels_close_when_revoked(&s, &front, &owner).await;
    drop(c);
    s.stop().await;
}

/// 100 MB each way through Caddy and its route: neither Caddy nor the
/// server grows with the bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_caddy_with_flat_memory() {
    let (s, c) = server_behind_caddy(None).await;
    let (owner, _) = s.signup("bulk-caddy@example.org").await;
    let (_, session) = s.start_session(&owner).await;
    let front = through(&s, &c, session["slug"].as_str().expect("slug"));
    let pass = front.enter(&owner).await;
    let pids = [s.pid(), c.child.id()];
    routing::large_bodies_stream_with_flat_memory(&front, &pass, &common::container_of(&session), &pids).await;
    drop(c);
    s.stop().await;
}

/// 64 connections for 10 s through Caddy over two users' sessions, with
/// gate spellings mixed in: no forward_auth subrequest and no foreign host
/// reaches a container (Caddy 2.6.2 fails this: docs/testing.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_caddy_misroutes_nothing() {
    let (s, c) = server_behind_caddy(None).await;
    let mut targets = Vec::new();
    for who in ["caddy-load-a@example.org", "caddy-load-b@example.org"] {
        let (cookie, _) = s.signup(who).await;
        let (_, session) = s.start_session(&cookie).await;
        let slug = session["slug"].as_str().expect("slug").to_owned();
        let front = through(&s, &c, &slug);
        let pass = front.enter(&cookie).await;
        targets.push(routing::Target { front, cookie: pass, container: common::container_of(&session), slug });
    }
    routing::assert_no_misroutes_under_load(&targets, 64, 10).await;
    drop(c);
    s.stop().await;
}

/// Caddy's route does what the built-in proxy does for what crosses it:
/// no MedForge cookie to or from a hostile container, and no port proxy
/// on internal hosts (the gate's answer, which Caddy hands on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_and_the_port_proxy_through_caddy() {
    let image = common::test_env("MEDFORGE_TEST_HOSTILE_PACK_IMAGE");
    let (s, c) = server_behind_caddy(Some(image)).await;
    let admin = s.admin("caddy-ports-admin@example.org").await;
    let (user, user_id) = s.signup("caddy-ports@example.org").await;
    let (_, external) = s.start_session(&user).await;
    let front = through(&s, &c, external["slug"].as_str().expect("slug"));
    let pass = front.enter(&user).await;
    routing::assert_no_medforge_cookie_crosses(&front, &pass, &user, &common::container_of(&external)).await;
    routing::assert_planted_passes_are_removed(&front, &pass).await;

    let internal = s.start_internal_session(&admin, &user_id, &user).await;
    routing::listen_on_9000(&common::container_of(&internal));
    let slug = internal["slug"].as_str().expect("slug");
    let ih = Hosted { host: format!("s-{slug}.internal.{DOMAIN}:{}", c.port), ..through(&s, &c, slug) };
    let ipass = ih.enter(&user).await;
    routing::assert_port_proxy_refused_on_internal(&ih, &ipass, &front, &pass).await;
    drop(c);
    s.stop().await;
}
