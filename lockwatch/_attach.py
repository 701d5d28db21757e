"""`lockwatch dump PID` on a process that does not run lockwatch: attach with gdb, inject a snapshot, infer who holds what.

Three files work together: this one (checks, runs gdb, turns what came back
into a :class:`~lockwatch.Report`), ``_attach_gdb.py`` (runs inside gdb:
looks at the threads, injects) and ``_inject_snapshot.py`` (runs inside the
target: stacks and lock states). docs/attach.md explains the choices and
their risks.

What is exact and what is inferred: a C ``RLock`` records its owner and count
(read from its C repr), and a thread blocked in a C-level ``acquire`` names
the lock object (``self``, read by gdb where debug info has it). A plain
``Lock`` records no owner: its holder is inferred from the ``with`` blocks and
``acquire()`` calls still active in each thread's frames, read with ``ast``
here, and every such fact is marked ``inferred`` with how it was found.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from lockwatch import _detect
from lockwatch._errors import AttachError
from lockwatch._model import Frame, LockInfo, Report, ThreadInfo
from lockwatch._snapshot import now_iso

#: Python versions the injected routine is written for.
SUPPORTED = ((3, 10), (3, 13))

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_GDB_SCRIPT = os.path.join(_PACKAGE, "_attach_gdb.py")
_ROUTINE = os.path.join(_PACKAGE, "_inject_snapshot.py")

# Seconds gdb gets to stop after being asked to, before it is left to finish in the background.
_TERM_GRACE = 5.0
# Seconds gdb may take to attach and look at the threads (loading symbols on a busy machine),
# whatever --timeout says: --timeout is how long the snapshot may wait for the GIL.
_ATTACH_BUDGET = 30.0
# Seconds py-spy gets for a stacks-only fallback.
_PY_SPY_TIMEOUT = 10.0


@dataclass(frozen=True)
class Target:
    """What /proc says about the process before anything attaches to it."""

    pid: int
    exe: str
    argv: tuple[str, ...]
    version: tuple[int, int] | None  # from the libpython or executable name, when it says


# --- checks before attaching --------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _status_field(pid: int, name: str) -> str | None:
    text = _read(f"/proc/{pid}/status") or ""
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def _has_ptrace_capability() -> bool:
    caps = _status_field(os.getpid(), "CapEff")
    try:
        return bool(int(caps or "0", 16) & (1 << 19))  # CAP_SYS_PTRACE
    except ValueError:
        return False


def ptrace_scope() -> int | None:
    """``kernel.yama.ptrace_scope`` (0 classic, 1 descendants only, 2 admin only, 3 none), None without Yama."""
    text = _read("/proc/sys/kernel/yama/ptrace_scope")
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


def _ptrace_hint() -> str:
    scope = ptrace_scope()
    if scope == 3:
        return ("ptrace is disabled on this machine (kernel.yama.ptrace_scope = 3, only a reboot changes it); "
                "start the program under `lockwatch run` instead")
    if scope in (1, 2):
        return (f"ptrace is restricted (kernel.yama.ptrace_scope = {scope}): run `lockwatch dump` as root "
                f"(sudo), or allow it with `sudo sysctl kernel.yama.ptrace_scope=0`, or start the program under "
                f"`lockwatch run`")
    return ("ptrace is not permitted here: in a container, give it CAP_SYS_PTRACE (docker run --cap-add=SYS_PTRACE, "
            "or a seccomp profile that allows ptrace); or run `lockwatch dump` as root, or start the program under "
            "`lockwatch run`")


def check_target(pid: int) -> Target:
    """Everything that can be said before attaching; raises :class:`AttachError` with what to do."""
    if not os.path.isdir(f"/proc/{pid}"):
        if sys.platform != "linux":
            raise AttachError("attaching to a process needs Linux (/proc and ptrace); start it under `lockwatch run`")
        raise AttachError(f"no process with pid {pid}")
    state = _status_field(pid, "State") or ""
    if state.startswith("Z"):
        raise AttachError(f"process {pid} has ended (it is a zombie waiting for its parent)")
    uids = (_status_field(pid, "Uid") or "").split()
    if uids and os.geteuid() != 0 and not _has_ptrace_capability():
        owner = int(uids[1]) if len(uids) > 1 else int(uids[0])
        if owner != os.geteuid() or int(uids[0]) != os.getuid():
            raise AttachError(
                f"process {pid} belongs to {_user_name(owner)}: run `lockwatch dump` as that user (or as root)"
            )
    tracer = int(_status_field(pid, "TracerPid") or 0)
    if tracer:
        what = (_read(f"/proc/{tracer}/cmdline") or "").replace("\0", " ").strip()
        if _GDB_SCRIPT in what:
            raise AttachError(
                f"process {pid} is still attached by an earlier `lockwatch dump` (gdb, pid {tracer}) that waits for "
                f"the GIL; it detaches by itself once the GIL is free (see docs/attach.md)"
            )
        raise AttachError(
            f"process {pid} is already being traced by process {tracer} ({what or '?'}): a debugger or profiler "
            f"is attached; detach it first"
        )
    scope = ptrace_scope()
    if scope == 3 or (scope == 2 and os.geteuid() != 0 and not _has_ptrace_capability()):
        raise AttachError(f"cannot attach to process {pid}: {_ptrace_hint()}")
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    argv = tuple(arg for arg in (_read(f"/proc/{pid}/cmdline") or "").split("\0") if arg)
    maps = _read(f"/proc/{pid}/maps") or ""
    library = re.search(r"/libpython(\d+)\.(\d+)[^/\s]*\.so", maps)
    version: tuple[int, int] | None = None
    if library:
        version = (int(library.group(1)), int(library.group(2)))
    else:
        named = re.fullmatch(r"python(\d+)\.(\d+)\w*", os.path.basename(exe))
        if named:
            version = (int(named.group(1)), int(named.group(2)))
        if not _exports_python_api(exe):
            program = os.path.basename(exe) or (argv[0] if argv else "?")
            raise AttachError(f"process {pid} ({program}) is not a Python process (no Python interpreter in it)")
    if version is not None and not SUPPORTED[0] <= version <= SUPPORTED[1]:
        raise AttachError(_unsupported(pid, version))
    return Target(pid=pid, exe=exe, argv=argv, version=version)


def _unsupported(pid: int, version: tuple[int, int]) -> str:
    text = f"{version[0]}.{version[1]}"
    low, high = (f"{v[0]}.{v[1]}" for v in SUPPORTED)
    return (f"process {pid} runs Python {text}; `lockwatch dump` attaches to Python {low} to {high} only: "
            f"start the program under `lockwatch run` to get snapshots from it")


def _exports_python_api(exe: str) -> bool:
    """Whether the executable carries the Python C API (a statically linked interpreter)."""
    try:
        with open(exe, "rb") as handle:
            import mmap

            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return data.find(b"PyGILState_Ensure\0") >= 0
    except (OSError, ValueError):
        return False


def find_gdb() -> str:
    """The gdb to use (``LOCKWATCH_GDB`` overrides PATH); raises :class:`AttachError` when there is none."""
    wanted = os.environ.get("LOCKWATCH_GDB") or "gdb"
    found = shutil.which(wanted)
    if found is None:
        raise AttachError(
            f"gdb is not installed ({wanted} not found): install it (apt-get install gdb, dnf install gdb) "
            f"to attach to a process not started under lockwatch"
        )
    return found


# --- running gdb ---------------------------------------------------------------------------------


@dataclass
class GdbRun:
    """What one gdb session reported: its last status, and gdb itself if it is still attached."""

    status: dict[str, Any]
    stderr: str
    workdir: str
    left_running: int | None = None  # pid of a gdb still attached, waiting for the GIL
    timed_out: bool = False  # lockwatch stopped waiting for gdb


def run_gdb(pid: int, *, inject: bool, timeout: float, gdb: str | None = None) -> GdbRun:
    """Attach, look, inject (unless ``inject`` is false), detach; the target is left as it was."""
    gdb = gdb or find_gdb()
    workdir = tempfile.mkdtemp(prefix="lockwatch-attach-")
    target_uid = _target_uid(pid)
    if os.geteuid() == 0 and target_uid not in (None, 0):
        os.chown(workdir, target_uid, -1)  # the target writes its snapshot here
    routine = os.path.join(workdir, "snapshot.py")
    shutil.copyfile(_ROUTINE, routine)
    os.chmod(routine, 0o644)
    params: dict[str, str | bool] = {
        "status": os.path.join(workdir, "status.json"),
        "routine": routine,
        "out": os.path.join(workdir, "snapshot.json"),
        "inject": inject,
    }
    params_path = os.path.join(workdir, "params.json")
    with open(params_path, "w", encoding="utf-8") as handle:
        json.dump(params, handle)
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP")}
    environment["LOCKWATCH_ATTACH"] = params_path
    command = [
        gdb, "-nx", "-q", "-batch",
        "-iex", "set auto-load off", "-iex", "set debuginfod enabled off", "-iex", "set confirm off",
        "-iex", "set pagination off",
        "-p", str(pid), "-x", _GDB_SCRIPT,
    ]
    stderr_path = os.path.join(workdir, "gdb.err")
    status_path = str(params["status"])
    with open(stderr_path, "wb") as errors, open(os.devnull, "wb") as devnull:
        # A session of its own: a Ctrl-C meant for lockwatch must not reach gdb in the middle of a call.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=devnull, stderr=errors,
                                   env=environment, start_new_session=True)
    left_running, timed_out = _wait_for_gdb(process, workdir, status_path, timeout)
    status = _load_json(status_path) or {}
    stderr = _read(stderr_path) or ""
    return GdbRun(status=status, stderr=stderr, workdir=workdir, left_running=left_running, timed_out=timed_out)


def _wait_for_gdb(process: subprocess.Popen[bytes], workdir: str, status_path: str,
                  timeout: float) -> tuple[int | None, bool]:
    """Wait for gdb to finish: (gdb's pid if it is left to finish in the background, whether time ran out).

    gdb is never killed while a call it made into the target may be in flight: a
    call cut short leaves the target's thread inside the called function, with a
    return address gdb no longer guards. Instead lockwatch asks the script to stop
    (the ``cancel`` file), which it checks between its calls; only a gdb whose
    script never started is killed (it made no call).
    """
    started = time.monotonic()
    injecting_since: float | None = None
    while process.poll() is None:
        now = time.monotonic()
        if injecting_since is None and (_load_json(status_path) or {}).get("phase") == "injecting":
            injecting_since = now
        if injecting_since is not None and now - injecting_since >= timeout:
            break
        if injecting_since is None and now - started >= max(timeout, _ATTACH_BUDGET):
            break
        time.sleep(0.02)
    if process.poll() is not None:
        return None, False
    with open(os.path.join(workdir, "cancel"), "w", encoding="utf-8"):
        pass
    status = _load_json(status_path) or {}
    if not status:
        # The script has not started (gdb is still attaching or loading symbols): no call was
        # made, and a script starting now sees the cancel file and makes none.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(_TERM_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return None, True
    if status.get("phase") != "injecting":
        try:
            process.wait(_TERM_GRACE)  # the script stops at its next step
            return None, True
        except subprocess.TimeoutExpired:
            pass
    # In PyGILState_Ensure (or slow between steps): gdb finishes by itself, detaches, and then
    # removes the work directory.
    with open(os.path.join(workdir, "abandoned"), "w", encoding="utf-8"):
        pass
    return process.pid, True


def _target_uid(pid: int) -> int | None:
    uids = (_status_field(pid, "Uid") or "").split()
    return int(uids[1]) if len(uids) > 1 else None


def _load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _gdb_failure(pid: int, run: GdbRun) -> AttachError:
    """Why gdb did not get as far as looking at the threads, as one line."""
    text = run.stderr
    if "Operation not permitted" in text or "ptrace: Permission denied" in text:
        return AttachError(f"cannot attach to process {pid}: {_ptrace_hint()}")
    if "No such process" in text:
        return AttachError(f"process {pid} ended before gdb could attach")
    if "Python scripting is not supported" in text:
        return AttachError("this gdb has no Python support; install a gdb built with Python (Debian/Ubuntu: gdb)")
    last = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("warning:")]
    detail = last[-1] if last else "no output"
    return AttachError(f"gdb could not attach to process {pid}: {detail}")


# --- from what came back to a Report ---------------------------------------------------------------


def snapshot(pid: int, *, timeout: float = 10.0) -> Report:
    """A ``snapshot`` Report of a live Python process that does not run lockwatch.

    Raises :class:`AttachError` when the process cannot be looked at. When it
    can be looked at but the snapshot routine cannot run in it (C code holds
    the GIL), the report has stacks only and its notes say why.
    """
    target = check_target(pid)
    gdb = find_gdb()
    run = run_gdb(pid, inject=True, timeout=timeout, gdb=gdb)
    try:
        return _report_from_run(target, run)
    finally:
        if run.left_running is None:
            shutil.rmtree(run.workdir, ignore_errors=True)


def _report_from_run(target: Target, run: GdbRun) -> Report:
    pid = target.pid
    status = run.status
    outcome = status.get("outcome")
    if not status:
        if run.timed_out:
            raise AttachError(f"gdb did not get to attach to process {pid} within {_ATTACH_BUDGET:g} s "
                              f"(a very busy machine, or symbols loading slowly); try again")
        raise _gdb_failure(pid, run)
    if outcome == "no-python-api":
        if target.version is not None:
            return _raise(f"gdb finds no Python C API symbols in process {pid} (missing {status.get('symbol')}): "
                          f"install the interpreter's debug symbols (e.g. python3-dbg) or start it under lockwatch run")
        return _raise(f"process {pid} is not a Python process (no Python C API in it)")
    if outcome == "unsupported":
        version = status.get("version") or [0, 0]
        return _raise(_unsupported(pid, (int(version[0]), int(version[1]))))
    if outcome == "injected":
        raw = _load_json(os.path.join(run.workdir, "snapshot.json"))
        if isinstance(raw, dict) and "threads" in raw:
            return build_report(raw, status.get("threads") or [], target)
        problem = (raw or {}).get("error") if isinstance(raw, dict) else None
        reason = f"the snapshot routine failed in the target ({problem})" if problem else \
            "the snapshot routine wrote nothing (the target may run with -I/-S or without threading)"
        return stacks_only(target, status, reason)
    if run.left_running is not None:
        return stacks_only(target, status, (
            f"the GIL did not come free within the timeout: C code holds it. gdb (pid {run.left_running}) "
            f"stays attached in the background and detaches by itself as soon as the GIL is free; the process is "
            f"not stopped meanwhile"), leave_gdb=True)
    if outcome == "gil-held":
        holder = status.get("holder") or {}
        where = " <- ".join(name for name in (holder.get("native") or [])[:4])
        return stacks_only(target, status, (
            f"thread LWP {holder.get('lwp')} holds the GIL while blocked in C code ({where or 'a system call'}); "
            f"running Python code now would wait for it forever, so nothing was injected"))
    if outcome == "no-safe-thread":
        return stacks_only(target, status, (
            "no thread is blocked in a Python lock wait, the one place where lockwatch runs its snapshot "
            "routine (there the thread holds neither the GIL nor any C-level lock)"))
    if outcome == "gdb-error":
        return stacks_only(target, status, f"gdb failed: {status.get('error')}")
    if outcome == "cancelled" or status.get("phase") in ("attached", "probed"):
        return stacks_only(target, status, "gdb did not finish looking at the threads in time")
    raise _gdb_failure(pid, run)


def _raise(message: str) -> Report:
    raise AttachError(message)


# --- stacks only ------------------------------------------------------------------------------------


def _py_spy() -> str | None:
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("py-spy")


def stacks_only(target: Target, status: dict[str, Any], reason: str, *, leave_gdb: bool = False) -> Report:
    """A report with every thread's stack and no lock facts, read from outside (py-spy, else gdb's C frames)."""
    notes = [f"Stacks only: {reason}."]
    threads: list[ThreadInfo] = []
    py_spy = _py_spy()
    if py_spy is not None:
        command = [py_spy, "dump", "--pid", str(target.pid), "--json"]
        if leave_gdb:
            command.append("--nonblocking")  # gdb is attached: py-spy cannot stop the process too
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=_PY_SPY_TIMEOUT, check=False)
            threads = _py_spy_threads(json.loads(result.stdout)) if result.returncode == 0 else []
        except (OSError, subprocess.TimeoutExpired, ValueError):
            threads = []
        if threads:
            notes.append("Python stacks read by py-spy from the process's memory; lock owners and waits are unknown.")
    if not threads:
        for info in status.get("threads") or []:
            frames = tuple(Frame(file="<native>", line=0, function=name) for name in reversed(info.get("native") or []))
            threads.append(ThreadInfo(id=int(info.get("ident") or info.get("lwp") or 0),
                                      name=f"LWP {info.get('lwp')}", daemon=False, stack=frames))
        notes.append("C stacks only, read by gdb" + (
            "" if py_spy else "; install py-spy (pip install py-spy) for the Python stacks") + ".")
    return Report(
        kind="snapshot", created=now_iso(), pid=target.pid, argv=target.argv,
        python=_version_text(status, target), threads=tuple(threads), source="attach-stacks",
        summary="Stacks only: " + reason, notes=tuple(notes),
    )


def _version_text(status: dict[str, Any], target: Target) -> str:
    version = status.get("version") or target.version
    return f"{version[0]}.{version[1]}" if version else "?"


def _py_spy_threads(data: Any) -> list[ThreadInfo]:
    threads = []
    for entry in data if isinstance(data, list) else []:
        frames = tuple(
            Frame(file=str(f.get("filename")), line=int(f.get("line") or 0), function=str(f.get("name")))
            for f in reversed(entry.get("frames") or [])
        )
        threads.append(ThreadInfo(id=int(entry.get("thread_id") or 0), name=str(entry.get("thread_name") or "?"),
                                  daemon=False, stack=frames))
    return threads


# --- the full report -------------------------------------------------------------------------------


class _Locks:
    """Lock ids (L1, L2...) for the target's lock objects, by address, in the order they are met."""

    def __init__(self, objects: dict[int, dict[str, Any]]) -> None:
        self.objects = objects
        self.ids: dict[int, str] = {}
        self.labels: dict[int, str] = {}
        self.seen: dict[int, str] = {}  # a label for any lock met, used if it gets an id later

    def resolve(self, address: int | None) -> int | None:
        """The lock behind an object: itself for Lock/RLock, the inner lock of a Condition; else None."""
        description = self.objects.get(address) if address is not None else None
        if description is None:
            return None
        if description.get("kind") == "Condition":
            inner = description.get("inner")
            return inner if inner in self.objects and self.objects[inner].get("kind") in ("Lock", "RLock") else None
        return address if description.get("kind") in ("Lock", "RLock") else None

    def id_of(self, address: int, label: str | None = None) -> str:
        if address not in self.ids:
            self.ids[address] = f"L{len(self.ids) + 1}"
        if label and address not in self.labels:
            self.labels[address] = label
        return self.ids[address]


