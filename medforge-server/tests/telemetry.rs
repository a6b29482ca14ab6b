//! GPU telemetry and GPU-hours through the real server: the stand-in
//! libnvidia-ml (the real NVML code on a played driver) drives what the
//! GPUs read, and the admin board, the dashboard, `/metrics` and the usage
//! API must show exactly that; GPU-hours of sessions with known times
//! (written through the store with fixed timestamps) are exact to the
//! second in the API and the CSV, on SQLite and on MariaDB.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Db, Options, Server, eventually};
use medforge_core::model::{Exposure, SessionStatus, UserId};
use medforge_core::store::{AllocationRequest, MySqlStore, SqliteStore, Store, Transition};
use medforge_telemetry_nvml::stand_in::StandInGpu;
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::datetime;

const GIB: u64 = 1 << 30;

/// A page of the UI, as the signed-in `cookie` gets it.
async fn page(s: &Server, path: &str, cookie: &str) -> (u16, String) {
    let r = s.http.get(s.url(path)).header("cookie", cookie).send().await.expect("page");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// A GET with `Accept: text/csv`: (status, content type, body).
async fn csv_get(s: &Server, path: &str, cookie: &str) -> (u16, String, String) {
    let r = s.http.get(s.url(path)).header("cookie", cookie).header("accept", "text/csv").send().await.expect("get");
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (r.status().as_u16(), ct, r.text().await.expect("body"))
}

/// Polls `check` every 200 ms for up to 15 s; the last failure otherwise.
fn gpu_of(list: &Value, id: u64) -> Value {
    list["data"].as_array().expect("gpus").iter().find(|g| g["id"] == id).cloned().expect("the GPU")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_gpus_do_reaches_the_board_the_dashboard_metrics_and_usage() {
    let s = Server::start(
        Db::Sqlite,
        Options { stand_in_nvml: Some(vec![StandInGpu::idle(0), StandInGpu::idle(1)]), ..Options::default() },
    )
    .await;
    let admin = s.admin("board@example.org").await;
    let (user, _) = s.signup("trainer@example.org").await;
    let (_, session) = s.start_session(&user).await;
    let id = session["id"].as_str().expect("id").to_owned();
    let gpu = session["gpu_id"].as_u64().expect("gpu");
    let other = 1 - gpu;

    // A training run starts on the session's GPU.
    let mut busy = StandInGpu::idle(gpu as u32).busy(87, 30 * GIB);
    busy.pids = vec![4242];
    let mut gpus = vec![StandInGpu::idle(0), StandInGpu::idle(1)];
    gpus[gpu as usize] = busy.clone();
    s.set_gpus(&gpus);

    eventually("the API shows the reading", Duration::from_secs(15), || async {
        let (_, _, b) = s.get("/api/v2/admin/gpus", Some(&admin)).await;
        let g = gpu_of(&b, gpu);
        let r = &g["reading"];
        if r["utilization_ratio"] == 0.87 && r["memory_used_bytes"] == 30 * GIB && r["processes"] == 1 {
            assert_eq!(g["name"], "NVIDIA H200 (stand-in)");
            assert_eq!(g["uuid"], busy.uuid.as_str());
            assert_eq!(g["session_id"], id.as_str());
            assert_eq!(gpu_of(&b, other)["reading"]["utilization_ratio"], 0.0);
            Ok(())
        } else {
            Err(format!("{g}"))
        }
    })
    .await;

    // /metrics: by GPU, never by user.
    let text = s.metrics_text().await;
    for line in [
        format!("medforge_gpu_utilization_ratio{{gpu=\"{gpu}\"}} 0.87"),
        format!("medforge_gpu_memory_used_bytes{{gpu=\"{gpu}\"}} {}", 30 * GIB),
        format!("medforge_gpu_held{{gpu=\"{gpu}\"}} 1"),
        format!("medforge_gpu_held{{gpu=\"{other}\"}} 0"),
        format!("medforge_gpu_utilization_ratio{{gpu=\"{other}\"}} 0"),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(!text.lines().any(|l| l.starts_with("medforge_gpu") && l.contains("user")), "{text}");

    // The admin board: name, utilisation, memory, temperature, holder, sparkline.
    let (st, board) = page(&s, "/admin", &admin).await;
    assert_eq!(st, 200, "{board}");
    let card =
        board.split("data-testid=\"gpu-row\"").find(|c| c.contains(&format!("data-gpu=\"{gpu}\""))).expect("card");
    for want in [
        "NVIDIA H200 (stand-in)",
        "data-testid=\"gpu-utilization\">87%",
        "data-testid=\"gpu-memory\">30.0 GiB of 80.0 GiB",
        "data-testid=\"gpu-temperature\">64 °C",
        "data-testid=\"gpu-processes\">1",
        "trainer@example.org",
        "data-testid=\"sparkline\"",
        "now 87%",
    ] {
        assert!(card.contains(want), "no {want:?} in the card:\n{card}");
    }
    // The user's dashboard: their GPU, live.
    let (_, dashboard) = page(&s, "/", &user).await;
    let mine = dashboard.split("data-testid=\"my-gpu\"").nth(1).expect("the user's GPU card");
    assert!(mine.contains("data-testid=\"gpu-utilization\">87%"), "{mine}");
    assert!(dashboard.contains("data-gpu-refresh=\"1000\""), "the script follows each reading");

    // Three more seconds busy, then idle, then stop: usage from the store.
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.set_gpus(&[StandInGpu::idle(0), StandInGpu::idle(1)]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (st, _, b) = s.post(&format!("/api/v2/external/sessions/{id}/stop"), Some(&user), None).await;
    assert_eq!(st, 202, "{b}");
    s.wait_status(&format!("/api/v2/external/sessions/{id}"), &user, "stopped").await;

    // The first reading after the stop writes the session's rows.
    let usage: Value = eventually("the usage API has the session's telemetry", Duration::from_secs(15), || async {
        let (st, _, b) = s.get("/api/v2/me/usage", Some(&user)).await;
        assert_eq!(st, 200, "{b}");
        let s0 = &b["data"]["sessions"][0];
        if s0["gpu_seconds_busy"].as_u64().unwrap_or(0) >= 3 && s0["peak_memory_bytes"] == 30 * GIB {
            Ok(b["data"].clone())
        } else {
            Err(format!("{b}"))
        }
    })
    .await;
    assert_eq!(usage["telemetry"], "nvml");
    assert_eq!(usage["busy_measured"], true);
    assert_eq!(usage["busy_note"], Value::Null);
    assert_eq!(usage["sessions_count"], 1);
    let one = &usage["sessions"][0];
    let (held, busy_s) =
        (one["gpu_seconds_held"].as_u64().expect("held"), one["gpu_seconds_busy"].as_u64().expect("busy"));
    assert!(held >= 5 && busy_s <= held, "held {held}, busy {busy_s}");
    let mean = one["mean_utilization"].as_f64().expect("mean");
    assert!(mean > 0.2 && mean < 0.87, "busy 87% for a while, then idle: mean {mean}");
    assert_eq!(usage["gpu_seconds_held"], held);
    let today = usage["days"].as_array().expect("days").iter().filter(|d| d["sessions"] == 1).collect::<Vec<_>>();
    assert_eq!(today.len(), 1, "{usage}");
    assert_eq!(today[0]["gpu_seconds_busy"], busy_s);

    // The CSV says the same.
    let (st, ct, csv) = csv_get(&s, "/api/v2/admin/usage", &admin).await;
    assert_eq!(st, 200, "{csv}");
    assert!(ct.starts_with("text/csv"), "{ct}");
    let row = csv.lines().find(|l| l.contains("trainer@example.org")).expect("the user's row");
    let cells: Vec<&str> = row.split(',').collect();
    assert_eq!((cells[3], cells[4], cells[6]), ("1", held.to_string().as_str(), busy_s.to_string().as_str()), "{csv}");

    // The board after the stop: the GPU is free, and still read.
    let (_, _, b) = s.get("/api/v2/admin/gpus", Some(&admin)).await;
    assert_eq!(gpu_of(&b, gpu)["session_id"], Value::Null);
    assert_eq!(gpu_of(&b, gpu)["reading"]["utilization_ratio"], 0.0);
    s.stop().await;
}

async fn own_store(s: &Server) -> Arc<dyn Store> {
    if s.db_url.starts_with("sqlite:") {
        Arc::new(SqliteStore::open(&s.db_url).await.expect("the server's SQLite"))
    } else {
        Arc::new(MySqlStore::connect(&s.db_url).await.expect("the server's MariaDB"))
    }
}

/// A session that ran between two fixed times (or died at the second).
async fn ran(store: &dyn Store, user: UserId, from: OffsetDateTime, to: OffsetDateTime, died: bool) {
    let s = store
        .allocate_session(AllocationRequest {
            user_id: user,
            exposure: Exposure::External,
            pack_id: None,
            now: from,
            expires_at: None,
        })
        .await
        .expect("allocate");
    let t = |a, b, at| Transition::new(a, b, at);
    assert!(
        store.transition_session(s.id, t(SessionStatus::Starting, SessionStatus::Running, from)).await.expect("run")
    );
    if died {
        let death = t(SessionStatus::Running, SessionStatus::Error, to).error("container exited unexpectedly");
        assert!(store.transition_session(s.id, death).await.expect("die"));
    } else {
        assert!(
            store.transition_session(s.id, t(SessionStatus::Running, SessionStatus::Stopping, to)).await.expect("stop")
        );
        assert!(
            store.transition_session(s.id, t(SessionStatus::Stopping, SessionStatus::Stopped, to)).await.expect("end")
        );
    }
}

async fn gpu_hours_are_exact_to_the_second(db: Db) {
    let s =
        Server::start(db, Options { extra_config: "[telemetry]\nsource = \"none\"\n".into(), ..Options::default() })
            .await;
    let admin = s.admin("accounts@example.org").await;
    let (ada, ada_id) = s.signup("ada@example.org").await;
    let (_, bob_id) = s.signup("bob@example.org").await;
    let (ada_id, bob_id): (UserId, UserId) = (ada_id.parse().expect("id"), bob_id.parse().expect("id"));
    let store = own_store(&s).await;
    // Ada: 09:00:00-10:30:15 on the 2nd, and 23:00 on the 2nd to 01:00:01
    // on the 3rd; one on the 30th of October (outside). Bob: 11:00-12:00:59
    // on the 3rd, ended by the container's death.
    ran(store.as_ref(), ada_id, datetime!(2026-11-02 09:00 UTC), datetime!(2026-11-02 10:30:15 UTC), false).await;
    ran(store.as_ref(), ada_id, datetime!(2026-11-02 23:00 UTC), datetime!(2026-11-03 01:00:01 UTC), false).await;
    ran(store.as_ref(), ada_id, datetime!(2026-10-30 08:00 UTC), datetime!(2026-10-30 09:00 UTC), false).await;
    ran(store.as_ref(), bob_id, datetime!(2026-11-03 11:00 UTC), datetime!(2026-11-03 12:00:59 UTC), true).await;

    let (st, _, b) = s.get("/api/v2/me/usage?from=2026-11-02&to=2026-11-04", Some(&ada)).await;
    assert_eq!(st, 200, "{b}");
    let u = &b["data"];
    assert_eq!((u["from"].as_str(), u["to"].as_str()), (Some("2026-11-02"), Some("2026-11-04")));
    assert_eq!(u["gpu_seconds_held"], 5415 + 3600 + 3601);
    assert_eq!(u["gpu_hours_held"], 3.5044);
    assert_eq!(u["sessions_count"], 2);
    let days: Vec<(Value, Value, Value)> = u["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| (d["day"].clone(), d["gpu_seconds_held"].clone(), d["sessions"].clone()))
        .collect();
    assert_eq!(days, vec![("2026-11-02".into(), 9015.into(), 2.into()), ("2026-11-03".into(), 3601.into(), 1.into())]);
    // No telemetry: busy is unknown, and the answer says why.
    assert_eq!(u["telemetry"], "none");
    assert_eq!(u["busy_measured"], false);
    assert_eq!(u["gpu_seconds_busy"], Value::Null);
    assert!(u["busy_note"].as_str().expect("a note").contains("telemetry"));

    // Everyone's, as JSON and as CSV.
    let (st, _, b) = s.get("/api/v2/admin/usage?from=2026-11-02&to=2026-11-04", Some(&admin)).await;
    assert_eq!(st, 200, "{b}");
    let users = b["data"]["users"].as_array().expect("users");
    let held: Vec<(&str, u64)> = users
        .iter()
        .map(|u| (u["email"].as_str().expect("email"), u["gpu_seconds_held"].as_u64().expect("s")))
        .collect();
    assert_eq!(held, vec![("ada@example.org", 12616), ("bob@example.org", 3659)]);
    let (st, _, csv) = csv_get(&s, "/api/v2/admin/usage?from=2026-11-02&to=2026-11-04", &admin).await;
    assert_eq!(st, 200, "{csv}");
    let rows: Vec<String> = csv.lines().map(|l| l.split(',').skip(1).collect::<Vec<_>>().join(",")).collect();
    assert_eq!(
        rows,
        vec![
            "email,day,sessions,gpu_seconds_held,gpu_hours_held,gpu_seconds_busy,gpu_hours_busy",
            "ada@example.org,2026-11-02,2,9015,2.5042,,",
            "ada@example.org,2026-11-03,1,3601,1.0003,,",
            "bob@example.org,2026-11-03,1,3659,1.0164,,",
        ]
    );
    // The UI's report and its download agree.
    let (st, report) = page(&s, "/admin/usage?from=2026-11-02&to=2026-11-04", &admin).await;
    assert_eq!(st, 200, "{report}");
    assert!(report.contains("data-testid=\"usage-seconds\">12616<"), "{report}");
    assert!(report.contains("href=\"/admin/usage.csv?from=2026-11-02&#38;to=2026-11-04\""), "{report}");
    let r = s
        .http
        .get(s.url("/admin/usage.csv?from=2026-11-02&to=2026-11-04"))
        .header("cookie", &admin)
        .send()
        .await
        .expect("csv");
    assert!(
        r.headers()["content-disposition"].to_str().expect("cd").contains("medforge-usage-2026-11-02-2026-11-04.csv")
    );
    assert_eq!(r.text().await.expect("body"), csv);

    // Bad periods are the caller's error, in words; users see only their own.
    for (query, field) in
        [("from=yesterday", "from"), ("from=2026-11-04&to=2026-11-02", "to"), ("from=2020-01-01&to=2026-01-01", "to")]
    {
        let (st, h, b) = s.get(&format!("/api/v2/me/usage?{query}"), Some(&ada)).await;
        common::assert_problem(st, &h, &b, 422, "/api/v2/me/usage");
        assert_eq!(b["errors"][0]["field"], field, "{query}: {b}");
    }
    let (st, h, b) = s.get("/api/v2/admin/usage", Some(&ada)).await;
    common::assert_problem(st, &h, &b, 403, "/api/v2/admin/usage");
    // The board without telemetry says so.
    let (_, board) = page(&s, "/admin", &admin).await;
    assert!(board.contains("data-testid=\"no-telemetry\""), "{board}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_hours_are_exact_to_the_second_on_sqlite() {
    gpu_hours_are_exact_to_the_second(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_hours_are_exact_to_the_second_on_mariadb() {
    gpu_hours_are_exact_to_the_second(Db::MariaDb).await;
}
