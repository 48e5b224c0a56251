"""Ranking: BM25F over Whoosh's postings, evaluated with NumPy arrays.

Whoosh's own matchers score one document at a time in Python (about 20 ms
for two common words on 19,000 stories) and count totals and facets with a
second pass.  Here a query is evaluated bottom-up into two arrays indexed by
document number, ``scores`` and ``matched``: a term reads its posting blocks
once, and AND, OR and NOT become array arithmetic.  The same pass gives the
total, the facets and the top hits, for every sort order.

What each query node means:

* ``Word`` (a free-text word in every field): BM25F as Robertson, Zaragoza
  and Taylor (2004) simplify it: the fields' term frequencies and lengths,
  each times its field weight, are added up *before* BM25's saturation and
  length normalisation (``K1``, ``B``, Lucene's idf over the stories with
  the word in any field), times the word's query weight.  A phrase as a
  ``Word``: its words' BM25F, for the stories where they are adjacent.
* ``Term``: the same with one field, i.e. BM25, times the term's boost.
* ``Or``: the sum of the children; with a ``scale`` (short free text), the
  sum is multiplied by ``1 + scale * (m - 1) / (n - 1)`` for ``m`` of ``n``
  children matched, so stories with more of the words rank first.
* ``And``/``Require``: all children must match; ``Not``/``AndNot`` exclude
  (a ``Not`` alone: every story without its query);
  ``AndMaybe``: the optional side only adds to the score.
* Wildcards and word ranges: the union of their (bounded) expansions.
* Phrases: the words must all occur; then their stored positions are
  compared, on those candidates only.
* Date ranges: a mask over the ``published`` array.
* ``EveryStory`` (a bare ``*``): every story, scoring nothing.
"""

from __future__ import annotations

import math
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain

import numpy as np
from whoosh import query as wq
from whoosh.codec.whoosh3 import LENGTHS_COLUMN
from whoosh.matching import FilterMatcher
from whoosh.searching import Searcher
from whoosh.util.numeric import byte_to_length

from .query import EveryStory, QueryError, Word
from .schema import TEXT_FIELDS

K1 = 1.2
B = 0.75
#: Decoded postings kept per segment, counted in postings (about 70 bytes
#: each, see :attr:`Postings.weight`): popular words are read once, not on
#: every query, and a write only makes the new segment's be read.
POSTINGS_CACHE_SIZE = 1_000_000


class QueryTimeout(QueryError):
    """The query ran past its time limit."""


#: Larger than any position: (document, position) pairs packed into one integer.
_POSITION_SPAN = 1 << 32

_BYTE_LENGTHS = np.array([byte_to_length(i) for i in range(256)], dtype=np.float64)
_EPOCH = datetime(1970, 1, 1)
_TICKS_PER_DAY = 86_400_000_000  # microseconds
_EPOCH_TICKS = (_EPOCH - datetime.min).days * _TICKS_PER_DAY
#: Whoosh reads some undated values as 0001-01-01: dates before year 2 are none.
_YEAR_2_TICKS = (datetime(2, 1, 1) - datetime.min).days * _TICKS_PER_DAY


