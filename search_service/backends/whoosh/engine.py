"""The embedded Whoosh engine: ranked, filtered, highlighted, faceted results.

:class:`WhooshEngine` implements :class:`search_service.engine.Engine` over
one index folder.  It is safe to share between threads: Whoosh searchers are
not, so each thread keeps its own and reopens it when the index has a newer
commit (checked at most every :data:`REFRESH_SECONDS`), so stories indexed
while the service runs appear without a restart.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from datetime import time as dtime
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from whoosh.searching import Searcher
from whoosh.util.times import long_to_datetime

from ...analysis import normalize
from ...config import DEFAULT_CACHE_MB, Limits
from ...engine import Progress
from ...model import (
    CollectionStats,
    Hit,
    IndexSummary,
    QueryError,
    SearchRequest,
    SearchResult,
    StoredStory,
    check_request,
)
from ...spelling import correct_query
from ...stories import Story, public_source
from ...suggestions import SUGGEST_SCAN, commonest_spelling, completion_prefix, completions
from .blocks import about
from .corpus import Corpus, day_number
from .evaluation import Evaluation, Found
from .groups import Groups, StoryNumbers
from .indexer import add_stories, delete_story, index_paths, open_index
from .postings import PostingsCache
from .query import ParsedQuery, make_parser, parse
from .related import key_terms, related_scores
from .schema import TEXT_FIELDS
from .wordfiles import Dictionaries

REFRESH_SECONDS = 0.5
#: "recent" ranking: relevance times (1 + RECENCY_WEIGHT * 2^(-age / half-life)),
#: age counted from the newest story in the index (archives are not "now").
RECENCY_HALF_LIFE_DAYS = 30.0
RECENCY_WEIGHT = 1.0
#: A suggested word's spelling is the commonest in this many stories with it.
SURFACE_STORIES = 20


@dataclass
class _View:
    """One thread's searcher and when it last looked for a newer commit."""

    searcher: Searcher
    checked: float


