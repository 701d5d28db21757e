"""Module import locks as waits, read at look time from importlib's own bookkeeping (no patching)."""

from __future__ import annotations

import sys
import weakref
from _thread import allocate_lock as _allocate_raw_lock
from time import monotonic
from typing import Any

from lockwatch import _waits

# CPython's import system keeps, for deadlock avoidance of its own, two things we can read:
#
# - ``_blocking_on``: thread ident -> what that thread is acquiring. On 3.10 and 3.11 a plain
#   dict, ident -> _ModuleLock, set for the whole of ``_ModuleLock.acquire``. On 3.12+ a
#   ``_WeakValueDictionary`` whose ``data`` maps ident -> weakref to a ``_List`` of
#   _ModuleLocks (a re-entrant import may be "in the process" of several; the last one is
#   the one the thread blocks on now).
# - each ``_ModuleLock``: ``name`` (the module), ``owner`` (ident or None), ``count`` (an int
#   before 3.12, a list of True since).
#
# Both change under the import system's own per-module locks, which this reader never takes:
# the watchdog calls it exactly when an import may be stuck. It only copies dicts and lists
# (one C call each, atomic under the GIL) and reads instance dicts, retrying a copy that
# raced a change, and gives up with Found() on anything it does not recognise.

_bootstrap: Any = None  # the running importlib._bootstrap (_frozen_importlib), set by install()

# One id per module lock for the life of the process ("I1", "I2"...); weak keys, so a
# module lock dropped after its import costs nothing.
_ids: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_next_id = 1
# When each (waiter, module lock, owner) wait was first seen: its identity across looks.
_first_seen: dict[tuple[int, int, int], float] = {}
# Guards the two above: looks and snapshots may read at once (a raw lock, never waited on long).
_guard = _allocate_raw_lock()

_COPY_ATTEMPTS = 3


def install() -> None:
    """Consult the import locks at every look and snapshot."""
    global _bootstrap
    if _bootstrap is None:
        # The module the interpreter imports with (importlib._bootstrap is an alias of it).
        _bootstrap = sys.modules.get("_frozen_importlib") or sys.modules.get("importlib._bootstrap")
    if _bootstrap is not None:
        _waits.add_source(read)


def uninstall() -> None:
    """Stop consulting the import locks (what was remembered about them goes too)."""
    _waits.remove_source(read)
    if _guard.acquire(True, 0.5):
        _first_seen.clear()
        _guard.release()


def read() -> _waits.Found:
    """Every thread now blocked on a module import lock another thread holds, as edges."""
    bootstrap = _bootstrap
    if bootstrap is None:
        return _waits.Found()
    try:
        blocked = _blocked_on(getattr(bootstrap, "_blocking_on", None))
    except Exception:  # noqa: BLE001 - an unknown layout (another Python) says nothing, never an error
        return _waits.Found()
    # A short wait at most: a snapshot taken while a look reads (a signal handler on the very
    # thread that is reading, even) must not stall.
    if not _guard.acquire(True, 0.5):
        return _waits.Found()
    try:
        return _edges(blocked)
    except Exception:  # noqa: BLE001 - a field of an unexpected shape: say nothing rather than something wrong
        return _waits.Found()
    finally:
        _guard.release()


def _blocked_on(blocking_on: Any) -> list[tuple[int, Any]]:
    """(waiter ident, module lock) for each thread in ``_blocking_on``, copied without locking."""
    if blocking_on is None:
        return []
    if isinstance(blocking_on, dict):  # 3.10, 3.11: ident -> _ModuleLock
        return [(tid, lock) for tid, lock in _copy_items(blocking_on) if isinstance(tid, int)]
    data = vars(blocking_on).get("data")  # 3.12+: _WeakValueDictionary, ident -> weakref(_List)
    if not isinstance(data, dict):
        raise TypeError(f"unknown _blocking_on: {type(blocking_on).__name__}")
    blocked = []
    for tid, ref in _copy_items(data):
        if not isinstance(tid, int) or not isinstance(ref, weakref.ref):
            continue
        locks = ref()  # a dead reference: that thread's list is gone, it blocks on nothing
        if not isinstance(locks, list):
            continue
        locks = _copy_list(locks)
        if locks:
            blocked.append((tid, locks[-1]))  # the innermost acquire: the one the thread is in now
    return blocked


def _copy_items(mapping: dict[Any, Any]) -> list[tuple[Any, Any]]:
    for _attempt in range(_COPY_ATTEMPTS):
        try:
            return list(mapping.items())
        except RuntimeError:  # changed size while copied: another thread began or ended an import
            continue
    raise RuntimeError("import bookkeeping kept changing")


def _copy_list(items: list[Any]) -> list[Any]:
    for _attempt in range(_COPY_ATTEMPTS):
        try:
            return list(items)
        except RuntimeError:
            continue
    raise RuntimeError("import bookkeeping kept changing")


def _edges(blocked: list[tuple[int, Any]]) -> _waits.Found:
    global _next_id
    now = monotonic()
    edges = []
    seen: dict[tuple[int, int, int], float] = {}
    for tid, lock in blocked:
        try:
            fields = dict(vars(lock))  # the instance dict: no property or __getattr__ runs
        except TypeError:
            continue
        owner, name, count = fields.get("owner"), fields.get("name"), fields.get("count")
        held = count > 0 if isinstance(count, int) else bool(count) if isinstance(count, list) else False
        # Not a wait (yet, or any more): a free lock is taken at once, an owned one re-entered.
        if not isinstance(owner, int) or owner == tid or not held or not isinstance(name, str):
            continue
        try:
            target_id = _ids.get(lock)
            if target_id is None:
                target_id = f"I{_next_id}"
                _next_id += 1
                _ids[lock] = target_id
        except TypeError:  # not weakly referenceable: not a _ModuleLock we know
            continue
        key = (tid, id(lock), owner)
        since = seen[key] = _first_seen.get(key, now)
        target = _waits.Target(
            id=target_id,
            kind=_waits.IMPORT,
            label=f'import lock of module "{name}"',
            owners=(owner,),
        )
        edges.append(_waits.Edge(waiter=tid, target=target, since=since, timed=False))
    _first_seen.clear()
    _first_seen.update(seen)
    return _waits.Found(edges=tuple(edges))
