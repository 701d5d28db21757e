"""The cure for asyncio_lock_order_deadlock.py: every task takes the two asyncio.Locks in one order.

The same inventory service, but ``cancel_order`` now locks ``stock`` before
``orders``, as ``restock`` does. Both tasks still pause between their two locks
(``await asyncio.sleep(0)`` lets the other task run there), and many rounds of
both run at once: whichever task gets ``stock`` first finishes, then the other
goes on. No cycle can form.

Expect:
    python examples/asyncio_lock_order_fixed.py
        prints the final stock and exits 0.
    lockwatch run examples/asyncio_lock_order_fixed.py
        the same, with no deadlock report.
"""

from __future__ import annotations

import asyncio

ROUNDS = 50


class Inventory:
    """Two tables, each guarded by its own asyncio.Lock, always locked stock first."""

    def __init__(self) -> None:
        self.stock = asyncio.Lock()
        self.orders = asyncio.Lock()
        self.items = {"widget": 3}
        self.open_orders = {f"A-{n}": ("widget", 1) for n in range(ROUNDS)}

    async def restock(self, item: str, count: int) -> None:
        async with self.stock:
            await asyncio.sleep(0)  # the other task runs here, and waits for stock
            async with self.orders:
                self.items[item] += count

    async def cancel_order(self, order: str) -> None:
        async with self.stock:  # the same order as restock: stock, then orders
            await asyncio.sleep(0)
            async with self.orders:
                item, count = self.open_orders.pop(order)
                self.items[item] += count


async def main() -> None:
    inventory = Inventory()
    tasks = []
    for n in range(ROUNDS):
        tasks.append(asyncio.create_task(inventory.restock("widget", 1), name=f"restock-{n}"))
        tasks.append(asyncio.create_task(inventory.cancel_order(f"A-{n}"), name=f"cancel-order-{n}"))
    await asyncio.gather(*tasks)
    print("done:", inventory.items)


if __name__ == "__main__":
    asyncio.run(main())
