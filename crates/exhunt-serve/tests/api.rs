//! The fleet server through its HTTP API, on SQLite (a temporary file) and, when
//! `EXHUNT_TEST_PG` names a PostgreSQL server (`postgres://user@host/db` or
//! `postgres:///db?host=/socket/dir`), on PostgreSQL too: each test creates its own database
//! there and drops nothing (the cluster is throwaway).
//!
//! The cross-tenant attack matrix is `no_leaks_between_organisations`.

use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use exhunt_serve::Store;
use exhunt_serve::api::Config;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

// What an uploader's answer may reveal of other organisations' scopes: nothing.
#[path = "api/oracle.rs"]
mod oracle;
// Several serve processes on one database.
#[path = "api/replicas.rs"]
mod replicas;
// Fixes from the review of the dashboard logins.
#[path = "api/review.rs"]
mod review;
// HTTPS served directly and PostgreSQL over verified TLS.
#[path = "api/tls.rs"]
mod tls;
// Password logins, notification, template, sheet pages (and their tenancy matrix).
#[path = "api/dash.rs"]
mod dash;
#[path = "api/dash_matrix.rs"]
mod dash_matrix;
#[path = "api/dash_notify.rs"]
mod dash_notify;
// SQL aggregates equal a recount; pages paged, filtered, sorted and exported in SQL.
#[path = "api/scale.rs"]
mod scale;

const SNAPSHOT: &str = include_str!("../../exhunt/tests/snapshots/compromised.json");
const SNAPSHOT_CLEAN: &str = include_str!("../../exhunt/tests/snapshots/clean.json");

fn scan_doc(src: &str) -> String {
    src.replace("\"STARTED\"", "\"2026-11-30T09:00:00Z\"")
        .replace("\"FINISHED\"", "\"2026-11-30T09:05:00Z\"")
}

/// One database per test and engine.
struct Db {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

static N: AtomicU32 = AtomicU32::new(0);

/// The role the server connects as in the PostgreSQL tests.
const APP_ROLE: &str = "exhunt_app";

/// `url` with another database and user: `postgres://[user@]host[:port]/db[?params]`, where
/// the user may also be a `user=` parameter (`postgres:///db?host=/socket&user=me`).
fn pg_url(url: &str, db: &str, user: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &base[scheme_end..];
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("user=") && !p.starts_with("dbname="))
        .collect();
    let user_param = format!("user={user}");
    params.push(&user_param);
    format!("{}{host}/{db}?{}", &base[..scheme_end], params.join("&"))
}

async fn databases() -> Vec<Db> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    // In memory, the pool has one connection (what `exhunt serve --demo` uses): an operation
    // that holds a connection while it asks for a second one would wait for ever there.
    let mut out = vec![
        Db {
            url,
            _dir: Some(dir),
        },
        Db {
            url: "sqlite::memory:".into(),
            _dir: None,
        },
    ];
    if let Ok(pg) = std::env::var("EXHUNT_TEST_PG") {
        if !pg.trim().is_empty() {
            sqlx::any::install_default_drivers();
            let name = format!(
                "exhunt_t{}_{}_{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst),
                chrono::Utc::now().timestamp_micros()
            );
            let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&pg)
                .await
                .expect("EXHUNT_TEST_PG: connecting");
            // The server connects as an ordinary role: a superuser would bypass row-level
            // security, and the tests would not see whether it holds.
            sqlx::query(&format!(
                "DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER; EXCEPTION WHEN OTHERS THEN NULL; END $$"
            ))
            .execute(&mut admin)
            .await
            .expect("EXHUNT_TEST_PG: CREATE ROLE");
            sqlx::query(&format!("CREATE DATABASE {name} OWNER {APP_ROLE}"))
                .execute(&mut admin)
                .await
                .expect("EXHUNT_TEST_PG: CREATE DATABASE");
            out.push(Db {
                url: pg_url(&pg, &name, APP_ROLE),
                _dir: None,
            });
        }
    } else {
        eprintln!("EXHUNT_TEST_PG not set: PostgreSQL half of the storage tests skipped");
    }
    for d in &out {
        eprintln!("storage test on {}", d.url);
    }
    out
}

struct Srv {
    app: Router,
    store: Store,
    op: String,
}

async fn server(db: &Db, cfg: Config) -> Srv {
    let store = Store::open(&db.url).await.expect("open store");
    let op = store
        .bootstrap_operator("bootstrap")
        .await
        .expect("bootstrap")
        .expect("first operator")
        .secret;
    Srv {
        app: exhunt_serve::server::app(store.clone(), cfg),
        store,
        op,
    }
}

struct Resp {
    status: u16,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Resp {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = b.body(body.into()).expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(app: &Router, uri: &str, t: &str) -> Resp {
    call(app, "GET", uri, Some(t), Body::empty()).await
}

async fn send(app: &Router, method: &str, uri: &str, t: &str, v: &Value) -> Resp {
    call(app, method, uri, Some(t), v.to_string()).await
}

async fn org(s: &Srv, name: &str, cidrs: &[&str], domains: &[&str]) -> i64 {
    let r = send(
        &s.app,
        "POST",
        "/api/v1/orgs",
        &s.op,
        &json!({"name": name, "contacts": ["soc@example.org"], "scope": {"cidrs": cidrs, "domains": domains}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["id"].as_i64().expect("org id")
}

async fn token(s: &Srv, org: i64, role: &str) -> (i64, String) {
    let r = send(
        &s.app,
        "POST",
        "/api/v1/tokens",
        &s.op,
        &json!({"org": org, "role": role, "name": format!("{role} of {org}")}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    (
        v["id"].as_i64().expect("id"),
        v["secret"].as_str().expect("secret").to_string(),
    )
}

fn probe_row(ip: &str, host: &str, state: &str, time: &str) -> String {
    json!({
        "schema": "exhunt-probe/1.0", "target": format!("{ip}:443"), "host": host, "ip": ip,
        "port": 443, "scheme": "https", "state": state, "reason": format!("{host} is {state}"),
        "build": "15.1.2176.2", "build_source": "X-OWA-Version header",
        "cves": [{"cve": "CVE-2021-26855", "campaign": "ProxyLogon", "fixed_by": "Mar21SU",
                  "state": state, "decided_by": "build (X-OWA-Version header)", "reason": "r"}],
        "time": time, "elapsed_ms": 5
    })
    .to_string()
}

/// A transaction of the pool with an operator's scope (`*` on PostgreSQL): what SQL typed by
/// a database administrator sees.
async fn operator_tx(s: &Srv) -> sqlx::Transaction<'static, sqlx::Any> {
    let mut tx = s.store.pool().begin().await.expect("begin");
    if s.store.engine() == exhunt_serve::db::Engine::Postgres {
        sqlx::query("SELECT set_config('exhunt.org', '*', true)")
            .fetch_one(&mut *tx)
            .await
            .expect("set_config");
    }
    tx
}

/// Runs `sql` by hand, as an operator would, and commits: what a database administrator's
/// change looks like to the server.
async fn by_hand(s: &Srv, sql: &str) {
    let mut tx = operator_tx(s).await;
    sqlx::query(sql).execute(&mut *tx).await.expect(sql);
    tx.commit().await.expect("commit");
}

/// An organisation with one exposed server and a notification for it: (organisation, its
/// notification as the API answered its creation).
async fn notified(s: &Srv) -> (i64, Value) {
    let a = org(s, "Alpha", &["192.0.2.0/24"], &[]).await;
    let r = call(
        &s.app,
        "POST",
        "/api/v1/observations/probe",
        Some(&s.op),
        probe_row(
            "192.0.2.10",
            "mail.alpha.example",
            "vulnerable",
            "2026-11-30T08:00:00Z",
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(
        &s.app,
        "POST",
        "/api/v1/notifications",
        &s.op,
        &json!({"org": a}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (a, r.json())
}

async fn count(s: &Srv, table: &str) -> i64 {
    use sqlx::Row;
    // On PostgreSQL, row-level security shows nothing to a connection that does not say whom it
    // serves: count as the server does for an operator.
    let mut tx = operator_tx(s).await;
    let r = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    r.try_get::<i64, _>("n").expect("n")
}

#[tokio::test]
async fn scans_are_validated_stored_once_and_drawn() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha", &["192.0.2.0/24"], &["alpha.example"]).await;
        let (_, up) = token(&s, a, "uploader").await;
        let (_, rd) = token(&s, a, "reader").await;
        let doc = scan_doc(SNAPSHOT);

        let r = call(&s.app, "POST", "/api/v1/results", Some(&up), doc.clone()).await;
        assert_eq!(r.status, 201, "{}: {}", db.url, r.text);
        let first = r.json();
        assert_eq!(first["duplicate"], false);
        let rid = first["results"][0].as_i64().expect("result id");

        // The same document again, re-indented: stored once.
        let pretty = serde_json::to_string(&serde_json::from_str::<Value>(&doc).expect("json"))
            .expect("json");
        let r = call(&s.app, "POST", "/api/v1/results", Some(&up), pretty).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["duplicate"], true);
        assert_eq!(r.json()["results"], first["results"]);
        assert_eq!(count(&s, "scan_docs").await, 1);
        assert_eq!(count(&s, "scan_results").await, 1);

        // Truncated, foreign, another major version, a schema violation: 422, nothing stored.
        let cut = &doc[..doc.len() / 2];
        let mut bad_field: Value = serde_json::from_str(&doc).expect("json");
        bad_field["servers"][0]["surprise"] = json!(true);
        let mut other_major: Value = serde_json::from_str(&doc).expect("json");
        other_major["schema_version"] = json!("2.0");
        for (body, says) in [
            (cut.to_string(), "truncated"),
            ("{\"hello\": \"world\"}".to_string(), "no schema_version"),
            (other_major.to_string(), "schema 2.0"),
            (bad_field.to_string(), "does not follow result schema"),
            ("PK\u{3}\u{4}binary".to_string(), "not a complete JSON"),
        ] {
            let r = call(&s.app, "POST", "/api/v1/results", Some(&up), body).await;
            assert_eq!(r.status, 422, "{says}: {}", r.text);
            assert_eq!(r.json()["code"], "invalid-document");
            assert!(
                r.json()["error"].as_str().unwrap_or("").contains(says),
                "{says}: {}",
                r.text
            );
        }
        assert_eq!(count(&s, "scan_docs").await, 1);
        assert_eq!(count(&s, "scan_results").await, 1);

        // Readers read but do not upload.
        let r = call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&rd),
            scan_doc(SNAPSHOT_CLEAN),
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.text);

        // The server, its latest verdict, the record, the document and the report.
        let servers = get(&s.app, "/api/v1/servers", &rd).await.json();
        assert_eq!(servers.as_array().map(Vec::len), Some(1));
        assert_eq!(servers[0]["name"], "ex01");
        assert_eq!(servers[0]["last_verdict"], "compromised");
        assert_eq!(servers[0]["state"], "compromised");
        assert_eq!(servers[0]["states"]["proxy-logon"], "compromised");
        let rec = get(&s.app, &format!("/api/v1/results/{rid}"), &rd)
            .await
            .json();
        assert_eq!(rec["verdicts"]["proxy-logon"], "compromised");
        let d = get(&s.app, &format!("/api/v1/results/{rid}/document"), &rd).await;
        assert_eq!(d.status, 200);
        assert_eq!(d.json()["servers"].as_array().map(Vec::len), Some(1));
        let h = get(&s.app, &format!("/api/v1/results/{rid}/report.html"), &rd).await;
        assert_eq!(h.status, 200);
        assert!(
            h.text.contains("<html") && h.text.contains("EX01"),
            "{}",
            &h.text[..200.min(h.text.len())]
        );

        // An operator must name the organisation; a second, different document adds a record.
        let r = call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&s.op),
            scan_doc(SNAPSHOT_CLEAN),
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.text);
        let r = call(
            &s.app,
            "POST",
            &format!("/api/v1/results?org={a}"),
            Some(&s.op),
            scan_doc(SNAPSHOT_CLEAN),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(count(&s, "scan_results").await, 2);

        // Deleting the record takes the document with it.
        let r = call(
            &s.app,
            "DELETE",
            &format!("/api/v1/results/{rid}"),
            Some(&up),
            Body::empty(),
        )
        .await;
        assert_eq!(r.status, 204, "{}", r.text);
        assert_eq!(count(&s, "scan_docs").await, 1);
    }
}

#[tokio::test]
async fn observations_go_to_the_longest_prefix_or_the_unassigned_queue() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(
            &s,
            "Alpha",
            &["192.0.2.0/24", "2001:db8:a::/48"],
            &["alpha.example"],
        )
        .await;
        let b = org(&s, "Beta", &["192.0.2.128/25", "2001:db8:b::/48"], &[]).await;
        let rows = [
            probe_row(
                "192.0.2.10",
                "mail.alpha.example",
                "vulnerable",
                "2026-11-30T08:00:00Z",
            ),
            probe_row(
                "192.0.2.200",
                "owa.beta.example",
                "patched",
                "2026-11-30T08:00:01Z",
            ),
            probe_row(
                "2001:db8:b::25",
                "ex6.beta.example",
                "mitigated",
                "2026-11-30T08:00:02Z",
            ),
            probe_row(
                "2001:db8:a::25",
                "ex6.alpha.example",
                "vulnerable",
                "2026-11-30T08:00:03Z",
            ),
            probe_row(
                "203.0.113.5",
                "stray.example",
                "vulnerable",
                "2026-11-30T08:00:04Z",
            ),
        ]
        .join("\n");
        let r = call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&s.op),
            rows.clone(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["assigned"], 4, "{}", r.text);
        assert_eq!(r.json()["unassigned"], 1, "{}", r.text);
        // Again: every row is a duplicate.
        let r = call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&s.op),
            rows,
        )
        .await;
        assert_eq!(r.json()["duplicates"], 5, "{}", r.text);

