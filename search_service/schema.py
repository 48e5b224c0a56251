"""The Whoosh schema, and how a story becomes a Whoosh document.

Text fields index through :func:`search_service.analysis.tokens` directly
instead of Whoosh's token-object pipeline: the terms are identical (the query
parser uses the same function through ``NewsAnalyzer``) but indexing is several
times faster.  No term vectors are stored: the highlighter re-tokenises only
the few hits it shows, which costs less than vectors cost every document.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

from whoosh import fields
from whoosh.codec import whoosh3
from whoosh.filedb import compound, structfile
from whoosh.system import pack_uint

from .analysis import NewsAnalyzer, term_positions
from .stories import Story

#: Fields a query may name (``headline:word``); the rest are internal.
TEXT_FIELDS = ("headline", "body")


class NewsText(fields.TEXT):
    """A TEXT field (positions, for phrases) that indexes through the fast path."""

    def __init__(self, stored: bool = True) -> None:
        # A hyphenated word (Al-Haq) is two tokens; match them as a phrase.
        super().__init__(analyzer=NewsAnalyzer(), phrase=True, stored=stored, multitoken_query="phrase")

    def index(self, value: str, **kwargs: Any) -> Iterator[tuple[bytes, int, float, bytes]]:
        # Inlines formats.Positions.encode (a count, then pickled position deltas).
        boost = self.format.field_boost
        for term, poslist in term_positions(value).items():
            deltas = [poslist[0]]
            deltas.extend(b - a for a, b in zip(poslist, poslist[1:]))
            count = len(poslist)
            yield term.encode("utf-8"), count, count * boost, pack_uint(count) + pickle.dumps(deltas, 2)


#: Posting blocks uncompressed: zlib cost a tenth of indexing time and slows
#: every query's block reads, for an index about a third smaller.
CODEC = whoosh3.W3Codec(compression=0)


def build_schema() -> fields.Schema:
    """The index schema.  Headline weighting is applied at query time."""
    return fields.Schema(
        id=fields.ID(stored=True, unique=True),
        headline=NewsText(),
        body=NewsText(),
        published=fields.DATETIME(stored=True, sortable=True),
        path=fields.ID(stored=True),
        source=fields.STORED(),
        url=fields.STORED(),
    )


def to_document(story: Story, path: str = "") -> dict[str, Any]:
    """The Whoosh document for ``story``; ``path`` is the file it came from ("" for the API)."""
    doc: dict[str, Any] = {
        "id": story.id,
        "headline": story.headline,
        "body": story.body,
        "path": path,
        "source": story.source,
        "url": story.url,
    }
    if story.published is not None:
        doc["published"] = story.published
    return doc



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
            reader = reader.load()
        self._readers[fieldname] = reader
    return self._readers[fieldname]


whoosh3.W3PerDocReader._cached_reader = _cached_column_reader


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


compound.BufferFile = _CompoundPartFile
