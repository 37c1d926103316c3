//! Performance, side by side: ld-eaas against the clients a vendor would write
//! without it (issue 10). Prints one table.
//!
//! `cargo bench --bench perf` (needs Postgres; `TEST_DATABASE_URL` as for the
//! tests); `cargo bench --bench perf -- --quick` for a short run. It starts the
//! LaunchDarkly simulator in this process, a fresh Postgres database, and
//! `--replicas` ld-eaas replicas as child processes (the release binary, so
//! their RSS and cold start are real), then drives the internal API with an
//! open-loop load generator.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Path, State};
use clap::Parser;
use futures::StreamExt;
use ld_eaas::app::AppState;
use ld_eaas::clock::SystemClock;
use ld_eaas::config::ServeArgs;
use ld_eaas::connections::{self, Connected};
use ld_eaas::crypto::Keyring;
use ld_eaas::ids::TenantId;
use ld_eaas::simulator::{ApiTokenGrant, Faults, RateLimitConfig, Simulator, SimulatorConfig};
use ld_eaas::startup::Application;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Mutex;

/// The rate-limited LaunchDarkly of the burst: creates allowed per window,
/// the window, and the latency of every answer.
const BURST_LIMIT: u32 = 20;
const BURST_WINDOW: Duration = Duration::from_secs(2);
const LD_LATENCY: Duration = Duration::from_millis(200);
const CREATE_ROUTE: &str = "POST /api/v2/projects/{projectKey}/environments";

#[derive(Parser, Debug)]
struct Flags {
    /// Short run: 5 s phases, 100 tenants for the memory figure.
    #[arg(long)]
    quick: bool,
    /// ld-eaas replicas (child processes sharing one database).
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Creates in the rate-limited burst.
    #[arg(long, default_value_t = 100)]
    burst: usize,
    /// Seconds of sustained create+delete lifecycles (and of each GET run).
    #[arg(long)]
    seconds: Option<u64>,
    /// Lifecycles started per second by the open-loop generator.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Tenants (10 environments each) for the loaded-memory figure.
    #[arg(long)]
    tenants: Option<usize>,
    /// Concurrent connections of the GET runs.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Only the rate-limited burst and fairness.
    #[arg(long)]
    burst_only: bool,
    /// Passed on to every `ld-eaas serve` (repeat it: `--replica-arg=--workers=32`);
    /// without it the replicas run with the product's defaults.
    #[arg(long, allow_hyphen_values = true)]
    replica_arg: Vec<String>,
    /// Skip the rate-limited burst and fairness (to profile the later phases).
    #[arg(long, conflicts_with = "burst_only")]
    skip_burst: bool,
    /// Print when each of the burst's LaunchDarkly calls arrived (ms after the first).
    #[arg(long)]
    timeline: bool,
    /// Internal: serve only the axum + one-query baseline on this database and
    /// print its address (the bench starts itself so, in a process of its own).
    #[arg(long, hide = true)]
    serve_baseline: Option<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

// ---------------------------------------------------------------- figures

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Default, Clone)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }
    fn p(&self, p: f64) -> Duration {
        percentile(&self.sorted(), p)
    }
    fn summary(&self) -> String {
        let s = self.sorted();
        format!(
            "p50 {:.1} / p99 {:.1} / p99.9 {:.1} ms (n={})",
            ms(percentile(&s, 0.5)),
            ms(percentile(&s, 0.99)),
            ms(percentile(&s, 0.999)),
            s.len()
        )
    }
}

/// One row of the table.
struct Row {
    measure: String,
    ld_eaas: String,
    reference: String,
    target: String,
    verdict: String,
}

#[derive(Default)]
struct Table(Vec<Row>);

impl Table {
    fn add(
        &mut self,
        measure: &str,
        ld_eaas: String,
        reference: String,
        target: &str,
        met: Option<bool>,
    ) {
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "-",
        };
        println!("  .. {measure}: {ld_eaas} | {reference} | {verdict}");
        self.0.push(Row {
            measure: measure.to_owned(),
            ld_eaas,
            reference,
            target: target.to_owned(),
            verdict: verdict.to_owned(),
        });
    }

    fn print(&self) {
        let header = ["measure", "ld-eaas", "reference", "target", ""];
        let mut widths = header.map(str::len);
        for r in &self.0 {
            for (i, cell) in [&r.measure, &r.ld_eaas, &r.reference, &r.target, &r.verdict]
                .into_iter()
                .enumerate()
            {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 5]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            println!("| {} |", padded.join(" | "));
        };
        line(header);
        let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("|-{}-|", dashes.join("-|-"));
        for r in &self.0 {
            line([&r.measure, &r.ld_eaas, &r.reference, &r.target, &r.verdict]);
        }
    }
}

// ---------------------------------------------------------------- processes

/// CPU time a process has used (user and system, all its threads), from
/// /proc (in USER_HZ ticks, 100 a second on Linux).
fn cpu_of(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // After the command name (in parentheses, which may hold spaces):
    // state is field 3, utime and stime fields 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// CPU time used so far by: the replicas, every Postgres process on the
/// box (backends and the server's own), this process (the load generator
/// and the simulator), and the whole machine (/proc/stat: every CPU's
/// busy time, the kernel's interrupts included).
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    replicas: Duration,
    postgres: Duration,
    bench: Duration,
    machine: Duration,
}

