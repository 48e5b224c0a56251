"""Incremental, crash-safe, parallel indexing of story files into Whoosh.

How a run works, and why:

* **Plan.** The files under the given paths are compared with the *manifest*
  of the last commit (path -> mtime and size, and what was skipped in it).
  Only new and changed files are read; files that vanished from an indexed
  folder have their stories removed.  An unchanged file's skips are reported
  again, so a run is only clean once the broken files are fixed.  The manifest is written for the new index generation *before*
  Whoosh's table of contents is atomically renamed into place, so whatever
  commit a reader sees has a matching manifest.
* **Build.** Each worker process (one per CPU) reads, analyses and writes
  its share of the files into segments of its own (:mod:`.segments`:
  postings held as arrays, sorted once, written in Whoosh's layout; a new
  segment every :data:`.segments.MAX_POSTINGS` postings), so both cores
  parse, analyse and encode postings.  Scores equal a single-writer index
  because statistics are summed over segments at search time; nothing is
  merged or re-counted.  Each worker also counts the words of its stories
  for spelling correction and writes them beside each segment
  (:mod:`.wordfiles`).
* **Commit.** The parent, which holds the index lock from the start, deletes
  superseded stories from the old segments, drops duplicate story codes
  within the run (the later file wins), and commits old and new segments in
  one atomic table-of-contents write.  Until then no reader sees anything
  new; a crash or Ctrl-C at any point leaves the previous commit intact, and
  the kernel releases the lock of a killed process, so no stale lock remains.
"""

from __future__ import annotations

import bisect
import gc
import gzip
import json
import logging
import multiprocessing
import os
import queue
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from whoosh import index as whoosh_index
from whoosh.index import FileIndex, LockError
from whoosh.writing import SegmentWriter

from ...analysis import term_positions
from ...model import IndexBusyError, IndexSummary, IndexWriteError
from ...processes import exit_with_parent
from ...stories import Skip, Story, iter_story_files, read_file
from ...vocabulary import story_words
from . import groups
from .groups import SIGNATURE_FIELD, document_fields
from .internals import abandon_writer, apply_fixes, commit_segments, lock_fd
from .schema import CODEC, build_schema, is_current, to_document
from .segments import SegmentBuilder
from .wordfiles import complete_words, remove_older_indexes, write_words

log = logging.getLogger(__name__)

#: A story file larger than this is not a story; it is skipped, not indexed.
MAX_STORY_FILE_BYTES = 16 * 1024 * 1024
#: Below this many files a second process costs more than it saves.
PARALLEL_MIN_FILES = 400
_MANIFEST_PREFIX = "search_service_files_"
_PROGRESS_EVERY = 64


@dataclass
class Manifest:
    """The files behind a commit: path -> mtime:size, and path -> what was skipped in it."""

    files: dict[str, str] = field(default_factory=dict)
    skips: dict[str, list[Skip]] = field(default_factory=dict)


@dataclass
class _Plan:
    to_read: list[str]
    gone: list[str]
    manifest: Manifest
    skips: list[Skip]
    unchanged: int


@dataclass
class _Batch:
    """One worker's output: its finished segments and the stories in them, in docnum order."""

    segments: list[Any] = field(default_factory=list)  # Whoosh's segments, once written
    #: the number of stories up to the end of each segment
    ends: list[int] = field(default_factory=list)
    docs: list[tuple[tuple[int, int], str]] = field(default_factory=list)
    #: MinHash signature of each story in ``docs`` (None: too short to group), for :func:`.groups.assign`
    signatures: list[np.ndarray | None] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: path -> its skips, for the files read that had any
    skipped_files: dict[str, list[Skip]] = field(default_factory=dict)

    def delete(self, n: int) -> None:
        """Delete the batch's ``n``-th story from its segment."""
        at = bisect.bisect_right(self.ends, n)
        self.segments[at].delete_document(n - (self.ends[at - 1] if at else 0))


