"""Live lock state: lock classes, what each thread holds and waits for, and findings on their way to the reporter.

Everything here is written by user threads in the middle of an acquire, so the
rules of the recording side apply: plain data, no import, no I/O, no user code,
and no lock of lockwatch's own that a thread could wait on. The registries are
plain dicts and lists whose single operations are atomic under the GIL; a
reader that may see a dict change size while it copies simply copies again.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
import threading
import weakref
from _thread import _local as _ThreadLocal
from _thread import allocate_lock as _allocate_raw_lock
from _thread import get_ident
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lockwatch._locks import InstrumentedLock


# --- lock classes ------------------------------------------------------------------

Site = tuple[str, int, str]  # (file, line, function) where a lock was created


class LockClass:
    """Locks created by the same line of code (with the same name and rank): what lock order learns about.

    ``signal`` turns True the first time a lock of the class is released by a
    thread that did not take it: such a lock is a semaphore or a hand-off, not
    a mutex, and takes no part in lock ordering from then on.
    """

    __slots__ = ("key", "site", "name", "rank", "serial", "signal", "__weakref__")

    def __init__(self, key: tuple[Any, ...], site: Site | None, name: str | None, rank: int | None) -> None:
        self.key = key
        self.site = site
        self.name = name
        self.rank = rank
        self.serial = next(_class_serials)
        self.signal = False

    def __repr__(self) -> str:
        where = f"{os.path.basename(self.site[0])}:{self.site[1]}" if self.site else "?"
        return f"<LockClass {self.serial} {where} name={self.name!r}>"


_class_serials = itertools.count(1)
#: Classes kept alive whatever their locks do; cleared when it reaches this size.
RECENT_CLASSES = 4096
_recent_classes: dict[tuple[Any, ...], LockClass] = {}
#: Live classes by key. A class lives as long as one of its locks or a learned order refers to it.
_classes: dict[tuple[Any, ...], Any] = {}


def lock_class(site: Site | None, name: str | None, rank: int | None, kind: str = "Lock") -> LockClass:
    """The class of a ``kind`` lock created at ``site`` with ``name`` and ``rank`` (made on first use)."""
    key = (site[0], site[1], name, rank, kind) if site is not None else (None, None, name, rank, kind)
    found = _recent_classes.get(key)
    if found is not None:
        return found
    ref = _classes.get(key)
    found = None if ref is None else ref()
    if found is None:
        found = LockClass(key, site, name, rank)
        # A weak entry: 100k generated creation sites cost nothing once their locks are gone.
        _classes[key] = weakref.ref(found, functools.partial(_forget_class, key))
    # ...and a bounded strong one, so that a site making short-lived locks keeps its class.
    if len(_recent_classes) >= RECENT_CLASSES:
        _recent_classes.clear()  # never rebound: _locks reads this very dict
    _recent_classes[key] = found
    return found


def _forget_class(key: tuple[Any, ...], ref: Any) -> None:
    """Weak-reference callback: the class's last lock (and order) is gone."""
    if _classes.get(key) is ref:
        _classes.pop(key, None)


# --- held contexts -------------------------------------------------------------------


class Context:
    """One sequence of lock classes held at once, as a node of a shared tree (root: nothing held).

    A thread's state points at the node of what it holds. ``ok`` lists the
    classes whose acquisition under exactly this context was already learned
    and found harmless, so the hot path answers "nothing new" with one set
    lookup at any nesting depth.
    """

    __slots__ = ("parent", "cls", "children", "ok", "same_ok", "classes", "depth")

    def __init__(self, parent: Context | None, cls: LockClass | None) -> None:
        self.parent = parent
        self.cls = cls
        self.children: dict[LockClass, Context] = {}
        self.ok: set[LockClass] = set()
        self.depth: int = 0 if parent is None else parent.depth + 1
        base = frozenset() if parent is None else parent.classes
        self.classes: frozenset[LockClass] = base if cls is None else base | {cls}
        # Classes whose other-class orders are known here although the context already
        # holds a lock of that class: then each same-class pair is checked per instance.
        self.same_ok: set[LockClass] = set()

    def child(self, cls: LockClass) -> Context:
        """The context of holding this one plus a lock of ``cls``."""
        found = self.children.get(cls)
        if found is None:
            if next(_contexts_made) % MAX_CONTEXTS == 0:
                # Bounded: 100k generated creation sites must not keep 100k contexts. The
                # tree is forgotten (threads inside it keep their path) and relearned.
                ROOT.children.clear()
                ROOT.ok.clear()
            found = self.children.setdefault(cls, Context(self, cls))
        return found

    def __repr__(self) -> str:
        return f"<Context depth={self.depth} ok={len(self.ok)}>"


