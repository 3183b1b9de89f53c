"""The main job's view: live on a terminal (rich), one plain line per event elsewhere (CI).

Sessions run side by side, so the live view has a row per running session with its current
case, and every plain line starts with its session so interleaved lines stay readable.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

VERDICT_STYLES = {"pass": "green", "fail": "red", "error": "magenta", "flaky": "yellow", "n/a": "dim", "known": "cyan"}


def _duration(event: dict[str, Any]) -> str:
    seconds = event.get("duration_s")
    return f" ({seconds}s)" if seconds is not None else ""


@dataclass
class _Running:
    began: float
    case: str = ""  # the case that started last (or ended last, for producers that only report ends)
    cases: int = 0
    failed: int = 0


class Progress:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.live_mode = self.console.is_terminal
        self.began = time.monotonic()
        self.verdicts: Counter[str] = Counter()
        self.running: dict[str, _Running] = {}
        self.finished: list[tuple[str, int, float]] = []
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.live_mode:
            self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(None, None, None)

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.began:6.1f}s"

    def render(self) -> Group:
        done = Table(show_header=True, header_style="bold", box=None)
        for column in ("session", "exit", "wall"):
            done.add_column(column, justify="right" if column == "wall" else "left")
        for name, code, wall in self.finished:
            done.add_row(name, Text(str(code), style="green" if code == 0 else "red"), f"{wall:.1f}s")
        now = Table(show_header=False, box=None)
        for name, state in self.running.items():
            counts = f"{state.cases} cases" + (f", {state.failed} not passing" if state.failed else "")
            now.add_row(
                Text.assemble(("▶ ", "bold"), (name, "bold cyan")),
                f"{time.monotonic() - state.began:6.1f}s",
                Text(counts, style="red" if state.failed else ""),
                state.case,
            )
        tally = Text("  ").join(
            Text(f"{v} {n}", style=VERDICT_STYLES.get(v, "")) for v, n in sorted(self.verdicts.items())
        )
        footer = Text.assemble(
            ("cells: ", "bold"), tally or "no cells yet", f"   running {len(self.running)}   elapsed ", self._elapsed()
        )
        return Group(done, now if self.running else Text("▶ starting", style="bold"), footer)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())

    def _line(self, session: str, text: str) -> None:
        if not self.live_mode:
            self.console.print(f"[{self._elapsed()}] {session} | {text}", highlight=False, soft_wrap=True)

    def session_started(self, name: str) -> None:
        self.running[name] = _Running(time.monotonic())
        self._line(name, "started")
        self._refresh()

    def session_finished(self, name: str, code: int, wall_s: float, log: str) -> None:
        self.running.pop(name, None)
        self.finished.append((name, code, wall_s))
        self._line(name, f"{'ok' if code == 0 else f'exit {code}'} in {wall_s:.1f}s (log: {log})")
        self._refresh()

    def event(self, session: str, event: dict[str, Any]) -> None:
        """One event from `session`'s events file."""
        state = self.running.setdefault(session, _Running(time.monotonic()))
        if event.get("kind") == "case_start":
            state.case = str(event.get("nodeid", ""))
        elif event.get("kind") == "case_end":
            verdict = str(event.get("verdict", "?"))
            self.verdicts[verdict] += 1
            state.case = str(event.get("nodeid", ""))
            state.cases += 1
            state.failed += verdict in {"fail", "error"}
            self._line(session, f"{verdict:5} {event.get('nodeid')}" + _duration(event))
        self._refresh()
