"""The human-readable report: what is stuck, on what, held by whom, and every involved stack."""

from __future__ import annotations

import dataclasses
import datetime
import os
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from lockwatch._model import (
    SELF_WAITS,
    AwaitedInfo,
    CycleStep,
    Frame,
    OrderEdge,
    Report,
    ThreadInfo,
    deadlock_shape,
    user_frames,
    waiters_phrase,
)

# How the innermost (blocking) frame of a stack is marked, and the indent of the others.
BLOCKING_MARK = ">> "
_NO_MARK = "   "


def format_report(report: Report) -> str:
    """The text report for any kind of report; deterministic, never fails on a hand-edited dump.

    Every text that came from the program or the dump (names, labels, code lines) is
    printed with control characters escaped (see :func:`printable`).
    """
    report = _printable_report(report)
    names = _Names(report)
    lines: list[str] = [_header(report, names)]
    if report.summary:
        lines.append(report.summary)
    lines.append(_origin(report))
    lines.extend(f"Note: {note}" for note in report.notes)
    if report.all_asleep:
        lines.append(f"Note: {ALL_ASLEEP}")

    if report.kind == "lock-order" or (report.order_cycles and not report.cycles):
        lines.extend(_order_section(report, names))

    if report.cycles:
        lines.append("")
        lines.append("Cycle:" if len(report.cycles) == 1 else "Cycles:")
        for cycle in report.cycles:
            lines.append("  " + _cycle_line(cycle, names))
    if report.chains:
        lines.append("")
        lines.append("Waiting for an owner that no longer exists:")
        for chain in report.chains:
            lines.append("  " + _chain_line(chain, names))

    focus, bystanders, others = _partition(report, names)
    if report.kind == "snapshot":
        # A snapshot is asked for by a person looking at a hung process: every stack counts.
        focus, others = focus + others, []
    for thread in focus:
        lines.append("")
        lines.extend(_thread_block(thread, report, names))
    if bystanders:
        lines.append("")
        lines.append("Blocked behind it (bystanders):")
        for thread in bystanders:
            lines.append("")
            lines.extend("  " + line for line in _thread_block(thread, report, names))
    if others:
        lines.append("")
        lines.append("Other threads:")
        for thread in others:
            lines.append("  " + _brief_thread(thread, names))
    return "\n".join(lines).rstrip() + "\n"


