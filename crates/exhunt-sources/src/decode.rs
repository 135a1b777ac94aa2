//! Text encodings: detected, never assumed.
//!
//! Exchange and IIS logs are UTF-8 with or without a byte-order mark; PowerShell exports and some
//! copied logs are UTF-16LE, with or without a BOM. The readers work on UTF-8 bytes, so UTF-16 is
//! transcoded while streaming (never by loading the file).

use std::io::{self, Read};

/// The encoding of a file, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    /// UTF-8 (or ASCII), no BOM.
    Utf8,
    /// UTF-8 with a BOM (3 bytes to skip).
    Utf8Bom,
    /// UTF-16 little endian; `bom` says whether 2 bytes of BOM lead.
    Utf16Le {
        /// A BOM leads the file.
        bom: bool,
    },
    /// UTF-16 big endian; `bom` says whether 2 bytes of BOM lead.
    Utf16Be {
        /// A BOM leads the file.
        bom: bool,
    },
    /// Not text: NUL bytes where text has none.
    Binary,
}

/// The head of a file as text, for recognising it: borrowed when it is valid UTF-8 (checked with
/// `from_utf8`, much faster than the lossy decoder, which cost 4% of a log scan), lossy otherwise
/// (a head cut inside a character, another encoding).
pub fn decode_head(head: &[u8], enc: TextEncoding) -> std::borrow::Cow<'_, str> {
    match enc {
        TextEncoding::Utf16Le { .. } => encoding_rs::UTF_16LE.decode(head).0.into_owned().into(),
        TextEncoding::Utf16Be { .. } => encoding_rs::UTF_16BE.decode(head).0.into_owned().into(),
        _ => match std::str::from_utf8(head) {
            Ok(s) => s.into(),
            Err(_) => String::from_utf8_lossy(head),
        },
    }
}

/// Guesses the encoding from the head of a file.
pub fn sniff(head: &[u8]) -> TextEncoding {
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return TextEncoding::Utf8Bom;
    }
    if head.starts_with(&[0xFF, 0xFE]) {
        return TextEncoding::Utf16Le { bom: true };
    }
    if head.starts_with(&[0xFE, 0xFF]) {
        return TextEncoding::Utf16Be { bom: true };
    }
    // UTF-16 without BOM: ASCII text gives a NUL in every other byte.
    let pairs = head.len() / 2;
    if pairs >= 2 {
        let sample = &head[..pairs.min(512) * 2];
        let odd_nul = sample
            .chunks_exact(2)
            .filter(|c| c[1] == 0 && c[0] != 0)
            .count();
        let even_nul = sample
            .chunks_exact(2)
            .filter(|c| c[0] == 0 && c[1] != 0)
            .count();
        let n = sample.len() / 2;
        if odd_nul * 10 >= n * 9 {
            return TextEncoding::Utf16Le { bom: false };
        }
        if even_nul * 10 >= n * 9 {
            return TextEncoding::Utf16Be { bom: false };
        }
    }
    if memchr::memchr(0, head).is_some() {
        return TextEncoding::Binary;
    }
    TextEncoding::Utf8
}

/// Wraps a byte stream (starting at the first byte of the file) so that it yields UTF-8 without
/// BOM.
pub fn utf8_reader<'a>(inner: Box<dyn Read + 'a>, enc: TextEncoding) -> Box<dyn Read + 'a> {
    match enc {
        TextEncoding::Utf8 | TextEncoding::Binary => inner,
        TextEncoding::Utf8Bom => Box::new(Skip { inner, skip: 3 }),
        TextEncoding::Utf16Le { bom } => {
            Box::new(Utf16Reader::new(inner, encoding_rs::UTF_16LE, bom))
        }
        TextEncoding::Utf16Be { bom } => {
            Box::new(Utf16Reader::new(inner, encoding_rs::UTF_16BE, bom))
        }
    }
}

struct Skip<R> {
    inner: R,
    skip: usize,
}

impl<R: Read> Read for Skip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.skip > 0 {
            let mut tmp = [0u8; 4];
            let n = self.inner.read(&mut tmp[..self.skip])?;
            if n == 0 {
                return Ok(0);
            }
            self.skip -= n;
        }
        self.inner.read(buf)
    }
}

/// Streaming UTF-16 → UTF-8 transcoder. Invalid sequences become U+FFFD.
struct Utf16Reader<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    skip_bom: bool,
    /// The decoder was given its last input; using it again would panic.
    finished: bool,
}

impl<R: Read> Utf16Reader<R> {
    fn new(inner: R, enc: &'static encoding_rs::Encoding, bom: bool) -> Self {
        Utf16Reader {
            inner,
            decoder: enc.new_decoder_without_bom_handling(),
            input: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            eof: false,
            skip_bom: bom,
            finished: false,
        }
    }
}

impl<R: Read> Read for Utf16Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.len() < 8 {
            // decode_to_utf8 needs room for at least one scalar value.
            let mut tmp = [0u8; 8];
            let n = self.read(&mut tmp)?;
            let k = n.min(buf.len());
            buf[..k].copy_from_slice(&tmp[..k]);
            return Ok(k);
        }
        loop {
            if self.finished {
                return Ok(0);
            }
            if self.start == self.end && !self.eof {
                self.start = 0;
                self.end = 0;
                let n = self.inner.read(&mut self.input)?;
                if n == 0 {
                    self.eof = true;
                } else {
                    self.end = n;
                }
                if self.skip_bom && self.end >= 2 {
                    self.start = 2;
                    self.skip_bom = false;
                }
            }
            let (result, read, written, _) =
                self.decoder
                    .decode_to_utf8(&self.input[self.start..self.end], buf, self.eof);
            self.start += read;
            if self.eof && result == encoding_rs::CoderResult::InputEmpty {
                // All input, including a dangling odd byte (→ U+FFFD), is decoded.
                self.finished = true;
            }
            if written > 0 || self.finished {
                return Ok(written);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> String {
        let enc = sniff(bytes);
        let mut out = String::new();
        utf8_reader(Box::new(bytes), enc)
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn utf16le_with_and_without_bom() {
        let text = "#Fields: date time\r\nüber 2021\r\n";
        let mut le: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(sniff(&le), TextEncoding::Utf16Le { bom: false });
        assert_eq!(decode_all(&le), text);
        le.splice(0..0, [0xFF, 0xFE]);
        assert_eq!(sniff(&le), TextEncoding::Utf16Le { bom: true });
        assert_eq!(decode_all(&le), text);
    }

    #[test]
    fn odd_length_utf16_ends_cleanly() {
        // Found by the corrupt-evidence corpus: a UTF-16 file with an odd byte count made the
        // decoder be called after it had finished (a panic in encoding_rs).
        let mut le: Vec<u8> = "#Fields: x\r\nabc"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        le.splice(0..0, [0xFF, 0xFE]);
        le.push(0x41);
        let out = decode_all(&le);
        assert!(out.starts_with("#Fields: x\r\nabc"));
        assert!(out.ends_with('\u{FFFD}'));
        // Reading on after the end keeps returning 0.
        let mut r = utf8_reader(Box::new(&le[..]), sniff(&le));
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).unwrap();
        let mut b = [0u8; 16];
        assert_eq!(r.read(&mut b).unwrap(), 0);
    }

    #[test]
    fn utf8_bom_is_stripped_and_binary_is_recognised() {
        assert_eq!(decode_all(b"\xEF\xBB\xBF#Software: x\n"), "#Software: x\n");
        assert_eq!(
            sniff(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"),
            TextEncoding::Binary
        );
        assert_eq!(sniff(b"plain ascii"), TextEncoding::Utf8);
    }
}
