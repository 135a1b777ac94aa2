//! The probe against the mock Exchange server: every state, every build-to-CVE boundary of the
//! build table, and every kind of broken server. Everything binds and connects on loopback
//! (127.0.0.0/8) only; DNS is off (names are pinned), so no test sends a packet beyond the host.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use exhunt_probe::ProbeError;
use exhunt_probe::check::CheckOptions;
use exhunt_probe::http::Timeouts;
use exhunt_probe::model::{Row, State};
use exhunt_probe::run::{ProbeOptions, VecSink, run};
use exhunt_probe::targets::{AddrSet, Input, Shard, Spec, addr_set};
use exhunt_rules::builds::{BuildTable, Update, Version};
use mock_exchange::{Behaviour, ExchangeSite, Mock, Profile, Site, Transport, loopback_range};

fn opts(targets: Vec<String>) -> ProbeOptions {
    ProbeOptions {
        inputs: targets.into_iter().map(Input::Literal).collect(),
        ports: vec![443],
        exclude: AddrSet::default(),
        scope: AddrSet::default(),
        max_targets: 65_536,
        allow_large: false,
        concurrency: 64,
        rate: 0.0,
        per_host_rate: 0.0,
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            tls: Duration::from_secs(2),
            read: Duration::from_secs(2),
        },
        target_timeout: Duration::from_secs(20),
        check: CheckOptions {
            active: false,
            retries: 0,
            max_candidates: 8,
        },
        shard: None,
        done: HashSet::new(),
        user_agent: exhunt_probe::user_agent(Some("tests")),
        threads: 2,
        pinned: vec![],
        dns: false,
    }
}

fn probe(o: ProbeOptions) -> HashMap<String, Row> {
    let mut sink = VecSink::default();
    run(o, &mut sink).unwrap();
    let mut out = HashMap::new();
    for r in sink.0 {
        assert!(
            out.insert(r.target.clone(), r).is_none(),
            "a target reported twice"
        );
    }
    out
}

fn key(a: SocketAddr) -> String {
    a.to_string()
}

fn exchange(build: &str) -> Profile {
    Profile::Exchange(ExchangeSite::new(build))
}

fn start(sites: Vec<(IpAddr, Transport, Profile)>) -> Mock {
    mock_exchange::start(
        sites
            .into_iter()
            .map(|(ip, transport, profile)| Site {
                addr: SocketAddr::new(ip, 0),
                transport,
                profile,
            })
            .collect(),
        2,
    )
    .unwrap()
}

fn ip(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

fn cve<'a>(r: &'a Row, id: &str) -> &'a exhunt_probe::model::CveState {
    r.cves
        .iter()
        .find(|c| c.cve == id)
        .unwrap_or_else(|| panic!("{id} missing in {r:?}"))
}

