"""The HTML pages over HTTP: a real waitress server, real requests, the HTML parsed.

Expected values come from the JSON API of the same server (totals, ids,
facets, suggestions), so nothing about the corpus is hard-coded except the
planted sample story with ``<hia>`` and ``<script>`` in it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from search_service.config import Config, Limits
from search_service.web import create_app
from search_service.web.pages import pager

TIMEOUT = 30
XSS_QUERY = '<script>alert(1)</script> "><img src=x onerror=alert(1)>'


class Page(HTMLParser):
    """A parsed page: every start tag with its attributes, and the visible text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = html
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text_parts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]

    def box_value(self) -> str:
        (box,) = self.find("input", id="q")
        return box.get("value", "")

    def links(self, prefix: str) -> list[str]:
        return [a["href"] for t, a in self.tags if t == "a" and a.get("href", "").startswith(prefix)]


def get(server, path: str, **params: str) -> requests.Response:
    return requests.get(server.url + path, params=params, timeout=TIMEOUT)


def api(server, path: str, **params: str) -> dict:
    response = get(server, path, **params)
    assert response.status_code == 200, response.text
    return response.json()


def planted_story_id(server) -> str:
    """The id of the sample story with ``<hia>`` in its headline and ``<script>`` in its body."""
    hits = api(server, "/api/search", q="website hack")["hits"]
    ids = [h["id"] for h in hits if "<hia>" in h["headline"]]
    assert ids, hits
    return ids[0]


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# ---------------------------------------------------------------- every page


@pytest.mark.parametrize("path", ["/", "/search?q=said", "/search?q=econ*omy", "/stories/no-such-story"])
def test_every_page_is_csp_clean_accessible_html(sample_server, path: str) -> None:
    response = requests.get(sample_server.url + path, timeout=TIMEOUT)
    assert response.headers["Content-Type"].startswith("text/html")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    html = response.text
    # The CSP forbids inline code: every script is a file, no style attributes or blocks.
    assert re.findall(r"<script\b(?![^>]*\bsrc=)", html) == []
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html)
    page = Page(html)
    assert page.find("html", lang="en")
    assert page.find("meta", name="viewport")
    assert page.find("link", rel="search", type="application/opensearchdescription+xml")
    for landmark in ("header", "main", "footer"):
        assert page.find(landmark), landmark
    assert page.find("a", href="#main"), "skip link"
    (box,) = page.find("input", id="q")
    assert box["name"] == "q" and box["type"] == "search"
    assert page.find("label", **{"for": "q"}), "the search box has a label"


def test_static_files_are_served_with_their_types(sample_server) -> None:
    page = Page(get(sample_server, "/").text)
    css = [a["href"] for a in page.find("link", rel="stylesheet")]
    js = [a["src"] for t, a in page.tags if t == "script"]
    assert css and js
    for path, kind in [(css[0], "text/css"), (js[0], "javascript")]:
        response = get(sample_server, path)
        assert response.status_code == 200 and kind in response.headers["Content-Type"], path


# ---------------------------------------------------------------- home


def test_home_has_the_box_the_guide_and_the_collection(sample_server) -> None:
    health = api(sample_server, "/healthz")
    page = Page(get(sample_server, "/").text)
    (box,) = page.find("input", name="q")
    assert "autofocus" in box and box.get("value", "") == ""
    for syntax in ("AND", "OR", "NOT", "-", '"', "headline:", "body:", "published:[", "econom*"):
        assert syntax in page.text, syntax
    assert f"{health['stories']:,} stories" in page.text
    first, last = date.fromisoformat(health["first"][:10]), date.fromisoformat(health["last"][:10])
    assert page.find("time", datetime=first.isoformat()) and page.find("time", datetime=last.isoformat())
    # The embeddable form snippet points at this server's /search.
    assert f'action="{sample_server.url}/search" method="get"' in page.text


@pytest.mark.parametrize("q", ["", "   ", "?!", "(", '""', "-- ..."])
def test_an_empty_query_shows_the_home_page_not_an_error(sample_server, q: str) -> None:
    response = get(sample_server, "/search", q=q)
    assert response.status_code == 200
    assert Page(response.text).find("section", id="guide")


