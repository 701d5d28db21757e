"""The event loop's thread blocks on a threading.Lock held by a thread waiting for the loop.

A metrics exporter thread holds the ``stats_lock`` (a ``threading.Lock``)
while it asks the event loop for a snapshot of the live connections, with
``asyncio.run_coroutine_threadsafe(...).result()``. Meanwhile a request handler
on the loop calls the plain function ``record_request``, which takes the same
``stats_lock`` synchronously, blocking the loop's thread. The exporter waits for
the loop, which waits for the exporter's lock: neither can go on, and every
other task of the loop is frozen with it.

The order is forced, so it deadlocks on every run: the exporter takes the lock
before it wakes the handler (``call_soon_threadsafe(ready.set)``), and submits
its coroutine right after, so the handler runs first and blocks the loop.

Expect:
    python examples/asyncio_loop_blocked_deadlock.py
        hangs forever after "exporter holds stats_lock ..." (Ctrl-C twice to get out).
    lockwatch run examples/asyncio_loop_blocked_deadlock.py
        a deadlock report within about a second: the main thread (the loop's)
        waits for "stats_lock" held by thread "exporter", which waits for the
        future of ``run_coroutine_threadsafe``, run by the event loop in the main
        thread. The process stays hung for inspection; ``lockwatch run
        --on-deadlock exit examples/asyncio_loop_blocked_deadlock.py`` ends it with status 86 instead.

The cure: never block the loop's thread (``await loop.run_in_executor(None,
record_request, ...)``), or do not hold the lock across ``.result()``.
"""

from __future__ import annotations

import asyncio
import threading

stats_lock = threading.Lock()
stats = {"requests": 0}
connections = ["10.0.0.7:51200", "10.0.0.9:40110"]


def record_request() -> None:
    """Plain synchronous bookkeeping, called from the loop: blocks its thread while the lock is taken."""
    with stats_lock:  # the loop's thread blocks here
        stats["requests"] += 1


async def live_connections() -> list[str]:
    return list(connections)


def exporter(loop: asyncio.AbstractEventLoop, ready: asyncio.Event) -> None:
    with stats_lock:
        loop.call_soon_threadsafe(ready.set)
        print("exporter holds stats_lock and waits for the loop ...", flush=True)
        future = asyncio.run_coroutine_threadsafe(live_connections(), loop)
        print("exported", stats, future.result())  # waits for the loop, which waits for stats_lock


async def handle_request(ready: asyncio.Event) -> None:
    await ready.wait()
    record_request()


async def main() -> None:
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    thread = threading.Thread(target=exporter, args=(loop, ready), name="exporter")
    thread.start()
    await asyncio.create_task(handle_request(ready), name="handle-request")
    thread.join()


if __name__ == "__main__":
    asyncio.run(main())
