"""The examples of waits beyond locks (joins, futures, pools, imports, orphans, all asleep) give their verdicts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_examples import EXAMPLES, ROOT, RUN_TIMEOUT, clean_environment, dumps, lockwatch_command, plain_command

from lockwatch._config import DEADLOCK_EXIT_STATUS

#: Every example this file checks (test_examples.py checks the others).
BEYOND = {
    "join_holding_lock.py", "join_after_release.py", "import_lock_cycle.py",
    "pool_nested_submit_deadlock.py", "pool_sized_for_nesting.py", "future_result_holding_lock.py",
    "orphaned_lock_thread_ended.py", "orphaned_lock_after_fork.py",
    "all_asleep_event.py", "all_asleep_signal_daemon.py", "idle_pool_and_socket_server.py",
}


@dataclass
class Run:
    """One example run to completion: its status, output, pid and dumps."""

    status: int
    stdout: str
    stderr: str
    pid: int
    dump_dir: Path

    def describe(self) -> str:
        files = sorted(p.name for p in self.dump_dir.glob("*")) if self.dump_dir.exists() else []
        return f"exit status {self.status}\ndumps: {files}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"

    def the_dump(self, *kinds: str) -> dict[str, Any]:
        found = [dump for kind in kinds for dump in dumps(self.dump_dir, kind)]
        assert len(found) == 1, self.describe()
        return found[0]


def start(command: list[str], cwd: Path) -> subprocess.Popen[str]:
    # A session of its own: a forked child that hangs goes with its parent when the group is killed.
    return subprocess.Popen(
        command, cwd=cwd, env=clean_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_example(example: str, tmp_path: Path) -> Run:
    """``lockwatch run --on-deadlock exit`` on the example; killed (and the test failed) past RUN_TIMEOUT."""
    dump_dir = tmp_path / "dumps"
    process = start(lockwatch_command(EXAMPLES / example, dump_dir), tmp_path)
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_group(process)
        stdout, stderr = process.communicate()
        pytest.fail(f"{example} did not finish within {RUN_TIMEOUT} s\nstdout:\n{stdout}\nstderr:\n{stderr}")
    finally:
        kill_group(process)  # a forked child left behind must not outlive the test
    return Run(process.returncode, stdout, stderr, process.pid, dump_dir)


# --- reading a dump -----------------------------------------------------------------------------------


def thread_by_name(dump: dict[str, Any], name: str) -> dict[str, Any]:
    (thread,) = [t for t in dump["threads"] if t["name"] == name]
    return thread


def thread_by_id(dump: dict[str, Any], ident: int) -> dict[str, Any]:
    (thread,) = [t for t in dump["threads"] if t["id"] == ident]
    return thread


def lock_by_id(dump: dict[str, Any], lock_id: str) -> dict[str, Any]:
    (lock,) = [entry for entry in dump["locks"] if entry["id"] == lock_id]
    return lock


def awaited_by_id(dump: dict[str, Any], awaited_id: str) -> dict[str, Any]:
    (entry,) = [entry for entry in dump.get("awaited", []) if entry["id"] == awaited_id]
    return entry


def label_of_lock(lock: dict[str, Any]) -> str:
    return str(lock.get("label") or lock.get("name") or "")


def blocking_line(thread: dict[str, Any]) -> str:
    """The code of the innermost frame of the thread's stack that is in examples/ (the example's own line)."""
    own = [frame for frame in thread["stack"] if Path(frame["file"]).resolve().is_relative_to(EXAMPLES)]
    assert own, f"no frame of examples/ in the stack of {thread['name']}: {thread['stack']}"
    return str(own[-1].get("code") or "")


def step_target(step: dict[str, Any]) -> str:
    """What a cycle or chain step waits for: its lock id or its awaited id (exactly one is set)."""
    lock, awaited = step.get("lock"), step.get("waits_for")
    assert (lock is None) != (awaited is None), f"a step names exactly one of lock, waits_for: {step}"
    return str(lock if lock is not None else awaited)


def the_cycle(dump: dict[str, Any]) -> list[dict[str, Any]]:
    assert dump["kind"] == "deadlock"
    assert len(dump["cycles"]) == 1, dump["cycles"]
    return list(dump["cycles"][0])


def step_of(cycle: list[dict[str, Any]], dump: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [step for step in cycle if thread_by_id(dump, step["thread"])["name"] == name]
    return step


def next_waiter(cycle: list[dict[str, Any]], step: dict[str, Any]) -> int:
    """The waiter of the step after ``step``: the owner of what ``step`` waits for."""
    return int(cycle[(cycle.index(step) + 1) % len(cycle)]["thread"])


def check_lock_step(dump: dict[str, Any], cycle: list[dict[str, Any]], waiter: str, label: str, line: str) -> None:
    """``waiter`` waits, at ``line``, for lock ``label``, which the next step's thread owns."""
    step = step_of(cycle, dump, waiter)
    assert step.get("lock") is not None, f"{waiter} should wait for a lock: {step}"
    lock = lock_by_id(dump, step["lock"])
    assert label in label_of_lock(lock), lock
    assert lock["owner"] == next_waiter(cycle, step)
    thread = thread_by_id(dump, step["thread"])
    assert thread["waiting_for"] == step["lock"]
    assert line in blocking_line(thread)


