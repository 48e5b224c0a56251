"""Query evaluation: a parsed query to the stories it matches and their scores, as sparse arrays.

Whoosh's own matchers score one document at a time in Python (about 20 ms
for two common words on 19,000 stories) and count totals and facets with a
second pass.  Here a query is evaluated bottom-up into a :class:`Found`:
the document numbers it matches (ascending) and their scores, aligned.  A
term reads its cached postings once; OR is a merge of sorted arrays (a
stable sort of runs already sorted, linear), AND and NOT are binary
searches of one array in another (or look-ups in an index of document
numbers, when many).  Nothing is sized to the collection: on a million
stories, arrays of a score and a flag per story, built and combined
several times per query, cost more than the words' postings.  The same pass
gives the total, the facets and the top hits, for every sort order.

Free text sorted by relevance takes a shorter way (:meth:`Evaluation.top`,
:mod:`.blocks`): only the blocks of stories that can hold the page's hits
are scored, and when a word is in :data:`.blocks.ESTIMATE_FROM` stories or
more, the total and the facets are estimated from a sample ("about N").

What each query node means (a node scores only the stories it matches):

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
  compared, on those candidates only, and only the stories kept are scored.
* Date ranges: the stories in the range of the ``published`` array.
* ``EveryStory`` (a bare ``*``): every story, scoring nothing.

Sums are added in the children's order, from zero, as the dense arrays
this replaced added them: scores are the same to the last bit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import partial, singledispatchmethod
from typing import Any

import numpy as np
from whoosh import query as wq
from whoosh.searching import Searcher

from ...model import QueryTimeout
from ...similarity import bm25f
from .blocks import (
    BLOCK,
    ESTIMATE_FROM,
    ScoredStories,
    WordBlocks,
    block_count,
    block_ranges,
    sample_blocks,
    sample_share,
)
from .corpus import Corpus
from .internals import expansions
from .postings import (
    NO_POSTINGS,
    JoinedPostings,
    Positions,
    Postings,
    blocks_holding,
    joined_positions_at,
    read_all_positions,
    read_both,
    read_positions_at,
    read_postings,
)
from .query import EveryStory, Word
from .schema import TEXT_FIELDS

#: Lists to merge longer than this share of the collection together are merged with flags (see :func:`_merge`).
_DENSE_SHARE = 0.1
#: :func:`_lookup` indexes the document numbers for more ids than one in this many of them.
_DENSE_LOOKUP = 16
#: Blocks scored in the first batch of :meth:`Evaluation._blocks_top`; each batch after doubles.
_FIRST_BATCH = 32
#: A phrase's candidates in fewer than this share of a word's blocks (in a segment) have their positions
#: read from those blocks alone, and not kept; else all the word's positions are read and kept.
_FEW_BLOCKS = 0.5
#: Larger than any position: (document, position) pairs packed into one integer.
_POSITION_SPAN = 1 << 32


@dataclass
class Found:
    """The stories a query matches (document numbers, ascending, distinct) and their scores."""

    ids: np.ndarray
    scores: np.ndarray
    #: Stories left unscored (score ``-inf`` here, or left out) score below this (:meth:`Evaluation.top`).
    floor: float = -math.inf
    #: When set, :attr:`ids` are only the stories scored, and the matches in the sample's blocks
    #: (:mod:`.blocks`) times :attr:`share` estimate the total and the facets.
    sample: Found | None = None
    share: float = 1.0

    def take(self, keep: np.ndarray) -> Found:
        """The matches where ``keep`` (a mask or positions over :attr:`ids`) says (the sample unchanged)."""
        return Found(self.ids[keep], self.scores[keep], self.floor, self.sample, self.share)

    def exact_top(self, depth: int) -> bool:
        """Whether the ``depth`` best stories by score are certainly among those scored."""
        return self.floor == -math.inf or int(np.count_nonzero(self.scores >= self.floor)) >= depth

    def dense(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, matched)`` arrays over all ``size`` stories."""
        scores, matched = np.zeros(size), np.zeros(size, dtype=bool)
        scores[self.ids] = self.scores
        matched[self.ids] = True
        return scores, matched


@dataclass(frozen=True)
class _Count:
    """A number kept in the postings cache."""

    value: int
    nbytes: int = 200


