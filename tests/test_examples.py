"""Every example in examples/ runs under lockwatch and gives its documented verdict."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from lockwatch._config import DEADLOCK_EXIT_STATUS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

#: Seconds any one example subprocess may take before it is killed and the test fails.
RUN_TIMEOUT = 60.0


def lockwatch_command(script: Path, dump_dir: Path, on_deadlock: str = "exit", args: Sequence[str] = ()) -> list[str]:
    """The command line that runs ``script`` under lockwatch, with a fast watchdog."""
    return [
        sys.executable, "-m", "lockwatch", "run", "--on-deadlock", on_deadlock,
        "--interval", "0.1", "--dump-dir", str(dump_dir), str(script), *args,
    ]


def plain_command(script: Path, args: Sequence[str] = ()) -> list[str]:
    return [sys.executable, str(script), *args]


def clean_environment() -> dict[str, str]:
    """The test's environment without LOCKWATCH_* settings that would change the verdicts."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH_")}


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run to completion; subprocess.run kills the child if it outlives RUN_TIMEOUT."""
    try:
        return subprocess.run(
            command, cwd=cwd, env=clean_environment(), capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(command)} did not finish within {RUN_TIMEOUT} s\nstderr:\n{exc.stderr}")


def dumps(dump_dir: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(dump_dir.glob(f"{kind}-*.json"))]


def thread_names(dump: dict[str, Any]) -> dict[int, str]:
    return {thread["id"]: thread["name"] for thread in dump["threads"]}


def deadlocked_names(dump: dict[str, Any]) -> list[list[str]]:
    """The names of the threads in each cycle of a deadlock dump."""
    names = thread_names(dump)
    return [sorted(names[step["thread"]] for step in cycle) for cycle in dump["cycles"]]


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


# --- deadlocks: found, dumped, and the process ended with the documented status ----------------------

DEADLOCKS = {
    "bank_transfer_deadlock.py": ["teller-1", "teller-2"],
    "philosophers_deadlock.py": [f"philosopher-{i}" for i in range(5)],
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", sorted(DEADLOCKS))
def test_deadlock_example_is_found(example: str, tmp_path: Path) -> None:
    dump_dir = tmp_path / "dumps"
    result = run(lockwatch_command(EXAMPLES / example, dump_dir), cwd=tmp_path)

    assert result.returncode == DEADLOCK_EXIT_STATUS, describe(result)
    found = dumps(dump_dir, "deadlock")
    assert len(found) == 1, describe(result)
    dump = found[0]
    assert dump["kind"] == "deadlock"
    assert deadlocked_names(dump) == [DEADLOCKS[example]]
    # Each thread in the cycle is shown blocked in the example's own code.
    for thread in dump["threads"]:
        if thread["name"] in DEADLOCKS[example]:
            assert thread["waiting_for"] is not None
            assert any(frame["file"].endswith(example) for frame in thread["stack"])
    assert "Traceback" not in result.stderr, describe(result)


# --- lock-order inversion: nothing hangs, the latent deadlock is reported -----------------------------


@pytest.mark.timeout(120)
def test_resources_naive_reports_lock_order_inversion(tmp_path: Path) -> None:
    dump_dir = tmp_path / "dumps"
    result = run(lockwatch_command(EXAMPLES / "resources_naive.py", dump_dir), cwd=tmp_path)

    assert result.returncode == 0, describe(result)
    assert "both jobs finished" in result.stdout
    assert dumps(dump_dir, "deadlock") == []
    found = dumps(dump_dir, "lock-order")
    assert len(found) == 1, describe(result)
    (cycle,) = found[0]["order_cycles"]
    assert len(cycle) == 2
    assert sorted(edge["thread"] for edge in cycle) == ["cache-invalidator", "nightly-report"]
    assert result.stderr.count("POTENTIAL DEADLOCK (lock order)") == 1, describe(result)
    assert "LockOrderWarning" not in result.stderr, describe(result)  # the report is printed: said once


# --- clean programs: same output as plain python, no finding ------------------------------------------

CLEAN = {
    "bank_transfer_ordered.py": "total conserved (500); no deadlock",
    "philosophers_asymmetric.py": "everyone ate; no deadlock",
    "resources_ordered.py": "all jobs finished",
    "condition_counter.py": "no torn reads",
    "thread_pool_pipeline.py": "pipeline: 2000 records through 3 stages",
    "request_context.py": "every line and result carried its own request id",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", sorted(CLEAN))
def test_clean_example_has_no_finding(example: str, tmp_path: Path) -> None:
    dump_dir = tmp_path / "dumps"
    result = run(lockwatch_command(EXAMPLES / example, dump_dir), cwd=tmp_path)

    assert result.returncode == 0, describe(result)
    assert CLEAN[example] in result.stdout, describe(result)
    assert dumps(dump_dir, "deadlock") == []
    assert dumps(dump_dir, "lock-order") == [], describe(result)
    assert "POTENTIAL DEADLOCK" not in result.stderr, describe(result)
    assert "Traceback" not in result.stderr, describe(result)


@pytest.mark.timeout(120)
def test_butler_has_no_deadlock_but_its_fork_circle_is_flagged(tmp_path: Path) -> None:
    # The butler (a semaphore) keeps the fork circle from closing; lock-order checking
    # cannot see a semaphore's count and rightly reports the circle (see the docstring).
    dump_dir = tmp_path / "dumps"
    result = run(lockwatch_command(EXAMPLES / "philosophers_butler.py", dump_dir), cwd=tmp_path)

    assert result.returncode == 0, describe(result)
    assert "everyone ate; no deadlock" in result.stdout
    assert dumps(dump_dir, "deadlock") == []
    found = dumps(dump_dir, "lock-order")
    assert len(found) == 1, describe(result)
    (cycle,) = found[0]["order_cycles"]
    assert len(cycle) == 5


@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", sorted([*CLEAN, "philosophers_butler.py", "resources_naive.py"]))
def test_clean_example_runs_with_plain_python(example: str, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(plain_command(EXAMPLES / example), cwd=tmp_path)
    elapsed = time.monotonic() - started

    assert result.returncode == 0, describe(result)
    assert result.stderr == ""
    # Bounded work: far below the limit even on a slow, shared machine.
    assert elapsed < 20, f"{example} took {elapsed:.1f} s"


# --- the hung service: snapshots on demand, then the deadlock -------------------------------------------


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, process: subprocess.Popen[str],
    details: Callable[[], str] = lambda: "",
) -> Any:
    """Poll ``condition`` until it is truthy; fail if the process ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(f"the service ended (status {process.returncode}) before {what}\n{details()}")
        time.sleep(0.02)  # polling a file written by another process, not forcing an interleaving
    pytest.fail(f"no {what} within {timeout} s\n{details()}")


