"""Joins, futures and Condition waits as waits of the wait-for graph: recorded in user threads, read by the reporter.

``patch()`` wraps ``Thread.join``, ``concurrent.futures.Future.result`` and
``exception``, the waiter that ``concurrent.futures.wait``/``as_completed``
block on, ``Condition.wait``, the pool's work item and ``submit`` (which
worker runs which future, which pool a pending future waits in) and
``asyncio.run_coroutine_threadsafe`` (whose future the loop's thread must
complete). In the user's thread a wrapper only stores a tuple in the thread's
state (the outermost wait wins: ``Future.result`` waits inside a
``Condition.wait``); everything else happens on the reporting side, where
:func:`edges` turns those tuples into :class:`~lockwatch._waits.Edge` records.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures._base as _futures_base
import concurrent.futures.thread as _futures_thread
import functools
import itertools
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from time import monotonic
from typing import Any

from lockwatch import _state, _waits
from lockwatch._waits import Edge, Found, Target

_originals: dict[tuple[Any, str], Any] = {}

# Kinds of ThreadState.awaiting tuples.
JOIN, FUTURE, FUTURES_ALL, FUTURES_ANY, CONDITION = "join", "future", "futures-all", "futures-any", "condition"

#: id(future) -> the state of the worker running it now (set and cleared by the worker itself).
running_futures = _state.running_futures
# Pending futures' pools and run_coroutine_threadsafe futures' loops (weak: nothing kept alive).
_pool_of: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_loop_of: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
# Stable report ids of futures ("F3") and Conditions ("C2"), assigned on the reporting side.
_future_ids: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_serials = itertools.count(1)


# --- the recording side -------------------------------------------------------------


def _begin(kind: str, obj: Any, timed: bool) -> tuple[_state.ThreadState, bool]:
    """Record a wait on the calling thread unless an outer one is recorded; whether this call owns it."""
    state = _state.current_state()
    if state.awaiting is not None:
        return state, False
    state.await_timed = timed
    state.await_since = monotonic()
    state.awaiting = (kind, obj)
    if not timed:
        if kind == CONDITION:
            # Nobody known to notify it: no chain to follow, only the next look to take.
            _state.ensure_watchdog()
        else:
            _state.wait_began(state)
    return state, True


def _end(state: _state.ThreadState, mine: bool) -> None:
    if mine:
        state.awaiting = None
        state.await_since = None


def _join(original: Callable[..., Any], self: threading.Thread, timeout: float | None = None) -> Any:
    # A thread that is not started, or joins itself, gets the original's error at once.
    if not self._started.is_set() or self is threading.current_thread():  # type: ignore[attr-defined]
        return original(self, timeout)
    state, mine = _begin(JOIN, self, timeout is not None)
    try:
        return original(self, timeout)
    finally:
        _end(state, mine)


def _future_wait(original: Callable[..., Any], self: Any, timeout: float | None = None) -> Any:
    if self._state in ("FINISHED", "CANCELLED_AND_NOTIFIED"):
        return original(self, timeout)  # no wait: nothing to record
    state, mine = _begin(FUTURE, self, timeout is not None)
    try:
        return original(self, timeout)
    finally:
        _end(state, mine)


def _condition_wait(original: Callable[..., Any], self: Any, timeout: float | None = None) -> Any:
    state, mine = _begin(CONDITION, self, timeout is not None)
    try:
        return original(self, timeout)
    finally:
        _end(state, mine)


class _FuturesEvent(threading.Event):
    """The Event that ``wait()``/``as_completed()`` block on, knowing the futures it is for."""

    _lockwatch_futures: tuple[Any, ...] = ()
    _lockwatch_mode = FUTURES_ALL

    def wait(self, timeout: float | None = None) -> bool:
        state, mine = _begin(self._lockwatch_mode, self._lockwatch_futures, timeout is not None)
        try:
            return super().wait(timeout)
        finally:
            _end(state, mine)


def _create_waiters(original: Callable[..., Any], fs: Iterable[Any], return_when: Any) -> Any:
    fs = tuple(fs)
    waiter = original(fs, return_when)
    event = getattr(waiter, "event", None)
    if type(event) is threading.Event:
        event.__class__ = _FuturesEvent  # same layout: only wait() is ours
        event._lockwatch_futures = fs  # type: ignore[attr-defined]
        # ALL_COMPLETED needs every future; FIRST_COMPLETED, FIRST_EXCEPTION and as_completed()
        # end with any one (FIRST_EXCEPTION counted as any-of: a report missed, never a false one).
        all_of = return_when == _futures_base.ALL_COMPLETED
        event._lockwatch_mode = FUTURES_ALL if all_of else FUTURES_ANY  # type: ignore[attr-defined]
    return waiter


def _work_item_run(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    state = _state.current_state()
    key = id(self.future)
    outer = state.running
    state.running = self.future
    running_futures[key] = state
    try:
        return original(self, *args, **kwargs)
    finally:
        state.running = outer
        if running_futures.get(key) is state:
            del running_futures[key]


def _submit(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    future = original(self, *args, **kwargs)
    fn = args[0] if args else kwargs.get("fn")
    try:
        _pool_of[future] = (weakref.ref(self), getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None))
    except TypeError:  # pragma: no cover - a future or pool that takes no weak reference
        pass
    return future


def _thread_ran(original: Callable[..., Any], self: threading.Thread) -> Any:
    """Thread._bootstrap_inner: a thread that ends still holding locks says so, then is gone."""
    # Thread.run forgets its target when it returns: what it was is noted now (not the target
    # itself, which must not live longer than the program lets it).
    target = getattr(self, "_target", None)
    code = getattr(target, "__code__", None) if target is not None else getattr(type(self).run, "__code__", None)
    name = getattr(target, "__qualname__", None) if target is not None else f"{type(self).__name__}.run"
    del target
    try:
        return original(self)
    finally:
        state = getattr(_state._local, "state", None)
        if state is not None and state.held and any(lock._owner is state for lock in state.held):
            where = "" if code is None else f" ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"
            state.gone = f"ended while holding locks; it ran {name}(){where}"
            state.alive = False  # its locks are orphans from now on: the next wait for one says so at once


def _only_worker(future: Any) -> _state.ThreadState | None:
    """The state of the only worker of the pool where ``future`` is pending (instant chain check)."""
    entry = _pool_of.get(future)
    pool = None if entry is None else entry[0]()
    workers = list(getattr(pool, "_threads", ())) if pool is not None else []
    if len(workers) != 1 or getattr(pool, "_max_workers", 0) != 1 or future._state != "PENDING":
        return None
    ident = workers[0].ident
    return None if ident is None else _state.by_ident.get(ident)


def _run_coroutine_threadsafe(original: Callable[..., Any], coro: Any, loop: Any) -> Any:
    future = original(coro, loop)
    try:
        _loop_of[future] = loop
    except TypeError:  # pragma: no cover
        pass
    return future


_WRAPPERS: list[tuple[Any, str, Callable[..., Any]]] = [
    (threading.Thread, "join", _join),
    (concurrent.futures.Future, "result", _future_wait),
    (concurrent.futures.Future, "exception", _future_wait),
    (threading.Condition, "wait", _condition_wait),
    (_futures_thread._WorkItem, "run", _work_item_run),
    (concurrent.futures.ThreadPoolExecutor, "submit", _submit),
    (threading.Thread, "_bootstrap_inner", _thread_ran),
]
_FUNCTION_WRAPPERS: list[tuple[Any, str, Callable[..., Any]]] = [
    (_futures_base, "_create_and_install_waiters", _create_waiters),
    (asyncio.tasks, "run_coroutine_threadsafe", _run_coroutine_threadsafe),
    (asyncio, "run_coroutine_threadsafe", _run_coroutine_threadsafe),
]


def install() -> None:
    """Wrap the waits above (idempotent); the graph reads them through :func:`edges`."""
    for owner, name, wrapper in _WRAPPERS:
        if (owner, name) in _originals:
            continue
        original = owner.__dict__[name]
        _originals[(owner, name)] = original
        setattr(owner, name, functools.wraps(original)(_as_function(wrapper, original)))
    for module, name, wrapper in _FUNCTION_WRAPPERS:
        if (module, name) in _originals:
            continue
        original = getattr(module, name)
        _originals[(module, name)] = original
        setattr(module, name, functools.wraps(original)(functools.partial(wrapper, original)))
    _waits.add_source(edges)
    _state.only_worker = _only_worker


def _as_function(wrapper: Callable[..., Any], original: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function (so it binds as a method and shows a clean name in tracebacks)."""

    def instrumented(self: Any, *args: Any, **kwargs: Any) -> Any:
        return wrapper(original, self, *args, **kwargs)

    return instrumented


