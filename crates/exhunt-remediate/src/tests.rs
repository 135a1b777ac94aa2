//! Unit tests: PowerShell quoting of hostile values, the plan from synthetic results, and apply
//! and rollback on a temporary tree — including a failure injected after every journal write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use exhunt_model::{
    ArtefactKind, Campaign, Confidence, Coverage, Entities, Evidence, Finding, RulesInfo,
    ScanResult, ScanSettings, ServerResult, Severity, Stage, ToolInfo, VerdictKind,
};
use exhunt_rules::builds::BuildTable;

use crate::apply::{ApplyOptions, JOURNAL_NAME, Preservation, STUB, apply, measure, rollback};
use crate::plan::{ActionKind, FileFacts, Plan, files_named, plan};
use crate::ps::quote;

// ---- PowerShell quoting ----

/// Evaluates what [`quote`] produces with a strict reading of PowerShell's grammar for exactly
/// these forms: a single-quoted literal (`''` is a quote; any other quote character, or a line
/// break, inside it ends the test), or `([string]'' + part + part…)` with parts that are
/// literals or `[char]0xNNNN`. Anything else — code outside a literal — is `None`.
fn eval_ps(expr: &str) -> Option<String> {
    fn literal(s: &str) -> Option<(String, &str)> {
        let mut chars = s.strip_prefix('\'')?.char_indices().peekable();
        let body = &s[1..];
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '\'' => {
                    if let Some((_, '\'')) = chars.peek() {
                        chars.next();
                        out.push('\'');
                    } else {
                        return Some((out, &body[i + 1..]));
                    }
                }
                // PowerShell also ends a single-quoted string at these; a line break would
                // split the statement in a script.
                '\u{2018}'..='\u{201b}' | '\n' | '\r' => return None,
                c if c.is_control() => return None,
                c => out.push(c),
            }
        }
        None
    }
    if let Some((v, rest)) = literal(expr) {
        return rest.is_empty().then_some(v);
    }
    let inner = expr.strip_prefix("([string]'' + ")?.strip_suffix(')')?;
    let mut out = String::new();
    let mut rest = inner;
    loop {
        if let Some(r) = rest.strip_prefix("[char]0x") {
            let hex: String = r.chars().take(4).collect();
            out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            rest = &r[4..];
        } else {
            let (v, r) = literal(rest)?;
            out.push_str(&v);
            rest = r;
        }
        if rest.is_empty() {
            return Some(out);
        }
        rest = rest.strip_prefix(" + ")?;
    }
}

const HOSTILE: [&str; 9] = [
    "it's",
    "'; Remove-Item C:\\ -Recurse -Force; '",
    "$(Invoke-Expression 'calc')",
    "`$env:USERNAME`n",
    "line1\nline2'; calc; '",
    "a\r\nb",
    "\u{2019}; calc; \u{2018}",
    "x\u{202e}gpj.aspx",
    "\"double\" and ''two''",
];

#[test]
fn quoting_keeps_hostile_values_inside_their_string() {
    for h in HOSTILE {
        let q = quote(h);
        assert_eq!(eval_ps(&q).as_deref(), Some(h), "{h:?} quoted as {q}");
        assert!(!q.contains('\n') && !q.contains('\r'), "{q}");
    }
    assert_eq!(quote("it's"), "'it''s'");
    assert_eq!(quote("$(calc)"), "'$(calc)'");
    assert_eq!(quote("a\nb"), "([string]'' + 'a' + [char]0x000a + 'b')");
}

// ---- Synthetic results ----

fn finding(rule: &str, kind: ArtefactKind, stage: Stage, path: &str, title: &str) -> Finding {
    Finding {
        id: String::new(),
        rule_id: rule.to_string(),
        title: title.to_string(),
        campaign: Campaign::PostExploitation,
        cves: Vec::new(),
        attack: String::new(),
        severity: Severity::High,
        confidence: Confidence::High,
        stage,
        timestamp: None,
        evidence: Evidence {
            path: path.to_string(),
            line: 0,
            offset: 0,
            excerpt: String::new(),
        },
        entities: Entities {
            file_path: Some(path.to_string()),
            ..Entities::default()
        },
        kind,
        joins: None,
        outcome: None,
    }
}

fn result(target: &str, findings: Vec<Finding>) -> ScanResult {
    let t = chrono::DateTime::from_timestamp(1_614_700_000, 0).unwrap_or_default();
    ScanResult {
        schema_version: "1.4".to_string(),
        tool: ToolInfo {
            name: "exhunt".to_string(),
            version: "0.1.0".to_string(),
        },
        started: t,
        finished: t,
        settings: ScanSettings::default(),
        verdict: VerdictKind::Compromised,
        servers: vec![ServerResult {
            name: "EX9".to_string(),
            targets: vec![target.to_string()],
            verdict: VerdictKind::Compromised,
            verdicts: Vec::new(),
            story: Vec::new(),
            findings,
            suppressed: Vec::new(),
            coverage: Coverage::default(),
            mitigations: Vec::new(),
        }],
        rules: RulesInfo::default(),
    }
}

