//! Output is not an attack surface (issue 14): a web shell whose file name carries terminal
//! escape sequences, a carriage return, a right-to-left override and a spreadsheet formula, and
//! an IIS line whose client and user-agent fields carry the same, are reported in every format
//! without any of them being obeyed: the text shows them escaped, CSV cells cannot start a
//! formula, JSON Lines and the timeline stay one valid JSON object per line, HTML escapes markup.

use std::path::Path;

use serde_json::Value;

const IIS_FIELDS: &str = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken";

/// The hostile name: window title, colour, carriage return over a fake verdict, a formula and
/// a right-to-left override; no space (it is also a URL in an IIS log).
const NAME: &str = "x\u{1b}]0;owned\u{7}\u{1b}[31m\rNO_EVIDENCE=HYPERLINK(1)\u{202e}<b>.aspx";

fn server(root: &Path) {
    let www = root.join("inetpub/wwwroot/aspnet_client");
    std::fs::create_dir_all(&www).unwrap();
    let shell = format!(
        "<%@ Page Language=\"C#\" %><% System.Diagnostics.Process.{}(\"cmd.exe\", \"/c \" + Request[\"c\"]); %>",
        "Start"
    );
    std::fs::write(www.join(NAME), shell).unwrap();
    let iis = root.join("inetpub/logs/LogFiles/W3SVC1");
    std::fs::create_dir_all(&iis).unwrap();
    let url = format!("/aspnet_client/{}", NAME.to_lowercase());
    std::fs::write(
        iis.join("u_ex210303.log"),
        format!(
            "#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n#Date: 2021-03-03 00:00:00\r\n#Fields: {IIS_FIELDS}\r\n\
2021-03-03 02:20:05 10.1.0.10 POST {url} - 443 - =2+5\u{1b}[2J Mozilla\u{1b}]0;pwned\u{7} - 200 0 0 31\r\n"
        ),
    )
    .unwrap();
}

fn run(target: &Path, format: &str) -> Vec<u8> {
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("exhunt"))
        .args(["scan", "--no-color", "--format", format])
        .arg(target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{format}: {out:?}");
    out.stdout
}

fn no_raw_controls(format: &str, bytes: &[u8], allowed: &[u8]) {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for c in text.chars() {
        let bad = (c.is_control() && !(c as u32 <= 0x7f && allowed.contains(&(c as u8))))
            || ('\u{202a}'..='\u{202e}').contains(&c);
        assert!(!bad, "{format}: raw {c:?} in the output");
    }
}

#[test]
fn hostile_names_and_log_fields_are_inert_in_every_format() {
    let t = tempfile::tempdir().unwrap();
    server(t.path());

    let text = run(t.path(), "text");
    no_raw_controls("text", &text, b"\n");
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("\\x1b]0;owned\\x07\\x1b[31m\\x0dNO_EVIDENCE"),
        "{text}"
    );
    assert!(text.contains("\\u{202e}"));

    let csv = run(t.path(), "csv");
    let mut rows = csv::Reader::from_reader(csv.as_slice());
    let mut cells = 0;
    for row in rows.records() {
        for cell in row.unwrap().iter() {
            cells += 1;
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "CSV cell {cell:?}"
            );
        }
    }
    assert!(cells > 0);
    assert!(
        String::from_utf8_lossy(&csv).contains("'=2+5"),
        "the hostile client address is kept, neutralised"
    );

    for format in ["jsonl", "timeline"] {
        let out = run(t.path(), format);
        no_raw_controls(format, &out, b"\n");
        let mut lines = 0;
        for line in String::from_utf8(out).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert!(v.is_object());
            lines += 1;
        }
        assert!(lines > 0, "{format}");
    }

    let html = String::from_utf8(run(t.path(), "html")).unwrap();
    assert!(!html.contains("<b>.aspx"), "markup from a file name");
    assert!(html.contains("&lt;b&gt;.aspx"));
    no_raw_controls("html", html.as_bytes(), b"\n\t");
}
