"""XapianEngine: the engine protocol over one Xapian database or shards of one.

Ranking is Xapian's BM25 with the Whoosh engine's k1 and b over the
unprefixed terms (BM25F, see :mod:`.document`); queries are translated by
:mod:`.query`.  What Xapian's remote backend does not offer is built from
the shards' term lists and metadata: the spelling dictionary (:mod:`.words`:
the stories' words as they spell them, for :func:`search_service.spelling.correct_query`,
as the Whoosh engine corrects) and autocomplete.  Near-duplicates are
collapsed on their group's label (:mod:`.groups`); totals and facets
count a group once, in the month of the story shown for it.

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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from datetime import time as dtime
from functools import partial
from itertools import islice
from typing import TypeVar

import xapian

from ...analysis import is_common, normalize
from ...config import Limits
from ...engine import Progress
from ...model import (
    CollectionStats,
    EngineUnavailable,
    GroupingSummary,
    Hit,
    IndexBusyError,
    IndexSummary,
    IndexWriteError,
    QueryError,
    SearchRequest,
    SearchResult,
    StoredStory,
    check_request,
)
from ...similarity import K1, RELATED_COMMON_SHARE, RELATED_MIN_SHARE, B
from ...spelling import correct_query
from ...stories import Story
from ...suggestions import SUGGEST_SCAN, SURFACE_STORIES, commonest_spelling, completion_prefix, completions
from ...vocabulary import story_words
from .document import (
    FIELD_PREFIXES,
    GROUP,
    HEADLINE,
    ID,
    SLOT_GROUP,
    SLOT_GROUP_MONTH,
    SLOT_MONTH,
    SLOT_NEGATED,
    SLOT_SECONDS,
    fields_of,
    from_seconds,
    seconds,
    stored_story,
    to_document,
)
from .groups import Grouper, cross_shard_changes, label_of, members, relabel, set_label
from .indexer import index_paths
from .query import Parser, Translated, value_range
from .shards import Cluster, Local, View, shard_of
from .words import Dictionary, add_batch

T = TypeVar("T")

#: As the Whoosh engine (backends/whoosh/engine.py).
RECENCY_HALF_LIFE_DAYS = 30.0
RECENCY_WEIGHT = 1.0
RELATED_TERMS = 12
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
        self._words = Dictionary()
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

        As the Whoosh engine: a query with misspelt words
        (:func:`search_service.spelling.correct_query`) that finds nothing as
        typed is run corrected, if that finds stories (unless
        ``request.spell`` is off); otherwise the correction is the suggestion.
        """
        started = time.perf_counter()
        check_request(request, self.limits)
        return self._read(lambda view: self._search(view, request, started))

    def _search(self, view: View, request: SearchRequest, started: float) -> SearchResult:
        db = view.db
        query, corrected_from, suggestion = request.q, None, None
        translated = self._parser.translate(query, db)
        found = _finds(db, self._filtered(translated.query, request))
        correction = self._correction(view, query)
        fixed = self._translation_of_correction(db, correction, request)
        if fixed and correction and request.spell and not found:
            query, corrected_from, translated = correction, query, fixed
        elif fixed:
            suggestion = correction
        ranked, total, facets = self._page(db, self._filtered(translated.query, request), request)
        labels = [label for doc, _ in ranked if (label := label_of(doc))] if request.collapse else []
        groups = members(db, labels)
        return SearchResult(
            query=query,
            total=total,
            page=request.page,
            per_page=request.per_page,
            took_ms=(time.perf_counter() - started) * 1000.0,
            hits=[_hit(doc, score, translated.highlight_terms, groups) for doc, score in ranked],
            suggestion=suggestion,
            corrected_from=corrected_from,
            facets=facets,
            sort=request.sort,
            notice=translated.notice,
            shards=self._shards(view),
        )

    @staticmethod
    def _filtered(query: xapian.Query, request: SearchRequest) -> xapian.Query:
        """``query`` within the request's dates."""
        if not (request.date_from or request.date_to):
            return query
        low = seconds(datetime.combine(request.date_from, dtime.min)) if request.date_from else None
        high = seconds(datetime.combine(request.date_to, dtime.max)) if request.date_to else None
        return xapian.Query(xapian.Query.OP_FILTER, query, value_range(low, high))

    def _translation_of_correction(
        self, db: xapian.Database, correction: str | None, request: SearchRequest
    ) -> Translated | None:
        """The translation of a spelling correction, if it finds stories."""
        if correction is None:
            return None
        try:
            fixed = self._parser.translate(correction, db)
        except QueryError:
            return None
        return fixed if _finds(db, self._filtered(fixed.query, request)) else None

    def _page(
        self, db: xapian.Database, query: xapian.Query, request: SearchRequest
    ) -> tuple[list[tuple[xapian.Document, float | None]], int, dict[str, dict[str, int]]]:
        """The request's page of ``query``'s stories, their total and facets (a group counted once if collapsed)."""
        enquire = self._sorted(db, query, request)
        months = xapian.ValueCountMatchSpy(SLOT_MONTH)
        grouped = xapian.ValueCountMatchSpy(SLOT_GROUP_MONTH)
        enquire.add_matchspy(months)
        enquire.add_matchspy(grouped)
        depth = request.page * request.per_page
        ranked = self._ranked(enquire, db, request, depth, spied=True)[depth - request.per_page : depth]
        counts = {item.term.decode(): item.termfreq for item in months.values()}
        total = months.get_total()
        if request.collapse:
            by_group: dict[str, dict[str, int]] = {}
            for item in grouped.values():
                label, _, month = item.term.decode().partition("\t")
                by_group.setdefault(label, {})[month] = item.termfreq
            total -= sum(sum(m.values()) for m in by_group.values()) - len(by_group)
            for label_months in by_group.values():
                for month, n in label_months.items():
                    if month:
                        counts[month] -= n
            for month in self._shown_months(db, query, request, by_group):
                if month:
                    counts[month] = counts.get(month, 0) + 1
        return ranked, total, _facets({m: n for m, n in counts.items() if n > 0})

    def _shown_months(
        self, db: xapian.Database, query: xapian.Query, request: SearchRequest, by_group: dict[str, dict[str, int]]
    ) -> list[str]:
        """The month of the story shown for each group ("" if undated): ranked again only where months differ."""
        shown = [next(iter(m)) for m in by_group.values() if len(m) == 1]
        mixed = [label for label, m in by_group.items() if len(m) > 1]
        if mixed:
            within = xapian.Query(
                xapian.Query.OP_FILTER, query, xapian.Query(xapian.Query.OP_OR, [GROUP + g for g in mixed])
            )
            ranked = self._ranked(self._sorted(db, within, request), db, request, len(mixed), spied=False)
            shown += [doc.get_value(SLOT_MONTH).decode() for doc, _ in ranked]
        return shown

    def _sorted(self, db: xapian.Database, query: xapian.Query, request: SearchRequest) -> xapian.Enquire:
        """An Enquire for ``query`` in the request's order, collapsing groups (but for ``recent``: see :meth:`_ranked`)."""
        enquire = self._enquire(db, query)
        if request.sort in ("newest", "oldest"):
            # Descending, so undated stories (no value) come last either way.
            enquire.set_sort_by_value(SLOT_SECONDS if request.sort == "newest" else SLOT_NEGATED, True)
            enquire.set_weighting_scheme(xapian.BoolWeight())
        if request.collapse and request.sort != "recent":
            enquire.set_collapse_key(SLOT_GROUP)
        return enquire

    @staticmethod
    def _ranked(
        enquire: xapian.Enquire, db: xapian.Database, request: SearchRequest, depth: int, spied: bool
    ) -> list[tuple[xapian.Document, float | None]]:
        """The first ``depth`` stories of ``enquire`` (every match seen by its spies if ``spied``)."""
        everything = max(db.get_doccount(), 1)
        if request.sort == "recent":
            return _by_recency(enquire, db, depth, everything, request.collapse, spied)
        mset = _fetched(enquire.get_mset(0, depth, everything))
        dated = request.sort in ("newest", "oldest")
        return [(item.document, None if dated else item.weight) for item in mset]

    def highlight_terms(self, q: str) -> dict[str, frozenset[str]]:
        """The terms ``q`` would mark, per text field; raises QueryError like :meth:`search`."""
        return self._read(lambda view: self._parser.translate(q, view.db).highlight_terms)

    # ------------------------------------------------------------ suggestions

    def _correction(self, view: View, text: str) -> str | None:
        """``text`` with its misspelt words corrected from the words of the stories, or None."""
        db = view.db
        shards = [s.db for s in view.shards if s.db is not None] if view.shards else [db]

        def found(word: str) -> int:
            term = normalize(word)
            return max(db.get_termfreq(prefix + term) for prefix in FIELD_PREFIXES.values()) if term else 0

        return correct_query(text, self._words.of(db, shards), found)

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
        """The stored story with this id, with its versions (oldest first), or None."""
        return self._read(lambda view: self._story(view.db, story_id))

    @staticmethod
    def _story(db: xapian.Database, story_id: str) -> StoredStory | None:
        docid = _docid(db, story_id)
        if docid is None:
            return None
        doc = db.get_document(docid)
        stored = stored_story(doc)
        label = label_of(doc)
        others = [stored_story(d) for d in members(db, [label])[label]] if label else []
        versions = sorted((v for v in others if v.id != story_id), key=lambda v: (v.published or datetime.max, v.id))
        return replace(
            stored,
            versions=[
                {"id": v.id, "headline": v.headline, "published": v.published.isoformat() if v.published else None}
                for v in versions
            ],
        )

    def related(self, story_id: str, limit: int = 10) -> list[Hit] | None:
        """Stories most like this one (not itself, nor its versions): its most characteristic terms (Bo1), searched for.

        As in the Whoosh engine, a story is listed only if it scores at least
        :data:`~search_service.similarity.RELATED_MIN_SHARE` of the story's own score.
        """
        return self._read(lambda view: self._related(view.db, story_id, limit))

    def _related(self, db: xapian.Database, story_id: str, limit: int) -> list[Hit] | None:
        docid = _docid(db, story_id)
        if docid is None:
            return None
        rset = xapian.RSet()
        rset.add_document(docid)
        enquire = self._enquire(db, xapian.Query.MatchNothing)
        enquire.set_expansion_scheme("bo1")
        key_terms = [item.term.decode() for item in enquire.get_eset(RELATED_TERMS, rset, _Words(db))]
        if not key_terms:
            return []
        wanted = xapian.Query(xapian.Query.OP_OR, key_terms)
        # As the Whoosh engine: a related story scores at least a share of the story's own score.
        enquire.set_query(xapian.Query(xapian.Query.OP_FILTER, wanted, xapian.Query(ID + story_id)))
        own = max((item.weight for item in enquire.get_mset(0, 1)), default=0.0)
        label = label_of(db.get_document(docid))
        excluded = [ID + story_id, *([GROUP + label] if label else [])]
        enquire.set_query(xapian.Query(xapian.Query.OP_AND_NOT, wanted, xapian.Query(xapian.Query.OP_OR, excluded)))
        enquire.set_collapse_key(SLOT_GROUP)
        enquire.set_cutoff(0, RELATED_MIN_SHARE * own)
        ranked = [(item.document, item.weight) for item in _fetched(enquire.get_mset(0, limit))]
        terms = {f: frozenset(key_terms) for f in ("headline", "body")}
        groups = members(db, [g for doc, _ in ranked if (g := label_of(doc))])
        return [_hit(doc, score, terms, groups) for doc, score in ranked]

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
        """Add or replace stories by id, each on its shard; committed (and visible everywhere) when this returns.

        Their near-duplicate groups are settled from every shard this engine
        sees (:class:`.groups.Grouper`); stories of other groups they join
        are written with their new label too.
        """
        started = time.perf_counter()
        summary = IndexSummary()
        latest = {story.id: story for story in stories}
        summary.duplicates = len(stories) - len(latest)
        grouper, docs = self._read(lambda view: _placed(Grouper(view.db), latest))
        changed = grouper.changed()
        by_shard: dict[int, list[str]] = {}
        for story_id in [*docs, *changed]:
            by_shard.setdefault(shard_of(story_id, self.store.count), []).append(story_id)

        def work(ids: list[str]) -> Callable[[xapian.WritableDatabase], None]:
            def write(db: xapian.WritableDatabase) -> None:
                for story_id in ids:
                    if story_id not in docs:
                        continue
                    if db.get_termfreq(ID + story_id):
                        summary.updated += 1
                    else:
                        summary.added += 1
                    label = grouper.batch[story_id].label if story_id in grouper.batch else None
                    if label is not None:
                        set_label(docs[story_id], label)
                    db.replace_document(ID + story_id, docs[story_id])
                relabel(db, {i: changed[i] for i in ids if i in changed})
                written = [latest[i] for i in ids if i in latest]
                add_batch(db, Counter(w for story in written for w in story_words(story)), len(written))

            return write

        for shard, ids in sorted(by_shard.items()):
            self._write(shard, work(ids))
        summary.seconds = time.perf_counter() - started
        return summary

    def regroup(self) -> GroupingSummary:
        """Group the versions of stories on different shards (``search-service index --shard`` groups within one).

        Reads every shard (all must answer: :class:`EngineUnavailable`
        otherwise), settles the groups (:func:`.groups.cross_shard_changes`)
        and writes the changed labels, each on its story's shard.  Run it
        once the shards' indexers are done; a story written during the run
        is grouped as it is written, as always.
        """
        started = time.perf_counter()

        def changes(view: View) -> tuple[dict[str, str], int]:
            if view.failed:
                raise EngineUnavailable(
                    f"{view.failed} of {view.total} shards did not answer; versions can only be grouped over all of them"
                )
            return cross_shard_changes(view.db)

        labels, looked = self._read(changes)
        by_shard: dict[int, dict[str, str]] = {}
        for story_id, label in labels.items():
            by_shard.setdefault(shard_of(story_id, self.store.count), {})[story_id] = label
        for shard, changed in sorted(by_shard.items()):
            self._write(shard, partial(relabel, labels=changed))
        return GroupingSummary(looked, len(labels), time.perf_counter() - started)

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
        reader = xapian.Database(str(self.store.path))
        try:
            return self._write(0, lambda db: index_paths(db, reader, paths, self.shard, progress))
        finally:
            reader.close()

    def close(self) -> None:
        """Connections close with their threads; nothing to release here."""


