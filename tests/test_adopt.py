"""Adopting logging's locks made before patch(): swapped in while free, shared with the raw lock, put back at unpatch."""

from __future__ import annotations

import _thread
import io
import logging
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import networkx  # noqa: F401 - patch() imports it, which calls logging.getLogger(): done before any test holds that lock
import pytest

import lockwatch
from lockwatch import _adopt

RAW_RLOCK = _thread.RLock


@pytest.fixture
def handler() -> Iterator[logging.StreamHandler[io.StringIO]]:
    """A handler (and its raw lock) made before any patch, logging to a string."""
    assert not lockwatch.is_patched(), "these tests patch and unpatch themselves"
    stream = io.StringIO()
    made = logging.StreamHandler(stream)
    logger = logging.getLogger("lockwatch.tests.adopt")
    logger.addHandler(made)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield made
    logger.removeHandler(made)
    made.close()


def start(tmp_path: Path) -> lockwatch._patch.Patch:
    return lockwatch.patch(interval=5, on_deadlock="report", order="off", dump_dir=str(tmp_path / "dumps"))


def hold_in_thread(lock: object) -> tuple[threading.Event, threading.Thread]:
    """A thread that holds ``lock`` until the returned event is set."""
    holding = threading.Event()
    release = threading.Event()

    def run() -> None:
        with lock:  # type: ignore[attr-defined]
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert holding.wait(10)
    return release, thread


def test_patch_adopts_loggings_locks_and_the_last_stop_puts_the_raw_ones_back(handler, tmp_path: Path) -> None:
    raw_module, raw_handler = logging._lock, handler.lock  # type: ignore[attr-defined]
    assert type(raw_module) is RAW_RLOCK and type(raw_handler) is RAW_RLOCK
    patch = start(tmp_path)
    try:
        assert isinstance(logging._lock, lockwatch.RLock)  # type: ignore[attr-defined]
        assert isinstance(handler.lock, lockwatch.RLock)
        assert _adopt.last is not None
        assert "logging._lock" in _adopt.last.adopted and "StreamHandler.lock" in _adopt.last.adopted
        # Same lock class as the ones logging makes under the patch: logging's own lines.
        assert handler.lock.site[0] == logging.__file__ and handler.lock.site[2] == "createLock"
        assert logging._lock.site[0] == logging.__file__  # type: ignore[attr-defined]
        logging.getLogger("lockwatch.tests.adopt").info("under the patch")
        nested = lockwatch.patch(interval=5, on_deadlock="report", order="off", dump_dir=str(tmp_path / "dumps"))
        nested.stop()
        assert isinstance(handler.lock, lockwatch.RLock)  # only the last stop restores
    finally:
        patch.stop()
    assert logging._lock is raw_module  # type: ignore[attr-defined]
    assert handler.lock is raw_handler
    assert handler.stream.getvalue() == "under the patch\n"


def test_a_handler_lock_held_by_another_thread_stays_raw(handler, tmp_path: Path) -> None:
    raw = handler.lock
    release, thread = hold_in_thread(raw)
    try:
        patch = start(tmp_path)
        try:
            assert handler.lock is raw
            assert _adopt.last is not None and "StreamHandler.lock (held)" in _adopt.last.left_raw
            assert isinstance(logging._lock, lockwatch.RLock)  # type: ignore[attr-defined]
        finally:
            patch.stop()
    finally:
        release.set()
        thread.join(10)


def test_loggings_lock_held_by_another_thread_leaves_everything_raw(handler, tmp_path: Path) -> None:
    raw_module = logging._lock  # type: ignore[attr-defined]
    release, thread = hold_in_thread(raw_module)
    try:
        patch = start(tmp_path)
        try:
            assert logging._lock is raw_module  # type: ignore[attr-defined]
            assert type(handler.lock) is RAW_RLOCK
            assert _adopt.last is not None and _adopt.last.adopted == ()
        finally:
            patch.stop()
    finally:
        release.set()
        thread.join(10)


