"""The report: counts in = counts out over real producers' JUnit, findings from the catalog,
nothing missing (not-run cells, unreadable files, foreign suites, broken manifests, orphaned
findings), flaky cells, baselines, the dashboard in headless Chromium, and the CI workflow."""

from __future__ import annotations

import dataclasses
import html
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gauntlet import paths, pgtap
from gauntlet.catalog import Finding
from gauntlet.ids import CellId, RowId, SessionId
from gauntlet.supervise import Supervisor
from reports import build, junit, matrix, render

PYTEST_SAMPLE = """
import os, pytest
def test_pass(record_property):
    record_property("suite", "e2e"); record_property("sdk", "pgmq-py"); record_property("system", "pgmq")
def test_fail(record_property):
    record_property("suite", "e2e"); record_property("sdk", "pgmq-py"); record_property("system", "pgmq")
    assert False, "lost 3"
@pytest.mark.skip(reason="not applicable: no priority")
def test_skip(): pass
@pytest.fixture
def broken(): raise RuntimeError("driver unusable")
def test_error(broken): pass
def test_flaky(record_property, tmp_path_factory):
    record_property("suite", "e2e"); record_property("sdk", "pgmq-py"); record_property("system", "pgmq")
    marker = os.environ["FLAKY_MARKER"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        assert False, "first run fails"
def test_migrate_twice(record_property):  # fails as a recorded finding (the test's catalog): never re-run
    record_property("suite", "e2e"); record_property("sdk", "pgmq-py"); record_property("system", "pgmq")
    marker = os.environ["FLAKY_MARKER"] + ".known"
    if not os.path.exists(marker):
        open(marker, "w").close()
        assert False, "first run fails"
"""

GO_SAMPLE = """package sample
import "testing"
func TestOK(t *testing.T) {}
func TestBad(t *testing.T) { t.Fatal("boom") }
func TestSkip(t *testing.T) { t.Skip("not here") }
func TestGroup(t *testing.T) { t.Run("inner", func(t *testing.T) {}) }
"""

NODE_SAMPLE = """import test from "node:test";
import assert from "node:assert";
test("ok", () => {});
test("bad", () => { assert.equal(1, 2); });
test("skipped", { skip: "not here" }, () => {});
test.describe("group", () => { test("inner", () => {}); });
"""

PG_PROVE_SAMPLE = {
    "good.sql": "BEGIN; SELECT plan(3); SELECT ok(true, 'a'); SELECT skip('why', 1); SELECT is(1, 2, 'b'); ROLLBACK;",
    "dies.sql": "BEGIN; SELECT plan(2); SELECT ok(true, 'first'); SELECT nope(); ROLLBACK;",
}


def _pytest_junit(folder: Path, name: str, marker: Path) -> Path:
    (folder / f"src_{name}").mkdir()
    (folder / f"src_{name}" / "test_sample.py").write_text(PYTEST_SAMPLE)
    out = folder / f"{name}.xml"
    env = {**os.environ, "FLAKY_MARKER": str(marker), "PYTHONPATH": str(paths.ROOT)}
    env.pop("GAUNTLET_EVENTS", None)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "gauntlet.pytest_plugin",
            "--rerun-failures",
            "-o",
            "junit_family=xunit1",
            f"--junitxml={out}",
            str(folder / f"src_{name}"),
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        check=False,
    )
    return out


def _go_junit(folder: Path) -> Path:
    src = folder / "gosrc"
    src.mkdir()
    (src / "go.mod").write_text("module sample\n\ngo 1.24\n")
    (src / "sample_test.go").write_text(GO_SAMPLE)
    raw = subprocess.run(["go", "test", "-v", "./..."], cwd=src, capture_output=True, text=True, check=False).stdout
    out = folder / "go.xml"
    converted = subprocess.run(
        [str(paths.TOOLS_BIN / "go-junit-report")], input=raw, capture_output=True, text=True, check=True
    )
    out.write_text(converted.stdout)
    return out