def unscored(ids: np.ndarray) -> Found:
    """These stories, each scoring zero."""
    return Found(ids, np.zeros(len(ids)))


NOTHING = unscored(np.zeros(0, dtype=np.int64))


class Evaluation:
    """Evaluates a query over a :class:`Corpus`; see the module docstring for the semantics."""

    def __init__(self, searcher: Searcher, corpus: Corpus, time_limit: float) -> None:
        self.searcher = searcher
        self.reader = searcher.reader()
        self.corpus = corpus
        #: The time limit counts this thread's CPU time, the query's work: not the time it waits for a
        #: core or the interpreter while other requests run, so that load alone refuses nothing.
        self.deadline = time.thread_time() + time_limit
        self._postings: dict[tuple[str, str], JoinedPostings] = {}
        self._with_term: dict[tuple[tuple[str, ...], str], int] = {}
        self._leaves: dict[tuple[str, str], list[Any]] = {}  # the segments with a term read
        self._phrase_words: set[tuple[str, str]] = set()  # (field, word) of the phrases evaluated

    def _read(self, fieldname: str, text: str | bytes) -> JoinedPostings:
        """A term's postings, read once per query even when the shared cache has no room for them."""
        key = (fieldname, _text(text))
        if key not in self._postings:
            self._postings[key] = self._join(*key)
        return self._postings[key]

    def _join(self, fieldname: str, text: str) -> JoinedPostings:
        """The term's postings in every segment, each from the shared cache (or read and kept there).

        Joined per query, not kept: a second cache of joined postings held
        on to segments' postings the first had let go (the mixed-load
        bench's memory grew by some 150 MiB more).  A segment without the
        term keeps empty postings: asking a segment for a term costs more
        than the cache's look-up.
        """
        parts, leaves = [], []
        for leaf, offset in self.reader.leaf_readers():
            key = (leaf.segment().segment_id(), fieldname, text)
            postings = self.corpus.cache.get(key, partial(self._postings_in, leaf, fieldname, text))
            if len(postings.ids):
                parts.append((postings, offset))
                leaves.append(leaf)
        self._leaves[(fieldname, text)] = leaves
        return JoinedPostings(parts)

    def _postings_in(self, leaf: Any, fieldname: str, text: str) -> Postings:
        """A segment's postings of a term (empty when it has none); a phrase's words' positions are
        read with them (in the same reading of the blocks) and kept in the shared cache."""
        if (fieldname, text) not in leaf:
            return NO_POSTINGS
        if (fieldname, text) not in self._phrase_words:
            return read_postings(leaf, fieldname, text)
        postings, positions = read_both(leaf, fieldname, text)
        self.corpus.cache.get(_positions_key(leaf, fieldname, text), lambda: positions)
        return postings

    def _positions_at(self, fieldname: str, text: str, at: np.ndarray) -> Positions:
        """The positions of the term's postings ``at`` (ascending, into :meth:`_read`'s), each segment's
        as :meth:`_positions_in` reads them."""
        joined = self._read(fieldname, text)
        leaves = self._leaves[(fieldname, text)]
        readers = [partial(self._positions_in, leaf, fieldname, text, part) for leaf, part in zip(leaves, joined.parts)]
        return joined_positions_at(readers, joined.bounds, at)

    def _positions_in(self, leaf: Any, fieldname: str, text: str, postings: Postings, at: np.ndarray) -> Positions:
        """The positions of a segment's postings ``at`` of the term: from the shared cache if it keeps the
        term's (read with its postings); else, if they are in few of its blocks (:data:`_FEW_BLOCKS`),
        read from those alone; else all its positions are read, and kept in the cache."""
        key = _positions_key(leaf, fieldname, text)
        kept = self.corpus.cache.peek(key)
        if kept is None and blocks_holding(postings, at) < _FEW_BLOCKS * len(postings.blocks):
            return read_positions_at(leaf, fieldname, text, postings, at)
        if not isinstance(kept, Positions):
            kept = self.corpus.cache.get(key, partial(read_all_positions, leaf, fieldname, text))
        return kept.positions_at(at)

    def _check_time(self) -> None:
        if time.thread_time() > self.deadline:
            raise QueryTimeout("the query took too long to run; make it more specific")

    def found(self, q: wq.Query) -> Found:
        """The live stories ``q`` matches, and their scores."""
        self._phrase_words |= _phrase_words(q)
        found = self._eval(q)
        return found.take(self.corpus.alive[found.ids])

    def top(self, q: wq.Query, depth: int, grouped: np.ndarray) -> Found:
        """:meth:`found`, but where ``q`` is free text, only the stories that can be among the
        ``depth`` best are scored (:mod:`.blocks`), and those where ``grouped``, a flag per story,
        is set (near-duplicates: each group shows its best-ranked story, and counts in its facets).
        Where its words are common, only those are found: the total and the facets are then
        estimated from a sample (:attr:`Found.sample`).

        The others keep score ``-inf`` (or are left out), and the result's
        ``floor`` says that they score below it: if fewer than ``depth`` of
        the stories kept (after dates and near-duplicates) score at least
        that, the caller asks :meth:`found` instead (:meth:`Found.exact_top`).
        """
        words = _free_words(q)
        if words is None:
            return self.found(q)
        self._phrase_words |= _phrase_words(q)
        items = [self._item(w) for w in words]
        scale = q.scale if isinstance(q, wq.Or) and len(words) > 1 else None
        top = self._blocks_top(items, scale, depth)
        if max(item.most for item in items) >= ESTIMATE_FROM:
            blocks = sample_blocks(self.corpus.size)
            found = [item.sample or self._item_in(item, blocks) for item in items]
            sample = _merge([f.ids for f in found], self.corpus.size)[0]
            return Found(top.ids, top.scores, top.floor, unscored(sample), sample_share(self.corpus.alive))
        matches = [self._item_every(item) for item in items]
        every = _merge(matches, self.corpus.size)[0]
        scores = np.full(len(every), -math.inf)
        scores[np.searchsorted(every, top.ids)] = top.scores
        also = every[grouped[every] & ~np.isfinite(scores)]  # so that each group shows its best story
        if len(also):
            parts = [self._item_at(item, also[_lookup(also, ids)[0]]) for item, ids in zip(items, matches)]
            extra = self._or(parts, scale)
            scores[np.searchsorted(every, extra.ids)] = extra.scores
        return Found(every, scores, top.floor)

    def _item(self, word: Word) -> _Item:
        """A word or phrase of free text with its words' scores and block maxima.

        A phrase is evaluated whole (its exact scores give its block maxima)
        unless its words are common and the sample's blocks say it is in
        :data:`.blocks.ESTIMATE_FROM` stories or more: then its block maxima
        are the sums of its words', and it is checked only in the blocks scored.
        Which way is chosen by how many stories have each word (counted once a
        commit): a phrase evaluated whole never scores its words' every story.
        """
        first = word.subqueries[0]
        if not isinstance(first, wq.Phrase):
            text = _text(first.text)
            scored = self._word_blocks(word, text)
            return _Item(word, [(text, scored)], scored.blocks, scored.maxima.astype(np.float64), scored.with_word)
        texts = [_text(w) for w in first.words]
        if min(self._stories_with(_fields(word), text) for text in texts) >= ESTIMATE_FROM:
            item = self._phrase_by_blocks(word, texts)
            if item is not None:
                return item
        found = self.found(word)
        whole = ScoredStories.of(found.ids, found.scores)
        return _Item(word, [], whole.blocks, whole.maxima.astype(np.float64), len(found.ids), whole=whole)

    def _phrase_by_blocks(self, word: Word, texts: list[str]) -> _Item | None:
        """A phrase of common words bounded in each block by the sum of its words' maxima, with the
        stories it matches in the sample's blocks; None if those say it is in fewer than
        :data:`.blocks.ESTIMATE_FROM` stories."""
        scored = [(text, self._word_blocks(word, text)) for text in texts]
        blocks, maxima = scored[0][1].blocks, scored[0][1].maxima.astype(np.float64)
        for _, other in scored[1:]:  # blocks with all its words, the sum of their maxima
            mine, theirs = _lookup(blocks, other.blocks)
            blocks, maxima = blocks[mine], maxima[mine] + other.maxima[theirs[mine]]
        item = _Item(word, scored, blocks, maxima, min(s.with_word for _, s in scored))
        item.sample = self._item_in(item, sample_blocks(self.corpus.size))
        return item if len(item.sample.ids) * sample_share(self.corpus.alive) >= ESTIMATE_FROM else None

    def _item_in(self, item: _Item, blocks: np.ndarray) -> Found:
        """The stories of ``blocks`` (ascending) the word or phrase matches, and its scores there."""
        if item.whole is not None:
            at = item.whole.in_blocks(blocks)
            return Found(item.whole.ids[at], item.whole.scores[at])
        if len(item.scored) == 1:
            return self._word_in(item.word, *item.scored[0], blocks)
        candidates = self._word_in(item.word, *item.scored[0], blocks).ids
        for text, scored in item.scored[1:]:
            candidates = candidates[_lookup(candidates, self._word_in(item.word, text, scored, blocks).ids)[0]]
        found = []
        for child in item.word.subqueries:
            here = candidates
            for word in child.words:
                here = here[_lookup(here, self._read(child.fieldname, word).ids)[0]]
            found.append(self._adjacent(child, here))
        return self._item_at(item, _merge(found, self.corpus.size)[0])

    def _item_at(self, item: _Item, ids: np.ndarray) -> Found:
        """The stories ``ids`` (ascending, each matched by the word or phrase) and its scores there."""
        if item.whole is not None:
            return Found(ids, item.whole.scores[_positions_in(ids, item.whole.ids)])
        blocks = np.unique(ids // BLOCK)
        scores = []
        for text, scored in item.scored:
            found = self._word_in(item.word, text, scored, blocks)
            scores.append(found.scores[_positions_in(ids, found.ids)])
        return Found(ids, _total(scores))

    def _item_every(self, item: _Item) -> np.ndarray:
        """Every story the word or phrase matches."""
        if item.whole is not None:
            return item.whole.ids
        if len(item.scored) > 1:
            return self.found(item.word).ids
        ids = _merge([self._read(f, item.scored[0][0]).ids for f, _ in _fields(item.word)], self.corpus.size)[0]
        return ids[self.corpus.alive[ids]]

    def _word_blocks(self, word: Word, text: str) -> WordBlocks:
        """A free-text word's (or a phrase's word's) block maxima in this commit, in the fields of
        ``word`` and with its weight (kept in the shared cache)."""
        fields = _fields(word)
        key = ("blocks", self.reader.generation(), tuple(fields), text, word.boost)

        def load() -> WordBlocks:
            ids, tf, with_term = self._frequencies(fields, text)
            scores = self._saturated(fields, tf, ids, with_term, word.boost)
            live = self.corpus.alive[ids]
            return WordBlocks.of(ids[live], scores[live])

        return self.corpus.cache.get(key, load)

    def _word_in(self, word: Word, text: str, scored: WordBlocks, blocks: np.ndarray) -> Found:
        """The live stories of ``blocks`` (ascending) with the word, and their scores, as :meth:`_bm25f`
        scores them: its frequencies gathered from the postings of those blocks only."""
        fields = _fields(word)
        lows, highs = block_ranges(blocks)
        parts = [self._read(fieldname, text).within(lows, highs) for fieldname, _ in fields]
        ids, where = _merge([ids for ids, _ in parts], self.corpus.size)
        tf = np.zeros(len(ids))
        for (_, weight), (_, weights), at in zip(fields, parts, where):
            tf[at] += weight * weights
        live = self.corpus.alive[ids]
        ids, tf = ids[live], tf[live]
        return Found(ids, self._saturated(fields, tf, ids, scored.with_word, word.boost))

    def _blocks_top(self, items: list[_Item], scale: float | None, depth: int) -> Found:
        """The stories of the blocks that can hold the ``depth`` best of the free text, scored as :meth:`_or`
        scores them, best bound first, a batch of blocks at a time; ``floor`` above the rest's scores."""
        blocks = block_count(self.corpus.size)
        bound = np.zeros(blocks)
        present = np.zeros(blocks, dtype=np.int32)
        for item in items:  # in the words' order, as their scores are added
            bound[item.blocks] += item.maxima
            present[item.blocks] += 1
        if scale:
            bound = _coordinated(bound, present, scale, len(items))
        filled = np.flatnonzero(present)
        order = filled[np.argsort(-bound[filled], kind="stable")]
        found: list[Found] = []
        done, batch = 0, _FIRST_BATCH
        while done < len(order):
            self._check_time()
            chosen = np.sort(order[done : done + batch])
            done, batch = done + len(chosen), batch * 2
            found.append(self._or([self._item_in(item, chosen) for item in items], scale))
            scores = np.concatenate([f.scores for f in found])
            if done < len(order) and len(scores) >= depth and _kth(scores, depth) > bound[order[done]]:
                break
        ids = np.concatenate([f.ids for f in found]) if found else np.zeros(0, dtype=np.int64)
        scores = np.concatenate([f.scores for f in found]) if found else np.zeros(0)
        floor = float(bound[order[done]]) if done < len(order) else -math.inf
        ordered = np.argsort(ids, kind="stable")
        return Found(ids[ordered], scores[ordered], floor)

    def run(self, q: wq.Query) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, matched)`` arrays over every story for ``q``, deleted documents excluded."""
        return self.found(q).dense(self.corpus.size)

    def _eval(self, q: wq.Query) -> Found:
        self._check_time()
        return self._node(q)

    @singledispatchmethod
    def _node(self, q: wq.Query) -> Found:
        """Any node without an array evaluation: Whoosh's own matcher says which stories match."""
        return self._fallback(q)

    @_node.register
    def _term(self, q: wq.Term) -> Found:
        return self._bm25f([(q.fieldname, 1.0)], q.text, q.boost)

    @_node.register
    def _multi_term(self, q: wq.MultiTerm) -> Found:
        if q.fieldname not in TEXT_FIELDS:
            return self._fallback(q)
        return self._or([self._bm25f([(q.fieldname, 1.0)], t, q.boost) for t in expansions(q, self.reader)], None)

    @_node.register
    def _any_of(self, q: wq.Or) -> Found:
        return self._or([self._eval(c) for c in q.subqueries], q.scale)

    @_node.register
    def _and_not(self, q: wq.AndNot) -> Found:
        return _without(self._eval(q.a), self._eval(q.b).ids)

    @_node.register
    def _and_maybe(self, q: wq.AndMaybe) -> Found:
        found, extra = self._eval(q.a), self._eval(q.b)
        hit, at = _lookup(found.ids, extra.ids)
        scores = found.scores.copy()
        scores[hit] += extra.scores[at[hit]]
        return Found(found.ids, scores)

    @_node.register
    def _require(self, q: wq.Require) -> Found:
        found = self._eval(q.a)
        return found.take(_lookup(found.ids, self._eval(q.b).ids)[0])

    @_node.register
    def _all_of(self, q: wq.And) -> Found:
        return self._and(q.subqueries)

    @_node.register
    def _numeric_range(self, q: wq.NumericRange) -> Found:
        return self._published(q) if q.fieldname == "published" else self._fallback(q)

    @_node.register(type(wq.NullQuery))
    def _nothing(self, q: wq.Query) -> Found:
        return NOTHING

    @_node.register
    def _not(self, q: wq.Not) -> Found:
        """What query.py left as an alternative: every story without it."""
        return _without(self._everything(), self._eval(q.query).ids)

    @_node.register
    def _every_story(self, q: EveryStory) -> Found:
        return self._everything()

    def _everything(self) -> Found:
        return unscored(np.arange(self.corpus.size, dtype=np.int64))

    def _bm25f(self, fields: list[tuple[str, float]], text: str | bytes, boost: float) -> Found:
        """One term's BM25F over ``fields`` (name, weight), in every story with it in any of them."""
        ids, tf, with_term = self._frequencies(fields, _text(text))
        return Found(ids, self._saturated(fields, tf, ids, with_term, boost))

    def _frequencies(self, fields: list[tuple[str, float]], text: str) -> tuple[np.ndarray, np.ndarray, int]:
        """The stories with the term in any of ``fields``, its weighted frequency in each, how many live."""
        parts = [self._read(fieldname, text) for fieldname, _ in fields]
        ids, where = _merge([p.ids for p in parts], self.corpus.size)
        tf = np.zeros(len(ids))
        for (_, weight), postings, at in zip(fields, parts, where):
            tf[at] += weight * postings.weights
        with_term = int(np.count_nonzero(self.corpus.alive[ids]))  # deleted stories' postings stay until a merge
        self._with_term[(tuple(f for f, _ in fields), text)] = with_term
        return ids, tf, with_term

    def _bm25f_at(self, fields: list[tuple[str, float]], text: str, boost: float, ids: np.ndarray) -> np.ndarray:
        """One term's BM25F over ``fields`` in the stories ``ids`` (ascending; each with the term)."""
        tf = np.zeros(len(ids))
        for fieldname, weight in fields:
            postings = self._read(fieldname, text)
            hit, at = _lookup(ids, postings.ids)
            tf[hit] += weight * postings.weights[at[hit]]
        return self._saturated(fields, tf, ids, self._stories_with(fields, text), boost)

    def _stories_with(self, fields: list[tuple[str, float]], text: str) -> int:
        """How many live stories have the term in any of ``fields`` (counted once a commit, kept in the shared cache)."""
        key = (tuple(f for f, _ in fields), text)
        if key not in self._with_term:

            def count() -> _Count:
                ids = _union([self._read(f, text).ids for f, _ in fields], self.corpus.size)
                return _Count(int(np.count_nonzero(self.corpus.alive[ids])))

            self._with_term[key] = self.corpus.cache.get(("stories with", self.reader.generation(), *key), count).value
        return self._with_term[key]

    def _saturated(
        self, fields: list[tuple[str, float]], tf: np.ndarray, ids: np.ndarray, with_term: int, boost: float
    ) -> np.ndarray:
        """BM25F of the weighted frequencies ``tf`` in the stories ``ids``."""
        if len(ids) == 0:
            return np.zeros(0)
        length = _total([weight * self.corpus.lengths[f][ids] for f, weight in fields])
        average = sum(weight * self.corpus.average_length[f] for f, weight in fields)
        return bm25f(tf, length, average, self.reader.doc_count(), with_term, boost)

    @_node.register
    def _word(self, q: Word) -> Found:
        fields = _fields(q)
        first = q.subqueries[0]
        if not isinstance(first, wq.Phrase):
            return self._bm25f(fields, first.text, q.boost)
        ids = _merge([self._adjacent(c, self._has_all(c.fieldname, c.words)) for c in q.subqueries], self.corpus.size)[
            0
        ]
        return Found(ids, _total([self._bm25f_at(fields, _text(w), q.boost, ids) for w in first.words]))

    def _has_all(self, fieldname: str, words: list[str]) -> np.ndarray:
        """The stories with every one of ``words`` in the field (rarest first, each a :func:`_lookup`)."""
        lists = sorted((self._read(fieldname, w).ids for w in words), key=len)
        ids = lists[0]
        for other in lists[1:]:
            ids = ids[_lookup(ids, other)[0]]
        return ids

    def _or(self, parts: list[Found], scale: float | None) -> Found:
        """The union of ``parts``, their scores summed in order (and scaled by how many matched)."""
        if not parts:
            return NOTHING
        ids, where = _merge([p.ids for p in parts], self.corpus.size)
        scores = np.zeros(len(ids))
        for part, at in zip(parts, where):
            scores[at] += part.scores
        if scale and len(parts) > 1:
            count = np.zeros(len(ids), dtype=np.int32)
            for at in where:
                count[at] += 1
            scores = _coordinated(scores, count, scale, len(parts))
        return Found(ids, scores)

    def _and(self, subqueries: list[wq.Query]) -> Found:
        excluded: list[np.ndarray] = []
        children: list[Found] = []
        for child in subqueries:
            if isinstance(child, wq.Not):
                excluded.append(self._eval(child.query).ids)
            else:
                children.append(self._eval(child))
        ids = min((c.ids for c in children), key=len) if children else self._everything().ids
        for child in children:
            ids = ids[_lookup(ids, child.ids)[0]]
        for other in excluded:
            ids = ids[~_lookup(ids, other)[0]]
        scores = np.zeros(len(ids))
        for child in children:
            scores += child.scores[_lookup(ids, child.ids)[1]]
        return Found(ids, scores)

    @_node.register
    def _phrase(self, q: wq.Phrase) -> Found:
        """Stories with the words adjacent in the field, scored as those words (BM25 each, summed)."""
        ids = self._adjacent(q, self._has_all(q.fieldname, q.words))
        scores = np.zeros(len(ids))
        for word in q.words:
            scores += self._bm25f_at([(q.fieldname, 1.0)], _text(word), q.boost, ids)
        return Found(ids, scores)

    def _adjacent(self, q: wq.Phrase, candidates: np.ndarray) -> np.ndarray:
        """Of the ``candidates`` (ascending stories with all of q's words), those where they are consecutive.

        The candidates' positions come from the words' cached postings and
        are compared as arrays: many times faster than stepping Whoosh's
        phrase matcher through each candidate.
        """
        candidates = candidates[self.corpus.alive[candidates]].astype(np.int64)
        if len(candidates) == 0:
            return candidates
        if q.slop != 1:  # "words"~N: let Whoosh judge the distances
            return candidates[_lookup(candidates, self._fallback(q).ids)[0]]
        keys: np.ndarray | None = None
        for offset, word in enumerate(q.words):
            self._check_time()
            at = _lookup(candidates, self._read(q.fieldname, word).ids)[1]
            positions = self._positions_at(q.fieldname, _text(word), at)
            docs = np.repeat(candidates, np.diff(positions.starts))
            # (document, position where the phrase would start) as one integer: ascending
            # and distinct, as the candidates and each posting's positions are
            found = docs * _POSITION_SPAN + (positions.flat.astype(np.int64) - offset)
            keys = found if keys is None else _common(keys, found)
            if keys.size == 0:
                break
        if keys is None or keys.size == 0:
            return candidates[:0]
        docs = keys // _POSITION_SPAN
        return docs[np.r_[True, docs[1:] != docs[:-1]]]

    def _published(self, q: wq.NumericRange) -> Found:
        """A date range (Whoosh parses ``published:[..]`` into ticks, as :attr:`Corpus.ticks` holds them)."""
        ticks = self.corpus.ticks
        matched = ticks >= 0  # undated stories are in no range
        if q.start is not None:
            matched &= (ticks > q.start) if q.startexcl else (ticks >= q.start)
        if q.end is not None:
            matched &= (ticks < q.end) if q.endexcl else (ticks <= q.end)
        return unscored(np.flatnonzero(matched))

    def _fallback(self, q: wq.Query) -> Found:
        return unscored(np.array(sorted(self.searcher.docs_for_query(q)), dtype=np.int64))


