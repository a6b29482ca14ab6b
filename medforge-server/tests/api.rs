//! The HTTP API of docs/api.md against the real `medforge` process on a loopback
//! port, a real dockerd, and each database backend.

mod common;

use common::{Db, Options, Server, assert_envelope, assert_problem, session_cookie};
use serde_json::json;

macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::Sqlite).await;
                }
            )+
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::MariaDb).await;
                }
            )+
        }
    };
}

on_both_databases!(
    auth_routes_envelopes_problems_and_cookies,
    sessions_routes_walk_the_lifecycle,
    the_gate_matrix,
    guards_origin_rate_limit_body_size_and_unknown_routes,
    admin_routes_and_their_guards,
    me_can_change_email_and_password,
    admin_actions_are_on_the_record,
    signup_follows_the_policy_and_invites_work_once,
);

async fn auth_routes_envelopes_problems_and_cookies(db: Db) {
    let s = Server::start(db, Options::default()).await;
    let r = s
        .http
        .post(s.url("/api/v2/auth/signup"))
        .json(&json!({ "email": "Ada@Example.org", "password": "a long passphrase" }))
        .send()
        .await
        .expect("signup");
    assert_eq!(r.status(), 201);
    let set_cookie = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("set-cookie").to_owned();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=2592000"] {
        assert!(set_cookie.contains(attr), "{attr} missing from {set_cookie}");
    }
    assert!(!set_cookie.contains("Domain"), "host-only: no session host ever gets it: {set_cookie}");
    assert!(!set_cookie.contains("Secure"), "cookie_secure is off by default: {set_cookie}");
    let cookie = session_cookie(r.headers()).expect("cookie");
    let (_, headers, body) = common::read(r).await;
    let me = assert_envelope(&headers, &body);
    assert_eq!(me["email"], "ada@example.org");
    assert_eq!((me["role"].as_str(), me["can_use_internal"].as_bool()), (Some("user"), Some(false)));
    assert!(body["meta"]["limit"].is_null() && body["meta"]["has_more"].is_null());

    let (st, h, b) = s.get("/api/v2/me", Some(&cookie)).await;
    assert_eq!(st, 200);
    assert_eq!(assert_envelope(&h, &b)["user_id"], me["user_id"]);
    let (st, h, b) = s.get("/api/v2/me", None).await;
    assert_problem(st, &h, &b, 401, "/api/v2/me");
    assert_eq!(b["type"], "https://medforge.dev/problems/http/401");
    assert_eq!(b["code"], "401");
    let (st, h, b) = s.get("/api/v2/me", Some("medforge_session=forged")).await;
    assert_problem(st, &h, &b, 401, "/api/v2/me");

    // Sign-up errors.
    let signup = |body| s.post("/api/v2/auth/signup", None, Some(body));
    let (st, h, b) = signup(json!({ "email": "ADA@example.org", "password": "another passphrase" })).await;
    assert_problem(st, &h, &b, 409, "/api/v2/auth/signup");
    let (st, h, b) = signup(json!({ "email": "not-an-email", "password": "a long passphrase" })).await;
    assert_problem(st, &h, &b, 422, "/api/v2/auth/signup");
    assert_eq!(b["type"], "https://medforge.dev/problems/validation/request");
    assert_eq!(b["code"], "request_validation_failed");
    assert_eq!(b["errors"][0]["field"], "email");
    let (st, _, b) = signup(json!({ "email": "b@example.org", "password": "short" })).await;
    assert_eq!((st, b["errors"][0]["field"].as_str()), (422, Some("password")));
    let (st, _, _) =
        signup(json!({ "email": "c@example.org", "password": "a long passphrase", "role": "admin" })).await;
    assert_eq!(st, 422, "unknown fields are refused");
    let (st, _, _) = signup(json!({ "email": "d@example.org" })).await;
    assert_eq!(st, 422);

    // Log-in.
    let login =
        |pw: &str| s.post("/api/v2/auth/login", None, Some(json!({ "email": "ada@example.org", "password": pw })));
    let (st, h, b) = login("wrong passphrase").await;
    assert_problem(st, &h, &b, 401, "/api/v2/auth/login");
    assert_eq!(b["detail"], "Invalid email or password.");
    let (st, h, b) =
        s.post("/api/v2/auth/login", None, Some(json!({ "email": "nobody@example.org", "password": "x" }))).await;
    assert_eq!((st, b["detail"].as_str()), (401, Some("Invalid email or password.")), "{h:?}");
    let (st, h, b) = login("a long passphrase").await;
    assert_eq!(st, 200, "{b}");
    let second = session_cookie(&h).expect("cookie");
    assert_ne!(second, cookie, "each login gets its own token");

    // Log-out ends that login only, and clears the cookie.
    let (st, h, b) = s.post("/api/v2/auth/logout", Some(&second), None).await;
    assert_eq!((st, assert_envelope(&h, &b)["message"].as_str()), (200, Some("Signed out.")));
    let cleared = h.get("set-cookie").and_then(|v| v.to_str().ok()).expect("set-cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(s.get("/api/v2/me", Some(&second)).await.0, 401);
    assert_eq!(s.get("/api/v2/me", Some(&cookie)).await.0, 200);
    let (st, _, _) = s.post("/api/v2/auth/logout", None, None).await;
    assert_eq!(st, 200, "logging out without a login is harmless");
    s.stop().await;
}

