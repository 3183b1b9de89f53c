"""The report session: a short pipeline of named steps over plain data.

catalog -> load (every reports/out/junit/*.xml) -> merge (merged.xml; counts in = counts out)
-> place (cases into cells, or into other results) -> findings (known cells, deviations) ->
missing (the cells this run's sessions should have made: "not run") -> orphaned findings ->
broken catalog entries -> baseline -> evidence (each cell's scenario file, gauntlet/evidence.py) -> render
(matrix.json, matrix.md, index.html) -> cell pages (cells/) -> screenshots (headless Chromium, when
installed: the dashboard and one chaos cell's page). Exits non-zero on any deviation: a verdict no
finding explains, a finding no cell matches, a cell that did not run, a result no column can hold.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from itertools import takewhile
from pathlib import Path
from typing import Any

from junitparser import Error, Failure, Skipped
from junitparser.xunit2 import FlakyFailure, JUnitXml, TestCase, TestSuite

from gauntlet import catalog, paths
from gauntlet.ids import RowId, SessionId
from reports import junit, matrix, pages, render, run_history

SQL_TESTS = paths.ROOT / "sql_tests"
COLLECT_BOUND_S = 120.0
COLLECTORS = 4  # collections run side by side; each is a short pytest process


class CollectError(Exception):
    """The rows a session should make could not be listed."""


RowSource = Callable[[SessionId], list[RowId]]


def merge(cases: list[junit.Case], out: Path) -> int:
    """One suite per (file, suite) so equal suite names from different files stay apart."""
    merged = JUnitXml(name="gauntlet")
    suites: dict[tuple[str, str], TestSuite] = {}
    for case in cases:
        key = (case.file, case.suite)
        if key not in suites:
            suites[key] = TestSuite(f"{case.file}:{case.suite}")
            merged.add_testsuite(suites[key])
        element = TestCase(case.name, classname=case.classname or case.suite, time=case.duration_s or 0)
        result = {"fail": Failure, "error": Error, "n/a": Skipped}.get(case.verdict)
        if result is not None:
            element.result = [result(message=case.message)]
        if case.verdict == "flaky":  # Surefire's convention: passed, with the earlier failure kept
            element.add_interim_result(FlakyFailure(message=case.message))
        for key_, value in case.properties.items():
            element.add_property(key_, str(value))
        suites[key].add_testcase(element)
    for suite in suites.values():
        suite.update_statistics()
    merged.update_statistics()
    out.parent.mkdir(parents=True, exist_ok=True)
    merged.write(str(out), pretty=True)
    return sum(len(list(s)) for s in suites.values())


def session_logs(out: Path, sessions: list[SessionId]) -> dict[SessionId, str]:
    """Each session's log (out/logs/<log_stem>.log) that exists, relative to `out`: what its cells link to."""
    logs = {}
    for session in [*sessions, SessionId("bench")]:
        path = out / "logs" / f"{session.log_stem}.log"
        if path.exists():
            logs[session] = str(path.relative_to(out))
    return logs


def sessions_in_run(candidates: list[SessionId], junit_dir: Path, sessions_json: Path) -> list[SessionId]:
    """The sessions that were part of this run: they wrote their JUnit file, or the main job
    lists them in sessions.json (a session that wrote nothing was still asked for)."""
    recorded = json.loads(sessions_json.read_text()) if sessions_json.exists() else {}
    listed = {str(s.get("session")) for s in recorded.get("sessions", [])} if isinstance(recorded, dict) else set()
    return [s for s in candidates if (s.junit_file and (junit_dir / s.junit_file).exists()) or s.nox_name in listed]


def earlier_files(junit_dir: Path, sessions_json: Path) -> tuple[str, list[str]]:
    """The JUnit files older than the main job recorded in sessions.json (its start, and the
    names): sessions it did not select left them from an earlier run, and the report merges
    them all, so the reader must be told. No record: nothing can be said."""
    try:
        started = datetime.fromisoformat(json.loads(sessions_json.read_text())["started"])
    except (OSError, ValueError, TypeError, KeyError):
        return "", []
    files = sorted(path.name for path in junit_dir.glob("*.xml") if path.stat().st_mtime < started.timestamp())
    return started.isoformat(timespec="seconds"), files


