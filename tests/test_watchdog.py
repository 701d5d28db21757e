"""The watchdog on real threads: deadlocks found and broken, no false reports, hangs, and its reactions."""

from __future__ import annotations

import glob
import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import lockwatch
from lockwatch import _dump, _events, _snapshot, _watchdog
from lockwatch._model import Report

INTERVAL = 0.05
JOIN = 10.0  # generous bound on every join: a failure must never hang the suite

pytestmark = pytest.mark.timeout(30)


@contextmanager
def watching(dump_dir: Path, **settings: Any) -> Iterator[None]:
    options: dict[str, Any] = dict(
        on_deadlock="break", interval=INTERVAL, order="off", dump_dir=str(dump_dir), signal=False
    )
    options.update(settings)
    with lockwatch.patch(**options):
        yield


def run_threads(targets: dict[str, Callable[[], None]]) -> dict[str, BaseException | None]:
    """Run each target in a thread named after it; return what each raised (None if nothing)."""
    outcome: dict[str, BaseException | None] = {}

    def wrap(name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
                outcome[name] = None
            except BaseException as exc:
                outcome[name] = exc

        return run

    threads = [threading.Thread(target=wrap(name, target), name=name) for name, target in targets.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN)
    assert not any(thread.is_alive() for thread in threads), "threads still blocked: deadlock not broken"
    return outcome


def dumps(dump_dir: Path, kind: str = "*") -> list[dict[str, Any]]:
    return [json.loads(Path(p).read_text()) for p in sorted(glob.glob(str(dump_dir / f"{kind}-*.json")))]


def only_deadlock(dump_dir: Path) -> dict[str, Any]:
    found = dumps(dump_dir, "deadlock")
    assert len(found) == 1, f"expected one deadlock dump, found {len(found)}"
    return found[0]


def cycle_names(dump: dict[str, Any]) -> list[str]:
    names = {t["id"]: t["name"] for t in dump["threads"]}
    (cycle,) = dump["cycles"]
    return [names[step["thread"]] for step in cycle]


def innermost(dump: dict[str, Any], name: str) -> dict[str, Any]:
    (thread,) = [t for t in dump["threads"] if t["name"] == name]
    return thread["stack"][-1]


def errors_of(outcome: dict[str, BaseException | None]) -> list[str]:
    unexpected = {n: e for n, e in outcome.items() if e is not None and not isinstance(e, lockwatch.DeadlockError)}
    assert not unexpected, unexpected
    return sorted(n for n, e in outcome.items() if isinstance(e, lockwatch.DeadlockError))


def settle() -> None:
    """Give the watchdog several looks: a false report would have been made by now."""
    time.sleep(INTERVAL * 6)


# --- deadlocks are found, reported and broken --------------------------------------------


def test_ab_ba_deadlock_is_broken_and_dumped(tmp_path: Path) -> None:
    with watching(tmp_path):
        a, b = threading.Lock(), threading.Lock()
        barrier = threading.Barrier(2, timeout=JOIN)

        def take(first: Any, second: Any) -> Callable[[], None]:
            def run() -> None:
                with first:
                    barrier.wait()
                    with second:  # BLOCKS HERE
                        pass

            return run

        outcome = run_threads({"left": take(a, b), "right": take(b, a)})
    victims = errors_of(outcome)
    assert len(victims) == 1
    error = outcome[victims[0]]
    assert isinstance(error, lockwatch.DeadlockError) and isinstance(error.report, Report)
    dump = only_deadlock(tmp_path)
    assert dump["kind"] == "deadlock"
    assert sorted(cycle_names(dump)) == ["left", "right"]
    assert {t["name"]: t["role"] for t in dump["threads"]}["left"] == "cycle"
    victim_name = {t["id"]: t["name"] for t in dump["threads"]}[dump["victim"]]
    assert victim_name == victims[0]
    assert "waits for lock" in dump["summary"]
    for name in ("left", "right"):
        frame = innermost(dump, name)
        assert frame["file"] == __file__ and "BLOCKS HERE" in frame["code"]
    assert _dump.wait_drawings(30)  # pictures are drawn by a child process
    assert os.path.exists(glob.glob(str(tmp_path / "deadlock-*.dot"))[0])


@pytest.mark.parametrize("count", [3, 5])
def test_dining_philosophers(tmp_path: Path, count: int) -> None:
    with watching(tmp_path):
        forks = [threading.Lock() for _ in range(count)]
        barrier = threading.Barrier(count, timeout=JOIN)

        def philosopher(seat: int) -> Callable[[], None]:
            def run() -> None:
                with forks[seat]:
                    barrier.wait()
                    with forks[(seat + 1) % count]:  # BLOCKS HERE
                        pass

            return run

        outcome = run_threads({f"philosopher-{i}": philosopher(i) for i in range(count)})
    assert len(errors_of(outcome)) == 1
    dump = only_deadlock(tmp_path)
    assert sorted(cycle_names(dump)) == sorted(f"philosopher-{i}" for i in range(count))
    # The cycle starts at its smallest thread id, and each lock is held by the next step's thread.
    (cycle,) = dump["cycles"]
    assert cycle[0]["thread"] == min(step["thread"] for step in cycle)
    owners = {lock["id"]: lock["owner"] for lock in dump["locks"]}
    for index, step in enumerate(cycle):
        assert owners[step["lock"]] == cycle[(index + 1) % count]["thread"]


def test_rlocks_held_recursively(tmp_path: Path) -> None:
    with watching(tmp_path):
        a, b = threading.RLock(), threading.RLock()
        barrier = threading.Barrier(2, timeout=JOIN)

        def take(first: Any, second: Any) -> Callable[[], None]:
            def run() -> None:
                with first, first:
                    barrier.wait()
                    with second:  # BLOCKS HERE
                        pass

            return run

        outcome = run_threads({"left": take(a, b), "right": take(b, a)})
    assert len(errors_of(outcome)) == 1
    dump = only_deadlock(tmp_path)
    assert sorted(cycle_names(dump)) == ["left", "right"]
    assert sorted(lock["count"] for lock in dump["locks"]) == [2, 2]
    assert all(lock["kind"] == "RLock" for lock in dump["locks"])


def test_condition_lock_in_the_cycle(tmp_path: Path) -> None:
    with watching(tmp_path):
        condition = threading.Condition()
        other = threading.Lock()
        barrier = threading.Barrier(2, timeout=JOIN)

        def notifier() -> None:
            with condition:
                barrier.wait()
                with other:  # BLOCKS HERE
                    condition.notify_all()

        def worker() -> None:
            with other:
                barrier.wait()
                with condition:  # BLOCKS HERE
                    pass

        outcome = run_threads({"notifier": notifier, "worker": worker})
    assert len(errors_of(outcome)) == 1
    dump = only_deadlock(tmp_path)
    assert sorted(cycle_names(dump)) == ["notifier", "worker"]
    # The stack ends at the user's `with condition:`, not inside threading or lockwatch.
    assert "BLOCKS HERE" in innermost(dump, "worker")["code"]


def test_thread_relocking_its_own_lock(tmp_path: Path) -> None:
    with watching(tmp_path):
        lock = threading.Lock()

        def relock() -> None:
            with lock:
                lock.acquire()  # BLOCKS HERE

        outcome = run_threads({"relocker": relock})
        assert not lock.locked()
    assert errors_of(outcome) == ["relocker"]
    dump = only_deadlock(tmp_path)
    assert cycle_names(dump) == ["relocker"]
    assert "which it already holds itself" in dump["summary"]


def test_deadlock_inside_thread_pool_workers(tmp_path: Path) -> None:
    with watching(tmp_path):
        a, b = threading.Lock(), threading.Lock()
        barrier = threading.Barrier(2, timeout=JOIN)

        def task(first: Any, second: Any) -> str:
            with first:
                barrier.wait()
                with second:  # BLOCKS HERE
                    return "done"

        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="pool") as pool:
            futures = [pool.submit(task, a, b), pool.submit(task, b, a)]
            exceptions = [f.exception(timeout=JOIN) for f in futures]
    assert sum(isinstance(e, lockwatch.DeadlockError) for e in exceptions) == 1
    assert [f.result() for f, e in zip(futures, exceptions, strict=False) if e is None] == ["done"]
    dump = only_deadlock(tmp_path)
    assert all(name.startswith("pool") for name in cycle_names(dump))


