"""The adapter side of the driver protocol (sdk_adapters/PROTOCOL.md): one class for every
SDK, driven by its manifest, so adding an SDK changes no harness code.

Driver output is parsed strictly: a line that is not what the protocol says becomes a
DriverError quoting it, never a crash and never a silent skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from gauntlet import catalog
from gauntlet.catalog import Sdk
from gauntlet.pg import as_url
from gauntlet.supervise import Helper, HelperError, Supervisor

PROTOCOL_VERSION = 1
# Bounds on driver commands and on a worker's graceful stop; the harness's own tests shorten them.
COMMAND_BOUND_S = float(os.environ.get("GAUNTLET_COMMAND_BOUND_S", 60))
STOP_BOUND_S = float(os.environ.get("GAUNTLET_STOP_BOUND_S", 30))
STATS_KEYS = ("queued", "running", "succeeded", "failed", "dead")
# The application_name of the harness's own connections (the stats query), so a scenario that
# counts an SDK's connections can leave them out.
HARNESS_APPLICATION = "gauntlet-harness"


class DriverError(Exception):
    """A driver broke the protocol, failed, or hung; the message says which and quotes it."""


@dataclass(frozen=True)
class Ack:
    id: str | None
    ok: bool
    sdk_id: str | None = None
    error: str | None = None
    at: float | None = None  # wall time the acknowledgement arrived: the SDK had the job by then


@dataclass
class EnqueueResult:
    acks: list[Ack]
    transaction: str | None = None  # committed / rolled_back / failed, when one was asked for
    error: str | None = None  # the driver died or hung before answering every spec

    def outcome(self, job_id: str) -> str:
        """ok / fail / indeterminate, as the checker wants an enqueue invocation's outcome."""
        ack = next((a for a in self.acks if a.id == job_id), None)
        if ack is None:
            return "indeterminate"
        if not ack.ok or self.transaction in ("rolled_back",):
            return "fail"
        if self.transaction == "failed":
            return "indeterminate"
        return "ok"


