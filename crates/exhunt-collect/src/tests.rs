//! Unit tests of the collection: what is taken, files that vanish or grow while they are read,
//! links, limits, and the source left as it was.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

/// When the test hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Before a file is opened.
    Open,
    /// After it is opened, before the first read.
    Read,
}

type Hook = Box<dyn FnMut(&Path, Stage)>;

thread_local! {
    static HOOK: RefCell<Option<Hook>> = RefCell::new(None);
}

pub(crate) fn hook(path: &Path, stage: Stage) {
    HOOK.with(|h| {
        if let Some(f) = h.borrow_mut().as_mut() {
            f(path, stage);
        }
    });
}

fn set_hook(f: impl FnMut(&Path, Stage) + 'static) {
    HOOK.with(|h| *h.borrow_mut() = Some(Box::new(f)));
}

fn write(root: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let p = rel.split('/').fold(root.to_path_buf(), |p, c| p.join(c));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

const EX: &str = "Program Files/Microsoft/Exchange Server/V15";

/// A small server laid out like `C:\`.
fn server(root: &Path) {
    write(
        root,
        &format!("{EX}/Logging/HttpProxy/Ecp/HttpProxy_2021030302-1.LOG"),
        b"DateTime,RequestId,AnchorMailbox\r\n#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n2021-03-03T02:00:00.000Z,1,x\r\n",
    );
    write(
        root,
        &format!("{EX}/Logging/CmdletInfra/Others/Cmdlet_1.LOG"),
        b"cmdlet log\r\n",
    );
    write(
        root,
        &format!("{EX}/TransportRoles/Logs/MessageTracking/MSGTRK2021030301-1.LOG"),
        b"#Log-type: Message Tracking Log\r\n",
    );
    write(
        root,
        &format!("{EX}/FrontEnd/HttpProxy/owa/auth/web.config"),
        b"<configuration/>",
    );
    write(
        root,
        &format!("{EX}/FrontEnd/HttpProxy/owa/auth/x.aspx"),
        b"<%@ Page %>",
    );
    write(
        root,
        &format!("{EX}/FrontEnd/HttpProxy/owa/bin/Owa.dll"),
        b"MZ",
    );
    write(
        root,
        "inetpub/logs/LogFiles/W3SVC1/u_ex210303.log",
        b"#Software: Microsoft Internet Information Services 10.0\r\n#Fields: date time cs-uri-stem\r\n",
    );
    write(
        root,
        "Windows/System32/LogFiles/HTTPERR/httperr1.log",
        b"#Software: Microsoft HTTP API 2.0\r\n#Fields: date time c-ip\r\n",
    );
    write(
        root,
        "Windows/System32/inetsrv/config/applicationHost.config",
        br#"<configuration><system.applicationHost><sites><site name="crm"><application path="/"><virtualDirectory path="/" physicalPath="D:\crm" /></application></site></sites></system.applicationHost></configuration>"#,
    );
    write(root, "D/crm/upload.ashx", b"<%@ WebHandler %>");
    write(
        root,
        "Windows/System32/winevt/Logs/Security.evtx",
        b"ElfFile\0 fake",
    );
    write(
        root,
        "Windows/System32/winevt/Logs/Microsoft-Windows-Kernel-PnP%4Configuration.evtx",
        b"ElfFile\0 fake",
    );
    write(
        root,
        "Windows/Microsoft.NET/Framework64/v4.0.30319/Temporary ASP.NET Files/owa/1/App_Web_x.dll",
        b"MZ compiled page",
    );
    write(root, "ProgramData/big.zip", &[b'P'; 4096]);
    write(root, "root/o.dmp", b"MDMP\x93\xa7\0\0 dump");
    write(root, "Users/bob/notes.txt", b"nothing");
    write(root, "Windows/System32/drivers/x.sys", b"MZ");
}

fn manifest_of(package: &Path) -> Manifest {
    let mut z = zip::ZipArchive::new(File::open(package).unwrap()).unwrap();
    let m = z.by_name(MANIFEST_NAME).unwrap();
    serde_json::from_reader(m).unwrap()
}

fn run(root: &Path, out: &Path, f: impl FnOnce(&mut CollectOptions)) -> (Summary, Manifest) {
    let mut o = CollectOptions::new(Some(root.to_path_buf()), out.to_path_buf());
    f(&mut o);
    let s = collect(&o, &Progress::default()).unwrap();
    let m = manifest_of(out);
    (s, m)
}

fn originals(entries: &[FileEntry], root: &Path) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            Path::new(&e.original)
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect()
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for e in walkdir(root) {
        let m = std::fs::symlink_metadata(&e).unwrap();
        if m.is_file() {
            out.insert(
                e.clone(),
                (m.len(), m.modified().unwrap(), std::fs::read(&e).unwrap()),
            );
        }
    }
    out
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn takes_what_the_location_list_names_and_nothing_else() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("C");
    server(&root);
    let before = snapshot(&root);
    let out = tempfile::tempdir().unwrap();
    let pkg = out.path().join("p.zip");
    let (s, m) = run(&root, &pkg, |o| o.max_dump_size = 1024);
    assert!(s.complete(), "{:?}", s.not_collected);
    let mut got = originals(&m.files, &root);
    got.sort();
    let mut want = [
        format!("{EX}/FrontEnd/HttpProxy/owa/auth/web.config"),
        format!("{EX}/FrontEnd/HttpProxy/owa/auth/x.aspx"),
        format!("{EX}/Logging/CmdletInfra/Others/Cmdlet_1.LOG"),
        format!("{EX}/Logging/HttpProxy/Ecp/HttpProxy_2021030302-1.LOG"),
        "D/crm/upload.ashx".to_string(),
        "Windows/System32/LogFiles/HTTPERR/httperr1.log".to_string(),
        "Windows/System32/inetsrv/config/applicationHost.config".to_string(),
        "Windows/System32/winevt/Logs/Security.evtx".to_string(),
        "inetpub/logs/LogFiles/W3SVC1/u_ex210303.log".to_string(),
        "root/o.dmp".to_string(),
    ];
    want.sort();
    assert_eq!(got, want);
    // Metadata only: the compilation cache, and an archive over the dump limit.
    let mut meta = originals(&m.metadata_only, &root);
    meta.sort();
    assert_eq!(
        meta,
        [
            "ProgramData/big.zip",
            "Windows/Microsoft.NET/Framework64/v4.0.30319/Temporary ASP.NET Files/owa/1/App_Web_x.dll"
        ]
    );
    assert!(
        m.metadata_only
            .iter()
            .all(|e| e.member.is_none() && e.sha256.len() == 64)
    );
    assert_eq!(m.exchange_build.as_deref(), Some("15.1.2176.2"));
    assert!(m.exchange_install_path.as_deref().unwrap().ends_with("V15"));
    // Message tracking only when asked.
    let pkg2 = out.path().join("p2.zip");
    let (_, m2) = run(&root, &pkg2, |o| o.message_tracking = true);
    assert!(
        originals(&m2.files, &root)
            .iter()
            .any(|p| p.contains("MSGTRK"))
    );
    // Hashes match the members.
    let r = verify(&pkg).unwrap();
    assert!(r.ok(), "{:?}", r.mismatches);
    assert_eq!(r.package_hash_ok, Some(true));
    assert_eq!(snapshot(&root), before);
}

