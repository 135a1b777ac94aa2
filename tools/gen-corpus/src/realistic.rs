//! The realistic benchmark corpus: logs shaped like a real Exchange 2016/2019 front end.
//!
//! Why a second generator: the first benchmark corpus mixed every protocol into few files, so a
//! prefilter made of words naming a protocol (`autodiscover`, `/ecp/`) looked selective. On a real
//! server each protocol has its own HttpProxy folder, and in the Autodiscover log *every* line
//! says `autodiscover` (issue 15: 86 % of a real server's lines passed the prefilter). This module
//! writes:
//!
//! - per-protocol, hourly HttpProxy logs (`Logging\HttpProxy\<Protocol>\HttpProxy_<yyyyMMddHH>-1.LOG`)
//!   with the bare header line, the `#` directives and full-width rows: all 74 columns of the
//!   Exchange 2016 CU22-era list, latency fields, `GenericInfo`/`BackEndGenericInfo` strings,
//!   `AnchorMailbox`, `RoutingHint`, `BackEndCookie` in the shapes Exchange writes them;
//! - the IIS W3C logs of both sites, `W3SVC1` (Default Web Site, port 443, every client request)
//!   and `W3SVC2` (Exchange Back End, port 444, the request as proxied by the front end);
//! - the ECP server log and the OAB generator log;
//! - rare attack requests (ProxyLogon, ProxyShell, ProxyNotShell, OWASSRF, web-shell use, the
//!   ECP and OAB file writes, some of them percent-encoded), listed with file and line in
//!   `.attacks.tsv` so that the benchmark can check that every one is found.
//!
//! Where the proportions come from (see [`PROTOCOLS`]): there is no public per-protocol traffic
//! census of Exchange front ends, so the shares are an estimate, stated here so they can be
//! argued with. They follow how the clients work: every Outlook client holds MAPI/HTTP
//! connections (emsmdb and nspi) open and polls them, so MAPI is the busiest log; EWS carries
//! free/busy, Outlook for Mac, Teams calendar and third-party sync; ActiveSync devices hold
//! long-poll `Ping` requests; every client repeats Autodiscover (Outlook about hourly, mobile
//! clients through `autodiscover.json`); OWA is interactive use; RPC/HTTP is the legacy Outlook
//! Anywhere path; PowerShell and ECP are administration and Managed Availability probes; OAB is a
//! daily download per client. Managed Availability probes (`AMProbe/Local/ClientAccess`, the
//! `*/healthcheck.htm` requests) appear in every protocol's log, as on a real server. The file
//! shape matches the server of issue 15 (about 600 MB in 21,841 files: many small hourly files,
//! about 60 rows each on average, busier in working hours).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::{HTTPPROXY_FIELDS, IIS_FIELDS, Rng, T, csv_cell};

/// HttpProxy protocol folders with their share of front-end requests, in per mille.
pub const PROTOCOLS: &[(&str, u64)] = &[
    ("Mapi", 300),
    ("Ews", 190),
    ("Eas", 150),
    ("Autodiscover", 110),
    ("Owa", 90),
    ("RpcHttp", 50),
    ("PowerShell", 45),
    ("Ecp", 35),
    ("Oab", 30),
];

/// Relative traffic of each hour of the day (working hours busier), in arbitrary units.
const HOUR_WEIGHT: [u64; 24] = [
    2, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 13, 11, 13, 14, 13, 12, 9, 6, 4, 3, 3, 2, 2,
];

const FE: &str = "EX01";
const FE_FQDN: &str = "EX01.contoso.local";
const FE_IP: &str = "10.1.0.10";
const BACKENDS: &[(&str, &str)] = &[
    ("EX01.contoso.local", "10.1.0.10"),
    ("EX02.contoso.local", "10.1.0.11"),
    ("EX03.contoso.local", "10.1.0.12"),
];
const BUILD: (u32, u32, u32, u32) = (15, 1, 2176, 2);

/// One request as the front end and the back end see it.
#[derive(Clone, Default)]
struct Req {
    t: T,
    ms: u64,
    protocol: &'static str,
    stem: String,
    query: String,
    method: &'static str,
    auth: &'static str,
    user: String,
    anchor: String,
    ua: String,
    ip: String,
    status: u16,
    routing_type: &'static str,
    routing_hint: String,
    cookie: String,
    backend: usize,
    /// Not proxied (IIS only: `/aspnet_client/`, static files).
    iis_only: bool,
    /// The IIS user name, when it differs from the HttpProxy one.
    iis_user: Option<String>,
    /// Expected rules for the HttpProxy row, the W3SVC1 row.
    expect_proxy: &'static [&'static str],
    expect_iis: &'static [&'static str],
}

