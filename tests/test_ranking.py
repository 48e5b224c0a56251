"""BM25F computed by hand on a three-story index equals the engine's scores (to 1e-9).

The formula is written out here again, independently of
``search_service/similarity.py``: if the postings, the field lengths, the
averages, the idf or the field weights went wrong anywhere between the
index and the score, the two would differ.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from search_service.backends.whoosh import WhooshEngine
from search_service.backends.whoosh.query import COORDINATION_BONUS, FIELD_WEIGHTS
from search_service.model import SearchRequest
from search_service.similarity import K1, B, bm25f
from search_service.stories import Story

#: (id, headline, body), and each field's length in terms and count of each term, counted by hand:
#: common words count ("and", "were", "the", "of", "up" are indexed) and words are stemmed ("steady" -> "steadi").
STORIES = [
    ("a", "Zinc prices rise", "Zinc output fell sharply."),
    ("b", "Copper market quiet", "Traders said zinc and copper were steady. Zinc stocks rose."),
    ("c", "Tin output up", "The price of tin rose."),
]
LENGTHS = {"a": (3, 4), "b": (3, 10), "c": (3, 5)}  # (headline, body)
COUNTS = {  # term -> story -> (in headline, in body)
    "zinc": {"a": (1, 1), "b": (0, 2)},
    "output": {"a": (0, 1), "c": (1, 0)},
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> WhooshEngine:
    engine = WhooshEngine(tmp_path_factory.mktemp("three") / "index", create=True)
    engine.upsert([Story(i, h, b, None, "test") for i, h, b in STORIES])
    return engine


def by_hand(term: str) -> dict[str, float]:
    """BM25F of ``term`` in each story with it, from the hand counts."""
    w_head, w_body = FIELD_WEIGHTS["headline"], FIELD_WEIGHTS["body"]
    n_stories = len(STORIES)
    average = (
        w_head * sum(h for h, _ in LENGTHS.values()) / n_stories
        + w_body * sum(b for _, b in LENGTHS.values()) / n_stories
    )
    with_term = len(COUNTS[term])
    idf = math.log(1 + (n_stories - with_term + 0.5) / (with_term + 0.5))
    scores = {}
    for story, (in_head, in_body) in COUNTS[term].items():
        tf = w_head * in_head + w_body * in_body
        length = w_head * LENGTHS[story][0] + w_body * LENGTHS[story][1]
        scores[story] = idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / average))
    return scores


def engine_scores(engine: WhooshEngine, q: str) -> dict[str, float]:
    return {h.id: h.score for h in engine.search(SearchRequest(q=q)).hits if h.score is not None}


def test_the_hand_counts_are_the_analyzers() -> None:
    from search_service.analysis import term_positions

    for story, headline, body in STORIES:
        assert (sum(map(len, term_positions(headline).values())), sum(map(len, term_positions(body).values()))) == (
            LENGTHS[story]
        )
        for term, counts in COUNTS.items():
            expected = counts.get(story, (0, 0))
            assert (len(term_positions(headline).get(term, [])), len(term_positions(body).get(term, []))) == expected


@pytest.mark.parametrize("term", sorted(COUNTS))
def test_one_word_scores_equal_bm25f_by_hand(engine: WhooshEngine, term: str) -> None:
    found = engine_scores(engine, term)
    expected = by_hand(term)
    assert found.keys() == expected.keys()
    for story, score in expected.items():
        assert found[story] == pytest.approx(score, rel=0, abs=1e-9), story


def test_two_words_add_up_with_the_coordination_bonus(engine: WhooshEngine) -> None:
    """'zinc output': the words' sum, times 1 + bonus for a story with both (m = n = 2)."""
    zinc, output = by_hand("zinc"), by_hand("output")
    found = engine_scores(engine, "zinc output")
    assert found.keys() == {"a", "b", "c"}
    assert found["a"] == pytest.approx((zinc["a"] + output["a"]) * (1 + COORDINATION_BONUS), abs=1e-9)
    assert found["b"] == pytest.approx(zinc["b"], abs=1e-9)
    assert found["c"] == pytest.approx(output["c"], abs=1e-9)


def test_a_phrase_scores_as_its_words_where_they_are_adjacent(engine: WhooshEngine) -> None:
    """ "zinc output": adjacent in a's body only (b has both words apart), scored as the two words (no bonus)."""
    zinc, output = by_hand("zinc"), by_hand("output")
    assert engine_scores(engine, '"zinc output"') == {"a": pytest.approx(zinc["a"] + output["a"], abs=1e-9)}
    assert engine_scores(engine, '"output zinc"') == {}


def test_a_headline_field_query_is_plain_bm25_over_headlines(engine: WhooshEngine) -> None:
    """headline:output: one field, weight 1, the headline lengths and their average only."""
    average = sum(h for h, _ in LENGTHS.values()) / len(STORIES)
    idf = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    expected = idf * 1 * (K1 + 1) / (1 + K1 * (1 - B + B * LENGTHS["c"][0] / average))
    assert engine_scores(engine, "headline:output") == {"c": pytest.approx(expected, abs=1e-9)}


def test_the_formula_function_is_the_docstrings() -> None:
    tf, length = np.array([0.0, 1.0, 4.0]), np.array([10.0, 10.0, 30.0])
    got = bm25f(tf, length, 20.0, stories=100, with_term=7, boost=2.0)
    idf = math.log(1 + (100 - 7 + 0.5) / (7 + 0.5))
    want = [2.0 * idf * t * (K1 + 1) / (t + K1 * (1 - B + B * n / 20.0)) for t, n in zip(tf, length)]
    assert got.tolist() == pytest.approx(want, abs=1e-12)


def test_deleted_stories_leave_the_statistics(tmp_path: Path) -> None:
    """After a delete, N and the averages are the live stories': scores equal a fresh index's."""
    engine = WhooshEngine(tmp_path / "index", create=True)
    engine.upsert([Story(i, h, b, None, "test") for i, h, b in STORIES])
    engine.upsert([Story("d", "Zinc zinc", "Zinc everywhere today.", None, "test")])
    assert engine.delete("d")
    expected = by_hand("zinc")
    found = engine_scores(engine, "zinc")
    for story, score in expected.items():
        assert found[story] == pytest.approx(score, abs=1e-9), story
