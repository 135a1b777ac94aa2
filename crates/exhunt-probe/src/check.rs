//! Probing one target: read the build, optionally run the behaviour checks, decide per CVE.
//!
//! Version checks (always): the logon page's `X-OWA-Version` header (four parts) and its
//! `/owa/auth/<build>/` resource path (three parts), then the ECP export-tool ClickOnce manifest
//! (four parts), under `Current` and, when only the CU is known, under the candidate build
//! folders of that CU from the build table (probe-and-ecosystem.md A1).
//!
//! Behaviour checks (`--active` only; A2): the ProxyLogon `X-AnonResource` cookie request
//! (vulnerable iff `X-CalculatedBETarget` names localhost), the ProxyShell autodiscover request
//! (302 vulnerable, 400 patched), and the autodiscover + powershell URL shape that Microsoft's
//! ProxyNotShell rewrite rule aborts. Each is the public detection request, with no payload and
//! no third-party callback. A request that is aborted (connection closed or reset before any
//! byte) while the logon page answered is Microsoft's `AbortRequest` mitigation.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use exhunt_rules::builds::{BuildTable, Patch, Update, Version};
use regex::Regex;

use crate::http::{Client, Conn, HttpError, Response};
use crate::limit::Limiter;
use crate::model::{CveState, Exchange, Row, State};
use crate::targets::{AddrSet, Target};

/// The CVEs reported, with their campaign and fixing update.
pub const CVES: [(&str, &str, Update); 10] = [
    ("CVE-2021-26855", "ProxyLogon", Update::Mar21SU),
    ("CVE-2021-26857", "ProxyLogon", Update::Mar21SU),
    ("CVE-2021-26858", "ProxyLogon", Update::Mar21SU),
    ("CVE-2021-27065", "ProxyLogon", Update::Mar21SU),
    ("CVE-2021-34473", "ProxyShell", Update::Apr21SU),
    ("CVE-2021-34523", "ProxyShell", Update::Apr21SU),
    ("CVE-2021-31207", "ProxyShell", Update::May21SU),
    ("CVE-2021-33766", "ProxyToken", Update::Jul21SU),
    ("CVE-2022-41040", "ProxyNotShell", Update::Nov22SU),
    ("CVE-2022-41082", "ProxyNotShell", Update::Nov22SU),
];

const LOGON: &str = "/owa/auth/logon.aspx";
const EXPORTTOOL: &str = "exporttool/microsoft.exchange.ediscovery.exporttool.application";
const PROXYLOGON_PATH: &str = "/owa/auth/x.js";
const PROXYLOGON_COOKIE: &str = "X-AnonResource=true; X-AnonResource-Backend=localhost/ecp/default.flt?~3; X-BEResource=localhost/owa/auth/logon.aspx?~3;";
const PROXYSHELL_PATH: &str = "/autodiscover/autodiscover.json?@probe.invalid/owa/?&Email=autodiscover/autodiscover.json%3F@probe.invalid";
const PNS_PATH: &str = "/autodiscover/autodiscover.json?@probe.invalid/owa/?&Email=autodiscover/autodiscover.json%3F@probe.invalid&Protocol=XYZ&FooProtocol=Powershell";

/// Options of the checks.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Run the behaviour checks.
    pub active: bool,
    /// Connect retries after a failed or timed-out connect.
    pub retries: u32,
    /// Export-tool build folders tried when only the CU is known.
    pub max_candidates: usize,
}

/// Shared state of the checks.
pub struct Checker {
    /// HTTP client.
    pub client: Client,
    /// Build table.
    pub builds: BuildTable,
    /// Options.
    pub opts: CheckOptions,
    /// Rate limits.
    pub limiter: Arc<Limiter>,
    /// Scope (empty: none).
    pub scope: Arc<AddrSet>,
    /// Names pinned to addresses (`--resolve`), asked before DNS.
    pub pinned: Vec<(String, IpAddr)>,
    /// Whether names not pinned may be looked up in DNS.
    pub dns: bool,
}