class _Names:
    """Names threads, tasks, locks and awaited things by id, saying so when a reference is missing from the dump."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.threads = {t.id: t for t in report.threads}
        self.locks = {lock.id: lock for lock in report.locks}
        self.awaited = {entry.id: entry for entry in report.awaited}
        # Who waits for each awaited entry (its own list, then threads naming it), and what each
        # node owns: built once, so that a dump of thousands of threads stays linear.
        self.waiters: dict[str, dict[int, None]] = {}
        self.owned: dict[int, list[AwaitedInfo]] = {}
        for entry in report.awaited:
            self.waiters.setdefault(entry.id, {}).update(dict.fromkeys(entry.waiters))
            for owner in dict.fromkeys(entry.owners):
                self.owned.setdefault(owner, []).append(entry)
        for thread in report.threads:
            if thread.waits_for is not None:
                self.waiters.setdefault(thread.waits_for, {})[thread.id] = None
        # In a deadlock, a thread's block names the waits on it that are part of the deadlock;
        # a bystander's join or result() is told on the bystander's own block.
        self.stuck_waits: set[tuple[int, str]] | None = None
        if report.cycles or report.chains:
            self.stuck_waits = {(step.thread, step.target) for steps in (*report.cycles, *report.chains)
                                for step in steps if step.waits_for is not None}

    def thread(self, ident: int, *, word: bool = True) -> str:
        info = self.threads.get(ident)
        if info is None:
            return f"thread {ident} (not in this dump)" if word else f"{ident} (not in this dump)"
        noun = "task" if info.is_task else "thread"
        return f'{noun} "{info.name}"' if word else f'"{info.name}"'

    def lock(self, lock_id: str, *, word: bool = True) -> str:
        info = self.locks.get(lock_id)
        title = f'"{info.title}"' if info is not None else f"{lock_id} (not in this dump)"
        return f"lock {title}" if word else title

    def target(self, awaited_id: str) -> str:
        """An awaited entry as a wait's object: ``thread "worker" (join)``, ``future of f() (pending)``."""
        info = self.awaited.get(awaited_id)
        if info is None:
            return f"{awaited_id} (not in this dump)"
        title = info.title
        # Say what kind of wait it is, unless the label already does ('thread "w" to end (join)').
        if info.kind == "thread" and "join" not in title:
            return f"{title} (join)"
        if info.kind == "task" and "await" not in title:
            return f"{title} (await)"
        if info.state == "pending" and "pending" not in title:
            return f"{title} (pending)"
        return title

    def step_target(self, step: CycleStep) -> str:
        return self.lock(step.lock) if step.lock is not None else self.target(step.target)

    def link(self, step: CycleStep, owner: str) -> str:
        """How a step's target leads to ``owner`` (the next waiter): `` held by thread "b"``, `` run by ...``."""
        if step.lock is not None:
            return f" held by {owner}"
        info = self.awaited.get(step.target)
        if info is None:
            return f" owned by {owner}"
        if owner in info.title:
            return ""  # the label names it: a join waits for that very thread, 'future run by thread "w"'
        if info.kind in ("thread", "task"):
            return f" (which needs {owner})"  # e.g. a gather() of several tasks
        if info.any_of and len(info.owners) > 1:
            if info.is_work:
                return f" to be run by any of {len(info.owners)} busy workers, among them {owner}"
            return f" held by {owner} and {_plural(len(info.owners) - 1, 'other')}"  # a Semaphore's holders
        if info.is_work:
            return f" to be run by {owner}" if info.any_of or info.state == "pending" else f" run by {owner}"
        return f" held by {owner}"

    def owners(self, info: AwaitedInfo) -> str:
        return ", ".join(self.thread(owner) for owner in info.owners)

    def waiters_of(self, awaited_id: str) -> list[int]:
        waiters = list(self.waiters.get(awaited_id, ()))
        if self.stuck_waits is None:
            return waiters
        return [w for w in waiters if (w, awaited_id) in self.stuck_waits]

    def order_lock(self, lock_id: str, label: str | None) -> str:
        info = self.locks.get(lock_id)
        if label:
            return f'"{label}"'
        if info is not None:
            return f'"{info.title}"'
        return f'"{lock_id}"'

    def owner_of(self, lock_id: str) -> int | None:
        info = self.locks.get(lock_id)
        return None if info is None else info.owner

    def step_owners(self, step: CycleStep) -> list[int]:
        """Who owns what a step waits for: the lock's owner, or the awaited entry's owners."""
        if step.lock is not None:
            owner = self.owner_of(step.lock)
            return [] if owner is None else [owner]
        info = self.awaited.get(step.target)
        return [] if info is None else list(info.owners)


#: The note of a report whose every live thread was asleep.
ALL_ASLEEP = (
    "every live thread was blocked in an untimed wait on two consecutive looks: "
    "nothing left running can wake them (all threads are asleep)"
)


