"""Joining a thread while holding a lock it needs: how rich's ``Live.stop()`` hung.

A live display redraws itself from a refresh thread; every redraw takes the
display's ``RLock``. ``stop()`` takes the same lock (to mark the display
stopped), tells the refresh thread to end, and joins it -- still holding the
lock. If the refresh thread has just picked up a last frame, it waits for the
lock to draw it, and never gets to see the stop request: the main thread waits
for the refresh thread to end, the refresh thread waits for the lock the main
thread holds. No two locks, no lock-order inversion: one lock and one join.

An Event stands in for the unlucky timing (a frame arriving just as the display
stops), so the hang happens on every run.

Expect:
    python examples/join_holding_lock.py
        hangs forever after "stopping the display ..." (Ctrl-C twice to get out).
    lockwatch run examples/join_holding_lock.py
        a deadlock report: thread "MainThread" waits for thread "refresh" to end
        (the ``self._refresh_thread.join()`` line in ``stop``), which waits for lock
        "Live._lock" held by "MainThread" (the ``with self.live._lock:`` line in ``run``).
        ``lockwatch run --on-deadlock exit examples/join_holding_lock.py`` ends it with status 86.

The cure, joining after the lock is released, is in join_after_release.py.
"""

from __future__ import annotations

import queue
import threading

# The unlucky moment: the refresh thread has taken the last frame just as stop() took the lock.
stop_holds_lock = threading.Event()


class RefreshThread(threading.Thread):
    """Draws each frame the display is given, under the display's lock."""

    def __init__(self, live: Live) -> None:
        super().__init__(name="refresh")
        self.live = live

    def run(self) -> None:
        while (frame := self.live.frames.get()) is not None:
            stop_holds_lock.wait()
            with self.live._lock:  # <- blocks here: stop() holds the lock
                self.live.draw(frame)


class Live:
    """A display refreshed by its own thread (the shape of rich.live.Live)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.frames: queue.Queue[str | None] = queue.Queue()
        self.drawn: list[str] = []
        self.stopped = False
        self._refresh_thread = RefreshThread(self)

    def start(self) -> None:
        self._refresh_thread.start()

    def update(self, frame: str) -> None:
        self.frames.put(frame)

    def draw(self, frame: str) -> None:
        if not self.stopped:
            self.drawn.append(frame)

    def stop(self) -> None:
        with self._lock:
            stop_holds_lock.set()
            self.stopped = True
            self.frames.put(None)
            self._refresh_thread.join()  # <- blocks here, holding the lock the refresh thread needs


def main() -> None:
    live = Live()
    live.start()
    live.update("downloading ... 100%")
    print("stopping the display ...", flush=True)
    live.stop()
    print(f"display stopped cleanly after {len(live.drawn)} frames")  # never reached


if __name__ == "__main__":
    main()
