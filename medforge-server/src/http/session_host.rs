//! What a request to a session host gets, in both routing modes: the
//! built-in proxy asks [`answer`] for each request it serves, and the gate
//! endpoint (Caddy's `forward_auth`) for each request Caddy asks about, so
//! both fronts follow one rule (docs/security.md):
//!
//! - `/_medforge/...` is MedForge's, never the container's: `GET`
//!   [`ENTER_PATH`] trades a handshake code for the host's pass (step 3 of
//!   `crate::service::passes`), anything else there is 404;
//! - on internal hosts, code-server's port proxy (`/proxy/<port>/`,
//!   `/absproxy/<port>/`) is refused: it would serve any port of the
//!   container past the no-download rule;
//! - with a pass the gate allows: forward;
//! - without a valid pass, a `GET` (or `HEAD`) is sent to the UI host's
//!   `/sessions/enter` (step 1), which comes back with a code; anything
//!   else is refused (`crate::http::refusal`).

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use medforge_core::auth::LoginToken;
use medforge_core::gate::Refusal;
use medforge_core::host::{Host, SessionHost};
use medforge_core::model::{Exposure, Slug};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::cookie::{self, Kind};
use super::planted;
use super::problem::Problem;
use super::refusal::{self, Unauthenticated};
use crate::config::{Config, GateUpstream};
use crate::service::AppState;
use crate::service::gatekeeper::{self, Decision, Upstream};
use crate::service::passes::Grant;

/// Where a session host takes a handshake code (reserved on every session host).
pub const ENTER_PATH: &str = "/_medforge/enter";
/// The first path segment that is MedForge's on a session host.
const RESERVED_SEGMENT: &str = "_medforge";

/// The request to a session host, as the front saw it.
#[derive(Debug)]
pub struct Asked<'a> {
    pub host: &'a Host,
    pub method: &'a Method,
    /// Path and query, as the client sent them.
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    /// A WebSocket (or other) upgrade.
    pub upgrade: bool,
}

/// What the front does with it.
#[derive(Debug)]
pub enum Answer {
    /// To the session's container.
    Forward { slug: Slug, upstream: Upstream, grant: Grant },
    /// This, and nothing reaches the container.
    Respond(Response),
}

/// The path's segments as a server behind us may read them: decoded
/// (three times over), lower-cased, `\` read as `/`, empty and `.`
/// segments gone.
pub fn segments(path: &str) -> Vec<String> {
    let mut p = path.to_owned();
    for _ in 0..3 {
        p = percent_decode_str(&p).decode_utf8_lossy().into_owned();
    }
    p.to_ascii_lowercase()
        .replace('\\', "/")
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .map(str::to_owned)
        .collect()
}

/// The answer to `asked` (see the module docs). `unauthenticated` says how
/// a refused browser that cannot be redirected is told.
pub async fn answer(
    state: &AppState,
    asked: Asked<'_>,
    form: GateUpstream,
    unauthenticated: Unauthenticated,
) -> Answer {
    let config = &state.config;
    let path = asked.uri.path();
    let parts = segments(path);
    let session_host = SessionHost::parse(asked.host, config.sessions_domain());
    if parts.first().is_some_and(|s| s == RESERVED_SEGMENT) {
        let enter = parts.len() == 2 && parts[1] == "enter" && matches!(*asked.method, Method::GET | Method::HEAD);
        return Answer::Respond(match (enter, &session_host) {
            (true, Some(at)) => redeem(state, asked, at).await,
            _ => plain(StatusCode::NOT_FOUND, "Not found\n"),
        });
    }
    let Some(session_host) = session_host else {
        // Not a session's host by the public naming rule (no slug exists
        // behind it): nothing to sign in to.
        return Answer::Respond(refusal::refuse(config, asked.headers, "/", path, Refusal::NotFound, unauthenticated));
    };
    if session_host.exposure == Exposure::Internal && parts.first().is_some_and(|s| s == "proxy" || s == "absproxy") {
        return Answer::Respond(
            Problem::http(StatusCode::FORBIDDEN, "Internal sessions serve no ports but the IDE's.").standalone(path),
        );
    }
    // A pass planted for the zone by a sibling session host: removed, as
    // on the UI hosts.
    let zone = format!("{}.{}", session_host.exposure, config.sessions_domain());
    let planted_for = [zone, config.sessions_domain().to_owned()];
    if let Some(r) = planted::answer(config, Kind::Pass, &planted_for, asked.method, asked.uri, asked.headers) {
        return Answer::Respond(r);
    }
    let pass = cookie::token(asked.headers, config, Kind::Pass);
    let decided = gatekeeper::decide(state, pass.as_ref(), asked.host, &session_host, form).await;
    let refusal = match decided {
        Ok(Decision::Allow { slug, upstream, grant }) => return Answer::Forward { slug, upstream, grant },
        Ok(Decision::Refuse(refusal)) => refusal,
        Err(e) => {
            tracing::error!(error = ?e, "the session gate failed");
            return Answer::Respond(
                Problem::http(StatusCode::BAD_GATEWAY, "The session gate failed.").standalone(path),
            );
        }
    };
    let way_in = enter_url(config, asked.host, asked.uri);
    let navigating = matches!(*asked.method, Method::GET | Method::HEAD) && !asked.upgrade;
    if refusal == Refusal::Unauthenticated && navigating {
        return Answer::Respond(handshake_redirect(StatusCode::FOUND, &way_in));
    }
    Answer::Respond(refusal::refuse(config, asked.headers, &way_in, path, refusal, unauthenticated))
}

