"""patch()/unpatch(): swap the instrumented locks into threading and switch lockwatch's parts on."""

from __future__ import annotations

import functools
import threading
from _thread import allocate_lock as _allocate_raw_lock
from collections.abc import Callable
from typing import Any, TypeVar

from lockwatch import _adopt, _aio, _beyond, _imports, _order, _startup, _state, _watchdog
from lockwatch._config import Config, resolve
from lockwatch._locks import Lock, RLock

F = TypeVar("F", bound=Callable[..., Any])

# Active patches, oldest first; the newest one's configuration is in force.
# Changed only under _patches_lock (a raw lock), never on a lock hot path.
_active: list[Patch] = []
_patches_lock = _allocate_raw_lock()
# What threading had before the first active patch: restored exactly by the last stop.
_originals: dict[str, Any] = {}


class Patch:
    """One activation of lockwatch: a handle usable with ``with``, as a decorator, or via stop()."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @property
    def active(self) -> bool:
        return self in _active

    def start(self) -> Patch:
        """Instrument threading.Lock/RLock (if not already) and apply this configuration."""
        with _patches_lock:
            if self in _active:
                return self
            first = not _active
            if first:
                _originals["Lock"] = threading.Lock
                _originals["RLock"] = threading.RLock
                threading.Lock = Lock  # type: ignore[assignment]
                threading.RLock = RLock  # type: ignore[assignment]
            _active.append(self)
        if first:
            _adopt.adopt()  # logging's locks, made before the patch: swapped for instrumented ones while free
            _beyond.install()  # joins, futures, Condition waits: waits of the wait-for graph too
            _imports.install()  # module import locks, read at look time (nothing patched)
            _aio.install()  # asyncio's primitives (made from now on) and tasks
        try:
            _apply(self.config)
        except BaseException:
            self.stop()  # e.g. an unreadable baseline: leave threading as it was
            raise
        return self

    def stop(self) -> None:
        """Undo this activation; the last one restores exactly what threading had."""
        with _patches_lock:
            if self not in _active:
                return
            _active.remove(self)
            remaining = _active[-1] if _active else None
            if remaining is None:
                threading.Lock = _originals.pop("Lock")
                threading.RLock = _originals.pop("RLock")
        if remaining is None:
            _watchdog.deactivate()
            _order.deactivate()
            _state.break_enabled = False
            _adopt.restore()  # the raw locks go back where they are free
            _beyond.uninstall()
            _imports.uninstall()
            _aio.uninstall()
            _startup.export_to_children(None)
        else:
            _apply(remaining.config)

    def __enter__(self) -> Patch:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __call__(self, func: F) -> F:
        """Decorator use: the patch is active only while ``func`` runs."""
        self.stop()  # patch(...) activated on creation; as a decorator it activates per call
        config = self.config

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Patch(config):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<lockwatch.Patch {'active' if self.active else 'inactive'} {self.config}>"


def _apply(config: Config) -> None:
    _state.break_enabled = config.on_deadlock == "break"
    _order.activate(config)
    _watchdog.activate(config)
    _startup.export_to_children(config)  # LOCKWATCH=1 and these settings for child processes, or not


def patch(func: Callable[..., Any] | None = None, /, **settings: Any) -> Any:
    """Instrument every Lock and RLock created from now on, and start the watchdog.

    ``settings`` are the configuration names of DESIGN.md (interval, dump_dir,
    on_deadlock, hang_timeout, order, ...), layered over ``[tool.lockwatch]``
    in pyproject.toml and ``LOCKWATCH_*`` environment variables.

    - ``lockwatch.patch()`` activates now and returns a handle (``.stop()``);
    - ``with lockwatch.patch():`` is active inside the block;
    - ``@lockwatch.patch`` / ``@lockwatch.patch(...)`` is active while the function runs.

    Nested use is safe: the innermost active patch's settings are in force, and
    the last one stopped restores exactly what threading had.
    """
    config = resolve(settings, explicit_source="patch() arguments")
    if func is not None:
        if not callable(func):
            raise TypeError(f"lockwatch.patch() takes settings as keywords, not {func!r}")
        return Patch(config)(func)  # not started: the wrapper activates per call
    return Patch(config).start()


def unpatch() -> None:
    """Stop every active patch and restore threading.Lock and threading.RLock."""
    while True:
        with _patches_lock:
            if not _active:
                return
            newest = _active[-1]
        newest.stop()


def is_patched() -> bool:
    """Whether a patch is active."""
    return bool(_active)


def active_config() -> Config | None:
    """The configuration in force, or None when lockwatch is not patched in."""
    with _patches_lock:
        return _active[-1].config if _active else None
