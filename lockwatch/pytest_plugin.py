"""The pytest plugin: ``pytest --lockwatch`` turns deadlocks and lock-order inversions into test failures.

Off by default: when it is not enabled, the plugin only adds its options, ini
keys and marker; it patches nothing, starts no thread and adds no per-test hook.

Settings are layered (each layer overrides the one before): the plugin's
defaults (interval 0.25 s, order "raise", dumps in ``<rootdir>/lockwatch-dumps``,
on_deadlock always "break" so a deadlock never hangs the run), then
``[tool.lockwatch]`` in pyproject.toml, the ``lockwatch_*`` ini keys,
``LOCKWATCH_*`` environment variables, ``--lockwatch-*`` options, and finally a
test's ``@pytest.mark.lockwatch(...)`` marker.

How ``order`` maps onto lockwatch's checker: the checker always runs in "warn"
mode (an acquire that closes a cycle goes on, in whatever thread it happens),
and the plugin presents the report it publishes: with "raise" it fails the
test that closes the cycle; with "warn" it issues a LockOrderWarning from the
test (pytest's warnings summary); "off" switches the checker off.

With pytest-xdist each worker patches itself, and the workers share the lock
orders they learn (by lock creation site) through files in a directory the
controller creates: a worker imports the others' orders before each test, so
an inversion whose halves run in different workers is still found, naming
both tests. Limit: if the two halves run at the very same time in two workers,
neither has seen the other's order yet; the controller checks the union of
all orders at the end and lists such inversions in the summary (and fails the
run), without being able to fail a test that has already been reported.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from lockwatch import _config
from lockwatch._config import HELP, Config, ConfigError

if TYPE_CHECKING:
    from lockwatch._model import Report
    from lockwatch._patch import Patch

#: The plugin's own defaults, where they differ from lockwatch's.
DEFAULT_INTERVAL = 0.25
DEFAULT_ORDER = "raise"
DEFAULT_DUMP_DIR = "lockwatch-dumps"

#: The settings exposed as --lockwatch-NAME options, lockwatch_NAME ini keys and marker keywords.
SETTINGS = ("interval", "order", "dump_dir", "hang_timeout")

#: Report kinds a test can wait for with the fixture (a snapshot is asked for from outside, never a finding).
_KINDS = ("deadlock", "lock-order", "hang")

#: Report kinds that fail the test they happen in (lock-order ones depend on ``order``).
FAILING_KINDS = ("deadlock", "hang")

ENABLE_HELP = (
    "Run the session under lockwatch: threading locks are instrumented from before collection, "
    "a deadlock is broken (DeadlockError in one thread) and fails its test instead of hanging, "
    "and a lock-order inversion fails the test that closes it."
)

_PLUGIN_HELP = {
    "interval": HELP["interval"].replace("(default 0.5)", f"(default {DEFAULT_INTERVAL} under pytest)"),
    "order": "Lock-order checking: raise (the default under pytest: the test whose lock acquisition "
    "closes a lock-order cycle fails, whichever thread made it; the acquire itself goes on), "
    "warn (a LockOrderWarning in the warnings summary instead) or off.",
    "dump_dir": "Directory for lockwatch dumps (JSON + Graphviz); default <rootdir>/lockwatch-dumps.",
    "hang_timeout": HELP["hang_timeout"] + " Under pytest a hang report fails its test.",
}

_METAVARS = {"interval": "SECONDS", "order": "{off,warn,raise}", "dump_dir": "DIR", "hang_timeout": "SECONDS"}

#: Name under which the active session plugin is registered with pytest.
PLUGIN_NAME = "lockwatch-session"
#: workerinput key of the directory where xdist workers share lock orders.
SHARED_DIR_KEY = "lockwatch_shared_dir"


# --- registration (the only code that runs when lockwatch is off) -----------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lockwatch", "lockwatch (deadlock and lock-order detection)")
    group.addoption("--lockwatch", action="store_true", default=None, dest="lockwatch", help=ENABLE_HELP)
    parser.addini("lockwatch", ENABLE_HELP, type="bool", default=False)
    for name in SETTINGS:
        text = _PLUGIN_HELP[name]
        group.addoption(
            "--lockwatch-" + name.replace("_", "-"),
            dest="lockwatch_" + name,
            default=None,
            metavar=_METAVARS[name],
            help=text.replace("%", "%%"),
        )
        parser.addini("lockwatch_" + name, text, default="")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # As early as a plugin can: locks created by conftest.py files at import are instrumented too.
    namespace = early_config.known_args_namespace
    if getattr(namespace, "help", False) or getattr(namespace, "version", False):
        return
    if _enabled(early_config):
        _start_session(early_config)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "lockwatch(interval=, order=, hang_timeout=, dump_dir=): lockwatch settings for this test "
        "(under --lockwatch).",
    )
    if _enabled(config) and not config.pluginmanager.has_plugin(PLUGIN_NAME):
        _start_session(config)  # e.g. the plugin was registered after initial conftests


def _enabled(config: pytest.Config) -> bool:
    if _cli_value(config, "lockwatch"):
        return True
    if _started_by_hook():
        return True  # LOCKWATCH=1 pytest: the start-up hook patched this process before pytest began
    try:
        return bool(config.getini("lockwatch"))
    except ValueError as exc:
        raise pytest.UsageError(f"lockwatch: the ini key lockwatch must be true or false: {exc}") from None


def _started_by_hook() -> bool:
    from lockwatch import _startup

    hook_patch = _startup.startup_patch
    return hook_patch is not None and hook_patch.active


def _cli_value(config: pytest.Config, dest: str) -> Any:
    value = getattr(config.option, dest, None)
    if value is None:
        value = getattr(getattr(config, "known_args_namespace", None), dest, None)
    return value


def _start_session(config: pytest.Config) -> None:
    try:
        settings, order = resolve_settings(config)
    except ConfigError as exc:
        raise pytest.UsageError(f"lockwatch: {exc}") from None
    plugin = LockwatchSession(config, settings, order)
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    config.add_cleanup(plugin.stop)
    plugin.start()


def resolve_settings(config: pytest.Config) -> tuple[Config, str]:
    """The session's Config (checker policy) and the plugin-level order policy, from every layer."""
    rootpath = config.rootpath
    settings = Config(
        interval=DEFAULT_INTERVAL,
        order=DEFAULT_ORDER,
        on_deadlock="break",
        dump_dir=os.path.join(str(rootpath), DEFAULT_DUMP_DIR),
    )
    dump_base = str(config.invocation_params.dir)
    sources: dict[str, str] = {}

    def layer(values: dict[str, Any], source: str, base: str) -> None:
        nonlocal settings, dump_base
        if not values:
            return
        settings = _config.apply(settings, values, source)
        sources.update(dict.fromkeys(values, source))
        if "dump_dir" in values:
            dump_base = base

    pyproject = _config.find_pyproject(rootpath)
    if pyproject is not None:
        layer(_config.from_pyproject(pyproject), f"[tool.lockwatch] in {pyproject}", str(pyproject.parent))
    inipath = config.inipath
    for name in SETTINGS:
        raw = config.getini("lockwatch_" + name)
        if raw not in (None, ""):
            where = f"ini file {inipath}, key lockwatch_{name}" if inipath else f"ini key lockwatch_{name}"
            layer({name: raw}, where, str(inipath.parent) if inipath else str(rootpath))
    for name, raw in _config.from_environment(os.environ).items():
        layer({name: raw}, f"environment variable LOCKWATCH_{name.upper()}", str(config.invocation_params.dir))
    for name in SETTINGS:
        raw = _cli_value(config, "lockwatch_" + name)
        if raw is not None:
            option = "--lockwatch-" + name.replace("_", "-")
            layer({name: raw}, f"command line option {option}", str(config.invocation_params.dir))
    if not os.path.isabs(settings.dump_dir):
        settings = settings.replace(dump_dir=os.path.normpath(os.path.join(dump_base, settings.dump_dir)))
    _config.check_together(settings, sources)
    order = settings.order
    # A deadlock under pytest is always broken: "report" would hang the run, "exit" would end it.
    return settings.replace(on_deadlock="break", order=_checker_policy(order)), order


