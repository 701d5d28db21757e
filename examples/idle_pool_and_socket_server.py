"""An idle service is not a stuck one: an idle pool, a server in accept(), daemon threads asleep in queue.get().

A small service starts a ThreadPoolExecutor (its workers idle after a warm-up
task), daemon threads that wait for jobs on queues nobody fills, and a server
thread accepting connections on 127.0.0.1. A client connects once and gets
an answer (the handshake), then nothing happens: the main thread waits for
the server to stop, and the server waits in ``accept()`` for a client that
does not come, until its accept timeout (IDLE_SECONDS) ends the service.

For those seconds nearly every thread is in an untimed wait -- but the server
thread waits on a socket, which the outside world can end at any moment: the
process is idle, not stuck. lockwatch must stay silent.

Expect:
    python examples/idle_pool_and_socket_server.py
        prints "handshake: pong", idles for about 3 seconds, then "server idle for 3 s; service stopped"
        and exits 0.
    lockwatch run examples/idle_pool_and_socket_server.py
        the same, and no report: no deadlock, no hang, no lock-order warning.
"""

from __future__ import annotations

import queue
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

IDLE_SECONDS = 3.0  # how long the server waits for a second client: several looks of the watchdog

server_ready = threading.Event()
server_stopped = threading.Event()
address: list[tuple[str, int]] = []


def serve(listener: socket.socket) -> None:
    """Answer clients until none comes for IDLE_SECONDS."""
    address.append(listener.getsockname())
    server_ready.set()
    try:
        while True:
            try:
                connection, _peer = listener.accept()  # the server waits here, on a socket
            except TimeoutError:
                return
            with connection:
                if connection.recv(16) == b"ping":
                    connection.sendall(b"pong")
    finally:
        listener.close()
        server_stopped.set()


def sleeper(jobs: queue.Queue[str]) -> None:
    while True:
        jobs.get()  # daemon threads asleep here, for the life of the process


def main() -> None:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="idle-pool")
    pool.submit(sum, range(10)).result()  # warm-up: the pool now has an idle worker
    for n in range(2):
        threading.Thread(target=sleeper, args=(queue.Queue(),), name=f"sleeper-{n}", daemon=True).start()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(IDLE_SECONDS)  # how the service ends by itself, once idle
    threading.Thread(target=serve, args=(listener,), name="server").start()
    server_ready.wait()

    with socket.create_connection(address[0], timeout=10) as client:
        client.sendall(b"ping")
        print(f"handshake: {client.recv(16).decode()}", flush=True)

    server_stopped.wait()  # the main thread waits here until the server gives up
    pool.shutdown()
    print(f"server idle for {IDLE_SECONDS:.0f} s; service stopped")


if __name__ == "__main__":
    main()
