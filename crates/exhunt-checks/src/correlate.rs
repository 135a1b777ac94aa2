//! Correlation across logs, before the story and the verdict: each finding is graded on the most
//! specific evidence of its request and attributed to the campaign whose chain it joins.
//!
//! Why a pass of its own: a check sees one line. The same request shows in the front end's IIS
//! log and in the HttpProxy log; only the HttpProxy line says which back end the front end
//! proxied to and what it answered, so an IIS `POST /ecp/y.js 200` whose HttpProxy twin reached
//! only `/autodiscover/autodiscover.xml` is a failed attempt, not a success (issue 13: mass
//! scanning came out "ProxyLogon compromised"). Likewise a check cannot know the server's build,
//! nor whether a user agent from the HAFNIUM list or a request for a written file belongs to the
//! ProxyLogon chain or to another intrusion on a server that was never vulnerable to ProxyLogon.
//! The steps, in order:
//!
//! 1. outcome of each request finding: succeeded, refused (status or back end shows failure),
//!    or unknown;
//! 2. one request, one step: an IIS finding whose HttpProxy twin (time within a second, client,
//!    method, URL, request id where both have one) was found takes the twin's grade and joins its
//!    step; an IIS-only ProxyLogon success counts only when no HttpProxy log covers its time;
//! 3. builds rule campaigns out: a request shape answered by a build already fixed for its
//!    campaign is an attempt at most;
//! 4. attribution: requests for a written file belong to the campaign that wrote it; indicator
//!    hits (EXH-IOC-*) to the campaign whose exploitation they share a file, a client or a time
//!    span with, else to post-exploitation; PowerShell-session rules (mailbox export, role
//!    assignment) to ProxyNotShell when the build rules ProxyShell out.

use std::collections::{BTreeSet, HashSet};

use chrono::Duration;
use exhunt_model::{
    ArtefactKind, BuildSeen, Campaign, Confidence, Finding, Outcome, Severity, Stage, Timestamp,
};

use crate::proxyshell::percent_decode;
use crate::webshell::written_url;

/// The time span of one HttpProxy log file and the protocol whose requests it holds: only a
/// file of the request's protocol can hold its twin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySpan {
    /// Protocol, lower case (`ecp`, `owa`, `autodiscover`, `rpchttp`…), if known.
    pub protocol: Option<String>,
    /// First record time.
    pub first: Option<Timestamp>,
    /// Last record time.
    pub last: Option<Timestamp>,
}

impl ProxySpan {
    /// The span of a file from its first/last record, its rows' `Protocol` column (`column`,
    /// from the first record) and its lower-cased path components. The column says what the
    /// file holds wherever it was copied; the folder (`Logging\HttpProxy\Ecp\…`) is the
    /// fallback when the column is missing or empty. Neither: unknown.
    pub fn of(
        components: &[String],
        column: Option<&str>,
        first: Option<Timestamp>,
        last: Option<Timestamp>,
    ) -> Self {
        let protocol = column
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_ascii_lowercase)
            .or_else(|| {
                components
                    .iter()
                    .position(|c| c == "httpproxy")
                    .filter(|&i| i + 2 < components.len())
                    .map(|i| components[i + 1].clone())
            });
        ProxySpan {
            protocol,
            first,
            last,
        }
    }
}

/// What the correlation needs to know about the server besides its findings.
pub struct Context<'a> {
    /// HttpProxy log files read.
    pub proxy_spans: &'a [ProxySpan],
    /// Builds seen in the logs, with the first time each shows.
    pub builds: &'a [BuildSeen],
    /// Whether a build has a campaign's fix.
    pub fixed: &'a dyn Fn(Campaign, &str) -> Option<bool>,
}

/// Rules of request shapes: the exploit's requests, which the build and the HttpProxy view can
/// overrule.
const REQUEST_RULES: [&str; 6] = [
    "EXH-PL-1",
    "EXH-PL-2",
    "EXH-PL-4",
    "EXH-PS-1",
    "EXH-PNS-1",
    "EXH-PNS-2",
];

