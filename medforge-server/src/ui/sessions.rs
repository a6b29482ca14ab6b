//! The dashboard (my sessions, start, stop) and a session's progress page.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use medforge_core::events::StopReason;
use medforge_core::lifecycle::LifecycleError;
use medforge_core::model::{Exposure, Session, SessionId, SessionStatus, User};
use medforge_core::store::{AllocationError, PageRequest, SessionFilter};
use serde::Deserialize;

use super::{Chrome, SessionRow, error_page, ide_url, render, signed_in};
use crate::api::sessions::{start as start_session, steps, stop_in_background};
use crate::api::{ApiError, RequestId};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    error: Option<String>,
    info: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    chrome: Chrome,
    free_gpus: usize,
    total_gpus: usize,
    active: usize,
    limit: u32,
    can_internal: bool,
    rows: Vec<SessionRow>,
    caption: &'static str,
    show_owner: bool,
    stop_prefix: &'static str,
    /// "1" while a session is starting or stopping: the script keeps the table fresh.
    live: &'static str,
    /// Progress streams of the sessions that are starting, space-separated.
    events_urls: String,
}

/// Why a start was refused, as the dashboard says it (`?error=`).
fn refusal_code(e: &LifecycleError) -> &'static str {
    match e {
        LifecycleError::Allocation(AllocationError::NoGpusAvailable) => "no_gpus",
        LifecycleError::Allocation(AllocationError::LimitReached { .. }) => "limit",
        LifecycleError::Allocation(AllocationError::NotEntitled) => "not_entitled",
        LifecycleError::Allocation(AllocationError::Contention) => "busy",
        LifecycleError::Allocation(
            AllocationError::PackNotFound
            | AllocationError::PackDeprecated
            | AllocationError::PackExposureMismatch { .. },
        ) => "pack",
        _ => "failed",
    }
}

fn refusal_text(code: &str, total_gpus: usize, active: usize, limit: u32) -> Option<String> {
    Some(match code {
        "no_gpus" if total_gpus == 0 => "No GPUs are enabled on this server; ask an admin.".to_owned(),
        "no_gpus" if total_gpus == 1 => "The only GPU is in use. Try again when a session ends.".to_owned(),
        "no_gpus" => format!("All {total_gpus} GPUs are in use. Try again when a session ends."),
        "limit" => format!(
            "You already have {active} session{} running (limit {limit}). Stop one to start another.",
            if active == 1 { "" } else { "s" }
        ),
        "not_entitled" => "Internal sessions need the internal entitlement; ask an admin.".to_owned(),
        "busy" => "Many sessions are starting at once; try again in a moment.".to_owned(),
        "pack" => "The default pack is not available; ask an admin.".to_owned(),
        "failed" => "The session could not be started. Try again; if it keeps failing, tell an admin.".to_owned(),
        _ => return None,
    })
}

pub async fn dashboard(State(state): State<Arc<AppState>>, headers: HeaderMap, Query(n): Query<Notice>) -> Response {
    let user = or_answer!(signed_in(&state, &headers, "/").await);
    match dashboard_page(&state, &headers, &user, n).await {
        Ok(r) => r,
        Err(e) => error_page(Some(&user), &e),
    }
}

async fn dashboard_page(state: &AppState, headers: &HeaderMap, user: &User, n: Notice) -> Result<Response, ApiError> {
    let mine = |statuses: Vec<SessionStatus>| SessionFilter { user_id: Some(user.id), exposure: None, statuses };
    let recent = state.store.list_sessions(&mine(Vec::new()), PageRequest::first(20)).await?.items;
    let active = state.store.list_sessions(&mine(SessionStatus::ACTIVE.to_vec()), PageRequest::first(64)).await?.items;
    let gpus = state.store.list_gpus().await?;
    let total_gpus = gpus.iter().filter(|g| g.enabled).count();
    let free_gpus = gpus.iter().filter(|g| g.enabled && g.session_id.is_none()).count();
    let mut chrome = Chrome::new("Your sessions", Some(user), "dashboard");
    chrome.error =
        n.error.as_deref().and_then(|c| refusal_text(c, total_gpus, active.len(), user.max_concurrent_sessions));
    chrome.info = n
        .info
        .as_deref()
        .filter(|i| *i == "stopping")
        .map(|_| "The session is stopping; its workspace is snapshotted when it has stopped.".to_owned());
    let busy = recent.iter().any(|s| matches!(s.status, SessionStatus::Starting | SessionStatus::Stopping));
    if busy {
        chrome.refresh_secs = 3;
    }
    let events_urls = recent
        .iter()
        .filter(|s| s.status == SessionStatus::Starting)
        .map(|s| format!("/api/v2/{}/sessions/{}/events", s.exposure, s.id))
        .collect::<Vec<_>>()
        .join(" ");
    let page = Dashboard {
        chrome,
        free_gpus,
        total_gpus,
        active: active.len(),
        limit: user.max_concurrent_sessions,
        can_internal: user.may_use(Exposure::Internal),
        rows: recent.iter().map(|s| SessionRow::new(state, headers, s, user.email.to_string())).collect(),
        caption: "Your sessions, newest first",
        show_owner: false,
        stop_prefix: "/sessions",
        live: if busy { "1" } else { "" },
        events_urls,
    };
    Ok(render(StatusCode::OK, page))
}

