"""Turn the live lock state into an immutable Report: threads, stacks, locks, waits."""

from __future__ import annotations

import concurrent.futures._base
import concurrent.futures.thread
import dataclasses
import datetime
import enum
import gc
import os
import platform
import sys
import threading
import traceback
import types
import weakref
from collections.abc import Iterable
from time import monotonic
from typing import Any

from lockwatch import _state, _waits
from lockwatch._acquired import acquisition_sites
from lockwatch._locks import InstrumentedLock, RLock
from lockwatch._model import AwaitedInfo, Frame, LockInfo, Report, ThreadInfo, is_lockwatch_file, user_frames

# Threads lockwatch runs itself; they are left out of reports.
internal_thread_idents = _state.internal_thread_idents

# Waits that are not on a lock but on a notification (Condition and all that is
# built on it: Event, Semaphore, Barrier, Queue). Found by looking at stacks.
_CONDITION_WAITS = {
    threading.Condition.wait.__code__: "Condition.wait",
    threading.Condition.wait_for.__code__: "Condition.wait_for",
}


_WAIT_FILES = frozenset(
    os.path.normcase(os.path.abspath(path))
    for path in (threading.__file__, concurrent.futures._base.__file__, concurrent.futures.thread.__file__)
)


def frames_of(frame: types.FrameType | None, *, lock_wait: bool = False) -> tuple[Frame, ...]:
    """A stack as Frames, outermost first, with source lines, ending at the user's line.

    lockwatch's own innermost frames (a blocked acquire, this very snapshot)
    say nothing about the program. For a lock wait, threading's frames go too
    (``Condition.__enter__``), so the last frame is the user's ``with cond:``;
    a Condition wait keeps them, since "blocked in Condition.wait" is the point.
    """
    if frame is None:
        return ()
    stack = user_frames(
        Frame(file=entry.filename, line=entry.lineno or 0, function=entry.name, code=entry.line or None)
        for entry in traceback.extract_stack(frame)
    )
    if lock_wait:
        # The blocking line is the user's: threading's frames (and, for a join or a future,
        # lockwatch's wrapper and concurrent.futures' insides) say nothing more.
        end = len(stack)
        while end > 1 and (
            os.path.normcase(os.path.abspath(stack[end - 1].file)) in _WAIT_FILES
            or is_lockwatch_file(stack[end - 1].file)
        ):
            end -= 1
        stack = stack[:end]
    if stack and all(is_lockwatch_file(f.file) for f in stack):
        return ()  # only lockwatch's exit handler runs (the main thread at exit): none of the program is left
    return tuple(stack)


def site_frame(site: tuple[str, int, str] | None) -> Frame | None:
    """A lock's creation site as a Frame."""
    if site is None:
        return None
    return Frame(file=site[0], line=site[1], function=site[2])


def short_site(site: tuple[str, int, str] | None) -> str | None:
    """``app.py:12`` for a creation site."""
    if site is None:
        return None
    return f"{os.path.basename(site[0])}:{site[1]}"


# One label per lock for the life of the process: the most specific one found the first
# time a report needed it, reused by every later report (weak keys: dead locks drop out).
_attribute_labels: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def attribute_labels(locks: Iterable[InstrumentedLock]) -> dict[int, str]:
    """Name locks by what holds them, where something does: ``Account.lock``,
    ``app.settings_lock`` (a module global), ``ResourceManager.locks['db']`` (a
    dict attribute), ``Table.stripes[3]`` (a list attribute), ``app.LOCKS['db']``.

    Keyed by ``id(lock)``. When several things hold a lock (a queue's mutex is
    ``SlowQueue.mutex`` and, inside the stdlib, ``Condition._lock``), the most
    specific name wins: the program's own objects before the stdlib's, public
    attributes before private ones, a module global before an attribute before
    a container entry. A lock keeps the label it got first in every later report.

    Report time only, never the hot path: one ``gc.get_referrers`` pass over the
    heap for the locks, one for the dicts and lists they sit in (and for
    namespace dicts whose object is not known yet), and a last one only for
    containers found in such a dict. Anything odd about an object means no
    label from it, never an error.
    """
    wanted = {id(lock): lock for lock in locks}
    labels: dict[int, str] = {}
    missing: dict[int, Any] = {}
    for key, lock in wanted.items():
        cached = _attribute_labels.get(lock)
        if cached is not None:
            labels[key] = cached
        else:
            missing[key] = lock
    if not missing:
        return labels
    offers: _Offers = {}
    try:
        _label_by_referrers(missing, offers)
    except Exception:  # noqa: BLE001 - labels are a nicety: a report without them is still a report
        pass
    for key, options in offers.items():
        best = min(options)[-1]
        labels[key] = best
        try:
            _attribute_labels[missing[key]] = best
        except TypeError:  # not weakly referenceable (a foreign lock): no memory of it
            pass
    return labels


