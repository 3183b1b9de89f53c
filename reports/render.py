"""matrix.json -> matrix.md and a self-contained index.html (no network, no scripts needed)."""

from __future__ import annotations

import html
import re
import statistics
from collections import Counter, defaultdict
from typing import Any

from reports import plots, run_history

VERDICTS = ("pass", "known", "fail", "error", "flaky", "n/a")
SYMBOL = {"pass": "✔", "known": "◆", "fail": "✘", "error": "⚠", "flaky": "≈", "n/a": "·"}
COLOUR = {
    "pass": "#2e7d32",
    "known": "#0277bd",
    "fail": "#c62828",
    "error": "#6a1b9a",
    "flaky": "#ef6c00",
    "n/a": "#9e9e9e",
}
BADGE = {"bug": "bug", "documented-limit": "limit", "default-hazard": "hazard", "unreleased-fix": "unreleased"}
FOLDED = 20  # a longer list of deviations starts folded, so the matrix stays in view
FAULTED = ("fault_schedule", "jobs_per_s_snapshot_held")  # a chaos cell's figures once its fault was applied
CHAOS_FIGURES = ("lost", "duplicated", "stuck", "recovery_s")
CONTRACT = (  # what the dashboard shows of a contract, each part beside its source
    ("delivery", "delivery", "delivery_source"),
    ("crash recovery", "recovery", "recovery_source"),
    ("retry / backoff", "retry_backoff", "retry_source"),
    ("connections outside the pool", "pool_extra_connections", "pool_source"),
    ("delay granularity (s)", "delay_granularity_s", "delay_source"),
    ("a job longer than its lease", "long_job", "long_job_source"),
    ("periodic jobs", "periodic", "periodic_source"),
)
Line = tuple[dict[str, Any], str, str]  # a table line: the row, a topology, its group's heading


def _index(matrix: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(c["row"], c["sdk"], c["topology"]): c for c in matrix["cells"]}


def _lines(matrix: dict[str, Any]) -> list[Line]:
    """One table line per row and topology, grouped by suite and topology: the E2E catalog
    through PgBouncer is its own block under the direct one ("e2e @ pgbouncer")."""
    topologies: dict[str, set[str]] = defaultdict(set)
    for cell in matrix["cells"]:
        topologies[cell["row"]].add(cell["topology"])
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in matrix["rows"]:
        for topology in sorted(topologies[row["id"]], key=lambda t: (t != "direct", t)):
            groups.setdefault((row["suite"], topology), []).append(row)
    return [
        (row, topology, suite if topology == "direct" else f"{suite} @ {topology}")
        for (suite, topology), rows in sorted(groups.items(), key=lambda g: _suite_order(matrix, g[0]))
        for row in rows
    ]


def _suite_order(matrix: dict[str, Any], group: tuple[str, str]) -> tuple[int, bool, str]:
    suites = list(dict.fromkeys(r["suite"] for r in matrix["rows"]))
    return suites.index(group[0]), group[1] != "direct", group[1]


def _findings(matrix: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["key"]: f for f in matrix.get("findings", [])}


def anchor(key: str) -> str:
    return "finding-" + re.sub(r"[^A-Za-z0-9_-]", "-", key)


def totals(
    matrix: dict[str, Any],
) -> tuple[dict[str, Counter[str]], dict[tuple[str, str], Counter[str]], Counter[str]]:
    """Per SDK, per row and topology, and overall (the other results too: nothing is left out of the count)."""
    per_sdk: dict[str, Counter[str]] = defaultdict(Counter)
    per_row: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    overall: Counter[str] = Counter()
    for cell in matrix["cells"]:
        per_sdk[cell["sdk"]][cell["verdict"]] += 1
        per_row[(cell["row"], cell["topology"])][cell["verdict"]] += 1
        overall[cell["verdict"]] += 1
    overall.update(o["verdict"] for o in matrix.get("other", []))
    return per_sdk, per_row, overall