def _phrase_words(q: wq.Query) -> set[tuple[str, str]]:
    """The (field, word) of every phrase in ``q``: their positions are read with their postings."""
    if isinstance(q, wq.Phrase):
        return {(q.fieldname, _text(w)) for w in q.words}
    return set().union(*(_phrase_words(c) for c in q.children()))


def _positions_key(leaf: Any, fieldname: str, text: str) -> tuple[str, str, str, str]:
    """Where the shared cache keeps a segment's positions of a term."""
    return (leaf.segment().segment_id(), fieldname, text, "positions")


def _free_words(q: wq.Query) -> list[Word] | None:
    """The words and phrases of ``q`` if it is free text, as :mod:`.query` makes it (phrases of adjacent words)."""
    words = [q] if isinstance(q, Word) else list(q.subqueries) if type(q) is wq.Or else []
    free = all(isinstance(w, Word) and w.boost > 0 and _plain(w.subqueries[0]) for w in words)
    return words if words and free else None


def _plain(q: wq.Query) -> bool:
    """A word, or a phrase of adjacent words, in one field."""
    return isinstance(q, wq.Term) or (isinstance(q, wq.Phrase) and q.slop == 1 and len(q.words) > 1)


@dataclass
class _Item:
    """A word or phrase of free text (:meth:`Evaluation._item`): its words, the blocks where it
    may match and a bound of its score in each, and at most how many stories it matches (for a word
    or a phrase evaluated whole, exactly how many)."""

    word: Word
    #: Its words (text) and their blocks (none for a phrase evaluated whole).
    scored: list[tuple[str, WordBlocks]]
    blocks: np.ndarray
    maxima: np.ndarray
    most: int
    #: A phrase evaluated whole: its stories, with its scores in place of frequencies.
    whole: ScoredStories | None = None
    #: The stories it matches in the sample's blocks, once counted.
    sample: Found | None = None


