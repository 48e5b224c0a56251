"""The engine-neutral model: what is asked of a search engine, and what it answers.

Every backend (:mod:`search_service.backends`) takes and returns these
types; the web layer, the CLI and the library's users see nothing else.

Each response type declares its JSON shape once, beside its fields
(:func:`shaped`): :func:`to_json` serializes by it and :func:`json_schema`
turns it into the OpenAPI schema served at ``/api/openapi.json``, so the
document and the responses cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .config import Limits
from .highlight import MAX_FRAGMENTS, fragments, mark_all
from .stories import ID_PATTERN, MAX_ID_LENGTH, Skip

SORTS = ("relevance", "recent", "newest", "oldest")

Schema = dict[str, Any]
#: A field's schema, or a function of the service's limits giving it.
SchemaSource = Schema | Callable[[Limits], Schema]

#: How dates and times come out: ISO 8601 without an offset (aware times are stored as UTC).
DATETIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$"
STORY_ID_SCHEMA: Schema = {"type": "string", "pattern": f"^{ID_PATTERN.pattern}$", "maxLength": MAX_ID_LENGTH}


def nullable(schema: Schema) -> Schema:
    """``schema`` or ``null``."""
    return {"oneOf": [schema, {"type": "null"}]}


def ref(name: str) -> Schema:
    """A reference to a component schema of the OpenAPI document."""
    return {"$ref": f"#/components/schemas/{name}"}


def closed_object(properties: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    """A closed object whose properties are all required except ``optional``."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def shaped(schema: SchemaSource, *, digits: int | None = None, optional: bool = False, **kwargs: Any) -> Any:
    """A dataclass field with its JSON schema; ``digits`` rounds a float when serialized.

    An ``optional`` field is left out of the JSON when it is None (and is not required by the schema).
    """
    return field(metadata={"schema": schema, "digits": digits, "optional": optional}, **kwargs)


_PUBLISHED = nullable({"type": "string", "pattern": DATETIME_PATTERN})
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}}


class QueryError(ValueError):
    """The request can't be run as sent; the message says what to change, in the user's words."""


class QueryTimeout(QueryError):
    """The query ran past its time limit."""


class IndexBusyError(RuntimeError):
    """Another process is writing to the index; retry shortly."""


class EngineUnavailable(RuntimeError):
    """Part of the collection can't be reached now (a shard with no live copy); retry later."""


class IndexWriteError(RuntimeError):
    """The index could not be written (disk full, permissions); the last commit is intact."""


@dataclass(frozen=True)
class SearchRequest:
    """What to search for; a backend validates it (:func:`check_request`) before running it."""

    q: str
    page: int = 1
    per_page: int = 10
    sort: str = "relevance"
    date_from: date | None = None
    date_to: date | None = None
    #: Near-duplicate stories shown as one hit (the best-ranked) with the others as ``similar``; False shows each.
    collapse: bool = True
    #: Off: the results of the query as typed, even when a spelling correction would find stories.
    spell: bool = True


def check_request(request: SearchRequest, limits: Limits) -> None:
    """Raise :class:`QueryError` for a request outside ``limits`` (the same for every backend)."""
    if request.sort not in SORTS:
        raise QueryError(f"sort must be one of {', '.join(SORTS)}, not {request.sort!r}")
    if not 1 <= request.per_page <= limits.max_per_page:
        raise QueryError(f"per_page must be between 1 and {limits.max_per_page}")
    if request.page < 1:
        raise QueryError("page must be 1 or more")
    if request.page * request.per_page > limits.max_depth:
        raise QueryError(
            f"results beyond the first {limits.max_depth:,} can't be paged to; narrow the query or the dates"
        )
    if request.date_from and request.date_to and request.date_from > request.date_to:
        raise QueryError("'from' is after 'to'")


