"""Write reports as dump files (JSON, plus DOT and SVG beside it) and read dumps back."""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from typing import Any

from lockwatch import _render
from lockwatch._errors import DumpError, LockwatchError
from lockwatch._model import Report

#: Largest counter tried for one (kind, second, pid) before giving up on a unique name.
_MAX_COUNTER = 100_000

#: Seconds Graphviz may take to draw the svg beside a dump (it runs while a report is made).
SVG_TIMEOUT = 20.0


def dump_json(report: Report) -> str:
    """The report as dump format v1 text: pretty-printed, keys sorted, so stable across runs."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_report(report: Report, dump_dir: str | os.PathLike[str]) -> list[str]:
    """Write ``<kind>-<YYYYmmdd-HHMMSS>-<pid>-<n>.json`` (+ ``.dot``, + ``.svg`` with Graphviz).

    Returns the paths written, JSON first. Every file appears complete or not at all
    (written to a temporary file, then renamed). Raises ``OSError`` naming the directory
    or file when the JSON cannot be written; the ``.dot`` and ``.svg`` are best effort.
    """
    directory = os.fspath(dump_dir)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the dump directory {directory}: {exc.strerror}", directory) from None

    stem = f"{_safe_kind(report.kind)}-{_stamp(report.created)}-{report.pid}"
    json_path = _publish_unique(directory, stem, dump_json(report).encode("utf-8"))
    paths = [json_path]
    base = json_path[: -len(".json")]

    # The pictures are a convenience: a failure there must not lose the dump itself.
    try:
        source = _render.to_dot(report)
        _publish(base + ".dot", source.encode("utf-8"))
        paths.append(base + ".dot")
    except (OSError, LockwatchError, ImportError, ValueError):
        return paths
    if _render.has_dot():
        try:
            _publish(base + ".svg", _render.run_dot(source, "svg", timeout=SVG_TIMEOUT))
            paths.append(base + ".svg")
        except (OSError, LockwatchError):
            pass
    return paths


def load_dump(path: str | os.PathLike[str]) -> Report:
    """Read a dump file; raises :class:`DumpError` with one line saying what is wrong."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise DumpError(f"{name}: no such file")
    if os.path.isdir(name):
        raise DumpError(f"{name}: is a directory, not a dump file")
    try:
        with open(name, "rb") as file:
            raw = file.read()
    except OSError as exc:
        raise DumpError(f"{name}: cannot read it: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DumpError(f"{name}: not a lockwatch dump (not UTF-8 text: bad byte at offset {exc.start})") from None
    if not text.strip():
        raise DumpError(f"{name}: not a lockwatch dump (the file is empty)")
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DumpError(f"{name}: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise DumpError(f"{name}: not a lockwatch dump (JSON nested too deeply)") from None
    try:
        return Report.from_dict(data)
    except DumpError as exc:
        raise DumpError(f"{name}: {exc}") from None


def _safe_kind(kind: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in kind) or "report"


def _stamp(created: str) -> str:
    """The report's creation time in local time, as YYYYmmdd-HHMMSS (now if unparsable)."""
    try:
        moment = datetime.datetime.fromisoformat(created)
        if moment.tzinfo is not None:
            moment = moment.astimezone()
    except (TypeError, ValueError):
        moment = datetime.datetime.now()
    return moment.strftime("%Y%m%d-%H%M%S")


def _temporary(directory: str, data: bytes) -> str:
    """A complete, flushed temporary file in ``directory`` (same file system: rename is atomic)."""
    fd, temp = tempfile.mkstemp(prefix=".lockwatch-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            if hasattr(os, "fchmod"):
                os.fchmod(file.fileno(), 0o644)  # mkstemp's 0600 would surprise readers of dumps
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        _remove(temp)
        raise
    return temp


def _publish_unique(directory: str, stem: str, data: bytes) -> str:
    """Give ``data`` the first free name ``<stem>-<n>.json``, atomically and without overwriting.

    A hard link fails if the name exists, so two writers (threads or processes) in the
    same second never take the same name, and readers never see a partial file.
    """
    try:
        temp = _temporary(directory, data)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write a dump in {directory}: {exc.strerror}", directory) from None
    try:
        for counter in range(1, _MAX_COUNTER):
            final = os.path.join(directory, f"{stem}-{counter}.json")
            if os.path.lexists(final):
                continue
            try:
                os.link(temp, final)
            except FileExistsError:
                continue
            except OSError:
                # No hard links here (some file systems): reserve the name exclusively
                # with an empty file, then replace it with the complete one.
                try:
                    os.close(os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                except FileExistsError:
                    continue
                os.replace(temp, final)
            return final
        raise OSError(f"cannot find a free dump file name for {stem} in {directory}")
    except OSError as exc:
        if isinstance(exc.strerror, str) and exc.filename is not None:
            raise OSError(exc.errno, f"cannot write a dump in {directory}: {exc.strerror}", exc.filename) from None
        raise
    finally:
        _remove(temp)


def _publish(path: str, data: bytes) -> None:
    """Write ``path`` atomically (temporary file, then rename over it)."""
    temp = _temporary(os.path.dirname(path) or ".", data)
    try:
        os.replace(temp, path)
    except BaseException:
        _remove(temp)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def reap_drawings() -> None:
    """Collect finished picture-drawing processes (the watchdog calls this on every look)."""


def wait_drawings(timeout: float) -> None:
    """Wait at most ``timeout`` seconds for pictures still being drawn (before the process ends)."""


def drawings_done() -> bool:
    """Whether no picture is still being drawn."""
    return True
