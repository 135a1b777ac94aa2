//! Generates exhunt's example server trees and its benchmark corpus, deterministically.
//!
//!   gen-corpus examples OUT_DIR          writes OUT_DIR/{compromised,clean,late-logs}
//!   gen-corpus bench OUT_DIR SIZE_MIB    writes about SIZE_MIB MiB of HttpProxy and IIS logs
//!                                        with a few injected ProxyLogon attacks
//!   gen-corpus realistic OUT_DIR SIZE_MIB \[REQUESTS_PER_DAY\]
//!                                        writes about SIZE_MIB MiB of logs shaped like a real
//!                                        front end (per-protocol hourly HttpProxy logs, IIS
//!                                        logs of both sites, ECP and OAB logs), rare attacks
//!                                        listed in OUT_DIR/.attacks.tsv (see realistic.rs)
//!   gen-corpus bigfile OUT_DIR SIZE_MIB  writes one IIS log of about SIZE_MIB MiB, with attacks
//!                                        and `#Fields:` changes, listed in .attacks.tsv
//!   gen-corpus webtree OUT_DIR FILES     writes FILES web-root files and ten candidates
//!   gen-corpus image OUT_DIR SIZE_MIB \[FILES\]
//!                                        writes a C:-like tree of SIZE_MIB MiB, mostly not
//!                                        evidence, with web roots and ten candidates; FILES
//!                                        files in all (default: files of 0.25–2 MiB)
//!
//! The logs follow the formats in shared/research/exchange-detection.md §2 (HttpProxy CSV with a
//! bare header line and `#` directives; ECP server log with `S:KEY=value` event data; IIS W3C with
//! Exchange's default field set). The web-shell content planted by the example attack is an inert
//! look-alike: markup and `Page_Load`, no `eval` of request data, so antivirus stays quiet.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

mod realistic;

/// splitmix64: small, deterministic, good enough for synthetic traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    fn guid(&mut self) -> String {
        let a = self.next();
        let b = self.next();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

/// A civil time in UTC, kept as seconds since 2020-01-01 for easy arithmetic.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct T(i64);

const DAYS_BEFORE_MONTH: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

impl T {
    fn at(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> T {
        let mut days = 0;
        for yy in 2020..y {
            days += if is_leap(yy) { 366 } else { 365 };
        }
        days += DAYS_BEFORE_MONTH[(mo - 1) as usize] + d - 1;
        if mo > 2 && is_leap(y) {
            days += 1;
        }
        T(days * 86400 + h * 3600 + mi * 60 + s)
    }
    fn parts(self) -> (i64, i64, i64, i64, i64, i64) {
        let mut days = self.0.div_euclid(86400);
        let secs = self.0.rem_euclid(86400);
        let mut y = 2020;
        loop {
            let n = if is_leap(y) { 366 } else { 365 };
            if days < n {
                break;
            }
            days -= n;
            y += 1;
        }
        let mut mo = 12;
        for m in (1..=12).rev() {
            let mut start = DAYS_BEFORE_MONTH[(m - 1) as usize];
            if m > 2 && is_leap(y) {
                start += 1;
            }
            if days >= start {
                mo = m;
                days -= start;
                break;
            }
        }
        (y, mo, days + 1, secs / 3600, secs % 3600 / 60, secs % 60)
    }
    fn iso_ms(self, ms: u64) -> String {
        let (y, mo, d, h, mi, s) = self.parts();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    }
    fn date(self) -> String {
        let (y, mo, d, ..) = self.parts();
        format!("{y:04}-{mo:02}-{d:02}")
    }
    fn time(self) -> String {
        let (.., h, mi, s) = self.parts();
        format!("{h:02}:{mi:02}:{s:02}")
    }
    fn hour_key(self) -> String {
        let (y, mo, d, h, ..) = self.parts();
        format!("{y:04}{mo:02}{d:02}{h:02}")
    }
    fn day_key(self) -> String {
        let (y, mo, d, ..) = self.parts();
        format!("{y:04}{mo:02}{d:02}")
    }
    fn iis_key(self) -> String {
        let (y, mo, d, ..) = self.parts();
        format!("{:02}{mo:02}{d:02}", y % 100)
    }
    fn plus(self, s: i64) -> T {
        T(self.0 + s)
    }
}

const HTTPPROXY_FIELDS: &str = "DateTime,RequestId,MajorVersion,MinorVersion,BuildVersion,RevisionVersion,ClientRequestId,Protocol,UrlHost,UrlStem,ProtocolAction,AuthenticationType,IsAuthenticated,AuthenticatedUser,Organization,AnchorMailbox,UserAgent,ClientIpAddress,ServerHostName,HttpStatus,BackEndStatus,ErrorCode,Method,ProxyAction,TargetServer,TargetServerVersion,RoutingType,RoutingHint,BackEndCookie,ServerLocatorHost,ServerLocatorLatency,RequestBytes,ResponseBytes,TargetOutstandingRequests,AuthModulePerfContext,HttpPipelineLatency,CalculateTargetBackEndLatency,GlsLatencyBreakup,TotalGlsLatency,AccountForestLatencyBreakup,TotalAccountForestLatency,ResourceForestLatencyBreakup,TotalResourceForestLatency,ADLatency,SharedCacheLatencyBreakup,TotalSharedCacheLatency,ActivityContextLifeTime,ModuleToHandlerSwitchingLatency,ClientReqStreamLatency,BackendReqInitLatency,BackendReqStreamLatency,BackendProcessingLatency,BackendRespInitLatency,BackendRespStreamLatency,ClientRespStreamLatency,KerberosAuthHeaderLatency,HandlerCompletionLatency,RequestHandlerLatency,HandlerToModuleSwitchingLatency,ProxyTime,CoreLatency,RoutingLatency,HttpProxyOverhead,TotalRequestTime,RouteRefresherLatency,UrlQuery,BackEndGenericInfo,GenericInfo,GenericErrors,EdgeTraceId,DatabaseGuid,UserADObjectGuid,PartitionEndpointLookupLatency,RoutingStatus";

const IIS_FIELDS: &str = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken";

/// One web request as both HttpProxy and IIS see it.
#[derive(Clone)]
struct Req {
    t: T,
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
    routing_hint: String,
    backend_cookie: String,
    target: String,
}

/// An Exchange build number (major, minor, build, revision).
type Build = (u32, u32, u32, u32);

struct Server {
    name: &'static str,
    fqdn: &'static str,
    ip: &'static str,
    build: Build,
}

fn csv_cell(v: &str) -> String {
    if v.contains([',', '"']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

fn httpproxy_line(r: &Req, srv: &Server, rng: &mut Rng, out: &mut String) {
    let rid = rng.guid();
    let (ma, mi, bu, re) = srv.build;
    let authed = !r.user.is_empty();
    let lat = |rng: &mut Rng, n: u64| rng.below(n).to_string();
    let total = rng.below(400) + 3;
    let fields: Vec<String> = vec![
        r.t.iso_ms(rng.below(1000)),
        rid.clone(),
        ma.to_string(),
        mi.to_string(),
        bu.to_string(),
        re.to_string(),
        if authed { rng.guid() } else { String::new() },
        r.protocol.to_string(),
        "mail.contoso.com".into(),
        r.stem.clone(),
        String::new(),
        r.auth.to_string(),
        if authed {
            "true".into()
        } else {
            "false".into()
        },
        r.user.clone(),
        String::new(),
        r.anchor.clone(),
        r.ua.clone(),
        r.ip.clone(),
        srv.name.to_string(),
        r.status.to_string(),
        if r.status < 500 {
            r.status.to_string()
        } else {
            String::new()
        },
        String::new(),
        r.method.to_string(),
        "Proxy".into(),
        if r.target.is_empty() {
            srv.fqdn.to_string()
        } else {
            r.target.clone()
        },
        format!("Version {ma}.{mi} (Build {bu}.{re})"),
        if r.anchor.starts_with("ServerInfo~") {
            "Server".into()
        } else {
            "Database".into()
        },
        r.routing_hint.clone(),
        r.backend_cookie.clone(),
        String::new(),
        String::new(),
        lat(rng, 4000),
        lat(rng, 40000),
        "1".into(),
        String::new(),
        lat(rng, 3),
        lat(rng, 2),
        String::new(),
        "0".into(),
        String::new(),
        "0".into(),
        String::new(),
        "0".into(),
        lat(rng, 6),
        String::new(),
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
        String::new(),
        format!(
            "BeginRequest={};CorrelationID={};ProxyState-Run=None;FEAuth=BEVersion-{};",
            r.t.iso_ms(0),
            if authed { rid.as_str() } else { "<empty>" },
            1_941_962_752 + bu
        ),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ];
    let cells: Vec<String> = fields.iter().map(|f| csv_cell(f)).collect();
    out.push_str(&cells.join(","));
    out.push_str("\r\n");
}

fn iis_line(r: &Req, srv: &Server, rng: &mut Rng, out: &mut String) {
    let q = if r.query.is_empty() {
        "-".to_string()
    } else {
        r.query.replace(' ', "+")
    };
    let user = if r.user.is_empty() {
        "-".into()
    } else {
        r.user.replace(' ', "+")
    };
    let _ = writeln!(
        out,
        "{} {} {} {} {} {} 443 {} {} {} - {} 0 0 {}\r",
        r.t.date(),
        r.t.time(),
        srv.ip,
        r.method,
        r.stem,
        q,
        user,
        r.ip,
        r.ua.replace(' ', "+"),
        r.status,
        rng.below(900) + 15
    );
}

const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar",
];
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/88.0.4324.190 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/88.0.4324.182 Safari/537.36 Edg/88.0.705.81",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:86.0) Gecko/20100101 Firefox/86.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.3 Safari/605.1.15",
];
const OUTLOOK: &str = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.13801; Pro)";
const MOBILE: &[&str] = &[
    "Outlook-iOS-Android/1.0",
    "Apple-iPhone12C1/1805.227",
    "Android-Mail/2021.02.07.357437227.Release",
];

