//! MedForge's [`Storage`] on ZFS: a dataset per user, `<root>/<user_id>`,
//! with an optional quota, and a snapshot `<dataset>@stop-<unixms>-<slug>`
//! on every stop (`@death-...` when the container died).
//!
//! It runs the `zfs` command rather than binding libzfs: libzfs has no
//! stable ABI across OpenZFS releases, and the command's output is what
//! admins read too (docs/decisions.md). Every argument is built by the pure
//! functions of [`command`] from validated [`DatasetName`]s and
//! [`SnapshotName`]s, so nothing a user controls reaches the command line
//! unchecked.
//!
//! ```text
//! let zfs = ZfsStorage::connect(ZfsConfig::new("tank/medforge/workspaces".parse()?)).await?;
//! let ws = zfs.ensure_workspace(user_id, Some(50 << 30)).await?;   // bind-mount ws.host_path
//! ```

pub mod command;
pub mod dataset;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use medforge_core::model::UserId;
use medforge_core::storage::{SESSION_GID, SESSION_UID, Snapshot, SnapshotName, Storage, StorageError, Workspace};

pub use crate::command::Zfs;
pub use crate::dataset::{DatasetName, InvalidDatasetName};

/// How to reach ZFS.
#[derive(Debug, Clone)]
pub struct ZfsConfig {
    /// The parent of every workspace, e.g. `tank/medforge/workspaces`;
    /// made by `infra/zfs/setup.sh`, never by the server.
    pub root: DatasetName,
    /// The `zfs` binary (default: `zfs` on `PATH`).
    pub zfs_command: PathBuf,
    /// The longest any one `zfs` command may take.
    pub command_timeout: Duration,
}

impl ZfsConfig {
    pub fn new(root: DatasetName) -> Self {
        Self { root, zfs_command: PathBuf::from("zfs"), command_timeout: Duration::from_secs(60) }
    }
}

/// Why [`ZfsStorage::connect`] refused: each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("ZFS pool {pool:?} does not exist ({stderr}); create it, then run infra/zfs/setup.sh")]
    PoolMissing { pool: String, stderr: String },
    #[error("ZFS dataset {root:?} does not exist ({stderr}); create it with infra/zfs/setup.sh")]
    RootMissing { root: String, stderr: String },
    #[error(
        "ZFS dataset {root:?} has mountpoint {mountpoint:?}; workspaces need a directory: `zfs set mountpoint=/<path> {root}`"
    )]
    NotMounted { root: String, mountpoint: String },
    #[error("ZFS: {0}")]
    Zfs(#[from] StorageError),
}

/// Workspaces as ZFS datasets. See the crate documentation.
#[derive(Debug, Clone)]
pub struct ZfsStorage {
    root: DatasetName,
    zfs: Zfs,
}

/// What `zfs get` says about a workspace dataset.
#[derive(Debug)]
struct DatasetState {
    mountpoint: String,
    mounted: bool,
    /// 0: no quota.
    quota: u64,
}

impl ZfsStorage {
    /// Checks that the pool and the root dataset exist and that the root
    /// mounts somewhere (workspaces inherit its mountpoint), and returns
    /// the storage. Never creates anything: that is `infra/zfs/setup.sh`'s
    /// job, where an admin sees what is made.
    pub async fn connect(config: ZfsConfig) -> Result<Self, ConnectError> {
        let storage = Self { zfs: Zfs::new(config.zfs_command, config.command_timeout), root: config.root };
        storage.check_root().await?;
        Ok(storage)
    }

    /// What [`ZfsStorage::connect`] checks, for `medforge doctor` too.
    pub async fn check_root(&self) -> Result<(), ConnectError> {
        if let Err(e) = self.zfs.run(command::exists(&self.root)).await {
            let Some(stderr) = missing_dataset(&e) else { return Err(e.into()) };
            let pool: DatasetName = self
                .root
                .pool()
                .parse()
                .map_err(|e: InvalidDatasetName| ConnectError::Zfs(StorageError::InvalidName(e.to_string())))?;
            return Err(match self.zfs.run(command::exists(&pool)).await {
                Ok(_) => ConnectError::RootMissing { root: self.root.to_string(), stderr: stderr.to_owned() },
                Err(e) => match missing_dataset(&e) {
                    Some(stderr) => ConnectError::PoolMissing { pool: pool.to_string(), stderr: stderr.to_owned() },
                    None => e.into(),
                },
            });
        }
        let state = self.state(&self.root).await?;
        if !state.mountpoint.starts_with('/') {
            return Err(ConnectError::NotMounted { root: self.root.to_string(), mountpoint: state.mountpoint });
        }
        Ok(())
    }

    pub fn root(&self) -> &DatasetName {
        &self.root
    }

    /// The user's dataset, `<root>/<user_id>`.
    pub fn dataset(&self, user: UserId) -> Result<DatasetName, StorageError> {
        self.root.child(&user.to_string()).map_err(|e| StorageError::InvalidName(e.to_string()))
    }

