//! `--upload` over HTTPS: a rustls front with a private CA (rcgen) before a real `exhunt serve`
//! (exhunt serve's own TLS is another branch's work; the client cannot tell the difference).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use crate::upload::{Serve, bin, examples, run, text};

/// A CA, and a certificate for `names` that it signed: (CA PEM, certificate DER, key DER).
pub(crate) fn private_ca(
    names: &[&str],
) -> (
    String,
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "exhunt test fleet CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
    (
        ca.pem(),
        leaf.der().clone(),
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
}

/// A TLS front on loopback that passes each connection on to `backend`: the port.
pub(crate) fn tls_front(
    backend: SocketAddr,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> u16 {
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
            while let Ok((s, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(s).await
                        && let Ok(mut up) = tokio::net::TcpStream::connect(backend).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                    }
                });
            }
        });
    });
    port
}

#[test]
fn https_with_a_private_ca_is_verified() {
    let srv = Serve::start();
    let (org, token) = srv.org("Northwind", &["203.0.113.0/24"], "uploader");
    let (ca_pem, cert, key) = private_ca(&["localhost"]);
    let port = tls_front(srv.addr(), cert, key);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("fleet-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let scan = |url: &str, ca_file: Option<&Path>| {
        let mut c = bin();
        c.arg("scan")
            .arg(examples().join("compromised"))
            .args(["-q", "--upload", url]);
        if let Some(f) = ca_file {
            c.arg("--upload-ca").arg(f);
        }
        let out = run(&mut c, &token);
        (out.status.code(), text(&out.stderr))
    };
    // Trusted through --upload-ca, by the name the certificate names: stored.
    let (code, err) = scan(&format!("https://localhost:{port}"), Some(&ca));
    assert_eq!(code, Some(1), "{err}");
    let stored = srv.list("results", org);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["verdict"], "compromised");
    // Without the CA (only Mozilla's roots): refused, and said how to fix it.
    let (code, err) = scan(&format!("https://localhost:{port}"), None);
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("not signed by a trusted CA") && err.contains("--upload-ca"),
        "{err}"
    );
    // The right CA but another name than the certificate's: refused.
    let (code, err) = scan(&format!("https://127.0.0.1:{port}"), Some(&ca));
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("not issued for this host name"), "{err}");
    // Plain http:// to the TLS port: a failure, not a hang.
    let (code, err) = scan(&format!("http://127.0.0.1:{port}"), None);
    assert_eq!(code, Some(5), "{err}");
    assert_eq!(srv.list("results", org).len(), 1, "nothing more stored");
}
