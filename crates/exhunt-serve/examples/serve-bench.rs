//! The fleet server's scale benchmark (issue 18), driven by `bench/serve.sh`.
//!
//! ```text
//! serve-bench gen DIR ORGS SERVERS ROWS SCANS     generate a fleet into DIR
//! serve-bench serve DB ADDR                       run the server (prints the operator token)
//! serve-bench orgs DB DIR                         put DIR's organisations into DB (bulk SQL)
//! serve-bench upload URL TOKEN DIR                scans, then probe rows, through HTTP
//! serve-bench session DB TOKEN                    a dashboard session cookie for TOKEN
//! serve-bench hammer URL COOKIE CLIENTS SECS PATH...   closed-loop load; p50/p95/p99
//! serve-bench direct DB TOKEN CLIENTS SECS overview|orgs N   the same queries, no HTTP
//! ```
//!
//! The fleet's shape: 60,000 organisations whose sizes follow a Zipf law (a few networks with
//! thousands of servers, most with one to three), each with an IPv4 network sized to its servers,
//! and some with an IPv6 /48, an AS number and a domain; every server is probed in four rescans
//! whose share of vulnerable servers follows the DIVD curve of March 2021 (42,193 vulnerable,
//! then 23k, 14k, ~6k: research/response-and-fleet.md §4), the rest patched or mitigated. Scan
//! results are the `compromised`, `proxyshell` and `clean` example results (the exhunt
//! snapshots), renamed to a probed server and dated on a rescan day; 3 % compromised.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exhunt_serve::Store;
use exhunt_serve::scope::Scope;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const COMPROMISED: &str = include_str!("../../exhunt/tests/snapshots/compromised.json");
const PROXYSHELL: &str = include_str!("../../exhunt/tests/snapshots/proxyshell.json");
const CLEAN: &str = include_str!("../../exhunt/tests/snapshots/clean.json");

/// Probe rows per upload.
const ROWS_PER_FILE: usize = 50_000;

/// The rescan days and the share of the first scan's vulnerable servers still vulnerable (DIVD).
const RESCANS: [(&str, f64); 4] = [
    ("2021-03-03", 1.0),
    ("2021-03-09", 23.0 / 42.193),
    ("2021-03-23", 14.0 / 42.193),
    ("2021-04-06", 6.0 / 42.193),
];

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// xorshift64*: a reproducible fleet without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| -> Res<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("missing argument {i}; see the file's header").into())
    };
    let n = |i: usize| -> Res<usize> { Ok(a(i)?.parse()?) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match a(0)? {
        "gen" => generate(Path::new(a(1)?), n(2)?, n(3)?, n(4)?, n(5)?),
        "serve" => rt.block_on(serve(a(1)?, a(2)?)),
        "orgs" => rt.block_on(orgs(a(1)?, Path::new(a(2)?))),
        "upload" => rt.block_on(upload(a(1)?, a(2)?, Path::new(a(3)?))),
        "session" => rt.block_on(async {
            let store = Store::open(a(1)?).await?;
            let (secret, _) = store.open_session(a(2)?, 12).await?;
            println!("exhunt_session={secret}");
            Ok(())
        }),
        "hammer" => rt.block_on(hammer(a(1)?, a(2)?, n(3)?, n(4)?, args[5..].to_vec())),
        "direct" => rt.block_on(direct(a(1)?, a(2)?, n(3)?, n(4)?, a(5)?, n(6)?)),
        other => Err(format!("unknown command {other:?}").into()),
    }
}

// ----- the fleet ----------------------------------------------------------------------------

struct OrgPlan {
    servers: usize,
    v4: (u32, u8),
    v6: Option<u32>,
    asn: Option<u32>,
    domain: Option<String>,
}

fn plan(orgs: usize, servers: usize, rng: &mut Rng) -> Vec<OrgPlan> {
    // Zipf weights 1/k^1.1, every organisation at least one server.
    let w: Vec<f64> = (1..=orgs).map(|k| 1.0 / (k as f64).powf(1.1)).collect();
    let sum: f64 = w.iter().sum();
    let spare = servers.saturating_sub(orgs) as f64;
    let mut sizes: Vec<usize> = w.iter().map(|x| 1 + (spare * x / sum) as usize).collect();
    let mut left = servers as i64 - sizes.iter().sum::<usize>() as i64;
    let mut i = 0;
    while left > 0 {
        sizes[i % orgs] += 1;
        left -= 1;
        i += 7;
    }
    // IPv4 networks from 11.0.0.0 up, each a power of two that holds its servers (at least /28).
    let mut next: u32 = u32::from(std::net::Ipv4Addr::new(11, 0, 0, 0));
    sizes
        .into_iter()
        .enumerate()
        .map(|(k, s)| {
            let bits = (s as u32 * 2).next_power_of_two().max(16).trailing_zeros();
            let len = 32 - bits as u8;
            let size = 1u32 << bits;
            next = next.div_ceil(size) * size;
            let v4 = (next, len);
            next += size;
            OrgPlan {
                servers: s,
                v4,
                v6: (rng.unit() < 0.3 && k < 65_536).then_some(k as u32),
                asn: (rng.unit() < 0.4).then_some(64_512 + k as u32),
                domain: (rng.unit() < 0.6).then(|| format!("org{k}.example")),
            }
        })
        .collect()
}

