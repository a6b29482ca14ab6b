//! Workspaces: the `Storage` trait and `DirStorage`, its plain-directory
//! implementation (the default; ZFS lives in `medforge-storage-zfs`).
//!
//! A workspace is one per user, mounted at `/workspace` in every session of
//! that user and owned by the session user (1000:1000). A snapshot is taken
//! on every stop (`stop-<unixms>-<slug>`) and on a container's death
//! (`death-<unixms>-<slug>`), so an admin can roll a user back.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use crate::model::{self, ParseError, Slug, UserId};

/// The uid and gid sessions run as, and so the owner of every workspace.
pub const SESSION_UID: u32 = 1000;
pub const SESSION_GID: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("workspace of user {0} does not exist")]
    NoWorkspace(UserId),
    #[error("snapshot {0} already exists")]
    SnapshotExists(String),
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The backend is set up in a way it cannot work with (a dataset with
    /// no mountpoint, say); the message says what to fix.
    #[error("{0}")]
    Misconfigured(String),
    /// A command (e.g. `zfs`) failed: what ran, how it ended, what it said.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }
}

/// A user's workspace as a runtime mounts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The host directory bind-mounted at `/workspace`.
    pub host_path: PathBuf,
    /// What the session row records in `workspace_zfs`: the dataset name on
    /// ZFS, the directory on `DirStorage`.
    pub name: String,
}

/// Why a snapshot was taken; the first part of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    Stop,
    Death,
}

impl SnapshotKind {
    fn prefix(self) -> &'static str {
        match self {
            SnapshotKind::Stop => "stop",
            SnapshotKind::Death => "death",
        }
    }
}

/// A snapshot name, `<kind>-<unixms>-<slug>`: built from trusted parts or
/// parsed strictly, so it is always safe on a command line or in a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct SnapshotName {
    text: String,
    kind: SnapshotKind,
    at_ms: i64,
}

impl SnapshotName {
    pub fn new(kind: SnapshotKind, at: OffsetDateTime, slug: &Slug) -> Self {
        let at_ms = model::to_unix_ms(at).max(0);
        Self { text: format!("{}-{at_ms}-{slug}", kind.prefix()), kind, at_ms }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn kind(&self) -> SnapshotKind {
        self.kind
    }

    /// When it was taken, from the name itself.
    pub fn taken_at(&self) -> OffsetDateTime {
        model::from_unix_ms(self.at_ms)
    }
}

impl FromStr for SnapshotName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseError { what: "snapshot name", reason: format!("{s:?} is not <stop|death>-<unixms>-<slug>") };
        let (kind, rest) = match s.split_once('-') {
            Some(("stop", rest)) => (SnapshotKind::Stop, rest),
            Some(("death", rest)) => (SnapshotKind::Death, rest),
            _ => return Err(bad()),
        };
        let (ms, slug) = rest.split_once('-').ok_or_else(bad)?;
        if ms.is_empty() || ms.len() > 15 || !ms.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let at_ms: i64 = ms.parse().map_err(|_| bad())?;
        let slug: Slug = slug.parse().map_err(|_| bad())?;
        let name = Self::new(kind, model::from_unix_ms(at_ms), &slug);
        // Reject non-canonical spellings (leading zeros) so names round-trip.
        if name.text != s {
            return Err(bad());
        }
        Ok(name)
    }
}

impl From<SnapshotName> for String {
    fn from(n: SnapshotName) -> String {
        n.text
    }
}

impl fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A snapshot as the snapshots route lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub name: SnapshotName,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Where workspaces live. Implementations: [`DirStorage`] here, ZFS in
/// `medforge-storage-zfs`; both pass `testing::storage_contract_tests!`.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates the user's workspace if missing (owned 1000:1000, with the
    /// quota where the backend has quotas) and returns it. Idempotent.
    async fn ensure_workspace(&self, user: UserId, quota_bytes: Option<u64>) -> Result<Workspace, StorageError>;

    /// Takes a read-only, point-in-time copy of the user's workspace.
    async fn snapshot(&self, user: UserId, name: &SnapshotName) -> Result<Snapshot, StorageError>;

    /// The user's snapshots, newest first. No workspace: an empty list.
    async fn list_snapshots(&self, user: UserId) -> Result<Vec<Snapshot>, StorageError>;
}

