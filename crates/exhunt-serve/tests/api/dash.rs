//! The dashboard's logins, users, forms (CSRF) and throttling; on every engine.

use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use exhunt_serve::users::UserInput;

use super::*;

/// The CSRF field of a page.
pub(crate) fn csrf_of(text: &str) -> String {
    text.split("name=csrf value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf field")
        .to_string()
}

/// Sends a request, from `ip` when given (as the listener would tell), with a cookie.
pub(crate) async fn req(
    app: &Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    form: Option<String>,
    ip: Option<&str>,
) -> (u16, String, Option<String>) {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    if form.is_some() {
        b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let mut r = b
        .body(form.map(Body::from).unwrap_or_else(Body::empty))
        .expect("request");
    if let Some(ip) = ip {
        let addr: SocketAddr = format!("{ip}:40000").parse().expect("address");
        r.extensions_mut().insert(ConnectInfo(addr));
    }
    let resp = app.clone().oneshot(r).await.expect("response");
    let status = resp.status().as_u16();
    let set = resp
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_string());
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned(), set)
}

pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A password login from `ip`: the status, and the session cookie when it worked.
pub(crate) async fn password_login(
    app: &Router,
    user: &str,
    password: &str,
    ip: Option<&str>,
) -> (u16, Option<String>, String) {
    let (st, form, csrf_cookie) = req(app, "GET", "/login", None, None, ip).await;
    assert_eq!(st, 200);
    assert!(form.contains("name=password"), "{form}");
    let csrf = csrf_of(&form);
    let (st, text, set) = req(
        app,
        "POST",
        "/login",
        csrf_cookie.as_deref(),
        Some(format!(
            "user={}&password={}&csrf={csrf}",
            enc(user),
            enc(password)
        )),
        ip,
    )
    .await;
    (st, if st == 303 { set } else { None }, text)
}

pub(crate) async fn make_user(s: &Srv, name: &str, role: &str, org: Option<i64>, pw: &str) -> i64 {
    let r = send(
        &s.app,
        "POST",
        "/api/v1/users",
        &s.op,
        &json!({"name": name, "role": role, "org": org, "password": pw}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        !r.text.contains("argon2"),
        "the hash is never shown: {}",
        r.text
    );
    r.json()["id"].as_i64().expect("user id")
}

pub(crate) async fn audit_actions(s: &Srv) -> Vec<String> {
    get(&s.app, "/api/v1/audit?limit=10000", &s.op)
        .await
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap_or(""),
                e["object"].as_str().unwrap_or("")
            )
        })
        .collect()
}

pub(crate) const PW: &str = "correct horse battery staple";

