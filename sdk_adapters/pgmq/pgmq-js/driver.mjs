// PGMQ through pgmq-js. PGMQ ships no worker loop, so this is a small one made of the SDK's
// own calls: readBatch with a visibility timeout, archive on success, and on failure leave
// the message to reappear when its visibility timeout runs out.
import { Pgmq } from "pgmq-js";
import * as p from "../../_shared/node/protocol.mjs";

// pgmq-js runs every call on its own pool connection and takes no client: no transactional
// enqueue. Its send() takes whole seconds of delay; so does sendBatch(), one delay for the whole
// batch, so a group holds specs of one delay only (delaySeconds is its key).
const CAPABILITIES = ["fifo", "delay", "batch_enqueue", "visibility_timeout", "crash_recovery", "worker"];

const delaySeconds = (spec) => Math.ceil((spec.delay_ms || 0) / 1000);

async function client(poolSize) {
  return Pgmq.new(
    p.pgOptions(p.CONFIG.dsn, poolSize ?? p.CONFIG.pool_size ?? 4),
    { skipExtensionCreation: true }, // the schema comes from the harness
  );
}

async function info() {
  p.emit({ protocol: p.PROTOCOL, capabilities: CAPABILITIES });
}

async function prepare() {
  const q = await client(1);
  try {
    await q.queue.create(p.CONFIG.queue);
  } finally {
    await q.close();
  }
  p.emit({ ok: true });
}

async function enqueue() {
  const q = await client(2);
  try {
    await p.acknowledge((spec) => q.msg.send(p.CONFIG.queue, p.body(spec), delaySeconds(spec)), {
      sendBatch: (specs) => q.msg.sendBatch(p.CONFIG.queue, specs.map(p.body), delaySeconds(specs[0])),
      key: delaySeconds,
    });
  } finally {
    await q.close();
  }
}

async function work() {
  const q = await client(p.CONFIG.pool_size ?? (p.CONFIG.concurrency || 1) + 1);
  const history = new p.History(p.CONFIG.history, p.CONFIG.worker || "w");
  const vt = p.CONFIG.visibility_timeout_s ?? 30;
  await p.runSlots(async () => {
    const [message] = await q.msg.readBatch(p.CONFIG.queue, vt, 1);
    if (!message) return false;
    if (await p.execute(history, message.message, message.readCount, message.msgId)) {
      await q.msg.archive(p.CONFIG.queue, message.msgId);
    }
    return true;
  });
  await q.close();
}


await p.main({ info, prepare, enqueue, work });
