"""The dashboard people read: the evidence a scenario leaves (bounded, its witnesses from the
checker), a page per cell with its timeline, witnesses and replay command, the guarantees at a
glance, the bench's pictures, and all of it in headless Chromium with the network off."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from gauntlet import evidence, paths
from gauntlet.checker import Enqueued, History, check
from gauntlet.ids import SessionId, file_safe
from reports import build, pages, plots, scenarios
from tests.test_report import case_xml, finding, junit_file, write_adapters

T0 = 1_800_000_000.0
SEED = 7


def line(job: str, event: str, wall: float, attempt: int = 1, pid: int = 100, **extra: Any) -> str:
    return json.dumps({"id": job, "event": event, "wall": wall, "attempt": attempt, "pid": pid, **extra})


def wave_history(jobs: int = 40) -> History:
    """A FIFO wave with every anomaly: j0001 lost, j0002 run twice, `ghost` never enqueued,
    j0004 started before j0003; and j0005 run again, cut by its worker's death."""
    history = History()
    lines = []
    for n in range(1, jobs + 1):
        job = f"j{n:04d}"
        history.add_enqueued(Enqueued(job, "ok", T0, index=n))
        start = T0 + 0.1 * n + (0.2 if n == 3 else 0)
        if n != 1:
            lines += [
                line(job, "start", start, worker="w1", sdk_id=f"s{n}"),
                line(job, "end", start + 0.05, outcome="ok"),
            ]
    lines += [line("j0002", "start", T0 + 9, 2, 200, worker="w2", sdk_id="s2")]  # handed out again
    lines += [line("j0002", "end", T0 + 9.1, 2, 200, outcome="ok")]
    lines += [line("ghost", "start", T0 + 5, worker="w2"), line("ghost", "end", T0 + 5.1, outcome="ok")]
    lines += [line("j0005", "start", T0 + 6, pid=300, worker="w3")]  # run again, and w3 died mid-run
    history.add_lines(lines)
    return history


FAULTS = [{"fault": "partition", "start_s": 1.0, "duration_s": 2.0, "applied": T0 + 1.0, "healed": T0 + 3.0}]


def test_evidence_names_each_anomalys_jobs_with_their_executions() -> None:
    history = wave_history()
    report = check(history, order="fifo")
    kept = evidence.build({"row": "chaos/x"}, "x", SEED, history, report, "fifo", FAULTS, ["error: boom"])
    witnesses = kept["witnesses"]
    assert set(witnesses) == {"lost", "duplicated", "unexpected", "out_of_order"}
    lost = witnesses["lost"]["jobs"]
    assert [j["id"] for j in lost] == ["j0001"] and lost[0]["executions"] == []
    twice = witnesses["duplicated"]["jobs"][0]
    assert twice["id"] == "j0002" and [
        (r["worker"], r["pid"], r["attempt"], r["sdk_id"]) for r in twice["executions"]
    ] == [("w1", 100, 1, "s2"), ("w2", 200, 2, "s2")]
    assert witnesses["unexpected"]["jobs"][0]["enqueued"] is None
    overtaken = witnesses["out_of_order"]["jobs"][0]
    assert (overtaken["id"], overtaken["detail"]) == ("j0003", "queued ahead of j0004, started after it")
    assert witnesses["out_of_order"]["count"] == report.order_inversions
    assert [(j["id"], len(j["executions"])) for j in kept["cut"]["jobs"]] == [("j0005", 2)]
    assert kept["faults"] == FAULTS and kept["worker_errors"] == ["error: boom"] and kept["t0"] == T0
    assert max(kept["series"]["completions_per_s"]) > 0


def test_evidence_stays_bounded_however_big_the_wave() -> None:
    history = History()
    lines = []
    for n in range(20_000):  # a 1000 s wave, every job lost but the first
        history.add_enqueued(Enqueued(f"j{n}", "ok", T0, index=n))
    lines = [line("j0", "start", T0 + 1000), line("j0", "end", T0 + 1000.1, outcome="ok")]
    history.add_lines(lines)
    kept = evidence.build({}, "x", SEED, history, check(history), None, [], [])
    assert len(kept["series"]["completions_per_s"]) <= evidence.BINS + 1
    assert kept["witnesses"]["lost"]["count"] == 19_999 and len(kept["witnesses"]["lost"]["jobs"]) == evidence.WITNESSES
    assert len(json.dumps(kept)) < 30_000


