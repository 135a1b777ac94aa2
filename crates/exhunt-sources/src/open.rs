//! Opening an item and recognising it: its first bytes, its text encoding, a gzip wrapper
//! unwrapped when a log is inside, and its artefact kind by path and content. The engine gets a
//! stream positioned after the first bytes and decides which reader to run; nothing here checks.

use std::io::{Cursor, Read};

use exhunt_model::ArtefactKind;

use crate::classify::{Classification, classify, worth_sniffing};
use crate::decode::{TextEncoding, decode_head, sniff};
use crate::inventory::{Item, Opener, io_reason};
use crate::limits::Limits;

/// Bytes of a file read to recognise it.
pub const HEAD: usize = 8192;

/// An item opened and recognised.
pub struct Opened<'a> {
    /// The kind, by path and content, or as the caller knew it.
    pub kind: ArtefactKind,
    /// Encoding of the content (of what is inside a gzip wrapper, when it was unwrapped).
    pub enc: TextEncoding,
    /// The first bytes of the content, already read from `stream`.
    pub head: Vec<u8>,
    /// The content after `head`.
    pub stream: Box<dyn Read + 'a>,
    /// Whether a gzip wrapper was unwrapped (the content is not the file's bytes).
    pub gzipped: bool,
}

/// What became of an item.
pub enum Recognised<'a> {
    /// Opened, with its kind.
    Opened(Opened<'a>),
    /// Not an artefact this version reads, with the reason.
    Skipped(String),
}

/// The kind a path alone gives an item, if any.
pub fn kind_by_path(item: &Item) -> Option<ArtefactKind> {
    match classify(&item.components, b"", "", false) {
        Classification::Claimed(k) => Some(k),
        Classification::Skipped(_) => None,
    }
}

/// Whether an item is worth opening at all: its path names an artefact, `deep` asks for every
/// file, or its name and place make it worth sniffing.
pub fn worth_opening(item: &Item, deep: bool) -> bool {
    deep || kind_by_path(item).is_some() || worth_sniffing(&item.components)
}

/// Opens an item and recognises it. `known` skips recognition (the second pass knows the kind);
/// `deep` lets content claim any file. `Err` says why the item could not be opened or read.
pub fn recognise<'a>(
    opener: &'a mut Opener,
    item: &Item,
    limits: &Limits,
    known: Option<ArtefactKind>,
    deep: bool,
) -> Result<Recognised<'a>, String> {
    let mut stream = opener
        .open(item, limits)
        .map_err(|e| format!("cannot open: {}", io_reason(&e)))?;
    let mut head = Vec::with_capacity(HEAD);
    (&mut stream)
        .take(HEAD as u64)
        .read_to_end(&mut head)
        .map_err(|e| format!("cannot read: {}", io_reason(&e)))?;
    let mut enc = sniff(&head);
    let mut gz_kind = None;
    if known.is_none() && head.starts_with(&[0x1f, 0x8b]) {
        // A gzip-compressed file: logs and event exports are often shipped that way. What is
        // inside decides; a compressed log is read through the decoder, never unpacked to disk.
        let mut comps = item.components.clone();
        if let Some(last) = comps.last_mut()
            && let Some(stem) = last.strip_suffix(".gz")
        {
            *last = stem.to_string();
        }
        let raw_head = head.clone();
        let mut gz: Box<dyn Read + 'a> = Box::new(flate2::read::MultiGzDecoder::new(
            Cursor::new(std::mem::take(&mut head)).chain(stream),
        ));
        let mut inner = Vec::with_capacity(HEAD);
        (&mut gz)
            .take(HEAD as u64)
            .read_to_end(&mut inner)
            .map_err(|e| format!("gzip file cannot be decompressed: {}", io_reason(&e)))?;
        let inner_enc = sniff(&inner);
        let text = if inner_enc == TextEncoding::Binary {
            std::borrow::Cow::Borrowed("")
        } else {
            decode_head(&inner, inner_enc)
        };
        match classify(&comps, &inner, &text, false) {
            Classification::Claimed(k) if k.is_log() && k != ArtefactKind::Evtx => {
                gz_kind = Some(k);
                head = inner;
                enc = inner_enc;
            }
            _ => {
                // Not a log inside: judged as the compressed file it is.
                head = raw_head;
            }
        }
        stream = gz;
    }
    let kind = match (known, gz_kind) {
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => {
            // Binary content carries no log directives: skip decoding it.
            let head_text = if enc == TextEncoding::Binary {
                std::borrow::Cow::Borrowed("")
            } else {
                decode_head(&head, enc)
            };
            match classify(&item.components, &head, &head_text, deep) {
                Classification::Claimed(k) => k,
                Classification::Skipped(reason) => return Ok(Recognised::Skipped(reason)),
            }
        }
    };
    Ok(Recognised::Opened(Opened {
        kind,
        enc,
        head,
        stream,
        gzipped: gz_kind.is_some(),
    }))
}
