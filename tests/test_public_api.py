"""The public surface: exactly these names, each importable and documented."""

from __future__ import annotations

import importlib.metadata
import threading

import lockwatch

PUBLIC = {
    "Config", "ConfigError", "DeadlockError", "DumpError", "Lock", "LockOrderViolation",
    "LockOrderWarning", "LockwatchError", "RenderError", "RLock", "Report", "core", "is_patched",
    "patch", "snapshot", "unpatch", "write_baseline",
}


def test_public_names_are_exactly_the_documented_ones() -> None:
    assert set(lockwatch.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(lockwatch, name).__doc__, f"lockwatch.{name} has no docstring"


def test_errors_form_one_hierarchy() -> None:
    for name in ("ConfigError", "DeadlockError", "DumpError", "LockOrderViolation", "RenderError"):
        assert issubclass(getattr(lockwatch, name), lockwatch.LockwatchError)
    assert issubclass(lockwatch.ConfigError, ValueError)
    assert issubclass(lockwatch.LockOrderWarning, UserWarning)


def test_importing_lockwatch_changes_nothing() -> None:
    assert not lockwatch.is_patched()
    assert threading.Lock is not lockwatch.Lock


def test_entry_points_are_installed() -> None:
    entry_points = importlib.metadata.entry_points()
    scripts = {ep.name: ep.value for ep in entry_points.select(group="console_scripts")}
    plugins = {ep.name: ep.value for ep in entry_points.select(group="pytest11")}
    assert scripts.get("lockwatch") == "lockwatch.cli:main"
    assert plugins.get("lockwatch") == "lockwatch.pytest_plugin"
    assert lockwatch.__version__ == importlib.metadata.version("lockwatch")


def test_errors_are_named_by_their_public_path() -> None:
    import pickle

    for name in ("LockwatchError", "ConfigError", "DumpError", "DeadlockError", "LockOrderViolation", "RenderError"):
        cls = getattr(lockwatch, name)
        assert f"{cls.__module__}.{cls.__qualname__}" == f"lockwatch.{name}"
        assert type(pickle.loads(pickle.dumps(cls("message")))) is cls
