//! What the server code of a web page can do (research spec §5).
//!
//! Why an analyser of its own, beside YARA: a web shell is recognised by what its server code
//! *does* — request data reaching `eval`, an assembly loaded from request bytes, a process
//! started, files listed and written on request — and the same deed is written a hundred ways
//! (C#, VB, JScript, classic VBScript; one-liners, handlers, web services, XSLT scripts; names
//! built by concatenation, code hidden in Base64 or hex). A string of one sample finds one
//! sample. This module takes the page apart the way ASP.NET does — directives, `<% %>` blocks,
//! `<script runat="server">`, the code of handlers and web services — undoes the cheap
//! obfuscations (comments between tokens, split string literals, `\x` escapes, Base64 literals),
//! and looks for capabilities in the server code only, so that client-side JavaScript `eval` or a
//! data-binding `Eval("Title")` of an ordinary application page says nothing.
//!
//! Each capability is *malicious* (no ordinary application page does it inline: command
//! execution, dynamic evaluation, assembly loading from request bytes, file management or SQL
//! consoles driven by the request) or only *suspicious* (worth a look, never a verdict on its
//! own). Benign applications keep their logic in compiled code-behind; the hard negatives
//! (upload handlers, file managers and admin consoles of real applications) are measured by
//! `bench/webshells.sh` against the public benign set.

use std::sync::LazyLock;

use regex::Regex;

/// How much a capability says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strength {
    /// Worth a look; ordinary applications do it too.
    Suspicious,
    /// What web shells do and application pages do not do inline.
    Malicious,
    /// Malicious, and it runs arbitrary code or commands.
    Critical,
}

/// One thing the page's server code can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// Short name (`command-execution`, `dynamic-evaluation`, …).
    pub name: &'static str,
    /// What it means, for the finding's title.
    pub what: &'static str,
    /// How much it says.
    pub strength: Strength,
    /// The code that shows it (trimmed, at most 120 characters).
    pub excerpt: String,
    /// 1-based line of the excerpt in the file, 0 when it was found only after de-obfuscation.
    pub line: u64,
}

/// The analysis of one page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageCode {
    /// Whether the page carries server code of its own (not only directives and markup).
    pub has_server_code: bool,
    /// Whether a directive hands the page to compiled code (`Inherits`, `CodeBehind`,
    /// `CodeFile`, `Src`, a handler `Class` with no code in the file).
    pub code_behind: bool,
    /// Characters of server code.
    pub code_len: usize,
    /// What the code can do, strongest first.
    pub capabilities: Vec<Capability>,
    /// Notes on the shape of the file (image header before the page, obfuscation).
    pub notes: Vec<&'static str>,
}

impl PageCode {
    /// The strongest capability, if any.
    pub fn strongest(&self) -> Option<&Capability> {
        self.capabilities.first()
    }

    /// Whether some capability is malicious.
    pub fn malicious(&self) -> bool {
        self.strongest()
            .is_some_and(|c| c.strength >= Strength::Malicious)
    }
}

/// File extensions whose content is server code or carries it.
pub fn is_code_file(name: &str) -> bool {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    matches!(
        ext.to_ascii_lowercase().as_str(),
        "aspx"
            | "ashx"
            | "asmx"
            | "asax"
            | "ascx"
            | "asp"
            | "asa"
            | "cer"
            | "cdx"
            | "master"
            | "svc"
            | "cshtml"
            | "vbhtml"
            | "config"
            | "cs"
            | "vb"
            | "xslt"
            | "xsl"
    )
}

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

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this module; a typo is a bug caught by the unit tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("pagecode pattern {pattern}: {e}"))
}

macro_rules! pattern {
    ($name:ident, $p:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| re($p));
    };
}