def _header(report: Report, names: _Names) -> str:
    if report.kind == "deadlock":
        shape, idents = deadlock_shape(report)
        if shape in SELF_WAITS:
            return f"DEADLOCK: {waiters_phrase(report, idents, one=True)} is waiting for {SELF_WAITS[shape]}"
        if shape == "orphan":
            verb = "waits" if len(idents) == 1 else "wait"
            return f"DEADLOCK: {waiters_phrase(report, idents)} {verb} for an owner that no longer exists"
        if shape != "cycles":
            return "DEADLOCK: every thread is asleep" if shape == "asleep" else "DEADLOCK"
        cycles = "" if len(report.cycles) <= 1 else f" in {len(report.cycles)} cycles"
        return f"DEADLOCK: {waiters_phrase(report, idents)}{cycles} are waiting for each other"
    if report.kind == "lock-order":
        if report.rule and not any(is_order_cycle(cycle) for cycle in report.order_cycles):
            return "LOCK ORDER RULE BROKEN: a lock was taken against the declared order"
        return "POTENTIAL DEADLOCK (lock order): locks are taken in orders that can deadlock"
    if report.kind == "hang":
        waiting = hung_threads(report)
        longest = max((t.waiting_seconds or 0.0 for t in waiting), default=0.0)
        if not waiting:
            return "HANG: every thread is asleep" if report.all_asleep else "HANG"
        if report.all_asleep:
            blocked = _plural(len(waiting), "thread")
            return f"HANG: every thread is asleep ({blocked} blocked, longest {format_seconds(longest)})"
        threads = "1 thread has" if len(waiting) == 1 else f"{len(waiting)} threads have"
        return f"HANG: {threads} been blocked (longest {format_seconds(longest)})"
    held = sum(1 for lock in report.locks if lock.owner is not None)
    tasks = sum(1 for t in report.threads if t.is_task)
    nodes = _plural(len(report.threads) - tasks, "thread") + (f" and {_plural(tasks, 'task')}" if tasks else "")
    text = (
        f"SNAPSHOT: {nodes}, "
        f"{_plural(held, 'lock')} held, {_plural(sum(1 for t in report.threads if t.is_blocked), 'thread')} waiting"
    )
    if report.cycles:
        deadlocked = len({step.thread for cycle in report.cycles for step in cycle})
        text += f"; DEADLOCKED: {_plural(deadlocked, 'thread')} in {_plural(len(report.cycles), 'cycle')}"
    if report.chains:
        chained_count = len({step.thread for chain in report.chains for step in chain})
        text += f"; STUCK: {_plural(chained_count, 'thread')} waiting for an owner that no longer exists"
    return text




def hung_threads(report: Report) -> list[ThreadInfo]:
    """The threads a hang report is about: those marked hung, else every blocked thread.

    Other threads may be blocked too, for less than the hang timeout: they are not the hang.
    """
    marked = [t for t in report.threads if t.role not in (None, "bystander", "cycle")]
    return marked or [t for t in report.threads if t.is_blocked]


def _origin(report: Report) -> str:
    argv = " ".join(report.argv) if report.argv else "?"
    return f"(process {report.pid}, Python {report.python}, {report.created}; argv: {argv})"


def _cycle_line(cycle: Iterable[CycleStep], names: _Names) -> str:
    steps = list(cycle)
    if not steps:
        return "(empty cycle)"
    first = steps[0]
    if len(steps) == 1:
        if first.lock is not None:
            return f"{names.thread(first.thread)} waits for {names.lock(first.lock)}, which it holds itself"
        info = names.awaited.get(first.target)
        verb = "run" if info is not None and info.is_work else "complete"
        return f"{names.thread(first.thread)} waits for {names.target(first.target)}, which only it can {verb}"
    parts = []
    for index, step in enumerate(steps):
        holder = steps[(index + 1) % len(steps)].thread
        last = index == len(steps) - 1
        parts.append(_step_text(step, names, names.thread(holder, word=not last), first=index == 0))
    return ", ".join(parts)


def _step_text(step: CycleStep, names: _Names, owner: str, first: bool) -> str:
    subject = f"{names.thread(step.thread)} waits" if first else "which waits"
    return f"{subject} for {names.step_target(step)}{names.link(step, owner)}"


def _chain_line(chain: Iterable[CycleStep], names: _Names) -> str:
    """A wait that can never end: each step waits for what the next step's waiter owns; the
    last step's owner is gone (``thread "w" (ended), which took it at app.py:12 in work``)."""
    steps = list(chain)
    if not steps:
        return "(empty chain)"
    parts = []
    for index, step in enumerate(steps[:-1]):
        parts.append(_step_text(step, names, names.thread(steps[index + 1].thread), first=index == 0))
    last = steps[-1]
    owners = names.step_owners(last)
    owner = ", ".join(_gone(ident, last, names) for ident in owners) if owners else "nobody this dump names"
    parts.append(_step_text(last, names, owner, first=len(steps) == 1))
    return ", ".join(parts)


