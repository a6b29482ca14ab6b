//! Session isolation proven with real traffic: a real dockerd, containers
//! of the test pack on a real sessions network, each backend's real rules.
//! Every path is tried before the rules (so the test can fail), with them,
//! and after `remove`. The two backends take turns: each compares the whole
//! host ruleset before and after.
//!
//! Both run on a host with bridge netfilter off
//! (`net.bridge.bridge-nf-call-iptables = 0`, as on a fresh host with
//! Docker 27 or newer), where two containers on one network talk past every
//! IP-layer rule: nftables holds anyway (its bridge table), iptables turns
//! the switch on when it applies and `check` fails while it is off.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use medforge_core::firewall::{Firewall, IsolationPolicy};
use medforge_core::runtime::ContainerRuntime;
use medforge_core::testing::bridge_netfilter;
use medforge_core::testing::outside::OutsideHost;
use medforge_core::testing::sh;
use medforge_net_iptables::{Iptables, Nftables};
use medforge_runtime_docker::{DEFAULT_SOCKET, DockerRuntime};
use tokio::io::AsyncWriteExt;

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn must(program: &str, args: &[&str]) -> String {
    sh(program, args).unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

/// The host's ruleset without counters, for before/after comparisons.
fn ruleset() -> String {
    let nft = must("nft", &["list", "ruleset"]);
    nft.lines()
        .map(|l| {
            // `counter packets 12 bytes 3456` changes with traffic.
            match l.find("counter packets") {
                Some(i) => {
                    let rest = &l[i..];
                    let end = rest.find(" bytes ").map(|b| b + 7).unwrap_or(rest.len());
                    let after = rest[end..].split_once(' ').map(|x| x.1).unwrap_or("");
                    format!("{}counter {after}", &l[..i])
                }
                None => l.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Can `container` open a TCP connection to `addr` and get an HTTP 200?
/// (busybox `nc`: the static busybox's `wget` crashes in a scratch image.)
fn reaches(container: &str, addr: &SocketAddr) -> bool {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {} {}", addr.ip(), addr.port());
    sh("docker", &["exec", container, "sh", "-c", &script]).is_ok_and(|out| out.contains(" 200 OK"))
}

async fn host_reaches(addr: SocketAddr) -> bool {
    matches!(tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)))
}

struct Lab {
    network: String,
    other_network: String,
    a: String,
    b: String,
    proxy: String,
    outside: String,
    ips: std::collections::HashMap<String, Ipv4Addr>,
    gateway: Ipv4Addr,
    internet: OutsideHost,
}

impl Lab {
    async fn start(runtime: &DockerRuntime, subnet: u8) -> (Self, medforge_core::firewall::NetworkInfo) {
        let run = medforge_core::model::Slug::generate().to_string();
        let network = format!("mftest-{run}-fw");
        let other_network = format!("mftest-{run}-other");
        let info = runtime.sessions_network(&network, false).await.expect("sessions network");
        must("docker", &["network", "create", "--label", &format!("medforge.test_run={run}"), &other_network]);
        let image = std::env::var("MEDFORGE_TEST_PACK_IMAGE")
            .unwrap_or_else(|_| panic!("MEDFORGE_TEST_PACK_IMAGE is not set: run scripts/test.sh"));
        let mut ips = std::collections::HashMap::new();
        let mut names = Vec::new();
        for (role, net) in [("a", &network), ("b", &network), ("proxy", &network), ("outside", &other_network)] {
            let name = format!("mftest-{run}-{role}");
            must(
                "docker",
                &[
                    "run",
                    "-d",
                    "--name",
                    &name,
                    "--network",
                    net,
                    "--label",
                    &format!("medforge.test_run={run}"),
                    &image,
                ],
            );
            let ip =
                must("docker", &["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &name]);
            ips.insert(name.clone(), ip.trim().parse().expect("ip"));
            names.push(name);
        }
        // Session A also listens on another port than code-server's.
        must("docker", &["exec", "-d", &names[0], "httpd", "-f", "-p", "9000", "-h", "/www"]);
        let gateway =
            must("docker", &["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", &network]);
        let lab = Self {
            network,
            other_network,
            a: names[0].clone(),
            b: names[1].clone(),
            proxy: names[2].clone(),
            outside: names[3].clone(),
            ips,
            gateway: gateway.trim().parse().expect("gateway"),
            internet: {
                let mut host = OutsideHost::start(&run, subnet);
                host.serve_metadata();
                host
            },
        };
        // Wait for the listeners.
        let a8080 = lab.addr(&lab.a, 8080);
        for _ in 0..50 {
            if host_reaches(a8080).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (lab, info)
    }

    fn addr(&self, name: &str, port: u16) -> SocketAddr {
        SocketAddr::from((self.ips[name], port))
    }

    fn stop(&self) {
        for c in [&self.a, &self.b, &self.proxy, &self.outside] {
            let _ = sh("docker", &["rm", "-f", c]);
        }
        let _ = sh("docker", &["network", "rm", &self.network, &self.other_network]);
    }
}

/// A host service on every address (standing for the API listener and the
/// database): answers any connection with a line of HTTP.
async fn host_service() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        }
    });
    (port, task)
}

/// What a session network's traffic looks like; `isolated` says which way.
async fn assert_traffic(lab: &Lab, host_port: u16, isolated: bool) {
    let a = |port| lab.addr(&lab.a, port);
    let open = !isolated;
    assert_eq!(reaches(&lab.b, &a(8080)), open, "session B to session A:8080");
    assert_eq!(reaches(&lab.b, &a(9000)), open, "session B to session A:9000");
    assert_eq!(reaches(&lab.a, &lab.addr(&lab.b, 8080)), open, "session A to session B:8080");
    assert_eq!(reaches(&lab.a, &SocketAddr::from((lab.gateway, host_port))), open, "session A to the host's service");
    assert_eq!(lab.internet.metadata_reached_from(&lab.a), open, "session A to 169.254.169.254");
    // Always allowed: the proxy, the host (the built-in proxy), and the
    // sessions' own way out.
    assert!(reaches(&lab.proxy, &a(8080)), "the proxy to session A:8080");
    assert!(host_reaches(lab.addr(&lab.a, 8080)).await, "the host to session A:8080");
    assert!(host_reaches(lab.addr(&lab.a, 9000)).await, "the host to session A:9000");
    assert!(lab.internet.reached_from(&lab.a), "session A out to the internet");
    // Docker's own isolation keeps other networks out whatever we do; our
    // rules are a second line there.
    assert!(!reaches(&lab.outside, &a(8080)), "another Docker network to session A:8080");
}

/// Which way a backend deals with bridge netfilter being off.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BridgeNetfilter {
    /// It holds without it, and leaves the switch alone.
    NotNeeded,
    /// It turns it on when it applies, and `check` fails while it is off.
    TurnedOn,
}

async fn isolation_holds(firewall: &dyn Firewall, saved: fn() -> String, subnet: u8, bnf: BridgeNetfilter) {
    let _turn = TURN.lock().await;
    let off = bridge_netfilter::Off::new();
    let runtime = DockerRuntime::connect(DEFAULT_SOCKET).await.expect("dockerd: scripts/test.sh starts it");
    let (lab, info) = Lab::start(&runtime, subnet).await;
    let (host_port, service) = host_service().await;
    let policy =
        IsolationPolicy { networks: vec![info], proxy_addrs: vec![lab.ips[&lab.proxy]], allowed_host_ports: vec![] };

    assert_traffic(&lab, host_port, false).await;
    let before = saved();
    let report = firewall.check(&policy).await.expect("check");
    assert!(!report.missing.is_empty(), "nothing applied yet");
    assert_eq!(!report.unmet.is_empty(), bnf == BridgeNetfilter::TurnedOn, "{report:?}");

    firewall.apply(&policy).await.expect("apply");
    let applied = saved();
    assert!(firewall.check(&policy).await.expect("check").is_ok());
    assert_eq!(bridge_netfilter::Off::is_off(), bnf == BridgeNetfilter::NotNeeded, "the switch after apply");
    assert_traffic(&lab, host_port, true).await;
    if bnf == BridgeNetfilter::TurnedOn {
        // Off again behind its back: `check` says so, in words.
        off.again();
        let report = firewall.check(&policy).await.expect("check");
        assert!(!report.is_ok() && report.missing.is_empty(), "{report:?}");
        assert!(report.unmet.iter().any(|u| u.contains("bridge-nf-call-iptables is 0")), "{report:?}");
        firewall.apply(&policy).await.expect("apply turns it on again");
        assert!(firewall.check(&policy).await.expect("check").is_ok());
    }

    // Twice: one copy of each rule.
    firewall.apply(&policy).await.expect("apply again");
    assert_eq!(saved(), applied, "a second apply changed the ruleset");
    assert!(firewall.check(&policy).await.expect("check").is_ok());

    firewall.remove().await.expect("remove");
    assert_eq!(saved(), before, "remove left the ruleset changed");
    assert_traffic(&lab, host_port, false).await;
    firewall.remove().await.expect("remove twice is fine");

    service.abort();
    lab.stop();
    drop(off);
}

fn iptables_save() -> String {
    must("iptables-save", &["-t", "filter"])
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.find(" [") {
            Some(i) if l.starts_with(':') => l[..i].to_owned(),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nftables_isolates_sessions_and_removes_exactly_what_it_added() {
    let table = format!("medforge_test_{}", medforge_core::model::Slug::generate());
    isolation_holds(&Nftables::with_table(table), ruleset, 78, BridgeNetfilter::NotNeeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iptables_isolates_sessions_and_removes_exactly_what_it_added() {
    isolation_holds(&Iptables::default(), iptables_save, 79, BridgeNetfilter::TurnedOn).await;
    // Docker's own rules were left alone: its chains are all still there.
    let saved = iptables_save();
    for chain in [":DOCKER-USER", ":DOCKER ", ":DOCKER-ISOLATION-STAGE-1"] {
        assert!(saved.contains(chain.trim_end()), "{chain} is gone:\n{saved}");
    }
}
