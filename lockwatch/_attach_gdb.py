"""The gdb side of `lockwatch dump --attach`: runs inside gdb's own Python, attached to the target.

Not imported by lockwatch: ``lockwatch/_attach.py`` starts ``gdb -p PID -batch``
with this file. Its parameters come in a JSON file named by the environment
variable ``LOCKWATCH_ATTACH``; it reports its progress by rewriting the status
file named there (so lockwatch knows, if gdb never ends, at which step it is).

Steps, each leaving the target as it was:

1. Look at every thread while the process is stopped: its native stack (which
   C functions; the lock a C ``acquire`` is blocked on, where debug info names
   it), whether it holds the GIL (``PyGILState_Check()``, run with all other
   threads kept stopped), whether it has a Python thread state, and which
   system call it is in (``/proc``).
2. Decide whether the snapshot routine can run: a thread that holds the GIL
   while blocked in a system call means C code holds the GIL and may never let
   go: no injection (lockwatch falls back to stacks). Otherwise the routine
   runs on a thread that waits in a system call *without* the GIL -- best a
   thread blocked in a lock acquire -- so it never interrupts C code halfway.
3. Inject: ``PyGILState_Ensure()`` on that thread (other threads run: the GIL
   is taken the normal way, when its holder lets go between two bytecodes),
   ``PyRun_SimpleString`` of a two-line bootstrap that executes the snapshot
   routine with its own globals, ``PyGILState_Release()``. The bootstrap's
   text lives in memory taken with ``PyMem_RawMalloc`` and given back after.
4. Detach: the thread returns to the wait it was in (gdb restores its
   registers; the interrupted system call restarts).
"""

# mypy: ignore-errors
# (runs in gdb's own Python, whatever its version, against the `gdb` module, which has no stubs)

import json
import os

import gdb  # only inside gdb

# C functions in which a thread is blocked acquiring a Python lock; ``self`` is the lock.
ACQUIRE_FUNCTIONS = {"lock_PyThread_acquire_lock": "lock", "rlock_acquire": "rlock"}
# The functions a Python lock wait sleeps in (3.10-3.12: a semaphore in PyThread_acquire_lock_timed;
# 3.13: the parking lot's semaphore). A thread whose innermost frames reach one of these through
# libc's semaphore/futex frames only is blocked in a lock wait with the GIL released.
LOCK_WAIT_CALLERS = ("PyThread_acquire_lock_timed", "_PySemaphore_PlatformWait", "_PySemaphore_Wait")
# Frames that make a thread unsafe to run code on: waiting for the GIL (a condition variable: the
# thread is registered as its waiter, and a nested wait by the same thread can deadlock glibc's
# condvar), or inside a mutex or the allocator (our code would need the same lock).
UNSAFE_MARKS = ("take_gil", "drop_gil", "RestoreThread", "AcquireThread", "GILState", "pthread_cond",
                "pthread_mutex", "lll_lock", "malloc", "_int_free", "__libc_free", "realloc", "calloc")
_LOOK_DEEP = 12
_MAX_NATIVE_FRAMES = 40


def _write(path, data):
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)


def _value(expression):
    return int(gdb.parse_and_eval(expression))


def _syscall(pid, lwp):
    """The number of the system call a stopped thread is in ("202" = futex on x86-64), else None.

    /proc says "-1" for a thread stopped outside any system call (running code), "running" for
    one that runs (not the case while gdb holds the process).
    """
    try:
        with open(f"/proc/{pid}/task/{lwp}/syscall") as handle:
            field = handle.read().split()
    except OSError:
        return None
    return field[0] if field and field[0].isdigit() else None


