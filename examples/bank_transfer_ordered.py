"""Bank transfers that lock accounts in one global order (by account number): no deadlock.

The cure for bank_transfer_deadlock.py. Every transfer locks the account with
the lower number first, whichever way the money flows, so no two tellers can
ever each hold one lock the other wants.

It first replays the exact moment that deadlocks the naive version (two tellers
start opposite transfers between the same accounts together), then runs a
bounded burst of random transfers between several accounts from four threads
and checks that no money was created or lost.

Expect:
    python examples/bank_transfer_ordered.py            finishes in well under a second.
    lockwatch run examples/bank_transfer_ordered.py     the same output; no deadlock, and
        no lock-order warning (nesting many Account locks in one consistent order is fine).
"""

from __future__ import annotations

import random
import threading


class Account:
    """A bank account whose balance is guarded by its own reentrant lock."""

    def __init__(self, number: int, owner: str, balance: int) -> None:
        self.number = number
        self.owner = owner
        self.balance = balance
        self.lock = threading.RLock()

    def withdraw(self, amount: int) -> bool:
        with self.lock:
            if amount > self.balance:
                return False
            self.balance -= amount
            return True

    def deposit(self, amount: int) -> None:
        with self.lock:
            self.balance += amount


def transfer(src: Account, dst: Account, amount: int) -> bool:
    """Move ``amount`` from ``src`` to ``dst``, locking the lower account number first."""
    first, second = (src, dst) if src.number < dst.number else (dst, src)
    with first.lock:
        with second.lock:
            if not src.withdraw(amount):  # reentrant: src.lock is already held
                return False
            dst.deposit(amount)
            return True


def replay_the_naive_collision(alice: Account, bob: Account) -> None:
    """Start alice->bob and bob->alice together: the moment that hangs the naive version."""
    start_together = threading.Barrier(2)

    def teller(src: Account, dst: Account, amount: int) -> None:
        start_together.wait()
        transfer(src, dst, amount)

    tellers = [
        threading.Thread(target=teller, args=(alice, bob, 30), name="teller-1"),
        threading.Thread(target=teller, args=(bob, alice, 20), name="teller-2"),
    ]
    for t in tellers:
        t.start()
    for t in tellers:
        t.join()


def random_traffic(accounts: list[Account], threads: int = 4, transfers: int = 400) -> None:
    """A bounded burst of transfers in every direction from several threads at once."""
    start_together = threading.Barrier(threads)

    def teller(seed: int) -> None:
        rng = random.Random(seed)  # seeded: the same traffic on every run
        start_together.wait()
        for _ in range(transfers):
            src, dst = rng.sample(accounts, 2)
            transfer(src, dst, rng.randint(1, 20))

    workers = [threading.Thread(target=teller, args=(i,), name=f"teller-{i + 3}") for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()


def main() -> None:
    accounts = [Account(n, owner, 100) for n, owner in enumerate(["alice", "bob", "carol", "dave", "erin"], 1)]
    total_before = sum(a.balance for a in accounts)

    replay_the_naive_collision(accounts[0], accounts[1])
    print(f"collision replayed: alice={accounts[0].balance} bob={accounts[1].balance}")

    random_traffic(accounts)
    total_after = sum(a.balance for a in accounts)
    print("balances:", ", ".join(f"{a.owner}={a.balance}" for a in accounts))
    if total_after != total_before:
        raise SystemExit(f"money was created or lost: {total_before} -> {total_after}")
    print(f"total conserved ({total_after}); no deadlock")


if __name__ == "__main__":
    main()