def test_deadlock_after_heavy_ordered_traffic(tmp_path: Path) -> None:
    with watching(tmp_path):
        a, b = threading.Lock(), threading.Lock()
        counter = [0]

        def ordered() -> None:
            for _ in range(3000):
                with a, b:
                    counter[0] += 1

        outcome = run_threads({f"worker-{i}": ordered for i in range(4)})
        assert errors_of(outcome) == [] and counter[0] == 12000
        assert dumps(tmp_path) == []
        barrier = threading.Barrier(2, timeout=JOIN)

        def inverted() -> None:
            with b:
                barrier.wait()
                with a:  # BLOCKS HERE
                    pass

        def straight() -> None:
            with a:
                barrier.wait()
                with b:  # BLOCKS HERE
                    pass

        outcome = run_threads({"inverted": inverted, "straight": straight})
    assert len(errors_of(outcome)) == 1
    assert sorted(cycle_names(only_deadlock(tmp_path))) == ["inverted", "straight"]


def test_main_thread_in_the_cycle(tmp_path: Path) -> None:
    with watching(tmp_path):
        a, b = threading.Lock(), threading.Lock()
        barrier = threading.Barrier(2, timeout=JOIN)
        main_error: list[BaseException] = []

        def helper() -> None:
            with b:
                barrier.wait()
                with a:  # BLOCKS HERE
                    pass

        thread_outcome: dict[str, BaseException | None] = {}

        def run_helper() -> None:
            try:
                helper()
                thread_outcome["helper"] = None
            except BaseException as exc:
                thread_outcome["helper"] = exc

        thread = threading.Thread(target=run_helper, name="helper")
        thread.start()
        try:
            with a:
                barrier.wait()
                with b:  # BLOCKS HERE
                    pass
        except lockwatch.DeadlockError as exc:
            main_error.append(exc)
        thread.join(JOIN)
        assert not thread.is_alive()
    broken = len(main_error) + isinstance(thread_outcome["helper"], lockwatch.DeadlockError)
    assert broken == 1
    assert sorted(cycle_names(only_deadlock(tmp_path))) == ["MainThread", "helper"]


