"""Drop-in instrumented Lock and RLock that record holders and waiters in the live lock state.

The hot path is an uncontended acquire whose lock order is already known: a
try-acquire on the real lock, then O(1) bookkeeping whatever the nesting depth
(the thread's held context answers "known order" with one set lookup). Every
step after the real lock is taken runs under ``except BaseException``, so an
exception arriving mid-bookkeeping (KeyboardInterrupt, a refused order)
leaves the lock as it was before the call.

Two cores run the hot path (acquire, release, ``with``), as coverage.py has a
C tracer beside a Python one: the C core (``lockwatch/_ccore.c``, built when a
compiler is at hand) and its pure-Python twin here (``_PyLockCore``,
``_PyRLockCore``). Both work on the same state and hand every slow path to the
one Python definition of it below. ``LOCKWATCH_PURE=1`` forces the Python core.
"""

from __future__ import annotations

import itertools
import operator
import os
import queue
import sys
import threading
import warnings
from _thread import RLock as _RawRLock
from _thread import allocate_lock as _allocate_raw_lock
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from lockwatch import _state
from lockwatch._state import LockClass, ThreadState, current_state, lock_class, wait_ended, wait_started

# Recently used lock classes by key (see _state.lock_class); read directly by __init__.
_recent_classes = _state._recent_classes

# The per-thread pointer to each thread's own state (never replaced, even by fork).
_local = _state._local


def _load_core() -> tuple[Any, str]:
    """The C core (or None) and how to name the core in use, decided once at import."""
    if os.environ.get("LOCKWATCH_PURE", "") not in ("", "0"):
        return None, "Python (LOCKWATCH_PURE=1)"
    try:
        from lockwatch import _ccore  # type: ignore[attr-defined]
    except ImportError:
        import sysconfig  # only here: the common import path stays lean

        if sysconfig.get_config_var("Py_GIL_DISABLED"):
            return None, "Python (free-threaded build)"
        return None, "Python (C core not built)"
    try:
        _ccore.configure(_state, sys.modules[__name__], _allocate_raw_lock(), _allocate_raw_lock)
    except Exception as exc:  # noqa: BLE001  (a C core that does not fit this Python core is not used)
        return None, f"Python (C core unusable: {exc})"
    return _ccore, "C"


_ccore, CORE = _load_core()


def core() -> str:
    """Which core runs the locks' hot paths: ``"C"``, or ``"Python (<why>)"``."""
    return CORE


# Serial numbers name locks in reports ("L12"); itertools.count is atomic under the GIL.
_serials = itertools.count(1)

# Frames in these files are skipped when recording where a lock was created,
# so a Condition() or Queue() is attributed to the user's line that made it.
_SKIPPED_CREATION_FILES = frozenset(
    os.path.normcase(os.path.abspath(path))
    for path in (threading.__file__, queue.__file__)
)
# lockwatch's own package directory (not any folder that happens to be called "lockwatch").
_PACKAGE_DIR = os.path.normcase(os.path.dirname(os.path.abspath(__file__))) + os.sep
_skip_cache: dict[str, bool] = {}

# C callables: ``list.extend(map(_try_acquire, (real,)))`` stores the try-acquire's answer
# without any Python code running between the acquire and the store (see _acquire_in_main_thread).
_try_acquire = operator.methodcaller("acquire", False)
_release = operator.methodcaller("release")


# Guards the one-time creation of a lock's list of parked waiters (break mode only).
_park_list_lock = _allocate_raw_lock()


def _is_skipped(filename: str) -> bool:
    skipped = _skip_cache.get(filename)
    if skipped is None:
        if len(_skip_cache) > 10_000:
            _skip_cache.clear()  # generated code (exec, templates) makes new file names without end
        path = os.path.normcase(os.path.abspath(filename))
        skipped = path in _SKIPPED_CREATION_FILES or path.startswith(_PACKAGE_DIR)
        _skip_cache[filename] = skipped
    return skipped


