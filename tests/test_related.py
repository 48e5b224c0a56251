"""Related stories: the story's distinctive words, a minimum score, never the story itself."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from search_service.backends.whoosh import WhooshEngine
from search_service.model import SearchRequest
from search_service.stories import Story

FILLER = [
    "said",
    "officials",
    "government",
    "week",
    "year",
    "people",
    "city",
    "country",
    "new",
    "report",
    "told",
    "statement",
    "added",
]
TOPICS = {
    "volcano": ["volcano", "eruption", "lava", "ash", "evacuated", "crater", "magma", "villages"],
    "football": ["football", "match", "goal", "striker", "league", "coach", "stadium", "season"],
    "rates": ["central", "bank", "interest", "rates", "inflation", "lending", "bonds", "currency"],
    "harvest": ["wheat", "harvest", "farmers", "grain", "tonnes", "crop", "rainfall", "fields"],
}


def story(story_id: str, topic: str | None, rng: random.Random) -> Story:
    words = TOPICS[topic] if topic else []
    body = " ".join(rng.choice(FILLER) if rng.random() < 0.5 or not words else rng.choice(words) for _ in range(80))
    headline = " ".join(rng.sample(words, 3) if words else rng.sample(FILLER, 3))
    return Story(id=story_id, headline=headline.title(), body=body + ".", published=None, source="test")


@pytest.fixture(scope="module")
def topical(tmp_path_factory: pytest.TempPathFactory) -> WhooshEngine:
    """Five stories on each of four topics, and one story of filler words only."""
    rng = random.Random(5)
    stories = [story(f"{topic}-{n}", topic, rng) for topic in TOPICS for n in range(5)]
    stories.append(story("plain", None, rng))
    engine = WhooshEngine(tmp_path_factory.mktemp("related") / "index", create=True)
    engine.upsert(stories)
    return engine


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_related_stories_share_the_subject(topical: WhooshEngine, topic: str) -> None:
    related = topical.related(f"{topic}-0")
    assert related is not None
    ids = [hit.id for hit in related]
    assert f"{topic}-0" not in ids
    assert sorted(ids) == [f"{topic}-{n}" for n in range(1, 5)], "the same topic, and no story that only shares filler"
    scores = [hit.score for hit in related]
    assert scores == sorted(scores, reverse=True)


def test_a_story_with_only_common_words_has_no_related_stories(topical: WhooshEngine) -> None:
    assert topical.related("plain") == []
    assert topical.related("no-such-story") is None


def test_related_reuters_stories_are_about_the_same_thing(reuters_index: Path) -> None:
    engine = WhooshEngine(reuters_index)
    seed = engine.search(SearchRequest(q="headline:drought china")).hits[0]
    related = engine.related(seed.id, limit=5)
    assert related and seed.id not in {h.id for h in related}
    about = [h for h in related if "drought" in h.headline.lower() or "crop" in (engine.story(h.id).body.lower())]
    assert len(about) >= 4, [h.headline for h in related]


def test_common_words_are_no_subject(tmp_path: Path) -> None:
    """Two stories on different subjects, both full of "than" and "because" (rare in the archive), are not related."""
    rng = random.Random(7)
    stories = [story(f"{topic}-{n}", topic, rng) for topic in ("volcano", "football") for n in range(4)]
    wordy = " ".join(["than because while"] * 6)
    stories += [
        Story("lava-essay", "Lava Flows Again", f"The lava and ash {wordy}.", None, "test"),
        Story("rates-essay", "Bond Yields Climb", f"Inflation and bonds {wordy}.", None, "test"),
    ]
    engine = WhooshEngine(tmp_path / "index", create=True)
    engine.upsert(stories)
    related = engine.related("lava-essay")
    assert related is not None
    assert "rates-essay" not in [hit.id for hit in related], "sharing only common words"
    assert {hit.id for hit in related} <= {f"volcano-{n}" for n in range(4)}
    assert all("<mark>than</mark>" not in text for hit in related for text in hit.highlights.get("body", []))
