//! The built-in session proxy (routing = "builtin"): the routing matrix of
//! routing-e2e-evidence.md through `medforge serve` itself, against real
//! session containers of the test pack.

mod common;

use std::time::{Duration, Instant};

use common::{DOMAIN, Db, Options, Server, docker};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HOST, LOCATION};

struct Hosted<'a> {
    s: &'a Server,
    host: String,
}

impl Hosted<'_> {
    /// A GET to the session host: (status, content type, location, body).
    async fn get(&self, path: &str, cookie: Option<&str>, headers: &[(&str, &str)]) -> (u16, String, String, String) {
        let mut req = self.s.http.get(self.s.url(path)).header(HOST, &self.host);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r =
            tokio::time::timeout(Duration::from_secs(15), req.send()).await.expect("answered in time").expect("send");
        let header = |name| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let (status, ct, loc) = (r.status().as_u16(), header(CONTENT_TYPE), header(LOCATION));
        (status, ct, loc, r.text().await.expect("body"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routing_matrix_through_the_builtin_proxy() {
    let s = Server::start(Db::Sqlite, Options::default()).await;
    let (owner, _) = s.signup("owner@example.org").await;
    let (other, _) = s.signup("other@example.org").await;
    let (st, _, b) = s.post("/api/v2/external/sessions", Some(&owner), None).await;
    assert_eq!(st, 201, "{b}");
    let id = b["data"]["session"]["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v2/external/sessions/{id}");
    let session = s.wait_status(&path, &owner, "running").await;
    let slug = session["slug"].as_str().expect("slug").to_owned();
    let port = s.base.rsplit(':').next().expect("port").to_owned();
    let h = Hosted { s: &s, host: format!("s-{slug}.external.{DOMAIN}:{port}") };

    // Anonymous: 401 for API clients, a login redirect that comes back for browsers.
    let (st, ct, _, body) = h.get("/", None, &[]).await;
    assert_eq!((st, ct.as_str()), (401, "application/problem+json"), "{body}");
    let (st, _, loc, _) = h.get("/some/page?x=1", None, &[("accept", "text/html")]).await;
    assert_eq!(st, 302);
    assert!(loc.starts_with(&format!("http://{DOMAIN}:{port}/login?next=")), "{loc}");
    assert!(loc.contains(&format!("s%2D{slug}%2Eexternal")) && loc.contains("x%3D1"), "{loc}");

    // Another user: 403, as a problem or a page.
    let (st, ct, _, body) = h.get("/", Some(&other), &[]).await;
    assert_eq!((st, ct.as_str()), (403, "application/problem+json"), "{body}");
    assert!(body.contains("Session access denied."), "{body}");
    let (st, ct, _, body) = h.get("/", Some(&other), &[(ACCEPT.as_str(), "text/html")]).await;
    assert_eq!((st, ct.as_str()), (403, "text/html; charset=utf-8"));
    assert!(body.contains("/login?next="), "{body}");

    // The owner reaches the container; a spoofed X-Upstream changes nothing.
    let (st, _, _, body) = h.get("/", Some(&owner), &[]).await;
    assert_eq!((st, body.as_str()), (200, "medforge test pack\n"));
    let (st, _, _, body) = h.get("/healthz", Some(&owner), &[("x-upstream", "127.0.0.1:1")]).await;
    assert_eq!((st, body.as_str()), (200, "{\"status\":\"alive\"}\n"));
    // The container's own 404 passes as it is (not rewritten as a problem).
    let (st, ct, _, _) = h.get("/no/such/file", Some(&owner), &[]).await;
    assert_eq!(st, 404);
    assert_ne!(ct, "application/problem+json");

    // The gate path on a session host: a plain 403, however spelt.
    for p in [
        "/api/v2/auth/session-proxy",
        "/API/v2/auth/session-proxy",
        "/api%2Fv2%2Fauth%2Fsession-proxy",
        "/api/v2/auth/session-proxy/",
        "//api//v2//auth//session-proxy",
    ] {
        for cookie in [None, Some(owner.as_str())] {
            let (st, _, _, body) = h.get(p, cookie, &[]).await;
            assert_eq!((st, body.as_str()), (403, "Forbidden\n"), "{p} {cookie:?}");
        }
    }
    // Unknown session hosts: 404.
    let bogus = Hosted { s: &s, host: format!("s-aaaaaaaa.external.{DOMAIN}:{port}") };
    assert_eq!(bogus.get("/", Some(&owner), &[]).await.0, 404);
    // The UI/API host is not proxied.
    let (st, _, _) = s.get("/healthz", None).await;
    assert_eq!(st, 200);

    // A killed container: 502 or 404, never a hang.
    docker(&["kill", &format!("mf-session-{slug}")]);
    let started = Instant::now();
    let (st, _, _, _) = h.get("/", Some(&owner), &[]).await;
    assert!(st == 502 || st == 404, "got {st}");
    assert!(started.elapsed() < Duration::from_secs(10));
    s.wait_status(&path, &owner, "error").await;
    let (st, _, _, _) = h.get("/", Some(&owner), &[]).await;
    assert_eq!(st, 404, "a session that is over is not found");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_session_is_not_found() {
    let s = Server::start(Db::Sqlite, Options::default()).await;
    let (owner, _) = s.signup("stops@example.org").await;
    let (_, _, b) = s.post("/api/v2/external/sessions", Some(&owner), None).await;
    let id = b["data"]["session"]["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v2/external/sessions/{id}");
    let session = s.wait_status(&path, &owner, "running").await;
    let port = s.base.rsplit(':').next().expect("port").to_owned();
    let h = Hosted { s: &s, host: format!("s-{}.external.{DOMAIN}:{port}", session["slug"].as_str().expect("slug")) };
    assert_eq!(h.get("/", Some(&owner), &[]).await.0, 200);
    let (st, _, _) = s.post(&format!("{path}/stop"), Some(&owner), None).await;
    assert_eq!(st, 202);
    // Refused from the stop's answer on, before the container is gone.
    let (st, _, _, body) = h.get("/", Some(&owner), &[]).await;
    assert_eq!(st, 404, "{body}");
    s.stop().await;
}
