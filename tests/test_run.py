"""`lockwatch run` runs programs exactly as python does (real subprocesses), with lockwatch on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lockwatch._config import DEADLOCK_EXIT_STATUS

#: Seconds any subprocess may take before it is killed and the test fails.
TIMEOUT = 60.0

LOCKWATCH_SCRIPT = Path(sys.executable).parent / "lockwatch"

# Both ways to start lockwatch: `python -m lockwatch` and the console script.
LAUNCHERS = {
    "python -m lockwatch": [sys.executable, "-m", "lockwatch"],
    "lockwatch script": [str(LOCKWATCH_SCRIPT)],
}

# Prints how the program sees itself: the things python sets up before the first line.
INTROSPECT = """\
import json, sys, threading, __main__
print(json.dumps({
    "argv": sys.argv,
    "path0": sys.path[0],
    "name": __name__,
    "file": __file__,
    "main_is_me": __main__.__dict__ is globals(),
}))
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH_")}
    env.update(extra)
    return env


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run to completion; subprocess.run kills the child if it outlives TIMEOUT."""
    try:
        return subprocess.run(
            command, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{command} did not finish within {TIMEOUT} s; stderr: {exc.stderr!r}")


def lockwatch(cwd: Path, *args: str, launcher: str = "python -m lockwatch", env: dict[str, str] | None = None):
    return run([*LAUNCHERS[launcher], *args], cwd, env)


def python(cwd: Path, *args: str, env: dict[str, str] | None = None):
    return run([sys.executable, *args], cwd, env)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def same_as_python(tmp_path: Path, program: list[str], launcher: str = "python -m lockwatch", options: tuple[str, ...] = ()):
    """Run ``program`` under python and under lockwatch; both results must be identical."""
    expected = python(tmp_path, *program)
    got = lockwatch(tmp_path, "run", *options, *program, launcher=launcher)
    assert (got.returncode, got.stdout, got.stderr) == (expected.returncode, expected.stdout, expected.stderr)
    return got


@pytest.mark.skipif(not LOCKWATCH_SCRIPT.exists(), reason="the lockwatch console script is not installed")
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_script_sees_what_python_gives_it(tmp_path: Path, launcher: str) -> None:
    write(tmp_path / "sub" / "app.py", INTROSPECT)
    # Options after the script are the script's, even ones lockwatch has too.
    got = same_as_python(tmp_path, ["sub/app.py", "a", "--b", "--interval", "nonsense", "-m", "x", "--help"], launcher)
    seen = json.loads(got.stdout)
    assert seen["argv"] == ["sub/app.py", "a", "--b", "--interval", "nonsense", "-m", "x", "--help"]
    assert seen["path0"] == str((tmp_path / "sub").resolve())
    assert seen["name"] == "__main__" and seen["main_is_me"]


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_dash_m_runs_package_main(tmp_path: Path, launcher: str) -> None:
    if not LOCKWATCH_SCRIPT.exists() and launcher == "lockwatch script":
        pytest.skip("the lockwatch console script is not installed")
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "__main__.py", INTROSPECT)
    # `-m MODULE` ends lockwatch's options, like python's: --help goes to the module.
    got = same_as_python(tmp_path, ["-m", "pkg", "run", "--help", "--", "x"], launcher)
    seen = json.loads(got.stdout)
    assert seen["argv"] == [str(tmp_path / "pkg" / "__main__.py"), "run", "--help", "--", "x"]
    assert seen["path0"] == str(tmp_path)
    assert seen["name"] == "__main__"
    assert seen["file"] == str(tmp_path / "pkg" / "__main__.py")


def test_dash_m_runs_a_plain_module_and_options_before_it_are_lockwatchs(tmp_path: Path) -> None:
    write(tmp_path / "tool.py", INTROSPECT)
    expected = python(tmp_path, "-m", "tool", "x")
    got = lockwatch(tmp_path, "run", "--interval", "0.2", "-m", "tool", "x")
    assert (got.returncode, got.stdout, got.stderr) == (expected.returncode, expected.stdout, expected.stderr)


@pytest.mark.parametrize(
    "ending",
    [
        "sys.exit(3)",
        "sys.exit(0)",
        "sys.exit(None)",
        "sys.exit('bye: something went wrong')",
        "raise SystemExit(257)",
        "print('done')",
    ],
)
def test_exit_status_like_python(tmp_path: Path, ending: str) -> None:
    write(tmp_path / "ends.py", f"import sys\nprint('start', flush=True)\n{ending}\n")
    same_as_python(tmp_path, ["ends.py"])


def test_uncaught_exception_prints_the_programs_traceback_only(tmp_path: Path) -> None:
    write(
        tmp_path / "fails.py",
        """\
        def inner():
            raise ValueError("boom")

        inner()
        """,
    )
    got = same_as_python(tmp_path, ["fails.py"])
    assert got.returncode == 1
    assert "ValueError: boom" in got.stderr
    assert "lockwatch" not in got.stderr and "runpy" not in got.stderr


def test_syntax_error_like_python(tmp_path: Path) -> None:
    write(tmp_path / "broken.py", "x = (\n")
    got = same_as_python(tmp_path, ["broken.py"])
    assert got.returncode == 1 and "SyntaxError" in got.stderr


def test_keyboard_interrupt_traceback_and_status_130(tmp_path: Path) -> None:
    write(tmp_path / "interrupted.py", "raise KeyboardInterrupt\n")
    got = lockwatch(tmp_path, "run", "interrupted.py")
    assert got.returncode == 130
    assert got.stderr.startswith("Traceback (most recent call last):")
    assert got.stderr.rstrip().endswith("KeyboardInterrupt")
    assert "lockwatch" not in got.stderr


def test_instrumentation_is_on_before_the_first_line_and_lockwatch_stays_silent(tmp_path: Path) -> None:
    write(
        tmp_path / "quiet.py",
        """\
        import queue, threading
        print(type(threading.Lock()).__module__, type(threading.RLock()).__module__)
        q = queue.Queue()
        workers = [threading.Thread(target=lambda: q.put(1)) for _ in range(4)]
        for w in workers: w.start()
        for w in workers: w.join()
        print(q.qsize())
        """,
    )
    got = lockwatch(tmp_path, "run", "quiet.py")
    assert got.returncode == 0
    assert got.stdout == "lockwatch._locks lockwatch._locks\n4\n"
    assert got.stderr == ""
    assert not (tmp_path / "lockwatch-dumps").exists()


SHOW_CONFIG = """\
import lockwatch._patch as p
c = p.active_config()
print(c.interval, c.on_deadlock, c.dump_dir, c.hang_timeout, c.order, ",".join(c.declared_order) or "-", c.signal)
"""


def test_settings_from_environment_pyproject_and_options(tmp_path: Path) -> None:
    write(tmp_path / "config.py", SHOW_CONFIG)
    write(tmp_path / "pyproject.toml", '[tool.lockwatch]\ninterval = 0.25\norder = "raise"\nhang_timeout = 9\n')
    env = clean_env(LOCKWATCH_ON_DEADLOCK="break", LOCKWATCH_DUMP_DIR="from-env", LOCKWATCH_INTERVAL="0.3")
    got = lockwatch(tmp_path, "run", "config.py", env=env)
    assert (got.returncode, got.stderr) == (0, "")
    assert got.stdout.split() == ["0.3", "break", "from-env", "9.0", "raise", "-", "True"]
    got = lockwatch(
        tmp_path, "run", "--interval", "0.7", "--on-deadlock", "exit", "--dump-dir", "opt", "--hang-timeout", "off",
        "--order", "off", "--declared-order", "a,b", "--no-signal", "config.py", env=env,
    )
    assert (got.returncode, got.stderr) == (0, "")
    assert got.stdout.split() == ["0.7", "exit", "opt", "None", "off", "a,b", "False"]


@pytest.mark.parametrize(
    "args, env, words",
    [
        (["--interval", "-1", "x.py"], {}, ["--interval", "positive"]),
        (["--interval", "soon", "x.py"], {}, ["--interval"]),
        (["--on-deadlock", "panic", "x.py"], {}, ["--on-deadlock", "panic"]),
        (["--order", "loud", "x.py"], {}, ["--order"]),
        (["--no-such-option", "x.py"], {}, ["--no-such-option"]),
        ([], {}, ["SCRIPT"]),
        (["x.py"], {"LOCKWATCH_INTERVAL": "often"}, ["LOCKWATCH_INTERVAL"]),
        (["missing.py"], {}, ["missing.py"]),
        (["-m", "no_such_module_here"], {}, ["no_such_module_here"]),
        (["-m", "os.path.nothing"], {}, ["os.path.nothing"]),
        (["--baseline", "none.json", "x.py"], {}, ["none.json"]),
        (["--write-baseline", "no/dir/b.json", "x.py"], {}, ["no/dir/b.json"]),
    ],
)
def test_bad_usage_is_one_clear_line(tmp_path: Path, args: list[str], env: dict[str, str], words: list[str]) -> None:
    write(tmp_path / "x.py", "print('ran')\n")
    got = lockwatch(tmp_path, "run", *args, env=clean_env(**env))
    assert got.returncode in (2, 3, 4), got
    assert got.stdout == ""
    lines = got.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lockwatch: error: "), got.stderr
    assert "Traceback" not in got.stderr
    for word in words:
        assert word in lines[0]


def test_write_baseline_then_check_against_it(tmp_path: Path) -> None:
    write(
        tmp_path / "orders.py",
        """\
        import threading
        outer = threading.Lock()
        inner = threading.Lock()
        def work():
            with outer:
                with inner:
                    pass
        t = threading.Thread(target=work)
        t.start(); t.join()
        """,
    )
    got = lockwatch(tmp_path, "run", "--write-baseline", "baseline.json", "orders.py")
    assert got.returncode == 0, got.stderr
    assert "baseline written to baseline.json" in got.stderr
    document = json.loads((tmp_path / "baseline.json").read_text())
    assert [(e["from"], e["to"]) for e in document["edges"]] == [("orders.py:2", "orders.py:3")]
    again = lockwatch(tmp_path, "run", "--baseline", "baseline.json", "orders.py")
    assert (again.returncode, again.stderr) == (0, "")


DEADLOCK = """\
import threading

