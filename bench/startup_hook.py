"""What lockwatch.pth costs every Python start-up when LOCKWATCH is unset.

Run: python bench/startup_hook.py [--runs N]

Two measurements, LOCKWATCH unset in both:

1. in-process: the time site.py spends on lockwatch.pth (open, read, run its one
   line: an environment lookup), beside an empty .pth file as the floor;
2. whole interpreter: ``python -c pass`` started N times in a throwaway venv,
   alternately with and without lockwatch.pth in its site-packages (median and fastest);
   on a busy machine this one is dominated by noise, the first is the precise figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import site
import statistics
import subprocess
import sys
import tempfile
import time
import venv

PTH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lockwatch.pth")


def in_process(directory: str, name: str, runs: int) -> float:
    """Median seconds site.addpackage() spends on one .pth file."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        site.addpackage(directory, name, set())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interpreter_start(python: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="interpreter starts per side (default 200)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}
    os.environ.pop("LOCKWATCH", None)

    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy(PTH, os.path.join(scratch, "lockwatch.pth"))
        open(os.path.join(scratch, "empty.pth"), "w").close()
        hook = in_process(scratch, "lockwatch.pth", 5000)
        empty = in_process(scratch, "empty.pth", 5000)
        print(f"site.py on lockwatch.pth: {hook * 1e6:.1f} us (an empty .pth: {empty * 1e6:.1f} us)")

        venv.create(os.path.join(scratch, "venv"), with_pip=False)
        python = os.path.join(scratch, "venv", "bin", "python")
        site_packages = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        installed = os.path.join(site_packages, "lockwatch.pth")
        with_hook, without = [], []
        for _ in range(args.runs):  # alternate start by start: the machine's mood hits both sides alike
            shutil.copy(PTH, installed)
            with_hook.append(interpreter_start(python, env))
            os.remove(installed)
            without.append(interpreter_start(python, env))
        for label, pick in (("median", statistics.median), ("fastest", min)):
            a, b = pick(with_hook), pick(without)
            print(
                f"python -c pass, {label} of {args.runs}: {a * 1e3:.2f} ms with lockwatch.pth, "
                f"{b * 1e3:.2f} ms without (difference {(a - b) * 1e3:+.2f} ms)"
            )
        print(f"Python {sys.version.split()[0]}")

if __name__ == "__main__":
    main()
