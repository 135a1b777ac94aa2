//! Parsing and validating uploads, before anything touches the database.
//!
//! Every upload is all or nothing: a document that is truncated, of another tool, of another
//! major schema, or with one bad line is refused whole with an error that names the place, and
//! the store writes nothing. The same content uploaded twice is recognised by the SHA-256 of its
//! canonical JSON (key order and whitespace do not matter).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDateTime, Utc};
use exhunt_model::{SCHEMA_VERSION, ScanResult};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::db::fmt_time;
use crate::error::{Error, Result};

/// The result schema this build validates against (the repository's `schema/`).
pub const RESULT_SCHEMA: &str = include_str!("../../../schema/scan-result.v1.json");

fn validator() -> Option<&'static jsonschema::Validator> {
    static V: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(RESULT_SCHEMA).ok()?;
        jsonschema::validator_for(&schema).ok()
    })
    .as_ref()
}

/// The built-in schema with every `additionalProperties: false` dropped: what a document of a
/// newer minor schema is held to. A newer minor may only add fields; everything else (required
/// fields, types, `tool.name`, patterns, enumerations) still applies.
fn relaxed_validator() -> Option<&'static jsonschema::Validator> {
    static V: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        let mut schema: Value = serde_json::from_str(RESULT_SCHEMA).ok()?;
        allow_additional(&mut schema);
        jsonschema::validator_for(&schema).ok()
    })
    .as_ref()
}

fn allow_additional(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.get("additionalProperties") == Some(&Value::Bool(false)) {
                m.remove("additionalProperties");
            }
            m.values_mut().for_each(allow_additional);
        }
        Value::Array(a) => a.iter_mut().for_each(allow_additional),
        _ => {}
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A scan result that passed validation.
#[derive(Debug)]
pub struct ValidScan {
    /// The document as typed data.
    pub result: ScanResult,
    /// Canonical JSON text (stored).
    pub canonical: String,
    /// SHA-256 of `canonical`.
    pub sha256: String,
    /// Notes for the uploader (a newer minor schema).
    pub warnings: Vec<String>,
}

fn major(v: &str) -> &str {
    v.split('.').next().unwrap_or("")
}

fn minor(v: &str) -> u32 {
    v.split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// Validates an uploaded `exhunt scan --format json` document, with the same refusals as
/// `exhunt report` (`exhunt_report::saved`), plus the JSON schema itself.
pub fn validate_scan(body: &[u8]) -> Result<ValidScan> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Error::Invalid(format!(
            "not a complete JSON document (truncated, or not written by `exhunt scan --format json`): {e}"
        ))
    })?;
    let found = value
        .get("schema_version")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::Invalid("no schema_version: not an exhunt scan result".into()))?;
    if major(&found) != major(SCHEMA_VERSION) {
        return Err(Error::Invalid(format!(
            "result schema {found}; this server reads schema {}.x (its own is {SCHEMA_VERSION})",
            major(SCHEMA_VERSION)
        )));
    }
    let mut warnings = Vec::new();
    // Always validated: a newer minor schema is held to this build's schema too, with only
    // its closed objects opened (fields added since are kept, not checked).
    let newer = minor(&found) > minor(SCHEMA_VERSION);
    let v = if newer {
        warnings.push(format!(
            "result schema {found} is newer than this server's {SCHEMA_VERSION}: stored whole, fields added since are not checked nor shown"
        ));
        relaxed_validator()
    } else {
        validator()
    }
    .ok_or_else(|| Error::Invalid("the built-in result schema does not compile".into()))?;
    let errors: Vec<String> = v
        .iter_errors(&value)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if !errors.is_empty() {
        return Err(Error::Invalid(format!(
            "does not follow result schema {found}: {}",
            errors.join("; ")
        )));
    }
    let result: ScanResult = serde_json::from_value(value.clone()).map_err(|e| {
        Error::Invalid(format!(
            "does not follow result schema {found} (edited, or written by another tool): {e}"
        ))
    })?;
    if result.servers.is_empty() {
        return Err(Error::Invalid("the result holds no server".into()));
    }
    let canonical = value.to_string();
    let sha256 = sha256_hex(canonical.as_bytes());
    Ok(ValidScan {
        result,
        canonical,
        sha256,
        warnings,
    })
}

