"""SDK discovery from manifests, and the nox sessions derived from them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gauntlet import manifests, paths


def _adapter(root: Path, name: str, body: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "manifest.toml").write_text(body)


def test_discovery_reads_every_manifest_sorted_by_system(tmp_path: Path) -> None:
    _adapter(tmp_path, "zz-go", 'name = "zz-go"\nsystem = "alpha"\nlanguage = "go"\ndriver = ["./driver"]\n')
    _adapter(tmp_path, "aa-py", 'name = "aa-py"\nsystem = "beta"\nlanguage = "python"\n')
    found = manifests.discover(tmp_path)
    assert [m.name for m in found] == ["zz-go", "aa-py"]
    assert found[0].tags == ["alpha", "go"] and found[0].driver == ("./driver",)


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('name = "x"\nsystem = "s"\n', "'language' is missing"),
        ('name = "x"\nsystem = "s"\nlanguage = "cobol"\n', "not one of"),
        ('name = "other"\nsystem = "s"\nlanguage = "go"\n', "differs from its folder"),
        ('name = "x"\nsystem = "s"\nlanguage = "go"\nbuild = "make"\n', "'build' must be a list"),
        ("name = \n", "x/manifest.toml"),
    ],
)
def test_a_bad_manifest_is_refused_with_its_path(tmp_path: Path, body: str, complaint: str) -> None:
    _adapter(tmp_path, "x", body)
    with pytest.raises(manifests.ManifestError, match=complaint.replace("(", r"\(")):
        manifests.discover(tmp_path)


def test_nox_lists_sessions_with_tags_as_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json"], cwd=paths.ROOT, capture_output=True, text=True, check=True
    ).stdout
    sessions = {s["session"]: s for s in json.loads(out)}
    assert {"tests", "lint", "report"} <= set(sessions)
    assert sessions["tests"]["tags"] == ["core"]
    for sdk in manifests.discover():
        e2e = sessions[f"e2e(sdk='{sdk.name}')"]
        assert sdk.system in e2e["tags"] and sdk.language in e2e["tags"]
