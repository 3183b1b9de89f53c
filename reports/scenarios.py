"""What a row is, in words: its short title (the catalog's titles.toml) and what it judges
(the scenario's docstring), read from the catalog's files without importing the tests."""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gauntlet import paths
from gauntlet.ids import RowId

CATALOG_OF = {"e2e": "e2e", "interop": "e2e", "chaos": "chaos"}  # a suite's pytest folder


@dataclass(frozen=True)
class Scenario:
    title: str
    judges: str


@cache
def _catalog(folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The folder's titles and each test function's docstring."""
    titles_file = folder / "titles.toml"
    titles = tomllib.loads(titles_file.read_text()) if titles_file.exists() else {}
    docs = {}
    for source in sorted(folder.glob("test_*.py")):
        for node in ast.parse(source.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                docs[node.name] = " ".join((ast.get_docstring(node) or "").split())
    return {str(k): str(v) for k, v in titles.items()}, docs


def describe(row: RowId, fallback: str) -> Scenario:
    """A catalog row's title and docstring; others (sql, the harness's own rows) keep `fallback`."""
    folder = CATALOG_OF.get(row.suite)
    if folder is None:
        return Scenario(fallback, "")
    titles, docs = _catalog(paths.ROOT / folder)
    if row.suite == "interop":
        function, parameter = "test_interop", row.name.removeprefix("worker=")
    else:
        function, _, parameter = row.name.partition("[")
        parameter = parameter.removesuffix("]")
    title = titles.get(row.name) or (
        titles[function] + (f" ({parameter})" if parameter else "") if function in titles else fallback
    )
    return Scenario(title, docs.get(function, ""))
