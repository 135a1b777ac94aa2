//! Where an Exchange server keeps its evidence: the one list of Exchange and IIS artefact
//! locations that `scan` reads by and `collect` copies by.
//!
//! Why one list: a triage package is only as good as its selection, and KAPE's Exchange targets
//! show what two lists become — the collector hard-codes `C:\Program Files` and forgets the
//! FrontEnd `web.config`, `ecp\auth`, the OAB folder and the CmdletInfra logs that the analysis
//! needs. Here the scanner's classifier ([`crate::classify()`]) recognises log folders, web roots
//! and staging places through the functions of this module, and the collector decides what to
//! copy with [`wanted`], from the same classification plus the few places that only a
//! collection needs (logs no check reads yet, the event channels that matter, the metadata of
//! `Temporary ASP.NET Files`). Paths are lower-cased components relative to the target, so a
//! live `C:\`, a mounted image and a folder laid out like `C:\` are all the same to it.

use exhunt_model::ArtefactKind;

/// A folder of logs, recognised by a run of folder names anywhere in a file's path (a trailing
/// `*` matches a prefix: `w3svc*`) or by the file name's prefix.
#[derive(Debug)]
pub struct LogPlace {
    /// What the logs are, for people.
    pub what: &'static str,
    /// Folder names, in order, that must appear next to each other above the file.
    pub folders: &'static [&'static str],
    /// File-name prefixes that say the same as the folders (a flat copy of logs).
    pub names: &'static [&'static str],
    /// The kind the scanner reads them as; `None` for logs only collected.
    pub kind: Option<ArtefactKind>,
    /// Collected only when asked (`collect --message-tracking`): large, and about mail, not
    /// about the web requests of an intrusion.
    pub on_request: bool,
}

/// Every log place, the most specific first (the first match wins).
pub const LOG_PLACES: &[LogPlace] = &[
    LogPlace {
        what: "Exchange remote PowerShell proxy log (CmdletInfra, Rps_Http)",
        folders: &["powershell-proxy"],
        names: &["rps_http_"],
        kind: Some(ArtefactKind::RpsHttpLog),
        on_request: false,
    },
    LogPlace {
        what: "Exchange HttpProxy log",
        folders: &["httpproxy"],
        names: &["httpproxy_"],
        kind: Some(ArtefactKind::HttpProxyLog),
        on_request: false,
    },
    LogPlace {
        what: "Exchange ECP server log",
        folders: &["ecp", "server"],
        names: &["ecpserver"],
        kind: Some(ArtefactKind::EcpServerLog),
        on_request: false,
    },
    LogPlace {
        what: "Exchange OAB generator log",
        folders: &["oabgeneratorlog"],
        names: &["oabgenerator"],
        kind: Some(ArtefactKind::OabGeneratorLog),
        on_request: false,
    },
    LogPlace {
        what: "IIS W3C log",
        folders: &["w3svc*"],
        names: &[],
        kind: Some(ArtefactKind::IisLog),
        on_request: false,
    },
    LogPlace {
        what: "HTTP.sys error log (HTTPERR)",
        folders: &["logfiles", "httperr"],
        names: &["httperr"],
        kind: Some(ArtefactKind::IisLog),
        on_request: false,
    },
    LogPlace {
        what: "Exchange ECP log",
        folders: &["logging", "ecp"],
        names: &[],
        kind: None,
        on_request: false,
    },
    LogPlace {
        what: "Exchange CmdletInfra log",
        folders: &["logging", "cmdletinfra"],
        names: &[],
        kind: None,
        on_request: false,
    },
    LogPlace {
        what: "Exchange message tracking log",
        folders: &["messagetracking"],
        names: &["msgtrk"],
        kind: None,
        on_request: true,
    },
];

/// The event logs that matter for an Exchange intrusion (file names in `winevt\Logs`,
/// lower-cased): logons and accounts, services and crashes, Exchange cmdlets, process creation,
/// PowerShell, Defender's detections and removals, scheduled tasks and WMI persistence.
pub const EVENT_LOGS: &[&str] = &[
    "security.evtx",
    "system.evtx",
    "application.evtx",
    "msexchange management.evtx",
    "microsoft-windows-sysmon%4operational.evtx",
    "microsoft-windows-powershell%4operational.evtx",
    "windows powershell.evtx",
    "microsoft-windows-windows defender%4operational.evtx",
    "microsoft-windows-taskscheduler%4operational.evtx",
    "microsoft-windows-wmi-activity%4operational.evtx",
];

