//! One server, start to end: the walk, the parallel pass, the second pass for requests of
//! written or suspicious files, the coverage ledger and the per-rule cap, the story and the
//! verdict.

use super::*;

impl Engine {
    pub(super) fn scan_server(&self, target: &std::path::Path) -> Vec<ServerResult> {
        let deep = self.opts.deep;
        // The same rule `collect` lists files by (exhunt_sources::locations).
        let unopened = move |c: &[String]| exhunt_sources::classify::left_unopened(c, deep);
        let t0 = std::time::Instant::now();
        let inv = inventory_with(target, &self.opts.limits, &unopened);
        tracing::debug!(
            "inventory: {} files seen, {} to open, {:?}",
            inv.files_seen,
            inv.items.len(),
            t0.elapsed()
        );
        let (web_roots, web_kind) = self.web_roots(&inv.items);
        self.progress
            .files_total
            .fetch_add(inv.items.len() as u64, Ordering::Relaxed);
        let outcomes: Vec<FileOutcome> = inv
            .items
            .par_iter()
            .enumerate()
            .map_init(Worker::default, |w, (i, item)| {
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
                    self.process(&self.main, i, item, w, web_kind[i])
                };
                self.progress.files_done.fetch_add(1, Ordering::Relaxed);
                let read = o.stats.as_ref().map_or(0, |s| s.bytes);
                self.progress.bytes_done.fetch_add(read, Ordering::Relaxed);
                self.progress
                    .findings
                    .fetch_add(o.findings.len() as u64, Ordering::Relaxed);
                o
            })
            .collect();
        tracing::debug!("files processed: {:?} since the walk began", t0.elapsed());
        // EVTX files found by the parallel pass, read here, off the pool (see `process`).
        let mut outcomes = outcomes;
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

        let mut findings: Vec<Finding> = outcomes
            .iter()
            .flat_map(|o| o.findings.iter().cloned())
            .collect();
        // Process ancestry across every event of this server (crate::behaviour).
        let correlated = self.events.take_correlated();
        findings.extend(correlated.findings);

        // Second pass: requests for the files the chain wrote, and for suspicious web-root files
        // found on disk.
        let mut urls: Vec<(String, UrlSource)> = Vec::new();
        for f in &findings {
            if f.kind.is_log() {
                if let Some(u) = f
                    .entities
                    .file_path
                    .as_deref()
                    .and_then(url_of_written_path)
                {
                    urls.push((u, UrlSource::Chain));
                }
            } else if f.stage >= exhunt_model::Stage::Persistence
                // A file listed only for review (its place, not its content) is not searched
                // for: requests to an intranet page say nothing about a web shell.
                && f.confidence >= exhunt_model::Confidence::Medium
                && let Some(u) = &f.entities.url
            {
                urls.push((u.clone(), UrlSource::Disk));
            }
        }
        urls.sort_by(|a, b| {
            (a.0.to_ascii_lowercase(), a.1 as u8).cmp(&(b.0.to_ascii_lowercase(), b.1 as u8))
        });
        urls.dedup();
        if !urls.is_empty() {
            // IIS logs every request of the site, including files IIS serves itself (the web
            // roots are not proxied), so they are enough. With only chain-written paths, only
            // logs that reach past the earliest write can hold a request for them; a file found
            // on disk has no trustworthy write time (attackers set file times).
            let written_at = if urls.iter().any(|(_, s)| *s == UrlSource::Disk) {
                None
            } else {
                findings
                    .iter()
                    .filter(|f| f.kind.is_log() && f.entities.file_path.is_some())
                    .filter_map(|f| f.timestamp)
                    .min()
            };
            let set = CheckSet::new(
                vec![Box::new(WebShellRequests::new(urls))],
                self.opts.limits,
            );
            let second: Vec<Finding> = outcomes
                .par_iter()
                .filter(|o| o.kind == Some(ArtefactKind::IisLog))
                .filter(|o| {
                    let last = o.stats.as_ref().and_then(|s| s.last);
                    match (last, written_at) {
                        (Some(l), Some(w)) => l >= w,
                        _ => true,
                    }
                })
                .map_init(Worker::default, |w, o| {
                    self.process(&set, o.item, &inv.items[o.item], w, o.kind)
                        .findings
                })
                .flatten()
                .collect();
            findings.extend(second);
        }

        // Coverage.
        let mut kinds: BTreeMap<ArtefactKind, KindCoverage> = BTreeMap::new();
        let mut skipped = Vec::new();
        let mut problems = inv.problems.clone();
        problems.extend(correlated.notes.into_iter().map(|reason| {
            Problem::new(Cause::Note, reason)
                .at(target.display().to_string(), Some(ArtefactKind::Evtx))
        }));
        let mut builds: BTreeMap<String, Option<Timestamp>> = BTreeMap::new();
        let mut hosts: HashMap<String, usize> = HashMap::new();
        let mut channels: BTreeMap<(String, String), exhunt_model::ChannelCoverage> =
            BTreeMap::new();
        for o in &outcomes {
            let item = &inv.items[o.item];
            problems.extend(o.problems.iter().cloned());
            if let Some(p) = &o.skipped {
                skipped.push(p.clone().at(item.display.clone(), o.kind));
            }
            let Some(kind) = o.kind else { continue };
            let kc = kinds.entry(kind).or_insert(KindCoverage {
                kind,
                files: 0,
                files_complete: 0,
                bytes: 0,
                records: 0,
                first: None,
                last: None,
                checked: true,
            });
            kc.files += 1;
            if let Some(st) = &o.stats {
                if st.complete() {
                    kc.files_complete += 1;
                }
                kc.bytes += st.bytes;
                kc.records += st.records;
                kc.first = min_opt(kc.first, st.first);
                kc.last = max_opt(kc.last, st.last);
                for p in &st.problems {
                    problems.push(p.clone().at(item.display.clone(), Some(kind)));
                }
                for (b, t) in &st.versions {
                    let e = builds.entry(normalise_build(b)).or_insert(*t);
                    *e = min_opt(*e, *t);
                }
                for c in &st.channels {
                    let key = (c.host.clone().unwrap_or_default(), c.channel.clone());
                    let e = channels
                        .entry(key)
                        .or_insert_with(|| exhunt_model::ChannelCoverage {
                            channel: c.channel.clone(),
                            files: 0,
                            records: 0,
                            first: None,
                            last: None,
                            host: c.host.clone(),
                        });
                    e.files += 1;
                    e.records += c.records;
                    e.first = min_opt(e.first, c.first);
                    e.last = max_opt(e.last, c.last);
                }
                if let Some(h) = &st.host {
                    *hosts.entry(h.clone()).or_default() += 1;
                }
            }
        }

