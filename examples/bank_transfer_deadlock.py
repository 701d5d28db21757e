"""Bank transfers that lock the source account first: a classic AB-BA deadlock.

Two tellers move money between the same two accounts in opposite directions at
the same moment. Each ``transfer`` locks the account it takes money from, then
the account it pays into. Teller 1 holds Alice's lock and wants Bob's; teller 2
holds Bob's lock and wants Alice's. Neither lets go.

Each account guards its balance with an ``RLock``, so ``transfer`` can call
``withdraw``/``deposit`` (which lock again) while already holding the account.

Expect:
    python examples/bank_transfer_deadlock.py
        hangs forever after "both tellers are mid-transfer ..." (Ctrl-C twice to get out).
    lockwatch run examples/bank_transfer_deadlock.py
        a deadlock report within about a second: teller-2 waits for lock
        "Account.lock" held by teller-1, which waits for (the other) "Account.lock"
        held by teller-2, with both stacks pointing at the ``with dst.lock:`` line, plus a dump
        (JSON + Graphviz) in ./lockwatch-dumps. The process stays hung for
        inspection; ``lockwatch run --on-deadlock exit examples/bank_transfer_deadlock.py``
        ends it with status 86 instead.

The cure is in bank_transfer_ordered.py.
"""

from __future__ import annotations

import threading


class Account:
    """A bank account whose balance is guarded by its own reentrant lock."""

    def __init__(self, number: int, owner: str, balance: int) -> None:
        self.number = number
        self.owner = owner
        self.balance = balance
        self.lock = threading.RLock()

    def withdraw(self, amount: int) -> None:
        with self.lock:
            if amount > self.balance:
                raise ValueError(f"{self.owner} cannot pay {amount}")
            self.balance -= amount

    def deposit(self, amount: int) -> None:
        with self.lock:
            self.balance += amount


# Both tellers meet here while each holds its first account: it stands in for
# the unlucky timing that makes this bug rare in production, and makes the
# deadlock happen on every run instead of once in a blue moon.
both_mid_transfer = threading.Barrier(2)


def transfer(src: Account, dst: Account, amount: int) -> None:
    """Move ``amount`` from ``src`` to ``dst`` -- locking the source first (the bug)."""
    with src.lock:
        src.withdraw(amount)  # the RLock is taken a second time here
        both_mid_transfer.wait()
        with dst.lock:  # <- each teller blocks here, forever
            dst.deposit(amount)


def main() -> None:
    alice = Account(1, "alice", 100)
    bob = Account(2, "bob", 100)
    tellers = [
        threading.Thread(target=transfer, args=(alice, bob, 30), name="teller-1"),
        threading.Thread(target=transfer, args=(bob, alice, 20), name="teller-2"),
    ]
    for teller in tellers:
        teller.start()
    print("both tellers are mid-transfer ...", flush=True)
    for teller in tellers:
        teller.join()
    print(f"alice={alice.balance} bob={bob.balance}")  # never reached


if __name__ == "__main__":
    main()
