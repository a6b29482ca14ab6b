//! HTTPS with the built-in router (`[tls]`): one certificate, a wildcard
//! for the UI's host and the session zones, served to every client
//! whatever name it asks for, and replaced when its files change, so a
//! certbot renewal needs no restart (docs/operations.md).
//!
//! The handshake happens in the listener's connection task
//! (`crate::http::server`), under the header-read timeout: a client that
//! opens a TLS connection and says nothing holds it no longer than one
//! that sends half a request.
//!
//! A reload that fails (a half-written file, a key that does not match
//! the certificate) keeps the certificate being served and says so in the
//! log and in `medforge_tls_reload_failures_total`; the next check tries
//! again. Nothing a renewal can do takes HTTPS down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: no PEM certificate in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no PEM private key in it ({reason})", path.display())]
    NoKey { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    BadPem { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("the key does not go with the certificate, or is of a kind rustls cannot use: {0}")]
    Unusable(rustls::Error),
    #[error("the certificate is not valid for {name}: {reason}")]
    NotForName { name: String, reason: String },
}

/// The certificate and key files, as `[tls]` names them.
#[derive(Debug, Clone)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The two files' bytes: a renewal changes them (certbot's `live/` links
/// then point at new files in `archive/`; reading follows the links). The
/// bytes, not the times: two writes within one clock tick look alike.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn read(files: &Files) -> Result<Contents, TlsError> {
    let read = |path: &Path| std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source });
    Ok(Contents { cert: read(&files.cert)?, key: read(&files.key)? })
}

/// The crypto the server uses (ring: no C toolchain beyond a compiler).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the chain and the key and checks that they go together.
pub fn load(files: &Files) -> Result<CertifiedKey, TlsError> {
    parse(files, &read(files)?)
}

fn parse(files: &Files, contents: &Contents) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&contents.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::BadPem { path: files.cert.clone(), source })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: files.cert.clone() });
    }
    let key = PrivateKeyDer::from_pem_slice(&contents.key)
        .map_err(|e| TlsError::NoKey { path: files.key.clone(), reason: e.to_string() })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Unusable)
}

/// Whether the certificate is valid for `name` (a DNS name; wildcards in
/// the certificate count, as browsers count them).
pub fn check_name(key: &CertifiedKey, name: &str) -> Result<(), TlsError> {
    let not = |reason: String| TlsError::NotForName { name: name.to_owned(), reason };
    let leaf = key.end_entity_cert().map_err(|e| not(e.to_string()))?;
    let cert = webpki::EndEntityCert::try_from(leaf).map_err(|e| not(e.to_string()))?;
    let server = ServerName::try_from(name).map_err(|e| not(e.to_string()))?;
    cert.verify_is_valid_for_subject_name(&server).map_err(|e| not(e.to_string()))
}

/// The certificate being served, swapped in place on renewal. Every
/// handshake asks it (rustls's resolver), so a new certificate is served
/// from the next connection on; open connections keep theirs.
#[derive(Debug)]
pub struct Certificates {
    files: Files,
    current: RwLock<(Arc<CertifiedKey>, Contents)>,
}

impl Certificates {
    /// Loads the files (an error if they do not make a certificate).
    pub fn load(files: Files) -> Result<Arc<Self>, TlsError> {
        let contents = read(&files)?;
        let key = parse(&files, &contents)?;
        Ok(Arc::new(Self { files, current: RwLock::new((Arc::new(key), contents)) }))
    }

    /// The certificate being served.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Loads the files again if either changed since the last load:
    /// `Ok(true)` when a new certificate is now served.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let contents = read(&self.files)?;
        if self.current.read().unwrap_or_else(|p| p.into_inner()).1 == contents {
            return Ok(false);
        }
        let key = parse(&self.files, &contents)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (Arc::new(key), contents);
        Ok(true)
    }

    /// An acceptor that serves whatever certificate is current, over
    /// TLS 1.2 and 1.3, speaking HTTP/1.1 (the listener has no HTTP/2).
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Unusable)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Checks the files every `interval` until `stop` turns true, and
    /// serves a renewed certificate as soon as it loads.
    pub async fn keep_fresh(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.reload_if_changed()).await {
                Ok(Ok(true)) => {
                    metrics::counter!("medforge_tls_reloads_total").increment(1);
                    tracing::info!(cert = %self.files.cert.display(), "serving the renewed TLS certificate");
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    // Mid-renewal, or broken: the old one stays until a
                    // check finds files that load.
                    metrics::counter!("medforge_tls_reload_failures_total").increment(1);
                    tracing::warn!(error = %e, "the TLS files changed but do not load: still serving the previous certificate");
                }
                Err(e) => tracing::warn!(error = %e, "the TLS reload task failed"),
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA and a leaf for `names` under it, as PEM (cert, key).
    fn leaf(names: &[&str]) -> (String, String) {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        let cert = params.signed_by(&key, &issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, cert: &str, key: &str) -> Files {
        let files = Files { cert: dir.join("fullchain.pem"), key: dir.join("privkey.pem") };
        std::fs::write(&files.cert, cert).expect("cert");
        std::fs::write(&files.key, key).expect("key");
        files
    }

    #[test]
    fn a_wildcard_covers_one_label_and_a_mismatched_key_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = leaf(&["lab.example.org", "*.external.lab.example.org"]);
        let files = write(dir.path(), &cert, &key);
        let loaded = load(&files).expect("loads");
        check_name(&loaded, "lab.example.org").expect("the UI's host");
        check_name(&loaded, "s-abcd1234.external.lab.example.org").expect("a session host");
        let e = check_name(&loaded, "s-abcd1234.internal.lab.example.org").expect_err("not in the certificate");
        assert!(e.to_string().contains("s-abcd1234.internal.lab.example.org"), "{e}");
        assert!(check_name(&loaded, "a.b.external.lab.example.org").is_err(), "a wildcard is one label");

        let (_, other_key) = leaf(&["lab.example.org"]);
        std::fs::write(&files.key, other_key).expect("key");
        assert!(matches!(load(&files), Err(TlsError::Unusable(_))), "a key of another certificate");
        std::fs::write(&files.key, "not a key").expect("key");
        assert!(matches!(load(&files), Err(TlsError::NoKey { .. })));
        std::fs::write(&files.cert, "").expect("cert");
        assert!(matches!(load(&files), Err(TlsError::NoCertificate { .. })));
    }

    #[test]
    fn a_renewal_is_served_and_a_broken_one_keeps_the_old() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = leaf(&["lab.example.org"]);
        let files = write(dir.path(), &cert, &key);
        let certs = Certificates::load(files.clone()).expect("loads");
        let first = certs.current().cert[0].clone();
        assert!(!certs.reload_if_changed().expect("unchanged"), "nothing changed");

        // Half a renewal: a new certificate beside the old key.
        let (cert2, key2) = leaf(&["lab.example.org"]);
        std::fs::write(&files.cert, &cert2).expect("cert");
        assert!(certs.reload_if_changed().is_err(), "mismatched halves");
        assert_eq!(certs.current().cert[0], first, "still the old one");
        // The rest of it: the new pair is served.
        std::fs::write(&files.key, &key2).expect("key");
        assert!(certs.reload_if_changed().expect("reloads"));
        assert_ne!(certs.current().cert[0], first, "the renewed one");
    }
}
