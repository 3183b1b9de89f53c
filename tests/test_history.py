"""The run history: every main job's cells appended to a database (SQLite, or the PostgreSQL of
GAUNTLET_RESULTS_DSN), each cell's last verdicts on the dashboard, `python3 -m gauntlet history`,
and a damaged database that never fails a report. Everything lives in tmp_path."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gauntlet import paths, pipeline
from gauntlet.ids import CellId, RowId, SessionId
from reports import build, run_history
from tests.test_report import case_xml, junit_file, write_adapters

WAVE = CellId(RowId("e2e", "test_basic_wave"), "pgmq-py")
FIFO = CellId(RowId("e2e", "test_fifo_ordering"), "pgmq-py")
PARTITION = CellId(RowId("chaos", "test_network_fault[partition]"), "pgmq-py", "toxiproxy")
FAILING = '<failure message="lost 3&#10;and more lines"/>'


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scratch catalog, no screenshots, and no history database but the test's own."""
    monkeypatch.setenv("GAUNTLET_ADAPTERS", str(write_adapters(tmp_path / "adapters")))
    monkeypatch.setattr(build, "screenshot", lambda _html: None)
    monkeypatch.delenv(run_history.RESULTS_DSN_ENV, raising=False)
    monkeypatch.setattr(run_history, "DEFAULT_DB", tmp_path / "default-history.sqlite")
    real, reports = build.run_facts, iter(range(1, 100))

    def one_a_minute(seed: str | None) -> dict[str, Any]:  # a report's id is its second: these are quicker
        facts = real(seed)
        started = datetime.fromisoformat(facts["started"]) + timedelta(minutes=next(reports))
        return {**facts, "id": started.strftime("%Y%m%dT%H%M%SZ"), "started": started.isoformat(timespec="seconds")}

    monkeypatch.setattr(build, "run_facts", one_a_minute)


def rows(session: SessionId) -> list[RowId]:
    return {
        SessionId("e2e", "pgmq-py"): [WAVE.row, FIFO.row],
        SessionId("chaos", "pgmq-py"): [PARTITION.row],
    }.get(session, [])


def write_run(tmp_path: Path, wave_fails: bool = False) -> tuple[Path, Path]:
    junit_dir, out = tmp_path / "junit", tmp_path / "out"
    junit_dir.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    (junit_dir / "e2e-pgmq-py.xml").write_text(
        junit_file(
            case_xml("test_basic_wave", result=FAILING if wave_fails else "", seed="4242", lost="3", duplicated="0"),
            case_xml("test_fifo_ordering", seed="4242"),
        )
    )
    chaos = case_xml(
        "test_network_fault[partition]", suite="chaos", topology="toxiproxy", seed="4242", recovery_s="0.25", lost="0"
    )
    (junit_dir / "chaos-pgmq-py.xml").write_text(junit_file(chaos))
    return junit_dir, out


def report(tmp_path: Path, *extra: str, wave_fails: bool = False, db: Path | str | None = None) -> int:
    junit_dir, out = write_run(tmp_path, wave_fails)
    where = ["--history-db", str(db)] if db is not None else []
    return build.main(["--junit", str(junit_dir), "--out", str(out), *where, *extra], rows=rows)


def matrix_cell(tmp_path: Path, cell: CellId) -> dict[str, Any]:
    data = json.loads((tmp_path / "out" / "matrix.json").read_text())
    return next(
        c for c in data["cells"] if (c["row"], c["sdk"], c["topology"]) == (str(cell.row), cell.sdk, cell.topology)
    )


def opened(where: Path | str) -> run_history.RunHistory:
    history = run_history.RunHistory.open(str(where), write=False)
    assert history is not None
    return history


def test_two_main_jobs_leave_two_verdicts_per_cell_and_the_dashboard_shows_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "history.sqlite"
    assert report(tmp_path, run_history.RECORD_FLAG, db=db) == 0
    assert "starting a fresh one" in capsys.readouterr().out
    assert report(tmp_path, run_history.RECORD_FLAG, wave_fails=True, db=db) == 1  # the failure is a regression
    assert "recorded 3 cells" in capsys.readouterr().out

    history = opened(db)
    try:
        for cell in (WAVE, FIFO, PARTITION):
            assert len(history.cell_runs(cell, 10)) == 2, cell
        wave = history.cell_runs(WAVE, 10)
        assert [r.record.verdict for r in wave] == ["pass", "fail"]
        assert wave[0].run.started < wave[1].run.started and wave[1].run.git_sha == wave[0].run.git_sha
        assert wave[1].record.figures == {"lost": 3, "duplicated": 0} and wave[1].record.seed == 4242
        assert history.cell_runs(PARTITION, 10)[0].record.figures == {"recovery_s": 0.25, "lost": 0}
        assert history.cell_runs(WAVE, 1) == wave[1:], "the last N"
    finally:
        history.close()

    shown = matrix_cell(tmp_path, WAVE)["history"]
    assert [r["verdict"] for r in shown["last"]] == ["pass", "fail"] and shown["flake_rate"] == 0.5
    assert matrix_cell(tmp_path, FIFO)["history"]["flake_rate"] == 0.0
    page = (tmp_path / "out" / "index.html").read_text()
    assert page.count("<span class=strip") == 3 and "flake rate 50%" in page


