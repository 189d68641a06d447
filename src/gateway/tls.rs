//! TLS with rustls: the main listener's server config (ALPN `h2` and `http/1.1`, TLS 1.2+,
//! a certificate that can be replaced while connections stay open) and the client configs
//! for `https://` upstreams (system roots, a configured CA bundle, an optional client
//! certificate for mutual TLS).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::ClientConfig;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate or key file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TlsError {
    pub path: PathBuf,
    pub message: String,
}

fn err(path: &Path, message: impl fmt::Display) -> TlsError {
    TlsError {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(path, format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(path, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(err(
            path,
            "no certificate found (expected PEM `CERTIFICATE` blocks)",
        ));
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| err(path, format!("cannot read the private key: {e}")))
}

/// Loads a certificate chain and its key, checking that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let certs = load_certs(cert)?;
    let key_der = load_key(key)?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| err(key, format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(certs, signing);
    certified
        .keys_match()
        .map_err(|e| err(key, format!("the key does not match the certificate: {e}")))?;
    Ok(certified)
}

/// The listener's current certificate. New handshakes pick up a replacement at once;
/// established connections keep the one they negotiated.
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertStore")
    }
}

impl CertStore {
    pub fn new(key: CertifiedKey) -> Arc<CertStore> {
        Arc::new(CertStore {
            current: ArcSwap::from_pointee(key),
        })
    }

    /// Re-reads the files; on any error the previous certificate stays in use.
    pub fn reload(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        let fresh = load_certified_key(cert, key)?;
        self.current.store(Arc::new(fresh));
        Ok(())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The server config: TLS 1.2 and 1.3 only (rustls has nothing older), ALPN h2 first.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub use crate::domain::backends::UpstreamTls;

/// A client config for upstream connections. SNI comes from the upstream URL's host.
pub fn client_config(tls: &UpstreamTls) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            for cert in load_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| err(ca, format!("unusable CA certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                tracing::warn!("no system root certificates found; https upstreams need `tls.ca`");
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(Path::new("-"), e))?
        .with_root_certificates(roots);
    let config = match &tls.client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| err(key, format!("unusable client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    // ALPN is left to the connector (it offers http/1.1).
    Ok(config)
}
