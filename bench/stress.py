"""Stress: many threads mixing every kind of lock use under lockwatch for N seconds, then checks that nothing was harmed.

    python bench/stress.py --seconds 30 --threads 64

The workload runs in a child process (its stderr is captured) under
``lockwatch.patch(order="warn")`` and mixes: ordered nested acquires
(transfers that always lock the lower account first), timed and non-blocking
acquires, reentrant RLocks, a Lock released by another thread than the one
that took it (a baton handed back through a queue), Condition waits, a
semaphore, garbage cycles whose ``__del__`` takes a lock (with the GC made to
run often), SIGALRM handled by taking a lock in the main thread, and SIGUSR1
snapshot requests. Every lock order in it is consistent: no report is right.

Afterwards it checks that
- no lock is lost: every lock is unlocked and acquirable, and no thread is
  still listed as holding anything;
- no thread is stuck: every worker ends within a timeout;
- no false report was made: no deadlock, lock-order or hang report, no
  LockOrderWarning, no DeadlockError or LockOrderViolation in a thread;
- lockwatch printed no error (any ``lockwatch:`` line on stderr other than
  "... written to ..." is one) and no thread died with a traceback;
- lock-order checking is still on: a real inversion in two threads, made at
  the end, is reported.

Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD_FLAG = "--child"

# Lines lockwatch prints that are not errors.
_INFORMATIONAL = ("lockwatch: snapshot written to", "lockwatch: wrote ")


def child(seconds: float, thread_count: int, seed: int, on_deadlock: str, dump_dir: str, switch: float) -> int:
    """The workload; prints one JSON line with what it saw."""
    import faulthandler
    import gc
    import queue
    import random
    import signal
    import threading
    import time
    import warnings

    import lockwatch
    from lockwatch import _events

    faulthandler.dump_traceback_later(seconds + 60, exit=True)  # a hang shows every stack, then ends
    reports: list[tuple[str, str]] = []
    _events.subscribe(lambda report, paths: reports.append((report.kind, report.summary[:300])))
    lockwatch.patch(order="warn", on_deadlock=on_deadlock, interval=0.1, dump_dir=dump_dir)
    warnings.simplefilter("always")
    caught_warnings: list[str] = []
    original_showwarning = warnings.showwarning

    def showwarning(message, category, *args, **kwargs):  # type: ignore[no-untyped-def]
        if issubclass(category, lockwatch.LockOrderWarning):
            caught_warnings.append(str(message)[:300])
        else:
            original_showwarning(message, category, *args, **kwargs)

    warnings.showwarning = showwarning

    # --- the locks, in their one global order (outermost first) --------------------------
    registry = threading.RLock()                                    # reentrant, outermost
    accounts = [threading.Lock() for _ in range(16)]                # always taken lowest index first
    balances = [1000] * len(accounts)
    stats_lock = threading.Lock()                                   # a leaf under accounts
    finalizer_lock = threading.RLock()                              # taken by __del__, anywhere: innermost
    signal_lock = threading.RLock()                                 # only the main thread (its handler) takes it
    baton = threading.Lock()                                        # taken by workers, released by the releaser
    handback: queue.Queue[int] = queue.Queue()
    cond = threading.Condition()
    pending: list[int] = []
    gate = threading.BoundedSemaphore(3)
    stop = threading.Event()
    workers_done = threading.Event()
    counts: dict[str, int] = {}
    errors: list[str] = []
    freed = [0]
    signals_handled = [0]

    class Resource:
        """Freed only by the cyclic GC, in whichever thread allocates then."""

        def __init__(self) -> None:
            self.cycle = self

        def __del__(self) -> None:
            with finalizer_lock:
                freed[0] += 1

    def count(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1

    def transfer(rng: random.Random) -> None:
        i, j = sorted(rng.sample(range(len(accounts)), 2))
        with accounts[i]:
            with accounts[j]:
                balances[i] -= 1
                balances[j] += 1
                with stats_lock:
                    count("transfer")

    def timed(rng: random.Random) -> None:
        lock = accounts[rng.randrange(len(accounts))]
        if lock.acquire(timeout=0.002):
            try:
                count("timed")
            finally:
                lock.release()

    def try_lock(rng: random.Random) -> None:
        lock = accounts[rng.randrange(len(accounts))]
        if lock.acquire(blocking=False):
            try:
                count("non-blocking")
            finally:
                lock.release()

    def reentrant(rng: random.Random) -> None:
        with registry:
            with registry:
                with accounts[rng.randrange(len(accounts))]:
                    count("reentrant")

    def per_object(rng: random.Random) -> None:
        item_lock = threading.Lock()         # a fresh lock each time (per-object locks): new instance orders
        with accounts[rng.randrange(len(accounts))]:
            with item_lock:
                with stats_lock:
                    count("per-object")

    def handed_back(rng: random.Random) -> None:
        baton.acquire()                      # released by the releaser thread, not by us
        handback.put(1)
        count("cross-thread")

    def produce(rng: random.Random) -> None:
        with cond:
            pending.append(1)
            cond.notify()
        count("notify")

    def consume(rng: random.Random) -> None:
        with cond:
            if cond.wait_for(lambda: pending or stop.is_set(), timeout=0.05) and pending:
                pending.pop()
                with stats_lock:
                    count("condition-wait")

    def garbage(rng: random.Random) -> None:
        for _ in range(5):
            Resource()
        count("garbage")

    def semaphore(rng: random.Random) -> None:
        with gate:
            transfer(rng)

    operations = [transfer, timed, try_lock, reentrant, per_object, handed_back, produce, consume, garbage, semaphore]

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        try:
            while not stop.is_set():
                rng.choice(operations)(rng)
        except BaseException as exc:  # a DeadlockError or LockOrderViolation here is a false report
            errors.append(f"{threading.current_thread().name}: {exc!r}")

    def releaser() -> None:
        while not (workers_done.is_set() and handback.empty()):
            try:
                handback.get(timeout=0.05)
            except queue.Empty:
                continue
            baton.release()

    def on_alarm(signum: int, frame: object) -> None:
        with signal_lock:                    # a handler may take a lock only its own thread ever takes
            signals_handled[0] += 1

    sys.setswitchinterval(switch)            # more thread switches: more interleavings per second
    gc_thresholds = gc.get_threshold()
    gc.set_threshold(50, 5, 5)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
    back = threading.Thread(target=releaser, name="releaser")
    back.start()
    threads = [threading.Thread(target=worker, args=(i,), name=f"worker-{i}") for i in range(thread_count)]
    for thread in threads:
        thread.start()
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    next_snapshot = time.monotonic() + 1.0
    snapshots = 0
    while time.monotonic() < deadline:
        transfer(rng)                        # the main thread works too: signals land mid-`with`
        reentrant(rng)
        if time.monotonic() >= next_snapshot:
            os.kill(os.getpid(), signal.SIGUSR1)   # what `lockwatch dump PID` sends
            snapshots += 1
            next_snapshot += 1.0
        time.sleep(0.001)
    stop.set()
    sys.setswitchinterval(0.005)
    with cond:
        cond.notify_all()
    for thread in threads:
        thread.join(20)
    workers_done.set()
    back.join(20)
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    gc.set_threshold(*gc_thresholds)
    gc.collect()
    stuck = [t.name for t in threads + [back] if t.is_alive()]

    # --- no lock lost ---------------------------------------------------------------------
    named_locks = {"registry": registry, "stats": stats_lock, "finalizer": finalizer_lock, "signal": signal_lock,
                   "baton": baton, "condition": cond._lock}  # type: ignore[attr-defined]
    named_locks.update({f"account-{i}": lock for i, lock in enumerate(accounts)})
    lost = []
    if not stuck:
        for name, lock in named_locks.items():
            if lock.locked():
                lost.append(f"{name} is still locked")
            elif not lock.acquire(timeout=2):
                lost.append(f"{name} cannot be acquired")
            else:
                lock.release()
    holding = [f"{t.name} holds {list(t.holding)}" for t in lockwatch.snapshot().threads if t.holding]
    time.sleep(1.0)                          # a late report (published by lockwatch's thread) still counts
    false_reports = [r for r in reports if r[0] != "snapshot"]
    false_warnings = list(caught_warnings)

    # --- lock-order checking still on: a real inversion in two threads ---------------------------
    reports_before_inversion = len(reports)
    first, second = threading.Lock(), threading.Lock()
    one_done = threading.Event()

    def forward() -> None:
        with first:
            with second:
                pass
        one_done.set()

    def backward() -> None:
        one_done.wait(10)
        with second:
            with first:
                pass

    pair = [threading.Thread(target=forward, name="inversion-1"), threading.Thread(target=backward, name="inversion-2")]
    for thread in pair:
        thread.start()
    for thread in pair:
        thread.join(10)
    deadline = time.monotonic() + 10         # reports are published by lockwatch's own thread
    while time.monotonic() < deadline:
        inversion_reported = any(kind == "lock-order" for kind, _ in reports[reports_before_inversion:])
        if inversion_reported:
            break
        time.sleep(0.05)
    print(json.dumps({
        "counts": counts,
        "threads": thread_count,
        "seconds": seconds,
        "finalizers_run": freed[0],
        "signals_handled": signals_handled[0],
        "snapshot_requests": snapshots,
        "stuck": stuck,
        "lost": lost,
        "holding": holding,
        "errors": errors,
        "false_reports": false_reports,
        "false_warnings": false_warnings,
        "inversion_reported": inversion_reported,
        "balance": sum(balances) == 1000 * len(balances),
    }), flush=True)
    os._exit(0)  # stuck threads (if any) must not keep the process alive


def lockwatch_errors(stderr: str) -> list[str]:
    found = []
    for line in stderr.splitlines():
        if line.startswith("lockwatch:") and not line.startswith(_INFORMATIONAL) and " dump written to " not in line:
            found.append(line)
        elif line.startswith(("Traceback", "Exception in thread", "Fatal Python error", "Timeout (")):
            found.append(line)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the workload runs (default 10)")
    parser.add_argument("--threads", type=int, default=32, help="worker threads (default 32)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the workload")
    parser.add_argument("--on-deadlock", choices=("report", "break"), default="break", help="lockwatch's reaction")
    parser.add_argument("--switch-interval", type=float, default=0.0005,
                        help="sys.setswitchinterval in the workload (default 0.0005: ten times more switches)")
    parser.add_argument(CHILD_FLAG, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dump-dir", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.seconds <= 0 or options.threads < 1:
        parser.error("--seconds must be positive and --threads at least 1")
    if options.child:
        return child(options.seconds, options.threads, options.seed, options.on_deadlock, options.dump_dir,
                     options.switch_interval)

    dump_dir = tempfile.mkdtemp(prefix="lw-stress-")
    command = [sys.executable, os.path.abspath(__file__), CHILD_FLAG, "--seconds", str(options.seconds),
               "--threads", str(options.threads), "--seed", str(options.seed), "--on-deadlock", options.on_deadlock,
               "--dump-dir", dump_dir, "--switch-interval", str(options.switch_interval)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=options.seconds + 120)
        stdout, stderr, status = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        status = None
    lines = stdout.strip().splitlines()
    try:
        seen = json.loads(lines[-1]) if lines else None
    except ValueError:
        seen = None
    failures = []
    if seen is None:
        failures.append(f"the workload did not finish (status {status}); stderr ends:\n{stderr[-3000:]}")
    else:
        print(f"{seen['threads']} threads for {seen['seconds']} s: "
              + ", ".join(f"{n} {k}" for k, n in sorted(seen["counts"].items()))
              + f"; {seen['finalizers_run']} finalizers, {seen['signals_handled']} SIGALRM handled, "
              f"{seen['snapshot_requests']} snapshot requests")
        checks = {
            "no thread is stuck": seen["stuck"],
            "no lock is lost": seen["lost"] + seen["holding"],
            "no false report": seen["false_reports"] + seen["false_warnings"] + seen["errors"],
            "no lockwatch error on stderr": lockwatch_errors(stderr),
            "lock-order checking is still on": [] if seen["inversion_reported"] else ["a real inversion was not reported"],
            "money is conserved": [] if seen["balance"] else ["the transfers lost money: a lock did not exclude"],
        }
        for name, problems in checks.items():
            print(f"{'ok  ' if not problems else 'FAIL'} {name}")
            for problem in problems[:10]:
                print(f"       {str(problem)[:400]}")
            if problems:
                failures.append(name)
    print("RESULT: " + ("OK" if not failures else "FAIL: " + "; ".join(f[:200] for f in failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
