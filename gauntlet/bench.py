"""The bench session: each SDK's throughput and latency beside the physical limit here — a
raw-SQL `FOR UPDATE SKIP LOCKED` worker on the same cluster — and the harness's own cost:
history recording on vs off in interleaved pairs, and for the Python drivers the measured
cost of one history line. Measured and reported; the JUnit verdict says only whether each
measurement ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from junitparser import Error
from junitparser.xunit2 import JUnitXml, TestCase, TestSuite

from gauntlet import catalog, lifecycle, paths, schemas
from gauntlet.checker import History, percentile
from gauntlet.driver import Driver, DriverError
from gauntlet.pg import EmbeddedCluster, Harness, open_harness
from gauntlet.supervise import Supervisor

JOBS = int(os.environ.get("GAUNTLET_BENCH_JOBS", 10_000))
RUNS = int(os.environ.get("GAUNTLET_BENCH_RUNS", 3))
CONCURRENCY = (1, 2, 4, 8, 16)
COST_AT = 8  # the concurrency at which recording on vs off is compared
# On/off pairs, interleaved (on, off, on, off, ...) so that a busy machine's drift falls on
# both sides alike; a ratio of one pair is noise, so at least 3 whatever RUNS says.
COST_PAIRS = max(3, RUNS)
BATCH_SIZE = 100  # the enqueue_batch case's batch_size, for SDKs that claim batch_enqueue
# History lines timed per run of the direct measure (a start and an end line per job).
RECORD_LINES = 20_000
LATENCY_RATE = 100  # jobs/s offered
LATENCY_SECONDS = 5
STALL_S = 20.0


class BenchError(Exception):
    pass


def summarise(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def repeat(measure: Callable[[], float]) -> dict[str, float]:
    return summarise([measure() for _ in range(RUNS)])


def rates(measure: Callable[[], float]) -> dict[str, Any]:
    return {"jobs_per_s": repeat(measure)}


# -- the limit: raw SQL -------------------------------------------------------------------


def raw_sql(harness: Harness, concurrency: int, batch: int) -> float:
    dsn = harness.databases.dsn(harness.databases.fresh(label="limit"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE jobs (id bigserial PRIMARY KEY, payload jsonb NOT NULL)")
        conn.execute("INSERT INTO jobs (payload) SELECT '{}'::jsonb FROM generate_series(1, %s)", (JOBS,))
    pick = f"SELECT id FROM jobs ORDER BY id FOR UPDATE SKIP LOCKED LIMIT {int(batch)}"
    fetch = f"DELETE FROM jobs WHERE id {'=' if batch == 1 else 'IN'} ({pick}) RETURNING id"

    def worker() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while conn.execute(fetch).fetchall():
                pass

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return JOBS / (time.perf_counter() - began)


# -- an SDK -------------------------------------------------------------------------------


def fresh_driver(harness: Harness, manifest: catalog.Sdk, queue: str = "bench") -> Driver:
    template = harness.databases.template(
        f"bench_{manifest.system.replace('-', '_')}",
        lambda dsn: schemas.install(catalog.load().system(manifest.system), dsn, harness.supervisor),
    )
    driver = Driver(
        manifest, harness.supervisor, harness.databases.dsn(harness.databases.fresh(template, label="bench")), queue
    )
    driver.prepare()
    return driver


def specs(count: int) -> list[dict[str, Any]]:
    return [{"id": f"b{i:06d}", "payload": {"i": i}} for i in range(count)]


def enqueue_cases(capabilities: list[str]) -> dict[str, dict[str, Any]]:
    """The enqueue measurements an SDK gets, each with the config keys it adds: one spec per
    SDK call, and with `batch_enqueue` batches of BATCH_SIZE through the SDK's batch call."""
    cases: dict[str, dict[str, Any]] = {"enqueue": {}}
    if "batch_enqueue" in capabilities:
        cases["enqueue_batch"] = {"batch_size": BATCH_SIZE}
    return cases


def enqueue_rate(harness: Harness, manifest: catalog.Sdk, **extra: Any) -> float:
    """Jobs/s of one enqueue run of JOBS specs, every one of them acknowledged."""
    driver = fresh_driver(harness, manifest)
    began = time.perf_counter()
    result = driver.enqueue(specs(JOBS), bound_s=600, **extra)
    elapsed = time.perf_counter() - began
    acked = sum(a.ok for a in result.acks)
    if result.error or acked != JOBS:
        raise BenchError(f"enqueue {extra or ''}: {result.error or f'{acked} of {JOBS} jobs acknowledged'}")
    return JOBS / elapsed


