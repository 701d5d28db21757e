"""Overhead of lockwatch's locks as ratios against the raw primitives, measured side by side.

Run: python bench/overhead.py [--quick] [--json FILE]

Every case times the raw primitive and the instrumented one alternately in
the same process, several rounds, and keeps each side's best round (the
least disturbed by the rest of the machine). Single-threaded cases count the
thread's CPU time; the queue cases (several threads) count wall time.
Lock-order checking is on, as it is by default.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import queue
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable

import lockwatch

RAW_LOCK = threading.Lock
RAW_RLOCK = threading.RLock


class RawCondition(threading.Condition):
    """threading.Condition with its own wait: patch() wraps Condition.wait, this one stays raw."""

    wait = threading.Condition.wait  # captured before any patch()


def raw_queue(maxsize: int) -> queue.Queue[int | None]:
    """A queue.Queue whose locks and Condition waits are threading's own (built before patching)."""
    q: queue.Queue[int | None] = queue.Queue(maxsize)
    for condition in (q.not_empty, q.not_full, q.all_tasks_done):
        condition.__class__ = RawCondition
    return q


class ForwardingLock:
    """The floor for any lock written in Python: ``with`` that only forwards to a raw lock."""

    __slots__ = ("_real",)

    def __init__(self) -> None:
        self._real = RAW_LOCK()

    def __enter__(self) -> bool:
        return self._real.acquire()  # type: ignore[no-any-return]

    def __exit__(self, *exc_info: object) -> None:
        self._real.release()


def _timed(body: Callable[[int], None], ops: int, clock: Callable[[], float] = time.thread_time) -> float:
    """ns per operation. Single-threaded cases count this thread's CPU time, which a busy shared
    machine disturbs far less than wall time; cases with several threads pass a wall clock."""
    start = clock()
    body(ops)
    return (clock() - start) / ops * 1e9


def with_loop(lock: object) -> Callable[[int], None]:
    def body(n: int) -> None:
        for _ in range(n):
            with lock:  # type: ignore[attr-defined]
                pass

    return body


def acquire_release_loop(lock: object) -> Callable[[int], None]:
    acquire = lock.acquire  # type: ignore[attr-defined]
    release = lock.release  # type: ignore[attr-defined]

    def body(n: int) -> None:
        for _ in range(n):
            acquire()
            release()

    return body


def nested_loop(outer: object, inner: object) -> Callable[[int], None]:
    def body(n: int) -> None:
        for _ in range(n):
            with outer:  # type: ignore[attr-defined]
                with inner:  # type: ignore[attr-defined]
                    pass

    return body


def nested_triple_loop(a: object, b: object, c: object) -> Callable[[int], None]:
    def body(n: int) -> None:
        for _ in range(n):
            with a:  # type: ignore[attr-defined]
                with b:  # type: ignore[attr-defined]
                    with c:  # type: ignore[attr-defined]
                        pass

    return body


def holding_loop(factory: Callable[[], object], depth: int) -> Callable[[int], None]:
    """``with lock`` while ``depth`` other locks are held (the worst case for a depth-dependent check)."""

    def body(n: int) -> None:
        held = [factory() for _ in range(depth)]
        lock = factory()
        for outer in held:
            outer.acquire()  # type: ignore[attr-defined]
        try:
            for _ in range(n):
                with lock:  # type: ignore[attr-defined]
                    pass
        finally:
            for outer in reversed(held):
                outer.release()  # type: ignore[attr-defined]

    return body


def fresh_nested_loop(factory: Callable[[], object]) -> Callable[[int], None]:
    """A fresh lock per operation, nested under a long-lived one: per-object locks (create + use)."""

    def body(n: int) -> None:
        outer = factory()
        for _ in range(n):
            inner = factory()
            with outer:  # type: ignore[attr-defined]
                with inner:  # type: ignore[attr-defined]
                    pass

    return body


def creation_loop(factory: Callable[[], object]) -> Callable[[int], None]:
    def body(n: int) -> None:
        for _ in range(n):
            factory()

    return body


HANDOFF_QUEUE_SIZE = 64


def queue_handoff(make_queue: Callable[[], queue.Queue[int | None]]) -> Callable[[int], None]:
    """Items through a bounded Queue from a producer thread to a consumer thread (Condition waits).

    Bounded, so both threads really take turns: with an unbounded queue the
    producer may run ahead and the timing depends mostly on the scheduler.
    """

    def body(n: int) -> None:
        q = make_queue()

        def consume() -> None:
            while q.get() is not None:
                pass

        consumer = threading.Thread(target=consume)
        consumer.start()
        for item in range(n):
            q.put(item)
        q.put(None)
        consumer.join()

    return body


def pipeline(make_queue: Callable[[], queue.Queue[int | None]], stages: int = 4) -> Callable[[int], None]:
    """Items through ``stages`` threads joined by bounded queues (wall time of the whole run)."""

    def body(n: int) -> None:
        queues = [make_queue() for _ in range(stages + 1)]

        def stage(source: queue.Queue[int | None], sink: queue.Queue[int | None]) -> None:
            while True:
                item = source.get()
                sink.put(item)
                if item is None:
                    return

        threads = [threading.Thread(target=stage, args=(queues[i], queues[i + 1])) for i in range(stages)]
        for thread in threads:
            thread.start()
        last = queues[-1]
        drained = 0

        def drain() -> None:
            nonlocal drained
            while last.get() is not None:
                drained += 1

        sink = threading.Thread(target=drain)
        sink.start()
        for item in range(n):
            queues[0].put(item)
        queues[0].put(None)
        for thread in [*threads, sink]:
            thread.join()

    return body