# A container's entries that are wanted locks: (lock id, "[key]") pairs.
_Entries = list[tuple[int, str]]
# Candidate labels per lock id: (rank..., label); the smallest wins.
_Offers = dict[int, list[tuple[Any, ...]]]

# How a label was found, best first.
_GLOBAL, _ATTRIBUTE, _ENTRY = 0, 1, 2


def _offer(offers: _Offers, lock_id: int, label: str, owner: Any, how: int, attribute: str = "") -> None:
    """Propose ``label`` for a lock; ``owner`` is the module name, class or instance it was found on."""
    offers.setdefault(lock_id, []).append(
        (_is_stdlib(owner), attribute.startswith("_"), how, len(label), label)
    )


def _is_stdlib(owner: Any) -> bool:
    """Whether a label would name the stdlib's insides (``Condition._lock``) rather than the program."""
    if isinstance(owner, str):
        module = owner
    else:
        cls = owner if isinstance(owner, type) else type(owner)
        module = getattr(cls, "__module__", None) or ""
    if not isinstance(module, str):
        return False
    return module.split(".")[0] in _STDLIB


_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | {"threading", "queue", "concurrent", "asyncio", "logging"}


def _label_by_referrers(wanted: dict[int, Any], offers: _Offers) -> None:
    # Namespace dicts whose owning object is not known yet: id -> (dict, [(lock id, attribute)]).
    namespaces: dict[int, tuple[dict[Any, Any], list[tuple[int, str]]]] = {}
    # Dicts and lists holding wanted locks: id -> (container, entries).
    containers: dict[int, tuple[Any, _Entries]] = {}
    for referrer in gc.get_referrers(*wanted.values()):
        try:
            if isinstance(referrer, dict):
                attributes = [(id(v), k) for k, v in referrer.items() if id(v) in wanted and isinstance(k, str)]
                if attributes and _is_module_namespace(referrer):
                    for lock_id, key in attributes:
                        module = referrer["__name__"]
                        _offer(offers, lock_id, f"{module}.{key}", module, _GLOBAL, key)
                    continue
                if attributes and all(key.isidentifier() for _lock_id, key in attributes):
                    namespaces[id(referrer)] = (referrer, attributes)  # maybe an instance __dict__
                entries = [(id(v), _subscript(k)) for k, v in referrer.items() if id(v) in wanted]
                entries = [(lock_id, text) for lock_id, text in entries if text]
                if entries:
                    containers[id(referrer)] = (referrer, entries)
            elif isinstance(referrer, list):  # tuples left out: mostly call arguments (Thread._args)
                entries = [(id(v), f"[{index}]") for index, v in enumerate(referrer) if id(v) in wanted]
                if entries:
                    containers[id(referrer)] = (referrer, entries)
            elif not isinstance(referrer, type):  # an instance keeping its attributes inline
                owner_name = _owner_name(referrer)
                for namespace in _namespaces_of(referrer):
                    for key, value in list(namespace.items()):
                        if id(value) in wanted and isinstance(key, str):
                            _offer(offers, id(value), f"{owner_name}.{key}", referrer, _ATTRIBUTE, key)
        except Exception:  # noqa: BLE001 - an odd object gives no label, never an error
            continue
    if not namespaces and not containers:
        return

    # Second pass: who holds those dicts and containers.
    parents: dict[int, tuple[dict[Any, Any], list[tuple[str, Any]]]] = {}  # plain dicts holding containers
    looked_up = {**{k: v[0] for k, v in namespaces.items()}, **{k: v[0] for k, v in containers.items()}}
    for owner in gc.get_referrers(*looked_up.values()):
        try:
            if isinstance(owner, dict):
                held = [(k, v) for k, v in owner.items() if id(v) in containers and isinstance(k, str)]
                if not held:
                    continue
                if _is_module_namespace(owner):
                    module = owner["__name__"]
                    for key, container in held:
                        _offer_entries(offers, f"{module}.{key}", containers[id(container)][1], module, key)
                elif all(key.isidentifier() for key, _container in held):
                    parents[id(owner)] = (owner, held)  # an instance __dict__ holding containers?
                continue
            if isinstance(owner, (list, tuple)):
                continue  # nested containers (and the pass's own bookkeeping): not named
            owner_name = _owner_name(owner)
            for namespace in _namespaces_of(owner):
                found = namespaces.get(id(namespace))
                if found is not None and found[0] is namespace:  # the object whose __dict__ holds wanted locks
                    for lock_id, key in found[1]:
                        _offer(offers, lock_id, f"{owner_name}.{key}", owner, _ATTRIBUTE, key)
                for key, value in list(namespace.items()):
                    if id(value) in containers and isinstance(key, str):
                        _offer_entries(offers, f"{owner_name}.{key}", containers[id(value)][1], owner, key)
        except Exception:  # noqa: BLE001 - an odd object gives no label, never an error
            continue

    # Last pass, only for containers kept in a materialized instance __dict__.
    parents = {key: value for key, value in parents.items() if key not in namespaces}
    if parents:
        for owner in gc.get_referrers(*(parent for parent, _held in parents.values())):
            try:
                if isinstance(owner, (dict, list, tuple)):
                    continue
                for namespace in _namespaces_of(owner):
                    parent = parents.get(id(namespace))
                    if parent is None or parent[0] is not namespace:
                        continue
                    owner_name = _owner_name(owner)
                    for key, container in parent[1]:
                        _offer_entries(offers, f"{owner_name}.{key}", containers[id(container)][1], owner, key)
            except Exception:  # noqa: BLE001 - an odd object gives no label, never an error
                continue


