"""Fault schedules are data drawn from a seed: the same seed gives every SDK the same
schedule, and a cell is replayed by re-running it with its seed."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Window:
    start_s: float  # after the wave starts
    duration_s: float


@dataclass(frozen=True)
class Schedule:
    scenario: str
    seed: int
    windows: tuple[Window, ...]

    def to_json(self) -> str:
        return json.dumps({"scenario": self.scenario, "seed": self.seed, "windows": [asdict(w) for w in self.windows]})


def draw(scenario: str, seed: int, faults: int = 1, earliest_s: float = 0.5, longest_s: float = 3.0) -> Schedule:
    """`faults` non-overlapping windows within the first few seconds of the wave."""
    rng = random.Random(f"{scenario}:{seed}")  # noqa: S311 - a schedule, not a secret
    windows, at = [], earliest_s
    for _ in range(faults):
        start = at + rng.uniform(0.0, 1.0)
        duration = rng.uniform(1.0, longest_s)
        windows.append(Window(round(start, 2), round(duration, 2)))
        at = start + duration + 0.5
    return Schedule(scenario, seed, tuple(windows))
