"""Draw a report as a Graphviz graph: threads, locks, who waits for and who holds what."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import textwrap
import zlib
from collections.abc import Iterable
from typing import Any

from lockwatch._errors import RenderError
from lockwatch._model import (
    SELF_WAITS,
    AwaitedInfo,
    CycleStep,
    Frame,
    LockInfo,
    OrderEdge,
    Report,
    ThreadInfo,
    deadlock_shape,
    waiters_phrase,
)
from lockwatch._text import format_seconds, hung_threads, is_order_cycle, printable, rule_text, user_frames

#: Output formats ``render`` knows; all but ``dot`` need Graphviz's ``dot`` program.
FORMATS = ("svg", "png", "pdf", "dot")

#: Seconds ``dot`` may take before it is given up on (a huge graph must not hang a report).
DOT_TIMEOUT = 60.0

#: Most threads + locks drawn in a wait-for picture; above it, the cycle and its neighbourhood only.
#: (Graphviz's layout time grows faster than linearly: ~1.4 s for 2,000 nodes, ~36 s for 6,000.)
MAX_NODES = 300

_INSTALL_HINT = (
    "install it with 'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS) "
    "or from https://graphviz.org/download/, or use -f dot"
)

# Colours: the cycle shouts (red, bold, tinted), bystanders whisper (grey), everything else is
# plain and light (blue threads, yellow locks) so the eye goes to the loop first.
_CYCLE = "red3"
_CYCLE_FILL = "#ffe4e1"
_CYCLE_WIDTH = "2.5"
_MUTED = "grey55"
_MUTED_FILL = "#f4f4f4"
_THREAD_FILL = "#e3eef9"
_LOCK_FILL = "#fff6d5"
_TASK_FILL = "#eee6f8"
_AWAITED_FILL = "#e3f4e1"
_PLAIN = "grey30"
_NOTE = "grey40"
_FONT = "Helvetica"
_CODE_FONT = "Courier"

# Longest code excerpt / summary line drawn, in characters: pictures stay readable, the
# tooltips and the text report carry everything in full.
_CODE_WIDTH = 44
_SUMMARY_WIDTH = 110
_SUMMARY_LINES = 3


def has_dot() -> bool:
    """Whether Graphviz's ``dot`` program is on PATH (needed for svg/png/pdf, not for dot)."""
    return shutil.which("dot") is not None


def to_dot(report: Report, max_nodes: int = MAX_NODES) -> str:
    """The report as DOT text; sorted, so the same report always gives the same text.

    A wait-for picture of more than ``max_nodes`` threads and locks shows the deadlock
    cycle(s) (else the hung, else the blocked threads) and their neighbourhood only,
    and says so in its title. Time and size are linear in the report.
    """
    import graphviz  # lazily: only rendering needs it

    graph = graphviz.Digraph("lockwatch", strict=False)
    graph.attr(
        labelloc="t",
        labeljust="c",
        fontname=_FONT,
        fontsize="12",
        bgcolor="white",
        pad="0.3",
        tooltip=_text(report.summary or f"lockwatch {report.kind}"),
    )
    graph.attr("node", fontname=_FONT, fontsize="11", margin="0.15,0.08")
    graph.attr("edge", fontname=_FONT, fontsize="10", arrowsize="0.9")
    if report.kind == "lock-order" or (report.order_cycles and not report.cycles):
        headline, legend, notes = _draw_order(graph, report)
    else:
        headline, legend, notes = _draw_waits(graph, report, max_nodes)
    graph.attr(label=_title(report, headline, legend, notes))
    return str(graph.source)


def render(report: Report, output_path: str | os.PathLike[str], fmt: str) -> str:
    """Write the report as ``fmt`` (svg, png, pdf or dot) to ``output_path``; returns the path."""
    if fmt not in FORMATS:
        raise RenderError(f"unknown output format {fmt!r} (choose one of {', '.join(FORMATS)})")
    path = os.fspath(output_path)
    source = to_dot(report)
    data = source.encode("utf-8") if fmt == "dot" else run_dot(source, fmt)
    try:
        with open(path, "wb") as out:
            out.write(data)
    except OSError as exc:
        raise RenderError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def run_dot(source: str, fmt: str, timeout: float = DOT_TIMEOUT) -> bytes:
    """Run Graphviz's ``dot`` on DOT text and return the rendered bytes."""
    program = shutil.which("dot")
    if program is None:
        raise RenderError(f"Graphviz's 'dot' program is needed for {fmt} output; {_INSTALL_HINT}")
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RenderError(f"Graphviz's 'dot' took more than {timeout:g} s to draw the graph; use -f dot") from None
    except OSError as exc:
        raise RenderError(f"cannot run Graphviz's 'dot' ({program}): {exc.strerror or exc}") from None
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = message[0] if message else f"exit status {done.returncode}"
        raise RenderError(f"Graphviz's 'dot' failed to draw {fmt}: {detail}")
    return done.stdout


# -- wait-for graph (deadlock, hang, snapshot) -------------------------------------------


