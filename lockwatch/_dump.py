"""Write reports as dump files (JSON now, DOT and SVG drawn beside it by a child process) and read dumps back."""

from __future__ import annotations

import atexit
import datetime
import errno
import json
import os
import shutil
import signal
import stat
import sys
import time
from _thread import allocate_lock as _allocate_raw_lock
from typing import Any

from lockwatch._errors import DumpError
from lockwatch._model import Report

# Everything write_report() and the drawing bookkeeping use is imported here, when lockwatch
# is imported: at report time a deadlocked thread may hold the import lock or logging's lock,
# so nothing may be imported then, no instrumented lock taken (the subprocess module makes
# threading.Lock()s) and no picture drawn in this process (see _draw.py).

#: Largest counter tried for one (kind, second, pid) before giving up on a unique name.
_MAX_COUNTER = 100_000

#: Seconds Graphviz's ``dot`` may take in the drawing process (it stops ``dot`` itself then).
DRAW_TIMEOUT = 20.0

#: Seconds a drawing process may live before lockwatch kills it (and its ``dot``):
#: its own limit, plus time to start Python and write the files.
DRAW_KILL_AFTER = DRAW_TIMEOUT + 10.0

#: Seconds interpreter exit waits for pictures still being drawn (then they are killed).
EXIT_WAIT = 5.0

# Files of a dump: readable by others only where the umask says so, and never in a shared directory.
_OWN_DIRECTORY_MODE = 0o666  # the umask applies
_SHARED_DIRECTORY_MODE = 0o600

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

# The drawing child runs this Python (same interpreter, isolated from the program's PYTHON*
# variables and user site), finding this very lockwatch first and anything else the parent had last.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DRAW_CODE = (
    "import sys; sys.path[:0] = {front!r}; sys.path.extend({back!r}); "
    "from lockwatch._draw import main; sys.exit(main(sys.argv[1:]))"
)


class _Drawing:
    """A drawing child process: what it draws and when it must be done."""

    __slots__ = ("pid", "json_path", "pictures", "deadline", "started")

    def __init__(self, pid: int, json_path: str, pictures: list[str], started: float) -> None:
        self.pid = pid
        self.json_path = json_path
        self.pictures = pictures
        self.started = started
        self.deadline = started + DRAW_KILL_AFTER


# Children still drawing, by pid. The raw lock makes one thread at a time wait for or kill
# them (a child reaped by one thread must never be signalled by another: its pid may be reused);
# reap_drawings() only ever tries it, so it never blocks.
_drawings: dict[int, _Drawing] = {}
_reaping = _allocate_raw_lock()
# Things said once per process.
_said = {"no-python": False}


