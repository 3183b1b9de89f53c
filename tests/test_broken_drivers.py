"""Every E2E scenario can fail: each deliberately broken driver (tests/broken_drivers/) is
caught by the scenario aimed at the property it breaks, and the honest driver is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml

from gauntlet import paths

BROKEN = paths.ROOT / "tests" / "broken_drivers"

# broken driver -> (scenario it must fail, what the failure must say)
AIMED = {
    "broken-drops": ("test_basic_wave", "lost"),
    "broken-twice": ("test_basic_wave", "duplicated"),
    "broken-disorder": ("test_fifo_ordering or test_priority_ordering", "order_inversions"),
    "broken-outside-tx": ("test_transactional_enqueue_rollback", "rolled-back jobs ran"),
    "broken-no-retry": ("test_retry_storm", "attempt_violations"),
    "broken-no-delay": ("test_delayed_jobs", "started early"),
    "broken-no-dedupe": ("test_dedupe_keys", "executions for one dedupe key"),
    "broken-no-dead-letter": (
        "test_dead_letter_after_max_attempts",
        "dead/failed after max_attempts|expected exactly 3",
    ),
    "broken-sigterm-loses": ("test_graceful_shutdown", "abandoned at SIGTERM"),
    "broken-hangs": ("test_basic_wave", "still running after 3 s"),
    "broken-garbage": ("test_basic_wave", "is not JSON"),
}


def run_scenarios(sdk: str, selection: str, adapters: Path, tmp_path: Path) -> list[tuple[str, str, str]]:
    """(case, verdict, message) for each case of a child pytest over e2e/."""
    junit = tmp_path / f"{sdk}.xml"
    env = {
        **os.environ,
        "GAUNTLET_ADAPTERS": str(adapters),
        "GAUNTLET_COMMAND_BOUND_S": "3",
        "GAUNTLET_STOP_BOUND_S": "3",
    }
    env.pop("GAUNTLET_EVENTS", None)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "e2e",
            f"--sdk={sdk}",
            "-k",
            selection,
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "-q",
        ],
        cwd=paths.ROOT,
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
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


@pytest.mark.parametrize("broken", sorted(AIMED))
def test_each_broken_driver_is_caught(broken: str, tmp_path: Path) -> None:
    import re

    selection, says = AIMED[broken]
    cases = run_scenarios(broken, selection, BROKEN, tmp_path)
    assert cases, f"no scenario ran for {broken}"
    caught = [c for c in cases if c[1] in ("fail", "error") and re.search(says, c[2])]
    assert caught, f"{broken} was not caught by {selection}: {[(c[0], c[1], c[2][:200]) for c in cases]}"


def test_the_honest_driver_passes_the_same_scenarios(tmp_path: Path) -> None:
    selection = " or ".join(sorted({s for aimed in AIMED.values() for s in aimed[0].split(" or ")}))
    cases = run_scenarios("pgmq-py", selection, paths.ADAPTERS, tmp_path)
    assert {c[0].split("[")[0] for c in cases} >= {"test_basic_wave", "test_fifo_ordering", "test_graceful_shutdown"}
    wrong = [(c[0], c[1], c[2][:300]) for c in cases if c[1] not in ("pass", "n/a")]
    assert not wrong, wrong
