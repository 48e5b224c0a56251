"""Groups of near-duplicate stories in the Whoosh index (see :mod:`search_service.duplicates`).

Each story's MinHash signature is stored with it (``minhash``), computed by
the indexing workers, each value in its low 16 bits (b-bit MinHash,
:func:`stored_form`): 128 bytes a story, not 256, of stored fields that
don't compress.  Two different values agree in 16 bits once in 65,536, so
the similarity estimated from 64 of them moves by far less than one value
in 64 would move it; signatures are compared in that form everywhere, so a
pair is grouped alike whether its stories came in one run or two.  The groups are settled by the indexing parent at
commit (:func:`assign`), when every new story of the run is known: a new
story's candidates are the committed stories sharing an LSH band hash with
it (looked up in the band table, an array search) and the run's other new
stories sharing one; those whose signatures agree enough are its versions.
A new story joins the group of the committed story it matches, or founds a
group with other new ones; committed stories keep their groups, so nothing
of the archive is recomputed.  Grouping is transitive: a new story that
matches stories of two groups merges them (their labels change in the table,
nothing is compared again).

Kept beside each commit, like the file manifest:

* ``search_service_groups_GEN.json``: story id -> group label, for stories
  in a group of two or more only; readers turn it into per-document arrays
  (:class:`Groups`) once per commit, finding the ids' documents through
  :class:`StoryNumbers`, which looks an id up in a segment only once;
* ``search_service_bands_GEN.npz``: story id (UTF-8) and band hashes of every
  story with a signature (rows of stories deleted since stay until their id is
  written again; their signatures are gone, so they match nothing).  A band
  hash is kept in 32 bits (:func:`narrow`, the two halves of the 64-bit hash
  folded): half the table, at the cost of a few more candidates (a million
  stories share some hundred 32-bit values per band by chance), which the
  signatures' comparison rejects, so the groups are the same.

The band hashes are not indexed as terms: sixteen terms of one posting each
per story doubled the number of terms Whoosh writes, and indexing time.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from whoosh import fields
from whoosh.reading import IndexReader, TermNotFound

from ...duplicates import BANDS, PERMUTATIONS, THRESHOLD, band_hashes, signature, similarity
from ...grouping import UnionFind
from .internals import posting_blocks

_GROUPS = "search_service_groups_"
_BANDS = "search_service_bands_"
SIGNATURE_FIELD = "minhash"


def schema_fields() -> dict[str, fields.FieldType]:
    """The fields the schema adds for near-duplicates."""
    return {SIGNATURE_FIELD: fields.STORED()}


def document_fields(body: Mapping[str, Sequence[int]]) -> tuple[dict[str, Any], np.ndarray | None]:
    """The near-duplicate fields of a story, and its signature (None: too short to group).

    ``body`` is the story's body as indexing analyses it (term -> positions,
    :func:`search_service.analysis.term_positions`).
    """
    sig = signature(body)
    return ({}, None) if sig is None else ({SIGNATURE_FIELD: stored_form(sig).tobytes()}, sig)


def stored_form(signatures: np.ndarray) -> np.ndarray:
    """Signatures (``duplicates.signature``) as stored and compared: each value's low 16 bits."""
    return np.asarray(signatures).astype(np.uint16)


# ---------------------------------------------------------------- at commit


@dataclass
class Table:
    """What a commit keeps for grouping the next: the groups, and every signed story's band hashes."""

    groups: dict[str, str] = field(default_factory=dict)
    #: story ids, UTF-8 (NumPy bytes)
    ids: np.ndarray = field(default_factory=lambda: np.array([], dtype=bytes))
    bands: np.ndarray = field(default_factory=lambda: np.zeros((0, BANDS), dtype=np.uint32))


