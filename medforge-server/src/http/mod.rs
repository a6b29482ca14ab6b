//! What the three adapters (`crate::api`, `crate::ui`, `crate::proxy`)
//! share at the HTTP edge: the request context and the envelope, problem
//! documents, the login cookie, extractors for the caller and the
//! signed-in user, HTML pages, the Origin and content-type rules, the
//! client address behind proxies, what a session host answers (the
//! handshake, refusals), the UI's security headers, request metrics, and
//! the listener itself (timeouts, caps, TLS, the redirect to HTTPS).

pub mod context;
pub mod cookie;
pub mod envelope;
pub mod extract;
pub mod forwarded;
pub mod host;
pub mod html;
pub mod metrics;
pub mod origin;
pub mod planted;
pub mod problem;
pub mod refusal;
pub mod security_headers;
pub mod server;
pub mod session_host;
pub mod tls;
pub mod to_https;

/// The gate's own path: the API serves it, and the built-in proxy refuses
/// it on session hosts (however spelt).
pub const GATE_PATH: &str = "/api/v2/auth/session-proxy";