const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar", "peggy", "rupert", "sybil", "trent", "victor", "walter",
];
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/88.0.4324.190 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/88.0.4324.182 Safari/537.36 Edg/88.0.705.81",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:86.0) Gecko/20100101 Firefox/86.0",
];
const OUTLOOK: &[&str] = &[
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.13801; Pro)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.13127; Pro)",
    "MSRPC",
];
const MOBILE: &[&str] = &[
    "Outlook-iOS-Android/1.0",
    "Apple-iPhone12C1/1805.227",
    "Android-Mail/2021.02.07.357437227.Release",
    "Outlook-iOS/723.4027091.prod.iphone (4.2105.0)",
];
const PROBE_UA: &str = "AMProbe/Local/ClientAccess";

fn sid(rng: &mut Rng, user: usize) -> String {
    format!(
        "S-1-5-21-{}-{}-{}-{}",
        1_004_336_348 + rng.below(1) as usize,
        1_177_238_915,
        682_003_330,
        1100 + user
    )
}

fn client_ip(rng: &mut Rng) -> String {
    if rng.below(10) < 7 {
        format!("10.1.{}.{}", rng.below(8) + 1, rng.below(200) + 20)
    } else {
        format!(
            "{}.{}",
            rng.pick(&["198.51.100", "203.0.113", "192.0.2"]),
            rng.below(250) + 2
        )
    }
}

