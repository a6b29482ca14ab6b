//! Bridge netfilter: whether frames bridged between two containers on one
//! network are shown to the IP-layer rules at all. They are only while the
//! `br_netfilter` module is loaded and `net.bridge.bridge-nf-call-iptables`
//! is 1; Docker loads the module only when it needs it (27 and later), so
//! on a fresh host two sessions on one network pass every IP-layer rule.
//!
//! The iptables backend's rules are IP-layer rules only, so it turns the
//! switch on when it applies (loading the module if it must) and reports
//! it as unmet when it is off. (The nftables backend needs neither: its
//! bridge table sees the frames themselves.)

use std::path::PathBuf;

use medforge_core::firewall::FirewallError;

use crate::run;

/// The switch, as a file under `/proc/sys/net/bridge`.
const SWITCH: &str = "bridge-nf-call-iptables";

/// Bridge netfilter's switch on this host (or under another root, for tests).
#[derive(Debug, Clone)]
pub struct BridgeNetfilter {
    /// `/proc/sys/net/bridge`: there only while the module is loaded.
    dir: PathBuf,
    modprobe: String,
}

impl Default for BridgeNetfilter {
    fn default() -> Self {
        Self { dir: PathBuf::from("/proc/sys/net/bridge"), modprobe: "modprobe".into() }
    }
}

impl BridgeNetfilter {
    /// The switch under `dir` instead, loaded by `modprobe` (a script).
    pub fn at(dir: impl Into<PathBuf>, modprobe: impl Into<String>) -> Self {
        Self { dir: dir.into(), modprobe: modprobe.into() }
    }

    fn file(&self) -> PathBuf {
        self.dir.join(SWITCH)
    }

    /// Whether the switch is on; why not, in words.
    pub fn unmet(&self) -> Option<String> {
        match std::fs::read_to_string(self.file()) {
            Ok(v) if v.trim() == "1" => None,
            Ok(v) => Some(format!(
                "net.bridge.{SWITCH} is {}: sessions on one network reach each other past the iptables rules",
                v.trim()
            )),
            Err(_) => Some(format!(
                "the br_netfilter module is not loaded (no {}): sessions on one network reach each other \
                 past the iptables rules",
                self.file().display()
            )),
        }
    }

    /// Loads the module if it is not, and turns the switch on.
    pub async fn enforce(&self) -> Result<(), FirewallError> {
        if !self.dir.exists() {
            run(&self.modprobe, &["br_netfilter"], None).await?;
        }
        let file = self.file();
        std::fs::write(&file, "1\n").map_err(|source| FirewallError::Io {
            context: format!("turning bridge netfilter on ({})", file.display()),
            source,
        })?;
        match self.unmet() {
            None => Ok(()),
            Some(why) => Err(FirewallError::Invalid(why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn off_is_reported_and_turned_on_and_a_missing_module_is_loaded() {
        let root = std::env::temp_dir().join(format!("mf-brnf-{}", std::process::id()));
        let dir = root.join("bridge");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("root");
        // A stand-in modprobe that "loads" the module: makes the directory
        // with the switch off, as the kernel does on some hosts.
        let modprobe = root.join("modprobe");
        std::fs::write(
            &modprobe,
            format!(
                "#!/bin/sh\n[ \"$1\" = br_netfilter ] || exit 1\nmkdir -p {0} && echo 0 > {0}/{SWITCH}\n",
                dir.display()
            ),
        )
        .expect("script");
        std::process::Command::new("chmod").arg("755").arg(&modprobe).status().expect("chmod");
        let bnf = BridgeNetfilter::at(&dir, modprobe.display().to_string());

        assert!(bnf.unmet().expect("no module").contains("br_netfilter module is not loaded"));
        bnf.enforce().await.expect("loads and turns on");
        assert_eq!(bnf.unmet(), None);
        std::fs::write(dir.join(SWITCH), "0\n").expect("off");
        assert!(bnf.unmet().expect("off").contains("net.bridge.bridge-nf-call-iptables is 0"));
        bnf.enforce().await.expect("on again");
        assert_eq!(std::fs::read_to_string(dir.join(SWITCH)).expect("read").trim(), "1");

        let broken = BridgeNetfilter::at(root.join("nowhere"), "false");
        assert!(broken.enforce().await.is_err(), "a module that cannot be loaded is an error");
        let _ = std::fs::remove_dir_all(&root);
    }
}