def compare(
    name: str,
    make_raw: Callable[[], Callable[[int], None]],
    make_lw: Callable[[], Callable[[int], None]],
    ops: int,
    rounds: int,
    clock: Callable[[], float] = time.thread_time,
) -> dict[str, object]:
    """Best round of each side; every round gets fresh locks (one lock's memory placement can skew a round)."""
    raw_times: list[float] = []
    lw_times: list[float] = []
    for _ in range(rounds):  # alternate, so both sides see the same machine
        raw_times.append(_timed(make_raw(), ops, clock))
        lw_times.append(_timed(make_lw(), ops, clock))
    raw_best, lw_best = min(raw_times), min(lw_times)
    return {"case": name, "raw_ns": raw_best, "lockwatch_ns": lw_best, "ratio": lw_best / raw_best}


def bytes_per_lock(factory: Callable[[], object], count: int = 20_000) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = [factory() for _ in range(count)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del keep
    return (after - before) / count


def growth_over_short_lived(count: int) -> float:
    """Bytes still allocated after creating, nesting and dropping `count` locks."""
    gc.collect()
    tracemalloc.start()
    outer = lockwatch.Lock()
    with outer:
        pass
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(count):
        lock = lockwatch.Lock()
        with outer:
            with lock:  # a nested pair: the lock enters the lock-order graph, then dies
                pass
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return float(after - before)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations (a smoke run)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    ops = 20_000 if args.quick else 200_000
    rounds = 3 if args.quick else 7
    short_lived = 20_000 if args.quick else 1_000_000

    results = []
    # queue.Queue looks up threading.Lock when built: make the raw ones before patching.
    raw_queues = [raw_queue(HANDOFF_QUEUE_SIZE) for _ in range(rounds)]
    raw_pipeline_queues = iter([raw_queue(HANDOFF_QUEUE_SIZE) for _ in range(5 * rounds)])
    patcher = lockwatch.patch(order="warn", on_deadlock="report", signal=False)
    try:
        cases = [
            ("floor: with a forwarding-only Python lock", lambda: with_loop(RAW_LOCK()),
             lambda: with_loop(ForwardingLock())),
            ("with Lock", lambda: with_loop(RAW_LOCK()), lambda: with_loop(lockwatch.Lock())),
            ("with RLock", lambda: with_loop(RAW_RLOCK()), lambda: with_loop(lockwatch.RLock())),
            ("Lock acquire()/release()", lambda: acquire_release_loop(RAW_LOCK()),
             lambda: acquire_release_loop(lockwatch.Lock())),
            ("RLock acquire()/release()", lambda: acquire_release_loop(RAW_RLOCK()),
             lambda: acquire_release_loop(lockwatch.RLock())),
            ("nested pair (with a: with b:)", lambda: nested_loop(RAW_LOCK(), RAW_LOCK()),
             lambda: nested_loop(lockwatch.Lock(), lockwatch.Lock())),
            ("nested triple (a > b > c)", lambda: nested_triple_loop(RAW_LOCK(), RAW_LOCK(), RAW_LOCK()),
             lambda: nested_triple_loop(lockwatch.Lock(), lockwatch.Lock(), lockwatch.Lock())),
            ("with Lock while holding 8 others", lambda: holding_loop(RAW_LOCK, 8),
             lambda: holding_loop(lockwatch.Lock, 8)),
            ("fresh nested lock (create + use)", lambda: fresh_nested_loop(RAW_LOCK),
             lambda: fresh_nested_loop(lockwatch.Lock)),
            ("Lock creation", lambda: creation_loop(RAW_LOCK), lambda: creation_loop(lockwatch.Lock)),
        ]
        for name, make_raw, make_lw in cases:
            results.append(compare(name, make_raw, make_lw, ops, rounds))
        results.append(compare(
            "queue.Queue(64) hand-off between 2 threads",
            lambda: queue_handoff(raw_queues.pop),
            # Built while patched: its mutex and Conditions are instrumented.
            lambda: queue_handoff(lambda: queue.Queue(HANDOFF_QUEUE_SIZE)),
            ops // 10, rounds, time.perf_counter,
        ))
        results.append(compare(
            "4-stage queue pipeline (wall time)",
            lambda: pipeline(lambda: next(raw_pipeline_queues)),
            lambda: pipeline(lambda: queue.Queue(HANDOFF_QUEUE_SIZE)),
            ops // 20, rounds, time.perf_counter,
        ))
        raw_bytes = bytes_per_lock(RAW_LOCK)
        lw_bytes = bytes_per_lock(lockwatch.Lock)
        growth = growth_over_short_lived(short_lived)
    finally:
        patcher.stop()

    core = getattr(lockwatch, "core", lambda: "Python")()
    print(f"lockwatch overhead — core: {core}; Python {platform.python_version()} on {platform.machine()}, "
          f"{ops:,} ops x {rounds} rounds, best round each")
    print(f"{'case':<42} {'raw ns/op':>10} {'lockwatch':>10} {'ratio':>7}")
    for row in results:
        print(f"{row['case']:<42} {row['raw_ns']:>10.0f} {row['lockwatch_ns']:>10.0f} {row['ratio']:>6.2f}x")
    print(f"{'bytes per live Lock':<42} {raw_bytes:>10.0f} {lw_bytes:>10.0f} {lw_bytes / raw_bytes:>6.2f}x")
    print(f"memory left after {short_lived:,} short-lived nested locks: {growth / 1024:.1f} KiB")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"results": results, "bytes_per_lock": {"raw": raw_bytes, "lockwatch": lw_bytes},
                       "short_lived": short_lived, "growth_bytes": growth}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