#[test]
fn every_state_with_its_evidence() {
    let mut only_cu = ExchangeSite::new("15.2.1118.20");
    only_cu.owa_version_header = false;
    only_cu.exporttool_current = false;
    only_cu.exporttool_by_build = false;
    let mut mitigated = ExchangeSite::new("15.2.721.2");
    mitigated.owa_version_header = false;
    mitigated.exporttool_current = false;
    mitigated.exporttool_by_build = false;
    mitigated.proxylogon = Behaviour::Mitigated;
    mitigated.proxyshell = Behaviour::Mitigated;
    mitigated.pns_mitigated = true;
    let mut behaviour = ExchangeSite::new("15.2.792.10");
    behaviour.owa_version_header = false;
    behaviour.exporttool_current = false;
    behaviour.exporttool_by_build = false;
    behaviour.proxylogon = Behaviour::Vulnerable;
    behaviour.proxyshell = Behaviour::Vulnerable;
    // The same CU, answering the behaviour checks as a patched server.
    let mut answers_patched = ExchangeSite::new("15.2.792.15");
    answers_patched.owa_version_header = false;
    answers_patched.exporttool_current = false;
    answers_patched.exporttool_by_build = false;
    // 2019 CU11 base: only ProxyNotShell open, and the rewrite rule installed.
    let mut pns_only = ExchangeSite::new("15.2.986.5");
    pns_only.pns_mitigated = true;
    let mock = start(vec![
        (ip(1, 0, 1), Transport::Tls, exchange("15.2.721.2")), // vulnerable by header
        (ip(1, 0, 2), Transport::Tls, exchange("15.2.1748.43")), // patched
        (ip(1, 0, 3), Transport::Tls, Profile::Exchange(only_cu)), // indeterminate
        (ip(1, 0, 4), Transport::Tls, Profile::NotExchange),
        (ip(1, 0, 5), Transport::Tls, Profile::Exchange(mitigated)),
        (ip(1, 0, 6), Transport::TlsExpired, exchange("15.1.2507.16")),
        (ip(1, 0, 7), Transport::Plain, exchange("15.1.2176.14")),
        (ip(1, 0, 8), Transport::Tls, Profile::Exchange(behaviour)),
        (ip(1, 0, 9), Transport::Tls, Profile::Exchange(pns_only)),
        (
            ip(1, 0, 10),
            Transport::Tls,
            Profile::Exchange(answers_patched),
        ),
    ]);
    let a = mock.addrs().to_vec();
    // A closed port: bind and drop, so nothing listens there.
    let closed = std::net::TcpListener::bind("127.1.0.15:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut targets: Vec<String> = a.iter().map(|x| key(*x)).collect();
    targets[6] = format!("http://{}", a[6]);
    targets.push(key(closed));
    targets.push("not_a..target".into());
    targets.push(format!("mail.outside.test:{}", a[0].port()));
    let mut o = opts(targets);
    o.check.active = true;
    o.scope = {
        let mut s = AddrSet::default();
        s.add(&Spec::parse("127.1.0.0/28").unwrap());
        s.seal();
        s
    };
    // A name pinned to an address outside the scope.
    o.pinned = vec![("mail.outside.test".into(), ip(1, 0, 200))];
    let rows = probe(o);
    assert_eq!(rows.len(), 13);

    let r = &rows[&key(a[0])];
    assert_eq!(r.state, State::Vulnerable, "{r:?}");
    assert_eq!(r.build.as_deref(), Some("15.2.721.2"));
    assert_eq!(r.build_source.as_deref(), Some("X-OWA-Version header"));
    assert_eq!(r.product.as_deref(), Some("Exchange 2019 CU7"));
    assert_eq!(r.cves.len(), 10);
    assert!(r.cves.iter().all(|c| c.state == State::Vulnerable));
    let cert = r.certificate.as_ref().unwrap();
    assert!(
        cert.subject.contains("mail.mock.test") && cert.self_signed && !cert.expired,
        "{cert:?}"
    );
    assert!(
        r.tls.as_deref().unwrap_or_default().starts_with("TLSv1"),
        "{:?}",
        r.tls
    );

    let r = &rows[&key(a[1])];
    assert_eq!(r.state, State::Patched, "{r:?}");
    assert_eq!(r.product.as_deref(), Some("Exchange 2019 CU15 Feb26SU"));

    let r = &rows[&key(a[2])];
    assert_eq!(r.state, State::Indeterminate, "{r:?}");
    assert_eq!(r.build.as_deref(), Some("15.2.1118"));
    assert_eq!(r.build_source.as_deref(), Some("OWA logon page path"));
    // CU12 came after Mar21SU … Jul21SU: rule 1 decides those; Nov22SU needs the revision.
    assert_eq!(cve(r, "CVE-2021-26855").state, State::Patched);
    assert_eq!(cve(r, "CVE-2022-41082").state, State::Indeterminate);
    assert!(cve(r, "CVE-2022-41082").reason.contains("three-part"));
    // The export tool was asked under Current and under the CU's candidate builds.
    assert!(
        r.requests
            .iter()
            .filter(|q| q.check == "exporttool")
            .count()
            >= 2
    );

    let r = &rows[&key(a[3])];
    assert_eq!(r.state, State::NotExchange, "{r:?}");
    assert!(r.reason.contains("nginx"), "{}", r.reason);
    assert!(r.cves.is_empty());

    let r = &rows[&key(a[4])];
    // Mitigations cover ProxyLogon, ProxyShell's entry and ProxyNotShell, not 31207/33766.
    assert_eq!(r.state, State::Vulnerable, "{r:?}");
    assert_eq!(cve(r, "CVE-2021-26855").state, State::Mitigated);
    assert!(cve(r, "CVE-2021-26855").decided_by.contains("cookie"));
    assert_eq!(cve(r, "CVE-2021-34473").state, State::Mitigated);
    assert_eq!(cve(r, "CVE-2022-41040").state, State::Mitigated);
    // CU7 never received Apr21SU or later: rule 3 says vulnerable for what no mitigation covers.
    // (31207 and 33766 are fixed by May21SU and Jul21SU, which CU7 never got.)
    assert_eq!(cve(r, "CVE-2021-31207").state, State::Vulnerable);
    let aborted = r
        .requests
        .iter()
        .filter(|q| {
            q.error
                .as_deref()
                .is_some_and(|e| e.contains("without a response"))
        })
        .count();
    assert_eq!(aborted, 3, "{:?}", r.requests);

    let r = &rows[&key(a[5])];
    assert_eq!(r.state, State::Patched, "2016 CU23 Nov22SU: {r:?}");
    let cert = r.certificate.as_ref().unwrap();
    assert!(
        cert.expired && cert.not_after.starts_with("2020-01-01"),
        "{cert:?}"
    );

    let r = &rows[&key(a[6])];
    assert_eq!(r.scheme, "http");
    assert!(r.certificate.is_none());
    assert_eq!(r.product.as_deref(), Some("Exchange 2016 CU19 May21SU"));
    assert_eq!(cve(r, "CVE-2021-31207").state, State::Patched);
    assert_eq!(cve(r, "CVE-2021-33766").state, State::Vulnerable);

    let r = &rows[&key(a[7])];
    // Only the CU (2019 CU8) was readable; the cookie check decides ProxyLogon.
    assert_eq!(cve(r, "CVE-2021-26855").state, State::Vulnerable, "{r:?}");
    assert!(cve(r, "CVE-2021-26855").decided_by.starts_with("behaviour"));
    assert!(r.requests.iter().any(|q| {
        q.headers
            .get("X-CalculatedBETarget")
            .is_some_and(|v| v == "localhost")
    }));

    let r = &rows[&key(a[8])];
    assert_eq!(r.state, State::Mitigated, "{r:?}");
    assert_eq!(cve(r, "CVE-2022-41040").state, State::Mitigated);
    assert_eq!(cve(r, "CVE-2021-26855").state, State::Patched);
    assert!(r.reason.contains("mitigated"), "{}", r.reason);

    let r = &rows[&key(closed)];
    assert_eq!(r.state, State::Unreachable, "{r:?}");
    assert!(r.reason.contains("connect failed"), "{}", r.reason);

    let r = &rows["not_a..target"];
    assert_eq!(r.state, State::Invalid);
    assert!(r.reason.contains("not a valid host name"), "{}", r.reason);

    let r = &rows[&format!("mail.outside.test:{}", a[0].port())];
    assert_eq!(r.state, State::Skipped, "{r:?}");
    assert!(r.reason.contains("outside the scope"), "{}", r.reason);
    assert!(
        r.requests.is_empty(),
        "nothing sent to an out-of-scope address"
    );
}

/// For every update and every CU that received it: the last build before the fix is
/// vulnerable and the fixed build is patched, end to end through the X-OWA-Version header.
#[test]
fn every_fixed_build_boundary_of_the_table() {
    let table = BuildTable::builtin().unwrap();
    let updates = [
        Update::Mar21SU,
        Update::Apr21SU,
        Update::May21SU,
        Update::Jul21SU,
        Update::Nov22SU,
    ];
    let cve_of = |u: Update| match u {
        Update::Mar21SU => "CVE-2021-26855",
        Update::Apr21SU => "CVE-2021-34473",
        Update::May21SU => "CVE-2021-31207",
        Update::Jul21SU => "CVE-2021-33766",
        Update::Nov22SU => "CVE-2022-41040",
    };
    let mut cases: Vec<(String, Update, State)> = vec![];
    for row in table.rows() {
        for u in updates {
            if row.update == u.name() {
                let v = Version::parse(&row.build).unwrap().parts();
                cases.push((row.build.clone(), u, State::Patched));
                cases.push((
                    format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3] - 1),
                    u,
                    State::Vulnerable,
                ));
            }
        }
    }
    // A CU released after the newest CU that received an update ships the fix (rule 1): its
    // base build is the first fixed build of that CU.
    for u in updates {
        for line in ["15.0.", "15.1.", "15.2."] {
            let newest = table
                .rows()
                .filter(|r| r.update == u.name() && r.build.starts_with(line))
                .filter_map(|r| Version::parse(&r.build))
                .map(|v| v.parts())
                .max()
                .unwrap();
            let next_cu = table
                .rows()
                .filter(|r| r.update.is_empty() && r.build.starts_with(line))
                .filter_map(|r| Version::parse(&r.build))
                .map(|v| v.parts())
                .filter(|p| p[2] > newest[2])
                .min();
            if let Some(p) = next_cu {
                cases.push((
                    format!("{}.{}.{}.{}", p[0], p[1], p[2], p[3]),
                    u,
                    State::Patched,
                ));
            }
        }
    }
    assert!(cases.len() >= 95, "{} cases", cases.len());
    let builds: Vec<String> = {
        let mut b: Vec<String> = cases.iter().map(|c| c.0.clone()).collect();
        b.sort();
        b.dedup();
        b
    };
    let sites = loopback_range(Ipv4Addr::new(127, 2, 0, 1), builds.len() as u32)
        .zip(&builds)
        .map(|(ip, b)| (ip, Transport::Tls, exchange(b)))
        .collect();
    let mock = start(sites);
    let addr_of: HashMap<&String, SocketAddr> =
        builds.iter().zip(mock.addrs().iter().copied()).collect();
    let rows = probe(opts(mock.addrs().iter().map(|a| key(*a)).collect()));
    for (build, u, want) in &cases {
        let r = &rows[&key(addr_of[build])];
        assert_eq!(r.build.as_deref(), Some(build.as_str()));
        let c = cve(r, cve_of(*u));
        assert_eq!(c.state, *want, "{build} {u:?}: {}", c.reason);
        assert_eq!(c.decided_by, "build (X-OWA-Version header)");
    }
}

