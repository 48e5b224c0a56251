"""New segments built from arrays: stories analysed, their postings held as NumPy arrays, sorted once, written.

Whoosh's ``SegmentWriter`` puts every posting through its pool (a Python
call and a tuple each, runs sorted and spilled to disk, then merged back)
and through its postings writer (another call each, and each posting's
positions pickled).  A :class:`SegmentBuilder` keeps a segment's postings
as arrays while stories are added (term numbers, documents, weights, the
encoded positions), sorts them with NumPy when the segment is written, and
writes them a term at a time in Whoosh's W3 layout
(:class:`.internals.PostingsFiles`): the postings Whoosh's writer would
write, read the same by Whoosh's readers and ours, so the same scores (a
block of many postings packed in arrays, which ours read a block at a time).
Nothing is spilled: a builder holding :data:`MAX_POSTINGS` postings says it
is :attr:`~SegmentBuilder.full`, and the indexer writes the segment and
starts another.  The per-document columns (stored fields, field lengths,
dates) go through Whoosh's own per-document writer, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import chain
from typing import Any

import numpy as np
from whoosh.index import FileIndex
from whoosh.util.numeric import length_to_byte

from ...analysis import term_positions
from .internals import PostingsFiles, encode_position_values, store_compactly
from .schema import CODEC, NewsText

#: Postings a segment holds before it is written: about 19 bytes each while held, some 60 at the
#: peak while they are sorted and written; 32 million is about 150,000 stories of 300 words.  Each
#: query pays a fixed cost per segment and term: at a million stories, 32 million (8 segments, not
#: 14 with 16 million) took an indexing worker's peak RSS from 2.45 to 2.75 GiB and HTTP phrases
#: from 18.5 to 14.9 ms at the median, 16 clients from 119 to 172 req/s.
MAX_POSTINGS = 32_000_000
#: Stories whose postings are gathered in Python lists before they become arrays.
_CHUNK = 500


class _Terms(dict[Any, int]):
    """Term -> its number in the segment, numbered as first seen."""

    def __missing__(self, key: Any) -> int:
        number = self[key] = len(self)
        return number


class _FieldPostings:
    """One field's postings in a segment being built, in the order added."""

    def __init__(self, positions: bool) -> None:
        self.terms = _Terms()
        self.positions = positions
        self.count = 0
        #: arrays of the postings sealed so far, by column: terms, documents, weights, positions, their sizes
        self.columns: tuple[list[np.ndarray], ...] = ([], [], [], [], [])
        self._terms: list[int] = []
        self._docs: list[int] = []
        self._weights: list[float] = []
        self._flat: list[int] = []

    def add_positions(self, docnum: int, found: Mapping[str, list[int]]) -> int:
        """Add a story's ``term -> positions``; return the field's length (its tokens)."""
        self._terms.extend(map(self.terms.__getitem__, found))
        counts = list(map(len, found.values()))
        self._weights.extend(counts)
        self._flat.extend(chain.from_iterable(found.values()))
        self._docs.extend([docnum] * len(counts))
        self.count += len(counts)
        return sum(counts)

    def add_terms(self, docnum: int, items: Iterable[tuple[bytes, int, float, bytes]]) -> int:
        """Add a story's postings as the field's ``index()`` gives them (no values); return their frequency."""
        length = 0
        for text, freq, weight, value in items:
            if value:
                raise ValueError("a field without positions has posting values")
            self._terms.append(self.terms[text])
            self._weights.append(weight)
            self._docs.append(docnum)
            length += freq
            self.count += 1
        return length

    def seal(self) -> None:
        """Turn the postings gathered in lists into arrays."""
        if not self._terms:
            return
        terms, docs, weights, data, sizes = self.columns
        terms.append(np.array(self._terms, dtype=np.int32))
        docs.append(np.array(self._docs, dtype=np.int32))
        weights.append(np.array(self._weights, dtype=np.float32))  # as Whoosh keeps them
        if self.positions:
            encoded, per_posting = encode_position_values(weights[-1], np.array(self._flat, dtype=np.int64))
            data.append(encoded)
            sizes.append(per_posting.astype(np.int32))
        self._terms, self._docs, self._weights, self._flat = [], [], [], []

    def _joined(self, column: int) -> np.ndarray:
        """One column's arrays joined (and let go of)."""
        joined = np.concatenate(self.columns[column])
        self.columns[column].clear()
        return joined

    def write(self, files: PostingsFiles, name: str, boost: float, length_bytes: np.ndarray) -> None:
        """Sort the postings by term (then document, as added) and write them."""
        self.seal()
        if not self.columns[0]:
            return
        keys = [t.encode("utf-8") if isinstance(t, str) else t for t in self.terms]
        by_key = np.argsort(np.array(keys, dtype=object), kind="stable")
        rank = np.empty(len(keys), dtype=np.int32)
        rank[by_key] = np.arange(len(keys), dtype=np.int32)
        ranks = rank[self._joined(0)]
        order = np.argsort(ranks, kind="stable")
        df = np.bincount(ranks, minlength=len(keys))
        del ranks
        docs = self._joined(1)[order]
        weights = self._joined(2)[order] * np.float32(boost)
        values = None
        if self.positions:
            sizes = self._joined(4)
            begins = (np.cumsum(sizes, dtype=np.int64) - sizes)[order]
            values = (self._joined(3), begins, sizes[order])
        del order
        files.write_field(name, [keys[i] for i in by_key.tolist()], df, docs, weights, length_bytes[docs], values)


