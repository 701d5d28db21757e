"""The human text report: headers, the cycle sentence, stacks with the blocking line marked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from _sample_reports import (
    CREATED,
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

from lockwatch._model import AwaitedInfo, CycleStep, Frame, LockInfo, Report, ThreadInfo
from lockwatch._text import ALL_ASLEEP, BLOCKING_MARK, format_report, user_frames


@pytest.fixture(scope="module")
def real_report() -> Report:
    return real_deadlock()


def test_deadlock_header_summary_and_cycle_line() -> None:
    text = format_report(deadlock())
    lines = text.splitlines()
    assert lines[0] == "DEADLOCK: 2 threads are waiting for each other"
    assert lines[1] == "Threads left and right wait for each other's locks."
    assert "process 4242" in lines[2] and "app.py --fast" in lines[2]
    assert (
        '  thread "left" waits for lock "Account.lock" held by thread "right", '
        'which waits for lock "a" held by "left"'
    ) in lines


def test_deadlock_thread_blocks_show_holds_waits_and_marked_stack() -> None:
    text = format_report(deadlock())
    left = text.split('Thread "left"')[1].split('Thread "right"')[0]
    # acquired_at wins over the creation site for held locks.
    assert 'holds lock "a", taken at bank.py:20 in left' in left
    assert 'waits for lock "Account.lock" for 1.5 s, held by thread "right"' in left
    assert '   File "/app/bank.py", line 20, in left' in left
    assert f'{BLOCKING_MARK}File "/app/bank.py", line 22, in left' in left
    assert "with account.lock:" in left
    right = text.split('Thread "right"')[1]
    assert 'holds lock "Account.lock", created at bank.py:11 in __init__' in right
    # Only the innermost frame of each stack is marked.
    assert text.count(BLOCKING_MARK + "File") == 3  # left, right, the bystander


def test_deadlock_bystanders_and_other_threads() -> None:
    text = format_report(deadlock())
    bystanders = text.split("Blocked behind it (bystanders):")[1].split("Other threads:")[0]
    assert 'Thread "worker-3" (id 103, daemon):' in bystanders
    assert 'waits for lock "a" for 750 ms, held by thread "left"' in bystanders
    others = text.split("Other threads:")[1]
    assert '"MainThread" (id 1) at main.py:40 in <module>' in others  # the program's line, not join()'s
    # The cycle threads come before bystanders, bystanders before the rest.
    assert text.index('Thread "left"') < text.index('Thread "worker-3"') < text.index('"MainThread"')


def test_victim_is_named() -> None:
    text = format_report(deadlock().replace(victim=102))
    right = text.split('Thread "right"')[1]
    assert "chosen as the victim: its blocked acquire() raises lockwatch.DeadlockError" in right


def test_three_thread_cycle_and_self_deadlock() -> None:
    report = deadlock()
    three = report.replace(cycles=((CycleStep(101, "L2"), CycleStep(102, "L1"), CycleStep(103, "L1")),))
    line = [ln for ln in format_report(three).splitlines() if ln.startswith("  thread ")][0]
    assert line == (
        '  thread "left" waits for lock "Account.lock" held by thread "right", which waits for lock "a" '
        'held by thread "worker-3", which waits for lock "a" held by "left"'
    )
    alone = report.replace(cycles=((CycleStep(101, "L1"),),))
    text = format_report(alone)
    assert text.startswith("DEADLOCK: a thread is waiting for a lock it holds itself\n")
    assert 'thread "left" waits for lock "a", which it holds itself' in text


def test_lock_order_report() -> None:
    text = format_report(lock_order())
    assert text.startswith("POTENTIAL DEADLOCK (lock order):")
    assert "Declared lock order broken: a before b" in text
    assert 'Lock-order cycle: "a" -> "b" -> "a"' in text
    assert '"a" -> "b" first taken by thread "t1" (test tests/test_bank.py::test_transfer)' in text
    assert '"b" -> "a" first taken by thread "t2" (test tests/test_bank.py::test_refund)' in text
    assert f'{BLOCKING_MARK}File "/app/bank.py", line 50, in transfer' in text
    assert "one thread took every order" not in text
    single = format_report(lock_order().replace(single_thread=True, rule=None))
    assert "Note: one thread took every order in this cycle" in single
    assert "Declared lock order broken" not in single


def test_lock_order_gates_are_named() -> None:
    report = lock_order()
    edge = dataclasses.replace(report.order_cycles[0][0], gates=("L1",))
    text = format_report(report.replace(order_cycles=((edge, report.order_cycles[0][1]),)))
    assert 'first taken by thread "t1" (test tests/test_bank.py::test_transfer) while also holding "a"' in text


def test_hang_report() -> None:
    text = format_report(hang())
    assert text.startswith("HANG: 2 threads have been blocked (longest 30.0 s)\n")
    assert 'waits for lock "Server.lock" for 30.0 s, held by thread "holder"' in text
    assert "waits in Condition.wait for 12.5 s (for a notification, not a lock)" in text
    assert 'Thread "stuck" (id 202, hang):' in text
    # The holder is not blocked, but it is why "stuck" hangs: shown in full after the waiters.
    holder = text.split('Thread "holder" (id 201):')[1]
    assert 'holds lock "Server.lock", created at server.py:10 in __init__' in holder
    assert f'{BLOCKING_MARK}File "/app/server.py", line 70, in serve' in holder
    assert text.index('Thread "consumer"') < text.index('Thread "holder"')
    assert "Other threads:" not in text


def test_hang_without_roles_shows_waiting_threads_in_full() -> None:
    report = hang()
    plain = report.replace(threads=tuple(dataclasses.replace(t, role=None) for t in report.threads))
    text = format_report(plain)
    assert 'Thread "stuck" (id 202):' in text and 'Thread "consumer" (id 203, daemon):' in text


def test_snapshot_shows_every_stack_and_rlock_count() -> None:
    text = format_report(snapshot())
    assert text.startswith("SNAPSHOT: 2 threads, 1 lock held, 0 threads waiting\n")
    assert 'holds lock "state" (2 times), created at job.py:2 in <module>' in text
    assert 'Thread "idle" (id 302, daemon):' in text
    assert f'{BLOCKING_MARK}File "/app/job.py", line 30, in idle' in text
    assert "Other threads:" not in text


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_output_is_deterministic_and_ends_with_newline(name: str) -> None:
    first = format_report(SAMPLES[name]())
    assert first == format_report(SAMPLES[name]())
    assert first.endswith("\n") and not first.endswith("\n\n")


def test_missing_references_do_not_crash() -> None:
    """A hand-edited dump may name threads and locks it does not contain."""
    report = deadlock()
    ghost = ThreadInfo(id=500, name="ghost", daemon=False, holding=("L404",), waiting_for="L405",
                       waiting_seconds=None, stack=(), role="cycle")
    broken = report.replace(
        threads=report.threads + (ghost,),
        cycles=((CycleStep(999, "L99"), CycleStep(101, "L2")),),
        order_cycles=((dataclasses.replace(lock_order().order_cycles[0][0], from_="L77", from_label=None),),),
        victim=12345,
    )
    text = format_report(broken)
    assert 'thread 999 (not in this dump) waits for lock L99 (not in this dump) held by thread "left"' in text
    assert 'holds lock L404 (not in this dump)' in text and 'waits for lock L405 (not in this dump)' in text
    assert "(no stack: the thread is not running Python code any more)" in text
    assert format_report(Report(kind="deadlock", created=CREATED, pid=1, argv=(), python="3")).startswith("DEADLOCK")


def test_user_frames_drop_lockwatch_internals_only_at_the_end() -> None:
    inner = Frame("/site-packages/lockwatch/_locks.py", 138, "_wait")
    user = Frame("/app/x.py", 3, "f")
    assert user_frames((user, inner)) == [user]
    assert user_frames((inner,)) == [inner]  # nothing else: keep it
    assert user_frames((inner, user)) == [inner, user]


@pytest.mark.timeout(30)
def test_real_deadlock_report(real_report: Report) -> None:
    text = format_report(real_report)
    assert text.startswith("DEADLOCK: 2 threads are waiting for each other\n")
    assert 'thread "left" waits for lock "b" held by thread "right", which waits for lock "a" held by "left"' in text
    # The marked line is the user's acquire in the test helper, not lockwatch's internals.
    marked = [line for line in text.splitlines() if line.lstrip().startswith(BLOCKING_MARK + "File")]
    cycle_marks = [line for line in marked if "_sample_reports.py" in line]
    assert len(cycle_marks) == 2 and all(", in take" in line for line in cycle_marks)
    assert "got = second.acquire(timeout=timeout)" in text
    assert '"MainThread"' in text


def test_hang_headline_counts_the_threads_it_lists() -> None:
    from lockwatch._render import to_dot

    report = hang()
    briefly = ThreadInfo(id=204, name="briefly", daemon=False, waiting_for="L5", waiting_seconds=0.2,
                         stack=report.threads[1].stack)  # blocked, but not for long: not part of the hang
    report = report.replace(threads=(*report.threads, briefly))
    text = format_report(report)
    assert text.startswith("HANG: 2 threads have been blocked (longest 30.0 s)\n")
    listed = [line for line in text.splitlines() if line.startswith('Thread "') and "hang" in line]
    assert len(listed) == 2
    assert "Hang: 2 threads blocked (longest 30.0 s)" in to_dot(report)


def test_user_frames_start_at_the_programs_first_line() -> None:
    runner = [
        Frame("/venv/bin/lockwatch", 8, "<module>"), Frame("/venv/lib/click/core.py", 1400, "main"),
        Frame("/venv/lib/lockwatch/cli.py", 260, "run"), Frame("/venv/lib/lockwatch/_run.py", 60, "_exec_source_file"),
        Frame("<frozen runpy>", 88, "_run_code"),
    ]
    program = [Frame("/app/main.py", 30, "<module>"), Frame("/app/main.py", 12, "main")]
    inner = [Frame("/venv/lib/lockwatch/_locks.py", 200, "acquire")]
    assert user_frames(runner + program + inner) == program
    bootstrap = [Frame("/usr/lib/python3.11/threading.py", 1002, "_bootstrap"),
                 Frame("/usr/lib/python3.11/threading.py", 1045, "_bootstrap_inner"),
                 Frame("/usr/lib/python3.11/threading.py", 982, "run")]
    worker = [Frame("/app/worker.py", 5, "work"), Frame("/usr/lib/python3.11/threading.py", 327, "wait")]
    assert user_frames(bootstrap + worker) == worker  # threading's own wait, innermost, stays
    assert user_frames(bootstrap) == bootstrap[-1:]  # never empty


def test_durations_just_under_a_second_read_as_seconds() -> None:
    from lockwatch._text import format_seconds

    assert [format_seconds(v) for v in (0.9996, 0.999, 0.25, 1.5)] == ["1.0 s", "999 ms", "250 ms", "1.5 s"]


def _broken_rule() -> Report:
    from lockwatch._model import LockInfo, OrderEdge

    edge = OrderEdge(from_="L2", to="L1", thread="worker", from_label="cache", to_label="db",
                     stack=(Frame("/app/jobs.py", 14, "refresh", "with db:"),))
    locks = (LockInfo(id="L1", kind="Lock", name="db", site=None, owner=None, count=0, label="db", rank=10),
             LockInfo(id="L2", kind="Lock", name="cache", site=None, owner=None, count=0, label="cache", rank=20))
    rule = 'declared order: "db" (rank 10) must be taken before "cache" (rank 20)'
    return Report(kind="lock-order", created=CREATED, pid=5, argv=("jobs.py",), python="3.11.7", locks=locks,
                  order_cycles=((edge,),), rule=rule,
                  summary=f'lock "db" was acquired while holding lock "cache" (thread worker), against the {rule}')


def test_a_broken_declared_order_is_a_rule_not_a_cycle() -> None:
    text = format_report(_broken_rule())
    assert text.startswith("LOCK ORDER RULE BROKEN: a lock was taken against the declared order\n")
    assert '\nDeclared lock order broken: "db" (rank 10) must be taken before "cache" (rank 20)\n' in text
    assert "declared order: declared order" not in text.lower() and "broken: declared order" not in text
    assert "cycle" not in text.lower()
    assert '\nTaken against it:\n  "cache" -> "db" first taken by thread "worker"\n' in text


def test_a_broken_declared_order_that_closes_a_cycle_shows_both() -> None:
    report = lock_order()  # a two-lock cycle, with a rule
    text = format_report(report)
    assert text.startswith("POTENTIAL DEADLOCK (lock order)")
    assert "Declared lock order broken: a before b" in text and "Lock-order cycle: " in text


# -- waits beyond locks -----------------------------------------------------------------------------


def _cycle_lines(text: str) -> list[str]:
    return text.split("\nCycle:\n", 1)[1].split("\n\n", 1)[0].splitlines()


def test_join_cycle_names_the_join_and_the_lock() -> None:
    text = format_report(join_cycle())
    assert text.startswith("DEADLOCK: 2 threads are waiting for each other\n")
    assert _cycle_lines(text) == [
        '  thread "MainThread" waits for thread "worker" (join), which waits for lock "state_lock" held by "MainThread"'
    ]
    main = text.split('Thread "MainThread" (id 7001, in the deadlock):')[1].split('Thread "worker"')[0]
    assert '  holds lock "state_lock", taken at live.py:21 in stop\n' in main
    assert '  waits for thread "worker" (join) for 2.0 s\n' in main
    assert "(that thread was started at live.py:12 in start)" in main
    assert "Thread.join" not in main.split("Stack")[0]  # the join is named, not "waits in Thread.join"
    worker = text.split('Thread "worker" (id 7002, in the deadlock):')[1]
    assert '  joined by thread "MainThread"\n' in worker
    assert '  waits for lock "state_lock" for 1.8 s, held by thread "MainThread"\n' in worker


def test_task_cycle_shows_tasks_as_tasks_with_their_coroutine_stacks() -> None:
    text = format_report(task_cycle())
    assert text.startswith("DEADLOCK: 2 tasks are waiting for each other\n")
    assert _cycle_lines(text) == [
        '  task "Task-2" waits for asyncio.Lock "lock_b" held by task "Task-3", '
        'which waits for asyncio.Lock "lock_a" held by "Task-2"'
    ]
    first = text.split('Task "Task-2" (id 1, on the loop of thread "MainThread", in the deadlock):\n')[1]
    first = first.split('Task "Task-3"')[0]
    assert '  holds asyncio.Lock "lock_a", waited for by task "Task-3"\n' in first
    assert "holds no lockwatch lock" not in first
    assert '  waits for asyncio.Lock "lock_b" for 3.0 s, held by task "Task-3"\n' in first
    assert "  Coroutine stack (most recent call last):\n" in first
    assert f'{BLOCKING_MARK}File "/usr/lib/python3.11/asyncio/locks.py", line 114, in acquire' in first
    assert 'thread "Task-' not in text and 'Thread "Task-' not in text
    assert '"MainThread" (id 8001) at selectors.py:468 in select' in text.split("Other threads:")[1]


def test_pool_starvation_is_a_thread_waiting_for_work_only_it_can_run() -> None:
    text = format_report(pool_starvation())
    assert text.startswith("DEADLOCK: a thread is waiting for work that only it can run\n")
    assert _cycle_lines(text) == [
        '  thread "ThreadPoolExecutor-0_0" waits for future of inner() in ThreadPoolExecutor-0 (pending), '
        "which only it can run"
    ]
    worker = text.split('Thread "ThreadPoolExecutor-0_0"')[1].split("Blocked behind it")[0]
    # The bystander's wait is told on its own block, not on the worker's.
    assert '  runs future of outer() in ThreadPoolExecutor-0\n' in worker
    snap = format_report(pool_starvation().replace(kind="snapshot", cycles=()))
    assert '  runs a future thread "MainThread" waits for\n' in snap
    assert '  may run future of inner() in ThreadPoolExecutor-0, waited for by thread "ThreadPoolExecutor-0_0"\n' in worker
    assert ("waits for future of inner() in ThreadPoolExecutor-0 (pending) for 3.5 s, "
            'to be run by thread "ThreadPoolExecutor-0_0"') in worker
    assert "(that future was submitted at crawl.py:12 in outer)" in worker
    bystander = text.split("Blocked behind it (bystanders):")[1]
    assert ('waits for future of outer() in ThreadPoolExecutor-0 for 4.0 s, '
            'run by thread "ThreadPoolExecutor-0_0"') in bystander


def test_orphaned_lock_names_the_dead_owner_and_where_it_took_the_lock() -> None:
    text = format_report(orphaned_lock())
    lines = text.splitlines()
    assert lines[0] == "DEADLOCK: 2 threads wait for an owner that no longer exists"
    assert f"Note: {ALL_ASLEEP}" in lines[:5] and len([ln for ln in lines if "asleep" in ln]) == 1
    chain = text.split("\nWaiting for an owner that no longer exists:\n")[1].split("\n\n")[0]
    assert chain == (
        '  thread "helper" waits for thread "MainThread" (join), which waits for lock "cache_lock" held by '
        'thread "loader" (ended), which took it at cache.py:14 in load'
    )
    loader = text.split('Thread "loader" (id -3, no longer running):\n')[1]
    assert loader.startswith('  holds lock "cache_lock", taken at cache.py:14 in load\n')
    assert "Other threads:" not in text  # the chain's threads and the dead owner are all shown in full


def test_one_chain_step_and_an_unknown_owner() -> None:
    report = orphaned_lock()
    single = report.replace(chains=(report.chains[0][1:],), all_asleep=False)
    text = format_report(single)
    assert text.startswith("DEADLOCK: 1 thread waits for an owner that no longer exists\n")
    assert ('  thread "MainThread" waits for lock "cache_lock" held by thread "loader" (ended), '
            "which took it at cache.py:14 in load") in text
    assert "asleep" not in text
    nobody = single.replace(locks=(dataclasses.replace(single.locks[0], owner=None),))
    assert 'held by nobody this dump names' in format_report(nobody)


def test_a_cycle_of_a_thread_and_a_task() -> None:
    """The loop's thread blocks on a Lock held by a thread waiting on run_coroutine_threadsafe().result()."""
    report = task_cycle()
    loop, task = dataclasses.replace(report.threads[0], waiting_for="L1", role="cycle"), report.threads[1]
    task = dataclasses.replace(task, waits_for=None, role=None)
    waiter = ThreadInfo(id=8002, name="bridge", daemon=False, holding=("L1",), waits_for="F1", role="cycle")
    locks = (LockInfo(id="L1", kind="Lock", name="db", site=None, owner=8002, count=1, waiters=(8001,), label="db"),)
    awaited = (AwaitedInfo(id="F1", kind="future", label="future of run_coroutine_threadsafe(fetch())",
                           owners=(8001,), state="running", waiters=(8002,)),)
    mixed = report.replace(threads=(loop, task, waiter), locks=locks, awaited=awaited,
                           cycles=((CycleStep(8001, lock="L1"), CycleStep(8002, waits_for="F1")),))
    text = format_report(mixed)
    assert text.startswith("DEADLOCK: 2 threads are waiting for each other\n")
    assert _cycle_lines(text) == [
        '  thread "MainThread" waits for lock "db" held by thread "bridge", '
        'which waits for future of run_coroutine_threadsafe(fetch()) run by "MainThread"'
    ]
    assert '  runs a future thread "bridge" waits for\n' in text
    with_task = mixed.replace(cycles=((CycleStep(8001, lock="L1"), CycleStep(1, waits_for="F1")),))
    assert format_report(with_task).startswith("DEADLOCK: 1 thread and 1 task are waiting for each other\n")


