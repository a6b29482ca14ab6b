//! The session gate: may this pass reach this session host, and where
//! does the request go? [`decide`] answers for the `forward_auth` endpoint
//! and for the built-in proxy alike; the verdict itself is
//! `medforge_core::gate::decide`, and this adds the pass and login
//! lookups, the upstream and a short cache. [`admit`] and [`redeem`] are
//! the two steps of the handshake that hands out passes
//! (`crate::service::passes`).

use std::time::Duration;

use medforge_core::auth::LoginToken;
use medforge_core::events::{Event, EventContext};
use medforge_core::gate::{self, Refusal, Verdict};
use medforge_core::host::{Host, SessionHost};
use medforge_core::model::{self, Login, Slug, User};
use medforge_core::runtime::{SESSION_PORT, container_name};

use super::error::Error;
use super::gate_cache::GateKey;
pub use super::gate_cache::{Decision, Upstream};
use super::passes::Grant;
use super::state::AppState;
use crate::config::GateUpstream;
use crate::telemetry;

/// The decision for the caller's session-host `pass` (if any) at `host`,
/// the session host `session_host` (what the caller checked it names), from
/// the cache when it can, with the
/// upstream in the form `form` asks for (the built-in proxy on the host
/// always needs the container's address). A pass lets in no more than its
/// login does now: the login is checked on every decision not cached.
#[tracing::instrument(level = "debug", skip_all, fields(host = host.name()))]
pub async fn decide(
    state: &AppState,
    pass: Option<&LoginToken>,
    host: &Host,
    session_host: &SessionHost,
    form: GateUpstream,
) -> Result<Decision, Error> {
    let Some(pass) = pass else {
        count(&Decision::Refuse(Refusal::Unauthenticated), "none");
        return Ok(Decision::Refuse(Refusal::Unauthenticated));
    };
    let key = GateKey::new(state.passes.hash(pass), host.clone(), form);
    if let Some(hit) = state.gate_cache.cached(&key) {
        count(&hit, "hit");
        return Ok(hit);
    }
    let generation = state.gate_cache.generation();
    let decision = decide_afresh(state, pass, session_host, form).await?;
    state.gate_cache.put(generation, key, decision.clone());
    count(&decision, "miss");
    Ok(decision)
}

async fn decide_afresh(
    state: &AppState,
    pass: &LoginToken,
    host: &SessionHost,
    form: GateUpstream,
) -> Result<Decision, Error> {
    let Some(grant) = state.passes.grant(pass, host) else {
        return Ok(Decision::Refuse(Refusal::Unauthenticated));
    };
    let user = match state.auth.authenticate_hash(&grant.login_hash, model::now()).await? {
        Some((user, _)) if user.id == grant.user_id => user,
        _ => return Ok(Decision::Refuse(Refusal::Unauthenticated)),
    };
    let session = state.store.session_by_slug(&host.slug).await?;
    Ok(match gate::decide(Some(&user), Some(host), session.as_ref()) {
        Verdict::Allow { slug } => match upstream(state, &slug, form).await? {
            Some(upstream) => Decision::Allow { slug, upstream, grant },
            // An allowed session whose container has no address: fail closed.
            None => Decision::Refuse(Refusal::NotFound),
        },
        Verdict::Refuse(r) => Decision::Refuse(r),
    })
}

/// Step 2 of the handshake (`crate::service::passes`): may the signed-in
/// `user` (through `login`) open `host`? Then a one-time code for it (and,
/// when `user` is not the owner, `session.entered_by_other` on the
/// record); otherwise the gate's refusal.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn admit(
    state: &AppState,
    ctx: &EventContext,
    user: &User,
    login: &Login,
    host: &SessionHost,
) -> Result<Result<LoginToken, Refusal>, Error> {
    let session = state.store.session_by_slug(&host.slug).await?;
    if let Verdict::Refuse(r) = gate::decide(Some(user), Some(host), session.as_ref()) {
        return Ok(Err(r));
    }
    // Allowed: so the session is there.
    let Some(session) = session else { return Ok(Err(Refusal::NotFound)) };
    if session.user_id != user.id {
        // An admin opening someone's session: on the record.
        let event = Event::SessionEnteredByOther {
            actor_id: user.id,
            user_id: session.user_id,
            session_id: session.id,
            slug: session.slug.clone(),
        };
        state.events.emit(event, ctx);
    }
    Ok(Ok(state.passes.issue_code(Grant {
        host: host.clone(),
        user_id: user.id,
        login_id: login.id,
        login_hash: login.token_hash.clone(),
    })))
}

/// Step 3: the pass for `code` at `host`, and how long it lives (as long
/// as the login behind it). `None`: no such code (or a used one, or one
/// for another host), or no live login behind it any more.
pub async fn redeem(
    state: &AppState,
    code: &LoginToken,
    host: &SessionHost,
) -> Result<Option<(LoginToken, Duration)>, Error> {
    let Some(grant) = state.passes.take_code(code, host) else { return Ok(None) };
    let Some((_, login)) = state.auth.authenticate_hash(&grant.login_hash, model::now()).await? else {
        return Ok(None);
    };
    let left = Duration::from_secs((login.expires_at - model::now()).whole_seconds().max(0).unsigned_abs());
    Ok(Some((state.passes.open_pass(grant, left), left)))
}

async fn upstream(state: &AppState, slug: &Slug, form: GateUpstream) -> Result<Option<Upstream>, Error> {
    Ok(match form {
        GateUpstream::Name => Some(Upstream::new(format!("{}:{SESSION_PORT}", container_name(slug)))),
        GateUpstream::Address => state
            .runtime
            .inspect(&container_name(slug))
            .await
            .map_err(Error::internal)?
            .and_then(|c| c.ip)
            .map(|ip| Upstream::new(std::net::SocketAddr::new(ip, SESSION_PORT).to_string())),
    })
}

fn count(decision: &Decision, cache: &'static str) {
    let label = match decision {
        Decision::Allow { .. } => "allow",
        Decision::Refuse(r) => r.label(),
    };
    metrics::counter!(telemetry::GATE_DECISIONS, "decision" => label, "cache" => cache).increment(1);
}
