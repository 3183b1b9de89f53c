"""Make a fresh machine ready, idempotently: Debian packages, the harness virtualenv,
the Toxiproxy server, and every SDK driver a manifest asks to build.

Standard library only: it runs before the virtualenv exists. Each step checks a local
stamp first, so a second run on a ready machine touches no registry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gauntlet import catalog, paths

APT_PACKAGES = (
    "postgresql-15",
    "postgresql-contrib",
    "postgresql-15-pgtap",
    "libtap-parser-sourcehandler-pgtap-perl",  # pg_prove
    "libtap-formatter-junit-perl",
    "pgbouncer",
    "chromium",  # renders the dashboard to a screenshot, and its test
)
NODE22_DIR = paths.ROOT / "gauntlet" / "toolchains" / "node22"
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0"
TOXIPROXY_BIN = paths.TOOLS_BIN / "server"
GO_JUNIT_REPORT = "github.com/jstemmer/go-junit-report/v2@v2.1.0"  # Go test output -> JUnit, for the report's tests
ACTIONLINT = "github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"  # checks .github/workflows/ci.yml
STAMPS = paths.TOOLS / "stamps"


class BootstrapError(Exception):
    pass


def _say(message: str) -> None:
    print(f"[bootstrap] {message}", flush=True)


def _run(argv: list[str], **kwargs: object) -> None:
    _say("$ " + " ".join(argv))
    result = subprocess.run(argv, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise BootstrapError(f"command failed (exit {result.returncode}): {' '.join(argv)}")


def _stamp_matches(name: str, digest: str) -> bool:
    stamp = STAMPS / name
    return stamp.exists() and stamp.read_text() == digest


def _write_stamp(name: str, digest: str) -> None:
    STAMPS.mkdir(parents=True, exist_ok=True)
    (STAMPS / name).write_text(digest)


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()


def _tree_digest(*folders: Path) -> str:
    """Hash of the files git would commit under `folders` (sources and lock files, not build
    outputs, which .gitignore names)."""
    parts = []
    for folder in folders:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "."], cwd=folder, capture_output=True, text=True
        ).stdout.split()
        for name in sorted(listed):
            path = folder / name
            if path.is_file():
                parts.append(str(path.relative_to(paths.ROOT)).encode() + path.read_bytes())
    return _digest(*parts)


def apt_packages() -> None:
    def installed(pkg: str) -> bool:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True).stdout
        return out.strip() == "install ok installed"

    missing = [p for p in APT_PACKAGES if not installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise BootstrapError(f"missing Debian packages {missing}; run the bootstrap as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], env=env)
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def python_venv() -> None:
    """The harness virtualenv, holding the harness's pins and every Python adapter's
    (sdk_adapters/<system>/<sdk>/requirements.lock): one interpreter, so pins that disagree fail here."""
    locks = [paths.REQUIREMENTS_LOCK, *sorted(paths.ADAPTERS.glob("*/*/requirements.lock"))]
    digest = _digest(*(lock.read_bytes() for lock in locks), sys.version.encode())
    if paths.VENV_PYTHON.exists() and _stamp_matches("venv", digest):
        return
    if not paths.VENV_PYTHON.exists():
        _run([sys.executable, "-m", "venv", str(paths.VENV)])
    pip = [str(paths.VENV_PYTHON), "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "install", "--no-deps", *(arg for lock in locks for arg in ("-r", str(lock)))])
    _run([*pip, "check"])
    _write_stamp("venv", digest)


def go_install(module: str, binary: str) -> None:
    digest = _digest(module.encode())
    if (paths.TOOLS_BIN / binary).exists() and _stamp_matches(binary, digest):
        return
    if shutil.which("go") is None:
        raise BootstrapError(f"Go is needed to build {module} and is not on PATH")
    paths.TOOLS_BIN.mkdir(parents=True, exist_ok=True)
    _run(["go", "install", module], env={**os.environ, "GOBIN": str(paths.TOOLS_BIN)})
    _write_stamp(binary, digest)


def go_tools() -> None:
    go_install(TOXIPROXY_MODULE, TOXIPROXY_BIN.name)
    go_install(GO_JUNIT_REPORT, "go-junit-report")
    go_install(ACTIONLINT, "actionlint")


def node22() -> None:
    """Node 22 from the npm registry (some SDKs need it; the machine has Node 20), by the
    machine's npm from the committed lock."""
    digest = _digest((NODE22_DIR / "package-lock.json").read_bytes())
    if (NODE22_DIR / "node_modules").is_dir() and _stamp_matches("node22", digest):
        return
    _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE22_DIR)
    _write_stamp("node22", digest)


def _build(stamp: str, argv: tuple[str, ...], folder: Path, inputs: list[Path]) -> bool:
    """Run a declared build in `folder` when its committed inputs changed; False if it failed."""
    digest = _tree_digest(*inputs)
    if _stamp_matches(stamp, digest):
        return True
    _say(f"building {stamp}")
    env = {**os.environ, "GAUNTLET_ROOT": str(paths.ROOT), "GAUNTLET_TOOLS": str(paths.TOOLS)}
    if "{node22}" in argv:  # npm's lifecycle scripts then find Node 22 as `node`
        env["PATH"] = f"{paths.NODE22.parent}:{env['PATH']}"
    result = subprocess.run(catalog.expand(argv, folder), cwd=folder, env=env)
    if result.returncode == 0:
        _write_stamp(stamp, digest)
        return True
    (STAMPS / stamp).unlink(missing_ok=True)
    return False


def builds() -> None:
    """Each system's installer and each SDK's driver, as their folders declare. A failed
    build is reported, not fatal: those cells become *error* cells saying why."""
    loaded = catalog.load()
    for broken in loaded.broken:
        _say(f"skipping {broken.sdk or broken.system}: {broken.message}")
    for system in loaded.systems:
        if system.installer.build and not _build(
            f"installer-{system.name}", system.installer.build, system.installer.folder, [system.installer.folder]
        ):
            _say(f"installer build of {system.name} FAILED; its cells will be errors")
        for sdk in system.sdks:
            shared = paths.ADAPTERS / "_shared" / sdk.language
            inputs = [sdk.folder, *([shared] if shared.is_dir() else [])]
            if sdk.build and not _build(f"sdk-{sdk.name}", sdk.build, sdk.folder, inputs):
                _say(f"build of {sdk.name} FAILED; its cells will be errors")


STEPS: list[tuple[str, Callable[[], None]]] = [
    ("debian packages", apt_packages),
    ("python virtualenv", python_venv),
    ("go tools (toxiproxy server, go-junit-report, actionlint)", go_tools),
    ("node 22 runtime", node22),
    ("schema installers and sdk drivers", builds),
]


def main() -> int:
    began = time.monotonic()
    for name, step in STEPS:
        try:
            step()
        except BootstrapError as exc:
            _say(f"{name}: {exc}")
            return 1
    _say(f"ready in {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
