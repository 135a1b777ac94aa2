//! Snapshot tests of every output format of every example (issue 14): a change to a renderer,
//! a rule's text or a verdict shows up as a reviewed change of a file under `tests/snapshots/`.
//!
//! The examples are copied with every file time set to 2021-03-08 (file findings carry the
//! file's modification time, which a checkout sets to the clone time) and scanned by their
//! relative name; the scan's own start and end times are the only other varying values and are
//! replaced. `EXHUNT_UPDATE_SNAPSHOTS=1 cargo test -p exhunt --test cli snapshots` rewrites the
//! files; otherwise a difference fails and the new output is left in `target/snapshots-new/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::common;

const FORMATS: [(&str, &str); 6] = [
    ("text", "txt"),
    ("json", "json"),
    ("jsonl", "jsonl"),
    ("csv", "csv"),
    ("timeline", "timeline.jsonl"),
    ("html", "html"),
];

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

/// Replaces the value after each `key` up to `end` with `with`.
fn replace_after(s: &str, key: &str, end: char, with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i + key.len()]);
        rest = &rest[i + key.len()..];
        let j = rest.find(end).unwrap_or(rest.len());
        out.push_str(with);
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

fn normalise(format: &str, out: &str) -> String {
    match format {
        "json" => {
            let s = replace_after(out, "\"started\": \"", '"', "STARTED");
            replace_after(&s, "\"finished\": \"", '"', "FINISHED")
        }
        "html" => replace_after(out, " · scanned ", '·', "START → END "),
        _ => out.to_string(),
    }
}

fn first_difference(a: &str, b: &str) -> String {
    for (n, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            let cut = |s: &str| s.chars().take(300).collect::<String>();
            return format!(
                "line {}:\n  snapshot: {}\n  now:      {}",
                n + 1,
                cut(x),
                cut(y)
            );
        }
    }
    format!(
        "lengths differ: snapshot {} lines, now {} lines",
        a.lines().count(),
        b.lines().count()
    )
}

#[test]
fn every_output_format_of_every_example_matches_its_snapshot() {
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let new_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/snapshots-new");
    let update = std::env::var_os("EXHUNT_UPDATE_SNAPSHOTS").is_some();
    let t = tempfile::tempdir().unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_615_161_600); // 2021-03-08
    let mut failures = Vec::new();
    for example in ["compromised", "clean", "late-logs", "proxyshell"] {
        let copy: PathBuf = t.path().join(example);
        common::copy_dir(&common::examples().join(example), &copy);
        set_times(&copy, when);
        for (format, ext) in FORMATS {
            let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("exhunt"))
                .current_dir(t.path())
                .args(["scan", example, "--no-color", "-q", "--format", format])
                .env_remove("NO_COLOR")
                .output()
                .unwrap();
            assert!(
                matches!(out.status.code(), Some(0 | 1 | 3)),
                "{example} {format}: {out:?}"
            );
            let now = normalise(format, &String::from_utf8(out.stdout).unwrap());
            let name = format!("{example}.{ext}");
            let file = snapshots.join(&name);
            if update {
                std::fs::write(&file, &now).unwrap();
                continue;
            }
            let before = std::fs::read_to_string(&file).unwrap_or_default();
            if before != now {
                std::fs::create_dir_all(&new_dir).unwrap();
                std::fs::write(new_dir.join(&name), &now).unwrap();
                failures.push(format!("{name}: {}", first_difference(&before, &now)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "outputs differ from tests/snapshots (new outputs in target/snapshots-new; EXHUNT_UPDATE_SNAPSHOTS=1 accepts them):\n{}",
        failures.join("\n")
    );
}
