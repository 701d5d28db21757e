"""asyncio's waits as nodes of the wait-for graph: instrumented asyncio primitives and a reader of every task's await.

Two halves, split like the rest of lockwatch:

- **Recording** (the loop's thread, mid-await). :func:`install` swaps
  subclasses of ``asyncio.Lock``, ``Condition``, ``Semaphore``,
  ``BoundedSemaphore`` and ``Event`` into ``asyncio`` and ``asyncio.locks``.
  They behave exactly like the originals (CPython's own
  ``test_asyncio.test_locks`` passes against them) and only keep plain data:
  a Lock's owner task, a Semaphore's holder tasks (until a task that holds
  none releases it: then its holders are unknown for good, as with a
  threading lock used as a signal), and for each task blocked in one of
  them, which primitive and since when (``time.monotonic()``). No I/O, no
  import, no logging, no lock.
- **Reporting** (lockwatch's watchdog thread, never the loop's).
  :func:`source`, registered with :func:`lockwatch._waits.add_source`, reads
  every live task of every running loop from asyncio's task registries and
  returns it as a :class:`~lockwatch._waits.TaskNode`, with an
  :class:`~lockwatch._waits.Edge` for each suspended task: waiting for an
  instrumented primitive (owned by its owner or holders), for another task,
  for a ``gather()`` or ``wait()`` of tasks, for a ``run_in_executor`` future
  (owned by its worker thread, as the thread side knows it), or for a plain
  future (owner unknown). A wait that a timer of the loop will end
  (``sleep``, ``wait_for``, ``timeout()``, ``wait(timeout=)``) is timed. It only
  reads fields (task, coroutine and frame attributes, the loops' timer
  heaps), copies registries that other threads change with a retry, never
  blocks and never runs the program's code.

A task's node id is a serial number given the first time a reader sees it
(1, 2, 3...), the same for the task's whole life. A suspended task also needs
its loop's thread to run: each TaskNode names it (``loop_thread``), and the
detector adds it to the task's owners.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import asyncio.futures
import asyncio.locks
import asyncio.tasks
import concurrent.futures
import functools
import itertools
import linecache
import os
import sys
import threading
import types
import weakref
from _thread import get_ident
from collections.abc import Iterable
from time import monotonic
from typing import Any

from lockwatch import _beyond, _locks, _state, _waits
from lockwatch._waits import Edge, Found, Target, TaskNode

# --- what install() replaces ---------------------------------------------------------

#: The primitives instrumented, by the names asyncio exports them under.
NAMES = ("Lock", "Condition", "Semaphore", "BoundedSemaphore", "Event")

# What asyncio.locks had at import: the instrumented classes derive from these.
_Lock: Any = asyncio.locks.Lock
_Condition: Any = asyncio.locks.Condition
_Semaphore: Any = asyncio.locks.Semaphore
_BoundedSemaphore: Any = asyncio.locks.BoundedSemaphore
_Event: Any = asyncio.locks.Event

# C functions where asyncio has them: the recording side asks for the running task.
_get_running_loop = asyncio.events._get_running_loop
_current_tasks: dict[Any, Any] = asyncio.tasks._current_tasks  # type: ignore[attr-defined]

# --- recording side ----------------------------------------------------------------------

#: id(task) -> (task, primitive, since) for each task blocked in an instrumented primitive.
#: Weak references both: a record never keeps a task (or what it waits for) alive, so a
#: forgotten pending task is still collected as without lockwatch. Written only by the
#: loop's thread of that task; read by the reporter, which checks the task is the same.
_waiting: dict[int, tuple[Any, Any, float]] = {}

# Serial numbers name primitives in reports ("A3"); itertools.count is atomic under the GIL.
_serials = itertools.count(1)

_ASYNCIO_DIR = os.path.normcase(os.path.dirname(os.path.abspath(asyncio.__file__))) + os.sep
_LOCKWATCH_DIR = os.path.normcase(os.path.dirname(os.path.abspath(__file__))) + os.sep
_skip_cache: dict[str, bool] = {}


def _skipped(filename: str) -> bool:
    """asyncio's and lockwatch's own files: a Condition's Lock is made by the user's Condition() line."""
    skipped = _skip_cache.get(filename)
    if skipped is None:
        if len(_skip_cache) > 10_000:
            _skip_cache.clear()  # generated code makes new file names without end
        path = os.path.normcase(os.path.abspath(filename))
        skipped = path.startswith(_ASYNCIO_DIR) or path.startswith(_LOCKWATCH_DIR)
        _skip_cache[filename] = skipped
    return skipped


if sys.version_info >= (3, 12):
    _c_current_task: Any = getattr(sys.modules.get("_asyncio"), "current_task", None)
else:
    _c_current_task = None  # 3.10/3.11's finds the running loop with a getpid() call: slower than the dict


def _current_task(primitive: Any) -> Any:
    """The task running now on this thread's loop, or None (a coroutine driven by hand)."""
    if _c_current_task is not None:
        try:
            return _c_current_task()
        except RuntimeError:  # no running loop
            return None
    # 3.10/3.11: the loop this primitive was last used on, if it is this thread's running one
    # (weakly: a lock that outlives asyncio.run() does not keep the closed loop alive).
    ref = primitive._lw_loop
    loop = None if ref is None else ref()
    if loop is not None and getattr(loop, "_thread_id", None) == get_ident():
        return _current_tasks.get(loop)
    loop = _get_running_loop()
    if loop is None:
        return None
    try:
        primitive._lw_loop = weakref.ref(loop)
    except TypeError:  # a loop without weak references: looked up every time
        pass
    return _current_tasks.get(loop)


