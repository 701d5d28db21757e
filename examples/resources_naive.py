"""A resource manager that takes several named resources in the order asked: a latent deadlock.

Jobs ask the manager for the resources they need (``db``, ``cache``, ``log``,
each guarded by a ``threading.Lock``) and get them locked in the order they
listed them. The nightly report asks for ``db`` then ``cache``; the cache
invalidator asks for ``cache`` then ``db``. Here they run one after the other,
so nothing ever hangs -- but the day they overlap, each can hold one resource
and wait forever for the other.

Expect:
    python examples/resources_naive.py            finishes at once; nothing looks wrong.
    lockwatch run examples/resources_naive.py     the same output and exit status 0, plus a
        LockOrderWarning and a lock-order dump in ./lockwatch-dumps: a cycle between the
        ``db`` and ``cache`` locks, one edge taken in nightly-report and the other in
        cache-invalidator, each with its stack -- the deadlock found before it happens.
        With ``lockwatch run --order raise examples/resources_naive.py`` the second job
        gets LockOrderViolation from its acquire instead.

The cure is in resources_ordered.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ResourceManager:
    """Named resources, each behind its own lock."""

    def __init__(self, names: list[str]) -> None:
        self.locks = {name: threading.Lock() for name in names}
        self.log: list[str] = []

    @contextmanager
    def holding(self, *names: str) -> Iterator[None]:
        """Lock ``names`` in the order given (the bug: callers decide the order)."""
        taken: list[threading.Lock] = []
        try:
            for name in names:
                lock = self.locks[name]
                lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in reversed(taken):
                lock.release()


def nightly_report(manager: ResourceManager) -> None:
    with manager.holding("db", "cache"):
        manager.log.append("report: read db, warmed cache")


def invalidate_cache(manager: ResourceManager) -> None:
    with manager.holding("cache", "db"):
        manager.log.append("invalidator: dropped cache, marked db rows")


def main() -> None:
    manager = ResourceManager(["db", "cache", "log"])
    # The jobs run at different times (one after the other): never at once, never a hang.
    for job, name in [(nightly_report, "nightly-report"), (invalidate_cache, "cache-invalidator")]:
        thread = threading.Thread(target=job, args=(manager,), name=name)
        thread.start()
        thread.join()
    print("\n".join(manager.log))
    print("both jobs finished")


if __name__ == "__main__":
    main()
