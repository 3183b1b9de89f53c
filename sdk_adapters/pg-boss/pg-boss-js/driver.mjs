// pg-boss through its own send/work/stop. Retries, backoff, priority, start-after and
// expiry are pg-boss's; a job's max_attempts becomes its retryLimit. pg-boss fixes a job's
// expiry (its visibility timeout) when the job is made, from the queue's setting, so
// `prepare` creates the queue with the harness's visibility timeout.
import { randomUUID } from "node:crypto";
import pg from "pg";
import * as p from "../../_shared/node/protocol.mjs";

// The release under test: the pinned one, or (config `release` = "previous", the upgrade
// scenario) the N−1 release package.json pins beside it as the alias pg-boss-previous.
const { PgBoss } = await import(p.CONFIG.release === "previous" ? "pg-boss-previous" : "pg-boss");

// batch_enqueue: insert(name, jobs, { db, returnId }) (dist/manager.js:1665), every option per
// job, inside the caller's transaction through `db` as send() is. Its INSERT ends in ON CONFLICT
// DO NOTHING, so a refused singletonKey drops a row from the ids it returns; each job gets its id
// here (the insert keeps a given id, manager.js:1698-1703 does the same) and is matched by it.
const CAPABILITIES = [
  "priority", "fifo", "retries", "dead_letter", "delay", "dedupe", "tx_enqueue", "batch_enqueue",
  "visibility_timeout", "crash_recovery", "listen_notify", "periodic", "worker", "upgrade",
];
// pg-boss dedupes a singletonKey only within a time slot (singletonSeconds) on a standard queue.
const DEDUPE_WINDOW_S = 3600;

async function started(max, extra = {}) {
  const boss = new PgBoss({
    ...p.pgOptions(p.CONFIG.dsn, max), migrate: false, supervise: false, schedule: false, ...extra,
  });
  boss.on("error", (err) => console.error(`pg-boss error: ${err?.stack || err}`)); // pg-boss re-emits pool errors
  await boss.start();
  return boss;
}

async function info() {
  p.emit({ protocol: p.PROTOCOL, capabilities: CAPABILITIES });
}

async function prepare() {
  const boss = await started(1);
  try {
    const options = { notify: true, expireInSeconds: Math.max(1, Math.ceil(p.CONFIG.visibility_timeout_s ?? 900)) };
    if (!(await boss.getQueue(p.CONFIG.queue))) await boss.createQueue(p.CONFIG.queue, options);
    else await boss.updateQueue(p.CONFIG.queue, options);
  } finally {
    await boss.stop({ graceful: false });
  }
  p.emit({ ok: true });
}

function sendOptions(spec, db) {
  const options = { priority: spec.priority || 0 }; // higher first, as normalised
  if (spec.delay_ms) options.startAfter = new Date(Date.now() + spec.delay_ms);
  if (spec.max_attempts) Object.assign(options, { retryLimit: spec.max_attempts - 1, retryDelay: 1, retryBackoff: true });
  if (spec.dedupe_key) Object.assign(options, { singletonKey: spec.dedupe_key, singletonSeconds: DEDUPE_WINDOW_S });
  if (db) options.db = db;
  return options;
}

async function enqueue() {
  const boss = await started(2);
  const mode = p.CONFIG.transaction;
  const refused = (spec) => new Error(`refused: a job with singletonKey ${JSON.stringify(spec.dedupe_key)} exists`);
  const send = async (spec, db) => {
    const id = await boss.send(p.CONFIG.queue, p.body(spec), sendOptions(spec, db));
    if (id === null) throw refused(spec);
    return id;
  };
  const sendBatch = async (specs, db) => {
    const jobs = specs.map((spec) => ({ id: randomUUID(), data: p.body(spec), ...sendOptions(spec) }));
    const ids = new Set((await boss.insert(p.CONFIG.queue, jobs, { db, returnId: true })) ?? []);
    return jobs.map((job, i) => (ids.has(job.id) ? job.id : refused(specs[i])));
  };
  try {
    if (!mode) return await p.acknowledge(send, { sendBatch });
    // The caller's transaction: a node-postgres client of our own, handed to pg-boss as `db`.
    const client = new pg.Client(p.pgOptions(p.CONFIG.dsn));
    await client.connect();
    try {
      await client.query("BEGIN");
      const db = { executeSql: (text, values) => client.query(text, values) };
      await p.acknowledge((spec) => send(spec, db), { sendBatch: (specs) => sendBatch(specs, db), inTransaction: true });
      await client.query(mode === "commit" ? "COMMIT" : "ROLLBACK");
      p.transactionOutcome(mode);
    } finally {
      await client.end();
    }
  } finally {
    await boss.stop({ graceful: false });
  }
}

async function work() {
  const concurrency = p.CONFIG.concurrency || 1;
  const every = p.periodicEveryS();
  // supervise: the monitor that fails (and so retries) expired jobs; every second, not every minute.
  const boss = await started(p.CONFIG.pool_size ?? concurrency + 2, {
    supervise: true, superviseIntervalSeconds: 1, monitorIntervalSeconds: 1, queueCacheIntervalSeconds: 1,
    // Not behind PgBouncer: LISTEN needs a session-pinned connection (dist/types.d.ts:497-507).
    useListenNotify: !p.CONFIG.pooler,
    // A periodic job: this instance's cron pass and send-it worker every second (defaults 30 s, 5 s).
    ...(every ? { schedule: true, cronMonitorIntervalSeconds: 1, cronWorkerIntervalSeconds: 1 } : {}),
  });
  // Every instance's cron pass may claim the pass (trySetCronTime) and files each occurrence
  // under a singleton key per 60 s slot (dist/timekeeper.js:46-79); the job says no tick: the grid's.
  if (every) await boss.schedule(p.CONFIG.queue, p.cronExpression(every), { gauntlet_periodic: every });
  const history = new p.History(p.CONFIG.history, p.CONFIG.worker || "w");
  const stopped = new Promise((resolve) => process.on("SIGTERM", resolve));
  // pg-boss waits its polling interval after every fetch, even one that found work (with notify
  // on, notifyPollingIntervalSeconds: 30 s by default), unless a burst trigger fires: a backlog
  // would drain one job per interval per slot. burstWhenReadyExceeds: fetch on while jobs wait.
  const poll = Math.max(0.5, (p.CONFIG.poll_interval_ms ?? 500) / 1000);
  await boss.work(
    p.CONFIG.queue,
    {
      batchSize: 1, localConcurrency: concurrency, pollingIntervalSeconds: poll,
      notifyPollingIntervalSeconds: poll, burstWhenReadyExceeds: 1,
    },
    async ([job]) => {
      const period = job.data?.gauntlet_periodic; // a periodic job's occurrence: its tick is the grid's
      const body = period ? p.periodicBody(p.gridTick(period)) : job.data;
      if (!(await p.execute(history, body, job.retryCount + 1, job.id))) throw new Error("fails by script");
    },
  );
  await stopped;
  await boss.stop({ graceful: true, timeout: 30000 }); // stop fetching, finish the jobs in flight
}


await p.main({ info, prepare, enqueue, work });
