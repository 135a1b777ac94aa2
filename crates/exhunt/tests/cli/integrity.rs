//! Evidence is sacred: a scan changes no file's content, size or modification time, and needs
//! no right to write anything (it runs here on a read-only copy, as an unprivileged user when
//! the tests run as root).

use std::io::Write;

use crate::common;
use common::{copy_dir, examples, tree_snapshot as snapshot};

#[test]
fn a_scan_changes_nothing_and_needs_no_write_access() {
    let t = tempfile::tempdir().unwrap();
    let ev = t.path().join("evidence");
    copy_dir(&examples().join("compromised"), &ev);
    // A triage zip next to the tree, read in place.
    let zip_path = ev.join("triage.zip");
    {
        let mut zw = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        zw.start_file("Logging/HttpProxy/Ecp/HttpProxy_2021030302-9.LOG", opts)
            .unwrap();
        zw.write_all(
            b"#Log-type: HttpProxy Logs\r\n#Fields: DateTime,AnchorMailbox,HttpStatus\r\n",
        )
        .unwrap();
        zw.finish().unwrap();
    }
    let before = snapshot(&ev);
    let out_dir = tempfile::tempdir().unwrap();
    let result = out_dir.path().join("r.json");
    let args = [
        "scan".as_ref(),
        ev.as_os_str(),
        "--deep".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "-o".as_ref(),
        result.as_os_str(),
    ];
    // The output folder must be writable by the scanning user.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out_dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let Some(out) = common::run_read_only(t.path(), &args) else {
        eprintln!("skipped: cannot drop privileges here (root without setpriv)");
        common::make_writable(t.path());
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
    assert_eq!(v["verdict"], "compromised");
    // Nothing the scan needed was refused: it never asked to write.
    let problems = v["servers"][0]["coverage"]["problems"].to_string();
    assert!(!problems.contains("permission denied"), "{problems}");
    let after = snapshot(&ev);
    assert_eq!(before.len(), after.len(), "no file appeared or disappeared");
    for (p, b) in &before {
        assert_eq!(Some(b), after.get(p), "{} changed", p.display());
    }
    common::make_writable(t.path());
}
