"""A plugin whose top level registers itself: its import needs the registry lock."""

from __future__ import annotations

from _import_cycle import registry

registry.import_started.set()
registry.loader_holds_registry.wait()  # the loader now holds the registry lock


class SlowPlugin:
    """Does nothing; it exists to be registered."""


registry.register("slow", SlowPlugin())
