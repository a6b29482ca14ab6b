//! The plain-HTTP listener of `tls.redirect_http_listen`: every request
//! to one of this deployment's hosts is sent to the same URL over HTTPS
//! (308, so a form's POST stays a POST), and nothing else is served on
//! it: no page, no API, no session, no cookie. A host that is not ours
//! gets a 400, not a redirect to wherever it names.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::Config;
use crate::http::host::request_host;

/// Where the redirect points: the hosts it serves and the HTTPS port.
#[derive(Debug)]
struct Target {
    base_domain: String,
    sessions_domain: String,
    /// `:<port>` of the HTTPS listener, or nothing on 443.
    port_suffix: String,
}

/// The redirect to the HTTPS listener on `https_port` (the port `listen`
/// is bound to: with port 0 in the config, the one it got).
pub fn app(config: &Config, https_port: u16) -> Router {
    let port = https_port;
    let target = Target {
        base_domain: config.base_domain.clone(),
        sessions_domain: config.sessions_domain().to_owned(),
        port_suffix: if port == 443 { String::new() } else { format!(":{port}") },
    };
    Router::new().fallback(redirect).with_state(Arc::new(target))
}

async fn redirect(State(target): State<Arc<Target>>, req: Request) -> Response {
    let host = request_host(req.headers());
    let Some(host) = host.filter(|h| h.is_within(&target.base_domain) || h.is_within(&target.sessions_domain)) else {
        return (StatusCode::BAD_REQUEST, "Not a host of this server.\n").into_response();
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{}{}{path}", host.name(), target.port_suffix);
    (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)], "Moved to HTTPS.\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn ask(app: &Router, host: &str, path: &str) -> (StatusCode, Option<String>) {
        let req = Request::builder().uri(path).header(header::HOST, host).body(axum::body::Body::empty()).expect("req");
        let r = app.clone().oneshot(req).await.expect("answer");
        (r.status(), r.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned))
    }

    #[tokio::test]
    async fn ours_go_to_https_on_the_listener_port_and_others_get_400() {
        let config = Config {
            base_domain: "lab.example.org".into(),
            sessions_domain: Some("lab-sessions.org".into()),
            ..Config::default()
        };
        let app = app(&config, 8443);
        assert_eq!(
            ask(&app, "lab.example.org", "/login?next=%2F").await,
            (StatusCode::PERMANENT_REDIRECT, Some("https://lab.example.org:8443/login?next=%2F".into()))
        );
        assert_eq!(
            ask(&app, "s-abcd1234.external.lab-sessions.org:80", "/x").await,
            (StatusCode::PERMANENT_REDIRECT, Some("https://s-abcd1234.external.lab-sessions.org:8443/x".into()))
        );
        assert_eq!(ask(&app, "evil.example.com", "/").await, (StatusCode::BAD_REQUEST, None));
        assert_eq!(ask(&app, "lab.example.org.evil.com", "/").await, (StatusCode::BAD_REQUEST, None));

        assert_eq!(
            ask(&super::app(&config, 443), "lab.example.org", "/").await.1.as_deref(),
            Some("https://lab.example.org/")
        );
    }
}
