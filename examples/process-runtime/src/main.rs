//! `process-sessions`: `medforge-core` embedded with [`ProcessRuntime`], the
//! SQLite store and [`ProcessDirStorage`], run through one scripted day:
//!
//! 1. seed two GPUs and the default "image" (Python's `http.server`);
//! 2. start alice's session, fetch `http://<its address>:8080/` and find in
//!    the listing a file written into her workspace beforehand;
//! 3. start bob's session: it gets the other GPU (and `CUDA_VISIBLE_DEVICES`
//!    says so); a third user is refused, as no GPU is left;
//! 4. stop both (SIGTERM, snapshot) and check the store says `stopped`, the
//!    snapshots hold the workspace, no process is left and no GPU is held.
//!
//! Lifecycle events go to stdout as JSON lines, progress to stderr, and a
//! summary closes stdout. Any failure ends it with one line on stderr and
//! exit status 1. Needs neither root nor Docker; as root, sessions run as
//! 1000:1000 with no capabilities.
//!
//! ```text
//! cargo run -p medforge-example-process-runtime -- [--data-dir DIR] [--subnet 127.88.0.0/24]
//! ```
//! Without `--data-dir`, everything lives in a temporary directory that is
//! removed at the end.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use medforge_core::events::{EventContext, JsonLines, StopReason};
use medforge_core::firewall::Ipv4Cidr;
use medforge_core::lifecycle::{Lifecycle, LifecycleConfig, LifecycleError, StopOutcome};
use medforge_core::model::{self, Exposure, GpuId, Session, SessionStatus, User};
use medforge_core::runtime::{ContainerRuntime, GpuMode, SESSION_PORT, SessionContainerConfig, container_name};
use medforge_core::storage::{SESSION_GID, SESSION_UID, SnapshotKind, Storage};
use medforge_core::store::{AllocationError, AllocationRequest, NewUser, Seed, SqliteStore, Store};
use medforge_example_process_runtime::{
    DEFAULT_SUBNET, HTTP_SERVER_IMAGE, ProcessDirStorage, ProcessRuntime, ProcessRuntimeConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The file written into alice's workspace, which her session must list.
const MARKER: &str = "hello-from-process-sessions.txt";

const USAGE: &str = "usage: process-sessions [--data-dir DIR] [--subnet CIDR inside 127.0.0.0/8]";

#[derive(Debug)]
struct Args {
    data_dir: Option<PathBuf>,
    subnet: Ipv4Cidr,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { data_dir: None, subnet: DEFAULT_SUBNET };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value; {USAGE}"));
        match flag.as_str() {
            "--data-dir" => args.data_dir = Some(value()?.into()),
            "--subnet" => args.subnet = value()?.parse().map_err(|e| format!("--subnet: {e}"))?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other}; {USAGE}")),
        }
    }
    Ok(args)
}

/// `?` with a word on what was being done.
trait Context<T> {
    fn context(self, what: impl Display) -> Result<T, String>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: impl Display) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let result = parse_args().and_then(|args| {
        let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
        let result = tokio.block_on(async {
            tokio::select! {
                result = run(args) => result,
                _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
            }
        });
        // Dropped before exiting, not skipped by `exit`: its tasks own the
        // session processes, which die with them.
        drop(tokio);
        result
    });
    match result {
        Ok(summary) => println!("{summary}"),
        Err(e) => {
            eprintln!("process-sessions: error: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(args: Args) -> Result<String, String> {
    let temp = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("process-sessions-").tempdir().context("a temporary directory")?),
    };
    let data_dir = match (&args.data_dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(t)) => t.path().to_owned(),
        (None, None) => return Err("no data directory".into()),
    };
    let summary = scenario(&data_dir, args.subnet).await?;
    if let Some(temp) = temp {
        // Snapshots are read-only copies; their directories must be
        // writable again before they can be deleted (without root).
        make_writable(temp.path()).context("cleaning up")?;
        temp.close().context("cleaning up")?;
    }
    Ok(summary)
}

/// A running session as this program checks it.
#[derive(Debug)]
struct Started {
    session: Session,
    addr: SocketAddr,
    uid: String,
}

