//! A real browser for tests: Chromium through ChromeDriver (fantoccini),
//! each [`Browser`] with a profile of its own. Included with `#[path]` by
//! the tests that drive one (browser.rs, readme_tour.rs), not by every
//! test binary through `common`.

#![allow(dead_code)] // each test uses its own subset

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The UI's host in every browser test (the built-in default).
const DOMAIN: &str = "medforge.localhost";

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test.sh, which provides it"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn chromedriver() -> Driver {
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
pub struct Browser {
    pub client: Client,
    driver_port: u16,
    _profile: tempfile::TempDir,
}

/// Whether `url` is on a session host (over HTTP or HTTPS).
pub fn on_session_host(url: &str) -> bool {
    url.starts_with("http://s-") || url.starts_with("https://s-")
}

impl Browser {
    pub async fn open(driver: &Driver) -> Self {
        Self::open_trusting(driver, None).await
    }

    /// A browser that also trusts the certificate whose key has this
    /// base64 SHA-256 SPKI hash (a test CA's leaf; Chromium honours the
    /// list with a profile directory of its own, which every one has).
    pub async fn open_trusting(driver: &Driver, spki_sha256: Option<&str>) -> Self {
        let profile = tempfile::tempdir().expect("profile");
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,800".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if let Some(hash) = spki_sha256 {
            args.push(format!("--ignore-certificate-errors-spki-list={hash}"));
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": { "args": args }
        });
        let Value::Object(caps) = caps else { unreachable!() };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a browser session");
        Self { client, driver_port: driver.port, _profile: profile }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    pub async fn wait_for(&self, css: &str, within: Duration) -> fantoccini::elements::Element {
        match self.client.wait().at_most(within).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("waiting for {css} at {}: {e}", self.url().await),
        }
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for(css, Duration::from_secs(10)).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    pub async fn click(&self, css: &str) {
        self.wait_for(css, Duration::from_secs(10)).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks the `tag` element whose visible text starts with `text`, as
    /// a person finds a button or a link by what it says.
    pub async fn click_labelled(&self, tag: &str, text: &str) {
        let xpath = format!("//{tag}[starts-with(normalize-space(.), '{text}')]");
        let element =
            match self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::XPath(&xpath)).await {
                Ok(e) => e,
                Err(e) => panic!("no {tag} saying {text:?} at {}: {e}", self.url().await),
            };
        element.click().await.unwrap_or_else(|e| panic!("click {tag} {text:?}: {e}"));
    }

    /// Reloads the dashboard until the row of session `slug` (or, `None`,
    /// the newest row) shows status `want`, for up to `within`.
    pub async fn wait_dashboard_status(&self, ui: &str, slug: Option<&str>, want: &str, within: Duration) {
        let row = match slug {
            Some(slug) => format!("[data-testid=session-row][data-slug='{slug}']"),
            None => "[data-testid=session-row]".to_owned(),
        };
        let deadline = Instant::now() + within;
        loop {
            self.goto(&format!("{ui}/")).await;
            let status = self.text(&format!("{row} [data-testid=session-status]")).await;
            if status == want {
                return;
            }
            assert!(Instant::now() < deadline, "{row} stayed {status}, not {want}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn url(&self) -> String {
        self.client.current_url().await.expect("url").to_string()
    }

    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css, Duration::from_secs(10)).await.text().await.expect("text")
    }

    /// Console messages since the last call (ChromeDriver's log endpoint).
    pub async fn console(&self) -> Vec<Value> {
        let id = self.client.session_id().await.expect("session id").expect("a session");
        // reqwest's TLS has no crypto of its own here (common::install_crypto).
        let _ = rustls::crypto::ring::default_provider().install_default();
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
    pub async fn assert_clean(&self, what: &str) {
        // Our pages only: a session's code-server logs its own errors,
        // some of them as it unloads after we have left it.
        // An error page's own status (a 403 on purpose) is logged too; its
        // resources' failures are not excused.
        let ours = [format!("http://{DOMAIN}:"), format!("https://{DOMAIN}:")];
        let itself = format!("{} - Failed to load resource", self.url().await);
        let errors: Vec<Value> = self
            .console()
            .await
            .into_iter()
            .filter(|m| m["level"] == "SEVERE")
            .filter(|m| {
                m["message"].as_str().is_some_and(|t| ours.iter().any(|o| t.starts_with(o)) && !t.starts_with(&itself))
            })
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
    pub async fn load_axe(&self) {
        let axe = std::fs::read_to_string(env("MEDFORGE_TEST_AXE")).expect("axe.min.js");
        self.client.execute(&format!("{axe}\nreturn true;"), vec![]).await.expect("load axe");
    }

    /// The accessibility check can fail: an image without a text
    /// alternative, added to the page, is found.
    pub async fn assert_axe_finds_violations(&self) {
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
    pub async fn screenshot(&self, file: &str) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(file), png).expect("write screenshot");
    }

    /// Screenshots at laptop and phone widths into target/screenshots/.
    pub async fn screenshots(&self, name: &str) {
        for (label, w, h) in [("laptop", 1280, 800), ("phone", 390, 844)] {
            self.client.set_window_size(w, h).await.expect("window size");
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.screenshot(&format!("{name}-{label}.png")).await;
        }
        self.client.set_window_size(1280, 800).await.expect("window size");
    }

    pub async fn sign_up(&self, ui: &str, email: &str) {
        self.goto(&format!("{ui}/signup")).await;
        self.assert_clean("the sign-up page").await;
        self.fill("#email", email).await;
        self.fill("#password", "browser passphrase").await;
        self.click("[data-testid=signup-submit]").await;
        self.wait_for("[data-testid=start-external]", Duration::from_secs(10)).await;
    }

    /// From the dashboard: start, follow the progress page until it opens
    /// the IDE by itself, and wait for the VS Code workbench.
    pub async fn start_and_open_ide(&self, ui: &str, screenshot: Option<&str>) -> String {
        self.goto(&format!("{ui}/")).await;
        self.click("[data-testid=start-external]").await;
        self.wait_for("[data-testid=progress-steps]", Duration::from_secs(10)).await;
        if let Some(name) = screenshot {
            self.screenshot(&format!("{name}-laptop.png")).await;
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        while !on_session_host(&self.url().await) {
            assert!(Instant::now() < deadline, "the progress page never opened the IDE: {}", self.url().await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.wait_for(".monaco-workbench", Duration::from_secs(90)).await;
        self.url().await
    }

    /// The first element matching `css` that is displayed, once there is one.
    pub async fn wait_visible(&self, css: &str, within: Duration) -> fantoccini::elements::Element {
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
    pub async fn open_terminal(&self) {
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
    pub async fn type_line(&self, line: &str) {
        let term = self.client.active_element().await.expect("the terminal");
        term.send_keys(line).await.expect("type into the terminal");
        term.send_keys(&Key::Enter.to_string()).await.expect("enter");
    }
}
