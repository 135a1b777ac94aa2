//! Fixes from the independent review of the dashboard logins (session 6): each test shows the
//! defect the review found could not come back.

use super::dash::{PW, audit_actions, csrf_of, enc, make_user, password_login, req};
use super::*;

/// Parallel wrong guesses at one account: no more than the limit are ever checked, on either
/// engine (PostgreSQL checked 10 of 40 before: count-then-insert under READ COMMITTED).
#[tokio::test]
async fn parallel_guesses_cannot_overrun_the_throttle() {
    use exhunt_serve::users::MAX_ACCOUNT_FAILURES;
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha Corp", &["192.0.2.0/24"], &[]).await;
        make_user(&s, "victim", "reader", Some(a), PW).await;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = s.store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .password_login(
                        "victim",
                        "wrong wrong wrong",
                        &format!("198.51.100.{}", i % 200 + 1),
                        1,
                    )
                    .await
            }));
        }
        let (mut checked, mut refused) = (0, 0);
        for t in tasks {
            match t.await.expect("task") {
                Err(exhunt_serve::Error::Unauthorized) => checked += 1,
                Err(exhunt_serve::Error::TooManyAttempts(_)) => refused += 1,
                other => panic!("unexpected: {other:?}"),
            }
        }
        assert_eq!(
            checked, MAX_ACCOUNT_FAILURES,
            "{} ({refused} refused)",
            db.url
        );
        assert_eq!(checked + refused, 40);
    }
}

/// The id of the token whose name mentions `name`, as `caller` lists them.
async fn token_named(s: &Srv, caller: &str, name: &str) -> Option<i64> {
    get(&s.app, "/api/v1/tokens", caller)
        .await
        .json()
        .as_array()?
        .iter()
        .find(|t| t["name"].as_str().is_some_and(|n| n.contains(name)))
        .and_then(|t| t["id"].as_i64())
}

async fn revoke(s: &Srv, id: i64, caller: &str) -> Resp {
    let uri = format!("/api/v1/tokens/{id}");
    call(&s.app, "DELETE", &uri, Some(caller), Body::empty()).await
}

/// An uploader cannot lock a dashboard user out by revoking the user's token (the user would
/// still show as enabled, with no way back); an operator's revocation disables the user.
#[tokio::test]
async fn a_users_token_is_revoked_only_by_disabling_the_user() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha Corp", &["192.0.2.0/24"], &[]).await;
        let b = org(&s, "Beta Corp", &["198.51.100.0/24"], &[]).await;
        let alice = make_user(&s, "alice", "reader", Some(a), PW).await;
        make_user(&s, "bert", "reader", Some(b), PW).await;
        let (_, up) = token(&s, a, "uploader").await;
        let alices = token_named(&s, &up, "alice")
            .await
            .expect("alice's login token is listed to her organisation");
        let r = revoke(&s, alices, &up).await;
        assert_eq!(r.status, 409, "{}", r.text);
        assert!(r.text.contains("disables the user"), "{}", r.text);
        assert_eq!(password_login(&s.app, "alice", PW, None).await.0, 303);
        // Near miss: another organisation's user's token is not found, not "conflict".
        let berts = token_named(&s, &s.op, "bert").await.expect("bert's token");
        let r = revoke(&s, berts, &up).await;
        assert_eq!(r.status, 404, "{}", r.text);
        // An operator's revocation disables the user, visibly.
        let r = revoke(&s, alices, &s.op).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let u = get(&s.app, &format!("/api/v1/users/{alice}"), &s.op)
            .await
            .json();
        assert!(u["disabled"].is_string(), "{u}");
        assert_eq!(password_login(&s.app, "alice", PW, None).await.0, 401);
    }
}

