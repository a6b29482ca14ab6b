//! `medforge`: serve the API, or administer a deployment from the shell.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};

/// mimalloc, not glibc's malloc: argon2 takes 19 MiB for each password it
/// hashes, and glibc kept every such block in its heap (the server grew by
/// 19 MiB a sign-in, to hundreds of MiB under a burst); mimalloc gives big
/// blocks back to the system when they are freed (docs/decisions.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};
use medforge_core::model::Role;
use medforge_core::store::UserUpdate;
use medforge_server::config::{Config, FirewallKind, StorageKind};
use medforge_server::{app, bootstrap, doctor, http, stack, tasks, telemetry};

#[derive(Debug, Parser)]
#[command(name = "medforge", version, about = "Browser IDEs with one GPU each, for a lab's GPU server")]
struct Cli {
    /// TOML config file (default: ./medforge.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and run the session watchers.
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The GPU table: list, or take a GPU out of (and back into) allocation.
    Gpu {
        #[command(subcommand)]
        command: GpuCommand,
    },
    /// The session isolation rules of `firewall.kind` (nftables or iptables).
    Firewall {
        #[command(subcommand)]
        command: FirewallCommand,
    },
    /// Check the database, the runtime, the pack image, GPUs, storage, the
    /// firewall, DNS, cookies and TLS, and Caddy; say how to fix what is
    /// wrong. Non-zero exit when something required fails.
    Doctor {
        /// How to run Caddy in routing = "caddy" (`version` is appended),
        /// e.g. `docker exec medforge-caddy-1 caddy`.
        #[arg(long, default_value = "caddy")]
        caddy: String,
    },
}

#[derive(Debug, Subcommand)]
enum GpuCommand {
    /// Every GPU with its state and the session holding it.
    List {
        /// What the driver reports instead (NVML, as `[telemetry]` says;
        /// no database): index, name, UUID, memory and a first reading.
        #[arg(long)]
        probe: bool,
    },
    /// Read every GPU `--count` times, `--every` apart (NVML; no database):
    /// one JSON line per GPU and reading, for scripts.
    Sample {
        #[arg(long, default_value_t = 10)]
        count: u32,
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        every: std::time::Duration,
    },
    /// Let sessions be allocated on this GPU again.
    Enable { id: u32 },
    /// Allocate no new session on this GPU (a running one keeps it).
    Disable { id: u32 },
}

#[derive(Debug, Subcommand)]
enum FirewallCommand {
    /// Put the rules in place (replacing MedForge's own; nothing else).
    Apply,
    /// Report missing and foreign rules; non-zero exit unless all is in place.
    Check,
    /// Take MedForge's rules out; leaves everything else as it was.
    Remove,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (secrets masked); non-zero exit when invalid.
    Check,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        admin: bool,
    },
    /// Make an existing user an admin.
    Promote {
        #[arg(long)]
        email: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: journald, compose and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MEDFORGE_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let outcome = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medforge: {}", stack::one_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref()).context("invalid configuration")?;
    match cli.command {
        Command::Config { command: ConfigCommand::Check } => {
            print!("{}", config.masked_toml());
            check_pack_image(&config).await?;
            if config.storage.kind == StorageKind::Zfs {
                stack::open_storage(&config).await.context("invalid configuration")?;
            }
            Ok(())
        }
        Command::Migrate => {
            stack::open_store(&config).await?;
            eprintln!("medforge: database is up to date");
            Ok(())
        }
        Command::User { command } => user_command(&config, command).await,
        Command::Firewall { command } => firewall_command(&config, command).await,
        Command::Gpu { command } => gpu_command(&config, command).await,
        Command::Doctor { caddy } => {
            let findings = doctor::examine(&config, &doctor::Options { caddy }).await;
            print!("{}", doctor::render(&findings));
            match findings.iter().filter(|f| f.outcome == doctor::Outcome::Fail).count() {
                0 => Ok(()),
                n => bail!("{n} required check(s) failed; the fix is under each"),
            }
        }
        Command::Serve => serve(config).await,
    }
}

/// The pack image must be on the engine: sessions cannot start otherwise,
/// and MedForge never pulls. An unreachable engine is only a warning here.
async fn check_pack_image(config: &Config) -> anyhow::Result<()> {
    match stack::image_present(config, &config.pack.image).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(anyhow!(
            "invalid configuration: pack.image: {} is not present on the container engine (MedForge never pulls; build or load it first)",
            config.pack.image
        )),
        Err(e) => {
            eprintln!("medforge: warning: cannot check pack.image: {}", stack::one_line(&e));
            Ok(())
        }
    }
}

