"""Segments built from arrays (``backends/whoosh/segments.py``) hold what Whoosh's own writer writes.

The reference is Whoosh's public ``SegmentWriter`` (``ix.writer()``,
``add_document``, ``commit``) fed the same documents: every term, its
``TermInfo``, every posting with its block statistics, the stored fields and
the field lengths must be equal, and so must the engine's scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from whoosh import formats
from whoosh import index as whoosh_index
from whoosh.index import FileIndex
from whoosh.matching import FilterMatcher

from search_service.analysis import term_positions
from search_service.backends.whoosh import WhooshEngine, segments
from search_service.backends.whoosh.groups import document_fields
from search_service.backends.whoosh.indexer import index_paths, open_index
from search_service.backends.whoosh.schema import CODEC, build_schema, to_document
from search_service.model import IndexWriteError, SearchRequest
from search_service.stories import iter_story_files, read_file

from conftest import generate_stories, small_posting_blocks, write_story


def _whoosh_written(files: list[Path], index_dir: Path) -> None:
    """The stories of ``files`` indexed by Whoosh's own writer, one segment, the later of a code kept."""
    ix = open_index(index_dir, create=True)
    writer = ix.writer(codec=CODEC)
    last: dict[str, int] = {}
    docnum = 0
    for path in files:
        for story in read_file(path).stories:
            extra, _ = document_fields(term_positions(story.body))
            writer.add_document(**to_document(story, str(path.resolve())), **extra)
            last[story.id] = docnum
            docnum += 1
    writer.commit(merge=False)
    losers = set(range(docnum)) - set(last.values())
    if losers:
        writer = ix.writer(codec=CODEC)
        for n in losers:
            writer.delete_document(n)
        writer.commit(merge=False)


def _postings(ix: FileIndex) -> dict[tuple[str, bytes], tuple[Any, ...]]:
    """Everything Whoosh reads of each term: its TermInfo, and each posting with its block's statistics."""
    found = {}
    with ix.reader() as reader:
        for fieldname, text in reader.all_terms():
            info = reader.term_info(fieldname, text)
            matcher = reader.postings(fieldname, text)
            if isinstance(matcher, FilterMatcher):
                matcher = matcher.child  # deleted stories included
            postings = []
            while matcher.is_active():
                postings.append(
                    (
                        matcher.id(),
                        float(matcher.weight()),
                        matcher.value(),
                        matcher.block_max_weight(),
                        matcher.block_min_length(),
                        matcher.block_max_length(),
                        matcher.block_max_id(),
                    )
                )
                matcher.next()
            found[fieldname, text] = (
                info.weight(),
                info.doc_frequency(),
                info.min_length(),
                info.max_length(),
                info.max_weight(),
                info.min_id(),
                info.max_id(),
                postings,
            )
    return found


def _corpus(folder: Path) -> list[Path]:
    generate_stories(folder, 1_100, seed=11)  # the commonest words in more stories than a block holds
    # A story with no headline words, one with a very long body (wide gaps, long blocks), one with no date.
    write_story(folder / "zz" / "a.txt", "900001", "--", "kalo " * 3 + "word " * 5000)
    write_story(folder / "zz" / "b.txt", "100003", "Revised edition", "replacement text")  # a repeated code
    return sorted(Path(p) for p in iter_story_files([folder]))


def test_a_built_segment_holds_what_whooshs_writer_writes(tmp_path: Path) -> None:
    files = _corpus(tmp_path / "corpus")
    with small_posting_blocks() as block:
        index_paths([tmp_path / "corpus"], tmp_path / "built", procs=1)
        _whoosh_written(files, tmp_path / "whoosh")
    built, whoosh = open_index(tmp_path / "built"), open_index(tmp_path / "whoosh")

    ours, theirs = _postings(built), _postings(whoosh)
    assert list(ours) == list(theirs)
    assert any(len(p[-1]) > block for p in ours.values()), "some term spans several blocks"
    for term, expected in theirs.items():
        assert ours[term] == expected, term
    with built.reader() as a, whoosh.reader() as b:
        assert list(a.all_stored_fields()) == list(b.all_stored_fields())
        assert a.doc_count() == b.doc_count() == a.doc_count_all() - 1 == 1_101
        for fieldname in ("headline", "body"):
            assert a.field_length(fieldname) == b.field_length(fieldname) > 0
            assert [a.doc_field_length(n, fieldname) for n in range(a.doc_count_all())] == [
                b.doc_field_length(n, fieldname) for n in range(b.doc_count_all())
            ]