def collect_rows(session: SessionId) -> list[RowId]:
    """The rows a session should make: its system's pgTAP files, or its pytest catalog as
    collected for its SDK (no database needed)."""
    if session.kind == "sql":
        files = (SQL_TESTS / session.target).rglob("*.sql")
        return sorted(RowId("sql", f"{session.target}/{path.stem}") for path in files)
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    argv += [session.catalog, f"--sdk={session.target}"]
    try:
        run = subprocess.run(argv, cwd=paths.ROOT, capture_output=True, text=True, timeout=COLLECT_BOUND_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CollectError(f"pytest --collect-only took longer than {COLLECT_BOUND_S:.0f}s") from exc
    if run.returncode not in (0, 5):  # 5: nothing collected
        last = (run.stdout + run.stderr).strip().splitlines()[-1:] or [""]
        raise CollectError(
            f"pytest --collect-only {session.catalog} --sdk={session.target} exited {run.returncode}: {last[0]}"
        )
    nodes = takewhile(bool, run.stdout.splitlines())  # node ids, then a blank line and the summary
    return [matrix.row_of_node(session.catalog, node) for node in nodes if "::" in node]


def expected(sessions: list[SessionId], source: RowSource) -> dict[SessionId, matrix.Expected]:
    """Each session's rows. Sessions of one catalog and target (an SDK's e2e and pgbouncer
    sessions: a topology changes what a case does, not which cases there are) share one
    collection."""

    def one(session: SessionId) -> matrix.Expected:
        try:
            return matrix.Expected(source(session))
        except CollectError as exc:
            return matrix.Expected([], str(exc))

    firsts = {(s.catalog, s.target): s for s in reversed(sessions)}
    with ThreadPoolExecutor(max_workers=COLLECTORS) as pool:
        collected = dict(zip(firsts, pool.map(one, firsts.values()), strict=True))
    return {s: collected[(s.catalog, s.target)] for s in sessions}


def run_facts(seed: str | None) -> dict[str, Any]:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True, text=True).stdout.strip()
    pg = subprocess.run(["/usr/lib/postgresql/15/bin/postgres", "--version"], capture_output=True, text=True).stdout
    started = datetime.now(UTC)
    return {
        "id": started.strftime("%Y%m%dT%H%M%SZ"),
        "started": started.isoformat(timespec="seconds"),
        "git_sha": sha,
        "postgres_version": pg.split("(PostgreSQL)")[-1].split()[0] if pg else "",
        "seed": seed or "",
    }


def screenshot(html_path: Path) -> Path | None:
    """A picture beside the page (index.html -> index.png), by Debian's headless Chromium; None
    when it is not installed."""
    browser = shutil.which("chromium")
    if browser is None:
        return None
    png = html_path.with_suffix(".png")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={html_path.parent / '.chromium'}",
            "--window-size=1600,1400",
            f"--screenshot={png}",
            html_path.as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    shutil.rmtree(html_path.parent / ".chromium", ignore_errors=True)
    return png if png.exists() else None


