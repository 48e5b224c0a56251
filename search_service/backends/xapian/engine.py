"""XapianEngine: the engine protocol over one Xapian database or shards of one.

Ranking is Xapian's BM25 with the Whoosh engine's k1 and b over the
unprefixed terms (BM25F, see :mod:`.document`); queries are translated by
:mod:`.query`.  What Xapian's remote backend does not offer is built from
the shards' term lists: the spelling suggestion (the nearest indexed word,
chosen by :func:`search_service.spelling.closest`) and autocomplete.

Each call reopens this thread's databases at their latest commit, so a
write through any frontend is seen by the next call of every other.  A
network error in the middle of a call (a shard's copy died) reconnects,
failing over to another copy, and runs the call again once.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from datetime import time as dtime
from itertools import islice
from typing import TypeVar

import xapian

from ...config import Limits
from ...engine import Progress
from ...model import (
    CollectionStats,
    EngineUnavailable,
    Hit,
    IndexBusyError,
    IndexSummary,
    IndexWriteError,
    SearchRequest,
    SearchResult,
    StoredStory,
    check_request,
)
from ...spelling import distance
from ...stories import Story
from ...suggestions import (
    SUGGEST_BELOW,
    SUGGEST_SCAN,
    SURFACE_STORIES,
    commonest_spelling,
    completion_prefix,
    completions,
    spelling_fix,
)
from ..whoosh.similarity import K1, B
from .document import (
    BODY,
    HEADLINE,
    ID,
    SLOT_MONTH,
    SLOT_NEGATED,
    SLOT_SECONDS,
    fields_of,
    from_seconds,
    seconds,
    stored_story,
    to_document,
)
from .indexer import index_paths
from .query import Parser, value_range
from .shards import Cluster, Local, View, shard_of

T = TypeVar("T")

#: As the Whoosh engine (backends/whoosh/engine.py).
RECENCY_HALF_LIFE_DAYS = 30.0
RECENCY_WEIGHT = 1.0
RELATED_TERMS = 12
#: A cached list of indexed words (spelling candidates) is read again after this many seconds.
WORDS_TTL = 60.0
#: A cache of surface words is emptied when it holds this many.
SURFACE_CACHE = 50_000


class XapianEngine:
    """Searches and writes one Xapian database or its shards.  Thread-safe."""

    def __init__(
        self,
        store: Local | Cluster,
        limits: Limits | None = None,
        *,
        write_timeout: float = 10.0,
        partial: bool = True,
        shard: tuple[int, int] | None = None,
    ) -> None:
        self.store = store
        self.shard = shard
        self.limits = limits or Limits()
        self.write_timeout = write_timeout
        self.partial = partial
        self._parser = Parser(self.limits)
        self._surface: dict[str, str | None] = {}
        self._words: dict[str, tuple[float, list[tuple[str, int]]]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ reading

    def _read(self, work: Callable[[View], T]) -> T:
        """``work`` over this thread's databases; once more after a network error, over the copies that answer."""
        for attempt in range(2):
            view = self.store.view()
            if view.failed == view.total:
                raise EngineUnavailable(f"none of the {view.total} shards answered; try again shortly")
            if view.failed and not self.partial:
                raise EngineUnavailable(
                    f"{view.failed} of {view.total} shards did not answer, and partial results are off; "
                    "try again shortly"
                )
            try:
                return work(view)
            except (xapian.NetworkError, xapian.DatabaseModifiedError):
                if attempt:
                    raise EngineUnavailable("the search engine did not answer; try again shortly") from None
                self.store.drop(view)
        raise AssertionError("unreachable")

    def _shards(self, view: View) -> dict[str, int] | None:
        return {"total": view.total, "failed": view.failed} if self.store.remote else None

    def _enquire(self, db: xapian.Database, query: xapian.Query) -> xapian.Enquire:
        """An Enquire ranking by BM25 (k1 and b as the Whoosh engine; no query-frequency saturation, no
        minimum length), which stops matching after the time limit (the best found by then are shown)."""
        enquire = xapian.Enquire(db)
        enquire.set_query(query)
        enquire.set_weighting_scheme(xapian.BM25Weight(K1, 0.0, 0.0, B, 0.0))
        enquire.set_time_limit(self.limits.time_limit)
        return enquire

    # ------------------------------------------------------------ search

    def search(self, request: SearchRequest) -> SearchResult:
        """Run ``request``; raise :class:`QueryError` for anything a user must change.

        A query that finds nothing is run as its suggestion instead, if that
        finds stories (``corrected_from``), unless ``request.spell`` is off.
        """
        started = time.perf_counter()
        check_request(request, self.limits)
        result = self._read(lambda view: self._search(view, request, started))
        if request.spell and not result.total and result.suggestion:
            fixed = replace(request, q=result.suggestion)
            corrected = self._read(lambda view: self._search(view, fixed, started))
            if corrected.total:
                corrected.corrected_from = request.q
                return corrected
        return result

    def _search(self, view: View, request: SearchRequest, started: float) -> SearchResult:
        db = view.db
        translated = self._parser.translate(request.q, db)
        query = translated.query
        if request.date_from or request.date_to:
            low = seconds(datetime.combine(request.date_from, dtime.min)) if request.date_from else None
            high = seconds(datetime.combine(request.date_to, dtime.max)) if request.date_to else None
            query = xapian.Query(xapian.Query.OP_FILTER, query, value_range(low, high))
        enquire = self._enquire(db, query)
        spy = xapian.ValueCountMatchSpy(SLOT_MONTH)
        enquire.add_matchspy(spy)
        depth = request.page * request.per_page
        everything = max(db.get_doccount(), 1)
        ranked: list[tuple[xapian.Document, float | None]]
        if request.sort in ("newest", "oldest"):
            # Descending, so undated stories (no value) come last either way.
            enquire.set_sort_by_value(SLOT_SECONDS if request.sort == "newest" else SLOT_NEGATED, True)
            enquire.set_weighting_scheme(xapian.BoolWeight())
            mset = _fetched(enquire.get_mset(depth - request.per_page, request.per_page, everything))
            ranked = [(item.document, None) for item in mset]
        elif request.sort == "recent":
            mset, ranked = _by_recency(enquire, db, depth, everything)
            ranked = ranked[depth - request.per_page : depth]
        else:
            mset = _fetched(enquire.get_mset(depth - request.per_page, request.per_page, everything))
            ranked = [(item.document, item.weight) for item in mset]
        total = mset.get_matches_estimated()
        terms = translated.highlight_terms
        return SearchResult(
            query=request.q,
            total=total,
            page=request.page,
            per_page=request.per_page,
            took_ms=(time.perf_counter() - started) * 1000.0,
            hits=[_hit(doc, score, terms) for doc, score in ranked],
            suggestion=self._suggestion(db, request.q) if total < SUGGEST_BELOW else None,
            facets=_facets(spy),
            sort=request.sort,
            shards=self._shards(view),
        )

    def highlight_terms(self, q: str) -> dict[str, frozenset[str]]:
        """The terms ``q`` would mark, per text field; raises QueryError like :meth:`search`."""
        return self._read(lambda view: self._parser.translate(q, view.db).highlight_terms)

    # ------------------------------------------------------------ suggestions

    def _suggestion(self, db: xapian.Database, text: str) -> str | None:
        """A spelling fix for ``text`` (:func:`.suggestions.spelling_fix`) from the indexed words."""
        return spelling_fix(
            text,
            lambda term: db.get_termfreq(term) > 0,
            lambda term: [(w, n) for w, n in self._indexed_words(db, term[0]) if _near(term, w)],
            lambda term: self._surface_word(db, BODY, term),
        )

    def _indexed_words(self, db: xapian.Database, first: str) -> list[tuple[str, int]]:
        """The indexed words (unprefixed, alphabetic) starting with ``first`` and their story counts; cached."""
        now = time.monotonic()
        with self._lock:
            cached = self._words.get(first)
        if cached and now - cached[0] < WORDS_TTL:
            return cached[1]
        words = [(t.term.decode(), t.termfreq) for t in db.allterms(first)]
        words = [(w, n) for w, n in words if w.isalpha()]
        with self._lock:
            self._words[first] = (now, words)
        return words

    def _surface_word(self, db: xapian.Database, prefix: str, term: str) -> str | None:
        """The commonest real word whose term is ``term`` in the first stories with it (cached)."""
        key = prefix + term
        if key not in self._surface:
            field = "headline" if prefix == HEADLINE else "body"
            postings = islice(db.postlist(key), SURFACE_STORIES)
            word = commonest_spelling((fields_of(db.get_document(p.docid))[field] for p in postings), term)
            with self._lock:
                if len(self._surface) >= SURFACE_CACHE:
                    self._surface.clear()
                self._surface[key] = word
        return self._surface.get(key)

    def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        """Completions of the last word of ``prefix``, most common first (for autocomplete)."""
        split = completion_prefix(prefix, self.limits.max_query_chars)
        if split is None:
            return []
        head, start = split
        return self._read(lambda view: self._suggest(view.db, head, start, limit))

    def _suggest(self, db: xapian.Database, head: str, start: str, limit: int) -> list[str]:
        terms = [
            (t.termfreq, t.term.decode()[len(HEADLINE) :]) for t in islice(db.allterms(HEADLINE + start), SUGGEST_SCAN)
        ]
        return completions(head, start, terms, lambda term: self._surface_word(db, HEADLINE, term), limit)

    # ------------------------------------------------------------ stories

    def story(self, story_id: str) -> StoredStory | None:
        """The stored story with this id, or None."""
        return self._read(lambda view: _map(_docid(view.db, story_id), lambda d: stored_story(view.db.get_document(d))))

    def related(self, story_id: str, limit: int = 10) -> list[Hit] | None:
        """Stories most like this one (not itself): its most characteristic terms (Bo1), searched for."""
        return self._read(lambda view: self._related(view.db, story_id, limit))

    def _related(self, db: xapian.Database, story_id: str, limit: int) -> list[Hit] | None:
        docid = _docid(db, story_id)
        if docid is None:
            return None
        rset = xapian.RSet()
        rset.add_document(docid)
        enquire = self._enquire(db, xapian.Query.MatchNothing)
        enquire.set_expansion_scheme("bo1")
        key_terms = [item.term.decode() for item in enquire.get_eset(RELATED_TERMS, rset, _Words())]
        if not key_terms:
            return []
        query = xapian.Query(
            xapian.Query.OP_AND_NOT, xapian.Query(xapian.Query.OP_OR, key_terms), xapian.Query(ID + story_id)
        )
        enquire.set_query(query)
        terms = {f: frozenset(key_terms) for f in ("headline", "body")}
        return [_hit(item.document, item.weight, terms) for item in _fetched(enquire.get_mset(0, limit))]

    def stats(self) -> CollectionStats:
        """Size and date range of the collection."""
        return self._read(self._stats)

    @staticmethod
    def _stats(view: View) -> CollectionStats:
        """The count, and the date range from the bounds Xapian keeps per value slot (no scan of the stories).

        After deletions a bound may lie beyond the stories left: Xapian
        widens bounds as stories come but does not narrow them as they go.
        """
        db = view.db
        low, high = db.get_value_lower_bound(SLOT_SECONDS), db.get_value_upper_bound(SLOT_SECONDS)
        first, last = (from_seconds(xapian.sortable_unserialise(v)) if v else None for v in (low, high))
        return CollectionStats(db.get_doccount(), first, last)

    # ------------------------------------------------------------ writes

    def _write(self, shard: int, work: Callable[[xapian.WritableDatabase], T]) -> T:
        """``work`` on shard ``shard``'s writable database, committed; waits for the lock up to the write timeout."""
        deadline = time.monotonic() + self.write_timeout
        while True:
            try:
                db = self.store.writable(shard)
                break
            except xapian.DatabaseLockError:
                if time.monotonic() > deadline:
                    raise IndexBusyError("another process is writing to the index; try again shortly") from None
                time.sleep(0.05)
        try:
            result = work(db)
            db.commit()
            return result
        finally:
            db.close()

    def upsert(self, stories: Sequence[Story]) -> IndexSummary:
        """Add or replace stories by id, each on its shard; committed (and visible everywhere) when this returns."""
        started = time.perf_counter()
        summary = IndexSummary()
        latest = {story.id: story for story in stories}
        summary.duplicates = len(stories) - len(latest)
        by_shard: dict[int, list[Story]] = {}
        for story in latest.values():
            by_shard.setdefault(shard_of(story.id, self.store.count), []).append(story)

        def work(group: list[Story]) -> Callable[[xapian.WritableDatabase], None]:
            def write(db: xapian.WritableDatabase) -> None:
                for story in group:
                    if db.get_termfreq(ID + story.id):
                        summary.updated += 1
                    else:
                        summary.added += 1
                    db.replace_document(ID + story.id, to_document(story))

            return write

        for shard, group in sorted(by_shard.items()):
            self._write(shard, work(group))
        summary.seconds = time.perf_counter() - started
        return summary

    def delete(self, story_id: str) -> bool:
        """Delete one story by id from its shard; False if there was none."""

        def work(db: xapian.WritableDatabase) -> bool:
            if not db.get_termfreq(ID + story_id):
                return False
            db.delete_document(ID + story_id)
            return True

        return self._write(shard_of(story_id, self.store.count), work)

    def index_files(
        self, paths: Sequence[str | os.PathLike[str]], *, procs: int | None = None, progress: Progress | None = None
    ) -> IndexSummary:
        """Index story files into the local database, incrementally (see :mod:`.indexer`); ``procs`` is unused."""
        if not isinstance(self.store, Local):
            raise IndexWriteError(
                "a frontend over shards does not index files: run `search-service index PATH --shard I/N` "
                "on each shard's host (docs/scale-out.md)"
            )
        return self._write(0, lambda db: index_paths(db, paths, self.shard, progress))

    def close(self) -> None:
        """Connections close with their threads; nothing to release here."""


