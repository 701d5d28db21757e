"""The values lockwatch reports (threads, tasks, locks, other waits, cycles) and their dump format v1 as JSON."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lockwatch._errors import DumpError

#: Version of the JSON dump format written by this lockwatch (``"lockwatch": 1``).
DUMP_FORMAT_VERSION = 1

#: The kinds of report a dump may hold.
KINDS = ("deadlock", "lock-order", "hang", "snapshot")

#: The kinds of node listed in ``threads``: a thread, or an asyncio task (``id`` = the task's serial).
THREAD_KINDS = ("thread", "task")


@dataclass(frozen=True)
class Frame:
    """One stack frame: where a thread is, or where something happened."""

    file: str
    line: int
    function: str
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"file": self.file, "line": self.line, "function": self.function}
        if self.code is not None:
            data["code"] = self.code
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Frame:
        _require(data, dict, "a frame")
        return cls(
            file=_get(data, "file", str, "frame"),
            line=_get(data, "line", int, "frame"),
            function=_get(data, "function", str, "frame"),
            code=_get(data, "code", (str, type(None)), "frame", default=None),
        )

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"


@dataclass(frozen=True)
class ThreadInfo:
    """A thread as seen at report time: what it holds, what it waits for, its stack."""

    id: int
    name: str
    daemon: bool
    holding: tuple[str, ...] = ()
    waiting_for: str | None = None
    waiting_seconds: float | None = None
    stack: tuple[Frame, ...] = ()  # outermost first, innermost (the blocking line) last
    # Extras (not required by format v1):
    alive: bool = True
    role: str | None = None  # "cycle", "bystander" or None
    waiting_in: str | None = None  # e.g. "Condition.wait" for waits not on a lock
    acquired_at: dict[str, Frame] = field(default_factory=dict)  # lock id -> where taken
    # Attach mode (`lockwatch dump --attach`): how a holding or the wait was inferred, when it was.
    inferred: dict[str, str] = field(default_factory=dict)  # lock id -> how
    waiting_inferred: str | None = None
    # Waits beyond locks: "task" for an asyncio task (id = its serial, stack = its coroutine
    # stack), the awaited entry it waits for when that is not a lock (a join, a future, a
    # task, an import...), and for a task the ident of the thread running its loop.
    kind: str = "thread"
    waits_for: str | None = None
    loop_thread: int | None = None
    # For a thread that no longer exists: how it went ("ended in load() at app.py:14 while
    # holding locks", "not carried over a fork"), when lockwatch knows.
    gone: str | None = None

    @property
    def is_blocked(self) -> bool:
        """Waiting on a lock, on something else awaited (join, future, task...), or for a notification."""
        return self.waiting_for is not None or self.waits_for is not None or self.waiting_in is not None

    @property
    def is_task(self) -> bool:
        """An asyncio task rather than a thread."""
        return self.kind == "task"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "daemon": self.daemon,
            "holding": list(self.holding),
            "waiting_for": self.waiting_for,
            "waiting_seconds": self.waiting_seconds,
            "stack": [f.to_dict() for f in self.stack],
            "alive": self.alive,
            "role": self.role,
            "waiting_in": self.waiting_in,
            "acquired_at": {k: f.to_dict() for k, f in sorted(self.acquired_at.items())},
            "inferred": dict(sorted(self.inferred.items())),
            "waiting_inferred": self.waiting_inferred,
            "gone": self.gone,
            "kind": self.kind,
            "waits_for": self.waits_for,
            "loop_thread": self.loop_thread,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ThreadInfo:
        _require(data, dict, "a thread")
        where = "thread"
        waiting_seconds = _get(data, "waiting_seconds", (int, float, type(None)), where)
        kind = _get(data, "kind", str, where, default="thread")
        if kind not in THREAD_KINDS:
            raise DumpError(f"malformed dump: thread 'kind' is {kind!r} (expected one of {', '.join(THREAD_KINDS)})")
        return cls(
            id=_get(data, "id", int, where),
            name=_get(data, "name", str, where),
            daemon=_get(data, "daemon", bool, where),
            holding=tuple(_str_list(_get(data, "holding", list, where), "thread holding")),
            waiting_for=_get(data, "waiting_for", (str, type(None)), where),
            waiting_seconds=None if waiting_seconds is None else float(waiting_seconds),
            stack=tuple(Frame.from_dict(f) for f in _get(data, "stack", list, where)),
            alive=_get(data, "alive", bool, where, default=True),
            role=_get(data, "role", (str, type(None)), where, default=None),
            waiting_in=_get(data, "waiting_in", (str, type(None)), where, default=None),
            acquired_at={
                str(k): Frame.from_dict(v)
                for k, v in _get(data, "acquired_at", dict, where, default={}).items()
            },
            inferred={
                str(k): v for k, v in _get(data, "inferred", dict, where, default={}).items() if isinstance(v, str)
            },
            waiting_inferred=_get(data, "waiting_inferred", (str, type(None)), where, default=None),
            gone=_get(data, "gone", (str, type(None)), where, default=None),
            kind=kind,
            waits_for=_get(data, "waits_for", (str, type(None)), where, default=None),
            loop_thread=_get(data, "loop_thread", (int, type(None)), where, default=None),
        )


@dataclass(frozen=True)
class LockInfo:
    """An instrumented lock as seen at report time."""

    id: str
    kind: str  # "Lock" or "RLock"
    name: str | None
    site: Frame | None  # where it was created
    owner: int | None
    count: int
    waiters: tuple[int, ...] = ()
    # Extras: a human-readable label (name, attribute like "Account.lock", or site).
    label: str | None = None
    rank: int | None = None
    # Attach mode: the owner was inferred (a plain Lock records none), and the object's address.
    inferred: bool = False
    address: str | None = None

    @property
    def title(self) -> str:
        """How reports call this lock."""
        return self.label or self.name or (f"{self.kind} {self.id}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "site": None if self.site is None else self.site.to_dict(),
            "owner": self.owner,
            "count": self.count,
            "waiters": list(self.waiters),
            "label": self.label,
            "rank": self.rank,
            "inferred": self.inferred,
            "address": self.address,
        }

    @classmethod
    def from_dict(cls, data: Any) -> LockInfo:
        _require(data, dict, "a lock")
        where = "lock"
        site = _get(data, "site", (dict, type(None)), where)
        waiters = _id_list(_get(data, "waiters", list, where), "lock waiters")
        return cls(
            id=_get(data, "id", str, where),
            kind=_get(data, "kind", str, where),
            name=_get(data, "name", (str, type(None)), where),
            site=None if site is None else Frame.from_dict(site),
            owner=_get(data, "owner", (int, type(None)), where),
            count=_get(data, "count", int, where),
            waiters=tuple(waiters),
            label=_get(data, "label", (str, type(None)), where, default=None),
            rank=_get(data, "rank", (int, type(None)), where, default=None),
            inferred=_get(data, "inferred", bool, where, default=False),
            address=_get(data, "address", (str, type(None)), where, default=None),
        )


@dataclass(frozen=True)
class CycleStep:
    """One step of a deadlock: ``thread`` waits for ``lock`` (or, for a wait that is not on a
    lock, for the awaited entry ``waits_for``), owned by the next step's thread.

    Exactly one of ``lock`` and ``waits_for`` is set; ``target`` is that one.
    """

    thread: int  # the waiter: a thread ident or a task serial
    lock: str | None = None
    waits_for: str | None = None

    def __post_init__(self) -> None:
        if (self.lock is None) == (self.waits_for is None):
            raise ValueError(f"a cycle step waits for a lock or for an awaited entry, exactly one ({self!r})")

    @property
    def target(self) -> str:
        """The id of what the waiter waits for: a lock id (``L3``) or an awaited id (``F3``)."""
        return self.lock if self.lock is not None else (self.waits_for or "")

    @property
    def on_lock(self) -> bool:
        return self.lock is not None

    def to_dict(self) -> dict[str, Any]:
        if self.lock is not None:
            return {"thread": self.thread, "lock": self.lock}
        # Format 1 readers older than waits beyond locks require "lock" in every step: they get
        # the awaited id there too (and show it as a lock missing from the dump) rather than fail.
        return {"thread": self.thread, "waits_for": self.waits_for, "lock": self.waits_for}

    @classmethod
    def from_dict(cls, data: Any) -> CycleStep:
        _require(data, dict, "a cycle step")
        where = "cycle step"
        thread = _get(data, "thread", int, where)
        lock = _get(data, "lock", (str, type(None)), where, default=None)
        waits_for = _get(data, "waits_for", (str, type(None)), where, default=None)
        if waits_for is not None:
            if lock is not None and lock != waits_for:
                raise DumpError(
                    f"malformed dump: cycle step of thread {thread} has both a 'lock' ({lock!r}) and "
                    f"a 'waits_for' ({waits_for!r}); a step waits for one thing"
                )
            return cls(thread=thread, waits_for=waits_for)
        if lock is None:
            raise DumpError(f"malformed dump: cycle step of thread {thread} has neither a 'lock' nor a 'waits_for'")
        return cls(thread=thread, lock=lock)


@dataclass(frozen=True)
class AwaitedInfo:
    """Something waited for that is not a lock: a thread (join), a future, a pool, a task, an import...

    ``owners`` must run for the wait to end: all of them, or any one (``any_of``: a pending
    future in a pool, which whichever worker is free next will run).
    """

    id: str  # unique in one report: "J4", "F2", "K1", "I7", "A3"...
    kind: str  # "thread", "future", "pool", "task", "import", "asyncio.Lock", ...
    label: str  # how reports name it: 'thread "worker-1"', 'future of fetch() in ThreadPoolExecutor-0'
    owners: tuple[int, ...] = ()  # thread idents / task serials; () = not known
    any_of: bool = False
    site: Frame | None = None  # where it was made or submitted
    state: str | None = None  # "pending", "running"... (futures), None when it says nothing
    waiters: tuple[int, ...] = ()

    @property
    def title(self) -> str:
        """How reports call it."""
        return self.label or f"{self.kind} {self.id}"

    @property
    def is_work(self) -> bool:
        """A future (or a pool's pending work): its owners *run* it rather than hold it."""
        return self.kind in ("future", "pool")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "owners": list(self.owners),
            "any_of": self.any_of,
            "site": None if self.site is None else self.site.to_dict(),
            "state": self.state,
            "waiters": list(self.waiters),
        }

    @classmethod
    def from_dict(cls, data: Any) -> AwaitedInfo:
        _require(data, dict, "an awaited entry")
        where = "awaited entry"
        site = _get(data, "site", (dict, type(None)), where, default=None)
        return cls(
            id=_get(data, "id", str, where),
            kind=_get(data, "kind", str, where),
            label=_get(data, "label", str, where, default=""),
            owners=tuple(_id_list(_get(data, "owners", list, where, default=[]), "awaited owners")),
            any_of=_get(data, "any_of", bool, where, default=False),
            site=None if site is None else Frame.from_dict(site),
            state=_get(data, "state", (str, type(None)), where, default=None),
            waiters=tuple(_id_list(_get(data, "waiters", list, where, default=[]), "awaited waiters")),
        )


