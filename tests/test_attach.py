"""`lockwatch dump PID` on processes started with plain python (no lockwatch): attach with gdb, name the cycle.

Every target is a real deadlocked program started with ``python`` alone. The
deadlock is forced with Barriers; a watcher thread in the target prints
"ready" once every thread sits in its blocking line, in a system call, for a
few looks in a row. Each test then checks the dump names the cycle's threads
and locks, and that the target is still alive, not stopped, and blocked in
the same places (a second attach sees the same cycle).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lockwatch import _attach, _inject_snapshot
from lockwatch._errors import AttachError
from lockwatch._model import Report

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="attaching needs Linux (ptrace, /proc)")

# The watcher every target runs: "ready" once each (thread, marker line) pair is blocked there.
PRELUDE = '''
import sys, threading, time

def _line(marker):
    with open(__file__) as source:
        for number, text in enumerate(source, 1):
            if text.rstrip().endswith("# " + marker):
                return number
    raise SystemExit("no marker " + marker)

def _blocked(thread, line):
    frame = sys._current_frames().get(thread.ident)
    if frame is None or frame.f_lineno != line:
        return False
    try:
        with open(f"/proc/self/task/{thread.native_id}/syscall") as status:
            return status.read().split()[0] != "running"
    except OSError:
        return True

def announce(pairs):
    """Print "ready" once every (thread, marker) pair is blocked at its marker line, 3 looks in a row."""
    pairs = [(thread, _line(marker)) for thread, marker in pairs]
    def watch():
        steady, deadline = 0, time.monotonic() + 30
        while steady < 3 and time.monotonic() < deadline:
            steady = steady + 1 if all(_blocked(t, line) for t, line in pairs) else 0
            time.sleep(0.01)
        print("ready" if steady >= 3 else "not ready", flush=True)
    threading.Thread(target=watch, name="watcher", daemon=True).start()
'''

ABBA = '''
a = threading.Lock()
b = threading.Lock()
barrier = threading.Barrier(2)

def left():
    with a:
        barrier.wait()
        with b:  # left-blocks
            pass

def right():
    with b:
        barrier.wait()
        with a:  # right-blocks
            pass

t1 = threading.Thread(target=left, name="left")
t2 = threading.Thread(target=right, name="right")
t1.start(); t2.start()
announce([(t1, "left-blocks"), (t2, "right-blocks")])
t1.join()
'''

THREE = '''
locks = {"disk": threading.Lock(), "net": threading.Lock(), "cache": threading.Lock()}
barrier = threading.Barrier(3)

def worker(mine, theirs):
    with locks[mine]:
        barrier.wait()
        locks[theirs].acquire()  # blocks

threads = [
    threading.Thread(target=worker, args=("disk", "net"), name="t-disk"),
    threading.Thread(target=worker, args=("net", "cache"), name="t-net"),
    threading.Thread(target=worker, args=("cache", "disk"), name="t-cache"),
]
for t in threads:
    t.start()
announce([(t, "blocks") for t in threads])
for t in threads:
    t.join()
'''

RLOCKS = '''
class Registry:
    def __init__(self):
        self.rlock = threading.RLock()

first, second = Registry(), Registry()
barrier = threading.Barrier(2)

def nested(mine, theirs):
    with mine.rlock:
        with mine.rlock:  # reentrant: held twice
            barrier.wait()
            with theirs.rlock:  # blocks
                pass

t1 = threading.Thread(target=nested, args=(first, second), name="reg-1")
t2 = threading.Thread(target=nested, args=(second, first), name="reg-2")
t1.start(); t2.start()
announce([(t1, "blocks"), (t2, "blocks")])
t1.join()
'''

MAIN = '''
config = threading.Lock()
state = threading.Lock()
barrier = threading.Barrier(2)

def reloader():
    with state:
        barrier.wait()
        with config:  # reloader-blocks
            pass

worker = threading.Thread(target=reloader, name="reloader", daemon=True)
worker.start()
announce([(worker, "reloader-blocks"), (threading.main_thread(), "main-blocks")])
with config:
    barrier.wait()
    with state:  # main-blocks
        pass
'''

BANK = '''
class Account:
    def __init__(self, name, balance):
        self.name = name
        self.balance = balance
        self.lock = threading.Lock()

def transfer(src, dst, amount, barrier):
    with src.lock:
        barrier.wait()  # both transfers hold their source account now
        with dst.lock:  # blocks
            src.balance -= amount
            dst.balance += amount

alice, bob = Account("alice", 100), Account("bob", 50)
barrier = threading.Barrier(2)
t1 = threading.Thread(target=transfer, args=(alice, bob, 10, barrier), name="pay-bob")
t2 = threading.Thread(target=transfer, args=(bob, alice, 5, barrier), name="pay-alice")
t1.start(); t2.start()
announce([(t1, "blocks"), (t2, "blocks")])
t1.join()
'''


def _pythons() -> list[tuple[str, str]]:
    """(label, interpreter) for the running Python and the pyenv ones of other supported versions."""
    found = [(f"{sys.version_info[0]}.{sys.version_info[1]}", sys.executable)]
    for minor in (10, 11, 12, 13):
        if minor == sys.version_info[1]:
            continue
        for path in sorted(glob.glob(f"/root/.pyenv/versions/3.{minor}.*/bin/python3.{minor}")):
            found.append((f"3.{minor}", path))
            break
        else:
            found.append((f"3.{minor}", ""))
    return found


@pytest.fixture(scope="session")
def ptrace_allowed() -> None:
    """Skip (saying why) where gdb is missing or ptrace is not allowed: attach once to a child of ours."""
    if shutil.which(os.environ.get("LOCKWATCH_GDB") or "gdb") is None:
        pytest.skip("gdb is not installed: attach mode cannot be tested here")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        result = subprocess.run(["gdb", "-nx", "-q", "-batch", "-p", str(child.pid), "-ex", "detach"],
                                capture_output=True, text=True, timeout=60, check=False)
    finally:
        child.kill()
        child.wait()
    if "Operation not permitted" in result.stderr or "ptrace" in result.stderr and "denied" in result.stderr:
        pytest.skip(f"ptrace is not allowed here (yama ptrace_scope={_attach.ptrace_scope()}, or a container "
                    f"without CAP_SYS_PTRACE): {result.stderr.strip().splitlines()[-1]}")


Spawn = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def spawn(tmp_path: Path, ptrace_allowed: None) -> Iterator[Spawn]:
    """Start a deadlocking program with plain python, wait for its "ready"; kill it at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(body: str, python: str = "", name: str = "app.py", wait: bool = True) -> subprocess.Popen[str]:
        # LOCKWATCH_TEST_TARGET_PYTHON runs every target under another interpreter (a version matrix by hand).
        python = python or os.environ.get("LOCKWATCH_TEST_TARGET_PYTHON") or sys.executable
        script = tmp_path / name
        script.write_text(PRELUDE + textwrap.dedent(body), encoding="utf-8")
        process = subprocess.Popen([python, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, cwd=tmp_path)
        started.append(process)
        if wait:
            _wait_ready(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=30)


def _wait_ready(process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            pytest.fail(f"the target printed nothing within {timeout} s")
    line = process.stdout.readline().strip()
    assert line == "ready", f"target said {line!r}; stderr: {process.stderr.read() if process.poll() is not None else ''}"


def _dump(pid: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lockwatch", "dump", str(pid), *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("State:"):
                return line.split()[1]
    return "?"


def _cycle_names(report: Report) -> tuple[set[str], set[str]]:
    """The names of the threads and the titles of the locks of the report's (single) cycle."""
    assert len(report.cycles) == 1, report.summary
    threads = {report.thread(step.thread).name for step in report.cycles[0]}  # type: ignore[union-attr]
    locks = {report.lock(step.lock).title for step in report.cycles[0]}  # type: ignore[union-attr]
    return threads, locks


def _cycle_key(report: Report) -> set[tuple[int, str]]:
    """The cycle as (thread id, lock title) pairs: comparable between two attaches (lock ids may differ)."""
    return {(step.thread, report.lock(step.lock).title) for c in report.cycles for step in c}  # type: ignore[union-attr]


def _check_untouched(process: subprocess.Popen[str], first: Report) -> None:
    """Alive, not stopped, and blocked in the same places: a second attach sees the same cycle."""
    assert process.poll() is None, "the target ended"
    assert _state(process.pid) not in ("t", "T"), f"the target was left stopped ({_state(process.pid)})"
    second = _attach.snapshot(process.pid, timeout=30)
    assert _cycle_key(second) == _cycle_key(first)
    assert {t.id: t.stack[-1].line for t in second.threads if t.role == "cycle"} == \
        {t.id: t.stack[-1].line for t in first.threads if t.role == "cycle"}
    assert process.poll() is None and _state(process.pid) not in ("t", "T")


def _dump_and_load(pid: int, tmp_path: Path, *extra: str) -> tuple[Report, str]:
    from lockwatch._dump import load_dump

    result = _dump(pid, "--dump-dir", str(tmp_path / "dumps"), "--show", *extra)
    assert result.returncode == 0, result.stderr
    path = result.stdout.splitlines()[0]
    assert path.startswith(str(tmp_path / "dumps")) and path.endswith(".json")
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    assert data["kind"] == "snapshot" and data["source"] == "attach" and data["cycles"]
    from test_dump import SCHEMA, _validate  # the dump format's JSON Schema, and its small validator

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    _validate(data, schema, schema)
    # The picture beside it marks what was inferred, like the text.
    dot = Path(path[: -len(".json")] + ".dot").read_text(encoding="utf-8")
    if any(thread["inferred"] for thread in data["threads"]):
        assert 'label="held by (inferred)"' in dot
    return load_dump(path), result.stdout


# --- the five deadlocks -----------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("version, python", _pythons(), ids=[label for label, _ in _pythons()])
def test_abba_named_on_every_supported_python(spawn: Spawn, tmp_path: Path, version: str, python: str) -> None:
    if not python:
        pytest.skip(f"no Python {version} installed under /root/.pyenv")
    process = spawn(ABBA, python=python)
    report, text = _dump_and_load(process.pid, tmp_path)
    assert report.python.startswith(version)
    threads, locks = _cycle_names(report)
    assert threads == {"left", "right"}
    assert locks == {"__main__.a", "__main__.b"}
    left = next(t for t in report.threads if t.name == "left")
    assert left.stack[-1].code == "with b:  # left-blocks"
    # A plain Lock records no owner: the holding is inferred, and says how.
    assert [report.lock(lock_id).title for lock_id in left.holding] == ["__main__.a"]  # type: ignore[union-attr]
    assert "`with a:` still active at app.py:" in left.inferred[left.holding[0]]
    assert report.lock(left.holding[0]).inferred  # type: ignore[union-attr]
    assert 'holds lock "__main__.a" (inferred: `with a:` still active at app.py:' in text
    assert "Cycle:" in text and 'thread "left"' in text
    _check_untouched(process, report)


@pytest.mark.timeout(120)
def test_three_thread_cycle(spawn: Spawn, tmp_path: Path) -> None:
    process = spawn(THREE)
    report, _text = _dump_and_load(process.pid, tmp_path)
    threads, locks = _cycle_names(report)
    assert threads == {"t-disk", "t-net", "t-cache"}
    assert locks == {"__main__.locks['disk']", "__main__.locks['net']", "__main__.locks['cache']"}
    disk = next(t for t in report.threads if t.name == "t-disk")
    assert report.lock(disk.waiting_for).title == "__main__.locks['net']"  # type: ignore[arg-type, union-attr]
    _check_untouched(process, report)


@pytest.mark.timeout(120)
def test_rlock_owners_are_exact(spawn: Spawn, tmp_path: Path) -> None:
    process = spawn(RLOCKS)
    report, text = _dump_and_load(process.pid, tmp_path)
    threads, locks = _cycle_names(report)
    assert threads == {"reg-1", "reg-2"}
    assert locks == {"Registry.rlock (L1)", "Registry.rlock (L2)"}
    for lock in report.locks:
        assert lock.kind == "RLock" and lock.count == 2 and not lock.inferred
        assert report.thread(lock.owner).name in ("reg-1", "reg-2")  # type: ignore[arg-type, union-attr]
    for thread in report.threads:
        assert not thread.inferred  # nothing about RLocks is guessed
    assert "(2 times)" in text and "inferred:" not in text.split("Cycle:")[1]
    _check_untouched(process, report)


@pytest.mark.timeout(120)
def test_cycle_through_the_main_thread(spawn: Spawn, tmp_path: Path) -> None:
    process = spawn(MAIN)
    report, _text = _dump_and_load(process.pid, tmp_path)
    threads, locks = _cycle_names(report)
    assert threads == {"MainThread", "reloader"}
    assert locks == {"__main__.config", "__main__.state"}
    main = next(t for t in report.threads if t.name == "MainThread")
    assert main.stack[-1].function == "<module>" and main.stack[-1].code == "with state:  # main-blocks"
    _check_untouched(process, report)


@pytest.mark.timeout(120)
def test_bank_transfer_inversion(spawn: Spawn, tmp_path: Path) -> None:
    process = spawn(BANK)
    report, text = _dump_and_load(process.pid, tmp_path)
    threads, locks = _cycle_names(report)
    assert threads == {"pay-bob", "pay-alice"}
    assert locks == {"Account.lock (L1)", "Account.lock (L2)"}
    pay_bob = next(t for t in report.threads if t.name == "pay-bob")
    assert "`with src.lock:` still active at app.py:" in pay_bob.inferred[pay_bob.holding[0]]
    assert pay_bob.stack[-1].function == "transfer"
    assert "Deadlock: thread" in text
    _check_untouched(process, report)


# --- modes and errors ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_no_attach_refuses_a_process_without_lockwatch(spawn: Spawn) -> None:
    process = spawn(ABBA)
    result = _dump(process.pid, "--no-attach")
    assert result.returncode == 5
    assert result.stderr.count("\n") == 1 and "is not running under lockwatch" in result.stderr
    assert "drop --no-attach" in result.stderr


@pytest.mark.timeout(60)
def test_not_a_python_process(ptrace_allowed: None) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        result = _dump(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert result.returncode == 5
    assert result.stderr.strip() == f"lockwatch: error: process {sleeper.pid} (sleep) is not a Python process " \
                                    f"(no Python interpreter in it)"


@pytest.mark.timeout(60)
def test_unsupported_python_version(spawn: Spawn) -> None:
    old = sorted(glob.glob("/root/.pyenv/versions/3.9.*/bin/python3.9"))
    if not old:
        pytest.skip("no Python 3.9 under /root/.pyenv to try an unsupported version")
    process = spawn("import time\nprint('ready', flush=True)\ntime.sleep(60)\n", python=old[0])
    result = _dump(process.pid)
    assert result.returncode == 5
    assert f"process {process.pid} runs Python 3.9; `lockwatch dump` attaches to Python 3.10 to 3.13 only" \
        in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.timeout(60)
def test_gdb_missing(spawn: Spawn, monkeypatch: pytest.MonkeyPatch) -> None:
    process = spawn(ABBA)
    monkeypatch.setenv("LOCKWATCH_GDB", "/nonexistent/gdb")
    result = _dump(process.pid)
    assert result.returncode == 5
    assert "gdb is not installed (/nonexistent/gdb not found): install it" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.timeout(60)
def test_process_of_another_user(ptrace_allowed: None, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to start a process as another user")
    system_python = "/usr/bin/python3"
    if not os.access(system_python, os.X_OK):
        pytest.skip("needs a system python that user nobody can run")
    target = subprocess.Popen(["sleep", "60"])  # root's
    try:
        # lockwatch's checks run as user nobody (65534); the package is read from this checkout.
        checkout = str(Path(_attach.__file__).parent.parent)
        code = (f"import sys; sys.path.insert(0, {checkout!r})\n"
                "from lockwatch import _attach\n"
                f"try:\n    _attach.check_target({target.pid})\nexcept Exception as exc:\n    print(exc)\n")
        result = subprocess.run([system_python, "-c", code], user=65534, capture_output=True, text=True,
                                timeout=30, check=False, cwd="/")
    finally:
        target.kill()
        target.wait()
    if result.returncode != 0:
        pytest.skip(f"cannot run lockwatch as user nobody here: {result.stderr.strip().splitlines()[-1:]}")
    assert result.stdout.strip() == f"process {target.pid} belongs to root: run `lockwatch dump` as that user " \
                                    f"(or as root)"


def test_ptrace_refusals_say_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = _attach.Target(pid=4242, exe="/usr/bin/python3.11", argv=("app.py",), version=(3, 11))
    run = _attach.GdbRun(status={}, stderr="ptrace: Operation not permitted.\n", workdir=str(tmp_path))
    for scope, expected in ((1, "kernel.yama.ptrace_scope = 1): run `lockwatch dump` as root"),
                            (3, "ptrace is disabled on this machine (kernel.yama.ptrace_scope = 3"),
                            (None, "in a container, give it CAP_SYS_PTRACE (docker run --cap-add=SYS_PTRACE")):
        monkeypatch.setattr(_attach, "ptrace_scope", lambda scope=scope: scope)
        with pytest.raises(AttachError) as caught:
            _attach._report_from_run(target, run)
        assert str(caught.value).startswith("cannot attach to process 4242: ")
        assert expected in str(caught.value)
        assert "\n" not in str(caught.value)


@pytest.mark.timeout(90)
def test_gil_held_by_c_code_falls_back_to_stacks(spawn: Spawn, tmp_path: Path) -> None:
    # A thread calls C sleep() holding the GIL (ctypes.PyDLL keeps it): nothing can run Python code.
    process = spawn('''
        import ctypes
        libc = ctypes.PyDLL(None)
        def stuck_in_c():
            libc.sleep(3600)
        print("ready", flush=True)
        threading.Thread(target=stuck_in_c, name="c-sleeper", daemon=True).start()
        threading.Event().wait()
    ''')
    _wait_for_syscall(process.pid, {"35", "230"})  # nanosleep / clock_nanosleep (x86-64)
    started = time.monotonic()
    result = _dump(process.pid, "--dump-dir", str(tmp_path / "dumps"), "--timeout", "5")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "lockwatch: Stacks only: thread LWP" in result.stderr and "holds the GIL while blocked in C code" in result.stderr
    with open(result.stdout.splitlines()[0], encoding="utf-8") as handle:
        data = json.load(handle)
    assert data["source"] == "attach-stacks" and data["locks"] == [] and data["cycles"] == []
    assert any(thread["stack"] for thread in data["threads"])
    assert elapsed < 20
    assert process.poll() is None and _state(process.pid) not in ("t", "T")


def _wait_for_cpu(pid: int, seconds: float, timeout: float = 30.0) -> None:
    """Wait until one thread of the process has used ``seconds`` of CPU time (it is in its busy loop)."""
    tick = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/stat", encoding="utf-8") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if (int(fields[11]) + int(fields[12])) / tick >= seconds:  # utime + stime
                return
        time.sleep(0.02)
    pytest.fail("no thread of the target got busy")


def _wait_for_syscall(pid: int, numbers: set[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/syscall", encoding="utf-8") as handle:
                    if handle.read().split()[0] in numbers:
                        return
            except (OSError, IndexError):
                continue
        time.sleep(0.02)
    pytest.fail("the target's thread never entered the expected system call")


# --- the routine in-process ------------------------------------------------------------------------


def test_routine_reads_locks_without_running_user_code(tmp_path: Path) -> None:
    import threading

    calls: list[str] = []

    class Sneaky:
        def __init__(self) -> None:
            self.real = threading.Lock()

        @property
        def lock(self) -> Any:  # must never be called by the routine
            calls.append("property")
            return self.real

        def __getattr__(self, name: str) -> Any:
            calls.append("getattr " + name)
            raise AttributeError(name)

    sneaky = Sneaky()
    plain = threading.RLock()
    ready, done = threading.Event(), threading.Event()

    def holder() -> None:
        with plain:
            with sneaky.lock:
                ready.set()
                done.wait(30)

    worker = threading.Thread(target=holder, name="holder")
    worker.start()
    try:
        assert ready.wait(30)
        calls.clear()
        data = json.loads(_inject_snapshot.to_json(_inject_snapshot.collect()))
    finally:
        done.set()
        worker.join(30)
    assert calls == []
    entry = next(t for t in data["threads"] if t["id"] == worker.ident)  # other tests may leave a "holder"
    frame = next(f for f in entry["stack"] if f["function"] == "holder")
    by_expr = {item["expr"]: item for item in frame["locks"]}
    assert "property" in by_expr["sneaky.lock"]["why"]
    rlock = data["objects"][str(by_expr["plain"]["object"])]
    assert rlock == {"kind": "RLock", "impl": "_thread.RLock", "locked": True, "owner": entry["id"], "count": 1,
                     "exact": True, "type": "RLock"}


@pytest.mark.timeout(120)
def test_gil_kept_by_running_c_code_leaves_gdb_to_finish_and_the_process_runs_on(spawn: Spawn, tmp_path: Path) -> None:
    # sum() over a range is one C loop that never lets the GIL go: the injected call waits for it.
    # lockwatch must not abandon that call; gdb finishes it in the background and detaches.
    process = spawn('''
        import itertools
        # A thread blocked in a lock wait: where lockwatch may run its routine (never in a GIL wait).
        gate = threading.Lock()
        gate.acquire()
        def waiter():
            with gate:  # waiter-blocks
                pass
        blocked = threading.Thread(target=waiter, name="waiter")
        blocked.start()
        while not _blocked(blocked, _line("waiter-blocks")):
            time.sleep(0.01)
        started = time.thread_time()  # CPU time: a busy machine does not shorten the loop below
        sum(itertools.repeat(1, 2_000_000))
        size = int(2_000_000 * 4.0 / max(time.thread_time() - started, 1e-6))  # about 4 s of CPU in C
        def spin():
            print("ready", flush=True)
            sum(itertools.repeat(1, size))  # small ints only: the fast C loop all the way
            print("spin done", flush=True)
        spinner = threading.Thread(target=spin, name="spinner")
        spinner.start()
        spinner.join()
        print("main done", flush=True)
        gate.release()
    ''')
    _wait_for_cpu(process.pid, 0.3)  # the spinner is inside sum(), holding the GIL
    result = _dump(process.pid, "--dump-dir", str(tmp_path / "dumps"), "--timeout", "0.5")
    assert result.returncode == 0, result.stderr
    assert "stays attached in the background" in result.stderr, result.stderr
    gdb_pid = int(result.stderr.split("gdb (pid ")[1].split(")")[0])
    # Meanwhile the process runs: no thread is in a tracing stop.
    if process.poll() is None:
        states = set()
        for task in os.listdir(f"/proc/{process.pid}/task"):
            try:
                with open(f"/proc/{process.pid}/task/{task}/status", encoding="utf-8") as handle:
                    states |= {line.split()[1] for line in handle if line.startswith("State:")}
            except OSError:
                continue
        assert not states & {"t", "T"}, states
    assert process.stdout is not None
    try:
        rest = process.communicate(timeout=90)[0]
    except subprocess.TimeoutExpired:
        spy = _attach._py_spy()
        stacks = subprocess.run([spy, "dump", "--pid", str(process.pid), "--nonblocking"], capture_output=True,
                                text=True, timeout=30, check=False).stdout if spy else "(no py-spy)"
        with open(f"/proc/{process.pid}/status", encoding="utf-8") as handle:
            tracer = [line.strip() for line in handle if line.startswith("TracerPid")]
        pytest.fail(f"the target did not finish: {tracer}, gdb alive: {os.path.exists(f'/proc/{gdb_pid}')}\n{stacks}")
    assert rest.splitlines() == ["spin done", "main done"] and process.returncode == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and os.path.exists(f"/proc/{gdb_pid}"):
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{gdb_pid}") or _state(gdb_pid) == "Z"
