"""asyncio's waits as wait-for edges: the instrumented primitives, the task reader, and the asyncio examples."""

from __future__ import annotations

import asyncio
import asyncio.locks
import json
import os
import subprocess
import sys
import threading
import unittest
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from lockwatch import _aio, _detect, _waits
from lockwatch._config import DEADLOCK_EXIT_STATUS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
JOIN = 10.0  # seconds any wait of a test may take before the test fails
RUN_TIMEOUT = 20.0  # seconds an example may run under lockwatch (a deadlock is reported within about one)


@pytest.fixture
def installed() -> Iterator[None]:
    _aio.install()
    try:
        yield
    finally:
        _aio.uninstall()


# --- install / uninstall -------------------------------------------------------------------


def test_install_swaps_the_primitives_and_uninstall_restores_exactly() -> None:
    before = {(module, name): module.__dict__[name] for module in (asyncio, asyncio.locks) for name in _aio.NAMES}
    made_before = asyncio.Lock()
    _aio.install()
    try:
        _aio.install()  # twice: still one layer to undo
        for module in (asyncio, asyncio.locks):
            for name in _aio.NAMES:
                swapped = module.__dict__[name]
                assert swapped is getattr(_aio, name)
                assert issubclass(swapped, before[(module, name)])
        assert _aio.source in _waits.sources
        assert type(asyncio.Condition()._lock) is _aio.Lock  # type: ignore[attr-defined]
        assert isinstance(asyncio.BoundedSemaphore(), asyncio.Semaphore)
        assert type(made_before) is before[(asyncio, "Lock")]
    finally:
        _aio.uninstall()
    after = {(module, name): module.__dict__[name] for module in (asyncio, asyncio.locks) for name in _aio.NAMES}
    assert after == before
    assert _aio.source not in _waits.sources


def test_instrumented_primitives_read_like_the_originals(installed: None) -> None:
    original = {name: getattr(_aio, f"_{name}") for name in _aio.NAMES}
    for name in _aio.NAMES:
        made = getattr(asyncio, name)()
        mine, theirs = repr(made), repr(original[name]())
        # Same class name and state; only the address differs.
        assert mine.split(" object at ")[0] == theirs.split(" object at ")[0]
        assert mine.rsplit("[", 1)[1] == theirs.rsplit("[", 1)[1]
        with pytest.raises(TypeError) as raised_mine:
            getattr(asyncio, name)(loop=None)
        with pytest.raises(TypeError) as raised_theirs:
            original[name](loop=None)
        assert str(raised_mine.value) == str(raised_theirs.value)


@pytest.mark.timeout(120)
def test_cpython_asyncio_lock_suite_passes_against_the_instrumented_primitives() -> None:
    """CPython's own test_asyncio.test_locks, run with the instrumented classes swapped in."""
    test_locks = pytest.importorskip("test.test_asyncio.test_locks", reason="CPython's test package is not installed")
    suite = unittest.defaultTestLoader.loadTestsFromModule(test_locks)
    _aio.install()
    try:
        assert type(asyncio.Lock()) is _aio.Lock
        result = unittest.TestResult()
        suite.run(result)
    finally:
        _aio.uninstall()
    problems = [f"{test}: {trace}" for test, trace in result.failures + result.errors]
    assert not problems, "\n".join(problems)
    assert result.testsRun >= 40
    assert not _aio._waiting, "a wait record outlived its wait"


# --- recording ---------------------------------------------------------------------------------


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """asyncio.run with a bound: a test that would hang fails instead."""
    async def bounded() -> Any:
        return await asyncio.wait_for(main(), JOIN)
    return asyncio.run(bounded())


def test_lock_records_its_owner_and_its_waiters(installed: None) -> None:
    async def main() -> None:
        lock = asyncio.Lock()
        holder = asyncio.current_task()
        await lock.acquire()
        assert lock._lw_owner is holder  # type: ignore[attr-defined]

        async def waiter() -> None:
            async with lock:
                assert lock._lw_owner is asyncio.current_task()  # type: ignore[attr-defined]

        task = asyncio.create_task(waiter())
        while not lock._waiters:  # type: ignore[attr-defined]
            await asyncio.sleep(0)
        record = _aio._waiting[id(task)]
        assert record[0]() is task and record[1]() is lock
        assert _aio.waiting()
        lock.release()
        assert lock._lw_owner is None  # type: ignore[attr-defined]
        await task
        assert id(task) not in _aio._waiting and not _aio.waiting()
        assert lock._lw_owner is None and not lock._lw_signal  # type: ignore[attr-defined]

    run(main)


