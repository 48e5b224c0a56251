"""Groups of near-duplicate stories in the Whoosh index (see :mod:`search_service.duplicates`).

Each story's MinHash signature is stored with it (``minhash``), computed by
the indexing workers.  The groups are settled by the indexing parent at
commit (:func:`assign`), when every new story of the run is known: a new
story's candidates are the committed stories sharing an LSH band hash with
it (looked up in the band table, an array search) and the run's other new
stories sharing one; those whose signatures agree enough are its versions.
A new story joins the group of the committed story it matches, or founds a
group with other new ones; committed stories keep their groups, so nothing
of the archive is recomputed.  (A new story that matches two existing
groups joins one; the groups are not merged.)

Kept beside each commit, like the file manifest:

* ``search_service_groups_GEN.json``: story id -> group label, for stories
  in a group of two or more only; readers turn it into per-document arrays
  (:class:`Groups`) once per commit;
* ``search_service_bands_GEN.npz``: story id and band hashes of every story
  with a signature (rows of stories deleted since stay until their id is
  written again; their signatures are gone, so they match nothing).

The band hashes are not indexed as terms: sixteen terms of one posting each
per story doubled the number of terms Whoosh writes, and indexing time.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from whoosh import fields
from whoosh.reading import IndexReader
from whoosh.searching import Searcher

from ...duplicates import BANDS, THRESHOLD, band_hashes, signature, similarity

_GROUPS = "search_service_groups_"
_BANDS = "search_service_bands_"
SIGNATURE_FIELD = "minhash"


def schema_fields() -> dict[str, fields.FieldType]:
    """The fields the schema adds for near-duplicates."""
    return {SIGNATURE_FIELD: fields.STORED()}


def document_fields(body: str) -> tuple[dict[str, Any], np.ndarray | None]:
    """The near-duplicate fields of a story with this body, and its signature (None: too short to group)."""
    sig = signature(body)
    return ({}, None) if sig is None else ({SIGNATURE_FIELD: sig.tobytes()}, sig)


# ---------------------------------------------------------------- at commit


@dataclass
class Table:
    """What a commit keeps for grouping the next: the groups, and every signed story's band hashes."""

    groups: dict[str, str] = field(default_factory=dict)
    ids: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))
    bands: np.ndarray = field(default_factory=lambda: np.zeros((0, BANDS), dtype=np.uint64))


def load(folder: str | os.PathLike[str], generation: int) -> Table:
    """The table of commit ``generation``; empty if it has none (an index from before groups)."""
    table = Table(_load_groups(folder, generation))
    try:
        with np.load(Path(folder) / f"{_BANDS}{generation}.npz") as saved:
            table.ids, table.bands = saved["ids"], saved["bands"]
    except FileNotFoundError:
        pass
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


class _Labels:
    """Union-find over story ids and group labels; a committed group's label wins."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.committed: set[str] = set()

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        # The root is a committed label if either side has one (the smaller if both), else the smaller id.
        keep, drop = sorted((ra, rb), key=lambda r: (r not in self.committed, r))
        self.parent[drop] = keep


def assign(reader: IndexReader, previous: Table, new: Sequence[tuple[str, np.ndarray | None]]) -> Table:
    """The table after adding the ``new`` stories (id, signature) to the committed ones read by ``reader``."""
    groups = dict(previous.groups)
    new_ids = {story_id for story_id, _ in new}
    for story_id in new_ids:
        groups.pop(story_id, None)
    keep = ~np.isin(previous.ids, list(new_ids)) if len(previous.ids) else np.zeros(0, dtype=bool)
    old_ids, old_bands = previous.ids[keep], previous.bands[keep]
    signed = [(story_id, sig) for story_id, sig in new if sig is not None]
    if not signed:
        return Table(groups, old_ids, old_bands)
    ids = [story_id for story_id, _ in signed]
    signatures = np.stack([sig for _, sig in signed])
    hashed = band_hashes(signatures)
    labels = _Labels()
    for i, old_id in _sharing_with_committed(hashed, old_bands, old_ids):
        old_sig = _stored_signature(reader, old_id)
        if old_sig is not None and similarity(signatures[i], old_sig) >= THRESHOLD:
            label = groups.setdefault(old_id, old_id)
            labels.committed.add(label)
            labels.union(ids[i], label)
    for i, j in _sharing_a_band(hashed):
        if similarity(signatures[i], signatures[j]) >= THRESHOLD:
            labels.union(ids[i], ids[j])
    sizes = Counter(labels.find(x) for x in list(labels.parent))
    for story_id in ids:
        root = labels.find(story_id)
        if sizes[root] > 1:
            groups[story_id] = root
    return Table(groups, np.concatenate([old_ids, np.array(ids, dtype=str)]), np.concatenate([old_bands, hashed]))


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
                pairs.update((i, str(old_ids[row])) for i in new_rows[int(old_bands[row, band])])
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
    docnum = reader.first_id("id", story_id) if ("id", story_id) in reader else None
    if docnum is None or reader.is_deleted(docnum):
        return None
    stored = reader.stored_fields(docnum).get(SIGNATURE_FIELD)
    return np.frombuffer(stored, dtype=np.uint32) if stored else None


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
    def load(cls, searcher: Searcher, folder: str | os.PathLike[str], size: int) -> Groups:
        code = np.arange(size, dtype=np.int64)
        by_label: dict[str, list[int]] = defaultdict(list)
        for story_id, label in _load_groups(folder, searcher.reader().generation()).items():
            docnum = searcher.document_number(id=story_id)
            if docnum is not None:
                by_label[label].append(docnum)
        members = {}
        for docnums in by_label.values():
            if len(docnums) > 1:
                docnums.sort()
                code[docnums] = docnums[0]
                members[docnums[0]] = docnums
        grouped = np.zeros(size, dtype=bool)
        for docnums in members.values():
            grouped[docnums] = True
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


def _load_groups(folder: str | os.PathLike[str], generation: int) -> dict[str, str]:
    try:
        return json.loads((Path(folder) / f"{_GROUPS}{generation}.json").read_text("utf-8"))
    except FileNotFoundError:
        return {}


__all__ = ["Groups", "Table", "assign", "document_fields", "load", "remove_older", "schema_fields", "write"]
