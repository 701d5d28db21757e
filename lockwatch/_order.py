"""Lock-order checking (lockdep for Python): learn the order locks are taken in, report orders that can deadlock."""

from __future__ import annotations

import linecache
import os
import queue
import sys
import threading
import weakref
from _thread import _local as _ThreadLocal
from _thread import allocate_lock as _allocate_raw_lock
from dataclasses import dataclass
from itertools import count, islice
from typing import Any, Iterable, Mapping, Sequence

from lockwatch import _baseline, _state
from lockwatch._snapshot import internal_thread_idents
from lockwatch._config import Config
from lockwatch._errors import LockOrderViolation, LockOrderWarning
from lockwatch._model import Frame, LockInfo, OrderEdge, Report

# A lock class is its creation site (file, line): instances made by the same
# line of code share what is learned about their order.
RawFrame = tuple[str, int, str]
ClassKey = tuple[str, int]

#: How many frames of the acquiring stack an edge keeps (innermost ones).
STACK_LIMIT = 16
#: How many alternative paths are examined when a new edge closes cycles; the
#: shortest reportable one is reported. Bounds the work on dense graphs.
MAX_PATHS = 16

_LOCKWATCH_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Files whose frames are not "the user's acquire line": lockwatch itself, and the
# stdlib wrappers that take locks on the user's behalf (Condition, Queue).
_WRAPPER_FILES = frozenset(
    os.path.normcase(os.path.abspath(path)) for path in (threading.__file__, queue.__file__)
)


@dataclass
class _Edge:
    """One learned order ``held -> acquired`` between two lock instances (mutable: gates shrink)."""

    from_serial: int
    to_serial: int
    from_label: str
    to_label: str
    from_class: ClassKey | None
    to_class: ClassKey | None
    thread: str
    thread_token: int
    stack: tuple[RawFrame, ...]  # (file, line, function), outermost first
    test: str | None
    gates: frozenset[int]  # serials of locks held before ``from`` every time this order was taken
    seq: int
    generation: int  # the declared-order generation this edge was checked against
    source: str | None = None  # where an imported order was learned (None: learned here)

    @property
    def from_id(self) -> str:
        return f"L{self.from_serial}"

    @property
    def to_id(self) -> str:
        return f"L{self.to_serial}"


@dataclass
class _ClassEdge:
    """An order between two lock classes, remembered with the instance edge that first took it."""

    first: _Edge
    gates: frozenset[ClassKey]  # classes of the locks held before ``from`` every time


@dataclass(frozen=True)
class ClassOrder:
    """A learned order between two lock classes (creation sites), as the baseline stores it."""

    from_site: ClassKey
    to_site: ClassKey
    from_label: str
    to_label: str
    thread: str
    test: str | None


@dataclass
class _Finding:
    """Something to report, found under the graph lock and presented outside it."""

    key: tuple[Any, ...]
    edges: list[_Edge]
    rule: str | None = None
    # Other names of the same problem (the same code, the same lock classes):
    # once any of them is reported, the others are not reported again.
    aliases: tuple[tuple[Any, ...], ...] = ()

    @property
    def keys(self) -> tuple[tuple[Any, ...], ...]:
        return (self.key, *self.aliases)


# --- state (all guarded by _graph_lock, a raw lock never held while calling out) --

_graph_lock = _allocate_raw_lock()
# networkx is imported on first activation, not with lockwatch: importing it
# costs a third of a second, and the disabled pytest plugin must cost nothing.
nx: Any = None
_instances: Any = None  # serial -> serial, attribute "edge": _Edge (a networkx DiGraph)
_classes: Any = None  # ClassKey -> ClassKey, attribute "edge": _ClassEdge (a networkx DiGraph)
_same_class: dict[ClassKey, _Edge] = {}  # classes nested within themselves (site -> same site)
_refs: dict[int, weakref.ref[Any]] = {}  # serial -> weak reference to the lock
_dead: list[int] = []  # serials of locks that died; drained on the slow path (never locked by GC)
_reported: dict[tuple[Any, ...], Report | None] = {}  # cycle/rule key -> its report
_edge_seq = count(1)
_thread_tokens = count(1)
# Imported orders have no lock instances here: negative serials and thread
# tokens never collide with local ones (which count up from 1).
_foreign_ids = count(-1, -1)

