"""Every use of Whoosh's private internals, fenced into one module.

The backend relies on whoosh-reloaded |version| beyond its public API in
the places below, each for a measured reason; ``tests/test_whoosh_internals.py``
checks every one (the name, its signature and the on-disk format), so an
upgrade that changes them fails there, loudly, and nowhere else.

* **Version.** Importing this module refuses any other whoosh-reloaded.
* **Fixes** (:func:`apply_fixes`, called when an index is opened): the
  per-document column cache and compound-file reads, replaced for speed.
* **Postings** read a block at a time (:func:`posting_blocks`; the
  positions of a block alone read again by :func:`block_values`), the
  one-byte field lengths and the ``published`` column read as arrays
  (:func:`length_codes`, :func:`datetime_column`), and a wildcard's
  expansions (:func:`expansions`).  Positions are ours, not Whoosh's
  (:class:`.schema.CompactPositions`: :func:`encode_positions`,
  :func:`decode_positions`, and :func:`decode_position_values`, which reads
  the positions of many postings with array operations).
* **Stored fields** pickled with protocol 5 and compressed with a dictionary
  of the segment's first stories (:func:`store_compactly`).
* **Postings written** from arrays in Whoosh's W3 layout (:class:`PostingsFiles`:
  its blocks, block info and ``W3TermInfo``), for :mod:`.segments`; a block
  of :data:`PACKED_BLOCK` postings or more holds its numbers in arrays and
  its positions as :class:`PackedPositions`, which Whoosh's matcher reads
  as it reads its own blocks and ours read without a Python object a posting.
* **Segments** written by several processes and committed together
  (:func:`commit_segments`, :func:`abandon_writer`, :func:`lock_fd`).
"""

from __future__ import annotations

import importlib.metadata
import io
import pickle
import struct
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import accumulate, groupby
from typing import Any

import numpy as np
from whoosh import columns
from whoosh.codec import whoosh3
from whoosh.codec.whoosh3 import WHOOSH3_HEADER_MAGIC
from whoosh.filedb import compound, filetables, structfile
from whoosh.index import FileIndex, clean_files
from whoosh.query import MultiTerm
from whoosh.reading import IndexReader
from whoosh.system import pack_int, pack_ushort
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
    indexing and once per hit while scoring, are loaded into memory.  Stored
    fields are decompressed by :class:`_StoredFieldsDecompressor`, which
    reads those :class:`_StoredFieldsWriter` compressed with a dictionary.
    """
    if fieldname not in self._readers:
        reader = self.column_reader(fieldname, column) if self.has_column(fieldname) else None
        if reader is not None and column is whoosh3.LENGTHS_COLUMN:
            reader = _loaded_bytes(reader)
        if reader is not None and column is whoosh3.STORED_COLUMN:
            compressed = reader._child  # the CompressedBytesColumn reader inside the PickleColumn reader
            compressed._decompress = _StoredFieldsDecompressor(compressed)
        self._readers[fieldname] = reader
    return self._readers[fieldname]


def _loaded_bytes(reader: Any) -> array:
    """A one-byte numeric column in memory, read in one piece (Whoosh's ``load()`` reads value by value:
    20 ms per searcher for the Reuters lengths, paid by the first query after every commit)."""
    data = array("B", reader._dbfile.get(reader._basepos, reader._count))
    data.extend([reader._default] * max(0, reader._doccount - reader._count))
    return data


#: What :meth:`_MemoryFile.peek` shows: more than a posting block's pickled header.
_PEEK = 256


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

    def peek(self, size: int = 0) -> bytes:
        """Up to :data:`_PEEK` bytes from the position on, not consumed (``size`` is only a hint, as
        for ``io.BufferedReader.peek``): pickle reads a block's header, some 60 bytes, in one call, not ~20."""
        return bytes(self._buf[self._pos : self._pos + _PEEK])

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


#: A posting block's first four bytes: its length (header and data), negated for a term's last block.
_BLOCK_LENGTH = struct.Struct("!i")