def _native_stack(thread):
    thread.switch()
    names = []
    lock_address = None
    lock_kind = None
    try:
        frame = gdb.newest_frame()
    except gdb.error:
        return names, None, None
    while frame is not None and len(names) < _MAX_NATIVE_FRAMES:
        try:
            name = frame.name()
        except gdb.error:
            name = None
        names.append(name or "??")
        if lock_address is None and name in ACQUIRE_FUNCTIONS:
            try:
                lock_address = int(frame.read_var("self"))
                lock_kind = ACQUIRE_FUNCTIONS[name]
            except (gdb.error, ValueError, RuntimeError):
                pass
        try:
            frame = frame.older()
        except gdb.error:
            break
    return names, lock_address, lock_kind


def _lock_wait(names):
    """True: blocked in a Python lock wait, safe to borrow; False: not (or unsafe); None: cannot tell."""
    known = False
    for name in names[:_LOOK_DEEP]:
        if name in LOCK_WAIT_CALLERS:
            return True
        if any(mark in name for mark in UNSAFE_MARKS):
            return False
        known = known or (name != "??" and not name.startswith(("__", "do_futex", "futex", "sem_", "syscall")))
    return False if known else None


def _probe_thread(pid, thread):
    names, lock_address, lock_kind = _native_stack(thread)
    info = {
        "num": thread.num,
        "lwp": thread.ptid[1],
        "ident": int.from_bytes(thread.handle(), "little") if hasattr(thread, "handle") else None,
        "native": names,
        "lock_address": lock_address,
        "lock_kind": lock_kind,
        "syscall": _syscall(pid, thread.ptid[1]),
        "lock_wait": _lock_wait(names),
    }
    try:
        info["tstate"] = _value("(long)PyGILState_GetThisThreadState()")
        info["gil"] = _value("(int)PyGILState_Check()")
    except gdb.error as exc:
        info["call_error"] = str(exc)
    return info


def _python_version():
    """(major, minor, text) of the target's Python, read from memory where possible."""
    try:
        hexversion = _value("*(unsigned long *)&Py_Version")  # 3.11+
        return (hexversion >> 24) & 0xFF, (hexversion >> 16) & 0xFF, None
    except gdb.error:
        pass
    text = gdb.parse_and_eval("(char *)Py_GetVersion()").string(length=200)
    major, minor = text.split()[0].split(".")[:2]
    return int(major), int(minor), text.split()[0]


def _bootstrap(routine, out, native):
    # Its own globals: nothing lands in the target's __main__; nothing escapes as an exception.
    names = f"{{'__name__':'__lockwatch_snapshot__','__file__':{routine!r},'__builtins__':__builtins__," \
        f"'LOCKWATCH_OUT':{out!r},'LOCKWATCH_NATIVE':{native!r}}}"
    lines = [
        "try:",
        f" exec(compile(open({routine!r},'rb').read(),{routine!r},'exec'),{names})",
        "except BaseException:",
        " pass",
        "",
    ]
    return "\n".join(lines).encode("utf-8") + b"\0"


class Cancelled(Exception):
    """lockwatch stopped waiting: detach now, between two calls."""