def test_bystander_is_shown_but_not_in_the_cycle(tmp_path: Path) -> None:
    with watching(tmp_path):
        a, b = threading.Lock(), threading.Lock()
        barrier = threading.Barrier(3, timeout=JOIN)

        def take(first: Any, second: Any) -> Callable[[], None]:
            def run() -> None:
                with first:
                    barrier.wait()
                    with second:
                        pass

            return run

        def bystander() -> None:
            barrier.wait()
            with a:
                pass

        outcome = run_threads({"left": take(a, b), "right": take(b, a), "bystander": bystander})
    assert len(errors_of(outcome)) == 1
    dump = only_deadlock(tmp_path)
    roles = {t["name"]: t["role"] for t in dump["threads"]}
    assert sorted(cycle_names(dump)) == ["left", "right"]
    # The bystander may not have blocked yet when the snapshot was taken; if it had, it is marked.
    assert roles["bystander"] in ("bystander", None)
    assert roles["left"] == roles["right"] == "cycle"


# --- no false reports ----------------------------------------------------------------------


def test_no_report_on_ordered_locking_under_contention(tmp_path: Path) -> None:
    with watching(tmp_path):
        locks = [threading.Lock() for _ in range(3)]

        def worker() -> None:
            for _ in range(2000):
                with locks[0], locks[1], locks[2]:
                    pass

        outcome = run_threads({f"w{i}": worker for i in range(4)})
        settle()
    assert errors_of(outcome) == [] and dumps(tmp_path) == []


