"""SIGUSR1 snapshots and the registration files `lockwatch dump PID` relies on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

import lockwatch
from lockwatch import _signals

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="the platform has no SIGUSR1"),
]


def wait_for_file(path: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def test_paths() -> None:
    assert _signals.registry_dir() == os.path.join(tempfile.gettempdir(), f"lockwatch-{os.getuid()}")
    assert _signals.registration_path(123) == os.path.join(_signals.registry_dir(), "123.json")
    assert _signals.last_snapshot_path(123) == os.path.join(_signals.registry_dir(), "123.last")


def test_registration_and_handler_follow_activation(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGUSR1)
    path = _signals.registration_path(os.getpid())
    with lockwatch.patch(interval=0.05, order="off", dump_dir=str(tmp_path / "dumps")):
        assert signal.getsignal(signal.SIGUSR1) is not before
        data = json.loads(Path(path).read_text())
        assert data["pid"] == os.getpid()
        assert data["dump_dir"] == str(tmp_path / "dumps") and os.path.isabs(data["dump_dir"])
        assert data["argv"] == sys.argv and data["python"] == sys.executable and data["started"]
    assert signal.getsignal(signal.SIGUSR1) is before
    assert not os.path.exists(path)


def test_signal_off_installs_nothing(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with lockwatch.patch(interval=0.05, order="off", dump_dir=str(tmp_path), signal=False):
        assert signal.getsignal(signal.SIGUSR1) is before
        assert not os.path.exists(_signals.registration_path(os.getpid()))


def test_sigusr1_writes_a_snapshot_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    last = _signals.last_snapshot_path(os.getpid())
    with lockwatch.patch(interval=0.05, order="off", dump_dir=str(tmp_path)):
        lock = threading.Lock()
        with lock:
            os.kill(os.getpid(), signal.SIGUSR1)
            assert wait_for_file(last)
        pointer = json.loads(Path(last).read_text())
        dump = json.loads(Path(pointer["path"]).read_text())
    assert pointer["created"] and os.path.dirname(pointer["path"]) == str(tmp_path)
    assert dump["kind"] == "snapshot"
    (main,) = [t for t in dump["threads"] if t["name"] == "MainThread"]
    assert main["holding"] == [lock.id]
    assert "snapshot written to" in capsys.readouterr().err
    assert not os.path.exists(last)  # removed with the registration


def test_sigusr1_snapshot_of_a_hung_process(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, threading, lockwatch
        lockwatch.patch(interval=0.05, order="off", dump_dir=sys.argv[1])
        a, b = threading.Lock(), threading.Lock()
        barrier = threading.Barrier(2)
        def take(first, second):
            with first:
                barrier.wait()
                with second:
                    pass
        threads = [threading.Thread(target=take, args=(a, b), name="left"),
                   threading.Thread(target=take, args=(b, a), name="right")]
        for t in threads:
            t.start()
        print("ready", flush=True)
        for t in threads:
            t.join()
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        registration = _signals.registration_path(process.pid)
        assert wait_for_file(registration)
        assert json.loads(Path(registration).read_text())["dump_dir"] == str(tmp_path)
        last = _signals.last_snapshot_path(process.pid)
        os.kill(process.pid, signal.SIGUSR1)
        assert wait_for_file(last)
        dump = json.loads(Path(json.loads(Path(last).read_text())["path"]).read_text())
        assert dump["kind"] == "snapshot" and dump["pid"] == process.pid
        names = {t["name"] for t in dump["threads"]}
        assert {"left", "right", "MainThread"} <= names
        assert process.poll() is None  # the snapshot did not disturb the (hung) program
    finally:
        process.kill()
        process.wait(10)
        for path in (_signals.registration_path(process.pid), _signals.last_snapshot_path(process.pid)):
            if os.path.exists(path):
                os.unlink(path)  # a killed process cannot clean up after itself


def test_registration_removed_at_normal_exit(tmp_path: Path) -> None:
    script = "import sys, lockwatch, os; lockwatch.patch(dump_dir=sys.argv[1]); print(os.getpid())"
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0 and result.stderr == ""
    assert not os.path.exists(_signals.registration_path(int(result.stdout)))


def test_stale_registrations_are_removed(tmp_path: Path) -> None:
    # A process that is surely gone: one that has already been waited for.
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    os.makedirs(_signals.registry_dir(), exist_ok=True)
    stale = _signals.registration_path(dead_pid)
    Path(stale).write_text("{}")
    with lockwatch.patch(interval=0.05, order="off", dump_dir=str(tmp_path)):
        assert not os.path.exists(stale)
