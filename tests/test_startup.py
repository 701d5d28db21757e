"""The LOCKWATCH=1 start-up hook (lockwatch.pth) and watching child processes, on real interpreters."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import lockwatch
from lockwatch import _config, _startup
from lockwatch._config import Config

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60

DEADLOCK = """\
import os
import threading

first = threading.Lock()     # made on the program's first lines: watched only if patched before them
second = threading.Lock()
both_hold_one = threading.Barrier(2)


def left():
    with first:
        both_hold_one.wait()
        with second:
            pass


def right():
    with second:
        both_hold_one.wait()
        with first:
            pass


def deadlock():
    print("pid", os.getpid(), flush=True)
    threads = [threading.Thread(target=left), threading.Thread(target=right)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any LOCKWATCH variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}
    env.update(extra)
    return env


def python(args: list[str], env: dict[str, str], cwd: Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def installed_pth() -> Path:
    for directory in [*site.getsitepackages(), site.getusersitepackages()]:
        candidate = Path(directory) / _startup.PTH_NAME
        if candidate.is_file():
            return candidate
    raise AssertionError(
        f"{_startup.PTH_NAME} is not installed in this environment's site-packages: "
        "reinstall lockwatch (pip install -e '.[test]')"
    )


def dumps(directory: Path, kind: str = "deadlock") -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(directory.glob(f"{kind}-*.json"))]


# --- the hook ------------------------------------------------------------------------------------


def test_the_installed_pth_is_the_repositorys() -> None:
    assert installed_pth().read_text() == (REPO / _startup.PTH_NAME).read_text()


