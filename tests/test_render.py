"""Graphviz rendering: deterministic DOT (golden files), svg/png/pdf with dot, clear errors without it.

Regenerate the golden files after an intended change with
``LOCKWATCH_REGEN_GOLDEN=1 python -m pytest tests/test_render.py``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from _sample_reports import (
    SAMPLES,
    deadlock,
    hang,
    join_cycle,
    lock_order,
    orphaned_lock,
    pool_starvation,
    real_deadlock,
    snapshot,
    task_cycle,
)

from lockwatch import _render
from lockwatch._errors import LockwatchError, RenderError
from lockwatch._model import AwaitedInfo, CycleStep, Frame, LockInfo, OrderEdge, Report, ThreadInfo
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


def _edge(dot: str, tail: str, head: str) -> str:
    """The one edge drawn from ``tail`` to ``head``: written so, or written reversed with dir=back."""
    found = [line.strip() for line in dot.splitlines()
             if (line.strip().startswith(f"{tail} -> {head} [") and "dir=back" not in line)
             or (line.strip().startswith(f"{head} -> {tail} [") and "dir=back" in line)]
    assert len(found) == 1, (tail, head, found)
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
    # Thread: name in bold, where it blocks, and the blocking line itself; no raw id.
    assert "<B>left</B>" in left and "blocked at bank.py:22 in left" in left and ">with account.lock:<" in left
    assert "id 101" not in left.split("tooltip=")[0]
    a = _line(dot, "lock_L1 [")
    assert "shape=ellipse" in a and "<B>a</B>" in a and "Lock L1, created at bank.py:5" in a
    assert "<B>Account.lock</B>" in _line(dot, "lock_L2 [") and "RLock L2" in _line(dot, "lock_L2 [")
    # waits-for: dashed thread -> lock; held-by: solid lock -> thread; the cycle's edges red.
    wait = _edge(dot, "thread_101", "lock_L2")
    assert "style=dashed" in wait and "waits for 1.5 s" in wait and "color=red" in wait
    held = _edge(dot, "lock_L1", "thread_101")
    assert "style=solid" in held and "held by" in held and "color=red" in held
    # The bystander and its wait are grey, not red.
    bystander = _line(dot, "thread_103 [")
    assert "grey" in bystander and "red" not in bystander
    by_wait = _edge(dot, "thread_103", "lock_L1")
    assert "grey" in by_wait and "red" not in by_wait and "waits for 750 ms" in by_wait
    # MainThread holds and waits for nothing: not drawn, but counted in the title.
    assert "thread_1 " not in dot and "1 other thread" in dot
    title = _line(dot, "label=<")
    assert "Deadlock: 2 threads wait for each other" in title
    assert "Threads left and right wait for each other&#x27;s locks." in title
    assert "lockwatch deadlock - process 4242 (app.py, Python 3.11.7) - 2026-11-25T15:00:00.123456+00:00" in title
    assert "red: the deadlock cycle" in title and "grey: blocked behind the cycle" in title


def test_deadlock_cycle_is_laid_out_as_a_loop() -> None:
    """Rows pair the cycle's nodes so dot draws a loop; only down-the-left-column edges set ranks."""
    dot = to_dot(deadlock())
    assert "rankdir=TB" in dot and "layout=" not in dot
    rows = re.findall(r"\{\s*rank=same\s+([^}]*)\}", dot)
    members = [set(re.findall(r"^\s*(\w+)\s*$", row, re.M)) for row in rows]
    # Cycle: left -> L2 -> right -> L1 -> left; the bystander worker-3 sits beside lock a.
    assert members == [{"thread_101", "lock_L1", "thread_103"}, {"lock_L2", "thread_102"}]
    assert "constraint" not in _edge(dot, "thread_101", "lock_L2")  # down the left column
    assert "constraint=false" in _edge(dot, "thread_102", "lock_L1")  # back up the right one


