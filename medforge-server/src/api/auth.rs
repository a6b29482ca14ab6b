//! Sign-up, log-in, log-out and `me`, with the login cookie of docs/api.md.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use serde::Deserialize;

use super::json::ApiJson;
use super::schemas::{EmptyBody, EnvelopeDoc, InvalidErrors, JsonErrors, ProblemDoc, SignedInErrors};
use super::views::{Me, Message};
use crate::http::cookie;
use crate::http::envelope::Envelope;
use crate::http::extract::SignedIn;
use crate::service::accounts::{self, AccountChange, Caller, SignUp};
use crate::service::{AppState, Error};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/auth/signup", post(signup))
        .route("/api/v2/auth/login", post(login))
        .route("/api/v2/auth/logout", post(logout))
        .route("/api/v2/me", get(me).patch(update_me))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    email: String,
    password: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    email: String,
    password: String,
    /// The token of an admin's invite link (`/signup?invite=<token>`); the
    /// email must be the one it was made for.
    #[serde(default)]
    invite: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v2/auth/signup",
    tag = "auth",
    request_body = SignupBody,
    responses(
        (status = 201, description = "Account created and signed in", body = EnvelopeDoc<Me>),
        (status = 403, description = "The sign-up policy refused it (why, in words)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "Email taken", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts", body = ProblemDoc, content_type = "application/problem+json"),
        InvalidErrors,
        JsonErrors,
    )
)]
pub async fn signup(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<SignupBody>,
) -> Result<Envelope, Error> {
    let form = SignUp { email: &body.email, password: &body.password, invite: body.invite.as_deref() };
    let (user, token) = accounts::sign_up(&state, &caller, form).await?;
    Ok(Envelope::with_status(StatusCode::CREATED, Me::from(&user))
        .header(header::SET_COOKIE, cookie::set(&state.config, &token)))
}

#[utoipa::path(
    post,
    path = "/api/v2/auth/login",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in", body = EnvelopeDoc<Me>),
        (status = 401, description = "Invalid email or password", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts", body = ProblemDoc, content_type = "application/problem+json"),
        InvalidErrors,
        JsonErrors,
    )
)]
pub async fn login(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Envelope, Error> {
    let (user, token) = accounts::log_in(&state, &caller, &body.email, &body.password).await?;
    Ok(Envelope::ok(Me::from(&user)).header(header::SET_COOKIE, cookie::set(&state.config, &token)))
}

#[utoipa::path(
    post,
    path = "/api/v2/auth/logout",
    tag = "auth",
    request_body = EmptyBody,
    responses((status = 200, description = "Signed out", body = EnvelopeDoc<Message>), JsonErrors)
)]
pub async fn logout(State(state): State<Arc<AppState>>, caller: Caller, headers: HeaderMap) -> Result<Envelope, Error> {
    accounts::log_out(&state, &caller, cookie::token_from(&headers, &state.config).as_ref()).await?;
    Ok(Envelope::ok(Message { message: "Signed out." }).header(header::SET_COOKIE, cookie::clear(&state.config)))
}

#[utoipa::path(
    get,
    path = "/api/v2/me",
    tag = "me",
    responses((status = 200, description = "The caller", body = EnvelopeDoc<Me>), SignedInErrors)
)]
pub async fn me(SignedIn(user): SignedIn) -> Envelope {
    Envelope::ok(Me::from(&user))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MePatch {
    pub email: Option<String>,
    pub current_password: Option<String>,
    pub new_password: Option<String>,
}

/// Changes the caller's email or password; both need the current password.
/// A new password ends every other login of the account and issues a new
/// cookie for this one.
#[utoipa::path(
    patch,
    path = "/api/v2/me",
    tag = "me",
    request_body = MePatch,
    responses(
        (status = 200, description = "Updated", body = EnvelopeDoc<Me>),
        (status = 403, description = "Wrong current password", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "Email taken", body = ProblemDoc, content_type = "application/problem+json"),
        SignedInErrors,
        InvalidErrors,
        JsonErrors,
    )
)]
pub async fn update_me(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    SignedIn(user): SignedIn,
    ApiJson(patch): ApiJson<MePatch>,
) -> Result<Envelope, Error> {
    let change = AccountChange {
        email: patch.email,
        current_password: patch.current_password,
        new_password: patch.new_password,
    };
    let (updated, token) = accounts::change_account(&state, &caller, &user, change).await?;
    let envelope = Envelope::ok(Me::from(&updated));
    Ok(match token {
        Some(t) => envelope.header(header::SET_COOKIE, cookie::set(&state.config, &t)),
        None => envelope,
    })
}
