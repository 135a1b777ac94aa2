//! The cross-tenant attack matrix over the dashboard's new endpoints, pages and tables (users,
//! templates, notification pages and downloads, status sheet and roll-up pages, escalation):
//! organisation A's reader and uploader — with an API token, a token session and a password
//! session — try to read, list, change and delete B's by id, filter, export and search.

use exhunt_serve::Role;
use exhunt_serve::users::UserInput;

use super::dash::{csrf_of, enc, password_login, req};
use super::*;

const PW: &str = "correct horse battery staple";

#[tokio::test]
async fn no_leaks_between_organisations_in_the_dashboard_features() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha Corp", &["192.0.2.0/24"], &[]).await;
        let r = send(&s.app, "POST", "/api/v1/orgs", &s.op, &json!({"name": "Beta Corp", "contacts": ["beta-secret-contact@beta.example"], "scope": {"cidrs": ["198.51.100.0/24"]}})).await;
        let b = r.json()["id"].as_i64().expect("b");
        let (_, b_up) = token(&s, b, "uploader").await;
        let mut b_doc: Value = serde_json::from_str(&scan_doc(SNAPSHOT)).expect("json");
        b_doc["servers"][0]["name"] = json!("ex-b.beta.example");
        let r = call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&b_up),
            b_doc.to_string(),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let b_result = r.json()["results"][0].as_i64().expect("b result");
        let b_server = get(&s.app, &format!("/api/v1/servers?org={b}"), &s.op)
            .await
            .json()[0]["id"]
            .as_i64()
            .expect("b server");
        let add = |name: &str, role, org| UserInput {
            name: name.into(),
            role,
            org,
            password: PW.into(),
        };
        let b_user = s
            .store
            .add_user_locally(&add("bob-of-beta", Role::Uploader, Some(b)))
            .await
            .expect("b user")
            .id;
        let tpl = send(&s.app, "POST", "/api/v1/templates", &s.op, &json!({"name": "Beta only", "subject": "[{ticket}] beta-template-subject", "body": "{servers}"})).await;
        assert_eq!(tpl.status, 201, "{}", tpl.text);
        let t_id = tpl.json()["id"].as_i64().expect("template");
        let n = send(
            &s.app,
            "POST",
            "/api/v1/notifications",
            &s.op,
            &json!({"org": b, "template": t_id}),
        )
        .await;
        let b_note = n.json()["id"].as_i64().expect("b notification");
        let b_ticket = n.json()["ticket"].as_str().expect("ticket").to_string();
        send(
            &s.app,
            "PATCH",
            &format!("/api/v1/notifications/{b_note}"),
            &s.op,
            &json!({"state": "sent"}),
        )
        .await;
        s.store
            .escalate(
                chrono::Utc::now() + chrono::Duration::days(30),
                std::time::Duration::from_secs(7 * 86400),
            )
            .await
            .expect("escalate");
        let secrets = [
            b_ticket.as_str(),
            "ex-b.beta.example",
            "bob-of-beta",
            "beta-secret-contact",
            "Beta Corp",
            "beta-template-subject",
            "Beta only",
        ];
        let before = (
            get(&s.app, &format!("/api/v1/notifications/{b_note}"), &s.op)
                .await
                .text,
            get(&s.app, "/api/v1/users", &s.op).await.text,
            get(&s.app, "/api/v1/templates", &s.op).await.text,
        );

        let (_, a_up) = token(&s, a, "uploader").await;
        let (_, a_rd) = token(&s, a, "reader").await;
        s.store
            .add_user_locally(&add("alice-up", Role::Uploader, Some(a)))
            .await
            .expect("a user");
        s.store
            .add_user_locally(&add("alice-rd", Role::Reader, Some(a)))
            .await
            .expect("a user");
        let mut leaks = Vec::new();
        let check = |leaks: &mut Vec<String>, who: &str, what: &str, status: u16, text: &str| {
            for sec in secrets {
                if text.contains(sec) {
                    leaks.push(format!("{who}: {what} -> {status} shows {sec:?}"));
                }
            }
        };

        // The API, with A's tokens.
        for (who, t) in [("A uploader token", &a_up), ("A reader token", &a_rd)] {
            for uri in [
                "/api/v1/users".to_string(),
                format!("/api/v1/users?org={b}"),
                format!("/api/v1/users?org={b}&format=csv"),
                format!("/api/v1/users/{b_user}"),
                "/api/v1/templates".to_string(),
                format!("/api/v1/templates/{t_id}"),
                format!("/api/v1/notifications?org={b}"),
                "/api/v1/notifications?state=sent&format=csv".to_string(),
                format!("/api/v1/notifications/{b_note}"),
                format!("/api/v1/notifications/{b_note}/eml"),
            ] {
                let r = get(&s.app, &uri, t).await;
                check(&mut leaks, who, &uri, r.status, &r.text);
                if (uri.contains("/users") || uri.contains("/templates")) && r.status != 403 {
                    leaks.push(format!("{who}: GET {uri} -> {} (not 403)", r.status));
                }
            }
            for (m, uri, body) in [
                ("DELETE", format!("/api/v1/users/{b_user}"), json!({})),
                (
                    "POST",
                    "/api/v1/users".to_string(),
                    json!({"name": "mallory", "role": "uploader", "org": b, "password": PW}),
                ),
                (
                    "POST",
                    "/api/v1/users".to_string(),
                    json!({"name": "mallory2", "role": "operator", "password": PW}),
                ),
                (
                    "PUT",
                    format!("/api/v1/templates/{t_id}"),
                    json!({"name": "x", "subject": "x", "body": "x"}),
                ),
                ("DELETE", format!("/api/v1/templates/{t_id}"), json!({})),
                (
                    "POST",
                    "/api/v1/templates".to_string(),
                    json!({"name": "y", "subject": "y", "body": "y"}),
                ),
                (
                    "POST",
                    "/api/v1/notifications/escalate".to_string(),
                    json!({}),
                ),
                (
                    "POST",
                    "/api/v1/notifications".to_string(),
                    json!({"org": b, "template": t_id}),
                ),
                (
                    "PATCH",
                    format!("/api/v1/notifications/{b_note}"),
                    json!({"state": "acknowledged"}),
                ),
            ] {
                let r = send(&s.app, m, &uri, t, &body).await;
                check(&mut leaks, who, &uri, r.status, &r.text);
                if !matches!(r.status, 403 | 404) {
                    leaks.push(format!("{who}: {m} {uri} -> {} {}", r.status, r.text));
                }
            }
        }

        // The pages, with sessions of A's roles (token and password logins).
        let sessions = [
            ("A uploader token session", login(&s.app, &a_up).await),
            ("A reader token session", login(&s.app, &a_rd).await),
            (
                "A uploader user",
                password_login(&s.app, "alice-up", PW, None)
                    .await
                    .1
                    .expect("session"),
            ),
            (
                "A reader user",
                password_login(&s.app, "alice-rd", PW, None)
                    .await
                    .1
                    .expect("session"),
            ),
        ];
        for (who, c) in &sessions {
            let csrf = csrf_of(&page(&s.app, "/account", c).await.text);
            for uri in [
                "/".to_string(),
                format!("/orgs/{a}"),
                format!("/orgs/{b}"),
                "/notifications".to_string(),
                format!("/notifications?org={b}"),
                format!("/notifications?org={b}&format=csv"),
                format!("/notifications?org={b}&state=sent&format=json"),
                "/notifications?format=csv".to_string(),
                format!("/notifications/{b_note}"),
                format!("/notifications/{b_note}/eml"),
                format!("/notifications/{b_note}/csv"),
                "/sheet".to_string(),
                format!("/sheet?org={b}"),
                format!("/sheet?org={b}&format=csv"),
                format!("/sheet?org={b}&format=json"),
                "/sheet?format=csv".to_string(),
                format!("/rollup?org={b}&format=json"),
                "/rollup?format=csv".to_string(),
                "/users".to_string(),
                "/templates".to_string(),
                format!("/templates/{t_id}"),
                "/account".to_string(),
                // B's server and result by id, with their tables' exports and search.
                format!("/servers/{b_server}"),
                format!("/servers/{b_server}?table=scans&format=csv"),
                format!("/servers/{b_server}?table=observations&format=json&q=ex"),
                format!("/results/{b_result}/report"),
                format!("/orgs/{b}?format=csv"),
                format!("/orgs/{b}?format=json&q=ex-b"),
                // Search and filters that only B's rows would satisfy.
                "/?q=Beta".to_string(),
                "/?q=beta&format=json".to_string(),
                "/?state=compromised&format=csv".to_string(),
                format!("/orgs/{a}?q=ex-b"),
                format!("/orgs/{a}?state=compromised&format=json"),
            ] {
                let r = page(&s.app, &uri, c).await;
                check(&mut leaks, who, &uri, r.status, &r.text);
                let path = uri.split('?').next().unwrap_or_default();
                let refused = path.starts_with(&format!("/notifications/{b_note}"))
                    || path == format!("/orgs/{b}")
                    || path == format!("/servers/{b_server}")
                    || path == format!("/results/{b_result}/report")
                    || path.starts_with("/users")
                    || path.starts_with("/templates");
                if refused && !matches!(r.status, 403 | 404) {
                    leaks.push(format!("{who}: GET {uri} -> {}", r.status));
                }
                if !refused && path != "/account" && r.status != 200 {
                    leaks.push(format!("{who}: GET {uri} -> {} (expected 200)", r.status));
                }
            }
            // What A's pages count is A's alone: one organisation and no server (B has one,
            // compromised), so no roll-up row and no sheet row.
            let overview = page(&s.app, "/", c).await.text;
            if !overview.contains("1 organisation(s), 0 server(s).") {
                leaks.push(format!("{who}: the overview counts more than A's"));
            }
            let rollup = page(&s.app, "/rollup?format=json", c).await;
            if rollup.json() != json!([]) {
                leaks.push(format!(
                    "{who}: the roll-up counts more than A's: {}",
                    rollup.text
                ));
            }
            let sheet = page(&s.app, "/sheet?format=csv", c).await.text;
            if sheet.lines().filter(|l| !l.trim().is_empty()).count() > 1 {
                leaks.push(format!("{who}: the sheet has rows beyond A's: {sheet}"));
            }
            for (uri, form) in [
                (
                    format!("/notifications/{b_note}/state"),
                    "state=acknowledged".to_string(),
                ),
                (
                    "/notifications".to_string(),
                    format!("org={b}&template={t_id}"),
                ),
                (format!("/users/{b_user}/disable"), String::new()),
                (
                    "/users".to_string(),
                    format!("name=mallory&role=operator&password={}", enc(PW)),
                ),
                (
                    "/users".to_string(),
                    format!("name=mallory3&role=reader&org={b}&password={}", enc(PW)),
                ),
                (
                    format!("/templates/{t_id}"),
                    "name=x&subject=x&body=x".to_string(),
                ),
                (format!("/templates/{t_id}/delete"), String::new()),
                (
                    "/templates".to_string(),
                    "name=y&subject=y&body=y".to_string(),
                ),
            ] {
                // With the session's own valid CSRF token: only the role and the scope stop it.
                let (st, text, _) = req(
                    &s.app,
                    "POST",
                    &uri,
                    Some(c),
                    Some(format!("csrf={csrf}&{form}")),
                    None,
                )
                .await;
                check(&mut leaks, who, &uri, st, &text);
                if !matches!(st, 403 | 404) {
                    leaks.push(format!("{who}: POST {uri} -> {st}"));
                }
            }
        }
        // The counts above can tell: the operator's pages count B's compromised server.
        let op = login(&s.app, &s.op).await;
        let overview = page(&s.app, "/", &op).await.text;
        assert!(
            overview.contains("2 organisation(s), 1 server(s)."),
            "{overview}"
        );
        let rollup = page(&s.app, "/rollup?format=json", &op).await.json();
        assert_eq!(rollup[0]["compromised"], json!(1), "{rollup}");
        let sheet = page(&s.app, "/sheet?format=csv", &op).await.text;
        assert!(sheet.contains("ex-b.beta.example"), "{sheet}");
        assert!(
            leaks.is_empty(),
            "{} leak(s):\n{}",
            leaks.len(),
            leaks.join("\n")
        );
        // B's notification, users and templates are exactly as they were.
        let after = (
            get(&s.app, &format!("/api/v1/notifications/{b_note}"), &s.op)
                .await
                .text,
            get(&s.app, "/api/v1/users", &s.op).await.text,
            get(&s.app, "/api/v1/templates", &s.op).await.text,
        );
        assert_eq!(before.0, after.0);
        assert_eq!(before.2, after.2);
        assert!(
            after.1.starts_with(&before.1[..before.1.len() - 1]),
            "only A's two users were added"
        );
        assert!(!after.1.contains("mallory"));
        // The near miss: B's own user sees its notification, escalated.
        let (_, bc, _) = password_login(&s.app, "bob-of-beta", PW, None).await;
        let p = page(&s.app, "/", &bc.expect("b session")).await;
        assert!(
            p.text.contains(&b_ticket) && p.text.contains("Escalated notifications"),
            "{}",
            p.text
        );
    }
}