/// A benign request of a protocol.
fn benign(rng: &mut Rng, t: T, protocol: &'static str) -> Req {
    let ui = rng.below(USERS.len() as u64) as usize;
    let user = USERS[ui];
    let upn = format!("{user}@contoso.com");
    let mut r = Req {
        t,
        ms: rng.below(1000),
        protocol,
        method: "POST",
        auth: "Negotiate",
        user: format!("CONTOSO\\{user}"),
        anchor: format!("Smtp~{upn}"),
        ip: client_ip(rng),
        status: 200,
        routing_type: "Database",
        backend: rng.below(BACKENDS.len() as u64) as usize,
        ..Req::default()
    };
    // Managed Availability probes: about one request in twelve of each protocol.
    if rng.below(12) == 0 {
        r.ua = PROBE_UA.into();
        r.ip = FE_IP.into();
        r.method = "GET";
        r.auth = "Basic";
        r.user = format!("CONTOSO\\HealthMailbox{:x}", 0xc3a510_u64 + rng.below(4));
        r.anchor = format!(
            "Smtp~HealthMailbox{:x}@contoso.com",
            0xc3a510_u64 + rng.below(4)
        );
        r.routing_hint = "Smtp-UrlParameter".into();
        r.stem = match protocol {
            "Mapi" => "/mapi/healthcheck.htm",
            "Ews" => "/EWS/healthcheck.htm",
            "Eas" => "/Microsoft-Server-ActiveSync/healthcheck.htm",
            "Autodiscover" => "/Autodiscover/healthcheck.htm",
            "Owa" => "/owa/healthcheck.htm",
            "RpcHttp" => "/rpc/healthcheck.htm",
            "PowerShell" => "/powershell/healthcheck.htm",
            "Ecp" => "/ecp/healthcheck.htm",
            _ => "/OAB/healthcheck.htm",
        }
        .into();
        return r;
    }
    match protocol {
        "Mapi" => {
            r.ua = rng.pick(OUTLOOK).to_string();
            let g = rng.guid();
            let nspi = rng.below(4) == 0;
            r.stem = if nspi { "/mapi/nspi/" } else { "/mapi/emsmdb/" }.into();
            r.query = format!("?MailboxId={g}@contoso.com");
            r.anchor = format!("MailboxGuid~{g}@contoso.com");
            r.routing_hint = "MailboxGuidWithDomain-UrlParameter".into();
        }
        "Ews" => {
            r.ua = rng
                .pick(&[
                    OUTLOOK[0],
                    "ExchangeWebServices/EWSManagedApi",
                    "MacOutlook/16.46.21021202 (Intelx64 Mac OS X 11.2.1 (Build 20D74))",
                    "Microsoft Office/16.0 (Microsoft Teams)",
                ])
                .to_string();
            r.auth = "NTLM";
            r.stem = "/EWS/Exchange.asmx".into();
            if rng.below(3) == 0 {
                r.anchor = format!("Sid~{}", sid(rng, ui));
                r.routing_hint = "Sid-LogonUser".into();
            } else {
                r.routing_hint = "Smtp-ExplicitLogon".into();
            }
        }
        "Eas" => {
            r.ua = rng.pick(MOBILE).to_string();
            r.auth = "Basic";
            r.stem = "/Microsoft-Server-ActiveSync/default.eas".into();
            let cmd = *rng.pick(&["Ping", "Ping", "Ping", "Sync", "FolderSync", "SendMail"]);
            r.query = format!(
                "?Cmd={cmd}&User={user}&DeviceId=ApplF{:05}&DeviceType=iPhone",
                rng.below(99999)
            );
            r.routing_hint = "Smtp-ActiveSyncUser".into();
        }
        "Autodiscover" => match rng.below(4) {
            0 => {
                // Outlook for iOS/Android and hybrid lookups.
                r.method = "GET";
                r.auth = "Anonymous";
                r.ua = rng.pick(MOBILE).to_string();
                r.user = String::new();
                r.stem = format!("/autodiscover/autodiscover.json/v1.0/{upn}");
                r.query = format!(
                    "?Protocol={}&RedirectCount=1",
                    rng.pick(&["AutodiscoverV1", "ActiveSync", "Ews", "Rest"])
                );
                r.routing_hint = "Smtp-UrlParameter".into();
            }
            1 => {
                r.method = "GET";
                r.auth = "Anonymous";
                r.ua = rng.pick(MOBILE).to_string();
                r.user = String::new();
                r.stem = "/autodiscover/autodiscover.json".into();
                r.query =
                    format!("?Email={user}%40contoso.com&Protocol=ActiveSync&RedirectCount=1");
                r.routing_hint = "Smtp-UrlParameter".into();
            }
            _ => {
                r.ua = rng.pick(OUTLOOK).to_string();
                r.stem = "/Autodiscover/Autodiscover.xml".into();
                r.routing_hint = "Smtp-AutodiscoverRequest".into();
            }
        },
        "Owa" => {
            r.ua = rng.pick(BROWSERS).to_string();
            r.auth = "Forms";
            let fe_ver = format!("15.1.{}", BUILD.2);
            match rng.below(5) {
                0 => {
                    r.method = "GET";
                    r.stem = format!("/owa/auth/{fe_ver}/themes/resources/segoeui-semibold.ttf");
                    r.user = String::new();
                    r.anchor = String::new();
                    r.auth = "";
                    r.routing_type = "";
                }
                1 => {
                    r.method = "GET";
                    r.stem = "/owa/".into();
                    r.query = "?bO=1".into();
                    r.routing_hint = "Cookie-X-BackEndCookie".into();
                }
                _ => {
                    r.stem = "/owa/service.svc".into();
                    r.query = format!(
                        "?action={}&app=Mail&n={}",
                        rng.pick(&["GetItem", "FindItem", "GetFolder", "GetConversationItems"]),
                        rng.below(200)
                    );
                    r.routing_hint = "Cookie-X-BackEndCookie".into();
                }
            }
            r.cookie = format!(
                "Server~{}~{}~{}",
                BACKENDS[r.backend].0.to_ascii_lowercase(),
                1_941_962_752 + BUILD.2,
                t.plus(-3600).iso_ms(0).trim_end_matches('Z')
            );
        }
        "RpcHttp" => {
            r.ua = "MSRPC".into();
            r.auth = "Ntlm";
            r.method = if rng.below(2) == 0 {
                "RPC_IN_DATA"
            } else {
                "RPC_OUT_DATA"
            };
            let g = rng.guid();
            r.stem = "/rpc/rpcproxy.dll".into();
            r.query = format!("?{g}@contoso.com:6001");
            r.anchor = format!("MailboxGuid~{g}@contoso.com");
            r.routing_hint = "RpcHttpUrl".into();
        }
        "PowerShell" => {
            r.ua = if rng.below(4) == 0 {
                "Microsoft WinRM Client".into()
            } else {
                "Exchange BackEnd Probes".into()
            };
            r.auth = "Kerberos";
            r.user = "CONTOSO\\exadmin".into();
            r.anchor = "Smtp~exadmin@contoso.com".into();
            r.stem = "/powershell".into();
            r.query = format!(
                "?serializationLevel=Full;ExchClientVer=15.1.2176.2;clientApplication=ManagementShell;TargetServer=;PSVersion=5.1.14393.4104&sessionID=Version_15.1_(Build_2175.2)={}",
                rng.guid()
            );
            r.routing_hint = "Smtp-LogonUser".into();
            r.ip = FE_IP.into();
        }
        "Ecp" => {
            r.ua = rng.pick(BROWSERS).to_string();
            r.auth = "Forms";
            r.user = "CONTOSO\\exadmin".into();
            r.anchor = "Smtp~exadmin@contoso.com".into();
            r.ip = "10.1.0.15".into();
            r.routing_hint = "Cookie-X-BackEndCookie".into();
            if rng.below(2) == 0 {
                r.method = "GET";
                r.stem = "/ecp/".into();
            } else {
                r.stem = "/ecp/DDI/DDIService.svc/GetList".into();
                r.query = format!(
                    "?schema=MailboxService&msExchEcpCanary={}",
                    rng.guid().replace('-', "")
                );
            }
        }
        _ => {
            r.method = "GET";
            r.ua = rng.pick(OUTLOOK).to_string();
            r.stem = format!(
                "/OAB/{}/{}",
                "a7f9b2c1-3d4e-4f50-8a6b-7c8d9e0f1a2b",
                rng.pick(&["oab.xml", "oab.xml", "a7f9b2c1-data-3.lzx"])
            );
            r.anchor = "OrganizationMailbox~EX02.contoso.local".into();
            r.routing_type = "Server";
            r.routing_hint = "OrganizationMailbox-OABRequest".into();
        }
    }
    r
}