def _top_scores(index_dir: Path, queries: list[str]) -> dict[str, list[tuple[str, float | None]]]:
    engine = WhooshEngine(index_dir)
    try:
        return {
            q: [(h.id, h.score) for h in engine.search(SearchRequest(q, collapse=False, spell=False)).hits]
            for q in queries
        }
    finally:
        engine.close()


def _assert_same_scores(built: Path, whoosh: Path, queries: list[str]) -> None:
    ours, theirs = _top_scores(built, queries), _top_scores(whoosh, queries)
    assert sum(len(hits) for hits in ours.values()) > len(queries)
    for q in queries:
        assert [i for i, _ in ours[q]] == [i for i, _ in theirs[q]], q
        assert [s for _, s in ours[q]] == pytest.approx([s for _, s in theirs[q]], rel=1e-6, abs=1e-6), q


def _queries(index_dir: Path) -> list[str]:
    """One-word, two-word, phrase and headline queries drawn from the index's own stories."""
    with open_index(index_dir).reader() as reader:
        stories = [reader.stored_fields(n) for n in range(0, reader.doc_count_all(), reader.doc_count_all() // 12)]
    queries = []
    for story in stories:
        words = [w for w in story["body"].split() if w.isalpha()][:4]
        headline = [w for w in story["headline"].split() if w.isalpha()]
        queries += [words[0], f"{words[1]} {words[2]}", f'"{words[2]} {words[3]}"']
        queries += [f"headline:{headline[0]}"] if headline else []
    return queries


def test_scores_equal_whooshs_writer_on_a_generated_corpus(tmp_path: Path) -> None:
    files = _corpus(tmp_path / "corpus")
    index_paths([tmp_path / "corpus"], tmp_path / "built", procs=1)
    _whoosh_written(files, tmp_path / "whoosh")
    _assert_same_scores(tmp_path / "built", tmp_path / "whoosh", [*_queries(tmp_path / "built"), "kalo", "word"])


def test_scores_equal_whooshs_writer_on_reuters(reuters_dir: Path, tmp_path: Path) -> None:
    """A third of the Reuters stories (every third file): Whoosh's writer takes minutes over all of them."""
    files = sorted(Path(p) for p in iter_story_files([reuters_dir]))[::3]
    for path in files:
        (tmp_path / "corpus" / path.relative_to(reuters_dir)).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "corpus" / path.relative_to(reuters_dir)).hardlink_to(path)
    index_paths([tmp_path / "corpus"], tmp_path / "built", procs=1)
    _whoosh_written(sorted(Path(p) for p in iter_story_files([tmp_path / "corpus"])), tmp_path / "whoosh")
    _assert_same_scores(tmp_path / "built", tmp_path / "whoosh", _queries(tmp_path / "built"))


def test_a_worker_writes_several_segments_past_its_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _corpus(tmp_path / "corpus")
    index_paths([tmp_path / "corpus"], tmp_path / "whole", procs=1)
    monkeypatch.setattr(segments, "MAX_POSTINGS", 3_000)
    summary = index_paths([tmp_path / "corpus"], tmp_path / "split", procs=1)
    assert (summary.added, summary.duplicates) == (1_101, 1)
    assert len(open_index(tmp_path / "split")._segments()) > 3
    queries = [*_queries(tmp_path / "whole"), "revised edition"]
    _assert_same_scores(tmp_path / "split", tmp_path / "whole", queries)
    assert _top_scores(tmp_path / "split", ["replacement"])["replacement"][0][0] == "100003", "the later file won"


def test_an_index_with_whooshs_pickled_positions_must_be_rebuilt(tmp_path: Path) -> None:
    schema = build_schema()
    schema["body"].format = formats.Positions()  # as in indexes built before compact positions
    whoosh_index.create_in(tmp_path, schema)
    with pytest.raises(IndexWriteError, match=r"built by an older search_service.*rebuild it: delete the folder"):
        open_index(tmp_path)
