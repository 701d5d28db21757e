"""Lock-order baselines: accepted orders are written once, later runs report only new ones."""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _order_helpers import order_warnings

import lockwatch
from lockwatch import _baseline, _order, _watchdog
from lockwatch._errors import ConfigError, LockOrderViolation

pytestmark = pytest.mark.timeout(30)

HERE = "tests/test_baseline.py"


def new_run(start: Callable[..., Any], **settings: Any) -> None:
    """What a second process would be: nothing learned, a fresh activation."""
    _order.reset()
    start(**settings)  # the newest patch's settings are in force


class Store:
    """Two locks with fixed creation sites: each run makes new instances of the same classes."""

    def __init__(self) -> None:
        self.index = lockwatch.Lock()
        self.data = lockwatch.Lock()
        self.journal = lockwatch.Lock()


def take(outer: Any, inner: Any, name: str) -> None:
    def body() -> None:
        with outer:
            with inner:
                pass

    thread = threading.Thread(target=body, name=name)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()


def inversion(store: Store) -> None:
    take(store.index, store.data, "reader")
    take(store.data, store.index, "writer")


def site(lock: Any) -> str:
    return f"{HERE}:{lock.site[1]}"


def label(lock: Any) -> str:
    return f"Lock from test_baseline.py:{lock.site[1]}"


def test_write_baseline_is_stable_json(watch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).parent.parent)
    watch()
    store = Store()
    _order.set_test_name("test_write")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inversion(store)
    finally:
        _order.set_test_name(None)
    path = tmp_path / "lockwatch-baseline.json"
    assert lockwatch.write_baseline(path) == str(path)
    document = json.loads(path.read_text())
    assert document["lockwatch_baseline"] == 1
    assert document["suppressions"] == []
    mine = [e for e in document["edges"] if e["from"].startswith(HERE)]
    assert mine == sorted(
        [
            {"from": site(store.index), "to": site(store.data), "from_label": label(store.index),
             "to_label": label(store.data), "thread": "reader", "test": "test_write"},
            {"from": site(store.data), "to": site(store.index), "from_label": label(store.data),
             "to_label": label(store.index), "thread": "writer", "test": "test_write"},
        ],
        key=lambda e: (e["from"], e["to"]),
    )
    first = path.read_text()
    lockwatch.write_baseline(path)
    assert path.read_text() == first  # deterministic


def test_rerun_with_baseline_reports_nothing(watch: Any, tmp_path: Path) -> None:
    watch()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        inversion(Store())
    assert len(order_warnings(record)) == 1  # without a baseline: reported
    path = tmp_path / "baseline.json"
    lockwatch.write_baseline(path)

    new_run(watch, baseline=str(path))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        inversion(Store())
    assert order_warnings(record) == []
    assert _watchdog.flush()  # dumps are written by lockwatch's own thread
    assert len(list((tmp_path / "dumps").glob("*.json"))) == 1  # only the first run's


def test_a_new_edge_not_in_the_baseline_is_reported(watch: Any, tmp_path: Path) -> None:
    watch()
    take(Store().index, Store().data, "reader")  # only index -> data is known and accepted
    path = tmp_path / "baseline.json"
    lockwatch.write_baseline(path)

    new_run(watch, baseline=str(path), order="raise")
    store = Store()
    take(store.index, store.data, "reader")
    with pytest.raises(LockOrderViolation) as caught:
        with store.data:
            with store.index:
                pass
    cycle = caught.value.report.order_cycles[0]
    assert [(e.from_, e.to) for e in cycle] == [(store.index.id, store.data.id), (store.data.id, store.index.id)]


