//! Allocation throughput and latency under concurrent clients, on SQLite and
//! on MariaDB. Run by `scripts/bench.sh`, which writes BENCHMARKS.md.
//!
//! For each backend, in one invocation:
//! - baseline: each client repeats one single-row `UPDATE` through the same
//!   `Store` API (`touch_login` on its own login), so the figures
//!   below can be read as ratios against what the database does anyway;
//! - cycle: each client (its own user, limit 1) allocates a session and,
//!   when it got one, releases it the way the lifecycle does (`running`,
//!   `stopping`, `stopped`). 32 clients share 7 GPUs, so many allocations
//!   are refused with "No GPUs available": those are counted, and their
//!   latency is part of the allocation p99 (a refusal runs the same
//!   transaction).
//!
//! Usage: cargo bench -p medforge-core --bench allocation -- [--clients N] [--secs S] [sqlite] [mysql]

use std::sync::Arc;
use std::time::{Duration, Instant};

use medforge_core::model::{self, Exposure, LoginId, SessionStatus};
use medforge_core::store::{AllocationError, AllocationRequest, NewLogin, NewUser, Seed, Store, Transition};
use medforge_core::testing::{StoreHarness, mysql_harness, sqlite_file_harness};

struct Figures {
    refused: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn figures(mut latencies: Vec<Duration>, ops: u64, refused: u64, elapsed: Duration) -> Figures {
    latencies.sort_unstable();
    Figures {
        refused,
        per_sec: ops as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
    }
}

async fn make_users(store: &Arc<dyn Store>, clients: usize) -> Vec<(model::UserId, LoginId)> {
    let mut out = Vec::new();
    for i in 0..clients {
        let user = store
            .create_user(NewUser::new(format!("bench{i}@example.org").parse().expect("email"), "x".into()))
            .await
            .expect("user");
        let now = model::now();
        let login = store
            .create_login(NewLogin {
                id: LoginId::new_random(),
                user_id: user.id,
                token_hash: format!("{:064x}", i),
                created_at: now,
                expires_at: now + time::Duration::days(30),
                ip: None,
                user_agent: None,
            })
            .await
            .expect("login");
        out.push((user.id, login.id));
    }
    out
}

/// Runs `clients` tasks of `op` for `secs`; `op` returns `Some(latency)` for
/// a counted operation and `None` for a refusal (latency still recorded).
async fn drive<F, Fut>(clients: &[(model::UserId, LoginId)], secs: u64, op: F) -> Figures
where
    F: Fn(model::UserId, LoginId) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (Duration, bool)> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let tasks: Vec<_> = clients
        .iter()
        .map(|&(user, login)| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut lat, mut ok, mut refused) = (Vec::new(), 0u64, 0u64);
                while Instant::now() < deadline {
                    let (d, counted) = op(user, login).await;
                    lat.push(d);
                    if counted {
                        ok += 1;
                    } else {
                        refused += 1;
                    }
                }
                (lat, ok, refused)
            })
        })
        .collect();
    let (mut all, mut ok, mut refused) = (Vec::new(), 0, 0);
    for t in tasks {
        let (l, o, r) = t.await.expect("client task");
        all.extend(l);
        ok += o;
        refused += r;
    }
    figures(all, ok, refused, start.elapsed())
}

async fn bench_backend(name: &str, harness: StoreHarness, clients: usize, secs: u64) -> (Figures, Figures) {
    let store = harness.store.clone();
    store.seed(&Seed::default()).await.expect("seed");
    let users = make_users(&store, clients).await;
    eprintln!("{name}: baseline, {clients} clients, {secs} s");
    let s = store.clone();
    let baseline = drive(&users, secs, move |_, login| {
        let s = s.clone();
        async move {
            let t = Instant::now();
            s.touch_login(login, model::now()).await.expect("touch");
            (t.elapsed(), true)
        }
    })
    .await;
    eprintln!("{name}: allocate+release, {clients} clients, {secs} s");
    let s = store.clone();
    let backend = name.to_owned();
    let cycles = drive(&users, secs, move |user, _| {
        let s = s.clone();
        let backend = backend.clone();
        async move {
            let t = Instant::now();
            let r = s
                .allocate_session(AllocationRequest {
                    user_id: user,
                    exposure: Exposure::External,
                    pack_id: None,
                    now: model::now(),
                    expires_at: None,
                })
                .await;
            let latency = t.elapsed();
            match r {
                Ok(session) => {
                    for (from, to) in [
                        (SessionStatus::Starting, SessionStatus::Running),
                        (SessionStatus::Running, SessionStatus::Stopping),
                        (SessionStatus::Stopping, SessionStatus::Stopped),
                    ] {
                        let won = s.transition_session(session.id, Transition::new(from, to, model::now())).await;
                        assert!(won.expect("transition"), "{from} -> {to} lost in a benchmark with no rivals");
                    }
                    (latency, true)
                }
                Err(AllocationError::NoGpusAvailable) => (latency, false),
                Err(e) => panic!("{backend}: unexpected allocation error: {e}"),
            }
        }
    })
    .await;
    harness.finish().await;
    (baseline, cycles)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut clients = 32usize;
    let mut secs = 10u64;
    let mut backends = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--clients" => clients = args.next().and_then(|v| v.parse().ok()).expect("--clients N"),
            "--secs" => secs = args.next().and_then(|v| v.parse().ok()).expect("--secs S"),
            "sqlite" | "mysql" => backends.push(a),
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    if backends.is_empty() {
        backends = vec!["sqlite".into(), "mysql".into()];
    }
    println!(
        "| backend | baseline single-row UPDATE/s | allocate+release cycles/s | cycles ÷ baseline | \
         allocation p50 ms | allocation p99 ms | baseline p99 ms | p99 ÷ baseline p99 | refused (no GPU) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for b in backends {
        let harness = if b == "sqlite" { sqlite_file_harness().await } else { mysql_harness().await };
        let (base, cyc) = bench_backend(&b, harness, clients, secs).await;
        println!(
            "| {b} | {:.0} | {:.0} | {:.3} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
            base.per_sec,
            cyc.per_sec,
            cyc.per_sec / base.per_sec,
            cyc.p50_ms,
            cyc.p99_ms,
            base.p99_ms,
            cyc.p99_ms / base.p99_ms,
            cyc.refused,
        );
    }
}
