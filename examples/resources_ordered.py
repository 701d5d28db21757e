"""A resource manager that always locks resources in one declared order: no deadlock possible.

The cure for resources_naive.py. The manager declares the order once
(``RESOURCE_ORDER``, outermost first) and sorts every request by it, so jobs
can list their resources in any order they like. Here the jobs even run at the
same time, many times over, with no chance of a deadlock.

Expect:
    python examples/resources_ordered.py            finishes in well under a second.
    lockwatch run examples/resources_ordered.py     the same output; no deadlock and no
        lock-order warning.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: The one order resources are ever locked in, outermost first.
RESOURCE_ORDER = ("db", "cache", "log")


class ResourceManager:
    """Named resources, each behind its own lock, always locked in RESOURCE_ORDER."""

    def __init__(self, order: tuple[str, ...]) -> None:
        self.rank = {name: position for position, name in enumerate(order)}
        self.locks = {name: threading.Lock() for name in order}
        self.counts = {"report": 0, "invalidator": 0, "audit": 0}

    @contextmanager
    def holding(self, *names: str) -> Iterator[None]:
        """Lock ``names`` in the declared order, whatever order the caller listed them in."""
        unknown = [name for name in names if name not in self.rank]
        if unknown:
            raise KeyError(f"undeclared resources: {unknown}")
        taken: list[threading.Lock] = []
        try:
            for name in sorted(set(names), key=self.rank.__getitem__):
                lock = self.locks[name]
                lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in reversed(taken):
                lock.release()


ROUNDS = 300


def main() -> None:
    manager = ResourceManager(RESOURCE_ORDER)
    jobs = {
        "report": ("db", "cache"),
        "invalidator": ("cache", "db"),  # listed "backwards": the manager sorts it
        "audit": ("log", "cache", "db"),
    }
    start_together = threading.Barrier(len(jobs))

    def run(job: str, needs: tuple[str, ...]) -> None:
        start_together.wait()
        for _ in range(ROUNDS):
            with manager.holding(*needs):
                manager.counts[job] += 1

    threads = [threading.Thread(target=run, args=(job, needs), name=job) for job, needs in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("rounds per job:", manager.counts)
    if any(count != ROUNDS for count in manager.counts.values()):
        raise SystemExit("a job did not finish its rounds")
    print("all jobs finished; resources always locked in order", " -> ".join(RESOURCE_ORDER))


if __name__ == "__main__":
    main()