def _offer_entries(offers: _Offers, prefix: str, entries: _Entries, owner: Any, attribute: str) -> None:
    for lock_id, subscript in entries:
        _offer(offers, lock_id, prefix + subscript, owner, _ENTRY, attribute)


def _is_module_namespace(namespace: dict[Any, Any]) -> bool:
    return bool(namespace.get("__name__")) and "__builtins__" in namespace


def _namespaces_of(obj: Any) -> list[dict[Any, Any]]:
    """The attribute dict of an instance, or of a class (behind its mappingproxy); else none."""
    if isinstance(obj, type):
        return [d for d in gc.get_referents(obj) if isinstance(d, dict)]
    try:
        # Not getattr(): a class's own __getattribute__/__getattr__ is user code.
        namespace = object.__getattribute__(obj, "__dict__")
    except Exception:  # noqa: BLE001 - no readable __dict__: no label from this object
        return []
    return [namespace] if isinstance(namespace, dict) else []


def _owner_name(obj: Any) -> str:
    """A class by its name; an instance by its class's name."""
    return obj.__name__ if isinstance(obj, type) else type(obj).__name__


def _subscript(key: Any) -> str:
    """``['db']`` for a dict key of a plain type (no user __repr__ runs); "" for other keys."""
    if isinstance(key, enum.Enum):
        text = f"{type(key).__name__}.{key.name}"
    elif type(key) in _PLAIN_KEYS or (type(key) is tuple and all(type(part) in _PLAIN_KEYS for part in key)):
        text = repr(key)
    else:
        return ""
    return f"[{text}]" if len(text) <= 40 else f"[{text[:37]}...]"


_PLAIN_KEYS = (str, int, float, bytes, bool, type(None))


def lock_kind(lock: InstrumentedLock) -> str:
    return "RLock" if isinstance(lock, RLock) else "Lock"


