//! The account page (email, password) and the workspace's snapshots.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use medforge_core::model::User;
use serde::Deserialize;

use super::failure::form_error;
use super::page::{Chrome, ago, iso};
use crate::http::cookie;
use crate::http::extract::SignedIn;
use crate::http::html::render;
use crate::service::accounts::{self, AccountChange, Caller};
use crate::service::{AppState, Error, sessions};

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    email: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    info: Option<String>,
}

pub async fn show(SignedIn(user): SignedIn, Query(n): Query<Notice>) -> Response {
    let mut chrome = Chrome::new("Account", Some(&user), "account");
    chrome.info = match n.info.as_deref() {
        Some("email") => Some(format!("Your email is now {}.", user.email)),
        Some("password") => Some("Your password is changed; your other browsers are signed out.".to_owned()),
        _ => None,
    };
    render(StatusCode::OK, AccountPage { chrome, email: user.email.to_string() })
}

#[derive(Debug, Default, Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    change: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    SignedIn(user): SignedIn,
    Form(form): Form<AccountForm>,
) -> Result<Response, Error> {
    let change = match form.change.as_str() {
        "email" => {
            AccountChange { email: Some(form.email), current_password: Some(form.current_password), new_password: None }
        }
        "password" if form.new_password != form.confirm_password => {
            return Ok(account_error(&user, &Error::field("confirm_password", "does not match the new password")));
        }
        "password" => AccountChange {
            email: None,
            current_password: Some(form.current_password),
            new_password: Some(form.new_password),
        },
        _ => return Err(Error::field("change", "must be email or password")),
    };
    Ok(match accounts::change_account(&state, &caller, &user, change).await {
        Ok((_, token)) => {
            let mut r = Redirect::to(&format!("/account?info={}", form.change)).into_response();
            if let Some(t) = token {
                r.headers_mut().insert(header::SET_COOKIE, cookie::set(&state.config, &t));
            }
            r
        }
        Err(e) => account_error(&user, &e),
    })
}

fn account_error(user: &User, e: &Error) -> Response {
    let (status, text) = form_error(e);
    let mut chrome = Chrome::new("Account", Some(user), "account");
    chrome.error = Some(text);
    render(status, AccountPage { chrome, email: user.email.to_string() })
}

#[derive(Debug)]
struct SnapshotRow {
    name: String,
    created_at: String,
    when: String,
}

#[derive(Template)]
#[template(path = "snapshots.html")]
struct SnapshotsPage {
    chrome: Chrome,
    rows: Vec<SnapshotRow>,
}

pub async fn snapshots(State(state): State<Arc<AppState>>, SignedIn(user): SignedIn) -> Result<Response, Error> {
    let list = sessions::snapshots(&state, user.id).await?;
    let mut rows: Vec<SnapshotRow> = list
        .into_iter()
        .map(|s| SnapshotRow { name: s.name.to_string(), created_at: iso(s.created_at), when: ago(s.created_at) })
        .collect();
    rows.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    Ok(render(StatusCode::OK, SnapshotsPage { chrome: Chrome::new("Snapshots", Some(&user), "snapshots"), rows }))
}
