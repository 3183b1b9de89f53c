"""Driver protocol v1 (sdk_adapters/PROTOCOL.md), the SDK-neutral half, for Python drivers.

A driver supplies the SDK calls; this module reads the config and specs, writes
acknowledgements and history lines, runs a job's scripted behaviour, and handles SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

PROTOCOL = 1
CONFIG: dict[str, Any] = json.loads(os.environ.get("GAUNTLET_CONFIG", "{}"))
stop_requested = threading.Event()


def pooler() -> str | None:
    """`pooler` in the config: "pgbouncer" when the SDK is reached through PgBouncer in
    transaction mode (the driver then applies the settings its SDK documents for poolers,
    each a [[tuning]] entry with topology = "pgbouncer"), else None."""
    return CONFIG.get("pooler") or None


def psycopg_pooler_kwargs() -> dict[str, Any]:
    """Connect kwargs for psycopg 3 behind a pooler: `prepare_threshold=None` never prepares
    server-side statements, which PgBouncer before 1.21 cannot keep in transaction mode (the
    psycopg docs, advanced/prepare.html "Using prepared statements with PgBouncer"). Empty
    when there is no pooler: psycopg's defaults stand."""
    return {"prepare_threshold": None} if pooler() == "pgbouncer" else {}


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> None:
    emit({"ok": False, "error": message})
    sys.exit(code)


def specs() -> Iterator[dict[str, Any] | str]:
    """Job specs from stdin; a line that is no valid spec comes back as its error text."""
    for raw in sys.stdin:
        if not raw.strip():
            continue
        try:
            spec = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield f"invalid job spec: {exc}"
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            yield "invalid job spec: not an object with a string id"
            continue
        yield spec


def body(spec: dict[str, Any]) -> dict[str, Any]:
    """The SDK job body every worker of the system understands."""
    return {
        "gauntlet": {
            "id": spec["id"],
            "fail_times": int(spec.get("fail_times") or 0),
            "sleep_ms": int(spec.get("sleep_ms") or 0),
            "crash_on_attempt": spec.get("crash_on_attempt"),
            "echo_payload": bool(spec.get("echo_payload")),
        },
        "payload": spec.get("payload"),
        "pad": "x" * int(spec.get("pad_bytes") or 0),
    }


class History:
    """Appends one flushed line per event, so a SIGKILL loses nothing already written."""

    def __init__(self, path: str, worker: str) -> None:
        # No path: recording off (the bench measures what recording costs).
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None
        self._lock = threading.Lock()
        self.worker = worker

    def write(self, event: str, job_id: str, attempt: int, **extra: Any) -> None:
        if self._fd is None:
            return
        line = {
            "event": event,
            "id": job_id,
            "attempt": attempt,
            "worker": self.worker,
            "pid": os.getpid(),
            "wall": round(time.time(), 6),
            "mono": round(time.monotonic(), 6),
            **extra,
        }
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
        with self._lock:  # one write(2) per line on an O_APPEND fd: workers' lines never interleave
            os.write(self._fd, data)


def _begin(history: History, job_body: Any, attempt: int, sdk_id: str) -> tuple[str, dict[str, Any]]:
    """Writes the start line and crashes when told to; the job's id and its script."""
    meta = job_body.get("gauntlet", {}) if isinstance(job_body, dict) else {}
    job_id = str(meta.get("id", f"foreign-{sdk_id}"))
    extra: dict[str, Any] = {"sdk_id": sdk_id}
    if meta.get("echo_payload"):
        extra["payload"] = job_body.get("payload")
    history.write("start", job_id, attempt, **extra)
    if meta.get("crash_on_attempt") == attempt:
        os._exit(137)
    return job_id, meta


def _end(history: History, job_id: str, meta: dict[str, Any], attempt: int) -> bool:
    ok = attempt > int(meta.get("fail_times") or 0)
    history.write("end", job_id, attempt, outcome="ok" if ok else "fail")
    return ok