def test_no_report_on_lock_handed_between_threads(tmp_path: Path) -> None:
    with watching(tmp_path):
        lock = threading.Lock()

        def hand_off() -> None:
            for _ in range(200):
                lock.acquire()
                releaser = threading.Thread(target=lock.release)
                releaser.start()
                lock.acquire()  # waits for the other thread's release: a hand-off, not a deadlock
                lock.release()
                releaser.join(JOIN)

        outcome = run_threads({"owner": hand_off})
        settle()
    assert errors_of(outcome) == [] and dumps(tmp_path) == []


def test_no_report_on_producer_consumer(tmp_path: Path) -> None:
    with watching(tmp_path):
        items: queue.Queue[int | None] = queue.Queue(maxsize=2)
        condition = threading.Condition()
        shared: list[int] = []
        total = [0]

        def producer() -> None:
            for i in range(1500):
                items.put(i)
                with condition:
                    shared.append(i)
                    condition.notify()

        def consumer() -> None:
            while (item := items.get()) is not None:
                total[0] += item
                with condition:
                    condition.wait_for(lambda: bool(shared), timeout=JOIN)
                    shared.pop()

        consumers = [threading.Thread(target=consumer) for _ in range(2)]
        for thread in consumers:
            thread.start()
        outcome = run_threads({"p1": producer, "p2": producer})
        for _ in consumers:
            items.put(None)
        for thread in consumers:
            thread.join(JOIN)
        settle()
    assert errors_of(outcome) == [] and total[0] == 2 * sum(range(1500))
    assert dumps(tmp_path) == []


def test_no_report_on_a_long_hold_with_waiters_queued(tmp_path: Path) -> None:
    with watching(tmp_path):
        lock = threading.Lock()
        held, done = threading.Event(), threading.Event()

        def holder() -> None:
            with lock:
                held.set()
                done.wait(INTERVAL * 8)  # holds for 8 looks while the others queue behind it

        def waiter() -> None:
            held.wait(JOIN)
            with lock:
                pass

        outcome = run_threads({"holder": holder, "w1": waiter, "w2": waiter, "w3": waiter})
        settle()
    assert errors_of(outcome) == [] and dumps(tmp_path) == []


def test_no_report_on_semaphores_barriers_events(tmp_path: Path) -> None:
    with watching(tmp_path):
        semaphore = threading.BoundedSemaphore(2)
        barrier = threading.Barrier(4, timeout=JOIN)
        go = threading.Event()

        def worker() -> None:
            go.wait(JOIN)
            for _ in range(5):
                barrier.wait()
                for _ in range(50):
                    with semaphore:
                        pass

        def starter() -> None:
            time.sleep(INTERVAL * 3)  # others sit in Event.wait for a few looks
            go.set()

        outcome = run_threads({"starter": starter, **{f"w{i}": worker for i in range(4)}})
        settle()
    assert errors_of(outcome) == [] and dumps(tmp_path) == []


# --- hangs, reconfiguration, resilience ------------------------------------------------------


def test_hang_dump_for_an_event_never_set(tmp_path: Path) -> None:
    first = threading.Event()

    def listener(report: Report, paths: Sequence[str]) -> None:
        if report.kind == "hang":
            first.set()

    _events.subscribe(listener)
    try:
        with watching(tmp_path, hang_timeout=0.3):
            never = threading.Event()
            thread = threading.Thread(target=never.wait, name="sleeper")
            thread.start()
            try:
                assert first.wait(JOIN)
                time.sleep(0.5)  # more looks: the same episode is not reported again
            finally:
                never.set()
                thread.join(JOIN)
    finally:
        _events.unsubscribe(listener)
    hangs = dumps(tmp_path, "hang")
    assert len(hangs) == 1
    (sleeper,) = [t for t in hangs[0]["threads"] if t["name"] == "sleeper"]
    assert sleeper["waiting_in"] == "Condition.wait" and sleeper["role"] == "hung"
    assert sleeper["waiting_seconds"] >= 0.3
    assert "sleeper" in hangs[0]["summary"]
    assert not dumps(tmp_path, "deadlock")