def default_procs() -> int:
    """Worker processes for a large run: one per CPU, at most 4.

    Building a segment is CPU work now (:mod:`.segments`: no posting pool
    spilled to disk and merged back, which a third worker on 2 cores used
    to overlap); another worker would only add a segment and its memory.
    """
    return min(os.cpu_count() or 1, 4)


# ---------------------------------------------------------------- index files


def open_index(index_dir: str | os.PathLike, create: bool = False) -> FileIndex:
    """Open the index in ``index_dir``; with ``create``, make an empty one if there is none."""
    apply_fixes()
    index_dir = Path(index_dir)
    if whoosh_index.exists_in(index_dir):
        return _open_existing(index_dir)
    if not create:
        raise FileNotFoundError(
            f"no search index in {index_dir}: build one with `search-service index PATH --index {index_dir}`"
        )
    index_dir.mkdir(parents=True, exist_ok=True)
    return whoosh_index.create_in(index_dir, build_schema())


def _open_existing(index_dir: Path) -> FileIndex:
    try:
        ix = whoosh_index.open_dir(index_dir)
    except (AttributeError, ModuleNotFoundError) as exc:  # its pickled schema names classes that moved
        raise _rebuild(index_dir, str(exc)) from None
    if not is_current(ix.schema):
        raise _rebuild(index_dir, "positions in Whoosh's pickled format")
    return ix


def _rebuild(index_dir: Path, why: str) -> IndexWriteError:
    return IndexWriteError(
        f"the index in {index_dir} was built by an older search_service and can't be read ({why}); "
        f"rebuild it: delete the folder and run `search-service index PATH --index {index_dir}`"
    )


def _file_key(stat: os.stat_result) -> str:
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def _manifest_path(ix: FileIndex, generation: int) -> Path:
    return Path(ix.storage.folder) / f"{_MANIFEST_PREFIX}{generation}.json.gz"


def load_manifest(ix: FileIndex) -> Manifest:
    """The files behind the latest commit; empty if unknown."""
    path = _manifest_path(ix, ix.latest_generation())
    try:
        with gzip.open(path, "rb") as compressed:
            data = json.load(compressed)
    except FileNotFoundError:
        try:  # written before manifests were compressed
            data = json.loads(path.with_suffix("").read_text("utf-8"))
        except FileNotFoundError:
            return Manifest()
    if "files" not in data:  # written before skips were kept: path -> key only
        return Manifest(data)
    skips = {path: [Skip(where, reason) for where, reason in found] for path, found in data["skips"].items()}
    return Manifest(data["files"], skips)


def _write_manifest(ix: FileIndex, generation: int, manifest: Manifest) -> None:
    """Write the manifest as JSON through gzip's fastest level (a million paths: 66 MB, 11 MB compressed)."""
    path = _manifest_path(ix, generation)
    tmp = path.with_suffix(".tmp")
    skips = {p: [[skip.where, skip.reason] for skip in found] for p, found in manifest.skips.items()}
    data = json.dumps({"files": manifest.files, "skips": skips}, separators=(",", ":")).encode("utf-8")
    with open(tmp, "wb") as out:
        out.write(gzip.compress(data, compresslevel=1, mtime=0))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _remove_old_manifests(ix: FileIndex, keep: int) -> None:
    for path in Path(ix.storage.folder).glob(f"{_MANIFEST_PREFIX}*"):
        if path.name != _manifest_path(ix, keep).name:
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------- planning


