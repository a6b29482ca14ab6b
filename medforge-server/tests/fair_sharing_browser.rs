//! Fair sharing in a real browser (Chromium) against the real server:
//! - the queue: the eighth user on seven GPUs joins from the dashboard,
//!   which shows the offer live (no reload) when a GPU frees, and starts
//!   the offered GPU's session;
//! - what counts as using a session, measured on the real code-server pack
//!   through the built-in proxy: an open workbench that nobody touches
//!   still sends VS Code's heartbeats, which must not count; it is warned
//!   and stopped after the idle timeout (short here), while one whose user
//!   types in its terminal is not. docs/decisions.md, "What counts as
//!   using a session", records the rule.

mod common;

#[path = "common/browser.rs"]
mod browser_kit;

use std::time::{Duration, Instant};

use browser_kit::{Browser, chromedriver, env};
use common::{DOMAIN, Db, Options, Server};
use medforge_telemetry_nvml::stand_in::StandInGpu;
use serde_json::Value;
use serde_json::json;

/// A counter of `/metrics` (0 when not there yet).
fn counter(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Traffic {
    requests: u64,
    uses: u64,
    automatic: u64,
    controls: u64,
}

async fn traffic(s: &Server) -> Traffic {
    let text = s.metrics_text().await;
    Traffic {
        requests: counter(&text, "medforge_proxy_client_requests_total "),
        uses: counter(&text, "medforge_proxy_client_messages_total{kind=\"use\"}"),
        automatic: counter(&text, "medforge_proxy_client_messages_total{kind=\"automatic\"}"),
        controls: counter(&text, "medforge_proxy_client_messages_total{kind=\"control\"}"),
    }
}

/// The session of `slug`, as the admin API shows it.
async fn session(s: &Server, admin: &str, slug: &str) -> Value {
    let (st, _, b) = s.get("/api/v2/admin/sessions?limit=50", Some(admin)).await;
    assert_eq!(st, 200, "{b}");
    b["data"].as_array().expect("sessions").iter().find(|x| x["slug"] == slug).cloned().expect("the session")
}

fn slug_of(ide: &str) -> String {
    ide.split("://s-").nth(1).and_then(|r| r.split('.').next()).expect("slug").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_untouched_workbench_is_stopped_and_one_typed_in_is_not() {
    let image = env("MEDFORGE_TEST_CODE_SERVER_IMAGE");
    let s = Server::start(
        Db::Sqlite,
        Options {
            image: Some(image),
            stand_in_nvml: Some((0..3).map(StandInGpu::idle).collect()),
            extra_config: "[sessions]\nidle_timeout = \"40s\"\nwarn_before = \"10s\"\nmax_lifetime = \"0\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    let admin = s.admin("idle-ide-admin@example.org").await;
    // Carol trains: her code-server has no browser open, but its GPU is busy.
    let (carol, _) = s.signup("carol-trains@example.org").await;
    let (_, carol_session) = s.start_session(&carol).await;
    let carol_slug = carol_session["slug"].as_str().expect("slug").to_owned();
    let gpu = carol_session["gpu_id"].as_u64().expect("gpu") as usize;
    let mut gpus: Vec<StandInGpu> = (0..3).map(StandInGpu::idle).collect();
    gpus[gpu] = StandInGpu::idle(gpu as u32).busy(95, 40 << 30);
    s.set_gpus(&gpus);
    let ui = format!("http://{DOMAIN}:{}", s.port());
    let driver = chromedriver().await;

    // Alice opens her IDE and leaves it alone.
    let alice = Browser::open(&driver).await;
    alice.sign_up(&ui, "alice-idle@example.org").await;
    let alice_ide = alice.start_and_open_ide(&ui, None).await;
    let alice_slug = slug_of(&alice_ide);
    // The workbench settles (extensions, file tree), then we watch what it
    // sends by itself for 25 s (alone: the counters are the server's).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = traffic(&s).await;
    tokio::time::sleep(Duration::from_secs(25)).await;
    let after = traffic(&s).await;
    let idle = Traffic {
        requests: after.requests - before.requests,
        uses: after.uses - before.uses,
        automatic: after.automatic - before.automatic,
        controls: after.controls - before.controls,
    };
    eprintln!("an untouched code-server workbench sent in 25 s: {idle:?}");
    assert!(idle.automatic > 0, "an open workbench sends heartbeats: {idle:?}");
    assert_eq!((idle.requests, idle.uses), (0, 0), "an untouched workbench sent something that counts: {idle:?}");

    // Bob opens his and types in its terminal.
    let bob = Browser::open(&driver).await;
    bob.sign_up(&ui, "bob-busy@example.org").await;
    let bob_ide = bob.start_and_open_ide(&ui, None).await;
    let bob_slug = slug_of(&bob_ide);
    bob.open_terminal().await;
    // Bob types for longer than the idle timeout; meanwhile Alice's
    // untouched workbench reaches it.
    let typing = Instant::now();
    while typing.elapsed() < Duration::from_secs(50) {
        bob.type_line("echo still here").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let stopped = loop {
        let a = session(&s, &admin, &alice_slug).await;
        if a["status"] == "stopped" {
            break a;
        }
        assert!(Instant::now() < deadline, "the untouched workbench was never stopped: {a}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(stopped["stop_reason"], "idle", "{stopped}");
    // Warned first, and only Alice.
    let (_, _, warnings) = s.get("/api/v2/admin/events?event=session.warning", Some(&admin)).await;
    let (_, _, stops) = s.get("/api/v2/admin/events?event=session.stop", Some(&admin)).await;
    let of = |list: &Value, slug: &str| -> Vec<Value> {
        list["data"].as_array().expect("events").iter().filter(|e| e["data"]["slug"] == slug).cloned().collect()
    };
    let (alice_warned, alice_stopped) = (of(&warnings, &alice_slug), of(&stops, &alice_slug));
    assert_eq!((alice_warned.len(), alice_stopped.len()), (1, 1), "{warnings} {stops}");
    assert!(alice_warned[0]["created_at"].as_str() < alice_stopped[0]["created_at"].as_str());
    assert!(of(&warnings, &bob_slug).is_empty(), "the typing user was warned: {warnings}");
    let b = session(&s, &admin, &bob_slug).await;
    assert_eq!((b["status"].as_str(), b["warning"].is_null()), (Some("running"), true), "{b}");
    // Carol's busy GPU kept hers, no browser open, for longer than the idle timeout.
    assert!(of(&warnings, &carol_slug).is_empty(), "the training session was warned: {warnings}");
    let c = session(&s, &admin, &carol_slug).await;
    assert_eq!(c["status"], "running", "{c}");
    s.stop().await;
}

/// The text of the first element matching `css`, once there is one, read
/// in one script (the dashboard swaps its sessions section while it
/// waits: an element found first and read later may have gone stale).
async fn text_when(b: &Browser, css: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let found = b
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(css)],
            )
            .await
            .expect("read the page");
        if let Some(text) = found.as_str() {
            return text.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        assert!(Instant::now() < deadline, "nothing matches {css} at {}", b.url().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eighth_user_sees_the_offer_live_and_starts_the_offered_gpu() {
    let s = Server::start(Db::Sqlite, Options { gpus: (0..7).collect(), ..Options::default() }).await;
    let ui = format!("http://{DOMAIN}:{}", s.port());
    let mut holders = Vec::new();
    for i in 0..7 {
        let (cookie, _) = s.signup(&format!("seat{i}@example.org")).await;
        let (path, session) = s.start_session(&cookie).await;
        holders.push((cookie, path, session));
    }
    let driver = chromedriver().await;
    let eighth = Browser::open(&driver).await;
    eighth.sign_up(&ui, "eighth-browser@example.org").await;
    eighth.goto(&format!("{ui}/")).await;
    assert!(eighth.text("[data-testid=gpu-availability]").await.starts_with("0 of 7 GPUs free"));
    eighth.click("[data-testid=join-queue]").await;
    let text = text_when(&eighth, "[data-testid=queue-status][data-state=waiting]", Duration::from_secs(10)).await;
    assert!(text.contains("number 1 of 1"), "{text}");
    assert!(text.contains("If the running sessions run to their time limits"), "an honest estimate: {text}");
    eighth.assert_clean("the dashboard while queued").await;
    eighth.screenshots("queue-waiting").await;
    // The page must not reload: a mark on the window survives only a live
    // update. Notifications are granted (a stand-in records them).
    eighth
        .client
        .execute(
            "window.__mark = 'no reload'; window.__notified = [];
             window.Notification = function (title, options) { window.__notified.push(options.body); };
             window.Notification.permission = 'granted'; return true;",
            vec![],
        )
        .await
        .expect("mark the page");

    // A session stops: the offer shows up on the eighth's dashboard by itself.
    let (cookie, path, freed) = &holders[4];
    s.post(&format!("{path}/stop"), Some(cookie), None).await;
    s.wait_status(path, cookie, "stopped").await;
    let freed_at = Instant::now();
    let text = text_when(&eighth, "[data-testid=queue-status][data-state=offered]", Duration::from_secs(10)).await;
    let shown = freed_at.elapsed();
    eprintln!("the offer was on the eighth user's dashboard {shown:?} after the GPU was freed");
    assert!(shown < Duration::from_secs(5), "{shown:?}");
    assert!(text.contains("A GPU is free for you"), "{text}");
    let state = eighth.client.execute("return [window.__mark, window.__notified];", vec![]).await.expect("state");
    assert_eq!(state[0], json!("no reload"), "the dashboard reloaded");
    let notified = state[1].as_array().cloned().unwrap_or_default();
    assert!(
        notified.len() == 1 && notified[0].as_str().is_some_and(|b| b.contains("A GPU is free for you")),
        "one browser notification: {notified:?}"
    );
    eighth.assert_clean("the dashboard with an offer").await;
    eighth.screenshots("queue-offered").await;

    // Starting takes the offered GPU: the progress page, then the session's host.
    eighth.click("[data-testid=claim-gpu]").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !browser_kit::on_session_host(&eighth.url().await) {
        assert!(Instant::now() < deadline, "the offered session never opened: {}", eighth.url().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        eighth.goto(&format!("{ui}/")).await;
        let status = eighth.text("[data-testid=session-row] [data-testid=session-status]").await;
        if status == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "the offered session never ran: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let gpu = eighth.text("[data-testid=session-row] td[data-label=GPU]").await;
    assert_eq!(gpu, freed["gpu_id"].to_string(), "the session runs on the GPU that was kept for it");
    assert!(eighth.client.find(fantoccini::Locator::Css("[data-testid=queue-status]")).await.is_err());
    s.stop().await;
}