@dataclass(frozen=True)
class OrderEdge:
    """One edge of a lock-order cycle: ``to`` was acquired while holding ``from_``."""

    from_: str
    to: str
    thread: str  # the name of the thread that first took this order
    stack: tuple[Frame, ...] = ()
    # Extras: labels of both locks, the pytest test that took the order, gate locks held.
    from_label: str | None = None
    to_label: str | None = None
    test: str | None = None
    gates: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.from_,
            "to": self.to,
            "thread": self.thread,
            "stack": [f.to_dict() for f in self.stack],
            "from_label": self.from_label,
            "to_label": self.to_label,
            "test": self.test,
            "gates": list(self.gates),
        }

    @classmethod
    def from_dict(cls, data: Any) -> OrderEdge:
        _require(data, dict, "an order edge")
        where = "order edge"
        return cls(
            from_=_get(data, "from", str, where),
            to=_get(data, "to", str, where),
            thread=_get(data, "thread", str, where),
            stack=tuple(Frame.from_dict(f) for f in _get(data, "stack", list, where)),
            from_label=_get(data, "from_label", (str, type(None)), where, default=None),
            to_label=_get(data, "to_label", (str, type(None)), where, default=None),
            test=_get(data, "test", (str, type(None)), where, default=None),
            gates=tuple(_str_list(_get(data, "gates", list, where, default=[]), "order edge gates")),
        )