def _plan(paths: Sequence[str | os.PathLike], manifest: Manifest) -> _Plan:
    roots = [os.path.abspath(p) for p in paths]
    current: dict[str, str] = {}
    to_read: list[str] = []
    skips: list[Skip] = []
    # Files not looked at in this run keep their skips; those looked at have only what this run finds.
    kept = Manifest(skips=dict(manifest.skips))
    unchanged = 0
    for found in iter_story_files(paths):
        path = os.path.abspath(found)
        try:
            stat = os.stat(path)
        except OSError as exc:  # a dangling symlink or a symlink loop
            skips.append(Skip(path, f"cannot read file: {exc.strerror or exc}"))
            continue
        key = current[path] = _file_key(stat)
        kept.skips.pop(path, None)
        if manifest.files.get(path) == key:
            again = manifest.skips.get(path, [])
            if again:
                kept.skips[path] = again
                skips.extend(again)
            unchanged += not any(skip.where == path for skip in again)  # a broken file is skipped, not unchanged
            continue
        if path.lower().endswith(".txt") and stat.st_size > MAX_STORY_FILE_BYTES:
            limit_mb = MAX_STORY_FILE_BYTES // 2**20
            kept.skips[path] = [
                Skip(path, f"file is {stat.st_size / 2**20:.1f} MB, over the {limit_mb} MB limit for one story")
            ]
            skips.extend(kept.skips[path])
            continue
        to_read.append(path)
    gone = [p for p in manifest.files if p not in current and _is_under(p, roots)]
    kept.files = {p: k for p, k in manifest.files.items() if p not in gone}
    kept.files.update(current)
    kept.skips = {p: s for p, s in kept.skips.items() if p in kept.files}
    return _Plan(to_read, gone, kept, skips, unchanged)


def _is_under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


# ---------------------------------------------------------------- building segments


def _build_segment(
    ix: FileIndex,
    items: Iterable[tuple[tuple[int, int], Story, str]],
    batch: _Batch,
) -> _Batch:
    """Write ``(order, story, path)`` items into new, uncommitted segments (one per :data:`.segments.MAX_POSTINGS`)."""
    grouping = SIGNATURE_FIELD in ix.schema  # an index from before near-duplicate groups has no such field
    builder = SegmentBuilder(ix)
    words: Counter[str] = Counter()
    try:
        for order, story, path in items:
            body = term_positions(story.body)
            extra, sig = document_fields(body) if grouping else ({}, None)
            builder.add({**to_document(story, path), **extra}, {"body": body})
            words.update(story_words(story))
            batch.docs.append((order, story.id))
            batch.signatures.append(sig)
            if builder.full:
                _finish_segment(ix, builder, words, batch)
                builder, words = SegmentBuilder(ix), Counter()
        if builder.doc_count:
            _finish_segment(ix, builder, words, batch)
    finally:
        builder.discard()  # orphaned files, if any, go at the next commit
    return batch


def _finish_segment(ix: FileIndex, builder: SegmentBuilder, words: Counter[str], batch: _Batch) -> None:
    segment = builder.finish()
    write_words(ix.storage.folder, segment, words)
    batch.segments.append(segment)
    batch.ends.append(len(batch.docs))


def _file_items(
    jobs: Iterable[tuple[int, str]], batch: _Batch, tick: Callable[[int], None]
) -> Iterable[tuple[tuple[int, int], Story, str]]:
    """Read each file, yield its stories, and record its skips and warnings in ``batch``."""
    for done, (seq, path) in enumerate(jobs, 1):
        result = read_file(path)
        batch.skips.extend(result.skips)
        if result.skips:
            batch.skipped_files[path] = result.skips
        batch.warnings.extend(result.warnings)
        for line_no, story in enumerate(result.stories):
            yield (seq, line_no), story, path
        if done % _PROGRESS_EVERY == 0:
            tick(_PROGRESS_EVERY)


