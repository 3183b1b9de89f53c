"""A pytest plugin (`-p tests.helpers.crash_pooler`) that kills the session's PgBouncer as the
first scenario's call begins, as PgBouncer 1.18.0's FATAL cancel-request crash does."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from gauntlet.pgbouncer import PgBouncer

_crashed: list[bool] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if not _crashed:
        _crashed.append(True)
        bouncer: PgBouncer = item._request.getfixturevalue("pooler")  # type: ignore[attr-defined]
        assert bouncer.process is not None
        bouncer.process.signal_group(signal.SIGKILL)
    yield
