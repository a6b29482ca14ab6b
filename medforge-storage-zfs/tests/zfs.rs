//! What ZFS adds to the `Storage` contract: quotas, the root checks at
//! connect, mounting, foreign snapshots, concurrent first use, and names.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use medforge_core::model::{self, UserId};
use medforge_core::storage::{SnapshotKind, SnapshotName, Storage, StorageError};
use medforge_storage_zfs::testing::{TestPool, must, run};
use medforge_storage_zfs::{ConnectError, DatasetName, ZfsConfig, ZfsStorage};

async fn storage(pool: &TestPool) -> ZfsStorage {
    let root = pool.dataset("medforge/workspaces");
    must("zfs", &["create", "-p", root.as_str()]);
    ZfsStorage::connect(ZfsConfig::new(root)).await.expect("connect")
}

fn get(dataset: &str, property: &str) -> String {
    must("zfs", &["get", "-H", "-p", "-o", "value", property, dataset]).trim().to_owned()
}

#[tokio::test]
async fn connect_refuses_a_missing_pool_or_root_with_the_fix() {
    let pool = TestPool::create(64);
    let missing_pool: DatasetName = "mftnosuchpool/medforge".parse().expect("name");
    let err = ZfsStorage::connect(ZfsConfig::new(missing_pool)).await.expect_err("no pool");
    assert!(matches!(err, ConnectError::PoolMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("\"mftnosuchpool\" does not exist"), "{err}");

    let err = ZfsStorage::connect(ZfsConfig::new(pool.dataset("medforge/workspaces"))).await.expect_err("no root");
    assert!(matches!(err, ConnectError::RootMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("infra/zfs/setup.sh"), "{err}");
    // Nothing was created behind the admin's back.
    assert!(run("zfs", &["list", &format!("{}/medforge", pool.name)]).is_err());

    let root = pool.dataset("nomount");
    must("zfs", &["create", "-o", "mountpoint=none", root.as_str()]);
    let err = ZfsStorage::connect(ZfsConfig::new(root)).await.expect_err("no mountpoint");
    assert!(matches!(err, ConnectError::NotMounted { .. }), "{err:?}");

    let mut config = ZfsConfig::new(pool.dataset("nomount"));
    config.zfs_command = "/nonexistent/zfs".into();
    let err = ZfsStorage::connect(config).await.expect_err("no zfs binary");
    assert!(err.to_string().contains("is ZFS installed?"), "{err}");
    pool.destroy();
}

#[tokio::test]
async fn quotas_are_set_followed_and_enforced() {
    let pool = TestPool::create(256);
    let zfs = storage(&pool).await;
    let user = UserId::new_random();
    let ws = zfs.ensure_workspace(user, Some(8 << 20)).await.expect("ensure");
    assert_eq!(ws.name, format!("{}/medforge/workspaces/{user}", pool.name));
    assert_eq!(get(&ws.name, "quota"), (8u64 << 20).to_string());
    let meta = std::fs::metadata(&ws.host_path).expect("stat");
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));

    // Writing past the quota (incompressible bytes) fails with EDQUOT (root included: a ZFS quota
    // is on the dataset, not on a uid).
    // Incompressible: a compressed dataset would store zeros in nothing.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let path = ws.host_path.join("big.bin");
    let result = (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&path)?;
        for _ in 0..32 {
            f.write_all(&big)?;
            f.sync_all()?;
        }
        Ok(())
    })();
    let err = result.expect_err("32 MiB into an 8 MiB quota");
    // EDQUOT (122), or ENOSPC (28) from zfs-fuse.
    assert!(matches!(err.raw_os_error(), Some(122 | 28)), "EDQUOT or ENOSPC, got {err:?}");
    // Another user's workspace is unaffected.
    let other = zfs.ensure_workspace(UserId::new_random(), None).await.expect("other");
    std::fs::write(other.host_path.join("ok.bin"), big.repeat(12)).expect("another workspace has room");

    // The quota follows the config on the next start; None leaves it.
    zfs.ensure_workspace(user, Some(64 << 20)).await.expect("raise");
    assert_eq!(get(&ws.name, "quota"), (64u64 << 20).to_string());
    zfs.ensure_workspace(user, None).await.expect("leave");
    assert_eq!(get(&ws.name, "quota"), (64u64 << 20).to_string());
    zfs.ensure_workspace(user, Some(0)).await.expect("clear");
    assert_eq!(get(&ws.name, "quota"), "0");
    pool.destroy();
}

