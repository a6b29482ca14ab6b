//! The real `medforge` binary on a loopback port, for API tests.

#![allow(dead_code)] // each test file uses its own subset

pub mod caddy;
pub mod routing;
pub mod tls;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use medforge_core::testing::Teardown;
use medforge_telemetry_nvml::stand_in::{self, StandInGpu};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

pub const DOMAIN: &str = "medforge.localhost";

/// Which database a server runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    MariaDb,
}

pub struct Server {
    child: Child,
    pub base: String,
    /// `http://127.0.0.1:<port>/metrics`: the metrics' own listener.
    pub metrics: String,
    pub dir: tempfile::TempDir,
    pub config_path: std::path::PathBuf,
    pub run: String,
    teardown: Option<Teardown>,
    pub http: reqwest::Client,
    /// The engine's CLI, for cleaning up: `docker` or `podman`.
    pub engine: &'static str,
    /// With `Options::tls`: the CA, the files and the redirect listener.
    pub tls: Option<Tls>,
    /// With `Options::stand_in_nvml`: the stand-in libnvidia-ml.
    pub nvml: Option<std::path::PathBuf>,
    /// The database the server runs on (for a test's own store beside it).
    pub db_url: String,
}

/// What a server with `[tls]` was given.
pub struct Tls {
    pub ca: tls::TestCa,
    /// The certificate it started with.
    pub leaf: tls::Leaf,
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    /// `127.0.0.1:<port>` of `tls.redirect_http_listen`.
    pub redirect: String,
}

/// `[runtime]` keys that keep a test's own `serve` (or `firewall apply`)
/// away from other deployments on the same engine: a label of its run,
/// which boot reconciliation requires of any container it removes, and
/// networks named for the run.
pub fn own_runtime_keys(run: &str) -> String {
    format!(
        "external_network = \"mftest-{run}-ext\"\ninternal_network = \"mftest-{run}-int\"\n\
         labels = {{ \"medforge.test_run\" = \"{run}\" }}\n"
    )
}

/// Removes the networks [`own_runtime_keys`] names, once nothing uses them.
pub fn remove_own_networks(engine: &str, run: &str) {
    for net in ["ext", "int"] {
        cli(engine, &["network", "rm", &format!("mftest-{run}-{net}")]);
    }
}

/// Starts `medforge --config CONFIG serve` with `bin` first on PATH and
/// waits for its "listening on" line; the child and its base URL.
/// Starts `medforge serve` and waits for the lines that say where it
/// listens: (the process, `host:port` of the main listener, the metrics'
/// `http://host:port/metrics`).
fn spawn_serve(config_path: &std::path::Path, bin: &std::path::Path) -> (Child, String, String) {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut child = Command::new(binary())
        .args(["--config", config_path.to_str().expect("path"), "serve"])
        .env("MEDFORGE_LOG", "warn")
        .env("PATH", path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start medforge");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = 0;
        for line in lines.by_ref().map_while(Result::ok) {
            if seen == 2 {
                continue;
            }
            if let Some(addr) = line.strip_prefix("medforge: listening on ") {
                let _ = tx.send(Ok(("listen", addr.to_owned())));
                seen += 1;
            } else if let Some(url) = line.strip_prefix("medforge: metrics on ") {
                let _ = tx.send(Ok(("metrics", url.to_owned())));
                seen += 1;
            } else {
                let _ = tx.send(Err(line));
            }
        }
    });
    let (mut base, mut metrics) = (None, None);
    while base.is_none() || metrics.is_none() {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(("listen", addr))) => base = Some(addr),
            Ok(Ok((_, url))) => metrics = Some(url),
            Ok(Err(line)) => eprintln!("medforge: {line}"),
            Err(e) => panic!("medforge did not start: {e}"),
        }
    }
    (child, base.unwrap_or_default(), metrics.unwrap_or_default())
}

