"""The ``lockwatch`` command line: run a program under lockwatch, render and show dumps, snapshot a live process.

Exit statuses (also in ``lockwatch --help``):

====  ======================================================================
0     success (``run``: the program exited with status 0)
1     ``run``: the program failed (any other status of the program is passed through as is)
2     usage error: unknown option, bad option value, missing script or module
3     bad input file: missing, unreadable, not JSON, not a lockwatch dump or baseline, newer format
4     cannot write the output: unwritable path, or Graphviz missing or failing for an image
5     ``dump``: the process does not exist, is not ours, cannot be attached to (or is not running lockwatch
      with --no-attach), or did not answer
86    ``run --on-deadlock exit``: a deadlock was found, reported, and the process ended
130   ``run``: the program was interrupted (KeyboardInterrupt), as a shell reports for python
====  ======================================================================
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import click

import lockwatch
from lockwatch import _baseline, _config, _locks, _patch, _run
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
  {EXIT_PROCESS:<4} dump: no such process, not ours, cannot attach, no answer
  {EXIT_DEADLOCK:<4} run --on-deadlock exit: a deadlock was found and the process ended
  {EXIT_INTERRUPTED:<4} run: the program was interrupted (KeyboardInterrupt)
"""


class CliError(click.ClickException):
    """A failure the user can fix: said on one line, with a documented exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares a class default; each error has its own

    def show(self, file: Any = None) -> None:
        _error(self.format_message())


def _error(message: str) -> None:
    click.echo(f"lockwatch: error: {message}", err=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Group(click.Group):
    """The command group; it presents every error as one ``lockwatch: error:`` line."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name or "lockwatch", complete_var, standalone_mode=False, **extra)
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
@click.version_option(
    lockwatch.__version__, "--version", prog_name="lockwatch",
    message="%(prog)s %(version)s (core: " + _locks.core().replace("%", "%%") + ")",
)
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
      lockwatch show lockwatch-dumps/deadlock-*.json   # every deadlock dump, one after the other
      lockwatch show lockwatch-dumps/                  # the dumps there, grouped by process
      lockwatch render lockwatch-dumps/deadlock-20260101-120000-4242-1.json -o deadlock.png
      lockwatch dump 4242                    # snapshot of a live process: who holds, who waits
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
    watched, and so are joins, futures, asyncio tasks and import locks. When
    threads deadlock (a cycle of such waits, a lock whose owner thread is
    gone, or every thread asleep in waits nothing left can end), lockwatch
    prints a report on stderr and writes a JSON dump plus a Graphviz picture
    to the dump directory; with --on-deadlock exit the process then ends with
    status 86. Otherwise lockwatch stays silent.

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

#: Seconds ``render`` may spend building the picture of one dump: a huge (or crafted) dump
#: must not keep the command busy for minutes. Graphviz itself has its own limit.
RENDER_TIME_LIMIT = 20.0


def _load(path: str) -> lockwatch.Report:
    from lockwatch import _dump

    try:
        return _dump.load_dump(path)
    except DumpError as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from None


class _TooSlow(Exception):
    """Raised by the alarm when drawing a dump takes longer than RENDER_TIME_LIMIT."""


