"""How a story becomes a Xapian document, and back.

Terms are those of :func:`search_service.analysis.term_positions`, so
folding, stop words and stemming are the Whoosh engine's.  Each word is
indexed three times:

* unprefixed, for free text: a headline occurrence adds
  :data:`HEADLINE_WDF` to the within-document frequency and a body one 1,
  so BM25 over these terms is the Whoosh engine's BM25F (a headline word
  counts as three body words, in frequency and in length).  Body positions
  start :data:`FIELD_GAP` after the headline's, so a phrase never spans both;
* with :data:`HEADLINE` or :data:`BODY` before it, for ``headline:``/``body:``,
  with the same frequencies.  Every story's length is so exactly twice its
  weighted length, and BM25 only uses a length over the average length.

The story itself is the document data (JSON); dates are values: seconds
since 1970 (range filters, sorts), the same negated (``sort=oldest`` with
undated stories last) and ``YYYY-MM`` (facets).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import xapian

from ...analysis import term_positions
from ...model import StoredStory
from ...stories import Story, public_source

HEADLINE = "XH"
BODY = "XB"
#: Prefixes of the fields a query may name.
FIELD_PREFIXES = {"headline": HEADLINE, "body": BODY}
ID = "Q"
#: A term for the file a story came from (its path's hash), to drop its stories when the file changes.
FILE = "XF"
HEADLINE_WDF = 3
FIELD_GAP = 100
#: Xapian's limit on a term is 245 bytes; longer "words" are not searchable anyway.
MAX_TERM_BYTES = 240

SLOT_SECONDS = 0
SLOT_NEGATED = 1
SLOT_MONTH = 2

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


def to_document(story: Story, path: str = "") -> xapian.Document:
    """The Xapian document for ``story``; ``path`` is the file it came from ("" for the API)."""
    doc = xapian.Document()
    data = story.to_dict()
    data["published"] = utc(story.published).isoformat() if story.published else None
    doc.set_data(json.dumps(data, ensure_ascii=False))
    doc.add_boolean_term(ID + story.id)
    if path:
        doc.add_boolean_term(FILE + file_key(path))
    headline = term_positions(story.headline)
    end = 0
    for term, positions in headline.items():
        if len(term.encode()) <= MAX_TERM_BYTES:
            for pos in positions:
                doc.add_posting(term, pos + 1, HEADLINE_WDF)
                doc.add_posting(HEADLINE + term, pos + 1, HEADLINE_WDF)
        end = max(end, positions[-1] + 1)
    for term, positions in term_positions(story.body).items():
        if len(term.encode()) <= MAX_TERM_BYTES:
            for pos in positions:
                doc.add_posting(term, end + FIELD_GAP + pos, 1)
                doc.add_posting(BODY + term, pos + 1, 1)
    if story.published is not None:
        at = seconds(story.published)
        doc.add_value(SLOT_SECONDS, xapian.sortable_serialise(at))
        doc.add_value(SLOT_NEGATED, xapian.sortable_serialise(-at))
        month = utc(story.published)
        doc.add_value(SLOT_MONTH, f"{month.year:04d}-{month.month:02d}")
    return doc


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