fn builds() -> BuildTable {
    BuildTable::builtin().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn plan_quarantines_confirmed_files_and_asks_review_for_the_rest() {
    let mut review = finding(
        "EXH-FS-1",
        ArtefactKind::WebFile,
        Stage::Persistence,
        "T/inetpub/wwwroot/x.aspx",
        "REVIEW: unknown page",
    );
    review.confidence = Confidence::Low;
    let r = result(
        "T",
        vec![
            finding(
                "EXH-FS-9",
                ArtefactKind::WebFile,
                Stage::Persistence,
                "T/inetpub/wwwroot/aspnet_client/s.aspx",
                "shell",
            ),
            finding(
                "EXH-FS-5",
                ArtefactKind::MemoryDump,
                Stage::PostExploitation,
                "T/root/lsass.dmp",
                "dump",
            ),
            review,
        ],
    );
    let p = plan(&r, &builds(), &BTreeMap::new());
    let a = &p.servers[0].actions;
    let q: Vec<_> = a
        .iter()
        .filter(|a| a.kind == ActionKind::Quarantine)
        .collect();
    assert_eq!(q.len(), 2);
    assert!(q.iter().all(|a| !a.findings.is_empty()));
    let shell = q
        .iter()
        .find(|a| {
            a.file.as_ref().is_some_and(|f| {
                f.relative.as_deref() == Some("inetpub/wwwroot/aspnet_client/s.aspx")
            })
        })
        .unwrap();
    assert_eq!(shell.findings, vec!["F0"]);
    let rv: Vec<_> = a
        .iter()
        .filter(|a| a.kind == ActionKind::ReviewFile)
        .collect();
    assert_eq!(rv.len(), 1);
    assert_eq!(rv[0].findings, vec!["F2"]);
    // A dump and a web shell: credentials, saying what the evidence cannot know.
    let cred = a
        .iter()
        .find(|a| a.kind == ActionKind::Credentials)
        .unwrap();
    assert!(
        cred.items
            .iter()
            .any(|i| i.name == "krbtgt" && i.answer.contains("twice"))
    );
    assert!(
        cred.items
            .iter()
            .any(|i| i.name == "EX9$ (machine account)")
    );
    assert!(
        p.servers[0]
            .cannot_know
            .iter()
            .any(|c| c.contains("which accounts logged on"))
    );
    // The checklist comes first and refers to the other actions by id.
    assert_eq!(a[0].kind, ActionKind::Directive);
    assert!(
        !a[0].items.iter().any(|i| i.answer.contains('{')),
        "{:?}",
        a[0].items
    );
    // Pure: the same result gives the same plan.
    assert_eq!(p, plan(&r, &builds(), &BTreeMap::new()));
    // Findings without stable ids (a result before schema 1.6): cited by index alone.
    assert!(a.iter().all(|a| a.finding_ids.is_empty()));

    // With stable ids, each action cites them too, in the same order, in JSON and in text;
    // an id that moved index in a rescan is still the same finding.
    let mut r = r;
    let mut ids = Vec::new();
    for (i, f) in r.servers[0].findings.iter_mut().enumerate() {
        f.id = format!("f-{:016x}", 0xa1b2_c3d4_0000_0000_u64 + i as u64);
        ids.push(f.id.clone());
    }
    let p = plan(&r, &builds(), &BTreeMap::new());
    let a = &p.servers[0].actions;
    for act in a {
        let by_index: Vec<String> = act
            .findings
            .iter()
            .map(|f| ids[f[1..].parse::<usize>().unwrap()].clone())
            .collect();
        assert_eq!(act.finding_ids, by_index, "{}", act.title);
    }
    let shell = a.iter().find(|a| a.findings == ["F0"]).unwrap();
    assert_eq!(shell.finding_ids, vec![ids[0].clone()]);
    let text = crate::render::text(&p);
    assert!(text.contains(&format!("F0 ({})", ids[0])), "{text}");
    let json = serde_json::to_value(&p).unwrap();
    assert!(
        json.to_string()
            .contains(&format!("\"finding_ids\":[\"{}\"]", ids[0]))
    );
    // An id not of the scanner's shape (a result file from anywhere, printed to a terminal)
    // counts as none; one finding without an id: the action cites indices only (no half list).
    let shell_ids = |r: &ScanResult| {
        let p = plan(r, &builds(), &BTreeMap::new());
        let shell = p.servers[0].actions.iter().find(|a| a.findings == ["F0"]);
        (shell.unwrap().finding_ids.clone(), crate::render::text(&p))
    };
    r.servers[0].findings[0].id = "f-\u{1b}[31mred\u{1b}[0m".into();
    let (ids0, text) = shell_ids(&r);
    assert!(ids0.is_empty());
    assert!(!text.contains('\u{1b}'));
    r.servers[0].findings[0].id = format!("{}-2", ids[0]);
    assert_eq!(shell_ids(&r).0, vec![format!("{}-2", ids[0])]);
    r.servers[0].findings[0].id.clear();
    assert!(shell_ids(&r).0.is_empty());
}

#[test]
fn generated_powershell_keeps_hostile_values_as_data() {
    let script_for = |value: &str, user: &str| {
        let mut url = finding(
            "EXH-PL-6",
            ArtefactKind::EcpServerLog,
            Stage::Persistence,
            "T/ecp.log",
            "CVE-2021-27065 script planted in Set-OabVirtualDirectory ExternalUrl",
        );
        url.entities = Entities {
            target: Some(format!("ExternalUrl={value}")),
            ..Entities::default()
        };
        let mut role = finding(
            "EXH-EV-7",
            ArtefactKind::EventExport,
            Stage::PostExploitation,
            "T/ev.jsonl",
            "Mailbox Import Export role assigned",
        );
        role.entities = Entities::default();
        role.evidence.excerpt = format!(
            "Cmdlet New-ManagementRoleAssignment, parameters -Role \"Mailbox Import Export\" -User \"{user}\"."
        );
        let p = plan(&result("T", vec![url, role]), &builds(), &BTreeMap::new());
        p.servers[0]
            .actions
            .iter()
            .filter_map(|a| a.powershell.clone())
            .collect::<Vec<_>>()
    };
    let benign = script_for("http://f/x", "alice");
    assert_eq!(benign.len(), 2);
    for h in HOSTILE {
        // A value with `"` would end the -User "…" of the excerpt itself: not a cmdlet line.
        let user = h.replace('"', "");
        let hostile = script_for(h, &user);
        assert_eq!(hostile.len(), 2, "{h:?}");
        for (b, s) in benign.iter().zip(&hostile) {
            // Same shape: a hostile value adds no line and no statement.
            assert_eq!(b.lines().count(), s.lines().count(), "{h:?}:\n{s}");
        }
        assert!(
            hostile[0].contains(&quote(h)) || hostile[1].contains(&quote(h)),
            "{h:?}"
        );
        assert!(
            hostile.iter().any(|s| s.contains(&quote(&user))),
            "{user:?}"
        );
    }
}

// ---- Apply and rollback ----

/// Every file under `root`: relative path → (bytes, modification time, mode).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                #[cfg(unix)]
                let mode = std::os::unix::fs::PermissionsExt::mode(&m.permissions());
                #[cfg(not(unix))]
                let mode = u32::from(m.permissions().readonly());
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    (std::fs::read(&p).unwrap(), m.modified().unwrap(), mode),
                );
            }
        }
    }
    out
}

struct Fixture {
    _dir: tempfile::TempDir,
    target: PathBuf,
    vault: PathBuf,
    plan: Plan,
}

/// A small server tree with a shell, a dump and an archive (built from pieces at run time),
/// old modification times, and the plan for it.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("srv");
    let files = [
        (
            "inetpub/wwwroot/aspnet_client/s.aspx",
            ["<%@ Page Language=\"C#\" %>", "<% /* inert test page */ %>"]
                .concat()
                .into_bytes(),
        ),
        (
            "root/lsass.dmp",
            [b"MD".as_slice(), b"MP", &[0u8; 64]].concat(),
        ),
        (
            "ProgramData/out.zip",
            [b"PK".as_slice(), &[3, 4], &[7u8; 40]].concat(),
        ),
        ("inetpub/wwwroot/iisstart.htm", b"<html>ok</html>".to_vec()),
    ];
    let old = SystemTime::UNIX_EPOCH
        + Duration::from_secs(1_614_740_000)
        + Duration::from_nanos(123_456_789);
    for (i, (p, bytes)) in files.iter().enumerate() {
        let path = target.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(old + Duration::from_secs(i as u64 * 3600))
            .unwrap();
        #[cfg(unix)]
        if i == 1 {
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
    }
    let t = target.display().to_string();
    let r = result(
        &t,
        vec![
            finding(
                "EXH-YARA-1",
                ArtefactKind::WebFile,
                Stage::Persistence,
                &format!("{t}/inetpub/wwwroot/aspnet_client/s.aspx"),
                "shell",
            ),
            finding(
                "EXH-FS-5",
                ArtefactKind::MemoryDump,
                Stage::PostExploitation,
                &format!("{t}/root/lsass.dmp"),
                "dump",
            ),
            finding(
                "EXH-FS-6",
                ArtefactKind::Archive,
                Stage::PostExploitation,
                &format!("{t}/ProgramData/out.zip"),
                "archive",
            ),
        ],
    );
    let mut facts = BTreeMap::new();
    for p in files_named(&r) {
        let m: FileFacts = measure(Path::new(&p)).unwrap();
        facts.insert(p, m);
    }
    let plan = plan(&r, &builds(), &facts);
    Fixture {
        vault: dir.path().join("vault"),
        target,
        _dir: dir,
        plan,
    }
}

fn opts(fx: &Fixture, fail_after: Option<usize>) -> ApplyOptions {
    ApplyOptions {
        vault: fx.vault.clone(),
        target: None,
        preservation: Preservation::NoPreserve("unit test".to_string()),
        stub: false,
        yes: true,
        allow_unpinned: false,
        fail_after,
        hook: None,
    }
}

