"""Waiting on ``future.result()`` while holding a lock the pool task needs.

A cache is refilled in a thread pool. ``refresh()`` holds the cache lock (so
no reader sees a half-refreshed cache), submits the refill to the pool and
waits for its result. The refill task stores what it fetched under the same
lock. The caller waits for the future, the pool worker running it waits for
the lock the caller holds.

No Event is needed: the caller takes the lock before the task exists.

Expect:
    python examples/future_result_holding_lock.py
        hangs forever after "refreshing the cache ..." (Ctrl-C twice to get out).
    lockwatch run examples/future_result_holding_lock.py
        a deadlock report: thread "MainThread" waits for the future of ``refill``
        running in thread "ThreadPoolExecutor-0_0" (the ``.result()`` line in ``refresh``),
        which waits for lock "Cache.lock" held by "MainThread" (the ``with self.lock:``
        line in ``refill``).
        ``lockwatch run --on-deadlock exit examples/future_result_holding_lock.py`` ends it with status 86.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor


class Cache:
    """Values fetched in the background, guarded by one lock."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, int] = {}
        self.pool = pool

    def refill(self, keys: list[str]) -> int:
        fetched = {key: len(key) for key in keys}  # stands in for a slow fetch
        with self.lock:  # <- the pool worker blocks here
            self.values.update(fetched)
        return len(fetched)

    def refresh(self, keys: list[str]) -> int:
        with self.lock:
            self.values.clear()
            return self.pool.submit(self.refill, keys).result()  # <- blocks here, holding the lock


def main() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        cache = Cache(pool)
        print("refreshing the cache ...", flush=True)
        count = cache.refresh(["alpha", "beta"])
        print(f"{count} values refreshed")  # never reached


if __name__ == "__main__":
    main()