def _creation_site() -> tuple[str, int, str] | None:
    frame: Any = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        skipped = _skip_cache.get(code.co_filename)
        if skipped is None:
            skipped = _is_skipped(code.co_filename)
        if not skipped:
            return (code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
    return None


def site_outside(is_skipped: Callable[[str], bool], depth: int) -> tuple[str, int, str] | None:
    """(file, line, function) of the first frame ``depth`` calls up or further out whose file is not skipped.

    For other instrumented primitives (asyncio's) with a skip rule of their own; the
    locks' own _creation_site above is this loop with its cache lookup inlined.
    """
    frame: Any = sys._getframe(depth)
    while frame is not None:
        code = frame.f_code
        if not is_skipped(code.co_filename):
            return (code.co_filename, frame.f_lineno or 0, code.co_name)
        frame = frame.f_back
    return None


def _check_arguments(blocking: Any, timeout: Any) -> None:
    """Raise exactly what the real lock raises for these acquire() arguments.

    A fresh raw lock is free, so acquiring it validates and returns at once.
    Only called off the hot path (a timeout was given, or the try failed).
    """
    _allocate_raw_lock().acquire(blocking, timeout)


def _check_new(name: Any, rank: Any, cls: str) -> None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"lockwatch.{cls}(): name must be a str or None, not {type(name).__name__}")
    if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool)):
        raise TypeError(f"lockwatch.{cls}(): rank must be an int or None, not {type(rank).__name__}")


class _PyLockFields:
    """The fields of an instrumented lock in the Python core (the C core has them as C members)."""

    __slots__ = ("_real", "_owner", "_cls", "_serial", "_parked", "_preds", "__weakref__")


if TYPE_CHECKING:
    _LockFields = _PyLockFields
else:
    _LockFields = _PyLockFields if _ccore is None else _ccore.LockBase