/// The base URL a test asks the server at: its listening address, or over
/// HTTPS the UI's host by name (the certificate names no address).
fn by_name(listening: String) -> String {
    match listening.strip_prefix("https://") {
        Some(addr) => format!("https://{DOMAIN}:{}", addr.rsplit(':').next().expect("a port")),
        None => listening,
    }
}

/// reqwest's TLS here is rustls without crypto of its own (the server's
/// ring, not a second library): installed once for the process, before
/// any client is built.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain client that follows no redirect.
pub fn client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Waits for `child` to exit by itself; its exit status, or `None` after
/// `within`.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A port nothing listens on now (for a listener a config names).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A variable scripts/test.sh sets (an image it built, a socket it
/// started): its value, or a panic that says to run the script.
pub fn test_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test.sh"))
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_medforge")
}

/// Knobs a test may turn before the server starts.
pub struct Options {
    pub gpus: Vec<u32>,
    pub auth_per_minute: u32,
    /// `gpus.ids = "auto"` and `telemetry.source = "nvml"` on the stand-in
    /// libnvidia-ml, built for this server, with these GPUs (which
    /// [`Server::set_gpus`] changes), read every second.
    pub stand_in_nvml: Option<Vec<StandInGpu>>,
    /// TOML appended to the config (whole sections, e.g. `[storage]`).
    pub extra_config: String,
    /// The listen address (port 0: any free port).
    pub listen: &'static str,
    /// `builtin` (the server proxies session hosts) or `caddy` (it only
    /// answers the gate, as Caddy's forward_auth calls it).
    pub routing: &'static str,
    /// The pack image (default: the test pack).
    pub image: Option<String>,
    /// `name` (X-Upstream `mf-session-<slug>:8080`) or `address` (ip:8080,
    /// for a Caddy on the host).
    pub gate_upstream: &'static str,
    /// `docker` or `podman` (on the socket scripts/test.sh starts).
    pub runtime: &'static str,
    /// `limits.trusted_proxies`, a TOML array.
    pub trusted_proxies: &'static str,
    /// `sessions_domain`: session hosts under another domain than the UI's.
    pub sessions_domain: Option<&'static str>,
    /// `auth.signup`: `open` by default, since most tests need many users
    /// (`Server::signup`); `None`: the product's default (`invite`).
    pub signup: Option<&'static str>,
    /// The run's name, for its label and networks (default: a new one). Two
    /// servers given the same one look alike to the engine, as two default
    /// deployments do.
    pub run: Option<String>,
    /// `firewall.kind`, unless `extra_config` has a `[firewall]` section:
    /// `none` by default, as most tests are not about isolation and the
    /// product's `auto` would write this host's ruleset (tests/firewall.rs
    /// is about it, with tables of its own).
    pub firewall: &'static str,
    /// `[tls]` with a test CA's wildcard certificate (checked for renewal
    /// every second) and a redirect listener; the server's client then
    /// asks every host by name over HTTPS.
    pub tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            gpus: vec![0, 1],
            auth_per_minute: 1000,
            trusted_proxies: "[]",
            stand_in_nvml: None,
            extra_config: String::new(),
            listen: "127.0.0.1:0",
            routing: "builtin",
            image: None,
            gate_upstream: "name",
            runtime: "docker",
            sessions_domain: None,
            signup: Some("open"),
            run: None,
            firewall: "none",
            tls: false,
        }
    }
}

