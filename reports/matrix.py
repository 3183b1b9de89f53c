"""Cases and the catalog -> the scenario × SDK matrix (plain data: the shape of matrix.json).

Nothing goes missing: a case no column can hold is an *other result*; a cell that a session
of this run should have made and did not is an error cell; a catalog entry that could not be
used is an error column.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from gauntlet.catalog import Catalog, Finding, Setting, System, wildcard
from gauntlet.ids import CellId, RowId, SessionId
from reports import scenarios
from reports.junit import Case

# The harness's own rows come first and have suites of their own, so no finding's pattern
# (e2e/*, chaos/*) can match them: a broken catalog entry, a session whose cells could not be
# listed, a session's JUnit file that could not be read.
SUITES = ("catalog", "collect", "junit", "sql", "e2e", "interop", "chaos", "bench")
TITLES = {
    "catalog": "the column's system.toml and manifest.toml",
    "collect": "listing the cells the session should make",
    "junit": "the session's JUnit file",
    "interop": "jobs enqueued by the column's SDK, worked by the row's",
}
SEVERITY = {"error": 5, "fail": 4, "flaky": 3, "pass": 2, "known": 1, "n/a": 0}
NOT_RUN = "not run"
CATALOG_ROW = RowId("catalog", "load")


@dataclass
class Column:
    name: str
    system: str
    language: str
    version: str
    tuning: list[Setting] = field(default_factory=list)
    error: str = ""  # a catalog entry that could not be used: the column is an error column


@dataclass
class Cell:
    id: CellId
    verdict: str
    duration_s: float | None
    message: str
    properties: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    finding: str = ""  # key of the finding that concerns this cell (see finding_key)
    changed_from: str = ""  # verdict in the baseline run, when it differs


@dataclass
class Other:
    """A result no column can hold: a foreign producer's case, or a file nobody can place."""

    file: str
    suite: str
    name: str
    verdict: str
    message: str
    duration_s: float | None


@dataclass
class Expected:
    """The rows a session should make, or why they could not be listed."""

    rows: list[RowId]
    error: str = ""


@dataclass
class Deviation:
    kind: str  # regression, stale, unexpected verdict, missing, broken catalog entry, unplaced, orphaned finding
    row: str
    sdk: str
    verdict: str
    detail: str

    @classmethod
    def of(cls, kind: str, cell: Cell, detail: str) -> Deviation:
        return cls(kind, str(cell.id.row), cell.id.sdk, cell.verdict, detail[:300])


def columns_for(loaded: Catalog) -> list[Column]:
    """One column per SDK and per broken entry; a system without SDKs has one for its SQL rows."""
    columns = [Column(s.name, s.system, s.language, s.version, list(s.tuning)) for s in loaded.sdks()]
    columns += [Column(s.name, s.name, "sql", "") for s in loaded.systems if not s.sdks]
    columns += [Column(b.sdk or b.system, b.system, "", "", error=b.message) for b in loaded.broken]
    return sorted(columns, key=lambda c: (c.system, c.language == "sql", c.name))


def sessions_of(columns: list[Column]) -> list[SessionId]:
    """The matrix sessions the valid columns can have: sql per system, e2e (direct and through
    PgBouncer) and chaos per SDK."""
    valid = [c for c in columns if not c.error]
    systems = sorted({c.system for c in valid})
    sdks = [c.name for c in valid if c.language != "sql"]
    return [SessionId("sql", s) for s in systems] + [
        SessionId(k, s) for k in ("e2e", "pgbouncer", "chaos") for s in sdks
    ]


def columns_of(session: SessionId, columns: list[Column]) -> list[Column]:
    """The valid columns a session's cells go to: its SDK's, or every column of its system."""
    key = (lambda c: c.system) if session.kind == "sql" else (lambda c: c.name)
    return [c for c in columns if not c.error and key(c) == session.target]


def session_of(cell: CellId, column: Column) -> SessionId:
    """The session that makes a cell (its log is the cell's log); a junit/collect row names its kind."""
    row = cell.row
    if row.suite in ("junit", "collect"):
        return SessionId(row.name, column.system if row.name == "sql" else column.name)
    if row.suite == "bench":
        return SessionId("bench")
    return SessionId.making(row.suite, column.system if row.suite == "sql" else column.name, cell.topology)


def row_id(suite: str, case_name: str, worker_sdk: str = "") -> RowId:
    """The matrix row of a non-SQL case, as findings name it."""
    return RowId.interop(worker_sdk or case_name) if suite == "interop" else RowId(suite, case_name)


def row_of_node(kind: str, nodeid: str) -> RowId:
    """The row a collected pytest node id makes, as e2e/fixtures.py names its suite:
    `e2e/test_delivery.py::test_batch_sizes[100]` -> e2e/test_batch_sizes[100],
    `e2e/test_interop.py::test_interop[river-go]` -> interop/worker=river-go."""
    name = nodeid.rpartition("::")[2]
    if name.startswith("test_interop[") and name.endswith("]"):
        return RowId.interop(name.removeprefix("test_interop[")[:-1])
    return RowId(kind, name)