def _parse_line(sdk: str, command: str, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        raise DriverError(f"{sdk} {command}: line {number} is not JSON: {line[:300]!r}") from None
    if not isinstance(value, dict):
        raise DriverError(f"{sdk} {command}: line {number} is not a JSON object: {line[:300]!r}")
    return value


@dataclass
class Driver:
    """One SDK's driver, bound to a database and a queue."""

    sdk: Sdk
    supervisor: Supervisor
    dsn: str
    queue: str = "gauntlet"
    options: dict[str, Any] = field(default_factory=dict)
    # Where the harness's own stats query goes: straight to PostgreSQL, past a pooler the SDK
    # is tested through (None: the SDK's own DSN).
    stats_dsn: str | None = None

    @property
    def name(self) -> str:
        return self.sdk.name

    def _config(self, **extra: Any) -> dict[str, Any]:
        return {"protocol": PROTOCOL_VERSION, "dsn": as_url(self.dsn), "queue": self.queue, **self.options, **extra}

    def _env(self, config: Mapping[str, Any]) -> dict[str, str]:
        return {**os.environ, "GAUNTLET_CONFIG": json.dumps(config)}

    def _argv(self, command: str) -> list[str]:
        if not self.sdk.driver:
            raise DriverError(f"{self.name}: manifest has no driver command")
        return [*catalog.expand(self.sdk.driver, self.sdk.folder), command]

    def _run(
        self, command: str, stdin: bytes | None = None, bound_s: float | None = None, **extra: Any
    ) -> list[tuple[float, dict[str, Any]]]:
        """The command's JSON lines, each with the wall time it arrived."""
        bound_s = COMMAND_BOUND_S if bound_s is None else bound_s
        try:
            done = self.supervisor.run(
                f"{self.name}-{command}",
                self._argv(command),
                timeout=bound_s,
                input=stdin,
                env=self._env(self._config(**extra)),
                cwd=self.sdk.folder,
            )
        except HelperError as exc:
            raise DriverError(f"{self.name} {command}: {exc}") from exc
        except OSError as exc:  # e.g. the driver was never built
            raise DriverError(f"{self.name} {command}: cannot start {self._argv(command)[0]}: {exc}") from exc
        lines = [
            (at, _parse_line(self.name, command, n, line))
            for n, (at, line) in enumerate(zip(done.arrivals, done.stdout.splitlines(), strict=False), 1)
            if line.strip()
        ]
        if done.returncode != 0:
            said = next((str(line.get("error")) for _, line in lines if "error" in line), "")
            tail = "\n".join(done.log.splitlines()[-8:])
            raise DriverError(f"{self.name} {command} exited {done.returncode}: {said or tail} (log: {done.log_path})")
        return lines

    def info(self) -> dict[str, Any]:
        lines = [line for _, line in self._run("info")]
        if len(lines) != 1:
            raise DriverError(f"{self.name} info: expected one line, got {len(lines)}")
        info = lines[0]
        missing = {"protocol", "capabilities"} - set(info)
        if missing or info["protocol"] != PROTOCOL_VERSION or not isinstance(info["capabilities"], list):
            raise DriverError(f"{self.name} info: not a protocol-{PROTOCOL_VERSION} answer: {json.dumps(info)[:300]}")
        return info

    def prepare(self) -> None:
        lines = [line for _, line in self._run("prepare")]
        if lines != [{"ok": True}]:
            raise DriverError(f'{self.name} prepare: expected {{"ok": true}}, got {json.dumps(lines)[:300]}')

    def enqueue(
        self,
        specs: Iterable[Mapping[str, Any] | str],
        transaction: str | None = None,
        bound_s: float | None = None,
        **extra: Any,
    ) -> EnqueueResult:
        """Send specs (dicts, or raw lines for hostile-input scenarios) and collect acknowledgements.

        A driver that dies or hangs mid-way leaves the unanswered specs indeterminate."""
        body = "".join((s if isinstance(s, str) else json.dumps(s)) + "\n" for s in specs).encode()
        try:
            lines = self._run("enqueue", stdin=body, bound_s=bound_s, transaction=transaction, **extra)
            error = None
        except DriverError as exc:
            lines, error = [], str(exc)
        acks: list[Ack] = []
        outcome = None
        for number, (at, line) in enumerate(lines, 1):
            if "transaction" in line and transaction:
                outcome = str(line["transaction"])
                continue
            if not isinstance(line.get("ok"), bool) or "id" not in line:
                raise DriverError(
                    f"{self.name} enqueue: line {number} is not an acknowledgement: {json.dumps(line)[:300]}"
                )
            sdk_id = line.get("sdk_id")
            acks.append(Ack(line["id"], line["ok"], None if sdk_id is None else str(sdk_id), line.get("error"), at))
        if transaction and outcome is None and error is None:
            raise DriverError(f"{self.name} enqueue: asked for a transaction, got no transaction line")
        return EnqueueResult(acks, outcome, error)

    def stats(self) -> dict[str, int | None]:
        """Job counts by state, by the system's own `stats` query (system.toml), on this DSN."""
        query = self.sdk.stats
        if query is None:
            raise DriverError(f"{self.name}: its system declares no stats query")
        names = {k: sql.Identifier(v.format(queue=self.queue)) for k, v in query.identifiers.items()}
        statement = sql.SQL(query.sql).format(queue=sql.Literal(self.queue), **names)
        try:
            with psycopg.connect(
                self.stats_dsn or self.dsn, connect_timeout=10, autocommit=True, application_name=HARNESS_APPLICATION
            ) as conn:
                cursor = conn.execute(statement)
                row = cursor.fetchone()
                columns = [c.name for c in cursor.description or []]
        except psycopg.Error as exc:
            raise DriverError(f"{self.name} stats: the system's stats query failed: {exc}") from exc
        if row is None or not set(STATS_KEYS) <= set(columns):
            raise DriverError(f"{self.name} stats: the query must return one row with {STATS_KEYS}, got {columns}")
        found = dict(zip(columns, row, strict=True))
        return {k: None if found[k] is None else int(found[k]) for k in STATS_KEYS}

    def start_worker(self, worker: str, history: Path | None, concurrency: int = 1, **extra: Any) -> Worker:
        """history=None: the worker records nothing (the bench's harness-cost baseline)."""
        config = self._config(worker=worker, history=str(history) if history else "", concurrency=concurrency, **extra)
        helper = self.supervisor.spawn(
            f"{self.name}-work-{worker}", self._argv("work"), env=self._env(config), cwd=self.sdk.folder
        )
        return Worker(worker, helper)


@dataclass
class Worker:
    """A running `work` process."""

    name: str
    helper: Helper

    @property
    def pid(self) -> int:
        return self.helper.pid

    def alive(self) -> bool:
        return self.helper.alive()

    def stop(self, bound_s: float | None = None) -> int:
        """SIGTERM, then wait for the graceful stop; a worker past its bound is killed and says so."""
        if not self.alive():
            return self.helper.popen.returncode
        bound_s = STOP_BOUND_S if bound_s is None else bound_s
        self.helper.signal_group(signal.SIGTERM)
        try:
            return self.helper.popen.wait(timeout=bound_s)
        except subprocess.TimeoutExpired:
            self.helper.kill()
            raise DriverError(
                f"worker {self.name} ignored SIGTERM for {bound_s:g} s and was killed (log: {self.helper.log_path})"
            ) from None

    def kill(self) -> None:
        self.helper.kill()

    def pause(self) -> None:
        self.helper.signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self.helper.signal_group(signal.SIGCONT)
