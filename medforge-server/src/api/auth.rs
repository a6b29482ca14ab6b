//! Sign-up, log-in, log-out and `me`, with the session cookie of API.md.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use axum::{Extension, Router};
use medforge_core::auth::{AuthError, ClientInfo, SessionToken, check_password_policy, hash_password, verify_password};
use medforge_core::events::{Event, EventContext};
use medforge_core::model::{self, AuthSession, Email, User};
use medforge_core::store::UserUpdate;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiJson, ApiResult, Envelope, RequestId};
use crate::state::AppState;

pub const COOKIE: &str = "medforge_session";
const COOKIE_MAX_AGE: u32 = 30 * 24 * 3600;

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

/// What `me`, signup and login answer.
#[derive(Debug, Serialize)]
pub struct Me {
    user_id: String,
    email: String,
    role: String,
    can_use_internal: bool,
}

impl From<&User> for Me {
    fn from(u: &User) -> Self {
        Self {
            user_id: u.id.to_string(),
            email: u.email.to_string(),
            role: u.role.to_string(),
            can_use_internal: u.can_use_internal,
        }
    }
}

/// `medforge_session=<token>; HttpOnly; [Secure;] SameSite=Lax; Domain=.<domain>; Path=/; Max-Age=...`
fn session_cookie(state: &AppState, token: &str, max_age: u32) -> HeaderValue {
    let secure = if state.config.cookie_secure { " Secure;" } else { "" };
    let value = format!(
        "{COOKIE}={token}; HttpOnly;{secure} SameSite=Lax; Domain=.{}; Path=/; Max-Age={max_age}",
        state.config.base_domain
    );
    // Tokens are base64url and the domain was validated: always a valid header.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session token from the `Cookie` header, if any.
pub fn token_from(headers: &HeaderMap) -> Option<SessionToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| SessionToken::from_client(value))
}

/// The caller's live login, or 401.
pub async fn current_user(state: &AppState, headers: &HeaderMap) -> Result<(User, AuthSession), ApiError> {
    let token = token_from(headers).ok_or_else(ApiError::unauthorized)?;
    state.auth.authenticate(&token, model::now()).await?.ok_or_else(ApiError::unauthorized)
}

fn client(peer: &ConnectInfo<SocketAddr>, headers: &HeaderMap) -> ClientInfo {
    ClientInfo {
        ip: Some(peer.0.ip().to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
    }
}

fn parse_email(text: &str) -> Result<Email, ApiError> {
    text.parse().map_err(|e: model::ParseError| ApiError::field("email", e.reason))
}

#[utoipa::path(post, path = "/api/v2/auth/signup", tag = "auth", request_body = Credentials, responses((status = 201, description = "Account created and signed in", body = super::openapi::EnvelopeDoc), (status = 409, description = "Email taken", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 422, description = "Invalid fields", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many attempts", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn signup(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Credentials>,
) -> ApiResult {
    let (user, cookie) = sign_up(&state, peer, &headers, &rid, &body.email, &body.password).await?;
    Ok(Envelope::with_status(StatusCode::CREATED, Me::from(&user)).header(header::SET_COOKIE, cookie))
}

/// Creates an account and signs it in (the API's and the web UI's sign-up):
/// the user and the `Set-Cookie` value.
pub(crate) async fn sign_up(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    rid: &str,
    email: &str,
    password: &str,
) -> Result<(User, HeaderValue), ApiError> {
    state.auth_limiter.check(peer.ip()).map_err(ApiError::rate_limited)?;
    let email = parse_email(email)?;
    let info = client(&ConnectInfo(peer), headers);
    let (user, token) = state.auth.signup(email, password, info).await.map_err(|e| match e {
        AuthError::PasswordPolicy => ApiError::field("password", e.to_string()),
        AuthError::Store(s) => s.into(),
        other => ApiError::internal(other),
    })?;
    state
        .events
        .emit(Event::UserSignup { user_id: user.id, ip: Some(peer.ip().to_string()) }, &EventContext::request(rid));
    Ok((user, session_cookie(state, token.expose(), COOKIE_MAX_AGE)))
}

#[utoipa::path(post, path = "/api/v2/auth/login", tag = "auth", request_body = Credentials, responses((status = 200, description = "Signed in", body = super::openapi::EnvelopeDoc), (status = 401, description = "Invalid email or password", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 422, description = "Invalid body", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many attempts", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Credentials>,
) -> ApiResult {
    let (user, cookie) = log_in(&state, peer, &headers, &rid, &body.email, &body.password).await?;
    Ok(Envelope::ok(Me::from(&user)).header(header::SET_COOKIE, cookie))
}

