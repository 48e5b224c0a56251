"""Arabic and Persian stories: every spelling variant finds them, highlights land on the words, pages read right to left.

The stories are real story files in the archive's layout (tests/stories_rtl),
written with the variants writers use: hamza on alef or not, teh marbuta,
alef maksura, harakat, tatweel, the Arabic or Persian kaf and yeh, ZWNJ,
Arabic-Indic and Persian digits.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import requests

from search_service.analysis import normalize, tokens
from search_service.backends.whoosh.engine import WhooshEngine
from search_service.model import SearchRequest

from conftest import LiveServer

MARK = re.compile(r"<mark>(.*?)</mark>")


@pytest.fixture(scope="module")
def rtl(rtl_index: Path) -> WhooshEngine:
    return WhooshEngine(rtl_index)


def found(engine: WhooshEngine, q: str) -> list[str]:
    return [hit.id for hit in engine.search(SearchRequest(q=q)).hits]


@pytest.mark.parametrize(
    "written, variant",
    [
        ("أمطار", "امطار"),  # alef with hamza above / bare alef
        ("إسكندرية", "اسكندرية"),  # alef with hamza below
        ("آخر", "اخر"),  # alef with madda
        ("مدرسة", "مدرسه"),  # teh marbuta / heh
        ("مستشفى", "مستشفي"),  # alef maksura / yeh
        ("القَاهِرَة", "القاهرة"),  # harakat
        ("مـــصـــر", "مصر"),  # tatweel
        ("كتاب", "کتاب"),  # Arabic kaf / Persian keheh
        ("دانشجویان", "دانشجويان"),  # Persian yeh / Arabic yeh
        ("می‌روند", "میروند"),  # with and without ZWNJ
        ("١٢٠", "120"),  # Arabic-Indic digits
        ("۲۵۰۰", "2500"),  # Persian digits
    ],
)
def test_spelling_variants_are_one_term(written: str, variant: str) -> None:
    assert normalize(written) == normalize(variant) is not None
    assert [t for t, *_ in tokens(written)] == [normalize(written)], "one word, not split at its marks"


@pytest.mark.parametrize(
    "query, story",
    [
        ("الإسكندرية", "AR-1001"),
        ("الاسكندرية", "AR-1001"),
        ("الاسكندريه", "AR-1001"),
        ("مستشفي", "AR-1001"),
        ("مصر", "AR-1001"),
        ("القاهرة", "AR-1001"),
        ("القاهره", "AR-1001"),
        ("120 مليمترا", "AR-1001"),
        ("١٢٠", "AR-1001"),
        ("عمان", "AR-1002"),
        ("معرض الكتاب", "AR-1002"),
        ("معرض الکتاب", "AR-1002"),
        ("350", "AR-1002"),
        ("می‌روند", "FA-2001"),
        ("میروند", "FA-2001"),
        ("خیابانها", "FA-2001"),
        ("دانشجويان", "FA-2001"),
        ("كتابخانه", "FA-2001"),
        ("2500", "FA-2001"),
        ("۴۹ درجه", "FA-2002"),
        ("49", "FA-2002"),
    ],
)
def test_each_spelling_variant_finds_the_story(rtl: WhooshEngine, query: str, story: str) -> None:
    assert found(rtl, query)[:1] == [story]


def test_a_phrase_across_scripts_variants(rtl: WhooshEngine) -> None:
    assert found(rtl, '"معرض الکتاب"') == ["AR-1002"]
    assert found(rtl, '"به خيابانها ميروند"') == ["FA-2001"]
    assert found(rtl, '"ميروند به خیابان‌ها"') == []


@pytest.mark.parametrize(
    "query, story, marked",
    [
        ("الاسكندريه", "AR-1001", "الإسكندرية"),
        ("مصر", "AR-1001", "مـــصـــر"),
        ("القاهره", "AR-1001", "القَاهِرَة"),
        ("مستشفي", "AR-1001", "مستشفى"),
        ("120", "AR-1001", "١٢٠"),
        ("ميروند", "FA-2001", "می‌روند"),
        ("2500", "FA-2001", "۲۵۰۰"),
    ],
)
def test_highlights_mark_the_words_as_written(rtl: WhooshEngine, query: str, story: str, marked: str) -> None:
    (hit,) = [h for h in rtl.search(SearchRequest(q=query)).hits if h.id == story]
    text = " ".join([hit.highlights["headline"], *hit.highlights["body"]])
    words = {html.unescape(w) for w in MARK.findall(text)}
    assert words == {marked}, words
    stored = rtl.story(story)
    assert stored is not None and marked in stored.body


def test_pages_set_the_direction_from_the_text(rtl_server: LiveServer) -> None:
    results = requests.get(f"{rtl_server.url}/search", params={"q": "الاسكندرية"}, timeout=30).text
    assert re.search(r'<h2 class="result-title" dir="auto"><a [^>]*>[^<]*<mark>الإسكندرية</mark>', results)
    assert '<p class="fragment" dir="auto">' in results
    page = requests.get(f"{rtl_server.url}/stories/AR-1001", params={"q": "مصر"}, timeout=30).text
    assert '<h1 id="story-title" dir="auto">' in page
    assert '<p dir="auto">وأغلقت السلطات في <mark>مـــصـــر</mark>' in page
