"""Races and signals (issue 15, items 1-6): lockwatch stays correct when threads, GC, signals and idents interleave badly.

Each test is bounded in time. Races that could hang lockwatch itself run in a
subprocess (killed on timeout); the others run here under ``lockwatch.patch()``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from _thread import allocate_lock as raw_lock
from pathlib import Path
from typing import Any

import pytest
from _reports import Collector

import lockwatch

JOIN = 15.0


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}
    env["PYTHONFAULTHANDLER"] = "1"
    return env


def run_python(tmp_path: Path, source: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    program = tmp_path / "prog.py"
    program.write_text(textwrap.dedent(source))
    try:
        return subprocess.run([sys.executable, str(program), *args], cwd=tmp_path, env=clean_env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the program hung (killed after {timeout} s)\nstdout: {exc.stdout!r}\nstderr: {exc.stderr!r}")




def lockwatch_errors(stderr: str) -> list[str]:
    """lockwatch's own complaints (internal errors, checking switched off), not its findings."""
    return [line for line in stderr.splitlines()
            if line.startswith("lockwatch:") and ("fail" in line or "error" in line or " off" in line)]


# --- item 1: a finalizer that takes a lock, run by the GC inside lockwatch's registry lock ---------

FINALIZERS = """\
import _thread, faulthandler, gc, sys, threading, time
import lockwatch

faulthandler.dump_traceback_later(30, exit=True)      # a hang shows every stack, then ends (status 1)
DUMPS = sys.argv[1]
finalizer_lock = None
freed = [0]

class Resource:
    def __init__(self):
        self.cycle = self                   # only the cyclic GC frees it, in whatever thread allocates next
    def __del__(self):
        with finalizer_lock:                # a finalizer may take a lock briefly: a correct program
            freed[0] += 1

with lockwatch.patch(dump_dir=DUMPS, interval=0.01):
    finalizer_lock = threading.RLock()

# One piece of garbage per round, left pending: the thread that made it then blocks in C
# (a raw lock allocates nothing), so the next allocation anywhere -- often lockwatch's
# watchdog -- runs the finalizer.
go = _thread.allocate_lock()
go.acquire()
def make_garbage():
    while True:
        go.acquire()
        Resource()
threading.Thread(target=make_garbage, daemon=True).start()

rounds = int(sys.argv[2])
for round in range(rounds):
    # Which allocation triggers a collection depends on the threshold: vary it, so that
    # some round collects inside whatever lockwatch does while holding its own locks.
    gc.set_threshold(1 + round % 10)
    gc.collect()
    with lockwatch.patch(dump_dir=DUMPS, interval=0.01):   # a fresh watchdog each round
        lock = threading.Lock()
        lock.acquire()
        # A new thread (its first acquire registers it) that blocks: the watchdog has work.
        waiter = threading.Thread(target=lambda: (lock.acquire(), lock.release()))
        waiter.start()
        time.sleep(0.02)
        go.release()
        time.sleep(0.03)
        lock.release()
        waiter.join()
gc.set_threshold(700)
print("finished", rounds, freed[0], flush=True)
"""


@pytest.mark.timeout(90)
def test_gc_finalizer_taking_a_lock_never_hangs_lockwatch(tmp_path: Path) -> None:
    result = run_python(tmp_path, FINALIZERS, str(tmp_path / "dumps"), "40", timeout=60)
    assert result.returncode == 0 and "finished" in result.stdout, f"status {result.returncode}\n{result.stderr[-4000:]}"
    assert lockwatch_errors(result.stderr) == []


# --- item 2: a cross-thread release while the taker is in the order checker -----------------------

