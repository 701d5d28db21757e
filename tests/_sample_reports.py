"""Reports built by hand (fixed content, for golden files) and one taken from real deadlocked threads.

Besides locks, the samples cover waits beyond locks: a join cycle, an asyncio task cycle,
a one-worker pool starved by a nested submit, and an orphaned lock (its owner has ended).
"""

from __future__ import annotations

import threading
import time

import lockwatch
from lockwatch._model import AwaitedInfo, CycleStep, Frame, LockInfo, OrderEdge, Report, ThreadInfo

CREATED = "2026-11-25T15:00:00.123456+00:00"


def _frames(*entries: tuple[str, int, str, str]) -> tuple[Frame, ...]:
    return tuple(Frame(file=f, line=n, function=fn, code=code) for f, n, fn, code in entries)


BOOTSTRAP = ("/usr/lib/python3.11/threading.py", 1045, "_bootstrap_inner", "self.run()")


def deadlock() -> Report:
    """AB-BA: "left" holds a and waits for Account.lock, "right" the reverse; a bystander waits for a."""
    left = ThreadInfo(
        id=101, name="left", daemon=False, holding=("L1",), waiting_for="L2", waiting_seconds=1.5,
        stack=_frames(BOOTSTRAP, ("/app/bank.py", 20, "left", "with a:"),
                      ("/app/bank.py", 22, "left", "with account.lock:")),
        role="cycle", acquired_at={"L1": Frame("/app/bank.py", 20, "left", "with a:")},
    )
    right = ThreadInfo(
        id=102, name="right", daemon=False, holding=("L2",), waiting_for="L1", waiting_seconds=1.25,
        stack=_frames(BOOTSTRAP, ("/app/bank.py", 30, "right", "with account.lock:"),
                      ("/app/bank.py", 31, "right", "with a:")),
        role="cycle",
    )
    bystander = ThreadInfo(
        id=103, name="worker-3", daemon=True, waiting_for="L1", waiting_seconds=0.75,
        stack=_frames(BOOTSTRAP, ("/app/worker.py", 8, "work", "with a:")), role="bystander",
    )
    main = ThreadInfo(
        id=1, name="MainThread", daemon=False,
        stack=_frames(("/app/main.py", 40, "<module>", "t.join()"),
                      ("/usr/lib/python3.11/threading.py", 1119, "join", "self._wait_for_tstate_lock()")),
    )
    locks = (
        LockInfo(id="L1", kind="Lock", name="a", site=Frame("/app/bank.py", 5, "<module>"), owner=101,
                 count=1, waiters=(102, 103), label="a"),
        LockInfo(id="L2", kind="RLock", name=None, site=Frame("/app/bank.py", 11, "__init__"), owner=102,
                 count=1, waiters=(101,), label="Account.lock"),
    )
    return Report(
        kind="deadlock", created=CREATED, pid=4242, argv=("app.py", "--fast"), python="3.11.7",
        threads=(main, left, right, bystander), locks=locks,
        cycles=((CycleStep(101, "L2"), CycleStep(102, "L1")),),
        summary="Threads left and right wait for each other's locks.",
    )


def lock_order() -> Report:
    """a -> b taken by t1 in one test, b -> a by t2 in another: nothing hung yet, but it can."""
    ab = OrderEdge(
        from_="L1", to="L2", thread="t1",
        stack=_frames(("/app/tests/test_bank.py", 12, "test_transfer", "bank.transfer(x, y)"),
                      ("/app/bank.py", 50, "transfer", "with self.b:")),
        from_label="a", to_label="b", test="tests/test_bank.py::test_transfer",
    )
    ba = OrderEdge(
        from_="L2", to="L1", thread="t2",
        stack=_frames(("/app/tests/test_bank.py", 20, "test_refund", "bank.refund(y, x)"),
                      ("/app/bank.py", 60, "refund", "with self.a:")),
        from_label="b", to_label="a", test="tests/test_bank.py::test_refund",
    )
    locks = (
        LockInfo(id="L1", kind="Lock", name="a", site=Frame("/app/bank.py", 5, "<module>"), owner=None,
                 count=0, label="a"),
        LockInfo(id="L2", kind="Lock", name="b", site=Frame("/app/bank.py", 6, "<module>"), owner=None,
                 count=0, label="b"),
    )
    return Report(
        kind="lock-order", created=CREATED, pid=4242, argv=("pytest",), python="3.11.7",
        locks=locks, order_cycles=((ab, ba),), rule="a before b",
        summary="Locks a and b are taken in both orders.",
    )


