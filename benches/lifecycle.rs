//! End-to-end lifecycle benchmark: the real app (HTTP API, Postgres job
//! queue, workers) against the LaunchDarkly simulator, all on loopback.
//!
//! `cargo bench --bench lifecycle` (needs Postgres; `TEST_DATABASE_URL`
//! as for the tests). Prints creates and deletes per second end to end,
//! API latency percentiles and time to ready. Bounded to well under two
//! minutes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use ld_eaas::clock::SystemClock;
use ld_eaas::config::ServeArgs;
use ld_eaas::connections::{self, Connected};
use ld_eaas::crypto::Keyring;
use ld_eaas::ids::TenantId;
use ld_eaas::settings::{self, SettingsInput};
use ld_eaas::simulator::{ApiTokenGrant, Simulator, SimulatorConfig};
use ld_eaas::startup::Application;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Connection, PgConnection};

const TENANTS: usize = 4;
/// Environments created (then deleted) in the throughput runs.
const BULK: usize = 1_000;
/// Sequential-ish PUTs with `?wait=` for the latency figures.
const LATENCY_SAMPLES: usize = 300;
const GET_SAMPLES: usize = 3_000;
const CONCURRENCY: usize = 16;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    args: ServeArgs,
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<34} n={:<5} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

struct Bench {
    base: String,
    key: String,
    http: reqwest::Client,
    db: sqlx::PgPool,
}

impl Bench {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<reqwest::StatusCode> {
        let res = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = res.status();
        res.bytes().await?;
        Ok(status)
    }

