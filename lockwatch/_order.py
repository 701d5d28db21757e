"""Lock-order checking (placeholder until issue 4 lands)."""

from __future__ import annotations

from lockwatch._config import Config


def activate(config: Config) -> None:
    pass


def deactivate() -> None:
    pass
