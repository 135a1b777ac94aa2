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
