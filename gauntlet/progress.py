"""The main job's view: live on a terminal (rich), one plain line per event elsewhere (CI)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

VERDICT_STYLES = {"pass": "green", "fail": "red", "error": "magenta", "flaky": "yellow", "n/a": "dim", "known": "cyan"}


def _duration(event: dict[str, Any]) -> str:
    seconds = event.get("duration_s")
    return f" ({seconds}s)" if seconds is not None else ""


class Progress:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.live_mode = self.console.is_terminal
        self.began = time.monotonic()
        self.verdicts: Counter[str] = Counter()
        self.session = ""
        self.case = ""
        self.finished: list[tuple[str, int, float]] = []
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.live_mode:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.began:6.1f}s"

    def _render(self) -> Group:
        tally = Text("  ".join(f"{v} {n}" for v, n in sorted(self.verdicts.items())) or "no cells yet")
        table = Table(show_header=True, header_style="bold", box=None)
        table.add_column("session")
        table.add_column("exit")
        table.add_column("wall", justify="right")
        for name, code, wall in self.finished:
            table.add_row(name, Text(str(code), style="green" if code == 0 else "red"), f"{wall:.1f}s")
        now = Text.assemble(("▶ ", "bold"), (self.session or "starting", "bold cyan"), "  ", self.case)
        return Group(table, now, Text.assemble(("cells: ", "bold"), tally, "   elapsed ", self._elapsed()))

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def session_started(self, name: str) -> None:
        self.session, self.case = name, ""
        if not self.live_mode:
            self.console.print(f"[{self._elapsed()}] session {name} started", highlight=False, soft_wrap=True)
        self._refresh()

    def session_finished(self, name: str, code: int, wall_s: float, log: str) -> None:
        self.finished.append((name, code, wall_s))
        if not self.live_mode:
            status = "ok" if code == 0 else f"exit {code}"
            self.console.print(
                f"[{self._elapsed()}] session {name}: {status} in {wall_s:.1f}s (log: {log})",
                highlight=False,
                soft_wrap=True,
            )
        self._refresh()

    def event(self, event: dict[str, Any]) -> None:
        if event.get("kind") == "case_start":
            self.case = str(event.get("nodeid", ""))
        elif event.get("kind") == "case_end":
            verdict = str(event.get("verdict", "?"))
            self.verdicts[verdict] += 1
            if not self.live_mode:
                self.console.print(
                    f"[{self._elapsed()}] {verdict:5} {event.get('nodeid')}" + _duration(event),
                    highlight=False,
                    soft_wrap=True,
                )
        self._refresh()

    def summary(self) -> str:
        return ", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items())) or "no cells"
