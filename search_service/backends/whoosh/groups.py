"""Groups of near-duplicate stories in the Whoosh index (see :mod:`search_service.duplicates`).

Each story's LSH band keys are indexed as terms of the ``dupkeys`` field and
its MinHash signature is stored (``minhash``), written by the indexing
workers with the story.  The groups are settled by the indexing parent at
commit (:func:`assign`), when every new story of the run is known: a new
story's candidates are the committed stories sharing a band key (a term
lookup each) and the run's other new stories sharing one; those whose
signatures agree enough are its versions.  A new story joins the group of
the committed story it matches, or founds a group with other new ones;
committed stories keep their groups, so nothing of the archive is
recomputed.  (A new story that matches two existing groups joins one; the
groups are not merged.)

The groups of a commit are kept beside it, like the file manifest, as
``search_service_groups_GEN.json``: story id -> group label, for stories in
a group of two or more only.  Readers turn it into per-document arrays
(:class:`Groups`) once per commit.
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

from ...duplicates import THRESHOLD, band_keys, signature, similarity

_PREFIX = "search_service_groups_"
KEYS_FIELD = "dupkeys"
SIGNATURE_FIELD = "minhash"


def schema_fields() -> dict[str, fields.FieldType]:
    """The fields the schema adds for near-duplicates."""
    return {KEYS_FIELD: fields.KEYWORD(), SIGNATURE_FIELD: fields.STORED()}


def document_fields(body: str) -> tuple[dict[str, Any], np.ndarray | None]:
    """The near-duplicate fields of a story with this body, and its signature (None: too short to group)."""
    sig = signature(body)
    if sig is None:
        return {}, None
    return {KEYS_FIELD: " ".join(band_keys(sig)), SIGNATURE_FIELD: sig.tobytes()}, sig


# ---------------------------------------------------------------- at commit


def _path(folder: str | os.PathLike[str], generation: int) -> Path:
    return Path(folder) / f"{_PREFIX}{generation}.json"


def load(folder: str | os.PathLike[str], generation: int) -> dict[str, str]:
    """Story id -> group label of the commit ``generation``; empty if it has none (an older index)."""
    try:
        return json.loads(_path(folder, generation).read_text("utf-8"))
    except FileNotFoundError:
        return {}


def write(folder: str | os.PathLike[str], generation: int, groups: dict[str, str]) -> None:
    """Write the groups of commit ``generation`` (before its table of contents) and drop older ones."""
    path = _path(folder, generation)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(groups, out, separators=(",", ":"))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def remove_older(folder: str | os.PathLike[str], keep: int) -> None:
    for path in Path(folder).glob(f"{_PREFIX}*"):
        if path.name != f"{_PREFIX}{keep}.json":
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


def assign(reader: IndexReader, previous: dict[str, str], new: Sequence[tuple[str, np.ndarray | None]]) -> dict[str, str]:
    """The groups after adding the ``new`` stories (id, signature) to the committed ones read by ``reader``."""
    groups = dict(previous)
    new_ids = {story_id for story_id, _ in new}
    for story_id in new_ids:
        groups.pop(story_id, None)
    labels = _Labels()
    signed = [(story_id, sig) for story_id, sig in new if sig is not None]
    buckets: dict[str, list[int]] = defaultdict(list)
    for i, (story_id, sig) in enumerate(signed):
        for key in band_keys(sig):
            buckets[key].append(i)
            for old_id, old_sig in _committed_with(reader, key):
                if old_id not in new_ids and similarity(sig, old_sig) >= THRESHOLD:
                    label = groups.setdefault(old_id, old_id)
                    labels.committed.add(label)
                    labels.union(story_id, label)
    checked: set[tuple[int, int]] = set()
    for members in buckets.values():
        for n, i in enumerate(members):
            for j in members[n + 1 :]:
                if (i, j) not in checked:
                    checked.add((i, j))
                    if similarity(signed[i][1], signed[j][1]) >= THRESHOLD:
                        labels.union(signed[i][0], signed[j][0])
    sizes = Counter(labels.find(x) for x in list(labels.parent))
    for story_id, _ in signed:
        root = labels.find(story_id)
        if sizes[root] > 1:
            groups[story_id] = root
    return groups


def _committed_with(reader: IndexReader, key: str) -> list[tuple[str, np.ndarray]]:
    """(id, signature) of the committed, live stories with band key ``key``."""
    if (KEYS_FIELD, key) not in reader:
        return []
    found = []
    for docnum in reader.postings(KEYS_FIELD, key).all_ids():
        if not reader.is_deleted(docnum):
            stored = reader.stored_fields(docnum)
            found.append((stored["id"], np.frombuffer(stored[SIGNATURE_FIELD], dtype=np.uint32)))
    return found


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
        for story_id, label in load(folder, searcher.reader().generation()).items():
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

    def collapse(self, matched: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """``matched`` with only the best-ranked story of each group (lowest ``rank``, then lowest number)."""
        candidates = np.flatnonzero(matched & self.grouped)
        if not candidates.size:
            return matched
        ordered = candidates[np.lexsort((candidates, rank[candidates], self.code[candidates]))]
        codes = self.code[ordered]
        later = np.r_[False, codes[1:] == codes[:-1]]
        out = matched.copy()
        out[ordered[later]] = False
        return out


__all__ = ["Groups", "assign", "document_fields", "load", "remove_older", "schema_fields", "write"]
