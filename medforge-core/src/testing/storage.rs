//! The [`Storage`] contract: every case takes a fresh harness (an empty
//! root) and checks one promise of the trait against the real backend.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use crate::model::{self, Slug, UserId};
use crate::storage::{SESSION_GID, SESSION_UID, SnapshotKind, SnapshotName, Storage, Workspace};

type ReadSnapshotFile = dyn Fn(&Workspace, &SnapshotName, &str) -> std::io::Result<Vec<u8>> + Send + Sync;

/// A fresh storage backend for one case.
pub struct StorageHarness {
    pub storage: Arc<dyn Storage>,
    /// Reads `file` (relative) as it was in a snapshot, the way the backend
    /// exposes snapshots (a copy's directory, `.zfs/snapshot/<name>`, ...).
    pub read_snapshot_file: Box<ReadSnapshotFile>,
    teardown: super::Teardown,
}

impl std::fmt::Debug for StorageHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageHarness").field("storage", &self.storage).finish_non_exhaustive()
    }
}

impl StorageHarness {
    pub fn new(
        storage: Arc<dyn Storage>,
        read_snapshot_file: impl Fn(&Workspace, &SnapshotName, &str) -> std::io::Result<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        Self { storage, read_snapshot_file: Box::new(read_snapshot_file), teardown: super::Teardown::default() }
    }

    pub fn with_teardown(mut self, teardown: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        self.teardown = super::Teardown::new(teardown);
        self
    }

    pub async fn finish(self) {
        self.teardown.run().await;
    }
}

/// Expands every case of this module into a `#[tokio::test]` on a fresh
/// harness from `$harness` (an async fn returning [`StorageHarness`]).
#[macro_export]
macro_rules! storage_contract_tests {
    ($harness:path) => {
        $crate::__contract_cases!(storage, $harness;
            workspaces_are_per_user_idempotent_and_owned_by_the_session_user,
            snapshots_hold_the_workspace_as_it_was,
            snapshots_list_newest_first_per_user,
            snapshot_names_are_not_reused,
        );
    };
}

fn slug(s: &str) -> Slug {
    s.parse().expect("test slug")
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

pub async fn workspaces_are_per_user_idempotent_and_owned_by_the_session_user(h: &StorageHarness) {
    let (alice, bob) = (UserId::new_random(), UserId::new_random());
    let a = h.storage.ensure_workspace(alice, Some(64 << 20)).await.expect("ensure");
    assert!(a.host_path.is_absolute(), "runtimes bind-mount it, so it must be absolute: {}", a.host_path.display());
    let meta = std::fs::metadata(&a.host_path).expect("workspace exists");
    assert!(meta.is_dir());
    assert_eq!((meta.uid(), meta.gid()), (SESSION_UID, SESSION_GID), "owned by the session user");
    write(&a.host_path.join("notes.txt"), "kept");
    let again = h.storage.ensure_workspace(alice, Some(64 << 20)).await.expect("ensure again");
    assert_eq!(again, a);
    assert_eq!(std::fs::read_to_string(a.host_path.join("notes.txt")).expect("read"), "kept");
    let b = h.storage.ensure_workspace(bob, None).await.expect("ensure bob");
    assert_ne!(b.host_path, a.host_path);
    assert_ne!(b.name, a.name);
    assert!(!b.host_path.join("notes.txt").exists(), "workspaces are separate");
}

pub async fn snapshots_hold_the_workspace_as_it_was(h: &StorageHarness) {
    let user = UserId::new_random();
    let ws = h.storage.ensure_workspace(user, None).await.expect("ensure");
    write(&ws.host_path.join("model.py"), "v1");
    write(&ws.host_path.join("data/deep/rows.csv"), "1,2,3");
    std::os::unix::fs::symlink("/etc/hostname", ws.host_path.join("link")).expect("symlink");
    let name = SnapshotName::new(SnapshotKind::Stop, model::now(), &slug("snapaaaa"));
    let snap = h.storage.snapshot(user, &name).await.expect("snapshot");
    assert_eq!(snap.name, name);
    assert_eq!(snap.created_at, name.taken_at());

    write(&ws.host_path.join("model.py"), "v2 overwrote it");
    std::fs::remove_dir_all(ws.host_path.join("data")).expect("rm");
    let read = |file: &str| (h.read_snapshot_file)(&ws, &name, file);
    assert_eq!(read("model.py").expect("in snapshot"), b"v1");
    assert_eq!(read("data/deep/rows.csv").expect("in snapshot"), b"1,2,3");
    assert_eq!(std::fs::read_to_string(ws.host_path.join("model.py")).expect("read"), "v2 overwrote it");

    // A user without a workspace has nothing to snapshot.
    let ghost = UserId::new_random();
    assert!(h.storage.snapshot(ghost, &name).await.is_err());
    assert!(h.storage.list_snapshots(ghost).await.expect("list").is_empty());
}

pub async fn snapshots_list_newest_first_per_user(h: &StorageHarness) {
    let (user, other) = (UserId::new_random(), UserId::new_random());
    h.storage.ensure_workspace(user, None).await.expect("ensure");
    h.storage.ensure_workspace(other, None).await.expect("ensure");
    let t0 = model::now();
    let names = [
        SnapshotName::new(SnapshotKind::Stop, t0, &slug("listaaaa")),
        SnapshotName::new(SnapshotKind::Death, t0 + time::Duration::seconds(1), &slug("listbbbb")),
        SnapshotName::new(SnapshotKind::Stop, t0 + time::Duration::seconds(2), &slug("listcccc")),
    ];
    for n in &names {
        h.storage.snapshot(user, n).await.expect("snapshot");
    }
    let listed = h.storage.list_snapshots(user).await.expect("list");
    let got: Vec<_> = listed.iter().map(|s| s.name.clone()).collect();
    assert_eq!(got, names.iter().rev().cloned().collect::<Vec<_>>());
    assert!(listed.iter().all(|s| s.created_at == s.name.taken_at()));
    assert!(h.storage.list_snapshots(other).await.expect("list").is_empty());
}

pub async fn snapshot_names_are_not_reused(h: &StorageHarness) {
    let user = UserId::new_random();
    let ws = h.storage.ensure_workspace(user, None).await.expect("ensure");
    write(&ws.host_path.join("a.txt"), "first");
    let name = SnapshotName::new(SnapshotKind::Stop, model::now(), &slug("dupedupe"));
    h.storage.snapshot(user, &name).await.expect("snapshot");
    write(&ws.host_path.join("a.txt"), "second");
    assert!(h.storage.snapshot(user, &name).await.is_err(), "a second snapshot under one name");
    assert_eq!((h.read_snapshot_file)(&ws, &name, "a.txt").expect("read"), b"first", "the first one is intact");
    assert_eq!(h.storage.list_snapshots(user).await.expect("list").len(), 1);
}
