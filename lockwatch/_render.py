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
from lockwatch._model import Frame, LockInfo, OrderEdge, Report, ThreadInfo
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


def _draw_waits(graph: Any, report: Report, max_nodes: int) -> tuple[str, list[str], list[str]]:
    threads = {t.id: t for t in report.threads}
    locks = {lock.id: lock for lock in report.locks}
    cycle_threads = {step.thread for cycle in report.cycles for step in cycle}
    cycle_locks = {step.lock for cycle in report.cycles for step in cycle}
    cycle_waits = {(step.thread, step.lock) for cycle in report.cycles for step in cycle}
    # A cycle's "held by" edge runs from a step's lock to the next step's thread.
    cycle_held: set[tuple[str, int]] = set()
    for cycle in report.cycles:
        for index, step in enumerate(cycle):
            cycle_held.add((step.lock, cycle[(index + 1) % len(cycle)].thread))

    waits: set[tuple[int, str]] = set()
    held: dict[tuple[str, int], int] = {}
    for thread in report.threads:
        if thread.waiting_for is not None:
            waits.add((thread.id, thread.waiting_for))
        for lock_id in thread.holding:
            held[(lock_id, thread.id)] = 1
    for lock in report.locks:
        if lock.owner is not None:
            held[(lock.id, lock.owner)] = max(lock.count, 1)
        for waiter in lock.waiters:
            waits.add((waiter, lock.id))
    waits |= cycle_waits
    for lock_id, owner in cycle_held:
        held.setdefault((lock_id, owner), 1)

    # Threads worth drawing: those in a lock relation or waiting on a condition.
    thread_ids = {t for t, _ in waits} | {t for _, t in held} | cycle_threads
    thread_ids |= {t.id for t in report.threads if t.waiting_in is not None or t.role is not None}
    lock_ids = {lock for _, lock in waits} | {lock for lock, _ in held} | set(locks)
    limited = None
    if len(thread_ids) + len(lock_ids) > max_nodes:
        limited = _focus(report, thread_ids, lock_ids, waits, held, max_nodes)
        thread_ids, lock_ids = limited
        waits = {(t, lock) for t, lock in waits if t in thread_ids and lock in lock_ids}
        held = {key: n for key, n in held.items() if key[1] in thread_ids and key[0] in lock_ids}

    loop = _deadlock_loop(report.cycles[0]) if len(report.cycles) == 1 else None
    if loop is not None:
        graph.attr(rankdir="TB", nodesep="0.9", ranksep="0.55")
    elif len(report.cycles) > 1:
        # Several cycles: circo puts each on a circle, which still reads as loops.
        graph.attr(layout="circo", mindist="0.5", splines="true", overlap="false")
    else:
        graph.attr(rankdir="LR", nodesep="0.4", ranksep="0.6")

    names = _duplicate_names(report.threads)
    for ident in sorted(thread_ids):
        _thread_node(graph, ident, threads.get(ident), ident in cycle_threads, report.victim == ident,
                     ident in names)
    muted_locks = _muted_locks(threads, held, waits)
    for lock_id in sorted(lock_ids, key=_natural):
        _lock_node(graph, lock_id, locks.get(lock_id), lock_id in cycle_locks, lock_id in muted_locks)

    outside: dict[str, list[str]] = {}  # loop node -> the other nodes drawn in its row
    for ident, lock_id in sorted(waits, key=lambda e: (e[0], _natural(e[1]))):
        hot = (ident, lock_id) in cycle_waits
        seconds = threads[ident].waiting_seconds if ident in threads else None
        label = "waits for" if seconds is None else f"waits for {format_seconds(seconds)}"
        _edge(graph, loop, outside, _tid(ident), _lid(lock_id), label=_text(label), style="dashed",
              **_edge_style(hot, _muted(threads.get(ident))))
    for (lock_id, ident), count in sorted(held.items(), key=lambda e: (_natural(e[0][0]), e[0][1])):
        hot = (lock_id, ident) in cycle_held
        label = "held by" if count <= 1 else f"held by ({count} times)"
        if _held_inferred(threads.get(ident), locks.get(lock_id)):
            label += " (inferred)"  # attach mode: a plain Lock's holder read from the frames
        _edge(graph, loop, outside, _lid(lock_id), _tid(ident), label=_text(label), style="solid",
              **_edge_style(hot, _muted(threads.get(ident))))
    if loop is not None:
        _pin_loop(graph, loop, outside)

    legend = ["dashed arrow: waits for", "solid arrow: held by"]
    if any(_held_inferred(threads.get(ident), locks.get(lock_id)) for lock_id, ident in held):
        legend.append("inferred: from with/acquire lines still active (attach mode)")
    if report.cycles:
        legend.insert(0, "red: the deadlock cycle")
    if any(_muted(threads.get(t)) for t in thread_ids):
        legend.append("grey: blocked behind the cycle")
    notes = []
    hidden = len([t for t in report.threads if t.id not in thread_ids])
    if limited is not None:
        notes.append(_partial_note(report, len(thread_ids), len(lock_ids), max_nodes))
    elif hidden:
        notes.append(f"{hidden} other thread{'s' if hidden != 1 else ''}, holding and waiting for nothing, not shown")
    return _waits_headline(report), legend, notes


