"""One place that starts helper processes, bounds every wait on them, and kills leftovers.

Every helper (driver, PostgreSQL, Toxiproxy, PgBouncer) gets its own process group, so
a kill reaches its children too, and its output goes to a log file under
reports/out/logs/ that a report cell can link to.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from gauntlet import paths

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


class HelperError(Exception):
    """A helper process misbehaved; the message names it and points at its log."""


class HelperTimeout(HelperError):
    """A helper did not finish within its bound and was killed."""


def _die_with_parent() -> None:
    # Fallback for a harness that is itself SIGKILLed and so cannot clean up:
    # the kernel kills the helper when the spawning thread goes away.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    # A harness started in the background (nohup, `cmd &` in a script) inherits SIGINT
    # ignored, and so would every helper: the SIGINT the harness sends a session to stop it
    # would then do nothing, and only the SIGKILL after the grace would, with no teardown.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _log_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "helper"


@dataclass
class Completed:
    name: str
    returncode: int
    stdout: str
    log_path: Path
    log: str  # what this run wrote to its log (stderr)
    arrivals: list[float] = field(default_factory=list)  # wall time each stdout line arrived


class Helper:
    """A running helper process, leader of its own process group."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path, log_start: int) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.log_start = log_start  # logs are appended to; this helper's output starts here

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)

    def wait(self, timeout: float) -> int:
        """Wait at most `timeout` seconds; on expiry kill the group and raise HelperTimeout."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise HelperTimeout(
                f"helper {self.name!r} (pid {self.pid}) still running after {timeout:g} s; "
                f"killed its process group (log: {self.log_path})"
            ) from None

    def stop(self, grace: float = 5.0, first_signal: int = signal.SIGTERM) -> int:
        """Ask politely, then SIGKILL the whole group once `grace` runs out."""
        if self.alive():
            self.signal_group(first_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        self.kill()
        return self.popen.returncode

    def kill(self) -> None:
        # Also reaps stragglers in the group after the leader has exited.
        self.signal_group(signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait()

    def log_text(self) -> str:
        """What this helper wrote (not earlier runs that share its log file)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_start)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


_live: weakref.WeakSet[Supervisor] = weakref.WeakSet()


class Supervisor:
    """Starts helpers and guarantees that none outlives it."""

    def __init__(self, log_dir: Path = paths.LOGS) -> None:
        self.log_dir = log_dir
        self.helpers: list[Helper] = []
        _live.add(self)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = None,
    ) -> Helper:
        """Start `argv`; stderr (and stdout unless `stdout` is given) goes to the log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{_log_name(name)}.log"
        with open(log_path, "ab") as log:
            log_start = log.tell()
            log.write(f"=== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                list(argv),
                env=dict(env) if env is not None else None,
                cwd=cwd,
                user=user,
                stdin=stdin,
                stdout=log if stdout is None else stdout,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        helper = Helper(name, popen, log_path, log_start)
        self.helpers.append(helper)
        return helper

    def run(
        self,
        name: str,
        argv: Sequence[str],
        *,
        timeout: float,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> Completed:
        """Run to completion within `timeout` seconds, capturing stdout line by line with the
        time each line arrived (a driver's acknowledgement time is when the SDK had the job)."""
        helper = self.spawn(
            name,
            argv,
            env=env,
            cwd=cwd,
            user=user,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            helper.kill()

        timer = threading.Timer(timeout, expire)
        feeder = threading.Thread(target=_feed, args=(helper.popen.stdin, input), daemon=True)
        lines: list[bytes] = []
        arrivals: list[float] = []
        timer.start()
        feeder.start()
        try:
            assert helper.popen.stdout is not None
            for raw in helper.popen.stdout:
                arrivals.append(time.time())
                lines.append(raw)
            helper.popen.wait()
        finally:
            timer.cancel()
            helper.kill()
            feeder.join(5)
        if expired.is_set():
            raise HelperTimeout(
                f"helper {name!r} (pid {helper.pid}) still running after {timeout:g} s; "
                f"killed its process group (log: {helper.log_path})"
            )
        stdout = b"".join(lines).decode(errors="replace")
        return Completed(name, helper.popen.returncode, stdout, helper.log_path, helper.log_text(), arrivals)

    def close(self, grace: float = 5.0) -> None:
        """Stop every helper still alive, newest first."""
        while self.helpers:
            self.helpers.pop().stop(grace)


@atexit.register
def _close_all() -> None:
    for supervisor in list(_live):
        supervisor.close(grace=2.0)


def _feed(stdin: IO[bytes] | None, data: bytes | None) -> None:
    """Writes a helper's stdin on a thread, so a helper that answers as it reads never blocks."""
    if stdin is None:
        return
    try:
        if data:
            stdin.write(data)
        stdin.close()
    except (BrokenPipeError, ValueError, OSError):
        pass  # the helper exited early; its exit code and log say why