/// IIS findings graded again on their HttpProxy twin.
const IIS_TWINNED: [&str; 4] = ["EXH-PL-4", "EXH-PS-1", "EXH-PNS-1", "EXH-PNS-2"];

/// HttpProxy findings that can be an IIS finding's twin.
const PROXY_TWINS: [&str; 6] = [
    "EXH-PL-1",
    "EXH-PL-2",
    "EXH-PL-3",
    "EXH-PS-1",
    "EXH-PNS-1",
    "EXH-PNS-2",
];

/// Findings whose campaign is decided here from the evidence, not by their rule.
const INDICATOR_RULES: [&str; 2] = ["EXH-IOC-1", "EXH-IOC-2"];
const WRITTEN_FILE_RULE: &str = "EXH-PL-9";
/// Remote PowerShell post-exploitation that ProxyShell and ProxyNotShell operators both ran.
const POWERSHELL_RULES: [&str; 3] = ["EXH-EV-6", "EXH-EV-7", "EXH-EV-20"];

/// How long after a campaign's last exploitation finding a generic finding is still taken to
/// belong to it by time alone; before its first, a few minutes of clock skew between logs.
const AFTER: i64 = 3600;
const BEFORE: i64 = 300;

const EXPLOITED: [Campaign; 3] = [
    Campaign::ProxyLogon,
    Campaign::ProxyShell,
    Campaign::ProxyNotShell,
];

fn is_web(kind: ArtefactKind) -> bool {
    matches!(
        kind,
        ArtefactKind::IisLog | ArtefactKind::HttpProxyLog | ArtefactKind::RpsHttpLog
    )
}

/// Grades and attributes the findings of one server in place.
pub fn refine(findings: &mut [Finding], ctx: &Context<'_>) {
    for f in findings.iter_mut() {
        f.outcome = default_outcome(f);
    }
    twins(findings, ctx.proxy_spans);
    let ruled_out = rule_out_by_build(findings, ctx);
    attribute(findings, ctx, &ruled_out);
}

/// The outcome a request finding shows by itself.
fn default_outcome(f: &Finding) -> Option<Outcome> {
    if !is_web(f.kind) || f.stage == Stage::Scan || f.stage > Stage::WebShellUse {
        return f.outcome;
    }
    if f.stage >= Stage::ExploitSuccess {
        return Some(Outcome::Succeeded);
    }
    let autodiscover_only = matches!(f.rule_id.as_str(), "EXH-PL-1" | "EXH-PL-2")
        && f.entities.target.as_deref().is_some_and(|t| {
            t.split_once('/')
                .is_some_and(|(_, p)| p.to_ascii_lowercase().starts_with("autodiscover"))
        });
    let refused = autodiscover_only || f.entities.status.is_some_and(|s| s >= 400 || s == 0);
    Some(if refused {
        Outcome::Refused
    } else {
        Outcome::Unknown
    })
}

/// `a.b.c.d:port` → `a.b.c.d`; `[::1]:443` → `::1`; lists keep their first address.
fn norm_ip(ip: &str) -> String {
    let ip = ip.split([';', ' ', ',']).next().unwrap_or(ip).trim();
    let ip = match ip.split_once(':') {
        Some((a, port)) if !port.contains(':') => a,
        _ => ip,
    };
    let ip = match (ip.strip_prefix('['), ip.rfind(']')) {
        (Some(_), Some(end)) => &ip[1..end],
        _ => ip,
    };
    ip.to_ascii_lowercase()
}

/// Path and query of a URL, decoded and lower-cased, query without its `?`.
fn split_url(u: &str) -> (String, Option<String>) {
    let d = percent_decode(&percent_decode(u)).to_lowercase();
    match d.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.trim_start_matches('?').to_string())),
        None => (d, None),
    }
}

