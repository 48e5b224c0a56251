"""A term's postings as NumPy arrays, and the cache that keeps them between queries.

Whoosh's matchers step through postings one Python call at a time; here a
term's postings in one segment are read a whole block at a time
(:func:`.internals.posting_blocks`) into arrays of document numbers and
frequencies, and its positions are decoded only when a phrase needs them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from itertools import chain

import numpy as np

from .internals import decode_positions, posting_blocks

#: Decoded postings kept per segment, counted in postings (about 70 bytes
#: each, see :attr:`Postings.weight`): popular words are read once, not on
#: every query, and a write only makes the new segment's be read.
POSTINGS_CACHE_SIZE = 1_000_000


@dataclass
class Postings:
    """One segment's postings of a term: its document numbers (ascending), frequencies, encoded positions."""

    ids: np.ndarray
    tfs: np.ndarray
    values: list[bytes]
    _positions: tuple[np.ndarray, np.ndarray] | None = None
    _phrase_uses: int = 0

    @property
    def weight(self) -> int:
        """Its size in postings, the cache's unit (document number, frequency and encoded
        positions: about 70 bytes); decoded positions, 16 bytes each, count a quarter."""
        decoded = 0 if self._positions is None else len(self._positions[0]) + len(self._positions[1])
        return len(self.ids) + decoded // 4

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, flat)``: the positions of posting ``i`` are ``flat[starts[i]:starts[i + 1]]``.

        Decoded once per term (Whoosh stores them as a count and pickled
        deltas) and kept with the postings, so phrase checks are array work.
        """
        if self._positions is None:
            self._positions = _decode_positions(self.values)
        return self._positions

    def positions_at(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`positions` of the postings at indexes ``at`` only, in the same layout.

        A first phrase with a common word and a rare one needs few of the
        common word's positions: those alone are decoded, and not kept.  A
        word used in phrases again has all its positions decoded and kept.
        """
        self._phrase_uses += 1
        if self._positions is None and self._phrase_uses == 1 and 2 * len(at) < len(self.ids):
            return _decode_positions([self.values[i] for i in at.tolist()])
        starts, flat = self.positions()
        lengths = starts[at + 1] - starts[at]
        local = np.zeros(len(at) + 1, dtype=np.int64)
        np.cumsum(lengths, out=local[1:])
        return local, flat[np.repeat(starts[at] - local[:-1], lengths) + np.arange(int(local[-1]))]


class JoinedPostings:
    """A term's postings over several segments: each segment's :class:`Postings`, shifted by its offset.

    The parts stay in the shared cache (positions decoded once per segment);
    only the document numbers and frequencies are joined, per query.
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


def _decode_positions(values: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    deltas = decode_positions(values)
    lengths = np.fromiter((len(d) for d in deltas), dtype=np.int64, count=len(deltas))
    starts = np.zeros(len(deltas) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    flat = np.fromiter(chain.from_iterable(deltas), dtype=np.int64, count=int(starts[-1]))
    running = np.cumsum(flat)
    before = np.concatenate(([0], running))[starts[:-1]]
    return starts, running - np.repeat(before, lengths)


class PostingsCache:
    """A thread-safe LRU of decoded postings, bounded by their :attr:`Postings.weight`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, tuple[Postings, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], Postings]) -> Postings:
        """The postings kept under ``key``, or ``load()``'s, kept if they fit.

        Positions are decoded after the postings are kept; their weight is
        counted the next time the postings are asked for.
        """
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self._count(key, *found)
                return found[0]
        loaded = load()
        with self._lock:
            if key not in self._items and loaded.weight <= self.capacity:
                self._count(key, loaded, 0)
        return loaded

    def _count(self, key: Hashable, postings: Postings, counted: int) -> None:
        """Keep ``postings`` under ``key`` at their weight now (``counted`` was kept before); evict to fit."""
        weight = postings.weight
        self._items[key] = (postings, weight)
        self._size += weight - counted
        while self._size > self.capacity:
            _, (_, evicted) = self._items.popitem(last=False)
            self._size -= evicted

    @property
    def size(self) -> int:
        """The weight of what is kept."""
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
    if not id_parts:
        return Postings(np.zeros(0, dtype=np.int64), np.zeros(0), [])
    return Postings(np.concatenate(id_parts), np.concatenate(tf_parts), values)


__all__ = ["POSTINGS_CACHE_SIZE", "JoinedPostings", "Postings", "PostingsCache", "read_postings"]