def execute(history: History, job_body: Any, attempt: int, sdk_id: str) -> bool:
    """Run a job's scripted behaviour; True when it succeeded. Crashes the process when told to."""
    job_id, meta = _begin(history, job_body, attempt, sdk_id)
    if meta.get("sleep_ms"):
        time.sleep(int(meta["sleep_ms"]) / 1000)
    return _end(history, job_id, meta, attempt)


async def execute_async(history: History, job_body: Any, attempt: int, sdk_id: str) -> bool:
    """`execute` for SDKs that run jobs on an asyncio loop (sleeping must not block the loop)."""
    job_id, meta = _begin(history, job_body, attempt, sdk_id)
    if meta.get("sleep_ms"):
        await asyncio.sleep(int(meta["sleep_ms"]) / 1000)
    return _end(history, job_id, meta, attempt)


def periodic_every_s() -> int | None:
    """`periodic.every_s` in a `work` config: the period of the one periodic job to register
    (its ticks are the Unix times that are multiples of it); None: no periodic job."""
    periodic = CONFIG.get("periodic") or {}
    return int(periodic["every_s"]) if periodic.get("every_s") else None


def croniter_expression(every_s: int) -> str:
    """`every_s` as croniter writes it: a sixth field for seconds, else every n minutes."""
    return f"* * * * * */{every_s}" if every_s < 60 else f"*/{every_s // 60} * * * *"


def grid_tick(every_s: int, at: float | None = None) -> int:
    """The tick at or before `at` (default now): for an SDK that does not say which occurrence
    it runs (its lateness stays below one period, which the harness's period ensures)."""
    return int((time.time() if at is None else at) // every_s * every_s)


def periodic_body(tick: int) -> dict[str, Any]:
    """The body an execution of the periodic job runs as: the id names its tick."""
    return {"gauntlet": {"id": f"periodic-{int(tick)}"}}


class JobFailed(Exception):
    """Raised inside an SDK's task when the script says this attempt fails."""


def run_slots(slot: Callable[[], bool]) -> None:
    """Run `concurrency` threads, each calling `slot()` (one fetch-and-run; False when idle)
    until SIGTERM; then let in-flight jobs finish."""
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    idle = float(CONFIG.get("poll_interval_ms", 50)) / 1000

    def loop() -> None:
        while not stop_requested.is_set():
            try:
                busy = slot()
            except Exception as exc:  # a fetch error (network fault): report, back off, go on
                print(f"slot error: {exc!r}", file=sys.stderr, flush=True)
                busy = False
            if not busy:
                stop_requested.wait(idle)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(int(CONFIG.get("concurrency", 1)))]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=0.2)


