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
    whole_flow(Server::start(Db::Sqlite, Options { image: Some(image), ..Options::default() }).await).await;
}

/// The same over HTTPS (`[tls]`, a test CA's wildcard certificate): the
/// IDE's WebSockets through the TLS listener, the `__Host-` cookies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_over_https() {
    let image = env("MEDFORGE_TEST_CODE_SERVER_IMAGE");
    whole_flow(Server::start(Db::Sqlite, Options { image: Some(image), tls: true, ..Options::default() }).await).await;
}

/// A browser for `s`: one that trusts its test certificate, with `[tls]`.
async fn browser_for(s: &Server, driver: &browser_kit::Driver) -> Browser {
    Browser::open_trusting(driver, s.tls.as_ref().map(|t| t.leaf.spki_sha256.as_str())).await
}

async fn whole_flow(s: Server) {
    let scheme = s.scheme();
    let ui = format!("{scheme}://{DOMAIN}:{}", s.port());
    let session_prefix = format!("{scheme}://s-");
    let driver = chromedriver().await;
    let alice = browser_for(&s, &driver).await;

    alice.goto(&format!("{ui}/login")).await;
    alice.assert_axe_finds_violations().await;
    alice.assert_clean("the login page").await;
    alice.sign_up(&ui, "alice@example.org").await;
    alice.assert_clean("the dashboard").await;
    alice.screenshots("dashboard-empty").await;

    // Start: the progress page, then the IDE on its own host.
    let ide = alice.start_and_open_ide(&ui, Some("progress-starting")).await;
    assert!(ide.starts_with(&session_prefix) && ide.contains(&format!(".external.{DOMAIN}:")), "{ide}");
    let slug = ide.trim_start_matches(&session_prefix).split('.').next().expect("slug").to_owned();
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
    let bob = browser_for(&s, &driver).await;
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
    let slug2 = again.trim_start_matches(&session_prefix).split('.').next().expect("slug").to_owned();
    assert_ne!(slug2, slug, "a new session");
    let (ok, out, _) = common::docker_exec(&format!("mf-session-{slug2}"), "cat /workspace/proof.txt");
    assert!(ok && out.trim() == "written-in-the-browser", "{out}");

    // A browser that is not signed in goes to the login page and, signed
    // in, back to the session it asked for.
    let fresh = browser_for(&s, &driver).await;
    fresh.goto(&again).await;
    fresh.wait_for("[data-testid=login-form]", Duration::from_secs(10)).await;
    assert!(fresh.url().await.starts_with(&format!("{ui}/login?next=")), "{}", fresh.url().await);
    fresh.assert_clean("the login page with a way back").await;
    fresh.fill("#email", "alice@example.org").await;
    fresh.fill("#password", "browser passphrase").await;
    fresh.click("[data-testid=login-submit]").await;
    fresh.wait_for(".monaco-workbench", Duration::from_secs(60)).await;
    assert!(fresh.url().await.starts_with(&format!("{session_prefix}{slug2}.")), "{}", fresh.url().await);
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
    let admin = browser_for(&s, &driver).await;
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

/// The text of the first element matching `css`, read in one script: the
/// dashboard's script swaps its GPU card every second, so an element found
/// first and read after may be gone (stale) by then.
async fn live_text(b: &Browser, css: &str) -> String {
    let v = b
        .client
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : '';",
            vec![json!(css)],
        )
        .await
        .expect("read");
    v.as_str().unwrap_or_default().to_owned()
}

/// Whether the page fits the window's width (no sideways scrolling).
async fn fits_width(b: &Browser) -> bool {
    let v = b
        .client
        .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;", vec![])
        .await
        .expect("measure");
    v == json!(true)
}

