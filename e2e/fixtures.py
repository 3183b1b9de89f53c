"""Fixtures shared by the E2E and chaos catalogs: the SDK under test (--sdk), capability
gating, a fresh database with the system's schema per scenario, and the properties every
test case carries. Each catalog's conftest imports them."""

from __future__ import annotations

import contextlib
import os
import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from e2e.workload import WORKER_OPTIONS, Workload
from gauntlet import catalog, paths, schemas
from gauntlet.catalog import Catalog, Contract, Sdk, System
from gauntlet.driver import Driver, DriverError
from gauntlet.ids import HARNESS_ERROR, RowId, SessionId, file_safe
from gauntlet.pg import Harness
from gauntlet.pgbouncer import PgBouncer

# The visibility timeout goes to every command: some SDKs (pg-boss) fix it when a queue is made.
DRIVER_OPTIONS = {"visibility_timeout_s": WORKER_OPTIONS["visibility_timeout_s"]}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--sdk", help="the SDK adapter under test (a folder name in sdk_adapters/)")
    parser.addoption("--seed", type=int, default=None, help="workload seed (default: random, recorded)")
    parser.addoption(
        "--topology",
        choices=("direct", "pgbouncer"),
        default="direct",
        help="how the SDK reaches PostgreSQL: direct, or through a PgBouncer in transaction mode (e2e)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(*capabilities): not applicable unless the SDK declares them ('a|b': either)"
    )
    config.addinivalue_line("markers", "direct_only(why): not applicable through a pooler, for the reason given")


@pytest.fixture(scope="session")
def seed(pytestconfig: pytest.Config) -> int:
    chosen = pytestconfig.getoption("--seed")
    return (
        int(chosen)
        if chosen is not None
        else int(os.environ.get("GAUNTLET_SEED", random.SystemRandom().randrange(1, 10**6)))
    )


@pytest.fixture(scope="session")
def pooler(harness: Harness, pytestconfig: pytest.Config) -> Iterator[PgBouncer | None]:
    """The PgBouncer the SDK connects through (--topology pgbouncer), else None."""
    if pytestconfig.getoption("--topology") != "pgbouncer":
        yield None
        return
    bouncer = PgBouncer(harness.supervisor, harness.server).start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


RUNNING_POOLER = pytest.StashKey[PgBouncer]()