fn second(t: Timestamp) -> i64 {
    t.timestamp()
}

/// Whether an IIS finding and an HttpProxy finding are the same request.
fn same_request(iis: &Finding, proxy: &Finding) -> bool {
    let (Some(a), Some(b)) = (iis.timestamp, proxy.timestamp) else {
        return false;
    };
    // IIS logs whole seconds; HttpProxy milliseconds.
    if (second(a) - second(b)).abs() > 1 {
        return false;
    }
    let (x, y) = (&iis.entities, &proxy.entities);
    if let (Some(p), Some(q)) = (&x.client_ip, &y.client_ip)
        && norm_ip(p) != norm_ip(q)
    {
        return false;
    }
    if let (Some(p), Some(q)) = (&x.method, &y.method)
        && !p.eq_ignore_ascii_case(q)
    {
        return false;
    }
    if let (Some(p), Some(q)) = (&x.request_id, &y.request_id)
        && !p.eq_ignore_ascii_case(q)
    {
        return false;
    }
    let (Some(u), Some(v)) = (&x.url, &y.url) else {
        return false;
    };
    let ((pu, qu), (pv, qv)) = (split_url(u), split_url(v));
    pu == pv && (qu.is_none() || qv.is_none() || qu == qv)
}

/// The HttpProxy protocol folder a URL path is logged under.
fn protocol_of(url: &str) -> String {
    let first = url
        .trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match first.as_str() {
        "rpc" => "rpchttp".into(),
        "microsoft-server-activesync" => "eas".into(),
        _ => first,
    }
}