class InstrumentedLock(_LockFields):
    """What Lock and RLock share: identity, lock class, and the blocking (slow) path."""

    __slots__ = ()

    _kind = "Lock"  # part of the lock class: a Lock and an RLock made on one line are two classes
    _raw_factory = staticmethod(_allocate_raw_lock)  # what the real lock underneath is

    _real: Any
    _owner: Any  # the owning ThreadState, or None (Any: compared by identity with thread-local lookups)
    _cls: LockClass
    _serial: int
    _parked: list[Any] | None
    _preds: dict[int, frozenset[int]] | None

    def __init__(self, name: str | None = None, *, rank: int | None = None) -> None:
        if name is not None or rank is not None:
            _check_new(name, rank, type(self).__name__)
        self._real = self._raw_factory()
        self._owner = None
        site = _creation_site()
        # The common case inlined: a site that made a lock of this kind lately.
        cls = _recent_classes.get((site[0], site[1], name, rank, self._kind)) if site is not None else None
        self._cls = cls if cls is not None else lock_class(site, name, rank, self._kind)
        self._serial = next(_serials)
        # Parked waiters' parkers (break mode), made on first use: a release wakes one.
        self._parked = None
        # Locks of the same class known to be taken before this one: serial -> the gate
        # serials held every time (made by the checker, bounded).
        self._preds = None

    # --- read-only facts, used by reports ------------------------------------

    @property
    def name(self) -> str | None:
        """The name given at creation, if any."""
        return self._cls.name

    @property
    def rank(self) -> int | None:
        """The declared rank (lower ranks are taken first), if any."""
        return self._cls.rank

    @property
    def id(self) -> str:
        """The id reports use for this lock, e.g. ``"L12"``."""
        return f"L{self._serial}"

    @property
    def site(self) -> tuple[str, int, str] | None:
        """Where the lock was created: (file, line, function)."""
        return self._cls.site

    def locked(self) -> bool:
        """True if any thread holds the lock (Lock and RLock each answer it their way)."""
        raise NotImplementedError

    def owner_ident(self) -> int | None:
        """The thread id of the current owner, or None."""
        owner = self._owner
        return None if owner is None else owner.ident

    # --- shared pieces of acquire and release -------------------------------------------

    def _record(self, state: ThreadState) -> None:
        """Bookkeeping of a successful acquire: owner, held list, held context."""
        cls = self._cls
        if cls.signal:
            # A hand-off lock leaves stale entries behind (its own among them): keep held bounded.
            state.drop_stale()
            self._owner = state
            state.held.append(self)
        else:
            self._owner = state
            state.held.append(self)
            ctx = state.ctx
            state.ctx = ctx.children.get(cls) or ctx.child(cls)

    def _unrecord(self, state: ThreadState) -> None:
        """Undo _record for the owning thread's own release."""
        self._owner = None
        held = state.held
        if held and held[-1] is self:
            del held[-1]
            ctx = state.ctx
            if ctx.cls is self._cls:
                state.ctx = ctx.parent  # type: ignore[assignment]
            elif not self._cls.signal:
                state.drop_stale()
        else:
            _discard(held, self)
            state.drop_stale()

    def _order_known(self, state: ThreadState) -> bool:
        """Whether taking this lock in the thread's held context teaches nothing new (set lookups only)."""
        return self._cls in state.ctx.ok or self._same_class_known(state)

    def _same_class_known(self, state: ThreadState) -> bool:
        """Same-class nesting (two accounts, two forks): whether every such pair is already known."""
        ctx = state.ctx
        cls = self._cls
        preds = self._preds
        if preds is None or cls not in ctx.same_ok:
            return False
        held = state.held
        for index, other in enumerate(held):
            if other._cls is cls and other is not self and other._owner is state:
                gates = preds.get(other._serial)
                if gates is None:
                    return False
                # Known with these gates held before it: the same or more gates teach nothing new.
                if gates and not gates <= {gate._serial for gate in held[:index]}:
                    return False
        return True

    def _learn(self, state: ThreadState) -> Any:
        """Hand a new order to the lock-order checker; returns a warning to issue, or raises to refuse."""
        checker = _state.order_checker
        if checker is None or state.inside:
            return None
        return checker(state, self)

    def _warn(self, state: ThreadState, warning: Warning) -> None:
        """Issue a lock-order warning; if that raises (warnings as errors), the acquire is undone."""
        try:
            _warn(state, warning)
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """An exception interrupted an acquire after the real lock was taken: give the lock back."""
        state = getattr(_local, "state", None)
        if state is not None and self._owner is state:
            self._unrecord(state)
        self._release_real()

    def _abandon_if_taken(self) -> None:
        """An exception interrupted an acquire, maybe before the real lock was taken, maybe after."""
        state = getattr(_local, "state", None)
        if state is not None and self._owner is state:
            self._unrecord(state)
            self._release_real()
        elif self._real_is_mine():
            self._release_real()

    def _real_is_mine(self) -> bool:
        """Whether this thread holds the real lock without lockwatch having recorded it (unknowable for a Lock)."""
        return False

    def _release_real(self) -> None:
        self._real.release()
        if self._parked:
            self._wake_one()

    def _release_in_main_thread(self, owner: ThreadState) -> None:
        """The owner's release where signal handlers run: an interruption never keeps the lock taken."""
        released: list[None] = []
        try:
            self._unrecord(owner)
            released.extend(map(_release, (self._real,)))  # stored by C, before any handler runs
            if self._parked:
                self._wake_one()
        except BaseException:
            if not released:
                self._real.release()
            raise

    def _wake_one(self) -> None:
        parked = self._parked
        try:
            parker = parked.pop(0)  # type: ignore[union-attr]
        except (IndexError, AttributeError):
            return
        try:
            parker.release()
        except RuntimeError:  # already woken
            pass

    def _wait(self, state: ThreadState, blocking: Any, timeout: Any, self_wait: bool = False) -> bool:
        """Block for the real lock as a registered waiter; True once acquired."""
        if timeout != -1:  # only a timeout can be invalid ("blocking" is any truth value)
            _check_arguments(blocking, timeout)
        if not blocking:
            return False
        real = self._real
        if timeout != -1 and real.acquire(False):
            return True
        wait_started(state, self, timeout != -1, self_wait)
        try:
            if not _state.break_enabled:
                return bool(real.acquire(True, timeout))
            return self._park(state, real, timeout)
        finally:
            wait_ended(state)

    def _park(self, state: ThreadState, real: Any, timeout: Any) -> bool:
        """Break mode: sleep on the thread's parker until a release or the watchdog wakes it.

        A release wakes one parked waiter; the watchdog wakes only a deadlock
        victim, whose ``pending_error`` is then raised. Blocked threads cost
        nothing while they sleep.
        """
        parked = self._parked
        if parked is None:
            fresh: list[Any] = []
            with _park_list_lock:
                if self._parked is None:
                    self._parked = fresh
                parked = self._parked
        assert parked is not None
        parker = state.parker
        deadline = None if timeout == -1 else monotonic() + timeout
        acquired = popped = False
        try:
            while True:
                parked.append(parker)
                try:
                    # Tried again after registering: a release in between is not missed.
                    if real.acquire(False):
                        acquired = True
                        return True
                    error = state.pending_error
                    if error is not None:
                        raise error
                    nap = _state.PARK_FALLBACK
                    if deadline is not None:
                        remaining = deadline - monotonic()
                        if remaining <= 0:
                            return False
                        nap = min(nap, remaining)
                    parker.acquire(True, nap)
                finally:
                    popped = not _discard(parked, parker)  # a release took it off the list to wake it
        finally:
            parker.acquire(False)  # the parker is locked again whatever woke it
            if popped and not acquired:
                # Woken by a release, but leaving without the lock (timeout, victim, interrupt):
                # pass the wake-up on, or another waiter could sleep while the lock is free.
                self._wake_one()

    def _describe(self) -> str:
        name = self._cls.name
        named = f" name={name!r}" if name is not None else ""
        return f"lockwatch.{type(self).__name__} object {self.id}{named}"


