"""Adding a system takes one folder and its pgTAP suites, no harness code (README, "Adding a
system"). Proved on a scratch copy of the repository that holds no other system: the example
in tests/example_system/ (skiplocked: one FOR UPDATE SKIP LOCKED table and a Python driver)
is copied in, its sql and e2e sessions run through nox and pass, and afterwards no file
outside the system's two folders differs from the copy that was made.

The scratch copy lives in tmp_path; the real repository's reports/out/ is never written to.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "tests" / "example_system"  # laid out as the repository is: copy it over the root
SYSTEM, SDK = "skiplocked", "skiplocked-py"
SYSTEM_FOLDERS = (f"sdk_adapters/{SYSTEM}/", f"sql_tests/{SYSTEM}/")
# Built by the bootstrap and git-ignored: linked into the copy, not copied (nor rebuilt).
BUILT = (".venv", ".tools", "gauntlet/toolchains/node22/node_modules")
# A fast subset of the E2E catalog that still exercises every capability the driver claims.
SCENARIOS = {
    "test_basic_wave",
    "test_fifo_ordering",
    "test_delayed_jobs",
    "test_transactional_enqueue_rollback",
    "test_worker_crash_mid_job",
    "test_migrate_twice",
    "test_failed_migration_leaves_nothing_half_made",
}
SQL_BOUND_S = 120.0
E2E_BOUND_S = 180.0
# Settings of this machine, not of the run: kept. Every other GAUNTLET_* variable (a pipeline's
# events file, another adapters folder, shortened bounds) would leak the outer run into the copy.
MACHINE_SETTINGS = {"GAUNTLET_PG_DSN", "GAUNTLET_PG_BINDIR"}


def _git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}  # e.g. GIT_DIR: git acts on cwd only
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout


def _harness_files() -> list[str]:
    """The repository as a fresh clone plus work in progress would have it (tracked and
    untracked, not ignored), with sdk_adapters/ cut down to its own files (PROTOCOL.md…) and
    _shared/: no other system."""
    listed = _git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    keep = []
    for name in sorted(set(filter(None, listed))):
        path = REPO / name
        if not (path.is_file() or path.is_symlink()):  # deleted in the work tree
            continue
        if name.startswith("sdk_adapters/") and name.count("/") > 1 and not name.startswith("sdk_adapters/_shared/"):
            continue
        if name.startswith(("tests/example_system/", *SYSTEM_FOLDERS)):
            continue  # the system arrives only by the copy below
        keep.append(name)
    return keep


def _scratch_copy(root: Path) -> None:
    for name in _harness_files():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target, follow_symlinks=False)
    for name in BUILT:
        if (REPO / name).exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).symlink_to(REPO / name)
    # A baseline to compare with afterwards: the copy's own index (nothing is committed).
    _git(root, "init", "-q")
    (root / ".git" / "info" / "exclude").write_text("".join(f"/{name}\n" for name in BUILT))
    _git(root, "add", "-A")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAUNTLET_") or k in MACHINE_SETTINGS}
    env.pop("PYTHONPATH", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _nox(root: Path, log: Path, bound_s: float, *args: str) -> tuple[int, str]:
    """One nox run in the copy, in its own process group; past its bound it gets Ctrl-C (the
    harness then stops its drivers and PostgreSQL), and SIGKILL if that does not end it."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(root / ".venv" / "bin" / "python"), "-m", "nox", *args],
            cwd=root,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=bound_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=75)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            code = -1
    text = log.read_text(errors="replace")
    if code == -1:
        text += f"\n[test_add_system] nox {' '.join(args)} ran past {bound_s:g} s and was interrupted"
    return code, text


