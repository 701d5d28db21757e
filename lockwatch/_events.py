"""Where findings go: listeners subscribe to every report lockwatch produces."""

from __future__ import annotations

import sys
from _thread import allocate_lock as _allocate_raw_lock
from collections.abc import Callable, Sequence

from lockwatch._model import Report

#: A listener gets the report and the paths of the files written for it (may be empty).
Listener = Callable[[Report, Sequence[str]], None]

# Copied on write: the reporter reads the tuple without locking; writers serialise on a raw lock.
_listeners: tuple[Listener, ...] = ()
_writers = _allocate_raw_lock()

#: Whether findings are also printed to stderr as text (the CLI and plain patch()
#: do; the pytest plugin turns this off and presents them itself).
print_to_stderr = True


def subscribe(listener: Listener) -> None:
    """Call ``listener(report, paths)`` for every deadlock, hang, lock-order and snapshot report."""
    global _listeners
    with _writers:
        _listeners = (*_listeners, listener)


def unsubscribe(listener: Listener) -> None:
    """Stop calling ``listener``; unknown listeners are ignored."""
    global _listeners
    with _writers:
        _listeners = tuple(known for known in _listeners if known is not listener)


def publish(report: Report, paths: Sequence[str] = ()) -> None:
    """Hand a report to every listener; a failing listener is reported once and skipped."""
    for listener in _listeners:
        try:
            listener(report, paths)
        except Exception as exc:  # noqa: BLE001
            # Said once, then the listener is dropped: lockwatch never fails the program.
            unsubscribe(listener)
            print(f"lockwatch: a report listener failed and was removed: {exc!r}", file=sys.stderr)
