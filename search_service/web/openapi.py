"""The OpenAPI 3.1 description of the HTTP API, served at ``/api/openapi.json``.

The document is built from the running service's :class:`~search_service.config.Limits`
and request-size limit, from the same constants the code enforces (sort
names, the story-id pattern), and from the response types' own shapes
(:func:`search_service.model.json_schema`, which their serialization uses
too), so what it promises cannot drift from what the service does.  ``tests/test_openapi.py`` validates it and fuzzes the
live service against it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..config import Config, Limits
from ..model import (
    DATETIME_PATTERN,
    HIGHLIGHTS_SCHEMA,
    SORTS,
    STORY_ID_SCHEMA,
    Hit,
    Schema,
    SearchResult,
    StoredStory,
    closed_object,
    json_schema,
    nullable,
    ref,
)
from ..stories import MAX_URL_LENGTH

#: Most completions ``/api/suggest`` returns (the default of Engine.suggest).
MAX_SUGGESTIONS = 10

_REQUEST_ID_HEADER = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**_REQUEST_ID_HEADER, **(headers or {})},
        "content": {"application/json": {"schema": schema}},
    }


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return _json(ref("Error"), description, headers)


_ERRORS: dict[str, dict[str, Any]] = {
    "400": _error("A parameter or the query is wrong; the message says what to change."),
    "401": _error("The write API needs `Authorization: Bearer <token>` with the configured token."),
    "403": _error("The write API is off: no SEARCH_SERVICE_TOKEN is configured."),
    "404": _error("No story with this id."),
    "413": _error("The request body is larger than the service accepts."),
    "429": _error(
        "Too many requests from this client; retry after the seconds in `Retry-After`.",
        {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
    ),
    "500": _error("An unexpected failure; the request id is in the server log with the details."),
    "503": _error(
        "Another writer holds the index lock, or (engines with shards) a shard has no copy answering "
        "and partial results are off, or a write's shard is down; retry shortly."
    ),
}


def _errors(*codes: int) -> dict[str, dict[str, Any]]:
    """The shared error responses for ``codes`` (and always 429 and 500)."""
    return {str(c): _ERRORS[str(c)] for c in sorted({*codes, 429, 500})}


def _schemas(limits: Limits) -> dict[str, Schema]:
    published = nullable({"type": "string", "pattern": DATETIME_PATTERN})
    story_id = STORY_ID_SCHEMA
    return {
        "Error": closed_object(
            {
                "error": closed_object(
                    {
                        "code": {"type": "string", "description": "Machine-readable, e.g. `bad_request`."},
                        "message": {"type": "string", "description": "What went wrong, for people."},
                        "request_id": {"type": "string", "description": "Equals the X-Request-ID header."},
                    }
                )
            }
        ),
        "Highlights": HIGHLIGHTS_SCHEMA,
        "Hit": json_schema(Hit, limits),
        "SearchResult": json_schema(SearchResult, limits),
        "Story": json_schema(StoredStory, limits),
        "Related": closed_object({"hits": {"type": "array", "items": ref("Hit")}}),
        "Suggestions": closed_object(
            {
                "query": {"type": "string"},
                "suggestions": {"type": "array", "maxItems": MAX_SUGGESTIONS, "items": {"type": "string"}},
            }
        ),
        "Health": closed_object(
            {
                "status": {"const": "ok"},
                "stories": {"type": "integer", "minimum": 0},
                "first": published,
                "last": published,
                "writes_enabled": {"type": "boolean"},
            }
        ),
        "NewStory": {
            "type": "object",
            "properties": {
                "id": {"oneOf": [story_id, {"type": "integer", "minimum": 0}]},
                "headline": {"type": "string", "minLength": 1},
                "body": {"type": "string", "minLength": 1},
                "published": nullable({"type": "string"})
                | {"description": "ISO 8601 date or date and time; an offset is converted to UTC."},
                "url": nullable({"type": "string", "maxLength": MAX_URL_LENGTH, "pattern": "^(https?://\\S+)?$"}),
                "source": nullable({"type": "string"}) | {"description": "Where the story came from; default `api`."},
            },
            "description": "Empty or null optional fields count as absent; unknown fields are ignored.",
            "required": ["id", "headline", "body"],
        },
        "Written": closed_object(
            {
                "added": {"type": "integer", "minimum": 0},
                "updated": {"type": "integer", "minimum": 0},
                "ids": {"type": "array", "items": story_id},
            }
        ),
        "Deleted": closed_object({"deleted": story_id}),
    }


def _parameters(limits: Limits) -> dict[str, Schema]:
    return {
        "q": {
            "name": "q",
            "in": "query",
            "required": True,
            "description": 'Words to find. Syntax: AND, OR, NOT, -word, "phrases", headline:word, body:word, '
            "published:[2021-01-01 TO 2021-06-30], trailing wildcards (econom*); * alone is every story.",
            "schema": {"type": "string", "minLength": 1, "maxLength": limits.max_query_chars},
        },
        "page": {
            "name": "page",
            "in": "query",
            "description": f"Page number; page × per_page may not exceed {limits.max_depth}.",
            "schema": {"type": "integer", "minimum": 1, "maximum": limits.max_depth, "default": 1},
        },
        "per_page": {
            "name": "per_page",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": limits.max_per_page, "default": 10},
        },
        "sort": {
            "name": "sort",
            "in": "query",
            "description": "relevance; recent (relevance favouring newer stories); newest or oldest first.",
            "schema": {"type": "string", "enum": list(SORTS), "default": "relevance"},
        },
        "from": {
            "name": "from",
            "in": "query",
            "description": "Only stories published on or after this day.",
            "schema": {"type": "string", "format": "date"},
        },
        "to": {
            "name": "to",
            "in": "query",
            "description": "Only stories published on or before this day.",
            "schema": {"type": "string", "format": "date"},
        },
        "spell": {
            "name": "spell",
            "in": "query",
            "description": "on: a query that finds nothing is run with its misspelt words corrected, if that "
            "finds stories (`corrected_from` is then the query as typed); off: the results of the query as typed.",
            "schema": {"type": "string", "enum": ["on", "off"], "default": "on"},
        },
        "id": {
            "name": "id",
            "in": "path",
            "required": True,
            "schema": STORY_ID_SCHEMA,
        },
    }


def _param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def _paths(limits: Limits, max_request_bytes: int) -> dict[str, Any]:
    write_security: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Liveness and collection size",
                "responses": {"200": _json(ref("Health"), "The service is up."), **_errors()},
            }
        },
        "/api/search": {
            "get": {
                "operationId": "search",
                "summary": "Ranked, highlighted, faceted search",
                "description": f"Limits: {limits.max_query_chars} characters, {limits.max_terms} distinct terms, "
                f"{limits.max_expansions} words per wildcard, {limits.time_limit:g} s of work; "
                "breaking one is a 400 that says which.",
                "parameters": [_param(n) for n in ("q", "page", "per_page", "sort", "from", "to", "spell")],
                "responses": {"200": _json(ref("SearchResult"), "One page of hits."), **_errors(400, 503)},
            }
        },
        "/api/stories": {
            "post": {
                "operationId": "addStories",
                "summary": "Add or replace stories (by id)",
                "description": "One JSON object, or NDJSON (one object per line). Committed when the response "
                f"is sent. Bodies over {max_request_bytes} bytes are refused.",
                "security": write_security,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": ref("NewStory")},
                        "application/x-ndjson": {
                            "schema": {
                                "type": "array",
                                "items": ref("NewStory"),
                                "description": "Sent as one NewStory JSON object per line.",
                            }
                        },
                    },
                },
                "responses": {
                    "200": _json(ref("Written"), "Only existing stories were replaced."),
                    "201": _json(ref("Written"), "At least one story was added."),
                    **_errors(400, 401, 403, 413, 503),
                },
            }
        },
        "/api/stories/{id}": {
            "parameters": [_param("id")],
            "get": {
                "operationId": "getStory",
                "summary": "One story",
                "responses": {"200": _json(ref("Story"), "The story."), **_errors(400, 404, 503)},
            },
            "delete": {
                "operationId": "deleteStory",
                "summary": "Delete one story",
                "security": write_security,
                "responses": {"200": _json(ref("Deleted"), "Deleted."), **_errors(400, 401, 403, 404, 503)},
            },
        },
        "/api/stories/{id}/related": {
            "parameters": [_param("id")],
            "get": {
                "operationId": "relatedStories",
                "summary": "Stories most like this one (not itself)",
                "responses": {"200": _json(ref("Related"), "Up to 10 stories."), **_errors(400, 404, 503)},
            },
        },
        "/api/suggest": {
            "get": {
                "operationId": "suggest",
                "summary": "Autocomplete the last word",
                "parameters": [
                    {
                        "name": "q",
                        "in": "query",
                        "description": "What has been typed so far; the last word is completed.",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json(ref("Suggestions"), f"Up to {MAX_SUGGESTIONS} completions, most common first."),
                    **_errors(),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document."), **_errors()},
            }
        },
    }


@lru_cache(maxsize=4)
def openapi_document(limits: Limits = Limits(), max_request_bytes: int = Config.max_request_bytes) -> dict[str, Any]:
    """The OpenAPI document for a service with these limits (cached: it is the same every time)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "search_service",
            "version": "0.1.0",
            "description": "Full-text search over news stories. Every error under /api is JSON "
            "(`Error`); a method a path does not support is a 405 with an `Allow` header.",
        },
        "paths": _paths(limits, max_request_bytes),
        "components": {
            "schemas": _schemas(limits),
            "parameters": _parameters(limits),
            "headers": {
                "X-Request-ID": {
                    "description": "The request's id (the client's X-Request-ID if it sent one); also in errors.",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1},
                },
                "Retry-After": {
                    "description": "Seconds until the rate limit window resets.",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                },
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The SEARCH_SERVICE_TOKEN the service was started with.",
                }
            },
        },
    }