def _wait_started(primitive: Any) -> tuple[Any, Any]:
    """Record that the current task may block in ``primitive``: (task, record), or (None, None)."""
    task = _current_task(primitive)
    if task is None:
        return None, None
    record = (weakref.ref(task), primitive._lw_ref, monotonic())
    first = not _waiting
    _waiting[id(task)] = record
    if first:
        # The first task wait starts the watchdog (or wakes it), as a thread's first wait does;
        # it stays up while any task waits (waiting()). Not on every wait: a busy loop waits
        # thousands of times a second, and each wake would cost the watchdog a turn.
        _state.notify_watchdog()
    return task, record


def _wait_ended(task: Any, record: Any) -> None:
    # A nested wait (a Condition re-acquiring its Lock) replaced the record: leave that one.
    key = id(task)
    if _waiting.get(key) is record:
        _waiting.pop(key, None)


class _Primitive:
    """What every instrumented primitive adds: a serial, where it was made, a weak reference to itself."""

    _lw_kind = "asyncio"
    _lw_loop: Any = None  # weak ref to the loop it was last used on (3.10/3.11: finds the running task faster)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # the original's own checks and errors, word for word
        self._lw_serial = next(_serials)
        self._lw_site = _locks.site_outside(_skipped, 2)
        self._lw_ref = weakref.ref(self)


class Lock(_Primitive, _Lock):
    """``asyncio.Lock`` that records its owner task and the tasks waiting for it."""

    _locked: bool  # the original's fields
    _waiters: Any
    _lw_kind = "asyncio.Lock"
    _lw_owner: Any = None  # the task that acquired it (strong, like a threading lock's owner state)
    _lw_signal = False  # released by a task that did not take it: a hand-off, owner unknown from then on

    async def acquire(self) -> bool:
        if not self._locked and not self._waiters:
            # The original's fast path, word for word in every version (3.10-3.13): a free
            # lock nobody waits for is taken at once, without suspending.
            self._locked = True
            self._lw_owner = _current_task(self)
            return True
        task, record = _wait_started(self)
        try:
            result = await super().acquire()
        finally:
            if record is not None:
                _wait_ended(task, record)
        self._lw_owner = task
        return result

    def release(self) -> None:
        # The original's release, word for word in every version (3.10-3.13), and the owner forgotten.
        if self._locked:
            self._locked = False
            self._wake_up_first()
        else:
            raise RuntimeError("Lock is not acquired.")
        owner = self._lw_owner
        self._lw_owner = None
        # The owner's loop's running task is the releasing one (a primitive serves one loop).
        if owner is not None and not self._lw_signal and _current_tasks.get(getattr(owner, "_loop", None)) is not owner:
            self._lw_signal = True