def test_lock_released_by_another_task_has_no_known_owner(installed: None) -> None:
    async def main() -> None:
        lock = asyncio.Lock()
        await lock.acquire()

        async def releaser() -> None:
            lock.release()

        await asyncio.create_task(releaser())
        assert lock._lw_signal  # type: ignore[attr-defined]

    run(main)


def test_cancelled_wait_leaves_no_record_and_no_owner(installed: None) -> None:
    async def main() -> None:
        lock = asyncio.Lock()
        await lock.acquire()
        task = asyncio.create_task(lock.acquire())
        while not lock._waiters:  # type: ignore[attr-defined]
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert id(task) not in _aio._waiting
        assert lock._lw_owner is asyncio.current_task()  # type: ignore[attr-defined]

    run(main)


def test_semaphore_holders_until_a_task_holding_none_releases(installed: None) -> None:
    async def main() -> None:
        semaphore = asyncio.BoundedSemaphore(2)
        me = asyncio.current_task()
        await semaphore.acquire()
        await semaphore.acquire()
        assert semaphore._lw_holders == {me: 2}  # type: ignore[attr-defined]
        semaphore.release()
        assert semaphore._lw_holders == {me: 1}  # type: ignore[attr-defined]

        async def stranger() -> None:
            semaphore.release()

        await asyncio.create_task(stranger())
        assert semaphore._lw_signal and semaphore._lw_holders is None  # type: ignore[attr-defined]
        with pytest.raises(ValueError):
            semaphore.release()  # still bounded

    run(main)


# --- the reader, on another thread, of a loop that really is stuck ----------------------------------


class LoopThread:
    """An event loop in a thread of its own; the test's thread reads it as the watchdog does."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="loop", daemon=True)
        self.thread.start()

    def start(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        made: list[asyncio.Task[Any]] = []
        ready = threading.Event()

        def create() -> None:
            made.append(self.loop.create_task(coroutine, name=name))
            ready.set()

        self.loop.call_soon_threadsafe(create)
        assert ready.wait(JOIN)
        return made[0]

    def call(self, func: Callable[[], Any]) -> Any:
        """Run ``func`` on the loop's thread and return its result."""
        async def wrapped() -> Any:
            return func()
        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(JOIN)

    def until(self, condition: Callable[[], bool]) -> None:
        """Let the loop run until ``condition`` holds (checked on the loop's thread, each time it is idle)."""
        async def poll() -> None:
            while not condition():
                await asyncio.sleep(0)
        asyncio.run_coroutine_threadsafe(asyncio.wait_for(poll(), JOIN), self.loop).result(JOIN + 1)

    def close(self, *tasks: asyncio.Task[Any]) -> None:
        async def cancel_all() -> None:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(JOIN)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(JOIN)
        assert not self.thread.is_alive()
        self.loop.close()


@pytest.fixture
def loop(installed: None) -> Iterator[LoopThread]:
    loop = LoopThread()
    try:
        yield loop
    finally:
        if not loop.loop.is_closed():
            loop.close(*loop.call(lambda: [t for t in asyncio.all_tasks(loop.loop) if not t.done()]))


def suspended(*tasks: asyncio.Task[Any]) -> Callable[[], bool]:
    return lambda: all(task._fut_waiter is not None for task in tasks)  # type: ignore[attr-defined]


def edges_by_waiter(found: _waits.Found) -> dict[int, _waits.Edge]:
    return {edge.waiter: edge for edge in found.edges}


def stuck(found: _waits.Found) -> _detect.Stuck:
    """What the lead's detector makes of these waits (as the watchdog's look does)."""
    waits = {
        edge.waiter: _detect.AnyWait(edge.target.id, edge.target.owners, edge.target.any_of, is_lock=False)
        for edge in found.edges if not edge.timed
    }
    loops = {task.id: task.loop_thread for task in found.tasks if task.loop_thread is not None}
    return _detect.find_stuck(waits, set(), loops)


