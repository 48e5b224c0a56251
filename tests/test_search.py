"""The search core as a library, on real indexes: the sample stories and the Reuters corpus.

Expected results are derived from the stored stories themselves (tokenised
with the same analyzer the index used), so the tests say *why* a story must or
must not be found rather than repeating ids the engine once returned.
"""

from __future__ import annotations

import html
import math
import re
import shutil
import time
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search_service.analysis import fold, normalize, tokens
from search_service.backends.whoosh import WhooshEngine, evaluation, postings
from search_service.backends.whoosh.corpus import Corpus, day_number
from search_service.backends.whoosh.indexer import add_stories, delete_story, open_index
from search_service.backends.whoosh.query import COORDINATION_BONUS, make_parser, parse
from search_service.config import Config, Limits
from search_service.engine import open_engine
from search_service.highlight import FRAGMENT_CHARS, MAX_FRAGMENTS
from search_service.model import QueryError, SearchRequest, SearchResult
from search_service.spelling import distance
from search_service.stories import Story

TAG = re.compile(r"<[^>]*>")


def stored(index_dir: Path) -> dict[str, dict[str, Any]]:
    """Every live story in the index, by id, as stored."""
    with open_index(index_dir).searcher() as searcher:
        return {fields["id"]: fields for fields in searcher.all_stored_fields()}


def terms(text: str) -> set[str]:
    return {term for term, *_ in tokens(text)}


def term(word: str) -> str:
    found = normalize(word)
    assert found is not None, word
    return found


def having(stories: dict[str, dict[str, Any]], word: str, fields: Iterable[str] = ("headline", "body")) -> set[str]:
    """Ids of the stories with ``word`` (as the analyzer sees it) in one of ``fields``."""
    wanted = term(word)
    return {i for i, s in stories.items() if any(wanted in terms(s[f]) for f in fields)}


def search(engine: WhooshEngine, q: str, **kwargs: Any) -> SearchResult:
    return engine.search(SearchRequest(q=q, **kwargs))


def all_scores(engine: WhooshEngine, q: str) -> dict[str, float]:
    """Every matching story's score, page by page (near-duplicates not collapsed: each story, whatever ranks first)."""
    scores: dict[str, float] = {}
    page = 1
    while True:
        result = search(engine, q, per_page=100, page=page, collapse=False)
        scores.update((h.id, h.score) for h in result.hits if h.score is not None)
        if page * 100 >= result.total:
            return scores
        page += 1


def all_ids(engine: WhooshEngine, q: str, **kwargs: Any) -> set[str]:
    result = search(engine, q, per_page=100, **kwargs)
    assert result.total <= 100, "use a narrower query for an exact set"
    return {h.id for h in result.hits}


@pytest.fixture(scope="module")
def sample(sample_index: Path) -> WhooshEngine:
    return WhooshEngine(sample_index)


@pytest.fixture(scope="module")
def sample_stories(sample_index: Path) -> dict[str, dict[str, Any]]:
    return stored(sample_index)


@pytest.fixture(scope="module")
def reuters(reuters_index: Path) -> WhooshEngine:
    return WhooshEngine(reuters_index)


# ---------------------------------------------------------------- ranking


