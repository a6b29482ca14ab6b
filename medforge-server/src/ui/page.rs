//! What every page shares: the frame ([`Chrome`]), sessions as rows, the
//! IDE's address, and times as people read them.

use axum::http::HeaderMap;
use medforge_core::model::{self, Session, SessionStatus, StopReason, User, WarningKind};

use crate::http::envelope::rfc3339;
use crate::http::host::port_suffix;
use crate::service::AppState;

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
    /// The CSRF token every form of the page carries ([`csrf_token`]).
    pub csrf: String,
}

tokio::task_local! {
    /// The CSRF token of the login a UI request is served for (empty:
    /// none), set by `super::csrf::layer` around each request.
    pub static CSRF_TOKEN: String;
}

/// The token for the forms of the page being rendered (empty outside a
/// signed-in request: such a page's forms are refused, never let through).
pub fn csrf_token() -> String {
    CSRF_TOKEN.try_with(Clone::clone).unwrap_or_default()
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
            csrf: csrf_token(),
            ..Self::default()
        }
    }
}

/// The IDE's address: `s-<slug>.<exposure>.<domain>`, on this request's
/// port (the session hosts share the UI's).
pub fn ide_url(state: &AppState, headers: &HeaderMap, s: &Session) -> String {
    let port = port_suffix(headers);
    format!("{}://s-{}.{}.{}{port}/", state.config.scheme(), s.slug, s.exposure, state.config.sessions_domain())
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
    rfc3339(t)
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
    /// Why it ended, in words ("Stopped: idle").
    pub ended: Option<String>,
    /// When it stops by itself, while it runs ("Time limit 14:05 UTC").
    pub limit: Option<String>,
    /// The warning its owner was given, in words.
    pub warning: Option<String>,
    /// Whether an Extend button makes sense (running, with a lifetime, not
    /// yet extended as often as it may be).
    pub extendable: bool,
}

/// Why a session ended, as the session list says it.
pub fn stop_words(reason: StopReason) -> &'static str {
    match reason {
        StopReason::User => "by its owner",
        StopReason::Admin => "by an admin",
        StopReason::Idle => "idle",
        StopReason::Lifetime => "lifetime reached",
        StopReason::ContainerDeath => "container exited",
        StopReason::StartFailed => "start failed",
    }
}

/// `14:05 UTC`.
pub fn clock(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[hour]:[minute]:[second] UTC");
    t.format(&f).unwrap_or_default()
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
            ended: s.stop_reason.filter(|_| s.status.is_terminal()).map(|r| {
                let verb = if s.status == SessionStatus::Error { "Ended" } else { "Stopped" };
                format!("{verb}: {}", stop_words(r))
            }),
            limit: (s.status == SessionStatus::Running)
                .then_some(s.expires_at)
                .flatten()
                .map(|t| format!("Time limit {}", clock(t))),
            warning: s.warning.filter(|_| s.status == SessionStatus::Running).map(|w| match w.kind {
                WarningKind::Idle => format!("Unused: stops at {} unless you use it", clock(w.stops_at)),
                WarningKind::Lifetime => format!("Reaches its time limit: stops at {}", clock(w.stops_at)),
            }),
            extendable: s.status == SessionStatus::Running
                && s.expires_at.is_some()
                && s.extensions < state.lifecycle.limits().max_extensions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_a_person_says_them() {
        let now = model::now();
        assert_eq!(ago(now), "just now");
        assert_eq!(ago(now - time::Duration::minutes(5)), "5 min ago");
        assert_eq!(ago(now - time::Duration::minutes(125)), "2 h 5 min ago");
        assert_eq!(ago(now - time::Duration::days(3)), "3 days ago");
    }
}
