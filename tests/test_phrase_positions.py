"""A phrase's positions, read from the posting blocks that hold its candidates or kept whole: the same stories."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from whoosh import query as wq

from search_service.backends.whoosh import WhooshEngine
from search_service.backends.whoosh.indexer import open_index
from search_service.backends.whoosh.postings import read_postings
from search_service.model import SearchRequest
from search_service.stories import Story

from conftest import small_posting_blocks

#: Stories per segment: each segment's postings of "gold" take several blocks (of :data:`conftest.SMALL_BLOCK`).
PER_SEGMENT = 2_600
SEGMENTS = 3
FILLER = ["copper", "silver", "zinc", "tin", "lead", "nickel", "iron", "steel", "coal", "grain", "wheat", "corn"]


def _body(rng: random.Random, i: int) -> str:
    """A story's body: "gold" in all; "mine" in a few clustered stories (a phrase's candidates in one or
    two blocks), after "gold" in some; "rush" in every sixtieth story, after "gold" in some."""
    words = [rng.choice(FILLER) for _ in range(40)]
    words[rng.randrange(40)] = "gold"
    at = words.index("gold")
    if 300 <= i % PER_SEGMENT < 310:
        words.insert(at + 1 if i % 2 else 0, "mine")
    if i % 60 == 0:
        words.insert(at + 1 if i % 2 else 0, "rush")
    return " ".join(words)


def _holds(body: str, phrase: str) -> bool:
    return f" {phrase} " in f" {body} "


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Several segments of stories, a few deleted; and one story with the phrases past position 65,535."""
    rng = random.Random(7)
    engine = WhooshEngine(tmp_path_factory.mktemp("phrases") / "index", create=True)
    bodies: dict[str, str] = {}
    with small_posting_blocks():
        for segment in range(SEGMENTS):
            stories = []
            for i in range(segment * PER_SEGMENT, (segment + 1) * PER_SEGMENT):
                bodies[f"s{i}"] = _body(rng, i)
                stories.append(Story(f"s{i}", f"Story {i}", bodies[f"s{i}"], None, "test"))
            engine.upsert(stories)
    bodies["long"] = " ".join(rng.choice(FILLER) for _ in range(70_000)) + " gold mine gold rush gold"
    engine.upsert([Story("long", "A long story", bodies["long"], None, "test")])
    for deleted in ("s301", "s303", f"s{PER_SEGMENT + 3}"):
        assert engine.delete(deleted)
        del bodies[deleted]
    return engine.index_dir, bodies


def _found(engine: WhooshEngine, q: str) -> set[str]:
    result = engine.search(SearchRequest(q=q, collapse=False, per_page=100))
    assert result.total <= 100
    return {hit.id for hit in result.hits}


@pytest.mark.parametrize("phrase", ["gold mine", "gold rush", "mine gold", "rush gold"])
def test_a_phrase_finds_the_stories_holding_it_read_from_blocks_or_kept(
    archive: tuple[Path, dict[str, str]], phrase: str
) -> None:
    """In a field and in free text: the stories whose text holds the phrase, as Whoosh's own phrase
    matcher finds them, whether its words' positions are read with their postings, read after them
    from the blocks that hold the candidates, or kept from an earlier query."""
    index_dir, bodies = archive
    expected = {story for story, body in bodies.items() if _holds(body, phrase)}
    assert 0 < len(expected) <= 100 and "long" in expected
    with open_index(index_dir).searcher() as searcher:
        leaves = [leaf for leaf, _ in searcher.reader().leaf_readers()]
        assert len(leaves) > 1 and any(leaf.has_deletions() for leaf in leaves)
        assert max(len(read_postings(leaf, "body", "gold").blocks) for leaf in leaves) > 4
        whooshs = {searcher.stored_fields(n)["id"] for n in searcher.docs_for_query(wq.Phrase("body", phrase.split()))}
    assert whooshs == expected
    for words_first in (False, True):
        engine = WhooshEngine(index_dir)  # an empty cache
        if words_first:
            assert engine.search(SearchRequest(q=phrase)).total  # the words' postings kept without their positions
        for _ in range(2):
            assert _found(engine, f'body:"{phrase}"') == expected
            assert _found(engine, f'"{phrase}"') == expected
        engine.close()