async fn scenario(data_dir: &Path, subnet: Ipv4Cidr) -> Result<String, String> {
    let runtime = Arc::new(
        ProcessRuntime::new(ProcessRuntimeConfig {
            subnet,
            log_dir: Some(data_dir.join("logs")),
            ..Default::default()
        })
        .context("setting up the process runtime")?,
    );
    eprintln!("process-sessions: data in {}, privileges {:?}", data_dir.display(), runtime.config().privileges);
    let db = data_dir.join("medforge.db");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&db.display().to_string()).await.context("opening the database")?);
    let seed = Seed {
        default_pack_image: HTTP_SERVER_IMAGE.into(),
        default_pack_digest: None,
        gpu_ids: vec![GpuId(0), GpuId(1)],
        gpu_details: Vec::new(),
    };
    store.seed(&seed).await.context("seeding")?;
    let storage = Arc::new(ProcessDirStorage::new(data_dir.join("workspaces")).context("the workspaces directory")?);
    let config = LifecycleConfig {
        containers: SessionContainerConfig {
            // The GPU goes into the spec, which this runtime turns into
            // CUDA_VISIBLE_DEVICES (no NVIDIA runtime is involved).
            gpu_mode: GpuMode::Nvidia,
            ..Default::default()
        },
        stop_grace: Duration::from_secs(5),
        ready_timeout: Duration::from_secs(20),
        ..Default::default()
    };
    let sessions = Arc::new(Lifecycle::new(
        store.clone(),
        runtime.clone(),
        storage.clone(),
        Arc::new(JsonLines::stdout()),
        config,
    ));
    // A reused --data-dir may hold sessions of a run that was cut off.
    sessions.reconcile().await.context("reconciling")?;
    let watcher = tokio::spawn(sessions.clone().watch(std::future::pending()));
    let ctx = EventContext::correlation("process-sessions");

    let alice = user(&store, "alice@example.org").await?;
    let bob = user(&store, "bob@example.org").await?;
    let carol = user(&store, "carol@example.org").await?;

    let workspace = storage.ensure_workspace(alice.id, None).await.context("alice's workspace")?;
    let marker = workspace.host_path.join(MARKER);
    tokio::fs::write(&marker, "written by process-sessions before the session started\n")
        .await
        .context(format!("writing {}", marker.display()))?;
    if rustix::process::geteuid().is_root() {
        // The workspace belongs to the session user; so does what is put in it.
        std::os::unix::fs::chown(&marker, Some(SESSION_UID), Some(SESSION_GID)).context("chown")?;
    }

    let a = start(&sessions, &runtime, &alice, &ctx).await?;
    let (status, listing) = http_get(a.addr).await?;
    if status != 200 || !listing.contains(MARKER) {
        return Err(format!("alice's session answered {status} without listing {MARKER}: {listing}"));
    }
    let b = start(&sessions, &runtime, &bob, &ctx).await?;
    if b.session.gpu_id == a.session.gpu_id {
        return Err(format!("both sessions got GPU {}", a.session.gpu_id));
    }
    let (status, listing) = http_get(b.addr).await?;
    if status != 200 || listing.contains(MARKER) {
        return Err(format!("bob's session answered {status} or listed alice's file: {listing}"));
    }
    let refused = match sessions.create(request(&carol), &ctx).await {
        Err(LifecycleError::Allocation(e @ AllocationError::NoGpusAvailable)) => e.to_string(),
        Err(e) => return Err(format!("carol's session failed otherwise than for want of a GPU: {e}")),
        Ok(s) => return Err(format!("carol's session started on GPU {} although both were held", s.gpu_id)),
    };

    let mut lines = vec!["process-sessions: ok".to_owned()];
    for (started, owner) in [(&a, &alice), (&b, &bob)] {
        let snapshot = stop(&sessions, &storage, started, owner, &ctx).await?;
        lines.push(format!(
            "  {}: session {} on GPU {} at {} as uid {}; stopped, snapshot {}",
            owner.email, started.session.slug, started.session.gpu_id, started.addr, started.uid, snapshot
        ));
    }
    lines.push(format!("  {}: refused: {refused}", carol.email));
    watcher.abort();

    let left = runtime.list_managed().await.context("listing processes")?;
    if !left.is_empty() {
        return Err(format!("processes left after the stops: {left:?}"));
    }
    let held: Vec<_> =
        store.list_gpus().await.context("listing GPUs")?.into_iter().filter(|g| g.session_id.is_some()).collect();
    if !held.is_empty() {
        return Err(format!("GPUs still held after the stops: {held:?}"));
    }
    Ok(lines.join("\n"))
}

