"""The lockwatch command line: help, render, show and dump (CliRunner and real subprocesses)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import lockwatch
from lockwatch import _locks, _signals, cli
from lockwatch._config import DEADLOCK_EXIT_STATUS

#: Seconds any subprocess may take before it is killed and the test fails.
TIMEOUT = 60.0

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")

DEADLOCK = """\
import threading

first, second = threading.Lock(), threading.Lock()
both_hold_one = threading.Barrier(2)

def left():
    with first:
        both_hold_one.wait()
        with second:  # LEFT BLOCKS
            pass

def right():
    with second:
        both_hold_one.wait()
        with first:  # RIGHT BLOCKS
            pass

threads = [threading.Thread(target=left, name="left"), threading.Thread(target=right, name="right")]
for t in threads:
    t.start()
print("started", flush=True)
for t in threads:
    t.join()
"""


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH_")}


def invoke(*args: str) -> Result:
    # catch_exceptions=False: a traceback inside lockwatch fails the test loudly.
    return CliRunner().invoke(cli.cli, list(args), catch_exceptions=False)


def one_error_line(result: Result, status: int, *words: str) -> str:
    """The result failed with ``status`` and exactly one ``lockwatch: error:`` line naming ``words``."""
    assert result.exit_code == status, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("lockwatch: error: ")
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def deadlock_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dump written by `lockwatch run --on-deadlock exit` of a real AB-BA deadlock."""
    directory = tmp_path_factory.mktemp("deadlock")
    (directory / "deadlock_app.py").write_text(DEADLOCK)
    result = subprocess.run(
        [sys.executable, "-m", "lockwatch", "run", "--on-deadlock", "exit", "--interval", "0.1",
         "--dump-dir", "D", "--order", "off", "deadlock_app.py"],
        cwd=directory, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert result.returncode == DEADLOCK_EXIT_STATUS, result.stderr
    dumps = sorted((directory / "D").glob("deadlock-*.json"))
    assert len(dumps) == 1
    return dumps[0]


# --- help and version ------------------------------------------------------------------------


def test_group_help_lists_commands_and_exit_statuses() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for word in ("run", "render", "show", "dump", "Examples:", "Exit statuses:", "86", "130"):
        assert word in result.output


@pytest.mark.parametrize("command", ["run", "render", "show", "dump"])
def test_every_command_help_teaches_with_examples(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output and f"lockwatch {command}" in result.output


def test_run_help_uses_the_shared_setting_help() -> None:
    from lockwatch._config import HELP

    output = " ".join(invoke("run", "--help").output.split())
    for option in ("--dump-dir", "--interval", "--on-deadlock", "--hang-timeout", "--order",
                   "--declared-order", "--baseline", "--no-signal", "--write-baseline", "-m MODULE"):
        assert option in output
    assert " ".join(HELP["baseline"].split()) in output


def test_version() -> None:
    result = invoke("--version")
    assert (result.exit_code, result.output) == (0, f"lockwatch {lockwatch.__version__} (core: {_locks.core()})\n")


def test_unknown_command_and_option() -> None:
    one_error_line(invoke("frobnicate"), 2, "frobnicate")
    one_error_line(invoke("show", "--colour", "x.json"), 2, "--colour")


# --- show ------------------------------------------------------------------------------------


def test_show_names_threads_and_points_at_the_scripts_lines(deadlock_dump: Path) -> None:
    result = invoke("show", str(deadlock_dump))
    assert result.exit_code == 0
    assert result.output.startswith("DEADLOCK")
    assert '"left"' in result.output and '"right"' in result.output
    assert 'deadlock_app.py", line 9' in result.output and "# LEFT BLOCKS" in result.output
    assert 'deadlock_app.py", line 15' in result.output and "# RIGHT BLOCKS" in result.output


# --- render ----------------------------------------------------------------------------------


@needs_dot
def test_render_default_is_svg_next_to_the_dump(deadlock_dump: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.json"
    shutil.copy(deadlock_dump, copy)
    result = invoke("render", str(copy))
    assert (result.exit_code, result.output) == (0, f"{tmp_path / 'copy.svg'}\n")
    svg = (tmp_path / "copy.svg").read_text()
    assert "<svg" in svg and "left" in svg and "right" in svg


@needs_dot
@pytest.mark.parametrize(
    "name, option, magic",
    [
        ("out.svg", (), b"<?xml"),
        ("out.png", (), b"\x89PNG\r\n\x1a\n"),
        ("out.pdf", (), b"%PDF"),
        ("out.dot", (), b"digraph"),
        ("picture", ("-f", "png"), b"\x89PNG\r\n\x1a\n"),
    ],
)
def test_render_formats(deadlock_dump: Path, tmp_path: Path, name: str, option: tuple[str, ...], magic: bytes) -> None:
    output = tmp_path / name
    result = invoke("render", str(deadlock_dump), "-o", str(output), *option)
    assert (result.exit_code, result.output) == (0, f"{output}\n")
    assert output.read_bytes().startswith(magic)


def test_render_dot_is_deterministic_and_highlights_the_cycle(deadlock_dump: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.dot", tmp_path / "b.dot"
    assert invoke("render", str(deadlock_dump), "-o", str(first)).exit_code == 0
    assert invoke("render", str(deadlock_dump), "-f", "dot", "-o", str(second)).exit_code == 0
    text = first.read_text()
    assert text == second.read_text()
    assert text.startswith("digraph") and "red" in text and "left" in text and "right" in text


def test_without_graphviz_dot_works_and_images_say_how_to_install(
    deadlock_dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    line = one_error_line(invoke("render", str(deadlock_dump), "-o", str(tmp_path / "x.png")), 4, "Graphviz")
    assert "install" in line
    result = invoke("render", str(deadlock_dump), "-f", "dot", "-o", str(tmp_path / "x.dot"))
    assert result.exit_code == 0 and (tmp_path / "x.dot").read_text().startswith("digraph")


# --- bad input files and outputs ---------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path: Path, deadlock_dump: Path) -> dict[str, Path]:
    newer = json.loads(deadlock_dump.read_text())
    newer["lockwatch"] = 99
    files = {
        "missing": tmp_path / "missing.json",
        "not JSON": tmp_path / "text.json",
        "not a dump": tmp_path / "other.json",
        "newer": tmp_path / "newer.json",
        "empty": tmp_path / "empty.json",
        "directory": tmp_path,
    }
    files["not JSON"].write_text("this is not {json")
    files["not a dump"].write_text('{"name": "package.json, not a dump"}')
    files["newer"].write_text(json.dumps(newer))
    files["empty"].write_text("")
    return files


@pytest.mark.parametrize("command", ["show", "render"])
@pytest.mark.parametrize("case", ["missing", "not JSON", "not a dump", "newer", "empty", "directory"])
def test_bad_dump_files_are_one_line_status_3(command: str, case: str, bad_files: dict[str, Path]) -> None:
    path = bad_files[case]
    if (command, case) == ("show", "directory"):
        return  # show lists a directory's dumps (test_show_lists_a_directory_grouped_by_process)
    line = one_error_line(invoke(command, str(path)), 3, str(path))
    if case == "newer":
        assert "newer" in line and "99" in line


def test_render_unwritable_outputs(deadlock_dump: Path, tmp_path: Path) -> None:
    one_error_line(invoke("render", str(deadlock_dump), "-o", str(tmp_path / "no" / "dir" / "x.dot")), 4, "x.dot")
    one_error_line(invoke("render", str(deadlock_dump), "-f", "dot", "-o", str(deadlock_dump)), 4, "overwrite")


def test_render_format_from_unknown_suffix_is_a_usage_error(deadlock_dump: Path, tmp_path: Path) -> None:
    one_error_line(invoke("render", str(deadlock_dump), "-o", str(tmp_path / "x.gif")), 2, "x.gif", "-f")
    one_error_line(invoke("render", str(deadlock_dump), "-f", "gif"), 2, "gif")


# --- dump PID ----------------------------------------------------------------------------------


@pytest.fixture
def plain_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live python process that is not running lockwatch and ignores SIGUSR1."""
    process = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, sys, time; signal.signal(signal.SIGUSR1, signal.SIG_IGN); "
         "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        yield process
    finally:
        process.kill()
        process.wait(timeout=TIMEOUT)


def test_dump_no_such_process() -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, timeout=TIMEOUT)
    pid = finished.stdout.strip()
    one_error_line(invoke("dump", pid), 5, pid, "no process")


def test_dump_process_of_another_user(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pid: int, signum: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", refuse)
    one_error_line(invoke("dump", "4242"), 5, "4242", "another user")


def test_dump_process_not_running_lockwatch(plain_process: subprocess.Popen[bytes]) -> None:
    # Without --no-attach, lockwatch would attach with gdb instead (tests/test_attach.py).
    line = one_error_line(invoke("dump", str(plain_process.pid), "--no-attach"), 5, str(plain_process.pid),
                          "not running under lockwatch")
    assert "lockwatch run" in line


def test_dump_no_answer_within_the_timeout(plain_process: subprocess.Popen[bytes]) -> None:
    # Registered as if under lockwatch, but SIGUSR1 is ignored: like a main thread stuck in C code.
    registration = Path(_signals.registration_path(plain_process.pid))
    _signals.check_registry()  # mode 0700: lockwatch refuses any other
    registration.write_text(json.dumps({"pid": plain_process.pid}))
    try:
        started = time.monotonic()
        line = one_error_line(invoke("dump", str(plain_process.pid), "--timeout", "0.5"), 5, "0.5 s", "C code")
        assert time.monotonic() - started < 5
        assert str(plain_process.pid) in line
    finally:
        registration.unlink()


@pytest.mark.skipif(_signals.process_start_ticks(os.getpid()) is None, reason="needs /proc")
def test_dump_never_signals_a_process_that_reused_a_registered_pid() -> None:
    # A registration left behind by a process that died, whose pid now belongs to another
    # process: SIGUSR1 would end that one (default action), so `dump` must refuse to send it.
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    registration = Path(_signals.registration_path(process.pid))
    try:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        _signals.check_registry()  # mode 0700: lockwatch refuses any other
        real_start = _signals.process_start_ticks(process.pid)
        assert real_start is not None
        registration.write_text(json.dumps({"pid": process.pid, "start_ticks": real_start - 1}))
        one_error_line(invoke("dump", str(process.pid), "--timeout", "5"), 5, "reused", "not signalling")
        with pytest.raises(subprocess.TimeoutExpired):  # still alive: no signal was sent
            process.wait(timeout=0.5)
    finally:
        registration.unlink(missing_ok=True)
        process.kill()
        process.wait(timeout=10)


def test_registration_records_the_process_start() -> None:
    with lockwatch.patch(order="off", signal=True) as handle:
        try:
            registered = json.loads(Path(_signals.registration_path(os.getpid())).read_text())
        finally:
            handle.stop()
    assert registered["start_ticks"] == _signals.process_start_ticks(os.getpid())


@pytest.mark.parametrize("args, word", [(["abc"], "PID"), (["1", "--timeout", "-1"], "--timeout"), (["0"], "PID")])
def test_dump_bad_arguments(args: list[str], word: str) -> None:
    one_error_line(invoke("dump", *args), 2, word)


@pytest.mark.timeout(90)
def test_dump_a_hung_process_running_under_lockwatch(tmp_path: Path) -> None:
    (tmp_path / "hung.py").write_text(DEADLOCK)
    dump_dir = tmp_path / "D"
    process = subprocess.Popen(
        [sys.executable, "-m", "lockwatch", "run", "--on-deadlock", "report", "--interval", "0.1",
         "--dump-dir", str(dump_dir), "--order", "off", "hung.py"],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"started\n"
        # The watchdog reports the deadlock first: from then on both threads are surely stuck.
        deadline = time.monotonic() + TIMEOUT
        while not list(dump_dir.glob("deadlock-*.json")):
            assert process.poll() is None and time.monotonic() < deadline, "no deadlock reported"
            time.sleep(0.05)
        result = subprocess.run(
            [sys.executable, "-m", "lockwatch", "dump", str(process.pid), "--show"],
            env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT,
        )
        assert result.returncode == 0, result.stderr
        path = Path(result.stdout.splitlines()[0])
        assert path.parent == dump_dir and path.name.startswith("snapshot-")
        snapshot = json.loads(path.read_text())
        waiting = {t["name"]: t["waiting_for"] for t in snapshot["threads"]}
        assert waiting["left"] is not None and waiting["right"] is not None
        assert '"left"' in result.stdout and '"right"' in result.stdout
        assert process.poll() is None  # still hung, for more inspection
    finally:
        process.kill()
        process.communicate(timeout=TIMEOUT)


# --- several dumps, directories, and dumps nobody should trust ----------------------------------


def _variant(source: Path, target: Path, **changes: object) -> Path:
    data = json.loads(source.read_text())
    data.update(changes)
    target.write_text(json.dumps(data))
    return target


def test_show_several_dumps_one_after_the_other(deadlock_dump: Path, tmp_path: Path) -> None:
    second = _variant(deadlock_dump, tmp_path / "second.json", summary="the second one")
    result = invoke("show", str(deadlock_dump), str(second))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"==> {deadlock_dump} <==\nDEADLOCK")
    assert f"\n\n==> {second} <==\nDEADLOCK" in result.output and "the second one" in result.output


def test_show_goes_on_past_a_bad_dump_and_fails_at_the_end(deadlock_dump: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(cli.cli, ["show", str(bad), str(deadlock_dump)], catch_exceptions=False)
    assert result.exit_code == 3
    errors = [line for line in result.output.splitlines() if line.startswith("lockwatch: error:")]
    assert len(errors) == 1 and str(bad) in errors[0]
    assert f"==> {deadlock_dump} <==\nDEADLOCK" in result.output


def test_show_lists_a_directory_grouped_by_process(deadlock_dump: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dumps"
    folder.mkdir()
    shutil.copy(deadlock_dump, folder / "deadlock-a.json")
    _variant(deadlock_dump, folder / "snapshot-b.json", kind="snapshot", summary="Snapshot requested with SIGUSR1",
             created="2030-01-01T00:00:00+00:00")
    _variant(deadlock_dump, folder / "deadlock-c.json", pid=4321, argv=["child.py", "--n", "2"],
             summary="Deadlock in the \x1b[31mchild\x1b[0m")
    (folder / "notes.json").write_text('{"hello": 1}')
    (folder / "deadlock-a.svg").write_text("<svg/>")
    result = invoke("show", str(folder))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{folder}: 3 dumps from 2 processes"
    original = json.loads(deadlock_dump.read_text())
    first = lines.index(next(line for line in lines if line.startswith(f"Process {original['pid']} (")))
    assert lines[first].endswith("): 2 dumps")
    assert "deadlock-a.json" in lines[first + 1] and "snapshot-b.json" in lines[first + 3]  # oldest first
    assert lines[first + 2].startswith("      Deadlock: thread")
    child = lines.index(f"Process 4321 (child.py --n 2; Python {original['python']}): 1 dump")
    assert "deadlock-c.json" in lines[child + 1]
    assert lines[child + 2] == "      Deadlock in the \\x1b[31mchild\\x1b[0m"
    assert "Not lockwatch dumps:" in lines and any(line.startswith("  notes.json: ") for line in lines)
    assert "svg" not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke("show", str(empty)).output == f"{empty}: no lockwatch dumps\n"


def test_render_several_dumps_into_a_directory_or_the_newest(deadlock_dump: Path, tmp_path: Path) -> None:
    older = _variant(deadlock_dump, tmp_path / "older.json", created="2020-01-01T00:00:00+00:00")
    newer = _variant(deadlock_dump, tmp_path / "newer.json", created="2030-01-01T00:00:00+00:00")
    out = tmp_path / "pictures"
    out.mkdir()
    result = invoke("render", str(older), str(newer), "-f", "dot", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["newer.dot", "older.dot"]
    result = CliRunner().invoke(cli.cli, ["render", str(newer), str(older), "-o", str(tmp_path / "one.dot")])
    assert result.exit_code == 0, result.output
    assert f"2 dumps given and one output: drawing the newest, {newer}" in result.output
    assert (tmp_path / "one.dot").read_text() == (out / "newer.dot").read_text()
    result = invoke("render", str(older), str(newer), "-f", "dot")
    assert result.output.splitlines() == [str(tmp_path / "older.dot"), str(tmp_path / "newer.dot")]


HOSTILE_NAME = "evil\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u202eexe.txt\ud800"


def test_show_prints_escape_sequences_from_a_dump_escaped(deadlock_dump: Path, tmp_path: Path) -> None:
    data = json.loads(deadlock_dump.read_text())
    data["threads"][0]["name"] = HOSTILE_NAME
    data["threads"][0]["stack"][-1]["code"] = "with lock:  # \x1b[8mhidden"
    data["locks"][0]["label"] = "lock\r\nforged line"
    hostile = tmp_path / "hostile.json"
    hostile.write_text(json.dumps(data))
    result = invoke("show", str(hostile))
    assert result.exit_code == 0, result.output
    for raw in ("\x1b", "\x07", "\u202e", "\r"):
        assert raw not in result.output
    assert "evil\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J\\u202eexe.txt\\ud800" in result.output
    assert "lock\\x0d\\x0aforged line" in result.output
    assert "\nforged line" not in result.output


@pytest.mark.parametrize("command", ["show", "render"])
def test_a_huge_integer_in_a_dump_is_one_line_status_3(command: str, deadlock_dump: Path, tmp_path: Path) -> None:
    text = deadlock_dump.read_text()
    huge = tmp_path / "huge.json"
    huge.write_text(text.replace('"pid": ', '"pid": ' + "9" * 5000 + ", \"was\": ", 1))
    line = one_error_line(invoke(command, str(huge), *(["-f", "dot"] if command == "render" else [])), 3, str(huge))
    assert "a number has more than 4300 digits" in line


def test_white_space_is_not_called_empty(tmp_path: Path) -> None:
    blank = tmp_path / "blank.json"
    blank.write_bytes(b" " * 100_000)
    one_error_line(invoke("show", str(blank)), 3, "only white space (100000 bytes)")


CRAFTED = """\
import json, sys
n = int(sys.argv[2])
thread = lambda i: {"id": i, "name": f"t{i}", "daemon": False, "holding": [f"L{i}"], "waiting_for": f"L{(i+1)%n}",
                    "waiting_seconds": 1.0, "stack": [{"file": "/a.py", "line": 1, "function": "f", "code": "x"}]}
lock = lambda i: {"id": f"L{i}", "kind": "Lock", "name": None, "site": None, "owner": i, "count": 1,
                  "waiters": [(i - 1) % n]}
json.dump({"lockwatch": 1, "kind": "snapshot", "created": "2026-11-25T15:00:00+00:00", "pid": 1, "argv": ["x"],
           "python": "3.11", "cycles": [], "order_cycles": [], "threads": [thread(i) for i in range(n)],
           "locks": [lock(i) for i in range(n)]}, open(sys.argv[1], "w"))
"""


@pytest.mark.timeout(60)
def test_render_gives_up_on_a_dump_that_takes_too_long_to_draw(tmp_path: Path) -> None:
    (tmp_path / "craft.py").write_text(CRAFTED)
    subprocess.run([sys.executable, "craft.py", "big.json", "6000"], cwd=tmp_path, check=True, timeout=TIMEOUT)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", "from lockwatch import cli; cli.RENDER_TIME_LIMIT = 0.3; "
         "cli.main(['render', '-f', 'dot', '-o', 'big.dot', 'big.json'])"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert done.stderr.startswith("lockwatch: error: big.json: drawing it took more than 0.3 s (6000 threads, 6000 locks)")
    assert len(done.stderr.splitlines()) == 1
    assert time.monotonic() - started < 10
    assert not (tmp_path / "big.dot").exists()
