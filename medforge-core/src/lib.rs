//! # medforge-core
//!
//! The library at the heart of MedForge: the domain model, persistence with
//! race-safe GPU allocation, and authentication. The Docker, Podman, ZFS and
//! firewall plugins and the `medforge` server build on it; it depends on
//! none of them.
//!
//! - [`model`]: ids, enums and records.
//! - [`store`]: the [`store::Store`] trait, SQLite and MySQL/MariaDB.
//! - [`auth`]: passwords, session tokens, expiry, the Origin rule.
//! - [`runtime`]: the [`runtime::ContainerRuntime`] trait and the pure
//!   function that builds a session's [`runtime::ContainerSpec`].
//! - [`storage`]: the [`storage::Storage`] trait and [`storage::DirStorage`].
//! - [`lifecycle`]: [`lifecycle::Lifecycle`]: create, stop, watch, reconcile, and the
//!   idle and lifetime limits of [`limits`] (pure rules) on the time of a [`clock::Clock`].
//! - [`queue`]: the wait queue's order (`fifo` or `fair`) and its estimate, pure.
//! - [`gate`]: the session-proxy decision, shared by the endpoint and the proxy.
//! - [`host`]: [`host::Host`] and [`host::SessionHost`], the one host parser.
//! - [`network`]: the session port and sessions networks (runtime and firewall).
//! - [`events`]: the structured JSON-lines event log.
//! - `testing` (feature `testing`): contract suites for implementations.

pub mod auth;
pub mod clock;
pub mod events;
pub mod firewall;
pub mod gate;
pub mod host;
pub mod lifecycle;
pub mod limits;
pub mod model;
pub mod network;
pub mod probe;
pub mod process;
pub mod queue;
pub mod runtime;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod usage;

#[cfg(feature = "testing")]
pub mod testing;