fn probe_row(ip: &str, host: &str, state: &str, build: &str, day: &str, n: u64) -> String {
    let pl = if state == "vulnerable" {
        "vulnerable"
    } else {
        state
    };
    let ps = if state == "vulnerable" && n.is_multiple_of(3) {
        "vulnerable"
    } else if state == "mitigated" {
        "patched"
    } else {
        state
    };
    json!({
        "schema": "exhunt-probe/1.0", "target": format!("{ip}:443"), "host": host, "ip": ip,
        "port": 443, "scheme": "https", "state": state,
        "reason": format!("build {build} read from the X-OWA-Version header"),
        "build": build, "build_source": "X-OWA-Version header",
        "cves": [
            {"cve": "CVE-2021-26855", "campaign": "ProxyLogon", "fixed_by": "Mar21SU", "state": pl,
             "decided_by": "build (X-OWA-Version header)", "reason": "build before Mar21SU"},
            {"cve": "CVE-2021-34473", "campaign": "ProxyShell", "fixed_by": "Apr21SU", "state": ps,
             "decided_by": "build (X-OWA-Version header)", "reason": "build before Apr21SU"}
        ],
        "time": format!("{day}T{:02}:{:02}:{:02}Z", n % 24, (n / 24) % 60, (n / 1440) % 60),
        "elapsed_ms": 40 + n % 200
    })
    .to_string()
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Writes DIR/orgs.jsonl, DIR/probe-NNN.jsonl, DIR/probe.csv (the same rows, for the baseline
/// import), DIR/scans.jsonl (which server each scan result is of, and when).
fn generate(dir: &Path, orgs: usize, servers: usize, rows: usize, scans: usize) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(0x5eed_0001_2021_0302);
    let plans = plan(orgs, servers, &mut rng);
    let mut o = std::io::BufWriter::new(std::fs::File::create(dir.join("orgs.jsonl"))?);
    for (k, p) in plans.iter().enumerate() {
        let mut cidrs = vec![format!("{}/{}", std::net::Ipv4Addr::from(p.v4.0), p.v4.1)];
        if let Some(v6) = p.v6 {
            cidrs.push(format!("2001:db8:{v6:x}::/48"));
        }
        let scope = json!({"cidrs": cidrs, "asns": p.asn.into_iter().collect::<Vec<_>>(),
                           "domains": p.domain.iter().collect::<Vec<_>>()});
        writeln!(
            o,
            "{}",
            json!({"name": format!("Organisation {k:05}"), "contacts": [format!("cert@org{k}.example")], "scope": scope})
        )?;
    }
    o.flush()?;
    // Servers: (ip, host) inside their organisation's scope; builds from Exchange 2013-2019.
    const BUILDS: [&str; 6] = [
        "15.0.1497.2",
        "15.1.2106.2",
        "15.1.2176.2",
        "15.2.721.2",
        "15.2.792.3",
        "15.2.858.5",
    ];
    let mut fleet = Vec::with_capacity(servers);
    for (k, p) in plans.iter().enumerate() {
        for i in 0..p.servers {
            let v6 = p.v6.filter(|_| i % 4 == 3);
            let ip = match v6 {
                Some(v) => format!("2001:db8:{v:x}::{:x}", i + 1),
                None => std::net::Ipv4Addr::from(p.v4.0 + 1 + i as u32).to_string(),
            };
            let host = match &p.domain {
                Some(d) => format!("mail{i}.{d}"),
                None => format!("mail{i}.host{k}.example"),
            };
            let build = BUILDS[(rng.next() % BUILDS.len() as u64) as usize];
            let vulnerable = rng.unit() < 0.6;
            fleet.push((k, ip, host, build, vulnerable, rng.unit()));
        }
    }
    // Rows: each server once per rescan, until `rows`.
    let mut file = 0;
    let mut in_file = 0;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("probe-000.jsonl"))?);
    let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join("probe.csv"))?);
    let mut written = 0;
    'rounds: for (day, share) in RESCANS.iter().cycle() {
        for (_, ip, host, build, vulnerable, u) in &fleet {
            if written == rows {
                break 'rounds;
            }
            let state = if *vulnerable && *u < *share {
                "vulnerable"
            } else if *vulnerable && *u < share + 0.1 {
                "mitigated"
            } else {
                "patched"
            };
            let line = probe_row(ip, host, state, build, day, written as u64);
            writeln!(
                csv,
                "exhunt-probe,{ip},443,{host},{state},{},{build},{},{day},{}",
                csv_field("build (X-OWA-Version header)"),
                csv_field(&format!("build {build} read from the X-OWA-Version header")),
                csv_field(&line)
            )?;
            writeln!(out, "{line}")?;
            written += 1;
            in_file += 1;
            if in_file == ROWS_PER_FILE {
                out.flush()?;
                file += 1;
                in_file = 0;
                out = std::io::BufWriter::new(std::fs::File::create(
                    dir.join(format!("probe-{file:03}.jsonl")),
                )?);
            }
        }
    }
    out.flush()?;
    csv.flush()?;
    // Scan results: servers spread over the fleet, dated on a rescan day.
    let mut s = std::io::BufWriter::new(std::fs::File::create(dir.join("scans.jsonl"))?);
    for i in 0..scans {
        let (k, _, host, _, _, _) = &fleet[(rng.next() % fleet.len() as u64) as usize];
        let name = host.split('.').next().unwrap_or("ex").to_uppercase();
        let kind = match i % 100 {
            0..=2 => "compromised",
            3..=7 => "proxyshell",
            _ => "clean",
        };
        let day = RESCANS[i % RESCANS.len()].0;
        writeln!(
            s,
            "{}",
            json!({"org": k + 1, "name": name, "kind": kind, "day": day, "n": i})
        )?;
    }
    s.flush()?;
    eprintln!(
        "generated {orgs} organisations, {servers} servers, {written} probe rows in {} file(s), {scans} scans",
        file + 1
    );
    Ok(())
}

