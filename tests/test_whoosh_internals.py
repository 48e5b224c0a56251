"""Contract tests for ``backends/whoosh/internals.py``: every private Whoosh name, signature and format we use.

An upgrade of whoosh-reloaded that renames a method, changes a signature
or the on-disk encoding fails here, by name, rather than somewhere deep in
ranking or indexing.  Each public Whoosh API used as the reference here
(matchers, ``doc_field_length``, stored fields, ``expanded_terms``) is the
slow, supported way to get the same answer.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import pickle
import random
import subprocess
import sys
from array import array
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from whoosh import columns
from whoosh import query as wq
from whoosh.codec import whoosh3
from whoosh.filedb import compound
from whoosh.index import FileIndex
from whoosh.matching import FilterMatcher
from whoosh.util.numeric import byte_to_length
from whoosh.util.times import datetime_to_long
from whoosh.writing import SegmentWriter

from search_service.backends.whoosh import internals, postings
from search_service.backends.whoosh.indexer import add_stories, delete_story, open_index
from search_service.backends.whoosh.schema import CODEC, CompactPositions, to_document
from search_service.backends.whoosh.segments import SegmentBuilder
from search_service.stories import Story

STORIES = [
    Story(
        "s1",
        "Zinc prices rise",
        "Zinc output fell. Zinc stocks rose and zinc traders smiled.",
        datetime(2021, 3, 4, 5, 6),
        "t",
    ),
    Story("s2", "Copper quiet", "Traders said copper was steady; zinc was not mentioned much.", None, "t"),
    Story("s3", "Tin output up", "The price of tin rose sharply in March.", datetime(1987, 10, 19, 23, 59, 59), "t"),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("internals") / "index"
    add_stories(index_dir, STORIES)
    add_stories(index_dir, [Story("s4", "Zinc again", "More zinc news, zinc everywhere.", None, "t")])
    delete_story(index_dir, "s2")  # a segment with deletions: its matchers come wrapped
    return index_dir


# ---------------------------------------------------------------- version and names


def test_the_installed_whoosh_is_the_supported_one() -> None:
    assert importlib.metadata.version("whoosh-reloaded") == internals.SUPPORTED_WHOOSH


def test_another_whoosh_version_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "3.0.0")
    with pytest.raises(
        ImportError, match=r"needs whoosh-reloaded 2\.7\.5, but 3\.0\.0 .*pip install whoosh-reloaded==2\.7\.5"
    ):
        internals._check_version()


#: (owner, private name, its parameters) for each private member internals.py touches.
PRIVATE_MEMBERS = [
    (
        SegmentWriter,
        "__init__",
        ["self", "ix", "poolclass", "timeout", "delay", "_lk", "limitmb", "docbase", "codec", "compound", "kwargs"],
    ),
    (SegmentWriter, "_finalize_segment", ["self"]),
    (SegmentWriter, "_close_segment", ["self"]),
    (SegmentWriter, "_merge_segments", ["self", "mergetype", "optimize", "merge"]),
    (SegmentWriter, "_commit_toc", ["self", "segments"]),
    (SegmentWriter, "_finish", ["self"]),
    (FileIndex, "_segments", ["self"]),
    (whoosh3.W3PerDocReader, "_cached_reader", ["self", "fieldname", "column"]),
    (whoosh3.W3LeafMatcher, "_read_data", ["self"]),
    (whoosh3.W3LeafMatcher, "_next_block", ["self"]),
    (whoosh3.W3LeafMatcher, "_goto", ["self", "position"]),
    (wq.MultiTerm, "_btexts", ["self", "ixreader"]),
    (whoosh3.W3TermInfo, "extent", ["self"]),
]


@pytest.mark.parametrize("owner, name, params", PRIVATE_MEMBERS, ids=lambda v: getattr(v, "__name__", None))
def test_private_members_have_the_signatures_relied_on(owner: type, name: str, params: list[str]) -> None:
    member = getattr(owner, name)
    if owner is whoosh3.W3PerDocReader and name == "_cached_reader":
        member = internals._WHOOSH_CACHED_READER  # the original, before apply_fixes replaced it
    assert list(inspect.signature(member).parameters) == params


def test_compound_files_are_opened_through_the_module_global_buffer_file() -> None:
    source = inspect.getsource(compound.CompoundStorage.open_file)
    assert "BufferFile(buf, name=name)" in source


# ---------------------------------------------------------------- fixes


def test_fixes_are_applied_when_an_index_is_opened_not_on_import(index: Path) -> None:
    code = (
        "import search_service.backends.whoosh as b\n"
        "from whoosh.codec import whoosh3\n"
        "from whoosh.filedb import compound\n"
        "from search_service.backends.whoosh import internals\n"
        "assert whoosh3.W3PerDocReader._cached_reader is internals._WHOOSH_CACHED_READER\n"
        "assert compound.BufferFile is not internals._CompoundPartFile\n"
        f"b.WhooshEngine({str(index)!r})\n"
        "assert whoosh3.W3PerDocReader._cached_reader is internals._cached_column_reader\n"
        "assert compound.BufferFile is internals._CompoundPartFile\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_column_cache_fix_is_what_whoosh_calls(index: Path) -> None:
    ix = open_index(index)
    with ix.searcher() as searcher:
        for leaf, _ in searcher.reader().leaf_readers():
            lengths = leaf._perdoc._cached_reader("_body_len", whoosh3.LENGTHS_COLUMN)
            assert lengths.__class__.__name__ == "array"  # loaded in one piece by the fix
            assert leaf._perdoc._cached_reader("_id_len", whoosh3.LENGTHS_COLUMN) is None
            assert "_id_len" in leaf._perdoc._readers  # the missing column is remembered
            # Whoosh's own scoring path reads lengths through the patched cache.
            assert [leaf.doc_field_length(n, "body") for n in range(leaf.doc_count_all())] == [
                byte_to_length(b) for b in lengths
            ]


def test_compound_parts_are_read_through_the_memory_file(index: Path) -> None:
    ix = open_index(index)
    segment = ix._segments()[0]
    assert segment.is_compound()
    storage = segment.open_compound_file(ix.storage)
    name = next(n for n in storage.list() if n.endswith(".trm"))
    part = storage.open_file(name)
    assert isinstance(part, internals._CompoundPartFile)
    assert part.read(16) == bytes(part._buf[:16])


# ---------------------------------------------------------------- formats and reads


def test_compact_positions_decode_through_whooshs_format_api() -> None:
    fmt = CompactPositions()
    for positions in ([0], [3, 4, 9], [127, 128, 16_511], list(range(0, 3000, 7)), [5, 2**31 - 1]):
        encoded = internals.encode_positions(positions)
        assert fmt.encode(positions) == encoded
        assert fmt.decode_as("positions", encoded) == positions
        assert fmt.decode_as("frequency", encoded) == len(positions)
        assert fmt.decode_as("weight", encoded) == len(positions) * fmt.field_boost
    assert internals.encode_positions([0, 1, 2]) == b"\x00\x01\x01", "a gap under 128 is one byte"


def test_position_values_read_as_arrays_as_the_format_decodes_them() -> None:
    """The array reader of many encoded values at once: one-byte gaps, wide gaps, long lists, any subset."""
    fmt = CompactPositions()
    lists = [[0], [3, 4, 9], [300], [5, 400, 70_000, 2**31 - 1], list(range(0, 3000, 7)), [1, 2], [255, 511]]
    values = [internals.encode_positions(p) for p in lists]
    data = b"".join(values)
    offsets = np.cumsum([0] + [len(v) for v in values])
    for at in (np.arange(len(values)), np.array([6, 2, 4]), np.array([], dtype=np.int64)):
        starts, flat = internals.decode_position_values(data, offsets[at], offsets[at + 1])
        assert [flat[starts[i] : starts[i + 1]].tolist() for i in range(len(at))] == [
            fmt.decode_positions(values[n]) for n in at
        ]
    many, counts = internals.encode_position_values(np.array([2, 1, 3]), np.array([1, 200, 7, 0, 128, 20_000]))
    assert [len(v) for v in map(internals.encode_positions, ([1, 200], [7], [0, 128, 20_000]))] == counts.tolist()
    assert many.tobytes() == b"".join(map(internals.encode_positions, ([1, 200], [7], [0, 128, 20_000])))


def test_posting_blocks_hold_what_whooshs_matcher_returns(index: Path) -> None:
    ix = open_index(index)
    with ix.searcher() as searcher:
        leaves = searcher.reader().leaf_readers()
        assert any(leaf.has_deletions() for leaf, _ in leaves)
        for leaf, _ in leaves:
            for term in ("zinc", "trader", "output"):
                if ("body", term) in leaf:
                    assert _block_postings(leaf, "body", term) == _matcher_postings(leaf, "body", term)


def test_a_terms_postings_are_found_from_its_term_info_never_inlined(tmp_path: Path) -> None:
    """posting_blocks reads where the postings are from the term's ``W3TermInfo`` (as Whoosh's
    matcher is given it) and the segment's postings file; Whoosh's own writer, as this project
    configures it (merges), inlines no postings into the term info, not even a word of one story."""
    add_stories(tmp_path / "index", STORIES[:1])
    ix = open_index(tmp_path / "index")
    with ix.writer(codec=CODEC) as writer:
        writer.add_document(**to_document(Story("w", "Wolfram", "A lone tungsten story.", None, "t")))
    with open_index(tmp_path / "index").searcher() as searcher:
        for leaf, _ in searcher.reader().leaf_readers():
            for term in leaf.lexicon("body"):
                info = leaf.term_info("body", term)
                assert not info.is_inlined()
                matcher = leaf.postings("body", term)
                assert (matcher._postfile, matcher._startoffset) == (leaf._terms._postfile, info.extent()[0])
                assert _block_postings(leaf, "body", term) == _matcher_postings(leaf, "body", term)
        assert searcher.reader().doc_frequency("body", "tungsten") == 1


def _block_postings(leaf: Any, fieldname: str, term: str) -> list[tuple[int, float, bytes]]:
    """``(id, weight, value)`` of each posting, as posting_blocks reads them."""
    ids, weights, values = [], [], []
    for _, deltas, block_weights, block_values in internals.posting_blocks(leaf, fieldname, term):
        ids.extend(np.cumsum(deltas).tolist())
        weights.extend([block_weights] * len(deltas) if not hasattr(block_weights, "__len__") else list(block_weights))
        values.extend(block_values)
    return list(zip(ids, [float(w or 1.0) for w in weights], values))


def _matcher_postings(leaf: Any, fieldname: str, term: str) -> list[tuple[int, float, bytes]]:
    """``(id, weight, value)`` of each posting, as Whoosh's matcher gives them (deleted stories included)."""
    matcher = leaf.postings(fieldname, term)
    if isinstance(matcher, FilterMatcher):
        matcher = matcher.child  # deleted stories included, as posting_blocks does
    expected = []
    while matcher.is_active():
        expected.append((matcher.id(), matcher.weight(), matcher.value()))
        matcher.next()
    return expected