/// Whether an HttpProxy log of the request's protocol covers `t`. A file whose protocol is not
/// known (copied flat, out of its `HttpProxy\<protocol>` folder) covers nothing: an
/// Autodiscover log would otherwise silence an ECP request it could never have held.
fn covered(spans: &[ProxySpan], t: Timestamp, url: &str) -> bool {
    let proto = protocol_of(url);
    let slack = Duration::seconds(1);
    spans.iter().any(|s| {
        s.protocol.as_deref() == Some(proto.as_str())
            && s.first.is_some_and(|f| f - slack <= t)
            && s.last.is_some_and(|l| t <= l + slack)
    })
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// One request, one step (see the module docs, step 2).
fn twins(findings: &mut [Finding], spans: &[ProxySpan]) {
    let proxy: Vec<usize> = (0..findings.len())
        .filter(|&j| {
            let g = &findings[j];
            g.kind == ArtefactKind::HttpProxyLog && PROXY_TWINS.contains(&g.rule_id.as_str())
        })
        .collect();
    let mut used: HashSet<usize> = HashSet::new();
    // Indicator hits of one request in both logs: the same step and counted once.
    let proxy_ioc: Vec<usize> = (0..findings.len())
        .filter(|&j| {
            let g = &findings[j];
            g.kind == ArtefactKind::HttpProxyLog && INDICATOR_RULES.contains(&g.rule_id.as_str())
        })
        .collect();
    for i in 0..findings.len() {
        let f = &findings[i];
        if f.kind == ArtefactKind::IisLog && INDICATOR_RULES.contains(&f.rule_id.as_str()) {
            let twin = proxy_ioc
                .iter()
                .copied()
                .filter(|j| !used.contains(j))
                .find(|&j| findings[j].rule_id == f.rule_id && same_request(f, &findings[j]));
            if let Some(j) = twin {
                used.insert(j);
                findings[i].joins = Some(findings[j].rule_id.clone());
            }
            continue;
        }
        if f.kind != ArtefactKind::IisLog
            || !IIS_TWINNED.contains(&f.rule_id.as_str())
            || !matches!(f.stage, Stage::ExploitAttempt | Stage::ExploitSuccess)
        {
            continue;
        }
        let Some(t) = f.timestamp else { continue };
        let twin = proxy
            .iter()
            .copied()
            .filter(|j| !used.contains(j))
            .find(|&j| same_request(f, &findings[j]));
        if let Some(j) = twin {
            used.insert(j);
            let g = findings[j].clone();
            let f = &mut findings[i];
            f.stage = g.stage;
            f.severity = g.severity;
            f.confidence = g.confidence;
            f.campaign = g.campaign;
            f.outcome = g.outcome;
            f.joins = Some(g.joins.clone().unwrap_or_else(|| g.rule_id.clone()));
            f.title = format!(
                "{} — the same request as HttpProxy {}:{}, graded on it: {}",
                f.title,
                file_name(&g.evidence.path),
                g.evidence.line,
                g.title
            );
        } else if f.rule_id == "EXH-PL-4" && f.stage == Stage::ExploitSuccess && ssrf_shape(f) {
            let url = f.entities.url.clone().unwrap_or_default();
            let f = &mut findings[i];
            if covered(spans, t, &url) {
                f.stage = Stage::ExploitAttempt;
                f.severity = Severity::High;
                f.confidence = Confidence::Medium;
                f.outcome = Some(Outcome::Unknown);
                f.title.push_str(
                    " — an HttpProxy log covers this time and shows no SSRF for this request: not counted as a success",
                );
            } else {
                f.title.push_str(
                    " — no HttpProxy log covers this time: graded on the IIS line alone, which cannot show what the front end proxied (medium confidence)",
                );
            }
        }
    }
}

/// Whether a request finding is a shape of the exploit's SSRF, which a patched build or the
/// HttpProxy view can overrule. EXH-PL-4 also names POSTs to the OWA theme resources, where the
/// HAFNIUM operators reached web shells they had planted: a shell planted before the update
/// still answers after it, so neither the build nor the HttpProxy log says anything about it.
fn ssrf_shape(f: &Finding) -> bool {
    !(f.rule_id == "EXH-PL-4"
        && f.entities.url.as_deref().is_some_and(|u| {
            u.to_ascii_lowercase()
                .starts_with("/owa/auth/current/themes/resources/")
        }))
}

/// The build the server ran at `t`: the last one first seen at or before `t`.
fn build_at(builds: &[BuildSeen], t: Timestamp) -> Option<&BuildSeen> {
    builds
        .iter()
        .filter(|b| b.first_seen.is_some_and(|s| s <= t))
        .max_by_key(|b| b.first_seen)
}

/// The build a campaign was ruled out by at `t`, if any.
fn ruled_out_at(ctx: &Context<'_>, campaign: Campaign, t: Timestamp) -> Option<String> {
    let b = build_at(ctx.builds, t)?;
    ((ctx.fixed)(campaign, &b.build) == Some(true)).then(|| b.build.clone())
}

/// Builds rule campaigns out (module docs, step 3). Returns the findings ruled out.
fn rule_out_by_build(findings: &mut [Finding], ctx: &Context<'_>) -> HashSet<usize> {
    let mut out = HashSet::new();
    for (i, f) in findings.iter_mut().enumerate() {
        if !REQUEST_RULES.contains(&f.rule_id.as_str())
            || f.stage != Stage::ExploitSuccess
            || !EXPLOITED.contains(&f.campaign)
            || !ssrf_shape(f)
        {
            continue;
        }
        let Some(t) = f.timestamp else { continue };
        let Some(build) = ruled_out_at(ctx, f.campaign, t) else {
            continue;
        };
        f.stage = Stage::ExploitAttempt;
        f.severity = Severity::High;
        f.outcome = Some(Outcome::Refused);
        f.title = format!(
            "{} — build {build} was not vulnerable to {}: an attempt at most",
            f.title,
            f.campaign.label()
        );
        out.insert(i);
    }
    out
}

/// What links generic findings to one campaign's exploitation.
#[derive(Default)]
struct Chain {
    clients: BTreeSet<String>,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    /// URLs (lower case) of files the chain wrote.
    files: BTreeSet<String>,
    /// Whether one of its steps succeeded: an exploitation that worked explains what follows
    /// better than one that was refused.
    succeeded: bool,
}

impl Chain {
    fn in_span(&self, t: Timestamp) -> bool {
        match (self.start, self.end) {
            (Some(s), Some(e)) => {
                s - Duration::seconds(BEFORE) <= t && t <= e + Duration::seconds(AFTER)
            }
            _ => false,
        }
    }
}

fn is_generic(rule: &str) -> bool {
    INDICATOR_RULES.contains(&rule) || rule == WRITTEN_FILE_RULE || POWERSHELL_RULES.contains(&rule)
}

fn chains(findings: &[Finding], ruled_out: &HashSet<usize>) -> Vec<(Campaign, Chain)> {
    EXPLOITED
        .iter()
        .map(|&c| {
            let mut ch = Chain::default();
            for (i, f) in findings.iter().enumerate() {
                if f.campaign != c
                    || is_generic(&f.rule_id)
                    || f.stage < Stage::ExploitAttempt
                    || ruled_out.contains(&i)
                {
                    continue;
                }
                ch.succeeded |= f.stage >= Stage::ExploitSuccess;
                if let Some(ip) = &f.entities.client_ip {
                    ch.clients.insert(norm_ip(ip));
                }
                if let Some(t) = f.timestamp {
                    ch.start = Some(ch.start.map_or(t, |s| s.min(t)));
                    ch.end = Some(ch.end.map_or(t, |e| e.max(t)));
                }
                if let Some(u) = written_url(f) {
                    ch.files.insert(u.to_ascii_lowercase());
                }
            }
            (c, ch)
        })
        .collect()
}

/// Attribution by evidence (module docs, step 4).
fn attribute(findings: &mut [Finding], ctx: &Context<'_>, ruled_out: &HashSet<usize>) {
    // PowerShell-session rules first: a mailbox export on a build ProxyShell could not reach
    // came through another door.
    let mut ch = chains(findings, ruled_out);
    for f in findings.iter_mut() {
        if !POWERSHELL_RULES.contains(&f.rule_id.as_str()) || f.campaign != Campaign::ProxyShell {
            continue;
        }
        let Some(t) = f.timestamp else { continue };
        let Some(build) = ruled_out_at(ctx, Campaign::ProxyShell, t) else {
            continue;
        };
        let pns = ch
            .iter()
            .any(|(c, x)| *c == Campaign::ProxyNotShell && x.in_span(t));
        f.campaign = if pns {
            Campaign::ProxyNotShell
        } else {
            Campaign::PostExploitation
        };
        f.title = format!(
            "{} — build {build} was not vulnerable to ProxyShell; {}",
            f.title,
            if pns {
                "during the ProxyNotShell exploitation"
            } else {
                "no exploitation it belongs to was found: post-exploitation"
            }
        );
    }
    ch = chains(findings, ruled_out);

    // Files written on the server, with the campaign whose chain wrote them: a campaign's own
    // write (OAB download, ECP reset), or a generic write (a Sysmon file event) inside the
    // time span of one campaign's exploitation.
    let mut written: Vec<(String, Option<Timestamp>, Campaign)> = Vec::new();
    for f in findings.iter() {
        let Some(u) = written_url(f) else {
            continue;
        };
        let by = if EXPLOITED.contains(&f.campaign) {
            f.campaign
        } else {
            f.timestamp
                .and_then(|t| {
                    ch.iter()
                        .filter(|(_, x)| x.in_span(t))
                        .max_by_key(|(_, x)| x.succeeded)
                        .map(|(c, _)| *c)
                })
                .unwrap_or(Campaign::PostExploitation)
        };
        written.push((u.to_ascii_lowercase(), f.timestamp, by));
    }
    for (c, x) in ch.iter_mut() {
        x.files
            .extend(written.iter().filter(|w| w.2 == *c).map(|w| w.0.clone()));
    }

    for f in findings.iter_mut() {
        if f.rule_id == WRITTEN_FILE_RULE {
            let url = f
                .entities
                .file_path
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase();
            // The earliest write of that URL decides.
            let by = written
                .iter()
                .filter(|w| w.0 == url)
                .min_by_key(|w| w.1)
                .map_or(Campaign::PostExploitation, |w| w.2);
            f.campaign = by;
            let who = match by {
                Campaign::PostExploitation => {
                    "written on the server; no exploitation it belongs to was found".to_string()
                }
                c => format!("written by the {} chain", c.label()),
            };
            f.title = format!("{} — {who}", f.title);
        } else if INDICATOR_RULES.contains(&f.rule_id.as_str()) {
            let path = f
                .entities
                .url
                .as_deref()
                .map(|u| split_url(u).0)
                .unwrap_or_default();
            let ip = f.entities.client_ip.as_deref().map(norm_ip);
            let published = f.campaign;
            // Among the chains a link reaches: one that succeeded, then the one the list was
            // published for, then the first.
            let pick = |level: &dyn Fn(&Chain) -> bool| -> Option<Campaign> {
                ch.iter()
                    .filter(|(_, x)| level(x))
                    .min_by_key(|(c, x)| (!x.succeeded, *c != published))
                    .map(|(c, _)| *c)
            };
            let link = pick(&|x: &Chain| !path.is_empty() && x.files.contains(&path))
                .map(|c| (c, "a request for a file its chain wrote".to_string()))
                .or_else(|| {
                    let ip = ip.clone()?;
                    pick(&|x: &Chain| x.clients.contains(&ip))
                        .map(|c| (c, format!("the same client {ip} as its exploitation")))
                })
                .or_else(|| {
                    let t = f.timestamp?;
                    pick(&|x: &Chain| x.in_span(t))
                        .map(|c| (c, "during its exploitation".to_string()))
                });
            match link {
                Some((c, why)) => {
                    f.campaign = c;
                    f.title = format!("{} — linked to {}: {why}", f.title, c.label());
                }
                None => {
                    f.campaign = Campaign::PostExploitation;
                    f.title = format!(
                        "{} — no link to an exploitation on this server (same client, file or time): post-exploitation",
                        f.title
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_protocols() {
        assert_eq!(norm_ip("192.0.2.1:5521"), "192.0.2.1");
        assert_eq!(norm_ip("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(norm_ip("2001:db8::1"), "2001:db8::1");
        assert_eq!(protocol_of("/ecp/y.js"), "ecp");
        assert_eq!(protocol_of("/rpc/rpcproxy.dll"), "rpchttp");
        let in_folder: Vec<String> = ["logging", "httpproxy", "ecp", "httpproxy_2021030302-1.log"]
            .map(String::from)
            .to_vec();
        let flat: Vec<String> = ["httpproxy", "a.log"].map(String::from).to_vec();
        // The folder, when the rows do not say.
        let span = ProxySpan::of(&in_folder, None, None, None);
        assert_eq!(span.protocol.as_deref(), Some("ecp"));
        assert_eq!(ProxySpan::of(&in_folder, Some(" "), None, None), span);
        // Copied flat: the rows' Protocol column says what the file holds.
        let col = ProxySpan::of(&flat, Some("RpcHttp"), None, None);
        assert_eq!(col.protocol.as_deref(), Some("rpchttp"));
        assert_eq!(
            col.protocol.as_deref(),
            Some(protocol_of("/rpc/x").as_str())
        );
        // The column wins over a folder it was copied into by mistake.
        let moved = ProxySpan::of(&in_folder, Some("Owa"), None, None);
        assert_eq!(moved.protocol.as_deref(), Some("owa"));
        // Neither: unknown.
        assert_eq!(ProxySpan::of(&flat, None, None, None).protocol, None);
    }
}