class _Waits:
    """A report's wait-for graph as DOT node names: waiter -> what it waits for -> its owners.

    Waiters are threads and tasks; what they wait for is a lock or an awaited entry (a join,
    a future, a task, an import...). Built once, in one pass over the report: linear.
    """

    def __init__(self, report: Report) -> None:
        self.threads = {t.id: t for t in report.threads}
        self.locks = {lock.id: lock for lock in report.locks}
        self.awaited = {entry.id: entry for entry in report.awaited}
        self.tasks = {t.id for t in report.threads if t.is_task}
        # (waiter, target node); (lock node, owner) -> times held; (awaited node, owner).
        self.waits: set[tuple[int, str]] = set()
        self.held: dict[tuple[str, int], int] = {}
        self.owned: set[tuple[str, int]] = set()
        self.lock_nodes: dict[str, str] = {}  # node -> lock id
        self.awaited_nodes: dict[str, str] = {}  # node -> awaited id
        # The deadlock: its nodes and its edges (tail, head as drawn), cycles and chains alike.
        self.hot_nodes: set[str] = set()
        self.hot_edges: set[tuple[str, str]] = set()

        for thread in report.threads:
            if thread.waiting_for is not None:
                self.waits.add((thread.id, self.lock(thread.waiting_for)))
            if thread.waits_for is not None:
                self.waits.add((thread.id, self.wait(thread.waits_for)))
            for lock_id in thread.holding:
                self.held[(self.lock(lock_id), thread.id)] = 1
        for lock in report.locks:
            node = self.lock(lock.id)
            if lock.owner is not None:
                self.held[(node, lock.owner)] = max(lock.count, 1)
            for waiter in lock.waiters:
                self.waits.add((waiter, node))
        for entry in report.awaited:
            node = self.wait(entry.id)
            self.owned.update((node, owner) for owner in entry.owners)
            self.waits.update((waiter, node) for waiter in entry.waiters)
        for cycle in report.cycles:
            for index, step in enumerate(cycle):
                self._hot_step(step, cycle[(index + 1) % len(cycle)].thread)
        for chain in report.chains:
            for index, step in enumerate(chain):
                if index + 1 < len(chain):
                    self._hot_step(step, chain[index + 1].thread)
                    continue
                # The end of a chain: whoever owns its last target (an owner that is gone).
                target = self._hot_step(step, None)
                for owner in self._owners(step):
                    self._hot_owner(target, owner)

    def _owners(self, step: CycleStep) -> tuple[int, ...]:
        if step.lock is not None:
            lock = self.locks.get(step.lock)
            return () if lock is None or lock.owner is None else (lock.owner,)
        entry = self.awaited.get(step.target)
        return () if entry is None else entry.owners

    def node(self, ident: int) -> str:
        """A waiter's or owner's node: ``thread_N`` or ``task_N``."""
        return _task_id(ident) if ident in self.tasks else _tid(ident)

    def lock(self, lock_id: str) -> str:
        node = _lid(lock_id)
        self.lock_nodes[node] = lock_id
        return node

    def wait(self, awaited_id: str) -> str:
        node = _aid(awaited_id)
        self.awaited_nodes[node] = awaited_id
        return node

    def target(self, step: CycleStep) -> str:
        return self.lock(step.lock) if step.lock is not None else self.wait(step.target)

    def _hot_step(self, step: CycleStep, owner: int | None) -> str:
        target = self.target(step)
        self.waits.add((step.thread, target))
        self.hot_nodes.update((self.node(step.thread), target))
        self.hot_edges.add((self.node(step.thread), target))
        if owner is not None:
            self._hot_owner(target, owner)
        return target

    def _hot_owner(self, target: str, owner: int) -> None:
        if target in self.lock_nodes:
            self.held.setdefault((target, owner), 1)
        else:
            self.owned.add((target, owner))
        self.hot_nodes.add(self.node(owner))
        self.hot_edges.add((target, self.node(owner)))

    def sorted_waits(self) -> list[tuple[int, str]]:
        return sorted(self.waits, key=lambda e: (e[0], _natural(e[1])))

    def sorted_held(self) -> list[tuple[tuple[str, int], int]]:
        return sorted(self.held.items(), key=lambda e: (_natural(e[0][0]), e[0][1]))

    def sorted_owned(self) -> list[tuple[str, int]]:
        return sorted(self.owned, key=lambda e: (_natural(e[0]), e[1]))

    def keep(self, nodes: set[str]) -> None:
        """Forget every edge that does not join two of ``nodes`` (a partial picture)."""
        self.waits = {(t, x) for t, x in self.waits if self.node(t) in nodes and x in nodes}
        self.held = {key: n for key, n in self.held.items() if key[0] in nodes and self.node(key[1]) in nodes}
        self.owned = {(x, t) for x, t in self.owned if x in nodes and self.node(t) in nodes}