def lock_label(lock: InstrumentedLock, attribute: str | None = None) -> str:
    """How reports call a lock: its name, else the attribute holding it, else its creation site."""
    if lock.name:
        return lock.name
    if attribute:
        return attribute
    try:
        remembered = _attribute_labels.get(lock)  # found by an earlier report: one label per lock
    except TypeError:
        remembered = None
    if remembered:
        return remembered
    where = short_site(lock.site)
    return f"{lock_kind(lock)} from {where}" if where else f"{lock_kind(lock)} {lock.id}"


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def take(kind: str = "snapshot", *, labels: bool = True, summary: str = "") -> Report:
    """A Report of every live thread (with its stack) and every lock held or waited for."""
    now = monotonic()
    frames = sys._current_frames()
    python_threads = dict(threading._active)  # type: ignore[attr-defined]
    # The newest state of each ident: a new thread may reuse the ident of one that ended.
    states = {state.ident: state for state in sorted(_state.states(), key=lambda state: state.token)}

    def report_id(state: _state.ThreadState) -> int:
        """The thread's id in the report: its ident, or -token for an ended thread whose ident was reused."""
        current = states.get(state.ident)
        return state.ident if current is None or current is state else -state.token

    found, source_notes = _other_waits()
    # Non-lock waits by waiter: the innermost lock wait, when there is one, wins.
    # Condition waits (Event, Queue...) have no known owner: they only say for how long.
    condition_waits = {edge.waiter: edge for edge in found.edges if edge.target.kind == "condition"}
    # Waits with a timeout end by themselves: only those that can last forever are shown as such.
    other_waits = {
        edge.waiter: edge for edge in found.edges
        if not edge.timed and (edge.target.kind != "condition" or edge.target.owners)
    }

    # Locks worth reporting: held or waited for by someone.
    involved: dict[int, InstrumentedLock] = {}
    waits: dict[int, tuple[InstrumentedLock, float | None]] = {}
    holdings: dict[int, list[InstrumentedLock]] = {}
    for ident, state in states.items():
        held = _state.reachable_held(state)  # a lock dropped while held can never matter
        waiting_for = state.waiting_for
        since = state.wait_since
        holdings[ident] = held
        for lock in held:
            involved[id(lock)] = lock
        if waiting_for is not None:
            involved[id(waiting_for)] = waiting_for
            waits[ident] = (waiting_for, None if since is None else max(0.0, now - since))
    # Owners that are not (or no longer) known threads, e.g. a Lock left held by a thread that ended.
    for lock in list(involved.values()):
        owner = lock._owner
        if owner is None:
            continue
        owner_id = report_id(owner)
        if owner_id not in holdings:
            holdings[owner_id] = [lock]
            states.setdefault(owner_id, owner)

    attributes = attribute_labels(involved.values()) if labels else {}

    thread_infos = []
    # A thread that ended matters only while it still holds a lock: the states of
    # finished threads (hundreds, in a long test suite) are not the program's present.
    idents = sorted(set(frames) | {ident for ident, held in holdings.items() if held})
    for ident in idents:
        if ident in internal_thread_idents:
            continue
        thread = python_threads.get(ident)
        frame = frames.get(ident)
        waiting = waits.get(ident)
        waiting_in = None
        if waiting is None and frame is not None:
            waiting_in = _condition_wait(frame)
        known = states.get(ident)
        alive = frame is not None and (known is None or known.alive)
        other = other_waits.get(ident) if waiting is None else None
        if other is not None:
            waiting_in = None
        notified = condition_waits.get(ident) if waiting is None and other is None else None
        if alive and thread is not None:
            name = thread.name
        else:
            # Gone: the name recorded when its state was made (its Thread object is gone too).
            recorded = known.name if known is not None else None
            name = recorded or (thread.name if thread is not None else None) or f"thread-{ident}"
        thread_infos.append(
            ThreadInfo(
                id=ident,
                name=name,
                daemon=bool(thread.daemon) if alive and thread is not None else False,
                holding=tuple(lock.id for lock in holdings.get(ident, ())),
                waiting_for=None if waiting is None else waiting[0].id,
                waiting_seconds=(
                    round(waiting[1] or 0.0, 6) if waiting is not None
                    else _seconds(other.since, now) if other is not None
                    else _seconds(notified.since, now) if notified is not None else None
                ),
                waits_for=None if other is None else other.target.id,
                gone=None if alive or known is None else known.gone,
                stack=frames_of(frame, lock_wait=waiting is not None or other is not None),
                alive=alive,
                waiting_in=waiting_in,
                acquired_at=(
                    acquisition_sites(frame, holdings.get(ident, ()), waiting_for=None if waiting is None else waiting[0])
                    if labels else {}
                ),
            )
        )

    waiters: dict[int, list[int]] = {}
    for ident, (lock, _since) in waits.items():
        waiters.setdefault(id(lock), []).append(ident)
    lock_infos = []
    for lock in sorted(involved.values(), key=lambda lock: lock._serial):
        owner = lock._owner
        if isinstance(lock, RLock):
            count = lock._count if owner is not None else 0
        else:
            count = 1 if lock._real.locked() else 0
        lock_infos.append(
            LockInfo(
                id=lock.id,
                kind=lock_kind(lock),
                name=lock.name,
                site=site_frame(lock.site),
                owner=None if owner is None else report_id(owner),
                count=count,
                waiters=tuple(sorted(waiters.get(id(lock), ()))),
                label=lock_label(lock, attributes.get(id(lock))),
                rank=lock.rank,
            )
        )

    # Two locks may read alike ("Account.lock" of two accounts): tell them apart by id.
    seen: dict[str, int] = {}
    for info in lock_infos:
        seen[info.title] = seen.get(info.title, 0) + 1
    lock_infos = [
        dataclasses.replace(info, label=f"{info.title} ({info.id})") if seen[info.title] > 1 else info
        for info in lock_infos
    ]

    shown = {info.id for info in thread_infos}
    for task in found.tasks:
        edge = other_waits.get(task.id)
        thread_infos.append(ThreadInfo(
            id=task.id,
            name=task.name,
            daemon=False,
            kind="task",
            loop_thread=task.loop_thread,
            waits_for=None if edge is None else edge.target.id,
            waiting_seconds=None if edge is None else _seconds(edge.since, now),
            stack=tuple(Frame(file=f, line=line, function=fn, code=code) for f, line, fn, code in task.stack),
        ))
        shown.add(task.id)
    awaited: dict[str, AwaitedInfo] = {}
    for waiter, edge in sorted(other_waits.items()):
        if waiter not in shown:
            continue
        target = edge.target
        entry = awaited.get(target.id)
        if entry is None:
            awaited[target.id] = AwaitedInfo(
                id=target.id, kind=target.kind, label=target.label, owners=target.owners, any_of=target.any_of,
                site=site_frame(target.site), state=target.state, waiters=(waiter,),
            )
        else:
            awaited[target.id] = dataclasses.replace(entry, waiters=entry.waiters + (waiter,))

    report = Report(
        kind=kind,
        created=now_iso(),
        pid=os.getpid(),
        argv=tuple(str(arg) for arg in sys.argv),
        python=platform.python_version(),
        threads=tuple(thread_infos),
        locks=tuple(lock_infos),
        summary=summary,
        awaited=tuple(awaited.values()),
        notes=source_notes,
    )
    if kind == "snapshot":
        # Someone looking at a hung process must be told when it is deadlocked.
        untimed = {ident for ident, state in states.items() if state.waiting_for is not None and not state.wait_timed}
        report = with_cycles(report, untimed)
    return report