impl CpuUse {
    fn now(replicas: &[u32]) -> Self {
        let mut postgres = Duration::ZERO;
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim_end() == "postgres" {
                    postgres += cpu_of(pid);
                }
            }
        }
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                let line = stat.lines().next()?.to_owned();
                let ticks: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
                let busy: u64 = ticks
                    .iter()
                    .take(8)
                    .enumerate()
                    .filter(|(i, _)| *i != 3 && *i != 4)
                    .map(|(_, t)| t)
                    .sum();
                Some(Duration::from_millis(busy * 10))
            })
            .unwrap_or_default();
        Self {
            replicas: replicas.iter().map(|pid| cpu_of(*pid)).sum(),
            postgres,
            bench: cpu_of(std::process::id()),
            machine,
        }
    }

    /// Per lifecycle, in ms, from `before` to `self`, over `n` lifecycles:
    /// "<machine> ms (ld-eaas <r>, Postgres <p>, load generator and simulator <b>, other <o>)".
    fn per(&self, before: &Self, n: usize) -> String {
        let each = |after: Duration, before: Duration| {
            after.saturating_sub(before).as_secs_f64() * 1000.0 / n.max(1) as f64
        };
        let (r, p, b, m) = (
            each(self.replicas, before.replicas),
            each(self.postgres, before.postgres),
            each(self.bench, before.bench),
            each(self.machine, before.machine),
        );
        let other = (m - r - p - b).max(0.0);
        format!(
            "{m:.2} ms (ld-eaas {r:.2}, Postgres {p:.2}, load generator and simulator {b:.2}, other {other:.2})"
        )
    }
}

/// RSS of a process in MiB, from /proc.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?
        .parse()?;
    Ok(kib / 1024.0)
}

struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `ld-eaas serve` and waits until `/readyz` answers 200; returns it
/// and the time from spawn to ready.
async fn start_replica(
    database_url: &str,
    sim_url: &str,
    key_spec: &str,
    replica_args: &[String],
    index: usize,
) -> anyhow::Result<(Replica, Duration)> {
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_ld-eaas"))
        .arg("serve")
        .args(["--database-url", database_url])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-url", &base])
        .args(["--launchdarkly-url", sim_url])
        .args(["--encryption-keys", key_spec])
        .args(replica_args)
        // The product's default log filter (every request logged at info),
        // written where an operator's collector would read it; with
        // PERF_REPLICA_LOG set, that filter, shown on the terminal.
        .env_remove("RUST_LOG")
        .envs(std::env::var("PERF_REPLICA_LOG").map(|f| ("RUST_LOG", f)))
        .stdout(if std::env::var_os("PERF_REPLICA_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting ld-eaas serve")?;
    let replica = Replica { child, base };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = http
            .get(format!("{}/readyz", replica.base))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK);
        if ready {
            return Ok((replica, started.elapsed()));
        }
        if Instant::now() > deadline {
            bail!("replica {index} never became ready");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ---------------------------------------------------------------- the API

#[derive(Clone)]
struct Api {
    bases: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    key: String,
    http: reqwest::Client,
}

impl Api {
    /// Round-robin over the replicas.
    fn base(&self) -> &str {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.bases[i % self.bases.len()]
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(StatusCode, Duration)> {
        let started = Instant::now();
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base()))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await?;
        let status = res.status();
        res.bytes().await?;
        Ok((status, started.elapsed()))
    }

    async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Duration> {
        let (status, took) = self.call(method.clone(), path, body).await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}");
        }
        Ok(took)
    }
}

/// A tenant connected to LaunchDarkly account `account` (token `token`), whose
/// environments are cloned from `staging` in project `project`.
async fn onboard(
    admin: &AppState,
    api: &Api,
    tenant: &str,
    token: &str,
    project: &str,
) -> anyhow::Result<()> {
    api.ok(
        Method::PUT,
        &format!("/tenants/{tenant}"),
        Some(json!({"display_name": tenant})),
    )
    .await?;
    let id = TenantId::parse(tenant)?;
    connections::connect(
        admin,
        &id,
        Connected::from_api_token(SecretString::from(token.to_owned())),
        "bench",
    )
    .await
    .map_err(|e| anyhow::anyhow!("connecting {tenant}: {e:?}"))?;
    api.ok(
        Method::PUT,
        &format!("/tenants/{tenant}/settings"),
        Some(json!({"project_key": project, "source_environment_key": "staging"})),
    )
    .await?;
    Ok(())
}

async fn count(db: &PgPool, sql: &str, tenant: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).bind(tenant).fetch_one(db).await?)
}