def test_the_history_command_prints_a_cells_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "history.sqlite"
    report(tmp_path, run_history.RECORD_FLAG, db=db)
    report(tmp_path, run_history.RECORD_FLAG, wave_fails=True, db=db)
    capsys.readouterr()

    assert run_history.main(["e2e/test_basic_wave", "pgmq-py", "--history-db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("e2e/test_basic_wave × pgmq-py — 2 runs") and "flake rate 50%" in lines[0]
    assert "✔ pass" in lines[1] and "✘ fail" in lines[2] and lines[2].endswith("lost 3"), lines
    assert lines[1].split()[0] < lines[2].split()[0], "oldest first"

    assert run_history.main(["e2e/test_basic_wave", "pgmq-py", "-n", "1", "--history-db", str(db)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert run_history.main(["chaos/test_network_fault[partition]", "pgmq-py", "--history-db", str(db)]) == 0
    assert "@ toxiproxy" in capsys.readouterr().out
    partition = ["chaos/test_network_fault[partition]", "pgmq-py", "--history-db", str(db)]
    assert run_history.main([*partition, "--topology", "direct"]) == 1, "another topology is another cell"
    assert run_history.main([*partition, "--topology", "toxiproxy"]) == 0
    capsys.readouterr()
    assert run_history.main(["e2e/test_basic_wav", "pgmq-py", "--history-db", str(db)]) == 1
    assert "recorded rows like it: e2e/test_basic_wave" in capsys.readouterr().err
    assert run_history.main(["e2e/test_basic_wave", "pgmq-py", "--history-db", str(tmp_path / "none.sqlite")]) == 1
    assert "none at" in capsys.readouterr().err and not (tmp_path / "none.sqlite").exists(), "reading makes nothing"

    # The entry point README gives, as a process (the virtualenv exists: no bootstrap needed).
    run = subprocess.run(
        [sys.executable, "-m", "gauntlet", "history", "e2e/test_fifo_ordering", "pgmq-py", "--history-db", str(db)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(paths.ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("✔ pass") == 2


def test_the_main_jobs_report_records_and_a_baseline_still_marks_changes(tmp_path: Path) -> None:
    assert pipeline.nox_command(SessionId("report"))[-2:] == ["--", run_history.RECORD_FLAG]
    assert "--" not in pipeline.nox_command(SessionId("e2e", "pgmq-py"))
    db = tmp_path / "history.sqlite"
    report(tmp_path, run_history.RECORD_FLAG, db=db)
    baseline = tmp_path / "baseline.json"
    baseline.write_text((tmp_path / "out" / "matrix.json").read_text())
    report(tmp_path, run_history.RECORD_FLAG, "--baseline", str(baseline), wave_fails=True, db=db)
    wave = matrix_cell(tmp_path, WAVE)
    assert wave["changed_from"] == "pass" and len(wave["history"]["last"]) == 2
    assert 'class="c changed"' in (tmp_path / "out" / "index.html").read_text()


def test_a_report_run_by_hand_records_nothing_unless_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report(tmp_path) == 0
    assert f"not recorded (a report run by hand records nothing unless asked: {run_history.RECORD_FLAG})" in (
        capsys.readouterr().out
    )
    assert not run_history.DEFAULT_DB.exists()
    assert "history" not in matrix_cell(tmp_path, WAVE)

    db = tmp_path / "history.sqlite"
    report(tmp_path, run_history.RECORD_FLAG, db=db)
    report(tmp_path, "--show-history", wave_fails=True, db=db)  # draws the strips, records nothing
    assert [r["verdict"] for r in matrix_cell(tmp_path, WAVE)["history"]["last"]] == ["pass"]
    history = opened(db)
    try:
        assert len(history.cell_runs(WAVE, 10)) == 1
    finally:
        history.close()


def test_a_job_is_recorded_once_and_cells_from_an_earlier_run_are_not_recorded_again(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    junit_dir, out = write_run(tmp_path)
    job_started = datetime.now(UTC) - timedelta(minutes=5)
    (out / "sessions.json").write_text(json.dumps({"started": job_started.isoformat(timespec="seconds")}))
    old = (job_started - timedelta(hours=1)).timestamp()
    os.utime(junit_dir / "chaos-pgmq-py.xml", (old, old))  # left by an earlier main job
    argv = ["--junit", str(junit_dir), "--out", str(out), run_history.RECORD_FLAG, "--history-db", str(db)]
    build.main(argv, rows=rows)
    build.main(argv, rows=rows)  # the same job's report again, by hand: replaces its record

    history = opened(db)
    try:
        runs = history.cell_runs(WAVE, 10)
        assert len(runs) == 1 and runs[0].run.started == job_started.replace(microsecond=0)
        assert history.cell_runs(PARTITION, 10) == [], "an earlier run's cell, recorded by that run"
    finally:
        history.close()


def garbage(path: Path) -> None:
    path.write_bytes(b"not a database\x00" * 200)


def another_version(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE gauntlet_meta (key TEXT PRIMARY KEY, value TEXT);"
            "INSERT INTO gauntlet_meta VALUES ('schema_version', '0');"
        )
    conn.close()


@pytest.mark.parametrize("damage", [garbage, another_version])
def test_an_unusable_database_is_moved_aside_and_the_report_still_builds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[Path], None]
) -> None:
    db = tmp_path / "history.sqlite"
    damage(db)
    before = db.read_bytes()
    assert report(tmp_path, run_history.RECORD_FLAG, db=db) == 0
    said = capsys.readouterr().out
    assert "cannot be used" in said and "moved it aside" in said and "started a fresh one" in said, said
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("history.sqlite.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == before, "the evidence is kept, as it was"
    assert (tmp_path / "out" / "index.html").exists()
    history = opened(db)
    try:
        assert len(history.cell_runs(WAVE, 10)) == 1
    finally:
        history.close()

    db.unlink()
    damage(db)  # reading changes nothing: a message, no strips
    before = db.read_bytes()
    assert report(tmp_path, "--show-history", db=db) == 0
    assert "not read" in capsys.readouterr().out and db.read_bytes() == before
    assert run_history.main(["e2e/test_basic_wave", "pgmq-py", "--history-db", str(db)]) == 1


def test_an_unreachable_postgresql_is_a_message_not_a_failed_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(run_history.RESULTS_DSN_ENV, "host=127.0.0.1 port=1 dbname=nowhere connect_timeout=2")
    assert report(tmp_path, run_history.RECORD_FLAG) == 0
    said = capsys.readouterr().out
    assert "cannot be used" in said and "not recorded" in said and "dbname=nowhere" in said, said


def test_the_postgresql_of_gauntlet_results_dsn_holds_the_same_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(run_history.RESULTS_DSN_ENV, fresh_db)
    report(tmp_path, run_history.RECORD_FLAG)
    report(tmp_path, run_history.RECORD_FLAG, wave_fails=True)
    assert "recorded 3 cells" in capsys.readouterr().out
    assert not run_history.DEFAULT_DB.exists()
    assert [r["verdict"] for r in matrix_cell(tmp_path, WAVE)["history"]["last"]] == ["pass", "fail"]
    history = opened(fresh_db)
    try:
        runs = history.cell_runs(WAVE, 10)
        assert history.engine.dialect.name == "postgresql"
        assert [r.record.verdict for r in runs] == ["pass", "fail"] and runs[1].record.figures["lost"] == 3
        assert runs[0].run.started.tzinfo is not None
    finally:
        history.close()
    assert run_history.main(["e2e/test_basic_wave", "pgmq-py"]) == 0
    assert "2 runs" in capsys.readouterr().out


def test_flake_rate() -> None:
    rate = run_history.flake_rate
    assert rate([]) is None
    assert rate(["pass"]) == 0 and rate(["flaky"]) == 1
    assert rate(["pass"] * 10) == 0 and rate(["known"] * 10) == 0
    assert rate(["pass", "pass", "fail", "fail"]) == 0.25, "a change for good counts once"
    assert rate(["pass", "fail", "pass", "pass"]) == 0.5
    assert rate(["pass", "fail"] * 5) == 0.9
    assert rate(["pass", "flaky", "pass"]) == 2 / 3