def _gone(ident: int, step: CycleStep, names: _Names) -> str:
    """The dead owner at the end of a chain, and where it took the lock, when known."""
    text = names.thread(ident)
    info = names.threads.get(ident)
    if info is None:
        return text
    if not info.alive:
        text += " (ended)"
    taken = info.acquired_at.get(step.target)
    if taken is not None:
        text += f", which took it at {_where(taken)}"
    return text


def _partition(report: Report, names: _Names) -> tuple[list[ThreadInfo], list[ThreadInfo], list[ThreadInfo]]:
    """Threads to show in full (the cycle, or whoever hangs), bystanders, and the rest."""
    by_id = {t.id: t for t in report.threads}
    focus_ids: dict[int, None] = {}  # an ordered set: dumps may list thousands of threads
    for cycle in report.cycles:
        for step in cycle:
            if step.thread in by_id:
                focus_ids.setdefault(step.thread)
    for chain in report.chains:
        for step in chain:
            if step.thread in by_id:
                focus_ids.setdefault(step.thread)
        # The owner that is gone: its block says which locks it took, and where.
        for gone in names.step_owners(chain[-1]) if chain else ():
            if gone in by_id:
                focus_ids.setdefault(gone)
    for thread in report.threads:
        if thread.role not in (None, "bystander"):
            focus_ids.setdefault(thread.id)
    if report.kind == "hang" and not focus_ids:
        focus_ids = dict.fromkeys(t.id for t in report.threads if t.is_blocked)
    if report.kind == "hang":
        # Whoever holds what a hung thread waits for is why it hangs: its stack matters too.
        owners = {lock.id: lock.owner for lock in report.locks}
        for ident in list(focus_ids):
            owner = owners.get(by_id[ident].waiting_for or "")
            if owner is not None and owner in by_id:
                focus_ids.setdefault(owner)
            entry = names.awaited.get(by_id[ident].waits_for or "")
            for next_owner in entry.owners if entry is not None else ():
                if next_owner in by_id:
                    focus_ids.setdefault(next_owner)
    focus = [by_id[i] for i in focus_ids]
    bystanders = [t for t in report.threads if t.role == "bystander" and t.id not in focus_ids]
    others = [t for t in report.threads if t.id not in focus_ids and t.role != "bystander"]
    if report.kind == "snapshot":
        # Threads that hold or wait come first: that is where a hang lives.
        others.sort(key=lambda t: not (t.holding or t.is_blocked))
    return focus, bystanders, others


def _thread_block(thread: ThreadInfo, report: Report, names: _Names) -> list[str]:
    flags = [f"id {thread.id}"]
    if thread.is_task and thread.loop_thread is not None:
        flags.append(f"on the loop of {names.thread(thread.loop_thread)}")
    if thread.daemon:
        flags.append("daemon")
    if not thread.alive:
        flags.append("no longer running")
    if thread.role == "cycle":
        flags.append("in the deadlock")
    elif thread.role and thread.role != "bystander":
        flags.append(thread.role)
    lines = [f'{"Task" if thread.is_task else "Thread"} "{thread.name}" ({", ".join(flags)}):']
    for lock_id in thread.holding:
        lines.append("  holds " + _held_lock(thread, lock_id, names))
    owned = _owned(thread, names)
    if not thread.holding and not any(line.startswith("holds ") for line in owned):
        attached = report.source is not None and report.source.startswith("attach")
        lines.append("  holds no lock lockwatch could find" if attached else "  holds no lockwatch lock")
    lines.extend("  " + line for line in owned)
    lines.extend("  " + line for line in _waiting(thread, names))
    if report.victim is not None and report.victim == thread.id:
        lines.append("  chosen as the victim: its blocked acquire() raises lockwatch.DeadlockError")
    if thread.stack:
        lines.append("  Coroutine stack (most recent call last):" if thread.is_task else "  Stack (most recent call last):")
        lines.extend("  " + line for line in format_stack(thread.stack))
    elif thread.is_task:
        lines.append("  (no coroutine stack: the task has not started or has finished)")
    elif thread.gone:
        lines.append(f"  (no stack: the thread {printable(thread.gone)})")
    else:
        lines.append("  (no stack: the thread is not running Python code any more)")
    return lines


