//! Reading a page the way ASP.NET does: its text (UTF-16 or UTF-8, legacy quotes), its server
//! code with the language of each block, the cheap obfuscations undone, and request data followed
//! through assignments to what it reaches.

use std::sync::LazyLock;

use regex::Regex;

use super::patterns::*;

/// Text of a file: UTF-16 (with or without a BOM) or UTF-8, invalid bytes replaced. Typographic
/// quotes, and the replacement character that stands for quotes saved in a legacy code page, are
/// read as ASCII quotes: shells copied through word processors and Chinese forums carry them,
/// and the compiler's view of the code is what matters.
pub fn decode_text(bytes: &[u8]) -> String {
    let utf16le = bytes.starts_with(&[0xFF, 0xFE])
        || (bytes.len() >= 8
            && bytes[1] == 0
            && bytes[3] == 0
            && bytes[5] == 0
            && bytes[0] != 0
            && bytes[2] != 0);
    let text = if utf16le {
        encoding_rs::UTF_16LE.decode(bytes).0.into_owned()
    } else if bytes.starts_with(&[0xFE, 0xFF]) {
        encoding_rs::UTF_16BE.decode(bytes).0.into_owned()
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    };
    let mut prev_replacement = false;
    text.chars()
        .filter(|&c| c != '\u{feff}')
        // A quote saved in a two-byte legacy code page decodes to a run of replacement
        // characters: one quote.
        .filter(|&c| {
            let skip = c == '\u{fffd}' && prev_replacement;
            prev_replacement = c == '\u{fffd}';
            !skip
        })
        .map(|c| match c {
            '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{ff02}' | '\u{fffd}' => '"',
            '\u{2018}' | '\u{2019}' | '\u{ff07}' => '\'',
            c => c,
        })
        .collect()
}

/// Which language a block of server code is written in, as far as the checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    /// C#: no `eval`, no VBScript `Execute`.
    CSharp,
    /// VB.NET, classic VBScript or unknown: `eval` is not a keyword of VB.NET.
    Compiled,
    /// JScript (.NET or classic): `eval(code, "unsafe")`.
    JScript,
}

