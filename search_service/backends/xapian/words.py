"""The spelling dictionary of Xapian databases: the words of each batch written, kept in the database's metadata.

As the Whoosh engine's words files (one per segment): each indexing run or
write adds a batch, the stories' words as they spell them
(:func:`search_service.vocabulary.story_words`) with how many of the
batch's stories have each, under a metadata key of its own
(:mod:`.batches`), committed with the stories; batches are summed as
they accumulate, so a database keeps about ``log2`` of its batches.  As in
Whoosh, a count includes stories deleted or rewritten since their batch was
written.

Metadata lives beside each shard and is read over ``xapian-tcpsrv`` like
the rest, so a frontend builds the dictionary of every shard
(:class:`Dictionary`); each batch is read and indexed for lookups
(:class:`~search_service.vocabulary.WordCounts`) once.  Words as terms
(one per distinct word per story) would have cost a third of Xapian's
indexing time.
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Mapping

import numpy as np
import xapian

from ...vocabulary import Vocabulary, WordCounts
from . import batches

#: The metadata key of the batches (:mod:`.batches`).
BATCHES_KEY = "search_service_words"
#: A frontend looks for new batches when the collection's size changed, or after this many seconds.
WORDS_TTL = 60.0


def add_batch(db: xapian.WritableDatabase, counts: Mapping[str, int], stories: int) -> None:
    """Add a batch of ``word -> stories`` counts, of ``stories`` stories, to ``db`` (committed with the caller's next commit)."""
    if counts:
        batches.add(db, BATCHES_KEY, _encoded(counts), stories, _summed)


def _encoded(counts: Mapping[str, int]) -> bytes:
    buffer = io.BytesIO()
    words = sorted(counts)
    blob = np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8)
    np.savez(buffer, words=blob, counts=np.array([counts[w] for w in words], dtype=np.int32))
    return buffer.getvalue()


def _decoded(blob: bytes) -> dict[str, int]:
    if not blob:
        return {}
    with np.load(io.BytesIO(blob)) as data:
        text = data["words"].tobytes().decode("utf-8")
        return dict(zip(text.split("\n") if text else [], data["counts"].tolist()))


def _summed(older: bytes, newer: bytes) -> bytes:
    total = Counter(_decoded(older))
    total.update(_decoded(newer))
    return _encoded(total)


class Dictionary:
    """The :class:`~search_service.vocabulary.Vocabulary` of the databases a frontend searches, kept up to date."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked = 0.0
        self._state: tuple[int, int] | None = None
        self._current = Vocabulary({})

    def of(self, whole: xapian.Database, shards: list[xapian.Database]) -> Vocabulary:
        """The vocabulary of ``shards`` (``whole`` searches them all), new batches read in."""
        now = time.monotonic()
        state = (whole.get_doccount(), whole.get_lastdocid())
        with self._lock:
            if state == self._state and now - self._checked < WORDS_TTL:
                return self._current
            known = self._current.batches
            counts = {}
            for n, db in enumerate(shards):
                for number, _ in batches.numbered(db, BATCHES_KEY):
                    # By the database's UUID too: a rebuilt shard numbers its batches from 1 again.
                    name = f"{n}:{number}:{db.get_uuid()}"
                    counts[name] = known.get(name) or WordCounts.of(_decoded(batches.read(db, BATCHES_KEY, number)))
            self._current = Vocabulary(counts, self._current)
            self._state, self._checked = state, now
            return self._current


__all__ = ["Dictionary", "add_batch"]
