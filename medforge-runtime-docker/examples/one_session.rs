//! Embedding MedForge's core with the Docker runtime: one program that
//! starts a session for a user, prints it, keeps it until Ctrl-C, then
//! stops it (with its snapshot). The crash test of the lifecycle also runs
//! it and kills it half-way through a start.
//!
//! ```text
//! cargo run -p medforge-runtime-docker --example one_session -- \
//!     --db ./demo.db --workspaces ./demo-ws --image medforge-test-pack:latest --email ada@example.org
//! ```
//! Options: `--label KEY=VALUE` (added to the container and the networks'
//! names' scope), `--network-prefix P` (networks `P-ext` and `P-int`),
//! `--ready-timeout SECS`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use medforge_core::events::{EventContext, JsonLines, StopReason};
use medforge_core::lifecycle::{Lifecycle, LifecycleConfig};
use medforge_core::model::{self, Exposure};
use medforge_core::runtime::{GpuMode, SessionContainerConfig};
use medforge_core::storage::DirStorage;
use medforge_core::store::{AllocationRequest, NewUser, Seed, SqliteStore, Store};
use medforge_runtime_docker::{DEFAULT_SOCKET, DockerRuntime};

struct Args {
    db: String,
    workspaces: String,
    image: String,
    email: String,
    labels: BTreeMap<String, String>,
    network_prefix: String,
    ready_timeout: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        db: String::new(),
        workspaces: String::new(),
        image: String::new(),
        email: String::new(),
        labels: BTreeMap::new(),
        network_prefix: "medforge".into(),
        ready_timeout: 120,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--db" => a.db = value()?,
            "--workspaces" => a.workspaces = value()?,
            "--image" => a.image = value()?,
            "--email" => a.email = value()?,
            "--network-prefix" => a.network_prefix = value()?,
            "--ready-timeout" => a.ready_timeout = value()?.parse().map_err(|_| "--ready-timeout takes seconds")?,
            "--label" => {
                let kv = value()?;
                let (k, v) = kv.split_once('=').ok_or("--label takes KEY=VALUE")?;
                a.labels.insert(k.into(), v.into());
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.db.is_empty() || a.workspaces.is_empty() || a.image.is_empty() || a.email.is_empty() {
        return Err("usage: one_session --db FILE --workspaces DIR --image IMAGE --email EMAIL [options]".into());
    }
    Ok(a)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("one_session: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&args.db).await?);
    store.seed(&Seed { default_pack_image: args.image.clone(), ..Seed::default() }).await?;
    let email = args.email.parse()?;
    let user = match store.user_by_email(&email).await? {
        Some(u) => u,
        // No login in this example, so the password hash is a placeholder
        // that no password verifies against.
        None => store.create_user(NewUser::new(email, "!".into())).await?,
    };
    let config = LifecycleConfig {
        containers: SessionContainerConfig {
            external_network: format!("{}-ext", args.network_prefix),
            internal_network: format!("{}-int", args.network_prefix),
            gpu_mode: GpuMode::None,
            extra_labels: args.labels,
            ..Default::default()
        },
        ready_timeout: Duration::from_secs(args.ready_timeout),
        stop_grace: Duration::from_secs(5),
        ..Default::default()
    };
    let sessions = Arc::new(Lifecycle::new(
        store,
        Arc::new(DockerRuntime::connect(DEFAULT_SOCKET).await?),
        Arc::new(DirStorage::new(&args.workspaces)?),
        Arc::new(JsonLines::stdout()),
        config,
    ));
    // A real embedder reconciles first: a previous run may have crashed.
    sessions.reconcile().await?;
    let watcher = tokio::spawn(sessions.clone().watch(std::future::pending()));
    let req = AllocationRequest {
        user_id: user.id,
        exposure: Exposure::External,
        pack_id: None,
        now: model::now(),
        expires_at: None,
    };
    let session = sessions.create(req, &EventContext::correlation("one_session")).await?;
    eprintln!(
        "session {} is {} on GPU {} as mf-session-{}; Ctrl-C stops it",
        session.id, session.status, session.gpu_id, session.slug
    );
    tokio::signal::ctrl_c().await?;
    sessions.stop(session.id, StopReason::User, &EventContext::correlation("one_session")).await?;
    watcher.abort();
    Ok(())
}
