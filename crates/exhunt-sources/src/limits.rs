//! Resource limits. Each limit that is hit is reported in the coverage ledger, never silently
//! applied; the README documents the defaults.

/// Limits applied while reading evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line a reader splits into fields; a longer line is skipped and reported.
    pub max_line_bytes: usize,
    /// Most members read from one zip archive.
    pub max_zip_entries: usize,
    /// Most bytes decompressed from one zip member.
    pub max_entry_bytes: u64,
    /// Most bytes decompressed from one zip archive in total.
    pub max_archive_bytes: u64,
    /// Highest decompressed/compressed ratio of a member, checked once
    /// [`Limits::ratio_grace_bytes`] have been decompressed.
    pub max_ratio: u64,
    /// Bytes a member may decompress before the ratio limit applies.
    pub ratio_grace_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 1024 * 1024,
            max_zip_entries: 200_000,
            max_entry_bytes: 16 * 1024 * 1024 * 1024,
            max_archive_bytes: 64 * 1024 * 1024 * 1024,
            max_ratio: 500,
            ratio_grace_bytes: 16 * 1024 * 1024,
        }
    }
}
