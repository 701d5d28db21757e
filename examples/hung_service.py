"""A service whose worker threads deadlock after a while: practice for debugging a hung process.

Worker threads serve requests from a queue. ``put`` requests lock the cache,
then the statistics; the rare ``report`` request locks the statistics, then
the cache. For a while everything works. After ``--deadlock-after`` requests
(default 30, about three seconds) a ``put`` and a ``report`` are handled at
the same moment, each worker holds one lock and waits for the other, and the
service stops answering -- the process is alive but hung.

It prints its PID at start so you can look inside it while it runs or hangs:

    lockwatch run examples/hung_service.py
    lockwatch dump PID          # in another terminal: a snapshot of who holds and who waits
    kill -USR1 PID              # the same, by hand: a snapshot dump in ./lockwatch-dumps

With ``--hang-on-enter`` it waits for Enter before the fatal pair, so you can
take a snapshot of the healthy service first, then one of the hung service.

Expect:
    python examples/hung_service.py
        serves requests, then hangs forever after "handling report #N" (Ctrl-C twice
        to get out); nothing says why.
    lockwatch run examples/hung_service.py
        lock-order checking warns at the first ``report`` (request #10 by default),
        seconds before anything hangs: cache -> stats and stats -> cache were both taken.
        Then a deadlock report within about a second of the hang: two
        workers, each waiting for the lock the other holds, with their stacks; the
        process stays hung for you to inspect (``lockwatch run --on-deadlock exit
        examples/hung_service.py`` ends it with status 86). ``lockwatch dump PID`` / SIGUSR1 write a snapshot at any time.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time


class Service:
    """A cache with request statistics, served by a fixed set of worker threads."""

    def __init__(self, workers: int) -> None:
        self.requests: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self.cache: dict[int, int] = {}
        self.cache_lock = threading.Lock()
        self.stats = {"put": 0, "report": 0}
        self.stats_lock = threading.Lock()
        # The fatal put and report meet here, each holding its first lock: this
        # stands in for the unlucky timing that makes the bug rare in production,
        # and makes the hang happen on every run.
        self.unlucky_moment = threading.Barrier(2)
        self.workers = [
            threading.Thread(target=self.serve, name=f"worker-{i}") for i in range(workers)
        ]

    def serve(self) -> None:
        while (request := self.requests.get()) is not None:
            kind, number = request
            if kind == "put":
                self.put(number, fatal=number < 0)
            else:
                self.report(number, fatal=number < 0)
            self.requests.task_done()

    def put(self, key: int, fatal: bool = False) -> None:
        with self.cache_lock:
            self.cache[abs(key)] = abs(key) * 2
            if fatal:
                self.unlucky_moment.wait()
            with self.stats_lock:  # cache -> stats
                self.stats["put"] += 1

    def report(self, number: int, fatal: bool = False) -> None:
        with self.stats_lock:
            self.stats["report"] += 1
            if fatal:
                self.unlucky_moment.wait()
            with self.cache_lock:  # stats -> cache: the opposite order
                size = len(self.cache)
        print(f"  report #{abs(number)}: {size} cache entries, {self.stats['put']} puts", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadlock-after", type=int, default=30, metavar="N",
                        help="requests served before the fatal pair (default 30)")
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second (default 10)")
    parser.add_argument("--hang-on-enter", action="store_true",
                        help="after the first N requests, wait for Enter before sending the fatal pair "
                        "(time to take a snapshot of the healthy service first)")
    args = parser.parse_args()

    pid = os.getpid()
    print(f"hung_service: pid {pid} -- try `lockwatch dump {pid}` or `kill -USR1 {pid}`", flush=True)
    service = Service(workers=3)
    for worker in service.workers:
        worker.start()

    # The client: a steady trickle of puts with an occasional report, then the fatal pair.
    for n in range(1, args.deadlock_after + 1):
        if n % 10 == 0:
            print(f"handling report #{n}", flush=True)
            service.requests.put(("report", n))
        else:
            service.requests.put(("put", n))
        time.sleep(1.0 / args.rate)  # pacing the client, not forcing any interleaving
    # A quiet moment: every request so far answered and all workers idle, so the
    # fatal pair below is taken by two different idle workers at once.
    service.requests.join()
    if args.hang_on_enter:
        print(f"service healthy, {args.deadlock_after} requests answered; press Enter to make it hang", flush=True)
        sys.stdin.readline()
    print(f"handling report #{args.deadlock_after + 1} (and a put at the same moment)", flush=True)
    service.requests.put(("put", -(args.deadlock_after + 1)))
    service.requests.put(("report", -(args.deadlock_after + 1)))

    for _ in service.workers:
        service.requests.put(None)
    for worker in service.workers:
        worker.join()  # with plain python: forever
    print("service stopped")  # never reached


if __name__ == "__main__":
    main()
