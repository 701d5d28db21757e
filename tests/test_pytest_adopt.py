"""The pytest plugin and locks made before it: logging's are adopted, the rest are counted (pytester sessions)."""

from __future__ import annotations

import pytest

INNER_TIMEOUT = 60
QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnhandledThreadExceptionWarning")

# dictConfig holds logging's module lock while it builds a handler; the handler factory
# reads app state under the app's lock. The app thread holds that lock and calls
# logging.getLogger(), which takes logging's module lock: a cycle through logging's lock.
# Events force the interleaving; joins with timeouts keep the inner session finite.
LOGGING_RECONFIGURATION = '''
import logging
import logging.config
import threading

import pytest

app_lock = threading.Lock()
app_state = {"level": "INFO"}


class AppHandler(logging.Handler):
    def emit(self, record):
        pass


def test_reconfigure_logging_while_the_app_logs():
    app_holds_its_lock = threading.Event()
    factory_running = threading.Event()

    def make_handler():
        factory_running.set()
        with app_lock:  # the factory reads app state (dictConfig holds logging's lock here)
            return AppHandler(level=app_state["level"])

    def app():
        with app_lock:
            app_holds_its_lock.set()
            factory_running.wait(10)
            logging.getLogger("app.worker").info("working")  # needs logging's lock

    thread = threading.Thread(target=app, name="app")
    thread.start()
    app_holds_its_lock.wait(10)
    try:
        logging.config.dictConfig({
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"app": {"()": make_handler}},
            "root": {"handlers": ["app"], "level": "INFO"},
        })
    finally:
        thread.join(10)
    assert not thread.is_alive()


def test_next_test_logs_normally():
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    logger = logging.getLogger("after")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (logger.info("from a thread"), done.set()))
    worker.start()
    worker.join(10)
    assert done.is_set()
    assert seen == ["from a thread"]
'''


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*QUIET, *args, timeout=INNER_TIMEOUT)


@pytest.mark.timeout(90)
def test_logging_reconfiguration_deadlock_fails_fast_through_loggings_lock(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_logging_deadlock=LOGGING_RECONFIGURATION)
    result = run(pytester, "--lockwatch", "--lockwatch-interval=0.1", "--durations=0", "-vv")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_reconfigure_logging_while_the_app_logs FAILED*",
            "*test_next_test_logs_normally PASSED*",
        ],
        consecutive=False,
    )
    failure = result.stdout.str().split("= FAILURES =")[1]
    assert "DEADLOCK: 2 threads are waiting for each other" in failure
    # The cycle goes through logging's module lock (adopted: it was made before the plugin patched).
    cycle = failure.split("Cycle:")[1].split("Thread ")[0]
    assert "logging._lock" in cycle, cycle
    assert "app_lock" in cycle, cycle
    # "Fails in about a second": the deadlocked test's call phase, from --durations.
    durations = [line for line in result.stdout.lines if "call" in line and "test_reconfigure_logging" in line]
    assert durations, result.stdout.str()
    seconds = float(durations[0].split("s", 1)[0])
    assert seconds < 5, durations[0]


@pytest.mark.timeout(90)
def test_header_and_summary_count_the_locks_made_before_lockwatch(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import logging
        import threading

        def test_logging_locks_are_instrumented():
            import lockwatch
            assert isinstance(logging._lock, lockwatch.RLock)
            assert isinstance(logging.lastResort.lock, lockwatch.RLock)
            assert isinstance(threading.Lock(), lockwatch.Lock)
        """
    )
    result = run(pytester, "--lockwatch")
    result.assert_outcomes(passed=1)
    pattern = (
        "lockwatch: adopted * locks made before it (logging._lock, *_StderrHandler.lock*); * raw locks stay unwatched (*), "
        "made before it or straight from _thread; whether tests use them cannot be counted (a raw lock records nothing)"
    )
    result.stdout.fnmatch_lines([pattern])  # the header
    result.stdout.fnmatch_lines(["*= lockwatch =*", pattern[len("lockwatch: "):]])  # the summary
    header = next(line for line in result.stdout.lines if "raw locks stay unwatched" in line)
    raw = int(header.split("; ")[1].split(" raw locks")[0])
    assert raw > 0


@pytest.mark.timeout(120)
def test_lockwatch_env_var_turns_the_plugin_on_and_logging_is_adopted_at_start_up(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_logging_deadlock=LOGGING_RECONFIGURATION)
    monkeypatch.setenv("LOCKWATCH", "1")
    monkeypatch.setenv("LOCKWATCH_INTERVAL", "0.1")
    result = run(pytester, "-vv")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["lockwatch: on (interval 0.1 s*", "*test_next_test_logs_normally PASSED*"], consecutive=False)
    assert "logging._lock" in result.stdout.str().split("Cycle:")[1].split("Thread ")[0]


@pytest.mark.timeout(90)
def test_loggings_own_lock_order_is_reported_but_fails_no_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_orders="""
        import logging, logging.config, threading

        first = threading.Condition()
        second = threading.Condition()

        def test_file_handler_closed(tmp_path):
            logging.FileHandler(tmp_path / "x.log").close()  # handler lock, then logging's lock

        def test_dictconfig():
            # logging's lock, then every handler's lock (pytest's own file handler among them)
            logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})

        def test_conditions_first_second():
            with first:
                with second:
                    pass

        def test_conditions_second_first():  # the tests' own inversion, taken inside threading.py: fails
            with second:
                with first:
                    pass
        """
    )
    result = run(pytester, "--lockwatch")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "REPORTED (the standard library's own lock order) test_orders.py::test_dictconfig - lock-order: "
            '*"logging._lock"*',
            "FAILED test_orders.py::test_conditions_second_first - lock-order:*",
        ],
        consecutive=False,
    )