#[test]
fn apply_moves_files_into_the_vault_and_rollback_restores_them_exactly() {
    let fx = fixture();
    let before = snapshot(&fx.target);
    let r = apply(&fx.plan, &opts(&fx, None)).unwrap();
    assert_eq!(r.quarantined, 3, "{:?}", r.skipped);
    let after = snapshot(&fx.target);
    assert_eq!(
        after.len(),
        1,
        "only the ordinary page is left: {:?}",
        after.keys()
    );
    // Each copy in the vault hashes to what the plan pinned.
    let manifest: crate::apply::VaultManifest =
        serde_json::from_slice(&std::fs::read(fx.vault.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest.files.len(), 3);
    for e in &manifest.files {
        assert_eq!(
            measure(&fx.vault.join(&e.vault_file)).unwrap().sha256,
            e.sha256
        );
        assert!(e.owner.mode.is_some() || cfg!(not(unix)));
    }
    let rb = rollback(&fx.vault.join(JOURNAL_NAME), true).unwrap();
    assert_eq!(rb.restored.len(), 3);
    assert_eq!(snapshot(&fx.target), before);
    // Again: nothing to do, nothing changes.
    let rb = rollback(&fx.vault.join(JOURNAL_NAME), true).unwrap();
    assert!(rb.restored.is_empty());
    assert_eq!(snapshot(&fx.target), before);
}

#[test]
fn a_crash_after_any_step_leaves_a_state_rollback_restores() {
    // Every journal write and every filesystem step (renamed, copied, stub placed, removed) is
    // a point where apply stops as a crash would; rollback restores the tree from each.
    for stub in [false, true] {
        let mut points = 0;
        for n in 1.. {
            let fx = fixture();
            let before = snapshot(&fx.target);
            let mut o = opts(&fx, Some(n));
            o.stub = stub;
            match apply(&fx.plan, &o) {
                Err(crate::RemediateError::Injected(k)) => assert_eq!(k, n),
                Ok(_) => break,
                Err(e) => panic!("step {n}: expected the injected failure, got {e}"),
            }
            points = n;
            let r = rollback(&fx.vault.join(JOURNAL_NAME), true)
                .unwrap_or_else(|e| panic!("step {n}: {e}"));
            assert!(r.skipped.is_empty(), "step {n}: {:?}", r.skipped);
            assert_eq!(
                snapshot(&fx.target),
                before,
                "after a crash at step {n} (stub {stub})"
            );
            // And again: nothing more to do.
            let r = rollback(&fx.vault.join(JOURNAL_NAME), true).unwrap();
            assert!(r.restored.is_empty(), "step {n}: {:?}", r.restored);
        }
        // 1 start + per file: 6 journal writes, renamed, copied, removed (and stub placed).
        assert_eq!(points, 1 + 3 * (9 + usize::from(stub)), "stub {stub}");
    }
}

/// What an attacker writes in place of the fixture's web shell: the same size, so a check of
/// size (and time) alone cannot tell.
const SWAPPED: &[u8] = b"<%@ Page Language=\"C#\" %><% /* swapped-in page */ %>";

fn swap_at(label: &'static str) -> fn(&str, &Path) {
    match label {
        "before-rename" => |l, p| {
            if l == "before-rename" && p.ends_with("s.aspx") {
                std::fs::write(p, SWAPPED).unwrap();
            }
        },
        _ => |l, p| {
            if (l == "renamed" || l == "copied") && p.ends_with("s.aspx") {
                std::fs::write(p, SWAPPED).unwrap();
            }
        },
    }
}

#[test]
fn a_file_swapped_during_apply_is_never_removed_without_its_copy() {
    // Swapped after apply's first look and before the rename: the file copied is not the one
    // the plan pinned, so it is put back and left alone.
    let fx = fixture();
    let shell = fx.target.join("inetpub/wwwroot/aspnet_client/s.aspx");
    let mut o = opts(&fx, None);
    o.hook = Some(swap_at("before-rename"));
    let r = apply(&fx.plan, &o).unwrap();
    assert_eq!(r.quarantined, 2, "{:?}", r.skipped);
    assert!(
        r.skipped
            .iter()
            .any(|s| s.contains("changed since the plan")),
        "{:?}",
        r.skipped
    );
    assert_eq!(std::fs::read(&shell).unwrap(), SWAPPED);
    // No stray name is left beside it, and rollback leaves it alone.
    let names: Vec<_> = std::fs::read_dir(shell.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let rb = rollback(&fx.vault.join(JOURNAL_NAME), true).unwrap();
    assert_eq!(rb.restored.len(), 2);
    assert_eq!(std::fs::read(&shell).unwrap(), SWAPPED);

    // Written at its name once it was renamed away: that is a new file, never removed; the
    // original is in the vault with the plan's SHA-256.
    let fx = fixture();
    let shell = fx.target.join("inetpub/wwwroot/aspnet_client/s.aspx");
    let original = std::fs::read(&shell).unwrap();
    assert_eq!(original.len(), SWAPPED.len());
    let mut o = opts(&fx, None);
    o.hook = Some(swap_at("renamed"));
    let r = apply(&fx.plan, &o).unwrap();
    assert_eq!(r.quarantined, 3, "{:?}", r.skipped);
    assert_eq!(std::fs::read(&shell).unwrap(), SWAPPED);
    let manifest: crate::apply::VaultManifest =
        serde_json::from_slice(&std::fs::read(fx.vault.join("manifest.json")).unwrap()).unwrap();
    let e = manifest
        .files
        .iter()
        .find(|e| e.original.ends_with("s.aspx"))
        .unwrap();
    assert_eq!(
        std::fs::read(fx.vault.join(&e.vault_file)).unwrap(),
        original
    );
    // Rollback does not overwrite the file written since: it says so and restores the rest.
    let rb = rollback(&fx.vault.join(JOURNAL_NAME), true).unwrap();
    assert_eq!(rb.restored.len(), 2, "{rb:?}");
    assert_eq!(rb.skipped.len(), 1, "{rb:?}");
    assert_eq!(std::fs::read(&shell).unwrap(), SWAPPED);
}

#[test]
fn a_file_without_a_pinned_hash_is_left_alone_unless_allowed() {
    let fx = fixture();
    let mut p = fx.plan.clone();
    for a in &mut p.servers[0].actions {
        if let Some(f) = &mut a.file {
            f.sha256 = None;
            f.size = None;
        }
    }
    let before = snapshot(&fx.target);
    let r = apply(&p, &opts(&fx, None)).unwrap();
    assert_eq!(r.quarantined, 0);
    assert_eq!(r.skipped.len(), 3, "{:?}", r.skipped);
    assert!(r.skipped.iter().all(|s| s.contains("no SHA-256")));
    assert_eq!(snapshot(&fx.target), before);
    let mut o = opts(&fx, None);
    o.vault = fx.vault.with_file_name("vault2");
    o.allow_unpinned = true;
    let r = apply(&p, &o).unwrap();
    assert_eq!(r.quarantined, 3, "{:?}", r.skipped);
    rollback(&o.vault.join(JOURNAL_NAME), true).unwrap();
    assert_eq!(snapshot(&fx.target), before);
}

#[test]
fn files_beside_the_originals_are_never_truncated_or_replaced() {
    let fx = fixture();
    // Names the first version wrote with File::create: a planted file there was truncated.
    let dir = fx.target.join("inetpub/wwwroot/aspnet_client");
    std::fs::write(dir.join(".s.aspx.exhunt-stub"), b"not apply's").unwrap();
    std::fs::write(dir.join(".s.aspx.exhunt-restore"), b"not apply's either").unwrap();
    let before = snapshot(&fx.target);
    let mut o = opts(&fx, None);
    o.stub = true;
    apply(&fx.plan, &o).unwrap();
    assert_eq!(
        std::fs::read(dir.join(".s.aspx.exhunt-stub")).unwrap(),
        b"not apply's"
    );
    rollback(&fx.vault.join(JOURNAL_NAME), true).unwrap();
    assert_eq!(snapshot(&fx.target), before);
}

#[test]
fn stubs_are_inert_and_rolled_back() {
    let fx = fixture();
    let before = snapshot(&fx.target);
    let mut o = opts(&fx, None);
    o.stub = true;
    apply(&fx.plan, &o).unwrap();
    let shell = fx.target.join("inetpub/wwwroot/aspnet_client/s.aspx");
    let stub = std::fs::read(&shell).unwrap();
    assert_eq!(stub, STUB);
    assert!(!stub.windows(2).any(|w| w == b"<%"));
    rollback(&fx.vault.join(JOURNAL_NAME), true).unwrap();
    assert_eq!(snapshot(&fx.target), before);
}

#[test]
fn rollback_refuses_a_vault_that_does_not_match_and_changes_nothing() {
    let fx = fixture();
    apply(&fx.plan, &opts(&fx, None)).unwrap();
    let files = fx.vault.join("files");
    let first = std::fs::read_dir(&files)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::write(&first, b"tampered").unwrap();
    let target_before = snapshot(&fx.target);
    let err = rollback(&fx.vault.join(JOURNAL_NAME), true).unwrap_err();
    assert!(
        err.to_string().contains("does not match the journal"),
        "{err}"
    );
    assert_eq!(snapshot(&fx.target), target_before);
}

#[test]
fn apply_refuses_without_preserved_evidence_and_changes_nothing() {
    let fx = fixture();
    let before = snapshot(&fx.target);
    for p in [
        Preservation::None,
        Preservation::NoPreserve("  ".to_string()),
        Preservation::Package(fx.target.join("missing.zip")),
    ] {
        let mut o = opts(&fx, None);
        o.preservation = p;
        let err = apply(&fx.plan, &o).unwrap_err();
        assert!(matches!(err, crate::RemediateError::Refused(_)), "{err}");
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        assert_eq!(snapshot(&fx.target), before);
        assert!(!fx.vault.exists());
    }
    // A dry run changes nothing either.
    let mut o = opts(&fx, None);
    o.yes = false;
    let r = apply(&fx.plan, &o).unwrap();
    assert_eq!(r.quarantined, 3);
    assert_eq!(snapshot(&fx.target), before);
    assert!(!fx.vault.exists());
}

#[test]
fn a_file_changed_since_the_plan_is_left_alone() {
    let fx = fixture();
    let shell = fx.target.join("inetpub/wwwroot/aspnet_client/s.aspx");
    std::fs::write(&shell, b"changed").unwrap();
    let r = apply(&fx.plan, &opts(&fx, None)).unwrap();
    assert_eq!(r.quarantined, 2);
    assert!(
        r.skipped
            .iter()
            .any(|s| s.contains("changed since the plan")),
        "{:?}",
        r.skipped
    );
    assert_eq!(std::fs::read(&shell).unwrap(), b"changed");
}

#[test]
fn a_torn_last_journal_line_is_ignored() {
    let fx = fixture();
    let _ = apply(&fx.plan, &opts(&fx, Some(5)));
    let j = fx.vault.join(JOURNAL_NAME);
    let mut text = std::fs::read(&j).unwrap();
    text.extend_from_slice(b"{\"type\":\"begin\",\"seq\":3,\"st");
    std::fs::write(&j, text).unwrap();
    let before_restore = rollback(&j, false).unwrap();
    assert_eq!(before_restore.restored.len(), 1);
    rollback(&j, true).unwrap();
    assert_eq!(snapshot(&fx.target).len(), 4);
}

#[test]
fn persistence_in_configuration_gets_its_script() {
    let mut vdir = finding(
        "EXH-PS-2",
        ArtefactKind::IisConfig,
        Stage::Persistence,
        "C:\\ProgramData\\COM",
        "IIS serves /owa/x of site \"Default Web Site\" from C:\\ProgramData\\COM: a folder under ProgramData",
    );
    vdir.entities.url = Some("/owa/x".to_string());
    let mut agent = finding(
        "EXH-EV-17",
        ArtefactKind::EventExport,
        Stage::PostExploitation,
        "T/ev.jsonl",
        "Exchange transport agent installed or enabled",
    );
    agent.entities = Entities::default();
    agent.evidence.excerpt = "MSExchange Management 1 (MSExchange CmdletLogs); Cmdlet Install-TransportAgent, parameters -Name \"Mail'Filter\" -TransportAgentFactory \"X.Factory\" -AssemblyPath \"C:\\ProgramData\\x.dll\".".to_string();
    let mut domain = finding(
        "EXH-EV-18",
        ArtefactKind::Evtx,
        Stage::PostExploitation,
        "T/Security.evtx",
        "Account added to an Exchange security group",
    );
    domain.entities = Entities::default();
    domain.evidence.excerpt = "Security 4728 (Microsoft-Windows-Security-Auditing); MemberName=CN=evil,CN=Users,DC=contoso,DC=local; MemberSid=S-1-5-21-1-2-3-1337; TargetUserName=Organization Management; TargetDomainName=CONTOSO".to_string();
    let mut local = domain.clone();
    local.evidence.excerpt = "Security 4732 (Microsoft-Windows-Security-Auditing); MemberSid=S-1-5-21-1-2-3-1337; TargetUserName=Administrators; TargetDomainName=Builtin".to_string();
    let p = plan(
        &result("T", vec![vdir, agent, domain, local]),
        &builds(),
        &BTreeMap::new(),
    );
    let scripts: Vec<(String, String)> = p.servers[0]
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::Configuration)
        .map(|a| {
            (
                a.findings.join(","),
                a.powershell.clone().unwrap_or_default(),
            )
        })
        .collect();
    let find = |f: &str| {
        scripts
            .iter()
            .find(|(k, _)| k == f)
            .map(|(_, s)| s.as_str())
            .unwrap_or_else(|| panic!("no script for {f}: {scripts:?}"))
    };
    let s = find("F0");
    assert!(s.contains("$exhuntSite = 'Default Web Site'; $exhuntPath = '/owa/x'; $exhuntPhysical = 'C:\\ProgramData\\COM'"), "{s}");
    assert!(
        s.contains("delete vdir") && !s.contains("delete app"),
        "{s}"
    );
    let s = find("F1");
    assert!(
        s.contains("Get-TransportAgent -Identity 'Mail''Filter'")
            && s.contains("Disable-TransportAgent"),
        "{s}"
    );
    let s = find("F2");
    assert!(s.contains("$exhuntGroup = 'Organization Management'; $exhuntMember = 'CN=evil,CN=Users,DC=contoso,DC=local'") && s.contains("Remove-ADGroupMember"), "{s}");
    let s = find("F3");
    assert!(
        s.contains("$exhuntMember = 'S-1-5-21-1-2-3-1337'")
            && s.contains("Remove-LocalGroupMember"),
        "{s}"
    );
    // Every script refuses to run twice and records the state before changing it.
    for (_, s) in &scripts {
        let refuse = s
            .find("if (Test-Path -LiteralPath $exhuntMarker) { throw")
            .unwrap();
        let again = s
            .find("if (Test-Path -LiteralPath $exhuntBefore) { throw")
            .unwrap();
        assert!(refuse < again, "{s}");
        let record = s.find("$before = @(").unwrap();
        assert!(again < record, "{s}");
        let kept = s.find("$before | Export-Clixml").unwrap();
        let done = s.find("Set-Content -LiteralPath $exhuntMarker").unwrap();
        assert!(refuse < record && record < kept && kept < done, "{s}");
    }
}

#[test]
fn apply_finds_files_under_a_moved_target_and_keeps_the_vault_out_of_it() {
    let fx = fixture();
    let moved = fx.target.with_file_name("mounted");
    std::fs::rename(&fx.target, &moved).unwrap();
    let mut o = opts(&fx, None);
    o.target = Some(moved.clone());
    o.vault = moved.join("vault");
    let err = apply(&fx.plan, &o).unwrap_err();
    assert!(err.to_string().contains("inside the target"), "{err}");
    assert!(!moved.join("vault").exists());
    o.vault = fx.vault.clone();
    let r = apply(&fx.plan, &o).unwrap();
    assert_eq!(r.quarantined, 3, "{:?}", r.skipped);
    assert!(!moved.join("root/lsass.dmp").exists());
}

#[test]
fn rollback_leaves_a_file_written_since_apply_and_restores_the_rest() {
    let fx = fixture();
    apply(&fx.plan, &opts(&fx, None)).unwrap();
    let shell = fx.target.join("inetpub/wwwroot/aspnet_client/s.aspx");
    std::fs::write(&shell, b"rebuilt page").unwrap();
    let dry = rollback(&fx.vault.join(JOURNAL_NAME), false).unwrap();
    assert_eq!((dry.restored.len(), dry.skipped.len()), (2, 1));
    let r = rollback(&fx.vault.join(JOURNAL_NAME), true).unwrap();
    assert_eq!(r.restored.len(), 2, "{r:?}");
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    assert!(r.skipped[0].contains("changed since apply"), "{r:?}");
    assert_eq!(std::fs::read(&shell).unwrap(), b"rebuilt page");
    assert!(fx.target.join("root/lsass.dmp").exists());
    assert!(fx.target.join("ProgramData/out.zip").exists());
}

#[test]
fn a_second_rollback_after_a_torn_journal_line_reads_the_journal() {
    let fx = fixture();
    let before = snapshot(&fx.target);
    // Stopped once two files were removed (1 start + 9 steps per file): rollback appends two
    // `restored` records, so the torn line ends up between records.
    let _ = apply(&fx.plan, &opts(&fx, Some(19)));
    let j = fx.vault.join(JOURNAL_NAME);
    let mut text = std::fs::read(&j).unwrap();
    text.extend_from_slice(b"{\"type\":\"begin\",\"seq\":4,\"st");
    std::fs::write(&j, text).unwrap();
    let r = rollback(&j, true).unwrap();
    assert_eq!(r.restored.len(), 2, "{r:?}");
    assert_eq!(snapshot(&fx.target), before);
    // The torn line is no longer the last one: it must not make the journal unreadable.
    let r = rollback(&j, true).unwrap_or_else(|e| panic!("second rollback: {e}"));
    assert!(r.restored.is_empty());
}

#[test]
fn archive_members_and_dot_dot_paths_never_name_a_file_on_disk() {
    let member = "T/uploads/x.zip!..\\..\\..\\Program Files\\Microsoft\\Exchange Server\\V15\\FrontEnd\\HttpProxy\\owa\\auth\\logon.aspx";
    let r = result(
        "T",
        vec![finding(
            "EXH-YARA-1",
            ArtefactKind::WebFile,
            Stage::Persistence,
            member,
            "shell in an archive",
        )],
    );
    assert_eq!(files_named(&r), vec!["T/uploads/x.zip".to_string()]);
    let p = plan(&r, &builds(), &BTreeMap::new());
    let files: Vec<_> = p.servers[0]
        .actions
        .iter()
        .filter_map(|a| a.file.as_ref())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, "T/uploads/x.zip");
    // A member of the scan target itself (a zip given as the target) is evidence, not the
    // server: nothing to quarantine.
    let r = result(
        "T/copy.zip",
        vec![finding(
            "EXH-YARA-1",
            ArtefactKind::WebFile,
            Stage::Persistence,
            "T/copy.zip!inetpub/s.aspx",
            "shell",
        )],
    );
    assert!(files_named(&r).is_empty());
    // locate refuses `.`, `..` and empty components, on either separator, with or without
    // --target.
    use crate::apply::locate;
    for bad in [
        "C:\\inetpub\\wwwroot\\..\\..\\Program Files\\x\\logon.aspx",
        "/srv/a/../b.aspx",
        "/srv/a/./b.aspx",
        "/srv/a//b.aspx",
        "C:\\x\\..",
        "T/uploads/x.zip!..\\..\\logon.aspx",
    ] {
        assert!(locate(bad, None, None).is_err(), "{bad}");
        assert!(
            locate(bad, None, Some(Path::new("/mnt/t"))).is_err(),
            "{bad}"
        );
    }
    assert!(
        locate(
            "C:\\inetpub\\wwwroot\\s.aspx",
            None,
            Some(Path::new("/mnt/t"))
        )
        .is_ok()
    );
    assert!(locate("/srv/a/b.aspx", None, None).is_ok());
}