class SegmentBuilder:
    """Stories added as Whoosh documents (:func:`.schema.to_document`) into a new, uncommitted segment."""

    def __init__(self, ix: FileIndex, max_postings: int | None = None) -> None:
        self._ix = ix
        self._schema = ix.schema
        self._max_postings = MAX_POSTINGS if max_postings is None else max_postings
        self.segment = CODEC.new_segment(ix.storage, ix.indexname)
        self._perdoc = CODEC.per_document_writer(ix.storage, self.segment)
        store_compactly(self._perdoc)
        self.doc_count = 0
        indexed = [name for name in self._schema.names() if self._schema[name].indexed]
        self._fields = {name: _FieldPostings(isinstance(self._schema[name], NewsText)) for name in indexed}
        self._lengths: dict[str, list[int]] = {name: [] for name in indexed}

    @property
    def full(self) -> bool:
        """Whether the segment holds enough postings to be written."""
        return sum(f.count for f in self._fields.values()) >= self._max_postings

    def add(self, document: Mapping[str, Any], analysed: Mapping[str, Mapping[str, list[int]]] | None = None) -> None:
        """Add one document (field -> value), as Whoosh's ``add_document`` would.

        ``analysed`` may give a text field's ``term -> positions`` already
        computed (:func:`~search_service.analysis.term_positions` of its value).
        """
        docnum = self.doc_count
        perdoc = self._perdoc
        perdoc.start_doc(docnum)
        lengths = dict.fromkeys(self._fields, 0)
        for name in sorted(document):
            value = document[name]
            if value is None:
                continue
            field = self._schema[name]
            length = 0
            if field.indexed:
                postings = self._fields[name]
                if postings.positions:
                    found = analysed.get(name) if analysed else None
                    length = postings.add_positions(docnum, term_positions(value) if found is None else found)
                else:
                    length = postings.add_terms(docnum, field.index(value))
                length = length if field.scorable else 0
                lengths[name] = length_to_byte(length) if length else 0
            perdoc.add_field(name, field, value if field.stored else None, length)
            column = field.column_type
            if column:
                perdoc.add_column_value(name, column, field.to_column_value(value))
        perdoc.finish_doc()
        for name, code in lengths.items():
            self._lengths[name].append(code)
        self.doc_count += 1
        if self.doc_count % _CHUNK == 0:
            for postings in self._fields.values():
                postings.seal()

    def finish(self) -> Any:
        """Write the segment (one compound file) and return it, uncommitted."""
        self._perdoc.close()
        files = PostingsFiles(self._ix.storage, self.segment)
        try:
            for name in sorted(self._fields):
                boost = self._schema[name].format.field_boost
                codes = np.array(self._lengths[name], dtype=np.uint8)
                self._fields[name].write(files, name, boost, codes)
        finally:
            files.close()
        self.segment.set_doc_count(self.doc_count)
        self.segment.create_compound_file(self._ix.storage)
        return self.segment

    def discard(self) -> None:
        """Close what is open without writing the segment (its files go at the next commit)."""
        if not self._perdoc.is_closed:
            self._perdoc.close()


__all__ = ["MAX_POSTINGS", "SegmentBuilder"]
