//! PGMQ through the `pgmq` crate. PGMQ ships no worker loop, so this is a small one made of
//! the crate's own calls: read with a visibility timeout, archive on success, and on failure
//! leave the message to reappear when its visibility timeout runs out.
use gauntlet_protocol as p;
use pgmq::PGMQueueExt;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

// send_with_cxn takes the caller's executor, so enqueue can join the caller's transaction;
// delays are whole seconds. send_batch_with_delay(_with_cxn) (pg_ext/mod.rs:576, :597) has one
// delay for the whole batch: a group holds specs of one delay only (delay_seconds is its key).
const CAPABILITIES: [&str; 7] =
    ["fifo", "delay", "tx_enqueue", "batch_enqueue", "visibility_timeout", "crash_recovery", "worker"];

async fn queue(cfg: &p::Config, size: u32) -> Result<PGMQueueExt, String> {
    let pool = PgPoolOptions::new().max_connections(size).connect(&cfg.dsn).await.map_err(|e| e.to_string())?;
    // new_with_pool, never init(): the schema comes from the harness (no CREATE EXTENSION).
    Ok(PGMQueueExt::new_with_pool(pool).await)
}

fn delay_seconds(spec: &p::Spec) -> i32 {
    spec.delay_ms.div_ceil(1000) as i32
}

async fn enqueue(cfg: &p::Config) -> Result<(), String> {
    let q = queue(cfg, 2).await?;
    let mut tx = match cfg.transaction {
        Some(_) => Some(q.connection.begin().await.map_err(|e| e.to_string())?),
        None => None,
    };
    let size = p::batch_size(cfg);
    for item in p::groups(size, delay_seconds) {
        let group = match item {
            p::Item::Invalid(reason) => {
                p::refuse(&reason);
                continue;
            }
            p::Item::Group(group) => group,
        };
        if size == 1 {
            let (spec, body) = (&group[0], p::body(&group[0]));
            let sent = match tx.as_mut() {
                Some(tx) => q.send_delay_with_cxn(&cfg.queue, &body, delay_seconds(spec), &mut **tx).await,
                None => q.send_delay(&cfg.queue, &body, delay_seconds(spec)).await,
            };
            p::ack(&spec.id, sent.map(|id| id.to_string()).map_err(|e| e.to_string()));
            continue;
        }
        // The group shares its delay (the key of p::groups).
        let (bodies, delay) = (group.iter().map(p::body).collect::<Vec<Value>>(), delay_seconds(&group[0]));
        let sent = match tx.as_mut() {
            Some(tx) => q.send_batch_with_delay_with_cxn(&cfg.queue, &bodies, delay, &mut **tx).await,
            None => q.send_batch_with_delay(&cfg.queue, &bodies, delay).await,
        };
        p::ack_batch(&group, sent.map(|ids| ids.iter().map(|id| Ok(id.to_string())).collect()).map_err(|e| e.to_string()));
    }
    if let (Some(tx), Some(mode)) = (tx, cfg.transaction.as_deref()) {
        let (result, word) = if mode == "commit" { (tx.commit().await, "committed") } else { (tx.rollback().await, "rolled_back") };
        match result {
            Ok(()) => p::emit(&json!({"transaction": word})),
            Err(e) => p::emit(&json!({"transaction": "failed", "error": e.to_string()})),
        }
    }
    q.connection.close().await;
    Ok(())
}

async fn work(cfg: p::Config) -> Result<(), String> {
    let size = cfg.pool_size.unwrap_or(cfg.concurrency as u32 + 1);
    let q = Arc::new(queue(&cfg, size).await?);
    let history = Arc::new(p::History::open(&cfg));
    let stop = Arc::new(AtomicBool::new(false));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
    let flag = stop.clone();
    tokio::spawn(async move {
        term.recv().await;
        flag.store(true, Ordering::SeqCst);
    });
    let vt = cfg.visibility_timeout_s as i32;
    let mut slots = Vec::new();
    for _ in 0..cfg.concurrency.max(1) {
        let (q, history, stop, cfg) = (q.clone(), history.clone(), stop.clone(), cfg.clone());
        slots.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match q.read::<Value>(&cfg.queue, vt).await {
                    Ok(Some(msg)) => {
                        if p::execute(&history, &msg.message, msg.read_ct as i64, &msg.msg_id.to_string()).await {
                            if let Err(e) = q.archive(&cfg.queue, msg.msg_id).await {
                                eprintln!("slot error: archive: {e}");
                            }
                        }
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(cfg.poll_interval_ms)).await,
                    Err(e) => {
                        eprintln!("slot error: {e}");
                        tokio::time::sleep(Duration::from_millis(cfg.poll_interval_ms)).await;
                    }
                }
            }
        }));
    }
    for slot in slots {
        let _ = slot.await;
    }
    q.connection.close().await;
    Ok(())
}


#[tokio::main]
async fn main() {
    p::set_sleep(|d| Box::pin(tokio::time::sleep(d)));
    let command = std::env::args().nth(1).unwrap_or_default();
    let cfg = p::config();
    let result = match command.as_str() {
        "info" => {
            p::emit(&json!({"protocol": p::PROTOCOL, "capabilities": CAPABILITIES}));
            Ok(())
        }
        "prepare" => match queue(&cfg, 1).await {
            Ok(q) => {
                let created = q.create(&cfg.queue).await.map_err(|e| e.to_string());
                q.connection.close().await;
                created.map(|_| p::emit(&json!({"ok": true})))
            }
            Err(e) => Err(e),
        },
        "enqueue" => enqueue(&cfg).await,
        "work" => work(cfg.clone()).await,
        _ => Err("usage: driver {info|prepare|enqueue|work}".into()),
    };
    if let Err(e) = result {
        eprintln!("{e}");
        p::fail(&e, 1);
    }
}
