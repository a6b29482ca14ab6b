//! The listener: MedForge's own accept loop over hyper's HTTP/1.1, because
//! `axum::serve` has none of the knobs a server on a hostile network needs
//! (docs/security.md, "Hostile clients"):
//!
//! - **a header-read timeout**: a request's headers must be in within
//!   `http.header_read_timeout` of the connection being ready for
//!   them (just accepted, or done with the previous request), or hyper
//!   closes it: a connection that sends half a request holds nothing long;
//! - **an idle keep-alive timeout** (`http.keep_alive_idle`, at most
//!   the header timeout, which bounds idleness too);
//! - **caps on open connections**, overall and per client network (an
//!   IPv4 address, an IPv6 /64); trusted proxies are exempt from the
//!   second (all of Caddy's clients share its address). A connection over
//!   a cap gets a 503 and is closed. An upgraded connection (a WebSocket
//!   tunnel) keeps its place for as long as it lives: its [`Permit`]
//!   rides with the request into the tunnel;
//! - TLS when `[tls]` is set (`crate::http::tls`): the handshake runs in
//!   the connection's own task, within the header-read timeout;
//! - TCP_NODELAY on every connection (docs/decisions.md);
//! - graceful shutdown: no new connections, in-flight requests finish
//!   (for 30 s at most).
//!
//! Request bodies to the API and the UI have a timeout of their own
//! (`crate::app`); a response a client never reads is the one thing a
//! connection can still be held with, for as long as the client's TCP
//! window lets it (docs/security.md, "What remains").

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::HttpConfig;
use crate::service::limiter::network_of;

/// How long a shutdown waits for open connections to finish.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(30);

/// What the listener enforces (from `[http]` and `limits.trusted_proxies`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub keep_alive_idle: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// Exempt from the per-client cap.
    pub trusted_proxies: Vec<IpNet>,
}

impl Limits {
    pub fn new(http: &HttpConfig, trusted_proxies: &[IpNet]) -> Self {
        Self {
            header_read_timeout: http.header_read_timeout,
            keep_alive_idle: http.keep_alive_idle,
            max_connections: http.max_connections,
            max_connections_per_client: http.max_connections_per_client,
            trusted_proxies: trusted_proxies.to_vec(),
        }
    }
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `http.max_connections` are open.
    Total,
    /// `http.max_connections_per_client` are open from its network.
    PerClient,
}

impl Refused {
    fn label(self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::PerClient => "per_client",
        }
    }
}

/// The open connections, counted overall and per client network.
#[derive(Debug)]
pub struct Connections {
    limits: Limits,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

impl Connections {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self { limits, open: Mutex::new(Open::default()) })
    }

    /// A place for a connection from `peer`, or why there is none.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refused> {
        let trusted = self.limits.trusted_proxies.iter().any(|net| net.contains(&peer));
        let key = (!trusted).then(|| network_of(peer));
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.limits.max_connections {
            return Err(Refused::Total);
        }
        if let Some(key) = key {
            let n = open.per_client.entry(key).or_default();
            if *n >= self.limits.max_connections_per_client {
                return Err(Refused::PerClient);
            }
            *n += 1;
        }
        open.total += 1;
        metrics::gauge!("medforge_http_connections_open").set(open.total as f64);
        Ok(Permit(Arc::new(Slot { connections: self.clone(), key })))
    }

    /// How many are open (overall, and from `peer`'s network).
    pub fn count(&self, peer: IpAddr) -> (usize, usize) {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        (open.total, open.per_client.get(&network_of(peer)).copied().unwrap_or(0))
    }

    fn release(&self, key: Option<IpAddr>) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(key) = key
            && let Some(n) = open.per_client.get_mut(&key)
        {
            *n -= 1;
            if *n == 0 {
                open.per_client.remove(&key);
            }
        }
        metrics::gauge!("medforge_http_connections_open").set(open.total as f64);
    }
}