/// A too-short new password is refused without counting as a failed login; a failed password
/// login is audited once, by the store, with its account.
#[tokio::test]
async fn short_new_passwords_do_not_lock_and_failures_are_audited_once() {
    use exhunt_serve::users::MAX_ACCOUNT_FAILURES;
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha Corp", &["192.0.2.0/24"], &[]).await;
        make_user(&s, "carol", "reader", Some(a), PW).await;
        let (st, cookie, _) = password_login(&s.app, "carol", PW, None).await;
        assert_eq!(st, 303);
        let cookie = cookie.expect("session");
        let csrf = csrf_of(&page(&s.app, "/account", &cookie).await.text);
        for _ in 0..MAX_ACCOUNT_FAILURES + 1 {
            let (st, text, _) = req(
                &s.app,
                "POST",
                "/account/password",
                Some(&cookie),
                Some(format!("csrf={csrf}&current={}&new=short", enc(PW))),
                None,
            )
            .await;
            assert_eq!(st, 400, "{text}");
        }
        assert_eq!(password_login(&s.app, "carol", PW, None).await.0, 303);

        let before = audit_actions(&s).await;
        assert_eq!(
            password_login(&s.app, "carol", "not the password", None)
                .await
                .0,
            401
        );
        let after = audit_actions(&s).await;
        let new: Vec<&String> = after.iter().filter(|a| !before.contains(a)).collect();
        let failed: Vec<&&String> = new
            .iter()
            .filter(|a| a.starts_with("login.failed"))
            .collect();
        assert_eq!(failed.len(), 1, "{new:?}");
        assert!(failed[0].contains("carol"), "{failed:?}");
    }
}

/// Templates saved from a browser (CRLF line ends) are stored with `\n`: no `\x0d` on pages,
/// nothing that grows on each edit. The .eml CSV defuses formula cells like every CSV.
#[tokio::test]
async fn templates_keep_plain_line_ends() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let r = send(
            &s.app,
            "POST",
            "/api/v1/templates",
            &s.op,
            &json!({"name": "crlf", "subject": "[{ticket}] {organisation}", "body": "Hello,\r\n{ticket}\r\nBye\r"}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let body = r.json()["body"].as_str().unwrap_or("").to_string();
        assert_eq!(body, "Hello,\n{ticket}\nBye\n");
    }
}

/// Strict-Transport-Security with Secure cookies (HTTPS), not without.
#[tokio::test]
async fn hsts_follows_https() {
    for (secure, want) in [(Some(true), true), (Some(false), false)] {
        let store = Store::open("sqlite::memory:").await.expect("store");
        let cfg = Config {
            secure_cookies: secure,
            ..Config::default()
        };
        let app = exhunt_serve::server::app(store, cfg);
        let resp = app
            .oneshot(
                Request::builder()
                    .uri("/login")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(
            resp.headers()
                .get(header::STRICT_TRANSPORT_SECURITY)
                .is_some(),
            want,
            "{secure:?}"
        );
    }
}

/// A long template with non-ASCII text (about 40 KiB, over 100 KiB URL-encoded) saves from
/// its dashboard form, as the API takes it; the body is stored whole.
#[tokio::test]
async fn long_templates_save_from_the_dashboard() {
    let db = &databases().await[0];
    let s = server(db, Config::default()).await;
    let cookie = login(&s.app, &s.op).await;
    let csrf = csrf_of(&page(&s.app, "/templates", &cookie).await.text);
    let body = format!("Bonjour {{organisation}},\n{}\n", "é".repeat(20_000));
    let (st, text, _) = req(
        &s.app,
        "POST",
        "/templates",
        Some(&cookie),
        Some(format!(
            "csrf={csrf}&name=long&subject={}&body={}",
            enc("[{ticket}] {organisation}"),
            enc(&body)
        )),
        None,
    )
    .await;
    assert_eq!(st, 303, "{text}");
    let all = get(&s.app, "/api/v1/templates", &s.op).await.json();
    let saved = all
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == "long")
        .and_then(|t| t["body"].as_str())
        .map(str::len);
    assert_eq!(saved, Some(body.len()));
}

