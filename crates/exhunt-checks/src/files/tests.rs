//! Tests of the file checks' helpers.

use super::*;

fn comps(p: &str) -> Vec<String> {
    p.split(['/', '\\'])
        .map(|s| s.to_ascii_lowercase())
        .collect()
}

#[test]
fn clean_lists_cover_their_folder_only() {
    let l = CleanList::parse(
        "owa-auth.txt",
        "# folder: FrontEnd\\HttpProxy\\owa\\auth\nlogon.aspx\n*.htm\n",
    )
    .unwrap();
    assert!(l.covers(&comps("V15/FrontEnd/HttpProxy/owa/auth/x.aspx")));
    assert!(!l.covers(&comps("V15/FrontEnd/HttpProxy/owa/auth/Current/x.aspx")));
    assert!(l.allows("LOGON.aspx"));
    assert!(l.allows("getidtoken.htm"));
    assert!(!l.allows("logon2.aspx"));
}

#[test]
fn magic_and_benign_archives() {
    assert!(magic(b"!BDN\x01\x02").unwrap().contains("PST"));
    assert!(magic(&[0x30, 0x82, 0x01, 0x0a]).unwrap().contains("DER"));
    assert!(magic(b"<%@ Page Language=\"C#\" %>").is_none());
    assert!(benign_archive(&comps("ProgramData/VMware/VMware Tools/vss_manifests0.zip")).is_some());
    assert!(benign_archive(&comps("ProgramData/McAfee/Agent/x.zip")).is_some());
    assert!(benign_archive(&comps("ProgramData/it.zip")).is_none());
}
