"""Indexing story files into one Xapian database (a whole collection or one shard), incrementally.

As the Whoosh indexer: the database keeps a manifest of the files it has
read (path -> mtime and size, in its metadata); a run reads only new and
changed files, drops the stories of changed and vanished files (each story
carries a term for its file), and commits after every :data:`COMMIT_STORIES`
stories (or :data:`COMMIT_FILES` files), at the end of a file, each commit
a transaction with the manifest of the files it holds: readers see whole
commits, an interrupted run leaves the last one searchable and the next
run goes on from there, and the writer's memory is bounded whatever the
run's size.  Commits are frequent because Xapian's cost per story grows
with the stories it holds uncommitted: 10,000 stories cost 2-2.5 times the
CPU in one commit as in commits of 500-1,000.  A story code seen twice is
one story: the later file wins.  The manifest is kept as a batch per
commit (the files it read or dropped, :mod:`.batches`), so a commit writes
its own files, not every file read so far.

A shard (``I/N``, kept in the database's metadata so later runs need not
repeat it) holds only the stories whose id hashes to it
(:func:`.shards.shard_of`); every shard reads every file.  Files are read in
this process (Xapian's writer is single-threaded).  Each story is analysed
once (:func:`search_service.analysis.term_positions`): the same term
positions make its postings and its near-duplicate signature.  Its group
is settled as it is written (:mod:`.groups`), among the stories of this
database: the candidates are looked up in a reader of the last commit,
never in the writer (a query there between writes made Xapian's writes a
third slower), and the run's own stories are kept in memory; a story
whose group a later story of the same commit changed is written again
with its label before the commit.  The run's words are kept for spelling
(:mod:`.words`).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence

import xapian

from ...model import IndexSummary, IndexWriteError
from ...stories import Skip, iter_story_files, read_file
from ...vocabulary import story_words
from . import batches
from .document import FILE, ID, fields_of, file_key, to_document
from .groups import Grouper, relabel
from .shards import SHARD_KEY, shard_of
from .words import add_batch

#: Metadata key of the manifest's batches (:mod:`.batches`; JSON: path -> key, or null: dropped).
MANIFEST_KEY = "search_service_manifest"
#: Where search_service 0.x kept the whole manifest as one JSON object (read, never written).
OLD_MANIFEST_KEY = "search_service_files"
#: A run commits at the end of the file that brings it to this many stories since its last commit.
COMMIT_STORIES = 1_000
#: ... or to this many files (a shard may hold few of the stories it reads).
COMMIT_FILES = 20_000
#: As the Whoosh indexer: a story file larger than this is skipped.
MAX_STORY_FILE_BYTES = 16 * 1024 * 1024


def index_paths(
    db: xapian.WritableDatabase,
    reader: xapian.Database,
    paths: Sequence[str | os.PathLike[str]],
    shard: tuple[int, int] | None,
    progress: Callable[[int, int], Callable[[int], None]] | None,
    commit_stories: int = COMMIT_STORIES,
) -> IndexSummary:
    """Index the files under ``paths`` into ``db`` (committed by the caller); see the module docstring.

    ``reader`` reads the same database (it is reopened at each commit);
    ``commit_stories`` is how many stories a commit holds (:data:`COMMIT_STORIES`).
    """
    started = time.perf_counter()
    summary = IndexSummary()
    shard = _shard(db, shard)
    manifest = load_manifest(db)
    roots = [os.path.abspath(p) for p in paths]
    current: dict[str, str] = {}
    to_read: list[str] = []
    for found in iter_story_files(paths):
        path = os.path.abspath(found)
        try:
            stat = os.stat(path)
        except OSError as exc:
            summary.skips.append(Skip(path, f"cannot read file: {exc.strerror or exc}"))
            continue
        key = current[path] = f"{stat.st_mtime_ns}:{stat.st_size}"
        if manifest.get(path) == key:
            summary.unchanged_files += 1
        elif path.lower().endswith(".txt") and stat.st_size > MAX_STORY_FILE_BYTES:
            summary.skips.append(
                Skip(path, f"file is {stat.st_size / 2**20:.1f} MB, over the 16 MB limit for one story")
            )
        else:
            to_read.append(path)
    gone = [
        p
        for p in manifest
        if p not in current and any(p == r or p.startswith(r.rstrip(os.sep) + os.sep) for r in roots)
    ]
    tick = progress(len(to_read), summary.unchanged_files) if progress else (lambda n: None)
    run = _Run(db, reader, summary, shard)
    try:
        # Only files read before have stories here; the first commit drops them.
        run.drop([p for p in to_read if p in manifest] + gone)
        files: dict[str, str | None] = dict.fromkeys(gone)
        for n, path in enumerate(to_read, 1):
            run.read(path)
            files[path] = current[path]
            tick(1)
            if run.stories >= commit_stories or len(files) >= COMMIT_FILES or n == len(to_read):
                run.commit(files)
                files = {}
        if files:
            run.commit(files)
    finally:
        run.close()
    summary.removed = len(run.dropped - run.seen)
    summary.seconds = time.perf_counter() - started
    return summary


class _Run:
    """One indexing run's writes, a commit at a time (see the module docstring)."""

    def __init__(
        self, db: xapian.WritableDatabase, reader: xapian.Database, summary: IndexSummary, shard: tuple[int, int] | None
    ) -> None:
        self.db, self.reader, self.summary, self.shard = db, reader, summary, shard
        #: Ids of the stories of changed and vanished files (deleted), and of those written in this run.
        self.dropped: set[str] = set()
        self.seen: set[str] = set()
        self._begin()

    def _begin(self) -> None:
        self.reader.reopen()
        self.db.begin_transaction()
        self.open = True
        # The reader has the stories dropped, until the first commit (and those written again since).
        self.grouper = Grouper(self.reader, gone=self.dropped - self.seen)
        self.written: dict[str, str | None] = {}
        self.words: Counter[str] = Counter()
        self.stories = 0

    def drop(self, paths: list[str]) -> None:
        """Delete the stories of these files (in this commit)."""
        for path in paths:
            term = FILE + file_key(path)
            for posting in list(self.db.postlist(term)):
                self.dropped.add(fields_of(self.db.get_document(posting.docid))["id"])
            self.db.delete_document(term)

    def read(self, path: str) -> None:
        """Write the stories of one file (of this run's shard)."""
        result = read_file(path)
        summary, db, shard = self.summary, self.db, self.shard
        summary.skips.extend(result.skips)
        summary.warnings.extend(result.warnings)
        for story in result.stories:
            if shard and shard_of(story.id, shard[1]) != shard[0]:
                continue
            doc = to_document(story, path)
            self.written[story.id] = self.grouper.place(story.id, doc)
            if story.id in self.seen:
                summary.duplicates += 1
                db.replace_document(ID + story.id, doc)
            elif story.id in self.dropped or self.reader.get_termfreq(ID + story.id):
                summary.updated += 1
                db.replace_document(ID + story.id, doc)
            else:
                summary.added += 1
                db.add_document(doc)
            self.seen.add(story.id)
            self.words.update(story_words(story))
            self.stories += 1

    def commit(self, files: dict[str, str | None]) -> None:
        """Commit what was written since the last commit, with the manifest of ``files``, and begin the next."""
        db = self.db
        # Stories whose group a later story of this commit changed, then older ones.
        later = {i: c.label for i, c in self.grouper.batch.items() if c.label and c.label != self.written[i]}
        relabel(db, {**self.grouper.changed(), **later})
        if files:
            batches.add(db, MANIFEST_KEY, json.dumps(files).encode(), len(files), _merged_manifests)
        add_batch(db, self.words, self.stories)
        self.open = False  # a commit that fails is cancelled
        db.commit_transaction()
        self._begin()

    def close(self) -> None:
        """Cancel what was written since the last commit (nothing, unless the run failed)."""
        if self.open:
            self.db.cancel_transaction()
            self.open = False