BENCH = {
    "date": "2026-12-01",
    "machine": {"cpus": 2, "cpu": "test", "memory_gib": 4},
    "settings": {"jobs": 100, "runs": 1, "concurrency": [1, 2, 4, 8, 16], "cost_at": 8, "cost_pairs": 3},
    "limit": {f"c{c}_batch1": {"median": 1000.0 * c} for c in (1, 2, 4, 8, 16)},
    "sdks": {
        name: {
            "process": {str(c): {"median": 100.0 * c * k} for c in (1, 2, 4, 8, 16)},
            "ratio": {str(c): 0.1 * k for c in (1, 2, 4, 8, 16)},
            "latency": {"p50_ms": 2.0 * k, "p95_ms": 5.0 * k, "p99_ms": 50.0 * k},
            "history_overhead_pct": 3.0 * k,
            "recording": {"on_off_pct": {"median": 3.0 * k, "min": 1.0, "max": 4.0 * k}},
        }
        for k, name in enumerate(("pgmq-py", "pgmq-go"), start=1)
    },
}
CHAOS = {"suite": "chaos", "topology": "toxiproxy", "seed": str(SEED)}
PARTITION = "test_network_fault[partition]"


def dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pictures: bool) -> Path:
    """A report over one e2e and one chaos session of pgmq-py (the partition wave left its
    evidence, one e2e cell is a known finding) and a bench: its out folder."""
    found = finding("fifo", '"e2e/test_fifo_ordering"')
    monkeypatch.setenv("GAUNTLET_ADAPTERS", str(write_adapters(tmp_path / "adapters", findings=found)))
    if not pictures:
        monkeypatch.setattr(build, "screenshot", lambda _html: None)
    inputs, out = tmp_path / "junit", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    failing = '<failure message="order_inversions 3"/>'
    (inputs / "e2e-pgmq-py.xml").write_text(
        junit_file(case_xml("test_basic_wave", seed=str(SEED)), case_xml("test_fifo_ordering", result=failing))
    )
    wave = {"lost": "1", "duplicated": "1", "overlaps": "0", "recovery_s": "0.5", "fault_schedule": "{}"}
    (inputs / "chaos-pgmq-py.xml").write_text(
        junit_file(
            case_xml(PARTITION, result='<failure message="lost 1: [j0001]"/>', **CHAOS, **wave),
            case_xml("test_worker_killed_mid_wave", **CHAOS, **{**wave, "lost": "0", "recovery_s": "1.5"}),
        )
    )
    history = wave_history()
    cell = {"row": f"chaos/{PARTITION}", "sdk": "pgmq-py", "topology": "toxiproxy"}
    errors = ["ERROR: connection lost"]
    kept = evidence.build(cell, PARTITION, SEED, history, check(history), None, FAULTS, errors, recovery_s=0.5)
    evidence.write(out / SessionId("chaos", "pgmq-py").evidence_dir / f"{file_safe(PARTITION)}.json", kept)
    (out / "bench.json").write_text(json.dumps(BENCH))
    assert build.main(["--junit", str(inputs), "--out", str(out)], rows=lambda _session: []) == 1  # an unexpected fail
    return out


def links(index: str) -> list[str]:
    """Where each matrix cell's label links."""
    return re.findall(r'<td class="c[^"]*"[^>]*><a href="([^"]+)"', index)


def test_every_cell_links_to_its_page_with_timeline_witnesses_and_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = dashboard(tmp_path, monkeypatch, pictures=False)
    index = (out / "index.html").read_text()
    data = json.loads((out / "matrix.json").read_text())
    pages = links(index)
    assert len(pages) == len(data["cells"]) == 4 and all((out / p).exists() for p in pages)
    partition = next(c for c in data["cells"] if c["row"] == f"chaos/{PARTITION}")
    assert partition["evidence"].startswith("evidence/chaos-pgmq-py/")
    page = (out / partition["page"]).read_text()
    for text in (
        "network partition",  # the catalog's title, the docstring below it
        "A Toxiproxy fault on the workers",
        "<svg",
        "1: partition",  # the fault window, named in the plot
        "recovered +0.5 s",
        "j0001",  # lost, with no execution
        "never executed",
        "w2",  # j0002's second run
        "died mid-run",  # j0005, cut
        "ERROR: connection lost",
        html.escape('.venv/bin/nox -s "chaos(sdk=\'pgmq-py\')" -- --seed 7 -k "test_network_fault[partition]"'),
        "poll_interval",  # the SDK's tuning
    ):
        assert text in page, text
    assert "http://" not in page and "https://" not in page and "<script" not in page
    known = next(c for c in data["cells"] if c["row"] == "e2e/test_fifo_ordering")
    known_page = (out / known["page"]).read_text()
    assert "summary of fifo" in known_page and "src/queue.py:42" in known_page
    quiet = next(c for c in data["cells"] if c["row"] == "chaos/test_worker_killed_mid_wave")
    assert "left no evidence file" in (out / quiet["page"]).read_text()
    glance = index[index.index("Guarantees at a glance") : index.index("The matrix")]
    assert "yes: 1 in 1 waves" in glance and "2 of 2" in glance and "1.50 / 1.00" in glance and "bug 1" in glance
    assert "worker killed mid-job" in index and "chaos/test_worker_killed_mid_wave" in index
    bench = index[index.index("<h2>Bench</h2>") :]
    assert bench.count("<svg") == 3 and "raw SQL (the limit)" in bench and "p99" in bench


