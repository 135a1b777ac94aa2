//! The corrupt-evidence corpus (issue #7): cases generated from the clean and compromised
//! examples — truncations at every structure boundary, wrong and mixed encodings, NUL-filled and
//! sparse files, 1 MiB and 100 MiB lines, `#Fields:` changes, duplicated headers, zip bombs by
//! ratio and by entry count, traversal and absolute member names, corrupt and truncated zips,
//! symlink loops — each scanned by the real binary: no panic, exit code 2 never (that is for
//! errors of exhunt itself), a coverage entry naming the problem, and `inconclusive` wherever
//! evidence the checks need could not be read.

use std::io::Write;

use assert_cmd::Command;
use serde_json::Value;

use crate::common;
use common::{copy_dir, examples};

const PROXY: &str = "Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/Ecp";

/// An HttpProxy file of the compromised example with the SSRF in it.
fn attack_log() -> Vec<u8> {
    let dir = PROXY
        .split('/')
        .fold(examples().join("compromised"), |p, c| p.join(c));
    std::fs::read(dir.join("HttpProxy_2021030302-1.LOG")).unwrap()
}

/// What a case must produce.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Evidence lost: the ProxyLogon answer may not be "no evidence".
    Lost,
    /// Nothing the checks need was lost: the clean server stays clean.
    Kept,
    /// Either, but never a crash; the problem must be named.
    Named,
}

struct Case {
    name: String,
    /// Relative path → bytes, written into a copy of the clean example.
    files: Vec<(String, Vec<u8>)>,
    /// Substring of the coverage entry the case must produce.
    reason: &'static str,
    expect: Expect,
}

fn case(
    name: impl Into<String>,
    rel: &str,
    bytes: Vec<u8>,
    reason: &'static str,
    expect: Expect,
) -> Case {
    Case {
        name: name.into(),
        files: vec![(rel.to_string(), bytes)],
        reason,
        expect,
    }
}

fn zip_of(members: &[(&str, Vec<u8>)], method: zip::CompressionMethod) -> Vec<u8> {
    let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (n, d) in members {
        zw.start_file(*n, opts).unwrap();
        zw.write_all(d).unwrap();
    }
    zw.finish().unwrap().into_inner()
}