class Condition(_Primitive, _Condition):
    """``asyncio.Condition`` that records the tasks waiting to be notified (nobody known to notify)."""

    _lw_kind = "asyncio.Condition"

    async def wait(self) -> bool:
        task, record = _wait_started(self)
        try:
            return await super().wait()
        finally:
            if record is not None:
                _wait_ended(task, record)


class Semaphore(_Primitive, _Semaphore):
    """``asyncio.Semaphore`` that records its holder tasks (while knowable) and its waiters."""

    _lw_kind = "asyncio.Semaphore"
    _lw_holders: dict[Any, int] | None = None  # task -> acquires not yet released
    _lw_signal = False  # released by a task holding none: holders unknown from then on

    async def acquire(self) -> bool:
        if not self.locked():
            # The original's fast path, word for word in every version (3.10-3.13).
            self._value -= 1
            task = _current_task(self)
        else:
            task, record = _wait_started(self)
            try:
                await super().acquire()  # asks locked() again: the same answer, nothing ran since
            finally:
                if record is not None:
                    _wait_ended(task, record)
        if not self._lw_signal:
            if task is None:
                self._lw_unknown()
            else:
                holders = self._lw_holders
                if holders is None:
                    holders = self._lw_holders = {}
                holders[task] = holders.get(task, 0) + 1
        return True

    def release(self) -> None:
        super().release()
        if self._lw_signal:
            return
        task = _current_task(self)
        holders = self._lw_holders
        count = None if holders is None or task is None else holders.get(task)
        if count is None:
            self._lw_unknown()
        elif count == 1:
            del holders[task]  # type: ignore[union-attr]
        else:
            holders[task] = count - 1  # type: ignore[index]

    def _lw_unknown(self) -> None:
        self._lw_signal = True
        self._lw_holders = None


class BoundedSemaphore(Semaphore, _BoundedSemaphore):
    """``asyncio.BoundedSemaphore``, instrumented as Semaphore is (and still a Semaphore)."""


class Event(_Primitive, _Event):
    """``asyncio.Event`` that records the tasks waiting for it to be set (nobody known to set it)."""

    _lw_kind = "asyncio.Event"

    async def wait(self) -> bool:
        if self._value:
            return await super().wait()  # set: returns at once
        task, record = _wait_started(self)
        try:
            return await super().wait()
        finally:
            if record is not None:
                _wait_ended(task, record)


_INSTRUMENTED: dict[str, Any] = {
    "Lock": Lock, "Condition": Condition, "Semaphore": Semaphore,
    "BoundedSemaphore": BoundedSemaphore, "Event": Event,
}
_ORIGINAL: dict[str, Any] = {
    "Lock": _Lock, "Condition": _Condition, "Semaphore": _Semaphore,
    "BoundedSemaphore": _BoundedSemaphore, "Event": _Event,
}
for _name, _cls in _INSTRUMENTED.items():
    # The originals' names and module: repr(), error messages and pickling by name read the same.
    _cls.__module__ = _ORIGINAL[_name].__module__
    _cls.__qualname__ = _ORIGINAL[_name].__qualname__
del _name, _cls


# --- install / uninstall ----------------------------------------------------------------

# What asyncio and asyncio.locks had before install(): restored exactly by uninstall().
_saved: list[tuple[Any, str, Any]] = []


def install() -> None:
    """Instrument the asyncio primitives created from now on, and read tasks at every look."""
    if _saved:
        return
    for module in (asyncio.locks, asyncio):
        for name in NAMES:
            _saved.append((module, name, module.__dict__[name]))
            setattr(module, name, _INSTRUMENTED[name])
    _waits.add_source(source)


def uninstall() -> None:
    """Put back exactly what install() replaced; primitives made meanwhile keep working."""
    while _saved:
        module, name, original = _saved.pop()
        setattr(module, name, original)
    _waits.remove_source(source)