@pytest.fixture(autouse=True)
def pooler_stays_up(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> Iterator[None]:
    """A PgBouncer that exited is restarted before the next scenario, so one crash costs one
    cell (pytest_runtest_makereport makes it an *error*), not the session: every later scenario
    would otherwise wait out its bounds against a dead port."""
    if pytestconfig.getoption("--topology") != "pgbouncer":
        yield
        return
    bouncer: PgBouncer = request.getfixturevalue("pooler")
    if bouncer.exited():
        bouncer.restart()
    request.node.stash[RUNNING_POOLER] = bouncer
    kept = [p for p in request.node.user_properties if p[0] != HARNESS_ERROR]  # a re-run starts clean
    request.node.user_properties[:] = kept
    yield
    if bouncer.exited():
        bouncer.restart()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A scenario during which the PgBouncer exited judged nothing about the SDK: its case is
    an *error* (property `harness_error`) that names the crash, whatever the scenario said."""
    outcome = yield
    bouncer = item.stash.get(RUNNING_POOLER, None)
    crash = bouncer.exited() if bouncer is not None and call.when == "call" else None
    if crash:
        report: pytest.TestReport = outcome.get_result()
        said = getattr(getattr(report.longrepr, "reprcrash", None), "message", "") or "nothing (it passed)"
        report.outcome = "failed"
        report.longrepr = f"{POOLER_CRASHED}.\nThe scenario said: {said[:600]}\n{crash}"
        for holder in (report.user_properties, item.user_properties):  # JUnit takes the item's
            holder.append((HARNESS_ERROR, POOLER_CRASHED))


POOLER_CRASHED = (
    "PgBouncer exited during this scenario: the pooler's crash, not the SDK's, so the cell judged nothing;"
    " the harness restarted PgBouncer for the next scenario"
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
        ("topology", topology_of(request)),
        ("seed", seed),
        ("sdk_source", catalog.source_label(manifest)),  # "pinned 1.1.4", or a local checkout's build
    ):
        record_property(key, value)
    direct_only = request.node.get_closest_marker("direct_only")
    if direct_only and topology_of(request) == "pgbouncer":
        pytest.skip(f"not applicable through PgBouncer: {direct_only.args[0]}")
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


def topology_of(request: pytest.FixtureRequest) -> str:
    """The chaos catalog always runs through Toxiproxy; the E2E catalog directly or through PgBouncer."""
    return "toxiproxy" if suite_of(request) == "chaos" else str(request.config.getoption("--topology"))


def suite_of(request: pytest.FixtureRequest) -> str:
    if request.node.path.parent.name == "chaos":
        return "chaos"
    return "interop" if request.node.originalname == "test_interop" else "e2e"


def system_template(harness: Harness, system: System) -> str:
    return harness.databases.template(
        f"e2e_{system.name.replace('-', '_')}", lambda dsn: schemas.install(system, dsn, harness.supervisor)
    )


def prepared_template(harness: Harness, system: System, manifest: Sdk, queue: str) -> str:
    """The system's template with the SDK's `prepare` run for the session's queue: one driver
    start per session where it was one per scenario (a Python SDK's imports alone cost about
    0.2-0.5 s of CPU a start here). A driver whose prepare fails makes each scenario an error."""
    return harness.databases.template(
        f"prepared_{manifest.name.replace('-', '_')}",
        lambda dsn: Driver(manifest, harness.supervisor, dsn, queue, options=dict(DRIVER_OPTIONS)).prepare(),
        source=system_template(harness, system),
    )


@pytest.fixture
def database(
    harness: Harness, system: System, manifest: Sdk, queue_name: str, pooler: PgBouncer | None
) -> Iterator[str]:
    """DSN of a fresh database holding the system's schema and, reached directly, the SDK's
    prepared queue; dropped once the scenario is done: a PgBouncer keeps up to a pool of server
    connections open to every database it has seen (server_idle_timeout), so a session's
    databases kept to its end would exhaust the server's max_connections and turn later cells
    into errors that are the harness's. Through a pooler the driver prepares each scenario's
    database itself, through the pooler, as a user's deployment would."""
    template = system_template(harness, system) if pooler else prepared_template(harness, system, manifest, queue_name)
    name = harness.databases.fresh(template, label="e2e")
    try:
        yield harness.databases.dsn(name)
    finally:
        with contextlib.suppress(psycopg.Error):  # a scenario left the server down: the session's end drops it
            harness.databases.drop(name)


@pytest.fixture(scope="session")
def queue_name() -> str:
    """One per session: every scenario has a database of its own, cloned from a template that
    already holds this queue."""
    return f"q{secrets.token_hex(4)}"


@pytest.fixture
def driver(
    manifest: Sdk, harness: Harness, database: str, queue_name: str, sdk_info: dict, pooler: PgBouncer | None
) -> Driver:
    """The SDK on the scenario's database, through the pooler when there is one (the harness's
    own stats query always goes straight to PostgreSQL)."""
    options: dict[str, Any] = dict(DRIVER_OPTIONS)
    dsn = pooler.dsn(database) if pooler else database
    if pooler:  # the driver applies the settings its SDK documents for poolers (declared in its tuning)
        options["pooler"] = "pgbouncer"
    made = Driver(manifest, harness.supervisor, dsn, queue_name, options=options, stats_dsn=database)
    if pooler:  # directly, the database's template was prepared (prepared_template)
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
    return Driver(
        worker, driver.supervisor, driver.dsn, driver.queue, options=driver.options, stats_dsn=driver.stats_dsn
    )


@pytest.fixture
def workload(
    request: pytest.FixtureRequest,
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
    kept = evidence_path(request, driver.name)
    kept.unlink(missing_ok=True)  # an earlier run's evidence must not speak for this one
    try:
        yield load
    finally:
        for worker in load.workers:
            worker.kill()
        recovery = dict(request.node.user_properties).get("recovery_s")  # a wave's (chaos/wave.py)
        load.save_evidence(kept, cell_key(request, driver.name), request.node.name, recovery)


def evidence_path(request: pytest.FixtureRequest, sdk: str) -> Path:
    """reports/out/evidence/<kind>-<sdk>/<test>.json (gauntlet/evidence.py)."""
    session = SessionId.making(suite_of(request), sdk, topology_of(request))
    return paths.OUT / session.evidence_dir / f"{file_safe(request.node.name)}.json"


def cell_key(request: pytest.FixtureRequest, sdk: str) -> dict[str, str]:
    """The cell the test's case goes to, as matrix.json names it (an interop case's row names its worker)."""
    recorded = dict(request.node.user_properties)
    suite = suite_of(request)
    row = RowId.interop(str(recorded.get("worker_sdk", ""))) if suite == "interop" else RowId(suite, request.node.name)
    return {"row": str(row), "sdk": sdk, "topology": topology_of(request)}
