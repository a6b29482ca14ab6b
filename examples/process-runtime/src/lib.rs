//! # A `ContainerRuntime` that runs sessions as local processes
//!
//! An example of what a third party writes to give `medforge-core` a new
//! place to run sessions: [`ProcessRuntime`] implements
//! [`ContainerRuntime`] with plain child processes instead of containers,
//! and the rest of MedForge (allocation, the lifecycle, snapshots,
//! reconciliation) runs on it unchanged. The `process-sessions` binary of
//! this crate embeds it with the SQLite store and [`ProcessDirStorage`].
//!
//! How the container concepts of [`ContainerSpec`] map onto processes:
//!
//! | container | process |
//! | --- | --- |
//! | image | a program registered under that name ([`ProcessRuntimeConfig::programs`]); an unknown name is [`RuntimeError::ImageMissing`] |
//! | container id, name, labels, state | an entry in an in-memory table |
//! | address on the sessions network | a loopback address of its own from [`ProcessRuntimeConfig::subnet`] (Linux routes all of 127.0.0.0/8 to `lo`), which the program binds with port 8080 |
//! | `/workspace` bind mount | the working directory (and `$HOME`, `$MEDFORGE_WORKSPACE`): the host path itself |
//! | env | the spec's env on a cleared environment, plus `CUDA_VISIBLE_DEVICES` for the spec's GPU |
//! | user 1000:1000, no capabilities, `no-new-privileges`, `nofile`/`nproc` | as root ([`Privileges::Drop`]): `prlimit` and `setpriv` from util-linux; otherwise the program's own user, unchanged |
//! | PID 1 ends, the container ends | the process is its own process group; when it exits the group is killed |
//! | die events | a task waits on each child and broadcasts [`RuntimeEvent::Died`] |
//!
//! ## What a process runtime cannot do
//!
//! This is an example of the trait, **not a secure runtime**. A session
//! process shares the host's kernel namespaces, so:
//!
//! - **No filesystem isolation**: a session sees the whole host filesystem
//!   with its user's permissions, including other users' workspaces when it
//!   runs as the same uid (every session runs as 1000:1000 under root).
//! - **No network isolation**: all sessions share the host's network
//!   namespace; a session can reach every other session's port, the host's
//!   services and the internet. So *internal* sessions (which need a
//!   network without egress) are refused, and
//!   [`ContainerRuntime::sessions_network`] is an error: there is no bridge
//!   for the firewall to isolate, and describing `lo` would make the
//!   isolation policy drop all of the host's loopback traffic.
//! - **No GPU pinning**: the GPU is only *named* by `CUDA_VISIBLE_DEVICES`
//!   (with `CUDA_DEVICE_ORDER=PCI_BUS_ID`, so the index means what
//!   `nvidia-smi` says). CUDA honours it, but a program may unset it, and
//!   `nvidia-smi` or NVML ignore it: every GPU stays reachable through
//!   `/dev/nvidia*`.
//! - **No cgroup limits**: `memory_bytes`, `pids` and `shm_bytes` are not
//!   enforced. `nofile` and `nproc` are rlimits (under root only; `nproc`
//!   counts every process of the session uid on the host).
//! - **No pid namespace**: sessions see and, as the same uid, may signal
//!   each other's processes.
//! - **Without root**, sessions run as the embedding program's own user
//!   with its capabilities; `spec.user` cannot be honoured.
//! - **State lives in memory**: the table is not persisted, so a restarted
//!   program cannot find the processes of the previous one. To keep
//!   reconciliation truthful, sessions do not outlive the runtime: dropping
//!   the last [`ProcessRuntime`] handle, or the tokio runtime its tasks run
//!   on, kills them. A program killed outright (SIGKILL) runs neither, and
//!   its sessions live on as orphans: they keep their addresses (later
//!   leases skip an address something listens on) and carry
//!   `MEDFORGE_SESSION_ID` in their environment for an operator to find.
//!   (`setpriv --pdeathsig` would not help: the kernel clears the parent
//!   death signal when the uid changes.)

mod storage;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use medforge_core::firewall::Ipv4Cidr;
use medforge_core::model::SessionId;
use medforge_core::runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, LABEL_MANAGED, LABEL_SESSION_ID, NetworkInfo,
    RuntimeError, RuntimeEvent,
};
use rustix::io::Errno;
use rustix::process::{Pid, Signal};
use tokio::sync::{broadcast, watch};

pub use storage::ProcessDirStorage;

