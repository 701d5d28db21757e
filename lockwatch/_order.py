"""Lock-order checking (lockdep for Python): learn the order locks are taken in, report orders that can deadlock.

Recording side (user threads, mid-acquire): ``check_order`` runs only when a
thread's held context meets a lock class for the first time, records the
orders, and hands findings to the reporter as plain data. Its message for
``order="raise"``/``"warn"`` is built from data in hand: no import, no I/O.
Reporting side (the watchdog thread): ``build_report`` turns a finding into a
Report with labels and stacks.

What is learned, and why it stays small:
- orders between lock *classes* (creation site + name + rank), with the stack
  of the first acquisition and the gate classes held every time;
- orders between *instances* only where classes cannot decide: two locks of
  one class nested (sorted transfers between accounts). Those edges keep a
  topological order (Pearce-Kelly), so an edge that agrees with it costs no
  search; they are capped, oldest forgotten first, and leave with their locks.
"""

from __future__ import annotations

import functools
import itertools
import linecache
import os
import sys
import weakref
from _thread import allocate_lock as _allocate_raw_lock
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from lockwatch import _baseline, _state
from lockwatch._config import Config
from lockwatch._errors import LockOrderViolation, LockOrderWarning
from lockwatch._model import Frame, LockInfo, OrderEdge, Report, user_frames
from lockwatch._state import LockClass, ThreadState

RawFrame = tuple[str, int, str]
ClassKey = tuple[str, int]  # (file, line) of a creation site: what baselines and xdist exchange

#: How many frames of the acquiring stack an edge keeps (innermost ones).
STACK_LIMIT = 16
#: How many alternative paths are examined when a new edge closes cycles.
MAX_PATHS = 16
#: Same-class instance orders kept at most; the oldest are forgotten first.
MAX_INSTANCE_EDGES = 100_000
#: Class-level orders kept at most (generated creation sites); the oldest are forgotten first.
MAX_CLASS_EDGES = 20_000
#: Same-class predecessors remembered on one lock for the hot path (then forgotten and relearned).
MAX_PAIRS_PER_LOCK = 16
#: How long an acquiring thread waits for the checker's own lock before it
#: leaves this order to be checked at its next acquisition (a finalizer that
#: runs inside the checker must never deadlock the program with lockwatch).
GRAPH_LOCK_TIMEOUT = 0.5

_LOCKWATCH_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NO_GATES: frozenset[Any] = frozenset()  # shared: most orders are taken with no gate held


class _Edge:
    """One learned order ``held -> acquired``: the locks, the classes, and where it was first taken."""

    __slots__ = ("from_serial", "to_serial", "from_cls", "to_cls", "thread", "thread_token", "stack", "test",
                 "gates", "seq", "source", "from_ref", "to_ref")

    def __init__(
        self,
        from_lock: Any,
        to_lock: Any,
        thread: str,
        thread_token: int,
        stack: tuple[RawFrame, ...],
        gates: frozenset[int],
        *,
        from_cls: LockClass | None = None,
        to_cls: LockClass | None = None,
        source: str | None = None,
    ) -> None:
        self.from_serial: int = from_lock._serial if from_lock is not None else next(_foreign_ids)
        self.to_serial: int = to_lock._serial if to_lock is not None else next(_foreign_ids)
        self.from_cls = from_cls if from_cls is not None else from_lock._cls
        self.to_cls = to_cls if to_cls is not None else to_lock._cls
        self.thread = thread
        self.thread_token = thread_token
        self.stack = stack
        self.test = _test_name
        self.gates = gates  # serials of locks held before ``from`` every time (instance edges)
        self.seq = next(_edge_seq)
        self.source = source  # where an imported order was learned (None: learned here)
        # The locks themselves, while they live: reports label them by what holds them.
        # Same-class edges (there may be very many) find them through _tracked instead.
        same_class = from_lock is not None and to_lock is not None and from_lock._cls is to_lock._cls
        self.from_ref = None if from_lock is None or same_class else weakref.ref(from_lock)
        self.to_ref = None if to_lock is None or same_class else weakref.ref(to_lock)

    @property
    def from_id(self) -> str:
        return f"L{self.from_serial}"

    @property
    def to_id(self) -> str:
        return f"L{self.to_serial}"


class _ClassEdge:
    """An order between two lock classes, with the instance edge that first took it."""

    __slots__ = ("first", "gates", "generation")

    def __init__(self, first: _Edge, gates: frozenset[LockClass]) -> None:
        self.first = first
        self.gates = gates  # classes of the locks held before ``from`` every time
        self.generation = _generation  # the declared rules it was last checked against


@dataclass(frozen=True)
class ClassOrder:
    """A learned order between two lock classes (creation sites), as the baseline stores it."""

    from_site: ClassKey
    to_site: ClassKey
    from_label: str
    to_label: str
    thread: str
    test: str | None
    from_name: str | None = None  # the locks' names, if given: they tell locks of one site apart
    to_name: str | None = None