@pytest.mark.parametrize("compression", [0, 3])
def test_a_blocks_values_are_read_again_alone_from_where_posting_blocks_says_it_is(
    tmp_path: Path, compression: int
) -> None:
    """Postings of many blocks are read as Whoosh's matcher reads them, and some blocks' values, read
    alone (block_values), are those the whole reading gave (posting_blocks), in blocks as this project
    writes them and as Whoosh's own writer compresses them."""
    stories = [Story(f"z{i}", f"Zinc {i}", f"zinc output {i} " * (1 + i % 3), None, "t") for i in range(700)]
    add_stories(tmp_path / "index", stories[:1])
    ix = open_index(tmp_path / "index")
    with ix.writer(codec=whoosh3.W3Codec(compression=compression)) as writer:
        for story in stories[1:]:
            writer.add_document(**to_document(story))
    delete_story(tmp_path / "index", "z5")  # a segment with deletions: its matcher comes wrapped
    with open_index(tmp_path / "index").searcher() as searcher:
        leaf = max((leaf for leaf, _ in searcher.reader().leaf_readers()), key=lambda leaf: leaf.doc_count_all())
        assert leaf.has_deletions()
        blocks = list(internals.posting_blocks(leaf, "body", "zinc"))
        assert len(blocks) > 4
        assert any(where[1] < 0 for where, *_ in blocks) == bool(compression)
        assert _block_postings(leaf, "body", "zinc") == _matcher_postings(leaf, "body", "zinc")
        some = [1, 2, len(blocks) - 1]  # not the first block (where the postings start), and the last
        again = internals.block_values(leaf, "body", "zinc", [blocks[b][0] for b in some])
        assert [list(values or []) for values in again] == [list(blocks[b][3]) for b in some]