ROOT = Context(None, None)
#: Contexts made before the tree is forgotten and relearned (memory stays bounded).
MAX_CONTEXTS = 20_000
_contexts_made = itertools.count(1)


def context_of(held: list[Any], state: ThreadState) -> Context:
    """The context of the locks in ``held`` that ``state`` really owns (mutex classes only)."""
    ctx = ROOT
    for lock in held:
        cls = lock._cls
        if lock._owner is state and not cls.signal:
            ctx = ctx.child(cls)
    return ctx


# --- threads ---------------------------------------------------------------------------

_tokens = itertools.count(1)


class ThreadState:
    """What one thread holds (in acquisition order) and what it is blocked on, since when.

    Only the thread itself appends to ``held`` and sets ``waiting_for``. A lock
    released by another thread only clears the lock's owner; the entry it leaves
    in ``held`` is stale and skipped by every reader (``owned``), and the owner
    drops it at its next release or slow path. Other threads read these fields
    without locking and tolerate a state a few bytecodes old: the watchdog
    confirms every finding on a second look.
    """

    __slots__ = (
        "ident",
        "token",
        "name",
        "held",
        "ctx",
        "waiting_for",
        "wait_since",
        "wait_timed",
        "self_wait",
        "pending_error",
        "awaiting",
        "await_since",
        "await_timed",
        "running",
        "gone",
        "parker",
        "inside",
        "main",
        "alive",
        "__weakref__",
    )

    def __init__(self, ident: int, name: str | None = None) -> None:
        self.ident = ident
        # Unique for the life of the process: a new thread that reuses a dead
        # thread's ident is a different thread.
        self.token = next(_tokens)
        # The thread's name when its state was made: reports still name the
        # thread after it ended (the live name wins while it runs).
        self.name = name
        self.held: list[InstrumentedLock] = []
        self.ctx = ROOT
        self.waiting_for: InstrumentedLock | None = None
        self.wait_since: float | None = None
        self.wait_timed = False  # the current wait has a timeout (it cannot deadlock forever)
        self.self_wait = False  # the current wait is for a Lock this thread itself owns
        self.pending_error: BaseException | None = None  # raised out of the current wait (break mode)
        # A wait that is not for an instrumented lock (a join, a future, a Condition): a
        # tuple naming its kind and object, read by lockwatch._beyond on the reporting side.
        # The outermost such wait wins (Future.result waits in a Condition.wait).
        self.awaiting: tuple[Any, ...] | None = None
        self.await_since: float | None = None
        self.await_timed = False
        # The concurrent.futures Future this thread runs now, as a pool worker (or None).
        self.running: Any = None
        # How the thread went, once it is gone while holding locks (said by reports).
        self.gone: str | None = None
        # Break mode parks a blocked acquire on this raw lock (locked while not parked),
        # so that only the chosen victim is woken, and blocked threads cost no CPU.
        self.parker = _allocate_raw_lock()
        self.parker.acquire()
        # >0 while lockwatch itself works in this thread (checking, warning): acquires
        # made meanwhile (a finalizer, a logging handler) are not the program's order.
        self.inside = 0
        self.alive = True  # False once the thread is known gone (ended, or not carried over a fork)
        # The main thread runs the signal handlers: its fast path guards against a
        # KeyboardInterrupt landing between the try-acquire and the bookkeeping.
        self.main = ident == threading.main_thread().ident

    def owned(self) -> list[InstrumentedLock]:
        """The locks this thread really holds now, oldest first (stale entries skipped).

        A lock still naming this thread as owner but free was released by a release
        that an exception (Ctrl-C) cut short after the real lock went: not held.
        """
        return [lock for lock in list(self.held) if lock._owner is self and lock.locked()]

    def drop_stale(self, unreachable: bool = False) -> None:
        """Forget held entries of locks released by other threads; called by the thread itself.

        With ``unreachable``, also forget locks acquired and then dropped while held:
        nothing can ever release them, and they would make every later acquire look nested.
        """
        held = self.held
        if unreachable:
            keep = {id(lock) for lock in reachable_held(self)}
            if len(keep) != len(held):
                held[:] = [lock for lock in held if id(lock) in keep]
        elif any(lock._owner is not self for lock in held):
            held[:] = [lock for lock in held if lock._owner is self]
        self.ctx = context_of(held, self)

    def __repr__(self) -> str:
        return f"<ThreadState {self.ident} holding {len(self.held)} waiting_for={self.waiting_for!r}>"


