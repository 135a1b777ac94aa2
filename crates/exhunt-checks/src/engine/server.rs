//! One server, start to end, in stages: the walk; the first pass over every file on the engine's
//! pool; the second pass over the IIS logs for requests of files the chain wrote or that look
//! malicious on disk; the coverage ledger and the per-rule cap (`ledger`); the split of event
//! exports by host; then, per server, correlation, story and verdict.

use super::*;

impl Engine {
    pub(super) fn scan_server(&self, target: &std::path::Path) -> Vec<ServerResult> {
        let t0 = std::time::Instant::now();
        let inv = self.walk(target);
        tracing::debug!(
            "inventory: {} files seen, {} to open, {:?}",
            inv.files_seen,
            inv.items.len(),
            t0.elapsed()
        );
        let served = self.web_roots(&inv.items);
        let outcomes = self.first_pass(&inv, &served);
        tracing::debug!("files processed: {:?} since the walk began", t0.elapsed());

        let mut findings: Vec<Finding> = outcomes
            .iter()
            .flat_map(|o| o.findings.iter().cloned())
            .collect();
        // Process ancestry across every event of this server (crate::behaviour).
        let correlated = self.events.take_correlated();
        findings.extend(correlated.findings);
        let second = self.second_pass(&inv, &outcomes, &findings);
        findings.extend(second);

        let ledger =
            ledger::Ledger::fold(target, &inv, &outcomes, served.coverage, correlated.notes);
        let suppressed = ledger::cap_per_rule(&mut findings);
        let name = ledger.server_name(target);
        let builds_seen: Vec<BuildSeen> = ledger
            .builds
            .into_iter()
            .map(|(build, first_seen)| BuildSeen {
                fixed: self.pack.proxylogon_fixed(&build),
                build,
                first_seen,
            })
            .collect();
        let mut coverage = ledger.coverage;
        let others = split_export_hosts(&name, &mut findings, &mut coverage);
        let mitigations: Vec<exhunt_model::Mitigation> = outcomes
            .iter()
            .flat_map(|o| o.mitigations.iter().cloned())
            .collect();
        let main = Judged {
            name,
            target: target.display().to_string(),
            findings,
            coverage,
            builds: builds_seen,
            proxy_spans: ledger::proxy_spans(&inv, &outcomes),
            suppressed,
            mitigations,
        };
        let mut out = vec![self.judge_server(main)];
        // Hosts of event exports other than the target's own: their events only.
        for (host, findings, coverage) in others {
            out.push(self.judge_server(Judged {
                target: format!(
                    "{} (events of host {host} in event exports)",
                    target.display()
                ),
                name: host,
                findings,
                coverage,
                builds: Vec::new(),
                proxy_spans: Vec::new(),
                suppressed: Vec::new(),
                mitigations: Vec::new(),
            }));
        }
        out
    }

    /// The walk: the files of the target, those to open listed, the rest counted per folder by
    /// the same rule `collect` lists files by (`exhunt_sources::locations`).
    fn walk(&self, target: &std::path::Path) -> exhunt_sources::Inventory {
        let deep = self.opts.deep;
        let unopened = move |c: &[String]| exhunt_sources::classify::left_unopened(c, deep);
        inventory_with(target, &self.opts.limits, &unopened)
    }

