"""Request context carried into worker threads with contextvars and thread-locals.

A small web-style request handler: the request id lives in a
``contextvars.ContextVar`` (so log lines can carry it), each worker thread
keeps its own "database connection" in a ``threading.local``, and the handler
fans work out to a ``ThreadPoolExecutor``. Worker threads do not inherit the
caller's context, so each submission runs inside
``contextvars.copy_context().run`` -- the pattern asyncio's
``to_thread`` uses.

The program checks that every log line and every result carries the request
id it belongs to, and that no connection is shared between threads.

Expect:
    python examples/request_context.py            finishes in well under a second.
    lockwatch run examples/request_context.py     the same output; no deadlock and no
        lock-order warning (the executor's and logging's own locks are watched too).
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_connection = threading.local()
_connection_ids = itertools.count(1)  # next() on it is atomic in CPython
log = logging.getLogger("request_context")


class RequestIdFilter(logging.Filter):
    """Stamp every log record with the request id of the context it was logged in."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class Capture(logging.Handler):
    """Keep formatted records so the program can check them (logging.Handler has its own lock)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def connection() -> tuple[int, int]:
    """This thread's own "database connection": created once per thread, never shared."""
    if not hasattr(_connection, "conn"):
        _connection.conn = (threading.get_ident(), next(_connection_ids))
    return _connection.conn  # type: ignore[no-any-return]


def lookup(item: int) -> tuple[str, int, tuple[int, int]]:
    """Work done in a pool thread: sees the request id of the request that submitted it."""
    conn = connection()
    log.info("looking up item %d on connection %d", item, conn[1])
    return request_id.get(), item * 10, conn


def submit_in_context(pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """Submit ``fn`` so that it runs in a copy of the caller's context."""
    return pool.submit(contextvars.copy_context().run, fn, *args)


def handle_request(pool: ThreadPoolExecutor, rid: str, items: list[int]) -> list[tuple[str, int, tuple[int, int]]]:
    token = request_id.set(rid)
    try:
        log.info("request started with %d items", len(items))
        futures = [submit_in_context(pool, lookup, item) for item in items]
        results = [f.result(timeout=10) for f in futures]
        log.info("request finished")
        return results
    finally:
        request_id.reset(token)


def main() -> None:
    capture = Capture()
    capture.addFilter(RequestIdFilter())
    log.addHandler(capture)
    log.setLevel(logging.INFO)
    log.propagate = False

    requests = {f"req-{n}": list(range(n, n + 5)) for n in range(1, 21)}
    results: dict[str, list[tuple[str, int, tuple[int, int]]]] = {}
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="worker") as pool:
        # Several request threads at once, each with its own context, sharing one pool.
        def serve(rid: str) -> None:
            results[rid] = handle_request(pool, rid, requests[rid])

        start_together = threading.Barrier(4)

        def frontend(rids: list[str]) -> None:
            start_together.wait()
            for rid in rids:
                serve(rid)

        rids = list(requests)
        frontends = [threading.Thread(target=frontend, args=(rids[i::4],), name=f"frontend-{i}") for i in range(4)]
        for t in frontends:
            t.start()
        for t in frontends:
            t.join()

    problems = []
    owners: dict[tuple[int, int], set[int]] = {}
    for rid, rows in results.items():
        for seen_rid, _value, conn in rows:
            if seen_rid != rid:
                problems.append(f"{rid}: a worker saw request id {seen_rid}")
            owners.setdefault(conn, set()).add(conn[0])
    lines_per_request = {rid: 0 for rid in requests}
    for record in capture.records:
        if record.request_id not in lines_per_request:
            problems.append(f"log line without a request id: {record.getMessage()}")
        else:
            lines_per_request[record.request_id] += 1
    if len(results) != len(requests) or any(n != 7 for n in lines_per_request.values()):
        problems.append(f"missing results or log lines: {lines_per_request}")
    if any(len(threads) != 1 for threads in owners.values()):
        problems.append("a connection was shared between threads")
    if problems:
        raise SystemExit("\n".join(problems))
    print(f"{len(results)} requests, {len(capture.records)} log lines, {len(owners)} worker connections; "
          "every line and result carried its own request id")


if __name__ == "__main__":
    main()
