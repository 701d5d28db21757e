"""The pytest plugin, tested on real pytest sessions run in subprocesses (pytester)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lockwatch import _locks

# Every inner session runs in a subprocess: its patching never touches this one.
INNER_TIMEOUT = 60

SCENARIO = '''
import queue
import threading

settings_lock = threading.Lock()
cache_lock = threading.Lock()


def test_queue_clean():
    q = queue.Queue()
    producer = threading.Thread(target=lambda: [q.put(i) for i in range(50)])
    producer.start()
    assert [q.get(timeout=10) for _ in range(50)] == list(range(50))
    producer.join(10)


def test_deadlock():
    first = threading.Lock()
    second = threading.Lock()
    both_hold_one = threading.Barrier(2)

    def left():
        with first:
            both_hold_one.wait()
            with second:
                pass

    def right():
        with second:
            both_hold_one.wait()
            with first:
                pass

    threads = [threading.Thread(target=left, name="left"), threading.Thread(target=right, name="right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not any(thread.is_alive() for thread in threads)


def test_settings_then_cache():
    with settings_lock:
        with cache_lock:
            pass


def test_cache_then_settings():
    with cache_lock:
        with settings_lock:
            pass


def test_after():
    with settings_lock:
        pass
'''

QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnhandledThreadExceptionWarning")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*QUIET, *args, timeout=INNER_TIMEOUT)


def assert_scenario_verdicts(result: pytest.RunResult) -> None:
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*FAILED test_scenario.py::test_deadlock*",
            "*FAILED test_scenario.py::test_cache_then_settings*",
        ],
        consecutive=False,
    )
    text = result.stdout.str()
    assert "FAILED test_scenario.py::test_settings_then_cache" not in text
    assert "FAILED test_scenario.py::test_after" not in text
    assert "FAILED test_scenario.py::test_queue_clean" not in text


@pytest.mark.timeout(90)
def test_acceptance_scenario(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_scenario=SCENARIO)
    result = run(pytester, "--lockwatch")
    assert_scenario_verdicts(result)
    assert result.duration < 30
    result.stdout.fnmatch_lines(
        [
            # the deadlock: cycle, both stacks, the victim, the dump
            "*_ test_deadlock _*",
            "DEADLOCK: 2 threads are waiting for each other",
            'Deadlock: thread "*" waits for lock *lockwatch broke it*DeadlockError*',
            "Cycle:",
            'Thread "*" (id *, in the deadlock):',
            '*>> File "*test_scenario.py", line *, in *',
            'Thread "*" (id *, in the deadlock):',
            '*>> File "*test_scenario.py", line *, in *',
            "lockwatch: deadlock dump written to */lockwatch-dumps/deadlock-*.json*",
            # the inversion: both tests named, both stacks, the dump
            "*_ test_cache_then_settings _*",
            "POTENTIAL DEADLOCK (lock order)*",
            '*"test_scenario.settings_lock" -> *"test_scenario.cache_lock" (thread MainThread, '
            "test_scenario.py::test_settings_then_cache) and *(thread MainThread, test_scenario.py::test_cache_then_settings)*",
            "*first taken by thread \"MainThread\" (test test_scenario.py::test_settings_then_cache)",
            "*in test_settings_then_cache",
            "*first taken by thread \"MainThread\" (test test_scenario.py::test_cache_then_settings)",
            "*in test_cache_then_settings",
            "lockwatch: lock-order dump written to */lockwatch-dumps/lock-order-*.json*",
        ]
    )
    deadlock_text = result.stdout.str().split("_ test_deadlock _")[1].split("POTENTIAL DEADLOCK")[0]
    for stack_line in ('test_scenario.py", line', ', in left\n', ', in right\n'):
        assert stack_line in deadlock_text
    # The failure text leaves pytest's own frames out.
    assert "pluggy" not in result.stdout.str().split("= FAILURES =")[1].split("= lockwatch =")[0]
    assert list((pytester.path / "lockwatch-dumps").glob("deadlock-*.json"))
    assert list((pytester.path / "lockwatch-dumps").glob("lock-order-*.json"))


@pytest.mark.timeout(120)
def test_acceptance_scenario_with_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_scenario=SCENARIO)
    result = run(pytester, "--lockwatch", "-n", "2")
    assert_scenario_verdicts(result)
    result.stdout.fnmatch_lines(["*test_scenario.py::test_settings_then_cache*test_scenario.py::test_cache_then_settings*"])


@pytest.mark.timeout(120)
def test_xdist_inversion_across_workers(pytester: pytest.Pytester) -> None:
    """Each half of the inversion runs in its own worker; the second worker learns the first's order."""
    pytester.makepyfile(
        locks="""
        import threading
        settings_lock = threading.Lock()
        cache_lock = threading.Lock()
        """,
        test_first="""
        import pytest
        from locks import cache_lock, settings_lock

        def test_settings_then_cache():
            with settings_lock:
                with cache_lock:
                    pass
        """,
        test_second="""
        import os, time
        import pytest
        from locks import cache_lock, settings_lock

        def test_wait_for_other_worker(request):
            # Cross-process hand-off: wait until the other worker has shared its order.
            shared = request.config.workerinput["lockwatch_shared_dir"]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for name in os.listdir(shared):
                    if name != "orders-%s.jsonl" % request.config.workerinput["workerid"]:
                        with open(os.path.join(shared, name)) as handle:
                            if 'locks.py", 3]' in handle.read():  # settings_lock's site
                                return
                time.sleep(0.05)
            pytest.fail("the other worker never shared its lock order")

        def test_cache_then_settings():
            with cache_lock:
                with settings_lock:
                    pass
        """,
    )
    result = run(pytester, "--lockwatch", "-n", "2", "--dist", "loadfile")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAILED test_second.py::test_cache_then_settings*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            '*first taken by thread "MainThread (xdist worker gw*)" (test test_first.py::test_settings_then_cache*',
            "*in test_settings_then_cache",
        ]
    )


