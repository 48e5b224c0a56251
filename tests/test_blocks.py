"""Free text by blocks: the top hits of every story scored, and totals estimated ("about N") for common words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search_service.backends.whoosh import WhooshEngine, blocks, evaluation
from search_service.backends.whoosh.evaluation import Evaluation
from search_service.backends.whoosh.query import parse
from search_service.config import Config
from search_service.model import SearchRequest
from search_service.web import create_app

#: Free text of one to three words and phrases, from common ("said", "in the") to rare.
QUERIES = [
    "said",
    "oil",
    "mln dlrs",
    "oil prices",
    "bank rates cut",
    "coffee export quotas",
    "opec",
    '"in the"',
    '"oil prices"',
    'opec "mln dlrs"',
]
#: On Reuters (19,040 stories) the words' stories are counted exactly; from this many, estimated.
LOW = 2_000


@pytest.fixture(scope="module")
def reuters(reuters_index: Path) -> WhooshEngine:
    return WhooshEngine(reuters_index)


def every_story_scored(engine: WhooshEngine, request: SearchRequest, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with monkeypatch.context() as patch:
        patch.setattr(Evaluation, "top", lambda self, q, depth, grouped: self.found(q))
        return engine.search(request)


def test_estimated_pages_are_those_of_every_story_scored(
    reuters: WhooshEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of common words (estimated totals) show the stories, scores and versions of scoring every story."""
    monkeypatch.setattr(evaluation, "ESTIMATE_FROM", LOW)
    estimated = 0
    for q in QUERIES:
        for page, collapse in ((1, True), (3, True), (1, False), (20, False)):
            request = SearchRequest(q=q, page=page, collapse=collapse)
            result, exact = reuters.search(request), every_story_scored(reuters, request, monkeypatch)
            assert [(h.id, h.score, h.similar) for h in result.hits] == [(h.id, h.score, h.similar) for h in exact.hits]
            assert exact.estimated is None
            if result.estimated:
                estimated += 1
                assert abs(result.total - exact.total) <= 0.15 * exact.total, (q, result.total, exact.total)
                assert result.total == blocks.about(result.total), "three significant digits"
                assert set(result.facets["year"]) <= set(exact.facets["year"])
            else:
                assert (result.total, result.facets) == (exact.total, exact.facets)
    assert estimated >= 12, "the common words' totals were not estimated"


def test_the_top_is_scored_in_few_blocks(reuters: WhooshEngine) -> None:
    """Two common words: the ten best stories are found scoring a fraction of the stories with either word."""
    view = reuters._view()
    corpus = reuters._corpus_of(view.searcher)
    grouped = reuters._groups_of(view.searcher, corpus).grouped
    query = parse("mln dlrs", reuters._parser, view.searcher, reuters.limits).query
    every = Evaluation(view.searcher, corpus, 10.0).found(query)
    top = Evaluation(view.searcher, corpus, 10.0).top(query, 10, grouped)
    scored = np.isfinite(top.scores)
    assert scored.sum() < 0.5 * len(every.ids), "block maxima pruned nothing"
    best = np.lexsort((every.ids, -every.scores))[:10]
    assert np.array_equal(top.scores[best], every.scores[best])  # to the last bit
    assert np.all(every.scores[~scored] < top.floor)


def test_about_rounds_to_three_digits() -> None:
    assert [blocks.about(n) for n in (0, 0.4, 7, 123.4, 9_999, 123_456, 1_234_567)] == [
        0,
        1,
        7,
        123,
        10_000,
        123_000,
        1_230_000,
    ]


def test_an_estimated_total_says_so_in_json_and_html(reuters_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API adds ``"estimated": true``; the page says "About N stories match" and "about" beside each facet."""
    monkeypatch.setattr(evaluation, "ESTIMATE_FROM", LOW)
    client = create_app(Config(index_dir=reuters_index, stories_dir=None, rate_limit=None)).test_client()
    common, rare = (client.get("/api/search", query_string={"q": q}).get_json() for q in ("said", "opec"))
    assert common["estimated"] is True and common["total"] > LOW
    assert "estimated" not in rare and rare["total"] < LOW
    page = client.get("/search", query_string={"q": "said"}).get_data(as_text=True)
    assert f"About {common['total']:,} stories match" in page
    assert '<span class="count">about ' in page
    exact = client.get("/search", query_string={"q": "opec"}).get_data(as_text=True)
    assert f"{rare['total']:,} stories match" in exact and "About" not in exact and "about " not in exact