def build_report(raw: dict[str, Any], native_threads: list[dict[str, Any]], target: Target) -> Report:
    """The snapshot Report from the routine's output and gdb's look at the threads."""
    objects = {int(key): value for key, value in (raw.get("objects") or {}).items()}
    locks = _Locks(objects)
    native = {info.get("ident"): info for info in native_threads if info.get("ident")}
    threading_file = raw.get("threading_file")
    for entry in raw.get("threads") or []:
        address = entry.get("native_lock")
        if address and address not in objects:
            kind = "RLock" if (native.get(entry["id"]) or {}).get("lock_kind") == "rlock" else "Lock"
            objects[address] = {"kind": kind, "locked": True, "owner": None, "count": 1, "unreached": True}

    analysed = [_analyse_thread(entry, locks, native.get(entry["id"]), threading_file)
                for entry in raw.get("threads") or []]

    # RLocks record their owner: every owned one is reported, even if no frame showed where it was taken.
    for address, description in objects.items():
        if description.get("exact") and description.get("owner") is not None:
            locks.id_of(address)

    def really_held(address: int, ident: int) -> bool:
        description = objects.get(address) or {}
        if description.get("exact"):
            return bool(description.get("owner") == ident)
        return description.get("locked") is True  # an active `with` on a Lock that is free: released inside

    holdings: dict[int, list[int]] = {}
    for thread in analysed:
        held = [a for a in thread.holding if really_held(a, thread.ident)]
        held += [a for a in locks.ids if a not in held and (objects.get(a) or {}).get("exact")
                 and (objects.get(a) or {}).get("owner") == thread.ident]
        holdings[thread.ident] = held
    # Owners: exact for RLocks; for a Lock, the one thread whose frames still hold it (inferred).
    holders: dict[int, list[int]] = {}
    for ident, held in holdings.items():
        for address in held:
            holders.setdefault(address, []).append(ident)
    lock_infos: dict[int, LockInfo] = {}
    for address, lock_id in list(locks.ids.items()):
        description = objects.get(address) or {}
        exact = bool(description.get("exact"))
        owner: int | None
        if exact:
            owner = description.get("owner")
        else:
            candidates = holders.get(address) or []
            owner = candidates[0] if len(candidates) == 1 else None
        count = int(description.get("count") or 0) if exact else (1 if description.get("locked") else 0)
        kind = str(description.get("kind") or "Lock")
        lock_infos[address] = LockInfo(
            id=lock_id, kind=kind, name=None, site=None, owner=owner, count=count,
            label=locks.labels.get(address) or locks.seen.get(address) or f"{kind} at {address:#x}",
            inferred=not exact and owner is not None, address=f"{address:#x}",
        )

    thread_infos = []
    waits: dict[int, _detect.Wait] = {}
    for thread in analysed:
        holding = holdings[thread.ident]
        waiting = thread.waiting
        if waiting is not None:
            owner = lock_infos[waiting].owner
            waits[thread.ident] = _detect.Wait(locks.ids[waiting], owner)
        thread_infos.append(ThreadInfo(
            id=thread.ident, name=thread.name, daemon=thread.daemon,
            holding=tuple(locks.ids[a] for a in holding),
            waiting_for=None if waiting is None else locks.ids[waiting],
            stack=thread.stack, waiting_in=thread.waiting_in,
            acquired_at={locks.ids[a]: f for a, f in thread.taken_at.items() if a in holding},
            inferred={locks.ids[a]: how for a, how in thread.how.items() if a in holding
                      and not (objects.get(a) or {}).get("exact")},
            waiting_inferred=thread.waiting_how,
        ))
    waiters: dict[str, list[int]] = {}
    for ident, wait in waits.items():
        waiters.setdefault(wait.lock, []).append(ident)
    lock_list = [dataclasses.replace(info, waiters=tuple(sorted(waiters.get(info.id, ()))))
                 for info in sorted(lock_infos.values(), key=lambda i: int(i.id[1:]))
                 if info.owner is not None or info.id in waiters or any(info.id in t.holding for t in thread_infos)]
    lock_list = _distinct_titles(lock_list)

    cycles = _detect.find_cycles(waits)
    in_cycle = {step.thread for cycle in cycles for step in cycle}
    behind = set(_detect.bystanders(waits, cycles))
    thread_infos = [
        dataclasses.replace(t, role="cycle" if t.id in in_cycle else "bystander" if t.id in behind else None)
        for t in sorted(thread_infos, key=_main_first)
    ]
    report = Report(
        kind="snapshot", created=now_iso(), pid=int(raw.get("pid") or target.pid),
        argv=tuple(str(a) for a in raw.get("argv") or target.argv), python=str(raw.get("python") or "?"),
        threads=tuple(thread_infos), locks=tuple(lock_list), cycles=tuple(cycles), source="attach",
        notes=(
            "Taken by attaching with gdb: the process was not running under lockwatch.",
            "RLock owners are exact (the C RLock records them); a Lock records no owner, so its holder is "
            "inferred from the with/acquire lines still active in the threads' frames (marked 'inferred').",
        ),
    )
    if cycles:
        summary = "Deadlock: " + "; ".join(_detect.describe_cycle(cycle, report) for cycle in cycles)
    else:
        summary = "Snapshot taken by attaching to the process (it was not running under lockwatch)."
    return report.replace(summary=summary)


