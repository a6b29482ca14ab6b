//! The headers every control-plane answer carries (never a session's: the
//! proxy is outside this layer): its pages may not be framed (no
//! clickjacking from a session page), run only our own script, are not
//! sniffed as another type, and tell other sites no more than our origin.
//! Served over HTTPS by `[tls]`, they also tell the browser to come back
//! over HTTPS only (HSTS, for the UI's own host: the base domain may have
//! siblings MedForge knows nothing of, so no `includeSubDomains`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::service::AppState;

/// Scripts, styles, images and connections from this origin only; no
/// plugins, no `<base>`, no framing. (`form-action` is left out: a
/// sign-in posts here and is then sent on to a session host.)
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// A year: what browsers' preload rules ask of a site that means it.
const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

pub async fn layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    if state.config.serves_tls() {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(STRICT_TRANSPORT_SECURITY));
    }
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
