"""Cases -> the scenario × SDK matrix (plain data: the shape of matrix.json)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from gauntlet.manifests import Manifest
from reports.junit import Case

SUITES = ("sql", "e2e", "interop", "chaos", "bench")
SEVERITY = {"error": 5, "fail": 4, "flaky": 3, "pass": 2, "known": 1, "n/a": 0}


@dataclass
class Column:
    name: str
    system: str
    language: str
    version: str


@dataclass
class Row:
    id: str
    suite: str
    title: str


@dataclass
class Cell:
    row: str
    sdk: str
    verdict: str
    duration_s: float | None
    message: str
    properties: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    expected: str = ""  # the known finding's reason, for `known` cells
    changed_from: str = ""  # verdict in the baseline run, when it differs


def columns_for(manifests: list[Manifest], cases: list[Case]) -> list[Column]:
    """One column per SDK; a system with SQL results but no SDK yet gets a column of its own."""
    columns = [Column(m.name, m.system, m.language, m.version) for m in manifests]
    covered = {m.system for m in manifests}
    for system in sorted({c.properties.get("system", "") for c in cases if c.properties.get("suite") == "sql"}):
        if system and system not in covered:
            columns.append(Column(system, system, "sql", ""))
    return sorted(columns, key=lambda c: (c.system, c.language == "sql", c.name))


def _row_of(case: Case) -> Row | None:
    suite = case.properties.get("suite", "")
    if suite == "sql":
        name = case.suite.split(" / ")[-1]  # sql/<system>/<file>
        return Row(name, "sql", name.split("/", 1)[-1])
    if suite == "interop":
        worker = case.properties.get("worker_sdk", case.name)
        return Row(row_id(suite, case.name, worker), "interop", f"enqueued here, worked by {worker}")
    if suite in ("e2e", "chaos", "bench"):
        return Row(row_id(suite, case.name), suite, case.name.removeprefix("test_").replace("_", " "))
    return None


def row_id(suite: str, case_name: str, worker_sdk: str = "") -> str:
    """The matrix row of a non-SQL case, as expectations.toml names it."""
    return f"interop/worker={worker_sdk or case_name}" if suite == "interop" else f"{suite}/{case_name}"


def expected_failure(findings: list[Finding], row: str, sdk: str) -> bool:
    return any(f.verdict == "fail" and f.covers(row, sdk) for f in findings)


def _aggregate(row: str, sdk: str, cases: list[Case], log: str) -> Cell:
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
    return Cell(row, sdk, worst.verdict, round(sum(durations), 3) if durations else None, message, props, log)


def build(cases: list[Case], columns: list[Column], logs: dict[str, str]) -> tuple[list[Row], list[Cell]]:
    rows: dict[str, Row] = {}
    grouped: dict[tuple[str, str], list[Case]] = defaultdict(list)
    by_system: dict[str, list[str]] = defaultdict(list)
    for column in columns:
        by_system[column.system].append(column.name)
    for case in cases:
        row = _row_of(case)
        if row is None:
            continue
        rows.setdefault(row.id, row)
        if row.suite == "sql":
            for sdk in by_system.get(case.properties.get("system", ""), []):
                grouped[(row.id, sdk)].append(case)
        else:
            grouped[(row.id, case.properties.get("sdk", "?"))].append(case)
    cells = []
    for (row_id, sdk), group in grouped.items():
        suite = rows[row_id].suite
        log = logs.get(f"{suite}:{group[0].properties.get('system') if suite == 'sql' else sdk}", "")
        cells.append(_aggregate(row_id, sdk, group, log))
    order = {s: i for i, s in enumerate(SUITES)}
    return sorted(rows.values(), key=lambda r: (order.get(r.suite, 99), r.id)), cells


def wildcard(pattern: str, value: str) -> bool:
    """`*` and `?` are wildcards; everything else (row ids hold `[` `]`) is literal."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value) is not None


@dataclass
class Finding:
    rows: list[str]
    sdk: str
    verdict: str
    reason: str
    upstream: str = ""
    # Chaos outcomes hang on timing: under another schedule the same fault may miss the weak spot.
    # An intermittent finding that passes is shown as a pass, not as a stale expectation.
    intermittent: bool = False

    def matches(self, cell: Cell) -> bool:
        return self.covers(cell.row, cell.sdk)

    def covers(self, row: str, sdk: str) -> bool:
        return any(wildcard(pattern, row) for pattern in self.rows) and wildcard(self.sdk, sdk)


@dataclass
class Deviation:
    kind: str  # regression / stale / unexpected verdict
    row: str
    sdk: str
    verdict: str
    detail: str


def apply_expectations(cells: list[Cell], findings: list[Finding]) -> list[Deviation]:
    """Mark known findings; list every cell whose verdict differs from what is expected."""
    deviations = []
    for cell in cells:
        finding = next((f for f in findings if f.matches(cell)), None)
        if finding is None:
            if cell.verdict in ("fail", "error"):
                deviations.append(Deviation("regression", cell.row, cell.sdk, cell.verdict, cell.message[:300]))
            continue
        if cell.verdict == finding.verdict or (finding.intermittent and cell.verdict == "flaky"):
            cell.verdict, cell.expected = "known", finding.reason
        elif cell.verdict == "pass" and finding.intermittent:
            cell.expected = f"passed this time; known to fail intermittently: {finding.reason}"
        elif cell.verdict == "pass":
            deviations.append(
                Deviation(
                    "stale",
                    cell.row,
                    cell.sdk,
                    cell.verdict,
                    f"expected {finding.verdict} ({finding.reason[:100]}); now passes: update the expectations",
                )
            )
        elif cell.verdict != "n/a":
            deviations.append(
                Deviation(
                    "unexpected verdict",
                    cell.row,
                    cell.sdk,
                    cell.verdict,
                    f"expected {finding.verdict}: {cell.message[:200]}",
                )
            )
    return deviations


def apply_baseline(cells: list[Cell], baseline: dict[str, Any]) -> int:
    before = {(c["row"], c["sdk"]): c["verdict"] for c in baseline.get("cells", [])}
    changed = 0
    for cell in cells:
        old = before.get((cell.row, cell.sdk))
        if old is not None and old != cell.verdict:
            cell.changed_from = old
            changed += 1
    return changed


def as_json(run: dict[str, Any], columns: list[Column], rows: list[Row], cells: list[Cell]) -> dict[str, Any]:
    return {
        "run": run,
        "sdks": [asdict(c) for c in columns],
        "rows": [asdict(r) for r in rows],
        "cells": [asdict(c) for c in sorted(cells, key=lambda c: (c.row, c.sdk))],
    }
