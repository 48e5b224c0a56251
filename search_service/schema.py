"""The Whoosh schema, and how a story becomes a Whoosh document.

Text fields index through :func:`search_service.analysis.term_positions`
instead of Whoosh's token-object pipeline: the terms are identical (the query
parser uses the same normalisation through ``NewsAnalyzer``) but indexing is
several times faster.  No term vectors are stored: the highlighter re-tokenises
only the few hits it shows, which costs less than vectors cost every document.
Importing this module also applies :mod:`.whoosh_fixes`.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

from whoosh import fields
from whoosh.codec import whoosh3
from whoosh.system import pack_uint

from . import whoosh_fixes
from .analysis import NewsAnalyzer, term_positions
from .stories import Story

whoosh_fixes.apply()

#: Fields a query may name (``headline:word``); the rest are internal.
TEXT_FIELDS = ("headline", "body")


class NewsText(fields.TEXT):
    """A TEXT field (positions, for phrases) that indexes through the fast path."""

    def __init__(self, stored: bool = True) -> None:
        # A hyphenated word (Al-Haq) is two tokens, searched as two words
        # (Lucene's default too): as a phrase, "heat-transfer" would miss
        # "heat transfer" and "transfer of heat".
        super().__init__(analyzer=NewsAnalyzer(), phrase=True, stored=stored, multitoken_query="default")

    def index(self, value: str, **kwargs: Any) -> Iterator[tuple[bytes, int, float, bytes]]:
        # Inlines formats.Positions.encode (a count, then pickled position deltas).
        boost = self.format.field_boost
        for term, poslist in term_positions(value).items():
            deltas = [poslist[0]]
            deltas.extend(b - a for a, b in zip(poslist, poslist[1:]))
            count = len(poslist)
            yield term.encode("utf-8"), count, count * boost, pack_uint(count) + pickle.dumps(deltas, 2)


#: Posting blocks uncompressed: zlib cost a tenth of indexing time and slows
#: every query's block reads, for an index about a third smaller.
CODEC = whoosh3.W3Codec(compression=0)


def build_schema() -> fields.Schema:
    """The index schema.  Headline weighting is applied at query time."""
    return fields.Schema(
        id=fields.ID(stored=True, unique=True),
        headline=NewsText(),
        body=NewsText(),
        published=fields.DATETIME(stored=True, sortable=True),
        path=fields.ID(stored=True),
        source=fields.STORED(),
        url=fields.STORED(),
    )


def to_document(story: Story, path: str = "") -> dict[str, Any]:
    """The Whoosh document for ``story``; ``path`` is the file it came from ("" for the API)."""
    doc: dict[str, Any] = {
        "id": story.id,
        "headline": story.headline,
        "body": story.body,
        "path": path,
        "source": story.source,
        "url": story.url,
    }
    if story.published is not None:
        doc["published"] = story.published
    return doc