/// How a behaviour check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Positive,
    Negative,
    Aborted,
    Unclear,
}

struct Session<'a> {
    checker: &'a Checker,
    target: &'a Target,
    addr: SocketAddr,
    conn: Option<Conn>,
    row: Row,
}

impl Session<'_> {
    async fn connect(&mut self) -> Result<(), HttpError> {
        let mut attempt = 0;
        loop {
            let r = self
                .checker
                .client
                .connect(self.addr, &self.target.host, self.target.scheme)
                .await;
            match r {
                Ok(c) => {
                    if self.row.certificate.is_none() {
                        self.row.certificate.clone_from(&c.cert);
                        self.row.tls.clone_from(&c.tls);
                    }
                    self.conn = Some(c);
                    return Ok(());
                }
                Err(HttpError::Connect(_) | HttpError::ConnectTimeout(_))
                    if attempt < self.checker.opts.retries =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 << attempt.min(4)))
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One GET, on the open connection when it can carry it. A reused connection that the
    /// server closed in between is reopened once (the keep-alive race), so that only an abort
    /// on a fresh connection counts as an abort.
    async fn get(
        &mut self,
        check: &str,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<Response, HttpError> {
        let mut fresh_tried = false;
        let result = loop {
            if self.conn.is_none() {
                if let Err(e) = self.connect().await {
                    break Err(e);
                }
                fresh_tried = true;
            }
            self.checker.limiter.wait(self.addr.ip()).await;
            let conn = self.conn.as_mut().expect("connected above");
            let reused = conn.used > 0;
            let r = self
                .checker
                .client
                .get(conn, &self.target.host_header(), path, extra)
                .await;
            match r {
                Ok(resp) => {
                    if !resp.reusable {
                        self.conn = None;
                    }
                    break Ok(resp);
                }
                Err(e) => {
                    self.conn = None;
                    if reused && !fresh_tried && matches!(e, HttpError::Aborted(_)) {
                        continue;
                    }
                    break Err(e);
                }
            }
        };
        let mut ex = Exchange {
            check: check.to_string(),
            path: path.to_string(),
            status: None,
            headers: BTreeMap::new(),
            error: None,
        };
        match &result {
            Ok(resp) => {
                ex.status = Some(resp.status);
                for name in [
                    "X-OWA-Version",
                    "X-FEServer",
                    "X-BEServer",
                    "X-CalculatedBETarget",
                    "Server",
                    "Location",
                    "X-Powered-By",
                ] {
                    if let Some(v) = resp.header(name) {
                        ex.headers.insert(name.to_string(), truncate(v, 200));
                    }
                }
            }
            Err(e) => ex.error = Some(e.to_string()),
        }
        self.row.requests.push(ex);
        result
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

static OWA_PATH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)/owa/(?:auth/)?(1[45]\.\d{1,2}\.\d{1,5}(?:\.\d{1,5})?)/"#)
        .expect("valid regex")
});
static MANIFEST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)<assemblyIdentity\b[^>]*?\bversion\s*=\s*["'](\d{1,2}\.\d{1,2}\.\d{1,5}\.\d{1,5})["']"#)
        .expect("valid regex")
});

/// Signals that a response comes from Exchange.
fn exchange_signals(r: &Response) -> Vec<&'static str> {
    let mut s = vec![];
    for (h, label) in [
        ("X-OWA-Version", "X-OWA-Version header"),
        ("X-FEServer", "X-FEServer header"),
        ("X-BEServer", "X-BEServer header"),
        ("X-CalculatedBETarget", "X-CalculatedBETarget header"),
    ] {
        if r.header(h).is_some() {
            s.push(label);
        }
    }
    let body = String::from_utf8_lossy(&r.body);
    if OWA_PATH.is_match(&body) {
        s.push("OWA resource path");
    }
    s
}

