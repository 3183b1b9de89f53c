//! graphile-worker through the `graphile_worker` crate: WorkerOptions/run for the worker,
//! WorkerUtils::add_raw_job for enqueue (with_executor on the caller's transaction for
//! transactional enqueue), and the crate's heartbeat-based dead-worker recovery.
//! The crate's task identifiers are compile-time constants, so every graphile-worker driver
//! uses the task "gauntlet" and carries the protocol's queue as a job flag.
use gauntlet_protocol as p;
use graphile_worker::{IntoTaskHandlerResult, JobSpec, RawJobSpec, TaskHandler, WorkerContext, WorkerOptions, WorkerRecoveryConfig, WorkerUtils};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use graphile_worker::sqlx::SqlxDatabase;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::OnceLock;
use std::time::Duration;

// batch_enqueue: WorkerUtils::add_raw_jobs (graphile_worker_utils schedule.rs:139), and on the
// caller's transaction WorkerUtilsWithExecutor::add_raw_jobs (executor.rs:107); a JobSpec per job.
const CAPABILITIES: [&str; 13] = ["priority", "fifo", "retries", "dead_letter", "delay", "dedupe", "tx_enqueue",
                                  "batch_enqueue", "visibility_timeout", "crash_recovery", "listen_notify", "periodic",
                                  "worker"];
const SCHEMA: &str = "graphile_worker";

static HISTORY: OnceLock<p::History> = OnceLock::new();

/// The protocol's job body, whatever its shape.
#[derive(Serialize, Deserialize)]
struct Gauntlet(Value);

impl TaskHandler for Gauntlet {
    const IDENTIFIER: &'static str = "gauntlet";

    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        let job = ctx.job();
        let attempt = *job.attempts() as i64;
        if p::execute(HISTORY.get().expect("history"), &self.0, attempt, &job.id().to_string()).await {
            Ok(())
        } else {
            Err(format!("attempt {attempt} fails by script"))
        }
    }
}

/// The periodic job: every worker's cron runner claims each tick in _private_known_crontabs
/// and adds one job for it, whose payload names the tick (`_cron.ts`, RFC 3339).
#[derive(Serialize, Deserialize)]
struct GauntletPeriodic(Value);

impl TaskHandler for GauntletPeriodic {
    const IDENTIFIER: &'static str = "gauntlet_periodic";

    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        let job = ctx.job();
        let ts = self.0.pointer("/_cron/ts").and_then(Value::as_str).unwrap_or_default();
        let tick = chrono::DateTime::parse_from_rfc3339(ts).map_err(|e| format!("_cron.ts {ts:?}: {e}"))?;
        p::execute(HISTORY.get().expect("history"), &p::periodic_body(tick.timestamp()), *job.attempts() as i64, &job.id().to_string()).await;
        Ok::<(), String>(())
    }
}

async fn pool(cfg: &p::Config, size: u32) -> Result<PgPool, String> {
    PgPoolOptions::new().max_connections(size).connect(&cfg.dsn).await.map_err(|e| e.to_string())
}

/// The pool as the crate's database; behind PgBouncer without persistent prepared statements,
/// the setting the crate documents for such proxies (docs/src/configuration/runtime-drivers.md:231-250).
fn database(cfg: &p::Config, db: &PgPool) -> SqlxDatabase {
    SqlxDatabase::new(db.clone()).with_prepared_statements(cfg.pooler.is_none())
}

/// Normalised priority is higher-first; graphile-worker runs lower numbers first.
fn job_spec(cfg: &p::Config, spec: &p::Spec) -> JobSpec {
    let mut job = JobSpec { priority: Some(-(spec.priority as i16)), flags: Some(vec![cfg.queue.clone()]), ..Default::default() };
    if spec.delay_ms > 0 {
        job.run_at = Some(chrono::Utc::now() + chrono::Duration::milliseconds(spec.delay_ms as i64));
    }
    job.max_attempts = spec.max_attempts.map(|n| n as i16);
    job.job_key = spec.dedupe_key.clone(); // job_key_mode 'replace' (the default): one live job per key
    job
}