def _draw_waits(graph: Any, report: Report, max_nodes: int) -> tuple[str, list[str], list[str]]:
    waits = _Waits(report)
    threads, locks, awaited = waits.threads, waits.locks, waits.awaited

    # Threads worth drawing: those in a wait relation, or waiting on a condition, or given a role.
    thread_ids = {t for t, _ in waits.waits} | {t for _, t in waits.held} | {t for _, t in waits.owned}
    thread_ids |= {t.id for t in report.threads if t.waiting_in is not None or t.role is not None}
    for lock_id in locks:
        waits.lock(lock_id)
    for awaited_id in awaited:
        waits.wait(awaited_id)
    target_nodes = set(waits.lock_nodes) | set(waits.awaited_nodes)
    limited = None
    if len(thread_ids) + len(target_nodes) > max_nodes:
        kept = _focus(report, waits, thread_ids, target_nodes, max_nodes)
        thread_ids = {t for t in thread_ids if waits.node(t) in kept}
        target_nodes &= kept
        waits.keep(kept)
        limited = True
    lock_nodes = sorted((n for n in target_nodes if n in waits.lock_nodes), key=_natural)
    awaited_nodes = sorted((n for n in target_nodes if n in waits.awaited_nodes), key=_natural)

    loop = _deadlock_loop(report.cycles[0], waits) if len(report.cycles) == 1 else None
    if loop is not None:
        graph.attr(rankdir="TB", nodesep="0.9", ranksep="0.55")
    elif len(report.cycles) > 1:
        # Several cycles: circo puts each on a circle, which still reads as loops.
        graph.attr(layout="circo", mindist="0.5", splines="true", overlap="false")
    else:
        graph.attr(rankdir="LR", nodesep="0.4", ranksep="0.6")

    names = _duplicate_names(report.threads)
    for ident in sorted(thread_ids):
        node = waits.node(ident)
        thread = threads.get(ident)
        loop_thread = threads.get(thread.loop_thread) if thread is not None and thread.loop_thread is not None else None
        _thread_node(graph, node, ident, thread, node in waits.hot_nodes, report.victim == ident,
                     ident in names, loop_name=None if loop_thread is None else loop_thread.name)
    muted = _muted_targets(threads, waits)
    for node in lock_nodes:
        lock_id = waits.lock_nodes[node]
        _lock_node(graph, lock_id, locks.get(lock_id), node in waits.hot_nodes, node in muted)
    for node in awaited_nodes:
        awaited_id = waits.awaited_nodes[node]
        _awaited_node(graph, node, awaited_id, awaited.get(awaited_id), node in waits.hot_nodes, node in muted)

    outside: dict[str, list[str]] = {}  # loop node -> the other nodes drawn in its row
    for ident, target in waits.sorted_waits():
        tail = waits.node(ident)
        seconds = threads[ident].waiting_seconds if ident in threads else None
        label = "waits for" if seconds is None else f"waits for {format_seconds(seconds)}"
        _edge(graph, loop, outside, tail, target, label=_text(label), style="dashed",
              **_edge_style((tail, target) in waits.hot_edges, _muted(threads.get(ident))))
    for (lock_node, ident), count in waits.sorted_held():
        head = waits.node(ident)
        label = "held by" if count <= 1 else f"held by ({count} times)"
        lock = locks.get(waits.lock_nodes[lock_node])
        if _held_inferred(threads.get(ident), lock):
            label += " (inferred)"  # attach mode: a plain Lock's holder read from the frames
        _edge(graph, loop, outside, lock_node, head, label=_text(label), style="solid",
              **_edge_style((lock_node, head) in waits.hot_edges, _muted(threads.get(ident))))
    for awaited_node, ident in waits.sorted_owned():
        head = waits.node(ident)
        entry = awaited.get(waits.awaited_nodes[awaited_node])
        _edge(graph, loop, outside, awaited_node, head, label=_text(_owner_label(entry)),
              style="dashed" if entry is not None and entry.any_of else "solid",
              **_edge_style((awaited_node, head) in waits.hot_edges, _muted(threads.get(ident))))
    if loop is not None:
        _pin_loop(graph, loop, outside)

    legend = ["dashed arrow: waits for", "solid arrow: held by"]
    if awaited_nodes:
        legend.append("green: waited for, not a lock (join, future, task, import...)")
    if any(entry.any_of for entry in awaited.values()):
        legend.append("dashed from a future or semaphore: any one of these can end the wait")
    if any(ident in waits.tasks for ident in thread_ids):
        legend.append("cut corners: an asyncio task")
    if any(_held_inferred(threads.get(ident), locks.get(waits.lock_nodes[node])) for node, ident in waits.held):
        legend.append("inferred: from with/acquire lines still active (attach mode)")
    if report.chains:
        legend.insert(0, "red: a wait on an owner that no longer exists")
    if report.cycles:
        legend.insert(0, "red: the deadlock cycle")
    if any(_muted(threads.get(t)) for t in thread_ids):
        legend.append("grey: blocked behind the cycle")
    notes = []
    if report.all_asleep:
        notes.append("every live thread was asleep (untimed waits, on two looks in a row)")
    hidden = {t.id for t in report.threads if t.id not in thread_ids}
    if limited is not None:
        notes.append(_partial_note(report, len(thread_ids), len(lock_nodes), len(awaited_nodes), max_nodes))
    elif hidden:
        others = waiters_phrase(report, hidden).replace("thread", "other thread", 1).replace("task", "other task", 1)
        if "other thread" in others:
            others = others.replace("other task", "task")
        notes.append(f"{others}, holding and waiting for nothing, not shown")
    return _waits_headline(report, waits), legend, notes


def _owner_label(entry: AwaitedInfo | None) -> str:
    """The edge from an awaited thing to who must run for it: a join ends with its thread, a future is run by one."""
    if entry is None:
        return "owned by"
    if entry.kind in ("thread", "task"):
        return "ends with"
    if entry.is_work:
        if entry.any_of:
            return "to be run by any of"
        return "to be run by" if entry.state == "pending" else "run by"
    return "held by (any of)" if entry.any_of else "held by"