class Service:
    """hung_service.py under lockwatch, its output in files, always killed at the end."""

    def __init__(self, tmp_path: Path, on_deadlock: str, args: Sequence[str]) -> None:
        self.dump_dir = tmp_path / "dumps"
        self.stdout_path = tmp_path / "stdout.txt"
        self.stderr_path = tmp_path / "stderr.txt"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                lockwatch_command(EXAMPLES / "hung_service.py", self.dump_dir, on_deadlock, args),
                cwd=tmp_path, env=clean_environment(), stdin=subprocess.PIPE, stdout=out, stderr=err, text=True,
            )

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def details(self) -> str:
        files = sorted(p.name for p in self.dump_dir.glob("*")) if self.dump_dir.exists() else []
        return f"dumps: {files}\nstdout:\n{self.stdout()}\nstderr:\n{self.stderr()}"

    def wait_for_output(self, text: str) -> None:
        wait_until(lambda: text in self.stdout(), RUN_TIMEOUT, repr(text), self.process, self.details)

    def snapshot(self) -> dict[str, Any]:
        """SIGUSR1, then the snapshot dump the process's .last file points at."""
        from lockwatch import _signals

        last = Path(_signals.last_snapshot_path(self.process.pid))
        before = last.read_text() if last.exists() else None
        os.kill(self.process.pid, signal.SIGUSR1)

        def new_snapshot() -> dict[str, Any] | None:
            try:
                text = last.read_text()
            except FileNotFoundError:
                return None
            if text == before:
                return None
            return json.loads(Path(json.loads(text)["path"]).read_text())

        asked_at = [time.monotonic()]

        def new_snapshot_asking_again() -> dict[str, Any] | None:
            # Like `lockwatch dump`: a request is idempotent, so ask again now and then.
            if time.monotonic() - asked_at[0] > 3.0:
                asked_at[0] = time.monotonic()
                os.kill(self.process.pid, signal.SIGUSR1)
            return new_snapshot()

        return wait_until(
            new_snapshot_asking_again, RUN_TIMEOUT, "snapshot dump after SIGUSR1", self.process, self.details
        )

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=RUN_TIMEOUT)
        if self.process.stdin:
            self.process.stdin.close()