/// Pages stay bounded in a large fleet: past 300 organisations the organisation fields are
/// number fields, not drop-downs of every organisation; the status sheet's page draws at most
/// 2,000 servers while its export has them all.
#[tokio::test]
async fn pages_stay_bounded_in_a_large_fleet() {
    let db = &databases().await[0];
    let s = server(db, Config::default()).await;
    org(&s, "Org 0", &["10.0.0.0/8"], &[]).await;
    let small = org(&s, "Small", &["192.0.2.0/24"], &[]).await;
    for i in 2..=300 {
        org(&s, &format!("Org {i}"), &[], &[]).await;
    }
    let rows: Vec<String> = (0..2_090)
        .map(|i| {
            probe_row(
                &format!("10.{}.{}.{}", i / 62_500, i / 250 % 250, i % 250 + 1),
                &format!("ex{i}.org0.example"),
                "vulnerable",
                "2026-11-30T08:00:00Z",
            )
        })
        .chain((1..=10).map(|i| {
            probe_row(
                &format!("192.0.2.{i}"),
                &format!("mail{i}.small.example"),
                "patched",
                "2026-11-30T08:00:00Z",
            )
        }))
        .collect();
    let r = call(
        &s.app,
        "POST",
        "/api/v1/observations/probe",
        Some(&s.op),
        rows.join("\n"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cookie = login(&s.app, &s.op).await;

    let n = page(&s.app, "/notifications", &cookie).await;
    assert_eq!(n.status, 200, "{}", n.text);
    assert!(n.text.contains("<input name=org type=number"), "{}", n.text);
    assert!(
        !n.text.contains("<select name=org>"),
        "a drop-down of 301 organisations"
    );

    let sheet = page(&s.app, "/sheet", &cookie).await;
    assert_eq!(sheet.status, 200);
    assert!(
        sheet.text.contains("2100 server(s)."),
        "{}",
        &sheet.text[..2000.min(sheet.text.len())]
    );
    assert!(sheet.text.contains("The first 2000 are shown"));
    assert_eq!(
        sheet.text.matches("<tr").count(),
        2_001,
        "head and 2,000 rows"
    );
    let csv = page(&s.app, "/sheet?format=csv", &cookie).await;
    assert_eq!(
        csv.text.lines().count(),
        2_101,
        "the export has every server"
    );
    // Near miss: a small organisation's sheet is drawn whole.
    let one = page(&s.app, &format!("/sheet?org={small}"), &cookie).await;
    assert!(one.text.contains("10 server(s)."), "{}", one.text);
    assert!(!one.text.contains("are shown"));
    assert_eq!(one.text.matches("<tr").count(), 11);
}

/// Behind a trusted proxy the client is the address the proxy appended to X-Forwarded-For
/// (the throttle counts it, the audit log names it); from anywhere else the header is a claim
/// nobody believes.
#[tokio::test]
async fn the_client_behind_a_trusted_proxy_is_the_forwarded_address() {
    for (trusted, want) in [
        (vec!["127.0.0.0/8"], "from 203.0.113.9"),
        (vec![], "from 127.0.0.1"),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
        let cfg = Config {
            trusted_proxies: trusted.iter().map(|c| c.parse().expect("cidr")).collect(),
            ..Config::default()
        };
        let srv = exhunt_serve::Server::bind(&url, "127.0.0.1:0", cfg)
            .await
            .expect("bind");
        let addr = srv.addr;
        let op = srv.first_token.clone().expect("operator").secret;
        let store = srv.store.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(srv.run(async {
            let _ = stop_rx.await;
        }));
        let wait = std::time::Duration::from_secs(5);
        // A refused upload is audited with the client's address.
        let r = raw_http(
            addr,
            &format!("POST /api/v1/results HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {op}\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.9\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"),
            b"{}",
            wait,
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 4"), "{r}");
        let op_caller = store.authenticate(&op).await.expect("operator");
        let audit = store
            .list_audit(&op_caller, &exhunt_serve::store::Filter::default())
            .await
            .expect("audit");
        let rejected: Vec<String> = audit
            .iter()
            .filter(|a| a["action"] == "upload.rejected")
            .map(|a| a["object"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert!(
            rejected[0].ends_with(want),
            "{rejected:?} should end {want:?}"
        );
        assert!(
            !rejected[0].contains("198.51.100.1"),
            "the client's own claim is not believed"
        );
        let _ = stop_tx.send(());
        task.await.expect("join").expect("stops");
    }
}
