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


def test_plain_output_off_a_terminal() -> None:
    buffer = io.StringIO()
    with Progress(Console(file=buffer, force_terminal=False, width=200)) as progress:
        progress.session_started("e2e(sdk='pgmq-go')")
        progress.event(
            {"kind": "case_end", "nodeid": "e2e/test_basic.py::test_wave", "verdict": "pass", "duration_s": 1.2}
        )
        progress.session_finished("e2e(sdk='pgmq-go')", 0, 3.4, "log.txt")
    text = buffer.getvalue()
    assert "session e2e(sdk='pgmq-go') started" in text
    assert "pass  e2e/test_basic.py::test_wave (1.2s)" in text
    assert progress.summary() == "1 pass"
