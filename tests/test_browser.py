"""The pages in a real browser: Debian's chromium driven by Playwright, against a live server.

Every page a test opens is watched (see :class:`Watched`): no JavaScript
dialog may fire, no script may fail or be refused by the CSP, and no request
may leave the server's origin.  Screenshots of the main pages go to
``artifacts/screenshots/`` for people to look at.

Tests on ``sample_server`` run on a fresh clone; the richer paths (paging
through thousands of results, facets, related stories, did-you-mean) use
``reuters_server`` and skip without ``../shared``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Request, expect, sync_playwright

from conftest import REPO, LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
XSS_QUERY = '<script>alert(1)</script> "><img src=x onerror=alert(1)>'
PHONE = {"width": 375, "height": 740}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (CI's .ci/run does)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Watched:
    """A browser page that records what must never happen: dialogs, script errors, CSP refusals, foreign requests."""

    def __init__(self, page: Page, server: LiveServer) -> None:
        self.page = page
        self.server = server
        self.dialogs: list[str] = []
        self.problems: list[str] = []
        self.requests: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))
        page.on("console", self._console)
        page.on("request", self._request)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        # A 4xx page shows up as "Failed to load resource"; anything else logged as an error is a fault.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {message.text}")

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def open(self, path: str) -> Any:
        return self.page.goto(self.server.url + path)

    def search_for(self, text: str) -> None:
        """Type into the search box and press Enter, as a person would."""
        box = self.page.locator("#q")
        box.click()
        box.fill("")
        box.type(text)
        with self.page.expect_navigation():
            box.press("Enter")

    def screenshot(self, name: str, full_page: bool = True) -> None:
        """Save the page for a person to look at (``artifacts/`` is not committed)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)

    def params(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.page.url).query)

    def check(self) -> None:
        assert self.dialogs == [], f"a dialog fired: {self.dialogs}"
        assert self.problems == []
        foreign = [u for u in self.requests if not (u.startswith(self.server.url + "/") or u.startswith("data:"))]
        assert foreign == [], "requests to other hosts"
        assert self.requests, "the page made requests at all"


@pytest.fixture()
def watch(browser: Browser) -> Iterator[Any]:
    """``watch(server, **context_options)`` opens a watched page; the checks run when the test ends."""
    opened: list[tuple[Any, Watched]] = []

    def open_page(server: LiveServer, **options: Any) -> Watched:
        context = browser.new_context(**options)
        watched = Watched(context.new_page(), server)
        opened.append((context, watched))
        return watched

    yield open_page
    for context, watched in opened:
        context.close()
        watched.check()


def result_dates(page: Page) -> list[str]:
    return page.locator(".result time").evaluate_all("els => els.map(e => e.getAttribute('datetime'))")


def first_result_rank(page: Page) -> int:
    return int(page.locator("ol.results").get_attribute("start") or "1")


def planted_story_id(server: LiveServer) -> str:
    hits = requests.get(f"{server.url}/api/search", params={"q": "website hack"}, timeout=30).json()["hits"]
    (story_id,) = [h["id"] for h in hits if "<hia>" in h["headline"]]
    return story_id


# ---------------------------------------------------------------- samples (fresh clone)


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_search_read_results_open_story(sample_server, watch, javascript: bool) -> None:
    w = watch(sample_server, java_script_enabled=javascript)
    page = w.page
    w.open("/")
    expect(page.locator("#q")).to_be_focused()
    if javascript:
        w.screenshot("home")
    w.search_for("website hack")
    assert urlsplit(page.url).path == "/search" and w.params()["q"] == ["website hack"]
    expect(page.locator(".result").first).to_be_visible()
    marked = page.locator(".result mark").all_inner_texts()
    assert {m.lower() for m in marked} >= {"website", "hack"}
    expect(page.locator(".summary")).to_contain_text("website hack")
    if javascript:
        w.screenshot("results")
    headline = page.locator(".result-title a").first
    title = headline.inner_text()
    with page.expect_navigation():
        headline.click()
    assert urlsplit(page.url).path.startswith("/stories/") and w.params()["q"] == ["website hack"]
    expect(page.locator("h1")).to_have_text(title)
    assert page.locator(".story-body mark").count() > 0
    assert page.locator(".story-body p").count() > 1
    expect(page.locator("#q")).to_have_value("website hack")
    if javascript:
        w.screenshot("story")


