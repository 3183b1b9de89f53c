"""The real Toxiproxy server (built by the bootstrap) and the one place that wraps the 2019
toxiproxy-python client's quirks:

- its API address is a class attribute shared by every client: each call here binds the
  address of *this* server first, under a lock;
- it ignores 5xx answers: they raise ToxiproxyError here;
- it cannot update a toxic in place: `update_toxic` posts the new attributes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from toxiproxy import api, proxy, server
from toxiproxy.api import APIConsumer

from gauntlet import paths
from gauntlet.driver import Driver
from gauntlet.pg import free_port
from gauntlet.supervise import Helper, HelperError, Supervisor

SERVER_BIN = paths.TOOLS_BIN / "server"
T = TypeVar("T")
_lock = threading.RLock()
_validate = api.validate_response


class ToxiproxyError(Exception):
    pass


def _validate_strictly(response: requests.Response) -> requests.Response:
    if response.status_code >= 500:
        raise ToxiproxyError(f"toxiproxy answered {response.status_code}: {response.text[:300]}")
    return _validate(response)


api.validate_response = _validate_strictly  # the client's modules look it up at call time


@dataclass
class ToxiproxyServer:
    supervisor: Supervisor
    port: int = 0
    helper: Helper | None = None

    def start(self) -> ToxiproxyServer:
        self.port = free_port()
        self.helper = self.supervisor.spawn(
            "toxiproxy", [str(SERVER_BIN), "-host", "127.0.0.1", "-port", str(self.port)]
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/version", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise HelperError(f"toxiproxy did not answer on 127.0.0.1:{self.port}: {self.helper.log_tail()}")

    def stop(self) -> None:
        if self.helper is not None:
            self.helper.stop(grace=5)

    @contextmanager
    def _bound(self) -> Iterator[None]:
        with _lock:
            APIConsumer.host, APIConsumer.port = "127.0.0.1", self.port
            yield

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._bound():
            return fn(*args, **kwargs)

    def create_proxy(self, name: str, upstream_port: int) -> Proxy:
        listen = free_port()
        made = self.call(
            server.Toxiproxy().create, upstream=f"127.0.0.1:{upstream_port}", name=name, listen=f"127.0.0.1:{listen}"
        )
        return Proxy(self, made, listen)


@dataclass
class Proxy:
    server: ToxiproxyServer
    client: proxy.Proxy
    port: int

    @property
    def name(self) -> str:
        return str(self.client.name)

    def add_toxic(self, name: str, kind: str, stream: str = "downstream", **attributes: Any) -> None:
        self.server.call(self.client.add_toxic, name=name, type=kind, stream=stream, attributes=attributes)

    def update_toxic(self, name: str, **attributes: Any) -> None:
        self.server.call(APIConsumer.post, f"/proxies/{self.name}/toxics/{name}", json={"attributes": attributes})

    def remove_toxic(self, name: str) -> None:
        self.server.call(self.client.destroy_toxic, name)

    def retarget(self, upstream_port: int) -> None:
        """Points the proxy at another server (Toxiproxy ends the connections it had)."""
        self.server.call(APIConsumer.post, f"/proxies/{self.name}", json={"upstream": f"127.0.0.1:{upstream_port}"})

    def disable(self) -> None:
        self.server.call(self.client.disable)

    def enable(self) -> None:
        self.server.call(self.client.enable)

    def reset(self) -> None:
        """Every toxic removed and the proxy enabled: the heal of any proxy fault."""
        self.server.call(server.Toxiproxy().reset)


def through(driver: Driver, proxy: Proxy) -> Driver:
    """The same SDK, database and queue, every connection (its stats query's too) through the proxy."""
    params = conninfo_to_dict(driver.dsn)
    params["port"] = proxy.port
    return Driver(driver.sdk, driver.supervisor, make_conninfo("", **params), driver.queue, options=driver.options)
