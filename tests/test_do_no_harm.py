"""Do no harm (issue 10): correct programs run to completion under lockwatch, and real deadlocks are still reported.

Black-box tests: real programs under ``lockwatch run`` or ``pytest --lockwatch``
in subprocesses, or in this process under ``lockwatch.patch()``, judged only by
what a user sees (exit status, stderr, dumps, exceptions, reports).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from _reports import Collector

import lockwatch

#: Seconds a subprocess may take before it is killed and the test fails (a hang is the bug under test).
TIMEOUT = 40.0
JOIN = 10.0
DEADLOCK_EXIT = 86


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}
    env["PYTHONFAULTHANDLER"] = "1"
    return env


def run_program(tmp_path: Path, source: str, *options: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``lockwatch run --dump-dir tmp/dumps OPTIONS prog.py``; a run that outlives ``timeout`` fails the test."""
    program = tmp_path / "prog.py"
    program.write_text(textwrap.dedent(source))
    command = [sys.executable, "-m", "lockwatch", "run", "--dump-dir", str(tmp_path / "dumps"), *options, str(program)]
    try:
        return subprocess.run(command, cwd=tmp_path, env=clean_env(), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the program hung under lockwatch run (killed after {timeout} s)\n"
                    f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}")


def dumps(directory: Path, kind: str = "*") -> list[dict[str, Any]]:
    return [json.loads(Path(p).read_text()) for p in sorted(glob.glob(str(directory / f"{kind}-*.json")))]




# --- the logging-handler inversion (lockwatch hung the program it watched) ----------------------

LOGGING_INVERSION = """\
import logging, sys, threading

CAPTURE = {capture}
state_lock = threading.RLock()

class AuditHandler(logging.Handler):
    def emit(self, record):
        with state_lock:                    # handler lock -> state_lock
            pass

logging.getLogger().addHandler(AuditHandler())
logging.getLogger().setLevel(logging.DEBUG)
logging.captureWarnings(CAPTURE)            # LockOrderWarning routed into the same handler
print("graphviz imported at start:", "graphviz" in sys.modules, flush=True)
logging.info("first record")
with state_lock:
    logging.info("logged while holding state_lock")   # state_lock -> handler lock: a real inversion
print("done", flush=True)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("capture", [False, True], ids=["warnings-to-stderr", "warnings-to-logging"])
def test_logging_handler_inversion_runs_to_completion_and_is_reported(tmp_path: Path, capture: bool) -> None:
    result = run_program(tmp_path, LOGGING_INVERSION.format(capture=capture))
    assert result.returncode == 0, result.stderr
    assert "done" in result.stdout
    assert "lock order" in result.stderr.lower() or "lock-order" in result.stderr.lower() or dumps(
        tmp_path / "dumps", "lock-order"
    ), f"the inversion through the handler lock was not reported:\n{result.stderr}"
    assert not dumps(tmp_path / "dumps", "deadlock")
    assert "Traceback" not in result.stderr, result.stderr


# --- a deadlock while a deadlocked thread holds logging's module lock ---------------------------

DEADLOCK_HOLDING_LOGGING_LOCK = """\
import logging, threading

first = threading.Lock()
second = threading.Lock()
both_hold_one = threading.Barrier(2)

def configure():
    with second:
        logging._lock.acquire()             # e.g. inside logging.config: the module lock is held
        both_hold_one.wait()
        with first:
            pass

worker = threading.Thread(target=configure, name="configure", daemon=True)
worker.start()
with first:
    both_hold_one.wait()
    with second:
        pass
print("unreachable", flush=True)
"""


@pytest.mark.timeout(60)
def test_deadlock_while_logging_module_lock_is_held_is_reported_and_exits(tmp_path: Path) -> None:
    # Order checking off: the watchdog is the first to report (and to need Graphviz).
    result = run_program(tmp_path, DEADLOCK_HOLDING_LOGGING_LOCK, "--on-deadlock", "exit", "--interval", "0.2", "--order", "off")
    assert result.returncode == DEADLOCK_EXIT, f"status {result.returncode}\n{result.stderr}"
    assert "DEADLOCK" in result.stderr, result.stderr
    found = dumps(tmp_path / "dumps", "deadlock")
    assert len(found) == 1
    names = {t["id"]: t["name"] for t in found[0]["threads"]}
    assert sorted(names[step["thread"]] for step in found[0]["cycles"][0]) == ["MainThread", "configure"]


# --- a callable that never returns must not stop later reports ----------------------------------

BLOCKING_CALLBACK = """\
import _thread, glob, os, sys, threading, time
import lockwatch