HANDOFFS = """\
import json, sys, threading, time, warnings
import lockwatch
from lockwatch import _events

reports = []
_events.subscribe(lambda report, paths: reports.append(report.kind))
lockwatch.patch(dump_dir=sys.argv[1], order="warn", interval=0.2)

token = threading.Lock()
taken = threading.Event()
released = threading.Event()
ROUNDS = int(sys.argv[2])

def taker():
    for _ in range(ROUNDS):
        token.acquire()
        taken.set()
        for _ in range(2):
            with threading.Lock():          # a new order under the token: the checker runs now...
                with threading.RLock():
                    pass
        assert released.wait(10)
        released.clear()

def releaser():
    for _ in range(ROUNDS):
        assert taken.wait(10)
        taken.clear()
        token.release()                     # ...while another thread releases the token
        released.set()

sys.setswitchinterval(1e-5)                 # thread switches everywhere, also inside the checker
threads = [threading.Thread(target=taker, name="taker"), threading.Thread(target=releaser, name="releaser")]
for t in threads:
    t.start()
for t in threads:
    t.join(60)
sys.setswitchinterval(0.005)
assert not any(t.is_alive() for t in threads)
before_inversion = list(reports)

# Then a real inversion, in two threads, one after the other: it must still be reported.
first, second = threading.Lock(), threading.Lock()
one_done = threading.Event()
def forward():
    with first:
        with second:
            pass
    one_done.set()
def backward():
    assert one_done.wait(10)
    with second:
        with first:
            pass
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pair = [threading.Thread(target=forward), threading.Thread(target=backward)]
    for t in pair:
        t.start()
    for t in pair:
        t.join(10)
deadline = time.monotonic() + 10            # reports are published by lockwatch's own thread
while "lock-order" not in reports and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({
    "before_inversion": before_inversion,
    "reports": reports,
    "warnings": sum(1 for w in caught if issubclass(w.category, lockwatch.LockOrderWarning)),
}), flush=True)
"""


@pytest.mark.timeout(120)
def test_cross_thread_releases_during_order_checks_never_switch_checking_off(tmp_path: Path) -> None:
    result = run_python(tmp_path, HANDOFFS, str(tmp_path / "dumps"), "600", timeout=90)
    assert result.returncode == 0, result.stderr[-4000:]
    assert lockwatch_errors(result.stderr) == []
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["before_inversion"] == [], f"hand-offs alone were reported: {seen}"
    assert "lock-order" in seen["reports"], f"the real inversion after the hand-offs was not reported: {seen}"


# --- item 3: Ctrl-C between the raw acquire and the owner store -------------------------------------

INTERRUPTED_LOOP = """\
import json, sys, threading
import lockwatch

lockwatch.patch(dump_dir=sys.argv[1])
lock = threading.Lock()
rlock = threading.RLock()

def verdict():
    report = lockwatch.snapshot()
    names = {t.id: t.name for t in report.threads}
    result = {}
    for label, each in (("Lock", lock), ("RLock", rlock)):
        info = next((i for i in report.locks if i.id == each.id), None)
        owner = None if info is None else info.owner
        result[label] = {"locked": each.locked(), "owner": owner, "owner_name": names.get(owner)}
    return result

count = 0
for shot in range(int(sys.argv[2])):
    print("ready", flush=True)
    try:
        while True:
            with lock:
                count += 1
            with rlock:
                count += 1
    except KeyboardInterrupt:
        pass
    result = verdict()
    print(json.dumps(result), flush=True)
    if any(seen["locked"] for seen in result.values()):
        break                               # a lock left locked: the loop above would hang
"""