def drained(driver: Driver, total: int | None = None) -> float | None:
    """Waits until the system's stats show nothing queued or running; a stall is an error.
    With `total` (the jobs enqueued), returns when the first of them left the queue: the
    worker's start-up is then not part of a throughput figure."""
    last, changed, first = None, time.monotonic(), None
    while True:
        stats = driver.stats()
        queued = stats["queued"] or 0
        left = queued + (stats["running"] or 0)
        if first is None and total is not None and queued < total:
            first = time.perf_counter()
        if left == 0:
            return first
        if left != last:
            last, changed = left, time.monotonic()
        elif time.monotonic() - changed > STALL_S:
            raise BenchError(f"no progress for {STALL_S:g} s with {left} jobs left")
        time.sleep(0.05)


def process_rate(harness: Harness, manifest: catalog.Sdk, concurrency: int, record: bool, tmp: Path) -> float:
    """Jobs/s from the first job taken to the last one done (start-up excluded), recording
    the history or not: the same measure both ways, so their ratio is the harness's cost."""
    driver = fresh_driver(harness, manifest)
    result = driver.enqueue(specs(JOBS), bound_s=600)
    if result.error:
        raise BenchError(result.error)
    history = tmp / f"history-{time.monotonic_ns()}.jsonl"
    worker = driver.start_worker(
        "bench", history if record else None, concurrency=concurrency, poll_interval_ms=20, visibility_timeout_s=30
    )
    try:
        first = drained(driver, total=JOBS)
        done = time.perf_counter()
    finally:
        worker.stop()
        history.unlink(missing_ok=True)
    if first is None:
        raise BenchError("the queue was empty before any job was seen leaving it")
    return JOBS / max(done - first, 1e-6)


def recording_cost(harness: Harness, manifest: catalog.Sdk, tmp: Path) -> dict[str, Any]:
    """Recording on vs off at COST_AT, in COST_PAIRS interleaved pairs: each pair's cost in
    percent of the off run's jobs/s, (off - on) / off, summarised (median, min, max)."""
    on, off = [], []
    for _ in range(COST_PAIRS):
        on.append(process_rate(harness, manifest, COST_AT, True, tmp))
        off.append(process_rate(harness, manifest, COST_AT, False, tmp))
    pct = [(b - a) / b * 100 for a, b in zip(on, off, strict=True)]
    return {"on_off_pct": summarise(pct), "on_jobs_per_s": summarise(on), "off_jobs_per_s": summarise(off)}


SHARED_PYTHON = paths.ADAPTERS / "_shared" / "python"
# What a Python driver's worker does per job: a start and an end line through the real
# gauntlet_protocol.History (its fields as `execute` writes them), timed in that interpreter.
LINE_COST = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import gauntlet_protocol as p
path, jobs = sys.argv[2], int(sys.argv[3]) // 2
history = p.History(path, "bench-w1")
began, cpu = time.perf_counter(), time.process_time()
for i in range(jobs):
    job = f"b{i:06d}"
    history.write("start", job, 1, sdk_id=str(100000 + i))
    history.write("end", job, 1, outcome="ok")
