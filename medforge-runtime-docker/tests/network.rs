//! Internal sessions have no way out. A listener runs in a network
//! namespace of the test's own, joined to the host by a veth pair (never a
//! real outside host); an external session reaches it, an internal one
//! cannot. (Internal containers can still reach the host's own addresses on
//! their bridge: closing that is the firewall's job, not the network's.)

mod common;

use std::process::Command;
use std::sync::Arc;

use medforge_core::model::Exposure;
use medforge_core::storage::DirStorage;
use medforge_core::testing::runtime::RuntimeHarness;

fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

fn must(cmd: &str) {
    let out = sh(cmd);
    assert!(out.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A namespace with one address and an HTTP listener, torn down on drop.
struct OutsideHost {
    ns: String,
    veth: String,
    listener: std::process::Child,
    addr: &'static str,
}

impl OutsideHost {
    fn start(tag: &str) -> Self {
        // 198.18.0.0/15 is reserved for benchmarking; these two addresses
        // exist only on the veth pair this test makes.
        let (host_ip, ns_ip) = ("198.18.77.1", "198.18.77.2");
        let ns = format!("mftest-{tag}");
        let veth = format!("mfv{}", &tag[..6]);
        let _ = sh(&format!("ip netns del {ns} 2>/dev/null; ip link del {veth}a 2>/dev/null"));
        must(&format!("ip netns add {ns}"));
        must(&format!("ip link add {veth}a type veth peer name {veth}b"));
        must(&format!("ip link set {veth}b netns {ns}"));
        must(&format!("ip addr add {host_ip}/30 dev {veth}a && ip link set {veth}a up"));
        must(&format!(
            "ip netns exec {ns} sh -c 'ip addr add {ns_ip}/30 dev {veth}b && ip link set {veth}b up && ip link set lo up \
             && ip route add default via {host_ip}'"
        ));
        let www = std::env::temp_dir().join(format!("{ns}-www"));
        std::fs::create_dir_all(&www).expect("www");
        std::fs::write(www.join("index.html"), "outside world\n").expect("index");
        let listener = Command::new("ip")
            .args(["netns", "exec", &ns, "busybox", "httpd", "-f", "-p", &format!("{ns_ip}:9000"), "-h"])
            .arg(&www)
            .spawn()
            .expect("listener");
        std::thread::sleep(std::time::Duration::from_millis(300));
        Self { ns, veth, listener, addr: "198.18.77.2" }
    }
}

impl Drop for OutsideHost {
    fn drop(&mut self) {
        let _ = self.listener.kill();
        let _ = self.listener.wait();
        let _ = sh(&format!("ip link del {}a; ip netns del {}", self.veth, self.ns));
    }
}

/// From inside a container: does an HTTP request to the outside host get an answer?
fn reaches(container: &str, addr: &str) -> bool {
    let cmd = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} 9000");
    common::docker_exec(container, &["sh", "-c", &cmd]).map(|out| out.contains("outside world")).unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_sessions_cannot_reach_outside_and_external_ones_can() {
    let (run, config) = common::run_config();
    let outside = OutsideHost::start(&run);
    let dir = tempfile::tempdir().expect("tempdir");
    let h = RuntimeHarness::new(
        Arc::new(common::runtime().await),
        common::test_pack_image(),
        config.clone(),
        DirStorage::new(dir.path()).expect("storage"),
        common::docker_exec,
        common::docker_kill,
    );
    let external = h.spec(&h.session(Exposure::External, 0)).await;
    let internal = h.spec(&h.session(Exposure::Internal, 1)).await;
    assert!(internal.network.internal && !external.network.internal);
    let ext = h.runtime.create_and_start(&external).await.expect("external");
    let int = h.runtime.create_and_start(&internal).await.expect("internal");

    // The control: the outside host is reachable at all, from an external session.
    assert!(reaches(&ext.id, outside.addr), "the external session should reach the outside host");
    assert!(!reaches(&int.id, outside.addr), "the internal session reached the outside host");
    let flags = common::docker(&["network", "inspect", "-f", "{{.Internal}}", &config.internal_network]);
    assert_eq!(flags.trim(), "true");

    common::cleanup_run(&run, &config);
    drop(outside);
}