def _focus(report: Report, waits: _Waits, thread_ids: set[int], target_nodes: set[str],
           max_nodes: int) -> set[str]:
    """The nodes of a picture of at most ``max_nodes``: what matters most, then its neighbourhood.

    What matters most is the deadlock cycle(s) (and chains to an owner that is gone);
    without one, the hung threads; without those, the blocked threads. Their neighbours
    (who holds what they wait for, who waits behind them, what else they hold) follow
    breadth first, nearest first.
    """
    seeds: list[str] = []
    if report.cycles or report.chains:
        for cycle in (*report.cycles, *report.chains):
            for step in cycle:
                seeds += [waits.node(step.thread), waits.target(step)]
        seeds += sorted(waits.hot_nodes - set(seeds))  # the owners at the ends of chains
        max_nodes = max(max_nodes, len(set(seeds)))  # a cycle is never cut: it is the finding
    else:
        hung = sorted(t.id for t in report.threads if t.role == "hung" and t.id in thread_ids)
        blocked = hung or sorted(t for t, _ in waits.waits)
        blocked = blocked or sorted(t.id for t in report.threads if t.waiting_in is not None and t.id in thread_ids)
        seeds = [waits.node(t) for t in blocked]
    # One adjacency map over every kind of node (built once: linear in the edges).
    neighbours: dict[str, list[str]] = {}
    wait_of: dict[str, str] = {}
    owner_of: dict[str, str] = {}
    for ident, target in waits.sorted_waits():
        node = waits.node(ident)
        neighbours.setdefault(node, []).append(target)
        neighbours.setdefault(target, []).append(node)
        wait_of.setdefault(node, target)
    for target, ident in [*(key for key, _ in waits.sorted_held()), *waits.sorted_owned()]:
        node = waits.node(ident)
        neighbours.setdefault(target, []).append(node)
        neighbours.setdefault(node, []).append(target)
        owner_of.setdefault(target, node)
    if not seeds:  # nobody blocked: the first locks held, in id order
        seeds = sorted(target_nodes, key=_natural)[:max_nodes]
    # Each seed comes with the chain it is blocked on (the lock, its owner, what that owner
    # waits for...) before the next seed: a few whole stories rather than many loose ends.
    kept: dict[str, None] = {}  # an insertion-ordered set
    for seed in seeds:
        next_node: str | None = seed
        while next_node is not None and next_node not in kept and len(kept) < max_nodes:
            kept[next_node] = None
            next_node = wait_of.get(next_node) or owner_of.get(next_node)
    frontier = list(kept)
    while frontier and len(kept) < max_nodes:
        following = []
        for node in frontier:
            for other in neighbours.get(node, ()):
                if other not in kept and len(kept) < max_nodes:
                    kept[other] = None
                    following.append(other)
        frontier = following
    return set(kept)


def _partial_note(report: Report, threads: int, locks: int, awaited: int, max_nodes: int) -> str:
    if len(report.cycles) == 1:
        focus = "the deadlock cycle and its"
    elif report.cycles:
        focus = "the deadlock cycles and their"
    elif report.chains:
        focus = "the waits on an owner that is gone and their"
    else:
        hung = any(t.role == "hung" for t in report.threads)
        focus = "the hung threads and their" if hung else "the blocked threads and their"
    others = f" and {awaited} of {len(report.awaited)} other waits" if report.awaited else ""
    return (f"Partial picture (more than {max_nodes} threads and locks): {focus} neighbourhood, "
            f"{threads} of {len(report.threads)} threads and {locks} of {len(report.locks)} locks{others}; "
            f"the dump (JSON) and the text report have everything")


class _Loop:
    """Where each node of a cycle goes so that dot draws the cycle as a loop, not a strip.

    The cycle's nodes (thread, lock, thread, lock, ... or lock, lock, ...) run down the left
    column and back up the right one: row ``i`` holds node ``i`` on the left and node
    ``n - 1 - i`` on the right. Only the left column's edges set ranks; the others go up or
    across a row, so they must not.
    """

    def __init__(self, nodes: list[str]) -> None:
        half = (len(nodes) + 1) // 2
        self.left = nodes[:half]
        self.right = list(reversed(nodes[half:]))  # top to bottom
        self.row = {name: index for index, name in enumerate(self.left)}
        self.row.update({name: index for index, name in enumerate(self.right)})
        self.ranking = set(zip(self.left, self.left[1:], strict=False))
        self.edges = {(nodes[i], nodes[(i + 1) % len(nodes)]) for i in range(len(nodes))}
        self.hung_outside: set[str] = set()  # nodes already placed in the row of a loop node

    @classmethod
    def of(cls, nodes: list[str]) -> _Loop | None:
        """The loop for these nodes, or None when a plain layout draws it as well (or it is malformed)."""
        if len(nodes) < 3 or len(set(nodes)) != len(nodes):
            return None
        return cls(nodes)


def _deadlock_loop(cycle: tuple[CycleStep, ...], waits: _Waits) -> _Loop | None:
    nodes: list[str] = []
    for step in cycle:
        nodes += [waits.node(step.thread), waits.target(step)]
    return _Loop.of(nodes)


