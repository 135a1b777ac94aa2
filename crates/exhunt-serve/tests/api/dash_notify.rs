//! Notification, template, escalation and status-sheet pages; e-mail header injection; and
//! the cross-tenant matrix over the dashboard's new endpoints, pages and tables.

use exhunt_serve::users::UserInput;

use super::dash::{csrf_of, enc, password_login};
use super::*;

const PW: &str = "correct horse battery staple";

async fn user(s: &Srv, name: &str, role: exhunt_serve::Role, org: Option<i64>) -> String {
    s.store
        .add_user_locally(&UserInput {
            name: name.into(),
            role,
            org,
            password: PW.into(),
        })
        .await
        .expect("user");
    password_login(&s.app, name, PW, None)
        .await
        .1
        .expect("session")
}

/// The org id and its compromised scan (uploaded by its own uploader).
async fn org_with_scan(s: &Srv, name: &str, cidr: &str, server: &str) -> i64 {
    let o = org(s, name, &[cidr], &[]).await;
    let (_, up) = token(s, o, "uploader").await;
    let mut doc: Value = serde_json::from_str(&scan_doc(SNAPSHOT)).expect("json");
    doc["servers"][0]["name"] = json!(server);
    let r = call(
        &s.app,
        "POST",
        "/api/v1/results",
        Some(&up),
        doc.to_string(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    o
}

async fn post(app: &Router, uri: &str, cookie: &str, form: String) -> (u16, String, String) {
    let mut b = Request::builder()
        .method("POST")
        .uri(uri)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    b = b.header(header::ACCEPT, "text/html");
    let resp = app
        .clone()
        .oneshot(b.body(Body::from(form)).expect("request"))
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let loc = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned(), loc)
}

#[tokio::test]
async fn notification_pages_templates_exports_and_escalation() {
    use exhunt_serve::Role;
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org_with_scan(&s, "Alpha Corp", "192.0.2.0/24", "ex01").await;
        let op = user(&s, "op", Role::Operator, None).await;
        let up = user(&s, "alpha-up", Role::Uploader, Some(a)).await;
        let rd = user(&s, "alpha-rd", Role::Reader, Some(a)).await;

        // A template made on its page (an unknown placeholder is refused first).
        let csrf = csrf_of(&page(&s.app, "/templates", &op).await.text);
        let (st, text, _) = post(
            &s.app,
            "/templates",
            &op,
            format!(
                "csrf={csrf}&name=Short&subject={}&body={}",
                enc("[{ticket}] {secret}"),
                enc("x")
            ),
        )
        .await;
        assert_eq!(st, 400, "{text}");
        // Over the template pages' limit: 413, saying their limit (not the other forms').
        let (st, text, _) = post(
            &s.app,
            "/templates",
            &op,
            format!(
                "csrf={csrf}&name=Big&subject=s&body={}",
                "x".repeat(641 * 1024)
            ),
        )
        .await;
        assert_eq!(st, 413, "{text}");
        assert!(text.contains("655360 bytes"), "{text}");
        let (st, text, _) = post(
            &s.app,
            "/users",
            &op,
            format!("csrf={csrf}&name={}", "x".repeat(17 * 1024)),
        )
        .await;
        assert_eq!(st, 413, "{text}");
        assert!(text.contains("16384 bytes"), "{text}");
        let (st, text, loc) = post(
            &s.app,
            "/templates",
            &op,
            format!(
                "csrf={csrf}&name=Short&subject={}&body={}",
                enc("[{ticket}] {organisation}: {count} server(s)"),
                enc(
                    "Dear {organisation},\n{servers}\nSeen:\n{seen}\nPlease answer by {deadline}.\n"
                )
            ),
        )
        .await;
        assert_eq!(st, 303, "{text}");
        let tid: i64 = loc
            .trim_start_matches("/templates/")
            .parse()
            .expect("template id");
        assert!(
            page(&s.app, &loc, &op)
                .await
                .text
                .contains("{organisation}")
        );

        // A notification made on the list page with that template.
        let list = page(&s.app, "/notifications", &op).await;
        assert!(list.text.contains("id=new-notification"), "{}", list.text);
        let csrf = csrf_of(&list.text);
        let (st, text, loc) = post(
            &s.app,
            "/notifications",
            &op,
            format!("csrf={csrf}&org={a}&template={tid}"),
        )
        .await;
        assert_eq!(st, 303, "{text}");
        let nid: i64 = loc
            .trim_start_matches("/notifications/")
            .parse()
            .expect("notification id");
        let n = get(&s.app, &format!("/api/v1/notifications/{nid}"), &s.op)
            .await
            .json();
        let ticket = n["ticket"].as_str().expect("ticket").to_string();
        assert_eq!(n["template_id"], tid);
        let d = page(&s.app, &loc, &op).await;
        assert!(
            d.text
                .contains(&format!("[{ticket}] Alpha Corp: 1 server(s)")),
            "{}",
            d.text
        );
        assert!(d.text.contains("ex01 : compromised"), "{}", d.text);
        assert!(
            d.text.contains("value=\"sent\""),
            "the operator may send it"
        );

        // A second one with the built-in template, for the filters.
        let (st, _, loc2) = post(
            &s.app,
            "/notifications",
            &op,
            format!("csrf={csrf}&org={a}&template=0"),
        )
        .await;
        assert_eq!(st, 303);
        let nid2: i64 = loc2
            .trim_start_matches("/notifications/")
            .parse()
            .expect("id");

        // Send the first; the reader sees no button and cannot move it; the uploader
        // acknowledges it on the page.
        let (st, _, _) = post(
            &s.app,
            &format!("/notifications/{nid}/state"),
            &op,
            format!("csrf={csrf}&state=sent"),
        )
        .await;
        assert_eq!(st, 303);
        let rd_page = page(&s.app, &format!("/notifications/{nid}"), &rd).await;
        assert_eq!(rd_page.status, 200);
        assert!(!rd_page.text.contains("/state\""), "{}", rd_page.text);
        let rd_csrf = csrf_of(&rd_page.text);
        let (st, _, _) = post(
            &s.app,
            &format!("/notifications/{nid}/state"),
            &rd,
            format!("csrf={rd_csrf}&state=acknowledged"),
        )
        .await;
        assert_eq!(st, 403);
        let up_page = page(&s.app, &format!("/notifications/{nid}"), &up).await;
        assert!(
            up_page.text.contains("value=\"acknowledged\"")
                && !up_page.text.contains("value=\"resolved\""),
            "{}",
            up_page.text
        );
        let up_csrf = csrf_of(&up_page.text);

        // Filters, sorting, exports.
        let sent = page(&s.app, "/notifications?state=sent", &rd).await;
        assert!(
            sent.text.contains(&ticket) && sent.text.contains("1 notification(s)"),
            "{}",
            sent.text
        );
        let newer = page(&s.app, "/notifications?state=new", &rd).await;
        assert!(!newer.text.contains(&ticket), "{}", newer.text);
        let desc = page(&s.app, "/notifications?sort=id&dir=desc", &rd).await;
        let (p1, p2) = (
            desc.text.find(&format!("/notifications/{nid2}\"")),
            desc.text.find(&format!("/notifications/{nid}\"")),
        );
        assert!(p1 < p2 && p1.is_some(), "descending order");
        assert_eq!(
            page(&s.app, "/notifications?sort=password", &rd)
                .await
                .status,
            400
        );
        assert_eq!(
            page(&s.app, "/notifications?state=bogus", &rd).await.status,
            400
        );
        let csv = page(&s.app, "/notifications?state=sent&format=csv", &rd).await;
        assert!(
            csv.text.starts_with("id,org,ticket,state")
                && csv.text.contains(&ticket)
                && csv.text.lines().count() == 2,
            "{}",
            csv.text
        );
        let json: Value =
            serde_json::from_str(&page(&s.app, "/notifications?format=json", &rd).await.text)
                .expect("json export");
        assert_eq!(json.as_array().map(Vec::len), Some(2));
        // Ids and counts are numbers, as the API gives them; the ticket stays text.
        let sent_row = json
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["ticket"] == json!(ticket)))
            .expect("the sent notification's row");
        assert_eq!(sent_row["id"], json!(nid), "{json}");
        assert_eq!(sent_row["servers"], json!(1), "{json}");
        assert!(sent_row["org"].is_i64(), "{json}");

        // Downloads.
        let eml = page(&s.app, &format!("/notifications/{nid}/eml"), &rd).await;
        assert_eq!(eml.status, 200);
        assert!(
            eml.text
                .contains(&format!("Subject: [{ticket}] Alpha Corp: 1 server(s)\r\n")),
            "{}",
            eml.text
        );
        assert!(
            eml.text.contains("Dear Alpha Corp,\r\n") && eml.text.contains("ex01,compromised"),
            "{}",
            eml.text
        );
        let csvd = page(&s.app, &format!("/notifications/{nid}/csv"), &rd).await;
        assert!(
            csvd.text.starts_with("name,state,last_verdict")
                && csvd.text.contains("ex01,compromised"),
            "{}",
            csvd.text
        );

        // Escalation with a chosen "now": not before 7 days (near miss), level 1 after, level
        // 2 after 14; idempotent; only the sent one.
        let week = std::time::Duration::from_secs(7 * 24 * 3600);
        let now = chrono::Utc::now();
        assert_eq!(
            s.store
                .escalate(now + chrono::Duration::days(6), week)
                .await
                .expect("escalate"),
            0
        );
        assert!(
            !page(&s.app, "/", &rd)
                .await
                .text
                .contains("Escalated notifications")
        );
        assert_eq!(
            s.store
                .escalate(now + chrono::Duration::days(8), week)
                .await
                .expect("escalate"),
            1
        );
        assert_eq!(
            s.store
                .escalate(now + chrono::Duration::days(8), week)
                .await
                .expect("escalate"),
            0
        );
        assert_eq!(
            get(&s.app, &format!("/api/v1/notifications/{nid}"), &s.op)
                .await
                .json()["escalation"],
            1
        );
        assert_eq!(
            s.store
                .escalate(now + chrono::Duration::days(15), week)
                .await
                .expect("escalate"),
            1
        );
        let n = get(&s.app, &format!("/api/v1/notifications/{nid}"), &s.op)
            .await
            .json();
        assert_eq!(
            (n["escalation"].as_i64(), n["state"].as_str()),
            (Some(2), Some("sent")),
            "{n}"
        );
        assert_eq!(
            get(&s.app, &format!("/api/v1/notifications/{nid2}"), &s.op)
                .await
                .json()["escalation"],
            0
        );
        for uri in ["/".to_string(), format!("/orgs/{a}")] {
            let p = page(&s.app, &uri, &rd).await;
            assert!(
                p.text.contains("Escalated notifications") && p.text.contains(&ticket),
                "{uri}: {}",
                p.text
            );
        }
        let audit = get(&s.app, "/api/v1/audit?limit=10000", &s.op).await.text;
        assert!(
            audit.contains(&format!("{ticket} escalated to level 2")),
            "{audit}"
        );
        for want in [
            "\"export.page\"",
            "GET /notifications -> 200",
            "as .eml (dashboard)",
            "\"template.create\"",
        ] {
            assert!(audit.contains(want), "{want}: {audit}");
        }
        // The operator's API runs it too (nothing left to raise).
        assert_eq!(
            call(
                &s.app,
                "POST",
                "/api/v1/notifications/escalate",
                Some(&s.op),
                Body::empty()
            )
            .await
            .json()["escalated"],
            0
        );
        // Acknowledged: no longer shown as escalated.
        let (st, _, _) = post(
            &s.app,
            &format!("/notifications/{nid}/state"),
            &up,
            format!("csrf={up_csrf}&state=acknowledged"),
        )
        .await;
        assert_eq!(st, 303);
        assert!(
            !page(&s.app, "/", &rd)
                .await
                .text
                .contains("Escalated notifications")
        );
        let sheet = page(&s.app, &format!("/notifications/{nid}"), &rd).await;
        assert!(sheet.text.contains("was level 2"), "{}", sheet.text);

        // Deleting the template: the notification is drawn with the built-in one.
        let (st, _, _) = post(
            &s.app,
            &format!("/templates/{tid}/delete"),
            &op,
            format!("csrf={csrf}"),
        )
        .await;
        assert_eq!(st, 303);
        let eml = page(&s.app, &format!("/notifications/{nid}/eml"), &rd).await;
        assert!(
            eml.text
                .contains("Microsoft Exchange servers of Alpha Corp: 1 need action"),
            "{}",
            eml.text
        );
    }
}

