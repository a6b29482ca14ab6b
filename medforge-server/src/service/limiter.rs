//! Rate limits of log-ins and sign-ups: per client network (an IPv4
//! address, or an IPv6 /64: one host gets a /64 to pick addresses from),
//! and, for failed sign-ins, per account (so that guessing one account's
//! password from many addresses is as slow as from one).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::Error;

/// A fixed window per key: at most `limit` counted events in any window
/// of `window` starting at the first.
#[derive(Debug)]
pub struct RateLimiter<K = IpAddr> {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<K, (Instant, u32)>>,
}

impl RateLimiter<IpAddr> {
    /// Log-ins and sign-ups: `per_minute` attempts per client network.
    pub fn new(per_minute: u32) -> Self {
        Self::with_window(per_minute, Duration::from_secs(60))
    }

    /// Counts an attempt from `ip`'s network; [`Error::RateLimited`] with
    /// the seconds to wait when over the limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), Error> {
        self.hit(network_of(ip))
    }
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn with_window(limit: u32, window: Duration) -> Self {
        Self { limit, window, windows: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, u32)>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Error::RateLimited`] when `key` is over the limit, else counts one more.
    pub fn hit(&self, key: K) -> Result<(), Error> {
        if let Some(retry_after) = self.over(&key) {
            return Err(Error::RateLimited { retry_after });
        }
        self.count(key);
        Ok(())
    }

    /// While `key` is over the limit, the seconds until its window ends
    /// (counts nothing).
    pub fn over(&self, key: &K) -> Option<u64> {
        let windows = self.lock();
        let (start, n) = windows.get(key)?;
        (start.elapsed() < self.window && *n >= self.limit)
            .then(|| self.window.saturating_sub(start.elapsed()).as_secs().max(1))
    }

    /// Counts one event for `key` (a failed sign-in, say).
    pub fn count(&self, key: K) {
        let mut windows = self.lock();
        if windows.len() > 10_000 {
            let window = self.window;
            windows.retain(|_, (start, _)| start.elapsed() < window);
        }
        let entry = windows.entry(key).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// The network a limit counts against: an IPv4 address (also written as
/// IPv4-mapped IPv6), or the /64 of an IPv6 one.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_allows_n_per_window_per_network() {
        let l = RateLimiter::new(3);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(l.check(a).is_ok());
        }
        let Err(Error::RateLimited { retry_after }) = l.check(a) else { panic!("the fourth passed") };
        assert!((1..=60).contains(&retry_after));
        assert!(l.check(b).is_ok(), "other addresses are unaffected");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert!(l.check(mapped).is_err(), "the same address written as IPv6");
    }

    #[test]
    fn one_ipv6_slash_64_is_one_client() {
        let l = RateLimiter::new(2);
        for ip in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9"] {
            assert!(l.check(ip.parse().expect("ip")).is_ok(), "{ip}");
        }
        assert!(l.check("2001:db8:1:2:dead:beef::1".parse().expect("ip")).is_err(), "the same /64");
        assert!(l.check("2001:db8:1:3::1".parse().expect("ip")).is_ok(), "the next /64 is another client");
    }

    #[test]
    fn failures_are_counted_apart_from_attempts() {
        let l: RateLimiter<String> = RateLimiter::with_window(2, Duration::from_secs(600));
        let key = "ada@example.org".to_owned();
        assert!(l.over(&key).is_none());
        l.count(key.clone());
        assert!(l.over(&key).is_none(), "one failure");
        l.count(key.clone());
        let Some(retry_after) = l.over(&key) else { panic!("two failures passed") };
        assert!((1..=600).contains(&retry_after));
        assert!(l.over(&"grace@example.org".to_owned()).is_none(), "other accounts are unaffected");
        let short: RateLimiter<String> = RateLimiter::with_window(1, Duration::ZERO);
        short.count(key.clone());
        assert!(short.over(&key).is_none(), "the window is over");
    }
}
