//! Each built-in event rule (rules/sigma/EXH-EV-*.yml) on a positive and a near-miss event.
//!
//! There is no EVTX writer, so the events are written in the JSON shape the evtx crate renders
//! from real files (`{"Event": {"System": …, "EventData": …}}`, the same as `evtx_dump -o jsonl`),
//! and go through the same `WinEvent::from_evtx_json` the EVTX reader uses. The reader itself is
//! tested on real files in crates/exhunt/tests/events.rs.

use std::sync::Arc;

use exhunt_checks::events::EventChecker;
use exhunt_model::{Finding, Stage};
use exhunt_rules::RulePack;
use exhunt_rules::sigma::{BUILTIN, SigmaSet};
use exhunt_sources::WinEvent;
use serde_json::{Value, json};

// Web-server behaviour (process tree, connections) as its own module: one test binary per
// area, since every binary links yara-x.
#[path = "event_rules/behaviour.rs"]
mod behaviour;

fn event(channel: &str, provider: &str, id: u32, level: u8, data: Value) -> Value {
    json!({"Event": {"#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {"Provider": {"#attributes": {"Name": provider}}, "EventID": id, "Level": level,
            "TimeCreated": {"#attributes": {"SystemTime": "2021-03-03T04:22:11.1234567Z"}},
            "EventRecordID": 4242, "Channel": channel, "Computer": "EX01.lab.local"},
        "EventData": data}})
}

fn mgmt(cmdlet: &str, params: &str) -> Value {
    // Success (1) form of the MSExchange Management channel: EventID as text with Qualifiers,
    // unnamed Data elements: cmdlet, parameters, caller, SIDs, client, process, ...
    json!({"Event": {"System": {"Provider": {"#attributes": {"Name": "MSExchange CmdletLogs"}},
        "EventID": {"#attributes": {"Qualifiers": "16384"}, "#text": "1"}, "Level": "4",
        "TimeCreated": {"#attributes": {"SystemTime": "2021-03-03T04:25:00.000Z"}},
        "EventRecordID": "77", "Channel": "MSExchange Management", "Computer": "EX01.lab.local"},
        "EventData": {"Data": {"#text": [cmdlet, params, "lab.local/Users/SYSTEM", "S-1-5-18", "S-1-5-18",
            "ECP.Exchange", "4242 w3wp#MSExchangeECPAppPool", "", "5", "00:00:00.1"]}}}})
}

fn sysmon(id: u32, data: Value) -> Value {
    event(
        "Microsoft-Windows-Sysmon/Operational",
        "Microsoft-Windows-Sysmon",
        id,
        4,
        data,
    )
}

fn process(parent: &str, image: &str, cmd: &str) -> Value {
    sysmon(
        1,
        json!({"Image": image, "ParentImage": parent, "CommandLine": cmd, "User": "NT AUTHORITY\\SYSTEM"}),
    )
}

fn security_4688(parent: &str, image: &str, cmd: &str) -> Value {
    event(
        "Security",
        "Microsoft-Windows-Security-Auditing",
        4688,
        0,
        json!({"NewProcessName": image, "ParentProcessName": parent, "CommandLine": cmd, "SubjectUserName": "EX01$"}),
    )
}

fn file_created(image: &str, target: &str) -> Value {
    sysmon(
        11,
        json!({"Image": image, "TargetFilename": target, "ProcessId": 4242}),
    )
}

const W3WP: &str = "C:\\Windows\\System32\\inetsrv\\w3wp.exe";
const OWA_POOL: &str = "c:\\windows\\system32\\inetsrv\\w3wp.exe -ap \"MSExchangeOWAAppPool\" -v \"v4.0\" -c \"C:\\Program Files\\Microsoft\\Exchange Server\\V15\\bin\\GenericAppPoolConfigWithGCServerEnabledFalse.config\" -a \\\\.\\pipe\\iisipm1 -h \"C:\\inetpub\\temp\\apppools\\MSExchangeOWAAppPool\\MSExchangeOWAAppPool.config\" -w \"\" -m 0";
const DEFAULT_POOL: &str = "c:\\windows\\system32\\inetsrv\\w3wp.exe -ap \"DefaultAppPool\" -v \"v4.0\" -l \"webengine4.dll\"";
const CSC: &str = "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\csc.exe";

/// Sysmon 1 of a child of a worker whose command line names its pool.
fn pool_child(pool_cmd: &str, image: &str, user: &str) -> Value {
    sysmon(
        1,
        json!({"Image": image, "ParentImage": W3WP, "ParentCommandLine": pool_cmd,
            "CommandLine": image, "User": user}),
    )
}