first, second = threading.Lock(), threading.Lock()
both_hold_one = threading.Barrier(2)

def left():
    with first:
        both_hold_one.wait()
        with second:  # left blocks here
            pass

def right():
    with second:
        both_hold_one.wait()
        with first:  # right blocks here
            pass

threads = [threading.Thread(target=left, name="left"), threading.Thread(target=right, name="right")]
for t in threads:
    t.start()
print("started", flush=True)
for t in threads:
    t.join()
"""


def test_deadlock_with_on_deadlock_exit(tmp_path: Path) -> None:
    write(tmp_path / "deadlock_app.py", DEADLOCK)
    got = lockwatch(
        tmp_path, "run", "--on-deadlock", "exit", "--interval", "0.1", "--dump-dir", "D", "--order", "off",
        "deadlock_app.py",
    )
    assert got.returncode == DEADLOCK_EXIT_STATUS, got.stderr
    assert got.stdout == "started\n"
    assert "DEADLOCK" in got.stderr and '"left"' in got.stderr and '"right"' in got.stderr
    dumps = sorted((tmp_path / "D").glob("deadlock-*.json"))
    assert len(dumps) == 1
    assert str(dumps[0]) in got.stderr
    assert dumps[0].with_suffix(".dot").exists()
    if os.environ.get("PATH") and any(Path(p, "dot").exists() for p in os.environ["PATH"].split(os.pathsep)):
        assert dumps[0].with_suffix(".svg").exists()
    data = json.loads(dumps[0].read_text())
    names = {t["id"]: t["name"] for t in data["threads"]}
    assert sorted(names[step["thread"]] for step in data["cycles"][0]) == ["left", "right"]


# --- stacks and tracebacks start at the program and end at the user's line ------------------

MAIN_IN_A_DEADLOCK = """\
import threading