def test_planted_script_and_html_queries_stay_text(sample_server, watch) -> None:
    w = watch(sample_server)
    page = w.page
    story_id = planted_story_id(sample_server)
    w.open(f"/stories/{story_id}?q=website")
    expect(page.locator("h1")).to_contain_text("<hia>")
    expect(page.locator(".story-body")).to_contain_text("<script>alert(1)</script>")
    assert page.locator("main script, main hia").count() == 0
    w.search_for(XSS_QUERY)
    expect(page.locator("#q")).to_have_value(XSS_QUERY)
    expect(page.locator("main")).to_contain_text("<script>alert(1)</script>")
    assert page.locator("img").count() == 0
    w.open(f"/stories/{story_id}?q=" + requests.utils.quote(XSS_QUERY))
    expect(page.locator("#q")).to_have_value(XSS_QUERY)
    expect(page.locator(".back")).to_contain_text('"><img src=x onerror=alert(1)>')
    assert page.locator("img").count() == 0
    page.wait_for_timeout(300)  # give any injected handler the chance to fire before the dialog check


def test_a_malformed_query_is_searched_and_a_limit_shows_what_is_wrong(sample_server, watch) -> None:
    w = watch(sample_server)
    page = w.page
    w.open("/")
    with page.expect_response(lambda r: urlsplit(r.url).path == "/search") as answer:
        w.search_for("econ*omy")
    assert answer.value.status == 200
    expect(page.locator(".query-notice")).to_contain_text("a * only works at the end of a word")
    expect(page.locator("#q")).to_have_value("econ*omy")
    w.screenshot("notice")
    pasted = " ".join(["drought"] * 150)  # 1,199 characters: the box once cut at 500
    page.locator("#q").fill(pasted)
    expect(page.locator("#q")).to_have_value(pasted)
    response = w.open("/search?q=drought&per_page=101")
    assert response.status == 400
    expect(page.get_by_role("alert")).to_contain_text("per_page must be between")
    expect(page.locator("#q")).to_have_value("drought")
    w.screenshot("error")
    response = w.open("/stories/no-such-story")
    assert response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("no-such-story")


