"""Child processes that must not outlive their parent (index workers, server workers)."""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(parent: int) -> None:
    """End this (forked) process within 0.1 s of the death of ``parent``, whatever it is doing.

    A thread, not a check in the main loop: a child blocked in I/O (a queue
    nobody reads, a socket nobody serves) must still go when the parent is
    killed with ``kill -9`` and can't tell it to.  ``parent`` is the pid the
    parent had before forking, not ``os.getppid()`` read here: a parent that
    died before this call would have left the child adopted, and watching
    its adopter forever.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.1)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
