//! The session gate: may this login reach this session host, and where
//! does the request go? [`decide`] answers for the `forward_auth` endpoint
//! and for the built-in proxy alike; the verdict itself is
//! `medforge_core::gate::decide`, and this adds the login lookup, the
//! upstream and a short cache.

use medforge_core::auth::LoginToken;
use medforge_core::gate::{self, Refusal, Verdict};
use medforge_core::host::{Host, SessionHost};
use medforge_core::model::{self, Slug};
use medforge_core::runtime::{SESSION_PORT, container_name};

use super::error::Error;
use super::gate_cache::GateKey;
pub use super::gate_cache::{Decision, Upstream};
use super::state::AppState;
use crate::config::GateUpstream;
use crate::telemetry;

/// The decision for the caller's login `token` at `host` (`None`: the
/// request's Host did not parse), from the cache when it can, with the
/// upstream in the form `form` asks for (the built-in proxy on the host
/// always needs the container's address).
#[tracing::instrument(level = "debug", skip_all, fields(host = ?host.map(Host::name)))]
pub async fn decide(
    state: &AppState,
    token: Option<&LoginToken>,
    host: Option<&Host>,
    form: GateUpstream,
) -> Result<Decision, Error> {
    let Some(token) = token else {
        count(&Decision::Refuse(Refusal::Unauthenticated), "none");
        return Ok(Decision::Refuse(Refusal::Unauthenticated));
    };
    let key = host.map(|h| GateKey::new(state.auth.key().hash(token), h.clone(), form));
    if let Some(hit) = key.as_ref().and_then(|k| state.gate_cache.cached(k)) {
        count(&hit, "hit");
        return Ok(hit);
    }
    let generation = state.gate_cache.generation();
    let user = state.auth.authenticate(token, model::now()).await?.map(|(u, _)| u);
    let session_host = host.and_then(|h| SessionHost::parse(h, &state.config.base_domain));
    let session = match (&user, &session_host) {
        (Some(_), Some(h)) => state.store.session_by_slug(&h.slug).await?,
        _ => None,
    };
    let decision = match gate::decide(user.as_ref(), session_host.as_ref(), session.as_ref()) {
        Verdict::Allow { slug } => match upstream(state, &slug, form).await? {
            Some(upstream) => Decision::Allow { slug, upstream },
            // An allowed session whose container has no address: fail closed.
            None => Decision::Refuse(Refusal::NotFound),
        },
        Verdict::Refuse(r) => Decision::Refuse(r),
    };
    if let Some(key) = key {
        state.gate_cache.put(generation, key, decision.clone());
    }
    count(&decision, "miss");
    Ok(decision)
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