def test_missing_awaited_entries_do_not_crash() -> None:
    report = join_cycle()
    broken = report.replace(
        awaited=(),
        cycles=((CycleStep(7001, waits_for="J404"), CycleStep(7002, lock="L1")),),
        chains=((CycleStep(7002, waits_for="F9"), CycleStep(999, waits_for="T1")),),
    )
    text = format_report(broken)
    assert ('thread "MainThread" waits for J404 (not in this dump) owned by thread "worker", '
            'which waits for lock "state_lock" held by "MainThread"') in text
    assert '  waits for J1 (not in this dump) for 2.0 s\n' in text
    assert ('thread "worker" waits for F9 (not in this dump) owned by thread 999 (not in this dump), '
            "which waits for T1 (not in this dump) owned by nobody this dump names") in text
    alone = broken.replace(cycles=((CycleStep(7001, waits_for="J404"),),), chains=())
    assert format_report(alone).startswith("DEADLOCK: a thread is waiting for itself\n")
    assert 'thread "MainThread" waits for J404 (not in this dump), which only it can complete' in format_report(alone)


def test_hang_on_a_join_shows_the_joined_thread_in_full() -> None:
    report = join_cycle()
    main = dataclasses.replace(report.threads[0], role="hang", holding=(), waiting_seconds=45.0)
    worker = dataclasses.replace(report.threads[1], role=None, waiting_for=None, waiting_seconds=None)
    hang_report = report.replace(kind="hang", threads=(main, worker), cycles=(), locks=(), summary="")
    text = format_report(hang_report)
    assert text.startswith("HANG: 1 thread has been blocked (longest 45.0 s)\n")
    assert 'Thread "worker" (id 7002):' in text and "Other threads:" not in text
    asleep = format_report(hang_report.replace(all_asleep=True, threads=(worker,)))
    assert asleep.startswith("HANG: every thread is asleep\n") and f"Note: {ALL_ASLEEP}" in asleep


