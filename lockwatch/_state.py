"""Live lock state: what each thread holds and waits for, kept with raw _thread primitives only."""

from __future__ import annotations

import os
import sys
import threading
from _thread import _local as _ThreadLocal
from _thread import allocate_lock as _allocate_raw_lock
from _thread import get_ident
from time import monotonic
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from lockwatch._locks import InstrumentedLock

# lockwatch never instruments or waits on its own locks: this one is a raw
# _thread lock captured at import, held only for a few bytecodes at a time.
registry_lock = _allocate_raw_lock()


class ThreadState:
    """What one thread holds (in acquisition order) and what it is blocked on, since when.

    Only the thread itself appends to ``held`` and sets ``waiting_for``; other
    threads read these fields without locking (one-field reads are atomic
    under the GIL), and tolerate a state that is a few bytecodes stale — the
    watchdog confirms every finding on a second look.
    """

    __slots__ = (
        "ident",
        "held",
        "waiting_for",
        "wait_since",
        "wait_timed",
        "pending_error",
        "alive",
        "name",
        "__weakref__",
    )

    def __init__(self, ident: int, name: str | None = None) -> None:
        self.ident = ident
        # The thread's name when its state was made: reports still name the
        # thread after it ended (the live name wins while it runs).
        self.name = name
        self.held: list[InstrumentedLock] = []
        self.waiting_for: InstrumentedLock | None = None
        self.wait_since: float | None = None
        self.wait_timed = False  # the current wait has a timeout (it cannot deadlock forever)
        self.pending_error: BaseException | None = None  # raised out of the current wait (break mode)
        self.alive = True  # False once the thread is known gone (e.g. not carried over a fork)

    def __repr__(self) -> str:
        return f"<ThreadState {self.ident} holding {len(self.held)} waiting_for={self.waiting_for!r}>"


# Per-thread pointer to the thread's own state: cheaper than a dict lookup by
# get_ident(), and a new thread that reuses a dead thread's ident gets a fresh
# state instead of inheriting the old one.
_local = _ThreadLocal()

#: ident -> state of every thread that has touched an instrumented lock.
threads: dict[int, ThreadState] = {}

_created_since_prune = 0


def current_state() -> ThreadState:
    """The calling thread's state, created on first use."""
    try:
        return _local.state  # type: ignore[no-any-return]
    except AttributeError:
        return _new_state()


def _new_state() -> ThreadState:
    global _created_since_prune
    ident = get_ident()
    state = ThreadState(ident, python_thread_name(ident))
    _local.state = state
    with registry_lock:
        threads[state.ident] = state
        _created_since_prune += 1
        prune = _created_since_prune >= 256
        if prune:
            _created_since_prune = 0
    if prune:
        prune_dead_threads()
    return state


def python_thread_name(ident: int) -> str | None:
    """The name of the threading.Thread running as ``ident``, or None (raw _thread threads).

    Reads ``threading._active`` (never ``current_thread()``, which would make a
    dummy Thread); a thread that is still starting is only in ``threading._limbo``
    (its start-up Event takes an instrumented lock before it is registered).
    """
    try:
        thread = threading._active.get(ident)  # type: ignore[attr-defined]
        if thread is None:
            thread = next((t for t in list(threading._limbo) if t._ident == ident), None)  # type: ignore[attr-defined]
        return None if thread is None else str(thread.name)
    except Exception:  # a name is a nicety: never fail a lock acquire over it
        return None


def prune_dead_threads() -> None:
    """Forget states of threads that ended holding and waiting for nothing."""
    live = sys._current_frames()
    with registry_lock:
        for ident, state in list(threads.items()):
            if ident not in live and not state.held and state.waiting_for is None:
                state.alive = False
                del threads[ident]


def states() -> list[ThreadState]:
    """A copy of all known thread states."""
    with registry_lock:
        return list(threads.values())


# --- held locks nobody can release ---------------------------------------------


def _refcounts(held: list[Any]) -> list[tuple[Any, int]]:
    # The same code measures the calibration probe and real locks, so the
    # references this function itself holds cancel out on any CPython.
    return [(lock, sys.getrefcount(lock)) for lock in list(held)]


# References to an object held only by a held list, as _refcounts counts them.
_ONLY_IN_HELD_LIST = _refcounts([object()])[0][1]


def reachable_held(state: ThreadState) -> list[Any]:
    """The locks ``state`` holds, without those nothing else references (see drop_unreachable).

    Safe from any thread: it only reads the held list.
    """
    return [lock for lock, refs in _refcounts(state.held) if refs > _ONLY_IN_HELD_LIST]


def drop_unreachable(held: list[Any]) -> None:
    """Forget held locks that nothing else references: acquired, never released, dropped.

    Such a lock can never be released, so it is no longer part of any lock
    order or wait; keeping it would make every later acquire of the thread
    look nested inside it. Called by the owning thread, off the hot path.
    """
    for lock, refs in _refcounts(held):
        if refs <= _ONLY_IN_HELD_LIST:
            try:
                held.remove(lock)
            except ValueError:
                pass


# --- hooks set by other parts (kept as module globals: read on the hot path) --

#: Called for a blocking acquire of ``lock`` by ``state`` when it holds other
#: locks and at least one (held → lock) order is not yet known; may raise
#: LockOrderViolation. Set by the lock-order checker; None when checking is off.
order_checker: Callable[[ThreadState, Any, list[Any]], None] | None = None

#: When True, blocked acquires wake up every BREAK_POLL seconds to see whether
#: the watchdog chose them as a deadlock victim (on_deadlock="break").
break_enabled = False
BREAK_POLL = 0.05


def wait_started(state: ThreadState, lock: Any, timed: bool) -> None:
    state.pending_error = None
    state.wait_timed = timed
    state.wait_since = monotonic()
    state.waiting_for = lock


def wait_ended(state: ThreadState) -> None:
    state.waiting_for = None
    state.wait_since = None
    state.pending_error = None


# --- fork ----------------------------------------------------------------------

_fork_callbacks: list[Callable[[], None]] = []


def on_fork_child(callback: Callable[[], None]) -> None:
    """Run ``callback`` in a forked child after lockwatch's own state is reset."""
    _fork_callbacks.append(callback)


def _after_fork_in_child() -> None:
    global registry_lock
    # The parent's registry lock may have been held by a thread that does not
    # exist in the child: start over with a fresh one.
    registry_lock = _allocate_raw_lock()
    ident = get_ident()
    mine = getattr(_local, "state", None)
    for state in threads.values():
        if state is not mine:
            state.alive = False
            state.waiting_for = None
    threads.clear()
    if mine is not None:
        mine.ident = ident
        mine.waiting_for = None
        threads[ident] = mine
    for callback in list(_fork_callbacks):
        try:
            callback()
        except Exception as exc:  # never break the child over lockwatch's bookkeeping
            print(f"lockwatch: after-fork reset failed: {exc!r}", file=sys.stderr)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