async fn firewall_command(config: &Config, command: FirewallCommand) -> anyhow::Result<()> {
    let mut config = config.clone();
    if let Some(choice) = stack::resolve_firewall(&mut config).await {
        eprintln!("medforge: firewall.kind = \"auto\": {:?} ({})", choice.kind, choice.why);
    }
    let config = &config;
    if config.firewall.kind == FirewallKind::None {
        bail!("firewall.kind is \"none\": set it to \"nftables\" or \"iptables\" first");
    }
    let firewall = stack::firewall(config);
    if let FirewallCommand::Remove = command {
        firewall.remove().await?;
        eprintln!("medforge: isolation rules removed");
        return Ok(());
    }
    let runtime = stack::connect_runtime(config).await?;
    let policy = medforge_server::service::isolation::policy(config, runtime.as_ref()).await?;
    if let FirewallCommand::Apply = command {
        firewall.apply(&policy).await?;
    }
    let report = firewall.check(&policy).await?;
    for id in &report.missing {
        println!("missing {id}");
    }
    for rule in &report.foreign {
        println!("foreign {rule}");
    }
    for why in &report.unmet {
        println!("unmet {why}");
    }
    let bridges: Vec<&str> = policy.networks.iter().map(|n| n.bridge.as_str()).collect();
    if report.is_ok() {
        eprintln!("medforge: isolation rules in place for {}", bridges.join(", "));
        Ok(())
    } else {
        Err(anyhow!(
            "isolation rules not as configured ({} missing, {} foreign, {} unmet): run `medforge firewall apply`",
            report.missing.len(),
            report.foreign.len(),
            report.unmet.len()
        ))
    }
}

/// NVML as `[telemetry]` names it; an error, in words, when there is none.
fn nvml(config: &Config) -> anyhow::Result<std::sync::Arc<dyn medforge_core::telemetry::GpuTelemetry>> {
    let telemetry = stack::open_telemetry(config)?;
    if let Some(why) = telemetry.unavailable() {
        bail!("no GPU telemetry: {why}");
    }
    Ok(telemetry)
}

async fn gpu_command(config: &Config, command: GpuCommand) -> anyhow::Result<()> {
    match command {
        GpuCommand::List { probe: true } => gpu_probe(config).await,
        GpuCommand::Sample { count, every } => gpu_sample(config, count, every).await,
        GpuCommand::List { probe: false } => {
            let store = stack::open_store(config).await?;
            println!("{:<4} {:<9} SESSION", "GPU", "STATE");
            for gpu in store.list_gpus().await? {
                let holder = match (gpu.session_id, gpu.user_id) {
                    (Some(session), Some(user)) => format!("{session} (user {user})"),
                    _ => "-".into(),
                };
                println!("{:<4} {:<9} {holder}", gpu.id, if gpu.enabled { "enabled" } else { "disabled" });
            }
            Ok(())
        }
        GpuCommand::Enable { id } => gpu_enable(config, id, true).await,
        GpuCommand::Disable { id } => gpu_enable(config, id, false).await,
    }
}

async fn gpu_probe(config: &Config) -> anyhow::Result<()> {
    let telemetry = nvml(config)?;
    let gpus = telemetry.discover().await?;
    let readings = telemetry.sample().await?;
    println!("{:<4} {:<28} {:<42} {:>10} {:>5} {:>9} {:>6}", "GPU", "NAME", "UUID", "MEMORY", "UTIL", "USED", "TEMP");
    for g in &gpus {
        let r = readings.iter().find(|r| r.index == g.index);
        println!(
            "{:<4} {:<28} {:<42} {:>6} GiB {:>4}% {:>5} GiB {:>6}",
            g.index,
            g.name,
            g.uuid,
            g.memory_total_bytes >> 30,
            r.map_or(0, |r| r.utilization_percent),
            r.map_or(0, |r| r.memory_used_bytes >> 30),
            r.and_then(|r| r.temperature_c).map_or("-".into(), |t| format!("{t}C")),
        );
    }
    eprintln!("medforge: {} GPU(s) through {}", gpus.len(), telemetry.source());
    Ok(())
}

async fn gpu_sample(config: &Config, count: u32, every: std::time::Duration) -> anyhow::Result<()> {
    let telemetry = nvml(config)?;
    for round in 0..count {
        if round > 0 {
            tokio::time::sleep(every).await;
        }
        let at = medforge_server::http::envelope::rfc3339(medforge_core::model::now());
        for s in telemetry.sample().await? {
            let mut line = serde_json::to_value(&s)?;
            line["at"] = at.clone().into();
            println!("{line}");
        }
    }
    Ok(())
}

async fn gpu_enable(config: &Config, id: u32, enabled: bool) -> anyhow::Result<()> {
    let store = stack::open_store(config).await?;
    let gpu = medforge_core::model::GpuId(id);
    if !store.set_gpu_enabled(gpu, enabled).await? {
        bail!("no GPU {id} in the GPU table (`medforge gpu list`; gpus.ids in the config)");
    }
    eprintln!("medforge: GPU {id} {}", if enabled { "enabled" } else { "disabled: no new sessions on it" });
    Ok(())
}