HIGHLIGHTS_SCHEMA = closed_object(
    {
        "headline": {"type": "string", "description": "The headline, HTML-escaped, matched words in `<mark>`."},
        "body": {
            "type": "array",
            "maxItems": MAX_FRAGMENTS,
            "items": {"type": "string"},
            "description": "Fragments of the body (HTML-escaped, `<mark>` only), cut at words, "
            "with `…` where text was left out.",
        },
    }
)


@dataclass
class Hit:
    """One story in a result list, with its matches marked."""

    id: str = shaped(STORY_ID_SCHEMA)
    headline: str = shaped({"type": "string"})
    published: datetime | None = shaped(_PUBLISHED)
    score: float | None = shaped(nullable({"type": "number"}) | {"description": "null when sorted by date."}, digits=4)
    highlights: dict[str, Any] = shaped(ref("Highlights"))
    similar: dict[str, Any] | None = shaped(
        nullable(
            closed_object(
                {"count": {"type": "integer", "minimum": 1}, "ids": {"type": "array", "items": STORY_ID_SCHEMA}}
            )
        )
        | {"description": "Other versions of this story (near-duplicates), shown under it; null when it has none."},
        default=None,
    )

    @classmethod
    def marked(cls, stored: StoredStory, score: float | None, terms: dict[str, frozenset[str]]) -> Hit:
        """The hit for a stored story, ``terms`` (per field) marked in its headline and body fragments."""
        return cls(
            id=stored.id,
            headline=stored.headline,
            published=stored.published,
            score=score,
            highlights={
                "headline": mark_all(stored.headline, terms.get("headline", frozenset())),
                "body": fragments(stored.body, terms.get("body", frozenset())),
            },
        )

    def to_dict(self) -> dict[str, Any]:
        return to_json(self)


@dataclass
class SearchResult:
    """One page of hits, the total, the facets, a spelling suggestion or correction, and a notice."""

    query: str = shaped({"type": "string"})
    total: int = shaped(
        {
            "type": "integer",
            "minimum": 0,
            "description": "Results on all pages: stories matching, with each group of near-duplicates counted "
            "once (as are the facets) unless collapse=off.",
        }
    )
    page: int = shaped({"type": "integer", "minimum": 1})
    per_page: int = shaped(lambda limits: {"type": "integer", "minimum": 1, "maximum": limits.max_per_page})
    sort: str = shaped({"type": "string", "enum": list(SORTS)})
    took_ms: float = shaped({"type": "number", "minimum": 0}, digits=2)
    hits: list[Hit] = shaped(lambda limits: {"type": "array", "maxItems": limits.max_per_page, "items": ref("Hit")})
    suggestion: str | None = shaped(
        nullable({"type": "string"})
        | {
            "description": "The query with its misspelt words corrected, when that finds stories "
            "and the results are not already those of the correction."
        }
    )
    facets: dict[str, dict[str, int]] = shaped(
        closed_object(
            {
                "year": _COUNTS | {"propertyNames": {"pattern": r"^\d{4}$"}},
                "month": _COUNTS | {"propertyNames": {"pattern": r"^\d{4}-\d{2}$"}},
            }
        )
    )
    notice: str | None = shaped(
        nullable({"type": "string"})
        | {
            "description": "Set when the query was not searched as typed: what was searched and why "
            "(malformed syntax searched as words, only exclusions, nothing to search for)."
        },
        default=None,
    )
    shards: dict[str, int] | None = shaped(
        closed_object({"total": {"type": "integer", "minimum": 1}, "failed": {"type": "integer", "minimum": 0}})
        | {
            "description": "Engines with shards only: how many there are and how many did not answer "
            "(their stories are missing from this result)."
        },
        optional=True,
        default=None,
    )

    corrected_from: str | None = shaped(
        nullable({"type": "string"})
        | {
            "description": "The query as typed, when it found nothing and these are the results of its "
            "spelling correction (`query`); `spell=off` asks for the query as typed."
        },
        default=None,
    )
    estimated: bool | None = shaped(
        {"type": "boolean", "const": True}
        | {
            "description": 'Present when `total` and the facets are estimates ("about N", three significant '
            "digits), counted in a sample of the archive: engines that do so for queries matching many "
            "stories say from how many in their documentation."
        },
        optional=True,
        default=None,
    )

    def to_dict(self) -> dict[str, Any]:
        return to_json(self)


