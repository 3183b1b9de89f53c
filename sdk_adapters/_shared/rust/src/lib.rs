//! Driver protocol v1 (sdk_adapters/PROTOCOL.md), the SDK-neutral half, for Rust drivers:
//! config, specs, acknowledgements, history lines and a job's scripted behaviour.
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const PROTOCOL: u32 = 1;

#[derive(Deserialize, Debug, Clone)]
pub struct Config {
    pub dsn: String,
    pub queue: String,
    #[serde(default)]
    pub worker: String,
    #[serde(default = "one")]
    pub concurrency: usize,
    #[serde(default)]
    pub history: String,
    #[serde(default = "thirty")]
    pub visibility_timeout_s: f64,
    #[serde(default = "fifty")]
    pub poll_interval_ms: u64,
    pub pool_size: Option<u32>,
    pub transaction: Option<String>,
    /// Absent, null or 1: one SDK call per spec.
    pub batch_size: Option<usize>,
    /// "pgbouncer": reached through PgBouncer in transaction mode (the driver applies the
    /// settings its SDK documents for poolers); absent: direct.
    #[serde(default)]
    pub pooler: Option<String>,
    /// A work config's one periodic job: its period; ticks are the multiples of it in Unix time.
    #[serde(default)]
    pub periodic: Option<Periodic>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Periodic {
    pub every_s: u64,
}

/// The period as a five-field crontab time (whole minutes; crontab has no seconds).
pub fn cron_minutes(every_s: u64) -> String {
    match every_s / 60 {
        1 => "* * * * *".into(),
        n => format!("*/{n} * * * *"),
    }
}

/// The body an execution of the periodic job runs as: the id names its tick (Unix seconds).
pub fn periodic_body(tick: i64) -> Value {
    json!({"gauntlet": {"id": format!("periodic-{tick}")}})
}

fn one() -> usize { 1 }
fn thirty() -> f64 { 30.0 }
fn fifty() -> u64 { 50 }

#[derive(Deserialize, Debug, Clone)]
pub struct Spec {
    pub id: String,
    #[serde(default)]
    pub payload: Value,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub delay_ms: u64,
    pub max_attempts: Option<i64>,
    pub dedupe_key: Option<String>,
    #[serde(default)]
    pub fail_times: i64,
    #[serde(default)]
    pub sleep_ms: u64,
    pub crash_on_attempt: Option<i64>,
    #[serde(default)]
    pub pad_bytes: usize,
    #[serde(default)]
    pub echo_payload: bool,
}

pub fn config() -> Config {
    let raw = std::env::var("GAUNTLET_CONFIG").unwrap_or_default();
    serde_json::from_str(&raw).unwrap_or_else(|e| fail(&format!("bad GAUNTLET_CONFIG: {e}"), 2))
}

static STDOUT: Mutex<()> = Mutex::new(());

pub fn emit(value: &Value) {
    let _guard = STDOUT.lock().unwrap();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

pub fn fail(message: &str, code: i32) -> ! {
    emit(&json!({"ok": false, "error": message}));
    std::process::exit(code)
}

/// Job specs from stdin as they arrive: Ok(spec), or Err(reason) for a line that is no valid spec.
pub fn specs() -> impl Iterator<Item = Result<Spec, String>> {
    std::io::stdin().lines().filter_map(|line| match line {
        Err(e) => Some(Err(format!("invalid job spec: {e}"))),
        Ok(l) if l.trim().is_empty() => None,
        Ok(l) => Some(serde_json::from_str::<Spec>(&l).map_err(|e| format!("invalid job spec: {e}"))),
    })
}

pub fn batch_size(cfg: &Config) -> usize {
    cfg.batch_size.unwrap_or(1).max(1)
}

/// What `groups` yields: a line that is no valid spec, or a group of valid specs.
pub enum Item {
    Invalid(String),
    Group(Vec<Spec>),
}

/// The specs on stdin in groups of up to `size` consecutive valid specs, each yielded the moment
/// it is complete: full, followed by an invalid line (yielded next), by a spec of another
/// `key(spec)` (what the SDK's batch call must share) or by one whose dedupe_key the group
/// already holds (no batch call treats two of one key as two single calls would), or at EOF.
/// With size 1 every spec is a group of its own, yielded as it arrives.
pub fn groups<K: PartialEq>(size: usize, key: impl Fn(&Spec) -> K) -> impl Iterator<Item = Item> {
    let mut lines = specs();
    let mut group: Vec<Spec> = Vec::new();
    let mut held: Option<Item> = None; // yielded right after the group it closed
    std::iter::from_fn(move || {
        if let Some(item) = held.take() {
            return Some(item);
        }
        loop {
            match lines.next() {
                None => return (!group.is_empty()).then(|| Item::Group(std::mem::take(&mut group))),
                Some(Err(reason)) if group.is_empty() => return Some(Item::Invalid(reason)),
                Some(Err(reason)) => {
                    held = Some(Item::Invalid(reason));
                    return Some(Item::Group(std::mem::take(&mut group)));
                }
                Some(Ok(spec)) => {
                    let same_key = spec.dedupe_key.is_some() && group.iter().any(|s| s.dedupe_key == spec.dedupe_key);
                    if !group.is_empty() && (key(&spec) != key(&group[0]) || same_key) {
                        let done = std::mem::replace(&mut group, vec![spec]);
                        if group.len() >= size {
                            held = Some(Item::Group(std::mem::take(&mut group)));
                        }
                        return Some(Item::Group(done));
                    }
                    group.push(spec);
                    if group.len() >= size {
                        return Some(Item::Group(std::mem::take(&mut group)));
                    }
                }
            }
        }
    })
}

/// Acknowledges each spec of a group from its batch call's answer (one result per spec, in
/// order); a failed call, or one that answered for a different number of jobs, fails them all.
pub fn ack_batch(group: &[Spec], answer: Result<Vec<Result<String, String>>, String>) {
    let answer = answer.and_then(|results| {
        if results.len() == group.len() {
            Ok(results)
        } else {
            Err(format!("the batch call answered for {} jobs, was given {}", results.len(), group.len()))
        }
    });
    match answer {
        Ok(results) => group.iter().zip(results).for_each(|(spec, result)| ack(&spec.id, result)),
        Err(error) => group.iter().for_each(|spec| ack(&spec.id, Err(error.clone()))),
    }
}

pub fn ack(id: &str, result: Result<String, String>) {
    match result {
        Ok(sdk_id) => emit(&json!({"id": id, "ok": true, "sdk_id": sdk_id})),
        Err(error) => emit(&json!({"id": id, "ok": false, "error": error})),
    }
}

pub fn refuse(reason: &str) {
    emit(&json!({"id": null, "ok": false, "error": reason}));
}

/// The SDK job body every worker of the system understands.
pub fn body(spec: &Spec) -> Value {
    json!({
        "gauntlet": {"id": spec.id, "fail_times": spec.fail_times, "sleep_ms": spec.sleep_ms,
                     "crash_on_attempt": spec.crash_on_attempt, "echo_payload": spec.echo_payload},
        "payload": spec.payload,
        "pad": "x".repeat(spec.pad_bytes),
    })
}

/// Appends one unbuffered line per event: a SIGKILL loses nothing already written.
pub struct History {
    file: Option<Mutex<File>>, // None: recording off (bench)
    worker: String,
}

fn monotonic() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + (ts.tv_nsec / 1000) as f64 / 1e6
}

impl History {
    pub fn open(cfg: &Config) -> History {
        if cfg.history.is_empty() {
            return History { file: None, worker: cfg.worker.clone() };
        }
        let file = OpenOptions::new().create(true).append(true).open(&cfg.history)
            .unwrap_or_else(|e| fail(&format!("history: {e}"), 1));
        History { file: Some(Mutex::new(file)), worker: cfg.worker.clone() }
    }

