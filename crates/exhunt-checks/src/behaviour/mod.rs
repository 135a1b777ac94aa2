//! Web-server behaviour that one event cannot show: process ancestry across events.
//!
//! A Sigma rule sees one event at a time. "A child of w3wp.exe" is in the event (`ParentImage`),
//! but "a *descendant* of w3wp.exe connected out" or "a descendant of a low-privilege worker runs
//! as SYSTEM" (the potato escalation web shells use) needs the chain of process creations that led
//! to the process, and those are other events, often in another file (Sysmon and Security logs),
//! read in parallel in any order. So the events reader feeds every process creation (Sysmon 1,
//! Security 4688) and every outbound connection (Sysmon 3) into a small table here, and the chains
//! are walked once all events of a server are read:
//!
//! * EXH-EV-26 — an outbound connection by a descendant of w3wp.exe that does not itself run as an
//!   application pool identity (those are the Sigma rule EXH-EV-25's).
//! * EXH-EV-27 — a descendant of a worker whose parent ran as a low-privilege identity
//!   (`IIS APPPOOL\…`, NETWORK SERVICE, LOCAL SERVICE) while it runs as SYSTEM or another account.
//! * EXH-EV-24 (a Sigma rule) is held here until the end: w3wp.exe gets a full-access handle to
//!   every child it starts, which Sysmon 10 logs; a match whose target's creation event names the
//!   same worker as parent within two seconds is that handle, not an injection, and is dropped.
//!
//! Ancestry: Sysmon links `ParentProcessGuid` to `ProcessGuid`; Security 4688 only has process
//! ids (`ProcessId` is the creator), reused by Windows, so the parent is the latest process with
//! that id on the same host started before the child. Descent through the ASP.NET toolchain
//! (compilers, conhost, error reporting) does not count: that is the worker compiling a page.
//!
//! Memory is bounded: at most [`MAX_PROCESSES`] process creations and [`MAX_CONNECTIONS`]
//! connections (and [`MAX_CONNECTIONS_PER_PROCESS`] per process) are kept; what does not fit is
//! counted and named in the coverage ledger, since a descendant may then be missed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use exhunt_model::{ArtefactKind, Confidence, Entities, Evidence, Finding, RuleMeta, Timestamp};
use exhunt_sources::WinEvent;

/// Rule ids this module emits itself.
pub const RULE_IDS: [&str; 2] = ["EXH-EV-26", "EXH-EV-27"];
/// The Sigma rule whose matches are held until the process tree is known.
pub const HELD_RULE: &str = "EXH-EV-24";

/// Process creations kept per server.
pub const MAX_PROCESSES: usize = 100_000;
/// Outbound connections kept per server.
pub const MAX_CONNECTIONS: usize = 20_000;
/// Outbound connections kept per process (a beacon connects thousands of times).
pub const MAX_CONNECTIONS_PER_PROCESS: usize = 8;
/// Matches of [`HELD_RULE`] held; past this they are reported at once, unchecked.
const MAX_HELD: usize = 10_000;
/// Longest ancestry walked.
const MAX_DEPTH: usize = 64;
/// Longest command line kept.
const MAX_CMD: usize = 300;
/// How close a Sysmon 10 access must follow the target's creation to be the creation handle.
const CREATION_HANDLE_SECS: i64 = 2;

const SYSMON: &str = "Microsoft-Windows-Sysmon/Operational";

mod names;
use names::{account, clip, file_name, pid, pool_of, text};
pub use names::{is_low_privilege, is_pool_identity, is_toolchain, is_worker};

/// Where an event was read.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    /// Artefact path, as shown in evidence.
    pub path: &'a str,
    /// Record id (EVTX) or line (exports).
    pub line: u64,
    /// Byte offset (exports).
    pub offset: u64,
    /// Artefact kind.
    pub kind: ArtefactKind,
}

/// What the correlation found once all events were read.
#[derive(Debug, Default)]
pub struct Correlated {
    /// Findings of EXH-EV-24 (held), -26 and -27.
    pub findings: Vec<Finding>,
    /// Limits reached, in words, for the coverage ledger.
    pub notes: Vec<String>,
}