def worker_waits(dump: dict[str, Any]) -> dict[str, str | None]:
    return {t["name"]: t["waiting_for"] for t in dump["threads"] if t["name"].startswith("worker-")}


@pytest.mark.timeout(120)
def test_hung_service_snapshot_then_deadlock_exit(tmp_path: Path) -> None:
    service = Service(tmp_path, "exit", ["--deadlock-after", "12", "--rate", "100", "--hang-on-enter"])
    try:
        service.wait_for_output("press Enter")
        pid_line = service.stdout().splitlines()[0]
        assert f"pid {service.process.pid}" in pid_line
        # Every request so far has been answered. Request #10 was a report: its stats -> cache
        # order against the puts' cache -> stats was reported while the service is healthy
        # (by lockwatch's own thread, a moment after the acquire that closed the cycle).
        deadline = time.monotonic() + RUN_TIMEOUT
        while not dumps(service.dump_dir, "lock-order") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(dumps(service.dump_dir, "lock-order")) == 1
        assert dumps(service.dump_dir, "deadlock") == []

        healthy = service.snapshot()
        assert healthy["kind"] == "snapshot"
        assert healthy["pid"] == service.process.pid
        assert healthy["cycles"] == []
        # Three idle workers waiting for requests: none blocked on a lock.
        assert worker_waits(healthy) == {"worker-0": None, "worker-1": None, "worker-2": None}

        assert service.process.stdin is not None
        service.process.stdin.write("\n")
        service.process.stdin.flush()
        status = service.process.wait(timeout=RUN_TIMEOUT)
        assert status == DEADLOCK_EXIT_STATUS, service.stderr()
        (dump,) = dumps(service.dump_dir, "deadlock")
        (names,) = deadlocked_names(dump)
        assert len(names) == 2 and all(name.startswith("worker-") for name in names)
    finally:
        service.close()


@pytest.mark.timeout(120)
def test_hung_service_stays_hung_and_answers_snapshots(tmp_path: Path) -> None:
    # on_deadlock=report: the deadlock is reported and the process stays hung for a
    # person to inspect -- it must still answer SIGUSR1 with a snapshot of the hang.
    service = Service(tmp_path, "report", ["--deadlock-after", "3", "--rate", "100"])
    try:
        wait_until(
            lambda: dumps(service.dump_dir, "deadlock"), RUN_TIMEOUT, "deadlock dump", service.process, service.details
        )
        (dump,) = dumps(service.dump_dir, "deadlock")
        (names,) = deadlocked_names(dump)
        assert len(names) == 2 and all(name.startswith("worker-") for name in names)

        hung = service.snapshot()
        assert hung["kind"] == "snapshot"
        assert service.process.poll() is None, "report mode must leave the process running"
        waits = worker_waits(hung)
        for name in names:
            assert waits[name] is not None, f"{name} should still be blocked: {waits}"
        holders = {lock["owner"] for lock in hung["locks"] if lock["owner"] is not None}
        assert {t["id"] for t in hung["threads"] if t["name"] in names} <= holders

        # The documented way for a person: `lockwatch dump PID` prints the new snapshot's path.
        asked = run([sys.executable, "-m", "lockwatch", "dump", str(service.process.pid)], cwd=tmp_path)
        assert asked.returncode == 0, describe(asked)
        path = Path(asked.stdout.strip().splitlines()[-1])
        assert path.parent == service.dump_dir and path.name.startswith("snapshot-"), describe(asked)
        assert json.loads(path.read_text())["kind"] == "snapshot"
    finally:
        service.close()


def test_every_example_is_tested_and_documented() -> None:
    from test_beyond_examples import BEYOND  # the examples of waits beyond locks, tested there

    asyncio_examples = {path.name for path in EXAMPLES.glob("asyncio_*.py")}  # tested in test_aio.py
    tested = set(DEADLOCKS) | set(CLEAN) | set(BEYOND) | asyncio_examples | {"resources_naive.py", "philosophers_butler.py", "hung_service.py"}
    present = {path.name for path in EXAMPLES.glob("*.py")}
    assert present == tested
    readme = (EXAMPLES / "README.md").read_text()
    for name in present:
        assert name in readme, f"{name} missing from examples/README.md"
        source = (EXAMPLES / name).read_text()
        assert source.startswith('"""') and "Expect:" in source, f"{name} needs a docstring saying what to expect"
        assert 'if __name__ == "__main__":' in source