def _focus(report: Report, thread_ids: set[int], lock_ids: set[str], waits: set[tuple[int, str]],
           held: dict[tuple[str, int], int], max_nodes: int) -> tuple[set[int], set[str]]:
    """At most ``max_nodes`` threads and locks: what matters most, then its neighbourhood.

    What matters most is the deadlock cycle(s); without one, the hung threads; without
    those, the blocked threads. Their neighbours (who holds what they wait for, who
    waits behind them, what else they hold) follow breadth first, nearest first.
    """
    seeds: list[str] = []
    if report.cycles:
        for cycle in report.cycles:
            for step in cycle:
                seeds += [_tid(step.thread), _lid(step.lock)]
        max_nodes = max(max_nodes, len(set(seeds)))  # a cycle is never cut: it is the finding
    else:
        hung = sorted(t.id for t in report.threads if t.role == "hung" and t.id in thread_ids)
        blocked = hung or sorted(t for t, _ in waits)
        blocked = blocked or sorted(t.id for t in report.threads if t.waiting_in is not None and t.id in thread_ids)
        seeds = [_tid(t) for t in blocked]
    # One adjacency map over both kinds of node (built once: linear in the edges).
    neighbours: dict[str, list[str]] = {}
    for ident, lock_id in sorted(waits, key=lambda e: (e[0], _natural(e[1]))):
        neighbours.setdefault(_tid(ident), []).append(_lid(lock_id))
        neighbours.setdefault(_lid(lock_id), []).append(_tid(ident))
    for lock_id, ident in sorted(held, key=lambda e: (_natural(e[0]), e[1])):
        neighbours.setdefault(_lid(lock_id), []).append(_tid(ident))
        neighbours.setdefault(_tid(ident), []).append(_lid(lock_id))
    if not seeds:  # nobody blocked: the first locks held, in id order
        seeds = [_lid(lock_id) for lock_id in sorted(lock_ids, key=_natural)[:max_nodes]]
    # Each seed comes with the chain it is blocked on (the lock, its owner, what that owner
    # waits for...) before the next seed: a few whole stories rather than many loose ends.
    wait_of = {_tid(t): _lid(lock_id) for t, lock_id in sorted(waits, key=lambda e: (e[0], _natural(e[1])))}
    owner_of: dict[str, str] = {}
    for lock_id, ident in sorted(held, key=lambda e: (_natural(e[0]), e[1])):
        owner_of.setdefault(_lid(lock_id), _tid(ident))
    kept: dict[str, None] = {}  # an insertion-ordered set
    for seed in seeds:
        node: str | None = seed
        while node is not None and node not in kept and len(kept) < max_nodes:
            kept[node] = None
            node = wait_of.get(node) if node.startswith("thread_") else owner_of.get(node)
    frontier = list(kept)
    while frontier and len(kept) < max_nodes:
        following = []
        for node in frontier:
            for other in neighbours.get(node, ()):
                if other not in kept and len(kept) < max_nodes:
                    kept[other] = None
                    following.append(other)
        frontier = following
    by_node_t = {_tid(t): t for t in thread_ids}
    by_node_l = {_lid(lock): lock for lock in lock_ids}
    return ({by_node_t[n] for n in kept if n in by_node_t}, {by_node_l[n] for n in kept if n in by_node_l})