/// Workspaces as plain directories: `<root>/<user_id>`, and snapshots as
/// read-only copies in `<root>/.snapshots/<user_id>/<name>`, outside the
/// workspace so that a session cannot touch them. No quotas.
#[derive(Debug, Clone)]
pub struct DirStorage {
    root: PathBuf,
}

impl DirStorage {
    /// Creates `root` if missing. A relative `root` is taken against the
    /// working directory now: runtimes bind-mount workspaces and need
    /// absolute paths (Docker refuses a relative one).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        let root =
            std::path::absolute(&root).map_err(|e| StorageError::io(format!("resolve {}", root.display()), e))?;
        std::fs::create_dir_all(&root).map_err(|e| StorageError::io(format!("create {}", root.display()), e))?;
        Ok(Self { root })
    }

    pub fn workspace_path(&self, user: UserId) -> PathBuf {
        self.root.join(user.to_string())
    }

    /// Where a snapshot's files are.
    pub fn snapshot_path(&self, user: UserId, name: &SnapshotName) -> PathBuf {
        self.snapshots_dir(user).join(name.as_str())
    }

    fn snapshots_dir(&self, user: UserId) -> PathBuf {
        self.root.join(".snapshots").join(user.to_string())
    }
}

#[async_trait]
impl Storage for DirStorage {
    async fn ensure_workspace(&self, user: UserId, quota_bytes: Option<u64>) -> Result<Workspace, StorageError> {
        if quota_bytes.is_some() {
            tracing::debug!(user_id = %user, "DirStorage has no quotas; ignoring the configured quota");
        }
        let path = self.workspace_path(user);
        let dir = path.clone();
        run_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(format!("create {}", dir.display()), e))?;
            std::os::unix::fs::chown(&dir, Some(SESSION_UID), Some(SESSION_GID))
                .map_err(|e| StorageError::io(format!("chown {} to {SESSION_UID}:{SESSION_GID}", dir.display()), e))
        })
        .await?;
        Ok(Workspace { name: path.display().to_string(), host_path: path })
    }

    async fn snapshot(&self, user: UserId, name: &SnapshotName) -> Result<Snapshot, StorageError> {
        let source = self.workspace_path(user);
        let target = self.snapshot_path(user, name);
        let parent = self.snapshots_dir(user);
        let taken = name.clone();
        run_blocking(move || {
            if !source.is_dir() {
                return Err(StorageError::NoWorkspace(user));
            }
            if target.exists() {
                return Err(StorageError::SnapshotExists(taken.to_string()));
            }
            std::fs::create_dir_all(&parent)
                .map_err(|e| StorageError::io(format!("create {}", parent.display()), e))?;
            // Copy into a temporary name first, so that a half-made copy is
            // never listed as a snapshot.
            let partial = parent.join(format!(".partial-{taken}"));
            let _ = std::fs::remove_dir_all(&partial);
            copy_tree(&source, &partial)?;
            make_read_only(&partial)?;
            std::fs::rename(&partial, &target)
                .map_err(|e| StorageError::io(format!("rename {} to {}", partial.display(), target.display()), e))
        })
        .await?;
        Ok(Snapshot { created_at: name.taken_at(), name: name.clone() })
    }

    async fn list_snapshots(&self, user: UserId) -> Result<Vec<Snapshot>, StorageError> {
        let dir = self.snapshots_dir(user);
        run_blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(StorageError::io(format!("read {}", dir.display()), e)),
            };
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| StorageError::io(format!("read {}", dir.display()), e))?;
                // Anything that is not a snapshot name (a partial copy) is skipped.
                if let Some(name) = entry.file_name().to_str().and_then(|n| n.parse::<SnapshotName>().ok()) {
                    out.push(Snapshot { created_at: name.taken_at(), name });
                }
            }
            out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.name.cmp(&a.name)));
            Ok(out)
        })
        .await
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::io("storage task", std::io::Error::other(e.to_string())))?
}

