//! End-to-end tests of `exhunt scan` on the bundled example servers: verdicts, exit codes, the
//! attack chain, every output format, the JSON schema, triage zips and time filters.

use std::io::Write;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

mod common;

// Outcomes of attempts (refused, unknown, succeeded) in every output: a module of this binary
// (every integration-test binary links yara-x).
#[path = "cli/outcomes.rs"]
mod outcomes;
// Hostile file names and log fields in every output format.
#[path = "cli/hostile.rs"]
mod hostile;
// Every output format of every example against tests/snapshots/.
#[path = "cli/snapshots.rs"]
mod snapshots;

// `exhunt collect`: the triage package (issue 16).
#[path = "cli/collect.rs"]
mod collect;

// `exhunt serve` killed in the middle of an upload keeps nothing of it (issue 18).
#[cfg(feature = "serve")]
#[path = "cli/serve_kill.rs"]
mod serve_kill;

// `exhunt remediate`: plan snapshots, apply → verify → rollback, failures injected (issue 17).
#[path = "cli/remediate.rs"]
mod remediate;

// One test binary for the crate: the areas below were binaries of their own, each linking the
// test dependencies again.
// Bad input: broken, truncated, hostile and unreadable files.
#[path = "cli/bad_input.rs"]
mod bad_input;
// A corpus in the shape of a real server, and the ledger of what was read.
#[path = "cli/corpus.rs"]
mod corpus;
// Windows event logs: EVTX samples, Sigma rule sets, corrupted files, the process tree.
#[path = "cli/events.rs"]
mod events;
// Event exports (JSON, JSON Lines) from SIEMs and collection tools.
#[path = "cli/exports.rs"]
mod exports;
// Web shells, dumps and staged files on disk.
#[path = "cli/files.rs"]
mod files;
// Scanning never changes the evidence.
#[path = "cli/integrity.rs"]
mod integrity;
// `exhunt probe` against the mock Exchange server.
#[path = "cli/probe.rs"]
mod probe;
// `--upload` (scan, report, probe) to a real `exhunt serve`, over HTTP and HTTPS (issue 18).
#[cfg(feature = "serve")]
#[path = "cli/upload.rs"]
mod upload;
#[cfg(feature = "serve")]
#[path = "cli/upload_tls.rs"]
mod upload_tls;
// `--upload` through an HTTP proxy (CONNECT) to the same server behind a TLS front.
#[cfg(feature = "serve")]
#[path = "cli/upload_proxy.rs"]
mod upload_proxy;
// `--upload` against a scripted server that fails on purpose: retries, refusals, 413 splits.
#[path = "cli/upload_faults.rs"]
mod upload_faults;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn exhunt() -> Command {
    let mut c = Command::cargo_bin("exhunt").unwrap();
    c.env_remove("NO_COLOR").env_remove("EXHUNT_LOG");
    c
}

