//! The whole user flow in a real browser (Chromium through ChromeDriver),
//! against the real server, real dockerd and the real code-server pack:
//! sign up, start a session from the dashboard, watch its progress, use the
//! IDE (a terminal over the proxy's WebSocket writes a file), stop, start
//! again and find the file, find the stop snapshot; another user is refused
//! at the first one's session URL. Every page of ours is checked for
//! console errors and with axe-core (labels, contrast, landmarks), and
//! screenshots at laptop and phone widths go to target/screenshots/.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{DOMAIN, Db, Options, Server};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test.sh, which provides it"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chromedriver() -> Driver {
    let port = free_port();
    let child = Command::new(env("MEDFORGE_TEST_CHROMEDRIVER"))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { child, port }
}

/// A browser of its own (its own profile: another user's "context").
struct Browser {
    client: Client,
    driver_port: u16,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(driver: &Driver) -> Self {
        let profile = tempfile::tempdir().expect("profile");
        let caps = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let Value::Object(caps) = caps else { unreachable!() };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a browser session");
        Self { client, driver_port: driver.port, _profile: profile }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    async fn wait_for(&self, css: &str, within: Duration) -> fantoccini::elements::Element {
        match self.client.wait().at_most(within).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("waiting for {css} at {}: {e}", self.url().await),
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for(css, Duration::from_secs(10)).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.wait_for(css, Duration::from_secs(10)).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn url(&self) -> String {
        self.client.current_url().await.expect("url").to_string()
    }

    async fn text(&self, css: &str) -> String {
        self.wait_for(css, Duration::from_secs(10)).await.text().await.expect("text")
    }

    /// Console messages since the last call (ChromeDriver's log endpoint).
    async fn console(&self) -> Vec<Value> {
        let id = self.client.session_id().await.expect("session id").expect("a session");
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/session/{id}/se/log", self.driver_port))
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .expect("log request");
        let body: Value = r.json().await.expect("log json");
        body["value"].as_array().cloned().unwrap_or_default()
    }

    /// No errors in the console of our own page, and axe-core finds no
    /// violation of WCAG 2 A/AA or its best practices (landmarks, labels,
    /// contrast, ...).
    async fn assert_clean(&self, what: &str) {
        // Our pages only: a session's code-server logs its own errors,
        // some of them as it unloads after we have left it.
        // An error page's own status (a 403 on purpose) is logged too; its
        // resources' failures are not excused.
        let ours = format!("http://{DOMAIN}:");
        let itself = format!("{} - Failed to load resource", self.url().await);
        let errors: Vec<Value> = self
            .console()
            .await
            .into_iter()
            .filter(|m| m["level"] == "SEVERE")
            .filter(|m| m["message"].as_str().is_some_and(|t| t.starts_with(&ours) && !t.starts_with(&itself)))
            .collect();
        assert!(errors.is_empty(), "console errors on {what}: {errors:#?}");
        self.load_axe().await;
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })
                   .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                       nodes: v.nodes.map(n => n.target.join(' ')) }))))
                   .catch(e => done([{ id: 'axe-failed', help: String(e) }]));",
                vec![],
            )
            .await
            .expect("run axe");
        assert_eq!(found, json!([]), "accessibility violations on {what}");
    }

    /// axe-core, into the page.
    async fn load_axe(&self) {
        let axe = std::fs::read_to_string(env("MEDFORGE_TEST_AXE")).expect("axe.min.js");
        self.client.execute(&format!("{axe}\nreturn true;"), vec![]).await.expect("load axe");
    }

    /// The accessibility check can fail: an image without a text
    /// alternative, added to the page, is found.
    async fn assert_axe_finds_violations(&self) {
        self.load_axe().await;
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 const img = document.createElement('img'); img.src = '/static/favicon.svg';
                 document.querySelector('main').appendChild(img);
                 axe.run(document, { runOnly: { type: 'rule', values: ['image-alt'] } })
                   .then(r => { img.remove(); done(r.violations.map(v => v.id)); });",
                vec![],
            )
            .await
            .expect("run axe");
        assert_eq!(found, json!(["image-alt"]));
    }

    /// The page as it is now, into target/screenshots/<file>.
    async fn screenshot(&self, file: &str) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(file), png).expect("write screenshot");
    }

    /// Screenshots at laptop and phone widths into target/screenshots/.
    async fn screenshots(&self, name: &str) {
        for (label, w, h) in [("laptop", 1280, 800), ("phone", 390, 844)] {
            self.client.set_window_size(w, h).await.expect("window size");
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.screenshot(&format!("{name}-{label}.png")).await;
        }
        self.client.set_window_size(1280, 800).await.expect("window size");
    }

    async fn sign_up(&self, ui: &str, email: &str) {
        self.goto(&format!("{ui}/signup")).await;
        self.assert_clean("the sign-up page").await;
        self.fill("#email", email).await;
        self.fill("#password", "browser passphrase").await;
        self.click("[data-testid=signup-submit]").await;
        self.wait_for("[data-testid=start-external]", Duration::from_secs(10)).await;
    }

    /// From the dashboard: start, follow the progress page until it opens
    /// the IDE by itself, and wait for the VS Code workbench.
    async fn start_and_open_ide(&self, ui: &str, screenshot: Option<&str>) -> String {
        self.goto(&format!("{ui}/")).await;
        self.click("[data-testid=start-external]").await;
        self.wait_for("[data-testid=progress-steps]", Duration::from_secs(10)).await;
        if let Some(name) = screenshot {
            self.screenshot(&format!("{name}-laptop.png")).await;
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        while !self.url().await.starts_with("http://s-") {
            assert!(Instant::now() < deadline, "the progress page never opened the IDE: {}", self.url().await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.wait_for(".monaco-workbench", Duration::from_secs(90)).await;
        self.url().await
    }

    /// The first element matching `css` that is displayed, once there is one.
    async fn wait_visible(&self, css: &str, within: Duration) -> fantoccini::elements::Element {
        let deadline = Instant::now() + within;
        loop {
            for e in self.client.find_all(Locator::Css(css)).await.unwrap_or_default() {
                if e.is_displayed().await.unwrap_or(false) {
                    return e;
                }
            }
            assert!(Instant::now() < deadline, "nothing displayed matches {css} at {}", self.url().await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Opens a terminal in the workbench (the command palette) and leaves
    /// the focus in it.
    async fn open_terminal(&self) {
        self.wait_visible(".monaco-workbench .part.editor", Duration::from_secs(30))
            .await
            .click()
            .await
            .expect("focus");
        // F1 opens the command palette, whose input then has the focus.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let focused = self.client.active_element().await.expect("active element");
            focused.send_keys(&Key::F1.to_string()).await.expect("F1");
            tokio::time::sleep(Duration::from_millis(700)).await;
            let in_palette = self
                .client
                .execute(
                    "return document.activeElement && document.activeElement.closest('.quick-input-widget') !== null;",
                    vec![],
                )
                .await
                .expect("where the focus is");
            if in_palette == json!(true) {
                break;
            }
            assert!(Instant::now() < deadline, "the command palette did not open");
        }
        let input = self.client.active_element().await.expect("the palette's input");
        input.send_keys("Terminal: Create New Terminal").await.expect("type command");
        tokio::time::sleep(Duration::from_millis(800)).await;
        input.send_keys(&Key::Enter.to_string()).await.expect("enter");
        // A new terminal takes the focus (xterm's helper textarea, which is
        // never "displayed": it sits under the canvas).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let in_terminal = self
                .client
                .execute("return document.activeElement && document.activeElement.classList.contains('xterm-helper-textarea');", vec![])
                .await
                .expect("where the focus is");
            if in_terminal == json!(true) {
                break;
            }
            if Instant::now() > deadline {
                self.screenshots("failed-terminal").await;
                panic!("no terminal took the focus");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Types `line` and Enter into the focused terminal.
    async fn type_line(&self, line: &str) {
        let term = self.client.active_element().await.expect("the terminal");
        term.send_keys(line).await.expect("type into the terminal");
        term.send_keys(&Key::Enter.to_string()).await.expect("enter");
    }
}

async fn wait_session_status(b: &Browser, ui: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        b.goto(&format!("{ui}/")).await;
        let status = b.text("[data-testid=session-row] [data-testid=session-status]").await;
        if status == want {
            return;
        }
        assert!(Instant::now() < deadline, "the newest session stayed {status}, not {want}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

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
    wait_session_status(&alice, &ui, "stopped").await;
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
