//! `--upload` on `exhunt scan`, `exhunt report` and `exhunt probe`, against a real
//! `exhunt serve` (SQLite in a temporary folder, on loopback) with an organisation and an
//! uploader token made through its API; HTTPS through a TLS front with a private CA (rcgen)
//! before that server (`upload_tls.rs`). Probe rows come from `exhunt probe` against the mock
//! Exchange server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mock_exchange::{Behaviour, ExchangeSite, Profile};
use serde_json::{Value, json};

pub(crate) fn bin() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("exhunt"));
    c.env_remove("EXHUNT_UPLOAD_TOKEN")
        .env_remove("EXHUNT_LOG")
        .env_remove("NO_COLOR");
    // The machine's proxy settings stay out (upload_proxy.rs sets its own).
    for v in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        c.env_remove(v);
    }
    c
}

/// A running `exhunt serve`, killed when dropped.
pub(crate) struct Serve {
    child: Child,
    pub(crate) url: String,
    operator: String,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    pub(crate) fn start() -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("fleet.db").display());
        let mut child = bin()
            .args(["serve", "--db", &db, "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        // Reads stderr to its end, so that the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let (mut url, mut operator, mut next_is_token) = (None, None, false);
        while url.is_none() || operator.is_none() {
            let l = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("exhunt serve did not start");
            if next_is_token {
                operator = Some(l.trim().to_string());
                next_is_token = false;
            } else if let Some(rest) = l.strip_prefix("exhunt serve: listening on ") {
                url = rest.split_whitespace().next().map(str::to_string);
            } else if l.contains("first operator token") {
                next_is_token = true;
            }
        }
        Serve {
            child,
            url: url.unwrap(),
            operator: operator.unwrap(),
            _dir: dir,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.url.strip_prefix("http://").unwrap().parse().unwrap()
    }

    /// One API request as `token`: the status and the JSON answer.
    fn api(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut s = TcpStream::connect(self.addr()).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr(),
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            !head.to_ascii_lowercase().contains("chunked"),
            "this helper reads sized answers only: {head}"
        );
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// A new organisation with `cidrs` as its scope and a token of `role` for it.
    pub(crate) fn org(&self, name: &str, cidrs: &[&str], role: &str) -> (i64, String) {
        let (st, org) = self.api(
            &self.operator,
            "POST",
            "/api/v1/orgs",
            Some(json!({"name": name, "contacts": ["soc@example.org"], "scope": {"cidrs": cidrs}})),
        );
        assert_eq!(st, 201, "{org}");
        let id = org["id"].as_i64().unwrap();
        let (st, tok) = self.api(
            &self.operator,
            "POST",
            "/api/v1/tokens",
            Some(json!({"org": id, "role": role, "name": "responder laptop"})),
        );
        assert_eq!(st, 201, "{tok}");
        (id, tok["secret"].as_str().unwrap().to_string())
    }

    pub(crate) fn list(&self, what: &str, org: i64) -> Vec<Value> {
        let (st, v) = self.api(
            &self.operator,
            "GET",
            &format!("/api/v1/{what}?org={org}"),
            None,
        );
        assert_eq!(st, 200, "{v}");
        v.as_array().unwrap().clone()
    }
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The output of `cmd` with the token in the environment; asserts that the token shows nowhere.
pub(crate) fn run(cmd: &mut Command, token: &str) -> Output {
    let out = cmd.env("EXHUNT_UPLOAD_TOKEN", token).output().unwrap();
    for s in [&out.stdout, &out.stderr] {
        assert!(
            !text(s).contains(token),
            "the token was printed: {}",
            text(s)
        );
        assert!(!text(s).contains("panicked"), "{}", text(s));
    }
    out
}

pub(crate) fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn scan_uploads_each_server_with_its_verdict_and_the_same_result_is_stored_once() {
    let srv = Serve::start();
    let (org, token) = srv.org("Contoso", &["192.0.2.0/24"], "uploader");
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("result.json");
    let out = run(
        bin()
            .arg("scan")
            .arg(examples().join("compromised"))
            .arg(examples().join("proxyshell"))
            .args(["--format", "json", "-o"])
            .arg(&saved)
            .args(["--upload", &srv.url]),
        &token,
    );
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "findings exit 1 as without --upload: {err}"
    );
    let local: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    let servers = local["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(
        err.matches(" stored on http://127.0.0.1:").count(),
        2,
        "{err}"
    );
    // One stored result per server, under the uploader's organisation, with the local verdict.
    let stored = srv.list("results", org);
    assert_eq!(stored.len(), 2, "{stored:?}");
    let mut docs = std::collections::HashSet::new();
    for (s, r) in servers.iter().zip(&stored) {
        assert_eq!(
            r["server"].as_str().unwrap(),
            s["name"].as_str().unwrap().to_ascii_lowercase()
        );
        assert_eq!(r["verdict"], s["verdict"]);
        assert_eq!(r["org_id"], org);
        assert_eq!(r["findings"], s["findings"].as_array().unwrap().len());
        docs.insert(r["doc_id"].clone());
    }
    assert_eq!(docs.len(), 2, "one document per server: {stored:?}");
    assert!(stored.iter().any(|r| r["verdict"] == "compromised"));
    // The saved result sent again (what a responder does after a failed upload): stored once.
    let again = run(
        bin().arg("report").arg(&saved).args(["--upload", &srv.url]),
        &token,
    );
    let err = text(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("was already stored").count(), 2, "{err}");
    assert_eq!(srv.list("results", org).len(), 2);
    // A near miss: the same servers scanned again is a new result (a rescan), not a duplicate.
    let out = run(
        bin()
            .arg("scan")
            .arg(examples().join("compromised"))
            .args(["-q", "--upload", &srv.url]),
        &token,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.is_empty(),
        "-q: nothing but errors: {}",
        text(&out.stderr)
    );
    assert_eq!(srv.list("results", org).len(), 3);
}

#[test]
fn refusals_fail_clearly_and_the_local_report_is_still_written() {
    let srv = Serve::start();
    let (_, reader) = srv.org("Fabrikam", &["198.51.100.0/24"], "reader");
    let dir = tempfile::tempdir().unwrap();
    let unknown = format!("exh_{}", "0f".repeat(32));
    for (token, status, says, early, file) in [
        (
            &unknown,
            "401",
            "EXHUNT_UPLOAD_TOKEN",
            "answered 401",
            "wrong-token.txt",
        ),
        (
            &reader,
            "403",
            "uploader token",
            "this is a reader token",
            "reader-token.txt",
        ),
    ] {
        let report = dir.path().join(file);
        let out = run(
            bin()
                .arg("scan")
                .arg(examples().join("compromised"))
                .arg("-o")
                .arg(&report)
                .args(["--upload", &srv.url]),
            token,
        );
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(5),
            "findings (1) + failed upload (4): {err}"
        );
        assert!(
            err.contains(&format!("the server answered {status}")) && err.contains(says),
            "{err}"
        );
        assert!(err.contains("local result is complete"), "{err}");
        // Said before the scan too, so that a responder can fix it while the scan runs.
        let check = err.find("upload check before the scan").expect(&err);
        assert!(err[check..].contains(early), "{err}");
        assert!(check < err.find("upload of").unwrap(), "{err}");
        let written = std::fs::read_to_string(&report).unwrap();
        assert!(written.contains("COMPROMISED"), "{written}");
    }
    // A clean server whose upload failed: 4, still readable as "no evidence" (4 & 3 == 0).
    let out = run(
        bin()
            .arg("scan")
            .arg(examples().join("clean"))
            .args(["-q", "--upload", &srv.url]),
        &unknown,
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("no evidence"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_server_that_is_down_gives_a_clear_error_after_a_few_tries() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let out = run(
        bin()
            .arg("scan")
            .arg(examples().join("late-logs"))
            .args(["--upload", &format!("http://127.0.0.1:{port}")]),
        &format!("exh_{}", "ab".repeat(32)),
    );
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(7),
        "inconclusive (3) + failed upload: {err}"
    );
    assert!(
        err.contains(&format!("cannot connect to 127.0.0.1:{port}"))
            && err.contains("tried 3 times"),
        "{err}"
    );
    assert!(
        text(&out.stdout).contains("INCONCLUSIVE"),
        "the report: {}",
        text(&out.stdout)
    );
    assert!(
        err.contains("upload check before the scan: cannot connect"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn tokens_never_come_from_the_command_line_and_options_are_checked_first() {
    let token = format!("exh_{}", "5e".repeat(32));
    let clean = examples().join("clean");
    let clean = clean.to_str().unwrap();
    for args in [
        vec!["scan", clean, "--upload", "http://127.0.0.1:9", &token],
        vec![
            "scan",
            clean,
            "--upload",
            "http://127.0.0.1:9",
            "--upload-token",
            "secret-word",
        ],
        vec!["probe", "--no-dns", &token],
    ] {
        let out = bin().args(&args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("never taken from the command line"), "{err}");
        assert!(
            !err.contains(&token) && !err.contains("secret-word"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "nothing ran");
    }
    // Refused before any scanning: no token, plain http to another host, an unreadable CA.
    for (args, token, says) in [
        (
            vec!["--upload", "https://fleet.example"],
            None,
            "needs an API token",
        ),
        (
            vec!["--upload", "http://192.0.2.7:8080"],
            Some(&token),
            "loopback",
        ),
        (
            vec![
                "--upload",
                "https://fleet.example",
                "--upload-ca",
                "/nonexistent/ca.pem",
            ],
            Some(&token),
            "--upload-ca",
        ),
        (
            vec!["--upload", "https://TOKEN@fleet.example"],
            Some(&token),
            "credentials",
        ),
    ] {
        let mut c = bin();
        c.args(["scan", clean]).args(&args);
        if let Some(t) = token {
            c.env("EXHUNT_UPLOAD_TOKEN", t);
        }
        let out = c.output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "no scan ran: {args:?}");
    }
    // Probe rows are assigned by the server's scopes: an organisation named for them is refused.
    let out = bin()
        .args([
            "probe",
            "--no-dns",
            "127.0.0.1:9",
            "--upload",
            "http://127.0.0.1:9",
        ])
        .args(["--upload-org", "3"])
        .env("EXHUNT_UPLOAD_TOKEN", &token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("by their scopes"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn probe_rows_arrive_with_how_exposure_was_decided() {
    let srv = Serve::start();
    let first = Ipv4Addr::new(127, 7, 41, 1);
    // The organisation's scope holds the first two sites, not the third.
    let (org, token) = srv.org("Tailspin", &["127.7.41.1/32", "127.7.41.2/32"], "uploader");
    let (_mock, port) = mock_exchange::start_range(
        first,
        3,
        0,
        |i| {
            let mut s =
                ExchangeSite::new(["15.2.1748.43", "15.2.721.2", "15.1.2106.2"][i as usize]);
            if i == 1 {
                s.proxylogon = Behaviour::Vulnerable;
            }
            Profile::Exchange(s)
        },
        2,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rows_file = dir.path().join("rows.jsonl");
    let probe = |extra: &[&str]| {
        let mut c = bin();
        c.args(["probe", "--no-dns", "--retries", "0", "--active"])
            .arg(format!("127.7.41.1-3:{port}"))
            .args(extra)
            .args(["--upload", &srv.url]);
        let out = run(&mut c, &token);
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let (code, _, err) = probe(&["-f", "jsonl", "-o", rows_file.to_str().unwrap()]);
    assert_eq!(code, Some(1), "one vulnerable: {err}");
    assert!(
        err.contains("3 rows in 1 batches taken: 2 stored")
            && err.contains("1 NOT stored: outside your organisation's scope"),
        "{err}"
    );
    let rows: Vec<Value> = std::fs::read_to_string(&rows_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    let stored = srv.list("observations", org);
    assert_eq!(stored.len(), 2, "{stored:?}");
    for o in &stored {
        let row = rows.iter().find(|r| r["ip"] == o["ip"]).unwrap();
        assert_eq!(o["state"], row["state"], "{o}");
        assert_eq!(o["build"], row["build"], "{o}");
        assert_eq!(o["source"], "exhunt-probe");
        // How exposure was decided: each CVE's signal, as the probe wrote it.
        let mut decided: Vec<String> = Vec::new();
        for c in row["cves"].as_array().unwrap() {
            let d = c["decided_by"].as_str().unwrap().to_string();
            if d != "none" && !decided.contains(&d) {
                decided.push(d);
            }
        }
        assert_eq!(o["decided_by"], decided.join("; "), "{o}");
    }
    let vulnerable = stored.iter().find(|o| o["state"] == "vulnerable").unwrap();
    assert!(
        vulnerable["decided_by"]
            .as_str()
            .unwrap()
            .contains("cookie check"),
        "the behaviour check that decided ProxyLogon: {vulnerable}"
    );
    assert!(stored.iter().all(|o| o["ip"] != "127.7.41.3"));
    // Again with --resume on the same file: nothing new is probed, the rows are sent again,
    // and the server keeps them once. The text output is what a run without --upload shows.
    let (code, _, err) = probe(&["--resume", rows_file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "nothing probed: {err}");
    assert!(err.contains("0 stored, 2 already stored"), "{err}");
    assert_eq!(srv.list("observations", org).len(), 2);
    let (code, out, _) = probe(&["-f", "text"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("vulnerable"), "{out}");
}

/// A scope larger than one batch: several bounded requests, every row stored.
#[test]
fn a_large_probe_scope_is_sent_in_bounded_batches() {
    let srv = Serve::start();
    let (org, token) = srv.org("Wingtip", &["127.9.0.0/20"], "uploader");
    // Nothing listens on these addresses: every target is refused at once (unreachable).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run(
        bin().args([
            "probe",
            "--no-dns",
            "--retries",
            "0",
            "--rate",
            "0",
            "--per-host-rate",
            "0",
            "-f",
            "jsonl",
            &format!("127.9.0.0/20:{port}"),
            "--upload",
            &srv.url,
        ]),
        &token,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(text(&out.stdout).lines().count(), 4096);
    assert!(
        err.contains("4096 rows in 3 batches taken: 4096 stored"),
        "2,000 rows a batch at most: {err}"
    );
    let (st, v) = srv.api(
        &srv.operator,
        "GET",
        &format!("/api/v1/observations?org={org}&limit=10000"),
        None,
    );
    assert_eq!(st, 200);
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 4096);
    assert!(v.iter().all(|o| o["state"] == "unreachable"));
}

/// A token file that other users may read is used, with a warning that says how to close it;
/// one only its owner may read gets none. Unix only: elsewhere access is an ACL.
#[cfg(unix)]
#[test]
fn a_token_file_open_to_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let srv = Serve::start();
    let (_, up) = srv.org("Contoso", &["192.0.2.0/24"], "uploader");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{up}\n")).unwrap();
    for (mode, warned) in [(0o644, true), (0o640, true), (0o600, false), (0o400, false)] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = bin()
            .arg("scan")
            .arg(examples().join("clean"))
            .args(["-q", "--upload", &srv.url, "--upload-token-file"])
            .arg(&file)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{mode:o}: {err}");
        assert_eq!(
            err.contains("users other than its owner have access") && err.contains("chmod 600"),
            warned,
            "{mode:o}: {err}"
        );
        assert!(!err.contains(&up) && !text(&out.stdout).contains(&up));
    }
}
