"""The plugin registry: one RLock guards it, both while loading plugins and while they register."""

from __future__ import annotations

import threading

registry_lock = threading.RLock()
plugins: dict[str, object] = {}

# The forced interleaving of import_lock_cycle.py (instead of unlucky timing): the plugin's
# import has begun, and the loader holds the registry lock.
import_started = threading.Event()
loader_holds_registry = threading.Event()


def register(name: str, plugin: object) -> None:
    with registry_lock:  # <- the importing thread blocks here, inside the plugin's import
        plugins[name] = plugin