def test_packed_blocks_are_read_alike_by_whooshs_matcher_and_ours(tmp_path: Path) -> None:
    """A term's blocks of 32 postings or more are packed, a smaller last block is written as Whoosh
    writes it; Whoosh's matcher and this project's readers read both the same, frequencies past a byte
    and positions past 255 bytes included."""
    stories = [
        Story(f"z{i}", "Zinc", " ".join(["zinc output"] * (300 if i % 50 == 7 else 1 + i % 4)), None, "t")
        for i in range(2 * CODEC._blocklimit + 24)  # two full blocks, and one of 24
    ]
    add_stories(tmp_path / "index", stories)
    with open_index(tmp_path / "index").searcher() as searcher:
        (leaf, _), *_ = searcher.reader().leaf_readers()
        blocks = list(internals.posting_blocks(leaf, "body", "zinc"))
        assert [type(values).__name__ for *_, values in blocks] == ["PackedPositions", "PackedPositions", "tuple"]
        assert [weights.typecode for _, _, weights, _ in blocks[:2]] == ["H", "H"], "frequencies of 300"
        assert blocks[0][3].counts.typecode == blocks[0][3].positions.typecode == "H"
        assert _block_postings(leaf, "body", "zinc") == _matcher_postings(leaf, "body", "zinc")
        kept, positions = postings.read_both(leaf, "body", "zinc")
        matcher = leaf.postings("body", "zinc")
        expected = list(matcher.items_as("positions"))
        assert kept.ids.tolist() == [n for n, _ in expected]
        assert kept.tfs.tolist() == [len(p) for _, p in expected]
        assert [positions.flat[a:b].tolist() for a, b in pairwise(positions.starts)] == [p for _, p in expected]
        at = np.array([0, 5, 600, len(stories) - 10, len(stories) - 1])
        some = postings.read_positions_at(leaf, "body", "zinc", kept, at)
        assert [some.flat[a:b].tolist() for a, b in pairwise(some.starts)] == [expected[n][1] for n in at]