def counts(counter: Counter[str]) -> str:
    return " ".join(f"{SYMBOL[v]}{counter[v]}" for v in VERDICTS if counter[v])


def summary_line(overall: Counter[str]) -> str:
    return ", ".join(f"{overall[v]} {v}" for v in VERDICTS if overall[v]) or "no cells"


def _extra(cell: dict[str, Any]) -> str:
    props = cell.get("properties", {})
    if cell["suite"] != "chaos":
        return ""
    return " · ".join(f"{k} {props[k]}" for k in CHAOS_FIGURES if k in props)


def badge(finding: dict[str, Any]) -> str:
    """The finding's kind at a glance, with the measured rate of an intermittent one."""
    return BADGE.get(finding["kind"], str(finding["kind"])) + (f" {finding['rate']}" if finding.get("rate") else "")


def _why(cell: dict[str, Any], findings: dict[str, dict[str, Any]]) -> str:
    finding = findings.get(cell.get("finding", ""))
    if finding is not None and cell["verdict"] == "known":
        return f"{badge(finding)}: {finding['summary']}"
    return str(cell.get("message", ""))


# -- matrix.md ---------------------------------------------------------------------------


def _md_cell(cell: dict[str, Any] | None, findings: dict[str, dict[str, Any]]) -> str:
    if cell is None:
        return ""
    finding = findings.get(cell.get("finding", ""))
    if finding is not None and cell["verdict"] == "known":
        return f"[◆ {badge(finding)}](#{anchor(finding['key'])})"
    text = SYMBOL[cell["verdict"]] + (f" {_extra(cell)}" if _extra(cell) else "")
    return text + (f" [{badge(finding)}](#{anchor(finding['key'])})" if finding is not None else "")


def _md_findings(matrix: dict[str, Any]) -> list[str]:
    if not matrix.get("findings"):
        return []
    out = ["", "## Findings", ""]
    for f in matrix.get("findings", []):
        out += [
            f'<a id="{anchor(f["key"])}"></a>',
            f"- **{f['key']}** — **{badge(f)}** ({f['kind']}) · `{f['sdk']}` {f['version']} · expected {f['verdict']}"
            + (f" · intermittent, fails {f['rate']}" if f.get("rate") else ""),
            f"  - {f['summary']}",
            "  - rows: " + ", ".join(f"`{r}`" for r in f["rows"]),
            *(f"  - evidence: {e}" for e in f["evidence"]),
            f"  - workaround: {f['workaround'] or 'none known'}",
            f"  - reproduce: `{f['reproduce']}`",
            f"  - cells this run: {len(f['cells'])}",
        ]
    return out


def earlier_note(run: dict[str, Any]) -> str:
    """Says which results an earlier run left (the main job ran only some sessions)."""
    earlier = run.get("earlier_junit")
    if not earlier:
        return ""
    return (
        f"{len(earlier['files'])} JUnit file(s) come from an earlier run (older than this job's start,"
        f" {earlier['job_started']}): {', '.join(earlier['files'])}"
    )


