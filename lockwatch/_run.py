"""Run a script or module the way ``python SCRIPT`` / ``python -m MODULE`` does, and say how it ended."""

from __future__ import annotations

import builtins
import importlib.machinery
import importlib.util
import io
import os
import runpy
import sys
import threading
import types
import warnings
from typing import Any

import click

from lockwatch._errors import LockOrderWarning, ProgramNotFound
from lockwatch._model import is_lockwatch_file

#: Exit status of a program ended by Ctrl-C (KeyboardInterrupt), as a shell reports ``python``'s.
INTERRUPTED_EXIT_STATUS = 130

# Frames in these files and folders are lockwatch's, click's or runpy's plumbing, never the
# program's: they are cut from the front of a traceback, as python's start-up never shows.
_PLUMBING_FILES = {os.path.normcase(os.path.abspath(runpy.__file__))}
_PLUMBING_DIRS = {
    os.path.normcase(os.path.dirname(os.path.abspath(__file__))),
    os.path.normcase(os.path.dirname(os.path.abspath(click.__file__))),
}


def check_script(path: str) -> None:
    """Raise ProgramNotFound unless ``path`` is something ``python PATH`` can run."""
    if not os.path.exists(path):
        raise ProgramNotFound(f"cannot open file {path!r}: no such file")
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "__main__.py")):
        raise ProgramNotFound(f"cannot find a '__main__' module in directory {path!r}")
    if not os.access(path, os.R_OK):
        raise ProgramNotFound(f"cannot open file {path!r}: permission denied")


def run_script(path: str, args: list[str]) -> None:
    """Run ``path`` as ``__main__`` with ``sys.argv == [path, *args]`` (exceptions propagate)."""
    check_script(path)
    sys.argv = [path, *args]
    absolute = os.path.abspath(path)
    if os.path.isfile(path):
        # python puts the directory of the script (symbolic links resolved) first on sys.path,
        # where this process has lockwatch's own entry (its script's directory, or the cwd).
        _set_path0(os.path.dirname(os.path.realpath(path)))
        if not path.endswith((".pyc", ".zip", ".pyz")):
            _exec_source_file(absolute)
            return
    else:
        # A directory with __main__.py: runpy puts it on sys.path itself.
        _drop_path0()
    runpy.run_path(absolute, run_name="__main__")