async fn enqueue(cfg: &p::Config) -> Result<(), String> {
    let db = pool(cfg, 2).await?;
    let utils = WorkerUtils::new(database(cfg, &db), SCHEMA);
    let mut tx = match cfg.transaction {
        Some(_) => Some(db.begin().await.map_err(|e| e.to_string())?),
        None => None,
    };
    let size = p::batch_size(cfg);
    for item in p::groups(size, |_| ()) {
        let group = match item {
            p::Item::Invalid(reason) => {
                p::refuse(&reason);
                continue;
            }
            p::Item::Group(group) => group,
        };
        if size == 1 {
            let (body, job) = (p::body(&group[0]), job_spec(cfg, &group[0]));
            let added = match tx.as_mut() {
                Some(tx) => utils.clone().with_executor(&mut **tx).add_raw_job(Gauntlet::IDENTIFIER, body, job).await,
                None => utils.add_raw_job(Gauntlet::IDENTIFIER, body, job).await,
            };
            p::ack(&group[0].id, added.map(|j| j.id().to_string()).map_err(|e| e.to_string()));
            continue;
        }
        let jobs: Vec<RawJobSpec> = group.iter()
            .map(|spec| RawJobSpec { identifier: Gauntlet::IDENTIFIER.into(), payload: p::body(spec), spec: job_spec(cfg, spec) })
            .collect();
        let added = match tx.as_mut() {
            Some(tx) => utils.clone().with_executor(&mut **tx).add_raw_jobs(&jobs).await,
            None => utils.add_raw_jobs(&jobs).await,
        };
        p::ack_batch(&group, added.map(|js| js.iter().map(|j| Ok(j.id().to_string())).collect()).map_err(|e| e.to_string()));
    }
    if let (Some(tx), Some(mode)) = (tx, cfg.transaction.as_deref()) {
        let (result, word) = if mode == "commit" { (tx.commit().await, "committed") } else { (tx.rollback().await, "rolled_back") };
        match result {
            Ok(()) => p::emit(&json!({"transaction": word})),
            Err(e) => p::emit(&json!({"transaction": "failed", "error": e.to_string()})),
        }
    }
    db.close().await;
    Ok(())
}

async fn work(cfg: &p::Config) -> Result<(), String> {
    let _ = HISTORY.set(p::History::open(cfg));
    let size = cfg.pool_size.unwrap_or(cfg.concurrency as u32 + 2);
    let db = pool(cfg, size).await?;
    let vt = Duration::from_secs_f64(cfg.visibility_timeout_s.max(1.0));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
    let recovery = WorkerRecoveryConfig::default()
        .heartbeat_interval(vt / 4)
        .sweep_interval(vt / 2)
        .sweep_threshold(vt)
        .recovery_delay(Duration::ZERO);
    let worker = WorkerOptions::default()
        .database(database(cfg, &db))
        .schema(SCHEMA)
        .concurrency(cfg.concurrency.max(1))
        .poll_interval(Duration::from_millis(cfg.poll_interval_ms))
        .define_job::<Gauntlet>()
        .define_job::<GauntletPeriodic>()
        .worker_recovery(WorkerRecoveryConfig { enabled: true, ..recovery })
        .listen_os_shutdown_signals(false)
        .shutdown_signal(async move {
            term.recv().await;
        })
        .shutdown_grace_period(Duration::from_secs(30)); // SIGTERM: jobs in flight finish
    let worker = match &cfg.periodic {
        Some(periodic) => {
            // A payload object: the crate adds `_cron` only to one (crontab_runner src/sql/job.rs:49).
            let id = GauntletPeriodic::IDENTIFIER;
            let line = format!("{} {id} ?id={id} {{}}", p::cron_minutes(periodic.every_s));
            worker.with_cron(line.as_str()).map_err(|e| e.to_string())?
        }
        None => worker,
    };
    let worker = worker.init().await.map_err(|e| e.to_string())?;
    let ran = worker.run().await.map_err(|e| e.to_string());
    db.close().await;
    ran
}


#[tokio::main]
async fn main() {
    p::set_sleep(|d| Box::pin(tokio::time::sleep(d)));
    // The crate reports through `tracing`: its warnings (failed heartbeats, sweeps) go to stderr.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
    let command = std::env::args().nth(1).unwrap_or_default();
    let cfg = p::config();
    let result = match command.as_str() {
        "info" => {
            p::emit(&json!({"protocol": p::PROTOCOL, "capabilities": CAPABILITIES}));
            Ok(())
        }
        "prepare" => {
            p::emit(&json!({"ok": true})); // a flag needs no objects of its own
            Ok(())
        }
        "enqueue" => enqueue(&cfg).await,
        "work" => work(&cfg).await,
        _ => Err("usage: driver {info|prepare|enqueue|work}".into()),
    };
    if let Err(e) = result {
        eprintln!("{e}");
        p::fail(&e, 1);
    }
}
