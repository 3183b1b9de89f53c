"""Make a fresh machine ready, idempotently: Debian packages, the harness virtualenv,
the Toxiproxy server, and every SDK driver a manifest asks to build.

Standard library only: it runs before the virtualenv exists. Each step checks a local
stamp first, so a second run on a ready machine touches no registry.

`bootstrap --sdk NAME` (repeatable) builds only what those SDKs' sessions need (see
`Selection`), `--installers` every installer and no driver, `--none` the harness alone; an
SDK whose GAUNTLET_SDK_SOURCE_<NAME> is set is built against that local checkout, apart from
its pinned build (`_local_build`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
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
    "shellcheck",  # actionlint checks the workflows' run: scripts with it
)
NODE22_DIR = paths.ROOT / "gauntlet" / "toolchains" / "node22"
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0"
TOXIPROXY_BIN = paths.TOOLS_BIN / "server"
GO_JUNIT_REPORT = "github.com/jstemmer/go-junit-report/v2@v2.1.0"  # Go test output -> JUnit, for the report's tests
ACTIONLINT = "github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"  # checks .github/workflows/*.yml
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


@dataclass(frozen=True)
class Selection:
    """What the bootstrap builds from the catalog. None: all of it (plain `bootstrap`, `run`, `test`)."""

    sdks: frozenset[str] | None = None  # whose drivers
    systems: frozenset[str] | None = None  # whose installers

    @property
    def everything(self) -> bool:
        return self.sdks is None and self.systems is None

    def wants_sdk(self, name: str) -> bool:
        return self.sdks is None or name in self.sdks

    def wants_installer(self, system: str) -> bool:
        return self.systems is None or system in self.systems

    def describe(self) -> str:
        if self.everything:
            return "bootstrap"
        if self.sdks:
            return "bootstrap " + " ".join(f"--sdk {name}" for name in sorted(self.sdks))
        return "bootstrap --installers" if self.systems is None else "bootstrap --none"


EVERYTHING = Selection()
INSTALLERS = Selection(sdks=frozenset())  # every system's installer, no driver: the SQL suites' job
NOTHING = Selection(sdks=frozenset(), systems=frozenset())  # the harness alone: the report's job
SELECTION = "selection.json"  # in STAMPS: what the last bootstrap of a selection built


def for_sdks(names: list[str], loaded: catalog.Catalog | None = None) -> Selection:
    """The named SDKs' drivers and their systems' installers."""
    loaded = loaded or catalog.load()
    sdks = {s.name: s for s in loaded.sdks()}
    unknown = [n for n in names if n not in sdks]
    if unknown:
        raise BootstrapError(f"no SDK {', '.join(unknown)}; known: {', '.join(sorted(sdks))}")
    return Selection(frozenset(names), frozenset(sdks[n].system for n in names))


@dataclass(frozen=True)
class Build:
    """One declared build, as the bootstrap will run it (or skip it: its stamp matches)."""

    stamp: str
    argv: tuple[str, ...]
    folder: Path
    inputs: tuple[Path, ...]
    failed: str  # what a failure means, in words
    sdk: catalog.Sdk | None = None  # set: built against the SDK's local source (sdk.source)


def plan(selection: Selection = EVERYTHING, loaded: catalog.Catalog | None = None) -> list[Build]:
    """The installers' and drivers' builds a selection asks for, in order. An SDK with a local
    source is one build (a copy of its folder, then its language's step, then its own build)."""
    loaded = loaded or catalog.load()
    out: list[Build] = []
    for system in loaded.systems:
        installer = system.installer
        if selection.wants_installer(system.name) and installer.build:
            failed = f"installer build of {system.name} FAILED; its cells will be errors"
            out.append(
                Build(f"installer-{system.name}", installer.build, installer.folder, (installer.folder,), failed)
            )
        for sdk in system.sdks:
            if not selection.wants_sdk(sdk.name):
                continue
            shared = sdk.home.parent.parent / "_shared" / sdk.language
            inputs = (sdk.home, *((shared,) if shared.is_dir() else ()))
            failed = f"build of {sdk.name} FAILED; its cells will be errors"
            if sdk.source is not None:
                out.append(Build(f"local-{sdk.name}", sdk.build, sdk.folder, inputs, failed, sdk))
            elif sdk.build:
                out.append(Build(f"sdk-{sdk.name}", sdk.build, sdk.folder, inputs, failed))
            previous = sdk.previous  # its N-1 release's extra build (manifest [previous]), if any
            if previous and previous.build:
                failed = f"build of {sdk.name}'s previous release FAILED; its upgrade cell will be an error"
                out.append(Build(f"sdk-{sdk.name}-previous", previous.build, sdk.home, inputs, failed))
    return out


def toolchains(selection: Selection = EVERYTHING, loaded: catalog.Catalog | None = None) -> set[str]:
    """The commands the selection's builds and drivers start: `cargo`, `go`, `{node22}`, `npm`…"""
    loaded = loaded or catalog.load()
    argvs = [b.argv for b in plan(selection, loaded)]
    argvs += [s.driver for s in loaded.sdks() if selection.wants_sdk(s.name)]
    argvs += [s.installer.argv for s in loaded.systems if selection.wants_installer(s.name)]
    return {argv[0] for argv in argvs if argv}


def _works_with(sdk: catalog.Sdk) -> str | None:
    """The SDK whose worker runs an insert-only SDK's jobs (`works_with` in its driver's `info`)."""
    try:
        done = subprocess.run(
            [*catalog.expand(sdk.driver, sdk.folder), "info"],
            cwd=sdk.folder,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "GAUNTLET_CONFIG": json.dumps({"protocol": 1})},
        )
        info = json.loads(done.stdout.splitlines()[0])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None  # a driver that cannot answer shows it in its own cells
    partner = info.get("works_with") if isinstance(info, dict) else None
    return str(partner) if partner else None