/// The image name of the default program: Python's `http.server` serving
/// the workspace's listing, bound to the session's own address.
pub const HTTP_SERVER_IMAGE: &str = "medforge-process/http-server";

/// The loopback range sessions get addresses from by default.
pub const DEFAULT_SUBNET: Ipv4Cidr = Ipv4Cidr { addr: Ipv4Addr::new(127, 88, 0, 0), prefix: 24 };

/// How long a SIGKILLed process may take to be reaped before a stop or a
/// remove reports failure (a process stuck in uninterruptible sleep).
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Who session processes run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privileges {
    /// As the embedding program's own user, with whatever it may do:
    /// `spec.user` and the rlimits are not applied. The only choice
    /// without root.
    Inherit,
    /// Root only: through util-linux's `prlimit` and `setpriv`, switch to
    /// `spec.user` (supplementary groups cleared), drop every capability
    /// (the bounding set too), set `no_new_privs`, and set the `nofile` and
    /// `nproc` rlimits; the closest a plain process comes to the locked-down
    /// container the spec describes.
    Drop,
}

impl Privileges {
    /// [`Privileges::Drop`] when running as root, else [`Privileges::Inherit`].
    pub fn detect() -> Self {
        if rustix::process::geteuid().is_root() { Privileges::Drop } else { Privileges::Inherit }
    }
}

/// How a [`ProcessRuntime`] runs sessions.
#[derive(Debug, Clone)]
pub struct ProcessRuntimeConfig {
    /// The "images": a command line per image name. `{ip}` and `{port}` in
    /// an argument are replaced by the session's address and port; the
    /// program must listen there (not on 0.0.0.0, which every session
    /// shares).
    pub programs: BTreeMap<String, Vec<String>>,
    /// Where session addresses come from: a range inside 127.0.0.0/8.
    pub subnet: Ipv4Cidr,
    pub privileges: Privileges,
    /// `PATH` of session processes (their environment is cleared, as a
    /// container's would not inherit the host's).
    pub path: String,
    /// Where each process's stdout and stderr go, as `<name>.log`; `None`
    /// discards them.
    pub log_dir: Option<PathBuf>,
}

impl Default for ProcessRuntimeConfig {
    fn default() -> Self {
        // `--directory .` rather than the default absolute cwd: under
        // `Privileges::Drop` the process enters its workspace while still
        // root, and the workspace's parents (a 0700 temporary directory,
        // say) need not be searchable by the session user.
        let http_server = ["python3", "-m", "http.server", "{port}", "--bind", "{ip}", "--directory", "."];
        Self {
            programs: BTreeMap::from([(HTTP_SERVER_IMAGE.to_owned(), http_server.map(String::from).to_vec())]),
            subnet: DEFAULT_SUBNET,
            privileges: Privileges::detect(),
            path: "/usr/local/bin:/usr/bin:/bin".into(),
            log_dir: None,
        }
    }
}

/// Runs session "containers" as local child processes. Cheap to clone:
/// clones share one process table.
#[derive(Debug, Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ProcessRuntimeConfig,
    /// By id. Never held across an await.
    table: Mutex<HashMap<String, Entry>>,
    events: broadcast::Sender<RuntimeEvent>,
}

#[derive(Debug)]
struct Entry {
    id: String,
    name: String,
    labels: BTreeMap<String, String>,
    /// Also the process group id: each session leads its own group.
    pid: Pid,
    ip: Ipv4Addr,
    state: ContainerState,
    /// Turns true once the child has been reaped.
    exited: watch::Receiver<bool>,
}

impl Entry {
    fn info(&self) -> ContainerInfo {
        let running = self.state == ContainerState::Running;
        ContainerInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            state: self.state.clone(),
            // Like a container, an exited process has no address: its
            // address goes back to the pool when it exits.
            ip: running.then_some(IpAddr::V4(self.ip)),
            labels: self.labels.clone(),
        }
    }

    fn is_running(&self) -> bool {
        !*self.exited.borrow()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent between statements, so a panic
    // elsewhere while holding the lock does not make it unusable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn backend(operation: &'static str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Backend { operation, message: message.into() }
}

const NO_SESSIONS_NETWORK: &str = "a process runtime has no sessions network: session processes share the host's \
     network namespace, so there is no bridge a firewall could isolate (and the isolation rules applied to `lo` \
     would cut off the host's own loopback traffic)";

const NO_INTERNAL_SESSIONS: &str =
    "internal sessions need a network without egress, and a process runtime cannot keep a process off the network";

