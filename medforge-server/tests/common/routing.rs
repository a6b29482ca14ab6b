//! Routing checks that both fronts must pass (the built-in proxy, and
//! Caddy in front of the gate): big bodies streamed with flat memory, and
//! load with every misrouted request counted where it lands, in the
//! session containers (the test pack logs each path it serves, `url:...`,
//! and its `/cgi-bin/hit` logs `foreign-host:...` for any Host that is not
//! its own session's).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::{DOMAIN, Hosted, Server, docker};

/// The gate path as a client might spell it to sneak through a session host.
pub const GATE_SPELLINGS: [&str; 5] = [
    "/api/v2/auth/session-proxy",
    "/API/v2/auth/session-proxy",
    "/api%2Fv2%2Fauth%2Fsession-proxy",
    "/api/v2/auth/session-proxy/",
    "//api//v2//auth//session-proxy",
];

/// Resident memory of a process, in bytes (0 once it is gone).
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kb * 1024
}

/// Samples the summed resident memory of `pids` every 50 ms until dropped.
struct PeakMemory {
    peak: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    pids: Vec<u32>,
}

impl PeakMemory {
    fn start(pids: &[u32]) -> Self {
        let (peak, done, pids) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)), pids.to_vec());
        let (p, d, ps) = (peak.clone(), done.clone(), pids.clone());
        tokio::spawn(async move {
            while !d.load(Ordering::Relaxed) {
                p.fetch_max(ps.iter().map(|&pid| rss(pid)).sum(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { peak, done, pids }
    }

    fn peak(&self) -> u64 {
        self.peak.fetch_max(self.pids.iter().map(|&pid| rss(pid)).sum(), Ordering::Relaxed);
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for PeakMemory {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// 100 MB down and 100 MB up through `front` to the session whose
/// container is `container`, streamed: the processes on the way (`pids`)
/// grow by less than 48 MiB in all while moving 200 MiB.
pub async fn large_bodies_stream_with_flat_memory(front: &Hosted, cookie: &str, container: &str, pids: &[u32]) {
    const SIZE: usize = 100 << 20;
    let made = std::process::Command::new("docker")
        .args(["exec", "-u", "0", container, "dd", "if=/dev/zero", "of=/www/big", "bs=1M", "count=100"])
        .output()
        .expect("dd");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let before: u64 = pids.iter().map(|&pid| rss(pid)).sum();
    let memory = PeakMemory::start(pids);

    let r = front.request(reqwest::Method::GET, "/big", Some(cookie)).send().await.expect("download");
    assert_eq!(r.status(), 200);
    let mut got = 0usize;
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        got += chunk.expect("chunk").len();
    }
    assert_eq!(got, SIZE);

    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let stream = futures::stream::iter((0..100).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let r = front
        .request(reqwest::Method::POST, "/cgi-bin/count", Some(cookie))
        // As a browser's upload: a known length (busybox's CGI needs it),
        // still streamed.
        .header(reqwest::header::CONTENT_LENGTH, SIZE)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("count").trim(), SIZE.to_string());
    let grew = memory.peak().saturating_sub(before);
    assert!(grew < 48 << 20, "the proxies grew by {} MiB moving 200 MiB", grew >> 20);
}

/// A running session as a load target: its host on the front, its owner's
/// cookie, its slug, its container.
#[derive(Clone)]
pub struct Target {
    pub front: Hosted,
    pub cookie: String,
    pub slug: String,
    pub container: String,
}

/// What the load saw from the client side.
#[derive(Debug, Default)]
pub struct Load {
    /// `/cgi-bin/hit` answered 200 by the right session, per target.
    pub hits: Vec<u64>,
    /// Gate spellings refused with 403.
    pub gate_refused: u64,
    /// Anything else, described (the first few).
    pub unexpected: Vec<String>,
    pub unexpected_count: u64,
}

/// `connections` clients, each on its own keep-alive connection to the
/// front, for `secs`: each request goes to the next target in turn (so one
/// connection carries every session's hosts), every 8th is a gate
/// spelling. Then the containers' logs are read: not one gate path and not
/// one foreign host may have reached a container, and each container saw
/// at least the hits its clients were answered.
pub async fn load_without_misroutes(targets: &[Target], connections: usize, secs: u64) -> Load {
    let targets = Arc::new(targets.to_vec());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for conn in 0..connections {
        let targets = targets.clone();
        tasks.push(tokio::spawn(async move {
            super::install_crypto();
            let http = reqwest::Client::builder()
                .http1_only()
                .pool_max_idle_per_host(1)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client");
            let mut load = Load { hits: vec![0; targets.len()], ..Load::default() };
            let mut n = 0usize;
            while Instant::now() < deadline {
                let which = (conn + n) % targets.len();
                let t = &targets[which];
                let gate = n % 8 == 7;
                let path = if gate { GATE_SPELLINGS[(n / 8) % GATE_SPELLINGS.len()] } else { "/cgi-bin/hit" };
                n += 1;
                let sent = http
                    .get(format!("{}{path}", t.front.base))
                    .header(reqwest::header::HOST, &t.front.host)
                    .header("cookie", &t.cookie)
                    .send()
                    .await;
                let answer = match sent {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        (status, r.text().await.unwrap_or_default())
                    }
                    Err(e) => (0, format!("{e}")),
                };
                match (gate, answer.0) {
                    (true, 403) => load.gate_refused += 1,
                    (false, 200) if answer.1.trim() == t.slug => load.hits[which] += 1,
                    _ => {
                        load.unexpected_count += 1;
                        if load.unexpected.len() < 5 {
                            load.unexpected.push(format!("{}{path}: {} {:?}", t.front.host, answer.0, answer.1));
                        }
                    }
                }
            }
            load
        }));
    }
    let mut total = Load { hits: vec![0; targets.len()], ..Load::default() };
    for task in tasks {
        let load = task.await.expect("load task");
        for (t, h) in total.hits.iter_mut().zip(&load.hits) {
            *t += h;
        }
        total.gate_refused += load.gate_refused;
        total.unexpected_count += load.unexpected_count;
        total.unexpected.extend(load.unexpected.into_iter().take(5usize.saturating_sub(total.unexpected.len())));
    }
    total
}

/// What a container's log says it served: (gate paths, foreign hosts, hits).
pub fn served(container: &str) -> (u64, u64, u64) {
    let out = std::process::Command::new("docker").args(["logs", container]).output().expect("docker logs");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut counts = (0, 0, 0);
    for line in log.lines() {
        let lower = line.to_ascii_lowercase();
        if lower.contains("url:") && lower.contains("session-proxy") {
            counts.0 += 1;
        } else if line.starts_with("foreign-host:") {
            counts.1 += 1;
        } else if line.contains("url:/cgi-bin/hit") {
            counts.2 += 1;
        }
    }
    counts
}

/// The counters can count: a foreign host and the gate path sent to the
/// container directly (from inside it) show up in its log.
fn assert_counters_count(container: &str) {
    let before = served(container);
    for request in [
        "GET /cgi-bin/hit HTTP/1.0\r\nHost: s-zzzzzzzz.external.elsewhere\r\n\r\n",
        "GET /api/v2/auth/session-proxy HTTP/1.0\r\n\r\n",
    ] {
        let (ok, _, err) = super::docker_exec(container, &format!("printf '{request}' | nc -w 5 127.0.0.1 8080"));
        assert!(ok, "{err}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let after = served(container);
        if (after.0 - before.0, after.1 - before.1, after.2 - before.2) == (1, 1, 1) {
            return;
        }
        assert!(Instant::now() < deadline, "{container} counted {before:?} -> {after:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The whole check: load through the front, then nothing misrouted.
pub async fn assert_no_misroutes_under_load(targets: &[Target], connections: usize, secs: u64) {
    for t in targets {
        assert_counters_count(&t.container);
    }
    let before: Vec<_> = targets.iter().map(|t| served(&t.container)).collect();
    let load = load_without_misroutes(targets, connections, secs).await;
    eprintln!("load through {}: {load:?}", targets[0].front.base);
    for (i, t) in targets.iter().enumerate() {
        let (gate, foreign, hits) = served(&t.container);
        assert_eq!(gate - before[i].0, 0, "gate paths reached {}", t.container);
        assert_eq!(foreign - before[i].1, 0, "foreign hosts reached {}", t.container);
        assert!(
            hits - before[i].2 >= load.hits[i],
            "{} logged {} hits, its clients got {}",
            t.container,
            hits - before[i].2,
            load.hits[i]
        );
        assert!(load.hits[i] >= 100, "too little load reached {}: {load:?}", t.container);
    }
    assert!(load.gate_refused >= 10, "{load:?}");
    assert_eq!(load.unexpected_count, 0, "{load:?}");
}

/// code-server's port proxy spelt as a client might, to reach another port
/// of an internal session's container.
pub const PORT_PROXY_SPELLINGS: [&str; 6] =
    ["/proxy/9000/", "/proxy/9000/data.csv", "/PROXY/9000/", "/%70roxy/9000/", "//proxy//9000/", "/absproxy/9000/x"];

/// A real listener on port 9000 of `container` (the test pack's httpd),
/// serving a file that must not leave an internal session.
pub fn listen_on_9000(container: &str) {
    let (ok, _, err) = super::docker_exec(
        container,
        "echo secret-row > /workspace/data.csv && (httpd -p 9000 -h /workspace &) && sleep 0.5 && wget -qO- http://127.0.0.1:9000/data.csv",
    );
    assert!(ok, "the listener in the container: {err}");
}

/// On an internal session's host (with its pass) every spelling of the
/// port proxy is refused before the container; on an external one the
/// same path goes to the container as any other (the test pack has no
/// such page: its own 404).
pub async fn assert_port_proxy_refused_on_internal(
    internal: &Hosted,
    internal_pass: &str,
    external: &Hosted,
    external_pass: &str,
) {
    for p in PORT_PROXY_SPELLINGS {
        let (st, _, _, body) = internal.get(p, Some(internal_pass), &[]).await;
        assert_eq!(st, 403, "{p}: {body}");
        assert!(body.contains("Internal sessions serve no ports but the IDE's."), "{p}: {body}");
        assert!(!body.contains("secret-row"), "{p}");
    }
    let (st, _, _, body) = internal.get("/healthz", Some(internal_pass), &[]).await;
    assert_eq!(st, 200, "the internal session itself is served: {body}");
    let (st, ct, _, body) = external.get("/proxy/9000/data.csv", Some(external_pass), &[]).await;
    assert_eq!(st, 404, "an external host passes the path to its container: {body}");
    assert_ne!(ct, "application/problem+json");
}

/// Through `front` with the owner's `pass` (and a login cookie a browser
/// should never send there, in several spellings): the hostile pack's
/// /cgi-bin/toss sets MedForge's cookie names, which must not come back,
/// while its own cookie does; and its log shows it was sent no MedForge
/// cookie at all.
pub async fn assert_no_medforge_cookie_crosses(front: &Hosted, pass: &str, login: &str, container: &str) {
    let sent = format!("{pass}; {login}; MedForge_Session=x; __Host-medforge_session=y; mine=1");
    let r = front.request(reqwest::Method::GET, "/cgi-bin/toss", Some(&sent)).send().await.expect("toss");
    assert_eq!(r.status(), 200);
    let set: Vec<String> =
        r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
    assert!(set.iter().any(|c| c.starts_with("own_cookie=kept")), "its own cookie passes: {set:?}");
    for c in &set {
        let name = c.split('=').next().unwrap_or_default().trim().to_ascii_lowercase();
        assert!(c.trim().is_empty() || !name.trim_start_matches("__host-").starts_with("medforge_"), "{c}");
    }
    let out = std::process::Command::new("docker").args(["logs", container]).output().expect("docker logs");
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    let cookies: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("cookie:")).collect();
    assert!(cookies.iter().any(|c| c.contains("mine=1")), "the container's own cookies reach it: {cookies:?}");
    for c in cookies {
        assert!(!c.to_ascii_lowercase().contains("medforge_"), "a MedForge cookie reached the container: {c}");
    }
}

/// Through `front` with the visitor's `pass`: a second pass, planted for
/// the zone or the domain by a sibling session's script, opens nothing and
/// is removed. A GET comes back to itself with the deletions for both
/// parents (and a marker), nothing reaching the container; other methods
/// are refused; once the marker is back (the deletion did not take) the
/// request counts as having no pass (the handshake again). The
/// visitor's own pass alone still opens the session.
pub async fn assert_planted_passes_are_removed(front: &Hosted, pass: &str) {
    let host = front.host.split(':').next().expect("host");
    let zone = host.split_once('.').expect("a zone").1;
    let domain = zone.split_once('.').expect("a domain").1;
    let both = format!("medforge_pass=planted; {pass}");
    let r = front.request(reqwest::Method::GET, "/cgi-bin/hit?x=1", Some(&both)).send().await.expect("planted");
    assert_eq!(r.status(), 303);
    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(location, "/cgi-bin/hit?x=1", "back to itself");
    let set: Vec<String> =
        r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
    for parent in [zone, domain] {
        let deletion = format!("medforge_pass=; Domain={parent}; Path=/; Max-Age=0");
        assert!(set.contains(&deletion), "no deletion for {parent}: {set:?}");
    }
    assert!(set.iter().any(|c| c.starts_with("medforge_replanted=1;")), "{set:?}");
    let r = front.request(reqwest::Method::POST, "/cgi-bin/hit", Some(&both)).send().await.expect("post");
    assert_eq!(r.status(), 403);
    let (st, _, location, _) = front.get("/", Some(&format!("{both}; medforge_replanted=1")), &[]).await;
    assert_eq!(st, 302, "as if it had no pass");
    assert!(location.contains("/sessions/enter?"), "{location}");
    let (st, _, _, body) = front.get("/", Some(pass), &[]).await;
    assert_eq!(st, 200, "{body}");
}

/// The owner [`tunnels_close_when_revoked`] expects (a Cookie header of
/// this user's sign-up, with the sign-up's password).
pub const REVOKED_OWNER: &str = "revoked@example.org";

/// Waits for `tunnel` to be closed by the front: within `within`.
async fn assert_closes(tunnel: &mut tokio::net::TcpStream, within: Duration, why: &str) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 16];
    let end = tokio::time::timeout(within, tunnel.read(&mut buf)).await;
    assert!(matches!(end, Ok(Ok(0) | Err(_))), "the tunnel outlived {why}: {end:?}");
}

/// Tunnels through `front` into a session of [`REVOKED_OWNER`] (`owner`
/// is their login) end with the right that let them in: a logout ends
/// that login's tunnel, a password change all of the user's, an admin's
/// demotion the tunnel they had open in the owner's session. Others'
/// tunnels stay, and so does one whose user only had a limit changed.
pub async fn tunnels_close_when_revoked(s: &Server, front: &Hosted, owner: &str) {
    let addr = front.base.trim_start_matches("http://").to_owned();
    let boss = s.admin("boss@example.org").await;
    let helper = s.admin("helper@example.org").await;
    let open = |login: String| {
        let (front, addr) = (front.clone(), addr.clone());
        async move {
            let pass = front.enter(&login).await;
            let mut t = super::open_tunnel(&addr, &front.host, &pass).await;
            assert_eq!(super::echo(&mut t, "hello").await.0, "hello");
            t
        }
    };
    let login = |password: &'static str| async move {
        let body = serde_json::json!({"email": REVOKED_OWNER, "password": password});
        let (st, h, b) = s.post("/api/v2/auth/login", None, Some(body)).await;
        assert_eq!(st, 200, "{b}");
        super::session_cookie(&h).expect("cookie")
    };

    // A logout closes that login's tunnel, not the one of the owner's other login.
    let second = login("a long passphrase").await;
    let mut first_tunnel = open(owner.to_owned()).await;
    let mut second_tunnel = open(second.clone()).await;
    let mut bosses = open(boss.clone()).await;
    let (st, _, _) = s.post("/api/v2/auth/logout", Some(&second), None).await;
    assert_eq!(st, 200);
    assert_closes(&mut second_tunnel, Duration::from_secs(3), "its logout").await;
    assert_eq!(super::echo(&mut first_tunnel, "still").await.0, "still");

    // A password change closes every tunnel of the user.
    let change =
        serde_json::json!({"current_password": "a long passphrase", "new_password": "another long passphrase"});
    let r = s.http.patch(s.url("/api/v2/me")).header("cookie", owner).json(&change).send().await.expect("patch");
    assert_eq!(r.status(), 200);
    assert_closes(&mut first_tunnel, Duration::from_secs(3), "a password change").await;
    assert_eq!(super::echo(&mut bosses, "still").await.0, "still", "someone else's tunnel stays");

    // An admin demoted by another: their tunnel into the session closes,
    // and they cannot open another.
    let mut helpers = open(helper.clone()).await;
    let (_, _, me) = s.get("/api/v2/me", Some(&helper)).await;
    let helper_id = me["data"]["user_id"].as_str().expect("id").to_owned();
    // A change that takes no right away (a limit) leaves it open.
    let limit = serde_json::json!({"max_concurrent_sessions": 4});
    let (st, _, b) = s.patch(&format!("/api/v2/admin/users/{helper_id}"), Some(&boss), limit).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(super::echo(&mut helpers, "kept").await.0, "kept");
    let demote = serde_json::json!({"role": "user"});
    let (st, _, b) = s.patch(&format!("/api/v2/admin/users/{helper_id}"), Some(&boss), demote).await;
    assert_eq!(st, 200, "{b}");
    assert_closes(&mut helpers, Duration::from_secs(3), "a demotion").await;
    assert_eq!(front.try_enter(&helper).await.expect_err("no longer an admin").0, 403);
    assert_eq!(super::echo(&mut bosses, "still").await.0, "still");
}

/// Who gets which session host, with which pass, over which path, through
/// the built-in proxy of `s` (plain HTTP or `[tls]`), against a real
/// session container of the test pack.
pub async fn routing_matrix(s: &Server) {
    let (owner, _) = s.signup("owner@example.org").await;
    let (other, _) = s.signup("other@example.org").await;
    let (path, session) = s.start_session(&owner).await;
    let slug = session["slug"].as_str().expect("slug").to_owned();
    let port = s.port().to_owned();
    let h = s.hosted(format!("s-{slug}.external.{DOMAIN}:{port}"));

    // No pass: a GET goes to the UI's way in, which comes back to the same
    // page; anything else is refused (401; a browser is sent the same way).
    let (st, _, loc, _) = h.get("/some/page?x=1", None, &[]).await;
    assert_eq!(st, 302);
    assert!(
        loc.starts_with(&format!("{}://{DOMAIN}:{port}/sessions/enter?host=s%2D{slug}%2Eexternal", s.scheme())),
        "{loc}"
    );
    assert!(loc.contains("&next=%2Fsome%2Fpage%3Fx%3D1"), "{loc}");
    let r = h.request(reqwest::Method::POST, "/", None).send().await.expect("post");
    assert_eq!(r.status(), 401);
    // Signed out at the way in: to the sign-in page, and back here after.
    let (st, to_login, _) = h.ui_get(&loc, "medforge_session=nobody").await;
    assert_eq!(st, 303);
    assert!(to_login.starts_with("/login?next=%2Fsessions%2Fenter%3Fhost%3D"), "{to_login}");

    // Another user is refused at the way in: no code, no pass.
    let refused = h.try_enter(&other).await.expect_err("another user's handshake");
    assert_eq!(refused.0, 403, "{refused:?}");
    assert!(refused.1.contains("Session access denied."), "{refused:?}");
    // A login cookie sent to a session host opens nothing: only a pass does.
    let (st, _, _, _) = h.get("/", Some(&owner), &[]).await;
    assert_eq!(st, 302, "a login cookie is no pass");

    // The owner's pass reaches the container; a spoofed X-Upstream changes nothing.
    let pass = h.enter(&owner).await;
    let (st, _, _, body) = h.get("/", Some(&pass), &[]).await;
    assert_eq!((st, body.as_str()), (200, "medforge test pack\n"));
    let (st, _, _, body) = h.get("/healthz", Some(&pass), &[("x-upstream", "127.0.0.1:1")]).await;
    assert_eq!((st, body.as_str()), (200, "{\"status\":\"alive\"}\n"));
    // The container's own 404 passes as it is (not rewritten as a problem).
    let (st, ct, _, _) = h.get("/no/such/file", Some(&pass), &[]).await;
    assert_eq!(st, 404);
    assert_ne!(ct, "application/problem+json");
    // A used code is no good twice: a page with the way in again.
    let (_, _, loc, _) = h.get("/", None, &[]).await;
    let (_, back, _) = h.ui_get(&loc, &owner).await;
    let back = reqwest::Url::parse(&back).expect("url");
    let redeem = format!("{}?{}", back.path(), back.query().unwrap_or_default());
    assert_eq!(h.get(&redeem, None, &[]).await.0, 303);
    let (st, _, _, body) = h.get(&redeem, None, &[]).await;
    assert_eq!(st, 403, "{body}");
    assert!(body.contains("This link has expired") && body.contains("/sessions/enter?host="), "{body}");
    // MedForge's reserved paths never reach the container, however spelt.
    for p in ["/_medforge/", "/_medforge/other", "/_MedForge/enter/x", "/%5Fmedforge/x"] {
        let (st, _, _, body) = h.get(p, Some(&pass), &[]).await;
        assert_eq!((st, body.as_str()), (404, "Not found\n"), "{p}");
    }

    // The gate path on a session host: a plain 403, however spelt.
    for p in GATE_SPELLINGS {
        for cookie in [None, Some(pass.as_str()), Some(owner.as_str())] {
            let (st, _, _, body) = h.get(p, cookie, &[]).await;
            assert_eq!((st, body.as_str()), (403, "Forbidden\n"), "{p} {cookie:?}");
        }
    }
    // A pass is for its own host: elsewhere it opens nothing.
    let bogus = s.hosted(format!("s-aaaaaaaa.external.{DOMAIN}:{port}"));
    assert_eq!(bogus.get("/", Some(&pass), &[]).await.0, 302);
    // Unknown session hosts: 404 at the way in.
    let (_, _, loc, _) = bogus.get("/", None, &[]).await;
    assert_eq!(bogus.ui_get(&loc, &owner).await.0, 404);
    // The UI/API host is not proxied.
    let (st, _, _) = s.get("/healthz", None).await;
    assert_eq!(st, 200);

    // A killed container: 502 or 404, never a hang.
    docker(&["kill", &format!("mf-session-{slug}")]);
    let started = Instant::now();
    let (st, _, _, _) = h.get("/", Some(&pass), &[]).await;
    assert!(st == 502 || st == 404, "got {st}");
    assert!(started.elapsed() < Duration::from_secs(10));
    s.wait_status(&path, &owner, "error").await;
    let (st, _, _, _) = h.get("/", Some(&pass), &[]).await;
    assert_eq!(st, 404, "a session that is over is not found");
}
