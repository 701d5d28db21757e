"""One configuration object, built in layers: defaults, pyproject.toml, environment, arguments."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Union

from lockwatch._errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    # tomllib is 3.11+; tomli (a dependency on 3.10) is the same parser under another name.
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

# A [tool.lockwatch] table (or a dotted tool.lockwatch key) in pyproject text, found
# without a TOML parser so that an unreadable table is an error, not silently ignored.
_LOCKWATCH_TABLE = re.compile(r'^\s*\[?\s*"?tool"?\s*\.\s*"?lockwatch"?\s*[\].=]', re.MULTILINE)

ON_DEADLOCK_CHOICES = ("report", "break", "exit")
ORDER_CHOICES = ("off", "warn", "raise")

#: Exit status of a process ended by ``on_deadlock="exit"``.
DEADLOCK_EXIT_STATUS = 86

OnDeadlock = Union[str, Callable[..., Any]]


@dataclass(frozen=True)
class Config:
    """The settings in force; every field has one meaning everywhere (see DESIGN.md)."""

    #: Seconds between watchdog looks.
    interval: float = 0.5
    #: Where dumps go (created on first write).
    dump_dir: str = "lockwatch-dumps"
    #: ``report``, ``break``, ``exit``, or a callable taking the deadlock Report.
    on_deadlock: OnDeadlock = "report"
    #: Seconds a thread may stay blocked before a hang dump; None turns hang dumps off.
    hang_timeout: float | None = None
    #: Lock-order checking: ``off``, ``warn`` or ``raise``.
    order: str = "warn"
    #: Declared lock order: lock names, outermost first.
    declared_order: tuple[str, ...] = ()
    #: Lock-order baseline file to check against (edges in it are accepted).
    baseline: str | None = None
    #: Whether SIGUSR1 writes a snapshot dump.
    signal: bool = True
    #: Whether child processes (multiprocessing, Python subprocesses) are watched too:
    #: the settings in force are exported to them through LOCKWATCH=1 and LOCKWATCH_*.
    children: bool = False

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


FIELDS = tuple(f.name for f in dataclasses.fields(Config))

#: One help text per setting, shared by the CLI options, the pytest options and ini keys.
HELP = {
    "interval": "Seconds between watchdog looks for deadlocks (default 0.5).",
    "dump_dir": "Directory for dumps (JSON + Graphviz); created when first needed (default ./lockwatch-dumps).",
    "on_deadlock": "What to do when a deadlock is found: report (dump and keep running), "
    "break (raise DeadlockError in one victim thread), exit (dump, then end the process "
    f"with status {DEADLOCK_EXIT_STATUS}).",
    "hang_timeout": "Seconds a thread may stay blocked on a lock or condition before a hang "
    "dump is written (default: off).",
    "order": "Lock-order checking: off, warn (LockOrderWarning + dump, the default) or raise "
    "(LockOrderViolation from the acquire that closes a cycle).",
    "declared_order": "Declared lock order: lock names, outermost first (comma-separated in "
    "the environment and on the command line).",
    "baseline": "Lock-order baseline file: orders recorded in it are accepted, only new ones "
    "are reported.",
    "signal": "Whether SIGUSR1 writes a snapshot dump (default on).",
    "children": "Watch child processes too (multiprocessing children, Python subprocesses): "
    "they get LOCKWATCH=1 and these settings, and write their own dumps (with their pid in the "
    "names) into the same dump directory.",
}


def _parse_number(value: Any, name: str, source: str, *, allow_none: bool) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
        if allow_none:
            return None
        raise ConfigError(f"{name} must be a positive number (from {source}), not {value!r}")
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a positive number (from {source}), not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a positive number (from {source}), not {value!r}") from None
    if not number > 0 or number != number or number == float("inf"):
        raise ConfigError(f"{name} must be a positive number (from {source}), not {value!r}")
    return number


def _parse_bool(value: Any, name: str, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
    raise ConfigError(f"{name} must be true or false (from {source}), not {value!r}")


def _parse_names(value: Any, name: str, source: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{name} must be a list of lock names (from {source}), not {value!r}")


def validate(name: str, value: Any, source: str) -> Any:
    """Check and normalise one setting; the error names the setting and where it came from."""
    if name == "interval":
        return _parse_number(value, name, source, allow_none=False)
    if name == "hang_timeout":
        return _parse_number(value, name, source, allow_none=True)
    if name == "dump_dir":
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"dump_dir must be a directory path (from {source}), not {value!r}")
        return value
    if name == "on_deadlock":
        if callable(value):
            return value
        if value not in ON_DEADLOCK_CHOICES:
            raise ConfigError(
                f"on_deadlock must be one of {', '.join(ON_DEADLOCK_CHOICES)} or a callable "
                f"(from {source}), not {value!r}"
            )
        return value
    if name == "order":
        if value is False:
            return "off"
        if value not in ORDER_CHOICES:
            raise ConfigError(
                f"order must be one of {', '.join(ORDER_CHOICES)} (from {source}), not {value!r}"
            )
        return value
    if name == "declared_order":
        return _parse_names(value, name, source)
    if name == "baseline":
        if value is None or value == "":
            return None
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise ConfigError(f"baseline must be a file path (from {source}), not {value!r}")
        return value
    if name in ("signal", "children"):
        return _parse_bool(value, name, source)
    raise ConfigError(f"unknown lockwatch setting {name!r} (from {source}); known: {', '.join(FIELDS)}")


def apply(config: Config, values: Mapping[str, Any], source: str) -> Config:
    """Layer ``values`` over ``config``; a value of None means "not given" except where noted."""
    changes = {}
    for name, value in values.items():
        key = name.replace("-", "_")
        if key not in FIELDS:
            raise ConfigError(f"unknown lockwatch setting {name!r} (from {source}); known: {', '.join(FIELDS)}")
        changes[key] = validate(key, value, source)
    return config.replace(**changes)


def from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``LOCKWATCH_*`` settings present in ``environ`` (e.g. LOCKWATCH_INTERVAL)."""
    found = {}
    for name in FIELDS:
        value = environ.get("LOCKWATCH_" + name.upper())
        if value is not None and value != "":
            found[name] = value
    return found