class WhooshEngine:
    """Searches and writes one index folder.  Thread-safe; see the module docstring."""

    def __init__(
        self,
        index_dir: str | Path,
        limits: Limits | None = None,
        *,
        create: bool = False,
        write_timeout: float = 10.0,
        cache_mb: float = DEFAULT_CACHE_MB,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.limits = limits or Limits()
        self.write_timeout = write_timeout
        self._ix = open_index(self.index_dir, create=create)
        self._parser = make_parser(self._ix.schema)
        self._local = threading.local()
        self._surface: dict[str, str | None] = {}
        self._refresh_at = 0.0
        self._corpus: tuple[int, Corpus] | None = None
        self._groups: tuple[int, Groups] | None = None
        self._story_numbers = StoryNumbers()
        self._corpus_lock = threading.Lock()
        self._cache = PostingsCache(int(cache_mb * 2**20))
        self._dictionaries = Dictionaries(self.index_dir)

    # ------------------------------------------------------------ searchers

    def _refresh(self) -> None:
        """Make every thread's next call look for a newer commit now, not after the refresh interval.

        Called after a write through this engine, so a write is visible to
        its readers as soon as the call that made it returns.
        """
        self._refresh_at = time.monotonic()

    # ------------------------------------------------------------ writes

    def upsert(self, stories: Sequence[Story]) -> IndexSummary:
        """Add or replace stories by id, committed (and visible here) when this returns."""
        try:
            return add_stories(self.index_dir, stories, timeout=self.write_timeout)
        finally:
            self._refresh()

    def delete(self, story_id: str) -> bool:
        """Delete one story by id; False if there was none."""
        try:
            return delete_story(self.index_dir, story_id, timeout=self.write_timeout)
        finally:
            self._refresh()

    def index_files(
        self, paths: Sequence[str | os.PathLike[str]], *, procs: int | None = None, progress: Progress | None = None
    ) -> IndexSummary:
        """Index story files and folders incrementally (see :func:`.indexer.index_paths`)."""
        try:
            return index_paths(paths, self.index_dir, procs=procs, progress=progress)
        finally:
            self._refresh()

    def close(self) -> None:
        """Close this thread's searcher; the others are closed with their threads."""
        view: _View | None = getattr(self._local, "view", None)
        if view is not None:
            view.searcher.close()
            self._local.view = None

    def _view(self) -> _View:
        view: _View | None = getattr(self._local, "view", None)
        now = time.monotonic()
        if view is None:
            view = self._local.view = _View(self._ix.searcher(), now)
        elif now - view.checked > REFRESH_SECONDS or view.checked <= self._refresh_at:
            view.checked = now
            if not view.searcher.up_to_date():
                # A new searcher, not Searcher.refresh(): its reader reuse keeps
                # segments that a merge replaced (whoosh-reloaded 2.7.5), so
                # merged stories would be counted and found twice.
                stale = view.searcher
                view.searcher = self._ix.searcher()
                stale.close()
        return view

    def _corpus_of(self, searcher: Searcher) -> Corpus:
        """The per-document arrays of ``searcher``'s commit, shared by all threads."""
        generation = searcher.reader().generation()
        with self._corpus_lock:
            if self._corpus is None or self._corpus[0] != generation:
                self._corpus = (generation, Corpus.load(searcher, self._cache))
            return self._corpus[1]

    def _groups_of(self, searcher: Searcher, corpus: Corpus) -> Groups:
        """The near-duplicate groups of ``searcher``'s commit, shared by all threads."""
        generation = searcher.reader().generation()
        with self._corpus_lock:
            if self._groups is None or self._groups[0] != generation:
                groups = Groups.load(searcher.reader(), self.index_dir, corpus.alive, self._story_numbers)
                self._groups = (generation, groups)
            return self._groups[1]

    # ------------------------------------------------------------ search

    def search(self, request: SearchRequest) -> SearchResult:
        """Run ``request``; raise :class:`QueryError` for anything a user must change.

        A query with misspelt words (:func:`.spelling.correct_query`) that
        finds nothing as typed is run corrected, if that finds stories (unless
        ``request.spell`` is off); otherwise the correction is the suggestion.
        """
        started = time.perf_counter()
        check_request(request, self.limits)
        view = self._view()
        corpus = self._corpus_of(view.searcher)
        query, corrected_from, suggestion = request.q, None, None
        groups = self._groups_of(view.searcher, corpus)
        parsed, found = self._matches(view.searcher, corpus, groups, query, request)
        correction = self._correction(view.searcher, query)
        fixed = self._matches_of_correction(view.searcher, corpus, groups, correction, request)
        if fixed and correction and request.spell and not len(found.ids):
            query, corrected_from = correction, query
            parsed, found = fixed
        elif fixed:
            suggestion = correction
        depth = request.page * request.per_page
        docnums, shown = _ordered(corpus, found, request.sort, depth)
        hits = [
            self._hit(view.searcher, int(n), s, parsed.highlight_terms, groups if request.collapse else None)
            for n, s in zip(docnums[depth - request.per_page :], shown[depth - request.per_page :])
        ]
        total, facets = _counts(corpus, found)
        return SearchResult(
            query=query,
            total=total,
            page=request.page,
            per_page=request.per_page,
            took_ms=(time.perf_counter() - started) * 1000.0,
            hits=hits,
            suggestion=suggestion,
            corrected_from=corrected_from,
            facets=facets,
            sort=request.sort,
            notice=parsed.notice,
            estimated=True if found.sample is not None else None,
        )

    def _matches(
        self, searcher: Searcher, corpus: Corpus, groups: Groups, q: str, request: SearchRequest
    ) -> tuple[ParsedQuery, Found]:
        """``q`` parsed and evaluated within the request's dates, near-duplicates collapsed if asked.

        Sorted by relevance, only the stories that can be on the page are
        scored (:meth:`.Evaluation.top`), unless dates and near-duplicates
        left too few of them: then every story found is.
        """
        parsed = parse(q, self._parser, searcher, self.limits)
        evaluation = Evaluation(searcher, corpus, self.limits.time_limit)
        depth = request.page * request.per_page
        if request.sort == "relevance":
            found = self._within(corpus, groups, evaluation.top(parsed.query, depth, groups.grouped), request)
            if found.exact_top(depth):
                return parsed, found
        return parsed, self._within(corpus, groups, evaluation.found(parsed.query), request)

    @staticmethod
    def _within(corpus: Corpus, groups: Groups, found: Found, request: SearchRequest) -> Found:
        """``found`` within the request's dates, near-duplicates collapsed if asked."""
        if request.date_from or request.date_to:
            found = found.take(_in_dates(corpus.days[found.ids], request.date_from, request.date_to))
        if request.collapse:
            found = found.take(groups.kept(found.ids, _rank(corpus, found, request.sort)))
        if found.sample is not None:
            found = replace(found, sample=WhooshEngine._within(corpus, groups, found.sample, request))
        return found

    def _matches_of_correction(
        self, searcher: Searcher, corpus: Corpus, groups: Groups, correction: str | None, request: SearchRequest
    ) -> tuple[ParsedQuery, Found] | None:
        """:meth:`_matches` of a spelling correction, if it finds stories."""
        if correction is None:
            return None
        try:
            found = self._matches(searcher, corpus, groups, correction, request)
        except QueryError:  # out of time, say: the query as typed still has its answer
            return None
        return found if len(found[1].ids) else None

    @staticmethod
    def _hit(
        searcher: Searcher, docnum: int, score: float | None, terms: dict[str, frozenset[str]], groups: Groups | None
    ) -> Hit:
        """The hit for document ``docnum``; with ``groups``, its versions are named as ``similar``."""
        stored = searcher.stored_fields(docnum)
        versions = [searcher.stored_fields(d)["id"] for d in groups.versions(docnum)] if groups else []
        hit = Hit.marked(_stored_story(stored, []), score, terms)
        hit.similar = {"count": len(versions), "ids": versions} if versions else None
        return hit

    # ------------------------------------------------------------ suggestions

    def _correction(self, searcher: Searcher, text: str) -> str | None:
        """``text`` with its misspelt words corrected from the words of the stories, or None."""
        reader = searcher.reader()

        def found(word: str) -> int:
            term = normalize(word)
            return max(reader.doc_frequency(f, term) for f in TEXT_FIELDS) if term else 0

        return correct_query(text, self._dictionaries.of(searcher), found)

    def _surface_word(self, searcher: Searcher, fieldname: str, term: str) -> str | None:
        """The commonest real word whose term is ``term`` in the first stories that have it (cached)."""
        key = f"{fieldname}:{term}"
        if key not in self._surface:
            reader = searcher.reader()
            live = (n for n in reader.postings(fieldname, term).all_ids() if not reader.is_deleted(n))
            texts = (searcher.stored_fields(n).get(fieldname, "") for n in islice(live, SURFACE_STORIES))
            self._surface[key] = commonest_spelling(texts, term)
        return self._surface[key]

    def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        """Completions of the last word of ``prefix``, most common first (for autocomplete)."""
        split = completion_prefix(prefix, self.limits.max_query_chars)
        if split is None:
            return []
        head, start = split
        view = self._view()
        reader = view.searcher.reader()
        terms = []
        for n, btext in enumerate(reader.expand_prefix("headline", start)):
            if n >= SUGGEST_SCAN:
                break
            term = btext.decode("utf-8") if isinstance(btext, bytes) else btext
            terms.append((reader.doc_frequency("headline", term), term))
        return completions(head, start, terms, lambda term: self._surface_word(view.searcher, "headline", term), limit)

    # ------------------------------------------------------------ stories

    def story(self, story_id: str) -> StoredStory | None:
        """The stored story with this id, or None."""
        searcher = self._view().searcher
        docnum = searcher.document_number(id=story_id)
        if docnum is None:
            return None
        versions = [
            searcher.stored_fields(d) for d in self._groups_of(searcher, self._corpus_of(searcher)).versions(docnum)
        ]
        return _stored_story(searcher.stored_fields(docnum), versions)

    def related(self, story_id: str, limit: int = 10) -> list[Hit] | None:
        """Stories sharing this one's most distinctive words (not itself); None for an unknown id.

        See :mod:`.related`: tf-idf key terms over headline and body, and a
        minimum score, so the list may be short or empty.
        """
        view = self._view()
        searcher = view.searcher
        docnum = searcher.document_number(id=story_id)
        if docnum is None:
            return None
        stored = searcher.stored_fields(docnum)
        corpus = self._corpus_of(searcher)
        terms = key_terms(searcher.reader(), {f: stored[f] for f in TEXT_FIELDS})
        found = related_scores(Evaluation(searcher, corpus, self.limits.time_limit), docnum, terms)
        groups = self._groups_of(searcher, corpus)
        found = found.take(~np.isin(found.ids, [docnum, *groups.versions(docnum)]))  # versions are listed as such
        found = found.take(groups.kept(found.ids, -found.scores))
        docnums, shown = _ordered(corpus, found, "relevance", limit)
        marked = dict.fromkeys(TEXT_FIELDS, frozenset(t for t, _ in terms))
        return [self._hit(searcher, int(n), s, marked, groups) for n, s in zip(docnums, shown)]

    def highlight_terms(self, q: str) -> dict[str, frozenset[str]]:
        """The terms ``q`` would mark, per text field: a story page opened from results marks them too.

        Raises :class:`QueryError` like :meth:`search` for a query that can't be run.
        """
        return parse(q, self._parser, self._view().searcher, self.limits).highlight_terms

    def stats(self) -> CollectionStats:
        """Size and date range of the collection, for the home page and health checks."""
        view = self._view()
        dated = self._corpus_of(view.searcher).dated_range
        first, last = (long_to_datetime(t) for t in dated) if dated else (None, None)
        return CollectionStats(view.searcher.doc_count(), first, last)


def _stored_story(fields: dict[str, Any], versions: list[dict[str, Any]]) -> StoredStory:
    dated = sorted(versions, key=lambda v: (_as_datetime(v.get("published")) or datetime.max, v["id"]))
    return StoredStory(
        id=fields["id"],
        headline=fields["headline"],
        published=_as_datetime(fields.get("published")),
        body=fields["body"],
        source=public_source(fields.get("source")),
        url=fields.get("url"),
        versions=[{"id": v["id"], "headline": v["headline"], "published": _iso(v.get("published"))} for v in dated],
    )


def _iso(value: Any) -> str | None:
    moment = _as_datetime(value)
    return moment.isoformat() if moment else None


def _as_datetime(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) and value.year > 1 else None


def _in_dates(days: np.ndarray, date_from: date | None, date_to: date | None) -> np.ndarray:
    """Which of the stories published on ``days`` (:attr:`Corpus.days`) are from ``date_from`` to ``date_to``."""
    low = day_number(datetime.combine(date_from, dtime.min)) if date_from else -math.inf
    high = day_number(datetime.combine(date_to, dtime.max)) if date_to else math.inf
    with np.errstate(invalid="ignore"):
        return (days >= low) & (days <= high)


def _rank(corpus: Corpus, found: Found, sort: str) -> np.ndarray:
    """Per story found, lower is shown first in ``sort`` order (undated stories last by date)."""
    if sort in ("newest", "oldest"):
        days = np.nan_to_num(corpus.days[found.ids], nan=-math.inf if sort == "newest" else math.inf)
        return -days if sort == "newest" else days
    return -(found.scores * _recency(corpus, found.ids)) if sort == "recent" else -found.scores


def _ordered(corpus: Corpus, found: Found, sort: str, depth: int) -> tuple[list[int], list[float | None]]:
    """The first ``depth`` stories found in ``sort`` order, and the scores to show."""
    candidates, rank = found.ids, _rank(corpus, found, sort)
    if len(candidates) > depth:
        # Every story tied with the last one kept, then cut in (rank, number) order: with
        # argpartition's arbitrary pick among ties, a story could be on two pages, or on none.
        keep = rank <= np.partition(rank, depth - 1)[depth - 1]
        candidates, rank = candidates[keep], rank[keep]
    order = np.lexsort((candidates, rank))[:depth]
    if sort in ("newest", "oldest"):
        return candidates[order].tolist(), [None] * len(order)
    return candidates[order].tolist(), (-rank[order]).tolist()


def _recency(corpus: Corpus, ids: np.ndarray) -> np.ndarray:
    """Boost of the stories ``ids`` for ``sort=recent``: 1 + weight * 2^(-age / half-life); undated stories 1."""
    newest = np.nanmax(corpus.days) if np.isfinite(corpus.days).any() else 0.0
    age = np.nan_to_num(newest - corpus.days[ids], nan=math.inf)
    return 1.0 + RECENCY_WEIGHT * np.exp2(-age / RECENCY_HALF_LIFE_DAYS)


def _counts(corpus: Corpus, found: Found) -> tuple[int, dict[str, dict[str, int]]]:
    """The total and the facets of ``found``: counted, or estimated from its sample (:mod:`.blocks`)."""
    if found.sample is None:
        return len(found.ids), _facets(corpus, found.ids)
    share = found.share
    facets = _facets(corpus, found.sample.ids)
    return about(len(found.sample.ids) * share), {
        k: {v: about(n * share) for v, n in c.items()} for k, c in facets.items()
    }


def _facets(corpus: Corpus, ids: np.ndarray) -> dict[str, dict[str, int]]:
    months = corpus.months[ids]
    dated = months[months >= 0]
    low = int(dated.min()) if dated.size else 0
    counts = np.bincount(dated - low)  # not np.unique: a sort of every match
    codes = np.flatnonzero(counts)
    counts, codes = counts[codes], codes + low
    months = {f"{code // 12:04d}-{code % 12 + 1:02d}": int(n) for code, n in zip(codes.tolist(), counts.tolist())}
    years: dict[str, int] = {}
    for month, n in months.items():
        years[month[:4]] = years.get(month[:4], 0) + n
    return {"year": years, "month": months}


__all__ = ["WhooshEngine"]
