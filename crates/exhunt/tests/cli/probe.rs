//! `exhunt probe` from the command line, against the mock Exchange server on loopback:
//! output formats, exit codes, refusals, and `--resume` after a killed run. DNS is off in every
//! run (`--no-dns`), so nothing leaves the host.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use mock_exchange::{ExchangeSite, Mock, Profile};

fn exhunt() -> Command {
    let mut c = Command::cargo_bin("exhunt").unwrap();
    c.args(["probe", "--no-dns", "--retries", "0", "--read-timeout", "3"]);
    c
}

/// `count` TLS sites from `first`, all on one port, builds from `build(i)`.
fn sites(first: Ipv4Addr, count: u32, build: impl Fn(u32) -> ExchangeSite) -> (Mock, u16) {
    mock_exchange::start_range(first, count, 0, |i| Profile::Exchange(build(i)), 2).unwrap()
}

fn lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn formats_and_exit_codes() {
    let (_m, port) = sites(Ipv4Addr::new(127, 7, 0, 1), 3, |i| {
        let mut s = ExchangeSite::new(["15.2.1748.43", "15.2.721.2", "15.2.1118.20"][i as usize]);
        if i == 2 {
            // Only the CU readable: indeterminate for Nov22SU.
            s.owa_version_header = false;
            s.exporttool_current = false;
            s.exporttool_by_build = false;
        }
        s
    });
    let run = |spec: &str, format: &str| {
        let out = exhunt().args([spec, "-f", format]).output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&format!("127.7.0.1:{port}"), "text");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("patched") && out.contains("Exchange 2019 CU15 Feb26SU"),
        "{out}"
    );
    let (code, out, _) = run(&format!("127.7.0.3:{port}"), "jsonl");
    assert_eq!(code, 3, "indeterminate exits 3: {out}");
    assert_eq!(lines(&out)[0]["state"], "indeterminate");
    let (code, out, _) = run(&format!("127.7.0.1-3:{port}"), "csv");
    assert_eq!(code, 1, "one vulnerable exits 1: {out}");
    let mut r = csv::Reader::from_reader(out.as_bytes());
    let headers = r.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let state = headers.iter().position(|h| h == "state").unwrap();
    let vuln = headers.iter().position(|h| h == "vulnerable_cves").unwrap();
    let v = rows.iter().find(|r| &r[state] == "vulnerable").unwrap();
    assert!(
        v[vuln].contains("CVE-2021-26855") && v[vuln].contains("CVE-2022-41082"),
        "{v:?}"
    );
    let (code, out, _) = run(&format!("127.7.0.1-3:{port}"), "json");
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["schema"], "exhunt-probe/1.0");
    assert_eq!(doc["summary"]["by_state"]["vulnerable"], 1);
    assert_eq!(doc["summary"]["by_cve"]["CVE-2021-26855"]["vulnerable"], 1);
    assert!(
        doc["meta"]["user_agent"]
            .as_str()
            .unwrap()
            .contains("no exploitation")
    );
    assert_eq!(doc["rows"].as_array().unwrap().len(), 3);
    // Targets on standard input, with comments and a bad line that gets its own row.
    let mut child = exhunt()
        .args(["-", "-f", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(
            stdin,
            "# our servers\n127.7.0.1:{port}  127.7.0.2:{port}\n10.0.0.256"
        )
        .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let rows = lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().filter(|r| r["state"] == "invalid").count(), 1);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn refusals_are_clear() {
    let out = exhunt().arg("10.0.0.0/8").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-large"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let scope = dir.path().join("scope.txt");
    std::fs::write(&scope, "10.0.0.0/24\n10.0.0.999\n").unwrap();
    let out = exhunt()
        .args(["10.0.0.1", "--scope"])
        .arg(&scope)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("scope file"),
        "{out:?}"
    );
    let out = exhunt()
        .args(["10.0.0.1", "--shard", "4/3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = exhunt()
        .args(["@/nonexistent/targets.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read target list"));
}

#[test]
fn resume_continues_a_killed_run_without_duplicates() {
    let (_m, port) = sites(Ipv4Addr::new(127, 8, 0, 1), 60, |i| {
        ExchangeSite::new(if i % 2 == 0 {
            "15.2.1118.20"
        } else {
            "15.1.2176.2"
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe.jsonl");
    let spec = format!("127.8.0.1-60:{port}");
    // 60 targets at 20 requests/s: about three seconds; killed once some rows are written.
    let mut child = exhunt()
        .args([spec.as_str(), "--rate", "20", "-c", "4", "--resume"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let n = std::fs::read_to_string(&out)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n >= 16 || started.elapsed() > Duration::from_secs(20) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first = std::fs::read_to_string(&out).unwrap();
    let done_first = first.lines().count();
    assert!(
        (16..60).contains(&done_first),
        "killed run wrote {done_first} rows"
    );
    // A kill in the middle of a write leaves half a line: resume must cope.
    let mut text = first.clone();
    text.push_str("{\"schema\":\"exhunt-probe/1.0\",\"targ");
    std::fs::write(&out, text).unwrap();

    let res = exhunt()
        .args([spec.as_str(), "--rate", "0", "--resume"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        res.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(&format!("{done_first} already in the resumed output")),
        "{err}"
    );
    let all = std::fs::read_to_string(&out).unwrap();
    let rows = lines(&all);
    assert_eq!(rows.len(), 60, "every target once");
    let keys: HashSet<&str> = rows.iter().map(|r| r["target"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 60, "no duplicates");
    let vulnerable = rows.iter().filter(|r| r["state"] == "vulnerable").count();
    assert_eq!(vulnerable, 30);
}
