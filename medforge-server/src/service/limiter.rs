//! The rate limit of log-ins and sign-ups, per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::Error;

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

    /// [`Error::RateLimited`] with the seconds to wait when over the limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), Error> {
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
            let retry_after = WINDOW.saturating_sub(entry.0.elapsed()).as_secs().max(1);
            return Err(Error::RateLimited { retry_after });
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
        let Err(Error::RateLimited { retry_after }) = l.check(a) else { panic!("the fourth passed") };
        assert!((1..=60).contains(&retry_after));
        assert!(l.check(b).is_ok(), "other addresses are unaffected");
    }
}