def test_packed_positions_pickle_by_name_and_index_as_whoosh_reads_a_tuple() -> None:
    """The class is named in every packed block: its module and name are part of the format."""
    lists = [[0], [3, 300], list(range(0, 900, 3))]
    encoded = [internals.encode_positions(p) for p in lists]
    packed = internals.PackedPositions(array("H", map(len, lists)), array("H", [n for p in lists for n in p]))
    data = pickle.dumps(packed, 4)
    assert b"search_service.backends.whoosh.internals" in data and b"PackedPositions" in data
    again = pickle.loads(data)
    assert len(again) == 3 and [again[i] for i in range(3)] == list(again) == encoded
    small = internals.PackedPositions(b"\x01\x02", b"\x07\x01\x09")  # a byte each
    assert list(small) == [internals.encode_positions([7]), internals.encode_positions([1, 9])]
    # packed blocks, blocks as Whoosh writes them and a block without values, read end to end
    starts, flat = internals.block_positions([again, tuple(encoded), None, small], [3, 3, 2, 2])
    read = [flat[a:b].tolist() for a, b in pairwise(starts)]
    assert read == [*lists, *lists, [], [], [7], [1, 9]]
    starts, flat = internals.block_positions([again, small], [3, 2])  # packed blocks only: joined as they are
    assert [flat[a:b].tolist() for a, b in pairwise(starts)] == [*lists, [7], [1, 9]]
    assert [
        postings._kept(postings.Positions(*internals.block_positions([b], [len(b)]))).flat.dtype for b in (small, again)
    ] == [np.uint16, np.uint16]


