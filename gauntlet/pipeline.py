"""The main job: list the nox sessions, run the matrix ones in order, then the report.

A short pipeline of named steps passing plain data, like nox's own workflow. Each nox
session runs in its own process group so an interrupt reaches nox and pytest exactly as
a terminal's Ctrl-C would, and the wait for them to clean up is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

from gauntlet import events, lifecycle, paths
from gauntlet.progress import Progress
from gauntlet.supervise import Supervisor

MATRIX_KINDS = ("sql", "e2e", "chaos")  # in this order; "report" always runs last
PER_SDK = {"e2e", "chaos"}  # without any SDK manifest nox lists these as no-op placeholders
SESSION_BOUND_S = 45 * 60
INTERRUPT_GRACE_S = 60.0


@dataclass
class SessionResult:
    session: str
    exit_code: int
    wall_s: float
    log: str


def list_sessions() -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json"], cwd=paths.ROOT, capture_output=True, text=True, check=True
    ).stdout
    return list(json.loads(out))


def plan(sessions: list[dict[str, Any]], only: list[str]) -> list[str]:
    """Matrix sessions by kind, then the report. `only` keeps sessions whose name or tags match."""

    def wanted(s: dict[str, Any]) -> bool:
        if s["name"] in PER_SDK and not s.get("call_spec"):
            return False
        return not only or any(o == s["name"] or o == s["session"] or o in s.get("tags", []) for o in only)

    chosen = [s["session"] for kind in MATRIX_KINDS for s in sessions if s["name"] == kind and wanted(s)]
    return chosen + [s["session"] for s in sessions if s["name"] == "report"]


def ci_matrix(sessions: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One CI job per SDK (its e2e and chaos sessions) plus one for every SQL suite: the
    `include` list of .github/workflows/ci.yml's matrix."""
    jobs: dict[str, list[str]] = {}
    for name in plan(sessions, []):
        kind, _, rest = name.partition("(")
        if kind == "report":
            continue
        job = "sql" if kind == "sql" else rest.split("=", 1)[-1].strip("')")
        jobs.setdefault(job, []).append(name)
    return [{"name": job, "sessions": " ".join(f'"{s}"' for s in names)} for job, names in jobs.items()]


def run_session(name: str, supervisor: Supervisor, progress: Progress) -> SessionResult:
    paths.LOGS.mkdir(parents=True, exist_ok=True)
    events_path = paths.OUT / "events.jsonl"
    tail = events.Tail(events_path)
    tail.offset = events_path.stat().st_size if events_path.exists() else 0
    env = {**os.environ, events.EVENTS_ENV: str(events_path)}
    progress.session_started(name)
    began = time.monotonic()
    helper = supervisor.spawn(f"session-{name}", [sys.executable, "-m", "nox", "-s", name], env=env, cwd=paths.ROOT)
    try:
        while helper.alive():
            for event in tail.read():
                progress.event(event)
            if time.monotonic() - began > SESSION_BOUND_S:
                helper.stop(grace=INTERRUPT_GRACE_S, first_signal=signal.SIGINT)
                break
            time.sleep(0.25)
    except KeyboardInterrupt:
        # Like a terminal's Ctrl-C: nox and pytest both get SIGINT and tear down.
        helper.stop(grace=INTERRUPT_GRACE_S, first_signal=signal.SIGINT)
        raise
    for event in tail.read():
        progress.event(event)
    code = helper.popen.wait()
    result = SessionResult(name, code, round(time.monotonic() - began, 2), str(helper.log_path))
    ensure_junit(name, result)
    progress.session_finished(name, code, result.wall_s, result.log)
    return result


def junit_name(session: str) -> str | None:
    """The JUnit file a matrix session writes, by the noxfile's convention: kind-param.xml."""
    kind, _, rest = session.partition("(")
    if kind not in MATRIX_KINDS or not rest:
        return None
    return f"{kind}-{rest.split('=', 1)[-1].strip(chr(39) + ')')}.xml"


def ensure_junit(session: str, result: SessionResult) -> None:
    """A session that died before writing its JUnit still shows up: as one error case."""
    name = junit_name(session)
    if name is None or (paths.JUNIT / name).exists():
        return
    paths.JUNIT.mkdir(parents=True, exist_ok=True)
    kind = session.partition("(")[0]
    target = name.removesuffix(".xml").split("-", 1)[1]
    key = "system" if kind == "sql" else "sdk"
    message = escape(
        f"session {session} exited {result.exit_code} without writing {name}; log: {result.log}", quote=True
    )
    (paths.JUNIT / name).write_text(
        f'<testsuites><testsuite name="{escape(session, quote=True)}" tests="1" errors="1">'
        f'<testcase name="session {escape(session)}"><properties><property name="suite" value="{kind}"/>'
        f'<property name="{key}" value="{escape(target, quote=True)}"/></properties>'
        f'<error message="{message}"/></testcase></testsuite></testsuites>'
    )


def record(results: list[SessionResult]) -> Path:
    path = paths.OUT / "sessions.json"
    path.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m gauntlet run", description=__doc__)
    parser.add_argument("--only", nargs="*", default=[], help="session names or tags to keep (default: all)")
    parser.add_argument("--ci-matrix", action="store_true", help="print the CI job matrix as JSON and exit")
    args = parser.parse_args(argv)
    if args.ci_matrix:
        print(json.dumps(ci_matrix(list_sessions())))
        return 0
    lifecycle.install_signal_handlers()
    paths.OUT.mkdir(parents=True, exist_ok=True)
    (paths.OUT / "events.jsonl").unlink(missing_ok=True)
    supervisor = Supervisor()
    results: list[SessionResult] = []
    try:
        with Progress() as progress:
            for name in plan(list_sessions(), args.only):
                results.append(run_session(name, supervisor, progress))
    except KeyboardInterrupt:
        print("interrupted: every session was stopped and cleaned up", file=sys.stderr)
        return 130
    finally:
        supervisor.close()
        record(results)
    failed = [r.session for r in results if r.exit_code != 0]
    print(f"sessions: {len(results)} run; exit codes other than 0: {failed or 'none'} (findings make sessions fail;")
    print("the report weighs them against reports/expectations.toml)")
    report = next((r for r in results if r.session == "report"), None)
    if report is not None:
        tail = Path(report.log).read_text(errors="replace").splitlines()
        for line in tail:
            if line.startswith(("deviation", "dashboard:", "cells:", "merged ")):
                print(line)
        return report.exit_code
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