@pytest.mark.timeout(30)
def test_two_tasks_taking_two_locks_in_opposite_orders_are_a_cycle(loop: LoopThread) -> None:

    def make() -> tuple[asyncio.Lock, asyncio.Lock, asyncio.Event, asyncio.Event]:
        return asyncio.Lock(), asyncio.Lock(), asyncio.Event(), asyncio.Event()

    lock_a, lock_b, a_held, b_held = loop.call(make)

    async def one() -> None:
        async with lock_a:
            a_held.set()
            await b_held.wait()
            async with lock_b:  # line of the wait: ONE
                pass

    async def two() -> None:
        async with lock_b:
            b_held.set()
            await a_held.wait()
            async with lock_a:  # line of the wait: TWO
                pass

    t1 = loop.start(one(), "one")
    t2 = loop.start(two(), "two")
    loop.until(lambda: len(lock_a._waiters or ()) == 1 and len(lock_b._waiters or ()) == 1)  # type: ignore[attr-defined]

    found = _aio.source()
    tasks = {task.name: task for task in found.tasks}
    assert set(tasks) == {"one", "two"}
    one_id, two_id = tasks["one"].id, tasks["two"].id
    assert one_id != two_id and all(0 < i < 1_000_000 for i in (one_id, two_id))
    assert {task.loop_thread for task in found.tasks} == {loop.thread.ident}
    by_waiter = edges_by_waiter(found)
    assert by_waiter[one_id].target.kind == "asyncio.Lock"
    assert by_waiter[one_id].target.owners == (two_id,)
    assert by_waiter[two_id].target.owners == (one_id,)
    assert by_waiter[one_id].target.id == f"A{lock_b._lw_serial}"  # type: ignore[attr-defined]
    assert not by_waiter[one_id].timed and by_waiter[one_id].since is not None
    assert by_waiter[one_id].target.site is not None and by_waiter[one_id].target.site[2] == "make"
    # Each coroutine stack ends at the test's own inner ``async with`` line.
    assert tasks["one"].stack[-1][2] == "one" and "ONE" in (tasks["one"].stack[-1][3] or "")
    assert tasks["two"].stack[-1][2] == "two" and "TWO" in (tasks["two"].stack[-1][3] or "")
    # The same tasks keep their ids; the wait keeps its start.
    again = _aio.source()
    assert edges_by_waiter(again)[one_id].since == by_waiter[one_id].since
    assert {task.name: task.id for task in again.tasks} == {"one": one_id, "two": two_id}

    result = stuck(found)
    assert [sorted(step.thread for step in cycle) for cycle in result.cycles] == [sorted((one_id, two_id))]
    loop.close(t1, t2)


@pytest.mark.timeout(30)
def test_locks_taken_in_one_order_are_no_cycle(loop: LoopThread) -> None:
    lock_a, lock_b = loop.call(lambda: (asyncio.Lock(), asyncio.Lock()))
    gate = loop.call(asyncio.Event)

    async def worker() -> None:
        async with lock_a:
            await gate.wait()
            async with lock_b:
                pass

    t1 = loop.start(worker(), "first")
    t2 = loop.start(worker(), "second")
    loop.until(lambda: len(lock_a._waiters or ()) == 1)  # type: ignore[attr-defined]
    found = _aio.source()
    ids = {task.name: task.id for task in found.tasks}
    first_id = ids["first"] if lock_a._lw_owner is t1 else ids["second"]  # type: ignore[attr-defined]
    waiting = edges_by_waiter(found)
    other = ids["second"] if first_id == ids["first"] else ids["first"]
    assert waiting[other].target.owners == (first_id,)
    assert waiting[first_id].target.kind == "asyncio.Event" and waiting[first_id].target.owners == ()
    assert stuck(found).cycles == []
    loop.call(gate.set)
    loop.until(lambda: t1.done() and t2.done())