fn cases() -> Vec<Case> {
    let log = attack_log();
    let text = String::from_utf8(log.clone()).unwrap();
    let target = format!("{PROXY}/HttpProxy_2021030302-9.LOG");
    let mut v = Vec::new();

    // 1. Truncations at every structure boundary of the file: after and inside each of the
    //    first lines (bare header, directives, #Fields, first record), and inside quoted values.
    let mut offsets = vec![];
    let mut pos = 0;
    for line in text.split_inclusive('\n').take(8) {
        offsets.push(pos + line.len() / 2);
        offsets.push(pos + line.len());
        pos += line.len();
    }
    for (i, &cut) in offsets.iter().enumerate() {
        // Cutting before the first record leaves no record: a header-only log loses nothing;
        // cutting in the header layout itself (before #Fields ends) makes the records unreadable,
        // but then there are none either. The case must simply be read and named.
        v.push(case(
            format!("truncated-at-boundary-{i}"),
            &target,
            log[..cut].to_vec(),
            "",
            Expect::Named,
        ));
    }
    // Mid-record cut: the file ends without a line end.
    let mid = text.rfind("ServerInfo~").unwrap() + 20;
    v.push(case(
        "truncated-mid-record",
        &target,
        log[..mid].to_vec(),
        "without a line end",
        Expect::Named,
    ));

    // 2. Encodings.
    let utf16le: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let utf16be: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    v.push(case(
        "utf16le-no-bom",
        &target,
        utf16le.clone(),
        "",
        Expect::Named,
    ));
    v.push(case(
        "utf16be-no-bom",
        &target,
        utf16be.clone(),
        "",
        Expect::Named,
    ));
    let mut odd = [vec![0xFF, 0xFE], utf16le.clone()].concat();
    odd.push(0x41); // odd byte count
    v.push(case("utf16le-odd-length", &target, odd, "", Expect::Named));
    let mut latin1 = log.clone();
    for b in latin1.iter_mut().step_by(97) {
        if *b == b'a' {
            *b = 0xE9;
        }
    }
    v.push(case(
        "latin1-bytes",
        &target,
        latin1,
        "invalid UTF-8",
        Expect::Named,
    ));
    v.push(case(
        "utf8-bom-then-utf16",
        &target,
        [vec![0xEF, 0xBB, 0xBF], utf16le.clone()].concat(),
        "",
        Expect::Named,
    ));
    let half = log.len() / 2;
    v.push(case(
        "mixed-utf8-then-utf16",
        &target,
        [
            log[..half].to_vec(),
            text[half..]
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes())
                .collect(),
        ]
        .concat(),
        "",
        Expect::Named,
    ));

    // 3. NUL-filled and sparse.
    v.push(case(
        "nul-filled",
        &target,
        vec![0u8; 1 << 20],
        "binary content",
        Expect::Lost,
    ));
    let mut holed = log.clone();
    holed.extend(vec![0u8; 512 * 1024]);
    holed.extend(&log[log.len() / 3..]);
    v.push(case(
        "nul-hole-in-the-middle",
        &target,
        holed,
        "",
        Expect::Named,
    ));
    v.push(case(
        "zero-length",
        &target,
        vec![],
        "empty file",
        Expect::Kept,
    ));
    v.push(case(
        "directives-only",
        &target,
        text.split_inclusive('\n')
            .take(6)
            .collect::<String>()
            .into_bytes(),
        "no records",
        Expect::Kept,
    ));

    // 4. Long lines.
    let long = |n: usize| {
        let mut b = text
            .split_inclusive('\n')
            .take(6)
            .collect::<String>()
            .into_bytes();
        b.extend(std::iter::repeat_n(b'Z', n));
        b.extend(b"\r\n");
        b.extend(
            text.split_inclusive('\n')
                .skip(6)
                .collect::<String>()
                .bytes(),
        );
        b
    };
    v.push(case(
        "line-1mib-plus-one",
        &target,
        long((1 << 20) + 1),
        "longer than",
        Expect::Lost,
    ));
    v.push(case(
        "line-100mib",
        &target,
        long(100 << 20),
        "longer than",
        Expect::Lost,
    ));

    // 5. #Fields changes and headers.
    let fields_line = text.lines().find(|l| l.starts_with("#Fields:")).unwrap();
    let records: String = text.split_inclusive('\n').skip(6).collect();
    v.push(case(
        "fields-change-to-unusable-layout",
        &target,
        format!(
            "{}#Fields: Alpha,Beta\r\n{records}",
            text.split_inclusive('\n').take(6).collect::<String>()
        )
        .into_bytes(),
        "column layout lacks",
        Expect::Lost,
    ));
    v.push(case(
        "fields-change-partial-layout",
        &target,
        format!("#Log-type: HttpProxy Logs\r\n#Fields: DateTime,AnchorMailbox\r\n{records}")
            .into_bytes(),
        "column layout lacks",
        Expect::Lost,
    ));
    v.push(case(
        "fields-reordered-mid-file",
        &target,
        format!("{text}{fields_line}\r\n{records}").into_bytes(),
        "",
        Expect::Named,
    ));
    v.push(case(
        "duplicated-headers",
        &target,
        format!(
            "{}{text}",
            text.split_inclusive('\n').take(6).collect::<String>()
        )
        .into_bytes(),
        "",
        Expect::Named,
    ));
    v.push(case(
        "no-fields-line",
        &target,
        records.clone().into_bytes(),
        "no #Fields",
        Expect::Lost,
    ));
    v.push(case(
        "unbalanced-quotes",
        &target,
        format!("{text}2021-03-03T02:20:00.000Z,\"unterminated,ServerInfo~a]@x:444/ecp/x#,200\r\n")
            .into_bytes(),
        "",
        Expect::Named,
    ));
    v.push(case(
        "binary-garbage-named-log",
        &target,
        (0..50_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect(),
        "binary content",
        Expect::Lost,
    ));
    v.push(case(
        "ten-thousand-columns",
        &target,
        format!(
            "#Log-type: HttpProxy Logs\r\n#Fields: {}\r\n{}\r\n",
            (0..10_000)
                .map(|i| format!("c{i}"))
                .collect::<Vec<_>>()
                .join(","),
            "x,".repeat(10_000)
        )
        .into_bytes(),
        "column layout lacks",
        Expect::Lost,
    ));

    // 6. Zips.
    let zdir = "ProgramData/triage";
    let deflate = zip::CompressionMethod::Deflated;
    let mut bomb = log.clone();
    bomb.resize(48 << 20, b'0');
    v.push(case(
        "zip-bomb-by-ratio",
        &format!("{zdir}/bomb.zip"),
        zip_of(
            &[("Logging/HttpProxy/Ecp/HttpProxy_2021030302-7.LOG", bomb)],
            deflate,
        ),
        "possible zip bomb",
        Expect::Lost,
    ));
    v.push(case(
        "zip-traversal-name",
        &format!("{zdir}/t.zip"),
        zip_of(&[("../../../../etc/HttpProxy_x.LOG", log.clone())], deflate),
        "leaves the archive root",
        Expect::Named,
    ));
    v.push(case(
        "zip-absolute-name",
        &format!("{zdir}/a.zip"),
        zip_of(&[("/var/HttpProxy_x.LOG", log.clone())], deflate),
        "leaves the archive root",
        Expect::Named,
    ));
    v.push(case(
        "zip-drive-letter-name",
        &format!("{zdir}/d.zip"),
        zip_of(&[("C:\\Windows\\HttpProxy_x.LOG", log.clone())], deflate),
        "leaves the archive root",
        Expect::Named,
    ));
    let good = zip_of(
        &[(
            "Logging/HttpProxy/Ecp/HttpProxy_2021030302-6.LOG",
            log.clone(),
        )],
        deflate,
    );
    v.push(case(
        "zip-truncated",
        &format!("{zdir}/cut.zip"),
        good[..good.len() / 2].to_vec(),
        "not a readable zip archive",
        Expect::Lost,
    ));
    let mut corrupt = good.clone();
    let n = corrupt.len();
    for b in &mut corrupt[n - 30..n - 10] {
        *b ^= 0x5A;
    }
    v.push(case(
        "zip-corrupt-central-directory",
        &format!("{zdir}/cd.zip"),
        corrupt,
        "",
        Expect::Named,
    ));
    let mut flipped = good.clone();
    for b in &mut flipped[60..200] {
        *b ^= 0xA5;
    }
    v.push(case(
        "zip-corrupt-deflate-stream",
        &format!("{zdir}/fl.zip"),
        flipped,
        "",
        Expect::Named,
    ));
    v.push(case(
        "zip-empty",
        &format!("{zdir}/e.zip"),
        [b"PK\x05\x06".as_slice(), &[0u8; 18]].concat(),
        "",
        Expect::Named,
    ));
    v.push(case(
        "zip-not-a-zip",
        &format!("{zdir}/n.zip"),
        b"this is not a zip".to_vec(),
        "not a readable zip archive",
        Expect::Named,
    ));
    v.push(case(
        "zip-nested-in-logs",
        &format!("{zdir}/nest.zip"),
        zip_of(&[("Logging/old.zip", good.clone())], deflate),
        "archive inside an archive",
        Expect::Lost,
    ));
    let many: Vec<(String, Vec<u8>)> = (0..2000)
        .map(|i| (format!("f{i}.txt"), b"x".to_vec()))
        .collect();
    let many_ref: Vec<(&str, Vec<u8>)> =
        many.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    v.push(case(
        "zip-many-entries",
        &format!("{zdir}/many.zip"),
        zip_of(&many_ref, zip::CompressionMethod::Stored),
        "",
        Expect::Named,
    ));

    // 7. Names, places, web files.
    v.push(case(
        "log-with-spaces-and-unicode-name",
        &format!("{PROXY}/Http Proxy ✓ copy.LOG"),
        log.clone(),
        "",
        Expect::Named,
    ));
    v.push(case(
        "aspx-nul-filled",
        "inetpub/wwwroot/aspnet_client/z.aspx",
        vec![0u8; 4096],
        "",
        Expect::Named,
    ));
    v.push(case(
        "aspx-empty",
        "inetpub/wwwroot/aspnet_client/empty.aspx",
        vec![],
        "",
        Expect::Named,
    ));
    v.push(case(
        "dump-truncated",
        "root/t.dmp",
        b"MDMP".to_vec(),
        "",
        Expect::Named,
    ));
    v.push(case(
        "iis-log-garbage",
        "inetpub/logs/LogFiles/W3SVC1/u_ex210303.log",
        b"\x00\x01\x02garbage\xff\xfe".repeat(1000),
        "",
        Expect::Named,
    ));
    v.push(case("iis-fields-only", "inetpub/logs/LogFiles/W3SVC1/u_ex210399.log", b"#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\r\n".to_vec(), "no records", Expect::Named));
    v.push(case(
        "ecp-log-no-fields",
        "Program Files/Microsoft/Exchange Server/V15/Logging/ECP/Server/ECPServer20210399-1.LOG",
        b"2021-03-03T00:00:00Z,EX01,x,\"S:CMD=Set-OabVirtualDirectory.ExternalUrl='<x>'\"\r\n"
            .to_vec(),
        "no #Fields",
        Expect::Lost,
    ));
    v.push(case("oab-log-binary", "Program Files/Microsoft/Exchange Server/V15/Logging/OABGeneratorLog/OABGeneratorLog_20210399-1.LOG", [0xFFu8, 0, 1, 2, 0, 0, 0x80, 0].repeat(500), "binary content", Expect::Lost));
    v.push(case(
        "evtx-magic-garbage",
        "Windows/System32/winevt/Logs/Application.evtx",
        [b"ElfFile\0".as_slice(), &[0xAB; 4096]].concat(),
        "not a readable EVTX file",
        Expect::Lost,
    ));
    v.push(case(
        "crlf-cr-only-lines",
        &target,
        text.replace("\r\n", "\r").into_bytes(),
        "",
        Expect::Named,
    ));
    v.push(case(
        "lf-only-lines",
        &target,
        text.replace("\r\n", "\n").into_bytes(),
        "",
        Expect::Named,
    ));
    v
}