/// One full-width HttpProxy row.
fn proxy_row(r: &Req, rng: &mut Rng, out: &mut String) {
    let (ma, mi, bu, re) = BUILD;
    let rid = rng.guid();
    let authed = !r.user.is_empty();
    let total = rng.below(400) + 3;
    let be = BACKENDS[r.backend].0;
    let begin = r.t.iso_ms(r.ms);
    let lat = |rng: &mut Rng, n: u64| rng.below(n).to_string();
    let backend_status = if r.status >= 500 {
        String::new()
    } else {
        r.status.to_string()
    };
    let target = if r.protocol == "Oab" {
        "EX02.contoso.local".to_string()
    } else {
        be.to_string()
    };
    let guid_db = rng.guid();
    let fields: [String; 74] = [
        begin.clone(),
        rid.clone(),
        ma.to_string(),
        mi.to_string(),
        bu.to_string(),
        re.to_string(),
        if authed { rng.guid() } else { String::new() },
        r.protocol.to_string(),
        "mail.contoso.com".into(),
        r.stem.clone(),
        match r.protocol {
            "Owa" | "Ecp" => r
                .query
                .split("action=")
                .nth(1)
                .map(|a| a.split('&').next().unwrap_or("").to_string())
                .unwrap_or_default(),
            "Eas" => "Sync".into(),
            _ => String::new(),
        },
        r.auth.to_string(),
        authed.to_string(),
        r.user.clone(),
        String::new(),
        r.anchor.clone(),
        r.ua.clone(),
        r.ip.clone(),
        FE.to_string(),
        r.status.to_string(),
        backend_status,
        String::new(),
        r.method.to_string(),
        "Proxy".into(),
        target,
        format!("Version {ma}.{mi} (Build {bu}.{re})"),
        r.routing_type.to_string(),
        r.routing_hint.clone(),
        r.cookie.clone(),
        BACKENDS[r.backend].0.to_string(),
        lat(rng, 3),
        lat(rng, 8000),
        lat(rng, 60000),
        lat(rng, 4),
        format!(
            "{{{}}}",
            "WsFed-0;WsFed-Ltr-0;Basic-0;NTLM-0;Kerberos-0;Live-0;Oauth-0;Fba-0"
        ),
        lat(rng, 3),
        lat(rng, 2),
        String::new(),
        "0".into(),
        String::new(),
        "0".into(),
        String::new(),
        "0".into(),
        lat(rng, 6),
        lat(rng, 2),
        "0".into(),
        total.to_string(),
        "0".into(),
        "0".into(),
        lat(rng, 2),
        "0".into(),
        lat(rng, total),
        lat(rng, 2),
        lat(rng, 3),
        lat(rng, 2),
        "0".into(),
        "0".into(),
        "0".into(),
        "0".into(),
        lat(rng, total),
        lat(rng, 5),
        lat(rng, 3),
        lat(rng, 4),
        total.to_string(),
        String::new(),
        r.query.clone(),
        format!(
            "BackEndRequestId={};BackEndTime={}ms;",
            rng.guid(),
            rng.below(total)
        ),
        format!(
            "BeginRequest={begin};CorrelationID={};ProxyState-Run=None;FEAuth=BEVersion-{};BeginGetResponse={begin};OnResponseReady={begin};EndGetResponse={begin};ProxyState-Complete=ProxyResponseData;SharedCacheGuard=0;EndRequest={begin};S:ServiceCommonMetadata.HttpMethod={};",
            if authed { rid.as_str() } else { "<empty>" },
            1_941_962_752 + bu,
            r.method
        ),
        String::new(),
        String::new(),
        guid_db,
        if authed { rng.guid() } else { String::new() },
        lat(rng, 2),
        "[RoutingDB:Success]".into(),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&csv_cell(f));
    }
    out.push_str("\r\n");
}