    async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(sql).fetch_one(&self.db).await?)
    }

    /// Waits until `sql` counts `target`, polling every 10 ms.
    async fn until(&self, sql: &str, target: i64, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while self.count(sql).await? != target {
            if Instant::now() > deadline {
                bail!("timed out waiting for: {sql}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Sends `paths` with `method`, `CONCURRENCY` at a time; returns latencies.
    async fn fan_out(
        &self,
        method: reqwest::Method,
        paths: Vec<String>,
    ) -> anyhow::Result<Vec<Duration>> {
        let results: Vec<anyhow::Result<Duration>> = futures::stream::iter(paths)
            .map(|path| {
                let method = method.clone();
                async move {
                    let started = Instant::now();
                    let status = self.call(method, &path).await?;
                    if !status.is_success() {
                        bail!("{path}: {status}");
                    }
                    Ok(started.elapsed())
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bench_started = Instant::now();
    // A fresh database, dropped at the end.
    let name = format!("ldeaas_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .context("the benchmark needs Postgres (TEST_DATABASE_URL)")?;
    sqlx::query(&format!("create database {name}"))
        .execute(&mut admin)
        .await?;
    let mut db_url = url::Url::parse(&admin_url())?;
    db_url.set_path(&format!("/{name}"));
    let result = run(db_url.as_str()).await;
    sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&mut admin)
        .await?;
    result?;
    println!(
        "(whole run: {:.1} s)",
        bench_started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run(database_url: &str) -> anyhow::Result<()> {
    let tokens: Vec<String> = (0..TENANTS / 2)
        .map(|i| format!("bench-writer-token-{i:04}"))
        .collect();
    let sim = Simulator::start(
        SimulatorConfig {
            api_tokens: tokens
                .iter()
                .enumerate()
                .map(|(i, t)| ApiTokenGrant::for_account(t, format!("acct-{i}"), "writer"))
                .collect(),
            ..SimulatorConfig::default()
        },
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    )
    .await?;
    for i in 0..tokens.len() {
        sim.add_project(&format!("acct-{i}"), "proj", "Project", &["staging"]);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let key_spec = Keyring::generate_spec("k1");
    let sim_url = sim.base_url();
    let flags = Flags::try_parse_from([
        "ld-eaas",
        "--database-url",
        database_url,
        "--public-url",
        &base,
        "--launchdarkly-url",
        &sim_url,
        "--encryption-keys",
        &key_spec,
        "--workers",
        "8",
        "--database-pool-size",
        "30",
    ])?;
    let mut config = flags.args.into_config()?;
    config.lifecycle.poll_interval = Duration::from_millis(200);
    let app = Application::build_with_listener(config, Arc::new(SystemClock), listener).await?;
    let state = app.state().clone();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    let (_, api_key) =
        ld_eaas::store::api_keys::create(&state.db, "bench", None, state.now()).await?;
    let bench = Bench {
        base: base.clone(),
        key: api_key.expose_secret().to_owned(),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
        db: state.db.pool().clone(),
    };
    let tenants: Vec<String> = (0..TENANTS).map(|i| format!("bench-{i}")).collect();
    for (i, id) in tenants.iter().enumerate() {
        let res = bench
            .http
            .put(format!("{base}/api/v1/tenants/{id}"))
            .bearer_auth(&bench.key)
            .json(&serde_json::json!({"display_name": id}))
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("creating tenant {id}: {}", res.status());
        }
        let tenant = TenantId::parse(id)?;
        let token = SecretString::from(tokens[i / 2].clone());
        connections::connect(&state, &tenant, Connected::from_api_token(token), "bench").await?;
        let input = SettingsInput {
            project_key: "proj".into(),
            source_environment_key: "staging".into(),
            ..SettingsInput::default()
        };
        settings::validate_and_save(&state, &tenant, &input, "bench")
            .await
            .map_err(|e| anyhow::anyhow!("settings: {e:?}"))?;
    }
    let env_path = |i: usize, prefix: &str| {
        format!("/tenants/{}/environments/{prefix}{i}", tenants[i % TENANTS])
    };

    println!(
        "ld-eaas lifecycle benchmark: {TENANTS} tenants, 8 workers, {CONCURRENCY} concurrent API calls, simulator on loopback"
    );

    // 1. Bulk creates: accepted at once (?wait=0), then made by the workers.
    let started = Instant::now();
    let accept = bench
        .fan_out(
            reqwest::Method::PUT,
            (0..BULK)
                .map(|i| env_path(i, "bulk-") + "?wait=0")
                .collect(),
        )
        .await?;
    let accepted_in = started.elapsed();
    bench
        .until(
            "select count(*) from environments where status = 'ready'",
            BULK as i64,
            Duration::from_secs(60),
        )
        .await?;
    let created_in = started.elapsed();
    println!(
        "creates, end to end                {:>8.1} /s  ({BULK} ready in {:.2} s; API accepted them at {:.0} /s)",
        BULK as f64 / created_in.as_secs_f64(),
        created_in.as_secs_f64(),
        BULK as f64 / accepted_in.as_secs_f64()
    );
    report("PUT ?wait=0 (accept)", accept);
    let ready: Vec<f64> = sqlx::query_scalar(
        "select extract(epoch from ready_at - created_at)::float8 from environments where ready_at is not null",
    )
    .fetch_all(&bench.db)
    .await?;
    report(
        "time to ready under bulk load",
        ready.into_iter().map(Duration::from_secs_f64).collect(),
    );

    // 2. Reads.
    let started = Instant::now();
    let gets = bench
        .fan_out(
            reqwest::Method::GET,
            (0..GET_SAMPLES)
                .map(|i| env_path(i % BULK, "bulk-"))
                .collect(),
        )
        .await?;
    let got_in = started.elapsed();
    report("GET environment", gets);
    println!(
        "GET throughput                     {:>8.0} /s",
        GET_SAMPLES as f64 / got_in.as_secs_f64().max(1e-9)
    );

    // 3. Bulk deletes.
    let started = Instant::now();
    bench
        .fan_out(
            reqwest::Method::DELETE,
            (0..BULK)
                .map(|i| env_path(i, "bulk-") + "?wait=0")
                .collect(),
        )
        .await?;
    bench
        .until(
            "select count(*) from environments where status = 'deleted'",
            BULK as i64,
            Duration::from_secs(60),
        )
        .await?;
    let deleted_in = started.elapsed();
    println!(
        "deletes, end to end                {:>8.1} /s  ({BULK} gone in {:.2} s)",
        BULK as f64 / deleted_in.as_secs_f64(),
        deleted_in.as_secs_f64()
    );

    // 4. A synchronous caller: PUT ?wait=10 answers 201 once ready.
    let put_wait = bench
        .fan_out(
            reqwest::Method::PUT,
            (0..LATENCY_SAMPLES)
                .map(|i| env_path(i, "sync-") + "?wait=10")
                .collect(),
        )
        .await?;
    report("PUT ?wait=10 (created and ready)", put_wait);
    let sync_ready: Vec<f64> = sqlx::query_scalar(
        "select extract(epoch from ready_at - created_at)::float8 from environments
          where ephemeral_id like 'sync-%' and ready_at is not null",
    )
    .fetch_all(&bench.db)
    .await?;
    report(
        "time to ready (sync PUTs)",
        sync_ready
            .into_iter()
            .map(Duration::from_secs_f64)
            .collect(),
    );
    let delete_wait = bench
        .fan_out(
            reqwest::Method::DELETE,
            (0..LATENCY_SAMPLES)
                .map(|i| env_path(i, "sync-") + "?wait=10")
                .collect(),
        )
        .await?;
    report("DELETE ?wait=10 (gone)", delete_wait);
    let upstream_calls = sim.requests().len();
    println!("LaunchDarkly (simulator) requests: {upstream_calls}");

    shutdown.cancel();
    let _ = server.await;
    sim.shutdown().await;
    Ok(())
}