# Per-thread pointer to the thread's own state: cheaper than a dict lookup by
# get_ident(), and a new thread that reuses a dead thread's ident gets a fresh state.
_local = _ThreadLocal()

#: token -> state of every thread that has touched an instrumented lock.
threads: dict[int, ThreadState] = {}
#: ident -> the newest state made by a thread of that ident (a chain of waits follows it
#: from a joined thread to what that thread waits for, in constant time).
by_ident: dict[int, ThreadState] = {}

_created_since_prune = itertools.count(1)


def current_state() -> ThreadState:
    """The calling thread's state, created on first use."""
    try:
        state: ThreadState = _local.state
    except AttributeError:
        return _new_state()
    return state


def _new_state() -> ThreadState:
    ident = get_ident()
    state = ThreadState(ident, python_thread_name(ident))
    _local.state = state
    # No lock: one dict store is atomic, and a finalizer run by the allocation
    # below may itself take a lock and land here (re-entrancy must be harmless).
    threads[state.token] = state
    by_ident[ident] = state
    if next(_created_since_prune) % 256 == 0:
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
    except Exception:  # noqa: BLE001  (a name is a nicety: never fail a lock acquire over it)
        return None


def states() -> list[ThreadState]:
    """A copy of all known thread states."""
    while True:
        try:
            return list(threads.values())
        except RuntimeError:  # the dict changed size while being copied: copy again
            continue


def prune_dead_threads() -> None:
    """Mark states of ended threads; forget those that hold and wait for nothing."""
    live = sys._current_frames()
    for state in states():
        if state.ident in live and state.alive:
            continue
        if state.ident not in live:
            state.alive = False
        if not state.owned() and state.waiting_for is None:
            threads.pop(state.token, None)
            if by_ident.get(state.ident) is state:
                by_ident.pop(state.ident, None)


# --- held locks nobody can release ---------------------------------------------


def _refcounts(held: list[Any]) -> list[tuple[Any, int]]:
    # The same code measures the calibration probe and real locks, so the
    # references this function itself holds cancel out on any CPython.
    return [(lock, sys.getrefcount(lock)) for lock in list(held)]


# References to an object held only by a held list, as _refcounts counts them.
_ONLY_IN_HELD_LIST = _refcounts([object()])[0][1]


def reachable_held(state: ThreadState) -> list[Any]:
    """The locks ``state`` owns, without those nothing else references (acquired, then dropped).

    Such a lock can never be released, so it is no longer part of any lock
    order or wait. Safe from any thread: it only reads.
    """
    # Counted on the held list itself (a copy would add a reference to each lock).
    return [
        lock for lock, refs in _refcounts(state.held)
        if refs > _ONLY_IN_HELD_LIST and lock._owner is state and lock.locked()
    ]


# --- hooks set by other parts (kept as module globals: read on the hot path) --

#: Called for a blocking acquire of ``lock`` by ``state`` when the lock's class
#: is not yet known in the thread's context; may raise LockOrderViolation. Set
#: by the lock-order checker; None when checking is off.
order_checker: Callable[[ThreadState, Any], Any] | None = None

#: When True, blocked acquires park on their thread's parker so that the
#: watchdog can wake a deadlock victim (on_deadlock="break").
break_enabled = False
#: A parked waiter looks at its lock again after this long even if nobody woke
#: it: a wake-up lost to a racing timeout costs at most this much delay.
PARK_FALLBACK = 5.0

#: Threads lockwatch runs itself: never order-checked, left out of reports.
internal_thread_idents: set[int] = set()

def nobody_to_notify() -> None:
    """What notify_watchdog is while lockwatch is not patched in."""


#: Set by the watchdog: starts it if needed and wakes it. Called from user
#: threads mid-acquire, so it only starts a raw thread or releases a raw lock.
notify_watchdog: Callable[[], None] = nobody_to_notify
#: Set by the watchdog: starts it if it is not running, else does nothing (a wait that
#: only needs watching at the next look, such as a Condition wait, wakes nobody).
ensure_watchdog: Callable[[], None] = nobody_to_notify