# --- configuration in force (module globals: read without locking) ------------

_policy = "off"
_dump_dir = "lockwatch-dumps"
_declared: dict[str, int] = {}
_declared_names: tuple[str, ...] = ()
_baseline_data: _baseline.Baseline | None = None
_generation = 0
_test_name: str | None = None
_broken = False  # set once lockwatch's own checker failed: it stays out of the way

# Per-thread: "inside the checker" (nested acquires made while reporting are not
# checked) and a token telling threads apart even when idents are reused.
_tls = _ThreadLocal()


# --- activation -----------------------------------------------------------------


def _load_graphs() -> None:
    """Import networkx and create the two graphs, once."""
    global nx, _instances, _classes
    if nx is None:
        import networkx

        with _graph_lock:
            if _instances is None:
                _instances, _classes = networkx.DiGraph(), networkx.DiGraph()
        nx = networkx


def activate(config: Config) -> None:
    """Apply ``config.order`` and the declared order / baseline; the learned graph is kept."""
    global _policy, _dump_dir, _declared, _declared_names, _baseline_data, _generation
    _load_graphs()
    baseline = _baseline.load_baseline(config.baseline) if config.baseline else None
    declared_changed = tuple(config.declared_order) != _declared_names
    _declared_names = tuple(config.declared_order)
    _declared = {}
    for position, name in enumerate(_declared_names):
        _declared.setdefault(name, position)
    _baseline_data = baseline
    _dump_dir = config.dump_dir
    _policy = config.order
    if declared_changed:
        # Settled orders skip the checker: forget them so known edges are
        # checked once more against the new declared order.
        _generation += 1
        _unsettle_all()
    _state.order_checker = None if config.order == "off" or _broken else check_order


def deactivate() -> None:
    """Stop checking; what was learned stays for the next activation."""
    global _policy
    _policy = "off"
    _state.order_checker = None


def set_test_name(name: str | None) -> None:
    """Name the test now running; new edges record it (the pytest plugin calls this)."""
    global _test_name
    _test_name = name


def reset() -> None:
    """Forget everything learned (for tests of lockwatch itself)."""
    global _broken
    _load_graphs()
    with _graph_lock:
        _drain_dead()
        _unsettle_locked()
        _instances.clear()
        _classes.clear()
        _same_class.clear()
        _refs.clear()
        _reported.clear()
        del _dead[:]
    _broken = False


def _unsettle_all() -> None:
    with _graph_lock:
        _unsettle_locked()


def _unsettle_locked() -> None:
    for ref in _refs.values():
        lock = ref()
        if lock is not None:
            lock._preds = None


def _after_fork_in_child() -> None:
    global _graph_lock
    # The parent's graph lock may have been held by a thread that does not exist here.
    _graph_lock = _allocate_raw_lock()


_state.on_fork_child(_after_fork_in_child)


# --- public snapshots -----------------------------------------------------------


def order_edges() -> list[OrderEdge]:
    """The learned orders between live lock instances, as values (oldest first)."""
    _load_graphs()
    with _graph_lock:
        _drain_dead()
        edges = sorted((data["edge"] for _u, _v, data in _instances.edges(data=True)), key=lambda e: e.seq)
        return [_order_edge(edge, resolve_code=False) for edge in edges]


def class_orders() -> list[ClassOrder]:
    """The learned orders between lock classes (creation sites), same-class nesting included."""
    _load_graphs()
    with _graph_lock:
        found = [(data["edge"].first, u, v) for u, v, data in _classes.edges(data=True)]
        found.extend((edge, site, site) for site, edge in _same_class.items())
    return [
        ClassOrder(
            from_site=u,
            to_site=v,
            from_label=edge.from_label,
            to_label=edge.to_label,
            thread=edge.thread,
            test=edge.test,
        )
        for edge, u, v in sorted(found, key=lambda item: item[0].seq)
    ]


