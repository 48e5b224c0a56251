"""The write API against a live server: auth, validation, size limit, read-your-write, lock contention.

Each module gets its own writable index (a fresh build of the samples), so
writes never touch the session indexes other tests read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from whoosh import index as whoosh_index

from search_service.backends.whoosh.indexer import index_paths

from conftest import AUTH, SAMPLES, TOKEN, LiveServer

pytestmark = pytest.mark.slow  # a live server with writes on

#: Small enough that an oversized body is cheap to send.
MAX_BODY = 64 * 1024
#: Seconds a write waits for the lock before the server answers 503.
WRITE_TIMEOUT = 1.0
TIMEOUT = 30


@pytest.fixture(scope="module")
def write_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("write-api") / "index"
    index_paths([SAMPLES], index_dir)
    return index_dir


@pytest.fixture(scope="module")
def server(write_index: Path) -> Iterator[LiveServer]:
    live = LiveServer(
        write_index,
        {
            "SEARCH_SERVICE_TOKEN": TOKEN,
            "SEARCH_SERVICE_WRITE_TIMEOUT": str(WRITE_TIMEOUT),
            "SEARCH_SERVICE_MAX_REQUEST_BYTES": str(MAX_BODY),
        },
        "--threads",
        "8",
    )
    yield live
    live.stop()


def story(story_id: str, word: str, headline: str = "Write API story") -> dict[str, str]:
    """A valid story whose body holds ``word``, a made-up word no sample story contains."""
    return {
        "id": story_id,
        "headline": f"{headline} {word}",
        "body": f"The {word} was reported by the write API test.",
        "published": "2022-03-04T05:06:07",
    }


def post(server: LiveServer, body: str | bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{server.url}/api/stories", data=body, headers={**AUTH, **(headers or {})}, timeout=TIMEOUT)


def hits_for(server: LiveServer, q: str) -> list[str]:
    """The ids of the stories with the words of ``q`` (as typed: no spelling correction)."""
    r = requests.get(f"{server.url}/api/search", params={"q": q, "spell": "off"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return [h["id"] for h in r.json()["hits"]]


def story_count(server: LiveServer) -> int:
    return requests.get(f"{server.url}/healthz", timeout=TIMEOUT).json()["stories"]


def assert_json_error(r: requests.Response, status: int) -> str:
    """The response is the API's JSON error with ``status``; return its message."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("application/json"), r.headers["Content-Type"]
    error = r.json()["error"]
    assert error["request_id"] == r.headers["X-Request-ID"]
    return error["message"]


# ---------------------------------------------------------------- authorization


