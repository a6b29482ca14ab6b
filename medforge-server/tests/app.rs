//! The app built in-process (`medforge_server::app::app` over the stack the
//! config names: SQLite in a temporary directory, directory workspaces,
//! the local Docker engine), for what is about the HTTP edge's logic: how
//! each adapter answers a refusal, where a signed-out form comes back to,
//! the one host rule. What is about the binary (its CLI, serving, signals)
//! stays in the black-box tests beside this one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use medforge_server::config::{Config, GpuModeSetting, Routing};
use medforge_server::service::AppState;
use medforge_server::{app, stack};
use tower::ServiceExt;

struct InProcess {
    state: Arc<AppState>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    async fn new(routing: Routing) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config { data_dir: dir.path().join("data"), routing, ..Config::default() };
        // The GPU mode is not what these tests are about: no engine query for it.
        config.runtime.gpu_mode = GpuModeSetting::None;
        config.gpus.ids = medforge_server::config::GpuIds::List(vec![0]);
        // These tests make their users by signing up.
        config.auth.signup = medforge_server::config::SignupPolicy::Open;
        // Nor is isolation (tests/firewall.rs): no rules on this host.
        config.firewall.kind = medforge_server::config::FirewallKind::None;
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle();
        let state =
            stack::build(config, handle).await.expect("the stack (is dockerd running? scripts/test.sh starts it)");
        Self { state, _dir: dir }
    }

    /// One request through the whole app, from a loopback client.
    async fn send(&self, mut request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let client: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        // As `serve` does with the connection's peer (what the Caller reads).
        request.extensions_mut().insert(ConnectInfo(client));
        let app = app::app(self.state.clone());
        let response = app.oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn get(host: &str, path: &str) -> Request<Body> {
    Request::get(path).header(header::HOST, host).body(Body::empty()).expect("request")
}

fn post_form(host: &str, path: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .expect("request")
}

fn content_type(h: &axum::http::HeaderMap) -> &str {
    h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn one_error_two_faces_a_problem_for_the_api_and_a_page_or_redirect_for_the_ui() {
    let s = InProcess::new(Routing::Builtin).await;
    let ui = "medforge.localhost:8080";
    // The API: a problem document with the request's path and id.
    let (status, h, body) = s.send(get(ui, "/api/v2/admin/gpus")).await;
    assert_eq!((status, content_type(&h)), (StatusCode::UNAUTHORIZED, "application/problem+json"));
    let problem: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(problem["instance"], "/api/v2/admin/gpus");
    assert_eq!(problem["detail"], "Authentication required.");
    assert_eq!(problem["request_id"].as_str(), h.get("x-request-id").and_then(|v| v.to_str().ok()));
    // The UI: the same refusal is a way to sign in that comes back here...
    let (status, h, _) = s.send(get(ui, "/admin/events")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h.get(header::LOCATION).and_then(|v| v.to_str().ok()), Some("/login?next=%2Fadmin%2Fevents"));
    // ...or, for a form's post, to the page the form is on.
    let (status, h, _) = s.send(post_form(ui, "/admin/users/00000000-0000-0000-0000-000000000000", "role=admin")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h.get(header::LOCATION).and_then(|v| v.to_str().ok()), Some("/login?next=%2Fadmin%2Fusers"));
    // No route: a problem document, whatever the path looks like.
    let (status, h, _) = s.send(get(ui, "/no/such/page")).await;
    assert_eq!((status, content_type(&h)), (StatusCode::NOT_FOUND, "application/problem+json"));
}

#[tokio::test]
async fn session_hosts_follow_the_one_host_rule() {
    let s = InProcess::new(Routing::Builtin).await;
    let html = |host: &str| {
        Request::get("/x?y=1")
            .header(header::HOST, host)
            .header(header::ACCEPT, "text/html")
            .body(Body::empty())
            .expect("request")
    };
    // Any case and a trailing dot: still the session host, so the proxy
    // answers (a browser without a pass goes to the UI's way in, which
    // comes back to the same page).
    for host in ["s-abcdefgh.external.medforge.localhost:8080", "S-ABCDEFGH.External.MedForge.Localhost.:8080"] {
        let (status, h, _) = s.send(html(host)).await;
        assert_eq!(status, StatusCode::FOUND, "{host}");
        let location = h.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(
            location,
            "http://medforge.localhost:8080/sessions/enter?host=s%2Dabcdefgh%2Eexternal%2Emedforge%2Elocalhost&next=%2Fx%3Fy%3D1",
            "{host}"
        );
    }
    // An empty port is no host at all: not the proxy's, and no login page
    // offers to come back to it.
    let (status, h, _) = s.send(html("s-abcdefgh.external.medforge.localhost:")).await;
    assert_eq!((status, content_type(&h)), (StatusCode::NOT_FOUND, "application/problem+json"));
    let next =
        |page: &str| page.split("name=\"next\" value=\"").nth(1).and_then(|v| v.split('"').next()).map(str::to_owned);
    let (_, _, page) = s.send(get("medforge.localhost", "/login?next=http://medforge.localhost:/")).await;
    assert_eq!(next(&page).as_deref(), Some("/"));
    let (_, _, page) = s.send(get("medforge.localhost", "/login?next=http://medforge.localhost.:8080/x")).await;
    assert_eq!(next(&page).as_deref(), Some("http://medforge.localhost.:8080/x"), "a trailing dot is the same host");
}

#[tokio::test]
async fn the_gate_endpoint_maps_each_refusal_once() {
    let s = InProcess::new(Routing::Caddy).await;
    let gate = |host: &str, html: bool| {
        let mut r = Request::get("/api/v2/auth/session-proxy").header(header::HOST, host);
        if html {
            r = r.header(header::ACCEPT, "text/html").header("x-forwarded-uri", "/w?x=1");
        }
        r.body(Body::empty()).expect("request")
    };
    let host = "s-abcdefgh.external.medforge.localhost";
    // No pass: a GET is sent to the way in (Caddy hands the redirect on).
    let (status, h, _) = s.send(gate(host, false)).await;
    assert_eq!(status, StatusCode::FOUND);
    let way_in =
        "http://medforge.localhost/sessions/enter?host=s%2Dabcdefgh%2Eexternal%2Emedforge%2Elocalhost&next=%2F";
    assert_eq!(h.get(header::LOCATION).and_then(|v| v.to_str().ok()), Some(way_in));
    // Another method cannot be redirected: 401, a problem for programs...
    let post = |html: bool| {
        let mut r = Request::get("/api/v2/auth/session-proxy")
            .header(header::HOST, host)
            .header("x-forwarded-method", "POST")
            .header("x-forwarded-uri", "/w?x=1");
        if html {
            r = r.header(header::ACCEPT, "text/html");
        }
        r.body(Body::empty()).expect("request")
    };
    let (status, h, body) = s.send(post(false)).await;
    assert_eq!((status, content_type(&h)), (StatusCode::UNAUTHORIZED, "application/problem+json"));
    assert!(body.contains("\"instance\":\"/w\""), "{body}");
    // ...and for a browser, a page that sends it the way in.
    let (status, h, page) = s.send(post(true)).await;
    assert_eq!((status, content_type(&h)), (StatusCode::UNAUTHORIZED, "text/html; charset=utf-8"));
    assert!(
        page.contains("/sessions/enter?host=s%2Dabcdefgh%2Eexternal%2Emedforge%2Elocalhost&#38;next=%2Fw%3Fx%3D1"),
        "{page}"
    );
    assert!(h.get("x-upstream").is_none());
    // A code nobody issued: a page with the way in again, no pass.
    let (status, h, page) = s.send(gate(host, true)).await;
    assert_eq!(status, StatusCode::FOUND, "{page}");
    let mut r = Request::get("/api/v2/auth/session-proxy").header(header::HOST, host);
    r = r.header("x-forwarded-uri", "/_medforge/enter?code=forged&next=/x");
    let (status, h2, page) = s.send(r.body(Body::empty()).expect("request")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("This link has expired"), "{page}");
    assert!(h2.get(header::SET_COOKIE).is_none() && h.get("x-upstream").is_none());
}

/// The CSRF token of the web UI's forms: every post of a signed-in browser
/// must carry its own login's token; the sign-in form needs none. And
/// every page of ours says how it may be framed and run.
#[tokio::test]
async fn ui_forms_need_the_csrf_token_of_their_login() {
    let s = InProcess::new(Routing::Builtin).await;
    let ui = "medforge.localhost:8080";
    let signup = |email: &str| {
        Request::post("/api/v2/auth/signup")
            .header(header::HOST, ui)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(format!(r#"{{"email":"{email}","password":"a long passphrase"}}"#)))
            .expect("request")
    };
    let cookie_of = |h: &axum::http::HeaderMap| {
        h.get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("cookie")
            .to_owned()
    };
    let (status, h, body) = s.send(signup("csrf-a@example.org")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let alice = cookie_of(&h);
    let (_, h, _) = s.send(signup("csrf-b@example.org")).await;
    let bob = cookie_of(&h);
    let page = |cookie: &str| Request::get("/account").header(header::HOST, ui).header(header::COOKIE, cookie);
    let (status, h, account) = s.send(page(&alice).body(Body::empty()).expect("request")).await;
    assert_eq!(status, StatusCode::OK);
    for (name, want) in [
        ("content-security-policy", "frame-ancestors 'none'"),
        ("content-security-policy", "script-src 'self'"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        let got = h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(got.contains(want), "{name}: {got}");
    }
    let token_in = |page: &str| {
        page.split("name=\"csrf\" value=\"").nth(1).and_then(|v| v.split('"').next()).map(str::to_owned).expect("token")
    };
    let alices = token_in(&account);
    assert_eq!(alices.len(), 64, "{alices}");
    let (_, _, bobs_page) = s.send(page(&bob).body(Body::empty()).expect("request")).await;
    let bobs = token_in(&bobs_page);
    assert_ne!(alices, bobs, "a token is its login's");
    let post = |token: Option<&str>| {
        let form = match token {
            Some(t) => format!("csrf={t}&email=new%40example.org"),
            None => "email=new%40example.org".to_owned(),
        };
        Request::post("/account")
            .header(header::HOST, ui)
            .header(header::COOKIE, &alice)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .expect("request")
    };
    for token in [None, Some(bobs.as_str()), Some("0".repeat(64).as_str())] {
        let (status, _, body) = s.send(post(token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{token:?}");
        assert!(body.contains("CSRF token"), "{body}");
    }
    // With her own token the form reaches the handler (which wants the
    // current password for an email change: a 4xx of its own, not 403).
    let (status, _, body) = s.send(post(Some(&alices))).await;
    assert_ne!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(!body.contains("CSRF token"), "{body}");
    // The header does as well as the field.
    let with_header = Request::post("/logout")
        .header(header::HOST, ui)
        .header(header::COOKIE, &alice)
        .header("x-csrf-token", &alices)
        .body(Body::empty())
        .expect("request");
    assert_eq!(s.send(with_header).await.0, StatusCode::SEE_OTHER);
    // Sign-in takes no token, even from a browser with a (now dead) login.
    let login = Request::post("/login")
        .header(header::HOST, ui)
        .header(header::COOKIE, &alice)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("email=csrf-a%40example.org&password=a+long+passphrase"))
        .expect("request");
    let (status, h, _) = s.send(login).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(h.get(header::SET_COOKIE).is_some());
}

/// Every JSON answer of every operation has a schema that says what its
/// `data` is (not "any value"), every schema it refers to exists, and
/// the shared error responses are there: schemathesis checks bodies
/// against these.
#[tokio::test]
async fn the_openapi_document_describes_every_response_body() {
    let s = InProcess::new(Routing::Builtin).await;
    let (status, _, body) = s.send(get("medforge.localhost", "/api/v2/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    let schemas = doc["components"]["schemas"].as_object().expect("components.schemas");
    let resolve = |v: &serde_json::Value| -> serde_json::Value {
        match v.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => schemas
                .get(r.trim_start_matches("#/components/schemas/"))
                .unwrap_or_else(|| panic!("{r} is not among the schemas"))
                .clone(),
            None => v.clone(),
        }
    };
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            for (code, response) in op["responses"].as_object().expect("responses") {
                let Some(content) = response.get("content").and_then(|c| c.as_object()) else { continue };
                for (media, body) in content {
                    if !media.contains("json") {
                        continue;
                    }
                    let schema = resolve(&body["schema"]);
                    let where_ = format!("{method} {path} {code} {media}");
                    let properties = schema["properties"].as_object().unwrap_or_else(|| panic!("{where_}: {schema}"));
                    if properties.contains_key("data") {
                        let data = resolve(&properties["data"]);
                        assert!(
                            data.get("type").is_some()
                                || data.get("properties").is_some()
                                || data.get("allOf").is_some(),
                            "{where_}: data has no schema: {data}"
                        );
                        assert!(properties.contains_key("meta"), "{where_}");
                    } else {
                        assert!(properties.contains_key("detail") && properties.contains_key("status"), "{where_}");
                    }
                    checked += 1;
                }
            }
            // Every route behind a login documents its 401 (the shared responses).
            if path.starts_with("/api/v2/me") || path.contains("/sessions") || path.starts_with("/api/v2/admin") {
                assert!(op["responses"].get("401").is_some(), "{method} {path} documents no 401");
            }
        }
    }
    assert!(checked > 40, "only {checked} JSON responses");
    for name in ["Session", "Me", "UserView", "GpuView", "SnapshotView", "StoredEvent", "ProblemDoc"] {
        assert!(schemas.contains_key(name), "no {name} schema");
    }
    // Enums as the API spells them (schemathesis holds answers to these).
    let values = |name: &str| -> Vec<String> {
        schemas[name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {}", schemas[name]))
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    };
    use medforge_core::model::{Exposure, Role, SessionStatus};
    assert_eq!(values("Role"), Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>());
    assert_eq!(values("Exposure"), Exposure::ALL.iter().map(|e| e.as_str()).collect::<Vec<_>>());
    assert_eq!(values("SessionStatus"), SessionStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>());
}
