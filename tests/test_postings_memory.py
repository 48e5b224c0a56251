"""What the postings cache holds: each word's postings once, as few bytes as they exactly need."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from search_service.analysis import normalize
from search_service.backends.whoosh import WhooshEngine, blocks, postings
from search_service.backends.whoosh.indexer import add_stories, open_index
from search_service.backends.whoosh.schema import CODEC
from search_service.model import SearchRequest
from search_service.stories import Story

BLOCK = CODEC._blocklimit  # postings a block


def test_postings_are_whooshs_with_frequencies_in_a_byte(reuters_index: Path) -> None:
    """Document numbers and frequencies read as arrays are Whoosh's, frequencies kept in one byte each,
    and a posting's cost in the cache is what its arrays hold."""
    with open_index(reuters_index).searcher() as searcher:
        leaf, _ = next(iter(searcher.reader().leaf_readers()))
        for field, word in (("body", "said"), ("body", "oil"), ("headline", "opec")):
            term = normalize(word)
            kept = postings.read_postings(leaf, field, term)
            expected = list(leaf.postings(field, term).items_as("weight"))
            assert kept.ids.tolist() == [n for n, _ in expected]
            assert kept.weights.tolist() == [w for _, w in expected]
            assert kept.tfs.dtype == np.uint8
            blocks = kept.blocks.nbytes + kept.firsts.nbytes  # where each block is, for a phrase's positions
            assert kept.nbytes == kept.ids.nbytes + kept.tfs.nbytes + blocks + postings._ENTRY_BYTES
            assert blocks == 20 * len(kept.firsts) and len(kept.firsts) == -(-len(kept.ids) // BLOCK)
            assert kept.nbytes < 5 * len(kept.ids) + 20 * len(kept.firsts) + 1000


def test_frequencies_that_a_byte_cannot_hold_stay_as_they_are() -> None:
    for tfs in ([1.0, 2.0, 300.0], [1.0, 1.5], [1.0, -1.0]):
        array = np.array(tfs, dtype=np.float32)
        kept = postings._narrow(array)
        assert kept.dtype == np.float32 and kept.tolist() == tfs
    assert postings._narrow(np.array([1.0, 255.0], dtype=np.float32)).dtype == np.uint8


@pytest.fixture(scope="module")
def three_segments(sample_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample index and two commits more, each with "prices" in its stories."""
    index = tmp_path_factory.mktemp("segments") / "index"
    shutil.copytree(sample_index, index)
    for commit in range(2):
        add_stories(
            index,
            [
                Story(f"prices-{commit}-{n}", f"Prices {n}", "Zinc prices rose. " * (n % 3 + 1), None, "test")
                for n in range(40)
            ],
        )
    return index


def test_blocks_gathered_from_the_segments_are_the_joined_postings(three_segments: Path) -> None:
    """The postings of some blocks of stories, gathered segment by segment, are those of the joined arrays."""
    with open_index(three_segments).searcher() as searcher:
        leaves = list(searcher.reader().leaf_readers())
        assert len(leaves) >= 3
        for field in ("body", "headline"):
            joined = postings.JoinedPostings(
                [(postings.read_postings(leaf, field, "price"), offset) for leaf, offset in leaves]
            )
            chosen_by_random = np.random.default_rng(7)
            size = searcher.reader().doc_count_all()
            for chosen in (np.arange(blocks.block_count(size)), np.array([0]), np.array([1])):
                for lows, highs in (blocks.block_ranges(chosen), (np.array([3, 20]), np.array([9, size]))):
                    ids, weights = joined.within(lows, highs)
                    inside = np.zeros(len(joined.ids), dtype=bool)
                    for low, high in zip(lows, highs):
                        inside |= (joined.ids >= low) & (joined.ids < high)
                    assert ids.tolist() == joined.ids[inside].tolist()
                    assert weights.tolist() == joined.weights[inside].tolist()
            subset = np.sort(chosen_by_random.choice(size, size=5, replace=False))
            ids, _ = joined.within(subset, subset + 1)
            assert ids.tolist() == [n for n in subset.tolist() if n in set(joined.ids.tolist())]


def test_a_free_text_word_is_kept_once(reuters_index: Path) -> None:
    """After free text, the cache holds the words' postings and, per commit, a few bytes a block of
    stories: no second copy of the stories with each word.  Its count is the bytes of what it holds."""
    engine = WhooshEngine(reuters_index)
    for q in ("said", "oil prices", '"mln dlrs"', "opec said"):
        assert engine.search(SearchRequest(q=q)).total > 0
    items = list(engine._cache._items.values())
    assert engine._cache.size == sum(item.nbytes for item in items)
    kept_postings = sum(item.nbytes for item in items if isinstance(item, postings.Postings))
    kept_blocks = [item for item in items if isinstance(item, blocks.WordBlocks)]
    assert len(kept_blocks) >= 4
    for item in kept_blocks:
        assert item.nbytes == item.blocks.nbytes + item.maxima.nbytes + blocks._ENTRY_BYTES
        assert item.nbytes <= 8 * blocks.block_count(engine.stats().stories) + blocks._ENTRY_BYTES
    assert sum(item.nbytes for item in kept_blocks) < 0.1 * kept_postings
