// Driver protocol v1 (sdk_adapters/PROTOCOL.md), the SDK-neutral half, for Node drivers.
// A driver supplies the SDK calls; this module reads the config and specs, writes
// acknowledgements and history lines, runs a job's scripted behaviour, and handles SIGTERM.
import fs from "node:fs";
import readline from "node:readline";

export const PROTOCOL = 1;
export const CONFIG = JSON.parse(process.env.GAUNTLET_CONFIG || "{}");
export let stopRequested = false;

export function emit(obj) {
  fs.writeSync(1, JSON.stringify(obj) + "\n");
}

export function fail(message, code = 1) {
  emit({ ok: false, error: message });
  process.exit(code);
}

// Job specs from stdin; a line that is no valid spec comes back as its error text.
export async function* specs() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const raw of lines) {
    if (!raw.trim()) continue;
    let spec;
    try {
      spec = JSON.parse(raw);
    } catch (err) {
      yield `invalid job spec: ${err.message}`;
      continue;
    }
    if (spec === null || typeof spec !== "object" || Array.isArray(spec) || typeof spec.id !== "string") {
      yield "invalid job spec: not an object with a string id";
      continue;
    }
    yield spec;
  }
}

// The SDK job body every worker of the system understands.
export function body(spec) {
  return {
    gauntlet: {
      id: spec.id,
      fail_times: spec.fail_times || 0,
      sleep_ms: spec.sleep_ms || 0,
      crash_on_attempt: spec.crash_on_attempt ?? null,
      echo_payload: Boolean(spec.echo_payload),
    },
    payload: spec.payload === undefined ? null : spec.payload,
    pad: "x".repeat(spec.pad_bytes || 0),
  };
}

// One acknowledgement per stdin line, in order. Inside a transaction an error is not
// acknowledged but thrown, so that the caller's transaction fails as a whole.
export async function acknowledgeEach(send, inTransaction = false) {
  for await (const spec of specs()) {
    if (typeof spec === "string") {
      emit({ id: null, ok: false, error: spec });
      continue;
    }
    try {
      emit({ id: spec.id, ok: true, sdk_id: String(await send(spec)) });
    } catch (err) {
      if (inTransaction) throw err;
      emit({ id: spec.id, ok: false, error: `${err?.name || "Error"}: ${err?.message || err}` });
    }
  }
}

// The config's batch_size: absent, null or 1 means one SDK call per spec.
export const batchSize = () => Math.max(1, Number(CONFIG.batch_size) || 1);

// The specs on stdin in groups of up to `size` consecutive valid specs, each yielded the moment
// it is complete: full, followed by an invalid line (yielded next, as its error text), by a spec
// of another key(spec) (what the SDK's batch call must share) or by one whose dedupe_key the
// group already holds (no batch call treats two of one key as two single calls would), or at EOF.
export async function* groups(size, key = () => null) {
  let group = [];
  for await (const spec of specs()) {
    if (typeof spec === "string") {
      if (group.length) yield group;
      group = [];
      yield spec;
      continue;
    }
    const sameKey = spec.dedupe_key != null && group.some((s) => s.dedupe_key === spec.dedupe_key);
    if (group.length && (key(spec) !== key(group[0]) || sameKey)) {
      yield group;
      group = [];
    }
    group.push(spec);
    if (group.length >= size) {
      yield group;
      group = [];
    }
  }
  if (group.length) yield group;
}

const describe = (err) => `${err?.name || "Error"}: ${err?.message || err}`;

// acknowledgeEach for an SDK's batch call: each group goes through sendBatch, which resolves to
// one result per spec, in order (an SDK id, or an Error for a spec the SDK refused); then one
// acknowledgement per spec. A batch call that fails, or answers for a different number of jobs,
// fails every spec of its group.
export async function acknowledgeBatches(sendBatch, { key, inTransaction = false } = {}) {
  for await (const group of groups(batchSize(), key)) {
    if (typeof group === "string") {
      emit({ id: null, ok: false, error: group });
      continue;
    }
    let results;
    try {
      results = await sendBatch(group);
      if (results?.length !== group.length) {
        throw new Error(`the batch call answered for ${results?.length ?? 0} jobs, was given ${group.length}`);
      }
    } catch (err) {
      if (inTransaction) throw err;
      for (const spec of group) emit({ id: spec.id, ok: false, error: describe(err) });
      continue;
    }
    group.forEach((spec, i) => {
      if (results[i] instanceof Error) {
        if (inTransaction) throw results[i];
        emit({ id: spec.id, ok: false, error: describe(results[i]) });
      } else {
        emit({ id: spec.id, ok: true, sdk_id: String(results[i]) });
      }
    });
  }
}