fn folder_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// The log place a file lies in (lower-cased components, the file name last), if any.
pub fn log_place(c: &[String]) -> Option<&'static LogPlace> {
    let (name, dirs) = c.split_last()?;
    LOG_PLACES.iter().find(|p| {
        dirs.windows(p.folders.len())
            .any(|w| w.iter().zip(p.folders).all(|(d, f)| folder_matches(f, d)))
            || p.names.iter().any(|n| name.starts_with(n))
    })
}

/// The kind a `.log` or `.evtx` file has by its path alone (content decides first, see
/// [`crate::classify()`]).
pub fn log_kind_by_path(c: &[String]) -> Option<ArtefactKind> {
    let name = c.last()?;
    if name.ends_with(".evtx") {
        return Some(ArtefactKind::Evtx);
    }
    if !name.ends_with(".log") {
        return None;
    }
    if let Some(kind) = log_place(c).and_then(|p| p.kind) {
        return Some(kind);
    }
    (name.starts_with("u_ex") && name.len() <= 16).then_some(ArtefactKind::IisLog)
}

/// Whether a path (lower-cased components) lies in a folder IIS serves on an Exchange server,
/// where web shells are dropped (research spec §5).
pub fn in_web_root(c: &[String]) -> bool {
    let dirs = &c[..c.len().saturating_sub(1)];
    let seq = |a: &str, b: &str| dirs.windows(2).any(|w| w[0] == a && w[1] == b);
    let seq3 =
        |a: &str, b: &str, d: &str| dirs.windows(3).any(|w| w[0] == a && w[1] == b && w[2] == d);
    seq("inetpub", "wwwroot")
        || dirs
            .iter()
            .any(|d| d == "aspnet_client" || d == "temporary asp.net files")
        || seq3("httpproxy", "owa", "auth")
        || seq3("httpproxy", "ecp", "auth")
        || seq("httpproxy", "oab")
}

/// Whether a path lies in the ASP.NET compilation cache (`Temporary ASP.NET Files`): thousands
/// of compiled copies of every page, whose names and times matter more than their bytes.
pub fn in_aspnet_temp(c: &[String]) -> bool {
    c.iter().any(|d| d == "temporary asp.net files")
}

/// Archive file names.
pub fn is_archive_name(name: &str) -> bool {
    [".zip", ".7z", ".rar", ".cab", ".tar", ".gz", ".tgz"]
        .iter()
        .any(|e| name.ends_with(e))
}

/// Places attackers stage data for exfiltration (spec §6): ProgramData, `C:\root`, temp folders,
/// web roots.
pub fn in_staging_place(c: &[String]) -> bool {
    let dirs = &c[..c.len().saturating_sub(1)];
    dirs.iter()
        .any(|d| d == "programdata" || d == "temp" || d == "tmp")
        || dirs.first().is_some_and(|d| d == "root")
        || in_web_root(c)
}

/// IIS's own configuration files (`inetsrv\config\*.config`): sites, virtual directories,
/// modules, redirections.
pub fn is_iis_config(c: &[String]) -> bool {
    let Some((name, dirs)) = c.split_last() else {
        return false;
    };
    name.ends_with(".config") && dirs.ends_with(&["inetsrv".to_string(), "config".to_string()])
}

/// How much of a file a collection takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Its content.
    Content,
    /// Its content up to the collector's size limit for dumps and archives, its metadata
    /// beyond (a 40 GB memory dump does not belong in a triage package).
    Bounded,
    /// Path, size, times and hash only.
    Metadata,
}

/// What a collection takes of a file, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// What the file is, for the manifest.
    pub what: &'static str,
    /// How much of it.
    pub take: Take,
    /// A log: `--since` skips it when it ends (was last written) before the bound.
    pub log: bool,
    /// Order of importance when the package has a size limit: lower first.
    pub rank: u8,
}

