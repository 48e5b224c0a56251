"""Running the app under waitress: one process, or several on one port.

Searching is CPU-bound Python, and one Python process uses one core at a
time, so ``workers`` processes (each with its own app and searchers) are how
the service uses every core.  Each worker listens on its own ``SO_REUSEPORT``
socket, so the kernel spreads new connections evenly over them: with one
shared socket, whichever worker woke first accepted a whole burst of
keep-alive connections (16 of 16 in most bench runs) and the other idled.
The parent reserves the port, prints the URL once every worker listens, and
supervises: it restarts a worker that dies and stops them all on SIGTERM or
Ctrl-C.  The workers share one set of rate-limit counters (:mod:`.ratelimit`).

This master is kept because no maintained library pre-forks waitress:
gunicorn and uWSGI bring their own HTTP servers (waitress is the design's),
and circus or supervisor run workers as separate programs, with a daemon of
their own, and cannot hand each one a ``SO_REUSEPORT`` socket reserved by a
parent.  Each behaviour is under test in ``tests/test_server.py``: restart a
dead worker, stop all on SIGTERM (also while they start), refuse a taken
port, workers exit when the parent is killed.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import time

from ..config import DEFAULT_THREADS, Config
from ..processes import exit_with_parent
from . import create_app
from .ratelimit import SharedCounters

log = logging.getLogger("search_service.web")

BACKLOG = 1024


def _run_worker(config: Config, sock: socket.socket, threads: int, rate_counters: SharedCounters | None = None) -> None:
    """Serve ``sock`` forever in this process.

    The channel timeout drops idle or stalled clients; waitress's per-request
    "task queue depth" warnings under load are silenced (the access log shows
    load).  Waitress answers an oversized body itself, in plain text, so its
    limit is four times the app's: a body a little too large gets the API's
    JSON 413, and only a grossly oversized one is cut off by waitress.
    Behind a reverse proxy every request comes from the proxy's address, so
    all clients would share one rate limit: ``config.trusted_proxy`` makes
    waitress take the client from that proxy's ``X-Forwarded-*`` headers
    (anyone else's are dropped, so a client can't pick its own address).
    """
    from waitress import create_server

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # Hand the GIL over every 1 ms, not 5: waitress's I/O thread then isn't
    # kept waiting behind a searching thread (bench: p50 at ~300 req/s
    # 20 ms -> 11 ms, same throughput).
    sys.setswitchinterval(0.001)
    server = create_server(
        create_app(config, rate_counters=rate_counters),
        sockets=[sock],
        threads=threads,
        channel_timeout=30,
        connection_limit=200,
        max_request_body_size=4 * config.max_request_bytes,
        ident="search_service",
        clear_untrusted_proxy_headers=True,
        **_proxy_settings(config.trusted_proxy),
    )
    server.run()


def _proxy_settings(proxy: str | None) -> dict[str, object]:
    if not proxy:
        return {}
    headers = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port"}
    return {"trusted_proxy": proxy, "trusted_proxy_count": 1, "trusted_proxy_headers": headers}


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _worker(pool: _Workers, parent: int, ready: int | None, mask: set[int]) -> None:
    """The body of a worker forked by ``parent``: listen, write a byte to ``ready``, serve; never returns."""
    code = 0
    try:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        exit_with_parent(parent)
        sock = _bind(*pool.address)
        sock.listen(BACKLOG)
        if ready is not None:
            os.write(ready, b"1")
            os.close(ready)
        _run_worker(pool.config, sock, pool.threads, pool.rate_counters)
    except BaseException:
        log.exception("server worker failed")
        code = 1
    finally:
        os._exit(code)


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` that other sockets of this user may share (``SO_REUSEPORT``)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def serve(
    config: Config, host: str = "127.0.0.1", port: int = 8080, threads: int = DEFAULT_THREADS, workers: int = 1
) -> None:
    """Serve ``config``'s index on ``host:port`` (0 picks a free port) and print the URL once it answers.

    Raises :class:`ServeError` when it can't start.
    """
    if workers == 1:
        sock = _listen_alone(host, port)
        _announce(config, sock, workers)
        _run_worker(config, sock, threads)
        return
    # First alone: with SO_REUSEPORT the workers would share the port with
    # another server of this user's, each getting some of the connections.
    _listen_alone(host, port).close()
    reserved = _bind(host, port)  # bound, never listening: it holds the port and gets no connections
    pool = _Workers(config, reserved.getsockname()[:2], threads)
    if not pool.start_all(workers) and not pool.stopping:
        raise ServeError("a server worker failed to start; see the messages above")
    if not pool.stopping:
        _announce(config, reserved, workers)
    pool.supervise()


class ServeError(Exception):
    """The server can't start; the message says why and what to do."""


def _listen_alone(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` that shares it with nobody."""
    try:
        return socket.create_server((host, port), backlog=BACKLOG)
    except OSError as exc:
        raise ServeError(f"can't listen on {host}:{port}: {_why(exc)}") from None


def _why(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror) or (exc.errno or 0) < 0:  # the resolver's codes are negative
        return "that is not an address or a known host name; use 127.0.0.1, or 0.0.0.0 for every address"
    hints = {
        errno.EADDRINUSE: "it is already in use; stop what is serving there, or choose another --port",
        errno.EACCES: "permission denied (ports below 1024 need root); choose another --port",
        errno.EADDRNOTAVAIL: "this machine has no such address; use 127.0.0.1, or 0.0.0.0 for every address",
    }
    return hints.get(exc.errno or 0, exc.strerror or str(exc))


def _announce(config: Config, sock: socket.socket, workers: int) -> None:
    bound_host, bound_port = sock.getsockname()[:2]
    plural = "s" if workers > 1 else ""
    print(
        f"search_service: serving {config.index_dir} on http://{bound_host}:{bound_port}/ ({workers} worker{plural})",
        flush=True,
    )


class _Workers:
    """The worker processes: started, replaced when they die, stopped on SIGTERM or Ctrl-C.

    The stop handler is installed before the first fork, so a signal at any
    moment after ``serve`` starts (even while workers are still starting)
    stops every worker and exits cleanly.
    """

    def __init__(self, config: Config, address: tuple[str, int], threads: int) -> None:
        self.config, self.address, self.threads = config, address, threads
        self.rate_counters = SharedCounters()  # made before the forks, so every worker counts in it
        self.pids: set[int] = set()
        self.stopping = False
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._stop)

    def start(self, ready: int | None = None) -> None:
        """Fork a worker, unless stopping.  Stop signals wait until its pid is recorded, so the handler never misses it."""
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            if self.stopping:
                return
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:
                _worker(self, parent, ready, mask)
            self.pids.add(pid)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def start_all(self, count: int) -> bool:
        """Start ``count`` workers and wait until each listens; False if one died first."""
        read_end, write_end = os.pipe()
        for _ in range(count):
            self.start(write_end)
        os.close(write_end)
        started = 0
        while started < count:  # a byte per listening worker; end of file once all have written or died
            got = os.read(read_end, count)
            if not got:
                break
            started += len(got)
        os.close(read_end)
        return started == count

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        for pid in list(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def supervise(self) -> None:
        """Replace each worker that dies until a stop signal; then exit 0 once all have gone."""
        while self.pids:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            self.pids.discard(pid)
            if not self.stopping:
                log.warning("server worker %d exited (status %d); starting another", pid, status)
                time.sleep(1.0)  # a worker that dies at once must not spin
                self.start()
        sys.exit(0)