@dataclass
class Corpus:
    """Per-document arrays of one searcher's snapshot of the index.

    Built with array reads of Whoosh's columns, not a Python loop over the
    documents: every commit needs a new one, and the first query after a
    write waits for it.
    """

    size: int
    alive: np.ndarray
    lengths: dict[str, np.ndarray]
    average_length: dict[str, float]
    ticks: np.ndarray  # ``published`` in Whoosh's ticks (microseconds since 0001-01-01); -1 when undated
    days: np.ndarray  # ``published`` as :func:`day_number`; NaN when undated
    months: np.ndarray  # year * 12 + month - 1 of ``published``; -1 when undated
    #: Postings per segment, handed on from commit to commit (segments never change).
    cache: PostingsCache = field(default_factory=lambda: PostingsCache(POSTINGS_CACHE_SIZE))

    @classmethod
    def load(cls, searcher: Searcher, cache: PostingsCache | None = None) -> Corpus:
        """The arrays of ``searcher``'s commit; ``cache``, the last commit's, keeps the segments both share."""
        reader = searcher.reader()
        size = reader.doc_count_all()
        alive = np.zeros(size, dtype=bool)
        lengths = {f: np.zeros(size) for f in TEXT_FIELDS}
        ticks = np.full(size, -1, dtype=np.int64)
        for leaf, offset in reader.leaf_readers():
            alive[offset : offset + leaf.doc_count_all()] = True
            if leaf.has_deletions():
                alive[offset + np.fromiter(leaf.deleted_docs_set, dtype=np.int64)] = False
            for fieldname in TEXT_FIELDS:
                column = leaf._perdoc._cached_reader(f"_{fieldname}_len", LENGTHS_COLUMN)
                if column is not None:
                    codes = np.frombuffer(bytes(column), dtype=np.uint8)
                    lengths[fieldname][offset : offset + len(codes)] = _BYTE_LENGTHS[codes]
            dated = _published_ticks(leaf)
            ticks[offset : offset + len(dated)] = dated
        live = max(1, int(alive.sum()))
        average = {f: max(1.0, reader.field_length(f) / live) for f in TEXT_FIELDS}
        undated = ticks < 0
        days = np.where(undated, math.nan, (ticks - _EPOCH_TICKS) / _TICKS_PER_DAY)
        calendar = np.floor(np.nan_to_num(days)).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        months = np.where(undated, -1, calendar + 1970 * 12)
        if cache is None:
            return cls(size, alive, lengths, average, ticks, days, months)
        return cls(size, alive, lengths, average, ticks, days, months, cache)


def _published_ticks(leaf) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A segment's ``published`` column as ticks, read as one array; -1 when undated."""
    if not leaf.has_column("published"):
        return np.zeros(0, dtype=np.int64)
    column = leaf.column_reader("published", translate=False)
    # DATETIME's column: Whoosh's ticks as big-endian unsigned 64-bit numbers.
    raw = np.frombuffer(column._dbfile.get(column._basepos, column._count * column._fixedlen), dtype=">u8")
    ticks = raw.astype(np.uint64).view(np.int64)
    undated = (raw == np.uint64(leaf.schema["published"].default)) | (ticks < _YEAR_2_TICKS)
    return np.where(undated, -1, ticks)


def day_number(moment: datetime) -> float:
    """A naive (UTC) ``moment`` in days since 1970-01-01, as :attr:`Corpus.days` counts them."""
    return (moment - _EPOCH) / timedelta(days=1)