fn scan_json(args: &[&str]) -> (i32, Value) {
    let out = exhunt()
        .arg("scan")
        .args(args)
        .args(["--format", "json", "-q"])
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("json: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    (code, v)
}

/// `exhunt ARGS`, its stdout parsed as JSON Lines.
fn json_lines(args: &[&str]) -> Vec<Value> {
    let out = exhunt().args(args).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rule_ids(v: &Value) -> Vec<String> {
    v["servers"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn compromised_example_tells_the_whole_chain_and_exits_1() {
    let out = exhunt()
        .args(["scan", "--no-color"])
        .arg(examples().join("compromised"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("COMPROMISED"), "{text}");
    // The chain, in order: SSRF → ECP ExternalUrl change → file written → file requested.
    let steps = [
        "SSRF reached back-end",
        "script planted in Set-OabVirtualDirectory ExternalUrl",
        "wrote \\\\127.0.0.1\\c$\\inetpub\\wwwroot\\aspnet_client\\discover.aspx",
        "POST /aspnet_client/discover.aspx (file written by the chain) answered 200",
    ];
    let mut at = 0;
    for s in steps {
        let i = text[at..]
            .find(s)
            .unwrap_or_else(|| panic!("step {s:?} missing or out of order in\n{text}"));
        at += i;
    }
    // Verdicts come before the story, the story before coverage.
    let (v, st, cov) = (
        text.find("COMPROMISED").unwrap(),
        text.find("What happened").unwrap(),
        text.find("Coverage").unwrap(),
    );
    assert!(v < st && st < cov);
    assert!(
        text.contains("still vulnerable at the first evidence"),
        "{text}"
    );
}

#[test]
fn compromised_example_json_has_every_stage_and_the_written_path() {
    let (code, v) = scan_json(&[examples().join("compromised").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(v["verdict"], "compromised");
    let s = &v["servers"][0];
    assert_eq!(s["name"], "EX01");
    let ids = rule_ids(&v);
    for id in [
        "EXH-PL-1",
        "EXH-PL-3",
        "EXH-PL-4",
        "EXH-PL-6",
        "EXH-PL-7",
        "EXH-PL-8",
        "EXH-PL-9",
        "EXH-IOC-1",
        "EXH-IOC-2",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
    }
    let stages: Vec<&str> = s["story"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["stage"].as_str().unwrap())
        .collect();
    for st in [
        "scan",
        "exploit-attempt",
        "exploit-success",
        "persistence",
        "web-shell-use",
    ] {
        assert!(stages.contains(&st), "{st} not in story {stages:?}");
    }
    let verdict = &s["verdicts"][0];
    assert_eq!(verdict["patched_before_first_evidence"], false);
    assert!(
        verdict["first_evidence"]
            .as_str()
            .unwrap()
            .starts_with("2021-03-03T02:14:05"),
        "{verdict}"
    );
    // Every log finding points at a real line of a real file.
    for f in s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["evidence"]["line"].as_u64() != Some(0))
    {
        let path = f["evidence"]["path"].as_str().unwrap();
        let line = f["evidence"]["line"].as_u64().unwrap() as usize;
        let text = std::fs::read_to_string(path).unwrap();
        let l = text.lines().nth(line - 1).unwrap();
        assert_eq!(
            l.trim_end_matches('\r'),
            f["evidence"]["excerpt"].as_str().unwrap()
        );
    }
}

#[test]
fn clean_example_is_no_evidence_and_exits_0() {
    let (code, v) = scan_json(&[examples().join("clean").to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(v["verdict"], "no-evidence");
    // The administrator's nmap check is kept as a scan, not dropped and not an attack.
    let ids = rule_ids(&v);
    assert!(
        !ids.is_empty() && ids.iter().all(|i| i == "EXH-PL-3"),
        "{ids:?}"
    );
    let reasons = v["servers"][0]["verdicts"][0]["reasons"].to_string();
    assert!(reasons.contains("scanner probe"), "{reasons}");
}

#[test]
fn clean_example_is_no_evidence_for_every_campaign_with_its_own_window() {
    let (_, v) = scan_json(&[examples().join("clean").to_str().unwrap()]);
    let verdicts = v["servers"][0]["verdicts"].as_array().unwrap();
    let campaigns: Vec<&str> = verdicts
        .iter()
        .map(|x| x["campaign"].as_str().unwrap())
        .collect();
    assert_eq!(
        campaigns,
        [
            "proxy-logon",
            "proxy-shell",
            "proxy-not-shell",
            "post-exploitation"
        ]
    );
    for (c, start, fixed_from) in [
        ("proxy-shell", "2021-08-05", "2021-05-12"),
        ("proxy-not-shell", "2022-08-01", "2022-11-09"),
    ] {
        let x = verdicts.iter().find(|x| x["campaign"] == c).unwrap();
        assert_eq!(x["verdict"], "no-evidence", "{x}");
        assert!(
            x["window_start"].as_str().unwrap().starts_with(start),
            "{x}"
        );
        assert!(
            x["window_end"].as_str().unwrap().starts_with(fixed_from),
            "{x}"
        );
    }
}

#[test]
fn proxyshell_example_tells_its_own_story_and_exits_1() {
    let (code, v) = scan_json(&[examples().join("proxyshell").to_str().unwrap()]);
    assert_eq!(code, 1);
    let servers = v["servers"].as_array().unwrap();
    assert_eq!(
        servers.len(),
        1,
        "EX02 and EX02.contoso.local are one server"
    );
    let s = &servers[0];
    let verdict = |c: &str| {
        s["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["campaign"] == c)
            .unwrap()
            .clone()
    };
    assert_eq!(verdict("proxy-shell")["verdict"], "compromised");
    assert_eq!(
        verdict("proxy-shell")["patched_before_first_evidence"],
        false
    );
    assert_ne!(verdict("proxy-logon")["verdict"], "compromised");
    // The chain in order: the SSRF answered, the export role granted, the export to a page.
    let story: Vec<(&str, &str)> = s["story"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["stage"].as_str().unwrap(), x["summary"].as_str().unwrap()))
        .collect();
    assert_eq!(story.len(), 3, "{story:?}");
    assert_eq!(story[0].0, "exploit-success");
    assert!(story[0].1.contains("autodiscover.json SSRF"), "{story:?}");
    assert!(story[1].1.contains("Mailbox Import Export"), "{story:?}");
    assert_eq!(story[2].0, "persistence");
    assert!(story[2].1.contains("mailbox export"), "{story:?}");
    let ids = rule_ids(&v);
    // Six SSRF requests, each in the IIS log and in the HttpProxy Autodiscover log: one step.
    assert_eq!(
        ids.iter().filter(|i| *i == "EXH-PS-1").count(),
        12,
        "{ids:?}"
    );
    assert!(
        story[0]
            .1
            .contains("seen in IIS W3C logs and HttpProxy logs"),
        "{story:?}"
    );
}

#[test]
fn late_logs_example_is_inconclusive_and_exits_3() {
    let out = exhunt()
        .args(["scan", "--no-color"])
        .arg(examples().join("late-logs"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("INCONCLUSIVE"), "{text}");
    assert!(
        text.contains(
            "HttpProxy logs start on 2021-04-06, after the exposure window opened on 2021-01-03"
        ),
        "{text}"
    );
}

#[test]
fn since_that_cuts_the_window_makes_clean_inconclusive() {
    let (code, v) = scan_json(&[
        examples().join("clean").to_str().unwrap(),
        "--since",
        "2021-02-01",
    ]);
    assert_eq!(code, 3);
    let reasons = v["servers"][0]["verdicts"][0]["reasons"].to_string();
    assert!(
        reasons.contains("--since 2021-02-01 cuts the exposure window"),
        "{reasons}"
    );
    // A window before the attack hides it: the compromised server is then inconclusive, not clean.
    let (_, v) = scan_json(&[
        examples().join("compromised").to_str().unwrap(),
        "--until",
        "2021-03-01",
    ]);
    assert_eq!(v["servers"][0]["verdicts"][0]["campaign"], "proxy-logon");
    assert_eq!(
        v["servers"][0]["verdicts"][0]["verdict"], "inconclusive",
        "{v}"
    );
}

#[test]
fn json_output_validates_against_the_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(examples().join("../schema/scan-result.v1.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for ex in ["compromised", "clean", "late-logs"] {
        let (_, v) = scan_json(&[examples().join(ex).to_str().unwrap()]);
        let errors: Vec<String> = validator
            .iter_errors(&v)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{ex}: {errors:#?}");
    }
    // The schema is strict: an unknown field is an error, so schema and code cannot drift apart.
    let (_, mut v) = scan_json(&[examples().join("clean").to_str().unwrap()]);
    v["servers"][0]["surprise"] = Value::Bool(true);
    assert!(!validator.is_valid(&v));
}

#[test]
fn jsonl_is_one_finding_per_line_and_csv_has_timesketch_columns() {
    let dir = examples().join("compromised");
    let (_, v) = scan_json(&[dir.to_str().unwrap()]);
    let n = v["servers"][0]["findings"].as_array().unwrap().len();
    let lines = json_lines(&["scan", "--format", "jsonl", "-q", dir.to_str().unwrap()]);
    assert_eq!(lines.len(), n);
    assert!(lines.iter().all(|l| l["server"] == "EX01"
        && l["rule_id"].is_string()
        && l["evidence"]["line"].is_u64()));

    let out = exhunt()
        .args(["scan", "--format", "csv", "-q"])
        .arg(&dir)
        .output()
        .unwrap();
    let mut rdr = csv::Reader::from_reader(&out.stdout[..]);
    let headers = rdr.headers().unwrap().clone();
    assert_eq!(&headers[0], "message");
    assert_eq!(&headers[1], "datetime");
    assert_eq!(&headers[2], "timestamp_desc");
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert!(rows.len() > n, "findings plus coverage context rows");
    let times: Vec<&str> = rows
        .iter()
        .map(|r| r.get(1).unwrap())
        .filter(|t| !t.is_empty())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "timeline is in time order");
}

#[test]
fn timeline_has_findings_and_context_in_time_order() {
    let clean = examples().join("clean");
    let lines = json_lines(&["scan", clean.to_str().unwrap(), "--format", "timeline"]);
    let times: Vec<&str> = lines
        .iter()
        .map(|l| l["datetime"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "sorted by time");
    for l in &lines {
        assert!(
            !l["message"].as_str().unwrap().is_empty()
                && !l["timestamp_desc"].as_str().unwrap().is_empty()
        );
    }
    let findings = lines.iter().filter(|l| l["tag"] == "finding").count();
    assert_eq!(findings, 4, "the four scanner probes");
    assert!(
        lines
            .iter()
            .all(|l| (l["tag"] == "finding") == l.get("finding").is_some())
    );
    let patches: Vec<&str> = lines
        .iter()
        .filter(|l| l["timestamp_desc"] == "patch first seen")
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(patches.len(), 3, "{patches:?}");
    assert!(
        patches[1].contains("ProxyShell") && patches[1].contains("15.1.2176.14"),
        "{patches:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["timestamp_desc"] == "IIS W3C logs coverage last"
                && l["datetime"].as_str().unwrap().starts_with("2022-11-10"))
    );
}

#[test]
fn triage_zip_is_read_in_place_with_the_same_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let zip_path = tmp.path().join("EX01-triage.zip");
    let root = examples().join("compromised");
    let mut zw = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for entry in walk(&root) {
        let rel = entry.strip_prefix(&root).unwrap();
        let name: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        zw.start_file(name.join("/"), opts).unwrap();
        zw.write_all(&std::fs::read(&entry).unwrap()).unwrap();
    }
    zw.finish().unwrap();
    let before = std::fs::read_dir(tmp.path()).unwrap().count();
    let (code, v) = scan_json(&[zip_path.to_str().unwrap()]);
    assert_eq!(code, 1);
    let (_, dir) = scan_json(&[root.to_str().unwrap()]);
    let (mut a, mut b) = (rule_ids(&v), rule_ids(&dir));
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let p = v["servers"][0]["findings"][0]["evidence"]["path"]
        .as_str()
        .unwrap();
    assert!(p.contains("EX01-triage.zip!"), "{p}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        before,
        "nothing extracted next to the zip"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out.sort();
    out
}

#[test]
fn several_targets_are_several_servers() {
    let (code, v) = scan_json(&[
        examples().join("clean").to_str().unwrap(),
        examples().join("compromised").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(v["servers"].as_array().unwrap().len(), 2);
    assert_eq!(v["servers"][0]["verdict"], "no-evidence");
    assert_eq!(v["servers"][1]["verdict"], "compromised");
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    let out = exhunt().args(["scan", "/no/such/place"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = exhunt()
        .args(["scan", "--since", "yesterday"])
        .arg(examples().join("clean"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
    let out = exhunt()
        .args(["scan", "--format", "xml"])
        .arg(examples().join("clean"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let help = exhunt().args(["scan", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("3  inconclusive"), "exit codes are in --help");
}

#[test]
fn output_inside_the_evidence_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.log"), "x").unwrap();
    let out = exhunt()
        .arg("scan")
        .arg(tmp.path())
        .arg("-o")
        .arg(tmp.path().join("result.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!tmp.path().join("result.json").exists());
    let out_dir = tempfile::tempdir().unwrap();
    let out = exhunt()
        .arg("scan")
        .arg(examples().join("clean"))
        .args(["--format", "json", "-q", "-o"])
        .arg(out_dir.path().join("r.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(v["verdict"], "no-evidence");
}

#[test]
fn rules_list_shows_every_rule_with_its_spec_section() {
    let out = exhunt().args(["rules", "list"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for (id, spec) in [
        ("EXH-PL-1", "C-26855-A"),
        ("EXH-PL-5", "C-26858-A"),
        ("EXH-PL-6", "C-27065-A"),
        ("EXH-EV-4", "C-27065-C"),
        ("EXH-EV-1", "C-26857-A"),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(id) && l.contains(spec)),
            "{id} {spec} in\n{text}"
        );
    }
    // An event rule shows its Sigma detection.
    let out = exhunt()
        .args(["rules", "show", "EXH-EV-17"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("service: msexchange-management") && text.contains("Install-TransportAgent")
    );
    let out = exhunt()
        .args(["rules", "show", "EXH-NOPE-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `exhunt report FILES… --format FORMAT`.
/// Scans an example into a JSON result file; the exit code.
fn save_scan(example: &str, to: &Path) -> Option<i32> {
    exhunt()
        .args([
            "scan",
            examples().join(example).to_str().unwrap(),
            "--format",
            "json",
            "-q",
            "-o",
        ])
        .arg(to)
        .output()
        .unwrap()
        .status
        .code()
}

fn report(files: &[&PathBuf], format: &str) -> std::process::Output {
    exhunt()
        .arg("report")
        .args(files)
        .args(["--format", format])
        .output()
        .unwrap()
}

#[test]
fn report_re_renders_and_merges_saved_results() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (e, code) in [("compromised", 1), ("proxyshell", 1), ("clean", 0)] {
        let f = tmp.path().join(format!("{e}.json"));
        assert_eq!(save_scan(e, &f), Some(code), "{e}");
        files.push(f);
    }
    // Re-rendering a saved result gives the same result.
    let out = report(&[&files[0]], "json");
    assert_eq!(out.status.code(), Some(1));
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(again, saved);
    // Three servers merged into one report; no finding lost.
    let out = report(&[&files[0], &files[1], &files[2]], "json");
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = merged["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(&names[..2], ["EX01", "EX02"]);
    let count = |v: &Value| -> usize {
        v["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["findings"].as_array().unwrap().len())
            .sum()
    };
    let load = |f: &PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
    };
    let (second, third) = (load(&files[1]), load(&files[2]));
    assert!(
        count(&third) > 0,
        "the clean example has context findings (a scan)"
    );
    assert_eq!(
        count(&merged),
        count(&saved) + count(&second) + count(&third)
    );
    assert_eq!(merged["verdict"], "compromised");
    // The same server twice: said, and both kept.
    let out = report(&[&files[0], &files[0]], "jsonl");
    assert!(String::from_utf8_lossy(&out.stderr).contains("both results are kept"));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().count(),
        2 * count(&saved)
    );
}

#[test]
fn report_refuses_truncated_and_foreign_results_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("clean.json");
    assert_eq!(save_scan("clean", &f), Some(0));
    let text = std::fs::read_to_string(&f).unwrap();
    let cases = [
        (
            "cut.json",
            text[..text.len() / 2].to_string(),
            "not a complete JSON result",
        ),
        (
            "v2.json",
            text.replacen("\"schema_version\": \"1.", "\"schema_version\": \"2.", 1),
            "uses result schema 2.",
        ),
        (
            "other.json",
            "{\"name\": \"something else\"}".to_string(),
            "no schema_version",
        ),
    ];
    for (name, body, message) in cases {
        let p = tmp.path().join(name);
        std::fs::write(&p, body).unwrap();
        let out = exhunt()
            .args(["report", p.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(message) && !err.contains("panicked"),
            "{name}: {err}"
        );
    }
    // A newer minor version is read, with a warning.
    let p = tmp.path().join("v1-99.json");
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["schema_version"] = "1.99".into();
    std::fs::write(&p, doc.to_string()).unwrap();
    let out = exhunt()
        .args(["report", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("newer than this exhunt"));
}

#[test]
fn html_report_is_one_self_contained_page() {
    let out = exhunt()
        .args([
            "scan",
            examples().join("compromised").to_str().unwrap(),
            "--format",
            "html",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    // Offline: no external script, style sheet, image or font.
    for bad in ["<script src", "<link", "<img", "@import", "url("] {
        assert!(!html.contains(bad), "external asset: {bad}");
    }
    // The verdict banner of each campaign, both charts, and every finding in the table.
    for label in [
        "ProxyLogon (HAFNIUM)",
        "ProxyShell",
        "ProxyNotShell / OWASSRF",
        "COMPROMISED",
    ] {
        assert!(html.contains(label), "{label}");
    }
    assert!(html.contains("aria-label=\"attack story on a time axis\""));
    assert!(html.contains("exposure window"));
    let (_, v) = scan_json(&[examples().join("compromised").to_str().unwrap()]);
    let n = v["servers"][0]["findings"].as_array().unwrap().len();
    assert_eq!(html.matches("<tr><td>").count(), n);
    // Every rule that fired is explained, and its findings link to it.
    for f in v["servers"][0]["findings"].as_array().unwrap() {
        let id = f["rule_id"].as_str().unwrap();
        assert!(html.contains(&format!("<a href=\"#rule-{id}\">")), "{id}");
        assert!(html.contains(&format!("id=\"rule-{id}\"")), "{id}");
    }
    assert!(
        html.contains("spec C-26855-A"),
        "the spec section of the SSRF rule"
    );
    // Evidence text is escaped: the planted markup cannot run in the report.
    assert!(!html.contains("<script language"));
    assert!(html.contains("&lt;script language") || !html.contains("script language"));
}

#[test]
fn version_names_the_rule_pack_and_the_build_table() {
    let out = Command::cargo_bin("exhunt")
        .unwrap()
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rules = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/checks.toml"),
    )
    .unwrap();
    let checks = rules.matches("[[rule]]").count();
    assert!(
        text.contains(&format!("{checks} checks")) && text.contains("rule pack "),
        "{text}"
    );
    assert!(text.contains("Exchange build table: "), "{text}");
    assert!(text.contains("newest update "), "{text}");
}

#[test]
fn a_report_shows_the_rule_text_the_scan_saved_not_todays() {
    let t = tempfile::tempdir().unwrap();
    let saved = t.path().join("ex01.json");
    assert_eq!(save_scan("compromised", &saved), Some(1));
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let fired = v["rules"]["fired"].as_array_mut().unwrap();
    assert!(fired.iter().any(|r| r["id"] == "EXH-PL-1"));
    for r in fired.iter_mut() {
        if r["id"] == "EXH-PL-1" {
            r["title"] = Value::String("Title as this scan knew it".into());
        }
    }
    std::fs::write(&saved, serde_json::to_string(&v).unwrap()).unwrap();
    let out = exhunt()
        .args(["report", "--format", "html"])
        .arg(&saved)
        .output()
        .unwrap();
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(
        html.contains("EXH-PL-1 — Title as this scan knew it"),
        "{html}"
    );
}
