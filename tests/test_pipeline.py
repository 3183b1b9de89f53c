"""The main job's scheduler, selectors and record, with stand-in sessions (no nox)."""

from __future__ import annotations

import io
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from gauntlet import events, pipeline
from gauntlet.ids import SessionId
from gauntlet.progress import Progress
from gauntlet.supervise import Supervisor

GIB = 1 << 30


def _listed(kind: str, target: str = "", tags: tuple[str, ...] = ()) -> dict[str, object]:
    key = {"sql": "system", "e2e": "sdk", "chaos": "sdk", "pgbouncer": "sdk"}.get(kind)
    spec = {key: target} if key and target else {}
    name = f"{kind}({key}='{target}')" if spec else kind
    return {"session": name, "name": kind, "tags": [kind, *tags], "call_spec": spec}


LISTED = [
    _listed("tests", tags=("core",)),
    _listed("sql", "pgmq", ("pgmq", "pgmq-py", "pgmq-go")),
    _listed("sql", "river", ("river", "river-go")),
    _listed("e2e", "pgmq-py", ("pgmq", "python", "pgmq-py")),
    _listed("e2e", "pgmq-go", ("pgmq", "go", "pgmq-go")),
    _listed("chaos", "pgmq-py", ("pgmq", "python", "pgmq-py")),
    _listed("pgbouncer", "pgmq-py", ("pgmq", "python", "pgmq-py")),
    _listed("bench"),
    _listed("report"),
]


PGMQ_GO = ["e2e(sdk='pgmq-go')"]


def _names(sessions: list[SessionId]) -> list[str]:
    return [s.nox_name for s in sessions]


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        (
            [],
            [
                "sql(system='pgmq')",
                "sql(system='river')",
                "e2e(sdk='pgmq-py')",
                *PGMQ_GO,
                "chaos(sdk='pgmq-py')",
                "pgbouncer(sdk='pgmq-py')",
            ],
        ),
        (["pgmq-py"], ["sql(system='pgmq')", "e2e(sdk='pgmq-py')", "chaos(sdk='pgmq-py')", "pgbouncer(sdk='pgmq-py')"]),
        (["e2e"], ["e2e(sdk='pgmq-py')", "e2e(sdk='pgmq-go')"]),
        (["go"], PGMQ_GO),
        (["chaos(sdk='pgmq-py')", "river"], ["sql(system='river')", "chaos(sdk='pgmq-py')"]),
        (["report"], []),
    ],
)
def test_a_selector_is_a_name_a_kind_or_a_tag(only: list[str], expected: list[str]) -> None:
    matrix, report = pipeline.select(pipeline.candidates(LISTED), only)
    assert _names(matrix) == expected
    assert report == SessionId("report")


@pytest.mark.parametrize(
    ("only", "topology", "expected"),
    [
        ([], "pgbouncer", ["pgbouncer(sdk='pgmq-py')"]),
        (["pgbouncer"], None, ["pgbouncer(sdk='pgmq-py')"]),
        (["pgmq-py"], "toxiproxy", ["chaos(sdk='pgmq-py')"]),
        (["pgmq-py"], "direct", ["sql(system='pgmq')", "e2e(sdk='pgmq-py')"]),
    ],
)
def test_a_topology_keeps_only_its_sessions(only: list[str], topology: str | None, expected: list[str]) -> None:
    matrix, _ = pipeline.select(pipeline.candidates(LISTED), only, topology)
    assert _names(matrix) == expected