#[test]
fn files_that_vanish_or_grow_during_the_collection() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("C");
    server(&root);
    let iis = root.join("inetpub/logs/LogFiles/W3SVC1/u_ex210303.log");
    let original = std::fs::read(&iis).unwrap();
    let gone = root.join(format!("{EX}/Logging/CmdletInfra/Others/Cmdlet_1.LOG"));
    let (iis2, gone2) = (iis.clone(), gone.clone());
    set_hook(move |p, stage| {
        if p == gone2 && stage == Stage::Open {
            std::fs::remove_file(p).unwrap();
        }
        if p == iis2 && stage == Stage::Read {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(b"2021-03-03 02:00:00 /owa/auth/x.js\r\n")
                .unwrap();
        }
    });
    let out = tempfile::tempdir().unwrap();
    let pkg = out.path().join("p.zip");
    let (s, m) = run(&root, &pkg, |_| {});
    set_hook(|_, _| {});
    // The vanished file is listed, evidence lost: incomplete.
    assert!(!s.complete());
    let lost = m
        .not_collected
        .iter()
        .find(|n| n.original == gone.display().to_string())
        .expect("vanished file listed");
    assert!(lost.evidence_lost);
    assert!(lost.reason.contains("vanished"), "{}", lost.reason);
    // The growing log: the bytes it had when opened, and a note.
    let e = m
        .files
        .iter()
        .find(|f| f.original == iis.display().to_string())
        .unwrap();
    assert_eq!(e.size, original.len() as u64);
    assert!(e.note.as_deref().unwrap().contains("grew"), "{:?}", e.note);
    use sha2::Digest as _;
    assert_eq!(e.sha256, hex::encode(Sha256::digest(&original)));
    assert!(verify(&pkg).unwrap().ok());
}