def _edge(graph: Any, loop: _Loop | None, outside: dict[str, list[str]], tail: str, head: str,
          **attrs: str) -> None:
    """Draw one edge; in a loop layout, keep the loop's shape and hang other nodes outside it.

    dot puts the tail of an edge inside a row (rank=same) on the left; an edge that must run
    right to left is therefore written head -> tail and drawn with dir=back.
    """
    if loop is None or (tail, head) in loop.ranking:
        graph.edge(tail, head, **attrs)
        return
    if (tail, head) in loop.edges:
        if loop.row[tail] != loop.row[head]:
            graph.edge(tail, head, constraint="false", **attrs)  # goes up or down a column edge
        elif tail in loop.left:
            graph.edge(tail, head, **attrs)
        else:
            graph.edge(head, tail, dir="back", **attrs)
        return
    for inner, other in ((tail, head), (head, tail)):
        if inner in loop.row and other not in loop.row and other not in loop.hung_outside:
            # A bystander, or another lock a cycle thread holds: it joins the row of the loop
            # node it touches, on the outer side, so it never sits inside the loop.
            outside.setdefault(inner, []).append(other)
            loop.hung_outside.add(other)
            if (tail == other) == (inner in loop.left):
                graph.edge(tail, head, **attrs)
            else:
                graph.edge(head, tail, dir="back", **attrs)
            return
    graph.edge(tail, head, **attrs)


def _pin_loop(graph: Any, loop: _Loop, outside: dict[str, list[str]]) -> None:
    """The rows of the loop (rank=same), left column before right, with nodes hung outside."""
    for row, left in enumerate(loop.left):
        right = loop.right[row] if row < len(loop.right) else None
        with graph.subgraph() as rank:
            rank.attr(rank="same")
            for name in (left, right):
                if name is None:
                    continue
                rank.node(name)
                for other in outside.get(name, ()):
                    rank.node(other)
            if right is not None and (left, right) not in loop.edges and (right, left) not in loop.edges:
                rank.edge(left, right, style="invis")  # no edge of the loop orders this row


def _waits_headline(report: Report, waits: _Waits) -> str:
    if report.kind == "deadlock" or report.cycles:
        prefix = "Snapshot of a deadlocked process" if report.kind == "snapshot" else "Deadlock"
        shape, idents = deadlock_shape(report)
        if shape in SELF_WAITS:
            return f"{prefix}: {waiters_phrase(report, idents, one=True)} waits for {SELF_WAITS[shape]}"
        if shape == "orphan":
            verb = "waits" if len(idents) == 1 else "wait"
            return f"{prefix}: {waiters_phrase(report, idents)} {verb} for an owner that no longer exists"
        if shape != "cycles":
            return f"{prefix}: every thread is asleep" if shape == "asleep" else prefix
        cycles = "" if len(report.cycles) <= 1 else f" in {len(report.cycles)} cycles"
        return f"{prefix}: {waiters_phrase(report, idents)}{cycles} wait for each other"
    if report.kind == "hang":
        waiting = hung_threads(report)
        longest = max((t.waiting_seconds or 0.0 for t in waiting), default=0.0)
        if not waiting:
            return "Hang: every thread is asleep" if report.all_asleep else "Hang"
        who = "1 thread" if len(waiting) == 1 else f"{len(waiting)} threads"
        if report.all_asleep:
            return f"Hang: every thread is asleep ({who} blocked, longest {format_seconds(longest)})"
        return f"Hang: {who} blocked (longest {format_seconds(longest)})"
    held = sum(1 for lock in report.locks if lock.owner is not None)
    blocked = sum(1 for t in report.threads if t.is_blocked)
    tasks = len(waits.tasks)
    nodes = f"{len(report.threads) - tasks} threads" + (f", {tasks} tasks" if tasks else "")
    return f"Snapshot: {nodes}, {held} locks held, {blocked} threads waiting"




def _thread_node(graph: Any, node: str, ident: int, thread: ThreadInfo | None, in_cycle: bool, victim: bool,
                 show_id: bool, loop_name: str | None = None) -> None:
    if thread is None:
        graph.node(node, label=_html_lines([(f"thread {ident}", "b"), ("(not in this dump)", "note")]),
                   shape="box", style="rounded,dashed", color=_MUTED, fontcolor=_MUTED)
        return
    muted = _muted(thread) and not in_cycle
    name = f"{thread.name} (id {thread.id})" if show_id else thread.name
    lines: list[tuple[str, str]] = [(f"task {name}" if thread.is_task else name, "b")]
    if thread.is_task and thread.loop_thread is not None and loop_name is not None:
        lines.append((f"on the loop of {loop_name}", "note"))
    if victim:
        lines.append(("victim: gets DeadlockError", "alert"))
    if not thread.alive:
        lines.append(("ended (no longer running)", "alert" if in_cycle else "note"))
    if thread.waiting_in and thread.waits_for is None:
        lines.append((f"waits in {thread.waiting_in}", "note"))
    frames = user_frames(thread.stack)
    if frames:
        blocking = frames[-1]
        verb = "blocked at" if thread.is_blocked else "at"
        lines.append((f"{verb} {_where(blocking)} in {blocking.function}", "note"))
        if blocking.code:
            lines.append((_code_excerpt(blocking.code), "code"))
    if thread.is_task:
        # Cut corners and another tint: a task is not a thread, though it waits and owns like one.
        attrs: dict[str, str] = {"shape": "box", "style": "filled,diagonals", "fillcolor": _TASK_FILL,
                                 "color": _PLAIN}
    else:
        attrs = {"shape": "box", "style": "rounded,filled", "fillcolor": _THREAD_FILL, "color": _PLAIN}
    if not thread.alive:
        attrs["style"] += ",dashed"
    if in_cycle:
        attrs.update(color=_CYCLE, penwidth=_CYCLE_WIDTH, fillcolor=_CYCLE_FILL)
    elif muted:
        attrs.update(color=_MUTED, fontcolor=_MUTED, fillcolor=_MUTED_FILL)
    graph.node(node, label=_html_lines(lines, muted=muted), tooltip=_stack_tooltip(thread), **attrs)


