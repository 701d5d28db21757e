"""Waits beyond locks: joins, futures, pools and dead owners in the wait-for graph, found as they happen."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from _reports import Collector

import lockwatch
from lockwatch import _beyond, _detect
from lockwatch._detect import AnyWait
from lockwatch._model import CycleStep

JOIN = 10.0


def wait_for_report(collect: Collector, kind: str = "deadlock", timeout: float = JOIN) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in collect.reports if r.kind == kind]
        if found:
            return found[0]
        time.sleep(0.01)
    raise AssertionError(f"no {kind} report within {timeout} s: {[r.summary for r in collect.reports]}")


# --- the general detector, on plain data ------------------------------------------------


def test_all_of_wait_is_stuck_when_one_owner_is() -> None:
    waits = {
        1: AnyWait("J2", (2,), is_lock=False),  # 1 joins 2
        2: AnyWait("L1", (1,)),  # 2 waits for a lock 1 holds
    }
    stuck = _detect.find_stuck(waits)
    assert stuck.cycles == [(CycleStep(1, waits_for="J2"), CycleStep(2, lock="L1"))]
    assert stuck.stuck == {1, 2}


def test_any_of_wait_goes_on_while_one_owner_runs() -> None:
    # 1 waits for a future pending in a pool of workers 2 and 3; 2 waits for 1; 3 runs.
    waits = {1: AnyWait("F1", (2, 3), any_of=True, is_lock=False), 2: AnyWait("L1", (1,))}
    assert _detect.find_stuck(waits).stuck == set()
    # ...until 3 waits for 1 too: then nobody can run the pending future.
    waits[3] = AnyWait("L1", (1,))
    stuck = _detect.find_stuck(waits)
    assert stuck.stuck == {1, 2, 3}
    assert len(stuck.cycles) == 1 and stuck.cycles[0][0] == CycleStep(1, waits_for="F1")


def test_unknown_owner_gets_the_benefit_of_the_doubt() -> None:
    waits = {1: AnyWait("F1", (), is_lock=False), 2: AnyWait("L1", (1,))}
    assert _detect.find_stuck(waits).stuck == set()


def test_a_dead_owner_ends_a_chain() -> None:
    waits = {5: AnyWait("L3", (-7,)), 6: AnyWait("J5", (5,), is_lock=False)}
    stuck = _detect.find_stuck(waits, dead={-7})
    assert stuck.cycles == []
    assert stuck.stuck == {5, 6}
    # One story, told from its head: 6 waits for 5, which waits for the dead owner's lock.
    assert stuck.chains == [(CycleStep(6, waits_for="J5"), CycleStep(5, lock="L3"))]


def test_a_task_needs_its_loop_thread() -> None:
    # Task 1 waits for an asyncio lock held by task 2 (which runs); the loop thread 100 waits
    # for a lock held by thread 200, which waits for a future the loop must complete.
    waits = {
        1: AnyWait("A1", (2,), is_lock=False),
        100: AnyWait("L1", (200,)),
        200: AnyWait("F1", (100,), is_lock=False),
    }
    stuck = _detect.find_stuck(waits, waits_on_loop={1: 100, 2: 100})
    assert stuck.stuck == {1, 100, 200}
    assert [[s.thread for s in c] for c in stuck.cycles] == [[100, 200]]
    # With the loop thread free, the tasks go on.
    del waits[100], waits[200]
    assert _detect.find_stuck(waits, waits_on_loop={1: 100, 2: 100}).stuck == set()


# --- real threads under patch() --------------------------------------------------------


@pytest.mark.timeout(60)
def test_join_while_holding_the_lock_the_worker_needs(watch: Any, collect: Collector) -> None:
    watch(on_deadlock="break", interval=0.1)
    state_lock = threading.Lock()
    worker_started = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        worker_started.set()
        try:
            with state_lock:
                pass
        except lockwatch.DeadlockError as exc:
            errors.append(exc)

    def stopper() -> None:
        with state_lock:
            thread = threading.Thread(target=worker, name="worker")
            thread.start()
            worker_started.wait()
            thread.join()  # the worker needs state_lock: a deadlock through a join

    outer = threading.Thread(target=stopper, name="stopper")
    outer.start()
    outer.join(JOIN)
    assert not outer.is_alive(), "break mode did not end the join deadlock"
    report = wait_for_report(collect)
    assert len(errors) == 1
    (cycle,) = report.cycles
    kinds = {step.thread: (step.lock, step.waits_for) for step in cycle}
    names = {t.id: t.name for t in report.threads}
    by_name = {names[ident]: target for ident, target in kinds.items()}
    assert by_name["worker"] == (state_lock.id, None)
    join_target = by_name["stopper"][1]
    assert join_target is not None and join_target.startswith("J")
    entry = report.awaited_entry(join_target)
    assert entry is not None and entry.kind == "thread" and 'thread "worker"' in entry.label
    assert report.thread(next(i for i, n in names.items() if n == "stopper")).stack[-1].code == "thread.join()  # the worker needs state_lock: a deadlock through a join"
    assert report.victim == next(i for i, n in names.items() if n == "worker")


@pytest.mark.timeout(60)
def test_timed_join_is_not_a_deadlock(watch: Any, collect: Collector) -> None:
    watch(on_deadlock="report", interval=0.05)
    state_lock = threading.Lock()
    blocked = threading.Event()

    def worker() -> None:
        blocked.set()
        with state_lock:
            pass

    with state_lock:
        thread = threading.Thread(target=worker, name="worker")
        thread.start()
        blocked.wait()
        for _ in range(4):
            thread.join(0.1)  # a polling join ends by itself: never part of a deadlock
    thread.join(JOIN)
    assert "deadlock" not in collect.kinds(), [r.summary for r in collect.reports]


@pytest.mark.timeout(60)
def test_pool_starvation_is_reported(watch: Any, collect: Collector) -> None:
    watch(on_deadlock="report", interval=0.1)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="solo")
    children: list[concurrent.futures.Future[int]] = []

    def parent() -> int:
        child = pool.submit(lambda: 1)
        children.append(child)
        return child.result()  # the only worker waits for a task only it could run

    outer = pool.submit(parent)
    try:
        report = wait_for_report(collect)
    finally:
        for child in children:
            child.cancel()  # the cure: the parent's result() raises CancelledError
        pool.shutdown(wait=True)
    with pytest.raises(concurrent.futures.CancelledError):
        outer.result(JOIN)
    (cycle,) = report.cycles
    (step,) = cycle
    entry = report.awaited_entry(step.waits_for)
    assert entry is not None and entry.kind == "pool" and entry.any_of
    assert entry.owners == (step.thread,)
    assert "pool starvation" in report.summary


@pytest.mark.timeout(60)
def test_future_result_while_holding_the_lock_its_task_needs(watch: Any, collect: Collector) -> None:
    watch(on_deadlock="break", interval=0.1)
    lock = threading.Lock()
    started = threading.Event()
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="work")

    def task() -> int:
        started.set()
        with lock:
            return 1

    outcome: list[Any] = []

    def caller() -> None:
        with lock:
            future = pool.submit(task)
            started.wait()
            try:
                outcome.append(future.result())
            except lockwatch.DeadlockError as exc:  # the worker's acquire was refused
                outcome.append(exc)

    thread = threading.Thread(target=caller, name="caller")
    thread.start()
    thread.join(JOIN)
    pool.shutdown(wait=True)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], lockwatch.DeadlockError)
    report = wait_for_report(collect)
    (cycle,) = report.cycles
    futures = [step for step in cycle if step.waits_for is not None]
    assert len(futures) == 1
    entry = report.awaited_entry(futures[0].waits_for)
    assert entry is not None and entry.kind == "future" and entry.state == "running"


@pytest.mark.timeout(60)
def test_lock_of_an_ended_thread_is_an_orphan(watch: Any, collect: Collector) -> None:
    watch(on_deadlock="break", interval=0.1)
    lock = threading.RLock()  # nobody but its owner can ever release an RLock
    go = threading.Event()
    errors: list[BaseException] = []

    def waiter() -> None:
        go.wait()
        try:
            lock.acquire()
        except lockwatch.DeadlockError as exc:
            errors.append(exc)

    # Started first, so that it cannot reuse the leaver's ident (which a C RLock would
    # take for its owner's: CPython's RLock lets such a thread in).
    thread = threading.Thread(target=waiter, name="waiter")
    thread.start()
    leaver = threading.Thread(target=lock.acquire, name="leaver")
    leaver.start()
    leaver.join(JOIN)
    go.set()
    thread.join(JOIN)
    assert not thread.is_alive() and len(errors) == 1
    report = wait_for_report(collect)
    assert not report.cycles
    assert [[(s.thread, s.lock) for s in chain] for chain in report.chains] == [[(thread.ident, lock.id)]]
    assert '"leaver", which no longer exists' in report.summary


@pytest.mark.timeout(60)
def test_a_new_cycle_is_reported_long_before_the_next_look(watch: Any, collect: Collector) -> None:
    # Two looks of a 30 s interval would take a minute: the chain check at the last wait's
    # start and one short re-check find it at once.
    watch(on_deadlock="break", interval=30)
    a, b = threading.Lock(), threading.Lock()
    barrier = threading.Barrier(2)
    broken: list[str] = []

    def take(first: Any, second: Any) -> None:
        with first:
            barrier.wait()
            try:
                with second:
                    pass
            except lockwatch.DeadlockError:
                broken.append(threading.current_thread().name)

    threads = [threading.Thread(target=take, args=pair, name=name) for name, pair in (("ab", (a, b)), ("ba", (b, a)))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    wait_for_report(collect, timeout=20)
    elapsed = time.monotonic() - started
    for thread in threads:
        thread.join(JOIN)
    assert len(broken) == 1
    assert elapsed < 15, f"found after {elapsed:.1f} s: the instant check did not fire"


def test_uninstall_restores_every_wrapped_wait() -> None:
    before = (threading.Thread.join, concurrent.futures.Future.result, threading.Condition.wait)
    with lockwatch.patch(interval=5):
        assert threading.Thread.join is not before[0]
        assert threading.Condition.wait is not before[2]
    assert (threading.Thread.join, concurrent.futures.Future.result, threading.Condition.wait) == before
    assert not _beyond._originals