def test_suppressed_edges_never_take_part_in_reports(watch: Any, tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    store = Store()
    path.write_text(
        json.dumps(
            {
                "lockwatch_baseline": 1,
                "edges": [],
                "suppressions": [
                    {"from": site(store.data), "to": site(store.index),
                     "reason": "writer only runs at start-up, before any reader exists"}
                ],
            }
        )
    )
    watch(baseline=str(path))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        inversion(store)
        assert order_warnings(record) == []
        # A cycle through unsuppressed edges is still reported.
        take(store.data, store.journal, "journaler")
        take(store.journal, store.data, "replayer")
    [warning] = order_warnings(record)
    assert {(e.from_, e.to) for e in warning.report.order_cycles[0]} == {
        (store.data.id, store.journal.id),
        (store.journal.id, store.data.id),
    }

    # Rewriting the baseline keeps the suppression and its reason.
    lockwatch.write_baseline(path)
    document = json.loads(path.read_text())
    assert document["suppressions"] == [
        {"from": site(store.data), "to": site(store.index),
         "reason": "writer only runs at start-up, before any reader exists"}
    ]
    assert {(e["from"], e["to"]) for e in document["edges"]} >= {
        (site(store.index), site(store.data)),
        (site(store.data), site(store.journal)),
    }


def test_unnamed_locks_of_one_line_are_never_accepted_by_a_baseline(watch: Any, tmp_path: Path) -> None:
    # Two Stores' index locks share a creation site: nothing in hand on the acquiring
    # thread tells which is which, so no recorded order may stand for them.
    watch()
    first, second = Store(), Store()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        take(first.index, second.index, "one")
        take(second.index, first.index, "two")
    path = tmp_path / "baseline.json"
    lockwatch.write_baseline(path)
    edges = json.loads(path.read_text())["edges"]
    assert not [e for e in edges if e["from"] == e["to"]]

    new_run(watch, baseline=str(path))
    first, second = Store(), Store()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        take(first.index, second.index, "one")
        take(second.index, first.index, "two")
    assert len(order_warnings(record)) == 1


def _dict_of_locks(make: Any) -> dict[str, Any]:
    return {name: make(name) for name in ("db", "cache")}  # one creation site for both


@pytest.mark.parametrize("named", [False, True], ids=["threading.Lock", "lockwatch.Lock(name=)"])
def test_a_baseline_does_not_hide_a_new_inversion_within_one_class(watch: Any, tmp_path: Path, named: bool) -> None:
    make = (lambda name: lockwatch.Lock(name=name)) if named else (lambda name: threading.Lock())
    watch()
    locks = _dict_of_locks(make)
    take(locks["db"], locks["cache"], "good")  # the known-good run: db -> cache only
    path = tmp_path / "baseline.json"
    lockwatch.write_baseline(path)
    same_site = [e for e in json.loads(path.read_text())["edges"] if e["from"] == e["to"]]
    if named:
        assert [(e["from_name"], e["to_name"]) for e in same_site] == [("db", "cache")]

    new_run(watch, baseline=str(path))
    locks = _dict_of_locks(make)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        take(locks["db"], locks["cache"], "good")  # as recorded: accepted, nothing to say
        assert order_warnings(record) == []
        take(locks["cache"], locks["db"], "new")  # not recorded: reported, baseline or not
    assert len(order_warnings(record)) == 1


def test_named_locks_of_one_line_are_accepted_exactly_as_recorded(watch: Any, tmp_path: Path) -> None:
    def make(name: str) -> Any:
        return lockwatch.Lock(name=name)  # one creation site, in both runs

    watch()
    locks = _dict_of_locks(make)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        take(locks["db"], locks["cache"], "one")
        take(locks["cache"], locks["db"], "two")  # an accepted inversion, recorded both ways
    path = tmp_path / "baseline.json"
    lockwatch.write_baseline(path)

    new_run(watch, baseline=str(path))
    locks = _dict_of_locks(make)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        take(locks["db"], locks["cache"], "one")
        take(locks["cache"], locks["db"], "two")
    assert order_warnings(record) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not JSON"),
        ("[1, 2]", 'is not a lockwatch baseline (no "lockwatch_baseline" version key)'),
        ('{"lockwatch_baseline": 2, "edges": []}', "format version 2 is newer"),
        ('{"lockwatch_baseline": 1, "edges": {}}', '"edges" must be a list, not dict'),
        ('{"lockwatch_baseline": 1, "edges": [{"from": "a.py:1"}]}', 'edges[0] needs "from" and "to"'),
        (
            '{"lockwatch_baseline": 1, "suppressions": [{"from": "a.py:1", "to": "a.py:2"}]}',
            'suppressions[0] (a.py:1 -> a.py:2) needs a "reason"',
        ),
        (
            '{"lockwatch_baseline": 1, "suppressions": [{"from": "a.py:1", "to": "a.py:2", "reason": " "}]}',
            'needs a "reason"',
        ),
    ],
    ids=["missing", "not-json", "not-baseline", "newer", "edges-not-list", "edge-shape", "no-reason", "blank-reason"],
)
def test_bad_baseline_is_a_clear_config_error(
    watch: Any, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=".*".join(map(_escape, ("lock-order baseline", str(path), message)))):
        _baseline.load_baseline(path)
    with pytest.raises(ConfigError):
        watch(baseline=str(path))
    assert not lockwatch.is_patched()  # a failed start leaves threading as it was
    if content is not None:
        with pytest.raises(ConfigError):
            lockwatch.write_baseline(path)  # would lose what is in the file
        assert path.read_text() == content


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_baseline_from_environment(watch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "baseline.json"
    path.write_text('{"lockwatch_baseline": 1, "edges": [], "suppressions": []}')
    monkeypatch.setenv("LOCKWATCH_BASELINE", str(path))
    watch()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        inversion(Store())
    assert len(order_warnings(record)) == 1  # an empty baseline accepts nothing


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not UTF-8 text"),
        ("{}".encode("utf-16"), "not UTF-8 text"),
        (b"", "the file is empty"),
        (b"   \n\t  \n", "only white space"),
        (b"[" * 100_000, "nested too deeply"),
    ],
    ids=["binary", "utf-16", "empty", "spaces", "deep"],
)
def test_undecodable_baseline_is_a_clear_config_error(
    watch: Any, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "baseline.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=_escape(message)):
        _baseline.load_baseline(path)


@pytest.mark.timeout(60)
def test_binary_baseline_on_the_command_line_is_one_line_status_3(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "app.py").write_text("print('ran')\n")
    (tmp_path / "baseline.json").write_bytes(b"\xff\xfe\x00\x01binary")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}
    done = subprocess.run(
        [sys.executable, "-m", "lockwatch", "run", "--baseline", "baseline.json", "app.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 3, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lockwatch: error: "), done.stderr
    assert "baseline.json" in lines[0] and "not UTF-8" in lines[0]
    assert "ran" not in done.stdout
