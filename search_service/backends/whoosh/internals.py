"""Every use of Whoosh's private internals, fenced into one module.

The backend relies on whoosh-reloaded |version| beyond its public API in
the places below, each for a measured reason; ``tests/test_whoosh_internals.py``
checks every one (the name, its signature and the on-disk format), so an
upgrade that changes them fails there, loudly, and nowhere else.

* **Version.** Importing this module refuses any other whoosh-reloaded.
* **Fixes** (:func:`apply_fixes`, called when an index is opened): the
  per-document column cache and compound-file reads, replaced for speed.
* **Postings** read a block at a time (:func:`posting_blocks`), positions
  in Whoosh's ``Positions`` encoding (:func:`encode_positions`,
  :func:`decode_positions`), the one-byte field lengths and the
  ``published`` column read as arrays (:func:`length_codes`,
  :func:`datetime_column`), and a wildcard's expansions (:func:`expansions`).
* **Segments** written by several processes and committed together
  (:func:`unlocked_segment_writer`, :func:`finish_segment`,
  :func:`discard_segment`, :func:`commit_segments`, :func:`abandon_writer`,
  :func:`lock_fd`).
"""

from __future__ import annotations

import importlib.metadata
import itertools
import pickle
from array import array
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from whoosh.codec import whoosh3
from whoosh.filedb import compound, structfile
from whoosh.index import FileIndex, clean_files
from whoosh.matching import FilterMatcher
from whoosh.query import MultiTerm
from whoosh.reading import IndexReader
from whoosh.system import pack_uint
from whoosh.writing import SegmentWriter

#: The whoosh-reloaded release everything here was written and tested against.
SUPPORTED_WHOOSH = "2.7.5"


def _check_version() -> None:
    installed = importlib.metadata.version("whoosh-reloaded")
    if installed != SUPPORTED_WHOOSH:
        raise ImportError(
            f"search_service's Whoosh engine needs whoosh-reloaded {SUPPORTED_WHOOSH}, but {installed} is "
            f"installed: run `pip install whoosh-reloaded=={SUPPORTED_WHOOSH}` (or `pip install -e .` in the repo)"
        )


_check_version()


# ---------------------------------------------------------------- fixes

#: Whoosh's own method, kept for the contract tests (its signature is what the fix must match).
_WHOOSH_CACHED_READER = whoosh3.W3PerDocReader._cached_reader


def _cached_column_reader(self, fieldname, column):  # type: ignore[no-untyped-def]
    """Whoosh's ``W3PerDocReader._cached_reader``, with two fixes for speed.

    A missing column is remembered too (unpatched, every posting of a field
    without lengths, such as ``id``, cost a ``stat()``: a quarter of indexing
    time), and the one-byte field lengths, read once per posting while
    indexing and once per hit while scoring, are loaded into memory.
    """
    if fieldname not in self._readers:
        reader = self.column_reader(fieldname, column) if self.has_column(fieldname) else None
        if reader is not None and column is whoosh3.LENGTHS_COLUMN:
            reader = _loaded_bytes(reader)
        self._readers[fieldname] = reader
    return self._readers[fieldname]


def _loaded_bytes(reader: Any) -> array:
    """A one-byte numeric column in memory, read in one piece (Whoosh's ``load()`` reads value by value:
    20 ms per searcher for the Reuters lengths, paid by the first query after every commit)."""
    data = array("B", reader._dbfile.get(reader._basepos, reader._count))
    data.extend([reader._default] * max(0, reader._doccount - reader._count))
    return data