def _cases(junit: Path) -> dict[str, tuple[str, str]]:
    """name -> (verdict, message) for every case of a JUnit file."""
    out = {}
    for suite in JUnitXml.fromfile(str(junit)):
        for case in suite:
            problems = [r for r in case.result if isinstance(r, (Failure, Error))]
            verdict = "fail" if problems else ("n/a" if case.is_skipped else "pass")
            flaky = [p.get("value", "") for p in case._elem.iterfind("properties/property") if p.get("name") == "flaky"]
            if flaky and verdict == "pass":
                verdict = "flaky"
            message = " ".join(f"{r.message or ''} {r.text or ''}"[:400] for r in problems) or " ".join(flaky)
            out[f"{suite.name}::{case.name}"] = (verdict, message)
    return out


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _real_outputs_about_the_system(since: float) -> list[Path]:
    out = REPO / "reports" / "out"
    if not out.exists():
        return []
    return [p for p in out.rglob(f"*{SYSTEM}*") if p.stat().st_mtime >= since]


@pytest.mark.timeout(SQL_BOUND_S + E2E_BOUND_S + 2 * 90 + 60)
def test_adding_a_system_is_one_folder_and_its_pgtap_suites(tmp_path: Path) -> None:
    began = time.time()
    root = tmp_path / "repo"
    _scratch_copy(root)
    assert not (root / "sdk_adapters" / SYSTEM).exists()
    harness = [p for d in ("gauntlet", "e2e", "chaos", "reports", "sql_tests") for p in (root / d).rglob("*.py")]
    named = [str(p.relative_to(root)) for p in [*harness, root / "noxfile.py"] if SYSTEM in p.read_text()]
    assert named == [], f"harness code names the example system before it is added: {named}"

    # Adding the system: one folder under sdk_adapters/, its suites under sql_tests/. Nothing else.
    shutil.copytree(EXAMPLE, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))

    code, sql_log = _nox(root, tmp_path / "nox-sql.log", SQL_BOUND_S, "-s", f"sql(system='{SYSTEM}')")
    junit = root / "reports" / "out" / "junit"
    assert (junit / f"sql-{SYSTEM}.xml").exists(), f"the sql session wrote no JUnit (exit {code}):\n{_tail(sql_log)}"
    sql_cases = _cases(junit / f"sql-{SYSTEM}.xml")
    not_passed = {k: v for k, v in sql_cases.items() if v[0] != "pass"}
    assert len(sql_cases) >= 20 and not not_passed, f"sql: {not_passed or sql_cases}\n{_tail(sql_log)}"
    assert code == 0, f"sql session exited {code}:\n{_tail(sql_log)}"

    pytest_args = ("-k", " or ".join(sorted(SCENARIOS)), "-p", "no:cacheprovider")
    code, e2e_log = _nox(root, tmp_path / "nox-e2e.log", E2E_BOUND_S, "-s", f"e2e(sdk='{SDK}')", "--", *pytest_args)
    assert (junit / f"e2e-{SDK}.xml").exists(), f"the e2e session wrote no JUnit (exit {code}):\n{_tail(e2e_log)}"
    e2e_cases = {name.rsplit("::", 1)[-1]: verdict for name, verdict in _cases(junit / f"e2e-{SDK}.xml").items()}
    verdicts = {name: e2e_cases.get(name, ("missing", "")) for name in sorted(SCENARIOS)}
    not_passed = {k: v for k, v in verdicts.items() if v[0] != "pass"}
    assert not not_passed, f"e2e: {not_passed}\n{_tail(e2e_log)}"
    assert code == 0, f"e2e session exited {code}:\n{_tail(e2e_log)}"

    # No harness file was changed, by the adding or by the runs; new files only in the system's folders.
    # (git, against the copy's index: modified or deleted files, then new files not ignored as build output)
    changed = _git(root, "diff", "--name-only", "-z").split("\0") + _git(
        root, "ls-files", "-z", "--others", "--exclude-standard"
    ).split("\0")
    changed = [name for name in changed if name]
    outside = [name for name in changed if not name.startswith(SYSTEM_FOLDERS)]
    assert outside == [], f"files outside {SYSTEM_FOLDERS} differ from the copy: {outside}"
    assert {name.split("/")[0] for name in changed} == {"sdk_adapters", "sql_tests"}, changed
    leaked = _real_outputs_about_the_system(began)
    assert leaked == [], f"the scratch runs wrote into the real repository's reports/out/: {leaked}"
