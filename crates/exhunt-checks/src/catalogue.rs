//! The catalogue of checks: every check the engine runs, and every rule id the checks can emit,
//! in one place. The engine builds its checks here and derives its rule ids from them, so that a
//! check added here is both run and held to the rule catalogue (`rules/checks.toml`, tested).

use std::sync::Arc;

use exhunt_rules::RulePack;

use crate::check::LineCheck;
use crate::events::EventChecker;
use crate::ioc::{HafniumIps, HafniumUserAgents};
use crate::proxylogon::{
    BackEndCookie, EcpVirtualDirectory, IisRequestPatterns, OabDownloadPath, ServerInfoAnchor,
};
use crate::webshell::{KnownShellRequests, WebShellRequests};

/// The line checks of the first pass over the logs: ProxyLogon, the IOC packs, requests for known
/// web-shell paths, ProxyShell and ProxyNotShell, and the Sigma web rules when a rule set has
/// any. `exchange_path` is the install path as the server has it (`--exchange-path`).
pub fn line_checks(
    pack: &RulePack,
    exchange_path: Option<&str>,
    events: &Arc<EventChecker>,
) -> Vec<Box<dyn LineCheck>> {
    let exchange_path = exchange_path.map(|p| p.to_ascii_lowercase().replace('/', "\\"));
    let mut checks: Vec<Box<dyn LineCheck>> = vec![
        Box::new(ServerInfoAnchor),
        Box::new(BackEndCookie),
        Box::new(IisRequestPatterns),
        Box::new(OabDownloadPath { exchange_path }),
        Box::new(EcpVirtualDirectory),
        Box::new(HafniumIps::new(pack.hafnium_ips.clone())),
        Box::new(HafniumUserAgents::new(pack.hafnium_user_agents.clone())),
        Box::new(KnownShellRequests::new(&pack.webshell_paths)),
        Box::new(crate::proxyshell::ProxyShellRequests),
        Box::new(crate::proxynotshell::OwaSsrf),
        Box::new(crate::proxynotshell::RpsForeignClient),
    ];
    if events.sigma().has_web() {
        checks.push(Box::new(crate::sigmaweb::SigmaWeb::new(events.clone())));
    }
    checks
}

/// Rule ids of what emits findings outside the line checks: the second pass (requests for
/// written or suspicious files), the file checks, the IIS configuration, the process tree, and
/// the built-in Sigma event rules.
fn other_rule_ids() -> impl Iterator<Item = &'static str> {
    let fixed: [&[&'static str]; 4] = [
        &WebShellRequests::RULE_IDS,
        &crate::files::RULE_IDS,
        &crate::iisconfig::RULE_IDS,
        &crate::behaviour::RULE_IDS,
    ];
    fixed
        .into_iter()
        .flatten()
        .copied()
        .chain(exhunt_rules::sigma::BUILTIN.iter().map(|(id, _)| *id))
}

/// Every rule id the given line checks and the other emitters can emit, sorted, once each.
pub fn rule_ids(line_checks: &[Box<dyn LineCheck>]) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = line_checks
        .iter()
        .flat_map(|c| c.rule_ids().iter().copied())
        .chain(other_rule_ids())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}
