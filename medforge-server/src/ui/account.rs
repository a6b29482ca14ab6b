//! The account page (email, password) and the workspace's snapshots.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::problem_text;
use super::{Chrome, ago, error_page, iso, render, signed_in};
use crate::api::ApiError;
use crate::api::auth::{MePatch, change_account};
use crate::state::AppState;

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

pub async fn show(State(state): State<Arc<AppState>>, headers: HeaderMap, Query(n): Query<Notice>) -> Response {
    let user = or_answer!(signed_in(&state, &headers, "/account").await);
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<AccountForm>,
) -> Response {
    let user = or_answer!(signed_in(&state, &headers, "/account").await);
    let patch = match form.change.as_str() {
        "email" => {
            MePatch { email: Some(form.email), current_password: Some(form.current_password), new_password: None }
        }
        "password" if form.new_password != form.confirm_password => {
            return account_error(&user, &ApiError::field("confirm_password", "does not match the new password"));
        }
        "password" => MePatch {
            email: None,
            current_password: Some(form.current_password),
            new_password: Some(form.new_password),
        },
        _ => return error_page(Some(&user), &ApiError::field("change", "must be email or password")),
    };
    match change_account(&state, peer, &headers, &user, patch).await {
        Ok((_, cookie)) => {
            let mut r = Redirect::to(&format!("/account?info={}", form.change)).into_response();
            if let Some(c) = cookie {
                r.headers_mut().insert(header::SET_COOKIE, c);
            }
            r
        }
        Err(e) => account_error(&user, &e),
    }
}

fn account_error(user: &medforge_core::model::User, e: &ApiError) -> Response {
    let mut chrome = Chrome::new("Account", Some(user), "account");
    chrome.error = Some(problem_text(e));
    render(e.problem().status, AccountPage { chrome, email: user.email.to_string() })
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

pub async fn snapshots(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let user = or_answer!(signed_in(&state, &headers, "/snapshots").await);
    let list = match state.storage.list_snapshots(user.id).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(user_id = %user.id, error = %e, "listing snapshots failed");
            let unavailable =
                ApiError::http(StatusCode::SERVICE_UNAVAILABLE, "Workspace storage is unavailable; try again later.");
            return error_page(Some(&user), &unavailable);
        }
    };
    let mut rows: Vec<SnapshotRow> = list
        .into_iter()
        .map(|s| SnapshotRow { name: s.name.to_string(), created_at: iso(s.created_at), when: ago(s.created_at) })
        .collect();
    rows.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    render(StatusCode::OK, SnapshotsPage { chrome: Chrome::new("Snapshots", Some(&user), "snapshots"), rows })
}
