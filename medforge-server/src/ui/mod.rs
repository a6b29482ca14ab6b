//! The web UI: server-rendered pages (askama templates, compile-checked) on
//! the UI hosts, with our own small stylesheet and script. Every form posts
//! and every page works without JavaScript; the script only adds live
//! updates (the progress event stream) and opens the IDE when a session is
//! ready. Handlers share their logic with the API's (`crate::api`): the UI
//! shows the same outcomes as pages.

/// The value, or return the page the error already is (a login redirect,
/// an error page): every handler's first lines.
macro_rules! or_answer {
    ($result:expr) => {
        match $result {
            Ok(v) => v,
            Err(page) => return page,
        }
    };
}

mod account;
mod admin;
mod auth;
mod sessions;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use medforge_core::model::{self, Session, SessionStatus, User};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::api::{ApiError, Finished};
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(sessions::dashboard))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/signup", get(auth::signup_page).post(auth::signup))
        .route("/logout", post(auth::logout))
        .route("/sessions", post(sessions::start))
        .route("/sessions/{id}", get(sessions::progress))
        .route("/sessions/{id}/stop", post(sessions::stop))
        .route("/snapshots", get(account::snapshots))
        .route("/account", get(account::show).post(account::update))
        .route("/admin", get(admin::gpus))
        .route("/admin/gpus/{id}", post(admin::toggle_gpu))
        .route("/admin/sessions", get(admin::sessions))
        .route("/admin/sessions/{id}/stop", post(admin::stop))
        .route("/admin/users", get(admin::users))
        .route("/admin/users/{id}", post(admin::update_user))
        .route("/admin/events", get(admin::events))
        .route("/static/app.css", get(stylesheet))
        .route("/static/app.js", get(script))
        .route("/static/favicon.svg", get(icon))
        .route("/favicon.ico", get(icon))
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../static/app.css"))
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../static/app.js"))
}