def test_the_search_box_takes_as_much_as_the_api(sample_server) -> None:
    for path in ("/", "/search?q=drought"):
        (box,) = Page(get(sample_server, path).text).find("input", id="q")
        assert box["maxlength"] == str(Limits().max_query_chars), path
    pasted = " ".join(["drought"] * 100)  # 799 characters: more than the box once took
    response = get(sample_server, "/search", q=pasted)
    assert response.status_code == 200 and Page(response.text).box_value() == pasted


@pytest.mark.parametrize(
    ("q", "problem"),
    [
        ('"website hack', "unclosed quote"),
        ("website AND", "AND with nothing after it"),
        ("foo:website hack", "foo: is not a field"),
        ("website (+)- hack", "a + with no word after it"),
    ],
)
def test_malformed_syntax_shows_the_results_for_the_words_and_a_notice(sample_server, q: str, problem: str) -> None:
    response = get(sample_server, "/search", q=q)
    assert response.status_code == 200
    page = Page(response.text)
    notice = api(sample_server, "/api/search", q=q)["notice"]
    assert problem in notice and notice in page.text
    assert page.find("li", **{"class": "result"})
    assert page.box_value() == q


# ---------------------------------------------------------------- results


def test_results_are_highlighted_escaped_and_link_to_stories(sample_server) -> None:
    story_id = planted_story_id(sample_server)
    response = get(sample_server, "/search", q="website hack")
    assert response.status_code == 200
    html = response.text
    assert "<mark>Website</mark> <mark>Hack</mark>" in html
    assert "&lt;hia&gt;" in html and "<hia>" not in html
    page = Page(html)
    assert page.box_value() == "website hack"
    expected_total = api(sample_server, "/api/search", q="website hack")["total"]
    assert f"{expected_total:,} " in page.text
    assert re.search(r"\(\d+ ms\)", page.text), "time taken"
    links = page.links(f"/stories/{story_id}")
    assert links and query_of(links[0]) == {"q": ["website hack"]}


def test_a_query_with_html_is_shown_as_text(sample_server) -> None:
    response = get(sample_server, "/search", q=XSS_QUERY)
    assert response.status_code == 200
    html = response.text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = Page(html)
    assert page.box_value() == XSS_QUERY
    assert not page.find("img")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "x" * (Limits().max_query_chars + 1)}, f"the limit is {Limits().max_query_chars}"),
        ({"q": "said", "per_page": str(Limits().max_per_page + 1)}, "per_page must be between"),
        ({"q": "said", "sort": "sideways"}, "sort must be one of"),
        ({"q": "said", "page": "two"}, "page must be a whole number"),
        ({"q": "said", "from": "yesterday"}, "from must be a date"),
        ({"q": "said", "from": "2023-01-01", "to": "2021-01-01"}, "'from' is after 'to'"),
    ],
)
def test_a_search_that_cannot_run_is_a_400_page_that_keeps_the_query(sample_server, params, message) -> None:
    response = get(sample_server, "/search", **params)
    assert response.status_code == 400
    page = Page(response.text)
    assert message in page.text
    assert page.box_value() == params["q"]
    assert page.find("div", role="alert")


def test_nothing_found_says_so_and_offers_a_way_out(sample_server) -> None:
    response = get(sample_server, "/search", q="said", **{"from": "1999-01-01", "to": "1999-12-31"})
    assert response.status_code == 200
    page = Page(response.text)
    assert "No stories match" in page.text and "Nothing found" in page.text
    assert not page.find("li", **{"class": "result"})
    all_dates = {link for link in page.links("/search") if "from" not in query_of(link)}
    assert all_dates == {"/search?q=said"}, "a link that drops the dates, keeping the query"
    assert Page(get(sample_server, "/search?q=said").text).find("li", **{"class": "result"})


def test_a_typo_shows_the_corrected_results_and_did_you_mean_links_to_the_fixed_query(sample_server) -> None:
    corrected = api(sample_server, "/api/search", q="webiste")
    assert corrected["corrected_from"] == "webiste" and corrected["total"] > 0
    page = Page(get(sample_server, "/search", q="webiste").text)
    assert f"Showing results for {corrected['query']} . Search instead for webiste" in page.text
    assert page.find("li", **{"class": "result"})
    (instead,) = [a["href"] for t, a in page.tags if t == "a" and a.get("rel") == "nofollow"]
    assert query_of(instead) == {"q": ["webiste"], "spell": ["off"]}
    typed = Page(get(sample_server, instead).text)
    assert "Did you mean" in typed.text and not typed.find("li", **{"class": "result"})
    (link,) = [a["href"] for t, a in typed.tags if t == "a" and a.get("rel") == "nofollow"]
    assert query_of(link)["q"] == [corrected["query"]]
    fixed = Page(get(sample_server, link).text)
    assert fixed.box_value() == corrected["query"] and fixed.find("li", **{"class": "result"})