def _time_bounded(work: Any, what: str, report: lockwatch.Report) -> Any:
    """Run ``work()``; give up with a one-line error (status 3) after RENDER_TIME_LIMIT seconds.

    Uses SIGALRM, so only in the main thread of a platform that has it (the CLI's case).
    """
    import signal
    import threading

    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return work()

    def expire(_signum: int, _frame: Any) -> None:
        raise _TooSlow

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, RENDER_TIME_LIMIT)
    try:
        return work()
    except _TooSlow:
        raise CliError(
            f"{what}: drawing it took more than {RENDER_TIME_LIMIT:g} s ({len(report.threads)} threads, "
            f"{len(report.locks)} locks); it is too large to draw: read it with 'lockwatch show'",
            EXIT_BAD_INPUT,
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _newest(paths: Sequence[str], reports: Sequence[lockwatch.Report]) -> int:
    """The index of the newest dump: by the time it was written, then by file modification time."""
    import datetime

    def moment(index: int) -> tuple[float, float]:
        try:
            created = datetime.datetime.fromisoformat(reports[index].created).timestamp()
        except (TypeError, ValueError, OverflowError):
            created = float("-inf")
        try:
            modified = os.path.getmtime(paths[index])
        except OSError:
            modified = float("-inf")
        return created, modified

    return max(range(len(paths)), key=moment)


@cli.command()
@click.argument("dumps", metavar="DUMP.json...", nargs=-1, required=True)
@click.option("-o", "--output", metavar="OUT",
              help="Where to write the picture: a file, '-' for stdout, or a directory (one picture per dump). "
              "Default: next to each dump, with the format's suffix.")
@click.option("-f", "--format", "fmt", type=click.Choice(("svg", "png", "pdf", "dot")),
              help="Output format (default: from OUT's suffix, else svg). Only dot works without Graphviz.")
def render(dumps: tuple[str, ...], output: str | None, fmt: str | None) -> None:
    """Draw dumps as pictures of who holds and who waits.

    Threads are boxes, asyncio tasks boxes with cut corners, locks are
    ellipses, and other things waited for have shapes of their own (a join,
    a future, a pool, an import, an asyncio lock); "waits for" edges are
    dashed, "held by" edges solid, the deadlock (or lock-order) cycle is red,
    and threads outside it are grey. In an SVG, hover over a thread to see its
    stack. svg, png and pdf need Graphviz's `dot` program; dot (the Graphviz
    source) always works. Prints the paths written.

    Several dumps (a shell glob) are drawn each next to its dump, or each
    into the directory given with -o DIR; with -o FILE (or -o -) only the
    newest is drawn, and lockwatch says which.

    \b
    Examples:
      lockwatch render deadlock-20260101-120000-4242-1.json            # -> .svg beside it
      lockwatch render deadlock-20260101-120000-4242-1.json -o cycle.png
      lockwatch render lockwatch-dumps/snapshot-*.json -o hung.png     # the newest snapshot
      lockwatch render lockwatch-dumps/*.json -f png -o pictures/      # every dump, into pictures/
      lockwatch render deadlock-20260101-120000-4242-1.json -f dot -o - | less
    """
    from lockwatch import _render

    into_directory = output is not None and output != "-" and os.path.isdir(output)
    if fmt is None:
        if output is not None and output != "-" and not into_directory:
            suffix = os.path.splitext(output)[1].lower().lstrip(".")
            if suffix not in _render.FORMATS:
                raise click.UsageError(
                    f"cannot tell the format from the output name {output!r}: add -f svg, png, pdf or dot"
                )
            fmt = suffix
        else:
            fmt = "svg"
    reports = [_load(dump) for dump in dumps]
    if len(dumps) > 1 and output is not None and not into_directory:
        chosen = _newest(dumps, reports)
        click.echo(
            f"lockwatch: {len(dumps)} dumps given and one output: drawing the newest, {dumps[chosen]} "
            f"(-o DIR draws each one)",
            err=True,
        )
        dumps, reports = (dumps[chosen],), [reports[chosen]]
    for dump, report in zip(dumps, reports, strict=True):
        if output == "-":
            _time_bounded(lambda report=report: _render_to_stdout(report, fmt), dump, report)
            continue
        if output is None:
            target = os.path.splitext(dump)[0] + "." + fmt
        elif into_directory:
            target = os.path.join(output, os.path.splitext(os.path.basename(dump))[0] + "." + fmt)
        else:
            target = output
        if os.path.exists(target) and os.path.samefile(target, dump):
            raise CliError(f"refusing to overwrite the dump {dump} with the picture: choose another -o", EXIT_CANNOT_WRITE)
        try:
            written = _time_bounded(lambda report=report, target=target: _render.render(report, target, fmt), dump, report)
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
    stream = sys.stdout.buffer
    stream.write(data)
    stream.flush()


@cli.command(short_help="Print dumps as text reports, or list a directory's dumps.")
@click.argument("dumps", metavar="DUMP.json|DIR...", nargs=-1, required=True)
@click.pass_context
def show(ctx: click.Context, dumps: tuple[str, ...]) -> None:
    """Print a dump as the text report lockwatch prints when it finds something.

    The summary comes first (the deadlock cycle: which thread or task waits
    for which lock, join, future or task held by whom), then every involved thread's stack with the blocking
    line marked, the locks it holds and where they were taken, then the other
    threads. Works on any dump (deadlock, hang, lock-order, snapshot), on any
    machine. Several dumps are shown one after the other, each under a
    "==> FILE <==" line. A directory lists its dumps, grouped by process
    (with --children, each process writes its own).

    Text that came from the dump (names, code lines) is printed with control
    characters escaped: a dump cannot move your cursor or write your clipboard.

    \b
    Examples:
      lockwatch show lockwatch-dumps/deadlock-20260101-120000-4242-1.json
      lockwatch show lockwatch-dumps/deadlock-*.json | less
      lockwatch show lockwatch-dumps/                  # which process wrote what, and when
    """
    from lockwatch import _text

    failed = False
    for index, path in enumerate(dumps):
        if os.path.isdir(path):
            text = _text.format_listing(path, _read_directory(path))
        else:
            try:
                text = _text.format_report(_load(path))
            except CliError as exc:
                exc.show()
                failed = True
                continue
        if len(dumps) > 1:
            click.echo(("\n" if index else "") + f"==> {_text.printable(path)} <==")
        click.echo(text, nl=False)
    if failed:
        ctx.exit(EXIT_BAD_INPUT)


def _read_directory(directory: str) -> list[tuple[str, lockwatch.Report | str]]:
    """Every ``*.json`` file in ``directory`` with its report, or why it is not one."""
    from lockwatch import _dump

    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(".json"))
    except OSError as exc:
        raise CliError(f"{directory}: cannot list it: {exc.strerror or exc}", EXIT_BAD_INPUT) from None
    found: list[tuple[str, lockwatch.Report | str]] = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            found.append((path, _dump.load_dump(path)))
        except DumpError as exc:
            found.append((path, str(exc).replace(f"{path}: ", "", 1)))
    return found


