//! Internal sessions on Podman have no way out, as on Docker: a listener in
//! a network namespace of the test's own (never a real outside host) is
//! reached from an external session and not from an internal one.

mod common;

use std::sync::Arc;

use medforge_core::model::Exposure;
use medforge_core::storage::DirStorage;
use medforge_core::testing::outside::OutsideHost;
use medforge_core::testing::runtime::RuntimeHarness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_sessions_cannot_reach_outside_and_external_ones_can() {
    let (run, config) = common::run_config();
    let outside = OutsideHost::start(&run, 80);
    let dir = tempfile::tempdir().expect("tempdir");
    let h = RuntimeHarness::new(
        Arc::new(common::runtime().await),
        common::test_pack_image(),
        config.clone(),
        DirStorage::new(dir.path()).expect("storage"),
        common::podman_exec,
        common::podman_kill,
    );
    let external = h.spec(&h.session(Exposure::External, 0)).await;
    let internal = h.spec(&h.session(Exposure::Internal, 1)).await;
    let ext = h.runtime.create_and_start(&external).await.expect("external");
    let int = h.runtime.create_and_start(&internal).await.expect("internal");

    // The control: the outside host is reachable at all, from an external session.
    assert!(outside.reached_from_engine("podman", &ext.id), "the external session should reach the outside host");
    assert!(!outside.reached_from_engine("podman", &int.id), "the internal session reached the outside host");
    let flags = common::podman(&["network", "inspect", "-f", "{{.Internal}}", &config.internal_network]);
    assert_eq!(flags.trim(), "true");

    common::cleanup_run(&run, &config);
    drop(outside);
}
