"""An orphaned lock after fork: the child waits for a lock held by a parent thread that fork did not copy.

A background thread flushes a log buffer under a lock. The main thread forks
while the flusher holds it. ``fork()`` copies the whole memory -- the lock,
locked -- but only the forking thread: in the child, the lock's owner does not
exist, nobody will ever release it, and the child's first log line blocks
forever. (Python 3.12+ warns that forking a multi-threaded process may
deadlock the child; this is that deadlock.) The parent waits for the child
and exits with its status.

An Event makes the fork happen while the flusher holds the lock, on every run.

Expect:
    python examples/orphaned_lock_after_fork.py
        the child hangs forever after "child: writing the first log line ...", and the parent with it,
        waiting for the child (Ctrl-C to get out; the child is in the same process group).
    lockwatch run examples/orphaned_lock_after_fork.py
        a deadlock report from the child: its "MainThread" waits for lock "__main__.buffer_lock" (the
        ``with buffer_lock:`` line in ``log``) held by thread "flusher", which does not exist in
        the child. With ``lockwatch run --on-deadlock exit examples/orphaned_lock_after_fork.py``
        the child ends with status 86, and so does the parent.
"""

from __future__ import annotations

import os
import sys
import threading

buffer_lock = threading.Lock()
buffer: list[str] = []
flusher_holds_lock = threading.Event()
forked = threading.Event()


def flush() -> None:
    with buffer_lock:
        flusher_holds_lock.set()
        forked.wait()  # the unlucky moment: the fork happens mid-flush
        buffer.clear()


def log(line: str) -> None:
    with buffer_lock:  # <- the child blocks here, forever
        buffer.append(line)


def main() -> None:
    flusher = threading.Thread(target=flush, name="flusher")
    flusher.start()
    flusher_holds_lock.wait()
    pid = os.fork()
    if pid == 0:
        print("child: writing the first log line ...", flush=True)
        log("child started")
        print("child: done")  # never reached
        os._exit(0)
    forked.set()
    flusher.join()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    print(f"parent: child exited with status {code}", flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
