"""Spelling correction: the dictionary of the stories' words, the corrector, and what people see.

The dictionary is tested on real indexes written by the real indexer (words
files beside segments, through writes, merges and a crash's leftovers); the
corrector on the Reuters stories with the spelling bench's smallest typo set
(``bench/spelling_bench.py``), and through a live server's API and pages.
"""

from __future__ import annotations

import shutil
import sys
import zlib
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_hostile import QUERY_PIECES
from test_pages import Page, api, get

from search_service.analysis import TOKEN_RE
from search_service.backends.whoosh import WhooshEngine
from search_service.backends.whoosh.indexer import add_stories, open_index
from search_service.backends.whoosh.wordfiles import words_path
from search_service.model import SearchRequest
from search_service.spelling import correct_query, correct_word, within
from search_service.stories import Story
from search_service.vocabulary import DeletionIndex, Vocabulary, WordCounts, deletions, text_words

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import spelling_bench

#: The smallest set of the spelling bench, and the share of it the engine must put right.
SMALLEST_SET = 100
GOAL = 0.9


def vocabulary(counts: dict[str, int]) -> Vocabulary:
    return Vocabulary({"batch": WordCounts.of(counts)})


def nothing_found(word: str) -> int:
    return 0


# ---------------------------------------------------------------- the dictionary


def test_words_are_folded_and_tokens_with_digits_or_dots_are_no_words() -> None:
    assert text_words("Café’s OPEC-led U.S. talks in 1987, don't X") == {"cafes", "opec", "led", "talks", "in", "dont"}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text("abcde", min_size=1, max_size=10), min_size=1, max_size=40, unique=True),
    st.text("abcde", min_size=1, max_size=10),
)
def test_candidates_hold_every_word_within_two_edits(words: list[str], word: str) -> None:
    found = vocabulary(dict.fromkeys(words, 1)).candidates(word, 2)
    assert {w for w, _ in within(word, words, 2)} <= found <= set(words)


def test_a_words_file_reads_back_as_written(tmp_path: Path) -> None:
    counts = {"coffee": 3, "cafe": 1, "exploration": 2, "été": 1}
    written = WordCounts.of(counts)
    written.write(tmp_path / "batch.words")
    read = WordCounts.read(tmp_path / "batch.words")
    assert dict(read.items()) == counts
    assert Vocabulary({"b": read}).candidates("explorattion") == Vocabulary({"b": written}).candidates("explorattion")
    assert not list((tmp_path).glob("*.tmp"))


@settings(max_examples=60, deadline=None)
@given(
    st.sets(st.text("abcde", min_size=1, max_size=9), max_size=30),
    st.sets(st.text("abcde", min_size=1, max_size=9), max_size=30),
    st.text("abcde", min_size=1, max_size=9),
)
def test_a_deletion_index_updated_to_other_words_is_the_index_of_those_words(
    before: set[str], after: set[str], word: str
) -> None:
    keys = np.array([zlib.crc32(d.encode()) for d in deletions(word)], dtype=np.uint32)
    updated = DeletionIndex.of(before).updated(after)
    assert updated.words == sorted(after)
    assert updated.near(keys) == DeletionIndex.of(after).near(keys)


def test_a_deletion_index_reads_back_as_written(tmp_path: Path) -> None:
    written = DeletionIndex.of(["coffee", "cafe", "exploration", "été"])
    written.write(tmp_path / "index.npz")
    read = DeletionIndex.read(tmp_path / "index.npz")
    keys = np.array([zlib.crc32(d.encode()) for d in deletions("explorattion")], dtype=np.uint32)
    assert read.words == written.words and read.near(keys) == written.near(keys) == ["exploration"]


def test_the_vocabulary_follows_batches_added_and_dropped() -> None:
    a, b = WordCounts.of({"oil": 2, "coffee": 1}), WordCounts.of({"oil": 1, "cocoa": 4})
    first = Vocabulary({"a": a})
    both = Vocabulary({"a": a, "b": b}, first)
    assert [both.frequency(w) for w in ("oil", "coffee", "cocoa")] == [3, 1, 4]
    only_b = Vocabulary({"b": b}, both)
    assert [only_b.frequency(w) for w in ("oil", "coffee", "cocoa")] == [1, 0, 4]
    assert only_b.candidates("cofee") == set() and only_b.largest == 4
    assert first.frequency("oil") == 2, "an older vocabulary is not changed by a newer one"


