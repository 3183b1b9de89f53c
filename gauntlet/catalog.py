"""The catalog: every system and SDK, loaded once from data.

    sdk_adapters/<system>/system.toml     installer, contract, stats query
    sdk_adapters/<system>/findings.toml   known findings about the system's SDKs
    sdk_adapters/<system>/<sdk>/manifest.toml   language, version, build, driver, tuning

Adding a system or an SDK is adding a folder; no harness code names one. A file that cannot
be used does not stop the others: it becomes a `Broken` entry, and the report shows that
system's or SDK's column as an error column with the one-line reason.

Standard library only: the bootstrap (before any virtualenv exists) and the noxfile use it.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gauntlet import paths

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
LANGUAGES = {"python", "node", "go", "rust", "java"}
DELIVERY = {"at-least-once", "at-most-once", "exactly-once"}
FINDING_KINDS = {
    "bug": "contradicts the SDK's own docs or contract",
    "documented-limit": "the SDK documents this behaviour",
    "default-hazard": "the SDK's default bites a user; the driver had to change it",
    "unreleased-fix": "fixed upstream, not in a release the registry serves",
}
VERDICTS = {"fail", "error"}


class CatalogError(Exception):
    """A system, manifest or findings file that cannot be used; the message names file and field."""


POOLER_TOPOLOGIES = ("pgbouncer",)  # where a driver may apply settings of its own (config key `pooler`)


@dataclass(frozen=True)
class Setting:
    """One setting a driver changes from the SDK's default, and why."""

    name: str
    default: str
    value: str
    why: str
    source: str
    topology: str = ""  # set: the driver changes it only there (a pooler setting the SDK documents)


@dataclass(frozen=True)
class Contract:
    """What the system promises, each part with the doc or source that says so. Scenarios
    read their rules and bounds from here, never from a system's name."""

    delivery: str  # at-least-once / at-most-once / exactly-once
    delivery_source: str
    recovery: str  # how a crashed worker's job runs again
    recovery_follows_lease: bool  # free again once the lease (visibility_timeout_s) runs out
    recovery_interval_s: float  # plus, at worst, the period of whatever frees it (rescuer, sweep)
    recovery_source: str
    retry_backoff: str  # the shape, in words
    retry_min_gap_s: float  # the shortest gap the policy allows between attempt n and n+1 (n = 1)
    retry_max_gap_s: float  # the longest gap a scenario with up to 3 attempts can meet
    retry_source: str
    pool_extra_connections: int  # connections the SDK documents holding outside the pool it is given
    pool_source: str
    delay_granularity_s: float  # how late (never early) a delayed job may start: the poll period
    delay_source: str
    long_job: str = ""  # what happens to a healthy job that runs longer than its lease, in words
    long_job_runs_again: bool = False  # it may then start a second time while the first still runs
    long_job_source: str = ""
    # Periodic jobs (capability `periodic`): the finest period the SDK schedules (0: none), how
    # late after its tick an occurrence may start, and how two workers avoid running a tick twice.
    periodic_period_s: float = 0.0
    periodic_late_s: float = 0.0
    periodic: str = ""
    periodic_source: str = ""

    @property
    def at_least_once(self) -> bool:
        return self.delivery == "at-least-once"

    def recovery_bound_s(self, lease_s: float) -> float:
        """Worst case from a worker's death until another worker may run its job."""
        return (lease_s if self.recovery_follows_lease else 0.0) + self.recovery_interval_s


@dataclass(frozen=True)
class Installer:
    argv: tuple[str, ...]
    folder: Path  # where argv runs and where `build` runs
    build: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    pins: str = ""
    rerun: str = "idempotent"  # idempotent / refuses (exits non-zero, changes nothing) / unsupported
    rerun_source: str = ""


@dataclass(frozen=True)
class Previous:
    """An SDK's N-1 release pinned beside N (manifest `[previous]`), for the upgrade scenario."""

    version: str
    installer: tuple[str, ...]  # N-1's own schema installer, run in the SDK folder
    driver: tuple[str, ...] = ()  # empty: the SDK's own driver, told by the config's `release`
    build: tuple[str, ...] = ()  # run in the SDK folder by the bootstrap, like the SDK's build
    env: dict[str, str] = field(default_factory=dict)  # extra environment of `installer`
    pins: str = ""