def _exec_source_file(absolute: str) -> None:
    """Execute a source file as a new, lasting ``__main__`` module, as the interpreter does.

    Not runpy.run_path: it would set sys.argv[0] to the absolute path and put
    the program's __main__ in sys.modules only while its main code runs
    (threads still running afterwards, atexit handlers and pickle need it).
    """
    with io.open_code(absolute) as handle:
        source = handle.read()
    # dont_inherit: lockwatch's own `from __future__` imports must not leak into the program.
    code = compile(source, absolute, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__file__ = absolute
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", absolute)
    main.__spec__ = None
    main.__package__ = None
    main.__cached__ = None  # type: ignore[attr-defined]
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def run_module(name: str, args: list[str]) -> None:
    """Run module ``name`` as ``__main__`` like ``python -m name args`` (exceptions propagate)."""
    # python -m: argv[0] is "-m" while the module is looked for, then its file; the cwd is first on sys.path.
    sys.argv = ["-m", *args]
    _set_path0(os.getcwd())
    if not name or name.startswith("."):
        raise ProgramNotFound(f"relative module names are not supported: {name!r}")
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError as exc:
        # Only "a parent package is missing" means not found; a failing import
        # inside the package's __init__ is the program's own error.
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ProgramNotFound(f"no module named {name!r}") from None
        raise
    if spec is None:
        raise ProgramNotFound(f"no module named {name!r}")
    if spec.submodule_search_locations is not None:
        main_name = name + ".__main__"
        if importlib.util.find_spec(main_name) is None:
            raise ProgramNotFound(f"no module named {main_name!r}: {name!r} is a package and cannot be run directly")
    runpy.run_module(name, run_name="__main__", alter_sys=True)


def _set_path0(entry: str) -> None:
    if sys.path:
        sys.path[0] = entry
    else:
        sys.path.insert(0, entry)


def _drop_path0() -> None:
    if sys.path:
        del sys.path[0]


def exit_status(exc: SystemExit) -> int:
    """The status python exits with for an uncaught SystemExit (a non-int code is printed, status 1)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return int(code)
    try:
        sys.stderr.write(f"{code}\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - stderr closed: python would say nothing either
        pass
    return 1


def program_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` without lockwatch's frames: the program's first line first, the user's line last.

    Leading frames of lockwatch, click and runpy are start-up plumbing; trailing
    frames in lockwatch's modules are a lock's insides (a DeadlockError is raised
    inside ``acquire``), so the traceback ends at the user's ``with lock:``.
    """
    while tb is not None and _is_plumbing(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return None if tb is None else _user_tail(tb)


def _entries(tb: types.TracebackType | None) -> list[types.TracebackType]:
    found = []
    while tb is not None:
        found.append(tb)
        tb = tb.tb_next
    return found


def _thread_excepthook(args: Any) -> None:
    """threading's own hook, for a traceback that ends at the user's line, not inside a lock."""
    if args.exc_traceback is not None:
        args = type(args)((args.exc_type, args.exc_value, _user_tail(args.exc_traceback), args.thread))
    threading.__excepthook__(args)


def _user_tail(tb: types.TracebackType) -> types.TracebackType:
    """``tb`` ending at its last frame outside lockwatch's modules (all of it if there is none)."""
    last_user = None
    for entry in _entries(tb):
        if not is_lockwatch_file(entry.tb_frame.f_code.co_filename):
            last_user = entry
    if last_user is not None:
        last_user.tb_next = None
    return tb


def _is_plumbing(filename: str) -> bool:
    if filename.startswith("<frozen "):  # importlib's and runpy's frozen frames
        return True
    normal = os.path.normcase(os.path.abspath(filename))
    return normal in _PLUMBING_FILES or os.path.dirname(normal) in _PLUMBING_DIRS


def report_uncaught(exc: BaseException) -> None:
    """Print an uncaught exception as python does (through sys.excepthook), without lockwatch's frames."""
    tb = program_traceback(exc.__traceback__)
    exc.__traceback__ = tb
    try:
        sys.excepthook(type(exc), exc, tb)
    except Exception:  # noqa: BLE001 - a broken excepthook
        # A broken excepthook: python falls back to the default printer too.
        sys.__excepthook__(type(exc), exc, tb)
    try:
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - stderr closed: nothing left to say it on
        pass


def run_program(script: str | None, module: str | None, args: list[str]) -> int:
    """Run the program and return the status python would exit with.

    ProgramNotFound propagates (the caller presents it); everything the program
    itself raises is handled here the way the interpreter handles it.
    """
    if threading.excepthook is threading.__excepthook__:
        threading.excepthook = _thread_excepthook  # the program may set its own: then that one is used
    # lockwatch run prints every lock-order report in full: the LockOrderWarning that goes
    # with it would say it a second time. Appended, so any filter of the program's or of
    # PYTHONWARNINGS (error::lockwatch.LockOrderWarning) still comes first.
    warnings.filterwarnings("ignore", category=LockOrderWarning, append=True)
    try:
        if module is not None:
            run_module(module, args)
        else:
            assert script is not None
            run_script(script, args)
    except ProgramNotFound:
        raise
    except SystemExit as exc:
        return exit_status(exc)
    except KeyboardInterrupt as exc:
        report_uncaught(exc)
        return INTERRUPTED_EXIT_STATUS
    except BaseException as exc:  # noqa: BLE001 - the program's own error, reported as python does
        report_uncaught(exc)
        return 1
    return 0


def join_program_threads() -> None:
    """Wait for the program's non-daemon threads, as the interpreter does before it exits."""
    current = threading.current_thread()
    while True:
        pending = [t for t in threading.enumerate() if t is not current and not t.daemon and t.is_alive()]
        pending = [t for t in pending if t is not threading.main_thread()]
        if not pending:
            return
        for thread in pending:
            thread.join()
