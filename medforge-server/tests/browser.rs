//! The whole user flow in a real browser (Chromium through ChromeDriver),
//! against the real server, real dockerd and the real code-server pack:
//! sign up, start a session from the dashboard, watch its progress, use the
//! IDE (a terminal over the proxy's WebSocket writes a file), stop, start
//! again and find the file, find the stop snapshot; another user is refused
//! at the first one's session URL. Every page of ours is checked for
//! console errors and with axe-core (labels, contrast, landmarks), and
//! screenshots at laptop and phone widths go to target/screenshots/.

mod common;

#[path = "common/browser.rs"]
mod browser_kit;

use std::time::{Duration, Instant};

use browser_kit::{Browser, chromedriver, env};
use common::{DOMAIN, Db, Options, Server};
use fantoccini::Locator;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_in_a_real_browser() {
    let image = env("MEDFORGE_TEST_CODE_SERVER_IMAGE");
    let s = Server::start(Db::Sqlite, Options { image: Some(image), ..Options::default() }).await;
    let ui = format!("http://{DOMAIN}:{}", s.port());
    let driver = chromedriver().await;
    let alice = Browser::open(&driver).await;

    alice.goto(&format!("{ui}/login")).await;
    alice.assert_axe_finds_violations().await;
    alice.assert_clean("the login page").await;
    alice.sign_up(&ui, "alice@example.org").await;
    alice.assert_clean("the dashboard").await;
    alice.screenshots("dashboard-empty").await;

    // Start: the progress page, then the IDE on its own host.
    let ide = alice.start_and_open_ide(&ui, Some("progress-starting")).await;
    assert!(ide.starts_with("http://s-") && ide.contains(&format!(".external.{DOMAIN}:")), "{ide}");
    let slug = ide.trim_start_matches("http://s-").split('.').next().expect("slug").to_owned();
    let container = format!("mf-session-{slug}");

    // A terminal in the IDE (its WebSocket goes through the proxy) writes a file.
    // The shell behind a new terminal may still be starting (bash drops
    // what was typed before it set up its terminal): type again until the
    // file is there, at most a few times.
    alice.open_terminal().await;
    let mut written = false;
    for _ in 0..4 {
        alice.type_line("echo written-in-the-browser > /workspace/proof.txt").await;
        let deadline = Instant::now() + Duration::from_secs(8);
        while !written && Instant::now() < deadline {
            let (ok, out, _) = common::docker_exec(&container, "cat /workspace/proof.txt");
            written = ok && out.trim() == "written-in-the-browser";
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if written {
            break;
        }
    }
    alice.screenshots("ide").await;
    assert!(written, "the terminal's file never appeared");

    // The dashboard shows it running; another user is refused at its URL.
    alice.goto(&format!("{ui}/")).await;
    assert_eq!(alice.text("[data-testid=session-row] [data-testid=session-status]").await, "running");
    alice.assert_clean("the dashboard with a running session").await;
    alice.screenshots("dashboard").await;
    let row = alice.wait_for("[data-testid=session-row]", Duration::from_secs(5)).await;
    let id = row.attr("data-session-id").await.expect("attr").expect("a session id");
    alice.goto(&format!("{ui}/sessions/{id}")).await;
    assert_eq!(alice.text("[data-testid=session-status]").await, "running");
    let states = alice
        .client
        .execute("return [...document.querySelectorAll('li[data-step]')].map(li => li.dataset.state);", vec![])
        .await
        .expect("steps");
    assert_eq!(states, json!(["done", "done", "done", "done"]));
    alice.assert_clean("the progress page").await;
    alice.screenshots("progress").await;
    let bob = Browser::open(&driver).await;
    bob.sign_up(&ui, "bob@example.org").await;
    bob.goto(&ide).await;
    let refused = bob.text("main h1").await;
    assert_eq!(refused, "Not your session", "bob at alice's session");
    assert!(bob.client.find(Locator::Css(".monaco-workbench")).await.is_err());
    bob.assert_clean("the refusal page").await;

    // Stop from the dashboard; start again; the file is there (in the IDE's explorer, too).
    alice.goto(&format!("{ui}/")).await;
    alice.click("[data-testid=session-row] [data-testid=stop-session]").await;
    alice.wait_dashboard_status(&ui, None, "stopped", Duration::from_secs(60)).await;
    alice.start_and_open_ide(&ui, None).await;
    alice.wait_for(".explorer-viewlet .monaco-list-row[aria-label*='proof.txt']", Duration::from_secs(30)).await;
    let again = alice.url().await;
    let slug2 = again.trim_start_matches("http://s-").split('.').next().expect("slug").to_owned();
    assert_ne!(slug2, slug, "a new session");
    let (ok, out, _) = common::docker_exec(&format!("mf-session-{slug2}"), "cat /workspace/proof.txt");
    assert!(ok && out.trim() == "written-in-the-browser", "{out}");

    // A browser that is not signed in goes to the login page and, signed
    // in, back to the session it asked for.
    let fresh = Browser::open(&driver).await;
    fresh.goto(&again).await;
    fresh.wait_for("[data-testid=login-form]", Duration::from_secs(10)).await;
    assert!(fresh.url().await.starts_with(&format!("{ui}/login?next=")), "{}", fresh.url().await);
    fresh.assert_clean("the login page with a way back").await;
    fresh.fill("#email", "alice@example.org").await;
    fresh.fill("#password", "browser passphrase").await;
    fresh.click("[data-testid=login-submit]").await;
    fresh.wait_for(".monaco-workbench", Duration::from_secs(60)).await;
    assert!(fresh.url().await.starts_with(&format!("http://s-{slug2}.")), "{}", fresh.url().await);
    fresh.client.close().await.expect("close the browser");

    // The stop snapshot is listed.
    alice.goto(&format!("{ui}/snapshots")).await;
    let first = alice.text("[data-testid=snapshot-row] code").await;
    assert!(first.starts_with("stop-") && first.ends_with(&slug), "{first}");
    alice.assert_clean("the snapshots page").await;
    alice.goto(&format!("{ui}/account")).await;
    alice.assert_clean("the account page").await;
    // Not an admin: the admin pages answer with our error page.
    alice.goto(&format!("{ui}/admin")).await;
    assert_eq!(alice.text("[data-testid=error-detail]").await, "This page is for admins.");
    alice.assert_clean("the error page").await;

    // An admin's view: the GPU board shows alice's session holding a GPU.
    s.admin("admin@example.org").await;
    let admin = Browser::open(&driver).await;
    admin.goto(&format!("{ui}/login")).await;
    admin.fill("#email", "admin@example.org").await;
    admin.fill("#password", "admin passphrase").await;
    admin.click("[data-testid=login-submit]").await;
    admin.click("[data-testid=nav-admin]").await;
    let held = admin.wait_for("[data-testid=gpu-row][data-state=held]", Duration::from_secs(10)).await;
    assert!(held.text().await.expect("text").contains("alice@example.org"));
    admin.assert_clean("the admin GPU board").await;
    admin.screenshots("admin-gpus").await;
    for (page, what) in [
        ("/admin/sessions", "the admin sessions page"),
        ("/admin/users", "the admin users page"),
        ("/admin/events", "the event log"),
    ] {
        admin.goto(&format!("{ui}{page}")).await;
        admin.assert_clean(what).await;
    }

    for b in [alice, bob, admin] {
        b.client.close().await.expect("close the browser");
    }
    drop(driver);
    s.stop().await;
}
