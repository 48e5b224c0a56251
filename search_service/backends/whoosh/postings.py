"""A term's postings as NumPy arrays, and the cache that keeps them between queries.

Whoosh's matchers step through postings one Python call at a time; here a
term's postings in one segment are read a whole block at a time
(:func:`.internals.posting_blocks`) into arrays of document numbers and
frequencies, and their positions decoded with array operations
(:func:`.internals.decode_position_values`) into one array, so a phrase
only gathers the positions of the stories it asks about.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from .internals import decode_position_values, posting_blocks

#: What one kept term costs beyond its arrays (the objects and the cache's entry).
_ENTRY_BYTES = 600


@dataclass
class Postings:
    """One segment's postings of a term: document numbers (ascending), frequencies, positions.

    The positions of posting ``i`` are ``positions[starts[i]:starts[i + 1]]``
    (none for a field without positions).
    """

    ids: np.ndarray
    tfs: np.ndarray
    starts: np.ndarray
    positions: np.ndarray  # int32

    @property
    def nbytes(self) -> int:
        """What it holds in memory, in bytes: the cache's unit."""
        return self.ids.nbytes + self.tfs.nbytes + self.starts.nbytes + self.positions.nbytes + _ENTRY_BYTES

    def positions_at(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, flat)``: the positions of posting ``at[i]`` are ``flat[starts[i]:starts[i + 1]]``."""
        lengths = self.starts[at + 1] - self.starts[at]
        local = np.zeros(len(at) + 1, dtype=np.int64)
        np.cumsum(lengths, out=local[1:])
        return local, self.positions[np.repeat(self.starts[at] - local[:-1], lengths) + np.arange(int(local[-1]))]


class JoinedPostings:
    """A term's postings over several segments: each segment's :class:`Postings`, shifted by its offset.

    The parts stay in the shared cache; only the document numbers and
    frequencies are joined, per query.
    """

    def __init__(self, parts: list[tuple[Postings, int]]) -> None:
        self.parts = [p for p, _ in parts]
        self.ids = np.concatenate([p.ids + offset for p, offset in parts]) if parts else np.zeros(0, dtype=np.int64)
        self.tfs = np.concatenate([p.tfs for p in self.parts]) if parts else np.zeros(0)
        self._bounds = np.cumsum([0] + [len(p.ids) for p in self.parts])

    def positions_at(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`Postings.positions_at` over the joined postings (``at`` ascending)."""
        starts, flats, done = [np.zeros(1, dtype=np.int64)], [], 0
        for part, low, high in zip(self.parts, self._bounds[:-1], self._bounds[1:]):
            mine = at[(at >= low) & (at < high)] - low
            if len(mine):
                part_starts, flat = part.positions_at(mine)
                starts.append(part_starts[1:] + done)
                flats.append(flat)
                done += len(flat)
        return np.concatenate(starts), np.concatenate(flats) if flats else np.zeros(0, dtype=np.int64)


class PostingsCache:
    """A thread-safe LRU of decoded postings, bounded in bytes (:attr:`Postings.nbytes`).

    A posting costs 24 bytes (document number, frequency, where its
    positions start) plus 4 bytes a position.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, Postings] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], Postings]) -> Postings:
        """The postings kept under ``key``, or ``load()``'s, kept if they fit (the least recently used go)."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        loaded = load()
        with self._lock:
            if key not in self._items and loaded.nbytes <= self.capacity:
                self._items[key] = loaded
                self._size += loaded.nbytes
                while self._size > self.capacity:
                    _, evicted = self._items.popitem(last=False)
                    self._size -= evicted.nbytes
        return loaded

    @property
    def size(self) -> int:
        """The bytes kept."""
        return self._size


def read_postings(leaf, fieldname: str, text: str | bytes) -> Postings:  # type: ignore[no-untyped-def]
    """One segment's postings of a term, read a whole block at a time."""
    id_parts: list[np.ndarray] = []
    tf_parts: list[np.ndarray] = []
    values: list[bytes] = []
    for deltas, weights, block_values in posting_blocks(leaf, fieldname, text):
        ids = np.cumsum(np.asarray(deltas, dtype=np.int64))
        id_parts.append(ids)
        if weights is None or isinstance(weights, float):
            tf_parts.append(np.full(len(ids), 1.0 if weights is None else weights))
        else:
            tf_parts.append(np.asarray(weights, dtype=np.float64))
        values.extend(block_values or [b""] * len(ids))
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)), out=offsets[1:])
    if offsets[-1]:
        starts, positions = decode_position_values(b"".join(values), offsets[:-1], offsets[1:])
    else:  # no positions in this field
        starts, positions = np.zeros(len(values) + 1, dtype=np.int64), np.zeros(0)
    if not id_parts:
        return Postings(np.zeros(0, dtype=np.int64), np.zeros(0), starts, positions.astype(np.int32))
    return Postings(np.concatenate(id_parts), np.concatenate(tf_parts), starts, positions.astype(np.int32))


__all__ = ["JoinedPostings", "Postings", "PostingsCache", "read_postings"]
