"""The Whoosh schema, and how a story becomes a Whoosh document.

Text fields index through :func:`search_service.analysis.term_positions`
instead of Whoosh's token-object pipeline: the terms are identical (the query
parser uses the same normalisation through ``NewsAnalyzer``) but indexing is
several times faster.  No term vectors are stored: the highlighter re-tokenises
only the few hits it shows, which costs less than vectors cost every document.
Positions are stored as varint gaps (:class:`CompactPositions`) and dates as a
column only (:class:`Published`); an index written before either is refused
with a request to rebuild it (:func:`is_current`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from whoosh import fields, formats
from whoosh.analysis import Analyzer, Token
from whoosh.codec import whoosh3

from ...analysis import fold, term_positions, tokens
from ...stories import Story
from .groups import schema_fields
from .internals import decode_positions, encode_positions

#: Fields a query may name (``headline:word``); the rest are internal.
TEXT_FIELDS = ("headline", "body")


class NewsAnalyzer(Analyzer):
    """Whoosh adapter over :func:`~search_service.analysis.tokens`, used by the query parser."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NewsAnalyzer)

    def __hash__(self) -> int:
        return hash(NewsAnalyzer)

    def __call__(
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs: object,
    ) -> Iterator[Token]:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        if not tokenize:
            # Wildcards and ranges: fold the text but do not stem or split it.
            token.original = token.text = fold(value)
            token.boost = 1.0
            token.stopped = False
            if positions:
                token.pos = start_pos
            if chars:
                token.startchar, token.endchar = start_char, start_char + len(value)
            yield token
            return
        for term, pos, startchar, endchar in tokens(value):
            token.text = term
            token.boost = 1.0
            token.stopped = False
            if keeporiginal:
                token.original = value[startchar:endchar]
            if positions:
                token.pos = start_pos + pos
            if chars:
                token.startchar, token.endchar = start_char + startchar, start_char + endchar
            yield token


class CompactPositions(formats.Positions):
    """Whoosh's ``Positions`` format with each posting's positions as varint gaps.

    Whoosh's own encoding is a four-byte count and a pickled list of gaps,
    which the postings file pickles again (about 20 bytes a posting for
    one position); this one is a byte a gap for gaps under 128, and the
    count is the number of gaps (:func:`.internals.encode_positions`).
    """

    def encode(self, poslist: list[int]) -> bytes:
        return encode_positions(poslist)

    def decode_positions(self, valuestring: bytes) -> list[int]:
        return decode_positions(valuestring)

    def decode_frequency(self, valuestring: bytes) -> int:
        return sum(byte < 0x80 for byte in valuestring)


class NewsText(fields.TEXT):
    """A TEXT field (positions, for phrases) that indexes through the fast path."""

    def __init__(self, stored: bool = True) -> None:
        # A hyphenated word (Al-Haq) is two tokens, searched as two words
        # (Lucene's default too): as a phrase, "heat-transfer" would miss
        # "heat transfer" and "transfer of heat".  Only e-mail and COVID-19
        # shapes are one word (see analysis.SYMBOL_PATTERNS).
        super().__init__(analyzer=NewsAnalyzer(), phrase=True, stored=stored, multitoken_query="default")
        self.format: formats.Format = CompactPositions(field_boost=1.0)

    def index(self, value: str, **kwargs: Any) -> Iterator[tuple[bytes, int, float, bytes]]:
        boost = self.format.field_boost
        for term, poslist in term_positions(value).items():
            count = len(poslist)
            yield term.encode("utf-8"), count, count * boost, encode_positions(poslist)


class Published(fields.DATETIME):
    """A story's date: stored, and kept as a column that date ranges and sorts read as an array.

    Not indexed as terms: Whoosh's DATETIME writes eight terms a story (its
    numeric range tiers), which nothing here searches, and they were a third
    of the term index's entries.
    """

    indexed = False


#: Posting blocks uncompressed: zlib cost a tenth of indexing time and slows
#: every query's block reads, for an index about a third smaller.  Blocks of
#: 4,096 postings, not Whoosh's 128: reading a block costs some 7 us whatever
#: its size, and a common word's blocks were most of a phrase's CPU at a
#: million stories when its words were not cached (512: 24 ms a phrase at
#: the median, 4,096: 17).  This project scores with its own blocks of
#: stories (:mod:`.blocks`), not Whoosh's block maxima; only a phrase's
#: positions are read a block at a time (:func:`.postings.read_positions_at`).
CODEC = whoosh3.W3Codec(blocklimit=4096, compression=0)


def is_current(schema: fields.Schema) -> bool:
    """Whether an index with this schema was written in the current format (compact positions, dates unindexed)."""
    text = all(isinstance(schema[name].format, CompactPositions) for name in TEXT_FIELDS if name in schema)
    return text and isinstance(schema["published"], Published)


def build_schema() -> fields.Schema:
    """The index schema.  Headline weighting is applied at query time."""
    return fields.Schema(
        id=fields.ID(stored=True, unique=True),
        headline=NewsText(),
        body=NewsText(),
        published=Published(stored=True, sortable=True),
        path=fields.ID(stored=True),
        source=fields.STORED(),
        url=fields.STORED(),
        **schema_fields(),
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