# ---------------------------------------------------------------- the corrector


@pytest.mark.parametrize(
    ("typed", "corrected"),
    [
        ('"oil explorattion" -opec', '"oil exploration" -opec'),
        ("headline:explorattion", "headline:exploration"),
        ("oil AND Explorattion", "oil AND Exploration"),
        ("EXPLORATTION", "EXPLORATION"),
        ("explor* explorattion", "explor* exploration"),
        ("published:[1987-01-01 TO 1987-12-31] explorattion", "published:[1987-01-01 TO 1987-12-31] exploration"),
        ("oil exploration -opec", None),
        ("explorat*", None),
    ],
)
def test_only_misspelt_words_are_corrected_and_the_syntax_is_kept(typed: str, corrected: str | None) -> None:
    words = vocabulary({"oil": 400, "exploration": 50, "opec": 300, "explorer": 2, "headline": 1})
    assert correct_query(typed, words, nothing_found) == corrected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([*QUERY_PIECES, "explorattion", "Cofee", "OPEK", "cofee*"]), max_size=20).map(" ".join)
    | st.text(max_size=80)
)
def test_a_correction_changes_words_only(typed: str) -> None:
    words = vocabulary({"oil": 400, "exploration": 50, "opec": 300, "coffee": 30, "price": 200, "bank": 100})
    corrected = correct_query(typed, words, nothing_found)
    if corrected is not None:
        assert corrected != typed
        assert TOKEN_RE.sub("", corrected) == TOKEN_RE.sub("", typed)


def test_a_rare_word_is_corrected_only_to_a_far_commoner_one_and_short_known_words_never() -> None:
    words = vocabulary({"government": 3000, "goverment": 8, "governor": 40, "case": 1000, "cafe": 4, "other": 5000})
    assert correct_word("goverment", words, nothing_found) == "government"
    assert correct_word("governor", words, nothing_found) is None
    assert correct_word("cafe", words, nothing_found) is None
    assert correct_word("café", words, nothing_found) is None


def test_a_form_whose_stem_the_stories_have_is_not_made_another_word() -> None:
    words = vocabulary({"accusing": 20, "access": 300, "figures": 600, "commercial": 700})

    def stem_found(word: str) -> int:
        return {"accessing": 300, "figurs": 600}.get(word, 0)

    assert correct_word("accessing", words, stem_found) is None  # neither "accusing" nor "access"
    assert correct_word("figurs", words, stem_found) == "figures"  # the same stem, spelt right
    assert correct_word("commercal", words, nothing_found) == "commercial"


# ---------------------------------------------------------------- the index's words files


def segment_words(index: Path) -> tuple[set[Path], set[Path]]:
    """The words files the live segments should have, and the words files in the folder."""
    ix = open_index(index)
    with ix.searcher() as searcher:
        expected = {words_path(index, leaf.segment()) for leaf, _ in searcher.reader().leaf_readers()}
    return expected, set(index.glob("*.words*"))


def story(n: int, text: str) -> Story:
    return Story(f"spell-{n}", f"Story {n}", text, datetime(2024, 1, 1), "test")