impl ProcessRuntime {
    /// Checks the configuration: a subnet inside 127.0.0.0/8 with room for
    /// addresses, and root for [`Privileges::Drop`].
    pub fn new(config: ProcessRuntimeConfig) -> Result<Self, RuntimeError> {
        let subnet = config.subnet;
        if subnet.addr.octets()[0] != 127 || !(8..=30).contains(&subnet.prefix) {
            return Err(backend("configure", format!("subnet {subnet} is not a /8 to /30 inside 127.0.0.0/8")));
        }
        if config.privileges == Privileges::Drop && !rustix::process::geteuid().is_root() {
            return Err(backend("configure", "dropping privileges to the session user needs root"));
        }
        if let Some(dir) = &config.log_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| backend("configure", format!("log directory {}: {e}", dir.display())))?;
        }
        // Enough for bursts of deaths; a subscriber that still lags misses
        // some, which the lifecycle's poller catches.
        let (events, _) = broadcast::channel(256);
        Ok(Self { inner: Arc::new(Inner { config, table: Mutex::new(HashMap::new()), events }) })
    }

    /// A runtime with the default programs and subnet.
    pub fn with_defaults() -> Result<Self, RuntimeError> {
        Self::new(ProcessRuntimeConfig::default())
    }

    pub fn config(&self) -> &ProcessRuntimeConfig {
        &self.inner.config
    }

    /// The pid (and process group) of a running session process, by id or
    /// name; `None` when it is missing or has exited.
    pub fn pid(&self, id_or_name: &str) -> Option<u32> {
        let table = lock(&self.inner.table);
        let entry = find(&table, id_or_name)?;
        let pid = u32::try_from(entry.pid.as_raw_nonzero().get()).ok()?;
        entry.is_running().then_some(pid)
    }

    /// A command that runs `argv` "inside" a running session, as `docker
    /// exec` would: with the environment, working directory and uid/gid
    /// the kernel reports for the session's process (read from `/proc`,
    /// not from what this runtime asked for), with capabilities dropped
    /// when it switches user. The caller runs it.
    pub fn exec_command(&self, id_or_name: &str, argv: &[&str]) -> Result<std::process::Command, RuntimeError> {
        let pid = self.pid(id_or_name).ok_or_else(|| backend("exec", format!("{id_or_name} is not running")))?;
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let read = |file: &str| {
            std::fs::read(proc_dir.join(file)).map_err(|e| backend("exec", format!("reading /proc/{pid}/{file}: {e}")))
        };
        let environ = read("environ")?;
        let status = String::from_utf8_lossy(&read("status")?).into_owned();
        let id_of = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .map(str::to_owned)
                .ok_or_else(|| backend("exec", format!("no {key} in /proc/{pid}/status")))
        };
        let (uid, gid) = (id_of("Uid:")?, id_of("Gid:")?);
        let mut full: Vec<String> = Vec::new();
        if rustix::process::geteuid().is_root() && uid != "0" {
            full.extend(setpriv_args(&uid, &gid));
        }
        full.extend(argv.iter().map(|a| (*a).to_owned()));
        let (program, args) = full.split_first().ok_or_else(|| backend("exec", "an empty command"))?;
        let mut command = std::process::Command::new(program);
        command.args(args).current_dir(proc_dir.join("cwd")).env_clear();
        for var in environ.split(|b| *b == 0).filter(|v| !v.is_empty()) {
            let (key, value) = match var.iter().position(|b| *b == b'=') {
                Some(i) => (&var[..i], &var[i + 1..]),
                None => (var, &b""[..]),
            };
            command.env(OsStr::from_bytes(key), OsStr::from_bytes(value));
        }
        Ok(command)
    }

    /// The session's command line: the program, behind `prlimit` and
    /// `setpriv` when privileges are dropped.
    fn command(
        &self,
        spec: &ContainerSpec,
        program: &[String],
        ip: Ipv4Addr,
    ) -> Result<tokio::process::Command, RuntimeError> {
        let (ip_text, port) = (ip.to_string(), spec.port.to_string());
        let mut full: Vec<String> = Vec::new();
        if self.inner.config.privileges == Privileges::Drop {
            let (uid, gid) = spec
                .user
                .split_once(':')
                .filter(|(u, g)| u.parse::<u32>().is_ok() && g.parse::<u32>().is_ok())
                .ok_or_else(|| backend("create", format!("user {:?} is not uid:gid", spec.user)))?;
            // prlimit first: raising a hard limit needs the root we are
            // about to give up. Both tools exec, so the pid stays the
            // program's.
            let (nofile, nproc) = (spec.limits.nofile, spec.limits.nproc);
            full.extend(["prlimit".into(), format!("--nofile={nofile}:{nofile}"), format!("--nproc={nproc}:{nproc}")]);
            full.push("--".into());
            full.extend(setpriv_args(uid, gid));
        }
        full.extend(program.iter().map(|a| a.replace("{ip}", &ip_text).replace("{port}", &port)));
        let (first, args) = full
            .split_first()
            .ok_or_else(|| backend("create", format!("image {} names an empty command", spec.image)))?;
        let mut command = tokio::process::Command::new(first);
        command
            .args(args)
            // Entered before any privilege is dropped (see the default program).
            .current_dir(&spec.workspace)
            .env_clear()
            .env("PATH", &self.inner.config.path)
            .env("HOME", &spec.workspace)
            .env("LANG", "C.UTF-8")
            // No `/workspace` mount: this is where the workspace really is.
            .env("MEDFORGE_WORKSPACE", &spec.workspace)
            .envs(&spec.env)
            .env("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
            // No GPU (gpu_mode none) is an empty list, which hides every GPU from CUDA.
            .env("CUDA_VISIBLE_DEVICES", spec.gpu.map(|g| g.to_string()).unwrap_or_default())
            .stdin(Stdio::null())
            // Its own group, so that a stop reaches whatever it started and
            // a Ctrl-C meant for the embedding program does not reach it.
            .process_group(0)
            // The last resort of "sessions do not outlive the runtime": the
            // waiting task owns the child, and drops it when the tokio
            // runtime shuts down.
            .kill_on_drop(true);
        match &self.inner.config.log_dir {
            Some(dir) => {
                let path = dir.join(format!("{}.log", spec.name));
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| backend("create", format!("log file {}: {e}", path.display())))?;
                let err =
                    log.try_clone().map_err(|e| backend("create", format!("log file {}: {e}", path.display())))?;
                command.stdout(log).stderr(err);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        Ok(command)
    }

    /// Waits until `prlimit` and `setpriv` have exec'd into the program, so
    /// that what the caller then sees (and `exec_command` copies: the uid,
    /// the capabilities) is the session's, not a wrapper's still running as
    /// root. A container runtime likewise returns once the container's
    /// process is set up.
    async fn until_wrappers_are_gone(
        &self,
        id: &str,
        pid: Pid,
        exited: watch::Receiver<bool>,
    ) -> Result<(), RuntimeError> {
        const WRAPPERS: [&str; 2] = ["prlimit", "setpriv"];
        let comm = format!("/proc/{}/comm", pid.as_raw_nonzero());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if *exited.borrow() {
                let state = find(&lock(&self.inner.table), id).map(|e| e.state.clone());
                return Err(backend(
                    "start",
                    format!("the process ended while dropping privileges ({state:?}; its log says why)"),
                ));
            }
            match tokio::fs::read_to_string(&comm).await {
                Ok(name) if !WRAPPERS.contains(&name.trim()) => return Ok(()),
                // Still a wrapper, or just reaped (the next turn sees that).
                Ok(_) | Err(_) => {}
            }
            if tokio::time::Instant::now() > deadline {
                return Err(backend("start", "prlimit and setpriv did not exec the program within 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Starts the process and enters it in the table, with a task that
    /// reaps it. Synchronous, so that the table's lock is held from the
    /// name check to the insert (two creates of one name cannot both pass)
    /// and never across an await.
    fn spawn(
        &self,
        spec: &ContainerSpec,
        program: &[String],
    ) -> Result<(ContainerInfo, Pid, watch::Receiver<bool>), RuntimeError> {
        let mut table = lock(&self.inner.table);
        if table.values().any(|e| e.name == spec.name) {
            return Err(RuntimeError::NameTaken(spec.name.clone()));
        }
        let ip = lease(self.inner.config.subnet, spec.port)?;
        let spawned = self
            .command(spec, program, ip)
            .and_then(|mut c| c.spawn().map_err(|e| backend("start", format!("{}: {e}", program.join(" ")))));
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                release(ip);
                return Err(e);
            }
        };
        // Only `None` once the child has been waited for, which nobody has
        // done yet; dropping the child kills it.
        let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()).and_then(Pid::from_raw) else {
            release(ip);
            return Err(backend("start", "the process has no pid"));
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (done, exited) = watch::channel(false);
        let entry = Entry {
            id: id.clone(),
            name: spec.name.clone(),
            labels: spec.labels.clone(),
            pid,
            ip,
            state: ContainerState::Running,
            exited: exited.clone(),
        };
        let info = entry.info();
        table.insert(id.clone(), entry);
        let session_id = spec.labels.get(LABEL_SESSION_ID).and_then(|v| v.parse().ok());
        let events = self.inner.events.clone();
        tokio::spawn(reap(Arc::downgrade(&self.inner), id, session_id, (pid, ip), child, done, events));
        Ok((info, pid, exited))
    }

    /// The pid and exit watch of a running entry, by id or name.
    fn running(&self, id_or_name: &str) -> Option<(Pid, watch::Receiver<bool>)> {
        let table = lock(&self.inner.table);
        let entry = find(&table, id_or_name)?;
        entry.is_running().then(|| (entry.pid, entry.exited.clone()))
    }
}

fn setpriv_args(uid: &str, gid: &str) -> Vec<String> {
    [
        "setpriv",
        "--reuid",
        uid,
        "--regid",
        gid,
        "--clear-groups",
        "--no-new-privs",
        "--bounding-set",
        "-all",
        "--inh-caps",
        "-all",
        "--",
    ]
    .map(String::from)
    .to_vec()
}

fn find<'a>(table: &'a HashMap<String, Entry>, id_or_name: &str) -> Option<&'a Entry> {
    table.get(id_or_name).or_else(|| table.values().find(|e| e.name == id_or_name))
}

/// Signals a session's process group; one that is gone already is fine.
fn signal(pid: Pid, sig: Signal) -> Result<(), RuntimeError> {
    match rustix::process::kill_process_group(pid, sig) {
        Ok(()) | Err(Errno::SRCH) => Ok(()),
        Err(e) => Err(backend("signal", format!("process group {}: {e}", pid.as_raw_nonzero()))),
    }
}

/// Waits until the child has been reaped. A closed channel means its task
/// was dropped, which killed it.
async fn exited(mut exited: watch::Receiver<bool>, within: Duration) -> bool {
    tokio::time::timeout(within, exited.wait_for(|done| *done)).await.is_ok()
}

/// Addresses leased by every runtime in this program, so that two runtimes
/// (tests run several at once) never hand out the same one.
static LEASES: Mutex<BTreeSet<Ipv4Addr>> = Mutex::new(BTreeSet::new());

/// The first address of `subnet` that no runtime here holds and that
/// nothing on the host listens on at `port` (another program, or a
/// listener on 0.0.0.0, which would take every address's port).
fn lease(subnet: Ipv4Cidr, port: u16) -> Result<Ipv4Addr, RuntimeError> {
    let mask = u32::MAX << (32 - u32::from(subnet.prefix));
    let network = u32::from(subnet.addr) & mask;
    let mut leases = lock(&LEASES);
    // Neither the network nor the broadcast address.
    for host in 1..(!mask) {
        let ip = Ipv4Addr::from(network | host);
        if leases.contains(&ip) {
            continue;
        }
        if std::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(ip), port)).is_ok() {
            leases.insert(ip);
            return Ok(ip);
        }
    }
    Err(backend(
        "create",
        format!("no free address in {subnet} for port {port} (is something listening on 0.0.0.0:{port}?)"),
    ))
}

