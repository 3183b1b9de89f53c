"""Every E2E scenario can fail: each deliberately broken driver (tests/broken_drivers/flawed.py)
is caught by the scenario aimed at the property it breaks, and the honest driver is not.

The broken drivers live in a scratch adapters tree laid out as the catalog wants it
(`<system>/system.toml` + `<system>/<sdk>/manifest.toml`), built from PGMQ's own system folder:
`pgmq` (PGMQ's installer, stats query and contract, plus the retry shape of its visibility
timeout, for the drivers that claim retries) and `pgmq-miscounts` (the same, with a stats query
that under-reports queued jobs by a tenth).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from junitparser import Error, Failure, JUnitXml

from e2e.fixtures import POOLER_CRASHED
from gauntlet import catalog, paths
from reports import junit

FLAWED = paths.ROOT / "tests" / "broken_drivers" / "flawed.py"
PGMQ = paths.ADAPTERS / "pgmq"

# PGMQ's SDKs claim no retries; the drivers here that do, retry by PGMQ's redelivery once the
# visibility timeout the scenarios set (2 s) has passed since the read: that is their backoff.
RETRY_BY_VT = {
    "retry_backoff": "the visibility timeout: a failed message is read again once its vt (2 s) has passed",
    "retry_min_gap_s": 1.5,
    "retry_max_gap_s": 2.5,
    "retry_source": "pgmq.sql pgmq.read: WHERE vt <= clock_timestamp(); the scenarios' visibility_timeout_s",
}

# The periodic drivers' own schedule: a timer in each worker that enqueues a tick at its second.
PERIODIC_BY_TIMER = {
    "periodic_period_s": 1.0,
    "periodic_late_s": 0.5,
    "periodic": "the driver's timer in each worker; a tick table (the control) lets one worker enqueue each tick",
    "periodic_source": "tests/broken_drivers/flawed.py periodic_work, tick_claim",
}


# The scratch upgrade: a schema change the flawed N-1 worker notices (a marker table).
MARKER_UPGRADE = {
    "migrate": ["{python}", "-c", "import os, psycopg; psycopg.connect(os.environ['GAUNTLET_DSN'], autocommit=True)"
                ".execute('CREATE TABLE public.gauntlet_upgraded ()')"],
    "version_sql": "SELECT to_regclass('public.gauntlet_upgraded') IS NOT NULL",
    "source": "tests/test_broken_drivers.py MARKER_UPGRADE: N-1 keeps working",
}  # fmt: skip


def undercount(sql: str) -> str:
    wrong = sql.replace(") AS queued", ") * 9 / 10 AS queued", 1)
    assert wrong != sql, "PGMQ's stats query no longer has the shape this copy edits"
    return wrong


SYSTEMS: dict[str, dict[str, Any]] = {
    "pgmq": {"contract": {**RETRY_BY_VT, **PERIODIC_BY_TIMER}},
    "pgmq-miscounts": {"contract": RETRY_BY_VT, "stats_sql": undercount},
    # A contract promising what PGMQ does not: a job outliving its lease is not taken again.
    "pgmq-claims-lease-extension": {"contract": {**RETRY_BY_VT, "long_job_runs_again": False}},
    # An upgrade path for the upgrade scenario: N-1 is PGMQ's own installer, the migration adds a marker table.
    "pgmq-upgrades": {
        "contract": RETRY_BY_VT,
        "tables": {"upgrade": MARKER_UPGRADE},
        "manifest": {
            "previous": {"version": "0-previous", "installer": ["{python}", str(PGMQ / "installer" / "install.py")]}
        },
    },
}


@dataclass(frozen=True)
class Flawed:
    flaw: str  # flawed.py's argument
    scenarios: str  # -k selection: the scenario(s) that must catch it
    says: str = ""  # regex the failure must match
    passes: str = ""  # scenarios it must pass: the fault hides from them (only some conditions show it)
    system: str = "pgmq"
    catalog: str = "e2e"  # the pytest folder its scenarios are in


AIMED = {
    "broken-drops": Flawed("drops", "test_basic_wave", "lost"),
    "broken-twice": Flawed("twice", "test_basic_wave", "duplicated"),
    "broken-disorder": Flawed("disorder", "test_fifo_ordering or test_priority_ordering", "order_inversions"),
    "broken-outside-tx": Flawed("outside_tx", "test_transactional_enqueue_rollback", "rolled-back jobs ran"),
    "broken-no-retry": Flawed("no_retry", "test_retry_storm", "attempt_violations"),
    "broken-no-delay": Flawed("no_delay", "test_delayed_jobs", "started early"),
    "broken-no-dedupe": Flawed("no_dedupe", "test_dedupe_keys", "executions for one dedupe key"),
    "broken-no-dead-letter": Flawed(
        "no_dead_letter", "test_dead_letter_after_max_attempts", "dead/failed after max_attempts|expected exactly 3"
    ),
    "broken-sigterm-loses": Flawed("sigterm_loses", "test_graceful_shutdown", "abandoned at SIGTERM"),
    "broken-hangs": Flawed("hangs", "test_basic_wave", "still running after 3 s"),
    "broken-garbage": Flawed("garbage", "test_basic_wave", "is not JSON"),
    # Gaps the checker had: a retry at once, a rare leak, a short delay, a wrong stats query.
    "broken-no-backoff": Flawed("no_backoff", "test_retry_storm", "backoff_violations"),
    "broken-leaky-tx": Flawed("leaky_tx", "test_transactional_enqueue_rollback", "rolled-back jobs ran"),
    "broken-short-delay": Flawed("short_delay", "test_delayed_jobs", "started early"),
    "broken-miscounts": Flawed("none", "test_basic_wave", "stats_mismatches", system="pgmq-miscounts"),
    # Subtler faults: only under concurrency, at the edge of a run, at SIGTERM, for some values.
    "broken-shared-slots": Flawed(
        "shared_slots", "test_basic_wave", "duplicated|overlaps", passes="test_fifo_ordering"
    ),
    "broken-drops-last": Flawed("drops_last", "test_basic_wave", r"lost 1: "),
    # Every enqueue refused: properties of acknowledged jobs hold of none, so the scenario
    # (one without a count of its own: the long job's) must say it judged nothing.
    "broken-refuses-all": Flawed("refuses_all", "test_job_longer_than_its_lease", "nothing to judge"),
    "broken-sigterm-unacked": Flawed("sigterm_unacked", "test_graceful_shutdown", "stats_mismatches|stuck|duplicated"),
    "broken-priority-cap": Flawed("priority_cap", "test_priority_ordering", "order_inversions"),
    "broken-mangles-unicode": Flawed(
        "mangles_unicode", "test_large_payloads", "payload changed on the way", passes="test_basic_wave"
    ),
    "broken-dedupe-case": Flawed("dedupe_case", "test_dedupe_keys", "executions for one dedupe key"),
    # Only with batch_size: the spec-by-spec path the other scenarios use is the honest one.
    "broken-batch-drops-last": Flawed("batch_drops_last", "test_batch_enqueue", r"lost 3: ", passes="test_basic_wave"),
    # The honest driver under a contract that promises a lease extension it does not make.
    "broken-no-lease-extension": Flawed(
        "none", "test_job_longer_than_its_lease", "duplicated|overlaps", system="pgmq-claims-lease-extension"
    ),
    # Faults of the primary itself, and a held xmin horizon (the chaos catalog).
    "broken-dies-on-db-error": Flawed(
        "dies_on_db_error",
        "test_primary_turns_read_only or test_failover_to_a_promoted_standby",
        "lost|never resumed",
        passes="test_snapshot_held_open",
        catalog="chaos",
    ),
    "broken-drops-under-held-snapshot": Flawed("drops", "test_snapshot_held_open", "lost", catalog="chaos"),
    # As N-1, once the schema is upgraded, it archives the jobs it reads without running them.
    "broken-upgrade-drops": Flawed(
        "upgrade_drops", "test_upgrade_with_jobs_in_flight", "lost", passes="test_basic_wave", system="pgmq-upgrades"
    ),
    # Each worker fires its own timer and enqueues the tick itself: two workers run each tick twice.
    "broken-periodic-each": Flawed("periodic_each", "test_periodic_job_runs_once_per_tick", "ticks run twice"),
}

# Honest implementations of the capabilities the broken drivers claim and PGMQ lacks: each
# passes the scenario its broken siblings fail, so what fails them is the flaw, not the claim.
CONTROLS = {
    "control-retrying": Flawed("retrying", "test_retry_storm"),
    "control-sorted": Flawed("sorted", "test_priority_ordering"),
    "control-dedupe": Flawed("dedupe", "test_dedupe_keys"),
    "control-upgrading": Flawed("upgrading", "test_upgrade_with_jobs_in_flight", system="pgmq-upgrades"),
    "control-periodic": Flawed("periodic", "test_periodic_job_runs_once_per_tick"),
}


def to_toml(data: dict[str, Any]) -> str:
    """Enough TOML for a system or manifest file: scalars, lists, inline tables, one level of tables."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)  # JSON's string escapes are TOML basic-string escapes
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"no TOML for {v!r}")

    lines = [f"{json.dumps(k)} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append(f"\n[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {value(v)}" for k, v in table.items()]
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text) == data, "to_toml lost something"
    return text


def scratch_tree(root: Path, sdks: dict[str, Flawed]) -> Path:
    """The broken drivers' adapters tree, from PGMQ's system folder plus SYSTEMS' changes."""
    real = tomllib.loads((PGMQ / "system.toml").read_text())
    for name, changes in SYSTEMS.items():
        data = copy.deepcopy(real)
        data["installer"]["folder"] = str(PGMQ / data["installer"].get("folder", "."))  # PGMQ's own installer
        data["contract"].update(changes.get("contract", {}))
        data.update(copy.deepcopy(changes.get("tables", {})))
        edit: Callable[[str], str] | None = changes.get("stats_sql")
        if edit is not None:
            data["stats"]["sql"] = edit(data["stats"]["sql"])
        (root / name).mkdir(parents=True)
        (root / name / "system.toml").write_text(to_toml(data))
    for name, sdk in sdks.items():
        folder = root / sdk.system / name
        folder.mkdir()
        manifest = {"language": "python", "version": "0", "driver": ["{python}", str(FLAWED), sdk.flaw]}
        manifest.update(SYSTEMS[sdk.system].get("manifest", {}))
        (folder / "manifest.toml").write_text(to_toml(manifest))
    loaded = catalog.load(root)
    assert not loaded.broken, loaded.broken
    assert {s.name for s in loaded.sdks()} == set(sdks)
    return root


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scratch_tree(tmp_path_factory.mktemp("adapters"), {**AIMED, **CONTROLS})


def run_scenarios(
    sdk: str, selection: str, adapters: Path, tmp_path: Path, folder: str = "e2e", extra: tuple[str, ...] = ()
) -> list[tuple[str, str, str]]:
    """(case, verdict, message) for each case of a child pytest over e2e/ (or chaos/)."""
    junit = tmp_path / f"{sdk}.xml"
    env = {
        **os.environ,
        "GAUNTLET_ADAPTERS": str(adapters),
        "GAUNTLET_COMMAND_BOUND_S": "3",
        "GAUNTLET_STOP_BOUND_S": "3",
    }
    env.pop("GAUNTLET_EVENTS", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            folder,
            f"--sdk={sdk}",
            "-k",
            selection,
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "-q",
            *extra,
        ],
        cwd=paths.ROOT,
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert junit.exists(), f"the child pytest wrote no JUnit file: {done.stdout[-2000:]!r} {done.stderr[-2000:]!r}"
    cases = []
    for suite in JUnitXml.fromfile(str(junit)):
        for case in suite:
            problems = [r for r in case.result if isinstance(r, (Failure, Error))]
            verdict = "error" if any(isinstance(r, Error) for r in problems) else ("fail" if problems else "pass")
            if case.is_skipped:
                verdict = "n/a"
            text = " ".join(f"{r.message or ''} {r.text or ''}" for r in problems)
            cases.append((case.name, verdict, text))
    return cases


def _scenario(case: str) -> str:
    return case.split("[")[0]


@pytest.mark.parametrize("broken", sorted(AIMED))
def test_each_broken_driver_is_caught(broken: str, adapters: Path, tmp_path: Path) -> None:
    aimed = AIMED[broken]
    selection = f"{aimed.scenarios} or {aimed.passes}" if aimed.passes else aimed.scenarios
    cases = run_scenarios(broken, selection, adapters, tmp_path, aimed.catalog)
    catching = set(aimed.scenarios.split(" or "))
    shown = [(c[0], c[1], c[2][:300]) for c in cases]
    assert any(_scenario(c[0]) in catching for c in cases), f"no scenario ran for {broken}: {shown}"
    caught = [
        c for c in cases if _scenario(c[0]) in catching and c[1] in ("fail", "error") and re.search(aimed.says, c[2])
    ]
    assert caught, f"{broken} was not caught by {aimed.scenarios}: {shown}"
    if aimed.passes:  # and the fault hides from the scenarios that do not meet its condition
        hiding = [c for c in cases if _scenario(c[0]) in set(aimed.passes.split(" or "))]
        assert hiding and all(c[1] == "pass" for c in hiding), f"{broken} should pass {aimed.passes}: {shown}"


@pytest.mark.parametrize("control", sorted(CONTROLS))
def test_each_control_passes_what_its_broken_siblings_fail(control: str, adapters: Path, tmp_path: Path) -> None:
    cases = run_scenarios(control, CONTROLS[control].scenarios, adapters, tmp_path)
    assert cases and all(c[1] == "pass" for c in cases), [(c[0], c[1], c[2][:300]) for c in cases]


@pytest.mark.parametrize("folder", ["e2e", "chaos"])
def test_the_honest_driver_passes_the_same_scenarios(folder: str, tmp_path: Path) -> None:
    """Under PGMQ's own contract (the lease-extension one's scenario included: there it passes)."""
    aimed = [a for a in AIMED.values() if a.catalog == folder]
    selection = " or ".join(sorted({s for a in aimed for s in a.scenarios.split(" or ")}))
    cases = run_scenarios("pgmq-py", selection, paths.ADAPTERS, tmp_path, folder)
    assert {_scenario(c[0]) for c in cases} >= {s for a in aimed for s in a.scenarios.split(" or ")} - {
        "test_priority_ordering", "test_dedupe_keys", "test_retry_storm", "test_dead_letter_after_max_attempts"
    }  # fmt: skip
    wrong = [(c[0], c[1], c[2][:300]) for c in cases if c[1] not in ("pass", "n/a")]
    assert not wrong, wrong


@pytest.mark.parametrize("rerun", [False, True], ids=["once", "rerun"])
def test_a_pooler_that_crashes_mid_scenario_costs_that_cell_only(rerun: bool, tmp_path: Path) -> None:
    """PgBouncer killed as the first scenario starts: that cell is an *error* naming the crash
    (as the report reads its JUnit), or *flaky* with that reason when its re-run passes; the
    next scenario meets a restarted bouncer and passes."""
    crash = ("--topology=pgbouncer", "-p", "tests.helpers.crash_pooler", *(["--rerun-failures"] if rerun else []))
    run_scenarios("pgmq-py", "test_basic_wave or test_fifo_ordering", paths.ADAPTERS, tmp_path, extra=crash)
    cases = {c.name: c for c in junit.load_all(tmp_path)}
    shown = {name: (c.verdict, c.message[:300]) for name, c in cases.items()}
    first = "flaky" if rerun else "error"
    assert [(n, c.verdict) for n, c in cases.items()] == [("test_basic_wave", first), ("test_fifo_ordering", "pass")]
    said = cases["test_basic_wave"].message
    assert POOLER_CRASHED in said and "PgBouncer exited (status -9)" in said, shown
