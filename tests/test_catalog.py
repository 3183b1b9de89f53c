"""The catalog: systems and SDKs as folders of data, loaded once; a broken file spoils only
its own column; the nox sessions come from it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gauntlet import catalog, paths
from sql_tests import run as sql_run

SYSTEM = (paths.ADAPTERS / "pgmq" / "system.toml").read_text()


def _system(root: Path, name: str, body: str = SYSTEM) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "system.toml").write_text(body)
    return folder


def _sdk(system: Path, name: str, body: str) -> None:
    (system / name).mkdir()
    (system / name / "manifest.toml").write_text(body)


def test_every_system_and_sdk_of_the_repository_loads() -> None:
    loaded = catalog.load()
    assert loaded.broken == []
    assert {s.name for s in loaded.systems} >= {
        "pgmq",
        "river",
        "graphile-worker",
        "procrastinate",
        "pgqueuer",
        "pg-boss",
    }
    for sdk in loaded.sdks():
        assert sdk.contract is not None and sdk.stats is not None
        assert sdk.folder.parent.name == sdk.system, "an SDK's system is the folder it sits in"
        for setting in sdk.tuning:
            assert setting.why and setting.source, f"{sdk.name} tunes {setting.name} without saying why or where"


def test_names_come_from_folders_and_contracts_merge(tmp_path: Path) -> None:
    system = _system(tmp_path, "alpha")
    _sdk(system, "alpha-go", 'language = "go"\nversion = "1.0"\ndriver = ["./driver"]\n')
    _sdk(system, "alpha-py", 'language = "python"\nversion = "2.0"\n[contract]\nrecovery_interval_s = 99\n')
    loaded = catalog.load(tmp_path)
    go, py = loaded.sdks()
    assert (go.name, go.system, go.tags) == ("alpha-go", "alpha", ["alpha", "go", "alpha-go"])
    assert go.contract is not None and py.contract is not None
    assert go.contract.recovery_interval_s != 99 and py.contract.recovery_interval_s == 99
    assert py.contract.delivery == go.contract.delivery == "at-least-once"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('version = "1"\n', "'language' is missing"),
        ('language = "cobol"\nversion = "1"\n', "not one of"),
        ('name = "x"\nlanguage = "go"\nversion = "1"\n', "come from the folders"),
        ('language = "go"\nversion = "1"\nbuild = "make"\n', "'build' must be a list"),
        ('language = "go"\nversion = "1"\n[contract]\ndelivery = "maybe"\n', "delivery 'maybe'"),
        ('language = "go"\nversion = "1"\n[[tuning]]\nname = "x"\n', "lacks"),
        ("language = \n", "x/manifest.toml"),
    ],
)
def test_a_bad_manifest_spoils_only_its_own_sdk(tmp_path: Path, body: str, complaint: str) -> None:
    system = _system(tmp_path, "alpha")
    _sdk(system, "x", body)
    _sdk(system, "good", 'language = "go"\nversion = "1"\n')
    loaded = catalog.load(tmp_path)
    assert [s.name for s in loaded.sdks()] == ["good"]
    (broken,) = loaded.broken
    assert (broken.system, broken.sdk) == ("alpha", "x") and complaint in broken.message


def test_a_bad_system_file_makes_each_of_its_sdks_broken(tmp_path: Path) -> None:
    system = _system(tmp_path, "alpha", SYSTEM.replace('delivery = "at-least-once"', 'delivery = "sometimes"'))
    _sdk(system, "a", 'language = "go"\nversion = "1"\n')
    _sdk(system, "b", 'language = "go"\nversion = "1"\n')
    _system(tmp_path, "beta")
    loaded = catalog.load(tmp_path)
    assert [s.name for s in loaded.systems] == ["beta"]
    assert [(b.system, b.sdk) for b in loaded.broken] == [("alpha", "a"), ("alpha", "b")]
    assert all("sometimes" in b.message for b in loaded.broken)


def test_a_finding_needs_kind_evidence_and_a_rate_when_intermittent(tmp_path: Path) -> None:
    system = _system(tmp_path, "alpha")
    finding = """[[finding]]
