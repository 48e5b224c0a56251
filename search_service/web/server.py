"""Running the app under waitress: one process, or several sharing one listening socket.

Searching is CPU-bound Python, and one Python process uses one core at a
time, so ``workers`` processes (forked after the socket is bound, each with
its own app and searchers) are how the service uses every core; the kernel
hands each new connection to one of them.  The parent only supervises: it
restarts a worker that dies and stops them all on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time

from ..config import Config
from ..processes import exit_with_parent
from . import create_app

log = logging.getLogger("search_service.web")

#: Threads per worker process: enough to overlap I/O and slow clients; more only queue.
DEFAULT_THREADS = 4


def _run_worker(config: Config, sock: socket.socket, threads: int) -> None:
    """Serve ``sock`` forever in this process.

    The channel timeout drops idle or stalled clients; waitress's per-request
    "task queue depth" warnings under load are silenced (the access log shows
    load).  Waitress answers an oversized body itself, in plain text, so its
    limit is four times the app's: a body a little too large gets the API's
    JSON 413, and only a grossly oversized one is cut off by waitress.
    """
    from waitress import create_server

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # Hand the GIL over every 1 ms, not 5: waitress's I/O thread then isn't
    # kept waiting behind a searching thread (bench: p50 at ~300 req/s
    # 20 ms -> 11 ms, same throughput).
    sys.setswitchinterval(0.001)
    server = create_server(
        create_app(config),
        sockets=[sock],
        threads=threads,
        channel_timeout=30,
        connection_limit=200,
        max_request_body_size=4 * config.max_request_bytes,
        ident="search_service",
        clear_untrusted_proxy_headers=True,
    )
    server.run()


def _fork(config: Config, sock: socket.socket, threads: int) -> int:
    pid = os.fork()
    if pid == 0:  # the worker
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            exit_with_parent()
            _run_worker(config, sock, threads)
        except BaseException:
            log.exception("server worker failed")
            code = 1
        finally:
            os._exit(code)
    return pid


def serve(config: Config, host: str = "127.0.0.1", port: int = 8080, threads: int = DEFAULT_THREADS, workers: int = 1) -> None:
    """Serve ``config``'s index on ``host:port`` (0 picks a free port) and print the URL."""
    sock = socket.create_server((host, port), backlog=1024)
    bound_host, bound_port = sock.getsockname()[:2]
    plural = "s" if workers > 1 else ""
    print(
        f"search_service: serving {config.index_dir} on http://{bound_host}:{bound_port}/ ({workers} worker{plural})",
        flush=True,
    )
    if workers == 1:
        _run_worker(config, sock, threads)
        return
    _supervise(config, sock, threads, workers)


def _supervise(config: Config, sock: socket.socket, threads: int, workers: int) -> None:
    children = {_fork(config, sock, threads) for _ in range(workers)}
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        if not stopping:
            log.warning("server worker %d exited (status %d); starting another", pid, status)
            time.sleep(1.0)  # a worker that dies at once must not spin
            children.add(_fork(config, sock, threads))
    sys.exit(0)