#[test]
fn every_corrupt_case_is_read_without_panic_and_named() {
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    copy_dir(&examples().join("clean"), &base);
    let mut failures = Vec::new();
    for c in &cases {
        let dir = root.path().join(&c.name);
        copy_dir(&base, &dir);
        for (rel, bytes) in &c.files {
            let p = rel.split('/').fold(dir.clone(), |p, part| p.join(part));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
        }
        let out = Command::cargo_bin("exhunt")
            .unwrap()
            .arg("scan")
            .arg(&dir)
            .args(["--format", "json", "-q"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let code = out.status.code();
        if stderr.contains("panicked") || code == Some(2) || code.is_none() {
            failures.push(format!("{}: exit {code:?}: {stderr}", c.name));
            continue;
        }
        let v: Value = match serde_json::from_slice(&out.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: output is not JSON: {e}", c.name));
                continue;
            }
        };
        let s = &v["servers"][0];
        let ledger = format!("{}{}", s["coverage"]["problems"], s["coverage"]["skipped"]);
        if !c.reason.is_empty() && !ledger.contains(c.reason) {
            failures.push(format!(
                "{}: no coverage entry containing {:?}",
                c.name, c.reason
            ));
        }
        let proxylogon = s["verdicts"][0]["verdict"].as_str().unwrap_or("");
        match c.expect {
            Expect::Lost if proxylogon == "no-evidence" => failures.push(format!(
                "{}: evidence was lost but the verdict is no-evidence",
                c.name
            )),
            Expect::Kept if proxylogon != "no-evidence" => failures.push(format!(
                "{}: nothing was lost but the verdict is {proxylogon}",
                c.name
            )),
            _ => {}
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_symlink_loop_and_a_dangling_link_are_named() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("srv");
    copy_dir(&examples().join("clean"), &dir);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&dir, dir.join("inetpub").join("loop")).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("dangling")).unwrap();
    }
    let (code, v) = common::scan_json(&dir, &[]);
    assert_eq!(code, 0);
    #[cfg(unix)]
    {
        let problems = v["servers"][0]["coverage"]["problems"].to_string();
        assert!(
            problems.matches("symbolic link, not followed").count() >= 2,
            "{problems}"
        );
    }
    #[cfg(not(unix))]
    let _ = v;
}
