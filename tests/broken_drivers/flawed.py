"""The honest pgmq-py driver with one deliberate flaw, named by the first argument.

Each flaw breaks exactly one property; tests/test_broken_drivers.py checks that the E2E
scenario aimed at that property catches it (and that the honest driver passes it).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import threading
import time
from pathlib import Path

HONEST = Path(__file__).resolve().parents[2] / "sdk_adapters" / "pgmq-py" / "driver.py"
flaw = sys.argv.pop(1)
spec = importlib.util.spec_from_file_location("honest_driver", HONEST)
d = importlib.util.module_from_spec(spec)
spec.loader.exec_module(d)
p = d.p
real_execute = p.execute


def info() -> None:
    claims = {
        "disorder": ["priority"],
        "no_retry": ["retries"],
        "no_dedupe": ["dedupe"],
        "no_dead_letter": ["retries", "dead_letter"],
    }.get(flaw, [])
    p.emit(
        {
            "protocol": 1,
            "sdk": f"broken-{flaw}",
            "system": "pgmq",
            "language": "python",
            "version": "0",
            "capabilities": d.CAPABILITIES + claims,
        }
    )


commands = {"info": info, "prepare": d.prepare, "enqueue": d.enqueue, "work": d.work, "stats": d.stats}

if flaw == "drops":  # archives every 7th job without running it: lost jobs

    def execute(history, body, attempt, sdk_id):
        return True if int(sdk_id) % 7 == 0 else real_execute(history, body, attempt, sdk_id)

    p.execute = execute

elif flaw == "twice":  # runs every 5th job twice: duplicates

    def execute(history, body, attempt, sdk_id):
        if int(sdk_id) % 5 == 0:
            real_execute(history, body, attempt, sdk_id)
        return real_execute(history, body, attempt, sdk_id)

    p.execute = execute

elif flaw == "disorder":  # takes five at a time and runs them newest first; ignores priority

    def work() -> None:
        client = d.queue_client(2)
        history = p.History(p.CONFIG["history"], p.CONFIG.get("worker", "w"))

        def slot() -> bool:
            batch = client.read(p.CONFIG["queue"], vt=30, qty=5)
            for message in reversed(batch):
                if p.execute(history, message.message, message.read_ct, str(message.msg_id)):
                    client.archive(p.CONFIG["queue"], message.msg_id)
            return bool(batch)

        p.run_slots(slot)

    commands["work"] = work

elif flaw == "outside_tx":  # sends every job on its own connection, whatever the transaction says

    def enqueue() -> None:
        client = d.queue_client(2)
        for item in p.specs():
            p.emit({"id": item["id"], "ok": True, "sdk_id": str(d._send(client, item))})
        if p.CONFIG.get("transaction"):  # claims to have honoured it
            p.emit({"transaction": "rolled_back" if p.CONFIG["transaction"] == "rollback" else "committed"})

    commands["enqueue"] = enqueue

elif flaw == "no_retry":  # claims retries, but archives failed jobs at once

    def execute(history, body, attempt, sdk_id):
        real_execute(history, body, attempt, sdk_id)
        return True

    p.execute = execute

# no_dedupe (claims dedupe; ignores dedupe_key) and no_dead_letter (claims dead letters; PGMQ
# redelivers a failed message forever and counts none dead) are the honest driver plus a claim.

elif flaw == "no_delay":  # ignores delay_ms
    real_send = d._send
    d._send = lambda client, item, conn=None: real_send(client, {**item, "delay_ms": 0}, conn)

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

elif flaw == "hangs":  # never answers info

    def info() -> None:
        time.sleep(3600)

    commands["info"] = info

elif flaw == "garbage":  # prints garbage among its acknowledgements
    real_emit = p.emit

    def emit(obj):
        real_emit(obj)
        if "sdk_id" in obj:
            sys.stdout.write("Traceback (most recent call last): oops\n")
            sys.stdout.flush()

    p.emit = emit

p.main(commands)