def export_class_orders(*, include_imported: bool = False) -> list[dict[str, Any]]:
    """The learned orders between lock classes as JSON-ready records, oldest first.

    One record per class-level order (``import_class_orders`` elsewhere takes them):
    ``from``/``to`` creation sites ``[file, line]``, ``from_label``/``to_label``,
    ``thread``, ``test``, ``stack`` (``[file, line, function]`` frames, outermost
    first), ``gates`` (sites of the locks held before ``from`` every time) and
    ``source`` (None for orders learned here). Same-class nesting is left out (it is
    judged per instance), and so are imported orders unless ``include_imported``.
    """
    _load_graphs()
    with _graph_lock:
        found = [
            (data["edge"], u, v)
            for u, v, data in _classes.edges(data=True)
            if include_imported or data["edge"].first.source is None
        ]
    found.sort(key=lambda item: item[0].first.seq)
    return [
        {
            "from": list(u),
            "to": list(v),
            "from_label": class_edge.first.from_label,
            "to_label": class_edge.first.to_label,
            "thread": class_edge.first.thread,
            "test": class_edge.first.test,
            "stack": [list(frame) for frame in class_edge.first.stack],
            "gates": sorted(list(gate) for gate in class_edge.gates),
            "source": class_edge.first.source,
        }
        for class_edge, u, v in found
    ]


def import_class_orders(records: Iterable[Mapping[str, Any]], *, source: str) -> None:
    """Add class-level orders learned elsewhere (records of ``export_class_orders``).

    No instance edge is made: an imported order takes part in class-level cycle
    detection like a local one, so a local acquire that closes a cycle with it is
    reported, with the imported stack and test beside the local ones. Its thread
    reads ``"<thread> (<source>)"``. An order already known here (learned or
    imported) is kept as it is; same-class records are skipped. Raises
    ``ValueError`` naming the first malformed record, before importing anything.
    """
    parsed = [_parse_record(record) for record in records]
    _load_graphs()
    with _graph_lock:
        for from_class, to_class, record, stack, gates in parsed:
            if from_class == to_class or _classes.has_edge(from_class, to_class):
                continue
            edge = _Edge(
                from_serial=next(_foreign_ids),
                to_serial=next(_foreign_ids),
                from_label=record["from_label"],
                to_label=record["to_label"],
                from_class=from_class,
                to_class=to_class,
                thread=f"{record['thread']} ({source})",
                thread_token=next(_foreign_ids),
                stack=stack,
                test=record["test"],
                gates=frozenset(),  # instance gates mean nothing here; the class gates below do
                seq=next(_edge_seq),
                generation=_generation,
                source=source,
            )
            _classes.add_edge(from_class, to_class, edge=_ClassEdge(first=edge, gates=gates))


def _parse_record(
    record: Mapping[str, Any],
) -> tuple[ClassKey, ClassKey, Mapping[str, Any], tuple[RawFrame, ...], frozenset[ClassKey]]:
    """Check one exported record; returns its sites, stack and gates as hashable tuples."""
    try:
        from_class = _site_key(record["from"])
        to_class = _site_key(record["to"])
        for key in ("from_label", "to_label", "thread"):
            if not isinstance(record[key], str):
                raise TypeError(f"{key} is not a string")
        if record["test"] is not None and not isinstance(record["test"], str):
            raise TypeError("test is not a string")
        stack = tuple((str(file), int(line), str(function)) for file, line, function in record["stack"])
        gates = frozenset(_site_key(gate) for gate in record.get("gates", ()))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a lock-order record ({exc!r}): {record!r}") from None
    return from_class, to_class, record, stack, gates


def _site_key(value: Any) -> ClassKey:
    file, line = value
    if not isinstance(file, str) or isinstance(line, bool) or not isinstance(line, int):
        raise TypeError(f"not a [file, line] site: {value!r}")
    return (file, line)


def graph_size() -> tuple[int, int]:
    """(nodes, edges) of the instance-level graph, after forgetting dead locks."""
    _load_graphs()
    with _graph_lock:
        _drain_dead()
        return _instances.number_of_nodes(), _instances.number_of_edges()


# --- the checker ----------------------------------------------------------------


