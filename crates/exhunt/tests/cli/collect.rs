//! `exhunt collect`: a package of the compromised example scans like the example itself, at the
//! original paths; `--verify` catches a changed byte; the source is left as it was.

use std::path::Path;

use serde_json::Value;

use super::{examples, exhunt};

fn collect(target: &Path, package: &Path, extra: &[&str]) -> std::process::Output {
    exhunt()
        .arg("collect")
        .arg(target)
        .arg("-o")
        .arg(package)
        .args(extra)
        .output()
        .unwrap()
}

fn scan(target: &Path) -> (i32, Value) {
    let out = exhunt()
        .arg("scan")
        .arg(target)
        .args(["--format", "json", "-q"])
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

/// Verdicts, findings (rule, path, line, time, excerpt) and story of the first server.
fn judged(v: &Value) -> (Value, Vec<Value>, Value) {
    let s = &v["servers"][0];
    let findings = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            serde_json::json!([
                f["rule_id"],
                f["evidence"]["path"],
                f["evidence"]["line"],
                f["timestamp"],
                f["evidence"]["excerpt"]
            ])
        })
        .collect();
    (s["verdicts"].clone(), findings, s["story"].clone())
}

#[test]
fn a_package_scans_like_the_server_at_its_original_paths() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("C");
    super::common::copy_dir(&examples().join("compromised"), &src);
    let before = super::common::tree_snapshot(&src);
    let out_dir = tempfile::tempdir().unwrap();
    let package = out_dir.path().join("ex01.zip");
    let out = collect(&src, &package, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The package hash is printed and written beside the package.
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let beside = std::fs::read_to_string(out_dir.path().join("ex01.zip.sha256")).unwrap();
    assert_eq!(printed, beside);
    use sha2::Digest as _;
    let actual = hex::encode(sha2::Sha256::digest(std::fs::read(&package).unwrap()));
    assert!(printed.starts_with(&actual), "{printed} vs {actual}");

    let (code_src, v_src) = scan(&src);
    let (code_pkg, v_pkg) = scan(&package);
    assert_eq!(code_src, 1);
    assert_eq!(code_pkg, code_src);
    assert_eq!(v_pkg["verdict"], v_src["verdict"]);
    let (verdicts_src, findings_src, story_src) = judged(&v_src);
    let (verdicts_pkg, findings_pkg, story_pkg) = judged(&v_pkg);
    assert!(findings_src.len() > 10);
    assert_eq!(verdicts_pkg, verdicts_src);
    assert_eq!(findings_pkg, findings_src);
    assert_eq!(story_pkg, story_src);
    // Original paths, not `ex01.zip!files/…`.
    let web_shell = findings_pkg
        .iter()
        .find(|f| f[1].as_str().unwrap().ends_with("discover.aspx"))
        .expect("web shell finding");
    assert!(
        web_shell[1]
            .as_str()
            .unwrap()
            .starts_with(src.to_str().unwrap()),
        "{web_shell}"
    );

    // The manifest: every file with its original path, times and hash; nothing left out.
    let mut z = zip::ZipArchive::new(std::fs::File::open(&package).unwrap()).unwrap();
    let manifest: Value =
        serde_json::from_reader(z.by_name("exhunt-manifest.json").unwrap()).unwrap();
    assert_eq!(manifest["format"], "exhunt-collect/1");
    assert!(
        manifest["collector"]
            .as_str()
            .unwrap()
            .starts_with("exhunt ")
    );
    let install = manifest["exchange_install_path"].as_str().unwrap();
    assert!(install.ends_with("V15"), "{install}");
    assert_eq!(manifest["exchange_build"], "15.1.2176.2");
    let files = manifest["files"].as_array().unwrap();
    let dmp = files
        .iter()
        .find(|f| f["original"].as_str().unwrap().ends_with("output.dmp"))
        .unwrap();
    assert_eq!(dmp["member"], "files/root/output.dmp");
    assert!(dmp["modified"].is_string() && dmp["accessed"].is_string());
    assert_eq!(dmp["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["not_collected"], serde_json::json!([]));

    // Verified, then one changed byte inside a member is found.
    let ok = exhunt()
        .args(["collect", "--verify"])
        .arg(&package)
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut bytes = std::fs::read(&package).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == b"root/output")
        .expect("member header");
    // The dump is stored deflated right after its local header; change a byte of its data.
    bytes[at + 60] ^= 0x55;
    std::fs::write(&package, &bytes).unwrap();
    let bad = exhunt()
        .args(["collect", "--verify"])
        .arg(&package)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("DIFFERS"), "{err}");
    // Without the package hash beside it, the member's own hash or CRC still tells.
    std::fs::remove_file(out_dir.path().join("ex01.zip.sha256")).unwrap();
    let bad = exhunt()
        .args(["collect", "--verify"])
        .arg(&package)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("output.dmp"), "{err}");

    // The source: byte- and mtime-identical, nothing added.
    assert_eq!(super::common::tree_snapshot(&src), before);
}

