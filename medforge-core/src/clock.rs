//! Time, injected: the lifecycle's rules (idle and lifetime stops, offers
//! that lapse) read the time from a [`Clock`], so that tests move it
//! instead of waiting for it.

use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

use crate::model;

/// Where "now" comes from.
pub trait Clock: Send + Sync + Debug {
    /// The current time, at the millisecond precision the stores keep.
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        model::now()
    }
}

/// A clock that moves only when told to: for tests of time-based rules.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    /// Starts at `at` (truncated to milliseconds).
    pub fn at(at: OffsetDateTime) -> Self {
        Self(Mutex::new(model::from_unix_ms(model::to_unix_ms(at))))
    }

    /// Starts at the current wall-clock time.
    pub fn starting_now() -> Self {
        Self::at(model::now())
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }

    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = model::from_unix_ms(model::to_unix_ms(at));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::starting_now();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - t0, time::Duration::seconds(90));
    }
}
