"""Whatever the query string, the answer is results (perhaps with a notice), or a 400 naming a limit.

Hypothesis builds queries from printable Unicode and from pieces of the
query syntax (operators, brackets, quotes, field names, ranges, signs,
wildcards, symbols), and sends each to ``/api/search`` and ``/search`` of
``create_app(...).test_client()`` over a real index of the sample stories.
"""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search_service.config import Config, Limits
from search_service.syntax import has_words
from search_service.web import create_app

#: The 400s a query string alone may get: the limits, in the user's words.
LIMIT_MESSAGES = re.compile(
    r"characters long; the limit is|different words; the limit is|matches more than \d+ different words"
)
PIECES = [
    "drought",
    "water",
    "prices",
    "AND",
    "OR",
    "NOT",
    "ANDNOT",
    "REQUIRE",
    "TO",
    "(",
    ")",
    '"',
    "“",
    "”",
    "'",
    "*",
    "dr*",
    "d*",
    "*ought",
    "+",
    "-",
    "~",
    "~2",
    "^",
    "^2",
    ":",
    "headline:",
    "body:",
    "published:",
    "Headline:",
    "foo:",
    "http://",
    "[",
    "]",
    "{",
    "}",
    "[2021-01-01 TO 2021-06-30]",
    "[2024 TO",
    "2021",
    "2021-02-30",
    "C++",
    "c#",
    ".NET",
    "AT&T",
    "9/11",
    "COVID-19",
    "U.S.",
    "$5bn",
    "3.5%",
    "e-mail",
    "the",
    "to be",
    "…",
    "\\",
    "/",
    "?",
    "!",
    ",",
    ".",
    "&",
    "#",
    "%",
    "$",
    "\t",
    "\n",
    "日本",
    "\u202e",
]
PRINTABLE = st.text(st.characters(categories=("L", "M", "N", "P", "S", "Zs")), max_size=80)
QUERIES = st.one_of(
    PRINTABLE,
    st.lists(st.sampled_from(PIECES), max_size=30).map(" ".join),
    st.lists(st.sampled_from(PIECES), max_size=30).map("".join),
    st.lists(st.one_of(st.sampled_from(PIECES), PRINTABLE), max_size=12).map(" ".join),
)


@pytest.fixture(scope="module")
def client(sample_index) -> FlaskClient:  # type: ignore[no-untyped-def]
    config = Config(index_dir=sample_index, stories_dir=None, rate_limit=None)
    return create_app(config).test_client()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=QUERIES)
def test_any_query_is_answered_or_refused_for_a_limit(client: FlaskClient, q: str) -> None:
    response = client.get("/api/search", query_string={"q": q})
    body = response.get_json()
    if response.status_code == 400:
        assert LIMIT_MESSAGES.search(body["error"]["message"]), (q, body)
        return
    assert response.status_code == 200, (q, response.status_code, body)
    assert body["notice"] is None or body["notice"].strip(), q
    assert body["total"] >= len(body["hits"])
    if body["total"] == 0 and not body["notice"]:
        assert q.strip(), "an empty query says why nothing was searched"

    page = client.get("/search", query_string={"q": q})
    assert page.status_code == 200, (q, page.status_code)
    text = page.get_data(as_text=True)
    assert "Traceback" not in text and 'role="alert"' not in text, q
    if not has_words(q):
        assert 'id="guide"' in text, "a query with no words shows the home page"
    elif body["notice"]:
        assert 'class="notice query-notice"' in text


def test_the_limits_are_the_only_400s(client: FlaskClient) -> None:
    limits = Limits()
    too_long = client.get("/api/search", query_string={"q": "x" * (limits.max_query_chars + 1)})
    too_many = client.get("/api/search", query_string={"q": " ".join(f"w{n}" for n in range(limits.max_terms + 1))})
    for response in (too_long, too_many):
        assert response.status_code == 400
        assert LIMIT_MESSAGES.search(response.get_json()["error"]["message"])
