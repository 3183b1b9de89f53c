"""Interrupting a run at any moment leaves no process, port or temp directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from gauntlet import paths

HELPERS = paths.ROOT / "tests" / "helpers"


def _start(argv: list[str]) -> tuple[subprocess.Popen[str], dict]:
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT)}
    env.pop("GAUNTLET_EVENTS", None)
    proc = subprocess.Popen(argv, cwd=paths.ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            return proc, json.loads(line)
    proc.kill()
    raise AssertionError(f"the run exited (code {proc.wait()}) before PostgreSQL was up")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_harness_leaves_nothing(leak_check, signum) -> None:
    proc, facts = _start([sys.executable, str(HELPERS / "hold_cluster.py")])
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    leak_check.assert_clean(pids=facts["pids"], ports=[facts["port"]], roots=[facts["root"]])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_pytest_session_leaves_nothing(leak_check, signum) -> None:
    argv = [sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", str(HELPERS / "hold_in_pytest.py")]
    proc, facts = _start(argv)
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    leak_check.assert_clean(pids=facts["pids"], ports=[facts["port"]], roots=[facts["root"]])