        let in_a = get(&s.app, &format!("/api/v1/observations?org={a}"), &s.op)
            .await
            .json();
        let ips: Vec<&str> = in_a
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["ip"].as_str())
            .collect();
        assert_eq!(ips, ["192.0.2.10", "2001:db8:a::25"]);
        assert_eq!(in_a[0]["decided_by"], "build (X-OWA-Version header)");
        let in_b = get(&s.app, &format!("/api/v1/observations?org={b}"), &s.op)
            .await
            .json();
        assert_eq!(in_b.as_array().map(Vec::len), Some(2));

        // Shadowserver: an address of Beta's, one of nobody's (with a web shell).
        let csv = "\"timestamp\",\"severity\",\"ip\",\"protocol\",\"port\",\"hostname\",\"tag\",\"asn\",\"geo\",\"region\",\"city\",\"naics\",\"hostname_source\",\"sector\",\"version\",\"servername\",\"url\"\n\
\"2021-03-10 00:00:00\",\"critical\",\"192.0.2.130\",\"tcp\",\"443\",\"\",\"exchange;cve-2021-26855\",\"64500\",\"NL\",\"\",\"\",\"\",\"\",\"\",\"15.1.2176.2\",\"EX02\",\"\"\n\
\"2021-03-10 00:00:00\",\"critical\",\"198.51.100.77\",\"tcp\",\"443\",\"\",\"exchange;webshell\",\"64501\",\"NL\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\"\n";
        let r = call(
            &s.app,
            "POST",
            "/api/v1/observations/shadowserver",
            Some(&s.op),
            csv,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            (
                r.json()["assigned"].as_i64(),
                r.json()["unassigned"].as_i64()
            ),
            (Some(1), Some(1))
        );

        // IntelMQ events of the same kind (one JSON array).
        let events = json!([
            {"feed.name": "Vulnerable-Exchange-Server", "time.source": "2021-03-11T00:00:00+00:00", "source.ip": "192.0.2.131",
             "source.port": 443, "classification.type": "vulnerable-system", "classification.identifier": "vulnerable-exchange-server",
             "product.vulnerabilities": "cve-2021-34473"}
        ]);
        let r = send(
            &s.app,
            "POST",
            "/api/v1/observations/intelmq",
            &s.op,
            &events,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["assigned"], 1, "{}", r.text);
        let beta = get(
            &s.app,
            &format!("/api/v1/observations?org={b}&source=intelmq"),
            &s.op,
        )
        .await
        .json();
        assert_eq!(beta[0]["campaigns"]["proxy-shell"], "vulnerable", "{beta}");
        assert!(
            beta[0]["decided_by"]
                .as_str()
                .unwrap_or("")
                .contains("IntelMQ"),
            "{beta}"
        );

        // The queue, and its resolution by an operator.
        let q = get(&s.app, "/api/v1/unassigned", &s.op).await.json();
        assert_eq!(q.as_array().map(Vec::len), Some(2), "{q}");
        assert!(
            q[0]["unassigned_reason"]
                .as_str()
                .unwrap_or("")
                .contains("no organisation's scope")
        );
        let webshell = q
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["source"] == "shadowserver")
            .cloned()
            .unwrap_or_default();
        assert_eq!(webshell["state"], "compromised");
        let wid = webshell["id"].as_i64().expect("id");
        let r = send(
            &s.app,
            "POST",
            &format!("/api/v1/unassigned/{wid}/assign"),
            &s.op,
            &json!({"org": b}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["org_id"], b);
        assert_eq!(
            get(&s.app, "/api/v1/unassigned", &s.op)
                .await
                .json()
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        let servers = get(
            &s.app,
            &format!("/api/v1/servers?org={b}&name=198.51.100.77"),
            &s.op,
        )
        .await
        .json();
        assert_eq!(servers[0]["last_state"], "compromised", "{servers}");
        assert_eq!(
            servers[0]["states"]["post-exploitation"], "compromised",
            "{servers}"
        );
        let alpha = get(
            &s.app,
            &format!("/api/v1/servers?org={a}&name=mail.alpha.example"),
            &s.op,
        )
        .await
        .json();
        assert_eq!(alpha[0]["state"], "exposed", "{alpha}");
        assert_eq!(alpha[0]["states"]["proxy-logon"], "exposed", "{alpha}");
        assert_eq!(alpha[0]["states"]["proxy-shell"], "unknown", "{alpha}");

        // The curve: Alpha's two vulnerable servers on 2026-11-30; Beta's web shell (assigned
        // above) on 2021-03-10.
        let t = get(&s.app, &format!("/api/v1/trend?org={a}"), &s.op)
            .await
            .json();
        assert_eq!(
            t,
            json!([{"day": "2026-11-30", "exposed": 2, "compromised": 0}]),
            "{t}"
        );
        let t = get(&s.app, &format!("/api/v1/trend?org={b}"), &s.op)
            .await
            .json();
        assert!(
            t.as_array().is_some_and(|d| d
                .iter()
                .any(|p| p["day"] == "2021-03-10" && p["compromised"] == 1)),
            "{t}"
        );

        // An uploader of Alpha: its rows are kept, Beta's addresses and nobody's are not.
        let (_, up_a) = token(&s, a, "uploader").await;
        let rows = [
            probe_row(
                "192.0.2.11",
                "ex2.alpha.example",
                "patched",
                "2026-11-30T09:00:00Z",
            ),
            probe_row(
                "192.0.2.201",
                "x.beta.example",
                "vulnerable",
                "2026-11-30T09:00:00Z",
            ),
            probe_row(
                "203.0.113.9",
                "x.example",
                "vulnerable",
                "2026-11-30T09:00:00Z",
            ),
        ]
        .join("\n");
        let r = call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&up_a),
            rows,
        )
        .await;
        // 192.0.2.201 is in Alpha's /24 and in Beta's longer /25: Alpha's own scan of its own
        // range stays Alpha's (judged by Alpha's scope alone: no scope oracle, see
        // `an_uploaders_answer_does_not_reveal_other_scopes`); 203.0.113.9 is nobody's.
        assert_eq!(r.json()["assigned"], 2, "{}", r.text);
        assert_eq!(r.json()["outside_scope"], 1, "{}", r.text);
        assert_eq!(
            get(&s.app, "/api/v1/unassigned", &s.op)
                .await
                .json()
                .as_array()
                .map(Vec::len),
            Some(1)
        );

        // A cut line: nothing of the batch is stored.
        let before = count(&s, "observations").await;
        let mut rows = probe_row(
            "192.0.2.12",
            "ex3.alpha.example",
            "patched",
            "2026-11-30T10:00:00Z",
        );
        rows.push('\n');
        rows.push_str(
            &probe_row(
                "192.0.2.13",
                "ex4.alpha.example",
                "patched",
                "2026-11-30T10:00:00Z",
            )[..40],
        );
        let r = call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&up_a),
            rows,
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(r.text.contains("line 2"), "{}", r.text);
        assert_eq!(count(&s, "observations").await, before);
    }
}

