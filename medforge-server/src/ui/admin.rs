//! The admin pages: the GPU board, all sessions, users (the event log is
//! `super::events`, the invites `super::invites`).

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use medforge_core::model::{Exposure, SessionStatus, UserId};
use medforge_core::store::{PageRequest, SessionFilter};
use serde::Deserialize;

use super::failure::form_error;
use super::gpu::GpuCard;
use super::page::{Chrome, SessionRow};
use crate::http::extract::Admin;
use crate::http::html::render;
use crate::service::accounts::Caller;
use crate::service::admin::{self as admin_service, NewAccount, UserChange};
use crate::service::{AppState, Error, sessions, usage};

/// Emails by user id, looked up once each.
pub(super) async fn emails(state: &AppState, ids: Vec<UserId>) -> HashMap<UserId, String> {
    let mut found = HashMap::new();
    for id in ids {
        if let std::collections::hash_map::Entry::Vacant(e) = found.entry(id) {
            let email = state.store.user(id).await.ok().flatten().map(|u| u.email.to_string());
            e.insert(email.unwrap_or_else(|| id.to_string()));
        }
    }
    found
}

#[derive(Template)]
#[template(path = "admin_gpus.html")]
struct GpuBoard {
    chrome: Chrome,
    section: &'static str,
    gpus: Vec<GpuCard>,
    free: usize,
    held: usize,
    disabled: usize,
    /// Whether readings come at all.
    telemetry: bool,
    /// Why not, when not.
    telemetry_note: String,
    /// The last reading's failure, while readings fail.
    failure: Option<String>,
}

pub async fn gpus(State(state): State<Arc<AppState>>, Admin(admin): Admin) -> Result<Response, Error> {
    let gpus = state.store.list_gpus().await?;
    let who = emails(&state, gpus.iter().filter_map(|g| g.user_id).collect()).await;
    let mut cards = Vec::new();
    for g in gpus {
        let slug = match g.session_id {
            Some(id) => state.store.session(id).await?.map(|s| s.slug.to_string()),
            None => None,
        };
        let holder = g.user_id.and_then(|u| who.get(&u).cloned());
        cards.push(GpuCard::new(&usage::live(&state, g), holder, slug));
    }
    let count = |s: &str| cards.iter().filter(|c| c.state == s).count();
    let (free, held, disabled) = (count("free"), count("held"), count("disabled"));
    let mut chrome = Chrome::new("GPUs", Some(&admin), "admin");
    // The board is live: without the script, the page reloads itself.
    chrome.refresh_secs = 30;
    let page = GpuBoard {
        chrome,
        section: "gpus",
        gpus: cards,
        free,
        held,
        disabled,
        telemetry: state.gpu_monitor.live,
        telemetry_note: state.gpu_monitor.unavailable.clone().unwrap_or_default(),
        failure: state.gpu_monitor.failure(),
    };
    Ok(render(StatusCode::OK, page))
}

#[derive(Debug, Deserialize)]
pub struct GpuForm {
    #[serde(default)]
    enabled: String,
}

pub async fn toggle_gpu(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
    Admin(admin): Admin,
    Form(form): Form<GpuForm>,
) -> Result<Response, Error> {
    admin_service::set_gpu_enabled(&state, &caller, &admin, &id, form.enabled == "true").await?;
    Ok(Redirect::to("/admin").into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct SessionsQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    exposure: String,
}

#[derive(Template)]
#[template(path = "admin_sessions.html")]
struct AllSessions {
    chrome: Chrome,
    section: &'static str,
    rows: Vec<SessionRow>,
    caption: &'static str,
    show_owner: bool,
    stop_prefix: &'static str,
    status: String,
    exposure: String,
    status_options: Vec<(&'static str, &'static str)>,
    exposure_options: Vec<(&'static str, &'static str)>,
}

pub async fn sessions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Admin(admin): Admin,
    Query(q): Query<SessionsQuery>,
) -> Result<Response, Error> {
    let statuses = match q.status.as_str() {
        "" => Vec::new(),
        "active" => SessionStatus::ACTIVE.to_vec(),
        other => vec![other.parse::<SessionStatus>().map_err(|_| Error::field("status", "is not a session status"))?],
    };
    let exposure = match q.exposure.as_str() {
        "" => None,
        other => Some(other.parse::<Exposure>().map_err(|_| Error::field("exposure", "must be external or internal"))?),
    };
    let filter = SessionFilter { user_id: None, exposure, statuses };
    let found = state.store.list_sessions(&filter, PageRequest::first(200)).await?.items;
    let who = emails(&state, found.iter().map(|s| s.user_id).collect()).await;
    let rows = found
        .iter()
        .map(|s| SessionRow::new(&state, &headers, s, who.get(&s.user_id).cloned().unwrap_or_default()))
        .collect();
    let page = AllSessions {
        chrome: Chrome::new("All sessions", Some(&admin), "admin"),
        section: "sessions",
        rows,
        caption: "All sessions, newest first",
        show_owner: true,
        stop_prefix: "/admin/sessions",
        status: q.status,
        exposure: q.exposure,
        status_options: vec![
            ("", "any"),
            ("active", "active"),
            ("starting", "starting"),
            ("running", "running"),
            ("stopping", "stopping"),
            ("stopped", "stopped"),
            ("error", "error"),
        ],
        exposure_options: vec![("", "any"), ("external", "external"), ("internal", "internal")],
    };
    Ok(render(StatusCode::OK, page))
}