def main():
    params = json.load(open(os.environ["LOCKWATCH_ATTACH"]))
    status_path = params["status"]
    cancel_path = os.path.join(os.path.dirname(status_path), "cancel")

    def checkpoint():
        if os.path.exists(cancel_path):
            raise Cancelled()

    checkpoint()
    status = {"phase": "attached"}
    _write(status_path, status)
    inferior = gdb.selected_inferior()
    pid = inferior.pid
    if not pid:
        status.update(phase="done", outcome="not-attached")
        _write(status_path, status)
        return
    for symbol in ("PyGILState_Ensure", "PyGILState_Release", "PyRun_SimpleString", "PyGILState_Check"):
        try:
            gdb.parse_and_eval(symbol)
        except gdb.error:
            status.update(phase="done", outcome="no-python-api", symbol=symbol)
            _write(status_path, status)
            return

    # 1. Look, with every other thread kept stopped during the little calls made.
    gdb.execute("set scheduler-locking on")
    threads = []
    for thread in sorted(inferior.threads(), key=lambda t: t.num):
        checkpoint()
        threads.append(_probe_thread(pid, thread))
    status.update(phase="probed", threads=threads)
    _write(status_path, status)

    holders = [t for t in threads if t.get("gil") == 1]
    blocked_holders = [t for t in holders if t["syscall"] is not None]
    # Only a thread blocked in a Python lock wait, with the GIL released, runs our code: see UNSAFE_MARKS.
    candidates = [t for t in threads
                  if t.get("tstate") and t.get("gil") == 0 and t["syscall"] is not None and t["lock_wait"] is True]
    if blocked_holders:
        status.update(phase="done", outcome="gil-held", holder=blocked_holders[0])
        _write(status_path, status)
        return
    if not params.get("inject", True):
        status.update(phase="done", outcome="probed-only")
        _write(status_path, status)
        return
    if not candidates:
        status.update(phase="done", outcome="no-safe-thread")
        _write(status_path, status)
        return
    chosen = candidates[0]
    for thread in inferior.threads():
        if thread.num == chosen["num"]:
            thread.switch()
    checkpoint()
    major, minor, text = _python_version()
    status.update(version=[major, minor])
    if (major, minor) < (3, 10) or (major, minor) > (3, 13):
        status.update(phase="done", outcome="unsupported", version_text=text)
        _write(status_path, status)
        return

    # 3. Inject. From here on, other threads run while the call runs (the GIL holder must let go).
    native = {t["ident"]: t["lock_address"] for t in threads if t.get("lock_address") and t.get("ident")}
    source = _bootstrap(params["routine"], params["out"], native)
    checkpoint()
    gdb.execute("set scheduler-locking off")
    gdb.execute("set unwindonsignal on")
    status.update(phase="injecting", thread=chosen["num"], lwp=chosen["lwp"])
    _write(status_path, status)
    buffer = _value(f"(long)PyMem_RawMalloc({len(source)})")
    if not buffer:
        status.update(phase="done", outcome="no-memory")
        _write(status_path, status)
        return
    inferior.write_memory(buffer, source)
    state = _value("(int)PyGILState_Ensure()")
    result = _value(f"(int)PyRun_SimpleString((const char *){buffer})")
    gdb.parse_and_eval(f"(void)PyGILState_Release({state})")
    gdb.parse_and_eval(f"(void)PyMem_RawFree((void *){buffer})")
    status.update(phase="done", outcome="injected", result=result)
    _write(status_path, status)


try:
    main()
except Cancelled:
    try:
        _path = json.load(open(os.environ["LOCKWATCH_ATTACH"]))["status"]
        _previous = {}
        try:
            _previous = json.load(open(_path))
        except (OSError, ValueError):
            pass
        _previous.update(phase="done", outcome="cancelled")
        _write(_path, _previous)
    except (OSError, ValueError, KeyError):
        pass
except Exception as exc:  # noqa: BLE001 - reported to lockwatch through the status file
    try:
        path = json.load(open(os.environ["LOCKWATCH_ATTACH"]))["status"]
        previous = {}
        try:
            previous = json.load(open(path))
        except (OSError, ValueError):
            pass
        previous.update(phase="done", outcome="gdb-error", error=f"{type(exc).__name__}: {exc}")
        _write(path, previous)
    except Exception:  # noqa: BLE001 - nothing left to report to
        pass
finally:
    try:
        gdb.execute("detach")
    except gdb.error:
        pass
    # lockwatch gave up waiting and left us to finish: nobody will read the work directory.
    try:
        _params = json.load(open(os.environ["LOCKWATCH_ATTACH"]))
        _workdir = os.path.dirname(_params["status"])
        if os.path.exists(os.path.join(_workdir, "abandoned")):
            import shutil

            shutil.rmtree(_workdir, ignore_errors=True)
    except (OSError, ValueError, KeyError):
        pass
