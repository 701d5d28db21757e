"""Pure deadlock finding: the wait-for graph (thread -> lock -> owner) and its cycles, over plain data."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


def _namers(report: Report) -> tuple[Callable[[int], str], Callable[[CycleStep], str]]:
    def waiter(ident: int) -> str:
        info = report.thread(ident)
        if info is None:
            return f"thread {ident}"
        word = "task" if info.is_task else "thread"
        ended = "" if info.alive or word == "task" else " (ended)"
        return f'{word} "{info.name}"{ended}'

    def target(step: CycleStep) -> str:
        if step.lock is not None:
            lock = report.lock(step.lock)
            return f'lock "{lock.title}"' if lock is not None else f'lock "{step.lock}"'
        entry = report.awaited_entry(str(step.waits_for))
        return entry.label if entry is not None else f'"{step.waits_for}"'

    return waiter, target


def describe_cycle(cycle: Sequence[CycleStep], report: Report) -> str:
    """One line: thread "a" waits for lock "x" held by thread "b", which waits for lock "y" held by "a"."""
    waiter, target = _namers(report)
    steps = list(cycle)
    if not steps:
        return ""
    if len(steps) == 1:
        step = steps[0]
        if step.lock is not None:
            return (
                f"{waiter(step.thread)} waits for {target(step)}, "
                "which it already holds itself (a Lock is not reentrant)"
            )
        entry = report.awaited_entry(str(step.waits_for))
        if entry is not None and entry.kind == "pool":
            return (
                f"{waiter(step.thread)} waits for {target(step)}, which only it could run: "
                "every worker of the pool is busy waiting (pool starvation)"
            )
        return f"{waiter(step.thread)} waits for {target(step)}, which only it could end"
    parts = []
    for index, step in enumerate(steps):
        holder = steps[(index + 1) % len(steps)].thread
        last = index == len(steps) - 1
        info = report.thread(holder)
        held_by = f'"{info.name}"' if last and info is not None else waiter(holder)
        what = target(step)
        entry = None if step.lock is not None else report.awaited_entry(str(step.waits_for))
        if step.lock is not None or (entry is not None and entry.kind.startswith("asyncio.") and entry.owners):
            what += f" held by {held_by}"  # a lock, or an asyncio Lock/Semaphore: held, not run
        elif info is None or f'"{info.name}"' not in what:
            what += f" (which needs {waiter(holder)})"
        parts.append(f"{waiter(step.thread) if index == 0 else 'which'} waits for {what}")
    return ", ".join(parts)


def describe_chain(chain: Sequence[CycleStep], report: Report) -> str:
    """One line: thread "a" waits for lock "x" held by thread "w", which ended while holding it."""
    waiter, target = _namers(report)
    steps = list(chain)
    if not steps:
        return ""
    parts = [f"{waiter(steps[0].thread)} waits for {target(steps[0])}"]
    for step in steps[1:]:
        parts.append(f"held by {waiter(step.thread)}, which waits for {target(step)}")
    last = steps[-1]
    owner = None
    if last.lock is not None:
        lock = report.lock(last.lock)
        owner = None if lock is None else lock.owner
    if owner is not None:
        info = report.thread(owner)
        name = f'"{info.name}"' if info is not None else str(owner)
        how = info.gone if info is not None and info.gone else "ended, or was not carried over a fork"
        parts.append(f"held by thread {name}, which no longer exists (it {how})")
    else:
        parts.append("whose owner no longer exists")
    return ", ".join(parts)


# --- every kind of wait ----------------------------------------------------------------


class AnyWait(NamedTuple):
    """One blocked waiter (thread or task) in the general wait-for graph.

    ``owners`` must all run for ``target`` to complete (a lock's owner, a joined
    thread, a running future's worker), or any one of them with ``any_of`` (the
    workers of a pool that will run a pending future). No owners: nobody known,
    so the waiter may well go on. ``is_lock``: ``target`` is a lock id, else an
    id in the report's ``awaited`` list.
    """

    target: str
    owners: tuple[int, ...]
    any_of: bool = False
    is_lock: bool = True


class Stuck(NamedTuple):
    """What cannot go on: deadlock cycles, and chains ending at an owner that no longer exists."""

    cycles: list[tuple[CycleStep, ...]]
    chains: list[tuple[CycleStep, ...]]
    stuck: set[int]


def _step(waiter: int, wait: AnyWait) -> CycleStep:
    return CycleStep(thread=waiter, lock=wait.target) if wait.is_lock else CycleStep(thread=waiter, waits_for=wait.target)


def find_stuck(waits: Mapping[int, AnyWait], dead: frozenset[int] | set[int] = frozenset(),
               waits_on_loop: Mapping[int, int] | None = None) -> Stuck:
    """Every waiter that can never go on, with the cycles and dead-owner chains that say why.

    A waiter goes on if what it waits for can: a waiter not in ``waits`` runs
    (unless it is ``dead``: an ended thread never releases what it holds), an
    all-of wait goes on when every owner does, an any-of wait when one does, a
    wait with no known owner is given the benefit of the doubt. ``waits_on_loop``
    maps an asyncio task to its loop's thread: a suspended task also needs that
    thread to run. What is left once nothing more can go on is stuck; from any
    stuck waiter, following stuck owners ends in a cycle or at a dead owner.
    Linear in the size of the graph, nothing imported.
    """
    loops = waits_on_loop or {}

    def needs(node: int) -> tuple[tuple[int, ...], bool]:
        wait = waits[node]
        owners = wait.owners
        loop = loops.get(node)
        if loop is not None and loop not in owners:
            if wait.any_of:
                # Any one worker, and the loop's thread in every case: only the loop is a must.
                return (loop,), False
            owners = owners + (loop,)
        return owners, wait.any_of

    # Least fixpoint of "can go on", worked backwards from the nodes that run.
    dependents: dict[int, list[int]] = {}
    missing: dict[int, int] = {}  # waiter -> owners still not known to go on (all-of waits)
    goes_on: set[int] = set()
    ready: list[int] = []
    for node in waits:
        owners, any_of = needs(node)
        if not owners:
            goes_on.add(node)
            ready.append(node)
            continue
        missing[node] = 1 if any_of else len(set(owners))
        for owner in set(owners):
            dependents.setdefault(owner, []).append(node)
    for owner in list(dependents):
        if owner not in waits and owner not in dead:
            goes_on.add(owner)
            ready.append(owner)
    while ready:
        going = ready.pop()
        for waiter in dependents.get(going, ()):
            if waiter in goes_on:
                continue
            missing[waiter] -= 1
            if missing[waiter] <= 0:
                goes_on.add(waiter)
                ready.append(waiter)
    stuck = {node for node in waits if node not in goes_on}

    def next_stuck(node: int) -> int | None:
        owners, _any_of = needs(node)
        # The wait's own owners first: the picture is the program's, the loop only when it is the cause.
        for owner in sorted(set(owners), key=lambda o: (o == loops.get(node), o)):
            if owner in stuck or owner in dead:
                return owner
        return None

    cycles: list[tuple[CycleStep, ...]] = []
    chains: list[tuple[CycleStep, ...]] = []
    seen_cycles: set[frozenset[int]] = set()
    done: set[int] = set()
    successor = {node: next_stuck(node) for node in stuck}
    waited_on = {after for after in successor.values() if after is not None}
    # Heads first (nobody stuck waits for them): a chain is then told once, whole.
    for start in sorted(stuck, key=lambda node: (node in waited_on, node)):
        path: list[int] = []
        on_path: dict[int, int] = {}
        at: int | None = start
        while at is not None and at in stuck and at not in on_path and at not in done:
            on_path[at] = len(path)
            path.append(at)
            at = successor[at]
        done.update(path)
        if at is not None and at in on_path:
            members = path[on_path[at]:]
            key = frozenset(members)
            if key not in seen_cycles:
                seen_cycles.add(key)
                first = members.index(min(members))
                rotated = members[first:] + members[:first]
                cycles.append(tuple(_step(m, waits[m]) for m in rotated))
        elif at is not None and at in dead:
            # The waits of this path end at an owner that no longer exists.
            chains.append(tuple(_step(m, waits[m]) for m in path))
    cycles.sort(key=lambda cycle: [step.thread for step in cycle])
    return Stuck(cycles=cycles, chains=chains, stuck=stuck)


def any_waits_in_report(report: Report) -> tuple[dict[int, AnyWait], set[int], dict[int, int]]:
    """Every wait a report shows (locks and awaited targets), its dead threads, and tasks' loop threads."""
    owners = {lock.id: lock.owner for lock in report.locks}
    awaited = {entry.id: entry for entry in report.awaited}
    waits: dict[int, AnyWait] = {}
    for thread in report.threads:
        if thread.waiting_for is not None:
            owner = owners.get(thread.waiting_for)
            waits[thread.id] = AnyWait(thread.waiting_for, () if owner is None else (owner,))
            continue
        target = thread.waits_for
        if target is not None:
            entry = awaited.get(target)
            if entry is not None:
                waits[thread.id] = AnyWait(target, tuple(entry.owners), entry.any_of, is_lock=False)
    dead = {thread.id for thread in report.threads if not thread.alive and not thread.is_task}
    loops: dict[int, int] = {}
    for thread in report.threads:
        loop = thread.loop_thread
        if thread.is_task and loop is not None:
            loops[thread.id] = loop
    return waits, dead, loops
