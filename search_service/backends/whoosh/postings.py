"""A term's postings as NumPy arrays, and the cache that keeps them between queries.

Whoosh's matchers step through postings one Python call at a time; here a
term's postings in one segment are read a whole block at a time
(:func:`.internals.posting_blocks`) into arrays of document numbers and
frequencies (:class:`Postings`, 5 bytes a posting).  Their positions are
kept only for a phrase (:class:`Positions`, joined from the packed blocks'
arrays by :func:`.internals.block_positions`, or decoded with array
operations from blocks as Whoosh writes them), so the words of free text,
most queries, are kept without them: four to five times as many words fit
in the same memory.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, TypeVar

import numpy as np

from .blocks import ranges
from .internals import block_positions, block_values, joined_ints, posting_blocks, weight_bytes

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
    :attr:`weights` gives them as float64, the type scores are computed in), and where their blocks'
    data are in the postings file (:attr:`blocks`, ``(offset, size)`` as
    :func:`.internals.posting_blocks` gives them) and the first posting of each (:attr:`firsts`), for
    a phrase's positions (:func:`read_positions_at`)."""

    ids: np.ndarray
    tfs: np.ndarray
    blocks: np.ndarray
    firsts: np.ndarray

    @property
    def nbytes(self) -> int:
        """What it holds in memory, in bytes: the cache's unit."""
        return self.ids.nbytes + self.tfs.nbytes + self.blocks.nbytes + self.firsts.nbytes + _ENTRY_BYTES

    def block_sizes(self) -> np.ndarray:
        """How many postings each block holds."""
        return np.diff(np.append(self.firsts, len(self.ids)))

    @property
    def weights(self) -> np.ndarray:
        return self.tfs.astype(np.float64)


@dataclass
class Positions:
    """Positions of postings: those of posting ``i`` are ``flat[starts[i]:starts[i + 1]]``.

    Kept in the cache (:func:`read_all_positions`), ``starts`` is int32 (a
    segment holds some 32 million postings, :data:`.segments.MAX_POSTINGS`)
    and ``flat`` uint16 when every position is under 65,536, as in any
    story of fewer words, else int32.
    """

    starts: np.ndarray
    flat: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.starts.nbytes + self.flat.nbytes + _ENTRY_BYTES

    def positions_at(self, at: np.ndarray) -> Positions:
        """The positions of the postings ``at``."""
        first = self.starts[at].astype(np.int64)
        last = self.starts[at + 1].astype(np.int64)
        local = np.zeros(len(at) + 1, dtype=np.int64)
        np.cumsum(last - first, out=local[1:])
        return Positions(local, self.flat[ranges(first, last)])


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
#: A term's postings in a segment without it.
NO_POSTINGS = Postings(
    np.zeros(0, dtype=np.int32),
    np.zeros(0, dtype=np.float32),
    np.zeros((0, 2), dtype=np.int64),
    np.zeros(0, dtype=np.int32),
)


def joined_positions_at(
    readers: Sequence[Callable[[np.ndarray], Positions]], bounds: np.ndarray, at: np.ndarray
) -> Positions:
    """The positions of postings ``at`` (ascending) joined from segments (``bounds`` as
    :attr:`JoinedPostings.bounds`), each segment's read by its reader (as :func:`read_positions_at`)."""
    starts, flats, done = [np.zeros(1, dtype=np.int64)], [], 0
    splits = np.searchsorted(at, bounds)
    for read, low, first, last in zip(readers, bounds[:-1], splits[:-1], splits[1:]):
        if last > first:
            part = read(at[first:last] - low)
            starts.append(part.starts[1:].astype(np.int64) + done)
            flats.append(part.flat)
            done += len(part.flat)
    flat = np.concatenate(flats) if flats else np.zeros(0, dtype=np.int32)
    return Positions(np.concatenate(starts), flat)


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
        found = self.peek(key)
        if found is not None:
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

    def peek(self, key: Hashable) -> Sized | None:
        """The item kept under ``key``, if any (as :meth:`get`, but nothing is loaded)."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    @property
    def size(self) -> int:
        """The bytes kept."""
        return self._size


def read_postings(leaf, fieldname: str, text: str | bytes) -> Postings:  # type: ignore[no-untyped-def]
    """One segment's postings of a term, read a whole block at a time (their positions left out)."""
    return _read(leaf, fieldname, text, None)


def read_both(leaf, fieldname: str, text: str | bytes) -> tuple[Postings, Positions]:  # type: ignore[no-untyped-def]
    """A term's postings (as :func:`read_postings`) and all their positions, narrowed to be kept, in one
    reading of its blocks (a phrase's words)."""
    values: list[Any] = []
    postings = _read(leaf, fieldname, text, values)
    counts = postings.block_sizes().tolist()
    return postings, _kept(Positions(*block_positions(values, counts)))