/// Waits until `sql` (bound to `tenant`) counts at least `target`.
async fn until(
    db: &PgPool,
    sql: &str,
    tenant: &str,
    target: i64,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if count(db, sql, tenant).await? >= target {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            bail!("timed out ({limit:?}) waiting for {target}: {sql}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const READY_OF: &str =
    "select count(*) from environments where tenant_id = $1 and status = 'ready'";

// ---------------------------------------------------------------- LaunchDarkly direct

/// A vendor's own client, straight to LaunchDarkly.
struct Direct {
    http: reqwest::Client,
    base: String,
    token: String,
    project: String,
}

impl Direct {
    async fn create(&self, key: &str) -> anyhow::Result<(StatusCode, reqwest::header::HeaderMap)> {
        let res = self
            .http
            .post(format!(
                "{}/api/v2/projects/{}/environments",
                self.base, self.project
            ))
            .header("Authorization", &self.token)
            .header("LD-API-Version", "20240415")
            .json(
                &json!({"key": key, "name": key, "color": "00AAFF", "source": {"key": "staging"}}),
            )
            .send()
            .await?;
        let status = res.status();
        let headers = res.headers().clone();
        res.bytes().await?;
        Ok((status, headers))
    }

    async fn delete(&self, key: &str) -> anyhow::Result<StatusCode> {
        let res = self
            .http
            .delete(format!(
                "{}/api/v2/projects/{}/environments/{key}",
                self.base, self.project
            ))
            .header("Authorization", &self.token)
            .header("LD-API-Version", "20240415")
            .send()
            .await?;
        let status = res.status();
        res.bytes().await?;
        Ok(status)
    }
}

/// How long until the reset a 429 names (`X-Ratelimit-Reset`, else `Retry-After`).
// A plain client against LaunchDarkly's epoch-millisecond reset: it reads
// the wall clock, as the clients it stands for do.
#[allow(clippy::disallowed_methods)]
fn until_reset(headers: &reqwest::header::HeaderMap) -> Duration {
    let now = chrono::Utc::now().timestamp_millis();
    let reset = headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    if let Some(reset) = reset {
        return Duration::from_millis(u64::try_from(reset - now).unwrap_or(0));
    }
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
}

/// Terraform-style: one call at a time; on a 429 sleep until the reset.
async fn terraform_style(client: &Direct, n: usize) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let mut refused = 0;
    for i in 0..n {
        loop {
            let (status, headers) = client.create(&format!("tf-{i}")).await?;
            if status == StatusCode::TOO_MANY_REQUESTS {
                refused += 1;
                tokio::time::sleep(until_reset(&headers)).await;
                continue;
            }
            if !status.is_success() {
                bail!("terraform-style create: {status}");
            }
            break;
        }
    }
    Ok((started.elapsed(), refused))
}

/// Okteto-style: a few workers, generic exponential backoff (1 s doubling,
/// up to 30 s, ±25 % jitter) that ignores the rate-limit headers.
async fn okteto_style(
    client: &Direct,
    n: usize,
    workers: usize,
) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let refused = AtomicUsize::new(0);
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let refused = &refused;
            async move {
                let mut attempt = 0u32;
                loop {
                    let (status, _) = client.create(&format!("ok-{i}")).await?;
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        refused.fetch_add(1, Ordering::Relaxed);
                        let base = Duration::from_secs(1) * 2u32.pow(attempt.min(5));
                        let jitter = rand::random::<f64>() * 0.5 + 0.75;
                        tokio::time::sleep(base.min(Duration::from_secs(30)).mul_f64(jitter)).await;
                        attempt += 1;
                        continue;
                    }
                    if !status.is_success() {
                        bail!("okteto-style create: {status}");
                    }
                    return Ok(());
                }
            }
        })
        .buffer_unordered(workers)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok((started.elapsed(), refused.load(Ordering::Relaxed)))
}

fn refused_for(sim: &Simulator, account: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.account_id.as_deref() == Some(account) && r.status == Some(429))
        .count()
}

// ---------------------------------------------------------------- the baseline

/// A bare axum handler running one Postgres query: the floor for a read.
/// The burst account's LaunchDarkly calls: ms after the first, method, path tail, status.
fn print_timeline(sim: &Simulator, account: &str) {
    let calls: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.account_id.as_deref() == Some(account))
        .collect();
    let Some(first) = calls.first().map(|r| r.at) else {
        return;
    };
    for r in &calls {
        let tail = r.path.rsplit('/').next().unwrap_or("");
        println!(
            "    {:>7} ms  {} .../{tail}  {}",
            (r.at - first).num_milliseconds(),
            r.method,
            r.status.map_or_else(|| "-".to_owned(), |s| s.to_string())
        );
    }
}

/// The baseline in a process of its own, like the replicas (not in the bench's
/// process, where it would share a runtime with the load generator), on a pool
/// made as the product makes its own.
fn start_baseline(database_url: &str) -> anyhow::Result<Replica> {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--serve-baseline", database_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the baseline server")?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufReader::new(out).read_line(&mut line)?;
    }
    let replica = Replica {
        child,
        base: line.trim().to_owned(),
    };
    if !replica.base.starts_with("http://") {
        bail!("the baseline server did not start");
    }
    Ok(replica)
}