DUMPS = sys.argv[1]
called = _thread.allocate_lock(); called.acquire()
never = _thread.allocate_lock(); never.acquire()
calls = []

def on_deadlock(report):
    calls.append(report)
    if len(calls) == 1:
        called.release()
        never.acquire()                     # the user's callable blocks forever

lockwatch.patch(on_deadlock=on_deadlock, interval=0.1, dump_dir=DUMPS, order="off")

def deadlock(tag):
    a, b = threading.Lock(), threading.Lock()
    barrier = threading.Barrier(2)
    def one():
        with a:
            barrier.wait()
            with b: pass
    def two():
        with b:
            barrier.wait()
            with a: pass
    for target in (one, two):
        threading.Thread(target=target, name=f"{tag}-{target.__name__}", daemon=True).start()

deadlock("first")
if not called.acquire(True, 20):
    print("first deadlock never reported", flush=True); os._exit(3)
deadlock("second")
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    if len(glob.glob(os.path.join(DUMPS, "deadlock-*.json"))) >= 2:
        print("second deadlock reported", flush=True); os._exit(0)
    time.sleep(0.05)
print("second deadlock not reported", flush=True)
os._exit(4)
"""


@pytest.mark.timeout(60)
def test_a_blocking_on_deadlock_callable_does_not_stop_the_next_report(tmp_path: Path) -> None:
    program = tmp_path / "prog.py"
    program.write_text(BLOCKING_CALLBACK)
    result = subprocess.run([sys.executable, str(program), str(tmp_path / "dumps")], env=clean_env(),
                            capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    names = sorted(
        sorted(t["name"] for t in dump["threads"] if t.get("role") == "cycle") for dump in dumps(tmp_path / "dumps", "deadlock")
    )
    assert names == [["first-one", "first-two"], ["second-one", "second-two"]], names


# --- a Lock used as a signal: taken in __init__, re-acquired to wait, released by another thread ---

SIGNAL_LOCK_CLASS = """\
import threading, time

class Job:
    def __init__(self):
        self.done = threading.Lock()
        self.done.acquire()                 # held until the job is finished

    def finish(self):
        self.done.release()                 # by the worker thread, not by the taker

    def wait(self):
        self.done.acquire()                 # blocks until another thread releases it
        self.done.release()

def work(job):
    time.sleep(2.5)                         # the scenario itself is a delay
    job.finish()
"""

SIGNAL_LOCK_PROGRAM = SIGNAL_LOCK_CLASS + """
job = Job()
threading.Thread(target=work, args=(job,), name="worker").start()
job.wait()
print("job finished", flush=True)
"""


@pytest.mark.timeout(60)
def test_lock_used_as_a_signal_is_no_deadlock_under_run_exit(tmp_path: Path) -> None:
    result = run_program(tmp_path, SIGNAL_LOCK_PROGRAM, "--on-deadlock", "exit", "--interval", "0.2")
    assert result.returncode == 0, f"status {result.returncode}\n{result.stderr}"
    assert "job finished" in result.stdout
    assert not dumps(tmp_path / "dumps"), result.stderr


@pytest.mark.timeout(90)
def test_lock_used_as_a_signal_passes_under_pytest_lockwatch(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_signal=SIGNAL_LOCK_CLASS + """

def test_wait_for_job():
    job = Job()
    worker = threading.Thread(target=work, args=(job,), name="worker")
    worker.start()
    job.wait()
    worker.join(10)
