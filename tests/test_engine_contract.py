"""The engine contract, once per engine: the same API answers alike from Whoosh and from Xapian.

One suite, parametrised by engine (as django-haystack runs its suite per
backend): ``whoosh`` (the embedded index), ``xapian-local`` (one Xapian
database) and ``xapian-3-shards`` (three shards behind real ``xapian-tcpsrv``
processes on loopback ports, shard 1 with a replica made by
``xapian-replicate``), each over the sample stories and spoken to through
``create_app(config, engine)``.  Expected values come from the stories themselves.

Then Xapian's scale-out promises: three shards rank as one database does
(100 Reuters queries, ids and scores), a dead primary's replica answers,
and a shard with no live copy gives partial results, flagged, or a 503 when
partial results are off; never a 5xx otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from search_service.analysis import term_positions
from search_service.backends.xapian.shards import shard_of
from search_service.config import Config, Limits
from search_service.engine import Engine, open_engine
from search_service.model import SearchRequest
from search_service.stories import Story, read_file
from search_service.web import create_app

from conftest import AUTH, HIT_KEYS, SAMPLES, SEARCH_KEYS, TOKEN, parse_summary, run_cli

TCPSRV = shutil.which("xapian-tcpsrv") or "/usr/bin/xapian-tcpsrv"
SHARDS = 3


# ---------------------------------------------------------------- xapian-tcpsrv processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TcpServer:
    """One ``xapian-tcpsrv`` on a loopback port, in its own process group (it forks a child per connection)."""

    def __init__(self, db: Path, writable: bool) -> None:
        if not Path(TCPSRV).is_file():
            pytest.fail(f"{TCPSRV} is missing: apt-get install xapian-tools (CI's .ci/run does)")
        self.port = free_port()
        args = [
            TCPSRV,
            "--interface",
            "127.0.0.1",
            "--port",
            str(self.port),
            *(["--writable"] if writable else []),
            str(db),
        ]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"xapian-tcpsrv exited with {self.process.returncode}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("xapian-tcpsrv did not start listening")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """Kill the server and the children serving open connections, as a crashed host would."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


@dataclass
class Cluster:
    """Shards of the sample stories, each primary writable; shard 1 also has a read-only replica (xapian-replicate)."""

    primaries: list[TcpServer]
    replica: TcpServer
    servers: list[TcpServer] = field(default_factory=list)

    @property
    def engine(self) -> str:
        shards = [p.address for p in self.primaries]
        shards[0] += f"|{self.replica.address}"
        return "xapian+tcp://" + ",".join(shards)

    def stop(self) -> None:
        for server in [*self.primaries, self.replica]:
            server.kill()


def build_shards(paths: list[Path], folder: Path, shards: int = SHARDS) -> list[Path]:
    """``shards`` databases of the stories under ``paths``, built as ``search-service index --shard I/N`` does."""
    dbs = []
    for number in range(1, shards + 1):
        db = folder / f"shard{number}"
        engine = open_engine(Config(engine=f"xapian:{db}", shard=f"{number}/{shards}"), create=True)
        engine.index_files(paths)
        dbs.append(db)
    return dbs


