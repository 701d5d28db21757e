"""Reports built by hand (fixed content, for golden files) and one taken from real deadlocked threads."""

from __future__ import annotations

import threading
import time

import lockwatch
from lockwatch._model import CycleStep, Frame, LockInfo, OrderEdge, Report, ThreadInfo

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


SAMPLES = {"deadlock": deadlock, "lock-order": lock_order, "hang": hang, "snapshot": snapshot}


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
