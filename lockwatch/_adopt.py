"""Adopt locks made before patch(): logging's module lock and its handlers' locks, swapped in while free.

Only logging's locks are adopted: logging is the one stdlib module whose locks
are held while user code runs (a handler's ``emit``, a ``dictConfig`` factory,
a filter), and whose lock attributes are looked up anew on every use
(``logging._lock``, ``handler.lock``), which is what logging itself relies on
when it re-creates them after fork.

Safety. The instrumented lock that replaces a raw ``RLock`` does not get a lock
of its own: it shares the raw one (its real lock is the original C RLock). A thread that fetched the
old attribute just before the swap and acquires it afterwards still excludes
every thread going through the instrumented lock, because underneath it is the
same C lock. The swap happens only while the lock is free (a try-acquire by the
patching thread, which must not be holding it already), and handler locks are
swapped while logging's module lock is held, as logging guards its handler list.
A lock that is busy stays raw. The last unpatch puts the raw locks back where
they are free; a busy one keeps its instrumented stand-in, which still works.
"""

from __future__ import annotations

import _thread
import dataclasses
import gc
import sys
import weakref
from typing import Any

from lockwatch._locks import InstrumentedLock, RLock

# The C RLock type, captured before patch() swaps threading.RLock.
_RAW_RLOCK: Any = _thread.RLock
_RAW_TYPES = (_thread.LockType, _thread.RLock)


class _SharedRLock:
    """A raw RLock lent to an instrumented RLock as its real lock (the adopted lock and the original are one lock)."""

    __slots__ = ("rlock", "acquire", "release", "_at_fork_reinit", "_is_owned")

    def __init__(self, rlock: Any) -> None:
        self.rlock = rlock
        # Bound C methods: the instrumented lock's calls cost what they cost on its own raw lock.
        self.acquire = rlock.acquire
        self.release = rlock.release
        self._at_fork_reinit = rlock._at_fork_reinit
        self._is_owned = rlock._is_owned

    def locked(self) -> bool:
        rlock = self.rlock
        if hasattr(rlock, "locked"):  # Python 3.14+
            return bool(rlock.locked())
        if rlock._is_owned():
            return True
        if rlock.acquire(False):
            rlock.release()
            return False
        return True


@dataclasses.dataclass(frozen=True)
class Adoption:
    """What the last adopt() did: the locks swapped for instrumented ones, and the ones left raw (with why)."""

    adopted: tuple[str, ...] = ()
    left_raw: tuple[str, ...] = ()


@dataclasses.dataclass
class _Swap:
    """One adopted lock: where it lives, the raw lock that was there, its instrumented stand-in."""

    holder: Any  # a weak reference to a handler, or a strong one to the logging module
    attribute: str
    original: Any
    # Weak: reports name a lock by what holds it, and this record must not be what they find.
    adopted: weakref.ref[RLock]
    label: str


_swaps: list[_Swap] = []
#: What the last adopt() did (None: never called, or logging was not imported).
last: Adoption | None = None


def adopt() -> Adoption:
    """Swap instrumented RLocks in for logging's module lock and existing handlers' locks, where free.

    Called by the first active patch. Never raises: a failure is said once on stderr.
    """
    global last
    try:
        last = _adopt_logging()
    except Exception as exc:  # noqa: BLE001 - adoption is a bonus: the patch goes on without it
        sys.stderr.write(f"lockwatch: logging's locks could not be adopted and stay raw: {exc!r}\n")
        last = Adoption()
    return last


def _adopt_logging() -> Adoption:
    logging = sys.modules.get("logging")
    if logging is None:
        return Adoption()  # not imported yet: its locks will be made under the patch
    adopted: list[str] = []
    left_raw: list[str] = []
    module_lock: Any = getattr(logging, "_lock", None)
    if not isinstance(module_lock, _RAW_RLOCK):
        if module_lock is not None and not isinstance(module_lock, InstrumentedLock):
            left_raw.append(f"logging._lock (a {type(module_lock).__name__}, not a C RLock)")
        return Adoption(tuple(adopted), tuple(left_raw))
    if module_lock._is_owned() or not module_lock.acquire(False):
        # Busy (possibly by this very thread: patch() called from a handler): handlers can't be listed safely.
        left_raw.append("logging._lock and every handler lock (logging's lock was held)")
        return Adoption(tuple(adopted), tuple(left_raw))
    try:
        handler_site = _handler_lock_site(logging)
        for ref in list(getattr(logging, "_handlerList", ())):
            handler = ref()
            if handler is None:
                continue
            label = f"{type(handler).__name__}.lock"
            lock = getattr(handler, "lock", None)
            if lock is None or isinstance(lock, InstrumentedLock):
                continue  # no lock (NullHandler), or made under a patch
            if not isinstance(lock, _RAW_RLOCK):
                left_raw.append(f"{label} (a {type(lock).__name__}, not a C RLock)")
                continue
            if _swap(weakref.ref(handler), "lock", lock, handler_site, label):
                adopted.append(label)
            else:
                left_raw.append(f"{label} (held)")
        if _swap(logging, "_lock", module_lock, _module_lock_site(logging), "logging._lock", held=True):
            adopted.insert(0, "logging._lock")
    finally:
        module_lock.release()  # the original: the swapped-in lock shares it, so this frees both
    return Adoption(tuple(adopted), tuple(left_raw))