def builds(selection: Selection = EVERYTHING) -> None:
    """Each system's installer and each SDK's driver, as their folders declare, as far as the
    selection asks; with a selection of SDKs, also the worker SDK an insert-only one names
    (`works_with`). A failed build is reported, not fatal: those cells become *error* cells."""
    loaded = catalog.load()
    for broken in loaded.broken:
        _say(f"skipping {broken.sdk or broken.system}: {broken.message}")
    asked, names = selection, {s.name for s in loaded.sdks()}
    strays = sorted(
        v
        for v in os.environ
        if v.startswith(catalog.SOURCE_PREFIX) and v not in {catalog.source_variable(n) for n in names}
    )
    if strays:
        known = ", ".join(catalog.source_variable(n) for n in sorted(names))
        raise BootstrapError(f"{', '.join(strays)} names no SDK; one of {known}")
    done: set[str] = set()
    while True:
        todo = [b for b in plan(selection, loaded) if b.stamp not in done]
        if not selection.everything and "{node22}" in toolchains(selection, loaded):
            node22()
        for build in todo:
            done.add(build.stamp)
            if not (
                _local_build(build) if build.sdk else _build(build.stamp, build.argv, build.folder, list(build.inputs))
            ):
                _say(build.failed)
        if selection.sdks is None:
            break
        partners = {p for n in sorted(selection.sdks) if (p := _works_with(loaded.sdk(n))) in names} - selection.sdks
        if not partners:
            break
        _say(f"also {', '.join(sorted(partners))}: the worker of an insert-only SDK here")
        selection = Selection(
            selection.sdks | partners, (selection.systems or frozenset()) | {loaded.sdk(p).system for p in partners}
        )
    STAMPS.mkdir(parents=True, exist_ok=True)
    if selection.everything:
        (STAMPS / SELECTION).unlink(missing_ok=True)
    else:
        chosen = {"sdks": sorted(selection.sdks or ()), "command": asked.describe()}
        (STAMPS / SELECTION).write_text(json.dumps(chosen))


def left_out(sdk: str) -> str | None:
    """Why `sdk`'s driver may be missing here: the last bootstrap built a selection without it.
    None when it was built (or everything was): then a driver that fails is an error."""
    try:
        chosen = json.loads((STAMPS / SELECTION).read_text())
    except (OSError, ValueError):
        return None
    if sdk in chosen.get("sdks", []):
        return None
    return (
        f"not run here: {sdk}'s driver is not built on this machine (the last bootstrap was"
        f" `{chosen.get('command', 'a selection')}`); `python3 -m gauntlet bootstrap --sdk {sdk}` builds it"
    )


# --- an SDK built against a local checkout of its own source (GAUNTLET_SDK_SOURCE_<NAME>) ---