#[tokio::test]
async fn status_sheet_and_rollup_pages_export_what_the_api_gives() {
    use exhunt_serve::Role;
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org_with_scan(&s, "Alpha Corp", "192.0.2.0/24", "ex01").await;
        let rd = user(&s, "alpha-rd", Role::Reader, Some(a)).await;
        let (_, tok) = token(&s, a, "reader").await;
        let p = page(&s.app, "/sheet", &rd).await;
        assert_eq!(p.status, 200);
        for want in [
            "internet_facing",
            "evidence_collected",
            "ex01",
            "not recorded",
        ] {
            assert!(p.text.contains(want), "{want}: {}", p.text);
        }
        let page_csv = page(&s.app, "/sheet?format=csv", &rd).await.text;
        let api_csv = get(&s.app, "/api/v1/status-sheet?format=csv", &tok)
            .await
            .text;
        assert_eq!(page_csv, api_csv, "the page exports the API's rows");
        let j: Value = serde_json::from_str(
            &page(&s.app, &format!("/sheet?org={a}&format=json"), &rd)
                .await
                .text,
        )
        .expect("json");
        assert_eq!(j[0]["compromised"], "yes");
        assert_eq!(j[0]["org_id"], json!(a), "{j}");
        assert_eq!(j[0]["server"], "ex01", "{j}");
        assert_eq!(page(&s.app, "/sheet?format=xml", &rd).await.status, 400);
        // The filter forms' "all" choice (and a number field left empty) send `org=`.
        for all in [
            "/sheet?org=",
            "/rollup?org=",
            "/notifications?org=&state=&sort=id&dir=asc",
        ] {
            let p = page(&s.app, all, &rd).await;
            assert_eq!(p.status, 200, "{all}: {}", p.text);
        }
        assert!(
            page(&s.app, "/sheet?org=", &rd).await.text.contains("ex01"),
            "all organisations: the reader's rows"
        );
        for bad in ["/sheet?org=abc", "/rollup?org=1.5", "/notifications?org=x"] {
            assert_eq!(page(&s.app, bad, &rd).await.status, 400, "{bad}");
        }
        let r = page(&s.app, "/rollup", &rd).await;
        assert!(
            r.text.contains("<table id=rollup>") && r.text.contains("unknown"),
            "{}",
            r.text
        );
        let rj: Value = serde_json::from_str(&page(&s.app, "/rollup?format=json", &rd).await.text)
            .expect("json");
        let api: Value = get(&s.app, "/api/v1/rollup/versions", &tok).await.json();
        // The page's export carries the API's numbers, as numbers.
        for k in ["version", "servers", "exposed", "compromised"] {
            assert_eq!(rj[0][k], api[0][k], "{k}: {rj} against {api}");
        }
        assert!(rj[0]["servers"].is_i64(), "{rj}");
    }
}