def _lock_node(graph: Any, lock_id: str, lock: LockInfo | None, in_cycle: bool, muted: bool) -> None:
    if lock is None:
        graph.node(_lid(lock_id), label=_html_lines([(lock_id, "b"), ("(not in this dump)", "note")]),
                   shape="ellipse", style="dashed", color=_MUTED, fontcolor=_MUTED)
        return
    attrs: dict[str, str] = {"shape": "ellipse", "style": "filled", "fillcolor": _LOCK_FILL, "color": _PLAIN}
    if in_cycle:
        attrs.update(color=_CYCLE, penwidth=_CYCLE_WIDTH, fillcolor=_CYCLE_FILL)
    elif muted:
        attrs.update(color=_MUTED, fontcolor=_MUTED, fillcolor=_MUTED_FILL)
    label = _lock_label(lock_id, lock.title, lock, muted=muted and not in_cycle)
    graph.node(_lid(lock_id), label=label, tooltip=_lock_tooltip(lock_id, lock.title, lock), **attrs)


#: The shape of each kind of awaited thing (locks are ellipses, threads rounded boxes).
_AWAITED_SHAPES = {"thread": "house", "task": "invhouse", "future": "note", "pool": "folder",
                   "import": "tab"}
_ASYNCIO_SHAPE = "octagon"  # asyncio.Lock, Condition, Semaphore, Event...: lock-like, not a lock
_OTHER_SHAPE = "hexagon"


def _awaited_shape(kind: str) -> str:
    if kind in _AWAITED_SHAPES:
        return _AWAITED_SHAPES[kind]
    return _ASYNCIO_SHAPE if kind.startswith("asyncio.") else _OTHER_SHAPE


def _awaited_node(graph: Any, node: str, awaited_id: str, entry: AwaitedInfo | None, in_cycle: bool,
                  muted: bool) -> None:
    if entry is None:
        graph.node(node, label=_html_lines([(awaited_id, "b"), ("(not in this dump)", "note")]),
                   shape=_OTHER_SHAPE, style="dashed", color=_MUTED, fontcolor=_MUTED)
        return
    muted = muted and not in_cycle
    detail = {"thread": "join", "task": "await"}.get(entry.kind, entry.kind)
    if entry.state:
        detail += f", {entry.state}"
    detail += f" ({awaited_id})"
    lines: list[tuple[str, str]] = [(entry.title, "b"), (detail, "note")]
    if entry.site is not None:
        made = "submitted" if entry.kind in ("future", "pool") else "made"
        lines.append((f"{made} at {_where(entry.site)} in {entry.site.function}", "note"))
    attrs: dict[str, str] = {"shape": _awaited_shape(entry.kind), "style": "filled", "fillcolor": _AWAITED_FILL,
                             "color": _PLAIN}
    if in_cycle:
        attrs.update(color=_CYCLE, penwidth=_CYCLE_WIDTH, fillcolor=_CYCLE_FILL)
    elif muted:
        attrs.update(color=_MUTED, fontcolor=_MUTED, fillcolor=_MUTED_FILL)
    tooltip = f"{entry.kind} {awaited_id} {entry.title!r}"
    if entry.any_of:
        tooltip += "\nany one of its owners can end the wait (a pool's workers, a semaphore's holders)"
    if entry.site is not None:
        tooltip += f"\nat {entry.site.file}:{entry.site.line} in {entry.site.function}"
    graph.node(node, label=_html_lines(lines, muted=muted), tooltip=_text(tooltip), **attrs)


def _held_inferred(thread: ThreadInfo | None, lock: LockInfo | None) -> bool:
    return (thread is not None and lock is not None and lock.id in thread.inferred) or (lock is not None and lock.inferred)


def _muted_targets(threads: dict[int, ThreadInfo], waits: _Waits) -> set[str]:
    """Locks and awaited things only bystanders touch: drawn muted too (one pass over the edges)."""
    muted: dict[str, bool] = {}
    for target, ident in [*waits.held, *((x, t) for t, x in waits.waits), *waits.owned]:
        muted[target] = muted.get(target, True) and _muted(threads.get(ident))
    return {target for target, all_muted in muted.items() if all_muted}


def _muted(thread: ThreadInfo | None) -> bool:
    return thread is not None and thread.role == "bystander"


def _edge_style(hot: bool, muted: bool) -> dict[str, str]:
    if hot:
        return {"color": _CYCLE, "fontcolor": _CYCLE, "penwidth": _CYCLE_WIDTH}
    if muted:
        return {"color": _MUTED, "fontcolor": _MUTED}
    return {"color": _PLAIN, "fontcolor": _PLAIN}


