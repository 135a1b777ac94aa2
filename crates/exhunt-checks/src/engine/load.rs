//! Loading the rules: the built-in pack, IOC feeds, Sigma rule sets, YARA compiled beside the
//! walk, the catalogue's checks, and the engine's worker threads.

use super::*;

/// YARA rules being compiled on a thread of their own, then kept.
#[cfg(feature = "yara")]
pub(super) struct YaraSlot {
    cell: std::sync::OnceLock<exhunt_rules::yara::YaraRules>,
    pending: std::sync::Mutex<Option<std::thread::JoinHandle<exhunt_rules::yara::YaraRules>>>,
    external: Vec<PathBuf>,
}

#[cfg(feature = "yara")]
impl YaraSlot {
    pub(super) fn get(&self) -> &exhunt_rules::yara::YaraRules {
        self.cell.get_or_init(|| {
            let handle = self.pending.lock().ok().and_then(|mut p| p.take());
            match handle.map(|h| h.join()) {
                Some(Ok(rules)) => rules,
                // The compiling thread failed (a bug of exhunt): compile here instead, so that
                // the failure shows where it happens.
                _ => exhunt_rules::yara::compile(&self.external),
            }
        })
    }
}

impl Engine {
    /// Builds the engine with the built-in rule packs.
    pub fn new(opts: ScanOptions) -> Result<Engine, EngineError> {
        let t0 = std::time::Instant::now();
        let threads = opts.threads.unwrap_or(0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("exhunt-{i}"))
            .build()
            .map_err(|source| EngineError::Threads { threads, source })?;
        let mut pack = RulePack::builtin()?;
        let mut rules_info = exhunt_model::RulesInfo {
            builtin_rules: pack.rules().len(),
            ..Default::default()
        };
        let mut rule_dirs = Vec::new();
        for feed in &opts.ioc {
            let r = exhunt_rules::feeds::load(feed);
            rules_info.ioc_feeds.push(exhunt_model::FeedInfo {
                path: feed.display().to_string(),
                format: r.format.clone(),
                hashes: r.hashes.len(),
                unused: r.unused.iter().map(|(k, v)| format!("{v} × {k}")).collect(),
                errors: r.errors.clone(),
            });
            pack.add_hashes(r.hashes);
            rule_dirs.push(feed.canonicalize().unwrap_or_else(|_| feed.clone()));
        }
        rules_info.hash_iocs = pack.hash_count();
        #[cfg(feature = "yara")]
        let yara = {
            // Compiling the rules (tens of milliseconds for the built-in pack, seconds for a big
            // public set) runs beside the walk; the first file that needs YARA waits for it.
            for y in &opts.yara {
                rule_dirs.push(y.canonicalize().unwrap_or_else(|_| y.clone()));
            }
            let external = opts.yara.clone();
            YaraSlot {
                cell: std::sync::OnceLock::new(),
                pending: std::sync::Mutex::new(Some(std::thread::spawn(move || {
                    exhunt_rules::yara::compile(&external)
                }))),
                external: opts.yara.clone(),
            }
        };
        #[cfg(not(feature = "yara"))]
        if !opts.yara.is_empty() {
            rules_info.yara_rejected.push(exhunt_model::RejectedRule {
                file: opts
                    .yara
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: "this exhunt was built without the `yara` feature".into(),
            });
        }
        let files = FileJudge::new(&pack);
        let mut sigma = exhunt_rules::sigma::SigmaSet::builtin();
        for dir in &opts.sigma {
            sigma.load(dir);
        }
        rules_info.sigma_rules = sigma.len();
        rules_info.sigma_files = sigma.files.clone();
        rules_info.sigma_rejected = sigma.rejected.clone();
        rule_dirs.extend(sigma.rule_dirs.iter().cloned());
        let events = Arc::new(EventChecker::new(
            Arc::new(sigma),
            pack.rules(),
            opts.since,
            opts.until,
        ));
        let checks = crate::catalogue::line_checks(&pack, opts.exchange_path.as_deref(), &events);
        let main = CheckSet::new(checks, opts.limits);
        tracing::debug!(
            "rules loaded in {:?} (YARA compiling in the background)",
            t0.elapsed()
        );
        Ok(Engine {
            pack,
            main,
            files,
            opts,
            progress: Arc::new(Progress::default()),
            rules_info,
            rule_dirs,
            events,
            pool,
            #[cfg(feature = "yara")]
            yara,
        })
    }
}
