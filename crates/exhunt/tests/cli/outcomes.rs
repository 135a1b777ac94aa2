//! Failed exploitation is visible (issue 13): a server whose ProxyLogon SSRF attempts reached
//! only autodiscover says so in the text, HTML and JSON outputs — a failed attempt, not an
//! attempt of unknown outcome, never a success — and a result saved by an older exhunt (schema
//! 1.3, no `outcome`) still loads.

use std::path::Path;

use serde_json::Value;

use super::common::scan_json;

const PROXY_FIELDS: &str = "DateTime,RequestId,Protocol,UrlStem,AuthenticationType,IsAuthenticated,AuthenticatedUser,AnchorMailbox,UserAgent,ClientIpAddress,ServerHostName,HttpStatus,Method,RoutingHint,BackEndCookie";
const IIS_FIELDS: &str = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken";

/// A front end that saw one autodiscover-only SSRF attempt, in HttpProxy and IIS.
fn scanned_server(root: &Path) {
    let proxy = root.join("Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/Ecp");
    std::fs::create_dir_all(&proxy).unwrap();
    std::fs::write(
        proxy.join("HttpProxy_2021030302-1.LOG"),
        format!(
            "{PROXY_FIELDS}\r\n#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n#Date: 2021-03-03T02:00:00.000Z\r\n#Fields: {PROXY_FIELDS}\r\n\
2021-03-03T02:14:05.585Z,1a0e41a7-1111-2222-3333-444455556666,Ecp,/ecp/x.js,FBA,false,,ServerInfo~a]@EX01.contoso.local:444/autodiscover/autodiscover.xml?#,Mozilla/5.0,198.51.100.11,EX01,200,POST,X-AnonResource-Backend-Cookie,\r\n"
        ),
    )
    .unwrap();
    let iis = root.join("inetpub/logs/LogFiles/W3SVC1");
    std::fs::create_dir_all(&iis).unwrap();
    std::fs::write(
        iis.join("u_ex210303.log"),
        format!(
            "#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n#Date: 2021-03-03 00:00:00\r\n#Fields: {IIS_FIELDS}\r\n\
2021-03-03 02:14:05 10.1.0.10 POST /ecp/x.js - 443 - 198.51.100.11 Mozilla/5.0 - 200 0 0 31\r\n"
        ),
    )
    .unwrap();
}

fn exhunt(args: &[&str]) -> std::process::Output {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("exhunt"))
        .args(args)
        .output()
        .unwrap()
}

fn strip(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(m) => {
            for k in keys {
                m.remove(*k);
            }
            for x in m.values_mut() {
                strip(x, keys);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip(x, keys)),
        _ => {}
    }
}

#[test]
fn a_refused_ssrf_shows_as_a_failed_attempt_in_every_output() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("EX01");
    scanned_server(&target);

    // JSON: the model field, on the findings and on the step.
    let (code, v) = scan_json(&target, &[]);
    assert_eq!(code, 1);
    // `outcome` came with schema 1.4; later minor versions keep it.
    let minor: u32 = v["schema_version"].as_str().unwrap()["1.".len()..]
        .parse()
        .unwrap();
    assert!(minor >= 4, "{}", v["schema_version"]);
    let s = &v["servers"][0];
    let pl = &s["verdicts"][0];
    assert_eq!(pl["campaign"], "proxy-logon");
    assert_eq!(pl["verdict"], "attempted", "{pl}");
    for f in s["findings"].as_array().unwrap() {
        assert_eq!(f["outcome"], "refused", "{f}");
        assert_eq!(f["stage"], "exploit-attempt", "{f}");
    }
    let steps = s["story"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "one request, one step: {steps:#?}");
    assert_eq!(steps[0]["outcome"], "refused");
    assert_eq!(steps[0]["count"], 2);

    // Text: the story says "failed attempt", the verdict why.
    let out = exhunt(&["scan", "--no-color", target.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ATTEMPTED"), "{text}");
    assert!(text.contains("failed attempt"), "{text}");
    assert!(text.contains("1 attempt(s) failed"), "{text}");
    assert!(!text.contains("COMPROMISED"), "{text}");

    // HTML: the story bar and the findings table.
    let out = exhunt(&["scan", "--format", "html", target.to_str().unwrap()]);
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(
        html.contains("failed attempt"),
        "no failed attempt in the HTML"
    );
    assert!(html.contains("attempt(s) failed"));

    // A result saved by exhunt 1.3 (no outcome, no method) is still read.
    let mut old = v.clone();
    strip(&mut old, &["outcome", "method"]);
    old["schema_version"] = "1.3".into();
    let saved = t.path().join("old.json");
    std::fs::write(&saved, serde_json::to_vec(&old).unwrap()).unwrap();
    let out = exhunt(&["report", "--format", "text", saved.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ATTEMPTED"), "{text}");
}
