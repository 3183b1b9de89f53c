"""Progress events: JSON lines that pytest (inside a nox session) appends and the main job
reads to draw its live view. A file, not a pipe, so a crashed writer loses nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

EVENTS_ENV = "GAUNTLET_EVENTS"


def emit(kind: str, **fields: Any) -> None:
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    line = json.dumps({"kind": kind, **fields}, default=str)
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


class Tail:
    """Reads the events appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as src:
                src.seek(self.offset)
                chunk = src.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        events = []
        for raw in complete.splitlines():
            try:
                events.append(json.loads(raw))
            except json.JSONDecodeError:
                continue  # progress is cosmetic; the JUnit file is the record
        return events
