"""The spelling dictionary of Xapian databases: the words of each batch written, kept in the database's metadata.

As the Whoosh engine's words files (one per segment): each indexing run or
write adds a batch, the stories' words as they spell them
(:func:`search_service.vocabulary.story_words`) with how many of the
batch's stories have each, under a metadata key of its own
(:data:`BATCH_PREFIX` and a number), committed with the stories.  Past
:data:`MAX_BATCHES` batches, the batches are summed into one.  As in
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

#: Metadata keys: the batches' numbers, and each batch.
BATCHES_KEY = "search_service_words"
BATCH_PREFIX = "search_service_words_"
#: More batches than this are summed into one when the next is written.
MAX_BATCHES = 32
#: A frontend looks for new batches when the collection's size changed, or after this many seconds.
WORDS_TTL = 60.0


def add_batch(db: xapian.WritableDatabase, counts: Mapping[str, int]) -> None:
    """Add a batch of ``word -> stories`` counts to ``db`` (committed with the caller's next commit)."""
    if not counts:
        return
    numbers = _numbers(db)
    number = max(numbers, default=0) + 1  # never one a reader may have cached
    if len(numbers) >= MAX_BATCHES:
        total: Counter[str] = Counter()
        for number in numbers:
            total.update(_read(db, number))
            db.set_metadata(f"{BATCH_PREFIX}{number}", "")
        total.update(counts)
        counts, numbers = total, []
    buffer = io.BytesIO()
    words = sorted(counts)
    blob = np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8)
    np.savez(buffer, words=blob, counts=np.array([counts[w] for w in words], dtype=np.int32))
    db.set_metadata(f"{BATCH_PREFIX}{number}", buffer.getvalue())
    db.set_metadata(BATCHES_KEY, " ".join(str(n) for n in [*numbers, number]))


def _numbers(db: xapian.Database) -> list[int]:
    return [int(n) for n in db.get_metadata(BATCHES_KEY).decode().split()]


def _read(db: xapian.Database, number: int) -> dict[str, int]:
    blob = db.get_metadata(f"{BATCH_PREFIX}{number}")
    if not blob:
        return {}
    with np.load(io.BytesIO(blob)) as data:
        text = data["words"].tobytes().decode("utf-8")
        return dict(zip(text.split("\n") if text else [], data["counts"].tolist()))


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
            batches = {}
            for n, db in enumerate(shards):
                for number in _numbers(db):
                    # By the database's UUID too: a rebuilt shard numbers its batches from 1 again.
                    name = f"{n}:{number}:{db.get_uuid()}"
                    batches[name] = known.get(name) or WordCounts.of(_read(db, number))
            self._current = Vocabulary(batches, self._current)
            self._state, self._checked = state, now
            return self._current


__all__ = ["Dictionary", "add_batch"]