/// GPU telemetry in the browser (the stand-in libnvidia-ml plays the
/// driver): the admin board's sparkline is drawn and grows with the
/// readings, the user's dashboard follows their GPU without a reload, and
/// the board, the dashboard and both usage pages pass the axe checks, fit a
/// phone's width, and are screenshotted at laptop and phone widths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_telemetry_and_usage_pages_in_a_real_browser() {
    use medforge_telemetry_nvml::stand_in::StandInGpu;
    let s = Server::start(
        Db::Sqlite,
        Options { stand_in_nvml: Some(vec![StandInGpu::idle(0), StandInGpu::idle(1)]), ..Options::default() },
    )
    .await;
    let ui = format!("http://{DOMAIN}:{}", s.port());
    let driver = chromedriver().await;
    let carol = Browser::open(&driver).await;
    carol.sign_up(&ui, "carol@example.org").await;
    carol.click("[data-testid=start-external]").await;
    carol.wait_for("[data-testid=progress-steps]", Duration::from_secs(10)).await;
    // The test pack is no IDE: back to the dashboard once the session runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        carol.goto(&format!("{ui}/")).await;
        if carol.client.find(Locator::Css("[data-testid=my-gpu]")).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no GPU card on the dashboard");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let gpu: u32 = carol
        .wait_for("[data-testid=my-gpu]", Duration::from_secs(5))
        .await
        .attr("data-gpu")
        .await
        .expect("attr")
        .expect("data-gpu")
        .parse()
        .expect("index");
    let reading = |util, mem| {
        let mut gpus = vec![StandInGpu::idle(0), StandInGpu::idle(1)];
        gpus[gpu as usize] = StandInGpu::idle(gpu).busy(util, mem);
        gpus
    };
    s.set_gpus(&reading(91, 42 << 30));
    // Live: the card changes without a reload (the script refetches it).
    let deadline = Instant::now() + Duration::from_secs(15);
    while live_text(&carol, "[data-testid=my-gpu] [data-testid=gpu-utilization]").await != "91%" {
        assert!(Instant::now() < deadline, "the dashboard's GPU card did not follow the reading");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    carol.client.execute("window.__same_page = true; return true;", vec![]).await.expect("mark");
    s.set_gpus(&reading(12, 42 << 30));
    let deadline = Instant::now() + Duration::from_secs(15);
    while live_text(&carol, "[data-testid=my-gpu] [data-testid=gpu-utilization]").await != "12%" {
        assert!(Instant::now() < deadline, "the dashboard's GPU card did not follow the second reading");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let same = carol.client.execute("return window.__same_page === true;", vec![]).await.expect("check");
    assert_eq!(same, json!(true), "updated in place, not by a reload");
    let memory = live_text(&carol, "[data-testid=my-gpu] [data-testid=gpu-memory]").await;
    assert!(memory.starts_with("42.0 GiB of 80.0 GiB"), "{memory}");
    // Hold the page still for axe: the script's next refetch never returns.
    carol.client.execute("window.fetch = () => new Promise(() => {}); return true;", vec![]).await.expect("freeze");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    carol.assert_clean("the dashboard with a live GPU").await;
    carol.screenshots("dashboard-gpu").await;

    // The admin board: a sparkline that is drawn, and grows.
    s.admin("root@example.org").await;
    let admin = Browser::open(&driver).await;
    admin.goto(&format!("{ui}/login")).await;
    admin.fill("#email", "root@example.org").await;
    admin.fill("#password", "admin passphrase").await;
    admin.click("[data-testid=login-submit]").await;
    admin.wait_for("[data-testid=nav-admin]", Duration::from_secs(10)).await;
    let line = format!("[data-gpu=\"{gpu}\"] [data-testid=sparkline-utilization]");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        admin.goto(&format!("{ui}/admin")).await;
        let points =
            admin.wait_for(&line, Duration::from_secs(5)).await.attr("points").await.expect("attr").unwrap_or_default();
        if points.split(' ').count() >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "the sparkline did not grow: {points}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let drawn = admin
        .client
        .execute(
            &format!("const r = document.querySelector('[data-gpu=\"{gpu}\"] [data-testid=sparkline]').getBoundingClientRect(); return r.width > 100 && r.height > 30;"),
            vec![],
        )
        .await
        .expect("measure");
    assert_eq!(drawn, json!(true), "the sparkline is drawn at its size");
    let label = admin.wait_for(&format!("[data-gpu=\"{gpu}\"] [data-testid=sparkline]"), Duration::from_secs(2)).await;
    let label = label.attr("aria-label").await.expect("attr").expect("an accessible name");
    assert!(label.starts_with("Utilisation over the last") && label.contains("highest 91%"), "{label}");
    let card = admin.text(&format!("[data-testid=gpu-row][data-gpu=\"{gpu}\"]")).await;
    assert!(card.contains("carol@example.org") && card.contains("NVIDIA H200 (stand-in)"), "{card}");
    admin.assert_clean("the GPU board with telemetry").await;
    admin.screenshots("admin-gpus-telemetry").await;

    // Stop, then the usage pages (the user's and the admin's report).
    carol.goto(&format!("{ui}/")).await;
    carol.click("[data-testid=stop-session]").await;
    carol.wait_dashboard_status(&ui, None, "stopped", Duration::from_secs(30)).await;
    carol.click_labelled("a", "Usage").await;
    carol.wait_for("[data-testid=usage-totals]", Duration::from_secs(10)).await;
    let week = carol.text("[data-testid=usage-totals] [data-testid=usage-busy]").await;
    assert!(week.contains("% of held"), "busy time is measured: {week}");
    carol.assert_clean("the usage page").await;
    carol.screenshots("usage").await;
    admin.click("[data-testid=nav-admin]").await;
    admin.click(".subnav a[href='/admin/usage']").await;
    let row = admin.wait_for("[data-testid=usage-user]", Duration::from_secs(10)).await.text().await.expect("text");
    assert!(row.to_lowercase().contains("carol@example.org"), "{row}");
    let csv = admin.wait_for("[data-testid=usage-csv]", Duration::from_secs(2)).await.attr("href").await.expect("attr");
    assert!(csv.is_some_and(|h| h.starts_with("/admin/usage.csv?from=")));
    admin.assert_clean("the admin usage report").await;
    admin.screenshots("admin-usage").await;
    // Readable on a phone: nothing wider than the window.
    for b in [&carol, &admin] {
        b.client.set_window_size(390, 844).await.expect("phone");
    }
    for (b, page) in [(&carol, "/usage"), (&carol, "/"), (&admin, "/admin"), (&admin, "/admin/usage")] {
        b.goto(&format!("{ui}{page}")).await;
        assert!(fits_width(b).await, "{page} is wider than a phone");
    }
    for b in [carol, admin] {
        b.client.close().await.expect("close the browser");
    }
    drop(driver);
    s.stop().await;
}

/// The reports and Cookie headers a hostile container logged: (what,
/// value) pairs and each `cookie:` line.
fn hostile_log(container: &str) -> (Vec<(String, String)>, Vec<String>) {
    let out = std::process::Command::new("docker").args(["logs", container]).output().expect("docker logs");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut reports = Vec::new();
    let mut cookies = Vec::new();
    for line in log.lines() {
        if let Some(q) = line.strip_prefix("report:") {
            let pairs: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(q.as_bytes()).into_owned().collect();
            reports.push((
                pairs.get("what").cloned().unwrap_or_default(),
                pairs.get("value").cloned().unwrap_or_default(),
            ));
        } else if let Some(c) = line.strip_prefix("cookie:") {
            cookies.push(c.to_owned());
        }
    }
    (reports, cookies)
}

/// docs/security.md's boundary from the attacker's side: mallory's session
/// serves the hostile pack, and an admin opens it in a real browser ("can
/// you look at my error?"). Its page tries the same-site form post that
/// would promote mallory, fetches with the admin's credentials, plants
/// MedForge's cookie names for the parent domain (by script and by
/// Set-Cookie), reads document.cookie and frames the UI. Afterwards
/// mallory is still an ordinary user, nothing changed in the event log,
/// the admin's browser is still signed in as the admin, and the container
/// never received a MedForge cookie or token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_session_opened_by_an_admin_changes_nothing() {
    let image = env("MEDFORGE_TEST_HOSTILE_PACK_IMAGE");
    let s = Server::start(Db::Sqlite, Options { image: Some(image), ..Options::default() }).await;
    let port = s.port().to_owned();
    hostile_session_opened_by_an_admin(s, &port).await;
}

