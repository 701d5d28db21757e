"""Where a held lock was taken, found at report time by reading the holder's live frames.

The hot path records no stacks, so a report works this out afterwards: the
holder's frames are still alive (it is blocked, or this is its own stack).
The innermost frame whose variables reach the lock (``a``, ``self.lock``,
``src.lock``, a global the code uses) is where it was taken, and the last
``with``/``acquire`` line naming that variable, up to the frame's current
line, is the line. Only what can be read for sure is returned: no match, no
entry (the report then shows where the lock was created).
"""

from __future__ import annotations

import linecache
import re
import types
from typing import Any, Iterable

from lockwatch._model import Frame, is_lockwatch_file

# Frames further out than this are not searched (a lock is taken near where it is held).
_MAX_FRAMES = 40


def acquisition_sites(frame: types.FrameType | None, locks: Iterable[Any]) -> dict[str, Frame]:
    """Lock id -> the frame and line that took it, for the locks found; never raises."""
    try:
        return _find(frame, list(locks))
    except Exception:  # a report must not fail over a best-effort detail
        return {}


def _find(frame: types.FrameType | None, locks: list[Any]) -> dict[str, Frame]:
    found: dict[str, Frame] = {}
    remaining = {id(lock): lock for lock in locks}
    depth = 0
    while frame is not None and remaining and depth < _MAX_FRAMES:
        code = frame.f_code
        if not is_lockwatch_file(code.co_filename):
            for lock_key, lock in list(remaining.items()):
                names = _names_reaching(frame, lock)
                if not names:
                    continue
                line = _taking_line(code, frame.f_lineno, names)
                if line is not None:
                    found[lock.id] = Frame(
                        file=code.co_filename,
                        line=line,
                        function=code.co_name,
                        code=linecache.getline(code.co_filename, line).strip() or None,
                    )
                    del remaining[lock_key]
        frame = frame.f_back
        depth += 1
    return found


def _names_reaching(frame: types.FrameType, lock: Any) -> list[str]:
    """Expressions in this frame that evaluate to ``lock``: ``name`` or ``name.attribute``."""
    names = []
    candidates = dict(frame.f_locals)
    for global_name in frame.f_code.co_names:  # globals this code refers to
        if global_name not in candidates and global_name in frame.f_globals:
            candidates[global_name] = frame.f_globals[global_name]
    for name, value in candidates.items():
        if value is lock:
            names.append(name)
            continue
        namespace = getattr(value, "__dict__", None) if not isinstance(value, type) else None
        if isinstance(namespace, dict):
            for attribute, item in namespace.items():
                if item is lock:
                    names.append(f"{name}.{attribute}")
                    # An object that is itself a context manager around the lock
                    # (Condition, Semaphore, a user's wrapper) is taken as ``with name:``.
                    if hasattr(type(value), "__enter__"):
                        names.append(name)
    return names


def _taking_line(code: types.CodeType, current_line: int | None, names: list[str]) -> int | None:
    """The last ``with NAME`` / ``NAME.acquire(`` line of this code up to its current line."""
    if current_line is None:
        return None
    pattern = re.compile(
        r"^\s*(?:async\s+)?with\b.*(?<![\w.])(?:%s)(?![\w])|(?<![\w.])(?:%s)\.acquire\("
        % ("|".join(map(re.escape, names)), "|".join(map(re.escape, names)))
    )
    # Only this code's own lines: a nested function's body lies in the same
    # range of the file but is another code object.
    own_lines = sorted({line for _start, _end, line in code.co_lines() if line and line <= current_line})
    for line in reversed(own_lines):
        if pattern.search(linecache.getline(code.co_filename, line)):
            return line
    return None


def taken_on_stack(frame: types.FrameType | None, lock: Any) -> Frame | None:
    """Where a thread blocked in ``lock.acquire()`` already took ``lock`` in a frame still running, if it did.

    ``frame`` is the blocked thread's innermost frame. The blocking line itself
    (the innermost user frame's current line) does not count: only an earlier
    ``with``/``acquire()`` in that frame, or one in a frame further out, whose
    block is still active because the frame has not returned.
    """
    try:
        while frame is not None and is_lockwatch_file(frame.f_code.co_filename):
            frame = frame.f_back
        if frame is None:
            return None
        code = frame.f_code
        names = _names_reaching(frame, lock)
        if names and frame.f_lineno:
            line = _taking_line(code, frame.f_lineno - 1, names)
            if line is not None:
                return Frame(code.co_filename, line, code.co_name, linecache.getline(code.co_filename, line).strip() or None)
        return _find(frame.f_back, [lock]).get(lock.id)
    except Exception:  # noqa: BLE001  (unsure means "not on the stack": never a false deadlock)
        return None
