"""The ``lockwatch`` command line: run a program under lockwatch, render and show dumps, snapshot a live process.

Exit statuses (also in ``lockwatch --help``):

====  ======================================================================
0     success (``run``: the program exited with status 0)
1     ``run``: the program failed (any other status of the program is passed through as is)
2     usage error: unknown option, bad option value, missing script or module
3     bad input file: missing, unreadable, not JSON, not a lockwatch dump or baseline, newer format
4     cannot write the output: unwritable path, or Graphviz missing or failing for an image
5     ``dump``: the process does not exist, is not ours, is not running lockwatch, or did not answer
86    ``run --on-deadlock exit``: a deadlock was found, reported, and the process ended
130   ``run``: the program was interrupted (KeyboardInterrupt), as a shell reports for python
====  ======================================================================
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, NoReturn, Sequence

import click

import lockwatch
from lockwatch import _baseline, _config, _patch, _run
from lockwatch._config import DEADLOCK_EXIT_STATUS, HELP, ON_DEADLOCK_CHOICES, ORDER_CHOICES
from lockwatch._errors import ConfigError, DumpError, ProgramNotFound, RenderError

EXIT_OK = 0
EXIT_PROGRAM_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_CANNOT_WRITE = 4
EXIT_PROCESS = 5
EXIT_DEADLOCK = DEADLOCK_EXIT_STATUS
EXIT_INTERRUPTED = _run.INTERRUPTED_EXIT_STATUS

#: Seconds ``lockwatch dump`` waits for the snapshot by default.
DUMP_TIMEOUT = 10.0
# How often ``lockwatch dump`` looks whether the snapshot has been written.
_DUMP_POLL = 0.05

_EXIT_STATUSES = f"""\b
Exit statuses:
  {EXIT_OK:<4} success (run: the program exited with 0)
  {EXIT_PROGRAM_FAILED:<4} run: the program failed (its other statuses pass through as is)
  {EXIT_USAGE:<4} usage error: unknown option, bad value, missing script or module
  {EXIT_BAD_INPUT:<4} bad input file: missing, not JSON, not a lockwatch dump, newer format
  {EXIT_CANNOT_WRITE:<4} cannot write the output (or Graphviz missing for an image format)
  {EXIT_PROCESS:<4} dump: no such process, not ours, not under lockwatch, no answer
  {EXIT_DEADLOCK:<4} run --on-deadlock exit: a deadlock was found and the process ended
  {EXIT_INTERRUPTED:<4} run: the program was interrupted (KeyboardInterrupt)
"""


class CliError(click.ClickException):
    """A failure the user can fix: said on one line, with a documented exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        _error(self.format_message())


