//! `runtime.kind = "podman"`: the real server on Podman's API service, with
//! the test pack loaded into Podman: a session starts, the built-in proxy
//! reaches it, a kill is noticed, a stop removes it.

mod common;

use std::time::{Duration, Instant};

use common::{Db, Options, Server, cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_sessions_on_podman() {
    let image = common::test_env("MEDFORGE_TEST_PODMAN_PACK_IMAGE");
    let limits = "[runtime.limits]\nnofile = 2048\nnproc = 1024\n".to_owned();
    let s = Server::start(
        Db::Sqlite,
        Options { runtime: "podman", image: Some(image), extra_config: limits, ..Options::default() },
    )
    .await;
    let (owner, _) = s.signup("podman@example.org").await;
    let (path, session) = s.start_session(&owner).await;
    let container = common::container_of(&session);
    // Podman's, not Docker's.
    assert!(cli("podman", &["ps", "-q", "--filter", &format!("name={container}")]).trim().len() > 8);
    assert!(cli("docker", &["ps", "-aq", "--filter", &format!("name={container}")]).trim().is_empty());
    let nnp = cli("podman", &["exec", &container, "grep", "NoNewPrivs", "/proc/1/status"]);
    assert!(nnp.contains('1'), "{nnp}");
    // The configured ulimits, as the container's processes see them.
    let ulimits = cli("podman", &["exec", &container, "sh", "-c", "ulimit -n; ulimit -u"]);
    assert_eq!(ulimits.split_whitespace().collect::<Vec<_>>(), ["2048", "1024"], "{ulimits}");

    // The built-in proxy reaches it.
    let (h, pass) = s.entered(&session, &owner).await;
    let (st, _, _, body) = h.get("/", Some(&pass), &[]).await;
    assert_eq!((st, body.as_str()), (200, "medforge test pack\n"));

    // A kill from outside is noticed (Podman's event stream).
    cli("podman", &["kill", &container]);
    let killed = Instant::now();
    s.wait_status(&path, &owner, "error").await;
    assert!(killed.elapsed() < Duration::from_secs(5), "noticed after {:?}", killed.elapsed());

    // Another session, stopped: its container is gone.
    let (path, session) = s.start_session(&owner).await;
    let (st, _, _) = s.post(&format!("{path}/stop"), Some(&owner), None).await;
    assert_eq!(st, 202);
    s.wait_status(&path, &owner, "stopped").await;
    let gone = cli("podman", &["ps", "-aq", "--filter", &format!("name={}", common::container_of(&session))]);
    assert!(gone.trim().is_empty(), "{gone}");
    s.stop().await;
}
