"""The chaos catalog: the same seeded schedule for every SDK, one fault kind per scenario.

Every system must lose nothing; duplicates and overlaps are allowed where the system's
contract is at-least-once (every fault here can make a job run again) and counted on the
cell; a worker that does not resume within the contract's bound after the heal fails the cell.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import pytest
from psycopg.conninfo import conninfo_to_dict

from chaos import nemesis, schedule, wave
from chaos.toxiproxy import Proxy, ToxiproxyServer, through
from e2e.workload import Workload
from gauntlet.driver import Driver
from gauntlet.pg import Harness


def judge(outcome: wave.Outcome, workload: Workload) -> None:
    """lost, duplicated, stuck and recovery_s are already on the case (Workload.report, wave.run)."""
    report = outcome.report
    assert outcome.progressed, "the workers ran nothing before any fault was applied" + (
        f" (worker said: {' | '.join(report.notes)})" if report.notes else ""
    )
    workload.judge(report, "lost", "unexpected", "duplicated", "overlaps", "stuck", redelivery=True)
    assert outcome.recovery_s is not None, (
        f"work never resumed within {wave.recovery_bound_s(workload):g} s of the heal{workload.recovery_note()}"
    )


def chaos_case(name: str) -> Callable[..., None]:
    """Builds the test body shared by the proxy faults."""

    def body(
        workload: Workload,
        worker_driver: Driver,
        proxy: Proxy,
        seed: int,
        make: Callable[[Proxy], nemesis.Fault],
    ) -> None:
        plan = schedule.draw(name, seed)
        judge(wave.run(workload, worker_driver, plan, lambda: make(proxy)), workload)

    return body


PROXY_FAULTS: dict[str, Callable[[Proxy], nemesis.Fault]] = {
    "reset_peer": lambda p: nemesis.Toxic(p, "reset_peer", {"timeout": 0}),
    "latency_spike": lambda p: nemesis.Toxic(p, "latency", {"latency": 500, "jitter": 200}),
    "partition": lambda p: nemesis.Partition(p),
    "half_open": lambda p: nemesis.Toxic(p, "timeout", {"timeout": 0}),
    "slicer": lambda p: nemesis.Toxic(p, "slicer", {"average_size": 64, "size_variation": 32, "delay": 200}),
    "bandwidth": lambda p: nemesis.Toxic(p, "bandwidth", {"rate": 8}),
    "limit_data": lambda p: nemesis.Toxic(p, "limit_data", {"bytes": 4096}),
}


@pytest.mark.needs("worker")
@pytest.mark.parametrize("fault", sorted(PROXY_FAULTS))
def test_network_fault(fault: str, workload: Workload, worker_driver: Driver, proxy: Proxy, seed: int) -> None:
    """A Toxiproxy fault on the workers' connections, then heal."""
    chaos_case(fault)(workload, worker_driver, proxy, seed, PROXY_FAULTS[fault])


def _database(driver: Driver) -> str:
    return str(conninfo_to_dict(driver.dsn)["dbname"])


@pytest.mark.needs("worker", "listen_notify")
def test_listen_connection_killed(workload: Workload, worker_driver: Driver, harness: Harness, seed: int) -> None:
    """The worker's LISTEN connection is terminated (pg_terminate_backend); it must re-listen or poll."""
    plan = schedule.draw("listen_killed", seed)
    fault = lambda: nemesis.TerminateBackends(harness.server.dsn(), _database(worker_driver), "LISTEN%")  # noqa: E731
    judge(wave.run(workload, worker_driver, plan, fault), workload)


@pytest.mark.needs("worker")
def test_backend_killed_between_dequeue_and_ack(
    workload: Workload, worker_driver: Driver, harness: Harness, seed: int
) -> None:
    """Every backend serving the workers is terminated while jobs are in flight (fetched, not yet acknowledged)."""
    plan = schedule.draw("backend_killed", seed, faults=2, longest_s=1.0)
    fault = lambda: nemesis.TerminateBackends(harness.server.dsn(), _database(worker_driver))  # noqa: E731
    judge(wave.run(workload, worker_driver, plan, fault), workload)


@pytest.mark.needs("worker")
def test_postgres_restart_mid_wave(workload: Workload, worker_driver: Driver, harness: Harness, seed: int) -> None:
    """The whole cluster restarts (fast shutdown, start) in the middle of a wave."""
    if harness.cluster is None:
        pytest.skip("not applicable: an external server is not restarted by the harness")
    plan = schedule.draw("postgres_restart", seed, longest_s=1.0)
    judge(
        wave.run(workload, worker_driver, plan, lambda: nemesis.RestartPostgres(harness.cluster)),
        workload,
    )


@pytest.mark.needs("worker")
def test_statement_timeout(workload: Workload, worker_driver: Driver, harness: Harness, seed: int) -> None:
    """Every statement of the workers' database times out after 1 ms for a while."""
    plan = schedule.draw("statement_timeout", seed)
    fault = lambda: nemesis.StatementTimeout(harness.server.dsn(), _database(worker_driver))  # noqa: E731
    judge(wave.run(workload, worker_driver, plan, fault), workload)


@pytest.mark.needs("worker")
def test_max_connections_exhausted(workload: Workload, worker_driver: Driver, harness: Harness, seed: int) -> None:
    """Other sessions hold every free connection slot, and the workers' own connections are dropped."""
    plan = schedule.draw("max_connections", seed)
    database = _database(worker_driver)

    def fault() -> nemesis.Fault:
        return nemesis.ConnectionHog(harness.server.dsn(), harness.server.dsn(), terminate_database=database)

    judge(wave.run(workload, worker_driver, plan, fault), workload)


