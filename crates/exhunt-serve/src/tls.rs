//! HTTPS without a proxy in front: `exhunt serve --tls-cert FILE --tls-key FILE`.
//!
//! rustls with the ring provider (the one the rest of exhunt uses), TLS 1.2 and 1.3 with
//! rustls's safe defaults, HTTP/1.1 announced by ALPN. The handshake must finish within the
//! header timeout, so a client that opens a connection and sends nothing holds a slot no longer
//! than a slow plain-HTTP client would.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};

fn bad(what: &str, path: &Path, why: impl std::fmt::Display) -> Error {
    Error::BadRequest(format!("{what} {}: {why}", path.display()))
}

/// The acceptor for a certificate chain and its private key, both PEM files (the chain: the
/// server's certificate first, then any intermediates).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("--tls-cert", cert, e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad("--tls-cert", cert, e))?;
    if chain.is_empty() {
        return Err(bad("--tls-cert", cert, "no CERTIFICATE in it"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        bad(
            "--tls-key",
            key,
            format!("{e} (expected a PEM private key: PKCS#8, PKCS#1 or SEC1)"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::BadRequest(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad("--tls-cert/--tls-key", cert, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_get_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        // Missing files.
        let e = acceptor(&cert, &key).err().expect("refused").to_string();
        assert!(e.contains("--tls-cert") && e.contains("cert.pem"), "{e}");
        // A certificate file with no certificate in it.
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let e = acceptor(&cert, &key).err().expect("refused").to_string();
        assert!(e.contains("no CERTIFICATE"), "{e}");
        // A real certificate but its key swapped for another's: refused, not served.
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&cert, a.cert.pem()).unwrap();
        std::fs::write(&key, b.signing_key.serialize_pem()).unwrap();
        let e = acceptor(&cert, &key).err().expect("refused").to_string();
        assert!(e.contains("--tls-cert/--tls-key"), "{e}");
        // The matching key: accepted.
        std::fs::write(&key, a.signing_key.serialize_pem()).unwrap();
        assert!(acceptor(&cert, &key).is_ok());
    }
}
