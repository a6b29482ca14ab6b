//! The built-in router over HTTPS (`[tls]`), with a test CA's wildcard
//! certificate, asked by name as a browser asks: the routing matrix, the
//! redirect from plain HTTP, a renewal served without a restart, and a
//! client that opens a connection and never says hello.

mod common;

use std::time::{Duration, Instant};

use common::{DOMAIN, Db, Options, Server, routing, tls};

fn with_tls() -> Options {
    Options { tls: true, ..Options::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routing_matrix_over_https() {
    let s = Server::start(Db::Sqlite, with_tls()).await;
    assert!(s.base.starts_with("https://"), "{}", s.base);
    routing::routing_matrix(&s).await;

    // The UI's answers tell browsers to stay on HTTPS.
    let r = s.http.get(s.url("/login")).send().await.expect("login page");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("strict-transport-security").and_then(|v| v.to_str().ok()), Some("max-age=31536000"));
    // The sign-in cookie is Secure and host-only.
    let (login, _) = s.signup("secure@example.org").await;
    assert!(login.starts_with("__Host-medforge_session="), "{login}");
    s.stop().await;
}

/// The redirect listener sends our hosts to HTTPS on the server's port,
/// with the path; any other host gets a 400, and plain HTTP on the TLS
/// port gets no page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_sent_to_https_and_served_nothing() {
    let s = Server::start(Db::Sqlite, with_tls()).await;
    let redirect = &s.tls.as_ref().expect("tls").redirect;
    let plain = common::client();
    let ask = |host: &'static str, path: &'static str| {
        plain.get(format!("http://{redirect}{path}")).header("host", host).send()
    };
    let r = ask("medforge.localhost", "/login?next=%2F").await.expect("redirect");
    assert_eq!(r.status(), 308);
    let to = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(to, format!("https://{DOMAIN}:{}/login?next=%2F", s.port()));
    assert!(r.headers().get("set-cookie").is_none());
    // Followed, it is the sign-in page over HTTPS.
    let r = s.http.get(&to).send().await.expect("https");
    assert_eq!(r.status(), 200);
    let r = ask("s-abcdefgh.external.medforge.localhost", "/x").await.expect("session host");
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some(format!("https://s-abcdefgh.external.{DOMAIN}:{}/x", s.port()).as_str())
    );
    assert_eq!(ask("evil.example.com", "/").await.expect("foreign").status(), 400);

    // Plain HTTP to the HTTPS port: no answer a client could take for ours.
    let r = plain.get(format!("http://127.0.0.1:{}/login", s.port())).header("host", DOMAIN).send().await;
    assert!(r.is_err(), "plain HTTP on the TLS port was answered: {:?}", r.map(|r| r.status()));
    s.stop().await;
}

/// certbot writes new files: the next connection gets the new certificate
/// without a restart; files that do not load leave it in service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let s = Server::start(Db::Sqlite, with_tls()).await;
    let t = s.tls.as_ref().expect("tls");
    let pid = s.pid();
    // A new client for each look: a new connection, a new handshake.
    let served = || async {
        let r = t.ca.client().get(s.url("/healthz")).send().await.expect("healthz over https");
        assert_eq!(r.status(), 200);
        tls::peer_certificate(&r)
    };
    assert_eq!(served().await, t.leaf.der, "the certificate it started with");

    let renewed = t.ca.deployment_leaf();
    renewed.install(&t.cert_file, &t.key_file);
    let deadline = Instant::now() + Duration::from_secs(15);
    while served().await != renewed.der {
        assert!(Instant::now() < deadline, "the renewed certificate was never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(s.pid(), pid, "the same process");

    // A broken renewal (a key that is not the certificate's): a warning,
    // counted, and the renewed certificate stays in service.
    let other = t.ca.deployment_leaf();
    std::fs::write(&t.key_file, &other.key_pem).expect("a mismatched key");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = s.http.get(&s.metrics).send().await.expect("metrics").text().await.expect("text");
        if metrics.lines().any(|l| l.starts_with("medforge_tls_reload_failures_total") && !l.ends_with(" 0")) {
            break;
        }
        assert!(Instant::now() < deadline, "the failed reload was not counted:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(served().await, renewed.der, "still the last good certificate");
    s.stop().await;
}

/// A client that connects and never starts the handshake holds its
/// connection no longer than the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tls_client_is_closed_by_the_header_timeout() {
    use tokio::io::AsyncReadExt;
    let extra = "[http]\nheader_read_timeout = \"2s\"\nkeep_alive_idle = \"1s\"\n".to_owned();
    let s = Server::start(Db::Sqlite, Options { extra_config: extra, ..with_tls() }).await;
    let mut silent = tokio::net::TcpStream::connect(format!("127.0.0.1:{}", s.port())).await.expect("connect");
    let opened = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("closed within the timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a word");
    assert!(opened.elapsed() >= Duration::from_millis(1500), "closed before the timeout: {:?}", opened.elapsed());
    // Meanwhile and after, others are served.
    assert_eq!(s.get("/healthz", None).await.0, 200);
    s.stop().await;
}