/// One network observation, from a probe row or a third-party report.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// `exhunt-probe` or `shadowserver`.
    pub source: &'static str,
    /// Address.
    pub ip: Option<IpAddr>,
    /// Port.
    pub port: Option<i64>,
    /// Host name as reported.
    pub host: Option<String>,
    /// AS number, when reported.
    pub asn: Option<u32>,
    /// State: the probe's (`vulnerable`, `mitigated`, `patched`…) or, for a third-party report,
    /// `vulnerable` or `compromised`.
    pub state: String,
    /// How exposure was decided (`build: X-OWA-Version header`, `behaviour: …`,
    /// `third party: version string`).
    pub decided_by: String,
    /// Build or version read.
    pub build: Option<String>,
    /// The reason in words.
    pub detail: String,
    /// When it was observed (stored form).
    pub seen: String,
    /// State per campaign (`proxy-logon` → `vulnerable`), as far as the row tells.
    pub campaigns: BTreeMap<String, String>,
    /// Canonical JSON of the input row (stored, and hashed for de-duplication).
    pub raw: String,
    /// SHA-256 of `raw`.
    pub sha256: String,
}

/// What a parse of a batch gave: the observations, and rows deliberately not kept.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Observations.
    pub rows: Vec<Observation>,
    /// Rows that say nothing about a server (probe states `invalid`, `skipped`).
    pub ignored: u64,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    s.strip_suffix("Z")
        .or_else(|| s.strip_suffix("+00"))
        .and_then(|t| NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S").ok())
        .map(|t| t.and_utc())
}

/// The campaign id of the scan result (`proxy-logon`) for a probe's campaign name
/// (`ProxyLogon`).
pub fn campaign_id(name: &str) -> String {
    let mut out = String::new();
    for (i, ch) in name.trim().chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 && !out.ends_with('-') {
            out.push('-');
        }
        if ch == ' ' || ch == '_' {
            if !out.ends_with('-') {
                out.push('-');
            }
            continue;
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// The campaign of a CVE id, for reports that name CVEs only (Shadowserver tags).
pub fn campaign_of_cve(cve: &str) -> Option<&'static str> {
    let c = cve.trim().to_ascii_uppercase();
    match c.as_str() {
        "CVE-2021-26855" | "CVE-2021-26857" | "CVE-2021-26858" | "CVE-2021-27065" => {
            Some("proxy-logon")
        }
        "CVE-2021-34473" | "CVE-2021-34523" | "CVE-2021-31207" => Some("proxy-shell"),
        "CVE-2022-41040" | "CVE-2022-41082" | "CVE-2022-41080" => Some("proxy-not-shell"),
        "CVE-2021-33766" => Some("proxy-token"),
        _ => None,
    }
}

/// Rank of a probe state when one campaign's CVEs disagree: the most exposed wins.
fn exposure_rank(s: &str) -> u8 {
    match s {
        "compromised" => 5,
        "vulnerable" => 4,
        "mitigated" => 3,
        "indeterminate" => 2,
        "patched" => 1,
        _ => 0,
    }
}

fn merge_state(m: &mut BTreeMap<String, String>, campaign: String, state: &str) {
    let e = m.entry(campaign).or_insert_with(|| state.to_string());
    if exposure_rank(state) > exposure_rank(e) {
        *e = state.to_string();
    }
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Parses `exhunt probe --format jsonl` output. Every line must be a probe row of schema
/// `exhunt-probe/1.x`; blank lines are allowed.
pub fn parse_probe(body: &[u8]) -> Result<Parsed> {
    collect(parse_probe_chunks, body)
}

/// A parse that hands its observations over as it reads them, in chunks of up to `rows`
/// observations, in the order of the input ([`parse_probe_chunks`]); `each` answering `false`
/// stops it. An error ends it: the chunks handed over before belong to a refused upload.
/// At least one chunk is handed over (an empty one for an input with no observation).
pub type ChunkedParse = fn(&[u8], usize, &mut dyn FnMut(Parsed) -> bool) -> Result<()>;

/// All of a [`ChunkedParse`]'s chunks in one.
fn collect(parse: ChunkedParse, body: &[u8]) -> Result<Parsed> {
    let mut all = Parsed::default();
    parse(body, usize::MAX, &mut |p| {
        all.rows.extend(p.rows);
        all.ignored += p.ignored;
        true
    })?;
    Ok(all)
}

/// Hands `parsed` over in chunks of up to `rows` observations (its ignored rows counted in the
/// first), at least one.
pub fn in_chunks(parsed: Parsed, rows: usize, each: &mut dyn FnMut(Parsed) -> bool) -> Result<()> {
    let mut ignored = parsed.ignored;
    let mut it = parsed.rows.into_iter().peekable();
    loop {
        let part: Vec<Observation> = it.by_ref().take(rows.max(1)).collect();
        let go_on = each(Parsed {
            rows: part,
            ignored: std::mem::take(&mut ignored),
        });
        if !go_on || it.peek().is_none() {
            return Ok(());
        }
    }
}

/// [`parse_probe`], as a [`ChunkedParse`]: JSON Lines are handed over as they are read (the
/// store writes a chunk while the next is read); a `--format json` document once read whole.
pub fn parse_probe_chunks(
    body: &[u8],
    rows: usize,
    each: &mut dyn FnMut(Parsed) -> bool,
) -> Result<()> {
    let text_body = std::str::from_utf8(body)
        .map_err(|_| Error::Invalid("probe rows are not UTF-8 text".into()))?;
    // `exhunt probe --format json`: one document whose `rows` are the JSONL rows.
    let document = serde_json::from_str::<Value>(text_body)
        .ok()
        .filter(|v| v.get("rows").is_some_and(Value::is_array));
    if let Some(mut doc) = document {
        let schema = text(&doc, "schema").unwrap_or_default();
        if !schema.starts_with("exhunt-probe/1.") {
            return Err(Error::Invalid(format!(
                "schema {schema:?} is not an exhunt probe document (expected exhunt-probe/1.x)"
            )));
        }
        let rows_of_doc = match doc.get_mut("rows").map(Value::take) {
            Some(Value::Array(rows)) => rows,
            _ => Vec::new(),
        };
        let mut out = Parsed::default();
        for (i, v) in rows_of_doc.into_iter().enumerate() {
            out.add(probe_row(i + 1, v)?);
        }
        return in_chunks(out, rows, each);
    }
    // JSONL, the upload client's form.
    let mut out = Parsed::default();
    for (i, line) in text_body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| {
            Error::Invalid(format!(
                "line {}: not a complete JSON object (truncated, or not `exhunt probe` JSONL): {e}",
                i + 1
            ))
        })?;
        out.add(probe_row(i + 1, v)?);
        if out.rows.len() >= rows && !each(std::mem::take(&mut out)) {
            return Ok(());
        }
    }
    each(out);
    Ok(())
}

