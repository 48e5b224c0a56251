"""The OpenAPI document: valid, true to the code's limits, and true to the live service.

The last test lets schemathesis generate requests from the document against a
real server (over a writable copy of the sample index, with a write token) and
checks every response: no 5xx, documented status codes, content types,
headers and bodies, 405 with ``Allow`` for undocumented methods, and write
operations refused without the token.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from schemathesis import checks

from search_service.config import Config, Limits
from search_service.model import SORTS
from search_service.web import create_app
from search_service.web.openapi import openapi_document

from conftest import LiveServer

TOKEN = "openapi-test-token"


@pytest.fixture(scope="module")
def document(sample_server: LiveServer) -> dict[str, Any]:
    response = requests.get(f"{sample_server.url}/api/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def test_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises with the offending part
    assert document["openapi"].startswith("3.1")


def test_served_document_is_built_from_the_configured_limits(document: dict[str, Any]) -> None:
    limits = Limits()
    assert document == openapi_document(limits, Config().max_request_bytes)
    params = document["components"]["parameters"]
    assert params["q"]["schema"]["maxLength"] == limits.max_query_chars
    assert (params["per_page"]["schema"]["minimum"], params["per_page"]["schema"]["maximum"]) == (
        1,
        limits.max_per_page,
    )
    assert params["page"]["schema"]["minimum"] == 1
    assert params["page"]["schema"]["maximum"] == limits.max_depth
    assert params["sort"]["schema"]["enum"] == list(SORTS)
    assert params["from"]["schema"]["format"] == params["to"]["schema"]["format"] == "date"


def test_other_limits_change_the_document() -> None:
    """Not a constant: a service with other limits describes those."""
    small = openapi_document(Limits(max_query_chars=50, max_per_page=20), 1000)
    params = small["components"]["parameters"]
    assert params["q"]["schema"]["maxLength"] == 50
    assert params["per_page"]["schema"]["maximum"] == 20
    assert "1000 bytes" in small["paths"]["/api/stories"]["post"]["description"]


def test_every_route_is_documented_and_nothing_else(sample_index: Path, document: dict[str, Any]) -> None:
    app = create_app(Config(index_dir=sample_index, rate_limit=None))
    served = {
        (rule.rule.replace("<raw_id>", "{id}"), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") or rule.rule == "/healthz"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    documented = {
        (path, method) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    assert served == documented


def test_every_response_has_a_json_schema_and_errors_share_one(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            responses = operation["responses"]
            assert "500" in responses and "429" in responses, (path, method)
            for status, response in responses.items():
                schema = response["content"]["application/json"]["schema"]
                assert "X-Request-ID" in response["headers"]
                if int(status) >= 400:
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), (path, method)


def _validator(document: dict[str, Any], name: str) -> OAS31Validator:
    return OAS31Validator({"$ref": f"#/components/schemas/{name}", "components": document["components"]})


def test_real_responses_match_their_schemas(sample_server: LiveServer, document: dict[str, Any]) -> None:
    """Responses with real content (hits, facets, highlights), which random queries rarely reach."""
    base = sample_server.url
    search = requests.get(f"{base}/api/search", params={"q": "drought prices", "per_page": 2}, timeout=10).json()
    assert search["hits"] and search["facets"]["year"]
    _validator(document, "SearchResult").validate(search)
    by_date = requests.get(f"{base}/api/search", params={"q": "drought", "sort": "newest"}, timeout=10).json()
    _validator(document, "SearchResult").validate(by_date)
    story_id = search["hits"][0]["id"]
    _validator(document, "Story").validate(requests.get(f"{base}/api/stories/{story_id}", timeout=10).json())
    related = requests.get(f"{base}/api/stories/{story_id}/related", timeout=10).json()
    assert related["hits"]
    _validator(document, "Related").validate(related)
    suggestions = requests.get(f"{base}/api/suggest", params={"q": "dr"}, timeout=10).json()
    assert suggestions["suggestions"]
    _validator(document, "Suggestions").validate(suggestions)
    _validator(document, "Health").validate(requests.get(f"{base}/healthz", timeout=10).json())
    _validator(document, "Error").validate(requests.get(f"{base}/api/search?q=a&page=0", timeout=10).json())


def test_schemas_reject_what_the_service_never_sends(document: dict[str, Any]) -> None:
    """The schemas are strict enough to catch a drifting response (else the fuzzing proves little)."""
    error = _validator(document, "Error")
    assert not error.is_valid({"error": "boom"})
    assert not error.is_valid({"error": {"code": "x", "message": "y"}})
    hit = {
        "id": "1",
        "headline": "h",
        "published": "2021-06-02",
        "score": 1.0,
        "highlights": {"headline": "h", "body": []},
        "similar": None,
    }
    assert not _validator(document, "Hit").is_valid(hit)  # a date without the time
    assert _validator(document, "Hit").is_valid(hit | {"published": "2021-06-02T09:08:00"})
    assert not _validator(document, "Hit").is_valid(hit | {"published": None, "extra": 1})


# ---------------------------------------------------------------- property-based


@pytest.fixture(scope="module")
def writable_server(sample_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server over a copy of the sample index with writes on, so POST and DELETE really run."""
    index = tmp_path_factory.mktemp("openapi-fuzz") / "index"
    shutil.copytree(sample_index, index)
    server = LiveServer(index, {"SEARCH_SERVICE_TOKEN": TOKEN})
    yield server
    log = server.stop()
    assert "Traceback" not in log, log


#: The document the code builds, which the server serves unchanged (checked
#: above).  Loaded at import, not from the live server through
#: ``schemathesis.pytest.from_fixture``: that loader breaks on pytest 9
#: (it sets ``node._nodeid``, which pytest 9 removed).
schema = schemathesis.openapi.from_dict(openapi_document())


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    """A batch of stories as the write API reads it: one JSON object per line."""
    return "\n".join(json.dumps(item) for item in (value if isinstance(value, list) else [value])).encode()


#: Everything about a response that the document promises.  Left out: the
#: two "should it have been accepted" heuristics, which the document can't
#: express for this API (page × per_page ≤ 10,000; empty parameters mean the
#: default, as HTML forms send them); tests/test_api.py checks those 400s.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.unsupported_method,
    checks.allow_header_conformance,
    checks.ignored_auth,
]


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_service_keeps_every_promise_of_the_document(case: schemathesis.Case, writable_server: LiveServer) -> None:
    case.call_and_validate(
        base_url=writable_server.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=CHECKS,
        timeout=30,
    )
