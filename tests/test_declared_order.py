"""Declared lock order: ranks on locks and a declared sequence of names, in code and in pyproject.toml."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from _order_helpers import order_warnings

import lockwatch
from lockwatch._errors import LockOrderViolation

pytestmark = pytest.mark.timeout(30)


def nested(outer: Any, inner: Any) -> None:
    with outer:
        with inner:
            pass


def test_rank_violation_names_the_rule(watch: Any, tmp_path: Path) -> None:
    watch()
    db = lockwatch.Lock(name="db", rank=10)
    cache = lockwatch.Lock(name="cache", rank=20)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nested(cache, db)
    [warning] = order_warnings(record)
    rule = 'declared order: "db" (rank 10) must be taken before "cache" (rank 20)'
    assert warning.report.rule == rule
    assert str(warning) == (
        f'lock "db" was acquired while holding lock "cache" (thread MainThread), against the {rule}'
    )
    [[edge]] = warning.report.order_cycles
    assert (edge.from_, edge.to) == (cache.id, db.id)
    assert edge.stack[-1].function == "nested"
    [dump] = (tmp_path / "dumps").glob("lock-order-*.json")
    assert json.loads(dump.read_text())["rule"] == rule


def test_rank_violation_is_reported_without_any_cycle(watch: Any) -> None:
    # lockdep's point: the first wrong order is enough, no second thread is needed.
    watch()
    low = lockwatch.RLock(name="low", rank=1)
    high = lockwatch.Lock(name="high", rank=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nested(high, low)
        nested(high, low)  # known edge: not reported twice
    assert len(order_warnings(record)) == 1


def test_equal_ranks_must_not_nest_but_reentry_is_fine(watch: Any) -> None:
    watch()
    left = lockwatch.Lock(name="left", rank=5)
    right = lockwatch.Lock(name="right", rank=5)
    reentrant = lockwatch.RLock(name="reentrant", rank=5)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with reentrant:
            with reentrant:  # the same lock again: reentry, not an order
                pass
        assert order_warnings(record) == []
        nested(left, right)
    [warning] = order_warnings(record)
    assert warning.report.rule == (
        'declared order: "right" (rank 5) and "left" (rank 5) have the same rank and must not be held together'
    )


def test_rank_violation_raises_before_blocking(watch: Any) -> None:
    watch(order="raise")
    db = lockwatch.Lock(name="db", rank=10)
    cache = lockwatch.Lock(name="cache", rank=20)
    outcome: dict[str, Any] = {}

    def worker() -> None:
        with cache:
            try:
                db.acquire()  # held by the main thread: would block if let through
            except LockOrderViolation as exc:
                outcome["error"] = exc

    with db:
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(10)
    assert not thread.is_alive()
    error = outcome["error"]
    assert error.report.rule == 'declared order: "db" (rank 10) must be taken before "cache" (rank 20)'
    assert not db.locked() and not cache.locked()


def test_declared_sequence_in_code(watch: Any) -> None:
    watch(declared_order=["db", "cache", "log"])
    # One line each: locks made by one line of code are one lock class, whatever their names.
    db = lockwatch.Lock(name="db")
    cache = lockwatch.Lock(name="cache")
    log = lockwatch.Lock(name="log")
    other = lockwatch.Lock(name="unlisted")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nested(db, log)
        nested(cache, log)
        nested(other, db)  # unlisted locks are not constrained by the sequence
        nested(cache, other)
        assert order_warnings(record) == []
        nested(log, db)
    [warning] = order_warnings(record)
    assert warning.report.rule == 'declared order: "db" must be taken before "log" (declared_order = ["db", "cache", "log"])'


def test_declared_sequence_from_pyproject(watch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.lockwatch]\ndeclared_order = ["outer", "inner"]\n')
    monkeypatch.chdir(tmp_path)
    watch(order="raise")
    outer, inner = lockwatch.Lock(name="outer"), lockwatch.Lock(name="inner")
    nested(outer, inner)
    with pytest.raises(LockOrderViolation) as caught:
        nested(inner, outer)
    assert caught.value.report.rule == 'declared order: "outer" must be taken before "inner" (declared_order = ["outer", "inner"])'
    assert not outer.locked() and not inner.locked()


def test_a_new_declared_order_rechecks_known_orders(watch: Any) -> None:
    watch()
    first, second = lockwatch.Lock(name="first"), lockwatch.Lock(name="second")
    nested(second, first)  # learned and settled while nothing was declared
    watch(declared_order=["first", "second"])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nested(second, first)
    [warning] = order_warnings(record)
    assert '"first" must be taken before "second"' in warning.report.rule


def test_rank_violation_that_also_closes_a_cycle_is_one_report(watch: Any, tmp_path: Path) -> None:
    watch()
    db = lockwatch.Lock(name="db", rank=10)
    cache = lockwatch.Lock(name="cache", rank=20)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nested(db, cache)  # the declared order
        assert order_warnings(record) == []
        nested(cache, db)
        nested(cache, db)
    [warning] = order_warnings(record)
    assert warning.report.rule is not None
    assert [(e.from_label, e.to_label) for e in warning.report.order_cycles[0]] == [("db", "cache"), ("cache", "db")]
    assert "it also closes a cycle" in str(warning)
    assert len(list((tmp_path / "dumps").glob("lock-order-*.json"))) == 1


@pytest.mark.timeout(60)
def test_ranks_are_not_checked_without_patch_as_documented(tmp_path: Path) -> None:
    # What the README promises, in a process lockwatch never patched: no check, no warning, no dump.
    import subprocess
    import sys

    program = (
        "import warnings, lockwatch\n"
        "warnings.simplefilter('error')\n"
        "db = lockwatch.Lock(name='db', rank=10)\n"
        "cache = lockwatch.Lock(name='cache', rank=20)\n"
        "with cache:\n"
        "    with db:\n"
        "        pass\n"
        "print('unchecked')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "unchecked\n", "")
    assert not list(tmp_path.iterdir())


# --- declared names match the labels lockwatch computes -----------------------------------------


class _Resources:
    def __init__(self) -> None:
        self.locks = {name: threading.Lock() for name in ("db", "cache")}


def _order_reports(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "dumps").glob("lock-order-*.json"))]


def test_declared_order_matches_attribute_labels(watch: Any, tmp_path: Path) -> None:
    from lockwatch import _watchdog

    watch(declared_order=["_Resources.locks['db']", "locks['cache']"])  # a whole label, or its end
    resources = _Resources()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nested(resources.locks["cache"], resources.locks["db"])  # db must come first
    assert _watchdog.flush()
    [report] = _order_reports(tmp_path)
    assert report["rule"] == (
        "declared order: \"_Resources.locks['db']\" must be taken before \"_Resources.locks['cache']\" "
        "(declared_order = [\"_Resources.locks['db']\", \"locks['cache']\"])"
    )
    assert [(e["from_label"], e["to_label"]) for e in report["order_cycles"][0]] == [
        ("_Resources.locks['cache']", "_Resources.locks['db']")
    ]


def test_once_labelled_locks_are_judged_when_taken_and_refused_under_raise(watch: Any) -> None:
    from lockwatch import _watchdog

    watch(order="raise", declared_order=["locks['db']", "locks['cache']"])
    resources = _Resources()
    nested(resources.locks["db"], resources.locks["cache"])  # the declared order: labelled by the reporter
    assert _watchdog.flush()
    with pytest.raises(LockOrderViolation) as caught:
        nested(resources.locks["cache"], resources.locks["db"])
    assert "\"_Resources.locks['db']\" must be taken before \"_Resources.locks['cache']\"" in str(caught.value)
    assert not resources.locks["db"].locked() and not resources.locks["cache"].locked()


@pytest.mark.timeout(60)
def test_a_declared_name_that_never_matched_is_said_at_exit(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "app.py").write_text(
        "import threading\n"
        "class Account:\n"
        "    def __init__(self):\n"
        "        self.lock = threading.Lock()\n"
        "a, b = Account(), Account()\n"
        "audit_lock = threading.Lock()\n"
        "with audit_lock:\n"
        "    with a.lock:\n"
        "        pass\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}
    done = subprocess.run(
        [sys.executable, "-m", "lockwatch", "run", "--declared-order", "audit_lock,Account.lock,ledger", "app.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        'lockwatch: declared_order names "ledger", but no lock was ever called that '
        "(by name=, or by an attribute or global holding it, like Account.lock)\n"
    )