def _worker(index_dir: str, jobs: list[tuple[int, str]], out: multiprocessing.Queue, lock_fd: int, parent: int) -> None:
    """Worker process body: build one segment, report it, exit."""
    # The forked copy of the parent's index lock: closing it (not unlocking)
    # leaves the lock to the parent alone, so it is freed when the parent dies.
    os.close(lock_fd)
    exit_with_parent(parent)  # killed parent: nobody will read this worker's output

    def tick(n: int) -> None:
        out.put(("progress", n))

    gc.disable()  # millions of short-lived postings, no cycles: collection is pure cost
    try:
        batch = _Batch()
        _build_segment(whoosh_index.open_dir(index_dir), _file_items(jobs, batch, tick), batch)
        out.put(("progress", len(jobs) % _PROGRESS_EVERY))
        out.put(("done", batch))
    except Exception as exc:  # reported to the parent, which cancels the run
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def _build_parallel(
    ix: FileIndex, files: list[str], procs: int, tick: Callable[[int], None], lock_fd: int
) -> list[_Batch]:
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    jobs = list(enumerate(files))
    workers = [
        context.Process(
            target=_worker, args=(ix.storage.folder, jobs[i::procs], out, lock_fd, os.getpid()), daemon=True
        )
        for i in range(procs)
    ]
    for worker in workers:
        worker.start()
    batches: list[_Batch] = []
    try:
        while len(batches) < procs:
            try:
                kind, payload = out.get(timeout=1.0)
            except queue.Empty:
                if not any(w.is_alive() for w in workers) and out.empty():
                    raise IndexWriteError("an indexing worker died unexpectedly; nothing was committed") from None
                continue
            if kind == "progress":
                tick(payload)
            elif kind == "done":
                batches.append(payload)
            else:
                raise IndexWriteError(
                    f"indexing failed: {payload}. The last committed index is intact; "
                    "fix the cause (free disk space?) and run again."
                )
    finally:
        for worker in workers:
            worker.join(timeout=5 if len(batches) == procs else 0)
            if worker.is_alive():
                worker.terminate()
    return batches


def _build(ix: FileIndex, files: list[str], procs: int, tick: Callable[[int], None], lock_fd: int) -> list[_Batch]:
    if procs > 1 and len(files) >= PARALLEL_MIN_FILES:
        return _build_parallel(ix, files, procs, tick, lock_fd)
    batch = _Batch()
    _build_segment(ix, _file_items(enumerate(files), batch, tick), batch)
    tick(len(files) % _PROGRESS_EVERY)
    return [batch]


# ---------------------------------------------------------------- committing


def _lock(ix: FileIndex, timeout: float) -> SegmentWriter:
    try:
        return ix.writer(timeout=timeout, codec=CODEC)
    except LockError:
        raise IndexBusyError(
            f"another indexer is writing to {ix.storage.folder}; wait for it to finish and run again"
        ) from None


def _drop_duplicates(batches: list[_Batch], summary: IndexSummary) -> dict[str, np.ndarray | None]:
    """Keep the last story of each code across ``batches``; return code -> signature of the one kept."""
    winner: dict[str, tuple[tuple[int, int], int, int]] = {}
    for b, batch in enumerate(batches):
        for docnum, (order, story_id) in enumerate(batch.docs):
            previous = winner.get(story_id)
            if previous is None or previous[0] < order:
                winner[story_id] = (order, b, docnum)
            if previous is not None:
                summary.duplicates += 1
                loser = previous if previous[0] < order else (order, b, docnum)
                batches[loser[1]].delete(loser[2])
    return {story_id: batches[b].signatures[docnum] for story_id, (_, b, docnum) in winner.items()}


def _commit(
    ix: FileIndex,
    writer: SegmentWriter,
    batches: list[_Batch],
    gone_paths: Iterable[str],
    manifest: Manifest,
    summary: IndexSummary,
) -> None:
    """Apply deletions, then atomically publish old and new segments together."""
    reader = writer.reader()
    has_old = reader.doc_count_all() > 0
    kept = _drop_duplicates(batches, summary)
    folder = ix.storage.folder
    found_groups = groups.assign(reader, groups.load(folder, ix.latest_generation()), list(kept.items()))
    for story_id in kept:
        if has_old and writer.delete_by_term("id", story_id):
            summary.updated += 1
        else:
            summary.added += 1
    for path in gone_paths:
        summary.removed += writer.delete_by_term("path", path)
    ix_gen = writer.generation
    _write_manifest(ix, ix_gen, manifest)
    groups.write(folder, ix_gen, found_groups)
    segments = [segment for batch in batches for segment in batch.segments]
    commit_segments(writer, segments, lambda committed: complete_words(ix, committed, ix_gen))
    _remove_old_manifests(ix, ix_gen)
    groups.remove_older(folder, ix_gen)
    remove_older_indexes(folder, ix_gen)