def find_pyproject(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` (default: the current directory)."""
    try:
        here = Path(start or os.getcwd()).resolve()
    except OSError:
        return None
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def from_pyproject(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The ``[tool.lockwatch]`` table of a pyproject.toml (empty if absent or unreadable).

    Without a TOML parser (Python 3.10 without ``tomli``) a file that has a
    ``[tool.lockwatch]`` table is a ConfigError saying so; other files are skipped.
    """
    if path is None:
        return {}
    if tomllib is None:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            return {}
        if _LOCKWATCH_TABLE.search(text):
            raise ConfigError(
                f"[tool.lockwatch] in {path} cannot be read: Python {sys.version_info[0]}."
                f"{sys.version_info[1]} has no tomllib; install tomli (pip install tomli)"
            )
        return {}
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    table = document.get("tool", {}).get("lockwatch", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.lockwatch] in {path} must be a table")
    # Keys that other front ends own (e.g. the pytest plugin's "enabled") are not settings.
    return {k.replace("-", "_"): v for k, v in table.items() if k.replace("-", "_") in FIELDS}


def resolve(
    explicit: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    pyproject: str | os.PathLike[str] | None | bool = True,
    explicit_source: str = "arguments",
) -> Config:
    """Build the Config: defaults, then pyproject.toml, then LOCKWATCH_* variables, then ``explicit``.

    ``pyproject=True`` looks for the nearest pyproject.toml; a path uses that file;
    False or None skips it. Explicit values of None are "not given" and override nothing.
    """
    config = Config()
    if pyproject is True:
        pyproject = find_pyproject()
    if pyproject:
        table = from_pyproject(pyproject)
        config = apply(config, table, f"[tool.lockwatch] in {pyproject}")
    env = from_environment(os.environ if environ is None else environ)
    for name, value in env.items():
        config = apply(config, {name: value}, f"environment variable LOCKWATCH_{name.upper()}")
    if explicit:
        given = {k: v for k, v in explicit.items() if v is not None}
        config = apply(config, given, explicit_source)
    return config
