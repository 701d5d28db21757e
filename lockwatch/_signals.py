"""SIGUSR1 snapshots and the registration files that let `lockwatch dump PID` find a process's dumps."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from lockwatch import _dump  # noqa: F401 - loaded with the watchdog: nothing is imported at report time
from lockwatch._snapshot import now_iso

#: The signal that asks a process running under lockwatch for a snapshot dump (None where absent).
SNAPSHOT_SIGNAL: int | None = getattr(signal, "SIGUSR1", None)

# The handler that was installed before ours (restored by uninstall_handler), and ours.
_previous_handler: Any = None
_our_handler: Callable[[int, Any], None] | None = None
# The pid whose registration file this process wrote (differs from getpid() in a forked child).
_registered_pid: int | None = None


class RegistryError(OSError):
    """The registry directory or a file in it is not safely this user's: lockwatch refuses to use it."""


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Largest registration or .last file read: both are a few hundred bytes.
_MAX_FILE = 1 << 20


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


def _open_registry(create: bool) -> int | None:
    """The registry directory, opened and checked as ssh checks ~/.ssh; None if absent (and not created).

    It must be a real directory (never a symlink: it is opened with O_NOFOLLOW and every
    file in it is reached through this descriptor), owned by this user, and closed to
    everyone else (mode 0700). Anything else raises RegistryError with one line: in a
    shared /tmp another user may have made it first, to plant files or symlinks.
    """
    path = registry_dir()
    created = False
    if create:
        try:
            os.mkdir(path, 0o700)
            created = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise RegistryError(exc.errno, f"cannot create {path}: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except FileNotFoundError:
        if create:
            raise RegistryError(f"{path} vanished while lockwatch created it: refusing to use it") from None
        return None
    except OSError as exc:
        if os.path.islink(path) or not os.path.isdir(path):
            raise RegistryError(f"{path} is a symbolic link or not a directory: refusing to use it (remove it)") from None
        raise RegistryError(exc.errno, f"cannot open {path}: {exc.strerror}") from None
    try:
        _check_own(os.fstat(fd), path, "directory", forbidden=0o077)
        if created:
            os.fchmod(fd, 0o700)  # mkdir's mode went through the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_own(info: os.stat_result, path: str, what: str, forbidden: int) -> None:
    uid = os.geteuid() if hasattr(os, "geteuid") else info.st_uid
    hint = "point TMPDIR at a directory of your own" if what == "directory" else "remove it"
    if info.st_uid != uid:
        raise RegistryError(
            f"{path}: the {what} is owned by uid {info.st_uid}, not by you (uid {uid}): refusing to use it; {hint}"
        )
    if info.st_mode & forbidden:
        fix = f"chmod {'700' if what == 'directory' else '600'} {path}"
        raise RegistryError(
            f"{path}: bad permissions {stat.S_IMODE(info.st_mode):04o} on the {what} (others can "
            f"{'read or write' if forbidden & 0o044 else 'write'} it): refusing to use it; if it is yours: {fix}"
        )


def check_registry() -> str:
    """Create the registry directory if needed and check it; its path (raises RegistryError)."""
    fd = _open_registry(create=True)
    assert fd is not None
    os.close(fd)
    return registry_dir()


def _write_atomically(path: str, data: dict[str, Any]) -> None:
    """Write JSON so a reader sees the old file or the whole new one, never half of it.

    Only ever inside the checked registry directory, through its descriptor: the temporary
    file is created exclusively without following symlinks, and the rename replaces a
    planted symlink instead of writing through it.
    """
    fd = _open_registry(create=True)
    assert fd is not None
    name = os.path.basename(path)
    temporary = f".tmp-{os.getpid()}-{os.urandom(6).hex()}"
    try:
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=fd)
        try:
            with os.fdopen(out, "w", encoding="utf-8") as stream:
                json.dump(data, stream)
            os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=fd)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


def read_file(path: str) -> bytes | None:
    """A registry file's bytes, or None if it (or the registry) does not exist.

    Raises RegistryError when the directory is unsafe, or the file is a symlink, not a
    regular file, not this user's or writable by others: a planted file is never trusted.
    """
    fd = _open_registry(create=False)
    if fd is None:
        return None
    try:
        try:
            handle = os.open(os.path.basename(path), os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegistryError(f"{path}: is a symbolic link or cannot be opened ({exc.strerror}): refusing to use it") from None
        try:
            info = os.fstat(handle)
            if not stat.S_ISREG(info.st_mode):
                raise RegistryError(f"{path}: not a regular file: refusing to use it")
            _check_own(info, path, "file", forbidden=0o022)
            chunks = []
            size = 0
            while size <= _MAX_FILE:
                chunk = os.read(handle, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks)[:_MAX_FILE]
        finally:
            os.close(handle)
    finally:
        os.close(fd)


def read_json(path: str) -> dict[str, Any] | None:
    """A registry file as a JSON object (None if absent or not an object); RegistryError if untrusted."""
    data = read_file(path)
    if data is None:
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


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
        fd = _open_registry(create=False)
    except OSError:
        return
    if fd is None:
        return
    try:
        for name in os.listdir(fd):
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
                os.unlink(name, dir_fd=fd)  # never follows a symlink: removes the link itself
            except OSError:
                pass
    finally:
        os.close(fd)


def unregister() -> None:
    """Remove this process's registration and last-snapshot files, if it wrote them."""
    global _registered_pid
    pid = _registered_pid
    _registered_pid = None
    if pid is None or pid != os.getpid():
        return  # a forked child never removes its parent's files
    try:
        fd = _open_registry(create=False)
    except OSError:
        return  # no longer safe to touch: leave it
    if fd is None:
        return
    try:
        for path in (registration_path(pid), last_snapshot_path(pid)):
            try:
                os.unlink(os.path.basename(path), dir_fd=fd)
            except OSError:
                pass
    finally:
        os.close(fd)


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