@pytest.mark.timeout(60)
def test_disabled_by_default_changes_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import _thread, sys, threading
        import lockwatch
        from lockwatch import _events, _order, _state, _watchdog

        module_lock = threading.Lock()
        # The stdlib's own threading.Lock: a factory function up to 3.12, the lock class from 3.13.
        STDLIB_LOCK = _thread.LockType if sys.version_info >= (3, 13) else _thread.allocate_lock

        def test_nothing_is_patched(request):
            assert threading.Lock is STDLIB_LOCK
            assert type(module_lock) is _thread.LockType
            assert not lockwatch.is_patched()
            assert not _watchdog.is_running()
            assert _state.order_checker is None
            assert _events.print_to_stderr is True
            assert request.config.pluginmanager.get_plugin("lockwatch-session") is None
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert "lockwatch:" not in result.stdout.str()


@pytest.mark.timeout(60)
def test_ini_enables_and_configures(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        lockwatch = true
        lockwatch_interval = 0.1
        lockwatch_order = warn
        lockwatch_dump_dir = dumps-here
        """
    )
    pytester.makepyfile(
        """
        import threading
        import lockwatch
        from lockwatch._locks import Lock

        module_lock = threading.Lock()

        def test_patched_from_collection():
            assert lockwatch.is_patched()
            assert isinstance(module_lock, Lock)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"lockwatch: on (interval 0.1 s, order warn, hang_timeout off, on_deadlock break, "
         f"dumps in {pytester.path / 'dumps-here'}); core: {_locks.core()}"]
    )


