//! Windows events that arrive as JSON exports instead of EVTX: the three shapes give the same
//! findings as the EVTX they came from (converted here from the real samples in
//! ../shared/data), a recorded ProxyLogon run in flattened JSON Lines (written here, from the
//! spec's event descriptions) gives the chain, benign noise gives nothing, several hosts give
//! several servers, and bad input is named line by line.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::common;
use common::{scan_json, shared};

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

/// The event-export line of the first server's coverage.
fn export_kind(v: &Value) -> Value {
    v["servers"][0]["coverage"]["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "event-export")
        .expect("event exports were read")
        .clone()
}

fn problems(v: &Value) -> Vec<String> {
    v["servers"][0]["coverage"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reason"].as_str().unwrap().to_string())
        .collect()
}

/// Every record of every `.evtx` under `dir`, as the evtx crate renders it (the `evtx_dump`
/// shape).
fn evtx_records(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut files: Vec<_> = walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "evtx"))
        .collect();
    files.sort();
    for f in files {
        let mut p = evtx::EvtxParser::from_path(&f).unwrap();
        for r in p.records_json_value().flatten() {
            out.push(r.data);
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}

fn sys<'a>(ev: &'a Value, k: &str) -> &'a Value {
    &ev["Event"]["System"][k]
}

fn scalar(v: &Value) -> Value {
    match v {
        Value::Object(m) => m.get("#text").cloned().unwrap_or(Value::Null),
        other => other.clone(),
    }
}

/// The unnamed Data elements and the named fields of an evtx-shaped event.
fn data_of(ev: &Value) -> (Vec<String>, Map<String, Value>) {
    let mut unnamed = Vec::new();
    let mut named = Map::new();
    for part in ["EventData", "UserData"] {
        let Some(Value::Object(d)) = ev["Event"].get(part) else {
            continue;
        };
        let d = if part == "UserData" {
            match d.values().next() {
                Some(Value::Object(inner)) => inner.clone(),
                _ => continue,
            }
        } else {
            d.clone()
        };
        for (k, v) in d {
            if k == "Data" {
                match scalar(&v) {
                    Value::Array(a) => {
                        unnamed.extend(a.iter().map(|x| x.as_str().unwrap_or("").to_string()))
                    }
                    Value::String(s) => unnamed.push(s),
                    _ => {}
                }
            } else if k != "#attributes" {
                named.insert(k, scalar(&v));
            }
        }
    }
    (unnamed, named)
}

fn time_of(ev: &Value) -> Value {
    sys(ev, "TimeCreated")["#attributes"]["SystemTime"].clone()
}

fn provider_of(ev: &Value) -> Value {
    sys(ev, "Provider")["#attributes"]["Name"].clone()
}

/// NXLog-style flattened event. Unnamed data is kept only as the rendered message, the way the
/// MSExchange Management events reach most SIEMs ("Cmdlet failed. Cmdlet X, parameters Y.").
fn to_flat(ev: &Value) -> Value {
    let (unnamed, named) = data_of(ev);
    let mut o = Map::new();
    o.insert("EventTime".into(), time_of(ev));
    o.insert("Hostname".into(), sys(ev, "Computer").clone());
    o.insert("Channel".into(), sys(ev, "Channel").clone());
    o.insert("SourceName".into(), provider_of(ev));
    // The ID as text, as NXLog's CSV-to-JSON paths write it.
    o.insert(
        "EventID".into(),
        Value::String(
            scalar(sys(ev, "EventID"))
                .to_string()
                .trim_matches('"')
                .to_string(),
        ),
    );
    o.insert("RecordNumber".into(), scalar(sys(ev, "EventRecordID")));
    if !unnamed.is_empty() {
        o.insert(
            "Message".into(),
            Value::String(format!(
                "Cmdlet failed. Cmdlet {}, parameters {}.",
                unnamed[0],
                unnamed.get(1).cloned().unwrap_or_default()
            )),
        );
    }
    for (k, v) in named {
        o.insert(k, v);
    }
    Value::Object(o)
}

