"""The rate-limit counters that server workers share: exact counts across processes and threads, windows, a full table."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from flask import Flask

from search_service.web.ratelimit import PROBE, SharedCounters, client_key


def test_counts_windows_and_clearing() -> None:
    counters = SharedCounters(slots=64)
    assert [counters.incr("a", 1.0) for _ in range(3)] == [1, 2, 3]
    assert counters.incr("b", 1.0, amount=5) == 5
    count, ends = counters.window("a")
    assert count == 3 and time.time() < ends <= time.time() + 1.0
    time.sleep(1.05)
    assert counters.window("a")[0] == 0
    assert counters.incr("a", 60) == 1  # a new window
    counters.clear("a")
    assert counters.window("a")[0] == 0 and counters.incr("b", 60) == 1
    counters.clear()
    assert counters.window("b")[0] == 0


def test_processes_forked_after_it_share_every_count() -> None:
    counters = SharedCounters()
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                threads = [
                    threading.Thread(target=lambda: [counters.incr("client", 60) for _ in range(250)]) for _ in range(2)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    assert counters.window("client")[0] == 4 * 2 * 250


def test_a_worker_killed_while_counting_does_not_stop_the_others() -> None:
    """The lock is a POSIX record lock: the kernel drops it with the process that held it."""
    counters = SharedCounters()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        with counters._locked():
            os.write(write_end, b"1")
            time.sleep(60)
        os._exit(0)
    assert os.read(read_end, 1) == b"1"
    done = threading.Event()
    threading.Thread(target=lambda: (counters.incr("x", 60), done.set()), daemon=True).start()
    assert not done.wait(0.3), "the lock was not held"
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert done.wait(5), "a killed holder left the counters locked"
    assert counters.window("x")[0] == 1


def test_a_full_table_gives_up_the_window_ending_soonest() -> None:
    counters = SharedCounters(slots=PROBE)
    for n in range(PROBE):
        counters.incr(f"client-{n}", 60 + n, amount=n + 1)
    assert counters.incr("newcomer", 60) == 1
    counts = [counters.window(f"client-{n}")[0] for n in range(PROBE)]
    assert counts[0] == 0  # its window ended soonest
    assert counts[1:] == list(range(2, PROBE + 1))
    assert counters.window("newcomer")[0] == 1


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb:cccc:dddd:eeee", "2001:db8:1:2::/64"),  # the same subscriber, another address
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4 on a dual-stack socket
        ("not-an-address", "not-an-address"),
    ],
)
def test_a_client_is_its_address_or_its_ipv6_64(address: str, key: str) -> None:
    app = Flask(__name__)
    with app.test_request_context(environ_base={"REMOTE_ADDR": address}):
        assert client_key() == key