async fn user(store: &Arc<dyn Store>, email: &str) -> Result<User, String> {
    let email = email.parse().context("email")?;
    match store.user_by_email(&email).await.context("reading a user")? {
        Some(user) => Ok(user),
        // No logins here, so the password hash is one that no password matches.
        None => store.create_user(NewUser::new(email, "!".into())).await.context("creating a user"),
    }
}

fn request(user: &User) -> AllocationRequest {
    AllocationRequest {
        user_id: user.id,
        exposure: Exposure::External,
        pack_id: None,
        now: model::now(),
        expires_at: None,
    }
}

/// Starts `user`'s session and checks what the runtime says about it.
async fn start(
    sessions: &Lifecycle,
    runtime: &ProcessRuntime,
    user: &User,
    ctx: &EventContext,
) -> Result<Started, String> {
    let session = sessions.create(request(user), ctx).await.context(format!("starting {}'s session", user.email))?;
    if session.status != SessionStatus::Running {
        return Err(format!("{}'s session is {}, not running", user.email, session.status));
    }
    let name = container_name(&session.slug);
    let info = runtime.inspect(&name).await.context("inspect")?.ok_or(format!("no process named {name}"))?;
    let ip = info.ip.ok_or(format!("{name} has no address"))?;
    let cuda = exec(runtime, &name, &["printenv", "CUDA_VISIBLE_DEVICES"]).await?;
    if cuda.trim() != session.gpu_id.to_string() {
        return Err(format!("{name} holds GPU {} but CUDA_VISIBLE_DEVICES is {cuda:?}", session.gpu_id));
    }
    let uid = exec(runtime, &name, &["id", "-u"]).await?.trim().to_owned();
    let addr = SocketAddr::new(ip, SESSION_PORT);
    eprintln!("process-sessions: {}'s session {} runs on GPU {} at {addr}", user.email, session.slug, session.gpu_id);
    Ok(Started { session, addr, uid })
}

/// Runs a command in a session's context; its stdout.
async fn exec(runtime: &ProcessRuntime, name: &str, argv: &[&str]) -> Result<String, String> {
    let command = runtime.exec_command(name, argv).context("exec")?;
    let out = tokio::process::Command::from(command).output().await.context(format!("running {argv:?} in {name}"))?;
    if !out.status.success() {
        return Err(format!("{argv:?} in {name}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Stops a session and checks the store and its snapshot; the snapshot's name.
async fn stop(
    sessions: &Lifecycle,
    storage: &ProcessDirStorage,
    started: &Started,
    owner: &User,
    ctx: &EventContext,
) -> Result<String, String> {
    let id = started.session.id;
    match sessions.stop(id, StopReason::User, ctx).await.context(format!("stopping {}'s session", owner.email))? {
        StopOutcome::Stopped(s) if s.status == SessionStatus::Stopped => {}
        other => return Err(format!("{}'s stop ended as {other:?}", owner.email)),
    }
    let row = sessions.store().session(id).await.context("reading the session")?.ok_or("the session row is gone")?;
    if row.status != SessionStatus::Stopped {
        return Err(format!("the store says {}'s session is {}", owner.email, row.status));
    }
    let slug = started.session.slug.as_str();
    let snapshot = storage
        .list_snapshots(owner.id)
        .await
        .context("listing snapshots")?
        .into_iter()
        .find(|s| s.name.kind() == SnapshotKind::Stop && s.name.as_str().ends_with(slug))
        .ok_or(format!("no stop snapshot of session {slug}"))?;
    let files = storage.dirs().snapshot_path(owner.id, &snapshot.name);
    if !files.is_dir() {
        return Err(format!("snapshot {} is not at {}", snapshot.name, files.display()));
    }
    if owner.email.as_str().starts_with("alice") && !files.join(MARKER).is_file() {
        return Err(format!("snapshot {} lacks {MARKER}", snapshot.name));
    }
    Ok(snapshot.name.to_string())
}

/// `GET /` over plain HTTP/1.0: the status and the body.
async fn http_get(addr: SocketAddr) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("GET http://{addr}/ timed out"))?
        .context(format!("GET http://{addr}/"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("GET http://{addr}/: not an HTTP answer: {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// Gives every directory below `root` its owner's write bit back.
fn make_writable(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(root)?;
    if !meta.is_dir() {
        return Ok(());
    }
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(meta.permissions().mode() | 0o700))?;
    for entry in std::fs::read_dir(root)? {
        make_writable(&entry?.path())?;
    }
    Ok(())
}