/// One benign request of a random protocol.
fn benign(rng: &mut Rng, t: T, srv: &Server) -> Req {
    let user = *rng.pick(USERS);
    let upn = format!("{user}@contoso.com");
    let internal = rng.below(10) < 7;
    let ip = if internal {
        format!("10.1.{}.{}", rng.below(8) + 1, rng.below(200) + 20)
    } else {
        format!(
            "{}.{}",
            rng.pick(&["198.51.100", "203.0.113", "192.0.2"]),
            rng.below(250) + 2
        )
    };
    let mut r = Req {
        t,
        protocol: "Owa",
        stem: String::new(),
        query: String::new(),
        method: "GET",
        auth: "Negotiate",
        user: format!("CONTOSO\\{user}"),
        anchor: format!("Smtp~{upn}"),
        ua: rng.pick(BROWSERS).to_string(),
        ip,
        status: 200,
        routing_hint: String::new(),
        backend_cookie: String::new(),
        target: String::new(),
    };
    match rng.below(12) {
        0..=2 => {
            r.protocol = "Owa";
            r.auth = "Forms";
            match rng.below(4) {
                0 => {
                    r.stem = "/owa/auth/logon.aspx".into();
                    r.query = "url=https%3a%2f%2fmail.contoso.com%2fowa%2f&reason=0".into();
                    r.user = String::new();
                    r.anchor = String::new();
                }
                1 => {
                    r.method = "POST";
                    r.stem = "/owa/auth.owa".into();
                    r.status = 302;
                    r.user = String::new();
                    r.anchor = String::new();
                }
                2 => {
                    r.stem = format!(
                        "/owa/auth/15.1.{}/themes/resources/segoeui-semibold.ttf",
                        srv.build.2
                    );
                    r.user = String::new();
                    r.anchor = String::new();
                }
                _ => {
                    r.method = "POST";
                    r.stem = "/owa/service.svc".into();
                    r.query = format!(
                        "action={}&UA=0",
                        rng.pick(&["GetItem", "FindItem", "GetFolder", "GetConversationItems"])
                    );
                    r.backend_cookie = format!(
                        "Server~{}~{}~2021-03-20T10:11:12",
                        srv.fqdn.to_ascii_lowercase(),
                        1_941_962_752 + srv.build.2
                    );
                    r.routing_hint = "Cookie-X-BackEndCookie".into();
                }
            }
        }
        3..=4 => {
            r.protocol = "Ews";
            r.method = "POST";
            r.stem = "/EWS/Exchange.asmx".into();
            r.ua = OUTLOOK.into();
            r.auth = "NTLM";
        }
        5..=6 => {
            r.protocol = "Mapi";
            r.method = "POST";
            r.stem = "/mapi/emsmdb/".into();
            r.query = format!("MailboxId={}@contoso.com", rng.guid());
            r.ua = OUTLOOK.into();
            r.auth = "Negotiate";
            r.anchor = format!("MailboxGuid~{}@contoso.com", rng.guid());
        }
        7 => {
            r.protocol = "Autodiscover";
            r.method = "POST";
            r.stem = "/Autodiscover/Autodiscover.xml".into();
            r.ua = OUTLOOK.into();
        }
        8..=9 => {
            r.protocol = "Eas";
            r.method = "POST";
            r.stem = "/Microsoft-Server-ActiveSync/default.eas".into();
            r.query = format!(
                "Cmd=Sync&User={user}&DeviceId=ApplF{}&DeviceType=iPhone",
                rng.below(99999)
            );
            r.ua = rng.pick(MOBILE).to_string();
            r.auth = "Basic";
        }
        10 => {
            r.protocol = "Ecp";
            r.auth = "Forms";
            r.user = "CONTOSO\\exadmin".into();
            r.anchor = "Smtp~exadmin@contoso.com".into();
            r.ip = "10.1.0.15".into();
            if rng.below(2) == 0 {
                r.stem = "/ecp/".into();
            } else {
                r.method = "POST";
                r.stem = "/ecp/DDI/DDIService.svc/GetList".into();
                r.query = format!(
                    "schema=MailboxService&msExchEcpCanary={}",
                    rng.guid().replace('-', "")
                );
            }
        }
        _ => {
            // Managed availability probe.
            r.protocol = "Owa";
            r.stem = "/owa/healthcheck.htm".into();
            r.ua = "AMProbe/Local/ClientAccess".into();
            r.ip = "127.0.0.1".into();
            r.user = String::new();
            r.anchor = String::new();
            r.auth = "Anonymous";
        }
    }
    r
}

