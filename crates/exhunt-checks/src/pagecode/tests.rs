//! Unit tests of the page analyser, and its floors on the public corpora of `../shared/data`.

use super::*;

fn names(p: &PageCode) -> Vec<&'static str> {
    p.capabilities
        .iter()
        .filter(|c| c.strength >= Strength::Malicious)
        .map(|c| c.name)
        .collect()
}

// Fixtures are written here from the shapes public write-ups describe; the dangerous
// words are split so that the source file itself is not a web shell.
fn page(parts: &[&str]) -> Vec<u8> {
    parts.concat().into_bytes()
}

#[test]
fn jscript_one_liner_and_its_split_string_form() {
    let p = analyse(
        "a.aspx",
        &page(&[
            "<%@ Page Language=\"Jscript\"%><%",
            "ev",
            "al(Request.Item[\"z\"],\"uns",
            "afe\");%>",
        ]),
    );
    assert_eq!(names(&p), ["dynamic-evaluation"]);
    assert!(p.malicious());
    // Built by concatenation, with comments between the pieces.
    let p = analyse(
        "b.aspx",
        &page(&[
            "<%@ Page Language = Jscript %><%var/*-*/P=\"e\"+\"v\"+/*-*/\"a\"+\"l\";",
            "ev",
            "al (P,\"u\"+\"nsafe\");%>",
        ]),
    );
    assert!(names(&p).contains(&"dynamic-evaluation"));
}

#[test]
fn databinding_eval_and_client_script_are_not_server_eval() {
    let p = analyse(
        "list.aspx",
        &page(&[
            "<%@ Page Language=\"C#\" Inherits=\"Blog.List\" %>\n",
            "<asp:Repeater runat=\"server\"><ItemTemplate><%# E",
            "val(\"Title\") %></ItemTemplate></asp:Repeater>\n",
            "<script type=\"text/javascript\">var o = e",
            "val('(' + json + ')');</script>\n",
            "<%= Request.QueryString[\"page\"] %>",
        ]),
    );
    assert!(!p.malicious(), "{p:?}");
    assert!(p.code_behind);
}

#[test]
fn assembly_loaded_from_request_bytes() {
    let p = analyse(
        "x.aspx",
        &page(&[
            "<%@ Page Language=\"C#\" %><%System.Reflection.Assembly.",
            "Load(Request.BinaryRead(int.Parse(Request.Cookies[\"k\"].Value)))",
            ".CreateInstance(\"U\").Equals(this);%>",
        ]),
    );
    assert!(names(&p).contains(&"assembly-load"), "{p:?}");
    // A diagnostics page printing assembly versions is not it.
    let p = analyse(
        "diag.aspx",
        &page(&[
            "<%@ Page Language=\"C#\" %><%= System.Reflection.Assembly.",
            "LoadWithPartialName(\"System.Web.Mvc\").FullName %>",
        ]),
    );
    assert!(!p.malicious(), "{p:?}");
}

#[test]
fn handler_running_commands() {
    let p = analyse(
        "h.ashx",
        &page(&[
            "<% @ webhandler language=\"C#\" class=\"H\" %>\nusing System.Diagnostics;\n",
            "public class H : IHttpHandler { public void ProcessRequest(HttpContext c) {\n",
            "var psi = new Process",
            "StartInfo(\"cmd.exe\", \"/c \" + c.Request[\"q\"]);\n}}",
        ]),
    );
    assert_eq!(names(&p), ["command-execution"]);
    assert_eq!(p.capabilities[0].line, 4);
    // A handler that only serves a thumbnail has no capability at all.
    let p = analyse(
        "thumb.ashx",
        &page(&[
            "<%@ WebHandler Language=\"C#\" Class=\"T\" %>\nusing System.IO;\n",
            "public class T : IHttpHandler { public void ProcessRequest(HttpContext c) {\n",
            "c.Response.ContentType = \"image/png\"; c.Response.WriteFile(c.Server.MapPath(\"~/img/\" + Path.GetFileName(c.Request[\"f\"])));\n}}",
        ]),
    );
    assert!(!p.malicious(), "{p:?}");
}

