//! Fair sharing through the real server: the wait queue (eight users on
//! seven GPUs, on SQLite and on MariaDB), and the idle and lifetime limits
//! with their warnings and extensions (short durations in the config; the
//! rules themselves are unit-tested on a manual clock in
//! `medforge_core::limits`).

mod common;

use std::time::{Duration, Instant};

use common::{Db, Options, Server, eventually};
use medforge_telemetry_nvml::stand_in::StandInGpu;
use serde_json::Value;

/// The events of one kind about `user_id`, oldest first.
async fn events(s: &Server, admin: &str, event: &str, user_id: &str) -> Vec<Value> {
    let (st, _, b) = s.get(&format!("/api/v2/admin/events?event={event}&user_id={user_id}"), Some(admin)).await;
    assert_eq!(st, 200, "{b}");
    let mut items = b["data"].as_array().cloned().unwrap_or_default();
    items.reverse();
    items
}

async fn queue_of(s: &Server, cookie: &str) -> (u16, Value) {
    let (st, _, b) = s.get("/api/v2/external/queue", Some(cookie)).await;
    (st, b)
}

async fn eight_users_share_seven_gpus(db: Db) {
    let s = Server::start(
        db,
        Options {
            gpus: (0..7).collect(),
            extra_config: "[queue]\nclaim_timeout = \"4s\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    let admin = s.admin("queue-admin@example.org").await;
    let mut holders = Vec::new();
    for i in 0..7 {
        let (cookie, _) = s.signup(&format!("holder{i}@example.org")).await;
        let (path, session) = s.start_session(&cookie).await;
        holders.push((cookie, path, session));
    }
    let (eighth, eighth_id) = s.signup("eighth@example.org").await;
    let (ninth, ninth_id) = s.signup("ninth@example.org").await;
    let (tenth, _) = s.signup("tenth@example.org").await;
    let (st, _, b) = s.post("/api/v2/external/sessions", Some(&eighth), None).await;
    assert_eq!((st, b["detail"].as_str()), (409, Some("No GPUs available.")), "{b}");
    let (st, _, b) = s.post("/api/v2/external/queue", Some(&eighth), Some(serde_json::json!({}))).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!((b["data"]["position"].as_u64(), b["data"]["state"].as_str()), (Some(1), Some("waiting")), "{b}");
    // Every session has a lifetime, so the estimate is honest: the first end.
    assert!(b["data"]["estimate"].is_string(), "{b}");
    let (st, _, b) = s.post("/api/v2/external/queue", Some(&eighth), None).await;
    assert_eq!((st, b["detail"].as_str()), (409, Some("You are already in the queue for this kind of session.")));
    let (st, _, b) = s.post("/api/v2/external/queue", Some(&ninth), None).await;
    assert_eq!((st, b["data"]["position"].as_u64()), (201, Some(2)), "{b}");
    let (st, _, b) = s.post("/api/v2/external/queue", Some(&tenth), None).await;
    assert_eq!((st, b["data"]["position"].as_u64()), (201, Some(3)), "{b}");
    let (st, _, b) = s.get("/api/v2/admin/queue", Some(&admin)).await;
    assert_eq!((st, b["data"].as_array().map(Vec::len)), (200, Some(3)), "{b}");
    assert_eq!(s.get("/api/v2/admin/queue", Some(&eighth)).await.0, 403);

    // Twenty others, signed up before the GPU frees.
    let mut others = Vec::new();
    for i in 0..20 {
        others.push(s.signup(&format!("other{i}@example.org")).await.0);
    }

    // One session stops: its GPU is offered to the eighth.
    let (cookie, path, session) = &holders[2];
    let freed_gpu = session["gpu_id"].as_u64().expect("gpu");
    let (st, _, _) = s.post(&format!("{path}/stop"), Some(cookie), None).await;
    assert_eq!(st, 202);
    s.wait_status(path, cookie, "stopped").await;
    let freed = Instant::now();
    let offer = eventually("the eighth is offered the GPU", Duration::from_secs(10), || async {
        let (st, b) = queue_of(&s, &eighth).await;
        if st == 200 && b["data"]["state"] == "offered" { Ok(b["data"].clone()) } else { Err(format!("{st} {b}")) }
    })
    .await;
    let waited = freed.elapsed();
    assert!(waited < Duration::from_secs(2), "offered {waited:?} after the GPU was freed");
    assert!(offer["offered_until"].is_string() && offer["position"].is_null(), "{offer}");

    // During the claim window, twenty concurrent creates by others are all refused.
    let tasks: Vec<_> = others
        .iter()
        .map(|cookie| {
            let (http, url, cookie) = (s.http.clone(), s.url("/api/v2/external/sessions"), cookie.clone());
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .header("cookie", cookie)
                    .header("content-type", "application/json")
                    .send()
                    .await
                    .expect("create");
                common::read(r).await
            })
        })
        .collect();
    for t in tasks {
        let (st, _, b) = t.await.expect("task");
        assert_eq!((st, b["detail"].as_str()), (409, Some("No GPUs available.")), "{b}");
    }
    let (_, _, b) = s.get("/api/v2/admin/gpus", Some(&admin)).await;
    let held = b["data"].as_array().expect("gpus").iter().find(|g| g["id"] == freed_gpu).cloned().expect("gpu");
    assert_eq!(held["session_id"], offer["session_id"], "the board shows the reservation: {held}");

    // The eighth's create takes the reserved GPU.
    let (st, _, b) = s.post("/api/v2/external/sessions", Some(&eighth), None).await;
    assert_eq!(st, 201, "{b}");
    let claimed = &b["data"]["session"];
    assert_eq!((claimed["gpu_id"].as_u64(), &claimed["id"]), (Some(freed_gpu), &offer["session_id"]), "{b}");
    let claimed_path = format!("/api/v2/external/sessions/{}", claimed["id"].as_str().expect("id"));
    let running = s.wait_status(&claimed_path, &eighth, "running").await;
    assert!(running["expires_at"].is_string(), "{running}");
    assert_eq!(queue_of(&s, &eighth).await.0, 404, "the entry is met");
    let (_, b) = queue_of(&s, &ninth).await;
    assert_eq!(b["data"]["position"].as_u64(), Some(1), "the ninth moved up: {b}");

    // Another stop: the ninth is offered it, does not claim, and it passes on.
    let (cookie, path, _) = &holders[5];
    s.post(&format!("{path}/stop"), Some(cookie), None).await;
    eventually("the ninth is offered", Duration::from_secs(15), || async {
        let (st, b) = queue_of(&s, &ninth).await;
        if b["data"]["state"] == "offered" { Ok(()) } else { Err(format!("{st} {b}")) }
    })
    .await;
    eventually("the offer lapses and passes to the tenth", Duration::from_secs(15), || async {
        let (gone, _) = queue_of(&s, &ninth).await;
        let (_, b) = queue_of(&s, &tenth).await;
        if gone == 404 && b["data"]["state"] == "offered" { Ok(()) } else { Err(format!("{gone} {b}")) }
    })
    .await;

    // The record: join, offer, claim for the eighth; join, offer, expire for the ninth.
    let names = |v: Vec<Value>| v.into_iter().map(|e| e["event"].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>();
    for (user, kinds) in [
        (&eighth_id, ["queue.join", "queue.offer", "queue.claim"]),
        (&ninth_id, ["queue.join", "queue.offer", "queue.expire"]),
    ] {
        for kind in kinds {
            let found = eventually(kind, Duration::from_secs(5), || async {
                let e = events(&s, &admin, kind, user).await;
                if e.is_empty() { Err(format!("no {kind}")) } else { Ok(e) }
            })
            .await;
            assert_eq!(names(found.clone()), vec![kind.to_owned()], "{found:?}");
        }
    }
    let (st, _, b) = s.get(&format!("/api/v2/admin/events?user_id={ninth_id}"), Some(&admin)).await;
    assert_eq!(st, 200);
    assert!(b["data"].as_array().is_some_and(|a| a.iter().any(|e| e["event"] == "queue.expire")), "{b}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_users_share_seven_gpus_on_sqlite() {
    eight_users_share_seven_gpus(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_users_share_seven_gpus_on_mariadb() {
    eight_users_share_seven_gpus(Db::MariaDb).await;
}

/// The stop of `path`, as the session list shows it once it ended.
async fn ended(s: &Server, path: &str, cookie: &str, within: Duration) -> Value {
    eventually("the session ends", within, || async {
        let (_, _, b) = s.get(path, Some(cookie)).await;
        if b["data"]["status"] == "stopped" { Ok(b["data"].clone()) } else { Err(format!("{b}")) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_sessions_are_warned_then_stopped_unless_used_or_their_gpu_is_busy() {
    let s = Server::start(
        Db::Sqlite,
        Options {
            stand_in_nvml: Some((0..3).map(StandInGpu::idle).collect()),
            extra_config: "[sessions]\nidle_timeout = \"8s\"\nwarn_before = \"4s\"\nmax_lifetime = \"0\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    let admin = s.admin("idle-admin@example.org").await;
    let (idle, idle_id) = s.signup("idle@example.org").await;
    let (typing, _) = s.signup("typing@example.org").await;
    let (training, _) = s.signup("training@example.org").await;
    let (idle_path, idle_session) = s.start_session(&idle).await;
    let (typing_path, typing_session) = s.start_session(&typing).await;
    let (training_path, training_session) = s.start_session(&training).await;
    assert!(idle_session["expires_at"].is_null(), "max_lifetime = \"0\": no lifetime");
    let (typing_host, pass) = s.entered(&typing_session, &typing).await;
    let gpu = training_session["gpu_id"].as_u64().expect("gpu") as usize;
    let mut gpus: Vec<StandInGpu> = (0..3).map(StandInGpu::idle).collect();
    gpus[gpu] = StandInGpu::idle(gpu as u32).busy(90, 1 << 30);
    s.set_gpus(&gpus);

    // The one nobody uses is warned, with when it stops.
    let warned = eventually("the idle session is warned", Duration::from_secs(12), || async {
        let (_, _, b) = s.get(&idle_path, Some(&idle)).await;
        if b["data"]["warning"]["kind"] == "idle" { Ok(b["data"].clone()) } else { Err(format!("{b}")) }
    })
    .await;
    assert!(warned["warning"]["stops_at"].is_string(), "{warned}");
    // Meanwhile the typing user uses theirs through the proxy.
    let started = Instant::now();
    let mut stopped_idle = None;
    while started.elapsed() < Duration::from_secs(14) {
        let (st, _, _, _) = typing_host.get("/", Some(&pass), &[]).await;
        assert_eq!(st, 200);
        if stopped_idle.is_none() {
            let (_, _, b) = s.get(&idle_path, Some(&idle)).await;
            if b["data"]["status"] == "stopped" {
                stopped_idle = Some(b["data"].clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let stopped = match stopped_idle {
        Some(v) => v,
        None => ended(&s, &idle_path, &idle, Duration::from_secs(10)).await,
    };
    assert_eq!(stopped["stop_reason"], "idle", "{stopped}");
    for (path, cookie, who) in [(&typing_path, &typing, "typing"), (&training_path, &training, "training")] {
        let (_, _, b) = s.get(path, Some(cookie)).await;
        assert_eq!(b["data"]["status"], "running", "the {who} session was stopped: {b}");
        assert!(b["data"]["warning"].is_null(), "the {who} session was warned: {b}");
    }
    // The warning came first; the stop left its snapshot and freed its GPU.
    let warnings = events(&s, &admin, "session.warning", &idle_id).await;
    let stops = events(&s, &admin, "session.stop", &idle_id).await;
    assert_eq!((warnings.len(), stops.len()), (1, 1), "{warnings:?} {stops:?}");
    assert_eq!(stops[0]["data"]["reason"], "idle");
    assert!(warnings[0]["created_at"].as_str() < stops[0]["created_at"].as_str());
    let (_, _, b) = s.get(&format!("{idle_path}/snapshots"), Some(&idle)).await;
    let slug = idle_session["slug"].as_str().expect("slug");
    assert!(
        b["data"]
            .as_array()
            .is_some_and(|a| a.iter().any(|snap| snap["name"].as_str().is_some_and(|n| n.ends_with(slug)))),
        "{b}"
    );
    let (_, _, b) = s.get("/api/v2/admin/gpus", Some(&admin)).await;
    let held_by: Vec<_> = b["data"].as_array().expect("gpus").iter().filter_map(|g| g["session_id"].as_str()).collect();
    assert!(!held_by.contains(&idle_session["id"].as_str().expect("id")), "{b}");
    // The dashboard's list says why it ended.
    let (st, page) = {
        let r = s.http.get(s.url("/")).header("cookie", &idle).send().await.expect("dashboard");
        (r.status().as_u16(), r.text().await.expect("html"))
    };
    assert_eq!(st, 200);
    assert!(page.contains("Stopped: idle"), "{page}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lifetime_warns_extends_up_to_its_limit_then_stops() {
    let s = Server::start(
        Db::Sqlite,
        Options {
            extra_config: "[sessions]\nidle_timeout = \"0\"\nmax_lifetime = \"10s\"\nwarn_before = \"5s\"\n\
                           extend_by = \"4s\"\nmax_extensions = 1\n"
                .into(),
            ..Options::default()
        },
    )
    .await;
    let admin = s.admin("life-admin@example.org").await;
    let (user, user_id) = s.signup("life@example.org").await;
    let (path, session) = s.start_session(&user).await;
    let expires = session["expires_at"].as_str().expect("expires_at").to_owned();
    eventually("the lifetime warning", Duration::from_secs(12), || async {
        let (_, _, b) = s.get(&path, Some(&user)).await;
        if b["data"]["warning"]["kind"] == "lifetime" { Ok(()) } else { Err(format!("{b}")) }
    })
    .await;
    let (st, _, b) = s.post(&format!("{path}/extend"), Some(&user), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["extensions"], 1);
    assert!(b["data"]["expires_at"].as_str() > Some(expires.as_str()), "{b}");
    assert!(b["data"]["warning"].is_null(), "an extension takes the warning back: {b}");
    // Extended as often as it may be: the dashboard offers no more.
    let page =
        s.http.get(s.url("/")).header("cookie", &user).send().await.expect("dashboard").text().await.expect("html");
    assert!(
        page.contains("data-testid=\"session-limit\"") && !page.contains("data-testid=\"extend-session\""),
        "{page}"
    );
    let (st, _, b) = s.post(&format!("{path}/extend"), Some(&user), None).await;
    assert_eq!(
        (st, b["detail"].as_str()),
        (409, Some("This session was extended 1 times already, the most it may be.")),
        "{b}"
    );
    let (other, _) = s.signup("not-the-owner@example.org").await;
    assert_eq!(s.post(&format!("{path}/extend"), Some(&other), None).await.0, 403);
    let stopped = ended(&s, &path, &user, Duration::from_secs(20)).await;
    assert_eq!(stopped["stop_reason"], "lifetime", "{stopped}");
    // Its snapshot, its GPU free, its reason in the list.
    let (_, _, b) = s.get(&format!("{path}/snapshots"), Some(&user)).await;
    let slug = session["slug"].as_str().expect("slug");
    assert!(
        b["data"].as_array().is_some_and(|a| a.iter().any(|x| x["name"].as_str().is_some_and(|n| n.ends_with(slug)))),
        "{b}"
    );
    let (_, _, b) = s.get("/api/v2/admin/gpus", Some(&admin)).await;
    assert!(b["data"].as_array().expect("gpus").iter().all(|g| g["session_id"].is_null()), "{b}");
    let page =
        s.http.get(s.url("/")).header("cookie", &user).send().await.expect("dashboard").text().await.expect("html");
    assert!(page.contains("Stopped: lifetime reached"), "{page}");
    let warnings = events(&s, &admin, "session.warning", &user_id).await;
    assert_eq!(warnings.len(), 2, "warned before the lifetime and again before the extended one: {warnings:?}");
    assert_eq!(events(&s, &admin, "session.extend", &user_id).await.len(), 1);
    let (st, _, b) = s.post(&format!("{path}/extend"), Some(&user), None).await;
    assert_eq!((st, b["detail"].as_str()), (409, Some("Only a running session with a time limit can be extended.")));
    s.stop().await;
}

/// A webhook that records what it is sent.
async fn webhook() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offers_and_warnings_reach_the_webhook_and_extensions_wait_while_others_queue() {
    let (url, got) = webhook().await;
    let s = Server::start(
        Db::Sqlite,
        Options {
            gpus: vec![0],
            extra_config: format!(
                "[sessions]\nidle_timeout = \"0\"\nmax_lifetime = \"1h\"\nwarn_before = \"59m 57s\"\n\
                 [queue]\nextend_when_queued = false\n[notify]\nwebhook_url = \"{url}\"\n"
            ),
            ..Options::default()
        },
    )
    .await;
    let (alice, _) = s.signup("alice-hook@example.org").await;
    let (bob, _) = s.signup("bob-hook@example.org").await;
    let (path, _) = s.start_session(&alice).await;
    // Warned a few seconds in (warn_before is nearly the lifetime): the webhook hears it.
    let warning = eventually("the warning's notice", Duration::from_secs(15), || async {
        let seen = got.lock().expect("lock").clone();
        seen.into_iter().find(|n| n["event"] == "session.warning").ok_or_else(|| "none yet".to_owned())
    })
    .await;
    assert_eq!(warning["email"], "alice-hook@example.org", "{warning}");
    assert!(warning["text"].as_str().is_some_and(|t| t.contains("stops at")), "{warning}");
    // Bob waits: Alice may not extend while he does.
    let (st, _, b) = s.post("/api/v2/external/queue", Some(&bob), None).await;
    assert_eq!(st, 201, "{b}");
    let (st, _, b) = s.post(&format!("{path}/extend"), Some(&alice), None).await;
    assert_eq!(
        (st, b["detail"].as_str()),
        (409, Some("Others are waiting for a GPU, so sessions cannot be extended now; save your work."))
    );
    // Alice stops: Bob is offered the GPU, and the webhook hears that too.
    s.post(&format!("{path}/stop"), Some(&alice), None).await;
    let offer = eventually("the offer's notice", Duration::from_secs(15), || async {
        let seen = got.lock().expect("lock").clone();
        seen.into_iter().find(|n| n["event"] == "queue.offer").ok_or_else(|| "none yet".to_owned())
    })
    .await;
    assert_eq!(offer["email"], "bob-hook@example.org", "{offer}");
    assert!(offer["until"].is_string() && offer["text"].as_str().is_some_and(|t| t.contains("GPU 0")), "{offer}");
    // Bob leaves; the GPU is free for anyone again.
    let (st, _, _) = s
        .http
        .delete(s.url("/api/v2/external/queue"))
        .header("cookie", &bob)
        .header("content-type", "application/json")
        .send()
        .await
        .map(|r| (r.status().as_u16(), (), ()))
        .expect("leave");
    assert_eq!(st, 200);
    let (st, _, b) = s.post("/api/v2/external/sessions", Some(&alice), None).await;
    assert_eq!(st, 201, "{b}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fair_queue_serves_the_fewest_gpu_hours_first() {
    use medforge_core::model::{Exposure, SessionStatus, UserId};
    use medforge_core::store::{AllocationRequest, SqliteStore, Store, Transition};

    let s = Server::start(
        Db::Sqlite,
        Options { gpus: vec![0], extra_config: "[queue]\norder = \"fair\"\n".into(), ..Options::default() },
    )
    .await;
    let admin = s.admin("fair-admin@example.org").await;
    let (heavy, heavy_id) = s.signup("heavy@example.org").await;
    let (light, light_id) = s.signup("light@example.org").await;
    let (holder, _) = s.signup("holder-fair@example.org").await;
    // The heavy user held the GPU for three hours two days ago.
    let store = SqliteStore::open(&s.db_url).await.expect("the server's SQLite");
    let from = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    let to = from + time::Duration::hours(3);
    let user: UserId = heavy_id.parse().expect("user id");
    let past = store
        .allocate_session(AllocationRequest {
            user_id: user,
            exposure: Exposure::External,
            pack_id: None,
            now: from,
            expires_at: None,
        })
        .await
        .expect("allocate");
    for (a, b, at) in [
        (SessionStatus::Starting, SessionStatus::Running, from),
        (SessionStatus::Running, SessionStatus::Stopping, to),
        (SessionStatus::Stopping, SessionStatus::Stopped, to),
    ] {
        assert!(store.transition_session(past.id, Transition::new(a, b, at)).await.expect("transition"));
    }
    let (path, _) = s.start_session(&holder).await;
    // The heavy user comes first, the light one second: the light one is served first.
    let (st, _, b) = s.post("/api/v2/external/queue", Some(&heavy), None).await;
    assert_eq!((st, b["data"]["position"].as_u64()), (201, Some(1)), "{b}");
    let (st, _, b) = s.post("/api/v2/external/queue", Some(&light), None).await;
    assert_eq!((st, b["data"]["position"].as_u64()), (201, Some(1)), "fewer GPU-hours go first: {b}");
    let (_, b) = queue_of(&s, &heavy).await;
    assert_eq!(b["data"]["position"].as_u64(), Some(2), "{b}");
    let (_, _, b) = s.get("/api/v2/admin/queue", Some(&admin)).await;
    let order: Vec<_> = b["data"].as_array().expect("queue").iter().map(|e| e["user_id"].clone()).collect();
    assert_eq!(order, vec![Value::from(light_id.as_str()), Value::from(heavy_id.as_str())], "{b}");
    s.post(&format!("{path}/stop"), Some(&holder), None).await;
    eventually("the light user is offered the GPU", Duration::from_secs(15), || async {
        let (_, b) = queue_of(&s, &light).await;
        if b["data"]["state"] == "offered" { Ok(()) } else { Err(format!("{b}")) }
    })
    .await;
    let (_, b) = queue_of(&s, &heavy).await;
    assert_eq!((b["data"]["state"].as_str(), b["data"]["position"].as_u64()), (Some("waiting"), Some(1)), "{b}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_for_me_starts_the_offered_session_by_itself() {
    let s = Server::start(Db::Sqlite, Options { gpus: vec![0], ..Options::default() }).await;
    let admin = s.admin("auto-admin@example.org").await;
    let (holder, _) = s.signup("auto-holder@example.org").await;
    let (waiter, waiter_id) = s.signup("auto-waiter@example.org").await;
    let (path, _) = s.start_session(&holder).await;
    let (st, _, b) =
        s.post("/api/v2/external/queue", Some(&waiter), Some(serde_json::json!({"auto_start": true}))).await;
    assert_eq!((st, b["data"]["auto_start"].as_bool()), (201, Some(true)), "{b}");
    s.post(&format!("{path}/stop"), Some(&holder), None).await;
    let started = eventually("the waiter's session runs by itself", Duration::from_secs(30), || async {
        let (_, _, b) = s.get("/api/v2/external/sessions/current", Some(&waiter)).await;
        if b["data"]["session"]["status"] == "running" { Ok(b["data"]["session"].clone()) } else { Err(format!("{b}")) }
    })
    .await;
    assert_eq!(started["gpu_id"], 0);
    assert_eq!(queue_of(&s, &waiter).await.0, 404, "the entry is met");
    let claims = events(&s, &admin, "queue.claim", &waiter_id).await;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_eq!(claims[0]["session_id"], started["id"]);
    s.stop().await;
}

/// What a hostile session page can send at the new routes with its
/// visitor's login (same-site, so a browser would attach the login cookie):
/// every one is refused by the Origin rule, and nothing changes; the same
/// API requests without the page's Origin (a script of the user's own) work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_page_cannot_queue_leave_or_extend_for_its_visitor() {
    let s = Server::start(Db::Sqlite, Options { gpus: vec![0, 1], ..Options::default() }).await;
    let admin = s.admin("origin-admin@example.org").await;
    let (victim, victim_id) = s.signup("visitor@example.org").await;
    let (owner, _) = s.signup("page-owner@example.org").await;
    let (st, _, b) = s
        .patch(
            &format!("/api/v2/admin/users/{victim_id}"),
            Some(&admin),
            serde_json::json!({"max_concurrent_sessions": 2}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (path, session) = s.start_session(&victim).await;
    let (_, page) = s.start_session(&owner).await;
    // The hostile page's origin: the other user's session host.
    let origin = format!("http://s-{}.external.{}:{}", page["slug"].as_str().expect("slug"), common::DOMAIN, s.port());
    let id = session["id"].as_str().expect("id").to_owned();
    let send = |method: reqwest::Method, route: String, content_type: &'static str, from_page: bool| {
        let mut req =
            s.http.request(method, s.url(&route)).header("cookie", &victim).header("content-type", content_type);
        if from_page {
            req = req.header("origin", &origin);
        }
        let body = if content_type.contains("json") { "{}" } else { "exposure=external" };
        async move { req.body(body).send().await.expect("request").status().as_u16() }
    };
    let json = "application/json";
    let form = "application/x-www-form-urlencoded";
    let extend = format!("/api/v2/external/sessions/{id}/extend");
    for (method, route, ct) in [
        (reqwest::Method::POST, "/api/v2/external/queue".to_owned(), json),
        (reqwest::Method::POST, extend.clone(), json),
        (reqwest::Method::POST, "/queue".to_owned(), form),
        (reqwest::Method::POST, format!("/sessions/{id}/extend"), form),
    ] {
        assert_eq!(send(method.clone(), route.clone(), ct, true).await, 403, "{method} {route} from a session page");
    }
    assert_eq!(queue_of(&s, &victim).await.0, 404, "nothing was queued");
    let (_, _, b) = s.get(&path, Some(&victim)).await;
    assert_eq!(b["data"]["extensions"], 0, "nothing was extended: {b}");
    // The user's own script may: join, then the page cannot make them leave.
    assert_eq!(send(reqwest::Method::POST, "/api/v2/external/queue".to_owned(), json, false).await, 201);
    for (route, ct) in [("/api/v2/external/queue", json), ("/queue/leave", form)] {
        let method = if ct == json { reqwest::Method::DELETE } else { reqwest::Method::POST };
        assert_eq!(send(method, route.to_owned(), ct, true).await, 403, "{route} from a session page");
    }
    assert_eq!(queue_of(&s, &victim).await.0, 200, "still queued");
    assert_eq!(send(reqwest::Method::DELETE, "/api/v2/external/queue".to_owned(), json, false).await, 200);
    assert_eq!(send(reqwest::Method::POST, extend, json, false).await, 200);
    s.stop().await;
}
