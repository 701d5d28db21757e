"""Learned lock order: potential deadlocks reported from runs that never hung, and no false alarms."""

from __future__ import annotations

import gc
import json
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _order_helpers import order_warnings

import lockwatch
from lockwatch import _dump, _events, _order, _state, _watchdog
from lockwatch._errors import LockOrderViolation, LockOrderWarning

pytestmark = pytest.mark.timeout(30)


def run_in_thread(target: Callable[[], Any], name: str) -> None:
    """Run ``target`` in its own thread and wait for it (threads never overlap)."""
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target()
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=body, name=name)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), f"thread {name} hung"
    if errors:
        raise errors[0]


def dumps(directory: Path) -> list[dict[str, Any]]:
    assert _watchdog.flush()  # dumps are written by lockwatch's own thread
    return [json.loads(path.read_text()) for path in sorted(directory.glob("lock-order-*.json"))]


def edges_between(*locks: Any) -> list[tuple[str | None, str | None]]:
    """Learned orders among these locks only (starting a thread takes locks of its own)."""
    ids = {lock.id for lock in locks}
    return [(e.from_label, e.to_label) for e in _order.order_edges() if e.from_ in ids and e.to in ids]


def nest(outer: Any, inner: Any) -> Callable[[], None]:
    def take_both() -> None:
        with outer:
            with inner:
                pass

    return take_both


def test_two_orders_in_two_threads_are_reported_with_both_stacks(watch: Any, tmp_path: Path) -> None:
    watch()
    a = lockwatch.Lock(name="a")
    b = lockwatch.Lock(name="b")

    def forward() -> None:
        with a:
            with b:
                pass

    def backward() -> None:
        with b:
            with a:  # the line the warning points at
                pass

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run_in_thread(forward, "t1")
        assert order_warnings(record) == []
        run_in_thread(backward, "t2")

    [warning] = order_warnings(record)
    [caught] = [w for w in record if w.message is warning]
    assert caught.filename == __file__
    assert "with a:" in Path(__file__).read_text().splitlines()[caught.lineno - 1]
    assert str(warning) == (
        'lock "a" -> lock "b" (thread t1) and lock "b" -> lock "a" (thread t2): these two orders can deadlock'
    )
    report = warning.report
    assert report.kind == "lock-order"
    assert report.single_thread is False
    [cycle] = report.order_cycles
    assert [(e.from_label, e.to_label, e.thread) for e in cycle] == [("a", "b", "t1"), ("b", "a", "t2")]
    assert cycle[0].from_ == a.id and cycle[0].to == b.id
    assert cycle[0].stack[-1].function == "forward" and cycle[0].stack[-1].code == "with b:"
    assert cycle[1].stack[-1].function == "backward" and cycle[1].stack[-1].code == "with a:  # the line the warning points at"

    # One dump of kind lock-order, with a .dot beside it, holding both edges and stacks.
    [dump] = dumps(tmp_path / "dumps")
    assert dump["kind"] == "lock-order"
    [edges] = dump["order_cycles"]
    assert [(e["from"], e["to"], e["thread"]) for e in edges] == [(a.id, b.id, "t1"), (b.id, a.id, "t2")]
    assert [e["stack"][-1]["function"] for e in edges] == ["forward", "backward"]
    assert _dump.wait_drawings(30)  # pictures are drawn by a child process
    assert list((tmp_path / "dumps").glob("lock-order-*.dot"))


def test_report_is_published_and_printed(watch: Any, capsys: pytest.CaptureFixture[str]) -> None:
    watch()
    seen: list[Any] = []
    listener = lambda report, paths: seen.append((report, list(paths)))  # noqa: E731
    _events.subscribe(listener)
    try:
        a, b = lockwatch.Lock(name="a"), lockwatch.Lock(name="b")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_in_thread(nest(a, b), "t1")
            run_in_thread(nest(b, a), "t2")
        assert _watchdog.flush()  # reports are made by lockwatch's own thread
    finally:
        _events.unsubscribe(listener)
    [(report, paths)] = seen
    assert report.kind == "lock-order" and paths and paths[0].endswith(".json")
    err = capsys.readouterr().err
    assert "these two orders can deadlock" in err
    assert paths[0] in err