def check_awaited_step(
    dump: dict[str, Any], cycle: list[dict[str, Any]], waiter: str, kinds: set[str], line: str, label: str = ""
) -> dict[str, Any]:
    """``waiter`` waits, at ``line``, for an awaited thing of one of ``kinds``, owned by the next step's thread."""
    step = step_of(cycle, dump, waiter)
    assert step.get("waits_for") is not None, f"{waiter} should wait for something that is not a lock: {step}"
    entry = awaited_by_id(dump, step["waits_for"])
    assert entry["kind"] in kinds, entry
    assert label in entry["label"], entry
    assert next_waiter(cycle, step) in entry["owners"], entry
    thread = thread_by_id(dump, step["thread"])
    assert thread.get("waits_for") == step["waits_for"]
    assert thread["waiting_for"] is None
    assert line in blocking_line(thread)
    return entry


def check_deadlock_run(run: Run) -> dict[str, Any]:
    assert run.status == DEADLOCK_EXIT_STATUS, run.describe()
    assert "Traceback" not in run.stderr, run.describe()
    return run.the_dump("deadlock")


# --- deadlocks through joins, futures, pools and imports --------------------------------------------------


@pytest.mark.timeout(120)
def test_join_holding_lock(tmp_path: Path) -> None:
    run = run_example("join_holding_lock.py", tmp_path)
    dump = check_deadlock_run(run)
    cycle = the_cycle(dump)
    assert len(cycle) == 2
    joined = check_awaited_step(dump, cycle, "MainThread", {"thread"}, "self._refresh_thread.join()", "refresh")
    assert joined["owners"] == [thread_by_name(dump, "refresh")["id"]]
    check_lock_step(dump, cycle, "refresh", "_lock", "with self.live._lock:")


@pytest.mark.timeout(120)
def test_import_lock_cycle(tmp_path: Path) -> None:
    run = run_example("import_lock_cycle.py", tmp_path)
    dump = check_deadlock_run(run)
    cycle = the_cycle(dump)
    assert len(cycle) == 2
    entry = check_awaited_step(
        dump, cycle, "registry-loader", {"import"}, "importlib.import_module(PLUGIN)", '"_import_cycle.slow_plugin"'
    )
    assert entry["owners"] == [thread_by_name(dump, "plugin-importer")["id"]]
    check_lock_step(dump, cycle, "plugin-importer", "registry_lock", "with registry_lock:")


@pytest.mark.timeout(120)
def test_pool_nested_submit_deadlock(tmp_path: Path) -> None:
    run = run_example("pool_nested_submit_deadlock.py", tmp_path)
    dump = check_deadlock_run(run)
    cycle = the_cycle(dump)
    (worker,) = [t for t in dump["threads"] if t["name"].startswith("ThreadPoolExecutor-")]
    # The only worker waits for a sub-task that only a worker of its own pool -- itself -- can run.
    assert [step["thread"] for step in cycle] == [worker["id"]]
    entry = check_awaited_step(dump, cycle, worker["name"], {"pool", "future"}, "section.result()")
    assert entry["owners"] == [worker["id"]]
    assert entry.get("state") in (None, "pending")
    # The main thread waits behind the cycle, for the future of build_report, and is not part of it.
    main = thread_by_name(dump, "MainThread")
    assert main.get("waits_for") is not None
    assert awaited_by_id(dump, main["waits_for"])["owners"] == [worker["id"]]
    assert "pool.submit(build_report" in blocking_line(main)


