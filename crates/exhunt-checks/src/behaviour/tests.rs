//! Tests of the process-tree correlation.

use super::*;

#[test]
fn identities_and_toolchain() {
    assert!(is_pool_identity("IIS APPPOOL\\DefaultAppPool"));
    assert!(is_pool_identity("iis apppool\\MSExchangeOWAAppPool"));
    assert!(!is_pool_identity("NT AUTHORITY\\SYSTEM"));
    assert!(is_low_privilege("NT AUTHORITY\\NETWORK SERVICE"));
    assert!(is_low_privilege("IIS APPPOOL\\crm"));
    assert!(!is_low_privilege("NT AUTHORITY\\SYSTEM"));
    assert!(!is_low_privilege("LAB\\administrator"));
    assert!(is_toolchain(
        "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\csc.exe"
    ));
    assert!(is_toolchain("C:\\inetpub\\crm\\bin\\roslyn\\csc.exe"));
    assert!(!is_toolchain("C:\\Users\\Public\\csc.exe"));
    assert!(is_toolchain("C:\\Windows\\System32\\conhost.exe"));
    assert!(!is_toolchain("C:\\Windows\\Temp\\conhost.exe"));
    assert!(is_worker("c:\\windows\\system32\\inetsrv\\W3WP.EXE"));
    assert_eq!(
        pool_of(
            "c:\\windows\\system32\\inetsrv\\w3wp.exe -ap \"MSExchangeOWAAppPool\" -v \"v4.0\""
        ),
        Some("MSExchangeOWAAppPool".into())
    );
    assert_eq!(pool_of("w3wp.exe -debug"), None);
    assert_eq!(clip("ééé", 3), "é…");
}

fn sysmon(id: u32, data: &[(&str, &str)]) -> WinEvent {
    WinEvent {
        channel: SYSMON.into(),
        event_id: Some(id),
        computer: "EX01".into(),
        data: data
            .iter()
            .map(|(k, v)| (k.to_string(), exhunt_sources::Val::Str(v.to_string())))
            .collect(),
        ..WinEvent::default()
    }
}

#[test]
fn the_table_is_bounded_and_says_what_it_dropped() {
    let t = ProcessTable::with_limits(3, 2);
    let at = At {
        path: "s.evtx",
        line: 1,
        offset: 0,
        kind: ArtefactKind::Evtx,
    };
    for i in 0..5 {
        let g = format!("{{g{i}}}");
        t.observe(
            &sysmon(1, &[("ProcessGuid", &g), ("Image", "C:\\x.exe")]),
            &at,
        );
    }
    for i in 0..12 {
        // One process connecting many times, then two others.
        let g = if i < 10 {
            "{g0}".to_string()
        } else {
            format!("{{g{i}}}")
        };
        t.observe(
            &sysmon(
                3,
                &[
                    ("ProcessGuid", &g),
                    ("Image", "C:\\x.exe"),
                    ("Initiated", "true"),
                ],
            ),
            &at,
        );
    }
    // Inbound connections and events without a GUID are not kept, and not counted.
    t.observe(
        &sysmon(
            3,
            &[
                ("ProcessGuid", "{g1}"),
                ("Image", "C:\\x.exe"),
                ("Initiated", "false"),
            ],
        ),
        &at,
    );
    t.observe(&sysmon(1, &[("Image", "C:\\x.exe")]), &at);
    {
        let inner = t.lock();
        assert_eq!(inner.procs.len(), 3);
        assert_eq!(inner.dropped_procs, 2);
        assert_eq!(
            inner.conns.len(),
            2,
            "the per-process limit, then the total"
        );
        assert_eq!(inner.dropped_conns, 10 - 2 + 2);
    }
    let c = t.take(&|_| None, None, None);
    assert!(c.findings.is_empty());
    assert_eq!(c.notes.len(), 2, "{:?}", c.notes);
    assert!(c.notes[0].contains("2 process-creation events not kept past the limit of 3"));
    // Emptied, limits kept.
    assert!(t.take(&|_| None, None, None).notes.is_empty());
    assert_eq!(t.lock().max_procs, 3);
}
