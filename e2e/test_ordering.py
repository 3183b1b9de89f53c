"""Order: FIFO and priority, with a single worker slot so order is observable."""

from __future__ import annotations

import pytest

from .workload import Workload, assert_holds


@pytest.mark.needs("worker", "fifo")
def test_fifo_ordering(workload: Workload) -> None:
    """50 jobs, concurrency 1: they start in enqueue order."""
    workload.enqueue(workload.specs(50))
    workload.start(1, concurrency=1)
    workload.wait_until_done(60)
    workload.stop_all()
    assert_holds(workload.report(order="fifo"), "lost", "duplicated", "order_inversions")


@pytest.mark.needs("worker", "priority")
def test_priority_ordering(workload: Workload) -> None:
    """Jobs of mixed normalised priority, enqueued before the worker starts, run highest first."""
    specs = workload.specs(40)
    for spec in specs:
        spec["priority"] = workload.rng.randrange(4)
    workload.enqueue(specs)
    workload.start(1, concurrency=1)
    workload.wait_until_done(60)
    workload.stop_all()
    assert_holds(workload.report(order="priority"), "lost", "duplicated", "order_inversions")