class Evaluation:
    """Evaluates a query over a :class:`Corpus`; see the module docstring for the semantics."""

    def __init__(self, searcher: Searcher, corpus: Corpus, time_limit: float) -> None:
        self.searcher = searcher
        self.reader = searcher.reader()
        self.corpus = corpus
        self.deadline = time.monotonic() + time_limit
        self._postings: dict[tuple[str, str], Postings | JoinedPostings] = {}

    def _read(self, fieldname: str, text: str | bytes) -> Postings | JoinedPostings:
        """A term's postings, read once per query even when the shared cache has no room for them."""
        key = (fieldname, text if isinstance(text, str) else text.decode("utf-8"))
        if key not in self._postings:
            self._postings[key] = self._join(*key)
        return self._postings[key]

    def _join(self, fieldname: str, text: str) -> Postings | JoinedPostings:
        """The term's postings in every segment, each from the shared cache (or read and kept there).

        Joined per query, not kept: a second cache of joined postings held
        on to segments' postings the first had let go (the mixed-load
        bench's memory grew by some 150 MiB more).
        """
        parts = []
        for leaf, offset in self.reader.leaf_readers():
            if (fieldname, text) in leaf:
                key = (leaf.segment().segment_id(), fieldname, text)
                parts.append((self.corpus.cache.get(key, lambda: read_postings(leaf, fieldname, text)), offset))
        return parts[0][0] if len(parts) == 1 and parts[0][1] == 0 else JoinedPostings(parts)

    def _check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise QueryTimeout("the query took too long to run; make it more specific")

    def run(self, q: wq.Query) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, matched)`` arrays for ``q``, deleted documents excluded."""
        scores, matched = self._eval(q)
        matched = matched & self.corpus.alive
        return np.where(matched, scores, 0.0), matched

    def _empty(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(self.corpus.size), np.zeros(self.corpus.size, dtype=bool)

    def _eval(self, q: wq.Query) -> tuple[np.ndarray, np.ndarray]:
        self._check_time()
        if isinstance(q, wq.Term):
            return self._bm25f([(q.fieldname, 1.0)], q.text, q.boost)
        if isinstance(q, Word):
            return self._word(q)
        if isinstance(q, wq.MultiTerm) and q.fieldname in TEXT_FIELDS:
            return self._union([self._bm25f([(q.fieldname, 1.0)], t, q.boost) for t in q._btexts(self.reader)])
        if isinstance(q, wq.Or):
            return self._or([self._eval(c) for c in q.subqueries], q.scale)
        if isinstance(q, wq.AndNot):
            scores, matched = self._eval(q.a)
            return scores, matched & ~self._eval(q.b)[1]
        if isinstance(q, wq.AndMaybe):
            scores, matched = self._eval(q.a)
            extra, _ = self._eval(q.b)
            return scores + extra, matched
        if isinstance(q, wq.Require):
            scores, matched = self._eval(q.a)
            return scores, matched & self._eval(q.b)[1]
        if isinstance(q, wq.And):
            return self._and(q.subqueries)
        if isinstance(q, wq.Phrase):
            return self._phrase(q)
        if isinstance(q, wq.NumericRange) and q.fieldname == "published":
            return self._published(q)
        if q is wq.NullQuery:
            return self._empty()
        if isinstance(q, wq.Not):  # what query.py left as an alternative: every story without it
            scores, matched = self._empty()
            return scores, ~self._eval(q.query)[1]
        if isinstance(q, EveryStory):
            scores, matched = self._empty()
            matched[:] = True
            return scores, matched
        return self._fallback(q)

    def _bm25f(self, fields: list[tuple[str, float]], text: str | bytes, boost: float) -> tuple[np.ndarray, np.ndarray]:
        """One term's BM25F over ``fields`` (name, weight): weighted frequencies and lengths, one saturation."""
        scores, matched = self._empty()
        tf = np.zeros(self.corpus.size)
        for fieldname, weight in fields:
            postings = self._read(fieldname, text)
            tf[postings.ids] += weight * postings.tfs
            matched[postings.ids] = True
        ids = np.flatnonzero(matched) if len(fields) > 1 else postings.ids
        if len(ids) == 0:
            return scores, matched
        n = max(self.reader.doc_count(), len(ids))
        idf = math.log(1.0 + (n - len(ids) + 0.5) / (len(ids) + 0.5))
        length = sum(weight * self.corpus.lengths[f][ids] for f, weight in fields)
        average = sum(weight * self.corpus.average_length[f] for f, weight in fields)
        tfs = tf[ids]
        scores[ids] = boost * idf * tfs * (K1 + 1.0) / (tfs + K1 * (1.0 - B + B * length / average))
        return scores, matched

    def _word(self, q: Word) -> tuple[np.ndarray, np.ndarray]:
        fields = [(c.fieldname, c.boost) for c in q.subqueries]
        first = q.subqueries[0]
        if not isinstance(first, wq.Phrase):
            return self._bm25f(fields, first.text, q.boost)
        scores = sum(self._bm25f(fields, w, q.boost)[0] for w in first.words)
        matched = np.logical_or.reduce([self._adjacent(c, self._has_all(c.fieldname, c.words)) for c in q.subqueries])
        return np.where(matched, scores, 0.0), matched

    def _has_all(self, fieldname: str, words: list[str]) -> np.ndarray:
        return np.logical_and.reduce([_mask(self._read(fieldname, w).ids, self.corpus.size) for w in words])

    def _union(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        if not parts:
            return self._empty()
        return sum(p[0] for p in parts), np.logical_or.reduce([p[1] for p in parts])

    def _or(self, parts: list[tuple[np.ndarray, np.ndarray]], scale: float | None) -> tuple[np.ndarray, np.ndarray]:
        scores, matched = self._union(parts)
        if scale and len(parts) > 1:
            count = np.sum([p[1] for p in parts], axis=0)
            scores = scores * (1.0 + scale * (count - 1).clip(min=0) / (len(parts) - 1))
        return scores, matched

    def _and(self, subqueries: list[wq.Query]) -> tuple[np.ndarray, np.ndarray]:
        scores, matched = self._empty()
        matched[:] = True
        for child in subqueries:
            if isinstance(child, wq.Not):
                matched &= ~self._eval(child.query)[1]
            else:
                child_scores, child_matched = self._eval(child)
                scores += child_scores
                matched &= child_matched
        return scores, matched

    def _phrase(self, q: wq.Phrase) -> tuple[np.ndarray, np.ndarray]:
        """Stories with all the words in the field (scored as those words), kept where they are adjacent."""
        scores, candidates = self._and([wq.Term(q.fieldname, w, boost=q.boost) for w in q.words])
        return scores, self._adjacent(q, candidates)

    def _adjacent(self, q: wq.Phrase, candidates: np.ndarray) -> np.ndarray:
        """Of the ``candidates`` (a mask of stories with all of q's words), those where they are consecutive.

        The candidates' positions come from the words' cached postings and
        are compared as arrays: many times faster than stepping Whoosh's
        phrase matcher through each candidate.
        """
        candidates = np.flatnonzero(candidates & self.corpus.alive)
        matched = np.zeros(self.corpus.size, dtype=bool)
        if len(candidates) == 0:
            return matched
        if q.slop != 1:  # "words"~N: let Whoosh judge the distances
            return self._fallback(q)[1] & _mask(candidates, self.corpus.size)
        keys: np.ndarray | None = None
        for offset, word in enumerate(q.words):
            self._check_time()
            postings = self._read(q.fieldname, word)
            starts, flat = postings.positions_at(np.searchsorted(postings.ids, candidates))
            docs = np.repeat(candidates, np.diff(starts))
            # (document, position where the phrase would start) as one integer
            found = np.unique(docs * _POSITION_SPAN + (flat - offset))
            keys = found if keys is None else np.intersect1d(keys, found, assume_unique=True)
            if keys.size == 0:
                break
        if keys is not None and keys.size:
            matched[np.unique(keys // _POSITION_SPAN)] = True
        return matched

    def _published(self, q: wq.NumericRange) -> tuple[np.ndarray, np.ndarray]:
        """A date range (Whoosh parses ``published:[..]`` into ticks, as :attr:`Corpus.ticks` holds them)."""
        ticks = self.corpus.ticks
        matched = ticks >= 0  # undated stories are in no range
        if q.start is not None:
            matched &= (ticks > q.start) if q.startexcl else (ticks >= q.start)
        if q.end is not None:
            matched &= (ticks < q.end) if q.endexcl else (ticks <= q.end)
        return np.zeros(self.corpus.size), matched

    def _fallback(self, q: wq.Query) -> tuple[np.ndarray, np.ndarray]:
        scores, matched = self._empty()
        matched[list(self.searcher.docs_for_query(q))] = True
        return scores, matched


def _mask(docnums: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[docnums] = True
    return mask


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
    deltas = [pickle.loads(v[4:] if v.endswith(b".") else v[4:] + b".") for v in values]
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
    """Read one segment's postings of a term a whole block at a time (Whoosh's block matcher internals)."""
    id_parts: list[np.ndarray] = []
    tf_parts: list[np.ndarray] = []
    values: list[bytes] = []
    matcher = leaf.postings(fieldname, text)
    if isinstance(matcher, FilterMatcher):
        # A segment with deletions wraps the block matcher; deleted
        # documents are masked by Evaluation.run (corpus.alive) instead.
        matcher = matcher.child
    while matcher.is_active():
        if matcher._data is None:
            matcher._read_data()
        deltas, weights, block_values = matcher._data
        ids = np.cumsum(np.asarray(deltas, dtype=np.int64))
        id_parts.append(ids)
        if weights is None or isinstance(weights, float):
            tf_parts.append(np.full(len(ids), 1.0 if weights is None else weights))
        else:
            tf_parts.append(np.asarray(weights, dtype=np.float64))
        values.extend(block_values or [b""] * len(ids))
        matcher._next_block()
    if not id_parts:
        return Postings(np.zeros(0, dtype=np.int64), np.zeros(0), [])
    return Postings(np.concatenate(id_parts), np.concatenate(tf_parts), values)
