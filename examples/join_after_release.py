"""The cure for join_holding_lock.py: stop() joins the refresh thread after releasing the lock.

The same live display, refresh thread and unlucky moment (a last frame on its
way to be drawn just as the display stops). ``stop()`` takes the lock only to
mark the display stopped and ask the refresh thread to end, then releases it
and joins: the refresh thread gets the lock, skips the frame (the display is
stopped), sees the stop request and ends.

Expect:
    python examples/join_after_release.py
        prints "display stopped cleanly after 0 frames" and exits 0.
    lockwatch run examples/join_after_release.py
        the same, and no report.
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
            with self.live._lock:
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
        self._refresh_thread.join()  # the lock is free: the refresh thread can finish and end


def main() -> None:
    live = Live()
    live.start()
    live.update("downloading ... 100%")
    print("stopping the display ...", flush=True)
    live.stop()
    print(f"display stopped cleanly after {len(live.drawn)} frames")


if __name__ == "__main__":
    main()
