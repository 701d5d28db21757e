"""The cure for pool_nested_submit_deadlock.py: a pool with a worker to spare for nested submits.

Parent tasks that wait for sub-tasks in their own pool need more workers than
parents that can wait at once: here three reports are built at the same
time, each waiting for its sections, in a pool of four workers -- at most
three workers wait, the fourth runs the sections. (Two pools, one per level,
are the other cure.)

Expect:
    python examples/pool_sized_for_nesting.py
        prints three reports, then "3 reports built; no starvation", and exits 0.
    lockwatch run examples/pool_sized_for_nesting.py
        the same, and no report.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

REPORTS = 3
pool = ThreadPoolExecutor(max_workers=REPORTS + 1)  # one worker more than parents that can wait at once


def render_section(title: str) -> str:
    return f"== {title} =="


def build_report(name: str, titles: list[str]) -> str:
    sections = [pool.submit(render_section, f"{name}: {title}") for title in titles]
    return "\n".join(section.result() for section in sections)


def main() -> None:
    builds = [pool.submit(build_report, f"report {n}", ["sales", "costs"]) for n in range(REPORTS)]
    for build in builds:
        print(build.result())
    pool.shutdown()
    print(f"{REPORTS} reports built; no starvation")


if __name__ == "__main__":
    main()