def _error(message: str) -> None:
    click.echo(f"lockwatch: error: {message}", err=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Group(click.Group):
    """The command group; it presents every error as one ``lockwatch: error:`` line."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, *extra_args: Any,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, *extra_args, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name or "lockwatch", *extra_args, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.format_message())
            sys.exit(EXIT_USAGE)
        except click.UsageError as exc:
            hint = ""
            if exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            _error(_one_line(exc.format_message()) + hint)
            sys.exit(EXIT_USAGE)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            _error("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(result if isinstance(result, int) else EXIT_OK)


@click.group(
    cls=_Group,
    epilog=_EXIT_STATUSES,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(lockwatch.__version__, "--version", prog_name="lockwatch", message="%(prog)s %(version)s")
def cli() -> None:
    """Find deadlocks and lock-order bugs in Python threads.

    lockwatch instruments every threading.Lock and RLock (and so every
    Condition, Semaphore, Event, Barrier and queue.Queue built on them). Run a
    program under it with `lockwatch run`: a deadlock is reported within about
    a second with every thread's stack, written as a JSON dump plus a Graphviz
    picture. Turn dumps into pictures or text with `render` and `show`, and ask
    a hung process for a snapshot with `dump PID`.

    \b
    Examples:
      lockwatch run app.py --port 8080       # like `python app.py --port 8080`
      lockwatch run -m mypkg.server          # like `python -m mypkg.server`
      lockwatch show lockwatch-dumps/deadlock-*.json
      lockwatch render lockwatch-dumps/deadlock-20260101-120000-4242-1.json -o deadlock.png
      lockwatch dump 4242                    # snapshot of a process running under lockwatch
    """


# --- run ---------------------------------------------------------------------------------------


class _RunCommand(click.Command):
    """``run``: everything after the script (or ``-m MODULE``) belongs to the program."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Like python, `-m MODULE` ends lockwatch's own options: `run -m pkg --help`
        # passes --help to pkg. Rewrite it as `-m MODULE -- ...` so click agrees.
        takes_value = {
            name for param in self.params
            if isinstance(param, click.Option) and not param.is_flag for name in param.opts
        }
        index = 0
        while index < len(args):
            token = args[index]
            if token == "--" or not token.startswith("-") or token == "-":
                break
            if token == "-m" and index + 1 < len(args):
                args = [*args[: index + 2], "--", *args[index + 2 :]]
                break
            if token.startswith("-m") and len(token) > 2 and not token.startswith("--"):
                args = [*args[:index], "-m", token[2:], "--", *args[index + 1 :]]
                break
            if token in takes_value:
                index += 1  # skip the option's value
            index += 1
        return super().parse_args(ctx, args)


def _setting(name: str, option: str, value: Any) -> Any:
    """Check one option's value; a bad one is a usage error naming the option."""
    if value is None:
        return None
    try:
        return _config.validate(name, value, f"option {option}")
    except ConfigError as exc:
        message = str(exc).replace(f"{name} must", "must", 1).replace(f" (from option {option})", "")
        raise click.BadParameter(message, param_hint=f"'{option}'") from None


def _check_writable(path: str, option: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CliError(f"cannot write {option} {path}: the directory {directory} does not exist", EXIT_CANNOT_WRITE)
    if os.path.isdir(path):
        raise CliError(f"cannot write {option} {path}: it is a directory", EXIT_CANNOT_WRITE)
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise CliError(f"cannot write {option} {path}: permission denied", EXIT_CANNOT_WRITE)


@cli.command(
    cls=_RunCommand,
    context_settings={"allow_interspersed_args": False},
    epilog="Settings also come from LOCKWATCH_* environment variables (LOCKWATCH_INTERVAL, "
    "LOCKWATCH_DUMP_DIR, LOCKWATCH_ON_DEADLOCK, ...) and [tool.lockwatch] in pyproject.toml; "
    "options given here win.",
)
@click.option("-m", "module", metavar="MODULE", help="Run library module MODULE as a script, like `python -m`.")
@click.option("--dump-dir", metavar="DIR", help=HELP["dump_dir"])
@click.option("--interval", metavar="S", help=HELP["interval"])
@click.option("--on-deadlock", type=click.Choice(ON_DEADLOCK_CHOICES), help=HELP["on_deadlock"])
@click.option("--hang-timeout", metavar="S", help=HELP["hang_timeout"] + " 'off' turns it off.")
@click.option("--order", type=click.Choice(ORDER_CHOICES), help=HELP["order"])
@click.option("--declared-order", metavar="A,B,C", help=HELP["declared_order"])
@click.option("--baseline", metavar="FILE", help=HELP["baseline"])
@click.option("--no-signal", is_flag=True, default=False, help="Do not answer SIGUSR1 / `lockwatch dump` with snapshots.")
@click.option("--children", is_flag=True, default=False, help=HELP["children"])
@click.option("--write-baseline", metavar="FILE",
              help="At exit, write the lock orders seen during the run to FILE (a baseline for --baseline).")
@click.argument("program", nargs=-1, type=click.UNPROCESSED, metavar="SCRIPT [ARGS]...")
def run(
    module: str | None,
    dump_dir: str | None,
    interval: str | None,
    on_deadlock: str | None,
    hang_timeout: str | None,
    order: str | None,
    declared_order: str | None,
    baseline: str | None,
    no_signal: bool,
    children: bool,
    write_baseline: str | None,
    program: tuple[str, ...],
) -> NoReturn:
    """Run a Python program with deadlock detection on.

    Runs SCRIPT (or `-m MODULE`) exactly as python would: same sys.argv,
    __main__, sys.path[0], output and exit status; everything after the
    script or module belongs to the program. Every lock it creates is
    watched. When threads deadlock, lockwatch prints a report on stderr and
    writes a JSON dump plus a Graphviz picture to the dump directory; with
    --on-deadlock exit the process then ends with status 86. Otherwise
    lockwatch stays silent.

    \b
    Examples:
      lockwatch run app.py a --b                 # sys.argv == ['app.py', 'a', '--b']
      lockwatch run -m mypkg --verbose           # runs mypkg/__main__.py
      lockwatch run --on-deadlock exit --dump-dir /tmp/dumps tests/stress.py
      lockwatch run --hang-timeout 30 --order raise server.py
      lockwatch run --children -m mypkg.pool     # multiprocessing children are watched too
      lockwatch run --write-baseline lock-order.json app.py   # then: --baseline lock-order.json
    """
    args = list(program)
    script: str | None = None
    if module is None:
        if not args:
            raise click.UsageError("give a SCRIPT to run, or -m MODULE")
        script, args = args[0], args[1:]
    explicit = {
        "dump_dir": _setting("dump_dir", "--dump-dir", dump_dir),
        "interval": _setting("interval", "--interval", interval),
        "on_deadlock": on_deadlock,
        "hang_timeout": _setting("hang_timeout", "--hang-timeout", hang_timeout),
        "order": order,
        "declared_order": _setting("declared_order", "--declared-order", declared_order),
        "baseline": _setting("baseline", "--baseline", baseline),
        "signal": False if no_signal else None,
        "children": True if children else None,
    }
    try:
        config = _config.resolve(explicit, explicit_source="command line")
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if hang_timeout is not None and explicit["hang_timeout"] is None:
        config = config.replace(hang_timeout=None)  # an explicit "off" overrides the environment too
    if write_baseline is not None:
        if config.order == "off":
            raise click.UsageError("--write-baseline needs lock-order checking on (--order warn or raise)")
        _check_writable(write_baseline, "--write-baseline")
        if os.path.exists(write_baseline):
            _load_baseline_or_fail(write_baseline)  # its suppressions are kept: it must be valid
        if config.baseline and not os.path.exists(config.baseline) and _same_path(config.baseline, write_baseline):
            config = config.replace(baseline=None)  # the first run of "check and update in place"
    if config.baseline:
        _load_baseline_or_fail(config.baseline)
    if script is not None:
        try:
            _run.check_script(script)
        except ProgramNotFound as exc:
            raise CliError(str(exc), EXIT_USAGE) from None

    try:
        _patch.Patch(config).start()
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from None
    try:
        status = _run.run_program(script, module, args)
    except ProgramNotFound as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if write_baseline is not None:
        status = _finish_baseline(write_baseline, status)
    sys.exit(status)


def _same_path(first: str, second: str) -> bool:
    return os.path.normcase(os.path.abspath(first)) == os.path.normcase(os.path.abspath(second))


def _load_baseline_or_fail(path: str) -> None:
    if not os.path.exists(path):
        raise CliError(
            f"lock-order baseline {path} does not exist "
            f"(write one with: lockwatch run --write-baseline {path} SCRIPT)",
            EXIT_BAD_INPUT,
        )
    try:
        _baseline.load_baseline(path)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from None


def _finish_baseline(path: str, status: int) -> int:
    """Write the baseline once the program's threads are done, as python waits for them at exit."""
    try:
        _run.join_program_threads()
    except KeyboardInterrupt:
        _error("interrupted while waiting for the program's threads; no baseline written")
        return EXIT_INTERRUPTED
    try:
        written = _baseline.write_baseline(path)
    except ConfigError as exc:
        _error(str(exc))
        return status or EXIT_BAD_INPUT
    except OSError as exc:
        _error(f"cannot write the lock-order baseline {path}: {exc.strerror or exc}")
        return status or EXIT_CANNOT_WRITE
    click.echo(f"lockwatch: lock-order baseline written to {written}", err=True)
    return status


# --- render and show ---------------------------------------------------------------------------


def _load(path: str) -> lockwatch.Report:
    from lockwatch import _dump

    try:
        return _dump.load_dump(path)
    except DumpError as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from None


@cli.command()
@click.argument("dump", metavar="DUMP.json")
@click.option("-o", "--output", metavar="OUT",
              help="Where to write the picture (default: next to the dump, with the format's suffix).")
@click.option("-f", "--format", "fmt", type=click.Choice(("svg", "png", "pdf", "dot")),
              help="Output format (default: from OUT's suffix, else svg). Only dot works without Graphviz.")
def render(dump: str, output: str | None, fmt: str | None) -> None:
    """Draw a dump as a picture of who holds and who waits.

    Threads are boxes, locks are ellipses; "waits for" edges are dashed,
    "held by" edges solid, the deadlock (or lock-order) cycle is red, and
    threads outside it are grey. In an SVG, hover over a thread to see its
    stack. svg, png and pdf need Graphviz's `dot` program; dot (the Graphviz
    source) always works. Prints the path written.

    \b
    Examples:
      lockwatch render deadlock-20260101-120000-4242-1.json            # -> .svg beside it
      lockwatch render deadlock-20260101-120000-4242-1.json -o cycle.png
      lockwatch render deadlock-20260101-120000-4242-1.json -f dot -o - | less
    """
    from lockwatch import _render

    report = _load(dump)
    if fmt is None:
        if output is not None and output != "-":
            suffix = os.path.splitext(output)[1].lower().lstrip(".")
            if suffix not in _render.FORMATS:
                raise click.UsageError(
                    f"cannot tell the format from the output name {output!r}: add -f svg, png, pdf or dot"
                )
            fmt = suffix
        else:
            fmt = "svg"
    if output == "-":
        _render_to_stdout(report, fmt)
        return
    if output is None:
        output = os.path.splitext(dump)[0] + "." + fmt
    if os.path.exists(output) and os.path.samefile(output, dump):
        raise CliError(f"refusing to overwrite the dump {dump} with the picture: choose another -o", EXIT_CANNOT_WRITE)
    try:
        written = _render.render(report, output, fmt)
    except RenderError as exc:
        raise CliError(str(exc), EXIT_CANNOT_WRITE) from None
    click.echo(written)


def _render_to_stdout(report: lockwatch.Report, fmt: str) -> None:
    from lockwatch import _render

    try:
        source = _render.to_dot(report)
        data = source.encode("utf-8") if fmt == "dot" else _render.run_dot(source, fmt)
    except RenderError as exc:
        raise CliError(str(exc), EXIT_CANNOT_WRITE) from None
    stream = click.get_binary_stream("stdout")
    stream.write(data)
    stream.flush()


@cli.command(short_help="Print a dump as a text report.")
@click.argument("dump", metavar="DUMP.json")
def show(dump: str) -> None:
    """Print a dump as the text report lockwatch prints when it finds something.

    The summary comes first (the deadlock cycle: which thread waits for which
    lock held by whom), then every involved thread's stack with the blocking
    line marked, the locks it holds and where they were taken, then the other
    threads. Works on any dump (deadlock, hang, lock-order, snapshot), on any
    machine.

    \b
    Examples:
      lockwatch show lockwatch-dumps/deadlock-20260101-120000-4242-1.json
      lockwatch show snapshot-20260101-120500-4242-1.json | less
    """
    from lockwatch import _text

    report = _load(dump)
    click.echo(_text.format_report(report), nl=False)


# --- dump ----------------------------------------------------------------------------------------


@cli.command("dump", short_help="Ask a process running under lockwatch for a snapshot.")
@click.argument("pid", type=int)
@click.option("--timeout", metavar="S", type=float, default=DUMP_TIMEOUT, show_default=True,
              help="Seconds to wait for the process to write the snapshot.")
@click.option("--show", "show_report", is_flag=True, help="Also print the snapshot as a text report.")
def dump_command(pid: int, timeout: float, show_report: bool) -> None:
    """Ask a process running under lockwatch for a snapshot, and print its path.

    Sends the process SIGUSR1; its watchdog writes a snapshot dump (every
    thread's stack, every held and awaited lock) to its dump directory while
    the process goes on -- or stays hung. Works only for processes started
    with `lockwatch run` (or lockwatch.patch()) by the same user, with
    signals on (no --no-signal). The main thread must be running Python code
    or waiting on a lock for the signal to be handled.

    \b
    Examples:
      lockwatch dump 4242
      lockwatch dump 4242 --show                 # and print who holds and who waits
      lockwatch render "$(lockwatch dump 4242)"  # picture of the hung process
    """
    from lockwatch import _signals

    if not timeout > 0:
        raise click.BadParameter(f"must be a positive number of seconds, not {timeout}", param_hint="'--timeout'")
    if pid <= 0:
        raise click.BadParameter(f"must be a positive process id, not {pid}", param_hint="'PID'")
    signal_number = _signals.SNAPSHOT_SIGNAL
    if signal_number is None:
        raise CliError("snapshots need SIGUSR1, which this platform does not have", EXIT_PROCESS)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise CliError(f"no process with pid {pid}", EXIT_PROCESS) from None
    except PermissionError:
        raise CliError(
            f"process {pid} belongs to another user: run `lockwatch dump` as that user", EXIT_PROCESS
        ) from None
    registration = _signals.registration_path(pid)
    registered = _registry_read(_signals.read_json, registration)
    if registered is None:
        raise CliError(
            f"process {pid} is not running under lockwatch (no {registration}); start it with "
            f"`lockwatch run SCRIPT` (without --no-signal) to take snapshots",
            EXIT_PROCESS,
        )
    _check_not_reused(pid, registration, registered)
    last = _signals.last_snapshot_path(pid)
    before = _file_state(last)
    try:
        os.kill(pid, signal_number)
    except ProcessLookupError:
        raise CliError(f"process {pid} ended before it could be asked", EXIT_PROCESS) from None
    except PermissionError:
        raise CliError(f"process {pid} belongs to another user: run `lockwatch dump` as that user", EXIT_PROCESS) from None
    path = _wait_for_snapshot(pid, signal_number, last, before, timeout)
    click.echo(path)
    if show_report:
        from lockwatch import _text

        click.echo(_text.format_report(_load(path)), nl=False)


def _check_not_reused(pid: int, registration: str, contents: dict[str, Any]) -> None:
    """Refuse to signal a process that only reuses the pid of a registered one that died.

    SIGUSR1 ends a process that does not handle it: the start time in the
    registration must be the start time of the process that has the pid now.
    """
    from lockwatch import _signals

    registered = contents.get("start_ticks")
    current = _signals.process_start_ticks(pid)
    if isinstance(registered, int) and current is not None and registered != current:
        raise CliError(
            f"process {pid} is not the one that registered with lockwatch (that process ended and its "
            f"pid was reused; stale file {registration}); not signalling it",
            EXIT_PROCESS,
        )


def _registry_read(read: Any, path: str) -> Any:
    """Read a file of the registry directory; an unsafe directory or planted file is a one-line error."""
    from lockwatch import _signals

    try:
        return read(path)
    except _signals.RegistryError as exc:
        raise CliError(str(exc), EXIT_PROCESS) from None


def _file_state(path: str) -> bytes | None:
    """The .last file's contents (they change with every snapshot: they hold its path and time)."""
    from lockwatch import _signals

    return _registry_read(_signals.read_file, path)


# Ask again this often while no snapshot came: a request is idempotent, and a
# signal can go unanswered (standard signals coalesce; one handled by a thread
# other than the main one waits until the main thread runs Python again).
_DUMP_RESEND = 3.0


def _wait_for_snapshot(
    pid: int, signal_number: int, last: str, before: bytes | None, timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    resend_at = time.monotonic() + _DUMP_RESEND
    while True:
        state = _file_state(last)
        if state is not None and state != before:
            try:
                path = json.loads(state.decode("utf-8"))["path"]
            except (ValueError, KeyError, TypeError):
                path = None
            if isinstance(path, str) and os.path.exists(path):
                return path
        if time.monotonic() >= deadline:
            break
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise CliError(f"process {pid} ended before it wrote a snapshot", EXIT_PROCESS) from None
        except OSError:
            pass
        if time.monotonic() >= resend_at:
            resend_at = time.monotonic() + _DUMP_RESEND
            try:
                os.kill(pid, signal_number)
            except OSError:
                pass
        time.sleep(_DUMP_POLL)
    raise CliError(
        f"process {pid} did not write a snapshot within {timeout:g} s. Its main thread handles the "
        f"signal only when it runs Python code or waits on a lock; it may be stuck in C code that "
        f"never returns to Python (a blocking call in an extension). Try a longer --timeout",
        EXIT_PROCESS,
    )


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script ``lockwatch`` (and ``python -m lockwatch``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="lockwatch")
    sys.exit(EXIT_OK)  # cli.main always exits; this keeps type checkers honest