#[test]
fn a_stub_left_half_way_is_cleaned_by_rollback() {
    let fx = fixture();
    let before = snapshot(&fx.target);
    // Stopped right after `begin stub` of the first file (start, then rename 3 steps, copy 3).
    let mut o = opts(&fx, Some(8));
    o.stub = true;
    assert!(apply(&fx.plan, &o).is_err());
    // As if the stub had been written but not yet put at the original name.
    let renamed = crate::apply::read_journal(&fx.vault.join(JOURNAL_NAME))
        .unwrap()
        .into_iter()
        .find_map(|r| match r {
            crate::apply::Record::Begin { renamed, .. } => renamed,
            _ => None,
        })
        .unwrap();
    std::fs::write(format!("{renamed}.stub"), &STUB[..10]).unwrap();
    let r = rollback(&fx.vault.join(JOURNAL_NAME), true).unwrap();
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert_eq!(snapshot(&fx.target), before);
}

#[test]
fn the_impersonated_account_is_read_from_the_rps_cat_token() {
    // The token of the ProxyShell example: Kerberos logon of exadmin@contoso.local.
    let line = "POST /autodiscover/autodiscover.json @evil.example/powershell/?X-Rps-CAT=VgEAVAdXaW5kb3dzQwBBCEtlcmJlcm9zTBdleGFkbWluQGNvbnRvc28ubG9jYWw&Email=autodiscover/autodiscover.json%3F@evil.example 443";
    assert_eq!(
        crate::plan::rps_cat_account(line).as_deref(),
        Some("exadmin@contoso.local")
    );
    assert_eq!(crate::plan::rps_cat_account("X-Rps-CAT=!!!"), None);
    assert_eq!(crate::plan::rps_cat_account("X-Rps-CAT=TP8"), None);
    assert_eq!(crate::plan::rps_cat_account("no token"), None);
}

