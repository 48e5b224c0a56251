"""Xapian's file indexer: commits of any size give the same groups, and the manifest survives its batches.

Stories are written as JSON Lines files, a story a file, and indexed into
real Xapian databases by :func:`search_service.backends.xapian.indexer.index_paths`,
once committing after every story and once in a single commit: each
story's near-duplicate group is settled against the stories of earlier
commits (read from the database) and of its own (held in memory), so both
must give the same groups.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import xapian
from test_engine_contract import DUPLICATE_BODY, NOT_A_VERSION, _version

from search_service.backends.xapian import batches
from search_service.backends.xapian import groups as groups_module
from search_service.backends.xapian.document import BAND, fields_of
from search_service.backends.xapian.groups import label_of, shared_bands
from search_service.backends.xapian.indexer import MANIFEST_KEY, index_paths
from search_service.duplicates import BANDS
from search_service.model import IndexSummary


def bridged() -> list[dict[str, str]]:
    """Two stories too different to be versions, each with a version, and a story like both (it joins them)."""
    words = f"{DUPLICATE_BODY} {NOT_A_VERSION['body']}".split()
    left, right = " ".join(words[:-26]), " ".join(words[26:])
    return [
        _version("bridge-a1", "Port traffic", left, "2024-06-01T00:00:00"),
        _version("bridge-a2", "Port traffic", left + " Shares rose.", "2024-06-01T00:00:00"),
        _version("bridge-b1", "Port traffic", right, "2024-06-02T00:00:00"),
        _version("bridge-b2", "Port traffic", right + " Shares fell.", "2024-06-02T00:00:00"),
        _version("bridge-c", "Port traffic", " ".join(words), "2024-06-03T00:00:00"),
    ]


WEATHER = (
    "Heavy rain flooded the lower town of Zorbland overnight, closing the coastal road and two schools. "
    "The river rose two metres above its usual level before dawn and the fire brigade pumped out dozens of cellars. "
    "Forecasters expect more rain on Thursday and have asked residents near the river banks to move their cars."
)
WEATHER_VERSIONS = [
    _version("rain-1", "Floods close coastal road", WEATHER, "2024-05-01T06:00:00"),
    _version("rain-2", "UPDATE 1-Floods close road", WEATHER + " Trains are running late.", "2024-05-01T09:00:00"),
]


def write_stories(folder: Path, stories: list[dict[str, str]]) -> None:
    folder.mkdir(exist_ok=True)
    for n, story in enumerate(stories):
        (folder / f"{n:03d}-{story['id']}.jsonl").write_text(json.dumps(story) + "\n", encoding="utf-8")


def index(folder: Path, db_path: Path, commit_stories: int) -> IndexSummary:
    db = xapian.WritableDatabase(str(db_path), xapian.DB_CREATE_OR_OPEN)
    reader = xapian.Database(str(db_path))
    try:
        summary = index_paths(db, reader, [folder], None, None, commit_stories)
        db.commit()
        return summary
    finally:
        reader.close()
        db.close()


def groups(db_path: Path) -> set[frozenset[str]]:
    """The stories of each group with versions, as sets of ids (a story left alone in its group has none)."""
    db = xapian.Database(str(db_path))
    found: dict[str, set[str]] = {}
    for posting in db.postlist(""):
        doc = db.get_document(posting.docid)
        label = label_of(doc)
        if label:
            found.setdefault(label, set()).add(fields_of(doc)["id"])
    return {frozenset(ids) for ids in found.values() if len(ids) > 1}


def test_groups_are_the_same_whatever_the_commits(tmp_path: Path) -> None:
    a1, a2, b1, b2, c = bridged()
    stories = [a1, WEATHER_VERSIONS[0], b1, a2, b2, c, WEATHER_VERSIONS[1]]
    write_stories(tmp_path / "stories", stories)
    bridge = frozenset(s["id"] for s in bridged())
    expected = {bridge, frozenset({"rain-1", "rain-2"})}
    for commit_stories in (1, 1000):
        summary = index(tmp_path / "stories", tmp_path / f"db{commit_stories}", commit_stories)
        assert (summary.added, summary.updated) == (len(stories), 0)
        assert groups(tmp_path / f"db{commit_stories}") == expected, f"commits of {commit_stories}"

    # A version rewritten into another story leaves its group on the next run, whatever the commits.
    rewritten = WEATHER_VERSIONS[1] | {"body": "The town library reopened after a year of repairs, with longer hours."}
    (tmp_path / "stories" / f"{len(stories) - 1:03d}-rain-2.jsonl").write_text(json.dumps(rewritten) + "\n")
    for commit_stories in (1, 1000):
        again = index(tmp_path / "stories", tmp_path / f"db{commit_stories}", commit_stories)
        assert (again.added, again.updated, again.unchanged_files) == (0, 1, len(stories) - 1)
        assert groups(tmp_path / f"db{commit_stories}") == {bridge}


def test_a_manifest_of_many_commits_is_kept_in_few_batches(tmp_path: Path) -> None:
    stories = [
        _version(f"note-{n}", f"Harbour note {n}", f"Harbour note number {n} about dredging.", "2024-06-01T00:00:00")
        for n in range(37)
    ]
    write_stories(tmp_path / "stories", stories)
    assert index(tmp_path / "stories", tmp_path / "db", 1).added == 37
    db = xapian.Database(str(tmp_path / "db"))
    assert len(batches.numbered(db, MANIFEST_KEY)) <= math.log2(37) + 1
    db.close()
    again = index(tmp_path / "stories", tmp_path / "db", 1)
    assert (again.added, again.updated, again.unchanged_files) == (0, 0, 37)
    (tmp_path / "stories" / "000-note-0.jsonl").unlink()
    assert index(tmp_path / "stories", tmp_path / "db", 1).removed == 1
    assert index(tmp_path / "stories", tmp_path / "db", 1).unchanged_files == 36


def test_shared_bands_listed_in_slices_are_those_listed_at_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A shard lists its band terms a slice of the hash range per call, and the slices add up to the whole."""
    write_stories(tmp_path / "stories", [*bridged(), *WEATHER_VERSIONS])
    index(tmp_path / "stories", tmp_path / "db", 1000)
    db = xapian.Database(str(tmp_path / "db"))
    at_once = [item.term.decode() for item in db.allterms(BAND) if item.termfreq > 1]
    assert len(at_once) >= BANDS, "versions share bands"
    assert shared_bands(db) == at_once  # 7 stories: one call a band
    for per_call in (2, 0.25):  # 7 stories: a band and a hex digit of the hash per call, then two digits
        monkeypatch.setattr(groups_module, "LIST_TERMS", per_call)
        assert shared_bands(db) == at_once, f"{per_call} terms a call"
