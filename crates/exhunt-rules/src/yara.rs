//! YARA rules through yara-x: the built-in pack (`rules/yara/`) and public rule sets given with
//! `--yara DIR`, compiled once into one `Rules` that every worker scans with its own `Scanner`.
//!
//! Public rule sets are loaded as they are: each file goes into a namespace of its own, and what
//! yara-x rejects (a rule using a module this build lacks, a regex yara-x refuses…) is reported
//! per file with the reason, never silently dropped (chainsaw #135 is what users hated). The
//! external variables signature-base uses (`filename`, `filepath`, `extension`, `filetype`,
//! `owner`) are defined and set per scanned file.

use std::path::{Path, PathBuf};

/// The built-in pack.
pub const BUILTIN: &str = include_str!("../../../rules/yara/exhunt-webshells.yar");

/// Namespace of the built-in pack.
pub const BUILTIN_NAMESPACE: &str = "exhunt";

/// External variables defined for every rule set.
pub const EXTERNALS: [&str; 5] = ["filename", "filepath", "extension", "filetype", "owner"];

/// A rule or file yara-x did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The rule file.
    pub file: String,
    /// Why (yara-x's first line of the error report).
    pub reason: String,
}

/// Compiled rules and the report of what was loaded.
pub struct YaraRules {
    /// The rules.
    pub rules: yara_x::Rules,
    /// Rule files loaded (with at least one rule accepted), as given.
    pub files: Vec<String>,
    /// Rules that compiled.
    pub rule_count: usize,
    /// What was rejected.
    pub rejected: Vec<Rejected>,
    /// Folders the rules came from: a scan must never read them as evidence.
    pub rule_dirs: Vec<PathBuf>,
}

fn rule_files(dir: &Path, out: &mut Vec<PathBuf>, rejected: &mut Vec<Rejected>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            rejected.push(Rejected {
                file: dir.display().to_string(),
                reason: format!("cannot read folder: {e}"),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            rule_files(&p, out, rejected);
        } else if p
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yar") || e.eq_ignore_ascii_case("yara"))
        {
            out.push(p);
        }
    }
}

fn first_line(s: &str) -> String {
    // yara-x reports are multi-line with source excerpts; the first line says what is wrong.
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

/// Compiles the built-in pack plus every `.yar`/`.yara` file below `external` (a folder or a
/// file).
pub fn compile(external: &[PathBuf]) -> YaraRules {
    let mut compiler = yara_x::Compiler::new();
    compiler.relaxed_re_syntax(true);
    compiler.colorize_errors(false);
    for g in EXTERNALS {
        // Defining a global twice is impossible here: the names are distinct constants.
        let _ = compiler.define_global(g, "");
    }
    let mut rejected = Vec::new();
    let mut files = Vec::new();
    compiler.new_namespace(BUILTIN_NAMESPACE);
    if let Err(e) = compiler.add_source(
        yara_x::SourceCode::from(BUILTIN).with_origin("rules/yara/exhunt-webshells.yar"),
    ) {
        // A test keeps this from happening; report rather than panic.
        rejected.push(Rejected {
            file: "rules/yara/exhunt-webshells.yar".into(),
            reason: first_line(&e.to_string()),
        });
    }
    let mut rule_dirs = Vec::new();
    let mut paths = Vec::new();
    for e in external {
        if e.is_dir() {
            rule_dirs.push(e.canonicalize().unwrap_or_else(|_| e.clone()));
            rule_files(e, &mut paths, &mut rejected);
        } else {
            rule_dirs.push(e.canonicalize().unwrap_or_else(|_| e.clone()));
            paths.push(e.clone());
        }
    }
    for p in paths {
        let shown = p.display().to_string();
        let src = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) => {
                rejected.push(Rejected {
                    file: shown,
                    reason: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let ns: String = p
            .file_stem()
            .map(|s| {
                s.to_string_lossy()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect()
            })
            .unwrap_or_else(|| "external".into());
        compiler.new_namespace(&ns);
        let before = compiler.errors().len();
        let failed = compiler
            .add_source(yara_x::SourceCode::from(src.as_slice()).with_origin(shown.as_str()))
            .is_err();
        let errs: Vec<String> = compiler.errors()[before..]
            .iter()
            .map(|e| first_line(&e.to_string()))
            .collect();
        match (failed, errs.is_empty()) {
            (false, true) => files.push(shown),
            (_, _) => {
                let mut reasons = errs;
                if reasons.is_empty() {
                    reasons.push("rejected by yara-x".into());
                }
                for r in reasons {
                    rejected.push(Rejected {
                        file: shown.clone(),
                        reason: r,
                    });
                }
                files.push(shown);
            }
        }
    }
    let rules = compiler.build();
    let rule_count = rules.iter().count();
    YaraRules {
        rules,
        files,
        rule_count,
        rejected,
        rule_dirs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_pack_compiles_and_bad_files_are_reported() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("good.yar"),
            "rule good_one { strings: $a = \"zzqq\" condition: $a }",
        )
        .unwrap();
        std::fs::write(
            d.path().join("bad.yar"),
            "rule broken { condition: nosuchthing }",
        )
        .unwrap();
        std::fs::write(d.path().join("notes.txt"), "not a rule").unwrap();
        let y = compile(&[d.path().to_path_buf()]);
        assert!(
            y.rejected.iter().all(|r| r.file.ends_with("bad.yar")),
            "{:?}",
            y.rejected
        );
        assert_eq!(y.rejected.len(), 1);
        let builtin = y
            .rules
            .iter()
            .filter(|r| r.namespace() == BUILTIN_NAMESPACE)
            .count();
        assert_eq!(builtin, BUILTIN.matches("\nrule ").count());
        assert!(y.rules.iter().any(|r| r.identifier() == "good_one"));
    }
}