#[test]
fn broken_servers_are_reported_in_their_rows_and_nothing_hangs() {
    let mock = start(vec![
        (ip(3, 0, 1), Transport::Tls, Profile::Reset),
        (ip(3, 0, 2), Transport::Plain, Profile::Garbage),
        (ip(3, 0, 3), Transport::TlsGarbage, Profile::NotExchange),
        (ip(3, 0, 4), Transport::Tls, Profile::Silent),
        (ip(3, 0, 5), Transport::Tls, Profile::EndlessHeaders),
        (ip(3, 0, 6), Transport::Tls, Profile::GiantHeaders),
        (ip(3, 0, 7), Transport::Tls, Profile::Garbage),
    ]);
    let a = mock.addrs().to_vec();
    let mut targets: Vec<String> = a.iter().map(|x| key(*x)).collect();
    targets[1] = format!("http://{}", a[1]);
    targets.push(format!("nosuchhost.test:{}", a[0].port()));
    let started = Instant::now();
    let rows = probe(opts(targets));
    // Read timeouts are 2 s; the slowest rows (silent, endless) end at theirs.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let st = |i: usize| (&rows[&key(a[i])].state, rows[&key(a[i])].reason.clone());
    assert_eq!(st(0).0, &State::Unreachable, "reset: {}", st(0).1);
    assert!(st(0).1.contains("without a response"), "{}", st(0).1);
    assert_eq!(rows[&key(a[1])].state, State::NotExchange);
    assert!(
        rows[&key(a[1])].reason.contains("not an HTTP response"),
        "{}",
        rows[&key(a[1])].reason
    );
    assert_eq!(st(2).0, &State::NotExchange, "TLS garbage: {}", st(2).1);
    assert!(st(2).1.contains("not a TLS service"), "{}", st(2).1);
    assert_eq!(st(3).0, &State::Unreachable, "silent: {}", st(3).1);
    assert!(st(3).1.contains("no complete response"), "{}", st(3).1);
    assert!(
        matches!(st(4).0, State::Unreachable | State::Indeterminate),
        "endless: {:?}",
        st(4)
    );
    assert_eq!(st(5).0, &State::Indeterminate, "giant: {}", st(5).1);
    assert!(st(5).1.contains("larger than"), "{}", st(5).1);
    assert_eq!(
        st(6).0,
        &State::NotExchange,
        "garbage over TLS: {}",
        st(6).1
    );
    let r = &rows[&format!("nosuchhost.test:{}", a[0].port())];
    assert_eq!(r.state, State::Unreachable);
    assert!(r.reason.starts_with("DNS:"), "{}", r.reason);
}