@pytest.mark.timeout(30)
def test_awaiting_a_task_or_a_gather_waits_for_those_tasks(loop: LoopThread) -> None:
    never = loop.call(asyncio.Event)
    inner = loop.start(never.wait(), "inner")
    inner2 = loop.start(never.wait(), "inner-2")

    async def awaiting() -> None:
        await inner

    async def gathering() -> None:
        await asyncio.gather(inner, inner2)

    t1 = loop.start(awaiting(), "awaiting")
    t2 = loop.start(gathering(), "gathering")
    loop.until(suspended(inner, inner2, t1, t2))
    found = _aio.source()
    ids = {task.name: task.id for task in found.tasks}
    waiting = edges_by_waiter(found)
    assert waiting[ids["awaiting"]].target.kind == "task"
    assert waiting[ids["awaiting"]].target.owners == (ids["inner"],)
    assert waiting[ids["awaiting"]].target.label == 'task "inner"'
    assert waiting[ids["gathering"]].target.owners == tuple(sorted((ids["inner"], ids["inner-2"])))
    assert waiting[ids["inner"]].target.kind == "asyncio.Event"
    loop.close(t1, t2, inner, inner2)


@pytest.mark.timeout(30)
def test_asyncio_wait_waits_for_all_or_any_of_its_tasks(loop: LoopThread) -> None:
    never = loop.call(asyncio.Event)
    inner = [loop.start(never.wait(), f"inner-{n}") for n in range(2)]

    async def wait_all() -> None:
        await asyncio.wait(inner)

    async def wait_any() -> None:
        await asyncio.wait(inner, return_when=asyncio.FIRST_COMPLETED)

    async def wait_any_with_a_plain_future() -> None:
        await asyncio.wait([*inner, asyncio.get_running_loop().create_future()], return_when=asyncio.FIRST_COMPLETED)

    waiting = [loop.start(wait_all(), "all"), loop.start(wait_any(), "any"), loop.start(wait_any_with_a_plain_future(), "any+")]
    loop.until(suspended(*inner, *waiting))
    found = _aio.source()
    ids = {task.name: task.id for task in found.tasks}
    by_waiter = edges_by_waiter(found)
    both = tuple(sorted((ids["inner-0"], ids["inner-1"])))
    assert (by_waiter[ids["all"]].target.owners, by_waiter[ids["all"]].target.any_of) == (both, False)
    assert (by_waiter[ids["any"]].target.owners, by_waiter[ids["any"]].target.any_of) == (both, True)
    assert by_waiter[ids["any+"]].target.owners == ()  # the plain future may end it: nobody known
    assert by_waiter[ids["all"]].target.kind == "task"
    loop.close(*waiting, *inner)


@pytest.mark.timeout(30)
def test_a_task_awaiting_run_in_executor_waits_for_the_worker_thread(loop: LoopThread) -> None:
    from lockwatch import _beyond

    started, leave = threading.Event(), threading.Event()
    worker: list[int] = []

    def job() -> None:
        worker.append(threading.get_ident())
        started.set()
        leave.wait(JOIN)

    async def offload() -> None:
        await asyncio.get_running_loop().run_in_executor(None, job)

    _beyond.install()  # the thread side: which worker runs which future
    try:
        task = loop.start(offload(), "offload")
        assert started.wait(JOIN)
        loop.until(suspended(task))
        found = _aio.source()
        ids = {node.name: node.id for node in found.tasks}
        target = edges_by_waiter(found)[ids["offload"]].target
        assert target.kind == "future" and target.owners == (worker[0],), target
    finally:
        leave.set()
        _beyond.uninstall()
    loop.until(task.done)


@pytest.mark.timeout(30)
def test_run_coroutine_threadsafe_future_leads_to_its_task(loop: LoopThread) -> None:
    never = loop.call(asyncio.Event)
    future = asyncio.run_coroutine_threadsafe(never.wait(), loop.loop)
    tasks = loop.call(lambda: [t for t in asyncio.all_tasks(loop.loop) if t is not asyncio.current_task()])
    loop.until(suspended(*tasks))
    (task,) = tasks
    assert _aio.task_behind(future) == _aio.task_id(task)
    loop.call(never.set)
    assert future.result(JOIN) is True
    assert _aio.task_behind(future) is None