async fn sessions_routes_walk_the_lifecycle(db: Db) {
    let s = Server::start(db, Options::default()).await;
    let (alice, _) = s.signup("alice@example.org").await;
    let (bob, _) = s.signup("bob@example.org").await;
    let base = "/api/v2/external/sessions";

    let (st, h, b) = s.post(base, None, None).await;
    assert_problem(st, &h, &b, 401, base);
    let (st, h, b) = s.post("/api/v2/internal/sessions", Some(&alice), None).await;
    assert_problem(st, &h, &b, 403, "/api/v2/internal/sessions");
    let (st, _, b) = s.post(base, Some(&alice), Some(json!({ "gpu": 3 }))).await;
    assert_eq!(st, 422, "{b}");
    let (st, _, b) = s.post(base, Some(&alice), Some(json!({ "pack_id": "not-a-uuid" }))).await;
    assert_eq!(st, 422, "{b}");
    let (st, _, b) = s.post(base, Some(&alice), Some(json!({ "pack_id": uuid::Uuid::new_v4().to_string() }))).await;
    assert_eq!(st, 404, "{b}");
    let (st, _, _) = s.post("/api/v2/public/sessions", Some(&alice), None).await;
    assert_eq!(st, 404);

    let (st, h, b) = s.post(base, Some(&alice), None).await;
    assert_eq!(st, 201, "{b}");
    let created = assert_envelope(&h, &b);
    assert_eq!(created["message"], "Session started.");
    let session = &created["session"];
    assert_eq!((session["status"].as_str(), session["exposure"].as_str()), (Some("starting"), Some("external")));
    let id = session["id"].as_str().expect("id").to_owned();
    let path = format!("{base}/{id}");
    // The progress stream follows the start until the session runs, then ends.
    let r = s.http.get(s.url(&format!("{path}/events"))).header("cookie", alice.clone()).send().await.expect("events");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    );
    let stream =
        tokio::time::timeout(std::time::Duration::from_secs(40), r.text()).await.expect("stream ended").expect("body");
    let events: Vec<serde_json::Value> = stream
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("json"))
        .collect();
    assert!(stream.contains("event: progress"), "{stream}");
    let last = events.last().expect("at least one progress event");
    assert_eq!(last["status"], "running", "{stream}");
    assert_eq!(
        last["steps"],
        json!(["gpu_allocated", "workspace_ready", "container_started", "code_server_answering"])
    );
    assert_eq!(s.get(&format!("{path}/events"), Some(&bob)).await.0, 403);
    let running = s.wait_status(&path, &alice, "running").await;
    assert!(running["container_id"].is_string() && running["started_at"].is_string(), "{running}");
    for key in [
        "id",
        "user_id",
        "exposure",
        "pack_id",
        "status",
        "container_id",
        "gpu_id",
        "slug",
        "workspace_zfs",
        "created_at",
        "started_at",
        "stopped_at",
        "error_message",
    ] {
        assert!(running.get(key).is_some(), "session field {key} missing: {running}");
    }

    // The limit of one.
    let (st, _, b) = s.post(base, Some(&alice), None).await;
    assert_eq!((st, b["detail"].as_str()), (409, Some("Concurrent session limit reached (1).")));
    // Two GPUs: bob takes the other, a third user finds none.
    let (st, _, _) = s.post(base, Some(&bob), None).await;
    assert_eq!(st, 201);
    let (carol, _) = s.signup("carol@example.org").await;
    let (st, _, b) = s.post(base, Some(&carol), None).await;
    assert_eq!((st, b["detail"].as_str()), (409, Some("No GPUs available.")));

    // Reading: owner yes, others no, wrong exposure and garbage ids 404.
    assert_eq!(s.get(&path, Some(&bob)).await.0, 403);
    assert_eq!(s.get(&path, None).await.0, 401);
    assert_eq!(s.get(&format!("/api/v2/internal/sessions/{id}"), Some(&alice)).await.0, 404);
    assert_eq!(s.get(&format!("{base}/not-a-uuid"), Some(&alice)).await.0, 404);
    assert_eq!(s.get(&format!("{base}/{}", uuid::Uuid::new_v4()), Some(&alice)).await.0, 404);

    let (st, h, b) = s.get(&format!("{base}/current"), Some(&alice)).await;
    assert_eq!(st, 200);
    assert_eq!(assert_envelope(&h, &b)["session"]["id"], id.as_str());
    let (_, _, b) = s.get(&format!("{base}/current"), Some(&carol)).await;
    assert!(b["data"]["session"].is_null());

    let (st, h, b) = s.get(&format!("{base}?limit=1"), Some(&alice)).await;
    assert_eq!(st, 200);
    let items = assert_envelope(&h, &b);
    assert_eq!(items.as_array().map(Vec::len), Some(1));
    assert_eq!((b["meta"]["limit"].as_u64(), b["meta"]["has_more"].as_bool()), (Some(1), Some(false)));
    assert!(b["meta"]["next_cursor"].is_null());
    let (_, _, b) = s.get(&format!("{base}?status=stopped,error"), Some(&alice)).await;
    assert_eq!(b["data"].as_array().map(Vec::len), Some(0));
    for bad in ["limit=0", "limit=501", "limit=x", "status=paused"] {
        let (st, h, b) = s.get(&format!("{base}?{bad}"), Some(&alice)).await;
        assert_problem(st, &h, &b, 422, base);
    }
    let (st, h, b) = s.get(&format!("{base}?cursor=!!!"), Some(&alice)).await;
    assert_problem(st, &h, &b, 400, base);
    assert_eq!(b["type"], "https://medforge.dev/problems/pagination/invalid-cursor");

    // Stop: someone else may not; the owner may; then it is terminal.
    assert_eq!(s.post(&format!("{path}/stop"), Some(&bob), None).await.0, 403);
    let (st, _, b) = s.post(&format!("{path}/stop"), Some(&alice), None).await;
    assert_eq!((st, b["data"]["message"].as_str()), (202, Some("Session stop requested.")));
    let stopped = s.wait_status(&path, &alice, "stopped").await;
    assert!(stopped["stopped_at"].is_string());
    let (st, _, b) = s.post(&format!("{path}/stop"), Some(&alice), None).await;
    assert_eq!((st, b["data"]["message"].as_str()), (202, Some("Session already terminal.")));
    let (st, _, b) = s.get(&format!("{path}/snapshots"), Some(&alice)).await;
    assert_eq!(st, 200);
    let snaps = b["data"].as_array().expect("list");
    assert_eq!(snaps.len(), 1, "{b}");
    assert!(snaps[0]["name"].as_str().is_some_and(|n| n.starts_with("stop-")), "{b}");
    assert_eq!(s.get(&format!("{path}/snapshots"), Some(&bob)).await.0, 403);
    // Carol gets the freed GPU.
    let (st, _, _) = s.post(base, Some(&carol), None).await;
    assert_eq!(st, 201);
    s.stop().await;
}

async fn gate(s: &Server, host: &str, cookie: Option<&str>) -> (u16, reqwest::header::HeaderMap) {
    gate_at(s, host, "/", cookie).await
}

/// The gate asked about `uri` on `host` (as Caddy's forward_auth sends it:
/// the Host, and the client's path as X-Forwarded-Uri).
async fn gate_at(s: &Server, host: &str, uri: &str, cookie: Option<&str>) -> (u16, reqwest::header::HeaderMap) {
    let mut req = s
        .http
        .get(s.url("/api/v2/auth/session-proxy"))
        .header("host", host)
        .header("x-upstream", "evil:1")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", uri);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.expect("gate");
    (r.status().as_u16(), r.headers().clone())
}