def _checker_policy(order: str) -> str:
    """The checker runs in warn mode for both raise and warn: the plugin presents what it publishes."""
    return "off" if order == "off" else "warn"


# --- the fixture --------------------------------------------------------------------------


class LockwatchReports:
    """The reports lockwatch produced while one test ran (the ``lockwatch`` fixture).

    A test that uses the fixture handles lockwatch's findings itself: they are
    not turned into a failure by the plugin.
    """

    def __init__(self) -> None:
        self.reports: list[Report] = []
        self.paths: dict[int, list[str]] = {}  # id(report) -> files written for it

    def _add(self, report: Report, paths: Sequence[str]) -> None:
        self.paths[id(report)] = list(paths)
        self.reports.append(report)  # list.append is atomic: safe from the watchdog thread

    def of_kind(self, kind: str) -> list[Report]:
        from lockwatch import _watchdog

        _watchdog.flush(5.0)  # findings recorded so far are presented by lockwatch's own thread
        return [report for report in list(self.reports) if report.kind == kind]

    @property
    def deadlocks(self) -> list[Report]:
        return self.of_kind("deadlock")

    @property
    def inversions(self) -> list[Report]:
        return self.of_kind("lock-order")

    @property
    def hangs(self) -> list[Report]:
        return self.of_kind("hang")

    def files(self, report: Report) -> list[str]:
        """The dump files written for ``report`` (JSON first)."""
        return self.paths.get(id(report), [])

    def wait_for(self, kind: str = "deadlock", timeout: float = 5.0) -> Report:
        """The first report of ``kind``, waiting up to ``timeout`` s for the watchdog to find it."""
        if kind not in _KINDS:
            raise ValueError(f"unknown report kind {kind!r}: wait for one of {', '.join(map(repr, _KINDS))}")
        deadline = time.monotonic() + timeout
        while True:
            found = self.of_kind(kind)
            if found:
                return found[0]
            if time.monotonic() >= deadline:
                raise AssertionError(f"lockwatch produced no {kind} report within {timeout} s")
            time.sleep(0.01)