def test_five_thread_cycle_is_one_loop(tmp_path: Path) -> None:
    report = deadlock()
    base = report.threads[1]
    threads = tuple(
        ThreadInfo(id=500 + i, name=f"philosopher-{i}", daemon=False, holding=(f"F{i}",),
                   waiting_for=f"F{(i + 1) % 5}", stack=base.stack, role="cycle")
        for i in range(5)
    )
    locks = tuple(LockInfo(id=f"F{i}", kind="Lock", name=f"fork-{i}", site=None, owner=500 + i, count=1,
                           waiters=(500 + (i - 1) % 5,)) for i in range(5))
    cycle = tuple(CycleStep(500 + i, f"F{(i + 1) % 5}") for i in range(5))
    dot = to_dot(report.replace(threads=threads, locks=locks, cycles=(cycle,), summary=""))
    assert "Deadlock: 5 threads wait for each other" in dot
    assert len(re.findall(r"rank=same", dot)) == 5  # ten nodes, two per row
    assert dot.count(" color=red3") == 5 + 5 + 10  # threads, locks, edges
    if has_dot():
        svg = Path(render(report.replace(threads=threads, locks=locks, cycles=(cycle,)), tmp_path / "5.svg", "svg"))
        assert ">philosopher&#45;4</text>" in svg.read_text(encoding="utf-8")  # dot writes - as &#45;


def test_tooltips_carry_stacks_and_sites() -> None:
    dot = to_dot(deadlock())
    assert "tooltip=\"thread 'left' (id 101), most recent call last:\\n" in _line(dot, "thread_101 [")
    assert "/app/bank.py:22 in left\\n    with account.lock:" in _line(dot, "thread_101 [")
    assert "created at /app/bank.py:5 in <module>" in _line(dot, "lock_L1 [")


def test_lock_order_graph() -> None:
    dot = to_dot(lock_order())
    ab = _line(dot, "lock_L1 -> lock_L2")
    assert "<B>taken by &quot;t1&quot;</B>" in ab and "in tests/test_bank.py::test_transfer" in ab
    assert "at bank.py:50 in transfer" in ab
    assert "color=red" in ab and "/app/tests/test_bank.py:12 in test_transfer" in ab
    assert "color=red" in _line(dot, "lock_L2 -> lock_L1")
    assert "<B>a</B>" in _line(dot, "lock_L1 [") and "Lock L1, created at bank.py:5" in _line(dot, "lock_L1 [")
    assert "Potential deadlock: 2 locks are taken in opposite orders" in dot
    assert "declared order broken: a before b" in dot
    assert "thread_" not in dot
    assert "one thread took every order" in to_dot(lock_order().replace(single_thread=True))


def test_lock_order_cycle_of_three_is_a_loop() -> None:
    report = lock_order()
    ab, ba = report.order_cycles[0]
    bc = OrderEdge(from_="L2", to="L3", thread="t3", stack=ba.stack, from_label="b", to_label="c")
    ca = OrderEdge(from_="L3", to="L1", thread="t4", stack=ba.stack, from_label="c", to_label="a")
    three = report.replace(order_cycles=((ab, bc, ca),), rule=None)
    dot = to_dot(three)
    assert "3 locks are taken in a circular order" in dot and "rankdir=TB" in dot
    assert "constraint" not in _edge(dot, "lock_L1", "lock_L2")
    assert "constraint=false" in _edge(dot, "lock_L2", "lock_L3")
    assert "dir=back" in _edge(dot, "lock_L3", "lock_L1")  # across the top row, right to left
    assert 'taken by &quot;t4&quot;' in _edge(dot, "lock_L3", "lock_L1")


