//! The built-in session proxy (routing = "builtin"): the routing matrix
//! (who gets which session host, with which pass, over which path) through
//! `medforge serve` itself, against real session containers of the test
//! pack.

mod common;

use std::time::{Duration, Instant};

use common::{DOMAIN, Db, Options, Server, routing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routing_matrix_through_the_builtin_proxy() {
    let s = Server::start(Db::Sqlite, Options::default()).await;
    routing::routing_matrix(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_session_is_not_found() {
    let s = Server::start(Db::Sqlite, Options::default()).await;
    let (owner, _) = s.signup("stops@example.org").await;
    let (path, session) = s.start_session(&owner).await;
    let (h, pass) = s.entered(&session, &owner).await;
    assert_eq!(h.get("/", Some(&pass), &[]).await.0, 200);
    let (st, _, _) = s.post(&format!("{path}/stop"), Some(&owner), None).await;
    assert_eq!(st, 202);
    // Refused from the stop's answer on, before the container is gone: the
    // pass went with the session.
    let (st, _, _, body) = h.get("/", Some(&pass), &[]).await;
    assert_eq!(st, 302, "{body}");
    s.stop().await;
}

/// Upgrades are tunnelled both ways, idle tunnels stay open, and a stop
/// closes them at once (before the container is even gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_are_tunnelled_kept_while_idle_and_closed_on_stop() {
    use tokio::io::AsyncReadExt;
    let image = common::test_env("MEDFORGE_TEST_WS_PACK_IMAGE");
    let s = Server::start(Db::Sqlite, Options { image: Some(image), ..Options::default() }).await;
    let (owner, _) = s.signup("tunnel@example.org").await;
    let (other, _) = s.signup("nottunnel@example.org").await;
    let (path, session) = s.start_session(&owner).await;
    let (h, pass) = s.entered(&session, &owner).await;
    let host = h.host.clone();

    let mut tunnel = common::open_tunnel(s.base.trim_start_matches("http://"), &host, &pass).await;
    for i in 0..20 {
        assert_eq!(common::echo(&mut tunnel, &format!("frame-{i}")).await.0, format!("frame-{i}"));
    }
    // Idle for a while: the proxy does not cut it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(common::echo(&mut tunnel, "still here").await.0, "still here");

    // An upgrade without a pass is refused like any request (no redirect
    // for a WebSocket), and another user gets no pass.
    let (st, _, _, _) = h.get("/", Some(&other), &[("upgrade", "websocket"), ("connection", "Upgrade")]).await;
    assert_eq!(st, 401);
    assert_eq!(h.try_enter(&other).await.expect_err("not theirs").0, 403);

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
    let (front, pass) = s.entered(&session, &owner).await;
    routing::large_bodies_stream_with_flat_memory(&front, &pass, &common::container_of(&session), &[s.pid()]).await;
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
        let (front, pass) = s.entered(&session, &cookie).await;
        targets.push(routing::Target { front, cookie: pass, container: common::container_of(&session), slug });
    }
    routing::assert_no_misroutes_under_load(&targets, 64, 10).await;
    s.stop().await;
}

/// An open tunnel ends with the right that let it in: its login's logout,
/// its user's password change, and an admin's demotion (the admin had a
/// terminal open in someone else's session). Others' tunnels stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_close_when_what_let_them_in_is_revoked() {
    let image = common::test_env("MEDFORGE_TEST_WS_PACK_IMAGE");
    let s = Server::start(Db::Sqlite, Options { image: Some(image), ..Options::default() }).await;
    let owner = s.signup(routing::REVOKED_OWNER).await.0;
    let (_, session) = s.start_session(&owner).await;
    let (h, _) = s.entered(&session, &owner).await;
    routing::tunnels_close_when_revoked(&s, &h, &owner).await;
    s.stop().await;
}

/// An internal session's host refuses code-server's port proxy, with a
/// real listener on the port in the container (the pack also turns the
/// proxy off: tests/browser.rs runs the real one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_hosts_refuse_the_port_proxy() {
    let s = Server::start(Db::Sqlite, Options::default()).await;
    let admin = s.admin("ports-admin@example.org").await;
    let (user, user_id) = s.signup("ports@example.org").await;
    let internal = s.start_internal_session(&admin, &user_id, &user).await;
    routing::listen_on_9000(&common::container_of(&internal));
    let ih = s.hosted(format!("s-{}.internal.{DOMAIN}:{}", internal["slug"].as_str().expect("slug"), s.port()));
    let ipass = ih.enter(&user).await;
    let (_, external) = s.start_session(&user).await;
    let (eh, epass) = s.entered(&external, &user).await;
    routing::assert_port_proxy_refused_on_internal(&ih, &ipass, &eh, &epass).await;
    s.stop().await;
}

/// What a hostile container sends back cannot set MedForge's cookies, and
/// what the browser sends never gives it one (by Set-Cookie and by
/// Cookie, however spelt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_neither_sees_nor_sets_medforge_cookies() {
    let image = common::test_env("MEDFORGE_TEST_HOSTILE_PACK_IMAGE");
    let s = Server::start(Db::Sqlite, Options { image: Some(image), ..Options::default() }).await;
    let (owner, _) = s.signup("tosser@example.org").await;
    let (_, session) = s.start_session(&owner).await;
    let (h, pass) = s.entered(&session, &owner).await;
    routing::assert_no_medforge_cookie_crosses(&h, &pass, &owner, &common::container_of(&session)).await;
    routing::assert_planted_passes_are_removed(&h, &pass).await;
    s.stop().await;
}

/// With `sessions_domain`, sessions live under another domain than the
/// UI: the handshake works across the two, the IDE links point there, and
/// the old session names under the UI's domain are no session hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_under_their_own_domain() {
    const SESSIONS: &str = "medforge-sessions.localhost";
    let s = Server::start(Db::Sqlite, Options { sessions_domain: Some(SESSIONS), ..Options::default() }).await;
    let (owner, _) = s.signup("elsewhere@example.org").await;
    let (_, session) = s.start_session(&owner).await;
    let slug = session["slug"].as_str().expect("slug").to_owned();
    let h = s.hosted(format!("s-{slug}.external.{SESSIONS}:{}", s.port()));
    let (st, _, way_in, _) = h.get("/x", None, &[]).await;
    assert_eq!(st, 302);
    assert!(
        way_in.starts_with(&format!(
            "http://{DOMAIN}:{}/sessions/enter?host=s%2D{slug}%2Eexternal%2Emedforge%2Dsessions",
            s.port()
        )),
        "{way_in}"
    );
    let pass = h.enter(&owner).await;
    let (st, _, _, body) = h.get("/", Some(&pass), &[]).await;
    assert_eq!((st, body.as_str()), (200, "medforge test pack\n"));
    // The dashboard's IDE link is on the sessions domain.
    let (_, _, dashboard) = s.get("/", Some(&owner)).await;
    let dashboard = dashboard.as_str().unwrap_or_default().to_owned();
    assert!(dashboard.contains(&format!("http://s-{slug}.external.{SESSIONS}:{}/", s.port())), "{dashboard}");
    // Under the UI's domain the same name is nobody's session: the
    // control plane answers it as any other host of its own (the dashboard
    // wants a sign-in), never the container.
    let old = s.hosted(format!("s-{slug}.external.{DOMAIN}:{}", s.port()));
    let (st, _, location, body) = old.get("/", Some(&pass), &[]).await;
    assert_ne!(body, "medforge test pack\n");
    assert_eq!((st, location.as_str()), (303, "/login?next=%2F"), "{body}");
    s.stop().await;
}