#[tokio::test]
async fn password_logins_roles_password_changes_and_audit() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha Corp", &["192.0.2.0/24"], &[]).await;
        let b = org(&s, "Beta Corp", &["198.51.100.0/24"], &[]).await;
        make_user(&s, "Alice@Alpha.example", "reader", Some(a), PW).await;
        // Bad inputs: short password, name as password, operator with an org, reader without.
        for (body, want) in [
            (
                json!({"name": "bob", "role": "reader", "org": a, "password": "short"}),
                400,
            ),
            (
                json!({"name": "bobbybobbybob", "role": "reader", "org": a, "password": "bobbybobbybob"}),
                400,
            ),
            (
                json!({"name": "op2", "role": "operator", "org": a, "password": PW}),
                400,
            ),
            (
                json!({"name": "rd2", "role": "reader", "password": PW}),
                400,
            ),
            (
                json!({"name": "rd3", "role": "reader", "org": 999, "password": PW}),
                404,
            ),
            (
                json!({"name": "alice@alpha.example", "role": "reader", "org": b, "password": PW}),
                409,
            ),
            (
                json!({"name": "bad name", "role": "reader", "org": a, "password": PW}),
                400,
            ),
        ] {
            let r = send(&s.app, "POST", "/api/v1/users", &s.op, &body).await;
            assert_eq!(r.status, want, "{body}: {}", r.text);
        }
        // A reader or uploader token cannot make users.
        let (_, a_up) = token(&s, a, "uploader").await;
        let r = send(
            &s.app,
            "POST",
            "/api/v1/users",
            &a_up,
            &json!({"name": "x1", "role": "reader", "org": a, "password": PW}),
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.text);

        // Log in (the name in any case), see A, not B.
        let (st, cookie, text) =
            password_login(&s.app, "ALICE@alpha.example", PW, Some("192.0.2.77")).await;
        assert_eq!(st, 303, "{text}");
        let cookie = cookie.expect("session cookie");
        let r = page(&s.app, "/", &cookie).await;
        assert!(
            r.text.contains("Alpha Corp") && !r.text.contains("Beta Corp"),
            "{}",
            r.text
        );
        assert_eq!(
            page(&s.app, &format!("/orgs/{b}"), &cookie).await.status,
            404
        );
        assert_eq!(page(&s.app, "/users", &cookie).await.status, 403);
        let acct = page(&s.app, "/account", &cookie).await;
        assert!(acct.text.contains("alice@alpha.example"), "{}", acct.text);

        // Wrong password, unknown user: one answer.
        let (st1, _, t1) =
            password_login(&s.app, "alice@alpha.example", "wrong password!!", None).await;
        let (st2, _, t2) = password_login(&s.app, "nobody-here", PW, None).await;
        assert_eq!((st1, st2), (401, 401));
        assert_eq!(t1, t2);

        // Change the password: the wrong current one is refused; then the old one no longer
        // logs in, the new one does, and the other session ended.
        let (_, second, _) = password_login(&s.app, "alice@alpha.example", PW, None).await;
        let second = second.expect("second session");
        let acct = page(&s.app, "/account", &cookie).await;
        let csrf = csrf_of(&acct.text);
        let new_pw = "another long passphrase";
        let (st, _, _) = req(
            &s.app,
            "POST",
            "/account/password",
            Some(&cookie),
            Some(format!(
                "csrf={csrf}&current=not-it-at-all&new={}",
                enc(new_pw)
            )),
            None,
        )
        .await;
        assert_eq!(st, 403);
        let (st, text, _) = req(
            &s.app,
            "POST",
            "/account/password",
            Some(&cookie),
            Some(format!(
                "csrf={csrf}&current={}&new={}",
                enc(PW),
                enc(new_pw)
            )),
            None,
        )
        .await;
        assert_eq!(st, 200, "{text}");
        assert_eq!(
            page(&s.app, "/", &cookie).await.status,
            200,
            "this session goes on"
        );
        assert_eq!(
            page(&s.app, "/", &second).await.status,
            303,
            "the other one ended"
        );
        assert_eq!(
            password_login(&s.app, "alice@alpha.example", PW, None)
                .await
                .0,
            401
        );
        assert_eq!(
            password_login(&s.app, "alice@alpha.example", new_pw, None)
                .await
                .0,
            303
        );

        // An operator made on the command line manages users on the page (with the CSRF token).
        s.store
            .add_user_locally(&UserInput {
                name: "root-op".into(),
                role: exhunt_serve::Role::Operator,
                org: None,
                password: PW.into(),
            })
            .await
            .expect("local operator");
        let (_, op_cookie, _) = password_login(&s.app, "root-op", PW, None).await;
        let op_cookie = op_cookie.expect("operator session");
        let users = page(&s.app, "/users", &op_cookie).await;
        assert_eq!(users.status, 200);
        assert!(users.text.contains("alice@alpha.example"), "{}", users.text);
        let csrf = csrf_of(&users.text);
        let (st, text, _) = req(
            &s.app,
            "POST",
            "/users",
            Some(&op_cookie),
            Some(format!(
                "csrf={csrf}&name=bert&role=uploader&org={b}&password={}",
                enc(PW)
            )),
            None,
        )
        .await;
        assert_eq!(st, 201, "{text}");
        assert!(text.contains("bert"), "{text}");
        let list = get(&s.app, "/api/v1/users", &s.op).await.json();
        let alice = list
            .as_array()
            .expect("users")
            .iter()
            .find(|u| u["name"] == "alice@alpha.example")
            .expect("alice")["id"]
            .as_i64()
            .expect("id");
        // Disabling Alice ends her session and her logins.
        let (st, _, _) = req(
            &s.app,
            "POST",
            &format!("/users/{alice}/disable"),
            Some(&op_cookie),
            Some(format!("csrf={csrf}")),
            None,
        )
        .await;
        assert_eq!(st, 303);
        assert_eq!(page(&s.app, "/", &cookie).await.status, 303);
        assert_eq!(
            password_login(&s.app, "alice@alpha.example", new_pw, None)
                .await
                .0,
            401
        );
        // Token logins still work for the dashboard and the API.
        let c = login(&s.app, &a_up).await;
        assert_eq!(page(&s.app, "/", &c).await.status, 200);
        assert_eq!(get(&s.app, "/api/v1/whoami", &a_up).await.status, 200);

        let log = audit_actions(&s).await;
        for want in [
            "user.create user #1 \"alice@alpha.example\"",
            "login.password dashboard session of user #1 \"alice@alpha.example\" from 192.0.2.77",
            "login.failed password login of account \"nobody-here\"",
            "login.failed password login of account \"alice@alpha.example\"",
            "user.password.failed password change of user #1",
            "user.password user #1 \"alice@alpha.example\" changed its password",
            "user.create user #2 \"root-op\" (operator) from the command line",
            "user.disable user #1",
        ] {
            assert!(
                log.iter().any(|l| l.starts_with(want)),
                "no audit entry {want:?} in\n{}",
                log.join("\n")
            );
        }
        // The database holds Argon2id hashes, never the password.
        let mut tx = super::operator_tx(&s).await;
        let rows: Vec<(String,)> = sqlx::query_as("SELECT password_hash FROM users")
            .fetch_all(&mut *tx)
            .await
            .expect("hashes");
        assert_eq!(rows.len(), 3);
        for (h,) in rows {
            assert!(
                h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$") && !h.contains(PW),
                "{h}"
            );
        }
    }
}

