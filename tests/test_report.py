"""The report: counts in = counts out over real producers' JUnit, expectations, flaky
cells, baselines, the dashboard in headless Chromium, and the CI workflow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gauntlet import paths, pgtap
from reports import build, junit, matrix

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
def test_migrate_twice(record_property):  # fails as a recorded finding for pgmq-*: never re-run
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


def _pg_prove_junit(folder: Path, dsn: str, supervisor) -> Path:
    """pg_prove's own JUnit, as the formatter writes it (before gauntlet.pgtap normalises it)."""
    suites = folder / "pgtap"
    suites.mkdir()
    for name, text in PG_PROVE_SAMPLE.items():
        (suites / name).write_text(text)
    xml, _stderr = pgtap.prove(suites, dsn, supervisor, "pg_prove-report-test")
    out = folder / "pg_prove.xml"
    out.write_text(xml)
    return out


def test_counts_in_equal_counts_out_over_real_producers(tmp_path: Path, pgtap_dsn: str, harness) -> None:
    inputs = tmp_path / "junit"
    inputs.mkdir()
    produced = [
        _pytest_junit(tmp_path, "pytest-a", tmp_path / "flaky-a"),
        _pytest_junit(tmp_path, "pytest-b", tmp_path / "flaky-b"),  # same suite name "pytest": kept apart
        _go_junit(tmp_path),
        _node_junit(tmp_path),
        _pg_prove_junit(tmp_path, pgtap_dsn, harness.supervisor),
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
    assert cases[("pytest-a.xml", "test_migrate_twice")].verdict == "fail", "a known finding's failure is not re-run"
    assert cases[("pytest-a.xml", "test_skip")].message == "not applicable: no priority"
    assert cases[("pytest-a.xml", "test_error")].verdict == "error"
    assert cases[("node.xml", "ok")].suite == "node", "node's bare test cases get their file's suite"
    assert cases[("node.xml", "inner")].suite == "group"
    assert cases[("go.xml", "TestBad")].verdict == "fail"
    assert any(c.verdict == "error" and "suite error" in c.name for c in cases.values() if c.file == "pg_prove.xml")


def test_malformed_junit_is_an_error_cell_and_nothing_else_is_lost(tmp_path: Path) -> None:
    inputs = tmp_path / "junit"
    inputs.mkdir()
    (inputs / "broken.xml").write_text("<testsuites><testsuite><testcase name='x'")
    (inputs / "good.xml").write_text('<testsuite name="s"><testcase name="a"/><testcase name="b"/></testsuite>')
    cases = junit.load_all(inputs)
    assert [(c.name, c.verdict) for c in cases] == [
        ("broken.xml: unreadable JUnit", "error"),
        ("a", "pass"),
        ("b", "pass"),
    ]


def _cells() -> list[matrix.Cell]:
    return [
        matrix.Cell("e2e/test_basic_wave", "pgmq-go", "fail", 1.0, "lost 100"),
        matrix.Cell("e2e/test_basic_wave", "pgmq-py", "pass", 1.0, ""),
        matrix.Cell("e2e/test_fifo_ordering", "pgmq-py", "fail", 1.0, "order_inversions 3"),
        matrix.Cell("e2e/test_migrate_twice", "pgmq-rs", "pass", 1.0, ""),
    ]


def test_expectations_mark_known_findings_and_name_every_deviation() -> None:
    findings = [
        matrix.Finding(["e2e/*"], "pgmq-go", "fail", "cannot read"),
        matrix.Finding(["e2e/test_migrate_twice"], "pgmq-*", "fail", "not idempotent"),
    ]
    cells = _cells()
    deviations = matrix.apply_expectations(cells, findings)
    assert cells[0].verdict == "known" and cells[0].expected == "cannot read"
    assert {(d.kind, d.row, d.sdk) for d in deviations} == {
        ("regression", "e2e/test_fifo_ordering", "pgmq-py"),
        ("stale", "e2e/test_migrate_twice", "pgmq-rs"),
    }


def test_an_intermittent_finding_that_passes_is_no_deviation() -> None:
    timing = matrix.Finding(["e2e/test_migrate_twice"], "pgmq-*", "fail", "under some schedules", intermittent=True)
    cells = _cells()
    deviations = matrix.apply_expectations(cells, [timing])
    assert cells[3].verdict == "pass" and "intermittently" in cells[3].expected
    assert ("stale", "e2e/test_migrate_twice", "pgmq-rs") not in {(d.kind, d.row, d.sdk) for d in deviations}


def test_row_patterns_treat_brackets_literally() -> None:
    assert matrix.wildcard("e2e/test_batch_sizes[100]", "e2e/test_batch_sizes[100]")
    assert not matrix.wildcard("e2e/test_batch_sizes[100]", "e2e/test_batch_sizes1")
    assert matrix.wildcard("e2e/test_batch_sizes[*]", "e2e/test_batch_sizes[1000]")


def test_baseline_marks_changed_cells() -> None:
    cells = _cells()
    baseline = {
        "cells": [
            {"row": "e2e/test_basic_wave", "sdk": "pgmq-py", "verdict": "fail"},
            {"row": "e2e/test_basic_wave", "sdk": "pgmq-go", "verdict": "fail"},
        ]
    }
    assert matrix.apply_baseline(cells, baseline) == 1
    assert cells[1].changed_from == "fail" and cells[0].changed_from == ""


def test_the_expectations_file_is_valid() -> None:
    findings = build.load_findings()
    assert findings and all(f.reason and f.verdict in ("fail", "error", "n/a") for f in findings)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="not applicable: Debian's chromium is not installed")
def test_dashboard_renders_in_headless_chromium_without_console_errors(tmp_path: Path) -> None:
    inputs = tmp_path / "junit"
    inputs.mkdir()
    (inputs / "e2e-x.xml").write_text(
        '<testsuite name="pytest"><testcase name="test_basic_wave"><properties><property name="suite" value="e2e"/>'
        '<property name="sdk" value="pgmq-py"/><property name="system" value="pgmq"/></properties></testcase>'
        '<testcase name="test_fifo_ordering"><properties><property name="suite" value="e2e"/>'
        '<property name="sdk" value="pgmq-py"/></properties><failure message="order_inversions 2"/>'
        "</testcase></testsuite>"
    )
    out = tmp_path / "out"
    out.mkdir()
    assert build.main(["--junit", str(inputs), "--out", str(out)]) == 1  # the unexpected failure is a deviation
    html = out / "index.html"
    assert (out / "index.png").stat().st_size > 10_000, "no screenshot beside index.html"
    text = html.read_text()
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
            html.as_uri(),
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
    assert {"run", "sdks", "rows", "cells"} <= set(data)
    assert {c["verdict"] for c in data["cells"]} == {"pass", "fail"}


def test_ci_workflow_passes_actionlint() -> None:
    run = subprocess.run(
        [str(paths.TOOLS_BIN / "actionlint"), ".github/workflows/ci.yml"],
        cwd=paths.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