impl Checker {
    /// Probes one target.
    pub async fn probe(&self, target: &Target) -> Row {
        let started = Instant::now();
        let mut row = Row::bare(
            target.key(),
            target.host.clone(),
            target.port,
            &target.scheme.to_string(),
            State::Indeterminate,
            String::new(),
        );
        let ip = match target.ip {
            Some(ip) => ip,
            None => match self.resolve(target).await {
                Ok(ip) => ip,
                Err(reason) => {
                    row.state = State::Unreachable;
                    row.reason = reason;
                    row.elapsed_ms = ms(started);
                    return row;
                }
            },
        };
        row.ip = Some(ip.to_string());
        if !self.scope.is_empty()
            && !self.scope.contains_ip(ip)
            && !self.scope.contains_name(&target.host)
        {
            row.state = State::Skipped;
            row.reason = format!(
                "{} resolves to {ip}, outside the scope file; not probed",
                target.host
            );
            row.elapsed_ms = ms(started);
            return row;
        }
        let mut s = Session {
            checker: self,
            target,
            addr: SocketAddr::new(ip, target.port),
            conn: None,
            row,
        };
        self.run(&mut s).await;
        let mut row = s.row;
        row.elapsed_ms = ms(started);
        row
    }

    async fn resolve(&self, t: &Target) -> Result<IpAddr, String> {
        if let Some((_, ip)) = self
            .pinned
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&t.host))
        {
            return Ok(*ip);
        }
        if !self.dns {
            return Err(format!(
                "DNS: {} is not pinned with --resolve and DNS is off",
                t.host
            ));
        }
        let timeout = self.client.timeouts.connect;
        match tokio::time::timeout(timeout, tokio::net::lookup_host((t.host.as_str(), t.port)))
            .await
        {
            Err(_) => Err(format!("DNS: no answer for {} within {timeout:?}", t.host)),
            Ok(Err(e)) => Err(format!("DNS: {} does not resolve ({e})", t.host)),
            Ok(Ok(mut addrs)) => addrs
                .next()
                .map(|a| a.ip())
                .ok_or_else(|| format!("DNS: {} has no address", t.host)),
        }
    }

    async fn run(&self, s: &mut Session<'_>) {
        // 1. The logon page.
        let logon = s.get("logon-page", LOGON, &[]).await;
        let logon = match logon {
            Ok(r) => r,
            Err(e) => {
                let (state, why) = failure_state(&e);
                s.row.state = state;
                s.row.reason = why;
                return;
            }
        };
        let mut signals: Vec<&str> = exchange_signals(&logon);
        let mut build: Option<(Version, &str)> = None;
        if let Some(v) = logon.header("X-OWA-Version").and_then(Version::parse) {
            build = Some((v, "X-OWA-Version header"));
        }
        let body = String::from_utf8_lossy(&logon.body);
        let path_build = OWA_PATH.captures(&body).and_then(|c| Version::parse(&c[1]));
        if build.is_none() {
            build = path_build.map(|v| (v, "OWA logon page path"));
        }
        // 2. The export-tool manifest when the revision is still unknown.
        if !build.is_some_and(|(v, _)| v.is_full()) {
            let mut paths = vec![format!("/ecp/Current/{EXPORTTOOL}")];
            if let Some((v, _)) = build {
                let cu = &v.parts()[..3];
                let mut cands: Vec<&str> = self
                    .builds
                    .rows()
                    .filter(|r| Version::parse(&r.build).is_some_and(|b| &b.parts()[..3] == cu))
                    .map(|r| r.build.as_str())
                    .collect();
                cands.reverse();
                paths.extend(
                    cands
                        .into_iter()
                        .take(self.opts.max_candidates)
                        .map(|b| format!("/ecp/{b}/{EXPORTTOOL}")),
                );
            }
            for p in paths {
                match s.get("exporttool", &p, &[]).await {
                    Ok(r) if r.status == 200 => {
                        signals.extend(exchange_signals(&r));
                        let text = String::from_utf8_lossy(&r.body);
                        if let Some(v) =
                            MANIFEST.captures(&text).and_then(|c| Version::parse(&c[1]))
                        {
                            signals.push("export-tool manifest");
                            build = Some((v, "export-tool manifest"));
                            break;
                        }
                    }
                    Ok(r) => signals.extend(exchange_signals(&r)),
                    Err(_) => break,
                }
            }
        }
        signals.sort_unstable();
        signals.dedup();
        if signals.is_empty() {
            s.row.state = State::NotExchange;
            let server = logon
                .header("Server")
                .map(|v| format!(", Server: {v}"))
                .unwrap_or_default();
            s.row.reason = format!(
                "HTTP {} on the OWA logon page and no Exchange header or path{server}",
                logon.status
            );
            return;
        }
        if let Some((v, src)) = build {
            s.row.build = Some(v.to_string());
            s.row.build_source = Some(src.to_string());
            s.row.product = self.builds.identify(&v).map(|i| i.to_string());
        }
        // 3. Behaviour checks.
        let mut proxylogon = None;
        let mut proxyshell = None;
        let mut pns = None;
        if self.opts.active {
            let cookie = [("Cookie", PROXYLOGON_COOKIE)];
            proxylogon = Some(
                match s.get("proxylogon-cookie", PROXYLOGON_PATH, &cookie).await {
                    Ok(r) => match r.header("X-CalculatedBETarget") {
                        Some(t) if t.to_ascii_lowercase().contains("localhost") => Seen::Positive,
                        _ => Seen::Negative,
                    },
                    Err(HttpError::Aborted(_)) => Seen::Aborted,
                    Err(_) => Seen::Unclear,
                },
            );
            proxyshell = Some(
                match s.get("proxyshell-autodiscover", PROXYSHELL_PATH, &[]).await {
                    Ok(r) if r.status == 302 => Seen::Positive,
                    Ok(r) if r.status == 400 => Seen::Negative,
                    Ok(_) => Seen::Unclear,
                    Err(HttpError::Aborted(_)) => Seen::Aborted,
                    Err(_) => Seen::Unclear,
                },
            );
            pns = Some(
                match s.get("proxynotshell-mitigation", PNS_PATH, &[]).await {
                    Ok(_) => Seen::Negative,
                    Err(HttpError::Aborted(_)) => Seen::Aborted,
                    Err(_) => Seen::Unclear,
                },
            );
        }
        // 4. Per CVE.
        for (cve, campaign, update) in CVES {
            let by_build = build.map(|(v, src)| (self.builds.check(&v, update), src));
            let behaviour = match update {
                Update::Mar21SU => proxylogon.map(|b| (b, "ProxyLogon cookie check")),
                Update::Apr21SU => proxyshell.map(|b| (b, "ProxyShell autodiscover check")),
                Update::Nov22SU => pns.map(|b| (b, "ProxyNotShell rewrite-rule check")),
                _ => None,
            };
            let (state, decided_by, reason) = decide(by_build.as_ref(), behaviour, update);
            s.row.cves.push(CveState {
                cve: cve.to_string(),
                campaign: campaign.to_string(),
                fixed_by: update.name().to_string(),
                state,
                decided_by,
                reason,
            });
        }
        let (state, reason) = overall(&s.row);
        s.row.state = state;
        s.row.reason = reason;
    }
}

