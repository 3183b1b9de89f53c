"""Merge every reports/out/junit/*.xml into reports/out/merged.xml, keeping every case.

Suites are appended one by one instead of junitparser's `+`, which folds suites that
share a name (the same scenario suite from two SDKs) into one.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped, TestSuite
from junitparser.junitparser import JUnitXmlError

from gauntlet import paths


def verdict(case: object) -> str:
    results = getattr(case, "result", [])
    if any(isinstance(r, Error) for r in results):
        return "error"
    if any(isinstance(r, Failure) for r in results):
        return "fail"
    if any(isinstance(r, Skipped) for r in results):
        return "n/a"
    return "pass"


def merge(junit_dir: Path, merged_path: Path) -> Counter[str]:
    merged = JUnitXml(name="gauntlet")
    tally: Counter[str] = Counter()
    for path in sorted(junit_dir.glob("*.xml")):
        try:
            loaded = JUnitXml.fromfile(str(path))
        except (JUnitXmlError, OSError, SyntaxError) as exc:
            broken = TestSuite(f"{path.name} (unreadable)")
            tally["error"] += 1
            print(f"error: {path}: {exc}", file=sys.stderr)
            merged.add_testsuite(broken)
            continue
        suites = [loaded] if isinstance(loaded, TestSuite) else list(loaded)
        for suite in suites:
            for case in suite:
                tally[verdict(case)] += 1
            merged.add_testsuite(suite)
    merged.update_statistics()
    merged_path.parent.mkdir(parents=True, exist_ok=True)
    merged.write(str(merged_path), pretty=True)
    return tally


def main() -> int:
    tally = merge(paths.JUNIT, paths.OUT / "merged.xml")
    line = ", ".join(f"{n} {v}" for v, n in sorted(tally.items())) or "no cells"
    print(f"merged {sum(tally.values())} cases into {paths.OUT / 'merged.xml'}: {line}")
    return 1 if tally["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