    pub fn write(&self, event: &str, id: &str, attempt: i64, extra: Map<String, Value>) {
        let Some(file) = &self.file else { return };
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as f64 / 1e6;
        let mut line = json!({"event": event, "id": id, "attempt": attempt, "worker": self.worker,
                              "pid": std::process::id(), "wall": wall, "mono": monotonic()});
        line.as_object_mut().unwrap().extend(extra);
        // One write(2) per line on an O_APPEND file: lines from several workers never interleave.
        let text = format!("{line}\n");
        let _ = file.lock().unwrap().write_all(text.as_bytes());
    }
}

/// Runs a job's scripted behaviour; true when it succeeded. Exits when told to crash.
pub async fn execute(history: &History, job: &Value, attempt: i64, sdk_id: &str) -> bool {
    let meta = job.get("gauntlet").cloned().unwrap_or(Value::Null);
    let id = meta.get("id").and_then(Value::as_str).map(str::to_owned).unwrap_or(format!("foreign-{sdk_id}"));
    let mut extra = Map::new();
    extra.insert("sdk_id".into(), json!(sdk_id));
    if meta.get("echo_payload").and_then(Value::as_bool).unwrap_or(false) {
        extra.insert("payload".into(), job.get("payload").cloned().unwrap_or(Value::Null));
    }
    history.write("start", &id, attempt, extra);
    if meta.get("crash_on_attempt").and_then(Value::as_i64) == Some(attempt) {
        std::process::exit(137);
    }
    if let Some(ms) = meta.get("sleep_ms").and_then(Value::as_u64).filter(|ms| *ms > 0) {
        tokio_sleep(Duration::from_millis(ms)).await;
    }
    let ok = attempt > meta.get("fail_times").and_then(Value::as_i64).unwrap_or(0);
    let mut end = Map::new();
    end.insert("outcome".into(), json!(if ok { "ok" } else { "fail" }));
    history.write("end", &id, attempt, end);
    ok
}

// The protocol crate stays runtime-free; a blocking sleep on a worker thread would stall
// other slots, so drivers pass their runtime's sleep through this hook.
static SLEEP: std::sync::OnceLock<fn(Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> =
    std::sync::OnceLock::new();

pub fn set_sleep(f: fn(Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) {
    let _ = SLEEP.set(f);
}

async fn tokio_sleep(d: Duration) {
    match SLEEP.get() {
        Some(f) => f(d).await,
        None => std::thread::sleep(d),
    }
}
