//! Names in events: workers, the ASP.NET toolchain, pool and service identities, accounts, ids.

use super::*;

/// Whether an image path is an IIS worker.
pub fn is_worker(image: &str) -> bool {
    ends_with_ci(image, "\\w3wp.exe") || image.eq_ignore_ascii_case("w3wp.exe")
}

/// Whether an image is in the ASP.NET toolchain a worker legitimately starts; the same
/// allow-list as the Sigma rules EXH-EV-21/22/24 (their descriptions give the sources).
pub fn is_toolchain(image: &str) -> bool {
    let l = image.to_ascii_lowercase();
    let compiler = [
        "\\csc.exe",
        "\\vbc.exe",
        "\\cvtres.exe",
        "\\vbcscompiler.exe",
    ]
    .iter()
    .any(|n| l.ends_with(n))
        && [
            "\\microsoft.net\\framework\\",
            "\\microsoft.net\\framework64\\",
            "\\bin\\roslyn\\",
        ]
        .iter()
        .any(|d| l.contains(d));
    let system = [
        "\\windows\\system32\\conhost.exe",
        "\\windows\\syswow64\\conhost.exe",
        "\\windows\\system32\\werfault.exe",
        "\\windows\\syswow64\\werfault.exe",
        "\\windows\\system32\\werfaultsecure.exe",
        "\\windows\\system32\\wermgr.exe",
        "\\windows\\syswow64\\wermgr.exe",
    ]
    .iter()
    .any(|n| l.ends_with(n));
    compiler || system
}

/// Whether an account is an application pool identity (`IIS APPPOOL\…`).
pub fn is_pool_identity(user: &str) -> bool {
    user.len() >= 11 && user[..11].eq_ignore_ascii_case("IIS APPPOOL")
        || user.to_ascii_uppercase().starts_with("S-1-5-82-")
}

/// Whether an account is a low-privilege service identity a worker runs as: an application pool
/// identity, NETWORK SERVICE or LOCAL SERVICE (by name or SID).
pub fn is_low_privilege(user: &str) -> bool {
    if is_pool_identity(user) {
        return true;
    }
    let l = user.trim().to_ascii_lowercase();
    let name = l.rsplit('\\').next().unwrap_or(&l);
    matches!(
        name,
        "network service" | "local service" | "s-1-5-19" | "s-1-5-20"
    )
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.is_char_boundary(s.len() - suffix.len())
        && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

pub(super) fn file_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

pub(super) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The application pool a worker's command line names (`-ap "MSExchangeOWAAppPool"`).
pub(super) fn pool_of(cmd: &str) -> Option<String> {
    let i = cmd.find("-ap ")?;
    let rest = cmd[i + 4..].trim_start();
    let name = match rest.strip_prefix('"') {
        Some(q) => q.split('"').next()?,
        None => rest.split_whitespace().next()?,
    };
    (!name.is_empty()).then(|| clip(name, 80))
}

pub(super) fn text(ev: &WinEvent, name: &str) -> Option<String> {
    ev.get(name)
        .and_then(|v| v.as_text().map(|t| t.trim().to_string()))
        .filter(|t| !t.is_empty() && t != "-")
}

pub(super) fn pid(ev: &WinEvent, name: &str) -> Option<u32> {
    let t = text(ev, name)?;
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

/// The account of a Security event's subject or target fields: well-known SIDs by name (the
/// account name of SYSTEM in 4688 is the computer account), else `DOMAIN\name`.
pub(super) fn account(ev: &WinEvent, prefix: &str) -> Option<String> {
    let sid = text(ev, &format!("{prefix}UserSid"));
    match sid.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("S-1-0-0") => return None,
        Some("S-1-5-18") => return Some("NT AUTHORITY\\SYSTEM".into()),
        Some("S-1-5-19") => return Some("NT AUTHORITY\\LOCAL SERVICE".into()),
        Some("S-1-5-20") => return Some("NT AUTHORITY\\NETWORK SERVICE".into()),
        _ => {}
    }
    let name = text(ev, &format!("{prefix}UserName"));
    let domain = text(ev, &format!("{prefix}DomainName"));
    match (domain, name) {
        (Some(d), Some(n)) => Some(format!("{d}\\{n}")),
        (None, Some(n)) => Some(n),
        _ => sid,
    }
}