pub async fn stop(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Admin(admin): Admin,
) -> Result<Response, Error> {
    let session = sessions::find(&state, &id).await?;
    sessions::request_stop(&state, session, &admin, &caller.request_id).await?;
    Ok(Redirect::to("/admin/sessions?status=active").into_response())
}

#[derive(Debug)]
struct UserRow {
    id: String,
    email: String,
    since: String,
    admin: bool,
    internal: bool,
    limit: u32,
    quota_gib: String,
    lifetime_hours: String,
    active: u32,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    chrome: Chrome,
    section: &'static str,
    users: Vec<UserRow>,
    /// The add-a-user form, open with what was typed (after a refusal).
    adding: bool,
    new_email: String,
}

const GIB: f64 = (1u64 << 30) as f64;

async fn users_page(
    state: &AppState,
    chrome: Chrome,
    status: StatusCode,
    new_email: Option<String>,
) -> Result<Response, Error> {
    let found = state.store.list_users(PageRequest::first(500)).await?.items;
    let users = found
        .into_iter()
        .map(|s| UserRow {
            id: s.user.id.to_string(),
            email: s.user.email.to_string(),
            since: s.user.created_at.date().to_string(),
            admin: s.user.is_admin(),
            internal: s.user.can_use_internal,
            limit: s.user.max_concurrent_sessions,
            quota_gib: s.user.workspace_quota_bytes.map(|b| format!("{}", b as f64 / GIB)).unwrap_or_default(),
            lifetime_hours: s.user.max_lifetime_secs.map(|s| format!("{}", s as f64 / 3600.0)).unwrap_or_default(),
            active: s.active_session_count,
        })
        .collect();
    let page = UsersPage {
        chrome,
        section: "users",
        users,
        adding: new_email.is_some(),
        new_email: new_email.unwrap_or_default(),
    };
    Ok(render(status, page))
}

pub async fn users(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Query(q): Query<SessionsQuery>,
) -> Result<Response, Error> {
    let mut chrome = Chrome::new("Users", Some(&admin), "admin");
    chrome.info = match q.status.as_str() {
        "saved" => Some("Saved.".to_owned()),
        "added" => Some("Added. Pass the password on.".to_owned()),
        _ => None,
    };
    users_page(&state, chrome, StatusCode::OK, None).await
}

#[derive(Debug, Default, Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    admin: Option<String>,
}

/// The add-a-user form: the list again, or the form with the reason.
pub async fn create_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Admin(admin): Admin,
    Form(form): Form<NewUserForm>,
) -> Result<Response, Error> {
    let new = NewAccount { email: &form.email, password: &form.password, admin: form.admin.as_deref() == Some("true") };
    match admin_service::create_user(&state, &caller, &admin, new).await {
        Ok(_) => Ok(Redirect::to("/admin/users?status=added").into_response()),
        Err(e) => {
            let (status, text) = form_error(&e);
            let mut chrome = Chrome::new("Users", Some(&admin), "admin");
            chrome.error = Some(text);
            users_page(&state, chrome, status, Some(form.email)).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    can_use_internal: Option<String>,
    #[serde(default)]
    max_concurrent_sessions: String,
    #[serde(default)]
    quota_gib: String,
    /// Hours of a session's lifetime; empty: the default; 0: none.
    #[serde(default)]
    lifetime_hours: String,
}

pub async fn update_user(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
    Admin(admin): Admin,
    Form(form): Form<UserForm>,
) -> Result<Response, Error> {
    let limit = form
        .max_concurrent_sessions
        .trim()
        .parse::<i64>()
        .map_err(|_| Error::field("max_concurrent_sessions", "must be a whole number"))?;
    let quota = match form.quota_gib.trim() {
        "" => None,
        text => match text.parse::<f64>() {
            Ok(g) if (0.0..1e9).contains(&g) => Some((g * GIB) as i64),
            _ => return Err(Error::field("quota", "must be a number of GiB, or empty")),
        },
    };
    let lifetime = match form.lifetime_hours.trim() {
        "" => None,
        text => match text.parse::<f64>() {
            Ok(h) if (0.0..=366.0 * 24.0).contains(&h) => Some((h * 3600.0).round() as i64),
            _ => return Err(Error::field("lifetime", "must be a number of hours (0: no limit), or empty")),
        },
    };
    let change = UserChange {
        role: Some(form.role),
        can_use_internal: Some(form.can_use_internal.as_deref() == Some("true")),
        max_concurrent_sessions: Some(limit),
        workspace_quota_bytes: Some(quota),
        max_lifetime_secs: Some(lifetime),
    };
    admin_service::change_user(&state, &caller, &admin, &id, change).await?;
    Ok(Redirect::to("/admin/users?status=saved").into_response())
}