// ----- loading --------------------------------------------------------------------------------

async fn serve(db: &str, addr: &str) -> Res<()> {
    let cfg = exhunt_serve::api::Config {
        secure_cookies: Some(false),
        ..Default::default()
    };
    let server = exhunt_serve::Server::bind(db, addr, cfg).await?;
    if let Some(t) = &server.first_token {
        println!("token {}", t.secret);
    }
    println!("listening on http://{}", server.addr);
    std::io::stdout().flush()?;
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The organisations of DIR/orgs.jsonl, written in bulk straight into the database (the
/// benchmark measures observations and pages, not 60,000 single-organisation requests). Their
/// scopes are normalised by the server's own code ([`Scope::entries`]); the triggers of
/// migration 8 count them.
async fn orgs(db: &str, dir: &Path) -> Res<()> {
    let store = Store::open(db).await?;
    let text = std::fs::read_to_string(dir.join("orgs.jsonl"))?;
    let lines: Vec<&str> = text.lines().collect();
    let t0 = Instant::now();
    for chunk in lines.chunks(1000) {
        let mut tx = store.pool().begin().await?;
        if store.engine() == exhunt_serve::db::Engine::Postgres {
            sqlx::query("SELECT set_config('exhunt.org', '*', true)")
                .fetch_one(&mut *tx)
                .await?;
        }
        let mut q = exhunt_serve::db::Q::new("INSERT INTO orgs (name, contacts, created) VALUES ");
        let mut scopes = BTreeMap::new();
        for (i, l) in chunk.iter().enumerate() {
            let v: Value = serde_json::from_str(l)?;
            let name = v["name"].as_str().unwrap_or("").to_string();
            let scope: Scope = serde_json::from_value(v["scope"].clone())?;
            scopes.insert(name.clone(), scope.entries()?);
            q = q
                .sql(if i > 0 { ", (" } else { "(" })
                .arg(name)
                .sql(", ")
                .arg(v["contacts"].to_string())
                .sql(", '2021-03-02T00:00:00.000Z')");
        }
        let rows = q.sql(" RETURNING id, name").fetch_all(&mut *tx).await?;
        let mut s = exhunt_serve::db::Q::new(
            "INSERT INTO org_scopes (org_id, kind, value, family, prefix_len, net_hex) VALUES ",
        );
        let mut first = true;
        for r in rows {
            use sqlx::Row;
            let id: i64 = r.try_get("id")?;
            let name: String = r.try_get("name")?;
            for e in scopes.remove(&name).unwrap_or_default() {
                s = s
                    .sql(if first { "(" } else { ", (" })
                    .arg(id)
                    .sql(", ")
                    .arg(e.kind)
                    .sql(", ")
                    .arg(e.value)
                    .sql(", ")
                    .arg(e.family)
                    .sql(", ")
                    .arg(e.prefix_len)
                    .sql(", ")
                    .arg(e.net_hex)
                    .sql(")");
                first = false;
            }
        }
        s.execute(&mut *tx).await?;
        tx.commit().await?;
    }
    eprintln!(
        "{} organisations in {:.1} s",
        lines.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One HTTP/1.1 exchange on a kept-alive connection: (status, body length).
async fn exchange(conn: &mut tokio::net::TcpStream, head: &str, body: &[u8]) -> Res<(u16, usize)> {
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let header_end = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let headers = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let status: u16 = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let len: usize = headers
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or("no Content-Length in the answer")?;
    while buf.len() < header_end + len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed in the body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, len))
}

fn host_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

async fn post(url: &str, path: &str, token: &str, body: &[u8]) -> Res<(u16, usize)> {
    let host = host_of(url);
    let mut c = tokio::net::TcpStream::connect(&host).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
        body.len()
    );
    exchange(&mut c, &head, body).await
}

/// Scan results (4 at a time), then the probe files one after the other; prints the probe
/// rows' rate (`rows/s`).
async fn upload(url: &str, token: &str, dir: &Path) -> Res<()> {
    let scans = std::fs::read_to_string(dir.join("scans.jsonl"))?;
    let docs: Vec<Value> = scans
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let t0 = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let docs = Arc::new(docs);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (next, docs, url, token) = (
            next.clone(),
            docs.clone(),
            url.to_string(),
            token.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(d) = docs.get(i) else { return failed };
                let template = match d["kind"].as_str() {
                    Some("compromised") => COMPROMISED,
                    Some("proxyshell") => PROXYSHELL,
                    _ => CLEAN,
                };
                let day = d["day"].as_str().unwrap_or("2021-03-03");
                let n = d["n"].as_u64().unwrap_or(0);
                let text = template
                    .replace("\"STARTED\"", &format!("\"{day}T10:{:02}:00Z\"", n % 60))
                    .replace("\"FINISHED\"", &format!("\"{day}T11:{:02}:00Z\"", n % 60));
                let mut v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if let Some(s) = v["servers"].as_array_mut() {
                    s.truncate(1);
                    s[0]["name"] = json!(d["name"]);
                }
                let body = v.to_string();
                let path = format!("/api/v1/results?org={}", d["org"]);
                match post(&url, &path, &token, body.as_bytes()).await {
                    Ok((201 | 200, _)) => {}
                    _ => failed += 1,
                }
            }
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await?;
    }
    println!(
        "scans {} in {:.1} s ({} failed)",
        docs.len(),
        t0.elapsed().as_secs_f64(),
        failed
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("probe-"))
        })
        .collect();
    files.sort();
    // EXHUNT_BENCH_IN_FLIGHT=N (default 1): N uploads at a time, as N probe shards posting
    // side by side; the rate is then over the wall time of them all.
    let in_flight: usize = std::env::var("EXHUNT_BENCH_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 1)
        .unwrap_or(1);
    if in_flight > 1 {
        let bodies = Arc::new(
            files
                .iter()
                .map(std::fs::read)
                .collect::<std::io::Result<Vec<Vec<u8>>>>()?,
        );
        let rows: usize = bodies
            .iter()
            .map(|b| b.iter().filter(|c| **c == b'\n').count())
            .sum();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let (bodies, next, url, token) = (
                bodies.clone(),
                next.clone(),
                url.to_string(),
                token.to_string(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(body) = bodies.get(i) else {
                        return Ok::<(), String>(());
                    };
                    match post(&url, "/api/v1/observations/probe", &token, body).await {
                        Ok((200, _)) => {}
                        Ok((status, _)) => return Err(format!("upload {i}: HTTP {status}")),
                        Err(e) => return Err(format!("upload {i}: {e}")),
                    }
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        let wall = t.elapsed().as_secs_f64();
        println!(
            "probe {rows} rows in {wall:.1} s with {in_flight} uploads in flight: {:.0} rows/s",
            rows as f64 / wall
        );
        return Ok(());
    }
    let mut rows = 0usize;
    let mut spent = Duration::ZERO;
    for f in &files {
        let body = std::fs::read(f)?;
        let n = body.iter().filter(|b| **b == b'\n').count();
        let t = Instant::now();
        let (status, _) = post(url, "/api/v1/observations/probe", token, &body).await?;
        let dt = t.elapsed();
        if status != 200 {
            return Err(format!("{}: HTTP {status}", f.display()).into());
        }
        spent += dt;
        rows += n;
        eprintln!(
            "  {}: {n} rows in {:.2} s ({:.0} rows/s)",
            f.display(),
            dt.as_secs_f64(),
            n as f64 / dt.as_secs_f64()
        );
    }
    println!(
        "probe {rows} rows in {:.1} s: {:.0} rows/s",
        spent.as_secs_f64(),
        rows as f64 / spent.as_secs_f64()
    );
    Ok(())
}

// ----- load -----------------------------------------------------------------------------------

fn percentiles(mut ms: Vec<f64>) -> String {
    if ms.is_empty() {
        return "no answer".into();
    }
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    format!(
        "n {} p50 {:.1} ms p95 {:.1} ms p99 {:.1} ms max {:.1} ms",
        ms.len(),
        p(0.50),
        p(0.95),
        p(0.99),
        ms[ms.len() - 1]
    )
}

/// CLIENTS connections, each asking PATHs in turn (`{org}` in a path: a random organisation id
/// up to the number after `#`, e.g. `/orgs/{org}#60000`) as fast as answers come, for SECS.
async fn hammer(
    url: &str,
    cookie: &str,
    clients: usize,
    secs: usize,
    paths: Vec<String>,
) -> Res<()> {
    let host = host_of(url);
    let until = Instant::now() + Duration::from_secs(secs as u64);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (host, cookie, paths) = (host.clone(), cookie.to_string(), paths.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1));
            let mut ms = Vec::new();
            let mut errors = 0usize;
            let mut conn = tokio::net::TcpStream::connect(&host).await.ok();
            let mut i = c;
            while Instant::now() < until {
                let p = &paths[i % paths.len()];
                i += 1;
                let path = match p.split_once('#') {
                    Some((tpl, max)) => {
                        let max: u64 = max.parse().unwrap_or(1);
                        tpl.replace("{org}", &(1 + rng.next() % max).to_string())
                    }
                    None => p.clone(),
                };
                let head =
                    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n");
                if conn.is_none() {
                    conn = tokio::net::TcpStream::connect(&host).await.ok();
                }
                let Some(cn) = conn.as_mut() else {
                    errors += 1;
                    continue;
                };
                let t = Instant::now();
                match exchange(cn, &head, b"").await {
                    Ok((200, _)) => ms.push(t.elapsed().as_secs_f64() * 1000.0),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        conn = None;
                    }
                }
            }
            (ms, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (ms, e) = t.await?;
        all.extend(ms);
        errors += e;
    }
    println!(
        "{} rps, {} errors, {}",
        all.len() / secs.max(1),
        errors,
        percentiles(all)
    );
    Ok(())
}

