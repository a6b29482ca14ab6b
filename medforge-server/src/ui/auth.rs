//! Sign up, sign in, sign out: forms that post, then a redirect to where
//! the user was going (`next`, checked to stay on this deployment).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use medforge_core::auth::LoginToken;
use medforge_core::model::User;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::failure::form_error;
use super::next::safe_next;
use super::page::Chrome;
use crate::http::cookie;
use crate::http::html::render;
use crate::service::accounts::{self, Caller};
use crate::service::{AppState, Error};

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

/// The two forms share their fields: the frame, the email typed so far,
/// where to go afterwards (`next`, checked) and its query for the other
/// form's link.
struct FormFields {
    chrome: Chrome,
    email: String,
    next: String,
    next_query: String,
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

impl From<FormFields> for LoginPage {
    fn from(f: FormFields) -> Self {
        Self { chrome: f.chrome, email: f.email, next: f.next, next_query: f.next_query }
    }
}

impl From<FormFields> for SignupPage {
    fn from(f: FormFields) -> Self {
        Self { chrome: f.chrome, email: f.email, next: f.next, next_query: f.next_query }
    }
}

/// One of the two forms, with `next` checked.
fn form_page<P: Template + From<FormFields>>(
    status: StatusCode,
    chrome: Chrome,
    email: String,
    next: String,
) -> Response {
    let next_query =
        if next.is_empty() { String::new() } else { format!("?next={}", utf8_percent_encode(&next, NON_ALPHANUMERIC)) };
    render(status, P::from(FormFields { chrome, email, next, next_query }))
}

pub async fn login_page(State(state): State<Arc<AppState>>, Query(q): Query<NextQuery>) -> Response {
    let next = q.next.map(|n| safe_next(&n, &state.config)).unwrap_or_default();
    form_page::<LoginPage>(StatusCode::OK, Chrome::new("Sign in", None, ""), String::new(), next)
}

pub async fn signup_page(State(state): State<Arc<AppState>>, Query(q): Query<NextQuery>) -> Response {
    let next = q.next.map(|n| safe_next(&n, &state.config)).unwrap_or_default();
    form_page::<SignupPage>(StatusCode::OK, Chrome::new("Sign up", None, ""), String::new(), next)
}

/// After a sign-in or sign-up: to `next` with the new cookie, or the form
/// again with the reason (and the email kept).
fn answer<P: Template + From<FormFields>>(
    state: &AppState,
    outcome: Result<(User, LoginToken), Error>,
    form: CredentialsForm,
    title: &'static str,
) -> Response {
    match outcome {
        Ok((_, token)) => {
            let to = if form.next.is_empty() { "/".to_owned() } else { safe_next(&form.next, &state.config) };
            let mut r = Redirect::to(&to).into_response();
            r.headers_mut().insert(header::SET_COOKIE, cookie::set(&state.config, &token));
            r
        }
        Err(e) => {
            let (status, text) = form_error(&e);
            let mut chrome = Chrome::new(title, None, "");
            chrome.error = Some(text);
            let next = if form.next.is_empty() { String::new() } else { safe_next(&form.next, &state.config) };
            form_page::<P>(status, chrome, form.email, next)
        }
    }
}

pub async fn login(State(state): State<Arc<AppState>>, caller: Caller, Form(form): Form<CredentialsForm>) -> Response {
    let outcome = accounts::log_in(&state, &caller, &form.email, &form.password).await;
    answer::<LoginPage>(&state, outcome, form, "Sign in")
}

pub async fn signup(State(state): State<Arc<AppState>>, caller: Caller, Form(form): Form<CredentialsForm>) -> Response {
    let outcome = accounts::sign_up(&state, &caller, &form.email, &form.password).await;
    answer::<SignupPage>(&state, outcome, form, "Sign up")
}

pub async fn logout(State(state): State<Arc<AppState>>, caller: Caller, headers: HeaderMap) -> Result<Response, Error> {
    accounts::log_out(&state, &caller, cookie::token_from(&headers, &state.config).as_ref()).await?;
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie::clear(&state.config));
    Ok(r)
}
