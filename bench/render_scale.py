"""Time to turn big reports into DOT text, and to write a dump, as the number of locks grows.

Run: python bench/render_scale.py [N ...]      (default: 1000 5000 10000 20000 locks)

Each report is a deadlock between two threads plus N/20 worker threads holding 20
locks each, every other worker also waiting for the next one's first lock. "full"
draws every node (``to_dot(report, max_nodes=huge)``): it shows that the time is
linear in N. "default" is what lockwatch draws (at most 300 nodes: the cycle and its
neighbourhood). "write_report" is what the reporting thread spends per dump: the
JSON, then starting the drawing process.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable

from lockwatch import _dump, _render
from lockwatch._model import CycleStep, Frame, LockInfo, Report, ThreadInfo


def report_with(locks: int, per_worker: int = 20) -> Report:
    site = Frame("/app/w.py", 1, "<module>")
    stack = (Frame("/app/w.py", 3, "work", "with lock:"),)
    threads = [
        ThreadInfo(id=1, name="left", daemon=False, holding=("L1",), waiting_for="L2", waiting_seconds=1.0,
                   stack=stack, role="cycle"),
        ThreadInfo(id=2, name="right", daemon=False, holding=("L2",), waiting_for="L1", waiting_seconds=1.0,
                   stack=stack, role="cycle"),
    ]
    infos = [LockInfo(id="L1", kind="Lock", name="a", site=site, owner=1, count=1, waiters=(2,)),
             LockInfo(id="L2", kind="Lock", name="b", site=site, owner=2, count=1, waiters=(1,))]
    workers = max(1, locks // per_worker)
    for index in range(workers):
        ident = 1000 + index
        holding = tuple(f"L{10 + index * per_worker + k}" for k in range(per_worker))
        waiting = f"L{10 + ((index + 1) % workers) * per_worker}" if index % 2 else None
        threads.append(ThreadInfo(id=ident, name=f"worker-{index}", daemon=True, holding=holding,
                                  waiting_for=waiting, waiting_seconds=1.0 if waiting else None, stack=stack))
        infos += [LockInfo(id=lock_id, kind="Lock", name=None, site=site, owner=ident, count=1, waiters=(),
                           label=f"pool[{lock_id}]") for lock_id in holding]
    return Report(kind="deadlock", created="2026-11-30T00:00:00+00:00", pid=1, argv=("bench",), python="3",
                  threads=tuple(threads), locks=tuple(infos),
                  cycles=((CycleStep(1, "L2"), CycleStep(2, "L1")),), summary="bench")


def seconds(action: Callable[..., object], *args: object, **kwargs: object) -> float:
    start = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - start


def full_dot(report: Report) -> str:
    try:
        return _render.to_dot(report, max_nodes=10**9)
    except TypeError:  # a lockwatch before the size limit: it always drew everything
        return _render.to_dot(report)


def main(argv: list[str]) -> None:
    sizes = [int(arg) for arg in argv] or [1000, 5000, 10000, 20000]
    print(f"{'locks':>7} {'full to_dot':>12} {'default to_dot':>15} {'write_report':>13}")
    with tempfile.TemporaryDirectory() as directory:
        for size in sizes:
            report = report_with(size)
            full = seconds(full_dot, report)
            default = seconds(_render.to_dot, report)
            write = seconds(_dump.write_report, report, directory)
            print(f"{len(report.locks):>7} {full:>11.2f}s {default:>14.2f}s {write:>12.3f}s", flush=True)
        if hasattr(_dump, "wait_drawings"):
            _dump.wait_drawings(60)


if __name__ == "__main__":
    main(sys.argv[1:])