def _node_junit(folder: Path) -> Path:
    (folder / "sample.test.mjs").write_text(NODE_SAMPLE)
    run = subprocess.run(
        ["node", "--test", "--test-reporter=junit", "sample.test.mjs"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    out = folder / "node.xml"
    out.write_text(run.stdout)
    return out


def _pg_prove_junit(folder: Path, dsn: str) -> Path:
    """pg_prove's own JUnit, as the formatter writes it (before gauntlet.pgtap normalises it)."""
    suites = folder / "pgtap"
    suites.mkdir()
    for name, text in PG_PROVE_SAMPLE.items():
        (suites / name).write_text(text)
    supervisor = Supervisor(log_dir=folder / "logs")  # its log stays out of reports/out
    try:
        xml, _stderr = pgtap.prove(suites, dsn, supervisor, "pg_prove-report-test")
    finally:
        supervisor.close()
    out = folder / "pg_prove.xml"
    out.write_text(xml)
    return out


SYSTEM_TOML = """
[installer]
argv = ["true"]
[contract]
delivery = "at-least-once"
delivery_source = "the docs"
recovery = "visibility timeout"
recovery_source = "the source"
[stats]
sql = "SELECT 0"
"""

MANIFEST_TOML = """
language = "python"
version = "1.0"
driver = ["{python}", "driver.py"]
[[tuning]]
name = "poll_interval"
default = "1 s"
value = "0.1 s"
why = "scenarios wait in tenths of a second"
source = "docs/config.md:12"
"""

FINDING_TOML = """
[[finding]]
id = "{name}"
kind = "{kind}"
sdk = "{sdk}"
version = "1.0"
rows = [{rows}]
verdict = "fail"
summary = "summary of {name}"
evidence = ["src/queue.py:42", "upstream#7"]
workaround = "set poll_interval"
reproduce = "nox -s 'e2e(sdk=\\"{sdk}\\")' -- -k {name}"
rate = "{rate}"
"""


def finding(name: str, rows: str, sdk: str = "pgmq-py", kind: str = "bug", rate: str = "") -> str:
    return FINDING_TOML.format(name=name, rows=rows, sdk=sdk, kind=kind, rate=rate)


def write_adapters(root: Path, findings: str = "") -> Path:
    """A scratch adapters tree: system `pgmq` (pgmq-py, pgmq-go and these findings), system `other` (other-py)."""
    for system, names in (("pgmq", ("pgmq-py", "pgmq-go")), ("other", ("other-py",))):
        (root / system).mkdir(parents=True, exist_ok=True)
        (root / system / "system.toml").write_text(SYSTEM_TOML)
        for name in names:
            (root / system / name).mkdir(exist_ok=True)
            (root / system / name / "manifest.toml").write_text(MANIFEST_TOML)
    (root / "pgmq" / "findings.toml").write_text(findings)
    return root


@pytest.fixture
def adapters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The catalog every report in a test reads (catalog.load honours GAUNTLET_ADAPTERS); no screenshots."""
    root = write_adapters(tmp_path / "adapters")
    monkeypatch.setenv("GAUNTLET_ADAPTERS", str(root))
    monkeypatch.setattr(build, "screenshot", lambda _html: None)
    return root


def case_xml(name: str, sdk: str = "pgmq-py", suite: str = "e2e", result: str = "", **props: str) -> str:
    props = {"suite": suite, "sdk": sdk, "system": "pgmq", "topology": "direct", **props}
    listed = "".join(f'<property name="{k}" value="{v}"/>' for k, v in props.items())
    return f'<testcase name="{name}"><properties>{listed}</properties>{result}</testcase>'


def junit_file(*cases: str) -> str:
    return f'<testsuites><testsuite name="pytest">{"".join(cases)}</testsuite></testsuites>'


ROWS = {
    SessionId("e2e", "pgmq-py"): [RowId("e2e", "test_basic_wave"), RowId("e2e", "test_fifo_ordering")],
    SessionId("e2e", "pgmq-go"): [RowId("e2e", "test_basic_wave"), RowId.interop("pgmq-py")],
    SessionId("chaos", "pgmq-py"): [RowId("chaos", "test_network_fault[partition]")],
}


def fake_rows(session: SessionId) -> list[RowId]:
    return ROWS.get(session, [])


@dataclass
class Report:
    code: int
    data: dict[str, Any]
    md: str
    html: str
    out: Path

    def cell(self, row: str, sdk: str) -> dict[str, Any]:
        return next(c for c in self.data["cells"] if c["row"] == row and c["sdk"] == sdk)


def report(
    tmp_path: Path, files: dict[str, str], rows: build.RowSource = fake_rows, sessions: tuple[str, ...] = ()
) -> Report:
    """Run the report over these JUnit files (and this sessions.json) in tmp dirs."""
    inputs, out = tmp_path / "junit", tmp_path / "out"
    inputs.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    for name, text in files.items():
        (inputs / name).write_text(text)
    if sessions:
        recorded = {"sessions": [{"session": s, "exit_code": 1} for s in sessions]}
        (out / "sessions.json").write_text(json.dumps(recorded))
    code = build.main(["--junit", str(inputs), "--out", str(out)], rows=rows)
    data = json.loads((out / "matrix.json").read_text())
    return Report(code, data, (out / "matrix.md").read_text(), (out / "index.html").read_text(), out)


def test_counts_in_equal_counts_out_over_real_producers(tmp_path: Path, pgtap_dsn: str, adapters: Path) -> None:
    (adapters / "pgmq" / "findings.toml").write_text(finding("migrate", '"e2e/test_migrate_twice"', sdk="pgmq-*"))
    inputs = tmp_path / "junit"
    inputs.mkdir()
    produced = [
        _pytest_junit(tmp_path, "pytest-a", tmp_path / "flaky-a"),
        _pytest_junit(tmp_path, "pytest-b", tmp_path / "flaky-b"),  # same suite name "pytest": kept apart
        _go_junit(tmp_path),
        _node_junit(tmp_path),
        _pg_prove_junit(tmp_path, pgtap_dsn),
    ]
    expected = 0
    for path in produced:
        counts = junit.count_elements(path)
        assert counts["testcases"] > 0, f"{path.name} produced no test cases"
        expected += counts["testcases"] - counts["synthetic"] + counts["suite_errors"]
        shutil.copy(path, inputs / path.name)
    out = tmp_path / "out"
    out.mkdir()
    build.main(["--junit", str(inputs), "--out", str(out)])
    merged = ET.parse(out / "merged.xml").getroot()
    assert len(list(merged.iter("testcase"))) == expected == len(junit.load_all(inputs))
    suites = [s.get("name") for s in merged.iter("testsuite")]
    assert "pytest-a.xml:pytest" in suites and "pytest-b.xml:pytest" in suites, suites

    cases = {(c.file, c.name): c for c in junit.load_all(inputs)}
    assert cases[("pytest-a.xml", "test_flaky")].verdict == "flaky", "a pass after a failure must be flaky"
    assert "first run fails" in cases[("pytest-a.xml", "test_flaky")].properties["flaky"], "says how it failed"
    assert cases[("pytest-a.xml", "test_migrate_twice")].verdict == "fail", "a known finding's failure is not re-run"
    assert cases[("pytest-a.xml", "test_skip")].message == "not applicable: no priority"
    assert cases[("pytest-a.xml", "test_error")].verdict == "error"
    assert cases[("node.xml", "ok")].suite == "node", "node's bare test cases get their file's suite"
    assert cases[("node.xml", "inner")].suite == "group"
    assert cases[("go.xml", "TestBad")].verdict == "fail"
    assert any(c.verdict == "error" and "suite error" in c.name for c in cases.values() if c.file == "pg_prove.xml")

    data = json.loads((out / "matrix.json").read_text())
    in_cells = sum(c["properties"].get("assertions", 1) for c in data["cells"])
    assert in_cells + len(data["other"]) == expected, "every case is in a cell or among the other results"
    assert {o["file"] for o in data["other"]} >= {"go.xml", "node.xml", "pg_prove.xml"}


def test_a_partial_junit_file_leaves_not_run_errors_and_fails_the_report(tmp_path: Path, adapters: Path) -> None:
    """An interrupted session: the cells it never reached are errors, "not run", with its log."""
    logs = tmp_path / "out" / "logs"
    logs.mkdir(parents=True)
    (logs / f"{SessionId('e2e', 'pgmq-py').log_stem}.log").write_text("interrupted\n")
    got = report(
        tmp_path,
        {"e2e-pgmq-py.xml": junit_file(case_xml("test_basic_wave"))},
        sessions=("e2e(sdk='pgmq-py')", "chaos(sdk='pgmq-py')", "e2e(sdk='pgmq-go')"),
    )
    assert got.code == 1
    assert got.cell("e2e/test_basic_wave", "pgmq-py")["verdict"] == "pass"
    missing = got.cell("e2e/test_fifo_ordering", "pgmq-py")
    assert (missing["verdict"], missing["message"]) == ("error", "not run")
    assert missing["log"] == "logs/session-e2e-pgmq-py.log"
    chaos = got.cell("chaos/test_network_fault[partition]", "pgmq-py")  # selected, wrote nothing
    assert (chaos["verdict"], chaos["topology"]) == ("error", "toxiproxy")
    assert got.cell("interop/worker=pgmq-py", "pgmq-go")["message"] == "not run"
    assert not [c for c in got.data["cells"] if c["sdk"] == "other-py"], "nobody asked for other-py's sessions"
    assert "not run" in got.md and "not run" in got.html


def test_a_report_over_an_earlier_runs_junit_files_says_so(tmp_path: Path, adapters: Path) -> None:
    """`run --only pgmq-py` reruns one SDK; the other files are an earlier run's and the report
    names them (console, matrix.json, matrix.md, dashboard); files this job wrote are not named."""
    inputs = tmp_path / "junit"
    inputs.mkdir()
    old = inputs / "e2e-pgmq-go.xml"
    old.write_text(junit_file(case_xml("test_basic_wave")))
    os.utime(old, (time.time() - 3600,) * 2)
    started = datetime.now(UTC) - timedelta(minutes=5)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sessions.json").write_text(json.dumps({"started": started.isoformat(), "sessions": []}))
    got = report(tmp_path, {"e2e-pgmq-py.xml": junit_file(case_xml("test_basic_wave"))})
    assert got.data["run"]["earlier_junit"]["files"] == ["e2e-pgmq-go.xml"]
    assert "e2e-pgmq-go.xml" in got.md and "from an earlier run" in got.html
    assert "e2e-pgmq-py.xml" not in got.data["run"]["earlier_junit"]["files"]


def test_a_catalog_that_cannot_be_collected_is_an_error_cell(tmp_path: Path, adapters: Path) -> None:
    def failing(session: SessionId) -> list[RowId]:
        raise build.CollectError("conftest exploded")

    got = report(tmp_path, {"e2e-pgmq-py.xml": junit_file(case_xml("test_basic_wave"))}, rows=failing)
    assert got.code == 1
    cell = got.cell("collect/e2e", "pgmq-py")
    assert cell["verdict"] == "error" and "conftest exploded" in cell["message"]


def test_a_malformed_junit_file_is_an_error_cell_everywhere(tmp_path: Path, adapters: Path) -> None:
    got = report(
        tmp_path,
        {
            "e2e-pgmq-go.xml": "<testsuites><testsuite><testcase name='x'",
            "mystery.xml": "<testsuites><testsuite",  # no name to place it by: an other result
            "e2e-pgmq-py.xml": junit_file(case_xml("test_basic_wave"), case_xml("test_fifo_ordering")),
        },
    )
    assert got.code == 1
    cell = got.cell("junit/e2e", "pgmq-go")
    assert cell["verdict"] == "error" and "e2e-pgmq-go.xml is unreadable JUnit" in cell["message"]
    assert got.cell("e2e/test_basic_wave", "pgmq-go")["message"] == "not run", "its file exists: the session ran"
    assert [(o["file"], o["verdict"]) for o in got.data["other"]] == [("mystery.xml", "error")]
    assert "`junit/e2e`" in got.md and "e2e-pgmq-go.xml is unreadable JUnit" in got.md
    assert "junit/e2e" in got.html and "mystery.xml" in got.html
    assert render.totals(got.data)[2]["error"] == 4  # the file's cell, two not-run cells, the mystery file
    merged = ET.parse(got.out / "merged.xml").getroot()
    assert len(list(merged.iter("testcase"))) == 4


def test_foreign_suites_are_listed_under_other_results(tmp_path: Path, adapters: Path) -> None:
    foreign = '<testsuite name="vendor"><testcase name="it works"/><testcase name="it skips"><skipped/></testcase>'
    foreign += "</testsuite>"
    got = report(tmp_path, {"vendor.xml": foreign, "e2e-x.xml": junit_file(case_xml("test_a", sdk="raw-sql"))})
    assert got.code == 0, "passing results no column holds are shown, not judged"
    assert [(o["name"], o["verdict"]) for o in got.data["other"]] == [
        ("test_a", "pass"),  # an SDK the catalog does not have
        ("it works", "pass"),
        ("it skips", "n/a"),
    ]
    assert "## Other results" in got.md and "`it works`" in got.md
    assert "Other results" in got.html and "it skips" in got.html

    failing = '<testsuite name="vendor"><testcase name="it breaks"><failure message="no"/></testcase></testsuite>'
    assert report(tmp_path, {"vendor.xml": failing}).code == 1, "a failure nobody can place is still a deviation"


def test_a_broken_manifest_makes_an_error_column_and_the_rest_renders(tmp_path: Path, adapters: Path) -> None:
    (adapters / "pgmq" / "pgmq-rs").mkdir()
    (adapters / "pgmq" / "pgmq-rs" / "manifest.toml").write_text('language = "cobol"\nversion = "1"\n')
    got = report(tmp_path, {"e2e-pgmq-py.xml": junit_file(case_xml("test_basic_wave"), case_xml("test_fifo_ordering"))})
    assert got.code == 1
    column = next(s for s in got.data["sdks"] if s["name"] == "pgmq-rs")
    assert "cobol" in column["error"]
    cell = got.cell("catalog/load", "pgmq-rs")
    assert cell["verdict"] == "error" and "cobol" in cell["message"]
    assert [c["row"] for c in got.data["cells"] if c["sdk"] == "pgmq-rs"] == ["catalog/load"]
    assert got.cell("e2e/test_basic_wave", "pgmq-py")["verdict"] == "pass"
    assert "⚠ broken" in got.html and "catalog/load" in got.md


def test_an_orphaned_finding_fails_the_report_only_where_its_sdk_ran(tmp_path: Path, adapters: Path) -> None:
    (adapters / "pgmq" / "findings.toml").write_text(
        finding("renamed", '"e2e/test_old_name"') + finding("elsewhere", '"e2e/test_old_name"', sdk="pgmq-go")
    )
    got = report(tmp_path, {"e2e-pgmq-py.xml": junit_file(case_xml("test_basic_wave"), case_xml("test_fifo_ordering"))})
    assert got.code == 1
    orphaned = [line for line in got.md.splitlines() if "orphaned finding" in line]
    assert len(orphaned) == 1 and "pgmq/renamed" in orphaned[0], "pgmq-go had no results: its finding is not judged"


def test_findings_show_their_kind_rate_and_fields_and_tuning_and_contracts_show(tmp_path: Path, adapters: Path) -> None:
    (adapters / "pgmq" / "findings.toml").write_text(
        finding("fifo", '"e2e/test_fifo_ordering"', kind="documented-limit")
        + finding("defaults", '"e2e/test_basic_wave"', kind="default-hazard")
        + finding("wave", '"e2e/test_basic_wave"', kind="bug", rate="3/5 runs")
        + finding("everywhere", '"e2e/test_basic_wave"', sdk="*", kind="documented-limit")
    )
    inversion = '<failure message="order_inversions 3"/>'
    got = report(
        tmp_path,
        {
            "e2e-pgmq-py.xml": junit_file(
                case_xml("test_basic_wave"), case_xml("test_fifo_ordering", result=inversion)
            ),
            "e2e-other-py.xml": junit_file(case_xml("test_basic_wave", sdk="other-py", system="other")),
        },
    )
    assert got.code == 0, got.md
    fifo = got.cell("e2e/test_fifo_ordering", "pgmq-py")
    assert (fifo["verdict"], fifo["finding"]) == ("known", "pgmq/fifo")
    assert "[◆ limit](#finding-pgmq-fifo)" in got.md
    assert got.cell("e2e/test_basic_wave", "pgmq-py")["finding"] == "pgmq/wave", "an intermittent finding passed"
    assert got.cell("e2e/test_basic_wave", "other-py")["finding"] == "", "`*` stays within its system"
    assert "bug 3/5 runs" in got.md and "bug 3/5 runs" in got.html
    for text in ("summary of fifo", "src/queue.py:42", "set poll_interval", "-- -k fifo"):
        assert text in got.md and html.escape(text) in got.html, text
    assert 'href="#finding-pgmq-fifo"' in got.html and 'id="finding-pgmq-fifo"' in got.html
    saved = {f["key"]: f for f in got.data["findings"]}
    assert saved["pgmq/fifo"]["cells"] == ["e2e/test_fifo_ordering × pgmq-py"]
    assert saved["pgmq/wave"]["rate"] == "3/5 runs" and saved["pgmq/fifo"]["kind"] == "documented-limit"
    # A default-hazard names what the defaults would break; the driver's tuning avoids it: no verdict is expected.
    assert saved["pgmq/defaults"]["kind"] == "default-hazard" and "hazard" in got.md

    sdk = next(s for s in got.data["sdks"] if s["name"] == "pgmq-py")
    assert sdk["tuning"] == [
        {
            "name": "poll_interval",
            "default": "1 s",
            "value": "0.1 s",
            "why": "scenarios wait in tenths of a second",
            "source": "docs/config.md:12",
            "topology": "",
        }
    ]
    assert "scenarios wait in tenths of a second" in got.html
    contract = next(s for s in got.data["systems"] if s["name"] == "pgmq")["contract"]
    assert contract["delivery"] == "at-least-once" and "Contracts" in got.html and "visibility timeout" in got.html


def test_the_real_collector_lists_an_sdks_rows() -> None:
    e2e = build.collect_rows(SessionId("e2e", "pgmq-py"))
    assert RowId("e2e", "test_basic_wave") in e2e and RowId("e2e", "test_batch_sizes[100]") in e2e
    assert RowId.interop("pgmq-py") in e2e
    assert RowId("sql", "pgmq/api") in build.collect_rows(SessionId("sql", "pgmq"))
    with pytest.raises(build.CollectError):
        build.collect_rows(SessionId("no-such-suite", "pgmq-py"))
    through = build.collect_rows(SessionId("pgbouncer", "pgmq-py"))
    assert RowId("e2e", "test_basic_wave") in through and RowId("e2e", "test_pool_exhaustion") in through


def _cells() -> list[matrix.Cell]:
    return [
        matrix.Cell(CellId(RowId("e2e", "test_basic_wave"), "pgmq-go"), "fail", 1.0, "lost 100"),
        matrix.Cell(CellId(RowId("e2e", "test_basic_wave"), "pgmq-py"), "pass", 1.0, ""),
        matrix.Cell(CellId(RowId("e2e", "test_fifo_ordering"), "pgmq-py"), "fail", 1.0, "order_inversions 3"),
        matrix.Cell(CellId(RowId("e2e", "test_migrate_twice"), "pgmq-rs"), "pass", 1.0, ""),
        matrix.Cell(CellId(RowId("e2e", "test_basic_wave"), "river-go"), "fail", 1.0, "lost 1"),
    ]


def _finding(rows: list[str], sdk: str, rate: str = "", system: str = "pgmq") -> Finding:
    return Finding("f", system, "bug", sdk, "1", tuple(rows), "fail", "why", ("a.py:1",), "", "nox", rate)


SYSTEM_OF = {"pgmq-go": "pgmq", "pgmq-py": "pgmq", "pgmq-rs": "pgmq", "river-go": "river"}


def test_findings_mark_known_cells_within_their_system_and_name_every_deviation() -> None:
    known = matrix.Known([_finding(["e2e/*"], "pgmq-go"), _finding(["e2e/test_migrate_twice"], "*")], SYSTEM_OF)
    cells = _cells()
    deviations = matrix.apply_findings(cells, known)
    assert cells[0].verdict == "known" and cells[0].finding == "pgmq/f"
    assert {(d.kind, d.row, d.sdk) for d in deviations} == {
        ("regression", "e2e/test_fifo_ordering", "pgmq-py"),
        ("stale", "e2e/test_migrate_twice", "pgmq-rs"),
        ("regression", "e2e/test_basic_wave", "river-go"),  # `*` is pgmq's SDKs only
    }
    assert known.covers(known.findings[0], CellId(RowId("e2e", "test_x"), "pgmq-go"))
    assert not known.covers(known.findings[1], CellId(RowId("e2e", "test_migrate_twice"), "river-go"))


def test_a_finding_of_one_topology_speaks_for_that_topology_only() -> None:
    """A PgBouncer finding does not explain the same row's failure when the SDK connects directly."""
    through_bouncer = dataclasses.replace(_finding(["e2e/*"], "pgmq-py"), topologies=("pgbouncer",))
    known = matrix.Known([through_bouncer], SYSTEM_OF)
    row = RowId("e2e", "test_basic_wave")
    assert known.covers(through_bouncer, CellId(row, "pgmq-py", "pgbouncer"))
    assert not known.covers(through_bouncer, CellId(row, "pgmq-py", "direct"))
    cells = [matrix.Cell(CellId(row, "pgmq-py", t), "fail", None, "boom") for t in ("direct", "pgbouncer")]
    deviations = matrix.apply_findings(cells, known)
    assert [c.verdict for c in cells] == ["fail", "known"] and [d.kind for d in deviations] == ["regression"]


def test_an_intermittent_finding_that_passes_is_no_deviation() -> None:
    known = matrix.Known([_finding(["e2e/test_migrate_twice"], "pgmq-*", rate="2/5 runs")], SYSTEM_OF)
    cells = _cells()
    deviations = matrix.apply_findings(cells, known)
    assert cells[3].verdict == "pass" and cells[3].finding == "pgmq/f"
    assert ("stale", "e2e/test_migrate_twice", "pgmq-rs") not in {(d.kind, d.row, d.sdk) for d in deviations}


def test_row_patterns_treat_brackets_literally() -> None:
    assert matrix.wildcard("e2e/test_batch_sizes[100]", "e2e/test_batch_sizes[100]")
    assert not matrix.wildcard("e2e/test_batch_sizes[100]", "e2e/test_batch_sizes1")
    assert matrix.wildcard("e2e/test_batch_sizes[*]", "e2e/test_batch_sizes[1000]")


def test_collected_node_ids_name_rows() -> None:
    assert matrix.row_of_node("e2e", "e2e/test_delivery.py::test_batch_sizes[100]") == RowId(
        "e2e", "test_batch_sizes[100]"
    )
    assert matrix.row_of_node("e2e", "e2e/test_interop.py::test_interop[river-go]") == RowId.interop("river-go")
    assert matrix.row_of_node("chaos", "chaos/test_chaos.py::test_statement_timeout") == RowId(
        "chaos", "test_statement_timeout"
    )


def test_baseline_marks_changed_cells() -> None:
    cells = _cells()
    baseline = {
        "cells": [
            {"row": "e2e/test_basic_wave", "sdk": "pgmq-py", "topology": "direct", "verdict": "fail"},
            {"row": "e2e/test_basic_wave", "sdk": "pgmq-go", "topology": "direct", "verdict": "fail"},
            {"row": "e2e/test_basic_wave", "sdk": "river-go", "topology": "pgbouncer", "verdict": "pass"},
        ]
    }
    assert matrix.apply_baseline(cells, baseline) == 1
    assert cells[1].changed_from == "fail" and cells[0].changed_from == ""
    assert cells[4].changed_from == "", "another topology is another cell"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="not applicable: Debian's chromium is not installed")
def test_dashboard_renders_in_headless_chromium_without_console_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_adapters(tmp_path / "adapters", findings=finding("wave", '"e2e/test_basic_wave"', rate="1/5 runs"))
    monkeypatch.setenv("GAUNTLET_ADAPTERS", str(root))
    inputs = tmp_path / "junit"
    inputs.mkdir()
    failing = '<failure message="order_inversions 2"/>'
    (inputs / "e2e-x.xml").write_text(
        junit_file(case_xml("test_basic_wave", result=failing), case_xml("test_fifo_ordering", result=failing))
    )
    (inputs / "vendor.xml").write_text('<testsuite name="vendor"><testcase name="it works"/></testsuite>')
    out = tmp_path / "out"
    out.mkdir()
    assert build.main(["--junit", str(inputs), "--out", str(out)]) == 1  # the unexpected failure is a deviation
    page = out / "index.html"
    assert (out / "index.png").stat().st_size > 10_000, "no screenshot beside index.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text, "must be self-contained"
    logged = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "test_fifo_ordering" in logged.stdout, "the page did not render"
    console = [line for line in logged.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    data = json.loads((out / "matrix.json").read_text())
    assert {"run", "systems", "sdks", "rows", "cells", "other", "findings"} <= set(data)
    assert {c["verdict"] for c in data["cells"]} == {"known", "fail"}