class _MemoryFile:
    """A read-only file over a memoryview that copies only what is read.

    Whoosh opens each part of a compound segment as ``BytesIO(mmap slice)``,
    which copies the whole part: every searcher (one per server thread)
    held its own ~90 MB copy of the Reuters postings and took ~0.2 s to open.
    """

    def __init__(self, buf: memoryview) -> None:
        self._buf = buf
        self._pos = 0

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._buf) if size is None or size < 0 else min(len(self._buf), self._pos + size)
        data = bytes(self._buf[self._pos : end])
        self._pos = max(self._pos, end)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        limit = len(self._buf) if size is None or size < 0 else min(len(self._buf), self._pos + size)
        end = self._pos
        while end < limit:
            chunk = bytes(self._buf[end : min(end + 4096, limit)])
            newline = chunk.find(b"\n")
            end += newline + 1 if newline != -1 else len(chunk)
            if newline != -1:
                break
        return self.read(end - self._pos)

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = max(0, (0, self._pos, len(self._buf))[whence] + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._buf = memoryview(b"")


class _CompoundPartFile(structfile.BufferFile):
    """``BufferFile`` for a part of a compound segment, reading through :class:`_MemoryFile`."""

    def __init__(self, buf: memoryview, name: str | None = None, onclose: Any = None) -> None:
        super().__init__(b"", name=name, onclose=onclose)
        self._buf = buf
        self.file = _MemoryFile(buf)


def apply_fixes() -> None:
    """Install the fixes (idempotent); called before any index is opened or written."""
    whoosh3.W3PerDocReader._cached_reader = _cached_column_reader
    compound.BufferFile = _CompoundPartFile


# ---------------------------------------------------------------- reading


def posting_blocks(leaf: Any, fieldname: str, text: str | bytes) -> Iterator[tuple[Any, Any, list[bytes] | None]]:
    """One segment's postings of a term, a block at a time: ``(id deltas, weights, encoded values)``.

    ``weights`` is None (all 1.0), one float for the whole block, or a
    sequence.  Deleted documents are included: the caller masks them.
    """
    matcher = leaf.postings(fieldname, text)
    if isinstance(matcher, FilterMatcher):
        matcher = matcher.child  # a segment with deletions wraps the block matcher
    while matcher.is_active():
        if matcher._data is None:
            matcher._read_data()
        yield matcher._data
        matcher._next_block()


def length_codes(leaf: Any, fieldname: str) -> np.ndarray | None:
    """A segment's one-byte encoded lengths of ``fieldname`` (``byte_to_length`` decodes), or None."""
    column = leaf._perdoc._cached_reader(f"_{fieldname}_len", whoosh3.LENGTHS_COLUMN)
    return None if column is None else np.frombuffer(bytes(column), dtype=np.uint8)


def datetime_column(leaf: Any, fieldname: str) -> np.ndarray:
    """A segment's DATETIME column as Whoosh's ticks, one read: big-endian unsigned 64-bit on disk."""
    if not leaf.has_column(fieldname):
        return np.zeros(0, dtype=np.uint64)
    column = leaf.column_reader(fieldname, translate=False)
    raw = column._dbfile.get(column._basepos, column._count * column._fixedlen)
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64)


def expansions(q: MultiTerm, reader: IndexReader) -> Iterator[bytes]:
    """The indexed words a wildcard or word range stands for."""
    return q._btexts(reader)


def encode_positions(positions: list[int]) -> bytes:
    """A posting's value in Whoosh's ``Positions`` format: the count, then the pickled position gaps."""
    deltas = [positions[0]]
    deltas.extend(b - a for a, b in itertools.pairwise(positions))
    return pack_uint(len(positions)) + pickle.dumps(deltas, 2)


def decode_positions(values: list[bytes]) -> list[list[int]]:
    """The position gaps of each encoded posting value (:func:`encode_positions`)."""
    return [pickle.loads(v[4:] if v.endswith(b".") else v[4:] + b".") for v in values]


# ---------------------------------------------------------------- writing


def unlocked_segment_writer(ix: FileIndex, codec: Any) -> SegmentWriter:
    """A writer for a new segment that takes no lock: the parent process holds it for all workers."""
    return SegmentWriter(ix, _lk=False, codec=codec)


def finish_segment(writer: SegmentWriter) -> Any:
    """Write the writer's documents out as a segment, uncommitted; return the segment."""
    return writer._finalize_segment()


def discard_segment(writer: SegmentWriter) -> None:
    """Close the writer's files without committing (not ``cancel()``: that deletes the shared temp folder)."""
    writer._close_segment()


def commit_segments(writer: SegmentWriter, segments: list[Any], prepare: Callable[[list[Any]], None]) -> None:
    """Commit the writer's old segments (deletions applied), its own, and ``segments`` in one TOC write.

    ``prepare`` is called with every segment of the commit just before the
    TOC is written (the writer's own segment holds the stories of any
    segments Whoosh merged).
    """
    kept = writer._merge_segments(None, False, True)
    if writer._added:
        kept.append(writer._finalize_segment())
    else:
        writer._close_segment()
    prepare(kept + segments)
    writer._commit_toc(kept + segments)
    writer._finish()


def lock_fd(writer: SegmentWriter) -> int:
    """The file descriptor of the writer's index lock (a forked worker closes its copy)."""
    return int(writer.writelock.fd)


def abandon_writer(ix: FileIndex, writer: SegmentWriter) -> None:
    """Undo a failed run: delete its uncommitted segment files, then release the lock.

    Not ``writer.cancel()``: that first flushes the writer's own segment,
    which on a full disk fails again, leaving the lock held and the disk
    full of orphaned segments.
    """
    if not writer.is_closed:
        try:
            writer._close_segment()
        except OSError:
            pass
        clean_files(ix.storage, ix.indexname, ix.latest_generation(), ix._segments())
        writer._finish()


__all__ = [
    "SUPPORTED_WHOOSH",
    "abandon_writer",
    "apply_fixes",
    "commit_segments",
    "datetime_column",
    "decode_positions",
    "discard_segment",
    "encode_positions",
    "expansions",
    "finish_segment",
    "length_codes",
    "lock_fd",
    "posting_blocks",
    "unlocked_segment_writer",
]
