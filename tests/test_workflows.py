"""The GitHub workflows: every one passes actionlint (with shellcheck on their run: scripts),
and no `${{ }}` expression is spliced into a shell script: values reach it through `env:`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gauntlet import paths

WORKFLOWS = sorted((paths.ROOT / ".github" / "workflows").glob("*.y*ml"))


def test_there_are_workflows_to_check() -> None:
    assert {w.name for w in WORKFLOWS} >= {"ci.yml", "sdk-column.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_every_workflow_passes_actionlint(workflow: Path) -> None:
    assert shutil.which("shellcheck"), "the bootstrap installs shellcheck: actionlint checks run: scripts with it"
    run = subprocess.run(
        [str(paths.TOOLS_BIN / "actionlint"), str(workflow.relative_to(paths.ROOT))],
        cwd=paths.ROOT,  # .github/actionlint.yaml applies
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def run_scripts(text: str) -> list[str]:
    """Each step's `run:` script: the line's value, or the block indented below it."""
    lines, scripts = text.splitlines(), []
    for n, line in enumerate(lines):
        found = re.match(r"^(\s*)(?:- )?run:\s*(.*)$", line)
        if not found:
            continue
        indent, value = len(found.group(1)), found.group(2)
        if value not in ("|", ">", "|-", ">-"):
            scripts.append(value)
            continue
        block = []
        for following in lines[n + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            block.append(following)
        scripts.append("\n".join(block))
    return scripts


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_no_expression_is_spliced_into_a_shell_script(workflow: Path) -> None:
    scripts = run_scripts(workflow.read_text())
    assert scripts
    spliced = [s for s in scripts if "${{" in s]
    assert not spliced, f"{workflow.name}: pass these through env: instead: {spliced}"


def test_the_check_finds_a_spliced_expression() -> None:
    text = "jobs:\n  a:\n    steps:\n      - run: |\n"
    text += '          echo hi\n          eval "${{ matrix.x }}"\n      - uses: x\n'
    text += "      - run: echo ok\n"
    assert run_scripts(text) == ['          echo hi\n          eval "${{ matrix.x }}"', "echo ok"]
