"""Do no harm: CPython's threading-heavy test suites, run plain and under lockwatch.patch(), compared test by test.

Each suite runs in its own subprocess through ``test.libregrtest`` twice: once
with plain python, once under ``lockwatch.patch(dump_dir=<fresh temp dir>)``.
Per-test results come from regrtest's JUnit XML (or, when a run was killed,
from its verbose output). Printed per suite: the tests that pass without
lockwatch and fail with it (regressions), the dumps lockwatch wrote (kind and
summary), lockwatch's own messages on stderr, and the wall-time ratio.

    python bench/stdlib_under_patch.py                       # every suite, one at a time
    python bench/stdlib_under_patch.py --suite test_logging --suite test_queue --jobs 2

Exit status 1 when a test regressed, a run hung, or a deadlock dump was
written; 0 otherwise. The known differences listed in the README (class
identity in test_threading) are shown but not counted.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

SUITES = (
    "test_logging",
    "test_threading",
    "test_queue",
    "test_thread",
    "test_threading_local",
    "test_threadsignals",
    "test_sched",
    "test_socketserver",
)

# regrtest resources each suite needs (test_socketserver only talks to localhost).
RESOURCES = {"test_socketserver": ["-u", "network"]}

# Tests that compare threading.Lock/RLock with the C classes by identity: they
# cannot pass while threading.Lock is lockwatch's class (README: known differences).
ACCEPTED = frozenset({
    "test.test_threading.MiscTestCase.test__all__",
    "test.test_threading.ThreadTests.test_disallow_instantiation",
})

# Started as ``python -c BOOT DUMP_DIR REGRTEST_ARGS...``; an empty DUMP_DIR means plain python
# (lockwatch is not even imported then).
BOOT = """\
import sys
dump_dir = sys.argv[1]
if dump_dir:
    import lockwatch
    lockwatch.patch(dump_dir=dump_dir)