#[test]
fn file_manager_and_upload_handler() {
    let fm = analyse(
        "fm.aspx",
        &page(&[
            "<%@ Page Language=\"C#\" %><script runat=\"server\">\n",
            "void Page_Load(object s, EventArgs e) { foreach (var f in Directory.GetFiles(Request[\"d\"])) Response.Write(f);\n",
            "if (Request[\"del\"] != null) File.Delete(Request[\"del\"]); }\n</script>",
        ]),
    );
    assert!(names(&fm).contains(&"file-manager"), "{fm:?}");
    // An upload handler of an application saves into its own folder under a fixed name.
    let up = analyse(
        "upload.ashx",
        &page(&[
            "<%@ WebHandler Language=\"C#\" Class=\"U\" %>\n",
            "public class U : IHttpHandler { public void ProcessRequest(HttpContext c) {\n",
            "var f = c.Request.Files[0]; var name = Guid.NewGuid() + \".jpg\";\n",
            "var path = c.Server.MapPath(\"~/App_Data/files/\" + name); f.SaveAs(path); }}",
        ]),
    );
    assert!(!up.malicious(), "{up:?}");
}

#[test]
fn writer_from_form_fields_and_droppers() {
    let w = analyse(
        "w.aspx",
        &page(&[
            "<%@ Page Language=\"VB\" %><script runat=\"server\">\nSub Page_load(s As Object, e As EventArgs)\n",
            "dim w as new streamwriter(request.form(\"path\"), true)\nw.write(request.form(\"content\"))\nEnd Sub</script>",
        ]),
    );
    assert!(names(&w).contains(&"arbitrary-file-write"), "{w:?}");
    let d = analyse(
        "d.ashx",
        &page(&[
            "<%@ WebHandler Language=\"C#\" Class=\"H\" %>\npublic class H : IHttpHandler { public void ProcessRequest(HttpContext c) {\n",
            "var f = File.CreateText(c.Server.MapPath(\"r.asp\")); f.Write(\"<",
            "%response.clear:execute request(\\\"r\\\")%>\"); f.Close(); }}",
        ]),
    );
    assert!(names(&d).contains(&"page-dropper"), "{d:?}");
}

#[test]
fn base64_hidden_request_and_utf16() {
    // "Request.Item[\"z\"]" in Base64.
    let p = analyse(
        "e.aspx",
        &page(&[
            "<% popup(System.Text.Encoding.UTF8.GetString(System.Convert.FromBase64String(\"",
            "UmVxdWVzdC5JdGVtWyJ6Il0=",
            "\"))); %>",
        ]),
    );
    assert!(names(&p).contains(&"encoded-code"), "{p:?}");
    let utf16: Vec<u8> = "<%@ Page Language=\"Jscript\"%><%ev"
        .encode_utf16()
        .chain("al(Request.Item[0],\"unsafe\");%>".encode_utf16())
        .flat_map(u16::to_le_bytes)
        .collect();
    let mut bom = vec![0xFF, 0xFE];
    bom.extend(utf16);
    assert!(analyse("u.aspx", &bom).malicious());
}

#[test]
fn sql_console_versus_application_query() {
    let c = analyse(
        "sql.aspx",
        &page(&[
            "<%@ Page Language=\"C#\" %><script runat=\"server\">\nvoid Run(object s, EventArgs e) {\n",
            "var cn = new SqlConnection(ConnStr.Text); var cmd = new SqlCommand(Query.Text, cn);\n",
            "Grid.DataSource = cmd.ExecuteReader(); }\n</script><asp:TextBox id=\"ConnStr\" runat=\"server\"/><asp:TextBox id=\"Query\" runat=\"server\"/>",
        ]),
    );
    assert!(names(&c).contains(&"sql-console"), "{c:?}");
    let app = analyse(
        "posts.aspx",
        &page(&[
            "<%@ Page Language=\"C#\" Inherits=\"Blog.Posts\" CodeBehind=\"posts.aspx.cs\" %>\n",
            "<% var cn = new SqlConnection(Config.Db); var cmd = new SqlCommand(\"select * from posts where id=@id\", cn);",
            " cmd.Parameters.AddWithValue(\"@id\", Request.QueryString[\"id\"]); var r = cmd.ExecuteReader(); %>",
        ]),
    );
    assert!(!app.malicious(), "{app:?}");
}

