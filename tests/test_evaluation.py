"""Query evaluation over sparse arrays: the pruned top of free text against every story scored."""

from __future__ import annotations

import math
import time
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from search_service.backends.whoosh import WhooshEngine
from search_service.backends.whoosh.evaluation import Evaluation
from search_service.backends.whoosh.query import parse
from search_service.model import QueryTimeout, SearchRequest
from search_service.stories import Story

#: Free text of two and three words, frequent and rare, as people type it.
FREE_TEXT = [
    "oil prices",
    "crude oil prices",
    "said company",
    "mln dlrs",
    "japan trade",
    "bank rates cut",
    "coffee export quotas",
    "stock offer",
    "wheat sales ussr",
    "the oil",
    '"oil prices"',
    'opec "mln dlrs"',
    '"in the"',
]


@pytest.fixture(scope="module")
def reuters(reuters_index: Path) -> WhooshEngine:
    return WhooshEngine(reuters_index)


def test_free_text_scores_only_what_can_be_on_the_page(reuters: WhooshEngine) -> None:
    """The pruned evaluation finds the same stories, and scores the best of them exactly as scoring all would."""
    view = reuters._view()
    corpus = reuters._corpus_of(view.searcher)
    grouped = reuters._groups_of(view.searcher, corpus).grouped
    pruned = 0
    for q in FREE_TEXT:
        query = parse(q, reuters._parser, view.searcher, reuters.limits).query
        every = Evaluation(view.searcher, corpus, 10.0).found(query)
        for depth in (1, 10, 30):
            top = Evaluation(view.searcher, corpus, 10.0).top(query, depth, grouped)
            assert top.sample is None, "Reuters has no word in 100,000 stories"
            assert np.array_equal(top.ids, every.ids), q
            scored = np.isfinite(top.scores)
            assert np.array_equal(top.scores[scored], every.scores[scored]), q  # to the last bit
            assert np.all(every.scores[~scored] < top.floor), q
            assert top.exact_top(depth)
            best = np.lexsort((every.ids, -every.scores))[:depth]
            assert scored[best].all(), q
            pruned += int(not scored.all())
    assert pruned == len(FREE_TEXT) * 3, "some free text was scored in full"


def test_pages_are_those_of_every_story_scored(reuters: WhooshEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the engine, with near-duplicates and dates (which can leave the scored too few): the same pages."""
    requests = [
        SearchRequest(q=q, page=page, collapse=collapse, date_from=since)
        for q in FREE_TEXT[:6]
        for page in (1, 4)
        for collapse in (True, False)
        for since in (None, date(1987, 10, 19))
    ]
    pruned = [reuters.search(r) for r in requests]
    monkeypatch.setattr(Evaluation, "top", lambda self, q, depth, grouped: self.found(q))
    for request, result in zip(requests, pruned):
        every = reuters.search(request)
        assert (result.total, result.facets) == (every.total, every.facets), request
        assert [(h.id, h.score, h.similar) for h in result.hits] == [(h.id, h.score, h.similar) for h in every.hits]


def test_a_field_phrase_scores_only_where_its_words_are_adjacent(tmp_path: Path) -> None:
    """A story with the phrase's words apart, found by another word, scores as for that word alone."""
    engine = WhooshEngine(tmp_path / "index", create=True)
    engine.upsert(
        [
            Story("together", "Gas prices rise", "Opec met on Monday.", None, "test"),
            Story("apart", "Prices of gas", "Opec met on Tuesday.", None, "test"),
            Story("neither", "Weather", "Opec met on Friday.", None, "test"),
        ]
    )

    def scores(q: str) -> dict[str, float]:
        result = engine.search(SearchRequest(q=q, collapse=False))
        return {h.id: h.score for h in result.hits if h.score is not None}

    alone = scores("opec")
    with_phrase = scores('headline:"gas prices" opec')
    assert set(with_phrase) == {"together", "apart", "neither"}
    assert with_phrase["apart"] == alone["apart"] and with_phrase["neither"] == alone["neither"]
    assert with_phrase["together"] > alone["together"] and not math.isinf(with_phrase["together"])


def test_the_time_limit_counts_the_query_s_work_not_waiting(sample_index: Path) -> None:
    """A query that waited (for a core, for the interpreter, under load) is answered; one that worked past the limit is refused."""
    engine = WhooshEngine(sample_index)
    view = engine._view()
    corpus = engine._corpus_of(view.searcher)
    query = parse('"the market"', engine._parser, view.searcher, engine.limits).query
    waited = Evaluation(view.searcher, corpus, 0.05)
    time.sleep(0.1)
    waited.found(query)  # no QueryTimeout: it slept, it did not work
    worked = Evaluation(view.searcher, corpus, 0.05)
    started = time.thread_time()
    while time.thread_time() - started < 0.1:
        pass
    with pytest.raises(QueryTimeout):
        worked.found(query)