/// Sysmon 8 or 10 from `source` into `target`.
fn cross_process(id: u32, source: &str, target: &str, access: &str) -> Value {
    let mut d = json!({"SourceImage": source, "TargetImage": target,
        "SourceProcessGuid": "{5770385f-0000-0000-0000-000000000001}",
        "TargetProcessGuid": "{5770385f-0000-0000-0000-000000000002}"});
    if id == 10 {
        d["GrantedAccess"] = json!(access);
    } else {
        d["StartAddress"] = json!("0x000001F3A5B20000");
    }
    sysmon(id, d)
}

fn connection(image: &str, user: &str, initiated: &str) -> Value {
    sysmon(
        3,
        json!({"Image": image, "User": user, "Initiated": initiated, "Protocol": "tcp",
            "ProcessGuid": "{5770385f-0000-0000-0000-000000000002}",
            "DestinationIp": "203.0.113.7", "DestinationPort": 4444}),
    )
}
const UMW: &str = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\Bin\\UMWorkerProcess.exe";
const OWA_AUTH: &str =
    "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\FrontEnd\\HttpProxy\\owa\\auth\\";

/// (rule, positive events, negative events).
fn cases() -> Vec<(&'static str, Vec<Value>, Vec<Value>)> {
    let um_error = |text: &str, level: u8| {
        event(
            "Application",
            "MSExchange Unified Messaging",
            1040,
            level,
            json!({"Data": {"#text": [text]}}),
        )
    };
    let app_error = |provider: &str, text: &str| {
        event(
            "Application",
            provider,
            4999,
            2,
            json!({"Data": {"#text": [text]}}),
        )
    };
    let script_url = "-ExternalUrl 'http://f/<script language=\"JScript\" runat=\"server\">function Page_Load(){eval(Request[\"x\"],\"unsafe\");}</script>' -Identity 'OAB (Default Web Site)'";
    vec![
        (
            "EXH-EV-1",
            vec![um_error(
                "An unhandled exception occurred: System.InvalidCastException: Unable to cast object",
                2,
            )],
            vec![
                um_error("System.InvalidCastException", 3),
                um_error("The UM call router started.", 2),
                app_error("Windows Error Reporting", "System.InvalidCastException"),
            ],
        ),
        (
            "EXH-EV-2",
            vec![
                app_error(
                    "MSExchange Common",
                    "Watson report about to be sent for process id: 4242, with parameters: E12IIS, c-RTL-AMD64, 15.01.2106.002, UMWorkerProcess, M.Exchange.UM, TextFormattingRunProperties",
                ),
                app_error(
                    "MSExchange Unified Messaging",
                    "An unhandled exception occurred in a UM worker process: System.Runtime.Serialization",
                ),
            ],
            vec![
                app_error(
                    "MSExchange Unified Messaging",
                    "An unhandled exception occurred in a UM worker process: System.OutOfMemoryException",
                ),
                app_error(
                    "Windows Error Reporting",
                    "Watson report umworkerprocess TextFormattingRunProperties",
                ),
            ],
        ),
        (
            "EXH-EV-3",
            vec![
                process(UMW, "C:\\Windows\\System32\\cmd.exe", "cmd /c whoami"),
                security_4688(UMW, "C:\\Windows\\System32\\cmd.exe", "cmd /c whoami"),
            ],
            vec![process(
                UMW,
                "C:\\Windows\\System32\\WerFault.exe",
                "WerFault.exe -u -p 4242",
            )],
        ),
        (
            "EXH-EV-4",
            vec![mgmt("Set-OabVirtualDirectory", script_url)],
            vec![
                mgmt(
                    "Set-OabVirtualDirectory",
                    "-ExternalUrl 'https://mail.example.com/OAB' -Identity 'OAB (Default Web Site)'",
                ),
                mgmt(
                    "Get-OabVirtualDirectory",
                    "-Identity 'OAB (Default Web Site)'",
                ),
            ],
        ),
        (
            "EXH-EV-5",
            vec![event(
                "Security",
                "Microsoft-Windows-Security-Auditing",
                5136,
                0,
                json!({"ObjectClass": "msExchOABVirtualDirectory", "AttributeLDAPDisplayName": "msExchExternalHostName",
                    "AttributeValue": "http://f/<script language=\"JScript\" runat=\"server\">", "ObjectDN": "CN=OAB (Default Web Site),CN=HTTP"}),
            )],
            vec![event(
                "Security",
                "Microsoft-Windows-Security-Auditing",
                5136,
                0,
                json!({"ObjectClass": "msExchOABVirtualDirectory", "AttributeLDAPDisplayName": "msExchExternalHostName",
                    "AttributeValue": "https://mail.example.com/OAB"}),
            )],
        ),
        (
            "EXH-EV-6",
            vec![
                mgmt(
                    "New-MailboxExportRequest",
                    "-Mailbox 'administrator@lab.local' -FilePath '\\\\127.0.0.1\\C$\\inetpub\\wwwroot\\aspnet_client\\x.aspx'",
                ),
                mgmt(
                    "New-ExchangeCertificate",
                    "-GenerateRequest -BinaryEncoded -RequestFile 'C:\\Program Files\\Microsoft\\Exchange Server\\V15\\FrontEnd\\HttpProxy\\owa\\auth\\x.aspx'",
                ),
            ],
            vec![mgmt(
                "New-MailboxExportRequest",
                "-Mailbox 'leaver@lab.local' -FilePath '\\\\backup01\\pst$\\leaver.pst'",
            )],
        ),
        (
            "EXH-EV-7",
            vec![mgmt(
                "New-ManagementRoleAssignment",
                "-Role 'Mailbox Import Export' -User 'administrator@lab.local'",
            )],
            vec![mgmt(
                "New-ManagementRoleAssignment",
                "-Role 'Mail Recipients' -User 'helpdesk@lab.local'",
            )],
        ),
        (
            "EXH-EV-8",
            vec![
                process(
                    W3WP,
                    "C:\\Windows\\System32\\cmd.exe",
                    "cmd /c cd /d C:\\inetpub\\wwwroot",
                ),
                security_4688(W3WP, "C:\\Windows\\System32\\whoami.exe", "whoami /all"),
            ],
            vec![
                process(
                    W3WP,
                    "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\csc.exe",
                    "csc.exe /noconfig",
                ),
                process(
                    "C:\\Windows\\explorer.exe",
                    "C:\\Windows\\System32\\cmd.exe",
                    "cmd",
                ),
            ],
        ),
        (
            "EXH-EV-9",
            vec![process(
                W3WP,
                "C:\\Windows\\System32\\cmd.exe",
                "cmd /c cd /d \"C:\\inetpub\\wwwroot\\aspnet_client\"&whoami&echo [S]&cd&echo [E]",
            )],
            vec![process(
                W3WP,
                "C:\\Windows\\System32\\cmd.exe",
                "cmd /c echo hello & whoami",
            )],
        ),
        (
            "EXH-EV-10",
            vec![
                process(
                    "C:\\Windows\\System32\\cmd.exe",
                    "C:\\Windows\\System32\\rundll32.exe",
                    "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 624 C:\\inetpub\\wwwroot\\l.dmp full",
                ),
                process(
                    "C:\\Windows\\System32\\cmd.exe",
                    "C:\\root\\procdump64.exe",
                    "procdump64.exe -accepteula -ma lsass.exe C:\\root\\lsass.dmp",
                ),
            ],
            vec![process(
                "C:\\Windows\\System32\\svchost.exe",
                "C:\\Windows\\System32\\rundll32.exe",
                "rundll32.exe C:\\Windows\\System32\\comsvcs.dll,ServiceMain",
            )],
        ),
        (
            "EXH-EV-11",
            vec![sysmon(
                10,
                json!({"SourceImage": "C:\\Windows\\System32\\rundll32.exe", "TargetImage": "C:\\Windows\\system32\\lsass.exe",
                    "GrantedAccess": "0x1fffff", "CallTrace": "C:\\Windows\\SYSTEM32\\ntdll.dll+9c534|C:\\Windows\\System32\\comsvcs.dll+1a2b"}),
            )],
            vec![sysmon(
                10,
                json!({"SourceImage": "C:\\Program Files\\Defender\\MsMpEng.exe", "TargetImage": "C:\\Windows\\system32\\lsass.exe",
                    "CallTrace": "C:\\Windows\\SYSTEM32\\ntdll.dll+9c534"}),
            )],
        ),
        (
            "EXH-EV-12",
            vec![
                file_created(
                    "C:\\Windows\\System32\\cmd.exe",
                    &format!("{OWA_AUTH}errorEE.aspx"),
                ),
                file_created(W3WP, "C:\\ProgramData\\x.ps1"),
            ],
            vec![
                file_created(
                    "C:\\Windows\\System32\\msiexec.exe",
                    &format!("{OWA_AUTH}logon.aspx"),
                ),
                file_created(W3WP, "C:\\Windows\\Temp\\report.tmp"),
            ],
        ),
        (
            "EXH-EV-13",
            vec![file_created(
                UMW,
                "C:\\inetpub\\wwwroot\\aspnet_client\\system_web\\x.aspx",
            )],
            vec![file_created(
                UMW,
                "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\UnifiedMessaging\\voicemail\\x.wav",
            )],
        ),
        (
            "EXH-EV-14",
            vec![event(
                "Microsoft-Windows-Windows Defender/Operational",
                "Microsoft-Windows-Windows Defender",
                1116,
                3,
                json!({"Threat Name": "Backdoor:ASP/Chopper.C!dha", "Path": "file:_C:\\inetpub\\wwwroot\\aspnet_client\\x.aspx"}),
            )],
            vec![event(
                "Microsoft-Windows-Windows Defender/Operational",
                "Microsoft-Windows-Windows Defender",
                1116,
                3,
                json!({"Threat Name": "HackTool:Win32/Mimikatz.D", "Path": "file:_C:\\Users\\a\\Documents\\mimidrv.sys"}),
            )],
        ),
        (
            "EXH-EV-15",
            vec![
                json!({"Event": {"System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Eventlog"}},
                "EventID": 1102, "Channel": "Security", "Computer": "EX01"},
                "UserData": {"LogFileCleared": {"SubjectUserName": "admin"}}}}),
            ],
            vec![event(
                "Security",
                "Microsoft-Windows-Security-Auditing",
                4624,
                0,
                json!({"TargetUserName": "admin"}),
            )],
        ),
        (
            "EXH-EV-16",
            vec![event(
                "System",
                "Microsoft-Windows-Eventlog",
                104,
                4,
                json!({}),
            )],
            vec![event(
                "System",
                "Microsoft-Windows-Kernel-General",
                104,
                4,
                json!({}),
            )],
        ),
        (
            "EXH-EV-17",
            vec![mgmt(
                "Install-TransportAgent",
                "-Name 'Evil' -TransportAgentFactory 'x' -AssemblyPath 'C:\\x.dll'",
            )],
            vec![mgmt("Get-TransportAgent", "")],
        ),
        (
            "EXH-EV-18",
            vec![event(
                "Security",
                "Microsoft-Windows-Security-Auditing",
                4756,
                0,
                json!({"MemberName": "CN=eve,OU=Users,DC=lab,DC=local", "TargetUserName": "Exchange Windows Permissions", "SubjectUserName": "admin"}),
            )],
            vec![
                event(
                    "Security",
                    "Microsoft-Windows-Security-Auditing",
                    4756,
                    0,
                    json!({"MemberName": "CN=eve", "TargetUserName": "Marketing"}),
                ),
                event(
                    "Security",
                    "Microsoft-Windows-Security-Auditing",
                    4757,
                    0,
                    json!({"MemberName": "CN=eve", "TargetUserName": "Organization Management"}),
                ),
            ],
        ),
        (
            "EXH-EV-19",
            vec![file_created(
                "C:\\Windows\\System32\\notepad.exe",
                "E:\\Exchange\\TransportRoles\\Shared\\agents.config",
            )],
            vec![file_created(
                "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\Bin\\ExSetup.exe",
                "E:\\Exchange\\TransportRoles\\Shared\\agents.config",
            )],
        ),
        (
            "EXH-EV-20",
            vec![event(
                "Microsoft-Windows-PowerShell/Operational",
                "Microsoft-Windows-PowerShell",
                4104,
                5,
                json!({"ScriptBlockText": "New-MailboxExportRequest -Mailbox a@b -FilePath \\\\127.0.0.1\\c$\\x.aspx"}),
            )],
            vec![event(
                "Microsoft-Windows-PowerShell/Operational",
                "Microsoft-Windows-PowerShell",
                4104,
                5,
                json!({"ScriptBlockText": "Get-MailboxExportRequest | Format-List"}),
            )],
        ),
        (
            "EXH-EV-21",
            vec![
                pool_child(
                    OWA_POOL,
                    "C:\\Windows\\System32\\notepad.exe",
                    "NT AUTHORITY\\SYSTEM",
                ),
                pool_child(
                    OWA_POOL,
                    "C:\\Users\\Public\\csc.exe",
                    "NT AUTHORITY\\SYSTEM",
                ),
                pool_child(
                    OWA_POOL,
                    "C:\\ProgramData\\conhost.exe",
                    "NT AUTHORITY\\SYSTEM",
                ),
            ],
            vec![
                // Exchange's own: page compilation, its console host, error reporting.
                pool_child(OWA_POOL, CSC, "NT AUTHORITY\\SYSTEM"),
                pool_child(
                    OWA_POOL,
                    "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\cvtres.exe",
                    "NT AUTHORITY\\SYSTEM",
                ),
                pool_child(
                    OWA_POOL,
                    "C:\\Windows\\System32\\conhost.exe",
                    "NT AUTHORITY\\SYSTEM",
                ),
                pool_child(
                    OWA_POOL,
                    "C:\\Windows\\System32\\WerFault.exe",
                    "NT AUTHORITY\\SYSTEM",
                ),
                // Another pool is EXH-EV-22's.
                pool_child(
                    DEFAULT_POOL,
                    "C:\\Windows\\System32\\notepad.exe",
                    "IIS APPPOOL\\DefaultAppPool",
                ),
            ],
        ),
        (
            "EXH-EV-22",
            vec![
                pool_child(
                    DEFAULT_POOL,
                    "C:\\Windows\\System32\\notepad.exe",
                    "IIS APPPOOL\\DefaultAppPool",
                ),
                security_4688(W3WP, "C:\\Windows\\Temp\\svch0st.exe", "svch0st.exe"),
            ],
            vec![
                pool_child(
                    DEFAULT_POOL,
                    "C:\\inetpub\\crm\\bin\\roslyn\\csc.exe",
                    "IIS APPPOOL\\DefaultAppPool",
                ),
                pool_child(
                    DEFAULT_POOL,
                    "C:\\Windows\\Microsoft.NET\\Framework\\v4.0.30319\\vbc.exe",
                    "IIS APPPOOL\\DefaultAppPool",
                ),
                security_4688(
                    W3WP,
                    "C:\\Windows\\SysWOW64\\WerFault.exe",
                    "WerFault.exe -u",
                ),
                pool_child(
                    OWA_POOL,
                    "C:\\Windows\\System32\\notepad.exe",
                    "NT AUTHORITY\\SYSTEM",
                ),
                process(
                    "C:\\Windows\\System32\\services.exe",
                    "C:\\Windows\\System32\\notepad.exe",
                    "notepad",
                ),
            ],
        ),
        (
            "EXH-EV-23",
            vec![cross_process(
                8,
                W3WP,
                "C:\\Windows\\System32\\notepad.exe",
                "",
            )],
            vec![cross_process(
                8,
                "C:\\Windows\\System32\\csrss.exe",
                "C:\\Windows\\System32\\notepad.exe",
                "",
            )],
        ),
        (
            "EXH-EV-24",
            vec![
                cross_process(10, W3WP, "C:\\Windows\\System32\\notepad.exe", "0x1fffff"),
                cross_process(10, W3WP, "C:\\Windows\\System32\\lsass.exe", "0x1010"),
            ],
            vec![
                cross_process(10, W3WP, "C:\\Windows\\System32\\notepad.exe", "0x1000"),
                cross_process(10, W3WP, "C:\\Windows\\System32\\svchost.exe", "0x101400"),
                cross_process(10, W3WP, CSC, "0x1fffff"),
                cross_process(
                    10,
                    "C:\\Windows\\System32\\taskmgr.exe",
                    "C:\\Windows\\System32\\notepad.exe",
                    "0x1fffff",
                ),
            ],
        ),
        (
            "EXH-EV-25",
            vec![connection(
                "C:\\Windows\\System32\\notepad.exe",
                "IIS APPPOOL\\DefaultAppPool",
                "true",
            )],
            vec![
                connection(W3WP, "IIS APPPOOL\\DefaultAppPool", "true"),
                connection(
                    "C:\\Windows\\System32\\notepad.exe",
                    "IIS APPPOOL\\DefaultAppPool",
                    "false",
                ),
                connection(
                    "C:\\Windows\\System32\\svchost.exe",
                    "NT AUTHORITY\\NETWORK SERVICE",
                    "true",
                ),
            ],
        ),
    ]
}

