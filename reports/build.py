"""The report session: a short pipeline of named steps over plain data.

load (every reports/out/junit/*.xml) -> merge (merged.xml; counts in = counts out) -> matrix
-> expectations (known findings, deviations) -> baseline -> render (matrix.json, matrix.md,
index.html) -> screenshot (headless Chromium, when installed). Exits non-zero when a verdict
deviates from reports/expectations.toml.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from junitparser import Error, Failure, Skipped
from junitparser.xunit2 import FlakyFailure, JUnitXml, TestCase, TestSuite

from gauntlet import manifests, paths
from reports import junit, matrix, render

EXPECTATIONS = paths.ROOT / "reports" / "expectations.toml"


def load_findings(path: Path = EXPECTATIONS) -> list[matrix.Finding]:
    data = tomllib.loads(path.read_text()) if path.exists() else {}
    findings = []
    for n, item in enumerate(data.get("finding", []), 1):
        missing = {"rows", "sdk", "verdict", "reason"} - set(item)
        if missing or not isinstance(item["rows"], list):
            raise SystemExit(f"{path}: finding {n} lacks {sorted(missing) or 'a list of rows'}")
        findings.append(
            matrix.Finding(
                item["rows"],
                item["sdk"],
                item["verdict"],
                item["reason"],
                item.get("upstream", ""),
                bool(item.get("intermittent", False)),
            )
        )
    return findings


def merge(cases: list[junit.Case], out: Path) -> int:
    """One suite per (file, suite) so equal suite names from different files stay apart."""
    merged = JUnitXml(name="gauntlet")
    suites: dict[tuple[str, str], TestSuite] = {}
    for case in cases:
        key = (case.file, case.suite)
        if key not in suites:
            suites[key] = TestSuite(f"{case.file}:{case.suite}")
            merged.add_testsuite(suites[key])
        element = TestCase(case.name, classname=case.classname or case.suite, time=case.duration_s or 0)
        result = {"fail": Failure, "error": Error, "n/a": Skipped}.get(case.verdict)
        if result is not None:
            element.result = [result(message=case.message)]
        if case.verdict == "flaky":  # Surefire's convention: passed, with the earlier failure kept
            element.add_interim_result(FlakyFailure(message=case.message))
        for key_, value in case.properties.items():
            element.add_property(key_, str(value))
        suites[key].add_testcase(element)
    for suite in suites.values():
        suite.update_statistics()
    merged.update_statistics()
    out.parent.mkdir(parents=True, exist_ok=True)
    merged.write(str(out), pretty=True)
    return sum(len(list(s)) for s in suites.values())


def session_logs() -> dict[str, str]:
    """`<suite>:<sdk or system>` -> the session log a cell links to (relative to reports/out)."""
    logs = {}
    for path in paths.LOGS.glob("session-*.log"):
        stem = path.stem.removeprefix("session-")  # e.g. e2e_sdk_pgmq-py_, sql_system_river_
        for kind, key in (("e2e", "sdk"), ("chaos", "sdk"), ("sql", "system"), ("bench", "sdk")):
            prefix = f"{kind}_{key}_"
            if stem.startswith(prefix):
                target = stem.removeprefix(prefix).strip("_")
                logs[f"{kind}:{target}"] = str(path.relative_to(paths.OUT))
                if kind == "e2e":
                    logs[f"interop:{target}"] = str(path.relative_to(paths.OUT))
    return logs


def run_facts(seed: str | None) -> dict[str, Any]:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True, text=True).stdout.strip()
    pg = subprocess.run(["/usr/lib/postgresql/15/bin/postgres", "--version"], capture_output=True, text=True).stdout
    started = datetime.now(UTC)
    return {
        "id": started.strftime("%Y%m%dT%H%M%SZ"),
        "started": started.isoformat(timespec="seconds"),
        "git_sha": sha,
        "postgres_version": pg.split("(PostgreSQL)")[-1].split()[0] if pg else "",
        "seed": seed or "",
    }


def screenshot(html_path: Path) -> Path | None:
    """index.png beside index.html, by Debian's headless Chromium; None when it is not installed."""
    browser = shutil.which("chromium")
    if browser is None:
        return None
    png = html_path.with_name("index.png")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={html_path.parent / '.chromium'}",
            "--window-size=1600,1400",
            f"--screenshot={png}",
            html_path.as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    shutil.rmtree(html_path.parent / ".chromium", ignore_errors=True)
    return png if png.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--junit", type=Path, default=paths.JUNIT)
    parser.add_argument("--out", type=Path, default=paths.OUT)
    parser.add_argument("--baseline", type=Path, help="an earlier matrix.json: mark the cells that changed")
    args = parser.parse_args(argv)

    cases = junit.load_all(args.junit)
    merged_count = merge(cases, args.out / "merged.xml")
    columns = matrix.columns_for(manifests.discover(), cases)
    rows, cells = matrix.build(cases, columns, session_logs())
    deviations = matrix.apply_expectations(cells, load_findings())
    changed = matrix.apply_baseline(cells, json.loads(args.baseline.read_text())) if args.baseline else 0
    seeds = sorted({c.properties.get("seed", "") for c in cases if c.properties.get("seed")})
    data = matrix.as_json(run_facts(",".join(seeds)), columns, rows, cells)
    (args.out / "matrix.json").write_text(json.dumps(data, indent=2))
    dev_data = [asdict(d) for d in deviations]
    (args.out / "matrix.md").write_text(render.markdown(data, dev_data))
    bench_path = args.out / "bench.json"
    bench = json.loads(bench_path.read_text()) if bench_path.exists() else None
    html_path = args.out / "index.html"
    html_path.write_text(render.dashboard(data, dev_data, bench))
    png = screenshot(html_path)

    overall = Counter(c.verdict for c in cells)
    files = len(list(args.junit.glob("*.xml")))
    print(f"merged {merged_count} test cases from {files} files into {args.out / 'merged.xml'}")
    for d in deviations:
        print(f"deviation ({d.kind}): {d.row} × {d.sdk} is {d.verdict} — {d.detail}")
    if changed:
        print(f"{changed} cells changed since the baseline")
    print(f"dashboard: {html_path}" + (f" (screenshot {png})" if png else ""))
    print(f"cells: {render.summary_line(overall)}; {len(deviations)} deviation(s) from the expectations")
    return 1 if deviations else 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