def _main_first(thread: ThreadInfo) -> tuple[int, int]:
    return (0 if thread.name == "MainThread" else 1, 0)


def _distinct_titles(infos: list[LockInfo]) -> list[LockInfo]:
    seen: dict[str, int] = {}
    for info in infos:
        seen[info.title] = seen.get(info.title, 0) + 1
    return [dataclasses.replace(info, label=f"{info.title} ({info.id})") if seen[info.title] > 1 else info
            for info in infos]


@dataclass
class _Thread:
    ident: int
    name: str
    daemon: bool
    stack: tuple[Frame, ...]
    holding: list[int]  # lock addresses, outermost first (inferred Locks and RLocks taken in frames)
    how: dict[int, str]
    taken_at: dict[int, Frame]
    waiting: int | None
    waiting_how: str | None
    waiting_in: str | None


# Functions of threading.py a thread waits in without waiting for a lock owner.
_NOTIFICATION_WAITS = {"wait": "Condition.wait", "wait_for": "Condition.wait_for",
                       "_wait_for_tstate_lock": "Thread.join", "join": "Thread.join"}


def _analyse_thread(entry: dict[str, Any], locks: _Locks, native: dict[str, Any] | None,
                    threading_file: str | None) -> _Thread:
    ident = int(entry["id"])
    frames = entry.get("stack") or []
    holding: list[int] = []
    how: dict[int, str] = {}
    taken_at: dict[int, Frame] = {}
    acquiring: list[tuple[int, dict[str, Any]]] = []
    for index, frame in enumerate(frames):
        innermost = index == len(frames) - 1
        held_lines, acquiring_lines = _active(frame["file"], int(frame["line"]), int(frame.get("first_line") or 0))
        for item in frame.get("locks") or []:
            key = (int(item["line"]), _normal(item["expr"]))
            address = locks.resolve(item.get("object"))
            if address is None:
                continue
            if item.get("label") and address not in locks.seen:
                locks.seen[address] = item["label"]
            if key in held_lines:
                if address not in holding:
                    holding.append(address)
                    locks.id_of(address, item.get("label"))
                    where = f"{os.path.basename(frame['file'])}:{item['line']} in {frame['function']}"
                    statement = held_lines[key]
                    how[address] = f"`{statement}` still active at {where}"
                    taken_at[address] = Frame(file=frame["file"], line=int(item["line"]), function=frame["function"],
                                              code=statement)
            elif innermost and key in acquiring_lines:
                acquiring.append((address, item))

    # What it waits in: a notification wait in threading (Condition, Event, join...) is not a lock wait.
    waiting_in = None
    for frame in reversed(frames):
        if threading_file is None or frame["file"] != threading_file:
            break
        if frame["function"] in _NOTIFICATION_WAITS:
            waiting_in = _NOTIFICATION_WAITS[frame["function"]]
            break
    waiting: int | None = None
    waiting_how: str | None = None
    # gdb's word on whether the thread sits in a lock wait; without it (no native frames) the line decides.
    in_acquire = native is None or native.get("lock_wait") is None or bool(native.get("lock_wait"))
    native_address = entry.get("native_lock")
    if waiting_in is None and native_address and locks.resolve(native_address) is not None:
        waiting = native_address
        locks.id_of(waiting, entry.get("native_label") or _label_from(acquiring, waiting))
    elif waiting_in is None and in_acquire and frames:
        for address, item in acquiring:
            description = locks.objects.get(address) or {}
            mine = description.get("exact") and description.get("owner") == ident
            if description.get("locked") and not mine and address not in holding:
                waiting = address
                locks.id_of(address, item.get("label"))
                last = frames[-1]
                waiting_how = (f"blocked in the acquire of `{item['expr']}` at {os.path.basename(last['file'])}:"
                               f"{last['line']} in {last['function']}" +
                               ("" if native is not None else " (the lock is held and the thread does not run)"))
                break
    stack = tuple(Frame(file=f["file"], line=int(f["line"]), function=f["function"], code=f.get("code"))
                  for f in frames)
    if waiting is not None and threading_file:
        # Like lockwatch's own snapshots: a lock wait ends at the user's line (`with cond:`), not in threading.
        end = len(stack)
        while end > 1 and stack[end - 1].file == threading_file:
            end -= 1
        stack = stack[:end]
    return _Thread(ident=ident, name=entry.get("name") or f"thread-{ident}", daemon=bool(entry.get("daemon")),
                   stack=stack, holding=holding, how=how, taken_at=taken_at, waiting=waiting,
                   waiting_how=waiting_how, waiting_in=waiting_in)


