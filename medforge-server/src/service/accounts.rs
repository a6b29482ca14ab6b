//! Accounts and browser logins: sign-up, log-in, log-out, who is signed
//! in, and changes to one's own email and password. A login is a token
//! (`LoginToken`) whose hash the store keeps; the adapters carry it in a
//! cookie.

use medforge_core::auth::{AuthError, LoginToken, check_password_policy, hash_password_async, verify_password_async};
use medforge_core::events::Event;
use medforge_core::model::{self, Email, Login, User};
use medforge_core::store::UserUpdate;

pub use super::caller::Caller;
use super::error::{Denied, Error, SignupRefusal, parse_email};
use super::invites::{self, WayIn};
use super::passes::Revoked;
use super::state::AppState;

/// A sign-up as the client sent it.
#[derive(Debug, Clone, Copy)]
pub struct SignUp<'a> {
    pub email: &'a str,
    pub password: &'a str,
    /// An invite link's token, if the client came with one.
    pub invite: Option<&'a str>,
}

/// Creates an account and signs it in, if the sign-up policy
/// (`auth.signup`) lets this one in: an invite opens it under every policy
/// but `closed`, for the invite's own address; without one, `open` lets
/// anyone in, `domains` the listed domains, `invite` and `closed` no one.
#[tracing::instrument(skip_all)]
pub async fn sign_up(state: &AppState, caller: &Caller, form: SignUp<'_>) -> Result<(User, LoginToken), Error> {
    state.auth_limiter.check(caller.ip)?;
    let email = parse_email(form.email)?;
    let (made, invite_id) = match invites::way_in(state, form.invite).await? {
        WayIn::Invited { invite, token } => {
            if invite.email != email {
                return Err(Error::field("email", format!("must be {}, the address this invite is for", invite.email)));
            }
            let hash = invites::token_hash(state, &token);
            (state.auth.signup_invited(email, form.password, &hash, caller.info()).await, Some(invite.id))
        }
        WayIn::Domains(allowed) if !state.config.auth.allows_domain(email.domain()) => {
            return Err(Error::SignupRefused(SignupRefusal::DomainNotAllowed(allowed.to_vec())));
        }
        WayIn::Domains(_) | WayIn::Anyone => (state.auth.signup(email, form.password, caller.info()).await, None),
    };
    let (user, token) = made?;
    state
        .events
        .emit(Event::UserSignup { user_id: user.id, ip: Some(caller.ip.to_string()), invite_id }, &caller.events());
    Ok((user, token))
}

/// Signs in, or [`Error::InvalidCredentials`] (an unknown email and a
/// wrong password alike, each logged as `user.login_failed`).
#[tracing::instrument(skip_all)]
pub async fn log_in(
    state: &AppState,
    caller: &Caller,
    email: &str,
    password: &str,
) -> Result<(User, LoginToken), Error> {
    state.auth_limiter.check(caller.ip)?;
    let account = email.trim().to_lowercase();
    // Refused before the password is even checked: a locked account
    // answers alike whether the password is right (and whether it exists).
    if let Some(retry_after) = state.failed_logins.over(&account) {
        return Err(Error::AccountLocked { retry_after });
    }
    let ctx = caller.events();
    let ip = Some(caller.ip.to_string());
    let failed = || {
        state.failed_logins.count(account.clone());
        state.events.emit(Event::UserLoginFailed { email: account.clone(), ip: ip.clone() }, &ctx);
        Error::InvalidCredentials
    };
    // A malformed email cannot have an account: the same answer as a wrong password.
    let Ok(parsed) = email.parse::<Email>() else { return Err(failed()) };
    match state.auth.login(&parsed, password, caller.info()).await {
        Ok((user, token)) => {
            state.events.emit(Event::UserLogin { user_id: user.id, ip: ip.clone() }, &ctx);
            Ok((user, token))
        }
        Err(AuthError::InvalidCredentials) => Err(failed()),
        Err(AuthError::Store(e)) => Err(e.into()),
        Err(e) => Err(Error::internal(e)),
    }
}

/// Ends the login `token`, if it is one; its session-host passes, gate
/// decisions and open tunnels go with it.
#[tracing::instrument(skip_all)]
pub async fn log_out(state: &AppState, caller: &Caller, token: Option<&LoginToken>) -> Result<(), Error> {
    let Some(token) = token else { return Ok(()) };
    if let Some((user, login)) = state.auth.authenticate(token, model::now()).await? {
        state.events.emit(Event::UserLogout { user_id: user.id, ip: Some(caller.ip.to_string()) }, &caller.events());
        state.auth.logout(token).await?;
        // Its passes, cached decisions and tunnels end with it.
        state.revoke(Revoked::Login(login.id));
    }
    Ok(())
}

/// The CSRF token of the login `token`: what the UI's forms carry, and an
/// API client may send as `X-CSRF-Token` (docs/security.md).
pub fn csrf_token(state: &AppState, token: &LoginToken) -> String {
    state.auth.key().derive("csrf", token)
}

/// The user and login behind `token`, or [`Error::Unauthenticated`].
pub async fn signed_in(state: &AppState, token: Option<&LoginToken>) -> Result<(User, Login), Error> {
    let token = token.ok_or(Error::Unauthenticated)?;
    state.auth.authenticate(token, model::now()).await?.ok_or(Error::Unauthenticated)
}

/// A change to one's own account (`PATCH /me`, the Account page).
#[derive(Debug, Default)]
pub struct AccountChange {
    pub email: Option<String>,
    pub current_password: Option<String>,
    pub new_password: Option<String>,
}

/// Changes `user`'s email or password; both need the current password.
/// A new password ends every login of the account and returns a new
/// token for this one.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn change_account(
    state: &AppState,
    caller: &Caller,
    user: &User,
    change: AccountChange,
) -> Result<(User, Option<LoginToken>), Error> {
    let email = change.email.as_deref().map(parse_email).transpose()?;
    if let Some(pw) = &change.new_password {
        check_password_policy(pw).map_err(|e| Error::field("new_password", e.to_string()))?;
    }
    if email.is_none() && change.new_password.is_none() {
        return Ok((user.clone(), None));
    }
    let current = change.current_password.as_deref().ok_or_else(|| Error::field("current_password", "is required"))?;
    let hash = state.store.password_hash(user.id).await?.ok_or(Error::Unauthenticated)?;
    if !verify_password_async(current, &hash).await {
        return Err(Error::Forbidden(Denied::WrongPassword));
    }
    let password_hash = match change.new_password.as_deref() {
        Some(pw) => Some(hash_password_async(pw).await.map_err(Error::internal)?),
        None => None,
    };
    let changed_password = password_hash.is_some();
    let updated = state
        .store
        .update_user(user.id, UserUpdate { email, password_hash, ..Default::default() })
        .await?
        .ok_or(Error::Unauthenticated)?;
    if !changed_password {
        return Ok((updated, None));
    }
    state.store.revoke_user_logins(user.id, model::now()).await?;
    state.revoke(Revoked::User(user.id));
    let pw = change.new_password.as_deref().unwrap_or_default();
    let (_, token) = state.auth.login(&updated.email, pw, caller.info()).await.map_err(Error::internal)?;
    Ok((updated, Some(token)))
}