def test_lock_labels_drop_what_they_repeat() -> None:
    report = lock_order()
    ab, ba = report.order_cycles[0]
    site = Frame("/app/res.py", 33, "<dictcomp>")
    locks = (LockInfo(id="L1", kind="Lock", name=None, site=site, owner=None, count=0,
                      label="Lock from res.py:33 (L1)"),) + report.locks[1:]
    dot = to_dot(report.replace(locks=locks, order_cycles=((
        dataclasses.replace(ab, from_label="Lock from res.py:33 (L1)"),
        dataclasses.replace(ba, to_label="Lock from res.py:33 (L1)")),)))
    node = _line(dot, "lock_L1 [").split("tooltip=")[0]
    assert "<B>Lock from res.py:33</B>" in node and ">Lock L1<" in node and "created" not in node


def test_hang_and_snapshot_graphs_show_all_relations() -> None:
    dot = to_dot(hang())
    assert "style=dashed" in _line(dot, "thread_202 -> lock_L5") and "30.0 s" in _line(dot, "thread_202 -> lock_L5")
    assert "held by" in _line(dot, "lock_L5 -> thread_201")
    assert "in Condition.wait" in _line(dot, "thread_203 [")  # waits on a condition: drawn, no edge
    assert "red" not in dot
    assert "Hang: 2 threads blocked (longest 30.0 s)" in dot and "rankdir=LR" in dot
    snap = to_dot(snapshot())
    assert "held by (2 times)" in _line(snap, "lock_L7 -> thread_301")


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
    for missing in ("thread_999", "lock_L99", "thread_777"):
        assert "(not in this dump)" in _line(dot, missing + " [")
    assert "&lt;b&gt;&quot;bold&quot;&lt;/b&gt;" in _line(dot, "thread_103 [")  # escaped, never markup
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


# --- names from a program or a dump are text, never markup or Graphviz escapes ---------------

HOSTILE = "bad\x01\x1b[31m\\N\\G\\E\\L\\l\\\"q\"<b>&\u202e\ud800\uffff\\"


def _hostile(report: Report) -> Report:
    def frame(f: Frame) -> Frame:
        return dataclasses.replace(f, code=f"{f.code} {HOSTILE}", function=HOSTILE)

    threads = tuple(dataclasses.replace(t, name=f"{t.name}{HOSTILE}", stack=tuple(map(frame, t.stack)),
                                        waiting_in=t.waiting_in and t.waiting_in + HOSTILE)
                    for t in report.threads)
    locks = tuple(dataclasses.replace(lock, label=f"{lock.title}{HOSTILE}", site=lock.site and frame(lock.site))
                  for lock in report.locks)
    cycles = tuple(tuple(dataclasses.replace(e, thread=e.thread + HOSTILE, test=HOSTILE, from_label=HOSTILE + "a",
                                             to_label=HOSTILE + "b", stack=tuple(map(frame, e.stack)))
                         for e in cycle) for cycle in report.order_cycles)
    awaited = tuple(dataclasses.replace(entry, label=entry.label + HOSTILE, kind=entry.kind + HOSTILE,
                                        state=entry.state and entry.state + HOSTILE,
                                        site=entry.site and frame(entry.site))
                    for entry in report.awaited)
    return report.replace(threads=threads, locks=locks, order_cycles=cycles, summary=HOSTILE, argv=(HOSTILE,),
                          rule=report.rule and report.rule + HOSTILE, awaited=awaited)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_control_characters_and_graphviz_escapes_in_names_stay_text(name: str, tmp_path: Path) -> None:
    report = _hostile(SAMPLES[name]())
    dot = to_dot(report)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e\ud800\uffff]", dot)
    dot.encode("utf-8")  # no lone surrogate reaches Graphviz
    if shutil.which("dot") is None:
        return
    import xml.etree.ElementTree as ET

    svg = _render.run_dot(dot, "svg").decode("utf-8")
    root = ET.fromstring(svg)  # well-formed XML: the picture did not disappear
    texts = " ".join("".join(node.itertext()) for node in root.iter() if node.tag.endswith("text"))
    titles = " ".join(v for node in root.iter() for k, v in node.attrib.items() if k.endswith("title"))
    for where in (texts, titles):
        assert "\\N\\G\\E\\L\\l" in where, where[:2000]  # literal, not the node / graph / edge name
        assert "\\x01\\x1b[31m" in where and "\\u202e\\ud800\\uffff" in where
    assert "lockwatch\\E" not in texts