first, second = threading.Lock(), threading.Lock()
both_hold_one = threading.Barrier(2)

def right():
    with second:
        both_hold_one.wait()
        with first:
            pass

def main():
    worker = threading.Thread(target=right, name="right", daemon=True)
    worker.start()
    with first:
        both_hold_one.wait()
        with second:
            pass

main()
"""


def _plumbing(frame: dict) -> bool:
    path = frame["file"].replace("\\\\", "/")
    return "/lockwatch/" in path or "/click/" in path or path.endswith(("/runpy.py", "bin/lockwatch"))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
@pytest.mark.parametrize("how", ["script", "module"])
def test_report_stacks_start_at_the_programs_first_line(tmp_path: Path, launcher: str, how: str) -> None:
    (tmp_path / "app.py").write_text(MAIN_IN_A_DEADLOCK)
    target = ["app.py"] if how == "script" else ["-m", "app"]
    done = lockwatch(tmp_path, "run", "--on-deadlock", "exit", "--interval", "0.1", "--dump-dir", "D", *target,
                     launcher=launcher)
    assert done.returncode == DEADLOCK_EXIT_STATUS, done.stderr
    [dump] = [json.loads(p.read_text()) for p in (tmp_path / "D").glob("deadlock-*.json")]
    [main] = [t for t in dump["threads"] if t["name"] == "MainThread"]
    assert main["stack"][0]["file"].endswith("app.py") and main["stack"][0]["function"] == "<module>", main["stack"]
    assert main["stack"][-1]["code"] == "with second:"
    assert not [f for t in dump["threads"] for f in t["stack"] if _plumbing(f)]
    assert "cli.py" not in done.stderr and "click" not in done.stderr and "_run.py" not in done.stderr


SELF_DEADLOCK = """\
import threading

