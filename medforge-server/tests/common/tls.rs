//! A test CA and the wildcard certificates it signs, for the servers that
//! run with `[tls]`, and the clients that trust it: reqwest (with every
//! name resolved to loopback, so it asks for each host by its name, as a
//! browser does: SNI and the name check included) and Chromium (by the
//! certificate's key, `--ignore-certificate-errors-spki-list`).

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, PublicKeyData};

use super::DOMAIN;

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    root: Vec<u8>,
}

/// A certificate the CA signed, as the files a server reads.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate, DER (what a client sees in the handshake).
    pub der: Vec<u8>,
    /// base64(SHA-256(SubjectPublicKeyInfo)), for Chromium.
    pub spki_sha256: String,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "MedForge test CA");
        let root = params.self_signed(&key).expect("CA certificate").der().to_vec();
        Self { issuer: Issuer::new(params, key), root }
    }

    /// The certificate a lab gets for its deployment: the UI's host and
    /// both session zones (of the test domain).
    pub fn deployment_leaf(&self) -> Leaf {
        self.leaf(&[DOMAIN.to_owned(), format!("*.external.{DOMAIN}"), format!("*.internal.{DOMAIN}")])
    }

    pub fn leaf(&self, names: &[String]) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(names.to_vec()).expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let spki =
            sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(key.subject_public_key_info()));
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            spki_sha256: data_encoding::BASE64.encode(&spki),
        }
    }

    /// A reqwest client that trusts this CA only, resolves every name to
    /// 127.0.0.1 and follows no redirect.
    pub fn client(&self) -> reqwest::Client {
        super::install_crypto();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from(self.root.clone())).expect("the CA as a root");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_root_certificates(roots)
            .with_no_client_auth();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tls_backend_preconfigured(config)
            .tls_info(true)
            .dns_resolver(Arc::new(Loopback))
            .build()
            .expect("a client that trusts the test CA")
    }
}

impl Leaf {
    /// Writes the pair where `[tls]` reads it, each file replaced in one
    /// step (as certbot swaps its links): a reader never sees half a file.
    pub fn install(&self, cert: &Path, key: &Path) {
        for (path, text) in [(key, &self.key_pem), (cert, &self.cert_pem)] {
            let next = path.with_extension("next");
            std::fs::write(&next, text).expect("write the new file");
            std::fs::rename(&next, path).expect("swap it in");
        }
    }
}

/// Every name is 127.0.0.1 (the port is the URL's).
struct Loopback;

impl reqwest::dns::Resolve for Loopback {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            let addrs: reqwest::dns::Addrs = Box::new(std::iter::once(std::net::SocketAddr::from(([127, 0, 0, 1], 0))));
            Ok(addrs)
        })
    }
}

/// The certificate the server presented on `response`'s connection, DER.
pub fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("the server's certificate")
        .to_vec()
}
