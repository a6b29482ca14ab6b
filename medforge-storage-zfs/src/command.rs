//! The `zfs` command: argument lists built by pure functions (unit tested
//! below, and the only way arguments are made), and a runner that turns a
//! failure into an error carrying the command, its exit status and its
//! stderr.
//!
//! Only flags that both OpenZFS and zfs-fuse (our test machines) accept are
//! used: no `-p` on `zfs list`, for one.

use std::path::PathBuf;
use std::time::Duration;

use medforge_core::process;
use medforge_core::storage::StorageError;

use crate::dataset::DatasetName;

/// `zfs list -H -o name <dataset>`: fails when it does not exist.
pub fn exists(dataset: &DatasetName) -> Vec<String> {
    owned(["list", "-H", "-o", "name", dataset.as_str()])
}

/// `zfs get -H -p -o property,value mountpoint,mounted,quota <dataset>`:
/// what `ensure_workspace` needs to know, in one call.
pub fn get_state(dataset: &DatasetName) -> Vec<String> {
    owned(["get", "-H", "-p", "-o", "property,value", "mountpoint,mounted,quota", dataset.as_str()])
}

/// `zfs create -p [-o quota=<bytes>] <dataset>`.
pub fn create(dataset: &DatasetName, quota_bytes: Option<u64>) -> Vec<String> {
    let mut args = owned(["create", "-p"]);
    if let Some(q) = quota_bytes {
        args.extend(owned(["-o".to_owned(), quota_property(q)]));
    }
    args.push(dataset.to_string());
    args
}

/// `zfs set quota=<bytes> <dataset>`.
pub fn set_quota(dataset: &DatasetName, quota_bytes: u64) -> Vec<String> {
    owned(["set".to_owned(), quota_property(quota_bytes), dataset.to_string()])
}

/// `zfs mount <dataset>`.
pub fn mount(dataset: &DatasetName) -> Vec<String> {
    owned(["mount", dataset.as_str()])
}

/// `zfs snapshot <dataset>@<name>`.
pub fn snapshot(full_name: &str) -> Vec<String> {
    owned(["snapshot", full_name])
}

/// `zfs list -H -t snapshot -o name -d 1 <dataset>`: the dataset's own
/// snapshots, one full name per line.
pub fn list_snapshots(dataset: &DatasetName) -> Vec<String> {
    owned(["list", "-H", "-t", "snapshot", "-o", "name", "-d", "1", dataset.as_str()])
}

/// A quota of 0 means none: ZFS reads `quota=0` as "no quota", and so do we.
fn quota_property(bytes: u64) -> String {
    if bytes == 0 { "quota=none".to_owned() } else { format!("quota={bytes}") }
}

fn owned<S: Into<String>>(parts: impl IntoIterator<Item = S>) -> Vec<String> {
    parts.into_iter().map(Into::into).collect()
}

/// Runs the `zfs` binary (through `medforge_core::process`: no shell,
/// `LC_ALL=C`, a time limit, so a wedged ZFS cannot hang a stop for ever).
#[derive(Debug, Clone)]
pub struct Zfs {
    program: PathBuf,
    timeout: Duration,
}

/// What a successful command printed.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
}

impl Zfs {
    pub fn new(program: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self { program: program.into(), timeout }
    }

    /// How the command reads in an error message or a log line.
    pub fn display(&self, args: &[String]) -> String {
        process::display(self.program.as_os_str(), args)
    }

    pub async fn run(&self, args: Vec<String>) -> Result<Output, StorageError> {
        tracing::debug!(command = %self.display(&args), "running zfs");
        match process::run(self.program.as_os_str(), &args, None, self.timeout).await {
            Ok(stdout) => Ok(Output { stdout }),
            Err(f) if f.status.starts_with("could not start") => Err(StorageError::io(
                format!("run `{}` (is ZFS installed?)", f.command),
                std::io::Error::other(f.status),
            )),
            Err(f) => {
                tracing::debug!(command = %f.command, status = %f.status, stderr = %f.stderr, "zfs failed");
                Err(StorageError::Command { command: f.command, status: f.status, stderr: f.stderr })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(s: &str) -> DatasetName {
        s.parse().expect("dataset")
    }

    #[test]
    fn arguments_are_what_zfs_expects() {
        let d = ds("tank/medforge/workspaces/u1");
        assert_eq!(exists(&d), ["list", "-H", "-o", "name", "tank/medforge/workspaces/u1"]);
        assert_eq!(
            get_state(&d),
            ["get", "-H", "-p", "-o", "property,value", "mountpoint,mounted,quota", "tank/medforge/workspaces/u1"]
        );
        assert_eq!(create(&d, None), ["create", "-p", "tank/medforge/workspaces/u1"]);
        assert_eq!(
            create(&d, Some(10 << 30)),
            ["create", "-p", "-o", "quota=10737418240", "tank/medforge/workspaces/u1"]
        );
        assert_eq!(set_quota(&d, 5), ["set", "quota=5", "tank/medforge/workspaces/u1"]);
        assert_eq!(set_quota(&d, 0), ["set", "quota=none", "tank/medforge/workspaces/u1"]);
        assert_eq!(mount(&d), ["mount", "tank/medforge/workspaces/u1"]);
        let full = d.at("stop-1700000000000-abcdefgh").expect("at");
        assert_eq!(snapshot(&full), ["snapshot", "tank/medforge/workspaces/u1@stop-1700000000000-abcdefgh"]);
        assert_eq!(
            list_snapshots(&d),
            ["list", "-H", "-t", "snapshot", "-o", "name", "-d", "1", "tank/medforge/workspaces/u1"]
        );
    }

    #[test]
    fn no_argument_after_the_subcommand_starts_with_a_dash_unless_it_is_ours() {
        // Every dataset-bearing argument is last, and dataset names cannot
        // start with `-`: so user data never reads as an option.
        let d = ds("tank/x");
        for args in [exists(&d), get_state(&d), create(&d, Some(1)), set_quota(&d, 1), mount(&d), list_snapshots(&d)] {
            assert_eq!(args.last().map(String::as_str), Some("tank/x"));
        }
    }

    #[tokio::test]
    async fn failures_carry_the_command_status_and_stderr() {
        let sh = Zfs::new("/bin/sh", Duration::from_secs(5));
        let err = sh
            .run(vec!["-c".into(), "echo 'cannot open x: dataset does not exist' >&2; exit 1".into()])
            .await
            .expect_err("fails");
        match err {
            StorageError::Command { command, status, stderr } => {
                assert!(command.starts_with("/bin/sh -c echo"), "{command}");
                assert!(status.contains('1'), "{status}");
                assert_eq!(stderr, "cannot open x: dataset does not exist");
            }
            other => panic!("unexpected {other:?}"),
        }
        let slow = Zfs::new("/bin/sleep", Duration::from_millis(200));
        let err = slow.run(vec!["5".into()]).await.expect_err("times out");
        assert!(err.to_string().contains("timed out"), "{err}");
        let missing = Zfs::new("/nonexistent/zfs", Duration::from_secs(1));
        let err = missing.run(vec!["list".into()]).await.expect_err("no binary");
        assert!(err.to_string().contains("is ZFS installed?"), "{err}");
        let ok = sh.run(vec!["-c".into(), "echo hi".into()]).await.expect("runs");
        assert_eq!(ok.stdout, "hi\n");
    }
}
