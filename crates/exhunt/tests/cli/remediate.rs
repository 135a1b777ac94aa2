//! `exhunt remediate` end to end (issue 17): the plan of each compromised example against
//! snapshots (text and JSON), apply → verify → rollback on a copy with a verified collect
//! package, a failure injected after every journal write, and the refusal without preserved
//! evidence. Apply only ever acts on copies in temporary folders.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use super::common;

fn run(dir: &Path, args: &[&str]) -> Output {
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("exhunt"))
        .current_dir(dir)
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("EXHUNT_REMEDIATE_FAIL_AFTER")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    out
}

fn set_times(dir: &Path, t: SystemTime) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            set_times(&p, t);
        } else {
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_modified(t).unwrap();
        }
    }
}

/// A copy of an example named `name` under `dir`, every file time at 2021-03-08 (file findings
/// carry the time, and the plan id hashes the findings), scanned by its relative name into
/// `dir/NAME.json`.
fn scanned_copy(dir: &Path, example: &str, name: &str) -> PathBuf {
    let copy = dir.join(name);
    common::copy_dir(&common::examples().join(example), &copy);
    set_times(
        &copy,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_615_161_600),
    );
    let out = run(
        dir,
        &[
            "scan",
            name,
            "-q",
            "--format",
            "json",
            "-o",
            &format!("{name}.json"),
        ],
    );
    // Exit 1: compromised; the clean example exits 0.
    let want = if example == "clean" { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(want), "{out:?}");
    copy
}

