"""The instrumented Lock and RLock: behaviour beyond CPython's suite, and the live state they keep."""

from __future__ import annotations

import gc
import threading
import tracemalloc
import weakref

import pytest

import lockwatch
from lockwatch import _state

pytestmark = pytest.mark.timeout(30)


def held_by_me() -> list[str]:
    return [lock.id for lock in _state.current_state().held]


def run_in_thread(target, *args):  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def wrapper() -> None:
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            errors.append(exc)

    thread = threading.Thread(target=wrapper)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "helper thread hung"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("cls", [lockwatch.Lock, lockwatch.RLock])
def test_held_list_follows_acquire_and_release_in_order(cls: type) -> None:
    a, b = cls(name="a"), cls(name="b")
    with a:
        with b:
            assert held_by_me()[-2:] == [a.id, b.id]
            assert a.owner_ident() == threading.get_ident()
        assert held_by_me()[-1] == a.id
    assert a.id not in held_by_me() and b.id not in held_by_me()
    assert a.owner_ident() is None


def test_out_of_order_release_is_tracked() -> None:
    a, b = lockwatch.Lock(), lockwatch.Lock()
    a.acquire()
    b.acquire()
    a.release()  # not LIFO
    assert a.id not in held_by_me() and b.id in held_by_me()
    b.release()
    assert b.id not in held_by_me()


def test_plain_lock_released_by_another_thread_leaves_no_stale_holder() -> None:
    lock = lockwatch.Lock()
    lock.acquire()
    me = _state.current_state()
    run_in_thread(lock.release)
    assert not lock.locked()
    assert lock not in me.owned()  # the entry left behind is stale, and dropped at the next release
    assert lock.owner_ident() is None
    lock.acquire()  # a hand-off lock: taking it again drops the stale entry
    lock.release()
    assert lock not in me.held


def test_rlock_recursion_count_and_owner() -> None:
    lock = lockwatch.RLock()
    assert lock._recursion_count() == 0
    with lock, lock, lock:
        assert lock._recursion_count() == 3
        assert held_by_me().count(lock.id) == 1  # held once, however deep
        counts: list[int] = []
        run_in_thread(lambda: counts.append(lock._recursion_count()))
        assert counts == [0]  # another thread does not own it
    assert lock._recursion_count() == 0


def test_rlock_release_by_other_thread_is_refused() -> None:
    lock = lockwatch.RLock()
    with lock:
        with pytest.raises(RuntimeError, match="un-acquired"):
            run_in_thread(lock.release)
        assert lock._is_owned()


@pytest.mark.parametrize("cls", [lockwatch.Lock, lockwatch.RLock])
def test_acquire_argument_errors_match_the_originals(cls: type) -> None:
    lock = cls()
    with pytest.raises(ValueError, match="non-blocking"):
        lock.acquire(False, 1)
    with pytest.raises(ValueError):
        lock.acquire(timeout=-5)
    with pytest.raises(OverflowError):
        lock.acquire(timeout=1e100)
    assert not lock.locked()
    assert lock.acquire(timeout=0.01) is True
    lock.release()


def test_timed_out_wait_leaves_no_waiter_behind() -> None:
    lock = lockwatch.Lock()
    lock.acquire()
    results: list[bool] = []
    run_in_thread(lambda: results.append(lock.acquire(timeout=0.05)))
    assert results == [False]
    assert all(state.waiting_for is None for state in _state.states())
    lock.release()


def test_waiter_is_visible_while_blocked() -> None:
    lock = lockwatch.Lock(name="contended")
    lock.acquire()
    started = threading.Event()

    def waiter() -> None:
        started.set()
        with lock:
            pass

    thread = threading.Thread(target=waiter, name="waiter", daemon=True)
    thread.start()
    try:
        started.wait(5)
        pause = threading.Event()
        report = lockwatch.snapshot()
        for _ in range(500):
            report = lockwatch.snapshot()
            info = next((t for t in report.threads if t.name == "waiter"), None)
            if info is not None and info.waiting_for == lock.id:
                break
            pause.wait(0.01)
        info = next(t for t in report.threads if t.name == "waiter")
        assert info.waiting_for == lock.id
        assert info.waiting_seconds is not None and info.waiting_seconds >= 0
        blocking_line = [f for f in info.stack if f.function == "waiter"][-1]
        assert blocking_line.code is not None and "with lock" in blocking_line.code
        lock_info = report.lock(lock.id)
        assert lock_info is not None
        assert lock_info.owner == threading.get_ident()
        assert lock_info.waiters == (info.id,)
        assert lock_info.name == "contended"
        assert lock_info.site is not None and lock_info.site.file == __file__
    finally:
        lock.release()
        thread.join(5)
    assert not thread.is_alive()


def test_creation_site_is_the_users_line_even_through_condition() -> None:
    cond = threading.Condition(lockwatch.RLock())
    assert cond._lock.site[0] == __file__  # type: ignore[attr-defined]
    with lockwatch.patch(order="off"):
        made_here = threading.Condition()
        queue_made_here = __import__("queue").Queue()
    assert made_here._lock.site[0] == __file__  # type: ignore[attr-defined]
    assert queue_made_here.mutex.site[0] == __file__


def test_names_ranks_and_bad_arguments() -> None:
    lock = lockwatch.Lock(name="db", rank=10)
    assert lock.name == "db" and lock.rank == 10
    assert "name='db'" in repr(lock) and repr(lock).startswith("<unlocked ")
    with pytest.raises(TypeError, match="name must be a str"):
        lockwatch.Lock(name=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rank must be an int"):
        lockwatch.RLock(rank="high")  # type: ignore[arg-type]


def test_repr_shapes() -> None:
    lock = lockwatch.RLock()
    with lock, lock:
        assert repr(lock).startswith("<locked lockwatch.RLock object")
        assert f"owner={threading.get_ident()} count=2" in repr(lock)
    assert "owner=0 count=0" in repr(lock)


def test_dead_locks_cost_nothing() -> None:
    lock = lockwatch.Lock()
    ref = weakref.ref(lock)
    with lock:
        pass
    del lock
    gc.collect()
    assert ref() is None


def test_no_memory_growth_over_many_short_lived_locks() -> None:
    outer = lockwatch.Lock()
    with lockwatch.patch(order="warn", signal=False):
        for _ in range(2000):  # warm up every cache
            with outer, lockwatch.Lock():
                pass
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(30_000):
                with outer, lockwatch.RLock():
                    pass
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert grown < 64 * 1024, f"memory grew by {grown} bytes over 30,000 short-lived locks"


def test_thread_states_of_finished_threads_are_pruned() -> None:
    tokens: list[int] = []

    def work() -> None:
        with lockwatch.Lock():
            tokens.append(_state.current_state().token)

    for _ in range(50):
        run_in_thread(work)
    _state.prune_dead_threads()
    assert len(tokens) == 50
    assert not any(state.token in tokens for state in _state.states())