def installed() -> bool:
    return bool(_saved)


def waiting() -> bool:
    """Whether a task of a running loop is blocked in an instrumented primitive (the watchdog has something to watch).

    For the reporting side (the watchdog's "am I idle?"): reads the records only.
    """
    for record in _copy(_waiting.values()):
        task = record[0]()
        if task is not None and _pending(task) and _field(task._loop, "_thread_id") is not None:
            return True
    return False


# --- reporting side -----------------------------------------------------------------------

class _Serials:
    """Serial numbers given to objects on first sight, kept for each object's life.

    By id, with a weak reference to tell a reused id from the same object: no weakref
    callback ever runs on the program's threads, and dead entries are dropped by
    the reporter as the table grows. Two readers at once agree on one number
    (setdefault).
    """

    def __init__(self) -> None:
        self.table: dict[int, tuple[Any, int]] = {}
        self.counter = itertools.count(1)
        self.limit = 1024

    def of(self, obj: Any) -> int:
        key = id(obj)
        entry = self.table.get(key)
        if entry is not None and entry[0]() is obj:
            return entry[1]
        fresh = (weakref.ref(obj), next(self.counter))
        entry = self.table.setdefault(key, fresh)
        if entry[0]() is not obj:  # the entry of a dead object whose id was reused
            self.table[key] = entry = fresh
        if len(self.table) > self.limit:
            self.prune()
        return entry[1]

    def prune(self) -> None:
        for key, (ref, _serial) in _copy(self.table.items()):
            if ref() is None:
                self.table.pop(key, None)
        self.limit = max(1024, 2 * len(self.table))


# Node ids of tasks, and ids of awaited futures (gather, wait, plain futures).
_task_serials = _Serials()
_future_serials = _Serials()

# serial -> (weak ref to the future it awaited, when first seen awaiting it): the "since" of
# waits the recording side does not see (a task, a gather, a future), as first observed.
_first_seen: dict[int, tuple[Any, float]] = {}

#: A coroutine chain deeper than this is cut (a recursion of awaits).
MAX_DEPTH = 256
#: Tasks read at one look, at most (about 5 us each): beyond, those blocked in an instrumented
#: primitive come first. A task left out makes no edge, so nothing is reported that is not so.
MAX_TASKS = 10_000

_CTask: Any = getattr(asyncio.tasks, "_CTask", asyncio.Task)
_PyTask: Any = getattr(asyncio.tasks, "_PyTask", asyncio.Task)
_TASK_TYPES = tuple({_CTask, _PyTask, asyncio.Task})
_CFuture: Any = getattr(asyncio.futures, "_CFuture", asyncio.Future)
_FUTURE_TYPES = tuple({_CFuture, getattr(asyncio.futures, "_PyFuture", asyncio.Future), asyncio.Future})
_GatheringFuture: Any = getattr(asyncio.tasks, "_GatheringFuture", None)
_release_waiter: Any = getattr(asyncio.tasks, "_release_waiter", None)
# 3.11+: a timeout() block (wait_for's since 3.12). 3.10's wait_for runs the awaitable in a
# task of its own instead (see _cancelled_by_timeout).
_timeouts: Any = getattr(asyncio, "timeouts", None)
_Timeout: Any = None if _timeouts is None else _timeouts.Timeout
_ENTERED: Any = None if _timeouts is None else _timeouts._State.ENTERED


def task_id(task: Any) -> int:
    """The node id of ``task`` (1, 2, 3...), the same for its whole life."""
    return _task_serials.of(task)


def _future_id(future: Any) -> int:
    return _future_serials.of(future)


def _copy(container: Any) -> list[Any]:
    """A list of a set or dict another thread may change meanwhile (copied again if it did)."""
    for _attempt in range(100):
        try:
            return list(container)
        except RuntimeError:  # changed size during the copy
            continue
    return []


