"""Indexing story files into one Xapian database (a whole collection or one shard), incrementally.

As the Whoosh indexer: the database keeps a manifest of the files it has
read (path -> mtime and size, in its metadata); a run reads only new and
changed files, drops the stories of changed and vanished files (each story
carries a term for its file), and commits after every :data:`COMMIT_FILES`
files, each commit a transaction with the manifest of the files it holds:
readers see whole commits, an interrupted run leaves the last one
searchable and the next run goes on from there, and the writer's memory is
bounded whatever the run's size.  A story code seen twice is one story:
the later file wins.

A shard (``I/N``, kept in the database's metadata so later runs need not
repeat it) holds only the stories whose id hashes to it
(:func:`.shards.shard_of`); every shard reads every file.  Files are read in
this process (Xapian's writer is single-threaded).  Each story's
near-duplicate group is settled as it is written (:mod:`.groups`), among
the stories of this database, and the run's words are kept for spelling
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
from .document import FILE, ID, fields_of, file_key, to_document
from .groups import Grouper
from .shards import SHARD_KEY, shard_of
from .words import add_batch

MANIFEST_KEY = "search_service_files"
#: A run commits after every this many files (with the manifest of the files committed so far).
COMMIT_FILES = 20_000
#: As the Whoosh indexer: a story file larger than this is skipped.
MAX_STORY_FILE_BYTES = 16 * 1024 * 1024


def index_paths(
    db: xapian.WritableDatabase,
    paths: Sequence[str | os.PathLike[str]],
    shard: tuple[int, int] | None,
    progress: Callable[[int, int], Callable[[int], None]] | None,
) -> IndexSummary:
    """Index the files under ``paths`` into ``db`` (committed by the caller); see the module docstring."""
    started = time.perf_counter()
    summary = IndexSummary()
    shard = _shard(db, shard)
    manifest: dict[str, str] = json.loads(db.get_metadata(MANIFEST_KEY) or b"{}")
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
    kept = {p: k for p, k in manifest.items() if p not in gone}
    dropped: set[str] = set()
    seen: set[str] = set()
    grouper = Grouper(db, writer=db)
    for first in range(0, max(len(to_read), 1), COMMIT_FILES):
        chunk = to_read[first : first + COMMIT_FILES]
        db.begin_transaction()
        try:
            if not first:
                for path in [*to_read, *gone]:
                    term = FILE + file_key(path)
                    for posting in list(db.postlist(term)):
                        dropped.add(fields_of(db.get_document(posting.docid))["id"])
                    db.delete_document(term)
            words: Counter[str] = Counter()
            for path in chunk:
                result = read_file(path)
                summary.skips.extend(result.skips)
                summary.warnings.extend(result.warnings)
                for story in result.stories:
                    if shard and shard_of(story.id, shard[1]) != shard[0]:
                        continue
                    if story.id in seen:
                        summary.duplicates += 1
                    elif story.id in dropped or db.get_termfreq(ID + story.id):
                        summary.updated += 1
                    else:
                        summary.added += 1
                    seen.add(story.id)
                    doc = to_document(story, path)
                    grouper.place(story.id, doc)
                    db.replace_document(ID + story.id, doc)
                    words.update(story_words(story))
                tick(1)
            kept.update((path, current[path]) for path in chunk)
            db.set_metadata(MANIFEST_KEY, json.dumps(kept))
            add_batch(db, words)
            db.commit_transaction()
        except BaseException:
            db.cancel_transaction()
            raise
    summary.removed = len(dropped - seen)
    summary.seconds = time.perf_counter() - started
    return summary


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
