//! Real ZFS pools for tests (feature `testing`): a pool on a sparse file,
//! with a unique `mft...` name, destroyed by [`TestPool::destroy`]. Needs
//! the zfs-fuse daemon (or kernel ZFS) running, as `scripts/test.sh`
//! arranges; without it every helper panics saying so.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::DatasetName;

/// Where pool files and mountpoints of test pools live. The test script
/// destroys pools named `mft*` left by crashed runs.
pub fn test_dir() -> PathBuf {
    std::env::temp_dir().join("medforge-zfs-test")
}

/// Runs `program args`, panicking with its stderr when it fails.
pub fn must(program: &str, args: &[&str]) -> String {
    match run(program, args) {
        Ok(out) => out,
        Err(e) => panic!("{e} (is zfs-fuse running? scripts/test.sh starts it)"),
    }
}

/// Runs `program args`; `Err` carries the command and its stderr. A
/// command that takes more than two minutes is killed: a wedged zfs-fuse
/// must fail a test, not hang the suite.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["-k", "5", "120", program];
    all.extend_from_slice(args);
    medforge_core::testing::sh("timeout", &all)
}

/// A ZFS pool on a file, for one test. Destroyed when dropped, even by a
/// failing test: a pool left behind with busy mounts can wedge zfs-fuse for
/// every later test. (Drop containers that mount it first.)
///
/// One test pool exists at a time on a host (an exclusive lock on a file,
/// held until the pool is dropped): zfs-fuse was seen to wedge, every
/// mount hanging, when several tests created, unmounted and destroyed
/// pools at once. So ZFS tests take turns; concurrency *within* a test (a
/// user's concurrent first sessions) is still tested.
#[derive(Debug)]
pub struct TestPool {
    pub name: String,
    pub file: PathBuf,
    /// Where the pool's root dataset mounts; children mount below it.
    pub mountpoint: PathBuf,
    destroyed: std::sync::atomic::AtomicBool,
    _turn: std::fs::File,
}

impl TestPool {
    /// A fresh pool of `size_mb` MiB (ZFS needs at least 64).
    pub fn create(size_mb: u64) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let name = format!("mft{}x{}x{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let dir = test_dir();
        std::fs::create_dir_all(&dir).expect("create the test pool directory");
        let turn = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".turn"))
            .expect("open the test pool lock");
        turn.lock().expect("wait for the test pool lock");
        let file = dir.join(format!("{name}.img"));
        let mountpoint = dir.join(&name);
        let f = std::fs::File::create(&file).expect("create the pool file");
        f.set_len(size_mb << 20).expect("size the pool file");
        must("zpool", &["create", "-m", &mountpoint.display().to_string(), &name, &file.display().to_string()]);
        Self { name, file, mountpoint, destroyed: false.into(), _turn: turn }
    }

    /// `<pool>/<relative>`.
    pub fn dataset(&self, relative: &str) -> DatasetName {
        format!("{}/{relative}", self.name).parse().expect("test dataset name")
    }

    /// Reads `file` as it is in `dataset@snapshot`, by cloning the snapshot
    /// (zfs-fuse has no `.zfs/snapshot` directory) and reading the clone.
    pub fn read_snapshot_file(&self, dataset: &str, snapshot: &str, file: &str) -> std::io::Result<Vec<u8>> {
        static CLONES: AtomicU32 = AtomicU32::new(0);
        let clone = format!("{}/read{}", self.name, CLONES.fetch_add(1, Ordering::Relaxed));
        run("zfs", &["clone", &format!("{dataset}@{snapshot}"), &clone]).map_err(std::io::Error::other)?;
        let mountpoint = must("zfs", &["get", "-H", "-o", "value", "mountpoint", &clone]);
        let read = std::fs::read(Path::new(mountpoint.trim()).join(file));
        retry(|| {
            let _ = run("zfs", &["unmount", "-f", &clone]);
            run("zfs", &["destroy", &clone])
        });
        read
    }

    /// The full names of `dataset`'s snapshots.
    pub fn snapshots(&self, dataset: &str) -> Vec<String> {
        must("zfs", &["list", "-H", "-t", "snapshot", "-o", "name", "-d", "1", dataset])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Unmounts every dataset (deepest first: `zpool destroy` says "pool is
    /// busy" otherwise), destroys the pool and removes its file.
    pub fn destroy(&self) {
        if self.destroyed.swap(true, Ordering::SeqCst) {
            return;
        }
        destroy_pool(&self.name);
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_dir_all(&self.mountpoint);
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // No second panic while unwinding.
            if !self.destroyed.swap(true, Ordering::SeqCst) {
                let name = self.name.clone();
                if std::panic::catch_unwind(|| destroy_pool(&name)).is_err() {
                    eprintln!("could not destroy test pool {name}; scripts/test.sh clears it next time");
                }
            }
        } else {
            self.destroy();
        }
    }
}

/// Destroys a pool by name, however it was left.
pub fn destroy_pool(name: &str) {
    let mut datasets: Vec<String> =
        run("zfs", &["list", "-H", "-o", "name", "-r", name]).unwrap_or_default().lines().map(str::to_owned).collect();
    datasets.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for d in &datasets {
        let _ = run("zfs", &["unmount", "-f", d]);
    }
    retry(|| run("zpool", &["destroy", "-f", name]));
}

/// zfs-fuse answers "busy" for a moment after a file on a dataset closes:
/// tries `f` for up to 5 s, then panics with its last error.
fn retry(mut f: impl FnMut() -> Result<String, String>) {
    let mut last = Err(String::new());
    for _ in 0..25 {
        last = f();
        if last.is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{last:?}");
}
