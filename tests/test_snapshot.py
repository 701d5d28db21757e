"""Snapshots: names of threads that have ended, and labels of locks kept in containers."""

from __future__ import annotations

import _thread
import threading
from pathlib import Path
from typing import Any, Iterator

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
