"""A dynamically sized thread pool and a multi-stage pipeline over queues.

* ``DynamicPool``: a task queue served by worker threads that are started on
  demand (up to ``max_workers``), retire after ``idle_timeout`` seconds
  without work (down to ``min_workers``), and call a completion callback
  with each result or exception.
* A three-stage pipeline (parse -> enrich -> aggregate) connected by bounded
  ``queue.Queue``s, so a slow stage holds back the one before it.

Both are the everyday lock-heavy code lockwatch must leave alone: every queue
operation takes locks and waits on Conditions. The work is bounded; ``--items N``
sets how much, and the elapsed time is printed, so this is also a quick way to
see lockwatch's overhead:

    python examples/thread_pool_pipeline.py --items 20000
    lockwatch run examples/thread_pool_pipeline.py --items 20000

Expect:
    python examples/thread_pool_pipeline.py            finishes in well under a second.
    lockwatch run examples/thread_pool_pipeline.py     the same output (a little slower);
        no deadlock and no lock-order warning.
"""

from __future__ import annotations

import argparse
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

Callback = Callable[[Any, "BaseException | None"], None]
_STOP = object()  # tells a worker or a pipeline stage to finish


class DynamicPool:
    """Worker threads started on demand and retired when idle, fed from one task queue."""

    def __init__(self, min_workers: int = 1, max_workers: int = 8, idle_timeout: float = 0.05) -> None:
        self.min_workers = min_workers
        self.max_workers = max_workers
        self.idle_timeout = idle_timeout
        self.tasks: queue.Queue[Any] = queue.Queue()
        self._state = threading.Condition(threading.Lock())  # guards the counts below
        self._workers = 0
        self._idle = 0
        self._pending = 0  # submitted, not yet picked up by a worker
        self._started_total = 0
        self.peak_workers = 0

    def submit(self, fn: Callable[..., Any], *args: Any, callback: Callback | None = None) -> None:
        with self._state:
            # Grow when the backlog outnumbers the idle workers; the queue itself is
            # never touched while holding our lock, so no lock order between the two.
            self._pending += 1
            grow = self._pending > self._idle and self._workers < self.max_workers
            if grow:
                self._workers += 1
                self._started_total += 1
                self.peak_workers = max(self.peak_workers, self._workers)
                name = f"pool-worker-{self._started_total}"
        if grow:
            threading.Thread(target=self._work, name=name, daemon=True).start()
        self.tasks.put((fn, args, callback))

    def _work(self) -> None:
        while True:
            with self._state:
                self._idle += 1
            try:
                item = self.tasks.get(timeout=self.idle_timeout)
            except queue.Empty:
                with self._state:
                    self._idle -= 1
                    if self._workers > self.min_workers:
                        self._retire()
                        return
                continue
            with self._state:
                self._idle -= 1
                if item is not _STOP:
                    self._pending -= 1
            if item is _STOP:
                with self._state:
                    self._retire()
                return
            fn, args, callback = item
            try:
                result, error = fn(*args), None
            except Exception as exc:  # the callback gets it; the worker lives on
                result, error = None, exc
            if callback is not None:
                callback(result, error)  # called with no pool lock held
            self.tasks.task_done()

    def _retire(self) -> None:
        # Called with self._state held.
        self._workers -= 1
        self._state.notify_all()

    @property
    def workers(self) -> int:
        with self._state:
            return self._workers

    def wait_for_workers(self, count: int, timeout: float) -> bool:
        """Wait until the pool has shrunk (or grown) to ``count`` workers."""
        with self._state:
            return self._state.wait_for(lambda: self._workers == count, timeout=timeout)

    def shutdown(self) -> None:
        self.tasks.join()
        for _ in range(self.workers):
            self.tasks.put(_STOP)
        with self._state:
            self._state.wait_for(lambda: self._workers == 0, timeout=10)


def pool_demo(items: int) -> None:
    pool = DynamicPool(min_workers=1, max_workers=6, idle_timeout=0.05)
    results: list[int] = []
    failures: list[BaseException] = []
    collect = threading.Lock()

    def on_done(result: Any, error: BaseException | None) -> None:
        with collect:
            if error is not None:
                failures.append(error)
            else:
                results.append(result)

    def square(n: int) -> int:
        if n % 997 == 996:
            raise ValueError(f"bad input {n}")
        return n * n

    for n in range(items):
        pool.submit(square, n, callback=on_done)
    pool.tasks.join()  # every task done and its callback called
    expected_failures = sum(1 for n in range(items) if n % 997 == 996)
    if len(failures) != expected_failures or len(results) + len(failures) != items:
        raise SystemExit(f"pool lost work: {len(results)} results, {len(failures)} failures")
    # With nothing to do, idle workers retire down to the minimum.
    if not pool.wait_for_workers(pool.min_workers, timeout=10):
        raise SystemExit(f"pool did not shrink: {pool.workers} workers")
    print(f"pool: {items} tasks, {len(failures)} failed as expected, "
          f"peak {pool.peak_workers} workers, shrank to {pool.workers} when idle")
    pool.shutdown()


def pipeline_demo(items: int) -> None:
    raw: queue.Queue[Any] = queue.Queue(maxsize=64)
    parsed: queue.Queue[Any] = queue.Queue(maxsize=64)
    enriched: queue.Queue[Any] = queue.Queue(maxsize=64)
    totals = {"count": 0, "sum": 0}

    def parse() -> None:
        while (line := raw.get()) is not _STOP:
            key, value = line.split("=")
            parsed.put((key, int(value)))
        parsed.put(_STOP)

    def enrich() -> None:
        while (record := parsed.get()) is not _STOP:
            key, value = record
            enriched.put((key.upper(), value * 2))
        enriched.put(_STOP)

    def aggregate() -> None:
        while (record := enriched.get()) is not _STOP:
            totals["count"] += 1
            totals["sum"] += record[1]

    stages = [threading.Thread(target=f, name=f"stage-{f.__name__}") for f in (parse, enrich, aggregate)]
    for stage in stages:
        stage.start()
    for n in range(items):
        raw.put(f"k{n}={n}")  # blocks while the pipeline is full: back-pressure
    raw.put(_STOP)
    for stage in stages:
        stage.join()
    expected = 2 * sum(range(items))
    if totals != {"count": items, "sum": expected}:
        raise SystemExit(f"pipeline lost records: {totals}")
    print(f"pipeline: {items} records through 3 stages, sum {totals['sum']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000, help="tasks and pipeline records (default 2000)")
    args = parser.parse_args()
    started = time.perf_counter()
    pool_demo(args.items)
    pipeline_demo(args.items)
    print(f"elapsed: {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main()