@dataclass(frozen=True)
class StoredStory:
    """A whole story as the index keeps it."""

    id: str = shaped(STORY_ID_SCHEMA)
    headline: str = shaped({"type": "string"})
    published: datetime | None = shaped(_PUBLISHED)
    body: str = shaped({"type": "string", "description": "Plain text; paragraphs separated by a blank line."})
    source: str | None = shaped(
        nullable({"type": "string"})
        | {"description": "Where the story came from: a file's name, `api`, or the name or address its writer gave."}
    )
    url: str | None = shaped(nullable({"type": "string"}))
    versions: list[dict[str, Any]] = shaped(
        {
            "type": "array",
            "items": closed_object({"id": STORY_ID_SCHEMA, "headline": {"type": "string"}, "published": _PUBLISHED}),
            "description": "Other versions of this story (near-duplicates), oldest first.",
        },
        default_factory=list,
    )

    def to_dict(self) -> dict[str, Any]:
        return to_json(self)


@dataclass(frozen=True)
class CollectionStats:
    """Size and date range of the collection."""

    stories: int
    first: datetime | None
    last: datetime | None


@dataclass
class IndexSummary:
    """What one indexing run or write did; ``line()`` is the one-line report users see."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged_files: int = 0
    duplicates: int = 0
    warnings: list[str] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def indexed(self) -> int:
        return self.added + self.updated

    def line(self) -> str:
        rate = self.indexed / self.seconds if self.seconds > 0 else 0.0
        text = f"{self.added} added, {self.updated} updated, {self.removed} removed, {len(self.skips)} skipped"
        if self.duplicates:
            text += f", {counted(self.duplicates, 'duplicate story code')} (the later file won)"
        if self.unchanged_files:
            text += f", {counted(self.unchanged_files, 'file')} unchanged"
        if self.warnings:
            text += f", {counted(len(self.warnings), 'warning')}"
        return f"{text}; {self.seconds:.1f} s, {rate:,.0f} stories/s"


@dataclass
class GroupingSummary:
    """What a grouping pass over every shard did (``search-service group``); ``line()`` is its report."""

    #: Stories sharing a band hash with another story, and the other stories of their groups.
    stories: int = 0
    #: Stories given another group's label (joined to versions they had not been grouped with).
    relabelled: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{counted(self.stories, 'story', 'stories')} with possible versions looked at, "
            f"{counted(self.relabelled, 'story', 'stories')} regrouped; {self.seconds:.1f} s"
        )


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: "1 file", "2 files" (``plural`` if not just an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def to_json(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses by their fields, datetimes as ISO 8601, shaped floats rounded."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None and f.metadata.get("optional"):
                continue
            digits = f.metadata.get("digits")
            out[f.name] = round(item, digits) if digits is not None and item is not None else to_json(item)
        return out
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def json_schema(cls: type, limits: Limits) -> Schema:
    """The JSON schema of a shaped dataclass's :func:`to_json` output, for a service with ``limits``."""
    properties = {}
    for f in dataclasses.fields(cls):
        source = f.metadata["schema"]
        properties[f.name] = source(limits) if callable(source) else source
    optional = tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("optional"))
    return closed_object(properties, optional)


__all__ = [
    "SORTS",
    "CollectionStats",
    "EngineUnavailable",
    "GroupingSummary",
    "Hit",
    "IndexBusyError",
    "IndexSummary",
    "IndexWriteError",
    "QueryError",
    "QueryTimeout",
    "SearchRequest",
    "SearchResult",
    "StoredStory",
    "check_request",
    "json_schema",
    "to_json",
]
