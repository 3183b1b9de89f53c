"""The bootstrap is idempotent: on a ready machine it only looks, never installs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gauntlet import bootstrap, catalog, paths


def _commands_run(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every argv subprocess.run is given from now on (and still runs)."""
    calls: list[list[str]] = []
    real_run = subprocess.run

    def spy(argv, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    return calls


def test_second_run_touches_no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bootstrap.main() == 0  # make sure the machine is ready
    calls = _commands_run(monkeypatch)
    began = time.monotonic()
    assert bootstrap.main() == 0
    assert time.monotonic() - began < 10
    commands = {argv[0] for argv in calls}
    assert commands <= {"dpkg-query", "git"}, f"a ready machine ran {sorted(commands)}"  # both local


def test_a_failing_step_stops_with_its_name(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def broken() -> None:
        raise bootstrap.BootstrapError("Go is needed")

    monkeypatch.setattr(bootstrap, "STEPS", [("toxiproxy server", broken)])
    assert bootstrap.main() == 1
    assert "toxiproxy server: Go is needed" in capsys.readouterr().out


# --- bootstrap --sdk NAME: only what that SDK's sessions need ---


def _builds(selection: bootstrap.Selection) -> dict[str, tuple[str, ...]]:
    """The planned builds, less an SDK's previous release's (which goes with the SDK)."""
    return {b.stamp: b.argv for b in bootstrap.plan(selection) if not b.stamp.endswith("-previous")}


def test_a_python_sdk_builds_no_rust_and_no_other_driver() -> None:
    planned = _builds(bootstrap.for_sdks(["pgmq-py"]))
    assert not any(argv[:1] == ("cargo",) for argv in planned.values()), planned
    # A Python SDK's one build is its own virtualenv, from its lock alone.
    assert [s for s in planned if s.startswith("sdk-")] == ["sdk-pgmq-py"], planned
    assert planned["sdk-pgmq-py"][:2] == ("sh", "../../_shared/python/venv.sh"), planned
    assert not {"cargo", "npm", "{node22}"} & bootstrap.toolchains(bootstrap.for_sdks(["pgmq-py"]))
    names = [name for name, _ in bootstrap.steps(bootstrap.for_sdks(["pgmq-py"]))]
    assert "node 22 runtime" not in names  # only when a selected build or driver needs it
    assert names[:3] == [name for name, _ in bootstrap.STEPS[:3]]  # apt, venv, go tools: as today


def test_a_rust_sdk_builds_itself_and_its_systems_installer_only() -> None:
    planned = _builds(bootstrap.for_sdks(["graphile-worker-rs"]))
    assert planned.keys() == {"installer-graphile-worker", "sdk-graphile-worker-rs"}
    assert planned["sdk-graphile-worker-rs"][0] == "cargo"
    assert "{node22}" in bootstrap.toolchains(bootstrap.for_sdks(["graphile-worker-rs"]))  # its installer's


def test_sdk_is_repeatable_and_plain_bootstrap_builds_everything() -> None:
    both = _builds(bootstrap.for_sdks(["pgmq-go", "river-go"]))
    assert both.keys() == {"sdk-pgmq-go", "installer-river", "sdk-river-go"}
    everything = _builds(bootstrap.EVERYTHING)
    assert both.keys() < everything.keys()
    assert {s.name for s in catalog.load().sdks() if s.build} == {
        s.removeprefix("sdk-") for s in everything if s.startswith("sdk-")
    }
    assert bootstrap.steps(bootstrap.EVERYTHING) is bootstrap.STEPS


def test_installers_and_none() -> None:
    installers = _builds(bootstrap.INSTALLERS)
    assert installers and all(s.startswith("installer-") for s in installers)
    assert _builds(bootstrap.NOTHING) == {}
    assert bootstrap.toolchains(bootstrap.NOTHING) == set()


def test_the_command_line(capsys) -> None:
    assert bootstrap.parse([]) == bootstrap.EVERYTHING
    assert bootstrap.parse(["--none"]) == bootstrap.NOTHING
    assert bootstrap.parse(["--installers"]) == bootstrap.INSTALLERS
    chosen = bootstrap.parse(["--sdk", "pgmq-py", "--sdk", "river-py"])
    assert chosen.sdks == {"pgmq-py", "river-py"} and chosen.systems == {"pgmq", "river"}
    assert bootstrap.main(["--sdk", "no-such-sdk"]) == 2
    assert "no SDK no-such-sdk; known: graphile-worker-js" in capsys.readouterr().out


def test_a_second_run_for_one_sdk_touches_no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    selection = bootstrap.STAMPS / bootstrap.SELECTION
    before = selection.read_text() if selection.exists() else None
    try:
        assert bootstrap.main(["--sdk", "pgmq-py"]) == 0
        calls = _commands_run(monkeypatch)
        assert bootstrap.main(["--sdk", "pgmq-py"]) == 0
        commands = {argv[0] for argv in calls}
        driver = catalog.expand(catalog.load().sdk("pgmq-py").driver, catalog.load().sdk("pgmq-py").folder)[0]
        assert commands <= {"dpkg-query", "git", driver}, sorted(commands)  # the driver's `info`
        assert json.loads(selection.read_text())["sdks"] == ["pgmq-py"]
    finally:  # the machine's own record stays as it was
        selection.unlink(missing_ok=True)
        if before is not None:
            selection.write_text(before)


def test_an_insert_only_sdk_brings_its_worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """river-py's driver names river-go in `info` (works_with): its e2e cells need that worker."""
    monkeypatch.setattr(bootstrap, "STAMPS", tmp_path)
    built: list[str] = []
    monkeypatch.setattr(bootstrap, "_build", lambda stamp, *args: built.append(stamp) or True)
    bootstrap.builds(bootstrap.for_sdks(["river-py"]))
    assert [s for s in built if not s.endswith("-previous")] == ["installer-river", "sdk-river-py", "sdk-river-go"]
    assert json.loads((tmp_path / bootstrap.SELECTION).read_text())["sdks"] == ["river-go", "river-py"]
    assert bootstrap.left_out("river-go") is None
    assert "pgmq-rs's driver is not built on this machine" in (bootstrap.left_out("pgmq-rs") or "")
    assert "`bootstrap --sdk river-py`" in (bootstrap.left_out("pgmq-rs") or "")


def test_a_misspelt_source_variable_stops_the_bootstrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(bootstrap, "STAMPS", tmp_path)
    monkeypatch.setenv("GAUNTLET_SDK_SOURCE_PGMQPY", str(tmp_path))
    with pytest.raises(bootstrap.BootstrapError, match="GAUNTLET_SDK_SOURCE_PGMQPY names no SDK"):
        bootstrap.builds(bootstrap.NOTHING)


def test_source_variable_names() -> None:
    assert catalog.source_variable("pgmq-py") == "GAUNTLET_SDK_SOURCE_PGMQ_PY"
    assert catalog.source_variable("graphile-worker-js") == "GAUNTLET_SDK_SOURCE_GRAPHILE_WORKER_JS"
    assert catalog.source_variable("a_b--c") == "GAUNTLET_SDK_SOURCE_A_B_C"


def test_a_language_without_local_builds_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GAUNTLET_SDK_SOURCE_PGMQ_RS", str(tmp_path))
    monkeypatch.setenv("GAUNTLET_SDK_BUILDS", str(tmp_path / "builds"))
    monkeypatch.setattr(bootstrap, "STAMPS", tmp_path / "stamps")
    with pytest.raises(bootstrap.BootstrapError, match="PGMQ_RS: a rust SDK cannot be built from a local source yet"):
        bootstrap.builds(bootstrap.for_sdks(["pgmq-rs"]))
    assert not (tmp_path / "builds").exists()


def test_a_node_source_must_be_the_package_the_driver_depends_on(tmp_path: Path) -> None:
    """The checkout goes in over the pinned package by its package.json name: another package
    (a wrong path, a monorepo's root) is refused with what the driver depends on."""
    sdk = catalog.load().sdk("pgmq-js")
    (tmp_path / "package.json").write_text('{"name": "left-pad", "version": "1.3.0"}')
    with pytest.raises(bootstrap.BootstrapError, match=r"npm package 'left-pad'; pgmq-js depends on \['pgmq-js'\]"):
        bootstrap._node_source(sdk, tmp_path)
    (tmp_path / "package.json").write_text('{"name": "pgmq-js", "version": "1.3.2-dev"}')
    assert bootstrap._node_source(sdk, tmp_path) == ("1.3.2-dev", {})


# --- GAUNTLET_SDK_SOURCE_<NAME>: a driver built against a local checkout of the SDK's source ---

# An in-tree PEP 517 backend (pyproject's backend-path): the fixture's build needs no registry.
BACKEND = """
import base64, hashlib, pathlib, zipfile

NAME, VERSION = "pgmq", "{version}"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    wheel = f"{{NAME}}-{{VERSION}}-py3-none-any.whl"
    info = f"{{NAME}}-{{VERSION}}.dist-info"
    found = sorted(p for p in pathlib.Path("src").rglob("*") if p.is_file())
    files = {{str(p.relative_to("src")): p.read_bytes() for p in found}}
    files[f"{{info}}/METADATA"] = f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n".encode()
    wheel_info = "Wheel-Version: 1.0\\nGenerator: gauntlet-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    files[f"{{info}}/WHEEL"] = wheel_info.encode()
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{{name}},sha256={{digest}},{{len(data)}}")
    files[f"{{info}}/RECORD"] = ("\\n".join(record) + f"\\n{{info}}/RECORD,,\\n").encode()
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / wheel, "w") as out:
        for name, data in files.items():
            out.writestr(name, data)
    return wheel
"""


@pytest.fixture
def unpacked_sdist(tmp_path: Path) -> Path:
    """PGMQ's released Python source (pgmq 1.1.4, as the harness virtualenv holds it) laid out
    as its unpacked sdist is (pyproject.toml, src/pgmq/), as a new version, with a marker."""
    import pgmq

    root = tmp_path / "pgmq-1.1.4.post9"
    shutil.copytree(Path(pgmq.__file__).parent, root / "src" / "pgmq", ignore=shutil.ignore_patterns("__pycache__"))
    with (root / "src" / "pgmq" / "__init__.py").open("a") as init:
        init.write("\nGAUNTLET_LOCAL_FIXTURE = True\n")
    (root / "backend.py").write_text(BACKEND.format(version="1.1.4.post9"))
    (root / "pyproject.toml").write_text(
        '[project]\nname = "pgmq"\nversion = "1.1.4.post9"\n\n'
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )
    return root


def test_a_local_python_source_is_built_apart_and_its_cells_say_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, unpacked_sdist: Path
) -> None:
    builds = tmp_path / "builds"
    monkeypatch.setenv("GAUNTLET_SDK_SOURCE_PGMQ_PY", str(unpacked_sdist))
    monkeypatch.setenv("GAUNTLET_SDK_BUILDS", str(builds))
    monkeypatch.setattr(bootstrap, "STAMPS", tmp_path / "stamps")
    bootstrap.builds(bootstrap.for_sdks(["pgmq-py"]))

    sdk = catalog.load().sdk("pgmq-py")
    assert sdk.folder == builds / "pgmq" / "pgmq-py" and sdk.home == paths.ADAPTERS / "pgmq" / "pgmq-py"
    assert catalog.source_label(sdk) == f"local {unpacked_sdist} (version 1.1.4.post9)"
    probe = "import pgmq; print(pgmq.__file__, getattr(pgmq, 'GAUNTLET_LOCAL_FIXTURE', False))"
    (sdk.folder / "probe.py").write_text(probe)  # run as the driver is: a script in that folder
    seen = subprocess.run([str(paths.VENV_PYTHON), "probe.py"], cwd=sdk.folder, capture_output=True, text=True)
    assert seen.stdout.split() == [str(sdk.folder / "pgmq" / "__init__.py"), "True"], seen.stderr
    # The pinned build is left as it was: the harness virtualenv's pgmq, the committed folder.
    pinned = subprocess.run(
        [str(paths.VENV_PYTHON), "-c", "import importlib.metadata as m; print(m.version('pgmq'))"],
        capture_output=True,
        text=True,
    )
    assert pinned.stdout.strip() == "1.1.4"
    assert not (sdk.home / "pgmq").exists()
    monkeypatch.delenv("GAUNTLET_SDK_SOURCE_PGMQ_PY")
    assert catalog.source_label(catalog.load().sdk("pgmq-py")) == "pinned 1.1.4"
    monkeypatch.setenv("GAUNTLET_SDK_SOURCE_PGMQ_PY", str(unpacked_sdist))

    # A second bootstrap finds the build current; a changed file in the checkout rebuilds it.
    record = (sdk.folder / catalog.LOCAL_RECORD).read_text()
    bootstrap.builds(bootstrap.for_sdks(["pgmq-py"]))
    assert (sdk.folder / catalog.LOCAL_RECORD).read_text() == record

    # The cells say which source they ran: one E2E scenario, its JUnit property.
    junit = tmp_path / "e2e.xml"
    env = {**os.environ, "GAUNTLET_OUT": str(tmp_path / "out")}
    argv = ["-m", "pytest", "e2e", "--sdk=pgmq-py", "-k", "test_basic_wave", f"--junitxml={junit}", "-q"]
    ran = subprocess.run([str(paths.VENV_PYTHON), *argv, "-p", "no:cacheprovider"], cwd=paths.ROOT, env=env)
    assert ran.returncode == 0
    properties = {p.get("name"): p.get("value") for p in ET.parse(junit).iter("property")}
    assert properties["sdk_source"] == f"local {unpacked_sdist} (version 1.1.4.post9)"


def test_a_local_go_source_is_a_replace_in_a_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """pgmq-go built against a copy of its released module (from Go's module cache, where its
    pinned build put it): a `replace` in the copy's go.mod, the committed go.mod untouched."""
    sdk = catalog.load().sdk("pgmq-go")
    module = "github.com/craigpastro/pgmq-go"
    cache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    source = tmp_path / "pgmq-go"
    shutil.copytree(Path(cache) / f"{module}@v{sdk.version}", source)
    source.chmod(0o755)
    committed = (sdk.folder / "go.mod").read_text()
    monkeypatch.setenv("GAUNTLET_SDK_SOURCE_PGMQ_GO", str(source))
    monkeypatch.setenv("GAUNTLET_SDK_BUILDS", str(tmp_path / "builds"))
    monkeypatch.setattr(bootstrap, "STAMPS", tmp_path / "stamps")
    bootstrap.builds(bootstrap.for_sdks(["pgmq-go"]))
    local = catalog.load().sdk("pgmq-go")
    assert catalog.source_label(local) == f"local {source} (version unknown: not a git checkout)"
    built = subprocess.run(["go", "version", "-m", str(local.folder / "driver")], capture_output=True, text=True)
    assert f"=>\t{source}\t(devel)" in built.stdout, built.stdout
    assert (sdk.folder / "go.mod").read_text() == committed