#[test]
fn hostile_names_are_escaped_in_every_plan_format() {
    let evil = "T/inetpub/wwwroot/\u{1b}]0;owned\u{7}<img src=x onerror=alert(1)>\u{202e}xpsa.aspx";
    let p = plan(
        &result(
            "T",
            vec![finding(
                "EXH-FS-9",
                ArtefactKind::WebFile,
                Stage::Persistence,
                evil,
                "shell",
            )],
        ),
        &builds(),
        &BTreeMap::new(),
    );
    let text = crate::render::text(&p);
    assert!(!text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\u{202e}'));
    assert!(
        text.contains("\\x1b]0;owned\\x07") && text.contains("\\u{202e}"),
        "{text}"
    );
    let html = crate::render::html(&p);
    assert!(!html.contains("<img") && html.contains("&lt;img"));
    assert!(!html.contains('\u{1b}') && !html.contains('\u{202e}'));
    let json = crate::render::json(&p);
    assert!(!json.contains('\u{202e}') && json.contains("\\u202e"));
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p, "the JSON is the same plan");
}

fn scripts_of(p: &Plan) -> Vec<(crate::plan::Urgency, String, String)> {
    p.servers[0]
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::Configuration)
        .map(|a| {
            (
                a.urgency,
                a.title.clone(),
                a.powershell.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn an_internal_url_carrying_script_is_never_restored_to_itself() {
    let url = |prop: &str| {
        let mut f = finding(
            "EXH-PL-6",
            ArtefactKind::EcpServerLog,
            Stage::Persistence,
            "T/ecp.log",
            "CVE-2021-27065 script planted in Set-OabVirtualDirectory",
        );
        f.entities = Entities {
            target: Some(format!(
                "{prop}=http://f/<script language=\"JScript\" runat=\"server\">x</script>"
            )),
            ..Entities::default()
        };
        f
    };
    let p = plan(
        &result("T", vec![url("InternalUrl")]),
        &builds(),
        &BTreeMap::new(),
    );
    let s = scripts_of(&p);
    assert_eq!(s.len(), 1);
    assert!(
        !s[0].2.contains("-InternalUrl $vd.InternalUrl"),
        "{}",
        s[0].2
    );
    assert!(
        !s[0].2.contains("Set-OabVirtualDirectory -Identity $vd"),
        "{}",
        s[0].2
    );
    assert!(s[0].1.starts_with("Review by hand"), "{}", s[0].1);
    // ExternalUrl: set back only when the InternalUrl is clean.
    let p = plan(
        &result("T", vec![url("ExternalUrl")]),
        &builds(),
        &BTreeMap::new(),
    );
    let s = scripts_of(&p);
    assert!(
        s[0].2.contains("-ExternalUrl $vd.InternalUrl"),
        "{}",
        s[0].2
    );
    let check = s[0].2.find("$internal -match $exhuntScript").unwrap();
    let set = s[0].2.find("-ExternalUrl $vd.InternalUrl").unwrap();
    assert!(check < set && s[0].2.contains("continue"), "{}", s[0].2);
}

#[test]
fn the_root_of_a_site_or_an_application_is_never_deleted() {
    let vdir = |url: &str| {
        let mut f = finding(
            "EXH-PS-2",
            ArtefactKind::IisConfig,
            Stage::Persistence,
            "C:\\ProgramData\\COM",
            "IIS serves / of site \"Default Web Site\" from C:\\ProgramData\\COM: a folder under ProgramData",
        );
        f.entities.url = Some(url.to_string());
        f
    };
    let p = plan(&result("T", vec![vdir("/")]), &builds(), &BTreeMap::new());
    let s = scripts_of(&p);
    assert!(
        !s[0].2.contains("delete vdir") && !s[0].2.contains("delete app"),
        "{}",
        s[0].2
    );
    assert!(s[0].1.starts_with("Review by hand"), "{}", s[0].1);
    let p = plan(
        &result("T", vec![vdir("/owa/x")]),
        &builds(),
        &BTreeMap::new(),
    );
    let s = scripts_of(&p);
    assert!(!s[0].2.contains("delete app"), "{}", s[0].2);
    let guard = s[0]
        .2
        .find("list app ('/app.name:' + $exhuntId))) { throw")
        .unwrap();
    let delete = s[0].2.find("delete vdir").unwrap();
    assert!(guard < delete, "{}", s[0].2);
}

#[test]
fn low_confidence_and_look_alike_findings_get_review_actions_only() {
    // A legitimate PST export seen in a script block (EV-20, low): no action removes it.
    let mut pst = finding(
        "EXH-EV-20",
        ArtefactKind::EventExport,
        Stage::PostExploitation,
        "T/ps.evtx",
        "Exchange mailbox export or role cmdlet in a PowerShell script block",
    );
    pst.confidence = Confidence::Low;
    pst.entities = Entities::default();
    pst.evidence.excerpt =
        "4104; New-MailboxExportRequest -Mailbox ceo -FilePath \\\\fs01\\pst\\ceo.pst".to_string();
    let mut agent = finding(
        "EXH-EV-17",
        ArtefactKind::EventExport,
        Stage::PostExploitation,
        "T/ev.jsonl",
        "Exchange transport agent installed or enabled",
    );
    agent.confidence = Confidence::Low;
    agent.entities = Entities::default();
    agent.evidence.excerpt =
        "Cmdlet Install-TransportAgent, parameters -Name \"Filter\"".to_string();
    let mut role = agent.clone();
    role.rule_id = "EXH-EV-7".to_string();
    role.evidence.excerpt = "Cmdlet New-ManagementRoleAssignment, parameters -Role \"Mailbox Import Export\" -User \"alice\"".to_string();
    let mut group = agent.clone();
    group.rule_id = "EXH-EV-18".to_string();
    group.evidence.excerpt = "Security 4728 (x); MemberName=CN=bob; TargetUserName=Organization Management; TargetDomainName=CONTOSO".to_string();
    // A WER crash dump of w3wp and a short-named archive, on an inconclusive verdict.
    let mut wer = finding(
        "EXH-FS-5",
        ArtefactKind::MemoryDump,
        Stage::PostExploitation,
        "T/ProgramData/Microsoft/Windows/WER/ReportQueue/w3wp.exe.1234.dmp",
        "Memory dump on disk",
    );
    wer.severity = Severity::Medium;
    let archive = finding(
        "EXH-FS-6",
        ArtefactKind::Archive,
        Stage::PostExploitation,
        "T/ProgramData/a.zip",
        "Archive in a staging place",
    );
    let mut r = result("T", vec![pst, agent, role, group, wer, archive]);
    r.verdict = VerdictKind::Inconclusive;
    r.servers[0].verdict = VerdictKind::Inconclusive;
    let p = plan(&r, &builds(), &BTreeMap::new());
    let a = &p.servers[0].actions;
    for x in a.iter().filter(|a| a.kind == ActionKind::Configuration) {
        assert_eq!(x.urgency, crate::plan::Urgency::Review, "{}", x.title);
        let ps = x.powershell.as_deref().unwrap_or_default();
        for verb in [
            "Remove-",
            "Disable-",
            "Set-Content -LiteralPath $exhuntPath",
        ] {
            assert!(
                !ps.contains(verb) || verb.starts_with("Set-Content"),
                "{}: {ps}",
                x.title
            );
        }
        assert!(ps.contains("review only"), "{ps}");
    }
    assert!(
        !a.iter().any(|x| x
            .powershell
            .as_deref()
            .is_some_and(|s| s.contains("ceo.pst"))),
        "the PST export is not the attacker's by this evidence"
    );
    assert!(
        !a.iter().any(|x| x.kind == ActionKind::Quarantine),
        "{a:#?}"
    );
    assert_eq!(
        a.iter()
            .filter(|x| x.kind == ActionKind::ReviewFile)
            .count(),
        2
    );
    assert!(
        !a.iter().any(|x| x.kind == ActionKind::Credentials),
        "{a:#?}"
    );
    // An LSASS dump is enough on any verdict.
    let lsass = finding(
        "EXH-FS-5",
        ArtefactKind::MemoryDump,
        Stage::PostExploitation,
        "T/Windows/Temp/lsass.dmp",
        "Memory dump on disk",
    );
    r.servers[0].findings = vec![lsass];
    let p = plan(&r, &builds(), &BTreeMap::new());
    let a = &p.servers[0].actions;
    assert!(a.iter().any(|x| x.kind == ActionKind::Quarantine));
    assert!(a.iter().any(|x| x.kind == ActionKind::Credentials));
}

fn with_build(build: &str, mitigations: Vec<exhunt_model::Mitigation>) -> ScanResult {
    let mut r = result("T", Vec::new());
    let t = chrono::DateTime::from_timestamp(1_614_700_000, 0).unwrap_or_default();
    r.servers[0].verdicts = vec![exhunt_model::Verdict {
        campaign: Campaign::ProxyLogon,
        verdict: VerdictKind::Compromised,
        summary: String::new(),
        reasons: Vec::new(),
        window_start: t,
        window_end: None,
        first_evidence: None,
        last_evidence: None,
        builds_seen: vec![exhunt_model::BuildSeen {
            build: build.to_string(),
            first_seen: Some(t),
            fixed: None,
        }],
        patched_before_first_evidence: None,
    }];
    r.servers[0].mitigations = mitigations;
    r
}

fn patch_items(p: &Plan) -> Vec<(String, String)> {
    p.servers[0]
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::Patch)
        .flat_map(|a| a.items.iter().map(|i| (i.name.clone(), i.answer.clone())))
        .collect()
}

#[test]
fn out_of_support_products_are_said_whatever_the_campaigns() {
    // Exchange 2019 CU15 Feb26SU: every campaign fixed, the product out of support.
    let p = plan(
        &with_build("15.2.1748.43", Vec::new()),
        &builds(),
        &BTreeMap::new(),
    );
    let items = patch_items(&p);
    let support = items
        .iter()
        .find(|(n, _)| n == "support")
        .unwrap_or_else(|| panic!("{items:?}"));
    assert!(
        support.1.contains("2025-10-14") && support.1.contains("Subscription Edition"),
        "{support:?}"
    );
    // Exchange 2013: out of support since April 2023.
    let p = plan(
        &with_build("15.0.1497.2", Vec::new()),
        &builds(),
        &BTreeMap::new(),
    );
    let items = patch_items(&p);
    assert!(
        items
            .iter()
            .any(|(n, a)| n == "support" && a.contains("2023-04-11")),
        "{items:?}"
    );
    // A hotfix update is never named as the security update to install.
    let csv = [
        include_str!("../../../rules/builds/exchange-builds.csv"),
        "Exchange 2019,CU13,15.2.1258.45,Dec24HU,,unit test\n",
    ]
    .concat();
    let table = BuildTable::from_csv("test", Box::leak(csv.into_boxed_str())).unwrap();
    let p = plan(
        &with_build("15.2.1258.12", Vec::new()),
        &table,
        &BTreeMap::new(),
    );
    let items = patch_items(&p);
    let install = items.iter().find(|(n, _)| n == "install").unwrap();
    assert!(
        install.1.contains("Nov24SUv2") && !install.1.contains("HU"),
        "{install:?}"
    );
}

#[test]
fn emergency_mitigation_is_judged_campaign_by_campaign() {
    let weak = exhunt_model::Mitigation {
        campaign: Campaign::ProxyLogon,
        rule: "EOMT".to_string(),
        path: "T/web.config".to_string(),
        line: 1,
        matches: "X-AnonResource-Backend".to_string(),
        weakness: Some("the raw URL is the input: an encoded request passes".to_string()),
    };
    // Exchange 2013 CU23 base: ProxyLogon, ProxyShell and ProxyNotShell open.
    let p = plan(
        &with_build("15.0.1497.2", vec![weak]),
        &builds(),
        &BTreeMap::new(),
    );
    let items = patch_items(&p);
    let get = |c: &str| {
        items
            .iter()
            .find(|(n, _)| n.starts_with("emergency mitigation") && n.contains(c))
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("{c}: {items:?}"))
    };
    let pl = get("ProxyLogon");
    assert!(
        pl.contains("weak") && pl.contains("encoded request passes"),
        "{pl}"
    );
    let ps = get("ProxyShell");
    assert!(
        ps.contains("no URL Rewrite mitigation was ever published") && !ps.contains("apply it"),
        "{ps}"
    );
    let pns = get("ProxyNotShell");
    assert!(pns.contains("none is in the configuration"), "{pns}");
}

/// The code of a script with every string literal (and `[char]0xNNNN`, and the
/// `([string]'' + …)` that joins them) replaced by `S`, and comment lines dropped: two scripts
/// with the same skeleton differ only inside string literals. PowerShell's rules: a single
/// quote is any of `' ‘ ’ ‚ ‛`, and two of them in a row stand for one inside the literal.
fn skeleton(script: &str) -> String {
    let q = |c: char| matches!(c, '\'' | '\u{2018}'..='\u{201b}');
    let mut out = String::new();
    for line in script.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if q(c) {
                loop {
                    match chars.next() {
                        Some(c) if q(c) => {
                            if chars.peek().copied().is_some_and(q) {
                                chars.next();
                            } else {
                                break;
                            }
                        }
                        Some(_) => {}
                        // A literal that runs past the end of its line: not our form.
                        None => return format!("UNTERMINATED LITERAL in {line:?}"),
                    }
                }
                out.push('S');
            } else {
                out.push(c);
            }
        }
        out.push('\n');
    }
    let mut prev = String::new();
    let mut rx = out.clone();
    // [char]0xNNNN → S, `S + S` → S, `([string]S + S)` → S, repeatedly.
    while prev != rx {
        prev = rx.clone();
        let mut t = String::new();
        let mut rest = rx.as_str();
        while let Some(at) = rest.find("[char]0x") {
            t.push_str(&rest[..at]);
            let after = &rest[at + 8..];
            let hex = after.chars().take_while(|c| c.is_ascii_hexdigit()).count();
            if hex == 4 {
                t.push('S');
                rest = &after[4..];
            } else {
                t.push_str("[char]0x");
                rest = after;
            }
        }
        t.push_str(rest);
        rx = t.replace("S + S", "S").replace("([string]S)", "S");
    }
    rx
}