def dump_json(report: Report) -> str:
    """The report as dump format v1 text: pretty-printed, keys sorted, so stable across runs."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_report(report: Report, dump_dir: str | os.PathLike[str]) -> list[str]:
    """Write ``<kind>-<YYYYmmdd-HHMMSS>-<pid>-<n>.json`` now; start drawing its ``.dot`` (+ ``.svg``).

    Returns the JSON's path first, complete on return, then the paths of the pictures
    that a child process is drawing (``.dot``, and ``.svg`` when Graphviz's ``dot`` is on
    PATH): they appear within :data:`DRAW_KILL_AFTER` seconds, or a one-line note on stderr
    says why not (see :func:`describe`). Nothing is imported, no instrumented lock is taken
    and nothing waits here. Every file appears complete or not at all. Raises ``OSError``
    naming the directory or file when the JSON cannot be written.
    """
    reap_drawings()
    directory = os.fspath(dump_dir)
    try:
        os.makedirs(directory, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        # makedirs says "File exists" for a file in the way: say what is wrong instead.
        blocker = directory
        while blocker and not os.path.exists(blocker):
            blocker = os.path.dirname(blocker)
        raise OSError(exc.errno, f"the dump directory {directory} cannot be made: {blocker} is a file", directory) from None
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the dump directory {directory}: {exc.strerror}", directory) from None
    mode = file_mode(directory)
    stem = f"{_safe_kind(report.kind)}-{_stamp(report.created)}-{report.pid}"
    json_path = _publish_unique(directory, stem, dump_json(report).encode("utf-8"), mode)
    return [json_path, *_start_drawing(json_path)]


def describe(paths: list[str]) -> str:
    """How to announce what write_report returned: ``X.json (picture being drawn: X.dot, X.svg)``."""
    if len(paths) <= 1:
        return ", ".join(paths)
    return f"{paths[0]} (picture being drawn: {', '.join(paths[1:])})"


def file_mode(directory: str) -> int:
    """The mode new dump files get in ``directory``: 0600 if it is shared, else 0666 less the umask.

    Shared means writable by everyone, sticky (like /tmp), or owned by another user:
    others could read what a dump holds (argv, names built from program data).
    """
    try:
        info = os.stat(directory)
    except OSError:
        return _SHARED_DIRECTORY_MODE
    shared = info.st_mode & (stat.S_IWOTH | stat.S_ISVTX) or (hasattr(os, "geteuid") and info.st_uid != os.geteuid())
    return _SHARED_DIRECTORY_MODE if shared else _OWN_DIRECTORY_MODE


# --- drawing in a child process ------------------------------------------------------------


def _start_drawing(json_path: str) -> list[str]:
    """Start a child process drawing the pictures of ``json_path``; the paths it will write."""
    if not hasattr(os, "posix_spawn") or not _is_python(sys.executable):
        # No way to draw off this process here (an embedding program's sys.executable is not
        # Python, e.g. uwsgi): `lockwatch render` draws it later.
        if not _said["no-python"]:
            _said["no-python"] = True
            _note(f"pictures are not drawn in this process (no Python interpreter to draw them with: "
                  f"sys.executable is {sys.executable!r}); draw a dump with `lockwatch render DUMP.json`")
        return []
    base = json_path[: -len(".json")]
    pictures = [base + ".dot"]
    if shutil.which("dot") is not None:
        pictures.append(base + ".svg")
    back = [os.path.abspath(entry) for entry in sys.path if isinstance(entry, str) and entry]
    code = _DRAW_CODE.format(front=[_PACKAGE_PARENT], back=back)
    argv = [sys.executable, "-I", "-c", code, json_path, repr(DRAW_TIMEOUT), "svg" if len(pictures) > 1 else "dot"]
    # The child must not be patched by the LOCKWATCH=1 start-up hook nor read LOCKWATCH_* settings.
    env = {key: value for key, value in os.environ.items() if key != "LOCKWATCH" and not key.startswith("LOCKWATCH_")}
    try:
        pid = os.posix_spawn(
            sys.executable,
            argv,
            env,
            # stdin from /dev/null, stdout to our stderr: the program's own stdout stays its own.
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, 2, 1)],
            setpgroup=0,  # its own process group: killing it kills its dot too, and Ctrl-C spares it
            setsigmask=(),
            # A program that ignores SIGCHLD would make the child's own wait for dot fail.
            setsigdef=(signal.SIGCHLD,) if hasattr(signal, "SIGCHLD") else (),
        )
    except OSError as exc:
        _note(f"cannot start drawing the picture of {json_path} ({exc.strerror or exc}); "
              f"draw it with `lockwatch render {json_path}`")
        return []
    _drawings[pid] = _Drawing(pid, json_path, pictures, time.monotonic())
    return pictures


def _is_python(executable: str | None) -> bool:
    name = os.path.basename(executable or "").lower()
    return name.startswith(("python", "pypy"))


def reap_drawings() -> list[str]:
    """Collect finished drawing processes; kill (with a one-line note) those past their time.

    Never blocks: call it on every watchdog look. Returns the notes said (also on stderr).
    """
    if not _drawings or not _reaping.acquire(False):
        return []
    try:
        return _reap(time.monotonic())
    finally:
        _reaping.release()


def wait_drawings(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the pictures being drawn; kill what is left, with a note.

    For the exit paths (``on_deadlock="exit"``, interpreter exit), so that the pictures
    announced exist when the process is gone. True if every drawing finished in time.
    """
    deadline = time.monotonic() + max(0.0, timeout)
    finished = True
    while _drawings:
        now = time.monotonic()
        if _reaping.acquire(True, 0.05):
            try:
                finished = not _reap(now, kill_all=now >= deadline) and finished
            finally:
                _reaping.release()
        elif now >= deadline + 1.0:
            return False  # another thread is reaping and does not let go: stop waiting
        if _drawings:
            time.sleep(0.02)
    return finished


def drawings_in_progress() -> int:
    """How many drawing processes are still running."""
    return len(_drawings)


def drawings_done() -> bool:
    """Whether no picture is still being drawn (the watchdog stays up to collect them until then)."""
    return not _drawings


def _reap(now: float, kill_all: bool = False) -> list[str]:
    notes = []
    for pid, drawing in list(_drawings.items()):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored, or the program's os.wait())
            done = pid
        if done == pid:
            _drawings.pop(pid, None)
            continue
        if kill_all or now >= drawing.deadline:
            _kill(pid)
            _drawings.pop(pid, None)
            pictures = ", ".join(os.path.basename(p) for p in drawing.pictures)
            note = (f"gave up drawing {pictures} after {now - drawing.started:.0f} s (killed); the dump "
                    f"{drawing.json_path} is complete: draw it with `lockwatch render {drawing.json_path}`")
            _note(note)
            notes.append(note)
    return notes


