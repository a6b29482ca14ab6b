//! Sign up, sign in, sign out: forms that post, then a redirect to where
//! the user was going (`next`, checked to stay on this deployment).

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::{Chrome, render, safe_next};
use crate::api::RequestId;
use crate::api::auth::{log_in, log_out, sign_up};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CredentialsForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    email: String,
    next: String,
    next_query: String,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    chrome: Chrome,
    email: String,
    next: String,
    next_query: String,
}

fn next_query(next: &str) -> String {
    if next.is_empty() { String::new() } else { format!("?next={}", utf8_percent_encode(next, NON_ALPHANUMERIC)) }
}

/// The sign-in and sign-up forms share their fields: the frame, the email
/// typed so far, and where to go afterwards (`next`, checked).
type FormPage<P> = fn(Chrome, String, String, String) -> P;

fn login_form(chrome: Chrome, email: String, next: String, next_query: String) -> LoginPage {
    LoginPage { chrome, email, next, next_query }
}

fn signup_form(chrome: Chrome, email: String, next: String, next_query: String) -> SignupPage {
    SignupPage { chrome, email, next, next_query }
}

/// One of the two forms, with `next` checked and its query for the other form's link.
fn form_page<P: Template>(
    status: StatusCode,
    page: FormPage<P>,
    chrome: Chrome,
    email: String,
    next: String,
) -> Response {
    let query = next_query(&next);
    render(status, page(chrome, email, next, query))
}

pub async fn login_page(State(state): State<Arc<AppState>>, Query(q): Query<NextQuery>) -> Response {
    let next = q.next.map(|n| safe_next(&n, &state.config.base_domain)).unwrap_or_default();
    form_page(StatusCode::OK, login_form, Chrome::new("Sign in", None, ""), String::new(), next)
}

pub async fn signup_page(State(state): State<Arc<AppState>>, Query(q): Query<NextQuery>) -> Response {
    let next = q.next.map(|n| safe_next(&n, &state.config.base_domain)).unwrap_or_default();
    form_page(StatusCode::OK, signup_form, Chrome::new("Sign up", None, ""), String::new(), next)
}

/// After a sign-in or sign-up: to `next` with the new cookie, or the form
/// again with the reason (and the email kept).
fn answer<P: Template>(
    state: &AppState,
    outcome: Result<(medforge_core::model::User, axum::http::HeaderValue), crate::api::ApiError>,
    form: CredentialsForm,
    title: &'static str,
    page: FormPage<P>,
) -> Response {
    match outcome {
        Ok((_, cookie)) => signed_in_redirect(state, &form.next, cookie),
        Err(e) => {
            let mut chrome = Chrome::new(title, None, "");
            chrome.error = Some(problem_text(&e));
            let next =
                if form.next.is_empty() { String::new() } else { safe_next(&form.next, &state.config.base_domain) };
            form_page(e.problem().status, page, chrome, form.email, next)
        }
    }
}

/// After signing in or up: to `next`, with the new cookie.
fn signed_in_redirect(state: &AppState, next: &str, cookie: axum::http::HeaderValue) -> Response {
    let to = if next.is_empty() { "/".to_owned() } else { safe_next(next, &state.config.base_domain) };
    let mut r = Redirect::to(&to).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    r
}

/// The problem's words for a form: the detail, and each bad field.
pub(super) fn problem_text(e: &crate::api::ApiError) -> String {
    let p = e.problem();
    if p.errors.is_empty() {
        return p.detail.clone();
    }
    p.errors.iter().map(|f| format!("{}: {}.", capitalised(&f.field), f.message)).collect::<Vec<_>>().join(" ")
}

fn capitalised(field: &str) -> String {
    let mut chars = field.replace('_', " ").chars().collect::<Vec<_>>();
    if let Some(c) = chars.first_mut() {
        *c = c.to_ascii_uppercase();
    }
    chars.into_iter().collect()
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
    Form(form): Form<CredentialsForm>,
) -> Response {
    let outcome = log_in(&state, peer, &headers, &rid, &form.email, &form.password).await;
    answer(&state, outcome, form, "Sign in", login_form)
}

pub async fn signup(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
    Form(form): Form<CredentialsForm>,
) -> Response {
    let outcome = sign_up(&state, peer, &headers, &rid, &form.email, &form.password).await;
    answer(&state, outcome, form, "Sign up", signup_form)
}

pub async fn logout(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    match log_out(&state, peer, &headers, &rid).await {
        Ok(cookie) => {
            let mut r = Redirect::to("/login").into_response();
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r
        }
        Err(e) => super::error_page(None, &e),
    }
}
