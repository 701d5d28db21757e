"""Dining philosophers where the last one picks up the right fork first: no deadlock.

The second cure for philosophers_deadlock.py, and the one that fixes the cause:
philosophers 0-3 take their left fork first, philosopher 4 takes the right
fork (fork 0) first. Forks are then always taken in increasing number
order, so the waits can never form a circle -- whatever the timing, no
semaphore needed.

All five start at the same moment and eat a bounded number of meals, as fast
as they can.

Expect:
    python examples/philosophers_asymmetric.py            finishes in well under a second.
    lockwatch run examples/philosophers_asymmetric.py     the same output; no deadlock
        and no lock-order warning (the forks are taken in one global order).
"""

from __future__ import annotations

import threading

SEATS = 5
MEALS = 200


def main() -> None:
    forks = [threading.Lock() for _ in range(SEATS)]
    start_together = threading.Barrier(SEATS)
    meals = [0] * SEATS

    def dine(seat: int) -> None:
        left, right = forks[seat], forks[(seat + 1) % SEATS]
        # The last philosopher is left-handed: forks are always taken lowest number first.
        first, second = (right, left) if seat == SEATS - 1 else (left, right)
        start_together.wait()
        for _ in range(MEALS):
            with first:
                with second:
                    meals[seat] += 1

    philosophers = [threading.Thread(target=dine, args=(seat,), name=f"philosopher-{seat}") for seat in range(SEATS)]
    for p in philosophers:
        p.start()
    for p in philosophers:
        p.join()
    print("meals eaten:", meals)
    if meals != [MEALS] * SEATS:
        raise SystemExit("someone went hungry")
    print("everyone ate; no deadlock")


if __name__ == "__main__":
    main()