def _owned(thread: ThreadInfo, names: _Names) -> list[str]:
    """What others wait for that this thread or task owns: who joins it, the future it runs, an asyncio lock."""
    lines = []
    for info in names.owned.get(thread.id, ()):
        waiters = names.waiters_of(info.id)
        by = ", ".join(names.thread(w) for w in waiters)
        if info.kind == "thread":
            if waiters:
                lines.append(f"joined by {by}")
            continue
        if info.kind == "task":
            if waiters:
                lines.append(f"awaited by {by}")
            continue
        if info.any_of and info.is_work:
            lines.append(f"may run {info.title}" + (f", waited for by {by}" if waiters else ""))
        elif info.is_work:
            # A future's label may name this very thread ('future run by thread "w"'): say it plainly.
            lines.append(f"runs a future {by} waits for" if waiters else f"runs {info.title}")
        else:
            lines.append(f"holds {info.title}" + (f", waited for by {by}" if waiters else ""))
    return lines


def _held_lock(thread: ThreadInfo, lock_id: str, names: _Names) -> str:
    text = names.lock(lock_id)
    info = names.locks.get(lock_id)
    if info is not None and info.kind == "RLock" and info.owner == thread.id and info.count > 1:
        text += f" ({info.count} times)"
    how = thread.inferred.get(lock_id)
    if how is not None:
        return f"{text} (inferred: {how})"
    taken = thread.acquired_at.get(lock_id)
    if taken is not None:
        return f"{text}, taken at {_where(taken)}"
    if info is not None and info.site is not None:
        return f"{text}, created at {_where(info.site)}"
    return text


def _waiting(thread: ThreadInfo, names: _Names) -> list[str]:
    if thread.waiting_for is not None:
        text = f"waits for {names.lock(thread.waiting_for)}"
        if thread.waiting_seconds is not None:
            text += f" for {format_seconds(thread.waiting_seconds)}"
        owner = names.owner_of(thread.waiting_for)
        info = names.locks.get(thread.waiting_for)
        if owner is not None:
            text += f", held by {names.thread(owner)}" + (" (inferred)" if info is not None and info.inferred else "")
            holder = names.threads.get(owner)
            if holder is not None and not holder.alive:
                text += " (ended)"
        lines = [text]
        if thread.waiting_inferred:
            lines.append(f"  (inferred: {thread.waiting_inferred})")
        if info is not None and info.site is not None:
            lines.append(f"  (that lock was created at {_where(info.site)})")
        lines.extend(_waiting_beyond(thread, names, also=True))
        return lines
    if thread.waits_for is not None:
        return _waiting_beyond(thread, names)
    if thread.waiting_in is not None:
        text = f"waits in {thread.waiting_in}"
        if thread.waiting_seconds is not None:
            text += f" for {format_seconds(thread.waiting_seconds)}"
        return [text + " (for a notification, not a lock)"]
    return []


def _waiting_beyond(thread: ThreadInfo, names: _Names, also: bool = False) -> list[str]:
    """A wait that is not on a lock: ``waits for thread "worker" (join) for 2.0 s``, and who must run."""
    if thread.waits_for is None:
        return []
    text = f"{'also ' if also else ''}waits for {names.target(thread.waits_for)}"
    if thread.waiting_seconds is not None and not also:
        text += f" for {format_seconds(thread.waiting_seconds)}"
    info = names.awaited.get(thread.waits_for)
    if info is None or not info.owners:
        return [text]
    step = CycleStep(thread.id, waits_for=thread.waits_for)
    link = names.link(step, names.owners(info))
    if info.any_of and len(info.owners) > 1 and link:
        link = f" to be run by any of {names.owners(info)}" if info.is_work else f" held by {names.owners(info)}"
    lines = [text + ("," + link if link else "")]
    if info.site is not None:
        made = {"future": "future was submitted", "pool": "future was submitted", "thread": "thread was started",
                "task": "task was created"}.get(info.kind, f"{info.kind} was created")
        lines.append(f"  (that {made} at {_where(info.site)})")
    return lines


