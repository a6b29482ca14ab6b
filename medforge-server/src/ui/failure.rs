//! The web UI's words for what went wrong, in one place: an error as a
//! page, a signed-out request as a redirect to the login page, a form's
//! error as a sentence, and why a session did not start.
//!
//! [`layer`] wraps the UI's routes: a handler (or extractor) that fails
//! with a service [`Error`] answers with that error carried in the
//! response, and the layer makes the page of it here.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use medforge_core::model::User;
use medforge_core::store::AllocationError;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::next::return_page;
use super::page::Chrome;
use crate::http::cookie;
use crate::http::html::render;
use crate::http::problem::{Failed, Problem};
use crate::service::{AppState, Denied, Error, Missing, accounts};

/// Makes pages of the UI's errors (see the module docs).
pub async fn layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let back = return_page(req.method(), req.uri().path_and_query().map_or("/", |p| p.as_str()));
    let token = cookie::token_from(req.headers(), &state.config);
    let response = next.run(req).await;
    let Some(Failed(error)) = response.extensions().get::<Failed>().cloned() else { return response };
    if let Error::Unauthenticated = error.as_ref() {
        return Redirect::to(&format!("/login?next={}", utf8_percent_encode(&back, NON_ALPHANUMERIC))).into_response();
    }
    // The frame shows who is signed in, if anyone (an error page is rare:
    // asking again costs less than carrying the user everywhere).
    let viewer = accounts::signed_in(&state, token.as_ref()).await.ok().map(|(user, _)| user);
    error_page(viewer.as_ref(), &error)
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: String,
    detail: String,
}

/// The UI's words where they differ from the API's (docs/api.md's are
/// for programs; these are for people looking at a page).
fn detail(e: &Error, problem: &Problem) -> String {
    match e {
        Error::NotFound(Missing::Session) => "There is no such session.".into(),
        Error::NotFound(Missing::Gpu) => "There is no such GPU.".into(),
        Error::Forbidden(Denied::NotYourSession) => "This session is someone else's.".into(),
        Error::Forbidden(Denied::NotAdmin) => "This page is for admins.".into(),
        _ => problem.detail.clone(),
    }
}

/// An error as a page: what happened, and each bad field (internal causes
/// were logged and are never shown).
pub fn error_page(user: Option<&User>, e: &Error) -> Response {
    let p = Problem::from(e);
    let mut detail = detail(e, &p);
    for f in &p.errors {
        detail.push_str(&format!(" {}: {}.", f.field.replace('_', " "), f.message));
    }
    let page = ErrorPage { chrome: Chrome::new(p.title.clone(), user, ""), heading: p.title.clone(), detail };
    render(p.status, page)
}

/// An error for a form: the sentence, and the status of the page.
pub fn form_error(e: &Error) -> (axum::http::StatusCode, String) {
    let p = Problem::from(e);
    if p.errors.is_empty() {
        return (p.status, p.detail.clone());
    }
    let text =
        p.errors.iter().map(|f| format!("{}: {}.", capitalised(&f.field), f.message)).collect::<Vec<_>>().join(" ");
    (p.status, text)
}

fn capitalised(field: &str) -> String {
    let mut chars = field.replace('_', " ").chars().collect::<Vec<_>>();
    if let Some(c) = chars.first_mut() {
        *c = c.to_ascii_uppercase();
    }
    chars.into_iter().collect()
}

/// Why the dashboard's Start did not start a session (`/?error=<code>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartRefusal {
    NoGpus,
    Limit,
    NotEntitled,
    Busy,
    Pack,
    Isolation,
    Failed,
}

impl StartRefusal {
    const ALL: [Self; 7] =
        [Self::NoGpus, Self::Limit, Self::NotEntitled, Self::Busy, Self::Pack, Self::Isolation, Self::Failed];

    pub fn of(e: &Error) -> Self {
        match e {
            Error::Allocation(AllocationError::NoGpusAvailable) => Self::NoGpus,
            Error::Allocation(AllocationError::LimitReached { .. }) => Self::Limit,
            Error::Forbidden(Denied::NotEntitled) => Self::NotEntitled,
            Error::Allocation(AllocationError::Contention) => Self::Busy,
            Error::Allocation(
                AllocationError::PackNotFound
                | AllocationError::PackDeprecated
                | AllocationError::PackExposureMismatch { .. },
            ) => Self::Pack,
            Error::IsolationDown => Self::Isolation,
            _ => Self::Failed,
        }
    }

    /// Its code in the dashboard's URL.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoGpus => "no_gpus",
            Self::Limit => "limit",
            Self::NotEntitled => "not_entitled",
            Self::Busy => "busy",
            Self::Pack => "pack",
            Self::Isolation => "isolation",
            Self::Failed => "failed",
        }
    }

    /// The refusal a code names; `None` for anything else (shown as nothing).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// What the dashboard says, with the numbers that explain it.
    pub fn text(self, total_gpus: usize, active: usize, limit: u32) -> String {
        match self {
            Self::NoGpus if total_gpus == 0 => "No GPUs are enabled on this server; ask an admin.".to_owned(),
            Self::NoGpus if total_gpus == 1 => "The only GPU is in use. Try again when a session ends.".to_owned(),
            Self::NoGpus => format!("All {total_gpus} GPUs are in use. Try again when a session ends."),
            Self::Limit => format!(
                "You already have {active} session{} running (limit {limit}). Stop one to start another.",
                if active == 1 { "" } else { "s" }
            ),
            Self::NotEntitled => "Internal sessions need the internal entitlement; ask an admin.".to_owned(),
            Self::Busy => "Many sessions are starting at once; try again in a moment.".to_owned(),
            Self::Pack => "The default pack is not available; ask an admin.".to_owned(),
            Self::Isolation => "Sessions cannot start right now: their isolation from each other is not in place. \
                 Tell an admin (`medforge firewall check` says why)."
                .to_owned(),
            Self::Failed => {
                "The session could not be started. Try again; if it keeps failing, tell an admin.".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_happened_with_numbers() {
        let text =
            |code: &str, total, active, limit| StartRefusal::from_code(code).map(|r| r.text(total, active, limit));
        assert_eq!(text("no_gpus", 7, 0, 1).as_deref(), Some("All 7 GPUs are in use. Try again when a session ends."));
        assert_eq!(
            text("limit", 7, 1, 1).as_deref(),
            Some("You already have 1 session running (limit 1). Stop one to start another.")
        );
        assert!(text("limit", 7, 2, 2).is_some_and(|t| t.contains("2 sessions running (limit 2)")));
        assert_eq!(text("<script>", 7, 0, 1), None);
        for r in StartRefusal::ALL {
            assert_eq!(StartRefusal::from_code(r.code()), Some(r), "codes read back");
        }
        assert_eq!(StartRefusal::of(&Error::Allocation(AllocationError::NoGpusAvailable)), StartRefusal::NoGpus);
        assert_eq!(StartRefusal::of(&Error::Forbidden(Denied::NotEntitled)), StartRefusal::NotEntitled);
        assert_eq!(StartRefusal::of(&Error::Internal("x".into())), StartRefusal::Failed);
    }
}