#[test]
fn loader_stub_and_xslt_script() {
    let s = analyse(
        "s.aspx",
        &page(&[
            "<script language=\"C#\" runat=\"server\">\nAdm.x.y a = new Adm.x.y(\"",
            "add6bb58e139be10",
            "\");\n</script>",
        ]),
    );
    assert_eq!(names(&s), ["loader-stub"]);
    let x = analyse(
        "t.aspx",
        &page(&[
            "<?xml version='1.0'?><xsl:stylesheet><msxsl:script language=\"JScript\" implements-prefix=\"z\">\n",
            "function f() { var c = System.Web.HttpContext.Current; ev",
            "al(c.Request.Item['a'], 'unsafe'); }</msxsl:script></xsl:stylesheet>",
        ]),
    );
    assert!(names(&x).contains(&"dynamic-evaluation"), "{x:?}");
}

#[test]
fn hello_page_has_code_and_nothing_else() {
    let p = analyse(
        "hello.aspx",
        b"<%@ Page Language=\"C#\" %>\n<html><body>Hello <%= DateTime.Now %></body></html>",
    );
    assert!(p.has_server_code);
    assert!(p.capabilities.is_empty(), "{p:?}");
    let plain = analyse("index.aspx", b"<html><body>Welcome</body></html>");
    assert!(!plain.has_server_code);
}

/// The public corpora: 137 web shells of a public collection and 486 pages of four real
/// applications (`../shared/data`, see its README). Skipped with a reason when absent, so that
/// the suite passes on any fresh machine; `bench/webshells.sh` measures the same through the
/// whole scanner.
fn corpus(name: &str) -> Option<Vec<std::path::PathBuf>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(name);
    if !dir.is_dir() {
        eprintln!("skipped: {} is absent", dir.display());
        return None;
    }
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_code_file)
            {
                files.push(p);
            }
        }
    }
    files.sort();
    Some(files)
}

fn analyse_path(p: &std::path::Path) -> PageCode {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    analyse(name, &std::fs::read(p).unwrap_or_default())
}

#[test]
fn public_web_shells_are_found_by_content() {
    let Some(files) = corpus("webshells-aspx/samples") else {
        return;
    };
    let mut missed = Vec::new();
    let mut by_cap: std::collections::BTreeMap<&str, usize> = Default::default();
    for p in &files {
        let a = analyse_path(p);
        match a.strongest().filter(|c| c.strength >= Strength::Malicious) {
            Some(c) => *by_cap.entry(c.name).or_default() += 1,
            None => missed.push(p.file_name().unwrap_or_default().to_string_lossy()),
        }
    }
    let found = files.len() - missed.len();
    let recall = found as f64 / files.len() as f64;
    eprintln!(
        "web shells: {found} of {} found ({:.1} %); by strongest capability {by_cap:?}; missed {missed:?}",
        files.len(),
        recall * 100.0
    );
    assert_eq!(files.len(), 137, "the public set changed");
    assert!(recall >= 0.95, "recall {recall:.3} below the 95 % floor");
}

#[test]
fn public_application_pages_are_not_web_shells() {
    let Some(files) = corpus("benign-aspx") else {
        return;
    };
    let mut flagged = Vec::new();
    let mut suspicious = 0;
    for p in &files {
        let a = analyse_path(p);
        if let Some(c) = a.strongest() {
            if c.strength >= Strength::Malicious {
                flagged.push(format!("{} ({}: {})", p.display(), c.name, c.excerpt));
            } else {
                suspicious += 1;
            }
        }
    }
    eprintln!(
        "application pages: {} read, {} malicious, {suspicious} with suspicious capabilities only",
        files.len(),
        flagged.len()
    );
    assert!(
        files.len() >= 480,
        "the public set changed: {}",
        files.len()
    );
    assert!(
        flagged.is_empty(),
        "application pages called web shells: {flagged:#?}"
    );
}

