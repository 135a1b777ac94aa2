//! The one place for platform-specific code. Everything else handles paths as `Path`/`OsStr`
//! and Windows paths inside evidence as data.

/// The default Exchange install folder on the host this runs on, when it is a live server.
#[allow(dead_code)]
pub fn default_exchange_path() -> Option<std::path::PathBuf> {
    #[cfg(windows)]
    {
        let pf = std::env::var_os("ProgramFiles")?;
        let p = std::path::Path::new(&pf)
            .join("Microsoft")
            .join("Exchange Server")
            .join("V15");
        p.is_dir().then_some(p)
    }
    #[cfg(not(windows))]
    {
        None
    }
}

/// Hidden and system attributes of a file, where the platform has them (Windows); `(None, None)`
/// elsewhere. A hidden+system web shell was what Microsoft's hash script missed (CSS-Exchange #410).
pub fn hidden_system(path: &std::path::Path) -> (Option<bool>, Option<bool>) {
    #[cfg(windows)]
    {
        use std::os::windows::fs::MetadataExt;
        const HIDDEN: u32 = 0x2;
        const SYSTEM: u32 = 0x4;
        match std::fs::symlink_metadata(path) {
            Ok(m) => {
                let a = m.file_attributes();
                (Some(a & HIDDEN != 0), Some(a & SYSTEM != 0))
            }
            Err(_) => (None, None),
        }
    }
    #[cfg(not(windows))]
    {
        let _ = path;
        (None, None)
    }
}

/// How [`open_evidence`] opened a file, for the manifest.
pub const READ_HOW: &str = if cfg!(windows) {
    "read-only, sharing read/write/delete with the writer, backup semantics, reparse points not followed"
} else if cfg!(target_os = "linux") {
    "read-only, O_NOFOLLOW, O_NOATIME where permitted"
} else if cfg!(unix) {
    "read-only, O_NOFOLLOW"
} else {
    "read-only"
};

/// Opens a file of the evidence read-only without changing it: on Linux without updating its
/// access time (`O_NOATIME`, refused by the kernel unless the caller owns the file or has
/// `CAP_FOWNER`: then opened without it), never through a symbolic link (`O_NOFOLLOW`); on
/// Windows sharing read, write and delete with the program that holds it (IIS writing its log)
/// and with backup semantics, without following reparse points. The second value says whether
/// the access time is known to be left alone.
pub fn open_evidence(path: &std::path::Path) -> std::io::Result<(std::fs::File, bool)> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut first = o.clone();
        first.custom_flags(libc::O_NOFOLLOW | libc::O_NOATIME);
        match first.open(path) {
            Ok(f) => return Ok((f, true)),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            Err(e) => return Err(e),
        }
        o.custom_flags(libc::O_NOFOLLOW);
        o.open(path).map(|f| (f, false))
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOFOLLOW is 0x100 on the BSDs and macOS.
        o.custom_flags(0x100);
        o.open(path).map(|f| (f, false))
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        const FILE_SHARE_READ_WRITE_DELETE: u32 = 0x1 | 0x2 | 0x4;
        const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000;
        const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
        o.share_mode(FILE_SHARE_READ_WRITE_DELETE)
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT);
        o.open(path).map(|f| (f, false))
    }
    #[cfg(not(any(unix, windows)))]
    {
        o.open(path).map(|f| (f, false))
    }
}

/// Whether an open failed because another program holds the file without sharing it
/// (Windows `ERROR_SHARING_VIOLATION`, `ERROR_LOCK_VIOLATION`): the EventLog service's hold on
/// its `.evtx` files.
pub fn is_sharing_violation(e: &std::io::Error) -> bool {
    #[cfg(windows)]
    {
        matches!(e.raw_os_error(), Some(32) | Some(33))
    }
    #[cfg(not(windows))]
    {
        let _ = e;
        false
    }
}

/// Exports the event log whose file is `evtx` (its channel is the file name, `%4` standing for
/// `/`) to `dest` through the event log API (`wevtutil epl`), for a log the EventLog service
/// holds open. Windows only; elsewhere an `Unsupported` error.
pub fn export_event_log(evtx: &std::path::Path, dest: &std::path::Path) -> std::io::Result<()> {
    #[cfg(windows)]
    {
        let channel = evtx
            .file_stem()
            .map(|s| s.to_string_lossy().replace("%4", "/"))
            .ok_or_else(|| std::io::Error::other("no channel name"))?;
        let status = std::process::Command::new("wevtutil.exe")
            .arg("epl")
            .arg(&channel)
            .arg(dest)
            .arg("/ow:true")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "wevtutil epl {channel} failed ({status})"
            )))
        }
    }
    #[cfg(not(windows))]
    {
        let _ = (evtx, dest);
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "event log export needs Windows",
        ))
    }
}

/// The Exchange install folder of the live server this runs on: the registry
/// (`HKLM\SOFTWARE\Microsoft\ExchangeServer\v15\Setup`, `MsiInstallPath`, read with `reg.exe`),
/// then the `ExchangeInstallPath` variable, then the default layout. `None` off Windows.
pub fn live_exchange_path() -> Option<std::path::PathBuf> {
    #[cfg(windows)]
    {
        let out = std::process::Command::new("reg.exe")
            .args([
                "query",
                r"HKLM\SOFTWARE\Microsoft\ExchangeServer\v15\Setup",
                "/v",
                "MsiInstallPath",
            ])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok();
        let from_registry = out.and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines().find_map(|l| {
                let (_, value) = l.split_once("REG_SZ")?;
                let v = value.trim();
                (!v.is_empty()).then(|| std::path::PathBuf::from(v))
            })
        });
        from_registry
            .or_else(|| std::env::var_os("ExchangeInstallPath").map(std::path::PathBuf::from))
            .filter(|p| p.is_dir())
            .or_else(default_exchange_path)
    }
    #[cfg(not(windows))]
    {
        None
    }
}

/// The folders a live collection walks, each with the prefix its files get in a package: the
/// system drive (no prefix, so the package looks like an image of `C:\`) and the drive of the
/// Exchange install when it is another (`D_`). `None` where there is no live Exchange server to
/// collect from (any OS but Windows).
pub fn live_roots() -> Option<Vec<(std::path::PathBuf, String)>> {
    #[cfg(windows)]
    {
        let sys = std::env::var_os("SystemDrive").unwrap_or_else(|| "C:".into());
        let mut sys_root = std::path::PathBuf::from(&sys);
        sys_root.push("\\");
        let mut roots = vec![(sys_root.clone(), String::new())];
        if let Some(ex) = live_exchange_path()
            && let Some(std::path::Component::Prefix(p)) = ex.components().next()
        {
            let drive = p.as_os_str().to_string_lossy().to_string();
            let sys_drive = sys.to_string_lossy().to_string();
            if !drive.eq_ignore_ascii_case(&sys_drive) {
                let letter = drive.trim_end_matches(':').to_string();
                let mut root = std::path::PathBuf::from(&drive);
                root.push("\\");
                roots.push((root, format!("{letter}_")));
            }
        }
        Some(roots)
    }
    #[cfg(not(windows))]
    {
        None
    }
}

/// The name of the host this runs on.
pub fn host_name() -> Option<String> {
    #[cfg(windows)]
    {
        std::env::var("COMPUTERNAME").ok()
    }
    #[cfg(not(windows))]
    {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
    }
}