/// [`parse_shadowserver`], as a [`ChunkedParse`] (read whole, then handed over).
pub fn parse_shadowserver_chunks(
    body: &[u8],
    rows: usize,
    each: &mut dyn FnMut(Parsed) -> bool,
) -> Result<()> {
    in_chunks(parse_shadowserver(body)?, rows, each)
}

/// [`parse_intelmq`], as a [`ChunkedParse`] (read whole, then handed over).
pub fn parse_intelmq_chunks(
    body: &[u8],
    rows: usize,
    each: &mut dyn FnMut(Parsed) -> bool,
) -> Result<()> {
    in_chunks(parse_intelmq(body)?, rows, each)
}

impl Parsed {
    fn add(&mut self, row: Option<Observation>) {
        match row {
            Some(o) => self.rows.push(o),
            None => self.ignored += 1,
        }
    }
}

/// One probe row (line `n`): its observation, or `None` for a row that says nothing about a
/// server (`invalid`, `skipped`).
fn probe_row(n: usize, v: Value) -> Result<Option<Observation>> {
    let schema = text(&v, "schema").unwrap_or_default();
    if !schema.starts_with("exhunt-probe/1.") {
        return Err(Error::Invalid(format!(
            "line {n}: schema {schema:?} is not an exhunt probe row (expected exhunt-probe/1.x)"
        )));
    }
    let bad = |what: &str| Error::Invalid(format!("line {n}: {what}"));
    let state = text(&v, "state").ok_or_else(|| bad("no state"))?;
    const STATES: [&str; 8] = [
        "vulnerable",
        "mitigated",
        "indeterminate",
        "patched",
        "not-exchange",
        "unreachable",
        "skipped",
        "invalid",
    ];
    if !STATES.contains(&state.as_str()) {
        return Err(bad(&format!("unknown state {state:?}")));
    }
    if state == "invalid" || state == "skipped" {
        return Ok(None);
    }
    let time = text(&v, "time").ok_or_else(|| bad("no time"))?;
    let seen = parse_time(&time).ok_or_else(|| bad(&format!("time {time:?} is not RFC 3339")))?;
    let ip = match text(&v, "ip") {
        Some(s) => Some(
            s.parse::<IpAddr>()
                .map_err(|_| bad(&format!("ip {s:?} is not an address")))?,
        ),
        None => None,
    };
    let port = v.get("port").and_then(Value::as_i64);
    if !matches!(port, Some(1..=65535)) {
        return Err(bad("port missing or out of range"));
    }
    let host = text(&v, "host");
    let mut decided: Vec<String> = Vec::new();
    let mut campaigns = BTreeMap::new();
    if let Some(cves) = v.get("cves").and_then(Value::as_array) {
        for c in cves {
            if let (Some(name), Some(st)) = (text(c, "campaign"), text(c, "state")) {
                merge_state(&mut campaigns, campaign_id(&name), &st);
            }
            if let Some(d) = text(c, "decided_by")
                && d != "none"
                && !decided.contains(&d)
            {
                decided.push(d);
            }
        }
    }
    if decided.is_empty()
        && let Some(src) = text(&v, "build_source")
    {
        decided.push(format!("build: {src}"));
    }
    let decided_by = if decided.is_empty() {
        "none".to_string()
    } else {
        decided.join("; ")
    };
    let raw = v.to_string();
    Ok(Some(Observation {
        source: "exhunt-probe",
        ip,
        port,
        host,
        asn: None,
        state,
        decided_by,
        build: text(&v, "build"),
        detail: text(&v, "reason").unwrap_or_default(),
        seen: fmt_time(&seen),
        campaigns,
        sha256: sha256_hex(raw.as_bytes()),
        raw,
    }))
}

