"""Scale: memory and time per acquisition stay flat for long-running programs under lockwatch (issue 15, items 7 and 8).

    python bench/scale.py                                   # 10k and 100k accounts, 1M acquisitions; 100k sites
    python bench/scale.py --accounts 10000 --acquisitions 200000 --sites 20000   # quicker

1. Sorted bank transfers: every account has its own Lock (created on one line,
   so they are one lock class) and a transfer always locks the lower account id
   first -- the consistent order lockwatch must accept at any size. Run under
   ``lockwatch.patch(order="warn")``; every ``--step`` acquisitions it prints the
   time that step took and the process's RSS. Flat columns are the goal;
   growing ones are the bug. A plain-python row (no lockwatch) gives the floor.
2. Generated lock creation sites: ``--sites`` functions made with ``exec`` from a
   template (each one a new creation site), each called once to create a lock
   that is nested under a long-lived one and then dropped, with the generated
   code. Printed: RSS per 10% of the sites, and bytes per site with and without
   lockwatch (plain python frees everything: its growth is the baseline).

Each configuration runs in a fresh child process, so that RSS figures do not
mix. ``--budget`` bounds the seconds a configuration may take (old code can be
very slow here): a run over budget stops and says so. A benchmark, not a test:
it always exits 0 unless a child crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

CHILD_FLAG = "--child"
MIB = 1024 * 1024


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/status (0 where there is no /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def transfers_child(accounts: int, acquisitions: int, step: int, budget: float, patched: bool, seed: int) -> None:
    import random
    import threading

    if patched:
        import lockwatch

        lockwatch.patch(order="warn", dump_dir=os.environ.get("SCALE_DUMP_DIR", "lockwatch-dumps"))

    class Account:
        def __init__(self, number: int) -> None:
            self.number = number
            self.balance = 100
            self.lock = threading.Lock()  # one line: every account lock is one lock class

    bank = [Account(i) for i in range(accounts)]
    rng = random.Random(seed)
    emit(event="start", rss=rss_bytes())
    started = time.monotonic()
    done = 0
    while done < acquisitions:
        step_started = time.monotonic()
        for _ in range(step // 2):  # two acquisitions per transfer
            a, b = rng.sample(bank, 2)
            first, second = (a, b) if a.number < b.number else (b, a)
            with first.lock:
                with second.lock:
                    a.balance -= 1
                    b.balance += 1
        done += step // 2 * 2
        emit(event="step", acquisitions=done, seconds=time.monotonic() - step_started, rss=rss_bytes())
        if time.monotonic() - started > budget and done < acquisitions:
            emit(event="over-budget", acquisitions=done)
            break


TEMPLATE = """\
def make_lock():
    return threading.Lock()   # site {index}
"""


def sites_child(sites: int, patched: bool) -> None:
    import gc
    import threading

    if patched:
        import lockwatch

        lockwatch.patch(order="warn", dump_dir=os.environ.get("SCALE_DUMP_DIR", "lockwatch-dumps"))
    outer = threading.Lock()
    # Warm up (first-use allocations of lockwatch and of exec) before the baseline.
    for index in range(200):
        namespace = {"threading": threading}
        exec(compile(TEMPLATE.format(index=index), f"<warm-up-{index}>", "exec"), namespace)
        with outer:
            with namespace["make_lock"]():  # type: ignore[operator]
                pass
    gc.collect()
    base = rss_bytes()
    emit(event="start", rss=base)
    report_every = max(1, sites // 10)
    started = time.monotonic()
    for index in range(sites):
        namespace = {"threading": threading}
        # A new file name per template: every generated function is a new lock creation site.
        exec(compile(TEMPLATE.format(index=index), f"<template-{index}>", "exec"), namespace)
        lock = namespace["make_lock"]()  # type: ignore[operator]
        with outer:
            with lock:
                pass
        del namespace, lock
        if (index + 1) % report_every == 0:
            gc.collect()
            emit(event="step", sites=index + 1, seconds=time.monotonic() - started, rss=rss_bytes(), base=base)


def run_child(label: str, args: list[str], step: int, timeout: float) -> bool:
    """Run one configuration in a fresh process, printing its table rows as they come; False if it failed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), CHILD_FLAG, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        print_row(label, row, step)
        if time.monotonic() > deadline:
            break
    try:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        print(f"| {label} | killed: over the time limit | | |")
        return True
    if proc.returncode != 0:
        print(f"| {label} | the child failed with status {proc.returncode} | | |\n{proc.stderr.read()[-1500:]}")
        return False
    return True