def posting_blocks(leaf: Any, fieldname: str, text: str | bytes) -> Iterator[tuple[tuple[int, int], Any, Any, Any]]:
    """One segment's postings of a term, a block at a time: ``(where, id deltas, weights, encoded values)``.

    ``where`` is where the block's data are in the postings file:
    ``(offset, size)``, the size negated when they are compressed
    (:func:`block_values` reads them again from there alone).  The id deltas
    are a tuple or an ``array``; ``weights`` None (all 1.0), one float for
    the whole block, or a sequence (a tuple, ``bytes`` or an ``array``); the
    values a tuple of ``bytes``, a :class:`PackedPositions`, or None.
    :func:`joined_ints`, :func:`weight_bytes` and :func:`block_positions`
    read any of them.
    Deleted documents are included: the caller masks them.

    The term's postings are read in one piece and their blocks unpickled
    from memory, as Whoosh's matcher reads them (a length, a pickled header,
    the pickled data), without a Python call per read: three times faster.
    """
    postfile, (start, length) = _postfile(leaf), _extent(leaf, fieldname, text)
    data = bytes(postfile.get(start, length))  # its header tag, then its blocks
    file = io.BufferedReader(io.BytesIO(data))  # which pickle peeks into, so reads each object in one call
    at = len(WHOOSH3_HEADER_MAGIC)
    while True:
        (size,) = _BLOCK_LENGTH.unpack_from(data, at)
        end = at + _BLOCK_LENGTH.size + abs(size)
        file.seek(at + _BLOCK_LENGTH.size)
        compression = pickle.load(file)[3]  # (postings, last id, highest weight, compression, lengths)
        begin = file.tell()
        block = pickle.loads(zlib.decompress(data[begin:end]) if compression else memoryview(data)[begin:end])
        yield ((start + begin, begin - end if compression else end - begin), *block)
        if size < 0:
            return
        at = end


def block_values(leaf: Any, fieldname: str, text: str | bytes, where: Iterable[tuple[int, int]]) -> Iterator[Any]:
    """The encoded values of the term's blocks at ``where`` (as :func:`posting_blocks` gives it), each
    read alone, as Whoosh's matcher reads a block's data (without its header, which only says where
    the next block is)."""
    postfile = _postfile(leaf)
    for offset, size in where:
        data = postfile.get(offset, abs(size))
        yield pickle.loads(zlib.decompress(data) if size < 0 else data)[2]


def _postfile(leaf: Any) -> Any:
    """A segment's postings file (Whoosh's ``StructFile``)."""
    return leaf._terms._postfile


def _extent(leaf: Any, fieldname: str, text: str | bytes) -> tuple[int, int]:
    """Where a term's postings are in its segment's postings file: ``(offset, length)``.

    Read from the term's ``W3TermInfo``, as Whoosh's ``W3TermsReader.matcher``
    does, without building the matcher (which reads the first block).
    Whoosh's codec inlines postings into the term info only for lists shorter
    than its ``inlinelimit``, which is 1 (none); raises Whoosh's
    ``TermNotFound`` as ``leaf.postings`` does.
    """
    offset, length = leaf.term_info(fieldname, text).extent()
    return offset, length[0] if isinstance(length, tuple) else length  # from_bytes leaves struct's 1-tuple


class PackedPositions:
    """A posting block's positions as this project writes them: how many each posting has, and all of them.

    Whoosh's writer pickles a block's values as a tuple of ``bytes`` (here
    each posting's positions as varint gaps, :func:`encode_positions`), an
    object a posting, which a reader unpickles and decodes one at a time.
    This holds the block's positions as two arrays of fixed-width integers
    (``bytes`` when a byte holds them, else an ``array``), which a reader
    joins and uses as they are (:func:`block_positions`).  Whoosh's matcher
    reads ``values[i]`` and gets the posting's encoded value, as from a
    tuple.  Blocks name this class by its module and name when pickled:
    moving it is a change of format.
    """

    __slots__ = ("_encoded", "counts", "positions")

    def __init__(self, counts: bytes | array, positions: bytes | array) -> None:
        self.counts = counts
        self.positions = positions
        self._encoded: tuple[bytes, list[int]] | None = None

    def __reduce__(self) -> tuple[type, tuple[bytes | array, bytes | array]]:
        return PackedPositions, (self.counts, self.positions)

    def __len__(self) -> int:
        return len(self.counts)

    def __getitem__(self, i: int) -> bytes:
        if self._encoded is None:  # the block's values encoded at once, for Whoosh's reads (merges)
            encoded, sizes = encode_position_values(joined_ints([self.counts]), joined_ints([self.positions]))
            self._encoded = encoded.tobytes(), [0, *accumulate(sizes.tolist())]
        data, ends = self._encoded
        return data[ends[i] : ends[i + 1]]

    def __iter__(self) -> Iterator[bytes]:
        return (self[i] for i in range(len(self)))


