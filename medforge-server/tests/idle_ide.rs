//! What counts as using a session, measured on the real code-server pack
//! in a real browser (Chromium), through the built-in proxy: an open
//! workbench that nobody touches still sends VS Code's heartbeats, which
//! must not count; it is warned and stopped after the idle timeout (short
//! here), while one whose user types in its terminal is not.
//! docs/decisions.md, "What counts as using a session", records the rule.

mod common;

#[path = "common/browser.rs"]
mod browser_kit;

use std::time::{Duration, Instant};

use browser_kit::{Browser, chromedriver, env};
use common::{DOMAIN, Db, Options, Server};
use serde_json::Value;

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
            extra_config: "[sessions]\nidle_timeout = \"40s\"\nwarn_before = \"10s\"\nmax_lifetime = \"0\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    let admin = s.admin("idle-ide-admin@example.org").await;
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
    s.stop().await;
}