def main(argv: list[str] | None = None, rows: RowSource = collect_rows) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--junit", type=Path, default=paths.JUNIT)
    parser.add_argument("--out", type=Path, default=paths.OUT)
    parser.add_argument("--baseline", type=Path, help="an earlier matrix.json: mark the cells that changed")
    parser.add_argument(
        run_history.RECORD_FLAG, action="store_true", help="record this run in the run history (the main job does)"
    )
    parser.add_argument("--show-history", action="store_true", help="show the recorded runs' strips, record nothing")
    parser.add_argument("--history-db", help="the run history's path, URL or DSN (see reports/run_history.py)")
    args = parser.parse_args(argv)

    loaded = catalog.load()
    cases = junit.load_all(args.junit)
    merged_count = merge(cases, args.out / "merged.xml")
    columns = matrix.columns_for(loaded)
    sessions = matrix.sessions_of(columns)
    logs = session_logs(args.out, sessions)
    cells, other = matrix.place(cases, columns, logs)
    known = matrix.Known.of(loaded.findings(), columns)
    deviations = matrix.apply_findings(cells, known)
    ran = sessions_in_run(sessions, args.junit, args.out / "sessions.json")
    missing = matrix.missing_cells(expected(ran, rows), cells, columns, logs)
    deviations += [matrix.Deviation.of("missing", c, c.message) for c in missing]
    cells += missing
    deviations += matrix.orphaned(known, cells)
    broken = matrix.catalog_cells(columns)
    deviations += [matrix.Deviation.of("broken catalog entry", c, c.message) for c in broken]
    cells += broken
    deviations += matrix.unplaced(other)
    changed = matrix.apply_baseline(cells, json.loads(args.baseline.read_text())) if args.baseline else 0

    seeds = sorted({c.properties.get("seed", "") for c in cases if c.properties.get("seed")})
    facts = run_facts(",".join(seeds))
    job_started, earlier = earlier_files(args.junit, args.out / "sessions.json")
    if earlier:
        facts["earlier_junit"] = {"job_started": job_started, "files": earlier}
    data = matrix.as_json(facts, loaded.systems, columns, cells, other, known)
    recent = run_history.report_step(
        record=args.record_history,
        show=args.show_history,
        where=args.history_db,
        run=run_history.run_record(facts, job_started),
        cells=cells,
        carried_cells=run_history.carried(cases, earlier, cells, columns),
    )
    run_history.annotate(data["cells"], recent)
    with_evidence = pages.attach_evidence(args.out, data["cells"])
    (args.out / "matrix.json").write_text(json.dumps(data, indent=2))
    dev_data = [asdict(d) for d in deviations]
    (args.out / "matrix.md").write_text(render.markdown(data, dev_data))
    bench_path = args.out / "bench.json"
    bench = json.loads(bench_path.read_text()) if bench_path.exists() else None
    html_path = args.out / "index.html"
    html_path.write_text(render.dashboard(data, dev_data, bench))
    if bench:
        (args.out / "bench.html").write_text(render.bench_page(bench))
    # Chromium takes its pictures while the cell pages are written (each ~15 s on a big matrix).
    with ThreadPoolExecutor(max_workers=2) as cameras:
        index_png = cameras.submit(screenshot, html_path)
        written, page_problems = pages.write_all(args.out, data)
        shown = pages.showcase(data["cells"])
        cell_shot = cameras.submit(screenshot, args.out / shown["page"]) if shown else None
        png, cell_png = index_png.result(), cell_shot.result() if cell_shot else None

    files = len(list(args.junit.glob("*.xml")))
    print(f"merged {merged_count} test cases from {files} files into {args.out / 'merged.xml'}")
    if earlier:
        print(
            f"merged {len(earlier)} of them from an earlier run (older than this job's start, {job_started}): "
            f"{', '.join(earlier)}"
        )
    for d in deviations:
        print(f"deviation ({d.kind}): {d.row} × {d.sdk} is {d.verdict or '-'} — {d.detail}")
    if changed:
        print(f"{changed} cells changed since the baseline")
    print(f"dashboard: {html_path}" + (f" (screenshot {png})" if png else ""))
    print(f"cell pages: {written} under {args.out / 'cells'}, {with_evidence} with their scenario's evidence")
    for problem in page_problems:
        print(f"page not made (a harness bug; the cell's verdict stands): {problem}")
    if cell_png:
        print(f"a chaos cell's page: {cell_png}")
    print(f"cells: {render.summary_line(render.totals(data)[2])}; {len(deviations)} deviation(s)")
    return 1 if deviations else 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
