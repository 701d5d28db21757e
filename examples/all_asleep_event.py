"""Every thread is asleep: each waits on an Event or a Queue that nobody will ever set or fill. No lock cycle.

A worker waits for a "go" Event before it starts computing; the main thread
waits on a result Queue for the worker's answer. A refactoring moved the
``go.set()`` behind a setting that is off, so nobody ever sets it. Neither
thread holds a lock; there is no cycle to find. But every thread of the
program is blocked in an untimed wait that only another thread of the
program could end -- and they are all waiting. Go's runtime would say "all
goroutines are asleep - deadlock!".

Expect:
    python examples/all_asleep_event.py
        hangs forever after "waiting for the worker's result ..." (Ctrl-C twice to get out).
    lockwatch run examples/all_asleep_event.py
        a report that every thread is asleep (kind "hang", or "deadlock" with the waits it can
        name; ``all_asleep`` in the dump): "MainThread" waits in ``results.get()``, thread
        "worker" in ``go.wait()`` -- with no hang timeout set. ``lockwatch run --on-deadlock
        exit examples/all_asleep_event.py`` ends it with status 86.
"""

from __future__ import annotations

import queue
import threading

AUTOSTART = False  # the setting the go signal now hides behind

go = threading.Event()
results: queue.Queue[int] = queue.Queue()


def worker() -> None:
    go.wait()  # <- the worker sleeps here, forever
    results.put(sum(range(100)))


def main() -> None:
    threading.Thread(target=worker, name="worker").start()
    if AUTOSTART:
        go.set()
    print("waiting for the worker's result ...", flush=True)
    print(f"result: {results.get()}")  # <- the main thread sleeps here, forever


if __name__ == "__main__":
    main()