def _kth(scores: np.ndarray, k: int) -> float:
    """The ``k``-th highest of ``scores``."""
    return float(-np.partition(-scores, k - 1)[k - 1])


def _fields(word: Word) -> list[tuple[str, float]]:
    """A free-text word's fields and their weights."""
    return [(c.fieldname, c.boost) for c in word.subqueries]


def _positions_in(ids: np.ndarray, within: np.ndarray) -> np.ndarray:
    """Where those of ``ids`` that ``within`` (ascending) has are in it."""
    hit, at = _lookup(ids, within)
    return at[hit]


def _coordinated(scores: np.ndarray, count: np.ndarray, scale: float, words: int) -> np.ndarray:
    """Free-text ``scores`` with the bonus for matching ``count`` of the ``words`` (see :meth:`Evaluation._or`)."""
    return scores * (1.0 + scale * (count - 1).clip(min=0) / (words - 1))


def _text(text: str | bytes) -> str:
    return text if isinstance(text, str) else text.decode("utf-8")


def _merge(lists: list[np.ndarray], size: int) -> tuple[np.ndarray, list[np.ndarray | slice]]:
    """The union of ascending, distinct arrays of document numbers under ``size``, and where each array's items are in it.

    Short lists are merged by a stable sort of the arrays end to end (a
    merge of sorted runs, linear); long ones (past :data:`_DENSE_SHARE` of
    the collection together) by flags over the collection, 2 to 3 times
    faster there (measured on a million: 6 against 14 ms for 300,000 and
    500,000 postings).
    """
    if len(lists) == 1:
        return lists[0], [slice(None)]
    if _dense(lists, size):
        union = _union(lists, size)
        index = np.empty(size, dtype=np.int64)  # only the union's entries are written and read
        index[union] = np.arange(len(union))
        return union, [index[array] for array in lists]
    joined = np.concatenate(lists)
    order = np.argsort(joined, kind="stable")
    ordered = joined[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]] if len(ordered) else np.zeros(0, dtype=bool)
    where = np.empty(len(joined), dtype=np.int64)
    where[order] = np.cumsum(new) - 1
    return ordered[new], list(np.split(where, np.cumsum([len(a) for a in lists[:-1]])))