/// The handshake through the gate alone: `login`'s pass for `host`, or the
/// UI's status when it refuses.
async fn gate_pass(s: &Server, host: &str, login: &str) -> Result<String, u16> {
    let (st, h) = gate(s, host, None).await;
    assert_eq!(st, 302, "no pass: to the way in");
    let way_in = h.get("location").and_then(|v| v.to_str().ok()).expect("location").to_owned();
    let ui = common::Hosted { http: s.http.clone(), base: s.base.clone(), host: host.to_owned(), ui: s.base.clone() };
    let (st, back, _) = ui.ui_get(&way_in, login).await;
    if st != 303 {
        return Err(st);
    }
    let back = reqwest::Url::parse(&back).expect("url");
    let (st, h) = gate_at(s, host, &format!("{}?{}", back.path(), back.query().unwrap_or_default()), None).await;
    assert_eq!(st, 303, "the code is taken");
    let pass = h
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("medforge_pass="))
        .expect("a pass");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(pass.contains(attr), "{attr} missing from {pass}");
    }
    assert!(!pass.contains("Domain"), "host-only: {pass}");
    Ok(pass.split(';').next().expect("pair").to_owned())
}

/// The gate as Caddy's forward_auth calls it: with the session's `Host`.
/// (In built-in routing the server proxies session hosts itself and
/// refuses the gate path there: tests/proxy.rs.)
async fn the_gate_matrix(db: Db) {
    let s = Server::start(db, Options { routing: "caddy", ..Options::default() }).await;
    let (owner, _) = s.signup("owner@example.org").await;
    let (other, _) = s.signup("other@example.org").await;
    let admin = s.admin("root@example.org").await;
    let (_, _, b) = s.post("/api/v2/external/sessions", Some(&owner), None).await;
    let id = b["data"]["session"]["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v2/external/sessions/{id}");
    let session = s.wait_status(&path, &owner, "running").await;
    let slug = session["slug"].as_str().expect("slug").to_owned();
    let host = format!("s-{slug}.external.medforge.localhost");
    let upstream = format!("mf-session-{slug}:8080");

    let (st, h) = gate(&s, &host, None).await;
    assert_eq!(st, 302, "no pass: the handshake begins");
    assert!(h.get("x-upstream").is_none());
    assert_eq!(gate(&s, &host, Some(&owner)).await.0, 302, "a login cookie is no pass");
    let pass = gate_pass(&s, &host, &owner).await.expect("the owner's pass");
    let (st, h) = gate(&s, &host, Some(&pass)).await;
    assert_eq!(st, 200);
    assert_eq!(h.get("x-upstream").and_then(|v| v.to_str().ok()), Some(upstream.as_str()), "never the client's");
    let admins = gate_pass(&s, &host, &admin).await.expect("an admin's pass");
    let (st, h) = gate(&s, &host, Some(&admins)).await;
    assert_eq!((st, h.get("x-upstream").and_then(|v| v.to_str().ok())), (200, Some(upstream.as_str())));
    assert_eq!(gate_pass(&s, &host, &other).await, Err(403), "another user gets no pass");
    // Anything else than the session host the pass was made for is refused
    // as having no pass; other hosts' spellings of this one pass.
    for (variant, want) in [
        (format!("S-{}.External.MedForge.Localhost", slug.to_uppercase()), 200),
        (format!("{host}:8443"), 200),
        (format!("s-{slug}.internal.medforge.localhost"), 302),
        (format!("s-{slug}.external.evil.org"), 404),
        (format!("s-{slug}x.external.medforge.localhost"), 404),
        ("medforge.localhost".to_owned(), 404),
        ("s-aaaaaaaa.external.medforge.localhost".to_owned(), 302),
    ] {
        let (st, h) = gate(&s, &variant, Some(&pass)).await;
        assert_eq!(st, want, "{variant}");
        assert_eq!(h.get("x-upstream").is_some(), want == 200, "{variant}");
    }
    // Reserved paths and a POST without a pass get no upstream either.
    assert_eq!(gate_at(&s, &host, "/_medforge/x", Some(&pass)).await.0, 404);

    // Logout is immediate, cache or not: the passes of that login end.
    let (_, h, _) = s
        .post("/api/v2/auth/login", None, Some(json!({"email": "owner@example.org", "password": "a long passphrase"})))
        .await;
    let second = session_cookie(&h).expect("cookie");
    let second_pass = gate_pass(&s, &host, &second).await.expect("pass");
    assert_eq!(gate(&s, &host, Some(&second_pass)).await.0, 200);
    s.post("/api/v2/auth/logout", Some(&second), None).await;
    assert_eq!(gate(&s, &host, Some(&second_pass)).await.0, 302);
    assert_eq!(gate(&s, &host, Some(&pass)).await.0, 200, "the other login's pass lives on");

    // A stopped session is gone from the gate at once, and its passes too.
    s.post(&format!("{path}/stop"), Some(&owner), None).await;
    assert_eq!(gate(&s, &host, Some(&pass)).await.0, 302);
    s.wait_status(&path, &owner, "stopped").await;
    assert_eq!(gate_pass(&s, &host, &owner).await, Err(404), "no pass for a session that is over");

    // What the gate and the sessions did shows in /metrics, on the metrics'
    // own listener; the main one has no such route.
    assert_eq!(s.get("/metrics", None).await.0, 404);
    let r = s.http.get(&s.metrics).send().await.expect("metrics");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    for want in [
        "medforge_sessions{status=\"stopped\"} 1",
        "medforge_sessions{status=\"running\"} 0",
        "medforge_gpus_enabled 2",
        "medforge_gpus_in_use 0",
        "medforge_gate_decisions_total{decision=\"allow\",cache=\"miss\"}",
        "medforge_gate_decisions_total{decision=\"unauthenticated\"",
        "medforge_session_spawn_seconds_bucket{outcome=\"started\",le=\"600\"} 1",
        "medforge_http_request_duration_seconds_bucket{route=\"/api/v2/auth/session-proxy\",method=\"GET\"",
    ] {
        assert!(text.contains(want), "{want} missing from /metrics:\n{text}");
    }
    s.stop().await;
}