def test_stories_with_every_word_rank_first(reuters: WhooshEngine, reuters_index: Path) -> None:
    every = search(reuters, "coffee AND export AND quotas", per_page=1).total
    result = search(reuters, "coffee export quotas", per_page=100)
    assert 10 < every < 90 and result.total > every  # OR: partial matches are found too
    wanted = {term(w) for w in ("coffee", "export", "quotas")}
    with open_index(reuters_index).searcher() as searcher:
        complete = [
            wanted <= terms(f"{s['headline']} {s['body']}") for s in (searcher.document(id=h.id) for h in result.hits)
        ]
    # The stories with every word fill the first places; partial matches come after them.
    assert all(complete[: every * 3 // 4]), complete
    assert sum(complete[:every]) >= 0.85 * every and not all(complete), complete


def test_a_headline_word_weighs_more_than_a_body_word(tmp_path: Path) -> None:
    filler = "The council met on Tuesday and the minutes were read aloud to all the members."
    index = tmp_path / "index"
    add_stories(
        index,
        [
            Story("in-body", "Council meets on Tuesday", f"{filler} Zinc was mentioned.", None, "test"),
            Story("in-headline", "Zinc was mentioned", f"{filler} Council meets on Tuesday.", None, "test"),
        ],
    )
    hits = search(WhooshEngine(index), "zinc").hits
    assert [h.id for h in hits] == ["in-headline", "in-body"]
    assert hits[0].score > 1.5 * hits[1].score  # the same words, only where "zinc" stands differs


def test_a_repeated_word_counts_as_often_as_it_is_given(reuters: WhooshEngine) -> None:
    once, twice = search(reuters, "coffee", per_page=20), search(reuters, "coffee coffee", per_page=20)
    assert [h.id for h in once.hits] == [h.id for h in twice.hits]
    assert all(b.score == pytest.approx(2 * a.score) for a, b in zip(once.hits, twice.hits))
    # Beside another word, the repeated one weighs three times; the other word's part is unchanged.
    coffee, quotas = all_scores(reuters, "coffee"), all_scores(reuters, "quotas")
    plain, stressed = all_scores(reuters, "coffee quotas"), all_scores(reuters, "coffee coffee coffee quotas")
    assert plain.keys() == stressed.keys() == coffee.keys() | quotas.keys()
    both = coffee.keys() & quotas.keys()
    assert len(both) >= 10
    for story in both:  # the same bonus for matching both words, so the ratio is the words' sums'
        ratio = (3 * coffee[story] + quotas[story]) / (coffee[story] + quotas[story])
        assert stressed[story] == pytest.approx(ratio * plain[story]), story
    for story in quotas.keys() - coffee.keys():
        assert stressed[story] == pytest.approx(plain[story]), story


def test_the_bonus_for_matching_more_words_fades_for_long_questions(sample_index: Path) -> None:
    ix = open_index(sample_index)
    with ix.searcher() as searcher:

        def scale(text: str) -> float:
            return parse(text, make_parser(ix.schema), searcher, Limits()).query.scale

        question = "why did the storm surge break through the old sea wall last winter"
        longer = f"{question} and what are the towns along the coast doing to rebuild their defences"
        assert scale("storm surge") == scale("storm surge wall") == COORDINATION_BONUS
        assert 0 < scale(longer) < scale(question) < COORDINATION_BONUS


def test_joined_words_are_searched_as_their_words(sample: WhooshEngine) -> None:
    for joined, apart in (("storm-surge", "storm surge"), ("rain/drought", "rain drought")):
        assert all_ids(sample, joined) == all_ids(sample, apart) != set()


def test_a_long_question_finds_stories(reuters: WhooshEngine) -> None:
    question = "What did the OPEC oil ministers decide about production quotas at their meeting in Vienna?"
    result = search(reuters, question)
    assert result.total > 10 and len(result.hits) == 10
    top = " ".join(f"{h.headline}" for h in result.hits).lower()
    assert "opec" in top or "oil" in top


# ---------------------------------------------------------------- query syntax


def test_boolean_operators_match_the_stored_text(
    sample: WhooshEngine, sample_stories: dict[str, dict[str, Any]]
) -> None:
    drought = having(sample_stories, "drought")
    coffee = having(sample_stories, "coffee")
    brazil = having(sample_stories, "brazil")
    assert len(drought) >= 3 and drought & coffee and drought & brazil  # the sample exercises every case
    assert all_ids(sample, "drought") == drought
    assert all_ids(sample, "drought AND coffee") == drought & coffee
    assert all_ids(sample, "drought OR coffee") == drought | coffee
    assert all_ids(sample, "drought coffee") == drought | coffee
    assert all_ids(sample, "drought NOT brazil") == drought - brazil
    assert all_ids(sample, "drought -brazil") == drought - brazil
    assert all_ids(sample, "drought OR coffee NOT brazil") == (drought | coffee) - brazil
    assert all_ids(sample, "+drought coffee") == drought


def test_phrases_fields_dates_and_wildcards(sample: WhooshEngine, sample_stories: dict[str, dict[str, Any]]) -> None:
    def side_by_side(first: str, second: str) -> set[str]:
        pattern = re.compile(rf"\b{first}\W+{second}\b", re.I)
        return {i for i, s in sample_stories.items() if pattern.search(f"{s['headline']} {s['body']}")}

    assert side_by_side("storm", "surge") and all_ids(sample, '"storm surge"') == side_by_side("storm", "surge")
    both = having(sample_stories, "storm") & having(sample_stories, "wall")
    assert both - side_by_side("storm", "wall")  # a story with both words, apart
    assert all_ids(sample, '"storm wall"') == side_by_side("storm", "wall")

    in_headline = having(sample_stories, "drought", ["headline"])
    assert in_headline < having(sample_stories, "drought")  # some stories only say it in the body
    assert all_ids(sample, "headline:drought") == in_headline
    assert all_ids(sample, "body:drought") == having(sample_stories, "drought", ["body"])

    in_2022 = {i for i, s in sample_stories.items() if s["published"].year == 2022}
    in_range = all_ids(sample, "drought published:[2022-01-01 TO 2022-12-31]")
    assert in_range == having(sample_stories, "drought") & in_2022

    prefixed = {i for i, s in sample_stories.items() if re.search(r"\bchip", f"{s['headline']} {s['body']}", re.I)}
    assert prefixed and all_ids(sample, "chip*") == prefixed


@pytest.mark.parametrize(
    ("q", "request_args", "words"),
    [
        ("x" * (Limits().max_query_chars + 1), {}, [str(Limits().max_query_chars)]),
        (" ".join(f"word{n}" for n in range(Limits().max_terms + 1)), {}, [str(Limits().max_terms)]),
        ("drought", {"per_page": Limits().max_per_page + 1}, ["per_page"]),
        ("drought", {"per_page": 0}, ["per_page"]),
        ("drought", {"page": 0}, ["page"]),
        ("drought", {"page": Limits().max_depth // 10 + 1, "per_page": 10}, [f"{Limits().max_depth:,}"]),
        ("drought", {"sort": "best"}, ["sort"]),
        ("drought", {"date_from": date(2022, 1, 1), "date_to": date(2021, 1, 1)}, ["after"]),
    ],
)
def test_limits_raise_query_error_with_a_message(
    sample: WhooshEngine, q: str, request_args: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(QueryError) as raised:
        search(sample, q, **request_args)
    for word in words:
        assert word in str(raised.value)


@pytest.mark.parametrize("q", ["", "   ", "?!", "(", '""', "+"])
def test_nothing_to_search_for_is_no_stories_and_a_notice(sample: WhooshEngine, q: str) -> None:
    result = search(sample, q)
    assert result.total == 0 and result.hits == [] and result.notice


def test_wildcard_expansion_is_bounded(sample_index: Path, sample_stories: dict[str, dict[str, Any]]) -> None:
    words = {t for s in sample_stories.values() for t in terms(f"{s['headline']} {s['body']}") if t.startswith("co")}
    assert len(words) > 3
    with pytest.raises(QueryError, match="more than 3 different words"):
        search(WhooshEngine(sample_index, Limits(max_expansions=3)), "co*")
    assert search(WhooshEngine(sample_index, Limits(max_expansions=len(words))), "co*").total > 0


# ---------------------------------------------------------------- sorting, dates, facets


def test_sorting_by_date(sample: WhooshEngine, sample_stories: dict[str, dict[str, Any]]) -> None:
    q = "drought OR prices OR water"
    newest = search(sample, q, sort="newest", per_page=100)
    dates = [h.published for h in newest.hits]
    assert len(dates) > 2 and dates == sorted(dates, reverse=True)
    assert all(h.score is None for h in newest.hits)
    oldest = search(sample, q, sort="oldest", per_page=100)
    assert [h.published for h in oldest.hits] == sorted(dates)
    assert {h.id for h in oldest.hits} == {h.id for h in newest.hits}
    assert all(h.published == sample_stories[h.id]["published"] for h in newest.hits)


def test_recent_favours_newer_stories(reuters: WhooshEngine) -> None:
    relevance = search(reuters, "oil prices", per_page=20)
    recent = search(reuters, "oil prices", sort="recent", per_page=20)
    assert [h.id for h in recent.hits] != [h.id for h in relevance.hits]
    assert recent.total == relevance.total
    assert all(h.score is not None for h in recent.hits)
    average = lambda hits: sum(h.published.timestamp() for h in hits) / len(hits)  # noqa: E731
    assert average(recent.hits) > average(relevance.hits)


def test_facets_and_date_filters(sample: WhooshEngine, sample_stories: dict[str, dict[str, Any]]) -> None:
    q = "drought OR prices OR water OR plants"
    result = search(sample, q, per_page=100)
    assert all(s["published"] is not None for s in sample_stories.values())
    assert sum(result.facets["year"].values()) == sum(result.facets["month"].values()) == result.total
    for hit in result.hits:
        assert result.facets["month"][f"{hit.published:%Y-%m}"] >= 1
    year = max(result.facets["year"], key=lambda y: result.facets["year"][y])
    filtered = search(sample, q, per_page=100, date_from=date(int(year), 1, 1), date_to=date(int(year), 12, 31))
    assert filtered.total == result.facets["year"][year]
    assert {h.id for h in filtered.hits} == {h.id for h in result.hits if h.published.year == int(year)}
    one_day = result.hits[0].published.date()
    same_day = search(sample, q, per_page=100, date_from=one_day, date_to=one_day)
    assert result.hits[0].id in {h.id for h in same_day.hits}
    assert all(h.published.date() == one_day for h in same_day.hits)
    after = search(sample, q, per_page=100, date_from=one_day)
    assert all(h.published.date() >= one_day for h in after.hits)
    # The ends of the calendar (found by the fuzzing in test_openapi.py: once a 500).
    assert search(sample, q, date_from=date.min).total == result.total == search(sample, q, date_to=date.max).total
    assert search(sample, q, date_to=date.min).total == 0 == search(sample, q, date_from=date.max).total


# ---------------------------------------------------------------- highlights


def check_highlights(hit_highlights: dict[str, Any], story: dict[str, Any]) -> None:
    """Escaped text, ``<mark>`` the only markup, fragments cut at words with ellipses where cut."""
    headline = hit_highlights["headline"]
    assert set(TAG.findall(headline)) <= {"<mark>", "</mark>"}
    assert html.unescape(TAG.sub("", headline)) == story["headline"]
    body = story["body"].replace("\n\n", " ")
    assert 1 <= len(hit_highlights["body"]) <= MAX_FRAGMENTS
    for fragment in hit_highlights["body"]:
        assert set(TAG.findall(fragment)) <= {"<mark>", "</mark>"}
        text = html.unescape(TAG.sub("", fragment))
        core = text.removeprefix("… ").removesuffix(" …")
        assert len(core) <= FRAGMENT_CHARS * 1.5, core
        at = body.find(core)
        assert at != -1, core
        end = at + len(core)
        assert text.startswith("… ") == (at > 0)
        assert text.endswith(" …") == (end < len(body))
        assert at == 0 or not (body[at - 1].isalnum() and core[0].isalnum()), core
        assert end == len(body) or not (body[end].isalnum() and core[-1].isalnum()), core


def test_highlights_mark_escape_and_cut_fragments(reuters: WhooshEngine, reuters_index: Path) -> None:
    result = search(reuters, "oil prices opec", per_page=50)
    with open_index(reuters_index).searcher() as searcher:
        for hit in result.hits:
            check_highlights(hit.highlights, searcher.document(id=hit.id))
    assert any("<mark>" in h.highlights["headline"] for h in result.hits)
    assert any(len(h.highlights["body"]) > 1 for h in result.hits)
    marked = " ".join(" ".join(h.highlights["body"]) for h in result.hits)
    assert {fold(w) for w in re.findall(r"<mark>(.*?)</mark>", marked)} >= {"oil", "prices", "opec"}


def test_reuters_ticker_headlines_are_escaped(reuters: WhooshEngine) -> None:
    result = search(reuters, "shares stake", per_page=100)
    tickers = [h for h in result.hits if re.search(r"<\w+>", h.headline)]
    assert tickers, "some Reuters headlines name a company's <TICKER>"
    for hit in tickers:
        ticker = re.search(r"<(\w+)>", hit.headline).group(1)
        assert f"&lt;{ticker}&gt;" in TAG.sub("", hit.highlights["headline"])
        assert f"<{ticker}>" not in hit.highlights["headline"]


def test_sample_markup_is_escaped(sample: WhooshEngine, sample_stories: dict[str, dict[str, Any]]) -> None:
    result = search(sample, "script alert website")
    hit = result.hits[0]
    assert "<script>" in sample_stories[hit.id]["body"] and "<hia>" in sample_stories[hit.id]["headline"]
    assert "&lt;hia&gt;" in hit.highlights["headline"]
    assert any("&lt;script&gt;" in TAG.sub("", f) for f in hit.highlights["body"])
    check_highlights(hit.highlights, sample_stories[hit.id])


def marked_words(highlights: dict[str, Any]) -> list[str]:
    text = " ".join([highlights["headline"], *highlights["body"]])
    return [fold(w) for w in re.findall(r"<mark>(.*?)</mark>", text)]


def test_a_phrase_is_marked_where_its_words_stand_together(sample: WhooshEngine) -> None:
    hit = search(sample, '"war of attrition"').hits[0]
    body = " ".join(hit.highlights["body"])
    assert "<mark>war</mark> <mark>of</mark> <mark>attrition</mark>" in body
    assert "wars" in html.unescape(TAG.sub("", body)), "the sample has a lone 'wars' beside the phrase"
    assert marked_words(hit.highlights) == ["war", "of", "attrition"]
    # The same words, not as a phrase, are each marked wherever they are.
    loose = search(sample, "war attrition").hits[0]
    assert hit.id == loose.id and "wars" in marked_words(loose.highlights)


def test_a_long_question_marks_its_distinctive_words_not_its_filler(reuters: WhooshEngine) -> None:
    question = "what would the oil ministers have said about the opec production quota agreement"
    result = search(reuters, question, per_page=20)
    marked = {w for hit in result.hits for w in marked_words(hit.highlights)}
    assert {"opec", "quota"} <= marked
    assert not marked & {"said", "would"}, marked
    # Typed alone, or in a short query, a common word is marked.
    assert "said" in marked_words(search(reuters, "opec said").hits[0].highlights)


# ---------------------------------------------------------------- suggestions, related, autocomplete


def words_of(index_dir: Path) -> set[str]:
    with open_index(index_dir).searcher() as searcher:
        texts = (f"{s['headline']} {s['body']}" for s in searcher.all_stored_fields())
        return {fold(w) for text in texts for w in re.findall(r"\w+", text)}


@pytest.fixture(scope="module")
def reuters_words(reuters_index: Path) -> set[str]:
    return words_of(reuters_index)


@pytest.mark.parametrize("typo", ["petrolium", "inflasion", "economik", "irak"])
def test_a_query_that_finds_nothing_shows_the_results_of_its_correction(
    reuters: WhooshEngine, reuters_words: set[str], typo: str
) -> None:
    assert search(reuters, typo, spell=False).total == 0
    result = search(reuters, typo)
    assert result.corrected_from == typo and result.query != typo and result.suggestion is None
    # A word from a story, not a stem ("inflat", "econom" are no words of any story).
    assert result.query in reuters_words
    assert result.total == search(reuters, result.query).total > 0
    assert [h.id for h in result.hits] == [h.id for h in search(reuters, result.query).hits]


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("irak", "iraq"),  # not the commoner "iran": k and q sound alike, n is another letter
        ("petrolium", "petroleum"),
        ("cofee", "coffee"),  # not the commoner "come"
        ("sugr", "sugar"),  # not the commoner "sign"
        ("opek", "opec"),  # not the commoner "open"
        ("stok", "stock"),
        ("mexicco", "mexico"),  # the usual spelling, not the first story's "Mexico's"
        ("drout", "drought"),  # not "droit": a silent "gh" left out is a slip
    ],
)
def test_spelling_correction_is_the_word_meant(reuters: WhooshEngine, typo: str, meant: str) -> None:
    assert search(reuters, typo).query == meant
    assert search(reuters, typo, spell=False).suggestion == meant


def test_spelling_prefers_fewer_and_sound_keeping_edits() -> None:
    assert distance("irak", "iraq") < distance("irak", "iran") == 1
    assert distance("teh", "the") == 1  # neighbours swapped
    assert distance("kitten", "sitting") == 2.5  # k/s: 1, e/i: a slip, g: 1
    assert distance("cofe", "coffe") == distance("stok", "stock") == 0.5
    assert distance("sugr", "sugar") == 1 < distance("sugr", "sign") == 1.5  # u/i: a slip, r/n: not
    assert distance("drout", "drought") == distance("hight", "hit") == 0.5  # a silent "gh": half a slip a letter


def test_no_suggestion_when_every_word_is_right(reuters: WhooshEngine) -> None:
    result = search(reuters, "oil prices")
    assert result.total > 100 and result.suggestion is None and result.corrected_from is None


def test_related_stories(sample: WhooshEngine, reuters: WhooshEngine, reuters_index: Path) -> None:
    assert sample.related("no-such-story") is None
    with open_index(reuters_index).searcher() as searcher:
        story_id = search(reuters, "coffee quotas").hits[0].id
        own = terms(f"{searcher.document(id=story_id)['headline']} {searcher.document(id=story_id)['body']}")
        related = reuters.related(story_id)
        assert related and len(related) <= 10
        assert story_id not in {h.id for h in related}
        for hit in related:
            other = searcher.document(id=hit.id)
            assert own & terms(f"{other['headline']} {other['body']}")
    scores = [h.score for h in related]
    assert scores == sorted(scores, reverse=True)


def test_autocomplete(reuters: WhooshEngine, reuters_words: set[str]) -> None:
    completions = reuters.suggest("petro")
    assert 1 < len(completions) <= 10
    assert all(c.startswith("petro") and c in reuters_words for c in completions)
    assert reuters.suggest("oil pri") and all(c.startswith("oil pri") for c in reuters.suggest("oil pri"))
    assert reuters.suggest("p") == []
    # Common words are indexed (for "The Who") but not offered: they would crowd out the words people want.
    for prefix, common in (("fo", "for"), ("th", "the"), ("wh", "which"), ("ab", "about")):
        offered = reuters.suggest(prefix)
        assert offered and common not in offered, (prefix, offered)


# ---------------------------------------------------------------- live index


def test_a_story_indexed_while_the_engine_is_open_becomes_searchable(sample_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    engine = WhooshEngine(index)
    assert search(engine, "locusts").total == 0
    story = Story(
        "locust-1",
        "Locust swarms reach the coast",
        "Swarms of locusts stripped the fields.",
        datetime(2024, 2, 3, 4, 5),
        "test",
    )
    add_stories(index, [story])
    written = time.monotonic()
    while search(engine, "locusts").total == 0:
        assert time.monotonic() - written < 10, "not visible after 10 s"
        time.sleep(0.05)
    seen_after = time.monotonic() - written
    assert seen_after < 3.0, f"visible only after {seen_after:.1f} s"
    hit = search(engine, "locusts").hits[0]
    assert (hit.id, hit.published) == ("locust-1", story.published)
    assert engine.story("locust-1").headline == story.headline


def test_the_per_story_arrays_match_the_stored_stories(sample_index: Path, tmp_path: Path) -> None:
    """Corpus reads Whoosh's columns as arrays; each story's values must be what it stored."""
    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    add_stories(
        index,
        [
            Story("undated-1", "No date", "Zinc prices rose.", None, "test"),
            Story("leap-1", "Late on a leap day", "Zinc prices fell.", datetime(2024, 2, 29, 23, 59, 59), "test"),
        ],
    )
    gone = next(iter(stored(index)))
    assert delete_story(index, gone)
    with open_index(index).searcher() as searcher:
        reader = searcher.reader()
        corpus = Corpus.load(searcher, postings.PostingsCache(0))
        assert corpus.size == reader.doc_count_all() and corpus.alive.sum() == reader.doc_count() == 9
        for n in range(corpus.size):
            assert corpus.alive[n] == (not reader.is_deleted(n))
            if not corpus.alive[n]:
                continue
            published = searcher.stored_fields(n).get("published")
            if published is None:
                assert math.isnan(corpus.days[n]) and corpus.months[n] == -1
            else:
                assert corpus.days[n] == pytest.approx(day_number(published), abs=1e-9)
                assert corpus.months[n] == published.year * 12 + published.month - 1
        assert corpus.months[searcher.document_number(id="leap-1")] == 2024 * 12 + 1
    assert WhooshEngine(index).stats().last == datetime(2024, 2, 29, 23, 59, 59)


def test_a_write_reads_only_the_new_segments_postings(
    sample_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The postings cache is per segment: a commit does not make readers decode the old segments again."""
    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    engine = WhooshEngine(index)
    read: list[str] = []
    real = evaluation.read_postings

    def spy(leaf, fieldname, text):  # type: ignore[no-untyped-def]
        read.append(leaf.segment().segment_id())
        return real(leaf, fieldname, text)

    monkeypatch.setattr(evaluation, "read_postings", spy)
    first = search(engine, "drought storm")
    old_segments = set(read)
    assert old_segments and first.total > 0
    read.clear()
    assert search(engine, "drought storm").total == first.total and not read  # cached
    engine.upsert([Story("dry-1", "Drought and storm", "A drought, then a storm.", None, "test")])
    after = search(engine, "drought storm")
    assert after.total == first.total + 1 and after.hits[0].id == "dry-1"
    assert read and not set(read) & old_segments, "an unchanged segment's postings were read again"


def test_the_postings_cache_is_bounded_in_bytes(reuters_index: Path) -> None:
    """The cache keeps postings up to its byte budget, evicting the least recently used."""
    with open_index(reuters_index).searcher() as searcher:
        leaf, _ = next(iter(searcher.reader().leaf_readers()))
        words = ["oil", "prices", "said", "bank"]
        loaded = {w: postings.read_postings(leaf, "body", normalize(w)) for w in words}
        extra = postings.read_postings(leaf, "body", normalize("trade"))
    said = loaded["said"]
    assert said.nbytes > said.ids.nbytes + said.tfs.nbytes
    capacity = sum(p.nbytes for p in loaded.values())
    cache = postings.PostingsCache(capacity)
    for w in words:
        assert cache.get(w, lambda w=w: loaded[w]) is loaded[w]
    assert cache.size == capacity  # all four kept
    assert cache.get("oil", lambda: pytest.fail("evicted")) is loaded["oil"]
    cache.get("trade", lambda: extra)
    assert cache.size <= capacity
    reloaded: list[str] = []
    cache.get("prices", lambda: reloaded.append("prices") or loaded["prices"])
    assert reloaded == ["prices"]  # the least recently used made room; "oil" was used again
    assert cache.get("oil", lambda: pytest.fail("evicted")) is loaded["oil"]
    nothing = postings.PostingsCache(0)
    assert nothing.get("said", lambda: said) is said and nothing.size == 0


def test_the_cache_budget_is_the_engines_setting(sample_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SEARCH_SERVICE_CACHE_MB reaches the engine: with room, a repeated query reads nothing; with none, all again."""
    read: list[str] = []
    real = evaluation.read_postings
    monkeypatch.setattr(evaluation, "read_postings", lambda *args: read.append(args[2]) or real(*args))
    for budget, reads_again in (("64", False), ("0.000001", True)):
        engine = open_engine(Config.from_env({"SEARCH_SERVICE_CACHE_MB": budget}, index_dir=sample_index))
        first = search(engine, "drought storm")
        assert read and first.total > 0
        read.clear()
        assert search(engine, "drought storm").total == first.total
        assert bool(read) == reads_again


def test_positions_read_as_arrays_are_whooshs(reuters_index: Path) -> None:
    """Each posting's positions, read for a few postings (from their blocks only) or all, are Whoosh's."""
    with open_index(reuters_index).searcher() as searcher:
        leaf, _ = next(iter(searcher.reader().leaf_readers()))
        for word in ("said", "oil", "opec"):
            term = normalize(word)
            kept = postings.read_postings(leaf, "body", term)
            expected = dict(leaf.postings("body", term).items_as("positions"))
            everything = np.arange(len(kept.ids))
            for at in (everything, everything[::7], everything[-3:], everything[200:203]):
                positions = postings.read_positions_at(leaf, "body", term, kept, at)
                assert len(positions.starts) == len(at) + 1
                for i, n in enumerate(at.tolist()):
                    assert (
                        positions.flat[positions.starts[i] : positions.starts[i + 1]].tolist()
                        == expected[int(kept.ids[n])]
                    )


def test_a_bare_star_is_every_story(reuters: WhooshEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """``*`` lists the archive (sorted, filtered, faceted); beside words it changes nothing; no slow path."""
    monkeypatch.setattr(evaluation.Evaluation, "_fallback", lambda self, q: pytest.fail(f"Whoosh's matcher for {q!r}"))
    stories = reuters.stats().stories
    everything = search(reuters, "*", sort="newest", per_page=20, collapse=False)
    assert everything.total == stories
    assert search(reuters, "*").total < stories, "collapsed, each group of near-duplicates counts once"
    dates = [h.published for h in everything.hits]
    assert None not in dates and dates == sorted(dates, reverse=True)
    assert sum(everything.facets["year"].values()) <= stories
    oil = search(reuters, "oil", collapse=False)
    assert 0 < oil.total < stories
    every_but_oil = {search(reuters, q, collapse=False).total for q in ("* -oil", "* NOT oil")}
    assert every_but_oil == {stories - oil.total}
    for same in ("oil *", "* AND oil", "oil AND *", "oil OR *"):
        result = search(reuters, same, collapse=False)
        assert (result.total, [h.id for h in result.hits]) == (oil.total, [h.id for h in oil.hits]), same
    two = search(reuters, "oil gas")
    assert [h.id for h in search(reuters, "oil * gas").hits] == [h.id for h in two.hits]
    march = "published:[1987-03-01 TO 1987-03-31]"
    in_march = search(reuters, "*", date_from=date(1987, 3, 1), date_to=date(1987, 3, 31)).total
    assert search(reuters, f"* {march}").total == in_march > 0
    only_exclusions = search(reuters, "-coffee")
    assert only_exclusions.total == 0 and "'* -coffee'" in (only_exclusions.notice or "")


def test_a_not_inside_a_group_excludes_without_whoosh_matchers(
    reuters: WhooshEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NOT beside words excludes at any depth, as at the top; it once ran Whoosh's NOT over every story (~1 s)."""
    monkeypatch.setattr(evaluation.Evaluation, "_fallback", lambda self, q: pytest.fail(f"Whoosh's matcher for {q!r}"))
    both = search(reuters, "oil AND crude")
    without_gas = search(reuters, "(oil NOT gas) AND crude")
    assert 0 < without_gas.total < both.total
    assert without_gas.total == both.total - search(reuters, "oil AND crude AND gas").total
    assert search(reuters, "gas -opec crude OR NOT *").total == 0  # every story left out
    assert search(reuters, "gas -opec crude").total > 0
