//! Session start time, for any runtime: `Lifecycle::create` (allocation,
//! workspace, container, port answering) against the engine's own CLI
//! `run` of the same image until its port answers, and against the
//! runtime's bare create and start, interleaved in one run. Each runtime
//! crate's `session_start` bench calls [`session_start`]; `scripts/bench.sh`
//! runs them.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::events::{EventContext, MemoryEvents, StopReason};
use crate::lifecycle::{Lifecycle, LifecycleConfig};
use crate::model::{self, Exposure};
use crate::probe;
use crate::runtime::{ContainerRuntime, ContainerSpec, ResourceLimits, SessionContainerConfig, session_container_spec};
use crate::storage::{DirStorage, Storage};
use crate::store::{AllocationRequest, NewUser, Seed, SqliteStore, Store};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / u32::try_from(v.len()).unwrap_or(1)
}

fn cli(engine: &str, args: &[&str]) -> String {
    let out = Command::new(engine).args(args).output().unwrap_or_else(|e| panic!("{engine} CLI: {e}"));
    assert!(out.status.success(), "{engine} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `<engine> run -d` on the sessions network (with the sessions' open-file
/// and process limits, which Podman cannot start without), then its
/// address, then its port.
async fn cli_run_once(
    engine: &str,
    image: &str,
    network: &str,
    label: &str,
    limits: &ResourceLimits,
    i: usize,
) -> Duration {
    let name = format!("mfbench-{}-{i}", label.replace(['=', '.'], "-"));
    let (nofile, nproc) = (format!("nofile={0}:{0}", limits.nofile), format!("nproc={0}:{0}", limits.nproc));
    let start = Instant::now();
    cli(
        engine,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            network,
            "--label",
            label,
            "--ulimit",
            &nofile,
            "--ulimit",
            &nproc,
            image,
        ],
    );
    let ip: IpAddr = cli(engine, &["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &name])
        .parse()
        .expect("container address");
    probe::wait_until_http(SocketAddr::new(ip, 8080), Duration::from_secs(30)).await.expect("CLI run: port answered");
    let took = start.elapsed();
    cli(engine, &["rm", "-f", &name]);
    took
}

/// The Engine API alone, through the same runtime: create, start, inspect,
/// port answers. What MedForge adds beyond this is its own bookkeeping.
async fn engine_api_once(runtime: &dyn ContainerRuntime, spec: &ContainerSpec) -> Duration {
    let start = Instant::now();
    let info = runtime.create_and_start(spec).await.expect("engine API start");
    let ip = info.ip.expect("address");
    probe::wait_until_http(SocketAddr::new(ip, 8080), Duration::from_secs(30))
        .await
        .expect("engine API: port answered");
    let took = start.elapsed();
    runtime.remove(&info.id).await.expect("remove");
    took
}

/// What a session-start benchmark needs from its engine.
#[derive(Debug)]
pub struct SessionStartBench {
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The engine's CLI (`docker`, `podman`), for the baseline column.
    pub cli: &'static str,
    pub image: String,
    /// `key=value`, on every container of the run.
    pub run_label: String,
    pub containers: SessionContainerConfig,
}

/// `starts` interleaved starts of each (after one untimed warm-up of each):
/// the CLI's `run` until the port answers, the runtime's create and start
/// until it answers, and `Lifecycle::create`. A markdown table.
pub async fn session_start(bench: SessionStartBench, starts: usize) -> String {
    let SessionStartBench { runtime, cli: engine, image, run_label, containers } = bench;
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("bench.db").to_str().expect("path")).await.expect("store"));
    store.seed(&Seed { default_pack_image: image.clone(), ..Seed::default() }).await.expect("seed");
    // The network exists before either side is timed.
    runtime.sessions_network(&containers.external_network, false).await.expect("network");
    let network = containers.external_network.clone();
    // A spec for a session that exists only here, for the engine-API column.
    let raw_spec = {
        let session = crate::model::Session::new_starting(
            crate::model::UserId::new_random(),
            Exposure::External,
            crate::model::DEFAULT_PACK_ID,
            crate::model::GpuId(0),
            model::now(),
        );
        let raw_storage = DirStorage::new(dir.path().join("raw-ws")).expect("storage");
        let ws = raw_storage.ensure_workspace(session.user_id, None).await.expect("ws");
        session_container_spec(&session, &image, &ws, &containers)
    };
    let config =
        LifecycleConfig { containers: containers.clone(), stop_grace: Duration::from_secs(2), ..Default::default() };
    let sessions = Lifecycle::new(
        store.clone(),
        runtime.clone(),
        Arc::new(DirStorage::new(dir.path().join("ws")).expect("storage")),
        Arc::new(MemoryEvents::default()),
        config,
    );
    let user =
        store.create_user(NewUser::new("bench@example.org".parse().expect("email"), "h".into())).await.expect("user");

    cli_run_once(engine, &image, &network, &run_label, &containers.limits, 9999).await;
    let (mut base, mut api, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=starts {
        base.push(cli_run_once(engine, &image, &network, &run_label, &containers.limits, i).await);
        api.push(engine_api_once(runtime.as_ref(), &raw_spec).await);
        let req = AllocationRequest {
            user_id: user.id,
            exposure: Exposure::External,
            pack_id: None,
            now: model::now(),
            expires_at: None,
        };
        let t = Instant::now();
        let session = sessions.create(req, &EventContext::default()).await.expect("create");
        ours.push(t.elapsed());
        sessions.stop(session.id, StopReason::User, &EventContext::default()).await.expect("stop");
        eprintln!(
            "start {i}: {engine} run {:.0} ms, engine API {:.0} ms, medforge {:.0} ms",
            ms(base[i]),
            ms(api[i]),
            ms(ours[i])
        );
    }
    // Drop the warm-up pair.
    base.remove(0);
    api.remove(0);
    ours.remove(0);

    let mut table = format!(
        "| {starts} starts each, interleaved | {engine} run -> port answers | engine API -> port answers | \
         medforge create -> port answers | medforge ÷ {engine} run | overhead vs {engine} run | medforge ÷ engine API | overhead vs engine API |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    for (label, b, a, o) in [
        ("median", median(base.clone()), median(api.clone()), median(ours.clone())),
        ("mean", mean(&base), mean(&api), mean(&ours)),
    ] {
        let over = |x: Duration| {
            let d = o.as_secs_f64() - x.as_secs_f64();
            format!("{:+.0} ms ({:+.1}%)", d * 1e3, d / x.as_secs_f64() * 100.0)
        };
        table.push_str(&format!(
            "| {label} | {:.0} ms | {:.0} ms | {:.0} ms | {:.3} | {} | {:.3} | {} |\n",
            ms(b),
            ms(a),
            ms(o),
            o.as_secs_f64() / b.as_secs_f64(),
            over(b),
            o.as_secs_f64() / a.as_secs_f64(),
            over(a)
        ));
    }
    table
}

/// `--starts N` from a bench's arguments (cargo adds `--bench`).
pub fn starts_from_args(default: usize) -> usize {
    let mut starts = default;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--starts" => starts = args.next().and_then(|v| v.parse().ok()).expect("--starts N"),
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    starts
}
