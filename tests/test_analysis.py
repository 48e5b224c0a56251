"""The news analyzer: folding rules, and the same terms on the index and query paths."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_service.analysis import find_terms, fold, normalize, term_positions, tokens
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


def test_stop_words_dropped_and_positions_close_up() -> None:
    """A phrase with a stop word inside must still match (Whoosh phrases need adjacent positions)."""
    found = list(tokens("the war of attrition"))
    assert [t for t, _, _, _ in found] == ["war", "attrit"]
    assert [pos for _, pos, _, _ in found] == [0, 1]


def test_stemming_joins_inflections() -> None:
    assert terms("negotiate negotiated negotiations") == ["negoti"] * 3


def test_offsets_point_into_the_original_text() -> None:
    text = "Khazaali said “Iran won’t negotiate”"
    for term, _, start, end in tokens(text):
        assert normalize(text[start:end]) == term


def test_stop_words_normalize_to_none() -> None:
    assert normalize("The") is None
    assert normalize("which") is None
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


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
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
@given(
    st.text(alphabet=st.sampled_from(list("aoeOPIpr1 .'’-_éÉ\nxyzﬁ")), max_size=120),
    st.lists(st.sampled_from(["oil", "price", "pri", "o", "1", "eco", "fin", "ecole", "x.y", "zy"]), max_size=4),
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