impl Server {
    pub async fn start(db: Db, options: Options) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = options.run.clone().unwrap_or_else(|| medforge_core::model::Slug::generate().to_string());
        let (db_url, teardown) = match db {
            Db::Sqlite => (format!("sqlite://{}/medforge.db", dir.path().display()), None),
            Db::MariaDb => {
                let (url, t) = medforge_core::testing::mysql_test_database().await;
                (url, Some(t))
            }
        };
        let image = options.image.clone().unwrap_or_else(|| test_env("MEDFORGE_TEST_PACK_IMAGE"));
        let tls = options.tls.then(|| {
            let ca = tls::TestCa::new();
            let leaf = ca.deployment_leaf();
            let (cert_file, key_file) = (dir.path().join("fullchain.pem"), dir.path().join("privkey.pem"));
            leaf.install(&cert_file, &key_file);
            let redirect = format!("127.0.0.1:{}", free_port());
            Tls { ca, leaf, cert_file, key_file, redirect }
        });
        let tls_section = tls
            .as_ref()
            .map(|t| {
                format!(
                    "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nreload_check = \"1s\"\nredirect_http_listen = \"{}\"\n\n",
                    t.cert_file.display(),
                    t.key_file.display(),
                    t.redirect
                )
            })
            .unwrap_or_default();
        let config = format!(
            r#"base_domain = "{DOMAIN}"
{sessions_domain}listen = "{listen}"
metrics_listen = "127.0.0.1:0"
routing = "{routing}"
gate_upstream = "{gate_upstream}"
data_dir = "{data}"
database_url = "{db_url}"

[runtime]
kind = "{runtime}"
socket = "{socket}"
gpu_mode = "none"
{own}stop_timeout = "2s"
poll_interval = "5s"
ready_timeout = "30s"

[pack]
image = "{image}"

[gpus]
ids = {gpus}

[limits]
auth_per_minute = {per_minute}
trusted_proxies = {trusted_proxies}

{signup}{firewall}{tls_section}{extra}
"#,
            data = dir.path().display(),
            own = own_runtime_keys(&run),
            gpus = if options.stand_in_nvml.is_some() { "\"auto\"".to_owned() } else { format!("{:?}", options.gpus) },
            per_minute = options.auth_per_minute,
            trusted_proxies = options.trusted_proxies,
            extra = options.extra_config,
            firewall = if options.extra_config.contains("[firewall]") {
                String::new()
            } else {
                format!("[firewall]\nkind = \"{}\"\n\n", options.firewall)
            },
            signup = options.signup.map(|s| format!("[auth]\nsignup = \"{s}\"\n\n")).unwrap_or_default(),
            listen = options.listen,
            sessions_domain =
                options.sessions_domain.map(|d| format!("sessions_domain = \"{d}\"\n")).unwrap_or_default(),
            routing = options.routing,
            gate_upstream = options.gate_upstream,
            runtime = options.runtime,
            socket = if options.runtime == "podman" { test_env("MEDFORGE_TEST_PODMAN_SOCKET") } else { String::new() },
        );
        let nvml = options.stand_in_nvml.as_ref().map(|gpus| {
            let lib_dir = dir.path().join("nvidia");
            std::fs::create_dir_all(&lib_dir).expect("stand-in dir");
            let library = stand_in::build(&lib_dir);
            stand_in::write_state(&library, gpus);
            library
        });
        let mut config = config;
        if let Some(library) = &nvml {
            config.push_str(&format!(
                "\n[telemetry]\nsource = \"nvml\"\nnvml_library = \"{}\"\ninterval = \"1s\"\n",
                library.display()
            ));
        }
        let config_path = dir.path().join("medforge.toml");
        std::fs::write(&config_path, config).expect("config");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        let (child, base, metrics) = spawn_serve(&config_path, &bin);
        let http = match &tls {
            Some(t) => t.ca.client(),
            None => client(),
        };
        let base = by_name(base);
        Self { child, base, metrics, dir, config_path, run, teardown, http, engine: options.runtime, tls, nvml, db_url }
    }

    /// What the stand-in GPUs read from now on (`Options::stand_in_nvml`).
    pub fn set_gpus(&self, gpus: &[StandInGpu]) {
        stand_in::write_state(self.nvml.as_ref().expect("a server with Options::stand_in_nvml"), gpus);
    }

    /// `/metrics`, as text.
    pub async fn metrics_text(&self) -> String {
        client().get(&self.metrics).send().await.expect("metrics").text().await.expect("metrics text")
    }

    /// `http` or `https`, as the server's links say.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The login cookie's name (`__Host-` prefixed over HTTPS).
    pub fn login_cookie_name(&self) -> &'static str {
        if self.tls.is_some() { "__Host-medforge_session" } else { "medforge_session" }
    }

    /// A session host's pass cookie's name (`__Host-` prefixed over HTTPS).
    pub fn pass_cookie_name(&self) -> &'static str {
        if self.tls.is_some() { "__Host-medforge_pass" } else { "medforge_pass" }
    }

    /// Kills the server (as a crash would) and starts it again on the same
    /// config and database, waiting until it listens (its port may change).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, base, metrics) = spawn_serve(&self.config_path, &self.dir.path().join("bin"));
        self.child = child;
        self.base = by_name(base);
        self.metrics = metrics;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs up and returns the cookie header value and the user id.
    pub async fn signup(&self, email: &str) -> (String, String) {
        let r = self
            .http
            .post(self.url("/api/v2/auth/signup"))
            .json(&serde_json::json!({ "email": email, "password": "a long passphrase" }))
            .send()
            .await
            .expect("signup");
        assert_eq!(r.status(), 201, "signup {email}");
        let cookie = session_cookie(r.headers()).expect("cookie");
        let body: Value = r.json().await.expect("json");
        (cookie, body["data"]["user_id"].as_str().expect("user_id").to_owned())
    }

    /// `medforge user add --admin` through the CLI, then a login.
    pub async fn admin(&self, email: &str) -> String {
        let mut child = Command::new(binary())
            .args(["--config", self.config_path.to_str().expect("path"), "user", "add", "--email", email, "--admin"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("medforge user add");
        child.stdin.take().expect("stdin").write_all(b"admin passphrase\n").expect("password");
        let out = child.wait_with_output().expect("user add");
        assert!(out.status.success(), "user add: {}", String::from_utf8_lossy(&out.stderr));
        let r = self
            .http
            .post(self.url("/api/v2/auth/login"))
            .json(&serde_json::json!({ "email": email, "password": "admin passphrase" }))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 200);
        session_cookie(r.headers()).expect("cookie")
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> (u16, HeaderMap, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        read(req.send().await.expect("request")).await
    }

    pub async fn post(&self, path: &str, cookie: Option<&str>, body: Option<Value>) -> (u16, HeaderMap, Value) {
        // The API takes state-changing requests as JSON only, bodiless ones too.
        let mut req = self.http.post(self.url(path)).header("content-type", "application/json");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("request")).await
    }

    pub async fn patch(&self, path: &str, cookie: Option<&str>, body: Value) -> (u16, HeaderMap, Value) {
        let mut req = self.http.patch(self.url(path)).json(&body);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        read(req.send().await.expect("request")).await
    }

    /// Starts an external session as `cookie` and waits until it runs: its
    /// API path and the session.
    pub async fn start_session(&self, cookie: &str) -> (String, Value) {
        let (st, _, b) = self.post("/api/v2/external/sessions", Some(cookie), None).await;
        assert_eq!(st, 201, "{b}");
        let id = b["data"]["session"]["id"].as_str().expect("id").to_owned();
        let path = format!("/api/v2/external/sessions/{id}");
        let running = self.wait_status(&path, cookie, "running").await;
        (path, running)
    }

    /// Gives the user `user_id` the internal entitlement and room for two
    /// sessions (as `admin`), then
    /// starts an internal session as `cookie` and waits until it runs.
    pub async fn start_internal_session(&self, admin: &str, user_id: &str, cookie: &str) -> Value {
        let (st, _, b) = self
            .patch(
                &format!("/api/v2/admin/users/{user_id}"),
                Some(admin),
                serde_json::json!({"can_use_internal": true, "max_concurrent_sessions": 2}),
            )
            .await;
        assert_eq!(st, 200, "{b}");
        let (st, _, b) = self.post("/api/v2/internal/sessions", Some(cookie), None).await;
        assert_eq!(st, 201, "{b}");
        let id = b["data"]["session"]["id"].as_str().expect("id").to_owned();
        self.wait_status(&format!("/api/v2/internal/sessions/{id}"), cookie, "running").await
    }

    /// GETs to `host` through the server itself (its built-in proxy);
    /// over HTTPS by its name (the client resolves every name to loopback).
    pub fn hosted(&self, host: String) -> Hosted {
        let base = if self.tls.is_some() { format!("https://{host}") } else { self.base.clone() };
        Hosted { http: self.http.clone(), base, host, ui: self.base.clone() }
    }

    /// The session host of `session` on the built-in proxy, and its
    /// owner's (or anyone's) pass: `login` through the handshake.
    pub async fn entered(&self, session: &Value, login: &str) -> (Hosted, String) {
        let h = self.hosted(format!("s-{}.external.{DOMAIN}:{}", session["slug"].as_str().expect("slug"), self.port()));
        let pass = h.enter(login).await;
        (h, pass)
    }

    /// The port the server listens on.
    pub fn port(&self) -> &str {
        self.base.rsplit(':').next().expect("port")
    }

    /// Polls a session until its status is `want` (or panics after 30 s).
    pub async fn wait_status(&self, path: &str, cookie: &str, want: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (status, _, body) = self.get(path, Some(cookie)).await;
            assert_eq!(status, 200, "{body}");
            if body["data"]["status"] == want {
                return body["data"].clone();
            }
            assert!(std::time::Instant::now() < deadline, "session never became {want}: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the server to exit by itself; its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        wait_exit(&mut self.child, within)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.remove_containers();
        remove_own_networks(self.engine, &self.run);
        if let Some(t) = self.teardown.take() {
            t.run().await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        // A failed test leaves no session containers: they may hold mounts
        // (a ZFS dataset) that later tests need to take down.
        if std::thread::panicking() {
            self.remove_containers();
        }
    }
}

impl Server {
    /// Removes this run's session containers.
    fn remove_containers(&self) {
        let ids = cli(self.engine, &["ps", "-aq", "--filter", &format!("label=medforge.test_run={}", self.run)]);
        for id in ids.split_whitespace() {
            cli(self.engine, &["rm", "-f", id]);
        }
    }
}

/// A session's container name.
pub fn container_of(session: &Value) -> String {
    format!("mf-session-{}", session["slug"].as_str().expect("slug"))
}

/// GETs through a front (the built-in proxy at the server's address, or
/// Caddy at its own) with a session host's `Host`.
#[derive(Clone)]
pub struct Hosted {
    pub http: reqwest::Client,
    /// `http://127.0.0.1:<port>` of the front.
    pub base: String,
    pub host: String,
    /// `http://127.0.0.1:<port>` of the MedForge server (where the UI
    /// answers, whatever the front).
    pub ui: String,
}

impl Hosted {
    /// A request to `path` on this host, with `cookie` when given.
    pub fn request(&self, method: reqwest::Method, path: &str, cookie: Option<&str>) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base)).header(reqwest::header::HOST, &self.host);
        match cookie {
            Some(c) => req.header("cookie", c),
            None => req,
        }
    }

    /// The handshake of docs/security.md, as a browser (or `curl -L` with a
    /// cookie jar) goes through it: asked without a pass, the session host
    /// sends us to the UI's `/sessions/enter`; there `login` (a Cookie
    /// header value) gets a one-time code and goes back; the session host
    /// trades the code for its pass. The pass as a Cookie header value.
    pub async fn enter(&self, login: &str) -> String {
        self.try_enter(login).await.unwrap_or_else(|(st, body)| panic!("the UI refused the handshake: {st} {body}"))
    }

    /// [`Hosted::enter`], or what the UI said when it refused (status, body).
    pub async fn try_enter(&self, login: &str) -> Result<String, (u16, String)> {
        let (st, _, to_ui, body) = self.get("/", None, &[]).await;
        assert_eq!(st, 302, "{body}");
        let (st, to_host, body) = self.ui_get(&to_ui, login).await;
        if st != 303 {
            return Err((st, body));
        }
        let back = reqwest::Url::parse(&to_host).expect("a URL back");
        let authority = format!("{}:{}", back.host_str().expect("host"), back.port().expect("port"));
        assert_eq!(authority, self.host, "back to the host asked for");
        assert_eq!(back.path(), "/_medforge/enter");
        let path = format!("{}?{}", back.path(), back.query().unwrap_or_default());
        let r = self.request(reqwest::Method::GET, &path, None).send().await.expect("redeem");
        assert_eq!(r.status(), 303, "the code was not taken");
        let pass = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("medforge_pass=") || v.starts_with("__Host-medforge_pass="))
            .and_then(|v| v.split(';').next())
            .expect("a pass")
            .to_owned();
        Ok(pass)
    }

    /// GET `url` (a UI URL a redirect named) from the MedForge server, with
    /// that URL's host as `Host` and `login` as the cookie: (status,
    /// location, body).
    pub async fn ui_get(&self, url: &str, login: &str) -> (u16, String, String) {
        let url = reqwest::Url::parse(url).expect("a UI URL");
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().expect("host")),
            None => url.host_str().expect("host").to_owned(),
        };
        let target = format!("{}{}?{}", self.ui, url.path(), url.query().unwrap_or_default());
        let r = self
            .http
            .get(target)
            .header(reqwest::header::HOST, authority)
            .header("cookie", login)
            .send()
            .await
            .expect("UI request");
        let status = r.status().as_u16();
        let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        (status, location, r.text().await.unwrap_or_default())
    }

    /// (status, content type, location, body).
    pub async fn get(
        &self,
        path: &str,
        cookie: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, String, String, String) {
        let mut req = self.request(reqwest::Method::GET, path, cookie);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r =
            tokio::time::timeout(Duration::from_secs(15), req.send()).await.expect("answered in time").expect("send");
        let header = |name| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let (status, ct, loc) =
            (r.status().as_u16(), header(reqwest::header::CONTENT_TYPE), header(reqwest::header::LOCATION));
        (status, ct, loc, r.text().await.expect("body"))
    }
}

