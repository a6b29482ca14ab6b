//! The core's session lifecycle contract (`medforge_core::testing::lifecycle`)
//! on `ProcessRuntime`: `Lifecycle` over SQLite, `DirStorage` and session
//! processes. Every case runs unchanged but one, which reads the workspace
//! at `/workspace`: a process has no mount namespace, so its workspace is
//! its working directory instead; that case is restated below with the
//! path relative to it, checking the same promises. Needs root (see
//! `common::require_root`).

mod common;

use std::sync::Arc;

use medforge_core::events::{EventContext, StopReason};
use medforge_core::lifecycle::StopOutcome;
use medforge_core::model::SessionStatus;
use medforge_core::storage::{SnapshotKind, Storage};
use medforge_core::testing::engine::{RUN_LABEL, run_config};
use medforge_core::testing::lifecycle::LifecycleHarness;

async fn harness() -> LifecycleHarness {
    common::require_root();
    let (run, config) = run_config();
    let runtime = common::runtime(91);
    LifecycleHarness::new(
        Arc::new(runtime.clone()),
        common::default_image(),
        common::SILENT_IMAGE,
        config,
        (RUN_LABEL.to_owned(), run),
        common::exec(&runtime),
        common::kill(&runtime),
    )
}

// The core's cases, each on a fresh harness: seven of the eight of
// `lifecycle_contract_tests!` as they are; the other is restated below.
medforge_core::contract_cases!(lifecycle, harness;
    seven_sessions_start_concurrently_and_the_eighth_is_refused,
    a_killed_container_is_marked_error_within_two_seconds_and_frees_its_gpu,
    the_poller_catches_a_death_the_events_missed,
    failed_starts_end_as_error_and_hold_no_gpu,
    a_stop_during_start_wins_and_leaves_nothing_running,
    reconciliation_after_a_crash_leaves_nothing_stranded,
    the_limits_warn_then_stop_on_the_lifecycles_clock,
);

/// `workspace_survives_stop_and_the_stop_snapshot_holds_it`, with the file
/// written and read relative to the session's working directory (its
/// workspace) rather than at `/workspace`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workspace_survives_stop_and_the_stop_snapshot_holds_it() {
    let h = harness().await;
    let stack = h.stack(&h.image, |_| {}).await;
    let user = stack.user("persist").await;
    let first = stack.create(&user).await.expect("create");
    let id = first.container_id.clone().expect("container id");
    (h.exec)(&id, &["sh", "-c", "echo 'epoch 12: loss 0.031' > train.log"]).expect("write");

    let outcome = stack.sessions.stop(first.id, StopReason::User, &EventContext::default()).await.expect("stop");
    let StopOutcome::Stopped(ended) = outcome else { panic!("{outcome:?}") };
    assert_eq!(ended.status, SessionStatus::Stopped);
    assert!(ended.stopped_at.is_some());
    assert!(stack.containers().await.is_empty(), "the process is removed on stop");
    let snapshots = stack.storage.list_snapshots(user.id).await.expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].name.kind(), SnapshotKind::Stop);
    assert!(snapshots[0].name.as_str().ends_with(&format!("-{}", first.slug)));
    let saved = std::fs::read_to_string(stack.storage.snapshot_path(user.id, &snapshots[0].name).join("train.log"))
        .expect("file in the snapshot");
    assert_eq!(saved.trim(), "epoch 12: loss 0.031");
    let names: Vec<_> = stack.events.take().iter().map(|(e, _)| e.name()).collect();
    assert_eq!(names, vec!["session.start", "session.snapshot", "session.stop"]);

    let again = stack.sessions.stop(first.id, StopReason::User, &EventContext::default()).await.expect("stop");
    assert!(matches!(again, StopOutcome::AlreadyTerminal(_)));

    let second = stack.create(&user).await.expect("create again");
    assert_ne!(second.slug, first.slug);
    let read = (h.exec)(second.container_id.as_deref().expect("id"), &["cat", "train.log"]);
    assert_eq!(read.expect("file is there").trim(), "epoch 12: loss 0.031");
    stack.sessions.stop(second.id, StopReason::Admin, &EventContext::default()).await.expect("stop");
    h.finish().await;
}
