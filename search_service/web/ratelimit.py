"""Rate-limit counters shared by every server worker process.

Flask-Limiter's ``memory://`` store lives in one process, so with
``serve --workers N`` each worker counted on its own and a client whose
connections the kernel spread over the workers got N times its budget.
:class:`SharedCounters` keeps fixed-window counters in a shared memory map
(of an unlinked temporary file, which also carries the lock) created before
the workers are forked; every worker sees the same counts, and no external
store (Redis, memcached) is needed.

The table has a fixed number of slots: a key lives in one of ``PROBE`` slots
after its hash.  A slot whose window has ended is free.  When all of a key's
slots hold live windows of other clients (more than ``SLOTS`` clients within a
window), the one ending soonest is given up: that client's count restarts,
which errs towards serving rather than refusing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import mmap
import os
import struct
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator

from flask import request
from limits.storage import Storage

SLOTS = 1 << 16
PROBE = 16
_SLOT = struct.Struct("<QdQ")  # key hash (0: never used), end of window (epoch s), count


class SharedCounters:
    """Fixed-window counters in memory shared with processes forked after it is made."""

    def __init__(self, slots: int = SLOTS) -> None:
        self.slots = slots
        self._fd, path = tempfile.mkstemp(prefix="search-service-rates-")
        os.unlink(path)  # only the workers' descriptors keep it
        weakref.finalize(self, os.close, self._fd)
        os.ftruncate(self._fd, slots * _SLOT.size)
        self._memory = mmap.mmap(self._fd, slots * _SLOT.size)  # MAP_SHARED: forks share it
        self._threads = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Held by one thread of one process.  A POSIX record lock, not a semaphore:
        the kernel releases it when a worker is killed while holding it."""
        with self._threads:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s count, starting a window of ``expiry`` s if none is live; the new count."""
        wanted = _hash(key)
        with self._locked():
            now = time.time()
            offset, live = self._find(wanted, now)
            _, ends, count = _SLOT.unpack_from(self._memory, offset)
            if live:
                count += amount
            else:
                ends, count = now + expiry, amount
            _SLOT.pack_into(self._memory, offset, wanted, ends, count)
            return count

    def window(self, key: str) -> tuple[int, float]:
        """``key``'s count and the end of its window; (0, now) when it has no live window."""
        with self._locked():
            now = time.time()
            offset, live = self._find(_hash(key), now)
            if not live:
                return 0, now
            _, ends, count = _SLOT.unpack_from(self._memory, offset)
            return count, ends

    def clear(self, key: str | None = None) -> None:
        """Forget ``key``'s window, or every window."""
        with self._locked():
            if key is None:
                self._memory[:] = bytes(len(self._memory))
                return
            offset, live = self._find(_hash(key), time.time())
            if live:
                _SLOT.pack_into(self._memory, offset, 0, 0.0, 0)

    def _find(self, wanted: int, now: float) -> tuple[int, bool]:
        """The offset of ``wanted``'s slot and whether it holds a live window; else the slot to take."""
        free = soonest = None
        soonest_end = float("inf")
        for i in range(PROBE):
            offset = ((wanted + i) % self.slots) * _SLOT.size
            held, ends, _ = _SLOT.unpack_from(self._memory, offset)
            if ends <= now:
                if held == wanted:
                    return offset, False
                free = offset if free is None else free
            elif held == wanted:
                return offset, True
            elif ends < soonest_end:
                soonest, soonest_end = offset, ends
        return (free if free is not None else soonest), False  # type: ignore[return-value]


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") | 1


def client_key() -> str:
    """Whose budget a request counts against: its address, or its /64 for IPv6.

    One IPv6 subscriber usually has a whole /64 and could otherwise take a
    fresh address, and a fresh budget, for every request.
    """
    address = request.remote_addr or "-"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class SharedStorage(Storage):
    """The ``limits`` storage over :class:`SharedCounters` (fixed-window strategy only).

    Flask-Limiter builds it from ``storage_uri="shared://"`` with the counters
    in ``storage_options={"counters": ...}``.
    """

    STORAGE_SCHEME = ["shared"]  # noqa: RUF012 - the limits library reads this name

    def __init__(
        self,
        uri: str | None = None,
        wrap_exceptions: bool = False,
        counters: SharedCounters | None = None,
        **options: object,
    ) -> None:
        self.counters = counters or SharedCounters()
        super().__init__(uri, wrap_exceptions=wrap_exceptions)

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        return self.counters.incr(key, expiry, amount)

    def get(self, key: str) -> int:
        return self.counters.window(key)[0]

    def get_expiry(self, key: str) -> float:
        return self.counters.window(key)[1]

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        self.counters.clear()
        return None

    def clear(self, key: str) -> None:
        self.counters.clear(key)