def test_snapshot_counts_tasks_apart_and_waits_beyond_locks() -> None:
    text = format_report(task_cycle().replace(kind="snapshot", cycles=()))
    assert text.startswith("SNAPSHOT: 1 thread and 2 tasks, 0 locks held, 2 threads waiting\n")
    assert 'Task "Task-2" (id 1, on the loop of thread "MainThread", in the deadlock):' in text


def test_show_prints_a_task_cycle_dump(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lockwatch import cli
    from lockwatch._dump import dump_json

    path = tmp_path / "tasks.json"
    path.write_text(dump_json(task_cycle()), encoding="utf-8")
    result = CliRunner().invoke(cli.cli, ["show", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output == format_report(task_cycle())
    assert 'task "Task-2" waits for asyncio.Lock "lock_b" held by task "Task-3"' in result.output


def test_labels_that_already_say_the_kind_and_the_owner_are_not_repeated() -> None:
    """The snapshot's labels may read 'thread "worker" to end (join)' and 'future run by thread "w"'."""
    report = pool_starvation()
    f1, f2 = report.awaited
    report = report.replace(awaited=(
        dataclasses.replace(f1, label='future run by thread "ThreadPoolExecutor-0_0"'),
        dataclasses.replace(f2, label="future pending in pool ThreadPoolExecutor-0 (1 of 1 workers)"),
    ))
    text = format_report(report)
    assert ('waits for future run by thread "ThreadPoolExecutor-0_0" for 4.0 s\n') in text
    assert "(pending) (" not in text and "pending in pool ThreadPoolExecutor-0 (1 of 1 workers) for 3.5 s" in text
    join = join_cycle()
    join = join.replace(awaited=(dataclasses.replace(join.awaited[0], label='thread "worker" to end (join)'),))
    assert _cycle_lines(format_report(join)) == [
        '  thread "MainThread" waits for thread "worker" to end (join), which waits for lock "state_lock" '
        'held by "MainThread"'
    ]


def test_user_frames_drop_lockwatch_wrappers_between_program_frames() -> None:
    worker = Frame("/usr/lib/python3.11/concurrent/futures/thread.py", 83, "_worker")
    wrapper = Frame("/venv/lib/lockwatch/_beyond.py", 193, "instrumented")
    run = Frame("/usr/lib/python3.11/concurrent/futures/thread.py", 58, "run")
    user = Frame("/app/pool.py", 6, "outer")
    assert user_frames((worker, wrapper, wrapper, run, user)) == [worker, run, user]


def test_asyncio_semaphores_and_gathers_name_their_owners() -> None:
    """Labels as the asyncio reader writes them: a semaphore held by several tasks, a gather() of tasks."""
    report = task_cycle()
    sem = AwaitedInfo(id="A1", kind="asyncio.Semaphore", label="asyncio.Semaphore from jobs.py:4 (held by 2 tasks)",
                      owners=(2, 3), any_of=True, waiters=(1,))
    gather = AwaitedInfo(id="G7", kind="task", label="gather() of 2", owners=(1, 3), state="pending", waiters=(2,))
    third = dataclasses.replace(report.threads[2], id=3, name="Task-4", waits_for=None, role=None)
    first = dataclasses.replace(report.threads[1], waits_for="A1")
    second = dataclasses.replace(report.threads[2], waits_for="G7")
    cyc = report.replace(threads=(report.threads[0], first, second, third), awaited=(sem, gather),
                         cycles=((CycleStep(1, waits_for="A1"), CycleStep(2, waits_for="G7")),))
    text = format_report(cyc)
    assert _cycle_lines(text) == [
        '  task "Task-2" waits for asyncio.Semaphore from jobs.py:4 (held by 2 tasks) held by task "Task-3" and '
        '1 other, which waits for gather() of 2 (await) (which needs "Task-2")'
    ]
    assert ('waits for asyncio.Semaphore from jobs.py:4 (held by 2 tasks) for 3.0 s, held by task "Task-3", '
            'task "Task-4"') in text
    assert "to be run by" not in text and "may run" not in text


def test_every_thread_asleep_in_headers() -> None:
    asleep = hang().replace(all_asleep=True)
    assert format_report(asleep).startswith("HANG: every thread is asleep (2 threads blocked, longest 30.0 s)\n")
    stuck = deadlock().replace(cycles=(), all_asleep=True)
    text = format_report(stuck)
    assert text.startswith("DEADLOCK: every thread is asleep\n") and f"Note: {ALL_ASLEEP}" in text
    snap = format_report(orphaned_lock().replace(kind="snapshot"))
    assert snap.startswith("SNAPSHOT: 3 threads, 1 lock held, 2 threads waiting; "
                           "STUCK: 2 threads waiting for an owner that no longer exists\n")
    from lockwatch._render import to_dot

    assert "Hang: every thread is asleep (2 threads blocked, longest 30.0 s)" in to_dot(asleep)
    assert "Deadlock: every thread is asleep" in to_dot(stuck)
