"""A daemon that waits for a signal: every thread asleep, yet not stuck -- reported as a hang, never ended.

The main thread installs a SIGTERM handler that sets a stop Event, then waits
on that Event; a worker waits on its job queue. Every thread of the program
is in an untimed wait, but a signal can still end the wait: the program said
so by installing a handler. lockwatch reports that every thread is asleep as
a *hang* (someone may want to know), and never exits or breaks the program
for it, even with ``--on-deadlock exit``.

It prints its PID; ``kill PID`` (SIGTERM) stops it cleanly.

Expect:
    python examples/all_asleep_signal_daemon.py
        prints "daemon: pid N, waiting for SIGTERM", then waits until SIGTERM, then prints
        "daemon: stopped on SIGTERM" and exits 0.
    lockwatch run --on-deadlock exit examples/all_asleep_signal_daemon.py
        a hang report (kind "hang", ``all_asleep`` in the dump) within a few looks, and the
        daemon goes on waiting; SIGTERM stops it as above, with status 0.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from types import FrameType

stop = threading.Event()
jobs: queue.Queue[str | None] = queue.Queue()


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    stop.set()


def work() -> None:
    while (job := jobs.get()) is not None:  # the worker sleeps here until a job or the end
        print(f"daemon: {job}", flush=True)


def main() -> None:
    signal.signal(signal.SIGTERM, on_sigterm)
    worker = threading.Thread(target=work, name="job-worker")
    worker.start()
    print(f"daemon: pid {os.getpid()}, waiting for SIGTERM", flush=True)
    stop.wait()  # the main thread sleeps here until SIGTERM
    jobs.put(None)
    worker.join()
    print("daemon: stopped on SIGTERM", flush=True)


if __name__ == "__main__":
    main()
