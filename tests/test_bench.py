"""The bench runs end to end (tiny and once: speed is measured by `nox -s bench`, never asserted
here), into a temporary folder: no test writes into reports/out/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gauntlet import paths


def test_bench_writes_figures_for_an_sdk_and_the_raw_sql_limit(tmp_path: Path) -> None:
    env = {**os.environ, "GAUNTLET_BENCH_JOBS": "200", "GAUNTLET_BENCH_RUNS": "1"}
    env.pop("GAUNTLET_EVENTS", None)
    before = sorted(paths.OUT.rglob("*")) if paths.OUT.exists() else []
    run = subprocess.run(
        [sys.executable, "-m", "gauntlet.bench", "--sdk", "pgmq-rs", "--out", str(tmp_path)],
        cwd=paths.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    data = json.loads((tmp_path / "bench.json").read_text())
    assert {"date", "machine", "settings"} <= set(data) and data["settings"]["concurrency"] == [1, 2, 4, 8, 16]
    assert all(data["limit"][f"c{c}_batch1"]["median"] > 0 for c in (1, 2, 4, 8, 16))
    rs = data["sdks"]["pgmq-rs"]
    assert rs["enqueue"]["median"] > 0 and set(rs["process"]) == {"1", "2", "4", "8", "16"}
    assert all(rs["ratio"][c] > 0 for c in rs["process"]) and rs["process_no_history"]["median"] > 0
    assert "history_overhead_pct" in rs and rs["latency"]["p99_ms"] >= rs["latency"]["p50_ms"]
    assert data["cluster"]["ready_s"] > 0 and data["machine"]["cpus"]
    assert {p.name for p in (tmp_path / "junit").iterdir()} == {"bench-limit.xml", "bench-pgmq-rs.xml"}
    after = sorted(paths.OUT.rglob("*")) if paths.OUT.exists() else []
    assert [p for p in after if p not in before and "logs" not in p.parts] == [], "the bench wrote into reports/out/"
