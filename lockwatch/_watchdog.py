"""The watchdog thread (placeholder until issue 3 lands)."""

from __future__ import annotations

from lockwatch._config import Config


def activate(config: Config) -> None:
    pass


def deactivate() -> None:
    pass