def test_a_broken_declared_order_is_drawn_as_a_rule_not_a_cycle() -> None:
    from test_text import _broken_rule

    dot = to_dot(_broken_rule())
    assert "Declared lock order broken" in dot and "red: the order taken against the rule" in dot
    assert "opposite orders" not in dot and "order cycle" not in dot
    assert "declared order broken: &quot;db&quot; (rank 10) must be taken before" in dot
    assert "declared order: " not in dot.replace("against the declared order: ", "")


# -- big reports: linear time, and a size limit --------------------------------------------------


def _crowded(workers: int, per_worker: int = 1, cycle: bool = True) -> Report:
    """deadlock() plus ``workers`` threads each holding ``per_worker`` locks, every other one also
    waiting for the next worker's first lock (a long chain of waits, none of it in the cycle)."""
    base = deadlock()
    threads = list(base.threads)
    locks = list(base.locks)
    for index in range(workers):
        ident = 1000 + index
        holding = tuple(f"L{10 + index * per_worker + k}" for k in range(per_worker))
        waiting = f"L{10 + ((index + 1) % workers) * per_worker}" if index % 2 else None
        threads.append(ThreadInfo(id=ident, name=f"worker-{index}", daemon=True, holding=holding,
                                  waiting_for=waiting, waiting_seconds=1.0 if waiting else None,
                                  stack=(Frame("/app/w.py", 3, "work", "with lock:"),)))
        locks += [LockInfo(id=lock_id, kind="Lock", name=None, site=Frame("/app/w.py", 1, "<module>"),
                           owner=ident, count=1, waiters=(), label=f"pool[{lock_id}]") for lock_id in holding]
    report = base.replace(threads=tuple(threads), locks=tuple(locks))
    return report if cycle else report.replace(kind="snapshot", cycles=(), summary="")


def _nodes(dot: str) -> set[str]:
    return set(re.findall(r"^\s*((?:thread|lock)_\w+) \[", dot, re.M))


def _lines_run(report: Report) -> int:
    """Lines of lockwatch's renderer executed to draw ``report`` whole (no size limit)."""
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if frame.f_code.co_filename != _render.__file__:
            return None
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        to_dot(report, max_nodes=10**9)  # no size limit: every node is drawn
    finally:
        sys.settrace(None)
    return count


@pytest.mark.timeout(120)
def test_dot_generation_is_linear_in_the_number_of_locks() -> None:
    """Was quadratic (a scan of every edge per lock): 11.9 s for 20,000 locks.

    Work is counted, not timed: the lines of lockwatch's renderer executed for
    4x the locks must be about 4x (quadratic: about 16x), whatever the machine's load.
    """
    small, large = _crowded(50, per_worker=20), _crowded(200, per_worker=20)  # 1,000 and 4,000 locks
    ratio = _lines_run(large) / _lines_run(small)
    assert ratio < 6, f"4x the locks ran {ratio:.1f}x the lines (linear: ~4x, quadratic: ~16x)"


def test_a_big_deadlock_picture_shows_the_cycle_and_its_neighbourhood_only() -> None:
    report = _crowded(2000)
    dot = to_dot(report)
    nodes = _nodes(dot)
    assert len(nodes) <= _render.MAX_NODES
    # The cycle and what touches it (worker-3 waits behind lock a); the unrelated crowd is left out.
    assert {"thread_101", "thread_102", "lock_L1", "lock_L2", "thread_103"} <= nodes
    assert not any(node.startswith("thread_1") and len(node) == len("thread_1000") for node in nodes)
    title = _line(dot, "label=<")
    assert "Partial picture (more than 300 threads and locks): the deadlock cycle and its neighbourhood" in title
    assert f"3 of {len(report.threads)} threads and 2 of {len(report.locks)} locks" in title
    assert "Deadlock: 2 threads wait for each other" in title
    # Below the limit nothing is left out and nothing is said.
    small = to_dot(_crowded(20))
    assert len(_nodes(small)) == 3 + 2 + 20 + 20 and "Partial picture" not in small


