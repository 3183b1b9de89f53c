"""Run history: every main job's cells in a real database, so a cell's verdicts can be read
across runs (the dashboard's strips, `python3 -m gauntlet history ROW SDK`).

Not to be confused with gauntlet.checker's `History` (one scenario's job executions): this is
the record of runs. Where it lives: `--history-db` (a path, an SQLAlchemy URL or a libpq DSN),
else `GAUNTLET_RESULTS_DSN` (a PostgreSQL, libpq DSN or URL), else the SQLite file
`reports/history.sqlite` (git-ignored). One code path for both: SQLAlchemy Core (psycopg for
PostgreSQL), the schema created idempotently and versioned in `gauntlet_meta`.

When it is written: the main job's report (`python3 -m gauntlet run` passes `--record-history`
to `nox -s report`) records once per job. A report run by hand (`nox -s report`) records
nothing and reads nothing unless asked: `-- --record-history` records it (a report of a job
already recorded, by the job's start in sessions.json, replaces that job's record rather than
adding a second), `-- --show-history` only draws the strips. Cells from JUnit files older than
the job (what a partial job merged from an earlier run, the bench's) are not recorded again.

A history database that cannot be used (not SQLite, damaged, another schema version) never
fails a report: the report says so, moves the file aside (`history.sqlite.corrupt-<UTC time>`,
never deleted) and starts a fresh one; an unreachable PostgreSQL is a message and no record.
"""

from __future__ import annotations

import argparse
import difflib
import html
import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from gauntlet import paths
from gauntlet.ids import KIND_TOPOLOGY, CellId, RowId
from reports import junit, matrix

RESULTS_DSN_ENV = "GAUNTLET_RESULTS_DSN"
DEFAULT_DB = paths.ROOT / "reports" / "history.sqlite"
RECORD_FLAG = "--record-history"  # what the main job passes to its report
STRIP_RUNS = 10  # N: the dashboard shows each cell's last N verdicts
SCHEMA_VERSION = "1"
MESSAGE_CHARS = 1000  # kept of a cell's message
HEAD_CHARS = 80  # of its first line, printed by `history`
# The figures kept from a cell's properties (the rest stays in that run's matrix.json).
KEY_FIGURES = (
    "acknowledged",
    "succeeded",
    "executions",
    "lost",
    "unexpected",
    "duplicated",
    "overlaps",
    "order_inversions",
    "stuck",
    "recovery_s",
    "latency_p50_s",
    "latency_p99_s",
    "peak_connections",
    "jobs_per_s",
    "assertions",
    "repeat_failed",
)

