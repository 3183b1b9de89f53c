"""The main job: list the nox sessions, run the matrix ones side by side, then the report.

Each session already isolates itself (its own PostgreSQL cluster on a free port, temp dirs,
Toxiproxy), so the only thing sessions share is the machine. Each runs as `nox -s <name>` in
its own process group, so an interrupt reaches nox and pytest exactly as a terminal's Ctrl-C
would, with its own log, events file and JUnit file. One loop in the main thread starts,
watches and reaps them all, so a Ctrl-C (or a SIGTERM, see lifecycle) lands in one place that
stops every running session.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from rich.console import Console

from gauntlet import catalog, events, lifecycle, paths
from gauntlet.ids import KIND_TOPOLOGY, TARGET_KEY, SessionId
from gauntlet.progress import Progress
from gauntlet.supervise import Helper, Supervisor

MATRIX_KINDS = ("chaos", "e2e", "pgbouncer", "sql")  # longest first, when no earlier run says otherwise
TOPOLOGIES = ("direct", *KIND_TOPOLOGY.values())
SESSION_BOUND_S = 45 * 60
# One seed for the whole main job, the same by default from run to run: every SDK meets the
# same fault schedule, verdicts compare across runs, and findings' rates are measured with it.
DEFAULT_SEED = 4242
INTERRUPT_GRACE_S = 60.0  # nox gives pytest as long (noxfile GRACE) before it escalates
KILL_BOUND_S = 10.0  # after SIGKILL, how long to wait for the kernel to reap
LIST_BOUND_S = 120.0
POLL_S = 0.25
SESSION_MEMORY = 1 << 30  # budget per session: a cluster, pytest, its drivers, Toxiproxy
# Each session's wall time in a measured main job (committed, like pytest-split's
# .test_durations): a fresh clone, which has no sessions.json of its own yet, still starts the
# sessions that wait longest first. Refresh it from reports/out/sessions.json after a main job.
MEASURED_WALLS = Path(__file__).with_name("session_walls.json")
SUMMARY_LINES = ("deviation", "dashboard:", "cells:", "merged ", "run history", "page not made")
REPORT_TAIL = 40  # lines of a report that stopped early, printed where CI shows them

Command = Callable[[SessionId], Sequence[str]]


def nox_command(session: SessionId) -> list[str]:
    argv = [sys.executable, "-m", "nox", "-s", session.nox_name]
    # The main job's report records the job in the run history (reports/run_history.py), once;
    # a report run by hand records nothing unless asked.
    return [*argv, "--", "--record-history"] if session.kind == "report" else argv


@dataclass(frozen=True)
class Layout:
    """Where one job writes; a test points it at a temp dir."""

    out: Path = paths.OUT

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    @property
    def junit(self) -> Path:
        return self.out / "junit"

    @property
    def events(self) -> Path:
        return self.out / "events"

    @property
    def sessions_json(self) -> Path:
        return self.out / "sessions.json"


@dataclass
class SessionResult:
    session: str  # the nox name
    kind: str
    target: str
    exit_code: int  # negative: killed by that signal
    stopped: str | None  # "interrupt" or "bound" when the job stopped it
    wall_s: float
    cpu_s: float  # user + system of the session's reaped process tree (os.wait4)
    started: str
    ended: str
    start_offset_s: float  # monotonic seconds since the job started
    end_offset_s: float
    log: str
    log_offset: int  # the log is appended to; this run's output starts at this byte


# --- choosing what to run --------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    id: SessionId
    tags: frozenset[str]

    def matches(self, selector: str) -> bool:
        return selector in (self.id.nox_name, self.id.kind) or selector in self.tags


class SelectionError(Exception):
    """A selector matched no session; the message lists what would."""


def list_sessions() -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json"],
        cwd=paths.ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=LIST_BOUND_S,
    ).stdout
    return list(json.loads(out))


def candidates(listed: list[dict[str, Any]]) -> list[Candidate]:
    """The sessions the main job may run: each sql/e2e/pgbouncer/chaos session that has a target (with
    no SDK at all nox lists e2e and chaos as target-less placeholders), and the report."""
    found = []
    for entry in listed:
        session = SessionId.from_nox(entry)
        if (session.kind in MATRIX_KINDS and session.target) or session.kind == "report":
            found.append(Candidate(session, frozenset(entry.get("tags", []))))
    return found


def select(
    found: list[Candidate], only: list[str], topology: str | None = None
) -> tuple[list[SessionId], SessionId | None]:
    """The matrix sessions that any selector in `only` names (all without `only`), of the given
    topology if one is given, and the report.

    A selector is a session's nox name, its kind, or one of its tags (system, language, SDK).
    """
    if topology is not None:
        found = [c for c in found if c.id.kind == "report" or c.id.topology == topology]
    unmatched = [s for s in only if not any(c.matches(s) for c in found)]
    if unmatched:
        kinds = sorted({c.id.kind for c in found})
        tags = sorted({t for c in found for t in c.tags} - set(kinds))
        names = [c.id.nox_name for c in found]
        raise SelectionError(
            f"no session matches {', '.join(map(repr, unmatched))}; a selector is a kind, a tag or a session name:\n"
            f"  kinds: {' '.join(kinds)}\n  tags: {' '.join(tags)}\n  sessions: {' '.join(names)}"
        )
    matrix = [c.id for c in found if c.id.kind != "report" and (not only or any(c.matches(s) for s in only))]
    report = next((c.id for c in found if c.id.kind == "report"), None)
    return matrix, report


def ci_matrix(matrix: list[SessionId]) -> list[dict[str, str]]:
    """One CI job per SDK (its sessions) plus one for every SQL suite: the `include` list of
    .github/workflows/ci.yml's matrix. `sessions` is comma-separated, as nox reads $NOXSESSION;
    `sdk` is what the job bootstraps (`bootstrap --sdk`; empty for the SQL job: `--installers`),
    `language` which toolchain it sets up, `folder` the SDK's folder (its build cache)."""
    sdks = {s.name: s for s in catalog.load().sdks()}
    jobs: dict[str, list[SessionId]] = {}
    for session in matrix:
        jobs.setdefault("sql" if session.kind == "sql" else session.target, []).append(session)
    return [
        {
            "name": job,
            "sessions": ",".join(s.nox_name for s in ids),
            "sdk": "" if job == "sql" else job,
            "language": sdks[job].language if job in sdks else "",
            "folder": str(sdks[job].home.relative_to(paths.ROOT)) if job in sdks else "",
        }
        for job, ids in jobs.items()
    ]


