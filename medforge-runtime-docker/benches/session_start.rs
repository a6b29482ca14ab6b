//! Session start time: `Sessions::create` (allocation, workspace, container,
//! port answering) against `docker run` of the same image until its port
//! answers, interleaved in one run. Run by `scripts/bench.sh`.
//!
//! Usage: cargo bench -p medforge-runtime-docker --bench session_start -- [--starts N]

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use medforge_core::events::{EventContext, MemoryEvents, StopReason};
use medforge_core::lifecycle::{LifecycleConfig, Sessions};
use medforge_core::model::{self, Exposure};
use medforge_core::probe;
use medforge_core::runtime::{ContainerRuntime, session_container_spec};
use medforge_core::storage::DirStorage;
use medforge_core::storage::Storage;
use medforge_core::store::{AllocationRequest, NewUser, Seed, SqliteStore, Store};

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

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker CLI");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `docker run -d` on the sessions network, then its address, then its port.
async fn docker_run_once(image: &str, network: &str, run: &str, i: usize) -> Duration {
    let name = format!("mfbench-{run}-{i}");
    let start = Instant::now();
    let label = format!("{}={run}", common::RUN_LABEL);
    docker(&["run", "-d", "--name", &name, "--network", network, "--label", &label, image]);
    let ip: IpAddr = docker(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &name])
        .parse()
        .expect("container address");
    probe::wait_until_http(SocketAddr::new(ip, 8080), Duration::from_secs(30))
        .await
        .expect("docker run: port answered");
    let took = start.elapsed();
    docker(&["rm", "-f", &name]);
    took
}

/// The Engine API alone, through the same runtime: create, start, inspect,
/// port answers. What MedForge adds beyond this is its own bookkeeping.
async fn engine_api_once(
    runtime: &medforge_runtime_docker::DockerRuntime,
    spec: &medforge_core::runtime::ContainerSpec,
) -> Duration {
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

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut starts = 20usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--starts" => starts = args.next().and_then(|v| v.parse().ok()).expect("--starts N"),
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    let image = common::test_pack_image();
    let (run, containers) = common::run_config();
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("bench.db").to_str().expect("path")).await.expect("store"));
    store.seed(&Seed { default_pack_image: image.clone(), ..Seed::default() }).await.expect("seed");
    let runtime = Arc::new(common::runtime().await);
    // The network exists before either side is timed.
    runtime.ensure_network(&containers.external_network, false).await.expect("network");
    let network = containers.external_network.clone();
    // A spec for a session that exists only here, for the engine-API column.
    let raw_spec = {
        let session = medforge_core::model::Session::new_starting(
            medforge_core::model::UserId::new_random(),
            Exposure::External,
            medforge_core::model::DEFAULT_PACK_ID,
            medforge_core::model::GpuId(0),
            model::now(),
        );
        let raw_storage = DirStorage::new(dir.path().join("raw-ws")).expect("storage");
        let ws = raw_storage.ensure_workspace(session.user_id, None).await.expect("ws");
        session_container_spec(&session, &image, &ws, &containers)
    };
    let config =
        LifecycleConfig { containers: containers.clone(), stop_grace: Duration::from_secs(2), ..Default::default() };
    let sessions = Sessions::new(
        store.clone(),
        runtime.clone(),
        Arc::new(DirStorage::new(dir.path().join("ws")).expect("storage")),
        Arc::new(MemoryEvents::default()),
        config,
    );
    let user =
        store.create_user(NewUser::new("bench@example.org".parse().expect("email"), "h".into())).await.expect("user");

    // One untimed start of each warms the image cache and the code paths.
    docker_run_once(&image, &network, &run, 9999).await;
    let (mut base, mut api, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=starts {
        base.push(docker_run_once(&image, &network, &run, i).await);
        api.push(engine_api_once(&runtime, &raw_spec).await);
        let req =
            AllocationRequest { user_id: user.id, exposure: Exposure::External, pack_id: None, now: model::now() };
        let t = Instant::now();
        let session = sessions.create(req, &EventContext::default()).await.expect("create");
        ours.push(t.elapsed());
        sessions.stop(session.id, StopReason::User, &EventContext::default()).await.expect("stop");
        eprintln!(
            "start {i}: docker run {:.0} ms, engine API {:.0} ms, medforge {:.0} ms",
            ms(base[i]),
            ms(api[i]),
            ms(ours[i])
        );
    }
    // Drop the warm-up pair.
    base.remove(0);
    api.remove(0);
    ours.remove(0);
    common::cleanup_run(&run, &containers);

    println!(
        "| {starts} starts each, interleaved | docker run -> port answers | engine API -> port answers | \
         medforge create -> port answers | medforge ÷ docker run | overhead vs docker run | medforge ÷ engine API | overhead vs engine API |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (label, b, a, o) in [
        ("median", median(base.clone()), median(api.clone()), median(ours.clone())),
        ("mean", mean(&base), mean(&api), mean(&ours)),
    ] {
        let over = |x: Duration| {
            let d = o.as_secs_f64() - x.as_secs_f64();
            format!("{:+.0} ms ({:+.1}%)", d * 1e3, d / x.as_secs_f64() * 100.0)
        };
        println!(
            "| {label} | {:.0} ms | {:.0} ms | {:.0} ms | {:.3} | {} | {:.3} | {} |",
            ms(b),
            ms(a),
            ms(o),
            o.as_secs_f64() / b.as_secs_f64(),
            over(b),
            o.as_secs_f64() / a.as_secs_f64(),
            over(a)
        );
    }
}
