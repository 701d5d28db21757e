"""Draw a report as a Graphviz graph: threads, locks, who waits for and who holds what."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zlib
from typing import Any

from lockwatch._errors import RenderError
from lockwatch._model import Frame, Report, ThreadInfo
from lockwatch._text import user_frames

#: Output formats ``render`` knows; all but ``dot`` need Graphviz's ``dot`` program.
FORMATS = ("svg", "png", "pdf", "dot")

#: Seconds ``dot`` may take before it is given up on (a huge graph must not hang a report).
DOT_TIMEOUT = 60.0

_INSTALL_HINT = (
    "install it with 'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS) "
    "or from https://graphviz.org/download/, or use -f dot"
)

# Colours: the cycle shouts, bystanders whisper, everything else is plain.
_CYCLE = "red"
_MUTED = "grey55"
_THREAD_FILL = "#dbe9f6"
_LOCK_FILL = "#fff3c4"
_MUTED_FILL = "#f2f2f2"


def has_dot() -> bool:
    """Whether Graphviz's ``dot`` program is on PATH (needed for svg/png/pdf, not for dot)."""
    return shutil.which("dot") is not None


def to_dot(report: Report) -> str:
    """The report as DOT text; sorted, so the same report always gives the same text."""
    import graphviz  # lazily: only rendering needs it

    graph = graphviz.Digraph("lockwatch", strict=False)
    graph.attr(
        labelloc="t",
        fontname="Helvetica",
        rankdir="LR",
        tooltip=_text(report.summary or f"lockwatch {report.kind}"),
    )
    graph.attr("node", fontname="Helvetica", fontsize="11")
    graph.attr("edge", fontname="Helvetica", fontsize="10")
    if report.kind == "lock-order" or (report.order_cycles and not report.cycles):
        notes = _draw_order(graph, report)
    else:
        notes = _draw_waits(graph, report)
    title = f"lockwatch {report.kind} - {report.created} - process {report.pid}"
    graph.attr(label=_text("\n".join([title, *notes])))
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


def _draw_waits(graph: Any, report: Report) -> list[str]:
    threads = {t.id: t for t in report.threads}
    locks = {lock.id: lock for lock in report.locks}
    cycle_threads = {step.thread for cycle in report.cycles for step in cycle}
    cycle_locks = {step.lock for cycle in report.cycles for step in cycle}
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
    for cycle in report.cycles:
        for step in cycle:
            waits.add((step.thread, step.lock))
    for lock_id, owner in cycle_held:
        held.setdefault((lock_id, owner), 1)

    # Threads worth drawing: those in a lock relation or waiting on a condition.
    thread_ids = {t for t, _ in waits} | {t for _, t in held} | cycle_threads
    thread_ids |= {t.id for t in report.threads if t.waiting_in is not None or t.role is not None}
    lock_ids = {lock for _, lock in waits} | {lock for lock, _ in held} | set(locks)

    for ident in sorted(thread_ids):
        _thread_node(graph, ident, threads.get(ident), ident in cycle_threads, report.victim == ident)
    for lock_id in sorted(lock_ids, key=_natural):
        _lock_node(graph, lock_id, locks.get(lock_id), lock_id in cycle_locks, _all_muted(lock_id, threads, held, waits))

    for ident, lock_id in sorted(waits, key=lambda e: (e[0], _natural(e[1]))):
        hot = ident in cycle_threads and lock_id in cycle_locks and (ident, lock_id) in _cycle_waits(report)
        seconds = threads[ident].waiting_seconds if ident in threads else None
        label = "waits for" if seconds is None else f"waits for\n{seconds:.1f} s"
        graph.edge(_tid(ident), _lid(lock_id), label=_text(label), style="dashed", **_edge_style(hot, _muted(threads.get(ident))))
    for (lock_id, ident), count in sorted(held.items(), key=lambda e: (_natural(e[0][0]), e[0][1])):
        hot = (lock_id, ident) in cycle_held
        label = "held by" if count <= 1 else f"held by\n({count} times)"
        graph.edge(_lid(lock_id), _tid(ident), label=_text(label), style="solid", **_edge_style(hot, _muted(threads.get(ident))))

    hidden = len([t for t in report.threads if t.id not in thread_ids])
    if hidden:
        return [f"({hidden} other thread{'s' if hidden != 1 else ''}, holding and waiting for nothing, not shown)"]
    return []


def _cycle_waits(report: Report) -> set[tuple[int, str]]:
    return {(step.thread, step.lock) for cycle in report.cycles for step in cycle}


def _thread_node(graph: Any, ident: int, thread: ThreadInfo | None, in_cycle: bool, victim: bool) -> None:
    if thread is None:
        graph.node(_tid(ident), label=_text(f"thread {ident}\n(not in this dump)"), shape="box",
                   style="rounded,dashed", color=_MUTED, fontcolor=_MUTED)
        return
    lines = [thread.name, f"id {thread.id}"]
    if thread.waiting_in:
        lines.append(f"in {thread.waiting_in}")
    if victim:
        lines.append("victim (DeadlockError)")
    frames = user_frames(thread.stack)
    if frames:
        lines.append(_where(frames[-1]))
    attrs: dict[str, str] = {"shape": "box", "style": "rounded,filled", "fillcolor": _THREAD_FILL}
    if in_cycle:
        attrs.update(color=_CYCLE, penwidth="2.5", fontcolor="black")
    elif _muted(thread):
        attrs.update(color=_MUTED, fontcolor=_MUTED, fillcolor=_MUTED_FILL)
    graph.node(_tid(ident), label=_text("\n".join(lines)), tooltip=_stack_tooltip(thread), **attrs)