@pytest.mark.timeout(120)
def test_future_result_holding_lock(tmp_path: Path) -> None:
    run = run_example("future_result_holding_lock.py", tmp_path)
    dump = check_deadlock_run(run)
    cycle = the_cycle(dump)
    assert len(cycle) == 2
    (worker,) = [t for t in dump["threads"] if t["name"].startswith("ThreadPoolExecutor-")]
    entry = check_awaited_step(dump, cycle, "MainThread", {"future"}, "self.pool.submit(self.refill, keys).result()")
    assert entry["owners"] == [worker["id"]]
    check_lock_step(dump, cycle, worker["name"], "Cache.lock", "with self.lock:")


# --- orphaned locks: the owner no longer exists -------------------------------------------------------------


def check_orphan_chain(dump: dict[str, Any], waiter: str, owner: str, lock_label: str, line: str) -> dict[str, Any]:
    """A chain ending at ``waiter`` waiting for lock ``lock_label``, held by ``owner``, which is gone."""
    assert dump["kind"] == "deadlock"
    assert len(dump.get("chains", [])) == 1, dump.get("chains")
    chain = dump["chains"][0]
    last = chain[-1]
    assert thread_by_id(dump, last["thread"])["name"] == waiter
    lock = lock_by_id(dump, step_target(last))
    assert lock_label in label_of_lock(lock), lock
    dead = thread_by_id(dump, lock["owner"])
    assert dead["name"] == owner and dead["alive"] is False, dead
    assert line in blocking_line(thread_by_id(dump, last["thread"]))
    return dead


@pytest.mark.timeout(120)
def test_orphaned_lock_thread_ended(tmp_path: Path) -> None:
    run = run_example("orphaned_lock_thread_ended.py", tmp_path)
    dump = check_deadlock_run(run)
    dead = check_orphan_chain(dump, "MainThread", "job", "state_lock", "with state_lock:")
    # What the dead owner was: it ended holding the lock, running job().
    assert "ended" in dead.get("gone", "") and "job()" in dead["gone"], dead
    # Where it took the lock, when that was recorded (a dead thread has no frames left to read it from).
    lock_id = step_target(dump["chains"][0][-1])
    taken = dead.get("acquired_at", {}).get(lock_id)
    if taken is not None:
        assert "state_lock.acquire()" in (taken.get("code") or ""), taken


@pytest.mark.timeout(120)
def test_orphaned_lock_after_fork(tmp_path: Path) -> None:
    run = run_example("orphaned_lock_after_fork.py", tmp_path)
    dump = check_deadlock_run(run)  # the child's status, passed on by the parent
    assert "parent: child exited with status 86" in run.stdout, run.describe()
    assert dump["pid"] != run.pid  # written by the child
    dead = check_orphan_chain(dump, "MainThread", "flusher", "buffer_lock", "with buffer_lock:")
    assert "fork" in dead.get("gone", ""), dead


# --- every thread asleep ------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_all_asleep_event(tmp_path: Path) -> None:
    run = run_example("all_asleep_event.py", tmp_path)
    assert run.status == DEADLOCK_EXIT_STATUS, run.describe()
    dump = run.the_dump("hang", "deadlock")
    assert dump.get("all_asleep") is True, dump.get("all_asleep")
    assert dump["cycles"] == []  # nothing owns an Event or a Queue: no cycle to name
    assert "results.get()" in blocking_line(thread_by_name(dump, "MainThread"))
    assert "go.wait()" in blocking_line(thread_by_name(dump, "worker"))


@pytest.mark.timeout(120)
def test_all_asleep_signal_daemon_is_a_hang_and_goes_on(tmp_path: Path) -> None:
    dump_dir = tmp_path / "dumps"
    process = start(lockwatch_command(EXAMPLES / "all_asleep_signal_daemon.py", dump_dir), tmp_path)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not dumps(dump_dir, "hang") and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for a file another process writes, not forcing an interleaving
        assert process.poll() is None, "the daemon must not be ended for waiting for a signal"
        (dump,) = dumps(dump_dir, "hang")
        assert dump.get("all_asleep") is True
        assert "stop.wait()" in blocking_line(thread_by_name(dump, "MainThread"))
        # Several more looks (interval 0.1 s): it still waits, and nothing else is reported.
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=1.0)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        kill_group(process)
    assert process.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    assert "daemon: stopped on SIGTERM" in stdout
    assert dumps(dump_dir, "deadlock") == []
    assert len(dumps(dump_dir, "hang")) == 1, "one hang, reported once"


