//! The request's `Host`, read by the one host parser
//! (`medforge_core::host::Host`), and the port it came in on: the UI and the
//! session hosts share one front, so every URL built from one request for
//! another host keeps this request's port.

use axum::http::{HeaderMap, header};
use medforge_core::host::Host;

/// The request's `Host` header as a [`Host`], if it parses.
pub fn request_host(headers: &HeaderMap) -> Option<Host> {
    headers.get(header::HOST)?.to_str().ok()?.parse().ok()
}

/// `:<port>` of the request's `Host`, or nothing.
pub fn port_suffix(headers: &HeaderMap) -> String {
    request_host(headers).map(|h| h.port_suffix()).unwrap_or_default()
}

/// `scheme://<base_domain>[:port]`: the UI's address as the client that
/// sent `headers` reaches it (links made for that client, an invite's).
pub fn ui_base(config: &crate::config::Config, headers: &HeaderMap) -> String {
    format!("{}://{}{}", config.scheme(), config.base_domain, port_suffix(headers))
}