def block_positions(blocks: Sequence[Any], counts: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The positions of blocks' postings, end to end: ``(starts, flat)``, the positions of posting ``i``
    being ``flat[starts[i]:starts[i + 1]]``.

    ``blocks`` are the blocks' values as :func:`posting_blocks` gives
    them, ``counts`` their numbers of postings.  Packed blocks' positions
    are joined as they are; a run of blocks written as Whoosh writes them
    is decoded at once (:func:`decode_position_values`).
    """
    if blocks and all(isinstance(block, PackedPositions) for block in blocks):  # as this project writes them
        starts = np.zeros(sum(counts) + 1, dtype=np.int64)
        np.cumsum(joined_ints([block.counts for block in blocks]), out=starts[1:])
        return starts, joined_ints([block.positions for block in blocks])
    per_posting: list[np.ndarray] = []
    flats: list[np.ndarray] = []
    for packed, run in groupby(zip(blocks, counts), key=lambda block: isinstance(block[0], PackedPositions)):
        if packed:
            values = [v for v, _ in run]
            per_posting.append(joined_ints([v.counts for v in values]).astype(np.int64))
            flats.append(joined_ints([v.positions for v in values]))
        else:
            encoded = [value for v, n in run for value in (v if v is not None else (b"",) * n)]
            offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
            np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
            starts, flat = decode_position_values(b"".join(encoded), offsets[:-1], offsets[1:])
            per_posting.append(np.diff(starts))
            flats.append(flat)
    starts = np.zeros(sum(map(len, per_posting)) + 1, dtype=np.int64)
    if per_posting:
        np.cumsum(np.concatenate(per_posting), out=starts[1:])
    return starts, np.concatenate(flats) if flats else np.zeros(0, dtype=np.int64)


def weight_bytes(weights: Any, count: int) -> bytes | None:
    """A block's ``count`` weights (as :func:`posting_blocks` gives them) a byte each, or None when they
    are not all whole numbers under 256."""
    if weights is None:
        return b"\x01" * count
    if isinstance(weights, float):
        return bytes((int(weights),)) * count if weights.is_integer() and weights < 256 else None
    if isinstance(weights, (bytes, array)):
        return bytes(weights) if isinstance(weights, bytes) or weights.typecode == "B" else None
    try:
        return bytes(weights)  # a tuple of ints under 256 (as this project wrote them before, and small blocks)
    except (TypeError, ValueError):
        return None


def joined_ints(parts: Sequence[Any]) -> np.ndarray:
    """Blocks' sequences of integers (``array``, ``bytes`` or tuples), end to end, as one array."""
    kinds = {part.typecode if isinstance(part, array) else "B" if isinstance(part, bytes) else "" for part in parts}
    if len(kinds) == 1 and "" not in kinds:  # one block (most terms in a segment) viewed as it is
        return np.frombuffer(parts[0] if len(parts) == 1 else b"".join(parts), dtype=kinds.pop())
    return np.concatenate([np.frombuffer(p, np.uint8) if isinstance(p, bytes) else np.asarray(p) for p in parts])


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
    """A posting's value in :class:`.schema.CompactPositions`: the position gaps as LEB128 varints.

    The first gap is the first position; the count is the number of bytes
    under 128 (each ends a gap), so it is not written.
    """
    data, _ = encode_position_values(np.array([len(positions)]), np.asarray(positions, dtype=np.int64))
    return data.tobytes()


def encode_position_values(counts: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`encode_positions` of many postings at once: ``(bytes, each posting's byte count)``.

    Posting ``i`` has ``counts[i]`` (at least one) of the ascending positions in ``flat``, in order.
    """
    counts = np.asarray(counts, dtype=np.int64)
    flat = np.asarray(flat, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    gaps = np.empty_like(flat)
    gaps[0:1] = flat[0:1]
    np.subtract(flat[1:], flat[:-1], out=gaps[1:])
    gaps[starts] = flat[starts]
    width = np.ones(len(gaps), dtype=np.int64)
    for bits in (7, 14, 21, 28):
        width += gaps >= 1 << bits
    ends = np.cumsum(width)
    out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.uint8)
    begin = ends - width
    for byte in range(5):
        more = width > byte
        chunk = (gaps[more] >> (7 * byte)) & 0x7F
        out[begin[more] + byte] = chunk | np.where(width[more] > byte + 1, 0x80, 0)
    per_posting = np.add.reduceat(width, starts) if len(starts) else np.zeros(0, dtype=np.int64)
    return out, per_posting


def decode_positions(value: bytes) -> list[int]:
    """The positions of one encoded posting value (:func:`encode_positions`)."""
    _, flat = decode_position_values(value, np.array([0]), np.array([len(value)]))
    return flat.tolist()


def decode_position_values(data: bytes, begins: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the encoded values ``data[begins[i]:ends[i]]`` (:func:`encode_positions`), as arrays.

    ``(starts, flat)``: the positions of value ``i`` are
    ``flat[starts[i]:starts[i + 1]]``.  Every varint of every value is read
    with a few array operations over all of them at once.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    begins = np.asarray(begins, dtype=np.int64)
    sizes = np.asarray(ends, dtype=np.int64) - begins
    total = int(sizes.sum())
    first = np.cumsum(sizes) - sizes  # where each value starts in ``picked``
    if total == len(raw) and np.array_equal(begins, first):
        picked = raw  # every value, in order (a term's blocks read whole)
    else:
        picked = raw[np.repeat(begins - first, sizes) + np.arange(total)] if total else raw[:0]
    gap_ends = np.flatnonzero(picked < 0x80)  # the last byte of each gap
    starts = np.searchsorted(gap_ends, np.append(first, total))  # gaps before each value
    counts = np.diff(starts)
    gap_starts = np.append(0, gap_ends[:-1] + 1) if len(gap_ends) else gap_ends
    gaps = (picked[gap_starts] & 0x7F).astype(np.int64)
    more = np.flatnonzero(gap_ends > gap_starts)  # gaps of two bytes or more (at most five)
    for byte in range(1, 5):
        more = more[gap_ends[more] >= gap_starts[more] + byte]
        gaps[more] |= (picked[gap_starts[more] + byte] & 0x7F).astype(np.int64) << (7 * byte)
    running = np.cumsum(gaps)
    before = np.concatenate(([0], running))[starts[:-1]]
    return starts, running - np.repeat(before, counts)


# ---------------------------------------------------------------- writing


#: A segment's first stored stories, this many bytes of them pickled, are the preset dictionary
#: (``zdict``) its later stories are compressed with: zlib's window, so a longer one would not be used.
_DICTIONARY_BYTES = 32 * 1024
#: The bit of a zlib stream's second byte (FLG) set when it was compressed with a preset dictionary.
_FDICT = 0x20
#: zlib's level for stored stories: with the dictionary, level 3 is as small as 6 and twice as fast.
_STORED_LEVEL = 3


class _StoredFieldsWriter:
    """The ``_stored`` column's writer: stories pickled with protocol 5, compressed with a dictionary.

    Whoosh's ``PickleColumn`` pickles with protocol 2, which spells bytes and
    dates as calls, then compresses each story alone at level 3: a story of
    2 KB has little of itself to refer back to.  Here the first stories of
    the segment (the first :data:`_DICTIONARY_BYTES` of them, pickled) are
    compressed alone and become the preset dictionary of the others, which
    start with the words, names and field layout of the archive already
    seen: 27% smaller on the million-story corpus (881 bytes a story
    against 1,203), for the same time (a compressor primed with the
    dictionary once, copied for each story).  The dictionary is not written
    anywhere: :class:`_StoredFieldsDecompressor` reads it back from the same
    first stories.  Values are added compressed to the
    ``CompressedBytesColumn`` writer's own ``VarBytesColumn`` column.
    """

    def __init__(self, compressed: Any) -> None:
        self._column = compressed  # the CompressedBytesColumn writer inside Whoosh's PickleColumn writer
        self._first: list[bytes] = []
        self._primed: Any = None  # a compressor fed the dictionary, once there is one

    def add(self, docnum: int, fields: dict[str, Any]) -> None:
        data = pickle.dumps(fields, 5)
        if self._primed is None:
            packed = zlib.compress(data, _STORED_LEVEL)
            self._first.append(data)
            if sum(map(len, self._first)) >= _DICTIONARY_BYTES:
                dictionary = b"".join(self._first)[:_DICTIONARY_BYTES]
                self._primed = zlib.compressobj(_STORED_LEVEL, zdict=dictionary)
                self._first = []
        else:
            compressor = self._primed.copy()
            packed = compressor.compress(data) + compressor.flush()
        columns.VarBytesColumn.Writer.add(self._column, docnum, packed)

    def finish(self, doccount: int) -> None:
        self._column.finish(doccount)


class _StoredFieldsDecompressor:
    """Decompresses a segment's stored stories, those :class:`_StoredFieldsWriter` compressed with a
    dictionary too (zlib's FDICT flag): the dictionary is read from the segment's first stories once."""

    def __init__(self, column: Any) -> None:
        self._column = column  # the segment's CompressedBytesColumn reader
        self._dictionary: bytes | None = None

    def __call__(self, value: bytes) -> bytes:
        if len(value) < 2 or not value[1] & _FDICT:
            return zlib.decompress(value)
        if self._dictionary is None:
            self._dictionary = self._first_stories()
        decompressor = zlib.decompressobj(zdict=self._dictionary)
        return decompressor.decompress(value) + decompressor.flush()

    def _first_stories(self) -> bytes:
        first: list[bytes] = []
        size = 0
        for docnum in range(len(self._column)):
            if size >= _DICTIONARY_BYTES:
                break
            raw = columns.VarBytesColumn.Reader.__getitem__(self._column, docnum)
            if raw:  # a document without stored fields has no value, and was not added
                first.append(zlib.decompress(raw))
                size += len(first[-1])
        return b"".join(first)[:_DICTIONARY_BYTES]


def store_compactly(perdoc: Any) -> None:
    """Make a new ``W3PerDocWriter`` write stored fields through :class:`_StoredFieldsWriter`."""
    perdoc._colwriters["_stored"] = _StoredFieldsWriter(perdoc._colwriters["_stored"]._child)


#: Blocks of at least this many postings are written packed (:class:`PackedPositions`, integers in
#: arrays); smaller ones, a rare word's only block or a term's last, as Whoosh writes them (tuples),
#: where naming the classes would cost more bytes than packing saves.
PACKED_BLOCK = 32


class _BlockColumn:
    """A column of non-negative integers cut into blocks (block ``i`` from ``opens[i]`` to the next), each
    block's as the narrowest unsigned type its largest needs: ``bytes`` when a byte holds them (which
    Whoosh indexes to ints as it does a tuple), else an ``array`` (``H`` or ``I``)."""

    def __init__(self, values: np.ndarray, opens: np.ndarray) -> None:
        largest = np.maximum.reduceat(values, opens)
        self.codes = np.where(largest < 1 << 8, "B", np.where(largest < 1 << 16, "H", "I")).tolist()
        self._bytes = {code: values.astype(code).tobytes() for code in set(self.codes)}

    def block(self, blk: int, begin: int, end: int, always_array: bool = False) -> bytes | array:
        code = self.codes[blk]
        size = np.dtype(code).itemsize
        data = self._bytes[code][begin * size : end * size]
        return data if code == "B" and not always_array else array(code, data)


#: The opening and closing of a block's pickled ``(ids, weights, values)`` (protocol 4, no memo).
_BLOCK_OPEN = b"\x80\x04("
_BLOCK_CLOSE = b"\x87."
_TUPLE_OPEN, _TUPLE_CLOSE = b"(", b"t"
_BININT1, _BININT2, _BININT = (ord(c) for c in "KMJ")


def _pickled_float(value: float) -> bytes:
    return b"G" + struct.pack(">d", value)


def _pickled_ints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``values`` (0 <= v < 2**31) as pickle's ``BININT1``/``BININT2``/``BININT``: ``(bytes, where each ends)``."""
    width = np.where(values < 256, 1, np.where(values < 65536, 2, 4))
    ends = np.cumsum(width + 1)
    out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.uint8)
    begin = ends - width - 1
    out[begin] = np.select([width == 1, width == 2], [_BININT1, _BININT2], _BININT)
    for byte in range(4):
        more = width > byte
        out[begin[more] + 1 + byte] = (values[more] >> (8 * byte)) & 0xFF
    return out, ends


def _pickled_bytes(data: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive byte strings of ``data`` (``sizes`` each) as pickle's ``SHORT_BINBYTES``/``BINBYTES``."""
    head = np.where(sizes < 256, 2, 5)
    ends = np.cumsum(head + sizes)
    out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.uint8)
    begin = ends - sizes - head
    out[begin] = np.where(head == 2, ord("C"), ord("B"))
    for byte in range(4):
        more = (head == 5) | (byte == 0)
        out[begin[more] + 1 + byte] = (sizes[more] >> (8 * byte)) & 0xFF
    first = np.cumsum(sizes) - sizes
    out[np.repeat(begin + head - first, sizes) + np.arange(len(data))] = data
    return out, ends


class _BlockData:
    """The pickled ``(ids, weights, values)`` of the blocks of :meth:`PostingsFiles._write_terms`' postings.

    Blocks of :data:`PACKED_BLOCK` postings or more are packed, the others
    written as Whoosh writes them (tuples of ints and ``bytes``); a block whose
    weights are all the same has None (all 1.0) or that one float, as Whoosh's.
    """

    def __init__(
        self,
        deltas: np.ndarray,
        weights: np.ndarray,
        values: tuple[np.ndarray, np.ndarray] | None,
        opens: np.ndarray,
        bounds: list[int],
    ) -> None:
        self._bounds = bounds
        self._weights = weights
        self._same = (np.maximum.reduceat(weights, opens) == np.minimum.reduceat(weights, opens)).tolist()
        self._first_weight = weights[opens].tolist()
        self._ids = _BlockColumn(deltas, opens)
        ids, id_ends = _pickled_ints(deltas)
        self._id_at, self._id_bytes = np.append(0, id_ends)[bounds].tolist(), ids.tobytes()
        self._whole = bool(np.all(weights == np.round(weights)) and weights.max() < 2**31)
        if self._whole:
            self._packed_weights = _BlockColumn(weights.astype(np.int64), opens)
            stream, ends = _pickled_ints(weights.astype(np.int64))
            self._w_at, self._w_bytes = np.append(0, ends)[bounds].tolist(), stream.tobytes()
        self._values = values is not None
        if values is not None:
            offsets = np.zeros(len(values[1]) + 1, dtype=np.int64)
            np.cumsum(values[1], out=offsets[1:])
            starts, flat = decode_position_values(values[0].tobytes(), offsets[:-1], offsets[1:])
            self._counts = _BlockColumn(np.diff(starts), opens)
            self._positions = _BlockColumn(flat, starts[opens])
            self._position_at = starts[bounds].tolist()
            stream, ends = _pickled_bytes(*values)
            self._v_at, self._v_bytes = np.append(0, ends)[bounds].tolist(), stream.tobytes()

    def __call__(self, blk: int) -> bytes:
        begin, end = self._bounds[blk], self._bounds[blk + 1]
        return self._packed(blk, begin, end) if end - begin >= PACKED_BLOCK else self._tuples(blk, begin, end)

    def _packed(self, blk: int, begin: int, end: int) -> bytes:
        weights: Any
        if self._same[blk]:
            weights = None if self._first_weight[blk] == 1.0 else self._first_weight[blk]
        elif self._whole:
            weights = self._packed_weights.block(blk, begin, end)
        else:
            weights = tuple(self._weights[begin:end].tolist())
        values = None
        if self._values:
            at, to = self._position_at[blk], self._position_at[blk + 1]
            values = PackedPositions(self._counts.block(blk, begin, end), self._positions.block(blk, at, to))
        return pickle.dumps((self._ids.block(blk, begin, end, always_array=True), weights, values), 4)

    def _tuples(self, blk: int, begin: int, end: int) -> bytes:
        if self._same[blk]:
            weights = b"N" if self._first_weight[blk] == 1.0 else _pickled_float(self._first_weight[blk])
        elif self._whole:
            weights = b"".join((_TUPLE_OPEN, self._w_bytes[self._w_at[blk] : self._w_at[blk + 1]], _TUPLE_CLOSE))
        else:
            weights = b"".join((_TUPLE_OPEN, *map(_pickled_float, self._weights[begin:end].tolist()), _TUPLE_CLOSE))
        values = (
            b"".join((_TUPLE_OPEN, self._v_bytes[self._v_at[blk] : self._v_at[blk + 1]], _TUPLE_CLOSE))
            if self._values
            else b"N"
        )
        ids = self._id_bytes[self._id_at[blk] : self._id_at[blk + 1]]
        return b"".join((_BLOCK_OPEN, ids, _TUPLE_CLOSE, weights, values, _BLOCK_CLOSE))


#: ``W3TermInfo.to_bytes()`` of postings not inlined: its ``_struct`` (``!BfIBBfII``: flags, weight,
#: documents, shortest and longest length as bytes, highest weight, first and last document), then
#: where the postings are (``!q`` offset, ``!i`` length).
_TERM_INFO = np.dtype(
    [
        ("inlined", "u1"),
        ("weight", ">f4"),
        ("df", ">u4"),
        ("minlength", "u1"),
        ("maxlength", "u1"),
        ("maxweight", ">f4"),
        ("minid", ">u4"),
        ("maxid", ">u4"),
        ("offset", ">i8"),
        ("length", ">i4"),
    ]
)


#: Postings encoded at once by :meth:`PostingsFiles.write_field` (its arrays take some 100 bytes a posting).
_PIECE = 1 << 20


class PostingsFiles:
    """A new segment's term index and postings file, written a field and term at a time, as Whoosh's
    ``W3FieldWriter`` writes them (blocks of the segment's codec's size; ``W3TermInfo`` per term), from arrays.

    What differs from Whoosh's writer is invisible to its readers: the blocks are pickled with protocol 4
    (bytes as bytes, where protocol 2 spells each one as a call to ``codecs.encode``), weights that
    are whole numbers as integers, and blocks of :data:`PACKED_BLOCK` postings or more packed
    (:class:`_BlockData`).
    """

    def __init__(self, storage: Any, segment: Any) -> None:
        self._tindex = filetables.OrderedHashWriter(segment.create_file(storage, whoosh3.W3Codec.TERMS_EXT))
        self._fieldmap: dict[str, int] = {}
        self._tindex.extras["fieldmap"] = self._fieldmap
        self._postfile = segment.create_file(storage, whoosh3.W3Codec.POSTS_EXT)
        self._blocklimit = segment.codec()._blocklimit

    def write_field(
        self,
        fieldname: str,
        terms: list[bytes],
        df: np.ndarray,
        docs: np.ndarray,
        weights: np.ndarray,
        length_bytes: np.ndarray,
        values: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    ) -> None:
        """Write a field's postings: ``terms`` ascending, ``df[t]`` postings each, in term then document order.

        ``weights`` per posting; ``length_bytes`` the one-byte length of each posting's document in this
        field (0: none); ``values`` the postings' encoded values, or None: ``(data, begins, sizes)``,
        posting ``i``'s value being ``data[begins[i]:begins[i] + sizes[i]]``.  Written a piece of at
        most :data:`_PIECE` postings at a time (or one term), which bounds the memory the encoding takes.
        """
        if not len(docs):
            return  # as Whoosh: a field with no postings in the segment is not in its field map
        fieldid = self._fieldmap[fieldname] = len(self._fieldmap)
        key_prefix = pack_ushort(fieldid)
        ends = np.cumsum(df)
        first = 0
        while first < len(terms):
            begin = int(ends[first - 1]) if first else 0
            last = max(first + 1, int(np.searchsorted(ends, begin + _PIECE, side="right")))
            end = int(ends[last - 1])
            piece = None
            if values is not None:
                data, begins, sizes = values
                size = sizes[begin:end].astype(np.int64)
                moved = np.cumsum(size) - size
                piece = (data[np.repeat(begins[begin:end] - moved, size) + np.arange(int(size.sum()))], size)
            self._write_terms(
                [key_prefix + term for term in terms[first:last]],
                df[first:last],
                docs[begin:end].astype(np.int64),
                weights[begin:end].astype(np.float64),
                length_bytes[begin:end],
                piece,
            )
            first = last

    def _write_terms(
        self,
        keys: list[bytes],
        df: np.ndarray,
        docs: np.ndarray,
        weights: np.ndarray,
        length_bytes: np.ndarray,
        values: tuple[np.ndarray, np.ndarray] | None,
    ) -> None:
        n = len(docs)
        limit = self._blocklimit
        term_start = np.cumsum(df) - df
        opens = np.flatnonzero((np.arange(n) - np.repeat(term_start, df)) % limit == 0)
        bounds = np.append(opens, n).tolist()
        blocks_of = np.append(0, np.cumsum((df + limit - 1) // limit)).tolist()
        deltas = docs.copy()
        deltas[1:] -= docs[:-1]
        deltas[opens] = docs[opens]
        block_data = _BlockData(deltas, weights, values, opens, bounds)
        no_length = np.where(length_bytes > 0, length_bytes, 256).astype(np.int64)  # 256: none, above any byte
        last_doc = docs[np.append(opens[1:], n) - 1].tolist()
        minlen_l = np.minimum.reduceat(no_length, opens).tolist()
        maxlen_l = np.maximum.reduceat(length_bytes, opens).tolist()
        maxw_l = np.maximum.reduceat(weights, opens).tolist()
        postfile, tindex = self._postfile, self._tindex
        offsets = [postfile.tell()]
        written: list[bytes] = []
        for t in range(len(keys)):
            first_block, end_block = blocks_of[t], blocks_of[t + 1]
            parts = [WHOOSH3_HEADER_MAGIC]
            for blk in range(first_block, end_block):
                data = block_data(blk)
                minlen = minlen_l[blk]
                info = pickle.dumps(
                    (
                        bounds[blk + 1] - bounds[blk],
                        last_doc[blk],
                        float(maxw_l[blk]),
                        0,
                        0 if minlen > 255 else minlen,
                        maxlen_l[blk],
                    ),
                    2,
                )
                size = len(info) + len(data)
                parts += (pack_int(-size if blk == end_block - 1 else size), info, data)
            posting = b"".join(parts)
            written.append(posting)
            offsets.append(offsets[-1] + len(posting))
            if len(written) >= 4096:
                postfile.write(b"".join(written))
                written = []
        postfile.write(b"".join(written))
        infos = np.zeros(len(keys), dtype=_TERM_INFO)
        infos["weight"] = np.add.reduceat(weights.astype(np.float32).astype(np.float64), term_start)
        infos["df"] = df
        term_minlen = np.minimum.reduceat(no_length, term_start)
        infos["minlength"] = np.where(term_minlen > 255, 0, term_minlen)
        infos["maxlength"] = np.maximum.reduceat(length_bytes, term_start)
        infos["maxweight"] = np.maximum.reduceat(weights, term_start)
        infos["minid"] = docs[term_start]
        infos["maxid"] = docs[term_start + df - 1]
        infos["offset"] = offsets[:-1]
        infos["length"] = np.diff(offsets)
        packed, size = infos.tobytes(), _TERM_INFO.itemsize
        for t, key in enumerate(keys):
            tindex.add(key, packed[t * size : (t + 1) * size])

    def close(self) -> None:
        self._tindex.close()
        self._postfile.close()


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
    "PostingsFiles",
    "abandon_writer",
    "apply_fixes",
    "block_values",
    "commit_segments",
    "datetime_column",
    "decode_position_values",
    "decode_positions",
    "encode_position_values",
    "encode_positions",
    "expansions",
    "length_codes",
    "lock_fd",
    "posting_blocks",
    "store_compactly",
]