/// Step 1's target: the UI host's `/sessions/enter` for this session host
/// and the path asked for, on the port the request came in on.
pub fn enter_url(config: &Config, host: &Host, uri: &Uri) -> String {
    let here = uri.path_and_query().map_or("/", |p| p.as_str());
    format!(
        "{}://{}{}/sessions/enter?host={}&next={}",
        config.scheme(),
        config.base_domain,
        host.port_suffix(),
        utf8_percent_encode(host.name(), NON_ALPHANUMERIC),
        utf8_percent_encode(here, NON_ALPHANUMERIC)
    )
}

/// Step 2's target: [`ENTER_PATH`] on the session host `host`, on the UI
/// request's port `port_suffix`.
pub fn redeem_url(config: &Config, host: &SessionHost, port_suffix: &str, code: &LoginToken, next: &str) -> String {
    format!(
        "{}://{}{port_suffix}{ENTER_PATH}?code={}&next={}",
        config.scheme(),
        host.name(config.sessions_domain()),
        code.expose(),
        utf8_percent_encode(next, NON_ALPHANUMERIC)
    )
}

/// Step 3: the code in the query for a pass, then on to `next`.
async fn redeem(state: &AppState, asked: Asked<'_>, at: &SessionHost) -> Response {
    let query = asked.uri.query().unwrap_or_default();
    let value = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    };
    let next = local_path(&value("next").unwrap_or_default());
    let Some(code) = value("code").map(|c| LoginToken::from_client(&c)) else {
        return plain(StatusCode::BAD_REQUEST, "No code.\n");
    };
    match gatekeeper::redeem(state, &code, at).await {
        Ok(Some((pass, lifetime))) => {
            let mut r = handshake_redirect(StatusCode::SEE_OTHER, &next);
            r.headers_mut().insert(header::SET_COOKIE, cookie::set_pass(&state.config, &pass, lifetime.as_secs()));
            r
        }
        Ok(None) => {
            let again = enter_url(&state.config, asked.host, &next.parse().unwrap_or_else(|_| Uri::from_static("/")));
            refusal::expired_link(&again)
        }
        Err(e) => {
            tracing::error!(error = ?e, "redeeming a session code failed");
            Problem::http(StatusCode::BAD_GATEWAY, "The session gate failed.").standalone(asked.uri.path())
        }
    }
}

/// `next` when it is a path on this host; `/` for anything that could
/// leave it (`//host`, `/\host`, a scheme, control characters).
pub fn local_path(next: &str) -> String {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if local { next.to_owned() } else { "/".to_owned() }
}

/// A redirect of the handshake: it tells nobody where it came from (the
/// URL may carry a code) and is never cached.
pub fn handshake_redirect(status: StatusCode, to: &str) -> Response {
    let mut r = status.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_read_as_a_server_behind_would() {
        assert_eq!(segments("/_MedForge/%65nter"), ["_medforge", "enter"]);
        assert_eq!(segments("//proxy%252F9000/x"), ["proxy", "9000", "x"]);
        assert_eq!(segments("/./absproxy\\9000"), ["absproxy", "9000"]);
        assert!(segments("/").is_empty());
    }

    #[test]
    fn only_local_paths_are_followed_after_a_code() {
        assert_eq!(local_path("/x?y=1"), "/x?y=1");
        for bad in ["//evil.example", "/\\evil.example", "https://evil.example", "/\t/evil.example", "", "x"] {
            assert_eq!(local_path(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn the_handshake_urls_keep_the_port_and_escape_what_they_carry() {
        let config = Config::default();
        let host: Host = "s-abcdefgh.external.medforge.localhost:8080".parse().expect("host");
        let uri: Uri = "/a b?c=d&e".parse().unwrap_or_else(|_| Uri::from_static("/a%20b?c=d&e"));
        assert_eq!(
            enter_url(&config, &host, &uri),
            "http://medforge.localhost:8080/sessions/enter?host=s%2Dabcdefgh%2Eexternal%2Emedforge%2Elocalhost\
             &next=%2Fa%2520b%3Fc%3Dd%26e"
        );
        let at = SessionHost::parse(&host, "medforge.localhost").expect("session host");
        let code = LoginToken::from_client("c0de");
        assert_eq!(
            redeem_url(&config, &at, ":8080", &code, "/x?y"),
            "http://s-abcdefgh.external.medforge.localhost:8080/_medforge/enter?code=c0de&next=%2Fx%3Fy"
        );
    }
}