def _seconds(since: float | None, now: float) -> float | None:
    return None if since is None else round(max(0.0, now - since), 6)


def _other_waits() -> tuple[_waits.Found, tuple[str, ...]]:
    """What the wait readers know (joins, futures, tasks, imports); a failing reader becomes a note."""
    try:
        return _waits.collect(), ()
    except _waits.SourceError as error:
        return error.found, (f"a wait reader failed, its waits are missing here: {error.cause!r}",)


def with_cycles(report: Report, untimed: set[int]) -> Report:
    """The report with the deadlock cycles its untimed waits form (of every kind), roles and a summary sentence."""
    from lockwatch import _detect

    waits = {ident: wait for ident, wait in _detect.waits_in_report(report).items() if ident in untimed}
    cycles = _detect.find_cycles(waits)
    every, dead, loops = _detect.any_waits_in_report(report)
    every = {node: wait for node, wait in every.items() if not wait.is_lock or node in untimed}
    stuck = _detect.find_stuck(every, dead, loops)
    cycles += [cycle for cycle in stuck.cycles if any(step.lock is None for step in cycle)]
    chains = stuck.chains
    if not cycles and not chains:
        return report
    in_cycle = {step.thread for cycle in cycles + chains for step in cycle}
    behind = set(_detect.bystanders(waits, cycles)) | (stuck.stuck - in_cycle)
    threads = tuple(
        dataclasses.replace(
            info, role="cycle" if info.id in in_cycle else "bystander" if info.id in behind else info.role
        )
        for info in report.threads
    )
    described = "; ".join(
        [_detect.describe_cycle(cycle, report) for cycle in cycles]
        + [_detect.describe_chain(chain, report) for chain in chains]
    )
    sentence = f"The process is deadlocked: {described}."
    summary = f"{report.summary.rstrip('.')}. {sentence}" if report.summary else sentence
    return report.replace(threads=threads, cycles=tuple(cycles), chains=tuple(chains), summary=summary)


def _condition_wait(frame: types.FrameType | None) -> str | None:
    depth = 0
    while frame is not None and depth < 8:
        name = _CONDITION_WAITS.get(frame.f_code)
        if name is not None:
            return name
        frame = frame.f_back
        depth += 1
    return None
