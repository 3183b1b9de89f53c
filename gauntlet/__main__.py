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
                          the main job: every sql/e2e/pgbouncer/chaos session, N at a time, then the
                          report; SEL is a session name, a kind (e2e) or a tag (pgmq, go, pgmq-py)
  test [PYTEST ARGS]      the harness's own test suite (nox -s tests)
  bootstrap [--sdk NAME ... | --installers | --none]
                          only make the machine ready: everything, or the harness and only
                          the named SDKs' drivers (and their systems' installers), or every
                          installer and no driver (the SQL suites), or no build at all (the report)
  nox [NOX ARGS]          nox inside the harness virtualenv, e.g. `nox -l --json`
  history ROW SDK [--topology T] [-n N]
                          a cell's record in the run history, one line per run, e.g.
                          `history e2e/test_basic_wave pgmq-py -n 5`
"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "bootstrap", "nox", "history"}:
        print(USAGE, file=sys.stderr)
        return 2
    if argv[0] == "history" and paths.VENV_PYTHON.exists():  # only reads a database: the virtualenv suffices
        os.environ["PYTHONPATH"] = str(paths.ROOT)  # keeps the caller's directory for a relative --history-db
        os.execv(paths.VENV_PYTHON, [str(paths.VENV_PYTHON), "-m", "reports.run_history", *argv[1:]])
    if bootstrap.main(argv[1:] if argv[0] == "bootstrap" else []) != 0:
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
    if command == "history":
        os.execv(python, [python, "-m", "reports.run_history", *rest])
    os.execv(python, [python, "-m", "nox", *rest])
    return 0  # unreachable: execv replaces the process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