def _union(lists: list[np.ndarray], size: int) -> np.ndarray:
    """:func:`_merge`'s union alone, without where each array's items are in it (a word's stories in
    any field, counted)."""
    if not _dense(lists, size):
        return _merge(lists, size)[0]
    flags = np.zeros(size, dtype=bool)
    for array in lists:
        flags[array] = True
    return np.flatnonzero(flags)


def _dense(lists: list[np.ndarray], size: int) -> bool:
    """Whether arrays of document numbers are long enough together to be merged by flags over the collection."""
    return sum(len(a) for a in lists) > _DENSE_SHARE * size


def _lookup(ids: np.ndarray, within: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``ids``: whether it is in ``within`` (ascending), and where (where found).

    A binary search each, or, for many ``ids`` among few document numbers
    (more than one in :data:`_DENSE_LOOKUP` of the largest), an index over
    the document numbers: 5 to 10 times faster for a common word's stories
    looked up in another's.
    """
    if len(within) == 0:
        return np.zeros(len(ids), dtype=bool), np.zeros(len(ids), dtype=np.int64)
    if len(ids) and len(ids) * _DENSE_LOOKUP > int(within[-1]) and min(int(within[0]), int(ids.min())) >= 0:
        index = np.full(max(int(within[-1]), int(ids.max())) + 1, -1, dtype=np.int32)
        index[within] = np.arange(len(within), dtype=np.int32)
        at = index[ids].astype(np.int64)
        hit = at >= 0
        at[~hit] = 0
        return hit, at
    at = np.searchsorted(within, ids)
    at[at == len(within)] = len(within) - 1
    return within[at] == ids, at


def _without(found: Found, excluded: np.ndarray) -> Found:
    return found.take(~_lookup(found.ids, excluded)[0])


def _common(keys: np.ndarray, found: np.ndarray) -> np.ndarray:
    """The ``keys`` also in ``found`` (both ascending and distinct): a binary search each when they are
    few, else a stable sort of the two end to end (a merge of two sorted runs, linear: 5 to 10 times
    faster for the millions of positions of a phrase of common words)."""
    if found.size == 0:
        return found
    if len(keys) * 8 < len(found):
        return keys[_lookup(keys, found)[0]]
    both = np.sort(np.concatenate((keys, found)), kind="stable")
    return both[1:][both[1:] == both[:-1]]


def _total(arrays: list[np.ndarray]) -> np.ndarray:
    """The element-wise sum of same-shaped arrays, added in order into a copy of the first."""
    out = arrays[0].copy()
    for array in arrays[1:]:
        out += array
    return out


__all__ = ["NOTHING", "Evaluation", "Found", "unscored"]
