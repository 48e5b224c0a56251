"""Fixes to Whoosh (whoosh-reloaded 2.7.5, pinned), applied by :func:`apply`.

Each replaces one method or class of Whoosh's with a compatible version; the
reasons are measured.  :mod:`.schema` applies them on import, so every index
this package opens or writes has them (the tests run with them in place).
"""

from __future__ import annotations

from array import array
from typing import Any

from whoosh.codec import whoosh3
from whoosh.filedb import compound, structfile


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


def apply() -> None:
    """Install the fixes (idempotent)."""
    whoosh3.W3PerDocReader._cached_reader = _cached_column_reader
    compound.BufferFile = _CompoundPartFile