def _registered_tasks() -> list[Any]:
    """Every task asyncio knows (all loops), pending or not."""
    tasks: list[Any] = []
    # Eager tasks first (3.12+): one that graduates to a scheduled task meanwhile is still seen.
    eager = getattr(asyncio.tasks, "_eager_tasks", None)
    if eager is not None:
        tasks.extend(_copy(eager))
    for name in ("_scheduled_tasks", "_all_tasks"):
        registry: Any = getattr(asyncio.tasks, name, None)
        if isinstance(registry, weakref.WeakSet):
            # The WeakSet's own set of references: iterating the WeakSet itself would change
            # its state (pending removals) from this thread.
            tasks.extend(ref() for ref in _copy(_field(registry, "data") or ()))
            break
    return [task for task in tasks if task is not None]


def _field(obj: Any, name: str) -> Any:
    """An instance attribute read from ``__dict__`` only (no property or __getattr__ of the program runs)."""
    try:
        return vars(obj).get(name)
    except TypeError:  # no __dict__
        return None


_paths: dict[str, str] = {}


def _normalized(filename: str) -> str:
    path = _paths.get(filename)
    if path is None:
        if len(_paths) > 10_000:
            _paths.clear()
        path = _paths[filename] = os.path.normcase(os.path.abspath(filename))
    return path


def _source_line(filename: str, line: int) -> str | None:
    return linecache.getline(filename, line).strip() or None


def _coroutine_frames(task: Any) -> list[Any]:
    """The frames of ``task``'s coroutine chain, outermost first (reads cr_frame/cr_await only)."""
    frames: list[Any] = []
    obj = task._coro
    while obj is not None and len(frames) < MAX_DEPTH:
        kind = type(obj)
        if kind is types.CoroutineType:
            frame, obj = obj.cr_frame, obj.cr_await
        elif kind is types.GeneratorType:  # a @types.coroutine generator, or yield from
            frame, obj = obj.gi_frame, obj.gi_yieldfrom
        else:  # a future, an async generator's asend(), a C awaitable: nothing more to read
            break
        if frame is None:  # finished
            break
        frames.append(frame)
    return frames


Stack = tuple[tuple[str, int, str, str | None], ...]
# (trim, (code, instruction offset), ...) -> stack: a stack is a function of its code objects
# and where each frame stands, and a thousand tasks parked at the same await share one. The
# offset is a field, where f_lineno scans the code's line table (3.11+). Reporter-only,
# cleared when it grows.
_stacks: dict[tuple[bool, tuple[tuple[Any, int], ...]], Stack] = {}
MAX_STACKS = 10_000


def _stack(frames: list[Any], trim_asyncio: bool) -> Stack:
    """The coroutine stack as reports show it: without lockwatch's frames, ending at the user's line for a lock."""
    key = (trim_asyncio, tuple([(frame.f_code, frame.f_lasti) for frame in frames]))
    found = _stacks.get(key)
    if found is not None:
        return found
    places = []
    for frame in frames:
        code = frame.f_code
        filename = code.co_filename
        path = _normalized(filename)
        if not path.startswith(_LOCKWATCH_DIR):
            places.append((filename, frame.f_lineno or 0, code.co_name, path))
    if trim_asyncio:
        # A Lock or Semaphore wait ends at the user's ``async with`` line: asyncio's
        # __aenter__/acquire say nothing more (a Condition or Event wait keeps them).
        while len(places) > 1 and places[-1][3].startswith(_ASYNCIO_DIR):
            places.pop()
    stack = tuple((filename, line, function, _source_line(filename, line)) for filename, line, function, _ in places)
    if len(_stacks) >= MAX_STACKS:
        _stacks.clear()
    _stacks[key] = stack
    return stack


_site_labels: dict[Any, str] = {}


def _site_label(site: tuple[str, int, str] | None) -> str:
    label = _site_labels.get(site)
    if label is None:
        if len(_site_labels) > 10_000:
            _site_labels.clear()
        label = _site_labels[site] = "" if site is None else f" made at {os.path.basename(site[0])}:{site[1]}"
    return label


