"""Turn termination signals into KeyboardInterrupt so every `with`/fixture teardown runs.

A SIGTERM (CI cancelling a job) must clean up exactly like Ctrl-C does; the default
action would kill the process before any teardown and leave PostgreSQL behind.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


def install_signal_handlers() -> None:
    """Map SIGTERM and SIGHUP onto KeyboardInterrupt (main thread only; idempotent)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupt)