#[tokio::test]
async fn email_headers_cannot_be_injected_through_names_or_contacts() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        // Control characters are refused in names already; these get through to the e-mail.
        let hostile = [
            "Evil\u{2028}Bcc: victim@example.org",
            "Société <script>alert(1)</script> =?utf-8?B?QmNjOg==?=",
        ];
        for (i, name) in hostile.iter().enumerate() {
            let r = send(&s.app, "POST", "/api/v1/orgs", &s.op, &json!({"name": name, "contacts": ["soc@evil.example\r\nBcc: victim@example.org", "a@x.example, victim@example.org", "+31 20 555 0100", "ok@evil.example"], "scope": {"cidrs": [format!("10.{i}.0.0/16")]}})).await;
            assert_eq!(r.status, 201, "{}", r.text);
            let o = r.json()["id"].as_i64().expect("org");
            let (_, up) = token(&s, o, "uploader").await;
            let mut doc: Value = serde_json::from_str(&scan_doc(SNAPSHOT)).expect("json");
            doc["servers"][0]["name"] = json!(format!("ex{i}"));
            call(
                &s.app,
                "POST",
                "/api/v1/results",
                Some(&up),
                doc.to_string(),
            )
            .await;
            let n = send(
                &s.app,
                "POST",
                "/api/v1/notifications",
                &s.op,
                &json!({"org": o}),
            )
            .await;
            assert_eq!(n.status, 201, "{}", n.text);
            let id = n.json()["id"].as_i64().expect("id");
            let eml = get(&s.app, &format!("/api/v1/notifications/{id}/eml"), &s.op)
                .await
                .text;
            let (head, _) = eml.split_once("\r\n\r\n").expect("headers end");
            // Unfolded (a line that starts with a space continues the header before it, as
            // a long encoded subject is folded): what a mail reader parses.
            let head = head.replace("\r\n ", " ");
            let head = head.as_str();
            let names: Vec<&str> = head
                .split("\r\n")
                .map(|l| l.split(':').next().unwrap_or(""))
                .collect();
            assert_eq!(
                names,
                [
                    "From",
                    "To",
                    "Subject",
                    "Date",
                    "Message-ID",
                    "MIME-Version",
                    "Content-Type"
                ],
                "{name:?}:\n{head}"
            );
            assert!(head.is_ascii(), "{head}");
            assert!(
                !head
                    .split("\r\n")
                    .any(|l| l.to_lowercase().starts_with("bcc")),
                "{head}"
            );
            assert!(
                head.contains("\r\nTo: ok@evil.example\r\n"),
                "only the plain address: {head}"
            );
            // The dashboard's preview escapes the name.
            let c = login(&s.app, &s.op).await;
            let p = page(&s.app, &format!("/notifications/{id}"), &c).await;
            assert!(!p.text.contains("<script>alert(1)"), "{}", p.text);
        }
        // Near miss: an ordinary name stays readable in the subject.
        let o = org(&s, "Alpha Corp", &["192.0.2.0/24"], &[]).await;
        let (_, up) = token(&s, o, "uploader").await;
        call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&up),
            scan_doc(SNAPSHOT),
        )
        .await;
        let id = send(
            &s.app,
            "POST",
            "/api/v1/notifications",
            &s.op,
            &json!({"org": o}),
        )
        .await
        .json()["id"]
            .as_i64()
            .expect("id");
        let eml = get(&s.app, &format!("/api/v1/notifications/{id}/eml"), &s.op)
            .await
            .text;
        assert!(
            eml.contains("Microsoft Exchange servers of Alpha Corp: 1 need action\r\n"),
            "{eml}"
        );
        assert!(eml.contains("\r\nTo: soc@example.org\r\n"), "{eml}");
    }
}