def _swap(
    holder: Any, attribute: str, original: Any, site: tuple[str, int, str] | None, label: str, *, held: bool = False
) -> bool:
    """Put an instrumented RLock sharing ``original`` at ``holder.attribute``; False if that is not safe now.

    ``held``: the caller already holds ``original`` (checked free first); otherwise it is tried here.
    """
    target = holder() if isinstance(holder, weakref.ref) else holder
    if target is None:
        return False
    if not held and (original._is_owned() or not original.acquire(False)):
        return False
    try:
        stand_in = RLock()
        try:
            # An RLock over a C RLock takes the original itself; one over a plain lock, a wrapper.
            stand_in._real = original if isinstance(stand_in._real, _RAW_RLOCK) else _SharedRLock(original)
        except (AttributeError, TypeError):
            # Locks whose real lock cannot be lent (a compiled implementation): a lock of its
            # own is only safe while no other thread can be about to use the original.
            if not _only_thread():
                return False
            stand_in = RLock()
        _set_site(stand_in, site)
        setattr(target, attribute, stand_in)
    finally:
        if not held:
            original.release()
    _swaps.append(_Swap(holder, attribute, original, weakref.ref(stand_in), label))
    return True


def _set_site(lock: InstrumentedLock, site: tuple[str, int, str] | None) -> None:
    """Give an adopted lock logging's creation site: the same lock class as the ones logging makes later."""
    try:
        from lockwatch._state import lock_class

        lock._cls = lock_class(site, None, None, type(lock)._kind)
    except (ImportError, AttributeError, TypeError):  # another lock layout: it keeps the patching line's site
        pass


def _only_thread() -> bool:
    from _thread import get_ident

    from lockwatch import _snapshot

    others = set(sys._current_frames()) - {get_ident()} - set(_snapshot.internal_thread_idents)
    return not others


def restore() -> None:
    """Put the raw locks back where they are still in place and free (called by the last unpatch)."""
    kept = []
    for swap in reversed(_swaps):
        try:
            if not _restore(swap):
                kept.append(swap)
        except Exception:  # noqa: BLE001 - an adopted lock left in place still works as a lock
            kept.append(swap)
    _swaps[:] = reversed(kept)


def _restore(swap: _Swap) -> bool:
    """True when done with ``swap``: restored, or gone; False while its lock is busy."""
    target = swap.holder() if isinstance(swap.holder, weakref.ref) else swap.holder
    stand_in: RLock | None = swap.adopted()
    if stand_in is None or target is None:
        return True  # the stand-in or the handler is gone
    current: Any = getattr(target, swap.attribute, None)
    if current is not stand_in:
        return True  # something else replaced the lock since
    if stand_in._is_owned() or not stand_in.acquire(False):
        return False  # busy: keep the stand-in (it shares the raw lock, so it stays correct)
    try:
        setattr(target, swap.attribute, swap.original)
    finally:
        stand_in.release()
    return True


def adopted_locks() -> list[str]:
    """Labels of the locks currently standing in for raw ones."""
    labels = [swap.label for swap in _swaps]
    return sorted(labels, key=lambda label: label != "logging._lock")  # the module lock first


# --- where logging makes its locks --------------------------------------------------------------


def _module_lock_site(logging: Any) -> tuple[str, int, str] | None:
    import linecache

    filename = getattr(logging, "__file__", None)
    if not filename:
        return None
    for number, line in enumerate(linecache.getlines(filename), start=1):
        if line.startswith("_lock = "):
            return (filename, number, "<module>")
    return (filename, 1, "<module>")


def _handler_lock_site(logging: Any) -> tuple[str, int, str] | None:
    import inspect

    create = getattr(getattr(logging, "Handler", None), "createLock", None)
    code = getattr(create, "__code__", None)
    if create is None or code is None:
        return None
    try:
        lines, start = inspect.getsourcelines(create)
    except (OSError, TypeError):
        return (code.co_filename, code.co_firstlineno, code.co_name)
    for offset, line in enumerate(lines):
        if "RLock(" in line:
            return (code.co_filename, start + offset, code.co_name)
    return (code.co_filename, code.co_firstlineno, code.co_name)


# --- raw locks alive now (the pytest plugin's census) -------------------------------------------


def raw_locks() -> list[str]:
    """Labels of the raw (never instrumented) lock objects alive now, lockwatch's own left out.

    Found through the objects the garbage collector tracks: locks referenced only
    from C structures or from running frames are not found. One pass over the heap:
    meant for start-up, not for a large running program.
    """
    from lockwatch import _snapshot

    objects = gc.get_objects()
    own_holders = [
        obj for obj in objects
        if isinstance(obj, (InstrumentedLock, _SharedRLock, _Swap)) or _is_lockwatch_object(obj)
    ]
    # Python 3.10 keeps instance attributes in a __dict__ of their own: look one level further.
    own_holders += [vars(obj) for obj in own_holders if hasattr(obj, "__dict__") and not isinstance(obj, type)]
    own = {id(item) for item in gc.get_referents(*own_holders) if isinstance(item, _RAW_TYPES)}
    found: dict[int, Any] = {}
    for item in gc.get_referents(*objects):
        if isinstance(item, _RAW_TYPES) and id(item) not in own:
            found[id(item)] = item
    del objects, own_holders
    labels = _snapshot.attribute_labels(found.values())
    return sorted(labels.get(key, f"an unnamed {type(lock).__name__}") for key, lock in found.items())


def _is_lockwatch_object(obj: Any) -> bool:
    if isinstance(obj, dict):
        name = obj.get("__name__")
        return isinstance(name, str) and name.startswith("lockwatch.") and "__builtins__" in obj
    module = getattr(type(obj), "__module__", None)
    return isinstance(module, str) and module.startswith("lockwatch.")