""")
    result = pytester.runpytest_subprocess("--lockwatch", "--lockwatch-interval=0.2", "-p", "no:cacheprovider",
                                           timeout=75)
    result.assert_outcomes(passed=1)


# --- readers-writer lock: the last reader releases the lock the first reader took ---------------


def lock_factory(tag: str) -> Any:
    """``threading.Lock`` called from a creation site of its own: a lock class no other test has touched.

    lockwatch learns per lock class (creation site) for the whole process, so a test
    that needs a fresh class must not share its creation line with another test.
    """
    namespace: dict[str, Any] = {"threading": threading}
    exec(compile("def make():\n    return threading.Lock()\n", f"<{tag}>", "exec"), namespace)
    return namespace["make"]


class ReadersWriterLock:
    """The textbook readers-preference lock: the resource lock is taken by one thread, released by another."""

    def __init__(self, tag: str = "rw") -> None:
        self.readers = 0
        self.readers_lock = lock_factory(f"{tag}-readers_lock")()
        self.resource = lock_factory(f"{tag}-resource")()

    def acquire_read(self) -> None:
        with self.readers_lock:
            self.readers += 1
            if self.readers == 1:
                self.resource.acquire()

    def release_read(self) -> None:
        with self.readers_lock:
            self.readers -= 1
            if self.readers == 0:
                self.resource.release()

    def acquire_write(self) -> None:
        self.resource.acquire()

    def release_write(self) -> None:
        self.resource.release()


def run_threads(*targets: Any) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrap(target: Any) -> Any:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(t), name=getattr(t, "__name__", None)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * JOIN)  # a thread that failed leaves the others waiting JOIN at most
    assert not any(t.is_alive() for t in threads), f"threads still running; errors so far: {errors}"
    return errors


@pytest.mark.timeout(60)
@pytest.mark.parametrize("taker_alive", [True, False], ids=["taker-alive", "taker-ended"])
def test_readers_writer_pattern_reports_nothing_in_raise_mode(watch: Any, collect: Collector, taker_alive: bool) -> None:
    interval = 0.1
    watch(order="raise", on_deadlock="break", interval=interval)
    # Every ReadersWriterLock's resource lock is one lock class (one creation line). A textbook
    # reader takes it under readers_lock and, as first reader leaving, takes readers_lock under
    # it: a one-thread cycle lockdep reports until the class is known as a signal. So the
    # class is first seen released by another thread (a writer hands the lock over).
    tag = f"rw-{taker_alive}"
    handed_over = ReadersWriterLock(tag)
    writer_in, writer_out = threading.Event(), threading.Event()

    def writer() -> None:
        handed_over.acquire_write()
        writer_in.set()
        if taker_alive:
            assert writer_out.wait(JOIN)    # alive while another thread releases its lock

    def other() -> None:
        assert writer_in.wait(JOIN)
        handed_over.release_write()         # released by a thread that did not take it
        writer_out.set()

    with warnings.catch_warnings():
        warnings.simplefilter("error", lockwatch.LockOrderWarning)
        taker = threading.Thread(target=writer, name="writer")
        taker.start()
        if taker_alive:
            assert run_threads(other) == []
        else:
            # The releasing thread starts after the taker ended, with the taker's ident
            # (pthreads reuse them): it is still not the thread that took the lock.
            taker.join(JOIN)
            taker_ident = taker.ident
            for _ in range(300):
                released: list[bool] = []

                def release_if_same_ident() -> None:
                    if threading.get_ident() == taker_ident:
                        other()
                        released.append(True)

                assert run_threads(release_if_same_ident) == []
                if released:
                    break
            else:
                other()  # no ident came back: release from this thread
        taker.join(JOIN)

        rw = ReadersWriterLock(tag)
        a_in, b_in, a_out, b_out = (threading.Event() for _ in range(4))
        held_after_handover: list[tuple[str, ...]] = []

        def first_reader() -> None:
            rw.acquire_read()               # first reader: takes the resource lock
            a_in.set()
            assert b_in.wait(JOIN)
            rw.release_read()
            a_out.set()
            assert b_out.wait(JOIN)         # B, the last reader, released the resource lock
            me = threading.current_thread().name
            held_after_handover.extend(t.holding for t in lockwatch.snapshot().threads if t.name == me)
            rw.acquire_read()               # readers_lock again: no stale "resource" held here
            rw.release_read()

        def second_reader() -> None:
            assert a_in.wait(JOIN)
            rw.acquire_read()
            b_in.set()
            assert a_out.wait(JOIN)
            rw.release_read()               # last reader: releases what A took
            b_out.set()

        assert run_threads(first_reader, second_reader) == []
        assert held_after_handover == [()], f"the first reader still 'holds' what another thread released: {held_after_handover}"

        # Then the pattern in the wild: readers and writers in a loop.
        def reader() -> None:
            for _ in range(300):
                rw.acquire_read()
                rw.release_read()

        def writer_loop() -> None:
            for _ in range(300):
                rw.acquire_write()
                rw.release_write()

        errors = run_threads(reader, reader, reader, writer_loop, writer_loop)
    assert errors == []
    time.sleep(3 * interval)  # reports are published by lockwatch's thread: let any late one arrive
    assert collect.kinds() == []
    assert not rw.resource.locked() and not rw.readers_lock.locked()


# --- a self-relock: get() holds a plain Lock and calls refresh(), which takes it again -----------


class Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value = 0

    def get(self) -> int:
        with self.lock:
            return self.refresh()

    def refresh(self) -> int:
        with self.lock:                     # already held by this very thread, on its own stack
            self.value += 1
            return self.value


@pytest.mark.timeout(60)
def test_self_relock_is_one_deadlock_at_once_and_breaks(watch: Any, collect: Collector) -> None:
    interval = 2.0  # the report must come before the watchdog's first look, not after two
    watch(order="warn", on_deadlock="break", interval=interval)
    cache = Cache()
    outer = threading.Lock()  # another lock held around it: still one self-deadlock, no order cycle
    outcome: list[Any] = []

    def reader() -> None:
        started = time.monotonic()
        try:
            with outer:
                cache.get()
            outcome.append("returned")
        except BaseException as exc:
            outcome.append(exc)
        outcome.append(time.monotonic() - started)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread = threading.Thread(target=reader, name="reader")
        thread.start()
        thread.join(JOIN)
        assert not thread.is_alive(), "the self-relock was never broken"
    error, seconds = outcome
    assert isinstance(error, lockwatch.DeadlockError), error
    assert seconds < interval / 2, f"reported after {seconds:.2f} s: not at once, before blocking"
    assert not cache.lock.locked()
    # Give a late (watchdog) report the time to show up before counting.
    time.sleep(2 * interval + 0.5)
    assert collect.kinds() == ["deadlock"], collect.kinds()
    assert not [w for w in caught if issubclass(w.category, lockwatch.LockOrderWarning)]


@pytest.mark.timeout(60)
def test_self_relock_under_run_exit_is_a_deadlock_not_an_order_cycle(tmp_path: Path) -> None:
    result = run_program(tmp_path, """\
        import threading

        class Cache:
            def __init__(self):
                self.lock = threading.Lock()

            def get(self):
                with self.lock:
                    return self.refresh()

            def refresh(self):
                with self.lock:
                    return 1

        threading.Thread(target=Cache().get, name="reader").start()
        """, "--on-deadlock", "exit")
    assert result.returncode == DEADLOCK_EXIT, f"status {result.returncode}\n{result.stderr}"
    assert [d["kind"] for d in dumps(tmp_path / "dumps")] == ["deadlock"], result.stderr
    assert "lock order" not in result.stderr.lower(), result.stderr


# --- fork: a patched program that never blocked has no extra thread -------------------------------

FORK_PROGRAM = """\
import json, os, sys, threading

def os_threads():
    return len(os.listdir("/proc/self/task"))

before = (threading.active_count(), os_threads())
import lockwatch
lockwatch.patch(dump_dir=sys.argv[1])
lock = threading.RLock()
with lock:                                  # uncontended: nothing ever blocks
    with threading.Lock():
        pass
after = (threading.active_count(), os_threads())
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, json.dumps([threading.active_count(), len(sys._current_frames()), os_threads()]).encode())
    os._exit(0)
os.close(write)
_, status = os.waitpid(pid, 0)
child = json.loads(os.read(read, 1000))
print(json.dumps({"before": before, "after": after, "child": child}))
"""


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.isdir("/proc/self/task"), reason="needs fork and /proc")
def test_patched_program_that_never_blocked_has_no_extra_thread_and_forks_single_threaded(tmp_path: Path) -> None:
    program = tmp_path / "prog.py"
    program.write_text(FORK_PROGRAM)
    result = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", str(program), str(tmp_path / "dumps")],
                            env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert "DeprecationWarning" not in result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["after"] == seen["before"], f"patch() changed the thread count before anything blocked: {seen}"
    assert seen["child"] == [1, 1, 1], f"the fork child has more than one thread: {seen}"
