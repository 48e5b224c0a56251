"""The spelling dictionary of a Whoosh index: one words file per segment, one deletion index per commit.

Each segment gets a file of its words (:class:`~search_service.vocabulary.WordCounts`)
named like the segment's own files (``MAIN_<segment id>.words``): the
indexer writes it beside the segment before the table of contents that
publishes the segment is committed, and Whoosh's own clean-up deletes it
with the segment's other files once no commit lists the segment, so a
crash leaves no file a reader would use, and orphans go at the next commit.

A segment that Whoosh merged from smaller ones gets its file at that
commit, counted from the stored stories it holds (a merge drops deleted
stories, so counts are exact again there); an index written before words
files existed gets them the same way, at its next commit, and a search
counts what it needs from the stored stories until then.

The deletion index of the words of all the commit's segments
(:class:`~search_service.vocabulary.DeletionIndex`) is written once per
commit, ``search_service_spelling_GEN.npz``, before its table of contents,
from the previous commit's (only words new to it are hashed); older ones
are deleted after the commit.  A search without one (an index from before
it, or a commit whose file a newer commit's clean-up deleted) makes it
from the words when it first corrects a word.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from whoosh.index import FileIndex
from whoosh.reading import IndexReader, SegmentReader
from whoosh.searching import Searcher

from ...vocabulary import DeletionIndex, Vocabulary, WordCounts, text_words

WORDS_EXTENSION = ".words"
_INDEX_PREFIX = "search_service_spelling_"


def words_path(folder: str | Path, segment: Any) -> Path:
    """Where ``segment``'s words file is."""
    return Path(folder) / segment.make_filename(WORDS_EXTENSION)


def write_words(folder: str | Path, segment: Any, counts: Mapping[str, int]) -> None:
    """Write the words file of a new segment whose stories have these ``word -> stories`` counts."""
    WordCounts.of(counts).write(words_path(folder, segment))


def _stored_words(reader: IndexReader) -> WordCounts:
    """The words of the live stories of a segment, counted from their stored text."""
    counts: Counter[str] = Counter()
    for fields in reader.all_stored_fields():
        counts.update(text_words(f"{fields['headline']}\n{fields['body']}"))
    return WordCounts.of(counts)


def _index_path(folder: str | Path, generation: int) -> Path:
    return Path(folder) / f"{_INDEX_PREFIX}{generation}.npz"


def complete_words(ix: FileIndex, segments: list[Any], generation: int) -> None:
    """Write the words file of each of ``segments`` that has none, from its stored stories, then the
    deletion index of commit ``generation`` (whose segments they are)."""
    folder = ix.storage.folder
    words: set[str] = set()
    for segment in segments:
        path = words_path(folder, segment)
        if path.exists():
            words.update(WordCounts.read(path).words)
        else:
            with SegmentReader(ix.storage, ix.schema, segment) as reader:
                counts = _stored_words(reader)
            counts.write(path)
            words.update(counts.words)
    try:
        previous = DeletionIndex.read(_index_path(folder, ix.latest_generation()))
    except OSError:  # the first commit, or an index from before deletion indexes
        previous = DeletionIndex.of(())
    previous.updated(words).write(_index_path(folder, generation))


def remove_older_indexes(folder: str | Path, keep: int) -> None:
    """Delete the deletion indexes of commits before ``keep`` (and of failed ones)."""
    for path in Path(folder).glob(f"{_INDEX_PREFIX}*"):
        if path.name != _index_path(folder, keep).name:
            path.unlink(missing_ok=True)


class Dictionaries:
    """The :class:`Vocabulary` of the latest commit a search has seen, shared by all threads.

    Segments are immutable, so each words file is read once; a new commit
    updates the previous vocabulary by the segments it added and dropped.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._current: tuple[int, Vocabulary] | None = None

    def of(self, searcher: Searcher) -> Vocabulary:
        """The vocabulary of ``searcher``'s commit."""
        reader = searcher.reader()
        generation = reader.generation()
        with self._lock:
            if self._current is None or self._current[0] != generation:
                previous = self._current[1] if self._current else None
                known = previous.batches if previous else {}
                batches = {}
                for leaf, _ in reader.leaf_readers():
                    if hasattr(leaf, "segment"):
                        name = leaf.segment().segment_id()
                        batches[name] = known.get(name) or self._read(leaf)
                self._current = (generation, Vocabulary(batches, previous, self._index(generation)))
            return self._current[1]

    def _index(self, generation: int) -> DeletionIndex | None:
        try:
            return DeletionIndex.read(_index_path(self._folder, generation))
        except OSError:  # written before deletion indexes, or deleted by a newer commit's clean-up
            return None

    def _read(self, leaf: SegmentReader) -> WordCounts:
        try:
            return WordCounts.read(words_path(self._folder, leaf.segment()))
        except OSError:  # written before words files, or deleted by a newer commit's clean-up
            return _stored_words(leaf)
