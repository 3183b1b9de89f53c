"""The two entry points README gives: `python3 -m gauntlet run` and `python3 -m gauntlet test`.

Both bootstrap first (idempotent, seconds on a ready machine), then hand over to the
harness virtualenv. Standard library only up to that hand-over.
"""

from __future__ import annotations

import os
import sys

from gauntlet import bootstrap, paths

USAGE = """usage: python3 -m gauntlet COMMAND [ARGS...]

  run [--jobs N] [--only SEL ...]
                          the main job: every sql/e2e/chaos session, N at a time, then the
                          report; SEL is a session name, a kind (e2e) or a tag (pgmq, go, pgmq-py)
  test [PYTEST ARGS]      the harness's own test suite (nox -s tests)
  bootstrap               only make the machine ready
  nox [NOX ARGS]          nox inside the harness virtualenv, e.g. `nox -l --json`
"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "bootstrap", "nox"}:
        print(USAGE, file=sys.stderr)
        return 2
    if bootstrap.main() != 0:
        return 1
    command, rest = argv[0], argv[1:]
    python = str(paths.VENV_PYTHON)
    os.chdir(paths.ROOT)
    if command == "bootstrap":
        return 0
    if command == "run":
        os.execv(python, [python, "-m", "gauntlet.pipeline", *rest])
    if command == "test":
        os.execv(python, [python, "-m", "nox", "-s", "tests", "--", *rest])
    os.execv(python, [python, "-m", "nox", *rest])
    return 0  # unreachable: execv replaces the process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
