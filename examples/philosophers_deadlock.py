"""Dining philosophers, everyone takes the left fork first: a five-thread deadlock.

Five philosophers sit at a round table with one fork between neighbours. Each
picks up the fork on the left, then the fork on the right. If all five pick up
their left fork at the same moment, every right fork is already in a
neighbour's hand: a cycle of five threads, each waiting for the next.

Expect:
    python examples/philosophers_deadlock.py
        hangs forever after "everyone holds a left fork ..." (Ctrl-C twice to get out).
    lockwatch run examples/philosophers_deadlock.py
        a deadlock report within about a second naming all five philosophers in
        one cycle (philosopher-0 waits for a fork held by philosopher-1, ... which
        waits for a fork held by philosopher-0), each stack pointing at the
        ``with right:`` line, plus a dump in ./lockwatch-dumps. With
        ``lockwatch run --on-deadlock exit ...`` the process ends with status 86.

Two cures: philosophers_butler.py and philosophers_asymmetric.py.
"""

from __future__ import annotations

import threading

SEATS = 5

# Everyone meets here holding a left fork: it makes the unlucky moment happen on
# every run instead of once in a while.
all_hold_left_fork = threading.Barrier(SEATS)


def dine(seat: int, forks: list[threading.Lock]) -> None:
    left, right = forks[seat], forks[(seat + 1) % SEATS]
    with left:
        all_hold_left_fork.wait()
        with right:  # <- every philosopher blocks here, forever
            print(f"philosopher-{seat} eats")  # never reached


def main() -> None:
    forks = [threading.Lock() for _ in range(SEATS)]
    philosophers = [
        threading.Thread(target=dine, args=(seat, forks), name=f"philosopher-{seat}") for seat in range(SEATS)
    ]
    for p in philosophers:
        p.start()
    print("everyone holds a left fork ...", flush=True)
    for p in philosophers:
        p.join()


if __name__ == "__main__":
    main()
