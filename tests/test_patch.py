"""patch()/unpatch(): what gets instrumented, nesting, restoring, and programs behaving the same."""

from __future__ import annotations

import concurrent.futures
import io
import logging
import os
import queue
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

import lockwatch
from lockwatch import _patch, _state

pytestmark = pytest.mark.timeout(60)

ORIGINAL_LOCK = threading.Lock
ORIGINAL_RLOCK = threading.RLock


@pytest.fixture(autouse=True)
def _restore_threading():  # type: ignore[no-untyped-def]
    yield
    lockwatch.unpatch()
    assert threading.Lock is ORIGINAL_LOCK and threading.RLock is ORIGINAL_RLOCK


def quiet(**settings: object) -> dict[str, object]:
    """Settings for in-process tests: no signal handler, no order noise unless asked."""
    return {"signal": False, "order": "off", **settings}


def test_patch_call_swaps_and_unpatch_restores_exactly() -> None:
    handle = lockwatch.patch(**quiet())
    assert lockwatch.is_patched() and handle.active
    assert threading.Lock is lockwatch.Lock and threading.RLock is lockwatch.RLock
    lockwatch.unpatch()
    assert not lockwatch.is_patched() and not handle.active
    assert threading.Lock is ORIGINAL_LOCK and threading.RLock is ORIGINAL_RLOCK


def test_context_manager_and_idempotent_start() -> None:
    with lockwatch.patch(**quiet()) as handle:
        assert handle.start() is handle  # starting an active patch again changes nothing
        assert isinstance(threading.Lock(), lockwatch.Lock)
    assert threading.Lock is ORIGINAL_LOCK


def test_decorator_forms_activate_only_during_the_call() -> None:
    seen: list[bool] = []

    @lockwatch.patch(**quiet())
    def with_parentheses() -> None:
        seen.append(isinstance(threading.RLock(), lockwatch.RLock))

    @lockwatch.patch
    def bare() -> None:
        seen.append(isinstance(threading.Lock(), lockwatch.Lock))

    assert threading.Lock is ORIGINAL_LOCK  # decorating activated nothing
    with_parentheses()
    bare()
    assert seen == [True, True]
    assert threading.Lock is ORIGINAL_LOCK


def test_nested_patches_restore_the_outer_configuration() -> None:
    with lockwatch.patch(**quiet(on_deadlock="report")):
        assert _patch.active_config().on_deadlock == "report"  # type: ignore[union-attr]
        with lockwatch.patch(**quiet(on_deadlock="break")):
            assert _state.break_enabled
            assert _patch.active_config().on_deadlock == "break"  # type: ignore[union-attr]
        assert not _state.break_enabled
        assert threading.Lock is lockwatch.Lock  # still patched by the outer one
    assert threading.Lock is ORIGINAL_LOCK


def test_locks_created_before_patching_keep_working_untouched() -> None:
    before = threading.Lock()
    with lockwatch.patch(**quiet()):
        with before:
            assert before.locked()
        assert not isinstance(before, lockwatch.Lock)
    assert not before.locked()


def test_stdlib_built_on_patched_locks_is_instrumented() -> None:
    with lockwatch.patch(**quiet()):
        cond = threading.Condition()
        sem = threading.Semaphore(2)
        event = threading.Event()
        barrier = threading.Barrier(1)
        q: queue.Queue[int] = queue.Queue()
        handler = logging.StreamHandler(io.StringIO())
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            shutdown_lock = pool._shutdown_lock  # type: ignore[attr-defined]
    assert isinstance(cond._lock, lockwatch.RLock)  # type: ignore[attr-defined]
    for lock in (sem._cond._lock, event._cond._lock, barrier._cond._lock, q.mutex):  # type: ignore[attr-defined]
        assert isinstance(lock, lockwatch.Lock)
    assert isinstance(handler.lock, lockwatch.RLock)
    assert isinstance(shutdown_lock, lockwatch.Lock)


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(ValueError, match="interval must be a positive number.*patch\\(\\) arguments"):
        lockwatch.patch(interval=-1)
    with pytest.raises(ValueError, match="on_deadlock must be one of"):
        lockwatch.patch(on_deadlock="explode")
    with pytest.raises(ValueError, match="unknown lockwatch setting 'intervall'"):
        lockwatch.patch(intervall=1)
    assert not lockwatch.is_patched()


def test_condition_wait_on_an_rlock_held_recursively() -> None:
    with lockwatch.patch(**quiet(on_deadlock="break", order="warn", interval=0.05)):
        cond = threading.Condition()
        ready = threading.Event()
        items: list[int] = []
        consumer_states: list[Any] = []

        def consumer() -> None:
            consumer_states.append(_state.current_state())
            with cond:
                with cond:  # held twice: wait() must release both levels and restore them
                    ready.set()
                    assert cond.wait_for(lambda: items, timeout=10)
                    assert cond._lock._recursion_count() == 2  # type: ignore[attr-defined]

        thread = threading.Thread(target=consumer)
        thread.start()
        assert ready.wait(10)
        with cond:  # only possible if wait() really released the recursive hold
            items.append(1)
            cond.notify()
        thread.join(10)
        assert not thread.is_alive()
        # The consumer's own state (an ended thread whose ident it reused is another thread).
        [consumer_state] = consumer_states
        assert not consumer_state.held


def test_queue_producer_consumer_and_pool_with_logging_behave_the_same() -> None:
    def workload() -> tuple[list[int], list[str]]:
        stream = io.StringIO()
        logger = logging.getLogger(f"lockwatch-test-{threading.get_ident()}-{id(stream)}")
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
        q: queue.Queue[int | None] = queue.Queue(maxsize=4)
        out: list[int] = []

        def consume() -> None:
            while (item := q.get()) is not None:
                out.append(item * 2)
                q.task_done()
            q.task_done()

        consumer = threading.Thread(target=consume)
        consumer.start()
        for i in range(200):
            q.put(i)
        q.put(None)
        q.join()
        consumer.join(10)

        def task(n: int) -> int:
            logger.info("task %d", n)
            return n * n

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            squares = list(pool.map(task, range(50)))
        logger.removeHandler(handler)
        lines = sorted(stream.getvalue().splitlines())
        return out + squares, lines

    plain = workload()
    with lockwatch.patch(**quiet(order="warn", on_deadlock="break", interval=0.05)):
        instrumented = workload()
    assert instrumented == plain


FORK_PROGRAM = textwrap.dedent(
    """
    import os, sys, threading
    import lockwatch
    lockwatch.patch(interval=0.05, on_deadlock="exit", signal=False, dump_dir=sys.argv[1])
    lock = threading.Lock()
    other_holds = threading.Event()
    release = threading.Event()

    def holder():
        with lock:
            other_holds.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    other_holds.wait(10)
    pid = os.fork()
    if pid == 0:
        # The child has only this thread: lockwatch's state must say so,
        # and a lock of its own works normally.
        from lockwatch import _state
        mine = threading.Lock()
        with mine:
            pass
        states = _state.states()
        ok = [s.ident for s in states] == [threading.get_ident()] and lock.locked()
        print("child-ok" if ok else f"child-bad {states}", flush=True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    release.set()
    t.join(10)
    print("parent-ok", os.waitstatus_to_exitcode(status), flush=True)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_with_a_lock_held_in_another_thread(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "fork_program.py"
    script.write_text(FORK_PROGRAM)
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", str(script), str(tmp_path / "dumps")],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "child-ok" in result.stdout
    assert "parent-ok 0" in result.stdout
    assert not (tmp_path / "dumps").exists() or not list((tmp_path / "dumps").glob("deadlock-*"))
