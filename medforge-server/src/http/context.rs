//! The request context, around every route but the session proxy's: a
//! request id (in the `x-request-id` header and the request's span), and
//! the body of answers: an [`Envelope`](super::envelope::Envelope) gets
//! its `meta`, an error its problem document (with `instance` and
//! `request_id`), and any bare error answer (axum's own 404/405/413) a
//! problem document too. HTML pages pass as they are.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::envelope::EnvelopeBody;
use super::problem::{Failed, Problem};

/// The id of the current request, for handlers that log or emit events.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The middleware (see the module docs).
pub async fn layer(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let path = req.uri().path().to_owned();
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %path);
    let mut response = next.run(req).instrument(span).await;
    let status = response.status();
    let body = if let Some(envelope) = response.extensions_mut().remove::<EnvelopeBody>() {
        Some(("application/json", envelope.render(&id)))
    } else if let Some(Failed(error)) = response.extensions_mut().remove::<Failed>() {
        Some(("application/problem+json", Problem::from(error.as_ref()).body(&path, &id)))
    } else if let Some(problem) = response.extensions_mut().remove::<Problem>() {
        Some(("application/problem+json", problem.body(&path, &id)))
    } else if (status.is_client_error() || status.is_server_error()) && !has_body_type(response.headers()) {
        // axum's own answers (unknown route, wrong method, body too large).
        let problem = Problem::http(status, status.canonical_reason().unwrap_or("Error"));
        Some(("application/problem+json", problem.body(&path, &id)))
    } else {
        None
    };
    if let Some((content_type, value)) = body {
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let (mut parts, _) = response.into_parts();
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        parts.headers.remove(header::CONTENT_LENGTH);
        response = Response::from_parts(parts, Body::from(bytes));
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// JSON and HTML bodies are finished answers; axum's plain-text
/// rejections are not.
fn has_body_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json") || v.starts_with("text/html"))
}