@pytest.mark.timeout(60)
def test_header_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(): pass")
    result = run(pytester, "--lockwatch", "--lockwatch-hang-timeout=5")
    result.stdout.fnmatch_lines(
        ["lockwatch: on (interval 0.25 s, order raise (inversions fail the test), hang_timeout 5 s, on_deadlock break, "
         f"dumps in *lockwatch-dumps); core: {_locks.core()}"]
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("args", "ini", "expected"),
    [
        (("--lockwatch", "--lockwatch-interval=soon"), None, "*interval must be a positive number (from command line option --lockwatch-interval), not 'soon'*"),
        (("--lockwatch", "--lockwatch-order=sometimes"), None, "*order must be one of off, warn, raise (from command line option --lockwatch-order)*"),
        (("--lockwatch",), "lockwatch_hang_timeout = -1", "*hang_timeout must be a positive number (from ini file *tox.ini, key lockwatch_hang_timeout), not '-1'*"),
        (("--lockwatch", "--lockwatch-interval=0.001"), None,
         "*interval must be at least 0.01 s (from command line option --lockwatch-interval), not '0.001'*"),
        (("--lockwatch", "--lockwatch-interval=2"), "lockwatch_hang_timeout = 1",
         "*hang_timeout must not be below interval (from ini file *tox.ini, key lockwatch_hang_timeout): 1 s < 2 s "
         "(interval from command line option --lockwatch-interval)*"),
    ],
)
def test_bad_value_is_a_usage_error(pytester: pytest.Pytester, args: tuple[str, ...], ini: str | None, expected: str) -> None:
    if ini:
        pytester.maketxtfile(**{"tox": f"[pytest]\n{ini}\n"})
        (pytester.path / "tox.txt").rename(pytester.path / "tox.ini")
    pytester.makepyfile("def test_ok(): pass")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: lockwatch: " + expected.lstrip("*")])


@pytest.mark.timeout(60)
def test_environment_layer_names_its_source(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKWATCH_INTERVAL", "zero")
    pytester.makepyfile("def test_ok(): pass")
    result = run(pytester, "--lockwatch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*from environment variable LOCKWATCH_INTERVAL*"])


# Two tests: the second one takes the two locks in the opposite order, in a thread of its own.
INVERSION_IN_A_THREAD = """
import threading
a_lock = threading.Lock()
b_lock = threading.Lock()

def test_a_then_b():
    with a_lock:
        with b_lock:
            pass

def test_b_then_a_in_a_thread():
    def worker():
        with b_lock:
            with a_lock:
                pass
    thread = threading.Thread(target=worker, name="worker")
    thread.start()
    thread.join(10)
"""


@pytest.mark.timeout(60)
def test_warn_mode_puts_the_inversion_in_the_warnings_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INVERSION_IN_A_THREAD)
    result = run(pytester, "--lockwatch", "--lockwatch-order=warn")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*warnings summary*",
            "test_warn_mode_puts_the_inversion_in_the_warnings_summary.py::test_b_then_a_in_a_thread",
            "*LockOrderWarning: lock *a_lock* -> lock *b_lock* (thread MainThread, *::test_a_then_b) and *these two orders can deadlock*(dump: *.json)",
            "*= lockwatch =*",
            "WARNED *::test_b_then_a_in_a_thread - lock-order: *",
        ]
    )


@pytest.mark.timeout(60)
def test_inversion_in_a_thread_fails_the_test_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INVERSION_IN_A_THREAD)
    result = run(pytester, "--lockwatch")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*first taken by thread \"worker\"*", "FAILED *::test_b_then_a_in_a_thread*"])
    assert "warnings summary" not in result.stdout.str()


@pytest.mark.timeout(60)
def test_order_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading
        a_lock = threading.Lock()
        b_lock = threading.Lock()

        def test_a_then_b():
            with a_lock:
                with b_lock:
                    pass

        def test_b_then_a():
            with b_lock:
                with a_lock:
                    pass
        """
    )
    result = run(pytester, "--lockwatch", "--lockwatch-order=off")
    result.assert_outcomes(passed=2)
    section = result.stdout.str().split("= lockwatch =")[1]
    assert "lock-order" not in section  # the section only says which locks made before lockwatch stay raw


@pytest.mark.timeout(60)
def test_marker_overrides_settings_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading
        import pytest
        from lockwatch import _patch

        a_lock = threading.Lock()
        b_lock = threading.Lock()

        def test_a_then_b():
            with a_lock:
                with b_lock:
                    pass

        @pytest.mark.lockwatch(order="warn", interval=0.1)
        def test_b_then_a_only_warns():
            assert _patch.active_config().interval == 0.1
            with b_lock:
                with a_lock:
                    pass

        def test_session_settings_are_back():
            assert _patch.active_config().interval == 0.25

        @pytest.mark.lockwatch(order="sometimes")
        def test_bad_marker():
            pass
        """
    )
    result = run(pytester, "--lockwatch", "--strict-markers")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*test_marker_overrides_settings_per_test.py:*: LockOrderWarning: *these two orders can deadlock*"])
    result.stdout.fnmatch_lines(
        [
            "*order must be one of off, warn, raise (from @pytest.mark.lockwatch on *::test_bad_marker), not 'sometimes'*",
        ]
    )


