//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Output;

/// The bundled example servers.
#[allow(dead_code)]
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// `exhunt scan TARGET EXTRA… --format json -q`: the exit code and the parsed result. Fails the
/// test on a panic or on output that is not JSON.
#[allow(dead_code)]
pub fn scan_json(target: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("exhunt"))
        .arg("scan")
        .arg(target)
        .args(extra)
        .args(["--format", "json", "-q"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    (out.status.code().unwrap(), v)
}

/// `../shared/data` (public sample data), or `None` with a printed reason when this machine
/// does not have it: tests that need it then pass without checking anything, as DESIGN.md asks.
#[allow(dead_code)]
pub fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipped: ../shared/data is not present on this machine");
        None
    }
}

/// Copies a folder tree (files and folders only).
#[allow(dead_code)]
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Runs `exhunt ARGS` so that a file with mode 000 is unreadable to it: directly when the tests
/// do not run as root, else as user `nobody` through `setpriv` (the tree is made world-readable
/// first, except `locked`). `None` when neither is possible here.
#[allow(dead_code)]
pub fn run_without_access(root: &Path, locked: &Path, args: &[&std::ffi::OsStr]) -> Option<Output> {
    set_mode(locked, 0o000);
    if std::fs::File::open(locked).is_err() {
        return Some(
            std::process::Command::new(assert_cmd::cargo::cargo_bin("exhunt"))
                .args(args)
                .output()
                .unwrap(),
        );
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    make_world_readable(root);
    set_mode(locked, 0o000);
    let out = std::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("exhunt"))
        .args(args)
        .output()
        .unwrap();
    if out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("Permission denied") {
        eprintln!(
            "the unprivileged user cannot run the test binary here: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(out)
}

fn set_mode(p: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    {
        let _ = (p, mode);
    }
}

fn make_world_readable(p: &Path) {
    #[cfg(not(unix))]
    let _ = p;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut cur = Some(p);
        while let Some(d) = cur {
            if let Ok(m) = std::fs::metadata(d) {
                let _ = std::fs::set_permissions(
                    d,
                    std::fs::Permissions::from_mode(m.permissions().mode() | 0o005),
                );
            }
            cur = d.parent();
        }
        for e in walk_all(p) {
            let m = std::fs::metadata(&e).unwrap();
            let add = if m.is_dir() { 0o005 } else { 0o004 };
            std::fs::set_permissions(
                &e,
                std::fs::Permissions::from_mode(m.permissions().mode() | add),
            )
            .unwrap();
        }
    }
}

fn walk_all(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk_all(&p));
        }
        out.push(p);
    }
    out
}

/// Runs `exhunt ARGS` with no right to change anything under `root`: the tree is made read-only
/// (and world-readable); as root, exhunt runs as `nobody` through `setpriv`, since root ignores
/// file modes. `None` when that is not possible here.
#[allow(dead_code)]
pub fn run_read_only(root: &Path, args: &[&std::ffi::OsStr]) -> Option<Output> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        make_world_readable(root);
        for e in walk_all(root) {
            let m = std::fs::symlink_metadata(&e).unwrap();
            if m.file_type().is_symlink() {
                continue;
            }
            let mode = m.permissions().mode() & !0o222;
            std::fs::set_permissions(&e, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let root_mode = std::fs::metadata(root).unwrap().permissions().mode() & !0o222;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(root_mode)).unwrap();
    }
    #[cfg(not(unix))]
    for e in walk_all(root) {
        // Windows: the read-only attribute on every file (folders ignore it).
        let mut perm = std::fs::metadata(&e).unwrap().permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(&e, perm).unwrap();
    }
    let bin = assert_cmd::cargo::cargo_bin("exhunt");
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if !is_root {
        return Some(std::process::Command::new(bin).args(args).output().unwrap());
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let out = std::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin)
        .args(args)
        .output()
        .unwrap();
    if out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("Permission denied") {
        return None;
    }
    Some(out)
}

/// Makes a tree writable again (so a temporary folder can be removed).
#[allow(dead_code)]
pub fn make_writable(root: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in std::iter::once(root.to_path_buf()).chain(walk_all(root)) {
            if let Ok(m) = std::fs::symlink_metadata(&p)
                && !m.file_type().is_symlink()
            {
                let _ = std::fs::set_permissions(
                    &p,
                    std::fs::Permissions::from_mode(m.permissions().mode() | 0o200),
                );
            }
        }
    }
    #[cfg(not(unix))]
    for p in walk_all(root) {
        if let Ok(m) = std::fs::metadata(&p) {
            let mut perm = m.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            let _ = std::fs::set_permissions(&p, perm);
        }
    }
}

/// path → (size, modification time, content) of every file under `root`: compared before and
/// after a command to show it changed nothing.
#[allow(dead_code)]
pub fn tree_snapshot(
    root: &Path,
) -> std::collections::BTreeMap<PathBuf, (u64, std::time::SystemTime, Vec<u8>)> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let m = std::fs::metadata(&p).unwrap();
                let content = std::fs::read(&p).unwrap();
                out.insert(p, (m.len(), m.modified().unwrap(), content));
            }
        }
    }
    out
}
