"""Query evaluation: a parsed query to ``(scores, matched)`` arrays over every story.

Whoosh's own matchers score one document at a time in Python (about 20 ms
for two common words on 19,000 stories) and count totals and facets with a
second pass.  Here a query is evaluated bottom-up into two arrays indexed by
document number, ``scores`` and ``matched``: a term reads its posting blocks
once, and AND, OR and NOT become array arithmetic.  The same pass gives the
total, the facets and the top hits, for every sort order.

What each query node means:

* ``Word`` (a free-text word in every field): BM25F (:mod:`.similarity`)
  over the stories with the word in any field, times the word's query weight.  A phrase as a
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

import time
from functools import partial, singledispatchmethod

import numpy as np
from whoosh import query as wq
from whoosh.searching import Searcher

from ...model import QueryTimeout
from .corpus import Corpus
from .internals import expansions
from .postings import JoinedPostings, Postings, read_postings
from .query import EveryStory, Word
from .schema import TEXT_FIELDS
from .similarity import bm25f

#: Larger than any position: (document, position) pairs packed into one integer.
_POSITION_SPAN = 1 << 32


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
                parts.append((self.corpus.cache.get(key, partial(read_postings, leaf, fieldname, text)), offset))
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
        return self._node(q)

    @singledispatchmethod
    def _node(self, q: wq.Query) -> tuple[np.ndarray, np.ndarray]:
        """Any node without an array evaluation: Whoosh's own matcher says which stories match."""
        return self._fallback(q)

    @_node.register
    def _term(self, q: wq.Term) -> tuple[np.ndarray, np.ndarray]:
        return self._bm25f([(q.fieldname, 1.0)], q.text, q.boost)

    @_node.register
    def _multi_term(self, q: wq.MultiTerm) -> tuple[np.ndarray, np.ndarray]:
        if q.fieldname not in TEXT_FIELDS:
            return self._fallback(q)
        return self._union([self._bm25f([(q.fieldname, 1.0)], t, q.boost) for t in expansions(q, self.reader)])

    @_node.register
    def _any_of(self, q: wq.Or) -> tuple[np.ndarray, np.ndarray]:
        return self._or([self._eval(c) for c in q.subqueries], q.scale)

    @_node.register
    def _and_not(self, q: wq.AndNot) -> tuple[np.ndarray, np.ndarray]:
        scores, matched = self._eval(q.a)
        return scores, matched & ~self._eval(q.b)[1]

    @_node.register
    def _and_maybe(self, q: wq.AndMaybe) -> tuple[np.ndarray, np.ndarray]:
        scores, matched = self._eval(q.a)
        extra, _ = self._eval(q.b)
        return scores + extra, matched

    @_node.register
    def _require(self, q: wq.Require) -> tuple[np.ndarray, np.ndarray]:
        scores, matched = self._eval(q.a)
        return scores, matched & self._eval(q.b)[1]

    @_node.register
    def _all_of(self, q: wq.And) -> tuple[np.ndarray, np.ndarray]:
        return self._and(q.subqueries)

    @_node.register
    def _numeric_range(self, q: wq.NumericRange) -> tuple[np.ndarray, np.ndarray]:
        return self._published(q) if q.fieldname == "published" else self._fallback(q)

    @_node.register(type(wq.NullQuery))
    def _nothing(self, q: wq.Query) -> tuple[np.ndarray, np.ndarray]:
        return self._empty()

    @_node.register
    def _not(self, q: wq.Not) -> tuple[np.ndarray, np.ndarray]:
        """What query.py left as an alternative: every story without it."""
        scores, _matched = self._empty()
        return scores, ~self._eval(q.query)[1]

    @_node.register
    def _every_story(self, q: EveryStory) -> tuple[np.ndarray, np.ndarray]:
        scores, matched = self._empty()
        matched[:] = True
        return scores, matched

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
        length = np.sum([weight * self.corpus.lengths[f][ids] for f, weight in fields], axis=0)
        average = sum(weight * self.corpus.average_length[f] for f, weight in fields)
        with_term = int(np.count_nonzero(self.corpus.alive[ids]))  # deleted stories' postings stay until a merge
        scores[ids] = bm25f(tf[ids], length, average, self.reader.doc_count(), with_term, boost)
        return scores, matched

    @_node.register
    def _word(self, q: Word) -> tuple[np.ndarray, np.ndarray]:
        fields = [(c.fieldname, c.boost) for c in q.subqueries]
        first = q.subqueries[0]
        if not isinstance(first, wq.Phrase):
            return self._bm25f(fields, first.text, q.boost)
        scores = np.sum([self._bm25f(fields, w, q.boost)[0] for w in first.words], axis=0)
        matched = np.logical_or.reduce([self._adjacent(c, self._has_all(c.fieldname, c.words)) for c in q.subqueries])
        return np.where(matched, scores, 0.0), matched

    def _has_all(self, fieldname: str, words: list[str]) -> np.ndarray:
        return np.logical_and.reduce([_mask(self._read(fieldname, w).ids, self.corpus.size) for w in words])

    def _union(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        if not parts:
            return self._empty()
        return np.sum([p[0] for p in parts], axis=0), np.logical_or.reduce([p[1] for p in parts])

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

    @_node.register
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
            # (document, position where the phrase would start) as one integer: ascending, as the
            # candidates are and each story's positions are, so no sort is needed
            found = docs * _POSITION_SPAN + (flat - offset)
            keys = found if keys is None else _in_sorted(keys, found)
            if keys.size == 0:
                break
        if keys is not None and keys.size:
            matched[keys // _POSITION_SPAN] = True
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


def _in_sorted(keys: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """The ``keys`` (ascending) that are in ``sorted_values`` (ascending), by binary search:
    common words have hundreds of thousands of positions, which np.unique and intersect1d sort again."""
    at = np.searchsorted(sorted_values, keys).clip(max=max(len(sorted_values) - 1, 0))
    return keys[sorted_values[at] == keys] if len(sorted_values) else keys[:0]


def _mask(docnums: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[docnums] = True
    return mask


__all__ = ["Evaluation"]