#[test]
fn the_package_is_never_written_inside_the_target_nor_over_another() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("C");
    super::common::copy_dir(&examples().join("clean"), &src);
    let inside = src.join("inetpub").join("p.zip");
    let out = collect(&src, &inside, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside the evidence"));
    assert!(!inside.exists());
    let out_dir = tempfile::tempdir().unwrap();
    let package = out_dir.path().join("p.zip");
    std::fs::write(&package, b"previous").unwrap();
    let out = collect(&src, &package, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(&package).unwrap(), b"previous");
}

#[test]
fn a_size_limit_keeps_the_most_important_and_lists_the_rest() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("C");
    super::common::copy_dir(&examples().join("compromised"), &src);
    let out_dir = tempfile::tempdir().unwrap();
    let package = out_dir.path().join("small.zip");
    let out = collect(&src, &package, &["--max-size", "100K"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("did not fit"), "{stderr}");
    let mut z = zip::ZipArchive::new(std::fs::File::open(&package).unwrap()).unwrap();
    let manifest: Value =
        serde_json::from_reader(z.by_name("exhunt-manifest.json").unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    let total: u64 = files.iter().map(|f| f["size"].as_u64().unwrap()).sum();
    assert!(total <= 100 << 10, "{total}");
    // Scripts and configurations first.
    assert!(
        files
            .iter()
            .any(|f| f["original"].as_str().unwrap().ends_with("discover.aspx"))
    );
    let left = manifest["not_collected"].as_array().unwrap();
    assert!(!left.is_empty());
    assert!(
        left.iter().all(|n| n["evidence_lost"] == true
            && n["reason"].as_str().unwrap().starts_with("did not fit"))
    );
    // A scan of the package says the evidence is incomplete, never "no evidence".
    let (_, v) = scan(&package);
    let problems = v["servers"][0]["coverage"]["problems"].to_string();
    assert!(problems.contains("not in the package"), "{problems}");
}

#[test]
fn an_unreadable_log_is_listed_and_the_package_is_incomplete() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("C");
    super::common::copy_dir(&examples().join("compromised"), &src);
    let locked = src
        .join("Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/Ecp")
        .join("HttpProxy_2021030302-1.LOG");
    let out_dir = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out_dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let package = out_dir.path().join("p.zip");
    let args = [
        "collect".as_ref(),
        src.as_os_str(),
        "-o".as_ref(),
        package.as_os_str(),
    ];
    let Some(out) = super::common::run_without_access(t.path(), &locked, &args) else {
        eprintln!("skipped: cannot make a file unreadable here (root without setpriv)");
        super::common::make_writable(t.path());
        return;
    };
    super::common::make_writable(t.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    let mut z = zip::ZipArchive::new(std::fs::File::open(&package).unwrap()).unwrap();
    let manifest: Value =
        serde_json::from_reader(z.by_name("exhunt-manifest.json").unwrap()).unwrap();
    let left = manifest["not_collected"].as_array().unwrap();
    let entry = left
        .iter()
        .find(|n| n["original"] == locked.to_str().unwrap())
        .expect("the locked log is listed");
    assert_eq!(entry["evidence_lost"], true);
    assert_eq!(entry["reason"], "permission denied");
    // The other files are there, and a scan of the package names what it lacks.
    assert!(manifest["files"].as_array().unwrap().len() > 100);
    let (_, v) = scan(&package);
    let problems = v["servers"][0]["coverage"]["problems"].to_string();
    assert!(
        problems.contains("HttpProxy_2021030302-1.LOG"),
        "{problems}"
    );
}