def format_stack(stack: Iterable[Frame]) -> list[str]:
    """A stack like a Python traceback, outermost first, the innermost (blocking) line marked."""
    frames = user_frames(stack)
    lines = []
    for index, frame in enumerate(frames):
        mark = BLOCKING_MARK if index == len(frames) - 1 else _NO_MARK
        lines.append(f'{mark}File "{frame.file}", line {frame.line}, in {frame.function}')
        if frame.code:
            lines.append(f"{_NO_MARK}  {frame.code.strip()}")
    return lines


def _brief_thread(thread: ThreadInfo, names: _Names) -> str:
    text = f'"{thread.name}" (id {thread.id})'
    if thread.is_task:
        text = "task " + text
    if thread.stack:
        text += f" at {_where(_program_line(thread.stack))}"
    if thread.holding:
        text += "; holds " + ", ".join(names.lock(lock_id, word=False) for lock_id in thread.holding)
    waiting = _waiting(thread, names)
    if waiting:
        text += "; " + waiting[0]
    return text


def _program_line(stack: Iterable[Frame]) -> Frame:
    """Where a thread is in the program: its innermost frame outside threading's own code
    (a thread in ``join()`` or ``Event.wait()`` is at the line that called it)."""
    frames = user_frames(stack)
    for frame in reversed(frames):
        if os.path.basename(frame.file.replace("\\", "/").replace("/", os.sep)) != "threading.py":
            return frame
    return frames[-1]


def is_order_cycle(edges: Sequence[OrderEdge]) -> bool:
    """Whether these order edges close a loop (each ``to`` is the next ``from``, the last back to the first).

    A broken declared order is one edge taken against a rule: no loop, and no cycle to draw.
    """
    return bool(edges) and all(edges[i].to == edges[(i + 1) % len(edges)].from_ for i in range(len(edges)))


def rule_text(rule: str) -> str:
    """The broken rule without a leading "declared order:" (the headline already says so)."""
    prefix = "declared order: "
    return rule[len(prefix):] if rule.startswith(prefix) else rule


def _order_section(report: Report, names: _Names) -> list[str]:
    lines: list[str] = []
    if report.rule:
        lines.append("")
        lines.append(f"Declared lock order broken: {rule_text(report.rule)}")
    cycles = [list(cycle) for cycle in report.order_cycles if is_order_cycle(cycle)]
    for number, edges in enumerate(cycles, 1):
        lines.append("")
        chain = " -> ".join(names.order_lock(e.from_, e.from_label) for e in edges)
        chain += " -> " + names.order_lock(edges[0].from_, edges[0].from_label)
        title = "Lock-order cycle" if len(cycles) == 1 else f"Lock-order cycle {number}"
        lines.append(f"{title}: {chain}")
        for edge in edges:
            lines.extend("  " + line for line in _order_edge(edge, names))
    against = [edge for cycle in report.order_cycles if not is_order_cycle(cycle) for edge in cycle]
    if against:
        lines.append("")
        lines.append("Taken against it:" if report.rule else "Lock orders:")
        for edge in against:
            lines.extend("  " + line for line in _order_edge(edge, names))
    if report.single_thread:
        lines.append("")
        lines.append(
            "Note: one thread took every order in this cycle, so it has not deadlocked yet; "
            "two threads running these paths at the same time can."
        )
    return lines


def _order_edge(edge: OrderEdge, names: _Names) -> list[str]:
    head = (
        f"{names.order_lock(edge.from_, edge.from_label)} -> {names.order_lock(edge.to, edge.to_label)}"
        f' first taken by thread "{edge.thread}"'
    )
    if edge.test:
        head += f" (test {edge.test})"
    if edge.gates:
        gates = ", ".join(names.lock(g, word=False) for g in edge.gates)
        head += f" while also holding {gates}"
    lines = [head]
    if edge.stack:
        lines.extend("  " + line for line in format_stack(edge.stack))
    return lines