def hang() -> Report:
    """One thread stuck on a lock for 30 s, another in Condition.wait for 12.5 s."""
    holder = ThreadInfo(
        id=201, name="holder", daemon=False, holding=("L5",),
        stack=_frames(BOOTSTRAP, ("/app/server.py", 70, "serve", "sock.recv(1024)")),
    )
    stuck = ThreadInfo(
        id=202, name="stuck", daemon=False, waiting_for="L5", waiting_seconds=30.0,
        stack=_frames(BOOTSTRAP, ("/app/server.py", 90, "flush", "with self.lock:")), role="hang",
    )
    consumer = ThreadInfo(
        id=203, name="consumer", daemon=True, waiting_in="Condition.wait", waiting_seconds=12.5,
        stack=_frames(BOOTSTRAP, ("/app/queue_user.py", 15, "consume", "item = q.get()"),
                      ("/usr/lib/python3.11/threading.py", 327, "wait", "waiter.acquire()")),
        role="hang",
    )
    locks = (
        LockInfo(id="L5", kind="Lock", name=None, site=Frame("/app/server.py", 10, "__init__"), owner=201,
                 count=1, waiters=(202,), label="Server.lock"),
    )
    return Report(
        kind="hang", created=CREATED, pid=77, argv=("server.py",), python="3.12.1",
        threads=(holder, stuck, consumer), locks=locks, summary="stuck has waited 30.0 s for Server.lock.",
    )


def snapshot() -> Report:
    """A quiet process: one thread holds an RLock twice, one thread idles."""
    busy = ThreadInfo(
        id=301, name="busy", daemon=False, holding=("L7",),
        stack=_frames(BOOTSTRAP, ("/app/job.py", 5, "run", "self.step()"), ("/app/job.py", 9, "step", "time.sleep(1)")),
    )
    idle = ThreadInfo(id=302, name="idle", daemon=True, stack=_frames(BOOTSTRAP, ("/app/job.py", 30, "idle", "ev.wait()")))
    locks = (
        LockInfo(id="L7", kind="RLock", name="state", site=Frame("/app/job.py", 2, "<module>"), owner=301,
                 count=2, label="state"),
    )
    return Report(kind="snapshot", created=CREATED, pid=9, argv=("job.py",), python="3.11.7",
                  threads=(busy, idle), locks=locks)


def join_cycle() -> Report:
    """The main thread joins "worker" while holding state_lock, which the worker needs (rich's Live.stop())."""
    main = ThreadInfo(
        id=7001, name="MainThread", daemon=False, holding=("L1",), waits_for="J1", waiting_seconds=2.0,
        waiting_in="Thread.join",
        stack=_frames(("/app/live.py", 40, "<module>", "live.stop()"),
                      ("/app/live.py", 22, "stop", "self._thread.join()"),
                      ("/usr/lib/python3.11/threading.py", 1119, "join", "self._wait_for_tstate_lock()")),
        role="cycle", acquired_at={"L1": Frame("/app/live.py", 21, "stop", "with self.state_lock:")},
    )
    worker = ThreadInfo(
        id=7002, name="worker", daemon=False, waiting_for="L1", waiting_seconds=1.75,
        stack=_frames(BOOTSTRAP, ("/app/live.py", 30, "refresh", "with self.state_lock:")), role="cycle",
    )
    locks = (LockInfo(id="L1", kind="RLock", name=None, site=Frame("/app/live.py", 8, "__init__"), owner=7001,
                      count=1, waiters=(7002,), label="state_lock"),)
    awaited = (AwaitedInfo(id="J1", kind="thread", label='thread "worker"', owners=(7002,),
                           site=Frame("/app/live.py", 12, "start"), waiters=(7001,)),)
    return Report(
        kind="deadlock", created=CREATED, pid=5150, argv=("live.py",), python="3.11.7",
        threads=(main, worker), locks=locks, awaited=awaited,
        cycles=((CycleStep(7001, waits_for="J1"), CycleStep(7002, lock="L1")),),
        summary="MainThread joins worker while holding state_lock, which worker waits for.",
    )