def markdown(matrix: dict[str, Any], deviations: list[dict[str, Any]]) -> str:
    cells = _index(matrix)
    findings = _findings(matrix)
    sdks = [s["name"] for s in matrix["sdks"]]
    per_sdk, per_row, overall = totals(matrix)
    run = matrix["run"]
    out = [
        f"# Gauntlet matrix — run {run['id']}",
        "",
        f"{summary_line(overall)}. PostgreSQL {run.get('postgres_version', '?')}, "
        f"commit {run.get('git_sha', '?')[:10]}, started {run.get('started', '?')}.",
        "",
        "Legend: " + " ".join(f"{SYMBOL[v]} {v}" for v in VERDICTS) + " — a known cell names its finding's kind: "
        "bug, limit (documented), hazard (a default), unreleased (fixed upstream).",
        "",
    ]
    if earlier := earlier_note(run):
        out += [f"**{earlier}**", ""]
    out += ["| scenario | " + " | ".join(sdks) + " | row |", "|" + "---|" * (len(sdks) + 2)]
    group = None
    for row, topology, heading in _lines(matrix):
        if heading != group:
            group = heading
            out.append(f"| **{heading}** |" + " |" * (len(sdks) + 1))
        line = [f"`{row['id']}`", *(_md_cell(cells.get((row["id"], sdk, topology)), findings) for sdk in sdks)]
        line.append(counts(per_row[(row["id"], topology)]))
        out.append("| " + " | ".join(line) + " |")
    out.append("| **total** | " + " | ".join(counts(per_sdk[s]) for s in sdks) + " | |")
    notable = [c for c in matrix["cells"] if c["verdict"] in ("fail", "error", "flaky", "known")]
    if notable:
        out += ["", "## Notes", ""]
        for cell in sorted(notable, key=lambda c: (c["verdict"], c["row"], c["sdk"])):
            why = _why(cell, findings)[:300].replace("\n", " ")
            out.append(f"- {SYMBOL[cell['verdict']]} `{cell['row']}` × **{cell['sdk']}** — {why}")
    if matrix.get("other"):
        out += ["", "## Other results", "", "Results no column holds (no Gauntlet properties, or no such SDK).", ""]
        out += ["| file | suite | case | verdict | message |", "|---|---|---|---|---|"]
        out += [
            f"| {o['file']} | {o['suite']} | `{o['name']}` | {SYMBOL[o['verdict']]} {o['verdict']} | "
            + o["message"][:200].replace("\n", " ").replace("|", "\\|")
            + " |"
            for o in matrix["other"]
        ]
    out += _md_findings(matrix)
    if deviations:
        out += ["", "## Deviations", ""]
        out += [
            f"- **{d['kind']}**: `{d['row']}` × {d['sdk']} is {d['verdict'] or '-'} — {d['detail']}" for d in deviations
        ]
    return "\n".join(out) + "\n"