@pytest.mark.skipif(shutil.which("chromium") is None, reason="not applicable: Debian's chromium is not installed")
def test_every_page_renders_in_headless_chromium_with_the_network_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import sync_playwright

    out = dashboard(tmp_path, monkeypatch, pictures=True)
    data = json.loads((out / "matrix.json").read_text())
    partition = next(c for c in data["cells"] if c["row"] == f"chaos/{PARTITION}")
    for picture in (out / "index.png", out / Path(partition["page"]).with_suffix(".png")):
        assert picture.stat().st_size > 10_000, f"no screenshot {picture}"
    requested: list[str] = []
    complaints: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True)
            context.route(
                re.compile(r"^(?!file:).*"), lambda route: (requested.append(route.request.url), route.abort())
            )
            page = context.new_page()
            page.on("console", lambda message: complaints.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: complaints.append(str(error)))
            page.goto((out / "index.html").as_uri())
            hrefs = page.eval_on_selector_all("td.c > a", "links => links.map(a => a.getAttribute('href'))")
            assert len(hrefs) == len(data["cells"]) == page.locator("td.c").count()
            for href in hrefs:
                page.goto((out / href).as_uri())
                assert page.locator("h1").count() == 1, href
                assert page.locator("a", has_text="the matrix").count() == 1, href
            page.goto((out / partition["page"]).as_uri())
            plot = page.locator(".plot svg").bounding_box()
            assert plot is not None and plot["width"] > 600 and plot["height"] > 250, plot
        finally:
            browser.close()
    assert requested == [] and complaints == [], (requested, complaints)


def test_every_scenario_has_a_title() -> None:
    """A new scenario gets its row's title in its catalog's titles.toml (a broken file would
    stop the report); no title names a scenario that is gone."""
    for suite in ("e2e", "chaos"):
        titles, docs = scenarios._catalog(paths.ROOT / suite)
        assert set(docs) - set(titles) == set(), f"{suite}/titles.toml lacks them"
        assert set(titles) - set(docs) - {t for t in titles if "[" in t} == set(), "titles of no scenario"


def test_a_plot_that_cannot_be_drawn_costs_that_picture_not_the_report() -> None:
    """A bench without positive figures still draws (a linear axis); a malformed one says why
    it was not drawn."""
    empty = {"settings": {"concurrency": [1, 2]}, "limit": {}, "sdks": {"x": {"process": {"1": None}}}}
    assert plots.drawn(plots.bench_throughput, empty).startswith("<svg")
    assert "not drawn: KeyError" in plots.drawn(plots.bench_throughput, {"settings": {}})


def test_a_fault_the_scenario_places_itself_is_shown_without_a_plan() -> None:
    """The MVCC scenario's held snapshot has no seeded window (no start_s, no duration_s)."""
    held = {"fault": "held_snapshot", "held": 2, "terminated": 0, "applied": T0 + 1.0, "healed": T0 + 3.0}
    history = wave_history()
    kept = evidence.build({}, "x", SEED, history, check(history), None, [held], [])
    cell = {"row": "chaos/test_snapshot_held_open", "sdk": "pgmq-py", "topology": "toxiproxy", "verdict": "pass",
            "suite": "chaos", "page": "cells/x.html"}  # fmt: skip
    page = pages.page(cell, {"title": "a held snapshot"}, None, None, kept)
    assert "held_snapshot" in page and "<td class=n>—</td>" in page and "<svg" in page


def test_a_page_that_cannot_be_made_says_why_in_its_place(tmp_path: Path) -> None:
    """A harness bug on one page (here a row without its title) costs that page, never the report."""
    (tmp_path / "cells").mkdir()
    cell = {"row": "e2e/x", "sdk": "pgmq-py", "verdict": "fail", "page": "cells/x.html"}
    problem = pages._write((tmp_path, cell, {}, None, None))
    assert problem.startswith("cells/x.html: KeyError")
    text = (tmp_path / "cells" / "x.html").read_text()
    assert "could not make this page" in text and "the matrix" in text and "fail" in text