#[tokio::test]
async fn an_unmounted_workspace_is_mounted_before_use() {
    let pool = TestPool::create(64);
    let zfs = storage(&pool).await;
    let user = UserId::new_random();
    let ws = zfs.ensure_workspace(user, None).await.expect("ensure");
    std::fs::write(ws.host_path.join("kept.txt"), "on the dataset").expect("write");
    must("zfs", &["unmount", &ws.name]);
    assert!(!ws.host_path.join("kept.txt").exists(), "unmounted");
    let again = zfs.ensure_workspace(user, None).await.expect("ensure again");
    assert_eq!(get(&again.name, "mounted"), "yes");
    assert_eq!(std::fs::read_to_string(again.host_path.join("kept.txt")).expect("read"), "on the dataset");
    pool.destroy();
}

#[tokio::test]
async fn snapshots_are_named_on_the_dataset_and_foreign_ones_are_not_listed() {
    let pool = TestPool::create(64);
    let zfs = storage(&pool).await;
    let user = UserId::new_random();
    let ws = zfs.ensure_workspace(user, None).await.expect("ensure");
    let name = SnapshotName::new(SnapshotKind::Stop, model::now(), &"zfsnamea".parse().expect("slug"));
    zfs.snapshot(user, &name).await.expect("snapshot");
    must("zfs", &["snapshot", &format!("{}@admin-manual", ws.name)]);
    assert_eq!(pool.snapshots(&ws.name), [format!("{}@{name}", ws.name), format!("{}@admin-manual", ws.name)]);
    let listed = zfs.list_snapshots(user).await.expect("list");
    assert_eq!(listed.iter().map(|s| &s.name).collect::<Vec<_>>(), [&name]);
    match zfs.snapshot(user, &name).await {
        Err(StorageError::SnapshotExists(full)) => assert_eq!(full, format!("{}@{name}", ws.name)),
        other => panic!("expected SnapshotExists, got {other:?}"),
    }
    // A snapshot of a user with no dataset fails with zfs's own words.
    match zfs.snapshot(UserId::new_random(), &name).await {
        Err(StorageError::Command { command, stderr, .. }) => {
            assert!(command.starts_with("zfs snapshot "), "{command}");
            assert!(stderr.contains("does not exist"), "{stderr}");
        }
        other => panic!("expected a command error, got {other:?}"),
    }
    pool.destroy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_use_by_one_user_creates_one_dataset() {
    let pool = TestPool::create(64);
    let zfs = Arc::new(storage(&pool).await);
    let user = UserId::new_random();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let zfs = zfs.clone();
            tokio::spawn(async move { zfs.ensure_workspace(user, Some(16 << 20)).await })
        })
        .collect();
    let mut names = Vec::new();
    for t in tasks {
        names.push(t.await.expect("join").expect("ensure").name);
    }
    names.dedup();
    assert_eq!(names.len(), 1);
    pool.destroy();
}

/// Hostile user ids and slugs never become dataset or snapshot names: they
/// fail to parse, before any command could run.
#[test]
fn hostile_ids_and_slugs_never_parse() {
    let root: DatasetName = "tank/medforge/workspaces".parse().expect("root");
    for hostile in ["../etc", "a/b", "a@b", "a b", "-o", "-oquota=none", "..", "x;reboot", "$(id)", ""] {
        assert!(hostile.parse::<UserId>().is_err(), "user id {hostile:?}");
        assert!(hostile.parse::<medforge_core::model::Slug>().is_err(), "slug {hostile:?}");
        assert!(format!("stop-1-{hostile}").parse::<SnapshotName>().is_err(), "snapshot {hostile:?}");
        assert!(root.child(hostile).is_err(), "child {hostile:?}");
        assert!(root.at(hostile).is_err(), "at {hostile:?}");
    }
}