    async fn state(&self, dataset: &DatasetName) -> Result<DatasetState, StorageError> {
        let out = self.zfs.run(command::get_state(dataset)).await?;
        let (mut mountpoint, mut mounted, mut quota) = (None, None, None);
        for line in out.stdout.lines() {
            match line.split_once('\t') {
                Some(("mountpoint", v)) => mountpoint = Some(v.to_owned()),
                Some(("mounted", v)) => mounted = Some(v == "yes"),
                // `-p` prints bytes; zfs-fuse prints `none` for no quota on
                // some datasets, OpenZFS prints 0.
                Some(("quota", v)) => quota = Some(if v == "none" || v == "-" { 0 } else { v.parse().unwrap_or(0) }),
                _ => {}
            }
        }
        match (mountpoint, mounted, quota) {
            (Some(mountpoint), Some(mounted), Some(quota)) => Ok(DatasetState { mountpoint, mounted, quota }),
            _ => Err(StorageError::Command {
                command: self.zfs.display(&command::get_state(dataset)),
                status: "unexpected output".into(),
                stderr: out.stdout,
            }),
        }
    }

    /// Creates the dataset, tolerating a concurrent creation by another
    /// start of the same user's sessions.
    async fn create(&self, dataset: &DatasetName, quota_bytes: Option<u64>) -> Result<DatasetState, StorageError> {
        if let Err(e) = self.zfs.run(command::create(dataset, quota_bytes)).await {
            match self.state(dataset).await {
                Ok(state) => return Ok(state),
                Err(_) => return Err(e),
            }
        }
        tracing::info!(dataset = %dataset, quota_bytes, "created a workspace dataset");
        self.state(dataset).await
    }
}

/// The stderr of a "dataset does not exist" failure.
fn missing_dataset(e: &StorageError) -> Option<&str> {
    match e {
        StorageError::Command { stderr, .. } if stderr.contains("does not exist") => Some(stderr),
        _ => None,
    }
}

#[async_trait]
impl Storage for ZfsStorage {
    async fn ensure_workspace(&self, user: UserId, quota_bytes: Option<u64>) -> Result<Workspace, StorageError> {
        let dataset = self.dataset(user)?;
        let state = match self.state(&dataset).await {
            Ok(state) => state,
            Err(e) if missing_dataset(&e).is_some() => self.create(&dataset, quota_bytes).await?,
            Err(e) => return Err(e),
        };
        // The quota follows the config (and the user's override) on every
        // start; `None` leaves whatever an admin set by hand.
        if let Some(quota) = quota_bytes
            && quota != state.quota
        {
            self.zfs.run(command::set_quota(&dataset, quota)).await?;
            tracing::info!(dataset = %dataset, from = state.quota, to = quota, "workspace quota changed");
        }
        if !state.mountpoint.starts_with('/') {
            return Err(StorageError::Misconfigured(format!(
                "dataset {dataset} has mountpoint {:?}, so it cannot be bind-mounted; set one on {}",
                state.mountpoint, self.root
            )));
        }
        // An unmounted dataset's mountpoint is an empty directory on the
        // parent: a session would write there, outside the dataset.
        if !state.mounted
            && let Err(e) = self.zfs.run(command::mount(&dataset)).await
        {
            // A concurrent start of the same user's may have mounted it.
            if !self.state(&dataset).await.is_ok_and(|s| s.mounted) {
                return Err(e);
            }
        }
        let path = PathBuf::from(&state.mountpoint);
        let dir = path.clone();
        tokio::task::spawn_blocking(move || own_by_session_user(&dir))
            .await
            .map_err(|e| StorageError::io("storage task", std::io::Error::other(e.to_string())))??;
        Ok(Workspace { host_path: path, name: dataset.to_string() })
    }

    async fn snapshot(&self, user: UserId, name: &SnapshotName) -> Result<Snapshot, StorageError> {
        let dataset = self.dataset(user)?;
        let full = dataset.at(name.as_str()).map_err(|e| StorageError::InvalidName(e.to_string()))?;
        match self.zfs.run(command::snapshot(&full)).await {
            Ok(_) => {
                tracing::info!(snapshot = %full, "workspace snapshot taken");
                Ok(Snapshot { name: name.clone(), created_at: name.taken_at() })
            }
            Err(StorageError::Command { stderr, .. }) if stderr.contains("already exists") => {
                Err(StorageError::SnapshotExists(full))
            }
            Err(e) => Err(e),
        }
    }

    async fn list_snapshots(&self, user: UserId) -> Result<Vec<Snapshot>, StorageError> {
        let dataset = self.dataset(user)?;
        let out = match self.zfs.run(command::list_snapshots(&dataset)).await {
            Ok(out) => out,
            Err(e) if missing_dataset(&e).is_some() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let prefix = format!("{dataset}@");
        // Snapshots an admin took by hand under other names are theirs:
        // only ours are listed.
        let mut snapshots: Vec<Snapshot> = out
            .stdout
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix)?.parse::<SnapshotName>().ok())
            .map(|name| Snapshot { created_at: name.taken_at(), name })
            .collect();
        snapshots.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.name.cmp(&a.name)));
        Ok(snapshots)
    }
}

/// A new dataset's root belongs to root; sessions run as 1000:1000. Only
/// the top directory is changed, and only when it is not already theirs.
fn own_by_session_user(dir: &std::path::Path) -> Result<(), StorageError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).map_err(|e| StorageError::io(format!("stat {}", dir.display()), e))?;
    if (meta.uid(), meta.gid()) != (SESSION_UID, SESSION_GID) {
        std::os::unix::fs::chown(dir, Some(SESSION_UID), Some(SESSION_GID))
            .map_err(|e| StorageError::io(format!("chown {} to {SESSION_UID}:{SESSION_GID}", dir.display()), e))?;
    }
    Ok(())
}
