"""Every driver in sdk_adapters/ speaks protocol v1 as PROTOCOL.md says, and the adapter
rejects what does not."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from gauntlet import manifests, paths, schemas
from gauntlet.checker import History
from gauntlet.driver import STATS_KEYS, Driver, DriverError
from gauntlet.manifests import Manifest

ALL = manifests.discover()
CAPABILITIES = {
    "priority",
    "fifo",
    "retries",
    "dead_letter",
    "delay",
    "dedupe",
    "tx_enqueue",
    "batch_enqueue",
    "visibility_timeout",
    "crash_recovery",
    "listen_notify",
    "worker",
}

# Capabilities some scenario needs (`@pytest.mark.needs("a", "b|c")`): a claim no scenario tests is not allowed.
EXERCISED = {
    capability
    for catalog in ("e2e", "chaos")
    for source in (paths.ROOT / catalog).glob("test_*.py")
    for marker in re.findall(r"mark\.needs\(([^)]*)\)", source.read_text())
    for quoted in re.findall(r'"([^"]+)"', marker)
    for capability in quoted.split("|")
}


@pytest.fixture
def database(harness, request) -> str:
    manifest: Manifest = request.getfixturevalue("manifest")
    template = harness.databases.template(
        f"proto_{manifest.system.replace('-', '_')}",
        lambda dsn: schemas.install(manifest.system, dsn, harness.supervisor),
    )
    return harness.databases.dsn(harness.databases.fresh(template, label="proto"))


@pytest.mark.parametrize("manifest", ALL, ids=[m.name for m in ALL])
def test_driver_conforms(manifest: Manifest, harness, database: str, tmp_path: Path) -> None:
    driver = Driver(manifest, harness.supervisor, database, "conformance")
    info = driver.info()
    assert (info["sdk"], info["system"], info["language"]) == (manifest.name, manifest.system, manifest.language)
    assert info["version"] == manifest.version, "info and manifest disagree on the SDK version"
    assert set(info["capabilities"]) <= CAPABILITIES, set(info["capabilities"]) - CAPABILITIES
    untested = set(info["capabilities"]) - EXERCISED
    assert not untested, f"claimed, but no scenario needs: {untested}"
    if "worker" not in info["capabilities"]:
        partner = {m.name: m for m in ALL}.get(info.get("works_with", ""))
        assert partner and partner.system == manifest.system, "an insert-only driver must name its worker (works_with)"
    driver.prepare()
    driver.prepare()  # idempotent

    specs = [{"id": f"c{i}", "payload": {"i": i}} for i in range(3)]
    result = driver.enqueue([specs[0], "not json", specs[1], specs[2]])
    assert [a.id for a in result.acks] == ["c0", None, "c1", "c2"]
    assert result.acks[1].error.startswith("invalid job spec")
    assert all(a.ok and a.sdk_id for a in result.acks if a.id)

    if "tx_enqueue" in info["capabilities"]:
        assert driver.enqueue([{"id": "t0", "payload": {}}], transaction="rollback").transaction == "rolled_back"

    if "worker" in info["capabilities"]:
        history_path = tmp_path / "history.jsonl"
        worker = driver.start_worker("w1", history_path, concurrency=2, poll_interval_ms=20, visibility_timeout_s=5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and history_path.exists() is False:
            time.sleep(0.1)
        time.sleep(2)
        assert worker.stop() == 0, "a worker must exit 0 on SIGTERM"
        history = History()
        history.add_file(history_path)
        assert history.malformed == []
        for line in history_path.read_text().splitlines():
            record = json.loads(line)
            assert {"event", "id", "attempt", "worker", "pid", "wall", "mono"} <= set(record)
    stats = driver.stats()
    assert set(STATS_KEYS) == set(stats)


def test_malformed_driver_output_is_an_error_that_quotes_the_line(harness, tmp_path: Path) -> None:
    folder = tmp_path / "liar"
    folder.mkdir()
    (folder / "manifest.toml").write_text(
        'name = "liar"\nsystem = "pgmq"\nlanguage = "python"\ndriver = ["{python}", "./liar.py"]\n'
    )
    (folder / "liar.py").write_text("print('hello, I am not JSON')\n")
    driver = Driver(manifests.load(folder / "manifest.toml"), harness.supervisor, harness.server.dsn())
    with pytest.raises(DriverError, match="not JSON: 'hello, I am not JSON'"):
        driver.info()


def test_a_driver_that_cannot_start_is_a_clear_error(harness, tmp_path: Path) -> None:
    folder = tmp_path / "ghost"
    folder.mkdir()
    (folder / "manifest.toml").write_text('name = "ghost"\nsystem = "pgmq"\nlanguage = "go"\ndriver = ["./driver"]\n')
    driver = Driver(manifests.load(folder / "manifest.toml"), harness.supervisor, harness.server.dsn())
    with pytest.raises(DriverError, match="cannot start"):
        driver.info()