def test_three_lock_cycle_over_three_code_paths(watch: Any, tmp_path: Path) -> None:
    watch()
    a, b, c = lockwatch.Lock(name="a"), lockwatch.Lock(name="b"), lockwatch.Lock(name="c")

    def load() -> None:
        with a:
            with b:
                pass

    def save() -> None:
        with b:
            with c:
                pass

    def flush() -> None:
        with c:
            with a:
                pass

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run_in_thread(load, "loader")
        run_in_thread(save, "saver")
        assert order_warnings(record) == []
        run_in_thread(flush, "flusher")
    [warning] = order_warnings(record)
    [cycle] = warning.report.order_cycles
    assert [(e.from_label, e.to_label) for e in cycle] == [("a", "b"), ("b", "c"), ("c", "a")]
    assert [e.stack[-1].function for e in cycle] == ["load", "save", "flush"]
    assert "these three orders can deadlock" in str(warning)
    assert len(dumps(tmp_path / "dumps")) == 1


class Account:
    def __init__(self, number: int, balance: int = 100) -> None:
        self.number = number
        self.balance = balance
        self.lock = threading.Lock()  # one creation site: one lock class for every account


def transfer(source: Account, target: Account, amount: int) -> None:
    with source.lock:
        with target.lock:
            source.balance -= amount
            target.balance += amount


def sorted_transfer(source: Account, target: Account, amount: int) -> None:
    first, second = sorted((source, target), key=lambda account: account.number)
    with first.lock:
        with second.lock:
            source.balance -= amount
            target.balance += amount