@dataclass(frozen=True)
class Report:
    """Everything lockwatch knows about one event; JSON, DOT and text are renderings of it."""

    kind: str
    created: str  # ISO 8601 with time zone
    pid: int
    argv: tuple[str, ...]
    python: str
    threads: tuple[ThreadInfo, ...] = ()
    locks: tuple[LockInfo, ...] = ()
    cycles: tuple[tuple[CycleStep, ...], ...] = ()
    order_cycles: tuple[tuple[OrderEdge, ...], ...] = ()
    # Extras: a one-paragraph summary, the victim thread (break mode), a broken
    # declared rule, whether all edges of an order cycle came from one thread.
    summary: str = ""
    victim: int | None = None
    rule: str | None = None
    single_thread: bool = False
    # How the report was taken: "attach" (gdb, the process was not running lockwatch),
    # "attach-stacks" (stacks only: the snapshot routine could not run), or None (lockwatch inside).
    source: str | None = None
    notes: tuple[str, ...] = ()
    # Waits beyond locks: what is waited for that is not a lock, waits that end at an owner
    # that no longer exists (orphaned locks), and whether every live thread was asleep.
    awaited: tuple[AwaitedInfo, ...] = ()
    chains: tuple[tuple[CycleStep, ...], ...] = ()
    all_asleep: bool = False

    def thread(self, ident: int) -> ThreadInfo | None:
        """The thread with this id, if the report has it."""
        for info in self.threads:
            if info.id == ident:
                return info
        return None

    def lock(self, lock_id: str) -> LockInfo | None:
        """The lock with this id, if the report has it."""
        for info in self.locks:
            if info.id == lock_id:
                return info
        return None

    def awaited_entry(self, awaited_id: str) -> AwaitedInfo | None:
        """The awaited entry with this id, if the report has it."""
        for info in self.awaited:
            if info.id == awaited_id:
                return info
        return None

    def replace(self, **changes: Any) -> Report:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The report as dump format v1 (a JSON-ready dict)."""
        return {
            "lockwatch": DUMP_FORMAT_VERSION,
            "kind": self.kind,
            "created": self.created,
            "pid": self.pid,
            "argv": list(self.argv),
            "python": self.python,
            "summary": self.summary,
            "victim": self.victim,
            "rule": self.rule,
            "single_thread": self.single_thread,
            "source": self.source,
            "notes": list(self.notes),
            "threads": [t.to_dict() for t in self.threads],
            "locks": [lock.to_dict() for lock in self.locks],
            "cycles": [[s.to_dict() for s in cycle] for cycle in self.cycles],
            "order_cycles": [[e.to_dict() for e in cycle] for cycle in self.order_cycles],
            "awaited": [a.to_dict() for a in self.awaited],
            "chains": [[s.to_dict() for s in chain] for chain in self.chains],
            "all_asleep": self.all_asleep,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        """Read a dump; raises :class:`DumpError` saying what is wrong with it."""
        if not isinstance(data, dict) or "lockwatch" not in data:
            raise DumpError("not a lockwatch dump (no \"lockwatch\" format version key)")
        version = data["lockwatch"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise DumpError(f"not a lockwatch dump (format version {version!r} is not an integer)")
        if version > DUMP_FORMAT_VERSION:
            raise DumpError(
                f"dump format version {version} is newer than this lockwatch understands "
                f"(version {DUMP_FORMAT_VERSION}); upgrade lockwatch to read it"
            )
        if version < 1:
            raise DumpError(f"unknown dump format version {version}")
        where = "dump"
        kind = _get(data, "kind", str, where)
        if kind not in KINDS:
            raise DumpError(f"unknown dump kind {kind!r} (expected one of {', '.join(KINDS)})")
        try:
            return cls(
                kind=kind,
                created=_get(data, "created", str, where),
                pid=_get(data, "pid", int, where),
                argv=tuple(_str_list(_get(data, "argv", list, where), "argv")),
                python=_get(data, "python", str, where),
                threads=tuple(ThreadInfo.from_dict(t) for t in _get(data, "threads", list, where)),
                locks=tuple(LockInfo.from_dict(x) for x in _get(data, "locks", list, where)),
                cycles=tuple(
                    tuple(CycleStep.from_dict(s) for s in _require(c, list, "a cycle"))
                    for c in _get(data, "cycles", list, where)
                ),
                order_cycles=tuple(
                    tuple(OrderEdge.from_dict(e) for e in _require(c, list, "an order cycle"))
                    for c in _get(data, "order_cycles", list, where)
                ),
                summary=_get(data, "summary", str, where, default=""),
                victim=_get(data, "victim", (int, type(None)), where, default=None),
                rule=_get(data, "rule", (str, type(None)), where, default=None),
                single_thread=_get(data, "single_thread", bool, where, default=False),
                source=_get(data, "source", (str, type(None)), where, default=None),
                notes=tuple(_str_list(_get(data, "notes", list, where, default=[]), "notes")),
                awaited=tuple(AwaitedInfo.from_dict(a) for a in _get(data, "awaited", list, where, default=[])),
                chains=tuple(
                    tuple(CycleStep.from_dict(s) for s in _require(c, list, "a chain"))
                    for c in _get(data, "chains", list, where, default=[])
                ),
                all_asleep=_get(data, "all_asleep", bool, where, default=False),
            )
        except (TypeError, ValueError) as exc:  # pragma: no cover - defensive
            raise DumpError(f"malformed dump: {exc}") from None


def waiters_phrase(report: Report, idents: Iterable[int], one: bool = False) -> str:
    """``2 threads``, ``2 tasks``, ``1 thread and 1 task`` (``a thread`` / ``a task`` with ``one``)."""
    idents = set(idents)
    tasks = sum(1 for info in report.threads if info.id in idents and info.is_task)
    threads = len(idents) - tasks

    def count(n: int, word: str) -> str:
        return f"{n} {word}" if n == 1 else f"{n} {word}s"

    if one:
        return "a task" if tasks else "a thread"
    if tasks and threads:
        return f"{count(threads, 'thread')} and {count(tasks, 'task')}"
    return count(tasks, "task") if tasks else count(threads, "thread")


#: What the waiter of a one-step cycle waits for, by deadlock_shape (the text's and the picture's headlines).
SELF_WAITS = {"self-lock": "a lock it holds itself", "self-work": "work that only it can run", "self": "itself"}


def deadlock_shape(report: Report) -> tuple[str, set[int]]:
    """What a deadlock report shows, for its headline, and the waiters it is about.

    ``self-lock`` (a thread waits for a lock it holds), ``self-work`` (for work only it
    can run: pool starvation), ``self`` (for itself otherwise), ``cycles``, ``orphan``
    (waits for an owner that no longer exists), ``asleep`` (every thread asleep, no
    cycle), or ``none``.
    """
    idents = {step.thread for cycle in report.cycles for step in cycle}
    if len(report.cycles) == 1 and len(report.cycles[0]) == 1:
        step = report.cycles[0][0]
        if step.lock is not None:
            return "self-lock", idents
        entry = report.awaited_entry(step.target)
        return ("self-work" if entry is not None and entry.is_work else "self"), idents
    if idents:
        return "cycles", idents
    if report.chains:
        return "orphan", {step.thread for chain in report.chains for step in chain}
    return ("asleep" if report.all_asleep else "none"), idents


def is_lockwatch_file(path: str) -> bool:
    """Whether a frame's file is one of lockwatch's own modules (``lockwatch/_*.py``)."""
    folder, base = os.path.split(path.replace("\\", "/").replace("/", os.sep))
    return os.path.basename(folder) == "lockwatch" and base.startswith("_") and base.endswith(".py")


def _is_runner(path: str) -> bool:
    """lockwatch's ``run`` machinery: the frame that starts the user's program."""
    return is_lockwatch_file(path) and os.path.basename(path.replace("\\", "/").replace("/", os.sep)) == "_run.py"


def _is_start_up(path: str) -> bool:
    """Frames between ``lockwatch run`` and the program's first line (runpy, importlib, lockwatch)."""
    base = os.path.basename(path.replace("\\", "/").replace("/", os.sep))
    return path.startswith("<frozen ") or base == "runpy.py" or is_lockwatch_file(path)


