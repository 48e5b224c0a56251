"""``serve --workers N``: several waitress processes share one port, share the connections, and die with their parent."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from search_service.backends.whoosh.engine import REFRESH_SECONDS

from conftest import LiveServer

pytestmark = pytest.mark.slow  # real waitress workers


def serve_command(index: Path, *options: str) -> list[str]:
    """``search-service serve --index INDEX OPTIONS`` as a process's arguments."""
    return [sys.executable, "-m", "search_service", "serve", "--index", str(index), *options]


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except FileNotFoundError:  # a thread that has just ended
            continue
    return found


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def wait_until(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture()
def two_workers(sample_index: Path):
    server = LiveServer(sample_index, {}, "--workers", "2")
    yield server
    server.stop()


def test_two_workers_answer_on_one_port(two_workers: LiveServer) -> None:
    assert wait_until(lambda: len(children_of(two_workers.process.pid)) == 2)
    with requests.Session() as http:
        statuses = {
            http.get(f"{two_workers.url}/api/search", params={"q": "drought"}, timeout=10).status_code
            for _ in range(30)
        }
    fresh = [requests.get(f"{two_workers.url}/healthz", timeout=10).json()["stories"] for _ in range(10)]
    assert statuses == {200}
    assert set(fresh) == {8}


def connections_by_process(port: int, pids: list[int]) -> Counter[int]:
    """How many established connections to ``port`` each of ``pids`` holds (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # ESTABLISHED
                inodes.add(fields[9])
    held: Counter[int] = Counter()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held[pid] += 1
    return held


def test_keep_alive_connections_are_spread_over_the_workers(two_workers: LiveServer) -> None:
    """With one shared socket, the first worker to wake took a whole burst of connections."""
    assert wait_until(lambda: len(children_of(two_workers.process.pid)) == 2)
    host, port = two_workers.url.removeprefix("http://").split(":")
    clients = [http.client.HTTPConnection(host, int(port), timeout=10) for _ in range(24)]
    try:
        for client in clients:  # opened at once, as a load client does, and kept busy
            client.connect()
        for _ in range(5):
            for client in clients:
                client.request("GET", "/api/search?q=drought+OR+coffee&per_page=100")
            for client in clients:
                assert client.getresponse().read()
        held = connections_by_process(int(port), children_of(two_workers.process.pid))
    finally:
        for client in clients:
            client.close()
    assert sum(held.values()) == 24 and len(held) == 2 and min(held.values()) >= 3, held


def test_sigterm_stops_every_worker(two_workers: LiveServer) -> None:
    assert wait_until(lambda: len(children_of(two_workers.process.pid)) == 2)
    workers = children_of(two_workers.process.pid)
    two_workers.process.send_signal(signal.SIGTERM)
    assert two_workers.process.wait(timeout=10) == 0
    assert wait_until(lambda: not any(alive(pid) for pid in workers))


@pytest.mark.parametrize("delay", [0.0, 0.001, 0.01, 0.1])
def test_sigterm_while_workers_start_stops_cleanly(sample_index: Path, delay: float) -> None:
    """The stop handler is in place before the first worker is forked: no moment of startup dies of SIGTERM."""
    process = subprocess.Popen(
        serve_command(sample_index, "--port", "0", "--workers", "2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (workers := children_of(process.pid)) and time.monotonic() < deadline:
            pass  # no sleep: catch the workers while they start
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert wait_until(lambda: not any(alive(pid) for pid in workers))
    finally:
        process.kill()
        process.wait()


def test_workers_exit_when_the_parent_is_killed(two_workers: LiveServer) -> None:
    assert wait_until(lambda: len(children_of(two_workers.process.pid)) == 2)
    workers = children_of(two_workers.process.pid)
    os.kill(two_workers.process.pid, signal.SIGKILL)
    two_workers.process.wait(timeout=10)
    assert wait_until(lambda: not any(alive(pid) for pid in workers)), "orphaned server workers kept running"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{two_workers.url}/healthz", timeout=5)


def test_a_dead_worker_is_replaced(two_workers: LiveServer) -> None:
    assert wait_until(lambda: len(children_of(two_workers.process.pid)) == 2)
    victim = children_of(two_workers.process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_until(
        lambda: len(children_of(two_workers.process.pid)) == 2 and victim not in children_of(two_workers.process.pid)
    )
    assert requests.get(f"{two_workers.url}/healthz", timeout=10).status_code == 200
    assert "exited" in two_workers.logged()


def test_workers_share_one_rate_limit(sample_index: Path) -> None:
    """Each request on a new connection, so the kernel spreads them over both workers; the budget is still 10."""
    server = LiveServer(sample_index, {"SEARCH_SERVICE_RATE_LIMIT": "10/minute"}, "--workers", "2")
    try:
        assert wait_until(lambda: len(children_of(server.process.pid)) == 2)
        statuses = Counter()
        for _ in range(30):
            with requests.Session() as http:
                statuses[http.get(f"{server.url}/api/search", params={"q": "drought"}, timeout=10).status_code] += 1
    finally:
        server.stop()
    assert statuses == {200: 10, 429: 20}


def test_a_story_written_through_one_worker_is_found_by_all(sample_index: Path, tmp_path: Path) -> None:
    """Each worker has its own searchers; the others pick up the writer's commit within the refresh interval."""
    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    server = LiveServer(index, {"SEARCH_SERVICE_TOKEN": "t"}, "--workers", "2")
    try:
        assert wait_until(lambda: len(children_of(server.process.pid)) == 2)

        def totals() -> set[int]:
            found = set()
            for _ in range(24):  # a new connection each: both workers, all their threads, answer
                with requests.Session() as http:
                    found.add(http.get(f"{server.url}/api/search", params={"q": "quokkas"}, timeout=10).json()["total"])
            return found

        assert totals() == {0}  # every searcher is open before the write
        story = {"id": "gh-1", "headline": "Quokka census", "body": "Rangers counted quokkas on the island."}
        written = requests.post(
            f"{server.url}/api/stories", json=story, headers={"Authorization": "Bearer t"}, timeout=30
        )
        assert written.status_code == 201, written.text
        time.sleep(REFRESH_SECONDS + 0.5)
        after = totals()
    finally:
        server.stop()
    assert after == {1}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_refused_with_a_message(two_workers: LiveServer, sample_index: Path, workers: str) -> None:
    """Not shared: with SO_REUSEPORT a second server of the same user would take half the connections."""
    port = two_workers.url.rsplit(":", 1)[1]
    second = subprocess.run(
        serve_command(sample_index, "--port", port, "--workers", workers),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert f"Error: can't listen on 127.0.0.1:{port}: it is already in use" in second.stderr
    assert "Traceback" not in second.stderr
    assert second.stdout == ""
    assert requests.get(f"{two_workers.url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("host", "workers", "says"),
    [
        ("999.1.1.1", "1", "not an address or a known host name"),
        ("nosuchhost.invalid", "2", "not an address or a known host name"),
        ("203.0.113.5", "1", "this machine has no such address"),
    ],
)
def test_an_address_it_cannot_listen_on_is_a_message(sample_index: Path, host: str, workers: str, says: str) -> None:
    result = subprocess.run(
        serve_command(sample_index, "--host", host, "--port", "0", "--workers", workers),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"Error: can't listen on {host}:0: " in result.stderr and says in result.stderr
    assert "Traceback" not in result.stderr
