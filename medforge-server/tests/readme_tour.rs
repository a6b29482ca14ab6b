//! The README's tour, step for step, in a real browser (Chromium through
//! ChromeDriver): open the UI, sign in as the first admin with the password
//! from `medforge-data/first-admin.txt`, press Start, wait for the VS Code
//! workbench on the session's own host, stop it from the dashboard, find
//! the stop snapshot on the snapshots page.
//!
//! It drives a server that is already running: `scripts/tests/run-sh.sh`
//! starts one with `scripts/run.sh` in a fresh clone, as a newcomer would,
//! and runs this with the UI's URL, the credentials file and the README.
//! So `cargo test` alone does not run it (`test = false` in Cargo.toml);
//! `cargo test -p medforge-server --test readme_tour -- URL FILE README` does.
//! The buttons and links are found by what they say, and the README must
//! name each of them, in this order: if the README and the UI part ways,
//! this fails.

#[path = "common/browser.rs"]
mod browser_kit;

use std::time::{Duration, Instant};

use browser_kit::{Browser, chromedriver};

/// What the tour tells a newcomer to press, in order (`**...**` in the README).
const STEPS: [&str; 5] = ["Sign in", "Start an external session", "Sessions", "Stop", "Snapshots"];

/// The README's tour: from its first line to the first heading after it.
fn tour_text(readme: &str) -> &str {
    let start = readme.find("Then the tour").expect("the README has a tour (\"Then the tour ...\")");
    let rest = &readme[start..];
    &rest[..rest.find("\n#").unwrap_or(rest.len())]
}

/// The README names each step, in order, and where to find the password.
fn assert_the_readme_says_so(readme: &str) {
    let tour = tour_text(readme);
    let mut from = 0;
    for step in STEPS {
        let at = tour[from..].find(&format!("**{step}**")).unwrap_or_else(|| {
            panic!("the README's tour does not say **{step}** (after what it said before):\n{tour}")
        });
        from += at + step.len();
    }
    for needle in [
        "http://medforge.localhost:8080".to_owned(),
        "admin@medforge.localhost".to_owned(),
        "medforge-data/first-admin.txt".to_owned(),
        "http://s-<slug>.external.medforge.localhost:8080/".to_owned(),
    ] {
        assert!(tour.contains(&needle), "the README's tour does not mention {needle}:\n{tour}");
    }
}

fn credential(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no `{key} = ` line in the credentials file:\n{text}"))
        .to_owned()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let [ui, credentials, readme] = args.as_slice() else {
        panic!("usage: readme_tour UI_URL FIRST_ADMIN_FILE README (scripts/tests/run-sh.sh runs it)");
    };
    let ui = ui.trim_end_matches('/');
    let readme = std::fs::read_to_string(readme).expect("read the README");
    assert_the_readme_says_so(&readme);
    let text = std::fs::read_to_string(credentials).expect("read the first admin's credentials");
    let (email, password) = (credential(&text, "email"), credential(&text, "password"));
    assert_eq!(email, "admin@medforge.localhost", "the README names this account");

    let driver = chromedriver().await;
    let b = Browser::open(&driver).await;

    // 1. Open the UI (signed out: the login page) and sign in.
    b.goto(ui).await;
    b.wait_for("[data-testid=login-form]", Duration::from_secs(10)).await;
    b.fill("#email", &email).await;
    b.fill("#password", &password).await;
    b.click_labelled("button", STEPS[0]).await;
    b.wait_for("[data-testid=signed-in-as]", Duration::from_secs(10)).await;
    assert_eq!(b.text("[data-testid=signed-in-as]").await, email);
    b.screenshot("readme-dashboard.png").await;

    // 2. Start: the progress page opens VS Code on the session's own host.
    b.click_labelled("button", STEPS[1]).await;
    // code-server may add its own path and query (`/?folder=/workspace`).
    let host_suffix = format!(".external.{}", ui.trim_start_matches("http://"));
    let deadline = Instant::now() + Duration::from_secs(180);
    let ide = loop {
        let url = b.url().await;
        let host = url.trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
        if url.starts_with("http://s-") && host.ends_with(&host_suffix) {
            break url;
        }
        assert!(Instant::now() < deadline, "VS Code never opened; the browser is at {url}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    b.wait_for(".monaco-workbench", Duration::from_secs(120)).await;
    b.screenshot("readme-ide.png").await;
    let slug = ide.trim_start_matches("http://s-").split('.').next().expect("slug").to_owned();
    println!("readme tour: VS Code is open at {ide}");

    // 3. Back on the dashboard, stop it.
    b.goto(ui).await;
    b.click_labelled("a", STEPS[2]).await;
    b.wait_dashboard_status(ui, Some(&slug), "running", Duration::from_secs(90)).await;
    b.click_labelled("button", STEPS[3]).await;
    b.wait_dashboard_status(ui, Some(&slug), "stopped", Duration::from_secs(90)).await;

    // 4. The snapshot its stop took is listed.
    b.click_labelled("a", STEPS[4]).await;
    let newest = b.text("[data-testid=snapshot-row] code").await;
    assert!(newest.starts_with("stop-") && newest.ends_with(&slug), "the newest snapshot is {newest}");
    b.screenshot("readme-snapshots.png").await;
    b.client.clone().close().await.expect("close the browser");
    println!("readme tour: passed (s-{slug} started, opened, stopped; snapshot {newest})");
}
