"""Fixtures shared by the lock-order tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _reports import Collector

import lockwatch
from lockwatch import _events, _order


@pytest.fixture
def watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Start lockwatch with a fresh order graph; dumps go to tmp_path/dumps; everything undone after."""
    _order.reset()
    for name in ("ORDER", "DECLARED_ORDER", "BASELINE"):
        monkeypatch.delenv(f"LOCKWATCH_{name}", raising=False)

    handles: list[Any] = []

    def start(**settings: Any) -> Any:
        settings.setdefault("on_deadlock", "report")
        settings.setdefault("interval", 5)
        settings.setdefault("dump_dir", str(tmp_path / "dumps"))
        handles.append(lockwatch.patch(**settings))
        return handles[-1]

    yield start
    for handle in reversed(handles):  # only ours: an outer session patch stays
        handle.stop()
    _order.reset()


@pytest.fixture
def collect() -> Iterator[Collector]:
    """Every report lockwatch publishes while the test runs."""
    collector = Collector()
    _events.subscribe(collector)
    yield collector
    _events.unsubscribe(collector)
