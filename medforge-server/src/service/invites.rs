//! Invites: an admin's one-time sign-up link for one email address
//! (`auth.signup = "invite"`, the default; docs/security.md). The link
//! carries a random token; the store keeps only its keyed hash, and using
//! it creates the account in the same transaction
//! (`Store::create_user_with_invite`), so one invite makes one account.

use medforge_core::auth::LoginToken;
use medforge_core::events::Event;
use medforge_core::model::{self, Invite, InviteId, InviteState, User};
use medforge_core::store::{NewInvite, Page, PageRequest};

use super::caller::Caller;
use super::error::{Error, Missing, SignupRefusal, parse_email};
use super::state::AppState;
use crate::config::SignupPolicy;

/// A new invite and its token: the token is shown to the admin once, in
/// the link, and never kept.
#[derive(Debug)]
pub struct Issued {
    pub invite: Invite,
    pub token: LoginToken,
}

/// What the store keeps of an invite's token (a key of its own, so it is
/// never a login's hash).
pub fn token_hash(state: &AppState, token: &LoginToken) -> String {
    state.auth.key().derive("invite", token)
}

/// The sign-up link of `token`, on the UI at `ui_base` (`scheme://host[:port]`).
pub fn link(ui_base: &str, token: &LoginToken) -> String {
    format!("{ui_base}/signup?invite={}", token.expose())
}

/// Invites `email`, as `actor` asked (`admin.invite.create`). An address
/// that has an account already is refused.
#[tracing::instrument(skip_all, fields(actor_id = %actor.id))]
pub async fn create(state: &AppState, caller: &Caller, actor: &User, email: &str) -> Result<Issued, Error> {
    let email = parse_email(email)?;
    if state.store.user_by_email(&email).await?.is_some() {
        return Err(Error::EmailTaken);
    }
    let token = LoginToken::generate();
    let now = model::now();
    // At most 366 days (the config's check): no overflow.
    let valid = time::Duration::try_from(state.config.auth.invite_valid).unwrap_or(time::Duration::DAY);
    let invite = state
        .store
        .create_invite(NewInvite {
            id: InviteId::new_random(),
            email,
            token_hash: token_hash(state, &token),
            created_by: actor.id,
            created_at: now,
            expires_at: now + valid,
        })
        .await?;
    state.events.emit(
        Event::AdminInviteCreate {
            actor_id: actor.id,
            invite_id: invite.id,
            email: invite.email.to_string(),
            expires_at: invite.expires_at,
        },
        &caller.events(),
    );
    Ok(Issued { invite, token })
}

/// Every invite, newest first.
pub async fn list(state: &AppState, page: PageRequest) -> Result<Page<Invite>, Error> {
    Ok(state.store.list_invites(page).await?)
}

/// Takes back the open invite `id` (as the client wrote it), as `actor`
/// asked (`admin.invite.revoke`).
#[tracing::instrument(skip_all, fields(invite_id = id, actor_id = %actor.id))]
pub async fn revoke(state: &AppState, caller: &Caller, actor: &User, id: &str) -> Result<(), Error> {
    let id: InviteId = id.parse().map_err(|_| Error::NotFound(Missing::Invite))?;
    if !state.store.revoke_invite(id, model::now()).await? {
        return Err(Error::NotFound(Missing::Invite));
    }
    state.events.emit(Event::AdminInviteRevoke { actor_id: actor.id, invite_id: id }, &caller.events());
    Ok(())
}

/// What the sign-up policy (`auth.signup`) offers a visitor who comes
/// with `invite` (a link's token, or none): the one rule that sign-up and
/// the sign-up page both follow. An invite opens the way under every
/// policy but `closed`, for the invite's own address.
#[derive(Debug)]
pub enum WayIn<'a> {
    Invited {
        invite: Invite,
        token: LoginToken,
    },
    /// `domains`: addresses at these.
    Domains(&'a [String]),
    /// `open`.
    Anyone,
}

pub async fn way_in<'a>(state: &'a AppState, invite: Option<&str>) -> Result<WayIn<'a>, Error> {
    let policy = &state.config.auth;
    let token = invite.map(str::trim).filter(|t| !t.is_empty()).map(LoginToken::from_client);
    match (policy.signup, token) {
        (SignupPolicy::Closed, _) => Err(Error::SignupRefused(SignupRefusal::Closed)),
        (_, Some(token)) => Ok(WayIn::Invited { invite: open(state, &token).await?, token }),
        (SignupPolicy::Invite, None) => Err(Error::SignupRefused(SignupRefusal::InviteOnly)),
        (SignupPolicy::Domains, None) => Ok(WayIn::Domains(&policy.allowed_email_domains)),
        (SignupPolicy::Open, None) => Ok(WayIn::Anyone),
    }
}

/// The open invite behind a link's token, or why it opens nothing.
async fn open(state: &AppState, token: &LoginToken) -> Result<Invite, Error> {
    let invite = state.store.invite_by_token_hash(&token_hash(state, token)).await?;
    invite
        .filter(|i| i.state(model::now()) == InviteState::Open)
        .ok_or(Error::SignupRefused(SignupRefusal::InviteUnusable))
}
