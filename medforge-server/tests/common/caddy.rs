//! Real Caddy (2.11 or newer; scripts/test.sh fetches 2.11.7) in front of
//! a server in Caddy mode, running `infra/caddy/session-route.caddy`, the
//! route the production Caddyfile imports.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{DOMAIN, Db, Hosted, Options, Server};

pub struct Caddy {
    pub child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failed test shows what Caddy said.
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("caddy.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!("caddy's log, last lines first:\n{}", tail.join("\n"));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Caddy on a loopback port, plain http, in front of `server` (host:port).
pub async fn caddy(server: &str) -> Caddy {
    let bin = std::env::var("MEDFORGE_TEST_CADDY")
        .unwrap_or_else(|_| panic!("MEDFORGE_TEST_CADDY is not set: run scripts/test.sh, which fetches Caddy 2.11.7"));
    let version = Command::new(&bin).arg("version").output().expect("caddy version");
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    let minor: Option<u32> = version.strip_prefix("v2.").and_then(|v| v.split('.').next()).and_then(|m| m.parse().ok());
    assert!(minor.is_some_and(|m| m >= 11), "Caddy 2.11 or newer is needed, not {version}");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let route = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/caddy/session-route.caddy");
    // As in production: the UI's host proxied as it is, the session hosts
    // through the route (so a browser's handshake stays on Caddy's port).
    let caddyfile = format!(
        "{{\n\tauto_https off\n\tadmin off\n}}\n\
         http://{DOMAIN}:{port} {{\n\tbind 127.0.0.1\n\treverse_proxy {server}\n}}\n\
         http://*.external.{DOMAIN}:{port}, http://*.internal.{DOMAIN}:{port} {{\n\
         \tbind 127.0.0.1\n\timport {route} {server}\n}}\n"
    );
    let path = dir.path().join("Caddyfile");
    std::fs::write(&path, caddyfile).expect("Caddyfile");
    let child = Command::new(&bin)
        .args(["run", "--adapter", "caddyfile", "--config", path.to_str().expect("path")])
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("caddy.log")).expect("log"))
        .spawn()
        .expect("start caddy");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "caddy did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Caddy { child, port, dir }
}

/// A server in Caddy mode with Caddy in front of it.
pub async fn server_behind_caddy(image: Option<String>) -> (Server, Caddy) {
    let s =
        Server::start(Db::Sqlite, Options { routing: "caddy", gate_upstream: "address", image, ..Options::default() })
            .await;
    let c = caddy(s.base.trim_start_matches("http://")).await;
    (s, c)
}

/// `slug`'s host through Caddy.
pub fn through(s: &Server, c: &Caddy, slug: &str) -> Hosted {
    Hosted {
        http: s.http.clone(),
        base: format!("http://127.0.0.1:{}", c.port),
        host: format!("s-{slug}.external.{DOMAIN}:{}", c.port),
        ui: s.base.clone(),
    }
}