def check_order(state: _state.ThreadState, lock: Any, held: list[Any]) -> None:
    """Called by a blocking acquire of ``lock`` while ``held``; raises to refuse it (order="raise")."""
    if getattr(_tls, "inside", False):
        return  # an acquire made while lockwatch reports: not the program's order
    if state.ident in internal_thread_idents:
        return  # lockwatch's own threads (the watchdog writing dumps) are not the program
    _tls.inside = True
    try:
        try:
            _state.drop_unreachable(held)
            if not held:
                return
            findings, refuse = _learn(state, lock, held)
        except Exception as exc:
            _give_up(exc)
            return
        for finding in findings:
            _present(finding, refuse)
    finally:
        _tls.inside = False


def _give_up(exc: BaseException) -> None:
    global _broken
    if not _broken:
        _broken = True
        _state.order_checker = None
        print(f"lockwatch: lock-order checking failed and is now off: {exc!r}", file=sys.stderr)


def _thread_token() -> int:
    token = getattr(_tls, "token", None)
    if token is None:
        token = _tls.token = next(_thread_tokens)
    return token  # type: ignore[no-any-return]


def _learn(state: _state.ThreadState, lock: Any, held: list[Any]) -> tuple[list[_Finding], bool]:
    """Record the new orders ``held -> lock``; return what to report and whether to refuse."""
    raising = _policy == "raise"
    with _graph_lock:
        _drain_dead()
        preds = lock._preds
        to_serial = lock._serial
        to_class = _class_of(lock)
        findings: list[_Finding] = []
        refuse = False
        updates: list[tuple[_Edge | None, _Edge, frozenset[int], frozenset[ClassKey]]] = []
        stack: tuple[RawFrame, ...] | None = None
        thread_name: str | None = None
        for index, before in enumerate(held):
            if before is lock or (preds is not None and before._serial in preds):
                continue
            gates = frozenset(other._serial for other in held[:index])
            class_gates = frozenset(c for c in (_class_of(other) for other in held[:index]) if c is not None)
            existing = _instances.get_edge_data(before._serial, to_serial)
            existing = None if existing is None else existing["edge"]
            if existing is not None and existing.generation == _generation and not (existing.gates - gates):
                # Known order, no fewer gates than before: nothing new to learn.
                if not existing.gates:
                    _settle(before, lock)
                continue
            if existing is None:
                quiet = _known_class_edge(before, lock, state, gates, class_gates)
                if quiet is not None:
                    updates.append((None, quiet, gates, class_gates))
                    continue
            if stack is None:
                stack = _acquire_stack()
                thread_name = _thread_name(state)
            assert thread_name is not None
            candidate = _Edge(
                from_serial=before._serial,
                to_serial=to_serial,
                from_label=_label(before),
                to_label=_label(lock),
                from_class=_class_of(before),
                to_class=to_class,
                thread=thread_name,
                thread_token=_thread_token(),
                stack=stack,
                test=_test_name,
                gates=gates if existing is None else existing.gates & gates,
                seq=0,
                generation=_generation,
            )
            new_findings = _cycle_findings(candidate, class_gates)
            rule = None
            if existing is None or existing.generation != _generation:
                rule = _declared_rule(before, lock)
            if rule is not None:
                # One report for one wrong acquire: the broken rule, with the cycle it closes if any.
                cycle = new_findings[0] if new_findings else None
                new_findings = [
                    _Finding(
                        ("declared", _identity(before), _identity(lock)),
                        cycle.edges if cycle is not None else [candidate],
                        rule,
                        aliases=cycle.keys if cycle is not None else (),
                    )
                ]
            for finding in new_findings:
                if raising:
                    refuse = True
                    findings.append(finding)
                elif not any(key in _reported for key in finding.keys):
                    for key in finding.keys:
                        _reported[key] = None
                    findings.append(finding)
            updates.append((existing, candidate, gates, class_gates))
        if refuse:
            # The acquire is refused: it did not happen, so nothing of it is learned.
            return findings, True
        for existing, candidate, _gates, class_gates in updates:
            _record(existing, candidate, class_gates, held, lock)
        return findings, False


