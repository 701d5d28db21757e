"""Graphviz rendering: deterministic DOT (golden files), svg/png/pdf with dot, clear errors without it.

Regenerate the golden files after an intended change with
``LOCKWATCH_REGEN_GOLDEN=1 python -m pytest tests/test_render.py``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from _sample_reports import SAMPLES, deadlock, hang, lock_order, real_deadlock, snapshot
from lockwatch import _render
from lockwatch._errors import LockwatchError, RenderError
from lockwatch._model import CycleStep, Frame, LockInfo, Report, ThreadInfo
from lockwatch._render import has_dot, render, to_dot

GOLDEN = Path(__file__).parent / "golden"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")


@pytest.fixture(scope="module")
def real_report() -> Report:
    return real_deadlock()


def _line(dot: str, start: str) -> str:
    """The one DOT statement starting with ``start``."""
    found = [line.strip() for line in dot.splitlines() if line.strip().startswith(start)]
    assert len(found) == 1, (start, found)
    return found[0]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_dot_matches_golden_file(name: str) -> None:
    dot = to_dot(SAMPLES[name]())
    golden = GOLDEN / f"{name}.dot"
    if os.environ.get("LOCKWATCH_REGEN_GOLDEN"):
        golden.write_text(dot, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}; run with LOCKWATCH_REGEN_GOLDEN=1"
    assert dot == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_dot_is_deterministic_whatever_the_input_order(name: str) -> None:
    report = SAMPLES[name]()
    shuffled = report.replace(threads=tuple(reversed(report.threads)), locks=tuple(reversed(report.locks)))
    assert to_dot(report) == to_dot(report) == to_dot(shuffled)


def test_deadlock_graph_shapes_edges_and_highlight() -> None:
    dot = to_dot(deadlock())
    left = _line(dot, "thread_101 [")
    assert "shape=box" in left and "rounded" in left and "color=red" in left
    assert 'label="left\\nid 101\\nbank.py:22"' in left
    a = _line(dot, "lock_L1 [")
    assert "shape=ellipse" in a and 'label="a\\nLock L1\\ncreated bank.py:5"' in a
    assert "Account.lock\\nRLock L2" in _line(dot, "lock_L2 [")
    # waits-for: dashed thread -> lock; held-by: solid lock -> thread; the cycle's edges red.
    wait = _line(dot, "thread_101 -> lock_L2")
    assert "style=dashed" in wait and "waits for" in wait and "color=red" in wait
    held = _line(dot, "lock_L1 -> thread_101")
    assert "style=solid" in held and "held by" in held and "color=red" in held
    # The bystander and its wait are grey, not red.
    bystander = _line(dot, "thread_103 [")
    assert "grey" in bystander and "red" not in bystander
    assert "grey" in _line(dot, "thread_103 -> lock_L1") and "red" not in _line(dot, "thread_103 -> lock_L1")
    # MainThread holds and waits for nothing: not drawn, but counted in the title.
    assert "thread_1 " not in dot and "1 other thread" in dot
    assert "lockwatch deadlock - 2026-11-25T15:00:00.123456+00:00 - process 4242" in dot


def test_tooltips_carry_stacks_and_sites() -> None:
    dot = to_dot(deadlock())
    assert "tooltip=\"thread 'left' (id 101), most recent call last:\\n" in _line(dot, "thread_101 [")
    assert "/app/bank.py:22 in left\\n    with account.lock:" in _line(dot, "thread_101 [")
    assert "created at /app/bank.py:5 in <module>" in _line(dot, "lock_L1 [")


def test_lock_order_graph() -> None:
    dot = to_dot(lock_order())
    ab = _line(dot, "lock_L1 -> lock_L2")
    assert 'taken by \\"t1\\"\\nin tests/test_bank.py::test_transfer\\nbank.py:50' in ab
    assert "color=red" in ab and "/app/tests/test_bank.py:12 in test_transfer" in ab
    assert "color=red" in _line(dot, "lock_L2 -> lock_L1")
    assert "declared order broken: a before b" in dot
    assert "thread_" not in dot
    assert "one thread took every order" in to_dot(lock_order().replace(single_thread=True))


def test_hang_and_snapshot_graphs_show_all_relations() -> None:
    dot = to_dot(hang())
    assert "style=dashed" in _line(dot, "thread_202 -> lock_L5") and "30.0 s" in _line(dot, "thread_202 -> lock_L5")
    assert "held by" in _line(dot, "lock_L5 -> thread_201")
    assert "in Condition.wait" in _line(dot, "thread_203 [")  # waits on a condition: drawn, no edge
    assert "red" not in dot
    snap = to_dot(snapshot())
    assert "held by\\n(2 times)" in _line(snap, "lock_L7 -> thread_301")


def test_missing_references_and_odd_strings_do_not_break_the_graph(tmp_path: Path) -> None:
    weird = 'he said "hi" \\ C:\\temp\\'
    report = deadlock()
    odd_lock = LockInfo(id="L 9:x", kind="Lock", name=weird, site=Frame("C:\\app\\x.py", 1, "<module>"),
                        owner=777, count=1, waiters=(), label=None)
    odd_thread = ThreadInfo(id=103, name='<b>"bold"</b>', daemon=False, waiting_for="L 9:x",
                            stack=(Frame("C:\\app\\x.py", 2, "f", 'print("\\"")'),), role="bystander")
    broken = report.replace(
        locks=report.locks + (odd_lock,),
        threads=report.threads[:3] + (odd_thread,),
        cycles=((CycleStep(999, "L99"), CycleStep(101, "L2")),),
    )
    dot = to_dot(broken)
    assert "thread 999\\n(not in this dump)" in dot and "L99\\n(not in this dump)" in dot
    assert "thread 777\\n(not in this dump)" in dot
    if has_dot():
        out = render(broken, tmp_path / "odd.svg", "svg")
        svg = Path(out).read_text(encoding="utf-8")
        assert "&lt;b&gt;&quot;bold&quot;&lt;/b&gt;" in svg  # a name is text, never HTML


def test_dot_format_needs_no_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    assert has_dot() is False
    out = render(deadlock(), tmp_path / "d.dot", "dot")
    assert out == str(tmp_path / "d.dot")
    assert Path(out).read_text(encoding="utf-8") == to_dot(deadlock())


@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_image_formats_without_dot_say_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(RenderError) as info:
        render(deadlock(), tmp_path / f"d.{fmt}", fmt)
    message = str(info.value)
    assert message.startswith(f"Graphviz's 'dot' program is needed for {fmt} output;")
    assert "apt-get install graphviz" in message and "brew install graphviz" in message and "-f dot" in message
    assert "\n" not in message
    assert not (tmp_path / f"d.{fmt}").exists()
    assert isinstance(info.value, LockwatchError)


@needs_dot
def test_svg_render_has_tooltips(tmp_path: Path) -> None:
    out = render(deadlock(), tmp_path / "d.svg", "svg")
    svg = Path(out).read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    titles = re.findall(r'xlink:title="([^"]*)"', svg)
    assert any("thread &#39;left&#39; (id 101), most recent call last:" in t and "with account.lock:" in t for t in titles)
    assert any("created at /app/bank.py:5 in &lt;module&gt;" in t for t in titles)


@needs_dot
@pytest.mark.parametrize("fmt,magic", [("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_binary_formats(tmp_path: Path, fmt: str, magic: bytes) -> None:
    out = render(lock_order(), str(tmp_path / f"o.{fmt}"), fmt)
    assert Path(out).read_bytes().startswith(magic)


@needs_dot
@pytest.mark.timeout(30)
def test_real_deadlock_renders(tmp_path: Path, real_report: Report) -> None:
    dot = to_dot(real_report)
    assert dot.count("color=red") >= 6  # two threads, two locks, two waits, two holds
    svg = Path(render(real_report, tmp_path / "real.svg", "svg")).read_text(encoding="utf-8")
    assert "got = second.acquire(timeout=timeout)" in svg


def test_unwritable_output_path(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "d.dot"
    with pytest.raises(RenderError, match=re.escape(str(target))):
        render(deadlock(), target, "dot")


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="unknown output format 'jpg'"):
        render(deadlock(), tmp_path / "d.jpg", "jpg")


def test_dot_failure_is_a_render_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: str(fake))
    with pytest.raises(RenderError, match="Graphviz's 'dot' failed to draw svg: Error: syntax error in line 1"):
        _render.run_dot("digraph {}", "svg")
