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
use super::page::{Chrome, SessionRow, clock, ide_url};
use crate::http::extract::SignedIn;
use crate::http::html::render;
use crate::service::accounts::Caller;
use crate::service::queue::{self, QueueStatus};
use crate::service::{AppState, Conflict, Error, sessions};

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
    /// The caller's places in the wait queue.
    queued: Vec<QueuePlace>,
    /// No GPU is free and the caller may queue: offer to.
    may_queue: bool,
}

/// A place in the queue, as the dashboard says it.
struct QueuePlace {
    exposure: String,
    state: String,
    text: String,
    offered: bool,
}

impl QueuePlace {
    fn new(q: &QueueStatus) -> Self {
        let exposure = q.entry.exposure.to_string();
        let text = match (q.entry.offered_until, q.position) {
            (Some(until), _) => format!(
                "A GPU is free for you: it is kept for your {exposure} session until {}. Start it now.",
                clock(until)
            ),
            (None, Some(p)) => {
                let estimate = q
                    .estimate
                    .map(|t| format!(" If the running sessions run to their time limits, yours comes by {}.", clock(t)))
                    .unwrap_or_default();
                let start = if q.entry.auto_start { " It will start by itself." } else { "" };
                format!("You are number {p} of {} in the queue for a GPU.{estimate}{start}", q.waiting)
            }
            (None, None) => "You are in the queue for a GPU.".to_owned(),
        };
        Self { exposure, state: q.entry.state.to_string(), text, offered: q.entry.offered_until.is_some() }
    }
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
    chrome.info = n.info.as_deref().and_then(|i| match i {
        "stopping" => Some("The session is stopping; its workspace is snapshotted when it has stopped.".to_owned()),
        "queued" => Some("You are in the queue: this page tells you when a GPU is free for you.".to_owned()),
        "left_queue" => Some("You left the queue.".to_owned()),
        "extended" => Some("The session was extended.".to_owned()),
        _ => None,
    });
    if chrome.error.is_none() {
        let max = state.lifecycle.limits().max_extensions;
        chrome.error = n.error.as_deref().and_then(|code| conflict_from_code(code, max)).map(|c| c.sentence());
    }
    let mut queued = Vec::new();
    for exposure in [Exposure::External, Exposure::Internal] {
        if let Some(q) = queue::status(&state, &user, exposure).await? {
            queued.push(QueuePlace::new(&q));
        }
    }
    let may_queue = free_gpus == 0 && queued.is_empty() && active.len() < user.max_concurrent_sessions as usize;
    let live = !queued.is_empty()
        || recent.iter().any(|s| matches!(s.status, SessionStatus::Starting | SessionStatus::Stopping));
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
        queued,
        may_queue,
    };
    Ok(render(StatusCode::OK, page))
}

/// A form's `exposure` field.
fn form_exposure(text: &str) -> Result<Exposure, Error> {
    text.parse().map_err(|_| Error::field("exposure", "must be external or internal"))
}

/// The extension refusal a dashboard `?error=` code names (`max`: the
/// configured limit, which the code does not carry).
fn conflict_from_code(code: &str, max: u32) -> Option<Conflict> {
    match code {
        "extend_not_running" => Some(Conflict::NotExtendable),
        "extend_used" => Some(Conflict::ExtensionsUsed { max }),
        "extend_queued" => Some(Conflict::OthersWaiting),
        _ => None,
    }
}

/// The `?error=` code of an extension refusal.
fn conflict_code(conflict: Conflict) -> &'static str {
    match conflict {
        Conflict::ExtensionsUsed { .. } => "extend_used",
        Conflict::OthersWaiting => "extend_queued",
        Conflict::NotExtendable | Conflict::AlreadyQueued | Conflict::AtSessionLimit { .. } => "extend_not_running",
    }
}

/// Extends a session (its owner's or an admin's), back to the dashboard.
pub async fn extend(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    SignedIn(user): SignedIn,
) -> Result<Response, Error> {
    let session = sessions::visible(&state, &user, &id, None).await?;
    Ok(match sessions::extend(&state, &session, &caller.request_id).await {
        Ok(_) => Redirect::to("/?info=extended").into_response(),
        Err(Error::Conflict(c)) => Redirect::to(&format!("/?error={}", conflict_code(c))).into_response(),
        Err(e) => return Err(e),
    })
}

#[derive(Debug, Deserialize)]
pub struct QueueForm {
    #[serde(default)]
    exposure: String,
    /// A checkbox: "on" when ticked.
    auto_start: Option<String>,
}

/// Joins the queue, back to the dashboard (which then follows it live).
pub async fn join_queue(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    SignedIn(user): SignedIn,
    Form(form): Form<QueueForm>,
) -> Result<Response, Error> {
    let exposure = form_exposure(&form.exposure)?;
    queue::join(&state, &user, exposure, None, form.auto_start.is_some(), &caller.request_id).await?;
    Ok(Redirect::to("/?info=queued").into_response())
}

/// Leaves the queue (an offered GPU passes on).
pub async fn leave_queue(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    SignedIn(user): SignedIn,
    Form(form): Form<QueueForm>,
) -> Result<Response, Error> {
    let exposure = form_exposure(&form.exposure)?;
    queue::leave(&state, &user, exposure, &caller.request_id).await?;
    Ok(Redirect::to("/?info=left_queue").into_response())
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
    let exposure = form_exposure(&form.exposure)?;
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
