"""A module import lock cycle: a thread holds an RLock around import_module(), the importing module waits for it.

A plugin registry guards itself with one ``RLock``. The registry loader holds
that lock while it imports plugins with ``importlib.import_module()`` (so no
plugin registers half-loaded). Meanwhile another thread imports the same
plugin directly; the plugin's top level registers itself, which takes the
registry lock. The importer holds the plugin's *module import lock* (CPython
takes one per module being imported) and waits for the registry lock; the
loader holds the registry lock and waits for the module import lock. Python's
own import deadlock check does not fire: it only sees import locks, and the
other half of the cycle is a threading lock.

The plugin package lives in ``examples/_import_cycle/``; two Events stand in for
the unlucky timing, so the cycle closes on every run.

Expect:
    python examples/import_lock_cycle.py
        hangs forever after "loader holds the registry, importing the plugin ..." (Ctrl-C twice to get out).
    lockwatch run examples/import_lock_cycle.py
        a deadlock report: thread "registry-loader" waits for the import lock of module
        "_import_cycle.slow_plugin" held by thread "plugin-importer", which waits for lock
        "_import_cycle.registry.registry_lock" held by "registry-loader". The loader's stack
        ends at the ``importlib.import_module(...)`` line below, the importer's at
        ``with registry_lock:`` in registry.py (under the plugin's ``register(...)`` line).
        ``lockwatch run --on-deadlock exit examples/import_lock_cycle.py`` ends it with status 86.
"""

from __future__ import annotations

import importlib
import threading

from _import_cycle import registry

PLUGIN = "_import_cycle.slow_plugin"


def load_plugins() -> None:
    """Load the plugin under the registry lock -- the bug: an import while holding a lock imports need."""
    registry.import_started.wait()  # the other thread is inside the plugin's import
    with registry.registry_lock:
        registry.loader_holds_registry.set()
        print("loader holds the registry, importing the plugin ...", flush=True)
        importlib.import_module(PLUGIN)  # <- blocks here, on the plugin's module import lock


def import_plugin() -> None:
    importlib.import_module(PLUGIN)  # its top level blocks in register(), on the registry lock


def main() -> None:
    threads = [
        threading.Thread(target=load_plugins, name="registry-loader"),
        threading.Thread(target=import_plugin, name="plugin-importer"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"plugins: {sorted(registry.plugins)}")  # never reached


if __name__ == "__main__":
    main()
