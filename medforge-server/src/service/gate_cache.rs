//! The gate's short memory: decisions by login, host and upstream form,
//! for a few seconds, and the news of sessions that stopped. The decision
//! itself is `crate::service::gatekeeper`'s.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use medforge_core::gate::Refusal;
use medforge_core::host::Host;
use medforge_core::model::Slug;

use super::passes::Grant;
use crate::config::GateUpstream;

/// Where an allowed request goes: `mf-session-<slug>:8080` or `ip:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream(String);

impl Upstream {
    pub(super) fn new(address: String) -> Self {
        Self(address)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Pass, to `upstream`.
    Allow {
        slug: Slug,
        upstream: Upstream,
        /// Who is let in, by which login: what open tunnels are closed by
        /// (`crate::service::passes::Revoked`).
        grant: Grant,
    },
    Refuse(Refusal),
}

/// A cached decision's key: the pass (by its hash), the host and
/// the upstream form (the two forms are cached apart).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct GateKey {
    token_hash: String,
    host: Host,
    form: GateUpstream,
}

#[derive(Debug)]
struct GateEntry {
    decided_at: Instant,
    decision: Decision,
}

/// Gate decisions for a few seconds, so that the requests a code-server
/// page makes (assets, websockets) cost no database round trip after the
/// first. Entries go at once on a stop (by slug) and on any revocation
/// (everything: a logout, a role or entitlement change).
#[derive(Debug)]
pub struct GateCache {
    ttl: Duration,
    entries: Mutex<HashMap<GateKey, GateEntry>>,
    /// Bumped by every invalidation. A decision computed while an
    /// invalidation happened is not cached: it may rest on what the
    /// invalidation was about (a stop, a logout) not being visible yet.
    generation: AtomicU64,
}

impl GateKey {
    pub(super) fn new(token_hash: String, host: Host, form: GateUpstream) -> Self {
        Self { token_hash, host, form }
    }
}

impl GateCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()), generation: AtomicU64::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GateKey, GateEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn cached(&self, key: &GateKey) -> Option<Decision> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(e) if e.decided_at.elapsed() < self.ttl => Some(e.decision.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Read before computing a decision; pass to [`GateCache::put`].
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn invalidated(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Caches a decision computed since `generation` was read, unless an
    /// invalidation came in between.
    pub(super) fn put(&self, generation: u64, key: GateKey, decision: Decision) {
        let mut entries = self.lock();
        if self.generation() != generation {
            return;
        }
        // Bounded: expired entries go whenever the map grows large.
        if entries.len() > 10_000 {
            let ttl = self.ttl;
            entries.retain(|_, e| e.decided_at.elapsed() < ttl);
        }
        entries.insert(key, GateEntry { decided_at: Instant::now(), decision });
    }

    /// A change of who may use what (logouts, roles, entitlements, passwords).
    pub fn forget_all(&self) {
        let mut entries = self.lock();
        self.invalidated();
        entries.clear();
    }

    /// A stop (or a container that stopped answering): that session's
    /// decisions go.
    pub fn forget_slug(&self, slug: &Slug) {
        let label = format!("s-{slug}.");
        let mut entries = self.lock();
        self.invalidated();
        entries.retain(|k, _| !k.host.name().starts_with(&label));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(token: &str, host: &str) -> GateKey {
        GateKey { token_hash: token.into(), host: host.parse().expect("host"), form: GateUpstream::Name }
    }

    #[test]
    fn the_cache_forgets_by_slug_and_time() {
        let c = GateCache::new(Duration::from_secs(60));
        let host = "s-abcdefgh.external.medforge.localhost";
        let unauthenticated = Decision::Refuse(Refusal::Unauthenticated);
        let not_found = Decision::Refuse(Refusal::NotFound);
        c.put(c.generation(), key("t1", host), unauthenticated.clone());
        c.put(c.generation(), key("t2", host), not_found.clone());
        assert_eq!(c.cached(&key("t1", host)), Some(unauthenticated));
        let address = GateKey { form: GateUpstream::Address, ..key("t2", host) };
        assert_eq!(c.cached(&address), None, "the two upstream forms are cached apart");
        c.forget_slug(&"zzzzzzzz".parse().expect("slug"));
        assert!(c.cached(&key("t2", host)).is_some(), "another slug");
        c.forget_slug(&"abcdefgh".parse().expect("slug"));
        assert_eq!(c.cached(&key("t2", host)), None);
        let short = GateCache::new(Duration::from_millis(0));
        short.put(short.generation(), key("t", host), not_found.clone());
        assert_eq!(short.cached(&key("t", host)), None, "expired");
        // A decision begun before an invalidation is not cached after it.
        let begun = c.generation();
        c.forget_slug(&"zzzzzzzz".parse().expect("slug"));
        c.put(begun, key("t3", host), not_found);
        assert_eq!(c.cached(&key("t3", host)), None);
    }
}
