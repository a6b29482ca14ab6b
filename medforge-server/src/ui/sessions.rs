//! The dashboard (my sessions, start, stop) and a session's progress page.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use medforge_core::model::{Exposure, Session, SessionStatus};
use medforge_core::store::{PageRequest, SessionFilter};
use serde::Deserialize;

use super::failure::StartRefusal;
use super::gpu::GpuCard;
use super::page::{Chrome, SessionRow, ide_url};
use crate::http::extract::SignedIn;
use crate::http::html::render;
use crate::service::accounts::Caller;
use crate::service::{AppState, Error, sessions};

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
    /// While a session is starting or stopping: the script keeps the table fresh.
    live: bool,
    /// Progress streams of the sessions that are starting, space-separated.
    events_urls: String,
    /// The GPUs of the caller's running sessions, live.
    my_gpus: Vec<GpuCard>,
    /// Whether readings come (the script then refreshes every interval).
    telemetry: bool,
    /// The script's refresh while a GPU is shown, in milliseconds.
    gpu_refresh_ms: u128,
}

pub async fn dashboard(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    SignedIn(user): SignedIn,
    Query(n): Query<Notice>,
) -> Result<Response, Error> {
    let mine = |statuses: Vec<SessionStatus>| SessionFilter { user_id: Some(user.id), exposure: None, statuses };
    let recent = state.store.list_sessions(&mine(Vec::new()), PageRequest::first(20)).await?.items;
    let active = state.store.list_sessions(&mine(SessionStatus::ACTIVE.to_vec()), PageRequest::first(64)).await?.items;
    let gpus = state.store.list_gpus().await?;
    let total_gpus = gpus.iter().filter(|g| g.enabled).count();
    let free_gpus = gpus.iter().filter(|g| g.enabled && g.session_id.is_none()).count();
    let mut chrome = Chrome::new("Your sessions", Some(&user), "dashboard");
    chrome.error = n
        .error
        .as_deref()
        .and_then(StartRefusal::from_code)
        .map(|r| r.text(total_gpus, active.len(), user.max_concurrent_sessions));
    chrome.info = n
        .info
        .as_deref()
        .filter(|i| *i == "stopping")
        .map(|_| "The session is stopping; its workspace is snapshotted when it has stopped.".to_owned());
    let live = recent.iter().any(|s| matches!(s.status, SessionStatus::Starting | SessionStatus::Stopping));
    if live {
        chrome.refresh_secs = 3;
    }
    let events_urls = recent
        .iter()
        .filter(|s| s.status == SessionStatus::Starting)
        .map(|s| format!("/api/v2/{}/sessions/{}/events", s.exposure, s.id))
        .collect::<Vec<_>>()
        .join(" ");
    let mut my_gpus = Vec::new();
    for s in active.iter().filter(|s| s.status == SessionStatus::Running) {
        if let Some(g) = gpus.iter().find(|g| g.id == s.gpu_id && g.session_id == Some(s.id)) {
            let live = crate::service::usage::live(&state, g.clone());
            my_gpus.push(GpuCard::new(&live, Some(user.email.to_string()), Some(s.slug.to_string())));
        }
    }
    if !my_gpus.is_empty() && state.gpu_monitor.live && chrome.refresh_secs == 0 {
        chrome.refresh_secs = 30;
    }
    let page = Dashboard {
        telemetry: state.gpu_monitor.live,
        gpu_refresh_ms: state.gpu_monitor.interval.as_millis().max(1000),
        my_gpus,
        chrome,
        free_gpus,
        total_gpus,
        active: active.len(),
        limit: user.max_concurrent_sessions,
        can_internal: user.may_use(Exposure::Internal),
        rows: recent.iter().map(|s| SessionRow::new(&state, &headers, s, user.email.to_string())).collect(),
        caption: "Your sessions, newest first",
        show_owner: false,
        stop_prefix: "/sessions",
        live,
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
    caller: Caller,
    SignedIn(user): SignedIn,
    Form(form): Form<StartForm>,
) -> Result<Response, Error> {
    let exposure =
        form.exposure.parse::<Exposure>().map_err(|_| Error::field("exposure", "must be external or internal"))?;
    Ok(match sessions::start(&state, &user, exposure, None, &caller.request_id).await {
        Ok(session) => Redirect::to(&format!("/sessions/{}", session.id)).into_response(),
        Err(e) => {
            let refusal = StartRefusal::of(&e);
            if refusal == StartRefusal::Failed {
                tracing::warn!(error = %e, "starting a session from the web UI failed");
            }
            Redirect::to(&format!("/?error={}", refusal.code())).into_response()
        }
    })
}

/// A start-up step as the progress page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepState {
    Done,
    Current,
    Failed,
    Pending,
}

impl StepState {
    /// The CSS class and `data-state` of the step.
    fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Current => "current",
            Self::Failed => "failed",
            Self::Pending => "pending",
        }
    }
}

#[derive(Debug)]
struct Step {
    key: &'static str,
    label: String,
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
    let done = sessions::steps(s);
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
                StepState::Done
            } else if first_open && s.status == SessionStatus::Starting {
                first_open = false;
                StepState::Current
            } else if first_open && s.status == SessionStatus::Error {
                first_open = false;
                StepState::Failed
            } else {
                StepState::Pending
            };
            Step { key, label, state: state.as_str() }
        })
        .collect()
}

pub async fn progress(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    SignedIn(user): SignedIn,
) -> Result<Response, Error> {
    let session = sessions::visible(&state, &user, &id, None).await?;
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
    Ok(render(StatusCode::OK, page))
}

pub async fn stop(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    SignedIn(user): SignedIn,
) -> Result<Response, Error> {
    let session = sessions::visible(&state, &user, &id, None).await?;
    sessions::request_stop(&state, session, &user, &caller.request_id).await?;
    Ok(Redirect::to("/?info=stopping").into_response())
}
