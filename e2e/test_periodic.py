"""Periodic jobs: two workers given the same schedule run each of its ticks exactly once."""

from __future__ import annotations

import math
import time

import pytest

from gauntlet.catalog import Contract
from gauntlet.checker import not_ticks, runs_by_tick, tick_lateness, ticks_missed, ticks_off_grid, ticks_run_twice

from .workload import LATE_SLACK_S, Workload, violations

# Periods a cron schedule can keep on the wall clock's grid (seconds within a minute, minutes
# within an hour): the harness gives the workers one of them as `periodic.every_s`.
GRID_S = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60, 120, 300)
MIN_PERIOD_S = 2  # even where an SDK schedules every second: a loaded 2-core machine has ~1 s of noise
TICKS_WATCHED_S = 10.0  # how many periods are watched: as many as fit in this, 1 to 4
STARTUP_S = 4.0  # how long a worker may take to start and register its schedule (the harness's own)


def period_s(contract: Contract) -> int:
    """The shortest grid period the system schedules, at least MIN_PERIOD_S, that an occurrence
    starts within (the contract's lateness plus the harness's slack): one per period."""
    floor = max(contract.periodic_period_s, MIN_PERIOD_S, contract.periodic_late_s + LATE_SLACK_S + 0.01)
    return next(p for p in GRID_S if p >= floor)


@pytest.mark.needs("worker", "periodic")
def test_periodic_job_runs_once_per_tick(workload: Workload) -> None:
    """Two workers of one SDK register the same periodic job through the SDK's own scheduling
    API, every `every_s` (the system's finest period, at least 2 s; a minute where that is the
    system's finest: the run is then aligned to the wall clock's minute). Each tick that elapsed
    while both ran runs exactly once (the first and last partial periods may go either way); no
    tick runs twice, whichever worker runs it; nothing runs off the schedule."""
    contract = workload.contract
    every = period_s(contract)
    count = max(1, min(4, int(TICKS_WATCHED_S // every)))
    late = contract.periodic_late_s + LATE_SLACK_S
    started = time.time()
    first_due = math.ceil((started + STARTUP_S) / every) * every  # the first tick both workers must be up for
    last_due = first_due + (count - 1) * every
    workload.start(2, concurrency=1, periodic={"every_s": every})
    # Past the last tick's lateness, and long enough after it for a second run to show.
    time.sleep(max(0.0, last_due + late + 1.0 - time.time()))
    workload.stop_all()
    stopped = time.time()
    history = workload.history()
    ticks = runs_by_tick(history)
    seen_first = min(ticks, default=first_due)
    # A tick the schedule ran before the harness's startup allowance was over is the schedule's
    # start: every tick after it is due as well.
    due_from = max(started - every, min(first_due, seen_first))
    twice = ticks_run_twice(ticks)
    missed = ticks_missed(ticks, every, due_from, last_due)
    off_grid = ticks_off_grid(ticks, every, started - every, stopped)
    lateness = {t: s for t, s in tick_lateness(ticks).items() if t >= started}  # not a start-up catch-up
    for key, value in (
        ("periodic_every_s", every),
        ("periodic_ticks_due", len(range(math.ceil(due_from / every) * every, last_due + 1, every))),
        ("periodic_ticks_seen", len(ticks)),
        ("periodic_executions", sum(len(runs) for runs in ticks.values())),
        ("periodic_run_twice", len(twice)),
        ("periodic_missed", len(missed)),
        ("periodic_late_max_s", max(lateness.values(), default=None)),
        ("periodic_workers", ",".join(sorted({r.worker for runs in ticks.values() for r in runs}))),
    ):
        workload.record(key, value)
    report = workload.report(with_stats=False)
    broken = []
    if twice:
        broken.append(f"ticks run twice {len(twice)}: {sorted(twice.items())[:5]} ({contract.periodic})")
    if missed:
        broken.append(f"ticks missed {len(missed)}: {missed[:5]} (every {every} s, due {due_from:.1f}-{last_due})")
    if off_grid:
        broken.append(f"ticks off the schedule {len(off_grid)}: {off_grid[:5]} (every {every} s)")
    if strays := not_ticks(history):
        broken.append(f"executions that name no tick {len(strays)}: {strays[:5]}")
    broken += violations(report, "malformed")
    if broken and report.notes:
        broken.append("worker said: " + " | ".join(report.notes))
    assert not broken, "; ".join(broken)
