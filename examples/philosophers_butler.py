"""Dining philosophers with a butler: a semaphore seats at most four of five, so no deadlock.

The first cure for philosophers_deadlock.py. Philosophers still take the left
fork first, but a butler (a ``threading.Semaphore(SEATS - 1)``) lets at most
four of them sit down at once. Four philosophers hold at most four of the five
forks, so one of them always finds its right fork free, eats, and frees two
forks for the others.

The first meal replays the moment that deadlocks the naive version: every
seated philosopher holds a left fork before anyone reaches for a right one.
Then everybody eats a bounded number of meals, as fast as they can.

Expect:
    python examples/philosophers_butler.py            finishes in well under a second.
    lockwatch run examples/philosophers_butler.py     the same output and no deadlock report.
        Lock-order checking does warn (LockOrderWarning and a lock-order dump):
        the forks are still taken in a circle (fork 0 -> 1 -> ... -> 4 -> 0), and
        only the butler's count keeps that circle from closing -- something no
        lock-order checker can see. The warning is worth heeding: without the
        butler this is the naive, deadlocking program again. The
        asymmetric cure (philosophers_asymmetric.py) fixes the order itself and
        passes lock-order checking too.
"""

from __future__ import annotations

import itertools
import threading

SEATS = 5
MEALS = 200


def main() -> None:
    forks = [threading.Lock() for _ in range(SEATS)]
    butler = threading.Semaphore(SEATS - 1)
    # The seated philosophers meet here on their first meal, each holding a left fork.
    first_meal_worst_case = threading.Barrier(SEATS - 1)
    first_seated = itertools.count()  # next() on it is atomic in CPython
    meals = [0] * SEATS

    def dine(seat: int) -> None:
        left, right = forks[seat], forks[(seat + 1) % SEATS]
        for meal in range(MEALS):
            with butler:
                # The first SEATS - 1 philosophers seated are exactly the ones the
                # butler lets in before anyone has eaten; only they replay the worst case.
                worst_case = meal == 0 and next(first_seated) < SEATS - 1
                with left:
                    if worst_case:
                        first_meal_worst_case.wait()
                    with right:
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