@pytest.mark.timeout(60)
def test_fixture_gets_the_reports_and_expected_findings_do_not_fail(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading
        import lockwatch as lw

        def test_expected_deadlock(lockwatch):
            first, second = threading.Lock(), threading.Lock()
            both_hold_one = threading.Barrier(2)
            errors = []

            def take(mine, other):
                with mine:
                    both_hold_one.wait()
                    try:
                        with other:
                            pass
                    except lw.DeadlockError as exc:
                        errors.append(exc)

            threads = [threading.Thread(target=take, args=(first, second)),
                       threading.Thread(target=take, args=(second, first))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(20)
            assert len(errors) == 1
            report = lockwatch.wait_for("deadlock")
            assert report.cycles and len(report.cycles[0]) == 2
            assert lockwatch.files(report)[0].endswith(".json")
            assert lockwatch.inversions  # the same two locks, taken in both orders

        def test_clean(lockwatch):
            assert lockwatch.reports == []
        """
    )
    result = run(pytester, "--lockwatch")
    result.assert_outcomes(passed=2)


@pytest.mark.timeout(60)
def test_fixture_without_the_plugin_enabled_patches_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading
        import lockwatch as lw

        def test_fixture_alone(lockwatch):
            assert lw.is_patched()
            a, b = threading.Lock(), threading.Lock()
            with a:
                with b:
                    pass
            with b:
                with a:
                    pass
            assert len(lockwatch.inversions) == 1

        def test_after_it():
            assert not lw.is_patched()
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=2)


@pytest.mark.timeout(60)
def test_swallowed_deadlock_still_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading

        def test_swallows():
            first, second = threading.Lock(), threading.Lock()
            both_hold_one = threading.Barrier(2)

            def take(mine, other):
                with mine:
                    both_hold_one.wait()
                    try:
                        with other:
                            pass
                    except Exception:
                        pass  # a careless worker hides the error

            threads = [threading.Thread(target=take, args=(first, second), name="a"),
                       threading.Thread(target=take, args=(second, first), name="b")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(20)

        def test_next():
            pass
        """
    )
    result = run(pytester, "--lockwatch", "--lockwatch-order=off")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "DEADLOCK: 2 threads are waiting for each other",
            "lockwatch: deadlock dump written to *.json*",
            "*= lockwatch =*",
            "FAILED *::test_swallows - deadlock: Deadlock: *",
            "    dump: *deadlock-*.json*",
            "FAILED *::test_swallows - DEADLOCK*",
        ]
    )


@pytest.mark.timeout(60)
def test_junit_xml_contains_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_scenario=SCENARIO)
    result = run(pytester, "--lockwatch", "--junitxml=out.xml")
    assert_scenario_verdicts(result)
    tree = ET.parse(pytester.path / "out.xml")
    cases = {case.get("name"): case for case in tree.iter("testcase")}
    failure = cases["test_cache_then_settings"].find("failure")
    assert failure is not None
    assert "test_scenario.py::test_settings_then_cache" in (failure.text or "")
    assert "lock-order dump written to" in (failure.text or "")
    deadlock = cases["test_deadlock"].find("failure")
    assert deadlock is not None and "DEADLOCK: 2 threads are waiting for each other" in (deadlock.text or "")
    properties = [(p.get("name"), p.get("value")) for p in cases["test_deadlock"].iter("property")]
    assert any(name == "lockwatch" and value.startswith("deadlock: Deadlock:") and "(dump: " in value for name, value in properties)
    assert cases["test_after"].find("failure") is None