@pytest.fixture
def lockwatch(request: pytest.FixtureRequest) -> Generator[LockwatchReports, None, None]:
    """The lockwatch reports (deadlock, lock-order, hang) raised while this test runs."""
    session = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(session, LockwatchSession):
        recorder = session.recorder_for(request.node)
        yield recorder
        return
    # lockwatch is off for the session: using the fixture turns it on for this test
    # (locks created during the test are instrumented; module-level ones are not).
    from lockwatch import _events, _patch

    recorder = LockwatchReports()
    settings, _order_policy = resolve_settings(request.config)
    previous = _events.print_to_stderr
    _events.print_to_stderr = False
    _events.subscribe(recorder._add)
    handle = _patch.Patch(settings).start()
    try:
        yield recorder
    finally:
        handle.stop()
        _events.unsubscribe(recorder._add)
        _events.print_to_stderr = previous


# --- the session plugin (registered only when lockwatch is on) -----------------------------


class _Finding:
    """One report seen during the session, with the test (phase) it happened in."""

    __slots__ = ("report", "paths", "nodeid")

    def __init__(self, report: Report, paths: Sequence[str], nodeid: str | None) -> None:
        self.report = report
        self.paths = list(paths)
        self.nodeid = nodeid


class LockwatchSession:
    """Patches the session, routes each report to the test it happened in, and presents it."""

    def __init__(self, config: pytest.Config, settings: Config, order: str) -> None:
        self.config = config
        self.settings = settings
        self.order = order  # plugin-level: off, warn or raise (fail the test)
        self.patch: Patch | None = None
        self.test_patch: Patch | None = None
        self.role = "main"  # "worker" / "controller" under xdist: known only at configure time
        # Findings not yet handed to a test report (appended from any thread).
        self.pending: list[_Finding] = []
        self.item: pytest.Item | None = None
        self.item_order = order
        self.recorder: LockwatchReports | None = None
        self.last_nodeid: str | None = None
        # What the terminal summary lists: (nodeid, kind, summary, paths, verdict).
        self.summary: list[tuple[str, str, str, list[str], str]] = []
        self.previous_print: bool | None = None
        self.shared: _SharedOrders | None = None
        self.shared_dir: str | None = None
        self.marker_error: str | None = None
        self.owns_shared_dir = False
        # Locks made before lockwatch: the ones adopted (instrumented since), and the ones left raw
        # (labels; None when they could not be counted).
        self.adopted: list[str] = []
        self.raw_locks: list[str] | None = None
        self.census_error: str | None = None
        # True while a test phase runs: subtest reports made then leave the findings to the phase's report.
        self.in_phase = False
        self.previous_excepthook: Any = None

    # --- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        from lockwatch import _events, _patch

        self.previous_print = _events.print_to_stderr
        _events.print_to_stderr = False  # findings are presented in test reports instead
        _events.subscribe(self._on_report)
        self.patch = _patch.Patch(self.settings).start()
        self.count_raw_locks()

    def count_raw_locks(self) -> None:
        """The raw locks alive once the session is patched (logging's have been adopted by then)."""
        from lockwatch import _adopt

        self.adopted = _adopt.adopted_locks()
        try:
            self.raw_locks = _adopt.raw_locks()
        except Exception as exc:  # noqa: BLE001 - a census is a nicety: the header says it failed
            self.raw_locks = None
            self.census_error = repr(exc)

    def stop(self) -> None:
        from lockwatch import _events, _order

        if self.test_patch is not None:
            self.test_patch.stop()
            self.test_patch = None
        if self.patch is not None:
            self.patch.stop()
            self.patch = None
        _order.set_test_name(None)
        _events.unsubscribe(self._on_report)
        if self.previous_print is not None:
            _events.print_to_stderr = self.previous_print
            self.previous_print = None
        if self.previous_excepthook is not None:
            if threading.excepthook == self._thread_excepthook:
                threading.excepthook = self.previous_excepthook
            self.previous_excepthook = None
        if self.owns_shared_dir and self.shared_dir:
            shutil.rmtree(self.shared_dir, ignore_errors=True)
            self.owns_shared_dir = False

    def _on_report(self, report: Report, paths: Sequence[str]) -> None:
        if report.kind == "snapshot":
            return  # asked for from outside (SIGUSR1): not a finding
        item = self.item
        finding = _Finding(report, paths, item.nodeid if item is not None else None)
        recorder = self.recorder
        if recorder is not None:
            recorder._add(report, paths)
        self.pending.append(finding)

    def recorder_for(self, item: pytest.Item) -> LockwatchReports:
        if self.recorder is None or self.item is not item:
            self.recorder = LockwatchReports()
        return self.recorder

    # --- session ---------------------------------------------------------------------

    def _thread_excepthook(self, args: Any) -> None:
        """Keep a broken deadlock's DeadlockError out of pytest's unhandled-thread-exception warning.

        lockwatch raised it on purpose, after reporting the deadlock: the test already
        fails with the full report (or hands it to the ``lockwatch`` fixture), so a
        second account of it, with lockwatch's frames, is noise. Anything else goes on.
        """
        from lockwatch._errors import DeadlockError

        if isinstance(args.exc_value, DeadlockError) and args.exc_value.report is not None:
            return
        previous = self.previous_excepthook or threading.__excepthook__
        previous(args)

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        # After pytest's own thread-exception plugin has installed its hook: ours goes in front of it.
        if self.previous_excepthook is None and self.role != "controller":
            self.previous_excepthook = threading.excepthook
            threading.excepthook = self._thread_excepthook
        if hasattr(config, "workerinput"):
            self.role = "worker"
            shared = config.workerinput.get(SHARED_DIR_KEY)
            if shared:
                self.shared = _SharedOrders(shared, config.workerinput["workerid"])
        elif getattr(config.option, "dist", "no") != "no" and getattr(config.option, "numprocesses", None):
            # The xdist controller runs no test: its workers patch themselves.
            self.role = "controller"
            if self.patch is not None:
                self.patch.stop()
                self.patch = None
            self.shared_dir = tempfile.mkdtemp(prefix="lockwatch-xdist-")
            self.owns_shared_dir = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.shared_dir:
            node.workerinput[SHARED_DIR_KEY] = self.shared_dir

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.stop()

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        from lockwatch import _locks  # which core runs the locks (C or Python)

        hang = "off" if self.settings.hang_timeout is None else f"{self.settings.hang_timeout:g} s"
        order = {"raise": "raise (inversions fail the test)", "warn": "warn", "off": "off"}[self.order]
        line = (
            f"lockwatch: on (interval {self.settings.interval:g} s, order {order}, "
            f"hang_timeout {hang}, on_deadlock break, dumps in {self.settings.dump_dir}); core: {_locks.core()}"
        )
        if self.role == "controller":
            line += "; xdist workers share learned lock orders"
        return [line, "lockwatch: " + self.pre_existing_locks()]

    def pre_existing_locks(self) -> str:
        """One line on the locks lockwatch found raw when it patched: adopted, left raw, and what cannot be known."""
        if self.role == "controller":
            return "raw locks (made before lockwatch, or straight from _thread) are counted in each xdist worker"
        if self.raw_locks is None:
            return f"the raw locks made before lockwatch could not be counted ({self.census_error})"
        adopted = (
            f"adopted {len(self.adopted)} locks made before it ({', '.join(self.adopted)})" if self.adopted
            else "no lock made before it needed adopting"
        )
        if not self.raw_locks:
            return f"{adopted}; no raw lock left"
        return (
            f"{adopted}; {len(self.raw_locks)} raw locks stay unwatched ({_grouped(self.raw_locks)}), "
            "made before it or straight from _thread; whether tests use them cannot be counted "
            "(a raw lock records nothing)"
        )

    # --- tests -------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
        self._set_aside_stray()
        self.item = item
        self.recorder = LockwatchReports() if "lockwatch" in getattr(item, "fixturenames", ()) else None
        self.item_order = self.order
        self.marker_error = self._apply_marker(item)
        if self.shared is not None:
            self.shared.import_orders()
        try:
            return (yield)
        finally:
            if self.test_patch is not None:
                self.test_patch.stop()
                self.test_patch = None
            self.last_nodeid = item.nodeid
            self.item = None
            self.recorder = None
            if self.shared is not None:
                self.shared.export_orders()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        result = yield from self._phase(item)
        if self.marker_error is not None:
            # Raised after the other plugins' setup ran, so that their teardown finds what it expects.
            pytest.fail(self.marker_error, pytrace=False)
        return result

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._phase(item))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._phase(item))

    def _phase(self, item: pytest.Item) -> Generator[None, Any, Any]:
        from lockwatch import _order
        from lockwatch._errors import LockOrderWarning

        _order.set_test_name(item.nodeid)
        self.in_phase = True
        try:
            with warnings.catch_warnings():
                # The checker's own warning is replaced by the plugin's verdict (see makereport).
                warnings.filterwarnings("ignore", category=LockOrderWarning)
                return (yield)
        finally:
            self.in_phase = False
            _order.set_test_name(None)

    def _apply_marker(self, item: pytest.Item) -> str | None:
        """Apply the test's @pytest.mark.lockwatch settings; return what is wrong with it, if anything."""
        from lockwatch import _patch

        marker = item.get_closest_marker("lockwatch")
        if marker is None:
            return None
        if marker.args:
            return f"lockwatch: @pytest.mark.lockwatch takes keywords ({', '.join(SETTINGS)}), not {marker.args!r}"
        source = f"@pytest.mark.lockwatch on {item.nodeid}"
        unknown = sorted(set(marker.kwargs) - set(SETTINGS))
        if unknown:
            return f"lockwatch: unknown marker setting {unknown[0]!r} ({source}); known: {', '.join(SETTINGS)}"
        try:
            settings = _config.apply(self.settings.replace(order=self.order), marker.kwargs, source)
        except ConfigError as exc:
            return f"lockwatch: {exc}"
        if not os.path.isabs(settings.dump_dir):
            settings = settings.replace(dump_dir=os.path.join(str(self.config.rootpath), settings.dump_dir))
        self.item_order = settings.order
        if self.patch is not None:
            self.test_patch = _patch.Patch(settings.replace(order=_checker_policy(settings.order))).start()
        return None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        if self.in_phase:
            # A subtest's report, made while the test runs (unittest subTest, pytest's subtests):
            # a warning issued now would fall under the phase's filter, so the phase's own report judges.
            return report
        if self.patch is not None:
            from lockwatch import _watchdog

            # Findings are presented by lockwatch's own thread: let it catch up with this test.
            _watchdog.flush(5.0)
        findings = self._take_pending()
        if findings:
            self._judge(item, report, findings)
        return report

    def _take_pending(self) -> list[_Finding]:
        taken = []
        while self.pending:
            taken.append(self.pending.pop(0))
        return taken

    def _set_aside_stray(self) -> None:
        """Findings that came in between tests (e.g. a late deadlock): listed in the summary only."""
        for finding in self._take_pending():
            where = f"after {self.last_nodeid}" if self.last_nodeid else "outside any test"
            self.summary.append((where, finding.report.kind, finding.report.summary, finding.paths, "reported"))

    def _judge(self, item: pytest.Item, report: pytest.TestReport, findings: list[_Finding]) -> None:
        from lockwatch._errors import LockOrderWarning

        entries = []
        failing = []
        from lockwatch import _order

        for finding in findings:
            kind = finding.report.kind
            if kind == "lock-order" and _order.withdrawn(finding.report):
                # A lock of the cycle was released by another thread during the test: a
                # hand-off lock, not a mutex, so the order it seemed to break does not exist.
                verdict = "withdrawn (a lock of the cycle is a hand-off lock)"
            elif self.recorder is not None:
                verdict = "handed to the lockwatch fixture"
            elif kind == "lock-order" and self.item_order == "raise" and _standard_library_only(finding.report):
                # e.g. logging's own inversion (FileHandler.close vs dictConfig), visible since its locks
                # are adopted: real, but no test can change it.
                verdict = "reported (the standard library's own lock order)"
            elif kind in FAILING_KINDS or (kind == "lock-order" and self.item_order == "raise"):
                verdict = "failed"
                failing.append(finding)
            elif kind == "lock-order" and self.item_order == "warn":
                verdict = "warned"
                message = _one_line(finding)
                try:
                    # Shown at the test's definition: the acquire may have been in any thread.
                    path, line, _name = item.location
                    warnings.warn_explicit(
                        LockOrderWarning(message, finding.report),
                        LockOrderWarning,
                        filename=str(self.config.rootpath / path),
                        lineno=(line or 0) + 1,
                    )
                except LockOrderWarning:  # -W error::lockwatch.LockOrderWarning: the user wants failures
                    verdict = "failed"
                    failing.append(finding)
            else:
                verdict = "reported"
            entries.append(
                {
                    "kind": kind,
                    "summary": finding.report.summary,
                    "paths": finding.paths,
                    "verdict": verdict,
                }
            )
            prop = f"{kind}: {finding.report.summary}"
            if finding.paths:
                prop += f" (dump: {finding.paths[0]})"
            item.user_properties.append(("lockwatch", prop))
            if report.when == "teardown":
                report.user_properties.append(("lockwatch", prop))
        # Carried to the xdist controller with the report (extra attributes are serialised).
        report.lockwatch_findings = getattr(report, "lockwatch_findings", []) + entries  # type: ignore[attr-defined]
        if failing:
            failing.sort(key=lambda finding: _KIND_ORDER.get(finding.report.kind, 9))
            text = "\n".join(_full_text(finding) for finding in failing)
            if report.failed and hasattr(report.longrepr, "addsection"):
                report.longrepr.addsection("lockwatch", text)  # type: ignore[union-attr]
            else:
                if report.failed and report.longrepr is not None:
                    text = f"{report.longrepr}\n\n{text}"
                report.outcome = "failed"
                report.longrepr = text

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for entry in getattr(report, "lockwatch_findings", None) or ():
            self.summary.append((report.nodeid, entry["kind"], entry["summary"], entry["paths"], entry["verdict"]))

    # --- end of session -------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._set_aside_stray()
        if self.role == "controller" and self.shared_dir and self.order != "off":
            for where, summary in _SharedOrders.unreported_cycles(self.shared_dir, self.summary):
                self.summary.append((where, "lock-order", summary, [], "found after the run"))
                if self.order == "raise" and session.exitstatus == 0:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.role == "worker":
            return
        terminalreporter.section("lockwatch")
        for where, kind, summary, paths, verdict in self.summary:
            shout, bracket, why = verdict.partition(" (")  # "reported (why)": the why stays as written
            line = f"{shout.upper()}{bracket}{why} {where} - {kind}: {summary}"
            terminalreporter.line(line)
            if paths:
                terminalreporter.line(f"    dump: {', '.join(paths)}")
        terminalreporter.line(self.pre_existing_locks())