// Structure.
pattern!(
    DIRECTIVE,
    r"(?is)<%\s*@\s*(page|control|webhandler|webservice|application|master)\b([^%]*)%>"
);
pattern!(
    CODE_BEHIND,
    r#"(?i)\b(inherits|codebehind|codefile|src)\s*=\s*["']?[^"'\s>]"#
);
pattern!(BLOCK, r"(?s)<%(.*?)(%>|\z)");
pattern!(SCRIPT, r"(?is)<script\b([^>]*)>(.*?)(</script\s*>|\z)");
pattern!(
    SERVER_ATTR,
    r#"(?i)\brunat\s*=\s*["']*server|\blanguage\s*=\s*["']*(c#|cs|csharp|vb|visualbasic)["'\s>]"#
);
pattern!(
    XSL_SCRIPT,
    r"(?is)<msxsl:script\b[^>]*>(.*?)(</msxsl:script\s*>|\z)"
);
pattern!(
    HANDLER_REST,
    r"(?is)<%\s*@\s*web(handler|service)\b[^%]*%>(.*)\z"
);
pattern!(
    SERVER_INPUT_CONTROL,
    r#"(?i)<(asp:(textbox|fileupload|dropdownlist|listbox|hiddenfield)|(input|textarea|select)\b[^>]*\brunat\s*=\s*["']?server)"#
);

