"""The honest pgmq-py driver with one deliberate flaw, named by the first argument.

Each flaw breaks exactly one property; tests/test_broken_drivers.py checks that the E2E
scenario aimed at that property catches it, and that the honest driver (and, for a claimed
capability PGMQ lacks, an honest "control" that implements it) passes the same scenario.
Several flaws show only under some conditions: with concurrency > 1, at the end of an
enqueue run, at SIGTERM, for some priorities, payloads or keys.
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HONEST = Path(__file__).resolve().parents[2] / "sdk_adapters" / "pgmq" / "pgmq-py" / "driver.py"
flaw = sys.argv.pop(1)
spec = importlib.util.spec_from_file_location("honest_driver", HONEST)
assert spec is not None and spec.loader is not None
d = importlib.util.module_from_spec(spec)
spec.loader.exec_module(d)
p = d.p
real_execute = p.execute
real_send = d._send
real_send_batch = d._send_batch
real_body = p.body

# What each flaw (or control) claims beyond the honest driver's capabilities.
CLAIMS = {
    "disorder": ["priority"],
    "no_retry": ["retries"],
    "no_dedupe": ["dedupe"],
    "no_dead_letter": ["retries", "dead_letter"],
    "no_backoff": ["retries"],
    "priority_cap": ["priority"],
    "dedupe_case": ["dedupe"],
    "retrying": ["retries"],  # control: PGMQ's redelivery after the visibility timeout is the backoff
    "sorted": ["priority"],  # control: a worker that runs what it reads highest priority first
    "dedupe": ["dedupe"],  # control: a key table, compared as PostgreSQL compares text
    "upgrade_drops": ["upgrade"],
    "upgrading": ["upgrade"],  # control: the honest driver, which keeps working on the upgraded schema
    "periodic_each": ["periodic"],
    "periodic": ["periodic"],  # control: a tick table, so that one worker enqueues each tick
}


def info() -> None:
    p.emit({"protocol": 1, "capabilities": d.CAPABILITIES + CLAIMS.get(flaw, [])})


def work(claim: Any = None, on_fail: Any = None) -> None:
    """The honest worker loop, with the claim of a message and the handling of a failure swappable."""
    queue = p.CONFIG["queue"]
    vt = int(p.CONFIG.get("visibility_timeout_s", 30))
    client = d.queue_client(int(p.CONFIG.get("pool_size", int(p.CONFIG.get("concurrency", 1)) + 1)))
    history = p.History(p.CONFIG.get("history", ""), p.CONFIG.get("worker", "w"))

    def slot() -> bool:
        message = claim(client, queue, vt) if claim else client.read(queue, vt=vt)
        if message is None:
            return False
        if p.execute(history, message.message, message.read_ct, str(message.msg_id)):
            client.archive(queue, message.msg_id)
        elif on_fail is not None:
            on_fail(client, queue, message)
        return True

    try:
        p.run_slots(slot)
    finally:
        client.close()


def ascii_only(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("ascii", "replace").decode()
    if isinstance(value, list):
        return [ascii_only(v) for v in value]
    if isinstance(value, dict):
        return {ascii_only(k): ascii_only(v) for k, v in value.items()}
    return value


def priority_worker(rank: Any) -> None:
    """Reads what is visible (up to 50) and runs it by rank(priority) first, then enqueue order."""
    queue = p.CONFIG["queue"]
    client = d.queue_client(2)
    history = p.History(p.CONFIG["history"], p.CONFIG.get("worker", "w"))

    def slot() -> bool:
        batch = client.read(queue, vt=30, qty=50)
        batch.sort(key=lambda m: (-rank(int(m.message.get("priority") or 0)), m.msg_id))
        for message in batch:
            if p.execute(history, message.message, message.read_ct, str(message.msg_id)):
                client.archive(queue, message.msg_id)
        return bool(batch)

    try:
        p.run_slots(slot)
    finally:
        client.close()


def dedupe_prepare() -> None:
    import psycopg

    with psycopg.connect(p.CONFIG["dsn"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS gauntlet_dedupe (queue text, key text, PRIMARY KEY (queue, key))")
    d.prepare()


def dedupe_sender(fold: Any) -> Any:
    """A send that refuses a key already taken; `fold` is how keys are compared."""
    import psycopg

    db = psycopg.connect(p.CONFIG["dsn"], autocommit=True)

    def send(client: Any, item: dict, conn: Any = None) -> int:
        key = item.get("dedupe_key")
        if key is not None:
            taken = db.execute(
                "INSERT INTO gauntlet_dedupe (queue, key) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                (p.CONFIG["queue"], fold(key)),
            ).fetchone()
            if taken is None:
                raise ValueError(f"dedupe key {key!r} has a live job")
        return real_send(client, item, conn)

    return send


def periodic_work(claim: Any) -> None:
    """The honest worker, plus a timer that enqueues each tick of `periodic.every_s` (as
    `periodic-<tick>`) when `claim(tick)` says this worker is the one to."""
    every = int(p.CONFIG["periodic"]["every_s"])
    client = d.queue_client(2)

    def timer() -> None:
        while not p.stop_requested.is_set():
            tick = (int(time.time()) // every + 1) * every
            if p.stop_requested.wait(max(0.0, tick - time.time())):
                return
            if claim(tick):
                real_send(client, {"id": f"periodic-{tick}"})

    threading.Thread(target=timer, daemon=True).start()
    d.work()


def periodic_prepare() -> None:
    import psycopg

    with psycopg.connect(p.CONFIG["dsn"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS gauntlet_ticks (queue text, tick bigint, PRIMARY KEY (queue, tick))")
    d.prepare()


def tick_claim() -> Any:
    """One row per (queue, tick): only the worker whose insert lands enqueues the tick."""
    import psycopg

    db = psycopg.connect(p.CONFIG["dsn"], autocommit=True)
    sql = "INSERT INTO gauntlet_ticks VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1"
    return lambda tick: db.execute(sql, (p.CONFIG["queue"], tick)).fetchone() is not None


commands = {"info": info, "prepare": d.prepare, "enqueue": d.enqueue, "work": d.work}

# "retrying" (a control: PGMQ hands a failed message back when its visibility timeout runs out,
# which is the backoff), no_dedupe (claims dedupe, ignores dedupe_key) and no_dead_letter (claims
# dead letters; PGMQ redelivers a failed message forever and counts none dead) are the honest
# driver plus a claim; "none" is the honest driver in a system folder whose stats query is wrong.

if flaw in ("none", "retrying", "no_dedupe", "no_dead_letter"):
    pass  # the honest driver: with a claim it cannot keep, or in a system folder that is broken

elif flaw == "drops":  # archives every 7th job without running it: lost jobs

    def execute(history, body, attempt, sdk_id):
        return True if int(sdk_id) % 7 == 0 else real_execute(history, body, attempt, sdk_id)

    p.execute = execute

elif flaw == "upgrading":  # the honest driver, with the claim
    pass

elif flaw == "upgrade_drops":  # as N-1 (release "previous"), once the schema is upgraded, archives without running

    def upgraded() -> bool:
        import psycopg

        with psycopg.connect(p.CONFIG["dsn"], autocommit=True) as conn:
            return bool(conn.execute("SELECT to_regclass('public.gauntlet_upgraded') IS NOT NULL").fetchone()[0])

    def execute(history, body, attempt, sdk_id):
        if p.CONFIG.get("release") == "previous" and upgraded():
            return True
        return real_execute(history, body, attempt, sdk_id)

    p.execute = execute

elif flaw == "twice":  # runs every 5th job twice: duplicates

    def execute(history, body, attempt, sdk_id):
        if int(sdk_id) % 5 == 0:
            real_execute(history, body, attempt, sdk_id)
        return real_execute(history, body, attempt, sdk_id)

    p.execute = execute

elif flaw == "disorder":  # takes five at a time and runs them newest first; ignores priority

    def work_disorder() -> None:
        client = d.queue_client(2)
        history = p.History(p.CONFIG["history"], p.CONFIG.get("worker", "w"))

        def slot() -> bool:
            batch = client.read(p.CONFIG["queue"], vt=30, qty=5)
            for message in reversed(batch):
                if p.execute(history, message.message, message.read_ct, str(message.msg_id)):
                    client.archive(p.CONFIG["queue"], message.msg_id)
            return bool(batch)

        p.run_slots(slot)

    commands["work"] = work_disorder

elif flaw == "outside_tx":  # sends every job on its own connection, whatever the transaction says

    def enqueue_outside() -> None:
        client = d.queue_client(2)
        for item in p.specs():
            p.emit({"id": item["id"], "ok": True, "sdk_id": str(d._send(client, item))})
        if p.CONFIG.get("transaction"):  # claims to have honoured it
            p.emit({"transaction": "rolled_back" if p.CONFIG["transaction"] == "rollback" else "committed"})

    commands["enqueue"] = enqueue_outside

elif flaw == "leaky_tx":  # inside a transaction, one job in 20 (at random) goes out on its own connection

    def enqueue_leaky() -> None:
        mode = p.CONFIG.get("transaction")
        if not mode:
            d.enqueue()
            return
        client = d.queue_client(3)
        try:
            with client.pool.connection() as conn:
                conn.autocommit = False
                p.acknowledge_each(
                    lambda item: real_send(client, item, conn=None if random.random() < 0.05 else conn),
                    in_transaction=True,
                )
                conn.commit() if mode == "commit" else conn.rollback()
                p.transaction_outcome(mode)
        finally:
            client.close()

    commands["enqueue"] = enqueue_leaky

elif flaw == "drops_last":  # the last job of each enqueue run is acknowledged but never sent

    def enqueue_but_the_last() -> None:
        if p.CONFIG.get("transaction"):
            d.enqueue()
            return
        client = d.queue_client(2)
        held = None
        try:
            for item in p.specs():
                if held is not None:
                    p.emit({"id": held["id"], "ok": True, "sdk_id": str(real_send(client, held))})
                    held = None
                if isinstance(item, str):
                    p.emit({"id": None, "ok": False, "error": item})
                    continue
                held = item
            if held is not None:  # end of input: this one is "sent" later, which never comes
                p.emit({"id": held["id"], "ok": True, "sdk_id": "0"})
        finally:
            client.close()

    commands["enqueue"] = enqueue_but_the_last

elif flaw == "refuses_all":  # refuses every spec and sends none: a wave of nothing, which proves nothing

    def enqueue_refusing() -> None:
        for item in p.specs():
            p.emit({"id": None if isinstance(item, str) else item["id"], "ok": False, "error": "refused"})

    commands["enqueue"] = enqueue_refusing

elif flaw == "batch_drops_last":  # with batch_size, acknowledges every spec of a batch but sends all but its last

    def send_batch_but_the_last(client: Any, specs: list[dict], conn: Any = None) -> list[int]:
        sent = real_send_batch(client, specs[:-1], conn) if len(specs) > 1 else []
        return [*sent, 10**9 + (sent[-1] if sent else 0)]  # a plausible id, distinct: "sent" later, which never comes

    d._send_batch = send_batch_but_the_last

elif flaw == "no_retry":  # claims retries, but archives failed jobs at once

    def execute(history, body, attempt, sdk_id):
        real_execute(history, body, attempt, sdk_id)
        return True

    p.execute = execute

elif flaw == "no_backoff":  # claims retries; hands a failed job straight back, no backoff
    commands["work"] = lambda: work(on_fail=lambda client, queue, message: client.set_vt(queue, message.msg_id, 0))

elif flaw in ("dedupe", "dedupe_case"):  # a key table; the flaw folds case before comparing keys
    commands["prepare"] = dedupe_prepare
    d._send = dedupe_sender(str.casefold if flaw == "dedupe_case" else str)

elif flaw in ("sorted", "priority_cap"):  # priority-first worker; the flaw caps priorities at 2
    p.body = lambda item: {**real_body(item), "priority": int(item.get("priority") or 0)}
    cap = 2 if flaw == "priority_cap" else 99
    commands["work"] = lambda: priority_worker(lambda priority: min(priority, cap))

elif flaw == "no_delay":  # ignores delay_ms
    d._send = lambda client, item, conn=None: real_send(client, {**item, "delay_ms": 0}, conn)

elif flaw == "short_delay":  # honours 80 % of each delay
    d._send = lambda client, item, conn=None: real_send(
        client, {**item, "delay_ms": int(item.get("delay_ms") or 0) * 8 // 10}, conn
    )

elif flaw == "mangles_unicode":  # payload strings lose their non-ASCII characters
    p.body = lambda item: {**real_body(item), "payload": ascii_only(item.get("payload"))}

elif flaw == "shared_slots":  # with concurrency > 1, a slot sees a message before it claims it

    def peek_then_claim(client: Any, queue: str, vt: int) -> Any:
        with client.pool.connection() as conn:
            row = conn.execute("SELECT msg_id, read_ct, message FROM pgmq.read(%s, 0, 1)", (queue,)).fetchone()
        if row is None:
            return None
        time.sleep(0.005)  # between seeing it and claiming it, another slot sees it too
        client.set_vt(queue, row[0], vt)
        return SimpleNamespace(msg_id=row[0], read_ct=row[1], message=row[2])

    if int(p.CONFIG.get("concurrency", 1)) > 1:
        commands["work"] = lambda: work(claim=peek_then_claim)

elif flaw == "sigterm_loses":  # exits at SIGTERM without finishing the jobs in flight

    def run_slots(slot) -> None:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

        def loop() -> None:
            while True:
                if not slot():
                    time.sleep(0.02)

        for _ in range(int(p.CONFIG.get("concurrency", 1))):
            threading.Thread(target=loop, daemon=True).start()
        while True:
            time.sleep(1)

    p.run_slots = run_slots

elif flaw == "sigterm_unacked":  # at SIGTERM, finishes the jobs in flight but never completes them in PGMQ

    def execute(history, body, attempt, sdk_id):
        ok = real_execute(history, body, attempt, sdk_id)
        return ok and not p.stop_requested.is_set()

    p.execute = execute

elif flaw == "dies_on_db_error":  # the first failed fetch or completion ends the worker, as a runner without retries
    real_run_slots = p.run_slots

    def run_slots(slot):
        def dying_slot() -> bool:
            try:
                return slot()
            except Exception as exc:
                print(f"giving up: {exc!r}", file=sys.stderr, flush=True)
                os._exit(1)

        real_run_slots(dying_slot)

    p.run_slots = run_slots

elif flaw in ("periodic", "periodic_each"):  # a timer per worker; the flaw: each worker enqueues every tick
    commands["prepare"] = periodic_prepare
    if p.CONFIG.get("periodic"):
        commands["work"] = lambda: periodic_work(tick_claim() if flaw == "periodic" else lambda tick: True)

elif flaw == "hangs":  # never answers info

    def info_hangs() -> None:
        time.sleep(3600)

    commands["info"] = info_hangs

elif flaw == "garbage":  # prints garbage among its acknowledgements
    real_emit = p.emit

    def emit(obj):
        real_emit(obj)
        if "sdk_id" in obj:
            sys.stdout.write("Traceback (most recent call last): oops\n")
            sys.stdout.flush()

    p.emit = emit

else:
    p.fail(f"unknown flaw {flaw!r}", code=2)

p.main(commands)
