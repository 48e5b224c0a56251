"""An index written in the previous layout of its side files reads the same, and moves to the new one at its
next commit: signatures stored in 32 bits a value, the manifest as plain JSON, a deletion index in every
segment's words file and none per commit, the band table in 64 bits with NumPy unicode ids."""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path

import numpy as np
from whoosh import index as whoosh_index

from search_service.analysis import term_positions
from search_service.backends.whoosh import WhooshEngine
from search_service.backends.whoosh.indexer import index_paths
from search_service.backends.whoosh.schema import CODEC
from search_service.duplicates import band_hashes, signature
from search_service.model import SearchRequest
from search_service.stories import Story

from conftest import generate_stories, write_story

BODY = (
    "The port authority said on Tuesday that container traffic through the harbour rose 12 percent in May, "
    "the third monthly rise in a row, as shipping lines added routes to Asia and Europe. "
    "Officials credited a new deep-water berth opened in March and faster customs checks. "
    "Dock workers' unions warned that staffing had not kept pace with the volumes and called for talks "
    "with the authority before the summer peak."
)


def to_previous_layout(index: Path) -> None:
    """Rewrite the signatures and side files of the latest commit as the previous release wrote them."""
    ix = whoosh_index.open_dir(index)
    writer = ix.writer(codec=CODEC)
    with ix.searcher() as searcher:
        for fields in list(searcher.all_stored_fields()):
            if fields.get("minhash"):  # all 32 bits of each value
                fields["minhash"] = signature(term_positions(fields["body"])).tobytes()
                writer.update_document(**fields)
    writer.commit(merge=False)
    generation = ix.latest_generation()
    for side_file in index.glob(f"search_service_*_{generation - 1}.*"):
        side_file.rename(index / side_file.name.replace(f"_{generation - 1}.", f"_{generation}.", 1))
    manifest = index / f"search_service_files_{generation}.json.gz"
    (index / f"search_service_files_{generation}.json").write_bytes(gzip.decompress(manifest.read_bytes()))
    manifest.unlink()
    (index / f"search_service_spelling_{generation}.npz").unlink()
    for words_file in index.glob("*.words"):
        with np.load(words_file) as data:
            words, counts = data["words"], data["counts"]
        with open(words_file, "wb") as out:  # keys and ids: the segment's own deletion index, now ignored
            np.savez(out, words=words, counts=counts, keys=np.arange(9, dtype=np.uint32), ids=np.zeros(9, np.int32))
    bands = index / f"search_service_bands_{generation}.npz"
    with np.load(bands) as data:
        ids = np.char.decode(data["ids"], "utf-8")
    with ix.searcher() as searcher:
        signatures = {f["id"]: f["minhash"] for f in searcher.all_stored_fields() if f.get("minhash")}
    wide = band_hashes(np.stack([np.frombuffer(signatures[story_id], dtype=np.uint32) for story_id in ids]))
    with open(bands, "wb") as out:
        np.savez(out, ids=ids.astype(str), bands=wide)


def answers(engine: WhooshEngine) -> list[tuple[str | None, list[str], int]]:
    """What a few queries find: the correction, the hits' ids, the total."""
    found = []
    for q in ("containr trafic", "harbour", "authority OR customs", '"container traffic"'):
        result = engine.search(SearchRequest(q=q))
        found.append((result.corrected_from, [h.id for h in result.hits], result.total))
    return found


def test_an_index_in_the_previous_layout_reads_the_same_and_moves_to_the_new_one(tmp_path: Path) -> None:
    stories = tmp_path / "stories"
    generate_stories(stories, 60)
    write_story(stories / "port.txt", "port-1", "Harbour container traffic rises 12 pct", BODY)
    index = tmp_path / "index"
    index_paths([stories], index, procs=1)
    expected = answers(WhooshEngine(index))
    assert expected[0][0] == "containr trafic", "the typos are corrected"

    to_previous_layout(index)
    assert not list(index.glob("search_service_spelling_*")) and not list(index.glob("*.json.gz"))
    assert answers(WhooshEngine(index)) == expected

    rerun = index_paths([stories], index, procs=1)
    assert (rerun.unchanged_files, rerun.added, rerun.updated) == (61, 0, 0), "the plain JSON manifest was read"
    engine = WhooshEngine(index)
    engine.upsert([Story("port-2", "UPDATE 1-Harbour traffic up", BODY + " Talks are set.", datetime(2024, 6, 5), "t")])
    hit = next(h for h in engine.search(SearchRequest(q="harbour container")).hits if h.id.startswith("port-"))
    assert hit.similar is not None and sorted([hit.id, *hit.similar["ids"]]) == ["port-1", "port-2"], (
        "the 64-bit band table found the earlier version, and its 32-bit signature matched"
    )
    generation = whoosh_index.open_dir(index).latest_generation()
    assert sorted(p.name for p in index.glob("search_service_*")) == [
        f"search_service_bands_{generation}.npz",
        f"search_service_files_{generation}.json.gz",
        f"search_service_groups_{generation}.json",
        f"search_service_spelling_{generation}.npz",
    ]
    with np.load(index / f"search_service_bands_{generation}.npz") as data:
        assert data["bands"].dtype == np.uint32 and data["ids"].dtype.kind == "S"
    assert answers(WhooshEngine(index))[0][0] == "containr trafic"