def test_unordered_transfers_that_never_collided_are_reported(watch: Any, tmp_path: Path) -> None:
    watch()
    alice, bob = Account(1), Account(2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run_in_thread(lambda: transfer(alice, bob, 10), "pay-bob")
        run_in_thread(lambda: transfer(bob, alice, 5), "pay-alice")
    [warning] = order_warnings(record)
    [cycle] = warning.report.order_cycles
    # Both locks come from one line of code: the labels tell the instances apart by id.
    assert all(e.from_label.endswith(f"({e.from_})") for e in cycle)
    assert cycle[0].from_label != cycle[1].from_label
    assert {e.from_ for e in cycle} == {alice.lock.id, bob.lock.id}
    assert all(e.stack[-1].function == "transfer" for e in cycle)
    assert alice.balance + bob.balance == 200


def test_sorted_transfers_across_many_accounts_are_not_reported(watch: Any, tmp_path: Path) -> None:
    watch()
    accounts = [Account(number) for number in range(12)]
    pairs = [(accounts[i], accounts[j]) for i in range(12) for j in range(12) if i != j]
    start = threading.Barrier(4)

    def teller(offset: int) -> None:
        start.wait(5)
        for source, target in pairs[offset::4]:
            sorted_transfer(source, target, 1)

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        tellers = [threading.Thread(target=teller, args=(n,), name=f"teller-{n}") for n in range(4)]
        for thread in tellers:
            thread.start()
        for thread in tellers:
            thread.join(10)
    assert not any(thread.is_alive() for thread in tellers)
    assert order_warnings(record) == []
    assert dumps(tmp_path / "dumps") == []
    assert sum(account.balance for account in accounts) == 1200
    assert len(_order.order_edges()) == len(pairs) // 2  # every pair, lower number first


def test_try_acquire_with_back_off_is_not_reported(watch: Any, tmp_path: Path) -> None:
    watch()
    a, b = lockwatch.Lock(name="a"), lockwatch.Lock(name="b")
    backed_off = threading.Event()
    got_both = threading.Event()

    def polite() -> None:
        with b:
            if a.acquire(blocking=False):
                a.release()
                got_both.set()
            else:
                backed_off.set()

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run_in_thread(polite, "polite-first")
        run_in_thread(nest(a, b), "forward")
        run_in_thread(polite, "polite-again")
        # Also while a is really held elsewhere: the try fails and the thread backs off.
        with a:
            run_in_thread(polite, "polite-contended")
    assert backed_off.is_set() and got_both.is_set()
    assert order_warnings(record) == []
    assert edges_between(a, b) == [("a", "b")]


def test_opposite_orders_under_a_common_gate_are_not_reported(watch: Any, tmp_path: Path) -> None:
    watch()
    gate = lockwatch.Lock(name="gate")
    a, b = lockwatch.Lock(name="a"), lockwatch.Lock(name="b")

    def gated(first: Any, second: Any) -> Callable[[], None]:
        def body() -> None:
            with gate:
                with first:
                    with second:
                        pass

        return body

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run_in_thread(gated(a, b), "t1")
        run_in_thread(gated(b, a), "t2")
        assert order_warnings(record) == []
        # The same orders without the gate can deadlock: now it is reported.
        run_in_thread(nest(b, a), "ungated")
    [warning] = order_warnings(record)
    assert {(e.from_label, e.to_label) for e in warning.report.order_cycles[0]} == {("a", "b"), ("b", "a")}


def test_dining_philosophers_with_one_left_handed_philosopher_are_not_reported(watch: Any, tmp_path: Path) -> None:
    watch()
    forks = [threading.Lock() for _ in range(5)]
    meals = [0] * 5
    start = threading.Barrier(5)

    def philosopher(seat: int) -> None:
        left, right = forks[seat], forks[(seat + 1) % 5]
        if seat == 4:
            left, right = right, left  # the last one takes the forks in the other order
        start.wait(5)
        for _ in range(20):
            with left:
                with right:
                    meals[seat] += 1

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        diners = [threading.Thread(target=philosopher, args=(seat,), name=f"philosopher-{seat}") for seat in range(5)]
        for thread in diners:
            thread.start()
        for thread in diners:
            thread.join(10)
    assert not any(thread.is_alive() for thread in diners)
    assert meals == [20] * 5
    assert order_warnings(record) == []


def test_dining_philosophers_all_right_handed_are_reported(watch: Any) -> None:
    watch()
    forks = [threading.Lock() for _ in range(5)]

    def philosopher(seat: int) -> None:
        with forks[seat]:
            with forks[(seat + 1) % 5]:
                pass

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for seat in range(5):  # one after the other: nothing can hang
            run_in_thread(lambda seat=seat: philosopher(seat), f"philosopher-{seat}")
    [warning] = order_warnings(record)
    assert len(warning.report.order_cycles[0]) == 5


@pytest.mark.parametrize("contended", [False, True], ids=["free", "held-elsewhere"])
def test_raise_refuses_the_acquire_before_it_blocks(watch: Any, tmp_path: Path, contended: bool) -> None:
    watch(order="raise")
    a, b = lockwatch.Lock(name="a"), lockwatch.Lock(name="b")
    run_in_thread(nest(a, b), "t1")
    outcome: dict[str, Any] = {}

    def backward() -> None:
        state = _state.current_state()
        with b:
            try:
                a.acquire()
            except LockOrderViolation as exc:
                outcome["error"] = exc
                outcome["held"] = list(state.held)
        outcome["held_after"] = list(state.held)

    if contended:
        # a is held by this thread: had the checker let the acquire through, it would block
        # until the join times out.
        with a:
            run_in_thread(backward, "t2")
    else:
        run_in_thread(backward, "t2")
    error = outcome["error"]
    assert "can deadlock" in str(error)
    assert [(e.from_label, e.to_label) for e in error.report.order_cycles[0]] == [("a", "b"), ("b", "a")]
    assert outcome["held"] == [b] and outcome["held_after"] == []
    assert not a.locked() and not b.locked() and a._owner is None
    assert len(dumps(tmp_path / "dumps")) == 1
    # Refused orders are not learned, and every new attempt is refused again (one dump only).
    assert edges_between(a, b) == [("a", "b")]
    with pytest.raises(LockOrderViolation):
        with b:
            with a:
                pass
    assert not a.locked() and not b.locked()
    assert len(dumps(tmp_path / "dumps")) == 1
    # The allowed order still works.
    with a:
        with b:
            pass


def test_raise_with_rlock_and_condition(watch: Any) -> None:
    watch(order="raise")
    outer = threading.RLock()
    condition = threading.Condition()
    with outer:
        with condition:
            condition.notify_all()
    with condition:
        with pytest.raises(LockOrderViolation):
            outer.acquire()
        assert condition._is_owned()
    assert not outer.locked()


def test_each_cycle_is_reported_once(watch: Any, tmp_path: Path) -> None:
    watch()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for round_ in range(3):
            # New lock instances each round, made and taken by the same lines of code.
            a, b = lockwatch.Lock(name="a"), lockwatch.Lock(name="b")
            for _ in range(3):
                run_in_thread(nest(a, b), f"forward-{round_}")
                run_in_thread(nest(b, a), f"backward-{round_}")
    assert len(order_warnings(record)) == 1
    assert len(dumps(tmp_path / "dumps")) == 1


def test_order_learned_by_lock_class_carries_over_to_new_instances(watch: Any) -> None:
    watch()

    class Cache:
        def __init__(self) -> None:
            self.index = threading.Lock()
            self.data = threading.Lock()

    _order.set_test_name("test_first")
    try:
        first = Cache()
        run_in_thread(nest(first.index, first.data), "indexer")
        del first
        gc.collect()
        _order.set_test_name("test_second")
        second = Cache()
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            run_in_thread(nest(second.data, second.index), "writer")
    finally:
        _order.set_test_name(None)
    [warning] = order_warnings(record)
    [cycle] = warning.report.order_cycles
    assert [(e.thread, e.test) for e in cycle] == [("indexer", "test_first"), ("writer", "test_second")]
    assert "(thread indexer, test_first)" in str(warning)


def test_single_thread_cycle_is_labelled(watch: Any) -> None:
    watch()
    a, b = lockwatch.Lock(name="a"), lockwatch.Lock(name="b")

    def both_orders() -> None:
        nest(a, b)()
        nest(b, a)()

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run_in_thread(both_orders, "solo")
    [warning] = order_warnings(record)
    assert warning.report.single_thread is True
    assert 'all taken by one thread, "solo"' in str(warning)


def test_dead_locks_leave_the_graph(watch: Any) -> None:
    watch()
    sizes = []
    for _ in range(300):
        outer, inner = lockwatch.Lock(), lockwatch.Lock()
        with outer:
            with inner:
                pass
        del outer, inner
        sizes.append(_order.graph_size())
    gc.collect()
    assert max(nodes for nodes, _edges in sizes) <= 4
    assert _order.graph_size() == (0, 0)
    # Class-level knowledge is bounded by code sites: one order for this loop.
    here = [o for o in _order.class_orders() if o.from_site[0] == __file__]
    assert len(here) == 1


def test_dead_lock_is_forgotten_by_survivors(watch: Any) -> None:
    watch()
    keeper = lockwatch.Lock()
    for _ in range(50):
        passing = lockwatch.Lock()
        with passing:
            with keeper:
                pass
        del passing
    # One order between the two classes; nothing per dead instance.
    assert _order.graph_size() == (0, 0)
    assert len([e for e in _order.order_edges() if e.to == keeper.id]) <= 1


def counting_checker(calls: list[Any]) -> Callable[..., Any]:
    checker = _state.order_checker
    assert checker is not None

    def counting(state: Any, lock: Any) -> Any:
        calls.append(lock)
        return checker(state, lock)

    return counting


def test_steady_state_does_not_call_the_checker(watch: Any) -> None:
    watch()
    a, b = lockwatch.Lock(), lockwatch.RLock()
    with a:
        with b:
            pass
    calls: list[Any] = []
    checker = _state.order_checker
    _state.order_checker = counting_checker(calls)
    try:
        for _ in range(1000):
            with a:
                with b:
                    pass
        assert calls == []
        c = lockwatch.Lock()
        with a:
            with c:  # a new order does reach the checker
                pass
        assert calls == [c]
    finally:
        _state.order_checker = checker


def test_steady_state_at_depth_eight_does_not_call_the_checker(watch: Any) -> None:
    watch()
    locks = [lockwatch.Lock(name=f"level{n}") for n in range(8)]
    last = lockwatch.RLock()
    gate = lockwatch.Lock()  # a gate held around some of the runs: known orders stay known

    def nest_all() -> None:
        for lock in locks:
            lock.acquire()
        with last:
            pass
        for lock in reversed(locks):
            lock.release()

    nest_all()
    with gate:
        nest_all()
    calls: list[Any] = []
    checker = _state.order_checker
    _state.order_checker = counting_checker(calls)
    try:
        for _ in range(999):
            nest_all()
        assert calls == []
        with gate:
            nest_all()  # the 1000th, under the known gate
        assert calls == []
    finally:
        _state.order_checker = checker


def test_gated_order_settles_once_taken_without_the_gate(watch: Any) -> None:
    watch()
    gate, a, b = lockwatch.Lock(name="gate"), lockwatch.Lock(name="a"), lockwatch.Lock(name="b")
    with gate:
        with a:
            with b:
                pass
    assert _order._class_succ[a._cls][b._cls].gates == {gate._cls}  # gated: a cycle through it is no deadlock
    with a:
        with b:
            pass
    assert _order._class_succ[a._cls][b._cls].gates == frozenset()  # taken without the gate: no longer gated
    [edge] = [e for e in _order.order_edges() if e.from_ == a.id]
    assert edge.gates == ()


def test_off_installs_no_checker(watch: Any) -> None:
    watch(order="off")
    assert _state.order_checker is None
    a, b = lockwatch.Lock(), lockwatch.Lock()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nest(a, b)()
        nest(b, a)()
    assert order_warnings(record) == []
    assert _order.order_edges() == []


def test_stopping_turns_checking_off_but_keeps_what_was_learned(watch: Any) -> None:
    if lockwatch.is_patched():
        pytest.skip("an outer lockwatch patch is active")
    handle = watch()
    a, b = lockwatch.Lock(name="a"), lockwatch.Lock(name="b")
    nest(a, b)()
    handle.stop()
    assert _state.order_checker is None
    watch()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nest(b, a)()
    assert len(order_warnings(record)) == 1


def test_warning_as_error_refuses_cleanly(watch: Any) -> None:
    watch()
    a, b = lockwatch.Lock(name="a"), lockwatch.Lock(name="b")
    nest(a, b)()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LockOrderWarning)
        with b:
            with pytest.raises(LockOrderWarning):
                a.acquire()
    assert not a.locked() and not b.locked()
    assert _state.current_state().held == []


