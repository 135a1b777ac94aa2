//! Windows event logs end to end: the real EVTX samples in ../shared/data give the findings they
//! should (and the benign ones none), the SigmaHQ rules load with every refusal explained, Sigma
//! web rules run on IIS logs, and corrupted copies of a real EVTX file (made here, at test time)
//! are read as far as they can be, with the damage named in the coverage ledger.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common;

// Web-server behaviour (process tree, connections) as its own module: one test binary per
// area, since every binary links yara-x.
#[path = "events/behaviour.rs"]
mod behaviour;
use common::{scan_json, shared};

const APP_LOG: &str =
    "Yamato-Security_hayabusa-sample-evtx/DeepBlueCLI/many-events-application.evtx";
const APP_EVENTS: u64 = 2216;

fn counts(v: &Value) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in v["servers"].as_array().unwrap() {
        for f in s["findings"].as_array().unwrap() {
            *m.entry(f["rule_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    m
}

fn server(v: &Value) -> &Value {
    &v["servers"][0]
}

fn evtx_kind(v: &Value) -> &Value {
    server(v)["coverage"]["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "evtx")
        .expect("an evtx coverage entry")
}

fn problems(v: &Value) -> Vec<String> {
    server(v)["coverage"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reason"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn exchange_samples_give_their_findings_and_benign_logs_none() {
    let Some(data) = shared() else { return };
    let (code, v) = scan_json(&data.join("Yamato-Security_hayabusa-sample-evtx"), &[]);
    assert_eq!(code, 1);
    let c = counts(&v);
    // 2 × Install-TransportAgent + 2 × Enable-TransportAgent (all failed, EventID 6).
    assert_eq!(c.get("EXH-EV-17"), Some(&4), "{c:?}");
    // 15 role groups + 3 DCSync-path groups.
    assert_eq!(c.get("EXH-EV-18"), Some(&18), "{c:?}");
    // notepad++ writing agents.config.
    assert_eq!(c.get("EXH-EV-19"), Some(&1), "{c:?}");
    assert_eq!(c.len(), 3, "nothing else fires: {c:?}");
    let findings = server(&v)["findings"].as_array().unwrap();
    // The application log and the Defender (mimikatz) log give nothing.
    assert!(!findings.iter().any(|f| {
        let p = f["evidence"]["path"].as_str().unwrap();
        p.contains("many-events-application") || p.contains("Defender")
    }));
    // Low-confidence admin-like actions: a REVIEW, never "compromised".
    let post = server(&v)["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["campaign"] == "post-exploitation")
        .unwrap();
    assert_eq!(post["verdict"], "attempted");
    assert!(post["summary"].as_str().unwrap().starts_with("REVIEW"));
    // Evidence: record id and the event's own time.
    let agent = findings
        .iter()
        .find(|f| f["rule_id"] == "EXH-EV-17")
        .unwrap();
    assert!(
        agent["evidence"]["excerpt"]
            .as_str()
            .unwrap()
            .contains("Install-TransportAgent")
    );
    assert!(
        agent["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2021-06-04")
    );
    // Coverage per channel.
    let channels = server(&v)["coverage"]["channels"].as_array().unwrap();
    let app = channels
        .iter()
        .find(|c| c["channel"] == "Application")
        .unwrap();
    assert_eq!(app["records"], APP_EVENTS);
    assert!(app["first"].as_str().unwrap().starts_with("2013-10-23"));
    assert!(app["last"].as_str().unwrap().starts_with("2016-09-20"));
    assert!(
        channels
            .iter()
            .any(|c| c["channel"] == "MSExchange Management" && c["records"] == 4)
    );

    // The evtx crate's MSExchange Management sample (Set-Mailbox forwarding): nothing.
    let (code, v) = scan_json(&data.join("omerbenamram_evtx"), &[]);
    assert_eq!(counts(&v).len(), 0, "{:?}", counts(&v));
    assert_eq!(code, 3, "only event logs: ProxyLogon stays inconclusive");
    assert_eq!(
        server(&v)["name"],
        "WEC.ave.local",
        "host name from the events"
    );
}

/// The engine's own pool: one thread reads EVTX chunks inline, two hand them to the pool while
/// the calling thread waits; the result is the same, event for event.
#[test]
fn one_or_two_threads_read_the_event_logs_alike() {
    let Some(data) = shared() else { return };
    let target = data.join("Yamato-Security_hayabusa-sample-evtx");
    let strip = |mut v: Value| {
        for k in ["started", "finished"] {
            v[k] = Value::Null;
        }
        v
    };
    let (c1, one) = scan_json(&target, &["--threads", "1"]);
    let (c2, two) = scan_json(&target, &["--threads", "2"]);
    assert_eq!((c1, c2), (1, 1));
    assert!(evtx_kind(&one)["records"].as_u64().unwrap() > APP_EVENTS);
    assert_eq!(strip(one), strip(two));
}

#[test]
fn sigmahq_rules_load_with_each_refusal_explained() {
    let Some(data) = shared() else { return };
    let sigma = data.join("SigmaHQ_sigma");
    let (_, v) = scan_json(
        &data.join("Yamato-Security_hayabusa-sample-evtx"),
        &["--sigma", sigma.to_str().unwrap()],
    );
    let rules = &v["rules"];
    let builtin = exhunt_rules::sigma::BUILTIN.len() as u64;
    let loaded = rules["sigma_rules"].as_u64().unwrap() - builtin;
    let rejected = rules["sigma_rejected"].as_array().unwrap();
    eprintln!(
        "SigmaHQ sample: {loaded} rules loaded, {} refused",
        rejected.len()
    );
    for r in rejected {
        eprintln!("  refused: {} — {}", r["file"], r["reason"]);
        assert!(!r["reason"].as_str().unwrap().is_empty());
    }
    assert_eq!(rules["sigma_files"].as_array().unwrap().len(), 50);
    assert_eq!(
        loaded as usize + rejected.len(),
        50,
        "every rule is loaded or refused"
    );
    // The two proxy-log OWASSRF rules are refused for their log source; everything else loads.
    assert_eq!(rejected.len(), 2);
    assert!(
        rejected
            .iter()
            .all(|r| r["reason"].as_str().unwrap().contains("`proxy`"))
    );
    // The SigmaHQ MSExchange transport-agent rules (keyword rules over the unnamed Data array)
    // fire on the sample as they should: 2 installations, 2 failed.
    let c = counts(&v);
    assert_eq!(
        c.get("SIGMA-4fe151c2-ecf9-4fae-95ae-b88ec9c2fca6"),
        Some(&2),
        "{c:?}"
    );
    assert_eq!(
        c.get("SIGMA-c7d16cae-aaf3-42e5-9c1c-fb8553faa6fa"),
        Some(&2),
        "{c:?}"
    );
    // Attribution (DRL 1.1): the author is named in the finding.
    let f = server(&v)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule_id"] == "SIGMA-4fe151c2-ecf9-4fae-95ae-b88ec9c2fca6")
        .unwrap();
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .contains("Sigma rule by Tobias Michalski")
    );
}

#[test]
fn sigma_web_rules_run_on_iis_logs() {
    let Some(data) = shared() else { return };
    let sigma = data.join("SigmaHQ_sigma");
    let (_, v) = scan_json(
        &common::examples().join("compromised"),
        &["--sigma", sigma.to_str().unwrap()],
    );
    let c = counts(&v);
    // SigmaHQ's HAFNIUM web rule on the example's IIS log (POSTs to /owa/auth/Current/themes…,
    // /ecp/*.js …).
    assert!(
        c.get("SIGMA-67bce556-312f-4c81-9162-c3c9ff2599b2")
            .is_some_and(|&n| n > 0),
        "{c:?}"
    );
    // The clean example and real benign IIS traffic: no Sigma finding.
    for target in [
        common::examples().join("clean"),
        data.join("brianary_scripts"),
    ] {
        let (_, v) = scan_json(&target, &["--sigma", sigma.to_str().unwrap()]);
        let c = counts(&v);
        assert!(
            !c.keys().any(|k| k.starts_with("SIGMA-")),
            "{target:?}: {c:?}"
        );
    }
}

#[test]
fn sigma_rule_folder_is_never_scanned_and_bad_rules_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("broken.yml"), "title: [unclosed\n").unwrap();
    std::fs::write(
        rules.join("linux.yml"),
        "title: L\nlogsource: {product: linux}\ndetection:\n  s:\n    a: b\n  condition: s\n",
    )
    .unwrap();
    std::fs::write(rules.join("binary.yml"), [0xFFu8, 0xFE, 0, 1]).unwrap();
    // A rule folder inside the target, named like evidence.
    std::fs::write(rules.join("Security.evtx"), b"ElfFile\0garbage").unwrap();
    let (_, v) = scan_json(tmp.path(), &["--sigma", rules.to_str().unwrap()]);
    let rejected = v["rules"]["sigma_rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    let reasons: Vec<&str> = rejected
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("not a Sigma rule")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("`linux`")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("not UTF-8")),
        "{reasons:?}"
    );
    let skipped = server(&v)["coverage"]["skipped"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s["path"].as_str().unwrap().ends_with("Security.evtx")
                && s["reason"].as_str().unwrap().contains("never scanned"))
    );
}

/// A copy of the application log in a fresh folder, changed by `f`.
fn corrupted(name: &str, f: impl FnOnce(&mut Vec<u8>)) -> Option<(tempfile::TempDir, PathBuf)> {
    let data = shared()?;
    let mut bytes = std::fs::read(data.join(APP_LOG)).unwrap();
    f(&mut bytes);
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    Some((tmp, p))
}

const CHUNK: usize = 65536;
const HEADER: usize = 4096;

#[test]
fn truncated_evtx_is_read_up_to_the_cut() {
    // Cut in the middle of the 10th chunk.
    let Some((tmp, _)) = corrupted("Application.evtx", |b| {
        b.truncate(HEADER + 9 * CHUNK + 30_000)
    }) else {
        return;
    };
    let (_, v) = scan_json(tmp.path(), &[]);
    let records = evtx_kind(&v)["records"].as_u64().unwrap();
    assert!(records > 400 && records < APP_EVENTS, "{records}");
    assert!(
        !problems(&v).is_empty(),
        "the lost part must be named: {:?}",
        problems(&v)
    );
    assert_eq!(evtx_kind(&v)["files_complete"], 0);
}

#[test]
fn bad_chunk_checksum_skips_that_chunk_only() {
    let Some((tmp, _)) = corrupted("Application.evtx", |b| {
        // A byte inside the records of chunk 3: its data checksum no longer holds.
        let at = HEADER + 3 * CHUNK + 4000;
        b[at] ^= 0x5A;
    }) else {
        return;
    };
    let (_, v) = scan_json(tmp.path(), &[]);
    let records = evtx_kind(&v)["records"].as_u64().unwrap();
    assert!(
        records < APP_EVENTS && records > APP_EVENTS - 200,
        "{records}"
    );
    let p = problems(&v);
    assert!(
        p.iter().any(|r| r.contains("unreadable part skipped")),
        "{p:?}"
    );
}

#[test]
fn zero_filled_evtx_is_named_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("Windows/System32/winevt/Logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("Security.evtx"), vec![0u8; 200_000]).unwrap();
    let (code, v) = scan_json(tmp.path(), &[]);
    assert_eq!(code, 3);
    let p = problems(&v);
    assert!(
        p.iter().any(|r| r.contains("not a readable EVTX file")),
        "{p:?}"
    );
    assert_eq!(evtx_kind(&v)["files_complete"], 0);
}

#[test]
fn dirty_header_is_read_in_full() {
    let Some((tmp, _)) = corrupted("Application.evtx", |b| {
        // File header flags at offset 120: 0x1 = dirty (the log was not closed cleanly).
        b[120] |= 1;
    }) else {
        return;
    };
    let (_, v) = scan_json(tmp.path(), &[]);
    assert_eq!(evtx_kind(&v)["records"], APP_EVENTS);
}

#[test]
fn huge_record_size_is_skipped_and_the_rest_read() {
    let Some((tmp, _)) = corrupted("Application.evtx", |b| {
        // The first record of chunk 5 (chunk header is 512 bytes) claims 16 MiB.
        let rec = HEADER + 5 * CHUNK + 512;
        assert_eq!(&b[rec..rec + 4], b"\x2a\x2a\x00\x00", "record magic");
        b[rec + 4..rec + 8].copy_from_slice(&(16u32 << 20).to_le_bytes());
    }) else {
        return;
    };
    let (_, v) = scan_json(tmp.path(), &[]);
    let records = evtx_kind(&v)["records"].as_u64().unwrap();
    assert!(records > APP_EVENTS / 2, "{records}");
    assert!(records < APP_EVENTS, "{records}");
    assert!(!problems(&v).is_empty());
}

#[test]
fn evtx_inside_a_triage_zip_is_read() {
    let Some(data) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let zip_path = tmp.path().join("triage.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let src = data.join("Yamato-Security_hayabusa-sample-evtx/EVTX-to-MITRE-Attack/TA0003-Persistence/T1505-Server Software Component/ID6-Failed to install an Exchange transport agent.evtx");
    z.start_file(
        "C/Windows/System32/winevt/Logs/MSExchange Management.evtx",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    std::io::Write::write_all(&mut z, &std::fs::read(src).unwrap()).unwrap();
    z.finish().unwrap();
    let (_, v) = scan_json(Path::new(&zip_path), &[]);
    assert_eq!(counts(&v).get("EXH-EV-17"), Some(&4), "{:?}", counts(&v));
}