fn release(ip: Ipv4Addr) {
    lock(&LEASES).remove(&ip);
}

/// What `docker` would report: the exit code, or 128 + the signal.
fn exit_code(status: ExitStatus) -> Option<i64> {
    status.code().map(i64::from).or_else(|| status.signal().map(|s| 128 + i64::from(s)))
}

/// Owns one child until it exits, then records that and reports it.
async fn reap(
    inner: Weak<Inner>,
    id: String,
    session_id: Option<SessionId>,
    (pid, ip): (Pid, Ipv4Addr),
    mut child: tokio::process::Child,
    done: watch::Sender<bool>,
    events: broadcast::Sender<RuntimeEvent>,
) {
    let exit_code = match child.wait().await {
        Ok(status) => exit_code(status),
        Err(e) => {
            tracing::warn!(container_id = %id, error = %e, "could not wait for a session process");
            None
        }
    };
    // As when a container's PID 1 ends: whatever it started ends with it.
    // (The pid was reaped a moment ago, so it is not yet reused.)
    let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    release(ip);
    if let Some(inner) = inner.upgrade()
        && let Some(entry) = lock(&inner.table).get_mut(&id)
    {
        entry.state = ContainerState::Exited { exit_code };
    }
    done.send_replace(true);
    // Nobody listening is fine: the poller finds deaths too.
    let _ = events.send(RuntimeEvent::Died { container_id: id, session_id, exit_code });
}

