"""Cross-SDK interop: jobs enqueued by this SDK are worked by every SDK of the same system."""

from __future__ import annotations

import pytest

from gauntlet import bootstrap, catalog
from gauntlet.driver import Driver, DriverError

from .workload import Workload, assert_holds

PAYLOADS = [
    {"text": "héllo wörld ✓ 日本語 🚀", "escapes": 'quote " backslash \\ newline \n tab \t'},
    {"nested": {"list": [1, 2.5, -3, True, False, None, {"deep": [[], {}]}]}, "big": 2**53 - 1},
    {"blob": "z" * 200_000},
    [],
    "just a string",
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per SDK of the same system (this one included)."""
    if "worker_sdk" in metafunc.fixturenames:
        sdk = metafunc.config.getoption("--sdk")
        loaded = catalog.load()
        system = next((s for s in loaded.systems if sdk in {m.name for m in s.sdks}), None)
        metafunc.parametrize("worker_sdk", [m.name for m in system.sdks] if system else [])


def test_interop(workload: Workload, worker_sdk: str, record_property) -> None:
    """Enqueue with this SDK, work with `worker_sdk`: all run once, payloads arrive intact."""
    record_property("worker_sdk", worker_sdk)
    worker_driver = Driver(
        catalog.load().sdk(worker_sdk),
        workload.driver.supervisor,
        workload.driver.dsn,
        workload.driver.queue,
        options=workload.driver.options,  # the same lease, and the same pooler when there is one
        stats_dsn=workload.driver.stats_dsn,
    )
    try:
        capabilities = worker_driver.info()["capabilities"]
    except DriverError:
        left_out = bootstrap.left_out(worker_sdk)  # a job that built only some SDKs (bootstrap --sdk)
        if left_out:
            pytest.skip(left_out)
        raise
    if "worker" not in capabilities:
        pytest.skip(f"not applicable: {worker_sdk} cannot work jobs (insert-only)")
    specs = workload.specs(len(PAYLOADS), echo_payload=True)
    for spec, payload in zip(specs, PAYLOADS, strict=True):
        spec["payload"] = payload
    workload.enqueue(specs + workload.specs(20))
    workload.start(1, concurrency=4, driver=worker_driver)
    workload.wait_until_done(60, settle_s=0.3)
    workload.stop_all()
    assert_holds(workload.report(), "lost", "duplicated", "unexpected", "malformed")
    received = {r.id: r.payload for r in workload.history().executions if r.has_payload}
    for spec in specs:
        assert received.get(spec["id"]) == spec["payload"], f"payload of {spec['id']} changed on the way"