#[tokio::test]
async fn bodies_too_large_or_unauthenticated_are_refused_clearly() {
    for db in databases().await {
        let s = server(
            &db,
            Config {
                body_limit: 4096,
                ..Config::default()
            },
        )
        .await;
        let a = org(&s, "Alpha", &["192.0.2.0/24"], &[]).await;
        let (tid, up) = token(&s, a, "uploader").await;
        let r = call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&up),
            scan_doc(SNAPSHOT),
        )
        .await;
        assert_eq!(r.status, 413, "{}", r.text);
        assert_eq!(r.json()["code"], "too-large");
        assert_eq!(count(&s, "scan_docs").await, 0);

        for t in [None, Some("exh_00"), Some("")] {
            let r = call(&s.app, "GET", "/api/v1/servers", t, Body::empty()).await;
            assert_eq!(r.status, 401, "{}", r.text);
            assert_eq!(r.json()["code"], "unauthorized");
        }
        // A revoked token is dead.
        let r = call(
            &s.app,
            "DELETE",
            &format!("/api/v1/tokens/{tid}"),
            Some(&s.op),
            Body::empty(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(get(&s.app, "/api/v1/servers", &up).await.status, 401);
        // The database has the hash, never the secret.
        let leaked = sqlx::query(&format!(
            "SELECT id FROM tokens WHERE secret_sha256 = '{up}'"
        ))
        .fetch_optional(s.store.pool())
        .await
        .expect("query");
        assert!(leaked.is_none());
        // Bad ids and filters are 400s, unknown paths 404s, all JSON.
        assert_eq!(get(&s.app, "/api/v1/servers/abc", &s.op).await.status, 400);
        assert_eq!(
            get(&s.app, "/api/v1/servers?limit=many", &s.op)
                .await
                .status,
            400
        );
        assert_eq!(
            get(&s.app, "/api/v1/servers?format=xml", &s.op)
                .await
                .status,
            400
        );
        let r = get(&s.app, "/api/v1/nothing", &s.op).await;
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (404, Some("not-found"))
        );
        // A second bootstrap makes no second operator.
        assert!(
            s.store
                .bootstrap_operator("again")
                .await
                .expect("bootstrap")
                .is_none()
        );
        // Bad scopes are refused with the reason.
        let r = send(
            &s.app,
            "POST",
            "/api/v1/orgs",
            &s.op,
            &json!({"name": "X", "scope": {"cidrs": ["192.0.2.7/24"]}}),
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains("host bits"), "{}", r.text);
        let r = send(
            &s.app,
            "POST",
            "/api/v1/orgs",
            &s.op,
            &json!({"name": "Alpha"}),
        )
        .await;
        assert_eq!(r.status, 409, "{}", r.text);
    }
}

/// Markers of organisation B's data: none may appear in anything A's tokens get back.
const B_MARKERS: [&str; 4] = [
    "Beta Corp",
    "ex-b.beta.example",
    "198.51.100.20",
    "beta-secret-contact",
];

/// The `org_id` column of a CSV export, one value per row (none when it has no such column).
fn csv_org_ids(text: &str) -> Vec<String> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let Some(col) = r
        .headers()
        .ok()
        .and_then(|h| h.iter().position(|c| c == "org_id"))
    else {
        return Vec::new();
    };
    r.records()
        .map(|rec| rec.map(|rec| rec.get(col).unwrap_or_default().to_string()))
        .collect::<Result<_, _>>()
        .expect("a CSV export")
}

#[tokio::test]
async fn no_leaks_between_organisations() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha Corp", &["192.0.2.0/24"], &["alpha.example"]).await;
        let r = send(
            &s.app,
            "POST",
            "/api/v1/orgs",
            &s.op,
            &json!({"name": "Beta Corp", "contacts": ["beta-secret-contact@beta.example"],
                    "scope": {"cidrs": ["198.51.100.0/24"], "domains": ["beta.example"]}}),
        )
        .await;
        let b = r.json()["id"].as_i64().expect("b");
        let (_, a_up) = token(&s, a, "uploader").await;
        let (_, a_rd) = token(&s, a, "reader").await;
        let (b_tok_id, b_up) = token(&s, b, "uploader").await;

        // A's data, and B's.
        let r = call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&a_up),
            scan_doc(SNAPSHOT_CLEAN),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
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
        call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&a_up),
            [
                probe_row(
                    "192.0.2.10",
                    "mail.alpha.example",
                    "vulnerable",
                    "2026-11-29T08:00:00Z",
                ),
                probe_row(
                    "192.0.2.10",
                    "mail.alpha.example",
                    "patched",
                    "2026-11-30T08:00:00Z",
                ),
            ]
            .join("\n"),
        )
        .await;
        let r = call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&b_up),
            probe_row(
                "198.51.100.20",
                "ex-b.beta.example",
                "vulnerable",
                "2026-11-30T08:00:00Z",
            ),
        )
        .await;
        assert_eq!(r.json()["assigned"], 1, "{}", r.text);
        let b_server = get(&s.app, &format!("/api/v1/servers?org={b}"), &s.op)
            .await
            .json()[0]["id"]
            .as_i64()
            .expect("b server");
        let b_obs = get(&s.app, &format!("/api/v1/observations?org={b}"), &s.op)
            .await
            .json()[0]["id"]
            .as_i64()
            .expect("b obs");
        let r = send(
            &s.app,
            "POST",
            "/api/v1/notifications",
            &s.op,
            &json!({"org": b}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let b_note = r.json()["id"].as_i64().expect("b notification");
        // Sent: from there a tenant's uploader may acknowledge its own, so only the scope (not
        // the state machine) can stop A from acknowledging B's.
        let r = send(
            &s.app,
            "PATCH",
            &format!("/api/v1/notifications/{b_note}"),
            &s.op,
            &json!({"state": "sent"}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        // One observation in the unassigned queue, which tenants must neither see nor change.
        let r = call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&s.op),
            probe_row(
                "203.0.113.77",
                "stray.example",
                "vulnerable",
                "2026-11-30T08:00:00Z",
            ),
        )
        .await;
        assert_eq!(r.json()["unassigned"], 1, "{}", r.text);
        let snapshot_b = |s: &Srv| {
            let app = s.app.clone();
            let op = s.op.clone();
            async move {
                let mut all = Vec::new();
                for p in [
                    "servers",
                    "results",
                    "observations",
                    "tokens",
                    "notifications",
                ] {
                    all.push(get(&app, &format!("/api/v1/{p}?org={b}"), &op).await.text);
                }
                all.push(get(&app, &format!("/api/v1/orgs/{b}"), &op).await.text);
                all.push(get(&app, "/api/v1/unassigned", &op).await.text);
                // B's audit entries (A's own reads and refusals are logged under A).
                let audit = get(&app, "/api/v1/audit?limit=10000", &op).await.json();
                let of_b: Vec<Value> = audit
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|e| e["org_id"] == json!(b))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                assert!(!of_b.is_empty());
                all.push(Value::Array(of_b).to_string());
                all
            }
        };
        let before = snapshot_b(&s).await;

        let mut leaks = Vec::new();
        // The exports read by their org_id column below have one, and show B's rows to the
        // operator: the check can tell.
        for p in [
            "/api/v1/tokens?format=csv",
            "/api/v1/audit?format=csv",
            "/api/v1/servers?format=csv",
            "/api/v1/observations?format=csv",
        ] {
            let ids = csv_org_ids(&get(&s.app, p, &s.op).await.text);
            assert!(ids.contains(&b.to_string()), "{p}: {ids:?}");
        }
        for (who, t) in [("A reader", &a_rd), ("A uploader", &a_up)] {
            // (method, path, body, statuses allowed)
            let attempts: Vec<(&str, String, Option<Value>)> = vec![
                ("GET", format!("/api/v1/orgs/{b}"), None),
                (
                    "PATCH",
                    format!("/api/v1/orgs/{b}"),
                    Some(json!({"name": "Pwned"})),
                ),
                ("DELETE", format!("/api/v1/orgs/{b}"), None),
                ("GET", format!("/api/v1/servers/{b_server}"), None),
                ("DELETE", format!("/api/v1/servers/{b_server}"), None),
                ("GET", format!("/api/v1/results/{b_result}"), None),
                ("GET", format!("/api/v1/results/{b_result}/document"), None),
                (
                    "GET",
                    format!("/api/v1/results/{b_result}/report.html"),
                    None,
                ),
                ("DELETE", format!("/api/v1/results/{b_result}"), None),
                ("GET", format!("/api/v1/observations/{b_obs}"), None),
                ("DELETE", format!("/api/v1/observations/{b_obs}"), None),
                ("DELETE", format!("/api/v1/tokens/{b_tok_id}"), None),
                ("GET", format!("/api/v1/notifications/{b_note}"), None),
                ("GET", format!("/api/v1/notifications/{b_note}/eml"), None),
                (
                    "PATCH",
                    format!("/api/v1/notifications/{b_note}"),
                    Some(json!({"state": "acknowledged"})),
                ),
                // A's own organisation's scope: operators only.
                (
                    "PATCH",
                    format!("/api/v1/orgs/{a}"),
                    Some(
                        json!({"scope": {"cidrs": ["0.0.0.0/0", "::/0"], "domains": ["beta.example"]}}),
                    ),
                ),
                (
                    "POST",
                    "/api/v1/notifications".into(),
                    Some(json!({"org": b})),
                ),
                (
                    "POST",
                    "/api/v1/tokens".into(),
                    Some(json!({"org": b, "role": "uploader", "name": "x"})),
                ),
                (
                    "POST",
                    "/api/v1/tokens".into(),
                    Some(json!({"role": "operator", "name": "x"})),
                ),
                (
                    "POST",
                    format!("/api/v1/results?org={b}"),
                    Some(b_doc.clone()),
                ),
                (
                    "POST",
                    "/api/v1/orgs".into(),
                    Some(json!({"name": "Gamma"})),
                ),
                ("GET", "/api/v1/unassigned".into(), None),
                (
                    "POST",
                    format!("/api/v1/unassigned/{b_obs}/assign"),
                    Some(json!({"org": a})),
                ),
            ];
            for (m, p, body) in attempts {
                let r = match &body {
                    Some(v) => send(&s.app, m, &p, t, v).await,
                    None => call(&s.app, m, &p, Some(t), Body::empty()).await,
                };
                if !(r.status == 403 || r.status == 404) {
                    leaks.push(format!("{who}: {m} {p} -> {} {}", r.status, r.text));
                }
                // An uploader may move a sent notification of its own: B's must be not found
                // (a 403 there would come from the state machine and hide a missing scope).
                if who == "A uploader"
                    && m == "PATCH"
                    && p.contains("/notifications/")
                    && r.status != 404
                {
                    leaks.push(format!("{who}: {m} {p} -> {} (expected 404)", r.status));
                }
                if B_MARKERS.iter().any(|x| r.text.contains(x)) {
                    leaks.push(format!("{who}: {m} {p} shows B's data: {}", r.text));
                }
            }
            // Lists, filters and exports: allowed, and empty of B.
            for p in [
                "/api/v1/orgs".to_string(),
                "/api/v1/orgs?format=csv".into(),
                "/api/v1/servers".into(),
                format!("/api/v1/servers?org={b}"),
                "/api/v1/servers?name=ex-b.beta.example".into(),
                "/api/v1/servers?format=csv".into(),
                "/api/v1/results".into(),
                format!("/api/v1/results?org={b}"),
                format!("/api/v1/results?server={b_server}"),
                format!("/api/v1/results?org={b}&format=csv"),
                "/api/v1/observations".into(),
                format!("/api/v1/observations?org={b}"),
                "/api/v1/observations?ip=198.51.100.20".into(),
                format!("/api/v1/observations?server={b_server}&format=csv"),
                "/api/v1/tokens".into(),
                format!("/api/v1/tokens?org={b}"),
                "/api/v1/audit".into(),
                "/api/v1/audit?format=csv".into(),
                "/api/v1/trend".into(),
                "/api/v1/notifications".into(),
                format!("/api/v1/notifications?org={b}&format=csv"),
                "/api/v1/status-sheet?format=csv".into(),
                format!("/api/v1/status-sheet?org={b}"),
                "/api/v1/rollup/versions".into(),
                format!("/api/v1/rollup/versions?org={b}"),
                format!("/api/v1/trend?org={b}"),
                // Filters that only B's rows satisfy, and exports without B's names (their
                // rows' org_id is read below).
                "/api/v1/results?state=compromised".into(),
                "/api/v1/observations?state=vulnerable".into(),
                "/api/v1/observations?source=exhunt-probe&format=csv".into(),
                format!("/api/v1/servers?org={b}&format=csv"),
                "/api/v1/notifications?state=sent".into(),
                "/api/v1/tokens?format=csv".into(),
                format!("/api/v1/tokens?org={b}&format=csv"),
                format!("/api/v1/audit?org={b}&format=csv"),
            ] {
                let r = get(&s.app, &p, t).await;
                if r.status != 200 {
                    leaks.push(format!(
                        "{who}: GET {p} -> {} (expected 200, own data only)",
                        r.status
                    ));
                }
                if B_MARKERS.iter().any(|x| r.text.contains(x)) {
                    leaks.push(format!("{who}: GET {p} shows B's data: {}", r.text));
                }
                if let Value::Array(rows) = r.json() {
                    for row in rows {
                        if row
                            .get("org_id")
                            .is_some_and(|o| !o.is_null() && o != &json!(a))
                        {
                            leaks.push(format!("{who}: GET {p} row of another org: {row}"));
                        }
                        if p.starts_with("/api/v1/orgs") && row["id"] != json!(a) {
                            leaks.push(format!("{who}: GET {p} lists org {row}"));
                        }
                        if p.starts_with("/api/v1/tokens") && row["id"] == json!(b_tok_id) {
                            leaks.push(format!("{who}: GET {p} lists B's token"));
                        }
                    }
                }
                if p.contains("format=csv") {
                    for org in csv_org_ids(&r.text) {
                        if !org.is_empty() && org != a.to_string() {
                            leaks.push(format!("{who}: GET {p} has a row of org {org}"));
                        }
                    }
                }
            }
            // Aggregates have neither names nor org_id: A's must be what the operator counts
            // for A (A's server was exposed on the 29th and patched on the 30th; B's scan is
            // compromised and its probe row vulnerable on the 30th); asked for B's, A's or
            // nothing.
            for (p, own) in [
                ("/api/v1/trend", format!("/api/v1/trend?org={a}")),
                (
                    "/api/v1/rollup/versions",
                    format!("/api/v1/rollup/versions?org={a}"),
                ),
            ] {
                let own = get(&s.app, &own, &s.op).await.json();
                assert_ne!(own, json!([]), "{p}: A's own counts");
                for q in [p.to_string(), format!("{p}?org={b}")] {
                    let got = get(&s.app, &q, t).await.json();
                    if got != own && (q == p || got != json!([])) {
                        leaks.push(format!("{who}: GET {q} counts {got}, A's are {own}"));
                    }
                }
            }
            // IntelMQ events for B's address uploaded by A: not stored anywhere.
            let ev = json!({"time.source": "2026-11-30T11:00:00+00:00", "source.ip": "198.51.100.22", "classification.type": "vulnerable-system"});
            let r = send(&s.app, "POST", "/api/v1/observations/intelmq", t, &ev).await;
            if r.status == 200 && r.json()["assigned"] != 0 {
                leaks.push(format!(
                    "{who}: IntelMQ event for B's address was stored: {}",
                    r.text
                ));
            }
            // A Shadowserver report with B's address uploaded by A: not stored anywhere.
            let csv = "\"timestamp\",\"severity\",\"ip\",\"protocol\",\"port\",\"hostname\",\"tag\",\"asn\",\"geo\",\"region\",\"city\",\"naics\",\"hostname_source\",\"sector\",\"version\",\"servername\",\"url\"\n\
\"2026-11-30 10:00:00\",\"critical\",\"198.51.100.23\",\"tcp\",\"443\",\"ex-d.beta.example\",\"exchange;cve-2021-26855\",\"64500\",\"NL\",\"X\",\"Y\",\"\",\"\",\"\",\"15.1.2176.2\",\"EX09\",\"\"\n";
            let r = call(
                &s.app,
                "POST",
                "/api/v1/observations/shadowserver",
                Some(t),
                csv,
            )
            .await;
            if r.status == 200 && r.json()["assigned"] != 0 {
                leaks.push(format!(
                    "{who}: Shadowserver row for B's address was stored: {}",
                    r.text
                ));
            }
            if !matches!(r.status, 200 | 403) {
                leaks.push(format!(
                    "{who}: POST shadowserver -> {} {}",
                    r.status, r.text
                ));
            }
            // Probe rows for B's address uploaded by A: not stored anywhere.
            let r = call(
                &s.app,
                "POST",
                "/api/v1/observations/probe",
                Some(t),
                probe_row(
                    "198.51.100.21",
                    "ex-c.beta.example",
                    "vulnerable",
                    "2026-11-30T11:00:00Z",
                ),
            )
            .await;
            if r.status == 200 && r.json()["assigned"] != 0 {
                leaks.push(format!(
                    "{who}: probe row for B's address was stored: {}",
                    r.text
                ));
            }
        }
        assert!(
            leaks.is_empty(),
            "{} leak(s):\n{}",
            leaks.len(),
            leaks.join("\n")
        );

        // B is exactly as it was (its queue and audit too), A's scope is its own, and B's token
        // still works.
        assert_eq!(snapshot_b(&s).await, before);
        let a_org = get(&s.app, &format!("/api/v1/orgs/{a}"), &s.op)
            .await
            .json();
        assert_eq!(a_org["scope"]["cidrs"], json!(["192.0.2.0/24"]), "{a_org}");
        assert_eq!(get(&s.app, "/api/v1/servers", &b_up).await.status, 200);
        assert_eq!(
            get(&s.app, "/api/v1/whoami", &b_up).await.json()["org_id"],
            b
        );
    }
}

