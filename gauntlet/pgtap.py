"""Run pgTAP files with pg_prove and normalise the JUnit that TAP::Formatter::JUnit writes.

What the formatter gets wrong, and what is done about it (counts are never lowered):
- SKIP reasons are dropped (`<testcase name="2"/>`): restored from the TAP in system-out
  (parsed with tap.py) as `<skipped message=…>`;
- plan problems (no plan, fewer tests than planned, psql dying on an SQL error) are
  `<error>`s on the suite, attached to no test case: each becomes a failing case of its
  own, carrying the SQL error text that psql printed on stderr for that file;
- synthetic `(init)`/`(teardown)` cases are removed unless they carry an error;
- suite names are mangled paths (`_work_sql_tests_pgmq_api_sql`): renamed `sql/<system>/<file>`.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite
from psycopg.conninfo import conninfo_to_dict
from tap.line import Result
from tap.parser import Parser

from gauntlet import paths
from gauntlet.supervise import Supervisor

PROVE_BOUND_S = 600.0
SYNTHETIC = {"(init)", "(teardown)"}


@dataclass
class FileOutcome:
    path: Path
    tests: int
    failures: int


def prove(directory: Path, dsn: str, supervisor: Supervisor, name: str) -> tuple[str, str]:
    """Run pg_prove over every *.sql file under `directory`; return its JUnit XML and stderr."""
    params = conninfo_to_dict(dsn)
    argv = ["pg_prove", "--ext", ".sql", "-r", "--formatter", "TAP::Formatter::JUnit"]
    argv += ["-h", str(params.get("host", "127.0.0.1")), "-p", str(params.get("port", 5432))]
    argv += ["-U", str(params.get("user", "postgres")), "-d", str(params["dbname"]), str(directory)]
    env = {"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "10", "PGOPTIONS": "-c statement_timeout=30s"}
    if params.get("password"):
        env["PGPASSWORD"] = str(params["password"])
    helper = supervisor.spawn(name, argv, env=env, stdout=subprocess.PIPE)
    try:
        out, _ = helper.popen.communicate(timeout=PROVE_BOUND_S)
    except subprocess.TimeoutExpired:
        helper.kill()
        raise
    finally:
        helper.kill()
    return out.decode(errors="replace"), helper.log_text()


def _sql_errors(stderr: str, path: Path) -> str:
    """The psql error block(s) that stderr holds for one file."""
    blocks: list[str] = []
    current: list[str] = []
    for line in stderr.splitlines():
        if line.startswith("psql:"):
            if current:
                blocks.append("\n".join(current))
            current = [line] if line.startswith(f"psql:{path}:") else []
        elif current:
            current.append(line)
    if current:
        blocks.append("\n".join(current))
    return "\n".join(blocks)


def _suite_errors(suite: TestSuite) -> list[str]:
    return [e.get("message", "error") for e in suite._elem.findall("error")]


def _tap_results(suite: TestSuite) -> tuple[dict[int, Result], int | None]:
    out = suite._elem.findtext("system-out") or ""
    results: dict[int, Result] = {}
    planned = None
    for line in Parser().parse_text(out):
        if line.category == "test" and line.number is not None:
            results[line.number] = line
        elif line.category == "plan":
            planned = line.expected_tests
    return results, planned


def normalise_suite(suite: TestSuite, path: Path, label: str, stderr: str, properties: dict[str, str]) -> TestSuite:
    results, planned = _tap_results(suite)
    clean = TestSuite(label)
    for key, value in properties.items():
        clean.add_property(key, value)
    clean.add_property("file", str(path.relative_to(paths.ROOT)) if path.is_relative_to(paths.ROOT) else str(path))
    for case in suite:
        if case.name in SYNTHETIC and not case.result:
            continue
        number = re.match(r"^(\d+)", case.name or "")
        result = results.get(int(number.group(1))) if number else None
        if result is not None and result.skip:
            case.result = [Skipped(message=result.directive.reason or "skipped")]
        case.classname = label
        clean.add_testcase(case)
    problems = _suite_errors(suite)
    ran = len(results)
    if not problems and (ran == 0 or (planned is not None and ran < planned)):
        problems.append(f"ran {ran} of {planned if planned is not None else 'an unknown number of'} planned tests")
    if problems:
        broken = TestCase(f"{path.name}: plan", classname=label)
        error = Error(message="; ".join(problems))
        sql_text = _sql_errors(stderr, path)
        error.text = sql_text or "\n".join(problems)
        broken.result = [error]
        clean.add_testcase(broken)
    clean.update_statistics()
    return clean


def _mangled(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", text)


def _suite_path(suite_name: str, files: Iterable[Path]) -> Path | None:
    """The file a suite came from; the formatter names suites after paths with / and . mangled."""
    for path in files:
        if _mangled(str(path)) == _mangled(suite_name):
            return path
    return None


def normalise(xml_text: str, stderr: str, directory: Path, system: str) -> JUnitXml:
    """pg_prove's JUnit for one system's directory, normalised (see module docstring)."""
    files = sorted(directory.rglob("*.sql"))
    properties = {"system": system, "suite": "sql"}
    merged = JUnitXml(name=f"sql-{system}")
    try:
        raw = JUnitXml.fromstring(xml_text)
        suites = [raw] if isinstance(raw, TestSuite) else list(raw)
    except Exception as exc:  # any parse failure becomes an error case below
        suites = []
        stderr = f"pg_prove wrote no readable JUnit ({exc}):\n{xml_text[:2000]}\n{stderr}"
    seen = set()
    for suite in suites:
        path = _suite_path(suite.name or "", files) or Path(suite.name or "unknown.sql")
        seen.add(path)
        label = f"sql/{system}/{path.stem}"
        merged.add_testsuite(normalise_suite(suite, path, label, stderr, properties))
    for path in files:
        if path not in seen:  # pg_prove died before reaching it: say so, never drop it
            label = f"sql/{system}/{path.stem}"
            missing = TestSuite(label)
            case = TestCase(f"{path.name}: plan", classname=label)
            error = Error(message="pg_prove reported nothing for this file")
            error.text = stderr[-4000:]
            case.result = [error]
            missing.add_testcase(case)
            for key, value in properties.items():
                missing.add_property(key, value)
            missing.update_statistics()
            merged.add_testsuite(missing)
    merged.update_statistics()
    return merged


def failed_cases(xml: JUnitXml) -> list[TestCase]:
    return [c for s in xml for c in s if any(isinstance(r, (Error, Failure)) for r in c.result)]