def _row_of(case: Case) -> RowId | None:
    suite = case.properties.get("suite", "")
    if suite == "sql":  # pgTAP suites are named sql/<system>/<file>
        return RowId("sql", case.suite.split(" / ")[-1].removeprefix("sql/"))
    if suite in ("e2e", "interop", "chaos", "bench"):
        return row_id(suite, case.name, case.properties.get("worker_sdk", ""))
    return None


def title_of(row: RowId) -> str:
    return describe(row).title


def describe(row: RowId) -> scenarios.Scenario:
    """The row's title (the catalog's titles.toml, else its name in words) and what it judges."""
    return scenarios.describe(row, TITLES.get(row.suite) or row.name.removeprefix("test_").replace("_", " "))


def _cells_of(case: Case, columns: list[Column], by_file: dict[str, SessionId]) -> list[CellId]:
    """Where a case goes: its row in its session's columns; nowhere makes it an other result."""
    placed = _row_of(case)
    if case.unreadable:  # a session's file, when its name says whose
        session = by_file.get(case.file, SessionId(""))
        row, topology = RowId("junit", session.kind), session.topology
    elif placed is not None:
        key = "system" if placed.suite == "sql" else "sdk"
        topology = case.properties.get("topology") or SessionId.making(placed.suite, "").topology
        session, row = SessionId.making(placed.suite, case.properties.get(key, ""), topology), placed
    else:
        return []
    return [CellId(row, c.name, topology) for c in columns_of(session, columns)]


def _aggregate(cell: CellId, cases: list[Case], log: str) -> Cell:
    """Several cases in one cell (a pgTAP file's assertions): the worst verdict wins."""
    worst = max(cases, key=lambda c: SEVERITY[c.verdict])
    bad = [c for c in cases if c.verdict in ("fail", "error")]
    if len(cases) == 1:
        message = worst.message
    elif bad:
        message = f"{len(bad)} of {len(cases)} failing: " + "; ".join(f"{c.name}: {c.message}"[:160] for c in bad[:5])
    else:
        message = f"{sum(c.verdict == 'pass' for c in cases)} of {len(cases)} assertions pass"
    durations = [c.duration_s for c in cases if c.duration_s is not None]
    props = (
        dict(worst.properties)
        if len(cases) == 1
        else {
            "assertions": len(cases),
            **{k: v for k, v in worst.properties.items() if k in ("system", "suite", "file")},
        }
    )
    return Cell(cell, worst.verdict, round(sum(durations), 3) if durations else None, message, props, log)


def place(cases: list[Case], columns: list[Column], logs: dict[SessionId, str]) -> tuple[list[Cell], list[Other]]:
    """Every case into the cells it belongs to, or into the other results: none is dropped."""
    by_file = {s.junit_file: s for s in sessions_of(columns) if s.junit_file}
    by_name = {c.name: c for c in columns}
    grouped: dict[CellId, list[Case]] = defaultdict(list)
    other = []
    for case in cases:
        targets = _cells_of(case, columns, by_file)
        for target in targets:
            grouped[target].append(case)
        if not targets:
            other.append(Other(case.file, case.suite, case.name, case.verdict, case.message, case.duration_s))
    cells = [
        _aggregate(cell, group, logs.get(session_of(cell, by_name[cell.sdk]), "")) for cell, group in grouped.items()
    ]
    return cells, other


def missing_cells(
    expected: dict[SessionId, Expected], cells: list[Cell], columns: list[Column], logs: dict[SessionId, str]
) -> list[Cell]:
    """Each cell a session of this run should have made and did not: an error, "not run"."""
    have = {c.id for c in cells}
    out = []
    for session, rows in expected.items():
        log = logs.get(session, "")
        for column in columns_of(session, columns):
            if rows.error:
                cell = CellId(RowId("collect", session.kind), column.name, session.topology)
                out.append(Cell(cell, "error", None, f"could not list {session}'s cells: {rows.error}", log=log))
            for row in rows.rows:
                cell = CellId(row, column.name, session.topology)
                if cell not in have:
                    out.append(Cell(cell, "error", None, NOT_RUN, log=log))
    return out


def catalog_cells(columns: list[Column]) -> list[Cell]:
    """A broken catalog entry's column holds one error cell saying why."""
    return [Cell(CellId(CATALOG_ROW, c.name), "error", None, c.error) for c in columns if c.error]


def finding_key(finding: Finding) -> str:
    return f"{finding.system}/{finding.id}"


@dataclass
class Known:
    """The catalog's findings. A finding's sdk pattern applies within its own system only."""

    findings: list[Finding]
    system_of: dict[str, str]  # column (SDK) name -> its system

    @classmethod
    def of(cls, findings: list[Finding], columns: list[Column]) -> Known:
        return cls(findings, {c.name: c.system for c in columns})

    def in_scope(self, finding: Finding, sdk: str) -> bool:
        return finding.speaks_for(sdk, self.system_of.get(sdk, ""))

    def covers(self, finding: Finding, cell: CellId) -> bool:
        return finding.covers(str(cell.row), cell.sdk, self.system_of.get(cell.sdk, ""), cell.topology)

    def finding_for(self, cell: CellId) -> Finding | None:
        return next((f for f in self.findings if f.expects_verdict and self.covers(f, cell)), None)