def user_frames(stack: Iterable[Frame]) -> list[Frame]:
    """The program's part of a stack: from its first line to the user's line, lockwatch's frames cut.

    A blocked ``acquire()`` sits a few frames deep inside lockwatch; those frames say
    nothing about the program, so the user's blocking line comes last. Under
    ``lockwatch run`` the main thread starts in the console script, click and
    lockwatch's runner, and every other thread in threading's bootstrap: those
    outer frames go too, so the program's own first line comes first (a thread's
    target, a script's ``<module>``). A stack entirely inside lockwatch is kept as it is.
    """
    frames = list(stack)
    end = len(frames)
    while end > 0 and is_lockwatch_file(frames[end - 1].file):
        end -= 1
    if not end:
        return frames
    start = 0
    runner = max((index for index in range(end) if _is_runner(frames[index].file)), default=None)
    if runner is not None:
        start = runner + 1
        while start < end - 1 and _is_start_up(frames[start].file):
            start += 1
    # A thread starts in threading's bootstrap: its first line of the program is the target.
    # (lockwatch wraps Thread._bootstrap_inner: its frames sit between threading's.)
    in_bootstrap = False
    while start < end - 1 and (
        _is_thread_start(frames[start]) or (in_bootstrap and is_lockwatch_file(frames[start].file))
    ):
        in_bootstrap = True
        start += 1
    # lockwatch's pass-through wrappers between two frames of the program (a pool's work
    # item, a patched join) say nothing about it either.
    kept = frames[start:end]
    return [f for i, f in enumerate(kept) if i in (0, len(kept) - 1) or not is_lockwatch_file(f.file)]