# --- dump ----------------------------------------------------------------------------------------


@cli.command("dump", short_help="Snapshot a live Python process: who holds which lock, who waits, the cycle.")
@click.argument("pid", type=int)
@click.option("--dump-dir", metavar="DIR",
              help="Where an attach-mode snapshot is written (default ./lockwatch-dumps). A process running "
                   "under lockwatch writes its snapshot to its own dump directory.")
@click.option("--attach/--no-attach", "attach", default=None,
              help="--attach: attach with gdb even to a process running under lockwatch. --no-attach: only ask a "
                   "process running under lockwatch (by signal), never attach. Default: signal if it runs "
                   "lockwatch, else attach.")
@click.option("--timeout", metavar="S", type=float, default=DUMP_TIMEOUT, show_default=True,
              help="Seconds to wait for the snapshot (attach mode: for the GIL, once gdb has attached).")
@click.option("--show", "show_report", is_flag=True, help="Also print the snapshot as a text report.")
def dump_command(pid: int, dump_dir: str | None, attach: bool | None, timeout: float, show_report: bool) -> None:
    """Snapshot a live Python process, and print the dump's path.

    A process running under lockwatch (`lockwatch run`, lockwatch.patch())
    is asked with SIGUSR1: its watchdog writes an exact snapshot (every
    thread's stack, every held and awaited lock) to its dump directory while
    the process goes on -- or stays hung.

    Any other CPython 3.10-3.13 process is attached to with gdb (Linux,
    ptrace allowed, same user or root): a small routine injected into it reads
    every thread's stack and the locks its with/acquire lines name, then gdb
    detaches and the process continues exactly where it was. RLock owners are
    exact; a plain Lock's holder is inferred from the with blocks and acquire()
    calls still active in the threads' frames, and marked "inferred". The
    wait-for cycle, if any, is found as for instrumented processes. If C code
    holds the GIL and never lets go, the dump has stacks only (py-spy, when
    installed, else gdb's C stacks) and says so. docs/attach.md has the details
    and the risks.

    \b
    Examples:
      lockwatch dump 4242
      lockwatch dump 4242 --show                 # and print who holds and who waits
      lockwatch dump 4242 --attach --dump-dir /tmp/dumps
      lockwatch render "$(lockwatch dump 4242)"  # picture of the hung process
    """
    from lockwatch import _signals

    if not timeout > 0:
        raise click.BadParameter(f"must be a positive number of seconds, not {timeout}", param_hint="'--timeout'")
    if pid <= 0:
        raise click.BadParameter(f"must be a positive process id, not {pid}", param_hint="'PID'")
    directory = _setting("dump_dir", "--dump-dir", dump_dir)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise CliError(f"no process with pid {pid}", EXIT_PROCESS) from None
    except PermissionError:
        raise CliError(
            f"process {pid} belongs to another user: run `lockwatch dump` as that user", EXIT_PROCESS
        ) from None
    registration = _signals.registration_path(pid)
    registered = _registry_read(_signals.read_json, registration) if _signals.SNAPSHOT_SIGNAL is not None else None
    if attach or (attach is None and registered is None):
        path = _attach_dump(pid, directory, timeout)
    else:
        if registered is None:
            raise CliError(
                f"process {pid} is not running under lockwatch (no {registration}); drop --no-attach to attach "
                f"to it with gdb, or start it with `lockwatch run SCRIPT` (without --no-signal)",
                EXIT_PROCESS,
            )
        if directory is not None:
            click.echo(f"lockwatch: --dump-dir is ignored: process {pid} writes its snapshot to its own dump "
                       f"directory (use --attach to write one into {directory})", err=True)
        path = _signal_dump(pid, registration, registered, timeout)
    click.echo(path)
    if show_report:
        from lockwatch import _text

        click.echo(_text.format_report(_load(path)), nl=False)