#[tokio::test]
async fn migrations_for_both_engines_describe_one_schema() {
    use exhunt_serve::db::{Engine, migrations};
    fn columns(sql: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut table = None;
        for line in sql.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                table = rest.split_whitespace().next().map(str::to_string);
            } else if line.starts_with(')') {
                table = None;
            } else if let Some(t) = &table {
                let first = line.split_whitespace().next().unwrap_or("");
                if !first.is_empty() && !["UNIQUE", "PRIMARY", "FOREIGN", "--"].contains(&first) {
                    out.push(format!("{t}.{first}"));
                }
            } else if line.starts_with("CREATE INDEX") {
                out.push(line.split(" ON ").nth(1).unwrap_or("").to_string());
            }
        }
        out
    }
    let sq = migrations(Engine::Sqlite);
    let pg = migrations(Engine::Postgres);
    assert_eq!(sq.len(), pg.len());
    let mut all = 0;
    for (a, b) in sq.iter().zip(pg) {
        assert_eq!((a.0, a.1), (b.0, b.1));
        let (ca, cb) = (columns(a.2), columns(b.2));
        all += ca.len();
        assert_eq!(ca, cb);
    }
    assert!(
        all > 40,
        "{all} columns and indexes found: the parser missed the tables"
    );
    // Opening twice applies nothing twice.
    for db in databases().await {
        Store::open(&db.url).await.expect("first open");
        Store::open(&db.url).await.expect("second open");
    }
}