def previous_walls(path: Path) -> dict[str, float]:
    """Each session's wall time in the run that wrote `path`; sessions an interrupt cut short
    say nothing, and an unreadable or older-shaped file says nothing at all."""
    try:
        recorded = json.loads(path.read_text())["sessions"]
        return {s["session"]: float(s["wall_s"]) for s in recorded if s.get("stopped") != "interrupt"}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def longest_first(matrix: list[SessionId], walls: dict[str, float]) -> list[SessionId]:
    """The queue, longest first, so the session that finishes last started early. A session
    the earlier run did not time counts as long as the longest of its kind there; ties, and
    walls nobody measured, go chaos, e2e, pgbouncer, sql."""
    longest_of_kind: dict[str, float] = {}
    for session in matrix:
        if session.nox_name in walls:
            longest_of_kind[session.kind] = max(longest_of_kind.get(session.kind, 0.0), walls[session.nox_name])

    def key(session: SessionId) -> tuple[float, int, SessionId]:
        wall = walls.get(session.nox_name, longest_of_kind.get(session.kind, 0.0))
        return -wall, MATRIX_KINDS.index(session.kind), session

    return sorted(matrix, key=key)


def available_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return SESSION_MEMORY


def default_jobs(cores: int, memory: int) -> int:
    """Four sessions per core, no more than memory holds at SESSION_MEMORY each.

    A session mostly waits (chaos waves wait out fault windows and the contracts' bounds, a
    failing cell its bound): the 39 sessions' walls add up to 5835 s against 1779 s of CPU,
    and with three per core they kept 1.6 of 2 cores busy (1099 s wall), so a fourth per core
    goes on what the others wait for.
    """
    return max(1, min(4 * cores, memory // SESSION_MEMORY))


# --- running ---------------------------------------------------------------------------


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Running:
    id: SessionId
    helper: Helper
    tail: events.Tail
    began: float  # monotonic
    started: datetime
    kill_at: float | None = None  # set once SIGINT was sent: when SIGKILL follows
    stopped: str | None = None


@dataclass
class Job:
    """Runs sessions up to `jobs` at a time and records each one as it ends.

    CPU time: each session is reaped here with os.wait4, whose rusage covers the session's
    process and every descendant it reaped (nox, pytest, drivers, PostgreSQL, Toxiproxy are all
    waited for by their parents); a descendant orphaned before it was reaped is not counted.
    The job's total is getrusage of this process and of all its reaped children, so it also
    holds the listing and the live view.
    """

    layout: Layout
    jobs: int
    progress: Progress
    supervisor: Supervisor
    command: Command = nox_command
    bound_s: float = SESSION_BOUND_S
    grace_s: float = INTERRUPT_GRACE_S
    results: list[SessionResult] = field(default_factory=list)
    running: list[Running] = field(default_factory=list)
    began: float = field(init=False, default_factory=time.monotonic)
    started: datetime = field(init=False, default_factory=lambda: datetime.now(UTC))
    cpu_began: float = field(init=False, default_factory=_cpu_s)

    def run(self, matrix: list[SessionId], report: SessionId | None) -> list[SessionResult]:
        """The matrix `jobs` at a time in the given order, then the report alone."""
        try:
            self._run_all(matrix, self.jobs)
            if report is not None:
                self.record(interrupted=False)  # the report can tell this job's JUnit files by it
                self._run_all([report], 1)
        except KeyboardInterrupt:
            self.stop_all()
            self.record(interrupted=True)
            raise
        self.record(interrupted=False)
        return self.results

    def _run_all(self, queue: list[SessionId], limit: int) -> None:
        waiting = list(queue)
        while waiting or self.running:
            while waiting and len(self.running) < limit:
                self.start(waiting.pop(0))
            self.poll()
            time.sleep(POLL_S)

    def start(self, session: SessionId) -> None:
        if session.junit_file:  # an earlier run's file must not stand in for this one
            (self.layout.junit / session.junit_file).unlink(missing_ok=True)
        self.layout.events.mkdir(parents=True, exist_ok=True)
        events_path = self.layout.events / f"{session.log_stem}.jsonl"
        events_path.write_bytes(b"")
        env = {**os.environ, events.EVENTS_ENV: str(events_path)}
        self.progress.session_started(session.nox_name)
        helper = self.supervisor.spawn(session.log_stem, self.command(session), env=env, cwd=paths.ROOT)
        self.running.append(Running(session, helper, events.Tail(events_path), time.monotonic(), datetime.now(UTC)))

    def poll(self) -> None:
        """Forward new events, reap what ended, and stop what overran its bound."""
        now = time.monotonic()
        for run in list(self.running):
            self._forward(run)
            pid, status, usage = os.wait4(run.helper.pid, os.WNOHANG)
            if pid:
                self._finish(run, status, usage)
            elif run.kill_at is None and now - run.began > self.bound_s:
                self._ask_to_stop(run, "bound")
            elif run.kill_at is not None and now >= run.kill_at:
                run.helper.signal_group(signal.SIGKILL)

    def stop_all(self) -> None:
        """Like a terminal's Ctrl-C to every running session at once (nox and pytest tear down),
        SIGKILL to the groups that outlive the grace; a second Ctrl-C skips the grace."""
        for run in self.running:
            if run.kill_at is None:
                self._ask_to_stop(run, "interrupt")
        give_up = time.monotonic() + self.grace_s + KILL_BOUND_S
        while self.running and time.monotonic() < give_up:
            try:
                self.poll()
                time.sleep(0.05)
            except KeyboardInterrupt:
                for run in self.running:
                    run.kill_at = 0.0

    def _ask_to_stop(self, run: Running, why: str) -> None:
        run.stopped = why
        run.kill_at = time.monotonic() + self.grace_s
        run.helper.signal_group(signal.SIGINT)

    def _forward(self, run: Running) -> None:
        for event in run.tail.read():
            self.progress.event(run.id.nox_name, event)

    def _finish(self, run: Running, status: int, usage: resource.struct_rusage) -> None:
        self.running.remove(run)
        run.helper.popen.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        run.helper.signal_group(signal.SIGKILL)  # whatever the session left in its group
        self._forward(run)
        ended = time.monotonic()
        result = SessionResult(
            session=run.id.nox_name,
            kind=run.id.kind,
            target=run.id.target,
            exit_code=run.helper.popen.returncode,
            stopped=run.stopped,
            wall_s=round(ended - run.began, 2),
            cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
            started=run.started.isoformat(timespec="seconds"),
            ended=(run.started + timedelta(seconds=ended - run.began)).isoformat(timespec="seconds"),
            start_offset_s=round(run.began - self.began, 2),
            end_offset_s=round(ended - self.began, 2),
            log=str(run.helper.log_path),
            log_offset=run.helper.log_start,
        )
        ensure_junit(run.id, result, self.layout.junit)
        self.results.append(result)
        self.progress.session_finished(result.session, result.exit_code, result.wall_s, result.log)

    def record(self, interrupted: bool) -> Path:
        """reports/out/sessions.json: every finished session and the job's totals so far."""
        wall = time.monotonic() - self.began
        summary = {
            "started": self.started.isoformat(timespec="seconds"),
            "ended": (self.started + timedelta(seconds=wall)).isoformat(timespec="seconds"),
            "wall_s": round(wall, 2),
            "cpu_s": round(_cpu_s() - self.cpu_began, 2),
            "jobs": self.jobs,
            "interrupted": interrupted,
            "sessions": [asdict(r) for r in self.results],
        }
        self.layout.out.mkdir(parents=True, exist_ok=True)
        self.layout.sessions_json.write_text(json.dumps(summary, indent=2))
        return self.layout.sessions_json


def ensure_junit(session: SessionId, result: SessionResult, junit_dir: Path) -> None:
    """A session that died before writing its JUnit still shows up: as one error case."""
    name = session.junit_file
    if name is None or (junit_dir / name).exists():
        return
    junit_dir.mkdir(parents=True, exist_ok=True)
    message = escape(f"session {session} exited {result.exit_code} without writing {name}; log: {result.log}")
    (junit_dir / name).write_text(
        f'<testsuites><testsuite name="{escape(session.nox_name)}" tests="1" errors="1">'
        f'<testcase name="session {escape(session.nox_name)}"><properties>'
        f'<property name="suite" value="{session.kind}"/>'
        f'<property name="{TARGET_KEY[session.kind]}" value="{escape(session.target)}"/></properties>'
        f'<error message="{message}"/></testcase></testsuite></testsuites>'
    )


def run_job(
    matrix: list[SessionId],
    report: SessionId | None,
    *,
    jobs: int,
    layout: Layout,
    console: Console,
    command: Command = nox_command,
    grace_s: float = INTERRUPT_GRACE_S,
) -> list[SessionResult]:
    """Run the sessions with a live view; nothing they started outlives this call."""
    supervisor = Supervisor(log_dir=layout.logs)
    try:
        with Progress(console) as progress:
            job = Job(layout, jobs, progress, supervisor, command=command, grace_s=grace_s)
            return job.run(matrix, report)
    finally:
        supervisor.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m gauntlet run", description=__doc__)
    parser.add_argument("--only", nargs="*", default=[], help="session names, kinds or tags to keep (default: all)")
    parser.add_argument(
        "--topology",
        choices=TOPOLOGIES,
        help="only the sessions of this topology (direct: sql and e2e; pgbouncer: e2e through PgBouncer;"
        " toxiproxy: chaos)",
    )
    parser.add_argument("--jobs", type=int, help="sessions at a time (default: from the machine's cores and memory)")
    parser.add_argument("--ci-matrix", action="store_true", help="print the CI job matrix as JSON and exit")
    parser.add_argument(
        "--seed",
        default=os.environ.get("GAUNTLET_SEED", str(DEFAULT_SEED)),
        help=f"the workload and fault-schedule seed of every session (default {DEFAULT_SEED}, or 'random')",
    )
    args = parser.parse_args(argv)
    seed = random.SystemRandom().randrange(1, 10**6) if args.seed == "random" else int(args.seed)
    os.environ["GAUNTLET_SEED"] = str(seed)  # every session inherits it: one schedule for every SDK
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        matrix, report = select(candidates(list_sessions()), args.only, args.topology)
    except SelectionError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.ci_matrix:
        print(json.dumps(ci_matrix(matrix)))
        return 0
    lifecycle.install_signal_handlers()
    layout = Layout()
    cores, memory = len(os.sched_getaffinity(0)), available_memory()
    jobs = args.jobs or default_jobs(cores, memory)
    console = Console()
    console.print(
        f"jobs: {jobs} at a time ({'--jobs' if args.jobs else 'default'}; {cores} cores, "
        f"{memory / 2**30:.1f} GiB available); {len(matrix)} sessions, then the report; seed {seed}",
        highlight=False,
    )
    queue = longest_first(matrix, {**previous_walls(MEASURED_WALLS), **previous_walls(layout.sessions_json)})
    try:
        results = run_job(queue, report, jobs=jobs, layout=layout, console=console)
    except KeyboardInterrupt:
        print("interrupted: every session was stopped and cleaned up", file=sys.stderr)
        return 130
    failed = [r.session for r in results if r.exit_code != 0]
    print(f"sessions: {len(results)} run; exit codes other than 0: {failed or 'none'} (findings make sessions fail;")
    print("the report weighs them against the systems' findings.toml)")
    print(f"timings: {layout.sessions_json}")
    ran_report = next((r for r in results if r.kind == "report"), None)
    if ran_report is not None:
        with open(ran_report.log, "rb") as log:
            log.seek(ran_report.log_offset)
            output = log.read().decode(errors="replace")
        print("\n".join(report_summary(output, ran_report.exit_code)))
        return ran_report.exit_code
    return 1 if failed else 0


def report_summary(output: str, exit_code: int) -> list[str]:
    """The report's lines worth the console: its deviations and summary; when it stopped before
    its summary (a crash), its log's last lines too, for they say why."""
    lines = output.splitlines()
    out = [line for line in lines if line.startswith(SUMMARY_LINES)]
    if exit_code != 0 and not any(line.startswith("cells:") for line in lines):
        out.append(f"the report stopped before its summary (exit {exit_code}); the last lines of its log:")
        out += lines[-REPORT_TAIL:]
    return out


if __name__ == "__main__":
    sys.exit(main())
