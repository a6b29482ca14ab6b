//! The `Storage` contract against `DirStorage` on the real filesystem.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use medforge_core::model::{self, UserId};
use medforge_core::storage::{DirStorage, SnapshotKind, SnapshotName, Storage};
use medforge_core::testing::storage::StorageHarness;

async fn harness() -> StorageHarness {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = DirStorage::new(dir.path().join("workspaces")).expect("storage");
    let reader = storage.clone();
    StorageHarness::new(Arc::new(storage), move |ws, name, file| {
        let user: UserId = ws.host_path.file_name().and_then(|n| n.to_str()).expect("user dir").parse().expect("uuid");
        std::fs::read(reader.snapshot_path(user, name).join(file))
    })
    .with_teardown(async move {
        // Snapshots are read-only: give write bits back so the directory can go.
        let _ = std::process::Command::new("chmod").arg("-R").arg("u+w").arg(dir.path()).status();
        drop(dir);
    })
}

medforge_core::storage_contract_tests!(harness);

/// DirStorage's snapshots carry no write bit anywhere, and symlinks are
/// copied as links, never followed.
#[tokio::test]
async fn dir_snapshots_are_read_only_copies_outside_the_workspace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = DirStorage::new(dir.path()).expect("storage");
    let user = UserId::new_random();
    let ws = storage.ensure_workspace(user, None).await.expect("ensure");
    std::fs::create_dir_all(ws.host_path.join("sub")).expect("mkdir");
    std::fs::write(ws.host_path.join("sub/f.txt"), "x").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", ws.host_path.join("link")).expect("symlink");
    let name = SnapshotName::new(SnapshotKind::Death, model::now(), &"roroaaaa".parse().expect("slug"));
    storage.snapshot(user, &name).await.expect("snapshot");
    let snap = storage.snapshot_path(user, &name);
    assert!(!snap.starts_with(&ws.host_path), "snapshots live outside the mounted workspace");
    for p in [snap.clone(), snap.join("sub"), snap.join("sub/f.txt")] {
        let mode = std::fs::metadata(&p).expect("stat").permissions().mode();
        assert_eq!(mode & 0o222, 0, "{} is writable ({mode:o})", p.display());
    }
    let link = std::fs::symlink_metadata(snap.join("link")).expect("stat link");
    assert!(link.file_type().is_symlink());
    assert_eq!(std::fs::read_link(snap.join("link")).expect("readlink").to_str(), Some("/etc/passwd"));
    // The workspace itself stays writable.
    std::fs::write(ws.host_path.join("sub/f.txt"), "y").expect("workspace writable");
    let _ = std::process::Command::new("chmod").arg("-R").arg("u+w").arg(dir.path()).status();
}
