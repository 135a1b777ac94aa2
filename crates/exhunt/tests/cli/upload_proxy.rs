//! `--upload` through an HTTP proxy: a CONNECT proxy on loopback (below) before the TLS front
//! of `upload_tls.rs` and a real `exhunt serve`. The server is named `fleet.test`, a name no
//! resolver answers: only the proxy, which maps it to loopback, can reach it, so a stored
//! result proves the tunnel was used. The proxy records what it was asked and every byte it
//! passed on.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::upload::{Serve, bin, examples, run, text};
use crate::upload_tls::{private_ca, tls_front};

/// What the proxy saw: each request head, and the bytes it passed from client to server.
#[derive(Default)]
struct Seen {
    heads: Vec<String>,
    relayed: Vec<u8>,
}

/// A CONNECT proxy on loopback that maps `fleet.test` to 127.0.0.1 and, when `basic` is set,
/// asks for exactly those `Proxy-Authorization: Basic` credentials (407 otherwise).
fn connect_proxy(basic: Option<&'static str>) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && client.read(&mut b).unwrap_or(0) == 1 {
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                log.lock().unwrap().heads.push(head.clone());
                let authorised = basic.is_none_or(|want| {
                    head.lines()
                        .any(|l| l == format!("Proxy-Authorization: Basic {want}"))
                });
                if !authorised {
                    let _ = client.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    return;
                }
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split(' ').next())
                    .unwrap_or_default()
                    .replace("fleet.test:", "127.0.0.1:");
                let Ok(server) = TcpStream::connect(&target) else {
                    let _ =
                        client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
                    return;
                };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let (mut up_r, mut up_w) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let upstream = std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = up_r.read(&mut buf) {
                        if n == 0 || up_w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        log.lock().unwrap().relayed.extend_from_slice(&buf[..n]);
                    }
                    let _ = up_w.shutdown(Shutdown::Write);
                });
                let (mut down_r, mut down_w) = (server, client);
                let _ = std::io::copy(&mut down_r, &mut down_w);
                let _ = down_w.shutdown(Shutdown::Write);
                let _ = upstream.join();
            });
        }
    });
    (port, seen)
}

#[test]
fn uploads_go_through_a_connect_proxy_with_its_credentials_and_stay_tls() {
    let srv = Serve::start();
    let (org, token) = srv.org("Northwind", &["203.0.113.0/24"], "uploader");
    let (ca_pem, cert, key) = private_ca(&["fleet.test"]);
    let front = tls_front(srv.addr(), cert, key);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("fleet-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    // base64("svc@corp:s3cret pass"), the credentials below once percent-decoded.
    let (proxy, seen) = connect_proxy(Some("c3ZjQGNvcnA6czNjcmV0IHBhc3M="));
    let scan = |env: &[(&str, String)], flag: Option<String>| {
        let mut c = bin();
        c.arg("scan")
            .arg(examples().join("compromised"))
            .args(["-q", "--upload", &format!("https://fleet.test:{front}")])
            .arg("--upload-ca")
            .arg(&ca);
        if let Some(f) = flag {
            c.args(["--upload-proxy", &f]);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let out = run(&mut c, &token);
        (out.status.code(), text(&out.stderr))
    };

    // HTTPS_PROXY with credentials: stored through the tunnel, the certificate checked by the
    // server's name, the credentials sent to the proxy, and nothing readable passed through it.
    let good = format!("http://svc%40corp:s3cret%20pass@127.0.0.1:{proxy}");
    let (code, err) = scan(&[("HTTPS_PROXY", good.clone())], None);
    assert_eq!(code, Some(1), "{err}");
    let stored = srv.list("results", org);
    assert_eq!(stored.len(), 1, "{err}");
    assert_eq!(stored[0]["verdict"], "compromised");
    {
        let seen = seen.lock().unwrap();
        assert!(
            seen.heads
                .iter()
                .all(|h| h.starts_with(&format!("CONNECT fleet.test:{front} HTTP/1.1\r\n"))),
            "{:?}",
            seen.heads
        );
        // One tunnel: the example's one server (with -q, no check before the scan); the
        // CONNECT request carries the proxy's credentials, never the API token.
        assert_eq!(seen.heads.len(), 1, "{:?}", seen.heads);
        assert!(!seen.heads[0].contains(&token) && !seen.heads[0].contains("Bearer"));
        assert!(
            seen.relayed.len() > 1000,
            "the upload went through the tunnel"
        );
        let relayed = String::from_utf8_lossy(&seen.relayed);
        for clear in [
            token.as_str(),
            "Authorization",
            "POST /api/v1/results",
            "compromised",
        ] {
            assert!(
                !relayed.contains(clear),
                "{clear:?} crossed the proxy readable"
            );
        }
    }

    // Wrong credentials: refused by the proxy, said so, and the password not repeated.
    let wrong = format!("http://svc:hunter2@127.0.0.1:{proxy}");
    let (code, err) = scan(&[("https_proxy", wrong)], None);
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("refused the credentials")
            && err.contains("https_proxy")
            && !err.contains("hunter2"),
        "{err}"
    );
    // The flag names the proxy without credentials: asked for some (407), and told where
    // they go.
    let (code, err) = scan(
        &[("HTTPS_PROXY", good.clone())],
        Some(format!("http://127.0.0.1:{proxy}")),
    );
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("asks for credentials (407)") && err.contains("HTTPS_PROXY"),
        "{err}"
    );
    assert_eq!(srv.list("results", org).len(), 1, "nothing more stored");

    // Credentials on the command line: refused before any work, not repeated.
    let before = seen.lock().unwrap().heads.len();
    let (code, err) = scan(&[], Some(format!("http://svc:hunter2@127.0.0.1:{proxy}")));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("process list") && !err.contains("hunter2"),
        "{err}"
    );
    assert_eq!(
        seen.lock().unwrap().heads.len(),
        before,
        "no connection was made"
    );
}