@pytest.mark.timeout(120)
def test_ctrl_c_in_a_with_lock_loop_never_leaves_a_lock_locked_without_owner(tmp_path: Path) -> None:
    program = tmp_path / "loop.py"
    program.write_text(INTERRUPTED_LOOP)
    rng = random.Random(15)
    problems = []
    shots = 6
    for run in range(5):
        proc = subprocess.Popen([sys.executable, str(program), str(tmp_path / "dumps"), str(shots)], env=clean_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        try:
            for _shot in range(shots):
                line = proc.stdout.readline().strip()
                if line != "ready":
                    break                   # it stopped early: the verdict line says why
                time.sleep(rng.uniform(0.02, 0.2))  # the scenario is an interrupt at an arbitrary moment
                proc.send_signal(signal.SIGINT)
                line = proc.stdout.readline().strip()
                if not line:
                    break
                for kind, seen in json.loads(line).items():
                    if seen["locked"] and seen["owner_name"] is None:
                        problems.append(f"run {run}: the {kind} is locked and no thread owns it: {seen}")
            _out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
            problems.append(f"run {run}: did not end: {err[-2000:]}")
            continue
        if proc.returncode != 0:
            problems.append(f"run {run}: status {proc.returncode}: {err[-2000:]}")
    assert problems == []


SIGNAL_HANDLER_RLOCK = """\
import faulthandler, signal, sys, threading, time
import lockwatch

faulthandler.dump_traceback_later(25, exit=True)      # a hang shows every stack, then ends (status 1)
lockwatch.patch(dump_dir=sys.argv[1])
registry = threading.RLock()
handled = [0]

def on_alarm(signum, frame):
    with registry:                          # reentrant: safe even if the main thread holds it
        handled[0] += 1

signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.003, 0.003)
deadline = time.monotonic() + float(sys.argv[2])
rounds = 0
while time.monotonic() < deadline:
    with registry:
        rounds += 1
signal.setitimer(signal.ITIMER_REAL, 0, 0)
print("finished", rounds, handled[0], flush=True)
"""


@pytest.mark.timeout(60)
def test_signal_handler_taking_the_rlock_its_thread_is_acquiring_never_hangs(tmp_path: Path) -> None:
    # Item 3's window seen from a signal handler: with the C RLock a handler runs before or
    # after an acquire, never inside it; an instrumented acquire must give the same guarantee.
    result = run_python(tmp_path, SIGNAL_HANDLER_RLOCK, str(tmp_path / "dumps"), "4", timeout=45)
    assert result.returncode == 0 and "finished" in result.stdout, f"status {result.returncode}\n{result.stderr[-3000:]}"


# --- item 4: a token lock released by a ticker thread while workers acquire --------------------------


@pytest.mark.timeout(60)
def test_token_released_by_a_ticker_leaves_no_stale_holder_and_no_false_cycle(watch: Any, collect: Collector) -> None:
    watch(order="warn", on_deadlock="break", interval=0.1)
    token = threading.Lock()       # a rate limiter: workers take it, the ticker gives it back
    audit = threading.Lock()
    stop_ticking = threading.Event()
    errors: list[BaseException] = []

    def ticker() -> None:
        while not stop_ticking.is_set():
            if token.locked():
                try:
                    token.release()
                except RuntimeError:  # released meanwhile: fine for a rate limiter
                    pass

    def wait_for_token() -> None:
        token.acquire()                     # a rate limiter's wait(): returns holding the token

    def worker() -> None:
        try:
            for _ in range(400):
                with audit:                 # audit -> token (blocking): the only order with the token
                    wait_for_token()
                with audit:                 # and audit alone: nothing else is ever nested
                    pass
        except BaseException as exc:
            errors.append(exc)

    old_interval = sys.getswitchinterval()
    tick = threading.Thread(target=ticker, name="ticker")
    # The ticker gives back a token this thread took, before the workers start: from then on the
    # token is known as a signal-style lock (issue 10), whatever order the workers hit first.
    token.acquire()
    tick.start()
    deadline = time.monotonic() + JOIN
    while token.locked() and time.monotonic() < deadline:
        time.sleep(0.001)
    sys.setswitchinterval(1e-5)  # thread switches everywhere, also between an acquire and its bookkeeping
    try:
        workers = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(JOIN)
        assert not any(w.is_alive() for w in workers), "workers stuck"
    finally:
        stop_ticking.set()
        sys.setswitchinterval(old_interval)
        tick.join(JOIN)
    if token.locked():
        token.release()
    assert errors == []
    time.sleep(0.5)  # reports are published by lockwatch's thread: let any late one arrive
    report = lockwatch.snapshot()
    stale = [t.name for t in report.threads if token.id in t.holding]
    assert stale == [], f"finished workers still 'hold' the token in the snapshot: {stale}"
    owners = [info.owner for info in report.locks if info.id == token.id and info.owner is not None]
    assert owners == []
    assert collect.kinds() == [], [r.summary for r in collect.reports]


# --- item 5: a new thread that reuses a dead thread's ident -----------------------------------------


@pytest.mark.timeout(60)
def test_a_thread_reusing_a_dead_threads_ident_does_not_inherit_its_locks(watch: Any, collect: Collector) -> None:
    interval = 0.1
    watch(order="warn", on_deadlock="report", interval=interval)
    abandoned = threading.Lock()
    dead_ident: list[int] = []

    def leaves_it_locked() -> None:
        abandoned.acquire()                 # and ends without releasing it
        dead_ident.append(threading.get_ident())

    first = threading.Thread(target=leaves_it_locked, name="first-owner")
    first.start()
    first.join(JOIN)
    assert abandoned.locked()

    outcome: list[Any] = []
    newcomer_thread = None
    for attempt in range(300):
        ready, go = threading.Event(), threading.Event()

        def newcomer() -> None:
            with threading.Lock():           # touches lockwatch: it has a state of its own now
                pass
            ready.set()
            if not go.wait(JOIN):
                return
            try:
                # Waits for a lock a dead thread left locked: an orphaned lock, not a deadlock with itself.
                outcome.append(abandoned.acquire())
                abandoned.release()
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=newcomer, name=f"newcomer-{attempt}")
        thread.start()
        assert ready.wait(JOIN)
        if thread.ident == dead_ident[0]:
            newcomer_thread = thread
            go.set()
            break
        thread.join(JOIN)  # go never set: it ends, and its ident is free again
    if newcomer_thread is None:
        abandoned.release()
        pytest.skip("no new thread got the dead thread's ident in 300 tries")

    deadline = time.monotonic() + JOIN
    while not outcome and time.monotonic() < deadline:
        report = lockwatch.snapshot()
        mine = [t for t in report.threads if t.name == newcomer_thread.name]
        if mine and mine[0].waiting_for == abandoned.id:
            break
        time.sleep(0.01)
    time.sleep(5 * interval)  # the scenario is a long wait: several watchdog looks see it
    report = lockwatch.snapshot()
    mine = [t for t in report.threads if t.name == newcomer_thread.name]
    abandoned.release()  # the program's cure: someone else releases it (legal for a Lock)
    newcomer_thread.join(JOIN)
    assert outcome == [True], f"the newcomer's wait ended with {outcome!r}"
    assert mine and abandoned.id not in mine[0].holding, "the newcomer is listed as holding the dead thread's lock"
    # Reported as what it is: a wait for a lock whose owner (the ended first thread) no longer
    # exists, never as the newcomer deadlocking with itself.
    deadlocks = [r for r in collect.reports if r.kind == "deadlock"]
    assert deadlocks, [r.summary for r in collect.reports]
    for report in deadlocks:
        assert not report.cycles, report.summary
        assert [[step.thread for step in chain] for chain in report.chains] == [[newcomer_thread.ident]]
        lock = report.lock(abandoned.id)
        assert lock is not None and lock.owner != newcomer_thread.ident
        assert '"first-owner", which no longer exists' in report.summary


