"""Snapshots: names of threads that have ended, and labels of locks kept in containers."""

from __future__ import annotations

import _thread
import enum
import gc
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lockwatch
from lockwatch import _order, _snapshot, _state

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def patched(tmp_path: Path) -> Iterator[None]:
    """lockwatch on (orders learned quietly, a watchdog that stays quiet) for one test."""
    _order.reset()
    handle = lockwatch.patch(on_deadlock="report", interval=5, order="warn", signal=False, dump_dir=str(tmp_path))
    try:
        yield
    finally:
        handle.stop()
        _order.reset()


def thread_info(report: Any, ident: int) -> Any:
    [info] = [t for t in report.threads if t.id == ident]
    return info


# --- names of threads that ended ---------------------------------------------------------


def test_thread_that_ended_holding_a_lock_keeps_its_name(patched: None) -> None:
    lock = threading.Lock()
    thread = threading.Thread(target=lock.acquire, name="cache-filler")
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    ident = thread.ident
    assert ident is not None
    # Its state was made while it was starting (its start-up Event takes a lock), named all the same.
    assert lock._owner is not None and lock._owner.name == "cache-filler"
    del thread  # only lockwatch remembers it now

    report = _snapshot.take()
    info = thread_info(report, ident)
    assert (info.name, info.alive, info.holding) == ("cache-filler", False, (lock.id,))
    [lock_info] = [info for info in report.locks if info.id == lock.id]
    assert lock_info.owner == ident
    lock.release()


def test_live_thread_shows_its_current_name_and_a_renamed_one_keeps_the_new_name(patched: None) -> None:
    outer, inner = threading.Lock(), threading.Lock()
    renamed, proceed = threading.Event(), threading.Event()

    def body() -> None:
        threading.current_thread().name = "renamed-worker"
        with outer:  # learning this order records the thread's new name (the thread itself looks it up)
            inner.acquire()
        renamed.set()
        proceed.wait(10)

    thread = threading.Thread(target=body, name="worker")
    thread.start()
    try:
        assert renamed.wait(10)
        info = thread_info(_snapshot.take(), thread.ident)
        assert (info.name, info.alive) == ("renamed-worker", True)
        [edge] = [e for e in _order.order_edges() if (e.from_, e.to) == (outer.id, inner.id)]
        assert edge.thread == "renamed-worker"
    finally:
        proceed.set()
        thread.join(10)
    ident = thread.ident
    del thread
    info = thread_info(_snapshot.take(), ident)
    assert (info.name, info.alive, info.holding) == ("renamed-worker", False, (inner.id,))
    inner.release()


def test_raw_thread_without_a_thread_object_gets_an_ident_name_and_no_dummy_thread(patched: None) -> None:
    lock = lockwatch.Lock()
    done = _thread.allocate_lock()
    done.acquire()
    idents: list[int] = []

    def body() -> None:
        idents.append(_thread.get_ident())
        lock.acquire()
        done.release()

    _thread.start_new_thread(body, ())
    assert done.acquire(timeout=10)
    [ident] = idents
    assert ident not in threading._active  # type: ignore[attr-defined]  # no dummy Thread was made
    info = thread_info(_snapshot.take(), ident)
    assert info.name == f"thread-{ident}" and info.holding == (lock.id,)
    lock.release()


def test_thread_name_is_looked_up_without_creating_dummy_threads() -> None:
    assert _state.python_thread_name(threading.get_ident()) == threading.current_thread().name
    before = dict(threading._active)  # type: ignore[attr-defined]
    assert _state.python_thread_name(-12345) is None
    assert dict(threading._active) == before  # type: ignore[attr-defined]


# --- labels of locks kept in containers ----------------------------------------------------


class ResourceManager:
    def __init__(self, names: list[str]) -> None:
        self.locks = {name: lockwatch.Lock() for name in names}


class Table:
    def __init__(self, stripes: int) -> None:
        self.stripes = [lockwatch.Lock() for _ in range(stripes)]


class Account:
    def __init__(self) -> None:
        self.lock = lockwatch.Lock()


class Registry:
    GLOBAL = lockwatch.Lock()
    BY_NAME = {"jobs": lockwatch.Lock()}


class Color(enum.Enum):
    RED = 1


