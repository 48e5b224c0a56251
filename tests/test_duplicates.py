"""Near-duplicate stories: grouped at index time, collapsed in results, listed as versions."""

from __future__ import annotations

import json
import random
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import requests

from search_service.analysis import term_positions
from search_service.backends.whoosh import WhooshEngine
from search_service.duplicates import band_hashes, signature, similarity
from search_service.grouping import Candidate, join, regroup
from search_service.model import SearchRequest
from search_service.stories import Story

from conftest import LiveServer

BODY = (
    "The port authority said on Tuesday that container traffic through the harbour rose 12 percent in May, "
    "the third monthly rise in a row, as shipping lines added routes to Asia and Europe. "
    "Officials credited a new deep-water berth opened in March and faster customs checks. "
    "Dock workers' unions warned that staffing had not kept pace with the volumes and called for talks "
    "with the authority before the summer peak. "
    "The authority expects traffic for the whole year to exceed last year's record of 4.1 million boxes."
)
SENTENCES = BODY.split(". ")


def version(story_id: str, headline: str, body: str, day: int) -> Story:
    return Story(id=story_id, headline=headline, body=body, published=datetime(2024, 6, day, 9), source="test")


VARIANTS = [
    version("port-1", "Harbour container traffic rises 12 pct", BODY, 4),
    version(
        "port-2", "Harbour container traffic rises 12 pct", BODY.replace(". ", ".\n\n").replace(" the ", "\nthe "), 4
    ),
    version("port-3", "UPDATE 1-Harbour traffic up for third month", BODY + " A union meeting is set for Friday.", 5),
    version("port-4", "CORRECTED-Harbour container traffic rises", BODY.replace("12 percent", "14 percent"), 6),
    version("port-5", "Port sees record year as traffic climbs", ". ".join(SENTENCES[:-1]) + ".", 7),
]
OTHER = version(
    "port-other",
    "Harbour dredging contract awarded",
    "The port authority said on Tuesday it awarded a dredging contract for the outer channel to a Dutch firm. "
    "Work will start in September and take two years, deepening the channel so that larger ships can call. "
    "The authority did not disclose the value of the contract, which environmental groups had opposed.",
    8,
)


def test_signatures_of_versions_agree_and_of_other_stories_do_not() -> None:
    first = body_signature(VARIANTS[0].body)
    for story in VARIANTS[1:]:
        assert similarity(first, body_signature(story.body)) >= 0.7, story.id
    assert similarity(first, body_signature(OTHER.body)) < 0.3
    assert signature(term_positions("Qtly div 30 cts vs 30 cts prior")) is None, "too short to tell versions apart"