def _attach_dump(pid: int, dump_dir: str | None, timeout: float) -> str:
    """Attach with gdb, build the snapshot, write it into the dump directory; returns the JSON path."""
    from lockwatch import _attach, _dump
    from lockwatch._errors import AttachError

    try:
        config = _config.resolve({"dump_dir": dump_dir}, explicit_source="command line")
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        report = _attach.snapshot(pid, timeout=timeout)
    except AttachError as exc:
        raise CliError(str(exc), EXIT_PROCESS) from None
    if report.source == "attach-stacks":
        _error_note(report.summary)
    try:
        paths = _dump.write_report(report, config.dump_dir)
    except OSError as exc:
        raise CliError(str(exc.strerror or exc), EXIT_CANNOT_WRITE) from None
    return paths[0]


def _error_note(message: str) -> None:
    click.echo(f"lockwatch: {message}", err=True)


def _signal_dump(pid: int, registration: str, registered: dict[str, Any], timeout: float) -> str:
    """Ask a process running under lockwatch for a snapshot (SIGUSR1); returns the JSON path it wrote."""
    from lockwatch import _signals

    signal_number = _signals.SNAPSHOT_SIGNAL
    assert signal_number is not None
    _check_not_reused(pid, registration, registered)
    last = _signals.last_snapshot_path(pid)
    before = _file_state(last)
    try:
        os.kill(pid, signal_number)
    except ProcessLookupError:
        raise CliError(f"process {pid} ended before it could be asked", EXIT_PROCESS) from None
    except PermissionError:
        raise CliError(f"process {pid} belongs to another user: run `lockwatch dump` as that user", EXIT_PROCESS) from None
    return _wait_for_snapshot(pid, signal_number, last, before, timeout)


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