/// Whether `collect` takes a file, from its lower-cased components, the kind the scanner's
/// classifier gives it (`None` when skipped) and whether it is a script of a folder IIS serves
/// ([`crate::webroots`]). `message_tracking`: the user asked for message tracking logs.
pub fn wanted(
    c: &[String],
    kind: Option<ArtefactKind>,
    served_script: bool,
    message_tracking: bool,
) -> Option<Wanted> {
    let name = c.last().map(String::as_str).unwrap_or("");
    let w = |what, take, log, rank| {
        Some(Wanted {
            what,
            take,
            log,
            rank,
        })
    };
    if in_aspnet_temp(c) {
        return w(
            "Temporary ASP.NET Files (metadata only)",
            Take::Metadata,
            false,
            0,
        );
    }
    if kind == Some(ArtefactKind::Evtx) || name.ends_with(".evtx") {
        let in_winevt = c.windows(2).any(|p| p[0] == "winevt" && p[1] == "logs");
        if in_winevt && !EVENT_LOGS.contains(&name) {
            return None;
        }
        return w("Windows event log", Take::Content, true, 1);
    }
    match kind {
        Some(ArtefactKind::WebFile) => return w("web-served file", Take::Content, false, 0),
        Some(ArtefactKind::IisConfig) => return w("IIS configuration", Take::Content, false, 0),
        Some(ArtefactKind::MemoryDump) => return w("memory dump", Take::Bounded, false, 5),
        Some(ArtefactKind::Archive) => {
            return w("archive in a staging place", Take::Bounded, false, 5);
        }
        Some(ArtefactKind::EventExport) => return w("event export", Take::Content, true, 1),
        Some(ArtefactKind::IisLog) => {
            let what = log_place(c).map_or("IIS W3C log", |p| p.what);
            return w(what, Take::Content, true, 3);
        }
        Some(k) if k.is_log() => {
            let what = log_place(c).map_or("Exchange log", |p| p.what);
            return w(what, Take::Content, true, 2);
        }
        _ => {}
    }
    if served_script {
        return w("script of a web root", Take::Content, false, 0);
    }
    if is_iis_config(c) {
        return w("IIS configuration", Take::Content, false, 0);
    }
    if let Some(p) = log_place(c)
        && (!p.on_request || message_tracking)
        && name.ends_with(".log")
    {
        return w(p.what, Take::Content, true, 4);
    }
    None
}

/// Whether a file's path alone makes it wanted by a collection, so a walk must list it even
/// when the scanner would not open it.
pub fn wanted_by_path(c: &[String], message_tracking: bool) -> bool {
    is_iis_config(c)
        || c.last().is_some_and(|n| n.ends_with(".evtx"))
        || (c.last().is_some_and(|n| n.ends_with(".log"))
            && log_place(c).is_some_and(|p| !p.on_request || message_tracking))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(p: &str) -> Vec<String> {
        p.split(['/', '\\']).map(|s| s.to_lowercase()).collect()
    }

    #[test]
    fn log_places() {
        let k = |p: &str| log_kind_by_path(&comps(p));
        assert_eq!(
            k("V15/Logging/CmdletInfra/Powershell-Proxy/Http/Rps_Http_2021030301-1.LOG"),
            Some(ArtefactKind::RpsHttpLog)
        );
        assert_eq!(
            k("Windows/System32/LogFiles/HTTPERR/httperr1.log"),
            Some(ArtefactKind::IisLog)
        );
        assert_eq!(
            k("D/IISLogs/W3SVC2/u_ex210303.log"),
            Some(ArtefactKind::IisLog)
        );
        assert_eq!(k("V15/Logging/CmdletInfra/Others/x.log"), None);
        assert_eq!(
            log_place(&comps("V15/Logging/CmdletInfra/Others/x.log")).map(|p| p.what),
            Some("Exchange CmdletInfra log")
        );
    }

    #[test]
    fn what_a_collection_takes() {
        let want = |p: &str, k| wanted(&comps(p), k, false, false).map(|w| w.take);
        assert_eq!(
            want(
                "Windows/System32/winevt/Logs/MSExchange Management.evtx",
                None
            ),
            Some(Take::Content)
        );
        assert_eq!(
            want(
                "Windows/System32/winevt/Logs/Microsoft-Windows-Kernel-PnP%4Configuration.evtx",
                Some(ArtefactKind::Evtx)
            ),
            None
        );
        assert_eq!(
            want(
                "Windows/Microsoft.NET/Framework64/v4.0.30319/Temporary ASP.NET Files/owa/1/App_Web_x.dll",
                Some(ArtefactKind::WebFile)
            ),
            Some(Take::Metadata)
        );
        assert_eq!(
            want("root/o.dmp", Some(ArtefactKind::MemoryDump)),
            Some(Take::Bounded)
        );
        assert_eq!(
            want("Windows/System32/inetsrv/config/redirection.config", None),
            Some(Take::Content)
        );
        assert_eq!(
            want(
                "V15/TransportRoles/Logs/MessageTracking/MSGTRK2021.LOG",
                None
            ),
            None
        );
        assert!(
            wanted(
                &comps("V15/TransportRoles/Logs/MessageTracking/MSGTRK2021.LOG"),
                None,
                false,
                true
            )
            .is_some()
        );
        assert_eq!(want("Users/bob/notes.txt", None), None);
    }
}
