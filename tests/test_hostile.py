"""Hostile input against live servers and the indexer: fuzzed parameters, costly queries, bad files, path tricks.

The properties hold for any input hypothesis finds: never a 5xx, never a
hang (every request has a timeout), JSON errors under /api, nothing a user
typed appears unescaped in a page.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from whoosh import index as whoosh_index

from search_service.stories import read_file

from conftest import AUTH, SAMPLES, TOKEN, LiveServer

pytestmark = pytest.mark.slow  # fuzzing live servers

#: A request that takes longer than this is a hang.
TIMEOUT = 10
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Pieces of query syntax, so the fuzzer builds nested, fielded, ranged and broken queries.
QUERY_PIECES = [
    "oil",
    "price",
    "bank",
    "AND",
    "OR",
    "NOT",
    "(",
    ")",
    '"',
    "*",
    "st*",
    "headline:",
    "body:",
    "published:",
    "[",
    "]",
    "TO",
    "{",
    "}",
    "-",
    "+",
    "~",
    "^",
    "^2",
    "?",
    ":",
    "\\",
    "/",
    "'",
    "\x00",
    "<script>",
    "&amp;",
    "2021-06-02",
    "1900",
    "2100",
    "published:[1900 TO 2100]",
    "body:[a TO z]",
    "%2e%2e%2f",
    "../",
    "\u202e",
    "日本",
]
QUERIES = st.one_of(
    st.text(max_size=120),
    st.lists(st.sampled_from(QUERY_PIECES), max_size=40).map(" ".join),
    st.lists(st.sampled_from(QUERY_PIECES), max_size=40).map("".join),
)
PARAM_VALUES = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.sampled_from(["relevance", "recent", "newest", "oldest", "2021-06-02", "2021-02-30", "0", "-1", "1e9", "NaN"]),
)
SEARCH_PARAMS = st.fixed_dictionaries(
    {"q": QUERIES},
    optional={name: PARAM_VALUES for name in ("page", "per_page", "sort", "from", "to")},
)
XSS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</title><svg/onload=alert(1)>",
    "<iframe src=javascript:alert(1)>",
]


def get(server: LiveServer, path: str, params: dict[str, str | None] | None = None) -> requests.Response:
    return requests.get(f"{server.url}{path}", params=params, timeout=TIMEOUT)


def assert_api_answer(r: requests.Response, allowed: set[int]) -> None:
    """A JSON answer with an allowed status; an error is the API's error shape."""
    assert r.status_code in allowed, (r.status_code, r.url, r.text[:300])
    assert r.headers["Content-Type"].startswith("application/json"), r.headers["Content-Type"]
    body = r.json()
    if r.status_code >= 400:
        assert set(body["error"]) >= {"code", "message", "request_id"}
        assert "Traceback" not in body["error"]["message"]


def assert_page_is_safe(r: requests.Response, typed: str) -> None:
    """No 5xx, an HTML page, and no markup the user typed comes back as markup."""
    assert r.status_code < 500, (r.status_code, r.url, r.text[:300])
    assert r.headers["Content-Type"].startswith("text/html"), r.headers["Content-Type"]
    for payload in XSS:
        if payload in typed:
            assert payload not in r.text, f"{payload!r} reflected unescaped by {r.url}"


# ---------------------------------------------------------------- fuzzing the live API and pages


@FUZZ
@given(params=SEARCH_PARAMS)
def test_fuzzed_search_parameters_never_5xx(sample_server: LiveServer, params: dict[str, str | None]) -> None:
    assert_api_answer(get(sample_server, "/api/search", params), {200, 400})


@FUZZ
@given(q=QUERIES)
def test_fuzzed_suggest_never_5xx(sample_server: LiveServer, q: str) -> None:
    r = get(sample_server, "/api/suggest", {"q": q})
    assert_api_answer(r, {200})
    assert isinstance(r.json()["suggestions"], list)


@FUZZ
@given(
    raw=st.one_of(st.text(min_size=1, max_size=80), st.lists(st.sampled_from(QUERY_PIECES), min_size=1).map("".join))
)
def test_fuzzed_story_ids_never_5xx(sample_server: LiveServer, raw: str) -> None:
    path_id = quote(raw, safe="")
    assert_api_answer(get(sample_server, f"/api/stories/{path_id}"), {200, 400, 404})
    assert_api_answer(get(sample_server, f"/api/stories/{path_id}/related"), {200, 400, 404})
    assert_page_is_safe(get(sample_server, f"/stories/{path_id}"), raw)