impl Drop for Inner {
    /// The table is the only record of these processes: a program started
    /// later could neither reconcile nor remove them, so they end here.
    fn drop(&mut self) {
        for entry in lock(&self.table).values().filter(|e| e.is_running()) {
            let _ = rustix::process::kill_process_group(entry.pid, Signal::KILL);
        }
    }
}

#[async_trait]
impl ContainerRuntime for ProcessRuntime {
    async fn create_and_start(&self, spec: &ContainerSpec) -> Result<ContainerInfo, RuntimeError> {
        let program = self
            .inner
            .config
            .programs
            .get(&spec.image)
            .ok_or_else(|| RuntimeError::ImageMissing(spec.image.clone()))?;
        if spec.network.internal {
            return Err(backend("create", NO_INTERNAL_SESSIONS));
        }
        if !Path::new(&spec.workspace).is_dir() {
            return Err(backend("create", format!("workspace {} is not a directory", spec.workspace.display())));
        }
        let (info, pid, exited) = self.spawn(spec, program)?;
        if self.inner.config.privileges == Privileges::Drop
            && let Err(e) = self.until_wrappers_are_gone(&info.id, pid, exited).await
        {
            // Nothing of it is left behind: the process, if alive, and its entry.
            let _ = self.remove(&info.id).await;
            return Err(e);
        }
        tracing::debug!(container = %info.name, ip = ?info.ip, pid = pid.as_raw_nonzero(), "session process started");
        Ok(info)
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let Some((pid, done)) = self.running(id) else { return Ok(()) };
        signal(pid, Signal::TERM)?;
        if exited(done.clone(), grace).await {
            return Ok(());
        }
        signal(pid, Signal::KILL)?;
        if exited(done, KILL_WAIT).await {
            Ok(())
        } else {
            Err(backend("stop", format!("{id} survived SIGKILL for {KILL_WAIT:?}")))
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let Some(key) = find(&lock(&self.inner.table), id).map(|e| e.id.clone()) else { return Ok(()) };
        if let Some((pid, done)) = self.running(&key) {
            signal(pid, Signal::KILL)?;
            if !exited(done, KILL_WAIT).await {
                return Err(backend("remove", format!("{id} survived SIGKILL for {KILL_WAIT:?}")));
            }
        }
        lock(&self.inner.table).remove(&key);
        Ok(())
    }

    async fn inspect(&self, id_or_name: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        Ok(find(&lock(&self.inner.table), id_or_name).map(Entry::info))
    }

    async fn list_managed(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let table = lock(&self.inner.table);
        Ok(table.values().filter(|e| e.labels.contains_key(LABEL_MANAGED)).map(Entry::info).collect())
    }

    async fn events(&self) -> Result<BoxStream<'static, Result<RuntimeEvent, RuntimeError>>, RuntimeError> {
        let receiver = self.inner.events.subscribe();
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => return Some((Ok(event), receiver)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "the runtime event stream lagged; the poller will catch up");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn sessions_network(&self, _name: &str, _internal: bool) -> Result<NetworkInfo, RuntimeError> {
        Err(backend("sessions network", NO_SESSIONS_NETWORK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_outside_loopback_or_without_room_are_refused() {
        let config = |subnet: &str| ProcessRuntimeConfig {
            subnet: subnet.parse().expect("cidr"),
            privileges: Privileges::Inherit,
            ..Default::default()
        };
        assert!(ProcessRuntime::new(config("127.88.0.0/24")).is_ok());
        for bad in ["10.0.0.0/24", "127.0.0.0/31", "0.0.0.0/0"] {
            assert!(ProcessRuntime::new(config(bad)).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn exit_codes_read_like_dockers() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), Some(3));
        assert_eq!(exit_code(ExitStatus::from_raw(9)), Some(137));
    }

    #[test]
    fn leases_skip_held_addresses_and_come_back() {
        let subnet: Ipv4Cidr = "127.87.1.0/30".parse().expect("cidr");
        let a = lease(subnet, 18080).expect("first");
        let b = lease(subnet, 18080).expect("second");
        assert_eq!((a, b), (Ipv4Addr::new(127, 87, 1, 1), Ipv4Addr::new(127, 87, 1, 2)));
        assert!(lease(subnet, 18080).is_err(), "a /30 has two hosts");
        release(a);
        assert_eq!(lease(subnet, 18080).expect("again"), a);
    }
}
