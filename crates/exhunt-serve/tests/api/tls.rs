//! Transport security: `exhunt serve` speaking HTTPS itself (`--tls-cert/--tls-key`), and the
//! store reaching PostgreSQL over TLS with the server's certificate verified
//! (`sslmode=verify-full`).

use std::sync::Arc;
use std::time::Duration;

use exhunt_serve::api::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{APP_ROLE, databases, pg_url, raw_http};

/// A certificate for `localhost` signed by its own throwaway CA, written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
}

fn make_pki() -> Pki {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "exhunt fleet test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    // The chain as a server sends it: its own certificate, then the CA's.
    let chain = format!("{}{}", cert.pem(), ca.pem());
    std::fs::write(dir.path().join("chain.pem"), chain).expect("write chain");
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).expect("write key");
    Pki { dir, ca }
}

fn client(trusted: &rcgen::Certificate) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn https_get(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    head: &str,
) -> std::io::Result<String> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(head.as_bytes()).await?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn serve_speaks_https_with_its_certificate_and_nothing_else() {
    let pki = make_pki();
    let acceptor = exhunt_serve::tls::acceptor(
        &pki.dir.path().join("chain.pem"),
        &pki.dir.path().join("key.pem"),
    )
    .expect("acceptor");
    let db = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", db.path().join("fleet.db").display());
    let cfg = Config {
        header_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let srv = exhunt_serve::Server::bind(&url, "127.0.0.1:0", cfg)
        .await
        .expect("bind")
        .with_tls(acceptor);
    assert!(srv.is_tls());
    let addr = srv.addr;
    let op = srv.first_token.clone().expect("operator token").secret;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(srv.run(async {
        let _ = stop_rx.await;
    }));

    // A client that trusts the CA: the API answers over TLS.
    let head = format!(
        "GET /api/v1/whoami HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {op}\r\nConnection: close\r\n\r\n"
    );
    let ok = https_get(&client(&pki.ca), addr, &head)
        .await
        .expect("TLS to the server");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("\"operator\""), "{ok}");

    // A client that trusts another CA refuses the server: the certificate is what is checked.
    let stranger = make_pki();
    let refused = https_get(&client(&stranger.ca), addr, &head).await;
    assert!(refused.is_err(), "an unknown CA must fail: {refused:?}");

    // Plain HTTP to the TLS port gets no HTTP answer (the token is not served in clear).
    let plain = raw_http(addr, &head, b"", Duration::from_secs(3)).await;
    assert!(!plain.contains("HTTP/1.1 200"), "{plain}");

    // A client that connects and never starts the handshake is let go after the header
    // timeout (0.5 s), not held for ever.
    let started = std::time::Instant::now();
    let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "an idle TLS connection must be closed: {r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let _ = stop_tx.send(());
    task.await.expect("join").expect("server stops cleanly");
}

/// `EXHUNT_TEST_PG_TLS`: the test cluster's loopback port, which takes TLS only
/// (`.ci/with-postgres`).
#[tokio::test]
async fn the_store_reaches_postgresql_over_verified_tls() {
    let (Ok(tls), Ok(other_ca)) = (
        std::env::var("EXHUNT_TEST_PG_TLS"),
        std::env::var("EXHUNT_TEST_PG_TLS_OTHER_CA"),
    ) else {
        eprintln!("EXHUNT_TEST_PG_TLS not set: PostgreSQL over TLS not tested");
        return;
    };
    // The database made for this test, reached through the TLS port instead of the socket.
    let dbs = databases().await;
    let pg = dbs
        .iter()
        .find(|d| d.url.starts_with("postgres"))
        .expect("EXHUNT_TEST_PG is set with EXHUNT_TEST_PG_TLS");
    let name = pg
        .url
        .split('?')
        .next()
        .and_then(|u| u.rsplit('/').next())
        .expect("database name")
        .to_string();
    let url = pg_url(&tls, &name, APP_ROLE);
    assert!(url.contains("sslmode=verify-full"), "{url}");

    let store = exhunt_serve::Store::open(&url)
        .await
        .expect("the store opens over TLS with the CA that signed the server");
    let op = store
        .bootstrap_operator("tls")
        .await
        .expect("bootstrap")
        .expect("first operator");
    let caller = store.authenticate(&op.secret).await.expect("authenticate");
    assert_eq!(caller.role, exhunt_serve::Role::Operator);

    // The session really is encrypted: PostgreSQL's own view of the connection.
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    let row = sqlx::query(
        "SELECT CASE WHEN ssl THEN 'yes' ELSE 'no' END AS s FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .fetch_one(&mut conn)
    .await
    .expect("pg_stat_ssl");
    let ssl: String = sqlx::Row::get(&row, "s");
    assert_eq!(ssl, "yes");

    // Near miss: the same server, but the client is told to trust a CA that did not sign its
    // certificate: refused, never connected unverified.
    let wrong = url.replace(
        &format!(
            "sslrootcert={}",
            tls.rsplit("sslrootcert=").next().unwrap_or("")
        ),
        &format!("sslrootcert={other_ca}"),
    );
    assert_ne!(wrong, url);
    let e = exhunt_serve::Store::open(&wrong)
        .await
        .expect_err("a server certificate from another CA must be refused");
    let msg = e.to_string().to_lowercase();
    assert!(
        msg.contains("certificate") || msg.contains("tls") || msg.contains("ssl"),
        "{msg}"
    );
}