def _label_from(acquiring: list[tuple[int, dict[str, Any]]], address: int) -> str | None:
    for candidate, item in acquiring:
        if candidate == address:
            return item.get("label")
    return None


def _normal(expression: str) -> str:
    return "".join(expression.split())


# --- which with/acquire lines are still active: the real ast, outside the target ----------------------

_AST_CACHE: dict[str, tuple[str, ast.Module] | None] = {}
_TAKING = ("acquire", "__enter__")


def _parse(path: str) -> tuple[str, ast.Module] | None:
    if path not in _AST_CACHE:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                source = handle.read()
            _AST_CACHE[path] = (source, ast.parse(source, path))
        except (OSError, SyntaxError, ValueError, RecursionError):
            _AST_CACHE[path] = None
    return _AST_CACHE[path]


def _active(path: str, line: int, first_line: int) -> tuple[dict[tuple[int, str], str], set[tuple[int, str]]]:
    """For a frame at ``line``: (line, expression) of the locks its function still holds -> the statement
    text, and the (line, expression) it is acquiring on ``line`` itself."""
    parsed = _parse(path)
    if parsed is None:
        return {}, set()
    source, module = parsed
    scope = _scope(module, line, first_line)
    held: dict[tuple[int, str], str] = {}
    acquiring: set[tuple[int, str]] = set()
    releases = _releases(scope, source)
    _walk_body(_body_of(scope), line, source, held, acquiring, releases)
    return held, acquiring