def test_unwritable_dump_dir_says_once_and_still_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with watching(blocker / "dumps"):
        for _ in range(2):
            lock = threading.Lock()

            def relock() -> None:
                with lock:
                    lock.acquire()

            assert errors_of(run_threads({"relocker": relock})) == ["relocker"]
    err = capsys.readouterr().err
    assert err.count("cannot write dumps to") == 1
    assert err.count("DEADLOCK") == 2


def test_hang_dump_for_a_long_lock_wait(tmp_path: Path) -> None:
    hung = threading.Event()

    def listener(report: Report, paths: Sequence[str]) -> None:
        if report.kind == "hang":
            hung.set()

    _events.subscribe(listener)
    try:
        with watching(tmp_path, hang_timeout=0.2):
            lock = threading.Lock()
            held = threading.Event()

            def holder() -> None:
                with lock:
                    held.set()
                    hung.wait(JOIN)  # holds the lock until the hang has been reported

            def waiter() -> None:
                held.wait(JOIN)
                with lock:
                    pass

            outcome = run_threads({"holder": holder, "waiter": waiter})
    finally:
        _events.unsubscribe(listener)
    assert errors_of(outcome) == []
    (dump,) = dumps(tmp_path, "hang")
    (waiter_info,) = [t for t in dump["threads"] if t["name"] == "waiter"]
    assert waiter_info["role"] == "hung" and waiter_info["waiting_for"] is not None
    assert 'held by thread "holder"' in dump["summary"]
    assert not dumps(tmp_path, "deadlock")


class FlakyReportError(Exception):
    pass