def _timed_waits(loops: Iterable[Any]) -> tuple[set[int], set[int]]:
    """What the loops' timers will end: (ids of futures, ids of tasks) in a wait with a timeout.

    A timer's callback or arguments name what it ends: ``asyncio.sleep`` and
    ``wait()``/3.10's ``wait_for`` (``_release_waiter``) pass the future,
    ``loop.call_later(t, fut.set_result, ...)`` binds it, and a ``timeout()``
    block (``wait_for`` since 3.12) binds a Timeout that names its task.
    """
    futures: set[int] = set()
    tasks: set[int] = set()
    for loop in loops:
        scheduled = _field(loop, "_scheduled")
        if not isinstance(scheduled, list):
            continue
        for item in _copy(scheduled):
            if not isinstance(item, asyncio.TimerHandle):
                continue
            handle: Any = item
            if handle._cancelled:
                continue
            callback = handle._callback
            if type(callback) is types.MethodType:
                bound: Any = callback.__self__
                if _Timeout is not None and type(bound) is _Timeout:
                    if bound._state is _ENTERED and bound._task is not None:
                        tasks.add(id(bound._task))
                else:
                    futures.add(id(bound))
            for arg in handle._args or ():
                futures.add(id(arg))
    return futures, tasks


def _cancelled_by_timeout(task: Any, timed_futures: set[int]) -> bool:
    """3.10/3.11's ``wait_for`` runs its awaitable as a task of its own, cancelled when the timeout expires."""
    if _release_waiter is None or sys.version_info >= (3, 12):
        return False
    for item in task._callbacks or ():
        callback = item[0] if type(item) is tuple else item
        if (type(callback) is functools.partial and callback.func is _release_waiter
                and callback.args and id(callback.args[0]) in timed_futures):
            return True
    return False


def _inner_code(function: Any, name: str) -> Any:
    """The code object of the function ``name`` defined inside ``function`` (a closure asyncio makes per call)."""
    code = getattr(function, "__code__", None)
    for const in getattr(code, "co_consts", ()):
        if isinstance(const, types.CodeType) and const.co_name == name:
            return const
    return None


# asyncio.wait()'s per-call callback on each awaited future, and _chain_future's on a wrapper
# (wrap_future, run_in_executor, run_coroutine_threadsafe): their closures say what waits for what.
_ON_COMPLETION = _inner_code(getattr(asyncio.tasks, "_wait", None), "_on_completion")
_CHECK_CANCEL = _inner_code(getattr(asyncio.futures, "_chain_future", None), "_call_check_cancel")


def _closure(callback: Any) -> dict[str, Any]:
    """A plain function's free variables by name (cells not yet set are left out)."""
    cells = {}
    for name, cell in zip(callback.__code__.co_freevars, callback.__closure__ or (), strict=False):
        try:
            cells[name] = cell.cell_contents
        except ValueError:  # empty cell
            continue
    return cells


def _callbacks_with(future: Any, code: Any) -> list[dict[str, Any]]:
    """The closures of ``future``'s done-callbacks that run ``code``."""
    if code is None:
        return []
    found = []
    callbacks = future._callbacks if isinstance(future, _FUTURE_TYPES) else _field(future, "_done_callbacks")
    for item in list(callbacks or ()):
        callback = item[0] if type(item) is tuple else item
        if type(callback) is types.FunctionType and callback.__code__ is code:
            found.append(_closure(callback))
    return found


def task_behind(future: Any) -> int | None:
    """The node id of the task a ``run_coroutine_threadsafe`` future waits for, while that task is suspended.

    The concurrent future is chained to the task running the coroutine: the
    thread blocked in its ``result()`` waits for that task, which waits for
    whatever it awaits (and for its loop's thread). A task that has not started
    or is ready to run waits only for the loop's thread: None, and the caller
    names the loop's thread. For the reporting side: reads fields only.
    """
    for cells in _callbacks_with(future, _CHECK_CANCEL):
        task = cells.get("source")
        if isinstance(task, _TASK_TYPES) and _pending(task):
            waiter = task._fut_waiter
            if waiter is not None and _pending(waiter):
                return task_id(task)
    return None