// Each spec through send as it arrives; with batch_size > 1 and a sendBatch, groups of them.
export async function acknowledge(send, { sendBatch, key, inTransaction = false } = {}) {
  if (sendBatch && batchSize() > 1) return acknowledgeBatches(sendBatch, { key, inTransaction });
  return acknowledgeEach(send, inTransaction);
}

export function transactionOutcome(mode) {
  emit({ transaction: mode === "commit" ? "committed" : "rolled_back" });
}

// The dsn as node-postgres connection options (ssl off: the harness speaks plain TCP).
export function pgOptions(dsn, max) {
  const url = new URL(dsn);
  return {
    host: url.hostname, port: Number(url.port || 5432), database: decodeURIComponent(url.pathname.slice(1)),
    user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), ssl: false, max,
  };
}

// One appended, unbuffered line per event: a SIGKILL loses nothing already written.
export class History {
  constructor(path, worker) {
    this.fd = path ? fs.openSync(path, "a") : null; // no path: recording off (bench)
    this.worker = worker;
  }
  write(event, id, attempt, extra = {}) {
    if (this.fd === null) return;
    const line = {
      event, id, attempt, worker: this.worker, pid: process.pid,
      // performance.timeOrigin + now(): wall time in microseconds, as the protocol asks (Date.now() has milliseconds)
      wall: (performance.timeOrigin + performance.now()) / 1000, mono: Number(process.hrtime.bigint() / 1000n) / 1e6, ...extra,
    };
    fs.writeSync(this.fd, JSON.stringify(line) + "\n");
  }
}

// `periodic.every_s` in a work config: the period of the one periodic job to register (its
// ticks are the Unix times that are multiples of it); null: no periodic job.
export const periodicEveryS = () => Number(CONFIG.periodic?.every_s) || null;
// The period as cron: whole minutes in five fields, else seconds first in six (cron-parser's form).
export const cronExpression = (everyS) =>
  everyS % 60 === 0 ? `${everyS === 60 ? "*" : `*/${everyS / 60}`} * * * *` : `*/${everyS} * * * * *`;
// The tick at or before `atMs`: for an SDK that does not say which occurrence it runs (its
// lateness stays below one period, which the harness's period ensures).
export const gridTick = (everyS, atMs = Date.now()) => Math.floor(atMs / 1000 / everyS) * everyS;
// The body an execution of the periodic job runs as: the id names its tick.
export const periodicBody = (tick) => ({ gauntlet: { id: `periodic-${Math.round(tick)}` } });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Runs a job's scripted behaviour; true when it succeeded. Crashes the process when told to.
export async function execute(history, jobBody, attempt, sdkId) {
  const meta = (jobBody && typeof jobBody === "object" && jobBody.gauntlet) || {};
  const id = String(meta.id ?? `foreign-${sdkId}`);
  const extra = { sdk_id: String(sdkId) };
  if (meta.echo_payload) extra.payload = jobBody.payload;
  history.write("start", id, attempt, extra);
  if (meta.crash_on_attempt === attempt) process.exit(137);
  if (meta.sleep_ms) await sleep(meta.sleep_ms);
  const ok = attempt > (meta.fail_times || 0);
  history.write("end", id, attempt, { outcome: ok ? "ok" : "fail" });
  return ok;
}

// `concurrency` async slots, each calling slot() (one fetch-and-run; false when idle) until
// SIGTERM; then the jobs in flight finish and this resolves.
export async function runSlots(slot) {
  process.on("SIGTERM", () => { stopRequested = true; });
  const idle = CONFIG.poll_interval_ms ?? 50;
  const loop = async () => {
    while (!stopRequested) {
      let busy = false;
      try {
        busy = await slot();
      } catch (err) {
        console.error(`slot error: ${err?.stack || err}`);
      }
      if (!busy) await sleep(idle);
    }
  };
  await Promise.all(Array.from({ length: CONFIG.concurrency || 1 }, loop));
}

export async function main(commands) {
  const command = process.argv[2];
  if (!commands[command]) fail(`usage: driver {${Object.keys(commands).join("|")}}`, 2);
  try {
    await commands[command]();
    process.exit(0);
  } catch (err) {
    console.error(err?.stack || String(err));
    fail(`${err?.name || "Error"}: ${err?.message || err}`);
  }
}
