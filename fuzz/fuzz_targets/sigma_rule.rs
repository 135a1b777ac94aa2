#![no_main]
//! Loading user-supplied Sigma rules (`--sigma`): arbitrary rule text is loaded or refused with a
//! reason, and whatever loads is evaluated on an event.
use exhunt_rules::sigma::SigmaSet;
use exhunt_sources::{Val, WinEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let p = dir.path().join("rule.yml");
    if std::fs::write(&p, data).is_err() {
        return;
    }
    let mut set = SigmaSet::empty();
    let before = set.len();
    set.load(&p);
    assert!(set.len() > before || !set.rejected.is_empty() || data.is_empty() || set.files.len() == 1);
    let ev = WinEvent {
        channel: "Security".into(),
        provider: "Microsoft-Windows-Security-Auditing".into(),
        event_id: Some(4688),
        data: vec![("CommandLine".into(), Val::Str("cmd /c whoami".into()))],
        unnamed: vec!["a".into(), "b".into()],
        ..WinEvent::default()
    };
    let _ = set.match_event(&ev);
});
