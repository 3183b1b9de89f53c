"""Chaos catalog: the shared E2E fixtures plus a real Toxiproxy between workers and PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from chaos.toxiproxy import Proxy, ToxiproxyServer, through
from e2e.fixtures import *  # noqa: F403 - pytest finds fixtures and hooks by name
from gauntlet.driver import Driver
from gauntlet.pg import Harness


@pytest.fixture(scope="session")
def toxiproxy(harness: Harness) -> Iterator[ToxiproxyServer]:
    server = ToxiproxyServer(harness.supervisor).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(toxiproxy: ToxiproxyServer, harness: Harness) -> Iterator[Proxy]:
    made = toxiproxy.create_proxy(f"pg_{secrets.token_hex(3)}", harness.server.port)
    try:
        yield made
    finally:
        made.reset()
        toxiproxy.call(made.client.destroy)


@pytest.fixture
def worker_driver(driver: Driver, proxy: Proxy) -> Driver:
    """The SDK under test, connecting through the proxy from its first connection."""
    return through(driver, proxy)
