//! The session lifecycle contract (the cases Docker passes) on real Podman:
//! `Lifecycle` over SQLite, `DirStorage` and `PodmanRuntime`, with the test
//! pack loaded into Podman's store.

mod common;

use std::sync::Arc;

use medforge_core::testing::lifecycle::LifecycleHarness;

async fn harness() -> LifecycleHarness {
    let (run, config) = common::run_config();
    let teardown_config = config.clone();
    LifecycleHarness::new(
        Arc::new(common::runtime().await),
        common::test_pack_image(),
        common::silent_pack_image(),
        config,
        (common::RUN_LABEL.to_owned(), run.clone()),
        common::podman_exec,
        common::podman_kill,
    )
    .with_teardown(async move { common::cleanup_run(&run, &teardown_config) })
}

medforge_core::lifecycle_contract_tests!(harness);
