//! Sign up, sign in, sign out: forms that post, then a redirect to where
//! the user was going (`next`, checked to stay on this deployment).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use medforge_core::auth::LoginToken;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::failure::form_error;
use super::next::safe_next;
use super::page::Chrome;
use crate::config::SignupPolicy;
use crate::http::cookie;
use crate::http::html::render;
use crate::service::accounts::{self, Caller, SignUp};
use crate::service::invites::{self, WayIn};
use crate::service::{AppState, Error};

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    /// An invite link's token (`/signup?invite=...`).
    invite: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CredentialsForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    invite: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    email: String,
    next: String,
    next_query: String,
    /// Whether the sign-up page may be of use (not with `signup = "closed"`).
    can_sign_up: bool,
}

/// The sign-up page: the form, or (when the policy leaves this visitor no
/// way in) the sentence that says why, and what to do instead.
#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    chrome: Chrome,
    email: String,
    next: String,
    next_query: String,
    /// The invite's token, carried by the form.
    invite: String,
    /// The address is the invite's: shown, not typed.
    email_fixed: bool,
    /// What the policy says to this visitor, above the form.
    note: Option<String>,
    /// Whether there is a form at all.
    form: bool,
}

/// `?next=...` for the other form's link, or nothing.
fn next_query(next: &str) -> String {
    if next.is_empty() { String::new() } else { format!("?next={}", utf8_percent_encode(next, NON_ALPHANUMERIC)) }
}

fn checked_next(state: &AppState, next: Option<&str>) -> String {
    next.filter(|n| !n.is_empty()).map(|n| safe_next(n, &state.config)).unwrap_or_default()
}

fn login_form(state: &AppState, status: StatusCode, chrome: Chrome, email: String, next: String) -> Response {
    let can_sign_up = state.config.auth.signup != SignupPolicy::Closed;
    render(status, LoginPage { chrome, email, next_query: next_query(&next), next, can_sign_up })
}

pub async fn login_page(State(state): State<Arc<AppState>>, Query(q): Query<NextQuery>) -> Response {
    let next = checked_next(&state, q.next.as_deref());
    login_form(&state, StatusCode::OK, Chrome::new("Sign in", None, ""), String::new(), next)
}

/// What the sign-up page offers `invite` (a token, or none) under the
/// deployment's policy; `error` comes from a refused post.
async fn signup_form(
    state: &AppState,
    status: StatusCode,
    error: Option<String>,
    email: String,
    next: String,
    invite: Option<&str>,
) -> Response {
    let mut page = SignupPage {
        chrome: Chrome::new("Sign up", None, ""),
        email,
        next_query: next_query(&next),
        next,
        invite: String::new(),
        email_fixed: false,
        note: None,
        form: true,
    };
    page.chrome.error = error;
    match invites::way_in(state, invite).await {
        Ok(WayIn::Invited { invite, token }) => {
            page.note = Some(format!("You were invited as {}.", invite.email));
            page.email = invite.email.to_string();
            page.email_fixed = true;
            page.invite = token.expose().to_owned();
        }
        Ok(WayIn::Domains(domains)) => {
            page.note = Some(format!("Sign-up here is for addresses at {}.", domains.join(", ")));
        }
        Ok(WayIn::Anyone) => {}
        Err(Error::SignupRefused(r)) => {
            page.note = Some(r.sentence());
            page.form = false;
        }
        Err(e) => return super::failure::error_page(None, &e),
    }
    render(status, page)
}

pub async fn signup_page(State(state): State<Arc<AppState>>, Query(q): Query<NextQuery>) -> Response {
    let next = checked_next(&state, q.next.as_deref());
    signup_form(&state, StatusCode::OK, None, String::new(), next, q.invite.as_deref()).await
}

/// After a sign-in or sign-up: to `next` with the new cookie.
fn signed_in(state: &AppState, token: &LoginToken, next: &str) -> Response {
    let to = if next.is_empty() { "/".to_owned() } else { safe_next(next, &state.config) };
    let mut r = Redirect::to(&to).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie::set(&state.config, token));
    r
}

pub async fn login(State(state): State<Arc<AppState>>, caller: Caller, Form(form): Form<CredentialsForm>) -> Response {
    match accounts::log_in(&state, &caller, &form.email, &form.password).await {
        Ok((_, token)) => signed_in(&state, &token, &form.next),
        Err(e) => {
            let (status, text) = form_error(&e);
            let mut chrome = Chrome::new("Sign in", None, "");
            chrome.error = Some(text);
            let next = checked_next(&state, Some(&form.next));
            login_form(&state, status, chrome, form.email, next)
        }
    }
}

/// A refused sign-up gets the form again, with the reason, the email and
/// the invite kept.
pub async fn signup(State(state): State<Arc<AppState>>, caller: Caller, Form(form): Form<CredentialsForm>) -> Response {
    let asked = SignUp { email: &form.email, password: &form.password, invite: Some(form.invite.as_str()) };
    match accounts::sign_up(&state, &caller, asked).await {
        Ok((_, token)) => signed_in(&state, &token, &form.next),
        Err(e) => {
            let (status, text) = form_error(&e);
            let next = checked_next(&state, Some(&form.next));
            signup_form(&state, status, Some(text), form.email, next, Some(&form.invite)).await
        }
    }
}

pub async fn logout(State(state): State<Arc<AppState>>, caller: Caller, headers: HeaderMap) -> Result<Response, Error> {
    accounts::log_out(&state, &caller, cookie::token_from(&headers, &state.config).as_ref()).await?;
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie::clear(&state.config));
    Ok(r)
}