def _known_class_edge(
    before: Any, lock: Any, state: _state.ThreadState, gates: frozenset[int], class_gates: frozenset[ClassKey]
) -> _Edge | None:
    """A new instance edge that cannot tell anything new, built cheaply; None if it might.

    The common case of many short-lived objects: a fresh lock nested under a
    long-lived one, in an order its class already took. A lock with no outgoing
    edges cannot close an instance cycle, and a class order already known with
    no more gates than now cannot close a new class cycle; so no cycle search,
    and unnamed locks borrow the labels of the class edge that first took this
    order (same creation sites, so the same labels).
    """
    to_serial = lock._serial
    if to_serial in _instances and _instances.out_degree(to_serial):
        return None
    from_class, to_class = _class_of(before), _class_of(lock)
    if from_class is None or to_class is None:
        return None
    if from_class == to_class:
        first = _same_class.get(from_class)
    else:
        data = _classes.get_edge_data(from_class, to_class)
        if data is None or not data["edge"].gates <= class_gates:
            return None
        first = data["edge"].first
    if first is None or _declared_rule(before, lock) is not None:
        return None
    return _Edge(
        from_serial=before._serial,
        to_serial=to_serial,
        from_label=before.name or first.from_label,
        to_label=lock.name or first.to_label,
        from_class=from_class,
        to_class=to_class,
        thread=_thread_name(state),
        thread_token=_thread_token(),
        stack=_acquire_stack(),
        test=_test_name,
        gates=gates,
        seq=0,
        generation=_generation,
    )


def _thread_name(state: _state.ThreadState) -> str:
    # Called by the thread itself: its live name (it may have been renamed since
    # its state was made) is recorded, so reports made after it ends name it too.
    name = _state.python_thread_name(state.ident)
    if name is not None:
        state.name = name
    return state.name or f"thread-{state.ident}"


def _record(
    existing: _Edge | None, candidate: _Edge, class_gates: frozenset[ClassKey], held: list[Any], lock: Any
) -> None:
    before = next(other for other in held if other._serial == candidate.from_serial)
    if existing is None:
        candidate.seq = next(_edge_seq)
        _track(before)
        _track(lock)
        _instances.add_edge(candidate.from_serial, candidate.to_serial, edge=candidate)
        edge = candidate
    else:
        existing.gates = candidate.gates
        existing.generation = _generation
        edge = existing
    _record_class(edge, class_gates)
    if not edge.gates:
        _settle(before, lock)


def _record_class(edge: _Edge, class_gates: frozenset[ClassKey]) -> None:
    from_class, to_class = edge.from_class, edge.to_class
    if from_class is None or to_class is None:
        return
    if from_class == to_class:
        _same_class.setdefault(from_class, edge)
        return
    data = _classes.get_edge_data(from_class, to_class)
    if data is None:
        _classes.add_edge(from_class, to_class, edge=_ClassEdge(first=edge, gates=class_gates))
    else:
        data["edge"].gates &= class_gates


def _settle(before: Any, lock: Any) -> None:
    """Put ``before`` into ``lock._preds``: from now on this order costs the hot path a set lookup."""
    preds = lock._preds
    if preds is None:
        preds = lock._preds = set()
    preds.add(before._serial)


def _track(lock: Any) -> None:
    """Watch ``lock`` so that its node leaves the graph when it dies."""
    serial = lock._serial
    if serial not in _refs:
        # The callback may run inside any allocation, even under _graph_lock:
        # it only appends (atomic); the slow path drains the list.
        _refs[serial] = weakref.ref(lock, lambda _ref, serial=serial: _dead.append(serial))


def _drain_dead() -> None:
    """Remove locks that died from the graph (called with _graph_lock held)."""
    if not _dead:
        return
    gone = set()
    while _dead:
        gone.add(_dead.pop())
    for serial in gone:
        _refs.pop(serial, None)
        if serial in _instances:
            for successor in list(_instances.successors(serial)):
                ref = _refs.get(successor)
                survivor = None if ref is None else ref()
                if survivor is not None and survivor._preds is not None:
                    survivor._preds.discard(serial)
            _instances.remove_node(serial)
    stale = [key for key in _reported if key[0] == "instance" and gone.intersection(key[1])]
    for key in stale:
        del _reported[key]


def _class_of(lock: Any) -> ClassKey | None:
    site = lock.site
    return None if site is None else (site[0], site[1])


def _identity(lock: Any) -> Any:
    """What a declared-order report is deduplicated by: the lock's class, else the lock."""
    return _class_of(lock) or lock._serial