def _lock_node(graph: Any, lock_id: str, lock: Any, in_cycle: bool, muted: bool) -> None:
    attrs: dict[str, str] = {"shape": "ellipse", "style": "filled", "fillcolor": _LOCK_FILL}
    if lock is None:
        graph.node(_lid(lock_id), label=_text(f"{lock_id}\n(not in this dump)"), shape="ellipse",
                   style="dashed", color=_MUTED, fontcolor=_MUTED)
        return
    lines = [lock.title, f"{lock.kind} {lock.id}"]
    if lock.site is not None:
        lines.append(f"created {_where(lock.site)}")
    if in_cycle:
        attrs.update(color=_CYCLE, penwidth="2.5")
    elif muted:
        attrs.update(color=_MUTED, fontcolor=_MUTED, fillcolor=_MUTED_FILL)
    tooltip = f"{lock.kind} {lock.id} {lock.title!r}"
    if lock.site is not None:
        tooltip += f"\ncreated at {lock.site.file}:{lock.site.line} in {lock.site.function}"
    graph.node(_lid(lock_id), label=_text("\n".join(lines)), tooltip=_text(tooltip), **attrs)


def _all_muted(lock_id: str, threads: dict[int, ThreadInfo], held: dict[tuple[str, int], int],
               waits: set[tuple[int, str]]) -> bool:
    """A lock only bystanders touch is drawn muted too."""
    users = [t for (lock, t) in held if lock == lock_id] + [t for (t, lock) in waits if lock == lock_id]
    return bool(users) and all(_muted(threads.get(t)) for t in users)


def _muted(thread: ThreadInfo | None) -> bool:
    return thread is not None and thread.role == "bystander"


def _edge_style(hot: bool, muted: bool) -> dict[str, str]:
    if hot:
        return {"color": _CYCLE, "fontcolor": _CYCLE, "penwidth": "2.5"}
    if muted:
        return {"color": _MUTED, "fontcolor": _MUTED}
    return {}


# -- lock-order graph ------------------------------------------------------------------------


def _draw_order(graph: Any, report: Report) -> list[str]:
    locks = {lock.id: lock for lock in report.locks}
    labels: dict[str, str] = {}
    edges: dict[tuple[str, str], Any] = {}
    for cycle in report.order_cycles:
        for edge in cycle:
            labels.setdefault(edge.from_, edge.from_label or "")
            labels.setdefault(edge.to, edge.to_label or "")
            labels[edge.from_] = labels[edge.from_] or (edge.from_label or "")
            labels[edge.to] = labels[edge.to] or (edge.to_label or "")
            edges.setdefault((edge.from_, edge.to), edge)
    for lock_id in sorted(labels, key=_natural):
        lock = locks.get(lock_id)
        title = labels[lock_id] or (lock.title if lock is not None else lock_id)
        lines = [title, f"{lock.kind} {lock_id}" if lock is not None else lock_id]
        tooltip = f"{lock_id} {title!r}"
        if lock is not None and lock.site is not None:
            lines.append(f"created {_where(lock.site)}")
            tooltip += f"\ncreated at {lock.site.file}:{lock.site.line} in {lock.site.function}"
        graph.node(_lid(lock_id), label=_text("\n".join(lines)), shape="ellipse", style="filled",
                   fillcolor=_LOCK_FILL, color=_CYCLE, penwidth="2.5", tooltip=_text(tooltip))
    for (source, target), edge in sorted(edges.items(), key=lambda e: (_natural(e[0][0]), _natural(e[0][1]))):
        lines = [f'taken by "{edge.thread}"']
        if edge.test:
            lines.append(f"in {edge.test}")
        frames = user_frames(edge.stack)
        if frames:
            lines.append(_where(frames[-1]))
        tooltip = f"{source} -> {target} first taken by thread {edge.thread!r}"
        if edge.test:
            tooltip += f" in {edge.test}"
        tooltip += "\n" + _stack_text(edge.stack)
        graph.edge(_lid(source), _lid(target), label=_text("\n".join(lines)), tooltip=_text(tooltip),
                   color=_CYCLE, fontcolor=_CYCLE, penwidth="2.5")
    notes = []
    if report.rule:
        notes.append(f"declared order broken: {report.rule}")
    if report.single_thread:
        notes.append("one thread took every order: not deadlocked yet")
    return notes


# -- helpers ------------------------------------------------------------------------------------


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


def _text(value: str) -> str:
    """A DOT string: backslashes kept literal, newlines as DOT line breaks, never HTML."""
    import graphviz

    escaped = value.replace("\\", "\\\\").replace("\n", "\\n")
    if escaped.endswith("\\"):
        escaped += " "  # a final backslash would escape the closing quote
    return graphviz.nohtml(escaped)
