"""One configuration object, built in layers: defaults, pyproject.toml, environment, arguments."""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import stat
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

OnDeadlock = str | Callable[..., Any]


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
    "on_deadlock": "What to do when a deadlock is found (a cycle of waits on locks, joins, futures, "
    "tasks or imports; a lock whose owner is gone; every thread asleep): report (dump and keep "
    "running), break (raise DeadlockError in one victim thread's lock wait), exit (dump, then end "
    f"the process with status {DEADLOCK_EXIT_STATUS}; never when the program handles signals itself "
    "and every thread is only asleep).",
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


#: Smallest watchdog interval accepted, in seconds: below 10 ms the watchdog would only burn CPU.
MIN_INTERVAL = 0.01


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
        names = tuple(part.strip() for part in value.split(",") if part.strip())
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        names = tuple(value)
    else:
        raise ConfigError(f"{name} must be a list of lock names (from {source}), not {value!r}")
    # An order with a name twice ("a, b, a") puts a lock both before and after another: no order at all.
    seen: set[str] = set()
    for lock_name in names:
        if lock_name in seen:
            raise ConfigError(f"{name} names {lock_name!r} twice (from {source}): each lock has one place in the order")
        seen.add(lock_name)
    return names


def validate(name: str, value: Any, source: str) -> Any:
    """Check and normalise one setting; the error names the setting and where it came from."""
    if name == "interval":
        interval = _parse_number(value, name, source, allow_none=False)
        if interval is not None and interval < MIN_INTERVAL:
            raise ConfigError(f"interval must be at least {MIN_INTERVAL:g} s (from {source}), not {value!r}")
        return interval
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
    raise _unknown_setting(name, source)


def _unknown_setting(name: str, source: str) -> ConfigError:
    return ConfigError(f"unknown lockwatch setting {name!r} (from {source}){_did_you_mean(name)}; known: {', '.join(FIELDS)}")


