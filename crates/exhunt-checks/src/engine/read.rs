//! Reading one item, opened and recognised by `exhunt_sources::open`: the log, EVTX and export
//! readers; one large log on all cores.

use super::*;

impl Engine {
    /// Reads one item with a check set. `known` skips classification (second pass); `url` is
    /// where a configured site serves the file (`webroots`).
    pub(super) fn process<'e>(
        &'e self,
        set: &CheckSet,
        index: usize,
        item: &Item,
        worker: &mut Worker<'e>,
        known: Option<ArtefactKind>,
        url: Option<&str>,
    ) -> FileOutcome {
        let mut out = FileOutcome {
            item: index,
            kind: None,
            skipped: None,
            stats: None,
            findings: Vec::new(),
            problems: Vec::new(),
            deferred: false,
            mitigations: Vec::new(),
        };
        let path_kind = exhunt_sources::open::kind_by_path(item);
        if known.is_none() && !exhunt_sources::open::worth_opening(item, self.opts.deep) {
            out.skipped = Some(Problem::new(Cause::NotRead, NOT_OPENED));
            return out;
        }
        let (kind, enc, head, stream, gzipped) = match exhunt_sources::open::recognise(
            &mut worker.opener,
            item,
            &self.opts.limits,
            known,
            self.opts.deep,
        ) {
            Ok(Recognised::Opened(o)) => (o.kind, o.enc, o.head, o.stream, o.gzipped),
            Ok(Recognised::Skipped(reason)) => {
                out.skipped = Some(Problem::new(Cause::NotRead, reason));
                return out;
            }
            Err(reason) => {
                // A file that cannot be opened or read loses evidence if it looks like a log.
                let lost = path_kind.is_some()
                    || item.components.last().is_some_and(|n| n.ends_with(".log"));
                out.kind = path_kind;
                out.problems.push(
                    Problem::new(Cause::Unreadable, reason)
                        .at(item.display.clone(), path_kind)
                        .lost(lost),
                );
                return out;
            }
        };
        out.kind = Some(kind);
        if !kind.is_log() {
            drop(stream);
            let facts = self.file_facts(item, kind, head, worker, url);
            out.findings = facts.findings;
            out.stats = Some(facts.stats);
            out.mitigations = facts.mitigations;
            return out;
        }
        if kind == ArtefactKind::Evtx {
            drop(stream);
            if self.pool.current_thread_index().is_some() {
                // The EVTX parser runs its chunks on the rayon pool and waits for them: it must
                // not wait on a pool thread (every thread could end up waiting). The calling
                // thread reads these files after the parallel pass.
                out.deferred = true;
                return out;
            }
            let (findings, stats) = self.read_evtx_item(item, worker);
            out.findings = findings;
            out.stats = Some(stats);
            return out;
        }
        if kind == ArtefactKind::EventExport {
            let chained: Box<dyn Read + '_> = Box::new(Cursor::new(head).chain(stream));
            let mut text = utf8_reader(chained, enc);
            let display = item.display.clone();
            let events = &self.events;
            let read = exhunt_sources::export::read_export(
                &mut text,
                &|channel, id| events.wants(channel, id),
                &mut |ev, line, offset| {
                    let found =
                        events.check_at(ev, &display, line, offset, ArtefactKind::EventExport);
                    (!found.is_empty()).then_some(found)
                },
            );
            out.findings = read.results.into_iter().flatten().collect();
            out.stats = Some(read.stats);
            return out;
        }
        if format_of(kind).is_none() {
            out.skipped = Some(Problem::new(
                Cause::NotRead,
                format!("{kind}: recognised, not read by this version"),
            ));
            return out;
        }
        if enc == TextEncoding::Binary {
            out.problems.push(
                Problem::new(
                    Cause::Format,
                    format!(
                        "binary content in a file that looks like {kind}: not a text log, not read"
                    ),
                )
                .at(item.display.clone(), Some(kind))
                .lost(true),
            );
            return out;
        }
        let Some(kr) = set.reader(kind) else {
            return out;
        };
        if let ItemSource::File(path) = &item.source
            && !gzipped
            && matches!(enc, TextEncoding::Utf8 | TextEncoding::Utf8Bom)
            && self.pool.current_num_threads() > 1
            && item.metadata().0 >= BIG_FILE
            && let Some((findings, stats)) = self.read_big(path, item, enc, kind, set, kr)
        {
            out.findings = findings;
            out.stats = Some(stats);
            return out;
        }
        let chained: Box<dyn Read + '_> = Box::new(Cursor::new(head).chain(stream));
        let mut text = utf8_reader(chained, enc);
        let mut visitor = FileVisitor {
            kind,
            set,
            checks: &kr.checks,
            emitter: Emitter::new(&self.pack, &item.display, self.opts.since, self.opts.until),
        };
        let stats = kr
            .reader
            .read_with(&mut text, &mut visitor, &mut worker.scratch);
        out.findings = visitor.emitter.findings;
        out.stats = Some(stats);
        out
    }

    /// Reads one large plain log on every thread of the pool: chunks split at line starts are
    /// surveyed for the directives they pass on (`#Fields:`, `#Date:`), then read in parallel,
    /// each starting in the state a sequential read would have there; findings and statistics
    /// are joined in file order, so the result is the sequential read's. `None` when the file
    /// cannot be reopened (the sequential path then reports why).
    pub(super) fn read_big(
        &self,
        path: &std::path::Path,
        item: &Item,
        enc: TextEncoding,
        kind: ArtefactKind,
        set: &CheckSet,
        kr: &KindReader,
    ) -> Option<(Vec<Finding>, ReadStats)> {
        let skip = if enc == TextEncoding::Utf8Bom { 3 } else { 0 };
        let mut f = std::fs::File::open(path).ok()?;
        let len = f.metadata().ok()?.len();
        let chunks = exhunt_sources::reader::split_lines(&mut f, skip, len, CHUNK).ok()?;
        let open = |start: u64, end: u64| -> Option<std::io::Take<std::fs::File>> {
            use std::io::Seek;
            let mut f = std::fs::File::open(path).ok()?;
            f.seek(std::io::SeekFrom::Start(start)).ok()?;
            Some(f.take(end - start))
        };
        let surveys: Option<Vec<exhunt_sources::Survey>> = chunks
            .par_iter()
            .map_init(Vec::new, |scratch, &(s, e)| {
                open(s, e).map(|mut r| kr.reader.survey(&mut r, scratch))
            })
            .collect();
        let seeds = kr.reader.seeds(&surveys?);
        let parts: Option<Vec<(Vec<Finding>, exhunt_sources::ChunkStats)>> = chunks
            .par_iter()
            .zip(seeds.par_iter())
            .enumerate()
            .map_init(Vec::new, |scratch, (i, (&(s, e), seed))| {
                let mut r = open(s, e)?;
                let mut visitor = FileVisitor {
                    kind,
                    set,
                    checks: &kr.checks,
                    emitter: Emitter::new(
                        &self.pack,
                        &item.display,
                        self.opts.since,
                        self.opts.until,
                    ),
                };
                let cs =
                    kr.reader
                        .read_chunk(&mut r, seed, s - skip, i == 0, &mut visitor, scratch);
                Some((visitor.emitter.findings, cs))
            })
            .collect();
        let (findings, parts): (Vec<_>, Vec<_>) = parts?.into_iter().unzip();
        let (stats, bases) = kr.reader.merge(parts);
        let findings = findings
            .into_iter()
            .zip(bases)
            .flat_map(|(fs, base)| {
                fs.into_iter().map(move |mut f| {
                    f.evidence.line += base;
                    f
                })
            })
            .collect();
        Some((findings, stats))
    }

    /// Reads one EVTX file (or zip member) with the event rules. The parser renders chunks on the
    /// rayon pool when called off the pool, inline when called from a pool thread.
    pub(super) fn read_evtx_item(
        &self,
        item: &Item,
        worker: &mut Worker<'_>,
    ) -> (Vec<Finding>, ReadStats) {
        let (size, _) = item.metadata();
        let lost = |reason: String| {
            let mut st = ReadStats {
                bytes: 0,
                ..ReadStats::default()
            };
            st.problems
                .push(Problem::new(Cause::Unreadable, reason).lost(true));
            (Vec::new(), st)
        };
        // On a worker of the pool (a file of an archive read in the parallel pass), one thread;
        // from the calling thread, the parser's chunks go to the engine's pool (`install`
        // below): its consumer then waits on one worker while the others parse.
        let on_pool = self.pool.current_thread_index().is_some();
        let threads = if on_pool {
            1
        } else {
            self.pool.current_num_threads()
        };
        let checker = self.events.clone();
        let wanted = self.events.clone();
        let wants: exhunt_sources::evtx::Wants =
            Arc::new(move |channel, _provider, id| wanted.wants(channel, id));
        let display = item.display.clone();
        let on_event = move |ev: &exhunt_sources::WinEvent| {
            let f = checker.check(ev, &display);
            (!f.is_empty()).then_some(f)
        };
        let read = match &item.source {
            ItemSource::File(p) => match std::fs::File::open(p) {
                Ok(f) => self.in_pool(on_pool, || {
                    exhunt_sources::evtx::read_evtx(f, size, threads, wants, on_event)
                }),
                Err(e) => return lost(format!("cannot open: {}", io_reason(&e))),
            },
            ItemSource::ZipMember { .. } => {
                if size > MAX_EVTX_MEMBER {
                    return lost(format!(
                        "EVTX archive member of {size} bytes, more than the {MAX_EVTX_MEMBER}-byte limit for reading one from a zip: extract it and scan the file"
                    ));
                }
                let mut buf = Vec::with_capacity(size as usize);
                match worker.opener.open(item, &self.opts.limits) {
                    Ok(mut r) => {
                        if let Err(e) = (&mut r).take(MAX_EVTX_MEMBER).read_to_end(&mut buf) {
                            return lost(format!("cannot read: {}", io_reason(&e)));
                        }
                    }
                    Err(e) => return lost(format!("cannot open: {}", io_reason(&e))),
                }
                let n = buf.len() as u64;
                self.in_pool(on_pool, || {
                    exhunt_sources::evtx::read_evtx(Cursor::new(buf), n, threads, wants, on_event)
                })
            }
        };
        self.progress
            .bytes_done
            .fetch_add(read.stats.bytes, Ordering::Relaxed);
        (read.results.into_iter().flatten().collect(), read.stats)
    }
}