def test_writes_are_off_without_a_configured_token(sample_server: LiveServer) -> None:
    """No SEARCH_SERVICE_TOKEN: every write is 403, whatever the request says."""
    r = requests.post(
        f"{sample_server.url}/api/stories", json=story("w-off", "zorbleflux"), headers=AUTH, timeout=TIMEOUT
    )
    assert "SEARCH_SERVICE_TOKEN" in assert_json_error(r, 403)
    r = requests.delete(f"{sample_server.url}/api/stories/w-off", headers=AUTH, timeout=TIMEOUT)
    assert_json_error(r, 403)
    assert requests.get(f"{sample_server.url}/healthz", timeout=TIMEOUT).json()["writes_enabled"] is False


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        f"Basic {TOKEN}",
        "Bearer wrong-token",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        "Bearer ",
        TOKEN,
    ],
    ids=["missing", "empty", "basic-scheme", "wrong", "prefix", "longer", "bearer-only", "no-scheme"],
)
def test_wrong_or_missing_token_is_401_and_writes_nothing(server: LiveServer, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    r = requests.post(f"{server.url}/api/stories", json=story("w-unauth", "quonkish"), headers=headers, timeout=TIMEOUT)
    assert "Bearer" in assert_json_error(r, 401)
    r = requests.delete(f"{server.url}/api/stories/w-unauth", headers=headers, timeout=TIMEOUT)
    assert_json_error(r, 401)
    assert requests.get(f"{server.url}/api/stories/w-unauth", timeout=TIMEOUT).status_code == 404
    assert requests.get(f"{server.url}/healthz", timeout=TIMEOUT).json()["writes_enabled"] is True


# ---------------------------------------------------------------- committed when the call returns


def test_a_write_is_visible_to_every_reader_as_soon_as_it_returns(server: LiveServer) -> None:
    """Right after the 201, GET and search find the story on whichever server thread answers.

    Eight parallel readers per write land on different waitress threads,
    each with its own searcher; none may still show the index from before.
    """
    with ThreadPoolExecutor(8) as pool:
        for n in range(8):
            word = f"xyzzyfresh{chr(ord('a') + n)}"
            sid = f"w-fresh-{n}"
            r = post(server, json.dumps(story(sid, word)))
            assert r.status_code == 201, r.text
            assert r.json() == {"added": 1, "updated": 0, "ids": [sid]}
            gets = list(
                pool.map(lambda _, s=sid: requests.get(f"{server.url}/api/stories/{s}", timeout=TIMEOUT), range(8))
            )
            assert [g.status_code for g in gets] == [200] * 8
            assert all(g.json()["headline"] == f"Write API story {word}" for g in gets)
            found = list(pool.map(lambda _, w=word: hits_for(server, w), range(8)))
            assert found == [[sid]] * 8


def test_ndjson_batch_adds_every_line(server: LiveServer) -> None:
    before = story_count(server)
    lines = [json.dumps(story(f"w-batch-{n}", f"plimbatch{chr(ord('a') + n)}")) for n in range(5)]
    r = post(server, "\n".join(lines) + "\n", {"Content-Type": "application/x-ndjson"})
    assert r.status_code == 201, r.text
    assert r.json()["added"] == 5
    assert r.json()["ids"] == [f"w-batch-{n}" for n in range(5)]
    assert story_count(server) == before + 5
    for n in range(5):
        assert hits_for(server, f"plimbatch{chr(ord('a') + n)}") == [f"w-batch-{n}"]


def test_update_by_id_replaces_the_story(server: LiveServer) -> None:
    assert post(server, json.dumps(story("w-upd", "oldvordle", "First version"))).status_code == 201
    count = story_count(server)
    r = post(server, json.dumps(story("w-upd", "newvordle", "Second version")))
    assert r.status_code == 200, r.text
    assert r.json() == {"added": 0, "updated": 1, "ids": ["w-upd"]}
    assert story_count(server) == count
    assert (
        requests.get(f"{server.url}/api/stories/w-upd", timeout=TIMEOUT).json()["headline"]
        == "Second version newvordle"
    )
    assert hits_for(server, "newvordle") == ["w-upd"]
    assert hits_for(server, "oldvordle") == []


def test_delete_removes_and_unknown_id_is_404(server: LiveServer) -> None:
    assert post(server, json.dumps(story("w-del", "snarfdelete"))).status_code == 201
    count = story_count(server)
    r = requests.delete(f"{server.url}/api/stories/w-del", headers=AUTH, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": "w-del"}
    assert requests.get(f"{server.url}/api/stories/w-del", timeout=TIMEOUT).status_code == 404
    assert hits_for(server, "snarfdelete") == []
    assert story_count(server) == count - 1
    again = requests.delete(f"{server.url}/api/stories/w-del", headers=AUTH, timeout=TIMEOUT)
    assert "w-del" in assert_json_error(again, 404)


# ---------------------------------------------------------------- validation and size


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (json.dumps({"headline": "h", "body": "b"}), ["id"]),
        (json.dumps({"id": "w-v1", "body": "b"}), ["headline"]),
        (json.dumps({"id": "w-v2", "headline": "h", "body": ""}), ["body"]),
        (json.dumps({"id": "w-v3", "headline": "h", "body": "b", "published": "yesterday"}), ["published"]),
        (json.dumps({"id": "w-v4", "headline": "h", "body": "b", "url": "javascript:alert(1)"}), ["url"]),
        (json.dumps({"id": "../../etc/passwd", "headline": "h", "body": "b"}), ["id"]),
        (json.dumps({"id": "/abs/path", "headline": "h", "body": "b"}), ["id"]),
        (json.dumps({"id": "nul\u0000id", "headline": "h", "body": "b"}), ["id"]),
        (json.dumps({"id": 7, "headline": ["h"], "body": "b"}), ["headline"]),
        (json.dumps(story("w-v5", "okline")) + "\n{not json}\n", ["line 2", "JSON"]),
        (
            json.dumps(story("w-v6", "okline")) + "\n" + json.dumps({"id": "w-v7", "headline": "h"}) + "\n",
            ["line 2", "body"],
        ),
        (json.dumps(story("w-v8", "okline")) + "\n[1, 2]\n", ["line 2", "object"]),
        ("", ["empty"]),
    ],
    ids=[
        "no-id",
        "no-headline",
        "empty-body",
        "bad-date",
        "bad-url",
        "dotdot-id",
        "absolute-id",
        "nul-id",
        "list-headline",
        "ndjson-bad-json",
        "ndjson-missing-body",
        "ndjson-not-object",
        "empty-body-text",
    ],
)
def test_invalid_stories_are_400_naming_the_field_and_line(server: LiveServer, body: str, names: list[str]) -> None:
    """Nothing of a rejected batch is written, not even its valid lines."""
    count = story_count(server)
    message = assert_json_error(post(server, body), 400)
    for name in names:
        assert name in message, message
    assert story_count(server) == count
    assert hits_for(server, "okline") == []


def test_oversized_body_is_413_json(server: LiveServer) -> None:
    big = story("w-big", "hugebody")
    big["body"] = "word " * (MAX_BODY // 4)
    r = post(server, json.dumps(big))
    assert_json_error(r, 413)
    assert requests.get(f"{server.url}/api/stories/w-big", timeout=TIMEOUT).status_code == 404


# ---------------------------------------------------------------- lock contention


def test_a_write_while_another_writer_holds_the_lock_is_503_then_succeeds(
    server: LiveServer, write_index: Path
) -> None:
    """A Whoosh writer in this process holds the index lock, as the CLI indexer would."""
    writer = whoosh_index.open_dir(write_index).writer()
    try:
        started = time.monotonic()
        r = post(server, json.dumps(story("w-busy", "lockedout")))
        waited = time.monotonic() - started
        message = assert_json_error(r, 503)
        assert "another indexer" in message, message
        assert r.json()["error"]["code"] == "index_busy"
        assert waited >= WRITE_TIMEOUT * 0.9, f"answered 503 after {waited:.2f} s without waiting for the lock"
        r = requests.delete(f"{server.url}/api/stories/w-fresh-0", headers=AUTH, timeout=TIMEOUT)
        assert_json_error(r, 503)
    finally:
        writer.cancel()
    r = post(server, json.dumps(story("w-busy", "lockedout")))
    assert r.status_code == 201, r.text
    assert hits_for(server, "lockedout") == ["w-busy"]
