"""The engine-neutral repair of query text: well-formed syntax untouched, malformed syntax made words."""

from __future__ import annotations

import pytest

from search_service.syntax import as_phrase, has_words, repair, words_only


@pytest.mark.parametrize(
    "q",
    [
        "oil prices",
        '"oil prices" -opec',
        "(oil OR gas) AND prices",
        "oil NOT gas",
        "opec -saudi +quota",
        "headline:merger body:dividend",
        'headline:"oil price"',
        "headline:(oil gas)",
        "published:[2021-01-01 TO 2021-06-30] drought",
        "published:[2021 TO]",
        "published:2021-06",
        "econom*",
        "*",
        "* -oil",
        "-(oil OR gas) coffee",
        '"a b"~2',
        "oil^2 gas",
        "body:[a TO z]",
        "C++ C# .NET AT&T 9/11 $5bn 3.5%",
        "Note: the end",
        "http://example.com/a",
    ],
)
def test_well_formed_syntax_is_left_as_typed(q: str) -> None:
    assert repair(q).problems == ()
    assert repair(q).text == q
    assert repair(q).notice is None


@pytest.mark.parametrize(
    ("q", "text", "problem"),
    [
        ('"oil prices', "oil prices", "unclosed quote"),
        ('oil prices"', "oil prices", "unclosed quote"),
        ('"5', "5", "unclosed quote"),
        ("(oil OR gas", "oil OR gas", "unclosed bracket"),
        ("oil OR gas)", "oil OR gas", "a ) with no ( before it"),
        ("oil AND", "oil and", "AND with nothing after it"),
        ("AND oil", "and oil", "AND with nothing before it"),
        ("oil OR OR gas", "oil or OR gas", "OR with nothing after it"),
        ("oil NOT", "oil not", "NOT with nothing after it"),
        ("(oil AND) gas", "(oil and) gas", "AND with nothing after it"),
        ("+", "", "a + with no word after it"),
        ("oil - gas", "oil gas", "a - with no word after it"),
        ("alpha (+)- thalassemia", "alpha thalassemia", "a + with no word after it"),
        ("… operators like *, +.)", "… operators like *", "a + with no word after it"),
        ("*ought", "ought", "a * only works at the end of a word"),
        ("headline:*ought", "headline:ought", "a * only works at the end of a word"),
        ("econ*omy", "econ omy", "a * only works at the end of a word"),
        ("d*", "d", "a * needs at least 2 letters before it"),
        ("foo:bar baz", "foo bar baz", "foo: is not a field"),
        ("headline: oil", "oil", "headline: with nothing after it"),
        ("published:[2024 TO", "", "a date range is written published:[2021-01-01 TO 2021-06-30]"),
        ("published:[2021-02-30 TO 2021-03-01]", "", "published:[2021-01-01 TO 2021-06-30]"),
        ("published:soon oil", "soon oil", "published:[2021-01-01 TO 2021-06-30]"),
        ("[2021 TO 2022", "2021 TO 2022", "a range needs [ … TO … ]"),
    ],
)
def test_malformed_syntax_becomes_words_and_says_why(q: str, text: str, problem: str) -> None:
    repaired = repair(q)
    assert repaired.text == text
    assert any(problem in p for p in repaired.problems), repaired.problems
    assert repaired.notice and repaired.notice.startswith("Searched for the words: the query's syntax was incomplete (")


@pytest.mark.parametrize(
    ("q", "text"),
    [
        ("oil AND -gas", "oil AND NOT gas"),
        ("oil OR +gas", "oil OR gas"),
        ("oil NOT -gas", "oil NOT gas"),
        ("“oil prices”", '"oil prices"'),
        ("Headline:oil", "headline:oil"),
        ("econom*.", "econom*"),
        ("oil ()", "oil"),
        ('oil ""', "oil"),
        ("oil [sic] gas", "oil sic gas"),
    ],
)
def test_spellings_the_parser_cannot_read_are_rewritten_silently(q: str, text: str) -> None:
    assert repair(q).text == text
    assert repair(q).problems == ()


def test_words_only_has_no_syntax_left() -> None:
    assert words_only('headline:"C++ (AND) -OR *x') == "headline C++ and or x"


def test_has_words() -> None:
    assert has_words("oil") and has_words("*") and has_words("C++")
    assert not has_words("") and not has_words(" ?! … ") and not has_words('""')


def test_as_phrase_only_for_plain_text() -> None:
    assert as_phrase("The Who") == '"The Who"'
    assert as_phrase("to be or not to be") == '"to be or not to be"'
    assert as_phrase("the -who") is None and as_phrase("the OR who") is None and as_phrase("headline:the") is None
