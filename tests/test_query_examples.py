"""Every example of what people type (issue 10): symbols, common words, malformed syntax.

Through the API and the results page of ``create_app(...).test_client()``
over a real index of the sample stories plus stories written here that
contain the symbols and the common-word titles (and stories that come close
without containing them).  What must be found is derived from the stories'
text, not from ids the engine once returned.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from search_service.backends.whoosh import WhooshEngine
from search_service.config import Config
from search_service.web import create_app

from conftest import SAMPLES

#: Every written story has this word, so "dispatch -word" lists all but those with the word.
SHARED = "dispatch"
#: (id, headline, body): each symbol's story, and near misses that hold its letters without it.
STORIES = [
    ("cpp", "Rust gains ground on C++", "Systems programmers weigh C++ against newer languages."),
    ("csharp", "C# and F# get a new compiler", "The C# and F# teams ship on .NET this week."),
    ("dotnet", "Open source .NET reaches Linux", "The .NET runtime now runs on Linux servers."),
    ("net", "Net profit doubles", "Net income rose; the C team and the F team met at the net."),
    ("att", "AT&T bids for a cable rival", "AT&T offered cash and shares."),
    ("sp", "S&P 500 closes at a record", "The S&P index rose 1.2 pct."),
    ("at-t", "Shares at T-junction café", "Traders met at T, a bar, and at the S and P desks."),
    ("nine-eleven", "City remembers 9/11", "Memorials for 9/11 were held across the city."),
    ("nine-and-eleven", "Nine hurt, eleven held", "Police said 9 were hurt and 11 held after the match."),
    ("covid", "COVID-19 cases fall", "New COVID-19 cases fell for a third week."),
    ("us", "U.S. economy grows", "The US economy grew faster than forecast."),
    ("us-pronoun", "Tell us your story", "Readers wrote to us about their week."),
    ("email", "E-mail scam targets banks", "The e-mail asked customers for passwords."),
    ("fivebn", "Miner agrees $5bn takeover", "The $5bn deal is the largest this year."),
    ("percent", "Inflation rises to 3.5%", "Prices rose 3.5% in the year to June."),
    ("the-who", "The Who play Hyde Park", "Fans of the Who filled the park."),
    ("who-the", "Who runs the park", "A trust runs the park, who said so."),
    ("hamlet", "Hamlet returns", "To be or not to be, asks the prince again."),
    ("not-hamlet", "Not to be outdone", "Not to be outdone, or to be fair, the rival theatre opened too."),
    ("this-is-us", "This Is Us ends its run", "The drama This Is Us ended after six seasons."),
    ("it", "It tops the box office", "It, the horror film, tops the box office."),
]

TAG = re.compile(r"<[^>]*>")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    folder = tmp_path_factory.mktemp("examples")
    written = folder / "stories" / "written.jsonl"
    written.parent.mkdir()
    lines = [json.dumps({"id": i, "headline": h, "body": f"{b} {SHARED.capitalize()}."}) for i, h, b in STORIES]
    written.write_text("\n".join(lines) + "\n", encoding="utf-8")
    engine = WhooshEngine(folder / "index", create=True)
    summary = engine.index_files([SAMPLES, written.parent])
    assert summary.added == len(STORIES) + len(list(Path(SAMPLES).glob("*.txt"))), summary.line()
    config = Config(index_dir=folder / "index", stories_dir=None, rate_limit=None)
    return create_app(config, engine).test_client()


def search(client: FlaskClient, q: str, **params: Any) -> dict[str, Any]:
    response = client.get("/api/search", query_string={"q": q, "per_page": 100, **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def ids(client: FlaskClient, q: str) -> set[str]:
    return {hit["id"] for hit in search(client, q)["hits"]}


def page_text(client: FlaskClient, q: str) -> str:
    response = client.get("/search", query_string={"q": q})
    assert response.status_code == 200
    return " ".join(html.unescape(TAG.sub(" ", response.get_data(as_text=True))).split())


def written_with(pattern: str) -> set[str]:
    """Ids of the written stories whose text matches ``pattern`` (case-insensitively)."""
    return {i for i, h, b in STORIES if re.search(pattern, f"{h}\n{b} {SHARED}", re.IGNORECASE)}


# ---------------------------------------------------------------- symbols


@pytest.mark.parametrize(
    ("q", "pattern"),
    [
        ("C++", r"(?<!\w)C\+\+"),
        ("c#", r"(?<!\w)C#"),
        ("F#", r"(?<!\w)F#"),
        (".NET", r"(?<![\w.])\.NET\b"),
        ("AT&T", r"\bAT&T\b"),
        ("S&P", r"\bS&P\b"),
        ("9/11", r"\b9/11\b"),
        ("COVID-19", r"\bCOVID-?19\b"),
        ("$5bn", r"\$5bn\b"),
        ("3.5%", r"\b3\.5%"),
        ("U.S.", r"\bU\.S\.|(?-i:\bUS\b)"),
        ("e-mail", r"\be-?mail\b"),
    ],
)
def test_a_symbol_finds_its_stories_and_only_those(client: FlaskClient, q: str, pattern: str) -> None:
    expected = written_with(pattern)
    assert expected, pattern
    assert ids(client, q) & {i for i, _, _ in STORIES} == expected
    assert ids(client, f"{SHARED} -{q}") == written_with(SHARED) - expected
    assert ids(client, f"headline:{q}") == {i for i, h, _ in STORIES if re.search(pattern, h, re.IGNORECASE)}


@pytest.mark.parametrize(("left", "right"), [("US", "U.S."), ("e-mail", "email"), ("COVID-19", "covid19")])
def test_spellings_of_one_word_find_the_same_stories(client: FlaskClient, left: str, right: str) -> None:
    assert ids(client, left) == ids(client, right) != set()


def test_us_in_small_letters_is_the_common_word(client: FlaskClient) -> None:
    assert "us-pronoun" in ids(client, "us") and "us-pronoun" not in ids(client, "US")


def test_committee_minus_cpp_excludes(client: FlaskClient) -> None:
    """The issue's example: the exclusion was silently dropped."""
    assert ids(client, "programmers OR systems") >= {"cpp"}
    assert "cpp" not in ids(client, "programmers OR systems -c++")


