//! The folders IIS serves, as the server's own configuration says, mapped into the target.
//!
//! Why: a web shell is served from wherever a site, application or virtual directory points —
//! a second site in `inetpub\sites\crm`, an application on `D:\Web`, a folder under ProgramData
//! that a ProxyShell intruder added as a virtual directory. A fixed list of Exchange web roots
//! misses them all. `applicationHost.config` names every physical path (with environment
//! variables such as `%SystemDrive%`); a folder holding a `web.config` is an ASP.NET
//! application root whatever the configuration says; and when the configuration is missing,
//! everything under `inetpub` is taken as served. The scanner reads the scripts of these folders
//! without `--deep`, and the coverage names each one, found or not in the target.
//!
//! The configuration is read as text with a tag scanner (not an XML parser): a file that is not
//! well-formed (an attacker's edit, a truncated copy) is still read.

use std::sync::LazyLock;

use regex::Regex;

static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)<(/?)(site|application|virtualDirectory)\b([^>]*)>").expect("valid regex")
});
static ATTR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(name|path|physicalPath)\s*=\s*"([^"]*)""#).expect("valid regex")
});

/// Most served folders read from one configuration, and most web roots kept for one target: a
/// real server has tens; a hostile configuration cannot make the walk quadratic beyond this.
pub const MAX_ROOTS: usize = 2000;

/// A folder a site serves, as written in `applicationHost.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedFolder {
    /// Site name.
    pub site: String,
    /// URL path it serves (`/`, `/owa`, `/crm/files`).
    pub url: String,
    /// Physical path as written (`%SystemDrive%\inetpub\wwwroot`).
    pub physical: String,
    /// 1-based line of the `virtualDirectory` element.
    pub line: u64,
    /// Byte offset of the element.
    pub offset: u64,
    /// The element as written (at most 300 characters).
    pub element: String,
}

/// The value of an attribute in a tag's attribute text.
pub fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    ATTR.captures_iter(attrs)
        .find(|c| c[1].eq_ignore_ascii_case(name))
        .and_then(|c| c.get(2))
        .map(|m| m.as_str())
}

/// Every virtual directory of every site and application, in file order.
pub fn served_folders(text: &str) -> Vec<ServedFolder> {
    let mut out = Vec::new();
    let mut site = String::new();
    let mut app = String::new();
    // Line numbers counted as the scan goes, not from the start for each element.
    let (mut line, mut counted) = (1u64, 0usize);
    for c in TAG.captures_iter(text) {
        if out.len() >= MAX_ROOTS {
            break;
        }
        let closing = !c[1].is_empty();
        let tag = c[2].to_ascii_lowercase();
        let attrs = c.get(3).map_or("", |m| m.as_str());
        let self_closing = attrs.trim_end().ends_with('/');
        match (tag.as_str(), closing) {
            ("site", false) => {
                site = attr(attrs, "name").unwrap_or("").to_string();
                app.clear();
            }
            ("site", true) => site.clear(),
            ("application", false) => {
                app = attr(attrs, "path").unwrap_or("").to_string();
                if self_closing {
                    app.clear();
                }
            }
            ("application", true) => app.clear(),
            ("virtualdirectory", false) => {
                let Some(physical) = attr(attrs, "physicalPath") else {
                    continue;
                };
                let vpath = attr(attrs, "path").unwrap_or("/");
                let url = format!(
                    "{}/{}",
                    app.trim_end_matches('/'),
                    vpath.trim_start_matches('/')
                );
                let url = if url.len() > 1 {
                    url.trim_end_matches('/').to_string()
                } else {
                    url
                };
                let start = c.get(0).map_or(0, |m| m.start());
                line += text[counted..start].bytes().filter(|&b| b == b'\n').count() as u64;
                counted = start;
                out.push(ServedFolder {
                    site: site.clone(),
                    url,
                    physical: physical.to_string(),
                    line,
                    offset: start as u64,
                    element: c[0].chars().take(300).collect(),
                });
            }
            _ => {}
        }
    }
    out
}

/// A Windows path from a configuration as lower-cased components without the drive, with the
/// environment variables IIS and Exchange configurations use expanded to their defaults
/// (`%SystemDrive%\inetpub\wwwroot` → `inetpub`, `wwwroot`). `None` for a UNC path or one with
/// an unknown variable: it cannot be placed in the target.
pub fn physical_components(physical: &str) -> Option<Vec<String>> {
    // Components are compared lower-cased, so the path is lower-cased once and each variable
    // replaced in one pass (a hostile configuration may repeat one a million times).
    let mut p = physical.trim().to_ascii_lowercase().replace('/', "\\");
    for (var, value) in [
        ("%systemdrive%", "c:"),
        ("%systemroot%", "c:\\windows"),
        ("%windir%", "c:\\windows"),
        ("%programdata%", "c:\\programdata"),
        ("%allusersprofile%", "c:\\programdata"),
        ("%programfiles%", "c:\\program files"),
        (
            "%exchangeinstallpath%",
            "c:\\program files\\microsoft\\exchange server\\v15\\",
        ),
    ] {
        if p.contains(var) {
            p = p.replace(var, value);
        }
    }
    if p.contains('%') || p.starts_with("\\\\") {
        return None;
    }
    let mut parts: Vec<String> = p
        .split('\\')
        .filter(|s| !s.is_empty() && *s != ".")
        .map(|s| s.to_lowercase())
        .collect();
    if parts
        .first()
        .is_some_and(|d| d.len() == 2 && d.ends_with(':'))
    {
        parts.remove(0);
    }
    (!parts.is_empty()).then_some(parts)
}