def apply_findings(cells: list[Cell], known: Known) -> list[Deviation]:
    """Mark known findings; list every cell whose verdict differs from what is expected."""
    deviations = []
    for cell in cells:
        finding = known.finding_for(cell.id)
        if finding is None:
            if cell.verdict in ("fail", "error"):
                deviations.append(Deviation.of("regression", cell, cell.message))
            continue
        cell.finding = finding_key(finding)
        if cell.verdict == finding.verdict or (finding.intermittent and cell.verdict == "flaky"):
            cell.verdict = "known"
        elif cell.verdict == "pass" and not finding.intermittent:  # an intermittent one may pass: its rate says so
            detail = f"expected {finding.verdict} ({cell.finding}); now passes: update the finding"
            deviations.append(Deviation.of("stale", cell, detail))
        elif cell.verdict not in ("pass", "n/a"):
            detail = f"expected {finding.verdict} ({cell.finding}): {cell.message}"
            deviations.append(Deviation.of("unexpected verdict", cell, detail))
    return deviations


def orphaned(known: Known, cells: list[Cell]) -> list[Deviation]:
    """Findings that match no cell (a renamed row or SDK), judged only where the run had results
    for one of the finding's SDKs in one of its suites and topologies: a run of some sessions
    judges only those."""
    deviations = []
    for finding in known.findings:
        mine = [
            c
            for c in cells
            if known.in_scope(finding, c.id.sdk) and (not finding.topologies or c.id.topology in finding.topologies)
        ]
        if any(known.covers(finding, c.id) for c in mine):
            continue
        suites = {pattern.partition("/")[0] for pattern in finding.rows}
        if any(wildcard(suite, c.id.row.suite) for suite in suites for c in mine):
            detail = f"finding {finding_key(finding)} matches no cell of this run: update or remove it"
            deviations.append(Deviation("orphaned finding", ", ".join(finding.rows), finding.sdk, "", detail))
    return deviations


def unplaced(other: list[Other]) -> list[Deviation]:
    """A failing or unreadable result that no column holds is still a deviation."""
    return [
        Deviation("unplaced", o.name, o.file, o.verdict, o.message[:300])
        for o in other
        if o.verdict in ("fail", "error")
    ]


def apply_baseline(cells: list[Cell], baseline: dict[str, Any]) -> int:
    before = {(c["row"], c["sdk"], c.get("topology", "direct")): c["verdict"] for c in baseline.get("cells", [])}
    changed = 0
    for cell in cells:
        old = before.get((str(cell.id.row), cell.id.sdk, cell.id.topology))
        if old is not None and old != cell.verdict:
            cell.changed_from = old
            changed += 1
    return changed


def _cell_json(cell: Cell) -> dict[str, Any]:
    data = asdict(cell)
    del data["id"]
    row = cell.id.row
    return {
        "row": str(row),
        "suite": row.suite,
        "sdk": cell.id.sdk,
        "topology": cell.id.topology,
        "page": cell.id.page,
        "replay": replay(cell),
        **data,
    }


def replay(cell: Cell) -> str:
    """The one command that runs this cell again with its seed ("" for the harness's own rows)."""
    row, seed = cell.id.row, cell.properties.get("seed")
    if row.suite == "sql":
        return f'.venv/bin/nox -s "{SessionId("sql", str(cell.properties.get("system", "")))}"'
    if row.suite == "bench":
        return f".venv/bin/nox -s bench -- --sdk {cell.id.sdk}"
    if row.suite not in ("e2e", "interop", "chaos"):
        return ""
    test = f"test_interop[{row.name.removeprefix('worker=')}]" if row.suite == "interop" else row.name
    if not re.fullmatch(r"[\w.=\[\]-]+", test):  # a parameter -k cannot spell (or a shell would read): every case
        test = test.partition("[")[0]
    session = SessionId.making(row.suite, cell.id.sdk, cell.id.topology)
    seeded = f"--seed {seed} " if seed else ""
    return f'.venv/bin/nox -s "{session}" -- {seeded}-k "{test}"'


def as_json(
    run: dict[str, Any],
    systems: list[System],
    columns: list[Column],
    cells: list[Cell],
    other: list[Other],
    known: Known,
) -> dict[str, Any]:
    order = {s: i for i, s in enumerate(SUITES)}
    rows = sorted({c.id.row for c in cells}, key=lambda r: (order.get(r.suite, 99), r.name))
    cells = sorted(cells, key=lambda c: c.id)
    return {
        "run": run,
        "systems": [{"name": s.name, "contract": asdict(s.contract)} for s in systems],
        "sdks": [asdict(c) for c in columns],
        "rows": [{"id": str(r), "suite": r.suite, **asdict(describe(r))} for r in rows],
        "cells": [_cell_json(c) for c in cells],
        "other": [asdict(o) for o in other],
        "findings": [
            {
                **asdict(f),
                "key": finding_key(f),
                "cells": [str(c.id) for c in cells if c.finding == finding_key(f)],
            }
            for f in known.findings
        ],
    }