def task_cycle() -> Report:
    """Two asyncio tasks take two asyncio.Locks in opposite orders; the loop's thread idles in select()."""
    loop = ThreadInfo(
        id=8001, name="MainThread", daemon=False,
        stack=_frames(("/app/jobs.py", 50, "<module>", "asyncio.run(main())"),
                      ("/usr/lib/python3.11/selectors.py", 468, "select", "fd_event_list = self._selector.poll(timeout, max_ev)")),
    )
    first = ThreadInfo(
        id=1, name="Task-2", daemon=False, waits_for="A2", waiting_seconds=3.0, kind="task", loop_thread=8001,
        stack=_frames(("/app/jobs.py", 12, "transfer", "async with lock_b:"),
                      ("/usr/lib/python3.11/asyncio/locks.py", 114, "acquire", "await fut")),
        role="cycle",
    )
    second = ThreadInfo(
        id=2, name="Task-3", daemon=False, waits_for="A1", waiting_seconds=3.0, kind="task", loop_thread=8001,
        stack=_frames(("/app/jobs.py", 20, "refund", "async with lock_a:"),), role="cycle",
    )
    awaited = (
        AwaitedInfo(id="A1", kind="asyncio.Lock", label='asyncio.Lock "lock_a"', owners=(1,),
                    site=Frame("/app/jobs.py", 4, "<module>"), waiters=(2,)),
        AwaitedInfo(id="A2", kind="asyncio.Lock", label='asyncio.Lock "lock_b"', owners=(2,),
                    site=Frame("/app/jobs.py", 5, "<module>"), waiters=(1,)),
    )
    return Report(
        kind="deadlock", created=CREATED, pid=6160, argv=("jobs.py",), python="3.12.1",
        threads=(loop, first, second), awaited=awaited,
        cycles=((CycleStep(1, waits_for="A2"), CycleStep(2, waits_for="A1")),),
        summary="Tasks Task-2 and Task-3 wait for each other's asyncio locks.",
    )


def pool_starvation() -> Report:
    """A task in a one-worker pool waits for a sub-task it submitted to the same pool; main waits for the first."""
    main = ThreadInfo(
        id=9001, name="MainThread", daemon=False, waits_for="F1", waiting_seconds=4.0, waiting_in="Condition.wait",
        stack=_frames(("/app/crawl.py", 30, "<module>", "print(outer_future.result())"),),
        role="bystander",
    )
    worker = ThreadInfo(
        id=9002, name="ThreadPoolExecutor-0_0", daemon=True, waits_for="F2", waiting_seconds=3.5,
        waiting_in="Condition.wait",
        stack=_frames(BOOTSTRAP, ("/app/crawl.py", 12, "outer", "return pool.submit(inner).result()")),
        role="cycle",
    )
    awaited = (
        AwaitedInfo(id="F1", kind="future", label="future of outer() in ThreadPoolExecutor-0", owners=(9002,),
                    site=Frame("/app/crawl.py", 29, "<module>"), state="running", waiters=(9001,)),
        AwaitedInfo(id="F2", kind="pool", label="future of inner() in ThreadPoolExecutor-0", owners=(9002,),
                    any_of=True, site=Frame("/app/crawl.py", 12, "outer"), state="pending", waiters=(9002,)),
    )
    return Report(
        kind="deadlock", created=CREATED, pid=7170, argv=("crawl.py",), python="3.11.7",
        threads=(main, worker), awaited=awaited, cycles=((CycleStep(9002, waits_for="F2"),),),
        summary="The only worker of ThreadPoolExecutor-0 waits for a future that only it can run.",
    )