/// Columns a Shadowserver `scan_exchange` / `scan6_exchange` report must have.
pub const SHADOWSERVER_REQUIRED: [&str; 4] = ["timestamp", "ip", "port", "tag"];

/// Parses a Shadowserver `scan_exchange` or `scan6_exchange` CSV report (`timestamp, severity,
/// ip, protocol, port, hostname, tag, asn, geo, region, city, naics, hostname_source, sector,
/// version, servername, url`). Following IntelMQ's mapping, a `webshell` tag is a compromise
/// (`intrusions / system-compromise / exchange-server-webshell`), anything else a vulnerable
/// server (`vulnerable / vulnerable-system / vulnerable-exchange-server`). Exposure in these
/// reports is decided by a version string: said so in `decided_by`.
pub fn parse_shadowserver(body: &[u8]) -> Result<Parsed> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut rd = csv::ReaderBuilder::new().flexible(false).from_reader(body);
    let headers: Vec<String> = rd
        .headers()
        .map_err(|e| Error::Invalid(format!("not a CSV report: {e}")))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for need in SHADOWSERVER_REQUIRED {
        if !headers.iter().any(|h| h == need) {
            return Err(Error::Invalid(format!(
                "not a Shadowserver scan_exchange report: no {need:?} column (columns: {})",
                headers.join(", ")
            )));
        }
    }
    let mut out = Parsed::default();
    for (i, rec) in rd.records().enumerate() {
        let n = i + 2;
        let rec = rec.map_err(|e| Error::Invalid(format!("line {n}: {e}")))?;
        let mut obj = serde_json::Map::new();
        for (h, f) in headers.iter().zip(rec.iter()) {
            obj.insert(h.clone(), Value::String(f.to_string()));
        }
        let v = Value::Object(obj);
        let bad = |what: &str| Error::Invalid(format!("line {n}: {what}"));
        let ts = text(&v, "timestamp").ok_or_else(|| bad("no timestamp"))?;
        let seen =
            parse_time(&ts).ok_or_else(|| bad(&format!("timestamp {ts:?} not understood")))?;
        let ip_s = text(&v, "ip").ok_or_else(|| bad("no ip"))?;
        let ip: IpAddr = ip_s
            .parse()
            .map_err(|_| bad(&format!("ip {ip_s:?} is not an address")))?;
        let port = match text(&v, "port") {
            Some(p) => Some(
                p.parse::<i64>()
                    .ok()
                    .filter(|p| (1..=65535).contains(p))
                    .ok_or_else(|| bad(&format!("port {p:?} out of range")))?,
            ),
            None => None,
        };
        let asn = match text(&v, "asn") {
            Some(a) => Some(
                a.trim_start_matches("AS")
                    .parse::<u32>()
                    .map_err(|_| bad(&format!("asn {a:?} is not a number")))?,
            ),
            None => None,
        };
        let tag = text(&v, "tag").unwrap_or_default();
        let webshell = tag.to_ascii_lowercase().contains("webshell");
        let (state, classification) = if webshell {
            (
                "compromised",
                "intrusions / system-compromise / exchange-server-webshell",
            )
        } else {
            (
                "vulnerable",
                "vulnerable / vulnerable-system / vulnerable-exchange-server",
            )
        };
        let version = text(&v, "version");
        let mut detail = format!("Shadowserver: {classification}; tag {tag}");
        for k in ["version", "servername", "url", "severity"] {
            if let Some(x) = text(&v, k) {
                detail.push_str(&format!("; {k} {x}"));
            }
        }
        let decided_by = if webshell {
            "third party: Shadowserver web-shell check".to_string()
        } else {
            "third party: Shadowserver version string".to_string()
        };
        let mut campaigns = BTreeMap::new();
        for part in tag.split([';', ',', ' ']) {
            if let Some(c) = campaign_of_cve(part) {
                merge_state(&mut campaigns, c.to_string(), "vulnerable");
            }
        }
        if webshell {
            merge_state(
                &mut campaigns,
                "post-exploitation".to_string(),
                "compromised",
            );
        }
        let raw = v.to_string();
        out.rows.push(Observation {
            campaigns,
            source: "shadowserver",
            ip: Some(ip),
            port,
            host: text(&v, "hostname"),
            asn,
            state: state.to_string(),
            decided_by,
            build: version,
            detail,
            seen: fmt_time(&seen),
            sha256: sha256_hex(raw.as_bytes()),
            raw,
        });
    }
    Ok(out)
}

