//! A small HTTP/1 client for Podman's API on its Unix socket: one
//! connection per request (the socket is local; Podman serves each
//! connection in its own goroutine), JSON in and out, and a streaming body
//! for the event stream.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// The API version prefix: Podman 4.x serves `/v4.0.0/libpod/...`.
pub const API: &str = "/v4.0.0/libpod";

#[derive(Debug, Clone)]
pub struct Libpod {
    socket: PathBuf,
}

/// What went wrong talking to Podman: the socket, or HTTP itself.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl Libpod {
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Self { socket: socket.as_ref().to_owned() }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, Unreachable> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| Unreachable(format!("{}: {e}", self.socket.display())))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Unreachable(format!("handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(format!("{API}{path}"))
            // Podman routes by path only, but HTTP/1.1 needs a Host.
            .header(hyper::header::HOST, "podman")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes))
            .map_err(|e| Unreachable(format!("request: {e}")))?;
        sender.send_request(request).await.map_err(|e| Unreachable(format!("{path}: {e}")))
    }

    /// A whole answer: status and body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, Bytes), Unreachable> {
        let response = self.send(method, path, body).await?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| Unreachable(format!("{path}: {e}")))?.to_bytes();
        Ok((status, body))
    }

    /// A streamed answer (the event stream): its chunks as they come.
    pub async fn stream(
        &self,
        path: &str,
    ) -> Result<(StatusCode, BoxStream<'static, Result<Bytes, String>>), Unreachable> {
        let response = self.send(Method::GET, path, None).await?;
        let status = response.status();
        let body = http_body_util::BodyStream::new(response.into_body())
            .filter_map(|frame| async move {
                match frame {
                    Ok(f) => f.into_data().ok().map(Ok),
                    Err(e) => Some(Err(e.to_string())),
                }
            })
            .boxed();
        Ok((status, body))
    }
}

/// Podman's error body: `{"cause": ..., "message": ..., "response": N}`.
pub fn message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect())
}

/// `filters` as the query parameter Podman reads (JSON, percent-encoded).
pub fn filters(pairs: &[(&str, &[&str])]) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        pairs.iter().map(|(k, v)| ((*k).to_owned(), serde_json::json!(v))).collect();
    percent_encoding::utf8_percent_encode(
        &serde_json::Value::Object(map).to_string(),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string()
}