def _partial_note(report: Report, threads: int, locks: int, max_nodes: int) -> str:
    if len(report.cycles) == 1:
        focus = "the deadlock cycle and its"
    elif report.cycles:
        focus = "the deadlock cycles and their"
    else:
        hung = any(t.role == "hung" for t in report.threads)
        focus = "the hung threads and their" if hung else "the blocked threads and their"
    return (f"Partial picture (more than {max_nodes} threads and locks): {focus} neighbourhood, "
            f"{threads} of {len(report.threads)} threads and {locks} of {len(report.locks)} locks; "
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


def _deadlock_loop(cycle: tuple[Any, ...]) -> _Loop | None:
    nodes: list[str] = []
    for step in cycle:
        nodes += [_tid(step.thread), _lid(step.lock)]
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


def _waits_headline(report: Report) -> str:
    if report.kind == "deadlock" or report.cycles:
        idents = {step.thread for cycle in report.cycles for step in cycle}
        prefix = "Snapshot of a deadlocked process" if report.kind == "snapshot" else "Deadlock"
        if len(report.cycles) == 1 and len(report.cycles[0]) == 1:
            return f"{prefix}: a thread waits for a lock it holds itself"
        if not idents:
            return prefix
        cycles = "" if len(report.cycles) <= 1 else f" in {len(report.cycles)} cycles"
        return f"{prefix}: {len(idents)} threads{cycles} wait for each other"
    if report.kind == "hang":
        waiting = hung_threads(report)
        longest = max((t.waiting_seconds or 0.0 for t in waiting), default=0.0)
        if not waiting:
            return "Hang"
        who = "1 thread" if len(waiting) == 1 else f"{len(waiting)} threads"
        return f"Hang: {who} blocked (longest {format_seconds(longest)})"
    held = sum(1 for lock in report.locks if lock.owner is not None)
    blocked = sum(1 for t in report.threads if t.is_blocked)
    return f"Snapshot: {len(report.threads)} threads, {held} locks held, {blocked} threads waiting"


def _thread_node(graph: Any, ident: int, thread: ThreadInfo | None, in_cycle: bool, victim: bool,
                 show_id: bool) -> None:
    if thread is None:
        graph.node(_tid(ident), label=_html_lines([(f"thread {ident}", "b"), ("(not in this dump)", "note")]),
                   shape="box", style="rounded,dashed", color=_MUTED, fontcolor=_MUTED)
        return
    muted = _muted(thread) and not in_cycle
    name = f"{thread.name} (id {thread.id})" if show_id else thread.name
    lines: list[tuple[str, str]] = [(name, "b")]
    if victim:
        lines.append(("victim: gets DeadlockError", "alert"))
    if thread.waiting_in:
        lines.append((f"waits in {thread.waiting_in}", "note"))
    frames = user_frames(thread.stack)
    if frames:
        blocking = frames[-1]
        verb = "blocked at" if thread.is_blocked else "at"
        lines.append((f"{verb} {_where(blocking)} in {blocking.function}", "note"))
        if blocking.code:
            lines.append((_code_excerpt(blocking.code), "code"))
    attrs: dict[str, str] = {"shape": "box", "style": "rounded,filled", "fillcolor": _THREAD_FILL,
                             "color": _PLAIN}
    if in_cycle:
        attrs.update(color=_CYCLE, penwidth=_CYCLE_WIDTH, fillcolor=_CYCLE_FILL)
    elif muted:
        attrs.update(color=_MUTED, fontcolor=_MUTED, fillcolor=_MUTED_FILL)
    graph.node(_tid(ident), label=_html_lines(lines, muted=muted), tooltip=_stack_tooltip(thread), **attrs)


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


def _held_inferred(thread: ThreadInfo | None, lock: LockInfo | None) -> bool:
    return (thread is not None and lock is not None and lock.id in thread.inferred) or (lock is not None and lock.inferred)


def _muted_locks(threads: dict[int, ThreadInfo], held: dict[tuple[str, int], int],
                 waits: set[tuple[int, str]]) -> set[str]:
    """Locks only bystanders touch: drawn muted too (one pass over the edges, not one per lock)."""
    muted: dict[str, bool] = {}
    for lock_id, ident in [*held, *((lock, t) for t, lock in waits)]:
        muted[lock_id] = muted.get(lock_id, True) and _muted(threads.get(ident))
    return {lock_id for lock_id, all_muted in muted.items() if all_muted}


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


def _lid(lock_id: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_]+", lock_id):
        return f"lock_{lock_id}"
    # A hand-edited id: keep node names plain DOT identifiers, still unique and stable.
    return f"lock_{re.sub(r'[^A-Za-z0-9_]', '_', lock_id)}_{zlib.crc32(lock_id.encode('utf-8')):08x}"


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
    head = f"thread {thread.name!r} (id {thread.id}), most recent call last:"
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
