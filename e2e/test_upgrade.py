"""Upgrade with jobs in flight: the schema installed by the SDK's N-1 release (manifest
`[previous]`), N-1 workers on a stream of jobs, N's own migration path (system.toml
`[upgrade]`) run while they still work, then N workers and N producers. Judged: nothing lost,
nothing run twice unless an N-1 worker ended (then at-least-once may redeliver), and each N-1
worker either keeps working or exits the way its SDK documents (`previous_exits`)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from e2e.workload import EXACTLY_ONCE, WORKER_OPTIONS, Workload, violations
from gauntlet import schemas
from gauntlet.catalog import Contract, Sdk, System
from gauntlet.checker import PreviousWorker, in_flight_at, starts_since, upgrade_problems
from gauntlet.driver import Driver
from gauntlet.pg import Harness

BATCH = 24  # jobs per phase: before the migration, during it, after N-1 is retired
SLEEP_MS = 150  # long enough that N-1 holds jobs while the migration runs
WINDOW_S = 6.0  # how long N-1's workers get to show they still work on the migrated schema
DIRECT = "schemas move straight on PostgreSQL in every topology; one topology judges the upgrade"


def schema_version(sql: str, dsn: str) -> str:
    """The installed schema's version, by the system's own `version_sql` ("" when none is declared)."""
    if not sql:
        return ""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()  # type: ignore[arg-type]  # a query the system declares
    return "" if row is None else str(row[0])


def previous_driver(manifest: Sdk, harness: Harness, dsn: str, queue: str) -> Driver:
    """The same driver on the N-1 release: its own build (`[previous] driver`), or the SDK's
    driver told by the config's `release`."""
    previous = manifest.previous
    assert previous is not None
    # In the committed folder, where the bootstrap built N-1 (a local source of N builds elsewhere).
    sdk = replace(manifest, version=previous.version, driver=previous.driver or manifest.driver, folder=manifest.home)
    options = {"visibility_timeout_s": WORKER_OPTIONS["visibility_timeout_s"], "release": "previous"}
    return Driver(sdk, harness.supervisor, dsn, queue, options=options)


@pytest.mark.needs("upgrade", "worker")
@pytest.mark.direct_only(DIRECT)
def test_upgrade_with_jobs_in_flight(
    harness: Harness,
    manifest: Sdk,
    system: System,
    contract: Contract,
    queue_name: str,
    seed: int,
    tmp_path: Path,
    record_property,
) -> None:
    previous, upgrade = manifest.previous, system.upgrade
    if previous is None or upgrade is None:
        pytest.fail(f"{manifest.name} claims upgrade without a [previous] release or its system's [upgrade]")
    record_property("previous_version", previous.version)
    record_property("version", manifest.version)
    t0, phases = time.monotonic(), {}  # where the cell's time goes, a figure on it

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - t0, 2)

    dsn = harness.databases.dsn(harness.databases.fresh(label="upgrade"))  # no schema yet: N-1 installs it
    schemas.run(f"install-{manifest.name}-previous", previous.installer, manifest.home, previous.env, dsn,
                harness.supervisor)  # fmt: skip
    old = previous_driver(manifest, harness, dsn, queue_name)
    new = Driver(
        manifest,
        harness.supervisor,
        dsn,
        queue_name,
        options={"visibility_timeout_s": WORKER_OPTIONS["visibility_timeout_s"]},
    )
    old.prepare()
    phase("installed")
    load = Workload(old, tmp_path, seed, contract, record=record_property)
    try:
        load.enqueue(load.specs(BATCH, sleep_ms=SLEEP_MS))
        olds = load.start(2, concurrency=2, driver=old)
        assert load.wait_for_starts(BATCH // 4, bound_s=20), "N-1's workers started too few jobs before the upgrade"
        phase("previous_running")
        before = schema_version(upgrade.version_sql, dsn)
        began = time.time()
        schemas.run(f"upgrade-{system.name}", upgrade.migrate, upgrade.folder, upgrade.env, dsn, harness.supervisor)
        migrated = time.time()
        after = schema_version(upgrade.version_sql, dsn)
        record_property("migrate_s", round(migrated - began, 2))
        record_property("schema_versions", f"{before} -> {after}")
        record_property("in_flight_at_migration", in_flight_at(load.history(), began))
        if upgrade.version_sql:
            assert before != after, f"the migration left the schema at version {before}: nothing was upgraded"
        load.enqueue(load.specs(BATCH, sleep_ms=SLEEP_MS), driver=new)

        def previous_shown(history) -> bool:  # each N-1 worker has either run a job since, or ended
            since = starts_since(history, migrated)
            return all(not w.alive() or since.get(w.name, 0) for w in olds)

        load.wait_for(previous_shown, WINDOW_S)
        phase("previous_shown")
        ended = {w.name: w.helper.popen.returncode for w in olds if not w.alive()}
        load.start(2, concurrency=2, driver=new)
        since = starts_since(load.history(), migrated)
        stopped = {w.name: w.stop() for w in olds if w.name not in ended}  # N-1 retired: the deploy is done
        if upgrade.after:  # a migration that waits until no N-1 worker is left
            schemas.run(f"upgrade-after-{system.name}", upgrade.after, upgrade.folder, upgrade.env, dsn,
                        harness.supervisor)  # fmt: skip
        phase("previous_retired")
        load.enqueue(load.specs(BATCH, sleep_ms=SLEEP_MS), driver=new)
        load.wait_until_done(bound_s=60)
        phase("done")
        load.stop_all()
        report = load.report()
        phase("stopped")
        record_property("phases_s", phases)
    finally:
        for worker in load.workers:
            worker.kill()
    workers = [PreviousWorker(w.name, ended.get(w.name), stopped.get(w.name), since.get(w.name, 0)) for w in olds]
    record_property("previous_exits", {w.name: w.ended if w.ended is not None else w.stopped for w in workers})
    record_property("previous_starts_after_migration", {w.name: w.starts_after for w in workers})
    record_property("previous_exit_documented", f"{upgrade.previous_exits} ({upgrade.source})")
    allowed = ("duplicated", "overlaps") if ended and contract.at_least_once else ()
    broken = violations(report, *(p for p in (*EXACTLY_ONCE, "stuck") if p not in allowed))
    broken += upgrade_problems(workers, upgrade.previous_exits)
    if broken and report.notes:
        broken.append("worker said: " + " | ".join(report.notes))
    assert not broken, "; ".join(broken)