def _duplicate_names(threads: Iterable[ThreadInfo]) -> set[int]:
    """Threads whose name another thread shares: they are told apart by id."""
    seen: dict[str, list[int]] = {}
    for thread in threads:
        seen.setdefault(thread.name, []).append(thread.id)
    return {ident for idents in seen.values() if len(idents) > 1 for ident in idents}


# -- lock-order graph ------------------------------------------------------------------------


def _draw_order(graph: Any, report: Report) -> tuple[str, list[str], list[str]]:
    locks = {lock.id: lock for lock in report.locks}
    labels: dict[str, str] = {}
    edges: dict[tuple[str, str], OrderEdge] = {}
    for cycle in report.order_cycles:
        for edge in cycle:
            labels[edge.from_] = labels.get(edge.from_) or (edge.from_label or "")
            labels[edge.to] = labels.get(edge.to) or (edge.to_label or "")
            edges.setdefault((edge.from_, edge.to), edge)
    # Three or more locks in one cycle: lay them out as a loop; two locks already make one.
    loop = _Loop.of([_lid(edge.from_) for edge in report.order_cycles[0]]) if len(report.order_cycles) == 1 else None
    if loop is not None:
        graph.attr(rankdir="TB", nodesep="1.2", ranksep="0.8")
    else:
        graph.attr(rankdir="LR", nodesep="0.5", ranksep="1.6")
    for lock_id in sorted(labels, key=_natural):
        lock = locks.get(lock_id)
        title = labels[lock_id] or (lock.title if lock is not None else lock_id)
        graph.node(_lid(lock_id), label=_lock_label(lock_id, title, lock), shape="ellipse", style="filled",
                   fillcolor=_CYCLE_FILL, color=_CYCLE, penwidth=_CYCLE_WIDTH,
                   tooltip=_lock_tooltip(lock_id, title, lock))
    for (source, target), edge in sorted(edges.items(), key=lambda e: (_natural(e[0][0]), _natural(e[0][1]))):
        lines: list[tuple[str, str]] = [(f'taken by "{edge.thread}"', "b")]
        if edge.test:
            lines.append((f"in {edge.test}", "plain"))
        frames = user_frames(edge.stack)
        if frames:
            lines.append((f"at {_where(frames[-1])} in {frames[-1].function}", "plain"))
        if edge.gates:
            lines.append((f"under {', '.join(edge.gates)}", "plain"))
        tooltip = f"{source} -> {target} first taken by thread {edge.thread!r}"
        if edge.test:
            tooltip += f" in {edge.test}"
        tooltip += "\n" + _stack_text(edge.stack)
        _edge(graph, loop, {}, _lid(source), _lid(target), label=_html_lines(lines, colour=_CYCLE),
              tooltip=_text(tooltip), color=_CYCLE, fontcolor=_CYCLE, penwidth=_CYCLE_WIDTH)
    if loop is not None:
        _pin_loop(graph, loop, {})
    count = len(labels)
    legend = ["arrow A -> B: B was locked while holding A"]
    if any(is_order_cycle(cycle) for cycle in report.order_cycles):
        headline = (f"Potential deadlock: {count} locks are taken in opposite orders" if count == 2
                    else f"Potential deadlock: {count} locks are taken in a circular order")
        legend.append("red: the order cycle")
    else:
        # A declared order (or rank) broken by one acquisition: a rule, not a cycle.
        headline = "Declared lock order broken"
        legend.append("red: the order taken against the rule")
    notes = []
    if report.rule:
        notes.append(f"declared order broken: {rule_text(report.rule)}")
    if report.single_thread:
        notes.append("one thread took every order: not deadlocked yet")
    return headline, legend, notes


# -- title -------------------------------------------------------------------------------------


def _title(report: Report, headline: str, legend: list[str], notes: list[str]) -> str:
    """Headline, the one-line summary, where it came from, notes and a legend, as an HTML label."""
    lines: list[tuple[str, str]] = [(headline, "headline")]
    if report.summary:
        wrapped = textwrap.wrap(report.summary, _SUMMARY_WIDTH, break_on_hyphens=False)
        if len(wrapped) > _SUMMARY_LINES:
            wrapped = wrapped[:_SUMMARY_LINES]
            wrapped[-1] = _shorten(wrapped[-1] + " ...", _SUMMARY_WIDTH)
        lines.extend((line, "plain") for line in wrapped)
    program = os.path.basename(report.argv[0]) if report.argv else "?"
    origin = f"lockwatch {report.kind} - process {report.pid} ({program}, Python {report.python}) - {report.created}"
    lines.append((origin, "note"))
    lines.extend((note, "alert" if note.startswith(("declared order broken", "Partial picture")) else "note")
                 for note in notes)
    lines.append(("      ".join(legend), "note"))
    return _html_lines(lines)


# -- helpers ------------------------------------------------------------------------------------


