"""Pure deadlock finding: the wait-for graph (thread -> lock -> owner) and its cycles, over plain data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from lockwatch._model import CycleStep, Report

if TYPE_CHECKING:
    import networkx as nx


class Wait(NamedTuple):
    """One blocked thread: the lock it waits for and the thread owning that lock (None if free)."""

    lock: str
    owner: int | None


Waits = Mapping[int, Wait]


def _thread_node(ident: int) -> tuple[str, int]:
    return ("thread", ident)


def _lock_node(lock: str) -> tuple[str, str]:
    return ("lock", lock)


def wait_for_graph(waits: Waits) -> nx.DiGraph:
    """The wait-for graph: an edge thread -> lock it waits for, and lock -> the thread owning it.

    Nodes are ``("thread", ident)`` and ``("lock", id)`` so a thread and a lock
    never collide; a lock that nobody owns has no outgoing edge.
    """
    # Imported on first use: most looks find nobody blocked and never get here,
    # and `import lockwatch` stays cheap.
    import networkx as nx

    graph = nx.DiGraph()
    for ident, wait in waits.items():
        lock = _lock_node(wait.lock)
        graph.add_edge(_thread_node(ident), lock)
        if wait.owner is not None:
            graph.add_edge(lock, _thread_node(wait.owner))
    return graph


def find_cycles(waits: Waits) -> list[tuple[CycleStep, ...]]:
    """Every deadlock cycle, each starting at its smallest thread id, sorted by that id.

    Step i's thread waits for step i's lock, which is owned by step i+1's
    thread (the last step's lock by the first thread). A thread waiting for a
    Lock it owns itself is a cycle of one step.

    Each thread waits for at most one lock and each lock has at most one
    owner, so following "waits for a lock owned by" from every thread finds
    every cycle in linear time, with nothing to import (the watchdog runs this
    while the program's own locks, the import lock included, may be stuck).
    """
    cycles = []
    done: set[int] = set()
    for start in sorted(waits):
        path: list[int] = []
        on_path: dict[int, int] = {}
        ident: int | None = start
        while ident is not None and ident in waits and ident not in done and ident not in on_path:
            on_path[ident] = len(path)
            path.append(ident)
            ident = waits[ident].owner
        if ident is not None and ident in on_path:
            threads = path[on_path[ident]:]
            first = threads.index(min(threads))
            rotated = threads[first:] + threads[:first]
            cycles.append(tuple(CycleStep(thread=t, lock=waits[t].lock) for t in rotated))
        done.update(path)
    cycles.sort(key=lambda cycle: [step.thread for step in cycle])
    return cycles


def bystanders(waits: Waits, cycles: Sequence[Sequence[CycleStep]]) -> list[int]:
    """Threads blocked, directly or through other blocked threads, behind a thread of ``cycles``.

    Threads that are themselves in one of the cycles are left out; sorted by id.
    """
    in_cycles = {step.thread for cycle in cycles for step in cycle}
    if not in_cycles:
        return []
    behind = set()
    for start in waits:
        seen = set()
        ident: int | None = start
        while ident is not None and ident in waits and ident not in seen and ident not in in_cycles:
            seen.add(ident)
            ident = waits[ident].owner
        if ident in in_cycles:
            behind.update(seen)
    return sorted(behind - in_cycles)


def waits_in_report(report: Report) -> dict[int, Wait]:
    """The waits a report shows: each waiting thread, its lock, and that lock's owner."""
    owners = {lock.id: lock.owner for lock in report.locks}
    return {
        thread.id: Wait(thread.waiting_for, owners.get(thread.waiting_for))
        for thread in report.threads
        if thread.waiting_for is not None
    }


def describe_cycle(cycle: Sequence[CycleStep], report: Report) -> str:
    """One line: thread "a" waits for lock "x" held by thread "b", which waits for lock "y" held by "a"."""

    def thread_name(ident: int) -> str:
        info = report.thread(ident)
        return f'"{info.name}"' if info is not None else f"{ident}"

    def lock_name(lock_id: str) -> str:
        info = report.lock(lock_id)
        return f'"{info.title}"' if info is not None else f'"{lock_id}"'

    steps = list(cycle)
    if not steps:
        return ""
    if len(steps) == 1:
        step = steps[0]
        return (
            f"thread {thread_name(step.thread)} waits for lock {lock_name(step.lock)}, "
            "which it already holds itself (a Lock is not reentrant)"
        )
    parts = []
    for index, step in enumerate(steps):
        holder = steps[(index + 1) % len(steps)].thread
        last = index == len(steps) - 1
        held_by = thread_name(holder) if last else f"thread {thread_name(holder)}"
        if index == 0:
            parts.append(f"thread {thread_name(step.thread)} waits for lock {lock_name(step.lock)} held by {held_by}")
        else:
            parts.append(f"which waits for lock {lock_name(step.lock)} held by {held_by}")
    return ", ".join(parts)
