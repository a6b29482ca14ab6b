//! `infra/zfs/setup.sh` against a real pool: a dry run changes nothing, a
//! run makes the root with its properties, a second run changes nothing,
//! and the result is what `ZfsStorage::connect` accepts.

use std::process::Command;

use medforge_storage_zfs::testing::{TestPool, must, run};
use medforge_storage_zfs::{ZfsConfig, ZfsStorage};

fn setup(args: &[&str]) -> (bool, String, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/zfs/setup.sh");
    let out = Command::new("bash").arg(script).args(args).output().expect("run setup.sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn prop(dataset: &str, name: &str) -> String {
    must("zfs", &["get", "-H", "-o", "value", name, dataset]).trim().to_owned()
}

#[tokio::test]
async fn setup_script_is_idempotent_with_a_dry_run() {
    let pool = TestPool::create(64);
    let root = format!("{}/medforge/workspaces", pool.name);
    let mountpoint = pool.mountpoint.join("ws").display().to_string();

    let (ok, stdout, stderr) = setup(&["--dry-run", "--mountpoint", &mountpoint, &root]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("+ zfs create -p {root}")), "{stdout}");
    assert!(run("zfs", &["list", &root]).is_err(), "a dry run created {root}");

    let (ok, stdout, stderr) = setup(&["--mountpoint", &mountpoint, &root]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("+ zfs create -p"), "{stdout}");
    assert_eq!(prop(&root, "atime"), "off");
    assert_ne!(prop(&root, "compression"), "off");
    assert_eq!(prop(&root, "mountpoint"), mountpoint);
    assert!(stderr.contains("storage.root = \""), "{stderr}");

    let (ok, stdout, stderr) = setup(&["--mountpoint", &mountpoint, &root]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "", "a second run changed something");

    // A property changed by hand is put back, and only that one.
    must("zfs", &["set", "atime=on", &root]);
    let (ok, stdout, _) = setup(&["--mountpoint", &mountpoint, &root]);
    assert!(ok);
    assert_eq!(stdout, format!("+ zfs set atime=off {root}\n"));

    ZfsStorage::connect(ZfsConfig::new(root.parse().expect("root"))).await.expect("the server accepts the result");
    pool.destroy();
}

#[test]
fn setup_script_refuses_bad_names_and_missing_pools() {
    for bad in ["-o", "tank/-o", "tank/../etc", "tank/a b", "tank/a@b", "/tank"] {
        let (ok, stdout, stderr) = setup(&[bad]);
        assert!(!ok, "{bad:?} accepted");
        assert_eq!(stdout, "", "{bad:?} ran {stdout}");
        assert!(stderr.contains("not a dataset name") || stderr.contains("unknown option"), "{bad:?}: {stderr}");
    }
    let (ok, stdout, stderr) = setup(&["mftnosuchpool/medforge"]);
    assert!(!ok);
    assert_eq!(stdout, "");
    assert!(stderr.contains("pool mftnosuchpool does not exist"), "{stderr}");
}