/// A connection's place under the caps, given back when its last holder
/// (the connection, or the tunnel it became) lets go. In every request's
/// extensions, for the proxy to keep with a tunnel.
#[derive(Debug, Clone)]
pub struct Permit(#[allow(dead_code)] Arc<Slot>);

#[derive(Debug)]
struct Slot {
    connections: Arc<Connections>,
    key: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.release(self.key);
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`
/// resolves, then lets the open connections finish what they are doing.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    connections: Arc<Connections>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (closing, closing_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match connections.admit(peer.ip()) {
                    Ok(permit) => {
                        let (app, limits, closing) = (app.clone(), connections.limits.clone(), closing_rx.clone());
                        tasks.spawn(accepted_connection(stream, peer, tls.clone(), app, permit, limits, closing));
                    }
                    // A TLS client cannot read a plain answer: it is
                    // only closed.
                    Err(why) => refuse(&stream, why, tls.is_none()),
                },
                // Out of file descriptors (or a connection reset before
                // it was accepted): wait a little, as a full table frees
                // up by itself, and go on.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let _ = closing.send(true);
    // In-flight requests finish; a client that never reads its answer
    // does not hold the shutdown past this.
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_DRAIN, drained).await.is_err() {
        tracing::warn!(left = tasks.len(), "connections still open at shutdown: closing them");
        tasks.abort_all();
    }
    Ok(())
}

/// A 503 in one write (whatever the socket takes) when `answer`, then the close.
fn refuse(stream: &TcpStream, why: Refused, answer: bool) {
    metrics::counter!("medforge_http_connections_refused_total", "reason" => why.label()).increment(1);
    if !answer {
        return;
    }
    const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n\
        Content-Type: text/plain; charset=utf-8\r\nContent-Length: 33\r\n\r\nToo many connections; try again.\n";
    let _ = stream.try_write(ANSWER);
}

/// A connection just accepted: TCP_NODELAY, the TLS handshake if any,
/// then HTTP.
async fn accepted_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    permit: Permit,
    limits: Limits,
    closing: watch::Receiver<bool>,
) {
    // No Nagle: a proxied response's head and body go out as separate
    // writes, and Nagle would hold the body back for the client's delayed
    // ACK (40 ms a request).
    if let Err(e) = stream.set_nodelay(true) {
        tracing::warn!(error = %e, "could not set TCP_NODELAY");
    }
    let Some(tls) = tls else {
        return connection(stream, peer, app, permit, limits, closing).await;
    };
    // The handshake is the first thing a TLS client sends: it gets the
    // header timeout, as a request's first line would.
    match tokio::time::timeout(limits.header_read_timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => connection(stream, peer, app, permit, limits, closing).await,
        Ok(Err(e)) => {
            metrics::counter!("medforge_tls_handshake_failures_total", "reason" => "error").increment(1);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            metrics::counter!("medforge_tls_handshake_failures_total", "reason" => "timeout").increment(1);
            metrics::counter!("medforge_http_header_timeouts_total").increment(1);
            tracing::debug!(%peer, "TLS handshake timed out");
        }
    }
}

/// HTTP/1.1 on one connection (plain or TLS), under the timeouts.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    permit: Permit,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        tower::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(permit.clone());
            let busy = activity.busy();
            let app = app.clone();
            async move {
                let response = app.oneshot(req).await;
                drop(busy);
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).with_upgrades();
    tokio::pin!(conn);
    let mut shutting = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    if e.is_timeout() {
                        metrics::counter!("medforge_http_header_timeouts_total").increment(1);
                    }
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                break;
            }
            _ = closing.wait_for(|c| *c), if !shutting => {
                conn.as_mut().graceful_shutdown();
                shutting = true;
            }
            () = activity.idle_for(limits.keep_alive_idle), if !shutting => {
                conn.as_mut().graceful_shutdown();
                shutting = true;
            }
        }
    }
}

/// Whether a connection is serving a request, and since when it is not.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

/// One request being served.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
    }
}

impl Activity {
    fn new() -> Self {
        Self { in_flight: AtomicUsize::new(0), idle_since: Mutex::new(Instant::now()) }
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Resolves once no request has been in flight for `idle`. (A response
    /// body still streaming when it fires is not cut: hyper's graceful
    /// shutdown finishes it first.)
    async fn idle_for(&self, idle: Duration) {
        loop {
            if self.in_flight.load(Ordering::Acquire) == 0 {
                let since = *self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
                if since.elapsed() >= idle && self.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                tokio::time::sleep_until(since + idle).await;
            } else {
                tokio::time::sleep(idle).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per: usize) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_idle: Duration::from_secs(5),
            max_connections: total,
            max_connections_per_client: per,
            trusted_proxies: vec!["172.29.0.2/32".parse().expect("net")],
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn caps_count_networks_and_spare_trusted_proxies() {
        let c = Connections::new(limits(5, 2));
        let a = c.admit(ip("192.0.2.1")).expect("first");
        let b = c.admit(ip("192.0.2.1")).expect("second");
        assert_eq!(c.admit(ip("192.0.2.1")).expect_err("third"), Refused::PerClient);
        // One IPv6 /64 is one client, whatever the host part.
        let v6 = [c.admit(ip("2001:db8::1")).expect("v6"), c.admit(ip("2001:db8::ffff")).expect("v6")];
        assert_eq!(c.admit(ip("2001:db8::2")).expect_err("same /64"), Refused::PerClient);
        // Caddy is many clients at once: only the total counts for it.
        let caddy = c.admit(ip("172.29.0.2")).expect("proxy");
        assert_eq!(c.count(ip("192.0.2.1")), (5, 2));
        assert_eq!(c.admit(ip("172.29.0.2")).expect_err("total"), Refused::Total);
        // A permit held twice (a connection and its tunnel) is one place,
        // given back when the last holder lets go.
        let tunnel = a.clone();
        drop(a);
        assert_eq!(c.count(ip("192.0.2.1")), (5, 2));
        drop(tunnel);
        assert_eq!(c.count(ip("192.0.2.1")), (4, 1));
        drop((b, v6, caddy));
        assert_eq!(c.count(ip("192.0.2.1")), (0, 0));
        assert!(c.open.lock().expect("lock").per_client.is_empty(), "no empty entries kept");
    }
}