def load_manifest(db: xapian.Database) -> dict[str, str]:
    """The files the database's commits read: path -> mtime and size."""
    files: dict[str, str] = json.loads(db.get_metadata(OLD_MANIFEST_KEY) or b"{}")
    for number, _ in batches.numbered(db, MANIFEST_KEY):
        for path, key in json.loads(batches.read(db, MANIFEST_KEY, number) or b"{}").items():
            if key is None:
                files.pop(path, None)
            else:
                files[path] = key
    return files


def _merged_manifests(older: bytes, newer: bytes) -> bytes:
    return json.dumps({**json.loads(older or b"{}"), **json.loads(newer)}).encode()


def _shard(db: xapian.WritableDatabase, wanted: tuple[int, int] | None) -> tuple[int, int] | None:
    """The shard this database holds: ``wanted``, or the one recorded by an earlier run."""
    recorded = db.get_metadata(SHARD_KEY).decode()
    if wanted is None:
        if not recorded:
            return None
        number, _, count = recorded.partition("/")
        return int(number) - 1, int(count)
    text = f"{wanted[0] + 1}/{wanted[1]}"
    if recorded and recorded != text:
        raise IndexWriteError(
            f"this database holds shard {recorded}, not {text}; index shard {text} into another folder"
        )
    if not recorded and db.get_doccount():
        raise IndexWriteError(f"this database holds every story, not shard {text}; index the shard into another folder")
    db.set_metadata(SHARD_KEY, text)
    return wanted