metadata = MetaData()
meta_table = Table(
    "gauntlet_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)
runs_table = Table(
    "gauntlet_runs",
    metadata,
    Column("run_id", String(32), primary_key=True),  # the report's id, as matrix.json's run.id
    Column("started", DateTime(timezone=True), nullable=False),  # the main job's start
    Column("reported", DateTime(timezone=True), nullable=False),
    Column("git_sha", String(64), nullable=False),
    Column("seed", Integer),  # None when the run's cells had several seeds or none
    Column("postgres_version", String(32), nullable=False),
    Column("cells", Integer, nullable=False),
)
cells_table = Table(
    "gauntlet_cells",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("gauntlet_runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("suite", String(32), nullable=False),  # RowId.suite
    Column("row_name", String(400), nullable=False),  # RowId.name
    Column("sdk", String(100), nullable=False),
    Column("topology", String(32), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("duration_s", Float),
    Column("seed", Integer),
    Column("message", Text, nullable=False),
    Column("finding", String(200), nullable=False),
    Column("figures", JSON, nullable=False),
    UniqueConstraint("run_id", "suite", "row_name", "sdk", "topology"),
    Index("gauntlet_cells_by_cell", "suite", "row_name", "sdk", "topology"),
)

Say = Callable[[str], None]
Figure = int | float | str


@dataclass(frozen=True)
class RunRecord:
    """One main job as the history keeps it."""

    run_id: str
    started: datetime
    reported: datetime
    git_sha: str
    seed: int | None
    postgres_version: str


@dataclass(frozen=True)
class CellRecord:
    """One cell of one run."""

    cell: CellId
    verdict: str
    duration_s: float | None
    seed: int | None
    message: str
    finding: str = ""
    figures: dict[str, Figure] = field(default_factory=dict)

    @classmethod
    def of(cls, cell: matrix.Cell) -> CellRecord:
        return cls(
            cell.id,
            cell.verdict,
            cell.duration_s,
            _int(cell.properties.get("seed")),
            cell.message[:MESSAGE_CHARS],
            cell.finding,
            key_figures(cell.properties),
        )


@dataclass(frozen=True)
class CellRun:
    """A cell's record in one run: what `history` prints, one line each."""

    run: RunRecord
    record: CellRecord


class Unusable(Exception):
    """The history database exists but cannot be used (damaged, not ours, another version)."""


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _figure(value: Any) -> Figure | None:
    """A property's value as a number where it is one (a {"median": …} object gives its median)."""
    text = str(value)
    if (number := _int(text)) is not None:
        return number
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:100]
    if isinstance(parsed, dict) and isinstance(parsed.get("median"), int | float):
        return float(parsed["median"])
    return text[:100]


def key_figures(properties: dict[str, Any]) -> dict[str, Figure]:
    out = {}
    for key in KEY_FIGURES:
        if key in properties and (value := _figure(properties[key])) is not None:
            out[key] = value
    return out


def flake_rate(verdicts: Sequence[str]) -> float | None:
    """The flake rate of a cell over its last N runs (`verdicts`, oldest first): the share of
    those runs that are unsteady, where a run is unsteady when its verdict is `flaky` (it
    failed, then passed when re-run with the same seed) or differs from the verdict of the run
    before it in the window (the window's first run counts only when it is `flaky`). 0 for a
    cell that always says the same; one change for good (pass, pass, fail, fail) counts once;
    an alternating cell tends to 1. None without runs."""
    if not verdicts:
        return None
    unsteady = sum(v == "flaky" or (i > 0 and v != verdicts[i - 1]) for i, v in enumerate(verdicts))
    return unsteady / len(verdicts)


# -- where the database is -----------------------------------------------------------------


def target(explicit: str | None = None) -> str:
    """The history database to use: the one given, else GAUNTLET_RESULTS_DSN, else the default file."""
    return explicit or os.environ.get(RESULTS_DSN_ENV) or str(DEFAULT_DB)


def _sqlite_path(where: str) -> Path | None:
    if where.startswith("sqlite:///"):
        return Path(where.removeprefix("sqlite:///"))
    if "://" in where or "=" in where:
        return None
    return Path(where)


def engine_for(where: str) -> Engine:
    """One engine for either database: SQLite for a path, psycopg for a libpq DSN or URL."""
    path = _sqlite_path(where)
    if path is not None:
        return create_engine(f"sqlite:///{path}", poolclass=NullPool)
    scheme = where.partition("://")[0]
    if "://" in where and scheme not in ("postgresql", "postgres"):  # an SQLAlchemy URL (postgresql+psycopg://)
        return create_engine(where, poolclass=NullPool)
    # A libpq DSN, key=value or URL: psycopg reads it as libpq would.
    return create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(where), poolclass=NullPool)


def shown(where: str) -> str:
    """The database for a message, without a password."""
    path = _sqlite_path(where)
    if path is not None:
        return str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    try:
        return engine_for(where).url.render_as_string(hide_password=True) if "://" in where else _redact(where)
    except SQLAlchemyError:
        return "(a DSN)"


def _redact(dsn: str) -> str:
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(a DSN)"
    return " ".join(f"{k}={'***' if k == 'password' else v}" for k, v in parts.items())


class RunHistory:
    """The history database: opened (and, when writing, made) by `open`."""

    def __init__(self, engine: Engine, where: str) -> None:
        self.engine = engine
        self.where = where

    @classmethod
    def open(cls, where: str | None = None, *, write: bool, say: Say = print) -> RunHistory | None:
        """The history at `where` (see `target`), or None with a message saying why not.

        Writing, a missing database is made; a SQLite file that cannot be used is moved aside
        and a fresh one made. Reading changes nothing: a missing or unusable one is a message.
        """
        where = target(where)
        path = _sqlite_path(where)
        if path is not None and not path.exists():
            if not write:
                say(f"run history: none at {path} yet (the main job records one)")
                return None
            say(f"run history: no database at {path}: starting a fresh one")
            path.parent.mkdir(parents=True, exist_ok=True)
        history = cls(engine_for(where), where)
        try:
            history.check(create=write)
            return history
        except Unusable as exc:
            history.close()
            if path is None or not write:
                say(f"run history: {shown(where)} cannot be used ({exc}); " + ("not recorded" if write else "not read"))
                return None
            aside = path.with_name(f"{path.name}.corrupt-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}")
            path.rename(aside)
            for suffix in ("-journal", "-wal", "-shm"):
                companion = path.with_name(path.name + suffix)
                if companion.exists():
                    companion.rename(aside.with_name(aside.name + suffix))
            say(f"run history: {path} cannot be used ({exc}); moved it aside to {aside.name} and started a fresh one")
            history = cls(engine_for(where), where)
            try:
                history.check(create=True)
            except Unusable as again:
                say(f"run history: a fresh database at {path} cannot be made either ({again}); not recorded")
                history.close()
                return None
            return history

    def check(self, create: bool) -> None:
        """The schema is there (made when `create`) and of this version; raises Unusable otherwise."""
        try:
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "sqlite":
                    status = conn.exec_driver_sql("PRAGMA quick_check").scalar()
                    if status != "ok":
                        raise Unusable(f"quick_check: {status}")
                present = set(inspect(conn).get_table_names())
                if meta_table.name in present:  # checked before anything is written: evidence stays as it was
                    key = meta_table.c.key == "schema_version"
                    version = conn.execute(select(meta_table.c.value).where(key)).scalar()
                    if version != SCHEMA_VERSION:
                        raise Unusable(f"schema version {version!r}, this harness writes {SCHEMA_VERSION!r}")
                if create:
                    metadata.create_all(conn, checkfirst=True)
                    if meta_table.name not in present:
                        conn.execute(insert(meta_table).values(key="schema_version", value=SCHEMA_VERSION))
                elif not {t.name for t in metadata.sorted_tables} <= present:
                    raise Unusable("it holds no run history")
        except SQLAlchemyError as exc:
            raise Unusable(_first_line(exc)) from exc

    def close(self) -> None:
        self.engine.dispose()

    def record(self, run: RunRecord, cells: Iterable[CellRecord]) -> int:
        """Appends one run; a run of the same job (its start) or id recorded before is replaced."""
        rows = [
            {
                "run_id": run.run_id,
                "suite": c.cell.row.suite,
                "row_name": c.cell.row.name,
                "sdk": c.cell.sdk,
                "topology": c.cell.topology,
                "verdict": c.verdict,
                "duration_s": c.duration_s,
                "seed": c.seed,
                "message": c.message,
                "finding": c.finding,
                "figures": c.figures,
            }
            for c in cells
        ]
        with self.engine.begin() as conn:
            same = (runs_table.c.started == run.started) | (runs_table.c.run_id == run.run_id)
            old = [r for (r,) in conn.execute(select(runs_table.c.run_id).where(same))]
            if old:
                conn.execute(delete(cells_table).where(cells_table.c.run_id.in_(old)))
                conn.execute(delete(runs_table).where(runs_table.c.run_id.in_(old)))
            conn.execute(
                insert(runs_table).values(
                    run_id=run.run_id,
                    started=run.started,
                    reported=run.reported,
                    git_sha=run.git_sha,
                    seed=run.seed,
                    postgres_version=run.postgres_version,
                    cells=len(rows),
                )
            )
            if rows:
                conn.execute(insert(cells_table), rows)
        return len(rows)

    def cell_runs(self, cell: CellId, last: int) -> list[CellRun]:
        """The cell's last `last` runs, oldest first."""
        c, r = cells_table.c, runs_table.c
        query = (
            select(
                r.run_id,
                r.started,
                r.reported,
                r.git_sha,
                r.seed.label("run_seed"),
                r.postgres_version,
                c.verdict,
                c.duration_s,
                c.seed,
                c.message,
                c.finding,
                c.figures,
            )
            .join(runs_table, r.run_id == c.run_id)
            .where(
                c.suite == cell.row.suite, c.row_name == cell.row.name, c.sdk == cell.sdk, c.topology == cell.topology
            )
            .order_by(r.started.desc(), r.run_id.desc())
            .limit(last)
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).mappings().all()
        return [
            CellRun(
                RunRecord(
                    f["run_id"],
                    _utc(f["started"]),
                    _utc(f["reported"]),
                    f["git_sha"],
                    f["run_seed"],
                    f["postgres_version"],
                ),
                CellRecord(cell, f["verdict"], f["duration_s"], f["seed"], f["message"], f["finding"], f["figures"]),
            )
            for f in reversed(found)
        ]

    def recent(self, last: int = STRIP_RUNS) -> dict[CellId, list[tuple[str, str]]]:
        """Every cell's last `last` (run id, verdict), oldest first: the strips, in one query."""
        key = (cells_table.c.suite, cells_table.c.row_name, cells_table.c.sdk, cells_table.c.topology)
        order = (runs_table.c.started.desc(), runs_table.c.run_id.desc())
        ranked = (
            select(*key, cells_table.c.verdict, runs_table.c.run_id, runs_table.c.started)
            .add_columns(func.row_number().over(partition_by=key, order_by=order).label("n"))
            .join(runs_table, runs_table.c.run_id == cells_table.c.run_id)
            .subquery()
        )
        query = select(ranked).where(ranked.c.n <= last).order_by(ranked.c.started, ranked.c.run_id)
        out: dict[CellId, list[tuple[str, str]]] = defaultdict(list)
        with self.engine.connect() as conn:
            for r in conn.execute(query).mappings():
                out[CellId(RowId(r["suite"], r["row_name"]), r["sdk"], r["topology"])].append(
                    (r["run_id"], r["verdict"])
                )
        return dict(out)

    def cells_of(self, sdk: str) -> list[CellId]:
        query = select(cells_table.c.suite, cells_table.c.row_name, cells_table.c.topology).where(
            cells_table.c.sdk == sdk
        )
        with self.engine.connect() as conn:
            return sorted({CellId(RowId(s, n), sdk, t) for s, n, t in conn.execute(query.distinct())})


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- the report's step ---------------------------------------------------------------------


def carried(
    cases: list[junit.Case], earlier: list[str], cells: list[matrix.Cell], columns: list[matrix.Column]
) -> set[CellId]:
    """The cells an earlier run made: those a partial job merged from JUnit files older than
    itself (placed as the report places them), and the "not run" cells of those files' sessions."""
    if not earlier:
        return set()
    files = set(earlier)
    placed, _other = matrix.place([c for c in cases if c.file in files], columns, {})
    by_name = {c.name: c for c in columns}
    stale = {c.id for c in placed}
    for cell in cells:
        column = by_name.get(cell.id.sdk)
        if column is not None and matrix.session_of(cell.id, column).junit_file in files:
            stale.add(cell.id)
    return stale


def run_record(facts: dict[str, Any], job_started: str) -> RunRecord:
    reported = datetime.fromisoformat(facts["started"])
    started = datetime.fromisoformat(job_started) if job_started else reported
    return RunRecord(
        facts["id"],
        started,
        reported,
        facts.get("git_sha", ""),
        _int(facts.get("seed")),
        facts.get("postgres_version", ""),
    )


def report_step(
    *,
    record: bool,
    show: bool,
    where: str | None,
    run: RunRecord,
    cells: list[matrix.Cell],
    carried_cells: set[CellId],
    say: Say = print,
) -> dict[CellId, list[tuple[str, str]]]:
    """The report's use of the history: record this run (when `record`), then every cell's
    last verdicts for the strips (when `record` or `show`). Never raises: a history that cannot
    be used is a message and no strips."""
    if not (record or show):
        say(f"run history: not recorded (a report run by hand records nothing unless asked: {RECORD_FLAG})")
        return {}
    try:
        history = RunHistory.open(where, write=record, say=say)
    except (SQLAlchemyError, psycopg.Error, OSError) as exc:  # e.g. reports/ not writable
        say(f"run history: {shown(target(where))} cannot be opened ({_first_line(exc)}); no history this time")
        return {}
    if history is None:
        return {}
    try:
        if record:
            kept = [CellRecord.of(c) for c in cells if c.id not in carried_cells]
            count = history.record(run, kept)
            left = len(cells) - count
            say(
                f"run history: recorded {count} cells of run {run.run_id} in {shown(history.where)}"
                + (f" ({left} merged from an earlier run's JUnit files left out)" if left else "")
            )
        return history.recent(STRIP_RUNS)
    except (SQLAlchemyError, psycopg.Error, OSError) as exc:
        say(f"run history: {shown(history.where)} failed ({_first_line(exc)}); no history this time")
        return {}
    finally:
        history.close()


def _first_line(exc: BaseException) -> str:
    return (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0]


def annotate(cells_json: list[dict[str, Any]], recent: dict[CellId, list[tuple[str, str]]]) -> None:
    """Each matrix.json cell with a record gets `history`: its last runs (oldest first) and its flake rate."""
    by_key = {(str(c.row), c.sdk, c.topology): runs for c, runs in recent.items()}  # as matrix.json renders a cell
    for cell in cells_json:
        runs = by_key.get((cell["row"], cell["sdk"], cell["topology"]))
        if runs:
            cell["history"] = {
                "last": [{"run": run, "verdict": verdict} for run, verdict in runs],
                "flake_rate": flake_rate([verdict for _, verdict in runs]),
            }


def strip_html(history: dict[str, Any] | None, colours: dict[str, str]) -> str:
    """A cell's last verdicts as a strip of small squares on white (oldest first, each titled with
    its run and verdict), then its flake rate when it is not 0; "" without a history."""
    if not history or not history.get("last"):
        return ""
    squares = "".join(
        f'<i title="{html.escape(run["run"])}: {html.escape(run["verdict"])}" style="display:inline-block;'
        f'width:5px;height:9px;margin:0 1px;background:{colours.get(run["verdict"], "#9e9e9e")}"></i>'
        for run in history["last"]
    )
    rate = history.get("flake_rate")
    about = f"last {len(history['last'])} runs, oldest first; flake rate {rate:.0%}" if rate is not None else ""
    return (
        f'<span class=strip title="{html.escape(about)}"><span style="display:inline-block;background:#fff;'
        f'padding:1px;border-radius:2px;line-height:0">{squares}</span>{f" {rate:.0%}" if rate else ""}</span>'
    )


# -- python3 -m gauntlet history ROW SDK ---------------------------------------------------


def _row(text: str) -> RowId:
    suite, slash, name = text.partition("/")
    if not slash or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not a row: SUITE/NAME, e.g. e2e/test_basic_wave")
    return RowId(suite, name)


def print_cell(history: RunHistory, cell: CellId, last: int, symbols: dict[str, str], out: Say = print) -> bool:
    runs = history.cell_runs(cell, last)
    if not runs:
        return False
    rate = flake_rate([r.record.verdict for r in runs])
    count = f"{len(runs)} run" + ("s" if len(runs) > 1 else "")
    out(f"{cell} — {count} in {shown(history.where)}, oldest first; flake rate {rate:.0%}")
    for r in runs:
        duration = "" if r.record.duration_s is None else f"{r.record.duration_s:.1f}s"
        verdict = f"{symbols.get(r.record.verdict, '?')} {r.record.verdict}"
        first = (r.record.message.splitlines() or [""])[0]
        head = first if len(first) <= HEAD_CHARS else first[: HEAD_CHARS - 1] + "…"
        out(
            f"  {r.run.started.isoformat(timespec='seconds')}  {r.run.git_sha[:10]:<10}  "
            f"{verdict:<8} {duration:>7}  {head}".rstrip()
        )
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m gauntlet history", description="A cell's record across the recorded runs."
    )
    parser.add_argument("row", type=_row, help="the matrix row as matrix.json names it, e.g. e2e/test_basic_wave")
    parser.add_argument("sdk", help="the SDK: a column's name")
    parser.add_argument("--topology", help="only this topology (default: every one the cell has)")
    parser.add_argument("-n", type=int, default=20, help="the last N runs (default 20)")
    parser.add_argument("--history-db", help=f"a path, URL or DSN (default: ${RESULTS_DSN_ENV}, else {DEFAULT_DB})")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("-n must be at least 1")
    from reports.render import SYMBOL  # here: render draws the strips with this module

    history = RunHistory.open(args.history_db, write=False, say=lambda m: print(m, file=sys.stderr))
    if history is None:
        return 1
    try:
        recorded = history.cells_of(args.sdk)
        known = dict.fromkeys(["direct", *KIND_TOPOLOGY.values(), *sorted({c.topology for c in recorded})])
        topologies = [args.topology] if args.topology else list(known)
        found = [print_cell(history, CellId(args.row, args.sdk, t), args.n, SYMBOL) for t in topologies]
        if any(found):
            return 0
        names = [str(c.row) for c in recorded]
        close = difflib.get_close_matches(str(args.row), names, n=5, cutoff=0.5)
        print(
            f"no record of {args.row} × {args.sdk}"
            + (f" @ {args.topology}" if args.topology else "")
            + f" in {shown(history.where)}"
            + (f"; recorded rows like it: {', '.join(dict.fromkeys(close))}" if close else "")
            + ("" if recorded else f"; no cell of {args.sdk} recorded at all"),
            file=sys.stderr,
        )
        return 1
    except SQLAlchemyError as exc:
        print(f"run history: {shown(history.where)} cannot be read: {_first_line(exc)}", file=sys.stderr)
        return 1
    finally:
        history.close()


if __name__ == "__main__":
    sys.exit(main())