#[test]
fn remediate_plan_snapshots_of_the_compromised_examples() {
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let new_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/snapshots-new");
    let update = std::env::var_os("EXHUNT_UPDATE_SNAPSHOTS").is_some();
    let t = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for example in ["compromised", "proxyshell"] {
        scanned_copy(t.path(), example, example);
        for (format, ext) in [("text", "txt"), ("json", "json")] {
            let out = run(
                t.path(),
                &[
                    "remediate",
                    "plan",
                    &format!("{example}.json"),
                    "--format",
                    format,
                ],
            );
            assert_eq!(out.status.code(), Some(0), "{out:?}");
            let now = String::from_utf8(out.stdout).unwrap();
            let name = format!("remediate-{example}.{ext}");
            let file = snapshots.join(&name);
            if update {
                std::fs::write(&file, &now).unwrap();
                continue;
            }
            if std::fs::read_to_string(&file).unwrap_or_default() != now {
                std::fs::create_dir_all(&new_dir).unwrap();
                std::fs::write(new_dir.join(&name), &now).unwrap();
                failures.push(name);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "plans differ from tests/snapshots (new ones in target/snapshots-new; EXHUNT_UPDATE_SNAPSHOTS=1 accepts them): {failures:?}"
    );
}

#[test]
fn remediate_plan_ties_every_action_to_its_findings() {
    let t = tempfile::tempdir().unwrap();
    for (example, want) in [
        (
            "compromised",
            &[
                ("quarantine", "aspnet_client/discover.aspx"),
                ("quarantine", "root/output.dmp"),
                ("quarantine", "ProgramData/it.zip"),
                ("configuration", "Set-OabVirtualDirectory"),
                ("credentials", "krbtgt"),
                ("patch", "Exchange 2016 CU23"),
                ("directive", "rebuild"),
            ][..],
        ),
        (
            "proxyshell",
            &[
                ("configuration", "Remove-MailboxExportRequest"),
                ("configuration", "review only"),
                ("credentials", "exadmin@contoso.com"),
                ("patch", "May21SU"),
                ("directive", "disconnect"),
            ][..],
        ),
        // No finding at all: the checklist alone, which cites the verdict instead.
        ("clean", &[("directive", "not required by the verdict")][..]),
    ] {
        scanned_copy(t.path(), example, example);
        let out = run(
            t.path(),
            &[
                "remediate",
                "plan",
                &format!("{example}.json"),
                "--format",
                "json",
            ],
        );
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let result: serde_json::Value = serde_json::from_slice(
            &std::fs::read(t.path().join(format!("{example}.json"))).unwrap(),
        )
        .unwrap();
        let n_findings = result["servers"][0]["findings"].as_array().unwrap().len();
        let actions = plan["servers"][0]["actions"].as_array().unwrap();
        for a in actions {
            let cited = a["findings"].as_array().unwrap();
            // The actions allowed without findings, each standing on something else it names:
            // the checklist on the verdict, the move off an unsupported product on the build
            // the logs show.
            let on_verdict =
                a["kind"] == "directive" && a["why"].as_str().unwrap().starts_with("verdict ");
            let on_build = a["kind"] == "patch"
                && a["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["name"] == "build seen")
                && a["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["name"] == "support");
            assert!(
                !cited.is_empty() || on_verdict || on_build,
                "{example}: action without findings: {a}"
            );
            for f in cited {
                let i: usize = f.as_str().unwrap().trim_start_matches('F').parse().unwrap();
                assert!(i < n_findings, "{example}: {f} is not a finding");
            }
        }
        for (kind, text) in want {
            assert!(
                actions
                    .iter()
                    .any(|a| a["kind"].as_str().unwrap().starts_with(kind)
                        && a.to_string().contains(text)),
                "{example}: no {kind} action mentioning {text}"
            );
        }
        if example == "compromised" {
            // The dump and the shell are pinned by SHA-256.
            let q: Vec<_> = actions
                .iter()
                .filter(|a| a["kind"] == "quarantine")
                .collect();
            assert!(
                q.iter()
                    .all(|a| a["file"]["sha256"].as_str().is_some_and(|h| h.len() == 64))
            );
            // HTML escapes the planted script.
            let html = run(
                t.path(),
                &["remediate", "plan", "compromised.json", "--format", "html"],
            );
            let html = String::from_utf8(html.stdout).unwrap();
            assert!(
                html.contains("&lt;script language="),
                "planted script not escaped"
            );
            assert!(!html.contains("<script language="));
        }
    }
}

#[test]
fn remediate_apply_verify_rollback_on_a_copy_with_a_verified_package() {
    let t = tempfile::tempdir().unwrap();
    let srv = scanned_copy(t.path(), "compromised", "srv");
    let original = common::tree_snapshot(&srv);
    let out = run(
        t.path(),
        &[
            "remediate",
            "plan",
            "srv.json",
            "--format",
            "json",
            "-o",
            "plan.json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // No preserved evidence: refused, nothing changed, no vault.
    let out = run(
        t.path(),
        &[
            "remediate",
            "apply",
            "plan.json",
            "--vault",
            "vault",
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the evidence was not preserved"),
        "{out:?}"
    );
    assert_eq!(common::tree_snapshot(&srv), original);
    assert!(!t.path().join("vault").exists());

    // A package that does not verify is refused too.
    std::fs::write(t.path().join("bad.zip"), b"PK\x03\x04 not a package").unwrap();
    let out = run(
        t.path(),
        &[
            "remediate",
            "apply",
            "plan.json",
            "--vault",
            "vault",
            "--evidence",
            "bad.zip",
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(common::tree_snapshot(&srv), original);

    // A package that verifies but is another server's evidence is refused too.
    common::copy_dir(
        &common::examples().join("proxyshell"),
        &t.path().join("other"),
    );
    let out = run(t.path(), &["collect", "other", "-o", "other.zip", "-q"]);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{out:?}");
    let out = run(
        t.path(),
        &[
            "remediate",
            "apply",
            "plan.json",
            "--vault",
            "vault",
            "--evidence",
            "other.zip",
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds none of the"),
        "{out:?}"
    );
    assert_eq!(common::tree_snapshot(&srv), original);
    assert!(!t.path().join("vault").exists());

    // Preserve first, with collect; then a dry run changes nothing.
    let out = run(t.path(), &["collect", "srv", "-o", "srv.zip", "-q"]);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{out:?}");
    let out = run(
        t.path(),
        &[
            "remediate",
            "apply",
            "plan.json",
            "--vault",
            "vault",
            "--evidence",
            "srv.zip",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("would quarantine"));
    assert_eq!(common::tree_snapshot(&srv), original);

    let out = run(
        t.path(),
        &[
            "remediate",
            "apply",
            "plan.json",
            "--vault",
            "vault",
            "--evidence",
            "srv.zip",
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let gone = [
        "inetpub/wwwroot/aspnet_client/discover.aspx",
        "root/output.dmp",
        "ProgramData/it.zip",
    ];
    for g in gone {
        assert!(!srv.join(g).exists(), "{g} still there");
    }
    // In the vault, with the hashes of the originals.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("vault/manifest.json")).unwrap())
            .unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for f in files {
        use sha2::Digest;
        let bytes = std::fs::read(
            t.path()
                .join("vault")
                .join(f["vault_file"].as_str().unwrap()),
        )
        .unwrap();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            f["sha256"].as_str().unwrap()
        );
        let orig = original
            .iter()
            .find(|(p, _)| Path::new(f["original"].as_str().unwrap()) == p.as_path())
            .unwrap();
        assert_eq!(orig.1.2, bytes);
    }
    let journal = std::fs::read_to_string(t.path().join("vault/journal.jsonl")).unwrap();
    assert!(
        journal.lines().next().unwrap().contains("package srv.zip"),
        "{journal}"
    );

    // The rescan no longer finds them.
    let out = run(
        t.path(),
        &["remediate", "verify", "srv.json", "srv", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["remains"].as_array().unwrap().is_empty(), "{v}");
    assert!(v["new"].as_array().unwrap().is_empty(), "{v}");
    let cleaned: Vec<&str> = v["cleaned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for g in gone {
        assert!(cleaned.contains(&g), "{g} not cleaned: {cleaned:?}");
    }

    // Rollback: byte- and mtime-identical.
    // From another folder: the journal names absolute paths.
    let out = run(
        &t.path().join("vault"),
        &["remediate", "rollback", "journal.jsonl", "--yes"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(common::tree_snapshot(&srv), original);
    // And verify now says what remains.
    let out = run(t.path(), &["remediate", "verify", "srv.json", "srv"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("REMAINS"));
}

#[test]
fn remediate_apply_killed_after_each_journal_write_is_rolled_back_completely() {
    let t = tempfile::tempdir().unwrap();
    let srv = scanned_copy(t.path(), "compromised", "srv");
    let original = common::tree_snapshot(&srv);
    let out = run(
        t.path(),
        &[
            "remediate",
            "plan",
            "srv.json",
            "--format",
            "json",
            "-o",
            "plan.json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // 1 start record + per file 6 journal writes and 3 filesystem steps (renamed, copied,
    // removed), 3 files.
    for n in 1..=28 {
        let vault = format!("vault{n}");
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("exhunt"))
            .current_dir(t.path())
            .args([
                "remediate",
                "apply",
                "plan.json",
                "--vault",
                &vault,
                "--no-preserve",
                "test copy",
                "--yes",
            ])
            .env("EXHUNT_REMEDIATE_FAIL_AFTER", n.to_string())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "write {n}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("after step {n}")),
            "{out:?}"
        );
        let out = run(
            t.path(),
            &[
                "remediate",
                "rollback",
                &format!("{vault}/journal.jsonl"),
                "--yes",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "write {n}: {out:?}");
        assert_eq!(
            common::tree_snapshot(&srv),
            original,
            "not restored after a stop at journal write {n}"
        );
    }
}

#[test]
fn remediate_errors_show_hostile_paths_escaped() {
    let t = tempfile::tempdir().unwrap();
    let evil = "x\u{1b}]0;owned\u{7}\u{202e}gpj.aspx";
    for args in [
        vec!["remediate", "rollback", evil, "--yes"],
        vec!["remediate", "plan", evil],
    ] {
        let out = run(t.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains('\u{1b}') && !err.contains('\u{7}') && !err.contains('\u{202e}'),
            "{err:?}"
        );
        assert!(err.contains("\\x1b]0;owned\\x07\\u{202e}"), "{err:?}");
    }
}

#[test]
fn remediate_verify_refuses_a_rescan_of_another_target() {
    let t = tempfile::tempdir().unwrap();
    scanned_copy(t.path(), "compromised", "srv");
    // An empty folder (a wrong --target) would make every finding look cleaned.
    std::fs::create_dir(t.path().join("empty")).unwrap();
    let out = run(t.path(), &["remediate", "verify", "srv.json", "empty"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not show the server"), "{err}");
    assert!(out.stdout.is_empty(), "{out:?}");
    // Another server's copy neither.
    scanned_copy(t.path(), "proxyshell", "other");
    let out = run(t.path(), &["remediate", "verify", "srv.json", "other"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // The earlier scan's rule files must be readable for the rescan.
    let mut r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("srv.json")).unwrap()).unwrap();
    r["rules"]["yara_files"] = serde_json::json!(["gone/rules.yar"]);
    std::fs::write(t.path().join("yara.json"), r.to_string()).unwrap();
    let out = run(t.path(), &["remediate", "verify", "yara.json", "srv"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--yara"),
        "{out:?}"
    );
}

#[test]
fn remediate_rollback_leaves_a_changed_file_restores_the_rest_and_exits_3() {
    let t = tempfile::tempdir().unwrap();
    let srv = scanned_copy(t.path(), "compromised", "srv");
    let original = common::tree_snapshot(&srv);
    let out = run(
        t.path(),
        &[
            "remediate",
            "plan",
            "srv.json",
            "--format",
            "json",
            "-o",
            "plan.json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = run(
        t.path(),
        &[
            "remediate",
            "apply",
            "plan.json",
            "--vault",
            "vault",
            "--no-preserve",
            "test copy",
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // A page rebuilt at one of the paths since apply.
    let shell = srv.join("inetpub/wwwroot/aspnet_client/discover.aspx");
    std::fs::write(&shell, b"rebuilt").unwrap();
    let out = run(
        t.path(),
        &["remediate", "rollback", "vault/journal.jsonl", "--yes"],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("changed since apply") && err.contains("partial"),
        "{err}"
    );
    assert_eq!(std::fs::read(&shell).unwrap(), b"rebuilt");
    for g in ["root/output.dmp", "ProgramData/it.zip"] {
        assert!(srv.join(g).exists(), "{g} not restored");
    }
    let now = common::tree_snapshot(&srv);
    assert_eq!(now.len(), original.len());
}