def _label(lock: Any) -> str:
    from lockwatch._snapshot import lock_label

    return lock_label(lock)


def _acquire_stack() -> tuple[RawFrame, ...]:
    """The acquiring thread's stack without lockwatch's frames, outermost first.

    Plain (file, line, function) tuples: this runs for every new order, and
    Frame values (and source lines) are only made when a report is built.
    """
    frame: Any = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_LOCKWATCH_DIR):
        frame = frame.f_back
    frames = []
    while frame is not None and len(frames) < STACK_LIMIT:
        code = frame.f_code
        frames.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    frames.reverse()
    return tuple(frames)


# --- declared order -------------------------------------------------------------


def _declared_rule(before: Any, lock: Any) -> str | None:
    """The declared rule that taking ``lock`` while holding ``before`` breaks, if any."""
    held_rank, rank = before.rank, lock.rank
    if held_rank is not None and rank is not None and rank <= held_rank:
        if rank == held_rank:
            return (
                f'declared order: "{_label(lock)}" (rank {rank}) and "{_label(before)}" (rank {held_rank}) '
                "have the same rank and must not be held together"
            )
        return f'declared order: "{_label(lock)}" (rank {rank}) must be taken before "{_label(before)}" (rank {held_rank})'
    if _declared:
        held_position = _declared.get(before.name) if before.name is not None else None
        position = _declared.get(lock.name) if lock.name is not None else None
        if held_position is not None and position is not None and position < held_position:
            sequence = ", ".join(f'"{name}"' for name in _declared_names)
            return (
                f'declared order: "{lock.name}" must be taken before "{before.name}" '
                f"(declared_order = [{sequence}])"
            )
    return None


# --- cycles -----------------------------------------------------------------------


def _cycle_findings(candidate: _Edge, class_gates: frozenset[ClassKey]) -> list[_Finding]:
    """Cycles the order ``candidate`` closes, at instance level, else at class level."""
    if _suppressed(candidate):
        return []
    found = _instance_cycle(candidate)
    if found is not None:
        return [found]
    found = _class_cycle(candidate, class_gates)
    return [] if found is None else [found]


def _instance_cycle(candidate: _Edge) -> _Finding | None:
    start, end = candidate.to_serial, candidate.from_serial
    if start not in _instances or end not in _instances:
        return None
    view = nx.subgraph_view(_instances, filter_edge=lambda u, v: not _suppressed(_instances[u][v]["edge"]))
    for path in _paths(view, start, end):
        edges = [_instances[u][v]["edge"] for u, v in zip(path, path[1:])] + [candidate]
        if not _reportable(edges, [set(edge.gates) for edge in edges]):
            continue
        # The same locks seen as classes, or other instances taken by the same
        # lines of code, are the same problem: reported once.
        aliases = [_code_key(edges)]
        classes = _class_cycle_nodes([_instance_class(serial, candidate) for serial in path])
        if classes is not None:
            aliases.append(("class", _canonical(classes)))
        return _Finding(("instance", _canonical(path)), edges, aliases=tuple(aliases))
    return None


def _instance_class(serial: int, candidate: _Edge) -> ClassKey | None:
    if serial == candidate.from_serial:
        return candidate.from_class
    if serial == candidate.to_serial:
        return candidate.to_class
    for _u, _v, data in _instances.out_edges(serial, data=True):
        return data["edge"].from_class  # type: ignore[no-any-return]
    return None


def _class_cycle(candidate: _Edge, class_gates: frozenset[ClassKey]) -> _Finding | None:
    from_class, to_class = candidate.from_class, candidate.to_class
    if from_class is None or to_class is None or from_class == to_class:
        return None  # same-class nesting is judged per instance only
    if to_class not in _classes or from_class not in _classes:
        return None
    known = _classes.get_edge_data(from_class, to_class)
    gates = class_gates if known is None else known["edge"].gates & class_gates
    view = nx.subgraph_view(_classes, filter_edge=lambda u, v: not _suppressed(_classes[u][v]["edge"].first))
    for path in _paths(view, to_class, from_class):
        class_edges = [_classes[u][v]["edge"] for u, v in zip(path, path[1:])]
        edges = [edge.first for edge in class_edges] + [candidate]
        gate_sets = [set(edge.gates) for edge in class_edges] + [set(gates)]
        if not _reportable(edges, gate_sets):
            continue
        return _Finding(("class", _canonical(path)), edges, aliases=(_code_key(edges),))
    return None


