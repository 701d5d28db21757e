"""Turn the live lock state into an immutable Report: threads, stacks, locks, waits."""

from __future__ import annotations

import dataclasses
import datetime
import gc
import os
import platform
import sys
import threading
import traceback
import types
from time import monotonic
from typing import Any, Iterable

from lockwatch import _state
from lockwatch._locks import InstrumentedLock, RLock
from lockwatch._model import Frame, LockInfo, Report, ThreadInfo

# Threads lockwatch runs itself; they are left out of reports.
internal_thread_idents: set[int] = set()

# Waits that are not on a lock but on a notification (Condition and all that is
# built on it: Event, Semaphore, Barrier, Queue). Found by looking at stacks.
_CONDITION_WAITS = {
    threading.Condition.wait.__code__: "Condition.wait",
    threading.Condition.wait_for.__code__: "Condition.wait_for",
}


def frames_of(frame: types.FrameType | None) -> tuple[Frame, ...]:
    """A stack as Frames, outermost first, with source lines where available."""
    if frame is None:
        return ()
    summary = traceback.extract_stack(frame)
    return tuple(
        Frame(file=entry.filename, line=entry.lineno or 0, function=entry.name, code=entry.line or None)
        for entry in summary
    )


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


def attribute_labels(locks: Iterable[InstrumentedLock]) -> dict[int, str]:
    """Name locks by the attribute that holds them (``Account.lock``), where one does.

    One ``gc.get_referrers`` pass over the heap: fine at report time, never on
    the hot path. A referrer is a namespace dict (module globals, or an
    instance ``__dict__`` that exists as an object) or, on Pythons that keep
    instance attributes inline, the instance itself.
    """
    wanted = {id(lock): lock for lock in locks}
    if not wanted:
        return {}
    labels: dict[int, str] = {}
    try:
        referrers = gc.get_referrers(*wanted.values())
    except Exception:  # pragma: no cover - defensive
        return {}
    for referrer in referrers:
        if isinstance(referrer, dict):
            namespace, owner_name = referrer, None
        else:
            namespace = getattr(referrer, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            owner_name = referrer.__name__ if isinstance(referrer, type) else type(referrer).__name__
        for key, value in list(namespace.items()):
            if id(value) in wanted and id(value) not in labels and isinstance(key, str):
                if owner_name is None:
                    owner_name = _dict_owner_name(namespace)
                if owner_name:
                    labels[id(value)] = f"{owner_name}.{key}"
    return labels


def _dict_owner_name(namespace: dict[str, Any]) -> str:
    """The class name of the object whose ``__dict__`` this is, or a module's name."""
    if namespace.get("__name__") and "__builtins__" in namespace:
        return str(namespace["__name__"])
    for owner in gc.get_referrers(namespace):
        if getattr(owner, "__dict__", None) is namespace:
            if isinstance(owner, type):
                return owner.__name__
            return type(owner).__name__
    return ""


def lock_kind(lock: InstrumentedLock) -> str:
    return "RLock" if isinstance(lock, RLock) else "Lock"


def lock_label(lock: InstrumentedLock, attribute: str | None = None) -> str:
    """How reports call a lock: its name, else the attribute holding it, else its creation site."""
    if lock.name:
        return lock.name
    if attribute:
        return attribute
    where = short_site(lock.site)
    return f"{lock_kind(lock)} from {where}" if where else f"{lock_kind(lock)} {lock.id}"


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def take(kind: str = "snapshot", *, labels: bool = True, summary: str = "") -> Report:
    """A Report of every live thread (with its stack) and every lock held or waited for."""
    now = monotonic()
    frames = sys._current_frames()
    python_threads = dict(threading._active)  # type: ignore[attr-defined]
    states = {state.ident: state for state in _state.states()}

    # Locks worth reporting: held or waited for by someone.
    involved: dict[int, InstrumentedLock] = {}
    waits: dict[int, tuple[InstrumentedLock, float | None]] = {}
    holdings: dict[int, list[InstrumentedLock]] = {}
    for ident, state in states.items():
        held = list(state.held)
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
        if owner is not None and owner.ident not in holdings:
            holdings[owner.ident] = [lock]
            states.setdefault(owner.ident, owner)

    attributes = attribute_labels(involved.values()) if labels else {}

    thread_infos = []
    idents = sorted(set(frames) | set(holdings))
    for ident in idents:
        if ident in internal_thread_idents:
            continue
        thread = python_threads.get(ident)
        frame = frames.get(ident)
        waiting = waits.get(ident)
        waiting_in = None
        if waiting is None and frame is not None:
            waiting_in = _condition_wait(frame)
        state = states.get(ident)
        alive = frame is not None and (state is None or state.alive)
        if alive and thread is not None:
            name = thread.name
        else:
            # Gone: the name recorded when its state was made (its Thread object is gone too).
            recorded = state.name if state is not None else None
            name = recorded or (thread.name if thread is not None else None) or f"thread-{ident}"
        thread_infos.append(
            ThreadInfo(
                id=ident,
                name=name,
                daemon=bool(thread.daemon) if alive and thread is not None else False,
                holding=tuple(lock.id for lock in holdings.get(ident, ())),
                waiting_for=None if waiting is None else waiting[0].id,
                waiting_seconds=None if waiting is None else round(waiting[1] or 0.0, 6),
                stack=frames_of(frame),
                alive=alive,
                waiting_in=waiting_in,
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
            count = 1 if lock.locked() else 0
        lock_infos.append(
            LockInfo(
                id=lock.id,
                kind=lock_kind(lock),
                name=lock.name,
                site=site_frame(lock.site),
                owner=None if owner is None else owner.ident,
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

    return Report(
        kind=kind,
        created=now_iso(),
        pid=os.getpid(),
        argv=tuple(str(arg) for arg in sys.argv),
        python=platform.python_version(),
        threads=tuple(thread_infos),
        locks=tuple(lock_infos),
        summary=summary,
    )


def _condition_wait(frame: types.FrameType | None) -> str | None:
    depth = 0
    while frame is not None and depth < 8:
        name = _CONDITION_WAITS.get(frame.f_code)
        if name is not None:
            return name
        frame = frame.f_back
        depth += 1
    return None