def _guarded(index_dir: str | os.PathLike, timeout: float, work: Callable[[FileIndex, SegmentWriter], None]) -> None:
    """Run ``work`` holding the index lock; cancel on any failure, translating disk errors."""
    ix = open_index(index_dir, create=True)
    writer = _lock(ix, timeout)
    try:
        work(ix, writer)
    except OSError as exc:
        abandon_writer(ix, writer)
        raise IndexWriteError(
            f"could not write the index in {index_dir}: {exc.strerror or exc}. "
            "The last committed index is intact; fix the cause (free disk space?) and run again."
        ) from exc
    except BaseException:
        abandon_writer(ix, writer)
        raise


def index_paths(
    paths: Sequence[str | os.PathLike],
    index_dir: str | os.PathLike,
    *,
    procs: int | None = None,
    progress: Callable[[int, int], Callable[[int], None]] | None = None,
    timeout: float = 0.0,
) -> IndexSummary:
    """Index story files and folders into ``index_dir``, incrementally.

    ``progress(total_files, unchanged)`` may return a callback that receives
    counts of files done.  ``procs`` defaults to :func:`default_procs`.
    Raises :class:`IndexBusyError` when another writer holds the lock and
    :class:`IndexWriteError` when the index can't be written, and
    :class:`FileNotFoundError` naming a path that does not exist.
    """
    started = time.perf_counter()
    summary = IndexSummary()
    procs = procs or default_procs()
    # Checked here, before the lock: inside it a missing input would be
    # reported as a failure to write the index.
    iter_story_files(paths)

    def work(ix: FileIndex, writer: SegmentWriter) -> None:
        plan = _plan(paths, load_manifest(ix))
        summary.skips.extend(plan.skips)
        summary.unchanged_files = plan.unchanged
        tick = progress(len(plan.to_read), plan.unchanged) if progress else (lambda n: None)
        batches = _build(ix, plan.to_read, procs, tick, lock_fd(writer)) if plan.to_read else []
        for batch in batches:
            summary.skips.extend(batch.skips)
            summary.warnings.extend(batch.warnings)
            plan.manifest.skips.update(batch.skipped_files)
        _commit(ix, writer, batches, plan.gone, plan.manifest, summary)

    _guarded(index_dir, timeout, work)
    summary.seconds = time.perf_counter() - started
    return summary


def add_stories(index_dir: str | os.PathLike, stories: Sequence[Story], timeout: float = 10.0) -> IndexSummary:
    """Add or replace stories (by id), committed when this returns."""
    started = time.perf_counter()
    summary = IndexSummary()

    def work(ix: FileIndex, writer: SegmentWriter) -> None:
        items = (((0, n), story, "") for n, story in enumerate(stories))
        batch = _build_segment(ix, items, _Batch())
        _commit(ix, writer, [batch], (), load_manifest(ix), summary)

    _guarded(index_dir, timeout, work)
    summary.seconds = time.perf_counter() - started
    return summary


def delete_story(index_dir: str | os.PathLike, story_id: str, timeout: float = 10.0) -> bool:
    """Delete one story by id; False if there was none.  Committed when this returns."""
    summary = IndexSummary()

    def work(ix: FileIndex, writer: SegmentWriter) -> None:
        summary.removed = writer.delete_by_term("id", story_id)
        if summary.removed:
            _commit(ix, writer, [], (), load_manifest(ix), summary)
        else:
            writer.cancel()

    _guarded(index_dir, timeout, work)
    return summary.removed > 0