def test_matched_symbols_are_marked(client: FlaskClient) -> None:
    (hit,) = [h for h in search(client, "AT&T")["hits"] if h["id"] == "att"]
    assert "<mark>AT&amp;T</mark>" in hit["highlights"]["headline"]


# ---------------------------------------------------------------- common words


def phrase_in(text: str, words: str) -> bool:
    return (
        re.search(r"(?<!\w)" + r"\W+".join(map(re.escape, words.split())) + r"(?!\w)", text, re.IGNORECASE) is not None
    )


@pytest.mark.parametrize("q", ["The Who", '"to be or not to be"', "to be or not to be", "This Is Us", "It"])
def test_common_words_alone_find_the_stories_with_them_in_order(client: FlaskClient, q: str) -> None:
    words = q.strip('"')
    found = ids(client, q)
    expected = {i for i, h, b in STORIES if phrase_in(f"{h}\n{b}", words)}
    assert expected and found >= expected
    written = {i for i, _, _ in STORIES}
    assert found & written == expected, "near misses (other order, words apart) are not matches"


def test_common_words_beside_rarer_words_are_left_out(client: FlaskClient) -> None:
    with_common = search(client, "the prince of the park")
    rarer = search(client, "prince park")
    assert [h["id"] for h in with_common["hits"]] == [h["id"] for h in rarer["hits"]]
    assert with_common["notice"] is None


def test_common_words_in_quotes_match_exactly(client: FlaskClient) -> None:
    assert ids(client, '"fans of the who"') == {"the-who"}
    assert ids(client, '"fans the who"') == set()


# ---------------------------------------------------------------- malformed syntax


@pytest.mark.parametrize(
    ("q", "problem", "words"),
    [
        ('"prince again', "unclosed quote", "prince again"),
        ("(prince OR park", "unclosed bracket", "prince OR park"),
        ("prince OR park)", "a ) with no ( before it", "prince OR park"),
        ("prince AND", "AND with nothing after it", "prince"),
        ("OR prince", "OR with nothing before it", "prince"),
        ("prince NOT", "NOT with nothing after it", "prince"),
        ("prince + park", "a + with no word after it", "prince park"),
        ("prince - park", "a - with no word after it", "prince park"),
        ("foo:prince park", "foo: is not a field", "foo prince park"),
        ("headline: prince", "headline: with nothing after it", "prince"),
        ("published:[2024 TO prince", "published:[2021-01-01 TO 2021-06-30]", "prince"),
        ("prince*ss", "end of a word", "prince ss"),
        ("p* park", "at least 2 letters", "p park"),
        ("… operators like *, +.)", "a + with no word after it", "operators like"),
        ("alpha (+)- thalassemia", "a + with no word after it", "alpha thalassemia"),
        ('prince 0published:"0000"', "could not be read", "prince 0published 0000"),  # once a 500 (year 0)
        ("AL[ TO ] prince", "a range needs", "AL TO prince"),  # once a 500 (IndexError)
    ],
)
def test_malformed_syntax_searches_the_words_and_says_so(client: FlaskClient, q: str, problem: str, words: str) -> None:
    answer = search(client, q)
    assert answer["notice"].startswith("Searched for the words: the query's syntax was incomplete (")
    assert problem in answer["notice"]
    assert [h["id"] for h in answer["hits"]] == [h["id"] for h in search(client, words)["hits"]]
    page = page_text(client, q)
    assert answer["notice"] in page
    assert ("No stories match" in page) == (answer["total"] == 0)


@pytest.mark.parametrize("q", ["C++", "c#", ".NET", "headline:c++", "+", "-", "*", "The Who", "This", "It"])
def test_the_issues_refused_queries_are_answered(client: FlaskClient, q: str) -> None:
    """Each of these was a 400 ("the query has only common words" or "could not understand")."""
    answer = search(client, q)
    assert answer["total"] > 0 or answer["notice"], q


def test_well_formed_syntax_has_no_notice(client: FlaskClient) -> None:
    for q in [
        '"prince again" OR (park AND -fans)',
        "headline:prince",
        "published:[2021-01-01 TO 2021-12-31] drought",
        "park*",
        "* -park",
        "prince NOT park",
        "C++ OR C#",
    ]:
        assert search(client, q)["notice"] is None, q


@pytest.mark.parametrize("q", ["-park", "NOT park", "-park -prince"])
def test_only_exclusions_are_no_stories_and_a_notice(client: FlaskClient, q: str) -> None:
    answer = search(client, q)
    assert answer["total"] == 0 and f"'* {q}'" in answer["notice"]
    assert search(client, f"* {q}")["total"] > 0


@pytest.mark.parametrize("q", ["", " ", "?!", "…", '""', "()"])
def test_nothing_to_search_for(client: FlaskClient, q: str) -> None:
    answer = search(client, q)
    assert answer["total"] == 0 and answer["notice"]
    page = client.get("/search", query_string={"q": q})
    assert page.status_code == 200 and 'id="guide"' in page.get_data(as_text=True)