def print_row(label: str, row: dict[str, Any], step: int) -> None:
    event = row.get("event")
    if event == "start":
        print(f"| {label} | 0 | | {row['rss'] / MIB:.1f} |", flush=True)
    elif event == "step" and "acquisitions" in row:
        per_100k = row["seconds"] * 100_000 / step
        print(f"| {label} | {row['acquisitions']:,} | {per_100k:.2f} | {row['rss'] / MIB:.1f} |", flush=True)
    elif event == "step" and "sites" in row:
        grown = row["rss"] - row["base"]
        print(f"| {label} | {row['sites']:,} | {row['rss'] / MIB:.1f} | {grown / row['sites']:.0f} |", flush=True)
    elif event == "over-budget":
        print(f"| {label} | stopped: over --budget after {row['acquisitions']:,} acquisitions | | |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", default="10000,100000", help="comma-separated account counts (default 10000,100000)")
    parser.add_argument("--acquisitions", type=int, default=1_000_000, help="acquisitions per run (default 1,000,000)")
    parser.add_argument("--step", type=int, default=100_000, help="acquisitions per printed row (default 100,000)")
    parser.add_argument("--sites", type=int, default=100_000, help="generated lock creation sites (default 100,000; 0: skip)")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds one configuration may run (default 600)")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain-python rows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(CHILD_FLAG, nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child is not None:
        kind, *rest = options.child
        if kind == "transfers":
            accounts, acquisitions, step, budget, patched, seed = rest
            transfers_child(int(accounts), int(acquisitions), int(step), float(budget), patched == "1", int(seed))
        else:
            sites, patched = rest
            sites_child(int(sites), patched == "1")
        return 0
    try:
        account_counts = [int(n) for n in options.accounts.split(",") if n.strip()]
    except ValueError:
        parser.error("--accounts takes comma-separated integers")
    if options.step < 2 or options.acquisitions < options.step or any(n < 2 for n in account_counts):
        parser.error("need --step >= 2, --acquisitions >= --step, and at least 2 accounts")
    step = options.step // 2 * 2
    print(f"Python {sys.version.split()[0]}; lock-order checking on (order=\"warn\")\n")
    print(f"Sorted transfers: seconds per 100k acquisitions and RSS, every {options.step:,} acquisitions\n")
    print("| run | acquisitions | s per 100k | RSS MiB |")
    print("| --- | ---: | ---: | ---: |")
    ok = True
    modes = [True] if options.no_plain else [False, True]
    for accounts in account_counts:
        for patched in modes:
            label = f"{accounts:,} accounts, {'lockwatch' if patched else 'plain'}"
            ok &= run_child(label, ["transfers", str(accounts), str(options.acquisitions), str(step),
                                    str(options.budget), "1" if patched else "0", str(options.seed)],
                            step, timeout=options.budget + 120)
    if options.sites > 0:
        print(f"\nGenerated lock creation sites (exec of a template, {options.sites:,} sites): "
              "RSS, and growth per site since the start\n")
        print("| run | sites | RSS MiB | bytes per site |")
        print("| --- | ---: | ---: | ---: |")
        for patched in modes:
            ok &= run_child("lockwatch" if patched else "plain", ["sites", str(options.sites), "1" if patched else "0"],
                            step, timeout=options.budget + 120)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