fn iis_row(r: &Req, back_end: bool, rng: &mut Rng, out: &mut String) {
    let q = if r.query.is_empty() {
        "-".to_string()
    } else {
        r.query.trim_start_matches('?').replace(' ', "+")
    };
    let user = match (&r.iis_user, back_end) {
        (Some(u), false) => u.clone(),
        _ if r.user.is_empty() => "-".into(),
        _ => r.user.replace(' ', "+"),
    };
    let (sip, port, cip) = if back_end {
        (BACKENDS[r.backend].1, 444, FE_IP.to_string())
    } else {
        (FE_IP, 443, r.ip.clone())
    };
    let ua = r.ua.replace(' ', "+");
    let _ = write!(
        out,
        "{} {} {sip} {} {} {q} {port} {user} {cip} {ua} {} {} 0 0 {}\r\n",
        r.t.date(),
        r.t.time(),
        r.method,
        r.stem,
        if back_end || r.protocol != "Owa" {
            "-".to_string()
        } else {
            "https://mail.contoso.com/owa/".to_string()
        },
        r.status,
        rng.below(900) + 15
    );
}

fn proxy_header(t: T) -> String {
    let (ma, mi, bu, re) = BUILD;
    format!(
        "{HTTPPROXY_FIELDS}\r\n#Software: Microsoft Exchange Server\r\n#Version: {ma}.{mi:02}.{bu:04}.{re:03}\r\n#Log-type: HttpProxy Logs\r\n#Date: {}\r\n#Fields: {HTTPPROXY_FIELDS}\r\n",
        t.iso_ms(0)
    )
}

fn iis_header(t: T) -> String {
    format!(
        "#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n#Date: {} {}\r\n#Fields: {IIS_FIELDS}\r\n",
        t.date(),
        t.time()
    )
}

const ATT_IP: &str = "104.140.114.110";
const ATT_UA: &str = "ExchangeServicesClient/0.0.0.0";

/// The attack requests injected on one day, `n` the bundle's number (varies the shapes).
fn attacks(day: T, n: u64) -> Vec<Req> {
    let t0 = day.plus(2 * 3600 + 14 * 60 + (n as i64 % 7) * 60);
    let host = format!("a]@{FE_FQDN}:444");
    let base = |dt: i64, protocol: &'static str| Req {
        t: t0.plus(dt),
        ms: 7,
        protocol,
        method: "POST",
        auth: "",
        ip: ATT_IP.into(),
        ua: ATT_UA.into(),
        status: 200,
        routing_type: "Server",
        ..Req::default()
    };
    let mut v = Vec::new();
    // ProxyLogon SSRF (EXH-PL-1 in HttpProxy; EXH-PL-4 for the POST to /ecp/y.js in IIS; the
    // HAFNIUM address and user agent, EXH-IOC-1/2, on both).
    let mut r = base(0, "Ecp");
    r.stem = "/ecp/y.js".into();
    r.anchor = format!("ServerInfo~{host}/ecp/proxyLogon.ecp?#");
    r.routing_hint = "X-BEResourceCookie".into();
    r.status = 241;
    r.expect_proxy = &["EXH-PL-1"];
    r.expect_iis = &["EXH-PL-4"];
    v.push(r);
    // The X-BEResource cookie variant (EXH-PL-2).
    let mut r = base(30, "Ecp");
    r.stem = "/ecp/x1.js".into();
    r.cookie = format!(
        "Server~{FE_FQDN}/ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory~1941962753"
    );
    r.routing_hint = "X-BEResourceCookie".into();
    r.expect_proxy = &["EXH-PL-2"];
    r.expect_iis = &["EXH-PL-4"];
    v.push(r);
    // ProxyShell: autodiscover.json SSRF to the PowerShell back end, anonymous (EXH-PS-1).
    let mut r = base(300, "Autodiscover");
    r.ua = "python-requests/2.25.1".into();
    r.ip = "185.220.101.7".into();
    r.stem = "/autodiscover/autodiscover.json".into();
    r.query = if n.is_multiple_of(2) {
        "?@evil.corp/powershell/?X-Rps-CAT=VgEAVAdXaW5kb3dzQwBBCEtlcmJlcm9zTBxBZG1pbmlzdHJhdG9yQGNvbnRvc28ubG9jYWw=&Email=autodiscover/autodiscover.json%3F@evil.corp".into()
    } else {
        // Percent-encoded and mixed case, as the mitigation bypasses were.
        "?%40evil.corp/%50owershell/?X-Rps-CAT=VgEAVAdXaW5kb3dz&Email=AutoDiscover/AutoDiscover.JSON%253F%2540evil.corp".into()
    };
    r.expect_proxy = &["EXH-PS-1"];
    r.expect_iis = &["EXH-PS-1"];
    v.push(r);
    // ProxyNotShell: the same, authenticated (EXH-PNS-1).
    let mut r = base(900, "Autodiscover");
    r.ua = "python-requests/2.28.1".into();
    r.ip = "185.220.101.8".into();
    r.auth = "Basic";
    r.user = "CONTOSO\\mallory".into();
    r.stem = "/autodiscover/autodiscover.json".into();
    r.query = "?@evil.corp/PowerShell?serializationLevel=Full;ExchClientVer=15.2.922.7;clientApplication=ManagementShell;TargetServer=;PSVersion=5.1.17763.592&Email=autodiscover/autodiscover.json%3F@evil.corp".into();
    r.expect_proxy = &["EXH-PNS-1"];
    r.expect_iis = &["EXH-PNS-1"];
    v.push(r);
    // OWASSRF (EXH-PNS-2): POST to /owa/<mailbox>/powershell, double-encoded on odd bundles.
    let mut r = base(1500, "Owa");
    r.ua = "python-requests/2.28.1".into();
    r.ip = "185.220.101.9".into();
    r.auth = "Basic";
    r.user = "CONTOSO\\mallory".into();
    r.stem = if n.is_multiple_of(2) {
        "/owa/mastermailbox%40outlook.com/powershell".into()
    } else {
        "/owa/mastermailbox%2540outlook.com/%2550owershell".into()
    };
    r.query = "?X-Rps-CAT=VgEAVAdXaW5kb3dz".into();
    r.expect_proxy = &["EXH-PNS-2"];
    r.expect_iis = &["EXH-PNS-2"];
    v.push(r);
    // Web-shell use through IIS (not proxied): EXH-FS-7.
    let mut r = base(2400, "");
    r.stem = "/aspnet_client/discover.aspx".into();
    r.ua = "antSword/v2.1".into();
    r.iis_only = true;
    r.expect_iis = &["EXH-FS-7"];
    v.push(r);
    v
}