/// Every kind of script the planner writes, with `v` in each place evidence reaches.
fn all_script_kinds(v: &str) -> Vec<String> {
    let plain = v.replace(['"', ';'], "");
    let mut url = finding(
        "EXH-PL-6",
        ArtefactKind::EcpServerLog,
        Stage::Persistence,
        "T/ecp.log",
        "CVE-2021-27065 script planted in Set-OabVirtualDirectory ExternalUrl",
    );
    url.entities = Entities {
        target: Some(format!("ExternalUrl={v}")),
        ..Entities::default()
    };
    let mut vdir = finding(
        "EXH-PS-2",
        ArtefactKind::IisConfig,
        Stage::Persistence,
        v,
        &format!("IIS serves x of site \"{plain}\" from {v}: a folder under ProgramData"),
    );
    vdir.entities.url = Some(format!("/owa/{v}"));
    vdir.entities.file_path = Some(format!("C:\\ProgramData\\{v}"));
    let mut export = finding(
        "EXH-EV-6",
        ArtefactKind::EventExport,
        Stage::Persistence,
        "T/ev.jsonl",
        "export",
    );
    export.entities = Entities::default();
    export.evidence.excerpt = format!(
        "Cmdlet New-MailboxExportRequest, parameters -Mailbox \"{plain}\" -FilePath \"\\\\127.0.0.1\\c$\\inetpub\\wwwroot\\aspnet_client\\{plain}.aspx\""
    );
    let mut role = finding(
        "EXH-EV-7",
        ArtefactKind::EventExport,
        Stage::PostExploitation,
        "T/ev.jsonl",
        "Mailbox Import Export role assigned",
    );
    role.entities = Entities::default();
    role.evidence.excerpt = format!(
        "Cmdlet New-ManagementRoleAssignment, parameters -Role \"Mailbox Import Export\" -User \"{plain}\""
    );
    let mut agent = finding(
        "EXH-EV-17",
        ArtefactKind::EventExport,
        Stage::PostExploitation,
        "T/ev.jsonl",
        "Exchange transport agent installed or enabled",
    );
    agent.entities = Entities::default();
    agent.evidence.excerpt = format!(
        "Cmdlet Install-TransportAgent, parameters -Name \"{plain}\" -TransportAgentFactory \"X\""
    );
    let mut group = finding(
        "EXH-EV-18",
        ArtefactKind::Evtx,
        Stage::PostExploitation,
        "T/Security.evtx",
        "Account added to an Exchange security group",
    );
    group.entities = Entities::default();
    group.evidence.excerpt = format!(
        "Security 4728 (x); MemberName=CN={plain}; TargetUserName=G{plain}; TargetDomainName=CONTOSO"
    );
    let p = plan(
        &result("T", vec![url, vdir, export, role, agent, group]),
        &builds(),
        &BTreeMap::new(),
    );
    let mut out: Vec<(String, String)> = p.servers[0]
        .actions
        .iter()
        .filter_map(|a| a.powershell.clone().map(|s| (a.findings.join(","), s)))
        .collect();
    out.sort();
    out.into_iter().map(|(_, s)| s).collect()
}