/// On PostgreSQL the database itself keeps the new tables apart: users are read by their own
/// organisation and written only with `*`; login failures and templates are `*`'s only; an
/// organisation's transaction cannot raise or clear another's escalation.
#[tokio::test]
async fn row_level_security_covers_users_templates_and_login_failures() {
    use sqlx::{Connection, Row};
    for db in databases().await {
        if !db.url.starts_with("postgres") {
            continue;
        }
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha Corp", &["192.0.2.0/24"], &[]).await;
        let b = org(&s, "Beta Corp", &["198.51.100.0/24"], &[]).await;
        let add = |name: &str, role, org| UserInput {
            name: name.into(),
            role,
            org,
            password: PW.into(),
        };
        s.store
            .add_user_locally(&add("alice", Role::Reader, Some(a)))
            .await
            .expect("a user");
        s.store
            .add_user_locally(&add("bob", Role::Uploader, Some(b)))
            .await
            .expect("b user");
        s.store
            .add_user_locally(&add("root", Role::Operator, None))
            .await
            .expect("operator");
        assert_eq!(
            password_login(&s.app, "bob", "not the password", None)
                .await
                .0,
            401
        );
        let r = send(
            &s.app,
            "POST",
            "/api/v1/templates",
            &s.op,
            &json!({"name": "T", "subject": "s", "body": "b"}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let (_, b_up) = token(&s, b, "uploader").await;
        let r = call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&b_up),
            scan_doc(SNAPSHOT),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let n = send(
            &s.app,
            "POST",
            "/api/v1/notifications",
            &s.op,
            &json!({"org": b}),
        )
        .await;
        let b_note = n.json()["id"].as_i64().expect("notification");
        send(
            &s.app,
            "PATCH",
            &format!("/api/v1/notifications/{b_note}"),
            &s.op,
            &json!({"state": "sent"}),
        )
        .await;

        let mut conn = sqlx::AnyConnection::connect(&db.url)
            .await
            .expect("connect");
        async fn count(conn: &mut sqlx::AnyConnection, scope: Option<&str>, sql: &str) -> i64 {
            let mut tx = conn.begin().await.expect("begin");
            if let Some(o) = scope {
                sqlx::query(&format!("SELECT set_config('exhunt.org', '{o}', true)"))
                    .fetch_one(&mut *tx)
                    .await
                    .expect("set");
            }
            let n = sqlx::query(sql)
                .fetch_one(&mut *tx)
                .await
                .and_then(|r| r.try_get::<i64, _>("n"))
                .expect("count");
            tx.rollback().await.expect("rollback");
            n
        }
        /// Rows a statement changed, or None when the database refused it.
        async fn change(conn: &mut sqlx::AnyConnection, scope: &str, sql: &str) -> Option<u64> {
            let mut tx = conn.begin().await.expect("begin");
            sqlx::query(&format!("SELECT set_config('exhunt.org', '{scope}', true)"))
                .fetch_one(&mut *tx)
                .await
                .expect("set");
            let r = sqlx::query(sql)
                .execute(&mut *tx)
                .await
                .ok()
                .map(|r| r.rows_affected());
            let _ = tx.rollback().await;
            r
        }
        for t in ["users", "login_failures", "notification_templates"] {
            let sql = format!("SELECT COUNT(*) AS n FROM {t}");
            assert_eq!(
                count(&mut conn, None, &sql).await,
                0,
                "{t} visible without exhunt.org"
            );
            assert!(
                count(&mut conn, Some("*"), &sql).await > 0,
                "{t}: the near miss, '*' sees them"
            );
        }
        let a_s = a.to_string();
        let a_scope = Some(a_s.as_str());
        assert_eq!(
            count(&mut conn, a_scope, "SELECT COUNT(*) AS n FROM users").await,
            0,
            "A's transaction reads no user row, not even its own (password hashes)"
        );
        assert_eq!(
            count(
                &mut conn,
                a_scope,
                "SELECT COUNT(*) AS n FROM login_failures"
            )
            .await,
            0
        );
        assert_eq!(
            count(
                &mut conn,
                a_scope,
                "SELECT COUNT(*) AS n FROM notification_templates"
            )
            .await,
            0
        );
        let a_str = a_s.as_str();
        // As A: no user made, changed or deleted (not even its own), no template, no escalation.
        for sql in [
            format!("INSERT INTO users (name, org_id, role, password_hash, token_id, created, password_changed) VALUES ('mallory', {a}, 'operator', 'x', 1, 'x', 'x')"),
            format!("INSERT INTO users (name, org_id, role, password_hash, token_id, created, password_changed) VALUES ('mallory', {a}, 'reader', 'x', 1, 'x', 'x')"),
            "UPDATE users SET password_hash = 'x'".to_string(),
            "UPDATE users SET role = 'operator', org_id = NULL".to_string(),
            "DELETE FROM users".to_string(),
            "INSERT INTO notification_templates (name, subject, body, created, updated) VALUES ('x', 'x', 'x', 'x', 'x')".to_string(),
            "UPDATE notification_templates SET body = 'x'".to_string(),
            "DELETE FROM login_failures".to_string(),
            format!("UPDATE notifications SET escalation = 0 WHERE org_id = {b}"),
        ] {
            let r = change(&mut conn, a_str, &sql).await;
            assert!(matches!(r, None | Some(0)), "as A, {sql} changed {r:?} row(s)");
        }
        // The near miss: with '*' the same update of the escalation changes B's row.
        assert_eq!(
            change(
                &mut conn,
                "*",
                &format!("UPDATE notifications SET escalation = 0 WHERE org_id = {b}")
            )
            .await,
            Some(1)
        );
    }
}
