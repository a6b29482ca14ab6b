//! A stand-in for "the internet": a network namespace of the test's own,
//! joined to the host by a veth pair, with an HTTP listener on port 9000
//! that answers `outside world`. Containers reach it the way they reach
//! anything off their bridge: routed and masqueraded by the host. Needs
//! root and iproute2 (`scripts/test.sh` runs as root).

use std::process::{Child, Command, Output};

fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

fn must(cmd: &str) {
    let out = sh(cmd);
    assert!(out.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The namespace and its listener, torn down on drop.
#[derive(Debug)]
pub struct OutsideHost {
    ns: String,
    veth: String,
    listener: Child,
    metadata: Option<Child>,
    /// The listener's address (port 9000).
    pub addr: String,
}

impl OutsideHost {
    /// `tag` makes names unique (at least 6 characters); `subnet` is the
    /// third octet of `198.18.<subnet>.0/30` (198.18.0.0/15 is reserved for
    /// benchmarking: these addresses exist only on this veth pair), so
    /// tests that run at once pick different ones.
    pub fn start(tag: &str, subnet: u8) -> Self {
        let (host_ip, ns_ip) = (format!("198.18.{subnet}.1"), format!("198.18.{subnet}.2"));
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
        Self { ns, veth, listener, metadata: None, addr: ns_ip }
    }

    /// Also answers as a cloud's metadata service at 169.254.169.254:80,
    /// routed from the host to this namespace (the route goes with the
    /// veth). One at a time per host: tests that use it take turns.
    pub fn serve_metadata(&mut self) {
        let (ns, veth) = (&self.ns, &self.veth);
        must(&format!("ip netns exec {ns} ip addr add 169.254.169.254/32 dev {veth}b"));
        must(&format!("ip route replace 169.254.169.254/32 via {} dev {veth}a", self.addr));
        let www = std::env::temp_dir().join(format!("{ns}-www"));
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "busybox", "httpd", "-f", "-p", "169.254.169.254:80", "-h"])
            .arg(&www)
            .spawn()
            .expect("metadata listener");
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.metadata = Some(child);
    }

    /// From inside `container`: does a request reach the metadata address?
    pub fn metadata_reached_from(&self, container: &str) -> bool {
        answered("docker", container, "169.254.169.254", 80)
    }

    /// From inside `container` (by id or name): does a request reach it?
    pub fn reached_from(&self, container: &str) -> bool {
        answered("docker", container, &self.addr, 9000)
    }

    /// The same, for a container of another engine (`podman`).
    pub fn reached_from_engine(&self, engine: &str, container: &str) -> bool {
        answered(engine, container, &self.addr, 9000)
    }
}

/// An HTTP GET from inside `container` (run by `engine`'s CLI) to
/// `addr:port` got this host's page.
fn answered(engine: &str, container: &str, addr: &str, port: u16) -> bool {
    let cmd = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {port}");
    Command::new(engine)
        .args(["exec", container, "sh", "-c", &cmd])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("outside world"))
}

impl Drop for OutsideHost {
    fn drop(&mut self) {
        let _ = self.listener.kill();
        let _ = self.listener.wait();
        if let Some(mut m) = self.metadata.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
        let _ = sh(&format!("ip link del {}a; ip netns del {}", self.veth, self.ns));
    }
}
