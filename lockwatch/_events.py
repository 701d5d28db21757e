"""Where findings go: listeners subscribe to every report lockwatch produces."""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from lockwatch import _state
from lockwatch._model import Report

#: A listener gets the report and the paths of the files written for it (may be empty).
Listener = Callable[[Report, Sequence[str]], None]

_listeners: list[Listener] = []

#: Whether findings are also printed to stderr as text (the CLI and plain patch()
#: do; the pytest plugin turns this off and presents them itself).
print_to_stderr = True


def subscribe(listener: Listener) -> None:
    """Call ``listener(report, paths)`` for every deadlock, hang, lock-order and snapshot report."""
    with _state.registry_lock:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    """Stop calling ``listener``; unknown listeners are ignored."""
    with _state.registry_lock:
        try:
            _listeners.remove(listener)
        except ValueError:
            pass


def publish(report: Report, paths: Sequence[str] = ()) -> None:
    """Hand a report to every listener; a failing listener is reported once and skipped."""
    with _state.registry_lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(report, paths)
        except Exception as exc:
            # Said once, then the listener is dropped: lockwatch never fails the program.
            unsubscribe(listener)
            print(f"lockwatch: a report listener failed and was removed: {exc!r}", file=sys.stderr)
