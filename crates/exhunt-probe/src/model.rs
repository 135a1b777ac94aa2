//! What a probe reports: one [`Row`] per target, and a [`Summary`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::http::CertInfo;

/// Version of the probe output (rows and the JSON document).
pub const PROBE_SCHEMA: &str = "exhunt-probe/1.0";

/// The state of a target or of one CVE on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// At least one CVE is open.
    Vulnerable,
    /// An emergency mitigation aborts the probe request; the build is not patched.
    Mitigated,
    /// Exchange, but what was read cannot decide.
    Indeterminate,
    /// Every CVE is fixed.
    Patched,
    /// A server answered, and it is not Exchange.
    NotExchange,
    /// No connection, or no answer in time.
    Unreachable,
    /// The target resolved outside the scope file and was not probed.
    Skipped,
    /// The target text is not a target.
    Invalid,
}

impl State {
    /// The name used in every output.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Vulnerable => "vulnerable",
            State::Mitigated => "mitigated",
            State::Indeterminate => "indeterminate",
            State::Patched => "patched",
            State::NotExchange => "not-exchange",
            State::Unreachable => "unreachable",
            State::Skipped => "skipped",
            State::Invalid => "invalid",
        }
    }

    /// All states, in report order.
    pub const ALL: [State; 8] = [
        State::Vulnerable,
        State::Mitigated,
        State::Indeterminate,
        State::Patched,
        State::NotExchange,
        State::Unreachable,
        State::Skipped,
        State::Invalid,
    ];
}

/// The state of one CVE on a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CveState {
    /// CVE id.
    pub cve: String,
    /// Campaign name (ProxyLogon, ProxyShell, ProxyToken, ProxyNotShell).
    pub campaign: String,
    /// The update that fixes it (`Mar21SU`…).
    pub fixed_by: String,
    /// vulnerable, patched, mitigated or indeterminate.
    pub state: State,
    /// Which signal decided: `build` (and which build source), `behaviour` (which check), or
    /// `none`.
    pub decided_by: String,
    /// The reason in words, naming the builds or the response compared.
    pub reason: String,
}

/// One request and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// What the request was for (`logon-page`, `exporttool`, `proxylogon-cookie`…).
    pub check: String,
    /// Request path.
    pub path: String,
    /// Status code, when a response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The headers that matter to the verdict (version and routing headers, Server,
    /// Location).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Why no response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One target's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Output schema.
    pub schema: String,
    /// `host:port`, the identity used by `--resume` and `--shard`; for an invalid target, the
    /// text as given.
    pub target: String,
    /// Host name or address as given.
    pub host: String,
    /// The address probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Port.
    pub port: u16,
    /// `https` or `http`.
    pub scheme: String,
    /// The verdict.
    pub state: State,
    /// The verdict in one sentence.
    pub reason: String,
    /// The build read, four or three parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// Where the build came from (`X-OWA-Version header`, `export-tool manifest`, `OWA logon
    /// page path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_source: Option<String>,
    /// Product, CU and update of the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Per-CVE states (empty when the target is not Exchange or not reached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cves: Vec<CveState>,
    /// The server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertInfo>,
    /// TLS version and cipher suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// Requests sent and what came back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<Exchange>,
    /// When the probe of this target started (RFC 3339, UTC).
    pub time: String,
    /// How long it took.
    pub elapsed_ms: u64,
}

impl Row {
    /// A row for a target that was not probed or failed before any request.
    pub fn bare(
        target: String,
        host: String,
        port: u16,
        scheme: &str,
        state: State,
        reason: String,
    ) -> Row {
        Row {
            schema: PROBE_SCHEMA.to_string(),
            target,
            host,
            ip: None,
            port,
            scheme: scheme.to_string(),
            state,
            reason,
            build: None,
            build_source: None,
            product: None,
            cves: vec![],
            certificate: None,
            tls: None,
            requests: vec![],
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            elapsed_ms: 0,
        }
    }

    /// CVE ids in a state.
    pub fn cves_in(&self, state: State) -> Vec<&str> {
        self.cves
            .iter()
            .filter(|c| c.state == state)
            .map(|c| c.cve.as_str())
            .collect()
    }
}

/// Counts by CVE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CveCounts {
    /// Targets vulnerable.
    pub vulnerable: u64,
    /// Targets mitigated.
    pub mitigated: u64,
    /// Targets indeterminate.
    pub indeterminate: u64,
    /// Targets patched.
    pub patched: u64,
}

/// Totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rows written in this run.
    pub rows: u64,
    /// Targets by state.
    pub by_state: BTreeMap<String, u64>,
    /// Exchange targets by product/CU/update (or build when unidentified).
    pub by_version: BTreeMap<String, u64>,
    /// Exchange targets by CVE and state.
    pub by_cve: BTreeMap<String, CveCounts>,
    /// Targets left out by the exclude list.
    pub excluded: u64,
    /// Address targets outside the scope file (not probed, no row).
    pub out_of_scope: u64,
    /// Targets of other shards.
    pub other_shards: u64,
    /// Targets already in the resumed output.
    pub resumed: u64,
    /// Seconds the run took.
    pub seconds: f64,
}

impl Summary {
    /// Adds a row.
    pub fn add(&mut self, row: &Row) {
        self.rows += 1;
        *self
            .by_state
            .entry(row.state.as_str().to_string())
            .or_default() += 1;
        if !row.cves.is_empty() {
            let v = row
                .product
                .clone()
                .or_else(|| row.build.clone())
                .unwrap_or_else(|| "build not read".into());
            *self.by_version.entry(v).or_default() += 1;
        }
        for c in &row.cves {
            let e = self.by_cve.entry(c.cve.clone()).or_default();
            match c.state {
                State::Vulnerable => e.vulnerable += 1,
                State::Mitigated => e.mitigated += 1,
                State::Patched => e.patched += 1,
                _ => e.indeterminate += 1,
            }
        }
    }

    /// Count of a state.
    pub fn count(&self, s: State) -> u64 {
        self.by_state.get(s.as_str()).copied().unwrap_or(0)
    }
}
