//! [`ProcessDirStorage`]: `DirStorage` for sessions that may not run as
//! the session user.

use std::path::PathBuf;

use async_trait::async_trait;
use medforge_core::model::UserId;
use medforge_core::storage::{DirStorage, Snapshot, SnapshotName, Storage, StorageError, Workspace};

/// Workspaces as plain directories, owned by whoever the session processes
/// run as. As root that is the session user, and this is exactly
/// [`DirStorage`] (which gives each workspace to 1000:1000). Without root,
/// [`crate::ProcessRuntime`] runs sessions as the program's own user, and
/// `DirStorage`'s `chown` to 1000:1000 would fail: workspaces are then made
/// by and left to that user. Snapshots are `DirStorage`'s in both cases.
#[derive(Debug, Clone)]
pub struct ProcessDirStorage {
    dirs: DirStorage,
    as_root: bool,
}

impl ProcessDirStorage {
    /// Creates `root` if missing.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        Ok(Self { dirs: DirStorage::new(root)?, as_root: rustix::process::geteuid().is_root() })
    }

    /// The `DirStorage` underneath, for its paths.
    pub fn dirs(&self) -> &DirStorage {
        &self.dirs
    }
}

#[async_trait]
impl Storage for ProcessDirStorage {
    async fn ensure_workspace(&self, user: UserId, quota_bytes: Option<u64>) -> Result<Workspace, StorageError> {
        if self.as_root {
            return self.dirs.ensure_workspace(user, quota_bytes).await;
        }
        let path = self.dirs.workspace_path(user);
        tokio::fs::create_dir_all(&path)
            .await
            .map_err(|e| StorageError::io(format!("create {}", path.display()), e))?;
        Ok(Workspace { name: path.display().to_string(), host_path: path })
    }

    async fn snapshot(&self, user: UserId, name: &SnapshotName) -> Result<Snapshot, StorageError> {
        self.dirs.snapshot(user, name).await
    }

    async fn list_snapshots(&self, user: UserId) -> Result<Vec<Snapshot>, StorageError> {
        self.dirs.list_snapshots(user).await
    }
}