id = "f"
kind = "{kind}"
sdk = "alpha-*"
version = "1"
rows = ["e2e/test_[x]*"]
verdict = "fail"
summary = "s"
evidence = ["file.py:1"]
reproduce = "python3 -m gauntlet nox -s e2e"
{extra}
"""
    (system / "findings.toml").write_text(finding.format(kind="bug", extra=""))
    (loaded,) = catalog.load(tmp_path).findings()
    assert loaded.covers("e2e/test_[x]_y", "alpha-go", "alpha") and not loaded.covers(
        "e2e/test_x_y", "alpha-go", "alpha"
    )
    assert not loaded.covers("e2e/test_[x]_y", "alpha-go", "beta")
    assert not loaded.intermittent
    for kind, extra, complaint in (("rumour", "", "kind 'rumour'"), ("bug", "intermittent = true", "measured rate")):
        (system / "findings.toml").write_text(finding.format(kind=kind, extra=extra))
        (broken,) = catalog.load(tmp_path).broken
        assert complaint in broken.message


def test_sql_sessions_are_the_catalog_systems_and_each_has_suites() -> None:
    systems = sql_run.systems()
    assert systems == [s.name for s in catalog.load().systems]
    for system in systems:
        assert list((sql_run.SUITES / system).glob("*.sql")), f"{system} has no pgTAP suite"


def test_an_installer_runs_in_its_folder_with_placeholders_filled(tmp_path: Path) -> None:
    folder = _system(tmp_path, "alpha")
    installer = catalog.load(tmp_path).system("alpha").installer
    assert installer.folder == folder / "installer" and installer.rerun == "unsupported"
    argv = catalog.expand(installer.argv, installer.folder)
    assert argv[0] == str(paths.VENV_PYTHON) and argv[1] == "install.py"


def test_nox_lists_sessions_with_tags_as_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json"], cwd=paths.ROOT, capture_output=True, text=True, check=True
    ).stdout
    sessions = {s["session"]: s for s in json.loads(out)}
    assert {"tests", "lint", "report"} <= set(sessions)
    assert sessions["tests"]["tags"] == ["core"]
    for sdk in catalog.load().sdks():
        e2e = sessions[f"e2e(sdk='{sdk.name}')"]
        assert {sdk.system, sdk.language, sdk.name} <= set(e2e["tags"])
        assert sdk.name in sessions[f"sql(system='{sdk.system}')"]["tags"]


def test_an_upgrade_pairs_a_previous_release_with_its_systems_migration(tmp_path: Path) -> None:
    """[previous] in a manifest and [upgrade] in system.toml; migrate defaults to the installer."""
    upgrade = '\n[upgrade]\nprevious_exits = 57\nafter = ["./post"]\nsource = "docs"\n'
    system = _system(tmp_path, "alpha", SYSTEM + upgrade)
    _sdk(system, "a", 'language = "go"\nversion = "2"\n[previous]\nversion = "1"\ninstaller = ["./old-install"]\n')
    _sdk(system, "b", 'language = "go"\nversion = "2"\n[previous]\nversion = "1"\n')
    _sdk(system, "c", 'language = "go"\nversion = "2"\n[previous]\nversion = "1"\ninstaller = ["x"]\ncolour = 1\n')
    loaded = catalog.load(tmp_path)
    (alpha,) = loaded.systems
    assert alpha.upgrade is not None
    assert (alpha.upgrade.migrate, alpha.upgrade.folder) == (alpha.installer.argv, alpha.installer.folder)
    assert (alpha.upgrade.previous_exits, alpha.upgrade.after) == (57, ("./post",))
    (a,) = alpha.sdks
    assert a.previous is not None
    assert (a.previous.version, a.previous.installer, a.previous.driver) == ("1", ("./old-install",), ())
    assert sorted((b.sdk, "installer is empty" in b.message or "unknown keys" in b.message) for b in loaded.broken) == [
        ("b", True), ("c", True)
    ]  # fmt: skip
    bad = _system(tmp_path / "more", "beta", SYSTEM + '\n[upgrade]\nprevious_exits = "57"\nsource = "x"\n')
    _sdk(bad, "d", 'language = "go"\nversion = "1"\n')
    assert "previous_exits must be an exit code" in catalog.load(tmp_path / "more").broken[0].message