def _standard_library_only(report: Report) -> bool:
    """Whether every order in the report's cycles was taken by standard-library code, not the tests' own.

    An order's place is its stack's innermost frame outside threading.py and
    queue.py (``with condition:`` and ``queue.put()`` take locks there on the
    caller's behalf). A stack that is missing counts as the tests' own.
    """
    edges = [edge for cycle in report.order_cycles for edge in cycle]
    if not edges:
        return False
    for edge in edges:
        frames = [frame for frame in edge.stack if _normal(frame.file) not in _LOCK_PLUMBING]
        if not frames or not _in_standard_library(frames[-1].file):
            return False
    return True


def _normal(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def _in_standard_library(path: str) -> bool:
    normal = _normal(path)
    if normal.startswith(_THIRD_PARTY_DIRS):
        return False
    return normal.startswith(_STDLIB_DIRS)


def _stdlib_dirs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    import sysconfig

    paths = sysconfig.get_paths()
    stdlib = tuple({_normal(paths[key]) + os.sep for key in ("stdlib", "platstdlib") if paths.get(key)})
    # site-packages may sit inside the standard library's directory (a system Python).
    third_party = tuple({_normal(paths[key]) + os.sep for key in ("purelib", "platlib") if paths.get(key)})
    return stdlib, third_party


_STDLIB_DIRS, _THIRD_PARTY_DIRS = _stdlib_dirs()
_LOCK_PLUMBING = {_normal(threading.__file__), _normal(queue.__file__)}


def _grouped(labels: list[str], shown: int = 6) -> str:
    """``threading._active_limbo_lock, cached_property.lock x32, ...``: the most frequent labels first."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    parts = [label if count == 1 else f"{label} x{count}" for label, count in ranked[:shown]]
    if len(ranked) > shown:
        parts.append(f"{sum(count for _label, count in ranked[shown:])} more")
    return ", ".join(parts)


def _one_line(finding: _Finding) -> str:
    text = finding.report.summary or f"lockwatch {finding.report.kind} report"
    if finding.paths:
        text += f" (dump: {finding.paths[0]})"
    return text


_KIND_ORDER = {"deadlock": 0, "hang": 1, "lock-order": 2}
# pytest's and pluggy's own frames say nothing about the test: left out of failure reports (not dumps).
_RUNNER_DIRS = tuple(
    os.path.dirname(os.path.abspath(module.__file__ or "")) + os.sep
    for module in (pytest, __import__("_pytest"), __import__("pluggy"))
    if getattr(module, "__file__", None)
)


def _without_runner_frames(report: Report) -> Report:
    import dataclasses

    def keep(stack: Any) -> tuple[Any, ...]:
        kept = tuple(frame for frame in stack if not frame.file.startswith(_RUNNER_DIRS))
        return kept or tuple(stack)

    threads = tuple(dataclasses.replace(t, stack=keep(t.stack)) for t in report.threads)
    cycles = tuple(tuple(dataclasses.replace(e, stack=keep(e.stack)) for e in cycle) for cycle in report.order_cycles)
    return report.replace(threads=threads, order_cycles=cycles)


def _full_text(finding: _Finding) -> str:
    from lockwatch import _dump, _text

    try:
        text = _text.format_report(_without_runner_frames(finding.report))
    except Exception as exc:  # noqa: BLE001 - the summary still says what matters
        text = f"{finding.report.kind.upper()}: {finding.report.summary}\n(text report failed: {exc!r})\n"
    if finding.paths:
        text += f"lockwatch: {finding.report.kind} dump written to {_dump.describe(finding.paths)}\n"
    return text


# --- xdist: lock orders shared between workers ----------------------------------------------


class _SharedOrders:
    """Lock orders (by lock creation site) exchanged between xdist workers through files.

    Each worker appends the class-level orders it learns to ``orders-<worker>.jsonl``
    and, before each test, adds the other workers' orders to its own graph, so its
    checker finds (and reports, with both stacks and both tests) a cycle whose other
    half was taken in another worker.
    """

    def __init__(self, directory: str, worker: str) -> None:
        self.directory = directory
        self.worker = worker
        self.path = os.path.join(directory, f"orders-{worker}.jsonl")
        self.exported: set[tuple[Any, Any]] = set()
        self.offsets: dict[str, int] = {}

    def export_orders(self) -> None:
        from lockwatch import _order

        lines = []
        for record in _order.export_class_orders():  # orders learned here (imported ones are not re-exported)
            key = (tuple(record["from"]), tuple(record["to"]))
            if key in self.exported:
                continue
            self.exported.add(key)
            record["worker"] = self.worker
            lines.append(json.dumps(record))
        if lines:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")  # one write: readers see whole lines or nothing new

    def import_orders(self) -> None:
        from lockwatch import _order

        by_worker: dict[str, list[dict[str, Any]]] = {}
        for entry in self._read_new():
            worker = entry.get("worker")
            if isinstance(worker, str) and worker != self.worker:
                by_worker.setdefault(worker, []).append(entry)
        for worker, entries in sorted(by_worker.items()):
            try:
                _order.import_class_orders(entries, source=f"xdist worker {worker}")
            except ValueError:
                # A damaged batch: keep the good records, one by one.
                for entry in entries:
                    try:
                        _order.import_class_orders([entry], source=f"xdist worker {worker}")
                    except ValueError:
                        continue

    def _read_new(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        try:
            names = sorted(os.listdir(self.directory))
        except OSError:
            return entries
        for name in names:
            if not name.startswith("orders-") or name == os.path.basename(self.path):
                continue
            path = os.path.join(self.directory, name)
            try:
                with open(path, encoding="utf-8") as handle:
                    handle.seek(self.offsets.get(name, 0))
                    data = handle.read()
            except OSError:
                continue
            complete = data[: data.rfind("\n") + 1]  # a line still being written waits for next time
            self.offsets[name] = self.offsets.get(name, 0) + len(complete.encode("utf-8"))
            for line in complete.splitlines():
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue
        return entries

    @staticmethod
    def unreported_cycles(
        directory: str, summary: list[tuple[str, str, str, list[str], str]]
    ) -> list[tuple[str, str]]:
        """Inversions in the union of every worker's orders that no worker reported (raced halves)."""
        import networkx as nx

        graph = nx.DiGraph()
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return []
        for name in names:
            if not name.startswith("orders-"):
                continue
            try:
                with open(os.path.join(directory, name), encoding="utf-8") as handle:
                    lines = handle.read().splitlines()
            except OSError:
                continue
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                u, v = tuple(entry["from"]), tuple(entry["to"])
                if u != v and not graph.has_edge(u, v):
                    graph.add_edge(u, v, entry=entry)
        reported_text = "\n".join(text for _where, kind, text, _paths, _verdict in summary if kind == "lock-order")
        found = []
        for cycle in nx.simple_cycles(graph, length_bound=4):
            edges = [graph[u][v]["entry"] for u, v in zip(cycle, cycle[1:] + cycle[:1], strict=True)]
            if set.intersection(*(set(map(tuple, e["gates"])) for e in edges)):
                continue  # a common gate lock: these orders cannot interleave
            tests = sorted({e["test"] for e in edges if e["test"]})
            labels = [f'"{e["from_label"]}"' for e in edges]
            if all(label in reported_text for label in labels) and all(t in reported_text for t in tests):
                continue  # a worker reported it live
            phrase = ", ".join(
                f'lock "{e["from_label"]}" -> lock "{e["to_label"]}" (thread {e["thread"]}, {e["test"]}, '
                f'xdist worker {e["worker"]})'
                for e in edges
            )
            found.append((", ".join(tests) or "xdist session", f"{phrase}: these orders can deadlock "
                          "(their tests ran at the same time in different workers; found after the run)"))
        return found
