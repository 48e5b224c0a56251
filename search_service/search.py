"""The search core: ranked, filtered, highlighted, faceted results.  No web code here.

:class:`SearchEngine` is safe to share between threads: Whoosh searchers are
not, so each thread keeps its own and reopens it when the index has a newer
commit (checked at most every :data:`REFRESH_SECONDS`), so stories indexed
while the service runs appear without a restart.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime
from pathlib import Path
from typing import Any

from whoosh import query as wq
from whoosh import scoring
from whoosh.collectors import TimeLimitCollector
from whoosh.searching import Searcher, TimeLimit

from .analysis import fold, normalize, tokens
from .config import Limits
from .docsets import matching_docs
from .highlight import fragments, mark_all
from .indexer import open_index
from .query import ParsedQuery, QueryError, make_parser, parse
from .schema import TEXT_FIELDS

SORTS = ("relevance", "recent", "newest", "oldest")
REFRESH_SECONDS = 0.5
#: "recent" ranking: relevance times (1 + RECENCY_WEIGHT * 2^(-age / half-life)),
#: age counted from the newest story in the index (archives are not "now").
RECENCY_HALF_LIFE_DAYS = 30.0
RECENCY_WEIGHT = 1.0
#: Below this many hits a spelling suggestion is looked for.
SUGGEST_BELOW = 3
#: BM25F parameters (Robertson's defaults; body length normalisation matters for news).
BM25_K1 = 1.2
BM25_B = 0.75


@dataclass(frozen=True)
class SearchRequest:
    """What to search for; validated by :meth:`SearchEngine.search`."""

    q: str
    page: int = 1
    per_page: int = 10
    sort: str = "relevance"
    date_from: date | None = None
    date_to: date | None = None


@dataclass
class Hit:
    id: str
    headline: str
    published: datetime | None
    score: float | None  # None when sorted by date
    highlights: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "headline": self.headline,
            "published": self.published.isoformat() if self.published else None,
            "score": round(self.score, 4) if self.score is not None else None,
            "highlights": self.highlights,
        }


@dataclass
class SearchResult:
    query: str
    total: int
    page: int
    per_page: int
    took_ms: float
    hits: list[Hit]
    suggestion: str | None
    facets: dict[str, dict[str, int]]
    sort: str = "relevance"
    timed_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "total": self.total,
            "page": self.page,
            "per_page": self.per_page,
            "sort": self.sort,
            "took_ms": round(self.took_ms, 2),
            "timed_out": self.timed_out,
            "hits": [h.to_dict() for h in self.hits],
            "suggestion": self.suggestion,
            "facets": self.facets,
        }


@dataclass(frozen=True)
class CollectionStats:
    stories: int
    first: datetime | None
    last: datetime | None


class _Recency(scoring.BM25F):
    """BM25F with a boost that decays with the story's age (``sort=recent``)."""

    use_final = True

    def __init__(self, days: list[float | None], newest: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._days = days
        self._newest = newest

    def final(self, searcher: Searcher, docnum: int, score: float) -> float:
        day = self._days[docnum]
        if day is None:
            return score
        return score * (1.0 + RECENCY_WEIGHT * 2.0 ** (-(self._newest - day) / RECENCY_HALF_LIFE_DAYS))


@dataclass
class _View:
    """One thread's searcher and what is derived from it, rebuilt on reopen."""

    searcher: Searcher
    checked: float
    _published: list[datetime | None] | None = field(default=None)

    def published(self) -> list[datetime | None]:
        """``published`` per document number, for facets and recency."""
        if self._published is None:
            reader = self.searcher.reader()
            column = reader.column_reader("published", translate=True) if reader.has_column("published") else None
            dead = set(reader.all_doc_ids()) ^ set(range(reader.doc_count_all()))
            self._published = [
                None if column is None or n in dead else _as_datetime(column[n])
                for n in range(reader.doc_count_all())
            ]
        return self._published


def _as_datetime(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) and value.year > 1 else None


def _day(value: datetime | None) -> float | None:
    return value.timestamp() / 86400.0 if value is not None else None


class SearchEngine:
    """Searches one index folder.  Thread-safe; see the module docstring."""

    def __init__(self, index_dir: str | Path, limits: Limits | None = None) -> None:
        self.index_dir = Path(index_dir)
        self.limits = limits or Limits()
        self._ix = open_index(self.index_dir)
        self._parser = make_parser(self._ix.schema)
        self._local = threading.local()
        self._surface: dict[str, str | None] = {}

    # ------------------------------------------------------------ searchers

    def _view(self) -> _View:
        view: _View | None = getattr(self._local, "view", None)
        now = time.monotonic()
        if view is None:
            view = self._local.view = _View(self._ix.searcher(weighting=self._weighting()), now)
        elif now - view.checked > REFRESH_SECONDS:
            view.checked = now
            if not view.searcher.up_to_date():
                fresh = view.searcher.refresh()
                if fresh is not view.searcher:
                    view.searcher = fresh
                    view._published = None
        return view

    @staticmethod
    def _weighting() -> scoring.WeightingModel:
        return scoring.BM25F(B=BM25_B, K1=BM25_K1)

    @contextmanager
    def _searcher_for(self, view: _View, sort: str) -> Iterator[Searcher]:
        if sort != "recent":
            yield view.searcher
            return
        published = view.published()
        days = [_day(p) for p in published]
        newest = max((d for d in days if d is not None), default=0.0)
        recency = _Recency(days, newest, B=BM25_B, K1=BM25_K1)
        yield Searcher(view.searcher.reader(), weighting=recency, closereader=False)

    # ------------------------------------------------------------ search

    def search(self, request: SearchRequest) -> SearchResult:
        """Run ``request``; raise :class:`QueryError` for anything a user must change."""
        started = time.perf_counter()
        self._check(request)
        view = self._view()
        parsed = parse(request.q, self._parser, view.searcher, self.limits)
        date_filter = _date_filter(request.date_from, request.date_to)
        matched = self._matching(view, parsed.query, request)
        hits, timed_out = self._ranked(view, parsed, date_filter, request)
        suggestion = self._suggestion(view.searcher, request.q) if len(matched) < SUGGEST_BELOW else None
        return SearchResult(
            query=request.q,
            total=len(matched),
            page=request.page,
            per_page=request.per_page,
            took_ms=(time.perf_counter() - started) * 1000.0,
            hits=hits,
            suggestion=suggestion,
            facets=_facets(matched, view.published()),
            sort=request.sort,
            timed_out=timed_out,
        )

    def _check(self, request: SearchRequest) -> None:
        limits = self.limits
        if request.sort not in SORTS:
            raise QueryError(f"sort must be one of {', '.join(SORTS)}, not {request.sort!r}")
        if not 1 <= request.per_page <= limits.max_per_page:
            raise QueryError(f"per_page must be between 1 and {limits.max_per_page}")
        if request.page < 1:
            raise QueryError("page must be 1 or more")
        if request.page * request.per_page > limits.max_depth:
            raise QueryError(
                f"results beyond the first {limits.max_depth:,} can't be paged to; narrow the query or the dates"
            )
        if request.date_from and request.date_to and request.date_from > request.date_to:
            raise QueryError("'from' is after 'to'")

    @staticmethod
    def _matching(view: _View, q: wq.Query, request: SearchRequest) -> list[int]:
        docs = matching_docs(view.searcher, q)
        if request.date_from or request.date_to:
            start = datetime.combine(request.date_from or date.min, dtime.min)
            end = datetime.combine(request.date_to or date.max, dtime.max)
            published = view.published()
            docs = {n for n in docs if published[n] is not None and start <= published[n] <= end}
        return sorted(docs)

    def _ranked(
        self, view: _View, parsed: ParsedQuery, date_filter: wq.Query | None, request: SearchRequest
    ) -> tuple[list[Hit], bool]:
        depth = request.page * request.per_page
        sortedby, reverse = {"newest": ("published", True), "oldest": ("published", False)}.get(
            request.sort, (None, False)
        )
        with self._searcher_for(view, request.sort) as searcher:
            collector = searcher.collector(limit=depth, sortedby=sortedby, reverse=reverse, filter=date_filter)
            timed = TimeLimitCollector(collector, timelimit=self.limits.time_limit, use_alarm=False)
            timed_out = False
            try:
                searcher.search_with_collector(parsed.query, timed)
            except TimeLimit:
                timed_out = True
            results = timed.results()
            scored = request.sort in ("relevance", "recent")
            hits = [
                self._hit(results[n].fields(), results.score(n) if scored else None, parsed.highlight_terms)
                for n in range(depth - request.per_page, min(depth, results.scored_length()))
            ]
            return hits, timed_out

    @staticmethod
    def _hit(stored: dict[str, Any], score: float | None, terms: dict[str, frozenset[str]]) -> Hit:
        return Hit(
            id=stored["id"],
            headline=stored["headline"],
            published=_as_datetime(stored.get("published")),
            score=score,
            highlights={
                "headline": mark_all(stored["headline"], terms.get("headline", frozenset())),
                "body": fragments(stored["body"], terms.get("body", frozenset())),
            },
        )

    # ------------------------------------------------------------ suggestions

    def _suggestion(self, searcher: Searcher, text: str) -> str | None:
        """A spelling fix for ``text`` that finds more stories, or None.

        Words whose term is missing from the index are replaced by the most
        common indexed word within two edits; candidates are stems, turned
        back into real words from a story that contains them.
        """
        reader = searcher.reader()
        changed = False
        out = []
        for piece in text.split():
            word = fold(piece.strip("\"'()*+-?!.,;:"))
            term = normalize(word)[0] if word.isalpha() else None
            if term is None or any(reader.doc_frequency(f, term) for f in TEXT_FIELDS):
                out.append(piece)
                continue
            best = max(
                ((reader.doc_frequency("body", c), c) for c in reader.terms_within("body", term, 2, prefix=1)),
                default=None,
            )
            surface = self._surface_word(searcher, "body", best[1]) if best else None
            out.append(surface or piece)
            changed = changed or surface is not None
        return " ".join(out) if changed else None

    def _surface_word(self, searcher: Searcher, fieldname: str, term: str) -> str | None:
        """The first real word in the index whose term is ``term`` (cached)."""
        key = f"{fieldname}:{term}"
        if key not in self._surface:
            self._surface[key] = None
            postings = searcher.reader().postings(fieldname, term)
            for docnum in postings.all_ids():
                if searcher.reader().is_deleted(docnum):
                    continue
                text = searcher.stored_fields(docnum).get(fieldname, "")
                for found, _, s, e in tokens(text):
                    if found == term:
                        self._surface[key] = fold(text[s:e])
                        break
                break
        return self._surface[key]

    def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        """Completions of the last word of ``prefix``, most common first (for autocomplete)."""
        prefix = prefix[: self.limits.max_query_chars]
        head, _, last = prefix.rpartition(" ")
        stem_prefix = fold(last)
        if len(stem_prefix) < MIN_SUGGEST_PREFIX or not stem_prefix.isalnum():
            return []
        view = self._view()
        reader = view.searcher.reader()
        candidates = []
        for n, btext in enumerate(reader.expand_prefix("headline", stem_prefix)):
            if n >= SUGGEST_SCAN:
                break
            term = btext.decode("utf-8") if isinstance(btext, bytes) else btext
            candidates.append((reader.doc_frequency("headline", term), term))
        words: list[str] = []
        for _, term in sorted(candidates, reverse=True):
            word = self._surface_word(view.searcher, "headline", term)
            if word and word.startswith(stem_prefix) and word not in words:
                words.append(word)
            if len(words) == limit:
                break
        return [f"{head} {w}".strip() for w in words]

    # ------------------------------------------------------------ stories

    def story(self, story_id: str) -> dict[str, Any] | None:
        """The stored story with this id, or None."""
        fields = self._view().searcher.document(id=story_id)
        return _story_dict(fields) if fields else None

    def related(self, story_id: str, limit: int = 10) -> list[Hit] | None:
        """Stories most like this one by headline and body (not itself); None for an unknown id."""
        searcher = self._view().searcher
        docnum = searcher.document_number(id=story_id)
        if docnum is None:
            return None
        stored = searcher.stored_fields(docnum)
        text = f"{stored['headline']}\n{stored['headline']}\n{stored['body']}"
        key_terms = [term for term, _ in searcher.key_terms_from_text("body", text, numterms=12)]
        if not key_terms:
            return []
        q = wq.Or([wq.Term(f, t) for t in key_terms for f in TEXT_FIELDS])
        hits = []
        for result in searcher.search(q, limit=limit + 1):
            if result.docnum != docnum and len(hits) < limit:
                terms = frozenset(key_terms)
                hits.append(self._hit(result.fields(), result.score or 0.0, {f: terms for f in TEXT_FIELDS}))
        return hits

    def stats(self) -> CollectionStats:
        """Size and date range of the collection, for the home page and health checks."""
        view = self._view()
        dates = [p for p in view.published() if p is not None]
        return CollectionStats(view.searcher.doc_count(), min(dates, default=None), max(dates, default=None))


MIN_SUGGEST_PREFIX = 2
#: Autocomplete looks at this many indexed words with the prefix, at most.
SUGGEST_SCAN = 2000


def _story_dict(fields: dict[str, Any]) -> dict[str, Any]:
    published = _as_datetime(fields.get("published"))
    return {
        "id": fields["id"],
        "headline": fields["headline"],
        "published": published.isoformat() if published else None,
        "body": fields["body"],
        "source": fields.get("source"),
        "url": fields.get("url"),
    }


def _date_filter(date_from: date | None, date_to: date | None) -> wq.Query | None:
    if date_from is None and date_to is None:
        return None
    start = datetime.combine(date_from, dtime.min) if date_from else None
    end = datetime.combine(date_to, dtime.max) if date_to else None
    return wq.DateRange("published", start, end)


def _facets(docnums: list[int], published: list[datetime | None]) -> dict[str, dict[str, int]]:
    months: Counter[str] = Counter()
    for n in docnums:
        p = published[n]
        if p is not None:
            months[f"{p.year:04d}-{p.month:02d}"] += 1
    years: Counter[str] = Counter()
    for month, count in months.items():
        years[month[:4]] += count
    return {"year": dict(sorted(years.items())), "month": dict(sorted(months.items()))}


__all__ = [
    "CollectionStats",
    "Hit",
    "QueryError",
    "SORTS",
    "SearchEngine",
    "SearchRequest",
    "SearchResult",
]
