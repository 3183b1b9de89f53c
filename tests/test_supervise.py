"""Helper processes: bounded waits, process-group kills, logs."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from gauntlet.supervise import HelperTimeout, Supervisor
from tests.conftest import pid_alive


def test_a_hung_helper_is_killed_at_its_bound_with_a_clear_message(tmp_path: Path) -> None:
    supervisor = Supervisor(log_dir=tmp_path)
    began = time.monotonic()
    with pytest.raises(HelperTimeout) as caught:
        supervisor.run("hung-driver", ["sleep", "600"], timeout=1.0)
    assert time.monotonic() - began < 5
    message = str(caught.value)
    assert "hung-driver" in message and "after 1 s" in message and "killed" in message
    assert str(tmp_path / "hung-driver.log") in message
    assert not any(h.alive() for h in supervisor.helpers)


def test_waiting_on_a_long_running_helper_is_bounded_too(tmp_path: Path) -> None:
    supervisor = Supervisor(log_dir=tmp_path)
    helper = supervisor.spawn("worker", ["sleep", "600"])
    with pytest.raises(HelperTimeout, match="'worker'"):
        helper.wait(timeout=0.5)
    assert not helper.alive()


def test_killing_a_helper_reaches_its_children(tmp_path: Path) -> None:
    supervisor = Supervisor(log_dir=tmp_path)
    script = (
        "import subprocess,sys,time; p=subprocess.Popen(['sleep','600']); print(p.pid, flush=True); time.sleep(600)"
    )
    helper = supervisor.spawn("parent", [sys.executable, "-c", script], stdout=-1)
    assert helper.popen.stdout is not None
    child = int(helper.popen.stdout.readline())
    supervisor.close(grace=1.0)
    deadline = time.monotonic() + 5
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child), "a helper's child outlived the helper"


def test_output_goes_to_the_helper_log(tmp_path: Path) -> None:
    supervisor = Supervisor(log_dir=tmp_path)
    done = supervisor.run(
        "talker", [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"], timeout=10
    )
    assert done.returncode == 0 and done.stdout.strip() == "out"
    assert "err" in (tmp_path / "talker.log").read_text()


def test_a_helper_stops_on_sigint_even_when_the_harness_was_started_ignoring_it(tmp_path: Path) -> None:
    """A harness run under nohup or `&` inherits SIGINT ignored; its helpers must not, or the
    SIGINT that asks a session to tear down does nothing and only the later SIGKILL lands."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    supervisor = Supervisor(log_dir=tmp_path)
    try:
        probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
        done = supervisor.run("disposition", [sys.executable, "-c", probe], timeout=30)
    finally:
        signal.signal(signal.SIGINT, previous)
        supervisor.close()
    assert done.stdout.strip() == "True"
