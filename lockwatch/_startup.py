"""The start-up hook: with LOCKWATCH=1, a process patches itself before its first line; children inherit it.

``lockwatch.pth`` (installed in site-packages with the package) holds one line that
site.py runs at every interpreter start-up. With ``LOCKWATCH`` unset that line costs
one environment lookup; with ``LOCKWATCH=1`` it imports this module and calls
:func:`run`, which patches the process with the settings of ``LOCKWATCH_*`` and
``[tool.lockwatch]``, as ``lockwatch run`` would.

The other direction: a patch with ``children=True`` exports ``LOCKWATCH=1`` and the
settings in force (dump directory as an absolute path) to the environment, so that
child processes (multiprocessing spawn and forkserver children, Python subprocesses)
patch themselves at start-up too. The last unpatch restores the environment exactly.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from lockwatch._errors import ConfigError

if TYPE_CHECKING:
    from lockwatch._config import Config
    from lockwatch._patch import Patch

#: The variable that switches the start-up hook on.
ENV_VAR = "LOCKWATCH"
#: The file installed in site-packages whose one line calls :func:`run` when ``LOCKWATCH`` is set.
PTH_NAME = "lockwatch.pth"

_ON = ("1", "true", "yes", "on")
_OFF = ("", "0", "false", "no", "off")

#: The patch the start-up hook made in this process, if any.
startup_patch: Patch | None = None
# site.py may read lockwatch.pth twice (a venv's lib and lib64 are both site directories).
_ran = False


def switched_on(value: str | None) -> bool:
    """Whether a value of LOCKWATCH turns the hook on (1/true/yes/on); ConfigError for anything else."""
    if value is None:
        return False
    text = value.strip().lower()
    if text in _ON:
        return True
    if text in _OFF:
        return False
    raise ConfigError(f"{ENV_VAR} must be 1 (on) or 0 (off), not {value!r}")


def run() -> None:
    """Patch this process from its environment; called by lockwatch.pth during start-up.

    Never raises: a bad setting (or any failure) is said on one line of stderr and
    the program starts unwatched.
    """
    global _ran, startup_patch
    if _ran:
        return
    _ran = True
    try:
        if not switched_on(os.environ.get(ENV_VAR)):
            return
        from lockwatch import _config, _patch

        config = _config.resolve(explicit_source="the start-up hook")
        startup_patch = _patch.Patch(config).start()
    except ConfigError as exc:
        _say(f"{exc}; the program runs unwatched")
    except Exception as exc:  # noqa: BLE001 - the hook must never keep a program from starting
        _say(f"the start-up hook failed ({exc!r}); the program runs unwatched")


def _say(message: str) -> None:
    try:
        sys.stderr.write("lockwatch: " + " ".join(message.split()) + "\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - no usable stderr: nothing left to tell anyone
        pass


# --- children ----------------------------------------------------------------------------------

#: Every variable a patch with ``children=True`` sets (or unsets) for its children.
EXPORTED = (
    ENV_VAR,
    "LOCKWATCH_INTERVAL",
    "LOCKWATCH_DUMP_DIR",
    "LOCKWATCH_ON_DEADLOCK",
    "LOCKWATCH_HANG_TIMEOUT",
    "LOCKWATCH_ORDER",
    "LOCKWATCH_DECLARED_ORDER",
    "LOCKWATCH_BASELINE",
    "LOCKWATCH_SIGNAL",
    "LOCKWATCH_CHILDREN",
)

# The values these variables had before lockwatch first exported settings (None: unset).
_saved_environment: dict[str, str | None] | None = None


def child_environment(config: Config) -> dict[str, str | None]:
    """The variables that make a child run with ``config`` (None: the variable is removed)."""
    on_deadlock = config.on_deadlock
    return {
        ENV_VAR: "1",
        "LOCKWATCH_INTERVAL": repr(config.interval),
        # Absolute: a child may start in another directory, and all dumps belong together.
        "LOCKWATCH_DUMP_DIR": os.path.abspath(config.dump_dir),
        # A callable reaction cannot cross a process boundary: children report.
        "LOCKWATCH_ON_DEADLOCK": on_deadlock if isinstance(on_deadlock, str) else "report",
        "LOCKWATCH_HANG_TIMEOUT": "off" if config.hang_timeout is None else repr(config.hang_timeout),
        "LOCKWATCH_ORDER": config.order,
        "LOCKWATCH_DECLARED_ORDER": ",".join(config.declared_order) or None,
        "LOCKWATCH_BASELINE": os.path.abspath(config.baseline) if config.baseline else None,
        "LOCKWATCH_SIGNAL": "1" if config.signal else "0",
        "LOCKWATCH_CHILDREN": "1",  # and their children in turn
    }


def export_to_children(config: Config | None) -> None:
    """Make the environment match ``config`` (children on) or what it was before (off or None)."""
    global _saved_environment
    if config is not None and config.children:
        wanted = child_environment(config)
        if _saved_environment is None:
            _saved_environment = {name: os.environ.get(name) for name in EXPORTED}
        _set_environment(wanted)
    elif _saved_environment is not None:
        saved, _saved_environment = _saved_environment, None
        _set_environment(saved)


def _set_environment(values: dict[str, Any]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
