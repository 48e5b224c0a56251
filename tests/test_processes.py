"""Worker processes end with their parent, even when it dies before they start watching it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from search_service.processes import exit_with_parent


def gone(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_a_child_whose_parent_died_before_it_watched_still_exits() -> None:
    read_end, write_end = os.pipe()
    parent = os.fork()
    if parent == 0:  # the parent of the worker: forks it and dies at once
        parent_pid = os.getpid()
        if os.fork() == 0:  # the worker
            try:
                while os.getppid() == parent_pid:  # until orphaned
                    time.sleep(0.01)
                os.write(write_end, str(os.getpid()).encode())
                try:
                    exit_with_parent(parent_pid)
                finally:
                    time.sleep(30)  # only the watcher can end it sooner
            finally:
                os._exit(0)
        os._exit(0)
    os.close(write_end)
    os.waitpid(parent, 0)
    worker = int(os.read(read_end, 32))
    os.close(read_end)
    deadline = time.monotonic() + 10
    while not gone(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(worker), "the orphaned worker kept running"
