"""Progress events from pytest to the main job's view."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from gauntlet import events, paths
from gauntlet.progress import Progress


def test_a_pytest_run_emits_one_verdict_per_case(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_ok(): pass\n"
        "def test_bad(): assert False\n"
        "@pytest.mark.skip(reason='capability missing')\n"
        "def test_na(): pass\n"
        "@pytest.fixture\n"
        "def broken(): raise RuntimeError\n"
        "def test_err(broken): pass\n"
    )
    log = tmp_path / "events.jsonl"
    env = {**os.environ, events.EVENTS_ENV: str(log), "PYTHONPATH": str(paths.ROOT)}
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "gauntlet.pytest_plugin", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=False,
    )
    ends = {e["nodeid"].split("::")[1]: e["verdict"] for e in events.Tail(log).read() if e["kind"] == "case_end"}
    assert ends == {"test_ok": "pass", "test_bad": "fail", "test_na": "n/a", "test_err": "error"}


def test_tail_reads_only_complete_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    tail = events.Tail(path)
    assert tail.read() == []
    path.write_text('{"kind": "a"}\n{"kind": "b"')
    assert tail.read() == [{"kind": "a"}]
    with open(path, "a") as out:
        out.write("}\nnot json\n")
    assert tail.read() == [{"kind": "b"}]


def test_plain_lines_name_their_session_when_interleaved() -> None:
    buffer = io.StringIO()
    with Progress(Console(file=buffer, force_terminal=False, width=200)) as progress:
        progress.session_started("e2e(sdk='pgmq-go')")
        progress.session_started("sql(system='pgmq')")
        progress.event("e2e(sdk='pgmq-go')", {"kind": "case_start", "nodeid": "e2e/test_basic.py::test_wave"})
        progress.event("sql(system='pgmq')", {"kind": "case_end", "nodeid": "api.sql::send", "verdict": "fail"})
        progress.event(
            "e2e(sdk='pgmq-go')",
            {"kind": "case_end", "nodeid": "e2e/test_basic.py::test_wave", "verdict": "pass", "duration_s": 1.2},
        )
        progress.session_finished("e2e(sdk='pgmq-go')", 0, 3.4, "log.txt")
        progress.session_finished("sql(system='pgmq')", 1, 2.0, "sql.log")
    lines = [line.split("] ", 1)[1] for line in buffer.getvalue().splitlines()]
    assert lines == [
        "e2e(sdk='pgmq-go') | started",
        "sql(system='pgmq') | started",
        "sql(system='pgmq') | fail  api.sql::send",
        "e2e(sdk='pgmq-go') | pass  e2e/test_basic.py::test_wave (1.2s)",
        "e2e(sdk='pgmq-go') | ok in 3.4s (log: log.txt)",
        "sql(system='pgmq') | exit 1 in 2.0s (log: sql.log)",
    ]
    assert progress.verdicts == {"pass": 1, "fail": 1}


def test_live_view_shows_every_running_session_and_its_case() -> None:
    progress = Progress(Console(file=io.StringIO(), force_terminal=True, width=200))
    progress.session_started("chaos(sdk='river-go')")
    progress.session_started("e2e(sdk='pgmq-py')")
    progress.event("chaos(sdk='river-go')", {"kind": "case_start", "nodeid": "chaos/test_chaos.py::test_partition"})
    progress.event("e2e(sdk='pgmq-py')", {"kind": "case_start", "nodeid": "e2e/test_delivery.py::test_fifo"})
    progress.session_finished("sql(system='pgmq')", 0, 5.0, "sql.log")
    screen = Console(file=io.StringIO(), width=200, record=True)
    screen.print(progress.render())
    rows = screen.export_text().splitlines()
    assert any("chaos(sdk='river-go')" in r and "test_partition" in r for r in rows)
    assert any("e2e(sdk='pgmq-py')" in r and "test_fifo" in r for r in rows)
    assert any("sql(system='pgmq')" in r and "5.0s" in r for r in rows)
    assert "running 2" in rows[-1]
