"""Bring up the harness (PostgreSQL + a helper) and wait to be interrupted.

Prints one JSON line once everything is up, so a test knows what must disappear.
"""

from __future__ import annotations

import json
import sys
import time

from gauntlet import lifecycle
from gauntlet.pg import open_harness

lifecycle.install_signal_handlers()
with open_harness() as harness:
    helper = harness.supervisor.spawn("sleeper", ["sleep", "600"])
    assert harness.cluster is not None and harness.cluster.process is not None
    facts = {
        "port": harness.server.port,
        "pids": [helper.pid, harness.cluster.process.pid],
        "root": str(harness.cluster.root),
    }
    print(json.dumps(facts), flush=True)
    time.sleep(600)
sys.exit(0)