def _paths(graph: Any, start: Any, end: Any) -> Iterable[list[Any]]:
    if not nx.has_path(graph, start, end):
        return []
    return islice(nx.shortest_simple_paths(graph, start, end), MAX_PATHS)


def _reportable(edges: Sequence[_Edge], gate_sets: Sequence[set[Any]]) -> bool:
    """False when one common gate lock guards every edge, or the baseline accepts them all."""
    common = set.intersection(*gate_sets) if gate_sets else set()
    if common:
        return False  # every order was taken while holding the same gate: they cannot interleave
    baseline = _baseline_data
    if baseline is not None and all(baseline.knows(edge.from_class, edge.to_class) for edge in edges):
        return False
    return True


def _suppressed(edge: _Edge) -> bool:
    baseline = _baseline_data
    return baseline is not None and baseline.suppresses(edge.from_class, edge.to_class)


def _canonical(nodes: Sequence[Any]) -> tuple[Any, ...]:
    """A cycle's nodes rotated to a fixed start, so each distinct cycle has one key."""
    ordered = list(nodes)
    start = min(range(len(ordered)), key=lambda i: repr(ordered[i]))
    return tuple(ordered[start:] + ordered[:start])


def _code_key(edges: Sequence[_Edge]) -> tuple[Any, ...]:
    """A cycle named by its lock classes and the lines that took each order."""
    steps = [
        (edge.from_class, edge.to_class, edge.stack[-1][:2] if edge.stack else None)
        for edge in edges
    ]
    return ("code", _canonical(steps))


def _class_cycle_nodes(classes: list[ClassKey | None]) -> list[ClassKey] | None:
    if any(c is None for c in classes):
        return None
    collapsed: list[ClassKey] = []
    for c in classes:
        if not collapsed or collapsed[-1] != c:
            collapsed.append(c)  # type: ignore[arg-type]
    while len(collapsed) > 1 and collapsed[0] == collapsed[-1]:
        collapsed.pop()
    return collapsed if len(set(collapsed)) >= 2 else None


# --- presenting -----------------------------------------------------------------