@FUZZ
@given(params=SEARCH_PARAMS, payload=st.sampled_from(XSS))
def test_fuzzed_search_page_never_5xx_nor_reflects_markup(
    sample_server: LiveServer, params: dict[str, str | None], payload: str
) -> None:
    typed = f"{params['q']} {payload}"
    r = get(sample_server, "/search", {**params, "q": typed, "from": params.get("from") or payload})
    assert_page_is_safe(r, typed)


@pytest.mark.parametrize("payload", XSS)
def test_search_page_escapes_a_script_in_the_query(sample_server: LiveServer, payload: str) -> None:
    r = get(sample_server, "/search", {"q": f"oil {payload}"})
    assert r.status_code == 200, r.status_code
    assert r.headers["Content-Type"].startswith("text/html")
    assert payload not in r.text
    assert payload.replace("<", "&lt;").replace(">", "&gt;")[:12] in r.text.replace("&#34;", '"').replace("&quot;", '"')
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]


# ---------------------------------------------------------------- costly queries


@pytest.mark.parametrize(
    "q",
    [
        "co*",
        "body:[a TO z]",
        "headline:[a TO zzzz]",
        " OR ".join(f"w{n}" for n in range(2_000)),
        " ".join(f"t{n}" for n in range(600)),
        "oil " * 2_500,
        "x" * 10_000,
    ],
    ids=[
        "two-letter-prefix",
        "body-range",
        "headline-range",
        "2000-ors",
        "600-terms",
        "10000-chars-words",
        "10000-chars-word",
    ],
)
def test_expensive_queries_are_refused_quickly(reuters_server: LiveServer, q: str) -> None:
    """Over the 19,040-story vocabulary, where expansions are really costly: 400 with a message."""
    started = time.monotonic()
    r = get(reuters_server, "/api/search", {"q": q})
    elapsed = time.monotonic() - started
    assert_api_answer(r, {400})
    assert r.json()["error"]["message"]
    assert elapsed < 5, f"took {elapsed:.1f} s to refuse"


@pytest.mark.parametrize(
    "q",
    [
        "published:[1900 TO 2100]",
        "(" * 240 + "oil" + ")" * 240,
        "(" * 500 + "oil" + ")" * 500,
        " OR ".join(f"oil{n}*" for n in range(60)),
        "*",
        "* -oil",
        "a*",
        "s*",
    ],
    ids=[
        "wide-date-range",
        "nested-240",
        "nested-500",
        "60-prefixes",
        "every-story",
        "every-story-but",
        "one-letter-prefix",
        "other-one-letter-prefix",
    ],
)
def test_costly_looking_queries_within_the_limits_are_answered_quickly(reuters_server: LiveServer, q: str) -> None:
    """A date range and a bare ``*`` are array masks; deep nesting collapses (or, past what the parser
    reads, is searched as its words); a one-letter wildcard is searched as the letter, with a notice:
    answered, never refused, and quickly."""
    started = time.monotonic()
    r = get(reuters_server, "/api/search", {"q": q, "per_page": "100", "page": "100"})
    elapsed = time.monotonic() - started
    assert_api_answer(r, {200})
    assert len(r.json()["hits"]) <= 100
    assert elapsed < 5, f"took {elapsed:.1f} s"


# ---------------------------------------------------------------- ids and paths that try to leave the index


#: Reach the story route: the id itself is refused.
BAD_IDS = [
    "/api/stories/%2e%2e",
    "/api/stories/..",
    "/api/stories/C:%5cWindows%5cwin.ini",
    "/api/stories/abc%00def",
    "/api/stories/%00",
    "/api/stories/.hidden",
    "/api/stories/a%20b",
    "/api/stories/" + "a" * 200,
]
#: Resolved by the server before routing (dot segments, doubled slashes) to a
#: URL outside /api/stories: an unknown URL, 404, never a file or a story.
LEAVING = [
    "/api/stories/../../etc/passwd",
    "/api/stories/..%2f..%2fetc%2fpasswd",
    "/api/stories/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/api/stories/a/../../b",
    "/api/stories/%2fetc%2fpasswd",
]