#[test]
fn every_script_kind_keeps_hostile_values_inside_single_quoted_literals() {
    let hostile = [
        "it's",
        "'; Remove-Item C:\\ -Recurse -Force; '",
        "$(Invoke-Expression 'calc')",
        "`$env:USERNAME`n",
        "line1\nline2'; calc; '",
        "a\r\nb",
        "nul\u{0}byte",
        "\u{2028}calc\u{2029}",
        "\u{201a}; calc; \u{201b}",
        "\u{2019}; calc; \u{2018}",
        "nel\u{85}calc",
        "x\u{202e}gpj.aspx",
        "\"double\" and ''two''",
    ];
    let benign = all_script_kinds("benign");
    assert_eq!(benign.len(), 6, "six kinds: {benign:#?}");
    let shape: Vec<String> = benign.iter().map(|s| skeleton(s)).collect();
    for h in hostile {
        let scripts = all_script_kinds(h);
        assert_eq!(scripts.len(), 6, "{h:?}");
        for (i, s) in scripts.iter().enumerate() {
            // The hostile value adds no code: the same skeleton as the benign script.
            assert_eq!(skeleton(s), shape[i], "{h:?} in script {i}:\n{s}");
            for c in [
                '\u{0}', '\u{85}', '\u{2028}', '\u{2029}', '\u{201a}', '\u{201b}', '\u{202e}',
            ] {
                assert!(!s.contains(c), "{h:?}: {c:?} raw in script {i}");
            }
        }
    }
}