def test_weights_and_ints_of_any_block_read_as_arrays() -> None:
    assert internals.weight_bytes(None, 3) == b"\x01\x01\x01"
    assert internals.weight_bytes(2.0, 2) == b"\x02\x02"
    assert internals.weight_bytes(2.5, 2) is None and internals.weight_bytes(256.0, 2) is None
    assert internals.weight_bytes((1, 2, 255), 3) == b"\x01\x02\xff"
    assert internals.weight_bytes((1, 256), 2) is None and internals.weight_bytes((1.0, 2.0), 2) is None
    assert internals.weight_bytes(array("H", [1, 2]), 2) is None
    assert internals.weight_bytes(b"\x03\x04", 2) == b"\x03\x04"
    parts = [array("H", [1, 2]), array("H", [300])]
    assert internals.joined_ints(parts).tolist() == [1, 2, 300]
    assert internals.joined_ints([array("I", [70_000]), b"\x05", (6, 7)]).tolist() == [70_000, 5, 6, 7]


def test_length_codes_and_dates_read_as_arrays_equal_whooshs_values(index: Path) -> None:
    ix = open_index(index)
    with ix.searcher() as searcher:
        for leaf, _ in searcher.reader().leaf_readers():
            codes = internals.length_codes(leaf, "headline")
            assert [byte_to_length(c) for c in codes] == [
                leaf.doc_field_length(n, "headline") for n in range(leaf.doc_count_all())
            ]
            ticks = internals.datetime_column(leaf, "published")
            for docnum in range(leaf.doc_count_all()):
                published = leaf.stored_fields(docnum).get("published")
                if published is not None:
                    assert int(ticks[docnum]) == datetime_to_long(published)
                elif docnum < len(ticks):  # a segment where no story has a date has no column
                    assert int(ticks[docnum]) == leaf.schema["published"].default


def test_expansions_are_the_wildcards_words(index: Path) -> None:
    ix = open_index(index)
    with ix.searcher() as searcher:
        q = wq.Prefix("body", "tr")
        expected = sorted(text.decode() for _, text in q.expanded_terms(searcher.reader()))
        assert sorted(b.decode() for b in internals.expansions(q, searcher.reader())) == expected == ["trader"]


# ---------------------------------------------------------------- writing


def _segment_of(ix: FileIndex, *stories: Story) -> Any:
    builder = SegmentBuilder(ix)
    for story in stories:
        builder.add(to_document(story))
    return builder.finish()


def test_segments_built_apart_commit_together(tmp_path: Path) -> None:
    ix = open_index(tmp_path / "index", create=True)
    writer = ix.writer(codec=CODEC)  # holds the lock for the whole run, as the indexer's parent does
    segments = [_segment_of(ix, story) for story in STORIES]
    SegmentBuilder(ix).discard()
    prepared: list[object] = []
    internals.commit_segments(writer, segments, prepared.extend)
    assert prepared == segments, "prepare sees every segment of the commit before it is published"
    with open_index(tmp_path / "index").searcher() as searcher:
        assert sorted(f["id"] for f in searcher.all_stored_fields()) == ["s1", "s2", "s3"]
        assert len(searcher.reader().leaf_readers()) == 3


