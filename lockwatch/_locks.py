"""Drop-in instrumented Lock and RLock that record holders and waiters in the live lock state."""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
from _thread import allocate_lock as _allocate_raw_lock
from time import monotonic
from typing import Any

from lockwatch import _state
from lockwatch._state import ThreadState, current_state, wait_ended, wait_started

# The per-thread pointer to each thread's own state (never replaced, even by fork).
_thread_local = _state._local

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


def _is_skipped(filename: str) -> bool:
    skipped = _skip_cache.get(filename)
    if skipped is None:
        path = os.path.normcase(os.path.abspath(filename))
        skipped = path in _SKIPPED_CREATION_FILES or path.startswith(_PACKAGE_DIR)
        _skip_cache[filename] = skipped
    return skipped


def _creation_site() -> tuple[str, int, str] | None:
    frame = sys._getframe(2)
    while frame is not None and _is_skipped(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return None
    return (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)


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


class InstrumentedLock:
    """What Lock and RLock share: identity, creation site, and the blocking (slow) path."""

    __slots__ = ("_real", "_owner", "_name", "_rank", "_site", "_serial", "_preds", "__weakref__")

    _real: Any
    _owner: ThreadState | None

    def __init__(self, name: str | None = None, *, rank: int | None = None) -> None:
        _check_new(name, rank, type(self).__name__)
        self._real = _allocate_raw_lock()
        self._owner = None
        self._name = name
        self._rank = rank
        self._site = _creation_site()
        self._serial = next(_serials)
        # Serials of locks already known to be taken before this one (lock order);
        # created by the order checker on first use.
        self._preds: set[int] | None = None

    # --- read-only facts, used by reports ------------------------------------

    @property
    def name(self) -> str | None:
        """The name given at creation, if any."""
        return self._name

    @property
    def rank(self) -> int | None:
        """The declared rank (lower ranks are taken first), if any."""
        return self._rank

    @property
    def id(self) -> str:
        """The id reports use for this lock, e.g. ``"L12"``."""
        return f"L{self._serial}"

    @property
    def site(self) -> tuple[str, int, str] | None:
        """Where the lock was created: (file, line, function)."""
        return self._site

    def owner_ident(self) -> int | None:
        """The thread id of the current owner, or None."""
        owner = self._owner
        return None if owner is None else owner.ident

    # --- shared pieces of acquire -----------------------------------------------

    def _order_unknown(self, held: list[InstrumentedLock]) -> bool:
        """Whether some (held → self) order is not yet known and settled (a set lookup each)."""
        preds = self._preds
        if preds is None:
            return True
        for other in held:
            if other._serial not in preds:
                return True
        return False

    def _check_order(self, state: ThreadState, held: list[InstrumentedLock]) -> None:
        """Hand new (held → self) orders to the order checker, which may refuse the acquire."""
        checker = _state.order_checker
        if checker is not None and self._order_unknown(held):
            checker(state, self, held)

    def _wait(self, state: ThreadState, blocking: Any, timeout: Any) -> bool:
        """Block for the real lock as a registered waiter; True once acquired."""
        if timeout != -1:  # only a timeout can be invalid ("blocking" is any truth value)
            _check_arguments(blocking, timeout)
        if not blocking:
            return False
        real = self._real
        if timeout != -1 and real.acquire(False):
            return True
        wait_started(state, self, timeout != -1)
        try:
            if not _state.break_enabled:
                return bool(real.acquire(True, timeout))
            # Break mode: wake up now and then to see whether this thread was
            # chosen as a deadlock victim; a raw acquire cannot be interrupted.
            deadline = None if timeout == -1 else monotonic() + timeout
            while True:
                poll = _state.BREAK_POLL
                if deadline is not None:
                    remaining = deadline - monotonic()
                    if remaining <= 0:
                        return bool(real.acquire(False))
                    poll = min(poll, remaining)
                if real.acquire(True, poll):
                    return True
                error = state.pending_error
                if error is not None:
                    raise error
        finally:
            wait_ended(state)

    def _forget_owner(self) -> None:
        """Drop the lock from its owner's held list (release, or reinit after fork)."""
        owner = self._owner
        if owner is None:
            return
        self._owner = None
        held = owner.held
        # Locks are almost always released in reverse order: check the end first.
        if held and held[-1] is self:
            del held[-1]
        else:
            _discard(held, self)

    def _describe(self) -> str:
        name = f" name={self._name!r}" if self._name is not None else ""
        return f"lockwatch.{type(self).__name__} object {self.id}{name}"


class Lock(InstrumentedLock):
    """A drop-in ``threading.Lock`` that records its holder and waiters.

    Like the original, it may be released by a thread other than the one that
    acquired it.
    """

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, exactly like ``threading.Lock.acquire``."""
        if timeout == -1 and self._real.acquire(False):
            # Hot path: the try succeeded. O(1) bookkeeping, no stack capture.
            try:
                state = _thread_local.state
            except AttributeError:
                state = current_state()
            held = state.held
            if held and blocking and _state.order_checker is not None:
                # Known orders cost a set lookup; the checker only sees new ones.
                preds = self._preds
                if preds is None or held[-1]._serial not in preds or (len(held) > 1 and self._order_unknown(held)):
                    try:
                        _state.order_checker(state, self, held)
                    except BaseException:
                        self._real.release()
                        raise
            self._owner = state
            held.append(self)
            return True
        return self._acquire_slow(blocking, timeout)

    __enter__ = acquire  # type: ignore[assignment]

    def _acquire_slow(self, blocking: Any, timeout: Any) -> bool:
        state = current_state()
        held = state.held
        if held and blocking and timeout == -1:
            self._check_order(state, held)  # may raise, before the thread blocks
        if not self._wait(state, blocking, timeout):
            return False
        self._owner = state
        held.append(self)
        return True

    def release(self) -> None:
        """Release the lock; any thread may release it, as with ``threading.Lock``."""
        # Inlined _forget_owner(): release is on the hot path.
        owner = self._owner
        if owner is not None:
            self._owner = None
            held = owner.held
            if held and held[-1] is self:
                del held[-1]
            else:
                _discard(held, self)
        self._real.release()

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        # The body of release(), repeated to save a call on every ``with`` block.
        owner = self._owner
        if owner is not None:
            self._owner = None
            held = owner.held
            if held and held[-1] is self:
                del held[-1]
            else:
                _discard(held, self)
        self._real.release()

    def locked(self) -> bool:
        """True if the lock is held by any thread."""
        return self._real.locked()  # type: ignore[no-any-return]

    # Condition's fallback for a plain lock treats "locked by anyone" as owned;
    # this is the same answer without a try-acquire.
    def _is_owned(self) -> bool:
        return self._real.locked()  # type: ignore[no-any-return]

    def _at_fork_reinit(self) -> None:
        self._forget_owner()
        self._real._at_fork_reinit()

    def __repr__(self) -> str:
        status = "locked" if self._real.locked() else "unlocked"
        return f"<{status} {self._describe()} at {id(self):#x}>"


class RLock(InstrumentedLock):
    """A drop-in ``threading.RLock`` that records its owner, recursion count and waiters.

    Reentrancy is handled here (owner + count over a raw lock), so a nested
    acquire by the owner never touches the real lock.
    """

    __slots__ = ("_count",)

    def __init__(self, name: str | None = None, *, rank: int | None = None) -> None:
        super().__init__(name, rank=rank)
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, exactly like ``threading.RLock.acquire``."""
        try:
            state = _thread_local.state
        except AttributeError:
            state = current_state()
        if timeout == -1:
            if self._owner is state:
                self._count += 1
                return True
            if self._real.acquire(False):
                held = state.held
                if held and blocking and _state.order_checker is not None:
                    preds = self._preds
                    if preds is None or held[-1]._serial not in preds or (len(held) > 1 and self._order_unknown(held)):
                        try:
                            _state.order_checker(state, self, held)
                        except BaseException:
                            self._real.release()
                            raise
                self._owner = state
                self._count = 1
                held.append(self)
                return True
        return self._acquire_slow(state, blocking, timeout, 1)

    __enter__ = acquire  # type: ignore[assignment]

    def _acquire_slow(self, state: ThreadState, blocking: Any, timeout: Any, count: int) -> bool:
        if self._owner is state:
            _check_arguments(blocking, timeout)
            self._count += count
            return True
        held = state.held
        if held and blocking and timeout == -1:
            self._check_order(state, held)  # may raise, before the thread blocks
        if not self._wait(state, blocking, timeout):
            return False
        self._owner = state
        self._count = count
        held.append(self)
        return True

    def release(self) -> None:
        """Release once; the lock is free when every acquire has been matched."""
        try:
            state = _thread_local.state
        except AttributeError:  # a thread that never took an instrumented lock
            raise RuntimeError("cannot release un-acquired lock") from None
        if self._owner is not state:
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count - 1
        if count:
            self._count = count
            return
        # _count is only read while the lock is owned: no need to reset it here.
        self._owner = None
        held = state.held
        if held and held[-1] is self:
            del held[-1]
        else:
            _discard(held, self)
        self._real.release()

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        # The body of release(), repeated to save a call on every ``with`` block.
        try:
            state = _thread_local.state
        except AttributeError:  # a thread that never took an instrumented lock
            raise RuntimeError("cannot release un-acquired lock") from None
        if self._owner is not state:
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count - 1
        if count:
            self._count = count
            return
        # _count is only read while the lock is owned: no need to reset it here.
        self._owner = None
        held = state.held
        if held and held[-1] is self:
            del held[-1]
        else:
            _discard(held, self)
        self._real.release()

    def locked(self) -> bool:
        """True if any thread holds the lock (``RLock.locked`` of Python 3.14)."""
        return self._real.locked()  # type: ignore[no-any-return]

    # --- the private protocol Condition uses ---------------------------------------

    def _is_owned(self) -> bool:
        owner = self._owner
        return owner is not None and owner is getattr(_thread_local, "state", None)

    def _recursion_count(self) -> int:
        return self._count if self._is_owned() else 0

    def _release_save(self) -> tuple[int, int | None]:
        state = getattr(_thread_local, "state", None)
        if state is None or self._owner is not state:
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count
        self._count = 0
        self._forget_owner()
        self._real.release()
        return (count, state.ident)

    def _acquire_restore(self, saved: tuple[int, Any]) -> None:
        self._acquire_slow(current_state(), True, -1, saved[0])

    def _at_fork_reinit(self) -> None:
        self._forget_owner()
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


def _discard(held: list[InstrumentedLock], lock: InstrumentedLock) -> None:
    """Remove ``lock`` from a held list if it is there (out-of-order release)."""
    try:
        held.remove(lock)
    except ValueError:
        pass