pub(super) fn lang_of(attrs: &str) -> Option<Lang> {
    static LANG: LazyLock<Regex> =
        LazyLock::new(|| re(r#"(?i)\blanguage\s*=\s*["']?\s*([\w#.]+)"#));
    let l = LANG.captures(attrs)?.get(1)?.as_str().to_ascii_lowercase();
    Some(
        if l.starts_with("js") || l.starts_with("jscript") || l.starts_with("javascript") {
            Lang::JScript
        } else if l == "c#" || l == "cs" || l == "csharp" {
            Lang::CSharp
        } else {
            Lang::Compiled
        },
    )
}

/// The server code of a page, in pieces, with the language of each.
pub(super) fn server_code(text: &str, ext: &str) -> (Vec<(String, Lang)>, bool) {
    let mut page_lang = None;
    let mut code_behind = false;
    for d in DIRECTIVE.captures_iter(text) {
        let attrs = d.get(2).map_or("", |m| m.as_str());
        page_lang = page_lang.or(lang_of(attrs));
        if CODE_BEHIND.is_match(attrs) {
            code_behind = true;
        }
    }
    let default = page_lang.unwrap_or(Lang::Compiled);
    let mut parts = Vec::new();
    match ext {
        "cs" => {
            parts.push((text.to_string(), Lang::CSharp));
            return (parts, false);
        }
        "vb" => {
            parts.push((text.to_string(), Lang::Compiled));
            return (parts, false);
        }
        "cshtml" | "vbhtml" => {
            // Razor: the file is code and markup; the browser's scripts are not server code.
            let server = SCRIPT.replace_all(text, |c: &regex::Captures<'_>| {
                if SERVER_ATTR.is_match(c.get(1).map_or("", |m| m.as_str())) {
                    c[0].to_string()
                } else {
                    String::new()
                }
            });
            let lang = if ext == "cshtml" {
                Lang::CSharp
            } else {
                Lang::Compiled
            };
            parts.push((server.into_owned(), lang));
            return (parts, false);
        }
        "ashx" | "asmx" => {
            if let Some(rest) = HANDLER_REST.captures(text).and_then(|c| c.get(1)) {
                parts.push((rest.as_str().to_string(), default));
                if rest.as_str().trim().is_empty() {
                    // `<%@ WebHandler Class="X" %>` alone: the class is compiled elsewhere.
                    code_behind = true;
                }
            }
        }
        _ => {}
    }
    for b in BLOCK.captures_iter(text) {
        let body = b.get(1).map_or("", |m| m.as_str());
        let t = body.trim_start();
        // Directives, comments and data-binding expressions (`<%# Eval("Title") %>`,
        // `<%$ Resources:… %>`) are not code the page runs on its own.
        if t.starts_with("--") || t.starts_with('#') || t.starts_with('$') {
            continue;
        }
        if t.starts_with('@') {
            // A directive left unclosed (`<% @Page Language="Jscript"><%eval(…)%>`) swallows
            // the block after it: that block is still code.
            if let Some(i) = body.find("<%") {
                parts.push((body[i + 2..].to_string(), default));
            }
            continue;
        }
        parts.push((body.to_string(), default));
    }
    for s in SCRIPT.captures_iter(text) {
        let attrs = s.get(1).map_or("", |m| m.as_str());
        if SERVER_ATTR.is_match(attrs) {
            let lang = lang_of(attrs).unwrap_or(default);
            parts.push((s.get(2).map_or("", |m| m.as_str()).to_string(), lang));
        }
    }
    for s in XSL_SCRIPT.captures_iter(text) {
        let lang = lang_of(s.get(0).map_or("", |m| m.as_str())).unwrap_or(Lang::JScript);
        parts.push((s.get(1).map_or("", |m| m.as_str()).to_string(), lang));
    }
    (parts, code_behind)
}

/// Undoes the cheap obfuscations: comments between tokens, string literals split and joined
/// (`"e"+"v"+"a"+"l"`, VB `"ev"&"al"`), `\x41` and `\u0041` escapes.
pub(super) fn collapse(code: &str) -> String {
    let c = BLOCK_COMMENT.replace_all(code, "");
    let c = HEX_ESCAPE.replace_all(&c, |m: &regex::Captures<'_>| {
        u8::from_str_radix(&m[1], 16)
            .ok()
            .filter(u8::is_ascii)
            .map_or_else(|| m[0].to_string(), |b| (b as char).to_string())
    });
    let c = UNICODE_ESCAPE.replace_all(&c, |m: &regex::Captures<'_>| {
        u32::from_str_radix(&m[1], 16)
            .ok()
            .and_then(char::from_u32)
            .map_or_else(|| m[0].to_string(), |ch| ch.to_string())
    });
    let c = JOINED_LITERAL.replace_all(&c, "");
    JOINED_LITERAL_SQ.replace_all(&c, "").into_owned()
}

/// Standard Base64 (with or without padding) to bytes; `None` if it is not Base64.
pub(super) fn base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The Base64 literals of the code that decode to readable text, decoded.
pub(super) fn decoded_literals(code: &str) -> String {
    let mut out = String::new();
    for m in B64_LITERAL.captures_iter(code).take(256) {
        let lit = &m[1];
        // Identifiers and words are valid Base64 too: a literal must look encoded.
        if !lit
            .bytes()
            .any(|b| b.is_ascii_digit() || b == b'+' || b == b'/' || b == b'=')
        {
            continue;
        }
        if let Some(bytes) = base64(lit) {
            let printable = bytes
                .iter()
                .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
                .count();
            if !bytes.is_empty() && printable * 10 >= bytes.len() * 9 {
                out.push_str(&String::from_utf8_lossy(&bytes));
                out.push('\n');
            }
        }
    }
    out
}