class _Waits:
    """What the ``asyncio.wait()`` calls of one look wait for, found from the awaited tasks' callbacks."""

    def __init__(self, tasks: list[Any]) -> None:
        # id(waiter future) -> (return_when, futures not yet done, the awaited pending tasks)
        self.by_waiter: dict[int, tuple[str, int, list[Any]]] = {}
        for task in tasks:
            for cells in _callbacks_with(task, _ON_COMPLETION):
                waiter = cells.get("waiter")
                if waiter is None:
                    continue
                entry = self.by_waiter.get(id(waiter))
                if entry is None:
                    entry = self.by_waiter[id(waiter)] = (str(cells.get("return_when")), int(cells.get("counter", 0)), [])
                entry[2].append(task)


def _pending(future: Any) -> bool:
    return bool(future._state == "PENDING")


def _task_label(task: Any) -> str:
    return f'task "{_task_name(task)}"'


def _task_name(task: Any) -> str:
    # The base class's get_name, not an override of the program's.
    for cls in _TASK_TYPES:
        if isinstance(task, cls):
            return str(cls.get_name(task))
    return "?"


def _primitive_target(primitive: Any) -> Target:
    """What a task blocked in an instrumented primitive waits for, and who must run for it."""
    kind = primitive._lw_kind
    site = primitive._lw_site
    where = _site_label(site)
    owners: tuple[int, ...] = ()
    any_of = False
    if kind == "asyncio.Lock":
        owner = primitive._lw_owner
        label = f"asyncio.Lock{where}"
        if owner is not None and not primitive._lw_signal:
            owners = (task_id(owner),)
    elif kind == "asyncio.Semaphore":
        holders = None if primitive._lw_signal else primitive._lw_holders
        tasks = [] if holders is None else _copy(holders)
        label = f"asyncio.{type(primitive).__name__}{where}"
        if tasks and not primitive._lw_signal:
            owners = tuple(sorted(task_id(task) for task in tasks))
            any_of = True  # any holder's release lets a waiter in
            label += f" (held by {len(owners)} task{'s' if len(owners) > 1 else ''})"
    elif kind == "asyncio.Condition":
        label = f"asyncio.Condition{where} (notify)"
    else:
        label = f"asyncio.Event{where} (set)"
    return Target(f"A{primitive._lw_serial}", kind, label, owners, any_of=any_of, site=site)


def _future_target(future: Any, frames: list[Any], look: _Look | None = None) -> Target:
    """What a task awaiting ``future`` (not a primitive's) waits for."""
    if isinstance(future, _TASK_TYPES):
        serial = task_id(future)
        return Target(f"K{serial}", _waits.TASK, _task_label(future), (serial,), state="pending")
    if _GatheringFuture is not None and isinstance(future, _GatheringFuture):
        children = [child for child in list(future._children) if isinstance(child, _TASK_TYPES) and _pending(child)]
        owners = tuple(sorted({task_id(child) for child in children}))
        every = list(future._children)
        what = "tasks" if all(isinstance(child, _TASK_TYPES) for child in every) else "awaitables"
        label = f"gather() of {len(every)} {what}"
        return Target(f"G{_future_id(future)}", _waits.TASK, label, owners, state="pending")
    in_wait = look is not None and bool(frames) and frames[-1].f_code is _WAIT_CODE
    waited = look.waits.by_waiter.get(id(future)) if in_wait and look is not None else None
    if waited is not None:
        return_when, remaining, awaited = waited
        owners = tuple(sorted({task_id(task) for task in awaited}))
        any_of = return_when != "ALL_COMPLETED"
        if any_of and remaining > len(awaited):
            owners = ()  # a future that is not a task may end the wait too: nobody known
        label = f"wait() for {'any' if any_of else 'all'} of {remaining}"
        return Target(f"AW{_future_id(future)}", _waits.TASK, label, owners, any_of=any_of, state="pending")
    for cells in _callbacks_with(future, _CHECK_CANCEL):
        source = cells.get("source")
        if isinstance(source, concurrent.futures.Future):
            # run_in_executor / wrap_future: what the thread side knows of that future.
            target = _beyond._future_target(source, dict(threading._active))  # type: ignore[attr-defined]
            if target is not None:
                return target
    where = ""
    if frames:
        code = frames[-1].f_code
        where = f" awaited in {code.co_name}() at {os.path.basename(code.co_filename)}:{frames[-1].f_lineno}"
    return Target(f"AF{_future_id(future)}", _waits.FUTURE, f"asyncio future{where}", (), state="pending")


