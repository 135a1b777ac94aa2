//! The facts of a file looked at whole: hashes, YARA, page analysis, times and attributes,
//! judged by the file checks.

use super::*;

/// What looking at a file whole gave: findings, what was read (with its problems) and the
/// emergency mitigations an IIS configuration holds.
pub(super) struct Facts {
    pub(super) findings: Vec<Finding>,
    pub(super) stats: ReadStats,
    pub(super) mitigations: Vec<exhunt_model::Mitigation>,
}

impl Engine {
    /// Gathers the facts of a file (hashes, YARA, times, attributes) in one read and judges them.
    pub(super) fn file_facts<'e>(
        &'e self,
        item: &Item,
        kind: ArtefactKind,
        head: Vec<u8>,
        worker: &mut Worker<'e>,
        url: Option<&str>,
    ) -> Facts {
        use sha1::Digest as _;
        let mut problems = Vec::new();
        let (size, modified) = item.metadata();
        let problem =
            |cause: Cause, reason: String, lost: bool| Problem::new(cause, reason).lost(lost);
        let want_yara = matches!(kind, ArtefactKind::WebFile | ArtefactKind::File);
        let is_member = matches!(item.source, ItemSource::ZipMember { .. });
        // Only the hash kinds some IOC uses: three digests of every web file cost more than
        // the YARA scan.
        let (want256, want1, want5) = self.pack.hash_kinds();
        let mut sha256 = want256.then(sha2::Sha256::new);
        let mut sha1 = want1.then(sha1::Sha1::new);
        let mut md5 = want5.then(md5::Md5::new);
        // Bytes kept for YARA: zip members (which cannot be mapped), and small plain files, which
        // are read here for the hashes anyway (web shells are kilobytes): a second open and map
        // per file cost more than the copy.
        let keep_limit = if is_member {
            MAX_MEMBER_SCAN
        } else {
            KEEP_FOR_YARA
        };
        // IIS configuration is judged as text: kept like a file for YARA.
        let want_text = kind == ArtefactKind::IisConfig;
        let mut keep: Option<Vec<u8>> = ((want_yara || want_text) && size <= keep_limit)
            .then(|| Vec::with_capacity(size as usize));
        let mut bytes = 0u64;
        if size > MAX_CONTENT {
            problems.push(problem(
                Cause::Limit,
                format!("{} bytes, more than the {MAX_CONTENT}-byte limit for content checks: name and magic checked, content not hashed or YARA-scanned", size),
                false,
            ));
            let facts = FileFacts {
                display: &item.display,
                components: &item.components,
                url,
                size: item.size,
                head: &head,
                modified: modified.and_then(|t| chrono::DateTime::from_timestamp(t, 0)),
                ..FileFacts::default()
            };
            let findings = self.files.judge(&self.pack, kind, &facts);
            let stats = ReadStats {
                bytes: head.len() as u64,
                records: 1,
                problems,
                ..ReadStats::default()
            };
            return Facts {
                findings,
                stats,
                mitigations: Vec::new(),
            };
        }
        // Re-open: the head was read from a stream the caller dropped.
        match worker.opener.open(item, &self.opts.limits) {
            Ok(mut stream) => {
                let buf = &mut worker.scratch;
                if buf.len() < 64 * 1024 {
                    buf.resize(64 * 1024, 0);
                }
                loop {
                    match stream.read(&mut buf[..64 * 1024]) {
                        Ok(0) => break,
                        Ok(n) => {
                            let chunk = &buf[..n];
                            if let Some(h) = &mut sha256 {
                                h.update(chunk);
                            }
                            if let Some(h) = &mut sha1 {
                                h.update(chunk);
                            }
                            if let Some(h) = &mut md5 {
                                h.update(chunk);
                            }
                            bytes += n as u64;
                            if let Some(k) = &mut keep {
                                if !is_member && k.len() as u64 + n as u64 > KEEP_FOR_YARA {
                                    // Grew since it was listed: map it instead.
                                    keep = None;
                                } else if k.len() as u64 + n as u64 > MAX_MEMBER_SCAN {
                                    keep = None;
                                    problems.push(problem(
                                        Cause::Limit,
                                        format!("archive member larger than {MAX_MEMBER_SCAN} bytes: hashed, not YARA-scanned"),
                                        false,
                                    ));
                                } else {
                                    k.extend_from_slice(chunk);
                                }
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            problems.push(problem(
                                Cause::Unreadable,
                                format!("read stopped: {}", io_reason(&e)),
                                true,
                            ));
                            break;
                        }
                    }
                }
            }
            Err(e) => problems.push(problem(
                Cause::Unreadable,
                format!("cannot open: {}", io_reason(&e)),
                true,
            )),
        }
        let complete = problems.iter().all(|p| !p.evidence_lost);
        if is_member && want_yara && size > MAX_MEMBER_SCAN {
            problems.push(problem(
                Cause::Limit,
                format!(
                    "archive member larger than {MAX_MEMBER_SCAN} bytes: hashed, not YARA-scanned"
                ),
                false,
            ));
        }
        let yara = if want_yara && complete {
            self.yara_scan(item, keep.as_deref(), worker, &mut problems)
        } else {
            Vec::new()
        };
        let (hidden, system) = match &item.source {
            ItemSource::File(p) => exhunt_sources::platform::hidden_system(p),
            ItemSource::ZipMember { .. } => (None, None),
        };
        // Server code of pages, handlers and web services: what it can do.
        let name = item.components.last().map(String::as_str).unwrap_or("");
        let page = match keep.as_deref() {
            Some(bytes) if want_yara && complete && crate::pagecode::is_code_file(name) => {
                Some(crate::pagecode::analyse(name, bytes))
            }
            _ => None,
        };
        let facts = FileFacts {
            display: &item.display,
            components: &item.components,
            url,
            size: bytes.max(size),
            head: &head,
            sha256: sha256
                .filter(|_| complete)
                .map(|h| hex::encode(h.finalize())),
            sha1: sha1.filter(|_| complete).map(|h| hex::encode(h.finalize())),
            md5: md5.filter(|_| complete).map(|h| hex::encode(h.finalize())),
            yara,
            modified: modified.and_then(|t| chrono::DateTime::from_timestamp(t, 0)),
            hidden,
            system,
            page: page.as_ref(),
        };
        let mut findings = self.files.judge(&self.pack, kind, &facts);
        let mut mitigations = Vec::new();
        if want_text {
            match keep.as_deref() {
                Some(text) if complete => {
                    let text = String::from_utf8_lossy(text);
                    findings.extend(crate::iisconfig::judge(
                        &self.pack,
                        &item.display,
                        &text,
                        facts.modified,
                    ));
                    mitigations = crate::iisconfig::mitigations(&item.display, &text);
                }
                _ => problems.push(problem(
                    Cause::Limit,
                    format!("configuration larger than {KEEP_FOR_YARA} bytes or not read completely: its virtual directories were not checked"),
                    true,
                )),
            }
        }
        let stats = ReadStats {
            bytes,
            records: 1,
            problems,
            ..ReadStats::default()
        };
        Facts {
            findings,
            stats,
            mitigations,
        }
    }

    #[cfg(feature = "yara")]
    pub(super) fn yara_scan<'e>(
        &'e self,
        item: &Item,
        bytes: Option<&[u8]>,
        worker: &mut Worker<'e>,
        problems: &mut Vec<Problem>,
    ) -> Vec<YaraHit> {
        let rules = self.yara.get();
        // One scanner per worker, borrowing the rules compiled once for the engine.
        let scanner = worker.yara.get_or_insert_with(|| {
            let mut sc = yara_x::Scanner::new(&rules.rules);
            sc.set_timeout(std::time::Duration::from_secs(60));
            sc
        });
        let name = item.components.last().cloned().unwrap_or_default();
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_string())
            .unwrap_or_default();
        let _ = scanner.set_global("filename", name.as_str());
        let _ = scanner.set_global("filepath", item.display.as_str());
        let _ = scanner.set_global("extension", ext.as_str());
        let result = match (&item.source, bytes) {
            (ItemSource::File(_), Some(b)) => scanner.scan(b),
            (ItemSource::File(p), None) => scanner.scan_file(p),
            (ItemSource::ZipMember { .. }, Some(b)) => scanner.scan(b),
            (ItemSource::ZipMember { .. }, None) => return Vec::new(),
        };
        let results = match result {
            Ok(r) => r,
            Err(e) => {
                problems.push(
                    Problem::new(Cause::CheckFailed, format!("YARA scan failed: {e}")).lost(true),
                );
                return Vec::new();
            }
        };
        results
            .matching_rules()
            .map(|r| {
                let mut hit = YaraHit {
                    namespace: r.namespace().to_string(),
                    rule: r.identifier().to_string(),
                    description: None,
                    author: None,
                    severity: None,
                    builtin: r.namespace() == exhunt_rules::yara::BUILTIN_NAMESPACE,
                };
                for (k, v) in r.metadata() {
                    let text = match v {
                        yara_x::MetaValue::String(s) => Some(s.to_string()),
                        yara_x::MetaValue::Integer(i) => Some(i.to_string()),
                        _ => None,
                    };
                    match (k, text) {
                        ("description", Some(t)) => hit.description = Some(t),
                        ("author", Some(t)) => hit.author = Some(t),
                        ("severity", Some(t)) => hit.severity = crate::files::severity_word(&t),
                        ("score", Some(t)) => {
                            hit.severity = t.parse::<u32>().ok().map(crate::files::severity_score)
                        }
                        _ => {}
                    }
                }
                hit
            })
            .collect()
    }

    #[cfg(not(feature = "yara"))]
    pub(super) fn yara_scan(
        &self,
        _item: &Item,
        _bytes: Option<&[u8]>,
        _worker: &mut Worker<'_>,
        _problems: &mut Vec<Problem>,
    ) -> Vec<YaraHit> {
        Vec::new()
    }
}