class _Words(xapian.ExpandDecider):
    """Unprefixed terms only (words from any field), for related stories."""

    def __call__(self, term: bytes) -> bool:
        return not term[:1].isupper()


def _near(term: str, word: str) -> bool:
    return abs(len(term) - len(word)) <= 2 and distance(term, word) <= 2


def _docid(db: xapian.Database, story_id: str) -> int | None:
    for posting in db.postlist(ID + story_id):
        return posting.docid
    return None


def _map(value: int | None, fn: Callable[[int], T]) -> T | None:
    return None if value is None else fn(value)


def _hit(doc: xapian.Document, score: float | None, terms: dict[str, frozenset[str]]) -> Hit:
    return Hit.marked(stored_story(doc), score, terms)


def _by_recency(
    enquire: xapian.Enquire, db: xapian.Database, depth: int, everything: int
) -> tuple[xapian.MSet, list[tuple[xapian.Document, float | None]]]:
    """The first ``depth`` matches by relevance times the recency boost (at most 1 + RECENCY_WEIGHT).

    Matches are fetched by relevance until the one at ``depth`` after boosting
    outscores any story not fetched yet (whose boosted score is at most the
    last fetched weight times the largest boost).
    """
    upper = db.get_value_upper_bound(SLOT_SECONDS)
    newest = xapian.sortable_unserialise(upper) if upper else 0.0
    fetch = max(depth * 4, 100)
    while True:
        mset = _fetched(enquire.get_mset(0, fetch, everything))
        boosted = []
        for item in mset:
            value = item.document.get_value(SLOT_SECONDS)
            age_days = (newest - xapian.sortable_unserialise(value)) / 86400.0 if value else math.inf
            boost = 1.0 + RECENCY_WEIGHT * math.exp2(-age_days / RECENCY_HALF_LIFE_DAYS)
            boosted.append((item.weight * boost, -item.docid, item.document))
        boosted.sort(key=lambda b: (b[0], b[1]), reverse=True)
        complete = mset.size() < fetch or not boosted
        if complete or (
            len(boosted) >= depth and boosted[depth - 1][0] >= mset[mset.size() - 1].weight * (1 + RECENCY_WEIGHT)
        ):
            return mset, [(doc, score) for score, _, doc in boosted]
        fetch *= 4


def _fetched(mset: xapian.MSet) -> xapian.MSet:
    """``mset`` with its documents fetched at once (one exchange per shard, not one per hit)."""
    mset.fetch()
    return mset


def _facets(spy: xapian.ValueCountMatchSpy) -> dict[str, dict[str, int]]:
    months = {item.term.decode(): item.termfreq for item in spy.values()}
    years: dict[str, int] = {}
    for month, n in months.items():
        years[month[:4]] = years.get(month[:4], 0) + n
    return {"year": years, "month": months}


__all__ = ["XapianEngine"]
