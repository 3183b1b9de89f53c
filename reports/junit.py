"""Read JUnit files from any producer into one plain model, normalising their quirks.

Producers seen in the wild, and what is done about each (counts are never lowered):
- test cases directly under <testsuites> (node --test's junit reporter): given a suite
  named after the file;
- nested <testsuite>s (node, Go converters): flattened, the path of names kept;
- suites with equal names in different files (junitparser's merge folds them into one):
  kept apart by qualifying the suite with the file it came from;
- pg_prove's TAP::Formatter::JUnit: synthetic (init)/(teardown) cases without errors
  dropped (they are not tests), suite-level <error>s (plan problems) turned into cases;
- flaky/rerun elements (Surefire's <flakyFailure>/<rerunFailure>, our own `flaky`
  property): a pass after a failure is *flaky*, never *pass*;
- a file that is not JUnit at all: one *error* case naming the file (`unreadable`), and the
  others go on; the matrix shows it in the column its file name belongs to.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gauntlet.ids import HARNESS_ERROR

SYNTHETIC = {"(init)", "(teardown)"}
FLAKY_TAGS = {"flakyFailure", "flakyError"}
RERUN_TAGS = {"rerunFailure", "rerunError"}


@dataclass
class Case:
    file: str
    suite: str
    name: str
    classname: str
    verdict: str  # pass / fail / error / flaky / n/a
    message: str = ""
    text: str = ""
    duration_s: float | None = None
    properties: dict[str, str] = field(default_factory=dict)
    unreadable: bool = False  # stands for a whole file that could not be read

    def key(self) -> tuple[str, str, str]:
        return (self.file, self.suite, self.name)


def _properties(element: ET.Element) -> dict[str, str]:
    found = {}
    holder = element.find("properties")
    if holder is not None:
        for prop in holder.findall("property"):
            if prop.get("name") is not None:
                found[prop.get("name", "")] = prop.get("value", prop.text or "")
    return found


def _time(element: ET.Element) -> float | None:
    try:
        return round(float(element.get("time", "")), 3)
    except ValueError:
        return None


def _case(element: ET.Element, file: str, suite: str, suite_props: dict[str, str]) -> Case | None:
    name = element.get("name", "")
    children = {child.tag: child for child in element}
    props = {**suite_props, **_properties(element)}
    problem = children.get("error") if "error" in children else children.get("failure")
    if name in SYNTHETIC and problem is None:
        return None
    verdict, message, text = "pass", "", ""
    if problem is not None:
        verdict = "error" if problem.tag == "error" or HARNESS_ERROR in props else "fail"
        message, text = problem.get("message", ""), (problem.text or "")
    elif "skipped" in children:
        verdict, message = "n/a", children["skipped"].get("message", "") or (children["skipped"].text or "")
    if problem is None and (FLAKY_TAGS & set(children) or "flaky" in props):
        first = next((children[t] for t in FLAKY_TAGS if t in children), None)
        verdict = "flaky"
        message = props.get("flaky") or (first.get("message", "") if first is not None else "") or "failed, then passed"
    if problem is not None and RERUN_TAGS & set(children):
        message = f"{message} (failed again on re-run)".strip()
    return Case(file, suite, name, element.get("classname", ""), verdict, message, text, _time(element), props)


def _walk(element: ET.Element, file: str, path: list[str], props: dict[str, str], out: list[Case]) -> None:
    for child in element:
        if child.tag == "testsuite":
            name = child.get("name") or "(unnamed)"
            suite_props = {**props, **_properties(child)}
            _walk(child, file, [*path, name], suite_props, out)
            for error in child.findall("error"):  # suite-level errors (pg_prove plan problems)
                out.append(
                    Case(
                        file,
                        " / ".join([*path, name]),
                        f"{name}: suite error",
                        "",
                        "error",
                        error.get("message", ""),
                        error.text or "",
                        None,
                        suite_props,
                    )
                )
        elif child.tag == "testcase":
            suite = " / ".join(path) if path else Path(file).stem
            case = _case(child, file, suite, props)
            if case is not None:
                out.append(case)


def _unreadable(path: Path, what: str, why: str) -> Case:
    message = f"{path.name} is {what}: {why}"
    return Case(path.name, path.stem, f"{path.name}: {what}", "", "error", message, unreadable=True)


def load(path: Path) -> list[Case]:
    """Every case in one JUnit file; an unreadable file becomes one error case."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        return [_unreadable(path, "unreadable JUnit", str(exc))]
    if root.tag not in ("testsuites", "testsuite"):
        return [_unreadable(path, "not JUnit", f"root element <{root.tag}>")]
    cases: list[Case] = []
    wrapper = ET.Element("testsuites")
    if root.tag == "testsuite":
        wrapper.append(root)
    else:
        wrapper = root
    _walk(wrapper, path.name, [], {}, cases)
    return cases


def load_all(folder: Path) -> list[Case]:
    cases: list[Case] = []
    for path in sorted(folder.glob("*.xml")):
        cases.extend(load(path))
    return cases


def count_elements(path: Path) -> dict[str, Any]:
    """What a file holds by a plain count of its <testcase> elements, for counts-in = counts-out."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return {"testcases": 0, "synthetic": 0, "suite_errors": 0}
    cases = root.iter("testcase")
    synthetic = 0
    total = 0
    for case in cases:
        total += 1
        if case.get("name") in SYNTHETIC and case.find("error") is None and case.find("failure") is None:
            synthetic += 1
    suite_errors = sum(len(s.findall("error")) for s in root.iter("testsuite"))
    return {"testcases": total, "synthetic": synthetic, "suite_errors": suite_errors}
