//! `--upload` against a scripted server on loopback that fails on purpose: a reset connection
//! and 503 are tried again, a 4xx is not, and a probe batch answered 413 is split until it fits.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// How the scripted server answers one connection.
#[derive(Clone, Copy)]
enum Answer {
    /// Reads part of the request and closes with bytes unread: the client sees a reset.
    Reset,
    /// `100 Continue`, the body, then this status with a scan upload's JSON.
    Status(u16),
    /// 413 before the body when it is longer than this; else a probe upload's JSON counting
    /// its lines.
    Limit(usize),
}

/// Starts the server: each connection takes the next answer of `script` (the last one
/// repeats). The bodies it read, one per connection (empty when it read none).
fn scripted(script: Vec<Answer>) -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut i = 0;
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut method = [0u8; 4];
            if s.peek(&mut method).is_ok() && &method == b"GET " {
                // The check before the work (`GET /api/v1/whoami`): outside the script.
                let _ = s.read(&mut [0u8; 4096]);
                let json = r#"{"token_id":7,"role":"uploader","org_id":1}"#;
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
                    json.len()
                );
                continue;
            }
            let answer = script[i.min(script.len() - 1)];
            i += 1;
            let body = answer_one(&mut s, answer);
            log.lock().unwrap().push(body);
        }
    });
    (port, seen)
}

fn answer_one(s: &mut TcpStream, answer: Answer) -> Vec<u8> {
    if let Answer::Reset = answer {
        let mut some = [0u8; 8];
        let _ = s.read_exact(&mut some);
        return Vec::new();
    }
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.contains("expect: 100-continue"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let reply = |s: &mut TcpStream, status: u16, json: String| {
        let _ = write!(
            s,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
            json.len()
        );
    };
    if let Answer::Limit(max) = answer
        && len > max
    {
        reply(
            s,
            413,
            format!(r#"{{"error":"request body larger than {max} bytes","code":"too-large"}}"#),
        );
        return Vec::new();
    }
    let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    match answer {
        Answer::Status(st) if st < 300 => reply(
            s,
            st,
            r#"{"doc_id":1,"duplicate":false,"results":[1],"warnings":[]}"#.into(),
        ),
        Answer::Status(st) => reply(s, st, format!(r#"{{"error":"scripted {st}","code":"x"}}"#)),
        _ => {
            let n = body.iter().filter(|&&b| b == b'\n').count();
            reply(
                s,
                200,
                format!(
                    r#"{{"rows":{n},"assigned":{n},"unassigned":0,"duplicates":0,"outside_scope":0,"ignored":0}}"#
                ),
            );
        }
    }
    body
}

fn upload_clean_scan(port: u16) -> (Option<i32>, String) {
    let out = Command::new(assert_cmd::cargo::cargo_bin("exhunt"))
        .arg("scan")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/clean"))
        .args(["-q", "--upload", &format!("http://127.0.0.1:{port}")])
        .env("EXHUNT_UPLOAD_TOKEN", format!("exh_{}", "12".repeat(32)))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_reset_and_503_are_tried_again_and_a_refusal_is_not() {
    use Answer::*;
    // Reset, then 503, then taken: one upload, three connections, the clean exit code.
    let (port, seen) = scripted(vec![Reset, Status(503), Status(201)]);
    let (code, err) = upload_clean_scan(port);
    assert_eq!(code, Some(0), "{err}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{err}");
    assert!(seen[0].is_empty() && !seen[2].is_empty());
    assert_eq!(seen[1], seen[2], "the same document each time");
    // 422: not tried again.
    let (port, seen) = scripted(vec![Status(422), Status(201)]);
    let (code, err) = upload_clean_scan(port);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("answered 422: scripted 422") && err.contains("rejected"),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "a 4xx is final");
    // 502 every time: three tries, then a clear failure.
    let (port, seen) = scripted(vec![Status(502)]);
    let (code, err) = upload_clean_scan(port);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("answered 502") && err.contains("tried 3 times"),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[test]
fn a_probe_batch_answered_413_is_split_until_it_fits() {
    // 256 unreachable targets (~390 bytes a row, ~100 KB in one batch); the server takes 30 KB.
    let (port, seen) = scripted(vec![Answer::Limit(30_000)]);
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(assert_cmd::cargo::cargo_bin("exhunt"))
        .args(["probe", "--no-dns", "--retries", "0", "--rate", "0"])
        .args(["--per-host-rate", "0", "-f", "jsonl"])
        .arg(format!("127.9.16.0/24:{closed}"))
        .args(["--upload", &format!("http://127.0.0.1:{port}")])
        .env("EXHUNT_UPLOAD_TOKEN", format!("exh_{}", "34".repeat(32)))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let local: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(local.len(), 256);
    let seen = seen.lock().unwrap().clone();
    let taken: Vec<&Vec<u8>> = seen.iter().filter(|b| !b.is_empty()).collect();
    assert!(
        taken.iter().all(|b| b.len() <= 30_000),
        "only bodies under the limit are read"
    );
    assert!(seen.len() > taken.len(), "some batches were refused first");
    let mut sent: Vec<String> = taken
        .iter()
        .flat_map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut want = local.clone();
    sent.sort();
    want.sort();
    assert_eq!(sent, want, "every row once, as the local JSONL has it");
    assert!(
        err.contains(&format!(
            "256 rows in {} batches taken: 256 stored",
            taken.len()
        )),
        "{err}"
    );
}