async fn baseline_server(db: ld_eaas::db::Db) -> anyhow::Result<String> {
    async fn tenant(
        State(db): State<ld_eaas::db::Db>,
        Path(id): Path<String>,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let row: Result<Option<(String, String)>, _> =
            sqlx::query_as("select id, display_name from tenants where id = $1")
                .bind(id)
                .fetch_optional(&db)
                .await;
        match row {
            Ok(Some((id, name))) => {
                axum::Json(json!({"id": id, "display_name": name})).into_response()
            }
            Ok(None) => StatusCode::NOT_FOUND.into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
    let app = axum::Router::new()
        .route("/api/v1/tenants/{id}", axum::routing::get(tenant))
        .with_state(db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(base)
}

/// Closed loop: `connections` callers GET `paths` round-robin for `for_`.
async fn hammer(
    http: &reqwest::Client,
    bases: &[String],
    key: &str,
    paths: &[String],
    connections: usize,
    for_: Duration,
) -> anyhow::Result<Reads> {
    let stop = Instant::now() + for_;
    let errors = AtomicUsize::new(0);
    let all = Mutex::new(Vec::new());
    let started = Instant::now();
    futures::future::join_all((0..connections).map(|c| {
        let errors = &errors;
        let all = &all;
        async move {
            let mut mine = Vec::new();
            let mut i = c;
            while Instant::now() < stop {
                let url = format!(
                    "{}/api/v1{}",
                    bases[i % bases.len()],
                    paths[i % paths.len()]
                );
                i += connections;
                let t = Instant::now();
                match http.get(url).bearer_auth(key).send().await {
                    Ok(res) if res.status().is_success() => {
                        let _ = res.bytes().await;
                        mine.push(t.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            all.lock().await.extend(mine);
        }
    }))
    .await;
    Ok(Reads {
        seconds: started.elapsed().as_secs_f64(),
        latencies: all.into_inner(),
        errors: errors.load(Ordering::Relaxed),
    })
}

/// What runs of [`hammer`] against one target added up to.
#[derive(Default)]
struct Reads {
    seconds: f64,
    latencies: Vec<Duration>,
    errors: usize,
}

impl Reads {
    fn add(&mut self, more: Reads) {
        self.seconds += more.seconds;
        self.latencies.extend(more.latencies);
        self.errors += more.errors;
    }

    /// Requests per second, latencies, errors.
    fn finish(self) -> (f64, Latencies, usize) {
        let rps = self.latencies.len() as f64 / self.seconds.max(f64::EPSILON);
        (rps, Latencies(self.latencies), self.errors)
    }
}

// ---------------------------------------------------------------- main

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    if let Some(url) = &flags.serve_baseline {
        let db = ld_eaas::db::connect(&SecretString::from(url.clone()), 20).await?;
        println!("{}", baseline_server(db).await?);
        std::future::pending::<()>().await;
    }
    let name = format!("ldeaas_perf_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .context("the benchmark needs Postgres (TEST_DATABASE_URL)")?;
    sqlx::query(&format!("create database {name}"))
        .execute(&mut admin)
        .await?;
    let mut db_url = url::Url::parse(&admin_url())?;
    db_url.set_path(&format!("/{name}"));
    let result = run(&flags, db_url.as_str()).await;
    sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&mut admin)
        .await?;
    result
}

/// What autovacuum would have done between two phases, when the server runs
/// without it (this machine's Postgres has `autovacuum = off`): each phase
/// starts on a database whose dead rows were cleared, as a maintained one
/// would be. Nothing when autovacuum is on.
async fn maintain(database_url: &str) -> anyhow::Result<()> {
    let mut db = PgConnection::connect(database_url).await?;
    let autovacuum: String = sqlx::query_scalar("show autovacuum")
        .fetch_one(&mut db)
        .await?;
    if autovacuum == "on" {
        return Ok(());
    }
    let t = Instant::now();
    sqlx::query("vacuum").execute(&mut db).await?;
    println!(
        "  (autovacuum is off on this server: vacuumed the bench database in {:.0} ms)",
        ms(t.elapsed())
    );
    Ok(())
}

/// How the replicas reach Postgres (they use the same URL as `db`): over
/// its Unix socket, or over TCP with or without TLS. On one box the socket
/// costs the least: TLS on loopback encrypts every statement and answer
/// twice over for nothing (BENCHMARKS.md, item 38).
async fn database_link(db: &PgPool) -> anyhow::Result<&'static str> {
    let (tcp, tls): (bool, bool) = sqlx::query_as(
        "select inet_server_addr() is not null,
                coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)",
    )
    .fetch_one(db)
    .await?;
    Ok(match (tcp, tls) {
        (false, _) => "over its Unix socket",
        (true, true) => "over TCP with TLS",
        (true, false) => "over TCP without TLS",
    })
}

/// How many of the lifecycle phases' row updates were heap-only (HOT: no
/// index entry written) on the two hot tables. Postgres's statistics lag by
/// up to a second, hence the wait.
async fn print_updates(db: &PgPool) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "select relname::text, n_tup_upd, n_tup_hot_upd from pg_stat_user_tables
          where relname in ('environments', 'jobs') order by relname",
    )
    .fetch_all(db)
    .await?;
    for (table, updates, hot) in rows {
        println!("  ({table}: {updates} row updates, {hot} of them heap-only)");
    }
    Ok(())
}

/// How the replicas wrote the API's PUTs and DELETEs over the lifecycle
/// phases: how many went in statements that wrote several together
/// (`environments::batched`, while no worker was idle), in how many such
/// statements, of how many in all. Summed over the replicas' `/metrics`.
async fn print_batches(api: &Api) -> anyhow::Result<()> {
    let mut sums = std::collections::HashMap::<String, f64>::new();
    for base in api.bases.iter() {
        let text = api
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some((series, value)) = line.rsplit_once(' ') {
                *sums.entry(series.to_owned()).or_default() += value.parse::<f64>().unwrap_or(0.0);
            }
        }
    }
    let get = |series: String| sums.get(&series).copied().unwrap_or(0.0);
    // The batches' label, the lifecycle writes' label, and what they are.
    for (write, counted, what) in [
        ("put", "put", "puts"),
        ("delete", "delete", "deletes"),
        ("settle", "outcome", "outcomes"),
    ] {
        let batches = get(format!(r#"ld_eaas_write_batches_total{{write="{write}"}}"#));
        let batched = get(format!(
            r#"ld_eaas_batched_requests_total{{write="{write}"}}"#
        ));
        let all = get(format!(
            r#"ld_eaas_lifecycle_writes_total{{path="statement",write="{counted}"}}"#
        )) + get(format!(
            r#"ld_eaas_lifecycle_writes_total{{path="transaction",write="{counted}"}}"#
        ));
        let mean = if batches > 0.0 {
            batched / batches
        } else {
            0.0
        };
        println!(
            "  ({what} written together: {batched:.0} of {all:.0}, in {batches:.0} statements, {mean:.1} a statement)"
        );
    }
    let claims = ["offered", "outcome", "queue"]
        .map(|how| get(format!(r#"ld_eaas_jobs_claimed_total{{how="{how}"}}"#)));
    println!(
        "  (jobs claimed: {:.0} offered by the API, {:.0} by an outcome, {:.0} from the queue)",
        claims[0], claims[1], claims[2]
    );
    Ok(())
}

async fn run(flags: &Flags, database_url: &str) -> anyhow::Result<()> {
    let whole = Instant::now();
    let seconds = Duration::from_secs(flags.seconds.unwrap_or(if flags.quick { 5 } else { 30 }));
    let get_seconds = seconds.min(Duration::from_secs(10));
    let many_tenants = flags
        .tenants
        .unwrap_or(if flags.quick { 100 } else { 1000 });
    let load_accounts = 8;

    // LaunchDarkly: an account per client under test, each with its own project.
    let mut grants = vec![
        ApiTokenGrant::for_account("tok-tf", "acct-tf", "writer"),
        ApiTokenGrant::for_account("tok-okteto", "acct-okteto", "writer"),
        ApiTokenGrant::for_account("tok-burst", "acct-burst", "writer"),
        ApiTokenGrant::for_account("tok-fair", "acct-fair", "writer"),
        ApiTokenGrant::for_account("tok-direct", "acct-direct", "writer"),
        ApiTokenGrant::for_account("tok-many", "acct-many", "writer"),
    ];
    for i in 0..load_accounts {
        grants.push(ApiTokenGrant::for_account(
            format!("tok-load-{i}"),
            format!("acct-load-{i}"),
            "writer",
        ));
    }
    let sim = Simulator::start(
        SimulatorConfig {
            api_tokens: grants,
            ..SimulatorConfig::default()
        },
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    )
    .await?;
    for (account, project) in [
        ("acct-tf", "tf"),
        ("acct-okteto", "okteto"),
        ("acct-burst", "burst"),
        ("acct-fair", "fair"),
        ("acct-direct", "direct"),
        ("acct-many", "many"),
    ] {
        sim.add_project(account, project, project, &["staging"]);
    }
    for i in 0..load_accounts {
        sim.add_project(&format!("acct-load-{i}"), "load", "load", &["staging"]);
    }
    let sim_url = sim.base_url();

    // The database, migrated by an in-process app that only does setup
    // (connecting tenants needs the keyring); it serves nothing.
    let key_spec = Keyring::generate_spec("k1");
    let setup_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    #[derive(Parser)]
    struct Setup {
        #[command(flatten)]
        args: ServeArgs,
    }
    let setup = Setup::try_parse_from([
        "ld-eaas",
        "--database-url",
        database_url,
        "--public-url",
        "http://127.0.0.1:1",
        "--launchdarkly-url",
        &sim_url,
        "--encryption-keys",
        &key_spec,
        "--database-pool-size",
        "8",
    ])?;
    let setup_app = Application::build_with_listener(
        setup.args.into_config()?,
        Arc::new(SystemClock),
        setup_listener,
    )
    .await?;
    let admin = setup_app.state().clone();
    let db = admin.db.clone();

    // Replicas. The first one's spawn-to-ready time is the cold start (the
    // database is migrated already, as on any restart).
    println!(
        "starting {} replicas of {}",
        flags.replicas,
        env!("CARGO_BIN_EXE_ld-eaas")
    );
    let mut replicas = Vec::new();
    let mut cold_starts = Vec::new();
    for i in 0..flags.replicas {
        let (replica, took) =
            start_replica(database_url, &sim_url, &key_spec, &flags.replica_arg, i).await?;
        cold_starts.push(took);
        replicas.push(replica);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_mib(replicas[0].child.id())?;

    let (_, api_key) = ld_eaas::store::api_keys::create(&db, "bench", None, admin.now()).await?;
    let api = Api {
        bases: Arc::new(replicas.iter().map(|r| r.base.clone()).collect()),
        next: Arc::default(),
        key: api_key.expose_secret().to_owned(),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?,
    };
    onboard(&admin, &api, "burst", "tok-burst", "burst").await?;
    onboard(&admin, &api, "fair", "tok-fair", "fair").await?;
    for i in 0..load_accounts {
        onboard(
            &admin,
            &api,
            &format!("load-{i}"),
            &format!("tok-load-{i}"),
            "load",
        )
        .await?;
    }

    let mut table = Table::default();
    let pct = |a: f64, b: f64| 100.0 * (a / b - 1.0);

    let direct = |token: &str, project: &str| Direct {
        http: reqwest::Client::new(),
        base: sim_url.clone(),
        token: token.to_owned(),
        project: project.to_owned(),
    };

    // ------------------------------------------------ 1. the rate-limited burst
    if !flags.skip_burst {
        let mut limits = RateLimitConfig {
            window: BURST_WINDOW,
            ..RateLimitConfig::default()
        };
        limits
            .route_limits
            .insert(CREATE_ROUTE.to_owned(), BURST_LIMIT);
        sim.set_rate_limits(limits);
        sim.set_faults(Faults {
            latency: LD_LATENCY,
            ..Faults::none()
        });
        let n = flags.burst;
        let ideal = BURST_WINDOW.mul_f64(n as f64 / f64::from(BURST_LIMIT));
        println!(
            "burst: {n} creates; LaunchDarkly allows {BURST_LIMIT} creates per {BURST_WINDOW:?} and answers in {LD_LATENCY:?}; ideal {ideal:?}"
        );

        // Fairness reference: the other tenant's creates with nobody throttled.
        let fair_alone = fair_creates(&api, "alone", 5).await?;
        println!("  fair tenant alone: {}", fair_alone.summary());

        let (tf_time, tf_429) = terraform_style(&direct("tok-tf", "tf"), n).await?;
        println!("  terraform-style: {tf_time:?}, {tf_429} x 429");
        let (ok_time, ok_429) = okteto_style(&direct("tok-okteto", "okteto"), n, 4).await?;
        println!("  okteto-style: {ok_time:?}, {ok_429} x 429");

        tokio::time::sleep(BURST_WINDOW).await;
        let started = Instant::now();
        let burst = async {
            let accepted: Vec<anyhow::Result<Duration>> = futures::stream::iter(0..n)
                .map(|i| {
                    let api = &api;
                    async move {
                        api.ok(
                            Method::PUT,
                            &format!("/tenants/burst/environments/b-{i}?wait=0"),
                            None,
                        )
                        .await
                    }
                })
                .buffer_unordered(16)
                .collect()
                .await;
            accepted.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
            until(&db, READY_OF, "burst", n as i64, Duration::from_secs(120)).await?;
            anyhow::Ok(started.elapsed())
        };
        let during = async {
            // Let the burst reach the limit before measuring the other tenant.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            fair_creates(&api, "during", 5).await
        };
        let (eaas_time, fair_during) = futures::future::join(burst, during).await;
        let eaas_time = eaas_time?;
        let fair_during = fair_during?;
        let eaas_429 = refused_for(&sim, "acct-burst");
        let burst_calls = sim
            .requests()
            .iter()
            .filter(|r| r.account_id.as_deref() == Some("acct-burst"))
            .count();
        if flags.timeline {
            print_timeline(&sim, "acct-burst");
        }
        println!(
            "  ld-eaas: {eaas_time:?}, {eaas_429} x 429, {burst_calls} LaunchDarkly calls; fair tenant during: {}",
            fair_during.summary()
        );

        table.add(
            "burst of 100 creates (20/2 s, 200 ms): seconds",
            format!(
                "{:.2} s ({:+.1} % vs ideal {:.1} s)",
                eaas_time.as_secs_f64(),
                pct(eaas_time.as_secs_f64(), ideal.as_secs_f64()),
                ideal.as_secs_f64()
            ),
            format!(
                "Terraform-style {:.2} s; Okteto-style {:.2} s",
                tf_time.as_secs_f64(),
                ok_time.as_secs_f64()
            ),
            "within 5 % of ideal",
            Some(eaas_time.as_secs_f64() <= ideal.as_secs_f64() * 1.05),
        );
        table.add(
            "burst: 429s received",
            format!(
                "{eaas_429} ({:.1} per 100 calls)",
                100.0 * eaas_429 as f64 / burst_calls.max(1) as f64
            ),
            format!("Terraform-style {tf_429}; Okteto-style {ok_429}"),
            "<= 1 per 100 calls",
            Some(eaas_429 * 100 <= burst_calls),
        );
        table.add(
            "burst: speed-up over Terraform-style",
            format!("{:.2}x", tf_time.as_secs_f64() / eaas_time.as_secs_f64()),
            format!(
                "Okteto-style is {:.2}x",
                tf_time.as_secs_f64() / ok_time.as_secs_f64()
            ),
            ">= 2x",
            Some(tf_time.as_secs_f64() / eaas_time.as_secs_f64() >= 2.0),
        );
        let fair_ratio = fair_during.p(0.5).as_secs_f64() / fair_alone.p(0.5).as_secs_f64();
        table.add(
            "fairness: other tenant's PUT (ready) p50 while one is throttled",
            format!(
                "{:.0} ms ({:+.1} %)",
                ms(fair_during.p(0.5)),
                pct(fair_ratio, 1.0)
            ),
            format!("{:.0} ms unthrottled", ms(fair_alone.p(0.5))),
            "within 10 %",
            Some(fair_ratio <= 1.10),
        );

        if flags.burst_only {
            println!();
            table.print();
            drop(replicas);
            sim.shutdown().await;
            return Ok(());
        }
    }

    // ------------------------------------------------ 2. sustained lifecycles
    sim.set_rate_limits(RateLimitConfig::default());
    sim.set_faults(Faults::none());
    sim.clear_requests();

    // Calling LaunchDarkly (the simulator) directly: create then delete.
    let direct_client = direct("tok-direct", "direct");
    let mut direct_create = Latencies::default();
    let mut direct_delete = Latencies::default();
    for i in 0..300 {
        let key = format!("d-{i}");
        let t = Instant::now();
        let (status, _) = direct_client.create(&key).await?;
        direct_create.0.push(t.elapsed());
        if !status.is_success() {
            bail!("direct create: {status}");
        }
        let t = Instant::now();
        let status = direct_client.delete(&key).await?;
        direct_delete.0.push(t.elapsed());
        if !status.is_success() {
            bail!("direct delete: {status}");
        }
    }

    let rate = flags.rate;
    // Not counted: the replicas' pools open their connections and prepare
    // their statements, as a replica in service has long done.
    let (warm, _, _, _) = closed_loop(&api, 16, Duration::from_secs(1), load_accounts).await;
    println!("lifecycles: warmed up with {warm} lifecycles in 1 s (not counted)");
    maintain(database_url).await?;
    println!("lifecycles: open loop at {rate}/s for {seconds:?} over {load_accounts} tenants");
    let offered_at = Instant::now();
    let (done, put_ready, delete_gone, failed) =
        open_loop(&api, rate, seconds, load_accounts).await;
    // Completed over the time until the last one finished, not the time
    // they were offered in: a backlog must not count as throughput.
    let drained = offered_at.elapsed();
    let achieved = done as f64 / drained.as_secs_f64().max(seconds.as_secs_f64());
    println!(
        "  {done} lifecycles ({failed} failed) done in {drained:?}; PUT {}; DELETE {}",
        put_ready.summary(),
        delete_gone.summary()
    );
    sim.clear_requests();

    // Saturation: as many lifecycles as 64 callers can drive.
    maintain(database_url).await?;
    let pids: Vec<u32> = replicas.iter().map(|r| r.child.id()).collect();
    let cpu_before = CpuUse::now(&pids);
    let (max_done, _, _, max_failed) = closed_loop(&api, 64, seconds, load_accounts).await;
    let cpu_split = CpuUse::now(&pids).per(&cpu_before, max_done);
    let max_rate = max_done as f64 / seconds.as_secs_f64();
    println!("  saturation: {max_done} lifecycles ({max_failed} failed) in {seconds:?}");
    println!("  CPU per lifecycle at saturation: {cpu_split}");
    sim.clear_requests();
    print_updates(&db).await?;
    print_batches(&api).await?;

    table.add(
        "create+delete lifecycles/s sustained",
        format!("{max_rate:.0} /s at saturation (64 callers); {achieved:.0} /s of {rate} offered ({failed} failed)"),
        format!(
            "{} replicas, Postgres on the same box {}",
            flags.replicas,
            database_link(&db).await?
        ),
        ">= 1,000 /s",
        Some(max_rate >= 1000.0),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    table.add(
        "CPU time per lifecycle at saturation (whole box)",
        cpu_split,
        format!("{cores} CPUs: 1,000 /s leaves {cores} ms for everything"),
        "-",
        None,
    );
    table.add(
        &format!("PUT ?wait (ready) at {rate} lifecycles/s"),
        put_ready.summary(),
        format!("direct LaunchDarkly create {}", direct_create.summary()),
        "-",
        None,
    );
    table.add(
        &format!("DELETE ?wait (gone) at {rate} lifecycles/s"),
        delete_gone.summary(),
        format!("direct LaunchDarkly delete {}", direct_delete.summary()),
        "-",
        None,
    );
    let added_p99 = put_ready.p(0.99).saturating_sub(direct_create.p(0.99));
    table.add(
        "PUT latency added over calling LaunchDarkly directly (p99)",
        format!(
            "{:.1} ms (p50 {:.1} ms)",
            ms(added_p99),
            ms(put_ready.p(0.5).saturating_sub(direct_create.p(0.5)))
        ),
        format!("direct p99 {:.1} ms", ms(direct_create.p(0.99))),
        "<= 5 ms at 200 lifecycles/s",
        Some(ms(added_p99) <= 5.0),
    );

    // ------------------------------------------------ 3. reads
    for i in 0..load_accounts {
        api.ok(
            Method::PUT,
            &format!("/tenants/load-{i}/environments/read-me?wait=30"),
            None,
        )
        .await?;
    }
    let env_paths: Vec<String> = (0..load_accounts)
        .map(|i| format!("/tenants/load-{i}/environments/read-me"))
        .collect();
    let tenant_paths: Vec<String> = (0..load_accounts)
        .map(|i| format!("/tenants/load-{i}"))
        .collect();
    let baseline_process = start_baseline(database_url)?;
    let baseline = baseline_process.base.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let c = flags.connections;
    // The three targets take turns, one second each, so that a change in
    // the machine's background load falls on all three alike.
    println!(
        "  reads: baseline, GET /tenants/{{id}} and GET /tenants/{{id}}/environments/{{eid}}, one second each in turn, for {get_seconds:?} each"
    );
    let mut reads = [Reads::default(), Reads::default(), Reads::default()];
    let slice = Duration::from_secs(1).min(get_seconds);
    let rounds = (get_seconds.as_secs_f64() / slice.as_secs_f64()).ceil() as usize;
    for round in 0..rounds {
        for turn in 0..3 {
            let which = (round + turn) % 3;
            let (bases, key, paths): (&[String], &str, &[String]) = match which {
                0 => (std::slice::from_ref(&baseline), "", &tenant_paths),
                1 => (&api.bases, &api.key, &tenant_paths),
                _ => (&api.bases, &api.key, &env_paths),
            };
            reads[which].add(hammer(&http, bases, key, paths, c, slice).await?);
        }
    }
    let [base, tenant, env] = reads;
    let (base_rps, base_lat, base_err) = base.finish();
    let (tenant_rps, tenant_lat, tenant_err) = tenant.finish();
    let (env_rps, env_lat, env_err) = env.finish();
    println!(
        "  reads: baseline {base_rps:.0}/s ({base_err} errors), tenant {tenant_rps:.0}/s ({tenant_err}), environment {env_rps:.0}/s ({env_err})"
    );
    let baseline_ref = format!(
        "axum + one query: {base_rps:.0} /s, p99 {:.1} ms",
        ms(base_lat.p(0.99))
    );
    table.add(
        "GET /tenants/{id}: requests/s, p99",
        format!(
            "{tenant_rps:.0} /s ({:.2}x), p99 {:.1} ms",
            tenant_rps / base_rps,
            ms(tenant_lat.p(0.99))
        ),
        baseline_ref.clone(),
        ">= 0.5x baseline",
        Some(tenant_rps >= 0.5 * base_rps),
    );
    table.add(
        "GET /tenants/{id}/environments/{eid}: requests/s, p99",
        format!(
            "{env_rps:.0} /s ({:.2}x), p99 {:.1} ms",
            env_rps / base_rps,
            ms(env_lat.p(0.99))
        ),
        baseline_ref,
        ">= 0.5x baseline",
        Some(env_rps >= 0.5 * base_rps),
    );

    // ------------------------------------------------ 4. memory with many tenants
    println!("memory: {many_tenants} tenants x 10 environments");
    let seeded = Instant::now();
    futures::stream::iter(0..many_tenants)
        .map(|t| {
            let api = &api;
            let admin = &admin;
            async move {
                let tenant = format!("m-{t}");
                onboard(admin, api, &tenant, "tok-many", "many").await?;
                for e in 0..10 {
                    api.ok(
                        Method::PUT,
                        &format!("/tenants/{tenant}/environments/t{t}-e{e}?wait=0"),
                        None,
                    )
                    .await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    let want = i64::try_from(many_tenants * 10)?;
    let all_ready =
        "select count(*) from environments where tenant_id like $1 and status = 'ready'";
    until(&db, all_ready, "m-%", want, Duration::from_secs(600)).await?;
    println!("  seeded in {:.1} s", seeded.elapsed().as_secs_f64());
    // Every tenant read once, so whatever is cached per tenant is.
    let paths: Vec<String> = (0..many_tenants)
        .map(|t| format!("/tenants/m-{t}"))
        .collect();
    futures::stream::iter(paths)
        .map(|p| {
            let api = &api;
            async move { api.ok(Method::GET, &p, None).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut loaded = BTreeMap::new();
    for (i, r) in replicas.iter().enumerate() {
        loaded.insert(i, rss_mib(r.child.id())?);
    }
    let loaded_max = loaded.values().copied().fold(0.0, f64::max);
    table.add(
        "RSS per replica at idle",
        format!("{idle_rss:.1} MiB"),
        "-".to_owned(),
        "<= 20 MiB",
        Some(idle_rss <= 20.0),
    );
    table.add(
        &format!("RSS per replica after all the above, {many_tenants} tenants x 10 environments"),
        format!("{loaded_max:.1} MiB (max of {})", flags.replicas),
        format!(
            "{:?}",
            loaded
                .values()
                .map(|v| format!("{v:.1}"))
                .collect::<Vec<_>>()
        ),
        "<= 100 MiB with 1,000 tenants",
        Some(loaded_max <= 100.0 && many_tenants >= 1000),
    );
    let cold = cold_starts.iter().copied().max().unwrap_or_default();
    table.add(
        "cold start (spawn to /readyz 200, migrated database)",
        format!("{:.0} ms (slowest of {})", ms(cold), cold_starts.len()),
        "-".to_owned(),
        "<= 500 ms",
        Some(cold <= Duration::from_millis(500)),
    );

    println!();
    println!(
        "ld-eaas performance: {} replicas, {} CPUs, simulator in-process, whole run {:.0} s",
        flags.replicas,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        whole.elapsed().as_secs_f64()
    );
    table.print();

    drop(replicas);
    sim.shutdown().await;
    drop(setup_app);
    Ok(())
}

/// `count` creates for the "fair" tenant, one at a time, each waited for.
async fn fair_creates(api: &Api, label: &str, count: usize) -> anyhow::Result<Latencies> {
    let mut lat = Latencies::default();
    for i in 0..count {
        lat.0.push(
            api.ok(
                Method::PUT,
                &format!("/tenants/fair/environments/{label}-{i}?wait=30"),
                None,
            )
            .await?,
        );
    }
    Ok(lat)
}

/// One create (waited until ready) then delete (waited until gone).
async fn lifecycle(api: &Api, tenant: usize, key: &str) -> anyhow::Result<(Duration, Duration)> {
    let path = format!("/tenants/load-{tenant}/environments/{key}?wait=30");
    let (status, put) = api.call(Method::PUT, &path, None).await?;
    if status != StatusCode::CREATED && status != StatusCode::OK {
        bail!("PUT {path}: {status}");
    }
    let (status, delete) = api.call(Method::DELETE, &path, None).await?;
    if !status.is_success() {
        bail!("DELETE {path}: {status}");
    }
    Ok((put, delete))
}

type Run = (usize, Latencies, Latencies, usize);

/// Starts `rate` lifecycles a second for `for_`, whatever the answers do.
async fn open_loop(api: &Api, rate: u32, for_: Duration, tenants: usize) -> Run {
    let results = Arc::new(Mutex::new((
        Latencies::default(),
        Latencies::default(),
        0usize,
    )));
    let mut tasks = Vec::new();
    let interval = Duration::from_secs(1) / rate.max(1);
    let start = tokio::time::Instant::now();
    let total = (for_.as_secs_f64() * f64::from(rate)) as usize;
    for i in 0..total {
        tokio::time::sleep_until(start + interval * u32::try_from(i).unwrap_or(u32::MAX)).await;
        let api = api.clone();
        let results = results.clone();
        tasks.push(tokio::spawn(async move {
            let outcome = lifecycle(&api, i % tenants, &format!("o-{i}")).await;
            // PERF_SLOW_PUTS=1: when each PUT slower than 5 ms started, to
            // tell a stall of everything (many at once) from scattered ones.
            if let (Some(_), Ok((put, _))) = (std::env::var_os("PERF_SLOW_PUTS"), &outcome) {
                if *put >= Duration::from_millis(5) {
                    let at = start.elapsed().saturating_sub(*put).as_secs_f64();
                    let ms = put.as_secs_f64() * 1e3;
                    eprintln!("slow PUT: started {at:.3} s into the phase, took {ms:.1} ms");
                }
            }
            let mut r = results.lock().await;
            match outcome {
                Ok((put, delete)) => {
                    r.0.0.push(put);
                    r.1.0.push(delete);
                }
                Err(_) => r.2 += 1,
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let (put, delete, failed) = std::mem::take(&mut *results.lock().await);
    (put.0.len(), put, delete, failed)
}

/// `callers` lifecycles at a time, back to back, for `for_`.
async fn closed_loop(api: &Api, callers: usize, for_: Duration, tenants: usize) -> Run {
    let stop = Instant::now() + for_;
    let results = Arc::new(Mutex::new((
        Latencies::default(),
        Latencies::default(),
        0usize,
    )));
    let next = Arc::new(AtomicUsize::new(0));
    futures::future::join_all((0..callers).map(|_| {
        let results = results.clone();
        let next = next.clone();
        async move {
            while Instant::now() < stop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let outcome = lifecycle(api, i % tenants, &format!("c-{i}")).await;
                let mut r = results.lock().await;
                match outcome {
                    Ok((put, delete)) => {
                        r.0.0.push(put);
                        r.1.0.push(delete);
                    }
                    Err(_) => r.2 += 1,
                }
            }
        }
    }))
    .await;
    let (put, delete, failed) = std::mem::take(&mut *results.lock().await);
    (put.0.len(), put, delete, failed)
}
