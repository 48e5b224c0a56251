"""Per-document arrays of one commit: which stories live, their field lengths and dates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import numpy as np
from whoosh.searching import Searcher
from whoosh.util.numeric import byte_to_length

from .internals import datetime_column, length_codes
from .postings import PostingsCache
from .schema import TEXT_FIELDS

_BYTE_LENGTHS = np.array([byte_to_length(i) for i in range(256)], dtype=np.float64)
_EPOCH = datetime(1970, 1, 1)
_TICKS_PER_DAY = 86_400_000_000  # microseconds
_EPOCH_TICKS = (_EPOCH - datetime.min).days * _TICKS_PER_DAY
#: Whoosh reads some undated values as 0001-01-01: dates before year 2 are none.
_YEAR_2_TICKS = (datetime(2, 1, 1) - datetime.min).days * _TICKS_PER_DAY


@dataclass
class Corpus:
    """Per-document arrays of one searcher's snapshot of the index.

    Built with array reads of Whoosh's columns, not a Python loop over the
    documents: every commit needs a new one, and the first query after a
    write waits for it.
    """

    size: int
    alive: np.ndarray
    lengths: dict[str, np.ndarray]
    shortest: dict[str, float]  # the least of each field's lengths
    average_length: dict[str, float]
    ticks: np.ndarray  # ``published`` in Whoosh's ticks (microseconds since 0001-01-01); -1 when undated
    days: np.ndarray  # ``published`` as :func:`day_number`; NaN when undated
    months: np.ndarray  # year * 12 + month - 1 of ``published``; -1 when undated
    #: Postings per segment, handed on from commit to commit (segments never change).
    cache: PostingsCache

    @classmethod
    def load(cls, searcher: Searcher, cache: PostingsCache) -> Corpus:
        """The arrays of ``searcher``'s commit; ``cache`` keeps postings of the segments commits share."""
        reader = searcher.reader()
        size = reader.doc_count_all()
        alive = np.zeros(size, dtype=bool)
        lengths = {f: np.zeros(size) for f in TEXT_FIELDS}
        ticks = np.full(size, -1, dtype=np.int64)
        for leaf, offset in reader.leaf_readers():
            alive[offset : offset + leaf.doc_count_all()] = True
            if leaf.has_deletions():
                alive[offset + np.fromiter(leaf.deleted_docs_set, dtype=np.int64)] = False
            for fieldname in TEXT_FIELDS:
                codes = length_codes(leaf, fieldname)
                if codes is not None:
                    lengths[fieldname][offset : offset + len(codes)] = _BYTE_LENGTHS[codes]
            dated = _published_ticks(leaf)
            ticks[offset : offset + len(dated)] = dated
        live = max(1, int(alive.sum()))
        # Whoosh's totals include deleted stories; theirs come off (their lengths as stored, one byte each).
        average = {f: max(1.0, (reader.field_length(f) - lengths[f][~alive].sum()) / live) for f in TEXT_FIELDS}
        undated = ticks < 0
        days = np.where(undated, math.nan, (ticks - _EPOCH_TICKS) / _TICKS_PER_DAY)
        calendar = np.floor(np.nan_to_num(days)).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        months = np.where(undated, -1, calendar + 1970 * 12)
        shortest = {f: float(lengths[f].min(initial=math.inf)) if size else 0.0 for f in TEXT_FIELDS}
        return cls(size, alive, lengths, shortest, average, ticks, days, months, cache)

    @cached_property
    def dated_range(self) -> tuple[int, int] | None:
        """The ticks of the first and last live dated story, or None: found once a commit (a scan of
        every story, some 2 ms at a million, which health checks asked for on every call)."""
        dated = self.ticks[self.alive & (self.ticks >= 0)]
        return (int(dated.min()), int(dated.max())) if dated.size else None


def _published_ticks(leaf) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A segment's ``published`` dates as ticks; -1 when undated."""
    raw = datetime_column(leaf, "published")
    ticks = raw.view(np.int64)
    undated = (raw == np.uint64(leaf.schema["published"].default)) | (ticks < _YEAR_2_TICKS)
    return np.where(undated, -1, ticks)


def day_number(moment: datetime) -> float:
    """A naive (UTC) ``moment`` in days since 1970-01-01, as :attr:`Corpus.days` counts them."""
    return (moment - _EPOCH) / timedelta(days=1)