@pytest.mark.timeout(90)
def test_lockwatch_1_python_m_pkg_deadlocking_writes_a_dump_without_lockwatch_run(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(DEADLOCK + "\ndeadlock()\n")
    env = clean_env(LOCKWATCH="1", LOCKWATCH_ON_DEADLOCK="exit", LOCKWATCH_INTERVAL="0.1", LOCKWATCH_DUMP_DIR="dumps")
    result = python(["-m", "pkg"], env, tmp_path)
    assert result.returncode == _config.DEADLOCK_EXIT_STATUS, result.stderr
    pid = int(result.stdout.split()[1])
    [dump] = dumps(tmp_path / "dumps")
    assert dump["pid"] == pid
    locks = {lock["id"]: lock for lock in dump["locks"]}
    in_cycle = {locks[step["lock"]]["site"]["line"] for step in dump["cycles"][0]}
    assert in_cycle == {4, 5}  # the module's first lines: patched before them
    assert "DEADLOCK" in result.stderr


@pytest.mark.timeout(60)
def test_the_program_is_patched_before_its_first_line(tmp_path: Path) -> None:
    script = tmp_path / "first_line.py"
    script.write_text(
        "import lockwatch, threading, sys\n"
        "print(lockwatch.is_patched(), type(threading.Lock()).__module__, sys.argv[1:])\n"
    )
    result = python([str(script), "a", "--b"], clean_env(LOCKWATCH="1"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(maxsplit=2) == ["True", "lockwatch._locks", "['a', '--b']\n"]
    assert result.stderr == ""


@pytest.mark.timeout(60)
def test_unset_costs_no_import_and_off_patches_nothing(tmp_path: Path) -> None:
    code = "import sys; print(sorted(m for m in sys.modules if m.startswith('lockwatch')))"
    for env in (clean_env(), clean_env(LOCKWATCH="")):
        result = python(["-c", code], env, tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (0, "[]\n", "")
    code = "import lockwatch; print(lockwatch.is_patched())"
    for value in ("0", "off", "no", "false"):
        result = python(["-c", code], clean_env(LOCKWATCH=value), tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (0, "False\n", ""), value


@pytest.mark.timeout(60)
def test_hook_cost_with_the_variable_unset_is_under_a_millisecond(tmp_path: Path) -> None:
    """What site.py does with lockwatch.pth at every start-up, timed in a fresh interpreter."""
    code = textwrap.dedent(
        f"""
        import site, sys, time
        directory = {str(installed_pth().parent)!r}
        times = []
        for _ in range(300):
            start = time.perf_counter()
            site.addpackage(directory, {_startup.PTH_NAME!r}, set())
            times.append(time.perf_counter() - start)
        times.sort()
        assert not any(name.startswith("lockwatch") for name in sys.modules)
        print(times[len(times) // 2])
        """
    )
    result = python(["-c", code], clean_env(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 0.001


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("env", "files", "expected"),
    [
        ({"LOCKWATCH": "maybe"}, {}, "lockwatch: LOCKWATCH must be 1 (on) or 0 (off), not 'maybe'; the program runs unwatched"),
        (
            {"LOCKWATCH": "1", "LOCKWATCH_INTERVAL": "-3"},
            {},
            "lockwatch: interval must be a positive number (from environment variable LOCKWATCH_INTERVAL), "
            "not '-3'; the program runs unwatched",
        ),
        ({"LOCKWATCH": "1"}, {"pyproject.toml": "[tool.lockwatch]\norder = \n"}, "lockwatch: *pyproject.toml is not valid TOML*"),
        ({"LOCKWATCH": "1"}, {"pyproject.toml": "[tool.lockwatch]\norder = 'sometimes'\n"}, "lockwatch: order must be one of*"),
        (
            {"LOCKWATCH": "1", "PYTHONPATH": "broken"},
            {"broken/lockwatch/__init__.py": "raise RuntimeError('half installed')\n"},
            "lockwatch: LOCKWATCH is set but lockwatch cannot be imported (RuntimeError('half installed')); "
            "the program runs unwatched",
        ),
    ],
    ids=["bad-switch", "bad-setting", "bad-toml", "bad-table", "unimportable"],
)
def test_a_broken_configuration_says_one_line_and_the_program_runs(
    tmp_path: Path, env: dict[str, str], files: dict[str, str], expected: str
) -> None:
    import fnmatch

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    code = "import sys; print('ran', 'lockwatch._patch' in sys.modules and __import__('lockwatch').is_patched())"
    result = python(["-c", code], clean_env(**env), tmp_path)
    assert (result.returncode, result.stdout) == (0, "ran False\n"), result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert fnmatch.fnmatchcase(lines[0], expected), lines[0]


@pytest.mark.timeout(60)
def test_the_hook_patches_once_even_if_run_again(tmp_path: Path) -> None:
    # site.py reads a .pth twice when two site directories are one (a venv's lib and lib64).
    code = "from lockwatch import _patch, _startup; _startup.run(); _startup.run(); print(len(_patch._active))"
    result = python(["-c", code], clean_env(LOCKWATCH="1"), tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")


# --- installing the hook ---------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_a_regular_build_puts_the_pth_at_the_root_of_the_wheel_tree(tmp_path: Path) -> None:
    pytest.importorskip("setuptools", reason="building needs setuptools (a venv of Python 3.12+ has none)")
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=80,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / _startup.PTH_NAME).read_text() == (REPO / _startup.PTH_NAME).read_text()
    assert (tmp_path / "lockwatch" / "_startup.py").is_file()


def test_an_editable_wheel_gets_the_pth_and_its_record_line(tmp_path: Path) -> None:
    import base64
    import hashlib
    import importlib.util
    import zipfile

    pytest.importorskip("setuptools", reason="setup.py needs setuptools (a venv of Python 3.12+ has none)")
    spec = importlib.util.spec_from_file_location("lockwatch_setup", REPO / "setup.py")
    assert spec is not None and spec.loader is not None
    setup_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_module)  # not __main__: defines the build hooks, builds nothing
    wheel = tmp_path / "lockwatch-0.1.0-0.editable-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("__editable__.lockwatch-0.1.0.pth", "import finder\n")
        zf.writestr("lockwatch-0.1.0.dist-info/METADATA", "Name: lockwatch\n")
        zf.writestr("lockwatch-0.1.0.dist-info/RECORD", "__editable__.lockwatch-0.1.0.pth,sha256=x,14\n"
                    "lockwatch-0.1.0.dist-info/METADATA,sha256=y,16\nlockwatch-0.1.0.dist-info/RECORD,,\n")
    data = (REPO / _startup.PTH_NAME).read_bytes()
    for _ in range(2):  # the second time changes nothing
        setup_module.add_to_wheel(str(wheel), _startup.PTH_NAME, data)
    with zipfile.ZipFile(wheel) as zf:
        assert zf.testzip() is None
        assert zf.read(_startup.PTH_NAME) == data
        names = zf.namelist()
        record = zf.read("lockwatch-0.1.0.dist-info/RECORD").decode().splitlines()
    assert names.count(_startup.PTH_NAME) == 1
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert record[-2:] == [f"{_startup.PTH_NAME},sha256={digest},{len(data)}", "lockwatch-0.1.0.dist-info/RECORD,,"]


# --- children ------------------------------------------------------------------------------------


def test_child_environment_carries_every_setting() -> None:
    assert {f"LOCKWATCH_{name.upper()}" for name in _config.FIELDS} <= set(_startup.EXPORTED)
    config = Config(
        interval=0.125, dump_dir="rel/dumps", on_deadlock="exit", hang_timeout=7.5, order="raise",
        declared_order=("a", "b"), baseline="base.json", signal=False, children=True,
    )
    environ = {k: v for k, v in _startup.child_environment(config).items() if v is not None}
    assert environ["LOCKWATCH"] == "1"
    rebuilt = _config.resolve(environ=environ, pyproject=False)
    assert rebuilt == config.replace(dump_dir=os.path.abspath("rel/dumps"), baseline=os.path.abspath("base.json"))
    # A callable reaction stays in the parent: children report; "off" and defaults survive the trip.
    plain = Config(on_deadlock=print, children=True)
    environ = {k: v for k, v in _startup.child_environment(plain).items() if v is not None}
    assert _config.resolve(environ=environ, pyproject=False) == plain.replace(
        on_deadlock="report", dump_dir=os.path.abspath(plain.dump_dir)
    )


def test_patch_children_sets_the_environment_and_the_last_stop_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in _startup.EXPORTED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCKWATCH_ORDER", "off")  # already set by the user: restored as it was
    before = dict(os.environ)
    outer = lockwatch.patch(children=True, dump_dir=str(tmp_path / "d"), interval=5, on_deadlock="report")
    try:
        assert os.environ["LOCKWATCH"] == "1"
        assert os.environ["LOCKWATCH_DUMP_DIR"] == str(tmp_path / "d")
        assert os.environ["LOCKWATCH_CHILDREN"] == "1"
        inner = lockwatch.patch(children=False, interval=5, on_deadlock="report")
        assert dict(os.environ) == before  # the innermost patch's settings are in force: no children
        inner.stop()
        assert os.environ["LOCKWATCH"] == "1"
    finally:
        outer.stop()
    assert dict(os.environ) == before


@pytest.mark.timeout(90)
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_deadlock_in_a_multiprocessing_child_is_reported_with_its_pid(tmp_path: Path, method: str) -> None:
    (tmp_path / "work.py").write_text(DEADLOCK)
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            f"""
            import multiprocessing, os
            import work

            if __name__ == "__main__":
                print("parent", os.getpid(), flush=True)
                child = multiprocessing.get_context({method!r}).Process(target=work.deadlock)
                child.start()
                child.join(50)
                print("child", child.pid, child.exitcode, flush=True)
            """
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "lockwatch", "run", "--children", "--on-deadlock", "exit", "--interval", "0.1",
         "--dump-dir", "dumps", str(tmp_path / "app.py")],
        env=clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    parent = int(lines["parent"])
    child_pid, exit_code = map(int, lines["child"].split())
    assert int(lines["pid"]) == child_pid != parent
    assert exit_code == _config.DEADLOCK_EXIT_STATUS
    [dump] = dumps(tmp_path / "dumps")
    assert dump["pid"] == child_pid
    assert dump["cycles"]
    assert [p.name for p in (tmp_path / "dumps").glob("deadlock-*.json")][0].split("-")[3] == str(child_pid)


@pytest.mark.timeout(60)
def test_python_subprocesses_are_watched_only_with_children(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "parent.py").write_text(
        textwrap.dedent(
            """
            import subprocess, sys
            code = "import os, sys; print('lockwatch._patch' in sys.modules and __import__('lockwatch').is_patched(), "\\
                   "os.environ.get('LOCKWATCH_DUMP_DIR'))"
            out = subprocess.run([sys.executable, "-c", code], cwd="elsewhere", capture_output=True, text=True, timeout=30)
            print(out.stdout.strip() + out.stderr.strip())
            """
        )
    )
    base = [sys.executable, "-m", "lockwatch", "run", "--dump-dir", "rel-dumps"]
    with_children = subprocess.run([*base, "--children", "parent.py"], env=clean_env(), cwd=tmp_path,
                                   capture_output=True, text=True, timeout=TIMEOUT)
    assert with_children.stdout == f"True {tmp_path / 'rel-dumps'}\n", with_children.stderr
    without = subprocess.run([*base, "parent.py"], env=clean_env(), cwd=tmp_path,
                             capture_output=True, text=True, timeout=TIMEOUT)
    assert without.stdout == "False None\n", without.stderr
