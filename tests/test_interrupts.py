"""Interrupting a run at any moment leaves no process, port or temp directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gauntlet import paths

HELPERS = paths.ROOT / "tests" / "helpers"


def _foreground() -> None:
    """The child as a terminal's foreground process has it: SIGINT at its default. Run from a
    backgrounded shell (nohup, `&`), the tests would otherwise hand it SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(argv: list[str], out: Path) -> tuple[subprocess.Popen[str], dict]:
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT), "GAUNTLET_OUT": str(out)}  # logs too stay out of reports/out
    env.pop("GAUNTLET_EVENTS", None)
    proc = subprocess.Popen(argv, cwd=paths.ROOT, env=env, stdout=subprocess.PIPE, text=True, preexec_fn=_foreground)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            return proc, json.loads(line)
    proc.kill()
    raise AssertionError(f"the run exited (code {proc.wait()}) before PostgreSQL was up")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_harness_leaves_nothing(leak_check, signum, tmp_path: Path) -> None:
    proc, facts = _start([sys.executable, str(HELPERS / "hold_cluster.py")], tmp_path)
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    leak_check.assert_clean(pids=facts["pids"], ports=[facts["port"]], roots=[facts["root"]])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_pytest_session_leaves_nothing(leak_check, signum, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", str(HELPERS / "hold_in_pytest.py")]
    proc, facts = _start(argv, tmp_path)
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    leak_check.assert_clean(pids=facts["pids"], ports=[facts["port"]], roots=[facts["root"]])


MATRIX = [("chaos", "calm"), ("e2e", "stubborn"), ("sql", "calm")]  # as MAIN_JOB runs them

# A stand-in session that leaves a straggler in its process group; "stubborn" ignores SIGINT.
STAND_IN = """
import os, signal, subprocess, sys, time
pid_file, stubborn = sys.argv[1], sys.argv[2] == "stubborn"
ignore = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"
subprocess.Popen([sys.executable, "-c", ignore])
if stubborn:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
with open(pid_file + ".tmp", "w") as out:
    out.write(str(os.getpid()))
os.replace(pid_file + ".tmp", pid_file)
time.sleep(60)
"""

MAIN_JOB = """
import sys
from pathlib import Path
from rich.console import Console
from gauntlet import lifecycle, pipeline
from gauntlet.ids import SessionId
out, stand_in = Path(sys.argv[1]), sys.argv[2]
lifecycle.install_signal_handlers()
matrix = [SessionId("chaos", "calm"), SessionId("e2e", "stubborn"), SessionId("sql", "calm")]
def command(session):
    return [sys.executable, "-c", stand_in, str(out.parent / (session.log_stem + ".pid")), session.target]
try:
    pipeline.run_job(matrix, SessionId("report"), jobs=3, layout=pipeline.Layout(out),
                     console=Console(stderr=True), command=command, grace_s=1.0)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _live_members(pgid: int) -> list[int]:
    """Processes in process group `pgid` that are not zombies."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_main_job_stops_every_session(tmp_path: Path, signum: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT)}
    argv = [sys.executable, "-c", MAIN_JOB, str(tmp_path / "out"), STAND_IN]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=_foreground)
    pid_files = [tmp_path / f"session-{kind}-{target}.pid" for kind, target in MATRIX]
    deadline = time.monotonic() + 30
    while not all(p.exists() for p in pid_files):
        assert proc.poll() is None and time.monotonic() < deadline, "the stand-in sessions did not all start"
        time.sleep(0.05)
    groups = [int(p.read_text()) for p in pid_files]  # each session leads its own group
    assert all(_live_members(g) for g in groups)

    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err

    deadline = time.monotonic() + 10
    while any(_live_members(g) for g in groups):
        assert time.monotonic() < deadline, f"left behind: {[_live_members(g) for g in groups]}"
        time.sleep(0.1)
    record = json.loads((tmp_path / "out" / "sessions.json").read_text())
    assert record["interrupted"] is True
    assert sorted((s["kind"], s["stopped"]) for s in record["sessions"]) == [
        ("chaos", "interrupt"),
        ("e2e", "interrupt"),
        ("sql", "interrupt"),
    ]  # and the report never started
