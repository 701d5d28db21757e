"""An orphaned lock: a thread ends while holding a Lock, and another thread waits for it forever.

A job takes the state lock with ``acquire()`` and releases it at the end of
the happy path -- but an early ``return`` on an empty batch skips the
``release()``. The job thread ends; the ``Lock`` stays locked, owned by
nobody alive. The main thread, having joined the job, takes the state lock to
read the result and waits forever. (``with lock:`` would have released it.)

Expect:
    python examples/orphaned_lock_thread_ended.py
        hangs forever after "job finished; reading its result ..." (Ctrl-C twice to get out).
    lockwatch run examples/orphaned_lock_thread_ended.py
        a deadlock report: thread "MainThread" waits for lock "__main__.state_lock" (the
        ``with state_lock:`` line in ``main``) held by thread "job", which no longer exists
        (in the dump: a chain, not a cycle, ending at a lock whose owner has ``alive: false``).
        ``lockwatch run --on-deadlock exit examples/orphaned_lock_thread_ended.py`` ends it with status 86.
"""

from __future__ import annotations

import threading

state_lock = threading.Lock()
processed: list[int] = []


def job(batch: list[int]) -> None:
    state_lock.acquire()
    if not batch:
        return  # the bug: returns with the lock still held
    processed.extend(batch)
    state_lock.release()


def main() -> None:
    worker = threading.Thread(target=job, args=([],), name="job")
    worker.start()
    worker.join()
    print("job finished; reading its result ...", flush=True)
    with state_lock:  # <- blocks here, forever: the lock's owner is gone
        print(f"processed {len(processed)} items")  # never reached


if __name__ == "__main__":
    main()
