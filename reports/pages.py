"""A page per cell (reports/out/cells/<cell>.html, the path CellId.page names), each
self-contained: the scenario and what it judges, the verdict and why, the finding when the
cell is known, the timeline and the witnesses from the cell's evidence file (gauntlet/evidence.py),
the fault schedule, the workers' error lines, the SDK's tuning, the figures, and the command
that replays the cell with its seed."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from gauntlet import evidence
from reports import plots
from reports.render import COLOUR, CSS, SYMBOL, _e, badge

PAGE_CSS = """
.verdict{display:inline-block;color:#fff;font-weight:600;padding:2px 8px;border-radius:3px}
pre{background:#f5f5f5;padding:8px;overflow-x:auto;font-size:12px} .plot svg{max-width:100%;height:auto}
table.facts td.n{text-align:right;font-family:ui-monospace,monospace;font-size:12px}
"""


def _seconds(wall: float | None, t0: float) -> str:
    return "—" if wall is None else f"+{wall - t0:.3f}"


def _planned(seconds: float | None) -> str:
    """A seeded window's planned figure; a fault the scenario places itself (the MVCC scenario's
    held snapshot, between its two waves) has none."""
    return "—" if seconds is None else f"{seconds:g}"


def _facts(rows: list[tuple[str, Any]]) -> str:
    return "<table class=facts>" + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


def _finding_html(finding: dict[str, Any]) -> str:
    items = "".join(f"<li>{_e(e)}</li>" for e in finding["evidence"])
    return (
        f"<h2>Finding</h2><div class=finding><span class=badge>{_e(badge(finding))}</span> "
        f"<b>{_e(finding['key'])}</b> — {_e(finding['summary'])}<table class=facts>"
        f"<tr><td>kind</td><td>{_e(finding['kind'])}</td></tr>"
        f"<tr><td>SDK, version</td><td><code>{_e(finding['sdk'])}</code> {_e(finding['version'])}</td></tr>"
        f"<tr><td>expected verdict</td><td>{_e(finding['verdict'])}"
        + (f" — intermittent, fails {_e(finding['rate'])}" if finding.get("rate") else "")
        + f"</td></tr><tr><td>evidence</td><td><ul>{items}</ul></td></tr>"
        f"<tr><td>workaround</td><td>{_e(finding['workaround'] or 'none known')}</td></tr>"
        f"<tr><td>reproduce</td><td><code>{_e(finding['reproduce'])}</code></td></tr></table></div>"
    )


def _jobs_html(heading: str, listed: dict[str, Any], t0: float) -> str:
    """A heading with how many, then each listed job with every execution the workers recorded."""
    lines = []
    for job in listed["jobs"]:
        enqueued = job.get("enqueued") or {}
        runs = job["executions"] or [{}]
        for n, run in enumerate(runs):
            head = (
                f"<td class=row rowspan={len(runs)}>{_e(job['id'])}</td><td rowspan={len(runs)}>{_e(job['detail'])}"
                f"</td><td rowspan={len(runs)}>{_e(enqueued.get('outcome', 'never enqueued'))} "
                f"{_seconds(enqueued.get('sent_at'), t0)}</td>"
                if n == 0
                else ""
            )
            cells = (
                f"<td>{_e(run['worker'])}</td><td class=n>{_e(run['pid'])}</td>"
                f"<td class=n>{_e(run.get('sdk_id', ''))}</td><td class=n>{_e(run['attempt'])}</td>"
                f"<td class=n>{_seconds(run['start'], t0)}</td><td class=n>{_seconds(run['end'], t0)}</td>"
                f"<td>{_e(run['outcome'] or 'died mid-run')}</td>"
                if run
                else "<td colspan=7>never executed</td>"
            )
            lines.append(f"<tr>{head}{cells}</tr>")
    shown = len(listed["jobs"])
    return (
        f"<h3>{_e(heading)}: {listed['count']}"
        + (f" (the first {shown})" if shown < listed["count"] else "")
        + "</h3><table class=facts><thead><tr><th>job</th><th>why</th><th>enqueued</th><th>worker</th><th>pid</th>"
        "<th>SDK job id</th><th>attempt</th><th>start</th><th>end</th><th>outcome</th></tr></thead><tbody>"
        + "".join(lines)
        + "</tbody></table>"
    )


def _witnesses_html(kept: dict[str, Any]) -> str:
    found = kept.get("witnesses") or {}
    parts = [
        "<h2>Witnesses</h2><div class=sub>"
        + (
            "The first jobs each broken property names, with every execution the workers recorded (times in "
            "seconds since the first enqueue). Two runs under one SDK job id are one job handed out twice; "
            "under two ids, the job was inserted twice.</div>"
            if found
            else "No property the checker judged is broken: nothing to witness.</div>"
        )
    ]
    parts += [_jobs_html(kind.replace("_", " "), listed, kept["t0"]) for kind, listed in found.items()]
    if (kept.get("cut") or {}).get("count"):
        parts.append(
            "<h2>Runs cut mid-run</h2><div class=sub>Jobs with a run that never ended (its worker died, or its "
            "connection did): not a violation but the fault at work; the later executions say what became of each."
            "</div>" + _jobs_html("cut", kept["cut"], kept["t0"])
        )
    return "".join(parts)


def _schedule_html(cell: dict[str, Any], kept: dict[str, Any] | None) -> str:
    faults = (kept or {}).get("faults") or []
    if faults:
        t0 = kept["t0"] if kept else 0.0
        lines = "".join(
            f"<tr><td class=n>{n + 1}</td><td>{_e(f.get('fault', ''))}</td>"
            f"<td class=row>{_e(', '.join(f'{k}={v}' for k, v in f.items() if k not in SCHEDULE_KEYS))}</td>"
            f"<td class=n>{_planned(f.get('start_s'))}</td><td class=n>{_planned(f.get('duration_s'))}</td>"
            f"<td class=n>{_seconds(f.get('applied'), t0)}</td><td class=n>{_seconds(f.get('healed'), t0)}</td></tr>"
            for n, f in enumerate(faults)
        )
        return (
            "<h2>Fault schedule</h2><div class=sub>Drawn from the seed (every SDK meets the same); planned after the "
            "wave starts, applied and healed since the first enqueue, in seconds.</div><table class=facts><thead><tr>"
            "<th>#</th><th>fault</th><th>settings</th><th>planned at</th><th>for</th><th>applied</th><th>healed</th>"
            f"</tr></thead><tbody>{lines}</tbody></table>"
        )
    planned = cell.get("properties", {}).get("fault_schedule")
    return f"<h2>Fault schedule</h2><pre>{_e(planned)}</pre>" if planned else ""


SCHEDULE_KEYS = ("fault", "start_s", "duration_s", "applied", "healed")


def _tuning_html(sdk: dict[str, Any] | None) -> str:
    if not sdk or sdk.get("error") or sdk.get("language") == "sql":
        return ""
    if not sdk["tuning"]:
        return "<h2>Tuning</h2><div class=sub>No setting changed from the SDK's defaults.</div>"
    rows = "".join(
        f"<tr><td class=row>{_e(t['name'])}</td><td>{_e(t['default'])}</td><td>{_e(t['value'])}</td>"
        f"<td>{_e(t['why'])}</td><td>{_e(t['source'])}</td></tr>"
        for t in sdk["tuning"]
    )
    return (
        f"<h2>Tuning</h2><div class=sub>Settings the driver changes from {_e(sdk['name'])} {_e(sdk['version'])}'s "
        "defaults.</div><table class=facts><thead><tr><th>setting</th><th>default</th><th>value</th><th>why</th>"
        f"<th>source</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def plotted(cell: dict[str, Any], kept: dict[str, Any]) -> bool:
    """Whether the cell's page gets its timeline: every run under faults, and every cell that did
    not pass; a passing run without faults would cost the report a plot (~0.1 s) for a flat line."""
    return bool(kept.get("faults")) or cell["verdict"] not in ("pass", "n/a")


def page(
    cell: dict[str, Any],
    row: dict[str, Any],
    sdk: dict[str, Any] | None,
    finding: dict[str, Any] | None,
    kept: dict[str, Any] | None,
) -> str:
    """One cell's page; `kept` is its evidence, when the scenario left one."""
    verdict = cell["verdict"]
    why = cell.get("message", "")  # what the checker said of this run; the finding is shown below
    if finding and verdict == "known":
        why = f"as {finding['id']} says ({finding['kind']}): " + (why or "it passed this run (an intermittent finding)")
    where = cell["sdk"] + ("" if cell["topology"] == "direct" else f" @ {cell['topology']}")
    props = cell.get("properties", {})
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{_e(row['title'])} × {_e(where)}</title><style>{CSS}{PAGE_CSS}</style></head><body>",
        '<div class=sub><a href="../index.html">← the matrix</a></div>',
        f"<h1>{_e(row['title'])} × {_e(where)}</h1><div class=sub><code>{_e(cell['row'])}</code></div>",
        f'<div><span class=verdict style="background:{COLOUR[verdict]}">{SYMBOL[verdict]} {_e(verdict)}</span>'
        + (f" in {cell['duration_s']:.1f} s" if cell.get("duration_s") is not None else "")
        + (f" · was {_e(cell['changed_from'])} in the baseline" if cell.get("changed_from") else "")
        + "</div>",
        f"<h2>Why</h2><pre>{_e(why or 'every property it judges holds')}</pre>",
    ]
    if row.get("judges"):
        parts.append(f"<h2>What it judges</h2><p>{_e(row['judges'])}</p>")
    if finding:
        parts.append(_finding_html(finding))
    if kept and not plotted(cell, kept):
        parts.append(
            "<h2>Timeline</h2><div class=sub>Not drawn for a passing cell without faults (the report draws the "
            f"cells a reader has to look at): {kept['enqueued']} enqueued, {kept['executions']} executions.</div>"
        )
    elif kept:  # a wave that ran nothing still shows its fault windows over a flat line
        recovery = kept.get("recovery_s", props.get("recovery_s"))  # the evidence's own run first
        recovered = float(recovery) if recovery not in (None, "", "None") else None
        parts.append(
            "<h2>Timeline</h2><div class=sub>Completions per second and enqueue→start latency; each fault window "
            "shaded and numbered, its heal dashed, the recovery (first success after the last heal) solid."
            f" {kept['enqueued']} enqueued, {kept['executions']} executions.</div>"
            f"<div class=plot>{plots.drawn(plots.timeline, kept, recovered)}</div>"
        )
    if kept:
        parts.append(_witnesses_html(kept))
    elif cell["suite"] in ("e2e", "interop", "chaos"):
        parts.append("<h2>Witnesses</h2><div class=sub>This scenario left no evidence file for this run.</div>")
    parts.append(_schedule_html(cell, kept))
    if kept and kept.get("worker_errors"):
        parts.append("<h2>Workers' error lines</h2><pre>" + _e("\n".join(kept["worker_errors"])) + "</pre>")
    if cell.get("replay"):
        parts.append(f"<h2>Replay</h2><pre>{_e(cell['replay'])}</pre>")
    if props:
        parts.append("<h2>Figures</h2>" + _facts(sorted(props.items())))
    parts.append(_tuning_html(sdk))
    if cell.get("log"):
        parts.append(f'<h2>Log</h2><a href="../{_e(cell["log"])}">{_e(cell["log"])}</a>')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_all(out: Path, matrix: dict[str, Any]) -> tuple[int, list[str]]:
    """Every cell's page under out/cells/ (an earlier run's pages go first), side by side in
    PLOTTERS processes: the timelines are most of a report's time. Returns how many, and why
    each page that could not be made was not (it says so in its place)."""
    folder = out / "cells"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rows = {r["id"]: r for r in matrix["rows"]}
    sdks = {s["name"]: s for s in matrix["sdks"]}
    findings = {f["key"]: f for f in matrix.get("findings", [])}
    tasks = [
        (out, cell, rows[cell["row"]], sdks.get(cell["sdk"]), findings.get(cell.get("finding", "")))
        for cell in matrix["cells"]
    ]
    with ProcessPoolExecutor(max_workers=PLOTTERS) as pool:
        problems = [p for p in pool.map(_write, tasks, chunksize=16) if p]
    return len(tasks), problems


