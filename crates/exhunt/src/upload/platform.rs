//! What the upload client asks of the operating system (the one place with `cfg` for it).

use std::fs::Metadata;

/// The permission bits of a file that let users other than its owner read or write it, when
/// the system has such bits (Unix: group and others; `None` elsewhere, where access is an ACL
/// this client does not judge).
pub(crate) fn open_to_others(meta: &Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}
