"""Where a held lock was taken, found at report time by reading the holder's live frames.

The hot path records no stacks, so a report works this out afterwards: the
holder's frames are still alive (it is blocked, or this is its own stack).
Going outwards from the innermost frame, the first frame whose variables reach
the lock (``a``, ``self.lock``, ``src.lock``, a global the code uses) and that
is, for sure, inside the statement that took it names the line:

- a ``with NAME:`` block whose body the frame is executing now (or whose
  header it is on, when that header took the lock and now waits for another:
  ``with a, b:``);
- a ``NAME.acquire(`` call before the frame's current line, with no
  ``NAME.release(`` call between the two.

A frame blocked on the very lock it is asked about (a thread waiting for a
lock it holds itself) is on the line that waits, not the one that took it: that
line never counts. Anything less certain gives no entry, and the report says
where the lock was created instead, labelled "created at".
"""

from __future__ import annotations

import ast
import linecache
import os
import re
import types
from collections.abc import Iterable
from typing import Any

from lockwatch._model import Frame, is_lockwatch_file

# Frames further out than this are not searched (a lock is taken near where it is held).
_MAX_FRAMES = 40

# (start line, end line, header end line, context expressions as source) of each with-statement.
_WithBlock = tuple[int, int, int, tuple[str, ...]]
_with_blocks_cache: dict[tuple[str, int], tuple[_WithBlock, ...]] = {}


def acquisition_sites(
    frame: types.FrameType | None, locks: Iterable[Any], waiting_for: Any = None
) -> dict[str, Frame]:
    """Lock id -> the frame and line that took it, for the locks found for sure; never raises.

    ``waiting_for`` is the lock the thread is blocked on (or about to block on), if any:
    the innermost frame's current line waits for it, and did not take it.
    """
    try:
        return _find(frame, list(locks), waiting_for)
    except Exception:  # noqa: BLE001 - a report must not fail over a best-effort detail
        return {}


def _find(frame: types.FrameType | None, locks: list[Any], waiting_for: Any) -> dict[str, Frame]:
    found: dict[str, Frame] = {}
    remaining = {id(lock): lock for lock in locks}
    depth = 0
    innermost = True  # the innermost frame of the program: the one that may be waiting
    while frame is not None and remaining and depth < _MAX_FRAMES:
        code = frame.f_code
        if not is_lockwatch_file(code.co_filename):
            for lock_key, lock in list(remaining.items()):
                names = _names_reaching(frame, lock)
                if not names:
                    continue
                waits_here = innermost and lock is waiting_for
                line = _taking_line(code, frame.f_lineno, names, waits_here)
                if line is not None:
                    found[lock.id] = Frame(
                        file=code.co_filename,
                        line=line,
                        function=code.co_name,
                        code=linecache.getline(code.co_filename, line).strip() or None,
                    )
                    del remaining[lock_key]
            # threading's wrappers (Condition.__enter__) wait on the program's behalf.
            innermost = innermost and os.path.basename(code.co_filename) == "threading.py"
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


def _taking_line(code: types.CodeType, current: int | None, names: list[str], waits_here: bool) -> int | None:
    """The line of this code that took the lock, when it is certain; else None."""
    if current is None:
        return None
    own_lines = {line for _start, _end, line in code.co_lines() if line}
    # A with-block the frame is inside of: the innermost one naming the lock.
    inside = [
        start
        for start, end, header_end, expressions in _with_blocks(code.co_filename)
        if start in own_lines
        and any(expression in names for expression in expressions)
        and (header_end < current <= end or (start <= current <= header_end and not waits_here))
    ]
    if inside:
        return max(inside)
    # An acquire() call earlier in this code, not released since.
    alternatives = "|".join(map(re.escape, names))
    acquire = re.compile(rf"(?<![\w.])(?:{alternatives})\.acquire\(")
    release = re.compile(rf"(?<![\w.])(?:{alternatives})\.release\(")
    last = current - 1 if waits_here else current
    for line in sorted((line for line in own_lines if line <= last), reverse=True):
        text = linecache.getline(code.co_filename, line)
        if release.search(text) and line < current:
            return None  # released after the last acquire we could see: not sure any more
        if acquire.search(text):
            return line
    return None


def _with_blocks(filename: str) -> tuple[_WithBlock, ...]:
    """Every with-statement of a source file, parsed once per file version."""
    lines = linecache.getlines(filename)
    if not lines:
        return ()
    key = (filename, hash(tuple(lines)))
    cached = _with_blocks_cache.get(key)
    if cached is not None:
        return cached
    try:
        tree = ast.parse("".join(lines), filename)
    except (SyntaxError, ValueError, RecursionError):
        tree = None
    blocks: list[_WithBlock] = []
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.With, ast.AsyncWith)) and node.body:
                expressions = tuple(ast.unparse(item.context_expr) for item in node.items)
                header_end = node.body[0].lineno - 1
                blocks.append((node.lineno, node.end_lineno or node.lineno, max(header_end, node.lineno), expressions))
    if len(_with_blocks_cache) > 256:
        _with_blocks_cache.clear()  # report-time cache: bounded, never needed for correctness
    _with_blocks_cache[key] = found = tuple(blocks)
    return found


def taken_on_stack(frame: types.FrameType | None, lock: Any) -> Frame | None:
    """Where a thread blocked in ``lock.acquire()`` already took ``lock`` in a frame still running, if it did.

    ``frame`` is the blocked thread's innermost frame. The blocking line itself
    does not count (see the module docstring): only a ``with`` block the thread
    is inside of, or an ``acquire()`` not released since, in a frame that has not
    returned. Unsure means "not on the stack": never a false deadlock.
    """
    try:
        return _find(frame, [lock], waiting_for=lock).get(lock.id)
    except Exception:  # noqa: BLE001 - unsure: not on the stack
        return None
