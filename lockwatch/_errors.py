"""The exceptions and warnings lockwatch raises."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lockwatch._model import Report


class LockwatchError(Exception):
    """Base class of every error lockwatch raises on purpose."""


class ConfigError(LockwatchError, ValueError):
    """A configuration value is invalid; the message names the setting and its source."""


class DumpError(LockwatchError):
    """A dump file is missing, unreadable, not JSON, or not a lockwatch dump."""


class RenderError(LockwatchError):
    """A report cannot be rendered: Graphviz's ``dot`` is missing or failed, or the output is unwritable."""


class DeadlockError(LockwatchError, RuntimeError):
    """Raised out of a blocked ``acquire()`` chosen as the victim of a deadlock.

    The lock the thread was waiting for is not acquired; every lock the thread
    already holds is still held (a ``with`` block above releases it as usual).
    ``report`` is the deadlock :class:`~lockwatch.Report`.
    """

    def __init__(self, message: str, report: Report | None = None) -> None:
        super().__init__(message)
        self.report = report


class LockOrderViolation(LockwatchError, RuntimeError):
    """Raised (with ``order="raise"``) by an acquire that would close a lock-order cycle.

    The lock is not acquired. ``report`` is the lock-order :class:`~lockwatch.Report`.
    """

    def __init__(self, message: str, report: Report | None = None) -> None:
        super().__init__(message)
        self._report = report
        self.report_failed = False

    @property
    def report(self) -> Report | None:
        """The report, written by lockwatch's own thread shortly after the refused acquire."""
        return _await_report(self)

    @report.setter
    def report(self, value: Report | None) -> None:
        self._report = value


class LockOrderWarning(UserWarning):
    """Issued (with ``order="warn"``) when an acquisition closes a lock-order cycle.

    ``report`` is the lock-order :class:`~lockwatch.Report`, built by lockwatch's own
    thread: the acquiring thread only records the finding.
    """

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self._report = report
        self.report_failed = False

    @property
    def report(self) -> Any:
        return _await_report(self)

    @report.setter
    def report(self, value: Any) -> None:
        self._report = value


def _await_report(carrier: Any) -> Any:
    """The carrier's report, waiting briefly for lockwatch's thread to build it (never mid-acquire)."""
    if carrier._report is None and not carrier.report_failed:
        from lockwatch import _watchdog

        _watchdog.flush(5.0)
    return carrier._report


class AttachError(LockwatchError):
    """``lockwatch dump --attach``: the process cannot be attached to; the message says why and what to do."""


class ProgramNotFound(LockwatchError):
    """``lockwatch run``: the script or module to run does not exist (python would not start it)."""


# Tracebacks and reprs name the public path (lockwatch.DeadlockError), where users import them from.
for _public in (
    LockwatchError, ConfigError, DumpError, DeadlockError, LockOrderViolation, LockOrderWarning, RenderError,
):
    _public.__module__ = "lockwatch"
del _public