class _PyLockCore(InstrumentedLock):
    """Lock's hot paths in Python (the twin of ``_ccore.LockCore``)."""

    __slots__ = ()

    _acquire_slow: Callable[[Any, Any], bool]
    _released_by_other: Callable[[], None]

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, exactly like ``threading.Lock.acquire``."""
        if timeout == -1:
            try:
                state = _local.state
            except AttributeError:
                state = current_state()
            if state.main:
                return self._acquire_in_main_thread(state, blocking)
            if self._real.acquire(False):
                try:
                    ctx = state.ctx
                    cls = self._cls
                    warning = None
                    if (ctx.depth and blocking and cls not in ctx.ok and _state.order_checker
                            and not self._same_class_known(state)):
                        warning = self._learn(state)  # may raise (order="raise"): the lock is given back
                        ctx = state.ctx
                    if cls.signal:
                        self._record(state)
                    else:  # _record, inlined: this is the hot path
                        self._owner = state
                        state.held.append(self)
                        try:
                            state.ctx = ctx.children[cls]
                        except KeyError:
                            state.ctx = ctx.child(cls)
                except BaseException:
                    self._abandon()
                    raise
                if warning is not None:
                    self._warn(state, warning)
                return True
        return self._acquire_slow(blocking, timeout)

    def _acquire_in_main_thread(self, state: ThreadState, blocking: Any) -> bool:
        """The fast path where signal handlers run: between any two steps a KeyboardInterrupt may land.

        The try-acquire's answer is stored by C code (list.extend over map) before the
        interpreter can run a handler, so an exception at any point still knows whether
        this call took the lock, and gives it back: the same guarantee as CPython's own
        ``with`` on a C lock.
        """
        got: list[bool] = []
        warning = None
        try:
            got.extend(map(_try_acquire, (self._real,)))
            if got[0]:
                ctx = state.ctx
                cls = self._cls
                if (ctx.depth and blocking and cls not in ctx.ok and _state.order_checker
                        and not self._same_class_known(state)):
                    warning = self._learn(state)
                self._record(state)
        except BaseException:
            if got and got[0]:
                if self._owner is state:
                    self._unrecord(state)
                self._release_real()
            raise
        if not got[0]:
            return self._acquire_slow(blocking, -1)
        if warning is not None:
            self._warn(state, warning)  # gives the lock back if it raises (warnings as errors)
        return True

    __enter__ = acquire

    def release(self) -> None:
        """Release the lock; any thread may release it, as with ``threading.Lock``."""
        owner = self._owner
        if owner is not None:
            me: Any = getattr(_local, "state", None)
            if owner is me:
                # The real lock first: an interruption after it (Ctrl-C lands in the main
                # thread) leaves stale bookkeeping, which every reader skips, never a lock
                # taken for good. No call between the test and the store: one step under the GIL.
                self._real.release()
                if self._owner is owner:
                    self._owner = None
                held = owner.held
                if held and held[-1] is self:
                    del held[-1]
                    ctx = owner.ctx
                    if ctx.cls is self._cls:
                        owner.ctx = ctx.parent
                    elif not self._cls.signal:
                        owner.drop_stale()
                else:
                    _discard(held, self)
                    owner.drop_stale()
                if self._parked:
                    self._wake_one()
                return
            self._released_by_other()
        elif self._real.locked():
            # Taken but not yet recorded: its taker is between the try and the
            # owner store. Only another thread can be releasing it.
            self._cls.signal = True
        self._real.release()
        if self._parked:
            self._wake_one()

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        # The body of release(), repeated: a call saved on every ``with`` block (~15 % here).
        owner = self._owner
        if owner is not None:
            me: Any = getattr(_local, "state", None)
            if owner is me:  # the thread itself, not its reusable ident
                # The real lock first: an interruption after it (Ctrl-C lands in the main
                # thread) leaves stale bookkeeping, which every reader skips, never a lock
                # taken for good. No call between the test and the store: one step under the GIL.
                self._real.release()
                if self._owner is owner:
                    self._owner = None
                held = owner.held
                if held and held[-1] is self:
                    del held[-1]
                    ctx = owner.ctx
                    if ctx.cls is self._cls:
                        owner.ctx = ctx.parent
                    elif not self._cls.signal:
                        owner.drop_stale()
                else:
                    _discard(held, self)
                    owner.drop_stale()
                if self._parked:
                    self._wake_one()
                return
            self._released_by_other()
        elif self._real.locked():
            self._cls.signal = True
        self._real.release()
        if self._parked:
            self._wake_one()


if TYPE_CHECKING:
    _LockCore = _PyLockCore
else:
    _LockCore = _PyLockCore if _ccore is None else _ccore.LockCore


class Lock(_LockCore, InstrumentedLock):
    """A drop-in ``threading.Lock`` that records its holder and waiters.

    Like the original, it may be released by a thread other than the one that
    acquired it; its lock class then counts as a signal, not a mutex, and
    leaves lock-order checking.
    """

    __slots__ = ()

    def _acquire_slow(self, blocking: Any, timeout: Any) -> bool:
        state = current_state()
        self_wait = blocking and self._owner is state
        warning = None
        if blocking and timeout == -1 and not self_wait and state.ctx.depth and not self._order_known(state):
            warning = self._learn(state)  # may raise, before the thread blocks
        if not self._wait(state, blocking, timeout, self_wait):
            return False
        try:
            self._record(state)
        except BaseException:
            self._abandon()
            raise
        if warning is not None:
            self._warn(state, warning)
        return True

    def _released_by_other(self) -> None:
        # The owner's held list is the owner's: it drops the stale entry itself.
        self._owner = None
        self._cls.signal = True

    def locked(self) -> bool:
        """True if the lock is held by any thread."""
        return self._real.locked()

    # Condition's fallback for a plain lock treats "locked by anyone" as owned;
    # this is the same answer without a try-acquire.
    def _is_owned(self) -> bool:
        return self._real.locked()

    def _at_fork_reinit(self) -> None:
        self._owner = None
        self._parked = None
        self._real._at_fork_reinit()

    def __repr__(self) -> str:
        status = "locked" if self._real.locked() else "unlocked"
        return f"<{status} {self._describe()} at {id(self):#x}>"


class _PyRLockCore(InstrumentedLock):
    """RLock's hot paths in Python (the twin of ``_ccore.RLockCore``), and its recursion count."""

    __slots__ = ("_count",)
    # The real lock is the C RLock here: it records its owner in the same C call that takes
    # it, so a signal handler that runs between that call and lockwatch's bookkeeping, and
    # takes this same RLock again, gets it reentrantly, exactly as with threading.RLock.
    # (The C core needs no such help: nothing runs between its acquire and its bookkeeping.)
    _raw_factory = staticmethod(_RawRLock)  # type: ignore[assignment]

    _count: int
    _acquire_slow: Callable[[ThreadState, Any, Any, int], bool]

    def __init__(self, name: str | None = None, *, rank: int | None = None) -> None:
        super().__init__(name, rank=rank)
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, exactly like ``threading.RLock.acquire``."""
        try:
            state = _local.state
        except AttributeError:
            state = current_state()
        if timeout == -1:
            if self._owner is state:
                self._count += 1
                return True
            # The C acquire is inside the try: an exception raised right after it returns
            # (KeyboardInterrupt from a signal handler) still gives the lock back.
            try:
                if self._real.acquire(False):
                    ctx = state.ctx
                    cls = self._cls
                    warning = None
                    if (ctx.depth and blocking and cls not in ctx.ok and _state.order_checker
                            and not self._same_class_known(state)):
                        warning = self._learn(state)
                        ctx = state.ctx
                    self._count = 1
                    # _record, inlined (an RLock is never released by another thread: never a signal)
                    self._owner = state
                    state.held.append(self)
                    try:
                        state.ctx = ctx.children[cls]
                    except KeyError:
                        state.ctx = ctx.child(cls)
                    if warning is not None:
                        self._warn(state, warning)
                    return True
            except BaseException:
                self._abandon_if_taken()
                raise
        return self._acquire_slow(state, blocking, timeout, 1)

    __enter__ = acquire

    def release(self) -> None:
        """Release once; the lock is free when every acquire has been matched."""
        try:
            state: ThreadState = _local.state
        except AttributeError:  # a thread that never took an instrumented lock
            raise RuntimeError("cannot release un-acquired lock") from None
        if self._owner is not state:
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count - 1
        if count:
            self._count = count
            return
        if state.main:
            self._release_in_main_thread(state)
            return
        # Inlined _unrecord (the owner's release is the hot path).
        self._owner = None
        held = state.held
        if held and held[-1] is self:
            del held[-1]
            ctx = state.ctx
            if ctx.cls is self._cls:
                state.ctx = ctx.parent
            else:
                state.drop_stale()
        else:
            _discard(held, self)
            state.drop_stale()
        self._real.release()
        if self._parked:
            self._wake_one()

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        # The body of release(), repeated: a call saved on every ``with`` block.
        try:
            state: ThreadState = _local.state
        except AttributeError:
            raise RuntimeError("cannot release un-acquired lock") from None
        if self._owner is not state:
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count - 1
        if count:
            self._count = count
            return
        if state.main:
            self._release_in_main_thread(state)
            return
        self._owner = None
        held = state.held
        if held and held[-1] is self:
            del held[-1]
            ctx = state.ctx
            if ctx.cls is self._cls:
                state.ctx = ctx.parent
            else:
                state.drop_stale()
        else:
            _discard(held, self)
            state.drop_stale()
        self._real.release()
        if self._parked:
            self._wake_one()


if TYPE_CHECKING:
    _RLockCore = _PyRLockCore
else:
    _RLockCore = _PyRLockCore if _ccore is None else _ccore.RLockCore


class RLock(_RLockCore, InstrumentedLock):
    """A drop-in ``threading.RLock`` that records its owner, recursion count and waiters.

    Reentrancy is handled here (owner + count over a raw lock), so a nested
    acquire by the owner never touches the real lock.
    """

    __slots__ = ()
    _kind = "RLock"

    def _acquire_slow(self, state: ThreadState, blocking: Any, timeout: Any, count: int) -> bool:
        if self._owner is state:
            _check_arguments(blocking, timeout)
            self._count += count
            return True
        warning = None
        if blocking and timeout == -1 and state.ctx.depth and not self._order_known(state):
            warning = self._learn(state)  # may raise, before the thread blocks
        if not self._wait(state, blocking, timeout):
            return False
        try:
            self._count = count
            self._record(state)
        except BaseException:
            self._abandon()
            raise
        if warning is not None:
            self._warn(state, warning)
        return True

    def locked(self) -> bool:
        """True if any thread holds the lock (``RLock.locked`` of Python 3.14)."""
        if self._owner is not None:
            return True
        # Taken but not yet recorded (or the real RLock lacks locked(), before 3.14): ask it.
        if self._real.acquire(False):
            self._real.release()
            return False
        return True

    def _real_is_mine(self) -> bool:
        # The C RLock knows its owner: held by this thread but not recorded means this
        # thread's own acquire was interrupted between the two. (A plain lock cannot tell.)
        is_owned = getattr(self._real, "_is_owned", None)
        return is_owned is not None and bool(is_owned()) and self._owner is None

    # --- the private protocol Condition uses ---------------------------------------

    def _is_owned(self) -> bool:
        owner = self._owner
        return owner is not None and owner is getattr(_local, "state", None)

    def _recursion_count(self) -> int:
        return self._count if self._is_owned() else 0

    def _release_save(self) -> tuple[int, int | None]:
        state: ThreadState | None = getattr(_local, "state", None)
        if state is None or self._owner is not state:
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count
        self._count = 0
        self._unrecord(state)
        self._release_real()
        return (count, state.ident)

    def _acquire_restore(self, saved: tuple[int, Any]) -> None:
        self._acquire_slow(current_state(), True, -1, saved[0])

    def _at_fork_reinit(self) -> None:
        self._owner = None
        self._parked = None
        self._real._at_fork_reinit()
        self._count = 0

    def __repr__(self) -> str:
        owner = self._owner
        status = "locked" if owner is not None else "unlocked"
        owner_ident = 0 if owner is None else owner.ident
        return (
            f"<{status} {self._describe()} owner={owner_ident} count={self._count if owner is not None else 0} "
            f"at {id(self):#x}>"
        )


def _discard(items: list[Any], item: Any) -> bool:
    """Remove ``item`` from a list if it is there; whether it was."""
    try:
        items.remove(item)
    except ValueError:
        return False
    return True


def _warn(state: ThreadState, warning: Warning) -> None:
    """Issue a LockOrderWarning once the acquire is complete and consistent.

    A handler that turns warnings into log records may take locks, even the
    one just acquired (an RLock): nothing it takes meanwhile is order-checked.
    """
    state.inside += 1
    try:
        warnings.warn(warning, stacklevel=_user_stacklevel())
    finally:
        state.inside -= 1


_LOCKWATCH_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_stacklevel() -> int:
    """The warnings stacklevel of the user's acquire line (skipping lockwatch, threading and queue frames)."""
    frame: Any = sys._getframe(2)  # the caller of _warn is level 1 for warnings.warn called in _warn
    level = 2
    while frame is not None and (
        frame.f_code.co_filename.startswith(_LOCKWATCH_DIR) or _is_skipped(frame.f_code.co_filename)
    ):
        frame = frame.f_back
        level += 1
    return level