/// Sends raw HTTP/1.1 and returns the status line and what came back in `wait`.
async fn raw_http(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
    wait: std::time::Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write head");
    s.write_all(body).await.expect("write body");
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(wait, s.read(&mut buf))
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_real_listener_refuses_slow_and_oversized_bodies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let cfg = Config {
        body_limit: 1000,
        body_timeout: std::time::Duration::from_millis(500),
        header_timeout: std::time::Duration::from_millis(500),
        ..Config::default()
    };
    let srv = exhunt_serve::Server::bind(&url, "127.0.0.1:0", cfg)
        .await
        .expect("bind");
    let addr = srv.addr;
    let op = srv
        .first_token
        .clone()
        .expect("first start makes an operator token")
        .secret;
    let store = srv.store.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(srv.run(async {
        let _ = stop_rx.await;
    }));
    let long = std::time::Duration::from_secs(5);

    let ok = raw_http(addr, &format!("GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {op}\r\nConnection: close\r\n\r\n"), b"", long).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("\"operator\""), "{ok}");

    // Declares more than the limit: refused before reading.
    let big = raw_http(addr, &format!("POST /api/v1/results?org=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {op}\r\nContent-Length: 5000000\r\n\r\n"), b"{", long).await;
    assert!(big.starts_with("HTTP/1.1 413"), "{big}");
    assert!(big.contains("too-large"), "{big}");

    // Chunked, no length: stopped at the limit.
    let mut chunked = Vec::new();
    for _ in 0..5 {
        chunked.extend_from_slice(b"12C\r\n");
        chunked.extend_from_slice(&[b' '; 300]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = raw_http(addr, &format!("POST /api/v1/observations/probe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {op}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"), &chunked, long).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");

    // Promises 900 bytes, sends 10, then waits: 408 after the body timeout.
    let slow = raw_http(addr, &format!("POST /api/v1/observations/probe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {op}\r\nContent-Length: 900\r\n\r\n"), b"{\"schema\":", long).await;
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
    assert!(slow.contains("timeout"), "{slow}");

    // Slowloris: half a request line and headers, then nothing. The connection is closed after
    // the header timeout (0.5 s here), long before the client would give up.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let started = std::time::Instant::now();
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write head");
        let mut buf = vec![0u8; 1024];
        let r = tokio::time::timeout(long, s.read(&mut buf)).await;
        assert!(
            matches!(r, Ok(Ok(_)) | Ok(Err(_))),
            "a connection sending its headers slowly is still open after {long:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
        // An idle kept-alive connection is closed as well.
        let started = std::time::Instant::now();
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(
            format!("GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {op}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
        let mut got = Vec::new();
        let r = tokio::time::timeout(long, s.read_to_end(&mut got)).await;
        assert!(
            r.is_ok(),
            "an idle kept-alive connection is still open after {long:?}"
        );
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
    }

    // The login form is small: a large one is refused.
    let big_form = vec![b'a'; 100_000];
    let r = raw_http(addr, &format!("POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", big_form.len()), &big_form, long).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");

    use sqlx::Row;
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM observations")
        .fetch_one(store.pool())
        .await
        .and_then(|r| r.try_get("n"))
        .expect("count");
    assert_eq!(n, 0);

    let _ = stop_tx.send(());
    task.await.expect("join").expect("served");
    // A second start on the same database makes no new operator token.
    let again = exhunt_serve::Server::bind(&url, "127.0.0.1:0", Config::default())
        .await
        .expect("bind again");
    assert!(again.first_token.is_none());
}

/// Logs in through the form (double-submit CSRF cookie) and returns the session cookie.
async fn login(app: &Router, token: &str) -> String {
    let req = Request::builder()
        .uri("/login")
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let csrf_cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("login form's cookie")
        .to_string();
    let form = Resp {
        status: resp.status().as_u16(),
        text: String::from_utf8_lossy(&resp.into_body().collect().await.expect("body").to_bytes())
            .into_owned(),
    };
    assert_eq!(form.status, 200);
    let csrf = form
        .text
        .split("name=csrf value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf field")
        .to_string();
    let req = Request::builder()
        .method("POST")
        .uri("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, csrf_cookie)
        .body(Body::from(format!("token={token}&csrf={csrf}")))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    if resp.status().as_u16() != 303 {
        let st = resp.status();
        let b = resp.into_body().collect().await.expect("body").to_bytes();
        panic!("login: {st} {}", String::from_utf8_lossy(&b));
    }
    let set = resp
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap_or("").to_string()
}

async fn page(app: &Router, uri: &str, cookie: &str) -> Resp {
    let req = Request::builder()
        .uri(uri)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[tokio::test]
async fn dashboard_sessions_pages_and_tenancy() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha Corp", &["192.0.2.0/24"], &[]).await;
        let r = send(&s.app, "POST", "/api/v1/orgs", &s.op, &json!({"name": "Beta Corp", "contacts": ["beta-secret-contact@beta.example"], "scope": {"cidrs": ["198.51.100.0/24"]}})).await;
        let b = r.json()["id"].as_i64().expect("b");
        let (a_tok, a_rd) = token(&s, a, "reader").await;
        let (_, a_up) = token(&s, a, "uploader").await;
        let (_, b_up) = token(&s, b, "uploader").await;
        let r = call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&a_up),
            scan_doc(SNAPSHOT),
        )
        .await;
        let a_result = r.json()["results"][0].as_i64().expect("a result");
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
        let b_result = r.json()["results"][0].as_i64().expect("b result");
        call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&b_up),
            probe_row(
                "198.51.100.20",
                "ex-b.beta.example",
                "vulnerable",
                "2026-11-30T08:00:00Z",
            ),
        )
        .await;
        call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&a_up),
            probe_row(
                "192.0.2.10",
                "mail.alpha.example",
                "vulnerable",
                "2026-11-30T08:00:00Z",
            ),
        )
        .await;
        let b_server = get(&s.app, &format!("/api/v1/servers?org={b}"), &s.op)
            .await
            .json()[0]["id"]
            .as_i64()
            .expect("b server");
        let a_server = get(
            &s.app,
            &format!("/api/v1/servers?org={a}&name=mail.alpha.example"),
            &s.op,
        )
        .await
        .json()[0]["id"]
            .as_i64()
            .expect("a server");

        // Without a session: to the login page. A wrong token: 401. A forged login: 403.
        let r = call(&s.app, "GET", "/", None, Body::empty()).await;
        assert_eq!(r.status, 303);
        let req = Request::builder()
            .method("POST")
            .uri("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={a_rd}&csrf=guess")))
            .expect("request");
        assert_eq!(
            s.app
                .clone()
                .oneshot(req)
                .await
                .expect("response")
                .status()
                .as_u16(),
            403
        );

        // The operator sees both organisations and the states.
        let op = login(&s.app, &s.op).await;
        let r = page(&s.app, "/", &op).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.text.contains("Alpha Corp") && r.text.contains("Beta Corp"));
        assert!(r.text.contains("<td class=compromised>"), "{}", r.text);
        assert!(r.text.contains("<td class=exposed>"), "{}", r.text);
        assert!(r.text.contains("<svg"), "no curve");
        assert!(
            r.text.contains("By campaign") && r.text.contains("<td>proxy-logon</td>"),
            "{}",
            r.text
        );

        // A's reader: its organisation, its servers, its reports; nothing of B's by any page.
        let rd = login(&s.app, &a_rd).await;
        let r = page(&s.app, "/", &rd).await;
        assert!(
            r.text.contains("Alpha Corp") && !r.text.contains("Beta Corp"),
            "{}",
            r.text
        );
        let r = page(&s.app, &format!("/orgs/{a}"), &rd).await;
        assert!(
            r.status == 200 && r.text.contains("mail.alpha.example") && r.text.contains("ex01"),
            "{}",
            r.text
        );
        let r = page(&s.app, &format!("/servers/{a_server}"), &rd).await;
        assert!(
            r.status == 200 && r.text.contains("X-OWA-Version"),
            "{}",
            r.text
        );
        let r = page(&s.app, &format!("/results/{a_result}/report"), &rd).await;
        assert!(
            r.status == 200 && r.text.contains("EX01"),
            "{}",
            &r.text[..200.min(r.text.len())]
        );
        for p in [
            format!("/orgs/{b}"),
            format!("/servers/{b_server}"),
            format!("/results/{b_result}/report"),
        ] {
            let r = page(&s.app, &p, &rd).await;
            assert_eq!(r.status, 404, "{p}: {}", r.text);
            for m in B_MARKERS {
                assert!(!r.text.contains(m), "{p} shows {m}");
            }
        }

        // Logout needs the session's CSRF token; then the session is gone.
        let req = Request::builder()
            .method("POST")
            .uri("/logout")
            .header(header::COOKIE, &rd)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("csrf=wrong"))
            .expect("request");
        assert_eq!(
            s.app
                .clone()
                .oneshot(req)
                .await
                .expect("response")
                .status()
                .as_u16(),
            403
        );
        assert_eq!(page(&s.app, "/", &rd).await.status, 200);
        let csrf = page(&s.app, "/", &rd)
            .await
            .text
            .split("name=csrf value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("csrf")
            .to_string();
        let req = Request::builder()
            .method("POST")
            .uri("/logout")
            .header(header::COOKIE, &rd)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}")))
            .expect("request");
        assert_eq!(
            s.app
                .clone()
                .oneshot(req)
                .await
                .expect("response")
                .status()
                .as_u16(),
            303
        );
        assert_eq!(page(&s.app, "/", &rd).await.status, 303);

        // A session dies with its token.
        let rd2 = login(&s.app, &a_rd).await;
        call(
            &s.app,
            "DELETE",
            &format!("/api/v1/tokens/{a_tok}"),
            Some(&s.op),
            Body::empty(),
        )
        .await;
        assert_eq!(page(&s.app, "/", &rd2).await.status, 303);
        // Only the hash of a session cookie is stored.
        let secret = rd2.split_once('=').map(|(_, v)| v).unwrap_or("");
        assert!(!secret.is_empty());
        assert_eq!(
            count(&s, &format!("sessions WHERE secret_sha256 = '{secret}'")).await,
            0
        );
        assert!(count(&s, "sessions").await >= 1);
    }
}

#[tokio::test]
async fn the_demo_loads_examples_orgs_and_the_queue() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let op = s.store.authenticate(&s.op).await.expect("operator");
        let scans = vec![
            ("compromised".to_string(), scan_doc(SNAPSHOT)),
            ("clean".to_string(), scan_doc(SNAPSHOT_CLEAN)),
        ];
        let reader = exhunt_serve::demo::load(&s.store, &op, &scans)
            .await
            .expect("demo");
        assert_eq!(count(&s, "orgs").await, 2);
        assert_eq!(count(&s, "scan_results").await, 2);
        assert_eq!(
            get(&s.app, "/api/v1/unassigned", &s.op)
                .await
                .json()
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        let mine = get(&s.app, "/api/v1/servers", &reader.secret).await.json();
        assert!(
            mine.as_array()
                .is_some_and(|a| !a.is_empty()
                    && a.iter().all(|x| x["org_id"] == json!(reader.token.org_id))),
            "{mine}"
        );
    }
}

#[test]
fn pg_urls_are_rewritten_for_the_test_database() {
    assert_eq!(
        pg_url("postgres:///postgres?host=/tmp/x&user=exhunt", "t1", "app"),
        "postgres:///t1?host=/tmp/x&user=app"
    );
    assert_eq!(
        pg_url("postgres://admin:pw@db.local:5433/postgres", "t1", "app"),
        "postgres://db.local:5433/t1?user=app"
    );
}

