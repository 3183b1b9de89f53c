"""Batch enqueue: with `batch_size`, a run's specs go through the SDK's batch call, and each
spec still comes back as a job of its own: acknowledged in input order with its own SDK id
(the one its worker sees), run exactly once with its payload and options intact, and counted by
the system's stats."""

from __future__ import annotations

import dataclasses
import json

import pytest

from gauntlet.checker import runs_by_job
from gauntlet.driver import Ack, Driver

from .test_delivery import PAYLOADS
from .workload import EXACTLY_ONCE, Workload, assert_holds, violations


def batching(driver: Driver, size: int) -> Driver:
    """The same driver with `batch_size` in its config (PROTOCOL.md: enqueue, batches)."""
    return dataclasses.replace(driver, options={**driver.options, "batch_size": size})


def started_sdk_ids(workload: Workload) -> dict[str, set[str]]:
    """The SDK ids each job's start lines carry: the job its worker ran."""
    found: dict[str, set[str]] = {}
    path = workload.history_path
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # the checker counts it as malformed
        if isinstance(record, dict) and record.get("event") == "start" and record.get("sdk_id") is not None:
            found.setdefault(str(record.get("id")), set()).add(str(record["sdk_id"]))
    return found


def misattributed(workload: Workload, acks: list[Ack]) -> list[str]:
    """Unless each job's worker saw the SDK id its acknowledgement gave (the batch call's answers
    matched to the right specs), says how many did not."""
    ran_as = started_sdk_ids(workload)
    wrong = [(a.id, a.sdk_id, sorted(ran_as.get(a.id or "", ()))) for a in acks if ran_as.get(a.id or "") != {a.sdk_id}]
    if not wrong:
        return []
    return [
        f"{len(wrong)} jobs ran under another SDK id than their acknowledgement's"
        f" (id, acknowledged, ran as): {wrong[:3]}"
    ]


@pytest.mark.needs("batch_enqueue", "worker")
def test_batch_enqueue(workload: Workload) -> None:
    """250 specs (mixed payloads, some with a priority) in batches of 100, the last one only
    flushed at EOF: every spec acknowledged in order with a distinct SDK id, the backlog counted
    by the system's stats, and every job run exactly once, under the id it was acknowledged
    with, carrying its payload unchanged."""
    specs = workload.specs(250, echo_payload=True)
    for n, spec in enumerate(specs):
        if n % 3 == 0:
            spec["payload"] = PAYLOADS[n // 3 % len(PAYLOADS)]
        if n % 4 == 0:
            spec["priority"] = workload.rng.randrange(4)
    result = workload.enqueue(specs, driver=batching(workload.driver, 100))
    assert [a.id for a in result.acks] == [s["id"] for s in specs], "acknowledgements out of input order"
    refused = [(a.id, a.error) for a in result.acks if not a.ok]
    assert not refused, f"{len(refused)} specs refused by the batch call: {refused[:3]}"
    acked_ids = {a.id: a.sdk_id for a in result.acks}
    assert all(acked_ids.values()) and len(set(acked_ids.values())) == len(specs), (
        f"{len(set(acked_ids.values()))} distinct SDK ids for {len(specs)} jobs"
    )
    workload.compare_stats("a batched backlog before any worker starts")

    workload.start(1, concurrency=8)
    workload.wait_until_done(60, settle_s=0.5)
    workload.stop_all()
    report = workload.report()
    assert_holds(report, *EXACTLY_ONCE, "stuck", "stats_mismatches")
    assert report.acknowledged == len(specs)

    received = {r.id: r.payload for r in workload.history().executions if r.has_payload}
    changed = [(s["id"], s["payload"], received.get(s["id"])) for s in specs if received.get(s["id"]) != s["payload"]]
    assert not changed, f"{len(changed)} payloads changed on the way (id, sent, received): {changed[:3]}"
    wrong = misattributed(workload, result.acks)
    assert not wrong, wrong[0]


@pytest.mark.needs("batch_enqueue", "fifo", "worker")
def test_small_batches_keep_enqueue_order(workload: Workload) -> None:
    """60 jobs of equal priority in fifteen batches of 4, enqueued before one worker at concurrency 1
    starts: they run in enqueue order, inside each batch too, each under the SDK id it was
    acknowledged with."""
    specs = workload.specs(60)
    result = workload.enqueue(specs, driver=batching(workload.driver, 4))
    assert all(a.ok for a in result.acks), [(a.id, a.error) for a in result.acks if not a.ok][:3]
    workload.start(1, concurrency=1)
    workload.wait_until_done(60)
    workload.stop_all()
    broken = violations(workload.report(order="fifo"), "lost", "duplicated", "order_inversions")
    broken += misattributed(workload, result.acks)
    assert not broken, "; ".join(broken)


@pytest.mark.needs("batch_enqueue", "priority", "worker")
def test_batch_enqueue_keeps_each_jobs_priority(workload: Workload) -> None:
    """Batches of 25 jobs of mixed priority, enqueued before one worker at concurrency 1 starts:
    no job of a lower priority starts before one of a higher, so each job kept its own priority
    inside its batch (the order among equal priorities is test_small_batches_keep_enqueue_order's)."""
    specs = workload.specs(60)
    for spec in specs:
        spec["priority"] = workload.rng.randrange(4)
    workload.enqueue(specs, driver=batching(workload.driver, 25))
    workload.start(1, concurrency=1)
    workload.wait_until_done(60)
    workload.stop_all()
    assert_holds(workload.report(), "lost", "duplicated")
    priority = {s["id"]: s["priority"] for s in specs}
    runs = runs_by_job(workload.history())
    started = [i for _, _, i in sorted((r[0].start, r[0].seq, i) for i, r in runs.items() if i in priority)]
    inverted = [
        (a, priority[a], b, priority[b])
        for n, a in enumerate(started)
        for b in started[n + 1 :]
        if priority[a] < priority[b]
    ]
    assert not inverted, (
        f"{len(inverted)} pairs ran lower priority first (started first, its priority, started later, its priority):"
        f" {inverted[:3]}"
    )
