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