def _is_thread_start(frame: Frame) -> bool:
    base = os.path.basename(frame.file.replace("\\", "/").replace("/", os.sep))
    return base == "threading.py" and frame.function in ("_bootstrap", "_bootstrap_inner", "run")


_MISSING = object()


def _require(value: Any, types: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, types):
        raise DumpError(f"malformed dump: expected {what}, found {type(value).__name__}")
    return value


def _get(data: dict[str, Any], key: str, types: Any, where: str, default: Any = _MISSING) -> Any:
    if key not in data:
        if default is _MISSING:
            raise DumpError(f"malformed dump: {where} has no {key!r}")
        return default
    value = data[key]
    # bool is an int subclass: a flag is never a number and a number never a flag.
    wants_int = types is int or (isinstance(types, tuple) and int in types)
    if isinstance(value, bool) and wants_int and not (types is bool or (isinstance(types, tuple) and bool in types)):
        raise DumpError(f"malformed dump: {where} {key!r} must not be a boolean")
    if not isinstance(value, types):
        raise DumpError(
            f"malformed dump: {where} {key!r} has type {type(value).__name__}"
        )
    return value


def _id_list(values: list[Any], what: str) -> list[int]:
    # bool is an int subclass, but true is no thread id.
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise DumpError(f"malformed dump: {what} must be thread or task ids (integers)")
    return values


def _str_list(values: list[Any], what: str) -> list[str]:
    if not all(isinstance(v, str) for v in values):
        raise DumpError(f"malformed dump: {what} must be a list of strings")
    return values
