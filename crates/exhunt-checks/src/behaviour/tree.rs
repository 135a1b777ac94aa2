//! Walking a process's ancestry up to the worker that started it, and the findings it makes.

use super::*;

pub(super) fn finding(
    m: &RuleMeta,
    time: Option<Timestamp>,
    place: &Place,
    excerpt: String,
    entities: Entities,
) -> Finding {
    Finding {
        id: String::new(),
        rule_id: m.id.clone(),
        title: m.title.clone(),
        campaign: m.campaign,
        cves: m.cves.clone(),
        attack: m.attack.clone(),
        severity: m.severity,
        confidence: m.confidence.unwrap_or(Confidence::Medium),
        stage: m.stage,
        timestamp: time,
        evidence: Evidence {
            path: place.path.to_string(),
            line: place.line,
            offset: place.offset,
            excerpt,
        },
        entities,
        kind: place.kind,
        joins: m.joins.clone(),
        outcome: None,
    }
}

/// A process's descent from a worker.
pub(super) struct Lineage {
    /// The worker, when its own creation event was read.
    pub(super) worker: Option<usize>,
    /// The worker's image (from its event or the direct child's `ParentImage`).
    pub(super) worker_image: String,
    /// The worker's account, when known.
    pub(super) pool_user: Option<String>,
    /// The pool's name, when a command line names it.
    pub(super) pool: Option<String>,
    /// From the worker's direct child down to the process.
    pub(super) chain: Vec<usize>,
}

pub(super) struct Tree<'a> {
    procs: &'a [Proc],
    guids: HashMap<(&'a str, &'a str), usize>,
    pids: HashMap<(&'a str, u32), Vec<usize>>,
}

impl<'a> Tree<'a> {
    pub(super) fn new(procs: &'a [Proc]) -> Tree<'a> {
        let mut guids = HashMap::new();
        let mut pids: HashMap<(&str, u32), Vec<usize>> = HashMap::new();
        for (i, p) in procs.iter().enumerate() {
            match (&p.guid, p.pid) {
                (Some(g), _) => {
                    guids.insert((&*p.host, g.as_str()), i);
                }
                (None, Some(pid)) => pids.entry((&*p.host, pid)).or_default().push(i),
                (None, None) => {}
            }
        }
        for v in pids.values_mut() {
            v.sort_by_key(|&i| (procs[i].time, i));
        }
        Tree { procs, guids, pids }
    }

    pub(super) fn by_guid(&self, host: &str, guid: &str) -> Option<usize> {
        self.guids.get(&(host, guid)).copied()
    }

    pub(super) fn parent(&self, i: usize) -> Option<usize> {
        let p = &self.procs[i];
        let found = match &p.parent {
            Parent::Guid(g) => self.by_guid(&p.host, g),
            Parent::Pid(pid) => {
                // The latest process with this id started before the child (ids are reused).
                let list = self.pids.get(&(&*p.host, *pid))?;
                list.iter()
                    .rev()
                    .copied()
                    .find(|&j| {
                        j != i
                            && matches!((self.procs[j].time, p.time), (Some(a), Some(b)) if a <= b)
                    })
                    .or_else(|| {
                        list.iter()
                            .rev()
                            .copied()
                            .find(|&j| j != i && self.procs[j].time.is_none())
                    })
            }
            Parent::Unknown => None,
        };
        found.filter(|&j| j != i)
    }

    /// The process's descent from a worker, if it has one that does not pass through the
    /// ASP.NET toolchain.
    pub(super) fn lineage(&self, i: usize) -> Option<Lineage> {
        let mut chain = vec![i];
        let mut cur = i;
        for _ in 0..MAX_DEPTH {
            let p = &self.procs[cur];
            if is_worker(&p.image) || is_toolchain(&p.image) {
                return None;
            }
            let parent = self.parent(cur);
            let parent_is_worker = p.parent_image.as_deref().is_some_and(is_worker)
                || parent.is_some_and(|j| is_worker(&self.procs[j].image));
            if parent_is_worker {
                chain.reverse();
                let worker = parent.filter(|&j| is_worker(&self.procs[j].image));
                let w = worker.map(|j| &self.procs[j]);
                let pool_user = w
                    .and_then(|w| w.user.clone())
                    .or_else(|| p.parent_user.clone())
                    .or_else(|| p.user.clone().filter(|u| is_low_privilege(u)));
                let pool = w
                    .and_then(|w| pool_of(&w.command_line))
                    .or_else(|| p.parent_command_line.as_deref().and_then(pool_of));
                let worker_image = w
                    .map(|w| w.image.clone())
                    .or_else(|| p.parent_image.clone())
                    .unwrap_or_else(|| "w3wp.exe".into());
                return Some(Lineage {
                    worker,
                    worker_image,
                    pool_user,
                    pool,
                    chain,
                });
            }
            let next = parent?;
            if chain.contains(&next) {
                return None;
            }
            chain.push(next);
            cur = next;
        }
        None
    }

    /// `w3wp.exe [pool X, as U] → a.exe (U) → b.exe (SYSTEM)`.
    pub(super) fn describe(&self, l: &Lineage) -> String {
        let mut s = file_name(&l.worker_image).to_string();
        let mut attrs = Vec::new();
        if let Some(p) = &l.pool {
            attrs.push(format!("pool {p}"));
        }
        if let Some(u) = &l.pool_user {
            attrs.push(format!("as {u}"));
        }
        if l.worker.is_none() {
            attrs.push("start not in the logs".into());
        }
        if !attrs.is_empty() {
            s.push_str(&format!(" [{}]", attrs.join(", ")));
        }
        for &i in &l.chain {
            let p = &self.procs[i];
            s.push_str(&format!(
                " → {} ({})",
                p.image,
                p.user.as_deref().unwrap_or("account not logged")
            ));
        }
        s
    }
}
