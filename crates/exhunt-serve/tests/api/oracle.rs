//! The scope oracle: an uploader's answer must not depend on other organisations' scopes.
//! Were uploads assigned by every scope, a row inside the uploader's own range that another
//! organisation holds a longer prefix of would come back "outside scope", and the uploader
//! would learn where the other organisation sits.

use serde_json::Value;

use super::{call, databases, get, org, probe_row, server, token};
use exhunt_serve::api::Config;

#[tokio::test]
async fn an_uploaders_answer_does_not_reveal_other_scopes() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let alpha = org(&s, "Alpha ISP", &["192.0.2.0/24"], &["alpha.example"]).await;
        let (_, up) = token(&s, alpha, "uploader").await;
        let upload = |ip: &str, host: &str, time: &str| {
            let rows = [
                probe_row(ip, host, "vulnerable", time),
                // Nobody's address, under a domain nobody has yet.
                probe_row("203.0.113.5", "mail.beta.example", "vulnerable", time),
            ]
            .join("\n");
            let app = s.app.clone();
            let up = up.clone();
            async move {
                let r = call(&app, "POST", "/api/v1/observations/probe", Some(&up), rows).await;
                assert_eq!(r.status, 200, "{}", r.text);
                r.json()
            }
        };

        // Before the customer exists.
        let before = upload("192.0.2.201", "ex1", "2026-11-30T08:00:00Z").await;
        // The operator gives a customer a longer prefix inside Alpha's range, and its domain.
        let beta = org(
            &s,
            "Beta (customer)",
            &["192.0.2.128/25"],
            &["beta.example"],
        )
        .await;
        let after = upload("192.0.2.202", "ex2", "2026-11-30T08:05:00Z").await;

        assert_eq!(before, after, "the answer changed with Beta's scope");
        assert_eq!(after["assigned"], 1, "{after}");
        assert_eq!(after["outside_scope"], 1, "{after}");

        // Alpha's rows stay Alpha's: nothing of Alpha's upload reaches Beta.
        let (_, beta_reader) = token(&s, beta, "reader").await;
        let seen: Value = get(&s.app, "/api/v1/observations", &beta_reader)
            .await
            .json();
        assert_eq!(seen.as_array().map(Vec::len), Some(0), "{seen}");
        let mine: Value = get(&s.app, "/api/v1/observations", &up).await.json();
        let ips: Vec<&str> = mine
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["ip"].as_str())
            .collect();
        assert_eq!(ips.len(), 2, "{mine}");
        assert!(ips.contains(&"192.0.2.202"), "{mine}");

        // Near miss: an operator's feed is still assigned by the longest prefix of all scopes.
        let rows = probe_row("192.0.2.203", "ex3", "vulnerable", "2026-11-30T08:10:00Z");
        let r = call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&s.op),
            rows,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let seen: Value = get(&s.app, "/api/v1/observations", &beta_reader)
            .await
            .json();
        assert_eq!(seen.as_array().map(Vec::len), Some(1), "{seen}");
    }
}