#[tokio::test]
async fn forms_without_or_with_a_wrong_csrf_token_are_refused() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha Corp", &["192.0.2.0/24"], &[]).await;
        let alice = make_user(&s, "alice", "reader", Some(a), PW).await;
        s.store
            .add_user_locally(&UserInput {
                name: "op".into(),
                role: exhunt_serve::Role::Operator,
                org: None,
                password: PW.into(),
            })
            .await
            .expect("operator");
        let (_, op, _) = password_login(&s.app, "op", PW, None).await;
        let op = op.expect("operator session");
        let (_, al, _) = password_login(&s.app, "alice", PW, None).await;
        let al = al.expect("alice session");
        let real = csrf_of(&page(&s.app, "/users", &op).await.text);
        let users_before = get(&s.app, "/api/v1/users", &s.op).await.text;
        for bad in [
            "",
            "csrf=&",
            "csrf=exh_0000000000000000000000000000000000000000000000000000000000000000&",
        ] {
            for (cookie, uri, rest) in [
                (
                    &op,
                    "/users",
                    format!("name=mallory&role=operator&password={}", enc(PW)),
                ),
                (&op, &*format!("/users/{alice}/disable"), String::new()),
                (
                    &al,
                    "/account/password",
                    format!("current={}&new={}", enc(PW), enc("mallory's passphrase")),
                ),
                (&op, "/logout", String::new()),
            ] {
                let (st, text, _) = req(
                    &s.app,
                    "POST",
                    uri,
                    Some(cookie),
                    Some(format!("{bad}{rest}")),
                    None,
                )
                .await;
                assert!(
                    st == 403 || (st == 400 && bad.is_empty()),
                    "{uri} with {bad:?}: {st} {text}"
                );
            }
        }
        // Nothing changed: the users, Alice's password, both sessions.
        assert_eq!(get(&s.app, "/api/v1/users", &s.op).await.text, users_before);
        assert_eq!(password_login(&s.app, "alice", PW, None).await.0, 303);
        assert_eq!(page(&s.app, "/", &op).await.status, 200);
        assert_eq!(page(&s.app, "/", &al).await.status, 200);
        // Alice's token on the operator's session does not pass either (tokens are per session).
        let alices = csrf_of(&page(&s.app, "/account", &al).await.text);
        let (st, _, _) = req(
            &s.app,
            "POST",
            &format!("/users/{alice}/disable"),
            Some(&op),
            Some(format!("csrf={alices}")),
            None,
        )
        .await;
        assert_eq!(st, 403);
        // With the right token it works (the near miss).
        let (st, _, _) = req(
            &s.app,
            "POST",
            &format!("/users/{alice}/disable"),
            Some(&op),
            Some(format!("csrf={real}")),
            None,
        )
        .await;
        assert_eq!(st, 303);
    }
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_per_client() {
    use exhunt_serve::users::{MAX_ACCOUNT_FAILURES, MAX_CLIENT_FAILURES};
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha Corp", &["192.0.2.0/24"], &[]).await;
        for n in ["alice", "bob", "carol"] {
            make_user(&s, n, "reader", Some(a), PW).await;
        }
        // Near miss: one failure short of the limit, the right password still works.
        for _ in 0..MAX_ACCOUNT_FAILURES - 1 {
            assert_eq!(
                password_login(&s.app, "bob", "guess guess guess", Some("203.0.113.1"))
                    .await
                    .0,
                401
            );
        }
        assert_eq!(
            password_login(&s.app, "bob", PW, Some("203.0.113.1"))
                .await
                .0,
            303
        );
        // At the limit the account is refused, even with the right password, from anywhere;
        // the other accounts are not.
        for _ in 0..MAX_ACCOUNT_FAILURES {
            assert_eq!(
                password_login(&s.app, "alice", "guess guess guess", Some("203.0.113.2"))
                    .await
                    .0,
                401
            );
        }
        let (st, _, text) = password_login(&s.app, "alice", PW, Some("203.0.113.3")).await;
        assert_eq!(st, 429, "{text}");
        assert!(text.contains("too many failed logins"), "{text}");
        assert_eq!(
            password_login(&s.app, "carol", PW, Some("203.0.113.2"))
                .await
                .0,
            303
        );
        // Per client: failures spread over many (made-up) accounts from one address.
        let used = MAX_ACCOUNT_FAILURES; // 203.0.113.2 failed this many times above
        for i in 0..MAX_CLIENT_FAILURES - used {
            assert_eq!(
                password_login(
                    &s.app,
                    &format!("ghost{i}"),
                    "guess guess guess",
                    Some("203.0.113.2")
                )
                .await
                .0,
                401
            );
        }
        assert_eq!(
            password_login(&s.app, "carol", PW, Some("203.0.113.2"))
                .await
                .0,
            429
        );
        assert_eq!(
            password_login(&s.app, "carol", PW, Some("203.0.113.4"))
                .await
                .0,
            303
        );
        let log = audit_actions(&s).await;
        assert!(log.iter().any(|l| l.starts_with("login.throttled password login of account \"alice\" from 203.0.113.3 refused: too many failures of this account")), "{}", log.join("\n"));
        assert!(log.iter().any(|l| l.starts_with("login.throttled password login of account \"carol\" from 203.0.113.2 refused: too many failures of this client address")), "{}", log.join("\n"));
    }
}
