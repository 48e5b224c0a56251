"""Near-duplicate groups in Xapian: settled as stories are written, collapsed and listed at search.

Each story keeps its MinHash signature (a value) and a term per LSH band
(:mod:`.document`); a story with versions keeps its group's label as a
value (:data:`.document.SLOT_GROUP`, which searches collapse on) and as a
term (:data:`.document.GROUP`, to list the group).  Both live in the
database that holds the story, so shards need nothing beside their
databases, and a frontend sees every shard's groups.

:class:`Grouper` settles the groups of a batch of stories as they are
written (:func:`search_service.grouping.join`): it reads the candidates
from a database (the one being written, or a frontend's view of every
shard), overlaid with the batch's own stories and label changes, which the
writer applies at commit (:func:`relabel`).

Where the candidates are found decides which versions are grouped: the
write API of a frontend sees every shard; ``search-service index --shard``
sees its own shard only, so there versions of one story that hash to
different shards are not grouped until :func:`cross_shard_changes` (run by
``search-service group`` over every shard, see docs/scale-out.md) finds
them: every band hash that more than one story has, over all shards, and
the stories that have them and their groups' stories, grouped by
:func:`search_service.grouping.regroup`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import xapian

from ...duplicates import BANDS
from ...grouping import Candidate, join, regroup
from .document import BAND, GROUP, ID, SLOT_GROUP, SLOT_GROUP_MONTH, SLOT_MONTH, band_terms, story_signature

#: Terms per query when stories are fetched by band or group (a query of many terms, not one a term).
FETCH_TERMS = 2_000
#: Band terms a shard lists per call at most, about, when the shared ones are sought: every band
#: term at once (16 a story) does not come back from a remote shard at a million stories.
LIST_TERMS = 50_000


class Grouper:
    """The groups of stories being written, as read from ``reader`` and this batch.

    The batch's stories and label changes are kept here until the caller
    writes them (:attr:`batch`, :meth:`changed`): the reader is never the
    database being written (a query there between writes slows Xapian's writes).
    """

    def __init__(self, reader: xapian.Database, gone: set[str] | None = None) -> None:
        self.reader = reader
        #: Stories the reader still has that are deleted (not candidates, unless written again in this batch).
        self.gone = gone or set()
        #: Stories of this batch not yet visible to the reader, by id.
        self.batch: dict[str, Candidate] = {}
        self._bands: dict[str, set[str]] = {}
        #: Stories whose label this batch changed, by id.
        self._labels: dict[str, str] = {}

    def place(self, story_id: str, doc: xapian.Document) -> str | None:
        """Settle the group of the story ``doc`` is (its label set on ``doc``), before it is written; its label."""
        signature = story_signature(doc)
        self._labels.pop(story_id, None)
        self._forget(story_id)
        if signature is None:
            return None
        joined = join(story_id, signature, self._candidates(story_id, signature))
        if joined.label is not None:
            set_label(doc, joined.label)
            changes = dict.fromkeys([m for old in joined.merged for m in self._members(old)], joined.label)
            changes.update(dict.fromkeys(joined.adopted, joined.label))
            for member, label in changes.items():
                self._relabel(member, label)
        self.batch[story_id] = Candidate(story_id, signature, joined.label)
        for term in band_terms(signature):
            self._bands.setdefault(term, set()).add(story_id)
        return joined.label

    def changed(self) -> dict[str, str]:
        """Stories written before this batch whose label it changed: id -> label."""
        return {i: label for i, label in self._labels.items() if i not in self.batch}

    def _forget(self, story_id: str) -> None:
        old = self.batch.pop(story_id, None)
        if old is not None:
            for term in band_terms(old.signature):
                self._bands[term].discard(story_id)

    def _relabel(self, story_id: str, label: str) -> None:
        if story_id in self.batch:
            old = self.batch[story_id]
            self.batch[story_id] = Candidate(old.id, old.signature, label)
        self._labels[story_id] = label

    def _candidates(self, story_id: str, signature: np.ndarray) -> list[Candidate]:
        bands = band_terms(signature)
        found = {i: self.batch[i] for term in bands for i in self._bands.get(term, ())}
        for doc in _documents(self.reader, xapian.Query(xapian.Query.OP_OR, bands)):
            other = _story_id(doc)
            sig = story_signature(doc)
            known = other in found or other in self.batch or other in self.gone
            if not known and other != story_id and sig is not None:
                found[other] = Candidate(other, sig, self._labels.get(other) or label_of(doc))
        return list(found.values())

    def _members(self, label: str) -> list[str]:
        """Ids of the stories labelled ``label``, this batch's changes included."""
        found = {_story_id(doc) for doc in _documents(self.reader, xapian.Query(GROUP + label))}
        found = {i for i in found - self.gone if i not in self.batch and self._labels.get(i, label) == label}
        found |= {c.id for c in self.batch.values() if c.label == label}
        return sorted(found | {i for i, x in self._labels.items() if x == label})


def set_label(doc: xapian.Document, label: str) -> None:
    """Put ``doc`` in the group ``label`` (out of the one it was in)."""
    for item in list(doc.termlist()):
        term = item.term.decode("utf-8")
        if term.startswith(GROUP):
            doc.remove_term(term)
    doc.add_value(SLOT_GROUP, label)
    doc.add_value(SLOT_GROUP_MONTH, f"{label}\t{doc.get_value(SLOT_MONTH).decode()}")
    doc.add_boolean_term(GROUP + label)


def relabel(db: xapian.WritableDatabase, labels: dict[str, str]) -> None:
    """Give the stories of ``db`` named in ``labels`` their new label (stories it does not hold are skipped)."""
    for story_id, label in labels.items():
        for posting in list(db.postlist(ID + story_id)):
            doc = db.get_document(posting.docid)
            set_label(doc, label)
            db.replace_document(posting.docid, doc)


def cross_shard_changes(db: xapian.Database) -> tuple[dict[str, str], int]:
    """The labels to change so that versions anywhere in ``db`` (every shard) are grouped, and the stories looked at."""
    shared = shared_bands(db)
    stories: dict[str, Candidate] = {}
    for first in range(0, len(shared), FETCH_TERMS):
        for doc in _documents(db, xapian.Query(xapian.Query.OP_OR, shared[first : first + FETCH_TERMS])):
            signature = story_signature(doc)
            if signature is not None:
                stories[_story_id(doc)] = Candidate(_story_id(doc), signature, label_of(doc))
    labels = sorted({c.label for c in stories.values() if c.label is not None})
    for first in range(0, len(labels), FETCH_TERMS):
        for group in members(db, labels[first : first + FETCH_TERMS]).values():
            for doc in group:
                signature = story_signature(doc)
                if signature is not None:
                    stories.setdefault(_story_id(doc), Candidate(_story_id(doc), signature, label_of(doc)))
    by_band: dict[str, list[str]] = {}
    wanted = set(shared)
    for story in stories.values():
        for term in band_terms(story.signature):
            if term in wanted:
                by_band.setdefault(term, []).append(story.id)
    return regroup(stories, by_band.values()), len(stories)


def shared_bands(db: xapian.Database) -> list[str]:
    """The band terms more than one story of ``db`` has (over every shard), in order.

    Listed a slice of the hash range at a time (one band, or one band and
    the hash's first hex digits), so that no shard lists more than about
    :data:`LIST_TERMS` terms in one call (a band has a term per story at most).
    """
    digits, stories = 0, db.get_doccount()
    while stories > LIST_TERMS * 16**digits:
        digits += 1
    heads = [f"{head:0{digits}x}" for head in range(16**digits)] if digits else [""]
    return [
        item.term.decode()
        for band in range(BANDS)
        for head in heads
        for item in db.allterms(f"{BAND}{band:x}{head}")
        if item.termfreq > 1
    ]


def members(db: xapian.Database, labels: Iterable[str]) -> dict[str, list[xapian.Document]]:
    """The stories of each group in ``labels``, fetched at once (one exchange per shard)."""
    wanted = sorted(set(labels))
    out: dict[str, list[xapian.Document]] = {label: [] for label in wanted}
    if wanted:
        for doc in _documents(db, xapian.Query(xapian.Query.OP_OR, [GROUP + label for label in wanted])):
            label = label_of(doc)
            if label in out:
                out[label].append(doc)
    return out


def label_of(doc: xapian.Document) -> str | None:
    """The label of ``doc``'s group, or None."""
    value = doc.get_value(SLOT_GROUP)
    return value.decode("utf-8") if value else None


def _story_id(doc: xapian.Document) -> str:
    story_id: str = json.loads(doc.get_data())["id"]
    return story_id


def _documents(db: xapian.Database, query: xapian.Query) -> list[xapian.Document]:
    """Every document matching ``query``, fetched at once."""
    enquire = xapian.Enquire(db)
    enquire.set_query(query)
    enquire.set_weighting_scheme(xapian.BoolWeight())
    mset = enquire.get_mset(0, max(db.get_doccount(), 1))
    mset.fetch()
    return [item.document for item in mset]


__all__ = ["Grouper", "cross_shard_changes", "label_of", "members", "relabel", "set_label", "shared_bands"]