/// The variables that hold request data, followed through up to three assignments
/// (`ip = txtIp.Text; cs = "server=" + ip; new SqlConnection(cs)`). String literals are left out
/// of the right-hand sides, so that `@q` in a parameterised query is not the variable `q`.
///
/// With `whole`, only assignments without any string literal carry the taint: the variable then
/// holds request data as it came (a whole query), not a value placed into the application's own
/// SQL text (`"SELECT … WHERE id = " + id`).
///
/// With `confined`, a value passed through `Server.MapPath` (a path inside the site) no longer
/// counts: an application's file manager works below its own folder, a web shell anywhere.
pub(super) fn tainted(
    code: &str,
    input: &dyn Fn(&str) -> bool,
    whole: bool,
    confined: bool,
) -> std::collections::HashSet<String> {
    let assignments: Vec<(String, bool, String)> = ASSIGNMENT
        .captures_iter(code)
        .take(4096)
        .filter(|c| !whole || !c[2].contains('"'))
        .filter(|c| !confined || !is_confined(&c[2]))
        .map(|c| {
            (
                c[1].to_string(),
                input(&c[2]),
                STRING_LITERAL.replace_all(&c[2], "").into_owned(),
            )
        })
        .collect();
    let mut set = std::collections::HashSet::new();
    for _ in 0..3 {
        let before = set.len();
        for (var, direct, rhs) in &assignments {
            if !set.contains(var)
                && (*direct || IDENT.find_iter(rhs).any(|i| set.contains(i.as_str())))
            {
                set.insert(var.clone());
            }
        }
        if set.len() == before {
            break;
        }
    }
    set
}

/// The first call of `sink` whose arguments (to the end of the statement) carry request data
/// or a variable that holds it.
pub(super) fn flows(
    code: &str,
    sink: &Regex,
    taint: &std::collections::HashSet<String>,
    input: &dyn Fn(&str) -> bool,
    confined: bool,
) -> Option<String> {
    sink.find_iter(code).find_map(|m| {
        let rest = &code[m.end()..];
        let end = rest
            .char_indices()
            .find(|&(i, c)| c == ';' || c == '\n' || i >= 200)
            .map_or(rest.len(), |(i, _)| i);
        let raw = &rest[..end];
        if confined && is_confined(raw) {
            return None;
        }
        let args = STRING_LITERAL.replace_all(raw, "");
        (input(raw) || IDENT.find_iter(&args).any(|i| taint.contains(i.as_str())))
            .then(|| code[m.start()..m.end() + end].to_string())
    })
}

/// The views of the code the checks look at: as written, de-obfuscated, and what its Base64
/// literals decode to.
pub(super) struct Views {
    pub(super) code: String,
    pub(super) collapsed: String,
    pub(super) decoded: String,
}

impl Views {
    pub(super) fn find(&self, p: &Regex) -> Option<String> {
        [&self.code, &self.collapsed, &self.decoded]
            .iter()
            .find_map(|v| p.find(v).map(|m| m.as_str().to_string()))
    }

    pub(super) fn has(&self, p: &Regex) -> bool {
        [&self.code, &self.collapsed, &self.decoded]
            .iter()
            .any(|v| p.is_match(v))
    }

    pub(super) fn count(&self, p: &Regex) -> usize {
        [&self.code, &self.collapsed, &self.decoded]
            .iter()
            .map(|v| p.find_iter(v).count())
            .max()
            .unwrap_or(0)
    }
}

pub(super) fn excerpt(s: &str) -> String {
    let flat: String = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(120)
        .collect();
    flat
}

pub(super) fn line_of(text: &str, snippet: &str) -> u64 {
    match text.find(snippet) {
        Some(i) => text[..i].bytes().filter(|&b| b == b'\n').count() as u64 + 1,
        None => 0,
    }
}

/// Whether a path expression is built through `Server.MapPath` from something other than the
/// raw request: `MapPath("~/media/" + name)` or `MapPath(p)` stays below the application
/// (ASP.NET refuses paths above it); `MapPath(Request["f"])` lets the request name any page of
/// the site, which is how one-line uploaders drop their shells.
pub(super) fn is_confined(expr: &str) -> bool {
    MAP_PATH.find_iter(expr).any(|m| {
        let rest = expr[m.end()..].trim_start();
        !REQUEST_START.is_match(rest)
    })
}

/// Code without its string literals: a literal is data (a client script registered from C#, an
/// SQL statement, a message), not a call the server makes.
pub(super) fn without_literals(code: &str) -> String {
    STRING_LITERAL.replace_all(code, "\"\"").into_owned()
}