def _did_you_mean(name: str, choices: Iterable[str] = FIELDS) -> str:
    close = difflib.get_close_matches(name.replace("-", "_").lower(), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def apply(config: Config, values: Mapping[str, Any], source: str) -> Config:
    """Layer ``values`` over ``config``; a value of None means "not given" except where noted."""
    changes = {}
    for name, value in values.items():
        key = name.replace("-", "_")
        if key not in FIELDS:
            raise _unknown_setting(name, source)
        changes[key] = validate(key, value, source)
    return config.replace(**changes)


#: ``LOCKWATCH_*`` variables that are not settings but are read elsewhere: the pure-Python core
#: switch, ``lockwatch dump``'s gdb and attach hand-over, children under ``run --children``, and
#: the tests' switch that rewrites golden files. Other modules may add theirs.
OTHER_ENVIRONMENT = {"LOCKWATCH_PURE", "LOCKWATCH_GDB", "LOCKWATCH_ATTACH", "LOCKWATCH_CHILDREN", "LOCKWATCH_REGEN_GOLDEN"}

# Unknown variables already warned about (once per process each).
_warned_environment: set[str] = set()


def from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``LOCKWATCH_*`` settings present in ``environ`` (e.g. LOCKWATCH_INTERVAL).

    An unknown ``LOCKWATCH_*`` variable (a typo like LOCKWATCH_INTERVALL) is
    ignored with a one-line warning on stderr, once per process, naming the
    closest setting: the environment is shared with other programs, so it is
    not an error.
    """
    found = {}
    for name in FIELDS:
        value = environ.get("LOCKWATCH_" + name.upper())
        if value is not None and value != "":
            found[name] = value
    known = {"LOCKWATCH_" + name.upper() for name in FIELDS} | OTHER_ENVIRONMENT
    for variable in sorted(environ):
        if variable.startswith("LOCKWATCH_") and variable not in known and variable not in _warned_environment:
            _warned_environment.add(variable)
            suffixes = sorted(name[len("LOCKWATCH_"):] for name in known)
            close = difflib.get_close_matches(variable[len("LOCKWATCH_"):], suffixes, n=1, cutoff=0.6)
            hint = f"; did you mean LOCKWATCH_{close[0]}?" if close else ""
            sys.stderr.write(f"lockwatch: warning: unknown environment variable {variable} ignored{hint}\n")
    return found


def check_together(config: Config, sources: Mapping[str, str]) -> Config:
    """Reject settings that are fine alone but absurd together; ``sources`` says where each came from.

    A hang_timeout below the interval could never be honoured (hangs are looked for
    once per interval) and only floods the dump directory.
    """
    if config.hang_timeout is not None and config.hang_timeout < config.interval:
        raise ConfigError(
            f"hang_timeout must not be below interval (from {sources.get('hang_timeout', 'the defaults')}): "
            f"{config.hang_timeout:g} s < {config.interval:g} s (interval from {sources.get('interval', 'the defaults')})"
        )
    return config


# -- finding the project's pyproject.toml ---------------------------------------------------------
#
# As pytest finds its rootdir (pytest 9, _pytest/config/findpaths.py, locate_config): from the
# start directory upwards, the first directory holding pytest's own configuration is the
# project root: pytest.toml, .pytest.toml, pytest.ini, .pytest.ini (even empty), a
# pyproject.toml with [tool.pytest] or [tool.pytest.ini_options], tox.ini with [pytest],
# setup.cfg with [tool:pytest]. lockwatch adds its own table: a pyproject.toml with
# [tool.lockwatch] claims its directory too. Without any of these, the nearest
# pyproject.toml (as pytest since 8.1). The project's pyproject.toml is the one in the
# root directory, if any: never one further up.

_PYTEST_FILES = ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini")
_INI_SECTIONS = {"tox.ini": re.compile(r"^\[pytest\]\s*$", re.M), "setup.cfg": re.compile(r"^\[tool:pytest\]\s*$", re.M)}
# Most of a file read while looking for the project root: config files are small, and
# other people's files on the way up must not cost much.
_MAX_CONFIG_BYTES = 1 << 20


def find_pyproject(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The project's pyproject.toml, found from ``start`` (default: the current directory) as pytest finds its rootdir."""
    try:
        here = Path(start or os.getcwd()).resolve()
    except OSError:
        return None
    nearest: Path | None = None
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        pyproject = candidate if _is_file(candidate) else None
        if _claims_root(directory, pyproject):
            return pyproject
        if nearest is None:
            nearest = pyproject
    return nearest


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _head(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(_MAX_CONFIG_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


def _claims_root(directory: Path, pyproject: Path | None) -> bool:
    if any(_is_file(directory / name) for name in _PYTEST_FILES):
        return True
    if pyproject is not None:
        tool = _tool_tables(_head(pyproject))
        if "pytest" in tool or "lockwatch" in tool:
            return True
    return any(
        _is_file(directory / name) and section.search(_head(directory / name)) is not None
        for name, section in _INI_SECTIONS.items()
    )


def _tool_tables(text: str) -> dict[str, Any]:
    """The [tool] table of pyproject text (empty when unparsable: that is reported when it is read)."""
    if tomllib is None:
        return {"lockwatch": True} if _LOCKWATCH_TABLE.search(text) else {}
    try:
        tool = tomllib.loads(text).get("tool", {})
    except (tomllib.TOMLDecodeError, RecursionError):
        return {}
    return tool if isinstance(tool, dict) else {}


def untrusted(path: str | os.PathLike[str]) -> str | None:
    """Why a config file may not be believed, or None: it and its directory must be the user's own.

    Another user's file, or one in a directory others can write to (like /tmp), could send
    dumps anywhere or make lockwatch flood the disk. Group-writable is fine only for the
    user's own group (user private groups).
    """
    if not hasattr(os, "geteuid"):
        return None
    uid, gid = os.geteuid(), os.getegid()
    target = Path(path)
    # The directory, the file as named (a symlink must be the user's too), the file read.
    for place, what, look in ((target.parent, "directory", os.stat), (target, "file", os.lstat), (target, "file", os.stat)):
        try:
            info = look(place)
        except OSError:
            return None  # gone: nothing will be read from it
        if info.st_uid != uid:
            return f"the {what} is owned by uid {info.st_uid}, not by you (uid {uid})"
        if stat.S_ISLNK(info.st_mode):
            continue  # a symlink's own mode means nothing
        if info.st_mode & stat.S_IWOTH or (info.st_mode & stat.S_IWGRP and info.st_gid != gid):
            return f"the {what} is writable by others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def from_pyproject(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The ``[tool.lockwatch]`` table of a pyproject.toml (empty if absent or unreadable).

    Without a TOML parser (Python 3.10 without ``tomli``) a file that has a
    ``[tool.lockwatch]`` table is a ConfigError saying so; other files are skipped.
    """
    if path is None:
        return {}
    reason = untrusted(path)
    if reason is not None:
        if _LOCKWATCH_TABLE.search(_head(Path(path))):
            warnings.warn(f"lockwatch: ignoring [tool.lockwatch] in {path}: {reason}", UserWarning, stacklevel=2)
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
    # A key lockwatch does not know is a typo more often than not ("intervall"): say so, never ignore it.
    for key in table:
        if key.replace("-", "_") not in FIELDS:
            raise ConfigError(
                f"unknown key {key!r} in [tool.lockwatch] in {path}{_did_you_mean(key)}; known: {', '.join(FIELDS)}"
            )
    return {k.replace("-", "_"): v for k, v in table.items()}


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
    sources: dict[str, str] = {}

    def layer(values: Mapping[str, Any], source: str) -> None:
        nonlocal config
        config = apply(config, values, source)
        sources.update((name.replace("-", "_"), source) for name in values)

    if pyproject is True:
        pyproject = find_pyproject()
    if pyproject:
        layer(from_pyproject(pyproject), f"[tool.lockwatch] in {pyproject}")
    env = from_environment(os.environ if environ is None else environ)
    for name, value in env.items():
        layer({name: value}, f"environment variable LOCKWATCH_{name.upper()}")
    if explicit:
        layer({k: v for k, v in explicit.items() if v is not None}, explicit_source)
    return check_together(config, sources)
