"""How a story becomes a Xapian document, and back.

Terms are those of :func:`search_service.analysis.term_positions`, so
folding, stop words and stemming are the Whoosh engine's.  Each word is
indexed twice:

* unprefixed, for free text, without positions: a headline occurrence adds
  :data:`HEADLINE_WDF` to the within-document frequency and a body one 1,
  so BM25 over these terms is the Whoosh engine's BM25F (a headline word
  counts as three body words, in frequency and in length);
* with :data:`HEADLINE` or :data:`BODY` before it, for ``headline:``/``body:``,
  with the same frequencies and the word's positions in its field (a phrase
  is matched on these, in either field, and scored on the unprefixed terms:
  :mod:`.query`).  Every story's length is so exactly twice its weighted
  length, and BM25 only uses a length over the average length.

Besides, for near-duplicates: its MinHash signature (a value) with one
term per LSH band (:data:`BAND`), and, once it has versions, its group's
label (a value to collapse on and a term to list the group by: :mod:`.groups`).

The story itself is the document data (JSON); dates are values: seconds
since 1970 (range filters, sorts), the same negated (``sort=oldest`` with
undated stories last) and ``YYYY-MM`` (facets).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import xapian

from ...analysis import term_positions
from ...duplicates import band_hashes, signature
from ...model import StoredStory
from ...stories import Story, public_source

HEADLINE = "XH"
BODY = "XB"
#: Prefixes of the fields a query may name.
FIELD_PREFIXES = {"headline": HEADLINE, "body": BODY}
ID = "Q"
#: A term for the file a story came from (its path's hash), to drop its stories when the file changes.
FILE = "XF"
#: A near-duplicate band hash: ``XD`` + band (hex digit) + hash (16 hex digits).
BAND = "XD"
#: A near-duplicate group's label (a story id), on each story of the group.
GROUP = "XG"
HEADLINE_WDF = 3
#: Xapian's limit on a term is 245 bytes; longer "words" are not searchable anyway.
MAX_TERM_BYTES = 240

SLOT_SECONDS = 0
SLOT_NEGATED = 1
SLOT_MONTH = 2
SLOT_GROUP = 3
SLOT_SIGNATURE = 4
#: ``label<TAB>YYYY-MM`` of a story in a group (facets count a group once).
SLOT_GROUP_MONTH = 5

EPOCH = datetime(1970, 1, 1)


def utc(when: datetime) -> datetime:
    """``when`` as a naive UTC time (a naive time is UTC already)."""
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo is not None else when


def seconds(when: datetime) -> float:
    """``when`` as seconds since 1970 (a naive time is UTC)."""
    return (utc(when) - EPOCH).total_seconds()


def from_seconds(value: float) -> datetime:
    """The naive UTC time ``value`` seconds after 1970 (to the microsecond)."""
    return EPOCH + timedelta(microseconds=round(value * 1_000_000))


def to_document(
    story: Story, path: str = "", analysed: tuple[dict[str, list[int]], dict[str, list[int]]] | None = None
) -> xapian.Document:
    """The Xapian document for ``story``; ``path`` is the file it came from ("" for the API).

    ``analysed`` may give the headline's and the body's ``term -> positions``
    (:func:`~search_service.analysis.term_positions`) already computed.  Its
    group (:data:`SLOT_GROUP`, :data:`GROUP`) is set by :mod:`.groups` when
    it has versions.
    """
    doc = xapian.Document()
    data = story.to_dict()
    data["published"] = utc(story.published).isoformat() if story.published else None
    doc.set_data(json.dumps(data, ensure_ascii=False))
    doc.add_boolean_term(ID + story.id)
    if path:
        doc.add_boolean_term(FILE + file_key(path))
    headline, body = analysed or (term_positions(story.headline), term_positions(story.body))
    add_posting, add_term = doc.add_posting, doc.add_term
    wdf: dict[str, int] = {}
    for prefix, terms, weight in ((HEADLINE, headline, HEADLINE_WDF), (BODY, body, 1)):
        for term, positions in terms.items():
            if len(term) * 4 <= MAX_TERM_BYTES or len(term.encode()) <= MAX_TERM_BYTES:
                wdf[term] = wdf.get(term, 0) + weight * len(positions)
                prefixed = prefix + term
                for pos in positions:
                    add_posting(prefixed, pos + 1, weight)
    for term, frequency in wdf.items():
        add_term(term, frequency)
    sig = signature(body)
    if sig is not None:
        doc.add_value(SLOT_SIGNATURE, sig.tobytes())
        for term in band_terms(sig):
            doc.add_boolean_term(term)
    if story.published is not None:
        at = seconds(story.published)
        doc.add_value(SLOT_SECONDS, xapian.sortable_serialise(at))
        doc.add_value(SLOT_NEGATED, xapian.sortable_serialise(-at))
        month = utc(story.published)
        doc.add_value(SLOT_MONTH, f"{month.year:04d}-{month.month:02d}")
    return doc


def band_terms(sig: np.ndarray) -> list[str]:
    """The band terms of a signature (:data:`BAND`)."""
    return [f"{BAND}{band:x}{value:016x}" for band, value in enumerate(band_hashes(sig[None, :])[0].tolist())]


def story_signature(doc: xapian.Document) -> np.ndarray | None:
    """The MinHash signature a document keeps, or None (too short to group)."""
    stored = doc.get_value(SLOT_SIGNATURE)
    return np.frombuffer(stored, dtype=np.uint32) if stored else None


def file_key(path: str) -> str:
    return hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()


def fields_of(doc: xapian.Document) -> dict[str, Any]:
    """The stored story of a document, as a dict (``published`` a datetime or None)."""
    data = json.loads(doc.get_data())
    published = data.get("published")
    data["published"] = datetime.fromisoformat(published) if published else None
    return data


def stored_story(doc: xapian.Document) -> StoredStory:
    data = fields_of(doc)
    return StoredStory(
        id=data["id"],
        headline=data["headline"],
        published=data["published"],
        body=data["body"],
        source=public_source(data.get("source")),
        url=data.get("url"),
    )