@dataclass
class Finding:
    """A lock-order problem found by an acquiring thread, handed to the reporter as plain data."""

    key: tuple[Any, ...]
    edges: list[_Edge]
    rule: str | None = None
    # Other names of the same problem: once any is reported, the others are not.
    aliases: tuple[tuple[Any, ...], ...] = ()
    message: str = ""
    new: bool = True  # not reported before (a refused order is found again at every attempt)
    found_at: float = 0.0  # monotonic time it was found (the reporter holds it back a moment)

    def involves_signal(self) -> bool:
        """Whether a lock class of the cycle turned out to be a signal (released by another thread)."""
        return any(edge.from_cls.signal or edge.to_cls.signal for edge in self.edges)
    # The LockOrderViolation / LockOrderWarning raised for it: its .report is filled in by the reporter.
    carriers: list[Any] = field(default_factory=list)
    # Labels by what holds the locks (lock serial -> label), read by the reporter as soon as it
    # sees the finding: the locks may be gone by the time it presents it.
    labels: dict[int, str] | None = None

    @property
    def keys(self) -> tuple[tuple[Any, ...], ...]:
        return (self.key, *self.aliases)


# --- state (guarded by _graph_lock, a raw lock held only for plain-data work) ------

_graph_lock = _allocate_raw_lock()
_class_succ: dict[LockClass, dict[LockClass, _ClassEdge]] = {}
_class_edge_ages: dict[tuple[LockClass, LockClass], None] = {}  # insertion order = age
_same_class: dict[LockClass, _Edge] = {}  # classes nested within themselves: the first such edge
# Same-class instance orders: serial -> serial -> edge, the reverse map, a topological order.
_inst_succ: dict[int, dict[int, _Edge]] = {}
_inst_pred: dict[int, set[int]] = {}
_inst_order: dict[int, int] = {}
_inst_edges: dict[tuple[int, int], _Edge] = {}  # insertion order = age
_dead: list[int] = []  # serials of instance-graph locks that died; drained under the graph lock
_tracked: dict[int, Any] = {}  # serial -> weakref whose callback queues the serial in _dead
_reported: set[tuple[Any, ...]] = set()  # keys of findings already reported
_first_reports: dict[tuple[Any, ...], Any] = {}  # finding key -> its report, once the reporter made it
_findings_by_report: dict[int, tuple[Report, Finding]] = {}  # id(report) -> (report, its finding)
_edge_seq = itertools.count(1)
# Imported orders have no lock instances here: negative serials never collide with local ones.
_foreign_ids = itertools.count(-1, -1)
_stacks: dict[tuple[RawFrame, ...], tuple[RawFrame, ...]] = {}  # interned: one copy per code path

# --- configuration in force (module globals: read without locking) ------------

_policy = "off"
_declared: dict[str, int] = {}
_declared_names: tuple[str, ...] = ()
_baseline_data: _baseline.Baseline | None = None
_test_name: str | None = None
_generation = 0  # bumped when the declared order or baseline changes: known orders are checked again


# --- activation -----------------------------------------------------------------


def activate(config: Config) -> None:
    """Apply ``config.order`` and the declared order / baseline; what was learned is kept."""
    global _policy, _declared, _declared_names, _baseline_data, _generation
    baseline = _baseline.load_baseline(config.baseline) if config.baseline else None
    rules_changed = tuple(config.declared_order) != _declared_names or baseline != _baseline_data
    if tuple(config.declared_order) != _declared_names:
        _declared_by_serial.clear()
        _declared_asked.clear()
        _declared_seen.clear()
    _declared_names = tuple(config.declared_order)
    _declared = {}
    for position, name in enumerate(_declared_names):
        _declared.setdefault(name, position)
    _baseline_data = baseline
    _policy = config.order
    if rules_changed:
        _generation += 1
        # Known contexts skip the checker: forget them so that known orders are
        # checked once more against the new rules.
        _forget_known_contexts()
    _state.order_checker = None if config.order == "off" else check_order


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
    with _graph_lock:
        _class_succ.clear()
        _class_edge_ages.clear()
        _same_class.clear()
        _inst_succ.clear()
        _inst_pred.clear()
        _inst_order.clear()
        _inst_edges.clear()
        _tracked.clear()
        _reported.clear()
        _first_reports.clear()
        _findings_by_report.clear()
        del _dead[:]
    _forget_known_contexts()


def _forget_known_contexts() -> None:
    stack = [_state.ROOT]
    while stack:
        ctx = stack.pop()
        ctx.ok.clear()
        ctx.same_ok.clear()
        stack.extend(list(ctx.children.values()))


def _after_fork_in_child() -> None:
    global _graph_lock
    # The parent's graph lock may have been held by a thread that does not exist here.
    _graph_lock = _allocate_raw_lock()


_state.on_fork_child(_after_fork_in_child)


# --- the checker (recording side) -------------------------------------------------------


def check_order(state: ThreadState, lock: Any) -> LockOrderWarning | None:
    """Called by a blocking acquire of ``lock`` whose class is new in the thread's held context.

    Returns a warning to issue once the acquire is complete (order="warn"),
    raises LockOrderViolation to refuse it (order="raise"), else None.
    """
    if state.inside or _is_internal(state):
        return None
    state.inside += 1
    try:
        try:
            return _check(state, lock)
        except LockOrderViolation:
            raise
        except Exception as exc:  # noqa: BLE001  (lockwatch's own failure must not fail the program)
            # Said by the reporter (no I/O here); this acquire goes on unchecked and
            # the same order is checked again next time: checking stays on.
            _state.hand_over(("internal-error", "lock-order checking", exc))
            return None
    finally:
        state.inside -= 1


def _is_internal(state: ThreadState) -> bool:
    return state.ident in _state.internal_thread_idents