/// Writes files into a tree, creating folders.
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn exch(&self) -> PathBuf {
        self.root
            .join("Program Files")
            .join("Microsoft")
            .join("Exchange Server")
            .join("V15")
    }
    fn write(&self, path: &Path, text: &str) -> io::Result<()> {
        fs::create_dir_all(path.parent().expect("file has a folder"))?;
        fs::write(path, text)
    }
}

fn httpproxy_header(srv: &Server, t: T) -> String {
    let (ma, mi, bu, re) = srv.build;
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

fn ecp_header(srv: &Server, t: T) -> String {
    let (ma, mi, bu, re) = srv.build;
    format!(
        "#Software: Microsoft Exchange Server\r\n#Version: {ma}.{mi:02}.{bu:04}.{re:03}\r\n#Log-type: ECP Server Log\r\n#Date: {}\r\n#Fields: TimeStamp,ServerName,EventId,EventData\r\n",
        t.iso_ms(0)
    )
}

fn oab_header(srv: &Server, t: T) -> String {
    let (ma, mi, bu, re) = srv.build;
    format!(
        "#Software: Microsoft Exchange Server\r\n#Version: {ma}.{mi:02}.{bu:04}.{re:03}\r\n#Log-type: OABGenerator Log\r\n#Date: {}\r\n",
        t.iso_ms(0)
    )
}

fn ecp_event(t: T, srv: &Server, rng: &mut Rng, url: &str, cmd: &str) -> String {
    let data = format!(
        "S:ACTID={};S:REQID={};S:URL={url};S:REFERRER=;S:EX=;S:ACTIVITY=;S:CMD={cmd}",
        rng.guid(),
        rng.guid()
    );
    format!(
        "{},{},ECP.Request,{}\r\n",
        t.iso_ms(rng.below(1000)),
        srv.name,
        csv_cell(&data)
    )
}

/// Benign ECP admin activity of one day.
fn ecp_day(day: T, srv: &Server, rng: &mut Rng, out: &mut String) {
    for h in [9, 11, 14, 16] {
        let t = day.plus(h * 3600 + rng.below(3000) as i64);
        let cmd = rng.pick(&[
            "Get-Mailbox.Identity='contoso.com/Users/Alice'",
            "Get-InboxRule.Mailbox='contoso.com/Users/Bob'",
            "Set-Mailbox.Identity='contoso.com/Users/Carol'.ProhibitSendQuota='49 GB (52,613,349,376 bytes)'",
            "Get-MessageTrace.SenderAddress='dave@contoso.com'",
        ]);
        let url = format!(
            "/ecp/DDI/DDIService.svc/GetList?schema=MailboxService&msExchEcpCanary={}",
            rng.guid().replace('-', "")
        );
        out.push_str(&ecp_event(t, srv, rng, &url, cmd));
    }
}

fn oab_day(day: T, srv: &Server, rng: &mut Rng, out: &mut String, exch: &str) {
    for h in [1, 9, 17] {
        let t = day.plus(h * 3600 + rng.below(600) as i64);
        let _ = write!(
            out,
            "{},OABGeneratorAssistant,Information,\"OABGenerator generation of OAB 'Default Offline Address Book' on {} started\"\r\n",
            t.iso_ms(rng.below(1000)),
            srv.name
        );
        if h == 9 {
            // A healthy retry: the temporary file lives under ClientAccess\OAB\Temp.
            let _ = write!(
                out,
                "{},OABGeneratorAssistant,Warning,\"Download failed and temporary file '{exch}\\ClientAccess\\OAB\\Temp\\{}.lzx' needs to be removed\"\r\n",
                t.plus(31).iso_ms(rng.below(1000)),
                rng.guid()
            );
        }
    }
}

/// A day of benign traffic, written into per-hour HttpProxy files and one IIS file.
struct DayLogs {
    proxy: std::collections::BTreeMap<(String, &'static str), String>,
    iis: String,
}

fn day_traffic(day: T, srv: &Server, rng: &mut Rng, requests: usize, extra: &[Req]) -> DayLogs {
    let mut reqs: Vec<Req> = Vec::with_capacity(requests + extra.len());
    for _ in 0..requests {
        // Examples keep few hourly files; the benchmark spreads over the whole working day.
        let h = if requests <= 100 {
            *rng.pick(&[9i64, 14])
        } else {
            6 + rng.below(14) as i64
        };
        let t = day.plus(h * 3600 + rng.below(3600) as i64);
        reqs.push(benign(rng, t, srv));
    }
    reqs.extend(extra.iter().cloned());
    reqs.sort_by_key(|r| r.t);
    let mut logs = DayLogs {
        proxy: Default::default(),
        iis: iis_header(day),
    };
    for r in &reqs {
        let key = (r.t.hour_key(), r.protocol);
        let hour_start = T(r.t.0 - r.t.0.rem_euclid(3600));
        let buf = logs
            .proxy
            .entry(key)
            .or_insert_with(|| httpproxy_header(srv, hour_start));
        httpproxy_line(r, srv, rng, buf);
        iis_line(r, srv, rng, &mut logs.iis);
    }
    logs
}

fn write_day(tree: &Tree, day: T, logs: &DayLogs) -> io::Result<()> {
    let proxy = tree.exch().join("Logging").join("HttpProxy");
    for ((hour, proto), text) in &logs.proxy {
        tree.write(
            &proxy.join(proto).join(format!("HttpProxy_{hour}-1.LOG")),
            text,
        )?;
    }
    let iis = tree
        .root
        .join("inetpub")
        .join("logs")
        .join("LogFiles")
        .join("W3SVC1");
    tree.write(&iis.join(format!("u_ex{}.log", day.iis_key())), &logs.iis)
}

const EXCH_WIN: &str = "C:\\Program Files\\Microsoft\\Exchange Server\\V15";

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A zip with stored (uncompressed) members and a fixed DOS time (2021-03-03 03:00), so the
/// bytes are the same at every run.
fn zip_stored(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let (time, date): (u16, u16) = (3 << 11, ((2021 - 1980) << 9) | (3 << 5) | 3);
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let n = name.len() as u16;
        let size = data.len() as u32;
        out.extend(0x0403_4b50u32.to_le_bytes());
        for v in [20u16, 0, 0, time, date] {
            out.extend(v.to_le_bytes());
        }
        out.extend(crc.to_le_bytes());
        out.extend(size.to_le_bytes());
        out.extend(size.to_le_bytes());
        out.extend(n.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(name.as_bytes());
        out.extend(*data);
        central.extend(0x0201_4b50u32.to_le_bytes());
        for v in [20u16, 20, 0, 0, time, date] {
            central.extend(v.to_le_bytes());
        }
        central.extend(crc.to_le_bytes());
        central.extend(size.to_le_bytes());
        central.extend(size.to_le_bytes());
        for v in [n, 0, 0, 0, 0] {
            central.extend(v.to_le_bytes());
        }
        central.extend(0u32.to_le_bytes());
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    let cd_size = central.len() as u32;
    out.extend(central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, entries.len() as u16, entries.len() as u16] {
        out.extend(v.to_le_bytes());
    }
    out.extend(cd_size.to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// Placeholder page: the shape of an Exchange page, written for these examples (not
/// Microsoft's content).
fn page(class: &str) -> String {
    format!(
        "<%@ Page Language=\"C#\" AutoEventWireup=\"true\" Inherits=\"Microsoft.Exchange.HttpProxy.{class}\" %>\r\n<!DOCTYPE html>\r\n<!-- exhunt example placeholder for a shipped Exchange page; not Microsoft's content -->\r\n<html><head><title>Outlook</title></head><body></body></html>\r\n"
    )
}

/// The web roots of a clean Exchange 2016 front end.
fn write_web_roots(tree: &Tree, build: &str) -> io::Result<()> {
    let www = tree.root.join("inetpub").join("wwwroot");
    tree.write(&www.join("iisstart.htm"), "<!DOCTYPE html>\r\n<html><head><title>IIS Windows Server</title></head><body><img src=\"iisstart.png\" alt=\"IIS\"></body></html>\r\n")?;
    fs::write(
        www.join("iisstart.png"),
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89",
    )?;
    tree.write(&www.join("web.config"), "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<configuration>\r\n  <system.webServer>\r\n    <httpRedirect enabled=\"false\" />\r\n  </system.webServer>\r\n</configuration>\r\n")?;
    let auth = tree
        .exch()
        .join("FrontEnd")
        .join("HttpProxy")
        .join("owa")
        .join("auth");
    for (name, class) in [
        ("logon.aspx", "Logon"),
        ("logoff.aspx", "Logoff"),
        ("errorFE.aspx", "ErrorFE"),
        ("ExpiredPassword.aspx", "ExpiredPassword"),
        ("frowny.aspx", "Frowny"),
        ("OutlookCN.aspx", "OutlookCN"),
        ("RedirSuiteServiceProxy.aspx", "RedirSuiteServiceProxy"),
        ("signout.aspx", "Signout"),
    ] {
        tree.write(&auth.join(name), &page(class))?;
    }
    tree.write(
        &auth.join("getidtoken.htm"),
        "<!DOCTYPE html>\r\n<html><body><!-- exhunt example placeholder --></body></html>\r\n",
    )?;
    tree.write(&auth.join("web.config"), "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<configuration>\r\n  <system.web>\r\n    <authorization><allow users=\"*\" /></authorization>\r\n  </system.web>\r\n</configuration>\r\n")?;
    for dir in [build, "Current"] {
        let res = auth.join(dir).join("themes").join("resources");
        tree.write(
            &res.join("logon.css"),
            "body { font-family: \"Segoe UI\", Tahoma, sans-serif; }\r\n",
        )?;
        tree.write(
            &res.join("owafont_ja.css"),
            "body { font-family: \"Meiryo\"; }\r\n",
        )?;
    }
    let ecp = tree
        .exch()
        .join("FrontEnd")
        .join("HttpProxy")
        .join("ecp")
        .join("auth");
    tree.write(&ecp.join("TimeoutLogoff.aspx"), &page("TimeoutLogoff"))
}

/// What Reset-OABVirtualDirectory writes: the settings of the virtual directory, here with an
/// inert look-alike of the HAFNIUM ExternalUrl (markup and Page_Load, nothing that runs request
/// data).
fn oab_dump(planted: &str) -> String {
    let fields = [
        ("PollInterval", "480"),
        ("OfflineAddressBooks", ""),
        ("RequireSSL", "True"),
        ("BasicAuthentication", "False"),
        ("WindowsAuthentication", "True"),
        ("OAuthAuthentication", "True"),
        ("MetabasePath", "IIS://EX01.contoso.local/W3SVC/1/ROOT/OAB"),
        (
            "Path",
            "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\FrontEnd\\HttpProxy\\OAB",
        ),
        ("ExtendedProtectionTokenChecking", "None"),
        ("ExtendedProtectionFlags", ""),
        ("ExtendedProtectionSPNList", ""),
        ("AdminDisplayVersion", "Version 15.1 (Build 2176.2)"),
        ("Server", "EX01"),
        ("InternalUrl", "https://ex01.contoso.local/OAB"),
        ("InternalAuthenticationMethods", "WindowsIntegrated"),
        ("ExternalUrl", planted),
        ("ExternalAuthenticationMethods", "WindowsIntegrated"),
        ("Identity", "EX01\\OAB (Default Web Site)"),
        ("WhenChanged", "3/3/2021 2:15:41 AM"),
    ];
    let mut s = String::new();
    for (k, v) in fields {
        let _ = write!(s, "{k:<32}: {v}\r\n");
    }
    s
}

/// One example server: benign days, optional attack requests and ECP/OAB lines.
struct Example<'a> {
    days: &'a [T],
    patch_day: Option<T>,
    /// Later updates: from this day on, the server runs this build.
    updates: &'a [(T, Build)],
    attack: bool,
    scanner: bool,
    admin_oab_change: bool,
    web_roots: bool,
}

fn attack_requests(srv: &Server) -> (Vec<Req>, T) {
    let t0 = T::at(2021, 3, 3, 2, 14, 5);
    let ip = "104.140.114.110".to_string();
    let ua = "ExchangeServicesClient/0.0.0.0".to_string();
    let host = format!("a]@{}:444", srv.fqdn);
    let canary = "5c8e0d7a1b7f4f0e9c6a2d1e3f4b5a69";
    let ssrf = |dt: i64, target: String, status: u16| Req {
        t: t0.plus(dt),
        protocol: "Ecp",
        stem: "/ecp/y.js".into(),
        query: String::new(),
        method: "POST",
        auth: "",
        user: String::new(),
        anchor: format!("ServerInfo~{host}/{target}"),
        ua: ua.clone(),
        ip: ip.clone(),
        status,
        routing_hint: "X-BEResourceCookie".into(),
        backend_cookie: String::new(),
        target: srv.fqdn.to_string(),
    };
    let mut v = vec![
        ssrf(0, "autodiscover/autodiscover.xml?#".into(), 200),
        ssrf(4, "mapi/emsmdb/?#".into(), 200),
        ssrf(9, "ecp/proxyLogon.ecp?#".into(), 241),
        ssrf(
            15,
            format!(
                "ecp/DDI/DDIService.svc/GetObject?schema=OABVirtualDirectory&msExchEcpCanary={canary}#"
            ),
            200,
        ),
        ssrf(
            96,
            format!(
                "ecp/DDI/DDIService.svc/SetObject?schema=OABVirtualDirectory&msExchEcpCanary={canary}#"
            ),
            200,
        ),
        ssrf(
            131,
            format!(
                "ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory&msExchEcpCanary={canary}#"
            ),
            200,
        ),
    ];
    // Web shell use through IIS (HttpProxy does not proxy /aspnet_client/).
    for (i, dt) in [361, 377, 402, 455, 981].iter().enumerate() {
        v.push(Req {
            t: t0.plus(*dt),
            protocol: "",
            stem: "/aspnet_client/discover.aspx".into(),
            query: String::new(),
            method: "POST",
            auth: "",
            user: String::new(),
            anchor: String::new(),
            ua: if i == 0 {
                ua.clone()
            } else {
                "antSword/v2.1".into()
            },
            ip: ip.clone(),
            status: 200,
            routing_hint: String::new(),
            backend_cookie: String::new(),
            target: String::new(),
        });
    }
    (v, t0)
}

fn scanner_request(t: T) -> Req {
    Req {
        t,
        protocol: "Owa",
        stem: "/owa/auth/x.js".into(),
        query: String::new(),
        method: "GET",
        auth: "FBA",
        user: String::new(),
        anchor: "ServerInfo~localhost/ecp/default.flt?".into(),
        ua: "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)"
            .into(),
        ip: "10.1.0.15".into(),
        status: 500,
        routing_hint: "X-AnonResource-Backend-Cookie".into(),
        backend_cookie: String::new(),
        target: "localhost".into(),
    }
}

fn write_example(root: &Path, seed: u64, ex: &Example<'_>) -> io::Result<()> {
    let tree = Tree {
        root: root.to_path_buf(),
    };
    if root.exists() {
        fs::remove_dir_all(root)?;
    }
    let mut rng = Rng(seed);
    let mut srv = Server {
        name: "EX01",
        fqdn: "EX01.contoso.local",
        ip: "10.1.0.10",
        build: (15, 1, 2176, 2),
    };
    let (attack, t0) = attack_requests(&srv);
    for &day in ex.days {
        if ex.patch_day.is_some_and(|p| day >= p) {
            srv.build = (15, 1, 2176, 9); // Exchange 2016 CU19 Mar21SU
        }
        for (from, build) in ex.updates {
            if day >= *from {
                srv.build = *build;
            }
        }
        let mut extra = Vec::new();
        if ex.attack && day.date() == t0.date() {
            for r in &attack {
                extra.push(r.clone());
            }
        }
        if ex.scanner && day.date() == "2021-03-02" {
            extra.push(scanner_request(T::at(2021, 3, 2, 22, 10, 41)));
        }
        if ex.scanner && day.date() == "2021-03-05" {
            extra.push(scanner_request(T::at(2021, 3, 5, 8, 2, 13)));
        }
        let mut logs = day_traffic(day, &srv, &mut rng, 40, &[]);
        // Attack requests: HttpProxy only for proxied protocols, IIS for all.
        let mut extra_sorted = extra;
        extra_sorted.sort_by_key(|r| r.t);
        for r in &extra_sorted {
            if !r.protocol.is_empty() {
                let key = (r.t.hour_key(), r.protocol);
                let hour_start = T(r.t.0 - r.t.0.rem_euclid(3600));
                let buf = logs
                    .proxy
                    .entry(key)
                    .or_insert_with(|| httpproxy_header(&srv, hour_start));
                httpproxy_line(r, &srv, &mut rng, buf);
            }
            iis_line(r, &srv, &mut rng, &mut logs.iis);
        }
        write_day(&tree, day, &logs)?;

        // ECP server log of the day.
        let mut ecp = ecp_header(&srv, day);
        ecp_day(day, &srv, &mut rng, &mut ecp);
        if ex.admin_oab_change && day.date() == "2021-01-19" {
            ecp.push_str(&ecp_event(
                day.plus(10 * 3600 + 312),
                &srv,
                &mut rng,
                "/ecp/DDI/DDIService.svc/SetObject?schema=OABVirtualDirectory&msExchEcpCanary=0f3c2b1a",
                "Set-OabVirtualDirectory.Identity='EX01\\OAB (Default Web Site)'.ExternalUrl='https://mail.contoso.com/OAB'",
            ));
        }
        if ex.attack && day.date() == t0.date() {
            // Inert look-alike of the HAFNIUM ExternalUrl: markup and Page_Load, nothing that runs
            // request data.
            let planted = "http://f/<script language=\"JScript\" runat=\"server\">function Page_Load(){/* exhunt example: inert */}</script>";
            ecp.push_str(&ecp_event(
                t0.plus(97),
                &srv,
                &mut rng,
                "/ecp/DDI/DDIService.svc/SetObject?schema=OABVirtualDirectory&msExchEcpCanary=5c8e0d7a1b7f4f0e9c6a2d1e3f4b5a69",
                &format!("Set-OabVirtualDirectory.Identity='EX01\\OAB (Default Web Site)'.ExternalUrl='{planted}'"),
            ));
            ecp.push_str(&ecp_event(
                t0.plus(132),
                &srv,
                &mut rng,
                "/ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory&msExchEcpCanary=5c8e0d7a1b7f4f0e9c6a2d1e3f4b5a69",
                "Reset-OabVirtualDirectory.Identity='EX01\\OAB (Default Web Site)'.FilePathName='\\\\127.0.0.1\\c$\\inetpub\\wwwroot\\aspnet_client\\discover.aspx'",
            ));
        }
        let ecp_path = tree
            .exch()
            .join("Logging")
            .join("ECP")
            .join("Server")
            .join(format!("ECPServer{}-1.LOG", day.day_key()));
        tree.write(&ecp_path, &ecp)?;

        let mut oab = oab_header(&srv, day);
        oab_day(day, &srv, &mut rng, &mut oab, EXCH_WIN);
        let oab_path = tree
            .exch()
            .join("Logging")
            .join("OABGeneratorLog")
            .join(format!("OABGeneratorLog_{}-1.LOG", day.day_key()));
        tree.write(&oab_path, &oab)?;
    }
    if ex.web_roots {
        write_web_roots(&tree, "15.1.2176.2")?;
        let pd = tree.root.join("ProgramData");
        let vmware = pd.join("VMware").join("VMware Tools");
        fs::create_dir_all(&vmware)?;
        fs::write(
            vmware.join("vss_manifests0.zip"),
            zip_stored(&[("manifest.xml", b"<vss_manifest version=\"1\"/>\r\n")]),
        )?;
    }
    if ex.web_roots && ex.attack {
        let planted = "http://f/<script language=\"JScript\" runat=\"server\">function Page_Load(){/* exhunt example: inert */}</script>";
        let shell = tree
            .root
            .join("inetpub")
            .join("wwwroot")
            .join("aspnet_client")
            .join("discover.aspx");
        tree.write(&shell, &oab_dump(planted))?;
        // Data staged for exfiltration, and a dump of a process's memory.
        let list = b"alice@contoso.com\r\nbob@contoso.com\r\nexadmin@contoso.com\r\n";
        fs::write(
            tree.root.join("ProgramData").join("it.zip"),
            zip_stored(&[("mailboxes.txt", list)]),
        )?;
        let mut dump = b"MDMP\x93\xa7\0\0".to_vec();
        dump.resize(4096, 0);
        tree.write(&tree.root.join("root").join("output.dmp"), "")?;
        fs::write(tree.root.join("root").join("output.dmp"), dump)?;
    }
    Ok(())
}

/// The ProxyShell chain of August 2021, as the front-end IIS log and an export of the MSExchange
/// Management events show it: the `autodiscover.json` SSRF leaks the mailbox's legacy DN and SID
/// through MAPI, reaches the PowerShell back end with an `X-Rps-CAT` token, grants itself the
/// Mailbox Import Export role and exports a mailbox into a page under `aspnet_client`.
fn write_proxyshell_example(root: &Path) -> io::Result<()> {
    let tree = Tree {
        root: root.to_path_buf(),
    };
    if root.exists() {
        fs::remove_dir_all(root)?;
    }
    let mut rng = Rng(0x5_4E11);
    let srv = Server {
        name: "EX02",
        fqdn: "EX02.contoso.local",
        ip: "10.1.0.20",
        build: (15, 1, 2176, 9), // CU19 with Mar21SU: ProxyLogon fixed, ProxyShell not
    };
    let t0 = T::at(2021, 8, 13, 1, 2, 3);
    let ssrf = |t: T, method: &'static str, backend: &str, status: u16| Req {
        t,
        protocol: "Autodiscover",
        stem: "/autodiscover/autodiscover.json".into(),
        query: format!(
            "@evil.example/{backend}&Email=autodiscover/autodiscover.json%3F@evil.example"
        ),
        method,
        auth: "",
        user: String::new(),
        anchor: String::new(),
        ua: "python-requests/2.26.0".into(),
        ip: "198.51.100.23".into(),
        status,
        routing_hint: String::new(),
        backend_cookie: String::new(),
        target: String::new(),
    };
    let token = "VgEAVAdXaW5kb3dzQwBBCEtlcmJlcm9zTBdleGFkbWluQGNvbnRvc28ubG9jYWw";
    let attack = vec![
        ssrf(t0, "GET", "owa/?", 302),
        ssrf(t0.plus(2), "POST", "mapi/nspi/?", 200),
        ssrf(t0.plus(3), "POST", "mapi/emsmdb?", 200),
        ssrf(
            t0.plus(9),
            "POST",
            &format!("powershell/?X-Rps-CAT={token}"),
            200,
        ),
        ssrf(
            t0.plus(11),
            "POST",
            &format!("powershell/?X-Rps-CAT={token}"),
            200,
        ),
        ssrf(
            t0.plus(14),
            "POST",
            &format!("powershell/?X-Rps-CAT={token}"),
            200,
        ),
    ];
    let days: Vec<T> = [(2021, 7, 20), (2021, 8, 2), (2021, 8, 13), (2021, 8, 20)]
        .iter()
        .map(|&(y, m, d)| T::at(y, m, d, 0, 0, 0))
        .collect();
    for &day in &days {
        let extra: Vec<Req> = if day.date() == t0.date() {
            attack.clone()
        } else {
            Vec::new()
        };
        let logs = day_traffic(day, &srv, &mut rng, 40, &extra);
        write_day(&tree, day, &logs)?;
    }
    write_web_roots(&tree, "15.1.2176.9")?;
    // The management events, as a SIEM kept them (flattened JSON Lines, message text only).
    let mgmt = |t: T, cmdlet: &str, params: &str| {
        format!(
            "{{\"EventTime\":\"{} {}\",\"Hostname\":\"{}\",\"Channel\":\"MSExchange Management\",\"EventID\":1,\"SourceName\":\"MSExchange CmdletLogs\",\"Message\":\"Cmdlet suceeded. Cmdlet {cmdlet}, parameters {params}.\"}}\n",
            t.date(),
            t.time(),
            srv.fqdn
        )
    };
    let mut events = String::new();
    events.push_str(&mgmt(
        T::at(2021, 8, 12, 16, 0, 0),
        "Get-Mailbox",
        "-ResultSize \\\"10\\\"",
    ));
    events.push_str(&mgmt(
        t0.plus(10),
        "New-ManagementRoleAssignment",
        "-Role \\\"Mailbox Import Export\\\" -User \\\"exadmin@contoso.com\\\"",
    ));
    events.push_str(&mgmt(
        t0.plus(15),
        "New-MailboxExportRequest",
        "-Mailbox \\\"exadmin@contoso.com\\\" -FilePath \\\"\\\\\\\\127.0.0.1\\\\c$\\\\inetpub\\\\wwwroot\\\\aspnet_client\\\\rlb.aspx\\\"",
    ));
    tree.write(
        &tree.root.join("events").join("EX02-management.jsonl"),
        &events,
    )?;
    Ok(())
}

fn examples(out: &Path) -> io::Result<()> {
    let mut days: Vec<T> = [
        (2020, 12, 29),
        (2021, 1, 5),
        (2021, 1, 19),
        (2021, 2, 2),
        (2021, 2, 16),
        (2021, 3, 1),
    ]
    .iter()
    .map(|&(y, m, d)| T::at(y, m, d, 0, 0, 0))
    .collect();
    days.extend((2..=8).map(|d| T::at(2021, 3, d, 0, 0, 0)));
    let patch = Some(T::at(2021, 3, 5, 0, 0, 0));
    write_example(
        &out.join("compromised"),
        0xC0FFEE,
        &Example {
            days: &days,
            patch_day: patch,
            updates: &[],
            attack: true,
            scanner: true,
            admin_oab_change: true,
            web_roots: true,
        },
    )?;
    // The clean server keeps its logs and its updates: ProxyShell's May 2021 SU, CU22 in October
    // 2021, ProxyNotShell's November 2022 SU; its logs cover each campaign's window.
    let updates = [
        (T::at(2021, 5, 12, 0, 0, 0), (15, 1, 2176, 14)),
        (T::at(2021, 10, 5, 0, 0, 0), (15, 1, 2375, 7)),
        (T::at(2022, 11, 9, 0, 0, 0), (15, 1, 2375, 37)),
    ];
    let mut clean_days = days.clone();
    clean_days.extend(
        [
            (2021, 5, 12),
            (2021, 8, 10),
            (2021, 10, 5),
            (2022, 8, 2),
            (2022, 9, 30),
            (2022, 11, 9),
            (2022, 11, 10),
        ]
        .iter()
        .map(|&(y, m, d)| T::at(y, m, d, 0, 0, 0)),
    );
    write_example(
        &out.join("clean"),
        0xC1EA4,
        &Example {
            days: &clean_days,
            patch_day: patch,
            updates: &updates,
            attack: false,
            scanner: true,
            admin_oab_change: true,
            web_roots: true,
        },
    )?;
    let late: Vec<T> = [6, 7, 8, 9]
        .iter()
        .map(|&d| T::at(2021, 4, d, 0, 0, 0))
        .collect();
    write_example(
        &out.join("late-logs"),
        0x1A7E,
        &Example {
            days: &late,
            patch_day: Some(T::at(2021, 4, 1, 0, 0, 0)),
            updates: &[],
            attack: false,
            scanner: false,
            admin_oab_change: false,
            web_roots: false,
        },
    )?;
    write_proxyshell_example(&out.join("proxyshell"))?;
    Ok(())
}

/// About `mib` MiB of HttpProxy and IIS logs over many days, attacks injected on a few.
fn bench(out: &Path, mib: u64) -> io::Result<()> {
    let tree = Tree {
        root: out.to_path_buf(),
    };
    let mut rng = Rng(0xBE7C4);
    let srv = Server {
        name: "EX01",
        fqdn: "EX01.contoso.local",
        ip: "10.1.0.10",
        build: (15, 1, 2176, 2),
    };
    let target = mib * 1024 * 1024;
    let mut written = 0u64;
    let mut day = T::at(2021, 1, 1, 0, 0, 0);
    let (attack, t0) = attack_requests(&srv);
    let mut n = 0;
    while written < target {
        let mut logs = day_traffic(day, &srv, &mut rng, 20_000, &[]);
        if n % 10 == 3 {
            // Re-date the attack to this day and inject it.
            let shift = day.0 - T::at(2021, 3, 3, 0, 0, 0).0;
            for r in &attack {
                let mut r = r.clone();
                r.t = T(r.t.0 + shift);
                if !r.protocol.is_empty() {
                    let buf = logs
                        .proxy
                        .entry((r.t.hour_key(), r.protocol))
                        .or_insert_with(|| httpproxy_header(&srv, r.t));
                    httpproxy_line(&r, &srv, &mut rng, buf);
                }
                iis_line(&r, &srv, &mut rng, &mut logs.iis);
            }
        }
        let _ = t0;
        written += logs.proxy.values().map(|s| s.len() as u64).sum::<u64>() + logs.iis.len() as u64;
        write_day(&tree, day, &logs)?;
        day = day.plus(86400);
        n += 1;
    }
    let mut w = BufWriter::new(io::stderr());
    writeln!(
        w,
        "wrote {:.1} MiB in {n} days of logs",
        written as f64 / 1048576.0
    )?;
    Ok(())
}

/// Page-like text of about `len` bytes (ASP.NET markup and script, no web-shell pattern).
fn page_text(rng: &mut Rng, len: usize) -> String {
    const WORDS: &[&str] = &[
        "<div class=\"row\">",
        "</div>",
        "<span>",
        "</span>",
        "function",
        "var",
        "return",
        "this.",
        "if (",
        ") {",
        "}",
        "Response.Write(",
        "Server.HtmlEncode(",
        "Request.QueryString",
        "string",
        "public",
        "void",
        "<asp:Label runat=\"server\" ID=\"l\" />",
        "document.getElementById(",
        "addEventListener(",
        "mail",
        "calendar",
        "folder",
        "message",
        "owa",
        "resources",
    ];
    let mut s = String::from("<%@ Page Language=\"C#\" AutoEventWireup=\"true\" %>\r\n");
    while s.len() < len {
        s.push_str(rng.pick::<&str>(WORDS));
        s.push(if rng.below(8) == 0 { '\n' } else { ' ' });
    }
    s
}

/// A tree of web-root files (what `yr scan` and exhunt's file checks both read), with ten
/// candidates among them.
fn webtree(out: &Path, files: u64) -> io::Result<()> {
    let tree = Tree {
        root: out.to_path_buf(),
    };
    let mut rng = Rng(0x7EB7);
    let auth = tree
        .exch()
        .join("FrontEnd")
        .join("HttpProxy")
        .join("owa")
        .join("auth")
        .join("15.1.2176");
    let www = tree.root.join("inetpub").join("wwwroot");
    let mut bytes = 0u64;
    for i in 0..files {
        let dir = auth.join(format!("scripts{}", i % 50));
        let ext = *rng.pick(&["js", "css", "htm", "js", "js"]);
        let len = 1024 + rng.below(63 * 1024) as usize;
        let text = page_text(&mut rng, len);
        bytes += text.len() as u64;
        tree.write(&dir.join(format!("f{i}.{ext}")), &text)?;
    }
    let planted = "http://f/<script language=\"JScript\" runat=\"server\">function Page_Load(){/* exhunt bench: inert */}</script>";
    for i in 0..10 {
        let p = www.join("aspnet_client").join(format!("c{i}.aspx"));
        tree.write(&p, &oab_dump(planted))?;
    }
    eprintln!(
        "wrote {files} web files ({:.1} MiB) and 10 candidates",
        bytes as f64 / 1048576.0
    );
    Ok(())
}

/// A C:-like tree of about `mib` MiB that is mostly not evidence (system files, documents), with
/// a small Exchange web root and ten candidates.
fn image(out: &Path, mib: u64, files: Option<u64>) -> io::Result<()> {
    let tree = Tree {
        root: out.to_path_buf(),
    };
    let mut rng = Rng(0x1A6E);
    let target = mib << 20;
    let mut written = 0u64;
    let mut chunk = vec![0u8; 4 << 20];
    for b in chunk.iter_mut() {
        *b = rng.next() as u8;
    }
    let places: [(&str, &[&str]); 4] = [
        ("Windows/System32", &["dll", "exe", "mui", "sys"]),
        ("Windows/WinSxS/amd64_x", &["dll", "manifest", "cat"]),
        ("Program Files/Common Files/Vendor", &["dll", "dat", "pak"]),
        ("Users/alice/Documents", &["docx", "pdf", "xlsx", "jpg"]),
    ];
    let mut i = 0u64;
    while written < target {
        let (dir, exts) = places[(i % 4) as usize];
        let ext = exts[(i as usize / 4) % exts.len()];
        let (size, folder) = match files {
            // 0.25–2 MiB, 97 folders per place.
            None => (
                (256 << 10) + rng.below(1792 << 10) as usize,
                format!("d{}", i % 97),
            ),
            // The given count (a Windows install holds hundreds of thousands of files): sizes
            // around the mean, about 25 files per folder, two levels deep.
            Some(n) => {
                let mean = (target / n.max(1)).clamp(4096, 4 << 20);
                (
                    (mean / 2 + rng.below(mean)).clamp(4096, (4 << 20) - 4096) as usize,
                    format!("d{}/e{}", (i / 4) % 131, (i / 524) % 23),
                )
            }
        };
        let folder = dir
            .split('/')
            .fold(tree.root.clone(), |p, c| p.join(c))
            .join(folder);
        fs::create_dir_all(&folder)?;
        let start = rng.below((chunk.len() - size) as u64) as usize;
        // Real bytes for the first 4 KiB (what a walk or a sniff of the head sees), sparse
        // after: the tree has its full size but takes a few hundred MiB of disk, not 20 GiB.
        let mut f = fs::File::create(folder.join(format!("f{i}.{ext}")))?;
        f.write_all(&chunk[start..start + 4096])?;
        f.set_len(size as u64)?;
        written += size as u64;
        i += 1;
    }
    write_web_roots(&tree, "15.1.2176.2")?;
    let planted = "http://f/<script language=\"JScript\" runat=\"server\">function Page_Load(){/* exhunt bench: inert */}</script>";
    for k in 0..8 {
        let p = tree
            .root
            .join("inetpub")
            .join("wwwroot")
            .join("aspnet_client")
            .join(format!("c{k}.aspx"));
        tree.write(&p, &oab_dump(planted))?;
    }
    let mut dump = b"MDMP\x93\xa7\0\0".to_vec();
    dump.resize(1 << 20, 0);
    fs::create_dir_all(tree.root.join("root"))?;
    fs::write(tree.root.join("root").join("o.dmp"), dump)?;
    fs::create_dir_all(tree.root.join("ProgramData"))?;
    fs::write(
        tree.root.join("ProgramData").join("it.zip"),
        zip_stored(&[("a.txt", b"a")]),
    )?;
    eprintln!(
        "wrote {:.1} MiB in {i} files, plus web roots and 10 candidates",
        written as f64 / 1048576.0
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let res = match args.get(1).map(String::as_str) {
        Some("examples") if args.len() == 3 => examples(Path::new(&args[2])),
        Some("bench") if args.len() == 4 => match args[3].parse() {
            Ok(mib) => bench(Path::new(&args[2]), mib),
            Err(_) => Err(io::Error::other("SIZE_MIB must be a number")),
        },
        Some("realistic") if args.len() == 4 || args.len() == 5 => {
            let per_day = args.get(4).map(|f| f.parse::<u64>());
            match (args[3].parse(), per_day) {
                (Ok(mib), None) => {
                    realistic::corpus(Path::new(&args[2]), mib, realistic::REQUESTS_PER_DAY)
                }
                (Ok(mib), Some(Ok(n))) => realistic::corpus(Path::new(&args[2]), mib, n),
                _ => Err(io::Error::other(
                    "SIZE_MIB and REQUESTS_PER_DAY must be numbers",
                )),
            }
        }
        Some("bigfile") if args.len() == 4 => match args[3].parse() {
            Ok(mib) => realistic::big_iis(Path::new(&args[2]), mib, 40_000),
            Err(_) => Err(io::Error::other("SIZE_MIB must be a number")),
        },
        Some("webtree") if args.len() == 4 => match args[3].parse() {
            Ok(n) => webtree(Path::new(&args[2]), n),
            Err(_) => Err(io::Error::other("FILES must be a number")),
        },
        Some("image") if args.len() == 4 || args.len() == 5 => {
            let files = args.get(4).map(|f| f.parse::<u64>());
            match (args[3].parse(), files) {
                (Ok(mib), None) => image(Path::new(&args[2]), mib, None),
                (Ok(mib), Some(Ok(n))) => image(Path::new(&args[2]), mib, Some(n)),
                _ => Err(io::Error::other("SIZE_MIB and FILES must be numbers")),
            }
        }
        _ => Err(io::Error::other(
            "usage: gen-corpus examples OUT_DIR | bench OUT_DIR SIZE_MIB | realistic OUT_DIR SIZE_MIB [REQUESTS_PER_DAY] | bigfile OUT_DIR SIZE_MIB | webtree OUT_DIR FILES | image OUT_DIR SIZE_MIB [FILES]",
        )),
    };
    if let Err(e) = res {
        eprintln!("gen-corpus: {e}");
        std::process::exit(2);
    }
}