/// Runs `sh -c script` in a container as its own user: exit success,
/// stdout, stderr.
pub fn docker_exec(container: &str, script: &str) -> (bool, String, String) {
    let out = Command::new("docker").args(["exec", container, "sh", "-c", script]).output().expect("docker exec");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn docker(args: &[&str]) -> String {
    cli("docker", args)
}

/// The engine's CLI (`docker` or `podman`): stdout.
pub use medforge_core::testing::engine::cli;

pub async fn read(r: reqwest::Response) -> (u16, HeaderMap, Value) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, headers, body)
}

/// `medforge_session=...` (or `__Host-medforge_session=...`, over HTTPS)
/// from a Set-Cookie header, as a Cookie header value.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("medforge_session=") || v.starts_with("__Host-medforge_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// Checks a problem document against docs/api.md and returns it.
pub fn assert_problem(status: u16, headers: &HeaderMap, body: &Value, want: u16, path: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(headers.get("content-type"), Some(&HeaderValue::from_static("application/problem+json")), "{body}");
    assert!(body["type"].as_str().is_some_and(|t| t.starts_with("https://medforge.dev/problems/")), "{body}");
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
    assert_eq!(body["status"], want, "{body}");
    assert_eq!(body["instance"], path, "{body}");
    assert!(body["code"].is_string(), "{body}");
    let rid = headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("x-request-id");
    assert_eq!(body["request_id"], rid, "{body}");
}