fn ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The state of a target whose first request failed.
fn failure_state(e: &HttpError) -> (State, String) {
    let state = match e {
        HttpError::Connect(_) | HttpError::ConnectTimeout(_) | HttpError::TlsTimeout(_) => {
            State::Unreachable
        }
        HttpError::ReadTimeout(_) | HttpError::Aborted(_) => State::Unreachable,
        HttpError::NotTls(_) | HttpError::NotHttp(_) => State::NotExchange,
        HttpError::Tls(_) | HttpError::HeadTooLarge(_) | HttpError::Io(_) => State::Indeterminate,
    };
    (state, e.to_string())
}

type Decision = (State, String, String);

fn decide(
    by_build: Option<&(exhunt_rules::builds::PatchAnswer, &str)>,
    behaviour: Option<(Seen, &str)>,
    update: Update,
) -> Decision {
    let build_state = by_build.map(|(a, src)| {
        let s = match a.state {
            Patch::Patched => State::Patched,
            Patch::Vulnerable => State::Vulnerable,
            Patch::Indeterminate => State::Indeterminate,
        };
        (s, format!("build ({src})"), a.reason.clone())
    });
    let Some((seen, check)) = behaviour else {
        return build_state.unwrap_or_else(|| {
            (
                State::Indeterminate,
                "none".into(),
                format!(
                    "the build could not be read, so {} cannot be checked",
                    update.name()
                ),
            )
        });
    };
    let bstate = build_state.as_ref().map(|b| b.0);
    let behaviour = format!("behaviour ({check})");
    match seen {
        Seen::Positive => (
            State::Vulnerable,
            behaviour,
            format!("{check}: the server answered as an unpatched server"),
        ),
        Seen::Aborted if bstate == Some(State::Patched) => {
            let (s, d, r) = build_state.unwrap_or((State::Patched, String::new(), String::new()));
            (
                s,
                d,
                format!("{r}; the {check} request was also aborted (a mitigation is in place)"),
            )
        }
        Seen::Aborted => (
            State::Mitigated,
            behaviour,
            format!(
                "{check}: the request was aborted, as Microsoft's URL Rewrite mitigation does; {}",
                build_state.map_or_else(|| "the build is unknown".to_string(), |b| b.2)
            ),
        ),
        Seen::Negative
            if matches!(bstate, None | Some(State::Indeterminate)) && update != Update::Nov22SU =>
        {
            (
                State::Patched,
                behaviour,
                format!("{check}: the server answered as a patched server"),
            )
        }
        Seen::Negative | Seen::Unclear => build_state.unwrap_or_else(|| {
            (
                State::Indeterminate,
                "none".into(),
                format!("the build could not be read and the {check} did not decide"),
            )
        }),
    }
}

