//! Everything that differs between operating systems: owner and permissions, file times,
//! making a directory entry durable. The rest of the crate is portable.
//!
//! Unix: owner (uid, gid) and mode are recorded and restored (the owner only when the process
//! may). Windows: the read-only attribute and the creation time are recorded and restored; ACLs
//! are not read (that needs the Win32 security API, which this crate does not bind), and the
//! manifest says so.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Owner and permissions of a file, as far as the platform gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Unix user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Unix group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Unix permission bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Read-only attribute.
    pub readonly: bool,
    /// What was not recorded on this platform.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Reads owner and permissions.
pub fn owner(meta: &Metadata) -> Owner {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Owner {
            uid: Some(meta.uid()),
            gid: Some(meta.gid()),
            mode: Some(meta.mode() & 0o7777),
            readonly: meta.permissions().readonly(),
            note: String::new(),
        }
    }
    #[cfg(not(unix))]
    {
        Owner {
            readonly: meta.permissions().readonly(),
            note: "ACL not recorded on this platform (read-only attribute only)".to_string(),
            ..Owner::default()
        }
    }
}

/// Restores owner and permissions; a change of owner the process may not make is reported in
/// the returned note, not as an error (the bytes and times are what matter to the evidence).
pub fn restore_owner(path: &Path, o: &Owner) -> io::Result<Option<String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mut note = None;
        let now = std::fs::metadata(path)?;
        if let (Some(uid), Some(gid)) = (o.uid, o.gid)
            && (now.uid() != uid || now.gid() != gid)
            && let Err(e) = std::os::unix::fs::chown(path, Some(uid), Some(gid))
        {
            note = Some(format!("owner {uid}:{gid} not restored: {e}"));
        }
        if let Some(mode) = o.mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        Ok(note)
    }
    #[cfg(not(unix))]
    {
        let mut p = std::fs::metadata(path)?.permissions();
        p.set_readonly(o.readonly);
        std::fs::set_permissions(path, p)?;
        Ok(None)
    }
}

/// Sets a file's modification and access times (and creation time where the platform can).
pub fn set_times(
    f: &File,
    modified: SystemTime,
    accessed: Option<SystemTime>,
    created: Option<SystemTime>,
) -> io::Result<()> {
    let mut t = std::fs::FileTimes::new().set_modified(modified);
    if let Some(a) = accessed {
        t = t.set_accessed(a);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileTimesExt;
        if let Some(c) = created {
            t = t.set_created(c);
        }
    }
    #[cfg(not(windows))]
    let _ = created;
    f.set_times(t)
}

/// Makes the directory entries of `dir` durable (a created, renamed or removed file).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(windows)]
    {
        // A directory handle needs FILE_FLAG_BACKUP_SEMANTICS; FlushFileBuffers on it may be
        // refused (it needs write access). Best effort: unverified without a Windows build, so
        // a refusal is not an error (NTFS journals its metadata).
        use std::os::windows::fs::OpenOptionsExt;
        const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000;
        if let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
            .open(dir)
        {
            let _ = f.sync_all();
        }
        Ok(())
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Before a file is renamed or removed: Windows refuses both on a read-only file, so the
/// attribute is cleared (it is recorded in the journal and restored with the vault copy; a
/// file renamed back keeps it cleared — unverified without a Windows build). Nothing on Unix.
pub fn prepare_rename(path: &Path) -> io::Result<()> {
    #[cfg(windows)]
    {
        let mut p = std::fs::metadata(path)?.permissions();
        if p.readonly() {
            #[allow(clippy::permissions_set_readonly_false)]
            p.set_readonly(false);
            std::fs::set_permissions(path, p)?;
        }
        Ok(())
    }
    #[cfg(not(windows))]
    {
        let _ = path;
        Ok(())
    }
}