/// Copies a directory tree: files with their mode and owner, symlinks as
/// symlinks (never followed: a link in a workspace may point anywhere).
fn copy_tree(from: &Path, to: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::MetadataExt;
    let io = |what: &str, p: &Path| {
        let context = format!("{what} {}", p.display());
        move |e| StorageError::io(context, e)
    };
    let meta = std::fs::symlink_metadata(from).map_err(io("stat", from))?;
    std::fs::create_dir(to).map_err(io("create", to))?;
    std::fs::set_permissions(to, meta.permissions()).map_err(io("chmod", to))?;
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid())).map_err(io("chown", to))?;
    for entry in std::fs::read_dir(from).map_err(io("read", from))? {
        let entry = entry.map_err(io("read", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let m = std::fs::symlink_metadata(&src).map_err(io("stat", &src))?;
        if m.file_type().is_symlink() {
            let target = std::fs::read_link(&src).map_err(io("readlink", &src))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(io("symlink", &dst))?;
        } else if m.is_dir() {
            copy_tree(&src, &dst)?;
            continue;
        } else if m.is_file() {
            std::fs::copy(&src, &dst).map_err(io("copy", &src))?;
        } else {
            // Sockets, fifos and devices are not workspace content.
            continue;
        }
        std::os::unix::fs::lchown(&dst, Some(m.uid()), Some(m.gid())).map_err(io("chown", &dst))?;
    }
    Ok(())
}

/// Clears every write bit below `root` (symlinks have no mode of their own).
fn make_read_only(root: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(root).map_err(|e| StorageError::io(format!("stat {}", root.display()), e))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(root).map_err(|e| StorageError::io(format!("read {}", root.display()), e))? {
            let entry = entry.map_err(|e| StorageError::io(format!("read {}", root.display()), e))?;
            make_read_only(&entry.path())?;
        }
    }
    let mode = meta.permissions().mode() & !0o222;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode))
        .map_err(|e| StorageError::io(format!("chmod {}", root.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_are_built_and_parsed_strictly() {
        let slug: Slug = "abcdefgh".parse().expect("slug");
        let at = model::from_unix_ms(1_700_000_000_123);
        let n = SnapshotName::new(SnapshotKind::Stop, at, &slug);
        assert_eq!(n.as_str(), "stop-1700000000123-abcdefgh");
        assert_eq!(n.taken_at(), at);
        assert_eq!("stop-1700000000123-abcdefgh".parse::<SnapshotName>().as_ref(), Ok(&n));
        let d: SnapshotName = "death-5-zzzzzzzz".parse().expect("death");
        assert_eq!(d.kind(), SnapshotKind::Death);
        for bad in [
            "",
            "stop",
            "stop-1-abc",
            "stop--abcdefgh",
            "stop-01-abcdefgh",
            "stop-1-abcdefgh-x",
            "start-1-abcdefgh",
            "stop-1-ABCDEFGH",
            "stop-1-abcdefgh;rm",
            "stop-1-../../etc",
            "stop-9999999999999999-abcdefgh",
        ] {
            assert!(bad.parse::<SnapshotName>().is_err(), "{bad:?} accepted");
        }
    }

    /// A relative root is resolved once, against the working directory
    /// (tests run in the crate's directory; this one writes under target/).
    #[test]
    fn a_relative_root_gives_absolute_workspaces() {
        let relative = PathBuf::from(format!("../target/dirstorage-relative-{}", std::process::id()));
        let storage = DirStorage::new(&relative).expect("storage");
        let user = UserId::new_random();
        let path = storage.workspace_path(user);
        let expected = std::env::current_dir().expect("cwd").join(&relative).join(user.to_string());
        std::fs::remove_dir_all(&relative).expect("clean up");
        assert!(path.is_absolute(), "{}", path.display());
        assert_eq!(path, expected);
    }
}