#[test]
fn reflection_to_load_and_shellcode_runners() {
    // Godzilla-style: Assembly.Load reached through reflection, on decrypted request bytes.
    let g = analyse(
        "g.aspx",
        &page(&[
            "<%@ Page Language=\"C#\"%><%byte[] d = System.Convert.FromBase64String(Context.Request[\"p\"]);",
            "d = new System.Security.Cryptography.RijndaelManaged().CreateDecryptor(k, k).TransformFinalBlock(d, 0, d.Length);",
            "var a = typeof(System.Reflection.Assembly).GetMethod(\"Lo",
            "ad\", new System.Type[] { typeof(byte[]) }).Invoke(null, new object[] { d });%>",
        ]),
    );
    assert_eq!(names(&g).first(), Some(&"assembly-load"), "{g:?}");
    // A shellcode runner: executable memory and a thread through P/Invoke.
    let n = analyse(
        "n.aspx",
        &page(&[
            "<%@ Page Language=\"C#\" %><script runat=\"server\">\n[System.Runtime.InteropServices.Dll",
            "Import(\"kernel32\")] static extern IntPtr Virtual",
            "Alloc(IntPtr a, UIntPtr s, uint t, uint p);\n",
            "void Page_Load(object s, EventArgs e) { byte[] b = new byte[] { 0xfc }; IntPtr m = Virtual",
            "Alloc(IntPtr.Zero, (UIntPtr)b.Length, 0x3000, 0x40); }\n</script>",
        ]),
    );
    assert_eq!(names(&n), ["native-code"], "{n:?}");
    // An application calling a Windows API for something else is not it.
    let w = analyse(
        "w.aspx",
        &page(&[
            "<%@ Page Language=\"C#\" %><script runat=\"server\">\n[DllImport(\"user32\")] static extern int GetSystemMetrics(int i);\n",
            "void Page_Load(object s, EventArgs e) { Response.Write(GetSystemMetrics(0)); }\n</script>",
        ]),
    );
    assert!(!w.malicious(), "{w:?}");
}

#[test]
fn a_file_manager_confined_to_the_site_is_only_suspicious() {
    // A media browser of a CMS: paths go through Server.MapPath below its own folder.
    let site = analyse(
        "media.ashx",
        &page(&[
            "<%@ WebHandler Language=\"C#\" Class=\"M\" %>\npublic class M : IHttpHandler { public void ProcessRequest(HttpContext c) {\n",
            "string dir = c.Server.MapPath(\"~/media/\" + c.Request[\"d\"]);\n",
            "foreach (var f in System.IO.Directory.GetFiles(dir)) c.Response.Write(f);\n",
            "if (c.Request[\"del\"] != null) System.IO.File.Delete(c.Server.MapPath(\"~/media/\" + c.Request[\"del\"])); }}",
        ]),
    );
    assert!(!site.malicious(), "{site:?}");
    assert!(
        site.capabilities
            .iter()
            .any(|c| c.name == "site-file-manager")
    );
    // The same handler listing whatever path it is given, or the drives, is a web shell's.
    let any = analyse(
        "any.ashx",
        &page(&[
            "<%@ WebHandler Language=\"C#\" Class=\"M\" %>\npublic class M : IHttpHandler { public void ProcessRequest(HttpContext c) {\n",
            "string dir = c.Request[\"d\"];\n",
            "foreach (var f in System.IO.Directory.GetFiles(dir)) c.Response.Write(f);\n",
            "if (c.Request[\"del\"] != null) System.IO.File.Delete(c.Request[\"del\"]); }}",
        ]),
    );
    assert!(names(&any).contains(&"file-manager"), "{any:?}");
}

