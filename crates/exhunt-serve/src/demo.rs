//! `exhunt serve --demo`: the repository's examples in a fresh database, so that the dashboard
//! and the API can be tried with no setup.
//!
//! The scan results are real: the binary scans `examples/` and hands the JSON here. The network
//! observations are invented for the demo (documentation addresses, RFC 5737 and RFC 3849) and
//! say so in their reason; one lands in the unassigned queue on purpose.

use crate::error::Result;
use crate::ingest;
use crate::scope::Scope;
use crate::store::{NewToken, OrgInput, Store};
use crate::tenancy::{Caller, Role};

/// A demo organisation.
#[derive(Debug, Clone, Copy)]
pub struct DemoOrg {
    /// Name.
    pub name: &'static str,
    /// Contact.
    pub contact: &'static str,
    /// CIDR scope.
    pub cidrs: &'static [&'static str],
    /// Domain scope.
    pub domains: &'static [&'static str],
    /// The example folders whose scans are this organisation's.
    pub examples: &'static [&'static str],
}

/// The demo organisations.
pub const ORGS: [DemoOrg; 2] = [
    DemoOrg {
        name: "Example Corp",
        contact: "soc@corp.example",
        cidrs: &["192.0.2.0/25", "2001:db8:c::/48"],
        domains: &["corp.example"],
        examples: &["compromised", "clean"],
    },
    DemoOrg {
        name: "Sample Ltd",
        contact: "it@sample.example",
        cidrs: &["192.0.2.128/25"],
        domains: &["sample.example"],
        examples: &["late-logs", "proxyshell"],
    },
];

fn probe_row(ip: &str, host: &str, state: &str, build: &str, source: &str) -> String {
    serde_json::json!({
        "schema": "exhunt-probe/1.0", "target": format!("{ip}:443"), "host": host, "ip": ip,
        "port": 443, "scheme": "https", "state": state,
        "reason": format!("demo row (invented): build {build} read from the {source}"),
        "build": build, "build_source": source,
        "time": "2026-11-30T08:00:00.000Z", "elapsed_ms": 40
    })
    .to_string()
}

/// Demo probe rows (JSONL).
pub fn probe_rows() -> String {
    [
        probe_row(
            "192.0.2.10",
            "ex01.corp.example",
            "vulnerable",
            "15.1.2176.2",
            "X-OWA-Version header",
        ),
        probe_row(
            "192.0.2.11",
            "ex02.corp.example",
            "patched",
            "15.1.2507.35",
            "X-OWA-Version header",
        ),
        probe_row(
            "2001:db8:c::25",
            "mail6.corp.example",
            "mitigated",
            "15.2.1118.7",
            "OWA logon page path",
        ),
        probe_row(
            "192.0.2.140",
            "owa.sample.example",
            "vulnerable",
            "15.2.792.3",
            "OWA logon page path",
        ),
        probe_row(
            "203.0.113.25",
            "mail.unknown.example",
            "vulnerable",
            "15.0.1497.2",
            "export-tool manifest",
        ),
    ]
    .join("\n")
}

/// Loads the demo: organisations, their scan results (`scans`: example name and its JSON), the
/// demo probe rows, and a reader token of the first organisation (returned, to try tenancy).
pub async fn load(
    store: &Store,
    operator: &Caller,
    scans: &[(String, String)],
) -> Result<NewToken> {
    let mut first = None;
    for DemoOrg {
        name,
        contact,
        cidrs,
        domains,
        examples,
    } in ORGS
    {
        let org = store
            .create_org(
                operator,
                &OrgInput {
                    name: Some(name.to_string()),
                    contacts: Some(vec![contact.to_string()]),
                    scope: Some(Scope {
                        cidrs: cidrs.iter().map(|s| s.to_string()).collect(),
                        asns: vec![],
                        domains: domains.iter().map(|s| s.to_string()).collect(),
                    }),
                },
            )
            .await?;
        first.get_or_insert(org.id);
        for (example, json) in scans.iter().filter(|(e, _)| examples.contains(&e.as_str())) {
            tracing::info!("demo: {example} -> {name}");
            store
                .upload_scan(operator, Some(org.id), json.as_bytes())
                .await?;
        }
    }
    let parsed = ingest::parse_probe(probe_rows().as_bytes())?;
    store.store_observations(operator, parsed).await?;
    store
        .create_token(operator, first, Role::Reader, "demo reader of Example Corp")
        .await
}

/// A demo dashboard login: name, role as shown, and its password (random, shown once).
#[derive(Debug, Clone)]
pub struct DemoLogin {
    /// User name.
    pub name: String,
    /// What it may see.
    pub role: String,
    /// Password.
    pub password: String,
}

/// Makes the demo's dashboard users: `operator` (every organisation) and `reader` (of the
/// first demo organisation), with random passwords.
pub async fn logins(store: &Store, operator: &Caller) -> Result<Vec<DemoLogin>> {
    let first = store
        .every_org(operator)
        .await?
        .into_iter()
        .find(|o| o.name == ORGS[0].name)
        .map(|o| o.id);
    let mut out = Vec::new();
    for (name, role, org, shown) in [
        ("operator", Role::Operator, None, "operator".to_string()),
        (
            "reader",
            Role::Reader,
            first,
            format!("reader of {}", ORGS[0].name),
        ),
    ] {
        let mut b = [0u8; 12];
        getrandom::fill(&mut b)
            .map_err(|e| crate::Error::BadRequest(format!("no randomness: {e}")))?;
        let password = format!("demo-{}", hex::encode(b));
        store
            .create_user(
                operator,
                &crate::users::UserInput {
                    name: name.into(),
                    role,
                    org,
                    password: password.clone(),
                },
            )
            .await?;
        out.push(DemoLogin {
            name: name.into(),
            role: shown,
            password,
        });
    }
    Ok(out)
}
