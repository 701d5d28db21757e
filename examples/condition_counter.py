"""A counter that threads wait on with a Condition, and a reader-writer lock built on Condition.

Two classic Condition patterns, both correct:

* ``WaitableCounter``: producers ``increment()``; waiters block in
  ``wait_until(target)`` until the count reaches their target. Each increment
  wakes the waiters, who re-check their target under the lock.
* ``ReadWriteLock``: many readers at once or one writer, writers preferred
  (a waiting writer holds back new readers so it cannot starve).

Everything is bounded and every waiter is released, so the program ends.

Expect:
    python examples/condition_counter.py            finishes in well under a second.
    lockwatch run examples/condition_counter.py     the same output; no deadlock and no
        lock-order warning. A thread waiting in Condition.wait() has released the
        condition's lock, so it is never mistaken for a deadlock -- while the lock
        itself (an instrumented Lock under lockwatch) is still fully watched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class WaitableCounter:
    """A counter whose value other threads can wait for."""

    def __init__(self) -> None:
        self._value = 0
        self._changed = threading.Condition(threading.Lock())

    def increment(self) -> None:
        with self._changed:
            self._value += 1
            self._changed.notify_all()

    def wait_until(self, target: int) -> int:
        """Block until the counter reaches ``target``; returns the value seen."""
        with self._changed:
            self._changed.wait_for(lambda: self._value >= target)
            return self._value

    @property
    def value(self) -> int:
        with self._changed:
            return self._value


class ReadWriteLock:
    """Many readers or one writer; a waiting writer stops new readers from entering."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and self._writers_waiting == 0)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writer and self._readers == 0)
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def counter_demo() -> None:
    counter = WaitableCounter()
    producers, increments = 4, 250
    targets = [1, 100, 500, producers * increments]
    seen: dict[int, int] = {}

    def waiter(target: int) -> None:
        seen[target] = counter.wait_until(target)

    def producer() -> None:
        for _ in range(increments):
            counter.increment()

    # Waiters start first, so they are (usually) already blocked when producers begin.
    waiters = [threading.Thread(target=waiter, args=(t,), name=f"waiter-{t}") for t in targets]
    for w in waiters:
        w.start()
    workers = [threading.Thread(target=producer, name=f"producer-{i}") for i in range(producers)]
    for w in workers:
        w.start()
    for t in workers + waiters:
        t.join()
    if any(seen[t] < t for t in targets) or counter.value != producers * increments:
        raise SystemExit(f"counter broken: {seen}, final {counter.value}")
    print(f"counter reached {counter.value}; every waiter woke at or after its target")


def read_write_demo() -> None:
    rw = ReadWriteLock()
    table: dict[str, int] = {"version": 0}
    readers, writers, rounds = 4, 2, 100
    torn_reads = 0
    count_lock = threading.Lock()

    def reader() -> None:
        nonlocal torn_reads
        for _ in range(rounds):
            with rw.reading():
                # A writer updates both keys together; a reader must never see them differ.
                if table.get("copy", table["version"]) != table["version"]:
                    with count_lock:
                        torn_reads += 1

    def writer() -> None:
        for _ in range(rounds):
            with rw.writing():
                table["version"] += 1
                table["copy"] = table["version"]

    threads = [threading.Thread(target=reader, name=f"reader-{i}") for i in range(readers)]
    threads += [threading.Thread(target=writer, name=f"writer-{i}") for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if torn_reads or table["version"] != writers * rounds:
        raise SystemExit(f"read-write lock broken: {torn_reads} torn reads, version {table['version']}")
    print(f"read-write lock: {readers} readers, {writers} writers, version {table['version']}, no torn reads")


def main() -> None:
    counter_demo()
    read_write_demo()


if __name__ == "__main__":
    main()