/// Whether a folder name stands for a drive in a copy of a server's disks (`C`, `c$`, `D_`,
/// `c_drive`, `volume_c`).
fn drive_like(name: &str) -> bool {
    let b = name.as_bytes();
    match b.len() {
        1 => b[0].is_ascii_alphabetic(),
        2 => b[0].is_ascii_alphabetic() && matches!(b[1], b'$' | b'_' | b':'),
        _ => {
            (name.ends_with("_drive") || name.starts_with("volume_") || name.ends_with("drive"))
                && name.len() <= 12
        }
    }
}

/// Where a web root comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// A virtual directory of `applicationHost.config` (the file's path as shown).
    IisConfig(String),
    /// A folder holding a `web.config`.
    WebConfig,
    /// `inetpub`, taken whole.
    Inetpub,
}

/// One served folder, placed in the target when it could be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRoot {
    /// Components to look for in a file's path (relative to the target, lower-cased).
    pub components: Vec<String>,
    /// Site name, for configured roots.
    pub site: Option<String>,
    /// URL path, for configured roots.
    pub url: Option<String>,
    /// The physical path as written, or the folder as found.
    pub physical: String,
    /// Where it comes from.
    pub source: RootSource,
}

impl WebRoot {
    /// Where this root's components start in the folders of `components` (a file), if the file
    /// lies below it. A root of one component (`D:\web`) must sit at the top of the target or
    /// below a drive-like folder, so that a folder of the same name elsewhere is not taken for
    /// it; longer roots may sit anywhere (a copy of `C:\` inside a triage folder).
    pub fn position(&self, components: &[String]) -> Option<usize> {
        let dirs = &components[..components.len().saturating_sub(1)];
        let r = &self.components;
        if r.is_empty() || dirs.len() < r.len() {
            return None;
        }
        (0..=dirs.len() - r.len()).find(|&p| {
            dirs[p..p + r.len()] == r[..]
                && match self.source {
                    // Found in the target itself: its place is exact.
                    RootSource::WebConfig | RootSource::Inetpub => p == 0,
                    RootSource::IisConfig(_) => p == 0 || r.len() >= 2 || drive_like(&dirs[p - 1]),
                }
        })
    }
}

/// The web roots of one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebRoots {
    /// Every root, configured ones first.
    pub roots: Vec<WebRoot>,
}

impl WebRoots {
    /// Adds the virtual directories of one `applicationHost.config`.
    pub fn add_config(&mut self, display: &str, text: &str) {
        for f in served_folders(text) {
            let components = physical_components(&f.physical).unwrap_or_default();
            let root = WebRoot {
                components,
                site: Some(f.site),
                url: Some(f.url),
                physical: f.physical,
                source: RootSource::IisConfig(display.to_string()),
            };
            if self.roots.len() < MAX_ROOTS && !self.roots.contains(&root) {
                self.roots.push(root);
            }
        }
    }

    /// Adds the folder of a `web.config` (its components relative to the target).
    pub fn add_web_config(&mut self, display_folder: &str, file_components: &[String]) {
        let dirs = &file_components[..file_components.len().saturating_sub(1)];
        if self.roots.len() >= MAX_ROOTS
            || self
                .roots
                .iter()
                .any(|r| r.source == RootSource::WebConfig && r.components == dirs)
        {
            return;
        }
        self.roots.push(WebRoot {
            components: dirs.to_vec(),
            site: None,
            url: None,
            physical: display_folder.to_string(),
            source: RootSource::WebConfig,
        });
    }

    /// The index of the root a file lies below (the deepest one), if any. `inetpub` counts as
    /// a root of its own only through [`WebRoots::under_inetpub`].
    pub fn root_of(&self, components: &[String]) -> Option<usize> {
        self.roots
            .iter()
            .enumerate()
            .filter(|(_, r)| r.position(components).is_some())
            .max_by_key(|(_, r)| r.components.len())
            .map(|(i, _)| i)
    }

    /// Whether a file lies below a folder named `inetpub` (served, or kept by IIS).
    pub fn under_inetpub(components: &[String]) -> bool {
        components[..components.len().saturating_sub(1)]
            .iter()
            .any(|c| c == "inetpub")
    }
}

/// Folders with a `web.config` that are not applications anyone serves by default: the .NET
/// Framework's own configuration and admin tool, the component store, compiled copies.
pub fn not_an_application(c: &[String]) -> bool {
    c.windows(2)
        .any(|w| w[0] == "windows" && (w[1] == "microsoft.net" || w[1] == "winsxs"))
        || c.iter().any(|d| d == "temporary asp.net files")
}