def _kill(pid: int) -> None:
    """Kill a drawing child and its ``dot`` (its process group), then collect it."""
    for kill, target in ((getattr(os, "killpg", None), pid), (os.kill, pid)):
        if kill is None:
            continue
        try:
            kill(target, 9)  # SIGKILL (signal.SIGKILL; the signal module is not needed for it)
            break
        except OSError:
            continue
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _note(message: str) -> None:
    try:
        sys.stderr.write(f"lockwatch: {message}\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - stderr closed or broken: a note is not worth failing the program
        pass


def _forget_drawings_in_child() -> None:
    """A forked child did not start its parent's drawings and must never signal them."""
    global _reaping
    _drawings.clear()
    _reaping = _allocate_raw_lock()


def _wait_at_exit() -> None:
    if _drawings:
        wait_drawings(EXIT_WAIT)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_drawings_in_child)
atexit.register(_wait_at_exit)


# --- reading ---------------------------------------------------------------------------------


def load_dump(path: str | os.PathLike[str]) -> Report:
    """Read a dump file; raises :class:`DumpError` with one line saying what is wrong."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise DumpError(f"{name}: no such file")
    if os.path.isdir(name):
        raise DumpError(f"{name}: is a directory, not a dump file")
    try:
        with open(name, "rb") as file:
            raw = file.read()
    except OSError as exc:
        raise DumpError(f"{name}: cannot read it: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DumpError(f"{name}: not a lockwatch dump (not UTF-8 text: bad byte at offset {exc.start})") from None
    if not text.strip():
        what = "the file is empty" if not raw else f"the file holds only white space ({len(raw)} bytes)"
        raise DumpError(f"{name}: not a lockwatch dump ({what})")
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DumpError(f"{name}: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise DumpError(f"{name}: not a lockwatch dump (JSON nested too deeply)") from None
    except ValueError as exc:  # an integer longer than Python converts (sys.get_int_max_str_digits())
        limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
        what = f"a number has more than {limit} digits" if limit and "digits" in str(exc) else str(exc)
        raise DumpError(f"{name}: not a lockwatch dump ({what})") from None
    try:
        return Report.from_dict(data)
    except DumpError as exc:
        raise DumpError(f"{name}: {exc}") from None


# --- files -------------------------------------------------------------------------------------


def _safe_kind(kind: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in kind) or "report"


def _stamp(created: str) -> str:
    """The report's creation time in local time, as YYYYmmdd-HHMMSS (now if unparsable)."""
    try:
        moment = datetime.datetime.fromisoformat(created)
        if moment.tzinfo is not None:
            moment = moment.astimezone()
    except (TypeError, ValueError):
        moment = datetime.datetime.now()
    return moment.strftime("%Y%m%d-%H%M%S")


def _temporary(directory: str, data: bytes, mode: int) -> str:
    """A complete, flushed temporary file in ``directory`` (same file system: rename is atomic).

    Created exclusively (never through a planted file or symlink) with ``mode``, which the
    umask then narrows; the name is random so that nobody can guess it in a shared directory.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | getattr(os, "O_BINARY", 0)
    for _attempt in range(100):
        temp = os.path.join(directory, f".lockwatch-{os.getpid()}-{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(temp, flags, mode)
            break
        except FileExistsError:
            continue
    else:
        raise OSError(errno.EEXIST, "cannot create a temporary file", directory)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        _remove(temp)
        raise
    return temp


def _publish_unique(directory: str, stem: str, data: bytes, mode: int) -> str:
    """Give ``data`` the first free name ``<stem>-<n>.json``, atomically and without overwriting.

    A hard link fails if the name exists, so two writers (threads or processes) in the
    same second never take the same name, and readers never see a partial file.
    """
    try:
        temp = _temporary(directory, data, mode)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write a dump in {directory}: {exc.strerror}", directory) from None
    try:
        for counter in range(1, _MAX_COUNTER):
            final = os.path.join(directory, f"{stem}-{counter}.json")
            if os.path.lexists(final):
                continue
            try:
                os.link(temp, final)
            except FileExistsError:
                continue
            except OSError:
                # No hard links here (some file systems): reserve the name exclusively
                # with an empty file, then replace it with the complete one.
                try:
                    os.close(os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW, mode))
                except FileExistsError:
                    continue
                os.replace(temp, final)
            return final
        raise OSError(f"cannot find a free dump file name for {stem} in {directory}")
    except OSError as exc:
        if isinstance(exc.strerror, str) and exc.filename is not None:
            raise OSError(exc.errno, f"cannot write a dump in {directory}: {exc.strerror}", exc.filename) from None
        raise
    finally:
        _remove(temp)


def publish(path: str, data: bytes, mode: int = _OWN_DIRECTORY_MODE) -> None:
    """Write ``path`` atomically (temporary file, then rename over it; a symlink there is replaced, not followed)."""
    temp = _temporary(os.path.dirname(path) or ".", data, mode)
    try:
        os.replace(temp, path)
    except BaseException:
        _remove(temp)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
