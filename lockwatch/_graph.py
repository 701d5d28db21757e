"""The live wait-for graph over every kind of wait (locks, joins, futures, tasks, imports), read on the reporting side."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any, NamedTuple

from lockwatch import _state, _waits
from lockwatch._detect import AnyWait

# How one wait is known across looks: (waiter, target id, since, owners). The same key on
# two consecutive looks is the very same wait, still blocked on the same owners.
WaitKey = tuple[int, str, "float | None", tuple[int, ...]]

_SHUTDOWN_CODE = getattr(threading, "_shutdown", None)
_SHUTDOWN_CODE = getattr(_SHUTDOWN_CODE, "__code__", None)


class LiveGraph(NamedTuple):
    """One look at every untimed wait of the process."""

    waits: dict[int, AnyWait]  # waiter node id -> its wait
    keys: dict[int, WaitKey]  # waiter node id -> the wait's identity
    dead: set[int]  # owners that no longer exist (their locks are never released)
    loops: dict[int, int]  # task node id -> its loop's thread
    beyond: set[int]  # waiters whose wait is not for an instrumented lock
    asleep: dict[int, Any]  # live threads in an untimed wait lockwatch understands -> episode
    awake: set[int]  # live program threads that are not asleep (running, sleeping, in I/O...)
    errors: list[BaseException]  # readers that failed (said once by the caller)


def take(internal: set[int]) -> LiveGraph:
    """Read every wait now; never blocks, imports nothing, runs no user code."""
    frames = sys._current_frames()
    live = {ident for ident in frames if ident not in internal}
    newest = dict(_state.by_ident)  # ident -> the newest state of that ident (a copy: it changes)

    def node_of(state: _state.ThreadState) -> int:
        """A thread's node id: its ident while it runs, else -token (its ident may be reused)."""
        if state.alive and state.ident in live and newest.get(state.ident) is state:
            return state.ident
        return -state.token

    waits: dict[int, AnyWait] = {}
    keys: dict[int, WaitKey] = {}
    dead: set[int] = set()
    asleep: dict[int, Any] = {}
    beyond: set[int] = set()
    for ident, state in newest.items():
        if ident not in live or node_of(state) < 0:
            continue
        node = ident
        lock = state.waiting_for
        since = state.wait_since
        if lock is not None and since is not None and not state.wait_timed:
            owner = lock._owner
            if owner is state:
                continue  # a wait for a Lock it owns: the self-wait judge decides (see the watchdog)
            owners: tuple[int, ...] = ()
            if owner is not None:
                owner_node = node_of(owner)
                # A lock left held by a thread that no longer exists is never released, unless
                # the lock is a signal (other threads release it): then nobody is known.
                if owner_node >= 0 or not lock._cls.signal:
                    owners = (owner_node,)
                    if owner_node < 0:
                        dead.add(owner_node)
            waits[node] = AnyWait(lock.id, owners)
            keys[node] = (node, lock.id, since, owners)
            asleep[node] = ("lock", state.token, lock._serial, since)
        elif state.awaiting is not None and state.await_since is not None and not state.await_timed:
            asleep[node] = ("await", state.token, state.await_since)
    errors: list[BaseException] = []
    try:
        found = _waits.collect()
    except _waits.SourceError as error:
        found = error.found
        errors.append(error.cause)
    loops: dict[int, int] = {}
    for task in found.tasks:
        if task.loop_thread is not None:
            loops[task.id] = task.loop_thread
    for edge in found.edges:
        if edge.timed or edge.waiter in waits:
            continue  # a lock wait is the innermost wait: it wins
        target = edge.target
        if edge.waiter in live and edge.waiter not in asleep:
            # An import lock wait, read straight from importlib's state: asleep too.
            asleep[edge.waiter] = ("edge", target.id, edge.since)
        if not target.owners and target.kind == "condition":
            continue  # nobody known to notify: not an edge of the graph
        waits[edge.waiter] = AnyWait(target.id, target.owners, target.any_of, is_lock=False)
        keys[edge.waiter] = (edge.waiter, target.id, edge.since, target.owners)
        beyond.add(edge.waiter)
    # The main thread in threading._shutdown waits for every non-daemon thread to end.
    main = threading.main_thread().ident
    if main in live and main not in asleep and _SHUTDOWN_CODE is not None:
        frame = frames.get(main)
        depth = 0
        while frame is not None and depth < 6:
            if frame.f_code is _SHUTDOWN_CODE:
                asleep[main] = ("shutdown", id(frame))
                break
            frame = frame.f_back
            depth += 1
    del frames
    awake = live - set(asleep)
    return LiveGraph(waits, keys, dead, loops, beyond, asleep, awake, errors)


_DEFAULT_HANDLERS = (signal.SIG_DFL, signal.SIG_IGN, None, signal.default_int_handler)


def program_signal_handlers() -> list[str]:
    """Signals the program handles in Python itself (beyond SIGINT's default and lockwatch's own)."""
    names = []
    for number in signal.valid_signals():
        try:
            handler = signal.getsignal(number)
        except (ValueError, OSError):
            continue
        if handler in _DEFAULT_HANDLERS or getattr(handler, "__module__", "") == "lockwatch._signals":
            continue  # lockwatch's own SIGUSR1 handler is defined there
        try:
            names.append(signal.Signals(number).name)
        except ValueError:
            names.append(str(number))
    return names