#[derive(Debug, Deserialize)]
pub struct StartForm {
    #[serde(default)]
    exposure: String,
}

pub async fn start(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
    Form(form): Form<StartForm>,
) -> Response {
    let user = or_answer!(signed_in(&state, &headers, "/").await);
    let Ok(exposure) = form.exposure.parse::<Exposure>() else {
        return error_page(Some(&user), &ApiError::field("exposure", "must be external or internal"));
    };
    match start_session(&state, &user, exposure, None, rid).await {
        Ok(session) => Redirect::to(&format!("/sessions/{}", session.id)).into_response(),
        Err(e) => {
            if refusal_code(&e) == "failed" {
                tracing::warn!(error = %e, "starting a session from the web UI failed");
            }
            Redirect::to(&format!("/?error={}", refusal_code(&e))).into_response()
        }
    }
}

/// The session at `id` if `user` may see it, else the page to answer.
async fn visible(state: &AppState, user: &User, id: &str) -> Result<Session, Response> {
    let not_found = || error_page(Some(user), &ApiError::not_found("There is no such session."));
    let id: SessionId = id.parse().map_err(|_| not_found())?;
    let session = match state.store.session(id).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(not_found()),
        Err(e) => return Err(error_page(Some(user), &e.into())),
    };
    if session.user_id != user.id && !user.is_admin() {
        return Err(error_page(Some(user), &ApiError::forbidden("This session is someone else's.")));
    }
    Ok(session)
}

#[derive(Debug)]
struct Step {
    key: &'static str,
    label: String,
    /// done, current, failed or pending.
    state: &'static str,
}

#[derive(Template)]
#[template(path = "session.html")]
struct ProgressPage {
    chrome: Chrome,
    s: SessionRow,
    steps: Vec<Step>,
    events_url: String,
    ide_url: String,
}

fn progress_steps(s: &Session) -> Vec<Step> {
    let done = steps(s);
    let all = [
        ("gpu_allocated", format!("GPU {} allocated", s.gpu_id.0)),
        ("workspace_ready", "Workspace ready".to_owned()),
        ("container_started", "Container started".to_owned()),
        ("code_server_answering", "code-server answering".to_owned()),
    ];
    let mut first_open = true;
    all.into_iter()
        .map(|(key, label)| {
            let state = if done.contains(&key) {
                "done"
            } else if first_open && s.status == SessionStatus::Starting {
                first_open = false;
                "current"
            } else if first_open && s.status == SessionStatus::Error {
                first_open = false;
                "failed"
            } else {
                "pending"
            };
            Step { key, label, state }
        })
        .collect()
}

pub async fn progress(State(state): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let user = or_answer!(signed_in(&state, &headers, &format!("/sessions/{id}")).await);
    let session = or_answer!(visible(&state, &user, &id).await);
    let mut chrome = Chrome::new(format!("Session s-{}", session.slug), Some(&user), "dashboard");
    if session.status == SessionStatus::Starting {
        chrome.refresh_secs = 2;
    }
    let page = ProgressPage {
        chrome,
        steps: progress_steps(&session),
        events_url: format!("/api/v2/{}/sessions/{}/events", session.exposure, session.id),
        ide_url: ide_url(&state, &headers, &session),
        s: SessionRow::new(&state, &headers, &session, String::new()),
    };
    render(StatusCode::OK, page)
}

pub async fn stop(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let user = or_answer!(signed_in(&state, &headers, "/").await);
    let session = or_answer!(visible(&state, &user, &id).await);
    let reason = if session.user_id == user.id { StopReason::User } else { StopReason::Admin };
    match stop_in_background(&state, session, reason, rid).await {
        Ok(_) => Redirect::to("/?info=stopping").into_response(),
        Err(e) => error_page(Some(&user), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_happened_with_numbers() {
        assert_eq!(
            refusal_text("no_gpus", 7, 0, 1).as_deref(),
            Some("All 7 GPUs are in use. Try again when a session ends.")
        );
        assert_eq!(
            refusal_text("limit", 7, 1, 1).as_deref(),
            Some("You already have 1 session running (limit 1). Stop one to start another.")
        );
        assert!(refusal_text("limit", 7, 2, 2).is_some_and(|t| t.contains("2 sessions running (limit 2)")));
        assert_eq!(refusal_text("<script>", 7, 0, 1), None);
    }
}