def _output(argv: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BootstrapError(f"{' '.join(argv)}: {done.stderr.strip()[-500:]}")
    return done.stdout


def _checkout_digest(source: Path) -> str:
    """Every file's path, size and mtime under the checkout: a changed file rebuilds."""
    skip = {".git", "node_modules", "target", "__pycache__", ".venv"}
    parts = []
    for folder, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        for name in sorted(files):
            st = os.stat(os.path.join(folder, name))
            parts.append(
                f"{os.path.relpath(os.path.join(folder, name), source)} {st.st_size} {st.st_mtime_ns}".encode()
            )
    return _digest(*parts)


def _git_version(source: Path) -> str:
    try:
        return _output(["git", "-C", str(source), "describe", "--tags", "--always", "--dirty"]).strip()
    except (BootstrapError, OSError):
        return "unknown: not a git checkout"


def _python_source(sdk: catalog.Sdk, source: Path) -> tuple[str, dict[str, str]]:
    """pip installs the checkout (no dependencies: the pinned ones stay in the harness
    virtualenv) into the driver's own folder, which comes first on the driver's sys.path."""
    report = sdk.folder / ".pip-report.json"
    pip = [str(paths.VENV_PYTHON), "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps"]
    _run([*pip, "--target", str(sdk.folder), "--report", str(report), str(source)])
    installed = json.loads(report.read_text()).get("install", [])
    return ", ".join(str(i["metadata"]["version"]) for i in installed) or "unknown", {}


def _go_source(sdk: catalog.Sdk, source: Path) -> tuple[str, dict[str, str]]:
    """A `replace` (go mod edit) of every module of the checkout that the driver requires, in
    the copy's go.mod; the build may then update the copy's go.mod and go.sum (-mod=mod)."""
    wanted = {r["Path"] for r in json.loads(_output(["go", "mod", "edit", "-json"], sdk.folder)).get("Require") or []}
    replaced = []
    for gomod in sorted(source.rglob("go.mod")):
        if {"vendor", "testdata", "node_modules", ".git"} & set(gomod.relative_to(source).parts):
            continue
        module = json.loads(_output(["go", "mod", "edit", "-json", str(gomod)]))["Module"]["Path"]
        if module in wanted:
            _run(["go", "mod", "edit", f"-replace={module}={gomod.parent}"], cwd=sdk.folder)
            replaced.append(module)
    if not replaced:
        raise BootstrapError(f"{source} holds no Go module that {sdk.name}'s go.mod requires")
    return _git_version(source), {"GOFLAGS": "-mod=mod"}


def _node_source(sdk: catalog.Sdk, source: Path) -> tuple[str, dict[str, str]]:
    """The checkout must be a package the driver depends on (by its package.json name); it is
    installed over the pinned one once the build's `npm ci` is done (_node_install)."""
    try:
        package = json.loads((source / "package.json").read_text())
        wanted = json.loads((sdk.folder / "package.json").read_text()).get("dependencies", {})
    except (OSError, ValueError) as exc:
        raise BootstrapError(f"{source}: not an npm package ({exc})") from exc
    if package.get("name") not in wanted:
        raise BootstrapError(f"{source} is npm package {package.get('name')!r}; {sdk.name} depends on {sorted(wanted)}")
    return str(package.get("version", "unknown")), {}


def _node_install(sdk: catalog.Sdk, source: Path, build: list[str]) -> None:
    """npm installs the checkout as a copy with its own dependencies (--install-links, not a
    symlink), without touching the copy's package.json or lock file."""
    npm = [str(paths.NODE22), str(paths.NPM_CLI)] if "{node22}" in build else ["npm"]
    _run([*npm, "install", "--no-save", "--install-links", "--no-audit", "--no-fund", str(source)], cwd=sdk.folder)


LOCAL_SOURCES: dict[str, Callable[[catalog.Sdk, Path], tuple[str, dict[str, str]]]] = {
    "python": _python_source,
    "go": _go_source,
    "node": _node_source,
}
# Languages whose local source goes in after the SDK's own build (which installs the pins).
AFTER_BUILD: dict[str, Callable[[catalog.Sdk, Path, list[str]], None]] = {"node": _node_install}


def _local_build(build: Build) -> bool:
    """The SDK's folder copied to .tools/sdk-source/<system>/<sdk>/ (its committed files, and
    `_shared` beside it), built there against the local source: the pinned build is left as it
    is. False if it failed; a source the bootstrap cannot build from stops it."""
    sdk = build.sdk
    assert sdk is not None and sdk.source is not None
    variable = catalog.source_variable(sdk.name)
    if not sdk.source.is_dir():
        raise BootstrapError(f"{variable}={sdk.source}: no such folder")
    prepare = LOCAL_SOURCES.get(sdk.language)
    if prepare is None:
        supported = ", ".join(sorted(LOCAL_SOURCES))
        raise BootstrapError(
            f"{variable}: a {sdk.language} SDK cannot be built from a local source yet ({supported} can)"
        )
    digest = _digest(
        _tree_digest(*build.inputs).encode(), str(sdk.source).encode(), _checkout_digest(sdk.source).encode()
    )
    record = sdk.folder / catalog.LOCAL_RECORD  # written last: the build's stamp
    try:
        if json.loads(record.read_text()).get("digest") == digest:
            return True
    except (OSError, ValueError):
        pass
    _say(f"building {sdk.name} against its local source {sdk.source}")
    shutil.rmtree(sdk.folder, ignore_errors=True)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "."], cwd=sdk.home, capture_output=True, text=True
    ).stdout.split()
    for name in listed or [str(p.relative_to(sdk.home)) for p in sdk.home.rglob("*") if p.is_file()]:
        if (sdk.home / name).is_file():
            (sdk.folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(sdk.home / name, sdk.folder / name)
    shared = sdk.folder.parent.parent / "_shared"  # the drivers reach it as ../../_shared
    if not (shared.exists() or shared.is_symlink()):
        shared.symlink_to(sdk.home.parent.parent / "_shared", target_is_directory=True)
    try:
        version, extra = prepare(sdk, sdk.source)
    except BootstrapError as exc:
        _say(f"{sdk.name} from {sdk.source}: {exc}")
        return False
    if build.argv:
        env = {**os.environ, "GAUNTLET_ROOT": str(paths.ROOT), "GAUNTLET_TOOLS": str(paths.TOOLS), **extra}
        if "{node22}" in build.argv:
            env["PATH"] = f"{paths.NODE22.parent}:{env['PATH']}"
        if subprocess.run(catalog.expand(build.argv, sdk.folder), cwd=sdk.folder, env=env).returncode != 0:
            return False
    if sdk.language in AFTER_BUILD:
        try:
            AFTER_BUILD[sdk.language](sdk, sdk.source, list(build.argv))
        except BootstrapError as exc:
            _say(f"{sdk.name} from {sdk.source}: {exc}")
            return False
    made = {"sdk": sdk.name, "source": str(sdk.source), "version": version, "pinned": sdk.version, "digest": digest}
    record.write_text(json.dumps(made, indent=2) + "\n")
    return True


STEPS: list[tuple[str, Callable[[], None]]] = [
    ("debian packages", apt_packages),
    ("python virtualenv", python_venv),
    ("go tools (toxiproxy server, go-junit-report, actionlint)", go_tools),
    ("node 22 runtime", node22),
    ("schema installers and sdk drivers", builds),
]


def steps(selection: Selection) -> list[tuple[str, Callable[[], None]]]:
    """Plain bootstrap: STEPS. A selection: the harness's steps as they are, then only its
    builds (Node 22 only when one of them, or a driver, needs it)."""
    if selection.everything:
        return STEPS
    harness = [(name, step) for name, step in STEPS if step not in (node22, builds)]
    return [*harness, ("schema installers and sdk drivers", lambda: builds(selection))]


def parse(argv: list[str]) -> Selection:
    parser = argparse.ArgumentParser(
        prog="python3 -m gauntlet bootstrap",
        description="Make the machine ready: everything, or only what the named SDKs' sessions need.",
    )
    parser.add_argument(
        "--sdk", action="append", default=[], metavar="NAME", help="build only this SDK's driver (repeatable)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--installers", action="store_true", help="every system's installer, no SDK driver")
    group.add_argument("--none", action="store_true", help="no installer, no SDK driver: the harness alone")
    args = parser.parse_args(argv)
    if args.sdk and (args.installers or args.none):
        parser.error("--sdk goes with neither --installers nor --none")
    if args.sdk:
        return for_sdks(args.sdk)
    return INSTALLERS if args.installers else NOTHING if args.none else EVERYTHING


def main(argv: list[str] | None = None) -> int:
    began = time.monotonic()
    try:
        selection = parse(argv or [])
    except BootstrapError as exc:
        _say(str(exc))
        return 2
    for name, step in steps(selection):
        try:
            step()
        except BootstrapError as exc:
            _say(f"{name}: {exc}")
            return 1
    _say(f"ready in {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