def _read(leaf, fieldname: str, text: str | bytes, values: list[Any] | None) -> Postings:  # type: ignore[no-untyped-def]
    """A term's postings, and each block's values added to ``values`` unless None (as
    :func:`.internals.posting_blocks` gives them).

    The blocks' numbers are gathered and made arrays once, end to end: an
    array or two per block cost more than the reading.
    """
    deltas: list[Any] = []
    weights: list[Any] = []
    sizes: list[int] = []
    blocks: list[tuple[int, int]] = []
    for where, block_deltas, block_weights, encoded in posting_blocks(leaf, fieldname, text):
        blocks.append(where)
        sizes.append(len(block_deltas))
        deltas.append(block_deltas)
        weights.append(block_weights)
        if values is not None:
            values.append(encoded)
    if not blocks:
        return NO_POSTINGS
    firsts = np.zeros(len(sizes), dtype=np.int32)
    if len(sizes) == 1:  # most terms in a segment: the block's first is its first document number
        ids = np.cumsum(joined_ints(deltas), dtype=np.int32)
    else:
        np.cumsum(sizes[:-1], out=firsts[1:])
        running = np.cumsum(joined_ints(deltas), dtype=np.int64)  # each block's first is a document number, not a gap
        before = np.where(firsts > 0, running[firsts - 1], 0)
        ids = (running - np.repeat(before, sizes)).astype(np.int32)
    return Postings(ids, _joined_weights(weights, sizes), np.array(blocks, dtype=np.int64), firsts)


def _joined_weights(weights: list[Any], sizes: list[int]) -> np.ndarray:
    """The blocks' weights end to end: a byte each when they are all whole numbers under 256 (as a
    rule), else as :func:`_narrow` keeps them."""
    as_bytes = [weight_bytes(w, n) for w, n in zip(weights, sizes)]
    if all(b is not None for b in as_bytes):
        return np.frombuffer(b"".join(as_bytes), dtype=np.uint8)  # type: ignore[arg-type]
    floats = [
        np.full(n, 1.0 if w is None else w, dtype=np.float32)
        if w is None or isinstance(w, float)
        else joined_ints([w]).astype(np.float32)
        if isinstance(w, (bytes, array))
        else np.asarray(w, dtype=np.float32)
        for w, n in zip(weights, sizes)
    ]
    return _narrow(np.concatenate(floats))


def read_positions_at(leaf, fieldname: str, text: str | bytes, postings: Postings, at: np.ndarray) -> Positions:  # type: ignore[no-untyped-def]
    """The positions of one segment's postings ``at`` (ascending, into ``postings``, the term's), read
    from the blocks that hold them only: those of ``at[i]`` are ``flat[starts[i]:starts[i + 1]]``."""
    block_of = np.searchsorted(postings.firsts, at, side="right") - 1
    blocks = np.unique(block_of)
    counts = postings.block_sizes()[blocks]
    read = Positions(
        *block_positions(list(block_values(leaf, fieldname, text, postings.blocks[blocks].tolist())), counts.tolist())
    )
    # where each block read begins among the postings read
    begins = np.zeros(len(blocks), dtype=np.int64)
    np.cumsum(counts[:-1], out=begins[1:])
    return read.positions_at(begins[np.searchsorted(blocks, block_of)] + at - postings.firsts[block_of])


def read_all_positions(leaf, fieldname: str, text: str | bytes) -> Positions:  # type: ignore[no-untyped-def]
    """The positions of all one segment's postings of a term, narrowed to be kept (see :class:`Positions`):
    the term's blocks read in one piece, their postings, read before, left as they are."""
    values, counts = [], []
    for _, deltas, _, encoded in posting_blocks(leaf, fieldname, text):
        values.append(encoded)
        counts.append(len(deltas))
    return _kept(Positions(*block_positions(values, counts)))


def _kept(positions: Positions) -> Positions:
    """``positions`` narrowed to be kept (see :class:`Positions`)."""
    flat = positions.flat
    narrow = (flat.dtype.kind == "u" and flat.dtype.itemsize <= 2) or flat.max(initial=0) < 1 << 16
    return Positions(positions.starts.astype(np.int32), flat.astype(np.uint16 if narrow else np.int32, copy=False))


def blocks_holding(postings: Postings, at: np.ndarray) -> int:
    """How many of the term's blocks hold its postings ``at`` (ascending)."""
    block_of = np.searchsorted(postings.firsts, at, side="right")
    return int(np.count_nonzero(block_of[1:] != block_of[:-1])) + 1 if len(at) else 0


def _narrow(tfs: np.ndarray) -> np.ndarray:
    """Frequencies in one byte each when they are all whole numbers under 256 (as a rule), else as they are."""
    narrow = tfs.astype(np.uint8)
    return narrow if np.array_equal(narrow, tfs) else tfs


__all__ = [
    "NO_POSTINGS",
    "JoinedPostings",
    "Positions",
    "Postings",
    "PostingsCache",
    "blocks_holding",
    "joined_positions_at",
    "read_all_positions",
    "read_both",
    "read_positions_at",
    "read_postings",
]