def test_pages_links_walk_through_all_results(sample_server) -> None:
    total = api(sample_server, "/api/search", q="said")["total"]
    assert total > 2, "the samples share the word 'said'"
    seen: list[str] = []
    url = "/search?q=said&per_page=1"
    for number in range(1, total + 1):
        page = Page(get(sample_server, url).text)
        seen += page.links("/stories/")
        (current,) = page.find("a", **{"aria-current": "page"})
        assert current["aria-label"] == f"Page {number}"
        following = [a["href"] for t, a in page.tags if t == "a" and a.get("rel") == "next"]
        previous = [a["href"] for t, a in page.tags if t == "a" and a.get("rel") == "prev"]
        assert bool(previous) == (number > 1)
        if number == total:
            assert following == []
        else:
            (url,) = following
            assert query_of(url)["page"] == [str(number + 1)] and query_of(url)["per_page"] == ["1"]
    assert len(set(seen)) == total, "every story once"


def test_pages_stop_at_the_depth_limit(sample_index) -> None:
    app = create_app(Config(index_dir=sample_index, stories_dir=None, rate_limit=None))
    with app.test_request_context("/search?q=said"):
        first = pager(page=1, per_page=10, total=123_456, max_depth=10_000)
        deepest = pager(page=1000, per_page=10, total=123_456, max_depth=10_000)
        small = pager(page=1, per_page=10, total=7, max_depth=10_000)
    assert first.last == 1000 and deepest.last == 1000
    assert [link.label for link in first.pages if link] == ["1", "2", "3", "1000"]
    assert None in first.pages, "a gap between 3 and 1000"
    assert deepest.next is None and deepest.previous and query_of(deepest.previous)["page"] == ["999"]
    assert small.pages == [] and small.next is None


def test_the_last_page_link_is_one_the_server_will_serve(reuters_server) -> None:
    total = api(reuters_server, "/api/search", q="said")["total"]
    assert total > 10_000, "a query deeper than the paging limit"
    page = Page(get(reuters_server, "/search", q="said").text)
    numbers = [int(query_of(link).get("page", ["1"])[0]) for link in page.links("/search") if "page=" in link]
    assert max(numbers) == 1000
    assert get(reuters_server, "/search", q="said", page="1000").status_code == 200
    assert get(reuters_server, "/search", q="said", page="1001").status_code == 400


def test_sort_links_switch_the_order(sample_server) -> None:
    page = Page(get(sample_server, "/search", q="said").text)
    sorts = {
        query_of(link).get("sort", ["relevance"])[0]: link
        for link in page.links("/search?q=said")
        if set(query_of(link)) <= {"q", "sort"}
    }
    assert {"relevance", "recent", "newest", "oldest"} <= set(sorts)
    assert page.find("a", href=sorts["relevance"], **{"aria-current": "true"}), "relevance is the default"
    for sort, reverse in (("newest", True), ("oldest", False)):
        sorted_page = Page(get(sample_server, sorts[sort]).text)
        days = [a["datetime"] for t, a in sorted_page.tags if t == "time"]
        assert len(days) > 2 and days == sorted(days, reverse=reverse), sort


def test_a_bare_star_browses_every_story_newest_first(sample_server) -> None:
    response = get(sample_server, "/search", q="*", sort="newest", per_page="100")
    assert response.status_code == 200
    page = Page(response.text)
    days = [a["datetime"] for t, a in page.tags if t == "time"]
    stories = {link for link in page.links("/stories/")}
    assert len(stories) == api(sample_server, "/healthz")["stories"]
    assert days == sorted(days, reverse=True) and len(days) > 2
    assert "<mark>" not in response.text  # nothing to mark