async fn icon() -> Response {
    asset("image/svg+xml", include_str!("../../static/favicon.svg"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

/// What every page's frame shows.
#[derive(Debug, Default)]
pub struct Chrome {
    pub title: String,
    pub user: Option<ChromeUser>,
    /// The main navigation entry to mark as current.
    pub nav: &'static str,
    pub error: Option<String>,
    pub info: Option<String>,
    /// Without JavaScript, reload every N seconds (0: never).
    pub refresh_secs: u32,
}

#[derive(Debug)]
pub struct ChromeUser {
    pub email: String,
    pub is_admin: bool,
}

impl Chrome {
    pub fn new(title: impl Into<String>, user: Option<&User>, nav: &'static str) -> Self {
        Self {
            title: title.into(),
            user: user.map(|u| ChromeUser { email: u.email.to_string(), is_admin: u.is_admin() }),
            nav,
            ..Self::default()
        }
    }
}

/// A rendered page. Marked finished, so the API's error rewriting leaves a
/// 4xx page as it is.
pub fn render(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut r = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.extensions_mut().insert(Finished);
            r
        }
        Err(e) => ApiError::internal(format!("rendering a page: {e}")).into_response(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: String,
    detail: String,
}

/// An error from the shared logic, as a page: the problem's own words
/// (internal causes were logged and are never shown).
pub fn error_page(user: Option<&User>, error: &ApiError) -> Response {
    let p = error.problem();
    let mut detail = p.detail.clone();
    for f in &p.errors {
        detail.push_str(&format!(" {}: {}.", f.field.replace('_', " "), f.message));
    }
    let page = ErrorPage { chrome: Chrome::new(p.title.clone(), user, ""), heading: p.title.clone(), detail };
    render(p.status, page)
}

/// The signed-in user, or a redirect to the login page that comes back here.
pub async fn signed_in(state: &AppState, headers: &HeaderMap, here: &str) -> Result<User, Response> {
    match crate::api::auth::current_user(state, headers).await {
        Ok((user, _)) => Ok(user),
        Err(e) if e.problem().status == StatusCode::UNAUTHORIZED => {
            Err(Redirect::to(&format!("/login?next={}", utf8_percent_encode(here, NON_ALPHANUMERIC))).into_response())
        }
        Err(e) => Err(error_page(None, &e)),
    }
}

/// The signed-in admin, a login redirect, or a 403 page.
pub async fn signed_in_admin(state: &AppState, headers: &HeaderMap, here: &str) -> Result<User, Response> {
    let user = signed_in(state, headers, here).await?;
    if !user.is_admin() {
        return Err(error_page(Some(&user), &ApiError::forbidden("This page is for admins.")));
    }
    Ok(user)
}

/// `:port` of this request's Host (the session hosts share the UI's port).
fn port_of(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    match host.rsplit_once(':') {
        Some((_, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => format!(":{p}"),
        _ => String::new(),
    }
}

/// The IDE's address: `s-<slug>.<exposure>.<domain>`.
pub fn ide_url(state: &AppState, headers: &HeaderMap, s: &Session) -> String {
    format!(
        "{}://s-{}.{}.{}{}/",
        crate::refusal::scheme(state),
        s.slug,
        s.exposure,
        state.config.base_domain,
        port_of(headers)
    )
}

/// "just now", "5 min ago", "3 h ago", "2 days ago".
pub fn ago(t: time::OffsetDateTime) -> String {
    let secs = (model::now() - t).whole_seconds().max(0);
    match secs {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86400 => format!("{} h {} min ago", secs / 3600, secs % 3600 / 60),
        _ => format!("{} days ago", secs / 86400),
    }
}

pub fn iso(t: time::OffsetDateTime) -> String {
    crate::api::sessions::rfc3339(t)
}

/// A session as the tables and the progress page show it.
#[derive(Debug)]
pub struct SessionRow {
    pub id: String,
    pub slug: String,
    pub exposure: String,
    pub status: String,
    pub gpu: u32,
    pub created_at: String,
    pub age: String,
    pub ide_url: Option<String>,
    pub active: bool,
    pub error: Option<String>,
    pub owner: String,
}

impl SessionRow {
    pub fn new(state: &AppState, headers: &HeaderMap, s: &Session, owner: String) -> Self {
        Self {
            id: s.id.to_string(),
            slug: s.slug.to_string(),
            exposure: s.exposure.to_string(),
            status: s.status.to_string(),
            gpu: s.gpu_id.0,
            created_at: iso(s.created_at),
            age: ago(s.created_at),
            ide_url: (s.status == SessionStatus::Running).then(|| ide_url(state, headers, s)),
            active: s.status.is_active(),
            error: s.error_message.clone(),
            owner,
        }
    }
}

/// Where a login goes afterwards: a path here, or a URL on the base domain
/// or under it (a session host). Anything else: the dashboard.
pub fn safe_next(next: &str, base_domain: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        return next.to_owned();
    }
    let Some((scheme, rest)) = next.split_once("://") else { return "/".into() };
    if scheme != "http" && scheme != "https" {
        return "/".into();
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains(['@', '\\']) {
        return "/".into();
    }
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
    .to_ascii_lowercase();
    let domain = base_domain.to_ascii_lowercase();
    if host == domain || host.strip_suffix(&domain).is_some_and(|p| p.ends_with('.') && p.len() > 1) {
        next.to_owned()
    } else {
        "/".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_deployment() {
        let d = "medforge.localhost";
        assert_eq!(safe_next("/snapshots", d), "/snapshots");
        assert_eq!(safe_next("//evil.example/x", d), "/");
        assert_eq!(safe_next("/\\evil.example", d), "/");
        assert_eq!(
            safe_next("http://s-abcdefgh.external.medforge.localhost:8080/x?y=1", d),
            "http://s-abcdefgh.external.medforge.localhost:8080/x?y=1"
        );
        assert_eq!(safe_next("https://medforge.localhost/", d), "https://medforge.localhost/");
        assert_eq!(safe_next("http://evilmedforge.localhost/", d), "/");
        assert_eq!(safe_next("http://medforge.localhost.evil.example/", d), "/");
        assert_eq!(safe_next("http://medforge.localhost@evil.example/", d), "/");
        assert_eq!(safe_next("javascript:alert(1)", d), "/");
        assert_eq!(safe_next("", d), "/");
    }

    #[test]
    fn ages_read_like_a_person_says_them() {
        let now = model::now();
        assert_eq!(ago(now), "just now");
        assert_eq!(ago(now - time::Duration::minutes(5)), "5 min ago");
        assert_eq!(ago(now - time::Duration::minutes(125)), "2 h 5 min ago");
        assert_eq!(ago(now - time::Duration::days(3)), "3 days ago");
    }
}