@dataclass(frozen=True)
class Upgrade:
    """How the system moves an N-1 schema to N (system.toml `[upgrade]`), and what N-1's
    running workers do meanwhile, as its docs or source say."""

    migrate: tuple[str, ...]  # N's own migration path (default: the installer's argv)
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    after: tuple[str, ...] = ()  # run once N-1's workers are gone (a post-deploy migration)
    previous_exits: int | None = None  # the exit code N-1's workers end with by design; None: they keep working
    source: str = ""
    version_sql: str = ""  # one value naming the installed schema's version: it must differ after `migrate`


@dataclass(frozen=True)
class Finding:
    """A known non-pass verdict of some cells, and why. `rows`/`sdk` take `*` and `?`."""

    id: str
    system: str
    kind: str
    sdk: str
    version: str
    rows: tuple[str, ...]
    verdict: str
    summary: str
    evidence: tuple[str, ...]
    workaround: str
    reproduce: str
    rate: str = ""  # measured failure rate of an intermittent finding, e.g. "4/5 runs"
    topologies: tuple[str, ...] = ()  # where it holds (e.g. only through PgBouncer); empty: everywhere

    @property
    def intermittent(self) -> bool:
        return bool(self.rate)

    @property
    def expects_verdict(self) -> bool:
        """A default-hazard names the cells the SDK's defaults would break; the driver changes
        those defaults (its tuning), so the cells are judged as usual, not expected to fail."""
        return self.kind != "default-hazard"

    def speaks_for(self, sdk: str, system: str) -> bool:
        """Its sdk pattern applies within its own system only."""
        return system == self.system and wildcard(self.sdk, sdk)

    def covers(self, row: str, sdk: str, system: str, topology: str = "direct") -> bool:
        """Whether this finding speaks for the cell (row, sdk, topology) of an SDK of `system`."""
        return (
            self.speaks_for(sdk, system)
            and (not self.topologies or topology in self.topologies)
            and any(wildcard(pattern, row) for pattern in self.rows)
        )


def wildcard(pattern: str, value: str) -> bool:
    """`*` and `?` are wildcards; everything else (row ids hold `[` `]`) is literal."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value) is not None


@dataclass(frozen=True)
class StatsQuery:
    """The system's `stats` query, written once: `{queue}` is the queue name as a literal,
    each of `identifiers` (e.g. q_table = "q_{queue}") a quoted identifier built from it."""

    sql: str
    identifiers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sdk:
    name: str
    system: str
    language: str
    version: str
    folder: Path
    build: tuple[str, ...] = ()
    driver: tuple[str, ...] = ()
    tuning: tuple[Setting, ...] = ()
    contract: Contract | None = None  # the system's, with this SDK's declared differences
    stats: StatsQuery | None = None  # the system's
    previous: Previous | None = None  # its N-1 release, where one with another schema is pinned
    # A local checkout of the SDK's own source ($GAUNTLET_SDK_SOURCE_<NAME>): `folder` is then
    # the bootstrap's build against it (under .tools/sdk-source/), `committed` the folder here.
    source: Path | None = None
    committed: Path | None = None

    @property
    def tags(self) -> list[str]:
        return [self.system, self.language, self.name]

    @property
    def home(self) -> Path:
        """The SDK's committed folder under sdk_adapters/, whichever source it runs."""
        return self.committed or self.folder


SOURCE_PREFIX = "GAUNTLET_SDK_SOURCE_"
LOCAL_RECORD = ".gauntlet-source.json"  # written there by the bootstrap once that build succeeded


def local_builds() -> Path:
    """Where an SDK built against a local source goes (<system>/<sdk>/: a copy of its folder):
    .tools/sdk-source/, or $GAUNTLET_SDK_BUILDS (the harness's own tests)."""
    return Path(os.environ.get("GAUNTLET_SDK_BUILDS", paths.TOOLS / "sdk-source"))


def source_variable(sdk: str) -> str:
    """GAUNTLET_SDK_SOURCE_ and the SDK's name upper-cased, each run of characters other than
    A-Z and 0-9 one underscore: pgmq-py -> GAUNTLET_SDK_SOURCE_PGMQ_PY."""
    return SOURCE_PREFIX + re.sub(r"[^A-Z0-9]+", "_", sdk.upper())


def source_label(sdk: Sdk) -> str:
    """Which source the SDK's cells ran: "pinned 1.1.4", or "local /path (version X)"."""
    if sdk.source is None:
        return f"pinned {sdk.version}"
    try:
        record = json.loads((sdk.folder / LOCAL_RECORD).read_text())
    except (OSError, ValueError):
        record = {}
    if record.get("source") != str(sdk.source):
        return f"local {sdk.source} (not built: run `python3 -m gauntlet bootstrap --sdk {sdk.name}` with it set)"
    return f"local {sdk.source} (version {record.get('version') or 'unknown'})"