def test_every_segment_has_its_words_file_through_writes_merges_and_crashes(sample_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    expected, present = segment_words(index)
    assert expected and expected == present
    # A crash after a worker wrote its words file, before the commit: an orphan.
    orphan = index / "MAIN_crashedsegment0.words"
    orphan.write_bytes(b"left by a crash")
    engine = WhooshEngine(index)
    for n in range(8):  # enough single-story commits for Whoosh to merge the small segments
        engine.upsert([story(n, f"The zorblatt harvest number {n} was large.")])
    expected, present = segment_words(index)
    assert len(expected) < 1 + 8, "Whoosh merged the small segments"
    assert not orphan.exists() and expected == present
    result = engine.search(SearchRequest(q="zorblat"))
    assert (result.corrected_from, result.query, result.total) == ("zorblat", "zorblatt", 8)


def test_a_word_only_deleted_stories_had_is_not_suggested(sample_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    engine = WhooshEngine(index)
    engine.upsert([story(1, "A quoxxite mine opened.")])
    assert engine.search(SearchRequest(q="quoxite")).query == "quoxxite"
    assert engine.delete("spell-1")
    result = engine.search(SearchRequest(q="quoxite"))
    assert (result.total, result.corrected_from, result.suggestion) == (0, None, None)


def test_a_segment_without_its_words_file_is_counted_from_its_stories(sample_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    add_stories(index, [story(1, "The zorblatt harvest was large.")])
    expected, _ = segment_words(index)
    for path in expected:
        path.unlink()  # as in an index written before words files existed
    assert WhooshEngine(index).search(SearchRequest(q="zorblat")).query == "zorblatt"
    add_stories(index, [story(2, "Another story.")])
    expected, present = segment_words(index)
    assert expected == present, "the next commit writes the missing files"


# ---------------------------------------------------------------- Reuters: the bench's smallest set


@pytest.fixture(scope="module")
def reuters(reuters_index: Path) -> WhooshEngine:
    return WhooshEngine(reuters_index)


def test_the_smallest_typo_set_is_put_right(reuters: WhooshEngine, reuters_index: Path) -> None:
    texts = spelling_bench.story_texts(reuters_index)
    counts = spelling_bench.word_counts(texts)
    typos = spelling_bench.typo_set(texts, counts, SMALLEST_SET, seed=7)
    assert len(typos) == SMALLEST_SET and not any(t.typo in counts for t in typos)
    for beside in (False, True):
        share = spelling_bench.fixed_share(reuters, typos, beside)
        assert share >= GOAL, f"{share:.0%} of the typos put right ({'beside a word' if beside else 'alone'})"


# ---------------------------------------------------------------- through the API and the pages


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("coffe", "coffee"),
        ("explorattion", "exploration"),
        ('"oil explorattion" -opec', '"oil exploration" -opec'),
    ],
)
def test_api_shows_the_results_of_the_correction(reuters_server, typed: str, meant: str) -> None:
    result = api(reuters_server, "/api/search", q=typed)
    assert (result["query"], result["corrected_from"], result["suggestion"]) == (meant, typed, None)
    assert result["total"] == api(reuters_server, "/api/search", q=meant)["total"] > 0
    original = api(reuters_server, "/api/search", q=typed, spell="off")
    assert (original["query"], original["total"], original["corrected_from"]) == (typed, 0, None)
    assert original["suggestion"] == meant


def test_api_suggests_beside_results(reuters_server) -> None:
    result = api(reuters_server, "/api/search", q="petroleum explorattion")
    assert result["total"] > 0 and result["corrected_from"] is None
    assert result["suggestion"] == "petroleum exploration"


def test_an_accented_word_is_not_made_another_word(reuters_server) -> None:
    result = api(reuters_server, "/api/search", q="café")
    assert result["query"] == "café" and result["corrected_from"] is None
    assert result["suggestion"] is None and result["total"] > 0


@pytest.mark.parametrize(
    ("value", "corrected"), [("off", False), ("0", False), ("no", False), ("on", True), ("x", True)]
)
def test_spell_is_on_unless_switched_off(reuters_server, value: str, corrected: bool) -> None:
    result = api(reuters_server, "/api/search", q="coffe", spell=value)
    assert (result["corrected_from"] == "coffe") is corrected


def test_the_page_shows_results_for_the_correction_and_offers_the_query_as_typed(reuters_server) -> None:
    page = Page(get(reuters_server, "/search", q="coffe").text)
    assert "Showing results for coffee . Search instead for coffe" in page.text
    assert page.find("li", **{"class": "result"}) and "Did you mean" not in page.text
    (instead,) = [a["href"] for t, a in page.tags if t == "a" and "spell=off" in a.get("href", "")]
    assert parse_qs(urlsplit(instead).query) == {"q": ["coffe"], "spell": ["off"]}
    typed = Page(get(reuters_server, instead).text)
    assert "No stories match" in typed.text and typed.text.count("Did you mean") == 1
    (fix,) = typed.find("a", rel="nofollow")
    assert parse_qs(urlsplit(fix["href"]).query) == {"q": ["coffee"]}


def test_the_page_says_did_you_mean_once_above_results(reuters_server) -> None:
    page = Page(get(reuters_server, "/search", q="petroleum explorattion").text)
    assert page.text.count("Did you mean") == 1 and "Showing results for" not in page.text
    assert page.find("li", **{"class": "result"})
    (fix,) = page.find("a", rel="nofollow")
    assert parse_qs(urlsplit(fix["href"]).query) == {"q": ["petroleum exploration"]}