# --- item 6: break mode must not poll --------------------------------------------------------------

BLOCKED = 200
BLOCKED_SECONDS = 2.0


def _cpu_while_blocked(make_lock: Any, wait: Any) -> float:
    """Process CPU seconds spent while BLOCKED threads wait BLOCKED_SECONDS for one held lock."""
    lock = make_lock()
    lock.acquire()
    all_started = threading.Barrier(BLOCKED + 1)

    def blocked() -> None:
        all_started.wait(JOIN)
        wait(lock)

    threads = [threading.Thread(target=blocked, daemon=True) for _ in range(BLOCKED)]
    for t in threads:
        t.start()
    all_started.wait(JOIN)
    time.sleep(0.3)  # let every thread reach its wait
    before = time.process_time()
    time.sleep(BLOCKED_SECONDS)  # the scenario is a long wait
    spent = time.process_time() - before
    lock.release()
    for t in threads:
        t.join(JOIN)
    assert not any(t.is_alive() for t in threads)
    return spent


def _poll_every_50ms(lock: Any) -> None:
    # What polling costs: the reference the instrumented wait is compared with.
    while not lock.acquire(True, 0.05):
        pass
    lock.release()


def _plain_wait(lock: Any) -> None:
    lock.acquire()
    lock.release()


@pytest.mark.timeout(90)
def test_break_mode_blocked_threads_cost_no_cpu(watch: Any) -> None:
    polling = _cpu_while_blocked(raw_lock, _poll_every_50ms)
    watch(order="off", on_deadlock="break", interval=0.25)
    blocked = _cpu_while_blocked(threading.Lock, _plain_wait)
    assert polling > 0.02, f"the reference polling cost too little to compare with ({polling:.3f} s)"
    assert blocked < polling / 4, (
        f"{BLOCKED} threads blocked in break mode used {blocked:.3f} s CPU in {BLOCKED_SECONDS} s; "
        f"50 ms polling costs {polling:.3f} s"
    )