/// Signs in (the API's and the web UI's log-in): the user and the
/// `Set-Cookie` value, or 401 `Invalid email or password.`
pub(crate) async fn log_in(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    rid: &str,
    email: &str,
    password: &str,
) -> Result<(User, HeaderValue), ApiError> {
    state.auth_limiter.check(peer.ip()).map_err(ApiError::rate_limited)?;
    let ctx = EventContext::request(rid);
    let ip = Some(peer.ip().to_string());
    let failed = |state: &AppState| {
        state.events.emit(Event::UserLoginFailed { email: email.trim().to_lowercase(), ip: ip.clone() }, &ctx);
        ApiError::http(StatusCode::UNAUTHORIZED, "Invalid email or password.")
    };
    // A malformed email cannot have an account: the same answer as a wrong password.
    let Ok(parsed) = email.parse::<Email>() else { return Err(failed(state)) };
    let info = client(&ConnectInfo(peer), headers);
    match state.auth.login(&parsed, password, info).await {
        Ok((user, token)) => {
            state.events.emit(Event::UserLogin { user_id: user.id, ip: ip.clone() }, &ctx);
            Ok((user, session_cookie(state, token.expose(), COOKIE_MAX_AGE)))
        }
        Err(AuthError::InvalidCredentials) => Err(failed(state)),
        Err(AuthError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::internal(e)),
    }
}

#[utoipa::path(post, path = "/api/v2/auth/logout", tag = "auth", responses((status = 200, description = "Signed out", body = super::openapi::EnvelopeDoc)))]
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
) -> ApiResult {
    let cookie = log_out(&state, peer, &headers, &rid).await?;
    Ok(Envelope::ok(serde_json::json!({ "message": "Signed out." })).header(header::SET_COOKIE, cookie))
}

/// Ends the caller's login, if any: the `Set-Cookie` value that clears it.
pub(crate) async fn log_out(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    rid: &str,
) -> Result<HeaderValue, ApiError> {
    if let Some(token) = token_from(headers) {
        if let Some((user, _)) = state.auth.authenticate(&token, model::now()).await? {
            state.events.emit(
                Event::UserLogout { user_id: user.id, ip: Some(peer.ip().to_string()) },
                &EventContext::request(rid),
            );
        }
        state.auth.logout(&token).await?;
        state.gate_cache.forget_token(&state.auth.key().hash(&token));
    }
    Ok(session_cookie(state, "", 0))
}

#[utoipa::path(get, path = "/api/v2/me", tag = "me", responses((status = 200, description = "The caller", body = super::openapi::EnvelopeDoc), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn me(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult {
    let (user, _) = current_user(&state, &headers).await?;
    Ok(Envelope::ok(Me::from(&user)))
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
#[utoipa::path(patch, path = "/api/v2/me", tag = "me", request_body = MePatch, responses((status = 200, description = "Updated", body = super::openapi::EnvelopeDoc), (status = 401, description = "Not signed in", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Wrong current password", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 409, description = "Email taken", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 422, description = "Invalid fields", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn update_me(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<MePatch>,
) -> ApiResult {
    let (user, _) = current_user(&state, &headers).await?;
    let (updated, cookie) = change_account(&state, peer, &headers, &user, patch).await?;
    let envelope = Envelope::ok(Me::from(&updated));
    Ok(match cookie {
        Some(c) => envelope.header(header::SET_COOKIE, c),
        None => envelope,
    })
}

/// Applies a `PATCH /me` (the API's and the web UI's account page): the
/// updated user, and a new cookie when the password changed.
pub(crate) async fn change_account(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    user: &User,
    patch: MePatch,
) -> Result<(User, Option<HeaderValue>), ApiError> {
    let email = patch.email.as_deref().map(parse_email).transpose()?;
    if let Some(pw) = &patch.new_password {
        check_password_policy(pw).map_err(|e| ApiError::field("new_password", e.to_string()))?;
    }
    if email.is_none() && patch.new_password.is_none() {
        return Ok((user.clone(), None));
    }
    let current =
        patch.current_password.as_deref().ok_or_else(|| ApiError::field("current_password", "is required"))?;
    let hash = state.store.password_hash(user.id).await?.ok_or_else(ApiError::unauthorized)?;
    if !verify_password(current, &hash) {
        return Err(ApiError::forbidden("The current password is wrong."));
    }
    let password_hash = patch.new_password.as_deref().map(hash_password).transpose().map_err(ApiError::internal)?;
    let changed_password = password_hash.is_some();
    let updated = state
        .store
        .update_user(user.id, UserUpdate { email, password_hash, ..Default::default() })
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if !changed_password {
        return Ok((updated, None));
    }
    state.store.revoke_user_auth_sessions(user.id, model::now()).await?;
    state.gate_cache.clear();
    let pw = patch.new_password.as_deref().unwrap_or_default();
    let (_, token) =
        state.auth.login(&updated.email, pw, client(&ConnectInfo(peer), headers)).await.map_err(ApiError::internal)?;
    Ok((updated, Some(session_cookie(state, token.expose(), COOKIE_MAX_AGE))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_found_among_other_cookies() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; medforge_session=tok-en_1; b=2"));
        assert_eq!(token_from(&h).map(|t| t.expose().to_owned()), Some("tok-en_1".to_owned()));
        let mut none = HeaderMap::new();
        none.append(header::COOKIE, HeaderValue::from_static("medforge_sessionx=1"));
        assert!(token_from(&none).is_none());
    }
}