def _since(serial: int, future: Any, now: float) -> float:
    """When ``serial`` was first seen awaiting this very ``future``."""
    seen = _first_seen.get(serial)
    if seen is not None and seen[0]() is future:
        return seen[1]
    _first_seen[serial] = (weakref.ref(future), now)
    return now


def source() -> Found:
    """Every live task of every running loop as a TaskNode, and what each suspended one waits for."""
    now = monotonic()
    running = {id(task) for task in (_current_tasks.get(loop) for loop in _copy(_current_tasks)) if task is not None}
    tasks: list[tuple[Any, int]] = []
    loops: dict[int, Any] = {}
    threads: dict[int, int | None] = {}  # id(loop) -> the ident of the thread running it
    seen: set[int] = set()
    for task in _registered_tasks():
        if id(task) in seen or not isinstance(task, _TASK_TYPES) or not _pending(task):
            continue
        seen.add(id(task))
        loop = task._loop
        key = id(loop)
        if key not in threads:
            threads[key] = _field(loop, "_thread_id")
        thread = threads[key]
        if thread is None:
            continue  # a loop that is not running: its tasks wait for it, not for each other
        loops[key] = loop
        tasks.append((task, thread))
    if len(tasks) > MAX_TASKS:
        tasks.sort(key=lambda item: id(item[0]) not in _waiting)
        del tasks[MAX_TASKS:]
    look = _Look(tasks, running, loops.values(), now)
    nodes: list[TaskNode] = []
    edges: list[Edge] = []
    serials: set[int] = set()
    for task, thread in tasks:
        try:
            node, edge = _read_task(task, thread, look)
        except Exception:  # noqa: BLE001  (a task that changed under the reader is read at the next look)
            continue
        serials.add(node.id)
        nodes.append(node)
        if edge is not None:
            edges.append(edge)
    for serial in [s for s in list(_first_seen) if s not in serials]:
        _first_seen.pop(serial, None)
    return Found(tuple(edges), tuple(nodes))


_WAIT_CODE = getattr(getattr(asyncio.tasks, "_wait", None), "__code__", None)


class _Look:
    """What one call of the source reads once and every task's reading shares."""

    def __init__(self, tasks: list[tuple[Any, int]], running: set[int], loops: Iterable[Any], now: float) -> None:
        self.tasks = tasks
        self.running = running
        self.timed_futures, self.timed_tasks = _timed_waits(loops)
        self.now = now
        self._waits: _Waits | None = None

    @property
    def waits(self) -> _Waits:
        """The asyncio.wait() calls in progress, read the first time a task is seen in one."""
        if self._waits is None:
            self._waits = _Waits([task for task, _thread in self.tasks])
        return self._waits


def _read_task(task: Any, loop_thread: int, look: _Look) -> tuple[TaskNode, Edge | None]:
    serial = task_id(task)
    frames = _coroutine_frames(task)
    future = None if id(task) in look.running else task._fut_waiter
    target: Target | None = None
    since: float | None = None
    if future is not None and isinstance(future, _FUTURE_TYPES) and _pending(future):
        record = _waiting.get(id(task))
        primitive = None
        if record is not None and record[0]() is task:
            primitive = record[1]()
        if primitive is not None:
            target = _primitive_target(primitive)
            since = record[2]  # type: ignore[index]
        else:
            target = _future_target(future, frames, look)
            since = _since(serial, future, look.now)
    trim = target is not None and target.kind in ("asyncio.Lock", "asyncio.Semaphore")
    node = TaskNode(serial, _task_name(task), _stack(frames, trim), loop_thread, since)
    if target is None:
        return node, None
    timed = (id(task) in look.timed_tasks or id(future) in look.timed_futures
             or _cancelled_by_timeout(task, look.timed_futures))
    return node, Edge(serial, target, since, timed)
