"""Waits beyond locks as plain data: what a thread or task waits for, and who must run for it to end.

The wait-for graph of lockwatch was "thread waits for lock, lock is held by
thread". A program also waits for a thread to end (``join``), for a future,
for an asyncio task or lock, for a module import. Each of those is a
:class:`Target`: an id of its own in reports, a label, and the *owners* that
must run for it to complete: all of them (``any_of=False``: a join, a
running future) or any one (``any_of=True``: a pending future in a pool,
which whichever worker is free next will run).

Waiters and owners are *node ids*: a thread's ident (or the negative token of
an ended thread whose ident was reused, as in reports), or an asyncio task's
serial number (small positive integers, never a thread ident).

Sources (the recording wrappers of :mod:`lockwatch._beyond`, the asyncio and
import-lock readers) turn what they know into :class:`Edge` records on the
reporting side, at look or snapshot time; :mod:`lockwatch._detect` finds what
is stuck over them, whatever their kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

# The kinds of target, as dumps name them (``awaited[].kind``).
THREAD, FUTURE, POOL, TASK, IMPORT = "thread", "future", "pool", "task", "import"


class Target(NamedTuple):
    """Something waited for: a lock, a thread, a future, a task, an import."""

    id: str  # unique in one look or report: "L3" (a lock), "J4", "F2", "K1", "I7", "A3"...
    kind: str  # THREAD, FUTURE, POOL, TASK, IMPORT, "condition", or an asyncio primitive ("asyncio.Lock")
    label: str  # how reports name it: 'thread "worker-1"', 'import of "plugins.b"'
    owners: tuple[int, ...]  # node ids that must run for it to complete; () = not known
    any_of: bool = False  # True: one owner running suffices (the workers of a pool)
    site: tuple[str, int, str] | None = None  # where it was made or submitted (file, line, function)
    state: str | None = None  # "pending", "running", ... (futures), None when it says nothing


class Edge(NamedTuple):
    """One waiter (thread or task) in one untimed or timed wait for ``target``."""

    waiter: int  # node id
    target: Target
    since: float | None  # time.monotonic() when this wait began (its identity across looks), None if unknown
    timed: bool  # a wait with a timeout ends by itself: never part of a deadlock


class TaskNode(NamedTuple):
    """An asyncio task as a node: reports list it in ``threads`` with ``kind: "task"``."""

    id: int  # node id (the task's serial)
    name: str  # Task.get_name()
    stack: tuple[tuple[str, int, str, str | None], ...]  # coroutine stack, outermost first: (file, line, function, code)
    loop_thread: int | None  # ident of the thread running its loop (a suspended task needs it to run)
    since: float | None = None  # when it began its current await, if known


class Found(NamedTuple):
    """What one source knows right now."""

    edges: tuple[Edge, ...] = ()
    tasks: tuple[TaskNode, ...] = ()


#: Readers consulted on the reporting side (watchdog looks, snapshots), in order.
#: Each returns what it knows now and must never block, import or run user code:
#: it reads fields, and returns Found() when there is nothing (or on any doubt).
sources: list[Callable[[], Found]] = []


def add_source(source: Callable[[], Found]) -> None:
    """Consult ``source`` at every look and snapshot (once, however often it is added)."""
    if source not in sources:
        sources.append(source)


def remove_source(source: Callable[[], Found]) -> None:
    if source in sources:
        sources.remove(source)


def collect() -> Found:
    """Everything every source knows now; a failing source is skipped (its error is raised after)."""
    edges: list[Edge] = []
    tasks: list[TaskNode] = []
    failure: BaseException | None = None
    for source in list(sources):
        try:
            found = source()
        except Exception as exc:  # noqa: BLE001  (one broken reader must not blind the others)
            failure = exc
            continue
        edges.extend(found.edges)
        tasks.extend(found.tasks)
    if failure is not None:
        raise SourceError(Found(tuple(edges), tuple(tasks)), failure)
    return Found(tuple(edges), tuple(tasks))


class SourceError(Exception):
    """A source failed; ``found`` is what the others knew (the caller says it once and goes on)."""

    def __init__(self, found: Found, cause: BaseException) -> None:
        super().__init__(f"a wait reader failed: {cause!r}")
        self.found = found
        self.cause = cause