def uninstall() -> None:
    """Put back exactly what was there."""
    for (owner, name), original in list(_originals.items()):
        setattr(owner, name, original)
    _originals.clear()
    _waits.remove_source(edges)
    _state.only_worker = _state._no_worker


# --- the reporting side ---------------------------------------------------------------


def future_id(future: Any) -> str:
    """A future's id in reports ("F3"), the same for its whole life."""
    try:
        found = _future_ids.get(future)
        if found is None:
            found = _future_ids[future] = f"F{next(_serials)}"
        return found
    except TypeError:
        return f"F@{id(future):x}"


def _thread_label(thread: threading.Thread | None, ident: int | None) -> str:
    if thread is not None:
        return f'thread "{thread.name}"'
    return f"thread {ident}"


def _future_target(future: Any, threads: dict[int, threading.Thread]) -> Target | None:
    """What a wait for ``future`` waits for: its worker, its pool's workers, or its loop's thread."""
    state = getattr(future, "_state", None)
    if state in ("FINISHED", "CANCELLED", "CANCELLED_AND_NOTIFIED"):
        return None
    fid = future_id(future)
    runner = running_futures.get(id(future))
    entry = _pool_of.get(future)
    pool = None if entry is None else entry[0]()
    what = "future" if entry is None or not entry[1] else f"future of {entry[1]}()"
    if runner is not None and runner.running is future:
        thread = threads.get(runner.ident)
        return Target(fid, _waits.FUTURE, f"{what} run by {_thread_label(thread, runner.ident)}",
                      (runner.ident,), state="running")
    if pool is not None and state == "PENDING":
        workers = tuple(t.ident for t in list(getattr(pool, "_threads", ())) if t.ident is not None)
        name = getattr(pool, "_thread_name_prefix", "") or "ThreadPoolExecutor"
        size = getattr(pool, "_max_workers", len(workers))
        label = f"{what} pending in pool {name} ({len(workers)} of {size} workers busy)"
        if len(workers) < size:
            return Target(fid, _waits.POOL, label, (), any_of=True, state="pending")  # the pool can grow
        return Target(fid, _waits.POOL, label, workers, any_of=True, state="pending")
    loop = _loop_of.get(future)
    if loop is not None:
        ident = getattr(loop, "_thread_id", None)
        if ident is not None:
            thread = threads.get(ident)
            return Target(fid, _waits.FUTURE, f"coroutine run by the event loop in {_thread_label(thread, ident)}",
                          (ident,), state=state.lower() if isinstance(state, str) else None)
    return Target(fid, _waits.FUTURE, what, (), state=state.lower() if isinstance(state, str) else None)