        // Findings: time order, capped per rule.
        findings.sort_by(|a, b| {
            (a.timestamp, &a.evidence.path, a.evidence.line, &a.rule_id).cmp(&(
                b.timestamp,
                &b.evidence.path,
                b.evidence.line,
                &b.rule_id,
            ))
        });
        let mut per_rule: HashMap<String, usize> = HashMap::new();
        let mut suppressed: BTreeMap<String, u64> = BTreeMap::new();
        findings.retain(|f| {
            // The cap is for noise (mass scanning, attempts): a finding that shows success or
            // persistence is never dropped, or a real exploit after a thousand failed attempts
            // would vanish from the verdict.
            if f.stage.is_compromise() {
                return true;
            }
            let n = per_rule.entry(f.rule_id.clone()).or_default();
            *n += 1;
            if *n > MAX_FINDINGS_PER_RULE {
                *suppressed.entry(f.rule_id.clone()).or_default() += 1;
                false
            } else {
                true
            }
        });

        let coverage = Coverage {
            web_roots,
            kinds: kinds.into_values().collect(),
            channels: channels.into_values().collect(),
            files_seen: inv.files_seen,
            skipped_folders: inv
                .unopened
                .iter()
                .map(|(folder, files)| exhunt_model::SkippedFolder {
                    folder: folder.clone(),
                    files: *files,
                    reason: NOT_OPENED.into(),
                })
                .collect(),
            skipped,
            problems,
        };
        let builds_seen: Vec<BuildSeen> = builds
            .into_iter()
            .map(|(build, first_seen)| {
                let fixed = self.pack.proxylogon_fixed(&build);
                BuildSeen {
                    build,
                    first_seen,
                    fixed,
                }
            })
            .collect();
        let name = hosts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(h, _)| h)
            .unwrap_or_else(|| {
                target
                    .file_name()
                    .map_or(target.display().to_string(), |n| {
                        n.to_string_lossy().into_owned()
                    })
            });
        let mut coverage = coverage;
        let others = split_export_hosts(&name, &mut findings, &mut coverage);
        let fixed = |c, b: &str| self.pack.fixed_for(c, b);
        // One request in two logs is one step; builds and links decide campaigns.
        let proxy_spans: Vec<crate::correlate::ProxySpan> = outcomes
            .iter()
            .filter(|o| o.kind == Some(ArtefactKind::HttpProxyLog))
            .filter_map(|o| {
                let st = o.stats.as_ref()?;
                Some(crate::correlate::ProxySpan::of(
                    &inv.items[o.item].components,
                    st.first,
                    st.last,
                ))
            })
            .collect();
        crate::correlate::refine(
            &mut findings,
            &crate::correlate::Context {
                proxy_spans: &proxy_spans,
                builds: &builds_seen,
                fixed: &fixed,
            },
        );
        let story = story::build(&findings);
        let mut verdicts =
            verdict::judge(&findings, &coverage, &builds_seen, &fixed, &self.settings());
        let mitigations: Vec<exhunt_model::Mitigation> = outcomes
            .iter()
            .flat_map(|o| o.mitigations.iter().cloned())
            .collect();
        verdict::note_mitigations(&mut verdicts, &mitigations);
        let worst = VerdictKind::worst(verdicts.iter().map(|v| v.verdict));
        let mut out = vec![ServerResult {
            name,
            targets: vec![target.display().to_string()],
            verdict: worst,
            verdicts,
            story,
            findings,
            suppressed: suppressed
                .into_iter()
                .map(|(rule_id, count)| SuppressedCount { rule_id, count })
                .collect(),
            coverage,
            mitigations,
        }];
        for (host, mut findings, coverage) in others {
            crate::correlate::refine(
                &mut findings,
                &crate::correlate::Context {
                    proxy_spans: &[],
                    builds: &[],
                    fixed: &fixed,
                },
            );
            let story = story::build(&findings);
            let verdicts = verdict::judge(&findings, &coverage, &[], &fixed, &self.settings());
            out.push(ServerResult {
                name: host.clone(),
                targets: vec![format!(
                    "{} (events of host {host} in event exports)",
                    target.display()
                )],
                verdict: VerdictKind::worst(verdicts.iter().map(|v| v.verdict)),
                verdicts,
                story,
                findings,
                suppressed: Vec::new(),
                coverage,
                mitigations: Vec::new(),
            });
        }
        out
    }
}