async fn guards_origin_rate_limit_body_size_and_unknown_routes(db: Db) {
    let s = Server::start(db, Options { auth_per_minute: 10, ..Options::default() }).await;
    // Cross-origin POSTs are refused; same-site ones pass.
    let login_from = |origin: &'static str| {
        let req = s
            .http
            .post(s.url("/api/v2/auth/login"))
            .header("origin", origin)
            .json(&json!({ "email": "x@example.org", "password": "whatever" }));
        async move { common::read(req.send().await.expect("post")).await }
    };
    let (st, h, b) = login_from("https://evil.example.org").await;
    assert_problem(st, &h, &b, 403, "/api/v2/auth/login");
    let (st, _, _) = login_from("http://medforge.localhost:8080").await;
    assert_eq!(st, 401, "the UI's origin passes the guard (and fails the login)");
    // A session host is no trusted origin, however same-site it is.
    for origin in ["http://s-aaaaaaaa.external.medforge.localhost:8080", "http://x.internal.medforge.localhost", "null"]
    {
        let (st, h, b) = login_from(origin).await;
        assert_problem(st, &h, &b, 403, "/api/v2/auth/login");
        assert_eq!(b["detail"], "Cross-origin request refused.");
    }
    // What a cross-site form (or a no-cors fetch) can send is not JSON: 415.
    for (ct, body) in [
        ("application/x-www-form-urlencoded", "email=x%40example.org&password=whatever"),
        ("text/plain", "{\"email\":\"x@example.org\",\"password\":\"whatever\"}"),
        ("multipart/form-data; boundary=b", "--b--"),
    ] {
        let r =
            s.http.post(s.url("/api/v2/auth/login")).header("content-type", ct).body(body).send().await.expect("post");
        let (st, h, b) = common::read(r).await;
        assert_problem(st, &h, &b, 415, "/api/v2/auth/login");
    }
    let r = s.http.post(s.url("/api/v2/auth/logout")).send().await.expect("post");
    assert_eq!(r.status(), 415, "a bodiless post needs the JSON type too");
    // That was attempt 1 of 10 from this address (the refused requests
    // never reached the login); 9 more, then 429.
    for _ in 0..9 {
        let (st, _, _) =
            s.post("/api/v2/auth/login", None, Some(json!({ "email": "x@example.org", "password": "no" }))).await;
        assert_eq!(st, 401);
    }
    let (st, h, b) =
        s.post("/api/v2/auth/login", None, Some(json!({ "email": "x@example.org", "password": "no" }))).await;
    assert_problem(st, &h, &b, 429, "/api/v2/auth/login");
    assert_eq!(b["type"], "https://medforge.dev/problems/rate-limit/exceeded");
    let retry: u64 =
        h.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=60).contains(&retry));
    // Not behind a trusted proxy: a client cannot name itself someone else.
    let r = s
        .http
        .post(s.url("/api/v2/auth/login"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({ "email": "x@example.org", "password": "no" }))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 429, "X-Forwarded-For from an untrusted peer is ignored");

    // A 10 MB body is 413, and the server carries on. Over raw TCP: the
    // server answers as soon as it reads the Content-Length and closes, so
    // a client still uploading may see a broken pipe instead of the answer.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = s.base.trim_start_matches("http://").to_owned();
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        let head = format!(
            "POST /api/v2/external/sessions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            10 << 20
        );
        tcp.write_all(head.as_bytes()).await.expect("head");
        let _ = tcp.write_all(&vec![b' '; 64 << 10]).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("application/problem+json") && answer.contains("\"status\":413"), "{answer}");
    }
    let (st, h, b) = s.get("/healthz", None).await;
    assert_eq!((st, assert_envelope(&h, &b)["status"].as_str()), (200, Some("ok")));

    // The OpenAPI document names every route of docs/api.md.
    let (st, _, doc) = s.get("/api/v2/openapi.json", None).await;
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    for (path, method) in [
        ("/api/v2/auth/signup", "post"),
        ("/api/v2/auth/login", "post"),
        ("/api/v2/auth/logout", "post"),
        ("/api/v2/me", "get"),
        ("/api/v2/me", "patch"),
        ("/api/v2/{exposure}/sessions", "post"),
        ("/api/v2/{exposure}/sessions", "get"),
        ("/api/v2/{exposure}/sessions/current", "get"),
        ("/api/v2/{exposure}/sessions/{id}", "get"),
        ("/api/v2/{exposure}/sessions/{id}/stop", "post"),
        ("/api/v2/{exposure}/sessions/{id}/snapshots", "get"),
        ("/api/v2/{exposure}/sessions/{id}/events", "get"),
        ("/api/v2/{exposure}/sessions/{id}/extend", "post"),
        ("/api/v2/{exposure}/queue", "post"),
        ("/api/v2/{exposure}/queue", "get"),
        ("/api/v2/{exposure}/queue", "delete"),
        ("/api/v2/admin/queue", "get"),
        ("/api/v2/admin/queue/{id}", "delete"),
        ("/api/v2/admin/users", "get"),
        ("/api/v2/admin/users", "post"),
        ("/api/v2/admin/users/{id}", "patch"),
        ("/api/v2/admin/invites", "post"),
        ("/api/v2/admin/invites", "get"),
        ("/api/v2/admin/invites/{id}", "delete"),
        ("/api/v2/admin/sessions", "get"),
        ("/api/v2/admin/sessions/{id}/stop", "post"),
        ("/api/v2/admin/gpus", "get"),
        ("/api/v2/admin/gpus/{id}", "patch"),
        ("/api/v2/admin/events", "get"),
        ("/api/v2/auth/session-proxy", "get"),
        ("/healthz", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} missing from the OpenAPI document");
    }
    assert!(doc["components"]["schemas"]["ProblemDoc"].is_object());

    let (st, h, b) = s.get("/api/v2/no/such/route", None).await;
    assert_problem(st, &h, &b, 404, "/api/v2/no/such/route");
    let r = s.http.delete(s.url("/api/v2/me")).header("content-type", "application/json").send().await.expect("delete");
    let (st, h, b) = common::read(r).await;
    assert_problem(st, &h, &b, 405, "/api/v2/me");
    let r = s
        .http
        .post(s.url("/api/v2/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await;
    let (st, h, b) = common::read(r.expect("post")).await;
    assert_problem(st, &h, &b, 422, "/api/v2/auth/login");
    s.stop().await;
}

async fn admin_routes_and_their_guards(db: Db) {
    let s = Server::start(db, Options::default()).await;
    let (user, user_id) = s.signup("member@example.org").await;
    let admin = s.admin("boss@example.org").await;
    for path in ["/api/v2/admin/users", "/api/v2/admin/sessions", "/api/v2/admin/gpus"] {
        let (st, h, b) = s.get(path, None).await;
        assert_problem(st, &h, &b, 401, path);
        let (st, h, b) = s.get(path, Some(&user)).await;
        assert_problem(st, &h, &b, 403, path);
    }

    // Users: listed newest first with their counts; patched with checks.
    let (st, h, b) = s.get("/api/v2/admin/users?limit=1", Some(&admin)).await;
    assert_eq!(st, 200);
    let page = assert_envelope(&h, &b);
    assert_eq!(page.as_array().map(Vec::len), Some(1));
    assert_eq!(page[0]["email"], "boss@example.org");
    assert_eq!(b["meta"]["has_more"], true);
    let cursor = b["meta"]["next_cursor"].as_str().expect("cursor").to_owned();
    let (_, _, b) = s.get(&format!("/api/v2/admin/users?limit=1&cursor={cursor}"), Some(&admin)).await;
    assert_eq!(b["data"][0]["user_id"], user_id.as_str());
    for key in [
        "user_id",
        "email",
        "role",
        "can_use_internal",
        "max_concurrent_sessions",
        "created_at",
        "active_session_count",
    ] {
        assert!(b["data"][0].get(key).is_some(), "{key} missing: {b}");
    }
    let patch = |body: serde_json::Value, id: &str| {
        let req = s.http.patch(s.url(&format!("/api/v2/admin/users/{id}"))).header("cookie", admin.clone()).json(&body);
        async move { common::read(req.send().await.expect("patch")).await }
    };
    let (st, _, b) = patch(json!({ "can_use_internal": true, "max_concurrent_sessions": 2 }), &user_id).await;
    assert_eq!(
        (st, b["data"]["can_use_internal"].as_bool(), b["data"]["max_concurrent_sessions"].as_u64()),
        (200, Some(true), Some(2))
    );
    let (st, _, b) = patch(json!({ "role": "owner" }), &user_id).await;
    assert_eq!((st, b["errors"][0]["field"].as_str()), (422, Some("role")));
    let (st, _, _) = patch(json!({ "max_concurrent_sessions": -1 }), &user_id).await;
    assert_eq!(st, 422);
    let (st, _, _) = patch(json!({ "password_hash": "x" }), &user_id).await;
    assert_eq!(st, 422, "unknown fields are refused");
    let (st, _, _) = patch(json!({ "role": "admin" }), &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(st, 404);
    // The entitlement took effect: the member may now start internal sessions, two at once.
    let (st, _, b) = s.post("/api/v2/internal/sessions", Some(&user), None).await;
    assert_eq!(st, 201, "{b}");
    let id = b["data"]["session"]["id"].as_str().expect("id").to_owned();
    let (st, _, _) = s.post("/api/v2/external/sessions", Some(&user), None).await;
    assert_eq!(st, 201);

    // Sessions: every user's, filterable.
    let (st, _, b) = s.get("/api/v2/admin/sessions?exposure=internal", Some(&admin)).await;
    assert_eq!(st, 200);
    assert_eq!(b["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(b["data"][0]["id"], id.as_str());
    assert_eq!(s.get("/api/v2/admin/sessions?exposure=public", Some(&admin)).await.0, 422);
    assert_eq!(s.get("/api/v2/admin/sessions", Some(&admin)).await.2["data"].as_array().map(Vec::len), Some(2));

    // GPUs: who holds what; disable one.
    let (st, _, b) = s.get("/api/v2/admin/gpus", Some(&admin)).await;
    assert_eq!(st, 200);
    let gpus = b["data"].as_array().expect("gpus");
    assert_eq!(gpus.len(), 2);
    assert!(gpus.iter().all(|g| g["user_id"] == user_id.as_str()), "{b}");
    let gpu_patch = |id: &str, body: serde_json::Value| {
        let req = s.http.patch(s.url(&format!("/api/v2/admin/gpus/{id}"))).header("cookie", admin.clone()).json(&body);
        async move { common::read(req.send().await.expect("patch")).await }
    };
    let (st, _, b) = gpu_patch("1", json!({ "enabled": false })).await;
    assert_eq!((st, b["data"]["enabled"].as_bool()), (200, Some(false)));
    assert_eq!(gpu_patch("9", json!({ "enabled": false })).await.0, 404);
    assert_eq!(gpu_patch("x", json!({ "enabled": false })).await.0, 404);
    assert_eq!(gpu_patch("0", json!({ "enabled": "no" })).await.0, 422);

    // Admins stop anyone's session.
    let (st, _, b) = s.post(&format!("/api/v2/admin/sessions/{id}/stop"), Some(&admin), None).await;
    assert_eq!((st, b["data"]["message"].as_str()), (202, Some("Session stop requested.")));
    s.wait_status(&format!("/api/v2/internal/sessions/{id}"), &user, "stopped").await;
    assert_eq!(s.post(&format!("/api/v2/admin/sessions/{id}/stop"), Some(&user), None).await.0, 403);
    assert_eq!(
        s.post(&format!("/api/v2/admin/sessions/{}/stop", uuid::Uuid::new_v4()), Some(&admin), None).await.0,
        404
    );

    // The event log: what happened, by type and user, newest first.
    assert_eq!(s.get("/api/v2/admin/events", Some(&user)).await.0, 403);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stops = loop {
        let (st, _, b) =
            s.get(&format!("/api/v2/admin/events?event=session.stop&user_id={user_id}"), Some(&admin)).await;
        assert_eq!(st, 200, "{b}");
        let items = b["data"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() || std::time::Instant::now() > deadline {
            break items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0]["data"]["reason"], "admin");
    assert_eq!(stops[0]["session_id"], id.as_str());
    let (_, _, b) = s.get("/api/v2/admin/events?event=user.signup", Some(&admin)).await;
    assert!(
        b["data"].as_array().is_some_and(|a| a.iter().all(|e| e["event"] == "user.signup") && !a.is_empty()),
        "{b}"
    );
    let (_, _, b) = s.get("/api/v2/admin/events?limit=2", Some(&admin)).await;
    assert_eq!((b["data"].as_array().map(Vec::len), b["meta"]["has_more"].as_bool()), (Some(2), Some(true)));
    assert_eq!(s.get("/api/v2/admin/events?user_id=nope", Some(&admin)).await.0, 422);
    assert_eq!(s.get("/api/v2/admin/events?event=DROP%20TABLE", Some(&admin)).await.0, 422);
    s.stop().await;
}

async fn me_can_change_email_and_password(db: Db) {
    let s = Server::start(db, Options::default()).await;
    let (cookie, _) = s.signup("old@example.org").await;
    let (other_login, _, _) = s
        .post("/api/v2/auth/login", None, Some(json!({"email": "old@example.org", "password": "a long passphrase"})))
        .await;
    assert_eq!(other_login, 200);
    let (_, h, _) = s
        .post("/api/v2/auth/login", None, Some(json!({"email": "old@example.org", "password": "a long passphrase"})))
        .await;
    let other = session_cookie(&h).expect("cookie");
    s.signup("taken@example.org").await;
    let patch = |body: serde_json::Value| {
        let req = s.http.patch(s.url("/api/v2/me")).header("cookie", cookie.clone()).json(&body);
        async move { common::read(req.send().await.expect("patch")).await }
    };
    let (st, _, _) = patch(json!({ "email": "new@example.org" })).await;
    assert_eq!(st, 422, "the current password is required");
    let (st, h, b) = patch(json!({ "email": "new@example.org", "current_password": "wrong one" })).await;
    assert_problem(st, &h, &b, 403, "/api/v2/me");
    let (st, _, _) = patch(json!({ "email": "taken@example.org", "current_password": "a long passphrase" })).await;
    assert_eq!(st, 409);
    let (st, _, b) = patch(json!({ "email": "New@Example.org", "current_password": "a long passphrase" })).await;
    assert_eq!((st, b["data"]["email"].as_str()), (200, Some("new@example.org")));
    let (st, _, _) = patch(json!({ "new_password": "short", "current_password": "a long passphrase" })).await;
    assert_eq!(st, 422);
    let (st, h, _) =
        patch(json!({ "new_password": "a brand new passphrase", "current_password": "a long passphrase" })).await;
    assert_eq!(st, 200);
    let fresh = session_cookie(&h).expect("a new cookie for this login");
    assert_eq!(s.get("/api/v2/me", Some(&other)).await.0, 401, "other logins end with a password change");
    assert_eq!(s.get("/api/v2/me", Some(&fresh)).await.0, 200);
    let login =
        |pw: &str| s.post("/api/v2/auth/login", None, Some(json!({"email": "new@example.org", "password": pw})));
    assert_eq!(login("a long passphrase").await.0, 401);
    assert_eq!(login("a brand new passphrase").await.0, 200);
    s.stop().await;
}

/// Behind a trusted proxy (`limits.trusted_proxies`, here loopback as for a
/// Caddy on the host), each client named in X-Forwarded-For has its own
/// login budget, and the events log the client, not the proxy.
#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_told_apart() {
    let s = Server::start(
        Db::Sqlite,
        Options { auth_per_minute: 2, trusted_proxies: "[\"127.0.0.1/32\"]", ..Options::default() },
    )
    .await;
    let login = |client: &'static str| {
        let req = s
            .http
            .post(s.url("/api/v2/auth/login"))
            .header("x-forwarded-for", format!("6.6.6.6, {client}"))
            .json(&json!({ "email": "x@example.org", "password": "wrong password" }));
        async move { req.send().await.expect("post").status().as_u16() }
    };
    assert_eq!((login("198.51.100.7").await, login("198.51.100.7").await), (401, 401));
    assert_eq!(login("198.51.100.7").await, 429, "the client's own budget is spent");
    assert_eq!(login("198.51.100.8").await, 401, "another client behind the same proxy is not refused");
    let admin = s.admin("boss@example.org").await;
    let (_, _, b) = s.get("/api/v2/admin/events?event=user.login_failed&limit=50", Some(&admin)).await;
    let ips: Vec<&str> =
        b["data"].as_array().expect("events").iter().filter_map(|e| e["data"]["ip"].as_str()).collect();
    assert!(ips.contains(&"198.51.100.8") && ips.contains(&"198.51.100.7"), "{b}");
    // Not the proxy, and not the left-most entry (the client's own claim).
    assert!(!ips.contains(&"127.0.0.1") && !ips.contains(&"6.6.6.6"), "{b}");
    s.stop().await;
}

/// Limits that an address-hopping client cannot dodge: one IPv6 /64 is one
/// client, and failed sign-ins to one account count from every address,
/// until even the right password is refused for the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_count_networks_and_accounts() {
    let s = Server::start(
        Db::Sqlite,
        Options { auth_per_minute: 2, trusted_proxies: "[\"127.0.0.1/32\"]", ..Options::default() },
    )
    .await;
    let login = |client: String, email: &'static str, password: &'static str| {
        let req = s
            .http
            .post(s.url("/api/v2/auth/login"))
            .header("x-forwarded-for", client)
            .json(&json!({ "email": email, "password": password }));
        async move { common::read(req.send().await.expect("post")).await }
    };
    // Two addresses of one /64: one budget of two attempts.
    assert_eq!(login("2001:db8:5:6::1".into(), "x@example.org", "nope").await.0, 401);
    assert_eq!(login("2001:db8:5:6:ffff::2".into(), "x@example.org", "nope").await.0, 401);
    assert_eq!(login("2001:db8:5:6:abcd::3".into(), "x@example.org", "nope").await.0, 429, "the same /64");
    assert_eq!(login("2001:db8:5:7::1".into(), "x@example.org", "nope").await.0, 401, "the next /64");

    // Ten failed sign-ins to one account, each from an address of its own.
    let (_, _) = s.signup("victim@example.org").await;
    for i in 0..10 {
        let (st, _, b) = login(format!("198.51.100.{}", 10 + i), "victim@example.org", "guess").await;
        assert_eq!(st, 401, "guess {i}: {b}");
    }
    let (st, h, b) = login("198.51.100.99".into(), "victim@example.org", "a long passphrase").await;
    common::assert_problem(st, &h, &b, 429, "/api/v2/auth/login");
    assert_eq!(b["detail"], "Too many failed sign-ins for this account; try again later.");
    assert!(h.get("retry-after").is_some());
    // Another account is not affected.
    s.signup("bystander@example.org").await;
    assert_eq!(login("198.51.100.98".into(), "bystander@example.org", "a long passphrase").await.0, 200);
    s.stop().await;
}

/// Every admin action is an event naming the admin, the target and the
/// change (before and after): one per kind, found by the actor filter, and
/// the event log page tells them as sentences with links.
async fn admin_actions_are_on_the_record(db: Db) {
    let s = Server::start(db, Options::default()).await;
    let (mallory, mallory_id) = s.signup("mallory@example.org").await;
    let boss = s.admin("boss@example.org").await;
    let (_, _, me) = s.get("/api/v2/me", Some(&boss)).await;
    let boss_id = me["data"]["user_id"].as_str().expect("id").to_owned();
    let user_path = format!("/api/v2/admin/users/{mallory_id}");
    for patch in [
        json!({"role": "admin"}),
        json!({"can_use_internal": true}),
        json!({"max_concurrent_sessions": 3}),
        json!({"workspace_quota_bytes": 1_073_741_824_i64}),
    ] {
        let (st, _, b) = s.patch(&user_path, Some(&boss), patch.clone()).await;
        assert_eq!(st, 200, "{patch} {b}");
    }
    let (st, _, _) = s.patch("/api/v2/admin/gpus/1", Some(&boss), json!({"enabled": false})).await;
    assert_eq!(st, 200);
    let (_, session) = s.start_session(&mallory).await;
    let session_id = session["id"].as_str().expect("id").to_owned();
    // The admin opens her session (the handshake), then stops it.
    let (h, _) = s.entered(&session, &boss).await;
    assert!(h.host.starts_with("s-"));
    let (st, _, _) = s.post(&format!("/api/v2/admin/sessions/{session_id}/stop"), Some(&boss), None).await;
    assert_eq!(st, 202);

    // Events are recorded in the background: wait for the last one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let events = loop {
        let (st, _, b) = s.get(&format!("/api/v2/admin/events?actor_id={boss_id}&limit=50"), Some(&boss)).await;
        assert_eq!(st, 200, "{b}");
        let events = b["data"].as_array().cloned().unwrap_or_default();
        if events.len() >= 7 {
            break events;
        }
        assert!(std::time::Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let find = |name: &str, field: Option<&str>| {
        events
            .iter()
            .find(|e| e["event"] == name && field.is_none_or(|f| e["data"]["changes"][0]["field"] == f))
            .unwrap_or_else(|| panic!("no {name} {field:?} in {events:?}"))
            .clone()
    };
    for (field, before, after) in [
        ("role", json!("user"), json!("admin")),
        ("can_use_internal", json!(false), json!(true)),
        ("max_concurrent_sessions", json!(1), json!(3)),
        ("workspace_quota_bytes", json!(null), json!(1_073_741_824_i64)),
    ] {
        let e = find("admin.user.change", Some(field));
        assert_eq!(
            (e["actor_id"].as_str(), e["user_id"].as_str()),
            (Some(boss_id.as_str()), Some(mallory_id.as_str()))
        );
        assert_eq!(e["data"]["changes"].as_array().map(Vec::len), Some(1), "only what changed: {e}");
        assert_eq!((&e["data"]["changes"][0]["before"], &e["data"]["changes"][0]["after"]), (&before, &after), "{e}");
    }
    let gpu = find("admin.gpu.change", None);
    assert_eq!(
        (&gpu["data"]["gpu_id"], &gpu["data"]["enabled_before"], &gpu["data"]["enabled_after"]),
        (&json!(1), &json!(true), &json!(false))
    );
    for name in ["admin.session.stop", "session.entered_by_other"] {
        let e = find(name, None);
        assert_eq!(e["user_id"].as_str(), Some(mallory_id.as_str()), "{e}");
        assert_eq!(e["session_id"].as_str(), Some(session_id.as_str()), "{e}");
        assert_eq!(e["data"]["slug"], session["slug"], "{e}");
    }
    // The owner stopping her own session, or opening it, is no admin action.
    let (st, _, b) = s.get(&format!("/api/v2/admin/events?actor_id={mallory_id}"), Some(&boss)).await;
    assert_eq!((st, b["data"].as_array().map(Vec::len)), (200, Some(0)), "{b}");

    // The event log page: sentences with links, filtered by the admin.
    let (st, _, page) = s.get("/admin/events?actor=boss%40example.org", Some(&boss)).await;
    assert_eq!(st, 200);
    let page = page.as_str().unwrap_or_default().to_owned();
    for want in [
        "<a href=\"/admin/events?actor=boss%40example%2Eorg\">boss@example.org</a> changed <a href=\"/admin/events?user=mallory%40example%2Eorg\">mallory@example.org</a>: role user → admin.",
        " disabled GPU 1.",
        &format!(
            " stopped <a href=\"/sessions/{session_id}\">s-{}</a> of ",
            session["slug"].as_str().unwrap_or_default()
        ),
        &format!(
            " opened <a href=\"/sessions/{session_id}\">s-{}</a> of ",
            session["slug"].as_str().unwrap_or_default()
        ),
    ] {
        assert!(page.contains(want), "{want} not in the event log page:\n{page}");
    }
    assert!(!page.contains("signed in"), "the actor filter keeps only the admin's own actions");
    let (st, _, _) = s.get("/admin/events?actor=nobody%40example.org", Some(&boss)).await;
    assert_eq!(st, 422, "an unknown person is a sentence, not an empty log");
    s.stop().await;
}

/// The token of an invite's sign-up link (`.../signup?invite=<token>`).
fn link_token(invite: &serde_json::Value) -> Option<String> {
    invite["link"].as_str().and_then(|l| l.split_once("invite=")).map(|(_, t)| t.to_owned())
}

/// `auth.signup` as a client meets it: the default is `invite` (a sign-up
/// without one is refused in words); an admin's invite signs up its own
/// address once, before it expires, unless revoked; `closed` refuses all,
/// invites too; `domains` takes its domains and invites; admins make
/// accounts under any policy. Each admin action is on the record.
async fn signup_follows_the_policy_and_invites_work_once(db: Db) {
    let signup_body = |email: &str, invite: Option<&str>| {
        let mut b = json!({"email": email, "password": "a long passphrase"});
        if let Some(i) = invite {
            b["invite"] = json!(i);
        }
        b
    };
    let extra = "[auth]\ninvite_valid = \"2s\"\n".to_owned();
    let s = Server::start(db, Options { signup: None, extra_config: extra, ..Options::default() }).await;
    let signup = |body: serde_json::Value| s.post("/api/v2/auth/signup", None, Some(body));
    let (st, h, b) = signup(signup_body("walk-in@example.org", None)).await;
    assert_problem(st, &h, &b, 403, "/api/v2/auth/signup");
    assert_eq!(b["detail"], "Sign-up here is by invitation: ask an admin for an invite link.");

    let boss = s.admin("boss@example.org").await;
    let (_, _, me) = s.get("/api/v2/me", Some(&boss)).await;
    let boss_id = me["data"]["user_id"].as_str().expect("id").to_owned();
    let invite = |email: &str| s.post("/api/v2/admin/invites", Some(&boss), Some(json!({"email": email})));
    let (st, h, b) = invite("new@example.org").await;
    assert_eq!(st, 201, "{b}");
    let made = assert_envelope(&h, &b);
    assert_eq!((made["email"].as_str(), made["state"].as_str()), (Some("new@example.org"), Some("open")));
    let link = made["link"].as_str().expect("the link").to_owned();
    let token = link.split_once("/signup?invite=").map(|(ui, t)| (ui.to_owned(), t.to_owned()));
    let (ui, token) = token.unwrap_or_else(|| panic!("not a sign-up link: {link}"));
    assert_eq!(ui, format!("http://{}:{}", common::DOMAIN, s.port()), "on the UI's own address");
    // The listing never shows a link again.
    let (_, _, listed) = s.get("/api/v2/admin/invites", Some(&boss)).await;
    assert_eq!(listed["data"][0]["invite_id"], made["invite_id"]);
    assert!(listed["data"][0]["link"].is_null(), "{listed}");
    // Who may invite, and whom.
    let (st, _, b) = invite("boss@example.org").await;
    assert_eq!(st, 409, "an address with an account: {b}");
    let (st, _, _) = invite("not-an-email").await;
    assert_eq!(st, 422);

    // The invite is for its own address, once.
    let (st, _, b) = signup(signup_body("someone-else@example.org", Some(&token))).await;
    assert_eq!((st, b["errors"][0]["field"].as_str()), (422, Some("email")), "{b}");
    let (st, h, b) = signup(signup_body("New@Example.org", Some(&token))).await;
    assert_eq!(st, 201, "{b}");
    let new_id = assert_envelope(&h, &b)["user_id"].as_str().expect("id").to_owned();
    let (st, _, b) = signup(signup_body("new@example.org", Some(&token))).await;
    assert_eq!(
        (st, b["detail"].as_str()),
        (403, Some("This invite link is used, revoked or expired: ask an admin for a new one."))
    );
    let (_, _, listed) = s.get("/api/v2/admin/invites", Some(&boss)).await;
    assert_eq!(
        (listed["data"][0]["state"].as_str(), listed["data"][0]["used_by"].as_str()),
        (Some("used"), Some(new_id.as_str()))
    );
    let (st, _, _) = signup(signup_body("new2@example.org", Some("made-up-token"))).await;
    assert_eq!(st, 403);

    // A revoked invite opens nothing; one revoke only.
    let (_, h, b) = invite("revoked@example.org").await;
    let revoked = assert_envelope(&h, &b);
    let revoked_token = link_token(&revoked);
    let path = format!("/api/v2/admin/invites/{}", revoked["invite_id"].as_str().expect("id"));
    let revoke = || s.http.delete(s.url(&path)).header("cookie", &boss).json(&json!({})).send();
    assert_eq!(revoke().await.expect("revoke").status(), 200);
    assert_eq!(revoke().await.expect("revoke").status(), 404);
    let (st, _, _) = signup(signup_body("revoked@example.org", revoked_token.as_deref())).await;
    assert_eq!(st, 403);
    // An expired one neither (this server's invites last 2 s).
    let (_, h, b) = invite("late@example.org").await;
    let late = link_token(&assert_envelope(&h, &b));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (st, _, b) = signup(signup_body("late@example.org", late.as_deref())).await;
    assert_eq!(st, 403, "{b}");
    let (_, _, listed) = s.get("/api/v2/admin/invites", Some(&boss)).await;
    assert_eq!(listed["data"][0]["state"], "expired");
    // Only admins invite.
    let (_, h, _) = s
        .post("/api/v2/auth/login", None, Some(json!({"email": "new@example.org", "password": "a long passphrase"})))
        .await;
    let member = session_cookie(&h).expect("the member signs in");
    let (st, _, _) = s.post("/api/v2/admin/invites", Some(&member), Some(json!({"email": "x@example.org"}))).await;
    assert_eq!(st, 403);
    // An admin makes an account whatever the policy.
    let (st, h, b) = s
        .post(
            "/api/v2/admin/users",
            Some(&boss),
            Some(json!({"email": "made@example.org", "password": "first passphrase"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let made_id = assert_envelope(&h, &b)["user_id"].as_str().expect("id").to_owned();
    let (st, _, _) = s
        .post("/api/v2/auth/login", None, Some(json!({"email": "made@example.org", "password": "first passphrase"})))
        .await;
    assert_eq!(st, 200, "the account works");
    let (st, _, _) = s
        .post(
            "/api/v2/admin/users",
            Some(&member),
            Some(json!({"email": "y@example.org", "password": "first passphrase"})),
        )
        .await;
    assert_eq!(st, 403);

    // On the record: the invites, the revoke, the account made, the signup.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let events = loop {
        let (_, _, b) = s.get(&format!("/api/v2/admin/events?actor_id={boss_id}&limit=50"), Some(&boss)).await;
        let events = b["data"].as_array().cloned().unwrap_or_default();
        if events.iter().any(|e| e["event"] == "admin.user.create") {
            break events;
        }
        assert!(std::time::Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    assert_eq!(
        (count("admin.invite.create"), count("admin.invite.revoke"), count("admin.user.create")),
        (3, 1, 1),
        "{events:?}"
    );
    let created =
        events.iter().find(|e| e["event"] == "admin.invite.create" && e["data"]["email"] == "new@example.org");
    assert!(created.is_some_and(|e| e["data"]["invite_id"] == made["invite_id"]), "{events:?}");
    let user_made = events.iter().find(|e| e["event"] == "admin.user.create").expect("made");
    assert_eq!(
        (user_made["user_id"].as_str(), user_made["data"]["role"].as_str()),
        (Some(made_id.as_str()), Some("user"))
    );
    let (_, _, b) = s.get(&format!("/api/v2/admin/events?event=user.signup&user_id={new_id}"), Some(&boss)).await;
    assert_eq!(b["data"][0]["data"]["invite_id"], made["invite_id"], "{b}");
    s.stop().await;

    // `closed`: no one, not even with an invite.
    let s = Server::start(db, Options { signup: Some("closed"), ..Options::default() }).await;
    let boss = s.admin("boss@example.org").await;
    let (_, h, b) = s.post("/api/v2/admin/invites", Some(&boss), Some(json!({"email": "in@example.org"}))).await;
    let token = link_token(&assert_envelope(&h, &b));
    for invite in [None, token.as_deref()] {
        let (st, _, b) = s.post("/api/v2/auth/signup", None, Some(signup_body("in@example.org", invite))).await;
        assert_eq!((st, b["detail"].as_str()), (403, Some("Sign-up is closed here: an admin makes the accounts.")));
    }
    s.stop().await;

    // `domains`: the listed ones, and invites for others.
    let extra = "[auth]\nsignup = \"domains\"\nallowed_email_domains = [\"lab.example.org\"]\n".to_owned();
    let s = Server::start(db, Options { signup: None, extra_config: extra, ..Options::default() }).await;
    let (st, _, b) = s.post("/api/v2/auth/signup", None, Some(signup_body("ada@lab.example.org", None))).await;
    assert_eq!(st, 201, "{b}");
    for outside in ["eve@example.org", "eve@sub.lab.example.org", "eve@lab.example.org.evil.org"] {
        let (st, _, b) = s.post("/api/v2/auth/signup", None, Some(signup_body(outside, None))).await;
        assert_eq!(st, 403, "{outside}");
        assert_eq!(
            b["detail"],
            "Sign-up here is for addresses at lab.example.org; for another address, ask an admin for an invite link."
        );
    }
    let boss = s.admin("boss@example.org").await;
    let (_, h, b) = s.post("/api/v2/admin/invites", Some(&boss), Some(json!({"email": "guest@example.org"}))).await;
    let token = link_token(&assert_envelope(&h, &b));
    let (st, _, b) =
        s.post("/api/v2/auth/signup", None, Some(signup_body("guest@example.org", token.as_deref()))).await;
    assert_eq!(st, 201, "{b}");
    s.stop().await;
}
