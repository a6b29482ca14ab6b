//! Bridge netfilter turned off for the length of a test, and back to what
//! it was afterwards, even when the test fails: how the isolation tests
//! show a host where frames bridged between two containers never reach
//! the IP-layer rules (a fresh host with Docker 27 or newer).
//!
//! The setting is the whole host's (its network namespace's): a test that
//! holds an [`Off`] must be the only one in its binary that sends traffic
//! between containers at that time (the isolation tests take turns).

use std::path::Path;

const SWITCH: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// While it lives, `net.bridge.bridge-nf-call-iptables` is 0.
#[derive(Debug)]
pub struct Off {
    before: String,
}

impl Off {
    /// Turns it off; panics when this host has no such switch (the module
    /// is not loaded: then it is off already, and the test says so).
    pub fn new() -> Self {
        let before = std::fs::read_to_string(SWITCH)
            .unwrap_or_else(|e| panic!("{SWITCH}: {e} (br_netfilter is not loaded here; scripts/test.sh loads it)"));
        std::fs::write(SWITCH, "0\n").unwrap_or_else(|e| panic!("turning {SWITCH} off: {e}"));
        Self { before }
    }

    /// Whether it is off now (an `apply` may have turned it on).
    pub fn is_off() -> bool {
        std::fs::read_to_string(SWITCH).is_ok_and(|v| v.trim() == "0")
    }

    /// Turns it off again (after something turned it on).
    pub fn again(&self) {
        std::fs::write(SWITCH, "0\n").unwrap_or_else(|e| panic!("turning {SWITCH} off: {e}"));
    }
}

impl Default for Off {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Off {
    fn drop(&mut self) {
        if Path::new(SWITCH).exists() {
            let _ = std::fs::write(SWITCH, &self.before);
        }
    }
}
