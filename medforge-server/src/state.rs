//! What every handler shares: the config, the core services, the gate's
//! cache and the login rate limiter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use medforge_core::auth::Authenticator;
use medforge_core::events::EventSink;
use medforge_core::gate::Decision;
use medforge_core::lifecycle::Sessions;
use medforge_core::runtime::ContainerRuntime;
use medforge_core::storage::Storage;
use medforge_core::store::Store;

use crate::config::Config;

#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub storage: Arc<dyn Storage>,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub sessions: Arc<Sessions>,
    pub firewall: Arc<dyn medforge_core::firewall::Firewall>,
    /// The built-in proxy's pooled client to session containers.
    pub upstreams: crate::proxy::Upstreams,
    pub auth: Authenticator,
    pub events: Arc<dyn EventSink>,
    pub gate_cache: GateCache,
    pub auth_limiter: RateLimiter,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// Gate decisions by (token hash, host), for a few seconds, so that the
/// requests a code-server page makes (assets, websockets) cost no database
/// round trip after the first. Entries go at once on logout (by token), on
/// stop (by slug) and on any role or entitlement change (everything).
#[derive(Debug)]
pub struct GateCache {
    ttl: Duration,
    entries: Mutex<HashMap<GateKey, GateEntry>>,
    /// Bumped by every invalidation. A decision computed while an
    /// invalidation happened is not cached: it may rest on what the
    /// invalidation was about (a stop, a logout) not being visible yet.
    generation: std::sync::atomic::AtomicU64,
    /// Slugs whose session stopped: the built-in proxy ends their open
    /// tunnels (WebSockets) on hearing one.
    closed: tokio::sync::broadcast::Sender<String>,
}

/// (token hash, lower-cased Host).
type GateKey = (String, String);
/// When it was decided, the decision, the upstream.
type GateEntry = (Instant, Decision, Option<String>);

/// A cached decision, with the upstream address when `gate_upstream = "address"`.
pub type CachedGate = (Decision, Option<String>);

impl GateCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            generation: Default::default(),
            closed: tokio::sync::broadcast::channel(64).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GateKey, GateEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, token_hash: &str, host: &str) -> Option<CachedGate> {
        let key = (token_hash.to_owned(), host.to_owned());
        let mut entries = self.lock();
        match entries.get(&key) {
            Some((at, decision, upstream)) if at.elapsed() < self.ttl => Some((decision.clone(), upstream.clone())),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Read before computing a decision; pass to [`GateCache::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn invalidated(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Caches a decision computed since `generation` was read, unless an
    /// invalidation came in between.
    pub fn put(&self, generation: u64, token_hash: &str, host: &str, decision: Decision, upstream: Option<String>) {
        let mut entries = self.lock();
        if self.generation() != generation {
            return;
        }
        // Bounded: expired entries go whenever the map grows large.
        if entries.len() > 10_000 {
            let ttl = self.ttl;
            entries.retain(|_, (at, _, _)| at.elapsed() < ttl);
        }
        entries.insert((token_hash.to_owned(), host.to_owned()), (Instant::now(), decision, upstream));
    }

    pub fn forget_token(&self, token_hash: &str) {
        let mut entries = self.lock();
        self.invalidated();
        entries.retain(|(t, _), _| t != token_hash);
    }

    pub fn clear(&self) {
        let mut entries = self.lock();
        self.invalidated();
        entries.clear();
    }

    pub fn forget_slug(&self, slug: &str) {
        let label = format!("s-{slug}.");
        {
            let mut entries = self.lock();
            self.invalidated();
            entries.retain(|(_, host), _| !host.starts_with(&label));
        }
        let _ = self.closed.send(slug.to_owned());
    }

    /// Hears every slug whose session stops from now on.
    pub fn closed_slugs(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.closed.subscribe()
    }
}

/// A fixed window per client address: at most `per_minute` attempts in
/// any window of 60 s starting at the first attempt.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, windows: Mutex::new(HashMap::new()) }
    }

    /// `Err(seconds to wait)` when over the limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        const WINDOW: Duration = Duration::from_secs(60);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| start.elapsed() < WINDOW);
        }
        let entry = windows.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        if entry.1 >= self.per_minute {
            let wait = WINDOW.saturating_sub(entry.0.elapsed()).as_secs().max(1);
            return Err(wait);
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_allows_n_per_window_per_address() {
        let l = RateLimiter::new(3);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(l.check(a).is_ok());
        }
        let wait = l.check(a).expect_err("fourth");
        assert!((1..=60).contains(&wait));
        assert!(l.check(b).is_ok(), "other addresses are unaffected");
    }

    #[test]
    fn the_gate_cache_forgets_by_token_slug_and_time() {
        let c = GateCache::new(Duration::from_secs(60));
        let host = "s-abcdefgh.external.medforge.localhost";
        c.put(c.generation(), "t1", host, Decision::Unauthenticated, None);
        c.put(c.generation(), "t2", host, Decision::NotFound, None);
        assert_eq!(c.get("t1", host), Some((Decision::Unauthenticated, None)));
        c.forget_token("t1");
        assert_eq!(c.get("t1", host), None);
        assert!(c.get("t2", host).is_some());
        c.forget_slug("abcdefgh");
        assert_eq!(c.get("t2", host), None);
        let short = GateCache::new(Duration::from_millis(0));
        short.put(short.generation(), "t", host, Decision::NotFound, None);
        assert_eq!(short.get("t", host), None, "expired");
        // A decision begun before an invalidation is not cached after it.
        let begun = c.generation();
        c.forget_slug("zzzzzzzz");
        c.put(begun, "t3", host, Decision::NotFound, None);
        assert_eq!(c.get("t3", host), None);
    }
}
