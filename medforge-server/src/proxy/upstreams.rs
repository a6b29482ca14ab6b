//! What the built-in proxy runs on: the app's state and a pooled HTTP/1
//! client to session containers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::service::AppState;

/// How long the container has to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The pooled HTTP/1 client to session containers.
pub type Upstreams = Client<HttpConnector, Body>;

/// The proxy's state.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub state: Arc<AppState>,
    pub upstreams: Upstreams,
}

impl Proxy {
    pub fn new(state: Arc<AppState>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let upstreams =
            Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Self { state, upstreams }
    }
}
