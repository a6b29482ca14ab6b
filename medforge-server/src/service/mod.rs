//! The service layer: what MedForge does, whoever asks. The API (`crate::api`),
//! the web UI (`crate::ui`) and the session proxy (`crate::proxy`) are
//! adapters over it: they read a request, call one function here, and
//! show the outcome their own way. Nothing here knows HTTP: functions take
//! the state and typed values, and return [`Error`] when they refuse.
//!
//! - [`state`]: [`AppState`], everything a request may need.
//! - [`error`]: [`Error`], the one error of this layer.
//! - [`caller`]: [`caller::Caller`], who asks.
//! - [`accounts`]: sign-up, log-in, log-out, the signed-in user, account changes.
//! - [`sessions`]: start, stop, who may see which session, the list filters.
//! - [`admin`]: changes an admin makes to users and GPUs, and accounts
//!   they make; [`invites`] their sign-up links.
//! - [`gatekeeper`]: the session gate's decision and the handshake;
//!   [`gate_cache`] its short memory; [`passes`] the session hosts' passes.
//! - [`isolation`]: the firewall policy from the config and the runtime.
//! - [`gpu_monitor`]: GPU readings in memory (each GPU's last hour) and
//!   the time charged to each session; [`usage`] the GPU-hours report.
//! - [`limiter`]: the per-address rate limit of log-ins and sign-ups.
//! - [`activity`]: who used which session when (the proxy reports, the
//!   limits read); [`queue`] the wait queue for a GPU; [`notify`] the
//!   webhook that tells chat about offers and warnings.

pub mod accounts;
pub mod activity;
pub mod admin;
pub mod caller;
pub mod error;
pub mod gate_cache;
pub mod gatekeeper;
pub mod gpu_monitor;
pub mod invites;
pub mod isolation;
pub mod limiter;
pub mod notify;
pub mod passes;
pub mod queue;
pub mod sessions;
pub mod state;
pub mod usage;

pub use error::{Conflict, Denied, Error, FieldError, Missing, SignupRefusal};
pub use state::AppState;
