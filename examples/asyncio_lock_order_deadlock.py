"""Two asyncio tasks take two asyncio.Locks in opposite orders: the AB-BA deadlock, with coroutines.

An inventory service keeps a lock per table. ``restock`` locks ``stock`` and
then ``orders``; ``cancel_order`` locks ``orders`` and then ``stock``. Both
run as tasks of one event loop. Each takes its first lock, lets the other
task run (an ``await`` between the two locks, here forced with two
``asyncio.Event``s so that it happens on every run), then waits for its second
lock, which the other task holds. Neither task can go on, and the loop has
nothing else to run: it sits idle in its selector forever. No thread is
blocked, so a thread-only deadlock detector sees nothing.

Expect:
    python examples/asyncio_lock_order_deadlock.py
        hangs forever after "both tasks hold their first lock ..." (Ctrl-C to get out).
    lockwatch run examples/asyncio_lock_order_deadlock.py
        a deadlock report within about a second: task "cancel-order" waits for
        the asyncio.Lock made at the ``stock = asyncio.Lock()`` line, held by task "restock",
        which waits for the ``orders`` asyncio.Lock held by task "cancel-order", with both
        coroutine stacks ending at the inner ``async with`` line. The process
        stays hung for inspection; ``lockwatch run --on-deadlock exit
        examples/asyncio_lock_order_deadlock.py`` ends it with status 86 instead.

The cure is in asyncio_lock_order_fixed.py.
"""

from __future__ import annotations

import asyncio


class Inventory:
    """Two tables, each guarded by its own asyncio.Lock."""

    def __init__(self) -> None:
        self.stock = asyncio.Lock()
        self.orders = asyncio.Lock()
        self.items = {"widget": 3}
        self.open_orders = {"A-17": ("widget", 2)}
        # Both tasks meet here while each holds its first lock: this stands in for
        # whatever await (a database call, a log write) lets the other task run.
        self.restock_holds_stock = asyncio.Event()
        self.cancel_holds_orders = asyncio.Event()

    async def restock(self, item: str, count: int) -> None:
        async with self.stock:
            self.restock_holds_stock.set()
            await self.cancel_holds_orders.wait()
            async with self.orders:  # deadlocks here: cancel_order holds orders
                self.items[item] += count

    async def cancel_order(self, order: str) -> None:
        async with self.orders:
            self.cancel_holds_orders.set()
            await self.restock_holds_stock.wait()
            print("both tasks hold their first lock; each now waits for the other's ...", flush=True)
            async with self.stock:  # deadlocks here: restock holds stock
                item, count = self.open_orders.pop(order)
                self.items[item] += count


async def main() -> None:
    inventory = Inventory()
    await asyncio.gather(
        asyncio.create_task(inventory.restock("widget", 5), name="restock"),
        asyncio.create_task(inventory.cancel_order("A-17"), name="cancel-order"),
    )
    print("done:", inventory.items)  # never reached


if __name__ == "__main__":
    asyncio.run(main())