pub(super) struct FileVisitor<'a> {
    kind: ArtefactKind,
    set: &'a CheckSet,
    checks: &'a [usize],
    emitter: Emitter<'a>,
}

impl Visit for FileVisitor<'_> {
    fn schema(&mut self, schema: &Schema) -> SchemaCheck {
        let mut blind = Vec::new();
        let mut missing_all = Vec::new();
        for &i in self.checks {
            let c = &self.set.checks[i];
            let missing: Vec<&str> = c
                .needs(self.kind)
                .iter()
                .copied()
                .filter(|f| !schema.has(f))
                .collect();
            if !missing.is_empty() {
                blind.push(c.rule_ids()[0]);
                missing_all.extend(missing);
            }
        }
        missing_all.sort();
        missing_all.dedup();
        if blind.is_empty() {
            SchemaCheck::Usable
        } else {
            let reason = format!(
                "column layout lacks {}: {} cannot run on these lines",
                missing_all.join(", "),
                blind.join(", ")
            );
            if blind.len() == self.checks.len() {
                SchemaCheck::Unusable(reason)
            } else {
                SchemaCheck::Partial(reason)
            }
        }
    }

    fn record(&mut self, rec: &Record<'_>) {
        if !self.emitter.in_range(rec) {
            return;
        }
        for &i in self.checks {
            self.set.checks[i].check(self.kind, rec, &mut self.emitter);
        }
    }
}
