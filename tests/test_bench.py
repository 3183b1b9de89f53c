"""The bench runs end to end (tiny and once: speed is measured by `nox -s bench`, never asserted
here), into a temporary folder removed afterwards: no test writes into reports/out/ (except
the drivers' logs) and none leaves a folder behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gauntlet import bench, catalog, paths
from gauntlet.pg import open_harness
from reports.render import bench_html

# A compiled driver and a Python one: the Python drivers get the history line-cost figures too.
SDKS = ("pgmq-rs", "pgmq-py")


@pytest.fixture(scope="module")
def run() -> Iterator[tuple[dict[str, Any], Path, list[Path]]]:
    """One tiny bench run of SDKS (bench.json, its --out folder, what it added to reports/out/)."""
    env = {**os.environ, "GAUNTLET_BENCH_JOBS": "200", "GAUNTLET_BENCH_RUNS": "1"}
    env.pop("GAUNTLET_EVENTS", None)
    before = sorted(paths.OUT.rglob("*")) if paths.OUT.exists() else []
    with tempfile.TemporaryDirectory(prefix="gauntlet-test-bench-") as scratch:
        out = Path(scratch)
        done = subprocess.run(
            [sys.executable, "-m", "gauntlet.bench", *(f"--sdk={s}" for s in SDKS), "--out", str(out)],
            cwd=paths.ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        after = sorted(paths.OUT.rglob("*")) if paths.OUT.exists() else []
        added = [p for p in after if p not in before and "logs" not in p.parts]
        yield json.loads((out / "bench.json").read_text()), out, added


def test_bench_writes_figures_for_an_sdk_and_the_raw_sql_limit(run: tuple[dict[str, Any], Path, list[Path]]) -> None:
    data, out, added = run
    assert {"date", "machine", "settings"} <= set(data) and data["settings"]["concurrency"] == [1, 2, 4, 8, 16]
    assert data["settings"]["cost_pairs"] >= 3 and data["settings"]["batch_size"] == bench.BATCH_SIZE
    assert all(data["limit"][f"c{c}_batch1"]["median"] > 0 for c in (1, 2, 4, 8, 16))
    rs = data["sdks"]["pgmq-rs"]
    assert rs["enqueue"]["median"] > 0 and set(rs["process"]) == {"1", "2", "4", "8", "16"}
    assert all(rs["ratio"][c] > 0 for c in rs["process"]) and rs["process_no_history"]["median"] > 0
    assert "history_overhead_pct" in rs and rs["latency"]["p99_ms"] >= rs["latency"]["p50_ms"]
    assert data["cluster"]["ready_s"] > 0 and data["machine"]["cpus"]
    assert {p.name for p in (out / "junit").iterdir()} == {"bench-limit.xml", *(f"bench-{s}.xml" for s in SDKS)}
    assert added == [], "the bench wrote into reports/out/"
    page = (out / "bench.html").read_text()  # its pictures on a page of their own, no network
    assert page.count("<svg") >= 3 and "http://" not in page and "https://" not in page


def test_recording_cost_is_the_median_of_interleaved_pairs_for_every_sdk(
    run: tuple[dict[str, Any], Path, list[Path]],
) -> None:
    data = run[0]
    for name in SDKS:
        figures = data["sdks"][name]
        pct = figures["recording"]["on_off_pct"]
        assert pct["min"] <= pct["median"] <= pct["max"] and figures["history_overhead_pct"] == pct["median"]
        assert figures["recording"]["pairs"] == data["settings"]["cost_pairs"]


def test_a_python_driver_gets_its_history_line_cost_and_share(run: tuple[dict[str, Any], Path, list[Path]]) -> None:
    data = run[0]
    py = data["sdks"]["pgmq-py"]["recording"]
    assert 0 < py["us_per_line"] < 10_000 and py["jobs_per_s"] > 0
    assert py["share_pct"] == pytest.approx(2 * py["us_per_line"] * py["jobs_per_s"] / 1e4, abs=0.01)
    assert "us_per_line" not in data["sdks"]["pgmq-rs"]["recording"]  # a compiled driver: on/off only


def test_enqueue_batch_is_measured_exactly_for_the_sdks_that_claim_batch_enqueue(
    run: tuple[dict[str, Any], Path, list[Path]],
) -> None:
    data = run[0]
    for name in SDKS:
        figures = data["sdks"][name]
        assert ("enqueue_batch" in figures) == ("batch_enqueue" in figures["capabilities"]), name
        if "enqueue_batch" in figures:
            assert figures["enqueue_batch"]["median"] > 0


def test_the_dashboard_shows_the_new_figures(run: tuple[dict[str, Any], Path, list[Path]]) -> None:
    data = run[0]
    page = bench_html(data)
    assert "µs/line" in page and page.count("<tr>") == 2 + len(SDKS)  # the head, the limit, each SDK
    batched = {**data, "sdks": {"x": {"enqueue": {"median": 10}, "enqueue_batch": {"median": 900}}}}
    assert f"batch {bench.BATCH_SIZE}: 900" in bench_html(batched)
    assert bench_html({"settings": {"concurrency": [1]}, "sdks": {"old": {"history_overhead_pct": 3.0}}})


def test_the_batch_case_passes_batch_size_and_wants_every_spec_acknowledged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever SDKs claim today: the case list follows the capability, and its measure runs a
    real driver with `batch_size` in the config (one that does not batch ignores the key)."""
    assert bench.enqueue_cases(["worker"]) == {"enqueue": {}}
    assert bench.enqueue_cases(["batch_enqueue"]) == {"enqueue": {}, "enqueue_batch": {"batch_size": bench.BATCH_SIZE}}
    monkeypatch.setattr(bench, "JOBS", 150)
    manifest = next(s for s in catalog.load().sdks() if s.name == "pgmq-rs")
    with open_harness() as harness:
        assert bench.enqueue_rate(harness, manifest, **bench.enqueue_cases(["batch_enqueue"])["enqueue_batch"]) > 0
