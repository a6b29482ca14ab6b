//! The `Storage` contract against ZFS: each case on its own real pool (on a
//! file, through zfs-fuse here), destroyed when the case passes.

use std::sync::Arc;

use medforge_core::testing::storage::StorageHarness;
use medforge_storage_zfs::testing::{TestPool, must};
use medforge_storage_zfs::{ZfsConfig, ZfsStorage};

async fn harness() -> StorageHarness {
    let pool = Arc::new(TestPool::create(128));
    let root = pool.dataset("medforge/workspaces");
    must("zfs", &["create", "-p", root.as_str()]);
    let storage = ZfsStorage::connect(ZfsConfig::new(root)).await.expect("connect");
    let reader = pool.clone();
    StorageHarness::new(Arc::new(storage), move |ws, name, file| {
        reader.read_snapshot_file(&ws.name, name.as_str(), file)
    })
    .with_teardown(async move {
        tokio::task::spawn_blocking(move || pool.destroy()).await.expect("destroy");
    })
}

medforge_core::storage_contract_tests!(harness);