#[test]
fn large_scopes_need_the_flag_and_malformed_targets_get_rows() {
    let mut o = opts(vec!["10.0.0.0/8".into()]);
    let e = run(o.clone(), &mut VecSink::default()).unwrap_err();
    assert!(
        matches!(
            e,
            ProbeError::ScopeTooLarge {
                targets: 16_777_216,
                limit: 65_536,
                hard: false
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("--allow-large"), "{e}");
    o.inputs = vec![Input::Literal("::/64".into())];
    o.allow_large = true;
    let e = run(o, &mut VecSink::default()).unwrap_err();
    assert!(
        matches!(e, ProbeError::ScopeTooLarge { hard: true, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("probe it in parts"), "{e}");
    // A scope list that does not parse stops the run, naming the entry; an unreadable list too.
    let e = addr_set(&[Input::Literal("192.0.2.0/24, 10.0.0.300".into())]).unwrap_err();
    assert!(
        matches!(&e, ProbeError::BadEntry { text, .. } if text == "10.0.0.300"),
        "{e:?}"
    );
    let missing = std::env::temp_dir().join("exhunt-no-such-scope-list.txt");
    let e = addr_set(&[Input::File(missing.clone())]).unwrap_err();
    assert!(
        matches!(&e, ProbeError::ReadList { path, .. } if *path == missing),
        "{e:?}"
    );
    let rows = probe(opts(vec![
        "10.0.0.300".into(),
        "host:99999".into(),
        "ftp://x".into(),
    ]));
    assert_eq!(rows.len(), 3);
    assert!(rows.values().all(|r| r.state == State::Invalid), "{rows:?}");
}

#[test]
fn shards_are_disjoint_and_cover_the_scope() {
    // 40 sites on one port; targets given as a range.
    let (_mock, probe_port) = mock_exchange::start_range(
        Ipv4Addr::new(127, 4, 0, 1),
        40,
        0,
        |_| exchange("15.2.986.36"),
        2,
    )
    .unwrap();
    let spec = format!("127.4.0.1-40:{probe_port}");
    let mut union: Vec<String> = vec![];
    for i in 1..=3 {
        let mut o = opts(vec![spec.clone()]);
        o.shard = Some(Shard { index: i, count: 3 });
        let rows = probe(o);
        assert!(rows.values().all(|r| r.state == State::Patched));
        union.extend(rows.into_keys());
    }
    let set: HashSet<&String> = union.iter().collect();
    assert_eq!(union.len(), 40, "shards overlap or miss: {}", union.len());
    assert_eq!(set.len(), 40);
}

#[test]
fn exclude_list_is_honoured_and_rates_are_kept() {
    let (_mock, port) = mock_exchange::start_range(
        Ipv4Addr::new(127, 5, 0, 1),
        10,
        0,
        |_| exchange("15.2.1118.20"),
        2,
    )
    .unwrap();
    let mut o = opts(vec![format!("127.5.0.1-10:{port}")]);
    o.exclude.add(&Spec::parse("127.5.0.8-10").unwrap());
    o.exclude.seal();
    o.rate = 10.0;
    let started = Instant::now();
    let mut sink = VecSink::default();
    let summary = run(o, &mut sink).unwrap();
    assert_eq!(sink.0.len(), 7);
    assert_eq!(summary.excluded, 3);
    // Seven targets, one request each at 10 requests/s: at least 0.6 s.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn ipv6_loopback_and_host_names_pinned_to_it() {
    let v6: IpAddr = "::1".parse().unwrap();
    let Ok(mock) = mock_exchange::start(vec![Site::tls(v6, exchange("15.2.1118.20"))], 1) else {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    };
    let a = mock.addrs()[0];
    let mut o = opts(vec![
        format!("[::1]:{}", a.port()),
        format!("https://mail.v6.test:{}/owa/", a.port()),
    ]);
    o.pinned = vec![("mail.v6.test".into(), v6)];
    let rows = probe(o);
    let r = &rows[&format!("[::1]:{}", a.port())];
    assert_eq!(r.state, State::Patched, "{r:?}");
    let r = &rows[&format!("mail.v6.test:{}", a.port())];
    assert_eq!(r.state, State::Patched, "{r:?}");
    assert_eq!(r.ip.as_deref(), Some("::1"));
}