def _present(finding: _Finding, refuse: bool) -> None:
    """Report a finding by the policy: warn (and go on) or raise out of the acquire."""
    report = next((_reported[key] for key in finding.keys if _reported.get(key) is not None), None)
    if report is None:
        try:
            report = _build_report(finding)
            for key in finding.keys:
                _reported[key] = report
            _publish(report)
        except Exception as exc:
            _give_up(exc)
            return
    message = report.summary
    if refuse:
        raise LockOrderViolation(message, report)
    import warnings

    warnings.warn(LockOrderWarning(message, report), stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    """The warnings stacklevel of the user's acquire line, seen from _present's caller chain."""
    frame: Any = sys._getframe(1)  # _present: stacklevel 1 is the function calling warnings.warn
    level = 1
    while frame is not None and _is_wrapper(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    return level


def _is_wrapper(filename: str) -> bool:
    return filename.startswith(_LOCKWATCH_DIR) or os.path.normcase(os.path.abspath(filename)) in _WRAPPER_FILES


def _publish(report: Report) -> None:
    from lockwatch import _events

    paths: list[str] = []
    try:
        from lockwatch import _dump

        paths = _dump.write_report(report, _dump_dir)
    except Exception as exc:
        print(f"lockwatch: could not write the lock-order dump: {exc}", file=sys.stderr)
    _events.publish(report, paths)
    if _events.print_to_stderr:
        try:
            from lockwatch import _text

            text = _text.format_report(report)
        except Exception as exc:  # the summary still says what matters
            text = f"lockwatch: {report.summary}\n(text report failed: {exc!r})"
        print(text, file=sys.stderr)
        if paths:
            print(f"lockwatch: wrote {', '.join(paths)}", file=sys.stderr)


def _build_report(finding: _Finding) -> Report:
    from lockwatch import _snapshot

    live = {}
    for edge in finding.edges:
        for serial in (edge.from_serial, edge.to_serial):
            ref = _refs.get(serial)
            lock = None if ref is None else ref()
            if lock is not None:
                live[serial] = lock
    attributes = _snapshot.attribute_labels(live.values())
    labels = {serial: _snapshot.lock_label(lock, attributes.get(id(lock))) for serial, lock in live.items()}
    for edge in finding.edges:
        labels.setdefault(edge.from_serial, edge.from_label)
        labels.setdefault(edge.to_serial, edge.to_label)
    # Instances of one class share a label: tell them apart by id where they meet in one cycle.
    seen: dict[str, int] = {}
    for label in labels.values():
        seen[label] = seen.get(label, 0) + 1
    labels = {serial: f"{label} (L{serial})" if seen[label] > 1 else label for serial, label in labels.items()}
    edges = [
        _order_edge(
            edge,
            resolve_code=True,
            from_label=labels.get(edge.from_serial, edge.from_label),
            to_label=labels.get(edge.to_serial, edge.to_label),
        )
        for edge in finding.edges
    ]
    single = len({edge.thread_token for edge in finding.edges}) == 1
    summary = _summary(edges, finding.rule, single)
    report = _snapshot.take("lock-order", summary=summary)
    known = {info.id for info in report.locks}
    extra = []
    for serial, lock in sorted(live.items()):
        if lock.id in known:
            continue
        owner = lock._owner
        extra.append(
            LockInfo(
                id=lock.id,
                kind=_snapshot.lock_kind(lock),
                name=lock.name,
                site=_snapshot.site_frame(lock.site),
                owner=None if owner is None else owner.ident,
                count=0 if owner is None else getattr(lock, "_count", 1),
                label=labels[serial],
                rank=lock.rank,
            )
        )
    return report.replace(
        locks=report.locks + tuple(extra),
        order_cycles=(tuple(edges),),
        rule=finding.rule,
        single_thread=single and len(edges) > 1,
    )


def _order_edge(edge: _Edge, *, resolve_code: bool, from_label: str | None = None, to_label: str | None = None) -> OrderEdge:
    stack = tuple(
        Frame(file, line, function, (linecache.getline(file, line).strip() or None) if resolve_code else None)
        for file, line, function in edge.stack
    )
    return OrderEdge(
        from_=edge.from_id,
        to=edge.to_id,
        thread=edge.thread,
        stack=stack,
        from_label=from_label or edge.from_label,
        to_label=to_label or edge.to_label,
        test=edge.test,
        gates=tuple(f"L{serial}" for serial in sorted(edge.gates)),
    )


_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def _summary(edges: Sequence[OrderEdge], rule: str | None, single_thread: bool) -> str:
    """The report's first paragraph, as prose."""
    parts = [_edge_phrase(edge) for edge in edges]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    cycle = f"{listed}: these {_COUNT_WORDS.get(len(parts), str(len(parts)))} orders can deadlock"
    if rule is not None:
        edge = edges[-1]  # the wrong acquire; the edges before it are the cycle it closes
        summary = (
            f'lock "{edge.to_label}" was acquired while holding lock "{edge.from_label}" '
            f"({_edge_context(edge)}), against the {rule}"
        )
        return summary if len(edges) == 1 else f"{summary}; it also closes a cycle: {cycle}"
    summary = cycle
    if single_thread:
        summary += (
            f' (all taken by one thread, "{edges[0].thread}": it cannot deadlock with itself, '
            "but two threads running these paths can)"
        )
    return summary


def _edge_phrase(edge: OrderEdge) -> str:
    return f'lock "{edge.from_label}" -> lock "{edge.to_label}" ({_edge_context(edge)})'


def _edge_context(edge: OrderEdge) -> str:
    return f"thread {edge.thread}, {edge.test}" if edge.test else f"thread {edge.thread}"


__all__: list[str] = [
    "ClassOrder",
    "activate",
    "check_order",
    "class_orders",
    "deactivate",
    "export_class_orders",
    "graph_size",
    "import_class_orders",
    "order_edges",
    "reset",
    "set_test_name",
]
