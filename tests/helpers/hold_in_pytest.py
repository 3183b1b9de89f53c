"""Run by test_interrupts in a child pytest: holds the session cluster and a helper."""

import json
import time


def test_hold(harness) -> None:
    helper = harness.supervisor.spawn("sleeper", ["sleep", "600"])
    facts = {
        "port": harness.server.port,
        "pids": [helper.pid, harness.cluster.process.pid],
        "root": str(harness.cluster.root),
    }
    print(json.dumps(facts), flush=True)
    time.sleep(600)
