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
    _signals.check_registry()
    stale = _signals.registration_path(dead_pid)
    Path(stale).write_text("{}")
    with lockwatch.patch(interval=0.05, order="off", dump_dir=str(tmp_path)):
        assert not os.path.exists(stale)


# -- the registry directory is this user's alone (hostile local users) ------------------------


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private temporary root for the registry (the real one is shared with other test runs)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    assert _signals.registry_dir() == str(root / f"lockwatch-{os.getuid()}")
    return Path(_signals.registry_dir())


def _nobody() -> int:
    if os.geteuid() != 0:
        pytest.skip("handing files to another user needs root")
    import pwd

    return pwd.getpwnam("nobody").pw_uid


def _refused(exc: pytest.ExceptionInfo[OSError], *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and "refusing to use it" in message
    for word in words:
        assert word in message


def test_registry_is_created_private_whatever_the_umask(registry: Path, tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        _signals.register(str(tmp_path))
    finally:
        os.umask(old)
        _signals.unregister()
    assert registry.stat().st_mode & 0o7777 == 0o700 and registry.stat().st_uid == os.geteuid()


@pytest.mark.parametrize("mode", [0o777, 0o755, 0o1777])
def test_a_registry_others_can_use_is_refused(registry: Path, tmp_path: Path, mode: int) -> None:
    """Was: used as found, so another user could plant files in it."""
    registry.mkdir()
    registry.chmod(mode)
    with pytest.raises(_signals.RegistryError) as exc:
        _signals.register(str(tmp_path))
    _refused(exc, str(registry), f"bad permissions {mode:04o}")
    assert not _signals.is_registered()


def test_a_registry_made_by_another_user_is_refused(registry: Path, tmp_path: Path) -> None:
    registry.mkdir(mode=0o700)
    os.chown(registry, _nobody(), -1)
    with pytest.raises(_signals.RegistryError) as exc:
        _signals.register(str(tmp_path))
    _refused(exc, str(registry), "owned by uid")
    with pytest.raises(_signals.RegistryError):
        _signals.read_json(_signals.last_snapshot_path(4242))


def test_a_symlinked_registry_is_refused_and_nothing_behind_it_is_deleted(registry: Path, tmp_path: Path) -> None:
    """Was: the stale-file sweep deleted a user's `<digits>.json` files behind a planted symlink."""
    victim = tmp_path / "project"
    victim.mkdir(mode=0o700)
    precious = victim / "99999999.json"  # named like a registration of a process that ended
    precious.write_text("{}")
    registry.symlink_to(victim)
    with pytest.raises(_signals.RegistryError) as exc:
        _signals.register(str(tmp_path))
    _refused(exc, "symbolic link")
    assert precious.exists()


def test_the_registry_is_checked_every_time_it_is_used(registry: Path, tmp_path: Path) -> None:
    _signals.register(str(tmp_path))
    try:
        registry.chmod(0o777)  # opened up after the process registered
        with pytest.raises(_signals.RegistryError):
            _signals.write_last_snapshot(str(tmp_path / "x.json"))
        with pytest.raises(_signals.RegistryError):
            _signals.read_json(_signals.registration_path(os.getpid()))
    finally:
        registry.chmod(0o700)
        _signals.unregister()
    assert not os.path.exists(_signals.registration_path(os.getpid()))


def test_planted_files_are_never_trusted(registry: Path, tmp_path: Path) -> None:
    _signals.check_registry()
    last = Path(_signals.last_snapshot_path(4242))
    last.write_text(json.dumps({"path": "/forged.json"}))
    assert _signals.read_json(str(last)) == {"path": "/forged.json"}  # one's own file: fine
    os.chown(last, _nobody(), -1)
    with pytest.raises(_signals.RegistryError) as exc:
        _signals.read_json(str(last))
    _refused(exc, str(last), "owned by uid")
    os.chown(last, os.geteuid(), -1)
    last.chmod(0o666)
    with pytest.raises(_signals.RegistryError) as exc:
        _signals.read_json(str(last))
    _refused(exc, "bad permissions 0666")


def test_symlinks_in_the_registry_are_never_followed(registry: Path, tmp_path: Path) -> None:
    _signals.check_registry()
    target = tmp_path / "mine.txt"
    target.write_text("my data")
    link = Path(_signals.last_snapshot_path(os.getpid()))
    link.symlink_to(target)
    with pytest.raises(_signals.RegistryError) as exc:
        _signals.read_file(str(link))
    _refused(exc, "symbolic link")
    _signals.write_last_snapshot(str(tmp_path / "x.json"))  # replaces the link, never writes through it
    assert target.read_text() == "my data" and not link.is_symlink()
    assert json.loads(link.read_text())["path"] == str(tmp_path / "x.json")


@pytest.mark.skipif(_signals.process_start_ticks(os.getpid()) is None, reason="needs /proc")
def test_dump_refuses_a_planted_registration(registry: Path, tmp_path: Path) -> None:
    """Was: another user's PID.json made `lockwatch dump` send SIGUSR1 (default: death) to the user's process."""
    from click.testing import CliRunner

    from lockwatch import cli

    nobody = _nobody()
    process = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
                               stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        _signals.check_registry()
        planted = Path(_signals.registration_path(process.pid))
        planted.write_text(json.dumps({"pid": process.pid, "start_ticks": _signals.process_start_ticks(process.pid)}))
        os.chown(planted, nobody, -1)
        result = CliRunner().invoke(cli.cli, ["dump", str(process.pid), "--timeout", "2"], catch_exceptions=False)
        assert result.exit_code == 5, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lockwatch: error: ") and "owned by uid" in lines[0]
        with pytest.raises(subprocess.TimeoutExpired):  # still alive: no signal was sent
            process.wait(timeout=0.5)
    finally:
        process.kill()
        process.wait(timeout=10)


THOUSAND_THREADS = """\
import sys, threading
N = 1000
locks = [threading.Lock() for _ in range(N)]
stop = threading.Event()
holding = threading.Barrier(N + 1)

def work(i):
    with locks[i]:
        holding.wait()
        if i % 2:  # every other thread waits for its neighbour's lock: 500 short chains
            with locks[i - 1]:
                pass
        else:
            stop.wait()

threads = [threading.Thread(target=work, args=(i,), name=f"worker-{i}", daemon=True) for i in range(N)]
for t in threads:
    t.start()
holding.wait()
print("ready", flush=True)
sys.stdin.readline()  # the test says when to end
"""


@pytest.mark.timeout(120)
def test_dump_of_a_thousand_threads_is_ready_before_any_picture(tmp_path: Path) -> None:
    """Was: the snapshot was announced only after `dot` had drawn it (up to 20 s), and `lockwatch dump` gave up."""
    (tmp_path / "many.py").write_text(THOUSAND_THREADS)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dot").write_text("#!/bin/sh\nsleep 60\n")  # a Graphviz that takes forever
    (bin_dir / "dot").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    process = subprocess.Popen(
        [sys.executable, "-m", "lockwatch", "run", "--dump-dir", "D", "--order", "off", "many.py"],
        cwd=tmp_path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        assert wait_for_file(_signals.registration_path(process.pid))
        started = time.monotonic()
        dump = subprocess.run([sys.executable, "-m", "lockwatch", "dump", str(process.pid), "--timeout", "15"],
                              env=env, capture_output=True, text=True, timeout=60)
        took = time.monotonic() - started
        assert dump.returncode == 0, dump.stderr
        snapshot = json.loads(Path(dump.stdout.strip()).read_text())
        assert len(snapshot["threads"]) == 1001 and len(snapshot["locks"]) >= 1000
        assert took < 15
    finally:
        try:
            _out, err = process.communicate("\n", timeout=30)  # exit waits 5 s for the picture, then kills it
        finally:
            process.kill()
    assert "lockwatch: gave up drawing " in err and "(killed)" in err