/// A national CERT notifies tens of thousands of owners: the notification list reads them all
/// (its order, its count and its exports), not the store's first page of 10,000, and draws the
/// first 2,000 in the order asked for, saying so.
#[tokio::test]
async fn the_notification_list_covers_more_than_one_store_page() {
    use exhunt_serve::Role;
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org_with_scan(&s, "Alpha Corp", "192.0.2.0/24", "ex01").await;
        let rd = user(&s, "alpha-rd", Role::Reader, Some(a)).await;
        let n = 10_050;
        let mut tx = operator_tx(&s).await;
        sqlx::query(&format!(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n}) \
             INSERT INTO notifications (org_id, ticket, state, servers, created, updated) \
             SELECT {a}, 'EXH-BULK-' || i, 'new', '[]', '2026-11-30T08:00:00Z', \
             '2026-11-30T08:00:00Z' FROM k"
        ))
        .execute(&mut *tx)
        .await
        .expect("notifications by hand");
        tx.commit().await.expect("commit");

        let csv = page(&s.app, "/notifications?format=csv", &rd).await;
        assert_eq!(csv.status, 200);
        assert_eq!(csv.text.lines().count(), n + 1, "a header and every row");
        assert!(csv.text.contains(&format!("EXH-BULK-{n},")));
        let newest = page(&s.app, "/notifications?sort=id&dir=desc", &rd).await;
        assert!(
            newest.text.contains(&format!("{n} notification(s).")),
            "{}",
            &newest.text[..newest.text.len().min(3000)]
        );
        assert!(newest.text.contains(&format!(">EXH-BULK-{n}<")));
        assert!(
            newest
                .text
                .contains("The first 2000 are shown; the export has them all.")
        );
        assert!(
            !newest.text.contains(">EXH-BULK-1<"),
            "drawn: the first 2,000 only"
        );
        let filtered = page(&s.app, "/notifications?state=sent&format=json", &rd).await;
        assert_eq!(filtered.text, "[]");
    }
}