/// PostgreSQL only: the database refuses other organisations' rows on its own, whatever SQL the
/// application sends, and shows no tenant row to a connection that did not say who it serves.
#[tokio::test]
async fn row_level_security_holds_without_the_application_filter() {
    use sqlx::{Connection, Row};
    for db in databases().await {
        if !db.url.starts_with("postgres") {
            continue;
        }
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha", &["192.0.2.0/24"], &[]).await;
        let b = org(&s, "Beta", &["198.51.100.0/24"], &[]).await;
        let (_, a_up) = token(&s, a, "uploader").await;
        let (_, b_up) = token(&s, b, "uploader").await;
        call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&a_up),
            scan_doc(SNAPSHOT_CLEAN),
        )
        .await;
        let r = call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&b_up),
            scan_doc(SNAPSHOT),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&b_up),
            probe_row(
                "198.51.100.20",
                "ex-b.beta.example",
                "vulnerable",
                "2026-11-30T08:00:00Z",
            ),
        )
        .await;
        let r = send(
            &s.app,
            "POST",
            "/api/v1/notifications",
            &s.op,
            &json!({"org": b}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);

        let mut conn = sqlx::AnyConnection::connect(&db.url)
            .await
            .expect("connect as the app role");
        let n = |sql: String| sql;
        // Unset: nothing of any tenant.
        for t in [
            "orgs",
            "servers",
            "scan_results",
            "scan_docs",
            "observations",
            "tokens",
            "audit",
            "sessions",
            "org_scopes",
            "notifications",
            "org_stats",
            "org_days",
        ] {
            let c: i64 = sqlx::query(&n(format!("SELECT COUNT(*) AS n FROM {t}")))
                .fetch_one(&mut conn)
                .await
                .and_then(|r| r.try_get("n"))
                .expect("count");
            assert_eq!(c, 0, "{t} visible without exhunt.org");
        }
        // As A, with SQL that forgets the filter: only A's rows; B's cannot be changed or made.
        let mut tx = conn.begin().await.expect("begin");
        sqlx::query(&format!("SELECT set_config('exhunt.org', '{a}', true)"))
            .fetch_one(&mut *tx)
            .await
            .expect("set");
        for t in [
            "servers",
            "scan_results",
            "scan_docs",
            "observations",
            "tokens",
            "org_scopes",
            "notifications",
            "org_stats",
            "org_days",
        ] {
            let other: i64 = sqlx::query(&format!(
                "SELECT COUNT(*) AS n FROM {t} WHERE org_id <> {a}"
            ))
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get("n"))
            .expect("count");
            assert_eq!(other, 0, "{t}: A sees other organisations' rows");
        }
        let orgs: i64 = sqlx::query("SELECT COUNT(*) AS n FROM orgs")
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get("n"))
            .expect("count");
        assert_eq!(orgs, 1);
        let changed = sqlx::query(&format!(
            "UPDATE servers SET name = 'pwned' WHERE org_id = {b}"
        ))
        .execute(&mut *tx)
        .await
        .expect("update")
        .rows_affected();
        assert_eq!(changed, 0);
        let deleted = sqlx::query(&format!("DELETE FROM scan_results WHERE org_id = {b}"))
            .execute(&mut *tx)
            .await
            .expect("delete")
            .rows_affected();
        assert_eq!(deleted, 0);
        let planted = sqlx::query(&format!(
            "INSERT INTO servers (org_id, name, created) VALUES ({b}, 'planted', 'x')"
        ))
        .execute(&mut *tx)
        .await;
        assert!(planted.is_err(), "A planted a server in B");
        drop(tx);
        // As A, A's own organisation cannot be widened, no operator token made, no audit entry
        // changed; with '*', audit entries are still append-only and an operator token has no
        // organisation. Each attempt in its own transaction (a refused statement ends one).
        let as_scope = |scope: String, sql: String| {
            let url = db.url.clone();
            async move {
                let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
                let mut tx = conn.begin().await.expect("begin");
                sqlx::query(&format!("SELECT set_config('exhunt.org', '{scope}', true)"))
                    .fetch_one(&mut *tx)
                    .await
                    .expect("set");
                let r = sqlx::query(&sql)
                    .execute(&mut *tx)
                    .await
                    .map(|r| r.rows_affected());
                if r.is_ok() {
                    tx.commit().await.expect("commit");
                }
                r
            }
        };
        for sql in [
            format!("UPDATE orgs SET name = 'widened' WHERE id = {a}"),
            format!("DELETE FROM org_scopes WHERE org_id = {a}"),
            format!("UPDATE org_scopes SET value = '0.0.0.0/0' WHERE org_id = {a}"),
            format!("INSERT INTO org_scopes (org_id, kind, value) VALUES ({a}, 'cidr', '0.0.0.0/0')"),
            format!("INSERT INTO tokens (org_id, role, name, secret_sha256, created) VALUES ({a}, 'operator', 'x', 'f00', 'x')"),
            "INSERT INTO tokens (org_id, role, name, secret_sha256, created) VALUES (NULL, 'operator', 'x', 'f01', 'x')".to_string(),
            format!("UPDATE tokens SET role = 'operator' WHERE org_id = {a}"),
            format!("UPDATE tokens SET org_id = NULL, role = 'operator' WHERE org_id = {a}"),
            "UPDATE audit SET action = 'nothing'".to_string(),
            "DELETE FROM audit".to_string(),
            // The kept counts: written by the store (with '*') only, not by a tenant's SQL.
            format!("UPDATE org_stats SET servers = 99 WHERE org_id IN (0, {a})"),
            format!("INSERT INTO org_days (org_id, day, exposed, compromised) VALUES ({a}, '2026-01-01', 9, 9)"),
            "DELETE FROM org_days".to_string(),
        ] {
            let r = as_scope(a.to_string(), sql.clone()).await;
            assert!(matches!(r, Ok(0) | Err(_)), "as A: {sql} changed {r:?} rows");
        }
        for sql in [
            "UPDATE audit SET action = 'nothing'".to_string(),
            "DELETE FROM audit".to_string(),
            format!(
                "INSERT INTO tokens (org_id, role, name, secret_sha256, created) VALUES ({a}, 'operator', 'x', 'f02', 'x')"
            ),
        ] {
            let r = as_scope("*".into(), sql.clone()).await;
            assert!(
                matches!(r, Ok(0) | Err(_)),
                "with '*': {sql} changed {r:?} rows"
            );
        }
        // What the application itself does as A still works: a reader token made and revoked.
        let (rid, _) = {
            let r = send(
                &s.app,
                "POST",
                "/api/v1/tokens",
                &a_up,
                &json!({"org": a, "role": "reader", "name": "made by A"}),
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.text);
            (r.json()["id"].as_i64().expect("id"), ())
        };
        let r = call(
            &s.app,
            "DELETE",
            &format!("/api/v1/tokens/{rid}"),
            Some(&a_up),
            Body::empty(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(count(&s, "audit").await > 0);
        // B's data is whole.
        let mut tx = conn.begin().await.expect("begin");
        sqlx::query("SELECT set_config('exhunt.org', '*', true)")
            .fetch_one(&mut *tx)
            .await
            .expect("set");
        let bs: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM scan_results WHERE org_id = {b}"
        ))
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get("n"))
        .expect("count");
        assert_eq!(bs, 1);
        let planted: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM servers WHERE name = 'pwned' OR name = 'planted'",
        )
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get("n"))
        .expect("count");
        assert_eq!(planted, 0);
        drop(tx);
        // Serving as a superuser (the cluster's own role) is refused: RLS would not hold.
        if let Ok(pg) = std::env::var("EXHUNT_TEST_PG") {
            let mut su = sqlx::AnyConnection::connect(&pg).await.expect("connect");
            let row = sqlx::query("SELECT current_user::text AS who")
                .fetch_one(&mut su)
                .await
                .expect("who");
            let who: String = row.try_get("who").expect("who");
            let name = db
                .url
                .split('?')
                .next()
                .and_then(|u| u.rsplit('/').next())
                .unwrap_or("")
                .to_string();
            let e = Store::open(&pg_url(&pg, &name, &who)).await;
            assert!(
                matches!(&e, Err(e) if e.to_string().contains("BYPASSRLS")),
                "a superuser was accepted: {e:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_scan_and_a_probe_of_one_server_meet() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha", &["192.0.2.0/24"], &[]).await;
        let (_, up) = token(&s, a, "uploader").await;
        // The scan names EX01; the probe ex01.alpha.example: one server.
        let r = call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&up),
            scan_doc(SNAPSHOT),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let r = call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&up),
            probe_row(
                "192.0.2.10",
                "ex01.alpha.example",
                "vulnerable",
                "2026-11-30T08:00:00Z",
            ),
        )
        .await;
        assert_eq!(r.json()["assigned"], 1, "{}", r.text);
        let servers = get(&s.app, "/api/v1/servers", &up).await.json();
        assert_eq!(servers.as_array().map(Vec::len), Some(1), "{servers}");
        assert_eq!(servers[0]["last_verdict"], "compromised");
        assert_eq!(servers[0]["last_state"], "vulnerable");
        // Probe first, then the scan: the same. Two host names with one short name: no guess.
        let b = org(&s, "Beta", &["198.51.100.0/24"], &[]).await;
        let (_, bup) = token(&s, b, "uploader").await;
        let rows = [
            probe_row(
                "198.51.100.1",
                "ex01.beta.example",
                "patched",
                "2026-11-30T08:00:00Z",
            ),
            probe_row(
                "198.51.100.2",
                "ex01.lab.beta.example",
                "patched",
                "2026-11-30T08:00:00Z",
            ),
            probe_row(
                "198.51.100.3",
                "ex02.beta.example",
                "patched",
                "2026-11-30T08:00:00Z",
            ),
        ]
        .join("\n");
        call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&bup),
            rows,
        )
        .await;
        let mut doc: Value = serde_json::from_str(&scan_doc(SNAPSHOT_CLEAN)).expect("json");
        doc["servers"][0]["name"] = json!("EX02");
        assert_eq!(
            call(
                &s.app,
                "POST",
                "/api/v1/results",
                Some(&bup),
                doc.to_string()
            )
            .await
            .status,
            201
        );
        doc["servers"][0]["name"] = json!("EX01");
        assert_eq!(
            call(
                &s.app,
                "POST",
                "/api/v1/results",
                Some(&bup),
                doc.to_string()
            )
            .await
            .status,
            201
        );
        let names: Vec<String> = get(&s.app, "/api/v1/servers", &bup)
            .await
            .json()
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["name"].as_str().map(str::to_string))
            .collect();
        assert_eq!(
            names,
            [
                "ex01.beta.example",
                "ex01.lab.beta.example",
                "ex02.beta.example",
                "ex01"
            ]
        );
    }
}

