"""A term's postings as NumPy arrays, and the cache that keeps them between queries.

Whoosh's matchers step through postings one Python call at a time; here a
term's postings in one segment are read a whole block at a time
(:func:`.internals.posting_blocks`) into arrays of document numbers and
frequencies (:class:`Postings`, 5 bytes a posting).  Their positions are
read apart, only for a phrase (:class:`Positions`, decoded with array
operations by :func:`.internals.decode_position_values`), so the words of
free text, most queries, are kept without them: four to five times as many
words fit in the same memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, TypeVar

import numpy as np

from .blocks import ranges
from .internals import decode_position_values, posting_blocks

#: What one kept term costs beyond its arrays (the objects and the cache's entry).
_ENTRY_BYTES = 600


class Sized(Protocol):
    """What the cache keeps: anything that says its size in bytes."""

    @property
    def nbytes(self) -> int: ...


_Item = TypeVar("_Item", bound=Sized)


@dataclass
class Postings:
    """One segment's postings of a term: document numbers (ascending, int32) and frequencies (uint8
    when they are all whole numbers under 256, as a rule, else float32 as Whoosh stores them:
    :attr:`weights` gives them as float64, the type scores are computed in)."""

    ids: np.ndarray
    tfs: np.ndarray

    @property
    def nbytes(self) -> int:
        """What it holds in memory, in bytes: the cache's unit."""
        return self.ids.nbytes + self.tfs.nbytes + _ENTRY_BYTES

    @property
    def weights(self) -> np.ndarray:
        return self.tfs.astype(np.float64)


@dataclass
class Positions:
    """One segment's positions of a term: those of posting ``i`` are ``flat[starts[i]:starts[i + 1]]``
    (``starts`` int32: a segment holds some 16 million postings, :data:`.segments.MAX_POSTINGS`;
    ``flat`` uint16 when every position is under 65,536, as in any story of fewer words, else int32)."""

    starts: np.ndarray
    flat: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.starts.nbytes + self.flat.nbytes + _ENTRY_BYTES

    def positions_at(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, flat)``: the positions of posting ``at[i]`` are ``flat[starts[i]:starts[i + 1]]``."""
        first = self.starts[at].astype(np.int64)
        lengths = self.starts[at + 1] - first
        local = np.zeros(len(at) + 1, dtype=np.int64)
        np.cumsum(lengths, out=local[1:])
        return local, self.flat[np.repeat(first - local[:-1], lengths) + np.arange(int(local[-1]))]


class JoinedPostings:
    """A term's postings over several segments: each segment's :class:`Postings`, shifted by its offset.

    The parts stay in the shared cache; the document numbers and
    frequencies are joined per query, when asked for (:attr:`ids`,
    :attr:`weights`), and those of some blocks of stories gathered
    from the parts without joining the rest (:meth:`within`).
    """

    def __init__(self, parts: list[tuple[Postings, int]]) -> None:
        self.parts = [p for p, _ in parts]
        self.offsets = [offset for _, offset in parts]
        self.bounds = np.cumsum([0] + [len(p.ids) for p in self.parts])

    @cached_property
    def ids(self) -> np.ndarray:
        if not self.parts:
            return _NO_IDS
        return np.concatenate([p.ids.astype(np.int64) + offset for p, offset in zip(self.parts, self.offsets)])

    @cached_property
    def weights(self) -> np.ndarray:
        return np.concatenate([p.tfs for p in self.parts]).astype(np.float64) if self.parts else np.zeros(0)

    def within(self, lows: np.ndarray, highs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, weights)`` of the postings with document numbers in the ranges ``[lows[i], highs[i])``
        (int64, ascending and disjoint), as :attr:`ids` and :attr:`weights` have them."""
        ids, weights = [], []
        for part, offset in zip(self.parts, self.offsets):
            if not len(part.ids):
                continue
            # the ranges that can hold this part's documents
            first = int(np.searchsorted(highs, offset, side="right"))
            last = int(np.searchsorted(lows, offset + int(part.ids[-1]), side="right"))
            if last > first:
                # int32 as the part's, or NumPy would convert all of them first
                starts = np.searchsorted(part.ids, (lows[first:last] - offset).astype(np.int32))
                ends = np.searchsorted(part.ids, (highs[first:last] - offset).astype(np.int32))
                at = ranges(starts, ends)
                ids.append(part.ids[at].astype(np.int64) + offset)
                weights.append(part.tfs[at])
        if not ids:
            return _NO_IDS, np.zeros(0)
        return np.concatenate(ids), np.concatenate(weights).astype(np.float64)