/// Whether an event is one the table needs (the EVTX reader's prefilter).
pub fn wants(channel: &str, event_id: Option<u32>) -> bool {
    match event_id {
        Some(1 | 3 | 10) => channel.eq_ignore_ascii_case(SYSMON),
        Some(4688) => channel.eq_ignore_ascii_case("Security"),
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Parent {
    Guid(String),
    Pid(u32),
    Unknown,
}

#[derive(Debug, Clone)]
struct Place {
    path: Arc<str>,
    line: u64,
    offset: u64,
    kind: ArtefactKind,
}

#[derive(Debug, Clone)]
struct Proc {
    host: Arc<str>,
    computer: Arc<str>,
    guid: Option<String>,
    pid: Option<u32>,
    parent: Parent,
    image: String,
    command_line: String,
    user: Option<String>,
    parent_image: Option<String>,
    parent_user: Option<String>,
    parent_command_line: Option<String>,
    time: Option<Timestamp>,
    place: Place,
}

#[derive(Debug, Clone)]
struct Conn {
    host: Arc<str>,
    computer: Arc<str>,
    guid: String,
    image: String,
    user: Option<String>,
    destination: String,
    time: Option<Timestamp>,
    place: Place,
}

#[derive(Debug)]
struct Held {
    finding: Finding,
    host: Arc<str>,
    source: String,
    target: String,
}

#[derive(Default)]
struct Table {
    max_procs: usize,
    max_conns: usize,
    interned: HashSet<Arc<str>>,
    procs: Vec<Proc>,
    conns: Vec<Conn>,
    conns_per_process: HashMap<(Arc<str>, String), usize>,
    held: Vec<Held>,
    dropped_procs: u64,
    dropped_conns: u64,
}

impl Table {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.interned.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.interned.insert(a.clone());
        a
    }
}

/// The per-server table of process creations and connections (see the module docs). Shared by
/// the reader threads; [`ProcessTable::take`] empties it.
pub struct ProcessTable {
    inner: Mutex<Table>,
}

impl Default for ProcessTable {
    fn default() -> ProcessTable {
        ProcessTable::with_limits(MAX_PROCESSES, MAX_CONNECTIONS)
    }
}

impl ProcessTable {
    /// An empty table with the default limits.
    pub fn new() -> ProcessTable {
        ProcessTable::default()
    }

    /// An empty table keeping at most `processes` process creations and `connections`
    /// connections.
    pub fn with_limits(processes: usize, connections: usize) -> ProcessTable {
        ProcessTable {
            inner: Mutex::new(Table {
                max_procs: processes,
                max_conns: connections,
                ..Table::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic elsewhere while holding the lock leaves plain data: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the event if it is a process creation or an outbound connection.
    pub fn observe(&self, ev: &WinEvent, at: &At<'_>) {
        let sysmon = ev.channel.eq_ignore_ascii_case(SYSMON);
        match ev.event_id {
            Some(1) if sysmon => self.add_process(ev, at, true),
            Some(4688) if ev.channel.eq_ignore_ascii_case("Security") => {
                self.add_process(ev, at, false)
            }
            Some(3) if sysmon => self.add_connection(ev, at),
            _ => {}
        }
    }

    fn add_process(&self, ev: &WinEvent, at: &At<'_>, sysmon: bool) {
        let image = if sysmon {
            text(ev, "Image")
        } else {
            text(ev, "NewProcessName")
        };
        let Some(image) = image else { return };
        let (guid, pid_v, parent, user, parent_user) = if sysmon {
            let guid = text(ev, "ProcessGuid").map(|g| g.to_ascii_lowercase());
            let parent = text(ev, "ParentProcessGuid")
                .map(|g| Parent::Guid(g.to_ascii_lowercase()))
                .unwrap_or(Parent::Unknown);
            (
                guid,
                pid(ev, "ProcessId"),
                parent,
                text(ev, "User"),
                text(ev, "ParentUser"),
            )
        } else {
            let creator = account(ev, "Subject");
            let user = account(ev, "Target").or_else(|| creator.clone());
            (
                None,
                pid(ev, "NewProcessId"),
                pid(ev, "ProcessId").map_or(Parent::Unknown, Parent::Pid),
                user,
                creator,
            )
        };
        if sysmon && guid.is_none() {
            return;
        }
        let parent_image = text(
            ev,
            if sysmon {
                "ParentImage"
            } else {
                "ParentProcessName"
            },
        );
        let mut t = self.lock();
        if t.procs.len() >= t.max_procs {
            t.dropped_procs += 1;
            return;
        }
        let host = t.intern(&ev.computer.to_ascii_lowercase());
        let computer = t.intern(&ev.computer);
        let path = t.intern(at.path);
        let p = Proc {
            host,
            computer,
            guid,
            pid: pid_v,
            parent,
            command_line: text(ev, "CommandLine")
                .map(|c| clip(&c, MAX_CMD))
                .unwrap_or_default(),
            image,
            user,
            parent_image,
            parent_user,
            parent_command_line: text(ev, "ParentCommandLine").map(|c| clip(&c, MAX_CMD)),
            time: ev.time,
            place: Place {
                path,
                line: at.line,
                offset: at.offset,
                kind: at.kind,
            },
        };
        t.procs.push(p);
    }

    fn add_connection(&self, ev: &WinEvent, at: &At<'_>) {
        if !text(ev, "Initiated").is_some_and(|i| i.eq_ignore_ascii_case("true")) {
            return;
        }
        let (Some(guid), Some(image)) = (text(ev, "ProcessGuid"), text(ev, "Image")) else {
            return;
        };
        if is_worker(&image) {
            // The worker's own connections (back ends, databases, domain controllers) are normal.
            return;
        }
        let guid = guid.to_ascii_lowercase();
        let ip = text(ev, "DestinationIp").unwrap_or_else(|| "?".into());
        let port = text(ev, "DestinationPort").unwrap_or_else(|| "?".into());
        let destination = match text(ev, "DestinationHostname") {
            Some(h) => format!("{ip}:{port} ({})", clip(&h, 120)),
            None => format!("{ip}:{port}"),
        };
        let mut t = self.lock();
        let host = t.intern(&ev.computer.to_ascii_lowercase());
        let key = (host.clone(), guid.clone());
        let n = t.conns_per_process.get(&key).copied().unwrap_or(0);
        if n >= MAX_CONNECTIONS_PER_PROCESS || t.conns.len() >= t.max_conns {
            t.dropped_conns += 1;
            return;
        }
        t.conns_per_process.insert(key, n + 1);
        let computer = t.intern(&ev.computer);
        let path = t.intern(at.path);
        t.conns.push(Conn {
            host,
            computer,
            guid,
            image,
            user: text(ev, "User"),
            destination,
            time: ev.time,
            place: Place {
                path,
                line: at.line,
                offset: at.offset,
                kind: at.kind,
            },
        });
    }

    /// Keeps a match of [`HELD_RULE`] until [`ProcessTable::take`], or gives it back when it
    /// cannot be checked (no process GUIDs) or too many are held.
    pub fn hold(&self, finding: Finding, ev: &WinEvent) -> Option<Finding> {
        let (Some(source), Some(target)) =
            (text(ev, "SourceProcessGuid"), text(ev, "TargetProcessGuid"))
        else {
            return Some(finding);
        };
        let mut t = self.lock();
        if t.held.len() >= MAX_HELD {
            return Some(finding);
        }
        let host = t.intern(&ev.computer.to_ascii_lowercase());
        t.held.push(Held {
            finding,
            host,
            source: source.to_ascii_lowercase(),
            target: target.to_ascii_lowercase(),
        });
        None
    }

    /// Walks the chains and empties the table. `meta` gives the catalogue entry of a rule id;
    /// findings outside `since`/`until` are left out (ancestry may come from before `since`).
    pub fn take(
        &self,
        meta: &dyn Fn(&str) -> Option<RuleMeta>,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Correlated {
        let t = {
            let mut guard = self.lock();
            let fresh = Table {
                max_procs: guard.max_procs,
                max_conns: guard.max_conns,
                ..Table::default()
            };
            std::mem::replace(&mut *guard, fresh)
        };
        let tree = Tree::new(&t.procs);
        let in_range = |time: Option<Timestamp>| match time {
            Some(x) => !(since.is_some_and(|s| x < s) || until.is_some_and(|u| x >= u)),
            None => true,
        };
        let mut out = Correlated::default();

        // EXH-EV-24 held: drop the handle a worker gets on a child it starts.
        for h in t.held {
            let creation = tree.by_guid(&h.host, &h.target).is_some_and(|i| {
                let p = &t.procs[i];
                p.parent == Parent::Guid(h.source.clone())
                    && match (p.time, h.finding.timestamp) {
                        (Some(a), Some(b)) => (a - b).num_seconds().abs() <= CREATION_HANDLE_SECS,
                        _ => true,
                    }
            });
            if !creation {
                out.findings.push(h.finding);
            }
        }

        // EXH-EV-27: escalation at the point where the token changes.
        if let Some(m) = meta("EXH-EV-27") {
            let mut seen = HashSet::new();
            for (i, p) in t.procs.iter().enumerate() {
                let Some(user) = p.user.as_deref() else {
                    continue;
                };
                if is_low_privilege(user) || !in_range(p.time) {
                    continue;
                }
                let Some(l) = tree.lineage(i) else { continue };
                let parent_user = p.parent_user.clone().or_else(|| {
                    if l.chain.len() >= 2 {
                        t.procs[l.chain[l.chain.len() - 2]].user.clone()
                    } else {
                        l.pool_user.clone()
                    }
                });
                let Some(parent_user) = parent_user else {
                    continue;
                };
                if !is_low_privilege(&parent_user) || parent_user.eq_ignore_ascii_case(user) {
                    continue;
                }
                // One finding per process when Sysmon and Security both logged it.
                let key = (
                    p.host.clone(),
                    p.pid,
                    p.image.to_ascii_lowercase(),
                    p.time.map(|x| x.timestamp()),
                );
                if !seen.insert(key) {
                    continue;
                }
                let excerpt = format!(
                    "{}; started by {parent_user}, runs as {user}{}",
                    tree.describe(&l),
                    if p.command_line.is_empty() {
                        String::new()
                    } else {
                        format!("; command line: {}", p.command_line)
                    }
                );
                out.findings.push(finding(
                    &m,
                    p.time,
                    &p.place,
                    excerpt,
                    Entities {
                        account: Some(user.to_string()),
                        file_path: Some(p.image.clone()),
                        target: Some(parent_user.clone()),
                        server: Some(p.computer.to_string()).filter(|c| !c.is_empty()),
                        ..Entities::default()
                    },
                ));
            }
        }

        // EXH-EV-26: connections by descendants not running as a pool identity.
        if let Some(m) = meta("EXH-EV-26") {
            for c in &t.conns {
                if c.user.as_deref().is_some_and(is_pool_identity) || !in_range(c.time) {
                    continue;
                }
                let Some(i) = tree.by_guid(&c.host, &c.guid) else {
                    continue;
                };
                let Some(l) = tree.lineage(i) else { continue };
                let excerpt = format!(
                    "{}; connected to {} as {}",
                    tree.describe(&l),
                    c.destination,
                    c.user.as_deref().unwrap_or("an unknown account")
                );
                out.findings.push(finding(
                    &m,
                    c.time,
                    &c.place,
                    excerpt,
                    Entities {
                        account: c.user.clone(),
                        file_path: Some(c.image.clone()),
                        target: Some(c.destination.clone()),
                        server: Some(c.computer.to_string()).filter(|s| !s.is_empty()),
                        ..Entities::default()
                    },
                ));
            }
        }

        if t.dropped_procs > 0 {
            out.notes.push(format!(
                "process ancestry: {} process-creation events not kept past the limit of {}; EXH-EV-26/27 may miss descendants of w3wp.exe",
                t.dropped_procs, t.max_procs
            ));
        }
        if t.dropped_conns > 0 {
            out.notes.push(format!(
                "process ancestry: {} outbound connections not kept (limits: {} in all, {MAX_CONNECTIONS_PER_PROCESS} per process); EXH-EV-26 names the first ones of each process",
                t.dropped_conns, t.max_conns
            ));
        }
        out
    }
}

mod tree;
use tree::{Tree, finding};

#[cfg(test)]
mod tests;
