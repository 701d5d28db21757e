"""Unit tests of the pure cycle finding over hand-made wait-for data."""

from __future__ import annotations

from lockwatch._detect import Wait, bystanders, describe_cycle, find_cycles, wait_for_graph, waits_in_report
from lockwatch._model import CycleStep, LockInfo, Report, ThreadInfo


def steps(*pairs: tuple[int, str]) -> tuple[CycleStep, ...]:
    return tuple(CycleStep(thread, lock) for thread, lock in pairs)


def test_no_waits_no_cycles() -> None:
    assert find_cycles({}) == []
    assert bystanders({}, []) == []


def test_graph_has_thread_lock_thread_edges() -> None:
    graph = wait_for_graph({1: Wait("L1", 2), 3: Wait("L9", None)})
    assert set(graph.edges) == {(("thread", 1), ("lock", "L1")), (("lock", "L1"), ("thread", 2)), (("thread", 3), ("lock", "L9"))}


def test_chain_without_cycle() -> None:
    waits = {1: Wait("L2", 2), 2: Wait("L3", 3), 4: Wait("L5", None)}
    assert find_cycles(waits) == []


def test_two_thread_cycle_starts_at_smallest_thread() -> None:
    waits = {20: Wait("La", 10), 10: Wait("Lb", 20)}
    assert find_cycles(waits) == [steps((10, "Lb"), (20, "La"))]


def test_five_thread_cycle_rotation_and_order() -> None:
    # 50 -> 30 -> 40 -> 10 -> 20 -> 50
    owners = {50: 30, 30: 40, 40: 10, 10: 20, 20: 50}
    waits = {t: Wait(f"L{o}", o) for t, o in owners.items()}
    (cycle,) = find_cycles(waits)
    assert [s.thread for s in cycle] == [10, 20, 50, 30, 40]
    # Each step's lock is owned by the next step's thread.
    for index, step in enumerate(cycle):
        assert waits[step.thread].owner == cycle[(index + 1) % len(cycle)].thread


def test_self_cycle_of_one() -> None:
    waits = {7: Wait("L1", 7), 8: Wait("L1", 7)}
    assert find_cycles(waits) == [steps((7, "L1"))]
    assert bystanders(waits, find_cycles(waits)) == [8]


def test_two_independent_cycles_sorted() -> None:
    waits = {5: Wait("A", 6), 6: Wait("B", 5), 1: Wait("C", 2), 2: Wait("D", 1)}
    assert find_cycles(waits) == [steps((1, "C"), (2, "D")), steps((5, "A"), (6, "B"))]


def test_bystanders_are_transitive_and_exclude_the_cycle() -> None:
    waits = {
        1: Wait("A", 2),
        2: Wait("B", 1),
        3: Wait("A", 2),  # directly behind the cycle
        4: Wait("C", 3),  # behind a bystander
        5: Wait("D", 6),  # blocked, but on something else entirely
    }
    cycles = find_cycles(waits)
    assert cycles == [steps((1, "A"), (2, "B"))]
    assert bystanders(waits, cycles) == [3, 4]


def _report() -> Report:
    threads = (
        ThreadInfo(id=1, name="left", daemon=False, holding=("L1",), waiting_for="L2"),
        ThreadInfo(id=2, name="right", daemon=False, holding=("L2",), waiting_for="L1"),
        ThreadInfo(id=3, name="idle", daemon=True),
    )
    locks = (
        LockInfo(id="L1", kind="Lock", name="a", site=None, owner=1, count=1, waiters=(2,)),
        LockInfo(id="L2", kind="Lock", name="b", site=None, owner=2, count=1, waiters=(1,)),
    )
    return Report(kind="deadlock", created="now", pid=1, argv=(), python="3", threads=threads, locks=locks)


def test_waits_in_report_and_description() -> None:
    report = _report()
    waits = waits_in_report(report)
    assert waits == {1: Wait("L2", 2), 2: Wait("L1", 1)}
    (cycle,) = find_cycles(waits)
    assert describe_cycle(cycle, report) == (
        'thread "left" waits for lock "b" held by thread "right", which waits for lock "a" held by "left"'
    )


def test_description_of_a_cycle_of_one() -> None:
    report = _report()
    text = describe_cycle(steps((1, "L1")), report)
    assert text.startswith('thread "left" waits for lock "a", which it already holds itself')
