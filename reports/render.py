"""matrix.json -> matrix.md and a self-contained index.html (no network, no scripts needed)."""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from typing import Any

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
CHAOS_FIGURES = ("lost", "duplicated", "stuck", "recovery_s")


def _index(matrix: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["row"], c["sdk"]): c for c in matrix["cells"]}


def totals(matrix: dict[str, Any]) -> tuple[dict[str, Counter[str]], dict[str, Counter[str]], Counter[str]]:
    per_sdk: dict[str, Counter[str]] = defaultdict(Counter)
    per_row: dict[str, Counter[str]] = defaultdict(Counter)
    overall: Counter[str] = Counter()
    for cell in matrix["cells"]:
        per_sdk[cell["sdk"]][cell["verdict"]] += 1
        per_row[cell["row"]][cell["verdict"]] += 1
        overall[cell["verdict"]] += 1
    return per_sdk, per_row, overall


def summary_line(overall: Counter[str]) -> str:
    return ", ".join(f"{overall[v]} {v}" for v in VERDICTS if overall[v]) or "no cells"


def _extra(cell: dict[str, Any]) -> str:
    props = cell.get("properties", {})
    if not str(cell["row"]).startswith("chaos/"):
        return ""
    parts = [f"{k} {props[k]}" for k in CHAOS_FIGURES if k in props]
    return " · ".join(parts)


def markdown(matrix: dict[str, Any], deviations: list[dict[str, Any]]) -> str:
    cells = _index(matrix)
    sdks = [s["name"] for s in matrix["sdks"]]
    per_sdk, per_row, overall = totals(matrix)
    out = [
        f"# Gauntlet matrix — run {matrix['run']['id']}",
        "",
        f"{summary_line(overall)}. PostgreSQL {matrix['run'].get('postgres_version', '?')}, "
        f"commit {matrix['run'].get('git_sha', '?')[:10]}, started {matrix['run'].get('started', '?')}.",
        "",
        "Legend: " + " ".join(f"{SYMBOL[v]} {v}" for v in VERDICTS),
        "",
    ]
    header = "| scenario | " + " | ".join(sdks) + " | row |"
    out += [header, "|" + "---|" * (len(sdks) + 2)]
    suite = None
    for row in matrix["rows"]:
        if row["suite"] != suite:
            suite = row["suite"]
            out.append(f"| **{suite}** |" + " |" * (len(sdks) + 1))
        line = [f"`{row['id']}`"]
        for sdk in sdks:
            cell = cells.get((row["id"], sdk))
            line.append(SYMBOL[cell["verdict"]] + (f" {_extra(cell)}" if cell and _extra(cell) else "") if cell else "")
        line.append(" ".join(f"{SYMBOL[v]}{n}" for v, n in per_row[row["id"]].items()))
        out.append("| " + " | ".join(line) + " |")
    out.append(
        "| **total** | "
        + " | ".join(" ".join(f"{SYMBOL[v]}{per_sdk[s][v]}" for v in VERDICTS if per_sdk[s][v]) for s in sdks)
        + " | |"
    )
    notable = [c for c in matrix["cells"] if c["verdict"] in ("fail", "error", "flaky", "known")]
    if notable:
        out += ["", "## Notes", ""]
        for cell in sorted(notable, key=lambda c: (c["verdict"], c["row"], c["sdk"])):
            why = cell.get("expected") or cell.get("message", "")
            out.append(
                f"- {SYMBOL[cell['verdict']]} `{cell['row']}` × **{cell['sdk']}** — {why[:300]}".replace("\n", " ")
            )
    if deviations:
        out += ["", "## Deviations from reports/expectations.toml", ""]
        out += [f"- **{d['kind']}**: `{d['row']}` × {d['sdk']} is {d['verdict']} — {d['detail']}" for d in deviations]
    return "\n".join(out) + "\n"


CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#212121}
h1{font-size:20px;margin:0 0 4px} .sub{color:#616161;margin-bottom:16px}
.legend span,.tot span{display:inline-block;margin-right:10px}
table{border-collapse:collapse;margin-top:12px} th,td{border:1px solid #e0e0e0;padding:3px 6px;text-align:center}
th.row,td.row{text-align:left;font-family:ui-monospace,monospace;font-size:12px;white-space:nowrap}
thead th{background:#fafafa;position:sticky;top:0} .sys th{background:#eeeeee}
tr.suite td{background:#f5f5f5;font-weight:600;text-align:left}
td.c{min-width:58px;font-weight:600;color:#fff} td.c a{color:#fff;text-decoration:none}
td.c small{font-weight:400;opacity:.85}
td.changed{outline:3px solid #ffd600;outline-offset:-3px} .dev{color:#c62828} .bench td{text-align:right}
"""


def _cell_html(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "<td></td>"
    verdict = cell["verdict"]
    title = cell.get("expected") or cell.get("message") or verdict
    if cell.get("changed_from"):
        title = f"was {cell['changed_from']} in the baseline. {title}"
    duration = f"<br><small>{cell['duration_s']:.1f}s</small>" if cell.get("duration_s") is not None else ""
    if cell.get("properties", {}).get("assertions"):
        duration = f"<br><small>{cell['properties']['assertions']} assertions</small>"
    extra = f"<br><small>{html.escape(_extra(cell))}</small>" if _extra(cell) else ""
    label = f"{SYMBOL[verdict]} {verdict}"
    if cell.get("log"):
        label = f'<a href="{html.escape(cell["log"])}">{label}</a>'
    classes = "c changed" if cell.get("changed_from") else "c"
    return (
        f'<td class="{classes}" style="background:{COLOUR[verdict]}" title="{html.escape(title[:600])}">'
        f"{label}{duration}{extra}</td>"
    )


def dashboard(matrix: dict[str, Any], deviations: list[dict[str, Any]], bench: dict[str, Any] | None = None) -> str:
    cells = _index(matrix)
    sdks = matrix["sdks"]
    per_sdk, per_row, overall = totals(matrix)
    systems: list[tuple[str, int]] = []
    for sdk in sdks:
        if systems and systems[-1][0] == sdk["system"]:
            systems[-1] = (sdk["system"], systems[-1][1] + 1)
        else:
            systems.append((sdk["system"], 1))
    run = matrix["run"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Gauntlet matrix {html.escape(str(run['id']))}</title><style>{CSS}</style></head><body>",
        "<h1>Gauntlet — what each queue guarantees</h1>",
        f"<div class=sub>run {html.escape(str(run['id']))} · started {html.escape(str(run.get('started', '')))} · "
        f"commit {html.escape(str(run.get('git_sha', ''))[:10])} · "
        f"PostgreSQL {html.escape(str(run.get('postgres_version', '')))}"
        f" · seed {html.escape(str(run.get('seed', '')))}</div>",
        "<div class=tot><b>" + html.escape(summary_line(overall)) + "</b></div>",
        "<div class=legend>"
        + "".join(f'<span><b style="color:{COLOUR[v]}">{SYMBOL[v]}</b> {v}</span>' for v in VERDICTS)
        + "</div>",
    ]
    if deviations:
        parts.append(
            "<div class=dev><b>Deviations from reports/expectations.toml:</b><ul>"
            + "".join(
                f"<li>{html.escape(d['kind'])}: <code>{html.escape(d['row'])}</code> × {html.escape(d['sdk'])} "
                f"is {html.escape(d['verdict'])} — {html.escape(d['detail'])}</li>"
                for d in deviations
            )
            + "</ul></div>"
        )
    parts.append(
        "<table><thead><tr class=sys><th></th>"
        + "".join(f"<th colspan={n}>{html.escape(system)}</th>" for system, n in systems)
        + "<th></th></tr>"
    )
    parts.append(
        "<tr><th class=row>scenario</th>"
        + "".join(
            f'<th title="{html.escape(s["language"])} {html.escape(s["version"])}">{html.escape(s["name"])}<br>'
            f"<small>{html.escape(s['language'])}</small></th>"
            for s in sdks
        )
        + "<th>row</th></tr></thead><tbody>"
    )
    suite = None
    for row in matrix["rows"]:
        if row["suite"] != suite:
            suite = row["suite"]
            parts.append(f"<tr class=suite><td colspan={len(sdks) + 2}>{html.escape(suite)}</td></tr>")
        counts = " ".join(f"{SYMBOL[v]}{n}" for v, n in sorted(per_row[row["id"]].items()))
        parts.append(
            f'<tr><td class=row title="{html.escape(row["title"])}">{html.escape(row["id"])}</td>'
            + "".join(_cell_html(cells.get((row["id"], s["name"]))) for s in sdks)
            + f"<td>{html.escape(counts)}</td></tr>"
        )
    parts.append(
        "<tr><td class=row><b>total</b></td>"
        + "".join(
            "<td>"
            + " ".join(f"{SYMBOL[v]}{per_sdk[s['name']][v]}" for v in VERDICTS if per_sdk[s["name"]][v])
            + "</td>"
            for s in sdks
        )
        + "<td></td></tr></tbody></table>"
    )
    if bench:
        parts.append(bench_html(bench))
    parts.append("</body></html>")
    return "\n".join(parts)


def bench_html(bench: dict[str, Any]) -> str:
    """The bench table with an inline SVG bar chart of jobs/s (relative to the raw-SQL limit)."""
    rows = bench.get("rows", [])
    if not rows:
        return ""
    top = max((r.get("jobs_per_s") or 0) for r in rows) or 1
    bars = []
    for i, r in enumerate(rows):
        width = 420 * (r.get("jobs_per_s") or 0) / top
        bars.append(
            f'<text x="0" y="{i * 22 + 14}" font-size="12">{html.escape(r["label"])}</text>'
            f'<rect x="220" y="{i * 22 + 3}" width="{width:.0f}" height="14" fill="#0277bd"/>'
            f'<text x="{225 + width:.0f}" y="{i * 22 + 14}" font-size="12">{r.get("jobs_per_s") or 0:.0f}/s</text>'
        )

    def number(value: Any, digits: int) -> str:
        return "—" if value is None else f"{value:,.{digits}f}"

    table = "".join(
        f"<tr><td class=row>{html.escape(r['label'])}</td><td>{number(r.get('jobs_per_s'), 0)}</td>"
        f"<td>{number(r.get('ratio_to_limit'), 2)}</td><td>{number(r.get('p50_ms'), 1)}</td>"
        f"<td>{number(r.get('p99_ms'), 1)}</td></tr>"
        for r in rows
    )
    return (
        f"<h2>Bench</h2><svg width=720 height={len(rows) * 22 + 6} role=img>{''.join(bars)}</svg>"
        "<table class=bench><thead><tr><th>what</th><th>jobs/s</th><th>× raw SQL</th>"
        "<th>p50 ms</th><th>p99 ms</th></tr>"
        f"</thead><tbody>{table}</tbody></table>"
    )
