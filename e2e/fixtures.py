"""Fixtures shared by the E2E and chaos catalogs: the SDK under test (--sdk), capability
gating, a fresh database with the system's schema per scenario, and the properties every
test case carries. Each catalog's conftest imports them."""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.workload import WORKER_OPTIONS, Workload
from gauntlet import catalog, schemas
from gauntlet.catalog import Catalog, Contract, Sdk, System
from gauntlet.driver import Driver, DriverError
from gauntlet.pg import Harness


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--sdk", help="the SDK adapter under test (a folder name in sdk_adapters/)")
    parser.addoption("--seed", type=int, default=None, help="workload seed (default: random, recorded)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(*capabilities): not applicable unless the SDK declares them ('a|b': either)"
    )


@pytest.fixture(scope="session")
def seed(pytestconfig: pytest.Config) -> int:
    chosen = pytestconfig.getoption("--seed")
    return (
        int(chosen)
        if chosen is not None
        else int(os.environ.get("GAUNTLET_SEED", random.SystemRandom().randrange(1, 10**6)))
    )


@pytest.fixture(scope="session")
def loaded_catalog() -> Catalog:
    return catalog.load()


@pytest.fixture(scope="session")
def manifest(pytestconfig: pytest.Config, loaded_catalog: Catalog) -> Sdk:
    name = pytestconfig.getoption("--sdk")
    broken = next((b for b in loaded_catalog.broken if b.sdk == name), None)
    if broken is not None:
        pytest.fail(f"--sdk={name!r} cannot be used: {broken.message}", pytrace=False)
    try:
        return loaded_catalog.sdk(name)
    except catalog.CatalogError as exc:
        pytest.fail(f"--sdk={name!r}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def system(manifest: Sdk, loaded_catalog: Catalog) -> System:
    return loaded_catalog.system(manifest.system)


@pytest.fixture(scope="session")
def contract(manifest: Sdk) -> Contract:
    """What the SDK's system promises (with this SDK's declared differences): scenarios judge by it."""
    assert manifest.contract is not None
    return manifest.contract


@pytest.fixture(scope="session")
def sdk_info(manifest: Sdk, harness: Harness) -> dict:
    """The driver's `info`; a driver that cannot answer makes every cell an error that says why."""
    try:
        return Driver(manifest, harness.supervisor, harness.server.dsn()).info()
    except DriverError as exc:
        pytest.fail(f"driver unusable: {exc}", pytrace=False)


@pytest.fixture(autouse=True)
def properties_and_capabilities(request: pytest.FixtureRequest, record_property, seed: int) -> Iterator[None]:
    if "manifest" not in request.fixturenames:
        yield
        return
    manifest: Sdk = request.getfixturevalue("manifest")
    for key, value in (
        ("sdk", manifest.name),
        ("system", manifest.system),
        ("language", manifest.language),
        ("scenario", request.node.originalname),
        ("suite", suite_of(request)),
        ("topology", "toxiproxy" if suite_of(request) == "chaos" else "direct"),
        ("seed", seed),
    ):
        record_property(key, value)
    marker = request.node.get_closest_marker("needs")
    if marker:
        info = request.getfixturevalue("sdk_info")
        declared = set(info["capabilities"])
        if info.get("works_with") and suite_of(request) == "e2e":  # chaos faults workers: the partner's own cells
            declared.add("worker")
            record_property("worker_sdk", info["works_with"])
        missing = [c for c in marker.args if not declared & set(c.split("|"))]  # "a|b": either will do
        if missing:
            pytest.skip(f"not applicable: {manifest.name} does not declare {', '.join(missing)}")
    yield


def suite_of(request: pytest.FixtureRequest) -> str:
    if request.node.path.parent.name == "chaos":
        return "chaos"
    return "interop" if request.node.originalname == "test_interop" else "e2e"


def system_template(harness: Harness, system: System) -> str:
    return harness.databases.template(
        f"e2e_{system.name.replace('-', '_')}", lambda dsn: schemas.install(system, dsn, harness.supervisor)
    )


@pytest.fixture
def database(harness: Harness, system: System) -> str:
    """DSN of a fresh database holding the system's schema."""
    return harness.databases.dsn(harness.databases.fresh(system_template(harness, system), label="e2e"))


@pytest.fixture
def queue_name() -> str:
    return f"q{secrets.token_hex(4)}"


@pytest.fixture
def driver(manifest: Sdk, harness: Harness, database: str, queue_name: str, sdk_info: dict) -> Driver:
    # The visibility timeout goes to every command: some SDKs (pg-boss) fix it when a queue is made.
    options = {"visibility_timeout_s": WORKER_OPTIONS["visibility_timeout_s"]}
    made = Driver(manifest, harness.supervisor, database, queue_name, options=options)
    made.prepare()
    return made


def partner(driver: Driver, sdk_info: dict, loaded: Catalog) -> Driver | None:
    """The worker of an insert-only SDK: the SDK its `info` names in `works_with`."""
    if "worker" in sdk_info["capabilities"] or not sdk_info.get("works_with"):
        return None
    try:
        worker = loaded.sdk(sdk_info["works_with"])
    except catalog.CatalogError as exc:
        pytest.fail(f"{driver.name} works with {sdk_info['works_with']!r}: {exc}", pytrace=False)
    return Driver(worker, driver.supervisor, driver.dsn, driver.queue, options=driver.options)


@pytest.fixture
def workload(
    driver: Driver,
    tmp_path: Path,
    seed: int,
    record_property,
    sdk_info: dict,
    contract: Contract,
    loaded_catalog: Catalog,
) -> Iterator[Workload]:
    load = Workload(
        driver,
        tmp_path,
        seed,
        contract,
        record=record_property,
        worker_driver=partner(driver, sdk_info, loaded_catalog),
    )
    try:
        yield load
    finally:
        for worker in load.workers:
            worker.kill()
