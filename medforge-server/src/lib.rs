//! The MedForge server: the `medforge` binary's whole logic, as a library
//! so that tests can build the app in-process.
//!
//! Who calls whom (docs/architecture.md draws it):
//! - [`api`], [`ui`] and [`proxy`] are the adapters, siblings that never
//!   import each other: each reads requests its own way and calls
//!   [`service`].
//! - [`http`] is what the adapters share at the HTTP edge.
//! - [`service`] is what MedForge does, over `medforge_core`, with one
//!   error enum; it knows nothing of HTTP.
//! - [`app`] composes the adapters with the middleware each needs.
//! - [`stack`] builds the state from the [`config`]; [`tasks`] runs the
//!   background work of `serve`; [`bootstrap`] makes the first admin;
//!   [`doctor`] checks a host. `main.rs` is the command line.

pub mod api;
pub mod app;
pub mod bootstrap;
pub mod config;
pub mod doctor;
pub mod http;
pub mod proxy;
pub mod service;
pub mod stack;
pub mod tasks;
pub mod telemetry;
pub mod ui;