class _Words(xapian.ExpandDecider):
    """Key terms for related stories, as the Whoosh engine takes them: unprefixed terms (words from any
    field), not common words, in at least two stories (a word only this story has finds nothing else)
    and in at most :data:`~search_service.similarity.RELATED_COMMON_SHARE` of them."""

    def __init__(self, db: xapian.Database) -> None:
        super().__init__()
        self.db = db
        self.most = RELATED_COMMON_SHARE * db.get_doccount()

    def __call__(self, term: bytes) -> bool:
        if term[:1].isupper() or is_common(term.decode()):
            return False
        return 2 <= self.db.get_termfreq(term) <= self.most


def _placed(grouper: Grouper, stories: dict[str, Story]) -> tuple[Grouper, dict[str, xapian.Document]]:
    """The documents of ``stories``, each placed in its group by ``grouper`` in turn."""
    docs = {}
    for story_id, story in stories.items():
        docs[story_id] = to_document(story)
        grouper.place(story_id, docs[story_id])
    return grouper, docs


def _finds(db: xapian.Database, query: xapian.Query) -> bool:
    """Whether ``query`` finds any story."""
    enquire = xapian.Enquire(db)
    enquire.set_query(query)
    enquire.set_weighting_scheme(xapian.BoolWeight())
    return enquire.get_mset(0, 1).size() > 0


