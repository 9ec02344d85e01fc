//! Owns HTTPS: a rustls server configuration (the `ring` provider, TLS 1.2 and 1.3, ALPN
//! `http/1.1`) from a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
//!
//! Invariant: a file that does not hold what it should stops the server at start with the
//! file's path and the reason, never at the first connection.

use std::{path::Path, sync::Arc};

use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::Error;

/// The acceptor for `cert` (chain, leaf first) and `key`.
pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, Error> {
    let tls_err = |what, path: &Path, reason: String| Error::Tls {
        what,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|err| tls_err("certificate", cert, err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| tls_err("certificate", cert, err.to_string()))?;
    if chain.is_empty() {
        return Err(tls_err("certificate", cert, "no CERTIFICATE block".into()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|err| tls_err("key", key, err.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| tls_err("certificate", cert, err.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|err| tls_err("key", key, err.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