def _where(frame: Frame) -> str:
    return f"{os.path.basename(frame.file)}:{frame.line} in {frame.function}"


def format_seconds(value: float) -> str:
    """``750 ms`` or ``1.5 s``: how reports say how long something has waited."""
    # 0.9996 s is "1.0 s", not "1000 ms".
    return f"{value:.1f} s" if value >= 0.9995 else f"{value * 1000:.0f} ms"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# --- text from outside, made safe for a terminal ----------------------------------------------

# Unicode categories never printed as they are: controls (ESC starts terminal sequences,
# OSC 52 writes the clipboard), format characters (bidi overrides reorder what is shown),
# line and paragraph separators, lone surrogates (which no terminal encoding can write), and
# unassigned code points (U+FFFE and U+FFFF among them, which XML forbids).
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})


def printable(text: str) -> str:
    """``text`` with control and format characters shown as escapes (``\\x1b``, ``\\u202e``)."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if unicodedata.category(char) in _UNPRINTABLE:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


def _printable_value(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, tuple):
        return tuple(_printable_value(item) for item in value)
    if isinstance(value, dict):
        return {_printable_value(key): _printable_value(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{f.name: _printable_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
        )
    return value


def _printable_report(report: Report) -> Report:
    result: Report = _printable_value(report)
    return result


# --- a directory of dumps ---------------------------------------------------------------------

#: Longest summary shown per dump in a directory listing.
_LISTING_SUMMARY = 110

Listed = Sequence[tuple[str, Report | str]]


def format_listing(directory: str, entries: Listed) -> str:
    """The dumps in a directory, grouped by the process that wrote them, oldest first.

    ``entries`` are (path, report) pairs, or (path, why it is not a dump).
    """
    reports = [(path, report) for path, report in entries if isinstance(report, Report)]
    others = [(path, why) for path, why in entries if isinstance(why, str)]
    groups: dict[tuple[Any, ...], list[tuple[str, Report]]] = {}
    for path, report in sorted(reports, key=lambda item: (_moment(item[1].created), item[0])):
        groups.setdefault((report.pid, report.argv, report.python), []).append((path, report))
    where = printable(directory)
    if not reports:
        lines = [f"{where}: no lockwatch dumps"]
    else:
        processes = "1 process" if len(groups) == 1 else f"{len(groups)} processes"
        lines = [f"{where}: {_plural(len(reports), 'dump')} from {processes}"]
    for (pid, argv, python), members in groups.items():
        command = printable(" ".join(argv)) if argv else "?"
        lines.append("")
        lines.append(f"Process {pid} ({command}; Python {printable(python)}): {_plural(len(members), 'dump')}")
        for path, report in members:
            lines.append(f"  {_local_time(report.created)}  {report.kind:<10}  {printable(os.path.basename(path))}")
            if report.summary:
                summary = printable(" ".join(report.summary.split()))
                if len(summary) > _LISTING_SUMMARY:
                    summary = summary[: _LISTING_SUMMARY - 3].rstrip() + "..."
                lines.append(f"      {summary}")
    if others:
        lines.append("")
        lines.append("Not lockwatch dumps:")
        for path, why in others:
            lines.append(f"  {printable(os.path.basename(path))}: {printable(why)}")
    if reports:
        lines.append("")
        lines.append(f"Show one with: lockwatch show {where.rstrip(os.sep)}{os.sep}FILE.json")
    return "\n".join(lines) + "\n"


def _moment(created: str) -> float:
    try:
        return datetime.datetime.fromisoformat(created).timestamp()
    except (TypeError, ValueError, OverflowError):
        return float("inf")


def _local_time(created: str) -> str:
    """``2026-11-25 16:20:48`` in local time; the dump's own text if it is not a time."""
    try:
        moment = datetime.datetime.fromisoformat(created)
        if moment.tzinfo is not None:
            moment = moment.astimezone()
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError):
        return printable(created)[:19].ljust(19)