def _docid(db: xapian.Database, story_id: str) -> int | None:
    for posting in db.postlist(ID + story_id):
        return posting.docid
    return None


def _hit(
    doc: xapian.Document,
    score: float | None,
    terms: dict[str, frozenset[str]],
    groups: dict[str, list[xapian.Document]],
) -> Hit:
    """The hit for ``doc``; its versions (the other stories of its group in ``groups``) are named as ``similar``."""
    hit = Hit.marked(stored_story(doc), score, terms)
    label = label_of(doc)
    if label in groups:
        ids = sorted(i for d in groups[label] if (i := fields_of(d)["id"]) != hit.id)
        hit.similar = {"count": len(ids), "ids": ids} if ids else None
    return hit


def _by_recency(
    enquire: xapian.Enquire, db: xapian.Database, depth: int, everything: int, collapse: bool, spied: bool
) -> list[tuple[xapian.Document, float | None]]:
    """The first ``depth`` stories by relevance times the recency boost (at most 1 + RECENCY_WEIGHT).

    Matches are fetched by relevance until the story at ``depth`` after
    boosting (and collapsing: a group's best boosted story stands for it)
    outscores any story not fetched yet (whose boosted score is at most the
    last fetched weight times the largest boost).  The first fetch sees
    every match, for the spies of ``enquire``; later ones need not.
    """
    upper = db.get_value_upper_bound(SLOT_SECONDS)
    newest = xapian.sortable_unserialise(upper) if upper else 0.0
    fetch = max(depth * 4, 100)
    while True:
        mset = _fetched(enquire.get_mset(0, fetch, everything))
        if spied:
            enquire.clear_matchspies()
            spied = False
        boosted = []
        for item in mset:
            value = item.document.get_value(SLOT_SECONDS)
            age_days = (newest - xapian.sortable_unserialise(value)) / 86400.0 if value else math.inf
            boost = 1.0 + RECENCY_WEIGHT * math.exp2(-age_days / RECENCY_HALF_LIFE_DAYS)
            boosted.append((item.weight * boost, -item.docid, item.document))
        boosted.sort(key=lambda b: (b[0], b[1]), reverse=True)
        if collapse:
            boosted = _best_of_groups(boosted)
        complete = mset.size() < fetch or not boosted
        if complete or (
            len(boosted) >= depth and boosted[depth - 1][0] >= mset[mset.size() - 1].weight * (1 + RECENCY_WEIGHT)
        ):
            return [(doc, score) for score, _, doc in boosted[:depth]]
        fetch *= 4


def _best_of_groups(ranked: list[tuple[float, int, xapian.Document]]) -> list[tuple[float, int, xapian.Document]]:
    """``ranked`` with only the first story of each group."""
    seen: set[str] = set()
    kept = []
    for item in ranked:
        label = label_of(item[2])
        if label is None or label not in seen:
            kept.append(item)
            if label is not None:
                seen.add(label)
    return kept


def _fetched(mset: xapian.MSet) -> xapian.MSet:
    """``mset`` with its documents fetched at once (one exchange per shard, not one per hit)."""
    mset.fetch()
    return mset


def _facets(months: dict[str, int]) -> dict[str, dict[str, int]]:
    years: dict[str, int] = {}
    for month, n in months.items():
        years[month[:4]] = years.get(month[:4], 0) + n
    return {"year": years, "month": months}


__all__ = ["XapianEngine"]