def test_year_and_month_facets_filter_by_their_bounds(sample_server) -> None:
    facets = api(sample_server, "/api/search", q="said")["facets"]
    page = Page(get(sample_server, "/search", q="said").text)
    bounds = {
        (query_of(link)["from"][0], query_of(link)["to"][0]): link
        for link in page.links("/search")
        if "from" in query_of(link)
    }
    for year in facets["year"]:
        assert (f"{year}-01-01", f"{year}-12-31") in bounds, year
    for month in facets["month"]:
        starts = [b for b in bounds if b[0] == f"{month}-01"]
        assert len(starts) == 1, month
        last_day = date.fromisoformat(starts[0][1])
        assert last_day.strftime("%Y-%m") == month
        assert date.fromordinal(last_day.toordinal() + 1).day == 1, "the month's last day"
    year = next(iter(facets["year"]))
    filtered = Page(get(sample_server, bounds[(f"{year}-01-01", f"{year}-12-31")]).text)
    days = [a["datetime"] for t, a in filtered.tags if t == "time"]
    assert len(days) == facets["year"][year] and all(d.startswith(year) for d in days)
    assert filtered.find("input", id="from", value=f"{year}-01-01")
    assert filtered.find("a", **{"aria-current": "true", "href": bounds[(f"{year}-01-01", f"{year}-12-31")]})


# ---------------------------------------------------------------- stories


def test_story_page_shows_paragraphs_escaped_and_marked(sample_server) -> None:
    story_id = planted_story_id(sample_server)
    story = api(sample_server, f"/api/stories/{story_id}")
    response = get(sample_server, f"/stories/{story_id}", q="website")
    assert response.status_code == 200
    html = response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "&lt;hia&gt;" in html and "<hia>" not in html
    assert "<mark>website</mark>" in html
    page = Page(html)
    paragraphs = [p for p in story["body"].split("\n\n") if p.strip()]
    body_tags = re.search(r'<div class="story-body">(.*?)</div>', html, re.S)
    assert body_tags and body_tags.group(1).count('<p dir="auto">') == len(paragraphs) > 1
    assert page.find("time", datetime=story["published"])
    assert "/work/" not in page.text and "Source: " in page.text, "the file's name, not the server's folders"
    related = api(sample_server, f"/api/stories/{story_id}/related")["hits"]
    assert {f"/stories/{h['id']}" for h in related} <= set(page.links("/stories/"))


def test_story_page_without_a_query_marks_nothing(sample_server) -> None:
    html = get(sample_server, f"/stories/{planted_story_id(sample_server)}").text
    assert "<mark>" not in html


def test_story_page_with_an_unparsable_query_still_shows_the_story(sample_server) -> None:
    response = get(sample_server, f"/stories/{planted_story_id(sample_server)}", q="econ*omy")
    assert response.status_code == 200 and "<mark>" not in response.text


def test_unknown_story_is_a_404_page(sample_server) -> None:
    response = get(sample_server, "/stories/no-such-story-123", q="oil")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    page = Page(response.text)
    assert "no-such-story-123" in page.text and page.box_value() == "oil"


def test_a_story_id_that_could_name_a_path_is_refused(sample_server) -> None:
    response = get(sample_server, "/stories/..%2F..%2Fetc%2Fpasswd")
    assert response.status_code in (400, 404)
    assert "root:" not in response.text


# ---------------------------------------------------------------- OpenSearch


def test_opensearch_description_points_at_this_server(sample_server) -> None:
    response = get(sample_server, "/opensearch.xml")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/opensearchdescription+xml")
    ns = {"os": "http://a9.com/-/spec/opensearch/1.1/"}
    root = ET.fromstring(response.content)
    assert root.findtext("os:ShortName", namespaces=ns)
    templates = {u.get("type"): u.get("template") for u in root.findall("os:Url", ns)}
    assert templates["text/html"] == f"{sample_server.url}/search?q={{searchTerms}}"
    suggest = templates["application/x-suggestions+json"]
    assert suggest == f"{sample_server.url}/opensearch/suggest?q={{searchTerms}}"
    word = api(sample_server, "/api/search", q="website")["hits"][0]["headline"].split()[0][:3]
    answer = requests.get(suggest.replace("{searchTerms}", word), timeout=TIMEOUT)
    assert answer.headers["Content-Type"].startswith("application/x-suggestions+json")
    expected = api(sample_server, "/api/suggest", q=word)["suggestions"]
    assert answer.json() == [word, expected] and expected