PLOTTERS = min(4, os.cpu_count() or 1)


def _write(task: tuple[Path, dict[str, Any], dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]) -> str:
    """One page; evidence a page did not expect costs that page's content, never the report."""
    out, cell, row, sdk, finding = task
    try:
        kept = evidence.load(out / cell["evidence"]) if cell.get("evidence") else None
        text = page(cell, row, sdk, finding, kept)
        problem = ""
    except Exception as exc:  # any harness bug here must leave the other pages standing
        problem = f"{cell['page']}: {type(exc).__name__}: {exc}"
        text = (
            f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(cell['row'])}</title></head><body>"
            f'<a href="../index.html">← the matrix</a><h1>{_e(cell["row"])} × {_e(cell["sdk"])}</h1>'
            f"<p>verdict: {_e(cell['verdict'])}</p><p>The report could not make this page: {_e(problem)}</p>"
            "</body></html>"
        )
    (out / cell["page"]).write_text(text)
    return problem


def attach_evidence(out: Path, cells: list[dict[str, Any]]) -> int:
    """Each cell's evidence file (relative to out), when one of this run's scenarios left it:
    same cell, same seed. Returns how many cells have one."""
    found: dict[tuple[str, str, str], tuple[str, str]] = {}
    for file in sorted(out.glob("evidence/*/*.json")):
        kept = evidence.load(file)
        if kept is not None:
            key = (kept["cell"].get("row", ""), kept["cell"].get("sdk", ""), kept["cell"].get("topology", ""))
            found[key] = (str(file.relative_to(out)), str(kept.get("seed")))
    attached = 0
    for cell in cells:
        path, seed = found.get((cell["row"], cell["sdk"], cell["topology"]), ("", ""))
        if path and seed == str(cell.get("properties", {}).get("seed")):
            cell["evidence"] = path
            attached += 1
    return attached


def showcase(cells: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The chaos cell whose page the report pictures: one with evidence, the worst verdict first
    (a failing wave shows its witnesses), else any chaos cell."""
    chaos = [c for c in cells if c["suite"] == "chaos"]
    order = {"fail": 0, "known": 1, "flaky": 2, "error": 3, "pass": 4, "n/a": 5}
    return min(chaos, key=lambda c: (not c.get("evidence"), order.get(c["verdict"], 9), c["row"]), default=None)
