"""lockwatch: deadlock detection and lock instrumentation for Python threads."""

from lockwatch._baseline import write_baseline
from lockwatch._config import Config
from lockwatch._errors import (
    ConfigError,
    DeadlockError,
    DumpError,
    LockOrderViolation,
    LockOrderWarning,
    LockwatchError,
    RenderError,
)
from lockwatch._locks import Lock, RLock, core
from lockwatch._model import Report
from lockwatch._patch import is_patched, patch, unpatch
from lockwatch._snapshot import take as snapshot

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "DeadlockError",
    "DumpError",
    "Lock",
    "LockOrderViolation",
    "LockOrderWarning",
    "LockwatchError",
    "RenderError",
    "RLock",
    "Report",
    "core",
    "is_patched",
    "patch",
    "snapshot",
    "unpatch",
    "write_baseline",
]
