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

pub use text::decode_text;

mod patterns;
mod text;

use patterns::*;
use text::*;

/// Analyses a page. `name` gives the extension; `bytes` is the whole file.
pub fn analyse(name: &str, bytes: &[u8]) -> PageCode {
    // Web pages are kilobytes; a page of megabytes is read up to this size and says so, so that
    // a hostile file cannot hold a worker for minutes.
    const MAX_ANALYSED: usize = 2 << 20;
    let truncated = bytes.len() > MAX_ANALYSED;
    let text = decode_text(&bytes[..bytes.len().min(MAX_ANALYSED)]);
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
    if truncated {
        out.notes
            .push("larger than 2 MiB: only its first 2 MiB were analysed");
    }
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

    // A page that writes request data into a new page (a dropper), in one place: the write,
    // the script path it writes to and the request data it writes within a few lines. Read in
    // the whole text, for a client page of a one-liner keeps its payload in a text area.
    if let Some(w) = dropper(&text) {
        add(
            &mut caps,
            "page-dropper",
            "writes request data into a new server page",
            Strength::Critical,
            &w,
        );
    }
    if !out.has_server_code {
        caps.sort_by_key(|c| std::cmp::Reverse(c.strength));
        out.capabilities = caps;
        return out;
    }

    // SQL Server statements that run commands, in server code (not a sentence of a page, not
    // the hardening statement that turns them off).
    let xp = [&views.code, &views.collapsed].iter().find_map(|v| {
        SQL_XP
            .find_iter(v)
            .find(|m| {
                let from = floor_boundary(v, m.start().saturating_sub(60));
                let to = floor_boundary(v, (m.end() + 20).min(v.len()));
                !SQL_XP_OFF.is_match(&v[from..to])
            })
            .map(|m| m.as_str().to_string())
    });
    if let Some(m) = xp {
        add(
            &mut caps,
            "sql-command-execution",
            "runs SQL Server statements that start operating-system commands (xp_cmdshell, sp_oacreate, addextendedproc)",
            Strength::Malicious,
            &m,
        );
    }
    let request = views.has(&REQUEST);
    let csharp_only = parts.iter().all(|(_, l)| *l == Lang::CSharp);
    let controls = SERVER_INPUT_CONTROL.is_match(&text) && views.has(&CONTROL_VALUE);
    let web_method = views.has(&WEB_METHOD);
    let input = request || controls || web_method;
    let encoded = views.has(&DECODE) || views.has(&LONG_BLOB) || !views.decoded.is_empty();
    let crypto = views.has(&CRYPTO);
    let is_input = |t: &str| REQUEST.is_match(t) || (controls && CONTROL_VALUE.is_match(t));
    let taint = tainted(&views.collapsed, &is_input, false, false);

    // Dynamic evaluation: JScript eval, VBScript Execute, the script control.
    // C# and VB.NET have no `eval`: a call to it in server code is JScript or classic script
    // evaluating text, whatever the page says its language is.
    let bare = Views {
        code: without_literals(&views.code),
        collapsed: without_literals(&views.collapsed),
        decoded: views.decoded.clone(),
    };
    if let Some(m) = bare.find(&EVAL) {
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
    if let Some(m) = bare
        .find(&VB_EXECUTE)
        .filter(|_| !csharp_only && (input || encoded))
    {
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
    // Starting a shell, or a program the request chooses, is a web shell's deed; an
    // application may start a fixed tool (a PDF converter) and is only worth a look.
    if let Some(m) = views.find(&PROCESS) {
        // Request data reaches it (through an assignment, or on a page that takes input and
        // runs it inline: parameters of the page's own functions are not followed), it names a
        // shell, or the code hides itself in Base64.
        // For a process, a control's value counts as input even where the page does not
        // declare the control (a copied shell whose form was cut). An executable decoded from
        // Base64 and started is a dropper.
        let source_file = matches!(ext.as_str(), "cs" | "vb");
        let loose = |t: &str| REQUEST.is_match(t) || CONTROL_VALUE.is_match(t);
        let loose_taint = tainted(&views.collapsed, &loose, false, false);
        let shell = views.has(&CMD_LITERAL)
            || flows(&views.collapsed, &PROCESS, &loose_taint, &loose, false).is_some()
            || (input && !source_file)
            || encoded;
        if shell {
            add(
                &mut caps,
                "command-execution",
                "starts a command shell or a program the request chooses",
                Strength::Critical,
                &m,
            );
        } else {
            add(
                &mut caps,
                "process-start",
                "starts a fixed program",
                Strength::Suspicious,
                &m,
            );
        }
    }
    // The request names the path or the content of a write; a path built below a folder the
    // application names (an upload folder) is not the request's choice.
    let write = [&views.code, &views.collapsed].iter().find_map(|v| {
        WRITE_FROM_INPUT
            .find_iter(v)
            .find(|m| {
                !is_confined(m.as_str())
                    // A control's .Text or .Value is input only on a page with input controls.
                    && (controls || m.as_str().to_ascii_lowercase().contains("request"))
            })
            .map(|m| m.as_str().to_string())
    });
    if let Some(m) = write {
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
    // An application's file manager (an editor's media browser) is confined to its own folder
    // through Server.MapPath; a web shell's lists the drives or any path it is given.
    if views.has(&DIR_LIST) && views.has(&FS_WRITE) && (request || controls) {
        let confined_taint = tainted(&views.collapsed, &is_input, false, true);
        let anywhere = views.find(&DRIVES).or_else(|| {
            flows(
                &views.collapsed,
                &LIST_SINK,
                &confined_taint,
                &is_input,
                true,
            )
        });
        match anywhere {
            Some(m) => add(
                &mut caps,
                "file-manager",
                "lists any folder or the drives and writes or deletes files on request (file manager)",
                Strength::Malicious,
                &m,
            ),
            None => add(
                &mut caps,
                "site-file-manager",
                "lists and changes files below the site's own folder on request",
                Strength::Suspicious,
                &views.find(&DIR_LIST).unwrap_or_default(),
            ),
        }
    }
    if let Some(m) = views.find(&NATIVE_CODE).filter(|_| views.has(&DLL_IMPORT)) {
        add(
            &mut caps,
            "native-code",
            "allocates executable memory or starts threads through Windows APIs (shellcode runner)",
            Strength::Critical,
            &m,
        );
    }
    // A SQL console connects where it is told (the connection string from the request) or runs
    // the query it is given whole; an application connects to its own database and places
    // values into its own SQL text.
    let whole = tainted(&views.collapsed, &is_input, true, false);
    let console = flows(
        &views.collapsed,
        &SQL_CONNECT_SINK,
        &taint,
        &is_input,
        false,
    )
    .or_else(|| {
        flows(
            &views.collapsed,
            &SQL_COMMAND_SINK,
            &whole,
            &is_input,
            false,
        )
    });
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
    // A type of the framework (`new System.Guid("…")`) hands control to nothing.
    if let Some(m) = views
        .find(&STUB)
        .filter(|m| {
            // The match starts with `new`; the type follows.
            let ty = m.get(3..).unwrap_or("").trim_start();
            !ty.starts_with("System") && !ty.starts_with("Microsoft")
        })
        .filter(|_| out.code_len < 400)
    {
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

/// The largest char boundary at or below `i`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A write of request data into a server page, in one place of the text: a file write, within a
/// few lines a path ending in a script extension, and within a few lines after it request data
/// written out.
fn dropper(text: &str) -> Option<String> {
    SCRIPT_PATH_LITERAL.find_iter(text).take(256).find_map(|p| {
        let before = &text[floor_boundary(text, p.start().saturating_sub(200))..p.start()];
        let after = &text[p.end()..floor_boundary(text, p.end() + 300)];
        (FS_WRITE.is_match(before) || FS_WRITE.is_match(p.as_str()))
            .then(|| WRITES_REQUEST.find(after))
            .flatten()
            .map(|w| format!("{} … {}", p.as_str(), w.as_str()))
    })
}
