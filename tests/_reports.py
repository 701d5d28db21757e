"""Collecting the reports lockwatch publishes, for tests in several files."""

from __future__ import annotations

from typing import Any

from lockwatch._model import Report


class Collector:
    """Every report lockwatch publishes while a test runs (subscribed by the ``collect`` fixture)."""

    def __init__(self) -> None:
        self.reports: list[Report] = []

    def __call__(self, report: Report, paths: Any) -> None:
        self.reports.append(report)

    def kinds(self) -> list[str]:
        return [r.kind for r in self.reports]
