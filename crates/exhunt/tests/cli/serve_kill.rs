//! `exhunt serve` killed in the middle of an upload (issue 18, point 6): a real process, a
//! real SQLite file, killed abruptly (SIGKILL on Unix, TerminateProcess on Windows) while the
//! upload's transaction is writing. Restarted on the same file, the server has none of that
//! upload, and takes the next one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A started `exhunt serve`: the process, its address and its first operator token (only
/// the first start on a database prints one).
struct Fleet {
    child: Child,
    addr: String,
    token: Option<String>,
}

fn start(db: &str) -> Fleet {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("exhunt"))
        .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
        .args(["--max-body-mib", "256"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("exhunt serve starts");
    // Read stderr on a thread (and keep reading it, so that the server never blocks on a full
    // pipe); the address comes first, then the token when this start made one.
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut addr, mut token) = (None, None);
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if let Some(rest) = line.strip_prefix("exhunt serve: listening on http://") {
            addr = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        if line.contains("first operator token") {
            token = rx.recv_timeout(Duration::from_secs(5)).ok();
            break;
        }
    }
    Fleet {
        child,
        addr: addr.expect("exhunt serve printed where it listens"),
        token,
    }
}

fn request(addr: &str, method: &str, path: &str, token: &str, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("send head");
    s.write_all(body).expect("send body");
    s
}

fn answer(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(120))).ok();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn probe_rows(n: usize, second_octet: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        let ip = format!(
            "10.{}.{}.{}",
            second_octet + i / 62_500,
            i / 250 % 250,
            i % 250 + 1
        );
        out.push_str(&serde_json::json!({
            "schema": "exhunt-probe/1.0", "target": format!("{ip}:443"), "host": format!("ex{i}.corp.example"),
            "ip": ip, "port": 443, "scheme": "https", "state": "vulnerable",
            "reason": "build 15.1.2176.2 predates Mar21SU", "build": "15.1.2176.2",
            "build_source": "X-OWA-Version header",
            "cves": [{"cve": "CVE-2021-26855", "campaign": "ProxyLogon", "fixed_by": "Mar21SU",
                      "state": "vulnerable", "decided_by": "build (X-OWA-Version header)", "reason": "r"}],
            "time": "2026-11-30T08:00:00Z"
        }).to_string());
        out.push('\n');
    }
    out.into_bytes()
}

fn observations(addr: &str, token: &str) -> usize {
    let a = answer(request(
        addr,
        "GET",
        "/api/v1/observations?limit=100000",
        token,
        b"",
    ));
    let body = a.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str::<serde_json::Value>(body)
        .unwrap_or_else(|e| panic!("{e}: {a}"))
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn a_server_killed_during_an_upload_keeps_nothing_of_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("fleet.db");
    let wal = dir.path().join("fleet.db-wal");
    let db = format!("sqlite://{}", file.display());
    let mut fleet = start(&db);
    let op = fleet
        .token
        .clone()
        .expect("first start prints the operator token");
    let org = answer(request(
        &fleet.addr,
        "POST",
        "/api/v1/orgs",
        &op,
        br#"{"name": "Alpha", "contacts": ["soc@alpha.example"], "scope": {"cidrs": ["10.0.0.0/8"]}}"#,
    ));
    assert!(org.starts_with("HTTP/1.1 201"), "{org}");

    // A large upload; killed once its transaction has written several MiB into the write-ahead
    // log (SQLite spills a transaction's pages there before it commits) and before any answer.
    let rows = 120_000;
    let body = probe_rows(rows, 1);
    let wal_before = std::fs::metadata(&wal).map_or(0, |m| m.len());
    let mut s = request(
        &fleet.addr,
        "POST",
        "/api/v1/observations/probe",
        &op,
        &body,
    );
    let started = Instant::now();
    loop {
        let grown = std::fs::metadata(&wal).map_or(0, |m| m.len());
        if grown > wal_before + 4 * 1024 * 1024 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the upload never started writing"
        );
        // An answer already (an error, or the whole upload done): say what it was.
        s.set_nonblocking(true).ok();
        let mut peek = [0u8; 2048];
        if let Ok(n) = s.peek(&mut peek)
            && n > 0
        {
            panic!(
                "answered before the kill: {}",
                String::from_utf8_lossy(&peek[..n])
            );
        }
        s.set_nonblocking(false).ok();
        std::thread::sleep(Duration::from_millis(2));
    }
    fleet.child.kill().expect("kill");
    let _ = fleet.child.wait();
    // The server had not answered: it died inside the upload, not after it.
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "the upload finished before the kill: the test proved nothing"
    );

    // Restarted on the same file: none of the killed upload, and the next upload is kept.
    let mut again = start(&db);
    assert!(
        again.token.is_none(),
        "the database survived: no new first operator"
    );
    assert_eq!(observations(&again.addr, &op), 0);
    let small = probe_rows(50, 100);
    let ok = answer(request(
        &again.addr,
        "POST",
        "/api/v1/observations/probe",
        &op,
        &small,
    ));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert_eq!(observations(&again.addr, &op), 50);
    again.child.kill().ok();
    let _ = again.child.wait();
}
