"""The drawing process: ``python -m lockwatch._draw DUMP.json TIMEOUT {dot,svg}`` writes the dump's .dot (and .svg).

lockwatch starts it for every dump it writes, so that neither Graphviz nor the
``graphviz`` package ever runs inside the watched program (see _dump.write_report).
It can never deadlock with that program, and it ends by itself within TIMEOUT
seconds of drawing.
"""

from __future__ import annotations

import os
import sys
import time

from lockwatch import _dump, _render
from lockwatch._errors import LockwatchError

USAGE = "usage: python -m lockwatch._draw DUMP.json TIMEOUT {dot,svg}"


def main(argv: list[str]) -> int:
    """Draw; one line on stderr and status 1 when a picture could not be made (2: bad arguments)."""
    started = time.monotonic()
    try:
        json_path, timeout_text, fmt = argv
        timeout = float(timeout_text)
        if fmt not in ("dot", "svg") or not json_path.endswith(".json"):
            raise ValueError(fmt)
    except ValueError:
        _say(USAGE)
        return 2
    base = json_path[: -len(".json")]
    target = base + ".dot"
    try:
        report = _dump.load_dump(json_path)
        # The pictures are as private as the dump they belong to.
        mode = os.stat(json_path).st_mode & 0o777
        source = _render.to_dot(report)
        _dump.publish(target, source.encode("utf-8"), mode)
        if fmt == "svg":
            target = base + ".svg"
            remaining = max(1.0, timeout - (time.monotonic() - started))
            _dump.publish(target, _render.run_dot(source, "svg", timeout=remaining), mode)
    except (LockwatchError, OSError, ImportError, ValueError, RecursionError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        _say(f"could not draw {os.path.basename(target)}: {detail}")
        return 1
    return 0


def _say(message: str) -> None:
    sys.stderr.write(f"lockwatch: {message}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