def test_patch_called_while_this_thread_holds_loggings_lock_leaves_it_raw(handler, tmp_path: Path) -> None:
    # A patch() from inside a handler or a logging.config call: the swapped lock would be released unheld.
    raw_module = logging._lock  # type: ignore[attr-defined]
    with raw_module:
        with handler.lock:
            patch = start(tmp_path)
            try:
                assert logging._lock is raw_module  # type: ignore[attr-defined]
            finally:
                patch.stop()
    with handler.lock:
        patch = start(tmp_path)
        try:
            assert type(handler.lock) is RAW_RLOCK
            assert isinstance(logging._lock, lockwatch.RLock)  # type: ignore[attr-defined]
        finally:
            patch.stop()


def test_a_thread_that_fetched_the_raw_lock_before_the_swap_still_excludes_the_others(handler, tmp_path: Path) -> None:
    raw = handler.lock  # fetched before the swap, as a thread inside Handler.acquire() may have
    patch = start(tmp_path)
    try:
        adopted = handler.lock
        assert adopted is not raw
        release, thread = hold_in_thread(raw)
        try:
            assert adopted.acquire(False) is False
            assert adopted.acquire(timeout=0.05) is False
        finally:
            release.set()
            thread.join(10)
        with adopted:
            assert adopted.acquire(False)  # reentrant, as an RLock
            adopted.release()
            taken: list[bool] = []
            other = threading.Thread(target=lambda: taken.append(raw.acquire(False)))
            other.start()
            other.join(10)
            assert taken == [False]  # the raw lock is the same lock
    finally:
        patch.stop()


def test_a_busy_stand_in_stays_at_unpatch_keeps_working_and_goes_back_later(handler, tmp_path: Path) -> None:
    raw = handler.lock
    patch = start(tmp_path)
    adopted = handler.lock
    release, thread = hold_in_thread(adopted)
    try:
        patch.stop()
        assert handler.lock is adopted  # held: putting the raw one back would strand its holder
    finally:
        release.set()
        thread.join(10)
    logging.getLogger("lockwatch.tests.adopt").info("after unpatch")
    assert handler.stream.getvalue() == "after unpatch\n"
    start(tmp_path).stop()  # the next last stop tries again
    assert handler.lock is raw


@pytest.mark.timeout(60)
def test_fork_while_another_thread_holds_an_adopted_lock(tmp_path: Path) -> None:
    script = tmp_path / "fork_child.py"
    script.write_text(
        textwrap.dedent(
            """
            import io, logging, os, sys, threading
            import lockwatch

            stream = io.StringIO()
            handler = logging.StreamHandler(stream)
            logging.getLogger().addHandler(handler)
            lockwatch.patch(interval=5, order="off")
            assert isinstance(handler.lock, lockwatch.RLock), handler.lock
            holding, release = threading.Event(), threading.Event()

            def hold():
                with handler.lock:
                    holding.set()
                    release.wait(30)

            thread = threading.Thread(target=hold, daemon=True)
            thread.start()
            holding.wait(10)
            pid = os.fork()
            if pid == 0:  # logging re-creates its locks' state after fork: the held lock is free here
                logging.getLogger("child").warning("child logs")
                with logging._lock:
                    pass
                os._exit(0 if stream.getvalue() == "child logs\\n" else 3)
            release.set()
            thread.join(10)
            _, status = os.waitpid(pid, 0)
            print("child status", os.waitstatus_to_exitcode(status))
            """
        )
    )
    result = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", str(script)], capture_output=True,
                            text=True, timeout=50, cwd=tmp_path)
    assert result.stdout == "child status 0\n", result.stderr


def test_raw_locks_finds_module_and_attribute_locks_but_not_lockwatchs_own() -> None:
    module = types.ModuleType("lockwatch_tests_census")
    module.__dict__["__builtins__"] = __builtins__
    module.guard = _thread.allocate_lock()  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module

    class Holder:
        def __init__(self) -> None:
            self.mutex = _thread.RLock()

    holder = Holder()
    try:
        found = _adopt.raw_locks()
    finally:
        del sys.modules[module.__name__]
    assert "lockwatch_tests_census.guard" in found
    assert "Holder.mutex" in found
    assert "threading._active_limbo_lock" in found
    assert not [label for label in found if label.startswith(("lockwatch.", "_Watchdog", "_state"))]
    assert holder.mutex is not None