def narrow(hashes: np.ndarray) -> np.ndarray:
    """64-bit band hashes (:func:`~search_service.duplicates.band_hashes`) as the table keeps them, in 32 bits."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    return (hashes ^ (hashes >> np.uint64(32))).astype(np.uint32)


def load(folder: str | os.PathLike[str], generation: int) -> Table:
    """The table of commit ``generation``; empty if it has none (an index from before groups).

    A table written before ids were bytes and hashes 32 bits reads the same.
    """
    table = Table(_load_groups(folder, generation))
    try:
        with np.load(Path(folder) / f"{_BANDS}{generation}.npz") as saved:
            table.ids, table.bands = saved["ids"], saved["bands"]
    except FileNotFoundError:
        return table
    if table.ids.dtype.kind == "U":
        table.ids = np.char.encode(table.ids, "utf-8")
    if table.bands.dtype != np.uint32:
        table.bands = narrow(table.bands)
    return table


def write(folder: str | os.PathLike[str], generation: int, table: Table) -> None:
    """Write the table of commit ``generation`` (before its table of contents is)."""
    groups = Path(folder) / f"{_GROUPS}{generation}.json"
    bands = Path(folder) / f"{_BANDS}{generation}.npz"
    with open(groups.with_suffix(".tmp"), "w", encoding="utf-8") as out:
        json.dump(table.groups, out, separators=(",", ":"))
        out.flush()
        os.fsync(out.fileno())
    with open(bands.with_suffix(".tmp"), "wb") as out:
        np.savez(out, ids=table.ids, bands=table.bands)
        out.flush()
        os.fsync(out.fileno())
    os.replace(bands.with_suffix(".tmp"), bands)
    os.replace(groups.with_suffix(".tmp"), groups)


def remove_older(folder: str | os.PathLike[str], keep: int) -> None:
    for prefix, suffix in ((_GROUPS, ".json"), (_BANDS, ".npz")):
        for path in Path(folder).glob(f"{prefix}*"):
            if path.name != f"{prefix}{keep}{suffix}":
                path.unlink(missing_ok=True)


def assign(reader: IndexReader, previous: Table, new: Sequence[tuple[str, np.ndarray | None]]) -> Table:
    """The table after adding the ``new`` stories (id, signature) to the committed ones read by ``reader``.

    Only the new stories are compared (with each other, and with the
    committed stories sharing a band hash); committed groups a new story
    joins together become one group, relabelled in the table alone.
    """
    groups = dict(previous.groups)
    new_ids = {story_id for story_id, _ in new}
    for story_id in new_ids:
        groups.pop(story_id, None)
    keep = _missing(previous.ids, new_ids)
    old_ids, old_bands = previous.ids[keep], previous.bands[keep]
    signed = [(story_id, sig) for story_id, sig in new if sig is not None]
    if not signed:
        return Table(groups, old_ids, old_bands)
    ids = [story_id for story_id, _ in signed]
    full = np.stack([sig for _, sig in signed])
    hashed, signatures = narrow(band_hashes(full)), stored_form(full)
    # A set's root is a committed label if it has any (the smallest), so committed groups keep their
    # label; a new story (a row number) that matches two committed groups merges them under one.
    labels: UnionFind[int | str] = UnionFind(key=lambda r: (isinstance(r, int), str(r)))
    used = set(groups.values())
    for i, old_id in _sharing_with_committed(hashed, old_bands, old_ids):
        old_sig = _stored_signature(reader, old_id)
        if old_sig is not None and similarity(signatures[i], old_sig) >= THRESHOLD:
            if old_id not in groups:
                groups[old_id] = _fresh(old_id, used)
            labels.union(i, groups[old_id])
    for i, j in _sharing_a_band(hashed):
        if similarity(signatures[i], signatures[j]) >= THRESHOLD:
            labels.union(i, j)
    roots = {x: labels.find(x) for x in list(labels.parent)}
    merged = {label: root for label, root in roots.items() if isinstance(label, str) and label != root}
    if merged:
        groups = {story_id: str(merged.get(label, label)) for story_id, label in groups.items()}
    named: dict[int | str, str] = {}
    for i, story_id in enumerate(ids):
        root = roots.get(i)
        if root is not None:  # matched a committed story or another new one
            if root not in named:
                named[root] = root if isinstance(root, str) else _fresh(ids[root], used)
            groups[story_id] = named[root]
    return Table(groups, np.concatenate([old_ids, _encoded(ids)]), np.concatenate([old_bands, hashed]))


def _encoded(ids: Sequence[str] | set[str]) -> np.ndarray:
    return np.array([story_id.encode("utf-8") for story_id in ids], dtype=bytes)


def _missing(kept_ids: np.ndarray, ids: set[str]) -> np.ndarray:
    """Which of the table's ``kept_ids`` are not among ``ids``: a mask."""
    if not len(kept_ids):
        return np.zeros(0, dtype=bool)
    return ~np.isin(kept_ids, _encoded(ids)) if ids else np.ones(len(kept_ids), dtype=bool)