def _lock_label(lock_id: str, title: str, lock: LockInfo | None, muted: bool = False) -> str:
    """Lock name in bold, then kind, id and creation site (unless the name already says it)."""
    # Generated labels may end in " (L3)": the id is on the next line anyway. (A string test,
    # not a regex per lock: compiling one pattern per lock id made big pictures crawl.)
    if title.endswith(f"({lock_id})"):
        title = title[: -len(f"({lock_id})")].rstrip() or lock_id
    detail = f"{lock.kind} {lock_id}" if lock is not None else lock_id
    if lock is not None and lock.site is not None:
        site = _where(lock.site)
        if site not in title:
            detail += f", created at {site}"
    return _html_lines([(title, "b"), (detail, "note")], muted=muted)


def _lock_tooltip(lock_id: str, title: str, lock: LockInfo | None) -> str:
    tooltip = f"{lock.kind} {lock_id} {title!r}" if lock is not None else f"{lock_id} {title!r}"
    if lock is not None and lock.site is not None:
        tooltip += f"\ncreated at {lock.site.file}:{lock.site.line} in {lock.site.function}"
    return _text(tooltip)


def _tid(ident: int) -> str:
    return f"thread_{ident}"


def _task_id(ident: int) -> str:
    return f"task_{ident}"


def _lid(lock_id: str) -> str:
    return _plain("lock_", lock_id)


def _aid(awaited_id: str) -> str:
    return _plain("wait_", awaited_id)


_PLAIN_ID = re.compile(r"[A-Za-z0-9_]+")


def _plain(prefix: str, some_id: str) -> str:
    if _PLAIN_ID.fullmatch(some_id):
        return prefix + some_id
    # A hand-edited id: keep node names plain DOT identifiers, still unique and stable.
    return f"{prefix}{re.sub(r'[^A-Za-z0-9_]', '_', some_id)}_{zlib.crc32(some_id.encode('utf-8')):08x}"


def _natural(lock_id: str) -> tuple[str, int, str]:
    """Sort L2 before L10."""
    match = re.fullmatch(r"(\D*)(\d+)", lock_id)
    if match:
        return (match.group(1), int(match.group(2)), "")
    return (lock_id, -1, lock_id)


def _where(frame: Frame) -> str:
    return f"{os.path.basename(frame.file)}:{frame.line}"




def _code_excerpt(code: str) -> str:
    """The blocking line as drawn: a trailing comment goes first when the line is too long."""
    code = code.strip()
    if len(code) > _CODE_WIDTH and "  #" in code:
        code = code.split("  #", 1)[0].rstrip()  # PEP 8 inline comment; the tooltip keeps it
    return _shorten(code, _CODE_WIDTH)


def _shorten(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 3].rstrip() + "..."


def _stack_text(stack: tuple[Frame, ...]) -> str:
    lines = []
    for frame in user_frames(stack):
        lines.append(f"{frame.file}:{frame.line} in {frame.function}")
        if frame.code:
            lines.append(f"    {frame.code.strip()}")
    return "\n".join(lines)


def _stack_tooltip(thread: ThreadInfo) -> str:
    head = f"{'task' if thread.is_task else 'thread'} {thread.name!r} (id {thread.id}), most recent call last:"
    return _text(head + "\n" + (_stack_text(thread.stack) or "(no stack)"))


# How each kind of line of an HTML label looks: (font face, point size, colour, bold).
_LINE_STYLES: dict[str, tuple[str | None, int | None, str | None, bool]] = {
    "headline": (None, 16, None, True),
    "b": (None, 12, None, True),
    "plain": (None, None, None, False),
    "note": (None, 9, _NOTE, False),
    "alert": (None, 10, _CYCLE, True),
    "code": (_CODE_FONT, 9, None, False),
}


def _html_lines(lines: list[tuple[str, str]], muted: bool = False, colour: str | None = None) -> str:
    """An HTML-like label of centred lines; every text is escaped, so names never become markup."""
    parts = []
    for value, kind in lines:
        face, size, line_colour, bold = _LINE_STYLES[kind]
        text = _html_text(value.replace("\n", " ")) or " "
        if bold:
            text = f"<B>{text}</B>"
        font = []
        if face:
            font.append(f'FACE="{face}"')
        if size:
            font.append(f'POINT-SIZE="{size}"')
        line_colour = _MUTED if muted else (colour if colour and kind not in ("note",) else line_colour)
        if line_colour:
            font.append(f'COLOR="{line_colour}"')
        if font:
            text = f"<FONT {' '.join(font)}>{text}</FONT>"
        parts.append(text)
    return f"<{'<BR/>'.join(parts)}>"


def _html_text(value: str) -> str:
    """Text for an HTML-like label: control characters shown as escapes (XML allows none of
    them, and one makes Graphviz drop the whole SVG), markup escaped, and backslashes
    doubled (Graphviz expands ``\\G``, ``\\N``... even inside HTML labels; ``\\\\`` is one backslash)."""
    return html.escape(printable(value), quote=True).replace("\\", "\\\\")


def _text(value: str) -> str:
    """A DOT string (tooltips, plain labels): every character literal, newlines as line breaks, never HTML.

    Control characters are shown as escapes (see _html_text). A backslash is written as
    four: DOT's lexer halves them, then Graphviz's ``\\G``/``\\N`` expansion halves them
    again. Quotes are escaped here, not by the graphviz package, which would take a quote
    after an escaped backslash for an escaped quote.
    """
    import graphviz

    lines = (printable(line).replace("\\", "\\\\\\\\").replace('"', '\\"') for line in value.split("\n"))
    return graphviz.nohtml("\\n".join(lines))
