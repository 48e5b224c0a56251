"""The news analyzer: folding rules, and the same terms on the index and query paths."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from search_service.analysis import find_terms, fold, is_common, normalize, term_positions, tokens
from search_service.backends.whoosh.schema import NewsAnalyzer, build_schema


def terms(text: str) -> list[str]:
    return [term for term, _, _, _ in tokens(text)]


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("won’t", "won't"),
        ("Asa’ib", "Asaib"),
        ("Hezbollah’s", "Hezbollah's"),
        ("Zürich", "Zurich"),
        ("São Paulo", "Sao Paulo"),
        ("ﬁnance", "finance"),  # NFKC: the fi ligature
        ("ＩＲＡＱ", "iraq"),  # NFKC: full-width letters
        ("STRASSE", "straße"),  # case folding, not just lowercasing
        ("Iraq’s resistance", "iraq resistance"),
    ],
)
def test_folding_makes_variants_equal(left: str, right: str) -> None:
    assert terms(left) == terms(right)
    assert terms(left)  # and they are not all dropped


def test_common_words_are_indexed_with_their_positions() -> None:
    """A phrase matches exactly: "war of attrition" has its "of" between the words."""
    found = list(tokens("the war of attrition"))
    assert [t for t, _, _, _ in found] == ["the", "war", "of", "attrit"]
    assert [pos for _, pos, _, _ in found] == [0, 1, 2, 3]
    assert all(is_common(t) for t in ("the", "of")) and not is_common("war")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C++", ["c++"]),
        ("c#", ["c#"]),
        ("F# and C#", ["f#", "and", "c#"]),
        (".NET", [".net"]),
        ("AT&T", ["at&t"]),
        ("S&P 500", ["s&p", "500"]),
        ("9/11", ["9/11"]),
        ("COVID-19", ["covid19"]),
        ("$5bn", ["$5bn"]),
        ("$1,000", ["$1000"]),
        ("3.5%", ["3.5%"]),
        ("U.S.", ["u.s"]),
        ("US", ["u.s"]),
        ("us", ["us"]),
        ("U.K.", ["uk"]),
        ("e-mail", ["email"]),
        ("ASP.NET", ["asp.net"]),
    ],
)
def test_symbol_tokens_keep_their_identity(text: str, expected: list[str]) -> None:
    assert terms(text) == expected


@pytest.mark.parametrize(
    ("left", "right"),
    [("U.S.", "US"), ("e-mail", "email"), ("COVID-19", "COVID19"), ("U.K.", "UK"), ("C++", "c++"), ("AT&T", "at&t")],
)
def test_symbol_variants_are_the_same_term(left: str, right: str) -> None:
    assert terms(left) == terms(right)


@pytest.mark.parametrize(
    ("left", "right"),
    [("C++", "C"), ("C#", "C"), ("AT&T", "at t"), ("9/11", "9 11"), ("US", "us"), ("$5bn", "5bn"), ("3.5%", "3.5")],
)
def test_symbols_are_not_their_letters(left: str, right: str) -> None:
    assert terms(left) != terms(right)


def test_stemming_joins_inflections() -> None:
    assert terms("negotiate negotiated negotiations") == ["negoti"] * 3


def test_offsets_point_into_the_original_text() -> None:
    text = "Khazaali said “Iran won’t negotiate”"
    for term, _, start, end in tokens(text):
        assert normalize(text[start:end]) == term


def test_common_words_normalize_unstemmed_and_single_letters_to_none() -> None:
    assert normalize("The") == "the"
    assert normalize("does") == "does"  # not Porter2's "doe"
    assert normalize("a") is None and normalize("I") is None
    assert normalize("Negotiations") == "negoti"


def test_fold_does_not_stem() -> None:
    assert fold("Economies") == "economies"


def test_query_analyzer_matches_index_path() -> None:
    text = "U.S. officials said Iraq’s “resistance” won’t stop; the 2.7 pct rise in São Paulo."
    analyzer = NewsAnalyzer()
    via_whoosh = [(t.text, t.pos) for t in analyzer(text, positions=True)]
    via_index: list[tuple[str, int]] = sorted(
        (term, pos) for term, poses in term_positions(text).items() for pos in poses
    )
    assert sorted(via_whoosh) == via_index


#: Text made of the characters symbol tokens are made of, to meet their edge cases often.
SYMBOL_TEXT = st.text(alphabet=st.sampled_from(list("aCcNnTtUS19$£%&/+#.,'’-_ \n\té")), max_size=120)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=300), SYMBOL_TEXT))
def test_index_and_query_paths_agree_on_any_text(text: str) -> None:
    analyzer = NewsAnalyzer()
    via_whoosh = sorted((t.text, t.pos) for t in analyzer(text, positions=True))
    via_index = sorted((term, pos) for term, poses in term_positions(text).items() for pos in poses)
    assert via_whoosh == via_index


def test_field_index_encodes_like_whoosh_positions_format() -> None:
    """The fast NewsText.index must produce exactly what Whoosh's own Positions format would."""
    field = build_schema()["body"]
    text = "the cat sat on the mat; the cat sat again, and the mat stayed"
    fast = sorted(field.index(text))
    reference = sorted(
        (word.encode("utf-8"), freq, weight, value)
        for word, freq, weight, value in field.format.word_values(text, NewsAnalyzer(), mode="index")
    )
    assert fast == reference


def test_untokenized_query_text_is_folded_not_stemmed() -> None:
    analyzer = NewsAnalyzer()
    assert [t.text for t in analyzer("Économies*", tokenize=False)] == ["economies*"]


def spans_by_full_scan(text: str, terms: frozenset[str]) -> list[tuple[int, int, str]]:
    return [(s, e, t) for t, _, s, e in tokens(text) if t in terms]


@settings(max_examples=300, deadline=None)
@example("1$9", ["$9"])  # a symbol right after a word starts a token of its own
@given(
    st.text(alphabet=st.sampled_from(list("aoeOPIpr1 .'’-_éÉ\nxyzﬁ+#&/%$9NnTt")), max_size=120),
    st.lists(
        st.sampled_from(
            [
                "oil",
                "price",
                "pri",
                "o",
                "1",
                "eco",
                "fin",
                "ecole",
                "x.y",
                "zy",
                "net",
                ".net",
                "t",
                "9/1",
                "p&t",
                "x-oil",
                "1%",
                "$9",
                "c++",
                "o#",
                "e-o",
                "us",
            ]
        ),
        max_size=4,
    ),
)
def test_find_terms_finds_exactly_what_a_full_scan_finds(text: str, words: list[str]) -> None:
    terms = frozenset(t for w in words for t in terms_of(w))
    assert find_terms(text, terms) == spans_by_full_scan(text, terms)


def terms_of(text: str) -> list[str]:
    return [t for t, _, _, _ in tokens(text)]


def test_find_terms_on_real_text() -> None:
    text = "Crude oil prices rallied; OPEC’s U.S. oil-price policy, Économie, end.oil and a 1987 rise."
    for query in ["oil", "prices", "opec", "economie", "u.s", "1987", "rise"]:
        terms = frozenset(terms_of(query))
        assert find_terms(text, terms) == spans_by_full_scan(text, terms)
        assert find_terms(text, terms), query