class Shouty:
    """A dict key whose repr is user code that fails: never run for a label."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")

    def __hash__(self) -> int:
        return 7


class Hostile:
    """An object whose __dict__ cannot be read."""

    @property  # type: ignore[misc]
    def __dict__(self) -> Any:
        raise RuntimeError("no dict for you")


def labels_of(*locks: Any) -> list[str | None]:
    found = _snapshot.attribute_labels(locks)
    return [found.get(id(lock)) for lock in locks]


def test_dict_and_list_attributes_name_their_locks() -> None:
    manager = ResourceManager(["db", "cache"])
    table = Table(5)
    assert labels_of(manager.locks["db"], manager.locks["cache"], table.stripes[3]) == [
        "ResourceManager.locks['db']",
        "ResourceManager.locks['cache']",
        "Table.stripes[3]",
    ]
    # Again, now that the instance dicts exist as objects (the first look made them): same labels.
    vars(manager), vars(table)
    assert labels_of(manager.locks["db"], table.stripes[0]) == ["ResourceManager.locks['db']", "Table.stripes[0]"]


def test_module_globals_and_class_attributes_name_their_locks() -> None:
    module = types.ModuleType("app")
    exec(
        "import lockwatch\nLOCKS = {'db': lockwatch.Lock()}\nSTRIPES = [lockwatch.Lock(), lockwatch.Lock()]\n"
        "settings_lock = lockwatch.Lock()\n",
        module.__dict__,
    )
    assert labels_of(module.LOCKS["db"], module.STRIPES[1], module.settings_lock) == [
        "app.LOCKS['db']",
        "app.STRIPES[1]",
        "app.settings_lock",
    ]
    assert labels_of(Registry.GLOBAL, Registry.BY_NAME["jobs"]) == ["Registry.GLOBAL", "Registry.BY_NAME['jobs']"]


def test_an_attribute_wins_over_a_container_and_odd_keys_get_no_label() -> None:
    account = Account()
    index = {"acct-1": account.lock}  # a registry of the same lock
    keyed = lockwatch.Lock()
    odd = lockwatch.Lock()

    class Holder:
        def __init__(self) -> None:
            self.by_color = {Color.RED: keyed}
            self.by_object = {Shouty(): odd}

    holder = Holder()
    assert labels_of(account.lock, keyed, odd) == ["Account.lock", "Holder.by_color[Color.RED]", None]
    assert index and holder


def test_a_hostile_object_costs_its_own_label_only() -> None:
    hostile = Hostile()
    object.__setattr__(hostile, "lock", lockwatch.Lock())
    table = Table(2)
    assert labels_of(object.__getattribute__(hostile, "lock"), table.stripes[1]) == [None, "Table.stripes[1]"]


def test_locks_in_call_arguments_and_local_lists_get_no_label() -> None:
    lock = lockwatch.Lock()
    taken = [lock]
    never_started = threading.Thread(target=lambda *args: None, args=(lock,), name="idle")  # Thread._args
    assert labels_of(lock) == [None]
    assert taken and never_started


def test_labels_cost_at_most_three_heap_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    real = gc.get_referrers
    calls: list[int] = []

    def counting(*objects: Any) -> list[Any]:
        calls.append(len(objects))
        return real(*objects)

    managers = [ResourceManager(["db", "cache"]) for _ in range(20)]
    tables = [Table(4) for _ in range(20)]
    for manager in managers[:10]:
        vars(manager)  # some instance dicts exist as objects: the last pass finds their objects
    locks = [lock for m in managers for lock in m.locks.values()] + [lock for t in tables for lock in t.stripes]
    monkeypatch.setattr(gc, "get_referrers", counting)
    found = _snapshot.attribute_labels(locks)
    assert len(calls) <= 3
    assert found[id(managers[0].locks["db"])] == "ResourceManager.locks['db']"
    assert found[id(managers[15].locks["cache"])] == "ResourceManager.locks['cache']"
    assert found[id(tables[19].stripes[2])] == "Table.stripes[2]"


def test_a_failing_heap_pass_means_no_labels_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = ResourceManager(["db"])

    def broken(*objects: Any) -> list[Any]:
        raise MemoryError("no heap walk today")

    monkeypatch.setattr(gc, "get_referrers", broken)
    assert _snapshot.attribute_labels(manager.locks.values()) == {}


def test_snapshot_of_a_held_lock_in_a_dict_uses_the_container_label(patched: None) -> None:
    manager = ResourceManager(["db", "cache"])
    with manager.locks["db"]:
        report = _snapshot.take()
    [info] = [lock for lock in report.locks if lock.id == manager.locks["db"].id]
    assert info.label == "ResourceManager.locks['db']"


# --- where held locks were taken (found at report time) -------------------------


def _line_of(marker: str) -> int:
    """The line of this file that carries ``marker`` in a comment."""
    with open(__file__, encoding="utf-8") as handle:
        for number, text in enumerate(handle, 1):
            if text.rstrip().endswith(f"# {marker}"):
                return number
    raise AssertionError(marker)


def test_acquired_at_names_the_with_line_of_a_local_lock() -> None:
    lock = lockwatch.Lock()
    with lock:  # taken-local
        report = lockwatch.snapshot()
    me = report.thread(threading.get_ident())
    assert me is not None
    taken = me.acquired_at[lock.id]
    assert (taken.file, taken.line, taken.function) == (
        __file__, _line_of("taken-local"), "test_acquired_at_names_the_with_line_of_a_local_lock"
    )


class _Account:
    def __init__(self) -> None:
        self.lock = lockwatch.RLock()

    def audit(self) -> Any:
        with self.lock:  # taken-attribute
            return lockwatch.snapshot()


def test_acquired_at_follows_attributes_and_conditions() -> None:
    account = _Account()
    report = account.audit()
    me = report.thread(threading.get_ident())
    assert me is not None and me.acquired_at[account.lock.id].line == _line_of("taken-attribute")

    cond = threading.Condition(lockwatch.RLock())
    with cond:  # taken-condition
        report = lockwatch.snapshot()
    me = report.thread(threading.get_ident())
    assert me is not None
    assert me.acquired_at[cond._lock.id].line == _line_of("taken-condition")  # type: ignore[attr-defined]


def test_acquired_at_is_left_out_when_the_taking_frame_is_gone() -> None:
    lock = lockwatch.Lock()

    def take() -> None:
        lock.acquire()

    take()
    try:
        report = lockwatch.snapshot()
    finally:
        lock.release()
    me = report.thread(threading.get_ident())
    assert me is not None and lock.id in me.holding
    # This frame names `lock` but never takes it with `with`/`.acquire(`: no guess.
    assert lock.id not in me.acquired_at


# --- one label per lock, the most specific ---------------------------------------------------


@pytest.mark.parametrize("heap_order", ["as found", "reversed"])
def test_a_queue_mutex_is_named_by_the_programs_queue_not_by_the_stdlibs_condition(
    patched: None, monkeypatch: pytest.MonkeyPatch, heap_order: str
) -> None:
    import queue

    class SlowQueue(queue.Queue):  # type: ignore[type-arg]
        pass

    if heap_order == "reversed":  # whichever referrer the heap walk meets first, the same label
        real = gc.get_referrers
        monkeypatch.setattr(gc, "get_referrers", lambda *objects: list(reversed(real(*objects))))
    jobs = SlowQueue()
    # Referrers of the mutex: the queue's __dict__ and three Conditions' (``Condition._lock``).
    vars(jobs.not_empty), vars(jobs.not_full)
    for _ in range(3):
        assert labels_of(jobs.mutex) == ["SlowQueue.mutex"]
    with jobs.mutex:
        report = _snapshot.take()
    [info] = [lock for lock in report.locks if lock.id == jobs.mutex.id]
    assert info.label == "SlowQueue.mutex"


def test_a_lock_keeps_its_first_label_in_every_later_report() -> None:
    account = Account()
    assert labels_of(account.lock) == ["Account.lock"]
    registry = {"acct-1": account.lock}  # found later: a container entry, no better than the attribute
    holder = types.SimpleNamespace(lock=account.lock)  # stdlib class: no better either
    assert labels_of(account.lock) == ["Account.lock"]
    assert _snapshot.lock_label(account.lock) == "Account.lock"  # what lock-order edges record
    assert registry and holder


@pytest.mark.parametrize("heap_order", ["as found", "reversed"])
def test_private_stdlib_attributes_lose_to_public_program_ones(monkeypatch: pytest.MonkeyPatch, heap_order: str) -> None:
    if heap_order == "reversed":
        real = gc.get_referrers
        monkeypatch.setattr(gc, "get_referrers", lambda *objects: list(reversed(real(*objects))))
    lock = lockwatch.Lock()
    condition = threading.Condition(lock)
    vars(condition)
    cache = Account()
    cache.lock = lock
    assert labels_of(lock) == ["Account.lock"]
    assert condition


# --- ended threads --------------------------------------------------------------------------


def test_threads_that_ended_holding_nothing_are_left_out(patched: None) -> None:
    lock = threading.Lock()
    leftover = threading.Lock()

    def work() -> None:
        with lock:
            pass

    finished = [threading.Thread(target=work, name=f"done-{n}") for n in range(5)]
    for thread in finished:
        thread.start()
        thread.join(10)
    holder = threading.Thread(target=leftover.acquire, name="left-holding")
    holder.start()
    holder.join(10)
    report = _snapshot.take()
    names = [t.name for t in report.threads]
    assert not [name for name in names if name.startswith("done-")], names
    assert "left-holding" in names  # it still holds a lock: that matters
    leftover.release()
    assert "left-holding" not in [t.name for t in _snapshot.take().threads]
    _state.prune_dead_threads()  # no ended thread's state lingers for the next test


# --- a snapshot of a deadlocked process says so -----------------------------------------------


def _wait_until(condition: Any, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.filterwarnings("ignore::lockwatch.LockOrderWarning")
def test_snapshot_of_deadlocked_threads_has_the_cycle_in_dump_text_and_picture(patched: None) -> None:
    from lockwatch import _render, _text

    first, second = threading.Lock(), threading.Lock()
    both_hold_one = threading.Barrier(2)

    def take(mine: Any, other: Any) -> None:
        mine.acquire()
        both_hold_one.wait()
        other.acquire()  # the test releases ``mine``'s partner from outside; both locks stay taken

    threads = [threading.Thread(target=take, args=(first, second), name="left", daemon=True),
               threading.Thread(target=take, args=(second, first), name="right", daemon=True)]
    for thread in threads:
        thread.start()
    try:
        _wait_until(lambda: sum(1 for s in _state.states() if s.waiting_for is not None) >= 2)
        report = _snapshot.take("snapshot", summary="Snapshot requested with SIGUSR1")
    finally:
        first.release()  # a Lock may be released by any thread: the deadlock ends here
        second.release()
        for thread in threads:
            thread.join(10)
        first.release()  # and what the ended threads still hold, so that no state of theirs lingers
        second.release()
        _state.prune_dead_threads()
    assert len(report.cycles) == 1
    assert {step.thread for step in report.cycles[0]} == {t.ident for t in threads}
    assert {t.role for t in report.threads if t.name in ("left", "right")} == {"cycle"}
    assert report.summary.startswith("Snapshot requested with SIGUSR1. The process is deadlocked: thread ")
    assert report.to_dict()["cycles"]
    text = _text.format_report(report)
    assert text.splitlines()[0].endswith("; DEADLOCKED: 2 threads in 1 cycle")
    assert "\nCycle:\n  thread " in text and "in the deadlock" in text
    assert "Snapshot of a deadlocked process: 2 threads wait for each other" in _render.to_dot(report)


def test_snapshot_without_a_deadlock_has_no_cycle(patched: None) -> None:
    lock = threading.Lock()
    with lock:
        report = _snapshot.take("snapshot")
    assert report.cycles == () and "deadlocked" not in report.summary


# --- where a held lock was taken: only when it is certain --------------------------------------

_self_lock = lockwatch.Lock()


def _get_then_refresh(errors: list[BaseException], started: threading.Event) -> None:
    try:
        with _self_lock:  # taken-self
            _refresh(started)
    except RuntimeError as exc:  # the test freed the lock from outside: releasing it again fails
        errors.append(exc)


def _refresh(started: threading.Event) -> None:
    started.set()
    if _self_lock.acquire(timeout=30):  # blocks-self
        _self_lock.release()


def test_self_deadlock_names_the_line_that_took_the_lock_not_the_one_that_waits(patched: None) -> None:
    from lockwatch import _text

    errors: list[BaseException] = []
    started = threading.Event()
    thread = threading.Thread(target=_get_then_refresh, args=(errors, started), name="self", daemon=True)
    thread.start()
    try:
        started.wait(10)
        _wait_until(lambda: any(s.waiting_for is _self_lock for s in _state.states()))
        report = _snapshot.take()
    finally:
        _self_lock.release()  # a Lock may be released by any thread: the wait ends
        thread.join(10)
        _state.prune_dead_threads()
    info = thread_info(report, thread.ident)
    assert info.waiting_for == _self_lock.id and info.holding == (_self_lock.id,)
    taken = info.acquired_at[_self_lock.id]
    assert (taken.line, taken.function) == (_line_of("taken-self"), "_get_then_refresh")
    assert f"taken at test_snapshot.py:{_line_of('taken-self')} in _get_then_refresh" in _text.format_report(report)


def test_a_with_block_already_left_is_not_where_a_held_lock_was_taken() -> None:
    lock = lockwatch.Lock()

    def take() -> None:
        lock.acquire()

    with lock:
        pass
    take()  # taken in a frame that has returned: nothing alive says where
    try:
        report = lockwatch.snapshot()
    finally:
        lock.release()
    me = report.thread(threading.get_ident())
    assert me is not None and lock.id in me.holding and lock.id not in me.acquired_at


def test_acquire_then_try_finally_release_is_where_it_was_taken() -> None:
    lock = lockwatch.Lock()
    lock.acquire()  # taken-acquire
    try:
        report = lockwatch.snapshot()
    finally:
        lock.release()
    lock.acquire()
    lock.release()
    me = report.thread(threading.get_ident())
    assert me is not None and me.acquired_at[lock.id].line == _line_of("taken-acquire")