def raw_request(server: LiveServer, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """Send ``path`` byte for byte (requests would normalise ``../`` away)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def writable_server(tmp_path_factory: pytest.TempPathFactory):
    """A server with the write API on, over its own copy of the samples."""
    from search_service.backends.whoosh.indexer import index_paths

    index_dir = tmp_path_factory.mktemp("hostile-writes") / "index"
    index_paths([SAMPLES], index_dir)
    live = LiveServer(index_dir, {"SEARCH_SERVICE_TOKEN": TOKEN})
    yield live
    live.stop()


@pytest.mark.parametrize("path", BAD_IDS + LEAVING)
def test_ids_that_name_paths_are_refused(writable_server: LiveServer, path: str) -> None:
    count = requests.get(f"{writable_server.url}/healthz", timeout=TIMEOUT).json()["stories"]
    for method, headers in (("GET", {}), ("DELETE", AUTH)):
        status, body = raw_request(writable_server, method, path, headers)
        assert status == (400 if path in BAD_IDS else 404), (method, path, status, body[:200])
        assert '"request_id"' in body
        assert "root:" not in body
    assert requests.get(f"{writable_server.url}/healthz", timeout=TIMEOUT).json()["stories"] == count


# ---------------------------------------------------------------- story files


@pytest.fixture()
def hostile_stories(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A folder of bad files and good ones: (folder, {bad file: reason word}, {good file: story id})."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    samples = sorted(SAMPLES.glob("*.txt"))
    texts = [p.read_text("utf-8") for p in samples]
    ids = [read_file(p).stories[0].id for p in samples]
    good: dict[str, str] = {}

    def keep(name: str, n: int, text: str, encoding: str = "utf-8") -> None:
        path = folder / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding=encoding)
        good[str(path)] = ids[n]

    keep("good.txt", 0, texts[0])
    keep("nul-bytes.txt", 1, texts[1].replace("the ", "th\x00e "))
    keep("utf16.txt", 2, texts[2], encoding="utf-16")
    keep("folder.txt/inside.txt", 3, texts[3])  # a directory named .txt is walked like any folder
    keep("unreadable.txt", 4, texts[4])
    os.chmod(folder / "unreadable.txt", 0)
    bad: dict[str, str] = {}

    def spoil(name: str, reason: str, data: bytes) -> None:
        (folder / name).write_bytes(data)
        bad[str(folder / name)] = reason

    spoil("random.txt", "Story Code", os.urandom(20_000))
    spoil("truncated.txt", "Story Code", texts[5][: texts[5].index("Story Code")].encode())
    spoil("huge-line.txt", "Story Code", b"x" * 5_000_000)
    spoil("empty.txt", "empty", b"")
    spoil("utf16-no-bom.txt", "Story Code", "no story here at all".encode("utf-16-le"))
    with open(folder / "fifty-mb.txt", "wb") as f:
        f.truncate(50 * 2**20)
    bad[str(folder / "fifty-mb.txt")] = "MB"
    (folder / "loop-a.txt").symlink_to(folder / "loop-b.txt")
    (folder / "loop-b.txt").symlink_to(folder / "loop-a.txt")
    bad[str(folder / "loop-a.txt")] = "symbolic links"
    bad[str(folder / "loop-b.txt")] = "symbolic links"
    (folder / "dangling.txt").symlink_to(folder / "nowhere.txt")
    bad[str(folder / "dangling.txt")] = "No such file"
    if not os.access(folder / "unreadable.txt", os.R_OK):  # root reads mode 000 files: then it is a good story
        bad[str(folder / "unreadable.txt")] = "cannot read"
        del good[str(folder / "unreadable.txt")]
    return folder, bad, good


def test_indexer_skips_each_bad_file_with_its_reason_and_indexes_the_good_ones(
    hostile_stories: tuple[Path, dict[str, str], dict[str, str]], tmp_path: Path
) -> None:
    folder, bad, good = hostile_stories
    index_dir = tmp_path / "index"
    run = subprocess.run(
        [sys.executable, "-m", "search_service", "index", str(folder), "--index", str(index_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    skipped = {
        line.split(": ", 1)[0].removeprefix("skipped "): line
        for line in run.stderr.splitlines()
        if line.startswith("skipped ")
    }
    for path, reason in bad.items():
        assert path in skipped, f"{path} not reported as skipped:\n{run.stderr}"
        assert reason in skipped[path], skipped[path]
    assert set(skipped) == set(bad), run.stderr
    assert f"{len(good)} added" in run.stdout and f"{len(bad)} skipped" in run.stdout, run.stdout
    ix = whoosh_index.open_dir(index_dir)
    with ix.searcher() as searcher:
        assert searcher.doc_count() == len(good)
        for path, story_id in good.items():
            stored = searcher.document(id=story_id)
            assert stored is not None and stored["path"] == path, (path, story_id)
