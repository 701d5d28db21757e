"""Deadlock detection latency: from the last wait of a deadlock starting to lockwatch's report, in ms.

Run: python bench/latency.py [--runs N] [--scenario NAME ...] [--report dump|callback|both] [--interval S]

Each run is a fresh interpreter that builds one deadlock, its interleaving forced with a
Barrier or an Event. Every thread takes a timestamp (``time.time()``) just before its final
blocking ``acquire()`` or ``join()``; the last of them is when the deadlock began. The report
is either

- ``dump``: the program runs under ``lockwatch run --on-deadlock exit --dump-dir DIR`` (default
  settings otherwise) and the report is the moment the deadlock dump appears in DIR, polled by
  this script every millisecond (dumps are published atomically); or
- ``callback``: the program calls ``lockwatch.patch(on_deadlock=callable)`` and the report is
  the moment lockwatch calls that callable (after writing its dump).

Scenarios: ``abba`` (two threads, two locks, opposite orders), ``join`` (the main thread joins a
worker while holding a lock the worker waits for), ``ring3`` (three threads, three locks, in a ring).
Prints median / p90 / max per scenario and report, and the command line that produced them.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))


# --- the deadlocks (run in the child) ---------------------------------------------------------------------


def _announce(stamps: list[float], lock: threading.Lock) -> None:
    """Record that this thread is about to start its final wait (the timestamp is taken first)."""
    now = time.time()
    with lock:
        stamps.append(now)
        print(f"WAIT {now:.6f}", flush=True)


def abba(stamps: list[float], guard: threading.Lock) -> None:
    a, b = threading.Lock(), threading.Lock()
    both_hold = threading.Barrier(2)

    def take(first: threading.Lock, second: threading.Lock) -> None:
        with first:
            both_hold.wait()
            _announce(stamps, guard)
            with second:
                pass

    threads = [threading.Thread(target=take, args=pair, daemon=True) for pair in ((a, b), (b, a))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def join(stamps: list[float], guard: threading.Lock) -> None:
    lock = threading.Lock()
    main_holds = threading.Event()

    def worker() -> None:
        main_holds.wait()
        _announce(stamps, guard)
        with lock:
            pass

    thread = threading.Thread(target=worker, name="worker", daemon=True)
    thread.start()
    with lock:
        main_holds.set()
        _announce(stamps, guard)
        thread.join()


def ring3(stamps: list[float], guard: threading.Lock) -> None:
    locks = [threading.Lock() for _ in range(3)]
    all_hold = threading.Barrier(3)

    def take(index: int) -> None:
        with locks[index]:
            all_hold.wait()
            _announce(stamps, guard)
            with locks[(index + 1) % 3]:
                pass

    threads = [threading.Thread(target=take, args=(i,), daemon=True) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


SCENARIOS: dict[str, Callable[[list[float], threading.Lock], None]] = {"abba": abba, "join": join, "ring3": ring3}


def child(scenario: str, report: str, interval: float | None) -> None:
    # A raw lock for the timestamps: lockwatch must not see (or wait on) the bench's own bookkeeping.
    from _thread import allocate_lock

    guard: threading.Lock = allocate_lock()  # type: ignore[assignment]
    stamps: list[float] = []
    if report == "callback":
        import lockwatch

        def on_deadlock(_report: object) -> None:
            called = time.time()
            with guard:
                last = max(stamps)
            print(f"LATENCY {(called - last) * 1000:.3f}", flush=True)
            os._exit(0)

        settings: dict[str, object] = {"on_deadlock": on_deadlock, "dump_dir": tempfile.mkdtemp(prefix="latency-")}
        if interval is not None:
            settings["interval"] = interval
        lockwatch.patch(**settings)
    SCENARIOS[scenario](stamps, guard)


# --- the measuring side ---------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def one_run(scenario: str, report: str, interval: float | None, timeout: float) -> float | None:
    """Milliseconds from the last wait starting to the report; None if nothing was reported in time."""
    options = [] if interval is None else ["--interval", str(interval)]
    with tempfile.TemporaryDirectory(prefix="latency-") as scratch:
        out_path = os.path.join(scratch, "stdout")
        if report == "callback":
            command = [sys.executable, HERE, "--child", scenario, "--report", "callback", *options]
        else:
            dump_dir = os.path.join(scratch, "dumps")
            command = [sys.executable, "-m", "lockwatch", "run", "--on-deadlock", "exit", "--dump-dir", dump_dir,
                       *options, HERE, "--child", scenario, "--report", "dump"]
        with open(out_path, "w") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=clean_env(), cwd=scratch)
        appeared = None
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if report == "dump" and glob.glob(os.path.join(dump_dir, "deadlock-*.json")):
                    appeared = time.time()
                    break
                if process.poll() is not None:
                    break
                time.sleep(0.001)  # polling for the dump: the resolution of the figure
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass  # reported, but did not end: killed below (the figure is taken already)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        with open(out_path) as out:
            lines = out.read().splitlines()
    if report == "callback":
        found = [float(line.split()[1]) for line in lines if line.startswith("LATENCY ")]
        return found[0] if found else None
    stamps = [float(line.split()[1]) for line in lines if line.startswith("WAIT ")]
    if appeared is None or not stamps:
        return None
    return (appeared - max(stamps)) * 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="fresh processes per scenario and report (default 20)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="only these scenarios (repeatable; default all)")
    parser.add_argument("--report", choices=("dump", "callback", "both"), default="both",
                        help="what counts as the report (default both)")
    parser.add_argument("--interval", type=float, default=None,
                        help="watchdog interval in seconds (default: lockwatch's own default)")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="seconds a run may wait for the report before it counts as missed (default 20)")
    parser.add_argument("--child", choices=sorted(SCENARIOS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.report, args.interval)
        return

    scenarios = args.scenario or list(SCENARIOS)
    reports = ["dump", "callback"] if args.report == "both" else [args.report]
    python = min(sys.executable, os.path.relpath(sys.executable), key=len)
    print(f"$ {shlex.join([python, *sys.argv])}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} runs each, "
          f"interval {'default' if args.interval is None else args.interval}")
    print()
    print("| scenario | report | median ms | p90 ms | max ms | missed |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for scenario in scenarios:
        for report in reports:
            found: list[float] = []
            missed = 0
            for _ in range(args.runs):
                value = one_run(scenario, report, args.interval, args.timeout)
                if value is None:
                    missed += 1
                    if missed == 2 and not found:
                        break  # not detected at all: no point in waiting out every run
                else:
                    found.append(value)
            if found:
                print(f"| {scenario} | {report} | {statistics.median(found):.0f} | {percentile(found, 0.9):.0f} | "
                      f"{max(found):.0f} | {missed} |", flush=True)
            else:
                print(f"| {scenario} | {report} | - | - | - | {missed} |", flush=True)


if __name__ == "__main__":
    main()