def test_locks_taken_while_reporting_are_not_checked(watch: Any) -> None:
    watch()
    x, y = lockwatch.Lock(name="x"), lockwatch.Lock(name="y")
    reports: list[Any] = []

    def listener(report: Any, paths: Any) -> None:
        # A listener (or a logging handler, or pytest's capture) taking instrumented
        # locks in "inverted" orders while lockwatch reports: neither checked nor reported.
        reports.append(report)
        nest(x, y)()
        nest(y, x)()

    _events.subscribe(listener)
    try:
        a, b = lockwatch.Lock(name="a"), lockwatch.Lock(name="b")
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            run_in_thread(nest(a, b), "t1")
            run_in_thread(nest(b, a), "t2")
        assert _watchdog.flush()  # the listener runs on lockwatch's own thread
    finally:
        _events.unsubscribe(listener)
    assert len(reports) == 1 and len(order_warnings(record)) == 1
    assert edges_between(x, y) == []


def test_own_failure_is_said_once_and_checking_stays_on(
    watch: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    watch()
    failing = [True]
    real_stack = _order._acquire_stack

    def sometimes_broken() -> Any:
        if failing[0]:
            raise RuntimeError("boom")
        return real_stack()

    monkeypatch.setattr(_order, "_acquire_stack", sometimes_broken)
    a, b, c = lockwatch.Lock(name="a"), lockwatch.Lock(name="b"), lockwatch.Lock(name="c")
    nest(a, b)()  # the program goes on
    nest(a, c)()
    assert not a.locked() and not b.locked()
    assert _state.order_checker is not None  # one failure never switches checking off
    assert _watchdog.flush()
    err = capsys.readouterr().err
    assert err.count("internal error in lock-order checking") == 1 and "boom" in err
    assert "checking stays on" in err
    failing[0] = False
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run_in_thread(nest(a, b), "t1")  # not learned while failing: learned now
        run_in_thread(nest(b, a), "t2")
    assert len(order_warnings(record)) == 1  # a real inversion afterwards is still reported


def test_stdlib_queue_and_condition_hand_offs_are_not_reported(watch: Any) -> None:
    watch()
    import queue

    app_lock = threading.Lock()
    jobs: queue.Queue[int] = queue.Queue(maxsize=2)
    done = threading.Condition()
    results: list[int] = []

    def consumer() -> None:
        for _ in range(50):
            item = jobs.get(timeout=5)
            with app_lock:
                with done:
                    results.append(item)
                    done.notify_all()

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        worker = threading.Thread(target=consumer, name="consumer")
        worker.start()
        for item in range(50):
            with app_lock:
                pass
            jobs.put(item, timeout=5)
        with done:
            assert done.wait_for(lambda: len(results) == 50, timeout=10)
        worker.join(10)
    assert not worker.is_alive()
    assert order_warnings(record) == []


# --- exporting and importing class-level orders (shared between processes) -------------


class Store:
    """Two locks with fixed creation sites: every instance belongs to the same two lock classes."""

    def __init__(self) -> None:
        self.index = threading.Lock()
        self.data = threading.Lock()


def learn_elsewhere(source_test: str) -> list[dict[str, Any]]:
    """Learn index -> data in a thread, export it, then forget everything (as if another process)."""
    _order.set_test_name(source_test)
    try:
        store = Store()
        run_in_thread(nest(store.index, store.data), "indexer")
    finally:
        _order.set_test_name(None)
    records = json.loads(json.dumps(_order.export_class_orders()))  # through JSON, as between processes
    _order.reset()
    return records


def test_exported_class_orders_are_json_records(watch: Any) -> None:
    watch()
    records = learn_elsewhere("test_other.py::test_index")
    store = Store()
    [record] = records
    index_line, data_line = store.index.site[1], store.data.site[1]
    assert record["from"] == [__file__, index_line] and record["to"] == [__file__, data_line]
    assert (record["from_label"], record["to_label"]) == (
        f"Lock from test_order.py:{index_line}",
        f"Lock from test_order.py:{data_line}",
    )
    assert record["thread"] == "indexer"
    assert record["test"] == "test_other.py::test_index"
    assert record["source"] is None and record["gates"] == []
    file, line, function = record["stack"][-1]
    assert function == "take_both" and file == __file__
    assert "with inner:" in Path(__file__).read_text().splitlines()[line - 1]


def test_imported_order_closes_a_cycle_with_both_stacks_and_tests(watch: Any, tmp_path: Path) -> None:
    watch()
    records = learn_elsewhere("test_other.py::test_index")
    _order.import_class_orders(records, source="xdist worker gw1")
    # Class-level only: no instance edge, and it is not exported again as this process's own.
    assert _order.order_edges() == []
    assert _order.export_class_orders() == []
    [again] = [r for r in _order.export_class_orders(include_imported=True) if r["thread"].startswith("indexer")]
    assert again["source"] == "xdist worker gw1" and again["thread"] == "indexer (xdist worker gw1)"

    store = Store()
    _order.set_test_name("test_here.py::test_write")
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            run_in_thread(nest(store.data, store.index), "writer")
    finally:
        _order.set_test_name(None)
    [warning] = order_warnings(record)
    [cycle] = warning.report.order_cycles
    assert [(e.thread, e.test) for e in cycle] == [
        ("indexer (xdist worker gw1)", "test_other.py::test_index"),
        ("writer", "test_here.py::test_write"),
    ]
    assert [e.stack[-1].function for e in cycle] == ["take_both", "take_both"]
    assert cycle[0].stack[-1].code == "with inner:"
    assert warning.report.single_thread is False
    assert "test_other.py::test_index" in str(warning) and "test_here.py::test_write" in str(warning)
    [dump] = dumps(tmp_path / "dumps")
    assert [e["thread"] for e in dump["order_cycles"][0]] == ["indexer (xdist worker gw1)", "writer"]


def test_imported_order_refuses_the_closing_acquire_in_raise_mode(watch: Any) -> None:
    watch(order="raise")
    _order.import_class_orders(learn_elsewhere("test_other.py::test_index"), source="elsewhere")
    store = Store()
    with pytest.raises(LockOrderViolation) as caught:
        nest(store.data, store.index)()
    assert "indexer (elsewhere)" in str(caught.value)
    assert not store.index.locked() and not store.data.locked()


def test_import_keeps_known_orders_and_skips_same_class(watch: Any) -> None:
    watch()
    records = learn_elsewhere("test_other.py::test_index")
    store = Store()
    run_in_thread(nest(store.index, store.data), "local")  # the same order, learned here first
    same = dict(records[0], to=records[0]["from"])
    _order.import_class_orders([*records, same], source="elsewhere")
    orders = _order.export_class_orders(include_imported=True)
    mine = [r for r in orders if r["from"] == records[0]["from"]]
    assert [(r["to"], r["thread"], r["source"]) for r in mine] == [(records[0]["to"], "local", None)]


@pytest.mark.parametrize(
    "damage",
    [
        {"from": "not a site"},
        {"to": ["file.py", "three"]},
        {"stack": [["file.py", 1]]},
        {"thread": None},
        {"test": 3},
    ],
)
def test_malformed_record_is_refused_before_importing_anything(watch: Any, damage: dict[str, Any]) -> None:
    watch()
    records = learn_elsewhere("test_other.py::test_index")
    other = dict(records[0], **{"from": ["other.py", 1], "to": ["other.py", 2]})
    with pytest.raises(ValueError, match="not a lock-order record"):
        _order.import_class_orders([other, dict(records[0], **damage)], source="elsewhere")
    with pytest.raises(ValueError, match="not a lock-order record"):
        _order.import_class_orders(["not a mapping"], source="elsewhere")  # type: ignore[list-item]
    assert _order.export_class_orders(include_imported=True) == []