/// The same over HTTPS (`[tls]`): `__Host-` cookies, which no sibling
/// host can plant at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_a_hostile_session_opened_by_an_admin_changes_nothing() {
    let image = env("MEDFORGE_TEST_HOSTILE_PACK_IMAGE");
    let s = Server::start(Db::Sqlite, Options { image: Some(image), tls: true, ..Options::default() }).await;
    let port = s.port().to_owned();
    hostile_session_opened_by_an_admin(s, &port).await;
}

/// The same, with the UI and the session hosts behind Caddy and its route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_caddy_a_hostile_session_opened_by_an_admin_changes_nothing() {
    let (s, caddy) = common::caddy::server_behind_caddy(Some(env("MEDFORGE_TEST_HOSTILE_PACK_IMAGE"))).await;
    hostile_session_opened_by_an_admin(s, &caddy.port.to_string()).await;
    drop(caddy);
}

/// The hostile page's attack, with the browser on `port` (the server's, or
/// Caddy's in front of it) for the UI and the session hosts alike.
async fn hostile_session_opened_by_an_admin(s: Server, port: &str) {
    let scheme = s.scheme();
    let ui = format!("{scheme}://{DOMAIN}:{port}");
    let (login_name, pass_name) = (s.login_cookie_name(), s.pass_cookie_name());
    let (mallory, mallory_id) = s.signup("mallory@example.org").await;
    let (_, session) = s.start_session(&mallory).await;
    let slug = session["slug"].as_str().expect("slug").to_owned();
    let container = format!("mf-session-{slug}");
    let admin_api = s.admin("admin@example.org").await;

    let driver = chromedriver().await;
    let admin = browser_for(&s, &driver).await;
    admin.goto(&format!("{ui}/login")).await;
    admin.fill("#email", "admin@example.org").await;
    admin.fill("#password", "admin passphrase").await;
    admin.click("[data-testid=login-submit]").await;
    admin.wait_for("[data-testid=nav-admin]", Duration::from_secs(10)).await;
    let login_token =
        admin.client.get_named_cookie(login_name).await.expect("the admin's login cookie").value().to_owned();

    // The admin opens mallory's link; the handshake lets them in.
    let session_host = format!("{scheme}://s-{slug}.external.{DOMAIN}:{port}");
    let link = format!("{session_host}/cgi-bin/page?owner={mallory_id}&ui={ui}");
    admin.goto(&link).await;
    admin.wait_for("h1", Duration::from_secs(15)).await;
    assert!(admin.url().await.starts_with(&format!("{scheme}://s-{slug}.")), "{}", admin.url().await);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (reports, cookies) = loop {
        let (reports, cookies) = hostile_log(&container);
        if reports.iter().any(|(w, _)| w == "done") {
            break (reports, cookies);
        }
        assert!(Instant::now() < deadline, "the attack never finished: {reports:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let pass = admin.client.get_named_cookie(pass_name).await.map(|c| c.value().to_owned()).unwrap_or_default();
    let report = |what: &str| {
        reports
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {what}: {reports:?}"))
    };
    // (d) The page sees no MedForge cookie of the admin's.
    assert!(!report("document.cookie").to_lowercase().contains("medforge_"), "{reports:?}");
    // (c) Its Set-Cookie of MedForge's names were dropped; its own passed.
    let after = report("document.cookie after");
    assert!(after.contains("own_cookie=kept") && !after.contains("tossed"), "{after}");
    // (b) Credentialed fetches to the control plane are blocked.
    for what in ["fetch me", "fetch admin page", "fetch patch"] {
        assert!(report(what).starts_with("blocked"), "{what}: {reports:?}");
    }
    // (e) The UI does not show in its frame.
    assert!(!report("frame").starts_with("readable"), "{reports:?}");
    // The container never got a MedForge cookie, the login or the pass.
    assert!(!cookies.is_empty(), "the CGIs log what they were sent");
    for c in &cookies {
        assert!(!c.to_lowercase().contains("medforge_"), "a MedForge cookie reached the container: {c}");
        assert!(!c.contains(&login_token), "the admin's login reached the container: {c}");
        assert!(pass.is_empty() || !c.contains(&pass), "the pass reached the container: {c}");
    }

    // (a) Mallory is still an ordinary user, and no admin action happened.
    let (_, _, users) = s.get("/api/v2/admin/users", Some(&admin_api)).await;
    let mallory_row =
        users["data"].as_array().and_then(|us| us.iter().find(|u| u["user_id"] == mallory_id.as_str()).cloned());
    let mallory_row = mallory_row.expect("mallory listed");
    assert_eq!((mallory_row["role"].as_str(), mallory_row["can_use_internal"].as_bool()), (Some("user"), Some(false)));
    let (_, _, changes) = s.get("/api/v2/admin/events?event=admin.user.change", Some(&admin_api)).await;
    assert_eq!(changes["data"].as_array().map(Vec::len), Some(0), "{changes}");
    // The admin opening her session is on the record.
    let (_, _, entered) = s.get("/api/v2/admin/events?event=session.entered_by_other", Some(&admin_api)).await;
    assert_eq!(entered["data"].as_array().map(Vec::len), Some(1), "{entered}");

    // Back in the session, the pass planted for the parent domain is
    // removed on the way and the admin's own still opens it.
    admin.goto(&format!("{session_host}/")).await;
    admin.wait_for("body", Duration::from_secs(10)).await;
    assert_eq!(admin.text("body").await.trim(), "medforge test pack", "{}", admin.url().await);
    assert_eq!(admin.url().await, format!("{session_host}/"));

    // The admin's browser is still signed in as the admin (the planted
    // copies are removed on the way).
    admin.goto(&format!("{ui}/admin")).await;
    admin.wait_for("[data-testid=nav-admin]", Duration::from_secs(10)).await;
    assert_eq!(admin.text("[data-testid=signed-in-as]").await, "admin@example.org");
    let still = admin.client.get_named_cookie(login_name).await.expect("login cookie").value().to_owned();
    assert_eq!(still, login_token, "the same login");
    admin.client.close().await.expect("close the browser");
    drop(driver);
    s.stop().await;
}