#: Findings recorded by user threads for the reporter (the watchdog thread):
#: tuples whose first item names the kind. Appended from any thread, drained by the reporter.
findings: list[tuple[Any, ...]] = []


def hand_over(finding: tuple[Any, ...]) -> None:
    """Queue a finding for the reporter and wake it (recording side: no I/O, no wait)."""
    findings.append(finding)
    notify_watchdog()


def wait_started(state: ThreadState, lock: Any, timed: bool, self_wait: bool = False) -> None:
    state.pending_error = None
    state.wait_timed = timed
    state.self_wait = self_wait
    state.wait_since = monotonic()
    state.waiting_for = lock
    if not timed:
        wait_began(state)


#: Longest chain of waits followed from a new wait (a cycle longer than this is found by the next look).
MAX_CHAIN = 64
#: monotonic() when a new wait last closed a chain of waits on its own waiter (0: never):
#: the watchdog confirms such a suspected deadlock with one short re-check.
suspected_at = 0.0


def wait_began(state: ThreadState) -> None:
    """A wait that can last forever began: follow its chain of owners now, then wake the watchdog.

    Pointer chasing over fields only (owners, what they wait for), at most
    MAX_CHAIN steps: a chain that closes on ``state`` is a suspected deadlock,
    which the watchdog confirms at once instead of one interval later.
    """
    global suspected_at
    try:
        if chain_closes(state):
            suspected_at = monotonic()
        else:
            owner = _next_owner(state)
            if owner is not None and not owner.alive:
                suspected_at = monotonic()  # waits for a thread that no longer exists
    except Exception:  # noqa: BLE001  (a racing change of a field: the next look sees it anyway)
        pass
    notify_watchdog()  # the watchdog starts with the first wait that can last forever


def _next_owner(state: ThreadState) -> ThreadState | None:
    """The thread whose progress ``state``'s current untimed wait needs first, if one is known."""
    lock = state.waiting_for
    if lock is not None:
        return None if state.wait_timed else lock._owner
    awaiting = state.awaiting
    if awaiting is None or state.await_timed:
        return None
    kind, obj = awaiting
    if kind == "join":
        ident = getattr(obj, "_ident", None)
        return None if ident is None else by_ident.get(ident)
    if kind == "future":
        runner = running_futures.get(id(obj))
        return runner if runner is not None else only_worker(obj)
    return None


def _no_worker(future: Any) -> ThreadState | None:
    return None


#: The state of the one worker of the pool a pending future waits in, if it has exactly
#: one (set by lockwatch._beyond): a one-worker pool's task waiting for its own sub-task.
only_worker: Callable[[Any], ThreadState | None] = _no_worker


#: id(future) -> the state of the worker running it (lockwatch._beyond keeps it).
running_futures: dict[int, ThreadState] = {}


def chain_closes(state: ThreadState) -> bool:
    """Whether following "waits for, owned by" from ``state`` comes back to it."""
    node: ThreadState | None = _next_owner(state)
    for _ in range(MAX_CHAIN):
        if node is None:
            return False
        if node is state:
            return True
        node = _next_owner(node)
    return False


def wait_ended(state: ThreadState) -> None:
    state.waiting_for = None
    state.wait_since = None
    state.pending_error = None
    state.self_wait = False


# --- fork ----------------------------------------------------------------------

_fork_callbacks: list[Callable[[], None]] = []


def on_fork_child(callback: Callable[[], None]) -> None:
    """Run ``callback`` in a forked child after lockwatch's own state is reset."""
    _fork_callbacks.append(callback)


def _after_fork_in_child() -> None:
    mine = getattr(_local, "state", None)
    for state in states():
        if state is not mine:
            state.alive = False
            state.waiting_for = None
            state.gone = "was not carried over a fork (os.fork() copies only the forking thread)"
    threads.clear()
    by_ident.clear()
    del findings[:]
    if mine is not None:
        mine.ident = get_ident()
        mine.main = True  # the forking thread is the child's main thread
        mine.waiting_for = None
        mine.awaiting = None
        threads[mine.token] = mine
        by_ident[mine.ident] = mine
        # The parker may have been mid-use in the parent: the child starts with a fresh one.
        mine.parker = _allocate_raw_lock()
        mine.parker.acquire()
    for callback in list(_fork_callbacks):
        try:
            callback()
        except Exception as exc:  # noqa: BLE001  (never break the child over lockwatch's bookkeeping)
            print(f"lockwatch: after-fork reset failed: {exc!r}", file=sys.stderr)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