def acknowledge_each(send: Callable[[dict[str, Any]], Any], in_transaction: bool = False) -> None:
    """One acknowledgement per stdin line, in order. Inside a transaction an error is not
    acknowledged but raised, so that the caller's transaction fails as a whole."""
    for spec in specs():
        if isinstance(spec, str):
            emit({"id": None, "ok": False, "error": spec})
            continue
        try:
            sdk_id = send(spec)
        except Exception as exc:
            if in_transaction:
                raise
            emit({"id": spec["id"], "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        else:
            emit({"id": spec["id"], "ok": True, "sdk_id": str(sdk_id)})


async def acknowledge_each_async(
    send: Callable[[dict[str, Any]], Awaitable[Any]], in_transaction: bool = False
) -> None:
    """`acknowledge_each` for asyncio SDKs: stdin is read on a thread, each send runs on the loop."""
    loop = asyncio.get_running_loop()

    def send_on_loop(spec: dict[str, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(send(spec), loop).result()

    await asyncio.to_thread(acknowledge_each, send_on_loop, in_transaction)


def batch_size() -> int:
    """The config's `batch_size`: absent, null or 1 means one SDK call per spec."""
    return max(1, int(CONFIG.get("batch_size") or 1))


def groups(size: int, key: Callable[[dict[str, Any]], Any] | None = None) -> Iterator[list[dict[str, Any]] | str]:
    """The specs on stdin in groups of up to `size` consecutive valid specs, each yielded the
    moment it is complete: full, followed by an invalid line (yielded next, as its error text),
    by a spec of another `key` (what the SDK's batch call must share) or by one whose
    dedupe_key the group already holds (no batch call treats two of one key as two single
    calls would), or at EOF."""
    group: list[dict[str, Any]] = []
    for spec in specs():
        if isinstance(spec, str):
            if group:
                yield group
                group = []
            yield spec
            continue
        if group and (
            (key is not None and key(spec) != key(group[0]))
            or (spec.get("dedupe_key") is not None and any(s.get("dedupe_key") == spec["dedupe_key"] for s in group))
        ):
            yield group
            group = []
        group.append(spec)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def acknowledge_batches(
    send_batch: Callable[[list[dict[str, Any]]], list[Any]],
    key: Callable[[dict[str, Any]], Any] | None = None,
    in_transaction: bool = False,
) -> None:
    """`acknowledge_each` for an SDK's batch call: each group (see `groups`) goes through
    `send_batch`, which returns one result per spec, in order (an SDK id, or an exception for
    a spec the SDK refused); then one acknowledgement per spec. A batch call that fails, or
    answers for a different number of jobs, fails every spec of its group."""
    for group in groups(batch_size(), key):
        if isinstance(group, str):
            emit({"id": None, "ok": False, "error": group})
            continue
        try:
            results = list(send_batch(group))
            if len(results) != len(group):
                raise RuntimeError(f"the batch call answered for {len(results)} jobs, was given {len(group)}")
        except Exception as exc:
            if in_transaction:
                raise
            for spec in group:
                emit({"id": spec["id"], "ok": False, "error": f"{type(exc).__name__}: {exc}"})
            continue
        for spec, result in zip(group, results, strict=True):
            if isinstance(result, BaseException):
                if in_transaction:
                    raise result
                emit({"id": spec["id"], "ok": False, "error": f"{type(result).__name__}: {result}"})
            else:
                emit({"id": spec["id"], "ok": True, "sdk_id": str(result)})


def acknowledge(
    send: Callable[[dict[str, Any]], Any],
    send_batch: Callable[[list[dict[str, Any]]], list[Any]] | None = None,
    key: Callable[[dict[str, Any]], Any] | None = None,
    in_transaction: bool = False,
) -> None:
    """Each spec through `send` as it arrives; with `batch_size` > 1 and a `send_batch`, groups of them."""
    if send_batch is not None and batch_size() > 1:
        acknowledge_batches(send_batch, key, in_transaction)
    else:
        acknowledge_each(send, in_transaction)


async def acknowledge_async(
    send: Callable[[dict[str, Any]], Awaitable[Any]],
    send_batch: Callable[[list[dict[str, Any]]], Awaitable[list[Any]]] | None = None,
    key: Callable[[dict[str, Any]], Any] | None = None,
    in_transaction: bool = False,
) -> None:
    """`acknowledge` for asyncio SDKs: stdin is read on a thread, each call runs on the loop."""
    loop = asyncio.get_running_loop()

    def on_loop(call: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Any]:
        return lambda arg: asyncio.run_coroutine_threadsafe(call(arg), loop).result()

    batch = on_loop(send_batch) if send_batch is not None else None
    await asyncio.to_thread(acknowledge, on_loop(send), batch, key, in_transaction)


def transaction_outcome(mode: str) -> None:
    emit({"transaction": "committed" if mode == "commit" else "rolled_back"})


def main(commands: dict[str, Callable[[], Any]]) -> None:
    """Runs the command named by the first argument; a coroutine function runs on a new loop."""
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        fail(f"usage: driver {{{'|'.join(commands)}}}", code=2)
    command = commands[sys.argv[1]]
    try:
        asyncio.run(command()) if asyncio.iscoroutinefunction(command) else command()
    except Exception as exc:  # the protocol wants one error line, not a traceback on stdout
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        fail(f"{type(exc).__name__}: {exc}")