fn field(v: &Value, k: &str) -> Option<String> {
    match v.get(k)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .or_else(|| x.as_number().map(|n| n.to_string()))
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

/// Parses IntelMQ events (JSON Lines, or one JSON array), as IntelMQ's Shadowserver parser
/// writes them for `scan_exchange`: `source.ip`, `source.port`, `source.reverse_dns`,
/// `source.asn`, `time.source`, `classification.{taxonomy,type,identifier}`,
/// `product.vulnerabilities`, `extra.tag`, `extra.version`, `extra.servername`, `feed.name`.
/// `system-compromise` / `exchange-server-webshell` is a compromise; anything else a vulnerable
/// server.
pub fn parse_intelmq(body: &[u8]) -> Result<Parsed> {
    let text_body = std::str::from_utf8(body)
        .map_err(|_| Error::Invalid("IntelMQ events are not UTF-8 text".into()))?;
    let events: Vec<(usize, Value)> = match serde_json::from_str::<Value>(text_body) {
        Ok(Value::Array(a)) => a.into_iter().enumerate().map(|(i, v)| (i + 1, v)).collect(),
        _ => {
            let mut ev = Vec::new();
            for (i, line) in text_body.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(line).map_err(|e| {
                    Error::Invalid(format!(
                        "event {}: not a complete JSON object (truncated?): {e}",
                        i + 1
                    ))
                })?;
                ev.push((i + 1, v));
            }
            ev
        }
    };
    let mut out = Parsed::default();
    for (n, v) in events {
        let bad = |what: &str| Error::Invalid(format!("event {n}: {what}"));
        if !v.is_object() {
            return Err(bad("not a JSON object"));
        }
        let ip_s = field(&v, "source.ip")
            .ok_or_else(|| bad("no source.ip: not an IntelMQ event of a scanned server"))?;
        let ip: IpAddr = ip_s
            .parse()
            .map_err(|_| bad(&format!("source.ip {ip_s:?} is not an address")))?;
        let ts = field(&v, "time.source")
            .or_else(|| field(&v, "time.observation"))
            .ok_or_else(|| bad("no time.source"))?;
        let seen = parse_time(&ts).ok_or_else(|| bad(&format!("time {ts:?} not understood")))?;
        let port = match field(&v, "source.port") {
            Some(p) => Some(
                p.parse::<i64>()
                    .ok()
                    .filter(|p| (1..=65535).contains(p))
                    .ok_or_else(|| bad(&format!("source.port {p:?} out of range")))?,
            ),
            None => None,
        };
        let asn = match field(&v, "source.asn") {
            Some(a) => Some(
                a.trim_start_matches("AS")
                    .parse::<u32>()
                    .map_err(|_| bad(&format!("source.asn {a:?} is not a number")))?,
            ),
            None => None,
        };
        let ident = field(&v, "classification.identifier").unwrap_or_default();
        let ctype = field(&v, "classification.type").unwrap_or_default();
        let tag = field(&v, "extra.tag").unwrap_or_default();
        let compromised = ctype == "system-compromise"
            || ident.contains("webshell")
            || tag.to_ascii_lowercase().contains("webshell");
        let mut campaigns = BTreeMap::new();
        let vulns = field(&v, "product.vulnerabilities").unwrap_or_default();
        for part in vulns
            .split([',', ';', ' '])
            .chain(tag.split([';', ',', ' ']))
        {
            if let Some(c) = campaign_of_cve(part) {
                merge_state(&mut campaigns, c.to_string(), "vulnerable");
            }
        }
        if compromised {
            merge_state(
                &mut campaigns,
                "post-exploitation".to_string(),
                "compromised",
            );
        }
        let feed = field(&v, "feed.name").unwrap_or_else(|| "IntelMQ".into());
        let mut detail = format!(
            "IntelMQ {feed}: {} / {} / {}",
            field(&v, "classification.taxonomy").unwrap_or_default(),
            ctype,
            ident
        );
        for k in [
            "extra.tag",
            "product.vulnerabilities",
            "extra.servername",
            "destination.url",
        ] {
            if let Some(x) = field(&v, k) {
                detail.push_str(&format!("; {k} {x}"));
            }
        }
        let raw = v.to_string();
        out.rows.push(Observation {
            source: "intelmq",
            ip: Some(ip),
            port,
            host: field(&v, "source.reverse_dns").or_else(|| field(&v, "source.fqdn")),
            asn,
            state: if compromised {
                "compromised"
            } else {
                "vulnerable"
            }
            .to_string(),
            decided_by: format!(
                "third party: {feed} via IntelMQ ({})",
                if ident.is_empty() {
                    "no identifier"
                } else {
                    &ident
                }
            ),
            build: field(&v, "extra.version"),
            detail,
            seen: fmt_time(&seen),
            campaigns,
            sha256: sha256_hex(raw.as_bytes()),
            raw,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intelmq_events_and_probe_documents() {
        let ev = concat!(
            r#"{"feed.name":"Vulnerable-Exchange-Server","time.source":"2021-03-10T00:00:00+00:00","source.ip":"192.0.2.10","source.port":443,"source.asn":64500,"source.reverse_dns":"mail.example.org","classification.taxonomy":"vulnerable","classification.type":"vulnerable-system","classification.identifier":"vulnerable-exchange-server","product.vulnerabilities":"cve-2021-26855","extra.version":"15.1.2176.2"}"#,
            "\n",
            r#"{"time.source":"2021-03-10T00:00:00+00:00","source.ip":"2001:db8::1","classification.type":"system-compromise","classification.identifier":"exchange-server-webshell","extra.tag":"exchange;webshell"}"#,
            "\n"
        );
        let p = parse_intelmq(ev.as_bytes()).unwrap_or_default();
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[0].state, "vulnerable");
        assert_eq!(p.rows[0].asn, Some(64500));
        assert_eq!(
            p.rows[0].campaigns.get("proxy-logon").map(String::as_str),
            Some("vulnerable")
        );
        assert!(p.rows[0].decided_by.contains("Vulnerable-Exchange-Server"));
        assert_eq!(p.rows[1].state, "compromised");
        assert!(
            matches!(parse_intelmq(b"{\"source.port\": 1}"), Err(Error::Invalid(m)) if m.contains("source.ip"))
        );
        let doc = r#"{"schema":"exhunt-probe/1.0","meta":{},"summary":{},"rows":[{"schema":"exhunt-probe/1.0","target":"a:443","host":"a.example","ip":"192.0.2.1","port":443,"scheme":"https","state":"patched","reason":"r","time":"2026-11-30T09:00:00.000Z","elapsed_ms":1}]}"#;
        let p = parse_probe(doc.as_bytes()).unwrap_or_default();
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[0].state, "patched");
    }

    #[test]
    fn campaign_names_match_the_scan_result() {
        assert_eq!(campaign_id("ProxyLogon"), "proxy-logon");
        assert_eq!(campaign_id("ProxyNotShell"), "proxy-not-shell");
        assert_eq!(campaign_id("proxy-shell"), "proxy-shell");
        assert_eq!(campaign_of_cve("cve-2021-34473"), Some("proxy-shell"));
        assert_eq!(campaign_of_cve("exchange"), None);
    }

    #[test]
    fn foreign_and_truncated_scans_are_refused() {
        let e = |b: &[u8]| match validate_scan(b) {
            Err(Error::Invalid(m)) => m,
            other => format!("unexpected {other:?}"),
        };
        assert!(e(b"{\"schema_version\": \"1.4\", \"tool\"").contains("truncated"));
        assert!(e(b"{\"hello\": 1}").contains("no schema_version"));
        assert!(e(b"{\"schema_version\": \"2.0\"}").contains("schema 2.0"));
        assert!(e(b"{\"schema_version\": \"1.4\"}").contains("does not follow"));
    }

    #[test]
    fn a_newer_minor_schema_is_still_validated() {
        let doc = include_str!("../../exhunt/tests/snapshots/compromised.json")
            .replace("\"STARTED\"", "\"2026-11-30T09:00:00Z\"")
            .replace("\"FINISHED\"", "\"2026-11-30T09:05:00Z\"");
        let mut v: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
        v["schema_version"] = "1.99".into();
        // Fields added by a newer minor: accepted, with a warning.
        let mut added = v.clone();
        added["new_top_level"] = "x".into();
        added["servers"][0]["new_field"] = 1.into();
        let ok = validate_scan(added.to_string().as_bytes());
        assert!(
            matches!(&ok, Ok(s) if s.warnings.iter().any(|w| w.contains("1.99"))),
            "{ok:?}"
        );
        // Another tool, a missing required field, a bad pattern: refused even so.
        let refused = |doc: &Value| match validate_scan(doc.to_string().as_bytes()) {
            Err(Error::Invalid(m)) => m.contains("does not follow result schema 1.99"),
            _ => false,
        };
        let mut foreign = v.clone();
        foreign["tool"]["name"] = "not-exhunt".into();
        assert!(refused(&foreign));
        let mut missing = v.clone();
        if let Some(m) = missing.as_object_mut() {
            m.remove("verdict");
        }
        assert!(refused(&missing));
        let mut bad = v.clone();
        bad["verdict"] = "<script>".into();
        assert!(refused(&bad));
    }

    /// JSONL rows keep their order, and the error told is the first in line order, with its
    /// line, wherever it falls.
    #[test]
    fn probe_lines_keep_order_and_the_first_error() {
        let row = |n: usize| {
            format!(
                r#"{{"schema":"exhunt-probe/1.0","target":"192.0.2.{n}:443","host":"ex{n}.example","ip":"192.0.2.{n}","port":443,"scheme":"https","state":"patched","reason":"r","time":"2026-11-30T09:00:00Z","elapsed_ms":1}}"#
            )
        };
        let lines: Vec<String> = (1..=10).map(row).collect();
        let parsed = parse_probe(lines.join("\n").as_bytes()).expect("rows");
        let hosts: Vec<_> = parsed
            .rows
            .iter()
            .map(|o| o.host.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            hosts,
            (1..=10)
                .map(|n| format!("ex{n}.example"))
                .collect::<Vec<_>>()
        );
        let mut bad = lines.clone();
        bad[7] = "{\"schema\":".into();
        let e = parse_probe(bad.join("\n").as_bytes())
            .expect_err("line 8")
            .to_string();
        assert!(e.contains("line 8:"), "{e}");
        bad[2] = row(3).replace("patched", "sideways");
        let e = parse_probe(bad.join("\n").as_bytes())
            .expect_err("line 3")
            .to_string();
        assert!(e.contains("line 3:") && e.contains("sideways"), "{e}");
    }

    /// Read in chunks, JSONL rows come in line order, each chunk at most the size asked
    /// (ignored rows counted where they fall), the last one possibly empty; a bad line ends
    /// the reading after the chunks before it, with its line number counted over the whole
    /// upload; a consumer that stops is not handed more.
    #[test]
    fn probe_lines_are_handed_over_in_chunks() {
        let row = |n: usize, state: &str| {
            format!(
                r#"{{"schema":"exhunt-probe/1.0","target":"192.0.2.{n}:443","host":"ex{n}.example","ip":"192.0.2.{n}","port":443,"scheme":"https","state":"{state}","reason":"r","time":"2026-11-30T09:00:00Z","elapsed_ms":1}}"#
            )
        };
        let mut lines: Vec<String> = (1..=7).map(|n| row(n, "patched")).collect();
        lines[1] = row(2, "skipped");
        lines.insert(4, String::new());
        let mut chunks: Vec<(Vec<String>, u64)> = Vec::new();
        let r = parse_probe_chunks(lines.join("\n").as_bytes(), 3, &mut |p| {
            let hosts = p.rows.iter().map(|o| o.host.clone().unwrap_or_default());
            chunks.push((hosts.collect(), p.ignored));
            true
        });
        assert!(r.is_ok(), "{r:?}");
        let host = |n: usize| format!("ex{n}.example");
        assert_eq!(
            chunks,
            vec![
                (vec![host(1), host(3), host(4)], 1),
                (vec![host(5), host(6), host(7)], 0),
                (vec![], 0),
            ]
        );
        // Line 9 (after a blank line) is cut: two chunks first, then the error.
        lines.push("{\"schema\":".into());
        let mut seen = 0;
        let e = parse_probe_chunks(lines.join("\n").as_bytes(), 3, &mut |_| {
            seen += 1;
            true
        })
        .expect_err("cut line");
        assert_eq!(seen, 2);
        assert!(e.to_string().contains("line 9:"), "{e}");
        // A consumer that stops after the first chunk gets no other, and no error.
        let mut seen = 0;
        let r = parse_probe_chunks(lines.join("\n").as_bytes(), 3, &mut |_| {
            seen += 1;
            false
        });
        assert!(r.is_ok() && seen == 1, "{r:?} {seen}");
        // A `--format json` document: its rows, in chunks of the size asked.
        let doc = format!(
            r#"{{"schema":"exhunt-probe/1.0","rows":[{}]}}"#,
            (1..=5)
                .map(|n| row(n, "patched"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut sizes = Vec::new();
        let r = parse_probe_chunks(doc.as_bytes(), 2, &mut |c| {
            sizes.push(c.rows.len());
            true
        });
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(sizes, vec![2, 2, 1]);
        // Other formats are read whole, then handed over alike.
        let mut sizes = Vec::new();
        let p = Parsed {
            rows: parse_probe(lines[..8].join("\n").as_bytes())
                .expect("rows")
                .rows,
            ignored: 2,
        };
        let r = in_chunks(p, 4, &mut |c| {
            sizes.push((c.rows.len(), c.ignored));
            true
        });
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(sizes, vec![(4, 2), (2, 0)]);
    }

    #[test]
    fn probe_rows_keep_how_exposure_was_decided() {
        let body = concat!(
            r#"{"schema":"exhunt-probe/1.0","target":"192.0.2.10:443","host":"mail.example.org","ip":"192.0.2.10","port":443,"scheme":"https","state":"vulnerable","reason":"build 15.1.2176.2 predates Mar21SU","build":"15.1.2176.2","build_source":"X-OWA-Version header","cves":[{"cve":"CVE-2021-26855","campaign":"ProxyLogon","fixed_by":"Mar21SU","state":"vulnerable","decided_by":"build (X-OWA-Version header)","reason":"r"}],"time":"2026-11-30T09:00:00.000Z","elapsed_ms":12}"#,
            "\n\n",
            r#"{"schema":"exhunt-probe/1.0","target":"bad","host":"bad","port":443,"scheme":"https","state":"invalid","reason":"x","time":"2026-11-30T09:00:00.000Z","elapsed_ms":0}"#,
            "\n"
        );
        let p = parse_probe(body.as_bytes()).unwrap_or_default();
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.ignored, 1);
        assert_eq!(p.rows[0].decided_by, "build (X-OWA-Version header)");
        assert_eq!(
            p.rows[0].campaigns.get("proxy-logon").map(String::as_str),
            Some("vulnerable")
        );
        assert_eq!(p.rows[0].seen, "2026-11-30T09:00:00.000Z");
        // A cut line names its number; nothing is returned.
        let cut = &body[..body.len() - 20];
        assert!(
            matches!(parse_probe(cut.as_bytes()), Err(Error::Invalid(m)) if m.starts_with("line 3"))
        );
        assert!(matches!(
            parse_probe(b"{\"schema\":\"other/1\"}"),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn shadowserver_rows_follow_intelmq() {
        let csv = "\u{feff}\"timestamp\",\"severity\",\"ip\",\"protocol\",\"port\",\"hostname\",\"tag\",\"asn\",\"geo\",\"region\",\"city\",\"naics\",\"hostname_source\",\"sector\",\"version\",\"servername\",\"url\"\n\
\"2021-03-10 00:00:00\",\"critical\",\"192.0.2.10\",\"tcp\",\"443\",\"mail.example.org\",\"exchange;cve-2021-26855\",\"64500\",\"NL\",\"X\",\"Y\",\"\",\"\",\"\",\"15.1.2176.2\",\"EX01\",\"\"\n\
\"2021-03-10 00:00:00\",\"critical\",\"2001:db8::25\",\"tcp\",\"443\",\"\",\"exchange;webshell\",\"AS64501\",\"NL\",\"X\",\"Y\",\"\",\"\",\"\",\"\",\"\",\"https://x/aspnet_client/a.aspx\"\n";
        let p = parse_shadowserver(csv.as_bytes()).unwrap_or_default();
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[0].state, "vulnerable");
        assert_eq!(p.rows[0].asn, Some(64500));
        assert_eq!(p.rows[0].seen, "2021-03-10T00:00:00.000Z");
        assert!(p.rows[0].decided_by.contains("version string"));
        assert_eq!(
            p.rows[0].campaigns.get("proxy-logon").map(String::as_str),
            Some("vulnerable")
        );
        assert_eq!(p.rows[1].state, "compromised");
        assert_eq!(
            p.rows[1]
                .campaigns
                .get("post-exploitation")
                .map(String::as_str),
            Some("compromised")
        );
        assert_eq!(p.rows[1].asn, Some(64501));
        assert!(
            matches!(parse_shadowserver(b"a,b\n1,2\n"), Err(Error::Invalid(m)) if m.contains("timestamp"))
        );
        let bad_ip = "timestamp,ip,port,tag\n2021-03-10 00:00:00,999.1.1.1,443,exchange\n";
        assert!(
            matches!(parse_shadowserver(bad_ip.as_bytes()), Err(Error::Invalid(m)) if m.starts_with("line 2"))
        );
    }
}