/// The target's state from its CVEs: any vulnerable, else any indeterminate, else any
/// mitigated, else patched.
fn overall(row: &Row) -> (State, String) {
    let vulnerable = row.cves_in(State::Vulnerable);
    let unknown = row.cves_in(State::Indeterminate);
    let mitigated = row.cves_in(State::Mitigated);
    let build = row.build.as_deref().map_or_else(
        || "build not read".to_string(),
        |b| {
            format!(
                "build {b}{}",
                row.product
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            )
        },
    );
    if !vulnerable.is_empty() {
        return (
            State::Vulnerable,
            format!(
                "{build}: vulnerable to {}",
                by_campaign(row, State::Vulnerable)
            ),
        );
    }
    if !unknown.is_empty() {
        return (
            State::Indeterminate,
            format!(
                "{build}: cannot decide {}",
                by_campaign(row, State::Indeterminate)
            ),
        );
    }
    if !mitigated.is_empty() {
        return (
            State::Mitigated,
            format!(
                "{build}: not patched for {}, but mitigated",
                by_campaign(row, State::Mitigated)
            ),
        );
    }
    (
        State::Patched,
        format!("{build}: patched for every CVE checked"),
    )
}

/// "ProxyLogon (4 CVEs), ProxyToken (CVE-2021-33766)": the CVEs of a row in `state`, grouped.
fn by_campaign(row: &Row, state: State) -> String {
    let mut groups: Vec<(&str, Vec<&str>)> = vec![];
    for c in row.cves.iter().filter(|c| c.state == state) {
        match groups.iter_mut().find(|(k, _)| *k == c.campaign) {
            Some((_, v)) => v.push(&c.cve),
            None => groups.push((&c.campaign, vec![&c.cve])),
        }
    }
    groups
        .iter()
        .map(|(k, v)| match v.as_slice() {
            [one] => format!("{k} ({one})"),
            many => format!("{k} ({} CVEs)", many.len()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A row for a target text that is not a target.
pub fn invalid_row(text: &str, reason: &str) -> Row {
    Row::bare(
        text.to_string(),
        text.to_string(),
        0,
        "",
        State::Invalid,
        format!("not a target: {reason}"),
    )
}