def _check(state: ThreadState, lock: Any) -> LockOrderWarning | None:
    cls = lock._cls
    if cls.signal:
        return None
    # One consistent view of what this thread holds: another thread may release
    # one of its locks at any moment (a hand-off), and that must not matter here.
    state.drop_stale(unreachable=True)
    held = [other for other in state.held if other._owner is state and not other._cls.signal and other is not lock]
    ctx = state.ctx
    if not held:
        if ctx.depth:
            ctx.ok.add(cls)  # only hand-off locks held: nothing to learn in this context
        return None
    if not _graph_lock.acquire(True, GRAPH_LOCK_TIMEOUT):
        return None  # checked at the next acquisition instead
    try:
        findings, refuse, settled, known_pairs = _learn(state, lock, held)
    finally:
        _graph_lock.release()
    if not refuse and ctx is state.ctx:
        if settled:
            ctx.ok.add(cls)
        else:
            # Same-class nesting: the other classes are known here, and each ungated
            # instance pair is remembered on the lock (bounded), so the hot path can tell.
            ctx.same_ok.add(cls)
            preds = lock._preds
            if preds is None or len(preds) >= MAX_PAIRS_PER_LOCK:
                preds = lock._preds = {}
            preds.update(known_pairs)
    if not findings:
        return None
    message = findings[0].message
    carrier: Any = LockOrderViolation(message) if refuse else LockOrderWarning(message)
    now = monotonic()
    for finding in findings:
        if finding.new:
            finding.found_at = now
            finding.carriers.append(carrier)
            _state.hand_over(("lock-order", finding))
        else:
            # Refused again: the report made the first time is this one's too.
            carrier.report = _first_reports.get(finding.key)
    if refuse:
        raise carrier
    warning: LockOrderWarning = carrier
    return warning