    /// Pass one: every file on the engine's pool, then the EVTX files it deferred, read from the
    /// calling thread (see `process`).
    fn first_pass(
        &self,
        inv: &exhunt_sources::Inventory,
        served: &webroots::Served,
    ) -> Vec<FileOutcome> {
        self.progress
            .files_total
            .fetch_add(inv.items.len() as u64, Ordering::Relaxed);
        let workers = Workers::new();
        let mut outcomes: Vec<FileOutcome> = self.pool.install(|| {
            inv.items
                .par_iter()
                .enumerate()
                .map_init(|| workers.lend(), |lent, (i, item)| {
                    let w = &mut lent.worker;
                    let o = if self.in_rule_dir(item) {
                        FileOutcome {
                            item: i,
                            kind: None,
                            skipped: Some(Problem::new(
                                Cause::Excluded,
                                "rule or IOC folder given with --yara/--ioc: never scanned as evidence",
                            )),
                            stats: None,
                            findings: Vec::new(),
                            problems: Vec::new(),
                            deferred: false,
                            mitigations: Vec::new(),
                        }
                    } else {
                        let url = served.urls[i].as_deref();
                        self.process(&self.main, i, item, w, served.kinds[i], url)
                    };
                    self.progress.files_done.fetch_add(1, Ordering::Relaxed);
                    let read = o.stats.as_ref().map_or(0, |s| s.bytes);
                    self.progress.bytes_done.fetch_add(read, Ordering::Relaxed);
                    self.progress
                        .findings
                        .fetch_add(o.findings.len() as u64, Ordering::Relaxed);
                    o
                })
                .collect()
        });
        let mut worker = Worker::default();
        for o in outcomes.iter_mut().filter(|o| o.deferred) {
            let (findings, stats) = self.read_evtx_item(&inv.items[o.item], &mut worker);
            self.progress
                .findings
                .fetch_add(findings.len() as u64, Ordering::Relaxed);
            o.findings = findings;
            o.stats = Some(stats);
            o.deferred = false;
        }
        outcomes
    }

    /// Pass two: requests in the IIS logs for the files the chain wrote and for suspicious
    /// web-root files found on disk (`crate::webshell::urls_to_follow`).
    fn second_pass(
        &self,
        inv: &exhunt_sources::Inventory,
        outcomes: &[FileOutcome],
        findings: &[Finding],
    ) -> Vec<Finding> {
        let (urls, written_at) = crate::webshell::urls_to_follow(findings);
        if urls.is_empty() {
            return Vec::new();
        }
        let set = CheckSet::new(
            vec![Box::new(WebShellRequests::new(urls))],
            self.opts.limits,
        );
        let workers = Workers::new();
        self.pool.install(|| {
            outcomes
                .par_iter()
                .filter(|o| o.kind == Some(ArtefactKind::IisLog))
                // Only logs that reach past the earliest write can hold a request for it.
                .filter(|o| {
                    let last = o.stats.as_ref().and_then(|s| s.last);
                    match (last, written_at) {
                        (Some(l), Some(w)) => l >= w,
                        _ => true,
                    }
                })
                .map_init(
                    || workers.lend(),
                    |lent, o| {
                        self.process(
                            &set,
                            o.item,
                            &inv.items[o.item],
                            &mut lent.worker,
                            o.kind,
                            None,
                        )
                        .findings
                    },
                )
                .flatten()
                .collect()
        })
    }

    /// One server's findings judged: one request in two logs made one step, builds and links
    /// deciding campaigns (`crate::correlate`), then the story and the verdict per campaign.
    fn judge_server(&self, j: Judged) -> ServerResult {
        let Judged {
            name,
            target,
            mut findings,
            coverage,
            builds,
            proxy_spans,
            suppressed,
            mitigations,
        } = j;
        let fixed = |c, b: &str| self.pack.fixed_for(c, b);
        crate::correlate::refine(
            &mut findings,
            &crate::correlate::Context {
                proxy_spans: &proxy_spans,
                builds: &builds,
                fixed: &fixed,
            },
        );
        crate::ids::assign(&mut findings);
        let story = story::build(&findings);
        let mut verdicts = verdict::judge(&findings, &coverage, &builds, &fixed, &self.settings());
        verdict::note_mitigations(&mut verdicts, &mitigations);
        ServerResult {
            name,
            targets: vec![target],
            verdict: VerdictKind::worst(verdicts.iter().map(|v| v.verdict)),
            verdicts,
            story,
            findings,
            suppressed,
            coverage,
            mitigations,
        }
    }
}

/// What one server's judgement starts from.
struct Judged {
    name: String,
    target: String,
    findings: Vec<Finding>,
    coverage: Coverage,
    builds: Vec<BuildSeen>,
    proxy_spans: Vec<crate::correlate::ProxySpan>,
    suppressed: Vec<SuppressedCount>,
    mitigations: Vec<exhunt_model::Mitigation>,
}