#[cfg(unix)]
#[test]
fn links_are_not_followed_out_of_the_target_nor_round_a_loop() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("C");
    server(&root);
    let outside = t.path().join("secret");
    write(
        &outside,
        "Logging/HttpProxy/Ecp/HttpProxy_x.LOG",
        b"#Log-type: HttpProxy Logs\r\n",
    );
    // A link to a folder outside, a link loop, a link to a file outside.
    std::os::unix::fs::symlink(&outside, root.join(format!("{EX}/Logging/out"))).unwrap();
    std::os::unix::fs::symlink(&root, root.join("inetpub/loop")).unwrap();
    std::os::unix::fs::symlink(
        outside.join("Logging/HttpProxy/Ecp/HttpProxy_x.LOG"),
        root.join(format!("{EX}/Logging/HttpProxy/Ecp/HttpProxy_link.LOG")),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let pkg = out.path().join("p.zip");
    let (s, m) = run(&root, &pkg, |_| {});
    assert!(
        m.files
            .iter()
            .all(|f| f.original.starts_with(&*root.to_string_lossy()))
    );
    assert!(
        !m.files
            .iter()
            .any(|f| f.original.contains("HttpProxy_x") || f.original.contains("link"))
    );
    let links: Vec<_> = m
        .not_collected
        .iter()
        .filter(|n| n.reason.contains("symbolic link"))
        .collect();
    assert_eq!(links.len(), 3, "{:?}", m.not_collected);
    // Links are left out on purpose, not lost evidence.
    assert!(s.complete(), "{:?}", s.not_collected);
}

#[test]
fn since_skips_old_logs_and_says_so() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("C");
    server(&root);
    let out = tempfile::tempdir().unwrap();
    let pkg = out.path().join("p.zip");
    let future = Utc::now() + chrono::Duration::days(1);
    let (s, m) = run(&root, &pkg, |o| o.since = Some(future));
    assert!(s.complete());
    // Every log is older than the bound; configurations and scripts stay.
    assert!(
        m.files
            .iter()
            .all(|f| !f.original.ends_with(".LOG") && !f.original.ends_with(".log"))
    );
    assert!(m.files.iter().any(|f| f.original.ends_with("x.aspx")));
    assert!(
        m.not_collected
            .iter()
            .any(|n| n.reason.contains("--since") && !n.evidence_lost)
    );
}

#[test]
fn a_changed_byte_is_found_by_verify() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("C");
    server(&root);
    let out = tempfile::tempdir().unwrap();
    let pkg = out.path().join("p.zip");
    run(&root, &pkg, |_| {});
    let mut bytes = std::fs::read(&pkg).unwrap();
    // A byte of the stored HttpProxy log's data: after its local header and name.
    let name = b"HttpProxy_2021030302-1.LOG";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    bytes[at + 40] ^= 1;
    std::fs::write(&pkg, &bytes).unwrap();
    let r = verify(&pkg).unwrap();
    assert!(!r.ok());
    assert_eq!(r.package_hash_ok, Some(false));
    assert!(
        r.mismatches
            .iter()
            .any(|m| m.contains("HttpProxy_2021030302-1.LOG")),
        "{:?}",
        r.mismatches
    );
}

#[test]
fn refuses_a_package_inside_the_target() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("C");
    server(&root);
    let o = CollectOptions::new(Some(root.clone()), root.join("inetpub").join("p.zip"));
    assert!(matches!(
        collect(&o, &Progress::default()),
        Err(CollectError::InsideTarget { .. })
    ));
    #[cfg(not(windows))]
    assert!(matches!(
        collect(
            &CollectOptions::new(None, t.path().join("p.zip")),
            &Progress::default()
        ),
        Err(CollectError::NoLiveSystem)
    ));
}