def _forget_oldest_class_edges() -> None:
    """Bound memory (100k generated creation sites): the oldest tenth of class orders is forgotten."""
    for key in list(itertools.islice(_class_edge_ages, MAX_CLASS_EDGES // 10)):
        del _class_edge_ages[key]
        successors = _class_succ.get(key[0])
        if successors is not None:
            successors.pop(key[1], None)
            if not successors:
                del _class_succ[key[0]]
    _same_class.clear()
    if len(_stacks) > MAX_CLASS_EDGES:
        _stacks.clear()


def _learn(
    state: ThreadState, lock: Any, held: list[Any]
) -> tuple[list[Finding], bool, bool, list[tuple[int, frozenset[int]]]]:
    """Record the orders ``held -> lock``.

    Returns the findings to report, whether to refuse the acquire, whether the
    context is settled (no same-class nesting), and for the same-class held
    locks whose order before ``lock`` is known: (serial, gates of that order).
    """
    _drain_dead()
    raising = _policy == "raise"
    cls = lock._cls
    findings: list[Finding] = []
    updates: list[Any] = []
    stack: tuple[RawFrame, ...] | None = None
    thread_name = ""
    # Same-class nesting is judged per instance, so that context is never settled.
    settled = all(other._cls is not cls for other in held)
    for index, before in enumerate(held):
        before_cls = before._cls
        gate_classes = frozenset(other._cls for other in held[:index]) if index else _NO_GATES
        if before_cls is cls:
            gates = frozenset(other._serial for other in held[:index]) if index else _NO_GATES
            existing = _inst_succ.get(before._serial, {}).get(lock._serial)
            if existing is not None and not (existing.gates - gates):
                continue
        else:
            known = _class_succ.get(before_cls, {}).get(cls)
            if known is not None and known.gates <= gate_classes and known.generation == _generation:
                continue
            gates = _NO_GATES
            existing = None
        if stack is None:
            stack = _acquire_stack()
            thread_name = _thread_name(state)
        candidate = _Edge(before, lock, thread_name, state.token, stack, gates)
        new = _cycle_findings(candidate, gate_classes, existing)
        rule = _declared_rule(before, lock)
        if rule is not None:
            # One report for one wrong acquire: the broken rule, with the cycle it closes if any.
            cycle = new[0] if new else None
            new = [
                Finding(
                    ("declared", before_cls.key, cls.key),
                    cycle.edges if cycle is not None else [candidate],
                    rule,
                    aliases=cycle.keys if cycle is not None else (),
                )
            ]
        for finding in new:
            finding.new = not any(key in _reported for key in finding.keys)
            if finding.new or raising:  # a refused order is refused every time, reported once
                finding.message = _message(finding)
                findings.append(finding)
                _reported.update(finding.keys)
        updates.append((before, candidate, existing, gate_classes))
    if raising and findings:
        # The acquire is refused: it did not happen, so nothing of it is learned.
        return findings, True, False, []
    for before, candidate, existing, gate_classes in updates:
        _record(before, lock, candidate, existing, gate_classes)
    known_pairs = []
    if not settled:
        for before in held:
            if before._cls is cls:
                edge = _inst_succ.get(before._serial, {}).get(lock._serial)
                if edge is not None:
                    known_pairs.append((before._serial, edge.gates))
    return findings, False, settled, known_pairs


def _record(before: Any, lock: Any, candidate: _Edge, existing: _Edge | None, gate_classes: frozenset[LockClass]) -> None:
    if before._cls is lock._cls:
        _same_class.setdefault(lock._cls, candidate)
        if existing is not None:
            existing.gates = existing.gates & candidate.gates
        else:
            _add_instance_edge(before, lock, candidate)
        return
    successors = _class_succ.setdefault(before._cls, {})
    known = successors.get(lock._cls)
    if known is None:
        successors[lock._cls] = _ClassEdge(candidate, gate_classes)
        _class_edge_ages[(before._cls, lock._cls)] = None
        if len(_class_edge_ages) > MAX_CLASS_EDGES:
            _forget_oldest_class_edges()
    else:
        known.gates = known.gates & gate_classes
        known.generation = _generation


# --- same-class instance orders: incremental topological order ------------------------


def _add_instance_edge(before: Any, lock: Any, edge: _Edge) -> None:
    u, v = before._serial, lock._serial
    for serial, item in ((u, before), (v, lock)):
        if serial not in _inst_order:
            # A node without edges fits anywhere: it starts at its creation order, so that
            # locks taken in the order they were made (sorted ids) never need a reorder.
            _inst_order[serial] = serial
            _track(serial, item)
    if _inst_order[u] > _inst_order[v]:
        _reorder(u, v)
    _inst_succ.setdefault(u, {})[v] = edge
    _inst_pred.setdefault(v, set()).add(u)
    _inst_edges[(u, v)] = edge
    if len(_inst_edges) > MAX_INSTANCE_EDGES:
        for key in list(itertools.islice(_inst_edges, MAX_INSTANCE_EDGES // 10)):
            _remove_instance_edge(*key)


def _reorder(u: int, v: int) -> None:
    """Pearce-Kelly: restore the topological order after adding u -> v with order[u] > order[v].

    Only nodes between the two positions move. Never called for an edge that
    closes a cycle (those were found and reported, or refused, before).
    """
    upper, lower = _inst_order[u], _inst_order[v]
    forward = _reach(v, lambda n: _inst_order[n] < upper, lambda n: _inst_succ.get(n, {}))
    backward = _reach(u, lambda n: _inst_order[n] > lower, lambda n: _inst_pred.get(n, ()))
    if u in forward:  # a cycle after all (e.g. gated): keep the order as it is
        return
    nodes = sorted(backward, key=_inst_order.__getitem__) + sorted(forward, key=_inst_order.__getitem__)
    positions = sorted(_inst_order[n] for n in nodes)
    for node, position in zip(nodes, positions, strict=False):
        _inst_order[node] = position


def _reach(start: int, inside: Any, neighbours: Any) -> set[int]:
    """The nodes reachable from ``start`` through nodes for which ``inside`` holds."""
    seen = {start}
    todo = [start]
    while todo:
        node = todo.pop()
        for other in neighbours(node):
            if other not in seen and inside(other):
                seen.add(other)
                todo.append(other)
    return seen


def _remove_instance_edge(u: int, v: int) -> None:
    _inst_edges.pop((u, v), None)
    successors = _inst_succ.get(u)
    if successors is not None:
        successors.pop(v, None)
        if not successors:
            del _inst_succ[u]
    predecessors = _inst_pred.get(v)
    if predecessors is not None:
        predecessors.discard(u)
        if not predecessors:
            del _inst_pred[v]


def _track(serial: int, lock: Any) -> None:
    """Watch ``lock`` so that its node leaves the instance graph when it dies."""
    if serial not in _tracked:
        # The callback may run inside any allocation, even under _graph_lock:
        # it only appends (atomic); the checker drains the list.
        _tracked[serial] = weakref.ref(lock, functools.partial(_died, serial))


def _died(serial: int, _ref: Any) -> None:
    _dead.append(serial)


def _drain_dead() -> None:
    """Remove locks that died from the instance graph (called with _graph_lock held)."""
    while _dead:
        serial = _dead.pop()
        _tracked.pop(serial, None)
        _inst_order.pop(serial, None)
        for v in list(_inst_succ.get(serial, ())):
            _remove_instance_edge(serial, v)
        for u in list(_inst_pred.get(serial, ())):
            _remove_instance_edge(u, serial)


# --- cycles -----------------------------------------------------------------------------


def _cycle_findings(candidate: _Edge, gate_classes: frozenset[LockClass], existing: _Edge | None) -> list[Finding]:
    """The cycle the order ``candidate`` closes, if any (instance level for one class, else class level)."""
    if _suppressed(candidate):
        return []
    if candidate.from_cls is candidate.to_cls:
        found = _instance_cycle(candidate, existing)
    else:
        found = _class_cycle(candidate, gate_classes)
    return [] if found is None else [found]


def _instance_cycle(candidate: _Edge, existing: _Edge | None) -> Finding | None:
    u, v = candidate.from_serial, candidate.to_serial
    if u not in _inst_order or v not in _inst_order:
        return None
    upper = _inst_order[u]
    if upper < _inst_order[v]:
        return None  # agrees with the topological order: no path v -> u exists
    # A path v -> u can only run through nodes ordered between them (Pearce-Kelly's bound).
    inside = _reach(v, lambda n: _inst_order[n] <= upper, lambda n: _inst_succ.get(n, {}))
    if u not in inside:
        return None

    def successors(node: int) -> Iterable[int]:
        return [other for other in _inst_succ.get(node, {}) if other in inside]

    for path in _paths(v, u, successors):
        edges = [_inst_succ[a][b] for a, b in zip(path, path[1:], strict=False)] + [candidate]
        if _reportable(edges, [set(edge.gates) for edge in edges]):
            aliases = (_code_key(edges),)
            return Finding(("instance", _canonical(path)), edges, aliases=aliases)
    return None


def _class_cycle(candidate: _Edge, gate_classes: frozenset[LockClass]) -> Finding | None:
    from_cls, to_cls = candidate.from_cls, candidate.to_cls
    known = _class_succ.get(from_cls, {}).get(to_cls)
    gates = gate_classes if known is None else known.gates & gate_classes

    def successors(node: LockClass) -> Iterable[LockClass]:
        return [other for other, edge in _class_succ.get(node, {}).items()
                if not other.signal and not _suppressed(edge.first)]

    for path in _paths(to_cls, from_cls, successors):
        class_edges = [_class_succ[a][b] for a, b in zip(path, path[1:], strict=False)]
        edges = [edge.first for edge in class_edges] + [candidate]
        gate_sets = [set(edge.gates) for edge in class_edges] + [set(gates)]
        if _reportable(edges, gate_sets):
            return Finding(("class", _canonical([c.key for c in path])), edges, aliases=(_code_key(edges),))
    return None


def _paths(start: Any, end: Any, successors: Any) -> Iterator[list[Any]]:
    """Up to MAX_PATHS simple paths start -> end: the shortest first (BFS), then others (DFS)."""
    parents: dict[Any, Any] = {start: None}
    frontier = [start]
    while frontier and end not in parents:
        next_frontier = []
        for node in frontier:
            for other in successors(node):
                if other not in parents:
                    parents[other] = node
                    next_frontier.append(other)
        frontier = next_frontier
    if end not in parents:
        return
    shortest = [end]
    while shortest[-1] is not start and shortest[-1] != start:
        shortest.append(parents[shortest[-1]])
    shortest.reverse()
    yield shortest
    # Alternatives, bounded: a path whose edges share a gate may hide one that does not.
    count = 1
    stack: list[tuple[Any, list[Any]]] = [(start, [start])]
    while stack and count < MAX_PATHS:
        node, path = stack.pop()
        for other in successors(node):
            if other == end:
                candidate = [*path, end]
                if candidate != shortest:
                    count += 1
                    yield candidate
                continue
            if other not in path and other in parents and len(path) < 12:
                stack.append((other, [*path, other]))


def _reportable(edges: Sequence[_Edge], gate_sets: Sequence[set[Any]]) -> bool:
    """False when one common gate lock guards every edge, or the baseline accepts them all."""
    common = set.intersection(*gate_sets) if gate_sets else set()
    if common:
        return False  # every order was taken while holding the same gate: they cannot interleave
    baseline = _baseline_data
    if baseline is not None and all(
        baseline.knows(_key(edge.from_cls), _key(edge.to_cls), edge.from_cls.name, edge.to_cls.name) for edge in edges
    ):
        return False
    return True


def _suppressed(edge: _Edge) -> bool:
    baseline = _baseline_data
    return baseline is not None and baseline.suppresses(_key(edge.from_cls), _key(edge.to_cls))


def _key(cls: LockClass) -> ClassKey | None:
    site = cls.site
    return None if site is None else (site[0], site[1])


def _canonical(nodes: Sequence[Any]) -> tuple[Any, ...]:
    """A cycle's nodes rotated to a fixed start, so each distinct cycle has one key."""
    ordered = list(nodes)
    start = min(range(len(ordered)), key=lambda i: repr(ordered[i]))
    return tuple(ordered[start:] + ordered[:start])


def _code_key(edges: Sequence[_Edge]) -> tuple[Any, ...]:
    """A cycle named by its lock classes and the lines that took each order."""
    steps = [(edge.from_cls.key, edge.to_cls.key, edge.stack[-1][:2] if edge.stack else None) for edge in edges]
    return ("code", _canonical(steps))


# --- declared order -----------------------------------------------------------------

# A declared name matches a lock by its name=, or by the label lockwatch computes for it
# (``ResourceManager.locks['db']``, ``Account.lock``, ``app.settings_lock``: the whole label or
# its end after a dot). Labels are read on the reporting side; what they bind is kept here so
# the recording side can judge later acquisitions from data in hand.
_declared_by_serial: dict[int, tuple[int, str]] = {}  # lock serial -> (declared position, label)
_declared_asked: set[int] = set()  # lock serials handed to the reporter to be labelled
_declared_seen: set[str] = set()  # declared names that matched a lock at least once
MAX_DECLARED_LABELLED = 10_000


def _declared_position(name: str | None, serial: int) -> tuple[int, str] | None:
    """The declared position of a lock, by its name, else by a label the reporter matched."""
    if name is not None:
        position = _declared.get(name)
        if position is not None:
            _declared_seen.add(name)
            return position, name
    return _declared_by_serial.get(serial)


def _declared_rule(before: Any, lock: Any) -> str | None:
    """The declared rule that taking ``lock`` while holding ``before`` breaks, if any."""
    held_rank, rank = before._cls.rank, lock._cls.rank
    if held_rank is not None and rank is not None and rank <= held_rank:
        if rank == held_rank:
            return (
                f'declared order: "{_class_label(lock._cls)}" (rank {rank}) and "{_class_label(before._cls)}" '
                f"(rank {held_rank}) have the same rank and must not be held together"
            )
        return (
            f'declared order: "{_class_label(lock._cls)}" (rank {rank}) must be taken before '
            f'"{_class_label(before._cls)}" (rank {held_rank})'
        )
    if _declared:
        held = _declared_position(before._cls.name, before._serial)
        taken = _declared_position(lock._cls.name, lock._serial)
        if held is not None and taken is not None:
            if taken[0] < held[0]:
                return _declared_text(taken[1], held[1])
        else:
            # Not named: the reporter reads what holds these locks, once each (see check_declared_labels).
            asked = [other for other in (before, lock) if other._cls.name is None and other._serial not in _declared_asked]
            if asked and len(_declared_asked) < MAX_DECLARED_LABELLED:
                _declared_asked.update(other._serial for other in asked)
                _state.hand_over(("declared-labels", weakref.ref(before), weakref.ref(lock)))
    return None


def _declared_text(first: str, then: str) -> str:
    sequence = ", ".join(f'"{declared}"' for declared in _declared_names)
    return f'declared order: "{first}" must be taken before "{then}" (declared_order = [{sequence}])'


def _declared_match(label: str) -> int | None:
    for name, position in _declared.items():
        if label == name or label.endswith("." + name):
            return position
    return None


def check_declared_labels(before_ref: Any, lock_ref: Any) -> Finding | None:
    """Reporting side: label two unnamed locks nested in a new order, bind declared names to them,
    and report that order if it broke the declared order.

    The acquisition went on (its thread could not read labels): such an order is
    reported, not refused. Later acquisitions of these locks are judged on the
    recording side from the bound positions, and refused under order="raise".
    """
    from lockwatch import _snapshot

    before, lock = before_ref(), lock_ref()
    if before is None or lock is None or not _declared:
        return None
    attributes = _snapshot.attribute_labels([before, lock])
    for other in (before, lock):
        if other._cls.name is not None or other._serial in _declared_by_serial:
            continue
        label = _snapshot.lock_label(other, attributes.get(id(other)))
        position = _declared_match(label)
        if position is not None and len(_declared_by_serial) < MAX_DECLARED_LABELLED:
            _declared_by_serial[other._serial] = (position, label)
            _declared_seen.add(_declared_names[position])
            _track_declared(other)
    held = _declared_position(before._cls.name, before._serial)
    taken = _declared_position(lock._cls.name, lock._serial)
    if held is None or taken is None or taken[0] >= held[0]:
        return None
    key = ("declared", before._serial, lock._serial)
    if key in _reported:
        return None
    _reported.add(key)
    with _graph_lock:
        edge = _class_succ.get(before._cls, {}).get(lock._cls)
        first = edge.first if edge is not None else _inst_succ.get(before._serial, {}).get(lock._serial)
    if first is None:
        return None
    finding = Finding(key, [first], _declared_text(taken[1], held[1]), found_at=monotonic())
    finding.message = _message(finding)
    return finding


def _track_declared(lock: Any) -> None:
    """Forget a lock's bound position when it dies (its serial is never reused, but memory is)."""
    serial = lock._serial
    weakref.finalize(lock, _declared_by_serial.pop, serial, None)


def unmatched_declared_names() -> list[str]:
    """Declared names that no lock ever matched, by name= or by label (said at exit)."""
    return [name for name in _declared_names if name not in _declared_seen]


# --- plain-data helpers for the recording side -------------------------------------------


def _acquire_stack() -> tuple[RawFrame, ...]:
    """The acquiring thread's stack without lockwatch's frames, outermost first (interned).

    Plain (file, line, function) tuples: Frame values and source lines are only
    made when a report is built, on the reporter's thread.
    """
    frame: Any = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_LOCKWATCH_DIR):
        frame = frame.f_back
    frames: list[RawFrame] = []
    while frame is not None and len(frames) < STACK_LIMIT:
        code = frame.f_code
        frames.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    frames.reverse()
    stack = tuple(frames)
    return _stacks.setdefault(stack, stack)


def _thread_name(state: ThreadState) -> str:
    # Called by the thread itself: its live name (it may have been renamed since
    # its state was made) is recorded, so reports made after it ends name it too.
    name = _state.python_thread_name(state.ident)
    if name is not None:
        state.name = name
    return state.name or f"thread-{state.ident}"


def _class_label(cls: LockClass) -> str:
    """A lock's label from its class alone: its name, else where it was created."""
    if cls.name:
        return cls.name
    site = cls.site
    return f"Lock from {os.path.basename(site[0])}:{site[1]}" if site else "Lock"


def _lock_of(edge: _Edge, end: str) -> Any:
    """The live lock at one end of an edge, or None."""
    ref = edge.from_ref if end == "from" else edge.to_ref
    if ref is None:
        ref = _tracked.get(edge.from_serial if end == "from" else edge.to_serial)
    return None if ref is None else ref()


def _edge_label(edge: _Edge, end: str) -> str:
    cls = edge.from_cls if end == "from" else edge.to_cls
    lock = _lock_of(edge, end)
    if lock is not None and not cls.name:
        kind = type(lock).__name__
        site = cls.site
        return f"{kind} from {os.path.basename(site[0])}:{site[1]}" if site else f"{kind} {lock.id}"
    return _class_label(cls)


def _message(finding: Finding) -> str:
    """The finding in one paragraph, from data in hand (no labels by attribute, no source lines)."""
    edges = [
        OrderEdge(
            from_=edge.from_id, to=edge.to_id, thread=edge.thread,
            from_label=_edge_label(edge, "from"), to_label=_edge_label(edge, "to"), test=edge.test,
        )
        for edge in finding.edges
    ]
    _distinguish(edges)
    single = len({edge.thread_token for edge in finding.edges}) == 1
    return _summary(edges, finding.rule, single)


def _distinguish(edges: list[OrderEdge]) -> None:
    """Locks that read alike in one cycle get their ids: ``Account.lock (L4)``."""
    labels: dict[str, set[str]] = {}
    for edge in edges:
        for lock_id, label in ((edge.from_, edge.from_label), (edge.to, edge.to_label)):
            labels.setdefault(label or "", set()).add(lock_id)
    for index, edge in enumerate(edges):
        from_label, to_label = edge.from_label or "", edge.to_label or ""
        if len(labels[from_label]) > 1:
            from_label = f"{from_label} ({edge.from_})"
        if len(labels[to_label]) > 1:
            to_label = f"{to_label} ({edge.to})"
        edges[index] = OrderEdge(
            from_=edge.from_, to=edge.to, thread=edge.thread, stack=edge.stack,
            from_label=from_label, to_label=to_label, test=edge.test, gates=edge.gates,
        )


# --- reporting side ---------------------------------------------------------------


def _live_locks(finding: Finding) -> dict[int, Any]:
    live: dict[int, Any] = {}
    for edge in finding.edges:
        for serial, end in ((edge.from_serial, "from"), (edge.to_serial, "to")):
            lock = _lock_of(edge, end)
            if lock is not None:
                live[serial] = lock
    return live


def prepare_labels(finding: Finding) -> None:
    """Read the labels of a finding's locks now, while they live (reporting side; once per finding).

    The reporter holds a finding back a moment before presenting it; a short
    program may have dropped the objects holding its locks by then.
    """
    if finding.labels is not None:
        return
    from lockwatch import _snapshot

    live = _live_locks(finding)
    attributes = _snapshot.attribute_labels(live.values())
    finding.labels = {serial: _snapshot.lock_label(lock, attributes.get(id(lock))) for serial, lock in live.items()}


def build_report(finding: Finding) -> Report:
    """The lock-order Report of a finding (on lockwatch's own thread: labels, stacks, source lines)."""
    from lockwatch import _snapshot

    live = _live_locks(finding)
    attributes = _snapshot.attribute_labels(live.values())
    labels = dict(finding.labels or {})
    labels.update({serial: _snapshot.lock_label(lock, attributes.get(id(lock))) for serial, lock in live.items()})
    edges = [
        _order_edge(
            edge,
            resolve_code=True,
            from_label=labels.get(edge.from_serial) or _edge_label(edge, "from"),
            to_label=labels.get(edge.to_serial) or _edge_label(edge, "to"),
        )
        for edge in finding.edges
    ]
    _distinguish(edges)
    single = len({edge.thread_token for edge in finding.edges}) == 1
    summary = _summary(edges, finding.rule, single)
    report = _snapshot.take("lock-order", summary=summary)
    known = {info.id for info in report.locks}
    final_labels: dict[str, str | None] = {}
    for order_edge in edges:
        final_labels[order_edge.from_] = order_edge.from_label
        final_labels[order_edge.to] = order_edge.to_label
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
                label=final_labels.get(lock.id) or labels[serial],
                rank=lock.rank,
            )
        )
    return report.replace(
        locks=report.locks + tuple(extra),
        order_cycles=(tuple(edges),),
        rule=finding.rule,
        single_thread=single and len(edges) > 1,
    )


def remember_report(finding: Finding, report: Report) -> None:
    """Keep a finding's report: later refusals of the same order carry it too."""
    if len(_first_reports) < 10_000:
        _first_reports[finding.key] = report
        _findings_by_report[id(report)] = (report, finding)


def withdrawn(report: Report) -> bool:
    """Whether a lock-order report no longer holds: a lock of its cycle was since released by
    another thread, so it is a hand-off lock (a semaphore, a readers-writer resource), not a mutex."""
    entry = _findings_by_report.get(id(report))
    return entry is not None and entry[0] is report and entry[1].involves_signal()


def _order_edge(edge: _Edge, *, resolve_code: bool, from_label: str | None = None, to_label: str | None = None) -> OrderEdge:
    # In dumps too, a stack starts at the program's first line (not lockwatch's runner, not threading's bootstrap).
    stack = tuple(user_frames(
        Frame(file, line, function, (linecache.getline(file, line).strip() or None) if resolve_code else None)
        for file, line, function in edge.stack
    ))
    return OrderEdge(
        from_=edge.from_id,
        to=edge.to_id,
        thread=edge.thread,
        stack=stack,
        from_label=from_label or _edge_label(edge, "from"),
        to_label=to_label or _edge_label(edge, "to"),
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


# --- public snapshots -----------------------------------------------------------


def _live_edges() -> list[_Edge]:
    """Every edge whose locks still live: class-level first edges and same-class instance edges."""
    edges = [edge.first for successors in _class_succ.values() for edge in successors.values()]
    edges.extend(_inst_edges.values())
    alive = []
    for edge in edges:
        if edge.source is not None:
            continue
        if _lock_of(edge, "from") is None or _lock_of(edge, "to") is None:
            continue
        alive.append(edge)
    alive.sort(key=lambda e: e.seq)
    return alive


def order_edges() -> list[OrderEdge]:
    """The learned orders between live lock instances, as values (oldest first).

    One edge per class-level order (the acquisition that first took it), and
    every same-class order between two instances.
    """
    with _graph_lock:
        _drain_dead()
        edges = _live_edges()
    return [_order_edge(edge, resolve_code=False) for edge in edges]


def class_orders() -> list[ClassOrder]:
    """The learned orders between lock classes (creation sites), same-class nesting included."""
    with _graph_lock:
        found = [(edge.first, a, b) for a, successors in _class_succ.items() for b, edge in successors.items()]
        found.extend((edge, cls, cls) for cls, edge in _same_class.items())
    result = []
    for edge, a, b in sorted(found, key=lambda item: item[0].seq):
        from_key, to_key = _key(a), _key(b)
        if from_key is None or to_key is None:
            continue
        result.append(
            ClassOrder(
                from_site=from_key, to_site=to_key,
                from_label=_edge_label(edge, "from"), to_label=_edge_label(edge, "to"),
                thread=edge.thread, test=edge.test, from_name=a.name, to_name=b.name,
            )
        )
    return result


def export_class_orders(*, include_imported: bool = False) -> list[dict[str, Any]]:
    """The learned orders between lock classes as JSON-ready records, oldest first.

    One record per class-level order (``import_class_orders`` elsewhere takes them):
    ``from``/``to`` creation sites ``[file, line]``, ``from_label``/``to_label``,
    ``thread``, ``test``, ``stack`` (``[file, line, function]`` frames, outermost
    first), ``gates`` (sites of the locks held before ``from`` every time) and
    ``source`` (None for orders learned here). Same-class nesting is left out (it is
    judged per instance), and so are imported orders unless ``include_imported``.
    """
    with _graph_lock:
        found = [
            (edge, a, b)
            for a, successors in _class_succ.items()
            for b, edge in successors.items()
            if include_imported or edge.first.source is None
        ]
    found.sort(key=lambda item: item[0].first.seq)
    records = []
    for class_edge, a, b in found:
        from_key, to_key = _key(a), _key(b)
        if from_key is None or to_key is None:
            continue
        records.append(
            {
                "from": list(from_key),
                "to": list(to_key),
                "from_label": _edge_label(class_edge.first, "from"),
                "to_label": _edge_label(class_edge.first, "to"),
                "thread": class_edge.first.thread,
                "test": class_edge.first.test,
                "stack": [list(frame) for frame in class_edge.first.stack],
                "gates": sorted(list(key) for key in (_key(gate) for gate in class_edge.gates) if key is not None),
                "source": class_edge.first.source,
            }
        )
    return records


# Classes made for imported orders: kept alive here (nothing else refers to them).
_imported_classes: dict[tuple[Any, ...], LockClass] = {}


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
    with _graph_lock:
        for from_key, to_key, record, stack, gate_keys in parsed:
            if from_key == to_key:
                continue
            from_cls, to_cls = _class_for(from_key, record["from_label"]), _class_for(to_key, record["to_label"])
            if to_cls in _class_succ.get(from_cls, {}):
                continue
            edge = _Edge(None, None, f"{record['thread']} ({source})", next(_foreign_ids), stack, frozenset(),
                         from_cls=from_cls, to_cls=to_cls, source=source)
            edge.test = record["test"]
            gates = frozenset(_class_for(key, None) for key in gate_keys)
            _class_succ.setdefault(from_cls, {})[to_cls] = _ClassEdge(edge, gates)
    _forget_known_contexts()


def _class_for(site: ClassKey, label: str | None) -> LockClass:
    """The local class of unnamed locks created at ``site`` (kept alive for imported orders)."""
    cls = _state.lock_class((site[0], site[1], "?"), None, None, "Lock")
    _imported_classes[cls.key] = cls
    return cls


def _parse_record(
    record: Mapping[str, Any],
) -> tuple[ClassKey, ClassKey, Mapping[str, Any], tuple[RawFrame, ...], list[ClassKey]]:
    """Check one exported record; returns its sites, stack and gates as hashable tuples."""
    try:
        from_key = _site_key(record["from"])
        to_key = _site_key(record["to"])
        for key in ("from_label", "to_label", "thread"):
            if not isinstance(record[key], str):
                raise TypeError(f"{key} is not a string")
        if record["test"] is not None and not isinstance(record["test"], str):
            raise TypeError("test is not a string")
        stack = tuple((str(file), int(line), str(function)) for file, line, function in record["stack"])
        gates = [_site_key(gate) for gate in record.get("gates", ())]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a lock-order record ({exc!r}): {record!r}") from None
    return from_key, to_key, record, stack, gates


def _site_key(value: Any) -> ClassKey:
    file, line = value
    if not isinstance(file, str) or isinstance(line, bool) or not isinstance(line, int):
        raise TypeError(f"not a [file, line] site: {value!r}")
    return (file, line)


def graph_size() -> tuple[int, int]:
    """(nodes, edges) of the same-class instance graph, after forgetting dead locks."""
    with _graph_lock:
        _drain_dead()
        return len(_inst_order), len(_inst_edges)


__all__: list[str] = [
    "ClassOrder",
    "Finding",
    "activate",
    "build_report",
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