def relock(lock):
    lock.acquire()
    lock.acquire()  # SELF

def main():
    {where}

main()
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["main thread", "thread"])
def test_deadlock_error_tracebacks_end_at_the_users_line(tmp_path: Path, where: str) -> None:
    body = (
        "relock(threading.Lock())" if where == "main thread"
        else "t = threading.Thread(target=relock, args=(threading.Lock(),), name='w'); t.start(); t.join()"
    )
    (tmp_path / "app.py").write_text(SELF_DEADLOCK.format(where=body))
    done = lockwatch(tmp_path, "run", "--on-deadlock", "break", "--interval", "0.1", "--dump-dir", "D", "app.py")
    assert done.returncode == (1 if where == "main thread" else 0), done.stderr
    traceback = done.stderr[done.stderr.index("Traceback"):]
    assert "lockwatch.DeadlockError" in traceback
    lines = traceback.splitlines()
    last_frame = max(i for i, line in enumerate(lines) if line.lstrip().startswith("File "))
    assert 'app.py", line 5, in relock' in lines[last_frame], traceback
    assert "_locks.py" not in traceback and "_run.py" not in traceback


@pytest.mark.timeout(60)
@pytest.mark.parametrize("dump_dir", ["afile", "afile/below"])
def test_a_dump_dir_that_is_a_file_is_called_a_file(tmp_path: Path, dump_dir: str) -> None:
    (tmp_path / "app.py").write_text(MAIN_IN_A_DEADLOCK)
    (tmp_path / "afile").write_text("not a directory")
    done = lockwatch(tmp_path, "run", "--on-deadlock", "exit", "--interval", "0.1", "--dump-dir", dump_dir, "app.py")
    assert done.returncode == DEADLOCK_EXIT_STATUS, done.stderr
    assert f"{tmp_path / 'afile'} is a file" in done.stderr
    assert "File exists" not in done.stderr and "Not a directory" not in done.stderr


INVERSION = """\
import glob, threading, time
a_lock, b_lock = threading.Lock(), threading.Lock()

def a_then_b():
    with a_lock:
        with b_lock:
            pass

def b_then_a():
    with b_lock:
        with a_lock:
            pass

def main():
    a_then_b()
    worker = threading.Thread(target=b_then_a, name="worker")
    worker.start()
    worker.join()
    # lockwatch presents the finding from its own thread: stay in main() until it has.
    deadline = time.monotonic() + 30
    while not glob.glob("D/lock-order-*.json") and time.monotonic() < deadline:
        time.sleep(0.01)
    print("done")

main()
"""


@pytest.mark.timeout(60)
def test_a_lock_order_report_is_said_once_and_names_where_other_threads_are(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(INVERSION)
    done = lockwatch(tmp_path, "run", "--dump-dir", "D", "app.py")
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
    assert done.stderr.count("POTENTIAL DEADLOCK (lock order)") == 1
    assert "LockOrderWarning" not in done.stderr  # the report was printed: no second account of it
    # The main thread waits in join(): where it is in the program is the line that called it.
    assert '"MainThread" (id ' in done.stderr and ") at app.py:22 in main" in done.stderr
    assert "threading.py" not in done.stderr


@pytest.mark.timeout(60)
def test_every_dump_message_gives_absolute_paths_in_the_same_words(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(MAIN_IN_A_DEADLOCK)  # an inversion first, then the deadlock
    # break, not exit: the process ends normally, once everything found has been presented.
    done = lockwatch(tmp_path, "run", "--on-deadlock", "break", "--interval", "0.1", "--dump-dir", "D", "app.py")
    messages = [line for line in done.stderr.splitlines() if line.startswith("lockwatch: ") and "written to" in line]
    kinds = sorted(line.split()[1] for line in messages)
    assert kinds == ["deadlock", "lock-order"], done.stderr
    for line in messages:
        paths = line.split(" dump written to ", 1)[1].split(", ")
        assert all(os.path.isabs(path) and path.startswith(str(tmp_path / "D")) for path in paths), line


@pytest.mark.timeout(60)
def test_lock_order_dumps_keep_stacks_from_the_programs_first_line(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(INVERSION)
    done = lockwatch(tmp_path, "run", "--dump-dir", "D", "app.py")
    assert done.returncode == 0, done.stderr
    [dump] = [json.loads(p.read_text()) for p in (tmp_path / "D").glob("lock-order-*.json")]
    stacks = [edge["stack"] for cycle in dump["order_cycles"] for edge in cycle]
    assert [s[0]["function"] for s in stacks] == ["<module>", "b_then_a"]  # the script, the thread's target
    assert not [f for s in stacks for f in s if _plumbing(f) or f["file"].endswith("threading.py")]