def _scope(module: ast.Module, line: int, first_line: int) -> ast.AST:
    best: ast.AST = module
    for node in ast.walk(module):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            end = node.end_lineno or node.lineno
            if start <= line <= end and (start == first_line or node.lineno == first_line):
                if best is module or start >= _start(best):
                    best = node
    return best


def _start(node: ast.AST) -> int:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return min([node.lineno] + [d.lineno for d in node.decorator_list])
    return 0


def _body_of(scope: ast.AST) -> list[ast.stmt]:
    return list(getattr(scope, "body", []))


def _segment(source: str, node: ast.AST) -> str:
    return _normal(ast.get_source_segment(source, node) or "")


def _statement_text(source: str, node: ast.AST) -> str:
    text = ast.get_source_segment(source, node) or ""
    first = text.splitlines()[0] if text else ""
    return first.strip()


def _taking_calls(node: ast.AST) -> list[ast.Call]:
    """``x.acquire(...)`` / ``x.__enter__()`` calls in a statement's own expressions (not nested blocks)."""
    calls = []
    parts: list[ast.AST] = []
    if isinstance(node, (ast.Expr, ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Return)):
        parts = [node]
    elif isinstance(node, (ast.If, ast.While)):
        parts = [node.test]
    for part in parts:
        for child in ast.walk(part):
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and child.func.attr in _TAKING:
                calls.append(child)
    return calls