_NO_IDS = np.zeros(0, dtype=np.int64)


def joined_positions_at(parts: list[Positions], bounds: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`Positions.positions_at` over postings joined from segments (``bounds`` as
    :attr:`JoinedPostings.bounds`, ``at`` ascending)."""
    starts, flats, done = [np.zeros(1, dtype=np.int64)], [], 0
    splits = np.searchsorted(at, bounds)
    for part, low, first, last in zip(parts, bounds[:-1], splits[:-1], splits[1:]):
        if last > first:
            mine = at[first:last] - low
            part_starts, flat = part.positions_at(mine)
            starts.append(part_starts[1:] + done)
            flats.append(flat)
            done += len(flat)
    return np.concatenate(starts), np.concatenate(flats) if flats else np.zeros(0, dtype=np.int32)


class PostingsCache:
    """A thread-safe LRU of decoded postings and positions, bounded in bytes (their ``nbytes``).

    A posting costs 5 bytes (document number, frequency); a phrase's words
    add 4 bytes a posting and 2 a position.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, Sized] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], _Item]) -> _Item:
        """The item kept under ``key``, or ``load()``'s, kept if it fits (the least recently used go)."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found  # type: ignore[return-value]
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
    """One segment's postings of a term, read a whole block at a time (their positions left out)."""
    return _read(leaf, fieldname, text, positions=False)[0]


def read_positions(leaf, fieldname: str, text: str | bytes) -> Positions:  # type: ignore[no-untyped-def]
    """One segment's positions of a term, aligned with :func:`read_postings`'s postings."""
    return read_both(leaf, fieldname, text)[1]


def read_both(leaf, fieldname: str, text: str | bytes) -> tuple[Postings, Positions]:  # type: ignore[no-untyped-def]
    """:func:`read_postings` and :func:`read_positions` in one reading of the blocks (a phrase's words)."""
    postings, positions = _read(leaf, fieldname, text, positions=True)
    assert positions is not None
    return postings, positions


def _read(leaf, fieldname: str, text: str | bytes, positions: bool) -> tuple[Postings, Positions | None]:  # type: ignore[no-untyped-def]
    id_parts: list[np.ndarray] = []
    tf_parts: list[np.ndarray] = []
    values: list[bytes] = []
    for deltas, weights, block_values in posting_blocks(leaf, fieldname, text):
        ids = np.cumsum(np.asarray(deltas, dtype=np.int32), dtype=np.int32)
        id_parts.append(ids)
        if weights is None or isinstance(weights, float):
            tf_parts.append(np.full(len(ids), 1.0 if weights is None else weights, dtype=np.float32))
        else:
            tf_parts.append(np.asarray(weights, dtype=np.float32))
        if positions:
            values.extend(block_values or [b""] * len(deltas))
    if id_parts:
        postings = Postings(np.concatenate(id_parts), _narrow(np.concatenate(tf_parts)))
    else:
        postings = Postings(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))
    return postings, _decoded(values) if positions else None


def _narrow(tfs: np.ndarray) -> np.ndarray:
    """Frequencies in one byte each when they are all whole numbers under 256 (as a rule), else as they are."""
    narrow = tfs.astype(np.uint8)
    return narrow if np.array_equal(narrow, tfs) else tfs


def _decoded(values: list[bytes]) -> Positions:
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)), out=offsets[1:])
    if not offsets[-1]:  # no positions in this field
        return Positions(np.zeros(len(values) + 1, dtype=np.int32), np.zeros(0, dtype=np.int32))
    starts, flat = decode_position_values(b"".join(values), offsets[:-1], offsets[1:])
    narrow = flat.max(initial=0) < 1 << 16
    return Positions(starts.astype(np.int32), flat.astype(np.uint16 if narrow else np.int32))


__all__ = [
    "JoinedPostings",
    "Positions",
    "Postings",
    "PostingsCache",
    "joined_positions_at",
    "read_both",
    "read_positions",
    "read_postings",
]
