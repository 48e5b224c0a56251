"""The dictionary of real words behind spelling correction: each word as stories spell it, and in how many.

Indexing counts the words of each batch of stories it writes
(:func:`story_words`) and keeps them beside the batch as
:class:`WordCounts`: each word folded as :func:`~search_service.analysis.fold`
folds it (case, accents and apostrophes; not stemmed, so a suggestion is a
word people write) and the number of stories with it.  One
:class:`DeletionIndex` over the words of all batches finds the words within
two edits of a typo.  It is SymSpell's symmetric delete: every word is filed
under itself and each string left by deleting one or two of its first
:data:`PREFIX` letters, so a typo's own deletions meet the words it is two
edits or less from (and a few more, which the caller measures).  Keys are
CRC-32 hashes in a sorted array, so a search is a binary search per key.
The index is kept once per commit, not per batch: the batches of a large
index share most of their words, and fourteen copies of the same index
took 200 MB of the million-story index.

:class:`Vocabulary` merges the counts of the batches a search sees, updated
from the previous one by the batches added and dropped since.
"""

from __future__ import annotations

import io
import os
import zlib
from array import array
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from .analysis import TOKEN_RE, chunks, fold
from .stories import Story

#: Deletions are taken from a word's first PREFIX letters (SymSpell's default):
#: longer words add no keys, only candidates, which the caller measures.
PREFIX = 7
#: Words of this many letters or more are kept.
MIN_WORD = 2
_APOSTROPHES = dict.fromkeys(map(ord, "'`"), None)


#: chunk of text (:func:`~search_service.analysis.chunks`) -> its words, as :func:`text_words` gives them
_chunk_words: dict[str, frozenset[str]] = {}
_CACHE_LIMIT = 500_000


def text_words(text: str) -> set[str]:
    """The distinct words of ``text``, folded; tokens with digits or dots (``1987``, ``U.S``) are no words.

    Read a chunk at a time, each chunk's words cached: most chunks are a word seen before.
    """
    if len(_chunk_words) >= _CACHE_LIMIT:
        _chunk_words.clear()
    unique = set(chunks(text))
    _chunk_words.update((chunk, _words(chunk)) for chunk in unique.difference(_chunk_words))
    return set().union(*map(_chunk_words.__getitem__, unique))


def _words(chunk: str) -> frozenset[str]:
    if chunk.isascii():
        folded = {t.translate(_APOSTROPHES) for t in TOKEN_RE.findall(chunk.lower())}
    else:
        folded = {fold(t) for t in TOKEN_RE.findall(chunk)}
    return frozenset(w for w in folded if w.isalpha() and len(w) >= MIN_WORD)


def story_words(story: Story) -> set[str]:
    """The distinct words of a story's headline and body."""
    return text_words(f"{story.headline}\n{story.body}")


def deletions(word: str, edits: int = 2) -> set[str]:
    """``word``'s first :data:`PREFIX` letters, and every string left by deleting up to ``edits`` of them."""
    found = {word[:PREFIX]}
    frontier = found
    for _ in range(edits):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