def test_a_big_snapshot_picture_starts_from_the_blocked_threads() -> None:
    report = _crowded(2000, cycle=False)
    dot = to_dot(report)
    nodes = _nodes(dot)
    assert len(nodes) == _render.MAX_NODES
    # Seeds: blocked threads, lowest ids first, then what they wait for and who holds it.
    assert {"thread_102", "thread_103", "lock_L1", "thread_1001", "lock_L12"} <= nodes
    assert "the blocked threads and their neighbourhood" in _line(dot, "label=<")
    # Every edge drawn joins two nodes drawn.
    for tail, head in re.findall(r"^\s*(\w+) -> (\w+) \[", dot, re.M):
        assert tail in nodes and head in nodes
    if has_dot():
        assert _render.run_dot(dot, "svg", timeout=60).lstrip().startswith(b"<?xml")


def test_a_cycle_longer_than_the_limit_is_drawn_whole() -> None:
    report = _crowded(10)
    size = 200  # 200 threads and 200 locks in one cycle: 400 nodes > the limit
    threads = tuple(ThreadInfo(id=5000 + i, name=f"p{i}", daemon=False, holding=(f"F{i}",), waiting_for=f"F{(i + 1) % size}",
                               stack=report.threads[1].stack, role="cycle") for i in range(size))
    locks = tuple(LockInfo(id=f"F{i}", kind="Lock", name=None, site=None, owner=5000 + i, count=1,
                           waiters=(5000 + (i - 1) % size,)) for i in range(size))
    cycle = tuple(CycleStep(5000 + i, f"F{(i + 1) % size}") for i in range(size))
    dot = to_dot(report.replace(threads=report.threads + threads, locks=report.locks + locks, cycles=(cycle,)))
    nodes = _nodes(dot)
    assert {f"thread_{5000 + i}" for i in range(size)} | {f"lock_F{i}" for i in range(size)} == nodes
    assert "Partial picture" in dot


# -- waits beyond locks ------------------------------------------------------------------------------


def test_join_cycle_draws_the_join_as_a_node_between_the_threads() -> None:
    dot = to_dot(join_cycle())
    join = _line(dot, "wait_J1 [")
    assert "shape=house" in join and "<B>thread &quot;worker&quot;</B>" in join and "join (J1)" in join
    assert "color=red3" in join and "made at live.py:12 in start" in join
    waits = _edge(dot, "thread_7001", "wait_J1")
    assert "style=dashed" in waits and "waits for 2.0 s" in waits and "color=red3" in waits
    ends = _edge(dot, "wait_J1", "thread_7002")
    assert "ends with" in ends and "style=solid" in ends and "color=red3" in ends
    assert "color=red3" in _edge(dot, "thread_7002", "lock_L1") and "color=red3" in _edge(dot, "lock_L1", "thread_7001")
    # The cycle is a loop: thread, join, thread, lock.
    rows = re.findall(r"\{\s*rank=same\s+([^}]*)\}", dot)
    assert [set(re.findall(r"^\s*(\w+)\s*$", row, re.M)) for row in rows] == [
        {"thread_7001", "lock_L1"}, {"wait_J1", "thread_7002"}]
    assert "Deadlock: 2 threads wait for each other" in dot
    assert "green: waited for, not a lock" in dot