def test_an_abandoned_writer_leaves_the_last_commit_and_frees_the_lock(index: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    ix = open_index(copy)
    before = sorted(p.name for p in copy.iterdir())
    writer = ix.writer(codec=CODEC)
    _segment_of(ix, Story("new", "Never committed", "Lost words.", None, "t"))
    writer.add_document(**to_document(Story("new2", "Never committed", "Lost words.", None, "t")))
    internals.abandon_writer(ix, writer)
    assert sorted(p.name for p in copy.iterdir()) == before
    ix.writer(timeout=0).cancel()  # the lock is free


def many_stories(count: int) -> list[Story]:
    """``count`` stories of made-up sentences from a small vocabulary, as an archive's stories share words."""
    rng = random.Random(5)
    words = [w for story in STORIES for w in f"{story.headline} {story.body}".split()]
    return [
        Story(
            f"m{n}", " ".join(rng.choices(words, k=6)), " ".join(rng.choices(words, k=rng.randint(20, 300))), None, "t"
        )
        for n in range(count)
    ]


@pytest.mark.parametrize("count", [3, 400])
def test_stored_fields_are_written_compactly_and_read_back_by_whoosh(tmp_path: Path, count: int) -> None:
    ix = open_index(tmp_path / "index", create=True)
    stories = many_stories(count)
    sizes, dictionary = [], []
    for compact in (False, True):
        segment = CODEC.new_segment(ix.storage, ix.indexname)
        perdoc = CODEC.per_document_writer(ix.storage, segment)
        assert isinstance(perdoc._colwriters["_stored"]._child, columns.CompressedBytesColumn.Writer)
        if compact:
            internals.store_compactly(perdoc)
        for docnum, story in enumerate(stories):
            perdoc.start_doc(docnum)
            for name, value in to_document(story).items():
                perdoc.add_field(name, ix.schema[name], value, 0)
            perdoc.finish_doc()
        perdoc.close()
        segment.set_doc_count(len(stories))
        reader = CODEC.per_document_reader(ix.storage, segment)
        stored = [reader.stored_fields(n) for n in range(len(stories))]
        raw = reader._cached_reader("_stored", whoosh3.STORED_COLUMN)._child
        dictionary.append(sum(columns.VarBytesColumn.Reader.__getitem__(raw, n)[1] & 0x20 > 0 for n in range(count)))
        reader.close()
        assert stored == [{k: v for k, v in to_document(s).items() if v is not None} for s in stories]
        sizes.append(ix.storage.file_length(CODEC.column_filename(segment, "_stored")))
    assert dictionary[0] == 0, "Whoosh's own writer compresses each story alone"
    if count > 100:
        assert dictionary[1] > count * 0.9, "all but the first stories are compressed with a dictionary"
        assert sizes[1] < sizes[0] * 0.8
    else:
        assert dictionary[1] == 0 and sizes[1] < sizes[0]


def test_the_lock_fd_is_the_locked_file(tmp_path: Path) -> None:
    import fcntl
    import os

    ix = open_index(tmp_path / "index", create=True)
    writer = ix.writer()
    fd = internals.lock_fd(writer)
    assert os.path.samefile(f"/proc/self/fd/{fd}", tmp_path / "index" / "MAIN_WRITELOCK")
    with open(tmp_path / "index" / "MAIN_WRITELOCK") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    writer.cancel()


class _CountedReads(internals._MemoryFile):
    reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)


def test_a_compound_part_file_gives_pickle_whole_objects_in_one_read_each() -> None:
    """Whoosh unpickles each posting block's header from the segment's file; pickle asks ``peek``
    first, so a header is one ``read`` (without it, one per opcode: ~20), and larger objects still
    read back whole, the file left just past each."""
    header = (64, 1234, 2.5, 0, 3, 1, 1.0, 0)  # a block header's shape: counts, ids, weights
    objects = [header, list(range(500)), {"a": b"x" * 1000, "b": 2.5}, "tail"]
    data = b"".join(pickle.dumps(o, p) for o, p in zip(objects, (2, 4, 2, 5)))
    file = _CountedReads(memoryview(data))
    assert pickle.load(file) == header and file.reads == 1
    assert [pickle.load(file) for _ in objects[1:]] == objects[1:]
    assert file.tell() == len(data)
