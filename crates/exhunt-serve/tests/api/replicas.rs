//! Several `exhunt serve` processes behind a load balancer on one database (issue 18, point 1):
//! each replica here is its own store with its own connection pool, as a process would have.
//! What one replica does, the other sees at once (sessions, revocations), and uploads racing
//! through both are stored once.

use super::{SNAPSHOT, call, count, databases, get, login, org, page, probe_row, scan_doc, server};
use exhunt_serve::api::Config;
use serde_json::Value;

#[tokio::test]
async fn replicas_on_one_database_agree() {
    for db in databases().await {
        if db.url.contains(":memory:") {
            continue; // one process's private database: nothing to share
        }
        let one = server(&db, Config::default()).await;
        let store2 = exhunt_serve::Store::open(&db.url)
            .await
            .expect("second replica");
        assert!(
            store2
                .bootstrap_operator("again")
                .await
                .expect("bootstrap")
                .is_none(),
            "the second replica must not make a second first operator"
        );
        let two = exhunt_serve::server::app(store2, Config::default());
        let a = org(&one, "Alpha", &["10.0.0.0/8"], &[]).await;
        let (_, up) = super::token(&one, a, "uploader").await;

        // A dashboard session made on one replica is good on the other.
        let cookie = login(&one.app, &one.op).await;
        let p = page(&two, "/", &cookie).await;
        assert_eq!(p.status, 200, "{}", p.text);

        // The same scan uploaded through both replicas at once: stored once, every answer a
        // success (the loser of the race is told it is a duplicate, not an error).
        let doc = scan_doc(SNAPSHOT);
        let mut tasks = Vec::new();
        for i in 0..8 {
            let app = if i % 2 == 0 {
                one.app.clone()
            } else {
                two.clone()
            };
            let (up, doc) = (up.clone(), doc.clone());
            tasks.push(tokio::spawn(async move {
                call(&app, "POST", "/api/v1/results", Some(&up), doc).await
            }));
        }
        let mut first = 0;
        for t in tasks {
            let r = t.await.expect("task");
            assert!(r.status == 200 || r.status == 201, "{}: {}", db.url, r.text);
            if r.json()["duplicate"] == Value::Bool(false) {
                first += 1;
            }
        }
        assert_eq!(
            first, 1,
            "exactly one upload stores the document ({})",
            db.url
        );
        assert_eq!(count(&one, "scan_docs").await, 1, "{}", db.url);

        // Probe shards posting through both replicas: every row kept once.
        let mut tasks = Vec::new();
        for shard in 0..4u32 {
            let app = if shard % 2 == 0 {
                one.app.clone()
            } else {
                two.clone()
            };
            let up = up.clone();
            let rows: Vec<String> = (0..100)
                .map(|i| {
                    probe_row(
                        &format!("10.{shard}.0.{}", i + 1),
                        &format!("ex{i}.s{shard}.example"),
                        "vulnerable",
                        "2026-11-30T08:00:00Z",
                    )
                })
                .collect();
            tasks.push(tokio::spawn(async move {
                call(
                    &app,
                    "POST",
                    "/api/v1/observations/probe",
                    Some(&up),
                    rows.join("\n"),
                )
                .await
            }));
        }
        for t in tasks {
            let r = t.await.expect("task");
            assert_eq!(r.status, 200, "{}", r.text);
        }
        assert_eq!(count(&one, "observations").await, 400, "{}", db.url);

        // A token revoked through one replica is refused by the other at once.
        let (tid, rd) = super::token(&one, a, "reader").await;
        assert_eq!(get(&two, "/api/v1/whoami", &rd).await.status, 200);
        let r = call(
            &two,
            "DELETE",
            &format!("/api/v1/tokens/{tid}"),
            Some(&one.op),
            axum::body::Body::empty(),
        )
        .await;
        assert!(r.status < 300, "{}", r.text);
        assert_eq!(get(&one.app, "/api/v1/whoami", &rd).await.status, 401);
    }
}