def replicate(db: Path, replica: Path) -> None:
    """Copy ``db`` to ``replica`` with Xapian's replication (xapian-replicate-server, then xapian-replicate once)."""
    port = free_port()
    server = subprocess.Popen(
        [
            shutil.which("xapian-replicate-server") or "xapian-replicate-server",
            "-I",
            "127.0.0.1",
            "-p",
            str(port),
            "--one-shot",
            str(db.parent),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(100):
            done = subprocess.run(
                ["xapian-replicate", "-h", "127.0.0.1", "-p", str(port), "-m", db.name, "-o", "-q", str(replica)],
                capture_output=True,
                text=True,
            )
            if done.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"xapian-replicate failed: {done.stderr}")
    finally:
        server.kill()
        server.wait()


def start_cluster(dbs: list[Path], replica_of_first: Path) -> Cluster:
    replicate(dbs[0], replica_of_first)
    primaries = []
    try:
        for db in dbs:
            primaries.append(TcpServer(db, writable=True))
        return Cluster(primaries, TcpServer(replica_of_first, writable=False))
    except BaseException:
        for server in primaries:
            server.kill()
        raise


# ---------------------------------------------------------------- the engines


@dataclass
class Service:
    name: str
    engine: Engine
    client: FlaskClient
    cluster: Cluster | None = None


def service(name: str, engine_spec: str, index_dir: Path, partial: bool = True) -> Service:
    config = Config(engine=engine_spec, index_dir=index_dir, token=TOKEN, rate_limit=None, partial=partial)
    engine = open_engine(config, create=True)
    return Service(name, engine, create_app(config, engine).test_client())


@pytest.fixture(
    scope="module",
    params=["whoosh", "xapian-local", pytest.param("xapian-3-shards", marks=pytest.mark.slow)],
)
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp(f"contract-{request.param}")
    if request.param == "whoosh":
        made = service("whoosh", "whoosh", folder / "index")
        made.engine.index_files([SAMPLES])
    elif request.param == "xapian-local":
        made = service("xapian-local", f"xapian:{folder / 'db'}", folder)
        made.engine.index_files([SAMPLES])
    else:
        cluster = start_cluster(build_shards([SAMPLES], folder), folder / "shard1-replica")
        made = service("xapian-3-shards", cluster.engine, folder)
        made.cluster = cluster
    yield made
    made.engine.close()
    if made.cluster:
        made.cluster.stop()


def sample_stories() -> dict[str, Story]:
    return {s.id: s for path in sorted(SAMPLES.glob("*.txt")) for s in read_file(path).stories}


def terms_of(text: str) -> set[str]:
    return set(term_positions(text))


def with_term(word: str, field: str | None = None) -> set[str]:
    """Ids of the sample stories with ``word``'s term in ``field`` (either if None)."""
    term = next(iter(terms_of(word)))
    return {
        i
        for i, s in sample_stories().items()
        if term
        in terms_of(s.headline if field == "headline" else s.body if field == "body" else f"{s.headline}\n{s.body}")
    }


def search(svc: Service, **params: Any) -> dict[str, Any]:
    response = svc.client.get("/api/search", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    result: dict[str, Any] = response.get_json()
    return result


# ---------------------------------------------------------------- the contract


def test_search_shape_content_and_scores(svc: Service) -> None:
    stories = sample_stories()
    result = search(svc, q="drought", per_page=2)
    expected_keys = SEARCH_KEYS | ({"shards"} if svc.cluster else set())
    assert set(result) == expected_keys
    if svc.cluster:
        assert result["shards"] == {"total": SHARDS, "failed": 0}
    assert result["total"] == len(with_term("drought")) > 2
    for hit in result["hits"]:
        assert set(hit) == HIT_KEYS and hit["id"] in with_term("drought")
        assert hit["headline"] == stories[hit["id"]].headline
        assert datetime.fromisoformat(hit["published"]) == stories[hit["id"]].published
        assert isinstance(hit["score"], float) and hit["score"] > 0
        assert any("<mark>" in f for f in hit["highlights"]["body"])
    assert result["hits"][0]["score"] >= result["hits"][1]["score"]
    assert sum(result["facets"]["year"].values()) == result["total"]


def test_a_headline_match_outranks_a_body_match(svc: Service) -> None:
    """The headline weighs three body words: a story with the word in its headline ranks above one without."""
    in_headline = with_term("drought", "headline")
    hits = search(svc, q="drought", per_page=100)["hits"]
    ranks = [h["id"] in in_headline for h in hits]
    assert ranks == sorted(ranks, reverse=True) and any(ranks) and not all(ranks)


def test_phrases_fields_and_exclusions(svc: Service) -> None:
    stories = sample_stories()
    phrase = {h["id"] for h in search(svc, q='"war of attrition"')["hits"]}
    assert phrase == {i for i, s in stories.items() if "war of attrition" in f"{s.headline} {s.body}".lower()}
    assert phrase
    # The words in another order are not the phrase.
    assert search(svc, q="attrition war")["total"] >= len(phrase)
    assert search(svc, q='"attrition war"')["total"] == 0
    assert {h["id"] for h in search(svc, q="headline:drought")["hits"]} == with_term("drought", "headline")
    assert {h["id"] for h in search(svc, q="body:drought")["hits"]} == with_term("drought", "body")
    excluded = with_term("drought") - with_term("kenya")
    assert {h["id"] for h in search(svc, q="drought -kenya")["hits"]} == excluded
    assert {h["id"] for h in search(svc, q="drought NOT kenya")["hits"]} == excluded
    assert search(svc, q="drought AND kenya")["total"] == len(with_term("drought") & with_term("kenya"))
    assert {h["id"] for h in search(svc, q="drou*", per_page=100)["hits"]} >= with_term("drought")
    assert search(svc, q="*")["total"] == len(stories)


def test_dates_sorts_and_facets(svc: Service) -> None:
    stories = sample_stories()
    everything = search(svc, q="*", per_page=100)
    years: dict[str, int] = {}
    for s in stories.values():
        if s.published:
            years[str(s.published.year)] = years.get(str(s.published.year), 0) + 1
    assert everything["facets"]["year"] == years
    newest = search(svc, q="*", sort="newest", per_page=100)["hits"]
    dates = [h["published"] for h in newest]
    assert dates == sorted(dates, reverse=True) and all(h["score"] is None for h in newest)
    assert [h["published"] for h in search(svc, q="*", sort="oldest", per_page=100)["hits"]] == sorted(dates)
    recent = search(svc, q="drought", sort="recent", per_page=100)
    assert {h["id"] for h in recent["hits"]} == with_term("drought")
    year = min(years)
    dated = search(svc, q="*", **{"from": f"{year}-01-01", "to": f"{year}-12-31"})
    assert dated["total"] == years[year]
    in_query = search(svc, q=f"published:[{year}-01-01 TO {year}-12-31] *")
    assert in_query["total"] == years[year]
    assert search(svc, q="drought", to="0001-01-01")["total"] == 0
    assert search(svc, q="drought", **{"from": "9999-12-31"})["total"] == 0


def test_story_related_suggest_and_stats(svc: Service) -> None:
    stories = sample_stories()
    story_id = search(svc, q="drought")["hits"][0]["id"]
    got = svc.client.get(f"/api/stories/{story_id}").get_json()
    assert (got["id"], got["headline"], got["body"]) == (story_id, stories[story_id].headline, stories[story_id].body)
    assert got["source"] == Path(stories[story_id].source).name  # a file's name, never the server's path
    assert svc.client.get("/api/stories/no-such-story").status_code == 404
    related = svc.client.get(f"/api/stories/{story_id}/related").get_json()["hits"]
    assert related and story_id not in {h["id"] for h in related}
    assert any(h["id"] in with_term("drought") for h in related)
    assert svc.client.get("/api/stories/no-such-story/related").status_code == 404
    suggestions = svc.client.get("/api/suggest", query_string={"q": "dro"}).get_json()["suggestions"]
    assert "drought" in suggestions and all(s.startswith("dro") for s in suggestions)
    assert search(svc, q="drout", spell="off")["suggestion"] == "drought"
    corrected = search(svc, q="drout")
    assert (corrected["query"], corrected["corrected_from"], corrected["suggestion"]) == ("drought", "drout", None)
    health = svc.client.get("/healthz").get_json()
    assert health["stories"] == len(stories)
    assert health["first"] == min(s.published for s in stories.values() if s.published).isoformat()
    assert health["last"] == max(s.published for s in stories.values() if s.published).isoformat()


RELATED_STORIES = [
    {
        "id": "mine-strike",
        "headline": "Zorbland copper miners strike",
        "body": "Copper miners at the Zorbland pit walked out on Monday over pay. The copper miners' union said the "
        "strike at the pit would last until the copper company raised wages. Pit managers said copper output "
        "had stopped and the smelter was idle.",
    },
    {
        "id": "mine-strike-spreads",
        "headline": "Zorbland copper strike spreads to second pit",
        "body": "The strike by copper miners spread to a second Zorbland pit on Tuesday as the union pressed its "
        "claim for higher wages and the copper company kept output and the smelter halted.",
    },
    {
        "id": "harvest-fair",
        "headline": "Harvest fair draws record crowds",
        "body": "The autumn harvest fair drew record crowds to the market square this weekend. Farmers showed "
        "prize pumpkins, marrows and cattle, bakers sold bread and cakes from long trestle tables, and a brass band "
        "played through Saturday afternoon. Children rode ponies along the river path while their parents tasted "
        "cider and cheese from the valley's farms. One stall sold hammered copper pans. Organisers said the "
        "weather had been kind, and the fair would return next year with more music, more food and a second "
        "day of events for families and visitors from the neighbouring towns.",
    },
]


@pytest.fixture()
def related_stories(svc: Service) -> Iterator[None]:
    for story in RELATED_STORIES:
        assert svc.client.post("/api/stories", json=story, headers=AUTH).status_code == 201
    yield
    for story in RELATED_STORIES:
        svc.client.delete(f"/api/stories/{story['id']}", headers=AUTH)


@pytest.mark.usefixtures("related_stories")
def test_related_stories_score_a_share_of_the_story_itself(svc: Service) -> None:
    """A story sharing one word with another (the fair's copper pans) is not related to it; one on its subject is."""
    assert {h["id"] for h in search(svc, q="copper")["hits"]} >= {s["id"] for s in RELATED_STORIES}
    related = [h["id"] for h in svc.client.get("/api/stories/mine-strike/related").get_json()["hits"]]
    assert related[:1] == ["mine-strike-spreads"] and "harvest-fair" not in related


def test_highlights_escape_story_text(svc: Service) -> None:
    story = {"id": "contract-xss", "headline": "Zinc <script>alert(1)</script> & co", "body": "Zinc <b>rose</b> today."}
    assert svc.client.post("/api/stories", json=story, headers=AUTH).status_code == 201
    try:
        hit = search(svc, q="zinc")["hits"][0]
        assert hit["id"] == "contract-xss"
        assert "<script>" not in hit["highlights"]["headline"] and "&lt;script&gt;" in hit["highlights"]["headline"]
        assert "<b>" not in hit["highlights"]["body"][0] and "<mark>Zinc</mark>" in hit["highlights"]["body"][0]
        page = svc.client.get("/search", query_string={"q": "zinc"}).get_data(as_text=True)
        assert "<script>alert" not in page and "&lt;script&gt;" in page
    finally:
        svc.client.delete("/api/stories/contract-xss", headers=AUTH)


def test_writes_are_seen_when_they_return(svc: Service) -> None:
    story = {"id": "contract-write", "headline": "Tungsten output falls", "body": "Mines cut tungsten output."}
    added = svc.client.post("/api/stories", json=story, headers=AUTH)
    assert (added.status_code, added.get_json()["added"]) == (201, 1)
    assert [h["id"] for h in search(svc, q="tungsten")["hits"]] == ["contract-write"]
    updated = svc.client.post("/api/stories", json=story | {"headline": "Tungsten output rises"}, headers=AUTH)
    assert (updated.status_code, updated.get_json()["updated"]) == (200, 1)
    assert svc.client.get("/api/stories/contract-write").get_json()["headline"] == "Tungsten output rises"
    assert search(svc, q="tungsten")["total"] == 1
    assert svc.client.get("/healthz").get_json()["stories"] == len(sample_stories()) + 1
    later = story | {"published": "2031-05-06T07:08:09"}  # after every sample story: the range is the new commit's
    assert svc.client.post("/api/stories", json=later, headers=AUTH).status_code == 200
    assert svc.client.get("/healthz").get_json()["last"] == "2031-05-06T07:08:09"
    assert svc.client.delete("/api/stories/contract-write", headers=AUTH).status_code == 200
    assert search(svc, q="tungsten")["total"] == 0
    assert svc.client.get("/api/stories/contract-write").status_code == 404
    assert svc.client.delete("/api/stories/contract-write", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    "q",
    [
        '"unclosed',
        "published:[2021 TO",
        "(((",
        ")",
        "AND",
        "OR OR",
        "-",
        "NOT",
        "headline:",
        "a:b:c",
        "*ought",
        "d*",
        "x" * 5000,
        "^2",
        "drought^",
        '""',
        "published:[x TO y]",
        "[TO]",
        "\x00",
        "dro?ght",
        "econom* AND",
    ],
)
def test_odd_syntax_is_never_a_server_error(svc: Service, q: str) -> None:
    response = svc.client.get("/api/search", query_string={"q": q})
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    body = response.get_json()
    assert ("hits" in body) if response.status_code == 200 else body["error"]["code"] == "bad_request"
    assert svc.client.get("/search", query_string={"q": q}).status_code in (200, 400)


@pytest.mark.parametrize(
    "q",
    [
        "drought",
        "food prices",
        '"war of attrition" OR drought',
        "drought -kenya",
        "dro*",
        "headline:drought",
        "* -drought",
        "drout",
        "coffe",
        "coffe prices",
        "drougth brazil",
        "Goverments subsidies",
        '"war of attrition',
        "*ought",
        "drought AND",
        "(drought OR kenya",
        "headline: drought",
        "-drought",
        "color:red drought",
    ],
)
def test_engines_find_the_same_stories(svc: Service, sample_index: Path, q: str) -> None:
    """Every engine finds the stories the Whoosh engine finds, corrects or suggests the same spelling (from
    the stories' words), and repairs malformed syntax into the same words with the same notice."""
    reference = open_engine(Config(engine="whoosh", index_dir=sample_index)).search(SearchRequest(q=q, per_page=100))
    result = search(svc, q=q, per_page=100)
    assert {h["id"] for h in result["hits"]} == {h.id for h in reference.hits}
    assert (result["total"], result["suggestion"], result["facets"]) == (
        reference.total,
        reference.suggestion,
        reference.facets,
    )
    assert (result["query"], result["corrected_from"], result["notice"]) == (
        reference.query,
        reference.corrected_from,
        reference.notice,
    )


def test_spelling_and_notices_are_those_of_whoosh_on_hard_cases(svc: Service) -> None:
    """The cases the list above has, as answers: a correction, a suggestion beside results, a notice."""
    corrected = search(svc, q="coffe")
    assert (corrected["query"], corrected["corrected_from"], corrected["total"]) == ("coffee", "coffe", 1)
    beside = search(svc, q="coffe prices")
    assert beside["suggestion"] == "coffee prices" and beside["corrected_from"] is None and beside["total"] > 0
    beside = search(svc, q="drougth brazil")
    assert beside["suggestion"] == "drought brazil" and beside["corrected_from"] is None and beside["total"] > 0
    repaired = search(svc, q='"war of attrition')
    assert repaired["notice"] and "unclosed quote" in repaired["notice"] and repaired["total"] > 0
    assert search(svc, q="drought")["notice"] is None


# ---------------------------------------------------------------- near-duplicates

DUPLICATE_BODY = (
    "The Zorbland port authority said on Tuesday that container traffic through the harbour rose 12 percent in May, "
    "the third monthly rise in a row, as shipping lines added routes to Asia and Europe. "
    "Officials credited a new deep-water berth opened in March and faster customs checks. "
    "Dock workers' unions warned that staffing had not kept pace with the volumes and called for talks "
    "with the authority before the summer peak. "
    "The authority expects traffic for the whole year to exceed last year's record of 4.1 million boxes."
)


def _version(story_id: str, headline: str, body: str, published: str) -> dict[str, str]:
    return {"id": story_id, "headline": headline, "body": body, "published": published}


VERSIONS = [
    _version("port-1", "Harbour container traffic rises 12 pct", DUPLICATE_BODY, "2024-06-04T09:00:00"),
    _version(
        "port-2", "Harbour container traffic rises 12 pct", DUPLICATE_BODY.replace(". ", ".\n\n"), "2024-06-04T09:00:00"
    ),
    _version(
        "port-3",
        "UPDATE 1-Harbour traffic up",
        DUPLICATE_BODY + " A union meeting is set for Friday.",
        "2024-06-05T09:00:00",
    ),
    _version(
        "port-4",
        "CORRECTED-Harbour container traffic",
        DUPLICATE_BODY.replace("12 percent", "14 percent"),
        "2024-06-06T09:00:00",
    ),
    _version("port-5", "Port sees record year", DUPLICATE_BODY.rsplit(". ", 1)[0] + ".", "2024-07-01T09:00:00"),
]
NOT_A_VERSION = _version(
    "port-other",
    "Harbour dredging contract awarded",
    "The Zorbland port authority said on Tuesday it awarded a dredging contract for the outer channel to a Dutch firm. "
    "Work will start in September and take two years, deepening the channel so that larger ships can call. "
    "The authority did not disclose the value of the contract, which environmental groups had opposed.",
    "2024-06-08T09:00:00",
)


@pytest.fixture()
def versions(svc: Service) -> Iterator[list[str]]:
    """Five versions of one story and another story on its subject, written through the API (versions on
    two of the three shards); a version written later joins the group.  Deleted afterwards."""
    lines = "\n".join(json.dumps(story) for story in [*VERSIONS[:2], NOT_A_VERSION])
    first = svc.client.post("/api/stories", data=lines, content_type="application/x-ndjson", headers=AUTH)
    assert first.status_code == 201, first.get_data(as_text=True)
    for story in VERSIONS[2:]:
        assert svc.client.post("/api/stories", json=story, headers=AUTH).status_code == 201
    yield [v["id"] for v in VERSIONS]
    for story in [*VERSIONS, NOT_A_VERSION]:
        svc.client.delete(f"/api/stories/{story['id']}", headers=AUTH)


def test_near_duplicates_are_one_hit_with_similar_stories(svc: Service, versions: list[str]) -> None:
    result = search(svc, q="zorbland")
    assert result["total"] == 2, "one hit for the five versions, one for the other story"
    (hit,) = [h for h in result["hits"] if h["id"] in versions]
    assert hit["similar"]["count"] == 4 and sorted([hit["id"], *hit["similar"]["ids"]]) == versions
    assert next(h for h in result["hits"] if h["id"] == "port-other")["similar"] is None
    shown = Counter(h["published"][:7] for h in result["hits"])
    assert result["facets"] == {"year": {"2024": 2}, "month": dict(shown)}, "a group counts once, in its shown month"
    every = search(svc, q="zorbland", collapse="off")
    assert every["total"] == 6 and all(h["similar"] is None for h in every["hits"])
    assert every["facets"] == {"year": {"2024": 6}, "month": {"2024-06": 5, "2024-07": 1}}
    newest = search(svc, q="zorbland", sort="newest")
    assert [h["id"] for h in newest["hits"]] == ["port-5", "port-other"]
    assert newest["facets"]["month"] == {"2024-06": 1, "2024-07": 1}, "the group counts in its newest story's month"
    assert search(svc, q="zorbland", sort="oldest")["hits"][0]["id"] in ("port-1", "port-2")
    assert search(svc, q="zorbland union meeting")["hits"][0]["id"] == "port-3", (
        "the version with the words stands for its group"
    )
    recent = search(svc, q="zorbland", sort="recent")
    assert recent["total"] == 2 and len(recent["hits"]) == 2


def test_a_story_lists_its_versions_and_related_leaves_them_out(svc: Service, versions: list[str]) -> None:
    story = svc.client.get("/api/stories/port-3").get_json()
    assert [v["id"] for v in story["versions"]] == ["port-1", "port-2", "port-4", "port-5"]
    assert [v["published"][:10] for v in story["versions"]] == ["2024-06-04", "2024-06-04", "2024-06-06", "2024-07-01"]
    assert svc.client.get("/api/stories/port-other").get_json()["versions"] == []
    related = svc.client.get("/api/stories/port-3/related").get_json()["hits"]
    assert not {h["id"] for h in related} & set(versions)
    # A version rewritten into another story leaves its group; written back, it joins again.
    rewritten = NOT_A_VERSION | {"id": "port-5", "body": NOT_A_VERSION["body"].replace("dredging", "ferry")}
    assert svc.client.post("/api/stories", json=rewritten, headers=AUTH).status_code == 200
    assert [v["id"] for v in svc.client.get("/api/stories/port-1").get_json()["versions"]] == [
        "port-2",
        "port-3",
        "port-4",
    ]
    assert svc.client.post("/api/stories", json=VERSIONS[4], headers=AUTH).status_code == 200
    assert "port-5" in [v["id"] for v in svc.client.get("/api/stories/port-1").get_json()["versions"]]


def test_a_story_joining_two_groups_makes_them_one(svc: Service) -> None:
    """Groups are transitive: a story like a version of each of two groups joins them into one."""
    words = f"{DUPLICATE_BODY} {NOT_A_VERSION['body']}".split()
    left = " ".join(words[:-26])
    right = " ".join(words[26:])
    # Two stories too different to be versions of each other, each with a version of its own.
    pairs = [
        _version("bridge-a1", "Port traffic", left, "2024-06-01T00:00:00"),
        _version("bridge-a2", "Port traffic", left + " Shares rose.", "2024-06-01T00:00:00"),
        _version("bridge-b1", "Port traffic", right, "2024-06-02T00:00:00"),
        _version("bridge-b2", "Port traffic", right + " Shares fell.", "2024-06-02T00:00:00"),
    ]
    try:
        for story in pairs:
            assert svc.client.post("/api/stories", json=story, headers=AUTH).status_code == 201
        groups = {
            tuple(v["id"] for v in svc.client.get(f"/api/stories/{p['id']}").get_json()["versions"]) for p in pairs
        }
        assert groups == {("bridge-a2",), ("bridge-a1",), ("bridge-b2",), ("bridge-b1",)}
        bridge = _version("bridge-c", "Port traffic", " ".join(words), "2024-06-03T00:00:00")
        assert svc.client.post("/api/stories", json=bridge, headers=AUTH).status_code == 201
        joined = svc.client.get("/api/stories/bridge-c").get_json()["versions"]
        assert [v["id"] for v in joined] == ["bridge-a1", "bridge-a2", "bridge-b1", "bridge-b2"]
    finally:
        for story in [*pairs, {"id": "bridge-c"}]:
            svc.client.delete(f"/api/stories/{story['id']}", headers=AUTH)


@pytest.mark.slow  # real xapian-tcpsrv and search-service processes
def test_versions_on_different_shards_are_grouped_by_the_group_command(tmp_path: Path) -> None:
    """``index --shard`` groups within its shard; ``search-service group`` over every shard groups the rest."""
    stories = tmp_path / "stories"
    stories.mkdir()
    for n, story in enumerate([*VERSIONS, NOT_A_VERSION]):
        (stories / f"{n}-{story['id']}.jsonl").write_text(json.dumps(story) + "\n", encoding="utf-8")
    ids = [v["id"] for v in VERSIONS]
    assert len({shard_of(i, SHARDS) for i in ids}) > 1, "the versions must lie on more than one shard"
    cluster = start_cluster(build_shards([stories], tmp_path), tmp_path / "replica")
    try:
        front = open_engine(Config(engine=cluster.engine))

        def versions_of(story_id: str) -> list[str]:
            story = front.story(story_id)
            assert story is not None
            return [v["id"] for v in story.versions]

        assert versions_of("port-1") != [i for i in ids if i != "port-1"], "not grouped yet across shards"
        done = run_cli("group", "--engine", cluster.engine)
        assert done.returncode == 0, done.stderr
        assert "regrouped" in done.stdout and "0 stories regrouped" not in done.stdout
        for story_id in ids:
            assert versions_of(story_id) == [i for i in ids if i != story_id]
        assert versions_of("port-other") == []
        assert front.search(SearchRequest(q="zorbland")).total == 2, "the five versions are one hit"
        again = run_cli("group", "--engine", cluster.engine)
        assert again.returncode == 0 and "0 stories regrouped" in again.stdout
        cluster.primaries[1].kill()
        refused = run_cli("group", "--engine", cluster.engine)
        assert refused.returncode == 1 and "did not answer" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        cluster.stop()
    assert run_cli("index", str(stories), "--index", str(tmp_path / "w")).returncode == 0
    whoosh = run_cli("group", "--engine", "whoosh", "--index", str(tmp_path / "w"))
    assert whoosh.returncode == 1 and "nothing to do" in whoosh.stderr


# ---------------------------------------------------------------- shards: failure and equality


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of the sample stories of its own (tests kill its servers)."""
    made = start_cluster(build_shards([SAMPLES], tmp_path), tmp_path / "shard1-replica")
    yield made
    made.stop()


@pytest.mark.slow  # real xapian-tcpsrv or search-service processes
def test_a_dead_primary_fails_over_to_its_replica(cluster: Cluster, tmp_path: Path) -> None:
    front = service("front", cluster.engine, tmp_path)
    before = search(front, q="*")
    assert before["shards"] == {"total": SHARDS, "failed": 0}
    cluster.primaries[0].kill()
    for _ in range(3):
        after = search(front, q="*")
        assert (after["total"], after["shards"]) == (before["total"], {"total": SHARDS, "failed": 0})
    # A second frontend, started after the primary died, finds the replica too.
    assert search(service("late", cluster.engine, tmp_path), q="*")["total"] == before["total"]


@pytest.mark.slow  # real xapian-tcpsrv or search-service processes
def test_a_shard_with_no_live_copy_gives_flagged_partial_results(cluster: Cluster, tmp_path: Path) -> None:
    front = service("front", cluster.engine, tmp_path)
    strict = service("strict", cluster.engine, tmp_path, partial=False)
    before = search(front, q="*")["total"]
    cluster.primaries[0].kill()
    cluster.replica.kill()
    partial = search(front, q="*")
    assert partial["shards"] == {"total": SHARDS, "failed": 1}
    assert 0 < partial["total"] < before
    page = front.client.get("/search", query_string={"q": "*"})
    assert page.status_code == 200 and "1 of 3 parts of the archive did not answer" in page.get_data(as_text=True)
    for path in ("/api/search?q=drought", "/api/suggest?q=dro", "/healthz", "/search?q=drought"):
        assert front.client.get(path).status_code < 500, path
    refused = strict.client.get("/api/search", query_string={"q": "*"})
    assert refused.status_code == 503 and refused.get_json()["error"]["code"] == "unavailable"
    assert "partial" in refused.get_json()["error"]["message"]
    # A write for the dead shard is refused with a 503, never a 500.
    dead_shard_story = next(i for i in (f"w{n}" for n in range(100)) if _shard(i) == 0)
    write = front.client.post("/api/stories", json={"id": dead_shard_story, "headline": "x", "body": "y"}, headers=AUTH)
    assert write.status_code == 503 and write.get_json()["error"]["code"] == "unavailable"


@pytest.mark.slow  # real xapian-tcpsrv or search-service processes
def test_a_silent_shard_times_out(cluster: Cluster, tmp_path: Path) -> None:
    """A shard that accepts connections but never answers (a stopped process) is left out after the timeout."""
    config = Config(engine=cluster.engine, index_dir=tmp_path, rate_limit=None, limits=Limits(time_limit=0.5))
    client = create_app(config, open_engine(config)).test_client()
    os.killpg(cluster.primaries[1].process.pid, signal.SIGSTOP)
    try:
        result = client.get("/api/search", query_string={"q": "*"}).get_json()
        assert result["shards"] == {"total": SHARDS, "failed": 1}
    finally:
        os.killpg(cluster.primaries[1].process.pid, signal.SIGCONT)


def _shard(story_id: str) -> int:
    return shard_of(story_id, SHARDS)


def reuters_queries(stories_dir: Path, count: int = 100) -> list[str]:
    """``count`` queries from the corpus itself: headline words, pairs, phrases and a field, spread over it."""
    files = sorted(stories_dir.glob("*.txt"))
    step = max(1, len(files) // count)
    queries = []
    for n, path in enumerate(files[::step][:count]):
        stories = read_file(path).stories
        words = [w for w in stories[0].headline.split() if w.isalpha() and len(w) > 3][:3] if stories else []
        if not words:
            words = ["oil"]
        kind = n % 4
        queries.append(
            words[0]
            if kind == 0
            else " ".join(words[:2])
            if kind == 1
            else f'"{" ".join(words[:2])}"'
            if kind == 2
            else f"headline:{words[0]} OR {words[-1]}"
        )
    return queries


@pytest.mark.slow  # real xapian-tcpsrv or search-service processes
def test_three_shards_rank_as_one_database(reuters_dir: Path, tmp_path: Path) -> None:
    """Top 10 ids and scores of 100 Reuters queries: 3 shards over xapian-tcpsrv equal one database of every story.

    The files are read once and each story written to its shard as the
    write API routes it (``--shard`` indexing is covered by the clusters above).
    """
    by_shard: dict[int, list[Story]] = {}
    for path in sorted(reuters_dir.glob("*.txt")):
        for story in read_file(path).stories:
            by_shard.setdefault(shard_of(story.id, SHARDS), []).append(story)
    dbs = []
    for number in range(SHARDS):
        dbs.append(tmp_path / f"shard{number + 1}")
        open_engine(Config(engine=f"xapian:{dbs[-1]}"), create=True).upsert(by_shard[number])
    single = tmp_path / "single"
    subprocess.run(["xapian-compact", "--no-full", *map(str, dbs), str(single)], check=True, capture_output=True)
    cluster = start_cluster(dbs, tmp_path / "replica")
    try:
        shards = open_engine(Config(engine=cluster.engine))
        one = open_engine(Config(engine=f"xapian:{single}"))
        assert one.stats().stories == shards.stats().stories == 19040
        compared = 0
        for q in reuters_queries(reuters_dir):
            a = shards.search(SearchRequest(q=q, per_page=20))
            b = one.search(SearchRequest(q=q, per_page=20))
            assert a.total == b.total, q
            assert _top10(a.hits) == _top10(b.hits), q
            compared += len(_top10(a.hits))
        assert compared > 500
    finally:
        cluster.stop()


def _top10(hits: list[Any]) -> list[tuple[float, str]]:
    """The top 10 as (score, id), ids in order among equal scores; stories tied with the 11th left out."""
    ranked = sorted((-round(h.score, 9), h.id) for h in hits)
    if len(ranked) > 10:
        ranked = [r for r in ranked[:10] if r[0] < ranked[10][0]]
    return ranked


def test_published_dates_round_trip(tmp_path: Path) -> None:
    """Dates far apart, undated stories and aware times keep their order and values in Xapian."""
    engine = open_engine(Config(engine=f"xapian:{tmp_path / 'db'}"), create=True)
    stories = [
        Story("old", "Salt tax", "Salt.", datetime(1850, 3, 1), "api"),
        Story("new", "Salt prices", "Salt.", datetime(2024, 2, 29, 23, 59, 59), "api"),
        Story("aware", "Salt mine", "Salt.", datetime(2000, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))), "api"),
        Story("undated", "Salt road", "Salt.", None, "api"),
    ]
    engine.upsert(stories)
    newest = engine.search(SearchRequest(q="salt", sort="newest")).hits
    assert [h.id for h in newest] == ["new", "aware", "old", "undated"]
    assert [h.id for h in engine.search(SearchRequest(q="salt", sort="oldest")).hits] == [
        "old",
        "aware",
        "new",
        "undated",
    ]
    assert newest[1].published == datetime(2000, 1, 1, 10)
    dated = engine.search(SearchRequest(q="salt", date_from=date(2000, 1, 1), date_to=date(2024, 2, 29)))
    assert {h.id for h in dated.hits} == {"aware", "new"}


@pytest.mark.slow  # real xapian-tcpsrv or search-service processes
def test_cli_indexes_shards_incrementally_and_refuses_mixing_them(tmp_path: Path) -> None:
    stories = tmp_path / "stories"
    shutil.copytree(SAMPLES, stories, ignore=shutil.ignore_patterns("index"))
    counts = []
    for number in (1, 2, 3):
        done = run_cli("index", str(stories), "--engine", f"xapian:{tmp_path / f's{number}'}", "--shard", f"{number}/3")
        assert done.returncode == 0, done.stderr
        counts.append(parse_summary(done.stdout).added)
    assert sum(counts) == len(sample_stories()) and all(counts)
    for number, count in zip((1, 2, 3), counts):
        ids = {i for i in sample_stories() if shard_of(i, 3) == number - 1}
        assert len(ids) == count
    # A later run remembers the shard: nothing to do, nothing added from other shards.
    again = parse_summary(run_cli("index", str(stories), "--engine", f"xapian:{tmp_path / 's1'}").stdout)
    assert (again.added, again.updated, again.unchanged) == (0, 0, len(sample_stories()))
    # A changed file is read again; its story is updated on the shard that holds it, and no other.
    story_file = sorted(stories.glob("*.txt"))[0]
    story_id = read_file(story_file).stories[0].id
    story_file.write_text(story_file.read_text(encoding="utf-8").replace("\n", "\n\n", 1), encoding="utf-8")
    owner = shard_of(story_id, 3) + 1
    for number in (1, 2, 3):
        summary = parse_summary(run_cli("index", str(stories), "--engine", f"xapian:{tmp_path / f's{number}'}").stdout)
        assert summary.updated == (1 if number == owner else 0)
    story_file.unlink()
    assert (
        parse_summary(run_cli("index", str(stories), "--engine", f"xapian:{tmp_path / f's{owner}'}").stdout).removed
        == 1
    )

    wrong = run_cli("index", str(stories), "--engine", f"xapian:{tmp_path / 's1'}", "--shard", "2/3")
    assert wrong.returncode == 1 and "holds shard 1/3" in wrong.stderr and "Traceback" not in wrong.stderr
    for bad in ("0/3", "4/3", "x", "1/0"):
        refused = run_cli("index", str(stories), "--engine", f"xapian:{tmp_path / 'new'}", "--shard", bad)
        assert refused.returncode != 0 and "I/N" in refused.stderr and "Traceback" not in refused.stderr
    whoosh = run_cli("index", str(stories), "--engine", "whoosh", "--index", str(tmp_path / "w"), "--shard", "1/3")
    assert whoosh.returncode != 0 and "--shard" in whoosh.stderr


def test_spelling_word_batches_are_summed_as_they_accumulate(tmp_path: Path) -> None:
    """Each write adds a batch of words to the database's metadata; batches are summed as a binary counter adds."""
    import xapian

    from search_service.backends.xapian.words import BATCHES_KEY, Dictionary

    engine = open_engine(Config(engine=f"xapian:{tmp_path / 'db'}"), create=True)
    writes = 35
    for n in range(writes):
        engine.upsert([Story(f"dry-{n}", "Drought deepens", f"Drought in the region, week {n}.", None, "api")])
    db = xapian.Database(str(tmp_path / "db"))
    assert 1 <= len(db.get_metadata(BATCHES_KEY).split()) <= 6  # log2(35) + 1
    assert Dictionary().of(db, [db]).frequency("drought") == writes
    corrected = engine.search(SearchRequest(q="drougth"))
    assert (corrected.query, corrected.corrected_from, corrected.total) == ("drought", "drougth", writes)