async fn user_command(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    let store = stack::open_store(config).await?;
    match command {
        UserCommand::Add { email, admin } => {
            let email = email.parse::<medforge_core::model::Email>()?;
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password).context("reading the password")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let new = medforge_core::auth::new_user(email, password)?;
            let user = store.create_user(if admin { new.admin() } else { new }).await?;
            eprintln!("medforge: created {} ({}) as {}", user.email, user.id, user.role);
            Ok(())
        }
        UserCommand::Promote { email } => {
            let email = email.parse::<medforge_core::model::Email>()?;
            let user = store.user_by_email(&email).await?.context("no such user")?;
            store.update_user(user.id, UserUpdate { role: Some(Role::Admin), ..Default::default() }).await?;
            eprintln!("medforge: {} is now an admin", user.email);
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    // A certificate that does not load stops the start before anything else.
    let certificates = match config.tls.files() {
        Some(files) => {
            let certificates = http::tls::Certificates::load(files).context("tls")?;
            let acceptor = certificates.acceptor().context("tls")?;
            Some((certificates, acceptor))
        }
        None => None,
    };
    let state = stack::build(config, telemetry::install().context("metrics")?).await?;
    let first_admin = bootstrap::first_admin(&state.config, state.store.as_ref()).await?;
    let report = state.lifecycle.reconcile().await.context("boot reconciliation")?;
    tracing::info!(
        kept = report.kept.len(),
        failed = report.failed.len(),
        orphans = report.orphans_removed.len(),
        "reconciled sessions"
    );
    tasks::apply_isolation(&state).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let isolation = tokio::spawn(tasks::keep_isolation(state.clone(), stop_rx.clone()));
    let sampler = tokio::spawn(tasks::sample_gpus(state.clone(), stop_rx.clone()));
    let limiter = tokio::spawn(tasks::enforce_limits(state.clone(), stop_rx.clone()));
    let queue = tokio::spawn(tasks::run_queue(state.clone(), stop_rx.clone()));
    let watcher = {
        let mut stop = stop_rx.clone();
        tokio::spawn(state.lifecycle.clone().watch(async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
    };
    let tls = certificates.map(|(certificates, acceptor)| {
        let every = state.config.tls.reload_check;
        tokio::spawn(certificates.keep_fresh(every, stop_rx.clone()));
        acceptor
    });
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let redirect = match state.config.tls.redirect_http_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("tls.redirect_http_listen: cannot listen on {at} (another server there?)"))?,
        ),
        None => None,
    };
    let metrics_at = state.config.metrics_listen;
    let metrics_listener = tokio::net::TcpListener::bind(metrics_at).await.with_context(|| {
        format!("metrics_listen: cannot listen on {metrics_at} (another server there? set metrics_listen)")
    })?;
    let metrics_bound = metrics_listener.local_addr()?;
    raise_open_files_limit(state.config.http.max_connections);
    tracing::info!(address = %bound, metrics = %metrics_bound, "serving");
    // The lines scripts and tests wait for.
    eprintln!("medforge: listening on {}://{bound}", if tls.is_some() { "https" } else { "http" });
    eprintln!("medforge: metrics on http://{metrics_bound}/metrics");
    if let Some(redirect) = &redirect {
        eprintln!("medforge: redirecting http://{} to HTTPS", redirect.local_addr()?);
    }
    let ui_url = state.config.ui_url(bound.port());
    eprintln!("medforge: the web UI is at {ui_url}");
    if let Some(admin) = &first_admin {
        bootstrap::announce(admin, &ui_url);
    }
    let metrics = tokio::spawn({
        let app = medforge_server::api::metrics::app(state.clone());
        let mut stop = stop_rx.clone();
        async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            axum::serve(metrics_listener, app).with_graceful_shutdown(stopped).await
        }
    });
    let limits = http::server::Limits::new(&state.config.http, &state.config.limits.trusted_proxies);
    let connections = http::server::Connections::new(limits);
    // The redirect's connections count under the same caps.
    let redirecting = redirect.map(|listener| {
        let (app, connections, mut stop) =
            (http::to_https::app(&state.config, bound.port()), connections.clone(), stop_rx.clone());
        tokio::spawn(http::server::serve(listener, app, connections, None, async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
    });
    let app = app::app(state);
    http::server::serve(listener, app, connections, tls, async {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests; sessions keep running");
    })
    .await
    .context("server")?;
    let _ = stop_tx.send(true);
    if let Some(redirecting) = redirecting {
        let _ = redirecting.await;
    }
    let _ = metrics.await;
    let _ = watcher.await;
    let _ = isolation.await;
    let _ = sampler.await;
    let _ = limiter.await;
    let _ = queue.await;
    Ok(())
}

/// Lets the process open as many files as the system allows it (the soft
/// limit is often 1024, less than `http.max_connections` needs: each
/// proxied request holds two sockets), and says so when that is still too
/// few.
fn raise_open_files_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 2 * max_connections as u64 + 256 => tracing::warn!(
            limit,
            max_connections,
            "the open-files limit is low for http.max_connections: raise it (LimitNOFILE in systemd)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