cpu, wall = time.process_time() - cpu, time.perf_counter() - began
print(json.dumps({"cpu": cpu / (2 * jobs) * 1e6, "wall": wall / (2 * jobs) * 1e6}))
"""


def line_cost(harness: Harness, manifest: catalog.Sdk, tmp: Path) -> dict[str, float]:
    """µs per history line, RECORD_LINES lines written by the driver's own interpreter: CPU
    time (user + system, the write(2) included; what a busy machine's other processes do not
    inflate) and wall time."""
    interpreter = catalog.expand(manifest.driver, manifest.folder)[0]
    history = tmp / f"lines-{time.monotonic_ns()}.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "GAUNTLET_CONFIG"}
    try:
        done = harness.supervisor.run(
            f"{manifest.name}-history-lines",
            [interpreter, "-c", LINE_COST, str(SHARED_PYTHON), str(history), str(RECORD_LINES)],
            timeout=120,
            env=env,
            cwd=manifest.folder,
        )
        written = sum(1 for _ in history.open("rb")) if history.exists() else 0
    finally:
        history.unlink(missing_ok=True)
    if done.returncode != 0:
        raise BenchError(f"history line cost: exited {done.returncode}: {done.log.strip()[-300:]}")
    if written != RECORD_LINES:
        raise BenchError(f"history line cost: {written} of {RECORD_LINES} lines reached the file")
    said = json.loads(done.stdout.strip().splitlines()[-1])
    return {"cpu": float(said["cpu"]), "wall": float(said["wall"])}


def line_figures(harness: Harness, manifest: catalog.Sdk, tmp: Path) -> dict[str, Any]:
    """The line cost over COST_PAIRS runs; the share of a job's time (bench_sdk) uses CPU µs:
    2 lines per job × µs per line × jobs/s."""
    runs = [line_cost(harness, manifest, tmp) for _ in range(COST_PAIRS)]
    return {
        "us_per_line": summarise([r["cpu"] for r in runs]),
        "us_per_line_wall": summarise([r["wall"] for r in runs]),
    }


def latency(harness: Harness, manifest: catalog.Sdk, tmp: Path) -> dict[str, float | None]:
    """Specs streamed at a steady rate into one long enqueue run; enqueue -> start per job."""
    driver = fresh_driver(harness, manifest)
    history = tmp / f"latency-{time.monotonic_ns()}.jsonl"
    worker = driver.start_worker("lat", history, concurrency=8, poll_interval_ms=20, visibility_timeout_s=30)
    sent: dict[str, float] = {}
    producer = driver.supervisor.spawn(
        f"{manifest.name}-enqueue-stream",
        driver._argv("enqueue"),
        env=driver._env(driver._config()),
        cwd=manifest.folder,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert producer.popen.stdin is not None
    try:
        interval = 1 / LATENCY_RATE
        began = time.perf_counter()
        for i, spec in enumerate(specs(LATENCY_RATE * LATENCY_SECONDS)):
            time.sleep(max(0.0, began + i * interval - time.perf_counter()))
            sent[spec["id"]] = time.time()
            producer.popen.stdin.write((json.dumps(spec) + "\n").encode())
            producer.popen.stdin.flush()
        producer.popen.stdin.close()
        producer.wait(60)
        drained(driver)
    finally:
        worker.stop()
    runs = History()
    runs.add_file(history)
    first: dict[str, float] = {}
    for run in runs.executions:
        first.setdefault(run.id, run.start)
    waits = [(first[i] - t) * 1000 for i, t in sent.items() if i in first]
    if len(waits) < len(sent):
        raise BenchError(f"{len(sent) - len(waits)} of {len(sent)} streamed jobs never started")
    return {f"p{q}_ms": round(percentile(waits, q) or 0, 2) for q in (50, 95, 99)}


# -- the run ------------------------------------------------------------------------------


def case(suite: TestSuite, name: str, sdk: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    element = TestCase(name, classname=f"bench.{sdk}")
    began = time.perf_counter()
    try:
        figures = measure()
    except (BenchError, DriverError, subprocess.SubprocessError, psycopg.Error) as exc:
        element.result = [Error(message=str(exc)[:500])]
        figures = None
    element.time = round(time.perf_counter() - began, 3)
    element.add_property("suite", "bench")
    element.add_property("sdk", sdk)
    for key, value in (figures or {}).items():
        element.add_property(key, json.dumps(value))
    suite.add_testcase(element)
    print(f"bench {sdk} {name}: {figures if figures is not None else element.result[0].message}", flush=True)
    return figures


def cluster_figures(tmp: Path) -> dict[str, float]:
    supervisor = Supervisor(log_dir=tmp)
    ready, fresh = [], []
    for _ in range(RUNS):
        cluster = EmbeddedCluster(supervisor)
        try:
            server = cluster.start()
            ready.append(cluster.ready_s)
            with psycopg.connect(server.dsn(), autocommit=True) as conn:
                conn.execute("CREATE DATABASE tpl")
                began = time.perf_counter()
                conn.execute("CREATE DATABASE clone TEMPLATE tpl")
                fresh.append(time.perf_counter() - began)
        finally:
            cluster.stop()
    supervisor.close()
    return {"ready_s": summarise(ready)["median"], "fresh_db_s": summarise(fresh)["median"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sdk", action="append", help="only these SDKs (default: all)")
    parser.add_argument("--out", type=Path, default=paths.OUT, help="where bench.json and junit/ go")
    args = parser.parse_args(argv)
    lifecycle.install_signal_handlers()
    out: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "jobs": JOBS,
            "runs": RUNS,
            "concurrency": list(CONCURRENCY),
            "cost_at": COST_AT,
            "cost_pairs": COST_PAIRS,
            "batch_size": BATCH_SIZE,
            "record_lines": RECORD_LINES,
        },
        "limit": {},
        "sdks": {},
    }
    junit = args.out / "junit"
    with tempfile.TemporaryDirectory(prefix="gauntlet-bench-") as scratch:
        tmp = Path(scratch)
        out["cluster"] = cluster_figures(tmp)
        with open_harness() as harness:
            suite = TestSuite("bench-limit")
            for concurrency, batch in [(c, 1) for c in CONCURRENCY] + [(1, 100), (COST_AT, 100)]:
                measure = partial(raw_sql, harness, concurrency, batch)
                figures = case(suite, f"raw_sql_c{concurrency}_batch{batch}", "raw-sql", partial(rates, measure))
                if figures:
                    out["limit"][f"c{concurrency}_batch{batch}"] = figures["jobs_per_s"]
            write_junit(suite, junit / "bench-limit.xml")
            for manifest in catalog.load().sdks():
                if args.sdk and manifest.name not in args.sdk:
                    continue
                out["sdks"][manifest.name] = bench_sdk(harness, manifest, tmp, out["limit"], junit)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(out, indent=2))
    from reports import render  # the report's renderer draws the bench page too (one look for both)

    (args.out / "bench.html").write_text(render.bench_page(out))
    print(f"bench: wrote {args.out / 'bench.json'} and {args.out / 'bench.html'}")
    return 0


def bench_sdk(harness: Harness, manifest: catalog.Sdk, tmp: Path, limit: dict[str, Any], junit: Path) -> dict[str, Any]:
    """Enqueue rate (and batched, where the SDK has a batch call); processing at each
    concurrency as a ratio to the raw-SQL limit at the same concurrency; recording on vs off
    at COST_AT, and for a Python driver the cost of a history line as a share of a job's
    time; enqueue -> start latency."""
    suite = TestSuite(f"bench-{manifest.name}")
    figures: dict[str, Any] = {"process": {}, "ratio": {}}
    info = Driver(manifest, harness.supervisor, harness.server.dsn()).info()
    figures["capabilities"] = info["capabilities"]
    for name, extra in enqueue_cases(info["capabilities"]).items():
        measure = partial(enqueue_rate, harness, manifest, **extra)
        got = case(suite, name, manifest.name, partial(rates, measure))
        figures[name] = got and got["jobs_per_s"]
    if "worker" in info["capabilities"]:
        for concurrency in CONCURRENCY:
            measure = partial(process_rate, harness, manifest, concurrency, True, tmp)
            got = case(suite, f"process_c{concurrency}", manifest.name, partial(rates, measure))
            figures["process"][str(concurrency)] = got and got["jobs_per_s"]
            base = limit.get(f"c{concurrency}_batch1")
            if got and base:
                figures["ratio"][str(concurrency)] = round(got["jobs_per_s"]["median"] / base["median"], 3)
        cost = case(
            suite, f"recording_c{COST_AT}_on_off", manifest.name, lambda: recording_cost(harness, manifest, tmp)
        )
        figures["process_no_history"] = cost and cost["off_jobs_per_s"]
        if cost:
            figures["history_overhead_pct"] = cost["on_off_pct"]["median"]
            recording: dict[str, Any] = {"on_off_pct": cost["on_off_pct"], "pairs": COST_PAIRS}
            if manifest.language == "python":
                got = case(suite, "recording_us_per_line", manifest.name, partial(line_figures, harness, manifest, tmp))
                if got:
                    jobs_per_s = cost["on_jobs_per_s"]["median"]
                    share = 2 * got["us_per_line"]["median"] * jobs_per_s / 1e6 * 100
                    recording |= {
                        "us_per_line": got["us_per_line"]["median"],
                        "us_per_line_range": got["us_per_line"],
                        "us_per_line_wall": got["us_per_line_wall"],
                        "jobs_per_s": jobs_per_s,
                        "share_pct": round(share, 2),
                    }
            figures["recording"] = recording
        got = case(suite, "latency", manifest.name, lambda: latency(harness, manifest, tmp))
        figures["latency"] = got
    write_junit(suite, junit / f"bench-{manifest.name}.xml")
    return figures


def write_junit(suite: TestSuite, path: Path) -> None:
    suite.update_statistics()
    xml = JUnitXml()
    xml.add_testsuite(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    xml.write(str(path), pretty=True)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "",
    )
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_kib / 2**20, 1),
        "kernel": os.uname().release,
    }


if __name__ == "__main__":
    sys.exit(main())