@pytest.mark.timeout(60)
def test_pytest_timeout_and_faulthandler_still_work(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import faulthandler
        import threading
        import pytest

        def test_faulthandler_enabled():
            assert faulthandler.is_enabled()

        @pytest.mark.timeout(1, method="signal")
        def test_hangs_on_an_event():
            threading.Event().wait()

        @pytest.mark.timeout(1, method="signal")
        def test_hangs_on_a_held_lock():
            lock = threading.Lock()
            lock.acquire()
            lock.acquire()

        def test_runs_after():
            pass
        """
    )
    result = run(pytester, "--lockwatch")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*Failed: Timeout (>1.0s) from pytest-timeout.*"])


@pytest.mark.timeout(60)
def test_conftest_locks_are_instrumented(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import threading
        conftest_lock = threading.RLock()
        """
    )
    pytester.makepyfile(
        """
        from conftest import conftest_lock
        from lockwatch._locks import RLock

        def test_instrumented():
            assert isinstance(conftest_lock, RLock)
        """
    )
    result = run(pytester, "--lockwatch")
    result.assert_outcomes(passed=1)


@pytest.mark.timeout(60)
def test_help_lists_options_and_ini_keys_with_one_text(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")
    result.stdout.fnmatch_lines(
        [
            "*--lockwatch *Run the session under lockwatch*",
            "*--lockwatch-interval=SECONDS*",
            "*--lockwatch-order={off,warn,raise}*",
            "*--lockwatch-dump-dir=DIR*",
            "*--lockwatch-hang-timeout=SECONDS*",
        ]
    )
    text = " ".join(result.stdout.str().split())
    assert text.count("Lock-order checking: raise (the default under pytest") == 2  # option and ini key
    for key in ("lockwatch (bool)", "lockwatch_interval (string)", "lockwatch_order (string)"):
        assert key in text


@pytest.mark.timeout(60)
@pytest.mark.parametrize("order", ["warn", "raise"])
def test_inversion_inside_unittest_subtests_is_warned_or_failed(pytester: pytest.Pytester, order: str) -> None:
    pytester.makepyfile(
        """
        import threading
        import unittest

        a_lock = threading.Lock()
        b_lock = threading.Lock()

        class Orders(unittest.TestCase):
            def test_orders(self):
                with self.subTest("a then b"):
                    with a_lock:
                        with b_lock:
                            pass
                with self.subTest("b then a"):
                    with b_lock:
                        with a_lock:
                            pass
        """
    )
    result = run(pytester, "--lockwatch", f"--lockwatch-order={order}")
    if order == "warn":
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*warnings summary*", "*LockOrderWarning: *these two orders can deadlock*"])
    else:
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*POTENTIAL DEADLOCK (lock order)*", "FAILED *::Orders::test_orders*"])


@pytest.mark.timeout(60)
def test_a_broken_deadlock_gives_no_unhandled_thread_exception_warning(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading

        def run_inversion():
            first, second = threading.Lock(), threading.Lock()
            both_hold_one = threading.Barrier(2)

            def take(mine, other):
                with mine:
                    both_hold_one.wait()
                    with other:
                        pass

            threads = [threading.Thread(target=take, args=(first, second)),
                       threading.Thread(target=take, args=(second, first))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(20)

        def test_expects_it(lockwatch):
            run_inversion()
            assert lockwatch.wait_for("deadlock").cycles

        def test_does_not_expect_it():
            run_inversion()

        def test_other_thread_errors_still_warn():
            def fail():
                raise ValueError("a real bug")
            thread = threading.Thread(target=fail)
            thread.start()
            thread.join()
        """
    )
    # Not run(): QUIET silences the very warning this test is about.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lockwatch", "--lockwatch-order=off",
                                           timeout=INNER_TIMEOUT)
    result.assert_outcomes(passed=2, failed=1, warnings=1)
    text = result.stdout.str()
    warnings_section = text.split("warnings summary")[-1].split("-- Docs")[0]
    assert "DeadlockError" not in warnings_section and "_locks.py" not in warnings_section
    result.stdout.fnmatch_lines(["*PytestUnhandledThreadExceptionWarning*", "*ValueError: a real bug*"])


@pytest.mark.timeout(60)
def test_fixture_wait_for_rejects_an_unknown_kind(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time
        import pytest

        def test_bogus(lockwatch):
            started = time.monotonic()
            with pytest.raises(ValueError, match="unknown report kind 'bogus'.*'deadlock', 'lock-order', 'hang'"):
                lockwatch.wait_for("bogus", timeout=30)
            assert time.monotonic() - started < 1
        """
    )
    result = run(pytester, "--lockwatch")
    result.assert_outcomes(passed=1)