#[test]
fn verify_counts_as_cleaned_only_what_is_gone_from_disk() {
    let fx = fixture();
    let t = fx.target.display().to_string();
    let before = result(
        &t,
        vec![
            finding(
                "EXH-YARA-1",
                ArtefactKind::WebFile,
                Stage::Persistence,
                &format!("{t}/inetpub/wwwroot/aspnet_client/s.aspx"),
                "shell",
            ),
            finding(
                "EXH-FS-6",
                ArtefactKind::Archive,
                Stage::PostExploitation,
                &format!("{t}/ProgramData/gone.zip"),
                "archive",
            ),
        ],
    );
    // The rescan saw neither (as a rescan without the YARA rules would).
    let after = result(&t, Vec::new());
    crate::verify::check_servers(&before, &after).unwrap();
    let mut c = crate::compare(&before, &after);
    assert_eq!(c.cleaned.len(), 2);
    crate::verify::confirm_cleaned(&mut c, &fx.target);
    assert_eq!(c.cleaned.len(), 1, "{c:?}");
    assert_eq!(c.unconfirmed.len(), 1, "{c:?}");
    assert!(c.unconfirmed[0].path.ends_with("s.aspx"));
    assert!(!c.clean());
    // Another server's rescan is refused.
    let mut other = result(&t, Vec::new());
    other.servers[0].name = "EX10".to_string();
    assert!(crate::verify::check_servers(&before, &other).is_err());
    other.servers.clear();
    assert!(crate::verify::check_servers(&before, &other).is_err());
}

#[test]
fn the_vault_is_never_in_a_web_folder_even_when_the_targets_do_not_resolve() {
    let fx = fixture();
    let mut p = fx.plan.clone();
    // A plan made elsewhere: its targets do not exist here.
    p.servers[0].targets = vec!["Z:\\nowhere".to_string()];
    let before = snapshot(&fx.target);
    for vault in [
        fx.target.join("inetpub/wwwroot/aspnet_client/vault"),
        fx.target.join("root/vault"),
        fx._dir.path().join("inetpub/vault"),
    ] {
        let mut o = opts(&fx, None);
        o.vault = vault.clone();
        let err = apply(&p, &o).unwrap_err();
        assert!(err.to_string().contains("would still be served"), "{err}");
        assert!(!vault.exists());
    }
    assert_eq!(snapshot(&fx.target), before);
}

#[test]
fn rollback_follows_only_names_apply_makes() {
    let fx = fixture();
    apply(&fx.plan, &opts(&fx, None)).unwrap();
    let j = fx.vault.join(JOURNAL_NAME);
    let elsewhere = fx._dir.path().join("precious.txt");
    std::fs::write(&elsewhere, b"not apply's").unwrap();
    // The journal edited: the shell's renamed name points at another file, the dump's vault
    // copy outside the vault.
    let text = String::from_utf8(std::fs::read(&j).unwrap()).unwrap();
    let mut out = String::new();
    for l in text.lines() {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["type"] == "begin" {
            let o = v["original"].as_str().unwrap().to_string();
            if o.ends_with("s.aspx") {
                v["renamed"] = serde_json::json!(elsewhere.display().to_string());
            }
            if o.ends_with("lsass.dmp") {
                v["vault_file"] = serde_json::json!("../precious.txt");
            }
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    std::fs::write(&j, out).unwrap();
    let r = rollback(&j, true).unwrap();
    assert_eq!(r.restored.len(), 1, "{r:?}");
    assert_eq!(r.skipped.len(), 2, "{r:?}");
    assert_eq!(std::fs::read(&elsewhere).unwrap(), b"not apply's");
    assert!(
        !fx.target
            .join("inetpub/wwwroot/aspnet_client/s.aspx")
            .exists()
    );
}
