//! The app built in-process (`medforge_server::app::app` over the stack the
//! config names: SQLite in a temporary directory, directory workspaces,
//! the local Docker engine), for what is about the HTTP edge's logic: how
//! each adapter answers a refusal, where a signed-out form comes back to,
//! the one host rule. What is about the binary (its CLI, serving, signals)
//! stays in the black-box tests beside this one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
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
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle();
        let state =
            stack::build(config, handle).await.expect("the stack (is dockerd running? scripts/test.sh starts it)");
        Self { state, _dir: dir }
    }

    /// One request through the whole app, from a loopback client.
    async fn send(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let client: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let app = app::app(self.state.clone()).layer(MockConnectInfo(client));
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
    // answers (a signed-out browser goes to the login page and back).
    for host in ["s-abcdefgh.external.medforge.localhost:8080", "S-ABCDEFGH.External.MedForge.Localhost.:8080"] {
        let (status, h, _) = s.send(html(host)).await;
        assert_eq!(status, StatusCode::FOUND, "{host}");
        let location = h.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(
            location,
            "http://medforge.localhost:8080/login?next=http%3A%2F%2Fs%2Dabcdefgh%2Eexternal%2Emedforge%2Elocalhost%3A8080%2Fx%3Fy%3D1",
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
    let (status, h, body) = s.send(gate(host, false)).await;
    assert_eq!((status, content_type(&h)), (StatusCode::UNAUTHORIZED, "application/problem+json"));
    assert!(body.contains("\"instance\":\"/api/v2/auth/session-proxy\""), "{body}");
    // A browser gets the same status with a page that sends it to sign in.
    let (status, h, page) = s.send(gate(host, true)).await;
    assert_eq!((status, content_type(&h)), (StatusCode::UNAUTHORIZED, "text/html; charset=utf-8"));
    assert!(
        page.contains("/login?next=http%3A%2F%2Fs%2Dabcdefgh%2Eexternal%2Emedforge%2Elocalhost%2Fw%3Fx%3D1"),
        "{page}"
    );
    assert!(h.get("x-upstream").is_none());
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