/// Checks the success envelope and returns `data`.
pub fn assert_envelope(headers: &HeaderMap, body: &Value) -> Value {
    let meta = &body["meta"];
    let rid = headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("x-request-id");
    assert_eq!(meta["request_id"], rid, "{body}");
    assert!(uuid::Uuid::parse_str(rid).is_ok());
    assert_eq!(meta["api_version"], "v2.0");
    assert!(meta["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{body}");
    body["data"].clone()
}

/// Sends an upgrade request to `addr` (a proxy) on a raw connection and
/// returns the stream after a 101 (the ws pack then echoes every byte).
pub async fn open_tunnel(addr: &str, host: &str, cookie: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /stable/socket?reconnectionToken=x HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n =
            tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await.expect("head").expect("read");
        assert_eq!(n, 1, "closed before the answer: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("upgrade: websocket"), "{head}");
    stream
}

/// Sends `text` and reads as many bytes back; with the round trip.
pub async fn echo(stream: &mut tokio::net::TcpStream, text: &str) -> (String, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    stream.write_all(text.as_bytes()).await.expect("write");
    let mut got = vec![0u8; text.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut got))
        .await
        .expect("echo in time")
        .expect("read");
    (String::from_utf8(got).expect("utf8"), started.elapsed())
}

/// A stand-in Docker Engine on a Unix socket of its own: enough of the API
/// for `medforge doctor` (version, info, image inspect), with or without
/// the NVIDIA Container Toolkit's `nvidia` runtime. The doctor tests need
/// both answers whatever this host has: GPU hosts run the suite too.
pub struct StandInEngine {
    socket: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandInEngine {
    pub fn start(nvidia: bool) -> Self {
        use axum::Json;
        use axum::http::{StatusCode, Uri};
        use axum::response::IntoResponse;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker.sock");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let socket_path = path.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::bind(&socket_path).expect("bind the stand-in socket");
                ready.send(()).expect("ready");
                let answer = move |uri: Uri| async move {
                    // Paths come with an API version prefix once negotiated.
                    let path = uri.path();
                    let path = path.strip_prefix("/v1.41").unwrap_or(path);
                    let runtimes = if nvidia {
                        serde_json::json!({ "runc": { "path": "runc" }, "nvidia": { "path": "nvidia-container-runtime" } })
                    } else {
                        serde_json::json!({ "runc": { "path": "runc" } })
                    };
                    match path {
                        "/_ping" => "OK".into_response(),
                        "/version" => Json(serde_json::json!({
                            "Version": "20.10.24-standin", "ApiVersion": "1.41", "MinAPIVersion": "1.12",
                            "Os": "linux", "Arch": "amd64"
                        }))
                        .into_response(),
                        "/info" => Json(serde_json::json!({ "Runtimes": runtimes, "DefaultRuntime": "runc" }))
                            .into_response(),
                        p if p.starts_with("/images/") && p.ends_with("/json") => {
                            Json(serde_json::json!({ "Id": "sha256:standin" })).into_response()
                        }
                        _ => (StatusCode::NOT_FOUND, Json(serde_json::json!({ "message": "not in the stand-in" })))
                            .into_response(),
                    }
                };
                let app = axum::Router::new().fallback(answer);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve the stand-in");
            });
        });
        is_ready.recv_timeout(Duration::from_secs(10)).expect("the stand-in engine started");
        Self { socket: format!("unix://{}", path.display()), _dir: dir, stop: Some(stop), thread: Some(thread) }
    }

    /// For `runtime.socket`.
    pub fn socket(&self) -> &str {
        &self.socket
    }
}

impl Drop for StandInEngine {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// This process's PATH without the directories that hold `program`: how a
/// test shows a host without it (`nvidia-container-runtime-hook`, say).
pub fn path_without(program: &str) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').filter(|dir| !std::path::Path::new(dir).join(program).exists()).collect::<Vec<_>>().join(":")
}

/// `check`'s value once it has one (it is asked every 100 ms), or a panic
/// naming `what` and the last answer after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