def test_readable_at_phone_width(sample_server, watch) -> None:
    w = watch(sample_server, viewport=PHONE, is_mobile=True, has_touch=True)
    page = w.page
    for path in ("/", "/search?q=said", f"/stories/{planted_story_id(sample_server)}?q=said", "/search?q=econ*omy"):
        w.open(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways ({width}px)"
        box = page.locator("#q")
        expect(box).to_be_visible()
        bounds = box.bounding_box()
        assert bounds and bounds["x"] >= 0 and bounds["x"] + bounds["width"] <= PHONE["width"]
        if path.startswith("/search?q=said"):
            w.screenshot("phone", full_page=False)


def test_keyboard_reaches_box_and_results_with_visible_focus(sample_server, watch) -> None:
    w = watch(sample_server)
    page = w.page
    w.open("/search?q=said")
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.className"))
        in_result = page.evaluate("!!document.activeElement.closest('.result')")
        if in_result:
            break
    assert "q" in reached, "Tab reaches the search box"
    assert in_result, "Tab reaches a result link"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "keyboard focus is visible"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert urlsplit(page.url).path.startswith("/stories/")


def test_autocomplete_offers_indexed_words(sample_server, watch) -> None:
    w = watch(sample_server)
    page = w.page
    w.open("/")
    prefix = "har"
    expected = requests.get(f"{sample_server.url}/api/suggest", params={"q": prefix}, timeout=30).json()
    assert expected["suggestions"], "the samples have a headline word starting with 'har'"
    page.locator("#q").type(prefix, delay=30)
    options = page.locator("#q-suggestions option")
    expect(options).to_have_count(len(expected["suggestions"]))
    values = options.evaluate_all("els => els.map(e => e.value)")
    assert values == expected["suggestions"]
    assert page.locator("#q").get_attribute("list") == "q-suggestions"
    assert any("/api/suggest?q=har" in u for u in w.requests)


def test_opensearch_is_linked_for_browsers(sample_server, watch) -> None:
    w = watch(sample_server)
    w.open("/")
    href = w.page.locator("link[rel=search]").get_attribute("href")
    assert href
    description = w.page.request.get(sample_server.url + href)
    assert description.ok and "{searchTerms}" in description.text()


def direction(page: Page, selector: str) -> list[str]:
    return page.locator(selector).evaluate_all("els => els.map(e => getComputedStyle(e).direction)")


def test_arabic_and_persian_read_right_to_left(rtl_server, watch) -> None:
    w = watch(rtl_server)
    w.open("/")
    w.search_for("الاسكندريه OR ميروند OR Alexandria")
    titles = w.page.locator(".result-title")
    expect(titles).to_have_count(3)
    by_text = dict(zip(titles.all_inner_texts(), direction(w.page, ".result-title")))
    assert by_text["أمطار غزيرة تغرق شوارع الإسكندرية"] == "rtl"
    assert by_text["دانشجویان به خیابان‌ها می‌روند"] == "rtl"
    assert by_text["Floods close roads in Alexandria"] == "ltr", "English stays left to right beside them"
    assert "rtl" in direction(w.page, ".fragment") and "ltr" in direction(w.page, ".fragment")
    # A right-to-left headline starts at the right edge of its column.
    box = w.page.locator(".result-title a", has_text="الإسكندرية").bounding_box()
    column = w.page.locator("ol.results").bounding_box()
    assert box and column and box["x"] + box["width"] > column["x"] + column["width"] * 0.8
    w.screenshot("rtl-results")

    w.page.locator(".result-title a", has_text="الإسكندرية").click()
    expect(w.page.locator("#story-title")).to_have_text("أمطار غزيرة تغرق شوارع الإسكندرية")
    assert direction(w.page, "#story-title") == ["rtl"]
    assert set(direction(w.page, ".story-body p")) == {"rtl"}
    expect(w.page.locator(".story-body mark").first).to_have_text("الإسكندرية")
    w.screenshot("rtl-story")


# ---------------------------------------------------------------- Reuters (rich paths)


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_page_sort_and_filter_through_thousands(reuters_server, watch, javascript: bool) -> None:
    w = watch(reuters_server, java_script_enabled=javascript)
    page = w.page
    w.open("/")
    w.search_for("oil prices")
    assert page.locator(".result mark").count() > 0
    total = int(re.sub(r"\D", "", page.locator(".summary").inner_text().split("stor")[0]))
    assert total > 20
    if javascript:
        w.screenshot("results-reuters")
    first_page = page.locator(".result-title a").all_inner_texts()

    with page.expect_navigation():
        page.get_by_role("link", name="Next ›").click()
    assert w.params()["page"] == ["2"] and first_result_rank(page) == 11
    assert page.locator(".result-title a").all_inner_texts() != first_page
    with page.expect_navigation():
        page.get_by_role("link", name="Page 3", exact=True).click()
    assert w.params()["page"] == ["3"] and first_result_rank(page) == 21

    with page.expect_navigation():
        page.get_by_role("link", name="Newest").click()
    assert w.params()["sort"] == ["newest"] and "page" not in w.params()
    dates = result_dates(page)
    assert len(dates) == 10 and dates == sorted(dates, reverse=True)

    year_nav = page.get_by_role("navigation", name="Filter by year")
    year = year_nav.get_by_role("link").first
    year_label = year.inner_text()
    with page.expect_navigation():
        year.click()
    expect(page.locator("#from")).to_have_value(f"{year_label}-01-01")
    expect(page.locator("#to")).to_have_value(f"{year_label}-12-31")
    assert w.params()["sort"] == ["newest"], "filters keep the sort"
    expect(year_nav.locator("a[aria-current]")).to_have_text(year_label)

    month = page.get_by_role("navigation", name="Filter by month").get_by_role("link").nth(1)
    with page.expect_navigation():
        month.click()
    start, end = w.params()["from"][0], w.params()["to"][0]
    assert start.endswith("-01") and start[:7] == end[:7]
    dates = result_dates(page)
    assert dates and all(start <= d <= end for d in dates)
    month_total = int(re.sub(r"\D", "", page.locator(".summary").inner_text().split("stor")[0]))
    assert month_total < total

    page.locator("#from").fill(f"{start[:7]}-10")
    with page.expect_navigation():
        page.get_by_role("button", name="Apply dates").click()
    assert w.params()["from"] == [f"{start[:7]}-10"]
    assert all(f"{start[:7]}-10" <= d <= end for d in result_dates(page))


def test_story_and_related_story(reuters_server, watch) -> None:
    w = watch(reuters_server)
    page = w.page
    w.open("/search?q=opec+quota")
    with page.expect_navigation():
        page.locator(".result-title a").first.click()
    assert page.locator(".story-body mark").count() > 0
    first_story = page.url
    related = page.get_by_role("region", name="Related stories").get_by_role("link")
    assert related.count() > 0
    title = related.first.inner_text()
    with page.expect_navigation():
        related.first.click()
    assert page.url != first_story and urlsplit(page.url).path.startswith("/stories/")
    expect(page.locator("h1")).to_have_text(title)


def test_did_you_mean_fixes_a_typo(reuters_server, watch) -> None:
    typo = "sumatra petrolium"  # "sumatra" finds a few stories: the suggestion is offered above them
    w = watch(reuters_server)
    page = w.page
    w.open("/")
    w.search_for(typo)
    before = page.locator(".result").count()
    fix = page.locator(".did-you-mean a")
    expect(fix).to_be_visible()
    fixed = fix.inner_text()
    assert fixed != typo
    with page.expect_navigation():
        fix.click()
    expect(page.locator("#q")).to_have_value(fixed)
    assert page.locator(".result").count() > before
