"""Chaos catalog: the shared E2E fixtures plus a real Toxiproxy between workers and PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from chaos.toxiproxy import Proxy, ToxiproxyServer
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
    params = conninfo_to_dict(driver.dsn)
    params["port"] = proxy.port
    return Driver(driver.sdk, driver.supervisor, make_conninfo("", **params), driver.queue)