def orphaned_lock() -> Report:
    """Thread "loader" ended while holding cache_lock; "main" and a helper wait for it forever."""
    loader = ThreadInfo(
        id=-3, name="loader", daemon=False, holding=("L4",), alive=False,
        acquired_at={"L4": Frame("/app/cache.py", 14, "load", "cache_lock.acquire()")},
    )
    main = ThreadInfo(
        id=4001, name="MainThread", daemon=False, waiting_for="L4", waiting_seconds=2.5,
        stack=_frames(("/app/cache.py", 40, "<module>", "with cache_lock:"),), role="cycle",
    )
    helper = ThreadInfo(
        id=4002, name="helper", daemon=False, waits_for="J7", waiting_seconds=2.5, waiting_in="Thread.join",
        stack=_frames(BOOTSTRAP, ("/app/cache.py", 50, "supervise", "main_thread.join()")),
    )
    locks = (LockInfo(id="L4", kind="Lock", name=None, site=Frame("/app/cache.py", 3, "<module>"), owner=-3,
                      count=1, waiters=(4001,), label="cache_lock"),)
    awaited = (AwaitedInfo(id="J7", kind="thread", label='thread "MainThread"', owners=(4001,), waiters=(4002,)),)
    return Report(
        kind="deadlock", created=CREATED, pid=8180, argv=("cache.py",), python="3.11.7",
        threads=(main, helper, loader), locks=locks, awaited=awaited,
        chains=((CycleStep(4002, waits_for="J7"), CycleStep(4001, lock="L4")),),
        all_asleep=True,
        summary="cache_lock is held by thread loader, which has ended: whoever waits for it waits forever.",
    )


SAMPLES = {
    "deadlock": deadlock, "lock-order": lock_order, "hang": hang, "snapshot": snapshot,
    "join-cycle": join_cycle, "task-cycle": task_cycle, "pool-starvation": pool_starvation,
    "orphaned-lock": orphaned_lock,
}


def real_deadlock(timeout: float = 2.0) -> Report:
    """A report of two real threads deadlocked AB-BA on lockwatch Locks (they give up after ``timeout``).

    Each thread takes its own lock, both meet at a barrier, then each tries the other's
    lock with a timeout. The snapshot is taken once both show up as waiting.
    """
    a, b = lockwatch.Lock("a"), lockwatch.Lock("b")
    barrier = threading.Barrier(2, timeout=5)
    outcomes: dict[str, bool] = {}

    def take(name: str, first: lockwatch.Lock, second: lockwatch.Lock) -> None:
        with first:
            barrier.wait()
            got = second.acquire(timeout=timeout)
            if got:
                second.release()
            outcomes[name] = got

    left = threading.Thread(target=take, args=("left", a, b), name="left", daemon=True)
    right = threading.Thread(target=take, args=("right", b, a), name="right", daemon=True)
    left.start()
    right.start()
    try:
        deadline = time.monotonic() + timeout * 0.9
        while True:
            report = lockwatch.snapshot()
            waiting = {t.name for t in report.threads if t.waiting_for is not None}
            if {"left", "right"} <= waiting:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the two threads never both blocked (waiting: {waiting})")
            time.sleep(0.005)  # polling for a state, not forcing an interleaving
    finally:
        left.join(timeout + 5)
        right.join(timeout + 5)
    assert not left.is_alive() and not right.is_alive()
    # The first to time out releases its own lock, so the other may then get it.
    assert len(outcomes) == 2 and False in outcomes.values()
    # Present it as the watchdog would: the cycle, and the roles.
    by_name = {t.name: t for t in report.threads}
    cycle = (
        CycleStep(by_name["left"].id, by_name["left"].waiting_for or ""),
        CycleStep(by_name["right"].id, by_name["right"].waiting_for or ""),
    )
    threads = tuple(t if t.name not in ("left", "right") else _with_role(t, "cycle") for t in report.threads)
    return report.replace(kind="deadlock", cycles=(cycle,), threads=threads)


def _with_role(thread: ThreadInfo, role: str) -> ThreadInfo:
    import dataclasses

    return dataclasses.replace(thread, role=role)
