//! The `ContainerRuntime` contract, the same cases Docker passes, against
//! real Podman 4.3 through its libpod API.

mod common;

use std::sync::Arc;

use medforge_core::storage::DirStorage;
use medforge_core::testing::runtime::RuntimeHarness;

async fn harness() -> RuntimeHarness {
    let (run, config) = common::run_config();
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = DirStorage::new(dir.path()).expect("storage");
    let teardown_config = config.clone();
    RuntimeHarness::new(
        Arc::new(common::runtime().await),
        common::test_pack_image(),
        config,
        storage,
        common::podman_exec,
        common::podman_kill,
    )
    .with_teardown(async move {
        common::cleanup_run(&run, &teardown_config);
        drop(dir);
    })
}

medforge_core::runtime_contract_tests!(harness);
