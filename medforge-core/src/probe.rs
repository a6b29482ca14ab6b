//! Readiness: does a session's HTTP port answer?
//!
//! A plain HTTP/1.0 `GET` over a TCP connection, judged by the status line
//! alone. Any HTTP answer counts (code-server redirects `/` to its
//! workbench), so nothing here depends on what the pack serves.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One attempt: the status code, if something at `addr` spoke HTTP within `timeout`.
pub async fn http_status(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: medforge-probe\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 64];
        let mut len = 0;
        // The status line fits in the first bytes: "HTTP/1.1 200 OK".
        while len < 12 {
            let n = stream.read(&mut head[len..]).await.ok()?;
            if n == 0 {
                break;
            }
            len += n;
        }
        parse_status(&head[..len])
    };
    tokio::time::timeout(timeout, attempt).await.ok().flatten()
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head.get(..12)?).ok()?;
    let rest = text.strip_prefix("HTTP/1.")?;
    rest.get(2..5)?.parse().ok()
}

/// Polls until `addr` answers HTTP or `deadline` passes; returns how long it took.
pub async fn wait_until_http(addr: SocketAddr, deadline: Duration) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(10);
    while start.elapsed() < deadline {
        if http_status(addr, "/", Duration::from_secs(2)).await.is_some() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status(b"HTTP/1.1 302 Found\r\n"), Some(302));
        assert_eq!(parse_status(b"HTTP/1.0 200 OK"), Some(200));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH_9"), None);
        assert_eq!(parse_status(b"HTTP/1.1"), None);
    }

    #[tokio::test]
    async fn a_listener_that_speaks_http_answers_and_a_closed_port_does_not() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
            }
        });
        assert_eq!(http_status(addr, "/", Duration::from_secs(2)).await, Some(204));
        assert!(wait_until_http(addr, Duration::from_secs(2)).await.is_some());
        // A port nobody listens on: bind, note it, drop.
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
        assert_eq!(http_status(closed, "/", Duration::from_millis(500)).await, None);
        assert!(wait_until_http(closed, Duration::from_millis(300)).await.is_none());
    }
}