@dataclass(frozen=True)
class System:
    name: str
    folder: Path
    installer: Installer
    contract: Contract
    stats: StatsQuery
    sdks: tuple[Sdk, ...] = ()
    findings: tuple[Finding, ...] = ()
    upgrade: Upgrade | None = None


@dataclass(frozen=True)
class Broken:
    """A file the catalog could not use: its system or SDK shows as an error column."""

    system: str
    sdk: str  # "" when the whole system is broken
    message: str


@dataclass
class Catalog:
    systems: list[System]
    broken: list[Broken]

    def sdks(self) -> list[Sdk]:
        return [s for system in self.systems for s in system.sdks]

    def sdk(self, name: str) -> Sdk:
        found = {s.name: s for s in self.sdks()}
        if name not in found:
            raise CatalogError(f"no SDK {name!r}; known: {sorted(found)}")
        return found[name]

    def system(self, name: str) -> System:
        found = {s.name: s for s in self.systems}
        if name not in found:
            raise CatalogError(f"no system {name!r}; known: {sorted(found)}")
        return found[name]

    def findings(self) -> list[Finding]:
        return [f for system in self.systems for f in system.findings]


def _table(path: Path, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise CatalogError(f"{path}: [{key}] must be a table")
    return value


def _str(path: Path, data: dict[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise CatalogError(f"{path}: '{key}' is missing or not a string")
    return value


def _num(path: Path, data: dict[str, Any], key: str, default: float | None = None) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CatalogError(f"{path}: '{key}' is missing or not a number")
    return float(value)


def _strings(path: Path, data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(f"{path}: '{key}' must be a list of strings")
    return tuple(value)


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc


def _contract(path: Path, raw: dict[str, Any], base: Contract | None = None) -> Contract:
    """A whole contract (system.toml), or a manifest's differences from its system's."""
    given = {k: v for k, v in raw.items()}
    if base is not None:
        unknown = set(given) - set(Contract.__dataclass_fields__)
        if unknown:
            raise CatalogError(f"{path}: [contract] has unknown keys {sorted(unknown)}")
        merged = {**base.__dict__, **given}
    else:
        merged = given
    try:
        contract = Contract(
            delivery=_str(path, merged, "delivery"),
            delivery_source=_str(path, merged, "delivery_source"),
            recovery=_str(path, merged, "recovery"),
            recovery_follows_lease=bool(merged.get("recovery_follows_lease", False)),
            recovery_interval_s=_num(path, merged, "recovery_interval_s", 0.0),
            recovery_source=_str(path, merged, "recovery_source"),
            retry_backoff=_str(path, merged, "retry_backoff", ""),
            retry_min_gap_s=_num(path, merged, "retry_min_gap_s", 0.0),
            retry_max_gap_s=_num(path, merged, "retry_max_gap_s", 0.0),
            retry_source=_str(path, merged, "retry_source", ""),
            pool_extra_connections=int(_num(path, merged, "pool_extra_connections", 0)),
            pool_source=_str(path, merged, "pool_source", ""),
            delay_granularity_s=_num(path, merged, "delay_granularity_s", 0.0),
            delay_source=_str(path, merged, "delay_source", ""),
            long_job=_str(path, merged, "long_job", ""),
            long_job_runs_again=bool(merged.get("long_job_runs_again", False)),
            long_job_source=_str(path, merged, "long_job_source", ""),
            periodic_period_s=_num(path, merged, "periodic_period_s", 0.0),
            periodic_late_s=_num(path, merged, "periodic_late_s", 0.0),
            periodic=_str(path, merged, "periodic", ""),
            periodic_source=_str(path, merged, "periodic_source", ""),
        )
    except TypeError as exc:
        raise CatalogError(f"{path}: [contract] {exc}") from exc
    if contract.delivery not in DELIVERY:
        raise CatalogError(f"{path}: delivery {contract.delivery!r} is not one of {sorted(DELIVERY)}")
    if contract.retry_max_gap_s < contract.retry_min_gap_s:
        raise CatalogError(f"{path}: retry_max_gap_s is below retry_min_gap_s")
    return contract


def _tuning(path: Path, raw: object) -> tuple[Setting, ...]:
    if not isinstance(raw, list):
        raise CatalogError(f"{path}: [[tuning]] must be an array of tables")
    out = []
    for n, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            raise CatalogError(f"{path}: tuning {n} is not a table")
        missing = {"name", "default", "value", "why", "source"} - set(item)
        if missing:
            raise CatalogError(f"{path}: tuning {n} ({item.get('name', '?')}) lacks {sorted(missing)}")
        topology = str(item.get("topology", ""))
        if topology not in ("", *POOLER_TOPOLOGIES):
            raise CatalogError(f"{path}: tuning {n} ({item['name']}): topology must be one of {POOLER_TOPOLOGIES}")
        fields = {k: str(item[k]) for k in ("name", "default", "value", "why", "source")}
        out.append(Setting(**fields, topology=topology))
    return tuple(out)


def load_sdk(path: Path, system: str, contract: Contract, stats: StatsQuery) -> Sdk:
    """One manifest. Its name is its folder's and its system the folder above: nothing restated."""
    data = _read(path)
    name = path.parent.name
    if not _NAME.match(name):
        raise CatalogError(f"{path}: folder name {name!r} is not a lowercase name")
    stale = {"name", "system"} & set(data)
    if stale:
        raise CatalogError(f"{path}: {sorted(stale)} come from the folders; remove them")
    language = _str(path, data, "language")
    if language not in LANGUAGES:
        raise CatalogError(f"{path}: language {language!r} is not one of {sorted(LANGUAGES)}")
    known = {"language", "version", "build", "driver", "tuning", "contract", "previous"}
    unknown = set(data) - known
    if unknown:
        raise CatalogError(f"{path}: unknown keys {sorted(unknown)}")
    local = os.environ.get(source_variable(name), "")
    source = Path(local).expanduser().resolve() if local else None
    return Sdk(
        name=name,
        system=system,
        language=language,
        version=_str(path, data, "version"),
        folder=local_builds() / system / name if source else path.parent,
        build=_strings(path, data, "build"),
        driver=_strings(path, data, "driver"),
        tuning=_tuning(path, data.get("tuning", [])),
        contract=_contract(path, _table(path, data, "contract"), base=contract),
        stats=stats,
        previous=_previous(path, data),
        source=source,
        committed=path.parent if source else None,
    )


def _fields_table(path: Path, data: dict[str, Any], name: str, fields: set[str]) -> dict[str, Any]:
    """A table whose keys are a dataclass's fields: a misspelt key is an error, not ignored."""
    raw = _table(path, data, name)
    unknown = set(raw) - fields
    if unknown:
        raise CatalogError(f"{path}: [{name}] has unknown keys {sorted(unknown)}")
    return raw


def _previous(path: Path, data: dict[str, Any]) -> Previous | None:
    if "previous" not in data:
        return None
    raw = _fields_table(path, data, "previous", set(Previous.__dataclass_fields__))
    previous = Previous(
        version=_str(path, raw, "version"),
        installer=_strings(path, raw, "installer"),
        driver=_strings(path, raw, "driver"),
        build=_strings(path, raw, "build"),
        env={str(k): str(v) for k, v in _table(path, raw, "env").items()},
        pins=_str(path, raw, "pins", ""),
    )
    if not previous.installer:
        raise CatalogError(f"{path}: [previous] installer is empty")
    return previous


def _upgrade(path: Path, data: dict[str, Any], installer: Installer) -> Upgrade | None:
    if "upgrade" not in data:
        return None
    raw = _fields_table(path, data, "upgrade", set(Upgrade.__dataclass_fields__))
    exits = raw.get("previous_exits")
    if exits is not None and (isinstance(exits, bool) or not isinstance(exits, int)):
        raise CatalogError(f"{path}: [upgrade] previous_exits must be an exit code")
    return Upgrade(
        migrate=_strings(path, raw, "migrate") or installer.argv,
        folder=path.parent / _str(path, raw, "folder") if "folder" in raw else installer.folder,
        env={str(k): str(v) for k, v in _table(path, raw, "env").items()} if "env" in raw else installer.env,
        after=_strings(path, raw, "after"),
        previous_exits=exits,
        source=_str(path, raw, "source"),
        version_sql=_str(path, raw, "version_sql", ""),
    )


def _findings(path: Path, system: str) -> tuple[Finding, ...]:
    if not path.exists():
        return ()
    data = _read(path)
    out = []
    for n, item in enumerate(data.get("finding", []), 1):
        where = f"{path}: finding {n} ({item.get('id', '?')})"
        required = {"id", "kind", "sdk", "version", "rows", "verdict", "summary", "evidence", "reproduce"}
        missing = required - set(item)
        if missing:
            raise CatalogError(f"{where} lacks {sorted(missing)}")
        if item["kind"] not in FINDING_KINDS:
            raise CatalogError(f"{where}: kind {item['kind']!r} is not one of {sorted(FINDING_KINDS)}")
        if item["verdict"] not in VERDICTS:
            raise CatalogError(f"{where}: verdict {item['verdict']!r} is not one of {sorted(VERDICTS)}")
        if item.get("intermittent") and not item.get("rate"):
            raise CatalogError(f"{where}: intermittent without a measured rate")
        out.append(
            Finding(
                id=str(item["id"]),
                system=system,
                kind=str(item["kind"]),
                sdk=str(item["sdk"]),
                version=str(item["version"]),
                rows=_strings(path, item, "rows"),
                verdict=str(item["verdict"]),
                summary=str(item["summary"]),
                evidence=_strings(path, item, "evidence"),
                workaround=str(item.get("workaround", "")),
                reproduce=str(item["reproduce"]),
                rate=str(item.get("rate", "")),
                topologies=_strings(path, item, "topology") if "topology" in item else (),
            )
        )
    return tuple(out)


def load_system(folder: Path) -> tuple[System, list[Broken]]:
    """One system folder; a broken manifest inside it is a Broken entry, not a failure."""
    path = folder / "system.toml"
    data = _read(path)
    if not _NAME.match(folder.name):
        raise CatalogError(f"{path}: folder name {folder.name!r} is not a lowercase name")
    raw_installer = _table(path, data, "installer")
    installer = Installer(
        argv=_strings(path, raw_installer, "argv"),
        folder=folder / _str(path, raw_installer, "folder", "."),
        build=_strings(path, raw_installer, "build"),
        env={str(k): str(v) for k, v in _table(path, raw_installer, "env").items()},
        pins=_str(path, raw_installer, "pins", ""),
        rerun=_str(path, raw_installer, "rerun", "idempotent"),
        rerun_source=_str(path, raw_installer, "rerun_source", ""),
    )
    if not installer.argv:
        raise CatalogError(f"{path}: [installer] argv is empty")
    if installer.rerun not in {"idempotent", "refuses", "unsupported"}:
        raise CatalogError(f"{path}: [installer] rerun must be idempotent, refuses or unsupported")
    contract = _contract(path, _table(path, data, "contract"))
    raw_stats = _table(path, data, "stats")
    stats = StatsQuery(
        _str(path, raw_stats, "sql"), {str(k): str(v) for k, v in _table(path, raw_stats, "identifiers").items()}
    )
    sdks, broken = [], []
    for manifest in sorted(folder.glob("*/manifest.toml")):
        try:
            sdks.append(load_sdk(manifest, folder.name, contract, stats))
        except CatalogError as exc:
            broken.append(Broken(folder.name, manifest.parent.name, str(exc)))
    findings = _findings(folder / "findings.toml", folder.name)
    upgrade = _upgrade(path, data, installer)
    system = System(folder.name, folder, installer, contract, stats, tuple(sdks), findings, upgrade)
    return system, broken


def load(root: Path | None = None) -> Catalog:
    """Every system under `root` (default sdk_adapters/, or $GAUNTLET_ADAPTERS)."""
    root = root or Path(os.environ.get("GAUNTLET_ADAPTERS", paths.ADAPTERS))
    systems, broken = [], []
    for path in sorted(root.glob("*/system.toml")):
        try:
            system, bad = load_system(path.parent)
        except CatalogError as exc:
            sdks = [m.parent.name for m in sorted(path.parent.glob("*/manifest.toml"))] or [""]
            broken += [Broken(path.parent.name, sdk, str(exc)) for sdk in sdks]
            continue
        systems.append(system)
        broken += bad
    return Catalog(systems, broken)


PLACEHOLDERS = {
    "{python}": paths.VENV_PYTHON,
    "{venv_bin}": paths.VENV_PYTHON.parent,
    "{node22}": paths.NODE22,
    "{npm}": paths.NPM_CLI,
}


def expand(argv: tuple[str, ...], folder: Path) -> list[str]:
    """A `build`, `driver` or installer argv as it runs: placeholders filled, ./ relative to the folder."""
    out = []
    for arg in argv:
        for key, value in PLACEHOLDERS.items():
            arg = arg.replace(key, str(value))
        out.append(str(folder / arg[2:]) if arg.startswith("./") else arg)
    return out