/// File names whose content is server code IIS runs, or carries it: the scripts of a web root.
pub fn is_server_script(components: &[String]) -> bool {
    let name = components.last().map(String::as_str).unwrap_or("");
    if name == "web.config" {
        return true;
    }
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "aspx" | "ashx" | "asmx" | "asax" | "ascx" | "asp" | "asa" | "cer" | "cdx" | "master"
        | "svc" | "cshtml" | "vbhtml" | "soap" | "rem" | "xamlx" => true,
        // Source compiled on demand by ASP.NET.
        "cs" | "vb" => components.iter().any(|c| c == "app_code"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(p: &str) -> Vec<String> {
        p.split(['/', '\\']).map(|s| s.to_lowercase()).collect()
    }

    const CONFIG: &str = r#"<configuration><system.applicationHost><sites>
<site name="Default Web Site" id="1">
  <application path="/" applicationPool="DefaultAppPool">
    <virtualDirectory path="/" physicalPath="%SystemDrive%\inetpub\wwwroot" />
  </application>
  <application path="/owa" applicationPool="MSExchangeOWAAppPool">
    <virtualDirectory path="/" physicalPath="C:\Program Files\Microsoft\Exchange Server\V15\FrontEnd\HttpProxy\owa" />
  </application>
</site>
<site name="crm" id="3">
  <application path="/">
    <virtualDirectory path="/" physicalPath="%SystemDrive%\inetpub\sites\crm" />
    <virtualDirectory path="/files" physicalPath="D:\web" />
    <virtualDirectory path="/share" physicalPath="\\fs01\share" />
  </application>
</site>
</sites></system.applicationHost></configuration>"#;

    #[test]
    fn sites_applications_and_virtual_directories() {
        let f = served_folders(CONFIG);
        assert_eq!(f.len(), 5);
        assert_eq!(f[1].url, "/owa");
        assert_eq!(f[1].site, "Default Web Site");
        assert_eq!(f[3].url, "/files");
        assert_eq!(f[3].site, "crm");
        assert_eq!(f[3].line, 13);
        assert_eq!(
            physical_components(&f[2].physical).unwrap(),
            ["inetpub", "sites", "crm"]
        );
        assert_eq!(physical_components(&f[4].physical), None);
        assert_eq!(physical_components(r"%Unknown%\x"), None);
    }

    #[test]
    fn roots_are_placed_whatever_the_drive_folder() {
        let mut roots = WebRoots::default();
        roots.add_config(
            "C/Windows/System32/inetsrv/config/applicationHost.config",
            CONFIG,
        );
        let crm = roots
            .root_of(&comps("C/inetpub/sites/crm/App/x.aspx"))
            .unwrap();
        assert_eq!(roots.roots[crm].site.as_deref(), Some("crm"));
        assert!(roots.root_of(&comps("inetpub/sites/crm/x.aspx")).is_some());
        // D:\web: a one-component root only at the top or below a drive folder.
        assert!(roots.root_of(&comps("D/web/x.aspx")).is_some());
        assert!(roots.root_of(&comps("d$/web/x.aspx")).is_some());
        assert!(roots.root_of(&comps("web/x.aspx")).is_some());
        assert!(
            roots
                .root_of(&comps("C/Users/bob/project/web/x.aspx"))
                .is_none()
        );
        // The deepest root wins.
        let owa = roots
            .root_of(&comps(
                "C/Program Files/Microsoft/Exchange Server/V15/FrontEnd/HttpProxy/owa/auth/x.aspx",
            ))
            .unwrap();
        assert_eq!(roots.roots[owa].url.as_deref(), Some("/owa"));
        roots.add_web_config("app", &comps("tools/app/web.config"));
        assert!(roots.root_of(&comps("tools/app/sub/x.aspx")).is_some());
        assert!(roots.root_of(&comps("tools/x.aspx")).is_none());
    }

    #[test]
    fn a_hostile_configuration_stays_bounded() {
        let vars = "%SystemDrive%".repeat(100_000);
        let t = std::time::Instant::now();
        assert!(physical_components(&format!("{vars}\\x")).is_some());
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        let many: String = (0..5000)
            .map(|i| format!("<virtualDirectory path=\"/{i}\" physicalPath=\"D:\\w{i}\" />\n"))
            .collect();
        let t = std::time::Instant::now();
        let mut roots = WebRoots::default();
        roots.add_config("a", &many);
        assert_eq!(roots.roots.len(), MAX_ROOTS);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn server_scripts() {
        assert!(is_server_script(&comps("a/b.ASPX".to_lowercase().as_str())));
        assert!(is_server_script(&comps("a/web.config")));
        assert!(is_server_script(&comps("site/App_Code/x.cs")));
        assert!(!is_server_script(&comps("src/x.cs")));
        assert!(!is_server_script(&comps("a/app.config")));
        assert!(!is_server_script(&comps("a/site.css")));
    }
}
