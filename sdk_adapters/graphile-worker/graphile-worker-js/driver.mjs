// graphile-worker (Node) through run(), makeWorkerUtils().addJob and, for the caller's
// transaction, the SQL function graphile_worker.add_job on the caller's own connection.
// graphile-worker has no parallel queues (a queue_name serialises its jobs) and the Rust
// crate's task identifiers are compile-time constants, so every graphile-worker driver runs
// the task "gauntlet" and carries the protocol's queue as a job flag (which stats count by).
import pg from "pg";
import * as p from "../../_shared/node/protocol.mjs";

// The release under test: the pinned one, or (config `release` = "previous", the upgrade
// scenario) the N−1 release package.json pins beside it as the alias graphile-worker-previous.
const { makeWorkerUtils, run } = await import(
  p.CONFIG.release === "previous" ? "graphile-worker-previous" : "graphile-worker"
);

// No visibility_timeout: a crashed worker's locks expire after graphile-worker's fixed 4 hours.
// batch_enqueue: WorkerUtils.addJobs (dist/helpers.js:43 makeAddJobs), every option per job. It
// runs on the utils' own pool and takes no client, so inside the caller's transaction specs go
// one by one through the SQL add_job, batch_size or not.
const CAPABILITIES = [
  "priority", "fifo", "retries", "dead_letter", "delay", "dedupe", "tx_enqueue", "batch_enqueue", "crash_recovery",
  "listen_notify", "periodic", "worker", "upgrade",
];
const TASK = "gauntlet";
const quiet = { scope: () => quiet, debug() {}, info() {}, warn: console.error, error: console.error };
// Behind PgBouncer: the SharedOptions setting graphile-worker documents for poolers without
// prepared statements (dist/interfaces.d.ts:527-532; manifest tuning, topology pgbouncer).
const poolerOptions = p.CONFIG.pooler ? { noPreparedStatements: true } : {};

// Normalised priority is higher-first; graphile-worker runs lower numbers first.
const jobOptions = (spec) => ({
  priority: -(spec.priority || 0),
  runAt: spec.delay_ms ? new Date(Date.now() + spec.delay_ms) : undefined,
  maxAttempts: spec.max_attempts || undefined,
  jobKey: spec.dedupe_key || undefined, // graphile-worker's default job_key_mode 'replace': one live job per key
  flags: [p.CONFIG.queue],
});

async function info() {
  p.emit({ protocol: p.PROTOCOL, capabilities: CAPABILITIES });
}

async function prepare() {
  p.emit({ ok: true }); // a flag needs no objects of its own
}

async function enqueue() {
  const mode = p.CONFIG.transaction;
  if (!mode) {
    const utils = await makeWorkerUtils({ pgPool: new pg.Pool(p.pgOptions(p.CONFIG.dsn, 2)), logger: quiet, ...poolerOptions });
    try {
      await p.acknowledge(async (spec) => (await utils.addJob(TASK, p.body(spec), jobOptions(spec))).id, {
        sendBatch: async (specs) =>
          (await utils.addJobs(specs.map((spec) => ({ identifier: TASK, payload: p.body(spec), ...jobOptions(spec) }))))
            .map((job) => job.id),
      });
    } finally {
      await utils.release();
    }
    return;
  }
  const client = new pg.Client(p.pgOptions(p.CONFIG.dsn));
  await client.connect();
  try {
    await client.query("BEGIN");
    await p.acknowledgeEach(async (spec) => {
      const o = jobOptions(spec);
      const { rows } = await client.query(
        `SELECT id FROM graphile_worker.add_job($1, $2::json, run_at => $3, max_attempts => $4, job_key => $5,
                                               priority => $6, flags => $7)`,
        [TASK, JSON.stringify(p.body(spec)), o.runAt ?? null, o.maxAttempts ?? null, o.jobKey ?? null, o.priority, o.flags],
      );
      return rows[0].id;
    }, true);
    await client.query(mode === "commit" ? "COMMIT" : "ROLLBACK");
    p.transactionOutcome(mode);
  } finally {
    await client.end();
  }
}

async function work() {
  const concurrency = p.CONFIG.concurrency || 1;
  const history = new p.History(p.CONFIG.history, p.CONFIG.worker || "w");
  const pgPool = new pg.Pool(p.pgOptions(p.CONFIG.dsn, p.CONFIG.pool_size ?? concurrency + 1));
  // Errors of idle and of checked-out connections are reported, not fatal; graphile-worker retries.
  pgPool.on("error", (err) => console.error(`idle pool connection lost: ${err.message}`));
  pgPool.on("connect", (client) => client.on("error", (err) => console.error(`connection lost: ${err.message}`)));
  // A periodic job: one crontab line; every worker's cron runner claims each tick in
  // _private_known_crontabs (dist/cron.js:81-138), and the job's payload names it (_cron.ts).
  const every = p.periodicEveryS();
  const crontab = every ? { crontab: `${p.cronExpression(every)} ${TASK}_periodic ?id=${TASK}_periodic` } : {};
  const runner = await run({
    pgPool, concurrency, logger: quiet, noHandleSignals: true, ...poolerOptions, ...crontab,
    pollInterval: p.CONFIG.poll_interval_ms ?? 2000,
    taskList: {
      [TASK]: async (payload, helpers) => {
        const { job } = helpers;
        if (!(await p.execute(history, payload, job.attempts, job.id))) throw new Error("fails by script");
      },
      [`${TASK}_periodic`]: async (payload, { job }) => {
        await p.execute(history, p.periodicBody(Date.parse(payload._cron.ts) / 1000), job.attempts, job.id);
      },
    },
  });
  process.on("SIGTERM", () => runner.stop("SIGTERM")); // stop taking jobs, finish the ones in flight
  await runner.promise;
  await pgPool.end();
}


await p.main({ info, prepare, enqueue, work });