fn checker() -> EventChecker {
    let pack = RulePack::builtin().unwrap();
    EventChecker::new(Arc::new(SigmaSet::builtin()), pack.rules(), None, None)
}

/// Findings of one event, with the matches held for the process tree (EXH-EV-24) released.
fn findings(c: &EventChecker, v: &Value) -> Vec<Finding> {
    let ev = WinEvent::from_evtx_json(v).expect("fixture is an event");
    let mut f = c.check(&ev, "fixture.evtx");
    f.extend(c.take_correlated().findings);
    f
}

#[test]
fn every_builtin_event_rule_has_positive_and_negative_fixtures() {
    let c = checker();
    let cases = cases();
    let ids: Vec<&str> = cases.iter().map(|c| c.0).collect();
    for (id, _) in BUILTIN {
        assert!(ids.contains(&id), "{id} has no fixtures");
    }
    let mut errors = Vec::new();
    for (id, pos, neg) in &cases {
        for (i, v) in pos.iter().enumerate() {
            let f = findings(&c, v);
            if !f.iter().any(|f| f.rule_id == *id) {
                errors.push(format!(
                    "{id}: positive #{i} not matched (got {:?})",
                    f.iter().map(|f| &f.rule_id).collect::<Vec<_>>()
                ));
            }
        }
        for (i, v) in neg.iter().enumerate() {
            let f = findings(&c, v);
            if f.iter().any(|f| f.rule_id == *id) {
                errors.push(format!("{id}: negative #{i} matched"));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn event_findings_carry_catalogue_metadata_and_entities() {
    let c = checker();
    let v = mgmt(
        "Set-OabVirtualDirectory",
        "-ExternalUrl 'http://f/<script>function Page_Load(){}</script>'",
    );
    let f = findings(&c, &v);
    assert_eq!(f.len(), 1);
    let f = &f[0];
    assert_eq!(f.rule_id, "EXH-EV-4");
    assert_eq!(f.cves, vec!["CVE-2021-27065"]);
    assert_eq!(f.stage, Stage::Persistence);
    assert_eq!(f.joins.as_deref(), Some("EXH-PL-6"));
    assert_eq!(f.evidence.line, 77);
    assert!(
        f.evidence
            .excerpt
            .contains("Set-OabVirtualDirectory -ExternalUrl")
    );
    assert_eq!(f.entities.server.as_deref(), Some("EX01.lab.local"));
    assert_eq!(
        f.entities.account.as_deref(),
        Some("lab.local/Users/SYSTEM")
    );
    assert_eq!(
        f.timestamp.unwrap().to_rfc3339(),
        "2021-03-03T04:25:00+00:00"
    );
}

#[test]
fn time_filters_apply_to_events() {
    let pack = RulePack::builtin().unwrap();
    let since = exhunt_sources::time::parse_iso("2021-04-01").unwrap();
    let c = EventChecker::new(
        Arc::new(SigmaSet::builtin()),
        pack.rules(),
        Some(since),
        None,
    );
    let v = process(W3WP, "C:\\Windows\\System32\\cmd.exe", "cmd /c whoami");
    assert!(findings(&c, &v).is_empty());
    assert!(!findings(&checker(), &v).is_empty());
}

#[test]
fn ecp_log_and_management_event_of_one_change_are_one_story_step() {
    use exhunt_model::{ArtefactKind, Campaign, Confidence, Entities, Evidence, Severity};
    let c = checker();
    let ev = findings(
        &c,
        &mgmt(
            "Set-OabVirtualDirectory",
            "-ExternalUrl 'http://f/<script>function Page_Load(){}</script>'",
        ),
    );
    let ecp = Finding {
        id: String::new(),
        rule_id: "EXH-PL-6".into(),
        title: "CVE-2021-27065: script markup set in a virtual directory URL (ECP)".into(),
        campaign: Campaign::ProxyLogon,
        cves: vec!["CVE-2021-27065".into()],
        attack: "T1505.003".into(),
        severity: Severity::Critical,
        confidence: Confidence::High,
        stage: Stage::Persistence,
        timestamp: exhunt_sources::time::parse_iso("2021-03-03T04:25:00.100Z"),
        evidence: Evidence {
            path: "ECP/Server/ECPServer2021030304-1.LOG".into(),
            line: 7,
            offset: 0,
            excerpt: String::new(),
        },
        entities: Entities::default(),
        kind: ArtefactKind::EcpServerLog,
        joins: None,
        outcome: None,
    };
    let mut all = vec![ecp];
    all.extend(ev);
    let story = exhunt_checks::story::build(&all);
    assert_eq!(story.len(), 1, "{story:#?}");
    assert_eq!(story[0].count, 2);
    assert!(
        story[0].summary.contains("ECP server logs")
            && story[0].summary.contains("Windows event logs"),
        "{}",
        story[0].summary
    );
}