/// Files of one day, keyed by path relative to the corpus root.
#[derive(Default)]
struct Day {
    files: BTreeMap<String, (String, u64)>,
    expect: Vec<(String, u64, &'static str)>,
}

impl Day {
    /// Appends a row (or header) and returns the number of its last line.
    fn push(&mut self, path: String, header: impl FnOnce() -> String, row: &str) -> u64 {
        let (buf, lines) = self.files.entry(path).or_insert_with(|| {
            let h = header();
            let n = h.bytes().filter(|&b| b == b'\n').count() as u64;
            (h, n)
        });
        buf.push_str(row);
        *lines += row.bytes().filter(|&b| b == b'\n').count() as u64;
        *lines
    }
}

fn proxy_path(t: T, protocol: &str) -> String {
    format!(
        "Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/{protocol}/HttpProxy_{}-1.LOG",
        t.hour_key()
    )
}

fn iis_path(site: &str, t: T) -> String {
    format!("inetpub/logs/LogFiles/{site}/u_ex{}.log", t.iis_key())
}

fn add_request(day: &mut Day, r: &Req, rng: &mut Rng, dayt: T, expect_lines: bool) {
    let mut row = String::with_capacity(2048);
    if !r.iis_only {
        proxy_row(r, rng, &mut row);
        let hour = T(r.t.0 - r.t.0.rem_euclid(3600));
        let p = proxy_path(r.t, r.protocol);
        let line = day.push(p.clone(), || proxy_header(hour), &row);
        if expect_lines {
            for rule in r.expect_proxy {
                day.expect.push((p.clone(), line, rule));
            }
        }
        row.clear();
        iis_row(r, true, rng, &mut row);
        day.push(iis_path("W3SVC2", dayt), || iis_header(dayt), &row);
    }
    row.clear();
    iis_row(r, false, rng, &mut row);
    let p = iis_path("W3SVC1", dayt);
    let line = day.push(p.clone(), || iis_header(dayt), &row);
    if expect_lines {
        for rule in r.expect_iis {
            day.expect.push((p.clone(), line, rule));
        }
    }
}

fn ecp_and_oab(day: &mut Day, dayt: T, rng: &mut Rng, attack: bool) {
    let (ma, mi, bu, re) = BUILD;
    let ecp = format!(
        "Program Files/Microsoft/Exchange Server/V15/Logging/ECP/Server/ECPServer{}-1.LOG",
        dayt.day_key()
    );
    let ecp_header = || {
        format!(
            "#Software: Microsoft Exchange Server\r\n#Version: {ma}.{mi:02}.{bu:04}.{re:03}\r\n#Log-type: ECP Server Log\r\n#Date: {}\r\n#Fields: TimeStamp,ServerName,EventId,EventData\r\n",
            dayt.iso_ms(0)
        )
    };
    for h in 0..40 {
        let t = dayt.plus(6 * 3600 + h * 900 + rng.below(600) as i64);
        let cmd = rng.pick(&[
            "Get-Mailbox.Identity='contoso.com/Users/Alice'",
            "Get-InboxRule.Mailbox='contoso.com/Users/Bob'",
            "Get-MessageTrace.SenderAddress='dave@contoso.com'",
            "Get-Recipient.ResultSize='Unlimited'",
        ]);
        let row = ecp_row(t, rng, cmd);
        day.push(ecp.clone(), ecp_header, &row);
    }
    if attack {
        let t = dayt.plus(2 * 3600 + 17 * 60);
        let row = ecp_row(
            t,
            rng,
            "Set-OabVirtualDirectory.ExternalUrl='http://f/<script language=\"JScript\" runat=\"server\">function Page_Load(){/**/}</script>'.Identity='OAB (Default Web Site)'",
        );
        let line = day.push(ecp.clone(), ecp_header, &row);
        day.expect.push((ecp.clone(), line, "EXH-PL-6"));
    }
    let oab = format!(
        "Program Files/Microsoft/Exchange Server/V15/Logging/OABGeneratorLog/OABGenerator{}-1.LOG",
        dayt.day_key()
    );
    let oab_header = || {
        format!(
            "#Software: Microsoft Exchange Server\r\n#Version: {ma}.{mi:02}.{bu:04}.{re:03}\r\n#Log-type: OABGenerator Log\r\n#Date: {}\r\n",
            dayt.iso_ms(0)
        )
    };
    for h in 0..24 {
        let t = dayt.plus(h * 3600 + rng.below(600) as i64);
        let row = format!(
            "{},OABGeneratorAssistant,Information,\"OABGenerator generation of OAB 'Default Offline Address Book' on {FE} started; {} recipients processed\"\r\n",
            t.iso_ms(rng.below(1000)),
            rng.below(9000) + 1000
        );
        day.push(oab.clone(), oab_header, &row);
    }
    if attack {
        let t = dayt.plus(2 * 3600 + 19 * 60);
        let row = format!(
            "{},OABGeneratorAssistant,Warning,\"Download failed and temporary file '\\\\127.0.0.1\\c$\\inetpub\\wwwroot\\aspnet_client\\discover.aspx' needs to be removed\"\r\n",
            t.iso_ms(5)
        );
        let line = day.push(oab.clone(), oab_header, &row);
        day.expect.push((oab, line, "EXH-PL-5"));
    }
}

fn ecp_row(t: T, rng: &mut Rng, cmd: &str) -> String {
    let data = format!(
        "S:ACTID={};S:REQID={};S:URL=/ecp/DDI/DDIService.svc/GetList?schema=MailboxService&msExchEcpCanary={};S:REFERRER=;S:EX=;S:ACTIVITY=;S:CMD={cmd}",
        rng.guid(),
        rng.guid(),
        rng.guid().replace('-', "")
    );
    format!(
        "{},{FE},ECP.Request,{}\r\n",
        t.iso_ms(rng.below(1000)),
        csv_cell(&data)
    )
}

/// One day of traffic: `requests` front-end requests, attacks injected when `attack` is some.
fn day(dayt: T, rng: &mut Rng, requests: u64, attack: Option<u64>) -> Day {
    let mut d = Day::default();
    let wsum: u64 = HOUR_WEIGHT.iter().sum();
    let psum: u64 = PROTOCOLS.iter().map(|p| p.1).sum();
    let mut reqs: Vec<Req> = Vec::with_capacity(requests as usize + 8);
    for _ in 0..requests {
        let mut x = rng.below(wsum);
        let mut hour = 0;
        while x >= HOUR_WEIGHT[hour] {
            x -= HOUR_WEIGHT[hour];
            hour += 1;
        }
        let mut y = rng.below(psum);
        let mut pi = 0;
        while y >= PROTOCOLS[pi].1 {
            y -= PROTOCOLS[pi].1;
            pi += 1;
        }
        let t = dayt.plus(hour as i64 * 3600 + rng.below(3600) as i64);
        reqs.push(benign(rng, t, PROTOCOLS[pi].0));
    }
    if let Some(n) = attack {
        reqs.extend(attacks(dayt, n));
    }
    reqs.sort_by_key(|r| (r.t, r.ms));
    for r in &reqs {
        add_request(&mut d, r, rng, dayt, attack.is_some());
    }
    ecp_and_oab(&mut d, dayt, rng, attack.is_some());
    d
}

/// Writes about `mib` MiB of realistic logs under `out`, with an attack bundle every tenth day.
pub fn corpus(out: &Path, mib: u64, requests_per_day: u64) -> io::Result<()> {
    let mut rng = Rng(0x15_15);
    let target = mib << 20;
    let mut written = 0u64;
    let mut files = 0u64;
    let mut dayt = T::at(2021, 1, 4, 0, 0, 0);
    let mut n = 0u64;
    let mut manifest = String::new();
    while written < target {
        let attack = (n % 10 == 3).then_some(n / 10);
        let d = day(dayt, &mut rng, requests_per_day, attack);
        for (rel, (text, _)) in &d.files {
            let p = out.join(rel);
            fs::create_dir_all(p.parent().expect("file has a folder"))?;
            fs::write(&p, text)?;
            written += text.len() as u64;
            files += 1;
        }
        for (rel, line, rule) in &d.expect {
            let _ = writeln!(manifest, "{rel}\t{line}\t{rule}");
        }
        dayt = dayt.plus(86400);
        n += 1;
    }
    fs::write(out.join(".attacks.tsv"), manifest)?;
    eprintln!(
        "wrote {:.1} MiB in {files} files, {n} days",
        written as f64 / 1048576.0
    );
    Ok(())
}

/// Writes one large IIS log of the Default Web Site (about `mib` MiB) with attacks every tenth
/// day and a `#Fields:` change (an IIS restart with another field set) every few days.
pub fn big_iis(out: &Path, mib: u64, requests_per_day: u64) -> io::Result<()> {
    let mut rng = Rng(0x4_61B);
    let target = mib << 20;
    let dir = out.join("inetpub/logs/LogFiles/W3SVC1");
    fs::create_dir_all(&dir)?;
    let rel = "inetpub/logs/LogFiles/W3SVC1/u_ex_big.log";
    let mut w = io::BufWriter::with_capacity(1 << 20, fs::File::create(out.join(rel))?);
    let mut written = 0u64;
    let mut lines = 0u64;
    let mut manifest = String::new();
    let mut dayt = T::at(2021, 1, 4, 0, 0, 0);
    let mut n = 0u64;
    let mut row = String::with_capacity(2048);
    while written < target {
        let header = iis_header(dayt);
        let header = if n % 5 == 4 {
            // The same fields with `s-computername` added in the middle.
            header.replace("s-ip cs-method", "s-computername s-ip cs-method")
        } else {
            header
        };
        let computer = n % 5 == 4;
        w.write_all(header.as_bytes())?;
        written += header.len() as u64;
        lines += header.bytes().filter(|&b| b == b'\n').count() as u64;
        let attack = (n % 10 == 3).then_some(n / 10);
        let d = day(dayt, &mut rng, requests_per_day, None);
        let mut reqs: Vec<Req> = Vec::new();
        if let Some(k) = attack {
            reqs = attacks(dayt, k);
        }
        // Re-use the day's W3SVC1 rows (drop their header), and add the attack rows at the end
        // of the day (their time order does not matter to the checks).
        let body = d
            .files
            .get(&iis_path("W3SVC1", dayt))
            .map(|(s, _)| {
                s.split_once("time-taken\r\n")
                    .map_or("", |x| x.1)
                    .to_string()
            })
            .unwrap_or_default();
        let body = if computer {
            body.replace(&format!(" {FE_IP} "), &format!(" {FE} {FE_IP} "))
        } else {
            body
        };
        w.write_all(body.as_bytes())?;
        written += body.len() as u64;
        lines += body.bytes().filter(|&b| b == b'\n').count() as u64;
        for r in &reqs {
            row.clear();
            iis_row(r, false, &mut rng, &mut row);
            if computer {
                row = row.replacen(&format!(" {FE_IP} "), &format!(" {FE} {FE_IP} "), 1);
            }
            w.write_all(row.as_bytes())?;
            written += row.len() as u64;
            lines += 1;
            for rule in r.expect_iis {
                let _ = writeln!(manifest, "{rel}\t{lines}\t{rule}");
            }
        }
        dayt = dayt.plus(86400);
        n += 1;
    }
    w.flush()?;
    fs::write(out.join(".attacks.tsv"), manifest)?;
    eprintln!(
        "wrote {:.1} MiB, {lines} lines, {n} days in one file",
        written as f64 / 1048576.0
    );
    Ok(())
}

/// The default number of front-end requests per day (about 12 MB of logs a day).
pub const REQUESTS_PER_DAY: u64 = 8000;