@pytest.mark.needs("worker")
def test_worker_paused_past_its_lease(workload: Workload, worker_driver: Driver, seed: int) -> None:
    """One worker is SIGSTOPped for longer than the visibility timeout/lease, then SIGCONTed."""
    plan = schedule.draw("worker_pause", seed, earliest_s=0.5, longest_s=4.5)
    judge(
        wave.run(workload, worker_driver, plan, lambda: nemesis.PauseWorker(workload.workers[0])),
        workload,
    )


@pytest.mark.needs("worker", "crash_recovery")
def test_worker_killed_mid_wave(workload: Workload, worker_driver: Driver, seed: int) -> None:
    """One worker is SIGKILLed mid-wave; a replacement starts at the heal."""
    plan = schedule.draw("worker_kill", seed, longest_s=1.0)

    def fault() -> nemesis.Fault:
        return nemesis.KillWorker(
            workload.workers[0], lambda: workload.start(1, wave.CONCURRENCY, driver=worker_driver)
        )

    judge(wave.run(workload, worker_driver, plan, fault), workload)


MVCC_JOBS = 300


def _timed_wave(workload: Workload, bound_s: float) -> float | None:
    """One wave of MVCC_JOBS through the running workers: jobs/s from its first start to its
    last end, or None when it did not finish within the bound."""
    specs = workload.specs(MVCC_JOBS)
    workload.enqueue(specs)
    if not workload.wait_until_done(bound_s):
        return None
    mine = {s["id"] for s in specs}
    runs = [r for r in workload.history().executions if r.id in mine and r.outcome == "ok" and r.end]
    span = max(r.end for r in runs if r.end) - min(r.start for r in runs)
    return round(len(mine) / max(span, 1e-3), 1)


@pytest.mark.needs("worker")
def test_snapshot_held_open(workload: Workload, worker_driver: Driver, database: str) -> None:
    """Two equal waves, the second while a REPEATABLE READ reader and an idle-in-transaction
    session hold the xmin horizon back: nothing lost or run twice beyond the contract, and
    the cell's figures say what the held horizon cost (throughput against the first wave,
    dead rows in the system's tables before and after)."""
    workload.start(wave.WORKERS, concurrency=wave.CONCURRENCY, driver=worker_driver)
    bound = wave.recovery_bound_s(workload) + MVCC_JOBS * 0.1
    free = _timed_wave(workload, bound)
    before = nemesis.dead_tuples(database)
    held = nemesis.HeldSnapshot(database)
    applied = time.time()
    held.apply()
    try:
        pressed = _timed_wave(workload, bound)
        after = nemesis.dead_tuples(database)
    finally:
        held.heal()
        # The held horizon is this scenario's fault window: its cell's timeline shades it.
        workload.faults.append({**held.describe(), "applied": applied, "healed": time.time()})
    workload.stop_all()
    workload.record("jobs_per_s_free", free)
    workload.record("jobs_per_s_snapshot_held", pressed)
    workload.record("throughput_ratio", round(pressed / free, 3) if free and pressed else None)
    workload.record("dead_tuples_before", before)
    workload.record("dead_tuples_after", after)
    report = workload.report()
    workload.judge(report, "lost", "unexpected", "duplicated", "overlaps", "stuck", redelivery=True)
    assert free is not None and pressed is not None, (
        f"a wave of {MVCC_JOBS} jobs did not finish within {bound:g} s"
        f" ({'with' if free is not None else 'without'} the snapshot held)"
    )


@pytest.mark.needs("worker")
def test_primary_turns_read_only(workload: Workload, worker_driver: Driver, harness: Harness, seed: int) -> None:
    """The primary refuses writes for a while (default_transaction_read_only, SQLSTATE 25006),
    then accepts them again: nothing lost, work resumes within the contract's bound."""
    plan = schedule.draw("read_only", seed)
    judge(wave.run(workload, worker_driver, plan, lambda: nemesis.ReadOnlyPrimary(harness.server.dsn())), workload)


@pytest.mark.needs("worker")
def test_failover_to_a_promoted_standby(
    workload: Workload, worker_driver: Driver, proxy: Proxy, toxiproxy: ToxiproxyServer, harness: Harness, seed: int
) -> None:
    """A streaming standby is promoted mid-wave while the primary stops, and the workers'
    address moves to it: nothing lost, work resumes within the contract's bound."""
    if harness.cluster is None:
        pytest.skip("not applicable: an external server is not failed over by the harness")
    primary = harness.cluster
    standby = primary.start_standby()
    front = toxiproxy.create_proxy(f"pg_front_{secrets.token_hex(3)}", primary.port)
    try:
        workload.driver = through(workload.driver, front)  # enqueues and stats follow the primary too
        plan = schedule.draw("failover", seed, longest_s=1.0)
        judge(
            wave.run(workload, worker_driver, plan, lambda: nemesis.Failover(primary, standby, [proxy, front])),
            workload,
        )
    finally:
        workload.stop_all()
        standby.stop()
        if primary.process is None or not primary.process.alive():
            primary.start_again()  # the scenarios after this one use the old primary again
        toxiproxy.call(front.client.destroy)
