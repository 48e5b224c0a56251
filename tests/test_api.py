"""The JSON API end to end: a real waitress server on a real port, spoken to with ``requests``.

Success shapes of every endpoint, every error status with its JSON body and
headers, the request id, the rate limit and the basics of the write API.
Expected values come from the stories themselves (read with
:mod:`search_service.stories`), not from hard-coded ids.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from search_service.config import Limits
from search_service.stories import Story, read_file

from conftest import HIT_KEYS, SAMPLES, SEARCH_KEYS, LiveServer

pytestmark = pytest.mark.slow  # live servers (the in-process API tier is test_engine_contract.py)

TOKEN = "api-test-token"
#: The small body limit of the writable server, so the 413 test sends little.
SMALL_BODY_LIMIT = 64 * 1024


def sample_stories() -> dict[str, Story]:
    return {s.id: s for path in sorted(SAMPLES.glob("*.txt")) for s in read_file(path).stories}


def get(server: LiveServer, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{server.url}{path}", params=params, timeout=30)


def assert_error(response: requests.Response, status: int, *words: str) -> dict[str, Any]:
    """``response`` is the JSON error shape with ``status``; its message names each of ``words``."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Traceback" not in response.text and "<html" not in response.text.lower()
    error = response.json()["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["request_id"] == response.headers["X-Request-ID"]
    for word in words:
        assert word.lower() in error["message"].lower(), error["message"]
    assert "Retry-After" not in response.headers or status == 429
    return error


@pytest.fixture(scope="module")
def writable(sample_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server over a copy of the sample index, with a write token and a small body limit."""
    index = tmp_path_factory.mktemp("api-writable") / "index"
    shutil.copytree(sample_index, index)
    env = {"SEARCH_SERVICE_TOKEN": TOKEN, "SEARCH_SERVICE_MAX_REQUEST_BYTES": str(SMALL_BODY_LIMIT)}
    server = LiveServer(index, env)
    yield server
    log = server.stop()
    assert "Traceback" not in log, log


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------- reading


def test_search_shape_and_content(sample_server: LiveServer) -> None:
    stories = sample_stories()
    response = get(sample_server, "/api/search", q="drought", per_page=2)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Retry-After" not in response.headers
    result = response.json()
    assert set(result) >= SEARCH_KEYS
    assert (result["query"], result["page"], result["per_page"], result["sort"]) == ("drought", 1, 2, "relevance")
    with_word = {i for i, s in stories.items() if "drought" in f"{s.headline} {s.body}".lower()}
    assert result["total"] == len(with_word) > 2
    assert len(result["hits"]) == 2 and result["took_ms"] >= 0
    for hit in result["hits"]:
        assert set(hit) == HIT_KEYS
        assert hit["id"] in with_word
        assert hit["headline"] == stories[hit["id"]].headline
        assert datetime.fromisoformat(hit["published"]) == stories[hit["id"]].published
        assert isinstance(hit["score"], float) and hit["score"] > 0
        assert set(hit["highlights"]) == {"headline", "body"}
        assert any("<mark>" in f for f in hit["highlights"]["body"])
    assert result["hits"][0]["score"] >= result["hits"][1]["score"]
    assert sum(result["facets"]["year"].values()) == sum(result["facets"]["month"].values()) == result["total"]
    assert result["suggestion"] is None


def test_search_pages_dates_and_sorts(sample_server: LiveServer) -> None:
    everything = get(sample_server, "/api/search", q="drought", per_page=100).json()
    ids = [h["id"] for h in everything["hits"]]
    pages = [get(sample_server, "/api/search", q="drought", per_page=1, page=n).json() for n in (1, 2, 3)]
    assert [p["hits"][0]["id"] for p in pages] == ids[:3]
    assert all(p["total"] == everything["total"] for p in pages)
    beyond = get(sample_server, "/api/search", q="drought", per_page=10, page=5).json()
    assert beyond["hits"] == [] and beyond["total"] == everything["total"]

    newest = get(sample_server, "/api/search", q="drought", sort="newest").json()
    dates = [h["published"] for h in newest["hits"]]
    assert dates == sorted(dates, reverse=True) and all(h["score"] is None for h in newest["hits"])
    oldest = get(sample_server, "/api/search", q="drought", sort="oldest").json()
    assert [h["published"] for h in oldest["hits"]] == sorted(dates)

    first_year = min(everything["facets"]["year"])
    year_range = {"from": f"{first_year}-01-01", "to": f"{first_year}-12-31"}
    dated = get(sample_server, "/api/search", q="drought", **year_range)
    dated_result = dated.json()
    assert dated_result["total"] == everything["facets"]["year"][first_year]
    assert all(h["published"].startswith(first_year) for h in dated_result["hits"])


def test_dates_at_the_ends_of_the_calendar(sample_server: LiveServer) -> None:
    total = get(sample_server, "/api/search", q="drought").json()["total"]
    assert get(sample_server, "/api/search", q="drought", to="0001-01-01").json()["total"] == 0
    assert get(sample_server, "/api/search", q="drought", **{"from": "0001-01-01"}).json()["total"] == total
    assert get(sample_server, "/api/search", q="drought", **{"from": "9999-12-31"}).json()["total"] == 0
    assert get(sample_server, "/api/search", q="drought", to="9999-12-31").json()["total"] == total


def test_story_related_suggest_health_and_openapi(sample_server: LiveServer) -> None:
    stories = sample_stories()
    # A drought story: three sample stories share the word, so it has related ones.
    story_id = get(sample_server, "/api/search", q="drought").json()["hits"][0]["id"]
    story = stories[story_id]
    got = get(sample_server, f"/api/stories/{story_id}").json()
    assert {"id", "headline", "published", "body", "source"} <= set(got)
    assert (got["id"], got["headline"], got["body"]) == (story.id, story.headline, story.body)
    assert datetime.fromisoformat(got["published"]) == story.published
    # The file's name, not where the server keeps it.
    assert got["source"] == Path(story.source).name and "/" not in got["source"]

    related = get(sample_server, f"/api/stories/{story_id}/related").json()
    assert set(related) == {"hits"} and related["hits"]
    assert story_id not in {h["id"] for h in related["hits"]}
    assert all(set(h) == HIT_KEYS and h["id"] in stories for h in related["hits"])
    assert any("drought" in stories[h["id"]].body.lower() for h in related["hits"])

    suggest = get(sample_server, "/api/suggest", q="dr").json()
    assert suggest["query"] == "dr"
    assert suggest["suggestions"] and len(suggest["suggestions"]) <= 10
    headline_words = {w.lower().strip(",:’'") for s in stories.values() for w in s.headline.split()}
    assert all(s.startswith("dr") and s in headline_words for s in suggest["suggestions"])
    assert get(sample_server, "/api/suggest", q="").json()["suggestions"] == []

    health = get(sample_server, "/healthz").json()
    assert health["status"] == "ok" and health["stories"] == len(stories)
    assert health["writes_enabled"] is False
    assert health["first"] == min(s.published for s in stories.values()).isoformat()

    document = get(sample_server, "/api/openapi.json").json()
    assert "/api/search" in document["paths"]


def test_client_request_id_is_echoed(sample_server: LiveServer) -> None:
    url = f"{sample_server.url}/api/search"
    ok = requests.get(url, params={"q": "drought"}, headers={"X-Request-ID": "trace-42"}, timeout=10)
    assert ok.headers["X-Request-ID"] == "trace-42"
    bad = requests.get(url, params={"q": "drought", "page": "0"}, headers={"X-Request-ID": "trace-43"}, timeout=10)
    assert assert_error(bad, 400)["request_id"] == "trace-43"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"q": "drought", "page": "0"}, ["page"]),
        ({"q": "drought", "page": "two"}, ["page", "whole number"]),
        ({"q": "drought", "per_page": "0"}, ["per_page", str(Limits().max_per_page)]),
        ({"q": "drought", "per_page": str(Limits().max_per_page + 1)}, ["per_page"]),
        ({"q": "drought", "per_page": "100", "page": "101"}, [f"{Limits().max_depth:,}"]),
        ({"q": "drought", "sort": "best"}, ["sort", "relevance"]),
        ({"q": "drought", "from": "2021-13-01"}, ["from", "YYYY-MM-DD"]),
        ({"q": "drought", "to": "yesterday"}, ["to", "YYYY-MM-DD"]),
        ({"q": "drought", "from": "2022-01-01", "to": "2021-01-01"}, ["after"]),
        ({"q": "x" * (Limits().max_query_chars + 1)}, [str(Limits().max_query_chars)]),
        ({"q": " ".join(f"word{n}" for n in range(Limits().max_terms + 1))}, [str(Limits().max_terms)]),
    ],
)
def test_bad_search_requests_are_400_with_a_helpful_message(
    sample_server: LiveServer, params: dict[str, str], words: list[str]
) -> None:
    error = assert_error(get(sample_server, "/api/search", **params), 400, *words)
    assert error["code"] == "bad_request"


@pytest.mark.parametrize(
    ("q", "notice"),
    [
        ("", "nothing to search for"),
        ("   ", "nothing to search for"),
        ("?!", "nothing to search for"),
        ("*ought", "end of a word"),
        ("d*", "2 letters"),
        ("published:[2021 TO", "published:[2021-01-01 TO 2021-06-30]"),
        ("-coffee", "* -coffee"),
    ],
)
def test_queries_that_search_for_nothing_are_200_with_a_notice(sample_server: LiveServer, q: str, notice: str) -> None:
    response = get(sample_server, "/api/search", q=q)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 0 and body["hits"] == []
    assert notice in body["notice"]


def test_wildcard_expansion_limit_is_400(reuters_server: LiveServer) -> None:
    error = assert_error(get(reuters_server, "/api/search", q="co*"), 400, "co*", str(Limits().max_expansions))
    assert error["code"] == "bad_request"


def test_not_found_is_json(sample_server: LiveServer) -> None:
    assert_error(get(sample_server, "/api/stories/no-such-story"), 404, "no-such-story")
    assert_error(get(sample_server, "/api/stories/no-such-story/related"), 404, "no-such-story")
    assert_error(get(sample_server, "/api/nothing-here"), 404)
    assert_error(get(sample_server, "/api/stories/a/b/c"), 404)
    assert_error(get(sample_server, "/api/stories/.hidden"), 400, "story ids")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/search"),
        ("DELETE", "/api/search"),
        ("POST", "/healthz"),
        ("PATCH", "/api/stories/x"),
        ("DELETE", "/api/stories/x/related"),
    ],
)
def test_wrong_method_is_405_with_allow(sample_server: LiveServer, method: str, path: str) -> None:
    response = requests.request(method, f"{sample_server.url}{path}", timeout=10)
    assert assert_error(response, 405)["code"] == "method_not_allowed"
    assert "GET" in {m.strip() for m in response.headers["Allow"].split(",")}
    assert method not in response.headers["Allow"]


def test_writes_are_off_without_a_token(sample_server: LiveServer) -> None:
    story = {"id": "new-1", "headline": "Locusts", "body": "Swarms of locusts."}
    posted = requests.post(f"{sample_server.url}/api/stories", json=story, headers=auth(), timeout=10)
    assert_error(posted, 403, "SEARCH_SERVICE_TOKEN")
    assert_error(requests.delete(f"{sample_server.url}/api/stories/new-1", headers=auth(), timeout=10), 403)


def test_oversized_body_is_413_json(writable: LiveServer) -> None:
    """Over the app's limit: the API's JSON 413.  Far over it: waitress refuses it (status only)."""
    body = json.dumps({"id": "big", "headline": "Big", "body": "word " * (SMALL_BODY_LIMIT // 5 + 100)})
    assert SMALL_BODY_LIMIT < len(body) < 2 * SMALL_BODY_LIMIT
    headers = auth() | {"Content-Type": "application/json"}
    response = requests.post(f"{writable.url}/api/stories", data=body, headers=headers, timeout=30)
    assert assert_error(response, 413)["code"] == "request_entity_too_large"
    huge = requests.post(f"{writable.url}/api/stories", data=b"x" * (5 * SMALL_BODY_LIMIT), headers=auth(), timeout=30)
    assert huge.status_code == 413
    assert get(writable, "/api/stories/big").status_code == 404


def test_write_basics(writable: LiveServer) -> None:
    url = f"{writable.url}/api/stories"
    story = {
        "id": "locust-1",
        "headline": "Locust swarms reach the coast",
        "body": "Swarms of locusts stripped fields.",
        "published": "2024-02-03T04:05:06",
    }
    assert_error(requests.post(url, json=story, timeout=10), 401, "Bearer")
    assert_error(requests.post(url, json=story, headers=auth("wrong"), timeout=10), 401)
    assert_error(requests.post(url, data="{not json", headers=auth(), timeout=10), 400, "line 1")
    assert_error(requests.post(url, json={"id": "x"}, headers=auth(), timeout=10), 400, "headline")

    added = requests.post(url, json=story, headers=auth(), timeout=10)
    assert added.status_code == 201 and added.json() == {"added": 1, "updated": 0, "ids": ["locust-1"]}
    stored = get(writable, "/api/stories/locust-1").json()
    assert (stored["headline"], stored["published"], stored["source"]) == (story["headline"], story["published"], "api")
    assert [h["id"] for h in get(writable, "/api/search", q="locusts").json()["hits"]] == ["locust-1"]

    lines = [{"id": f"locust-{n}", "headline": f"Locusts {n}", "body": "More locusts."} for n in (1, 2)]
    batch = "\n".join(json.dumps(line) for line in lines)
    replaced = requests.post(url, data=batch, headers=auth() | {"Content-Type": "application/x-ndjson"}, timeout=10)
    assert replaced.status_code == 201
    assert replaced.json() == {"added": 1, "updated": 1, "ids": ["locust-1", "locust-2"]}

    assert_error(requests.delete(f"{url}/locust-2", timeout=10), 401)
    deleted = requests.delete(f"{url}/locust-2", headers=auth(), timeout=10)
    assert deleted.status_code == 200 and deleted.json() == {"deleted": "locust-2"}
    assert_error(get(writable, "/api/stories/locust-2"), 404)
    assert_error(requests.delete(f"{url}/locust-2", headers=auth(), timeout=10), 404)


def test_rate_limit_is_429_with_retry_after(sample_index: Path) -> None:
    server = LiveServer(sample_index, {"SEARCH_SERVICE_RATE_LIMIT": "5/minute"})
    try:
        allowed = [
            get(server, "/api/search", q="drought"),
            get(server, "/api/search", q="drought", page="0"),
            get(server, "/api/stories/no-such-story"),
            get(server, "/api/suggest", q="dr"),
            get(server, "/search", q="coffee"),  # the page counts in the same budget
        ]
        refused = get(server, "/api/search", q="drought")
        also_refused = get(server, "/api/stories/no-such-story")
        page_refused = get(server, "/search", q="drought")
        still_served = [get(server, "/healthz"), get(server, "/static/app.js")]
    finally:
        log = server.stop()
    assert [r.status_code for r in allowed] == [200, 400, 404, 200, 200]
    assert page_refused.status_code == 429 and page_refused.headers["Content-Type"].startswith("text/html")
    assert "too many requests" in page_refused.text and "Retry-After" in page_refused.headers
    assert [r.status_code for r in still_served] == [200, 200]
    for response in allowed:
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert "Retry-After" not in response.headers
    for response in (refused, also_refused):
        error = assert_error(response, 429, "5 per 1 minute", "Retry-After")
        assert error["code"] == "too_many_requests" and error["request_id"] != "-"
        assert 0 <= int(response.headers["Retry-After"]) <= 60
    assert "Traceback" not in log


@pytest.mark.parametrize("trusted", [True, False])
def test_rate_limit_per_client_behind_a_trusted_proxy(sample_index: Path, trusted: bool) -> None:
    """Behind a proxy, X-Forwarded-For names the client; from anyone not trusted it is ignored (no dodging the limit)."""
    env = {"SEARCH_SERVICE_RATE_LIMIT": "2/minute"}
    if trusted:
        env["SEARCH_SERVICE_TRUSTED_PROXY"] = "127.0.0.1"

    def as_client(address: str) -> int:
        return requests.get(
            f"{server.url}/api/search", params={"q": "oil"}, headers={"X-Forwarded-For": address}, timeout=30
        ).status_code

    server = LiveServer(sample_index, env)
    try:
        first = [as_client("203.0.113.1") for _ in range(3)]
        second = as_client("203.0.113.2")
    finally:
        log = server.stop()
    assert first == [200, 200, 429]
    assert second == (200 if trusted else 429)
    assert ("203.0.113.2 GET /api/search" in log) == trusted


def test_reuters_escapes_tickers_in_highlights(reuters_server: LiveServer) -> None:
    result = get(reuters_server, "/api/search", q="oil prices", per_page=100).json()
    assert result["total"] > 100 and len(result["hits"]) == 100
    tickers = [h for h in result["hits"] if "<" in h["headline"]]
    assert tickers, "expected a Reuters headline with a <TICKER> among 100 oil hits"
    for hit in tickers:
        marked = hit["highlights"]["headline"].replace("<mark>", "").replace("</mark>", "")
        assert "<" not in marked and "&lt;" in marked