#[tokio::test]
async fn notifications_follow_their_states_and_export_as_email() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha", &["192.0.2.0/24"], &[]).await;
        let quiet = org(&s, "Quiet", &["203.0.113.0/24"], &[]).await;
        let (_, up) = token(&s, a, "uploader").await;
        let (_, rd) = token(&s, a, "reader").await;
        call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&up),
            scan_doc(SNAPSHOT),
        )
        .await;
        call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&up),
            probe_row(
                "192.0.2.10",
                "mail.alpha.example",
                "patched",
                "2026-11-30T08:00:00Z",
            ),
        )
        .await;

        let r = send(
            &s.app,
            "POST",
            "/api/v1/notifications",
            &s.op,
            &json!({"org": quiet}),
        )
        .await;
        assert_eq!(r.status, 400, "nothing to notify: {}", r.text);
        assert_eq!(
            send(
                &s.app,
                "POST",
                "/api/v1/notifications",
                &up,
                &json!({"org": a})
            )
            .await
            .status,
            403
        );
        let r = send(
            &s.app,
            "POST",
            "/api/v1/notifications",
            &s.op,
            &json!({"org": a}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let n = r.json();
        let id = n["id"].as_i64().expect("id");
        let ticket = n["ticket"].as_str().unwrap_or("").to_string();
        assert!(ticket.starts_with("EXH-"), "{n}");
        // 64 random bits after the date.
        assert_eq!(
            ticket.rsplit('-').next().map(str::len),
            Some(16),
            "{ticket}"
        );
        assert_eq!(n["state"], "new");
        assert_eq!(n["overdue"], false);
        // Only the compromised server, not the patched one.
        assert_eq!(n["servers"].as_array().map(Vec::len), Some(1), "{n}");
        assert_eq!(n["servers"][0]["name"], "ex01");

        let uri = format!("/api/v1/notifications/{id}");
        let step = |t: String, to: &'static str| {
            let app = s.app.clone();
            let uri = uri.clone();
            async move {
                send(&app, "PATCH", &uri, &t, &json!({"state": to}))
                    .await
                    .status
            }
        };
        assert_eq!(step(up.clone(), "acknowledged").await, 403, "not sent yet");
        assert_eq!(step(s.op.clone(), "sent").await, 200);
        assert_eq!(step(rd.clone(), "acknowledged").await, 403, "readers read");
        assert_eq!(step(up.clone(), "acknowledged").await, 200);
        assert_eq!(
            step(up.clone(), "resolved").await,
            403,
            "the operator resolves"
        );
        assert_eq!(step(up.clone(), "rescan-requested").await, 200);
        assert_eq!(step(s.op.clone(), "closed").await, 400);
        assert_eq!(step(s.op.clone(), "resolved").await, 200);
        assert_eq!(get(&s.app, &uri, &rd).await.json()["state"], "resolved");
        let audit = get(&s.app, "/api/v1/audit", &rd).await.text;
        assert!(
            audit.contains("rescan-requested -> resolved")
                || audit.contains("rescan-requested -\\u003e resolved"),
            "{audit}"
        );

        let eml = get(&s.app, &format!("{uri}/eml"), &rd).await;
        assert_eq!(eml.status, 200);
        for want in [
            format!("Subject: [{ticket}]"),
            "To: soc@example.org".into(),
            "multipart/mixed".into(),
            format!("filename=\"{ticket}.csv\""),
            "ex01,compromised".into(),
        ] {
            assert!(eml.text.contains(&want), "{want} missing in:\n{}", eml.text);
        }
        // The MIME boundary is random, not the ticket; API answers are not cached.
        assert!(!eml.text.contains(&format!("boundary=\"exhunt-{ticket}")));
        assert!(eml.text.contains("boundary=\"=_exhunt_"), "{}", eml.text);
        let req = Request::builder()
            .uri("/api/v1/whoami")
            .header(header::AUTHORIZATION, format!("Bearer {rd}"))
            .body(Body::empty())
            .expect("request");
        let resp = s.app.clone().oneshot(req).await.expect("response");
        assert_eq!(
            resp.headers()
                .get(header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
        let csv = get(&s.app, "/api/v1/notifications?format=csv", &rd).await;
        assert!(csv.text.contains(&ticket), "{}", csv.text);
    }
}

#[tokio::test]
async fn status_sheet_and_version_rollup() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha", &["192.0.2.0/24"], &[]).await;
        let (_, up) = token(&s, a, "uploader").await;
        call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&up),
            scan_doc(SNAPSHOT),
        )
        .await;
        let rows = [
            probe_row(
                "192.0.2.10",
                "ex01.alpha.example",
                "vulnerable",
                "2026-11-30T08:00:00Z",
            ),
            probe_row(
                "192.0.2.11",
                "ex02.alpha.example",
                "patched",
                "2026-11-30T08:00:00Z",
            ),
        ]
        .join("\n");
        call(
            &s.app,
            "POST",
            "/api/v1/observations/probe",
            Some(&up),
            rows,
        )
        .await;
        let sheet = get(&s.app, "/api/v1/status-sheet", &up).await.json();
        let ex01 = sheet
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["server"] == "ex01")
            .cloned()
            .unwrap_or_default();
        assert_eq!(ex01["version"], "15.1.2176.2", "{sheet}");
        assert_eq!(ex01["internet_facing"], "yes");
        assert_eq!(ex01["updated"], "no");
        assert_eq!(ex01["compromised"], "yes");
        assert_eq!(ex01["disconnected"], "not recorded");
        assert!(
            ex01["evidence_collected"]
                .as_str()
                .unwrap_or("")
                .starts_with("scan of "),
            "{ex01}"
        );
        let ex02 = sheet
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["server"] == "ex02.alpha.example")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            (ex02["updated"].as_str(), ex02["compromised"].as_str()),
            (Some("yes"), Some("not scanned")),
            "{sheet}"
        );
        let csv = get(&s.app, "/api/v1/status-sheet?format=csv", &up)
            .await
            .text;
        assert!(csv.starts_with("org_id,server,version,internet_facing,updated,disconnected,compromised,evidence_collected"), "{csv}");
        let roll = get(&s.app, "/api/v1/rollup/versions", &s.op).await.json();
        assert_eq!(
            roll,
            json!([{"version": "15.1.2176.2", "servers": 2, "exposed": 1, "compromised": 1}]),
            "{roll}"
        );
    }
}

/// Uploads in parallel all succeed: on SQLite a write transaction takes the write lock when it
/// begins (not half-way, where SQLite refuses to wait and answers "database is locked").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_uploads_all_succeed() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        org(&s, "Alpha", &["10.0.0.0/8"], &[]).await;
        let mut tasks = Vec::new();
        for u in 0..16 {
            let rows: Vec<String> = (0..200)
                .map(|i| {
                    probe_row(
                        &format!("10.{u}.{}.{}", i / 200, i % 200 + 1),
                        &format!("ex{i}.u{u}.example"),
                        "vulnerable",
                        &format!("2026-11-30T08:{:02}:{:02}Z", u, i % 60),
                    )
                })
                .collect();
            let app = s.app.clone();
            let op = s.op.clone();
            tasks.push(tokio::spawn(async move {
                call(
                    &app,
                    "POST",
                    "/api/v1/observations/probe",
                    Some(&op),
                    rows.join("\n"),
                )
                .await
            }));
        }
        for t in tasks {
            let r = t.await.expect("task");
            assert_eq!(r.status, 200, "{} on {}", r.text, db.url);
            assert_eq!(r.json()["assigned"], 200, "{}", r.text);
        }
        assert_eq!(count(&s, "observations").await, 16 * 200, "{}", db.url);
    }
}

/// Revoking an uploader's token revokes the tokens it made, and theirs; an operator's other
/// tokens of the organisation stay.
#[tokio::test]
async fn revoking_an_uploader_revokes_what_it_made() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha", &["192.0.2.0/24"], &[]).await;
        let (up_id, up) = token(&s, a, "uploader").await;
        let (_, kept) = token(&s, a, "reader").await;
        let mint = |by: String, role: &'static str| {
            let app = s.app.clone();
            async move {
                let r = send(
                    &app,
                    "POST",
                    "/api/v1/tokens",
                    &by,
                    &json!({"org": a, "role": role, "name": format!("{role} made")}),
                )
                .await;
                assert_eq!(r.status, 201, "{}", r.text);
                r.json()["secret"].as_str().expect("secret").to_string()
            }
        };
        let up2 = mint(up.clone(), "uploader").await;
        let reader1 = mint(up.clone(), "reader").await;
        let reader2 = mint(up2.clone(), "reader").await;
        for t in [&up, &up2, &reader1, &reader2, &kept] {
            assert_eq!(get(&s.app, "/api/v1/whoami", t).await.status, 200);
        }
        let r = call(
            &s.app,
            "DELETE",
            &format!("/api/v1/tokens/{up_id}"),
            Some(&s.op),
            Body::empty(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        for t in [&up, &up2, &reader1, &reader2] {
            assert_eq!(
                get(&s.app, "/api/v1/whoami", t).await.status,
                401,
                "a token made by the revoked uploader still works on {}",
                db.url
            );
        }
        assert_eq!(get(&s.app, "/api/v1/whoami", &kept).await.status, 200);
        assert_eq!(get(&s.app, "/api/v1/whoami", &s.op).await.status, 200);
    }
}

/// Dashboard cookies are `Secure`, with the `__Host-` prefix, unless turned off (plain HTTP on
/// loopback, the demo); a session cookie without the prefix is then not accepted.
#[tokio::test]
async fn session_cookies_are_secure_unless_turned_off() {
    let db = databases().await.remove(0);
    let s = server(&db, Config::default()).await;
    let c = login(&s.app, &s.op).await;
    assert!(c.starts_with("__Host-exhunt_session="), "{c}");
    let req = Request::builder()
        .uri("/login")
        .body(Body::empty())
        .expect("request");
    let resp = s.app.clone().oneshot(req).await.expect("response");
    let set = resp
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(set.starts_with("__Host-exhunt_login_csrf="), "{set}");
    assert!(set.contains("; Secure"), "{set}");
    // What a browser asks of a `__Host-` cookie: Secure, Path=/, no Domain.
    assert!(set.contains("; Path=/;"), "{set}");
    assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");
    // The session cookie itself, as the login answer set it.
    let form_csrf = set.split(';').next().unwrap_or("").to_string();
    let csrf = form_csrf.split('=').nth(1).unwrap_or("").to_string();
    let req = Request::builder()
        .method("POST")
        .uri("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, form_csrf)
        .body(Body::from(format!("token={}&csrf={csrf}", s.op)))
        .expect("request");
    let resp = s.app.clone().oneshot(req).await.expect("response");
    let set = resp
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(set.starts_with("__Host-exhunt_session="), "{set}");
    assert!(set.contains("; Secure") && set.contains("Path=/;"), "{set}");
    assert!(!set.contains("Domain"), "{set}");
    assert_eq!(page(&s.app, "/", &c).await.status, 200);
    let unprefixed = c.replace("__Host-exhunt_session=", "exhunt_session=");
    assert_eq!(page(&s.app, "/", &unprefixed).await.status, 303);

    let plain = exhunt_serve::server::app(
        s.store.clone(),
        Config {
            secure_cookies: Some(false),
            ..Config::default()
        },
    );
    let c = login(&plain, &s.op).await;
    assert!(c.starts_with("exhunt_session="), "{c}");
    assert_eq!(page(&plain, "/", &c).await.status, 200);
}

/// Reads, exports, report and page views, failed logins (with the client's address) and
/// refused uploads are in the audit log, under the caller's organisation.
#[tokio::test]
async fn reads_failures_and_refusals_are_audited() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha", &["192.0.2.0/24"], &[]).await;
        let (_, rd) = token(&s, a, "reader").await;
        let (_, up) = token(&s, a, "uploader").await;
        let r = call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&up),
            scan_doc(SNAPSHOT),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let rid = r.json()["results"][0].as_i64().expect("result id");
        assert_eq!(get(&s.app, "/api/v1/servers", &rd).await.status, 200);
        assert_eq!(
            get(&s.app, "/api/v1/servers?format=csv", &rd).await.status,
            200
        );
        let r = get(&s.app, &format!("/api/v1/results/{rid}/report.html"), &rd).await;
        assert_eq!(r.status, 200);
        let r = call(
            &s.app,
            "POST",
            "/api/v1/results",
            Some(&up),
            "{\"schema_version\": \"1.4\"}",
        )
        .await;
        assert_eq!(r.status, 422);
        let c = login(&s.app, &rd).await;
        assert_eq!(page(&s.app, &format!("/orgs/{a}"), &c).await.status, 200);
        // A failed login, from a known address.
        let form = {
            let req = Request::builder()
                .uri("/login")
                .body(Body::empty())
                .expect("req");
            let resp = s.app.clone().oneshot(req).await.expect("resp");
            resp.headers()
                .get(header::SET_COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .unwrap_or("")
                .to_string()
        };
        let csrf = form.split('=').nth(1).unwrap_or("").to_string();
        let peer: std::net::SocketAddr = "203.0.113.9:40000".parse().expect("addr");
        let req = Request::builder()
            .method("POST")
            .uri("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, form)
            .extension(axum::extract::ConnectInfo(peer))
            .body(Body::from(format!("token=wrong&csrf={csrf}")))
            .expect("request");
        let resp = s.app.clone().oneshot(req).await.expect("response");
        assert_eq!(resp.status().as_u16(), 401);

        let log = get(&s.app, "/api/v1/audit?limit=1000", &s.op).await.json();
        let entries: Vec<(String, String, Option<i64>)> = log
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["action"].as_str().unwrap_or("").to_string(),
                            e["object"].as_str().unwrap_or("").to_string(),
                            e["org_id"].as_i64().or_else(|| e["org"].as_i64()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let has = |action: &str, part: &str| {
            entries
                .iter()
                .any(|(a, o, _)| a == action && o.contains(part))
        };
        assert!(has("api.read", "GET /api/v1/servers"), "{entries:?}");
        assert!(has("export.csv", "GET /api/v1/servers"), "{entries:?}");
        assert!(has("report.view", "/report.html"), "{entries:?}");
        assert!(has("upload.rejected", "-> 422"), "{entries:?}");
        assert!(has("page.view", &format!("/orgs/{a}")), "{entries:?}");
        assert!(has("login.failed", "from 203.0.113.9"), "{entries:?}");
        // The reader sees its organisation's reads in its own log.
        let mine = get(&s.app, "/api/v1/audit", &rd).await.text;
        assert!(mine.contains("export.csv"), "{mine}");
    }
}

/// Page views that arrive together share the access log's transactions, and none is answered
/// before its entry is stored: right after 60 concurrent views of two organisations' pages
/// (as their readers, and as the operator), each view is in the log once, under its own
/// organisation.
#[tokio::test]
async fn concurrent_views_are_all_in_the_log_when_answered() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha", &["192.0.2.0/25"], &[]).await;
        let b = org(&s, "Beta", &["192.0.2.128/25"], &[]).await;
        let (_, ra) = token(&s, a, "reader").await;
        let (_, rb) = token(&s, b, "reader").await;
        let cookies = [
            (a, login(&s.app, &ra).await),
            (b, login(&s.app, &rb).await),
            (a, login(&s.app, &s.op).await),
        ];
        let mut tasks = Vec::new();
        for i in 0..60 {
            let (org, cookie) = cookies[i % 3].clone();
            let app = s.app.clone();
            tasks.push(tokio::spawn(async move {
                page(&app, &format!("/orgs/{org}?page={}", i + 1), &cookie).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task").status, 200);
        }
        let log = get(&s.app, "/api/v1/audit?limit=1000", &s.op).await.json();
        let views: Vec<(String, Option<i64>)> = log
            .as_array()
            .expect("log")
            .iter()
            .filter(|e| e["action"] == "page.view")
            .map(|e| {
                (
                    e["object"].as_str().unwrap_or("").to_string(),
                    e["org_id"].as_i64(),
                )
            })
            .collect();
        assert_eq!(views.len(), 60, "{} on {views:?}", db.url);
        for i in 0..60 {
            let org = cookies[i % 3].0;
            let path = format!("GET /orgs/{org} ");
            let n = views.iter().filter(|(o, _)| o.starts_with(&path)).count();
            assert!(n >= 20, "{path}: {n}");
        }
        // A reader's views are its organisation's entries; the operator's have none.
        let of = |org: Option<i64>| views.iter().filter(|(_, o)| *o == org).count();
        assert_eq!(
            (of(Some(a)), of(Some(b)), of(None)),
            (20, 20, 20),
            "{}",
            db.url
        );
    }
}

/// On PostgreSQL every transaction the store begins says whom it serves (row-level security
/// reads it): a reader's and an uploader's their organisation, an operator's `*`.
#[tokio::test]
async fn transactions_carry_the_callers_scope() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha", &["192.0.2.0/24"], &[]).await;
        if s.store.engine() != exhunt_serve::db::Engine::Postgres {
            continue;
        }
        for role in ["reader", "uploader"] {
            let (_, t) = token(&s, a, role).await;
            let c = s.store.authenticate(&t).await.expect("caller");
            for write in [false, true] {
                assert_eq!(
                    s.store.db_scope_of(&c, write).await.expect("scope"),
                    Some(a.to_string()),
                    "{role}, write {write}"
                );
            }
        }
        let op = s.store.authenticate(&s.op).await.expect("operator");
        for write in [false, true] {
            assert_eq!(
                s.store.db_scope_of(&op, write).await.expect("scope"),
                Some("*".to_string())
            );
        }
    }
}