def test_error_inside_a_look_is_said_once_and_the_watchdog_carries_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_take = _snapshot.take
    failures = [3]

    def flaky_take(*args: Any, **kwargs: Any) -> Report:
        if failures[0]:
            failures[0] -= 1
            raise FlakyReportError("boom inside lockwatch")
        return real_take(*args, **kwargs)

    monkeypatch.setattr(_snapshot, "take", flaky_take)
    with watching(tmp_path):
        lock = threading.Lock()

        def relock() -> None:
            with lock:
                lock.acquire()

        assert errors_of(run_threads({"relocker": relock})) == ["relocker"]
    assert failures == [0]
    err = capsys.readouterr().err
    assert err.count("boom inside lockwatch") == 1 and "carrying on" in err
    assert len(dumps(tmp_path, "deadlock")) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_no_report_after_fork_with_a_held_lock(tmp_path: Path) -> None:
    script = """
import os, sys, threading, warnings, lockwatch
warnings.simplefilter("ignore", DeprecationWarning)
lockwatch.patch(on_deadlock="exit", interval=0.05, order="off", dump_dir=sys.argv[1])
lock = threading.Lock()
held, release = threading.Event(), threading.Event()
def holder():
    with lock:
        held.set()
        release.wait()
thread = threading.Thread(target=holder)
thread.start()
held.wait()
pid = os.fork()
if pid == 0:
    # The holder does not exist here: the lock stays taken, but nobody deadlocked.
    got = lock.acquire(timeout=0.4)
    os._exit(10 + got)
release.set()
thread.join()
_, status = os.waitpid(pid, 0)
print("child status", os.waitstatus_to_exitcode(status))
"""
    result = run_script(script, str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "child status 10" in result.stdout
    assert dumps(tmp_path) == []


def test_watchdog_is_a_raw_thread_left_out_of_reports(tmp_path: Path) -> None:
    with watching(tmp_path, hang_timeout=60):  # a hang_timeout starts it at once (no wait announces a hang)
        ident = _watchdog.watchdog_ident()
        deadline = time.monotonic() + JOIN
        while ident is None and time.monotonic() < deadline:
            time.sleep(0.01)
            ident = _watchdog.watchdog_ident()
        assert ident in _snapshot.internal_thread_idents
        assert ident not in {t.ident for t in threading.enumerate()}
        assert ident not in {t.id for t in lockwatch.snapshot().threads}
        # Reconfiguring keeps the one thread.
        with watching(tmp_path, interval=0.1, hang_timeout=60):
            assert _watchdog.watchdog_ident() == ident
    assert not _watchdog.is_running()
    assert ident not in _snapshot.internal_thread_idents


# --- subprocesses: exit, report, callable, clean exit, fork ------------------------------------


def run_script(script: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True, timeout=timeout
    )


DEADLOCK_PAIR = """
import os, sys, threading, lockwatch
def deadlock(prefix, daemon=False):
    a, b = threading.Lock(), threading.Lock()
    barrier = threading.Barrier(2)
    def take(first, second):
        with first:
            barrier.wait()
            with second:
                pass
    threads = [threading.Thread(target=take, args=(a, b), name=prefix + "left", daemon=daemon),
               threading.Thread(target=take, args=(b, a), name=prefix + "right", daemon=daemon)]
    for t in threads:
        t.start()
    return threads
"""


def test_exit_mode_ends_the_process_with_status_86(tmp_path: Path) -> None:
    script = DEADLOCK_PAIR + """
lockwatch.patch(on_deadlock="exit", interval=0.05, order="off", dump_dir=sys.argv[1])
for t in deadlock(""):
    t.join()  # the main thread is stuck too: only the watchdog can end the process
"""
    result = run_script(script, str(tmp_path))
    assert result.returncode == lockwatch._config.DEADLOCK_EXIT_STATUS == 86, result.stderr
    assert '"left"' in result.stderr and '"right"' in result.stderr and "DEADLOCK" in result.stderr
    assert sorted(cycle_names(only_deadlock(tmp_path))) == ["left", "right"]


def test_report_mode_keeps_the_process_hung(tmp_path: Path) -> None:
    script = DEADLOCK_PAIR + """
lockwatch.patch(on_deadlock="report", interval=0.05, order="off", dump_dir=sys.argv[1])
for t in deadlock(""):
    t.join()
"""
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    seen: list[str] = []
    reported = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            if "deadlock dump written" in line:
                reported.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert reported.wait(15), "".join(seen)
        time.sleep(INTERVAL * 4)
        assert process.poll() is None  # still hung: a person can inspect it
    finally:
        process.kill()
        process.wait(JOIN)
        reader.join(JOIN)
    assert "".join(seen).count("DEADLOCK") == 1  # reported once, not at every look
    assert sorted(cycle_names(only_deadlock(tmp_path))) == ["left", "right"]


def test_callable_reaction_and_clean_exit(tmp_path: Path) -> None:
    script = DEADLOCK_PAIR + """
import time
calls = []
done = threading.Event()
def react(report):
    calls.append(report)
    if len(calls) == 2:
        done.set()
    raise ValueError("callback broke")
lockwatch.patch(on_deadlock=react, interval=0.05, order="off", dump_dir=sys.argv[1])
deadlock("one-", daemon=True)
deadlock("two-", daemon=True)
assert done.wait(15), "callable not called twice"
print("kinds", sorted(r.kind for r in calls), "cycles", [len(r.cycles[0]) for r in calls])
# The interpreter now exits with two deadlocked daemon threads pairs and a running watchdog.
"""
    result = run_script(script, str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "kinds ['deadlock', 'deadlock'] cycles [2, 2]" in result.stdout
    assert result.stderr.count("callback broke") == 1  # said once, then carried on
    assert "Traceback" not in result.stderr
    assert len(dumps(tmp_path, "deadlock")) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_gets_its_own_watchdog(tmp_path: Path) -> None:
    script = DEADLOCK_PAIR + """
import warnings
warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded process forked"
lockwatch.patch(on_deadlock="exit", interval=0.05, order="off", dump_dir=sys.argv[1])
pid = os.fork()
if pid == 0:
    for t in deadlock("child-"):
        t.join()
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child status", os.waitstatus_to_exitcode(status), "parent", os.getpid())
"""
    result = run_script(script, str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "child status 86" in result.stdout, result.stderr
    dump = only_deadlock(tmp_path)
    assert sorted(cycle_names(dump)) == ["child-left", "child-right"]
    assert f"parent {dump['pid']}" not in result.stdout  # written by the child, under its own pid


# --- SIGUSR1 requests against looks in progress (the hung-service snapshot flake) -----------------


@contextmanager
def look_held_open(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Make the next look stop in the middle (as while writing a deadlock dump) until released."""
    in_look, release_look = threading.Event(), threading.Event()
    real_look = _watchdog._Watchdog.look

    def slow_look(self: Any) -> None:
        if not in_look.is_set():
            in_look.set()
            release_look.wait(JOIN)
        real_look(self)

    monkeypatch.setattr(_watchdog._Watchdog, "look", slow_look)
    try:
        yield in_look, release_look
    finally:
        release_look.set()


def snapshot_listener() -> tuple[threading.Event, Callable[[Report, Sequence[str]], None]]:
    written = threading.Event()

    def listener(report: Report, paths: Sequence[str]) -> None:
        if report.kind == "snapshot":
            written.set()

    return written, listener


@pytest.mark.parametrize("wake_already_released", [False, True])
def test_snapshot_request_during_a_look_is_served_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wake_already_released: bool
) -> None:
    written, listener = snapshot_listener()
    _events.subscribe(listener)
    try:
        with look_held_open(monkeypatch) as (in_look, release_look), watching(tmp_path, interval=0.2):
            _watchdog._notify()  # the watchdog starts lazily: start it now
            assert in_look.wait(JOIN)
            watchdog = _watchdog._watchdog
            assert watchdog is not None
            if wake_already_released:
                watchdog.wake_up()  # a wake-up nobody consumed yet: the request's release finds it unlocked
            _watchdog._request_snapshot()
            assert not written.is_set()  # nothing happens while the look runs...
            release_look.set()
            assert written.wait(JOIN), "the request made during the look was lost"  # ...and then it is served
            assert watchdog.snapshot_requested is False
    finally:
        _events.unsubscribe(listener)
    assert dumps(tmp_path, "snapshot")


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGUSR1"), reason="the platform has no SIGUSR1")
def test_sigusr1_while_the_main_thread_is_in_a_raw_lock_wait_and_a_look_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal
    from _thread import allocate_lock

    written, listener = snapshot_listener()
    main_wait = allocate_lock()
    main_wait.acquire()
    problems: list[str] = []

    def sender(in_look: threading.Event, release_look: threading.Event) -> None:
        try:
            if not in_look.wait(JOIN):
                problems.append("no look started")
                return
            os.kill(os.getpid(), signal.SIGUSR1)  # the main thread is blocked below, in a raw lock wait
            release_look.set()
            if not written.wait(JOIN):
                problems.append("no snapshot after SIGUSR1")
        finally:
            release_look.set()
            main_wait.release()  # always lets the main thread go on

    _events.subscribe(listener)
    try:
        with look_held_open(monkeypatch) as (in_look, release_look), watching(tmp_path, interval=0.2, signal=True):
            _watchdog._notify()  # the watchdog starts lazily: start it now
            helper = threading.Thread(target=sender, args=(in_look, release_look), name="sender")
            helper.start()
            assert main_wait.acquire(True, 2 * JOIN)  # the signal interrupts this wait; its handler only flags
            helper.join(JOIN)
    finally:
        _events.unsubscribe(listener)
    assert problems == []
    [snapshot] = dumps(tmp_path, "snapshot")
    assert snapshot["summary"] == "Snapshot requested with SIGUSR1"