/// The baseline: the same store queries as the page (overview: counts, a page of
/// organisations, the curve; orgs: an organisation, a page of its servers, its counts and
/// curve), called straight, without HTTP, HTML, sessions or audit, by CLIENTS tasks for SECS.
async fn direct(
    db: &str,
    token: &str,
    clients: usize,
    secs: usize,
    what: &str,
    orgs: usize,
) -> Res<()> {
    let store = Store::open(db).await?;
    let caller = store.authenticate(token).await?;
    let until = Instant::now() + Duration::from_secs(secs as u64);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (store, caller, what) = (store.clone(), caller.clone(), what.to_string());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x1234_5678 ^ (c as u64 + 1));
            let mut ms = Vec::new();
            let t = exhunt_serve::store::agg::TableQuery::default();
            while Instant::now() < until {
                let s = Instant::now();
                let ok = if what == "overview" {
                    store.counts(&caller, None).await.is_ok()
                        && store.org_page(&caller, &t).await.is_ok()
                        && store.trend(&caller, None).await.is_ok()
                } else {
                    let id = 1 + (rng.next() % orgs as u64) as i64;
                    store.get_org(&caller, id).await.is_ok()
                        && match store.counts(&caller, Some(id)).await {
                            Ok(k) => store.server_page(&caller, id, &t, Some(&k)).await.is_ok(),
                            Err(_) => false,
                        }
                        && store.trend(&caller, Some(id)).await.is_ok()
                };
                if ok {
                    ms.push(s.elapsed().as_secs_f64() * 1000.0);
                }
            }
            ms
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    println!("{} per s, {}", all.len() / secs.max(1), percentiles(all));
    Ok(())
}