def test_task_cycle_draws_tasks_unlike_threads_and_asyncio_locks_unlike_locks() -> None:
    dot = to_dot(task_cycle())
    task = _line(dot, "task_1 [")
    assert "diagonals" in task and "rounded" not in task and "<B>task Task-2</B>" in task and "color=red3" in task
    assert "thread_1 " not in dot and "thread_1 [" not in dot
    lock_a = _line(dot, "wait_A1 [")
    assert "shape=octagon" in lock_a and "ellipse" not in lock_a and "color=red3" in lock_a
    assert "held by" in _edge(dot, "wait_A1", "task_1") and "color=red3" in _edge(dot, "wait_A1", "task_1")
    assert "color=red3" in _edge(dot, "task_2", "wait_A1")
    assert "Deadlock: 2 tasks wait for each other" in dot and "cut corners: an asyncio task" in dot
    assert "1 other thread, holding" in dot  # the loop's thread, idle in select()
    assert "on the loop of MainThread" in task and "tooltip=\"task 'Task-2' (id 1)" in task
    idle = ThreadInfo(id=9, name="idle", daemon=False, kind="task")
    assert "1 other thread and 1 task, holding" in to_dot(task_cycle().replace(threads=(*task_cycle().threads, idle)))


def test_pool_starvation_draws_any_of_owners_dashed() -> None:
    dot = to_dot(pool_starvation())
    pending = _line(dot, "wait_F2 [")
    assert "shape=folder" in pending and "pool, pending (F2)" in pending and "color=red3" in pending
    any_of = _edge(dot, "wait_F2", "thread_9002")
    assert "style=dashed" in any_of and "to be run by any of" in any_of and "color=red3" in any_of
    running = _line(dot, "wait_F1 [")
    assert "shape=note" in running and "red" not in running and "grey" in running  # only the bystander waits
    assert "run by" in _edge(dot, "wait_F1", "thread_9002") and "style=solid" in _edge(dot, "wait_F1", "thread_9002")
    assert "grey" in _edge(dot, "thread_9001", "wait_F1")
    assert "Deadlock: a thread waits for work that only it can run" in dot


def test_orphaned_lock_chain_is_highlighted_to_the_dead_owner() -> None:
    dot = to_dot(orphaned_lock())
    dead = _line(dot, '"thread_-3" [')
    assert "dashed" in dead and "ended (no longer running)" in dead and "color=red3" in dead
    assert "color=red3" in _line(dot, 'lock_L4 -> "thread_-3"')
    assert "color=red3" in _edge(dot, "thread_4002", "wait_J7") and "color=red3" in _edge(dot, "wait_J7", "thread_4001")
    assert "color=red3" in _edge(dot, "thread_4001", "lock_L4")
    title = _line(dot, "label=<")
    assert "Deadlock: 2 threads wait for an owner that no longer exists" in title
    assert "red: a wait on an owner that no longer exists" in title and "every live thread was asleep" in title


def test_missing_awaited_entries_and_odd_ids_do_not_break_the_graph() -> None:
    report = join_cycle()
    broken = report.replace(awaited=(), cycles=((CycleStep(7001, waits_for="J 4:x"), CycleStep(7002, lock="L1")),))
    dot = to_dot(broken)
    missing = [line for line in dot.splitlines() if re.match(r"\s*wait_J_4_x_[0-9a-f]{8} \[", line)]
    assert len(missing) == 1 and "(not in this dump)" in missing[0]
    assert "owned by" in _edge(dot, missing[0].split()[0], "thread_7002")
    assert "(not in this dump)" in _line(dot, "wait_J1 [")  # named by the thread's waits_for only


def _crowded_waits(workers: int) -> Report:
    """join_cycle() plus ``workers`` threads, each joined by the next and running a future someone awaits."""
    base = join_cycle()
    threads = list(base.threads)
    awaited = list(base.awaited)
    for index in range(workers):
        ident = 20000 + index
        waits_for = f"J{100 + index + 1}" if index + 1 < workers else None
        threads.append(ThreadInfo(id=ident, name=f"w{index}", daemon=True, waits_for=waits_for,
                                  waiting_seconds=1.0 if waits_for else None, kind="task" if index % 3 == 0 else "thread",
                                  stack=(Frame("/app/w.py", 3, "work", "t.join()"),)))
        awaited.append(AwaitedInfo(id=f"J{100 + index}", kind="thread", label=f'thread "w{index}"', owners=(ident,),
                                   waiters=(ident - 1,) if index else ()))
        awaited.append(AwaitedInfo(id=f"F{100 + index}", kind="pool", label=f"future {index}", owners=(ident,),
                                   any_of=True, state="pending"))
    return base.replace(threads=tuple(threads), awaited=tuple(awaited))