// De-obfuscation.
pattern!(BLOCK_COMMENT, r"(?s)/\*.*?\*/");
pattern!(JOINED_LITERAL, r#""\s*[+&]\s*(_\s*\r?\n\s*)?""#);
pattern!(JOINED_LITERAL_SQ, r"'\s*\+\s*'");
pattern!(HEX_ESCAPE, r"\\x([0-9a-fA-F]{2})");
pattern!(UNICODE_ESCAPE, r"\\u([0-9a-fA-F]{4})");
pattern!(B64_LITERAL, r#"["']([A-Za-z0-9+/]{16,}={0,2})["']"#);
pattern!(
    LONG_BLOB,
    r#"["'][A-Za-z0-9+/=\\]{400,}["']|["'][0-9A-Fa-f]{400,}["']"#
);
pattern!(
    CHAR_CODES,
    r"(?i)(String\.fromCharCode|\bChrW?\s*\(|\(char\)\s*\d|\bchar\s*\(\s*int)"
);

// Where the data comes from.
pattern!(
    REQUEST,
    r"(?i)\bRequest\s*(\.\s*(Item|Form|QueryString|Params|Headers|Cookies|InputStream|BinaryRead|Files|Body|TotalBytes|GetBufferlessInputStream)\b|[\[(]\s*[^)\]\s])|ParseQueryString|\.RawUrl\b"
);
pattern!(
    CONTROL_VALUE,
    r"(?i)\.(Text|Value|PostedFile|FileBytes|FileContent|SelectedValue|InnerText)\b"
);
pattern!(WEB_METHOD, r"(?i)\bWebMethod(Attribute)?\b");

// What the code does.
pattern!(EVAL, r"(?:^|[^\w.$#])eval\s*\(");
pattern!(
    VB_EXECUTE,
    r#"(?i)(?:^|[^\w.])(Execute|ExecuteGlobal|ExecuteStatement)\s*[\(" ]\s*\(?\s*("|Request|[\w.]+\s*\()"#
);
pattern!(
    SCRIPT_ENGINE,
    r"(?i)MSScriptControl|\bScriptControl\b|Microsoft\.JScript\.Eval|JScriptEvaluate|\bVsaEngine\b"
);
pattern!(
    ASSEMBLY_LOAD,
    r"(?i)\bAssembly\s*\.\s*(Load|LoadFrom|LoadFile|UnsafeLoadFrom)\s*\(|\bAppDomain\s*\.\s*CurrentDomain\s*\.\s*Load\s*\("
);
pattern!(
    REFLECT,
    r"(?i)\.\s*(CreateInstance|InvokeMember)\s*\(|\bGetMethod\s*\([^;]{0,80}\)\s*\.\s*Invoke\s*\(|\bActivator\s*\.\s*CreateInstance"
);
pattern!(
    CRYPTO,
    r"(?i)\b(RijndaelManaged|AesManaged|Aes\s*\.\s*Create|TransformFinalBlock|CreateDecryptor|DESCryptoServiceProvider|TripleDESCryptoServiceProvider|RC4)\b"
);
pattern!(
    DECODE,
    r"(?i)FromBase64String|Base64Decode|\batob\s*\(|\bHexToBytes|\bFromHex"
);
pattern!(
    COMPILE,
    r"(?i)CSharpCodeProvider|VBCodeProvider|JScriptCodeProvider|CompileAssemblyFromSource|CodeDomProvider\s*\.\s*CreateProvider|\bCSharpCompilation\b"
);
pattern!(
    PROCESS,
    r#"(?i)\bProcess\s*\.\s*Start\s*\(|\bProcessStartInfo\b|\bnew\s+(System\s*\.\s*Diagnostics\s*\.\s*)?Process\s*\(|WScript\.Shell|Shell\.Application|\.ShellExecute\s*\(|Win32_Process|\bWinExec\b|\bCreateProcess[AW]?\s*\("#
);
pattern!(
    SQL_XP,
    r"(?i)\bxp_cmdshell\b|\bsp_oacreate\b|\baddextendedproc\b|\bxp_regwrite\b|\bsp_makewebtask\b"
);
pattern!(
    DIR_LIST,
    r"(?i)\.\s*(GetFiles|GetDirectories|GetFileSystemInfos|GetFileSystemEntries|EnumerateFiles|EnumerateDirectories)\s*\(|\bGetLogicalDrives\b|\bDriveInfo\s*\.\s*GetDrives|Scripting\.FileSystemObject|\.SubFolders\b"
);
pattern!(
    FS_WRITE,
    r"(?i)\.\s*SaveAs\s*\(|\bFile\s*\.\s*(WriteAll\w*|Delete|Move|Copy|Create|CreateText|AppendAll\w*|AppendText|Replace|SetAttributes|SetCreationTime\w*|SetLastWriteTime\w*)\s*\(|\bStreamWriter\s*\(|\bFileStream\s*\(|\bDirectory\s*\.\s*(Delete|Move|CreateDirectory)\s*\(|\.(CreateTextFile|DeleteFile|DeleteFolder|CopyFile|MoveFile|SaveToFile)\b|\.\s*(MoveTo|CopyTo)\s*\("
);
pattern!(
    WRITE_FROM_INPUT,
    r#"(?i)(\bStreamWriter|\bFileStream|\.\s*SaveAs|\bFile\s*\.\s*(WriteAll\w*|Create\w*|AppendAll\w*|Copy|Move|Delete)|\bFileInfo)\s*\(([^;\r\n]{0,100}?)(\bRequest\b|\.\s*(Text|Value)\b)"#
);
pattern!(
    SCRIPT_LITERAL,
    r#"(?i)"[^"\r\n]{0,200}(<%|<script[^>"]{0,40}runat|<!--\s*#include)"#
);
pattern!(
    SCRIPT_PATH_LITERAL,
    r#"(?i)"[^"\r\n]{0,200}\.(aspx|asp|ashx|asmx|asa|cer|cdx|config)"\s*\)"#
);
pattern!(WRITES_REQUEST, r"(?i)\.\s*Write\w*\s*\(\s*Request\b");
pattern!(
    SQL_CONN,
    r"(?i)\b(SqlConnection|OleDbConnection|OdbcConnection|MySqlConnection|OracleConnection)\b|ADODB\.Connection"
);
pattern!(
    SQL_EXEC,
    r"(?i)\.\s*(ExecuteReader|ExecuteNonQuery|ExecuteScalar|Fill)\s*\(|\bSqlDataAdapter\s*\(|\bOleDbDataAdapter\s*\("
);
pattern!(
    SQL_CONNECT_SINK,
    r"(?i)\bnew\s+(System\s*\.\s*Data\s*\.\s*\w+\s*\.\s*)?(SqlConnection|OleDbConnection|OdbcConnection|MySqlConnection|OracleConnection)\s*\(|\.\s*ConnectionString\s*=[^=]|\.\s*Open\s*\(\s*Request"
);
pattern!(
    SQL_COMMAND_SINK,
    r"(?i)\bnew\s+(System\s*\.\s*Data\s*\.\s*\w+\s*\.\s*)?(SqlCommand|OleDbCommand|OdbcCommand|MySqlCommand|SqlDataAdapter|OleDbDataAdapter|OdbcDataAdapter)\s*\(|\.\s*CommandText\s*=[^=]|\.\s*Execute\s*\(\s*Request"
);
pattern!(
    ASSIGNMENT,
    r"\b([A-Za-z_]\w*)\s*(?:As\s+\w+\s*)?=[^=>]\s*([^;\r\n]*)"
);
pattern!(STRING_LITERAL, r#""([^"\\\r\n]|\\.)*"|@"[^"]*""#);
pattern!(IDENT, r"[A-Za-z_]\w*");
pattern!(
    SOCKET,
    r"(?i)\bTcpClient\b|\bnew\s+Socket\s*\(|\bTcpListener\b|\bUdpClient\b|\.\s*Connect\s*\(\s*new\s+IPEndPoint|\bSocket\s*\.\s*Connect"
);
pattern!(
    HTTP_FETCH,
    r"(?i)\bHttpWebRequest\b|\bWebRequest\s*\.\s*Create|\bWebClient\b|XMLHTTP|\bHttpClient\b"
);
pattern!(
    REGISTRY_HIVE,
    r"(?i)\bRegistry\s*\.\s*(LocalMachine|ClassesRoot|CurrentUser|Users|CurrentConfig|PerformanceData)\b"
);
pattern!(
    REGISTRY,
    r"(?i)\bRegistryKey\b|\bOpenSubKey\s*\(|\bRegRead\b|\bRegWrite\b|\bStdRegProv\b"
);
pattern!(
    ACCOUNTS,
    r#"(?i)WinNT://|\bnet\s+(user|localgroup)\b|Win32_UserAccount|\bServiceController\b|\bManagementObjectSearcher\b|\bManagementClass\b|winmgmts"#
);
pattern!(
    STUB,
    r#"(?i)\bnew\s+([A-Za-z_]\w*\s*\.\s*)+[A-Za-z_]\w*\s*\(\s*"[0-9a-f]{12,}"\s*\)"#
);
pattern!(IMAGE_HEADER, r"(?i)\A\s*(gif8[79]a|\x{89}PNG|JFIF)");

/// Which language a block of server code is written in, as far as the checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    /// C#, VB.NET or unknown: `eval` is not a keyword.
    Compiled,
    /// JScript (.NET or classic): `eval(code, "unsafe")`.
    JScript,
}

fn lang_of(attrs: &str) -> Option<Lang> {
    static LANG: LazyLock<Regex> =
        LazyLock::new(|| re(r#"(?i)\blanguage\s*=\s*["']?\s*([\w#.]+)"#));
    let l = LANG.captures(attrs)?.get(1)?.as_str().to_ascii_lowercase();
    Some(
        if l.starts_with("js") || l.starts_with("jscript") || l.starts_with("javascript") {
            Lang::JScript
        } else {
            Lang::Compiled
        },
    )
}

/// The server code of a page, in pieces, with the language of each.
fn server_code(text: &str, ext: &str) -> (Vec<(String, Lang)>, bool) {
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
        "cs" | "vb" | "cshtml" | "vbhtml" => {
            parts.push((text.to_string(), default));
            return (parts, false);
        }
        "ashx" | "asmx" => {
            if let Some(rest) = HANDLER_REST.captures(text).and_then(|c| c.get(2)) {
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
fn collapse(code: &str) -> String {
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
fn base64(s: &str) -> Option<Vec<u8>> {
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
fn decoded_literals(code: &str) -> String {
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
fn tainted(
    code: &str,
    input: &dyn Fn(&str) -> bool,
    whole: bool,
) -> std::collections::HashSet<String> {
    let assignments: Vec<(String, String)> = ASSIGNMENT
        .captures_iter(code)
        .take(4096)
        .filter(|c| !whole || !c[2].contains('"'))
        .map(|c| {
            (
                c[1].to_string(),
                STRING_LITERAL.replace_all(&c[2], "").into_owned(),
            )
        })
        .collect();
    let mut set = std::collections::HashSet::new();
    for _ in 0..3 {
        let before = set.len();
        for (var, rhs) in &assignments {
            if !set.contains(var)
                && (input(rhs) || IDENT.find_iter(rhs).any(|i| set.contains(i.as_str())))
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
fn flows(
    code: &str,
    sink: &Regex,
    taint: &std::collections::HashSet<String>,
    input: &dyn Fn(&str) -> bool,
) -> Option<String> {
    sink.find_iter(code).find_map(|m| {
        let rest = &code[m.end()..];
        let end = rest
            .char_indices()
            .find(|&(i, c)| c == ';' || c == '\n' || i >= 200)
            .map_or(rest.len(), |(i, _)| i);
        let args = STRING_LITERAL.replace_all(&rest[..end], "");
        (input(&args) || IDENT.find_iter(&args).any(|i| taint.contains(i.as_str())))
            .then(|| code[m.start()..m.end() + end].to_string())
    })
}

/// The views of the code the checks look at: as written, de-obfuscated, and what its Base64
/// literals decode to.
struct Views {
    code: String,
    collapsed: String,
    decoded: String,
}

impl Views {
    fn find(&self, p: &Regex) -> Option<String> {
        [&self.code, &self.collapsed, &self.decoded]
            .iter()
            .find_map(|v| p.find(v).map(|m| m.as_str().to_string()))
    }

    fn has(&self, p: &Regex) -> bool {
        [&self.code, &self.collapsed, &self.decoded]
            .iter()
            .any(|v| p.is_match(v))
    }

    fn count(&self, p: &Regex) -> usize {
        [&self.code, &self.collapsed, &self.decoded]
            .iter()
            .map(|v| p.find_iter(v).count())
            .max()
            .unwrap_or(0)
    }
}

fn excerpt(s: &str) -> String {
    let flat: String = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(120)
        .collect();
    flat
}

fn line_of(text: &str, snippet: &str) -> u64 {
    match text.find(snippet) {
        Some(i) => text[..i].bytes().filter(|&b| b == b'\n').count() as u64 + 1,
        None => 0,
    }
}

/// Analyses a page. `name` gives the extension; `bytes` is the whole file.
pub fn analyse(name: &str, bytes: &[u8]) -> PageCode {
    let text = decode_text(bytes);
    let ext = name
        .rsplit_once('.')
        .map_or(String::new(), |(_, e)| e.to_ascii_lowercase());
    let (parts, code_behind) = server_code(&text, &ext);
    let jscript = parts.iter().any(|(_, l)| *l == Lang::JScript);
    let code: String = parts
        .iter()
        .map(|(c, _)| c.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let collapsed = collapse(&code);
    let decoded = decoded_literals(&collapsed);
    let views = Views {
        code,
        collapsed,
        decoded,
    };
    let mut out = PageCode {
        has_server_code: !views.code.trim().is_empty(),
        code_behind,
        code_len: views.code.trim().len(),
        ..PageCode::default()
    };
    if IMAGE_HEADER.is_match(&text) {
        out.notes
            .push("starts with an image header before the page");
    }
    let mut caps: Vec<Capability> = Vec::new();
    let add = |caps: &mut Vec<Capability>,
               name: &'static str,
               what: &'static str,
               strength: Strength,
               ex: &str| {
        if caps.iter().any(|c| c.name == name) {
            return;
        }
        caps.push(Capability {
            name,
            what,
            strength,
            excerpt: excerpt(ex),
            line: line_of(&text, ex),
        });
    };

    // Whole text: SQL Server command execution, and droppers quoted in a page (a client page
    // for a one-liner keeps its payload in a text area).
    if let Some(m) = SQL_XP.find(&text) {
        add(
            &mut caps,
            "sql-command-execution",
            "SQL Server statements that run operating-system commands (xp_cmdshell, sp_oacreate, addextendedproc)",
            Strength::Malicious,
            m.as_str(),
        );
    }
    if let Some(w) = WRITES_REQUEST.find(&text)
        && SCRIPT_PATH_LITERAL.is_match(&text)
        && FS_WRITE.is_match(&text)
    {
        add(
            &mut caps,
            "page-dropper",
            "writes request data into a new server page",
            Strength::Critical,
            w.as_str(),
        );
    }
    if !out.has_server_code {
        caps.sort_by_key(|c| std::cmp::Reverse(c.strength));
        out.capabilities = caps;
        return out;
    }

    let request = views.has(&REQUEST);
    let controls = SERVER_INPUT_CONTROL.is_match(&text) && views.has(&CONTROL_VALUE);
    let web_method = views.has(&WEB_METHOD);
    let input = request || controls || web_method;
    let encoded = views.has(&DECODE) || views.has(&LONG_BLOB) || !views.decoded.is_empty();
    let crypto = views.has(&CRYPTO);

    // Dynamic evaluation: JScript eval, VBScript Execute, the script control.
    // C# and VB.NET have no `eval`: a call to it in server code is JScript or classic script
    // evaluating text, whatever the page says its language is.
    if let Some(m) = views.find(&EVAL) {
        add(
            &mut caps,
            "dynamic-evaluation",
            if jscript {
                "evaluates text as code (JScript eval)"
            } else {
                "evaluates text as code (eval)"
            },
            Strength::Critical,
            &m,
        );
    }
    if let Some(m) = views.find(&VB_EXECUTE).filter(|_| input || encoded) {
        add(
            &mut caps,
            "dynamic-evaluation",
            "evaluates text as code (Execute)",
            Strength::Critical,
            &m,
        );
    }
    if let Some(m) = views.find(&SCRIPT_ENGINE) {
        add(
            &mut caps,
            "script-engine",
            "runs script text through a script engine",
            Strength::Critical,
            &m,
        );
    }
    if let Some(m) = views.find(&ASSEMBLY_LOAD) {
        let strength = if input || crypto || encoded {
            Strength::Critical
        } else {
            Strength::Suspicious
        };
        add(
            &mut caps,
            "assembly-load",
            "loads a .NET assembly from bytes it is given or decrypts",
            strength,
            &m,
        );
    }
    if let Some(m) = views.find(&COMPILE) {
        let strength = if input {
            Strength::Critical
        } else {
            Strength::Suspicious
        };
        add(
            &mut caps,
            "code-compilation",
            "compiles source code at run time",
            strength,
            &m,
        );
    }
    if let Some(m) = views.find(&PROCESS) {
        add(
            &mut caps,
            "command-execution",
            "starts processes (command shell)",
            Strength::Critical,
            &m,
        );
    }
    if let Some(m) = views.find(&WRITE_FROM_INPUT) {
        add(
            &mut caps,
            "arbitrary-file-write",
            "writes, copies or deletes a file at a path or with content taken from the request",
            Strength::Malicious,
            &m,
        );
    }
    if let Some(m) = views.find(&SCRIPT_LITERAL).filter(|_| views.has(&FS_WRITE)) {
        add(
            &mut caps,
            "page-dropper",
            "writes server code into a file",
            Strength::Critical,
            &m,
        );
    }
    // Web-method parameters are input too, but an updater or installer service of an
    // application lists and replaces its own files: only request data and form fields count.
    if let Some(m) = views.find(&DIR_LIST)
        && views.has(&FS_WRITE)
        && (request || controls)
    {
        add(
            &mut caps,
            "file-manager",
            "lists folders and writes or deletes files on request (file manager)",
            Strength::Malicious,
            &m,
        );
    }
    let is_input = |t: &str| REQUEST.is_match(t) || (controls && CONTROL_VALUE.is_match(t));
    // A SQL console connects where it is told (the connection string from the request) or runs
    // the query it is given whole; an application connects to its own database and places
    // values into its own SQL text.
    let taint = tainted(&views.collapsed, &is_input, false);
    let whole = tainted(&views.collapsed, &is_input, true);
    let console = flows(&views.collapsed, &SQL_CONNECT_SINK, &taint, &is_input)
        .or_else(|| flows(&views.collapsed, &SQL_COMMAND_SINK, &whole, &is_input));
    if let Some(m) = console
        && views.has(&SQL_EXEC)
        && !code_behind
    {
        add(
            &mut caps,
            "sql-console",
            "runs SQL given in the request against a database it is told to connect to",
            Strength::Malicious,
            &m,
        );
    }
    if let Some(m) = views.find(&SOCKET).filter(|_| input) {
        add(
            &mut caps,
            "network-socket",
            "opens raw network connections on request (port scanner, tunnel, proxy)",
            Strength::Malicious,
            &m,
        );
    }
    let hives: std::collections::BTreeSet<String> = REGISTRY_HIVE
        .find_iter(&views.collapsed)
        .map(|m| m.as_str().to_ascii_lowercase().replace(' ', ""))
        .collect();
    if hives.len() >= 3 {
        let first = REGISTRY_HIVE
            .find(&views.collapsed)
            .map_or(String::new(), |m| m.as_str().to_string());
        add(
            &mut caps,
            "registry-browser",
            "walks the registry hives of the machine",
            Strength::Malicious,
            &first,
        );
    }
    if let Some(m) = views.find(&STUB).filter(|_| out.code_len < 400) {
        add(
            &mut caps,
            "loader-stub",
            "hands control to a planted assembly with a key (the page's only code)",
            Strength::Malicious,
            &m,
        );
    }

    // Suspicious only.
    let decoded_code = [&REQUEST, &EVAL, &PROCESS, &ASSEMBLY_LOAD]
        .iter()
        .find_map(|p| p.find(&views.decoded).map(|m| m.as_str().to_string()));
    if let Some(m) = decoded_code {
        add(
            &mut caps,
            "encoded-code",
            "server code hidden in a Base64 literal",
            Strength::Malicious,
            &m,
        );
    }
    let hidden_by_concat = [&EVAL, &PROCESS, &REQUEST, &ASSEMBLY_LOAD]
        .iter()
        .any(|p| p.is_match(&views.collapsed) && !p.is_match(&views.code));
    if hidden_by_concat {
        out.notes
            .push("names of sensitive calls are built from split strings or escapes");
    }
    if views.has(&LONG_BLOB) && views.has(&DECODE) {
        out.notes.push("carries a long encoded blob and decodes it");
    }
    if views.count(&CHAR_CODES) >= 12 {
        out.notes.push("builds text from character codes");
    }
    if let Some(m) = views.find(&DIR_LIST).filter(|_| input) {
        add(
            &mut caps,
            "file-browser",
            "lists folders on request",
            Strength::Suspicious,
            &m,
        );
    }
    if let Some(m) = views.find(&HTTP_FETCH).filter(|_| input) {
        add(
            &mut caps,
            "http-fetch",
            "fetches URLs on request",
            Strength::Suspicious,
            &m,
        );
    }
    if let Some(m) = views.find(&REFLECT).filter(|_| input || encoded) {
        add(
            &mut caps,
            "reflection",
            "creates objects or calls methods chosen at run time",
            Strength::Suspicious,
            &m,
        );
    }
    if let Some(m) = views.find(&REGISTRY) {
        add(
            &mut caps,
            "registry",
            "reads or writes the registry",
            Strength::Suspicious,
            &m,
        );
    }
    if let Some(m) = views.find(&ACCOUNTS) {
        add(
            &mut caps,
            "system-administration",
            "manages accounts, services or WMI",
            Strength::Suspicious,
            &m,
        );
    }
    if let Some(m) = views.find(&SQL_CONN).filter(|_| !code_behind) {
        add(
            &mut caps,
            "sql-inline",
            "connects to a database from inline code",
            Strength::Suspicious,
            &m,
        );
    }
    if !out.notes.is_empty() && caps.iter().all(|c| c.strength < Strength::Malicious) {
        let what = out.notes[0];
        add(&mut caps, "obfuscation", what, Strength::Suspicious, "");
    }
    caps.sort_by_key(|c| std::cmp::Reverse(c.strength));
    out.capabilities = caps;
    out
}

#[cfg(test)]
mod tests;
