"""The bootstrap is idempotent: on a ready machine it only looks, never installs."""

from __future__ import annotations

import subprocess
import time

import pytest

from gauntlet import bootstrap


def test_second_run_touches_no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bootstrap.main() == 0  # make sure the machine is ready
    calls: list[list[str]] = []
    real_run = subprocess.run

    def spy(argv, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    began = time.monotonic()
    assert bootstrap.main() == 0
    assert time.monotonic() - began < 10
    commands = {argv[0] for argv in calls}
    assert commands <= {"dpkg-query", "git"}, f"a ready machine ran {sorted(commands)}"  # both local


def test_a_failing_step_stops_with_its_name(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def broken() -> None:
        raise bootstrap.BootstrapError("Go is needed")

    monkeypatch.setattr(bootstrap, "STEPS", [("toxiproxy server", broken)])
    assert bootstrap.main() == 1
    assert "toxiproxy server: Go is needed" in capsys.readouterr().out