@pytest.mark.timeout(30)
def test_waits_with_a_timeout_are_timed(loop: LoopThread) -> None:
    lock = loop.call(asyncio.Lock)
    owner_done = loop.call(asyncio.Event)

    async def owner() -> None:
        async with lock:
            await owner_done.wait()

    async def with_wait_for() -> None:
        await asyncio.wait_for(lock.acquire(), 600)

    async def sleeper() -> None:
        await asyncio.sleep(600)

    async def untimed() -> None:
        async with lock:
            pass

    tasks = [loop.start(owner(), "owner")]
    loop.until(lambda: lock.locked())
    tasks += [loop.start(with_wait_for(), "wait_for"), loop.start(sleeper(), "sleeper"), loop.start(untimed(), "untimed")]
    if sys.version_info >= (3, 11):
        async def with_timeout() -> None:
            async with asyncio.timeout(600):  # type: ignore[attr-defined]
                await lock.acquire()
        tasks.append(loop.start(with_timeout(), "timeout"))
    loop.until(lambda: len(lock._waiters or ()) == len(tasks) - 2)  # type: ignore[attr-defined]
    found = _aio.source()
    ids = {task.id: task.name for task in found.tasks}
    timed = {ids[edge.waiter]: edge.timed for edge in found.edges}
    # (3.10/3.11's wait_for runs the acquire in a task of its own: both are timed.)
    assert {name: flag for name, flag in timed.items() if not name.startswith("Task-")} == {
        "owner": False, "wait_for": True, "sleeper": True, "untimed": False,
        **({"timeout": True} if sys.version_info >= (3, 11) else {}),
    }
    assert all(flag for name, flag in timed.items() if name.startswith("Task-"))
    loop.close(*tasks)


@pytest.mark.timeout(30)
def test_semaphore_wait_is_owned_by_any_holder(loop: LoopThread) -> None:
    semaphore = loop.call(lambda: asyncio.Semaphore(2))
    done = loop.call(asyncio.Event)

    async def holder() -> None:
        async with semaphore:
            await done.wait()

    holders = [loop.start(holder(), f"holder-{n}") for n in range(2)]
    loop.until(lambda: semaphore.locked())
    waiter = loop.start(holder(), "waiter")
    loop.until(suspended(waiter))
    found = _aio.source()
    ids = {task.name: task.id for task in found.tasks}
    target = edges_by_waiter(found)[ids["waiter"]].target
    assert target.kind == "asyncio.Semaphore" and target.any_of
    assert target.owners == tuple(sorted((ids["holder-0"], ids["holder-1"])))
    loop.call(done.set)
    loop.until(lambda: all(task.done() for task in [*holders, waiter]))


@pytest.mark.timeout(30)
def test_condition_waiter_then_lock_waiter(loop: LoopThread) -> None:
    """Waiting to be notified has no known owner; once notified, re-taking the lock waits for its holder."""
    condition = loop.call(asyncio.Condition)

    async def consumer() -> None:
        async with condition:
            await condition.wait()

    task = loop.start(consumer(), "consumer")
    loop.until(lambda: bool(condition._waiters))  # type: ignore[attr-defined]
    found = _aio.source()
    ids = {node.name: node.id for node in found.tasks}
    target = edges_by_waiter(found)[ids["consumer"]].target
    assert (target.kind, target.owners) == ("asyncio.Condition", ())
    assert found.tasks[[n.name for n in found.tasks].index("consumer")].stack[-1][2] == "wait"  # asyncio's frame kept

    holder_done = loop.call(asyncio.Event)

    async def notifier() -> None:
        async with condition:
            condition.notify()
            await holder_done.wait()  # keeps the lock: the consumer now waits for it

    other = loop.start(notifier(), "notifier")
    loop.until(lambda: bool(condition._lock._waiters))  # type: ignore[attr-defined]
    found = _aio.source()
    ids = {node.name: node.id for node in found.tasks}
    target = edges_by_waiter(found)[ids["consumer"]].target
    assert (target.kind, target.owners) == ("asyncio.Lock", (ids["notifier"],))
    loop.call(holder_done.set)
    loop.until(lambda: task.done() and other.done())
    assert not _aio._waiting


@pytest.mark.timeout(30)
def test_the_running_task_waits_for_nothing(loop: LoopThread) -> None:
    """A task blocking the loop's thread in synchronous code is the running task: its thread waits, not it."""
    entered, leave = threading.Event(), threading.Event()

    async def blocker() -> None:
        await asyncio.sleep(0)
        entered.set()
        leave.wait(JOIN)  # blocks the loop's thread

    task = loop.start(blocker(), "blocker")
    assert entered.wait(JOIN)
    try:
        found = _aio.source()
        ids = {node.name: node.id for node in found.tasks}
        assert "blocker" in ids and ids["blocker"] not in edges_by_waiter(found)
    finally:
        leave.set()
    loop.until(task.done)


