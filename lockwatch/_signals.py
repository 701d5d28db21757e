"""SIGUSR1 snapshots and the registration files that let `lockwatch dump PID` find a process's dumps."""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
from typing import Any, Callable

from lockwatch._snapshot import now_iso

#: The signal that asks a process running under lockwatch for a snapshot dump (None where absent).
SNAPSHOT_SIGNAL: int | None = getattr(signal, "SIGUSR1", None)

# The handler that was installed before ours (restored by uninstall_handler), and ours.
_previous_handler: Any = None
_our_handler: Callable[[int, Any], None] | None = None
# The pid whose registration file this process wrote (differs from getpid() in a forked child).
_registered_pid: int | None = None


def registry_dir() -> str:
    """Where processes running under lockwatch register: ``<tempdir>/lockwatch-<uid>``."""
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return os.path.join(tempfile.gettempdir(), f"lockwatch-{uid}")


def registration_path(pid: int) -> str:
    """The registration file of process ``pid``: JSON with pid, dump_dir, argv, python, started."""
    return os.path.join(registry_dir(), f"{pid}.json")


def last_snapshot_path(pid: int) -> str:
    """The file naming process ``pid``'s latest snapshot dump: JSON with path and created."""
    return os.path.join(registry_dir(), f"{pid}.last")


def _write_atomically(path: str, data: dict[str, Any]) -> None:
    """Write JSON so a reader sees the old file or the whole new one, never half of it."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(data, stream)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None where unknown.

    Registration files carry it so that `lockwatch dump` never signals a
    process that merely reuses the pid of a registered one that died.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[19])  # field 22 of proc(5); fields here start at field 3
    except (OSError, IndexError, ValueError):
        return None


def register(dump_dir: str) -> None:
    """Write this process's registration file (raises OSError if the registry is unwritable)."""
    global _registered_pid
    pid = os.getpid()
    _write_atomically(
        registration_path(pid),
        {
            "pid": pid,
            "dump_dir": os.path.abspath(dump_dir),
            "argv": list(sys.argv),
            "python": sys.executable,
            "started": now_iso(),
            "start_ticks": process_start_ticks(pid),
        },
    )
    _registered_pid = pid
    _remove_stale_registrations()


def _remove_stale_registrations() -> None:
    """Delete files of processes that ended without cleaning up (killed, or os._exit in a child)."""
    try:
        names = os.listdir(registry_dir())
    except OSError:
        return
    for name in names:
        stem, dot, suffix = name.partition(".")
        if not dot or suffix not in ("json", "last") or not stem.isdigit():
            continue
        pid = int(stem)
        try:
            os.kill(pid, 0)
            continue  # alive (or alive under another user): keep it
        except ProcessLookupError:
            pass
        except OSError:
            continue
        try:
            os.unlink(os.path.join(registry_dir(), name))
        except OSError:
            pass


def unregister() -> None:
    """Remove this process's registration and last-snapshot files, if it wrote them."""
    global _registered_pid
    pid = _registered_pid
    _registered_pid = None
    if pid is None or pid != os.getpid():
        return  # a forked child never removes its parent's files
    for path in (registration_path(pid), last_snapshot_path(pid)):
        try:
            os.unlink(path)
        except OSError:
            pass


def forget_registration() -> None:
    """In a forked child: the parent's files are the parent's; this process registers anew."""
    global _registered_pid
    _registered_pid = None


def is_registered() -> bool:
    return _registered_pid is not None and _registered_pid == os.getpid()


def write_last_snapshot(json_path: str) -> None:
    """Record the newest snapshot dump of this process for `lockwatch dump PID` (atomically)."""
    _write_atomically(
        last_snapshot_path(os.getpid()),
        {"path": os.path.abspath(json_path), "created": now_iso()},
    )


def install_handler(on_signal: Callable[[], None]) -> bool:
    """Make SIGUSR1 call ``on_signal`` (which must only wake the watchdog); True if installed.

    Only the main thread can install signal handlers, and only where the
    platform has SIGUSR1; elsewhere this does nothing and returns False.
    """
    global _previous_handler, _our_handler
    if _our_handler is not None:
        return True
    if SNAPSHOT_SIGNAL is None or threading.current_thread() is not threading.main_thread():
        return False

    def handler(signum: int, frame: Any) -> None:
        # Runs in the main thread between two bytecodes, possibly while it is
        # deadlocked in a lock wait: do nothing but wake the watchdog.
        on_signal()

    try:
        previous = signal.signal(SNAPSHOT_SIGNAL, handler)
    except (ValueError, OSError):  # not the main interpreter, or the platform refuses
        return False
    _previous_handler = previous
    _our_handler = handler
    return True


def uninstall_handler() -> None:
    """Put back the SIGUSR1 handler that was there before ours (if ours is still installed)."""
    global _previous_handler, _our_handler
    if _our_handler is None or SNAPSHOT_SIGNAL is None:
        return
    try:
        if signal.getsignal(SNAPSHOT_SIGNAL) is _our_handler:
            previous = _previous_handler if _previous_handler is not None else signal.SIG_DFL
            signal.signal(SNAPSHOT_SIGNAL, previous)
    except (ValueError, OSError):
        return  # not the main thread: leave ours (it only wakes a stopped watchdog, harmlessly)
    _previous_handler = None
    _our_handler = None


def handler_installed() -> bool:
    return _our_handler is not None