def target_of(state: _state.ThreadState, threads: dict[int, threading.Thread]) -> Target | None:
    """The Target of ``state``'s current non-lock wait, or None (no such wait, or it is over)."""
    awaiting = state.awaiting
    if awaiting is None:
        return None
    kind, obj = awaiting
    if kind == JOIN:
        ident = obj.ident
        if ident is None or ident not in threads:
            return None  # ended: the join returns
        return Target(f"J{ident}", _waits.THREAD, f'{_thread_label(obj, ident)} to end (join)', (ident,))
    if kind == FUTURE:
        return _future_target(obj, threads)
    if kind in (FUTURES_ALL, FUTURES_ANY):
        targets = [t for t in (_future_target(f, threads) for f in obj) if t is not None]
        if not targets:
            return None
        if len(targets) == 1:
            return targets[0]
        any_of = kind == FUTURES_ANY
        owners: list[int] = []
        if any_of:
            # Any one future finishing ends the wait: one with no known owner may, so may any owner.
            if any(not target.owners for target in targets):
                owners = []
            else:
                for target in targets:
                    owners.extend(o for o in target.owners if o not in owners)
        else:
            # Every future must finish: each owner of a running one must run (a pool's workers
            # are any-of, and only counted when no running future names an owner).
            musts = [t for t in targets if t.owners and not t.any_of] or [t for t in targets if t.owners][:1]
            for target in musts:
                owners.extend(o for o in target.owners if o not in owners)
            any_of = bool(musts) and musts[0].any_of
        ids = "+".join(t.id for t in targets)
        word = "any of" if kind == FUTURES_ANY else "all of"
        return Target(f"W{ids}", _waits.FUTURE, f"{word} {len(targets)} futures", tuple(owners), any_of=any_of)
    if kind == CONDITION:
        return Target(f"C{id(obj):x}", "condition", "a Condition (notify)", ())
    return None


def edges() -> Found:
    """Every recorded non-lock wait as an Edge (a source of lockwatch._waits)."""
    threads = dict(threading._active)  # type: ignore[attr-defined]
    found = []
    for state in _state.states():
        if state.awaiting is None or not state.alive:
            continue
        since, timed = state.await_since, state.await_timed
        target = target_of(state, threads)
        if target is None or state.awaiting is None:
            continue
        found.append(Edge(state.ident, target, since, timed))
    return Found(edges=tuple(found))