from test.libregrtest.main import main
sys.argv = ["regrtest"] + sys.argv[2:]
main()
"""

PASSED = "pass"
# A verbose-mode result line: "test_x (test.test_mod.Class.test_x) ... ok" (the result may come later).
_STARTED = re.compile(r"^(\w+) \(([\w.]+)\)", re.M)
_RESULT = re.compile(r"^(\w+) \(([\w.]+)\)[^\n]*? \.\.\. (.*?)$", re.M)


@dataclass
class Run:
    """One suite run: per-test outcomes, wall time, and what lockwatch left behind."""

    suite: str
    patched: bool
    seconds: float = 0.0
    returncode: int | None = None
    timed_out: bool = False
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> pass/fail/error/skip/hung
    dumps: list[tuple[str, str]] = field(default_factory=list)  # (kind, summary)
    messages: list[str] = field(default_factory=list)  # distinct "lockwatch: ..." lines on stderr/stdout
    tail: str = ""  # end of the output, shown when the run did not finish


def run_suite(suite: str, patched: bool, timeout: float, test_timeout: float) -> Run:
    """Run one suite in a fresh subprocess (fresh cwd, fresh dump dir) and collect its results."""
    work = tempfile.mkdtemp(prefix=f"lw-stdlib-{suite}-")
    dump_dir = os.path.join(work, "dumps") if patched else ""
    junit = os.path.join(work, "junit.xml")
    args = ["-v", "--junit-xml", junit, "--timeout", str(test_timeout), *RESOURCES.get(suite, []), suite]
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("LOCKWATCH"):
            del env[name]  # the configuration under test is patch(dump_dir=...) and nothing else
    run = Run(suite, patched)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", BOOT, dump_dir, *args],
            cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            errors="replace", timeout=timeout,
        )
        output, run.returncode = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        run.timed_out = True
        output = _text(exc.stdout) + _text(exc.stderr)
    run.seconds = time.monotonic() - started
    run.outcomes = _parse_junit(junit) if os.path.exists(junit) else _parse_verbose(output)
    run.messages = sorted({line.strip() for line in output.splitlines() if line.startswith("lockwatch:")})
    if dump_dir:
        run.dumps = _read_dumps(dump_dir)
    if run.timed_out or "Timeout (" in output or not os.path.exists(junit):
        run.tail = "\n".join(output.rstrip().splitlines()[-25:])
    shutil.rmtree(work, ignore_errors=True)
    return run


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def _parse_junit(path: str) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return outcomes
    for case in root.iter("testcase"):
        name = case.get("name", "?")
        tags = {child.tag for child in case}
        if "error" in tags:
            outcomes[name] = "error"
        elif "failure" in tags:
            outcomes[name] = "fail"
        elif "skipped" in tags or case.get("status") == "skipped":
            outcomes[name] = "skip"
        else:
            outcomes[name] = PASSED
    return outcomes


def _parse_verbose(output: str) -> dict[str, str]:
    """Outcomes from ``-v`` output of a run that was killed: the test left without a result hung."""
    outcomes: dict[str, str] = {}
    last_started = None
    for match in _STARTED.finditer(output):
        last_started = match.group(2)
        outcomes.setdefault(last_started, "no result")
    for match in _RESULT.finditer(output):
        word = match.group(3).strip()
        if word == "ok" or word.startswith("expected failure"):
            outcome = PASSED
        elif word.startswith("skipped"):
            outcome = "skip"
        elif word.startswith("ERROR"):
            outcome = "error"
        elif word.startswith("FAIL") or word.startswith("unexpected success"):
            outcome = "fail"
        else:
            continue  # the test printed something; its result comes on a later line
        outcomes[match.group(2)] = outcome
    if last_started is not None and outcomes[last_started] == "no result":
        outcomes[last_started] = "hung"  # the run ended (timeout, crash) inside this test
    return outcomes


def _read_dumps(dump_dir: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted(glob.glob(os.path.join(dump_dir, "*.json"))):
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            summary = " ".join(str(data.get("summary") or "").split())
            found.append((str(data.get("kind")), summary[:300]))
        except (OSError, ValueError) as exc:
            found.append(("unreadable", f"{os.path.basename(path)}: {exc}"))
    return found


@dataclass
class Comparison:
    suite: str
    plain: Run
    patched: Run

    @property
    def regressions(self) -> list[tuple[str, str]]:
        """Tests that pass without lockwatch and do not with it: (test id, outcome under patch)."""
        found = []
        for name, outcome in sorted(self.plain.outcomes.items()):
            if outcome != PASSED or name in ACCEPTED:
                continue
            under = self.patched.outcomes.get(name, "not run")
            if under != PASSED:
                found.append((name, under))
        return found

    @property
    def accepted(self) -> list[str]:
        return sorted(n for n in ACCEPTED if n in self.plain.outcomes and self.patched.outcomes.get(n) != PASSED)

    @property
    def deadlock_dumps(self) -> int:
        return sum(1 for kind, _ in self.patched.dumps if kind == "deadlock")

    @property
    def failed(self) -> bool:
        return bool(self.regressions) or self.deadlock_dumps > 0 or self.patched.timed_out

    @property
    def ratio(self) -> float:
        return self.patched.seconds / self.plain.seconds if self.plain.seconds else float("nan")


def compare(suite: str, timeout: float, test_timeout: float) -> Comparison:
    plain = run_suite(suite, False, timeout, test_timeout)
    patched = run_suite(suite, True, timeout, test_timeout)
    return Comparison(suite, plain, patched)


def _status(run: Run) -> str:
    if run.timed_out:
        return "KILLED"
    counts: dict[str, int] = {}
    for outcome in run.outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return f"{counts.get(PASSED, 0)}/{len(run.outcomes)} pass"


def print_comparison(c: Comparison) -> None:
    print(f"\n== {c.suite}: plain {c.plain.seconds:.1f} s ({_status(c.plain)}), "
          f"patched {c.patched.seconds:.1f} s ({_status(c.patched)}), ratio {c.ratio:.2f}x")
    regressions = c.regressions
    if regressions:
        print(f"  REGRESSIONS ({len(regressions)}): pass without lockwatch, not with it")
        for name, outcome in regressions:
            if outcome != "not run":
                print(f"    {outcome:9} {name}")
        not_run = [name for name, outcome in regressions if outcome == "not run"]
        if not_run:
            print(f"    not run   {len(not_run)} more tests (the patched run ended before them), "
                  f"from {not_run[0]} to {not_run[-1]}")
    else:
        print("  no regressions")
    for name in c.accepted:
        print(f"  known difference (not counted): {name} -> {c.patched.outcomes.get(name)}")
    if c.patched.dumps:
        print(f"  lockwatch dumps ({len(c.patched.dumps)}):")
        for kind, summary in c.patched.dumps:
            print(f"    {kind:10} {summary}")
    else:
        print("  lockwatch dumps: none")
    if c.patched.messages:
        print("  lockwatch messages:")
        for line in c.patched.messages[:20]:
            print(f"    {line[:300]}")
    for run in (c.plain, c.patched):
        if run.tail:
            label = "patched" if run.patched else "plain"
            print(f"  {label} run did not finish normally (rc={run.returncode}, killed={run.timed_out}); output ends:")
            print("    " + run.tail.replace("\n", "\n    "))


def print_table(comparisons: list[Comparison]) -> None:
    print("\n| suite | tests | plain s | patched s | ratio | regressions | deadlock dumps | lock-order dumps |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    total_plain = total_patched = 0.0
    for c in comparisons:
        order = sum(1 for kind, _ in c.patched.dumps if kind == "lock-order")
        killed = " (killed)" if c.patched.timed_out else ""
        print(f"| {c.suite} | {len(c.plain.outcomes)} | {c.plain.seconds:.1f} | {c.patched.seconds:.1f}{killed} | "
              f"{c.ratio:.2f}x | {len(c.regressions)} | {c.deadlock_dumps} | {order} |")
        total_plain += c.plain.seconds
        total_patched += c.patched.seconds
    if total_plain:
        print(f"| all | | {total_plain:.1f} | {total_patched:.1f} | {total_patched / total_plain:.2f}x | | | |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", choices=SUITES, help="a suite to run (repeatable; default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="suites compared at once (default 1: fairest wall times)")
    parser.add_argument("--timeout", type=float, default=420.0, help="seconds each suite run may take before it is killed")
    parser.add_argument("--test-timeout", type=float, default=120.0, help="regrtest's per-test timeout (seconds)")
    options = parser.parse_args(argv)
    if options.jobs < 1:
        parser.error("--jobs must be at least 1")
    suites = options.suite or list(SUITES)
    print(f"Python {sys.version.split()[0]}, {len(suites)} suite(s), {options.jobs} at a time", flush=True)
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        futures = [pool.submit(compare, s, options.timeout, options.test_timeout) for s in suites]
        comparisons = []
        for future in futures:
            comparison = future.result()
            print_comparison(comparison)
            sys.stdout.flush()
            comparisons.append(comparison)
    print_table(comparisons)
    bad = [c.suite for c in comparisons if c.failed]
    print(f"\nRESULT: {'FAIL (' + ', '.join(bad) + ')' if bad else 'OK: no regression, no deadlock dump'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
