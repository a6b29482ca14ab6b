//! The admin's Invites page: invite an address (the one-time link is shown
//! once, on the page that answers the form: its token is never kept), see
//! every invite and where it stands, take back an open one.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use medforge_core::model::{self, Invite, InviteState, User};
use medforge_core::store::PageRequest;
use serde::Deserialize;

use super::admin::emails;
use super::failure::form_error;
use super::page::{Chrome, ago, iso};
use crate::http::extract::Admin;
use crate::http::host::ui_base;
use crate::http::html::render;
use crate::service::accounts::Caller;
use crate::service::{AppState, Error, invites};

#[derive(Debug)]
struct InviteRow {
    id: String,
    email: String,
    state: &'static str,
    /// Who invited, and when.
    by: String,
    created: String,
    created_iso: String,
    /// When it expires, or expired.
    expires_iso: String,
    open: bool,
}

#[derive(Template)]
#[template(path = "admin_invites.html")]
struct InvitesPage {
    chrome: Chrome,
    section: &'static str,
    invites: Vec<InviteRow>,
    /// The link just made, shown this once.
    link: Option<String>,
    email: String,
    /// How long a new link works, in words.
    valid_for: String,
}

async fn page(
    state: &AppState,
    admin: &User,
    status: StatusCode,
    mut chrome: Chrome,
    link: Option<String>,
) -> Response {
    chrome.title = "Invites".into();
    let found: Vec<Invite> = match invites::list(state, PageRequest::first(200)).await {
        Ok(p) => p.items,
        Err(e) => return super::failure::error_page(Some(admin), &e),
    };
    let who = emails(state, found.iter().map(|i| i.created_by).collect()).await;
    let now = model::now();
    let rows = found
        .iter()
        .map(|i| InviteRow {
            id: i.id.to_string(),
            email: i.email.to_string(),
            state: i.state(now).as_str(),
            by: who.get(&i.created_by).cloned().unwrap_or_default(),
            created: ago(i.created_at),
            created_iso: iso(i.created_at),
            expires_iso: iso(i.expires_at),
            open: i.state(now) == InviteState::Open,
        })
        .collect();
    let valid_for = lifetime(state.config.auth.invite_valid.as_secs());
    render(status, InvitesPage { chrome, section: "invites", invites: rows, link, email: String::new(), valid_for })
}

/// "7 days", "12 hours", "90 seconds".
fn lifetime(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s % 86400 == 0 => (s / 86400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

pub async fn list(State(state): State<Arc<AppState>>, Admin(admin): Admin) -> Response {
    page(&state, &admin, StatusCode::OK, Chrome::new("Invites", Some(&admin), "admin"), None).await
}

#[derive(Debug, Default, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    caller: Caller,
    Admin(admin): Admin,
    Form(form): Form<InviteForm>,
) -> Response {
    let mut chrome = Chrome::new("Invites", Some(&admin), "admin");
    match invites::create(&state, &caller, &admin, &form.email).await {
        Ok(issued) => {
            let link = invites::link(&ui_base(&state.config, &headers), &issued.token);
            chrome.info = Some(format!(
                "Invited {}. Send them this link; it works once, and is not shown again.",
                issued.invite.email
            ));
            page(&state, &admin, StatusCode::CREATED, chrome, Some(link)).await
        }
        Err(e) => {
            let (status, text) = form_error(&e);
            chrome.error = Some(text);
            page(&state, &admin, status, chrome, None).await
        }
    }
}

pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
    Admin(admin): Admin,
) -> Result<Response, Error> {
    invites::revoke(&state, &caller, &admin, &id).await?;
    Ok(Redirect::to("/admin/invites").into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn lifetimes_read_in_their_largest_whole_unit() {
        assert_eq!(super::lifetime(7 * 86400), "7 days");
        assert_eq!(super::lifetime(3600), "1 hour");
        assert_eq!(super::lifetime(90), "90 seconds");
        assert_eq!(super::lifetime(120), "2 minutes");
    }
}