def body_signature(body: str) -> np.ndarray:
    found = signature(term_positions(body))
    assert found is not None
    return found


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each version written separately (a later write joins the group), and one other story on the subject."""
    index = tmp_path_factory.mktemp("dups") / "index"
    engine = WhooshEngine(index, create=True)
    engine.upsert([*VARIANTS[:2], OTHER])
    for story in VARIANTS[2:]:
        engine.upsert([story])
    return index


def test_versions_written_one_by_one_join_one_group(grouped: Path) -> None:
    engine = WhooshEngine(grouped)
    result = engine.search(SearchRequest(q="container traffic harbour"))
    assert result.total == 2, "one hit for the five versions, one for the other story"
    (hit,) = [h for h in result.hits if h.id.startswith("port-") and h.id != "port-other"]
    assert hit.similar is not None and hit.similar["count"] == 4
    assert sorted([hit.id, *hit.similar["ids"]]) == [s.id for s in VARIANTS]
    assert {h.id for h in result.hits} >= {"port-other"}
    other = next(h for h in result.hits if h.id == "port-other")
    assert other.similar is None
    assert sum(result.facets["year"].values()) == result.total, "facets count what the total counts"

    every = engine.search(SearchRequest(q="container traffic harbour", collapse=False, per_page=10))
    assert every.total == 6 and all(h.similar is None for h in every.hits)


def test_the_best_ranked_version_is_shown_in_each_sort(grouped: Path) -> None:
    engine = WhooshEngine(grouped)
    newest = engine.search(SearchRequest(q="harbour", sort="newest"))
    assert [h.id for h in newest.hits] == ["port-other", "port-5"]
    oldest = engine.search(SearchRequest(q="harbour", sort="oldest"))
    assert oldest.hits[0].id in ("port-1", "port-2")
    # A word only one version has: that version stands for the group.
    assert [h.id for h in engine.search(SearchRequest(q="union meeting friday")).hits] == ["port-3"]


def test_story_lists_its_versions_and_related_leaves_them_out(grouped: Path) -> None:
    engine = WhooshEngine(grouped)
    story = engine.story("port-3")
    assert story is not None
    assert [v["id"] for v in story.versions] == ["port-1", "port-2", "port-4", "port-5"]
    assert [v["published"][:10] for v in story.versions] == ["2024-06-04", "2024-06-04", "2024-06-06", "2024-06-07"]
    related = engine.related("port-3")
    assert related is not None and not {h.id for h in related} & {s.id for s in VARIANTS}
    assert engine.story("port-other").versions == []


def test_a_rewritten_story_leaves_its_group(grouped: Path, tmp_path: Path) -> None:
    engine = WhooshEngine(grouped)
    engine.upsert([version("port-5", "Ferry strike called off", OTHER.body.replace("dredging", "ferry"), 9)])
    try:
        assert [v["id"] for v in engine.story("port-1").versions] == ["port-2", "port-3", "port-4"]
    finally:
        engine.upsert([VARIANTS[4]])
    assert "port-5" in [v["id"] for v in engine.story("port-1").versions]


def test_api_and_pages_show_similar_stories(grouped: Path) -> None:
    server = LiveServer(grouped)
    try:
        body = requests.get(f"{server.url}/api/search", params={"q": "container traffic"}, timeout=30).json()
        assert body["hits"][0]["similar"]["count"] == 4 and body["total"] == 1
        every = requests.get(
            f"{server.url}/api/search", params={"q": "container traffic", "collapse": "off"}, timeout=30
        )
        assert every.json()["total"] == 5
        page = requests.get(f"{server.url}/search", params={"q": "container traffic"}, timeout=30).text
        assert "4 similar stories</a>" in page and "#versions" in page
        story = requests.get(f"{server.url}/stories/port-1", timeout=30).text
        assert 'id="versions"' in story and "/stories/port-5" in story and "7 June 2024" in story
        api_story = requests.get(f"{server.url}/api/stories/port-1", timeout=30).json()
        assert [v["id"] for v in api_story["versions"]] == ["port-2", "port-3", "port-4", "port-5"]
        json.dumps(api_story)
    finally:
        server.stop()


def _made_up_sentences(count: int) -> list[str]:
    """Sentences of made-up words (none shared between two sentences), so the overlap of bodies is known."""
    rng = random.Random(2)
    words = sorted({"".join(rng.choice(s) for s in ("bdfgklmnprstvz", "aeiou") * 2) + "r" for _ in range(900)})
    rng.shuffle(words)
    return [" ".join(words[i * 8 : (i + 1) * 8]).capitalize() + "." for i in range(count)]


def _bridged_stories() -> list[Story]:
    """Two pairs of versions (a, b) unlike each other, and a story (c) like both: the middle of their texts."""
    sentences = _made_up_sentences(25)

    def story(story_id: str, first: int, last: int, changed: bool = False) -> Story:
        body = " ".join(sentences[first:last])
        return version(story_id, f"Story {story_id}", body.replace(".", " zig.", 1) if changed else body, 10)

    return [
        story("a-1", 0, 20),
        story("a-2", 0, 20, True),
        story("b-1", 5, 25),
        story("b-2", 5, 25, True),
        story("c", 2, 23),
    ]


@pytest.mark.parametrize("writes", [[2, 2, 1], [5]], ids=["one-write-each", "in-one-run"])
def test_a_story_like_two_groups_joins_them_into_one(tmp_path: Path, writes: list[int]) -> None:
    stories = _bridged_stories()
    a, b, c = (body_signature(stories[i].body) for i in (0, 2, 4))
    assert similarity(a, c) >= 0.7 and similarity(b, c) >= 0.7, "c is a version of each"
    assert similarity(a, b) < 0.7, "but a and b are not versions of each other"
    engine = WhooshEngine(tmp_path / "index", create=True)
    done = 0
    for n in writes:
        if done == 4:  # before c: two groups
            assert [v["id"] for v in engine.story("a-1").versions] == ["a-2"]
            assert [v["id"] for v in engine.story("b-2").versions] == ["b-1"]
        engine.upsert(stories[done : done + n])
        done += n
    for story in stories:
        versions = engine.story(story.id).versions
        assert sorted(v["id"] for v in versions) == sorted(s.id for s in stories if s.id != story.id)
    result = engine.search(SearchRequest(q=stories[4].body.split()[0]))
    assert result.total == 1 and result.hits[0].similar is not None and result.hits[0].similar["count"] == 4
    # A later version of one side joins the merged group.
    engine.upsert([version("a-3", "Story a-3", stories[0].body + " Zag.", 11)])
    assert len(engine.story("c").versions) == 5


def test_a_deleted_version_leaves_the_group_seen_by_the_same_engine_and_a_new_one(grouped: Path) -> None:
    engine = WhooshEngine(grouped)
    assert "port-4" in [v["id"] for v in engine.story("port-1").versions]  # the group is loaded before the writes
    engine.delete("port-4")
    try:
        for reader in (engine, WhooshEngine(grouped)):
            assert [v["id"] for v in reader.story("port-1").versions] == ["port-2", "port-3", "port-5"]
            hit = reader.search(SearchRequest(q="container traffic harbour")).hits[0]
            assert hit.similar is not None and hit.similar["count"] == 3
    finally:
        engine.upsert([VARIANTS[3]])
    assert [v["id"] for v in engine.story("port-1").versions] == ["port-2", "port-3", "port-4", "port-5"]


def _written_one_by_one(signatures: dict[str, np.ndarray], order: list[str]) -> dict[str, str]:
    """Labels as :func:`grouping.join` settles them when the stories are written in ``order``, each seeing the others."""
    labels: dict[str, str] = {}
    written: list[str] = []
    for story_id in order:
        bands = set(band_hashes(signatures[story_id][None, :])[0].tolist())
        candidates = [
            Candidate(other, signatures[other], labels.get(other))
            for other in written
            if bands & set(band_hashes(signatures[other][None, :])[0].tolist())
        ]
        joined = join(story_id, signatures[story_id], candidates)
        if joined.label is not None:
            for member, label in list(labels.items()):
                if label in joined.merged:
                    labels[member] = joined.label
            labels.update(dict.fromkeys([story_id, *joined.adopted], joined.label))
        written.append(story_id)
    return labels


def _partition(labels: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for story_id, label in labels.items():
        groups.setdefault(label, set()).add(story_id)
    return {frozenset(ids) for ids in groups.values() if len(ids) > 1}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_regrouping_stories_written_apart_groups_them_as_if_written_together(seed: int) -> None:
    """Versions written on shards that did not see one another end in the groups one database would give them."""
    rng = random.Random(seed)
    words = f"{BODY} {OTHER.body}".split()
    stories = [*VARIANTS, OTHER]
    for n in range(12):  # versions of mixtures of the two stories, some joining their groups
        cut = rng.randrange(20, len(words) - 20)
        stories.append(version(f"mix-{n}", "Port", " ".join(words[cut - 20 : cut + 40]), 9))
    signatures = {s.id: signature(term_positions(s.body)) for s in stories}
    signatures = {i: sig for i, sig in signatures.items() if sig is not None}
    order = sorted(signatures)
    rng.shuffle(order)
    together = _partition(_written_one_by_one(signatures, order))
    assert together, "some stories are versions of others"
    # Written on three shards apart: each groups its own stories only; then regrouped over all of them.
    shards = [order[n::3] for n in range(3)]
    labels: dict[str, str] = {}
    for shard in shards:
        labels.update(_written_one_by_one(signatures, shard))
    stories_seen = {i: Candidate(i, sig, labels.get(i)) for i, sig in signatures.items()}
    shared: dict[int, list[str]] = {}
    for story_id, sig in signatures.items():
        for band, value in enumerate(band_hashes(sig[None, :])[0].tolist()):
            shared.setdefault(hash((band, value)), []).append(story_id)
    assert _partition(labels) != together, "the shards alone miss some versions"
    changes = regroup(stories_seen, shared.values())
    final = {**labels, **changes}
    assert _partition(final) == together
    for group in _partition(final):
        before = sorted({labels[i] for i in group if i in labels})
        assert not before or {final[i] for i in group} == {before[0]}, "a group keeps the first of its labels"
    again = {i: Candidate(i, sig, final.get(i)) for i, sig in signatures.items()}
    assert regroup(again, shared.values()) == {}, "a second pass changes nothing"
