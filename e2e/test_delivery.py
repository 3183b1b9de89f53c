"""Delivery: every acknowledged job runs exactly once, under plain and concurrent load."""

from __future__ import annotations

import threading

import psycopg
import pytest

from gauntlet.driver import HARNESS_APPLICATION, Driver

from .workload import EXACTLY_ONCE, Workload, assert_holds


def assert_exactly_once(report) -> None:
    assert_holds(report, *EXACTLY_ONCE)


@pytest.mark.needs("worker")
def test_basic_wave(workload: Workload) -> None:
    """100 jobs, one worker at concurrency 5: all run, exactly once. Before the worker starts,
    the system's stats count the backlog the history says it holds."""
    workload.enqueue(workload.specs(100))
    workload.compare_stats("a backlog before any worker starts")
    workload.start(1, concurrency=5)
    workload.wait_until_done(60, settle_s=0.5)
    workload.stop_all()
    report = workload.report()
    assert_holds(report, *EXACTLY_ONCE, "stuck", "stats_mismatches")
    assert report.acknowledged == 100


@pytest.mark.needs("worker")
def test_consumer_contention(workload: Workload) -> None:
    """5 workers race for 100 jobs: no duplicates, and the work is roughly shared."""
    workload.enqueue(workload.specs(100, sleep_ms=20))
    workload.start(5, concurrency=1)
    workload.wait_until_done(60, settle_s=0.5)
    workload.stop_all()
    report = workload.report()
    assert_exactly_once(report)
    per_worker: dict[str, int] = {}
    for run in workload.history().executions:
        per_worker[run.worker] = per_worker.get(run.worker, 0) + 1
    workload.record("per_worker", str(sorted(per_worker.values())))
    assert len(per_worker) >= 3 and max(per_worker.values()) <= 60, f"uneven: {per_worker}"


@pytest.mark.needs("worker")
def test_concurrent_waves(workload: Workload) -> None:
    """Three producers enqueue at once while two workers drain: nothing lost or doubled."""
    workload.start(2, concurrency=3)
    batches = [workload.specs(60) for _ in range(3)]
    threads = [threading.Thread(target=workload.enqueue, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    workload.wait_until_done(60, settle_s=0.5)
    workload.stop_all()
    report = workload.report()
    assert_exactly_once(report)
    assert report.acknowledged == 180


@pytest.mark.needs("worker")
@pytest.mark.parametrize("size", [1, 100, 1000])
def test_batch_sizes(workload: Workload, size: int) -> None:
    """One enqueue run of 1, 100 or 1000 jobs: every one acknowledged and run once."""
    result = workload.enqueue(workload.specs(size))
    assert sum(a.ok for a in result.acks) == size, result.error
    workload.start(1, concurrency=8)
    workload.wait_until_done(120, settle_s=0.3)
    workload.stop_all()
    assert_exactly_once(workload.report())


# Values a body must carry unchanged: non-ASCII text of every width, escapes, numbers at the
# edge of a double's exact range. A driver that mangles only some of them shows here.
PAYLOADS = [
    {"text": "héllo wörld ✓ 日本語 🚀", "escapes": 'quote " backslash \\ newline \n tab \t'},
    {"text": "Ωμέγα — ü ß ç ñ ø", "big": 2**53 - 1, "neg": -0.5},
    {"text": "plain ascii"},
    {"nested": {"list": ["ä", 1, None, True, {"é": ["😀"]}]}},
    "ünïcødé string",
]


@pytest.mark.needs("worker")
@pytest.mark.parametrize("pad_bytes", [64 * 1024, 1024 * 1024], ids=["64KiB", "1MiB"])
def test_large_payloads(workload: Workload, pad_bytes: int) -> None:
    """Large job bodies survive enqueue and execution, and the payload beside the padding
    reaches the worker unchanged."""
    specs = workload.specs(len(PAYLOADS), pad_bytes=pad_bytes, echo_payload=True)
    for spec, payload in zip(specs, PAYLOADS, strict=True):
        spec["payload"] = payload
    workload.enqueue(specs)
    workload.start(1, concurrency=2)
    workload.wait_until_done(60)
    workload.stop_all()
    assert_exactly_once(workload.report())
    received = {r.id: r.payload for r in workload.history().executions if r.has_payload}
    changed = [(s["payload"], received.get(s["id"])) for s in specs if received.get(s["id"]) != s["payload"]]
    assert not changed, f"payload changed on the way (sent, received): {changed[:3]}"


# The SDK's backends on the scenario's database: not this sampler's, not the harness's stats queries.
BACKENDS = f"""SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND application_name IS DISTINCT FROM '{HARNESS_APPLICATION}'"""


class PeakConnections(threading.Thread):
    """Samples how many backends serve the scenario's database (other than its own)."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.peak, self.done = dsn, 0, threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.done.wait(0.05):
                count = conn.execute(BACKENDS).fetchone()[0]
                self.peak = max(self.peak, count)


@pytest.mark.needs("worker")
@pytest.mark.direct_only("the backends it would count are the bouncer's server connections, not the SDK's pool")
def test_pool_exhaustion(workload: Workload) -> None:
    """Concurrency 8 on a pool of 2: jobs queue for connections (no errors, nothing lost), and
    the worker stays within the pool it was given."""
    workload.enqueue(workload.specs(60, sleep_ms=10))
    sampler = PeakConnections(workload.driver.dsn)
    sampler.start()
    workload.start(1, concurrency=8, pool_size=2)
    workload.wait_until_done(60, settle_s=0.3)
    workload.stop_all()
    sampler.done.set()
    sampler.join(5)
    workload.record("peak_connections", sampler.peak)
    assert_exactly_once(workload.report())
    allowed = 2 + workload.contract.pool_extra_connections  # e.g. a LISTEN connection its docs say is its own
    assert sampler.peak <= allowed, (
        f"the worker opened {sampler.peak} connections on a pool_size of 2"
        f" (its contract allows {allowed}: {workload.contract.pool_source or 'no connection outside the pool'})"
    )


def test_enqueue_acknowledges_every_spec(driver: Driver, workload: Workload) -> None:
    """The producer side alone: one acknowledgement per spec, in order, each with an SDK id."""
    specs = workload.specs(20)
    result = workload.enqueue(specs)
    assert [a.id for a in result.acks] == [s["id"] for s in specs]
    assert all(a.ok and a.sdk_id for a in result.acks), result.acks