# --- clean programs ------------------------------------------------------------------------------------------

CLEAN = {
    "join_after_release.py": "display stopped cleanly after 0 frames",
    "pool_sized_for_nesting.py": "3 reports built; no starvation",
    "idle_pool_and_socket_server.py": "server idle for 3 s; service stopped",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", sorted(CLEAN))
def test_clean_example_has_no_finding(example: str, tmp_path: Path) -> None:
    run = run_example(example, tmp_path)
    assert run.status == 0, run.describe()
    assert CLEAN[example] in run.stdout, run.describe()
    assert not run.dump_dir.exists() or not any(run.dump_dir.glob("*.json")), run.describe()
    assert "POTENTIAL DEADLOCK" not in run.stderr and "Traceback" not in run.stderr, run.describe()


# --- without lockwatch: the deadlocks really hang, the clean programs really end -----------------------------

# Each deadlocking example and the line it prints just before it hangs.
HANGS = {
    "join_holding_lock.py": "stopping the display ...",
    "import_lock_cycle.py": "loader holds the registry, importing the plugin ...",
    "pool_nested_submit_deadlock.py": "building the report ...",
    "future_result_holding_lock.py": "refreshing the cache ...",
    "orphaned_lock_thread_ended.py": "job finished; reading its result ...",
    "orphaned_lock_after_fork.py": "child: writing the first log line ...",
    "all_asleep_event.py": "waiting for the worker's result ...",
}


@pytest.mark.timeout(120)
def test_deadlock_examples_hang_with_plain_python(tmp_path: Path) -> None:
    # All at once, their output in files: each must reach its last line, then still be running
    # a second later (every hang is forced by Events/Barriers, so a second is plenty).
    processes = {}
    try:
        for example in sorted(HANGS):
            out = open(tmp_path / f"{example}.out", "w")
            processes[example] = subprocess.Popen(
                plain_command(EXAMPLES / example), cwd=tmp_path, env=clean_environment(),
                stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            )
            out.close()
        deadline = time.monotonic() + RUN_TIMEOUT
        waiting = dict(HANGS)
        while waiting and time.monotonic() < deadline:
            for example, line in list(waiting.items()):
                if line in (tmp_path / f"{example}.out").read_text():
                    del waiting[example]
            time.sleep(0.05)  # polling files other processes write
        assert not waiting, f"never reached their last line: {sorted(waiting)}"
        time.sleep(1.0)  # the hang itself: still running after a second
        ended = {example: p.poll() for example, p in processes.items() if p.poll() is not None}
        assert not ended, f"ended instead of hanging: {ended}"
    finally:
        for process in processes.values():
            kill_group(process)
            process.wait(timeout=RUN_TIMEOUT)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", sorted(CLEAN))
def test_clean_example_runs_with_plain_python(example: str, tmp_path: Path) -> None:
    result = subprocess.run(
        plain_command(EXAMPLES / example), cwd=tmp_path, env=clean_environment(), capture_output=True, text=True,
        timeout=RUN_TIMEOUT,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert CLEAN[example] in result.stdout


@pytest.mark.timeout(120)
def test_signal_daemon_with_plain_python_waits_for_sigterm(tmp_path: Path) -> None:
    process = start(plain_command(EXAMPLES / "all_asleep_signal_daemon.py"), tmp_path)
    try:
        assert process.stdout is not None
        assert "waiting for SIGTERM" in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        kill_group(process)
    assert process.returncode == 0 and stderr == "", stderr
    assert "daemon: stopped on SIGTERM" in stdout


def test_every_beyond_example_is_tested_and_documented() -> None:
    tested = set(HANGS) | set(CLEAN) | {"all_asleep_signal_daemon.py"}
    assert tested == BEYOND
    readme = (EXAMPLES / "README.md").read_text()
    for name in BEYOND:
        assert name in readme, f"{name} missing from examples/README.md"
        source = (EXAMPLES / name).read_text()
        assert source.startswith('"""') and "Expect:" in source, f"{name} needs a docstring saying what to expect"
        assert 'if __name__ == "__main__":' in source


# --- the import lock reader, on every CPython at hand ---------------------------------------------------------

READER_PROBE = r"""
import sys, threading, time
sys.path[:0] = [{root!r}, {examples!r}]
from lockwatch import _imports, _waits
import import_lock_cycle as example
from _import_cycle import registry

def look(until):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = _waits.collect()
        if until(found):
            return found
        time.sleep(0.01)  # polling another thread's progress; no interleaving depends on it
    raise SystemExit("timed out: " + repr(found))

_imports.install()
importer = threading.Thread(target=example.import_plugin, daemon=True)
importer.start()
registry.import_started.wait()
# The importer holds the plugin's import lock, and nobody waits for it: nothing to say.
quiet = _waits.collect()
loader = threading.Thread(target=example.load_plugins, daemon=True)
loader.start()
first = look(lambda found: found.edges)
# Read while another thread holds the global import lock: the reader must take no import lock.
import _imp
held, done, under_lock = threading.Event(), threading.Event(), []
def hold_import_lock():
    _imp.acquire_lock()
    held.set()
    done.wait()
    _imp.release_lock()
threading.Thread(target=hold_import_lock, daemon=True).start()
held.wait()
reader = threading.Thread(target=lambda: under_lock.append(_waits.collect()), daemon=True)
reader.start()
reader.join(10)
in_time = list(under_lock)  # before the import lock goes: a blocked reader would finish after it
done.set()
second = _waits.collect()
(edge,) = second.edges
print(json.dumps({{
    "quiet": len(quiet.edges), "waiter": edge.waiter == loader.ident, "owners": edge.target.owners == (importer.ident,),
    "kind": edge.target.kind, "label": edge.target.label, "id": edge.target.id, "timed": edge.timed,
    "same": [e.target.id for e in first.edges] == [edge.target.id] and first.edges[0].since == edge.since,
    "under_import_lock": [len(found.edges) for found in in_time],
}}), flush=True)
_imports.uninstall()
print(json.dumps({{"after_uninstall": len(_waits.collect().edges)}}), flush=True)
import os; os._exit(0)  # the two threads stay deadlocked: leave without joining them
"""


def interpreters() -> list[str]:
    """This interpreter and the CPython 3.10-3.13 builds pyenv has here."""
    found = {f"{sys.version_info.major}.{sys.version_info.minor}": sys.executable}
    versions = Path.home() / ".pyenv" / "versions"
    for minor in ("3.10", "3.11", "3.12", "3.13"):
        for candidate in sorted(versions.glob(f"{minor}.*/bin/python{minor}")):
            found.setdefault(minor, str(candidate))
    return [found[minor] for minor in sorted(found)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("python", interpreters())
def test_import_lock_reader_sees_the_cycle(python: str, tmp_path: Path) -> None:
    probe = "import json\n" + READER_PROBE.format(root=str(ROOT), examples=str(EXAMPLES))
    result = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, env=clean_environment(), capture_output=True, text=True,
        timeout=RUN_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    seen, after = (json.loads(line) for line in result.stdout.splitlines() if line.startswith("{"))
    assert seen == {
        "quiet": 0, "waiter": True, "owners": True, "kind": "import",
        "label": 'import lock of module "_import_cycle.slow_plugin"', "id": seen["id"], "timed": False, "same": True,
        "under_import_lock": [1],
    }
    assert seen["id"].startswith("I")
    assert after == {"after_uninstall": 0}


# --- the latency benchmark runs (its figures are for the README, not asserted here) --------------------------


@pytest.mark.timeout(120)
def test_latency_benchmark_completes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "latency.py"), "--runs", "1", "--timeout", "30"],
        cwd=tmp_path, env=clean_environment(), capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "ms" not in line]
    rows = [row for row in rows if not row.startswith("| ---")]
    assert len(rows) == 6, result.stdout  # 3 scenarios x 2 kinds of report
    for row in rows:
        assert row.endswith("| 0 |"), f"a deadlock was not reported: {row}"