# -- index.html --------------------------------------------------------------------------

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#212121}
h1{font-size:20px;margin:0 0 4px} h2{font-size:17px;margin:24px 0 4px} h3{font-size:15px;margin:14px 0 2px}
.sub{color:#616161;margin-bottom:16px}
.legend span,.tot span{display:inline-block;margin-right:10px}
table{border-collapse:collapse;margin-top:12px} th,td{border:1px solid #e0e0e0;padding:3px 6px;text-align:center}
th.row,td.row{text-align:left;font-family:ui-monospace,monospace;font-size:12px;white-space:nowrap}
thead th{background:#fafafa;position:sticky;top:0} .sys th{background:#eeeeee} th.broken{background:#e1bee7}
tr.suite td{background:#f5f5f5;font-weight:600;text-align:left}
td.c{min-width:58px;font-weight:600;color:#fff} td.c a{color:#fff;text-decoration:none}
td.c small{font-weight:400;opacity:.85}
td.changed{outline:3px solid #ffd600;outline-offset:-3px} .dev{color:#c62828} .bench td{text-align:right}
table.facts td{text-align:left;vertical-align:top} .badge{font-weight:600;color:#fff;background:#0277bd;
padding:0 4px;border-radius:3px} .finding{margin:10px 0} code{font-size:12px}
td.row code.id{color:#757575;font-size:11px} td.row .t{font:13px system-ui,sans-serif}
table.glance td{text-align:right} table.glance td.row{text-align:left}
table.glance td.none{text-align:center;color:#757575}
table.glance td.bad{color:#c62828;font-weight:600} table.glance td.good{color:#2e7d32}
.plot svg{max-width:100%;height:auto}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _cell_html(cell: dict[str, Any] | None, findings: dict[str, dict[str, Any]]) -> str:
    if cell is None:
        return "<td></td>"
    verdict = cell["verdict"]
    finding = findings.get(cell.get("finding", ""))
    title = _why(cell, findings) or verdict
    if cell.get("changed_from"):
        title = f"was {cell['changed_from']} in the baseline. {title}"
    small = []
    if cell.get("properties", {}).get("assertions"):
        small.append(f"{cell['properties']['assertions']} assertions")
    elif cell.get("duration_s") is not None:
        small.append(f"{cell['duration_s']:.1f}s")
    if _extra(cell):
        small.append(_e(_extra(cell)))
    if strip := run_history.strip_html(cell.get("history"), COLOUR):  # its last runs' verdicts
        small.append(strip)
    label = f"{SYMBOL[verdict]} {verdict}"
    if finding is not None:  # the label names the finding's kind; a small link goes to the finding below
        if verdict == "known":
            label = f"{SYMBOL[verdict]} {_e(badge(finding))}"
        mark = "finding" if verdict == "known" else _e(badge(finding))  # e.g. an intermittent one that passed
        small.append(f'<a href="#{anchor(finding["key"])}">{mark}</a>')
    label = f'<a href="{_e(cell["page"])}">{label}</a>'  # the cell's page: evidence, log, replay
    classes = "c changed" if cell.get("changed_from") else "c"
    return (
        f'<td class="{classes}" style="background:{COLOUR[verdict]}" title="{_e(title[:600])}">'
        + label
        + "".join(f"<br><small>{s}</small>" for s in small)
        + "</td>"
    )


def _matrix_html(matrix: dict[str, Any]) -> str:
    cells = _index(matrix)
    findings = _findings(matrix)
    sdks = matrix["sdks"]
    per_sdk, per_row, _ = totals(matrix)
    systems: list[tuple[str, int]] = []
    for sdk in sdks:
        if systems and systems[-1][0] == sdk["system"]:
            systems[-1] = (sdk["system"], systems[-1][1] + 1)
        else:
            systems.append((sdk["system"], 1))
    parts = [
        "<table><thead><tr class=sys><th></th>"
        + "".join(f"<th colspan={n}>{_e(system)}</th>" for system, n in systems)
        + "<th></th></tr>",
        "<tr><th class=row>scenario</th>"
        + "".join(
            f'<th class=broken title="{_e(s["error"])}">{_e(s["name"])}<br><small>⚠ broken</small></th>'
            if s.get("error")
            else f'<th title="{_e(s["language"])} {_e(s["version"])}">{_e(s["name"])}<br>'
            f"<small>{_e(s['language'])}</small></th>"
            for s in sdks
        )
        + "<th>row</th></tr></thead><tbody>",
    ]
    group = None
    for row, topology, heading in _lines(matrix):
        if heading != group:
            group = heading
            parts.append(f"<tr class=suite><td colspan={len(sdks) + 2}>{_e(heading)}</td></tr>")
        parts.append(
            f'<tr><td class=row title="{_e(row.get("judges") or row["title"])}"><span class=t>{_e(row["title"])}</span>'
            + ("" if row["id"].endswith(row["title"]) else f"<br><code class=id>{_e(row['id'])}</code>")
            + "</td>"
            + "".join(_cell_html(cells.get((row["id"], s["name"], topology)), findings) for s in sdks)
            + f"<td>{_e(counts(per_row[(row['id'], topology)]))}</td></tr>"
        )
    parts.append(
        "<tr><td class=row><b>total</b></td>"
        + "".join(f"<td>{counts(per_sdk[s['name']])}</td>" for s in sdks)
        + "<td></td></tr></tbody></table>"
    )
    return "\n".join(parts)


def _other_html(other: list[dict[str, Any]]) -> str:
    if not other:
        return ""
    rows = "".join(
        f"<tr><td class=row>{_e(o['file'])}</td><td class=row>{_e(o['suite'])}</td><td class=row>{_e(o['name'])}</td>"
        f'<td class=c style="background:{COLOUR[o["verdict"]]}">{SYMBOL[o["verdict"]]} {_e(o["verdict"])}</td>'
        f"<td class=row>{_e(o['message'][:300])}</td></tr>"
        for o in other
    )
    return (
        "<h2>Other results</h2><div class=sub>Results no column holds: cases without Gauntlet properties "
        "(foreign producers), cases of an SDK not in the catalog, files nobody can place.</div>"
        "<table class=facts><thead><tr><th>file</th><th>suite</th><th>case</th><th>verdict</th><th>message</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _findings_html(findings: list[dict[str, Any]]) -> str:
    if not findings:
        return ""
    parts = ["<h2>Findings</h2>"]
    for f in findings:
        evidence = "".join(f"<li>{_e(e)}</li>" for e in f["evidence"])
        cells = ", ".join(_e(c) for c in f["cells"]) or "none this run"
        parts.append(
            f'<div class=finding id="{anchor(f["key"])}"><span class=badge>{_e(badge(f))}</span> '
            f"<b>{_e(f['key'])}</b> — {_e(f['summary'])}<table class=facts>"
            f"<tr><td>kind</td><td>{_e(f['kind'])}</td></tr>"
            f"<tr><td>SDK, version</td><td><code>{_e(f['sdk'])}</code> {_e(f['version'])}</td></tr>"
            f"<tr><td>rows</td><td>{', '.join(f'<code>{_e(r)}</code>' for r in f['rows'])}</td></tr>"
            f"<tr><td>expected verdict</td><td>{_e(f['verdict'])}"
            + (f" — intermittent, fails {_e(f['rate'])}" if f.get("rate") else "")
            + "</td></tr>"
            f"<tr><td>evidence</td><td><ul>{evidence}</ul></td></tr>"
            f"<tr><td>workaround</td><td>{_e(f['workaround'] or 'none known')}</td></tr>"
            f"<tr><td>reproduce</td><td><code>{_e(f['reproduce'])}</code></td></tr>"
            f"<tr><td>cells this run</td><td>{cells}</td></tr></table></div>"
        )
    return "".join(parts)


def _contracts_html(systems: list[dict[str, Any]]) -> str:
    if not systems:
        return ""
    parts = ["<h2>Contracts</h2><div class=sub>What each system promises; scenarios judge by it.</div>"]
    for system in systems:
        contract = system["contract"]
        rows = "".join(
            f"<tr><td>{_e(label)}</td><td>{_e(contract[key])}</td><td>{_e(contract[source])}</td></tr>"
            for label, key, source in CONTRACT
            if contract.get(key) not in (None, "")  # a part the system does not have (no periodic jobs)
        )
        bound = f"{contract['recovery_interval_s']}s" + (
            " after the lease" if contract["recovery_follows_lease"] else ""
        )
        rows += f"<tr><td>worst-case recovery</td><td>{_e(bound)}</td><td></td></tr>"
        parts.append(f"<h3>{_e(system['name'])}</h3><table class=facts>{rows}</table>")
    return "".join(parts)


def _tuning_html(sdks: list[dict[str, Any]]) -> str:
    parts = [
        "<h2>Tuning</h2><div class=sub>Every setting a driver changes from its SDK's default; one marked"
        " <i>only @ pgbouncer</i> is the SDK's documented setting for poolers, applied in that topology only.</div>"
    ]
    for sdk in sdks:
        if sdk.get("error") or sdk["language"] == "sql":
            continue
        if not sdk["tuning"]:
            parts.append(f"<h3>{_e(sdk['name'])}</h3><div class=sub>no setting changed from the SDK's defaults</div>")
            continue
        rows = "".join(
            f"<tr><td class=row>{_e(t['name'])}"
            + (f" <small>(only @ {_e(t['topology'])})</small>" if t.get("topology") else "")
            + f"</td><td>{_e(t['default'])}</td><td>{_e(t['value'])}</td>"
            f"<td>{_e(t['why'])}</td><td>{_e(t['source'])}</td></tr>"
            for t in sdk["tuning"]
        )
        parts.append(
            f"<h3>{_e(sdk['name'])} <small>{_e(sdk['version'])}</small></h3><table class=facts><thead><tr>"
            "<th>setting</th><th>default</th><th>value</th><th>why</th><th>source</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    return "".join(parts)


def _figure(value: Any) -> float | None:
    """A cell's recorded figure (JUnit properties are strings); None when absent or None."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def glance(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    """Per SDK, what its chaos cells say: jobs lost, run twice (duplicates, overlaps), waves
    that recovered after the heal and how fast, and its findings by kind (over all its cells)."""
    findings = _findings(matrix)
    lines = []
    for sdk in matrix["sdks"]:
        if sdk.get("error") or sdk["language"] == "sql":
            continue
        mine = [c for c in matrix["cells"] if c["sdk"] == sdk["name"]]
        judged = [c for c in mine if c["suite"] == "chaos" and "lost" in c.get("properties", {})]
        figures = [c["properties"] for c in judged if any(k in c["properties"] for k in FAULTED)]
        recoveries = sorted(r for p in figures if (r := _figure(p.get("recovery_s"))) is not None)
        kinds = Counter(findings[k]["kind"] for k in {c.get("finding") for c in mine} if k in findings)
        lines.append(
            {
                "sdk": sdk["name"],
                "judged": len(judged),
                "faulted": len(figures),
                "lost": int(sum(_figure(p.get("lost")) or 0 for p in figures)),
                "losing": sum(1 for p in figures if _figure(p.get("lost"))),
                "twice": int(
                    sum((_figure(p.get("duplicated")) or 0) + (_figure(p.get("overlaps")) or 0) for p in figures)
                ),
                "recovered": sum(1 for p in figures if "recovery_s" in p and _figure(p["recovery_s"]) is not None),
                "waves": sum(1 for p in figures if "fault_schedule" in p),
                "worst_s": recoveries[-1] if recoveries else None,
                "median_s": statistics.median(recoveries) if recoveries else None,
                "kinds": dict(sorted(kinds.items())),
                "verdicts": totals(matrix)[0][sdk["name"]],
            }
        )
    return lines


def glance_html(matrix: dict[str, Any]) -> str:
    lines = glance(matrix)
    if not any(line["judged"] for line in lines):
        return ""
    rows = []
    for g in lines:
        kinds = " · ".join(f"{BADGE.get(k, k)} {n}" for k, n in g["kinds"].items()) or "none"
        seconds = "—" if g["worst_s"] is None else f"{g['worst_s']:.2f} / {g['median_s']:.2f}"
        lost = f"yes: {g['lost']} in {g['losing']} waves" if g["lost"] else "no"
        twice = f"yes: {g['twice']}" if g["twice"] else "no"
        judged = (
            f"<td class={'bad' if g['lost'] else 'good'}>{lost}</td>"
            f"<td class={'bad' if g['twice'] else 'good'}>{twice}</td>"
            f"<td class={'bad' if g['recovered'] < g['waves'] else 'good'}>{g['recovered']} of {g['waves']}</td>"
            f"<td>{seconds}</td>"
            if g["faulted"]
            else "<td colspan=4 class=none>nothing ran under a fault</td>"
        )
        rows.append(
            f"<tr><td class=row><b>{_e(g['sdk'])}</b></td><td>{g['faulted']} of {g['judged']}</td>{judged}"
            f"<td class=row>{_e(kinds)}</td><td>{_e(counts(g['verdicts']))}</td></tr>"
        )
    return (
        "<h2>Guarantees at a glance</h2><div class=sub>Under faults (the chaos rows): did it lose acknowledged "
        "jobs, run any twice (duplicates and overlapping runs, allowed by an at-least-once contract), did work "
        "resume after the heal and how fast (first success after the last heal); its findings by kind over all "
        "its cells. Only the chaos cells whose workers reached a fault count (a wave that ran nothing before its "
        "fault says nothing about faults: its cell says why).</div><table class=glance><thead><tr><th>SDK</th>"
        "<th>chaos cells that reached a fault</th><th>lost jobs</th>"
        "<th>ran twice</th><th>recovered</th><th>recovery worst / median s</th><th>findings</th>"
        f"<th>all cells</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def dashboard(matrix: dict[str, Any], deviations: list[dict[str, Any]], bench: dict[str, Any] | None = None) -> str:
    run = matrix["run"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Gauntlet matrix {_e(run['id'])}</title><style>{CSS}</style></head><body>",
        "<h1>Gauntlet — what each queue guarantees</h1>",
        f"<div class=sub>run {_e(run['id'])} · started {_e(run.get('started', ''))} · "
        f"commit {_e(str(run.get('git_sha', ''))[:10])} · PostgreSQL {_e(run.get('postgres_version', ''))}"
        f" · seed {_e(run.get('seed', ''))}</div>",
        glance_html(matrix),
        "<h2>The matrix</h2><div class=tot><b>" + _e(summary_line(totals(matrix)[2])) + "</b></div>",
        f"<div class=warn>{_e(earlier_note(run))}</div>" if earlier_note(run) else "",
        "<div class=legend>"
        + "".join(f'<span><b style="color:{COLOUR[v]}">{SYMBOL[v]}</b> {v}</span>' for v in VERDICTS)
        + "<span>◆ names its finding's kind: bug, limit (documented), hazard (a default), "
        "unreleased (fixed upstream)</span></div>",
    ]
    if deviations:
        parts.append(
            f"<details class=dev{' open' if len(deviations) <= FOLDED else ''}><summary><b>{len(deviations)} "
            "deviation(s)</b></summary><ul>"
            + "".join(
                f"<li>{_e(d['kind'])}: <code>{_e(d['row'])}</code> × {_e(d['sdk'])} "
                f"is {_e(d['verdict'] or '-')} — {_e(d['detail'])}</li>"
                for d in deviations
            )
            + "</ul></details>"
        )
    parts += [
        _matrix_html(matrix),
        _other_html(matrix.get("other", [])),
        _findings_html(matrix.get("findings", [])),
        _contracts_html(matrix.get("systems", [])),
        _tuning_html(matrix["sdks"]),
    ]
    if bench:
        parts.append(bench_html(bench))
    parts.append("</body></html>")
    return "\n".join(parts)


def bench_page(bench: dict[str, Any]) -> str:
    """bench.html, beside bench.json: the bench's pictures and table on their own page (no
    network, like every page here), for a bench run without a main job after it."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Gauntlet bench</title>"
        f"<style>{CSS}</style></head><body><h1>Gauntlet — the bench</h1>{bench_html(bench)}</body></html>"
    )


def bench_html(bench: dict[str, Any]) -> str:
    """A real bench run's figures (bench.json of `nox -s bench`): when, on what, with which
    settings; per SDK its jobs/s at each concurrency with its ratio to the raw-SQL limit at
    the same concurrency, its enqueue rate (and batched, where measured), latency and the
    harness's own cost (recording on vs off; for Python drivers also µs per history line and
    its share of a job's time)."""
    settings = bench.get("settings") or {}
    levels = [str(c) for c in settings.get("concurrency", [])]
    if not levels:
        return ""  # an older or partial bench.json: nothing trustworthy to show

    def number(value: Any, digits: int = 0) -> str:
        return "—" if value is None else f"{value:,.{digits}f}"

    def median(figure: Any) -> Any:
        return figure.get("median") if isinstance(figure, dict) else None

    def recording_cell(figures: dict[str, Any]) -> str:
        """The on/off median (its pairs' range below it); a Python driver's µs per line and share."""
        cell = number(figures.get("history_overhead_pct"), 1)
        recording = figures.get("recording") or {}
        spread = recording.get("on_off_pct")
        if isinstance(spread, dict) and spread.get("min") is not None:
            cell += f"<br><small>{number(spread['min'], 1)} … {number(spread.get('max'), 1)}</small>"
        if recording.get("us_per_line") is not None:
            cell += (
                f"<br><small>{number(recording['us_per_line'], 1)} µs/line = "
                f"{number(recording.get('share_pct'), 1)} % of a job</small>"
            )
        return cell

    limit = bench.get("limit", {})
    head = "".join(f"<th>c={c}</th>" for c in levels)
    lines = [
        "<tr><td class=row>raw SQL (the limit)</td><td>—</td>"
        + "".join(f"<td>{number(median(limit.get(f'c{c}_batch1')))}</td>" for c in levels)
        + "<td>—</td><td>—</td></tr>"
    ]
    for name, figures in sorted(bench.get("sdks", {}).items()):
        process, ratio = figures.get("process") or {}, figures.get("ratio") or {}
        cells = "".join(
            f"<td>{number(median(process.get(c)))}<br><small>{number(ratio.get(c), 2)}×</small></td>" for c in levels
        )
        latency = figures.get("latency") or {}
        enqueue = number(median(figures.get("enqueue")))
        if median(figures.get("enqueue_batch")) is not None:
            batched = number(median(figures["enqueue_batch"]))
            enqueue += f"<br><small>batch {settings.get('batch_size', '?')}: {batched}</small>"
        lines.append(
            f"<tr><td class=row>{html.escape(name)}</td><td>{enqueue}</td>{cells}"
            f"<td>{number(latency.get('p50_ms'), 1)} / {number(latency.get('p99_ms'), 1)}</td>"
            f"<td>{recording_cell(figures)}</td></tr>"
        )
    idle = [
        n for n, f in sorted(bench.get("sdks", {}).items()) if not any(map(median, (f.get("process") or {}).values()))
    ]
    unplotted = (
        f"<div class=sub>No processing figures (insert-only, or a known error): {html.escape(', '.join(idle))}</div>"
        if idle
        else ""
    )
    machine = bench.get("machine") or {}
    about = (
        f"run {html.escape(str(bench.get('date', '?')))} on {machine.get('cpus', '?')} × "
        f"{html.escape(str(machine.get('cpu', '?')))}, {machine.get('memory_gib', '?')} GiB; "
        f"{settings.get('jobs', '?')} jobs per measurement, median of {settings.get('runs', '?')} runs"
    )
    return (
        f"<h2>Bench</h2><p>{about}. Processing jobs/s from the first job taken to the last done, and its ratio to a "
        "raw-SQL <code>FOR UPDATE SKIP LOCKED</code> loop at the same concurrency. Recording cost: the median "
        f"(and range) over {settings.get('cost_pairs', settings.get('runs', '?'))} interleaved pairs of runs "
        f"with and without the history at c={settings.get('cost_at', '?')}, in % of the run without; for "
        "Python drivers also the measured cost of one history line and so its share of a job's time "
        "(2 lines per job at the measured jobs/s).</p>"
        "<h3>Processing throughput against concurrency</h3>"
        f"<div class=plot>{plots.drawn(plots.bench_throughput, bench)}</div>"
        f"{unplotted}"
        f"<h3>Enqueue → start latency</h3><div class=plot>{plots.drawn(plots.bench_latency, bench)}</div>"
        "<h3>The harness's own cost: recording on vs off</h3>"
        f"<div class=plot>{plots.drawn(plots.bench_cost, bench)}</div>"
        f"<table class=bench><thead><tr><th>SDK</th><th>enqueue/s</th>{head}<th>latency p50 / p99 ms</th>"
        f"<th>recording cost %</th></tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )
