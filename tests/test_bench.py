"""The bench runs end to end (tiny and once: speed is measured by `nox -s bench`, never asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from gauntlet import paths


def test_bench_writes_figures_for_an_sdk_and_the_raw_sql_limit(tmp_path) -> None:
    env = {**os.environ, "GAUNTLET_BENCH_JOBS": "200", "GAUNTLET_BENCH_RUNS": "1"}
    env.pop("GAUNTLET_EVENTS", None)
    before = (paths.OUT / "bench.json").read_text() if (paths.OUT / "bench.json").exists() else None
    try:
        run = subprocess.run(
            [sys.executable, "-m", "gauntlet.bench", "--sdk", "pgmq-rs"],
            cwd=paths.ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        data = json.loads((paths.OUT / "bench.json").read_text())
    finally:  # leave a real bench's figures as they were
        if before is not None:
            (paths.OUT / "bench.json").write_text(before)
        for name in ("bench-pgmq-rs.xml", "bench-limit.xml"):
            (paths.JUNIT / name).unlink(missing_ok=True)
    assert data["limit"]["c8_batch1"]["median"] > 0
    rs = data["sdks"]["pgmq-rs"]
    assert rs["enqueue"]["median"] > 0 and rs["process_c8"]["median"] > 0 and rs["process_c8_no_history"]["median"] > 0
    assert "history_overhead_pct" in rs and rs["latency"]["p99_ms"] >= rs["latency"]["p50_ms"]
    assert data["cluster"]["ready_s"] > 0 and data["machine"]["cpus"]
