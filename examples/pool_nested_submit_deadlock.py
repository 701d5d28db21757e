"""Pool starvation: a task in a one-worker ThreadPoolExecutor waits for a sub-task it submitted to the same pool.

A report is built in a thread pool; building it submits one sub-task per
section to the same pool and waits for their results. With one worker, the
worker runs ``build_report`` and waits for ``render_section`` -- which is
queued behind it, waiting for a free worker that will never come. The same
happens with N workers as soon as N parent tasks run at once. No lock is
involved: the pool's only worker waits for itself.

Expect:
    python examples/pool_nested_submit_deadlock.py
        hangs forever after "building the report ..." (Ctrl-C twice to get out).
    lockwatch run examples/pool_nested_submit_deadlock.py
        a deadlock report (pool starvation): the pool's worker thread
        "ThreadPoolExecutor-0_0" waits for the pending future of ``render_section``,
        which only a worker of that pool -- itself -- can run (the ``.result()`` line in
        ``build_report``); "MainThread" waits behind it for the future of ``build_report``.
        ``lockwatch run --on-deadlock exit examples/pool_nested_submit_deadlock.py`` ends it with status 86.

The cure, a pool sized for nested submits, is in pool_sized_for_nesting.py.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

pool = ThreadPoolExecutor(max_workers=1)


def render_section(title: str) -> str:
    return f"== {title} =="


def build_report(titles: list[str]) -> str:
    sections = [pool.submit(render_section, title) for title in titles]
    return "\n".join(section.result() for section in sections)  # <- blocks here: no worker left to run it


def main() -> None:
    print("building the report ...", flush=True)
    report = pool.submit(build_report, ["sales", "costs"]).result()
    print(report)  # never reached
    pool.shutdown()


if __name__ == "__main__":
    main()
