//! Bad input is normal in forensics. Each case puts one broken file into a copy of the clean
//! example server and checks: no panic, a coverage entry naming the problem, the rest is read,
//! and the exit code says inconclusive exactly when evidence the checks need could not be read.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common;
use common::{copy_dir, examples};

/// A copy of the clean example, and the folder of its OWA HttpProxy logs.
fn clean_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&examples().join("clean"), &tmp.path().join("srv"));
    let owa = tmp
        .path()
        .join("srv/Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/Owa");
    assert!(owa.is_dir());
    (tmp, owa)
}

fn scan(target: &Path) -> (i32, Value) {
    common::scan_json(target, &[])
}

fn problems(v: &Value) -> Vec<(String, String, String, bool)> {
    v["servers"][0]["coverage"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                p["cause"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap().to_string(),
                p["evidence_lost"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Whether the scan names a problem of this cause (the tag) at this file, with this in its
/// message and whether evidence was lost.
fn has_problem(v: &Value, file: &str, cause: &str, reason: &str, lost: bool) -> bool {
    problems(v)
        .iter()
        .any(|(p, c, r, l)| p.ends_with(file) && c == cause && r.contains(reason) && *l == lost)
}

const FIELDS: &str = "DateTime,RequestId,Protocol,UrlStem,AuthenticatedUser,AnchorMailbox,UserAgent,ClientIpAddress,ServerHostName,HttpStatus,Method,BackEndCookie";

fn header() -> String {
    format!(
        "{FIELDS}\r\n#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.009\r\n#Log-type: HttpProxy Logs\r\n#Date: 2021-03-06T10:00:00.000Z\r\n#Fields: {FIELDS}\r\n"
    )
}

const SSRF_LINE: &str = "2021-03-06T10:01:02.003Z,0f0e,Ecp,/ecp/y.js,,ServerInfo~a]@EX01.contoso.local:444/ecp/proxyLogon.ecp?#,python-requests/2.19.1,192.0.2.66,EX01,241,POST,";

fn benign_line(i: u32) -> String {
    format!(
        "2021-03-06T10:02:{:02}.000Z,ab{i},Owa,/owa/service.svc,CONTOSO\\alice,Smtp~alice@contoso.com,Mozilla/5.0,10.1.1.5,EX01,200,POST,",
        i % 60
    )
}

#[test]
fn truncated_last_line_is_noted_and_nothing_is_lost() {
    let (_t, owa) = clean_copy();
    let mut text = header();
    text.push_str(&benign_line(1));
    text.push_str("\r\n2021-03-06T10:03:04.000Z,cut,Owa,/owa/serv");
    std::fs::write(owa.join("HttpProxy_2021030610-1.LOG"), text).unwrap();
    let (code, v) = scan(owa.parent().unwrap());
    assert!(
        has_problem(
            &v,
            "HttpProxy_2021030610-1.LOG",
            "truncated",
            "without a line end",
            false
        ),
        "{:?}",
        problems(&v)
    );
    // Only HttpProxy logs were given here: the other kinds are missing, so inconclusive — but the
    // truncated file itself did not lose evidence.
    assert_eq!(code, 3);
    // The whole server (IIS logs too, which the ProxyShell-era verdicts need): no evidence.
    let (code, v) = scan(owa.ancestors().nth(7).unwrap());
    assert_eq!(code, 0, "{:?}", problems(&v));
}

#[test]
fn a_line_longer_than_1_mib_is_skipped_reported_and_the_rest_is_read() {
    let (t, owa) = clean_copy();
    let mut text = header();
    text.push_str(&benign_line(1));
    text.push_str("\r\n");
    text.push_str(&"A".repeat(3 * 1024 * 1024));
    text.push_str("\r\n");
    text.push_str(SSRF_LINE);
    text.push_str("\r\n");
    std::fs::write(owa.join("HttpProxy_2021030610-1.LOG"), text).unwrap();
    let (code, v) = scan(&t.path().join("srv"));
    assert!(
        has_problem(
            &v,
            "HttpProxy_2021030610-1.LOG",
            "limit",
            "longer than 1048576 bytes",
            true
        ),
        "{:?}",
        problems(&v)
    );
    // The SSRF line after the long line is still found, at the right line number.
    assert_eq!(code, 1);
    let f = v["servers"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule_id"] == "EXH-PL-1")
        .unwrap();
    assert_eq!(f["evidence"]["line"], 9);
}

#[test]
fn a_log_without_fields_line_is_inconclusive() {
    let (t, owa) = clean_copy();
    std::fs::write(
        owa.join("HttpProxy_2021030610-1.LOG"),
        format!("{}\r\n{}\r\n", benign_line(1), SSRF_LINE),
    )
    .unwrap();
    let (code, v) = scan(&t.path().join("srv"));
    assert_eq!(code, 3);
    assert!(
        has_problem(
            &v,
            "HttpProxy_2021030610-1.LOG",
            "format",
            "no #Fields: line",
            true
        ),
        "{:?}",
        problems(&v)
    );
}

#[test]
fn an_unknown_column_layout_is_inconclusive() {
    let (t, owa) = clean_copy();
    let text = "#Software: Microsoft Exchange Server\r\n#Log-type: HttpProxy Logs\r\n#Fields: Alpha,Beta,Gamma\r\n1,2,3\r\n";
    std::fs::write(owa.join("HttpProxy_2021030610-1.LOG"), text).unwrap();
    let (code, v) = scan(&t.path().join("srv"));
    assert_eq!(code, 3);
    assert!(
        has_problem(
            &v,
            "HttpProxy_2021030610-1.LOG",
            "format",
            "column layout lacks AnchorMailbox",
            true
        ),
        "{:?}",
        problems(&v)
    );
}

#[test]
fn binary_garbage_named_log_is_inconclusive() {
    let (t, owa) = clean_copy();
    let garbage: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(owa.join("HttpProxy_2021030610-1.LOG"), garbage).unwrap();
    let (code, v) = scan(&t.path().join("srv"));
    assert_eq!(code, 3);
    assert!(
        has_problem(
            &v,
            "HttpProxy_2021030610-1.LOG",
            "format",
            "binary content",
            true
        ),
        "{:?}",
        problems(&v)
    );
}

#[test]
fn invalid_utf8_is_read_lossily_and_still_checked() {
    let (t, owa) = clean_copy();
    let mut bytes = header().into_bytes();
    bytes.extend(
        SSRF_LINE
            .replace("python-requests", "python\u{1}-requests")
            .as_bytes(),
    );
    // A stray byte that is not UTF-8 in the user agent.
    let pos = bytes.iter().rposition(|&b| b == 1).unwrap();
    bytes[pos] = 0xFF;
    bytes.extend(b"\r\n");
    std::fs::write(owa.join("HttpProxy_2021030610-1.LOG"), bytes).unwrap();
    let (code, v) = scan(&t.path().join("srv"));
    assert_eq!(code, 1, "the SSRF is still found");
    assert!(
        has_problem(
            &v,
            "HttpProxy_2021030610-1.LOG",
            "encoding",
            "invalid UTF-8",
            false
        ),
        "{:?}",
        problems(&v)
    );
}

#[test]
fn an_empty_file_is_listed_and_loses_nothing() {
    let (t, owa) = clean_copy();
    std::fs::write(owa.join("HttpProxy_2021030610-1.LOG"), b"").unwrap();
    let (code, v) = scan(&t.path().join("srv"));
    assert_eq!(code, 0);
    assert!(
        has_problem(
            &v,
            "HttpProxy_2021030610-1.LOG",
            "empty",
            "empty file",
            false
        ),
        "{:?}",
        problems(&v)
    );
}

#[test]
fn utf16le_and_bom_logs_are_decoded() {
    let (t, owa) = clean_copy();
    let text = format!("{}{}\r\n", header(), SSRF_LINE);
    let mut utf16: Vec<u8> = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    std::fs::write(owa.join("HttpProxy_2021030610-1.LOG"), utf16).unwrap();
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend(text.replace("0f0e", "0f0f").as_bytes());
    std::fs::write(owa.join("HttpProxy_2021030611-1.LOG"), bom).unwrap();
    let (code, v) = scan(&t.path().join("srv"));
    assert_eq!(code, 1);
    let hits: Vec<&Value> = v["servers"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule_id"] == "EXH-PL-1")
        .collect();
    assert_eq!(hits.len(), 2, "{hits:#?}");
    // Decoded whole: the check read the back-end target and the status. The line sits in a log
    // of build 15.1.2176.9, which has the ProxyLogon fix: an attempt at most (issue 13).
    assert!(hits.iter().all(|f| {
        f["evidence"]["line"] == 7
            && f["title"]
                .as_str()
                .unwrap()
                .contains("reached back-end /ecp/proxyLogon.ecp (status 241)")
            && f["stage"] == "exploit-attempt"
            && f["outcome"] == "refused"
    }));
}

fn zip_with(path: &Path, members: &[(&str, Vec<u8>)]) {
    let mut zw = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        zw.start_file(*name, opts).unwrap();
        zw.write_all(data).unwrap();
    }
    zw.finish().unwrap();
}

#[test]
fn zip_members_with_traversal_names_are_flagged_and_read_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let z = tmp.path().join("triage.zip");
    let log = format!("{}{}\r\n", header(), SSRF_LINE).into_bytes();
    zip_with(
        &z,
        &[
            ("../../../../tmp/HttpProxy_2021030610-1.LOG", log.clone()),
            ("/abs/HttpProxy_2021030611-1.LOG", log),
        ],
    );
    let (code, v) = scan(&z);
    assert_eq!(code, 1, "members are read (never extracted)");
    assert!(
        has_problem(
            &v,
            "HttpProxy_2021030610-1.LOG",
            "not_followed",
            "leaves the archive root",
            false
        ),
        "{:?}",
        problems(&v)
    );
    assert!(has_problem(
        &v,
        "HttpProxy_2021030611-1.LOG",
        "not_followed",
        "leaves the archive root",
        false
    ));
    assert!(!Path::new("/tmp/HttpProxy_2021030610-1.LOG").exists());
}

#[test]
fn a_zip_bomb_hits_the_ratio_limit_and_is_reported() {
    let (t, _) = clean_copy();
    let mut bomb = header().into_bytes();
    bomb.resize(64 * 1024 * 1024, b'0');
    zip_with(
        &t.path().join("srv/old-logs.zip"),
        &[
            ("Logging/HttpProxy/Owa/HttpProxy_2021030610-1.LOG", bomb),
            ("Logging/HttpProxy/Owa/nested.zip", b"PK".to_vec()),
        ],
    );
    let (code, v) = scan(&t.path().join("srv"));
    assert_eq!(code, 3);
    assert!(
        has_problem(
            &v,
            "HttpProxy_2021030610-1.LOG",
            "unreadable",
            "possible zip bomb",
            true
        ),
        "{:?}",
        problems(&v)
    );
    assert!(has_problem(
        &v,
        "nested.zip",
        "limit",
        "archive inside an archive",
        true
    ));
}

/// Scans the clean copy as a user who cannot read `locked`: the exit code and the result, or
/// `None` (with the reason printed) where no such user is available.
fn scan_without_access(t: &tempfile::TempDir, locked: &Path) -> Option<(Option<i32>, Value)> {
    let target = t.path().join("srv");
    let args = [
        "scan".as_ref(),
        target.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
        "-q".as_ref(),
    ];
    let Some(out) = common::run_without_access(t.path(), locked, &args) else {
        eprintln!("skipped: no way to make a path unreadable here (root without setpriv)");
        return None;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    Some((out.status.code(), v))
}

#[test]
fn a_permission_denied_file_is_inconclusive() {
    let (t, owa) = clean_copy();
    let f = owa.join("HttpProxy_2021030610-1.LOG");
    std::fs::write(&f, format!("{}{}\r\n", header(), benign_line(1))).unwrap();
    let Some((code, v)) = scan_without_access(&t, &f) else {
        return;
    };
    assert_eq!(code, Some(3), "{:?}", problems(&v));
    assert!(
        has_problem(
            &v,
            "HttpProxy_2021030610-1.LOG",
            "unreadable",
            "permission denied",
            true
        ),
        "{:?}",
        problems(&v)
    );
}

#[test]
fn a_permission_denied_log_folder_is_inconclusive() {
    let (t, owa) = clean_copy();
    // The HttpProxy OWA log folder itself cannot be listed.
    let Some((code, v)) = scan_without_access(&t, &owa) else {
        return;
    };
    assert_eq!(code, Some(3), "{:?}", problems(&v));
    let folder = owa.file_name().unwrap().to_str().unwrap();
    assert!(
        has_problem(&v, folder, "unreadable", "permission denied", true),
        "{:?}",
        problems(&v)
    );
}