def test_a_selector_matching_nothing_is_an_error_that_lists_what_would(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(pipeline.SelectionError) as caught:
        pipeline.select(pipeline.candidates(LISTED), ["e2e", "pgmq_py"])
    message = str(caught.value)
    assert "'pgmq_py'" in message and "'e2e'" not in message.splitlines()[0]
    assert "pgmq-py" in message and "python" in message and "e2e(sdk='pgmq-go')" in message
    assert "core" not in message  # tests/lint/bench are not the main job's to select

    monkeypatch.setattr(pipeline, "list_sessions", lambda: LISTED)
    monkeypatch.setenv("GAUNTLET_SEED", "4242")  # main exports both: monkeypatch restores them after
    assert pipeline.main(["--only", "tests"]) == 2
    assert "no session matches 'tests'" in capsys.readouterr().err


def test_placeholder_sessions_without_a_target_are_not_run() -> None:
    found = pipeline.candidates([_listed("e2e"), _listed("chaos"), _listed("report")])
    assert [c.id for c in found] == [SessionId("report")]


def test_ci_matrix_is_one_job_per_sdk_and_one_for_sql() -> None:
    matrix, _ = pipeline.select(pipeline.candidates(LISTED), [])
    assert pipeline.ci_matrix(matrix) == [
        {"name": "sql", "sessions": "sql(system='pgmq'),sql(system='river')", "sdk": "", "language": "", "folder": ""},
        {
            "name": "pgmq-py",
            "sessions": "e2e(sdk='pgmq-py'),chaos(sdk='pgmq-py'),pgbouncer(sdk='pgmq-py')",
            "sdk": "pgmq-py",
            "language": "python",
            "folder": "sdk_adapters/pgmq/pgmq-py",
        },
        {
            "name": "pgmq-go",
            "sessions": "e2e(sdk='pgmq-go')",
            "sdk": "pgmq-go",
            "language": "go",
            "folder": "sdk_adapters/pgmq/pgmq-go",
        },
    ]


def test_the_queue_starts_with_the_longest_sessions(tmp_path: Path) -> None:
    matrix, _ = pipeline.select(pipeline.candidates(LISTED), [])
    sessions_json = tmp_path / "sessions.json"
    assert _names(pipeline.longest_first(matrix, pipeline.previous_walls(sessions_json))) == [
        "chaos(sdk='pgmq-py')",
        "e2e(sdk='pgmq-go')",
        "e2e(sdk='pgmq-py')",
        "pgbouncer(sdk='pgmq-py')",
        "sql(system='pgmq')",
        "sql(system='river')",
    ]
    recorded = [
        {"session": "sql(system='pgmq')", "wall_s": 400.0, "stopped": None},
        {"session": "e2e(sdk='pgmq-py')", "wall_s": 300.0, "stopped": None},
        {"session": "chaos(sdk='pgmq-py')", "wall_s": 5.0, "stopped": "interrupt"},  # cut short: says nothing
        {"session": "sql(system='river')", "wall_s": 20.0, "stopped": None},
    ]
    sessions_json.write_text(json.dumps({"sessions": recorded}))
    assert _names(pipeline.longest_first(matrix, pipeline.previous_walls(sessions_json))) == [
        "sql(system='pgmq')",
        "e2e(sdk='pgmq-go')",  # not timed: as long as the longest e2e
        "e2e(sdk='pgmq-py')",
        "sql(system='river')",
        "chaos(sdk='pgmq-py')",  # no kind-mate timed: last
        "pgbouncer(sdk='pgmq-py')",
    ]
    sessions_json.write_text(json.dumps([{"session": "sql(system='river')", "wall_s": 9.0}]))  # an older shape
    assert pipeline.previous_walls(sessions_json) == {}


def test_a_fresh_clone_orders_its_queue_by_the_committed_walls() -> None:
    """Without a sessions.json of its own, the queue follows gauntlet/session_walls.json: every
    session it names is one the catalog makes, so a renamed session cannot silently drop out."""
    walls = pipeline.previous_walls(pipeline.MEASURED_WALLS)
    matrix, _ = pipeline.select(pipeline.candidates(pipeline.list_sessions()), [])
    assert walls, f"{pipeline.MEASURED_WALLS} is unreadable: a fresh clone would start sessions in kind order"
    assert set(walls) - {"report"} <= {s.nox_name for s in matrix}


@pytest.mark.parametrize(
    ("cores", "memory", "jobs"), [(2, 24 * GIB, 8), (1, 24 * GIB, 4), (16, 6 * GIB, 6), (2, GIB // 2, 1)]
)
def test_default_jobs_from_cores_and_memory(cores: int, memory: int, jobs: int) -> None:
    assert pipeline.default_jobs(cores, memory) == jobs


# A stand-in session: a case_start, some CPU burnt in a child process, a sleep, a case_end.
STAND_IN = f"""
import json, os, subprocess, sys, time
name, seconds, spin = sys.argv[1], float(sys.argv[2]), sys.argv[3]
def emit(**event):
    with open(os.environ[{events.EVENTS_ENV!r}], "a") as out:
        out.write(json.dumps(event) + "\\n")
burn = "import time\\nend = time.process_time() + " + spin + "\\nwhile time.process_time() < end: pass"
emit(kind="case_start", nodeid=name + "::case")
subprocess.run([sys.executable, "-c", burn])
time.sleep(seconds)
emit(kind="case_end", nodeid=name + "::case", verdict="pass", duration_s=seconds)
"""


def _stand_in(seconds: float, spin: float = 0.0) -> pipeline.Command:
    return lambda s: [sys.executable, "-c", STAND_IN, s.target or s.kind, str(seconds), str(spin)]


def test_sessions_run_side_by_side_up_to_jobs_and_the_report_last(tmp_path: Path) -> None:
    layout = pipeline.Layout(tmp_path / "out")
    matrix = [SessionId("e2e", f"sdk{i}") for i in range(5)]
    layout.junit.mkdir(parents=True)
    (layout.junit / "e2e-sdk0.xml").write_text("<testsuites/>")  # an earlier run's: must not stand in
    buffer = io.StringIO()
    results = pipeline.run_job(
        matrix,
        SessionId("report"),
        jobs=2,
        layout=layout,
        console=Console(file=buffer, force_terminal=False, width=200),
        command=_stand_in(0.8, spin=0.3),
    )
    assert [r.kind for r in results][-1] == "report"
    spans = [(r.start_offset_s, r.end_offset_s) for r in results if r.kind != "report"]
    at_once = max(sum(start <= t < end for start, end in spans) for t, _ in spans)
    assert at_once == 2
    report = results[-1]
    assert report.start_offset_s >= max(end for _, end in spans)

    record = json.loads(layout.sessions_json.read_text())
    assert set(record) == {"started", "ended", "wall_s", "cpu_s", "jobs", "interrupted", "sessions"}
    assert record["jobs"] == 2 and record["interrupted"] is False
    assert record["wall_s"] >= report.end_offset_s
    first = next(s for s in record["sessions"] if s["target"] == "sdk0")  # sdk0 and sdk1 may end in either order
    assert set(first) == {
        "session", "kind", "target", "exit_code", "stopped", "wall_s", "cpu_s",
        "started", "ended", "start_offset_s", "end_offset_s", "log", "log_offset",
    }  # fmt: skip
    assert first["session"] == "e2e(sdk='sdk0')" and first["kind"] == "e2e" and first["target"] == "sdk0"
    assert first["exit_code"] == 0 and first["stopped"] is None and first["wall_s"] >= 0.8
    assert first["cpu_s"] >= 0.25  # the child's CPU counts: the whole reaped tree
    assert record["cpu_s"] >= sum(s["cpu_s"] for s in record["sessions"]) - 0.05
    assert Path(first["log"]).parent == layout.logs

    text = buffer.getvalue()
    assert "e2e(sdk='sdk3') | pass  sdk3::case (0.8s)" in text
    assert "e2e(sdk='sdk3') | ok in" in text

    # Stand-ins write no JUnit file: each matrix session still shows up, as one error case.
    error = ET.parse(layout.junit / "e2e-sdk0.xml").find(".//testcase/error")
    assert error is not None and "exited 0 without writing e2e-sdk0.xml" in error.get("message", "")
    assert sorted(p.name for p in layout.junit.iterdir()) == [f"e2e-sdk{i}.xml" for i in range(5)]


def test_a_session_past_its_bound_is_stopped(tmp_path: Path) -> None:
    layout = pipeline.Layout(tmp_path / "out")
    supervisor = Supervisor(log_dir=layout.logs)
    try:
        with Progress(Console(file=io.StringIO(), force_terminal=False)) as progress:
            job = pipeline.Job(layout, 1, progress, supervisor, command=_stand_in(60), bound_s=0.5, grace_s=5.0)
            [result] = job.run([SessionId("sql", "pgmq")], None)
    finally:
        supervisor.close()
    assert result.stopped == "bound" and result.exit_code != 0 and result.wall_s < 5


def test_a_report_that_stops_before_its_summary_shows_why() -> None:
    finished = "merged 3 test cases\ndeviation (regression): e2e/x × a is fail — boom\ncells: 2 pass; 1 deviation(s)\n"
    assert pipeline.report_summary(finished, 1) == finished.splitlines()[:3]
    crashed = "merged 3 test cases\nrun history: recorded 3 cells\nTraceback (most recent call last):\nOSError: x\n"
    shown = pipeline.report_summary(crashed, 1)
    assert shown[:2] == ["merged 3 test cases", "run history: recorded 3 cells"]
    assert "stopped before its summary (exit 1)" in shown[2] and shown[-1] == "OSError: x"
    assert pipeline.report_summary("merged 3 test cases\n", 0) == ["merged 3 test cases"]