@pytest.mark.timeout(60)
def test_reader_tolerates_tasks_coming_and_going(loop: LoopThread) -> None:
    lock = loop.call(asyncio.Lock)
    stop = threading.Event()

    async def churn() -> None:
        async def short() -> None:
            async with lock:
                await asyncio.sleep(0)
        while not stop.is_set():
            await asyncio.gather(*(short() for _ in range(20)), *(asyncio.create_task(short()) for _ in range(20)))

    task = loop.start(churn(), "churn")
    try:
        for _ in range(300):
            found = _aio.source()  # must never raise, whatever the loop does meanwhile
            for edge in found.edges:
                assert edge.waiter > 0 and isinstance(edge.target.owners, tuple)
    finally:
        stop.set()
    loop.until(task.done)
    assert task.exception() is None


def test_tasks_of_a_loop_that_is_not_running_are_not_read(installed: None) -> None:
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(asyncio.sleep(600))
        assert task not in [t for t in _aio._registered_tasks() if _aio._field(t._loop, "_thread_id")]  # type: ignore[attr-defined]
        assert all(node.name != task.get_name() for node in _aio.source().tasks)
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    finally:
        loop.close()


# --- the examples, end to end (under ``lockwatch run``) -----------------------------------------

def lockwatch_run(script: Path, dump_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "lockwatch", "run", "--on-deadlock", "exit", "--interval", "0.1",
               "--dump-dir", str(dump_dir), str(script)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOCKWATCH_")}
    try:
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script.name} did not finish within {RUN_TIMEOUT} s under lockwatch\nstderr:\n{exc.stderr}")


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def cycle_names(dump_dir: Path) -> list[list[str]]:
    (path,) = sorted(dump_dir.glob("deadlock-*.json"))
    dump = json.loads(path.read_text())
    names = {thread["id"]: thread["name"] for thread in dump["threads"]}
    return [sorted(names[step["thread"]] for step in cycle) for cycle in dump["cycles"]]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("example", ["asyncio_lock_order_deadlock.py", "asyncio_loop_blocked_deadlock.py"])
def test_asyncio_deadlock_examples_hang_under_plain_python(example: str, tmp_path: Path) -> None:
    """Each reaches its deadlock (it says so) and then never ends by itself."""
    process = subprocess.Popen([sys.executable, str(EXAMPLES / example)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert "waits for" in process.stdout.readline()  # printed by the last step before the deadlock
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=1.0)
    finally:
        process.kill()
        process.communicate(timeout=JOIN)


@pytest.mark.timeout(90)
def test_asyncio_lock_order_deadlock_is_found(tmp_path: Path) -> None:
    result = lockwatch_run(EXAMPLES / "asyncio_lock_order_deadlock.py", tmp_path / "dumps", tmp_path)
    assert result.returncode == DEADLOCK_EXIT_STATUS, describe(result)
    assert cycle_names(tmp_path / "dumps") == [["cancel-order", "restock"]], describe(result)
    dump = json.loads(next((tmp_path / "dumps").glob("deadlock-*.json")).read_text())
    for thread in dump["threads"]:
        if thread["name"] in ("restock", "cancel-order"):
            assert thread.get("kind") == "task"
            assert thread["stack"][-1]["file"].endswith("asyncio_lock_order_deadlock.py")
            assert "async with" in (thread["stack"][-1]["code"] or "")


@pytest.mark.timeout(90)
def test_asyncio_loop_blocked_deadlock_is_found(tmp_path: Path) -> None:
    result = lockwatch_run(EXAMPLES / "asyncio_loop_blocked_deadlock.py", tmp_path / "dumps", tmp_path)
    assert result.returncode == DEADLOCK_EXIT_STATUS, describe(result)
    assert cycle_names(tmp_path / "dumps") == [["MainThread", "exporter"]], describe(result)


@pytest.mark.timeout(90)
def test_asyncio_lock_order_fixed_is_clean(tmp_path: Path) -> None:
    result = lockwatch_run(EXAMPLES / "asyncio_lock_order_fixed.py", tmp_path / "dumps", tmp_path)
    assert result.returncode == 0, describe(result)
    assert "done:" in result.stdout
    assert not list((tmp_path / "dumps").glob("*.json")) if (tmp_path / "dumps").exists() else True