def _key(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


class WordCounts:
    """The words of one batch of stories and their story counts."""

    def __init__(self, words: list[str], counts: np.ndarray) -> None:
        self.words = words
        self.counts = counts

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> WordCounts:
        """The batch with these ``word -> stories`` counts."""
        words = sorted(counts)
        return cls(words, np.array([counts[w] for w in words], dtype=np.int32))

    def items(self) -> Iterable[tuple[str, int]]:
        return zip(self.words, self.counts.tolist())

    def write(self, path: Path) -> None:
        """Write to ``path`` durably (compressed; a temporary file, flushed, then renamed into place)."""
        _write_arrays(path, np.savez_compressed, words=_joined(self.words), counts=self.counts)

    @classmethod
    def read(cls, path: Path) -> WordCounts:
        """Read what :meth:`write` wrote; raises OSError if the file is gone.

        A file written with its own deletion index (before :class:`DeletionIndex`) reads the same.
        """
        with np.load(path) as data:
            return cls(_split(data["words"]), data["counts"])


class DeletionIndex:
    """The symmetric-delete index of a set of words: the CRC-32 of each of their :func:`deletions`, sorted.

    One index serves every batch of a :class:`Vocabulary`; a new one is the
    previous one :meth:`updated`, so only words new to it are hashed.
    """

    def __init__(self, words: list[str], keys: np.ndarray, ids: np.ndarray) -> None:
        self.words = words  # sorted
        self._keys = keys
        self._ids = ids

    @classmethod
    def of(cls, words: Iterable[str]) -> DeletionIndex:
        """The index of ``words``."""
        return _EMPTY_INDEX.updated(words)

    def updated(self, words: Iterable[str]) -> DeletionIndex:
        """The index of ``words``: this one's entries of the words kept, and the new words' added."""
        wanted = sorted(set(words))
        if wanted == self.words:
            return self
        number = {word: n for n, word in enumerate(wanted)}
        renumbered = np.array([number.get(word, -1) for word in self.words], dtype=np.int32)[self._ids]
        kept = renumbered >= 0
        known = set(self.words)
        keys, ids = array("I"), array("i")  # 4 bytes a key, not a Python int's 36 (3.6 million at 163,000 words)
        for word in wanted:
            if word not in known:
                found = [_key(d) for d in deletions(word)]
                keys.extend(found)
                ids.extend([number[word]] * len(found))
        all_keys = np.concatenate([self._keys[kept], np.frombuffer(keys, dtype=np.uint32)])
        order = np.argsort(all_keys, kind="stable")
        return DeletionIndex(
            wanted, all_keys[order], np.concatenate([renumbered[kept], np.frombuffer(ids, dtype=np.int32)])[order]
        )

    def near(self, keys: np.ndarray) -> list[str]:
        """The words filed under any of the deletion ``keys``."""
        left = np.searchsorted(self._keys, keys, side="left")
        sizes = np.searchsorted(self._keys, keys, side="right") - left
        starts = np.repeat(left - np.cumsum(sizes) + sizes, sizes)
        ids = np.unique(self._ids[starts + np.arange(starts.size)])
        return [self.words[i] for i in ids.tolist()]

    def write(self, path: Path) -> None:
        """Write to ``path`` durably (a temporary file, flushed, then renamed into place).

        Not compressed: hashes compress little, and the index is written at every commit (a million
        stories' 163,000 words: 28 MB, 13 MB compressed in 2.5 s).
        """
        _write_arrays(path, np.savez, words=_joined(self.words), keys=self._keys, ids=self._ids)

    @classmethod
    def read(cls, path: Path) -> DeletionIndex:
        """Read what :meth:`write` wrote; raises OSError if the file is gone."""
        with np.load(path) as data:
            return cls(_split(data["words"]), data["keys"], data["ids"])


_EMPTY_INDEX = DeletionIndex([], np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.int32))


def _joined(words: list[str]) -> np.ndarray:
    return np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8)


def _split(blob: np.ndarray) -> list[str]:
    text = blob.tobytes().decode("utf-8")
    return text.split("\n") if text else []


def _write_arrays(path: Path, save: Callable[..., None], **arrays: np.ndarray) -> None:
    """``save`` (``np.savez`` or ``np.savez_compressed``) to ``path`` durably: a temporary file, flushed, then
    renamed into place."""
    buffer = io.BytesIO()
    save(buffer, **arrays)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(buffer.getvalue())
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


class Vocabulary:
    """The words of the stories a search sees: the sum of its batches' :class:`WordCounts`.

    Counts include stories deleted since their batch was written, until the
    engine rewrites the batch (for Whoosh, when it merges segments): the
    same approximation as the engine's own document frequencies.
    """

    def __init__(
        self, batches: Mapping[str, WordCounts], previous: Vocabulary | None = None, index: DeletionIndex | None = None
    ) -> None:
        self.batches = dict(batches)
        #: the deletion index of this vocabulary's words, if given (else made from the previous one's when needed)
        self._index = index
        self._previous_index: DeletionIndex | None = (previous._index or previous._previous_index) if previous else None
        old = previous.batches if previous else {}
        self._counts: dict[str, int] = dict(previous._counts) if previous else {}
        for name, batch in old.items():
            if name not in self.batches:
                self._add(batch, -1)
        for name, batch in self.batches.items():
            if name not in old:
                self._add(batch, 1)
        self.largest = max(self._counts.values(), default=0)

    def _add(self, batch: WordCounts, sign: int) -> None:
        counts = self._counts
        for word, n in batch.items():
            left = counts.get(word, 0) + sign * n
            if left > 0:
                counts[word] = left
            else:
                counts.pop(word, None)

    def frequency(self, word: str) -> int:
        """Stories with ``word`` (folded), 0 for a word no story has."""
        return self._counts.get(word, 0)

    def candidates(self, word: str, edits: int = 2) -> set[str]:
        """Words of the stories within ``edits`` edits (at most 2) of ``word``, with some farther ones."""
        keys = np.array([_key(d) for d in deletions(word, edits)], dtype=np.uint32)
        return {w for w in self.index().near(keys) if w in self._counts}

    def index(self) -> DeletionIndex:
        """The deletion index of the words, made on first use when none was given."""
        if self._index is None:
            self._index = (self._previous_index or _EMPTY_INDEX).updated(self._counts)
            self._previous_index = None
        return self._index