/// Winlogbeat / ECS document.
fn to_ecs(ev: &Value) -> Value {
    let (unnamed, named) = data_of(ev);
    let mut data = named;
    for (i, u) in unnamed.iter().enumerate() {
        data.insert(format!("param{}", i + 1), Value::String(u.clone()));
    }
    json!({
        "@timestamp": time_of(ev),
        "host": {"name": sys(ev, "Computer")},
        "event": {"code": scalar(sys(ev, "EventID")).to_string().trim_matches('"')},
        "winlog": {
            "channel": sys(ev, "Channel"),
            "event_id": scalar(sys(ev, "EventID")),
            "provider_name": provider_of(ev),
            "computer_name": sys(ev, "Computer"),
            "record_id": scalar(sys(ev, "EventRecordID")),
            "event_data": data,
        }
    })
}

fn write_jsonl(path: &Path, events: &[Value]) {
    let mut f = std::fs::File::create(path).unwrap();
    for e in events {
        writeln!(f, "{}", serde_json::to_string(e).unwrap()).unwrap();
    }
}

#[test]
fn each_export_shape_gives_the_findings_of_the_evtx() {
    let Some(data) = shared() else { return };
    let src = data.join("Yamato-Security_hayabusa-sample-evtx");
    let (_, from_evtx) = scan_json(&src, &[]);
    let want = counts(&from_evtx);
    assert!(!want.is_empty());
    let events = evtx_records(&src);
    assert_eq!(events.len(), 2245);
    let tmp = tempfile::tempdir().unwrap();
    // evtx_dump -o jsonl
    let d1 = tmp.path().join("dump");
    std::fs::create_dir(&d1).unwrap();
    write_jsonl(&d1.join("events.jsonl"), &events);
    // evtx_dump -o json: pretty objects with "Record N" lines between.
    let d2 = tmp.path().join("dump-pretty");
    std::fs::create_dir(&d2).unwrap();
    let mut pretty = String::new();
    for (i, e) in events.iter().enumerate() {
        pretty.push_str(&format!(
            "Record {}\n{}\n",
            i + 1,
            serde_json::to_string_pretty(e).unwrap()
        ));
    }
    std::fs::write(d2.join("events.json"), pretty).unwrap();
    // Flattened JSON Lines.
    let d3 = tmp.path().join("flat");
    std::fs::create_dir(&d3).unwrap();
    write_jsonl(
        &d3.join("nxlog.json"),
        &events.iter().map(to_flat).collect::<Vec<_>>(),
    );
    // Winlogbeat as one JSON array, gzip-compressed.
    let d4 = tmp.path().join("ecs");
    std::fs::create_dir(&d4).unwrap();
    let arr = serde_json::to_vec(&events.iter().map(to_ecs).collect::<Vec<_>>()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(d4.join("winlogbeat.json.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&arr).unwrap();
    gz.finish().unwrap();
    for d in [&d1, &d2, &d3, &d4] {
        let (_, v) = scan_json(d, &[]);
        assert_eq!(counts(&v), want, "{}: {:?}", d.display(), problems(&v));
        let k = export_kind(&v);
        assert_eq!(k["records"], 2245, "{}", d.display());
        assert!(
            problems(&v).is_empty(),
            "{}: {:?}",
            d.display(),
            problems(&v)
        );
    }
}

/// A recorded ProxyLogon run as flattened JSON Lines, following the spec's event descriptions,
/// among thousands of benign events. The script text is built from pieces here.
fn proxylogon_run(path: &Path, benign: usize) {
    let host = "EX01.lab.local";
    let mut lines = Vec::new();
    let mut t = 0u32;
    let mut time = || {
        t += 1;
        format!("2021-03-03 04:{:02}:{:02}", (t / 60) % 60, t % 60)
    };
    for i in 0..benign {
        lines.push(json!({"EventTime": time(), "Hostname": host,
            "Channel": "Microsoft-Exchange-ActiveMonitoring/ProbeResult", "EventID": 2,
            "SourceName": "Microsoft-Exchange-ActiveMonitoring", "ResultName": format!("OWA.Protocol.Probe/{i}"),
            "Message": "Probe result: Succeeded"}));
        lines.push(json!({"EventTime": time(), "Hostname": host,
            "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "SourceName": "Microsoft-Windows-Sysmon",
            "Image": "C:\\Windows\\System32\\svchost.exe", "ParentImage": "C:\\Windows\\System32\\services.exe",
            "CommandLine": "svchost.exe -k netsvcs"}));
        lines.push(json!({"EventTime": time(), "Hostname": host,
            "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 11, "SourceName": "Microsoft-Windows-Sysmon",
            "Image": "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\Bin\\MSExchangeTransport.exe",
            "TargetFilename": format!("C:\\Program Files\\Microsoft\\Exchange Server\\V15\\TransportRoles\\Logs\\trace{i}.log")}));
    }
    let script = [
        "<scr",
        "ipt language=\"JScript\" runat=\"server\">function Page_Load(){ev",
        "al(Request[\"k\"],\"unsafe\");}</scr",
        "ipt>",
    ]
    .concat();
    lines.push(json!({"EventTime": "2021-03-03 02:15:31", "Hostname": host, "Channel": "MSExchange Management",
        "EventID": 1, "SourceName": "MSExchange CmdletLogs", "Level": 4,
        "Message": format!("Cmdlet suceeded. Cmdlet Set-OabVirtualDirectory, parameters -ExternalUrl \"http://f/{script}\" -Identity \"OAB (Default Web Site)\".")}));
    lines.push(json!({"EventTime": "2021-03-03 02:16:02", "Hostname": host,
        "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 11, "SourceName": "Microsoft-Windows-Sysmon",
        "Image": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
        "TargetFilename": "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\FrontEnd\\HttpProxy\\owa\\auth\\web.aspx"}));
    lines.push(json!({"EventTime": "2021-03-03 02:20:40", "Hostname": host,
        "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "SourceName": "Microsoft-Windows-Sysmon",
        "Image": "C:\\Windows\\System32\\cmd.exe", "ParentImage": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
        "CommandLine": "cmd /c cd /d C:\\inetpub\\wwwroot\\aspnet_client&whoami"}));
    write_jsonl(path, &lines);
}

#[test]
fn recorded_proxylogon_run_in_flattened_jsonl_gives_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    proxylogon_run(&tmp.path().join("ex01-events.jsonl"), 1000);
    let (code, v) = scan_json(tmp.path(), &[]);
    assert_eq!(code, 1);
    let s = &v["servers"][0];
    assert_eq!(
        s["name"], "EX01.lab.local",
        "the export's host names the server"
    );
    let pl = s["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["campaign"] == "proxy-logon")
        .unwrap();
    assert_eq!(pl["verdict"], "compromised", "{pl}");
    let c = counts(&v);
    assert_eq!(
        c,
        BTreeMap::from([
            ("EXH-EV-4".to_string(), 1),
            ("EXH-EV-8".to_string(), 1),
            ("EXH-EV-12".to_string(), 1)
        ]),
        "the three steps and nothing from the 3,000 benign events"
    );
    // The story, in time order: script planted, file written, command run.
    let story: Vec<&str> = s["story"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["summary"].as_str().unwrap())
        .collect();
    assert_eq!(story.len(), 3, "{story:?}");
    assert!(
        story[0].contains("virtual directory URL set to script"),
        "{story:?}"
    );
    assert!(story[1].contains("Script file written"), "{story:?}");
    assert!(story[2].contains("started a shell"), "{story:?}");
    let f = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule_id"] == "EXH-EV-4")
        .unwrap();
    assert_eq!(f["kind"], "event-export");
    assert_eq!(
        f["evidence"]["line"], 3001,
        "line of the event in the export"
    );
    let chans = s["coverage"]["channels"].as_array().unwrap();
    assert_eq!(chans.len(), 3);
    assert!(chans.iter().all(|c| c["host"] == "EX01.lab.local"));
}

#[test]
fn an_export_with_several_hosts_gives_one_server_each() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("siem.jsonl");
    proxylogon_run(&p, 5);
    let other = json!({"EventTime": "2021-03-04 10:00:00", "Hostname": "EX02.lab.local",
        "Channel": "Security", "EventID": 4756, "SourceName": "Microsoft-Windows-Security-Auditing",
        "TargetUserName": "Exchange Windows Permissions", "MemberName": "CN=eve", "SubjectUserName": "admin"});
    let quiet = json!({"EventTime": "2021-03-04 10:00:00", "Hostname": "EX03.lab.local",
        "Channel": "Security", "EventID": 4624, "SourceName": "Microsoft-Windows-Security-Auditing"});
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str(&format!("{other}\n{quiet}\n"));
    std::fs::write(&p, text).unwrap();
    let (_, v) = scan_json(tmp.path(), &[]);
    let servers = v["servers"].as_array().unwrap();
    let names: Vec<&str> = servers
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["EX01.lab.local", "EX02.lab.local", "EX03.lab.local"]
    );
    let ex02 = &servers[1];
    assert_eq!(ex02["findings"].as_array().unwrap().len(), 1);
    assert_eq!(ex02["findings"][0]["rule_id"], "EXH-EV-18");
    assert_eq!(servers[2]["findings"].as_array().unwrap().len(), 0);
    assert_eq!(servers[0]["findings"].as_array().unwrap().len(), 3);
    assert!(
        servers[0]["coverage"]["channels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["host"] == "EX01.lab.local")
    );
}

#[test]
fn bad_export_input_is_named_by_line_and_the_rest_read() {
    let tmp = tempfile::tempdir().unwrap();
    let good = |id: Value| {
        json!({"EventTime": "2021-03-03 02:20:40", "Hostname": "EX01",
        "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": id, "SourceName": "Microsoft-Windows-Sysmon",
        "Image": "C:\\Windows\\System32\\cmd.exe", "ParentImage": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
        "CommandLine": "cmd /c whoami"}).to_string()
    };
    // Mixed file: JSON and other lines; EventID as a number, a string and an object; an event
    // without a time.
    let mixed = [
        good(json!(1)),
        "Mar  3 02:20:41 ex01 syslog: not JSON".to_string(),
        good(json!("1")),
        good(json!({"value": 1})),
        r#"{"Hostname": "EX01", "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Image": "C:\\Windows\\System32\\cmd.exe", "ParentImage": "C:\\Windows\\System32\\inetsrv\\w3wp.exe"}"#.to_string(),
    ]
    .join("\n");
    std::fs::write(tmp.path().join("mixed.jsonl"), mixed).unwrap();
    let (_, v) = scan_json(tmp.path(), &[]);
    let p = problems(&v);
    let has = |s: &str| p.iter().any(|r| r.contains(s));
    assert!(has("line 2: not JSON"), "{p:?}");
    assert!(has("line 4: EventID is an object"), "{p:?}");
    assert!(has("line 5"), "event without a time named: {p:?}");
    // Number and string IDs match; the object one is checked without an id (the rule needs 1);
    // the untimed one still matches.
    assert_eq!(counts(&v).get("EXH-EV-8"), Some(&3), "{:?}", counts(&v));

    // A JSON array cut in the middle.
    let t2 = tempfile::tempdir().unwrap();
    let arr = format!(
        "[{},{},{}",
        good(json!(1)),
        good(json!(1)),
        &good(json!(1))[..60]
    );
    std::fs::write(t2.path().join("cut.json"), arr).unwrap();
    let (code, v) = scan_json(t2.path(), &[]);
    let p = problems(&v);
    assert!(p.iter().any(|r| r.contains("truncated")), "{p:?}");
    assert_eq!(counts(&v).get("EXH-EV-8"), Some(&2));
    assert_eq!(code, 1);
    let k = export_kind(&v);
    assert_eq!(k["files_complete"], 0, "a cut export is not complete");
}

#[test]
fn a_200_mb_single_line_array_is_streamed() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("big.json");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    // 2,000 events of ~100 KB each on one line (a ScriptBlockText-heavy export).
    let filler = "Get-Process | Out-Null; ".repeat(4200);
    f.write_all(b"[").unwrap();
    for i in 0..2000 {
        if i > 0 {
            f.write_all(b",").unwrap();
        }
        let text = if i == 1999 {
            format!(
                "{filler} New-MailboxExportRequest -Mailbox a -FilePath \\\\127.0.0.1\\c$\\x.aspx"
            )
        } else {
            filler.clone()
        };
        let e = json!({"@timestamp": "2021-03-03T02:20:40Z", "winlog": {"channel": "Microsoft-Windows-PowerShell/Operational",
            "event_id": 4104, "provider_name": "Microsoft-Windows-PowerShell", "computer_name": "EX01",
            "event_data": {"ScriptBlockText": text}}});
        serde_json::to_writer(&mut f, &e).unwrap();
    }
    f.write_all(b"]").unwrap();
    f.into_inner().unwrap().sync_all().unwrap();
    assert!(std::fs::metadata(&p).unwrap().len() > 200_000_000);
    let (_, v) = scan_json(tmp.path(), &[]);
    assert_eq!(counts(&v).get("EXH-EV-20"), Some(&1), "{:?}", problems(&v));
    let k = export_kind(&v);
    assert_eq!(k["records"], 2000);
}
