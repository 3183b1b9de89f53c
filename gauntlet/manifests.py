"""SDK adapters are discovered from data: each sdk_adapters/<name>/manifest.toml.

Standard library only, because the bootstrap (before any virtualenv exists) builds the
drivers the manifests describe, and the noxfile derives its sessions and tags from them.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from gauntlet import paths

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
LANGUAGES = {"python", "node", "go", "rust", "java"}


class ManifestError(Exception):
    """A manifest that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Manifest:
    name: str
    system: str
    language: str
    folder: Path
    version: str = ""
    build: tuple[str, ...] = ()
    driver: tuple[str, ...] = ()
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def tags(self) -> list[str]:
        return [self.system, self.language]


def _string_list(path: Path, data: dict[str, object], key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"{path}: '{key}' must be a list of strings")
    return tuple(value)


def load(path: Path) -> Manifest:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    for key in ("name", "system", "language"):
        if not isinstance(data.get(key), str) or not _NAME.match(str(data[key])):
            raise ManifestError(f"{path}: '{key}' is missing or not a lowercase name")
    if data["language"] not in LANGUAGES:
        raise ManifestError(f"{path}: language {data['language']!r} is not one of {sorted(LANGUAGES)}")
    if data["name"] != path.parent.name:
        raise ManifestError(f"{path}: name {data['name']!r} differs from its folder {path.parent.name!r}")
    known = {"name", "system", "language", "version", "build", "driver"}
    return Manifest(
        name=str(data["name"]),
        system=str(data["system"]),
        language=str(data["language"]),
        folder=path.parent,
        version=str(data.get("version", "")),
        build=_string_list(path, data, "build"),
        driver=_string_list(path, data, "driver"),
        extra={k: v for k, v in data.items() if k not in known},
    )


PLACEHOLDERS = {"{python}": paths.VENV_PYTHON, "{node22}": paths.NODE22, "{npm}": paths.NPM_CLI}


def expand(argv: tuple[str, ...], folder: Path) -> list[str]:
    """A manifest's `build` or `driver` as it runs: placeholders filled, ./ relative to the folder."""
    out = []
    for arg in argv:
        for key, value in PLACEHOLDERS.items():
            arg = arg.replace(key, str(value))
        out.append(str(folder / arg[2:]) if arg.startswith("./") else arg)
    return out


def discover(root: Path | None = None) -> list[Manifest]:
    """Every adapter under `root` (default: sdk_adapters/, or $GAUNTLET_ADAPTERS), sorted by system then name."""
    root = root or Path(os.environ.get("GAUNTLET_ADAPTERS", paths.ADAPTERS))
    found = [load(p) for p in sorted(root.glob("*/manifest.toml"))]
    return sorted(found, key=lambda m: (m.system, m.name))