def _releases(scope: ast.AST, source: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for node in _walk_scope(scope):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "release":
            found.setdefault(_segment(source, node.func.value), []).append(node.lineno)
    return found


def _walk_scope(scope: ast.AST) -> list[ast.AST]:
    """Every node of a function (or module) without descending into nested functions and classes."""
    nodes: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        nodes.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))
    return nodes


def _contains(node: ast.AST, line: int) -> bool:
    start = getattr(node, "lineno", None)
    if start is None:
        return False
    end = getattr(node, "end_lineno", None) or start
    return bool(start <= line <= end)


def _walk_body(body: list[ast.stmt], line: int, source: str, held: dict[tuple[int, str], str],
               acquiring: set[tuple[int, str]], releases: dict[str, list[int]]) -> None:
    """Follow the statements enclosing ``line``, noting the locks taken on the way and not given back."""
    for statement in body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if statement.lineno > line:
            break
        contains = _contains(statement, line)
        if isinstance(statement, (ast.With, ast.AsyncWith)) and contains:
            header_end = statement.body[0].lineno if statement.body else line + 1
            for item in statement.items:
                key = (item.context_expr.lineno, _segment(source, item.context_expr))
                if line < header_end:
                    acquiring.add(key)
                else:
                    held[key] = _statement_text(source, statement)
        for call in _taking_calls(statement):
            assert isinstance(call.func, ast.Attribute)
            key = (call.lineno, _segment(source, call.func.value))
            if call.lineno == line or (contains and not isinstance(statement, (ast.If, ast.While))):
                acquiring.add(key)
            elif isinstance(statement, (ast.If, ast.While)) and contains:
                if any(_contains(child, line) for child in statement.body):
                    held[key] = _statement_text(source, statement)
            elif (statement.end_lineno or statement.lineno) < line:
                released = [at for at in releases.get(key[1], []) if (statement.end_lineno or 0) < at < line]
                if not released:
                    held[key] = _statement_text(source, statement)
        if contains:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(statement, field, None)
                if not children:
                    continue
                for child in children:
                    if isinstance(child, (ast.ExceptHandler,)) or type(child).__name__ == "match_case":
                        if _contains_body(child, line):
                            _walk_body(list(child.body), line, source, held, acquiring, releases)
                if isinstance(children[0], ast.stmt):
                    _walk_body(list(children), line, source, held, acquiring, releases)
            return


def _contains_body(node: Any, line: int) -> bool:
    body = getattr(node, "body", None) or []
    return bool(body) and body[0].lineno <= line <= (body[-1].end_lineno or body[-1].lineno)