def _fresh(label: str, used: set[str]) -> str:
    """``label``, or with a suffix if a group already has it (a rewritten story's group keeps its old label)."""
    found, n = label, 1
    while found in used:
        n += 1
        found = f"{label}~{n}"
    used.add(found)
    return found


def _sharing_with_committed(hashed: np.ndarray, old_bands: np.ndarray, old_ids: np.ndarray) -> set[tuple[int, str]]:
    """(new row, committed id) pairs with an equal band hash in some band."""
    pairs: set[tuple[int, str]] = set()
    for band in range(BANDS):
        rows = np.flatnonzero(np.isin(old_bands[:, band], hashed[:, band]))
        if rows.size:
            new_rows: dict[int, list[int]] = defaultdict(list)
            for i, value in enumerate(hashed[:, band].tolist()):
                new_rows[value].append(i)
            for row in rows.tolist():
                story_id = old_ids[row].decode("utf-8")
                pairs.update((i, story_id) for i in new_rows[int(old_bands[row, band])])
    return pairs


def _sharing_a_band(hashed: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of rows (new stories) with an equal band hash in some band."""
    pairs: set[tuple[int, int]] = set()
    for band in range(BANDS):
        order = np.argsort(hashed[:, band], kind="stable")
        values = hashed[order, band]
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        ends = np.r_[starts[1:], len(values)]
        for start, end in zip(starts[ends - starts > 1].tolist(), ends[ends - starts > 1].tolist()):
            members = sorted(order[start:end].tolist())
            pairs.update((a, b) for n, a in enumerate(members) for b in members[n + 1 :])
    return pairs


def _stored_signature(reader: IndexReader, story_id: str) -> np.ndarray | None:
    """The signature of the live committed story ``story_id``, or None."""
    try:
        docnum = reader.first_id("id", story_id)
    except TermNotFound:  # deleted since its band hashes were kept (the term may still be listed)
        return None
    if docnum is None or reader.is_deleted(docnum):
        return None
    stored = reader.stored_fields(docnum).get(SIGNATURE_FIELD)
    if not stored:
        return None
    # An index from before b-bit signatures stored all 32 bits of each value.
    return stored_form(np.frombuffer(stored, dtype=np.uint32 if len(stored) == 4 * PERMUTATIONS else np.uint16))


# ---------------------------------------------------------------- at search


@dataclass
class Groups:
    """The near-duplicate groups of one commit as per-document arrays.

    ``code[d]`` is the group of document ``d`` (its own number when it has
    no versions); ``members`` lists the documents of each group of two or more.
    """

    code: np.ndarray
    grouped: np.ndarray
    members: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def load(
        cls, reader: IndexReader, folder: str | os.PathLike[str], alive: np.ndarray, numbers: StoryNumbers
    ) -> Groups:
        """The groups of ``reader``'s commit; ``alive`` is its live documents, ``numbers`` kept between commits."""
        size = len(alive)
        code = np.arange(size, dtype=np.int64)
        grouped = np.zeros(size, dtype=bool)
        table = _load_groups(folder, reader.generation())
        docnums = numbers.find(reader, list(table), alive)
        found = docnums >= 0
        _, label_codes = np.unique(np.array(list(table.values()), dtype=str), return_inverse=True)
        docnums, label_codes = docnums[found], label_codes.reshape(-1)[found]
        order = np.lexsort((docnums, label_codes))
        docnums, label_codes = docnums[order], label_codes[order]
        starts = np.flatnonzero(np.r_[True, label_codes[1:] != label_codes[:-1]]) if len(order) else order
        sizes = np.diff(np.r_[starts, len(order)])
        members = {}
        for start, n in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            group = docnums[start : start + n]
            code[group] = group[0]
            grouped[group] = True
            members[int(group[0])] = group.tolist()
        return cls(code, grouped, members)

    def versions(self, docnum: int) -> list[int]:
        """The other documents of ``docnum``'s group."""
        return [d for d in self.members.get(int(self.code[docnum]), ()) if d != docnum]

    def kept(self, ids: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Which of the stories ``ids`` (ranked ``rank``) stay when each group shows only its best-ranked
        story (lowest ``rank``, then lowest number): a mask over ``ids``."""
        keep = np.ones(len(ids), dtype=bool)
        grouped = np.flatnonzero(self.grouped[ids])
        if not grouped.size:
            return keep
        candidates = ids[grouped]
        order = np.lexsort((candidates, rank[grouped], self.code[candidates]))
        codes = self.code[candidates[order]]
        keep[grouped[order[np.r_[False, codes[1:] == codes[:-1]]]]] = False
        return keep


class StoryNumbers:
    """Story id -> document numbers, segment by segment, kept from commit to commit.

    A segment never changes once written (only which of its documents are
    deleted, which the corpus's ``alive`` mask says), so an id is looked up in
    a segment once: a commit that adds a story looks the grouped ids up in
    its new segment only, and those newly grouped in the others.
    """

    def __init__(self) -> None:
        #: segment id -> (ids looked up there, id -> its documents there, deleted ones included)
        self._segments: dict[str, tuple[set[str], dict[str, list[int]]]] = {}

    def find(self, reader: IndexReader, ids: Sequence[str], alive: np.ndarray) -> np.ndarray:
        """The live document number of each of ``ids``; -1 where there is none."""
        found = np.full(len(ids), -1, dtype=np.int64)
        index = {story_id: n for n, story_id in enumerate(ids)}
        segments = {}
        for leaf, offset in reader.leaf_readers():
            key = leaf.segment().segment_id()
            checked, present = segments[key] = self._segments.get(key) or (set(), {})
            missing = index.keys() - checked
            if missing:
                present.update(_local_numbers(leaf, missing))
                checked |= missing
            for story_id, locals_ in present.items():
                n = index.get(story_id)
                if n is not None:
                    for local in locals_:
                        if alive[offset + local]:
                            found[n] = offset + local
        self._segments = segments  # segments merged away are forgotten
        return found


def _local_numbers(leaf: IndexReader, ids: set[str]) -> dict[str, list[int]]:
    """The documents (deleted ones included) of each of ``ids`` that one segment has."""
    if leaf.doc_count_all() < len(ids):  # a small segment: its own few ids
        there = [text for text in (term.decode("utf-8") for term in leaf.lexicon("id")) if text in ids]
    else:
        there = [story_id for story_id in ids if ("id", story_id) in leaf]
    return {
        story_id: [int(d) for _, deltas, _, _ in posting_blocks(leaf, "id", story_id) for d in np.cumsum(deltas)]
        for story_id in there
    }


def _load_groups(folder: str | os.PathLike[str], generation: int) -> dict[str, str]:
    try:
        return json.loads((Path(folder) / f"{_GROUPS}{generation}.json").read_text("utf-8"))
    except FileNotFoundError:
        return {}


__all__ = [
    "Groups",
    "StoryNumbers",
    "Table",
    "assign",
    "document_fields",
    "load",
    "narrow",
    "remove_older",
    "schema_fields",
    "stored_form",
    "write",
]