@pytest.mark.timeout(120)
def test_dot_generation_is_linear_in_the_number_of_awaited_entries() -> None:
    small, large = _crowded_waits(200), _crowded_waits(800)
    ratio = _lines_run(large) / _lines_run(small)
    assert ratio < 6, f"4x the waits ran {ratio:.1f}x the lines (linear: ~4x, quadratic: ~16x)"


def test_a_big_picture_keeps_a_join_cycle_whole() -> None:
    dot = to_dot(_crowded_waits(600))
    nodes = set(re.findall(r'^\s*"?((?:thread|task|lock|wait)_[\w-]+)"? \[', dot, re.M))
    assert len(nodes) <= _render.MAX_NODES
    assert {"thread_7001", "wait_J1", "thread_7002", "lock_L1"} <= nodes
    assert "Partial picture" in dot and "other waits" in dot


@needs_dot
@pytest.mark.timeout(60)
@pytest.mark.parametrize("make", [task_cycle, join_cycle], ids=["task-cycle", "join-cycle"])
def test_lockwatch_render_makes_an_svg_of_waits_beyond_locks(tmp_path: Path, make: Any) -> None:
    from click.testing import CliRunner

    from lockwatch import cli
    from lockwatch._dump import dump_json

    dump = tmp_path / "waits.json"
    dump.write_text(dump_json(make()), encoding="utf-8")
    result = CliRunner().invoke(cli.cli, ["render", str(dump)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    svg_path = tmp_path / "waits.svg"
    assert result.output.strip() == str(svg_path)
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg_path.read_text(encoding="utf-8"))
    texts = [("".join(node.itertext())) for node in root.iter() if node.tag.endswith("text")]
    if make is task_cycle:
        assert {"task Task-2", "task Task-3", 'asyncio.Lock "lock_a"', 'asyncio.Lock "lock_b"'} <= set(texts)
    else:
        assert {"MainThread", "worker", 'thread "worker"', "state_lock", "ends with"} <= set(texts)
    # Every node of the cycle is drawn red.
    red = [node for node in root.iter() if node.attrib.get("stroke") == "#cd0000"]
    assert len(red) >= 8  # 4 nodes and 4 edges (paths and arrow heads)


def test_each_kind_of_awaited_thing_has_its_own_shape() -> None:
    shapes = {kind: _render._awaited_shape(kind) for kind in
              ("thread", "task", "future", "pool", "import", "asyncio.Lock", "asyncio.Event", "greenlet")}
    assert shapes == {"thread": "house", "task": "invhouse", "future": "note", "pool": "folder", "import": "tab",
                      "asyncio.Lock": "octagon", "asyncio.Event": "octagon", "greenlet": "hexagon"}
    assert "ellipse" not in shapes.values() and "box" not in shapes.values()  # locks and threads
    report = join_cycle()
    imported = report.replace(awaited=(AwaitedInfo(id="I3", kind="import", label='import lock of module "plugins.b"',
                                                   owners=(7002,), waiters=(7001,)),),
                              cycles=((CycleStep(7001, waits_for="I3"), CycleStep(7002, lock="L1")),))
    imported = imported.replace(threads=(dataclasses.replace(imported.threads[0], waits_for="I3"), imported.threads[1]))
    dot = to_dot(imported)
    assert "shape=tab" in _line(dot, "wait_I3 [") and "held by" in _edge(dot, "wait_I3", "thread_7002")
    from lockwatch._text import format_report

    assert ('thread "MainThread" waits for import lock of module "plugins.b" held by thread "worker", '
            'which waits for lock "state_lock" held by "MainThread"') in format_report(imported)