/// The server's escalation period (`--escalate-days`) is the one the notifications use: the
/// e-mail's `{deadline}` is that many days after the notification was made, and a notification
/// left new that long is overdue; with the default period (7 days) the same one is not.
#[tokio::test]
async fn the_escalation_period_sets_the_deadline_and_overdue() {
    for db in databases().await {
        let three = Config {
            escalation: exhunt_serve::escalate::Policy {
                after: std::time::Duration::from_secs(3 * 24 * 3600),
                ..Default::default()
            },
            ..Config::default()
        };
        let s = server(&db, three).await;
        let default = exhunt_serve::server::app(s.store.clone(), Config::default());
        let (_, n) = notified(&s).await;
        let id = n["id"].as_i64().expect("id");
        let created = chrono::DateTime::parse_from_rfc3339(n["created"].as_str().expect("created"))
            .expect("time");
        let day = |d: i64| {
            (created + chrono::Duration::days(d))
                .format("%Y-%m-%d")
                .to_string()
        };
        let eml = get(&s.app, &format!("/api/v1/notifications/{id}/eml"), &s.op)
            .await
            .text;
        assert!(eml.contains(&day(3)), "deadline {} in {eml}", day(3));
        assert!(!eml.contains(&day(7)), "the fixed 7 days in {eml}");

        // Left new for four days: overdue under 3 days, not under the default 7.
        let four_days_ago = (chrono::Utc::now() - chrono::Duration::days(4))
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        by_hand(
            &s,
            &format!("UPDATE notifications SET updated = '{four_days_ago}' WHERE id = {id}"),
        )
        .await;
        let path = format!("/api/v1/notifications/{id}");
        assert_eq!(
            get(&s.app, &path, &s.op).await.json()["overdue"],
            json!(true)
        );
        assert_eq!(
            get(&default, &path, &s.op).await.json()["overdue"],
            json!(false)
        );
    }
}

/// A notification sent again starts its escalation over: the level it had reached (2, a month
/// unacknowledged) goes back to 0 and rises again only after the period.
#[tokio::test]
async fn a_notification_sent_again_starts_its_escalation_over() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let (_, n) = notified(&s).await;
        let id = n["id"].as_i64().expect("id");
        let path = format!("/api/v1/notifications/{id}");
        let to = |state: &str| {
            let (app, op, path) = (s.app.clone(), s.op.clone(), path.clone());
            let state = state.to_string();
            async move {
                let r = send(&app, "PATCH", &path, &op, &json!({"state": state})).await;
                assert_eq!(r.status, 200, "{}", r.text);
                r.json()
            }
        };
        to("sent").await;
        let week = std::time::Duration::from_secs(7 * 24 * 3600);
        let later = chrono::Utc::now() + chrono::Duration::days(30);
        s.store.escalate(later, week).await.expect("escalate");
        assert_eq!(
            get(&s.app, &path, &s.op).await.json()["escalation"],
            json!(2)
        );
        to("acknowledged").await;
        let again = to("sent").await;
        assert_eq!(again["escalation"], json!(0), "{again}");
        assert_eq!(again["escalated"], Value::Null, "{again}");
        s.store
            .escalate(chrono::Utc::now() + chrono::Duration::days(1), week)
            .await
            .expect("escalate");
        assert_eq!(
            get(&s.app, &path, &s.op).await.json()["escalation"],
            json!(0)
        );
    }
}

/// The aggregates count every server, past the 10,000 of a page.
#[tokio::test]
async fn aggregates_count_past_one_page() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha", &["192.0.2.0/24"], &[]).await;
        {
            let mut tx = operator_tx(&s).await;
            sqlx::query(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10005) \
                 INSERT INTO servers (org_id, name, created) \
                 SELECT {a}, 'ex' || i || '.alpha.example', '2026-11-30T08:00:00.000Z' FROM n"
            ))
            .execute(&mut *tx)
            .await
            .expect("insert servers");
            tx.commit().await.expect("commit");
        }
        let sheet = get(&s.app, &format!("/api/v1/status-sheet?org={a}"), &s.op).await;
        assert_eq!(sheet.status, 200, "{}", sheet.text);
        assert_eq!(
            sheet.json().as_array().map(Vec::len),
            Some(10005),
            "{}",
            db.url
        );
        let roll = get(&s.app, "/api/v1/rollup/versions", &s.op).await.json();
        let total: i64 = roll
            .as_array()
            .map(|a| a.iter().filter_map(|v| v["servers"].as_i64()).sum())
            .unwrap_or(0);
        assert_eq!(total, 10005, "{roll}");
        let c = login(&s.app, &s.op).await;
        let overview = page(&s.app, "/", &c).await;
        assert!(overview.text.contains("10005 server(s)"), "{}", db.url);
    }
}

/// At most `max_connections` are served at once: a further one waits until one closes.
#[tokio::test]
async fn connections_beyond_the_limit_wait() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let cfg = Config {
        max_connections: 1,
        header_timeout: std::time::Duration::from_secs(20),
        ..Config::default()
    };
    let srv = exhunt_serve::Server::bind(&url, "127.0.0.1:0", cfg)
        .await
        .expect("bind");
    let addr = srv.addr;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(srv.run(async {
        let _ = stop_rx.await;
    }));
    let first = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut second = tokio::net::TcpStream::connect(addr).await.expect("connect");
    second
        .write_all(b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let early =
        tokio::time::timeout(std::time::Duration::from_millis(700), second.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the connection limit");
    drop(first);
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), second.read(&mut buf))
        .await
        .expect("served once the first connection closed")
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"));
    let _ = stop_tx.send(());
    task.await.expect("join").expect("served");
}

/// A NUL character in a text the request carries (a filter, a search, a login name) is the
/// request's fault: 400 with the reason on both engines (PostgreSQL cannot store U+0000 in text,
/// and answered 500), and nothing else about the request changes; the same requests without it
/// are answered.
#[tokio::test]
async fn nul_characters_in_requests_are_refused_clearly() {
    for db in databases().await {
        let s = server(&db, Config::default()).await;
        let a = org(&s, "Alpha", &["192.0.2.0/24"], &[]).await;
        let (_, rd) = token(&s, a, "reader").await;
        let cookie = login(&s.app, &rd).await;
        for (uri, fine) in [
            ("/api/v1/servers?name=ex%00", "/api/v1/servers?name=ex"),
            (
                "/api/v1/observations?source=a%00b",
                "/api/v1/observations?source=ab",
            ),
        ] {
            let r = get(&s.app, uri, &s.op).await;
            assert_eq!(r.status, 400, "{}: {uri}: {}", db.url, r.text);
            assert!(r.text.contains("NUL"), "{uri}: {}", r.text);
            assert_eq!(get(&s.app, fine, &s.op).await.status, 200, "{fine}");
        }
        let p = page(&s.app, "/?q=al%00pha", &cookie).await;
        assert_eq!(p.status, 400, "{}: {}", db.url, p.text);
        assert!(p.text.contains("NUL"), "{}", p.text);
        assert_eq!(page(&s.app, "/?q=alpha", &cookie).await.status, 200);
    }
}
