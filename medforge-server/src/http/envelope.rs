//! A successful API answer: `{data, meta}` (docs/api.md). Handlers return the
//! `data` and the page; `crate::http::context` adds `meta` (it knows the
//! request id).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

pub const API_VERSION: &str = "v2.0";

/// A successful answer: `data` now, `meta` added by the middleware.
#[derive(Debug)]
pub struct Envelope {
    status: StatusCode,
    data: Value,
    page: Option<PageMeta>,
    headers: HeaderMap,
}

/// Where a listing's page ends.
#[derive(Debug, Clone)]
pub struct PageMeta {
    pub limit: u32,
    pub next_cursor: Option<String>,
}

impl Envelope {
    pub fn ok(data: impl Serialize) -> Self {
        Self::with_status(StatusCode::OK, data)
    }

    pub fn with_status(status: StatusCode, data: impl Serialize) -> Self {
        // Our own types always serialise; a failure would be a bug, and is
        // answered as an empty object rather than a panic.
        let data = serde_json::to_value(data).unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not serialise a response");
            json!({})
        });
        Self { status, data, page: None, headers: HeaderMap::new() }
    }

    pub fn page(mut self, page: PageMeta) -> Self {
        self.page = Some(page);
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }
}

/// Carried from handler to middleware in the response's extensions.
#[derive(Debug, Clone)]
pub(crate) struct EnvelopeBody {
    pub data: Value,
    pub page: Option<PageMeta>,
}

impl EnvelopeBody {
    /// The finished body, with `meta`.
    pub fn render(self, request_id: &str) -> Value {
        let page = self.page.as_ref();
        json!({
            "data": self.data,
            "meta": {
                "request_id": request_id,
                "api_version": API_VERSION,
                "timestamp": rfc3339(time::OffsetDateTime::now_utc()),
                "limit": page.map(|p| p.limit),
                "next_cursor": page.and_then(|p| p.next_cursor.clone()),
                "has_more": page.map(|p| p.next_cursor.is_some()),
            },
        })
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.headers).into_response();
        response.extensions_mut().insert(EnvelopeBody { data: self.data, page: self.page });
        response
    }
}

/// A time as docs/api.md writes it.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