#[test]
fn a_handler_whose_directive_has_no_name_is_still_code() {
    let h = analyse(
        "h.ashx",
        &page(&[
            "<%@  Language=\"C#\" Class=\"H\" %>\npublic class H : System.Web.IHttpHandler { public void ProcessRequest(System.Web.HttpContext c) {\n",
            "new System.Diagnostics.Process",
            "StartInfo(\"cmd.exe\", c.Request[\"q\"]); } public bool IsReusable { get { return false; } } }",
        ]),
    );
    assert_eq!(names(&h), ["command-execution"], "{h:?}");
}

#[test]
fn review_near_misses_of_application_code() {
    // A data-access class that only turns xp_cmdshell off, and a page that mentions it.
    let harden = analyse(
        "Harden.cs",
        b"public static class Harden { public static void Run(SqlConnection c) { new SqlCommand(\"EXEC sp_configure 'xp_cmdshell', 0; RECONFIGURE\", c).ExecuteNonQuery(); } }",
    );
    assert!(!harden.malicious(), "{harden:?}");
    let audit = analyse(
        "audit.aspx",
        b"<%@ Page Language=\"C#\" Inherits=\"Audit\" %><p>Check that xp_cmdshell is disabled.</p>",
    );
    assert!(!audit.malicious(), "{audit:?}");
    // A C# helper named Execute, on a page that reads the query string.
    let exec = analyse(
        "stats.aspx",
        b"<%@ Page Language=\"C#\" %><script runat=\"server\">void Execute(string s) { } void Page_Load() { Execute(\"UPDATE Stats SET Hits=Hits+1\"); var id = Request.QueryString[\"id\"]; }</script>",
    );
    assert!(!exec.malicious(), "{exec:?}");
    // A GUID built from a hex string is not a loader stub.
    let guid = analyse(
        "g.aspx",
        b"<% var id = new System.Guid(\"3f2504e04f8911d39a0c0305e82c3301\"); %>",
    );
    assert!(!guid.malicious(), "{guid:?}");
    // A Razor view with a client-side eval, and a class registering one.
    let razor = analyse(
        "Index.cshtml",
        b"@model Shop.Home\n<h1>@Model.Title</h1>\n<script>var o = eval('(' + json + ')');</script>",
    );
    assert!(!razor.malicious(), "{razor:?}");
    let register = analyse(
        "Page.cs",
        b"class P : Page { void Load() { ClientScript.RegisterStartupScript(GetType(), \"k\", \"eval(\" + x + \")\", true); } }",
    );
    assert!(!register.malicious(), "{register:?}");
    // An App_Code class starting a fixed converter.
    let pdf = analyse(
        "Pdf.cs",
        b"public class Pdf { public static void Make(string html) { System.Diagnostics.Process.Start(\"wkhtmltopdf.exe\", \"in.html out.pdf\"); } }",
    );
    assert!(!pdf.malicious(), "{pdf:?}");
    // An upload page that writes a message and redirects to a page: no dropper.
    let upload = analyse(
        "Upload.aspx",
        b"<%@ Page Language=\"C#\" %><% Response.Write(Request.QueryString[\"msg\"]); %><script runat=\"server\">void Up(object s, EventArgs e) { f.SaveAs(Server.MapPath(\"~/up/\") + System.IO.Path.GetFileName(f.FileName)); Response.Redirect(\"list.aspx\"); }</script>",
    );
    assert!(!upload.malicious(), "{upload:?}");
    // A media browser whose path goes through MapPath in a variable.
    let media = analyse(
        "media.ashx",
        b"<%@ WebHandler Language=\"C#\" Class=\"M\" %>\npublic class M : IHttpHandler { public void ProcessRequest(HttpContext c) {\nstring p = \"~/media/\" + c.Request[\"p\"];\nforeach (var f in System.IO.Directory.GetFiles(c.Server.MapPath(p))) c.Response.Write(f);\nSystem.IO.File.Delete(c.Server.MapPath(p + \"/\" + c.Request[\"n\"])); }}",
    );
    assert!(!media.malicious(), "{media:?}");
    // A logger appending a value that is not request data.
    let log = analyse(
        "log.aspx",
        b"<%@ Page Language=\"C#\" %><% System.IO.File.AppendAllText(logPath, entry.Value); %>",
    );
    assert!(!log.malicious(), "{log:?}");
}
