"""Pictures are drawn off the detection path: a child process, a time limit, nothing imported or locked here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from _sample_reports import deadlock

from lockwatch import _draw, _dump
from lockwatch._dump import load_dump, write_report

pytestmark = pytest.mark.skipif(not hasattr(os, "posix_spawn"), reason="pictures are drawn with posix_spawn")

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")


@pytest.fixture(autouse=True)
def no_drawings_of_earlier_tests() -> None:
    """Pictures of dumps written by earlier tests in this process finish (or go) first."""
    _dump.wait_drawings(30)


def _fake_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """A fake Graphviz ``dot`` first on PATH (the drawing child inherits the environment)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet collected by its parent, here init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.timeout(60)
def test_write_report_returns_before_a_slow_dot_finishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Was: `dot` ran in the reporting thread, up to 20 s per dump."""
    _fake_dot(tmp_path, monkeypatch, "sleep 30\n")
    start = time.monotonic()
    paths = write_report(deadlock(), tmp_path / "dumps")
    took = time.monotonic() - start
    try:
        assert took < 3.0, f"write_report took {took:.1f} s"
        assert load_dump(paths[0]) == deadlock()  # the JSON is complete on return
        assert [Path(p).suffix for p in paths] == [".json", ".dot", ".svg"]
        assert _dump.drawings_in_progress() == 1
        assert _dump.reap_drawings() == []  # still within its time: left alone, and no waiting
    finally:
        _dump.wait_drawings(0)  # kill it: the test is over


@pytest.mark.timeout(60)
def test_a_drawing_past_its_limit_is_killed_with_its_dot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "dot.pid"
    _fake_dot(tmp_path, monkeypatch, f"echo $$ > {marker}\nsleep 60\n")
    monkeypatch.setattr(_dump, "DRAW_KILL_AFTER", 1.0)
    paths = write_report(deadlock(), tmp_path / "dumps")
    deadline = time.monotonic() + 20
    while not marker.exists() or not marker.read_text().strip():
        assert time.monotonic() < deadline, "the fake dot never started"
        time.sleep(0.05)
    dot_pid = int(marker.read_text())
    notes: list[str] = []
    while not notes:
        assert time.monotonic() < deadline, "the overdue drawing was never killed"
        notes = _dump.reap_drawings()  # what the watchdog calls on each look
        time.sleep(0.05)
    assert _dump.drawings_in_progress() == 0
    assert len(notes) == 1 and "\n" not in notes[0]
    assert notes[0].startswith(f"gave up drawing {Path(paths[1]).name}, {Path(paths[2]).name} after ")
    assert f"draw it with `lockwatch render {paths[0]}`" in notes[0]
    assert f"lockwatch: {notes[0]}\n" in capfd.readouterr().err
    while _alive(dot_pid):  # its process group went with it
        assert time.monotonic() < deadline, "the drawing's dot outlived it"
        time.sleep(0.05)
    assert load_dump(paths[0]) == deadlock()


@pytest.mark.timeout(60)
def test_reap_never_blocks_while_another_thread_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dot(tmp_path, monkeypatch, "sleep 30\n")
    write_report(deadlock(), tmp_path / "dumps")
    waiter = threading.Thread(target=_dump.wait_drawings, args=(3.0,))
    waiter.start()
    try:
        for _ in range(20):
            start = time.monotonic()
            _dump.reap_drawings()
            assert time.monotonic() - start < 0.5
            time.sleep(0.01)
    finally:
        waiter.join(30)
    assert not waiter.is_alive() and _dump.drawings_in_progress() == 0


@needs_dot
@pytest.mark.timeout(60)
def test_wait_drawings_lets_the_pictures_appear(tmp_path: Path) -> None:
    paths = write_report(deadlock(), tmp_path)
    assert _dump.wait_drawings(30) is True
    assert Path(paths[1]).read_text(encoding="utf-8").startswith("digraph")
    assert "<svg" in Path(paths[2]).read_text(encoding="utf-8")


def test_describe_says_what_is_still_being_drawn() -> None:
    assert _dump.describe(["/d/x.json"]) == "/d/x.json"
    assert _dump.describe(["/d/x.json", "/d/x.dot", "/d/x.svg"]) == "/d/x.json (picture being drawn: /d/x.dot, /d/x.svg)"


def test_the_drawing_process_says_what_went_wrong_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _draw.main(["x.json"]) == 2
    assert _draw.main([str(tmp_path / "missing.json"), "5", "dot"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [_draw.USAGE and f"lockwatch: {_draw.USAGE}",
                                f"lockwatch: could not draw missing.dot: {tmp_path / 'missing.json'}: no such file"]


def _run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}
    environ.update(env)
    tests = str(Path(__file__).parent)
    environ["PYTHONPATH"] = tests + os.pathsep + environ.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.timeout(90)
def test_under_patch_writing_a_dump_imports_nothing_and_takes_no_instrumented_lock(tmp_path: Path) -> None:
    """Was: to_dot imported graphviz (which logs, taking logging's lock) and subprocess.run made Lock()s."""
    result = _run(
        """
        import sys, threading
        import lockwatch
        lockwatch.patch(order="off")
        from lockwatch import _dump
        from _sample_reports import deadlock
        report = deadlock()
        made = []
        for name in ("Lock", "RLock"):
            real = getattr(threading, name)
            setattr(threading, name, lambda *a, _real=real, _name=name, **k: made.append(_name) or _real(*a, **k))
        before = set(sys.modules)
        paths = _dump.write_report(report, "dumps")
        print(sorted(set(sys.modules) - before), made, len(paths))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 2)[:2] == ["[]", "[]"], result.stdout


@needs_dot
@pytest.mark.timeout(90)
def test_interpreter_exit_waits_for_the_pictures(tmp_path: Path) -> None:
    result = _run(
        """
        from lockwatch import _dump
        from _sample_reports import deadlock
        print("\\n".join(_dump.write_report(deadlock(), "dumps")))
        """,
        tmp_path,
        LOCKWATCH="1",  # the drawing child must not be patched by the start-up hook
    )
    assert result.returncode == 0, result.stderr
    json_path, dot_path, svg_path = result.stdout.split()
    assert Path(tmp_path, dot_path).read_text(encoding="utf-8").startswith("digraph")
    assert "<svg" in Path(tmp_path, svg_path).read_text(encoding="utf-8")
    assert result.stderr == ""


def test_no_drawing_where_sys_executable_is_not_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "executable", "/usr/bin/uwsgi")  # an embedding program
    monkeypatch.setitem(_dump._said, "no-python", False)
    results = [write_report(deadlock(), tmp_path) for _ in range(2)]
    assert [len(paths) for paths in results] == [1, 1] and _dump.drawings_in_progress() == 0  # the JSON only
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".json"]
    err = capfd.readouterr().err
    assert err.count("lockwatch: pictures are not drawn in this process") == 1 and "'/usr/bin/uwsgi'" in err
